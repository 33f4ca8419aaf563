/*
 * test_node.c - unit tests of B+tree nodes (node.c): comparisons, search,
 * edits with garbage compaction, moves between nodes, clone/refcount, and
 * the on-disk encoding: round trips, and decode of truncated, bit-flipped
 * and random input (must fail with SOP_CORRUPT or yield a valid node).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "test.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static void make_id(unsigned char id[16], uint32_t v)
{
    memset(id, 0, 16);
    id[14] = (unsigned char)(v >> 8);
    id[15] = (unsigned char)v;
}

/* leaf item i: key "key%04u", id i % 3, value/doc shapes vary with i */
typedef struct titem {
    unsigned char key[16], id[16], val[300], doc[40];
    node_item it;
} titem;

static void make_item(titem *t, uint32_t i)
{
    memset(&t->it, 0, sizeof t->it);
    t->it.klen = (size_t)snprintf((char *)t->key, sizeof t->key, "key%04u", i / 3);
    t->it.key = t->key;
    make_id(t->id, i % 3);
    t->it.id = t->id;
    t->it.vlen = i % 5 == 0 ? 200 : i % 11;
    for (size_t j = 0; j < sizeof t->val; j++)
        t->val[j] = (unsigned char)(i + j);
    t->it.val = t->val;
    if (i % 4 == 1) {
        t->it.flags |= ITEM_HAS_DOC;
        t->it.dlen = i % 40;
        memset(t->doc, (int)i, sizeof t->doc);
        t->it.doc = t->doc;
    }
    if (i % 7 == 3) {
        t->it.flags |= ITEM_VALUE_REF;
        t->it.vlen = 16;
    }
}

static int same_item(const node_item *a, const node_item *b)
{
    return a->klen == b->klen && memcmp(a->key, b->key, a->klen) == 0 &&
           memcmp(a->id, b->id, 16) == 0 && a->flags == b->flags && a->vlen == b->vlen &&
           (a->vlen == 0 || memcmp(a->val, b->val, a->vlen) == 0) && a->dlen == b->dlen &&
           (a->dlen == 0 || memcmp(a->doc, b->doc, a->dlen) == 0);
}

/* A leaf with items 0..n-1 (inserted in a scrambled order). */
static node *make_leaf(uint32_t n)
{
    node *l = node_new(7, NODE_LEAF);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (k * 7919u) % n; /* n not a multiple of 7919: a permutation */
        titem t;
        uint32_t at;
        make_item(&t, i);
        at = node_lower_bound(l, t.it.key, t.it.klen, t.it.id, NULL);
        if (node_leaf_insert(l, at, &t.it) != SOP_OK)
            abort();
    }
    return l;
}

static int leaf_is_seq(const node *l, uint32_t n)
{
    node_item it;
    titem t;
    if (l->count != n)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        make_item(&t, i);
        node_get(l, i, &it);
        if (!same_item(&it, &t.it))
            return 0;
    }
    return 1;
}

static int nodes_equal(const node *a, const node *b)
{
    node_item x, y;
    if (a->kind != b->kind || a->count != b->count)
        return 0;
    for (uint32_t i = 0; i < a->count; i++) {
        node_get(a, i, &x);
        node_get(b, i, &y);
        if (a->kind == NODE_LEAF ? !same_item(&x, &y)
                                 : x.klen != y.klen || memcmp(x.key, y.key, x.klen) ||
                                       memcmp(x.id, y.id, 16))
            return 0;
    }
    if (a->kind == NODE_INTERNAL)
        for (uint32_t i = 0; i <= a->count; i++)
            if (a->child[i] != b->child[i])
                return 0;
    return 1;
}

static unsigned char *encode(const node *n, size_t *len)
{
    unsigned char *buf;
    *len = node_encoded_size(n);
    buf = malloc(*len);
    node_encode(n, buf, NULL, NULL);
    return buf;
}

/* An internal node with `count` separators sep%04u(id 1) and children 100+i. */
static node *make_internal(uint32_t count)
{
    node *n = node_new(9, NODE_INTERNAL);
    unsigned char key[16], id[16];
    node_set_child(n, 0, 100);
    make_id(id, 1);
    for (uint32_t i = 0; i < count; i++) {
        size_t klen = (size_t)snprintf((char *)key, sizeof key, "sep%04u", i);
        if (node_internal_insert(n, i, key, klen, id, 101 + i) != SOP_OK)
            abort();
    }
    return n;
}

/* ------------------------------------------------------------ tests */

TEST(test_compare)
{
    const unsigned char a[] = "abc", b[] = "abd";
    unsigned char id1[16], id2[16];
    make_id(id1, 1);
    make_id(id2, 2);
    CHECK(node_key_cmp(a, 3, b, 3) < 0);
    CHECK(node_key_cmp(a, 2, a, 3) < 0); /* shorter prefix is smaller */
    CHECK(node_key_cmp(a, 3, a, 2) > 0);
    CHECK(node_key_cmp(a, 0, a, 0) == 0);
    CHECK(node_cmp(a, 3, id1, a, 3, id2) < 0);
    CHECK(node_cmp(a, 3, id2, a, 3, id1) > 0);
    CHECK(node_cmp(a, 3, NULL, a, 3, id1) < 0);
    CHECK(node_cmp(a, 3, id2, a, 2, NULL) > 0);
    memset(id1, 0, 16);
    CHECK(node_cmp(a, 3, NULL, a, 3, id1) == 0);
}

