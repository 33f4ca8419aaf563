/*
 * merge.c - committing a transaction whose stores changed after its
 * snapshot ("refetch and merge").  Under the commit lock, on the newest
 * sequenced state:
 *   1. every read the transaction noted (merge.h) is re-checked; if any
 *      would now return something else, the commit fails with SOP_CONFLICT;
 *   2. otherwise its item changes are replayed there.  The changes are found
 *      by diffing, by item id, the leaves its trees touched against their
 *      snapshot versions: items added, removed, or with a new key document /
 *      value.  Replaying them gives the same result as running the
 *      transaction after the commits it raced with, since all it read is
 *      unchanged.
 * The result is a merge transaction whose private nodes are committed
 * instead of the original's.  Writers of different keys in one leaf both
 * commit; writers of the same item: the later one gets SOP_CONFLICT.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core.h"
#include "merge.h"

uint64_t merge_item_hash(const node_item *it, int with_value)
{
    uint64_t h = 1469598103934665603ull;
    h ^= it->flags;
    h *= 1099511628211ull;
    for (size_t i = 0; i < it->dlen; i++) {
        h ^= it->doc[i];
        h *= 1099511628211ull;
    }
    h ^= 0xff;
    h *= 1099511628211ull;
    for (size_t i = 0; with_value && i < it->vlen; i++) {
        h ^= it->val[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ------------------------------------------------- re-checking reads */
typedef struct rd {
    const unsigned char *p, *end;
    int bad;
} rd;

static const unsigned char *rd_take(rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *p = r->p;
    r->p += n;
    return p;
}
static unsigned rd_u8(rd *r)
{
    const unsigned char *p = rd_take(r, 1);
    return p ? *p : 0;
}
static const unsigned char *rd_key(rd *r, size_t *n)
{
    const unsigned char *p = rd_take(r, 2);
    *n = p ? sop_get16(p) : 0;
    return rd_take(r, *n);
}

/* Does the cursor's position equal the recorded one? */
static int same_pos(rd *r, const btree_cursor *c)
{
    unsigned found = rd_u8(r);
    if (!found)
        return !c->positioned;
    size_t kl;
    const unsigned char *k = rd_key(r, &kl), *id = rd_take(r, 16);
    if (r->bad || !c->positioned)
        return 0;
    return c->klen == kl && !memcmp(c->key, k, kl) && !memcmp(c->id, id, 16);
}

/* Position c on the item right after / before (k, id), whether or not that
 * item still exists. */
static int step_from(btree_cursor *c, const unsigned char *k, size_t kl, const unsigned char *id, int next)
{
    int exact = 0;
    int rc = btree_seek(c, k, kl, id, NULL, &exact);
    if (rc != SOP_OK && rc != SOP_NOTFOUND)
        return rc;
    if (next) {
        if (rc == SOP_OK && exact)
            rc = btree_next(c);
        return rc == SOP_NOTFOUND ? SOP_OK : rc;
    }
    /* previous: the item before the lower bound (or the last item) */
    rc = rc == SOP_OK ? btree_prev(c) : btree_last(c);
    return rc == SOP_NOTFOUND ? SOP_OK : rc;
}

/* ------------------------------------ reads answered by own writes */
/* One end of a stretch of items.  set 0: the store's start / end.  id NULL:
 * as a lower end the smallest id of key k, as an upper end any id of k. */
typedef struct bound {
    int set;
    const unsigned char *k, *id;
    size_t kl;
} bound;

/* a recorded position ("pos" in merge.h) as a bound (unset: not found) */
static void rd_bound(rd *r, bound *b)
{
    memset(b, 0, sizeof *b);
    if (!rd_u8(r))
        return;
    b->k = rd_key(r, &b->kl);
    b->id = rd_take(r, 16);
    b->set = 1;
}

static int seek_lo(btree_cursor *c, const bound *lo, int incl)
{
    int rc, exact = 0;
    if (!lo->set) {
        rc = btree_first(c);
    } else {
        rc = btree_seek(c, lo->k, lo->kl, lo->id, NULL, &exact);
        if (rc == SOP_OK && exact && !incl)
            rc = btree_next(c);
    }
    return rc == SOP_NOTFOUND ? SOP_OK : rc;
}

