/*
 * core.h - the internal structures shared by env.c (database handle, log
 * following, recovery, commit pipeline), txn.c (transactions, snapshots,
 * copy-on-write node access) and api.c (item and cursor operations).
 */
#ifndef SOP_CORE_H
#define SOP_CORE_H

#include <pthread.h>

#include "btree.h"
#include "catalog.h"
#include "lidtab.h"
#include "registry.h"

#define LOG_ROTATE_DEFAULT (64u << 20) /* start a new log file beyond this */
#define TEMP_LID_BIT (1ull << 63)     /* lids allocated inside a transaction */
#define PIN_RING 256
#define RECENT_NODES 256 /* at most 256: txn.recent_used holds slot numbers in bytes */
#define READER_SLOTS 256 /* processes that can have one database open at once */

/* A mutex whose waiters give up at a deadline (sop_mono_ns clock): held
 * while waiting for another process's lock, so threads queued behind that
 * wait are bounded by their own deadlines too. */
typedef struct env_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int held;
} env_gate;

typedef struct pending_pub {
    uint64_t seq;
    catalog *cat;
} pending_pub;

struct sop_env {
    char *path;
    const sop_io *io;
    unsigned flags;
    uint64_t rotate_bytes;     /* sop_env_options.log_file_bytes */
    sop_file *lock_file;       /* flock: the cross-process commit lock */
    sop_file *ckpt_lock_file;  /* flock: one checkpoint writer at a time */
    sop_file *readers_file;    /* sop.readers: the snapshot table of all processes */
    int reader_slot;           /* our slot in it, -1 before readers_open */
    uint32_t reader_pid;       /* written into the slot (informational) */
    uint64_t reader_pub;       /* the value last written into our slot (under mu) */
    uint64_t readers_checked_ns; /* when sop.readers was last checked to be our file (atomic) */
    int readers_stale;         /* sop.readers was deleted or replaced: its epoch says nothing (atomic) */
    uint64_t seen_epoch;       /* the log epoch this process last caught up at (atomic) */
    env_gate ckpt_gate;        /* this process's checkpoint writer, taken before ckpt_lock_file */
    env_gate commit_gate;      /* this process's holder of (or waiter for) lock_file */
    uint32_t lock_timeout_ms;  /* sop_env_options.lock_timeout_ms (0 given: 30 s) */
    unsigned char dbid[16];
    unsigned fork_gen;         /* sop_fork_generation() when opened: another value means
                                  this is a fork() child holding the parent's handle */
    char ro_reason[160];       /* why a database opened without SOP_ENV_RDONLY is read-only */
    sop_env *open_prev, *open_next; /* every open handle of the process (env.c, fork) */

    /* log files, indexed by file number (files[0] unused); files_lock guards
     * the arrays (readers use the files while holding it shared) */
    pthread_mutex_t commit_mu; /* serialises catch-up, sequencing and appends; taken
                                  after lock_file, or alone by catch-up at begin */
    pthread_rwlock_t files_lock;
    sop_file **files;
    uint64_t *file_end;        /* end of valid data of each file */
    uint64_t alloc_end;        /* size of the current file last seen: zeros lie between log_end and it */
    uint64_t *file_live;       /* bytes of blobs some version still references */
    unsigned char *file_ckref; /* referenced by the durable checkpoint */
    uint64_t *file_dead_seq;   /* checkpoint seq from which nothing can read the file */
    uint32_t nfiles_cap;
    uint32_t first_file;       /* oldest file still present */
    /* checkpoint */
    uint64_t ckpt_seq;
    uint32_t ckpt_file;        /* replay starts here ... */
    uint64_t ckpt_off;         /* ... at this offset */
    uint64_t maint_log_bytes;  /* log_bytes at the last maintenance pass */
    uint64_t ckpt_log_bytes;   /* log_bytes at the last checkpoint */
    uint64_t maint_tries;      /* commits that found the log mostly dead */
    uint32_t cur_file;
    uint64_t log_end;          /* end of applied/written data in cur_file */
    uint64_t log_bytes;        /* total bytes in log files */
    uint32_t unsynced_lo;      /* oldest file with unsynced writes (0 = none) */

    /* sequenced state (under commit_mu) */
    uint64_t seq_last;
    catalog *seq_cat;
    uint64_t next_lid;
    uint32_t next_store_id;

    /* published state (under mu): what new snapshots see */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    uint64_t pub_seq;
    catalog *pub_cat;
    pending_pub *pending;
    size_t npending, cap_pending;
    uint64_t durable_seq;      /* fsync covered every batch up to here */
    uint64_t written_seq;      /* last batch written (not necessarily synced) */
    uint64_t sync_target;      /* highest seq an fsync in flight covers */
    int syncing;               /* a thread is running fsync */
    int poisoned;
    sop_txn *active_head, *active_tail; /* ordered by snapshot */
    size_t nactive;

    registry *reg;
    uint64_t node_reads, value_reads; /* atomic counters */
    uint64_t spilled_bytes;           /* atomic */
};

