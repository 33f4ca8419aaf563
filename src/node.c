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
 * `block`; the struct 64-byte aligned inside it).  An array that must grow is
 * moved to its own allocation (bit in `owned`; pfx and slot grow together as
 * one allocation), never per item.  Entries appended in key order lie in the
 * heap in slot order (`in_order`): truncating, appending such a range and
 * encoding then copy whole blocks without parsing entries.
 *
 * Search: besides the slot array, a node keeps in memory (never encoded) a
 * common prefix length `cpl` (every key of the node starts with the first
 * cpl bytes of entry 0's key) and an array `pfx` parallel to the slots: the
 * 8 key bytes of each entry after the common prefix (bytes cpl..cpl+7), zero
 * padded, as a big-endian integer.  A probe is first compared with the
 * common prefix (with its first 16 bytes kept in `cpw`, so usually without
 * reading the heap; when it differs the probe sorts before or after every
 * entry); otherwise its own 8 bytes at offset cpl are compared with the
 * array.  Padded prefixes in strict integer order imply the same strict
 * order of the (key, id) pairs, so binary search runs on this dense array and
 * only entries whose prefix equals the probe's are parsed and compared in
 * full (a shorter key and a longer key with trailing zero bytes share a
 * prefix: equal prefixes always fall back to the full compare).  Sequential
 * keys, which share their first bytes, thus still differ in the array.
 *
 * Keeping cpl: any value works as long as all keys share those bytes, so
 * removals keep it (it may become shorter than the longest common prefix);
 * an insert or key replacement of a key that does not share it shortens it
 * and rebuilds the array (and always for a node's only key, whose bytes
 * are the whole common prefix); the bulk edits (append/move/truncate) and
 * decoding recompute it from the first and last keys (in a sorted node their
 * common prefix is the common prefix of all keys) and rebuild the array when
 * it changed; a clone copies it.  Item order is always memcmp order of the key bytes (index
 * specifications are encoded into memcmp-ordered keys by keyenc.c), so this
 * holds for every store.
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
    uint64_t v;
    if (l >= 8) {
        memcpy(&v, k, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        v = __builtin_bswap64(v);
#endif
        return v;
    }
    if (l >= 4) { /* bytes 0..3 and l-4..l-1 (overlapping) */
        uint32_t a, b;
        memcpy(&a, k, 4);
        memcpy(&b, k + l - 4, 4);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        a = __builtin_bswap32(a);
        b = __builtin_bswap32(b);
#endif
        return (uint64_t)a << 32 | (uint64_t)b << (64 - 8 * l);
    }
    if (l) /* bytes 0, l/2 and l-1 */
        return (uint64_t)k[0] << 56 | (uint64_t)k[l / 2] << (56 - 4 * (l & ~(size_t)1)) |
               (uint64_t)k[l - 1] << (64 - 8 * l);
    return 0;
#else
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = (v << 8) | (i < l ? k[i] : 0u);
    return v;
#endif
}

/* Key prefix of k after its first off bytes (0 when the key is not longer). */
static inline uint64_t sfx_prefix(const unsigned char *k, size_t l, size_t off)
{
    return l > off ? key_prefix(k + off, l - off) : 0;
}

/* memcmp sign of n bytes, inline: keys and their common prefixes are
 * short, a library call costs more than the compare. */
static inline int bytes_cmp(const unsigned char *a, const unsigned char *b, size_t n)
{
    uint64_t x, y;
    while (n >= 8) {
        x = key_prefix(a, 8);
        y = key_prefix(b, 8);
        if (x != y)
            return x < y ? -1 : 1;
        a += 8, b += 8, n -= 8;
    }
    x = key_prefix(a, n);
    y = key_prefix(b, n);
    return x < y ? -1 : x > y;
}

/* node_key_cmp with bytes_cmp. */
static inline int key_cmp(const unsigned char *ka, size_t la, const unsigned char *kb, size_t lb)
{
    int c = bytes_cmp(ka, kb, la < lb ? la : lb);
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

/* Index of the first nonzero byte of a nonzero big-endian word. */
static inline size_t first_diff(uint64_t x)
{
#if defined(__GNUC__)
    return (size_t)__builtin_clzll(x) / 8;
#else
    size_t i = 0;
    while (!(x >> 56))
        x <<= 8, i++;
    return i;
#endif
}

/* Length of the common prefix of a and b. */
static size_t common_prefix(const unsigned char *a, size_t la, const unsigned char *b, size_t lb)
{
    size_t m = la < lb ? la : lb, i = 0;
    while (m - i >= 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            break;
        i += 8;
    }
    while (i < m && a[i] == b[i])
        i++;
    return i;
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

/* Whether the entries lie back to back in slot order from heap offset 0 with
 * no garbage (so entry i spans slot[i] .. slot[i+1], the last one ends at
 * heap_len): disjoint entries at increasing offsets from 0 whose sizes add up
 * to heap_len tile the heap.  True after decoding, compaction and appends of
 * increasing keys; checked without parsing any entry. */
static int in_order(const node *n)
{
    if (n->garbage != 0 || (n->count && n->slot[0] != 0))
        return 0;
    for (uint32_t i = 1; i < n->count; i++)
        if (n->slot[i] <= n->slot[i - 1])
            return 0;
    return 1;
}

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
    int c = key_cmp(k, l, key, klen);
    return c ? c : bytes_cmp(k + l, id, 16);
}

/* cmp_entry for a probe known to start with the node's common prefix: the
 * first `off` (= cpl) bytes are equal and skipped. */
static inline int cmp_entry_from(const node *n, uint32_t i, const unsigned char *key, size_t klen,
                                 const unsigned char *id, size_t off)
{
    size_t l;
    const unsigned char *k = entry_key(n, i, &l);
    int c = l >= off && klen >= off ? key_cmp(k + off, l - off, key + off, klen - off)
                                    : key_cmp(k, l, key, klen);
    return c ? c : bytes_cmp(k + l, id, 16);
}

/* ------------------------------------------------------------ prefix upkeep */

/* Recompute pfx[a..b) for the current cpl. */
static void rebuild_pfx(node *n, uint32_t a, uint32_t b)
{
    for (uint32_t i = a; i < b; i++) {
        size_t l;
        const unsigned char *k = entry_key(n, i, &l);
        n->pfx[i] = sfx_prefix(k, l, n->cpl);
    }
}

/* Common prefix length of the first and last keys (that of all keys of a
 * sorted node; the whole key of a single entry). */
static uint32_t ends_cpl(const node *n)
{
    size_t la, lb;
    const unsigned char *a, *b;
    if (n->count == 0)
        return 0;
    a = entry_key(n, 0, &la);
    if (n->count == 1)
        return (uint32_t)la;
    b = entry_key(n, n->count - 1, &lb);
    return (uint32_t)common_prefix(a, la, b, lb);
}

/* Set cpl (and cpw, from entry 0). */
static void set_cpl(node *n, uint32_t c)
{
    size_t l, m = c < 16 ? c : 16;
    const unsigned char *k;
    n->cpl = c;
    n->cpw[0] = n->cpw[1] = 0;
    if (n->count == 0)
        return;
    k = entry_key(n, 0, &l);
    if (m > l)
        m = l;
    n->cpw[0] = key_prefix(k, m < 8 ? m : 8);
    if (m > 8)
        n->cpw[1] = key_prefix(k + 8, m - 8);
}

/* After a bulk edit: recompute cpl and rebuild the array if it changed. */
static void refresh_cpl(node *n)
{
    uint32_t c = ends_cpl(n);
    if (c != n->cpl) {
        set_cpl(n, c);
        rebuild_pfx(n, 0, n->count);
    }
}

/* The common prefix length once key is added to n (sole: it will be the
 * only entry).  Call before the heap can move (key may point into it). */
static uint32_t cpl_with(const node *n, const unsigned char *key, size_t klen, int sole)
{
    size_t l;
    const unsigned char *k;
    if (sole || n->count == 0)
        return (uint32_t)klen;
    if (n->cpl == 0)
        return 0;
    if (n->cpl <= 16) { /* against cpw, without reading entry 0 */
        size_t m = klen < n->cpl ? klen : n->cpl, d;
        uint64_t x = key_prefix(key, m < 8 ? m : 8) ^ n->cpw[0];
        if (x || m <= 8)
            d = x ? first_diff(x) : 8;
        else
            d = (x = key_prefix(key + 8, m - 8) ^ n->cpw[1]) ? 8 + first_diff(x) : 16;
        return (uint32_t)(d < m ? d : m);
    }
    k = entry_key(n, 0, &l);
    return (uint32_t)common_prefix(key, klen, k, l < n->cpl ? l : n->cpl);
}

/* After writing entry i (whose prefix was computed with cpl c): set it, or
 * switch the node to c and rebuild every prefix (always for a single entry:
 * its key is the whole common prefix, whose bytes may have changed). */
static void set_pfx(node *n, uint32_t i, uint32_t c, uint64_t q)
{
    if (c == n->cpl && n->count > 1) {
        n->pfx[i] = q;
    } else {
        set_cpl(n, c);
        rebuild_pfx(n, 0, n->count);
    }
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

/* One allocation: the struct, then child, pfx, slot and heap arrays.  The
 * struct starts on a 64-byte boundary so that the fields a search reads
 * (count, cpl, pfx, cpw, slot, heap) share one cache line. */
static node *alloc_block(size_t slot_cap, size_t child_cap, size_t heap_cap)
{
    size_t hdr = (sizeof(node) + 7) & ~(size_t)7;
    unsigned char *raw = sop_malloc(63 + hdr + child_cap * 8 + slot_cap * 12 + heap_cap), *b;
    node *n;
    if (!raw)
        return NULL;
    b = raw + ((64 - ((uintptr_t)raw & 63)) & 63);
    n = (node *)(void *)b;
    memset(n, 0, sizeof *n);
    n->child = child_cap ? (uint64_t *)(void *)(b + hdr) : NULL;
    n->pfx = (uint64_t *)(void *)(b + hdr + child_cap * 8);
    n->slot = (uint32_t *)(void *)(b + hdr + child_cap * 8 + slot_cap * 8);
    n->heap = b + hdr + child_cap * 8 + slot_cap * 12;
    n->slot_cap = (uint32_t)slot_cap;
    n->child_cap = (uint32_t)child_cap;
    n->heap_cap = heap_cap;
    n->refs = 1;
    n->block = raw;
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
    c->cpl = n->cpl;
    c->cpw[0] = n->cpw[0];
    c->cpw[1] = n->cpw[1];
    c->has_refs = n->has_refs;
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

/* Search for (key, klen, id), which starts with the node's common prefix and
 * has the 8 bytes q after it: the first index whose entry is >= the probe
 * (upper = 0), or > the probe (upper = 1). */
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
        int c = cmp_entry_from(n, mid, key, klen, id, n->cpl);
        if (upper ? c <= 0 : c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Compare the probe with the node's common prefix: <0 (>0) when it sorts
 * before (after) every entry, else 0 and *q = its 8 bytes after the common
 * prefix. */
static inline int probe(const node *n, const unsigned char *key, size_t klen, uint64_t *q)
{
    size_t c = n->cpl;
    if (c && n->count) {
        size_t m = klen < c ? klen : c; /* bytes to compare */
        if (c <= 8 && klen >= 8) { /* one word: the probe's first c bytes */
            uint64_t a = key_prefix(key, 8) & (~(uint64_t)0 << (64 - 8 * c));
            if (a != n->cpw[0])
                return a < n->cpw[0] ? -1 : 1;
        } else if (c <= 16) {
            /* against cpw: the probe's m bytes zero padded compare below
             * cpw's only when they are smaller or equal (m < c), and then the
             * probe sorts first either way; above only when they differ */
            uint64_t a = key_prefix(key, m < 8 ? m : 8);
            if (a != n->cpw[0])
                return a < n->cpw[0] ? -1 : 1;
            if (m > 8 && (a = key_prefix(key + 8, m - 8)) != n->cpw[1])
                return a < n->cpw[1] ? -1 : 1;
        } else {
            size_t l;
            int r = bytes_cmp(key, entry_key(n, 0, &l), m);
            if (r)
                return r;
        }
        if (klen < c) /* a proper prefix of the common prefix */
            return -1;
    }
    *q = sfx_prefix(key, klen, c);
    return 0;
}

uint32_t node_lower_bound(const node *n, const unsigned char *key, size_t klen,
                          const unsigned char *id, int *key_eq)
{
    uint64_t q = 0;
    uint32_t lo;
    int r = probe(n, key, klen, &q);
    if (key_eq)
        *key_eq = 0;
    if (r)
        return r < 0 ? 0 : n->count;
    lo = search(n, q, key, klen, id ? id : zero_id, 0);
    if (key_eq && lo < n->count && n->pfx[lo] == q) {
        size_t l, c = n->cpl;
        const unsigned char *k = entry_key(n, lo, &l);
        *key_eq = l >= c ? key_cmp(k + c, l - c, key + c, klen - c) == 0
                         : key_cmp(k, l, key, klen) == 0;
    }
    return lo;
}

int node_item_is(const node *n, uint32_t i, const unsigned char *key, size_t klen,
                 const unsigned char *id)
{
    if (i >= n->count || klen < n->cpl || n->pfx[i] != sfx_prefix(key, klen, n->cpl))
        return 0;
    return cmp_entry(n, i, key, klen, id ? id : zero_id) == 0;
}

int node_key_is(const node *n, uint32_t i, const unsigned char *key, size_t klen)
{
    size_t l;
    const unsigned char *k;
    if (i >= n->count || klen < n->cpl || n->pfx[i] != sfx_prefix(key, klen, n->cpl))
        return 0;
    k = entry_key(n, i, &l);
    return node_key_cmp(k, l, key, klen) == 0;
}

uint32_t node_child_index(const node *n, const unsigned char *key, size_t klen,
                          const unsigned char *id)
{
    /* number of separators <= (key, id) */
    uint64_t q = 0;
    int r = probe(n, key, klen, &q);
    if (r)
        return r < 0 ? 0 : n->count;
    return search(n, q, key, klen, id ? id : zero_id, 1);
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
    uint32_t c = cpl_with(n, it->key, it->klen, 0); /* before `old` is freed */
    uint64_t q = sfx_prefix(it->key, it->klen, c);
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
    n->heap_len += sz;
    n->count++;
    n->has_refs |= (it->flags & ITEM_VALUE_REF) != 0;
    set_pfx(n, i, c, q);
    return SOP_OK;
}

int node_leaf_replace(node *n, uint32_t i, const node_item *it)
{
    size_t sz = leaf_item_size(it);
    uint32_t c;
    uint64_t q;
    unsigned char *old;
    int rc;
    SOP_ASSERT(n->is_mutable && n->kind == NODE_LEAF && i < n->count);
    c = cpl_with(n, it->key, it->klen, n->count == 1); /* before `old` is freed */
    q = sfx_prefix(it->key, it->klen, c);
    if ((rc = heap_reserve(n, sz, &old)) != SOP_OK)
        return rc;
    n->has_refs |= (it->flags & ITEM_VALUE_REF) != 0;
    put_leaf(n->heap + n->heap_len, it);
    sop_free(old);
    n->garbage += entry_size(n, i);
    n->slot[i] = (uint32_t)n->heap_len;
    n->heap_len += sz;
    set_pfx(n, i, c, q);
    return SOP_OK;
}

/* Insert separator i with child `lid` at child index cpos (i or i+1). */
static int internal_insert(node *n, uint32_t i, const unsigned char *key, size_t klen,
                           const unsigned char *id, uint32_t cpos, uint64_t lid)
{
    size_t sz = sop_varint_len(klen) + klen + 16;
    uint32_t c = cpl_with(n, key, klen, 0); /* before `old` is freed */
    uint64_t q = sfx_prefix(key, klen, c);
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
    n->heap_len += sz;
    memmove(n->child + cpos + 1, n->child + cpos, ((size_t)n->count + 1 - cpos) * 8);
    n->child[cpos] = lid;
    n->count++;
    set_pfx(n, i, c, q);
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
    uint32_t c;
    uint64_t q;
    unsigned char *old;
    int rc;
    SOP_ASSERT(n->is_mutable && n->kind == NODE_INTERNAL && i < n->count);
    c = cpl_with(n, key, klen, n->count == 1); /* before `old` is freed */
    q = sfx_prefix(key, klen, c);
    if ((rc = heap_reserve(n, sz, &old)) != SOP_OK)
        return rc;
    put_sep(n->heap + n->heap_len, key, klen, id);
    sop_free(old);
    n->garbage += entry_size(n, i);
    n->slot[i] = (uint32_t)n->heap_len;
    n->heap_len += sz;
    set_pfx(n, i, c, q);
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
        set_cpl(n, 0);
        n->has_refs = 0;
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
    if (at < n->count && in_order(n)) {
        n->heap_len = n->slot[at]; /* the dropped entries are the heap's end */
    } else {
        for (uint32_t i = at; i < n->count; i++)
            n->garbage += entry_size(n, i);
    }
    n->count = at;
    after_shrink(n);
    refresh_cpl(n); /* the remaining keys may share a longer prefix */
}

int node_reset(node *n, int kind)
{
    int rc;
    SOP_ASSERT(n->is_mutable);
    n->count = 0;
    n->heap_len = 0;
    n->garbage = 0;
    set_cpl(n, 0);
    n->has_refs = 0;
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
    uint32_t m = b - a, c;
    size_t bytes = 0, off;
    unsigned char *old;
    int rc, block;
    SOP_ASSERT(to->is_mutable && to != from && to->kind == from->kind && a <= b && b <= from->count);
    if (m == 0)
        return SOP_OK;
    if ((block = in_order(from)) != 0) /* one block: slot[a] .. the end of entry b-1 */
        bytes = (b < from->count ? from->slot[b] : from->heap_len) - from->slot[a];
    else
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
    if (block) {
        memcpy(to->heap + off, from->heap + from->slot[a], bytes);
        for (uint32_t i = a; i < b; i++)
            to->slot[to->count + (i - a)] = (uint32_t)(off + (from->slot[i] - from->slot[a]));
        off += bytes;
    } else {
        for (uint32_t i = a; i < b; i++) {
            size_t s = entry_size(from, i);
            memcpy(to->heap + off, from->heap + from->slot[i], s);
            to->slot[to->count + (i - a)] = (uint32_t)off;
            off += s;
        }
    }
    to->heap_len = off;
    if (to->kind == NODE_INTERNAL)
        memcpy(to->child + to->count + 1, from->child + cfirst, (size_t)m * 8);
    /* prefixes: the common prefix of the result (from its first and last
     * keys); the entries that were there keep theirs unless it changed, the
     * new ones are copied when `from` used the same one */
    to->count += m;
    to->has_refs |= from->has_refs;
    c = ends_cpl(to);
    if (to->count > m && c != to->cpl) {
        set_cpl(to, c);
        rebuild_pfx(to, 0, to->count);
    } else {
        set_cpl(to, c);
        if (c == from->cpl)
            memcpy(to->pfx + (to->count - m), from->pfx + a, (size_t)m * 8);
        else
            rebuild_pfx(to, to->count - m, to->count);
    }
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
    refresh_cpl(from); /* the remaining keys may share a longer prefix */
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
    int refs;
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
    refs = map && n->kind == NODE_LEAF && n->has_refs;
    if (!refs && in_order(n)) {
        /* the heap and the slots are the encoding as they are */
        for (uint32_t i = 0; i < n->count; i++)
            sop_put32(slots + (size_t)i * 4, n->slot[i]);
        if (n->heap_len)
            memcpy(heap, n->heap, n->heap_len);
        return;
    }
    for (uint32_t i = 0; i < n->count; i++) {
        node_item it;
        const unsigned char *e = n->heap + n->slot[i];
        size_t s = parse_entry(e, n->heap + n->heap_len, n->kind == NODE_LEAF, &it);
        SOP_ASSERT(s != 0);
        memcpy(heap + off, e, s);
        sop_put32(slots + (size_t)i * 4, (uint32_t)off);
        if (refs && (it.flags & ITEM_VALUE_REF) && it.vlen == 16) {
            /* a reference to a separate value blob: translate its lid too */
            size_t at = (size_t)(it.val - e);
            sop_put64(heap + off + at, map(map_arg, sop_get64(it.val)));
        }
        off += s;
    }
    SOP_ASSERT(off == node_live_bytes(n));
}

void node_map_value_refs(node *n, uint64_t (*map)(void *arg, uint64_t lid), void *map_arg)
{
    if (n->kind != NODE_LEAF || !n->has_refs)
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
            n->has_refs |= (it.flags & ITEM_VALUE_REF) != 0;
            if (it.dlen > SOP_MAX_KEY_DOC || it.vlen > SOP_MAX_VALUE) {
                BAD("entry %u document or value too large", L, i);
                goto fail;
            }
        }
        if (i > 0 && node_cmp(prev.key, prev.klen, prev.id, it.key, it.klen, it.id) >= 0) {
            BAD("entries %u and %u out of order", L, i - 1, i);
            goto fail;
        }
        prev = it;
        off += s;
    }
    if (off != hlen) {
        BAD("heap has %zu bytes after the last entry", L, (size_t)hlen - off);
        goto fail;
    }
    set_cpl(n, ends_cpl(n));
    rebuild_pfx(n, 0, count);
    *out = n;
    return SOP_OK;
fail:
    node_unref(n);
    return SOP_CORRUPT;
}
