/*
 * btree.c - the B+tree algorithm (see btree.h) over copy-on-write nodes that
 * a btree_io resolves by logical id.  Inserts split full nodes bottom-up
 * along the recorded path (the root's lid never changes: a root split moves
 * its content into a new child first); a node left below the fill rule
 * (btree.h) after a delete is merged with a sibling, or - when the merged
 * node would be too full - re-split with it (a borrow); a root left with a
 * single child absorbs it.  Cursors keep
 * their root-to-leaf path and the current (key, id) so they can re-seek after
 * the tree changed.  Node pointers are only held for the span of a few io
 * calls; anything longer re-gets by lid.
 *
 * Read-set reporting (io->on_read, optional).  Items are reported as
 * on_read(leaf, i, i) when btree_current() reads them.  A gap is reported as
 * on_read(leaf, i, i - 1) computed in uint32_t - so the gap before item 0
 * is (0, UINT32_MAX); test `to + 1 == from` to recognise gaps - meaning "no
 * item exists between item i-1 and item i of this leaf" (i == count: after
 * the last item).  Gaps are reported by every positioning call for the
 * stretch of key space the cursor passed over: btree_seek (before the item
 * it lands on, unless it found the exact (key, id); on a miss at the end of
 * a leaf, also the start of the next leaf), btree_first (before the first
 * item), btree_last (after the last), btree_next/btree_prev (between the old
 * and the new item, both leaf ends when crossing leaves).  Re-seeks after an
 * edit report nothing.
 *
 * On an error other than SOP_KEYEXIST / SOP_NOTFOUND from an edit (out of
 * memory, I/O) the tree may be left half-edited: the caller must roll the
 * transaction back.
 */
#include "btree.h"

#define IO_GET(lid, out) bt->io->get(bt->io->arg, (lid), (out))
#define IO_MUT(lid, out) bt->io->get_mut(bt->io->arg, (lid), (out))

static uint32_t slot_len(const btree *bt)
{
    return bt->slot_length < 2 ? 2 : bt->slot_length;
}

static uint32_t min_fill(const btree *bt)
{
    uint32_t m = slot_len(bt) / 4;
    return m ? m : 1;
}

/* The fill rule (btree.h): enough entries, or a byte-heavy node. */
static int fill_ok(const btree *bt, uint32_t count, size_t bytes)
{
    return count >= 1 && (count >= min_fill(bt) || bytes >= BTREE_FILL_BYTES);
}

static int underfull(const btree *bt, const node *n)
{
    return !fill_ok(bt, n->count, node_live_bytes(n));
}

/* Where to split n: 0 when it needs no split (or no split point keeps both
 * halves within the fill rule); else the first entry of the right half
 * (leaf) or the separator that moves up (internal).  Halves are balanced,
 * except for an append (the entry just added is the last of the tree's
 * right edge: keys arriving in order): then the left half keeps as much as
 * it may and the right one starts nearly empty, so in-order loads fill
 * their nodes and the node each next commit rewrites stays small. */
static uint32_t split_at(const btree *bt, const node *n, int append)
{
    uint32_t c = n->count, inner = n->kind == NODE_INTERNAL, best = 0, most = 0;
    size_t total = node_live_bytes(n), acc = 0, best_diff = SIZE_MAX;
    if (c > slot_len(bt)) {
        uint32_t m = c - min_fill(bt) - inner;
        return append && m >= 1 && m <= slot_len(bt) ? m : c / 2;
    }
    if (total <= BTREE_MAX_NODE_BYTES || c < 2 + inner)
        return 0;
    for (uint32_t i = 1; i + inner < c; i++) {
        size_t right, diff;
        acc += node_entry_size(n, i - 1);
        right = total - acc - (inner ? node_entry_size(n, i) : 0);
        if (!fill_ok(bt, i, acc) || !fill_ok(bt, c - i - inner, right))
            continue;
        if (acc <= BTREE_MAX_NODE_BYTES)
            most = i;
        diff = acc > right ? acc - right : right - acc;
        if (diff < best_diff) {
            best_diff = diff;
            best = i;
        }
    }
    return append && most ? most : best;
}

static int bad_node(const node *n, const char *what)
{
    return SOP_CORRUPT_AT("node %llu: %s", (unsigned long long)n->lid, what);
}

static int too_deep(const btree *bt)
{
    return SOP_CORRUPT_AT("btree %llu: deeper than %d levels (cycle?)",
                          (unsigned long long)bt->root, BTREE_MAX_DEPTH);
}

