/*
 * api.c - the item and cursor operations of sop.h on top of the B-tree:
 * what "unique", "first duplicate", "update", "upsert" mean, argument
 * checks, read-only enforcement, paging, and the store-level calls
 * (info, count, remove, list, check, stats).
 */
#include <stdio.h>

#include "core.h"
#include "merge.h"

/* ------------------------------------------------------------- checks */
static int live_store(sop_store *s)
{
    if (!s)
        return sop_report(SOP_MISUSE, "NULL store");
    int rc = txn_check_live(s->txn);
    if (rc == SOP_OK && s->ts->dropped)
        rc = sop_report(SOP_STORE_NOTFOUND, "store '%s' was removed", s->ts->def->name);
    return rc;
}

static int writable(sop_store *s)
{
    int rc = live_store(s);
    if (rc == SOP_OK && s->txn->mode != SOP_TXN_WRITE)
        rc = sop_report(SOP_READONLY, "store '%s': write in a %s transaction", s->ts->def->name,
                        s->txn->mode == SOP_TXN_READ ? "ForReading" : "NoCheck");
    return rc;
}

static int check_key(const sop_val *key)
{
    if (!key || !key->size || !key->data)
        return sop_report(SOP_INVALID, "empty key");
    if (key->size > SOP_MAX_KEY)
        return sop_report(SOP_KEY_TOO_LARGE, "key of %zu bytes (limit %d)", key->size, SOP_MAX_KEY);
    return SOP_OK;
}

static int check_item(const sop_val *key, const sop_val *doc, const sop_val *value)
{
    int rc = check_key(key);
    if (rc == SOP_OK && doc && doc->size > SOP_MAX_KEY_DOC)
        rc = sop_report(SOP_KEY_TOO_LARGE, "key document of %zu bytes (limit %u)", doc->size, SOP_MAX_KEY_DOC);
    if (rc == SOP_OK && value && value->size > SOP_MAX_VALUE)
        rc = sop_report(SOP_VALUE_TOO_LARGE, "value of %zu bytes (limit %u)", value->size, SOP_MAX_VALUE);
    return rc;
}

/* Record rc in the transaction (I/O-class errors make it fail). */
static int done(sop_store *s, int rc)
{
    if (rc != SOP_OK && rc != SOP_NOTFOUND && rc != SOP_KEYEXIST && s && s->txn)
        txn_fail(s->txn, rc);
    return rc;
}

/* done() for a write: also keeps the transaction's private nodes within
 * their budget (txn.c, spilling); nothing borrowed is handed out by a write,
 * so a node may leave memory here */
static int done_write(sop_store *s, int rc)
{
    rc = done(s, rc);
    if ((rc == SOP_OK || rc == SOP_NOTFOUND || rc == SOP_KEYEXIST) && s && s->txn &&
        s->txn->nmem >= s->txn->spill_check) {
        int src = txn_spill_check(s->txn);
        if (src != SOP_OK)
            return done(s, src);
    }
    return rc;
}

static void fill_item(node_item *it, const sop_val *key, const unsigned char *id, const sop_val *doc,
                      const sop_val *value)
{
    memset(it, 0, sizeof *it);
    it->key = key->data;
    it->klen = key->size;
    it->id = id;
    if (doc && doc->size) {
        it->flags |= ITEM_HAS_DOC;
        it->doc = doc->data;
        it->dlen = doc->size;
    }
    it->val = value ? value->data : NULL;
    it->vlen = value ? value->size : 0;
}

static int separate_values(const sop_store *s)
{
    return s->ts->def->placement != SOP_VALUE_SMALL;
}

/* The value of an item: inline, or read from its separate blob. */
static int resolve_value(sop_store *s, const node_item *it, sop_val *out)
{
    if (!(it->flags & ITEM_VALUE_REF)) {
        *out = (sop_val){it->vlen, it->val};
        return SOP_OK;
    }
    if (it->vlen != 16)
        return SOP_CORRUPT_AT("store '%s': malformed value reference", s->ts->def->name);
    return txn_read_value(s->txn, sop_get64(it->val), sop_get64(it->val + 8), out);
}

/* For separate-value stores: write the value as its own blob and point
 * the item at it (ref: 16 bytes owned by the caller). */
static int make_value_ref(sop_store *s, const sop_val *value, unsigned char ref[16], sop_val *out)
{
    uint64_t lid;
    sop_val empty = {0, NULL};
    int rc = txn_put_value(s->txn, value ? value : &empty, &lid);
    if (rc != SOP_OK)
        return rc;
    sop_put64(ref, lid);
    sop_put64(ref + 8, value ? value->size : 0);
    *out = (sop_val){16, ref};
    return SOP_OK;
}

