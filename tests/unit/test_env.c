/*
 * test_env.c - engine tests through the public API: stores, items,
 * transactions, snapshots, cursors, paging, reopen/recovery of the commit
 * log (including a torn tail), store removal and bad input.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[256];

static void fresh_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sop_test_env_XXXXXX");
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

static sop_val ikey(sop_keybuf *kb, int64_t v)
{
    sop_key_reset(kb);
    sop_key_int(kb, v, 0);
    return (sop_val){kb->size, kb->data};
}

static sop_val sval(const char *s)
{
    return (sop_val){strlen(s), s};
}

static sop_env *open_env(void)
{
    sop_env *env = NULL;
    sop_env_options o = {.cache_bytes = 0, .flags = SOP_ENV_NOSYNC, .log_file_bytes = 0};
    CHECK_RC(sop_env_open(dir, &o, &env), SOP_OK);
    return env;
}

static sop_store_options opts(uint32_t slot, int unique)
{
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = slot;
    o.is_unique = unique;
    o.is_primitive_key = 1;
    return o;
}

TEST(basic_add_find_commit_reopen)
{
    fresh_dir();
    sop_env *env = open_env();
    REQUIRE(env);
    sop_txn *t;
    sop_store *s;
    sop_keybuf kb;
    sop_key_init(&kb);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    sop_store_options o = opts(8, 1);
    CHECK_RC(sop_store_open(t, "users", &o, &s), SOP_OK);
    for (int i = 0; i < 1000; i++) {
        char v[32];
        snprintf(v, sizeof v, "value %d", i);
        sop_val k = ikey(&kb, i * 7 % 1000), val = sval(v);
        CHECK_RC(sop_add(s, &k, NULL, &val, NULL), SOP_OK);
    }
    sop_val k = ikey(&kb, 5), val = sval("dup");
    CHECK_RC(sop_add(s, &k, NULL, &val, NULL), SOP_KEYEXIST);
    uint64_t n = 0;
    CHECK_RC(sop_store_count(s, &n), SOP_OK);
    CHECK(n == 1000);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK_RC(sop_env_close(env), SOP_OK);

    env = open_env();
    REQUIRE(env);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "users", NULL, &s), SOP_OK);
    CHECK_RC(sop_store_count(s, &n), SOP_OK);
    CHECK(n == 1000);
    sop_cursor *c;
    CHECK_RC(sop_cursor_open(s, &c), SOP_OK);
    int count = 0;
    int64_t prev = -1;
    for (int rc = sop_cursor_first(c); rc == SOP_OK; rc = sop_cursor_next(c)) {
        sop_val kk, vv;
        CHECK_RC(sop_cursor_get(c, &kk, NULL, &vv, NULL), SOP_OK);
        sop_key_reader r;
        sop_key_field f;
        sop_key_reader_init(&r, kk.data, kk.size);
        CHECK(sop_key_next(&r, &f) == 1);
        CHECK(f.type == SOP_KT_INT && f.i == prev + 1);
        char want[32];
        snprintf(want, sizeof want, "value %d", (int)((f.i * 143) % 1000)); /* 7*143 = 1001 */
        CHECK(vv.size == strlen(want) && !memcmp(vv.data, want, vv.size));
        prev = f.i;
        sop_key_reader_free(&r);
        count++;
    }
    CHECK(count == 1000);
    k = ikey(&kb, 1000);
    CHECK_RC(sop_cursor_find(c, &k), SOP_NOTFOUND);
    CHECK(!sop_cursor_is_positioned(c));
    /* a write in a reading transaction */
    k = ikey(&kb, 5000);
    CHECK_RC(sop_add(s, &k, NULL, &val, NULL), SOP_READONLY);
    sop_txn_abort(t);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    CHECK_RC(sop_env_close(env), SOP_OK);
    sop_key_free(&kb);
    rm_dir();
}

