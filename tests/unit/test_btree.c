/*
 * test_btree.c - unit tests of the B+tree (btree.c) over an in-memory
 * copy-on-write btree_io: committed nodes are immutable and shared, get_mut
 * clones them on first use in a "transaction", commit publishes the private
 * copies, abort drops them.  Covers splits at many slot lengths, borrow /
 * merge down to empty, root collapse, cursors with duplicate keys, re-seek
 * after edits, snapshots surviving edits, read-set reporting and a long
 * model-based random test against a sorted reference array.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btree.h"
#include "test.h"

/* ------------------------------------------------------------ in-memory io */

typedef struct mem_io {
    btree_io io;
    node **clean;            /* committed (immutable) version by lid */
    node **mut;              /* this transaction's private copy */
    unsigned char *released; /* released in this transaction */
    size_t cap;
    uint64_t next_lid; /* lids start at 1 */
    long clones, allocs, releases;
    long item_reads, gap_reads, bad_reads;
    long gets; /* node lookups (get and get_mut) */
} mem_io;

static int mem_grow(mem_io *m, uint64_t lid)
{
    size_t cap = m->cap ? m->cap : 64;
    if (lid < m->cap)
        return 0;
    while (cap <= lid)
        cap *= 2;
    m->clean = realloc(m->clean, cap * sizeof(node *));
    m->mut = realloc(m->mut, cap * sizeof(node *));
    m->released = realloc(m->released, cap);
    if (!m->clean || !m->mut || !m->released)
        abort();
    memset(m->clean + m->cap, 0, (cap - m->cap) * sizeof(node *));
    memset(m->mut + m->cap, 0, (cap - m->cap) * sizeof(node *));
    memset(m->released + m->cap, 0, cap - m->cap);
    m->cap = cap;
    return 0;
}

static int mem_get(void *arg, uint64_t lid, node **out)
{
    mem_io *m = arg;
    m->gets++;
    if (lid == 0 || lid >= m->next_lid || m->released[lid])
        return sop_report(SOP_CORRUPT, "mem_io: get of bad lid %llu", (unsigned long long)lid);
    *out = m->mut[lid] ? m->mut[lid] : m->clean[lid];
    if (!*out)
        return sop_report(SOP_CORRUPT, "mem_io: lid %llu not found", (unsigned long long)lid);
    return SOP_OK;
}

static int mem_get_mut(void *arg, uint64_t lid, node **out)
{
    mem_io *m = arg;
    if (lid == 0 || lid >= m->next_lid || m->released[lid])
        return sop_report(SOP_CORRUPT, "mem_io: get_mut of bad lid %llu", (unsigned long long)lid);
    if (!m->mut[lid]) {
        if (!m->clean[lid])
            return sop_report(SOP_CORRUPT, "mem_io: lid %llu not found", (unsigned long long)lid);
        if (!(m->mut[lid] = node_clone(m->clean[lid], lid)))
            return SOP_NOMEM;
        m->clones++;
    }
    *out = m->mut[lid];
    return SOP_OK;
}

static int mem_alloc(void *arg, int kind, node **out)
{
    mem_io *m = arg;
    uint64_t lid = m->next_lid++;
    mem_grow(m, lid);
    if (!(m->mut[lid] = node_new(lid, kind)))
        return SOP_NOMEM;
    m->allocs++;
    *out = m->mut[lid];
    return SOP_OK;
}

static int mem_release(void *arg, uint64_t lid)
{
    mem_io *m = arg;
    if (lid == 0 || lid >= m->next_lid || m->released[lid] || (!m->mut[lid] && !m->clean[lid]))
        return sop_report(SOP_CORRUPT, "mem_io: release of bad lid %llu", (unsigned long long)lid);
    m->released[lid] = 1;
    node_unref(m->mut[lid]);
    m->mut[lid] = NULL;
    m->releases++;
    return SOP_OK;
}

static void mem_on_read(void *arg, const node *leaf, uint32_t from, uint32_t to)
{
    mem_io *m = arg;
    if (leaf->kind != NODE_LEAF)
        m->bad_reads++;
    else if (to + 1 == from) {
        m->gap_reads++;
        if (from > leaf->count)
            m->bad_reads++;
    } else {
        m->item_reads++;
        if (from != to || to >= leaf->count)
            m->bad_reads++;
    }
}

static void mem_init(mem_io *m)
{
    memset(m, 0, sizeof *m);
    m->next_lid = 1;
    mem_grow(m, 1);
    m->io.arg = m;
    m->io.get = mem_get;
    m->io.get_mut = mem_get_mut;
    m->io.alloc = mem_alloc;
    m->io.release = mem_release;
    m->io.on_read = mem_on_read;
}

static void mem_commit(mem_io *m)
{
    for (uint64_t lid = 1; lid < m->next_lid; lid++) {
        if (m->mut[lid]) {
            node_unref(m->clean[lid]);
            m->clean[lid] = m->mut[lid];
            m->clean[lid]->is_mutable = 0;
            m->mut[lid] = NULL;
        }
        if (m->released[lid]) {
            node_unref(m->clean[lid]);
            m->clean[lid] = NULL;
            m->released[lid] = 0;
        }
    }
}

static void mem_abort(mem_io *m)
{
    for (uint64_t lid = 1; lid < m->next_lid; lid++) {
        node_unref(m->mut[lid]);
        m->mut[lid] = NULL;
        m->released[lid] = 0;
    }
}

static size_t mem_live(const mem_io *m)
{
    size_t n = 0;
    for (uint64_t lid = 1; lid < m->next_lid; lid++)
        n += !m->released[lid] && (m->mut[lid] || m->clean[lid]);
    return n;
}

static void mem_free(mem_io *m)
{
    mem_abort(m);
    for (uint64_t lid = 1; lid < m->next_lid; lid++)
        node_unref(m->clean[lid]);
    free(m->clean);
    free(m->mut);
    free(m->released);
}

/* A read-only view of the committed nodes at one moment. */
typedef struct snap {
    btree_io io;
    node **nodes;
    size_t n;
} snap;

static int snap_get(void *arg, uint64_t lid, node **out)
{
    snap *s = arg;
    if (lid == 0 || lid >= s->n || !s->nodes[lid])
        return SOP_CORRUPT;
    *out = s->nodes[lid];
    return SOP_OK;
}

static int snap_get_mut(void *arg, uint64_t lid, node **out)
{
    (void)arg, (void)lid, (void)out;
    return SOP_READONLY;
}

static void snap_take(snap *s, const mem_io *m)
{
    memset(s, 0, sizeof *s);
    s->n = m->next_lid;
    s->nodes = calloc(s->n, sizeof(node *));
    for (uint64_t lid = 1; lid < s->n; lid++)
        if ((s->nodes[lid] = m->clean[lid]) != NULL)
            node_ref(s->nodes[lid]);
    s->io.arg = s;
    s->io.get = snap_get;
    s->io.get_mut = snap_get_mut;
}

static void snap_free(snap *s)
{
    for (size_t i = 0; i < s->n; i++)
        node_unref(s->nodes[i]);
    free(s->nodes);
}

/* ------------------------------------------------------------ items */

static void make_key(unsigned char *k, size_t *klen, uint32_t v)
{
    *klen = (size_t)snprintf((char *)k, 32, "k%08u", v);
}