static void changed(sop_store *s, int64_t delta)
{
    s->ts->written = 1;
    s->ts->delta += delta;
}

/* ------------------------------------------------------ observations
 * A writing transaction notes what it read, item by item, so that if one
 * of its stores changes before it commits, merge.c can re-check exactly
 * those reads on the new state (see merge.h for the record layout).  A read
 * made after the transaction wrote to the store carries OBS_OWN: it may have
 * been answered by the transaction's own writes, so merge.c checks that no
 * concurrent commit changed the stretch of items it covered instead of
 * running it again on a state without those writes. */
static int observing(sop_store *s)
{
    if (s->txn->mode != SOP_TXN_WRITE)
        return 0;
    if (s->ts->created) {
        /* a store this transaction created: reads are not noted one by one;
         * merge.c fails the commit if another transaction created the store
         * concurrently and put items in it */
        s->ts->read_created = 1;
        return 0;
    }
    return 1;
}

/* the record's type byte: OBS_OWN once the transaction wrote the store */
static unsigned obs_type(const sop_store *s, int type)
{
    return (unsigned)type | (s->ts->written ? OBS_OWN : 0u);
}

static void obs_bytes(sbuf *b, const void *p, size_t n)
{
    unsigned char t[2];
    sop_put16(t, (uint16_t)n);
    sbuf_put(b, t, 2);
    sbuf_put(b, p, n);
}

/* the cursor's position: found flag, key, id */
static void obs_position(sbuf *b, const btree_cursor *bc)
{
    sbuf_u8(b, (unsigned)bc->positioned);
    if (bc->positioned) {
        obs_bytes(b, bc->key, bc->klen);
        sbuf_put(b, bc->id, 16);
    }
}

/* own: whether the transaction had written the store before this read */
static void obs_key(sop_store *s, const sop_val *key, int found, const unsigned char *id, int own)
{
    if (!observing(s))
        return;
    sbuf *b = &s->ts->obs;
    sbuf_u8(b, OBS_KEY | (own ? OBS_OWN : 0u));
    obs_bytes(b, key->data, key->size);
    sbuf_u8(b, (unsigned)found);
    if (found)
        sbuf_put(b, id, 16);
}

static void obs_item(sop_store *s, const node_item *it, int with_value)
{
    if (!observing(s))
        return;
    sbuf *b = &s->ts->obs;
    sbuf_u8(b, obs_type(s, OBS_ITEM));
    obs_bytes(b, it->key, it->klen);
    sbuf_put(b, it->id, 16);
    sbuf_u8(b, (unsigned)with_value);
    sbuf_u64(b, merge_item_hash(it, with_value));
}

/* type OBS_SEEK (with the sought key/id) or OBS_FIRST/OBS_LAST; the result
 * is the cursor's position now */
static void obs_seek(sop_store *s, int type, const sop_val *key, const unsigned char *id,
                     const btree_cursor *bc)
{
    if (!observing(s))
        return;
    sbuf *b = &s->ts->obs;
    sbuf_u8(b, obs_type(s, type));
    if (type == OBS_SEEK) {
        obs_bytes(b, key->data, key->size);
        sbuf_u8(b, id != NULL);
        if (id)
            sbuf_put(b, id, 16);
    }
    obs_position(b, bc);
}

/* a step from (fkey, fid) to the cursor's position now */
static void obs_step(sop_store *s, int type, const unsigned char *fkey, size_t fklen,
                     const unsigned char *fid, const btree_cursor *bc)
{
    if (!observing(s))
        return;
    sbuf *b = &s->ts->obs;
    sbuf_u8(b, obs_type(s, type));
    obs_bytes(b, fkey, fklen);
    sbuf_put(b, fid, 16);
    obs_position(b, bc);
}

/* the store's item count was read: at commit on a changed store, the count
 * must be what this snapshot had (merge.c); noted once, not as a record */
static void obs_count(sop_store *s)
{
    if (s->txn->mode == SOP_TXN_WRITE)
        s->ts->counted = 1;
}

/* ---------------------------------------------------------- item ops */
/* Insert a new item; unique: only if no item has its key (SOP_KEYEXIST,
 * that item's id in found_id). */
static int insert_new(sop_store *s, const sop_val *key, const sop_val *doc, const sop_val *value,
                      sop_id *id_out, int unique, unsigned char found_id[16])
{
    sop_id id;
    sop_id_generate(&id);
    node_item it;
    unsigned char ref[16];
    sop_val refv;
    int rc;
    if (separate_values(s)) {
        if ((rc = make_value_ref(s, value, ref, &refv)) != SOP_OK)
            return rc;
        fill_item(&it, key, id.bytes, doc, &refv);
        it.flags |= ITEM_VALUE_REF;
    } else {
        fill_item(&it, key, id.bytes, doc, value);
    }
    rc = unique ? btree_insert_unique(&s->ts->bt, &it, found_id) : btree_insert(&s->ts->bt, &it);
    if (rc != SOP_OK && (it.flags & ITEM_VALUE_REF))
        txn_drop_value(s->txn, sop_get64(ref));
    if (rc == SOP_OK) {
        changed(s, 1);
        if (id_out)
            *id_out = id;
    }
    return rc;
}