TEST(rollback_and_snapshot_isolation)
{
    fresh_dir();
    sop_env *env = open_env();
    REQUIRE(env);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t, *r;
    sop_store *s, *rs;
    sop_store_options o = opts(4, 1);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "a", &o, &s), SOP_OK);
    sop_val k = ikey(&kb, 1), v = sval("one");
    CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t), SOP_OK);

    /* reader snapshot before the next commit */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &r), SOP_OK);
    CHECK_RC(sop_store_open(r, "a", NULL, &rs), SOP_OK);

    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "a", NULL, &s), SOP_OK);
    for (int i = 2; i < 200; i++) {
        k = ikey(&kb, i);
        CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_OK);
    }
    v = sval("uno");
    k = ikey(&kb, 1);
    CHECK_RC(sop_update(s, &k, NULL, &v), SOP_OK);
    CHECK_RC(sop_txn_commit(t), SOP_OK);

    uint64_t n;
    CHECK_RC(sop_store_count(rs, &n), SOP_OK);
    CHECK(n == 1);
    sop_val got;
    CHECK_RC(sop_get(rs, &k, NULL, &got, NULL), SOP_OK);
    CHECK(got.size == 3 && !memcmp(got.data, "one", 3));
    sop_txn_abort(r);

    /* rollback leaves nothing */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "a", NULL, &s), SOP_OK);
    CHECK_RC(sop_remove(s, &k), SOP_OK);
    sop_txn_abort(t);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &r), SOP_OK);
    CHECK_RC(sop_store_open(r, "a", NULL, &rs), SOP_OK);
    CHECK_RC(sop_get(rs, &k, NULL, &got, NULL), SOP_OK);
    CHECK(got.size == 3 && !memcmp(got.data, "uno", 3));
    CHECK_RC(sop_store_count(rs, &n), SOP_OK);
    CHECK(n == 199);
    sop_txn_abort(r);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_env_close(env);
    sop_key_free(&kb);
    rm_dir();
}

TEST(conflict_and_multi_store)
{
    fresh_dir();
    sop_env *env = open_env();
    REQUIRE(env);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t1, *t2;
    sop_store *a1, *b1, *a2;
    sop_store_options o = opts(16, 1);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t1), SOP_OK);
    CHECK_RC(sop_store_open(t1, "accounts", &o, &a1), SOP_OK);
    CHECK_RC(sop_store_open(t1, "logs", &o, &b1), SOP_OK);
    sop_val k = ikey(&kb, 1), v = sval("100");
    CHECK_RC(sop_add(a1, &k, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_add(b1, &k, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);

    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t1), SOP_OK);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t2), SOP_OK);
    CHECK_RC(sop_store_open(t1, "accounts", NULL, &a1), SOP_OK);
    CHECK_RC(sop_store_open(t2, "accounts", NULL, &a2), SOP_OK);
    v = sval("90");
    CHECK_RC(sop_update(a1, &k, NULL, &v), SOP_OK);
    v = sval("80");
    CHECK_RC(sop_update(a2, &k, NULL, &v), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_CONFLICT);

    char **names;
    size_t nn;
    CHECK_RC(sop_env_list_stores(env, &names, &nn), SOP_OK);
    CHECK(nn == 2 && !strcmp(names[0], "accounts") && !strcmp(names[1], "logs"));
    sop_free(names);
    CHECK_RC(sop_env_remove_store(env, "logs"), SOP_OK);
    CHECK_RC(sop_env_remove_store(env, "logs"), SOP_STORE_NOTFOUND);
    CHECK_RC(sop_env_remove_store(env, "../x"), SOP_BAD_NAME);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t1), SOP_OK);
    CHECK_RC(sop_store_open(t1, "logs", NULL, &b1), SOP_STORE_NOTFOUND);
    CHECK_RC(sop_store_open(t1, "a/b", &o, &b1), SOP_BAD_NAME);
    sop_store_options o2 = opts(32, 1);
    CHECK_RC(sop_store_open(t1, "accounts", &o2, &b1), SOP_STORE_INCOMPATIBLE);
    sop_txn_abort(t1);
    sop_env_close(env);
    env = open_env();
    CHECK_RC(sop_env_list_stores(env, &names, &nn), SOP_OK);
    CHECK(nn == 1);
    sop_free(names);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_env_close(env);
    sop_key_free(&kb);
    rm_dir();
}

static int collect(void *arg, const sop_val *k, const sop_val *d, const sop_val *v, const sop_id *id)
{
    (void)d; (void)v; (void)id;
    int64_t *out = arg;
    sop_key_reader r;
    sop_key_field f;
    sop_key_reader_init(&r, k->data, k->size);
    if (sop_key_next(&r, &f) == 1)
        out[1 + out[0]++] = f.i;
    sop_key_reader_free(&r);
    return 0;
}