static void make_id(unsigned char id[16], uint32_t v)
{
    memset(id, 0, 16);
    id[12] = (unsigned char)(v >> 24);
    id[13] = (unsigned char)(v >> 16);
    id[14] = (unsigned char)(v >> 8);
    id[15] = (unsigned char)v;
}

static void make_val(unsigned char *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(seed * 131u + i * 7u);
}

/* Item key = k<v>, id = idv, value = 8 bytes from v, in caller buffers. */
typedef struct test_item {
    unsigned char k[32], id[16], val[8];
    node_item it;
} test_item;

static const node_item *make_item(test_item *t, uint32_t v, uint32_t idv)
{
    memset(&t->it, 0, sizeof t->it);
    make_key(t->k, &t->it.klen, v);
    make_id(t->id, idv);
    make_val(t->val, sizeof t->val, v ^ idv);
    t->it.key = t->k;
    t->it.id = t->id;
    t->it.val = t->val;
    t->it.vlen = sizeof t->val;
    return &t->it;
}

static int put(btree *bt, uint32_t v, uint32_t idv)
{
    test_item t;
    return btree_insert(bt, make_item(&t, v, idv));
}

static int del(btree *bt, uint32_t v, uint32_t idv)
{
    unsigned char k[32], id[16];
    size_t klen;
    make_key(k, &klen, v);
    make_id(id, idv);
    return btree_delete(bt, k, klen, id);
}

static int item_matches(const node_item *it, uint32_t v, uint32_t idv)
{
    unsigned char k[32], id[16];
    size_t klen;
    make_key(k, &klen, v);
    make_id(id, idv);
    return it->klen == klen && memcmp(it->key, k, klen) == 0 && memcmp(it->id, id, 16) == 0;
}

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static void shuffle(uint32_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd() % i;
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static int depth_of(btree *bt)
{
    btree_cursor c;
    btree_cursor_init(&c, bt);
    if (btree_first(&c) != SOP_OK)
        return 1;
    return c.depth;
}

static int count_nodes_fn(void *arg, const node *n)
{
    (void)n;
    (*(size_t *)arg)++;
    return 0;
}

static size_t walk_count(btree *bt)
{
    size_t n = 0;
    CHECK_RC(btree_walk(bt, count_nodes_fn, &n), SOP_OK);
    return n;
}

static void new_tree(mem_io *m, btree *bt, uint32_t slot_length)
{
    mem_init(m);
    memset(bt, 0, sizeof *bt);
    bt->io = &m->io;
    bt->slot_length = slot_length;
    CHECK_RC(btree_create(&m->io, &bt->root), SOP_OK);
    mem_commit(m);
}

/* full forward and backward scans must give v = 0..n-1 (ids = v) */
static void check_scan_seq(btree *bt, uint32_t n)
{
    btree_cursor c;
    node_item it;
    uint32_t i = 0;
    int rc;
    btree_cursor_init(&c, bt);
    for (rc = btree_first(&c); rc == SOP_OK; rc = btree_next(&c), i++) {
        CHECK_RC(btree_current(&c, &it), SOP_OK);
        if (!item_matches(&it, i, i)) {
            CHECK(!"forward scan order");
            return;
        }
    }
    CHECK(rc == (n ? SOP_NOTFOUND : SOP_NOTFOUND));
    CHECK(i == n);
    CHECK(!c.positioned);
    i = n;
    for (rc = btree_last(&c); rc == SOP_OK; rc = btree_prev(&c)) {
        i--;
        CHECK_RC(btree_current(&c, &it), SOP_OK);
        if (!item_matches(&it, i, i)) {
            CHECK(!"backward scan order");
            return;
        }
    }
    CHECK(rc == SOP_NOTFOUND);
    CHECK(i == 0);
}

/* ------------------------------------------------------------ tests */

TEST(test_empty)
{
    mem_io m;
    btree bt;
    btree_cursor c;
    node_item it;
    uint64_t count = 99;
    unsigned char k[1] = {'a'};
    new_tree(&m, &bt, 4);
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == 0);
    btree_cursor_init(&c, &bt);
    CHECK_RC(btree_first(&c), SOP_NOTFOUND);
    CHECK_RC(btree_last(&c), SOP_NOTFOUND);
    CHECK_RC(btree_seek(&c, k, 1, NULL, NULL, NULL), SOP_NOTFOUND);
    CHECK_RC(btree_current(&c, &it), SOP_NO_CURSOR);
    CHECK_RC(btree_next(&c), SOP_NO_CURSOR);
    CHECK_RC(btree_prev(&c), SOP_NO_CURSOR);
    CHECK_RC(btree_delete(&bt, k, 1, NULL), SOP_NOTFOUND);
    CHECK(walk_count(&bt) == 1);
    mem_free(&m);
}

TEST(test_insert_splits)
{
    static const uint32_t slots[] = {2, 3, 4, 5, 16, 500};
    for (size_t s = 0; s < sizeof slots / sizeof slots[0]; s++) {
        mem_io m;
        btree bt;
        uint64_t count = 0;
        uint32_t n = slots[s] == 500 ? 20000 : slots[s] * slots[s] * slots[s] * 4 + 7;
        uint32_t *order = malloc(n * sizeof *order);
        new_tree(&m, &bt, slots[s]);
        for (uint32_t i = 0; i < n; i++)
            order[i] = i;
        if (s % 2)
            shuffle(order, n);
        for (uint32_t i = 0; i < n; i++) {
            CHECK_RC(put(&bt, order[i], order[i]), SOP_OK);
            if (n < 2000 || i % 997 == 0)
                CHECK_RC(btree_check(&bt, &count), SOP_OK);
        }
        CHECK_RC(btree_check(&bt, &count), SOP_OK);
        CHECK(count == n);
        CHECK(depth_of(&bt) >= 2);
        CHECK(bt.root == 1);
        CHECK_RC(put(&bt, order[n / 2], order[n / 2]), SOP_KEYEXIST);
        check_scan_seq(&bt, n);
        CHECK(walk_count(&bt) == mem_live(&m));
        free(order);
        mem_free(&m);
    }
}

TEST(test_delete_to_empty)
{
    static const uint32_t slots[] = {2, 3, 4, 5, 8, 16, 500};
    for (size_t s = 0; s < sizeof slots / sizeof slots[0]; s++) {
        mem_io m;
        btree bt;
        uint64_t count = 0;
        uint32_t n = slots[s] == 500 ? 30000 : 3000;
        uint32_t *order = malloc(n * sizeof *order);
        new_tree(&m, &bt, slots[s]);
        for (uint32_t i = 0; i < n; i++)
            order[i] = i;
        shuffle(order, n);
        for (uint32_t i = 0; i < n; i++)
            CHECK_RC(put(&bt, order[i], order[i]), SOP_OK);
        mem_commit(&m);
        /* several deletion orders: random, ascending, descending */
        if (s % 3 == 0)
            shuffle(order, n);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t v = s % 3 == 1 ? i : s % 3 == 2 ? n - 1 - i : order[i];
            CHECK_RC(del(&bt, v, v), SOP_OK);
            if (i % 97 == 0 || n - i < 50) {
                CHECK_RC(btree_check(&bt, &count), SOP_OK);
                CHECK(count == n - i - 1);
            }
            if (i % 1000 == 0)
                mem_commit(&m);
        }
        CHECK_RC(del(&bt, 0, 0), SOP_NOTFOUND);
        CHECK_RC(btree_check(&bt, &count), SOP_OK);
        CHECK(count == 0);
        CHECK(walk_count(&bt) == 1);
        CHECK(mem_live(&m) == 1);
        mem_commit(&m);
        CHECK(mem_live(&m) == 1);
        CHECK(m.clean[bt.root] && m.clean[bt.root]->kind == NODE_LEAF);
        free(order);
        mem_free(&m);
    }
}