static int add_common(sop_store *s, const sop_val *key, const sop_val *doc, const sop_val *value,
                      sop_id *id_out, int if_absent)
{
    if (id_out)
        memset(id_out, 0, sizeof *id_out);
    int rc = writable(s);
    if (rc == SOP_OK)
        rc = check_item(key, doc, value);
    if (rc != SOP_OK)
        return done_write(s, rc);
    if (if_absent || s->ts->def->unique) {
        /* the existence check rides on the insert's own descent */
        unsigned char found[16];
        int own = s->ts->written; /* the check reads the state before this insert */
        rc = insert_new(s, key, doc, value, id_out, 1, found);
        /* (in a unique store created here the merge's key check covers it) */
        if ((rc == SOP_OK || rc == SOP_KEYEXIST) && !(s->ts->created && s->ts->def->unique))
            obs_key(s, key, rc == SOP_KEYEXIST, found, own);
        if (rc == SOP_KEYEXIST)
            return sop_report(SOP_KEYEXIST, "store '%s': key exists", s->ts->def->name);
        return done_write(s, rc);
    }
    return done_write(s, insert_new(s, key, doc, value, id_out, 0, NULL));
}

int sop_add(sop_store *s, const sop_val *key, const sop_val *key_doc, const sop_val *value, sop_id *id_out)
{
    return add_common(s, key, key_doc, value, id_out, 0);
}

int sop_add_if_absent(sop_store *s, const sop_val *key, const sop_val *key_doc, const sop_val *value,
                      sop_id *id_out)
{
    return add_common(s, key, key_doc, value, id_out, 1);
}

/* Replace the item under cursor bc; new_doc/new_value NULL = keep. */
static int replace_current(sop_store *s, btree_cursor *bc, const sop_val *new_doc, int set_doc,
                           const sop_val *new_value, int set_value)
{
    node_item cur;
    int rc = btree_current(bc, &cur);
    if (rc != SOP_OK)
        return rc;
    /* the edit may move the node's bytes: copy what is kept */
    size_t keep = cur.klen + (set_doc ? 0 : cur.dlen) + (set_value ? 0 : cur.vlen);
    unsigned char stackbuf[512];
    unsigned char *buf = keep <= sizeof stackbuf ? stackbuf : sop_malloc(keep);
    if (!buf)
        return sop_report(SOP_NOMEM, "update");
    unsigned char id[16];
    memcpy(id, cur.id, 16);
    unsigned char *p = buf;
    memcpy(p, cur.key, cur.klen);
    sop_val key = {cur.klen, p};
    p += cur.klen;
    sop_val doc = {0, NULL}, val = {0, NULL};
    if (set_doc) {
        if (new_doc)
            doc = *new_doc;
    } else {
        if (cur.dlen)
            memcpy(p, cur.doc, cur.dlen);
        doc = (sop_val){cur.dlen, p};
        p += cur.dlen;
    }
    if (set_value) {
        if (new_value)
            val = *new_value;
    } else {
        if (cur.vlen)
            memcpy(p, cur.val, cur.vlen);
        val = (sop_val){cur.vlen, p};
    }
    node_item it;
    unsigned char ref[16];
    uint64_t old_value = (cur.flags & ITEM_VALUE_REF) && cur.vlen == 16 ? sop_get64(cur.val) : 0;
    int new_ref = 0;
    if (set_value && separate_values(s)) {
        /* copy-on-write value: a new blob; the old one dies with this commit */
        if ((rc = make_value_ref(s, new_value, ref, &val)) != SOP_OK)
            goto out;
        new_ref = 1;
    }
    fill_item(&it, &key, id, &doc, &val);
    if (!set_value)
        it.flags |= cur.flags & ITEM_VALUE_REF;
    if (new_ref)
        it.flags |= ITEM_VALUE_REF;
    rc = btree_replace(&s->ts->bt, &it);
    if (rc == SOP_OK) {
        changed(s, 0);
        if (set_value && old_value)
            rc = txn_drop_value(s->txn, old_value);
    } else if (new_ref) {
        txn_drop_value(s->txn, sop_get64(ref));
    }
out:
    if (buf != stackbuf)
        sop_free(buf);
    return rc;
}