TEST(paging)
{
    fresh_dir();
    sop_env *env = open_env();
    REQUIRE(env);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    sop_store_options o = opts(6, 1);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "p", &o, &s), SOP_OK);
    sop_cursor *c;
    CHECK_RC(sop_cursor_open(s, &c), SOP_OK);
    int64_t got[64];
    sop_paging pg = {0, 10, 0, SOP_FORWARD};
    got[0] = 0;
    CHECK_RC(sop_cursor_fetch(c, &pg, SOP_FETCH_KEYS, collect, got), SOP_OK); /* empty */
    CHECK(got[0] == 0);
    for (int i = 0; i < 50; i++) {
        sop_val k = ikey(&kb, i), v = sval("x");
        CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_OK);
    }
    got[0] = 0;
    CHECK_RC(sop_cursor_fetch(c, &pg, SOP_FETCH_KEYS, collect, got), SOP_OK);
    CHECK(got[0] == 10 && got[1] == 0 && got[10] == 9);
    got[0] = 0;
    CHECK_RC(sop_cursor_fetch(c, &pg, SOP_FETCH_KEYS, collect, got), SOP_OK);
    CHECK(got[0] == 10 && got[1] == 10);
    sop_paging pg2 = {2, 10, 3, SOP_FORWARD}; /* skip 20 from 20 -> 40.. */
    got[0] = 0;
    CHECK_RC(sop_cursor_fetch(c, &pg2, SOP_FETCH_KEYS, collect, got), SOP_OK);
    CHECK(got[0] == 3 && got[1] == 40 && got[3] == 42);
    sop_paging pg3 = {0, 20, 0, SOP_FORWARD};
    got[0] = 0;
    CHECK_RC(sop_cursor_fetch(c, &pg3, SOP_FETCH_KEYS, collect, got), SOP_OK);
    CHECK(got[0] == 7 && got[7] == 49); /* stops at the end */
    CHECK(!sop_cursor_is_positioned(c));
    sop_paging back = {0, 5, 0, SOP_BACKWARD};
    got[0] = 0;
    CHECK_RC(sop_cursor_fetch(c, &back, SOP_FETCH_KEYS, collect, got), SOP_OK);
    CHECK(got[0] == 0); /* past the end: no wrap-around */
    CHECK_RC(sop_cursor_last(c), SOP_OK);
    CHECK_RC(sop_cursor_fetch(c, &back, SOP_FETCH_KEYS, collect, got), SOP_OK);
    CHECK(got[0] == 5 && got[1] == 49 && got[5] == 45);
    sop_paging bad = {0, 0, 0, SOP_FORWARD};
    CHECK_RC(sop_cursor_fetch(c, &bad, SOP_FETCH_KEYS, collect, got), SOP_INVALID);
    sop_paging off = {1, 5, 0, SOP_FORWARD};
    CHECK_RC(sop_cursor_first(c), SOP_OK);
    sop_paging far = {100, 5, 0, SOP_FORWARD};
    got[0] = 0;
    CHECK_RC(sop_cursor_fetch(c, &far, SOP_FETCH_KEYS, collect, got), SOP_OK);
    CHECK(got[0] == 0 && !sop_cursor_is_positioned(c));
    got[0] = 0;
    CHECK_RC(sop_cursor_fetch(c, &off, SOP_FETCH_KEYS, collect, got), SOP_OK); /* past the end */
    CHECK(got[0] == 0);
    sop_cursor *fresh;
    CHECK_RC(sop_cursor_open(s, &fresh), SOP_OK);
    CHECK_RC(sop_cursor_fetch(fresh, &off, SOP_FETCH_KEYS, collect, got), SOP_NO_CURSOR);
    sop_txn_abort(t);
    sop_env_close(env);
    sop_key_free(&kb);
    rm_dir();
}

