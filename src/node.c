/*
 * node.c - B+tree nodes: a slot array of u32 offsets into one heap of item
 * bytes (plus a child lid array for internal nodes).  Binary search with
 * memcmp, edits that append to the heap and count the garbage they leave
 * (compacted once garbage exceeds half of the heap), and the validated
 * little-endian on-disk encoding.
 *
 * Heap entries:
 *   leaf:      varint klen | key | id[16] | u8 flags | [varint dlen | doc] | varint vlen | value
 *   internal:  varint klen | key | id[16]
 *
 * Encoded payload (all integers little-endian):
 *   u8 'S' | u8 'N' | u8 NODE_FORMAT_VERSION | u8 kind | u32 count | u32 heap_len
 *   internal: (count+1) x u64 child lids
 *   count x u32 slot offsets
 *   heap: the entries in slot order, back to back (slot[0] = 0, no garbage)
 *
 * Memory: every node is one allocation (struct + child/pfx/slot/heap arrays,
 * `block`).  An array that must grow is moved to its own allocation (bit in
 * `owned`; pfx and slot grow together as one allocation), never per item.
 *
 * Search: besides the slot array, a node keeps in memory (never encoded) an
 * array `pfx` parallel to it: the first 8 key bytes of each entry, zero
 * padded, as a big-endian integer.  Padded prefixes in strict integer order
 * imply the same strict order of the (key, id) pairs, so binary search runs
 * on this dense array and only entries whose prefix equals the probe's are
 * parsed and compared in full (a shorter key and a longer key with trailing
 * zero bytes share a prefix: equal prefixes always fall back to the full
 * compare).
 */
#include "node.h"

#define OWN_SLOT 1u
#define OWN_HEAP 2u
#define OWN_CHILD 4u

#define NODE_MAGIC0 0x53 /* 'S' */
#define NODE_MAGIC1 0x4e /* 'N' */
#define NODE_HDR 12u
#define MIN_LEAF_ENTRY 19u     /* klen 1 + id 16 + flags 1 + vlen 1 */
#define MIN_INTERNAL_ENTRY 17u /* klen 1 + id 16 */

static const unsigned char zero_id[16];

/* ------------------------------------------------------------------ compare */

int node_key_cmp(const unsigned char *ka, size_t la, const unsigned char *kb, size_t lb)
{
    size_t m = la < lb ? la : lb;
    int c = m ? memcmp(ka, kb, m) : 0;
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

int node_cmp(const unsigned char *ka, size_t la, const unsigned char *ida,
             const unsigned char *kb, size_t lb, const unsigned char *idb)
{
    int c = node_key_cmp(ka, la, kb, lb);
    if (c)
        return c;
    return memcmp(ida ? ida : zero_id, idb ? idb : zero_id, 16);
}

/* First 8 bytes of k (zero padded) as a big-endian integer. */
static inline uint64_t key_prefix(const unsigned char *k, size_t l)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ || __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
    uint64_t v = 0;
    if (l >= 8) {
        memcpy(&v, k, 8);
    } else if (l) {
        unsigned char b[8] = {0};
        memcpy(b, k, l);
        memcpy(&v, b, 8);
    }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
#else
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = (v << 8) | (i < l ? k[i] : 0u);
    return v;
#endif
}

/* ------------------------------------------------------------ entry parsing */

/* Parse the entry at p (heap ends at end).  Returns its size in bytes, or 0
 * when it is malformed or runs past end.  Internal entries set key/id only. */