static int seek_first(sop_store *s, const sop_val *key)
{
    int key_eq = 0;
    int rc = btree_seek(&s->cur, key->data, key->size, NULL, &key_eq, NULL);
    if (rc == SOP_OK && !key_eq)
        rc = SOP_NOTFOUND;
    if (rc == SOP_OK || rc == SOP_NOTFOUND)
        obs_key(s, key, rc == SOP_OK, s->cur.id, s->ts->written);
    if (rc == SOP_NOTFOUND)
        sop_report(SOP_NOTFOUND, "store '%s': key not found", s->ts->def->name);
    return rc;
}

int sop_update(sop_store *s, const sop_val *key, const sop_val *key_doc, const sop_val *value)
{
    int rc = writable(s);
    if (rc == SOP_OK)
        rc = check_item(key, key_doc, value);
    if (rc == SOP_OK)
        rc = seek_first(s, key);
    if (rc == SOP_OK)
        rc = replace_current(s, &s->cur, key_doc, key_doc != NULL, value, 1);
    return done_write(s, rc);
}

int sop_upsert(sop_store *s, const sop_val *key, const sop_val *key_doc, const sop_val *value)
{
    int rc = writable(s);
    if (rc == SOP_OK)
        rc = check_item(key, key_doc, value);
    if (rc == SOP_OK)
        rc = seek_first(s, key);
    if (rc == SOP_OK)
        rc = replace_current(s, &s->cur, key_doc, key_doc != NULL, value, 1);
    else if (rc == SOP_NOTFOUND)
        rc = insert_new(s, key, key_doc, value, NULL, 0, NULL);
    return done_write(s, rc);
}

static int delete_current(sop_store *s, btree_cursor *bc)
{
    node_item cur;
    int rc = btree_current(bc, &cur);
    if (rc != SOP_OK)
        return rc;
    unsigned char kbuf[SOP_MAX_KEY], id[16];
    size_t klen = cur.klen;
    memcpy(kbuf, cur.key, klen);
    memcpy(id, cur.id, 16);
    uint64_t old_value = (cur.flags & ITEM_VALUE_REF) && cur.vlen == 16 ? sop_get64(cur.val) : 0;
    rc = btree_delete(&s->ts->bt, kbuf, klen, id);
    if (rc == SOP_OK) {
        changed(s, -1);
        bc->positioned = 0;
        if (old_value)
            rc = txn_drop_value(s->txn, old_value);
    }
    return rc;
}

int sop_remove(sop_store *s, const sop_val *key)
{
    int rc = writable(s);
    if (rc == SOP_OK)
        rc = check_key(key);
    if (rc == SOP_OK)
        rc = seek_first(s, key);
    if (rc == SOP_OK)
        rc = delete_current(s, &s->cur);
    return done_write(s, rc);
}

int sop_remove_id(sop_store *s, const sop_val *key, const sop_id *id)
{
    int rc = writable(s);
    if (rc == SOP_OK)
        rc = check_key(key);
    if (rc == SOP_OK && !id)
        rc = sop_report(SOP_INVALID, "NULL id");
    if (rc == SOP_OK) {
        int exact = 0;
        rc = btree_seek(&s->cur, key->data, key->size, id->bytes, NULL, &exact);
        if (rc == SOP_OK || rc == SOP_NOTFOUND)
            obs_seek(s, OBS_SEEK, key, id->bytes, &s->cur);
        if (rc == SOP_OK && !exact)
            rc = sop_report(SOP_NOTFOUND, "store '%s': item not found", s->ts->def->name);
    }
    if (rc == SOP_OK)
        rc = delete_current(s, &s->cur);
    return done_write(s, rc);
}

int sop_update_key(sop_store *s, const sop_val *key, const sop_val *key_doc)
{
    int rc = writable(s);
    if (rc == SOP_OK)
        rc = check_item(key, key_doc, NULL);
    if (rc == SOP_OK)
        rc = seek_first(s, key);
    if (rc == SOP_OK)
        rc = replace_current(s, &s->cur, key_doc, 1, NULL, 0);
    return done_write(s, rc);
}

int sop_get(sop_store *s, const sop_val *key, sop_val *key_doc, sop_val *value, sop_id *id)
{
    int rc = live_store(s);
    if (rc == SOP_OK)
        rc = check_key(key);
    if (rc == SOP_OK)
        rc = seek_first(s, key);
    node_item it;
    if (rc == SOP_OK)
        rc = btree_current(&s->cur, &it);
    if (rc == SOP_OK)
        obs_item(s, &it, value != NULL);
    if (rc == SOP_OK && value)
        rc = resolve_value(s, &it, value);
    if (rc == SOP_OK) {
        if (key_doc)
            *key_doc = (sop_val){it.dlen, it.doc};
        if (id)
            memcpy(id->bytes, it.id, 16);
    }
    return done(s, rc);
}

