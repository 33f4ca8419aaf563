/*
 * test_merge.c - commits on a store that changed after the transaction's
 * snapshot: disjoint changes merge (also in the same leaf, also into an
 * empty store, also two creations of one store); the same item changed
 * twice, or a read that would now return something else, gives exactly one
 * winner and SOP_CONFLICT for the other, which changes nothing.  count() is
 * a read too (no phantom through it); reads answered by the transaction's
 * own writes are not failed by unrelated commits.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sop.h"
#include "test.h"

static char dir[256];
static sop_env *env;
static sop_keybuf kb;

/* keys live in a ring of buffers, so several can be in use at once */
static sop_val ikey(int64_t v)
{
    static unsigned char ring[16][32];
    static unsigned next;
    unsigned char *slot = ring[next++ % 16];
    sop_key_reset(&kb);
    sop_key_int(&kb, v, 0);
    memcpy(slot, kb.data, kb.size);
    return (sop_val){kb.size, slot};
}

static sop_val sval(const char *s)
{
    return (sop_val){strlen(s), s};
}

static void setup(int unique, int placement)
{
    snprintf(dir, sizeof dir, "/tmp/sop_merge_XXXXXX");
    if (!mkdtemp(dir))
        abort();
    sop_env_options eo = {.cache_bytes = 0, .flags = SOP_ENV_NOSYNC, .log_file_bytes = 0};
    if (sop_env_open(dir, &eo, &env) != SOP_OK)
        abort();
    sop_key_init(&kb);
    sop_txn *t;
    sop_store *s;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 64;
    o.is_unique = unique;
    o.value_placement = placement;
    sop_txn_begin(env, SOP_TXN_WRITE, 0, &t);
    sop_store_open(t, "s", &o, &s);
    for (int i = 0; i < 10; i += 2) { /* keys 0 2 4 6 8: one leaf */
        sop_val k = ikey(i), v = sval("base");
        sop_add(s, &k, NULL, &v, NULL);
    }
    if (sop_txn_commit(t) != SOP_OK)
        abort();
}

static void teardown(void)
{
    CHECK_RC(sop_env_check(env, NULL), SOP_OK);
    sop_env_close(env);
    sop_key_free(&kb);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

static sop_store *begin(sop_txn **t)
{
    sop_store *s = NULL;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, t), SOP_OK);
    CHECK_RC(sop_store_open(*t, "s", NULL, &s), SOP_OK);
    return s;
}

static uint64_t count(void)
{
    sop_txn *t;
    sop_store *s;
    uint64_t n = 0;
    sop_txn_begin(env, SOP_TXN_READ, 0, &t);
    sop_store_open(t, "s", NULL, &s);
    sop_store_count(s, &n);
    sop_txn_abort(t);
    return n;
}

static int value_is(int64_t key, const char *want)
{
    sop_txn *t;
    sop_store *s;
    sop_val v;
    sop_txn_begin(env, SOP_TXN_READ, 0, &t);
    sop_store_open(t, "s", NULL, &s);
    sop_val k = ikey(key);
    int ok = sop_get(s, &k, NULL, &v, NULL) == SOP_OK && v.size == strlen(want) &&
             !memcmp(v.data, want, v.size);
    sop_txn_abort(t);
    return ok;
}

TEST(disjoint_adds_in_one_leaf_both_commit)
{
    for (int placement = 0; placement <= 2; placement += 2) {
        setup(1, placement);
        sop_txn *t1, *t2;
        sop_store *s1 = begin(&t1), *s2 = begin(&t2);
        sop_val k1 = ikey(1), v1 = sval("one");
        CHECK_RC(sop_add(s1, &k1, NULL, &v1, NULL), SOP_OK);
        sop_val k3 = ikey(3), v3 = sval("three");
        CHECK_RC(sop_add(s2, &k3, NULL, &v3, NULL), SOP_OK);
        sop_val k4 = ikey(4), v4 = sval("four");
        CHECK_RC(sop_update(s2, &k4, NULL, &v4), SOP_OK);
        CHECK_RC(sop_txn_commit(t1), SOP_OK);
        CHECK_RC(sop_txn_commit(t2), SOP_OK); /* merged */
        CHECK(count() == 7);
        CHECK(value_is(1, "one") && value_is(3, "three") && value_is(4, "four") && value_is(0, "base"));
        teardown();
    }
}