TEST(test_leaf_edits)
{
    node *l = make_leaf(300), *c;
    node_item it;
    titem t;
    int eq;
    uint32_t i;
    REQUIRE(l != NULL);
    CHECK(leaf_is_seq(l, 300));
    /* lower bound with and without ids */
    make_item(&t, 30); /* key0010 id 0 */
    CHECK(node_lower_bound(l, t.it.key, t.it.klen, NULL, &eq) == 30 && eq);
    make_id(t.id, 2);
    CHECK(node_lower_bound(l, t.it.key, t.it.klen, t.id, &eq) == 32 && eq);
    make_id(t.id, 3);
    CHECK(node_lower_bound(l, t.it.key, t.it.klen, t.id, &eq) == 33 && !eq);
    CHECK(node_lower_bound(l, (const unsigned char *)"zzz", 3, NULL, &eq) == 300 && !eq);
    CHECK(node_lower_bound(l, (const unsigned char *)"", 0, NULL, &eq) == 0 && !eq);
    /* replace many times: garbage is compacted, content right */
    for (int r = 0; r < 2000; r++) {
        make_item(&t, 17);
        t.it.vlen = (size_t)(r % 250);
        memset(t.val, r, t.it.vlen);
        t.it.flags &= ~ITEM_VALUE_REF;
        CHECK_RC(node_leaf_replace(l, 17, &t.it), SOP_OK);
    }
    node_get(l, 17, &it);
    CHECK(same_item(&it, &t.it));
    CHECK(l->garbage <= l->heap_len / 2 + 300);
    CHECK(l->heap_len < 4 * node_live_bytes(l) + 4096);
    /* replace with an item view pointing into the node itself */
    node_get(l, 18, &it);
    {
        node_item self = it;
        for (int r = 0; r < 200; r++) {
            node_get(l, 18, &self);
            CHECK_RC(node_leaf_replace(l, 18, &self), SOP_OK);
        }
        node_get(l, 18, &it);
        make_item(&t, 18);
        CHECK(same_item(&it, &t.it));
    }
    make_item(&t, 17);
    CHECK_RC(node_leaf_replace(l, 17, &t.it), SOP_OK);
    CHECK(leaf_is_seq(l, 300));
    /* clone is equal, independent and compacted */
    c = node_clone(l, 8);
    REQUIRE(c != NULL);
    CHECK(c->lid == 8 && c->is_mutable && c->garbage == 0);
    CHECK(nodes_equal(l, c));
    node_remove(c, 0);
    CHECK(c->count == 299 && l->count == 300);
    node_unref(c);
    /* remove every other item */
    for (i = 0; i < 150; i++)
        node_remove(l, i);
    CHECK(l->count == 150);
    for (i = 0; i < 150; i++) {
        make_item(&t, 2 * i + 1);
        node_get(l, i, &it);
        CHECK(same_item(&it, &t.it));
    }
    node_truncate(l, 0);
    CHECK(l->count == 0 && l->heap_len == 0 && l->garbage == 0);
    node_unref(l);
}

TEST(test_moves)
{
    node *a = make_leaf(100), *b = node_new(3, NODE_LEAF), *c = node_new(4, NODE_LEAF);
    node_item x, y;
    REQUIRE(a && b && c);
    CHECK_RC(node_move_tail(a, 60, b), SOP_OK);
    CHECK(a->count == 60 && b->count == 40);
    CHECK_RC(node_move_head(b, 10, a), SOP_OK); /* a: 0..69, b: 70..99 */
    CHECK(leaf_is_seq(a, 70) && b->count == 30);
    CHECK_RC(node_append(a, b, 0, b->count), SOP_OK);
    CHECK(leaf_is_seq(a, 100));
    CHECK_RC(node_append(c, a, 10, 20), SOP_OK);
    CHECK(c->count == 10);
    node_get(c, 0, &x);
    node_get(a, 10, &y);
    CHECK(same_item(&x, &y));
    node_unref(a);
    node_unref(b);
    node_unref(c);

    /* internal nodes */
    {
        node *n = make_internal(10), *r = node_new(5, NODE_INTERNAL);
        unsigned char key[16], id[16];
        size_t klen;
        REQUIRE(n && r);
        make_id(id, 1);
        CHECK(n->count == 10 && n->child[0] == 100 && n->child[10] == 110);
        klen = (size_t)snprintf((char *)key, sizeof key, "sep%04u", 4);
        CHECK(node_child_index(n, key, klen, id) == 5); /* equal separator: right child */
        CHECK(node_child_index(n, key, klen, NULL) == 4);
        CHECK(node_child_index(n, (const unsigned char *)"a", 1, NULL) == 0);
        CHECK(node_child_index(n, (const unsigned char *)"z", 1, NULL) == 10);
        /* split like the tree does: separator 5 moves up */
        node_set_child(r, 0, n->child[6]);
        CHECK_RC(node_append(r, n, 6, n->count), SOP_OK);
        node_truncate(n, 5);
        CHECK(n->count == 5 && n->child[5] == 105);
        CHECK(r->count == 4 && r->child[0] == 106 && r->child[4] == 110);
        /* insert_left / remove_left */
        klen = (size_t)snprintf((char *)key, sizeof key, "sep%04u", 5);
        CHECK_RC(node_internal_insert_left(r, 0, key, klen, id, 105), SOP_OK);
        CHECK(r->count == 5 && r->child[0] == 105 && r->child[1] == 106);
        node_internal_remove_left(r, 0);
        CHECK(r->count == 4 && r->child[0] == 106);
        node_remove(r, 0); /* separator 6 and child 107 */
        CHECK(r->count == 3 && r->child[0] == 106 && r->child[1] == 108);
        klen = (size_t)snprintf((char *)key, sizeof key, "sep%04u", 7);
        CHECK_RC(node_internal_set_key(r, 0, key, klen, id), SOP_OK);
        node_get(r, 0, &x);
        CHECK(x.klen == klen && memcmp(x.key, key, klen) == 0);
        /* move_head on internal nodes: separators 0..k-1, children 0..k-1 */
        {
            node *t = node_new(6, NODE_INTERNAL);
            node_set_child(t, 0, 99);
            CHECK_RC(node_move_head(r, 2, t), SOP_OK);
            CHECK(t->count == 2 && t->child[0] == 99 && t->child[1] == 106 && t->child[2] == 108);
            CHECK(r->count == 1 && r->child[0] == 109 && r->child[1] == 110);
            node_unref(t);
        }
        /* reset to a leaf and back */
        CHECK_RC(node_reset(r, NODE_LEAF), SOP_OK);
        CHECK(r->count == 0 && r->kind == NODE_LEAF);
        CHECK_RC(node_reset(r, NODE_INTERNAL), SOP_OK);
        CHECK(r->count == 0 && r->child[0] == 0);
        node_unref(n);
        node_unref(r);
    }
}

static uint64_t map_plus_1000(void *arg, uint64_t lid)
{
    (void)arg;
    return lid + 1000;
}

