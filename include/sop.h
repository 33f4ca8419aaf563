/*
 * sop.h - the public C API of libsop, a transactional B-tree object store.
 *
 * One database (a folder on local disk) holds many named stores.  Each store
 * is a B+tree of items: a key, an optional key document, a value and a
 * 16-byte item id.  Transactions span several stores and are ACID: a commit
 * is durable when sop_txn_commit() returns SOP_OK, and a transaction that did
 * not commit leaves nothing behind, whatever happens to the process.
 *
 * Conventions (read these once, they hold for every function below):
 *
 *  - Every function that can fail returns an int from the SOP_ERRORS table
 *    (SOP_OK is 0).  sop_strerror(rc) is a static description of a code;
 *    sop_errmsg() returns the detail of the last failure in the calling
 *    thread (file, store, object id, ...), valid until the next sop_* call
 *    in that thread.
 *  - Output pointers are set to NULL / zero on every failure.
 *  - Handles are opaque.  Destructors (sop_env_close, sop_txn_abort,
 *    sop_cursor_close) accept NULL.
 *  - sop_txn_commit() and sop_txn_abort() always consume the transaction,
 *    on success and on failure; every sop_store and sop_cursor opened in it
 *    is freed with it.
 *  - A transaction, and the stores and cursors opened in it, belong to one
 *    thread at a time.  An environment is shared by any number of threads.
 *  - sop_val results returned by lookups BORROW memory owned by the
 *    transaction: they stay valid until the next call that moves or modifies
 *    anything in the same transaction, or its end.  Copy what you keep.
 *
 * Keys.  The engine orders items by the bytes of the key with memcmp (then
 * by item id).  Build keys with the sop_key_* encoder below so that numbers,
 * strings, composite keys and descending fields sort as users expect; or
 * give any bytes of your own if memcmp order is what you want.  The key
 * document (key_doc) is optional extra data stored with the key (for example
 * the full record of a composite key, with "ride-on" fields that take no
 * part in ordering); it may be changed with sop_cursor_update_key().
 *
 * Caveats: long-lived transactions keep old versions of nodes alive (their
 * space is reclaimed only when no snapshot can read them); keep them short.
 */
#ifndef SOP_H
#define SOP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SOP_API __declspec(dllexport)
#else
#define SOP_API __attribute__((visibility("default")))
#endif

#define SOP_VERSION_MAJOR 0
#define SOP_VERSION_MINOR 1
#define SOP_VERSION_PATCH 0
#define SOP_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------
 * Errors.  One table generates the C enum, sop_strerror(), sop_errname() and
 * the Python exception classes (sop_error_table()).
 *
 * X(NAME, code, python_exception, python_base, description)
 *   python_base is another python_exception of this table, or one of the
 *   root names "Error" (sop.Error), "TransactionError".
 * ---------------------------------------------------------------------- */