static int below_hi(const btree_cursor *c, const bound *hi, int incl)
{
    if (!c->positioned)
        return 0;
    if (!hi->set)
        return 1;
    int cmp = hi->id ? node_cmp(c->key, c->klen, c->id, hi->k, hi->kl, hi->id)
                     : node_key_cmp(c->key, c->klen, hi->k, hi->kl);
    return incl ? cmp <= 0 : cmp < 0;
}

/* Do the snapshot (a) and the newest state (b) hold the same items between
 * lo and hi?  with_value >= 0: also the same content (merge_item_hash). */
static int same_stretch(btree_cursor *a, btree_cursor *b, const bound *lo, int lo_incl, const bound *hi,
                        int hi_incl, int with_value, int *ok)
{
    int rc = seek_lo(a, lo, lo_incl);
    if (rc == SOP_OK)
        rc = seek_lo(b, lo, lo_incl);
    while (rc == SOP_OK) {
        int ia = below_hi(a, hi, hi_incl), ib = below_hi(b, hi, hi_incl);
        if (!ia || !ib) {
            *ok = ia == ib;
            return SOP_OK;
        }
        if (a->klen != b->klen || memcmp(a->key, b->key, a->klen) || memcmp(a->id, b->id, 16)) {
            *ok = 0;
            return SOP_OK;
        }
        if (with_value >= 0) {
            node_item x, y;
            if ((rc = btree_current(a, &x)) != SOP_OK)
                break;
            uint64_t hx = merge_item_hash(&x, with_value);
            if ((rc = btree_current(b, &y)) != SOP_OK)
                break;
            if (hx != merge_item_hash(&y, with_value)) {
                *ok = 0;
                return SOP_OK;
            }
        }
        rc = btree_next(a);
        if (rc == SOP_NOTFOUND)
            rc = SOP_OK;
        if (rc == SOP_OK && (rc = btree_next(b)) == SOP_NOTFOUND)
            rc = SOP_OK;
    }
    return rc;
}

/* An OBS_OWN record (merge.h): the stretch of items the read covered must be
 * the same in the snapshot (cursor a) and the newest state (cursor b). */
static int check_own(rd *r, unsigned type, btree_cursor *a, btree_cursor *b, int *ok)
{
    bound lo, hi, at;
    memset(&lo, 0, sizeof lo);
    memset(&hi, 0, sizeof hi);
    int lo_incl = 1, hi_incl = 1, with_value = -1;
    switch (type) {
    case OBS_KEY: /* items of key k up to the one found, or all of them */
        lo.set = hi.set = 1;
        lo.k = hi.k = rd_key(r, &lo.kl);
        hi.kl = lo.kl;
        if (rd_u8(r))
            hi.id = rd_take(r, 16);
        break;
    case OBS_SEEK: /* from (k, id) up to where it landed */
        lo.set = 1;
        lo.k = rd_key(r, &lo.kl);
        if (rd_u8(r))
            lo.id = rd_take(r, 16);
        rd_bound(r, &hi);
        break;
    case OBS_FIRST:
        rd_bound(r, &hi);
        break;
    case OBS_LAST:
        rd_bound(r, &lo);
        break;
    case OBS_NEXT: /* after (k, id) up to where it landed */
        lo.set = 1;
        lo.k = rd_key(r, &lo.kl);
        lo.id = rd_take(r, 16);
        lo_incl = 0;
        rd_bound(r, &hi);
        break;
    case OBS_PREV: /* from where it landed up to before (k, id) */
        hi.set = 1;
        hi.k = rd_key(r, &hi.kl);
        hi.id = rd_take(r, 16);
        hi_incl = 0;
        rd_bound(r, &lo);
        break;
    case OBS_ITEM: /* the item itself, content included */
        at.set = 1;
        at.k = rd_key(r, &at.kl);
        at.id = rd_take(r, 16);
        with_value = (int)rd_u8(r);
        rd_take(r, 8); /* the hash of what the transaction saw: maybe its own write */
        lo = hi = at;
        break;
    default:
        r->bad = 1;
    }
    if (r->bad)
        return SOP_OK;
    return same_stretch(a, b, &lo, lo_incl, &hi, hi_incl, with_value, ok);
}