static int rebalance(btree *bt, btree_cursor *c);

/* ------------------------------------------------------------ descent */

/* Descend from the root towards (key, id), filling c->path (leaf index =
 * lower bound, which may be == count). */
static int descend(btree *bt, btree_cursor *c, const unsigned char *key, size_t klen,
                   const unsigned char *id, node **leafp)
{
    uint64_t lid = bt->root;
    node *n;
    int rc;
    c->at_left = c->at_right = 1;
    for (int d = 0;; d++) {
        if (d >= BTREE_MAX_DEPTH)
            return too_deep(bt);
        if ((rc = IO_GET(lid, &n)) != SOP_OK)
            return rc;
        c->path[d].lid = lid;
        if (n->kind == NODE_LEAF) {
            c->path[d].idx = node_lower_bound(n, key, klen, id, NULL);
            c->depth = d + 1;
            *leafp = n;
            return SOP_OK;
        }
        if (n->kind != NODE_INTERNAL || n->count == 0)
            return bad_node(n, "bad kind or internal node without separators");
        c->path[d].idx = node_child_index(n, key, klen, id);
        c->at_left &= c->path[d].idx == 0;
        c->at_right &= c->path[d].idx == n->count;
        lid = n->child[c->path[d].idx];
    }
}

/* descend() for an edit: first try the leaf of the last edit, which holds
 * the answer when it brackets the key (as in btree_seek's finger), or when
 * the key falls off the left or right edge of the tree there. */
static int descend_edit(btree *bt, btree_cursor *c, const unsigned char *key, size_t klen,
                        const unsigned char *id, node **leafp)
{
    int d = bt->hint_depth;
    if (d > 0 && bt->hint_shape == bt->shape) {
        node *n;
        int rc = IO_GET(bt->hint_lid[d - 1], &n);
        if (rc != SOP_OK)
            return rc;
        if (n->kind == NODE_LEAF && n->count > 0) {
            uint32_t i = node_lower_bound(n, key, klen, id, NULL);
            if ((i > 0 || bt->hint_at_left) && (i < n->count || bt->hint_at_right)) {
                for (int k = 0; k < d; k++) {
                    c->path[k].lid = bt->hint_lid[k];
                    c->path[k].idx = bt->hint_idx[k];
                }
                c->path[d - 1].idx = i;
                c->depth = d;
                c->at_left = bt->hint_at_left;
                c->at_right = bt->hint_at_right;
                *leafp = n;
                return SOP_OK;
            }
        }
    }
    return descend(bt, c, key, klen, id, leafp);
}

/* After an edit along c's path: keep the path for the next edit unless the
 * edit split or rebalanced nodes (shape moved since shape_before). */
static void keep_hint(btree *bt, const btree_cursor *c, uint64_t shape_before)
{
    if (bt->shape != shape_before) {
        bt->hint_depth = 0;
        return;
    }
    for (int k = 0; k < c->depth; k++) {
        bt->hint_lid[k] = c->path[k].lid;
        bt->hint_idx[k] = c->path[k].idx;
    }
    bt->hint_depth = c->depth;
    bt->hint_at_left = c->at_left;
    bt->hint_at_right = c->at_right;
    bt->hint_shape = bt->shape;
}

void btree_forget(btree *bt)
{
    bt->mod++;
    bt->shape++;
    bt->hint_depth = 0;
}

/* Does item i of leaf have this key?  0 no, 1 yes (its id into id), -1 there
 * is no item i in this leaf but other leaves hold items on that side. */
static int neighbour_has_key(const btree_cursor *c, const node *leaf, uint32_t i, int right,
                             const unsigned char *key, size_t klen, unsigned char id[16])
{
    if (i >= leaf->count) /* i == count (right side) or i == (uint32_t)-1 (left side) */
        return (right ? c->at_right : c->at_left) ? 0 : -1;
    node_item it;
    node_get(leaf, i, &it);
    if (node_key_cmp(it.key, it.klen, key, klen) != 0)
        return 0;
    memcpy(id, it.id, 16);
    return 1;
}

static int item_is(const node *leaf, uint32_t i, const unsigned char *key, size_t klen,
                   const unsigned char *id)
{
    node_item it;
    if (i >= leaf->count)
        return 0;
    node_get(leaf, i, &it);
    return node_cmp(it.key, it.klen, it.id, key, klen, id) == 0;
}

/* ------------------------------------------------------------ insert */