typedef struct txn_store txn_store;
struct txn_store {
    txn_store *next;
    sop_txn *txn;
    btree_io io;      /* the transaction's node access, noting this store's lids */
    uint64_t *mine;   /* lids this store's tree made private, allocated or released */
    size_t nmine, capmine;
    sbuf obs;         /* reads to re-check if the store changes under us (merge.c) */
    store_def *def;   /* definition (ref held) */
    int created;      /* created in this transaction */
    int written;
    int dropped;      /* removed in this transaction */
    int counted;      /* the item count was read (a write transaction): merge.c re-checks it */
    int read_created; /* created here and read (not noted one by one): see merge.c */
    int64_t delta;    /* count change */
    uint64_t base_count;
    btree bt;
};

struct sop_store {
    sop_store *next;
    sop_txn *txn;
    txn_store *ts;
    sop_cursor *cursors;
    btree_cursor cur; /* the handle's own cursor for point operations */
};

struct sop_cursor {
    sop_cursor *next;
    sop_store *store;
    int used;         /* ever positioned: an unpositioned used cursor is past an end */
    btree_cursor bc;
};

/* a value blob written by the transaction (Medium/Big stores) */
typedef struct value_ent {
    uint64_t lid; /* temporary lid */
    unsigned char *data;
    size_t len;
} value_ent;

/* dirty node table entry: the node in memory (n), or spilled (n NULL):
 * its encoded bytes at spill_off in the transaction's spill file */
typedef struct dirty_ent {
    uint64_t lid;
    node *n;
    uint64_t spill_off;
    uint32_t spill_len;
} dirty_ent;

struct sop_txn {
    sop_env *env;
    int mode;
    int failed;            /* an I/O or corruption error: only abort is allowed */
    uint64_t snap;
    catalog *cat;
    uint64_t deadline_ns;
    sop_txn *prev, *next;  /* env's active list */
    btree_io io;
    txn_store *stores;
    sop_store *handles;
    /* dirty nodes: open addressing on lid */
    lidtab dirty;          /* dirty_ent by lid */
    size_t nmem;           /* dirty nodes in memory */
    size_t spill_check;    /* measure the dirty bytes again when nmem reaches this */
    size_t reserved;       /* dirty bytes reserved in the registry's cache capacity */
    size_t spill_hand;     /* where the next spill starts looking in the table */
    sop_file *spill;       /* spill file (unlinked), opened on first use */
    uint64_t spill_end;
    uint64_t *freed;       /* lids of snapshot nodes dropped by this transaction */
    size_t nfreed, cap_freed;
    uint64_t next_temp;
    int is_merge;          /* a merge transaction (merge.c): not a registered snapshot */
    uint32_t next_temp_store;
    lidtab vals;           /* value_ent by (temporary) lid */
    unsigned char *vbuf;   /* the last value read from disk (results borrow it) */
    size_t vbuf_len;
    node *pins[PIN_RING];
    /* snapshot nodes looked up recently (direct-mapped, referenced): a scan
     * re-reads its leaf without touching the shared registry */
    uint64_t recent_lid[RECENT_NODES];
    node *recent[RECENT_NODES];
    unsigned char recent_used[RECENT_NODES]; /* the slots of recent in use, first nrecent */
    unsigned nrecent;
    uint64_t pin_pos;     /* pins taken so far (the ring holds the last PIN_RING) */
    unsigned op_count;
    char errmsg[512];
};

/* merge.c: re-check a transaction's reads on the current state and replay
 * its item changes there (commit_mu and the file lock held).  On success
 * *out is a merge transaction holding the result to commit instead. */
int merge_build(sop_txn *t, sop_txn **out);

/* env.c */
/* Open with a given I/O layer (tests inject faults and crashes through it). */
int env_open_with_io(const char *path, const sop_env_options *opts, const sop_io *io, sop_env **out);
void env_file_live_add(sop_env *env, uint64_t loc, int64_t len);
int env_put_version(sop_env *env, uint64_t lid, uint64_t seq, uint64_t loc, uint32_t len, node *n);
int env_open_log(sop_env *env, uint32_t no, int create);
int files_reserve_public(sop_env *env, uint32_t no);
int env_write_batch(sop_env *env, sbuf *b, const log_commit *c, uint64_t *base); /* commit_mu held */
int env_batch_start(sop_env *env, uint64_t *base);
int env_batch_flush(sop_env *env, sbuf *b, uint64_t base, uint64_t *written);
int env_batch_finish(sop_env *env, sbuf *b, const log_commit *c, uint64_t base, uint64_t written);
#define BATCH_PIECE_BYTES (1u << 20) /* a batch this large is written in pieces */
int env_sync_upto(sop_env *env, uint64_t seq);

/* readers.c: the snapshot table shared between processes */
/* fork() detection (env.c): a counter that an atfork child handler moves on */
/* 1 when env was opened in another process (this is a fork() child); then
 * every call fails with SOP_MISUSE and close only frees memory. */