static size_t parse_entry(const unsigned char *p, const unsigned char *end, int leaf,
                          node_item *it)
{
    const unsigned char *start = p;
    uint64_t v;
    size_t k;

    if (p >= end)
        return 0;
    if (*p < 0x80) {
        v = *p;
        k = 1;
    } else if (!(k = sop_varint_get(p, end, &v))) {
        return 0;
    }
    p += k;
    if (v > SOP_MAX_KEY || (size_t)(end - p) < (size_t)v + 16)
        return 0;
    it->key = p;
    it->klen = (size_t)v;
    p += v;
    it->id = p;
    p += 16;
    it->flags = 0;
    it->doc = NULL;
    it->dlen = 0;
    it->val = NULL;
    it->vlen = 0;
    if (!leaf)
        return (size_t)(p - start);
    if (p >= end)
        return 0;
    it->flags = *p++;
    if (it->flags & ITEM_HAS_DOC) {
        if (!(k = sop_varint_get(p, end, &v)))
            return 0;
        p += k;
        if (v > (uint64_t)(end - p))
            return 0;
        it->doc = p;
        it->dlen = (size_t)v;
        p += v;
    }
    if (!(k = sop_varint_get(p, end, &v)))
        return 0;
    p += k;
    if (v > (uint64_t)(end - p))
        return 0;
    it->val = p;
    it->vlen = (size_t)v;
    p += v;
    return (size_t)(p - start);
}

static size_t entry_size(const node *n, uint32_t i)
{
    node_item it;
    size_t s = parse_entry(n->heap + n->slot[i], n->heap + n->heap_len, n->kind == NODE_LEAF, &it);
    SOP_ASSERT(s != 0);
    return s;
}

/* Key of entry i of a valid node (the 16-byte id follows the key). */
size_t node_entry_size(const node *n, uint32_t i)
{
    return entry_size(n, i);
}

static inline const unsigned char *entry_key(const node *n, uint32_t i, size_t *klen)
{
    const unsigned char *p = n->heap + n->slot[i];
    uint64_t v = 0;
    size_t k;
    if (*p < 0x80) {
        *klen = *p;
        return p + 1;
    }
    k = sop_varint_get(p, n->heap + n->heap_len, &v);
    *klen = (size_t)v;
    return p + k;
}

static inline int cmp_entry(const node *n, uint32_t i, const unsigned char *key, size_t klen,
                            const unsigned char *id)
{
    size_t l;
    const unsigned char *k = entry_key(n, i, &l);
    int c = node_key_cmp(k, l, key, klen);
    return c ? c : memcmp(k + l, id, 16);
}

static size_t leaf_item_size(const node_item *it)
{
    size_t s = sop_varint_len(it->klen) + it->klen + 16 + 1 + sop_varint_len(it->vlen) + it->vlen;
    if (it->flags & ITEM_HAS_DOC)
        s += sop_varint_len(it->dlen) + it->dlen;
    return s;
}