/* ------------------------------------------------------------ cursors */
int sop_cursor_open(sop_store *s, sop_cursor **out)
{
    if (!out)
        return sop_report(SOP_MISUSE, "NULL output");
    *out = NULL;
    int rc = live_store(s);
    if (rc != SOP_OK)
        return rc;
    sop_cursor *c = sop_calloc(1, sizeof *c);
    if (!c)
        return sop_report(SOP_NOMEM, "cursor");
    c->store = s;
    btree_cursor_init(&c->bc, &s->ts->bt);
    c->next = s->cursors;
    s->cursors = c;
    *out = c;
    return SOP_OK;
}

void sop_cursor_close(sop_cursor *c)
{
    if (!c)
        return;
    sop_cursor **pp = &c->store->cursors;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    sop_free(c);
}

static int live_cursor(sop_cursor *c)
{
    if (!c)
        return sop_report(SOP_MISUSE, "NULL cursor");
    return live_store(c->store);
}

/* Position c on the first item with this key; SOP_NOTFOUND when there is
 * none (the cursor is then left where the seek ended).  *it: the item. */
static int find_key(sop_cursor *c, const sop_val *key, node_item *it)
{
    int rc = check_key(key);
    if (rc != SOP_OK)
        return rc;
    int key_eq = 0;
    rc = btree_seek_item(&c->bc, key->data, key->size, NULL, &key_eq, NULL, it);
    c->used = 1; /* a miss beyond the last item leaves it past the end */
    if (rc == SOP_OK || rc == SOP_NOTFOUND)
        obs_seek(c->store, OBS_SEEK, key, NULL, &c->bc);
    if (rc == SOP_OK && !key_eq)
        rc = SOP_NOTFOUND;
    return rc;
}

int sop_cursor_find(sop_cursor *c, const sop_val *key)
{
    int rc = live_cursor(c);
    if (rc != SOP_OK)
        return c ? done(c->store, rc) : rc;
    node_item it;
    return done(c->store, find_key(c, key, &it));
}

/* Hand out the item a cursor is on (borrowed), noting the read. */
static int give_item(sop_store *s, const node_item *it, sop_val *key, sop_val *key_doc,
                     sop_val *value, sop_id *id)
{
    obs_item(s, it, value != NULL);
    int rc = value ? resolve_value(s, it, value) : SOP_OK;
    if (rc == SOP_OK) {
        if (key)
            *key = (sop_val){it->klen, it->key};
        if (key_doc)
            *key_doc = (sop_val){it->dlen, it->doc};
        if (id)
            memcpy(id->bytes, it->id, 16);
    }
    return rc;
}

int sop_cursor_find_get(sop_cursor *c, const sop_val *key, sop_val *key_out, sop_val *key_doc,
                        sop_val *value, sop_id *id)
{
    int rc = live_cursor(c);
    if (rc != SOP_OK)
        return c ? done(c->store, rc) : rc;
    node_item it;
    rc = find_key(c, key, &it);
    if (rc == SOP_OK)
        rc = give_item(c->store, &it, key_out, key_doc, value, id);
    return done(c->store, rc);
}

int sop_cursor_find_id(sop_cursor *c, const sop_val *key, const sop_id *id)
{
    static const unsigned char zero[16];
    if (!id || !memcmp(id->bytes, zero, 16))
        return sop_cursor_find(c, key);
    int rc = live_cursor(c);
    if (rc == SOP_OK)
        rc = check_key(key);
    if (rc != SOP_OK)
        return c ? done(c->store, rc) : rc;
    int exact = 0;
    rc = btree_seek(&c->bc, key->data, key->size, id->bytes, NULL, &exact);
    c->used = 1;
    if (rc == SOP_OK || rc == SOP_NOTFOUND)
        obs_seek(c->store, OBS_SEEK, key, id->bytes, &c->bc);
    if (rc == SOP_OK && !exact)
        rc = SOP_NOTFOUND;
    return done(c->store, rc);
}

/* Move a cursor one step or to an end, noting what it saw. */
static int move(sop_cursor *c, int type)
{
    int rc = live_cursor(c);
    if (rc != SOP_OK)
        return c ? done(c->store, rc) : rc;
    unsigned char fkey[SOP_MAX_KEY], fid[16];
    size_t fklen = 0;
    int was = c->bc.positioned;
    if (was && observing(c->store) && (type == OBS_NEXT || type == OBS_PREV)) {
        fklen = c->bc.klen;
        memcpy(fkey, c->bc.key, fklen);
        memcpy(fid, c->bc.id, 16);
    }
    switch (type) {
    case OBS_FIRST: rc = btree_first(&c->bc); break;
    case OBS_LAST: rc = btree_last(&c->bc); break;
    case OBS_NEXT: rc = btree_next(&c->bc); break;
    default: rc = btree_prev(&c->bc); break;
    }
    c->used |= c->bc.positioned;
    if (rc == SOP_OK || rc == SOP_NOTFOUND) {
        if (type == OBS_FIRST || type == OBS_LAST)
            obs_seek(c->store, type, NULL, NULL, &c->bc);
        else if (was)
            obs_step(c->store, type, fkey, fklen, fid, &c->bc);
    }
    return done(c->store, rc);
}

