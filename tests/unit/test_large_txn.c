/*
 * test_large_txn.c - transactions larger than the cache and the log's
 * preallocated tail: private nodes spilled to the transaction's spill file
 * and read back (model-checked against a reference array, through commit,
 * abort, merge with a concurrent commit, and reopen), commit batches written
 * in pieces, and recovery when zeros (or stale bytes behind zeros) follow the
 * last batch of the log.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[256];

static void fresh_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sop_test_large_XXXXXX");
    if (!mkdtemp(dir))
        abort();
}

static void rm_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

#define N 60000 /* ~8 MB of items: twice the smallest spill budget (4 MiB) */

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void make_key(unsigned char k[16], int i)
{
    uint64_t a = mix((uint64_t)i), b = (uint64_t)i;
    memcpy(k, &a, 8);
    memcpy(k + 8, &b, 8);
}

/* 8-byte big-endian i: keys in i order */
static void seq_key(unsigned char k[8], int i)
{
    for (int b = 0; b < 8; b++)
        k[b] = (unsigned char)((uint64_t)i >> (56 - 8 * b));
}

static void make_val(unsigned char v[100], int i, int ver)
{
    memset(v, 'a' + ver % 26, 100);
    memcpy(v, &i, sizeof i);
    memcpy(v + 4, &ver, sizeof ver);
}

/* ver[i]: 0 = absent, else the version of item i's value */
static int check_all(sop_txn *t, const char *store, const int *ver)
{
    sop_store *s;
    int bad = 0;
    if (sop_store_open(t, store, NULL, &s) != SOP_OK)
        return -1;
    for (int i = 0; i < N; i++) {
        unsigned char k[16], want[100];
        make_key(k, i);
        sop_val key = {16, k}, value;
        int rc = sop_get(s, &key, NULL, &value, NULL);
        if (ver[i] == 0) {
            bad += rc != SOP_NOTFOUND;
            continue;
        }
        make_val(want, i, ver[i]);
        if (rc != SOP_OK || value.size != 100 || memcmp(value.data, want, 100)) {
            if (bad < 5)
                fprintf(stderr, "item %d: rc %d size %zu (want version %d)\n", i, rc, value.size, ver[i]);
            bad++;
        }
    }
    uint64_t count = 0;
    size_t present = 0;
    for (int i = 0; i < N; i++)
        present += ver[i] != 0;
    if (sop_store_count(s, &count) != SOP_OK || count != present)
        bad++;
    return bad;
}

static sop_env *open_small_cache(void)
{
    sop_env *env = NULL;
    sop_env_options o = {.cache_bytes = 1u << 20, .flags = 0, .log_file_bytes = 0}; /* 1 MiB cache: spill budget 4 MiB; durable */
    CHECK_RC(sop_env_open(dir, &o, &env), SOP_OK);
    return env;
}

/* random adds, updates and removes in one transaction */
static void churn(sop_store *s, int *ver, int ops, uint64_t seed)
{
    for (int n = 0; n < ops; n++) {
        int i = (int)(mix(seed + (uint64_t)n) % N);
        unsigned char k[16], v[100];
        make_key(k, i);
        sop_val key = {16, k};
        if (ver[i] && (n % 3) == 0) {
            CHECK_RC(sop_remove(s, &key), SOP_OK);
            ver[i] = 0;
        } else if (ver[i]) {
            make_val(v, i, ver[i] + 1);
            sop_val val = {100, v};
            CHECK_RC(sop_update(s, &key, NULL, &val), SOP_OK);
            ver[i]++;
        } else {
            make_val(v, i, 1);
            sop_val val = {100, v};
            CHECK_RC(sop_add(s, &key, NULL, &val, NULL), SOP_OK);
            ver[i] = 1;
        }
    }
}

