/*
 * _sop_int.h - private declarations shared by the C files of the sop._sop
 * extension module (_sop.c: module, errors, Env, Txn; _sop_store.c: Store;
 * _sop_codec.c: key/value encoding and the byte arenas).
 *
 * Locking rules (every file follows them):
 *  - Python objects are touched only with the GIL held.
 *  - Engine calls run with the GIL released (Py_BEGIN_ALLOW_THREADS).
 *  - Every engine call on a transaction, its stores or cursors runs with the
 *    transaction's mutex (TxnObject.lock) held.  The mutex is only ever
 *    waited for with the GIL released, so the order is always "txn lock, then
 *    GIL" and the two cannot deadlock.
 *  - Results borrowed from the engine (sop_val) are copied into an Arena
 *    before the mutex is released; Python objects are built from the copy
 *    afterwards.
 *  - Error details (sop_errmsg() is thread-local, sop_txn_errmsg() is per
 *    transaction) are captured into a SopErr right after the failing call,
 *    still under the mutex and without the GIL.
 */
#ifndef SOP_PY_INT_H
#define SOP_PY_INT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>

#include "sop.h"

/* ---- errors ------------------------------------------------------------ */

/* One failure, captured without the GIL right after the engine call. */
typedef struct SopErr {
    int rc;
    char msg[768];
} SopErr;
/* "No error yet".  Only rc and the first byte of msg: zeroing all of msg
 * (as "= {0}" does) was a quarter of the cost of a find. */
#define SOPY_NO_ERR sopy_no_err()
static inline SopErr sopy_no_err(void)
{
    SopErr e;
    e.rc = 0;
    e.msg[0] = 0;
    return e;
}

/* Record rc and the engine's detail for it.  No GIL needed.  txn may be NULL
 * (or already consumed: then pass NULL). */
void sopy_capture(SopErr *e, int rc, const sop_txn *txn);
/* Record a binding-level failure (no engine detail).  No GIL needed. */
void sopy_capture_msg(SopErr *e, int rc, const char *detail);
/* Raise the exception class of e->rc with e's message.  GIL.  Returns NULL. */
PyObject *sopy_raise_err(const SopErr *e);
/* Raise the exception class of rc with a formatted detail.  GIL.  NULL. */
PyObject *sopy_raise(int rc, const char *fmt, ...);
/* Turn the pending Python exception into exception class rc, keeping its text
 * (used for UnicodeEncodeError -> KeyTypeError and the like).  NULL. */
PyObject *sopy_reraise_as(int rc, const char *what);
/* The exception class for a code (borrowed; sop.Error for unknown codes). */
PyObject *sopy_exc_class(int rc);

/* ---- registered Python classes (set by _sop._register) ---------------- */
extern PyObject *sopy_Item;        /* sop.btree.Item (strong ref) */
extern PyObject *sopy_Context;     /* sop.context.Context (strong ref) */
extern PyObject *sopy_UUID;        /* uuid.UUID */
extern PyObject *sopy_dc_fields;   /* dataclasses.fields */

/* The class's version tag, after a lookup of attr that makes it valid (0:
 * none); and whether it still has that tag (nobody changed the class). */
unsigned int sopy_type_version(PyObject *cls, PyObject *attr);
int sopy_version_is(PyObject *cls, unsigned int version);

/* _sop_item.c: Items built and read without running Python code while the
 * registered class is the plain dataclass it was. */
/* Make cls the Item class (and install its C constructor).  0 / -1. */
int sopy_item_register(PyObject *cls);
/* 1 when sopy_Item is still the plain dataclass that was registered. */
int sopy_item_plain(void);
/* A new Item(key, value, id) (new reference; the arguments are borrowed),
 * or a 3-tuple before any class is registered.  NULL with an exception. */
PyObject *sopy_new_item(PyObject *key, PyObject *value, PyObject *id);
/* Field which (0 key, 1 value, 2 id) of an Item: new reference, or NULL
 * with an exception. */
