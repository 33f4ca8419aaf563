/*
 * test_merge.c - commits on a store that changed after the transaction's
 * snapshot: disjoint changes merge (also in the same leaf, also into an
 * empty store, also two creations of one store); the same item changed
 * twice, or a read that would now return something else, gives exactly one
 * winner and SOP_CONFLICT for the other, which changes nothing.
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
    teardown();
}

int main(void)
{
    RUN(disjoint_adds_in_one_leaf_both_commit);
    RUN(same_item_exactly_one_wins);
    RUN(changed_reads_conflict);
    RUN(concurrent_first_inserts_and_creations);
    TEST_EXIT();
}
