/*
 * example.c - a short tour of the libsop C API.
 *
 * Opens a database in a fresh temporary folder, creates a store, adds items
 * under composite keys (region, id) built with the key encoder, commits, then
 * reads them back: a full cursor scan, a seek to the first key of a region,
 * and page-by-page fetches with sop_cursor_fetch.  Removes the folder at the
 * end.  Exits 0 on success; on failure prints the call, the error name and
 * sop_errmsg().
 *
 * Error idiom (the same one the library uses): every call returns an int
 * code, SOP_OK is 0; on failure jump to the single cleanup label.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sop.h"

#define TRY(call)                                                                      \
    do {                                                                               \
        if ((rc = (call)) != SOP_OK) {                                                 \
            fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, #call,         \
                    sop_errname(rc), sop_errmsg());                                    \
            goto fail;                                                                 \
        }                                                                              \
    } while (0)

static const char *const regions[] = {"eu", "us", "asia"};
#define N_PER_REGION 4

/* Encode the key (region, id). */
static int make_key(sop_keybuf *kb, const char *region, int64_t id)
{
    sop_key_reset(kb);
    sop_key_str(kb, region, strlen(region), 0);
    sop_key_int(kb, id, 0);
    return kb->err;
}

/* Print an encoded key as (field, field, ...). */
static void print_key(const sop_val *key)
{
    sop_key_reader r;
    sop_key_field f;
    int n, first = 1;
    sop_key_reader_init(&r, key->data, key->size);
    putchar('(');
    while ((n = sop_key_next(&r, &f)) == 1) {
        printf("%s", first ? "" : ", ");
        first = 0;
        if (f.type == SOP_KT_STR)
            printf("\"%.*s\"", (int)f.n, (const char *)f.p);
        else if (f.type == SOP_KT_INT)
            printf("%" PRId64, f.i);
        else
            printf("<type %d>", f.type);
    }
    putchar(')');
    if (n < 0)
        printf(" <bad key: %s>", sop_errname(-n));
    sop_key_reader_free(&r);
}

struct page_state {
    uint64_t seen;
};

/* sop_cursor_fetch callback: borrowed values, valid during the call only. */
static int on_item(void *arg, const sop_val *key, const sop_val *key_doc, const sop_val *value,
                   const sop_id *id)
{
    struct page_state *ps = arg;
    char idtext[37];
    (void)key_doc;
    sop_id_format(id, idtext);
    printf("    ");
    print_key(key);
    if (value)
        printf(" = %.*s", (int)value->size, (const char *)value->data);
    printf("  [%s]\n", idtext);
    ps->seen++;
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    int rc = SOP_OK, ok = 0;
    char dir[512];
    const char *tmp = getenv("TMPDIR");
    sop_env *env = NULL;
    sop_txn *txn = NULL;
    sop_store *store = NULL;
    sop_cursor *cur = NULL;
    sop_keybuf kb;
    uint64_t count = 0, scanned = 0;

    sop_key_init(&kb);
    snprintf(dir, sizeof dir, "%s/sop-example-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("libsop %s, database in %s\n", SOP_VERSION_STRING, dir);
    TRY(sop_env_open(dir, NULL, &env));

    /* 1. Write: one transaction creates the store and adds the items. */
    TRY(sop_txn_begin(env, SOP_TXN_WRITE, 0, &txn));
    sop_store_options opts = {0};
    opts.is_unique = 1;
    opts.description = "people by (region, id)";
    TRY(sop_store_open(txn, "people", &opts, &store));
    for (size_t r = 0; r < sizeof regions / sizeof regions[0]; r++) {
        for (int64_t i = 1; i <= N_PER_REGION; i++) {
            char text[64];
            TRY(make_key(&kb, regions[r], i));
            snprintf(text, sizeof text, "person %" PRId64 " of %s", i, regions[r]);
            sop_val key = {kb.size, kb.data}, value = {strlen(text), text};
            TRY(sop_add(store, &key, NULL, &value, NULL));
        }
    }
    rc = sop_txn_commit(txn); /* consumes txn (and store) on success and failure */
    txn = NULL;
    store = NULL;
    TRY(rc);

    /* 2. Read: a new transaction sees the committed items. */
    TRY(sop_txn_begin(env, SOP_TXN_READ, 0, &txn));
    TRY(sop_store_open(txn, "people", NULL, &store));
    TRY(sop_store_count(store, &count));
    printf("store \"people\" has %" PRIu64 " items\n", count);

    TRY(sop_cursor_open(store, &cur));
    printf("full scan:\n");
    for (rc = sop_cursor_first(cur); rc == SOP_OK; rc = sop_cursor_next(cur)) {
        sop_val key, value;
        TRY(sop_cursor_get(cur, &key, NULL, &value, NULL));
        printf("    ");
        print_key(&key);
        printf(" = %.*s\n", (int)value.size, (const char *)value.data);
        scanned++;
    }
    if (rc != SOP_NOTFOUND) /* the end of the store */
        TRY(rc);

    /* Seek: ("us") alone sorts before every ("us", id), so a miss leaves the
     * cursor on the first item of that region. */
    sop_key_reset(&kb);
    sop_key_str(&kb, "us", 2, 0);
    TRY(kb.err);
    sop_val prefix = {kb.size, kb.data};
    rc = sop_cursor_find(cur, &prefix);
    if (rc != SOP_OK && rc != SOP_NOTFOUND)
        TRY(rc);
    if (sop_cursor_is_positioned(cur)) {
        sop_val key;
        TRY(sop_cursor_get(cur, &key, NULL, NULL, NULL));
        printf("first key >= (\"us\"): ");
        print_key(&key);
        printf("\n");
    }

    /* Paging: start unpositioned, then each call continues after the last
     * item returned; a short page means the end was reached. */
    sop_cursor_close(cur);
    cur = NULL;
    TRY(sop_cursor_open(store, &cur));
    sop_paging paging = {.page_offset = 0, .page_size = 5, .fetch_count = 0,
                         .direction = SOP_FORWARD};
    struct page_state ps = {0};
    for (int page = 1;; page++) {
        uint64_t before = ps.seen;
        printf("page %d:\n", page);
        TRY(sop_cursor_fetch(cur, &paging, SOP_FETCH_VALUES, on_item, &ps));
        if (ps.seen - before < paging.page_size || !sop_cursor_is_positioned(cur))
            break;
    }
    sop_cursor_close(cur);
    cur = NULL;
    rc = sop_txn_commit(txn);
    txn = NULL;
    TRY(rc);

    uint64_t want = (uint64_t)(sizeof regions / sizeof regions[0]) * N_PER_REGION;
    if (count != want || scanned != want || ps.seen != want) {
        fprintf(stderr, "expected %" PRIu64 " items: count %" PRIu64 ", scanned %" PRIu64
                        ", paged %" PRIu64 "\n", want, count, scanned, ps.seen);
        goto fail;
    }
    ok = 1;
    printf("ok\n");

fail:
    sop_cursor_close(cur);
    sop_txn_abort(txn);
    if (sop_env_close(env) != SOP_OK)
        ok = 0;
    sop_key_free(&kb);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return ok ? 0 : 1;
}
