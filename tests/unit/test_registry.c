/*
 * test_registry.c - the MVCC registry: each snapshot sees the version it
 * should, deletions, pruning only what no snapshot can read (reporting the
 * dead bytes), the node cache and its bound.
 */
#include "registry.h"
#include "test.h"

typedef struct dead_acc {
    uint64_t bytes;
    int calls;
} dead_acc;

static void on_dead(void *arg, uint64_t loc, uint32_t len)
{
    dead_acc *d = arg;
    (void)loc;
    d->bytes += len;
    d->calls++;
}

TEST(versions_per_snapshot)
{
    registry *r;
    REQUIRE(reg_open(1 << 20, &r) == SOP_OK);
    /* lid 7: v1 at seq 1, v2 at seq 5, deleted at seq 9 */
    CHECK_RC(reg_put(r, 7, 1, 100, 10, NULL), SOP_OK);
    CHECK_RC(reg_put(r, 7, 5, 200, 20, NULL), SOP_OK);
    CHECK_RC(reg_put(r, 7, 9, 0, 0, NULL), SOP_OK);
    uint64_t loc;
    uint32_t len;
    node *n;
    CHECK_RC(reg_get(r, 7, 0, &loc, &len, &n), SOP_NOTFOUND);
    CHECK_RC(reg_get(r, 7, 1, &loc, &len, &n), SOP_OK);
    CHECK(loc == 100 && len == 10 && !n);
    CHECK_RC(reg_get(r, 7, 4, &loc, &len, &n), SOP_OK);
    CHECK(loc == 100);
    CHECK_RC(reg_get(r, 7, 5, &loc, &len, &n), SOP_OK);
    CHECK(loc == 200 && len == 20);
    CHECK_RC(reg_get(r, 7, 8, &loc, &len, &n), SOP_OK);
    CHECK(loc == 200);
    CHECK_RC(reg_get(r, 7, 9, &loc, &len, &n), SOP_NOTFOUND);
    CHECK_RC(reg_get(r, 8, 9, &loc, &len, &n), SOP_NOTFOUND);

    /* a snapshot at 4 is still open: pruning at 4 keeps v1 */
    dead_acc d = {0, 0};
    reg_prune(r, 4, on_dead, &d);
    CHECK(d.calls == 0);
    CHECK_RC(reg_get(r, 7, 4, &loc, &len, &n), SOP_OK);
    CHECK(loc == 100);
    /* oldest snapshot now 6: v1 is dead, v2 still readable by 6..8 */
    reg_prune(r, 6, on_dead, &d);
    CHECK(d.calls == 1 && d.bytes == 10);
    CHECK_RC(reg_get(r, 7, 6, &loc, &len, &n), SOP_OK);
    CHECK(loc == 200);
    /* everything at or after 9: the lid is gone entirely */
    reg_prune(r, 9, on_dead, &d);
    CHECK(d.calls == 2 && d.bytes == 30);
    reg_stats st;
    reg_stat(r, &st);
    CHECK(st.lids == 0 && st.live_bytes == 0);
    reg_close(r);
}

TEST(many_lids_grow_and_iterate)
{
    registry *r;
    REQUIRE(reg_open(0, &r) == SOP_OK);
    for (uint64_t lid = 1; lid <= 100000; lid++)
        CHECK_RC(reg_put(r, lid, 1, lid * 16, 8, NULL), SOP_OK);
    for (uint64_t lid = 1; lid <= 100000; lid += 2)
        CHECK_RC(reg_put(r, lid, 2, 0, 0, NULL), SOP_OK); /* delete odd lids */
    reg_prune(r, 2, NULL, NULL);
    reg_stats st;
    reg_stat(r, &st);
    CHECK(st.lids == 50000);
    uint64_t loc;
    uint32_t len;
    node *n;
    int ok = 1;
    for (uint64_t lid = 1; lid <= 100000; lid++) {
        int rc = reg_get(r, lid, 2, &loc, &len, &n);
        if ((lid & 1) ? rc != SOP_NOTFOUND : (rc != SOP_OK || loc != lid * 16))
            ok = 0;
    }
    CHECK(ok);
    reg_close(r);
}

TEST(node_cache_is_bounded)
{
    registry *r;
    size_t one = 0;
    {
        node *probe = node_new(1, NODE_LEAF);
        one = node_mem_size(probe);
        node_unref(probe);
    }
    REQUIRE(reg_open(one * 10, &r) == SOP_OK);
    for (uint64_t lid = 1; lid <= 100; lid++) {
        node *nn = node_new(lid, NODE_LEAF);
        REQUIRE(nn);
        CHECK_RC(reg_put(r, lid, 1, lid * 64, 8, nn), SOP_OK);
        node_unref(nn); /* the registry keeps its own reference */
    }
    reg_stats st;
    reg_stat(r, &st);
    CHECK(st.cached_bytes <= one * 10);
    CHECK(st.cached_nodes <= 10 && st.cached_nodes > 0);
    /* a cached node comes back referenced */
    uint64_t loc;
    uint32_t len;
    node *got = NULL;
    int hits = 0;
    for (uint64_t lid = 1; lid <= 100; lid++) {
        CHECK_RC(reg_get(r, lid, 1, &loc, &len, &got), SOP_OK);
        if (got) {
            CHECK(got->lid == lid);
            node_unref(got);
            hits++;
        }
    }
    CHECK(hits == (int)st.cached_nodes);
    reg_close(r);
}

int main(void)
{
    RUN(versions_per_snapshot);
    RUN(many_lids_grow_and_iterate);
    RUN(node_cache_is_bounded);
    TEST_EXIT();
}
