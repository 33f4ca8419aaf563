/*
 * registry.c - the MVCC registry and node cache (see registry.h).
 *
 * Layout: an open-addressing hash table (linear probing, backward-shift
 * delete) from lid to the index of its newest version in a pool of version
 * records; versions of one lid form a newest-first chain.  A FIFO of
 * (lid, seq) remembers lids that gained a version over an older one, so
 * pruning touches only those.  One rwlock guards it all; readers share it.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>

#include "registry.h"

#define NIL UINT32_MAX

typedef struct version {
    uint64_t lid;
    uint64_t seq;
    uint64_t loc;
    uint32_t len;
    uint32_t next;   /* older version, or NIL; free list link when unused */
    node *cached;    /* decoded node or NULL */
    atomic_uchar ref; /* CLOCK reference bit */
} version;

typedef struct prune_entry {
    uint64_t lid, seq;
} prune_entry;

struct registry {
    pthread_rwlock_t lock;
    uint64_t *keys;   /* 0 = empty (lid 0 is never used) */
    uint32_t *heads;
    size_t mask, used;
    version *pool;
    size_t pool_len, pool_cap;
    uint32_t free_head;
    prune_entry *pq;  /* ring buffer */
    size_t pq_head, pq_len, pq_cap;
    /* seq of the oldest queued prune entry, UINT64_MAX when none (written
     * under the lock, read without it): reg_prune takes the write lock only
     * when there is something old enough to drop */
    _Atomic uint64_t pq_next_seq;
    size_t cache_cap, cache_bytes, cached_nodes;
    size_t reserved;  /* atomic: transactions' private nodes, which share the capacity */
    size_t clock_hand;
    uint64_t live_bytes;
};

static inline size_t hash_lid(uint64_t lid)
{
    lid ^= lid >> 33;
    lid *= 0xff51afd7ed558ccdull;
    lid ^= lid >> 33;
    return (size_t)lid;
}

int reg_open(size_t cache_bytes, registry **out)
{
    registry *r = sop_calloc(1, sizeof *r);
    if (!r)
        return sop_report(SOP_NOMEM, "registry");
    r->mask = 1023;
    r->keys = sop_calloc(r->mask + 1, sizeof *r->keys);
    r->heads = sop_calloc(r->mask + 1, sizeof *r->heads);
    r->free_head = NIL;
    r->cache_cap = cache_bytes;
    atomic_init(&r->pq_next_seq, UINT64_MAX);
    pthread_rwlock_init(&r->lock, NULL);
    if (!r->keys || !r->heads) {
        reg_close(r);
        return sop_report(SOP_NOMEM, "registry");
    }
    *out = r;
    return SOP_OK;
}

void reg_close(registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->pool_len; i++)
        if (r->pool[i].cached)
            node_unref(r->pool[i].cached);
    sop_free(r->keys);
    sop_free(r->heads);
    sop_free(r->pool);
    sop_free(r->pq);
    pthread_rwlock_destroy(&r->lock);
    sop_free(r);
}

static size_t find_slot(const registry *r, uint64_t lid)
{
    size_t i = hash_lid(lid) & r->mask;
    while (r->keys[i] && r->keys[i] != lid)
        i = (i + 1) & r->mask;
    return i;
}

static int grow_table(registry *r)
{
    size_t ncap = (r->mask + 1) * 2;
    uint64_t *nk = sop_calloc(ncap, sizeof *nk);
    uint32_t *nh = sop_calloc(ncap, sizeof *nh);
    if (!nk || !nh) {
        sop_free(nk);
        sop_free(nh);
        return sop_report(SOP_NOMEM, "registry table");
    }
    size_t nmask = ncap - 1;
    for (size_t i = 0; i <= r->mask; i++) {
        if (!r->keys[i])
            continue;
        size_t j = hash_lid(r->keys[i]) & nmask;
        while (nk[j])
            j = (j + 1) & nmask;
        nk[j] = r->keys[i];
        nh[j] = r->heads[i];
    }
    sop_free(r->keys);
    sop_free(r->heads);
    r->keys = nk;
    r->heads = nh;
    r->mask = nmask;
    return SOP_OK;
}

static void table_delete(registry *r, size_t i)
{
    /* backward-shift deletion for linear probing */
    size_t j = i;
    for (;;) {
        j = (j + 1) & r->mask;
        if (!r->keys[j])
            break;
        size_t home = hash_lid(r->keys[j]) & r->mask;
        /* can the entry at j move to i? yes if home is not in (i, j] cyclically */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            r->keys[i] = r->keys[j];
            r->heads[i] = r->heads[j];
            i = j;
        }
    }
    r->keys[i] = 0;
    r->used--;
}