int sop_cursor_first(sop_cursor *c) { return move(c, OBS_FIRST); }
int sop_cursor_last(sop_cursor *c) { return move(c, OBS_LAST); }
int sop_cursor_next(sop_cursor *c) { return move(c, OBS_NEXT); }
int sop_cursor_prev(sop_cursor *c) { return move(c, OBS_PREV); }

int sop_cursor_is_positioned(const sop_cursor *c)
{
    return c && c->bc.positioned;
}

int sop_cursor_get(sop_cursor *c, sop_val *key, sop_val *key_doc, sop_val *value, sop_id *id)
{
    int rc = live_cursor(c);
    if (rc != SOP_OK)
        return c ? done(c->store, rc) : rc;
    node_item it;
    rc = btree_current(&c->bc, &it);
    if (rc == SOP_OK)
        rc = give_item(c->store, &it, key, key_doc, value, id);
    return done(c->store, rc);
}

int sop_cursor_update_value(sop_cursor *c, const sop_val *value)
{
    int rc = c ? writable(c->store) : sop_report(SOP_MISUSE, "NULL cursor");
    if (rc == SOP_OK && value && value->size > SOP_MAX_VALUE)
        rc = sop_report(SOP_VALUE_TOO_LARGE, "value of %zu bytes", value->size);
    if (rc == SOP_OK)
        rc = replace_current(c->store, &c->bc, NULL, 0, value, 1);
    return c ? done(c->store, rc) : rc;
}

int sop_cursor_update_key(sop_cursor *c, const sop_val *key, const sop_val *key_doc)
{
    int rc = c ? writable(c->store) : sop_report(SOP_MISUSE, "NULL cursor");
    if (rc == SOP_OK)
        rc = check_item(key, key_doc, NULL);
    node_item cur;
    if (rc == SOP_OK)
        rc = btree_current(&c->bc, &cur);
    if (rc == SOP_OK && (cur.klen != key->size || memcmp(cur.key, key->data, key->size)))
        rc = sop_report(SOP_KEY_CHANGED, "the new key orders differently from the current one");
    if (rc == SOP_OK)
        rc = replace_current(c->store, &c->bc, key_doc, 1, NULL, 0);
    return c ? done(c->store, rc) : rc;
}

int sop_cursor_remove(sop_cursor *c)
{
    int rc = c ? writable(c->store) : sop_report(SOP_MISUSE, "NULL cursor");
    if (rc == SOP_OK)
        rc = delete_current(c->store, &c->bc);
    return c ? done(c->store, rc) : rc;
}

/* One step of a fetch, noting it like sop_cursor_next/prev. */
static int fetch_step(sop_cursor *c, int fwd)
{
    unsigned char fkey[SOP_MAX_KEY], fid[16];
    size_t fklen = 0;
    int obs = observing(c->store) && c->bc.positioned;
    if (obs) {
        fklen = c->bc.klen;
        memcpy(fkey, c->bc.key, fklen);
        memcpy(fid, c->bc.id, 16);
    }
    int rc = fwd ? btree_next(&c->bc) : btree_prev(&c->bc);
    if (obs && (rc == SOP_OK || rc == SOP_NOTFOUND))
        obs_step(c->store, fwd ? OBS_NEXT : OBS_PREV, fkey, fklen, fid, &c->bc);
    return rc;
}