#define SOP_ERRORS(X)                                                                              \
    X(OK, 0, "", "", "success")                                                                    \
    X(NOTFOUND, 1, "NotFoundError", "BtreeError", "item not found")                                \
    X(KEYEXIST, 2, "KeyExistsError", "BtreeError", "an item with this key already exists")        \
    X(STORE_NOTFOUND, 3, "StoreNotFoundError", "BtreeError", "store not found")                   \
    X(STORE_INCOMPATIBLE, 4, "StoreIncompatibleError", "BtreeError",                              \
      "store exists with a different configuration")                                              \
    X(CONFLICT, 5, "ConflictError", "TransactionError",                                           \
      "transaction conflicts with a concurrent commit; retry it")                                 \
    X(TXN_ENDED, 6, "InvalidTransactionStateError", "TransactionError",                           \
      "transaction has already ended")                                                            \
    X(READONLY, 7, "ReadOnlyTransactionError", "BtreeError",                                      \
      "write in a transaction that is not ForWriting")                                            \
    X(TIMEOUT, 8, "TransactionTimeoutError", "TransactionError",                                  \
      "transaction exceeded its max_time")                                                        \
    X(INVALID, 9, "InvalidArgumentError", "Error", "invalid argument")                            \
    X(KEY_TOO_LARGE, 10, "KeyTooLargeError", "InvalidArgumentError", "key too large")             \
    X(BAD_KEY, 11, "KeyTypeError", "InvalidArgumentError", "key has an unsupported type or shape") \
    X(BAD_NAME, 12, "InvalidStoreNameError", "InvalidArgumentError", "invalid store name")        \
    X(NO_CURSOR, 13, "NoCurrentItemError", "BtreeError", "cursor is not positioned on an item")   \
    X(CORRUPT, 14, "CorruptionError", "Error", "database file is corrupt")                        \
    X(IOERR, 15, "StorageIOError", "Error", "I/O error")                                          \
    X(NOSPACE, 16, "DiskFullError", "StorageIOError", "no space left on device")                  \
    X(NOMEM, 17, "OutOfMemoryError", "Error", "out of memory")                                    \
    X(POISONED, 18, "DatabasePoisonedError", "Error",                                             \
      "database handle failed after a commit point; reopen it")                                   \
    X(BUSY, 19, "DatabaseBusyError", "Error", "database is locked by another process")            \
    X(VERSION, 20, "FormatVersionError", "CorruptionError", "unsupported on-disk format version") \
    X(MISUSE, 21, "MisuseError", "Error", "library used incorrectly")                             \
    X(CANCELLED, 22, "CancelledError", "TransactionError", "operation cancelled")                 \
    X(VALUE_TOO_LARGE, 23, "ValueTooLargeError", "InvalidArgumentError", "value too large")       \
    X(BAD_VALUE, 24, "ValueTypeError", "InvalidArgumentError", "value has an unsupported type")  \
    X(KEY_CHANGED, 25, "KeyChangedError", "BtreeError",                                           \
      "an indexed key field would change; only ride-on fields may be updated")

#define SOP_ENUM_(name, code, pyname, pybase, desc) SOP_##name = code,
enum sop_error { SOP_ERRORS(SOP_ENUM_) SOP_ERROR_COUNT_ };
#undef SOP_ENUM_

/** Static description of an error code ("unknown error" for others). */
SOP_API const char *sop_strerror(int rc);
/** Symbolic name of an error code, e.g. "SOP_CONFLICT". */
SOP_API const char *sop_errname(int rc);
/** Detail of the last failure in the calling thread; never NULL. */
SOP_API const char *sop_errmsg(void);

/** One row of the error table, for language bindings. */
typedef struct sop_error_info {
    int code;
    const char *name;        /* "CONFLICT" */
    const char *py_name;     /* "ConflictError" ("" for SOP_OK) */
    const char *py_base;     /* "TransactionError" */
    const char *description; /* sop_strerror(code) */
} sop_error_info;
/** The whole table; *count receives the number of rows. Static storage. */
SOP_API const sop_error_info *sop_error_table(size_t *count);

/* ------------------------------------------------------------------------
 * Basic types
 * ---------------------------------------------------------------------- */
typedef struct sop_env sop_env;       /* an open database folder */
typedef struct sop_txn sop_txn;       /* a transaction */
typedef struct sop_store sop_store;   /* a store (B-tree) opened in a transaction */
typedef struct sop_cursor sop_cursor; /* a position in a store */

/** A byte string.  data may be NULL when size is 0. */
typedef struct sop_val {
    size_t size;
    const void *data;
} sop_val;

/** A 16-byte item id (a UUID).  All zero is "no id". */
typedef struct sop_id {
    unsigned char bytes[16];
} sop_id;

/** Limits. Encoded keys longer than SOP_MAX_KEY give SOP_KEY_TOO_LARGE. */
#define SOP_MAX_KEY 4096
#define SOP_MAX_KEY_DOC (1u << 20)
#define SOP_MAX_VALUE (1u << 30)
#define SOP_MAX_STORE_NAME 255

/* ------------------------------------------------------------------------
 * Environment (database)
 * ---------------------------------------------------------------------- */