TEST(test_roundtrip)
{
    node *l = make_leaf(257), *d = NULL, *n, *e = node_new(1, NODE_LEAF);
    unsigned char *buf, *buf2;
    size_t len, len2;
    titem t;
    REQUIRE(l && e);
    /* garbage is not encoded */
    for (int r = 0; r < 10; r++) {
        make_item(&t, 5);
        CHECK_RC(node_leaf_replace(l, 5, &t.it), SOP_OK);
    }
    CHECK(l->garbage > 0);
    buf = encode(l, &len);
    CHECK_RC(node_decode(buf, len, 42, &d), SOP_OK);
    REQUIRE(d != NULL);
    CHECK(d->lid == 42 && !d->is_mutable && d->refs == 1 && d->garbage == 0);
    CHECK(d->heap_len == node_live_bytes(l));
    CHECK(nodes_equal(l, d));
    /* re-encoding is byte-identical */
    buf2 = encode(d, &len2);
    CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
    free(buf2);
    /* a decoded node made mutable can be edited (arrays move out of the block) */
    d->is_mutable = 1;
    make_item(&t, 1000);
    CHECK_RC(node_leaf_insert(d, d->count, &t.it), SOP_OK);
    for (uint32_t i = 0; i < 100; i++)
        node_remove(d, 0);
    CHECK_RC(node_append(d, l, 0, 10), SOP_OK);
    CHECK(d->count == 158 + 10);
    node_unref(d);
    free(buf);

    /* internal, with a lid map */
    n = make_internal(50);
    buf = encode(n, &len);
    CHECK_RC(node_decode(buf, len, 43, &d), SOP_OK);
    REQUIRE(d != NULL);
    CHECK(nodes_equal(n, d));
    node_unref(d);
    node_encode(n, buf, map_plus_1000, NULL);
    CHECK_RC(node_decode(buf, len, 43, &d), SOP_OK);
    REQUIRE(d != NULL);
    CHECK(d->child[0] == 1100 && d->child[50] == 1150);
    node_unref(d);
    free(buf);
    node_unref(n);

    /* empty leaf; a leaf with a maximum-size key; clone of a decoded node */
    buf = encode(e, &len);
    CHECK(len == 12);
    CHECK_RC(node_decode(buf, len, 1, &d), SOP_OK);
    REQUIRE(d != NULL);
    CHECK(d->count == 0 && d->kind == NODE_LEAF);
    node_unref(d);
    free(buf);
    {
        static unsigned char big[SOP_MAX_KEY + 1];
        node_item it = {0};
        node *c;
        memset(big, 'q', sizeof big);
        it.key = big;
        it.klen = SOP_MAX_KEY;
        CHECK_RC(node_leaf_insert(e, 0, &it), SOP_OK);
        buf = encode(e, &len);
        CHECK_RC(node_decode(buf, len, 1, &d), SOP_OK);
        REQUIRE(d != NULL);
        c = node_clone(d, 2);
        CHECK(c && nodes_equal(c, e));
        node_unref(c);
        node_unref(d);
        free(buf);
        /* a hand-made payload with a key one byte over SOP_MAX_KEY is rejected */
        {
            size_t hl = 2 + (SOP_MAX_KEY + 1) + 16 + 1 + 1, pl = 12 + 4 + hl;
            unsigned char *p;
            buf = calloc(1, pl);
            buf[0] = 'S';
            buf[1] = 'N';
            buf[2] = NODE_FORMAT_VERSION;
            buf[3] = NODE_LEAF;
            sop_put32(buf + 4, 1);
            sop_put32(buf + 8, (uint32_t)hl);
            sop_put32(buf + 12, 0);
            p = buf + 16;
            p += sop_varint_put(p, SOP_MAX_KEY + 1);
            memset(p, 'q', SOP_MAX_KEY + 1);
            CHECK_RC(node_decode(buf, pl, 1, &d), SOP_CORRUPT);
            CHECK(d == NULL);
            /* the same payload with a SOP_MAX_KEY key (and one spare byte of value) decodes */
            p = buf + 16;
            p += sop_varint_put(p, SOP_MAX_KEY);
            p += SOP_MAX_KEY + 16;
            *p++ = 0;     /* flags */
            *p++ = 1;     /* vlen */
            CHECK_RC(node_decode(buf, pl, 1, &d), SOP_OK);
            CHECK(d && d->count == 1);
            node_unref(d);
            free(buf);
        }
    }
    node_unref(e);
    node_unref(l);
}

TEST(test_refcount)
{
    node *n = make_leaf(10);
    node_ref(n);
    CHECK(n->refs == 2);
    node_unref(n);
    CHECK(n->refs == 1);
    CHECK(node_mem_size(n) >= sizeof(node) + n->heap_len);
    node_unref(n);
    node_unref(NULL);
}

/* A decoded node must be internally consistent; exercise all of it. */
static void validate_decoded(const node *d)
{
    node_item it, prev;
    size_t total = 0;
    for (uint32_t i = 0; i < d->count; i++) {
        node_get(d, i, &it);
        total += node_entry_size(d, i);
        CHECK(it.klen <= SOP_MAX_KEY);
        if (i)
            CHECK(node_cmp(prev.key, prev.klen, prev.id, it.key, it.klen, it.id) < 0);
        prev = it;
    }
    CHECK(total == d->heap_len);
    if (d->count) {
        node_get(d, d->count - 1, &it);
        (void)node_lower_bound(d, it.key, it.klen, it.id, NULL);
    }
}

/* Every truncation and every single bit flip: SOP_CORRUPT, or a valid node. */
static void fuzz_buffer(const unsigned char *buf, size_t len, long *accepted)
{
    unsigned char *b;
    node *d;
    for (size_t cut = 0; cut < len; cut++) {
        b = malloc(cut ? cut : 1); /* exact-size copies so ASan sees overreads */
        memcpy(b, buf, cut);
        d = (node *)1;
        CHECK_RC(node_decode(b, cut, 5, &d), SOP_CORRUPT);
        CHECK(d == NULL);
        free(b);
    }
    b = malloc(len);
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            int rc;
            memcpy(b, buf, len);
            b[i] ^= (unsigned char)(1u << bit);
            rc = node_decode(b, len, 5, &d);
            CHECK(rc == SOP_OK || rc == SOP_CORRUPT);
            if (rc == SOP_OK) {
                (*accepted)++;
                validate_decoded(d);
                node_unref(d);
            } else {
                CHECK(d == NULL);
            }
        }
    free(b);
}

TEST(test_decode_fuzz)
{
    node *l = make_leaf(12), *n = make_internal(6);
    unsigned char *buf;
    size_t len;
    long accepted = 0;
    REQUIRE(l && n);
    buf = encode(l, &len);
    fuzz_buffer(buf, len, &accepted);
    free(buf);
    buf = encode(n, &len);
    fuzz_buffer(buf, len, &accepted);
    free(buf);
    /* some flips (value bytes, child lids) are undetectable here: the log
     * layer's checksum covers them */
    CHECK(accepted > 0);
    node_unref(l);
    node_unref(n);
}