TEST(duplicates_and_ids)
{
    fresh_dir();
    sop_env *env = open_env();
    REQUIRE(env);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    sop_store_options o = opts(4, 0);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "d", &o, &s), SOP_OK);
    sop_id ids[20];
    for (int i = 0; i < 20; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        sop_val k = ikey(&kb, i % 2), val = sval(v);
        CHECK_RC(sop_add(s, &k, NULL, &val, &ids[i]), SOP_OK);
    }
    sop_cursor *c;
    CHECK_RC(sop_cursor_open(s, &c), SOP_OK);
    sop_val k = ikey(&kb, 1);
    CHECK_RC(sop_cursor_find(c, &k), SOP_OK);
    sop_val v;
    sop_id id;
    CHECK_RC(sop_cursor_get(c, NULL, NULL, &v, &id), SOP_OK);
    CHECK(!memcmp(&id, &ids[1], 16)); /* first duplicate = oldest */
    CHECK_RC(sop_cursor_find_id(c, &k, &ids[11]), SOP_OK);
    CHECK_RC(sop_cursor_get(c, NULL, NULL, &v, &id), SOP_OK);
    CHECK(v.size == 2 && !memcmp(v.data, "11", 2));
    CHECK_RC(sop_remove_id(s, &k, &ids[11]), SOP_OK);
    CHECK_RC(sop_cursor_find_id(c, &k, &ids[11]), SOP_NOTFOUND);
    uint64_t n;
    sop_store_count(s, &n);
    CHECK(n == 19);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_env_close(env);
    sop_key_free(&kb);
    rm_dir();
}

TEST(torn_tail_is_discarded)
{
    fresh_dir();
    sop_env *env = open_env();
    REQUIRE(env);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    sop_store_options o = opts(8, 1);
    for (int round = 0; round < 3; round++) {
        CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
        CHECK_RC(sop_store_open(t, "x", &o, &s), SOP_OK);
        for (int i = 0; i < 100; i++) {
            sop_val k = ikey(&kb, round * 100 + i), v = sval("v");
            CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_OK);
        }
        CHECK_RC(sop_txn_commit(t), SOP_OK);
    }
    sop_env_close(env);
    /* chop bytes off the end: the last commit must vanish entirely */
    char path[300];
    snprintf(path, sizeof path, "%s/log-00000001.sop", dir);
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    REQUIRE(truncate(path, st.st_size - 10) == 0);
    env = open_env();
    REQUIRE(env);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "x", NULL, &s), SOP_OK);
    uint64_t n;
    sop_store_count(s, &n);
    CHECK(n == 200);
    sop_txn_abort(t);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    /* and the database keeps working after it */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "x", NULL, &s), SOP_OK);
    sop_val k = ikey(&kb, 777), v = sval("v");
    CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    sop_env_close(env);
    env = open_env();
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "x", NULL, &s), SOP_OK);
    sop_store_count(s, &n);
    CHECK(n == 201);
    sop_txn_abort(t);
    sop_env_close(env);
    sop_key_free(&kb);
    rm_dir();
}

TEST(bad_input)
{
    fresh_dir();
    sop_env *env = open_env();
    REQUIRE(env);
    sop_txn *t;
    sop_store *s;
    sop_store_options o = opts(8, 1);
    CHECK_RC(sop_txn_begin(env, 7, 0, &t), SOP_INVALID);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "", &o, &s), SOP_BAD_NAME);
    CHECK_RC(sop_store_open(t, "..", &o, &s), SOP_BAD_NAME);
    CHECK_RC(sop_store_open(t, "ok", &o, &s), SOP_OK);
    unsigned char big[SOP_MAX_KEY + 1];
    memset(big, 'a', sizeof big);
    sop_val k = {sizeof big, big}, v = sval("v"), empty = {0, NULL};
    CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_KEY_TOO_LARGE);
    CHECK_RC(sop_add(s, &empty, NULL, &v, NULL), SOP_INVALID);
    sop_store_options bad = opts(1, 1);
    CHECK_RC(sop_store_open(t, "bad", &bad, &s), SOP_INVALID);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    sop_env_close(env);
    CHECK_RC(sop_env_open("", NULL, &env), SOP_INVALID);
    rm_dir();
}

static int count_logs(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '^log-' > %s/.n", dir, "/tmp");
    if (system(cmd) < 0)
        return -1;
    FILE *f = fopen("/tmp/.n", "r");
    int n = -1;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        fclose(f);
    }
    return n;
}

static void fill(sop_store *s, sop_keybuf *kb, int round, int nkeys)
{
    char val[1000];
    for (int i = 0; i < nkeys; i++) {
        memset(val, 'a' + (round % 26), sizeof val);
        snprintf(val, 32, "r%d k%d", round, i);
        sop_val k = ikey(kb, i), v = {sizeof val, val};
        CHECK_RC(sop_upsert(s, &k, NULL, &v), SOP_OK);
    }
}

static int check_round(sop_store *s, sop_keybuf *kb, int round, int nkeys)
{
    int ok = 1;
    for (int i = 0; i < nkeys; i++) {
        char want[32];
        snprintf(want, sizeof want, "r%d k%d", round, i);
        sop_val k = ikey(kb, i), v;
        if (sop_get(s, &k, NULL, &v, NULL) != SOP_OK || v.size != 1000 || strcmp(v.data, want))
            ok = 0;
    }
    return ok;
}