TEST(spill_commit_abort_reopen)
{
    fresh_dir();
    sop_env *env = open_small_cache();
    REQUIRE(env);
    static int ver[N], saved[N];
    memset(ver, 0, sizeof ver);
    sop_store_options so;
    memset(&so, 0, sizeof so);
    so.value_placement = SOP_VALUE_SMALL;
    sop_txn *t;
    sop_store *s;

    /* one transaction inserts everything (far beyond the budget) */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "big", &so, &s), SOP_OK);
    for (int i = 0; i < N; i++) {
        unsigned char k[16], v[100];
        make_key(k, i);
        make_val(v, i, 1);
        sop_val key = {16, k}, val = {100, v};
        CHECK_RC(sop_add(s, &key, NULL, &val, NULL), SOP_OK);
        ver[i] = 1;
    }
    sop_env_stats st;
    CHECK_RC(sop_env_stat(env, &st), SOP_OK);
    CHECK(st.spilled_bytes > 0);
    uint64_t spilled = st.spilled_bytes;
    /* reads inside the transaction see spilled leaves */
    CHECK(check_all(t, "big", ver) == 0);
    churn(s, ver, 30000, 1);
    CHECK(check_all(t, "big", ver) == 0);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK(check_all(t, "big", ver) == 0);
    sop_txn_abort(t);

    /* a large transaction that spills and then aborts changes nothing */
    memcpy(saved, ver, sizeof ver);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "big", NULL, &s), SOP_OK);
    churn(s, ver, 60000, 2);
    CHECK_RC(sop_env_stat(env, &st), SOP_OK);
    CHECK(st.spilled_bytes > spilled);
    sop_txn_abort(t);
    memcpy(ver, saved, sizeof ver);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK(check_all(t, "big", ver) == 0);
    sop_txn_abort(t);

    /* merge: a large spilling transaction commits after a concurrent small
     * commit to the same store.  Store "m" has sequential keys so the two
     * touch distant parts of the key order: the big one rewrites the first
     * three quarters, the small one the last item. */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "m", &so, &s), SOP_OK);
    for (int i = 0; i < N; i++) {
        unsigned char k[8], v[100];
        seq_key(k, i);
        make_val(v, i, 1);
        sop_val key = {8, k}, val = {100, v};
        CHECK_RC(sop_add(s, &key, NULL, &val, NULL), SOP_OK);
    }
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK_RC(sop_env_stat(env, &st), SOP_OK);
    spilled = st.spilled_bytes;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "m", NULL, &s), SOP_OK);
    for (int i = 0; i < N * 3 / 4; i++) {
        unsigned char k[8], v[100];
        seq_key(k, i);
        make_val(v, i, 2);
        sop_val key = {8, k}, val = {100, v};
        CHECK_RC(sop_update(s, &key, NULL, &val), SOP_OK);
    }
    CHECK_RC(sop_env_stat(env, &st), SOP_OK);
    CHECK(st.spilled_bytes > spilled);
    sop_txn *t2;
    sop_store *s2;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t2), SOP_OK);
    CHECK_RC(sop_store_open(t2, "m", NULL, &s2), SOP_OK);
    {
        unsigned char k[8], v[100];
        seq_key(k, N - 1);
        make_val(v, N - 1, 77);
        sop_val key = {8, k}, val = {100, v};
        CHECK_RC(sop_update(s2, &key, NULL, &val), SOP_OK);
    }
    CHECK_RC(sop_txn_commit(t2), SOP_OK);
    CHECK_RC(sop_txn_commit(t), SOP_OK); /* merged onto t2's commit */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "m", NULL, &s), SOP_OK);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        unsigned char k[8], want[100];
        seq_key(k, i);
        make_val(want, i, i == N - 1 ? 77 : i < N * 3 / 4 ? 2 : 1);
        sop_val key = {8, k}, value;
        if (sop_get(s, &key, NULL, &value, NULL) != SOP_OK || value.size != 100 || memcmp(value.data, want, 100))
            bad++;
    }
    CHECK(bad == 0);
    sop_txn_abort(t);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK(check_all(t, "big", ver) == 0);
    sop_txn_abort(t);
    CHECK_RC(sop_env_close(env), SOP_OK);

    /* reopen: everything recovered from the log, no spill file left */
    env = open_small_cache();
    REQUIRE(env);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK(check_all(t, "big", ver) == 0);
    sop_txn_abort(t);
    char *report = NULL;
    CHECK_RC(sop_env_check(env, &report), SOP_OK);
    free(report);
    CHECK_RC(sop_env_close(env), SOP_OK);
    DIR *d = opendir(dir);
    REQUIRE(d);
    struct dirent *de;
    while ((de = readdir(d)))
        CHECK(strncmp(de->d_name, "sop-spill", 9) != 0);
    closedir(d);
    rm_dir();
}

/* Medium values: leaves that refer to the transaction's own value blobs are
 * not spilled, and everything still commits exactly. */
TEST(spill_with_separate_values)
{
    fresh_dir();
    sop_env *env = open_small_cache();
    REQUIRE(env);
    static int ver[N];
    memset(ver, 0, sizeof ver);
    sop_store_options so;
    memset(&so, 0, sizeof so);
    so.value_placement = SOP_VALUE_MEDIUM;
    sop_txn *t;
    sop_store *s;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "med", &so, &s), SOP_OK);
    churn(s, ver, 50000, 9);
    CHECK(check_all(t, "med", ver) == 0);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK_RC(sop_env_close(env), SOP_OK);
    env = open_small_cache();
    REQUIRE(env);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK(check_all(t, "med", ver) == 0);
    sop_txn_abort(t);
    CHECK_RC(sop_env_close(env), SOP_OK);
    rm_dir();
}