/* Move the entries of n from m on into `right` (empty, same kind) and
 * make the separator of the halves separator `pidx` of parent, with right
 * as child pidx + 1 when insert is set (else separator pidx is replaced). */
static int split_into(node *n, uint32_t m, node *right, node *parent, uint32_t pidx, int insert)
{
    node_item sep;
    int rc;
    if (n->kind == NODE_LEAF) {
        if ((rc = node_append(right, n, m, n->count)) != SOP_OK)
            return rc;
        node_get(right, 0, &sep);
    } else { /* separator m moves up */
        node_set_child(right, 0, n->child[m + 1]);
        if ((rc = node_append(right, n, m + 1, n->count)) != SOP_OK)
            return rc;
        node_get(n, m, &sep);
    }
    rc = insert ? node_internal_insert(parent, pidx, sep.key, sep.klen, sep.id, right->lid)
                : node_internal_set_key(parent, pidx, sep.key, sep.klen, sep.id);
    if (rc != SOP_OK)
        return rc;
    node_truncate(n, m);
    return SOP_OK;
}

/* Split n (child pidx of parent) at m; the new right half becomes child
 * pidx + 1. */
static int split_node(btree *bt, node *n, uint32_t m, node *parent, uint32_t pidx, node **rightp)
{
    int rc = bt->io->alloc(bt->io->arg, n->kind, rightp);
    if (rc != SOP_OK)
        return rc;
    return split_into(n, m, *rightp, parent, pidx, 1);
}

/* Split overfull nodes from the leaf of path c upwards (append: see split_at). */
static int split_up(btree *bt, btree_cursor *c, int append)
{
    node *n, *parent, *right;
    uint32_t pidx;
    int rc;
    for (int lvl = c->depth - 1; lvl >= 0; lvl--) {
        int root_split = lvl == 0;
        uint32_t m;
        if ((rc = IO_MUT(c->path[lvl].lid, &n)) != SOP_OK)
            return rc;
        if (!(m = split_at(bt, n, append)))
            return SOP_OK;
        bt->shape++;
        if (root_split) { /* move the root's content into a new child */
            node *left;
            if (c->depth >= BTREE_MAX_DEPTH - 1)
                return sop_report(SOP_INVALID, "btree %llu: too deep", (unsigned long long)bt->root);
            if ((rc = bt->io->alloc(bt->io->arg, n->kind, &left)) != SOP_OK)
                return rc;
            if (n->kind == NODE_INTERNAL)
                node_set_child(left, 0, n->child[0]);
            if ((rc = node_append(left, n, 0, n->count)) != SOP_OK ||
                (rc = node_reset(n, NODE_INTERNAL)) != SOP_OK)
                return rc;
            node_set_child(n, 0, left->lid);
            parent = n;
            pidx = 0;
            n = left;
        } else {
            if ((rc = IO_MUT(c->path[lvl - 1].lid, &parent)) != SOP_OK)
                return rc;
            pidx = c->path[lvl - 1].idx;
        }
        /* Count splits are done in one step; a byte split may leave a half
         * holding a huge entry over the limit: split again. */
        for (;;) {
            if ((rc = split_node(bt, n, m, parent, pidx, &right)) != SOP_OK)
                return rc;
            if ((m = split_at(bt, n, 0)) != 0)
                continue;
            if (!(m = split_at(bt, right, 0)))
                break;
            n = right;
            pidx++;
        }
        if (root_split)
            return SOP_OK;
    }
    return SOP_OK;
}

int btree_create(btree_io *io, uint64_t *root)
{
    node *n;
    int rc = io->alloc(io->arg, NODE_LEAF, &n);
    if (rc == SOP_OK)
        *root = n->lid;
    return rc;
}

/* Insert it at index i of the leaf c's path ends in, split upwards as
 * needed, and keep the path as the next edit's hint. */
static int insert_at(btree *bt, btree_cursor *c, uint32_t i, const node_item *it)
{
    node *leaf;
    uint64_t shape = bt->shape;
    int rc;
    bt->mod++;
    if ((rc = IO_MUT(c->path[c->depth - 1].lid, &leaf)) != SOP_OK ||
        (rc = node_leaf_insert(leaf, i, it)) != SOP_OK ||
        (rc = split_up(bt, c, c->at_right && i + 1 == leaf->count)) != SOP_OK) {
        bt->hint_depth = 0;
        return rc;
    }
    keep_hint(bt, c, shape);
    return SOP_OK;
}