TEST(space_is_reclaimed_and_snapshots_survive)
{
    fresh_dir();
    sop_env *env = NULL;
    sop_env_options eo = {.cache_bytes = 1u << 20, .flags = SOP_ENV_NOSYNC, .log_file_bytes = 64u << 10}; /* 64 KiB log files */
    CHECK_RC(sop_env_open(dir, &eo, &env), SOP_OK);
    REQUIRE(env);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_store_options o = opts(8, 1);
    sop_txn *t, *reader;
    sop_store *s, *rs;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "hot", &o, &s), SOP_OK);
    fill(s, &kb, 0, 100);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    /* a long reader on round 0 */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &reader), SOP_OK);
    CHECK_RC(sop_store_open(reader, "hot", NULL, &rs), SOP_OK);
    /* thousands of small commits while the reader holds its snapshot */
    int last_round[100] = {0};
    char val[1000];
    for (int round = 1; round <= 2000; round++) {
        CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
        CHECK_RC(sop_store_open(t, "hot", NULL, &s), SOP_OK);
        for (int j = 0; j < 5; j++) {
            int i = (round * 5 + j) % 100;
            memset(val, 'a' + (round % 26), sizeof val);
            snprintf(val, 32, "r%d k%d", round, i);
            sop_val k = ikey(&kb, i), v = {sizeof val, val};
            CHECK_RC(sop_upsert(s, &k, NULL, &v), SOP_OK);
            last_round[i] = round;
        }
        CHECK_RC(sop_txn_commit(t), SOP_OK);
        if (round % 500 == 0)
            CHECK(check_round(rs, &kb, 0, 100)); /* the snapshot still reads round 0 */
    }
    sop_env_stats st;
    sop_env_stat(env, &st);
    uint64_t held = st.log_bytes;
    CHECK(check_round(rs, &kb, 0, 100));
    sop_txn_abort(reader);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    sop_env_stat(env, &st);
    /* live data is ~100 KiB of values plus nodes; the log must shrink far below
     * the ~20 MiB written */
    fprintf(stderr, "log bytes: %llu while a snapshot was held, %llu after, %d files\n", (unsigned long long)held, (unsigned long long)st.log_bytes, count_logs());
    CHECK(st.log_bytes < 2u << 20);
    CHECK(st.log_bytes < held);
    int files = count_logs();
    CHECK(files > 0 && files < 40);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_env_close(env);
    /* recovery from the checkpoint plus the log after it */
    CHECK_RC(sop_env_open(dir, &eo, &env), SOP_OK);
    REQUIRE(env);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "hot", NULL, &s), SOP_OK);
    for (int i = 0; i < 100; i++) {
        char want[32];
        snprintf(want, sizeof want, "r%d k%d", last_round[i], i);
        sop_val k = ikey(&kb, i), v;
        CHECK(sop_get(s, &k, NULL, &v, NULL) == SOP_OK && v.size == 1000 && !strcmp(v.data, want));
    }
    sop_txn_abort(t);
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    /* keep writing after recovery, then delete everything: space goes back */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "hot", NULL, &s), SOP_OK);
    for (int i = 0; i < 100; i++) {
        sop_val k = ikey(&kb, i);
        CHECK_RC(sop_remove(s, &k), SOP_OK);
    }
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    sop_env_stat(env, &st);
    CHECK(st.log_bytes < 256u << 10);
    sop_env_close(env);
    sop_key_free(&kb);
    rm_dir();
}