TEST(test_root_collapse)
{
    mem_io m;
    btree bt;
    uint64_t count;
    node *r;
    uint32_t n = 0;
    new_tree(&m, &bt, 4);
    while (depth_of(&bt) < 3 && n < 100000) {
        CHECK_RC(put(&bt, n, n), SOP_OK);
        n++;
    }
    CHECK_RC(m.io.get(m.io.arg, bt.root, &r), SOP_OK);
    CHECK(r->kind == NODE_INTERNAL);
    /* delete from the top end until the tree is one leaf again */
    while (depth_of(&bt) > 1 && n > 0) {
        n--;
        CHECK_RC(del(&bt, n, n), SOP_OK);
        CHECK_RC(btree_check(&bt, &count), SOP_OK);
        CHECK(count == n);
    }
    CHECK_RC(m.io.get(m.io.arg, bt.root, &r), SOP_OK);
    CHECK(r->kind == NODE_LEAF);
    CHECK(r->count == n);
    CHECK(walk_count(&bt) == 1);
    CHECK(mem_live(&m) == 1);
    check_scan_seq(&bt, n);
    mem_free(&m);
}

TEST(test_duplicates)
{
    mem_io m;
    btree bt;
    btree_cursor c;
    node_item it;
    unsigned char k[32], id[16];
    size_t klen;
    int key_eq, exact;
    uint64_t count;
    new_tree(&m, &bt, 4);
    /* keys 10, 20, 30 with ids 1..50 each, inserted ids descending */
    for (uint32_t v = 10; v <= 30; v += 10)
        for (uint32_t idv = 50; idv >= 1; idv--)
            CHECK_RC(put(&bt, v, idv * 2), SOP_OK);
    CHECK_RC(put(&bt, 20, 40), SOP_KEYEXIST);
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == 150);
    btree_cursor_init(&c, &bt);
    /* key order first, then id order */
    CHECK_RC(btree_first(&c), SOP_OK);
    for (uint32_t v = 10; v <= 30; v += 10)
        for (uint32_t idv = 1; idv <= 50; idv++) {
            CHECK_RC(btree_current(&c, &it), SOP_OK);
            CHECK(item_matches(&it, v, idv * 2));
            CHECK_RC(btree_next(&c), v == 30 && idv == 50 ? SOP_NOTFOUND : SOP_OK);
        }
    /* seek with no id: the smallest id of the key */
    make_key(k, &klen, 20);
    CHECK_RC(btree_seek(&c, k, klen, NULL, &key_eq, &exact), SOP_OK);
    CHECK(key_eq && !exact);
    CHECK_RC(btree_current(&c, &it), SOP_OK);
    CHECK(item_matches(&it, 20, 2));
    /* exact id */
    make_id(id, 60);
    CHECK_RC(btree_seek(&c, k, klen, id, &key_eq, &exact), SOP_OK);
    CHECK(key_eq && exact);
    CHECK_RC(btree_current(&c, &it), SOP_OK);
    CHECK(item_matches(&it, 20, 60));
    CHECK_RC(btree_prev(&c), SOP_OK);
    CHECK_RC(btree_current(&c, &it), SOP_OK);
    CHECK(item_matches(&it, 20, 58));
    /* missing id between two: lands on the next id */
    make_id(id, 61);
    CHECK_RC(btree_seek(&c, k, klen, id, &key_eq, &exact), SOP_OK);
    CHECK(key_eq && !exact);
    CHECK_RC(btree_current(&c, &it), SOP_OK);
    CHECK(item_matches(&it, 20, 62));
    /* past the last id of key 20: first item of key 30 */
    make_id(id, 101);
    CHECK_RC(btree_seek(&c, k, klen, id, &key_eq, &exact), SOP_OK);
    CHECK(!key_eq && !exact);
    CHECK_RC(btree_current(&c, &it), SOP_OK);
    CHECK(item_matches(&it, 30, 2));
    /* past everything */
    make_key(k, &klen, 30);
    CHECK_RC(btree_seek(&c, k, klen, id, &key_eq, &exact), SOP_NOTFOUND);
    CHECK(!c.positioned);
    /* before everything */
    make_key(k, &klen, 1);
    CHECK_RC(btree_seek(&c, k, klen, NULL, &key_eq, &exact), SOP_OK);
    CHECK(!key_eq);
    CHECK_RC(btree_current(&c, &it), SOP_OK);
    CHECK(item_matches(&it, 10, 2));
    CHECK_RC(btree_prev(&c), SOP_NOTFOUND);
    CHECK_RC(btree_current(&c, &it), SOP_NO_CURSOR);
    /* delete all ids of key 20 */
    for (uint32_t idv = 1; idv <= 50; idv++)
        CHECK_RC(del(&bt, 20, idv * 2), SOP_OK);
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == 100);
    make_key(k, &klen, 20);
    CHECK_RC(btree_seek(&c, k, klen, NULL, &key_eq, &exact), SOP_OK);
    CHECK(!key_eq);
    CHECK_RC(btree_current(&c, &it), SOP_OK);
    CHECK(item_matches(&it, 30, 2));
    mem_free(&m);
}

/* btree_insert_unique against a reference: a tree of keys with one item
 * each (random ids, slot length 4 so neighbours often sit in other leaves),
 * then unique inserts of present and absent keys with random ids. */
static int put_unique(btree *bt, uint32_t v, uint32_t idv, unsigned char found[16])
{
    test_item t;
    return btree_insert_unique(bt, make_item(&t, v, idv), found);
}

TEST(test_insert_unique)
{
    mem_io m;
    btree bt;
    new_tree(&m, &bt, 4);
    enum { KEYS = 3000 };
    static uint32_t idof[KEYS]; /* 0 = absent */
    memset(idof, 0, sizeof idof);
    unsigned char found[16], want[16];
    for (int n = 0; n < 20000; n++) {
        uint32_t v = rnd() % KEYS, idv = 1 + rnd() % 1000000;
        int rc = put_unique(&bt, v, idv, found);
        if (idof[v]) {
            CHECK_RC(rc, SOP_KEYEXIST);
            make_id(want, idof[v]);
            CHECK(memcmp(found, want, 16) == 0);
        } else {
            CHECK_RC(rc, SOP_OK);
            idof[v] = idv;
        }
        if (n % 7 == 3) { /* and deletions, so separators outlive their keys */
            uint32_t d = rnd() % KEYS;
            if (idof[d]) {
                CHECK_RC(del(&bt, d, idof[d]), SOP_OK);
                idof[d] = 0;
            }
        }
    }
    uint64_t count = 0, present = 0;
    for (int v = 0; v < KEYS; v++)
        present += idof[v] != 0;
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == present);
    mem_free(&m);
}