PyObject *sopy_item_field(PyObject *item, int which);
/* Is o an Item (or an instance of a subclass)?  Never raises. */
int sopy_is_item(PyObject *o);
/* The byte offset of a writable object slot (__slots__ entry) that tp
 * itself defines, else 0.  Never raises. */
Py_ssize_t sopy_own_slot(PyTypeObject *tp, PyObject *name);

/* Interned attribute names (created at module init). */
extern PyObject *sopy_str_key, *sopy_str_value, *sopy_str_id, *sopy_str_init;

/* ---- arenas: growable byte buffers usable without the GIL -------------- */
/* The first ARENA_INLINE bytes live in the Arena itself, so the arguments
 * and result of a one-item call need no heap allocation (an Arena must not
 * be copied by value). */
#define ARENA_INLINE 512
typedef struct Arena {
    unsigned char *data;
    size_t size, cap;
    unsigned char inl[ARENA_INLINE];
} Arena;
void arena_init(Arena *a);
void arena_free(Arena *a);
/* Append n bytes; *off receives their offset.  0 ok, -1 out of memory. */
int arena_put(Arena *a, const void *p, size_t n, size_t *off);

/* A span inside an arena; len == (size_t)-1 means "absent". */
#define SPAN_NONE ((size_t)-1)
typedef struct Span {
    size_t off, len;
} Span;
static inline sop_val span_val(const Arena *a, Span s)
{
    sop_val v;
    v.size = s.len == SPAN_NONE ? 0 : s.len;
    /* an empty but present span gets a non-NULL pointer */
    v.data = s.len == SPAN_NONE ? NULL : s.len == 0 ? (const void *)"" : a->data + s.off;
    return v;
}
static inline int span_put(Arena *a, Span *s, const void *p, size_t n)
{
    s->len = n;
    return arena_put(a, p, n, &s->off);
}

/* One item read from the engine and copied out (see FetchBuf). */
typedef struct FetchRec {
    Span key, key_doc, value;
    sop_id id;
} FetchRec;

/* A list of items copied out of the engine under the txn mutex. */
typedef struct FetchBuf {
    Arena a;
    FetchRec *recs;
    size_t n, cap;
} FetchBuf;
void fetchbuf_init(FetchBuf *f);
void fetchbuf_free(FetchBuf *f);
/* Copy one item (any pointer may be NULL = absent).  0 ok, -1 no memory. */
int fetchbuf_add(FetchBuf *f, const sop_val *key, const sop_val *key_doc, const sop_val *value,
                 const sop_id *id);
/* Copy one item into a (arena, record) pair, as fetchbuf_add does.  0 / -1. */
int fetchrec_put(Arena *a, FetchRec *r, const sop_val *key, const sop_val *key_doc,
                 const sop_val *value, const sop_id *id);
/* sop_fetch_fn adapter: arg is a FetchBuf*; returns SOP_NOMEM on failure. */
int fetchbuf_cb(void *arg, const sop_val *key, const sop_val *key_doc, const sop_val *value,
                const sop_id *id);

/* ---- codecs (GIL held) -------------------------------------------------- */

/* Encode a primitive key (None, bool, int, float, str, bytes-like) into kb
 * and, for integral floats, a one-item key document into kdoc (kdoc->size
 * stays 0 otherwise).  0 ok, -1 with KeyTypeError/InvalidArgumentError/
 * KeyTooLargeError set. */
int sopy_encode_primitive_key(PyObject *key, sop_keybuf *kb, sop_docbuf *kdoc);
/* Decode an engine key (all its fields; one field gives a scalar, several a
 * tuple).  NULL with an exception on error. */
PyObject *sopy_decode_key(const void *p, size_t n);
/* Encode any supported value as one sopdoc document.  0 / -1 with
 * ValueTypeError (or MemoryError) set. */