TEST(separate_values)
{
    fresh_dir();
    sop_env *env = NULL;
    sop_env_options eo = {.cache_bytes = 1u << 20, .flags = SOP_ENV_NOSYNC, .log_file_bytes = 128u << 10};
    CHECK_RC(sop_env_open(dir, &eo, &env), SOP_OK);
    REQUIRE(env);
    sop_keybuf kb;
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    sop_store_options o = opts(8, 1);
    o.value_placement = SOP_VALUE_BIG;
    char big[3000];
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "docs", &o, &s), SOP_OK);
    for (int i = 0; i < 200; i++) {
        memset(big, 'a' + i % 26, sizeof big);
        snprintf(big, 20, "doc %d", i);
        sop_val k = ikey(&kb, i), v = {sizeof big, big};
        CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_OK);
    }
    /* a value written in this transaction reads back before commit */
    sop_val k = ikey(&kb, 7), got;
    CHECK_RC(sop_get(s, &k, NULL, &got, NULL), SOP_OK);
    CHECK(got.size == sizeof big && !strcmp(got.data, "doc 7"));
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    sop_env_close(env);
    CHECK_RC(sop_env_open(dir, &eo, &env), SOP_OK);
    REQUIRE(env);

    sop_env_stats st0, st1;
    sop_env_stat(env, &st0);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "docs", NULL, &s), SOP_OK);
    sop_cursor *c;
    CHECK_RC(sop_cursor_open(s, &c), SOP_OK);
    int n = 0;
    for (int rc = sop_cursor_first(c); rc == SOP_OK; rc = sop_cursor_next(c)) {
        sop_val kk;
        CHECK_RC(sop_cursor_get(c, &kk, NULL, NULL, NULL), SOP_OK); /* keys only */
        n++;
    }
    CHECK(n == 200);
    sop_env_stat(env, &st1);
    CHECK(st1.value_reads == st0.value_reads); /* navigation never read a value */
    k = ikey(&kb, 42);
    CHECK_RC(sop_get(s, &k, NULL, &got, NULL), SOP_OK);
    CHECK(got.size == sizeof big && !strcmp(got.data, "doc 42"));
    sop_env_stat(env, &st1);
    CHECK(st1.value_reads == st0.value_reads + 1);
    sop_txn_abort(t);

    /* update is copy-on-write: a rollback leaves the old value intact */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "docs", NULL, &s), SOP_OK);
    sop_val nv = {3, "new"};
    CHECK_RC(sop_update(s, &k, NULL, &nv), SOP_OK);
    CHECK_RC(sop_get(s, &k, NULL, &got, NULL), SOP_OK);
    CHECK(got.size == 3 && !memcmp(got.data, "new", 3));
    sop_txn_abort(t);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "docs", NULL, &s), SOP_OK);
    CHECK_RC(sop_get(s, &k, NULL, &got, NULL), SOP_OK);
    CHECK(got.size == sizeof big && !strcmp(got.data, "doc 42"));
    sop_txn_abort(t);

    /* rewrite every value many times: old value blobs die and get reclaimed */
    for (int round = 0; round < 20; round++) {
        CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
        CHECK_RC(sop_store_open(t, "docs", NULL, &s), SOP_OK);
        for (int i = 0; i < 200; i++) {
            memset(big, 'A' + round, sizeof big);
            snprintf(big, 32, "r%d %d", round, i);
            sop_val kk = ikey(&kb, i), v = {sizeof big, big};
            CHECK_RC(sop_update(s, &kk, NULL, &v), SOP_OK);
        }
        CHECK_RC(sop_txn_commit(t), SOP_OK);
    }
    CHECK_RC(sop_env_compact(env), SOP_OK);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    sop_env_stat(env, &st1);
    CHECK(st1.log_bytes < 4u * 200 * sizeof big); /* ~600 KB live, 12 MB written */
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "docs", NULL, &s), SOP_OK);
    k = ikey(&kb, 199);
    CHECK_RC(sop_get(s, &k, NULL, &got, NULL), SOP_OK);
    CHECK(got.size == sizeof big && !strcmp(got.data, "r19 199"));
    CHECK_RC(sop_remove(s, &k), SOP_OK);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK_RC(sop_env_remove_store(env, "docs"), SOP_OK);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    CHECK_RC(sop_env_compact(env), SOP_OK);
    sop_env_stat(env, &st1);
    CHECK(st1.live_bytes < 1024); /* the store's nodes and values are all gone */
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_env_close(env);
    sop_key_free(&kb);
    rm_dir();
}

/* sop_cursor_find_get gives what sop_cursor_find then sop_cursor_get give:
 * hits (small and separately stored values, in the writing transaction and
 * in a reader), misses (not positioned on a hit, and the cursor where find
 * leaves it), NULL outputs, duplicates (the first of the key), bad input. */