static char *last_log(void)
{
    static char path[600];
    char best[300] = "";
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "log-", 4) && strstr(de->d_name, ".sop") && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", de->d_name);
    closedir(d);
    snprintf(path, sizeof path, "%s/%s", dir, best);
    return best[0] ? path : NULL;
}

static int commit_one(sop_env *env, int i)
{
    sop_txn *t;
    sop_store *s;
    unsigned char k[16], v[100];
    make_key(k, i);
    make_val(v, i, 1);
    sop_val key = {16, k}, val = {100, v};
    sop_store_options so;
    memset(&so, 0, sizeof so);
    int rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
    if (rc == SOP_OK)
        rc = sop_store_open(t, "p", &so, &s);
    if (rc == SOP_OK)
        rc = sop_add(s, &key, NULL, &val, NULL);
    if (rc == SOP_OK)
        return sop_txn_commit(t);
    sop_txn_abort(t);
    return rc;
}

/* Items in store "p" as a new read transaction sees them (UINT64_MAX on an
 * error). */
static uint64_t count_p(sop_env *env)
{
    sop_txn *t;
    sop_store *s;
    uint64_t count = UINT64_MAX;
    if (sop_txn_begin(env, SOP_TXN_READ, 0, &t) != SOP_OK)
        return count;
    if (sop_store_open(t, "p", NULL, &s) != SOP_OK || sop_store_count(s, &count) != SOP_OK)
        count = UINT64_MAX;
    sop_txn_abort(t);
    return count;
}

/* The current log file is zero-filled beyond its last batch while open;
 * reopening treats the zeros as the end, and bytes that survive behind them
 * (a batch never made durable) are cut off rather than ever applied. */
TEST(preallocated_tail)
{
    fresh_dir();
    sop_env *env = NULL;
    sop_env_options o = {.cache_bytes = 0, .flags = 0, .log_file_bytes = 0}; /* durable: preallocation is on */
    CHECK_RC(sop_env_open(dir, &o, &env), SOP_OK);
    REQUIRE(env);
    for (int i = 0; i < 20; i++)
        CHECK_RC(commit_one(env, i), SOP_OK);
    char *log = last_log();
    REQUIRE(log);
    struct stat sb;
    REQUIRE(stat(log, &sb) == 0);
    off_t size_open = sb.st_size;
    CHECK(size_open >= 256 << 10); /* zeros follow the batches */
    CHECK_RC(sop_env_close(env), SOP_OK);

    /* plant a copy of the file's first batch far behind the zeros: it is a
     * valid batch, but it is not where the log continues */
    int fd = open(log, O_RDWR);
    REQUIRE(fd >= 0);
    unsigned char buf[4096];
    REQUIRE(pread(fd, buf, sizeof buf, 64) == (ssize_t)sizeof buf);
    REQUIRE(pwrite(fd, buf, sizeof buf, size_open - 8192) == (ssize_t)sizeof buf);
    close(fd);

    env = NULL;
    CHECK_RC(sop_env_open(dir, &o, &env), SOP_OK);
    REQUIRE(env);
    REQUIRE(stat(log, &sb) == 0);
    CHECK(sb.st_size < size_open); /* cut at the end of the valid batches */
    CHECK(count_p(env) == 20);
    /* and the log goes on from there */
    for (int i = 20; i < 40; i++)
        CHECK_RC(commit_one(env, i), SOP_OK);
    CHECK_RC(sop_env_close(env), SOP_OK);
    env = NULL;
    CHECK_RC(sop_env_open(dir, &o, &env), SOP_OK);
    REQUIRE(env);
    CHECK(count_p(env) == 40);
    CHECK_RC(sop_env_close(env), SOP_OK);
    rm_dir();
}

/* Two handles with different log file sizes: one preallocates zeros far
 * ahead, the other starts the next file.  The full file must lose the zeros
 * (a later open would otherwise find a non-last file that does not end in a
 * batch and refuse the database). */