/* The snapshot as a read-only transaction (for OBS_OWN records). */
static sop_txn *snapshot_view(sop_txn *t)
{
    sop_txn *v = txn_new_merge(t->env);
    if (!v)
        return NULL;
    cat_unref(v->cat);
    v->cat = t->cat;
    cat_ref(v->cat);
    v->snap = t->snap;
    return v;
}

/* ms: the store on the newest state; *view: the snapshot, opened on the
 * first OBS_OWN record. */
static int check_reads(sop_txn *t, sop_store *ms, const sbuf *obs, const char *name, sop_txn **view)
{
    btree_cursor *c = &ms->cur;
    sop_store *vs = NULL;
    rd r = {obs->p, obs->p + obs->len, 0};
    int rc = SOP_OK, ok = 1;
    while (ok && rc == SOP_OK && r.p < r.end && !r.bad) {
        unsigned type = rd_u8(&r);
        size_t kl;
        const unsigned char *k, *id;
        if (type & OBS_OWN) {
            if (!vs) {
                if (!*view && !(*view = snapshot_view(t))) {
                    rc = sop_report(SOP_NOMEM, "merge");
                    break;
                }
                if ((rc = txn_open_store(*view, name, NULL, &vs)) != SOP_OK)
                    break;
            }
            rc = check_own(&r, type & ~OBS_OWN, &vs->cur, c, &ok);
            continue;
        }
        switch (type) {
        case OBS_KEY: {
            k = rd_key(&r, &kl);
            unsigned found = rd_u8(&r);
            id = found ? rd_take(&r, 16) : NULL;
            if (r.bad)
                break;
            int key_eq = 0;
            rc = btree_seek(c, k, kl, NULL, &key_eq, NULL);
            if (rc == SOP_NOTFOUND)
                rc = SOP_OK;
            int now = c->positioned && key_eq;
            ok = now == (int)found && (!found || !memcmp(c->id, id, 16));
            break;
        }
        case OBS_SEEK: {
            k = rd_key(&r, &kl);
            id = rd_u8(&r) ? rd_take(&r, 16) : NULL;
            if (r.bad)
                break;
            rc = btree_seek(c, k, kl, id, NULL, NULL);
            if (rc == SOP_NOTFOUND)
                rc = SOP_OK;
            ok = same_pos(&r, c);
            break;
        }
        case OBS_FIRST:
        case OBS_LAST:
            rc = type == OBS_FIRST ? btree_first(c) : btree_last(c);
            if (rc == SOP_NOTFOUND)
                rc = SOP_OK;
            ok = same_pos(&r, c);
            break;
        case OBS_NEXT:
        case OBS_PREV:
            k = rd_key(&r, &kl);
            id = rd_take(&r, 16);
            if (r.bad)
                break;
            rc = step_from(c, k, kl, id, type == OBS_NEXT);
            ok = same_pos(&r, c);
            break;
        case OBS_ITEM: {
            k = rd_key(&r, &kl);
            id = rd_take(&r, 16);
            unsigned with_value = rd_u8(&r);
            const unsigned char *h = rd_take(&r, 8);
            if (r.bad)
                break;
            int exact = 0;
            rc = btree_seek(c, k, kl, id, NULL, &exact);
            if (rc == SOP_NOTFOUND)
                rc = SOP_OK;
            ok = 0;
            if (rc == SOP_OK && exact) {
                node_item it;
                rc = btree_current(c, &it);
                ok = rc == SOP_OK && merge_item_hash(&it, (int)with_value) == sop_get64(h);
            }
            break;
        }
        default:
            r.bad = 1;
        }
    }
    if (rc != SOP_OK)
        return rc;
    if (r.bad)
        return SOP_CORRUPT_AT("store '%s': malformed read log", name);
    if (!ok)
        return sop_report(SOP_CONFLICT,
                          "store '%s': an item this transaction read was changed by a concurrent commit",
                          name);
    return SOP_OK;
}