typedef struct sop_env_options {
    size_t cache_bytes;   /* node cache bound; 0 = default (256 MiB) */
    unsigned flags;       /* SOP_ENV_* */
    uint64_t log_file_bytes; /* start a new log file beyond this size; 0 = 64 MiB.
                                Checkpoints happen about once per file. */
    uint32_t lock_timeout_ms; /* longest wait for another process's commit or
                                 checkpoint lock at open (and in calls without a
                                 transaction of their own: sop_env_compact,
                                 sop_env_remove_store); 0 = 30,000 ms.  A
                                 transaction's commit waits at most until its
                                 own max_time.  Either ends in SOP_BUSY with
                                 nothing written (a holder may be stopped). */
} sop_env_options;

/** Do not fsync (tests and bulk loads only: a crash may lose recent commits,
 *  never half-apply one). */
#define SOP_ENV_NOSYNC 0x1u
/** Open read-only: create, truncate or repair nothing, take no reader slot;
 *  the folder must already hold a database (SOP_NOTFOUND otherwise).  Write
 *  transactions, compaction and store removal fail with SOP_READONLY.  A torn
 *  tail left by a crash is ignored in memory, not cut.  Without this flag, a
 *  database whose folder or files cannot be written (permissions, read-only
 *  mount) is also opened read-only; sop_env_readonly() tells. */
#define SOP_ENV_RDONLY 0x2u
/** Open an existing database only: SOP_NOTFOUND when `path` is missing or
 *  holds no database (tools use this so that a typo creates nothing). */
#define SOP_ENV_NOCREATE 0x4u
/** Create a new database only: SOP_KEYEXIST when `path` already holds one
 *  (decided under the cross-process lock, so of several processes creating
 *  one folder at once exactly one succeeds). */
#define SOP_ENV_CREATE_NEW 0x8u

/**
 * Open (creating if needed) the database in folder `path` and run recovery.
 * @param[in]  path  folder; created if missing (its parent must exist).
 * @param[in]  opts  NULL for defaults.
 * @param[out] env   the handle, or NULL on failure.
 * @return SOP_OK, SOP_INVALID, SOP_IOERR, SOP_CORRUPT, SOP_VERSION, SOP_NOMEM.
 */
SOP_API int sop_env_open(const char *path, const sop_env_options *opts, sop_env **env);
/** Close; open transactions must have ended (SOP_MISUSE otherwise, and the env
 *  is not closed).  NULL is a no-op returning SOP_OK. */
SOP_API int sop_env_close(sop_env *env);
/** Folder the env was opened on (owned by env). */
SOP_API const char *sop_env_path(const sop_env *env);
/** 1 when the env was opened read-only (SOP_ENV_RDONLY, or a folder that
 *  cannot be written), else 0 (also for NULL). */
SOP_API int sop_env_readonly(const sop_env *env);

/** Remove a store and all its data, atomically (its own transaction).
 *  @return SOP_OK, SOP_STORE_NOTFOUND, SOP_BAD_NAME, SOP_CONFLICT, I/O codes. */
SOP_API int sop_env_remove_store(sop_env *env, const char *name);

/** Names of all stores, sorted.  *names is one malloc'd block (free with
 *  sop_free) holding *count pointers followed by the strings. */
SOP_API int sop_env_list_stores(sop_env *env, char ***names, size_t *count);

/** Integrity check of the whole database.  Returns SOP_OK when clean,
 *  SOP_CORRUPT with a report in *report (free with sop_free) otherwise. */
SOP_API int sop_env_check(sop_env *env, char **report);

/** Reclaim space now: write a checkpoint, compact log files whose blobs are
 *  mostly dead, delete files nothing refers to.  This also runs by itself
 *  during commits; snapshots still open keep the versions they can read. */
SOP_API int sop_env_compact(sop_env *env);

/** Free memory returned by the library (NULL-safe). */
SOP_API void sop_free(void *p);

/** Statistics (for tools and tests). */
typedef struct sop_env_stats {
    uint64_t commit_seq;      /* last committed sequence number */
    uint64_t log_bytes;       /* bytes in log files */
    uint64_t live_bytes;      /* bytes of blobs any snapshot can still read */
    uint64_t cache_bytes;     /* bytes held by the node cache */
    uint64_t node_reads;      /* blobs read from disk since open */
    uint64_t value_reads;     /* value blobs read from disk since open */
    uint64_t stores;          /* number of stores */
    uint64_t spilled_bytes;   /* private nodes of large transactions written to
                                 their spill files since open (they keep a
                                 transaction within the cache size) */
} sop_env_stats;
SOP_API int sop_env_stat(sop_env *env, sop_env_stats *st);