TEST(find_get_matches_find_then_get)
{
    fresh_dir();
    sop_env *env = open_env();
    REQUIRE(env);
    sop_keybuf kb;
    sop_key_init(&kb);
    for (int placement = SOP_VALUE_SMALL; placement <= SOP_VALUE_BIG; placement++) {
        char name[16];
        snprintf(name, sizeof name, "fg%d", placement);
        sop_store_options o = opts(8, placement != SOP_VALUE_MEDIUM);
        o.value_placement = placement;
        for (int pass = 0; pass < 2; pass++) { /* 0: writing txn, 1: a reader after commit */
            sop_txn *t;
            sop_store *s;
            CHECK_RC(sop_txn_begin(env, pass ? SOP_TXN_READ : SOP_TXN_WRITE, 0, &t), SOP_OK);
            CHECK_RC(sop_store_open(t, name, pass ? NULL : &o, &s), SOP_OK);
            if (!pass)
                for (int i = 0; i < 300; i += 2) {
                    char v[64];
                    snprintf(v, sizeof v, "value %d", i);
                    sop_val k = ikey(&kb, i), vv = sval(v);
                    CHECK_RC(sop_add(s, &k, NULL, &vv, NULL), SOP_OK);
                    if (placement == SOP_VALUE_MEDIUM && i % 10 == 0) /* a duplicate key */
                        CHECK_RC(sop_add(s, &k, NULL, &vv, NULL), SOP_OK);
                }
            sop_cursor *a, *b;
            CHECK_RC(sop_cursor_open(s, &a), SOP_OK);
            CHECK_RC(sop_cursor_open(s, &b), SOP_OK);
            for (int i = -1; i < 302; i++) {
                sop_val k = ikey(&kb, i);
                sop_val k1, d1, v1, k2, d2, v2;
                sop_id id1, id2;
                int rc1 = sop_cursor_find_get(a, &k, &k1, &d1, &v1, &id1);
                /* results are borrowed until the next call: keep copies */
                unsigned char kc[64], vc[64];
                if (rc1 == SOP_OK) {
                    REQUIRE(k1.size <= sizeof kc && v1.size <= sizeof vc);
                    memcpy(kc, k1.data, k1.size);
                    memcpy(vc, v1.data, v1.size);
                    k1.data = kc;
                    v1.data = vc;
                }
                int rc2 = sop_cursor_find(b, &k);
                CHECK_RC(rc1, rc2);
                CHECK(sop_cursor_is_positioned(a) == sop_cursor_is_positioned(b));
                if (rc2 == SOP_OK) {
                    CHECK_RC(sop_cursor_get(b, &k2, &d2, &v2, &id2), SOP_OK);
                    CHECK(k1.size == k2.size && !memcmp(k1.data, k2.data, k1.size));
                    CHECK(d1.size == d2.size);
                    CHECK(v1.size == v2.size && !memcmp(v1.data, v2.data, v1.size));
                    CHECK(!memcmp(&id1, &id2, sizeof id1));
                } else if (sop_cursor_is_positioned(b)) {
                    /* a miss: both cursors are left on the same neighbour */
                    CHECK_RC(sop_cursor_get(a, &k1, NULL, NULL, &id1), SOP_OK);
                    CHECK_RC(sop_cursor_get(b, &k2, NULL, NULL, &id2), SOP_OK);
                    CHECK(k1.size == k2.size && !memcmp(k1.data, k2.data, k1.size));
                    CHECK(!memcmp(&id1, &id2, sizeof id1));
                }
                /* NULL outputs */
                CHECK_RC(sop_cursor_find_get(a, &k, NULL, NULL, NULL, NULL), rc2);
            }
            sop_val bad = {SOP_MAX_KEY + 1, kb.data};
            CHECK_RC(sop_cursor_find_get(a, &bad, NULL, NULL, NULL, NULL), SOP_KEY_TOO_LARGE);
            CHECK_RC(sop_cursor_find_get(NULL, &bad, NULL, NULL, NULL, NULL), SOP_MISUSE);
            CHECK_RC(pass ? (sop_txn_abort(t), SOP_OK) : sop_txn_commit(t), SOP_OK);
        }
    }
    sop_key_free(&kb);
    sop_env_close(env);
    rm_dir();
}


int main(void)
{
    RUN(separate_values);
    RUN(space_is_reclaimed_and_snapshots_survive);
    RUN(basic_add_find_commit_reopen);
    RUN(rollback_and_snapshot_isolation);
    RUN(conflict_and_multi_store);
    RUN(paging);
    RUN(duplicates_and_ids);
    RUN(torn_tail_is_discarded);
    RUN(bad_input);
    RUN(find_get_matches_find_then_get);
    TEST_EXIT();
}
