/* fuzz_log.c - libFuzzer target: commit records (trailers) and the catalog
 * ops they carry; parsing arbitrary bytes must fail cleanly. */
#include "catalog.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    log_commit c;
    if (log_parse_trailer(data, size, &c, "fuzz", 0) == SOP_OK) {
        catalog *empty = cat_empty(), *next = NULL;
        if (cat_apply(empty, c.seq, c.cat_ops, c.cat_ops_len, &next) == SOP_OK)
            cat_unref(next);
        cat_unref(empty);
        log_commit_free(&c);
    }
    /* the same bytes as raw catalog ops */
    catalog *empty = cat_empty(), *next = NULL;
    if (cat_apply(empty, 1, data, size, &next) == SOP_OK)
        cat_unref(next);
    cat_unref(empty);
    unsigned char dbid[16];
    log_file_header_check(data, size, 1, dbid, "fuzz");
    return 0;
}
