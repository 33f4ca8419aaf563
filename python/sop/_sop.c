/*
 * _sop.c - the sop._sop extension module: module init, the exception
 * hierarchy generated from sop_error_table(), and the Env (sop_env) and Txn
 * (sop_txn) types.  The Store type is in _sop_store.c, conversions between
 * Python objects and engine bytes in _sop_codec.c; the locking rules for all
 * of them are at the top of _sop_int.h.
 *
 * Lifetimes: a Txn holds a reference to its Env, a Store to its Txn.  The
 * engine frees a transaction's stores and cursors when it ends, so every Store
 * method checks, under the txn mutex, that the transaction is still alive
 * (else InvalidTransactionStateError) before touching its C handles.
 * Env.close() refuses to run while an env-level call is in flight (counter),
 * and aborts the transactions still open on it.
 */
#include "_sop_int.h"

#include <stdarg.h>
#include <string.h>

PyObject *sopy_Context;
PyObject *sopy_UUID;
PyObject *sopy_str_key, *sopy_str_value, *sopy_str_id;
static PyObject *str_error, *str_cancelled;
PyObject *sopy_str_init;
/* sop.context.Context's type version when it was registered (0: no fast
 * check); a class attribute assignment (e.g. a patched error()) changes it. */
static unsigned int context_version;
/* The offset of its _cancelled slot, when it has one (else 0). */
static Py_ssize_t context_slot;
PyObject *sopy_dc_fields;

/* Exception classes, indexed by code (NULL for unused codes). */
static PyObject **exc_by_code;
static int exc_count;
static PyObject *exc_Error, *exc_TransactionError, *exc_BtreeError;

/* ======================================================================
 * Errors
 * ==================================================================== */

PyObject *sopy_exc_class(int rc)
{
    if (rc > 0 && rc < exc_count && exc_by_code[rc])
        return exc_by_code[rc];
    return exc_Error;
}

/* Compose "<description>: <detail>" into e->msg (without duplicating the
 * description when the detail already starts with it). */
static void compose(SopErr *e, int rc, const char *detail)
{
    const char *desc = sop_strerror(rc);
    size_t dl = strlen(desc);
    e->rc = rc;
    if (!detail || !*detail || strcmp(detail, "no error detail") == 0)
        snprintf(e->msg, sizeof e->msg, "%s", desc);
    else if (strncmp(detail, desc, dl) == 0)
        snprintf(e->msg, sizeof e->msg, "%s", detail);
    else
        snprintf(e->msg, sizeof e->msg, "%s: %s", desc, detail);
}

void sopy_capture(SopErr *e, int rc, const sop_txn *txn)
{
    /* sop_errmsg() is the calling thread's last failure; prefer it when it is
     * about this code, else the transaction's own message. */
    const char *tl = sop_errmsg();
    const char *desc = sop_strerror(rc);
    const char *d = NULL;
    if (tl && strncmp(tl, desc, strlen(desc)) == 0)
        d = tl;
    else if (txn) {
        const char *m = sop_txn_errmsg(txn);
        if (m && *m)
            d = m;
    }
    compose(e, rc, d ? d : tl);
}

void sopy_capture_msg(SopErr *e, int rc, const char *detail)
{
    compose(e, rc, detail);
}

static PyObject *raise_msg(int rc, PyObject *msg)
{
    PyObject *cls = sopy_exc_class(rc);
    PyObject *exc = PyObject_CallFunctionObjArgs(cls, msg, NULL);
    if (!exc)
        return NULL;
    PyObject *code = PyLong_FromLong(rc);
    if (!code || PyObject_SetAttrString(exc, "code", code) < 0) {
        Py_XDECREF(code);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(code);
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

PyObject *sopy_raise_err(const SopErr *e)
{
    PyObject *msg = PyUnicode_DecodeUTF8(e->msg, (Py_ssize_t)strlen(e->msg), "replace");
    if (!msg)
        return NULL;
    raise_msg(e->rc, msg);
    Py_DECREF(msg);
    return NULL;
}

PyObject *sopy_raise(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PyObject *detail = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (!detail)
        return NULL;
    PyObject *msg = PyUnicode_FromFormat("%s: %U", sop_strerror(rc), detail);
    Py_DECREF(detail);
    if (!msg)
        return NULL;
    raise_msg(rc, msg);
    Py_DECREF(msg);
    return NULL;
}

PyObject *sopy_reraise_as(int rc, const char *what)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v && tb)
        PyException_SetTraceback(v, tb);
    if (v)
        sopy_raise(rc, "%s (%S)", what, v);
    else
        sopy_raise(rc, "%s", what);
    if (v) {
        PyObject *t2, *v2, *tb2;
        PyErr_Fetch(&t2, &v2, &tb2);
        PyErr_NormalizeException(&t2, &v2, &tb2);
        if (v2) {
            Py_INCREF(v);
            PyException_SetCause(v2, v); /* steals the new reference */
        }
        PyErr_Restore(t2, v2, tb2);
    }
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    return NULL;
}

/* The class's version tag, after a lookup that makes it valid (0: none). */
unsigned int sopy_type_version(PyObject *cls, PyObject *attr)
{
    PyObject *v = PyObject_GetAttr(cls, attr);
    if (!v) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(v);
    PyTypeObject *tp = (PyTypeObject *)cls;
    return PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG) ? tp->tp_version_tag : 0;
}