int btree_insert(btree *bt, const node_item *it)
{
    btree_cursor c;
    node *leaf;
    uint32_t i;
    int rc;
    if (it->klen > SOP_MAX_KEY)
        return sop_report(SOP_KEY_TOO_LARGE, "key of %zu bytes", it->klen);
    if ((rc = descend_edit(bt, &c, it->key, it->klen, it->id, &leaf)) != SOP_OK)
        return rc;
    i = c.path[c.depth - 1].idx;
    if (item_is(leaf, i, it->key, it->klen, it->id))
        return SOP_KEYEXIST;
    return insert_at(bt, &c, i, it);
}

int btree_insert_unique(btree *bt, const node_item *it, unsigned char found_id[16])
{
    btree_cursor c;
    node *leaf;
    int rc;
    if (it->klen > SOP_MAX_KEY)
        return sop_report(SOP_KEY_TOO_LARGE, "key of %zu bytes", it->klen);
    if ((rc = descend_edit(bt, &c, it->key, it->klen, it->id, &leaf)) != SOP_OK)
        return rc;
    /* items are ordered by (key, id): an item with this key would be a
     * neighbour of the new one */
    uint32_t i = c.path[c.depth - 1].idx;
    int l = neighbour_has_key(&c, leaf, i - 1, 0, it->key, it->klen, found_id);
    int r = l == 1 ? 0 : neighbour_has_key(&c, leaf, i, 1, it->key, it->klen, found_id);
    if (l == 1 || r == 1)
        return SOP_KEYEXIST;
    if (l < 0 || r < 0) {
        /* the neighbour is in another leaf: look the key up */
        btree_cursor s;
        int key_eq = 0;
        btree_cursor_init(&s, bt);
        rc = btree_seek(&s, it->key, it->klen, NULL, &key_eq, NULL);
        if (rc != SOP_OK && rc != SOP_NOTFOUND)
            return rc;
        if (rc == SOP_OK && key_eq) {
            memcpy(found_id, s.id, 16);
            return SOP_KEYEXIST;
        }
    }
    if (item_is(leaf, i, it->key, it->klen, it->id))
        return SOP_KEYEXIST;
    return insert_at(bt, &c, i, it);
}

int btree_replace(btree *bt, const node_item *it)
{
    btree_cursor c;
    node *leaf;
    uint32_t i;
    int rc;
    if ((rc = descend(bt, &c, it->key, it->klen, it->id, &leaf)) != SOP_OK)
        return rc;
    i = c.path[c.depth - 1].idx;
    if (!item_is(leaf, i, it->key, it->klen, it->id))
        return SOP_NOTFOUND;
    bt->mod++;
    if ((rc = IO_MUT(c.path[c.depth - 1].lid, &leaf)) != SOP_OK ||
        (rc = node_leaf_replace(leaf, i, it)) != SOP_OK)
        return rc;
    return split_at(bt, leaf, 0) ? split_up(bt, &c, 0) : rebalance(bt, &c);
}

/* ------------------------------------------------------------ delete */

/* Children s and s+1 of p: move everything into the left one, then either
 * keep it merged (releasing the right one) or, when that is too full, split
 * it again, reusing the right node (in effect a borrow). */
static int redistribute(btree *bt, node *p, uint32_t s)
{
    node *L, *R;
    node_item x;
    uint64_t rlid = p->child[s + 1];
    uint32_t m;
    int rc;
    if ((rc = IO_MUT(p->child[s], &L)) != SOP_OK || (rc = IO_GET(rlid, &R)) != SOP_OK)
        return rc;
    if (L->kind != R->kind)
        return bad_node(R, "sibling of a different kind");
    if (L->kind == NODE_INTERNAL) {
        node_get(p, s, &x);
        if ((rc = node_internal_insert(L, L->count, x.key, x.klen, x.id, R->child[0])) != SOP_OK)
            return rc;
    }
    if ((rc = node_append(L, R, 0, R->count)) != SOP_OK)
        return rc;
    if ((m = split_at(bt, L, 0)) == 0) {
        node_remove(p, s);
        return bt->io->release(bt->io->arg, rlid);
    }
    if ((rc = IO_MUT(rlid, &R)) != SOP_OK || (rc = node_reset(R, L->kind)) != SOP_OK)
        return rc;
    return split_into(L, m, R, p, s, 0);
}