int sop_cursor_fetch(sop_cursor *c, const sop_paging *pg, int what, sop_fetch_fn fn, void *arg)
{
    int rc = live_cursor(c);
    if (rc != SOP_OK)
        return c ? done(c->store, rc) : rc;
    if (!pg || !fn)
        return sop_report(SOP_MISUSE, "NULL paging or callback");
    if (pg->page_size == 0 && pg->fetch_count == 0)
        return sop_report(SOP_INVALID, "page_size and fetch_count are both 0");
    if (pg->direction != SOP_FORWARD && pg->direction != SOP_BACKWARD)
        return sop_report(SOP_INVALID, "direction %d (want 0 forward or 1 backward)", pg->direction);
    int fwd = pg->direction == SOP_FORWARD;
    if (!c->bc.positioned && c->used)
        return SOP_OK; /* past an end: nothing more (no wrap-around) */
    if (!c->bc.positioned) {
        if (pg->page_offset > 0)
            return sop_report(SOP_NO_CURSOR, "page_offset > 0 needs a positioned cursor: call first, last or find");
        rc = fwd ? btree_first(&c->bc) : btree_last(&c->bc);
        if (rc == SOP_OK || rc == SOP_NOTFOUND)
            obs_seek(c->store, fwd ? OBS_FIRST : OBS_LAST, NULL, NULL, &c->bc);
        if (rc == SOP_NOTFOUND)
            return SOP_OK; /* empty store */
        if (rc != SOP_OK)
            return done(c->store, rc);
        c->used = 1;
    }
    if (pg->page_offset && pg->page_size > UINT64_MAX / pg->page_offset)
        return sop_report(SOP_INVALID, "page_offset * page_size overflows");
    uint64_t skip = pg->page_offset * pg->page_size;
    for (uint64_t i = 0; i < skip; i++) {
        rc = fetch_step(c, fwd);
        if (rc == SOP_NOTFOUND)
            return SOP_OK; /* ran off the end while skipping: no items */
        if (rc != SOP_OK)
            return done(c->store, rc);
    }
    uint64_t n = pg->fetch_count ? pg->fetch_count : pg->page_size;
    for (uint64_t i = 0; i < n; i++) {
        node_item it;
        rc = btree_current(&c->bc, &it);
        if (rc != SOP_OK)
            return done(c->store, rc == SOP_NO_CURSOR && i ? SOP_OK : rc);
        obs_item(c->store, &it, what == SOP_FETCH_VALUES);
        sop_val k = {it.klen, it.key}, d = {it.dlen, it.doc}, v = {0, NULL};
        if (what == SOP_FETCH_VALUES && (rc = resolve_value(c->store, &it, &v)) != SOP_OK)
            return done(c->store, rc);
        sop_id id;
        memcpy(id.bytes, it.id, 16);
        int urc = fn(arg, &k, &d, what == SOP_FETCH_VALUES ? &v : NULL, &id);
        if (urc)
            return urc;
        rc = fetch_step(c, fwd);
        if (rc == SOP_NOTFOUND)
            return SOP_OK;
        if (rc != SOP_OK)
            return done(c->store, rc);
    }
    return SOP_OK;
}

/* -------------------------------------------------------- store level */
int sop_store_get_info(sop_store *s, sop_store_info *info)
{
    int rc = live_store(s);
    if (rc != SOP_OK)
        return rc;
    const store_def *d = s->ts->def;
    memset(info, 0, sizeof *info);
    info->name = d->name;
    info->options.slot_length = d->slot_length;
    info->options.is_unique = d->unique;
    info->options.value_placement = d->placement;
    info->options.leaf_load_balancing = d->llb;
    info->options.is_primitive_key = d->primitive;
    info->options.description = d->description;
    info->options.index_spec = (sop_val){d->index_spec_len, d->index_spec};
    info->options.metadata = (sop_val){d->metadata_len, d->metadata};
    /* not noted as a read (bindings call this for the options alone):
     * sop_store_count is the serializable count */
    info->count = (uint64_t)((int64_t)s->ts->base_count + s->ts->delta);
    return SOP_OK;
}

int sop_store_count(sop_store *s, uint64_t *count)
{
    int rc = live_store(s);
    if (rc == SOP_OK) {
        *count = (uint64_t)((int64_t)s->ts->base_count + s->ts->delta);
        obs_count(s);
    }
    return rc;
}

typedef struct lid_list {
    uint64_t *v;
    size_t n, cap;
} lid_list;

static int push_lid(lid_list *l, uint64_t lid)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        uint64_t *nv = sop_realloc(l->v, ncap * sizeof *nv);
        if (!nv)
            return sop_report(SOP_NOMEM, "removing store");
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = lid;
    return SOP_OK;
}

static int collect_lid(void *arg, const node *n)
{
    lid_list *l = arg;
    if (n->kind == NODE_LEAF) {
        for (uint32_t i = 0; i < n->count; i++) {
            node_item it;
            node_get(n, i, &it);
            int rc;
            if ((it.flags & ITEM_VALUE_REF) && it.vlen == 16 &&
                (rc = push_lid(l, sop_get64(it.val))) != SOP_OK)
                return rc;
        }
    }
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        uint64_t *nv = sop_realloc(l->v, ncap * sizeof *nv);
        if (!nv)
            return sop_report(SOP_NOMEM, "removing store");
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = n->lid;
    return SOP_OK;
}