TEST(rotation_drops_zero_tail)
{
    fresh_dir();
    sop_env *a = NULL, *b = NULL;
    sop_env_options big = {.cache_bytes = 0, .flags = 0, .log_file_bytes = 0}, small = {.log_file_bytes = 64u << 10};
    CHECK_RC(sop_env_open(dir, &big, &a), SOP_OK);
    REQUIRE(a);
    CHECK_RC(commit_one(a, 0), SOP_OK);
    CHECK_RC(sop_env_open(dir, &small, &b), SOP_OK);
    REQUIRE(b);
    /* a goes on past what it preallocated before b's open, so it zero-fills
     * again; then b, with 64 KiB files, starts new files */
    for (int i = 1; i < 200; i++)
        CHECK_RC(commit_one(a, i), SOP_OK);
    for (int i = 200; i < 260; i++)
        CHECK_RC(commit_one(b, i), SOP_OK);
    CHECK_RC(sop_env_close(a), SOP_OK);
    CHECK_RC(sop_env_close(b), SOP_OK);
    a = NULL;
    CHECK_RC(sop_env_open(dir, &big, &a), SOP_OK);
    REQUIRE(a);
    CHECK(count_p(a) == 260);
    CHECK_RC(sop_env_close(a), SOP_OK);
    rm_dir();
}

/* Both open at once: the handle with 64 MiB files must follow the other's
 * rotations into new files (it ends each of them at the end of the file,
 * far below its own size limit).  It used to stop at the first file, read
 * a stale state, and append its own commit to that old file, where the
 * next open did not find it: an acknowledged commit lost. */
TEST(follows_rotations_of_smaller_files)
{
    fresh_dir();
    sop_env *a = NULL, *b = NULL;
    sop_env_options big = {.flags = SOP_ENV_NOSYNC}, small = {.flags = SOP_ENV_NOSYNC, .log_file_bytes = 64u << 10};
    CHECK_RC(sop_env_open(dir, &big, &a), SOP_OK);
    REQUIRE(a);
    CHECK_RC(commit_one(a, 0), SOP_OK);
    CHECK_RC(sop_env_open(dir, &small, &b), SOP_OK);
    REQUIRE(b);
    for (int i = 1; i <= 400; i++)
        CHECK_RC(commit_one(b, i), SOP_OK);
    CHECK(count_p(a) == 401);
    CHECK_RC(commit_one(a, 1000), SOP_OK);
    CHECK(count_p(a) == 402 && count_p(b) == 402);
    CHECK_RC(sop_env_close(a), SOP_OK);
    CHECK_RC(sop_env_close(b), SOP_OK);
    a = NULL;
    CHECK_RC(sop_env_open(dir, &big, &a), SOP_OK);
    REQUIRE(a);
    CHECK(count_p(a) == 402);
    char *report = NULL;
    CHECK_RC(sop_env_check(a, &report), SOP_OK);
    sop_free(report);
    CHECK_RC(sop_env_close(a), SOP_OK);
    rm_dir();
}

/* A transaction whose batch is written in pieces (> 1 MiB) commits whole,
 * and a reopen finds all of it. */
TEST(batch_in_pieces)
{
    fresh_dir();
    sop_env *env = NULL;
    sop_env_options o = {.cache_bytes = 0, .flags = 0, .log_file_bytes = 0};
    CHECK_RC(sop_env_open(dir, &o, &env), SOP_OK);
    REQUIRE(env);
    static int ver[N];
    memset(ver, 0, sizeof ver);
    sop_txn *t;
    sop_store *s;
    sop_store_options so;
    memset(&so, 0, sizeof so);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "big", &so, &s), SOP_OK);
    churn(s, ver, 40000, 5);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK_RC(sop_env_close(env), SOP_OK);
    env = NULL;
    CHECK_RC(sop_env_open(dir, &o, &env), SOP_OK);
    REQUIRE(env);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK(check_all(t, "big", ver) == 0);
    sop_txn_abort(t);
    CHECK_RC(sop_env_close(env), SOP_OK);
    rm_dir();
}

/* A write whose first operation changes nothing (no private node yet) must
 * not trip the spill check. */
TEST(first_write_finds_nothing)
{
    fresh_dir();
    sop_env *env = open_small_cache();
    REQUIRE(env);
    sop_txn *t;
    sop_store *s;
    sop_store_options so;
    memset(&so, 0, sizeof so);
    CHECK_RC(commit_one(env, 1), SOP_OK);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "p", NULL, &s), SOP_OK);
    unsigned char k[16], v[100];
    make_key(k, 2);
    make_val(v, 2, 1);
    sop_val key = {16, k}, val = {100, v};
    CHECK_RC(sop_remove(s, &key), SOP_NOTFOUND);
    CHECK_RC(sop_update(s, &key, NULL, &val), SOP_NOTFOUND);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK_RC(sop_env_close(env), SOP_OK);
    rm_dir();
}

int main(void)
{
    RUN(first_write_finds_nothing);
    RUN(spill_commit_abort_reopen);
    RUN(spill_with_separate_values);
    RUN(preallocated_tail);
    RUN(batch_in_pieces);
    RUN(rotation_drops_zero_tail);
    RUN(follows_rotations_of_smaller_files);
    TEST_EXIT();
}