TEST(test_decode_random)
{
    /* random bytes behind a plausible header */
    unsigned char *b = malloc(600);
    long ok = 0;
    for (int r = 0; r < 200000; r++) {
        size_t len = rnd() % 600;
        node *d;
        int rc;
        for (size_t i = 0; i < len; i++)
            b[i] = (unsigned char)(rnd() % 4 ? rnd() % 3 : rnd());
        if (len >= 12) {
            b[0] = 'S';
            b[1] = 'N';
            b[2] = NODE_FORMAT_VERSION;
            b[3] = (unsigned char)(1 + rnd() % 2);
            sop_put32(b + 4, rnd() % 8);
            sop_put32(b + 8, (uint32_t)(len - 12 - (b[3] == NODE_INTERNAL ? (sop_get32(b + 4) + 1) * 8 : 0) -
                                        sop_get32(b + 4) * 4));
        }
        rc = node_decode(b, len, 5, &d);
        CHECK(rc == SOP_OK || rc == SOP_CORRUPT);
        if (rc == SOP_OK) {
            ok++;
            validate_decoded(d);
            node_unref(d);
        }
    }
    free(b);
    (void)ok;
    /* specific malformed headers */
    {
        node *l = make_leaf(3), *d;
        size_t len;
        unsigned char *e = encode(l, &len);
        e[2] = NODE_FORMAT_VERSION + 1;
        CHECK_RC(node_decode(e, len, 1, &d), SOP_CORRUPT);
        e[2] = NODE_FORMAT_VERSION;
        e[3] = 3;
        CHECK_RC(node_decode(e, len, 1, &d), SOP_CORRUPT);
        e[3] = NODE_LEAF;
        sop_put32(e + 4, 0xFFFFFFFFu); /* huge count */
        CHECK_RC(node_decode(e, len, 1, &d), SOP_CORRUPT);
        free(e);
        node_unref(l);
    }
    /* out-of-order items are rejected */
    {
        node *l = node_new(1, NODE_LEAF), *d;
        titem t1, t2;
        size_t len;
        unsigned char *e;
        make_item(&t1, 9);
        make_item(&t2, 3);
        CHECK_RC(node_leaf_insert(l, 0, &t1.it), SOP_OK);
        CHECK_RC(node_leaf_insert(l, 1, &t2.it), SOP_OK); /* wrong order on purpose */
        e = encode(l, &len);
        CHECK_RC(node_decode(e, len, 1, &d), SOP_CORRUPT);
        free(e);
        node_remove(l, 1);
        CHECK_RC(node_leaf_insert(l, 1, &t1.it), SOP_OK); /* duplicate */
        e = encode(l, &len);
        CHECK_RC(node_decode(e, len, 1, &d), SOP_CORRUPT);
        free(e);
        node_unref(l);
    }
}

/* ---- search over the in-memory key prefixes (bytes after the node's common
 * prefix) checked against a linear memcmp scan after every kind of edit.
 * Key families: a tiny alphabet with zero bytes and lengths around 8, keys
 * sharing 0/7/8/9/15/100 leading bytes, sequential 16-byte big-endian
 * integers, Python-like encoded digit strings, keys that are prefixes of each
 * other, and empty keys; nodes mostly hold one family with some keys of
 * others mixed in, so the common prefix both grows and shrinks. */

#define KMAX 128

static const size_t shared_lens[] = {0, 7, 8, 9, 15, 100};
static size_t fam_shared;     /* family 1: length of the shared prefix */
static uint32_t fam_base;     /* families 2, 3: start of the sequence */

static void tail_bytes(unsigned char *k, size_t n)
{
    static const unsigned char alpha[4] = {0x00, 0x01, 'a', 0xff};
    for (size_t j = 0; j < n; j++)
        k[j] = rnd() % 4 ? alpha[rnd() % 4] : (unsigned char)rnd();
}

static void family_key(int fam, unsigned char *k, size_t *klen)
{
    static const unsigned char chain[30] = "chain-of-prefixes\0\x01\xff-0123456";
    switch (fam) {
    case 0: { /* tiny alphabet, lengths 0..12 */
        static const unsigned char alpha[4] = {0x00, 0x01, 'a', 0xff};
        size_t l = rnd() % 13;
        for (size_t j = 0; j < l; j++)
            k[j] = j < 6 && rnd() % 4 ? 'a' : alpha[rnd() % 4];
        *klen = l;
        break;
    }
    case 1: { /* fam_shared bytes in common, then a short tail */
        size_t t = rnd() % 6;
        for (size_t j = 0; j < fam_shared; j++)
            k[j] = (unsigned char)('A' + j % 26);
        tail_bytes(k + fam_shared, t);
        *klen = fam_shared + t;
        break;
    }
    case 2: { /* 16-byte big-endian integers */
        uint32_t v = fam_base + rnd() % 3000;
        memset(k, 0, 16);
        for (int j = 0; j < 4; j++)
            k[15 - j] = (unsigned char)(v >> (8 * j));
        *klen = 16;
        break;
    }
    case 3: { /* sop string key of 16 digits: 0x30, digits, 00 01 */
        uint32_t v = fam_base + rnd() % 3000;
        k[0] = 0x30;
        snprintf((char *)k + 1, 17, "%016u", v);
        k[17] = 0;
        k[18] = 1;
        *klen = 19;
        break;
    }
    case 4: { /* prefixes of one string, sometimes with a different last byte */
        size_t l = rnd() % 31;
        memcpy(k, chain, l);
        if (l && rnd() % 4 == 0)
            k[l - 1] = (unsigned char)(k[l - 1] + (rnd() % 2 ? 1 : 0xff));
        *klen = l;
        break;
    }
    default: /* empty, or a zero byte or two */
        *klen = rnd() % 3;
        memset(k, 0, *klen);
        break;
    }
}

static int cur_fam, fam_mix; /* fam_mix: percent of keys from another family */

static void rand_key(unsigned char *k, size_t *klen)
{
    int f = cur_fam;
    if ((int)(rnd() % 100) < fam_mix)
        f = (int)(rnd() % 6);
    family_key(f, k, klen);
}

static uint64_t test_prefix(const unsigned char *k, size_t l)
{
    uint64_t v = 0;
    for (size_t j = 0; j < 8; j++)
        v = (v << 8) | (j < l ? k[j] : 0u);
    return v;
}

/* The model: the sorted (key, id) pairs a node must hold. */
typedef struct mkey {
    unsigned char key[KMAX], id[16];
    size_t klen;
} mkey;

static int mcmp(const mkey *m, const unsigned char *key, size_t klen, const unsigned char *id)
{
    return node_cmp(m->key, m->klen, m->id, key, klen, id);
}

/* One probe against the node, answers checked against a linear scan of the
 * model m[0..cnt) (memcmp order).  id NULL = zero id. */
