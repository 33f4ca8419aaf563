/*
 * node.h - B+tree nodes: the in-memory form, item access and edits, and the
 * on-disk encoding (node payload; the log layer wraps it in a checksummed
 * blob record).  Nodes hold no per-item allocations: a slot array of offsets
 * into one heap of item bytes (plus a child array for internal nodes).
 *
 * Items are ordered by (key bytes with memcmp, shorter-is-smaller on a common
 * prefix; then the 16-byte id with memcmp).  Leaf items carry a key, an id,
 * flags, an optional key document and a value (inline bytes, or a 16-byte
 * reference to a separate value blob when ITEM_VALUE_REF is set).  Internal
 * nodes hold `count` separator (key, id) pairs and count+1 child logical ids;
 * child i holds items < separator i <= items of child i+1.
 */
#ifndef SOP_NODE_H
#define SOP_NODE_H

#include "sop_int.h"

#define NODE_LEAF 1
#define NODE_INTERNAL 2

/* Leaf item flags */
#define ITEM_HAS_DOC 0x01u   /* a key document is present */
#define ITEM_VALUE_REF 0x02u /* value bytes are a reference: u64 lid, u64 size (LE) */

#define NODE_FORMAT_VERSION 1

/** A view of one item (leaf) or separator (internal: only key/id are set).
 *  Pointers borrow from the node. */
typedef struct node_item {
    const unsigned char *key;
    size_t klen;
    const unsigned char *id; /* 16 bytes */
    unsigned flags;
    const unsigned char *doc;
    size_t dlen;
    const unsigned char *val;
    size_t vlen;
} node_item;

typedef struct node {
    uint64_t lid;      /* logical id */
    uint8_t kind;      /* NODE_LEAF / NODE_INTERNAL */
    uint8_t is_mutable;/* 1: private to a transaction and editable */
    uint8_t has_refs;  /* in memory only, leaf: 1 when an item may hold a value
                          reference (set when one is added, cleared when the
                          node becomes empty) */
    uint32_t count;    /* items (leaf) or separators (internal) */
    uint32_t cpl;      /* in memory only: every key of the node starts with
                          the first cpl bytes of entry 0's key (a lower bound
                          of the longest common prefix; 0 when empty) */
    uint64_t *pfx;     /* in memory only, parallel to slot: the 8 key bytes of
                          entry i that follow the node's common prefix (key
                          bytes cpl..cpl+7), zero padded, big-endian (so
                          integer order = memcmp order of the padded bytes) */
    uint64_t cpw[2];   /* in memory only: the first min(cpl, 16) bytes of that
                          common prefix, zero padded, big-endian (compared
                          without touching the heap) */
    uint32_t *slot;    /* count offsets into heap */
    unsigned char *heap;
    size_t heap_len;   /* bytes used in heap (including garbage) */
    uint64_t *child;   /* internal: count+1 child lids */
    /* private bookkeeping of node.c */
    uint32_t slot_cap, child_cap;
    size_t heap_cap, garbage;
    int refs;          /* reference count (atomic ops in node.c) */
    void *block;       /* decoded nodes: the single allocation holding everything */
    uint8_t owned;     /* node.c: bit set = that array was allocated on its own
                          (grown out of block): 1 slot (+pfx, one allocation
                          starting at pfx), 2 heap, 4 child */
} node;

/** Compare (ka,la,ida) with (kb,lb,idb).  ida/idb may be NULL meaning the
 *  smallest id (all zero).  Returns <0, 0, >0. */
int node_cmp(const unsigned char *ka, size_t la, const unsigned char *ida,
             const unsigned char *kb, size_t lb, const unsigned char *idb);
/** Compare keys only. */
int node_key_cmp(const unsigned char *ka, size_t la, const unsigned char *kb, size_t lb);

/** New empty mutable node (refs = 1).  NULL on out-of-memory.  An internal
 *  node starts with count 0 and one child slot (lid 0; set it with
 *  node_set_child). */
node *node_new(uint64_t lid, int kind);
/** Mutable deep copy with a (possibly different) lid (refs = 1). */
node *node_clone(const node *n, uint64_t lid);
void node_ref(node *n);
void node_unref(node *n); /* frees at zero; NULL-safe */
/** Approximate bytes of memory held (for cache accounting). */
size_t node_mem_size(const node *n);