int sopy_version_is(PyObject *cls, unsigned int version)
{
    PyTypeObject *tp = (PyTypeObject *)cls;
    return version && PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG) &&
           tp->tp_version_tag == version;
}

/* The fast form of the check for a plain sop.Context whose class is as
 * registered: its error() is "context cancelled" exactly when _cancelled is
 * set.  1 valid, 0 cancelled, -1 unknown (use error()). */
static int context_fast_valid(PyObject *ctx)
{
    PyTypeObject *tp = Py_TYPE(ctx);
    if ((PyObject *)tp != sopy_Context || !sopy_version_is(sopy_Context, context_version))
        return -1;
    if (context_slot) { /* _cancelled is a slot: read it in place */
        PyObject *c = *(PyObject **)((char *)ctx + context_slot);
        return c == Py_False ? 1 : -1;
    }
    PyObject *c = PyObject_GetAttr(ctx, str_cancelled);
    if (!c) {
        PyErr_Clear();
        return -1;
    }
    int r = c == Py_False ? 1 : -1;
    Py_DECREF(c);
    return r;
}

int sopy_check_ctx(PyObject *ctx)
{
    if (ctx == NULL || ctx == Py_None) {
        sopy_raise(SOP_CANCELLED, "a sop.Context is required, got None");
        return -1;
    }
    if (context_fast_valid(ctx) == 1)
        return 0;
    PyObject *meth = PyObject_GetAttr(ctx, str_error);
    if (!meth) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        sopy_raise(SOP_CANCELLED, "expected a sop.Context, got %.100s", Py_TYPE(ctx)->tp_name);
        return -1;
    }
    PyObject *r = PyObject_CallNoArgs(meth);
    Py_DECREF(meth);
    if (!r)
        return -1;
    if (r != Py_None) {
        sopy_raise(SOP_CANCELLED, "the context is no longer valid (%S)", r);
        Py_DECREF(r);
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* Build the exception classes from the engine's table. */
static int make_exceptions(PyObject *mod, PyObject *classes)
{
    size_t n = 0;
    const sop_error_info *tab = sop_error_table(&n);
    int maxcode = 0;
    for (size_t i = 0; i < n; i++)
        if (tab[i].code > maxcode)
            maxcode = tab[i].code;
    exc_count = maxcode + 1;
    exc_by_code = PyMem_Calloc((size_t)exc_count, sizeof *exc_by_code);
    if (!exc_by_code) {
        PyErr_NoMemory();
        return -1;
    }

    struct {
        const char *name, *doc;
        PyObject **slot;
        PyObject **base;
    } roots[] = {
        {"Error", "Base class of every error raised by sop.", &exc_Error, NULL},
        {"TransactionError", "A transaction or one of its operations failed.",
         &exc_TransactionError, &exc_Error},
        {"BtreeError", "A B-tree (store) operation failed.", &exc_BtreeError,
         &exc_TransactionError},
    };
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        char qual[128];
        snprintf(qual, sizeof qual, "sop.%s", roots[i].name);
        PyObject *dict = Py_BuildValue("{s:O,s:s}", "code", Py_None, "__doc__", roots[i].doc);
        if (!dict)
            return -1;
        *roots[i].slot =
            PyErr_NewException(qual, roots[i].base ? *roots[i].base : PyExc_Exception, dict);
        Py_DECREF(dict);
        if (!*roots[i].slot || PyDict_SetItemString(classes, roots[i].name, *roots[i].slot) < 0)
            return -1;
    }

    static const struct {
        const char *name;
        PyObject **mixin;
    } mixins[] = {
        {"InvalidArgumentError", &PyExc_ValueError}, {"KeyTypeError", &PyExc_TypeError},
        {"ValueTypeError", &PyExc_TypeError},        {"StorageIOError", &PyExc_OSError},
        {"OutOfMemoryError", &PyExc_MemoryError},    {"NotFoundError", &PyExc_LookupError},
        {"StoreNotFoundError", &PyExc_LookupError},
    };
    for (size_t i = 0; i < n; i++) {
        const sop_error_info *row = &tab[i];
        if (row->code == SOP_OK || !row->py_name || !*row->py_name)
            continue;
        PyObject *base = PyDict_GetItemString(classes, row->py_base); /* borrowed */
        if (!base) {
            PyErr_Format(PyExc_ImportError, "sop error table: %s has unknown base %s",
                         row->py_name, row->py_base);
            return -1;
        }
        PyObject *bases = NULL;
        for (size_t m = 0; m < sizeof mixins / sizeof mixins[0]; m++)
            if (strcmp(mixins[m].name, row->py_name) == 0)
                bases = PyTuple_Pack(2, base, *mixins[m].mixin);
        if (!bases)
            bases = PyTuple_Pack(1, base);
        if (!bases)
            return -1;
        char qual[128];
        snprintf(qual, sizeof qual, "sop.%s", row->py_name);
        PyObject *dict = Py_BuildValue("{s:i,s:s,s:s}", "code", row->code, "__doc__",
                                       row->description, "errname", row->name);
        PyObject *cls = dict ? PyErr_NewException(qual, bases, dict) : NULL;
        Py_DECREF(bases);
        Py_XDECREF(dict);
        if (!cls)
            return -1;
        char cname[64];
        snprintf(cname, sizeof cname, "SOP_%s", row->name);
        int bad = PyDict_SetItemString(classes, row->py_name, cls) < 0 ||
                  PyModule_AddIntConstant(mod, cname, row->code) < 0;
        exc_by_code[row->code] = cls; /* keeps the reference */
        if (bad)
            return -1;
    }
    /* module attributes */
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(classes, &pos, &k, &v)) {
        if (PyObject_SetAttr(mod, k, v) < 0)
            return -1;
    }
    return 0;
}

