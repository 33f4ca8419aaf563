/*
 * sop_cli.c - the `sop` command-line tool: inspect a database folder.
 *
 *   sop check PATH            integrity check (exit 0 clean, 1 corrupt, 2 error)
 *   sop stores PATH           list stores with their item counts
 *   sop dump PATH STORE [N]   print up to N items (default all) as JSON lines
 *   sop stats PATH            engine statistics
 *   sop compact PATH          checkpoint, compact the log, delete dead files
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sop.h"

static int usage(void)
{
    fprintf(stderr, "usage: sop check|stores|stats|compact PATH\n"
                    "       sop dump PATH STORE [LIMIT]\n");
    return 2;
}

static int fail(const char *what)
{
    fprintf(stderr, "sop: %s: %s\n", what, sop_errmsg());
    return 2;
}

static void print_json_string(const unsigned char *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned c = p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar((int)c);
    }
    putchar('"');
}

/* An encoded key as JSON: a scalar, or an array for composite keys. */
static void print_key(const sop_val *k)
{
    sop_key_reader r;
    sop_key_field f;
    sop_key_reader_init(&r, k->data, k->size);
    int n = 0, rc;
    printf("[");
    while ((rc = sop_key_next(&r, &f)) == 1) {
        if (n++)
            printf(",");
        switch (f.type) {
        case SOP_KT_NULL: printf("null"); break;
        case SOP_KT_BOOL: printf(f.i ? "true" : "false"); break;
        case SOP_KT_INT: printf("%lld", (long long)f.i); break;
        case SOP_KT_UINT: printf("%llu", (unsigned long long)f.u); break;
        case SOP_KT_DOUBLE: printf("%.17g", f.d); break;
        case SOP_KT_STR: print_json_string(f.p, f.n); break;
        default:
            printf("{\"$bytes_len\":%zu}", f.n);
            break;
        }
    }
    printf("]");
    sop_key_reader_free(&r);
    if (rc < 0)
        printf(" /* undecodable key */");
}

static void print_doc(const sop_val *v)
{
    char *json = NULL;
    size_t len = 0;
    if (v->size && sop_doc_to_json(v->data, v->size, &json, &len) == SOP_OK) {
        fwrite(json, 1, len, stdout);
        sop_free(json);
    } else if (!v->size) {
        printf("null");
    } else {
        printf("{\"$raw_len\":%zu}", v->size);
    }
}

typedef struct dump_ctx {
    unsigned long long n;
} dump_ctx;

static int dump_item(void *arg, const sop_val *k, const sop_val *d, const sop_val *v, const sop_id *id)
{
    dump_ctx *c = arg;
    char ids[37];
    sop_id_format(id, ids);
    printf("{\"key\":");
    print_key(k);
    if (d->size) {
        printf(",\"key_doc\":");
        print_doc(d);
    }
    printf(",\"value\":");
    print_doc(v);
    printf(",\"id\":\"%s\"}\n", ids);
    c->n++;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *cmd = argv[1], *path = argv[2];
    sop_env *env;
    if (sop_env_open(path, NULL, &env) != SOP_OK)
        return fail(path);
    int status = 0;
    if (!strcmp(cmd, "check")) {
        char *report = NULL;
        int rc = sop_env_check(env, &report);
        if (rc == SOP_OK) {
            printf("%s: ok\n", path);
        } else if (rc == SOP_CORRUPT) {
            printf("%s: CORRUPT\n%s", path, report ? report : sop_errmsg());
            status = 1;
        } else {
            status = fail("check");
        }
        sop_free(report);
    } else if (!strcmp(cmd, "stores")) {
        char **names;
        size_t n;
        if (sop_env_list_stores(env, &names, &n) != SOP_OK) {
            status = fail("stores");
        } else {
            sop_txn *t;
            if (sop_txn_begin(env, SOP_TXN_NOCHECK, 0, &t) == SOP_OK) {
                for (size_t i = 0; i < n; i++) {
                    sop_store *s;
                    sop_store_info info;
                    if (sop_store_open(t, names[i], NULL, &s) == SOP_OK && sop_store_get_info(s, &info) == SOP_OK)
                        printf("%-30s %12llu items  slot_length %u  %s  %s\n", names[i],
                               (unsigned long long)info.count, info.options.slot_length,
                               info.options.is_unique ? "unique" : "non-unique",
                               info.options.value_placement == SOP_VALUE_SMALL ? "small values"
                               : info.options.value_placement == SOP_VALUE_MEDIUM ? "medium values"
                                                                                    : "big values");
                }
                sop_txn_abort(t);
            }
            sop_free(names);
        }
    } else if (!strcmp(cmd, "dump") && argc >= 4) {
        sop_txn *t;
        sop_store *s;
        sop_cursor *c;
        unsigned long long limit = argc >= 5 ? strtoull(argv[4], NULL, 10) : ~0ull;
        if (sop_txn_begin(env, SOP_TXN_NOCHECK, 0, &t) != SOP_OK)
            status = fail("dump");
        else {
            if (sop_store_open(t, argv[3], NULL, &s) != SOP_OK || sop_cursor_open(s, &c) != SOP_OK) {
                status = fail(argv[3]);
            } else {
                dump_ctx dc = {0};
                sop_paging pg = {0, limit ? limit : 1, 0, SOP_FORWARD};
                if (limit && sop_cursor_fetch(c, &pg, SOP_FETCH_VALUES, dump_item, &dc) != SOP_OK)
                    status = fail("dump");
            }
            sop_txn_abort(t);
        }
    } else if (!strcmp(cmd, "stats")) {
        sop_env_stats st;
        sop_env_stat(env, &st);
        printf("commit_seq %llu\nstores %llu\nlog_bytes %llu\nlive_bytes %llu\ncache_bytes %llu\n",
               (unsigned long long)st.commit_seq, (unsigned long long)st.stores,
               (unsigned long long)st.log_bytes, (unsigned long long)st.live_bytes,
               (unsigned long long)st.cache_bytes);
    } else if (!strcmp(cmd, "compact")) {
        if (sop_env_compact(env) != SOP_OK)
            status = fail("compact");
        else
            printf("%s: compacted\n", path);
    } else {
        sop_env_close(env);
        return usage();
    }
    sop_env_close(env);
    return status;
}