static int probe_ok(const node *n, const mkey *m, uint32_t cnt, const unsigned char *key,
                    size_t klen, const unsigned char *id)
{
    uint32_t lb = 0, ub = 0, cand[6];
    int keq = 0, eq = -1;
    for (uint32_t i = 0; i < cnt; i++) {
        int c = mcmp(&m[i], key, klen, id);
        lb += c < 0;
        ub += c <= 0;
    }
    if (lb < cnt)
        keq = node_key_cmp(m[lb].key, m[lb].klen, key, klen) == 0;
    if (node_lower_bound(n, key, klen, id, &eq) != lb || eq != keq)
        return 0;
    if (node_lower_bound(n, key, klen, id, NULL) != lb)
        return 0;
    if (n->kind == NODE_INTERNAL && node_child_index(n, key, klen, id) != ub)
        return 0;
    cand[0] = lb ? lb - 1 : 0;
    cand[1] = lb;
    cand[2] = lb + 1;
    cand[3] = ub;
    cand[4] = cnt ? rnd() % cnt : 0;
    cand[5] = cnt; /* never a match */
    for (int j = 0; j < 6; j++) {
        uint32_t i = cand[j];
        int ki = 0, ii = 0;
        if (i < cnt) {
            ki = node_key_cmp(m[i].key, m[i].klen, key, klen) == 0;
            ii = mcmp(&m[i], key, klen, id) == 0;
        }
        if (node_key_is(n, i, key, klen) != ki || node_item_is(n, i, key, klen, id) != ii)
            return 0;
    }
    return 1;
}

/* A probe near entry `e` of the model: cut, extended, a byte changed. */
static void near_key(const mkey *e, unsigned char *k, size_t *klen)
{
    size_t l = e->klen;
    memcpy(k, e->key, l);
    switch (rnd() % 5) {
    case 0:
        l = l ? rnd() % (l + 1) : 0;
        break;
    case 1:
        if (l < KMAX - 2)
            k[l++] = (unsigned char)(rnd() % 3 == 0 ? 0 : rnd());
        break;
    case 2:
    case 3:
        if (l) {
            size_t at = rnd() % l;
            k[at] = (unsigned char)(k[at] + (rnd() % 2 ? 1 : 0xff));
        }
        break;
    default:
        break;
    }
    *klen = l;
}

/* The node holds exactly the model, its prefix data is consistent, and
 * every entry and some random and nearby probes are found as a linear scan
 * finds them. */
static int node_ok(const node *n, const mkey *m, uint32_t cnt)
{
    node_item it;
    size_t l0 = 0;
    const unsigned char *k0 = NULL;
    if (n->count != cnt)
        return 0;
    for (uint32_t i = 0; i < cnt; i++) {
        int eq = -1;
        node_get(n, i, &it);
        if (it.klen != m[i].klen || (it.klen && memcmp(it.key, m[i].key, it.klen)) ||
            memcmp(it.id, m[i].id, 16))
            return 0;
        if (i == 0)
            k0 = it.key, l0 = it.klen;
        /* every key starts with the common prefix; pfx = the next 8 bytes */
        if (it.klen < n->cpl || l0 < n->cpl || (n->cpl && memcmp(it.key, k0, n->cpl)))
            return 0;
        if (n->pfx[i] != test_prefix(it.key + n->cpl, it.klen - n->cpl))
            return 0;
        if (node_lower_bound(n, it.key, it.klen, it.id, &eq) != i || eq != 1)
            return 0;
        if (!node_item_is(n, i, it.key, it.klen, it.id) || !node_key_is(n, i, it.key, it.klen))
            return 0;
        if (n->kind == NODE_INTERNAL && node_child_index(n, it.key, it.klen, it.id) != i + 1)
            return 0;
    }
    if (cnt == 0 && n->cpl != 0)
        return 0;
    if (cnt) { /* cpw: the first min(cpl, 16) bytes of the common prefix */
        size_t m = n->cpl < 16 ? n->cpl : 16;
        if (n->cpw[0] != test_prefix(k0, m < 8 ? m : 8) ||
            n->cpw[1] != (m > 8 ? test_prefix(k0 + 8, m - 8) : 0))
            return 0;
    }
    for (int r = 0; r < 24; r++) {
        unsigned char key[KMAX], id[16];
        size_t klen;
        if (r % 3 == 0 || cnt == 0)
            rand_key(key, &klen);
        else if (r % 3 == 1)
            family_key((int)(rnd() % 6), key, &klen);
        else
            near_key(&m[rnd() % cnt], key, &klen);
        make_id(id, rnd() % 3);
        if (!probe_ok(n, m, cnt, key, klen, r & 1 ? id : NULL))
            return 0;
        if (cnt && !probe_ok(n, m, cnt, m[r % cnt].key, m[r % cnt].klen, r & 2 ? id : NULL))
            return 0;
    }
    return 1;
}

static void m_insert(mkey *m, uint32_t *cnt, uint32_t i, const unsigned char *key, size_t klen,
                     const unsigned char *id)
{
    memmove(m + i + 1, m + i, (size_t)(*cnt - i) * sizeof *m);
    memcpy(m[i].key, key, klen);
    m[i].klen = klen;
    memcpy(m[i].id, id, 16);
    (*cnt)++;
}

static void m_remove(mkey *m, uint32_t *cnt, uint32_t i)
{
    memmove(m + i, m + i + 1, (size_t)(*cnt - i - 1) * sizeof *m);
    (*cnt)--;
}

#define MCAP 400

/* Set entry i of a to (key, id) with the edit of its kind. */
static int set_key(node *a, uint32_t i, const unsigned char *key, size_t klen,
                   const unsigned char *id, const unsigned char *val, size_t vlen)
{
    node_item x;
    if (a->kind == NODE_INTERNAL)
        return node_internal_set_key(a, i, key, klen, id);
    memset(&x, 0, sizeof x);
    x.key = key, x.klen = klen, x.id = id, x.val = val, x.vlen = vlen;
    return node_leaf_replace(a, i, &x);
}