/* ======================================================================
 * Env
 * ==================================================================== */

static int env_enter(EnvObject *self)
{
    if (!self->env || self->closing) {
        sopy_raise(SOP_MISUSE, "the database environment %R is closed", self->path);
        return -1;
    }
    self->inflight++;
    return 0;
}

static void env_leave(EnvObject *self)
{
    self->inflight--;
}


/* ---- fork() ------------------------------------------------------------------
 * Every Env of the process is listed (under the GIL).  In a fork() child the
 * atfork handler moves sopy_fork_gen on and drops the engine pointer of every
 * inherited transaction without touching it: a parent thread may have been
 * inside an engine call on it at the fork (committing, which frees it), so
 * the pointer may dangle and its mutex may be held by a thread that does not
 * exist here.  The Python objects then report MisuseError naming fork; the
 * engine refuses the inherited Env itself the same way. */
unsigned sopy_fork_gen;
static EnvObject *sopy_envs;

static void env_list_add(EnvObject *e)
{
    e->prev_env = NULL;
    e->next_env = sopy_envs;
    if (sopy_envs)
        sopy_envs->prev_env = e;
    sopy_envs = e;
}

static void env_list_remove(EnvObject *e)
{
    if (e->prev_env)
        e->prev_env->next_env = e->next_env;
    else if (sopy_envs == e)
        sopy_envs = e->next_env;
    if (e->next_env)
        e->next_env->prev_env = e->prev_env;
    e->prev_env = e->next_env = NULL;
}

static void sopy_after_fork_child(void)
{
    __atomic_add_fetch(&sopy_fork_gen, 1, __ATOMIC_RELAXED);
    for (EnvObject *e = sopy_envs; e; e = e->next_env) {
        e->inflight = 0; /* those calls ran in threads the child does not have */
        for (TxnObject *t = e->txns; t; t = t->next)
            __atomic_store_n(&t->txn, NULL, __ATOMIC_RELAXED);
    }
}

static PyObject *Env_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", "cache_bytes", "nosync", "lock_timeout_ms", NULL};
    PyObject *path, *fspath = NULL;
    long long cache = 0, lock_ms = 0;
    int nosync = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|LpL:Env", kwlist, &path, &cache, &nosync, &lock_ms))
        return NULL;
    if (cache < 0)
        return sopy_raise(SOP_INVALID, "cache_bytes must be >= 0 (0: the default), not %lld", cache);
    if (lock_ms < 0 || lock_ms > UINT32_MAX)
        return sopy_raise(SOP_INVALID, "lock_timeout_ms must be 0..%u (0: 30 s), not %lld",
                          (unsigned)UINT32_MAX, lock_ms);
    if (!PyUnicode_FSConverter(path, &fspath)) {
        if (PyErr_ExceptionMatches(PyExc_ValueError))
            return sopy_reraise_as(SOP_INVALID, "bad database path");
        return NULL;
    }
    EnvObject *self = (EnvObject *)type->tp_alloc(type, 0);
    if (!self) {
        Py_DECREF(fspath);
        return NULL;
    }
    Py_INCREF(path);
    self->path = path;
    sop_env_options opts;
    memset(&opts, 0, sizeof opts); /* fields added later default to 0 */
    opts.cache_bytes = (size_t)cache;
    opts.flags = nosync ? SOP_ENV_NOSYNC : 0u;
    opts.lock_timeout_ms = (uint32_t)lock_ms;
    const char *p = PyBytes_AS_STRING(fspath);
    SopErr err = SOPY_NO_ERR;
    sop_env *env = NULL;
    Py_BEGIN_ALLOW_THREADS
    int rc = sop_env_open(p, &opts, &env);
    if (rc != SOP_OK)
        sopy_capture(&err, rc, NULL);
    Py_END_ALLOW_THREADS
    Py_DECREF(fspath);
    if (err.rc) {
        Py_DECREF(self);
        return sopy_raise_err(&err);
    }
    self->env = env;
    self->fork_gen = __atomic_load_n(&sopy_fork_gen, __ATOMIC_RELAXED);
    env_list_add(self);
    return (PyObject *)self;
}

static void txn_unlink(TxnObject *t);

/* Abort every live transaction of self (used by close). */
static void env_abort_txns(EnvObject *self)
{
    Py_ssize_t n = 0;
    for (TxnObject *t = self->txns; t; t = t->next)
        n++;
    if (!n)
        return;
    PyObject *snap = PyList_New(0);
    if (!snap) {
        PyErr_Clear();
        return;
    }
    for (TxnObject *t = self->txns; t; t = t->next)
        if (PyList_Append(snap, (PyObject *)t) < 0)
            PyErr_Clear();
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(snap); i++) {
        TxnObject *t = (TxnObject *)PyList_GET_ITEM(snap, i);
        SOPY_WITH_TXN(t, if (t->txn) {
            sop_txn_abort(t->txn);
            sopy_txn_set(t, NULL);
        });
        txn_unlink(t);
    }
    Py_DECREF(snap);
}