int sopy_encode_value(PyObject *v, sop_docbuf *d);
/* Encode a complex key (dict with str keys, or a dataclass instance) as a
 * sopdoc map: the key document.  0 / -1 with KeyTypeError (wrong shape or
 * unsupported field type), KeyTooLargeError or MemoryError set. */
int sopy_encode_key_doc(PyObject *key, sop_docbuf *d);
/* Does a dict / dataclass key have a field called name?  1 / 0. */
int sopy_key_has_field(PyObject *key, PyObject *name);
/* Decode one sopdoc document; an empty buffer decodes to None. */
PyObject *sopy_decode_value(const void *p, size_t n);
/* Canonical UUID text of an id. */
PyObject *sopy_id_str(const sop_id *id);
/* Parse an id given as str, bytes or uuid.UUID (None = all zero). 0 / -1. */
int sopy_parse_id(PyObject *o, sop_id *id);

/* Module-level functions (in _sop_codec.c): encode_key, decode_key,
 * encode_value, decode_value. */
PyObject *sopy_py_encode_key(PyObject *mod, PyObject *args, PyObject *kw);
PyObject *sopy_py_decode_key(PyObject *mod, PyObject *arg);
PyObject *sopy_py_encode_value(PyObject *mod, PyObject *arg);
PyObject *sopy_py_decode_value(PyObject *mod, PyObject *arg);

/* ---- objects ------------------------------------------------------------ */

typedef struct TxnObject TxnObject;

typedef struct EnvObject {
    PyObject_HEAD
    sop_env *env;      /* NULL once closed */
    PyObject *path;    /* str, as given */
    long inflight;     /* env-level engine calls running without the GIL */
    int closing;       /* close() in progress: refuse new work */
    TxnObject *txns;   /* live Txn objects (not refcounted; each Txn refs us) */
    unsigned fork_gen; /* sopy_fork_gen when opened */
    struct EnvObject *prev_env, *next_env; /* every Env of the process (_sop.c, fork) */
} EnvObject;

struct TxnObject {
    PyObject_HEAD
    EnvObject *env;            /* strong ref */
    sop_txn *txn;              /* NULL once ended; read/written under lock */
    pthread_mutex_t lock;      /* serialises every engine call on txn */
    int lock_ready;            /* lock was initialised */
    int mode;
    unsigned fork_gen;         /* sopy_fork_gen when made (see sopy_inherited) */
    TxnObject *prev, *next;    /* in env->txns */
};

typedef struct StoreObject {
    PyObject_HEAD
    TxnObject *txn;        /* strong ref; NULL only after tp_clear */
    sop_store *store;      /* owned by the engine txn; valid while txn->txn */
    sop_cursor *cur;       /* idem */
    PyObject *name;        /* str */
    int is_primitive_key;
    int is_unique;
    PyObject *key_codec;   /* None or callable(key) -> (bytes, bytes|None) */
    PyObject *key_decoder; /* None or callable(key_bytes, key_doc|None) -> key */
    /* Complex-key stores (is_primitive_key == 0): the store's index spec (a
     * sopdoc list of [name, ascending] pairs, see sop.h), its number of
     * fields (-1: not a valid spec; keys then cannot be encoded) and the
     * field names (tuple of str). */
    PyObject *index_spec;  /* bytes; NULL until set */
    Py_ssize_t nspec;
    PyObject *spec_names;  /* tuple of str; NULL until set */
    int inline_values;     /* values live in the leaves (SOP_VALUE_SMALL) */
    /* Read-only transactions: a successful find copies the item it landed
     * on, so that get_current_item/key right after it needs no engine call.
     * Every cursor move bumps moves under the txn mutex (atomically: it is
     * read with only the GIL); the copy is good while cache_moves equals
     * moves.  cached, cache_moves, cache_key, cache and cache_rec are only
     * touched with the GIL held. */
    unsigned long moves;
    unsigned long cache_moves;
    int cached;
    PyObject *cache_key;   /* the exact str the find was given, or NULL */
    Arena cache;
    FetchRec cache_rec;
} StoreObject;

