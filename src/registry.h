/*
 * registry.h - the registry: logical id -> physical location of the blob
 * holding its current version, kept as a chain of versions per lid so every
 * open snapshot reads the version it should (MVCC).  Each version also caches
 * its decoded node (the node cache lives here, bounded by bytes, CLOCK
 * eviction), so a lookup is one hash probe under one lock.
 *
 * A version written by commit `seq` is visible to snapshots >= seq.  A
 * version with loc 0 marks the lid deleted at seq.  Versions that no open
 * snapshot can read are pruned (their blobs become dead space).
 *
 * The registry is rebuilt at open from the commit log (log.h).
 */
#ifndef SOP_REGISTRY_H
#define SOP_REGISTRY_H

#include "node.h"

typedef struct registry registry;

int reg_open(size_t cache_bytes, registry **out);
void reg_close(registry *r);

/* Resolve lid at snapshot snap.  SOP_OK: loc and len set, and *cached is a
 * referenced node when the version's node is cached (caller unrefs), else
 * NULL.  SOP_NOTFOUND: no version visible (or deleted). */
int reg_get(registry *r, uint64_t lid, uint64_t snap, uint64_t *loc, uint32_t *len, node **cached);
/* Cache a decoded node for the version of lid stored at loc (if it still
 * exists); takes its own reference. */
void reg_cache(registry *r, uint64_t lid, uint64_t loc, node *n);

/* Install new versions (caller serialises writers).  loc 0 = deleted.  The
 * optional node is cached with the version. */
int reg_put(registry *r, uint64_t lid, uint64_t seq, uint64_t loc, uint32_t len, node *n);

/* Drop versions that no snapshot >= min_snap can read.  dead(arg, loc, len)
 * is called for each dropped blob. */
void reg_prune(registry *r, uint64_t min_snap, void (*dead)(void *arg, uint64_t loc, uint32_t len),
               void *arg);

/* Visit the newest version of every live lid (for checks and stats). */
int reg_each(registry *r, uint64_t snap, int (*fn)(void *arg, uint64_t lid, uint64_t loc, uint32_t len),
             void *arg);

typedef struct reg_stats {
    uint64_t lids, versions, cached_nodes, cached_bytes, live_bytes;
} reg_stats;
void reg_stat(registry *r, reg_stats *st);
/* Transactions' private nodes share the cache capacity: the clean cache is
 * kept within capacity minus the bytes reserved here (delta may be < 0). */
void reg_reserve(registry *r, int64_t delta);
size_t reg_cache_cap(const registry *r);

#endif