/* ------------------------------------------------ replaying changes */
typedef struct before_set {
    node_item *items;
    unsigned char *seen;
    size_t n, cap;
    uint32_t *slots; /* hash of id -> index + 1 */
    size_t mask;
    node **held;     /* snapshot nodes the items point into */
    size_t nheld, capheld;
} before_set;

static size_t id_hash(const unsigned char *id)
{
    uint64_t x = sop_get64(id) ^ (sop_get64(id + 8) * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31;
    return (size_t)(x * 0xBF58476D1CE4E5B9ull);
}

static int before_add_node(before_set *b, node *n)
{
    if (b->nheld == b->capheld) {
        size_t ncap = b->capheld ? b->capheld * 2 : 16;
        node **nh = sop_realloc(b->held, ncap * sizeof *nh);
        if (!nh)
            return SOP_NOMEM;
        b->held = nh;
        b->capheld = ncap;
    }
    b->held[b->nheld++] = n;
    if (b->n + n->count > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->n + n->count)
            ncap *= 2;
        node_item *ni = sop_realloc(b->items, ncap * sizeof *ni);
        if (!ni)
            return SOP_NOMEM;
        b->items = ni;
        b->cap = ncap;
    }
    for (uint32_t i = 0; i < n->count; i++)
        node_get(n, i, &b->items[b->n++]);
    return SOP_OK;
}

static int before_index(before_set *b)
{
    size_t cap = 16;
    while (cap < b->n * 2)
        cap *= 2;
    b->slots = sop_calloc(cap, sizeof *b->slots);
    b->seen = sop_calloc(b->n ? b->n : 1, 1);
    if (!b->slots || !b->seen)
        return SOP_NOMEM;
    b->mask = cap - 1;
    for (size_t i = 0; i < b->n; i++) {
        size_t h = id_hash(b->items[i].id) & b->mask;
        while (b->slots[h])
            h = (h + 1) & b->mask;
        b->slots[h] = (uint32_t)(i + 1);
    }
    return SOP_OK;
}

static node_item *before_find(before_set *b, const unsigned char *id, size_t *idx)
{
    size_t h = id_hash(id) & b->mask;
    while (b->slots[h]) {
        size_t i = b->slots[h] - 1;
        if (!memcmp(b->items[i].id, id, 16)) {
            *idx = i;
            return &b->items[i];
        }
        h = (h + 1) & b->mask;
    }
    return NULL;
}

static void before_free(before_set *b)
{
    for (size_t i = 0; i < b->nheld; i++)
        node_unref(b->held[i]);
    sop_free(b->held);
    sop_free(b->items);
    sop_free(b->seen);
    sop_free(b->slots);
}

static int same_content(const node_item *a, const node_item *b)
{
    return a->klen == b->klen && !memcmp(a->key, b->key, a->klen) && a->flags == b->flags &&
           a->dlen == b->dlen && (!a->dlen || !memcmp(a->doc, b->doc, a->dlen)) && a->vlen == b->vlen &&
           (!a->vlen || !memcmp(a->val, b->val, a->vlen));
}

static uint64_t ref_lid(const node_item *it)
{
    return (it->flags & ITEM_VALUE_REF) && it->vlen == 16 ? sop_get64(it->val) : 0;
}

static int conflict(const char *name, const char *what)
{
    return sop_report(SOP_CONFLICT, "store '%s': %s", name, what);
}

/* Apply one change to the merge store: kind 0 delete, 1 modify, 2 add.
 * For a delete or modify, `was` is the item as the transaction's snapshot
 * had it: if a concurrent commit changed that same item, exactly one of the
 * two may win, so this one conflicts. */