static unsigned char *put_bytes(unsigned char *p, const unsigned char *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

static void put_leaf(unsigned char *p, const node_item *it)
{
    p += sop_varint_put(p, it->klen);
    p = put_bytes(p, it->key, it->klen);
    p = put_bytes(p, it->id ? it->id : zero_id, 16);
    *p++ = (unsigned char)it->flags;
    if (it->flags & ITEM_HAS_DOC) {
        p += sop_varint_put(p, it->dlen);
        p = put_bytes(p, it->doc, it->dlen);
    }
    p += sop_varint_put(p, it->vlen);
    put_bytes(p, it->val, it->vlen);
}

static void put_sep(unsigned char *p, const unsigned char *key, size_t klen, const unsigned char *id)
{
    p += sop_varint_put(p, klen);
    p = put_bytes(p, key, klen);
    put_bytes(p, id ? id : zero_id, 16);
}

/* ------------------------------------------------------------ life cycle */

/* One allocation: the struct, then child, pfx, slot and heap arrays. */
static node *alloc_block(size_t slot_cap, size_t child_cap, size_t heap_cap)
{
    size_t hdr = (sizeof(node) + 7) & ~(size_t)7;
    unsigned char *b = sop_malloc(hdr + child_cap * 8 + slot_cap * 12 + heap_cap);
    node *n = (node *)(void *)b;
    if (!b)
        return NULL;
    memset(n, 0, sizeof *n);
    n->child = child_cap ? (uint64_t *)(void *)(b + hdr) : NULL;
    n->pfx = (uint64_t *)(void *)(b + hdr + child_cap * 8);
    n->slot = (uint32_t *)(void *)(b + hdr + child_cap * 8 + slot_cap * 8);
    n->heap = b + hdr + child_cap * 8 + slot_cap * 12;
    n->slot_cap = (uint32_t)slot_cap;
    n->child_cap = (uint32_t)child_cap;
    n->heap_cap = heap_cap;
    n->refs = 1;
    n->block = b;
    return n;
}

node *node_new(uint64_t lid, int kind)
{
    node *n = alloc_block(8, kind == NODE_INTERNAL ? 9 : 0, 256);
    if (!n)
        return NULL;
    n->lid = lid;
    n->kind = (uint8_t)kind;
    n->is_mutable = 1;
    if (kind == NODE_INTERNAL)
        n->child[0] = 0;
    return n;
}

node *node_clone(const node *n, uint64_t lid)
{
    size_t live = node_live_bytes(n);
    size_t scap = (size_t)n->count + n->count / 4 + 4;
    size_t ccap = n->kind == NODE_INTERNAL ? scap + 1 : 0;
    node *c = alloc_block(scap, ccap, live + live / 4 + 64);
    if (!c)
        return NULL;
    c->lid = lid;
    c->kind = n->kind;
    c->is_mutable = 1;
    c->count = n->count;
    if (n->count)
        memcpy(c->pfx, n->pfx, (size_t)n->count * 8);
    if (n->garbage == 0) {
        memcpy(c->slot, n->slot, (size_t)n->count * 4);
        if (live)
            memcpy(c->heap, n->heap, live);
    } else {
        size_t off = 0;
        for (uint32_t i = 0; i < n->count; i++) {
            size_t s = entry_size(n, i);
            memcpy(c->heap + off, n->heap + n->slot[i], s);
            c->slot[i] = (uint32_t)off;
            off += s;
        }
        SOP_ASSERT(off == live);
    }
    c->heap_len = live;
    if (n->kind == NODE_INTERNAL)
        memcpy(c->child, n->child, ((size_t)n->count + 1) * 8);
    return c;
}

void node_ref(node *n)
{
    __atomic_add_fetch(&n->refs, 1, __ATOMIC_RELAXED);
}

void node_unref(node *n)
{
    if (!n || __atomic_sub_fetch(&n->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (n->owned & OWN_SLOT)
        sop_free(n->pfx); /* pfx and slot: one allocation */
    if (n->owned & OWN_HEAP)
        sop_free(n->heap);
    if (n->owned & OWN_CHILD)
        sop_free(n->child);
    sop_free(n->block);
}

size_t node_mem_size(const node *n)
{
    return sizeof(node) + (size_t)n->slot_cap * 12 + (size_t)n->child_cap * 8 + n->heap_cap;
}

/* ------------------------------------------------------------ access */

void node_get(const node *n, uint32_t i, node_item *it)
{
    size_t s;
    SOP_ASSERT(i < n->count);
    s = parse_entry(n->heap + n->slot[i], n->heap + n->heap_len, n->kind == NODE_LEAF, it);
    SOP_ASSERT(s != 0);
    SOP_UNUSED(s);
}

/* Search for (key, klen, id) with prefix q: the first index whose entry is
 * >= the probe (upper = 0), or > the probe (upper = 1). */
static inline uint32_t search(const node *n, uint64_t q, const unsigned char *key, size_t klen,
                              const unsigned char *id, int upper)
{
    const uint64_t *pf = n->pfx;
    const uint64_t *b = pf;
    uint32_t len = n->count, lo, hi;
    if (len == 0)
        return 0;
    /* branch-free lower bound of q in the prefix array, prefetching both
     * possible next probes; the answer stays in [b, b + len] */
    while (len > 1) {
        uint32_t half = len / 2;
#if defined(__GNUC__)
        __builtin_prefetch(b + half / 2 - 1);
        __builtin_prefetch(b + half + half / 2 - 1);
#endif
        b += half & (0u - (uint32_t)(b[half - 1] < q)); /* no branch to mispredict */
        len -= half;
    }
    lo = (uint32_t)(b - pf) + (*b < q);
    if (lo == n->count || pf[lo] != q)
        return lo; /* prefixes decide: entries before lo are smaller, from lo larger */
    /* [lo, hi): the entries whose prefix equals q; compare those in full */
    hi = lo + 1;
    if (hi < n->count && pf[hi] == q) {
        uint32_t l2 = hi + 1, h2 = n->count;
        while (l2 < h2) {
            uint32_t mid = l2 + (h2 - l2) / 2;
            if (pf[mid] == q) /* pf[mid] >= q here */
                l2 = mid + 1;
            else
                h2 = mid;
        }
        hi = l2;
    }
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = cmp_entry(n, mid, key, klen, id);
        if (upper ? c <= 0 : c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint32_t node_lower_bound(const node *n, const unsigned char *key, size_t klen,
                          const unsigned char *id, int *key_eq)
{
    uint64_t q = key_prefix(key, klen);
    uint32_t lo = search(n, q, key, klen, id ? id : zero_id, 0);
    if (key_eq) {
        *key_eq = 0;
        if (lo < n->count && n->pfx[lo] == q)
            *key_eq = node_key_is(n, lo, key, klen);
    }
    return lo;
}

int node_item_is(const node *n, uint32_t i, const unsigned char *key, size_t klen,
                 const unsigned char *id)
{
    if (i >= n->count || n->pfx[i] != key_prefix(key, klen))
        return 0;
    return cmp_entry(n, i, key, klen, id ? id : zero_id) == 0;
}

int node_key_is(const node *n, uint32_t i, const unsigned char *key, size_t klen)
{
    size_t l;
    const unsigned char *k;
    if (i >= n->count || n->pfx[i] != key_prefix(key, klen))
        return 0;
    k = entry_key(n, i, &l);
    return node_key_cmp(k, l, key, klen) == 0;
}

uint32_t node_child_index(const node *n, const unsigned char *key, size_t klen,
                          const unsigned char *id)
{
    /* number of separators <= (key, id) */
    return search(n, key_prefix(key, klen), key, klen, id ? id : zero_id, 1);
}

/* ------------------------------------------------------------ growth */

static int nomem(const node *n)
{
    return sop_report(SOP_NOMEM, "node %llu: out of memory", (unsigned long long)n->lid);
}

static int grow_slots(node *n, uint64_t need)
{
    uint64_t cap;
    uint64_t *pf;
    uint32_t *s;
    if (need <= n->slot_cap)
        return SOP_OK;
    if (need > UINT32_MAX)
        return nomem(n);
    for (cap = n->slot_cap ? n->slot_cap : 8; cap < need; cap *= 2)
        ;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    if (!(pf = sop_malloc((size_t)cap * 12))) /* pfx, then slot */
        return nomem(n);
    s = (uint32_t *)(void *)(pf + cap);
    if (n->count) {
        memcpy(pf, n->pfx, (size_t)n->count * 8);
        memcpy(s, n->slot, (size_t)n->count * 4);
    }
    if (n->owned & OWN_SLOT)
        sop_free(n->pfx);
    n->pfx = pf;
    n->slot = s;
    n->slot_cap = (uint32_t)cap;
    n->owned |= OWN_SLOT;
    return SOP_OK;
}

static int grow_children(node *n, uint64_t need)
{
    uint64_t cap;
    uint64_t *c;
    if (need <= n->child_cap)
        return SOP_OK;
    if (need > UINT32_MAX)
        return nomem(n);
    for (cap = n->child_cap ? n->child_cap : 8; cap < need; cap *= 2)
        ;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    if (!(c = sop_malloc((size_t)cap * 8)))
        return nomem(n);
    if (n->child && n->kind == NODE_INTERNAL)
        memcpy(c, n->child, ((size_t)n->count + 1) * 8);
    if (n->owned & OWN_CHILD)
        sop_free(n->child);
    n->child = c;
    n->child_cap = (uint32_t)cap;
    n->owned |= OWN_CHILD;
    return SOP_OK;
}

/* Room for `need` more bytes at heap + heap_len.  When the heap must grow or
 * is more than half garbage, a new compacted heap is built; the old buffer
 * is handed back in *old (to free after the new entry is written: the
 * caller's item may point into it). */
static int heap_reserve(node *n, size_t need, unsigned char **old)
{
    size_t live = node_live_bytes(n), cap;
    unsigned char *h;
    *old = NULL;
    if (n->garbage <= n->heap_len / 2 && n->heap_len + need <= n->heap_cap &&
        n->heap_len + need <= UINT32_MAX)
        return SOP_OK;
    if (need > UINT32_MAX || live + need > UINT32_MAX)
        return sop_report(SOP_NOMEM, "node %llu: node heap over 4 GiB", (unsigned long long)n->lid);
    for (cap = n->heap_cap ? n->heap_cap : 256; cap < live + need; cap *= 2)
        ;
    if (!(h = sop_malloc(cap)))
        return nomem(n);
    if (n->garbage == 0) {
        if (live)
            memcpy(h, n->heap, live);
    } else {
        size_t off = 0;
        for (uint32_t i = 0; i < n->count; i++) {
            size_t s = entry_size(n, i);
            memcpy(h + off, n->heap + n->slot[i], s);
            n->slot[i] = (uint32_t)off;
            off += s;
        }
        SOP_ASSERT(off == live);
    }
    if (n->owned & OWN_HEAP)
        *old = n->heap;
    n->heap = h;
    n->heap_cap = cap;
    n->heap_len = live;
    n->garbage = 0;
    n->owned |= OWN_HEAP;
    return SOP_OK;
}

/* ------------------------------------------------------------ edits */

int node_leaf_insert(node *n, uint32_t i, const node_item *it)
{
    size_t sz = leaf_item_size(it);
    uint64_t q = key_prefix(it->key, it->klen); /* before `old` is freed */
    unsigned char *old;
    int rc;
    SOP_ASSERT(n->is_mutable && n->kind == NODE_LEAF && i <= n->count);
    if ((rc = grow_slots(n, (uint64_t)n->count + 1)) != SOP_OK ||
        (rc = heap_reserve(n, sz, &old)) != SOP_OK)
        return rc;
    put_leaf(n->heap + n->heap_len, it);
    sop_free(old);
    memmove(n->slot + i + 1, n->slot + i, (size_t)(n->count - i) * 4);
    memmove(n->pfx + i + 1, n->pfx + i, (size_t)(n->count - i) * 8);
    n->slot[i] = (uint32_t)n->heap_len;
    n->pfx[i] = q;
    n->heap_len += sz;
    n->count++;
    return SOP_OK;
}

int node_leaf_replace(node *n, uint32_t i, const node_item *it)
{
    size_t sz = leaf_item_size(it);
    uint64_t q = key_prefix(it->key, it->klen); /* before `old` is freed */
    unsigned char *old;
    int rc;
    SOP_ASSERT(n->is_mutable && n->kind == NODE_LEAF && i < n->count);
    if ((rc = heap_reserve(n, sz, &old)) != SOP_OK)
        return rc;
    put_leaf(n->heap + n->heap_len, it);
    sop_free(old);
    n->garbage += entry_size(n, i);
    n->slot[i] = (uint32_t)n->heap_len;
    n->pfx[i] = q;
    n->heap_len += sz;
    return SOP_OK;
}

/* Insert separator i with child `lid` at child index cpos (i or i+1). */
static int internal_insert(node *n, uint32_t i, const unsigned char *key, size_t klen,
                           const unsigned char *id, uint32_t cpos, uint64_t lid)
{
    size_t sz = sop_varint_len(klen) + klen + 16;
    uint64_t q = key_prefix(key, klen); /* before `old` is freed */
    unsigned char *old;
    int rc;
    SOP_ASSERT(n->is_mutable && n->kind == NODE_INTERNAL && i <= n->count);
    if ((rc = grow_slots(n, (uint64_t)n->count + 1)) != SOP_OK ||
        (rc = grow_children(n, (uint64_t)n->count + 2)) != SOP_OK ||
        (rc = heap_reserve(n, sz, &old)) != SOP_OK)
        return rc;
    put_sep(n->heap + n->heap_len, key, klen, id);
    sop_free(old);
    memmove(n->slot + i + 1, n->slot + i, (size_t)(n->count - i) * 4);
    memmove(n->pfx + i + 1, n->pfx + i, (size_t)(n->count - i) * 8);
    n->slot[i] = (uint32_t)n->heap_len;
    n->pfx[i] = q;
    n->heap_len += sz;
    memmove(n->child + cpos + 1, n->child + cpos, ((size_t)n->count + 1 - cpos) * 8);
    n->child[cpos] = lid;
    n->count++;
    return SOP_OK;
}

int node_internal_insert(node *n, uint32_t i, const unsigned char *key, size_t klen,
                         const unsigned char *id, uint64_t right)
{
    return internal_insert(n, i, key, klen, id, i + 1, right);
}

int node_internal_insert_left(node *n, uint32_t i, const unsigned char *key, size_t klen,
                              const unsigned char *id, uint64_t left)
{
    return internal_insert(n, i, key, klen, id, i, left);
}

int node_internal_set_key(node *n, uint32_t i, const unsigned char *key, size_t klen,
                          const unsigned char *id)
{
    size_t sz = sop_varint_len(klen) + klen + 16;
    uint64_t q = key_prefix(key, klen); /* before `old` is freed */
    unsigned char *old;
    int rc;
    SOP_ASSERT(n->is_mutable && n->kind == NODE_INTERNAL && i < n->count);
    if ((rc = heap_reserve(n, sz, &old)) != SOP_OK)
        return rc;
    put_sep(n->heap + n->heap_len, key, klen, id);
    sop_free(old);
    n->garbage += entry_size(n, i);
    n->slot[i] = (uint32_t)n->heap_len;
    n->pfx[i] = q;
    n->heap_len += sz;
    return SOP_OK;
}

void node_set_child(node *n, uint32_t i, uint64_t lid)
{
    SOP_ASSERT(n->is_mutable && n->kind == NODE_INTERNAL && i <= n->count);
    n->child[i] = lid;
}

static void after_shrink(node *n)
{
    if (n->count == 0) {
        n->heap_len = 0;
        n->garbage = 0;
    }
}

/* Remove entry i and child cpos. */
static void remove_at(node *n, uint32_t i, uint32_t cpos)
{
    SOP_ASSERT(n->is_mutable && i < n->count);
    n->garbage += entry_size(n, i);
    memmove(n->slot + i, n->slot + i + 1, (size_t)(n->count - i - 1) * 4);
    memmove(n->pfx + i, n->pfx + i + 1, (size_t)(n->count - i - 1) * 8);
    if (n->kind == NODE_INTERNAL)
        memmove(n->child + cpos, n->child + cpos + 1, ((size_t)n->count - cpos) * 8);
    n->count--;
    after_shrink(n);
}

void node_remove(node *n, uint32_t i)
{
    remove_at(n, i, i + 1);
}

void node_internal_remove_left(node *n, uint32_t i)
{
    SOP_ASSERT(n->kind == NODE_INTERNAL);
    remove_at(n, i, i);
}

void node_truncate(node *n, uint32_t at)
{
    SOP_ASSERT(n->is_mutable && at <= n->count);
    for (uint32_t i = at; i < n->count; i++)
        n->garbage += entry_size(n, i);
    n->count = at;
    after_shrink(n);
}

int node_reset(node *n, int kind)
{
    int rc;
    SOP_ASSERT(n->is_mutable);
    n->count = 0;
    n->heap_len = 0;
    n->garbage = 0;
    n->kind = (uint8_t)kind;
    if (kind == NODE_INTERNAL) {
        if (!n->child)
            n->child_cap = 0;
        if ((rc = grow_children(n, 1)) != SOP_OK)
            return rc;
        n->child[0] = 0;
    }
    return SOP_OK;
}

/* Append entries [a, b) of from to the end of to; internal: children
 * cfirst .. cfirst + (b - a) - 1 too. */
static int append_range(node *to, const node *from, uint32_t a, uint32_t b, uint32_t cfirst)
{
    uint32_t m = b - a;
    size_t bytes = 0, off;
    unsigned char *old;
    int rc;
    SOP_ASSERT(to->is_mutable && to != from && to->kind == from->kind && a <= b && b <= from->count);
    if (m == 0)
        return SOP_OK;
    for (uint32_t i = a; i < b; i++)
        bytes += entry_size(from, i);
    if ((rc = grow_slots(to, (uint64_t)to->count + m)) != SOP_OK)
        return rc;
    if (to->kind == NODE_INTERNAL && (rc = grow_children(to, (uint64_t)to->count + 1 + m)) != SOP_OK)
        return rc;
    if ((rc = heap_reserve(to, bytes, &old)) != SOP_OK)
        return rc;
    sop_free(old);
    off = to->heap_len;
    for (uint32_t i = a; i < b; i++) {
        size_t s = entry_size(from, i);
        memcpy(to->heap + off, from->heap + from->slot[i], s);
        to->slot[to->count + (i - a)] = (uint32_t)off;
        off += s;
    }
    to->heap_len = off;
    memcpy(to->pfx + to->count, from->pfx + a, (size_t)m * 8);
    if (to->kind == NODE_INTERNAL)
        memcpy(to->child + to->count + 1, from->child + cfirst, (size_t)m * 8);
    to->count += m;
    return SOP_OK;
}

int node_append(node *to, const node *from, uint32_t a, uint32_t b)
{
    return append_range(to, from, a, b, a + 1);
}

int node_move_tail(node *from, uint32_t at, node *to)
{
    int rc = append_range(to, from, at, from->count, at + 1);
    if (rc == SOP_OK)
        node_truncate(from, at);
    return rc;
}

int node_move_head(node *from, uint32_t k, node *to)
{
    int rc = append_range(to, from, 0, k, 0);
    if (rc != SOP_OK)
        return rc;
    SOP_ASSERT(from->is_mutable);
    for (uint32_t i = 0; i < k; i++)
        from->garbage += entry_size(from, i);
    memmove(from->slot, from->slot + k, (size_t)(from->count - k) * 4);
    memmove(from->pfx, from->pfx + k, (size_t)(from->count - k) * 8);
    if (from->kind == NODE_INTERNAL)
        memmove(from->child, from->child + k, ((size_t)from->count - k + 1) * 8);
    from->count -= k;
    after_shrink(from);
    return SOP_OK;
}

/* ------------------------------------------------------------ encoding */

size_t node_encoded_size(const node *n)
{
    size_t s = NODE_HDR + (size_t)n->count * 4 + node_live_bytes(n);
    if (n->kind == NODE_INTERNAL)
        s += ((size_t)n->count + 1) * 8;
    return s;
}

void node_encode(const node *n, unsigned char *out, uint64_t (*map)(void *arg, uint64_t lid),
                 void *map_arg)
{
    unsigned char *p = out + NODE_HDR, *slots, *heap;
    size_t off = 0;
    out[0] = NODE_MAGIC0;
    out[1] = NODE_MAGIC1;
    out[2] = NODE_FORMAT_VERSION;
    out[3] = n->kind;
    sop_put32(out + 4, n->count);
    sop_put32(out + 8, (uint32_t)node_live_bytes(n));
    if (n->kind == NODE_INTERNAL) {
        for (uint32_t i = 0; i <= n->count; i++, p += 8)
            sop_put64(p, map ? map(map_arg, n->child[i]) : n->child[i]);
    }
    slots = p;
    heap = p + (size_t)n->count * 4;
    for (uint32_t i = 0; i < n->count; i++) {
        size_t s = entry_size(n, i);
        memcpy(heap + off, n->heap + n->slot[i], s);
        sop_put32(slots + (size_t)i * 4, (uint32_t)off);
        if (map && n->kind == NODE_LEAF) {
            node_item it;
            node_get(n, i, &it);
            if ((it.flags & ITEM_VALUE_REF) && it.vlen == 16) {
                /* a reference to a separate value blob: translate its lid too */
                size_t at = (size_t)(it.val - (n->heap + n->slot[i]));
                sop_put64(heap + off + at, map(map_arg, sop_get64(it.val)));
            }
        }
        off += s;
    }
    SOP_ASSERT(off == node_live_bytes(n));
}

void node_map_value_refs(node *n, uint64_t (*map)(void *arg, uint64_t lid), void *map_arg)
{
    if (n->kind != NODE_LEAF)
        return;
    for (uint32_t i = 0; i < n->count; i++) {
        node_item it;
        node_get(n, i, &it);
        if ((it.flags & ITEM_VALUE_REF) && it.vlen == 16) {
            unsigned char *v = n->heap + (size_t)(it.val - n->heap);
            sop_put64(v, map(map_arg, sop_get64(it.val)));
        }
    }
}

#define BAD(...) SOP_CORRUPT_AT("node %llu: " __VA_ARGS__)

int node_decode(const void *buf, size_t len, uint64_t lid, node **out)
{
    const unsigned char *b = buf, *p;
    unsigned long long L = (unsigned long long)lid;
    uint32_t count, hlen;
    uint64_t need, min_entry;
    size_t off = 0;
    int kind, leaf;
    node *n;
    node_item prev = {0}, it;

    *out = NULL;
    if (len < NODE_HDR)
        return BAD("payload truncated (%zu bytes)", L, len);
    if (b[0] != NODE_MAGIC0 || b[1] != NODE_MAGIC1)
        return BAD("bad magic", L);
    if (b[2] != NODE_FORMAT_VERSION)
        return BAD("unsupported node format version %u", L, (unsigned)b[2]);
    kind = b[3];
    if (kind != NODE_LEAF && kind != NODE_INTERNAL)
        return BAD("bad kind %d", L, kind);
    leaf = kind == NODE_LEAF;
    count = sop_get32(b + 4);
    hlen = sop_get32(b + 8);
    if (!leaf && count == 0)
        return BAD("internal node without separators", L);
    need = (uint64_t)NODE_HDR + (uint64_t)count * 4 + hlen + (leaf ? 0 : ((uint64_t)count + 1) * 8);
    if (need != len)
        return BAD("length %zu does not match count %u and heap %u", L, len, count, hlen);
    min_entry = leaf ? MIN_LEAF_ENTRY : MIN_INTERNAL_ENTRY;
    if ((uint64_t)count * min_entry > hlen)
        return BAD("heap of %u bytes too small for %u entries", L, hlen, count);
    n = alloc_block(count, leaf ? 0 : (size_t)count + 1, hlen);
    if (!n)
        return sop_report(SOP_NOMEM, "node %llu: out of memory decoding", L);
    n->lid = lid;
    n->kind = (uint8_t)kind;
    n->count = count;
    n->heap_len = hlen;
    p = b + NODE_HDR;
    if (!leaf) {
        for (uint32_t i = 0; i <= count; i++, p += 8)
            n->child[i] = sop_get64(p);
    }
    for (uint32_t i = 0; i < count; i++, p += 4)
        n->slot[i] = sop_get32(p);
    if (hlen)
        memcpy(n->heap, p, hlen);
    for (uint32_t i = 0; i < count; i++) {
        size_t s;
        if (n->slot[i] != off) {
            BAD("entry %u at offset %u, expected %zu", L, i, n->slot[i], off);
            goto fail;
        }
        s = parse_entry(n->heap + off, n->heap + hlen, leaf, &it);
        if (!s) {
            BAD("entry %u malformed or out of bounds", L, i);
            goto fail;
        }
        if (leaf) {
            if (it.flags & ~(unsigned)(ITEM_HAS_DOC | ITEM_VALUE_REF)) {
                BAD("entry %u has unknown flags 0x%x", L, i, it.flags);
                goto fail;
            }
            if ((it.flags & ITEM_VALUE_REF) && it.vlen != 16) {
                BAD("entry %u value reference of %zu bytes", L, i, it.vlen);
                goto fail;
            }
            if (it.dlen > SOP_MAX_KEY_DOC || it.vlen > SOP_MAX_VALUE) {
                BAD("entry %u document or value too large", L, i);
                goto fail;
            }
        }
        if (i > 0 && node_cmp(prev.key, prev.klen, prev.id, it.key, it.klen, it.id) >= 0) {
            BAD("entries %u and %u out of order", L, i - 1, i);
            goto fail;
        }
        n->pfx[i] = key_prefix(it.key, it.klen);
        prev = it;
        off += s;
    }
    if (off != hlen) {
        BAD("heap has %zu bytes after the last entry", L, (size_t)hlen - off);
        goto fail;
    }
    *out = n;
    return SOP_OK;
fail:
    node_unref(n);
    return SOP_CORRUPT;
}