static void pfx_round(int kind, int steps)
{
    node *a = node_new(1, kind), *b = node_new(2, kind), *t;
    static mkey m[MCAP + 1];
    uint32_t cnt = 0;
    unsigned char key[KMAX], id[16], val[40];
    node_item x, y;
    int ok = 1;
    REQUIRE(a && b);
    memset(val, 'v', sizeof val);
    for (int step = 0; step < steps && ok; step++) {
        uint32_t op = rnd() % 18, i;
        if (cnt > MCAP - 20 && op < 8)
            op = 11; /* keep the node bounded */
        if (op < 8 || a->count < 2) { /* insert if absent */
            memset(&x, 0, sizeof x);
            rand_key(key, &x.klen);
            make_id(id, rnd() % 3);
            x.key = key;
            x.id = id;
            x.val = val;
            x.vlen = rnd() % sizeof val;
            i = node_lower_bound(a, key, x.klen, id, NULL);
            if (node_item_is(a, i, key, x.klen, id))
                continue;
            if (kind == NODE_LEAF)
                CHECK_RC(node_leaf_insert(a, i, &x), SOP_OK);
            else
                CHECK_RC(node_internal_insert(a, i, key, x.klen, id, 1000 + (uint64_t)step),
                         SOP_OK);
            m_insert(m, &cnt, i, key, x.klen, id);
        } else if (op < 10) { /* remove i through replace(i, item i+1) + remove(i+1) */
            i = rnd() % (a->count - 1);
            node_get(a, i + 1, &y); /* points into a's heap */
            if (kind == NODE_LEAF) {
                CHECK_RC(node_leaf_replace(a, i, &y), SOP_OK);
                node_remove(a, i + 1);
            } else {
                CHECK_RC(node_internal_set_key(a, i, y.key, y.klen, y.id), SOP_OK);
                node_internal_remove_left(a, i + 1);
            }
            m_remove(m, &cnt, i);
        } else if (op == 10) { /* replace key i by a new key between its neighbours */
            size_t klen;
            i = rnd() % a->count;
            rand_key(key, &klen);
            make_id(id, rnd() % 3);
            if ((i == 0 || mcmp(&m[i - 1], key, klen, id) < 0) &&
                (i + 1 == cnt || mcmp(&m[i + 1], key, klen, id) > 0)) {
                CHECK_RC(set_key(a, i, key, klen, id, val, rnd() % sizeof val), SOP_OK);
                memcpy(m[i].key, key, klen);
                m[i].klen = klen;
                memcpy(m[i].id, id, 16);
            }
        } else if (op == 11) {
            i = rnd() % a->count;
            if (kind == NODE_INTERNAL && rnd() % 2)
                node_internal_remove_left(a, i);
            else
                node_remove(a, i);
            m_remove(m, &cnt, i);
        } else if (op == 12) { /* move everything to b, then back in two parts */
            uint32_t at = rnd() % a->count, k;
            REQUIRE(node_reset(b, kind) == SOP_OK);
            if (kind == NODE_INTERNAL)
                node_set_child(b, 0, a->child[at]);
            CHECK_RC(node_move_tail(a, at, b), SOP_OK);
            ok &= node_ok(a, m, at) && node_ok(b, m + at, cnt - at);
            k = b->count / 2;
            CHECK_RC(node_move_head(b, k, a), SOP_OK);
            ok &= node_ok(a, m, at + k) && node_ok(b, m + at + k, cnt - at - k);
            CHECK_RC(node_append(a, b, 0, b->count), SOP_OK);
            node_truncate(b, 0);
            ok &= node_ok(b, m, 0);
        } else if (op == 13) { /* clone */
            t = node_clone(a, 3);
            REQUIRE(t);
            ok &= node_ok(t, m, cnt);
            node_unref(a);
            a = t;
        } else if (op == 14) { /* encode / decode */
            size_t len;
            unsigned char *buf = encode(a, &len);
            CHECK_RC(node_decode(buf, len, 4, &t), SOP_OK);
            free(buf);
            REQUIRE(t);
            ok &= node_ok(t, m, cnt) && nodes_equal(a, t);
            node_unref(t);
        } else if (op == 15) { /* truncate some of the tail */
            uint32_t at = a->count - rnd() % 3;
            node_truncate(a, at);
            cnt = at;
        } else if (op == 16) { /* split as btree does: append the tail to an
                                  empty node, truncate; then merge back */
            uint32_t at = 1 + rnd() % (a->count - 1);
            REQUIRE(node_reset(b, kind) == SOP_OK);
            CHECK_RC(node_append(b, a, at, a->count), SOP_OK);
            node_truncate(a, at);
            ok &= node_ok(a, m, at) && node_ok(b, m + at, cnt - at);
            /* insert into the right half, then merge it back */
            rand_key(key, &x.klen);
            make_id(id, rnd() % 3);
            i = node_lower_bound(b, key, x.klen, id, NULL);
            if ((at + i == 0 || mcmp(&m[at + i - 1], key, x.klen, id) < 0) &&
                !node_item_is(b, i, key, x.klen, id)) {
                if (kind == NODE_LEAF) {
                    size_t kl = x.klen;
                    memset(&x, 0, sizeof x);
                    x.key = key, x.klen = kl, x.id = id;
                    CHECK_RC(node_leaf_insert(b, i, &x), SOP_OK);
                } else {
                    CHECK_RC(node_internal_insert(b, i, key, x.klen, id, 5), SOP_OK);
                }
                m_insert(m, &cnt, at + i, key, x.klen, id);
                ok &= node_ok(b, m + at, cnt - at);
            }
            CHECK_RC(node_append(a, b, 0, b->count), SOP_OK);
            REQUIRE(node_reset(b, kind) == SOP_OK);
        } else { /* borrow/merge the other way: head of a into an empty b,
                    append the rest of a to b, then everything back to a */
            uint32_t k = 1 + rnd() % a->count;
            REQUIRE(node_reset(b, kind) == SOP_OK);
            CHECK_RC(node_move_head(a, k, b), SOP_OK);
            ok &= node_ok(a, m + k, cnt - k) && node_ok(b, m, k);
            CHECK_RC(node_append(b, a, 0, a->count), SOP_OK);
            node_truncate(a, 0);
            ok &= node_ok(b, m, cnt);
            REQUIRE(node_reset(a, kind) == SOP_OK);
            CHECK_RC(node_move_tail(b, 0, a), SOP_OK);
            ok &= node_ok(b, m, 0);
        }
        ok &= node_ok(a, m, cnt);
    }
    CHECK(ok);
    node_unref(a);
    node_unref(b);
}

/* Every probe made from the key set (and its neighbours) against a leaf and
 * an internal node holding it. */
static int all_probes_ok(const mkey *m, uint32_t cnt)
{
    node *l = node_new(1, NODE_LEAF), *in = node_new(2, NODE_INTERNAL);
    int ok = l && in;
    for (uint32_t i = 0; ok && i < cnt; i++) {
        node_item x;
        memset(&x, 0, sizeof x);
        x.key = m[i].key, x.klen = m[i].klen, x.id = m[i].id;
        ok &= node_leaf_insert(l, i, &x) == SOP_OK &&
              node_internal_insert(in, i, m[i].key, m[i].klen, m[i].id, i + 1) == SOP_OK;
    }
    for (int pass = 0; ok && pass < 2; pass++) {
        node *n = pass ? in : l;
        ok &= node_ok(n, m, cnt);
        for (uint32_t i = 0; ok && i < cnt; i++) {
            unsigned char k[KMAX + 1];
            for (size_t c = 0; ok && c <= m[i].klen + 1 && c <= KMAX; c++) {
                /* cut at every length, extended by a zero byte */
                memcpy(k, m[i].key, m[i].klen);
                k[m[i].klen] = 0;
                ok &= probe_ok(n, m, cnt, k, c, NULL) && probe_ok(n, m, cnt, k, c, m[i].id);
                if (c < m[i].klen) { /* byte c one up and one down */
                    k[c] = (unsigned char)(m[i].key[c] + 1);
                    ok &= probe_ok(n, m, cnt, k, m[i].klen, NULL);
                    k[c] = (unsigned char)(m[i].key[c] - 1);
                    ok &= probe_ok(n, m, cnt, k, m[i].klen, NULL);
                }
            }
        }
    }
    node_unref(l);
    node_unref(in);
    return ok;
}