/* Keys arriving in order fill their nodes (append splits keep the left half
 * full), by count and by bytes; keys in random order split evenly. */
TEST(test_append_split)
{
    mem_io m;
    btree bt;
    uint64_t count;
    /* by count: slot length 8 (min fill 2), 4,000 keys in order: leaves of 7
     * (~570, plus ~100 internal nodes) where even splits give leaves of 4-5 */
    new_tree(&m, &bt, 8);
    for (uint32_t v = 0; v < 4000; v++)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == 4000);
    size_t nodes = walk_count(&bt);
    CHECK(nodes < 720);
    check_scan_seq(&bt, 4000);
    /* deleting and re-adding in order still gives a valid tree */
    for (uint32_t v = 0; v < 4000; v += 2)
        CHECK_RC(del(&bt, v, v), SOP_OK);
    for (uint32_t v = 0; v < 4000; v += 2)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    check_scan_seq(&bt, 4000);
    mem_free(&m);

    /* by bytes: slot length 1000, 20,000 keys of ~40 bytes in order: leaves
     * near BTREE_MAX_NODE_BYTES */
    new_tree(&m, &bt, 1000);
    for (uint32_t v = 0; v < 20000; v++)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == 20000);
    size_t seq_nodes = walk_count(&bt);
    mem_free(&m);
    new_tree(&m, &bt, 1000);
    uint32_t *order = malloc(20000 * sizeof *order);
    REQUIRE(order);
    for (uint32_t v = 0; v < 20000; v++)
        order[v] = v;
    shuffle(order, 20000);
    for (uint32_t v = 0; v < 20000; v++)
        CHECK_RC(put(&bt, order[v], order[v]), SOP_OK);
    free(order);
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    size_t rand_nodes = walk_count(&bt);
    CHECK(seq_nodes * 10 < rand_nodes * 8); /* in order: clearly fewer, fuller nodes */
    check_scan_seq(&bt, 20000);
    mem_free(&m);
}

TEST(test_reseek)
{
    mem_io m;
    btree bt;
    btree_cursor c, c2;
    node_item it;
    unsigned char k[32], id[16];
    size_t klen;
    new_tree(&m, &bt, 4);
    for (uint32_t v = 0; v < 200; v += 2)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    btree_cursor_init(&c, &bt);
    btree_cursor_init(&c2, &bt);
    make_key(k, &klen, 100);
    make_id(id, 100);
    CHECK_RC(btree_seek(&c, k, klen, id, NULL, NULL), SOP_OK);
    CHECK_RC(btree_seek(&c2, k, klen, id, NULL, NULL), SOP_OK);
    CHECK_RC(btree_next(&c2), SOP_OK); /* on 102 */
    /* many edits around the cursor: splits and merges move it between leaves */
    for (uint32_t v = 1; v < 200; v += 2)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    CHECK_RC(btree_current(&c, &it), SOP_OK);
    CHECK(item_matches(&it, 100, 100));
    CHECK_RC(btree_next(&c), SOP_OK);
    CHECK_RC(btree_current(&c, &it), SOP_OK);
    CHECK(item_matches(&it, 101, 101));
    for (uint32_t v = 0; v < 100; v++)
        CHECK_RC(del(&bt, v, v), SOP_OK);
    CHECK_RC(btree_prev(&c), SOP_OK);
    CHECK_RC(btree_current(&c, &it), SOP_OK);
    CHECK(item_matches(&it, 100, 100));
    CHECK_RC(btree_prev(&c), SOP_NOTFOUND);
    /* the current item deleted: NO_CURSOR, then unpositioned */
    CHECK_RC(del(&bt, 102, 102), SOP_OK);
    CHECK_RC(btree_next(&c2), SOP_NO_CURSOR);
    CHECK(!c2.positioned);
    CHECK_RC(btree_current(&c2, &it), SOP_NO_CURSOR);
    CHECK_RC(btree_seek(&c2, k, klen, id, NULL, NULL), SOP_OK);
    CHECK_RC(del(&bt, 100, 100), SOP_OK);
    CHECK_RC(btree_current(&c2, &it), SOP_NO_CURSOR);
    /* re-insert: a fresh seek works again */
    CHECK_RC(put(&bt, 100, 100), SOP_OK);
    CHECK_RC(btree_seek(&c2, k, klen, id, NULL, NULL), SOP_OK);
    CHECK_RC(btree_next(&c2), SOP_OK);
    CHECK_RC(btree_current(&c2, &it), SOP_OK);
    CHECK(item_matches(&it, 101, 101));
    mem_free(&m);
}

TEST(test_replace)
{
    mem_io m;
    btree bt;
    btree_cursor c;
    node_item it = {0}, got;
    unsigned char k[32], id[16], doc[5] = "hello", val[300];
    uint64_t count;
    new_tree(&m, &bt, 8);
    for (uint32_t v = 0; v < 100; v++)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    make_key(k, &it.klen, 42);
    make_id(id, 42);
    make_val(val, sizeof val, 7);
    it.key = k;
    it.id = id;
    it.flags = ITEM_HAS_DOC;
    it.doc = doc;
    it.dlen = sizeof doc;
    it.val = val;
    it.vlen = sizeof val;
    CHECK_RC(btree_replace(&bt, &it), SOP_OK);
    btree_cursor_init(&c, &bt);
    CHECK_RC(btree_seek(&c, k, it.klen, id, NULL, NULL), SOP_OK);
    CHECK_RC(btree_current(&c, &got), SOP_OK);
    CHECK(got.flags == ITEM_HAS_DOC && got.dlen == 5 && memcmp(got.doc, "hello", 5) == 0);
    CHECK(got.vlen == sizeof val && memcmp(got.val, val, sizeof val) == 0);
    make_id(id, 43);
    CHECK_RC(btree_replace(&bt, &it), SOP_NOTFOUND);
    /* replacing in place many times keeps the heap bounded (garbage compaction) */
    make_id(id, 42);
    for (int i = 0; i < 1000; i++) {
        make_val(val, sizeof val, (uint32_t)i);
        CHECK_RC(btree_replace(&bt, &it), SOP_OK);
    }
    CHECK_RC(btree_seek(&c, k, it.klen, id, NULL, NULL), SOP_OK);
    CHECK_RC(btree_current(&c, &got), SOP_OK);
    CHECK(got.vlen == sizeof val && memcmp(got.val, val, sizeof val) == 0);
    {
        node *leaf;
        CHECK_RC(m.io.get(m.io.arg, c.path[c.depth - 1].lid, &leaf), SOP_OK);
        CHECK(leaf->heap_len < 8 * 400 * 4);
    }
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == 100);
    mem_free(&m);
}