/* Restore the fill rule from the leaf of path c upwards. */
static int rebalance(btree *bt, btree_cursor *c)
{
    node *n, *p, *r, *ch;
    int rc;
    for (int lvl = c->depth - 1; lvl > 0; lvl--) {
        uint32_t ci = c->path[lvl - 1].idx;
        if ((rc = IO_GET(c->path[lvl].lid, &n)) != SOP_OK)
            return rc;
        if (!underfull(bt, n))
            return SOP_OK;
        bt->shape++;
        if ((rc = IO_MUT(c->path[lvl - 1].lid, &p)) != SOP_OK)
            return rc;
        if ((rc = redistribute(bt, p, ci > 0 ? ci - 1 : ci)) != SOP_OK)
            return rc;
    }
    /* the root: an internal root without separators absorbs its only child */
    if ((rc = IO_GET(bt->root, &r)) != SOP_OK)
        return rc;
    if (r->kind == NODE_INTERNAL && r->count == 0) {
        uint64_t clid;
        if ((rc = IO_MUT(bt->root, &r)) != SOP_OK)
            return rc;
        clid = r->child[0];
        if ((rc = IO_GET(clid, &ch)) != SOP_OK)
            return rc;
        if ((rc = node_reset(r, ch->kind)) != SOP_OK)
            return rc;
        if (ch->kind == NODE_INTERNAL)
            node_set_child(r, 0, ch->child[0]);
        if ((rc = node_append(r, ch, 0, ch->count)) != SOP_OK)
            return rc;
        return bt->io->release(bt->io->arg, clid);
    }
    return SOP_OK;
}

int btree_delete(btree *bt, const unsigned char *key, size_t klen, const unsigned char *id)
{
    btree_cursor c;
    node *leaf;
    uint32_t i;
    int rc;
    if ((rc = descend_edit(bt, &c, key, klen, id, &leaf)) != SOP_OK)
        return rc;
    i = c.path[c.depth - 1].idx;
    if (!item_is(leaf, i, key, klen, id))
        return SOP_NOTFOUND;
    uint64_t shape = bt->shape;
    bt->mod++;
    if ((rc = IO_MUT(c.path[c.depth - 1].lid, &leaf)) != SOP_OK) {
        bt->hint_depth = 0;
        return rc;
    }
    node_remove(leaf, i);
    if ((rc = rebalance(bt, &c)) != SOP_OK) {
        bt->hint_depth = 0;
        return rc;
    }
    keep_hint(bt, &c, shape);
    return SOP_OK;
}

/* ------------------------------------------------------------ cursors */

void btree_cursor_init(btree_cursor *c, btree *bt)
{
    c->bt = bt;
    c->positioned = 0;
    c->depth = 0;
    c->mod = bt->mod;
    c->klen = 0;
    c->finger = 0;
}

static void report_gap(btree *bt, const node *leaf, uint32_t i)
{
    if (bt->io->on_read)
        bt->io->on_read(bt->io->arg, leaf, i, i - 1);
}

/* Remember the item under the cursor (for re-seeks) and mark positioned. */
static void save_current(btree_cursor *c, const node *leaf)
{
    node_item it;
    node_get(leaf, c->path[c->depth - 1].idx, &it);
    SOP_ASSERT(it.klen <= SOP_MAX_KEY);
    if (it.klen)
        memcpy(c->key, it.key, it.klen);
    c->klen = it.klen;
    memcpy(c->id, it.id, 16);
    c->positioned = 1;
    c->mod = c->bt->mod;
}

/* Complete the path below level d (path[d].lid set) down the leftmost
 * (last = 0) or rightmost edge.  Only the root may be an empty leaf. */
static int descend_edge(btree_cursor *c, int d, int last, node **leafp)
{
    btree *bt = c->bt;
    node *n;
    int rc;
    for (;; d++) {
        if (d >= BTREE_MAX_DEPTH)
            return too_deep(bt);
        if ((rc = IO_GET(c->path[d].lid, &n)) != SOP_OK)
            return rc;
        if (n->kind == NODE_LEAF) {
            if (n->count == 0 && d > 0)
                return bad_node(n, "empty leaf below the root");
            c->path[d].idx = last && n->count ? n->count - 1 : 0;
            c->depth = d + 1;
            *leafp = n;
            return SOP_OK;
        }
        if (n->kind != NODE_INTERNAL || n->count == 0)
            return bad_node(n, "bad kind or internal node without separators");
        c->path[d].idx = last ? n->count : 0;
        c->path[d + 1].lid = n->child[c->path[d].idx];
    }
}