/* ------------------------------------------------------------------------
 * Transactions
 * ---------------------------------------------------------------------- */
#define SOP_TXN_NOCHECK 0  /* read-only, no validation at commit */
#define SOP_TXN_WRITE 1    /* read-write (ForWriting) */
#define SOP_TXN_READ 2     /* read-only (ForReading); like NOCHECK, its snapshot reads need
                            * no validation at commit */

/**
 * Begin a transaction on a snapshot of the last committed state.
 * @param mode          SOP_TXN_*.
 * @param max_time_ms   the transaction fails with SOP_TIMEOUT after this long;
 *                      0 = 15 minutes.
 */
SOP_API int sop_txn_begin(sop_env *env, int mode, uint64_t max_time_ms, sop_txn **txn);
/**
 * Commit.  Always consumes txn.  On SOP_OK the transaction is durable.  On
 * SOP_CONFLICT nothing was written and the transaction may be retried; the
 * same for SOP_BUSY (another process held the commit lock until max_time
 * ran out).  On
 * other errors nothing of it is visible, now or after a restart.
 */
SOP_API int sop_txn_commit(sop_txn *txn);
/** Roll back and free.  NULL-safe. */
SOP_API void sop_txn_abort(sop_txn *txn);
SOP_API int sop_txn_mode(const sop_txn *txn);
/** Detail message of the last failure of a call on this transaction. */
SOP_API const char *sop_txn_errmsg(const sop_txn *txn);

/* ------------------------------------------------------------------------
 * Stores
 * ---------------------------------------------------------------------- */
#define SOP_VALUE_SMALL 0  /* values live in the leaf node */
#define SOP_VALUE_MEDIUM 1 /* values are separate blobs */
#define SOP_VALUE_BIG 2    /* values are separate blobs, never cached */

typedef struct sop_store_options {
    uint32_t slot_length;     /* max items per node, 2..20000; 0 = 1000 */
    int is_unique;            /* unique keys */
    int value_placement;      /* SOP_VALUE_* */
    int leaf_load_balancing;  /* kept for compatibility (stored, compared) */
    int is_primitive_key;     /* kept with the store for bindings */
    const char *description;  /* NULL = "" ; not compared */
    sop_val index_spec;       /* opaque; compared for compatibility */
    sop_val metadata;         /* opaque application metadata; not compared */
} sop_store_options;

/** What sop_store_info() returns.  Pointers borrow from the transaction. */
typedef struct sop_store_info {
    const char *name;
    sop_store_options options;
    uint64_t count;           /* items, including this transaction's changes; not
                                 noted as a read (see sop_store_count) */
} sop_store_info;

/**
 * Open a store in a transaction.
 * @param create  NULL: open an existing store (SOP_STORE_NOTFOUND if none).
 *                Otherwise create it (in this transaction; visible to
 *                others when it commits) or, if it exists, open it when the
 *                options are compatible (slot_length, is_unique,
 *                value_placement, leaf_load_balancing, is_primitive_key,
 *                index_spec equal), else SOP_STORE_INCOMPATIBLE.
 * @param[out] store  owned by txn.  Opening the same name twice in one
 *                transaction gives two handles on the same tree.
 * Names: 1..255 bytes of UTF-8, no '/', '\\', NUL, not "." or "..".
 */
SOP_API int sop_store_open(sop_txn *txn, const char *name, const sop_store_options *create,
                           sop_store **store);
SOP_API int sop_store_get_info(sop_store *store, sop_store_info *info);
/** Items in the store, including this transaction's changes.  In a write
 *  transaction this is a read that commit re-checks: if the store's count
 *  changed since the snapshot (a concurrent commit added or removed items),
 *  commit fails with SOP_CONFLICT, so two transactions that both saw a count
 *  and then wrote cannot both commit. */