TEST(test_key_limits)
{
    mem_io m;
    btree bt;
    btree_cursor c;
    node_item it = {0}, got;
    static unsigned char big[SOP_MAX_KEY + 1];
    unsigned char id[16] = {0};
    int key_eq, exact;
    new_tree(&m, &bt, 4);
    memset(big, 'x', sizeof big);
    it.key = big;
    it.klen = SOP_MAX_KEY + 1;
    it.id = id;
    CHECK_RC(btree_insert(&bt, &it), SOP_KEY_TOO_LARGE);
    /* maximum-length keys, differing in the last byte, and an empty key */
    for (int i = 0; i < 20; i++) {
        big[SOP_MAX_KEY - 1] = (unsigned char)('a' + i);
        it.klen = SOP_MAX_KEY;
        CHECK_RC(btree_insert(&bt, &it), SOP_OK);
    }
    it.klen = 0;
    CHECK_RC(btree_insert(&bt, &it), SOP_OK);
    CHECK_RC(btree_check(&bt, NULL), SOP_OK);
    btree_cursor_init(&c, &bt);
    CHECK_RC(btree_first(&c), SOP_OK);
    CHECK_RC(btree_current(&c, &got), SOP_OK);
    CHECK(got.klen == 0);
    big[SOP_MAX_KEY - 1] = 'c';
    CHECK_RC(btree_seek(&c, big, SOP_MAX_KEY, id, &key_eq, &exact), SOP_OK);
    CHECK(key_eq && exact);
    CHECK_RC(put(&bt, 5, 5), SOP_OK); /* forces a re-seek with a 4096-byte key */
    CHECK_RC(btree_next(&c), SOP_OK);
    CHECK_RC(btree_current(&c, &got), SOP_OK);
    CHECK(got.klen == SOP_MAX_KEY && got.key[SOP_MAX_KEY - 1] == 'd');
    mem_free(&m);
}

TEST(test_big_values)
{
    mem_io m;
    btree bt;
    btree_cursor c;
    node_item it = {0}, got;
    unsigned char k[32], id[16] = {0};
    size_t vlen = (size_t)BTREE_MAX_NODE_BYTES / 8 * 3; /* sizes relative to the node byte limit */
    unsigned char *val = malloc(vlen);
    uint64_t count;
    uint32_t n = 0;
    int rc;
    new_tree(&m, &bt, 1000);
    it.key = k;
    it.id = id;
    it.val = val;
    for (uint32_t v = 0; v < 12; v++) {
        make_key(k, &it.klen, v * 10);
        make_val(val, vlen, v);
        it.vlen = v == 5 ? (size_t)BTREE_MAX_NODE_BYTES * 3 / 2 : vlen; /* one entry over the node limit */
        if (v == 5) {
            unsigned char *bigger = malloc(it.vlen);
            memset(bigger, 5, it.vlen);
            it.val = bigger;
            CHECK_RC(btree_insert(&bt, &it), SOP_OK);
            free(bigger);
            it.val = val;
        } else {
            CHECK_RC(btree_insert(&bt, &it), SOP_OK);
        }
        /* small items around it */
        for (uint32_t j = 1; j < 4; j++) {
            node_item small = {0};
            unsigned char sk[32];
            make_key(sk, &small.klen, v * 10 + j);
            small.key = sk;
            small.id = id;
            CHECK_RC(btree_insert(&bt, &small), SOP_OK);
        }
    }
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == 48);
    CHECK(depth_of(&bt) >= 2);
    /* every leaf respects the byte limit unless it holds a single entry */
    btree_cursor_init(&c, &bt);
    for (rc = btree_first(&c); rc == SOP_OK; rc = btree_next(&c), n++) {
        node *leaf;
        CHECK_RC(m.io.get(m.io.arg, c.path[c.depth - 1].lid, &leaf), SOP_OK);
        CHECK(node_live_bytes(leaf) <= BTREE_MAX_NODE_BYTES || leaf->count == 1);
        CHECK_RC(btree_current(&c, &got), SOP_OK);
    }
    CHECK(n == 48);
    make_key(k, &it.klen, 70);
    CHECK_RC(btree_seek(&c, k, it.klen, id, NULL, NULL), SOP_OK);
    CHECK_RC(btree_current(&c, &got), SOP_OK);
    make_val(val, vlen, 7);
    CHECK(got.vlen == vlen && memcmp(got.val, val, vlen) == 0);
    free(val);
    mem_free(&m);
}

/* Committed nodes must never change: a snapshot taken before edits keeps
 * reading the old tree, an aborted transaction leaves the committed tree as
 * it was, and encodings of shared nodes stay byte-identical. */
TEST(test_cow_snapshot)
{
    mem_io m;
    btree bt, sbt;
    snap s;
    uint64_t count;
    unsigned char **enc;
    size_t *enc_len;
    new_tree(&m, &bt, 5);
    for (uint32_t v = 0; v < 2000; v += 2)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    mem_commit(&m);
    snap_take(&s, &m);
    enc = calloc(s.n, sizeof *enc);
    enc_len = calloc(s.n, sizeof *enc_len);
    for (size_t i = 1; i < s.n; i++)
        if (s.nodes[i]) {
            enc_len[i] = node_encoded_size(s.nodes[i]);
            enc[i] = malloc(enc_len[i]);
            node_encode(s.nodes[i], enc[i], NULL, NULL);
        }
    sbt = bt;
    sbt.io = &s.io;
    /* a transaction that is aborted */
    for (uint32_t v = 1; v < 2000; v += 2)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    for (uint32_t v = 0; v < 1000; v += 2)
        CHECK_RC(del(&bt, v, v), SOP_OK);
    CHECK(m.clones > 0);
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == 1500);
    mem_abort(&m);
    btree_forget(&bt);
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == 1000);
    /* a transaction that commits */
    for (uint32_t v = 0; v < 2000; v += 4)
        CHECK_RC(del(&bt, v, v), SOP_OK);
    for (uint32_t v = 1; v < 2000; v += 2)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    mem_commit(&m);
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == 1500);
    /* the snapshot still reads the original tree */
    CHECK_RC(btree_check(&sbt, &count), SOP_OK);
    CHECK(count == 1000);
    {
        btree_cursor c;
        node_item it;
        uint32_t v = 0;
        int rc;
        btree_cursor_init(&c, &sbt);
        for (rc = btree_first(&c); rc == SOP_OK; rc = btree_next(&c), v += 2) {
            CHECK_RC(btree_current(&c, &it), SOP_OK);
            if (!item_matches(&it, v, v)) {
                CHECK(!"snapshot content changed");
                break;
            }
        }
        CHECK(v == 2000);
    }
    for (size_t i = 1; i < s.n; i++)
        if (s.nodes[i]) {
            unsigned char *now = malloc(enc_len[i]);
            CHECK(node_encoded_size(s.nodes[i]) == enc_len[i]);
            node_encode(s.nodes[i], now, NULL, NULL);
            CHECK(memcmp(now, enc[i], enc_len[i]) == 0);
            CHECK(!s.nodes[i]->is_mutable);
            free(now);
            free(enc[i]);
        }
    free(enc);
    free(enc_len);
    snap_free(&s);
    mem_free(&m);
}