static PyObject *Env_close(EnvObject *self, PyObject *unused)
{
    (void)unused;
    if (!self->env)
        Py_RETURN_NONE;
    if ((self->inflight > 0 || self->closing) && !sopy_inherited(self->fork_gen))
        return sopy_raise(SOP_MISUSE, "cannot close %R while another thread is using it",
                          self->path);
    self->closing = 1;
    env_abort_txns(self);
    sop_env *env = self->env;
    SopErr err = SOPY_NO_ERR;
    Py_BEGIN_ALLOW_THREADS
    int rc = sop_env_close(env);
    if (rc != SOP_OK)
        sopy_capture(&err, rc, NULL);
    Py_END_ALLOW_THREADS
    self->closing = 0;
    if (err.rc)
        return sopy_raise_err(&err);
    self->env = NULL;
    Py_RETURN_NONE;
}

static void Env_dealloc(EnvObject *self)
{
    env_list_remove(self);
    /* Every Txn holds a reference to its Env, so none is alive here. */
    if (self->env) {
        sop_env *env = self->env;
        self->env = NULL;
        Py_BEGIN_ALLOW_THREADS
        sop_env_close(env);
        Py_END_ALLOW_THREADS
    }
    Py_XDECREF(self->path);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Env_begin(EnvObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"mode", "max_time_ms", NULL};
    int mode = SOP_TXN_WRITE;
    long long max_ms = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|iL:begin", kwlist, &mode, &max_ms))
        return NULL;
    if (mode != SOP_TXN_NOCHECK && mode != SOP_TXN_WRITE && mode != SOP_TXN_READ)
        return sopy_raise(SOP_INVALID, "transaction mode must be 0 (NoCheck), 1 (ForWriting) "
                                       "or 2 (ForReading), not %d",
                          mode);
    if (max_ms < 0)
        return sopy_raise(SOP_INVALID, "max_time_ms must be >= 0, not %lld", max_ms);
    TxnObject *t = PyObject_New(TxnObject, &SopTxn_Type);
    if (!t)
        return NULL;
    t->env = NULL;
    t->txn = NULL;
    t->mode = mode;
    t->fork_gen = self->fork_gen;
    t->prev = t->next = NULL;
    t->lock_ready = pthread_mutex_init(&t->lock, NULL) == 0;
    if (!t->lock_ready) {
        Py_DECREF(t);
        return PyErr_NoMemory();
    }
    if (env_enter(self) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    Py_INCREF(self);
    t->env = self;
    sop_env *env = self->env;
    sop_txn *txn = NULL;
    SopErr err = SOPY_NO_ERR;
    Py_BEGIN_ALLOW_THREADS
    int rc = sop_txn_begin(env, mode, (uint64_t)max_ms, &txn);
    if (rc != SOP_OK)
        sopy_capture(&err, rc, NULL);
    Py_END_ALLOW_THREADS
    env_leave(self);
    if (err.rc) {
        Py_DECREF(t);
        return sopy_raise_err(&err);
    }
    sopy_txn_set(t, txn);
    /* link into the env's list of live transactions */
    t->next = self->txns;
    if (self->txns)
        self->txns->prev = t;
    self->txns = t;
    return (PyObject *)t;
}

static PyObject *Env_remove_store(EnvObject *self, PyObject *arg)
{
    if (!PyUnicode_Check(arg))
        return sopy_raise(SOP_BAD_NAME, "store names are str, not %.100s", Py_TYPE(arg)->tp_name);
    Py_ssize_t n;
    const char *name = PyUnicode_AsUTF8AndSize(arg, &n);
    if (!name)
        return sopy_reraise_as(SOP_BAD_NAME, "store name is not valid Unicode");
    if ((size_t)n != strlen(name))
        return sopy_raise(SOP_BAD_NAME, "store name %R contains a NUL character", arg);
    if (env_enter(self) < 0)
        return NULL;
    sop_env *env = self->env;
    SopErr err = SOPY_NO_ERR;
    Py_BEGIN_ALLOW_THREADS
    int rc = sop_env_remove_store(env, name);
    if (rc != SOP_OK)
        sopy_capture(&err, rc, NULL);
    Py_END_ALLOW_THREADS
    env_leave(self);
    if (err.rc)
        return sopy_raise_err(&err);
    Py_RETURN_NONE;
}

static PyObject *Env_list_stores(EnvObject *self, PyObject *unused)
{
    (void)unused;
    if (env_enter(self) < 0)
        return NULL;
    sop_env *env = self->env;
    char **names = NULL;
    size_t count = 0;
    SopErr err = SOPY_NO_ERR;
    Py_BEGIN_ALLOW_THREADS
    int rc = sop_env_list_stores(env, &names, &count);
    if (rc != SOP_OK)
        sopy_capture(&err, rc, NULL);
    Py_END_ALLOW_THREADS
    env_leave(self);
    if (err.rc)
        return sopy_raise_err(&err);
    PyObject *list = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; list && i < count; i++) {
        PyObject *s = PyUnicode_DecodeUTF8(names[i], (Py_ssize_t)strlen(names[i]), "replace");
        if (!s) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    sop_free(names);
    return list;
}

static PyObject *Env_check(EnvObject *self, PyObject *unused)
{
    (void)unused;
    if (env_enter(self) < 0)
        return NULL;
    sop_env *env = self->env;
    char *report = NULL;
    SopErr err = SOPY_NO_ERR;
    Py_BEGIN_ALLOW_THREADS
    int rc = sop_env_check(env, &report);
    if (rc != SOP_OK)
        sopy_capture(&err, rc, NULL);
    Py_END_ALLOW_THREADS
    env_leave(self);
    if (!err.rc) {
        sop_free(report);
        Py_RETURN_NONE;
    }
    if (report && *report) {
        /* the report may be long: raise it whole rather than the capped msg */
        PyObject *msg = PyUnicode_FromFormat("%s: %s", sop_strerror(err.rc), "");
        PyObject *rep = PyUnicode_DecodeUTF8(report, (Py_ssize_t)strlen(report), "replace");
        sop_free(report);
        if (!msg || !rep) {
            Py_XDECREF(msg);
            Py_XDECREF(rep);
            return NULL;
        }
        PyObject *full = PyUnicode_Concat(msg, rep);
        Py_DECREF(msg);
        Py_DECREF(rep);
        if (!full)
            return NULL;
        raise_msg(err.rc, full);
        Py_DECREF(full);
        return NULL;
    }
    sop_free(report);
    return sopy_raise_err(&err);
}

static PyObject *Env_stat(EnvObject *self, PyObject *unused)
{
    (void)unused;
    if (env_enter(self) < 0)
        return NULL;
    sop_env *env = self->env;
    sop_env_stats st;
    memset(&st, 0, sizeof st);
    SopErr err = SOPY_NO_ERR;
    Py_BEGIN_ALLOW_THREADS
    int rc = sop_env_stat(env, &st);
    if (rc != SOP_OK)
        sopy_capture(&err, rc, NULL);
    Py_END_ALLOW_THREADS
    env_leave(self);
    if (err.rc)
        return sopy_raise_err(&err);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "commit_seq",
                         (unsigned long long)st.commit_seq, "log_bytes",
                         (unsigned long long)st.log_bytes, "live_bytes",
                         (unsigned long long)st.live_bytes, "cache_bytes",
                         (unsigned long long)st.cache_bytes, "node_reads",
                         (unsigned long long)st.node_reads, "value_reads",
                         (unsigned long long)st.value_reads, "stores",
                         (unsigned long long)st.stores, "spilled_bytes",
                         (unsigned long long)st.spilled_bytes);
}