static int mkey_order(const void *a, const void *b)
{
    const mkey *x = a, *y = b;
    return node_cmp(x->key, x->klen, x->id, y->key, y->klen, y->id);
}

/* Sort m[0..cnt) and drop duplicates; returns the new count. */
static uint32_t m_sort(mkey *m, uint32_t cnt)
{
    uint32_t o = 0;
    qsort(m, cnt, sizeof *m, mkey_order);
    for (uint32_t i = 0; i < cnt; i++)
        if (o == 0 || mkey_order(&m[o - 1], &m[i]) != 0)
            m[o++] = m[i];
    return o;
}

TEST(test_prefix_search)
{
    /* prefix ties: a short key vs the same bytes padded with zeros */
    node *l = node_new(1, NODE_LEAF);
    static const unsigned char k1[] = "ab", k2[] = {'a', 'b', 0, 0}, k3[] = "abcdefgh1",
                               k4[] = "abcdefgh";
    static mkey m[64];
    node_item x;
    int eq;
    REQUIRE(l);
    memset(&x, 0, sizeof x);
    x.key = k1, x.klen = 2;
    CHECK_RC(node_leaf_insert(l, 0, &x), SOP_OK);
    x.key = k2, x.klen = 4;
    CHECK_RC(node_leaf_insert(l, 1, &x), SOP_OK);
    x.key = k3, x.klen = 9;
    CHECK_RC(node_leaf_insert(l, 2, &x), SOP_OK);
    CHECK(node_lower_bound(l, k2, 3, NULL, &eq) == 1 && eq == 0);
    CHECK(node_lower_bound(l, k2, 4, NULL, &eq) == 1 && eq == 1);
    CHECK(node_lower_bound(l, k1, 2, NULL, &eq) == 0 && eq == 1);
    CHECK(node_lower_bound(l, k4, 8, NULL, &eq) == 2 && eq == 0);
    CHECK(node_lower_bound(l, k3, 10, NULL, &eq) == 3 && eq == 0);
    CHECK(l->cpl == 2);
    node_unref(l);

    /* keys sharing 0, 7, 8, 9, 15 and 100 bytes: the shared bytes, then
     * tails that are empty, zero bytes, prefixes of each other, 0xff */
    for (size_t s = 0; s < sizeof shared_lens / sizeof shared_lens[0]; s++) {
        static const char *tails[] = {"", "\0", "\0\0", "\x01", "a", "ab", "ab\0",
                                      "abcdefghij", "abcdefghik", "\xff", "\xff\xff"};
        static const size_t tlen[] = {0, 1, 2, 1, 1, 2, 3, 10, 10, 1, 2};
        uint32_t cnt = 0;
        for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
            for (size_t j = 0; j < shared_lens[s]; j++)
                m[cnt].key[j] = (unsigned char)(j % 7 ? 'p' + j % 5 : 0);
            memcpy(m[cnt].key + shared_lens[s], tails[t], tlen[t]);
            m[cnt].klen = shared_lens[s] + tlen[t];
            make_id(m[cnt].id, (uint32_t)t % 2);
            cnt++;
        }
        cnt = m_sort(m, cnt);
        CHECK(all_probes_ok(m, cnt));
        CHECK(all_probes_ok(m + 1, cnt - 1)); /* without the bare shared prefix */
        CHECK(all_probes_ok(m, 1) && all_probes_ok(m + 3, 2));
        /* the shared bytes cut short: keys that are prefixes of the rest */
        if (shared_lens[s] > 2) {
            m[cnt] = m[0];
            m[cnt].klen = shared_lens[s] - 1;
            m[cnt + 1] = m[0];
            m[cnt + 1].klen = 0; /* the empty key */
            cnt = m_sort(m, cnt + 2);
            CHECK(all_probes_ok(m, cnt));
        }
    }
    /* sequential 16-byte big-endian integers and 16-digit string keys */
    for (int fam = 2; fam <= 3; fam++) {
        uint32_t cnt = 0;
        for (uint32_t v = 250; v < 262; v++, cnt++) {
            fam_base = v;
            cur_fam = fam, fam_mix = 0;
            family_key(fam, m[cnt].key, &m[cnt].klen);
            if (fam == 2) { /* exact value: overwrite the random offset */
                memset(m[cnt].key, 0, 16);
                m[cnt].key[15] = (unsigned char)v, m[cnt].key[14] = (unsigned char)(v >> 8);
            } else {
                snprintf((char *)m[cnt].key + 1, 17, "%016u", v);
                m[cnt].key[17] = 0;
            }
            make_id(m[cnt].id, 0);
        }
        cnt = m_sort(m, cnt);
        CHECK(cnt == 12);
        CHECK(all_probes_ok(m, cnt));
    }

    /* randomized model tests: each family alone, then mixed */
    for (int fam = 0; fam < 6; fam++) {
        for (size_t s = 0; s < (fam == 1 ? sizeof shared_lens / sizeof shared_lens[0] : 1); s++) {
            fam_shared = shared_lens[s];
            fam_base = rnd() % 100000;
            cur_fam = fam;
            fam_mix = 0;
            pfx_round(NODE_LEAF, 1500);
            pfx_round(NODE_INTERNAL, 1500);
            fam_mix = 10;
            pfx_round(NODE_LEAF, 1500);
            pfx_round(NODE_INTERNAL, 1500);
        }
    }
    fam_shared = 9;
    cur_fam = 0;
    fam_mix = 100;
    pfx_round(NODE_LEAF, 3000);
    pfx_round(NODE_INTERNAL, 3000);
}

/* Sequential inserts keep a long common prefix (C benchmark keys: 16-byte
 * big-endian integers; the prefix array then discriminates the low bytes). */