SOP_API int sop_store_count(sop_store *store, uint64_t *count);

/* Item operations.  key: encoded key (1..SOP_MAX_KEY bytes).  key_doc may be
 * NULL.  value may be NULL (an empty value). */

/** Add an item.  Unique store: SOP_KEYEXIST if the key exists.  id_out may be NULL. */
SOP_API int sop_add(sop_store *s, const sop_val *key, const sop_val *key_doc, const sop_val *value,
                    sop_id *id_out);
/** Add only if no item has this key (also on non-unique stores): SOP_KEYEXIST otherwise. */
SOP_API int sop_add_if_absent(sop_store *s, const sop_val *key, const sop_val *key_doc,
                              const sop_val *value, sop_id *id_out);
/** Replace the value (and key_doc, if not NULL) of the first item with key:
 *  SOP_NOTFOUND if none. */
SOP_API int sop_update(sop_store *s, const sop_val *key, const sop_val *key_doc,
                       const sop_val *value);
/** Update if present, else add. */
SOP_API int sop_upsert(sop_store *s, const sop_val *key, const sop_val *key_doc,
                       const sop_val *value);
/** Remove the first item with key: SOP_NOTFOUND if none. */
SOP_API int sop_remove(sop_store *s, const sop_val *key);
/** Remove the item with this key and id: SOP_NOTFOUND if none. */
SOP_API int sop_remove_id(sop_store *s, const sop_val *key, const sop_id *id);
/** Replace the key document of the first item with key (the encoded key must be
 *  equal).  SOP_NOTFOUND if none. */
SOP_API int sop_update_key(sop_store *s, const sop_val *key, const sop_val *key_doc);
/** Point lookup of the first item with key.  Borrowed results; any may be NULL. */
SOP_API int sop_get(sop_store *s, const sop_val *key, sop_val *key_doc, sop_val *value,
                    sop_id *id);

/* ------------------------------------------------------------------------
 * Cursors.  A cursor is on an item or unpositioned.  Modifications through
 * any handle of the same transaction keep cursors valid: a cursor stays on
 * its item (or, if that item was removed, becomes unpositioned).
 * ---------------------------------------------------------------------- */
SOP_API int sop_cursor_open(sop_store *s, sop_cursor **cur);
SOP_API void sop_cursor_close(sop_cursor *cur);

/** Position on the first item with this key: SOP_OK.  On a miss:
 *  SOP_NOTFOUND, and the cursor is on the first item with a greater key
 *  (or, if there is none, past the end: sop_cursor_fetch then returns no
 *  items until the cursor is positioned again). */
SOP_API int sop_cursor_find(sop_cursor *cur, const sop_val *key);
/** Position on the item with this key and id (all-zero id = sop_cursor_find). */
SOP_API int sop_cursor_find_id(sop_cursor *cur, const sop_val *key, const sop_id *id);
/** sop_cursor_find, then on SOP_OK the item found, as sop_cursor_get would
 *  give it (borrowed; any output may be NULL; value NULL skips reading a
 *  separately stored value): one call for a lookup by key. */
SOP_API int sop_cursor_find_get(sop_cursor *cur, const sop_val *key, sop_val *key_out,
                                sop_val *key_doc, sop_val *value, sop_id *id);
/** SOP_OK, or SOP_NOTFOUND (empty store / moved past an end: unpositioned).
 *  next/prev on an unpositioned cursor give SOP_NO_CURSOR. */
SOP_API int sop_cursor_first(sop_cursor *cur);
SOP_API int sop_cursor_last(sop_cursor *cur);
SOP_API int sop_cursor_next(sop_cursor *cur);
SOP_API int sop_cursor_prev(sop_cursor *cur);
SOP_API int sop_cursor_is_positioned(const sop_cursor *cur);

/** The current item (borrowed).  value may be NULL to skip reading it (a
 *  separately stored value is then not read from disk).  SOP_NO_CURSOR if
 *  unpositioned. */
SOP_API int sop_cursor_get(sop_cursor *cur, sop_val *key, sop_val *key_doc, sop_val *value,
                           sop_id *id);