TEST(same_item_exactly_one_wins)
{
    setup(1, 0);
    sop_txn *t1, *t2;
    sop_store *s1 = begin(&t1), *s2 = begin(&t2);
    sop_val k = ikey(2), a = sval("a"), b = sval("b");
    CHECK_RC(sop_update(s1, &k, NULL, &a), SOP_OK); /* blind writes of one item */
    CHECK_RC(sop_update(s2, &k, NULL, &b), SOP_OK);
    sop_val k9 = ikey(9), v9 = sval("nine");
    CHECK_RC(sop_add(s2, &k9, NULL, &v9, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_CONFLICT);
    CHECK(value_is(2, "a"));
    CHECK(count() == 5); /* nothing of t2 */

    /* the same new key added twice on a unique store */
    s1 = begin(&t1);
    s2 = begin(&t2);
    sop_val k5 = ikey(5);
    CHECK_RC(sop_add(s1, &k5, NULL, &a, NULL), SOP_OK);
    CHECK_RC(sop_add(s2, &k5, NULL, &b, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_CONFLICT);
    CHECK(value_is(5, "b"));

    /* remove vs update of one item */
    s1 = begin(&t1);
    s2 = begin(&t2);
    sop_val k6 = ikey(6);
    CHECK_RC(sop_remove(s1, &k6), SOP_OK);
    CHECK_RC(sop_update(s2, &k6, NULL, &b), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_CONFLICT);
    CHECK(count() == 5);
    teardown();
}

TEST(changed_reads_conflict)
{
    setup(1, 0);
    sop_txn *t1, *t2;
    sop_store *s1 = begin(&t1), *s2 = begin(&t2);
    /* t2 reads item 8 and writes elsewhere; t1 changes item 8 */
    sop_val k8 = ikey(8), got;
    CHECK_RC(sop_get(s2, &k8, NULL, &got, NULL), SOP_OK);
    sop_val k1 = ikey(1), v = sval("derived");
    CHECK_RC(sop_add(s2, &k1, NULL, &v, NULL), SOP_OK);
    sop_val nv = sval("changed");
    CHECK_RC(sop_update(s1, &k8, NULL, &nv), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_CONFLICT);
    CHECK(count() == 5);

    /* a scan sees a phantom: an item added inside the scanned range */
    s1 = begin(&t1);
    s2 = begin(&t2);
    sop_cursor *c;
    CHECK_RC(sop_cursor_open(s2, &c), SOP_OK);
    int n = 0;
    for (int rc = sop_cursor_first(c); rc == SOP_OK; rc = sop_cursor_next(c))
        n++;
    CHECK(n == 5);
    sop_val k100 = ikey(100), vs = sval("sum");
    CHECK_RC(sop_add(s2, &k100, NULL, &vs, NULL), SOP_OK);
    sop_val k3 = ikey(3), v3 = sval("3");
    CHECK_RC(sop_add(s1, &k3, NULL, &v3, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_CONFLICT);

    /* reads of other items do not conflict */
    s1 = begin(&t1);
    s2 = begin(&t2);
    sop_val k0 = ikey(0);
    CHECK_RC(sop_get(s2, &k0, NULL, &got, NULL), SOP_OK);
    CHECK_RC(sop_update(s2, &k0, NULL, &nv), SOP_OK);
    sop_val k7 = ikey(7), v7 = sval("7");
    CHECK_RC(sop_add(s1, &k7, NULL, &v7, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_OK);
    CHECK(value_is(0, "changed") && value_is(7, "7"));
    teardown();
}

TEST(concurrent_first_inserts_and_creations)
{
    setup(1, 0);
    /* an empty store: no pre-seed needed */
    sop_txn *t, *t1, *t2;
    sop_store *s, *s1, *s2;
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 4;
    o.is_unique = 1;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "empty", &o, &s), SOP_OK);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t1), SOP_OK);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t2), SOP_OK);
    CHECK_RC(sop_store_open(t1, "empty", NULL, &s1), SOP_OK);
    CHECK_RC(sop_store_open(t2, "empty", NULL, &s2), SOP_OK);
    for (int i = 0; i < 50; i++) {
        sop_val k = ikey(i * 2), k2 = ikey(i * 2 + 1), v = sval("x");
        CHECK_RC(sop_add(s1, &k, NULL, &v, NULL), SOP_OK);
        CHECK_RC(sop_add(s2, &k2, NULL, &v, NULL), SOP_OK);
    }
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_OK);
    /* two transactions creating the same store */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t1), SOP_OK);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t2), SOP_OK);
    CHECK_RC(sop_store_open(t1, "fresh", &o, &s1), SOP_OK);
    CHECK_RC(sop_store_open(t2, "fresh", &o, &s2), SOP_OK);
    sop_val ka = ikey(1), kb2 = ikey(2), v = sval("y");
    CHECK_RC(sop_add(s1, &ka, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_add(s2, &kb2, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_OK);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_READ, 0, &t), SOP_OK);
    uint64_t n = 0;
    CHECK_RC(sop_store_open(t, "empty", NULL, &s), SOP_OK);
    sop_store_count(s, &n);
    CHECK(n == 100);
    CHECK_RC(sop_store_open(t, "fresh", NULL, &s), SOP_OK);
    sop_store_count(s, &n);
    CHECK(n == 2);
    sop_txn_abort(t);

    /* two creators of one store, one of them reads it (finds a key absent):
     * the other's items would change that read */
    for (int empty = 0; empty <= 1; empty++) {
        const char *name = empty ? "fresh3" : "fresh2";
        CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t1), SOP_OK);
        CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t2), SOP_OK);
        CHECK_RC(sop_store_open(t1, name, &o, &s1), SOP_OK);
        CHECK_RC(sop_store_open(t2, name, &o, &s2), SOP_OK);
        sop_val got;
        CHECK_RC(sop_get(s2, &ka, NULL, &got, NULL), SOP_NOTFOUND);
        CHECK_RC(sop_add(s2, &kb2, NULL, &v, NULL), SOP_OK);
        if (!empty)
            CHECK_RC(sop_add(s1, &ka, NULL, &v, NULL), SOP_OK);
        CHECK_RC(sop_txn_commit(t1), SOP_OK);
        /* an empty concurrent creation leaves the read true */
        CHECK_RC(sop_txn_commit(t2), empty ? SOP_OK : SOP_CONFLICT);
    }
    /* add_if_absent in a duplicates store both create: the other's item
     * with that key makes it a conflict */
    o.is_unique = 0;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t1), SOP_OK);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t2), SOP_OK);
    CHECK_RC(sop_store_open(t1, "dups", &o, &s1), SOP_OK);
    CHECK_RC(sop_store_open(t2, "dups", &o, &s2), SOP_OK);
    CHECK_RC(sop_add(s1, &ka, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_add_if_absent(s2, &ka, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_CONFLICT);
    teardown();
}


static uint64_t count_of(const char *name)
{
    sop_txn *t;
    sop_store *s;
    uint64_t n = 0;
    sop_txn_begin(env, SOP_TXN_READ, 0, &t);
    if (sop_store_open(t, name, NULL, &s) == SOP_OK)
        sop_store_count(s, &n);
    sop_txn_abort(t);
    return n;
}

static sop_store *begin_on(sop_txn **t, const char *name)
{
    sop_store *s = NULL;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, t), SOP_OK);
    CHECK_RC(sop_store_open(*t, name, NULL, &s), SOP_OK);
    return s;
}

