/*
 * txn.c - transactions: snapshot acquisition, the copy-on-write node access
 * the B-tree runs on (btree_io), the table of private (dirty) nodes, store
 * handles, and the transaction state rules (a failed transaction only
 * aborts; an ended one rejects every call with SOP_TXN_ENDED).
 */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "core.h"

/* ------------------------------------------------------- dirty table */
static dirty_ent *dirty_find(const sop_txn *t, uint64_t lid)
{
    return lidtab_find(&t->dirty, lid);
}

static int dirty_put(sop_txn *t, uint64_t lid, node *n)
{
    dirty_ent *e = lidtab_add(&t->dirty, lid);
    if (!e)
        return SOP_NOMEM;
    e->n = n;
    t->nmem++;
    return SOP_OK;
}

static void dirty_del(sop_txn *t, dirty_ent *e)
{
    if (e->n)
        t->nmem--;
    node_unref(e->n);
    lidtab_del(&t->dirty, e);
}

/* ------------------------------------------------------------ spilling */
/* A write transaction's private nodes share the cache capacity with the
 * clean cache (registry), which shrinks to make room for them: beyond the
 * whole capacity, leaves are written to the
 * transaction's own spill file (created and at once unlinked in the
 * database folder, so nothing is left behind by a crash) and read back when
 * touched again.  Only leaves that hold no temporary lids are spilled: their
 * encoded bytes are final, so the commit copies them into its batch as they
 * are.  This bounds a transaction's memory by the cache size whatever its
 * size (BENCHMARKS.md, workload 1 peak RSS). */
#define SPILL_MIN_BUDGET ((size_t)4 << 20)

static size_t spill_budget(const sop_txn *t)
{
    return SOP_MAX(reg_cache_cap(t->env->reg), SPILL_MIN_BUDGET);
}

static int spillable(const node *n)
{
    if (n->kind != NODE_LEAF)
        return 0;
    for (uint32_t i = 0; i < n->count; i++) {
        node_item it;
        node_get(n, i, &it);
        if ((it.flags & ITEM_VALUE_REF) && it.vlen == 16 && (sop_get64(it.val) & TEMP_LID_BIT))
            return 0;
    }
    return 1;
}