int env_forked(const sop_env *env);
int env_forked_report(const sop_env *env); /* SOP_MISUSE with the reason */

int readers_open(sop_env *env);
void readers_close(sop_env *env);
int readers_publish(sop_env *env, uint64_t seq); /* 0 = nothing to protect (closing) */
/* What a process with no open snapshot announces: the last commit it has
 * applied, so no log file it has yet to read is deleted under it. */
uint64_t readers_idle_value(sop_env *env);
int readers_min(sop_env *env, uint64_t *min_seq); /* lower *min_seq to other processes' oldest */
/* 1 if the log may hold batches this process has not read (*epoch: the
 * epoch now, to pass to readers_caught_up after catching up), 0 if not. */
int readers_log_moved(sop_env *env, uint64_t *epoch);
void readers_caught_up(sop_env *env, uint64_t epoch); /* commit_mu held */
/* This process appended a batch to the log (commit_mu and the commit lock
 * held): move the epoch on. */
int readers_log_appended(sop_env *env);

/* reclaim.c: checkpoints, compaction of log files, deletion of dead files */
int ckpt_load(sop_env *env, int *found);
/* Waits for the checkpoint lock until deadline_ns, or not at all when
 * skip_if_busy (SOP_BUSY then); for the commit lock until deadline_ns. */
int ckpt_write(sop_env *env, uint64_t deadline_ns, int skip_if_busy);
/* Maintenance (compaction, checkpoint): waits for locks until deadline_ns
 * at most, and never longer than the lock timeout. */
int env_maintain(sop_env *env, int force, uint64_t deadline_ns);
/* Take the commit lock: commit_gate, then lock_file (another process may
 * hold it: waits until deadline_ns at most), then commit_mu; SOP_BUSY at the
 * deadline, with nothing held.  `what` names the caller in the message. */
int env_lock_commit(sop_env *env, uint64_t deadline_ns, const char *what);
void env_unlock_commit(sop_env *env);
/* now + the lock timeout (open, compaction, calls without a transaction) */
uint64_t env_lock_deadline(const sop_env *env);
void gate_init(env_gate *g);
void gate_destroy(env_gate *g);
int gate_enter(env_gate *g, uint64_t deadline_ns); /* SOP_OK, or SOP_BUSY at the deadline */
void gate_leave(env_gate *g);
int env_catch_up(sop_env *env);              /* commit_mu held */
int env_catch_up_if_moved(sop_env *env);     /* takes commit_mu only if the log moved */
int env_catch_up_locked(sop_env *env);       /* commit_mu and the file lock held */
int env_push_pending(sop_env *env, uint64_t seq, catalog *cat);
void env_prune(sop_env *env);
int env_read_node(sop_env *env, uint64_t lid, uint64_t snap, node **out);
/* Read and verify every blob visible at snap (checksums, node structure);
 * problems are appended to report, counted in *bad. */
int env_verify_blobs(sop_env *env, uint64_t snap, sbuf *report, uint64_t *bad);
/* Read a separate value blob at snapshot snap into a malloc'd buffer. */
int env_read_value(sop_env *env, uint64_t lid, uint64_t snap, unsigned char **data, uint32_t *len);
int env_commit(sop_txn *txn);                /* the commit pipeline */
void env_txn_register(sop_env *env, sop_txn *txn);
void env_txn_unregister(sop_env *env, sop_txn *txn);

/* txn.c */
int txn_put_value(sop_txn *txn, const sop_val *v, uint64_t *lid);
int txn_drop_value(sop_txn *txn, uint64_t lid);
int txn_read_value(sop_txn *txn, uint64_t lid, uint64_t size, sop_val *out);
const value_ent *txn_value_get(const sop_txn *txn, uint64_t lid);
int txn_check_live(sop_txn *txn);
int txn_open_store(sop_txn *txn, const char *name, const sop_store_options *create, sop_store **out);
/* A private write transaction at the sequenced state (commit_mu held), not
 * registered as a snapshot; used to merge a transaction's changes. */
sop_txn *txn_new_merge(sop_env *env);
void txn_free_merge(sop_txn *m);
/* The transaction's private copy of lid, in *out (NULL when it has none);
 * a spilled one is read back.  Errors: SOP_IOERR, SOP_CORRUPT, SOP_NOMEM. */
int txn_dirty_node(sop_txn *txn, uint64_t lid, node **out);
/* After a write: keep the private nodes within the budget (the cache size)
 * by spilling leaves to the transaction's spill file. */
int txn_spill_check(sop_txn *txn);
/* Read a spilled node's encoded bytes (len = e->spill_len) into buf. */
int txn_spill_read(sop_txn *txn, const dirty_ent *e, void *buf);
/* Give back the cache capacity reserved for the private nodes (at commit). */
void txn_unreserve(sop_txn *txn);
void txn_end(sop_txn *txn); /* release everything; txn freed */
int txn_fail(sop_txn *txn, int rc);

#endif