/* Set the index spec of a just-opened store (GIL).  0 / -1. */
int sopy_store_set_spec(StoreObject *st, const void *spec, size_t n);

/* TxnObject.txn is only written with the txn mutex held (often without the
 * GIL), but quick "has it ended?" checks read it without the mutex: those
 * reads and every write go through these atomics (a stale answer is
 * harmless, every engine call re-checks under the mutex). */
static inline sop_txn *sopy_txn_peek(const TxnObject *t)
{
    return __atomic_load_n(&t->txn, __ATOMIC_ACQUIRE);
}
static inline void sopy_txn_set(TxnObject *t, sop_txn *v)
{
    __atomic_store_n(&t->txn, v, __ATOMIC_RELEASE);
}

extern PyTypeObject SopEnv_Type;
extern PyTypeObject SopTxn_Type;
extern PyTypeObject SopStore_Type;

/* Check a context argument: an object whose error() returns None.  0 / -1
 * with CancelledError set. */
int sopy_check_ctx(PyObject *ctx);

/* fork(): a counter that an atfork child handler moves on (_sop.c).  An Env
 * or Txn made at another value was inherited from the parent: the engine
 * refuses every call on it (SOP_MISUSE naming fork), and its mutex may be
 * held by a parent thread that does not exist here, so it is not taken
 * (nothing behind it is touched: the engine returns at its first check). */
extern unsigned sopy_fork_gen;
static inline int sopy_inherited(unsigned gen)
{
    return gen != __atomic_load_n(&sopy_fork_gen, __ATOMIC_RELAXED);
}

/* Take / try / give back the transaction mutex.  sopy_txn_lock may block, so
 * it is only called with the GIL released. */
static inline void sopy_txn_lock(TxnObject *t)
{
    if (!sopy_inherited(t->fork_gen))
        pthread_mutex_lock(&t->lock);
}
static inline int sopy_txn_trylock(TxnObject *t)
{
    return sopy_inherited(t->fork_gen) || pthread_mutex_trylock(&t->lock) == 0;
}
static inline void sopy_txn_unlock(TxnObject *t)
{
    if (!sopy_inherited(t->fork_gen))
        pthread_mutex_unlock(&t->lock);
}

/* Run the statements in __VA_ARGS__ with the GIL released and the txn
 * mutex held.  The statements must not touch Python objects and must not
 * return/goto out of the block. */
#define SOPY_WITH_TXN(t, ...)                                   \
    do {                                                        \
        Py_BEGIN_ALLOW_THREADS                                  \
        sopy_txn_lock((t));                                     \
        __VA_ARGS__;                                            \
        sopy_txn_unlock((t));                                   \
        Py_END_ALLOW_THREADS                                    \
    } while (0)

/* Message used when a transaction has ended. */
#define SOPY_ENDED_MSG "it was committed or rolled back"
#define SOPY_FORK_MSG                                                                   \
    "this transaction was begun before fork(), in the parent process; a handle cannot " \
    "be used in a child process: open the database again here"

/* A transaction found without its engine handle: ended, or inherited
 * through fork() (the child handler drops every inherited one). */
static inline void sopy_capture_ended(const TxnObject *t, SopErr *e)
{
    if (sopy_inherited(t->fork_gen))
        sopy_capture_msg(e, SOP_MISUSE, SOPY_FORK_MSG);
    else
        sopy_capture_msg(e, SOP_TXN_ENDED, SOPY_ENDED_MSG);
}
static inline PyObject *sopy_raise_ended(const TxnObject *t)
{
    if (sopy_inherited(t->fork_gen))
        return sopy_raise(SOP_MISUSE, "%s", SOPY_FORK_MSG);
    return sopy_raise(SOP_TXN_ENDED, SOPY_ENDED_MSG);
}

#endif /* SOP_PY_INT_H */