static int spill_open(sop_txn *t)
{
    static unsigned long counter;
    char name[96];
    snprintf(name, sizeof name, "sop-spill-%lu-%lu.tmp", (unsigned long)getpid(),
             __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
    char *p = sop_path_join(t->env->path, name);
    if (!p)
        return sop_report(SOP_NOMEM, "spill file path");
    const sop_io *io = t->env->io;
    int rc = io->open(io, p, SOP_IO_CREATE, &t->spill);
    if (rc == SOP_OK && (rc = t->spill->io->truncate(t->spill, 0)) == SOP_OK)
        rc = io->unlink(io, p);
    sop_free(p);
    if (rc != SOP_OK && t->spill) {
        t->spill->io->close(t->spill);
        t->spill = NULL;
    }
    t->spill_end = 0;
    return rc;
}

static void set_reserved(sop_txn *t, size_t bytes)
{
    reg_reserve(t->env->reg, (int64_t)bytes - (int64_t)t->reserved);
    t->reserved = bytes;
}

void txn_unreserve(sop_txn *t)
{
    set_reserved(t, 0);
}

int txn_spill_check(sop_txn *t)
{
    if (t->nmem < t->spill_check || t->mode != SOP_TXN_WRITE || !t->dirty.n)
        return SOP_OK;
    size_t mem = 0, budget = spill_budget(t), size = lidtab_slots(&t->dirty);
    for (size_t i = 0; i < size; i++) {
        const dirty_ent *e = lidtab_at(&t->dirty, i);
        if (e && e->n)
            mem += node_mem_size(e->n);
    }
    int rc = SOP_OK;
    if (mem > budget) {
        /* spill down to half the budget, going round the table */
        sbuf enc = {0};
        size_t want = budget / 2;
        for (size_t k = 0; k < size && mem > want && rc == SOP_OK; k++) {
            dirty_ent *e = lidtab_at(&t->dirty, (t->spill_hand + k) % size);
            if (!e || !e->n || e->n->refs != 1 || !spillable(e->n))
                continue; /* refs > 1: the B-tree may still hold it */
            if (!t->spill && (rc = spill_open(t)) != SOP_OK)
                break;
            size_t sz = node_encoded_size(e->n);
            enc.len = 0;
            unsigned char *buf = sbuf_reserve(&enc, sz);
            if (!buf) {
                rc = sop_report(SOP_NOMEM, "spilling node %llu", (unsigned long long)e->lid);
                break;
            }
            node_encode(e->n, buf, NULL, NULL);
            if ((rc = t->spill->io->pwrite(t->spill, buf, sz, t->spill_end)) != SOP_OK)
                break;
            mem -= node_mem_size(e->n);
            node_unref(e->n);
            e->n = NULL;
            e->spill_off = t->spill_end;
            e->spill_len = (uint32_t)sz;
            t->spill_end += sz;
            __atomic_add_fetch(&t->env->spilled_bytes, sz, __ATOMIC_RELAXED);
            t->nmem--;
            t->spill_hand = (t->spill_hand + k + 1) % size;
        }
        sbuf_free(&enc);
    }
    set_reserved(t, mem);
    t->spill_check = t->nmem + SOP_MAX(t->nmem / 16, (size_t)64);
    return rc;
}

int txn_spill_read(sop_txn *t, const dirty_ent *e, void *buf)
{
    size_t got = 0;
    int rc = t->spill->io->pread(t->spill, buf, e->spill_len, e->spill_off, &got);
    if (rc == SOP_OK && got != e->spill_len)
        rc = sop_report(SOP_IOERR, "spill file: node %llu truncated", (unsigned long long)e->lid);
    return rc;
}

/* Bring a spilled node back into memory as a private (mutable) node. */
static int unspill(sop_txn *t, dirty_ent *e)
{
    unsigned char *buf = sop_malloc(e->spill_len ? e->spill_len : 1);
    if (!buf)
        return sop_report(SOP_NOMEM, "reading spilled node %llu", (unsigned long long)e->lid);
    node *d = NULL, *n = NULL;
    int rc = txn_spill_read(t, e, buf);
    if (rc == SOP_OK)
        rc = node_decode(buf, e->spill_len, e->lid, &d);
    sop_free(buf);
    if (rc == SOP_OK && !(n = node_clone(d, e->lid)))
        rc = sop_report(SOP_NOMEM, "reading spilled node %llu", (unsigned long long)e->lid);
    node_unref(d);
    if (rc != SOP_OK)
        return txn_fail(t, rc);
    e->n = n;
    e->spill_len = 0;
    t->nmem++;
    return SOP_OK;
}

int txn_dirty_node(sop_txn *t, uint64_t lid, node **out)
{
    dirty_ent *e = dirty_find(t, lid);
    *out = NULL;
    if (!e)
        return SOP_OK;
    if (!e->n) {
        int rc = unspill(t, e);
        if (rc != SOP_OK)
            return rc;
    }
    *out = e->n;
    return SOP_OK;
}

/* --------------------------------------------------------- value table */
const value_ent *txn_value_get(const sop_txn *t, uint64_t lid)
{
    return lidtab_find(&t->vals, lid);
}

int txn_put_value(sop_txn *t, const sop_val *v, uint64_t *lid_out)
{
    unsigned char *copy = sop_malloc(v && v->size ? v->size : 1);
    if (!copy)
        return sop_report(SOP_NOMEM, "value of %zu bytes", v ? v->size : 0);
    if (v && v->size)
        memcpy(copy, v->data, v->size);
    uint64_t lid = TEMP_LID_BIT | ++t->next_temp;
    value_ent *e = lidtab_add(&t->vals, lid);
    if (!e) {
        sop_free(copy);
        return SOP_NOMEM;
    }
    e->data = copy;
    e->len = v ? v->size : 0;
    *lid_out = lid;
    return SOP_OK;
}

int txn_drop_value(sop_txn *t, uint64_t lid)
{
    if (!(lid & TEMP_LID_BIT))
        return t->io.release(t->io.arg, lid); /* a committed value: freed at commit */
    value_ent *e = lidtab_find(&t->vals, lid);
    if (e) {
        sop_free(e->data);
        lidtab_del(&t->vals, e);
    }
    return SOP_OK;
}

int txn_read_value(sop_txn *t, uint64_t lid, uint64_t size, sop_val *out)
{
    const value_ent *v = txn_value_get(t, lid);
    if (v) {
        *out = (sop_val){v->len, v->data};
        return SOP_OK;
    }
    if (lid & TEMP_LID_BIT)
        return SOP_CORRUPT_AT("transaction value %llu vanished", (unsigned long long)lid);
    unsigned char *data;
    uint32_t len;
    int rc = env_read_value(t->env, lid, t->snap, &data, &len);
    if (rc != SOP_OK)
        return txn_fail(t, rc);
    if (len != size) {
        sop_free(data);
        return txn_fail(t, SOP_CORRUPT_AT("value %llu has %u bytes, its reference says %llu",
                                          (unsigned long long)lid, len, (unsigned long long)size));
    }
    sop_free(t->vbuf);
    t->vbuf = data;
    t->vbuf_len = len;
    *out = (sop_val){len, data};
    return SOP_OK;
}

/* ------------------------------------------------------------ btree_io */
/* A snapshot node handed out by io_get stays valid for the rest of the
 * operation without a reference of its own: the recent table holds one
 * reference per slot, and a node pushed out of it moves, with that
 * reference, into the pin ring, where it stays for PIN_RING more evictions.
 * So a hit in the recent table costs no atomic operation. */
static void pin(sop_txn *t, node *n)
{
    unsigned k = t->pin_pos++ % PIN_RING;
    if (t->pins[k])
        node_unref(t->pins[k]);
    t->pins[k] = n;
}

static int io_get(void *arg, uint64_t lid, node **out)
{
    sop_txn *t = arg;
    node *n;
    int rc = txn_dirty_node(t, lid, &n);
    if (rc != SOP_OK)
        return rc;
    if (n) {
        *out = n;
        return SOP_OK;
    }
    if (lid & TEMP_LID_BIT)
        return SOP_CORRUPT_AT("transaction node %llu vanished", (unsigned long long)lid);
    unsigned h = (unsigned)((lid * 0x9E3779B97F4A7C15ull) >> 56) % RECENT_NODES;
    if (t->recent_lid[h] == lid && t->recent[h]) {
        *out = t->recent[h];
        return SOP_OK;
    }
    rc = env_read_node(t->env, lid, t->snap, &n);
    if (rc != SOP_OK)
        return txn_fail(t, rc);
    if (t->recent[h])
        pin(t, t->recent[h]); /* its reference moves to the ring */
    else
        t->recent_used[t->nrecent++] = (unsigned char)h;
    t->recent[h] = n; /* env_read_node's reference */
    t->recent_lid[h] = lid;
    *out = n;
    return SOP_OK;
}

static int io_get_mut(void *arg, uint64_t lid, node **out)
{
    sop_txn *t = arg;
    node *n;
    int rc = txn_dirty_node(t, lid, &n);
    if (rc != SOP_OK)
        return rc;
    if (n) {
        *out = n;
        return SOP_OK;
    }
    node *clean;
    rc = io_get(arg, lid, &clean);
    if (rc != SOP_OK)
        return rc;
    n = node_clone(clean, lid);
    if (!n)
        return sop_report(SOP_NOMEM, "copying node %llu", (unsigned long long)lid);
    if ((rc = dirty_put(t, lid, n)) != SOP_OK) {
        node_unref(n);
        return rc;
    }
    *out = n;
    return SOP_OK;
}

static int io_alloc(void *arg, int kind, node **out)
{
    sop_txn *t = arg;
    uint64_t lid = TEMP_LID_BIT | ++t->next_temp;
    node *n = node_new(lid, kind);
    if (!n)
        return sop_report(SOP_NOMEM, "new node");
    int rc = dirty_put(t, lid, n);
    if (rc != SOP_OK) {
        node_unref(n);
        return rc;
    }
    *out = n;
    return SOP_OK;
}

static int io_release(void *arg, uint64_t lid)
{
    sop_txn *t = arg;
    dirty_ent *e = dirty_find(t, lid);
    if (e)
        dirty_del(t, e);
    if (lid & TEMP_LID_BIT)
        return SOP_OK;
    if (t->nfreed == t->cap_freed) {
        size_t ncap = t->cap_freed ? t->cap_freed * 2 : 64;
        uint64_t *nf = sop_realloc(t->freed, ncap * sizeof *nf);
        if (!nf)
            return sop_report(SOP_NOMEM, "transaction free list");
        t->freed = nf;
        t->cap_freed = ncap;
    }
    t->freed[t->nfreed++] = lid;
    return SOP_OK;
}

/* Per-store wrappers: the same node access, noting which lids the store's
 * tree touched (a merge diffs exactly those nodes). */
static int note_lid(txn_store *ts, uint64_t lid)
{
    if (ts->nmine == ts->capmine) {
        size_t ncap = ts->capmine ? ts->capmine * 2 : 64;
        uint64_t *nm = sop_realloc(ts->mine, ncap * sizeof *nm);
        if (!nm)
            return sop_report(SOP_NOMEM, "store node list");
        ts->mine = nm;
        ts->capmine = ncap;
    }
    ts->mine[ts->nmine++] = lid;
    return SOP_OK;
}

static int ts_get(void *arg, uint64_t lid, node **out)
{
    return io_get(((txn_store *)arg)->txn, lid, out);
}

static int ts_get_mut(void *arg, uint64_t lid, node **out)
{
    txn_store *ts = arg;
    if (!dirty_find(ts->txn, lid)) {
        int rc = note_lid(ts, lid);
        if (rc != SOP_OK)
            return rc;
    }
    return io_get_mut(ts->txn, lid, out);
}

static int ts_alloc(void *arg, int kind, node **out)
{
    txn_store *ts = arg;
    int rc = io_alloc(ts->txn, kind, out);
    if (rc == SOP_OK && (rc = note_lid(ts, (*out)->lid)) != SOP_OK)
        return rc;
    return rc;
}

static int ts_release(void *arg, uint64_t lid)
{
    txn_store *ts = arg;
    int rc = note_lid(ts, lid);
    return rc != SOP_OK ? rc : io_release(ts->txn, lid);
}

/* ------------------------------------------------------------- state */
static void set_txn_msg(sop_txn *t)
{
    snprintf(t->errmsg, sizeof t->errmsg, "%s", sop_errmsg());
}

int txn_fail(sop_txn *t, int rc)
{
    if (rc == SOP_CORRUPT || rc == SOP_IOERR || rc == SOP_NOSPACE || rc == SOP_NOMEM ||
        rc == SOP_VERSION || rc == SOP_POISONED)
        t->failed = rc;
    set_txn_msg(t);
    return rc;
}

int txn_check_live(sop_txn *t)
{
    if (!t)
        return sop_report(SOP_MISUSE, "NULL transaction");
    if (env_forked(t->env))
        return env_forked_report(t->env);
    if (t->failed)
        return sop_report(SOP_TXN_ENDED,
                          "the transaction failed earlier (%s) and can only be rolled back",
                          sop_strerror(t->failed));
    if ((++t->op_count & 255) == 0 && sop_mono_ns() > t->deadline_ns)
        return sop_report(SOP_TIMEOUT, "transaction exceeded its max_time");
    return SOP_OK;
}

int sop_txn_begin(sop_env *env, int mode, uint64_t max_time_ms, sop_txn **out)
{
    *out = NULL;
    if (!env)
        return sop_report(SOP_MISUSE, "NULL environment");
    if (env_forked(env))
        return env_forked_report(env);
    if (mode != SOP_TXN_NOCHECK && mode != SOP_TXN_WRITE && mode != SOP_TXN_READ)
        return sop_report(SOP_INVALID, "transaction mode %d (want 0 NoCheck, 1 ForWriting, 2 ForReading)", mode);
    if (mode == SOP_TXN_WRITE && (env->flags & SOP_ENV_RDONLY))
        return sop_report(SOP_READONLY, "database %s is open read-only%s%s", env->path,
                          env->ro_reason[0] ? ": " : " (SOP_ENV_RDONLY)", env->ro_reason);
    sop_txn *t = sop_calloc(1, sizeof *t);
    if (!t)
        return sop_report(SOP_NOMEM, "transaction");
    lidtab_init(&t->dirty, sizeof(dirty_ent));
    lidtab_init(&t->vals, sizeof(value_ent));
    t->env = env;
    t->mode = mode;
    if (!max_time_ms)
        max_time_ms = 15ull * 60 * 1000;
    {
        uint64_t now = sop_mono_ns();
        t->deadline_ns = max_time_ms > (UINT64_MAX - now) / 1000000ull ? UINT64_MAX
                                                                        : now + max_time_ms * 1000000ull;
    }
    t->io.arg = t;
    t->io.get = io_get;
    t->io.get_mut = io_get_mut;
    t->io.alloc = io_alloc;
    t->io.release = io_release;
    t->io.on_read = NULL;
    /* a first snapshot: announce it to other processes before catching up,
     * with a value that is never above the snapshot taken after it */
    pthread_mutex_lock(&env->mu);
    if (!env->active_head)
        readers_publish(env, env->pub_seq ? env->pub_seq : 1);
    pthread_mutex_unlock(&env->mu);
    int rc = env_catch_up_if_moved(env);
    if (rc != SOP_OK) {
        sop_free(t);
        return rc;
    }
    env_txn_register(env, t); /* takes the snapshot */
    *out = t;
    return SOP_OK;
}

void txn_end(sop_txn *t)
{
    if (env_forked(t->env))
        return; /* inherited through fork(): touch nothing shared (env.c, fork) */
    while (t->handles) {
        sop_store *s = t->handles;
        t->handles = s->next;
        while (s->cursors) {
            sop_cursor *c = s->cursors;
            s->cursors = c->next;
            sop_free(c);
        }
        sop_free(s);
    }
    while (t->stores) {
        txn_store *ts = t->stores;
        t->stores = ts->next;
        def_unref(ts->def);
        sop_free(ts->mine);
        sbuf_free(&ts->obs);
        sop_free(ts);
    }
    for (size_t i = 0; i < lidtab_slots(&t->dirty); i++) {
        dirty_ent *e = lidtab_at(&t->dirty, i);
        if (e)
            node_unref(e->n);
    }
    lidtab_free(&t->dirty);
    txn_unreserve(t);
    if (t->spill)
        t->spill->io->close(t->spill);
    sop_free(t->freed);
    for (size_t i = 0; i < lidtab_slots(&t->vals); i++) {
        value_ent *e = lidtab_at(&t->vals, i);
        if (e)
            sop_free(e->data);
    }
    lidtab_free(&t->vals);
    sop_free(t->vbuf);
    /* only the slots in use: most transactions touch a few nodes */
    for (unsigned i = 0; i < PIN_RING && i < t->pin_pos; i++)
        node_unref(t->pins[i]);
    for (unsigned i = 0; i < t->nrecent; i++)
        node_unref(t->recent[t->recent_used[i]]);
    if (!t->is_merge)
        env_txn_unregister(t->env, t);
    sop_free(t);
}

sop_txn *txn_new_merge(sop_env *env)
{
    sop_txn *m = sop_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    lidtab_init(&m->dirty, sizeof(dirty_ent));
    lidtab_init(&m->vals, sizeof(value_ent));
    m->env = env;
    m->mode = SOP_TXN_WRITE;
    m->is_merge = 1;
    m->snap = env->seq_last;
    m->cat = env->seq_cat;
    cat_ref(m->cat);
    m->deadline_ns = UINT64_MAX;
    m->io.arg = m;
    m->io.get = io_get;
    m->io.get_mut = io_get_mut;
    m->io.alloc = io_alloc;
    m->io.release = io_release;
    return m;
}

void txn_free_merge(sop_txn *m)
{
    if (!m)
        return;
    cat_unref(m->cat);
    m->cat = NULL;
    txn_end(m);
}

void sop_txn_abort(sop_txn *t)
{
    if (t)
        txn_end(t);
}

int sop_txn_mode(const sop_txn *t)
{
    return t ? t->mode : -1;
}

const char *sop_txn_errmsg(const sop_txn *t)
{
    return t && t->errmsg[0] ? t->errmsg : sop_errmsg();
}

int sop_txn_commit(sop_txn *t)
{
    if (!t)
        return sop_report(SOP_MISUSE, "NULL transaction");
    int rc;
    if (env_forked(t->env))
        return env_forked_report(t->env); /* nothing written, nothing freed */
    if (t->failed)
        rc = sop_report(SOP_TXN_ENDED, "the transaction failed earlier (%s); it was rolled back",
                        sop_strerror(t->failed));
    else if (sop_mono_ns() > t->deadline_ns)
        rc = sop_report(SOP_TIMEOUT, "transaction exceeded its max_time; it was rolled back");
    else
        rc = env_commit(t);
    sop_env *env = t->env;
    uint64_t deadline = t->deadline_ns;
    txn_end(t);
    if (rc == SOP_OK)
        env_maintain(env, 0, deadline); /* after the snapshot is released; not this commit's failure */
    return rc;
}

/* -------------------------------------------------------------- stores */
static txn_store *find_txn_store(sop_txn *t, const char *name)
{
    for (txn_store *ts = t->stores; ts; ts = ts->next)
        if (!strcmp(ts->def->name, name))
            return ts;
    return NULL;
}

int txn_open_store(sop_txn *t, const char *name, const sop_store_options *create, sop_store **out)
{
    *out = NULL;
    int rc = txn_check_live(t);
    if (rc != SOP_OK)
        return rc;
    if ((rc = store_name_check(name)) != SOP_OK)
        return rc;
    sop_store_options o;
    if (create) {
        o = *create;
        if (o.slot_length == 0)
            o.slot_length = 1000;
        if (o.slot_length < 2 || o.slot_length > 20000)
            return sop_report(SOP_INVALID, "slot_length %u out of range 2..20000", o.slot_length);
        if (o.value_placement < 0 || o.value_placement > 2)
            return sop_report(SOP_INVALID, "value placement %d (want 0, 1 or 2)", o.value_placement);
        if (o.index_spec.size > SOP_MAX_KEY_DOC || o.metadata.size > SOP_MAX_KEY_DOC)
            return sop_report(SOP_INVALID, "store options too large");
    }
    txn_store *ts = find_txn_store(t, name);
    if (!ts) {
        const cat_entry *e = cat_find(t->cat, name);
        ts = sop_calloc(1, sizeof *ts);
        if (!ts)
            return sop_report(SOP_NOMEM, "store handle");
        ts->txn = t;
        ts->io = (btree_io){ts, ts_get, ts_get_mut, ts_alloc, ts_release, NULL};
        if (e) {
            if (create && !def_compatible(e->def, &o)) {
                sop_free(ts);
                return sop_report(SOP_STORE_INCOMPATIBLE,
                                  "store '%s' exists with a different configuration (slot_length %u, "
                                  "unique %d, value placement %d, index specification %s)",
                                  name, e->def->slot_length, e->def->unique, e->def->placement,
                                  e->def->index_spec_len ? "set" : "none");
            }
            ts->def = e->def;
            def_ref(ts->def);
            ts->base_count = e->count;
        } else {
            if (!create) {
                sop_free(ts);
                return sop_report(SOP_STORE_NOTFOUND, "store '%s' not found", name);
            }
            if (t->mode != SOP_TXN_WRITE) {
                sop_free(ts);
                return sop_report(SOP_READONLY, "cannot create store '%s' in a read-only transaction", name);
            }
            uint64_t root;
            if ((rc = btree_create(&ts->io, &root)) != SOP_OK) {
                sop_free(ts);
                return rc;
            }
            ts->def = def_new(++t->next_temp_store, name, root, &o);
            if (!ts->def) {
                sop_free(ts);
                return sop_report(SOP_NOMEM, "store definition");
            }
            ts->created = 1;
            ts->written = 1;
        }
        ts->bt.io = &ts->io;
        ts->bt.root = ts->def->root;
        ts->bt.slot_length = ts->def->slot_length;
        ts->next = t->stores;
        t->stores = ts;
    } else if (create && !def_compatible(ts->def, &o)) {
        return sop_report(SOP_STORE_INCOMPATIBLE, "store '%s' exists with a different configuration", name);
    }
    sop_store *s = sop_calloc(1, sizeof *s);
    if (!s)
        return sop_report(SOP_NOMEM, "store handle");
    s->txn = t;
    s->ts = ts;
    btree_cursor_init(&s->cur, &ts->bt);
    s->next = t->handles;
    t->handles = s;
    *out = s;
    return SOP_OK;
}

int sop_store_open(sop_txn *txn, const char *name, const sop_store_options *create, sop_store **store)
{
    if (!store)
        return sop_report(SOP_MISUSE, "NULL output");
    *store = NULL;
    int rc = txn_open_store(txn, name, create, store);
    if (rc != SOP_OK && txn)
        txn_fail(txn, rc);
    return rc;
}