TEST(test_on_read)
{
    mem_io m;
    btree bt;
    btree_cursor c;
    node_item it;
    unsigned char k[32];
    size_t klen;
    new_tree(&m, &bt, 4);
    for (uint32_t v = 0; v < 100; v += 2)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    btree_cursor_init(&c, &bt);
    m.item_reads = m.gap_reads = 0;
    make_key(k, &klen, 51);
    CHECK_RC(btree_seek(&c, k, klen, NULL, NULL, NULL), SOP_OK);
    CHECK(m.gap_reads >= 1 && m.item_reads == 0);
    CHECK_RC(btree_current(&c, &it), SOP_OK);
    CHECK(m.item_reads == 1);
    m.item_reads = m.gap_reads = 0;
    for (int i = 0; i < 10; i++)
        CHECK_RC(btree_next(&c), SOP_OK);
    CHECK(m.gap_reads >= 10);
    CHECK_RC(btree_first(&c), SOP_OK);
    CHECK_RC(btree_last(&c), SOP_OK);
    CHECK(m.bad_reads == 0);
    mem_free(&m);
}

/* btree_check finds broken trees (edits made behind the tree's back). */
TEST(test_check_detects)
{
    mem_io m;
    btree bt;
    node *r, *leaf;
    node_item it;
    uint64_t saved;
    new_tree(&m, &bt, 4);
    for (uint32_t v = 0; v < 200; v++)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    mem_commit(&m);
    CHECK_RC(btree_check(&bt, NULL), SOP_OK);
    /* a separator larger than the items to its right */
    CHECK_RC(m.io.get_mut(m.io.arg, bt.root, &r), SOP_OK);
    REQUIRE(r->kind == NODE_INTERNAL && r->count >= 2);
    CHECK_RC(node_internal_set_key(r, 0, (const unsigned char *)"zzz", 3, NULL), SOP_OK);
    CHECK_RC(btree_check(&bt, NULL), SOP_CORRUPT);
    mem_abort(&m);
    CHECK_RC(btree_check(&bt, NULL), SOP_OK);
    /* a child referenced twice */
    CHECK_RC(m.io.get_mut(m.io.arg, bt.root, &r), SOP_OK);
    saved = r->child[1];
    r->child[1] = r->child[0];
    CHECK_RC(btree_check(&bt, NULL), SOP_CORRUPT);
    r->child[1] = saved;
    CHECK_RC(btree_check(&bt, NULL), SOP_OK);
    mem_abort(&m);
    /* an underfull leaf, and items out of order inside a leaf */
    {
        btree_cursor c;
        btree_cursor_init(&c, &bt);
        CHECK_RC(btree_first(&c), SOP_OK);
        CHECK_RC(m.io.get_mut(m.io.arg, c.path[c.depth - 1].lid, &leaf), SOP_OK);
        node_truncate(leaf, 0);
        CHECK_RC(btree_check(&bt, NULL), SOP_CORRUPT);
        mem_abort(&m);
        CHECK_RC(m.io.get_mut(m.io.arg, c.path[c.depth - 1].lid, &leaf), SOP_OK);
        REQUIRE(leaf->count >= 1);
        node_get(leaf, 0, &it);
        {
            node_item copy = it;
            unsigned char id[16];
            make_id(id, 0xFFFFFFu);
            copy.id = id;
            CHECK_RC(node_leaf_insert(leaf, leaf->count, &copy), SOP_OK);
        }
        CHECK_RC(btree_check(&bt, NULL), SOP_CORRUPT);
        mem_abort(&m);
    }
    CHECK_RC(btree_check(&bt, NULL), SOP_OK);
    mem_free(&m);
}

/* ------------------------------------------------------------ model test */

typedef struct ref_item {
    unsigned char key[12];
    size_t klen;
    unsigned char id[16];
    uint32_t ver; /* value/doc content seed */
} ref_item;

typedef struct model {
    ref_item *a;
    size_t n, cap;
} model;

static int ref_cmp(const ref_item *x, const unsigned char *key, size_t klen, const unsigned char *id)
{
    return node_cmp(x->key, x->klen, x->id, key, klen, id);
}