static PyObject *Env_get_closed(EnvObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(self->env == NULL);
}

static PyObject *Env_get_path(EnvObject *self, void *c)
{
    (void)c;
    Py_INCREF(self->path);
    return self->path;
}

static PyObject *Env_repr(EnvObject *self)
{
    return PyUnicode_FromFormat("<sop._sop.Env %R%s>", self->path, self->env ? "" : " closed");
}

static PyMethodDef Env_methods[] = {
    {"begin", (PyCFunction)(void (*)(void))Env_begin, METH_VARARGS | METH_KEYWORDS,
     "begin(mode=1, max_time_ms=0) -> Txn\n\nStart a transaction (0 NoCheck, 1 ForWriting, "
     "2 ForReading); max_time_ms 0 means 15 minutes."},
    {"remove_store", (PyCFunction)Env_remove_store, METH_O,
     "remove_store(name)\n\nRemove a store and all its data in its own transaction."},
    {"list_stores", (PyCFunction)Env_list_stores, METH_NOARGS,
     "list_stores() -> list[str]\n\nNames of all stores, sorted."},
    {"check", (PyCFunction)Env_check, METH_NOARGS,
     "check()\n\nIntegrity check; raises CorruptionError with the report."},
    {"stat", (PyCFunction)Env_stat, METH_NOARGS, "stat() -> dict\n\nEngine statistics."},
    {"close", (PyCFunction)Env_close, METH_NOARGS,
     "close()\n\nAbort open transactions and close the database (idempotent)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Env_getset[] = {
    {"closed", (getter)Env_get_closed, NULL, "True once close() has run.", NULL},
    {"path", (getter)Env_get_path, NULL, "The folder given to the constructor.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject SopEnv_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sop._sop.Env",
    .tp_basicsize = sizeof(EnvObject),
    .tp_dealloc = (destructor)Env_dealloc,
    .tp_repr = (reprfunc)Env_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Env(path, cache_bytes=0, nosync=False)\n\nAn open database folder (sop_env).",
    .tp_methods = Env_methods,
    .tp_getset = Env_getset,
    .tp_new = Env_new,
};

/* ======================================================================
 * Txn
 * ==================================================================== */

static void txn_unlink(TxnObject *t)
{
    EnvObject *env = t->env;
    if (!env)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else if (env->txns == t)
        env->txns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void Txn_dealloc(TxnObject *self)
{
    /* Nothing else references us, so no other thread holds the lock. */
    if (self->txn) {
        sop_txn_abort(self->txn);
        sopy_txn_set(self, NULL);
    }
    txn_unlink(self);
    if (self->lock_ready && !sopy_inherited(self->fork_gen))
        pthread_mutex_destroy(&self->lock); /* (a parent thread may hold an inherited one) */
    Py_XDECREF(self->env);
    PyObject_Free(self);
}

static PyObject *Txn_commit(TxnObject *self, PyObject *unused)
{
    (void)unused;
    SopErr err = SOPY_NO_ERR;
    int ended = 0;
    SOPY_WITH_TXN(self, if (!self->txn) ended = 1; else {
        int rc = sop_txn_commit(self->txn); /* always consumes the txn */
        sopy_txn_set(self, NULL);
        if (rc != SOP_OK)
            sopy_capture(&err, rc, NULL);
    });
    txn_unlink(self);
    if (ended)
        return sopy_raise_ended(self);
    if (err.rc)
        return sopy_raise_err(&err);
    Py_RETURN_NONE;
}

static PyObject *Txn_rollback(TxnObject *self, PyObject *unused)
{
    (void)unused;
    SOPY_WITH_TXN(self, if (self->txn) {
        sop_txn_abort(self->txn);
        sopy_txn_set(self, NULL);
    });
    txn_unlink(self);
    Py_RETURN_NONE;
}

/* Store creation options parsed from a dict, with strings copied out. */
typedef struct CreateOpts {
    sop_store_options o;
    Arena a;
    Span desc, spec, meta;
} CreateOpts;

static int opt_bytes(PyObject *v, Arena *a, Span *s, const char *what)
{
    if (v == Py_None) {
        s->len = SPAN_NONE;
        return 0;
    }
    if (PyUnicode_Check(v)) {
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(v, &n);
        if (!p) {
            sopy_reraise_as(SOP_INVALID, what);
            return -1;
        }
        if (span_put(a, s, p, (size_t)n) < 0 || arena_put(a, "", 1, &(size_t){0}) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        return 0;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(v, &view, PyBUF_SIMPLE) < 0) {
        sopy_reraise_as(SOP_INVALID, what);
        return -1;
    }
    int rc = span_put(a, s, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (rc < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int opt_int(PyObject *v, long lo, long hi, long *out, const char *key)
{
    long x = PyLong_AsLong(v);
    if (x == -1 && PyErr_Occurred()) {
        sopy_reraise_as(SOP_INVALID, key);
        return -1;
    }
    if (x < lo || x > hi) {
        sopy_raise(SOP_INVALID, "store option %s=%ld is outside %ld..%ld", key, x, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_create(PyObject *d, CreateOpts *c)
{
    memset(&c->o, 0, sizeof c->o);
    arena_init(&c->a);
    c->desc.len = c->spec.len = c->meta.len = SPAN_NONE;
    c->o.is_primitive_key = 1;
    if (!PyDict_Check(d)) {
        sopy_raise(SOP_INVALID, "store options must be a dict, not %.100s", Py_TYPE(d)->tp_name);
        return -1;
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &k, &v)) {
        const char *key = PyUnicode_Check(k) ? PyUnicode_AsUTF8(k) : NULL;
        long x;
        if (!key) {
            PyErr_Clear();
            sopy_raise(SOP_INVALID, "store option names are str, not %R", k);
            return -1;
        }
        if (strcmp(key, "slot_length") == 0) {
            if (opt_int(v, 0, 20000, &x, key) < 0)
                return -1;
            c->o.slot_length = (uint32_t)x;
        } else if (strcmp(key, "value_placement") == 0) {
            if (opt_int(v, SOP_VALUE_SMALL, SOP_VALUE_BIG, &x, key) < 0)
                return -1;
            c->o.value_placement = (int)x;
        } else if (strcmp(key, "is_unique") == 0 || strcmp(key, "leaf_load_balancing") == 0 ||
                   strcmp(key, "is_primitive_key") == 0) {
            int b = PyObject_IsTrue(v);
            if (b < 0)
                return -1;
            if (key[3] == 'u')
                c->o.is_unique = b;
            else if (key[0] == 'l')
                c->o.leaf_load_balancing = b;
            else
                c->o.is_primitive_key = b;
        } else if (strcmp(key, "description") == 0) {
            if (v != Py_None && !PyUnicode_Check(v)) {
                sopy_raise(SOP_INVALID, "description must be str");
                return -1;
            }
            if (opt_bytes(v, &c->a, &c->desc, "description") < 0)
                return -1;
        } else if (strcmp(key, "index_spec") == 0) {
            if (opt_bytes(v, &c->a, &c->spec, "index_spec must be str or bytes") < 0)
                return -1;
        } else if (strcmp(key, "metadata") == 0) {
            if (opt_bytes(v, &c->a, &c->meta, "metadata must be str or bytes") < 0)
                return -1;
        } else {
            sopy_raise(SOP_INVALID, "unknown store option %R", k);
            return -1;
        }
    }
    /* resolve pointers now that the arena no longer moves */
    c->o.description = c->desc.len == SPAN_NONE ? NULL : (const char *)c->a.data + c->desc.off;
    c->o.index_spec = span_val(&c->a, c->spec);
    c->o.metadata = span_val(&c->a, c->meta);
    return 0;
}

static PyObject *Txn_open_store(TxnObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"name", "create", "cls", NULL};
    PyObject *name, *create = Py_None, *cls = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:open_store", kwlist, &name, &create, &cls))
        return NULL;
    PyTypeObject *type = &SopStore_Type;
    if (cls != Py_None) {
        if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &SopStore_Type)) {
            PyErr_SetString(PyExc_TypeError, "cls must be a subclass of sop._sop.Store");
            return NULL;
        }
        type = (PyTypeObject *)cls;
    }
    if (!PyUnicode_Check(name))
        return sopy_raise(SOP_BAD_NAME, "store names are str, not %.100s",
                          Py_TYPE(name)->tp_name);
    Py_ssize_t nlen;
    const char *cname = PyUnicode_AsUTF8AndSize(name, &nlen);
    if (!cname)
        return sopy_reraise_as(SOP_BAD_NAME, "store name is not valid Unicode");
    if ((size_t)nlen != strlen(cname))
        return sopy_raise(SOP_BAD_NAME, "store name %R contains a NUL character", name);

    CreateOpts c;
    int creating = create != Py_None;
    if (creating) {
        if (parse_create(create, &c) < 0) {
            arena_free(&c.a);
            return NULL;
        }
    } else {
        arena_init(&c.a);
    }
    StoreObject *st = (StoreObject *)type->tp_alloc(type, 0);
    if (!st) {
        arena_free(&c.a);
        return NULL;
    }
    arena_init(&st->cache);
    sop_store *store = NULL;
    sop_cursor *cur = NULL;
    sop_store_info info;
    memset(&info, 0, sizeof info);
    SopErr err = SOPY_NO_ERR;
    Arena sa; /* a copy of the store's index spec */
    Span sspec = {0, SPAN_NONE};
    arena_init(&sa);
    SOPY_WITH_TXN(self, if (!self->txn) sopy_capture_ended(self, &err);
                  else {
                      int rc = sop_store_open(self->txn, cname, creating ? &c.o : NULL, &store);
                      if (rc == SOP_OK)
                          rc = sop_cursor_open(store, &cur);
                      if (rc == SOP_OK)
                          rc = sop_store_get_info(store, &info);
                      if (rc != SOP_OK)
                          sopy_capture(&err, rc, self->txn);
                      else if (span_put(&sa, &sspec, info.options.index_spec.data,
                                        info.options.index_spec.size) < 0)
                          sopy_capture_msg(&err, SOP_NOMEM, "copying the index spec");
                  });
    arena_free(&c.a);
    if (err.rc) {
        arena_free(&sa);
        Py_DECREF(st);
        return sopy_raise_err(&err);
    }
    Py_INCREF(self);
    st->txn = self;
    st->store = store;
    st->cur = cur;
    Py_INCREF(name);
    st->name = name;
    st->is_primitive_key = info.options.is_primitive_key != 0;
    st->is_unique = info.options.is_unique != 0;
    st->inline_values = info.options.value_placement == SOP_VALUE_SMALL;
    Py_INCREF(Py_None);
    st->key_codec = Py_None;
    Py_INCREF(Py_None);
    st->key_decoder = Py_None;
    sop_val spec = span_val(&sa, sspec);
    int src = sopy_store_set_spec(st, spec.data, spec.size);
    arena_free(&sa);
    if (src < 0) {
        Py_DECREF(st);
        return NULL;
    }
    return (PyObject *)st;
}

static PyObject *Txn_get_mode(TxnObject *self, void *c)
{
    (void)c;
    return PyLong_FromLong(self->mode);
}

static PyObject *Txn_get_ended(TxnObject *self, void *c)
{
    (void)c;
    /* a plain read: a stale answer is harmless (every call re-checks under
     * the lock) */
    return PyBool_FromLong(sopy_txn_peek(self) == NULL);
}

static PyObject *Txn_get_env(TxnObject *self, void *c)
{
    (void)c;
    Py_INCREF(self->env);
    return (PyObject *)self->env;
}

static PyMethodDef Txn_methods[] = {
    {"commit", (PyCFunction)Txn_commit, METH_NOARGS,
     "commit()\n\nCommit; the transaction ends whether or not it succeeds (ConflictError: "
     "nothing was written, retry)."},
    {"rollback", (PyCFunction)Txn_rollback, METH_NOARGS,
     "rollback()\n\nAbort; a no-op once the transaction has ended."},
    {"open_store", (PyCFunction)(void (*)(void))Txn_open_store, METH_VARARGS | METH_KEYWORDS,
     "open_store(name, create=None, cls=None) -> Store\n\ncreate None opens an existing store; "
     "a dict of options creates it (or opens it if compatible)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Txn_getset[] = {
    {"mode", (getter)Txn_get_mode, NULL, "0 NoCheck, 1 ForWriting, 2 ForReading.", NULL},
    {"ended", (getter)Txn_get_ended, NULL, "True once committed or rolled back.", NULL},
    {"env", (getter)Txn_get_env, NULL, "The Env this transaction runs on.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject SopTxn_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sop._sop.Txn",
    .tp_basicsize = sizeof(TxnObject),
    .tp_dealloc = (destructor)Txn_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A transaction (sop_txn); created by Env.begin().",
    .tp_methods = Txn_methods,
    .tp_getset = Txn_getset,
};

/* ======================================================================
 * Module
 * ==================================================================== */

static PyObject *mod_register(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "_register takes keyword arguments only");
        return NULL;
    }
    PyObject *item = kw ? PyDict_GetItemString(kw, "Item") : NULL;
    PyObject *context = kw ? PyDict_GetItemString(kw, "Context") : NULL;
    if ((item && !PyType_Check(item)) || (context && !PyType_Check(context))) {
        PyErr_SetString(PyExc_TypeError, "Item and Context must be classes");
        return NULL;
    }
    /* Remember the classes' version tags: changing a class (e.g. patching
     * its __init__ or error()) changes its tag and turns the fast paths
     * off. */
    if (item) {
        if (sopy_item_register(item) < 0)
            return NULL;
    }
    if (context) {
        context_version = sopy_type_version(context, str_error);
        context_slot = sopy_own_slot((PyTypeObject *)context, str_cancelled);
        Py_INCREF(context);
        Py_XSETREF(sopy_Context, context);
    }
    Py_RETURN_NONE;
}

static PyObject *mod_raise_error(PyObject *mod, PyObject *args)
{
    int code;
    const char *detail;
    (void)mod;
    if (!PyArg_ParseTuple(args, "is:raise_error", &code, &detail))
        return NULL;
    return sopy_raise(code, "%s", detail);
}

static PyMethodDef module_methods[] = {
    {"_register", (PyCFunction)(void (*)(void))mod_register, METH_VARARGS | METH_KEYWORDS,
     "_register(Item=cls, Context=cls): tell the extension which Python classes to build "
     "and check."},
    {"encode_key", (PyCFunction)(void (*)(void))sopy_py_encode_key, METH_VARARGS | METH_KEYWORDS,
     "encode_key(fields, descending=None) -> bytes: order-preserving key of primitive fields."},
    {"decode_key", (PyCFunction)sopy_py_decode_key, METH_O,
     "decode_key(data) -> list: the fields of an encoded key."},
    {"encode_value", (PyCFunction)sopy_py_encode_value, METH_O,
     "encode_value(obj) -> bytes: a sopdoc document."},
    {"decode_value", (PyCFunction)sopy_py_decode_value, METH_O,
     "decode_value(data) -> object: decode a sopdoc document."},
    {"raise_error", (PyCFunction)mod_raise_error, METH_VARARGS,
     "raise_error(code, detail): raise the exception class of an error code."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef sop_module = {
    PyModuleDef_HEAD_INIT, "sop._sop",
    "Native binding of libsop (transactional B-tree object store).  Use the sop package.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

static int add_int(PyObject *m, const char *name, long v)
{
    return PyModule_AddIntConstant(m, name, v);
}

static int add_obj(PyObject *m, const char *name, PyObject *o)
{
    /* PyModule_AddObject steals on success only */
    Py_INCREF(o);
    if (PyModule_AddObject(m, name, o) < 0) {
        Py_DECREF(o);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__sop(void)
{
    if (PyType_Ready(&SopEnv_Type) < 0 || PyType_Ready(&SopTxn_Type) < 0 ||
        PyType_Ready(&SopStore_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&sop_module);
    if (!m)
        return NULL;
    static int atfork_done;
    if (!atfork_done && pthread_atfork(NULL, NULL, sopy_after_fork_child) == 0)
        atfork_done = 1;
    PyObject *classes = PyDict_New();
    if (!classes || make_exceptions(m, classes) < 0 || add_obj(m, "ERROR_CLASSES", classes) < 0)
        goto fail;
    Py_CLEAR(classes);

    sopy_str_key = PyUnicode_InternFromString("key");
    sopy_str_value = PyUnicode_InternFromString("value");
    sopy_str_id = PyUnicode_InternFromString("id");
    str_error = PyUnicode_InternFromString("error");
    str_cancelled = PyUnicode_InternFromString("_cancelled");
    sopy_str_init = PyUnicode_InternFromString("__init__");
    if (!sopy_str_key || !sopy_str_value || !sopy_str_id || !str_error || !str_cancelled ||
        !sopy_str_init)
        goto fail;

    PyObject *uuid = PyImport_ImportModule("uuid");
    if (!uuid)
        goto fail;
    sopy_UUID = PyObject_GetAttrString(uuid, "UUID");
    Py_DECREF(uuid);
    PyObject *dc = PyImport_ImportModule("dataclasses");
    if (!dc)
        goto fail;
    sopy_dc_fields = PyObject_GetAttrString(dc, "fields");
    Py_DECREF(dc);
    if (!sopy_UUID || !sopy_dc_fields)
        goto fail;

    if (add_obj(m, "Env", (PyObject *)&SopEnv_Type) < 0 ||
        add_obj(m, "Txn", (PyObject *)&SopTxn_Type) < 0 ||
        add_obj(m, "Store", (PyObject *)&SopStore_Type) < 0 ||
        PyModule_AddStringConstant(m, "__version__", SOP_VERSION_STRING) < 0 ||
        add_int(m, "TXN_NOCHECK", SOP_TXN_NOCHECK) < 0 ||
        add_int(m, "TXN_WRITE", SOP_TXN_WRITE) < 0 || add_int(m, "TXN_READ", SOP_TXN_READ) < 0 ||
        add_int(m, "VALUE_SMALL", SOP_VALUE_SMALL) < 0 ||
        add_int(m, "VALUE_MEDIUM", SOP_VALUE_MEDIUM) < 0 ||
        add_int(m, "VALUE_BIG", SOP_VALUE_BIG) < 0 || add_int(m, "FORWARD", SOP_FORWARD) < 0 ||
        add_int(m, "BACKWARD", SOP_BACKWARD) < 0 || add_int(m, "MAX_KEY", SOP_MAX_KEY) < 0 ||
        add_int(m, "MAX_KEY_DOC", (long)SOP_MAX_KEY_DOC) < 0 ||
        add_int(m, "MAX_VALUE", (long)SOP_MAX_VALUE) < 0 ||
        add_int(m, "MAX_STORE_NAME", SOP_MAX_STORE_NAME) < 0)
        goto fail;
    return m;
fail:
    Py_XDECREF(classes);
    Py_DECREF(m);
    return NULL;
}