static uint32_t alloc_version(registry *r)
{
    if (r->free_head != NIL) {
        uint32_t v = r->free_head;
        r->free_head = r->pool[v].next;
        return v;
    }
    if (r->pool_len == r->pool_cap) {
        size_t ncap = r->pool_cap ? r->pool_cap * 2 : 1024;
        if (ncap >= NIL)
            return NIL;
        version *np = sop_realloc(r->pool, ncap * sizeof *np);
        if (!np)
            return NIL;
        r->pool = np;
        r->pool_cap = ncap;
    }
    return (uint32_t)r->pool_len++;
}

static void drop_cached(registry *r, version *v)
{
    if (v->cached) {
        r->cache_bytes -= node_mem_size(v->cached);
        r->cached_nodes--;
        node_unref(v->cached);
        v->cached = NULL;
    }
}

static void free_version(registry *r, uint32_t idx)
{
    version *v = &r->pool[idx];
    drop_cached(r, v);
    v->lid = 0;
    v->next = r->free_head;
    r->free_head = idx;
}

/* CLOCK eviction down to the capacity (write lock held). */
static size_t clean_cap(const registry *r)
{
    size_t res = __atomic_load_n(&r->reserved, __ATOMIC_RELAXED);
    return res < r->cache_cap ? r->cache_cap - res : 0;
}

static void evict(registry *r)
{
    size_t scanned = 0, limit = r->pool_len * 2 + 1, cap = clean_cap(r);
    while (r->cache_bytes > cap && scanned++ < limit && r->pool_len) {
        if (r->clock_hand >= r->pool_len)
            r->clock_hand = 0;
        version *v = &r->pool[r->clock_hand++];
        if (!v->cached)
            continue;
        if (atomic_exchange(&v->ref, 0))
            continue;
        drop_cached(r, v);
    }
}

static void attach(registry *r, version *v, node *n)
{
    node_ref(n);
    v->cached = n;
    atomic_store(&v->ref, 1);
    r->cache_bytes += node_mem_size(n);
    r->cached_nodes++;
    if (r->cache_bytes > clean_cap(r))
        evict(r);
}