/* Move the path to the next (fwd) or previous leaf: SOP_NOTFOUND at an end. */
static int step_leaf(btree_cursor *c, int fwd, node **leafp)
{
    btree *bt = c->bt;
    node *n;
    int rc;
    for (int d = c->depth - 2; d >= 0; d--) {
        uint32_t i = c->path[d].idx;
        if ((rc = IO_GET(c->path[d].lid, &n)) != SOP_OK)
            return rc;
        if (n->kind != NODE_INTERNAL || i > n->count)
            return bad_node(n, "cursor path does not match the tree");
        if (fwd ? i < n->count : i > 0) {
            c->path[d].idx = fwd ? i + 1 : i - 1;
            c->path[d + 1].lid = n->child[c->path[d].idx];
            return descend_edge(c, d + 1, !fwd, leafp);
        }
    }
    return SOP_NOTFOUND;
}

/* Make the path valid for the current tree (re-seeking after an edit). */
static int resync(btree_cursor *c, node **leafp)
{
    btree *bt = c->bt;
    int rc;
    if (!c->positioned)
        return SOP_NO_CURSOR;
    if (c->mod == bt->mod) {
        if ((rc = IO_GET(c->path[c->depth - 1].lid, leafp)) != SOP_OK)
            c->positioned = 0;
        return rc;
    }
    c->positioned = 0;
    if ((rc = descend(bt, c, c->key, c->klen, c->id, leafp)) != SOP_OK)
        return rc;
    if (!item_is(*leafp, c->path[c->depth - 1].idx, c->key, c->klen, c->id))
        return SOP_NO_CURSOR;
    c->positioned = 1;
    c->mod = bt->mod;
    return SOP_OK;
}

int btree_seek(btree_cursor *c, const unsigned char *key, size_t klen, const unsigned char *id,
               int *key_eq, int *exact)
{
    node_item it;
    return btree_seek_item(c, key, klen, id, key_eq, exact, &it);
}

int btree_seek_item(btree_cursor *c, const unsigned char *key, size_t klen,
                    const unsigned char *id, int *key_eq, int *exact, node_item *item)
{
    btree *bt = c->bt;
    node *leaf;
    uint32_t i;
    int rc, ex;
    /* the leaf of the cursor's item, if the tree has not changed since */
    int had = c->positioned && c->mod == bt->mod && c->depth > 0;
    uint64_t had_leaf = had ? c->path[c->depth - 1].lid : 0;
    int near = 0;
    c->positioned = 0;
    if (key_eq)
        *key_eq = 0;
    if (exact)
        *exact = 0;
    if (had && c->finger) {
        /* In-order seeks: when the probe sorts after the leaf's first item
         * and not after its last one, the whole tree's answer is in this
         * leaf (every other leaf's items are below the first or above the
         * last), so the path above it stays as it is. */
        if ((rc = IO_GET(had_leaf, &leaf)) != SOP_OK)
            return rc;
        if (leaf->kind == NODE_LEAF) {
            i = node_lower_bound(leaf, key, klen, id, NULL);
            if (i > 0 && i < leaf->count) {
                c->path[c->depth - 1].idx = i;
                near = 1;
            }
        }
        c->finger = (unsigned char)near;
    }
    if (!near) {
        if ((rc = descend(bt, c, key, klen, id, &leaf)) != SOP_OK)
            return rc;
        c->finger = had && c->path[c->depth - 1].lid == had_leaf;
    }
    i = c->path[c->depth - 1].idx;
    ex = item_is(leaf, i, key, klen, id);
    if (!ex)
        report_gap(bt, leaf, i);
    if (i == leaf->count) {
        if ((rc = step_leaf(c, 1, &leaf)) != SOP_OK)
            return rc;
        report_gap(bt, leaf, 0);
    }
    save_current(c, leaf);
    node_get(leaf, c->path[c->depth - 1].idx, item);
    if (key_eq)
        *key_eq = node_key_cmp(item->key, item->klen, key, klen) == 0;
    if (exact)
        *exact = ex && id != NULL;
    return SOP_OK;
}

static int edge(btree_cursor *c, int last)
{
    btree *bt = c->bt;
    node *leaf;
    int rc;
    c->positioned = 0;
    c->path[0].lid = bt->root;
    if ((rc = descend_edge(c, 0, last, &leaf)) != SOP_OK)
        return rc;
    report_gap(bt, leaf, last ? leaf->count : 0);
    if (leaf->count == 0)
        return SOP_NOTFOUND;
    save_current(c, leaf);
    return SOP_OK;
}

int btree_first(btree_cursor *c)
{
    return edge(c, 0);
}

int btree_last(btree_cursor *c)
{
    return edge(c, 1);
}

