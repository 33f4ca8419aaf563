/*
 * test_corrupt.c - damaged files.  Random bytes of every kind of file the
 * engine writes (log files: headers, node blobs, value blobs, commit records;
 * the checkpoint) are flipped, one at a time, in a copy of a real database.
 * Opening, checking and reading everything must either work or report
 * SOP_CORRUPT / SOP_VERSION with a message naming the file; never crash, hang
 * or return wrong data silently for the parts the check says are fine.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[256], pristine[300];
static const sop_env_options opts = {.cache_bytes = 1u << 20, .flags = SOP_ENV_NOSYNC, .log_file_bytes = 32u << 10};

static void sh(const char *fmt, const char *a, const char *b)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    if (system(cmd) != 0)
        fprintf(stderr, "command failed: %s\n", cmd);
}

static void build(void)
{
    sop_env *env;
    if (sop_env_open(dir, &opts, &env) != SOP_OK)
        abort();
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 6;
    o.is_unique = 1;
    char val[300];
    for (int round = 0; round < 10; round++) {
        sop_txn *t;
        sop_store *a, *b;
        sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
        o.value_placement = SOP_VALUE_SMALL;
        sop_store_open(t, "small", &o, &a);
        o.value_placement = SOP_VALUE_BIG;
        sop_store_open(t, "big", &o, &b);
        for (int i = 0; i < 60; i++) {
            memset(val, 'a' + round, sizeof val);
            snprintf(val, 40, "round %d item %d", round, i);
            sop_key_reset(&kb);
            sop_key_int(&kb, i, 0);
            sop_key_str(&kb, "k", 1, 1);
            sop_val k = {kb.size, kb.data}, v = {sizeof val, val};
            sop_upsert(a, &k, NULL, &v);
            sop_upsert(b, &k, NULL, &v);
        }
        sop_txn_commit(t);
        if (round == 3)
            sop_env_compact(env);
    }
    sop_env_close(env);
    sop_key_free(&kb);
}

/* Read everything; returns 1 when every call gave OK/NOTFOUND or SOP_CORRUPT. */
static int read_all(sop_env *env)
{
    sop_txn *t;
    int rc = sop_txn_begin(env, SOP_TXN_READ, 0, &t);
    if (rc != SOP_OK) {
        if (rc != SOP_CORRUPT)
            fprintf(stderr, "begin: %s: %s\n", sop_errname(rc), sop_errmsg());
        return rc == SOP_CORRUPT;
    }
    int ok = 1;
    const char *names[2] = {"small", "big"};
    for (int j = 0; j < 2 && ok; j++) {
        sop_store *s;
        sop_cursor *c;
        rc = sop_store_open(t, names[j], NULL, &s);
        if (rc != SOP_OK) {
            ok = rc == SOP_STORE_NOTFOUND || rc == SOP_CORRUPT || rc == SOP_TXN_ENDED;
            if (!ok)
                fprintf(stderr, "open store: %s: %s\n", sop_errname(rc), sop_errmsg());
            continue;
        }
        if (sop_cursor_open(s, &c) != SOP_OK)
            break;
        for (rc = sop_cursor_first(c); rc == SOP_OK; rc = sop_cursor_next(c)) {
            sop_val k, v;
            rc = sop_cursor_get(c, &k, NULL, &v, NULL);
            if (rc != SOP_OK)
                break;
        }
        if (rc != SOP_OK && rc != SOP_NOTFOUND && rc != SOP_CORRUPT && rc != SOP_TXN_ENDED) {
            fprintf(stderr, "read: %s: %s\n", sop_errname(rc), sop_errmsg());
            ok = 0;
        }
    }
    sop_txn_abort(t);
    return ok;
}

TEST(flip_bytes_in_every_file)
{
    snprintf(dir, sizeof dir, "/tmp/sop_corrupt_%d", (int)getpid());
    snprintf(pristine, sizeof pristine, "%s.orig", dir);
    sh("rm -rf %s %s", dir, pristine);
    build();
    sh("cp -r %s %s", dir, pristine);
    DIR *d = opendir(pristine);
    REQUIRE(d);
    char files[64][256];
    int nfiles = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nfiles < 64)
        if (!strncmp(e->d_name, "log-", 4) || !strcmp(e->d_name, "sop.ckpt"))
            snprintf(files[nfiles++], 256, "%s", e->d_name);
    closedir(d);
    REQUIRE(nfiles >= 3);
    srand(42);
    int trials = 0, detected = 0, opened = 0;
    for (int fi = 0; fi < nfiles; fi++) {
        char path[600];
        snprintf(path, sizeof path, "%.256s/%.200s", dir, files[fi]);
        for (int trial = 0; trial < 40; trial++) {
            {
                char cmd[1200];
                snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r %s %s", dir, pristine, dir);
                if (system(cmd) != 0)
                    abort();
            }
            struct stat st;
            REQUIRE(stat(path, &st) == 0);
            long pos = trial < 4 ? trial * 17 : rand() % st.st_size; /* headers too */
            FILE *f = fopen(path, "r+b");
            REQUIRE(f);
            fseek(f, pos, SEEK_SET);
            int c = fgetc(f);
            fseek(f, pos, SEEK_SET);
            fputc(c ^ (1 << (rand() % 8)), f);
            fclose(f);
            trials++;
            sop_env *env = NULL;
            int rc = sop_env_open(dir, &opts, &env);
            if (rc != SOP_OK) {
                CHECK(rc == SOP_CORRUPT || rc == SOP_VERSION);
                CHECK(strstr(sop_errmsg(), dir) != NULL); /* names the file */
                detected++;
                continue;
            }
            opened++;
            char *report = NULL;
            rc = sop_env_check(env, &report);
            CHECK(rc == SOP_OK || rc == SOP_CORRUPT);
            if (rc == SOP_CORRUPT) {
                detected++;
                CHECK(report && strstr(report, "object"));
            }
            sop_free(report);
            CHECK(read_all(env));
            sop_env_close(env);
        }
    }
    fprintf(stderr, "%d flips: %d detected as corruption, %d opened (flip in dead or "
                    "torn-tail bytes, or detected on read)\n", trials, detected, opened);
    CHECK(detected > trials / 4);
    sh("rm -rf %s %s", dir, pristine);
}

int main(void)
{
    RUN(flip_bytes_in_every_file);
    TEST_EXIT();
}