/** Replace the value of the current item. */
SOP_API int sop_cursor_update_value(sop_cursor *cur, const sop_val *value);
/** Replace the key document of the current item; the encoded key must be
 *  byte-equal to the current one (SOP_KEY_CHANGED otherwise). */
SOP_API int sop_cursor_update_key(sop_cursor *cur, const sop_val *key, const sop_val *key_doc);
/** Remove the current item; the cursor becomes unpositioned. */
SOP_API int sop_cursor_remove(sop_cursor *cur);

/** Paging (the original SOP's rules, fixed):
 *  - a cursor never positioned yet: page_offset 0 starts at the first
 *    (Forward) or last (Backward) item; page_offset > 0 gives SOP_NO_CURSOR;
 *    an empty store gives SOP_OK with no items.
 *  - a cursor that moved past an end (or was positioned and then lost its
 *    item): SOP_OK with no items, until first/last/find positions it again
 *    (no wrap-around).
 *  - skip page_offset*page_size items in direction; running off the end while
 *    skipping returns SOP_OK with no items and an unpositioned cursor.
 *  - then fetch fetch_count (or page_size if 0) items, starting at the
 *    current item, moving in direction; stops early at the end.
 *  - the cursor ends on the item after the last returned (unpositioned at the
 *    end; no wrap-around).
 *  - page_size 0 and fetch_count 0: SOP_INVALID.
 *  The callback gets borrowed values valid during the call; a non-zero
 *  return stops the fetch and is returned. */
#define SOP_FORWARD 0
#define SOP_BACKWARD 1
#define SOP_FETCH_KEYS 0
#define SOP_FETCH_VALUES 1
typedef struct sop_paging {
    uint64_t page_offset;
    uint64_t page_size;
    uint64_t fetch_count;
    int direction; /* SOP_FORWARD / SOP_BACKWARD */
} sop_paging;
typedef int (*sop_fetch_fn)(void *arg, const sop_val *key, const sop_val *key_doc,
                            const sop_val *value, const sop_id *id);
SOP_API int sop_cursor_fetch(sop_cursor *cur, const sop_paging *paging, int what, sop_fetch_fn fn,
                             void *arg);

/* ------------------------------------------------------------------------
 * Key encoder: builds order-preserving keys (memcmp order = value order).
 * Types order null < bool < number < string < bytes.  Numbers (int64,
 * uint64, double) compare by exact value, so 1 and 1.0 are the same key.
 * Each field may be descending.  A key is a concatenation of fields.
 * ---------------------------------------------------------------------- */
typedef struct sop_keybuf {
    unsigned char *data; /* the encoded key so far */
    size_t size;
    size_t cap;
    int err;             /* sticky first error (SOP_NOMEM / SOP_INVALID / SOP_KEY_TOO_LARGE) */
    unsigned char inline_buf[128];
} sop_keybuf;

SOP_API void sop_key_init(sop_keybuf *kb);
SOP_API void sop_key_reset(sop_keybuf *kb);
SOP_API void sop_key_free(sop_keybuf *kb);
SOP_API void sop_key_null(sop_keybuf *kb, int descending);
SOP_API void sop_key_bool(sop_keybuf *kb, int v, int descending);
SOP_API void sop_key_int(sop_keybuf *kb, int64_t v, int descending);
SOP_API void sop_key_uint(sop_keybuf *kb, uint64_t v, int descending);
/** NaN is refused (kb->err = SOP_INVALID). -0.0 equals 0.0. */
SOP_API void sop_key_double(sop_keybuf *kb, double v, int descending);
/** UTF-8 text (not validated here; bindings validate). */
SOP_API void sop_key_str(sop_keybuf *kb, const char *s, size_t n, int descending);
SOP_API void sop_key_bytes(sop_keybuf *kb, const void *p, size_t n, int descending);