static int step(btree_cursor *c, int fwd)
{
    btree *bt = c->bt;
    node *leaf;
    uint32_t i;
    int rc;
    if ((rc = resync(c, &leaf)) != SOP_OK)
        return rc;
    i = c->path[c->depth - 1].idx;
    if (fwd && i + 1 < leaf->count) {
        c->path[c->depth - 1].idx = i + 1;
        report_gap(bt, leaf, i + 1);
    } else if (!fwd && i > 0) {
        c->path[c->depth - 1].idx = i - 1;
        report_gap(bt, leaf, i);
    } else {
        report_gap(bt, leaf, fwd ? leaf->count : 0);
        c->positioned = 0;
        if ((rc = step_leaf(c, fwd, &leaf)) != SOP_OK)
            return rc;
        report_gap(bt, leaf, fwd ? 0 : leaf->count);
    }
    save_current(c, leaf);
    return SOP_OK;
}

int btree_next(btree_cursor *c)
{
    return step(c, 1);
}

int btree_prev(btree_cursor *c)
{
    return step(c, 0);
}

int btree_current(btree_cursor *c, node_item *it)
{
    btree *bt = c->bt;
    node *leaf;
    uint32_t i;
    int rc = resync(c, &leaf);
    if (rc != SOP_OK)
        return rc;
    i = c->path[c->depth - 1].idx;
    node_get(leaf, i, it);
    if (bt->io->on_read)
        bt->io->on_read(bt->io->arg, leaf, i, i);
    return SOP_OK;
}

/* ------------------------------------------------------------ walk */

static int walk_rec(btree *bt, uint64_t lid, int depth, int (*fn)(void *arg, const node *n),
                    void *arg)
{
    node *n;
    int rc;
    if (depth >= BTREE_MAX_DEPTH)
        return too_deep(bt);
    if ((rc = IO_GET(lid, &n)) != SOP_OK || (rc = fn(arg, n)) != 0)
        return rc;
    if (n->kind != NODE_INTERNAL)
        return SOP_OK;
    for (uint32_t i = 0;; i++) { /* re-get: the subtree walk makes many io calls */
        uint64_t child;
        if ((rc = IO_GET(lid, &n)) != SOP_OK)
            return rc;
        if (i > n->count)
            return SOP_OK;
        child = n->child[i];
        if ((rc = walk_rec(bt, child, depth + 1, fn, arg)) != 0)
            return rc;
    }
}

int btree_walk(btree *bt, int (*fn)(void *arg, const node *n), void *arg)
{
    return walk_rec(bt, bt->root, 0, fn, arg);
}

/* ------------------------------------------------------------ check */

typedef struct bound {
    int has;
    size_t klen;
    unsigned char id[16];
    unsigned char key[SOP_MAX_KEY];
} bound;

typedef struct check_ctx {
    btree *bt;
    int leaf_depth;
    uint64_t items;
    bound (*lvl)[2]; /* [depth][0 = lower (inclusive), 1 = upper (exclusive)] */
    uint64_t *lids;  /* open-addressing set of visited lids; UINT64_MAX = empty */
    size_t lid_cap, lid_count;
    int seen_max;
} check_ctx;

static int lid_add(check_ctx *x, uint64_t lid)
{
    size_t i;
    if (lid == UINT64_MAX) {
        if (x->seen_max)
            return 1;
        x->seen_max = 1;
        return 0;
    }
    if (2 * (x->lid_count + 1) > x->lid_cap) {
        size_t cap = x->lid_cap ? 2 * x->lid_cap : 1024;
        uint64_t *t = sop_malloc(cap * sizeof *t), *old = x->lids;
        if (!t)
            return -1;
        memset(t, 0xff, cap * sizeof *t);
        x->lids = t;
        x->lid_cap = cap;
        x->lid_count = 0;
        for (size_t j = 0; old && j < cap / 2; j++)
            if (old[j] != UINT64_MAX)
                lid_add(x, old[j]);
        sop_free(old);
    }
    for (i = (size_t)(lid * 0x9E3779B97F4A7C15ull) & (x->lid_cap - 1); x->lids[i] != UINT64_MAX;
         i = (i + 1) & (x->lid_cap - 1))
        if (x->lids[i] == lid)
            return 1;
    x->lids[i] = lid;
    x->lid_count++;
    return 0;
}

