/*
 * btree.h - the B+tree algorithm over copy-on-write nodes addressed by
 * logical ids.  The tree never reads storage itself: a btree_io supplied by
 * the transaction layer resolves lids to nodes (from the transaction's
 * private copies, or its snapshot), makes nodes private before an edit
 * (copy-on-write, same lid), allocates new nodes and releases dropped ones.
 *
 * No parent pointers: cursors keep their path.  The root lid never changes
 * (a root split moves the root's content into two new children; a root with
 * a single child absorbs it).  Deletes rebalance (borrow or merge).
 *
 * Items are unique by (key, id); the layer above decides what a "unique
 * store" means by seeking before inserting.
 */
#ifndef SOP_BTREE_H
#define SOP_BTREE_H

#include "node.h"

#define BTREE_MAX_DEPTH 40
/** A node also splits when its heap exceeds this many bytes (and it has >= 2 entries).
 *  A commit writes every leaf it changed whole, so this bounds the bytes of a
 *  small commit: 8 KiB gave 1.1x SQLite's durable one-item commits where
 *  32 KiB gave 0.86x, for ~10% less bulk insert speed (BENCHMARKS.md). */
#ifndef BTREE_MAX_NODE_BYTES /* -D to experiment */
#define BTREE_MAX_NODE_BYTES (8u << 10)
#endif
/** Fill rule: a non-root node needs at least max(1, slot_length/4) entries,
 *  or (byte-heavy nodes, e.g. large key documents) at least one entry and
 *  BTREE_FILL_BYTES live bytes.  Byte-driven splits only split where both
 *  halves keep this rule (a node holding one huge entry and a few small ones
 *  may therefore stay above BTREE_MAX_NODE_BYTES). */
#define BTREE_FILL_BYTES (BTREE_MAX_NODE_BYTES / 8)

typedef struct btree_io {
    void *arg;
    /** Node for reading.  The pointer stays valid for at least the next 256
     *  calls of get/get_mut/alloc on this io (mutable nodes: until released
     *  or the transaction ends).  Errors: SOP_CORRUPT, SOP_IOERR, SOP_NOMEM. */
    int (*get)(void *arg, uint64_t lid, node **out);
    /** The transaction's private, mutable copy of lid (copy-on-write on first call). */
    int (*get_mut)(void *arg, uint64_t lid, node **out);
    /** A new, empty, mutable node of `kind` with a fresh lid. */
    int (*alloc)(void *arg, int kind, node **out);
    /** lid is no longer part of the tree. */
    int (*release)(void *arg, uint64_t lid);
    /** Optional read-set hook: items [from, to] (inclusive indexes) of leaf
     *  `leaf` were read, or, when to == from - 1 (uint32_t arithmetic), the
     *  gap before index `from` was observed empty: (0, UINT32_MAX) is the gap
     *  before the first item, (count, count - 1) the gap after the last.
     *  Test for a gap with `to + 1 == from`, not `from > to`.  Which calls
     *  report what: see the comment at the top of btree.c.  May be NULL. */
    void (*on_read)(void *arg, const node *leaf, uint32_t from, uint32_t to);
} btree_io;

typedef struct btree {
    btree_io *io;
    uint64_t root;        /* lid of the root, constant */
    uint32_t slot_length; /* max entries per node (>= 2) */
    uint64_t mod;         /* bumped by every edit; cursors re-seek when it changed */
    /* The path to the leaf of the last edit, tried first by the next edit
     * (in-order loads and deletes stay in one leaf for many items).  Valid
     * while hint_shape == shape; shape moves on every split and rebalance,
     * the only edits that change a path above its leaf. */
    uint64_t shape;
    uint64_t hint_shape;
    int hint_depth; /* 0: no hint */
    unsigned char hint_at_left, hint_at_right;
    uint64_t hint_lid[BTREE_MAX_DEPTH];
    uint32_t hint_idx[BTREE_MAX_DEPTH];
} btree;

/** The io threw this tree's uncommitted edits away (an abort that keeps
 *  the btree struct): drop the edit hint and make cursors re-seek. */
void btree_forget(btree *bt);

typedef struct btree_cursor {
    btree *bt;
    int positioned;
    int depth;                 /* number of levels in path */
    struct {
        uint64_t lid;
        uint32_t idx;
    } path[BTREE_MAX_DEPTH];   /* path[0] = root ... path[depth-1] = leaf */
    uint64_t mod;              /* bt->mod when path was computed */
    unsigned char at_left;     /* the path took the first child at every level */
    unsigned char at_right;    /* ... the last child at every level */
    unsigned char finger;      /* seeks are landing in the leaf of the last one:
                                  try that leaf before descending (btree_seek) */
    /* the current item, saved to re-seek after an edit */
    size_t klen;
    unsigned char id[16];
    unsigned char key[SOP_MAX_KEY];
} btree_cursor;

/** Create an empty tree: allocates the root (an empty leaf). */
int btree_create(btree_io *io, uint64_t *root);

void btree_cursor_init(btree_cursor *c, btree *bt);
/** Position at the first item >= (key, id) (id NULL = zero id).  Returns SOP_OK
 *  when positioned (then *key_eq tells whether its key equals key, and
 *  *exact whether the id matched too, when id is given), SOP_NOTFOUND when no
 *  such item (unpositioned).  key_eq/exact may be NULL. */
int btree_seek(btree_cursor *c, const unsigned char *key, size_t klen, const unsigned char *id,
               int *key_eq, int *exact);
/** btree_seek that also gives the item it lands on (valid until the next
 *  operation on the tree), when it returns SOP_OK. */
int btree_seek_item(btree_cursor *c, const unsigned char *key, size_t klen,
                    const unsigned char *id, int *key_eq, int *exact, node_item *item);
int btree_first(btree_cursor *c);  /* SOP_OK / SOP_NOTFOUND (empty) */
int btree_last(btree_cursor *c);
/** SOP_OK, SOP_NOTFOUND (moved past the end: now unpositioned), SOP_NO_CURSOR. */
int btree_next(btree_cursor *c);
int btree_prev(btree_cursor *c);
/** The current item (borrowed from the leaf; valid until the next btree call
 *  on this tree).  Re-seeks first if the tree changed since positioning; if
 *  the item is gone, the cursor becomes unpositioned: SOP_NO_CURSOR. */
int btree_current(btree_cursor *c, node_item *it);

/** Insert an item; (key,id) must not exist (SOP_KEYEXIST if it does). */
int btree_insert(btree *bt, const node_item *it);
/** Insert an item unless an item with the same key (any id) exists: then
 *  SOP_KEYEXIST, with that item's id in found_id.  One descent when the new
 *  item's neighbours in its leaf decide (almost always); else a seek first. */
int btree_insert_unique(btree *bt, const node_item *it, unsigned char found_id[16]);
/** Replace the item with the same (key,id) (doc/value/flags change). SOP_NOTFOUND if absent. */
int btree_replace(btree *bt, const node_item *it);
/** Delete the item (key,id). SOP_NOTFOUND if absent. */
int btree_delete(btree *bt, const unsigned char *key, size_t klen, const unsigned char *id);

/** Call fn for every node lid of the tree (parents before children), then
 *  stop at the first non-zero return.  Used to drop a whole store. */
int btree_walk(btree *bt, int (*fn)(void *arg, const node *n), void *arg);
/** Verify structure: ordering within and across nodes, separators, equal leaf
 *  depth, fill limits, child lids.  SOP_OK or SOP_CORRUPT with a message. */
int btree_check(btree *bt, uint64_t *item_count);

#endif