/** Field types reported by the decoder. */
#define SOP_KT_NULL 0
#define SOP_KT_BOOL 1
#define SOP_KT_INT 2    /* fits int64 */
#define SOP_KT_UINT 3   /* > INT64_MAX */
#define SOP_KT_DOUBLE 4 /* not an integer, or beyond the 64-bit range */
#define SOP_KT_STR 5
#define SOP_KT_BYTES 6
typedef struct sop_key_field {
    int type;
    int descending;
    int64_t i;
    uint64_t u;
    double d;
    /* str/bytes: the decoded bytes, in the key itself when the field needs
     * no unescaping, else in a buffer owned by the reader; valid until the
     * next sop_key_next call on the reader, while the key's bytes live. */
    const unsigned char *p;
    size_t n;
} sop_key_field;
typedef struct sop_key_reader {
    const unsigned char *pos, *end;
    unsigned char *scratch;
    size_t scratch_cap;
} sop_key_reader;
SOP_API void sop_key_reader_init(sop_key_reader *r, const void *key, size_t size);
/** 1 = a field was decoded, 0 = end of key, negative = -SOP_CORRUPT/-SOP_NOMEM. */
SOP_API int sop_key_next(sop_key_reader *r, sop_key_field *f);
SOP_API void sop_key_reader_free(sop_key_reader *r);

/* ------------------------------------------------------------------------
 * Document encoder ("sopdoc"): a compact binary format for values and key
 * documents: null, bool, int64, uint64, double, str, bytes, list, map (keys
 * are strings, order kept).  Other languages and tools read it; see
 * docs/ARCHITECTURE.md for the byte layout.
 * ---------------------------------------------------------------------- */
#define SOP_DT_NULL 0
#define SOP_DT_FALSE 1
#define SOP_DT_TRUE 2
#define SOP_DT_INT 3
#define SOP_DT_UINT 4
#define SOP_DT_DOUBLE 5
#define SOP_DT_STR 6
#define SOP_DT_BYTES 7
#define SOP_DT_LIST 8
#define SOP_DT_MAP 9
#define SOP_DT_BIGINT 10 /* two's complement big-endian bytes, beyond 64 bits */

typedef struct sop_docbuf {
    unsigned char *data;
    size_t size, cap;
    int err;               /* sticky first error */
    unsigned char inline_buf[256];
} sop_docbuf;
SOP_API void sop_doc_init(sop_docbuf *d);
SOP_API void sop_doc_reset(sop_docbuf *d);
SOP_API void sop_doc_free(sop_docbuf *d);
SOP_API void sop_doc_null(sop_docbuf *d);
SOP_API void sop_doc_bool(sop_docbuf *d, int v);
SOP_API void sop_doc_int(sop_docbuf *d, int64_t v);
SOP_API void sop_doc_uint(sop_docbuf *d, uint64_t v);
SOP_API void sop_doc_bigint(sop_docbuf *d, const void *be_twos_complement, size_t n);
SOP_API void sop_doc_double(sop_docbuf *d, double v);
SOP_API void sop_doc_str(sop_docbuf *d, const char *s, size_t n);
SOP_API void sop_doc_bytes(sop_docbuf *d, const void *p, size_t n);
/** Containers: give the element count up front; a map entry is a str key
 *  (sop_doc_str) followed by its value. */
SOP_API void sop_doc_list(sop_docbuf *d, size_t count);
SOP_API void sop_doc_map(sop_docbuf *d, size_t count);

typedef struct sop_doc_item {
    int type;          /* SOP_DT_* */
    int64_t i;
    uint64_t u;
    double d;
    const unsigned char *p; /* str/bytes/bigint: points into the document */
    size_t n;               /* str/bytes/bigint length; list/map element count */
} sop_doc_item;
typedef struct sop_doc_reader {
    const unsigned char *pos, *end;
    int depth;
} sop_doc_reader;
SOP_API void sop_doc_reader_init(sop_doc_reader *r, const void *doc, size_t size);
/** Read the next item in pre-order: 1 = read, 0 = end of input,
 *  -SOP_CORRUPT on malformed input (never reads out of bounds). */
SOP_API int sop_doc_next(sop_doc_reader *r, sop_doc_item *it);
/** Check that [doc,size) is exactly one well-formed document (nesting <= 64). */
SOP_API int sop_doc_validate(const void *doc, size_t size);
/** Render a document as JSON text (bytes as base64 strings; non-finite doubles
 *  as null).  *json is malloc'd (free with sop_free). */