/** Item i (0 <= i < count). */
void node_get(const node *n, uint32_t i, node_item *it);
/** Lower bound: first index whose (key,id) >= (key,id) [id NULL = zero id].
 *  *key_eq is set to 1 when the item at the returned index has an equal key. */
uint32_t node_lower_bound(const node *n, const unsigned char *key, size_t klen,
                          const unsigned char *id, int *key_eq);
/** Whether i < count and item i equals (key,id) [id NULL = zero id], resp.
 *  has key `key`.  Like node_get + node_cmp / node_key_cmp, but an item whose
 *  8-byte prefix (after the node's common prefix) differs is rejected without
 *  reading its bytes. */
int node_item_is(const node *n, uint32_t i, const unsigned char *key, size_t klen,
                 const unsigned char *id);
int node_key_is(const node *n, uint32_t i, const unsigned char *key, size_t klen);
/** Internal nodes: index of the child that can hold (key,id). */
uint32_t node_child_index(const node *n, const unsigned char *key, size_t klen,
                          const unsigned char *id);

/* Edits (mutable nodes only).  Return SOP_OK or SOP_NOMEM. */
int node_leaf_insert(node *n, uint32_t i, const node_item *it);
int node_leaf_replace(node *n, uint32_t i, const node_item *it);
/** Internal: insert separator at i and child `right` at i+1. */
int node_internal_insert(node *n, uint32_t i, const unsigned char *key, size_t klen,
                         const unsigned char *id, uint64_t right);
/** Internal: replace separator i (key/id) keeping children. */
int node_internal_set_key(node *n, uint32_t i, const unsigned char *key, size_t klen,
                          const unsigned char *id);
/** Remove item/separator i.  Internal: also removes child i+1. */
void node_remove(node *n, uint32_t i);
/** Internal: remove separator i and child i (instead of i+1). */
void node_internal_remove_left(node *n, uint32_t i);

/** Move entries [at, count) of `from` to the END of `to` (same kind).  For
 *  internal nodes the caller handles separators and children explicitly
 *  with the helpers above; this moves separators at..count-1 and children
 *  at+1..count. */
int node_move_tail(node *from, uint32_t at, node *to);
/** Move entries [0, k) of `from` to the END of `to` (same kind; for internal
 *  nodes moves separators 0..k-1 and children 0..k-1). */
int node_move_head(node *from, uint32_t k, node *to);

/* ---- additions used by btree.c */
/** Internal: insert separator at i and child `left` at i (before the old child i). */
int node_internal_insert_left(node *n, uint32_t i, const unsigned char *key, size_t klen,
                              const unsigned char *id, uint64_t left);
/** Internal: set child i (0 <= i <= count). */
void node_set_child(node *n, uint32_t i, uint64_t lid);
/** Append entries [a, b) of `from` (not modified) to the END of `to` (same
 *  kind; internal: separators a..b-1 and children a+1..b). */
int node_append(node *to, const node *from, uint32_t a, uint32_t b);
/** Drop entries [at, count) (internal: separators at.. and children at+1..). */
void node_truncate(node *n, uint32_t at);
/** Make n an empty node of `kind` (internal: one child, lid 0 until set).
 *  SOP_OK or SOP_NOMEM. */
int node_reset(node *n, int kind);
/** Bytes of entry i in the heap (what it adds to node_live_bytes). */
size_t node_entry_size(const node *n, uint32_t i);
/** Bytes of live item data in the heap (heap_len minus garbage). */
static inline size_t node_live_bytes(const node *n) { return n->heap_len - n->garbage; }

/** Bytes of the encoded payload. */
size_t node_encoded_size(const node *n);
/** Encode into out (node_encoded_size bytes).  map translates child lids
 *  (NULL = identity). */
void node_encode(const node *n, unsigned char *out, uint64_t (*map)(void *arg, uint64_t lid),
                 void *map_arg);
/** Translate, in place, the lids inside value references of a leaf. */
void node_map_value_refs(node *n, uint64_t (*map)(void *arg, uint64_t lid), void *map_arg);
/** Decode and fully validate a payload (never reads out of bounds; rejects
 *  any inconsistency with SOP_CORRUPT via SOP_CORRUPT_AT, naming the lid).
 *  On success the new clean node (refs = 1, is_mutable = 0) owns a copy of
 *  the bytes it needs; buf is not kept. */
int node_decode(const void *buf, size_t len, uint64_t lid, node **out);

#endif