int sop_env_remove_store(sop_env *env, const char *name)
{
    int rc = store_name_check(name);
    if (rc != SOP_OK)
        return rc;
    for (int attempt = 0; attempt < 20; attempt++) {
        sop_txn *t;
        sop_store *s;
        if ((rc = sop_txn_begin(env, SOP_TXN_WRITE, 0, &t)) != SOP_OK)
            return rc;
        rc = txn_open_store(t, name, NULL, &s);
        lid_list l = {0};
        if (rc == SOP_OK)
            rc = btree_walk(&s->ts->bt, collect_lid, &l);
        for (size_t i = 0; i < l.n && rc == SOP_OK; i++)
            rc = t->io.release(t->io.arg, l.v[i]);
        sop_free(l.v);
        if (rc != SOP_OK) {
            sop_txn_abort(t);
            return rc;
        }
        s->ts->dropped = 1;
        t->deadline_ns = env_lock_deadline(env); /* no max_time of the caller's: the lock timeout */
        rc = sop_txn_commit(t);
        if (rc != SOP_CONFLICT)
            return rc;
    }
    return rc;
}

int sop_env_list_stores(sop_env *env, char ***names, size_t *count)
{
    *names = NULL;
    *count = 0;
    sop_txn *t;
    int rc = sop_txn_begin(env, SOP_TXN_NOCHECK, 0, &t);
    if (rc != SOP_OK)
        return rc;
    size_t bytes = 0;
    for (size_t i = 0; i < t->cat->n; i++)
        bytes += sizeof(char *) + strlen(t->cat->e[i].def->name) + 1;
    char **out = sop_malloc(bytes ? bytes : 1);
    if (!out) {
        sop_txn_abort(t);
        return sop_report(SOP_NOMEM, "store list");
    }
    char *p = (char *)(out + t->cat->n);
    for (size_t i = 0; i < t->cat->n; i++) {
        size_t n = strlen(t->cat->e[i].def->name) + 1;
        memcpy(p, t->cat->e[i].def->name, n);
        out[i] = p;
        p += n;
    }
    *count = t->cat->n;
    *names = out;
    sop_txn_abort(t);
    return SOP_OK;
}

int sop_env_check(sop_env *env, char **report)
{
    if (report)
        *report = NULL;
    sop_txn *t;
    int rc = sop_txn_begin(env, SOP_TXN_NOCHECK, 0, &t);
    if (rc != SOP_OK)
        return rc;
    sbuf out = {0};
    int bad = 0;
    for (size_t i = 0; i < t->cat->n; i++) {
        const cat_entry *e = &t->cat->e[i];
        sop_store *s;
        char line[1400];
        if ((rc = txn_open_store(t, e->def->name, NULL, &s)) != SOP_OK)
            break;
        uint64_t items = 0;
        rc = btree_check(&s->ts->bt, &items);
        if (rc != SOP_OK) {
            snprintf(line, sizeof line, "store '%s': %s\n", e->def->name, sop_errmsg());
            sbuf_put(&out, line, strlen(line));
            bad = 1;
            rc = SOP_OK;
            t->failed = 0;
        } else if (items != e->count) {
            snprintf(line, sizeof line, "store '%s': catalog count %llu but the tree holds %llu items\n",
                     e->def->name, (unsigned long long)e->count, (unsigned long long)items);
            sbuf_put(&out, line, strlen(line));
            bad = 1;
        }
    }
    if (rc == SOP_OK) {
        /* every blob any store can reach: checksums and node structure */
        uint64_t nbad = 0;
        rc = env_verify_blobs(env, t->snap, &out, &nbad);
        if (nbad)
            bad = 1;
    }
    sop_txn_abort(t);
    if (rc != SOP_OK) {
        sbuf_free(&out);
        return rc;
    }
    if (!bad) {
        sbuf_free(&out);
        return SOP_OK;
    }
    sbuf_u8(&out, 0);
    if (report && !out.err)
        *report = (char *)out.p;
    else
        sbuf_free(&out);
    return sop_report(SOP_CORRUPT, "integrity check of %s failed", env->path);
}

int sop_env_stat(sop_env *env, sop_env_stats *st)
{
    if (!st)
        return sop_report(SOP_MISUSE, "NULL stats");
    memset(st, 0, sizeof *st);
    if (!env)
        return sop_report(SOP_MISUSE, "NULL environment");
    if (env_forked(env))
        return env_forked_report(env);
    reg_stats rs;
    reg_stat(env->reg, &rs);
    pthread_mutex_lock(&env->mu);
    st->commit_seq = env->pub_seq;
    st->log_bytes = env->log_bytes;
    st->stores = env->pub_cat->n;
    st->spilled_bytes = __atomic_load_n(&env->spilled_bytes, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&env->mu);
    st->live_bytes = rs.live_bytes;
    st->cache_bytes = rs.cached_bytes;
    st->node_reads = __atomic_load_n(&env->node_reads, __ATOMIC_RELAXED);
    st->value_reads = __atomic_load_n(&env->value_reads, __ATOMIC_RELAXED);
    return SOP_OK;
}