TEST(test_common_prefix_upkeep)
{
    node *l = node_new(1, NODE_LEAF), *r = node_new(2, NODE_LEAF);
    unsigned char key[16] = {0}, id[16] = {0};
    node_item x;
    REQUIRE(l && r);
    memset(&x, 0, sizeof x);
    x.key = key, x.klen = 16, x.id = id;
    key[14] = 1;
    CHECK_RC(node_leaf_insert(l, 0, &x), SOP_OK);
    CHECK(l->cpl == 16);
    for (uint32_t v = 1; v < 200; v++) {
        key[15] = (unsigned char)v;
        CHECK_RC(node_leaf_insert(l, v, &x), SOP_OK);
    }
    CHECK(l->cpl == 15);
    key[15] = 0;
    key[13] = 1; /* past the end: the common prefix shrinks */
    CHECK_RC(node_leaf_insert(l, l->count, &x), SOP_OK);
    CHECK(l->cpl == 13);
    /* removing it leaves the (still valid) shorter prefix; a split of the
     * node recomputes it for both halves */
    node_remove(l, l->count - 1);
    CHECK(l->cpl == 13);
    CHECK_RC(node_append(r, l, 100, l->count), SOP_OK);
    node_truncate(l, 100);
    CHECK(l->cpl == 15 && r->cpl == 15);
    key[13] = 0, key[14] = 1, key[15] = 7;
    {
        int eq;
        CHECK(node_lower_bound(l, key, 16, NULL, &eq) == 7 && eq == 1);
        CHECK(node_lower_bound(r, key, 16, NULL, &eq) == 0 && eq == 0);
        key[14] = 2;
        CHECK(node_lower_bound(l, key, 16, NULL, &eq) == 100 && eq == 0);
        CHECK(node_lower_bound(r, key, 16, NULL, &eq) == r->count && eq == 0);
        key[14] = 0;
        CHECK(node_lower_bound(r, key, 16, NULL, &eq) == 0 && eq == 0);
        CHECK(node_lower_bound(r, key, 15, NULL, &eq) == 0 && eq == 0);
    }
    node_unref(l);
    node_unref(r);

    /* a single entry replaced by another key of the same length (the common
     * prefix is the whole key: same length, other bytes), short and long */
    for (int kind = NODE_LEAF; kind <= NODE_INTERNAL; kind++) {
        for (size_t len = 3; len <= 40; len += 37) {
            unsigned char k1[40], k2[40];
            int eq;
            node *n = node_new(1, kind);
            REQUIRE(n);
            memset(k1, 'a', sizeof k1);
            memset(k2, 'x', sizeof k2);
            memset(&x, 0, sizeof x);
            x.key = k1, x.klen = len;
            if (kind == NODE_LEAF)
                CHECK_RC(node_leaf_insert(n, 0, &x), SOP_OK);
            else
                CHECK_RC(node_internal_insert(n, 0, k1, len, NULL, 5), SOP_OK);
            x.key = k2;
            if (kind == NODE_LEAF)
                CHECK_RC(node_leaf_replace(n, 0, &x), SOP_OK);
            else
                CHECK_RC(node_internal_set_key(n, 0, k2, len, NULL), SOP_OK);
            CHECK(n->cpl == len);
            CHECK(node_lower_bound(n, k2, len, NULL, &eq) == 0 && eq == 1);
            CHECK(node_lower_bound(n, k1, len, NULL, &eq) == 0 && eq == 0);
            CHECK(node_lower_bound(n, k2, len - 1, NULL, &eq) == 0 && eq == 0);
            k1[0] = 'y';
            CHECK(node_lower_bound(n, k1, 1, NULL, &eq) == 1 && eq == 0);
            CHECK(node_key_is(n, 0, k2, len) && !node_key_is(n, 0, k1, len));
            if (kind == NODE_INTERNAL)
                CHECK(node_child_index(n, k2, len, NULL) == 1 &&
                      node_child_index(n, k2, 2, NULL) == 0);
            node_unref(n);
        }
    }
}

/* Value references (ITEM_VALUE_REF) are translated by node_encode with a map
 * and by node_map_value_refs; nodes without any are encoded verbatim. */
TEST(test_value_refs)
{
    node *l = node_new(1, NODE_LEAF), *r = node_new(2, NODE_LEAF), *d;
    unsigned char key[8], id[16] = {0}, ref[16], val[5] = "hello", *b1, *b2;
    size_t len, len2;
    node_item x, it;
    REQUIRE(l && r);
    for (uint32_t i = 0; i < 40; i++) {
        memset(&x, 0, sizeof x);
        snprintf((char *)key, sizeof key, "%c%05u", i % 3 ? 'k' : 'z', i);
        x.key = key, x.klen = 6, x.id = id;
        if (i % 3 == 0) {
            sop_put64(ref, 500 + i);
            sop_put64(ref + 8, 12345);
            x.flags = ITEM_VALUE_REF, x.val = ref, x.vlen = 16;
        } else {
            x.val = val, x.vlen = 5;
        }
        /* the refs go to l; r gets the plain items in a scrambled order */
        if (i % 3 == 0)
            CHECK_RC(node_leaf_insert(l, l->count, &x), SOP_OK);
        else
            CHECK_RC(node_leaf_insert(r, node_lower_bound(r, key, 6, id, NULL), &x), SOP_OK);
    }
    CHECK(l->has_refs && !r->has_refs);
    /* a plain leaf: the map changes nothing, sequential or not */
    b1 = encode(r, &len);
    b2 = malloc(len);
    REQUIRE(b1 && b2);
    node_encode(r, b2, map_plus_1000, NULL);
    CHECK(memcmp(b1, b2, len) == 0);
    free(b1);
    free(b2);
    /* merged: every reference translated once, plain values untouched */
    CHECK_RC(node_append(r, l, 0, l->count), SOP_OK);
    CHECK(r->has_refs);
    len = node_encoded_size(r);
    b1 = malloc(len);
    REQUIRE(b1);
    node_encode(r, b1, map_plus_1000, NULL);
    CHECK_RC(node_decode(b1, len, 3, &d), SOP_OK);
    REQUIRE(d);
    CHECK(d->has_refs && d->count == 40);
    {
        uint32_t refs = 0;
        for (uint32_t i = 0; i < d->count; i++) {
            node_item y;
            node_get(d, i, &it);
            node_get(r, i, &y);
            if (it.flags & ITEM_VALUE_REF) {
                refs++;
                CHECK(sop_get64(it.val) == sop_get64(y.val) + 1000);
                CHECK(sop_get64(it.val + 8) == 12345);
            } else {
                CHECK(it.vlen == 5 && memcmp(it.val, "hello", 5) == 0);
            }
        }
        CHECK(refs == 14);
    }
    /* in place, as a commit does with its private nodes */
    node_map_value_refs(r, map_plus_1000, NULL);
    b2 = encode(r, &len2);
    CHECK(len2 == len && memcmp(b1, b2, len) == 0);
    free(b1);
    free(b2);
    node_unref(d);
    /* emptied: no references any more */
    node_truncate(r, 0);
    CHECK(!r->has_refs);
    node_unref(l);
    node_unref(r);
}

int main(void)
{
    RUN(test_compare);
    RUN(test_leaf_edits);
    RUN(test_moves);
    RUN(test_roundtrip);
    RUN(test_refcount);
    RUN(test_decode_fuzz);
    RUN(test_decode_random);
    RUN(test_prefix_search);
    RUN(test_common_prefix_upkeep);
    RUN(test_value_refs);
    TEST_EXIT();
}