static size_t ref_lower(const model *md, const unsigned char *key, size_t klen, const unsigned char *id)
{
    size_t lo = 0, hi = md->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ref_cmp(&md->a[mid], key, klen, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int model_big; /* 1: every fourth value is 200-800 KB (byte-driven splits and merges) */
static unsigned char model_vbuf[2][1 << 20];

static void ref_to_item(const ref_item *r, node_item *it, unsigned char *vbuf, unsigned char *dbuf)
{
    memset(it, 0, sizeof *it);
    it->key = r->key;
    it->klen = r->klen;
    it->id = r->id;
    it->vlen = r->ver % 7 == 0 ? 150 : r->ver % 13;
    if (model_big && r->ver % 4 == 0)
        it->vlen = 200000 + r->ver % 600000;
    make_val(vbuf, it->vlen, r->ver);
    it->val = vbuf;
    if (r->ver % 3 == 0) {
        it->flags = ITEM_HAS_DOC;
        it->dlen = r->ver % 5;
        make_val(dbuf, it->dlen, r->ver + 1);
        it->doc = dbuf;
    }
}

static int item_equals_ref(const node_item *it, const ref_item *r)
{
    unsigned char dbuf[16];
    node_item w;
    ref_to_item(r, &w, model_vbuf[0], dbuf);
    return it->klen == w.klen && memcmp(it->key, w.key, w.klen) == 0 &&
           memcmp(it->id, w.id, 16) == 0 && it->flags == w.flags && it->vlen == w.vlen &&
           (w.vlen == 0 || memcmp(it->val, w.val, w.vlen) == 0) && it->dlen == w.dlen &&
           (w.dlen == 0 || memcmp(it->doc, w.doc, w.dlen) == 0);
}

static void rand_key(unsigned char *key, size_t *klen, unsigned char *id, uint32_t keyspace)
{
    uint32_t v = rnd() % keyspace;
    *klen = (size_t)(1 + v % 11);
    for (size_t i = 0; i < *klen; i++)
        key[i] = (unsigned char)('a' + (v >> (i % 4 * 2)) % 4);
    memset(id, 0, 16);
    id[15] = (unsigned char)(rnd() % 4);
    if (rnd() % 8 == 0)
        id[0] = (unsigned char)rnd();
}

static int model_run(uint32_t slot_length, long ops, uint32_t keyspace, int check_every)
{
    mem_io m;
    btree bt;
    model md = {0}, saved = {0};
    btree_cursor c, pc;
    ref_item pc_item;
    int pc_on = 0;
    int failures_before = test_failures_;
    uint64_t count;
    new_tree(&m, &bt, slot_length);
    btree_cursor_init(&c, &bt);
    btree_cursor_init(&pc, &bt);
    for (long op = 0; op < ops && test_failures_ - failures_before < 5; op++) {
        unsigned r = rnd() % 100;
        unsigned char key[12], id[16], *vbuf = model_vbuf[1], dbuf[16];
        size_t klen;
        node_item it, got;
        int rc, key_eq, exact;
        rand_key(key, &klen, id, keyspace);
        size_t pos = ref_lower(&md, key, klen, id);
        int present = pos < md.n && ref_cmp(&md.a[pos], key, klen, id) == 0;
        if (r < 40 || (r < 55 && md.n > 0)) {
            ref_item ri = {0};
            memcpy(ri.key, key, klen);
            ri.klen = klen;
            memcpy(ri.id, id, 16);
            ri.ver = rnd();
            if (r >= 40) { /* insert next to an existing item: same key */
                size_t j = rnd() % md.n;
                memcpy(ri.key, md.a[j].key, md.a[j].klen);
                ri.klen = md.a[j].klen;
                klen = ri.klen;
                memcpy(key, ri.key, klen);
                pos = ref_lower(&md, key, klen, id);
                present = pos < md.n && ref_cmp(&md.a[pos], key, klen, id) == 0;
            }
            ref_to_item(&ri, &it, vbuf, dbuf);
            rc = btree_insert(&bt, &it);
            CHECK_RC(rc, present ? SOP_KEYEXIST : SOP_OK);
            if (!present && rc == SOP_OK) {
                if (md.n == md.cap) {
                    md.cap = md.cap ? 2 * md.cap : 256;
                    md.a = realloc(md.a, md.cap * sizeof *md.a);
                }
                memmove(md.a + pos + 1, md.a + pos, (md.n - pos) * sizeof *md.a);
                md.a[pos] = ri;
                md.n++;
            }
        } else if (r < 75) { /* delete: mostly existing items */
            if (md.n && rnd() % 4) {
                pos = rnd() % md.n;
                klen = md.a[pos].klen;
                memcpy(key, md.a[pos].key, klen);
                memcpy(id, md.a[pos].id, 16);
                present = 1;
            }
            CHECK_RC(btree_delete(&bt, key, klen, id), present ? SOP_OK : SOP_NOTFOUND);
            if (present) {
                memmove(md.a + pos, md.a + pos + 1, (md.n - pos - 1) * sizeof *md.a);
                md.n--;
            }
        } else if (r < 80) { /* replace */
            if (md.n) {
                pos = rnd() % md.n;
                md.a[pos].ver = rnd();
                ref_to_item(&md.a[pos], &it, vbuf, dbuf);
                CHECK_RC(btree_replace(&bt, &it), SOP_OK);
            }
        } else if (r < 92) { /* seek, then scan a few items either way */
            const unsigned char *sid = rnd() % 2 ? id : NULL;
            size_t at = ref_lower(&md, key, klen, sid);
            int fwd = rnd() % 2, steps = (int)(rnd() % 12);
            rc = btree_seek(&c, key, klen, sid, &key_eq, &exact);
            if (at == md.n) {
                CHECK_RC(rc, SOP_NOTFOUND);
                continue;
            }
            CHECK_RC(rc, SOP_OK);
            CHECK(key_eq == (md.a[at].klen == klen && memcmp(md.a[at].key, key, klen) == 0));
            CHECK(exact == (sid && ref_cmp(&md.a[at], key, klen, sid) == 0));
            for (int s = 0; s <= steps; s++) {
                CHECK_RC(btree_current(&c, &got), SOP_OK);
                if (!item_equals_ref(&got, &md.a[at])) {
                    CHECK(!"cursor item differs from the model");
                    break;
                }
                if (fwd ? at + 1 == md.n : at == 0) {
                    CHECK_RC(fwd ? btree_next(&c) : btree_prev(&c), SOP_NOTFOUND);
                    break;
                }
                at = fwd ? at + 1 : at - 1;
                CHECK_RC(fwd ? btree_next(&c) : btree_prev(&c), SOP_OK);
            }
            if (rnd() % 4 == 0 && c.positioned) { /* keep it as the persistent cursor */
                pc = c;
                pc_item = md.a[at];
                pc_on = 1;
            }
        } else if (r < 97) { /* the persistent cursor survives unrelated edits */
            if (pc_on) {
                size_t at = ref_lower(&md, pc_item.key, pc_item.klen, pc_item.id);
                int there = at < md.n && ref_cmp(&md.a[at], pc_item.key, pc_item.klen, pc_item.id) == 0;
                rc = btree_current(&pc, &got);
                CHECK_RC(rc, there ? SOP_OK : SOP_NO_CURSOR);
                if (there && rc == SOP_OK) {
                    CHECK(item_equals_ref(&got, &md.a[at]));
                    rc = btree_next(&pc);
                    CHECK_RC(rc, at + 1 < md.n ? SOP_OK : SOP_NOTFOUND);
                    if (rc == SOP_OK) {
                        pc_item = md.a[at + 1];
                        CHECK_RC(btree_current(&pc, &got), SOP_OK);
                        CHECK(item_equals_ref(&got, &md.a[at + 1]));
                    } else {
                        pc_on = 0;
                    }
                } else {
                    pc_on = 0;
                    CHECK(!pc.positioned);
                }
            }
        } else if (r < 99) { /* commit, remembering the committed model */
            mem_commit(&m);
            saved.n = md.n;
            if (saved.cap < md.n) {
                saved.cap = md.cap;
                saved.a = realloc(saved.a, saved.cap * sizeof *saved.a);
            }
            if (md.n)
                memcpy(saved.a, md.a, md.n * sizeof *md.a);
        } else { /* abort: back to the last commit */
            mem_abort(&m);
            btree_forget(&bt);
            md.n = saved.n;
            if (md.cap < saved.n) {
                md.cap = saved.cap;
                md.a = realloc(md.a, md.cap * sizeof *md.a);
            }
            if (saved.n)
                memcpy(md.a, saved.a, saved.n * sizeof *md.a);
        }
        if (op % check_every == check_every - 1) {
            CHECK_RC(btree_check(&bt, &count), SOP_OK);
            CHECK(count == md.n);
        }
    }
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == md.n);
    /* full scan against the model */
    {
        size_t i = 0;
        int rc;
        node_item got;
        for (rc = btree_first(&c); rc == SOP_OK && i < md.n; rc = btree_next(&c), i++) {
            CHECK_RC(btree_current(&c, &got), SOP_OK);
            if (!item_equals_ref(&got, &md.a[i])) {
                CHECK(!"final scan differs from the model");
                break;
            }
        }
        CHECK(i == md.n);
    }
    CHECK(m.bad_reads == 0);
    if (model_big) /* the large values spread over several leaves */
        CHECK(walk_count(&bt) > 2);
    free(md.a);
    free(saved.a);
    mem_free(&m);
    return test_failures_ == failures_before;
}

TEST(test_model)
{
    static const uint32_t slots[] = {4, 5, 7, 16, 64, 1000};
    long total = 0;
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        long ops = slots[i] == 1000 ? 40000 : 25000;
        CHECK(model_run(slots[i], ops, slots[i] < 16 ? 3000 : 20000, 1000));
        total += ops;
    }
    while (total < 200000) { /* random slot lengths 4..1000 */
        uint32_t sl = 4 + rnd() % 997;
        CHECK(model_run(sl, 15000, 1000 + rnd() % 30000, 1000));
        total += 15000;
    }
    /* large values: nodes split and merge by bytes, not entry counts */
    model_big = 1;
    CHECK(model_run(1000, 3000, 200, 50));
    CHECK(model_run(64, 3000, 400, 50));
    model_big = 0;
}

/* One cursor seeking near its last position (the leaf "finger" in
 * btree_seek) must land exactly where a fresh cursor, which always descends
 * from the root, lands: in-order sweeps, small jumps, probes between keys
 * and beyond both ends, duplicate keys, with and without ids, and edits in
 * between (which must drop the finger). */