static int apply(sop_store *ms, int kind, const node_item *it, const node_item *was)
{
    btree *bt = &ms->ts->bt;
    const char *name = ms->ts->def->name;
    int exact = 0, rc;
    if (kind == 2) {
        if (ms->ts->def->unique) {
            int key_eq = 0;
            rc = btree_seek(&ms->cur, it->key, it->klen, NULL, &key_eq, NULL);
            if (rc == SOP_OK && key_eq)
                return conflict(name, "a concurrent commit added the same key");
            if (rc != SOP_OK && rc != SOP_NOTFOUND)
                return rc;
        }
        rc = btree_insert(bt, it);
        if (rc == SOP_KEYEXIST)
            return conflict(name, "a concurrent commit added the same item");
        if (rc == SOP_OK)
            ms->ts->delta++;
        return rc;
    }
    rc = btree_seek(&ms->cur, it->key, it->klen, it->id, NULL, &exact);
    if (rc != SOP_OK && rc != SOP_NOTFOUND)
        return rc;
    if (!exact)
        return conflict(name, "an item this transaction changed was removed by a concurrent commit");
    node_item cur;
    if ((rc = btree_current(&ms->cur, &cur)) != SOP_OK)
        return rc;
    if (was && !same_content(&cur, was))
        return conflict(name, "an item this transaction changed was changed by a concurrent commit");
    uint64_t old = ref_lid(&cur);
    if (kind == 0) {
        rc = btree_delete(bt, it->key, it->klen, it->id);
        if (rc == SOP_OK)
            ms->ts->delta--;
    } else {
        rc = btree_replace(bt, it);
        if (old && old == ref_lid(it))
            old = 0; /* the value itself did not change */
    }
    if (rc == SOP_OK && old)
        rc = txn_drop_value(ms->txn, old);
    return rc;
}