static void set_bound(bound *b, const bound *from, const node *n, uint32_t i, int use_node)
{
    node_item it;
    if (!use_node) {
        b->has = from->has;
        b->klen = from->klen;
        memcpy(b->id, from->id, 16);
        if (from->has && from->klen)
            memcpy(b->key, from->key, from->klen);
        return;
    }
    node_get(n, i, &it);
    b->has = 1;
    b->klen = it.klen;
    memcpy(b->id, it.id, 16);
    if (it.klen)
        memcpy(b->key, it.key, it.klen);
}

static int check_node(check_ctx *x, uint64_t lid, int d)
{
    btree *bt = x->bt;
    bound *lo = &x->lvl[d][0], *hi = &x->lvl[d][1];
    uint32_t minf = min_fill(bt);
    unsigned long long L = (unsigned long long)lid;
    node_item it, prev;
    node *n;
    int rc;

    if (d >= BTREE_MAX_DEPTH - 1)
        return too_deep(bt);
    if ((rc = lid_add(x, lid)) != 0)
        return rc < 0 ? sop_report(SOP_NOMEM, "btree check: out of memory")
                      : SOP_CORRUPT_AT("node %llu: referenced twice", L);
    if ((rc = IO_GET(lid, &n)) != SOP_OK)
        return rc;
    if (n->lid != lid)
        return SOP_CORRUPT_AT("node %llu: holds lid %llu", L, (unsigned long long)n->lid);
    if (n->kind != NODE_LEAF && n->kind != NODE_INTERNAL)
        return SOP_CORRUPT_AT("node %llu: bad kind %d", L, n->kind);
    if (n->count > slot_len(bt))
        return SOP_CORRUPT_AT("node %llu: %u entries, max %u", L, n->count, slot_len(bt));
    if (d > 0 && underfull(bt, n))
        return SOP_CORRUPT_AT("node %llu: %u entries (%zu bytes), min %u", L, n->count,
                              node_live_bytes(n), minf);
    if (n->kind == NODE_INTERNAL && n->count == 0)
        return SOP_CORRUPT_AT("node %llu: internal node without separators", L);
    for (uint32_t i = 0; i < n->count; i++) {
        node_get(n, i, &it);
        if (i > 0 && node_cmp(prev.key, prev.klen, prev.id, it.key, it.klen, it.id) >= 0)
            return SOP_CORRUPT_AT("node %llu: entries %u and %u out of order", L, i - 1, i);
        if (lo->has && node_cmp(it.key, it.klen, it.id, lo->key, lo->klen, lo->id) < 0)
            return SOP_CORRUPT_AT("node %llu: entry %u below its separator", L, i);
        if (hi->has && node_cmp(it.key, it.klen, it.id, hi->key, hi->klen, hi->id) >= 0)
            return SOP_CORRUPT_AT("node %llu: entry %u not below the next separator", L, i);
        prev = it;
    }
    if (n->kind == NODE_LEAF) {
        if (x->leaf_depth < 0)
            x->leaf_depth = d;
        else if (x->leaf_depth != d)
            return SOP_CORRUPT_AT("node %llu: leaf at depth %d, others at %d", L, d, x->leaf_depth);
        x->items += n->count;
        return SOP_OK;
    }
    for (uint32_t i = 0;; i++) {
        uint64_t child;
        if ((rc = IO_GET(lid, &n)) != SOP_OK) /* re-get: the subtree check makes many io calls */
            return rc;
        if (i > n->count)
            return SOP_OK;
        set_bound(&x->lvl[d + 1][0], lo, n, i - 1, i > 0);
        set_bound(&x->lvl[d + 1][1], hi, n, i, i < n->count);
        child = n->child[i];
        if ((rc = check_node(x, child, d + 1)) != SOP_OK)
            return rc;
    }
}

int btree_check(btree *bt, uint64_t *item_count)
{
    check_ctx x;
    int rc;
    memset(&x, 0, sizeof x);
    x.bt = bt;
    x.leaf_depth = -1;
    if (bt->slot_length < 2)
        return sop_report(SOP_INVALID, "btree %llu: slot length %u", (unsigned long long)bt->root,
                          bt->slot_length);
    x.lvl = sop_malloc(sizeof(bound[2]) * BTREE_MAX_DEPTH);
    if (!x.lvl)
        return sop_report(SOP_NOMEM, "btree check: out of memory");
    x.lvl[0][0].has = 0;
    x.lvl[0][1].has = 0;
    rc = check_node(&x, bt->root, 0);
    sop_free(x.lvl);
    sop_free(x.lids);
    if (rc == SOP_OK && item_count)
        *item_count = x.items;
    return rc;
}