TEST(test_seek_finger)
{
    mem_io m;
    btree bt;
    new_tree(&m, &bt, 16);
    /* keys 0, 2, 4, ... (odd keys are gaps); every 7th even key three times */
    for (uint32_t v = 0; v < 6000; v += 2)
        for (uint32_t d = 0; d < (v % 7 == 0 ? 3u : 1u); d++)
            CHECK_RC(put(&bt, v, 10 + d), SOP_OK);
    btree_cursor keep, fresh;
    btree_cursor_init(&keep, &bt);
    uint32_t pos = 0, fingered = 0;
    for (int step = 0; step < 40000; step++) {
        uint32_t r = rnd() % 100;
        if (r < 70)
            pos += 1; /* in order */
        else if (r < 90)
            pos += rnd() % 64; /* nearby */
        else
            pos = rnd() % 6100; /* anywhere, also past the last key */
        if (pos >= 6100)
            pos = 0;
        if (step % 5000 == 4999) { /* an edit changes the tree */
            CHECK_RC(put(&bt, pos | 1, 1), SOP_OK);
            CHECK_RC(del(&bt, pos | 1, 1), SOP_OK);
        }
        unsigned char k[32], id[16];
        size_t klen;
        make_key(k, &klen, pos);
        make_id(id, 10 + rnd() % 4);
        const unsigned char *idp = r % 3 == 0 ? id : NULL;
        int eq1 = -1, ex1 = -1, eq2 = -1, ex2 = -1;
        int had = keep.finger;
        btree_cursor_init(&fresh, &bt);
        int rc1 = btree_seek(&keep, k, klen, idp, &eq1, &ex1);
        int rc2 = btree_seek(&fresh, k, klen, idp, &eq2, &ex2);
        fingered += had && keep.finger;
        CHECK_RC(rc1, rc2);
        CHECK(eq1 == eq2 && ex1 == ex2);
        CHECK(keep.positioned == fresh.positioned);
        if (rc1 == SOP_OK) {
            node_item a, b;
            CHECK_RC(btree_current(&keep, &a), SOP_OK);
            CHECK_RC(btree_current(&fresh, &b), SOP_OK);
            CHECK(a.klen == b.klen && memcmp(a.key, b.key, a.klen) == 0);
            CHECK(memcmp(a.id, b.id, 16) == 0);
            CHECK(keep.depth == fresh.depth);
            for (int d = 0; d < keep.depth; d++)
                CHECK(keep.path[d].lid == fresh.path[d].lid && keep.path[d].idx == fresh.path[d].idx);
            /* and moving on from there agrees too */
            int n1 = btree_next(&keep), n2 = btree_next(&fresh);
            CHECK_RC(n1, n2);
            if (n1 == SOP_OK) {
                CHECK_RC(btree_current(&keep, &a), SOP_OK);
                CHECK_RC(btree_current(&fresh, &b), SOP_OK);
                CHECK(a.klen == b.klen && memcmp(a.key, b.key, a.klen) == 0);
            }
        }
    }
    CHECK(fingered > 10000); /* the in-order seeks did use the finger */
    mem_commit(&m);
    mem_free(&m);
}

/* Edits reuse the path to the previous edit's leaf while the tree keeps its
 * shape: in-order loads and deletes (both directions) must give the same
 * tree as always descending would, and look up far fewer nodes; edits that
 * wander within a window stay consistent with a model through many splits
 * and merges, with an abort (btree_forget) in between. */
TEST(test_edit_hint)
{
    mem_io m;
    btree bt;
    new_tree(&m, &bt, 16);
    const uint32_t n = 6000;
    long before = m.gets;
    for (uint32_t v = 0; v < n; v++)
        CHECK_RC(put(&bt, v, v), SOP_OK);
    long load_gets = m.gets - before;
    int depth = depth_of(&bt);
    CHECK(depth >= 3);
    /* without the hint every insert descends: depth gets, plus the leaf again */
    CHECK(load_gets < (long)n * 2);
    CHECK_RC(btree_check(&bt, NULL), SOP_OK);
    check_scan_seq(&bt, n);
    mem_commit(&m);
    /* delete the upper half from the top down, then the lower half in order */
    for (uint32_t v = n; v-- > n / 2;)
        CHECK_RC(del(&bt, v, v), SOP_OK);
    CHECK_RC(btree_check(&bt, NULL), SOP_OK);
    check_scan_seq(&bt, n / 2);
    before = m.gets;
    for (uint32_t v = 0; v < n / 2; v++)
        CHECK_RC(del(&bt, v, v), SOP_OK);
    fprintf(stderr, "edit hint: %ld gets for %u in-order inserts, %ld for %u deletes (depth %d)\n",
            load_gets, n, m.gets - before, n / 2, depth);
    /* without the hint: depth gets per delete, plus the leaf in rebalance */
    CHECK(m.gets - before < (long)(n / 2) * (depth + 1) * 3 / 4);
    CHECK_RC(btree_check(&bt, NULL), SOP_OK);
    check_scan_seq(&bt, 0);
    mem_commit(&m);

    /* a sliding window of random inserts and deletes against a bitmap */
    unsigned char *have = calloc(n, 1);
    REQUIRE(have);
    uint32_t base = 0;
    for (int step = 0; step < 60000; step++) {
        uint32_t v = base + rnd() % 64;
        if (v >= n)
            v = rnd() % n;
        if (rnd() % 3) {
            CHECK_RC(put(&bt, v, v), have[v] ? SOP_KEYEXIST : SOP_OK);
            have[v] = 1;
        } else {
            CHECK_RC(del(&bt, v, v), have[v] ? SOP_OK : SOP_NOTFOUND);
            have[v] = 0;
        }
        base = (base + (rnd() % 8 == 0)) % n;
        if (step == 30000) { /* keep this much, throw the rest away */
            mem_commit(&m);
        }
    }
    uint64_t count;
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    {
        btree_cursor c;
        node_item it;
        uint32_t v = 0, seen = 0;
        btree_cursor_init(&c, &bt);
        for (int rc = btree_first(&c); rc == SOP_OK; rc = btree_next(&c)) {
            CHECK_RC(btree_current(&c, &it), SOP_OK);
            while (v < n && !have[v])
                v++;
            if (v >= n || !item_matches(&it, v, v)) {
                CHECK(!"window model mismatch");
                break;
            }
            v++;
            seen++;
        }
        CHECK(seen == count);
    }
    /* abort back to the last commit, then keep editing in order */
    mem_abort(&m);
    btree_forget(&bt);
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    for (uint32_t v = 0; v < n; v++)
        if (put(&bt, v, v) != SOP_OK && put(&bt, v, v) != SOP_KEYEXIST)
            CHECK(!"put after abort");
    CHECK_RC(btree_check(&bt, &count), SOP_OK);
    CHECK(count == n);
    check_scan_seq(&bt, n);
    free(have);
    mem_commit(&m);
    mem_free(&m);
}

int main(void)
{
    RUN(test_empty);
    RUN(test_insert_splits);
    RUN(test_delete_to_empty);
    RUN(test_root_collapse);
    RUN(test_duplicates);
    RUN(test_insert_unique);
    RUN(test_append_split);
    RUN(test_reseek);
    RUN(test_seek_finger);
    RUN(test_edit_hint);
    RUN(test_replace);
    RUN(test_key_limits);
    RUN(test_big_values);
    RUN(test_cow_snapshot);
    RUN(test_on_read);
    RUN(test_check_detects);
    RUN(test_model);
    TEST_EXIT();
}