static int cmp_lid(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int replay(sop_txn *t, txn_store *ts, sop_store *ms)
{
    before_set b;
    memset(&b, 0, sizeof b);
    node **after = NULL;
    size_t nafter = 0;
    int rc = SOP_OK;
    after = sop_calloc(ts->nmine ? ts->nmine : 1, sizeof *after);
    if (!after)
        return sop_report(SOP_NOMEM, "merge");
    /* the touched leaves, before (snapshot) and after (this transaction);
     * sorted so each lid is taken once */
    qsort(ts->mine, ts->nmine, sizeof *ts->mine, cmp_lid);
    for (size_t i = 0; i < ts->nmine && rc == SOP_OK; i++) {
        uint64_t lid = ts->mine[i];
        if (i && ts->mine[i - 1] == lid)
            continue;
        if (!(lid & TEMP_LID_BIT)) {
            node *n;
            if ((rc = env_read_node(t->env, lid, t->snap, &n)) != SOP_OK)
                break;
            if (n->kind == NODE_LEAF)
                rc = before_add_node(&b, n);
            else
                node_unref(n);
        }
        node *d;
        if ((rc = txn_dirty_node(t, lid, &d)) != SOP_OK)
            break;
        if (d && d->kind == NODE_LEAF)
            after[nafter++] = d;
    }
    if (rc == SOP_OK && (rc = before_index(&b)) != SOP_OK)
        rc = sop_report(SOP_NOMEM, "merge");
    /* modifications and additions, found from the after side */
    node_item *adds = NULL, *mods = NULL;
    size_t *modidx = NULL;
    size_t nadds = 0, nmods = 0, cap = 0;
    for (size_t i = 0; i < nafter; i++)
        cap += after[i]->count;
    if (rc == SOP_OK) {
        adds = sop_calloc(cap ? cap : 1, sizeof *adds);
        mods = sop_calloc(cap ? cap : 1, sizeof *mods);
        modidx = sop_calloc(cap ? cap : 1, sizeof *modidx);
        if (!adds || !mods || !modidx)
            rc = sop_report(SOP_NOMEM, "merge");
    }
    for (size_t i = 0; i < nafter && rc == SOP_OK; i++) {
        for (uint32_t k = 0; k < after[i]->count; k++) {
            node_item it;
            node_get(after[i], k, &it);
            size_t idx;
            node_item *old = before_find(&b, it.id, &idx);
            if (!old) {
                adds[nadds++] = it;
            } else {
                b.seen[idx] = 1;
                if (!same_content(old, &it)) {
                    mods[nmods] = it;
                    modidx[nmods++] = idx;
                }
            }
        }
    }
    /* deletions first (a key removed and added again), then the rest */
    for (size_t i = 0; i < b.n && rc == SOP_OK; i++)
        if (!b.seen[i])
            rc = apply(ms, 0, &b.items[i], &b.items[i]);
    for (size_t i = 0; i < nmods && rc == SOP_OK; i++)
        rc = apply(ms, 1, &mods[i], &b.items[modidx[i]]);
    for (size_t i = 0; i < nadds && rc == SOP_OK; i++)
        rc = apply(ms, 2, &adds[i], NULL);
    if (rc == SOP_OK)
        ms->ts->written = 1;
    sop_free(adds);
    sop_free(mods);
    sop_free(modidx);
    sop_free(after);
    before_free(&b);
    return rc;
}

/* -------------------------------------------------------------- entry */
int merge_build(sop_txn *t, sop_txn **out)
{
    *out = NULL;
    sop_txn *m = txn_new_merge(t->env);
    if (!m)
        return sop_report(SOP_NOMEM, "merge");
    m->next_temp = t->next_temp; /* keep the transaction's temporary value lids unique */
    int rc = SOP_OK;
    size_t n = 0;
    for (txn_store *ts = t->stores; ts; ts = ts->next)
        n++;
    sop_store **ms = sop_calloc(n ? n : 1, sizeof *ms);
    if (!ms) {
        txn_free_merge(m);
        return sop_report(SOP_NOMEM, "merge");
    }
    sop_txn *view = NULL; /* the snapshot, for reads answered by own writes */
    size_t i = 0;
    for (txn_store *ts = t->stores; ts && rc == SOP_OK; ts = ts->next, i++) {
        const char *name = ts->def->name;
        if (ts->dropped) {
            rc = conflict(name, "removed while other commits changed the database");
        } else if (ts->created) {
            sop_store_options o;
            def_options(ts->def, &o);
            rc = txn_open_store(m, name, &o, &ms[i]);
            if (rc == SOP_STORE_INCOMPATIBLE)
                rc = conflict(name, "created concurrently with a different configuration");
            /* reads of a store created here are not noted one by one: they
             * hold only if a concurrent creator left it empty */
            if (rc == SOP_OK && ts->read_created && ms[i]->ts->base_count)
                rc = conflict(name, "created concurrently, with items this transaction's reads did not see");
        } else if (!cat_find_id(m->cat, ts->def->id)) {
            rc = conflict(name, "removed by a concurrent transaction");
        } else if (ts->obs.err) {
            rc = conflict(name, "out of memory while noting reads; retry");
        } else if ((rc = txn_open_store(m, name, NULL, &ms[i])) == SOP_OK) {
            rc = check_reads(t, ms[i], &ts->obs, name, &view);
        }
        if (rc == SOP_OK && ts->counted && ms[i]->ts->base_count != ts->base_count)
            rc = conflict(name, "the item count this transaction read was changed by a concurrent commit");
    }
    txn_free_merge(view);
    if (rc == SOP_OK) {
        /* the new values travel with the merge */
        lidtab_free(&m->vals);
        m->vals = t->vals;
        lidtab_init(&t->vals, sizeof(value_ent));
    }
    i = 0;
    for (txn_store *ts = t->stores; ts && rc == SOP_OK; ts = ts->next, i++)
        if (ts->written || ts->created)
            rc = replay(t, ts, ms[i]);
    sop_free(ms);
    if (rc != SOP_OK) {
        if (rc != SOP_CONFLICT)
            txn_fail(t, rc);
        txn_free_merge(m);
        return rc;
    }
    *out = m;
    return SOP_OK;
}