SOP_API int sop_doc_to_json(const void *doc, size_t size, char **json, size_t *json_len);

/* ------------------------------------------------------------------------
 * Key documents and index specifications.
 *
 * A store of "complex" keys (is_primitive_key = 0) keeps, for every item, a
 * key document: a sopdoc map of field names to values (a record, a Python
 * dict or dataclass).  Its order key is built from the document by an index
 * specification, given at creation in sop_store_options.index_spec and kept
 * with the store (so a reader that opens the store gets it back from
 * sop_store_get_info()):
 *
 *   index_spec = a sopdoc list of [field_name (str), ascending (bool)] pairs,
 *                e.g. [["region", true], ["department", true], ["id", false]]
 *                built with sop_doc_list(d, 3); sop_doc_list(d, 2);
 *                sop_doc_str(d, "region", 6); sop_doc_bool(d, 1); ...
 *                Names are non-empty and distinct.
 *   empty      = no bytes (or an empty list): every top-level field of the
 *                document is a key field, ascending, ordered by field name
 *                (bytewise, a shorter name first).  The key holds only the
 *                values, so all keys of such a store should have the same
 *                field names.
 *
 * Fields the specification does not name "ride along": they are kept in the
 * key document (and may be changed with sop_cursor_update_key) but take no
 * part in order or uniqueness.  Key field values must be scalars: null, bool,
 * int64, uint64, double (not NaN), str or bytes; they order as the key
 * encoder above does (null < bool < number < string < bytes, numbers by
 * exact value, descending fields reversed).
 *
 * Typical use:
 *     sop_key_from_doc(&spec, doc.data, doc.size, &kb, &used);
 *     if (used < nfields) ... a missing indexed field: refuse to add;
 *     sop_add(store, &(sop_val){kb.size, kb.data}, &(sop_val){doc.size, doc.data},
 *             &value, NULL);
 * A lookup with a partial document (the leading fields of the spec, e.g.
 * only "region") gives a prefix key: sop_cursor_find() then positions on
 * the first item whose key starts with it (compare the first kb.size bytes
 * of the current key to tell a match), and next() walks the range.
 * ---------------------------------------------------------------------- */

/**
 * Build the order key of a key document (appended to kb).
 * @param index_spec   the store's index spec (see above); NULL or empty =
 *                     every field by name.
 * @param doc, n       one sopdoc map (string entries are not checked for
 *                     UTF-8 here: sop_doc_validate does).
 * @param[out] fields_used  how many key fields were encoded (may be NULL).
 *                     With a spec, the key stops at the first field missing
 *                     from the document (a prefix key): fields_used < the
 *                     number of spec fields tells a partial key.  Without a
 *                     spec it is the number of fields of the document.
 * @return SOP_OK; SOP_BAD_KEY (the document is not a map, a key field is a
 *         list, map, NaN or an integer beyond 64 bits, or a field name is
 *         repeated; sop_errmsg() names the field); SOP_INVALID (malformed
 *         spec or document); SOP_KEY_TOO_LARGE; SOP_NOMEM.  On failure kb is
 *         left as it was and *fields_used is 0.
 */
SOP_API int sop_key_from_doc(const sop_val *index_spec, const void *doc, size_t n,
                             sop_keybuf *kb, size_t *fields_used);
/** Check an index spec; *nfields (may be NULL) receives its number of
 *  fields (0 for an empty spec).  SOP_OK or SOP_INVALID (with a message). */
SOP_API int sop_index_spec_check(const void *spec, size_t n, size_t *nfields);

/* ------------------------------------------------------------------------
 * Item ids
 * ---------------------------------------------------------------------- */
/** Format as the canonical 36-char UUID text into out[37]. */
SOP_API void sop_id_format(const sop_id *id, char out[37]);
/** Parse UUID text (36 chars with dashes or 32 hex): SOP_OK or SOP_INVALID. */
SOP_API int sop_id_parse(const char *text, size_t n, sop_id *id);

#ifdef __cplusplus
}
#endif
#endif /* SOP_H */