/* another transaction adds key k to store "s" and commits */
static void other_adds(int64_t k)
{
    sop_txn *t;
    sop_store *s = begin(&t);
    sop_val key = ikey(k), v = sval("other");
    CHECK_RC(sop_add(s, &key, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t), SOP_OK);
}

TEST(count_is_a_read)
{
    setup(1, 0);
    sop_store_options o;
    memset(&o, 0, sizeof o);
    o.slot_length = 64;
    sop_txn *t, *t1, *t2;
    sop_store *s1, *s2;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t), SOP_OK);
    CHECK_RC(sop_store_open(t, "e", &o, &s1), SOP_OK);
    CHECK_RC(sop_store_open(t, "other", &o, &s1), SOP_OK);
    CHECK_RC(sop_txn_commit(t), SOP_OK);

    /* both see an empty store and insert different keys: one wins */
    s1 = begin_on(&t1, "e");
    s2 = begin_on(&t2, "e");
    uint64_t n1 = 9, n2 = 9;
    CHECK_RC(sop_store_count(s1, &n1), SOP_OK);
    CHECK_RC(sop_store_count(s2, &n2), SOP_OK);
    CHECK(n1 == 0 && n2 == 0);
    sop_val ka = ikey(1), kb2 = ikey(2), v = sval("v");
    CHECK_RC(sop_add(s1, &ka, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_add(s2, &kb2, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_CONFLICT);
    CHECK(count_of("e") == 1);

    /* the same with a count taken after the transaction's own insert */
    s1 = begin_on(&t1, "e");
    s2 = begin_on(&t2, "e");
    sop_val k3 = ikey(3), k4 = ikey(4);
    CHECK_RC(sop_add(s1, &k3, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_add(s2, &k4, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_store_count(s2, &n2), SOP_OK);
    CHECK(n2 == 2);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_CONFLICT);
    CHECK(count_of("e") == 2);

    /* without a count: no conflict (different keys merge) */
    s1 = begin_on(&t1, "e");
    s2 = begin_on(&t2, "e");
    CHECK_RC(sop_add(s1, &k4, NULL, &v, NULL), SOP_OK);
    sop_val k5 = ikey(5);
    CHECK_RC(sop_add(s2, &k5, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_OK);
    CHECK(count_of("e") == 4);

    /* a count of a store another commit did not change holds, while that
     * commit changed another store (one this transaction writes too) */
    s1 = begin_on(&t1, "e");
    s2 = begin_on(&t2, "other");
    sop_store *o2;
    CHECK_RC(sop_store_open(t2, "e", NULL, &o2), SOP_OK);
    CHECK_RC(sop_store_count(o2, &n2), SOP_OK);
    CHECK(n2 == 4);
    CHECK_RC(sop_add(s2, &ka, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK); /* read-only: changes nothing */
    sop_store *x;
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t1), SOP_OK);
    CHECK_RC(sop_store_open(t1, "other", NULL, &x), SOP_OK);
    CHECK_RC(sop_add(x, &kb2, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_OK);
    CHECK(count_of("other") == 2);

    /* ... but not when that commit changed the counted store */
    s1 = begin_on(&t1, "e");
    s2 = begin_on(&t2, "other");
    CHECK_RC(sop_store_open(t2, "e", NULL, &o2), SOP_OK);
    CHECK_RC(sop_store_count(o2, &n2), SOP_OK);
    CHECK_RC(sop_add(s2, &k3, NULL, &v, NULL), SOP_OK);
    sop_val k9 = ikey(9);
    CHECK_RC(sop_add(s1, &k9, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_CONFLICT);
    CHECK(count_of("other") == 2);

    /* two transactions creating one store, each counting it empty */
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t1), SOP_OK);
    CHECK_RC(sop_txn_begin(env, SOP_TXN_WRITE, 0, &t2), SOP_OK);
    CHECK_RC(sop_store_open(t1, "new", &o, &s1), SOP_OK);
    CHECK_RC(sop_store_open(t2, "new", &o, &s2), SOP_OK);
    CHECK_RC(sop_store_count(s1, &n1), SOP_OK);
    CHECK_RC(sop_store_count(s2, &n2), SOP_OK);
    CHECK_RC(sop_add(s1, &ka, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_add(s2, &kb2, NULL, &v, NULL), SOP_OK);
    CHECK_RC(sop_txn_commit(t1), SOP_OK);
    CHECK_RC(sop_txn_commit(t2), SOP_CONFLICT);
    CHECK(count_of("new") == 1);
    teardown();
}

/* Reads answered by the transaction's own writes, each racing an unrelated
 * insert into the same leaf: all commit, and the result is both. */
TEST(own_write_reads_do_not_conflict)
{
    for (int unique = 0; unique <= 1; unique++) {
        setup(unique, 0);
        sop_txn *t;
        sop_store *s;
        sop_val v = sval("mine"), w = sval("mine2"), got;

        /* remove then add the same key (a replace) */
        s = begin(&t);
        sop_val k4 = ikey(4);
        CHECK_RC(sop_remove(s, &k4), SOP_OK);
        CHECK_RC(sop_add(s, &k4, NULL, &v, NULL), SOP_OK);
        other_adds(1);
        CHECK_RC(sop_txn_commit(t), SOP_OK);
        CHECK(count() == 6 && value_is(4, "mine") && value_is(1, "other"));

        /* add then update */
        s = begin(&t);
        sop_val k3 = ikey(3);
        CHECK_RC(sop_add(s, &k3, NULL, &v, NULL), SOP_OK);
        CHECK_RC(sop_update(s, &k3, NULL, &w), SOP_OK);
        other_adds(5);
        CHECK_RC(sop_txn_commit(t), SOP_OK);
        CHECK(count() == 8 && value_is(3, "mine2") && value_is(5, "other"));

        /* update then find / get the current item / get */
        s = begin(&t);
        sop_val k2 = ikey(2);
        CHECK_RC(sop_update(s, &k2, NULL, &v), SOP_OK);
        sop_cursor *c;
        CHECK_RC(sop_cursor_open(s, &c), SOP_OK);
        CHECK_RC(sop_cursor_find(c, &k2), SOP_OK);
        CHECK_RC(sop_cursor_get(c, NULL, NULL, &got, NULL), SOP_OK);
        CHECK(got.size == 4 && !memcmp(got.data, "mine", 4));
        CHECK_RC(sop_get(s, &k2, NULL, &got, NULL), SOP_OK);
        sop_val k7 = ikey(7);
        CHECK_RC(sop_add(s, &k7, NULL, &got, NULL), SOP_OK);
        other_adds(9);
        CHECK_RC(sop_txn_commit(t), SOP_OK);
        CHECK(count() == 10 && value_is(2, "mine") && value_is(7, "mine") && value_is(9, "other"));

        /* remove then scan across the removed key (keys now 0..9 but 6, 8 are
         * base: scan 3 -> 5 -> 7 after removing 4 and 6) */
        s = begin(&t);
        sop_val k6 = ikey(6);
        CHECK_RC(sop_remove(s, &k4), SOP_OK);
        CHECK_RC(sop_remove(s, &k6), SOP_OK);
        CHECK_RC(sop_cursor_open(s, &c), SOP_OK);
        CHECK_RC(sop_cursor_find(c, &k3), SOP_OK);
        int64_t want[] = {5, 7};
        for (int i = 0; i < 2; i++) {
            sop_val key;
            CHECK_RC(sop_cursor_next(c), SOP_OK);
            CHECK_RC(sop_cursor_get(c, &key, NULL, NULL, NULL), SOP_OK);
            sop_val wk = ikey(want[i]);
            CHECK(key.size == wk.size && !memcmp(key.data, wk.data, key.size));
        }
        other_adds(11);
        CHECK_RC(sop_txn_commit(t), SOP_OK);
        CHECK(count() == 9 && value_is(11, "other") && !value_is(4, "mine"));
        teardown();
    }
}

/* A large transaction removing many items (leaves merge) next to one
 * unrelated insert commits. */
TEST(many_removes_merge_with_an_insert)
{
    for (int unique = 0; unique <= 1; unique++) {
        setup(unique, 0);
        sop_txn *t;
        sop_store *s = begin(&t);
        sop_val v = sval("bulk");
        for (int i = 100; i < 4100; i += 2) {
            sop_val k = ikey(i);
            CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_OK);
        }
        CHECK_RC(sop_txn_commit(t), SOP_OK);
        s = begin(&t);
        for (int i = 100; i < 3100; i += 2) { /* 1500 of the 2000 */
            sop_val k = ikey(i);
            CHECK_RC(sop_remove(s, &k), SOP_OK);
        }
        sop_val k = ikey(3101);
        CHECK_RC(sop_add(s, &k, NULL, &v, NULL), SOP_OK);
        CHECK_RC(sop_remove(s, &k), SOP_OK); /* an add undone */
        other_adds(2001);
        CHECK_RC(sop_txn_commit(t), SOP_OK);
        CHECK(count() == 5 + 500 + 1 && value_is(2001, "other") && value_is(3100, "bulk") &&
              !value_is(3098, "bulk"));
        teardown();
    }
}

/* Reads of items the transaction did not write, or of what a concurrent
 * commit changed, still conflict after the transaction wrote the store. */
TEST(own_writes_keep_real_conflicts)
{
    for (int unique = 0; unique <= 1; unique++) {
        setup(unique, 0);
        sop_txn *t1, *t2;
        sop_store *s1, *s2;
        sop_val v = sval("mine"), w = sval("theirs"), got;
        sop_val k2 = ikey(2), k4 = ikey(4), k6 = ikey(6), k8 = ikey(8);

        /* a replace of an item another commit updated */
        s1 = begin(&t1);
        s2 = begin(&t2);
        CHECK_RC(sop_remove(s1, &k4), SOP_OK);
        CHECK_RC(sop_add(s1, &k4, NULL, &v, NULL), SOP_OK);
        CHECK_RC(sop_update(s2, &k4, NULL, &w), SOP_OK);
        CHECK_RC(sop_txn_commit(t2), SOP_OK);
        CHECK_RC(sop_txn_commit(t1), SOP_CONFLICT);
        CHECK(value_is(4, "theirs") && count() == 5);

        /* after a write, a read of an item another commit changed */
        s1 = begin(&t1);
        s2 = begin(&t2);
        CHECK_RC(sop_update(s1, &k2, NULL, &v), SOP_OK);
        CHECK_RC(sop_get(s1, &k8, NULL, &got, NULL), SOP_OK);
        CHECK_RC(sop_update(s2, &k8, NULL, &w), SOP_OK);
        CHECK_RC(sop_txn_commit(t2), SOP_OK);
        CHECK_RC(sop_txn_commit(t1), SOP_CONFLICT);
        CHECK(value_is(2, "base"));

        /* a scan from the transaction's own change to a neighbour: an item
         * added in the stretch it stepped over is a phantom */
        s1 = begin(&t1);
        s2 = begin(&t2);
        CHECK_RC(sop_update(s1, &k2, NULL, &v), SOP_OK);
        CHECK_RC(sop_remove(s1, &k4), SOP_OK);
        sop_cursor *c;
        CHECK_RC(sop_cursor_open(s1, &c), SOP_OK);
        CHECK_RC(sop_cursor_find(c, &k2), SOP_OK);
        CHECK_RC(sop_cursor_next(c), SOP_OK); /* 2 -> 6 over the removed 4 */
        sop_val k5 = ikey(5);
        CHECK_RC(sop_add(s2, &k5, NULL, &w, NULL), SOP_OK);
        CHECK_RC(sop_txn_commit(t2), SOP_OK);
        CHECK_RC(sop_txn_commit(t1), SOP_CONFLICT);
        CHECK(value_is(4, "theirs") && value_is(5, "theirs"));

        /* a removed key found absent, while another commit removed and
         * added that key again (a new item) */
        s1 = begin(&t1);
        s2 = begin(&t2);
        CHECK_RC(sop_remove(s1, &k6), SOP_OK);
        CHECK_RC(sop_get(s1, &k6, NULL, &got, NULL), SOP_NOTFOUND);
        CHECK_RC(sop_remove(s2, &k8), SOP_OK);
        CHECK_RC(sop_add(s2, &k8, NULL, &w, NULL), SOP_OK);
        CHECK_RC(sop_txn_commit(t2), SOP_OK);
        CHECK_RC(sop_txn_commit(t1), SOP_OK); /* 8 is no read of t1 */
        CHECK(!value_is(6, "base"));

        if (!unique) {
            /* duplicates: t1 removes key 2 and finds it absent; t2 adds a
             * second item with key 2: t1's find would now see it */
            s1 = begin(&t1);
            s2 = begin(&t2);
            CHECK_RC(sop_remove(s1, &k2), SOP_OK);
            CHECK_RC(sop_cursor_open(s1, &c), SOP_OK);
            CHECK_RC(sop_cursor_find(c, &k2), SOP_NOTFOUND);
            CHECK_RC(sop_add(s2, &k2, NULL, &w, NULL), SOP_OK);
            CHECK_RC(sop_txn_commit(t2), SOP_OK);
            CHECK_RC(sop_txn_commit(t1), SOP_CONFLICT);
        }
        teardown();
    }
}

int main(void)
{
    RUN(disjoint_adds_in_one_leaf_both_commit);
    RUN(same_item_exactly_one_wins);
    RUN(changed_reads_conflict);
    RUN(concurrent_first_inserts_and_creations);
    RUN(count_is_a_read);
    RUN(own_write_reads_do_not_conflict);
    RUN(many_removes_merge_with_an_insert);
    RUN(own_writes_keep_real_conflicts);
    TEST_EXIT();
}