int reg_get(registry *r, uint64_t lid, uint64_t snap, uint64_t *loc, uint32_t *len, node **cached)
{
    int rc = SOP_NOTFOUND;
    *cached = NULL;
    pthread_rwlock_rdlock(&r->lock);
    size_t i = find_slot(r, lid);
    if (r->keys[i]) {
        for (uint32_t vi = r->heads[i]; vi != NIL; vi = r->pool[vi].next) {
            version *v = &r->pool[vi];
            if (v->seq > snap)
                continue;
            if (v->loc) {
                *loc = v->loc;
                *len = v->len;
                if (v->cached) {
                    node_ref(v->cached);
                    *cached = v->cached;
                    atomic_store_explicit(&v->ref, 1, memory_order_relaxed);
                }
                rc = SOP_OK;
            }
            break;
        }
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

void reg_cache(registry *r, uint64_t lid, uint64_t loc, node *n)
{
    if (!r->cache_cap)
        return;
    pthread_rwlock_wrlock(&r->lock);
    size_t i = find_slot(r, lid);
    if (r->keys[i]) {
        for (uint32_t vi = r->heads[i]; vi != NIL; vi = r->pool[vi].next) {
            version *v = &r->pool[vi];
            if (v->loc == loc) {
                if (!v->cached)
                    attach(r, v, n);
                break;
            }
        }
    }
    pthread_rwlock_unlock(&r->lock);
}

static int pq_push(registry *r, uint64_t lid, uint64_t seq)
{
    if (r->pq_len == r->pq_cap) {
        size_t ncap = r->pq_cap ? r->pq_cap * 2 : 1024;
        prune_entry *np = sop_malloc(ncap * sizeof *np);
        if (!np)
            return SOP_NOMEM;
        for (size_t k = 0; k < r->pq_len; k++)
            np[k] = r->pq[(r->pq_head + k) % r->pq_cap];
        sop_free(r->pq);
        r->pq = np;
        r->pq_cap = ncap;
        r->pq_head = 0;
    }
    r->pq[(r->pq_head + r->pq_len) % r->pq_cap] = (prune_entry){lid, seq};
    if (r->pq_len++ == 0)
        atomic_store(&r->pq_next_seq, seq);
    return SOP_OK;
}

int reg_put(registry *r, uint64_t lid, uint64_t seq, uint64_t loc, uint32_t len, node *n)
{
    int rc = SOP_OK;
    pthread_rwlock_wrlock(&r->lock);
    if ((r->used + 1) * 4 > (r->mask + 1) * 3 && (rc = grow_table(r)) != SOP_OK)
        goto out;
    size_t i = find_slot(r, lid);
    uint32_t vi = alloc_version(r);
    if (vi == NIL) {
        rc = sop_report(SOP_NOMEM, "registry version");
        goto out;
    }
    version *v = &r->pool[vi];
    v->lid = lid;
    v->seq = seq;
    v->loc = loc;
    v->len = loc ? len : 0;
    v->cached = NULL;
    atomic_store(&v->ref, 0);
    if (r->keys[i]) {
        v->next = r->heads[i];
        if (pq_push(r, lid, seq) != SOP_OK) {
            free_version(r, vi);
            rc = sop_report(SOP_NOMEM, "registry prune queue");
            goto out;
        }
    } else {
        v->next = NIL;
        r->keys[i] = lid;
        r->used++;
    }
    r->heads[i] = vi;
    if (loc)
        r->live_bytes += len;
    if (n && loc)
        attach(r, v, n);
out:
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

void reg_prune(registry *r, uint64_t min_snap, void (*dead)(void *, uint64_t, uint32_t), void *arg)
{
    if (atomic_load(&r->pq_next_seq) > min_snap)
        return; /* nothing queued is old enough (a racing reg_put waits for the next prune) */
    pthread_rwlock_wrlock(&r->lock);
    while (r->pq_len) {
        prune_entry e = r->pq[r->pq_head];
        if (e.seq > min_snap)
            break;
        r->pq_head = (r->pq_head + 1) % r->pq_cap;
        r->pq_len--;
        size_t i = find_slot(r, e.lid);
        if (!r->keys[i])
            continue;
        /* keep the newest version visible to min_snap; drop everything older */
        uint32_t keep = r->heads[i];
        while (keep != NIL && r->pool[keep].seq > min_snap)
            keep = r->pool[keep].next;
        if (keep == NIL)
            continue;
        uint32_t old = r->pool[keep].next;
        r->pool[keep].next = NIL;
        while (old != NIL) {
            uint32_t nx = r->pool[old].next;
            if (r->pool[old].loc) {
                r->live_bytes -= r->pool[old].len;
                if (dead)
                    dead(arg, r->pool[old].loc, r->pool[old].len);
            }
            free_version(r, old);
            old = nx;
        }
        /* a deletion marker that is the only version left: forget the lid */
        if (r->heads[i] == keep && !r->pool[keep].loc) {
            free_version(r, keep);
            table_delete(r, i);
        }
    }
    atomic_store(&r->pq_next_seq, r->pq_len ? r->pq[r->pq_head].seq : UINT64_MAX);
    pthread_rwlock_unlock(&r->lock);
}

int reg_each(registry *r, uint64_t snap, int (*fn)(void *, uint64_t, uint64_t, uint32_t), void *arg)
{
    int rc = SOP_OK;
    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i <= r->mask && rc == SOP_OK; i++) {
        if (!r->keys[i])
            continue;
        for (uint32_t vi = r->heads[i]; vi != NIL; vi = r->pool[vi].next) {
            if (r->pool[vi].seq > snap)
                continue;
            if (r->pool[vi].loc)
                rc = fn(arg, r->keys[i], r->pool[vi].loc, r->pool[vi].len);
            break;
        }
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

void reg_stat(registry *r, reg_stats *st)
{
    pthread_rwlock_rdlock(&r->lock);
    st->lids = r->used;
    st->versions = r->pool_len;
    st->cached_nodes = r->cached_nodes;
    st->cached_bytes = r->cache_bytes;
    st->live_bytes = r->live_bytes;
    pthread_rwlock_unlock(&r->lock);
}

void reg_reserve(registry *r, int64_t delta)
{
    __atomic_add_fetch(&r->reserved, (size_t)delta, __ATOMIC_RELAXED);
    if (delta > 0) {
        pthread_rwlock_wrlock(&r->lock);
        if (r->cache_bytes > clean_cap(r))
            evict(r);
        pthread_rwlock_unlock(&r->lock);
    }
}

size_t reg_cache_cap(const registry *r)
{
    return r->cache_cap;
}
