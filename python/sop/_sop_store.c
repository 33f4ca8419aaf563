/*
 * _sop_store.c - the Store type of sop._sop: one B-tree opened in a
 * transaction, with one cursor, offering the Btree API of the original sop
 * package (python-api.md section 8) plus get_current_item and
 * update_current_value from the cookbook.  sop.btree.Btree subclasses it.
 *
 * Every method: parse and encode its arguments with the GIL (into an Arena),
 * then run the engine calls with the GIL released and the txn mutex held,
 * copying borrowed results out (FetchBuf) and capturing error details, then
 * build the Python results.  "Not found" / "already exists" outcomes return
 * False like the original; other failures raise the class of the error code.
 *
 * Keys: a primitive-key store encodes str/int/float/bool/bytes/None keys
 * itself.  A complex-key store (is_primitive_key False) takes dict or
 * dataclass keys: the key becomes a sopdoc map (the key document, stored
 * with the item and decoded back to a dict for results) and its order key
 * is built by sop_key_from_doc() with the store's index spec, read from the
 * engine when the store is opened.  Writes need every indexed field; find
 * and get_values also take the leading fields only (a prefix: they land on
 * the first item whose key starts with it).  When the Python attribute
 * _key_codec is set (a callable key -> (key_bytes, key_doc_bytes|None)), it
 * encodes every key instead; _key_decoder (key_bytes, key_doc|None) -> key
 * decodes them.
 */
#include "_sop_int.h"

#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

/* Early check (GIL held, no lock): a stale "alive" is harmless because
 * every engine call re-checks under the txn mutex. */
static int store_alive(StoreObject *self)
{
    if (!self->txn || !sopy_txn_peek(self->txn)) {
        if (self->txn)
            sopy_raise_ended(self->txn);
        else
            sopy_raise(SOP_TXN_ENDED, SOPY_ENDED_MSG);
        return -1;
    }
    return 0;
}

/* ---- the item a find landed on (read-only transactions) ----------------- */

/* Items bigger than this are not kept (get_current_item copies them again). */
#define CACHE_MAX_BYTES 16384

/* Note a cursor move (txn mutex held); returns the new count. */
static unsigned long cursor_moved(StoreObject *self)
{
    /* one writer at a time (the mutex), so no read-modify-write needed */
    unsigned long m = __atomic_load_n(&self->moves, __ATOMIC_RELAXED) + 1;
    __atomic_store_n(&self->moves, m, __ATOMIC_RELEASE);
    return m;
}

/* Copy the cursor's item into (a, r) (txn mutex held).  1 copied, 0 not
 * (no memory, an error, or too big to be worth keeping). */
static int copy_current(sop_cursor *cur, Arena *a, FetchRec *r)
{
    sop_val k, kd, v;
    sop_id id;
    if (sop_cursor_get(cur, &k, &kd, &v, &id) != SOP_OK ||
        k.size + kd.size + v.size > CACHE_MAX_BYTES)
        return 0;
    return fetchrec_put(a, r, &k, &kd, &v, &id) == 0;
}

/* Keep (a, r), copied at cursor move count moves, as the current item
 * (GIL held).  key: the str the find was given, reused as the item's key. */
static void cache_set(StoreObject *self, const Arena *a, const FetchRec *r, unsigned long moves,
                      PyObject *key)
{
    size_t off;
    self->cached = 0;
    Py_CLEAR(self->cache_key);
    self->cache.size = 0;
    if (arena_put(&self->cache, a->data, a->size, &off) < 0)
        return; /* no memory: get_current_item asks the engine */
    self->cache_rec = *r; /* its spans are offsets, the same in the copy */
    self->cache_moves = moves;
    self->cached = 1;
    if (key && (r->key_doc.len == SPAN_NONE || r->key_doc.len == 0) && self->is_primitive_key &&
        (!self->key_codec || self->key_codec == Py_None) &&
        (!self->key_decoder || self->key_decoder == Py_None)) {
        Py_INCREF(key);
        self->cache_key = key;
    }
}

static void cache_clear(StoreObject *self)
{
    self->cached = 0;
    Py_CLEAR(self->cache_key);
    arena_free(&self->cache);
}

/* Arguments of a METH_FASTCALL | METH_KEYWORDS method: out[0..nparams) get
 * the positional arguments, then the keyword ones by name (names[i] is the
 * name of parameter i).  The first nreq parameters are required; the others
 * stay NULL when not given.  0 / -1 with TypeError set (the messages follow
 * PyArg_ParseTupleAndKeywords). */
static int parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, const char *const *names, Py_ssize_t nparams,
                      Py_ssize_t nreq, PyObject **out)
{
    if (nargs > nparams) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd argument%s (%zd given)", fname,
                     nparams, nparams == 1 ? "" : "s", nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nparams; i++)
        out[i] = i < nargs ? args[i] : NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t j = 0; j < nkw; j++) {
        PyObject *kn = PyTuple_GET_ITEM(kwnames, j);
        const char *name = PyUnicode_AsUTF8(kn);
        if (!name)
            return -1;
        Py_ssize_t i = 0;
        while (i < nparams && strcmp(names[i], name) != 0)
            i++;
        if (i == nparams) {
            PyErr_Format(PyExc_TypeError, "'%U' is an invalid keyword argument for %s()", kn,
                         fname);
            return -1;
        }
        if (out[i]) {
            PyErr_Format(PyExc_TypeError,
                         "argument for %s() given by name ('%s') and position (%zd)", fname,
                         name, i + 1);
            return -1;
        }
        out[i] = args[nargs + j];
    }
    for (Py_ssize_t i = 0; i < nreq; i++) {
        if (!out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %zd)", fname,
                         names[i], i + 1);
            return -1;
        }
    }
    return 0;
}

/* The usual calls give the required arguments by position only. */
#define PARSE_ARGS(fname, names, nreq, out)                                                    \
    (((nargs) == (nreq) && !(kwnames))                                                         \
         ? (memcpy((out), (args), (size_t)(nreq) * sizeof(PyObject *)), 0)                     \
         : parse_args((fname), (args), (nargs), (kwnames), (names),                            \
                      (Py_ssize_t)(sizeof(names) / sizeof(names)[0]), (nreq), (out)))

/* ---- complex keys --------------------------------------------------------- */

int sopy_store_set_spec(StoreObject *st, const void *spec, size_t n)
{
    Py_CLEAR(st->index_spec);
    Py_CLEAR(st->spec_names);
    st->nspec = 0;
    st->index_spec = PyBytes_FromStringAndSize(n ? (const char *)spec : "", (Py_ssize_t)n);
    if (!st->index_spec)
        return -1;
    if (st->is_primitive_key)
        return 0;
    size_t nf = 0;
    if (sop_index_spec_check(spec, n, &nf) != SOP_OK) {
        st->nspec = -1; /* reported when a key is encoded */
        return 0;
    }
    st->nspec = (Py_ssize_t)nf;
    if (nf == 0)
        return 0;
    /* [[name, ascending], ...] -> (name, ...) */
    PyObject *pairs = sopy_decode_value(spec, n);
    if (!pairs)
        return -1;
    PyObject *names = PyTuple_New((Py_ssize_t)nf);
    for (Py_ssize_t i = 0; names && i < (Py_ssize_t)nf; i++) {
        PyObject *nm = PyList_GET_ITEM(PyList_GET_ITEM(pairs, i), 0);
        Py_INCREF(nm);
        PyTuple_SET_ITEM(names, i, nm);
    }
    Py_DECREF(pairs);
    st->spec_names = names;
    return names ? 0 : -1;
}

/* How a key is used: a write needs every indexed field; a lookup may give
 * the leading fields only (a prefix). */
enum { KEY_FULL, KEY_LOOKUP };

/* Encode a dict/dataclass key with the store's index spec: kb gets the
 * order key, doc the key document.  *partial: 1 when only leading fields
 * were given (KEY_LOOKUP).  0 / -1 with an exception. */
static int encode_complex_key(StoreObject *self, PyObject *key, int mode, sop_keybuf *kb,
                              sop_docbuf *doc, int *partial)
{
    *partial = 0;
    if (self->nspec < 0) {
        sopy_raise(SOP_INVALID,
                   "store %R has an index specification this version cannot read, so its "
                   "keys cannot be encoded",
                   self->name);
        return -1;
    }
    if (sopy_encode_key_doc(key, doc) < 0)
        return -1;
    sop_val spec = {(size_t)PyBytes_GET_SIZE(self->index_spec),
                    PyBytes_AS_STRING(self->index_spec)};
    size_t used = 0;
    int rc = sop_key_from_doc(&spec, doc->data, doc->size, kb, &used);
    if (rc != SOP_OK) {
        SopErr err = SOPY_NO_ERR;
        sopy_capture(&err, rc, NULL);
        sopy_raise_err(&err);
        return -1;
    }
    if (self->nspec == 0) {
        if (used == 0) {
            sopy_raise(SOP_BAD_KEY, "a key needs at least one field");
            return -1;
        }
        return 0;
    }
    if ((Py_ssize_t)used == self->nspec)
        return 0;
    PyObject *missing = PyTuple_GET_ITEM(self->spec_names, (Py_ssize_t)used);
    if (mode == KEY_FULL) {
        sopy_raise(SOP_BAD_KEY, "the key has no field %R (indexed fields: %R)", missing,
                   self->spec_names);
        return -1;
    }
    if (used == 0) {
        sopy_raise(SOP_BAD_KEY,
                   "a lookup key needs the leading indexed field %R (indexed fields: %R)",
                   missing, self->spec_names);
        return -1;
    }
    for (Py_ssize_t i = (Py_ssize_t)used + 1; i < self->nspec; i++) {
        PyObject *later = PyTuple_GET_ITEM(self->spec_names, i);
        if (sopy_key_has_field(key, later)) {
            sopy_raise(SOP_BAD_KEY,
                       "the lookup key gives field %R but not %R, which comes before it in "
                       "the index (indexed fields: %R)",
                       later, missing, self->spec_names);
            return -1;
        }
    }
    *partial = 1;
    return 0;
}

/* Encode one key of this store into a (key, key_doc) pair of spans.
 * partial (may be NULL for KEY_FULL): set to 1 for a prefix lookup key. */
static int encode_key_mode(StoreObject *self, PyObject *key, Arena *a, Span *k, Span *kd,
                           int mode, int *partial)
{
    kd->off = 0;
    kd->len = SPAN_NONE;
    if (partial)
        *partial = 0;
    if (self->key_codec && self->key_codec != Py_None) {
        PyObject *res = PyObject_CallFunctionObjArgs(self->key_codec, key, NULL);
        if (!res)
            return -1;
        if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2) {
            Py_DECREF(res);
            sopy_raise(SOP_BAD_KEY, "the key codec must return (key_bytes, key_doc_bytes|None)");
            return -1;
        }
        Py_buffer kv, dv;
        int rc = -1;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(res, 0), &kv, PyBUF_SIMPLE) < 0) {
            sopy_reraise_as(SOP_BAD_KEY, "the key codec returned no bytes");
            Py_DECREF(res);
            return -1;
        }
        PyObject *doc = PyTuple_GET_ITEM(res, 1);
        if (kv.len == 0) {
            sopy_raise(SOP_BAD_KEY, "the key codec returned an empty key");
        } else if ((size_t)kv.len > SOP_MAX_KEY) {
            sopy_raise(SOP_KEY_TOO_LARGE, "the encoded key is %zd bytes (the limit is %d)",
                       kv.len, SOP_MAX_KEY);
        } else if (span_put(a, k, kv.buf, (size_t)kv.len) < 0) {
            PyErr_NoMemory();
        } else if (doc == Py_None) {
            rc = 0;
        } else if (PyObject_GetBuffer(doc, &dv, PyBUF_SIMPLE) < 0) {
            sopy_reraise_as(SOP_BAD_KEY, "the key codec returned a key document that is not bytes");
        } else {
            if ((size_t)dv.len > SOP_MAX_KEY_DOC)
                sopy_raise(SOP_KEY_TOO_LARGE, "the key document is %zd bytes (the limit is %u)",
                           dv.len, (unsigned)SOP_MAX_KEY_DOC);
            else if (span_put(a, kd, dv.buf, (size_t)dv.len) < 0)
                PyErr_NoMemory();
            else
                rc = 0;
            PyBuffer_Release(&dv);
        }
        PyBuffer_Release(&kv);
        Py_DECREF(res);
        return rc;
    }
    sop_keybuf kb;
    sop_docbuf doc;
    sop_key_init(&kb);
    sop_doc_init(&doc);
    int rc, part = 0;
    if (!self->is_primitive_key) {
        rc = encode_complex_key(self, key, mode, &kb, &doc, &part);
        if (partial)
            *partial = part;
    } else {
        rc = sopy_encode_primitive_key(key, &kb, &doc);
    }
    if (rc == 0) {
        /* Always give a key document (empty unless the key is an integral
         * float), so update/upsert replace the stored key like the original
         * ("the key object is replaced too"). */
        if (span_put(a, k, kb.data, kb.size) < 0 || span_put(a, kd, doc.data, doc.size) < 0) {
            PyErr_NoMemory();
            rc = -1;
        }
    }
    sop_key_free(&kb);
    sop_doc_free(&doc);
    return rc;
}

static int encode_key(StoreObject *self, PyObject *key, Arena *a, Span *k, Span *kd)
{
    return encode_key_mode(self, key, a, k, kd, KEY_FULL, NULL);
}

/* After a miss of a prefix key: is the cursor on an item whose key starts
 * with it?  (No GIL; under the txn mutex.) */
static int cursor_has_prefix(sop_cursor *cur, const sop_val *prefix)
{
    sop_val k;
    if (!sop_cursor_is_positioned(cur) || sop_cursor_get(cur, &k, NULL, NULL, NULL) != SOP_OK)
        return 0;
    return k.size >= prefix->size && memcmp(k.data, prefix->data, prefix->size) == 0;
}

static int encode_value(PyObject *v, Arena *a, Span *s)
{
    sop_docbuf d;
    sop_doc_init(&d);
    int rc = sopy_encode_value(v, &d);
    if (rc == 0 && span_put(a, s, d.data, d.size) < 0) {
        PyErr_NoMemory();
        rc = -1;
    }
    sop_doc_free(&d);
    return rc;
}

static PyObject *decode_key(StoreObject *self, const Arena *a, Span k, Span kd)
{
    int has_doc = kd.len != SPAN_NONE && kd.len > 0;
    if (self->key_decoder && self->key_decoder != Py_None) {
        PyObject *kb = PyBytes_FromStringAndSize((const char *)a->data + k.off, (Py_ssize_t)k.len);
        PyObject *db = has_doc ? PyBytes_FromStringAndSize((const char *)a->data + kd.off,
                                                           (Py_ssize_t)kd.len)
                               : (Py_INCREF(Py_None), Py_None);
        PyObject *res = NULL;
        if (kb && db)
            res = PyObject_CallFunctionObjArgs(self->key_decoder, kb, db, NULL);
        Py_XDECREF(kb);
        Py_XDECREF(db);
        return res;
    }
    if (has_doc)
        return sopy_decode_value(a->data + kd.off, kd.len);
    return sopy_decode_key(a->data + k.off, k.len);
}

/* An Item from a copied record; key: the decoded key if already known
 * (borrowed), else NULL. */
static PyObject *rec_to_item_key(StoreObject *self, const Arena *a, const FetchRec *r,
                                 int with_value, PyObject *known_key)
{
    PyObject *key = known_key ? (Py_INCREF(known_key), known_key)
                              : decode_key(self, a, r->key, r->key_doc);
    if (!key)
        return NULL;
    PyObject *value;
    if (with_value && r->value.len != SPAN_NONE)
        value = sopy_decode_value(a->data + r->value.off, r->value.len);
    else
        value = (Py_INCREF(Py_None), Py_None);
    PyObject *id = value ? sopy_id_str(&r->id) : NULL;
    PyObject *item = id ? sopy_new_item(key, value, id) : NULL;
    Py_DECREF(key);
    Py_XDECREF(value);
    Py_XDECREF(id);
    return item;
}

static PyObject *rec_to_item(StoreObject *self, const Arena *a, const FetchRec *r,
                             int with_value)
{
    return rec_to_item_key(self, a, r, with_value, NULL);
}

static PyObject *nil_item(void)
{
    static const sop_id zero;
    PyObject *id = sopy_id_str(&zero);
    if (!id)
        return NULL;
    PyObject *item = sopy_new_item(Py_None, Py_None, id);
    Py_DECREF(id);
    return item;
}

/* ---- write operations ----------------------------------------------------- */

enum { OP_ADD, OP_ADD_IF_ABSENT, OP_UPDATE, OP_UPSERT, OP_REMOVE, OP_UPDATE_KEY };

typedef struct WItem {
    Span key, kdoc, val;
} WItem;

typedef struct WBatch {
    Arena a;
    WItem *items;   /* PyMem_Calloc'ed when heap, else one WItem of the caller */
    size_t n;
    int heap;
} WBatch;

static void wbatch_free(WBatch *b)
{
    arena_free(&b->a);
    if (b->heap)
        PyMem_Free(b->items);
    b->items = NULL;
    b->n = 0;
}

/* Fill b from a list of (key, value-or-NULL) Python pairs. */
static int wbatch_encode(StoreObject *self, PyObject *pairs, int with_value, WBatch *b)
{
    Py_ssize_t n = PyList_GET_SIZE(pairs);
    arena_init(&b->a);
    b->n = 0;
    b->heap = 1;
    b->items = PyMem_Calloc(n ? (size_t)n : 1, sizeof *b->items);
    if (!b->items) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        WItem *it = &b->items[i];
        it->val.len = SPAN_NONE;
        if (encode_key(self, PyTuple_GET_ITEM(pair, 0), &b->a, &it->key, &it->kdoc) < 0)
            return -1;
        if (with_value && encode_value(PyTuple_GET_ITEM(pair, 1), &b->a, &it->val) < 0)
            return -1;
        b->n++;
    }
    return 0;
}

/* Append (key, value) to pairs. */
static int add_pair(PyObject *pairs, PyObject *key, PyObject *value)
{
    PyObject *p = PyTuple_Pack(2, key, value ? value : Py_None);
    if (!p)
        return -1;
    int rc = PyList_Append(pairs, p);
    Py_DECREF(p);
    return rc;
}

/* An Item given to a write must carry a valid id: a UUID (str or
 * uuid.UUID) or None.  The engine assigns the ids of new items, so the id is
 * only checked, not kept; a bad one is an error rather than silently
 * replaced. */
static int check_item_id(PyObject *item)
{
    PyObject *id = sopy_item_field(item, 2);
    if (!id)
        return -1;
    sop_id unused;
    int rc = sopy_parse_id(id, &unused);
    Py_DECREF(id);
    return rc;
}

static int add_item_pair(PyObject *pairs, PyObject *item, int keys_only)
{
    if (check_item_id(item) < 0)
        return -1;
    PyObject *k = sopy_item_field(item, 0);
    PyObject *v = k && !keys_only ? sopy_item_field(item, 1) : NULL;
    int rc = -1;
    if (k && (keys_only || v))
        rc = add_pair(pairs, k, v);
    Py_XDECREF(k);
    Py_XDECREF(v);
    return rc;
}

/* The argument forms of add/update/...: (key, value), Item, or [Item...]
 * when value is None.  keys_only: remove/update_key style (a key, an Item,
 * or a list of keys/Items).  A list gives *pairs (a list of (key, value)
 * pairs); one item gives *key1 and *value1 (new references; *value1 NULL
 * for keys_only).  0 / -1 with an exception. */
static int collect_args(PyObject *key, PyObject *value, int keys_only, PyObject **pairs,
                        PyObject **key1, PyObject **value1)
{
    *pairs = *key1 = *value1 = NULL;
    if (!keys_only && value != Py_None) {
        /* (key, value) */
    } else if (sopy_is_item(key)) {
        if (check_item_id(key) < 0)
            return -1;
        *key1 = sopy_item_field(key, 0);
        if (!*key1)
            return -1;
        if (!keys_only && !(*value1 = sopy_item_field(key, 1))) {
            Py_CLEAR(*key1);
            return -1;
        }
        return 0;
    } else if (PyList_Check(key)) {
        PyObject *list = PyList_New(0);
        if (!list)
            return -1;
        PyObject *seq = PySequence_Fast(key, "");
        if (!seq)
            goto fail;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
            PyObject *e = PySequence_Fast_GET_ITEM(seq, i);
            int rc;
            if (sopy_is_item(e))
                rc = add_item_pair(list, e, keys_only);
            else if (keys_only)
                rc = add_pair(list, e, NULL);
            else {
                sopy_raise(SOP_INVALID, "expected a list of Item, found %.100s at index %zd",
                           Py_TYPE(e)->tp_name, i);
                rc = -1;
            }
            if (rc < 0) {
                Py_DECREF(seq);
                goto fail;
            }
        }
        Py_DECREF(seq);
        *pairs = list;
        return 0;
    fail:
        Py_DECREF(list);
        return -1;
    }
    Py_INCREF(key);
    *key1 = key;
    if (!keys_only) {
        Py_INCREF(value);
        *value1 = value;
    }
    return 0;
}

static PyObject *store_write(StoreObject *self, PyObject *ctx, PyObject *key, PyObject *value,
                             int op)
{
    int keys_only = op == OP_REMOVE || op == OP_UPDATE_KEY;
    if (store_alive(self) < 0 || sopy_check_ctx(ctx) < 0)
        return NULL;
    PyObject *pairs, *key1, *value1;
    if (collect_args(key, value, keys_only, &pairs, &key1, &value1) < 0)
        return NULL;
    WBatch b;
    WItem one;
    int enc;
    if (pairs) {
        enc = wbatch_encode(self, pairs, !keys_only, &b);
        Py_DECREF(pairs);
    } else {
        /* one item: no list, no heap allocation for small keys and values */
        arena_init(&b.a);
        b.items = &one;
        b.n = 0;
        b.heap = 0;
        one.val.len = SPAN_NONE;
        enc = encode_key(self, key1, &b.a, &one.key, &one.kdoc) < 0 ||
                      (!keys_only && encode_value(value1, &b.a, &one.val) < 0)
                  ? -1
                  : 0;
        if (enc == 0)
            b.n = 1;
        Py_DECREF(key1);
        Py_XDECREF(value1);
    }
    if (enc < 0) {
        wbatch_free(&b);
        return NULL;
    }
    TxnObject *t = self->txn;
    sop_store *s = self->store;
    SopErr err = SOPY_NO_ERR;
    int all_ok = 1;
    SOPY_WITH_TXN(t, if (!t->txn) sopy_capture_ended(t, &err); else {
        for (size_t i = 0; i < b.n; i++) {
            WItem *it = &b.items[i];
            sop_val k = span_val(&b.a, it->key), kd = span_val(&b.a, it->kdoc),
                    v = span_val(&b.a, it->val);
            const sop_val *kdp = it->kdoc.len == SPAN_NONE ? NULL : &kd;
            int rc, soft; /* soft: the "False" outcome of this op */
            switch (op) {
            case OP_ADD:
                rc = sop_add(s, &k, kdp, &v, NULL);
                soft = SOP_KEYEXIST;
                break;
            case OP_ADD_IF_ABSENT:
                rc = sop_add_if_absent(s, &k, kdp, &v, NULL);
                soft = SOP_KEYEXIST;
                break;
            case OP_UPDATE:
                rc = sop_update(s, &k, kdp, &v);
                soft = SOP_NOTFOUND;
                break;
            case OP_UPSERT:
                rc = sop_upsert(s, &k, kdp, &v);
                soft = -1;
                break;
            case OP_REMOVE:
                rc = sop_remove(s, &k);
                soft = SOP_NOTFOUND;
                break;
            default: /* OP_UPDATE_KEY */
                rc = sop_update_key(s, &k, kdp);
                soft = SOP_NOTFOUND;
                break;
            }
            if (rc == soft) {
                all_ok = 0;
            } else if (rc != SOP_OK) {
                sopy_capture(&err, rc, t->txn);
                break;
            }
        }
    });
    wbatch_free(&b);
    if (err.rc)
        return sopy_raise_err(&err);
    return PyBool_FromLong(all_ok);
}

/* The methods taking arguments are METH_FASTCALL | METH_KEYWORDS. */
#define FASTCALL_ARGS PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames

#define KW_CTX_KEY_VALUE(fn)                                                                   \
    static PyObject *Store_##fn(StoreObject *self, FASTCALL_ARGS)                              \
    {                                                                                          \
        static const char *const names[] = {"ctx", "key", "value"};                            \
        PyObject *av[3] = {NULL, NULL, NULL};                                                   \
        if (PARSE_ARGS(#fn, names, 2, av) < 0)                                                  \
            return NULL;                                                                       \
        return store_write(self, av[0], av[1], av[2] ? av[2] : Py_None, OPCODE_##fn);             \
    }
#define OPCODE_add OP_ADD
#define OPCODE_add_if_not_exists OP_ADD_IF_ABSENT
#define OPCODE_update OP_UPDATE
#define OPCODE_upsert OP_UPSERT
KW_CTX_KEY_VALUE(add)
KW_CTX_KEY_VALUE(add_if_not_exists)
KW_CTX_KEY_VALUE(update)
KW_CTX_KEY_VALUE(upsert)

static PyObject *Store_remove(StoreObject *self, FASTCALL_ARGS)
{
    static const char *const names[] = {"ctx", "keys"};
    PyObject *av[2] = {NULL, NULL};
    if (PARSE_ARGS("remove", names, 2, av) < 0)
        return NULL;
    return store_write(self, av[0], av[1], Py_None, OP_REMOVE);
}

static PyObject *Store_update_key(StoreObject *self, FASTCALL_ARGS)
{
    static const char *const names[] = {"ctx", "items"};
    PyObject *av[2] = {NULL, NULL};
    if (PARSE_ARGS("update_key", names, 2, av) < 0)
        return NULL;
    return store_write(self, av[0], av[1], Py_None, OP_UPDATE_KEY);
}

/* ---- cursor operations ---------------------------------------------------- */

static PyObject *Store_update_current_key(StoreObject *self, FASTCALL_ARGS)
{
    static const char *const names[] = {"ctx", "item"};
    PyObject *av[2] = {NULL, NULL};
    if (PARSE_ARGS("update_current_key", names, 2, av) < 0)
        return NULL;
    PyObject *ctx = av[0], *item = av[1];
    if (store_alive(self) < 0 || sopy_check_ctx(ctx) < 0)
        return NULL;
    PyObject *key = sopy_is_item(item) ? sopy_item_field(item, 0) : (Py_INCREF(item), item);
    if (!key)
        return NULL;
    Arena a;
    Span k, kd;
    arena_init(&a);
    int rc0 = encode_key(self, key, &a, &k, &kd);
    Py_DECREF(key);
    if (rc0 < 0) {
        arena_free(&a);
        return NULL;
    }
    TxnObject *t = self->txn;
    sop_cursor *cur = self->cur;
    SopErr err = SOPY_NO_ERR;
    int ok = 0;
    SOPY_WITH_TXN(t, if (!t->txn) sopy_capture_ended(t, &err); else {
        sop_val kv = span_val(&a, k), dv = span_val(&a, kd);
        int rc = sop_cursor_update_key(cur, &kv, kd.len == SPAN_NONE ? NULL : &dv);
        cursor_moved(self);
        if (rc == SOP_OK)
            ok = 1;
        else if (rc != SOP_NO_CURSOR)
            sopy_capture(&err, rc, t->txn);
    });
    arena_free(&a);
    if (err.rc)
        return sopy_raise_err(&err);
    return PyBool_FromLong(ok);
}

static PyObject *Store_update_current_value(StoreObject *self, FASTCALL_ARGS)
{
    static const char *const names[] = {"ctx", "value"};
    PyObject *av[2] = {NULL, NULL};
    if (PARSE_ARGS("update_current_value", names, 2, av) < 0)
        return NULL;
    PyObject *ctx = av[0], *value = av[1];
    if (store_alive(self) < 0 || sopy_check_ctx(ctx) < 0)
        return NULL;
    Arena a;
    Span v;
    arena_init(&a);
    if (encode_value(value, &a, &v) < 0) {
        arena_free(&a);
        return NULL;
    }
    TxnObject *t = self->txn;
    sop_cursor *cur = self->cur;
    SopErr err = SOPY_NO_ERR;
    int ok = 0;
    SOPY_WITH_TXN(t, if (!t->txn) sopy_capture_ended(t, &err); else {
        sop_val vv = span_val(&a, v);
        int rc = sop_cursor_update_value(cur, &vv);
        cursor_moved(self);
        if (rc == SOP_OK)
            ok = 1;
        else if (rc != SOP_NO_CURSOR)
            sopy_capture(&err, rc, t->txn);
    });
    arena_free(&a);
    if (err.rc)
        return sopy_raise_err(&err);
    return PyBool_FromLong(ok);
}

static PyObject *find_common(StoreObject *self, PyObject *ctx, PyObject *key, PyObject *idobj)
{
    if (store_alive(self) < 0 || sopy_check_ctx(ctx) < 0)
        return NULL;
    sop_id id;
    if (sopy_parse_id(idobj, &id) < 0)
        return NULL;
    Arena a;
    Span k, kd;
    int partial = 0;
    arena_init(&a);
    if (encode_key_mode(self, key, &a, &k, &kd, idobj == Py_None ? KEY_LOOKUP : KEY_FULL,
                        &partial) < 0) {
        arena_free(&a);
        return NULL;
    }
    TxnObject *t = self->txn;
    sop_cursor *cur = self->cur;
    SopErr err = SOPY_NO_ERR;
    int found = 0, copied = 0;
    int copy = t->mode != SOP_TXN_WRITE && self->inline_values;
    unsigned long moves = 0;
    Arena ca; /* the item found, for get_current_item */
    FetchRec rec;
    arena_init(&ca);
    SOPY_WITH_TXN(t, if (!t->txn) sopy_capture_ended(t, &err); else {
        sop_val kv = span_val(&a, k);
        int rc;
        if (copy && idobj == Py_None) { /* find and read in one engine call */
            sop_val fk, fkd, fv;
            sop_id fid;
            rc = sop_cursor_find_get(cur, &kv, &fk, &fkd, &fv, &fid);
            copied = rc == SOP_OK && fk.size + fkd.size + fv.size <= CACHE_MAX_BYTES &&
                     fetchrec_put(&ca, &rec, &fk, &fkd, &fv, &fid) == 0;
        } else {
            rc = idobj == Py_None ? sop_cursor_find(cur, &kv) : sop_cursor_find_id(cur, &kv, &id);
            copied = rc == SOP_OK && copy && copy_current(cur, &ca, &rec);
        }
        moves = cursor_moved(self);
        if (rc == SOP_OK) {
            found = 1;
        } else if (rc == SOP_NOTFOUND) {
            found = partial && cursor_has_prefix(cur, &kv);
        } else {
            sopy_capture(&err, rc, t->txn);
        }
    });
    arena_free(&a);
    if (copied)
        cache_set(self, &ca, &rec, moves,
                  PyUnicode_CheckExact(key) && idobj == Py_None ? key : NULL);
    arena_free(&ca);
    if (err.rc)
        return sopy_raise_err(&err);
    return PyBool_FromLong(found);
}

static PyObject *Store_find(StoreObject *self, FASTCALL_ARGS)
{
    static const char *const names[] = {"ctx", "key"};
    PyObject *av[2] = {NULL, NULL};
    if (PARSE_ARGS("find", names, 2, av) < 0)
        return NULL;
    return find_common(self, av[0], av[1], Py_None);
}

static PyObject *Store_find_with_id(StoreObject *self, FASTCALL_ARGS)
{
    static const char *const names[] = {"ctx", "key", "id"};
    PyObject *av[3] = {NULL, NULL, NULL};
    if (PARSE_ARGS("find_with_id", names, 3, av) < 0)
        return NULL;
    if (av[2] == Py_None)
        return sopy_raise(SOP_INVALID, "find_with_id needs an id (use find for none)");
    return find_common(self, av[0], av[1], av[2]);
}

enum { NAV_FIRST, NAV_LAST, NAV_NEXT, NAV_PREV };

static PyObject *navigate(StoreObject *self, PyObject *ctx, int how)
{
    if (store_alive(self) < 0 || sopy_check_ctx(ctx) < 0)
        return NULL;
    TxnObject *t = self->txn;
    sop_cursor *cur = self->cur;
    SopErr err = SOPY_NO_ERR;
    int ok = 0;
    SOPY_WITH_TXN(t, if (!t->txn) sopy_capture_ended(t, &err); else {
        int rc = how == NAV_FIRST  ? sop_cursor_first(cur)
                 : how == NAV_LAST ? sop_cursor_last(cur)
                 : how == NAV_NEXT ? sop_cursor_next(cur)
                                   : sop_cursor_prev(cur);
        cursor_moved(self);
        if (rc == SOP_OK)
            ok = 1;
        else if (rc != SOP_NOTFOUND && rc != SOP_NO_CURSOR)
            sopy_capture(&err, rc, t->txn);
    });
    if (err.rc)
        return sopy_raise_err(&err);
    return PyBool_FromLong(ok);
}

static PyObject *Store_first(StoreObject *self, PyObject *ctx)
{
    return navigate(self, ctx, NAV_FIRST);
}
static PyObject *Store_last(StoreObject *self, PyObject *ctx)
{
    return navigate(self, ctx, NAV_LAST);
}
static PyObject *Store_next(StoreObject *self, PyObject *ctx)
{
    return navigate(self, ctx, NAV_NEXT);
}
static PyObject *Store_previous(StoreObject *self, PyObject *ctx)
{
    return navigate(self, ctx, NAV_PREV);
}

/* with_value: 0 key only, 1 key and value.  strict: raise
 * NoCurrentItemError when the cursor is not on an item (get_current_item)
 * instead of returning Item(None, None, nil id) as the original's
 * get_current_key / get_current_value do. */
static PyObject *current(StoreObject *self, PyObject *ctx, int with_value, int strict)
{
    if (store_alive(self) < 0 || sopy_check_ctx(ctx) < 0)
        return NULL;
    if (self->cached && self->cache_moves == __atomic_load_n(&self->moves, __ATOMIC_ACQUIRE))
        return rec_to_item_key(self, &self->cache, &self->cache_rec, with_value,
                               self->cache_key);
    TxnObject *t = self->txn;
    sop_cursor *cur = self->cur;
    SopErr err = SOPY_NO_ERR;
    Arena a;
    FetchRec rec;
    int have = 0;
    arena_init(&a);
    SOPY_WITH_TXN(t, if (!t->txn) sopy_capture_ended(t, &err); else {
        sop_val k, kd, v;
        sop_id id;
        int rc = sop_cursor_get(cur, &k, &kd, with_value ? &v : NULL, &id);
        if (rc == SOP_OK) {
            if (fetchrec_put(&a, &rec, &k, &kd, with_value ? &v : NULL, &id) < 0)
                sopy_capture_msg(&err, SOP_NOMEM, "copying the current item");
            else
                have = 1;
        } else if (rc != SOP_NO_CURSOR) {
            sopy_capture(&err, rc, t->txn);
        }
    });
    PyObject *res = NULL;
    if (err.rc)
        sopy_raise_err(&err);
    else if (!have && strict)
        sopy_raise(SOP_NO_CURSOR, "get_current_item: the cursor is not on an item "
                                  "(position it with find, first or last)");
    else if (!have)
        res = nil_item();
    else
        res = rec_to_item(self, &a, &rec, with_value);
    arena_free(&a);
    return res;
}

static PyObject *Store_get_current_key(StoreObject *self, PyObject *ctx)
{
    return current(self, ctx, 0, 0);
}

static PyObject *Store_get_current_value(StoreObject *self, PyObject *ctx)
{
    return current(self, ctx, 1, 0);
}

static PyObject *Store_get_current_item(StoreObject *self, PyObject *ctx)
{
    return current(self, ctx, 1, 1);
}

/* ---- paging ------------------------------------------------------------- */

static int paging_int(PyObject *pi, const char *name, long long dflt, long long *out)
{
    PyObject *v = PyObject_GetAttrString(pi, name);
    if (!v) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        *out = dflt;
        return 0;
    }
    if (!PyLong_Check(v)) {
        /* an Enum member such as PagingDirection.Backward */
        PyObject *val = PyObject_GetAttrString(v, "value");
        Py_DECREF(v);
        if (!val) {
            PyErr_Clear();
            sopy_raise(SOP_INVALID, "PagingInfo.%s must be an int", name);
            return -1;
        }
        v = val;
    }
    long long x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred()) {
        sopy_reraise_as(SOP_INVALID, name);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_paging(PyObject *pi, sop_paging *p)
{
    long long off = 0, size = 20, count = 0, dir = 0;
    if (pi != Py_None && !PyObject_HasAttrString(pi, "page_size") &&
        !PyObject_HasAttrString(pi, "page_offset") && !PyObject_HasAttrString(pi, "fetch_count") &&
        !PyObject_HasAttrString(pi, "direction")) {
        /* a dict, a number, a string: not silently the default page */
        PyErr_Format(PyExc_TypeError,
                     "paging_info must be a sop.PagingInfo (or None), not %.100s",
                     Py_TYPE(pi)->tp_name);
        return -1;
    }
    if (pi != Py_None &&
        (paging_int(pi, "page_offset", 0, &off) < 0 || paging_int(pi, "page_size", 20, &size) < 0 ||
         paging_int(pi, "fetch_count", 0, &count) < 0 || paging_int(pi, "direction", 0, &dir) < 0))
        return -1;
    if (off < 0) {
        sopy_raise(SOP_INVALID, "page_offset must be >= 0, not %lld", off);
        return -1;
    }
    if (size <= 0 && count <= 0) {
        sopy_raise(SOP_INVALID, "page_size or fetch_count must be > 0 (got %lld and %lld)", size,
                   count);
        return -1;
    }
    p->page_offset = (uint64_t)off;
    p->page_size = size > 0 ? (uint64_t)size : 0;
    p->fetch_count = count > 0 ? (uint64_t)count : 0;
    /* like the original, clamp the direction (without touching the caller's
     * object) */
    p->direction = dir <= 0 ? SOP_FORWARD : SOP_BACKWARD;
    return 0;
}

static PyObject *fetch(StoreObject *self, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames, int what)
{
    static const char *const names[] = {"ctx", "paging_info", "pagingInfo"};
    PyObject *av[3] = {NULL, NULL, NULL};
    if (parse_args(what == SOP_FETCH_KEYS ? "get_keys" : "get_items", args, nargs, kwnames, names,
                   3, 1, av) < 0)
        return NULL;
    PyObject *ctx = av[0], *pi = av[1], *pi2 = av[2];
    if (!pi)
        pi = pi2 ? pi2 : Py_None;
    if (store_alive(self) < 0 || sopy_check_ctx(ctx) < 0)
        return NULL;
    sop_paging paging;
    if (parse_paging(pi, &paging) < 0)
        return NULL;
    TxnObject *t = self->txn;
    sop_cursor *cur = self->cur;
    SopErr err = SOPY_NO_ERR;
    FetchBuf fb;
    fetchbuf_init(&fb);
    SOPY_WITH_TXN(t, if (!t->txn) sopy_capture_ended(t, &err); else {
        /* sop.h: no wrap-around; past an end there is nothing until the
         * cursor is positioned again */
        int rc = sop_cursor_fetch(cur, &paging, what, fetchbuf_cb, &fb);
        cursor_moved(self);
        if (rc == SOP_NO_CURSOR)
            sopy_capture_msg(&err, rc,
                             "can't fetch items with page_offset > 0: call first, last, find "
                             "or find_with_id before get_keys/get_items");
        else if (rc != SOP_OK)
            sopy_capture(&err, rc, t->txn);
    });
    PyObject *list = NULL;
    if (err.rc) {
        sopy_raise_err(&err);
    } else if ((list = PyList_New((Py_ssize_t)fb.n)) != NULL) {
        for (size_t i = 0; i < fb.n; i++) {
            PyObject *item = rec_to_item(self, &fb.a, &fb.recs[i], what == SOP_FETCH_VALUES);
            if (!item) {
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)i, item);
        }
    }
    fetchbuf_free(&fb);
    return list;
}

static PyObject *Store_get_keys(StoreObject *self, FASTCALL_ARGS)
{
    return fetch(self, args, nargs, kwnames, SOP_FETCH_KEYS);
}

static PyObject *Store_get_items(StoreObject *self, FASTCALL_ARGS)
{
    return fetch(self, args, nargs, kwnames, SOP_FETCH_VALUES);
}

static PyObject *Store_get_values(StoreObject *self, FASTCALL_ARGS)
{
    static const char *const names[] = {"ctx", "keys"};
    PyObject *av[2] = {NULL, NULL};
    if (PARSE_ARGS("get_values", names, 2, av) < 0)
        return NULL;
    PyObject *ctx = av[0], *arg = av[1];
    if (store_alive(self) < 0 || sopy_check_ctx(ctx) < 0)
        return NULL;
    /* inputs: the Item objects (or keys) as given */
    PyObject *inputs = PyList_Check(arg) ? PySequence_List(arg) : PyList_New(0);
    if (!inputs)
        return NULL;
    if (!PyList_Check(arg) && PyList_Append(inputs, arg) < 0) {
        Py_DECREF(inputs);
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(inputs);
    Arena a;
    arena_init(&a);
    Span *keys = PyMem_Calloc(n ? (size_t)n : 1, sizeof *keys);
    sop_id *ids = PyMem_Calloc(n ? (size_t)n : 1, sizeof *ids);
    PyObject **in_ids = PyMem_Calloc(n ? (size_t)n : 1, sizeof *in_ids);
    char *found = PyMem_Calloc(n ? (size_t)n : 1, 1);
    char *partial = PyMem_Calloc(n ? (size_t)n : 1, 1);
    PyObject *result = NULL;
    FetchBuf fb;
    fetchbuf_init(&fb);
    if (!keys || !ids || !in_ids || !found || !partial) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyList_GET_ITEM(inputs, i), *key;
        Span kd;
        if (sopy_is_item(e)) {
            key = sopy_item_field(e, 0);
            in_ids[i] = key ? sopy_item_field(e, 2) : NULL;
            if (!in_ids[i] || sopy_parse_id(in_ids[i], &ids[i]) < 0) {
                Py_XDECREF(key);
                goto done;
            }
        } else {
            key = e;
            Py_INCREF(key);
        }
        int part = 0;
        int rc = encode_key_mode(self, key, &a, &keys[i], &kd, KEY_LOOKUP, &part);
        Py_DECREF(key);
        if (rc < 0)
            goto done;
        partial[i] = (char)part;
    }
    TxnObject *t = self->txn;
    sop_cursor *cur = self->cur;
    SopErr err = SOPY_NO_ERR;
    static const sop_id zero_id;
    SOPY_WITH_TXN(t, if (!t->txn) sopy_capture_ended(t, &err); else {
        for (Py_ssize_t i = 0; i < n; i++) {
            sop_val kv = span_val(&a, keys[i]);
            int has_id = memcmp(&ids[i], &zero_id, sizeof zero_id) != 0;
            int rc = has_id ? sop_cursor_find_id(cur, &kv, &ids[i]) : sop_cursor_find(cur, &kv);
            cursor_moved(self);
            if (rc == SOP_NOTFOUND && !has_id && partial[i] && cursor_has_prefix(cur, &kv))
                rc = SOP_OK; /* the first item of the prefix */
            if (rc == SOP_OK) {
                sop_val k, kd, v;
                sop_id id;
                rc = sop_cursor_get(cur, &k, &kd, &v, &id);
                if (rc == SOP_OK && fetchbuf_add(&fb, &k, &kd, &v, &id) < 0)
                    rc = SOP_NOMEM;
                if (rc == SOP_OK)
                    found[i] = 1;
            } else if (rc == SOP_NOTFOUND) {
                rc = SOP_OK;
            }
            if (rc != SOP_OK) {
                sopy_capture(&err, rc, t->txn);
                break;
            }
        }
    });
    if (err.rc) {
        sopy_raise_err(&err);
        goto done;
    }
    result = PyList_New(n);
    size_t r = 0;
    for (Py_ssize_t i = 0; result && i < n; i++) {
        PyObject *item;
        if (found[i]) {
            item = rec_to_item(self, &fb.a, &fb.recs[r++], 1);
        } else {
            /* echo the input with no value */
            PyObject *e = PyList_GET_ITEM(inputs, i);
            if (in_ids[i]) {
                PyObject *k = sopy_item_field(e, 0);
                item = k ? sopy_new_item(k, Py_None, in_ids[i]) : NULL;
                Py_XDECREF(k);
            } else {
                PyObject *id = sopy_id_str(&ids[i]);
                item = id ? sopy_new_item(e, Py_None, id) : NULL;
                Py_XDECREF(id);
            }
        }
        if (!item) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, item);
    }
done:
    for (Py_ssize_t i = 0; in_ids && i < n; i++)
        Py_XDECREF(in_ids[i]);
    PyMem_Free(keys);
    PyMem_Free(ids);
    PyMem_Free(in_ids);
    PyMem_Free(found);
    PyMem_Free(partial);
    arena_free(&a);
    fetchbuf_free(&fb);
    Py_DECREF(inputs);
    return result;
}

/* ---- store-level ------------------------------------------------------------ */

static PyObject *Store_count(StoreObject *self, PyObject *unused)
{
    (void)unused;
    if (store_alive(self) < 0)
        return NULL;
    TxnObject *t = self->txn;
    sop_store *s = self->store;
    SopErr err = SOPY_NO_ERR;
    uint64_t count = 0;
    SOPY_WITH_TXN(t, if (!t->txn) sopy_capture_ended(t, &err); else {
        int rc = sop_store_count(s, &count);
        if (rc != SOP_OK)
            sopy_capture(&err, rc, t->txn);
    });
    if (err.rc)
        return sopy_raise_err(&err);
    return PyLong_FromUnsignedLongLong((unsigned long long)count);
}

static PyObject *Store_is_unique(StoreObject *self, PyObject *unused)
{
    (void)unused;
    if (store_alive(self) < 0)
        return NULL;
    return PyBool_FromLong(self->is_unique);
}

static PyObject *span_bytes(const Arena *a, Span s)
{
    if (s.len == SPAN_NONE)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)a->data + s.off, (Py_ssize_t)s.len);
}

static PyObject *span_str(const Arena *a, Span s)
{
    if (s.len == SPAN_NONE)
        return PyUnicode_FromString("");
    return PyUnicode_DecodeUTF8((const char *)a->data + s.off, (Py_ssize_t)s.len, "replace");
}

/* get_store_info() -> dict of the engine's store record (sop.btree.Btree
 * turns it into a BtreeOptions). */
static PyObject *Store_get_store_info(StoreObject *self, PyObject *unused)
{
    (void)unused;
    if (store_alive(self) < 0)
        return NULL;
    TxnObject *t = self->txn;
    sop_store *s = self->store;
    SopErr err = SOPY_NO_ERR;
    sop_store_info info;
    memset(&info, 0, sizeof info);
    Arena a;
    arena_init(&a);
    Span name = {0, SPAN_NONE}, desc = {0, SPAN_NONE}, spec = {0, SPAN_NONE}, meta = {0, SPAN_NONE};
    SOPY_WITH_TXN(t, if (!t->txn) sopy_capture_ended(t, &err); else {
        int rc = sop_store_get_info(s, &info);
        if (rc != SOP_OK) {
            sopy_capture(&err, rc, t->txn);
        } else if ((info.name && span_put(&a, &name, info.name, strlen(info.name)) < 0) ||
                   (info.options.description &&
                    span_put(&a, &desc, info.options.description,
                             strlen(info.options.description)) < 0) ||
                   span_put(&a, &spec, info.options.index_spec.data, info.options.index_spec.size) <
                       0 ||
                   span_put(&a, &meta, info.options.metadata.data, info.options.metadata.size) <
                       0) {
            sopy_capture_msg(&err, SOP_NOMEM, "copying the store info");
        }
    });
    PyObject *res = NULL;
    if (err.rc) {
        sopy_raise_err(&err);
    } else {
        PyObject *n = span_str(&a, name), *d = span_str(&a, desc), *sp = span_bytes(&a, spec),
                 *md = span_bytes(&a, meta);
        if (n && d && sp && md)
            res = Py_BuildValue(
                "{s:O,s:k,s:O,s:i,s:O,s:O,s:O,s:O,s:O,s:K}", "name", n, "slot_length",
                (unsigned long)info.options.slot_length, "is_unique",
                info.options.is_unique ? Py_True : Py_False, "value_placement",
                info.options.value_placement, "leaf_load_balancing",
                info.options.leaf_load_balancing ? Py_True : Py_False, "is_primitive_key",
                info.options.is_primitive_key ? Py_True : Py_False, "description", d, "index_spec",
                sp, "metadata", md, "count", (unsigned long long)info.count);
        Py_XDECREF(n);
        Py_XDECREF(d);
        Py_XDECREF(sp);
        Py_XDECREF(md);
    }
    arena_free(&a);
    return res;
}

/* ---- attributes and type ---------------------------------------------------- */

static PyObject *Store_get_name(StoreObject *self, void *c)
{
    (void)c;
    if (!self->name)
        Py_RETURN_NONE;
    Py_INCREF(self->name);
    return self->name;
}

static PyObject *Store_get_is_primitive_key(StoreObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(self->is_primitive_key);
}

static PyObject *Store_get_index_spec(StoreObject *self, void *c)
{
    (void)c;
    PyObject *v = self->index_spec ? self->index_spec : Py_None;
    Py_INCREF(v);
    return v;
}

static PyObject *Store_get_txn(StoreObject *self, void *c)
{
    (void)c;
    if (!self->txn)
        Py_RETURN_NONE;
    Py_INCREF(self->txn);
    return (PyObject *)self->txn;
}

static PyObject *Store_get_ended(StoreObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(!self->txn || !sopy_txn_peek(self->txn));
}

static PyObject *Store_get_hook(StoreObject *self, void *c)
{
    PyObject *v = c ? self->key_decoder : self->key_codec;
    if (!v)
        Py_RETURN_NONE;
    Py_INCREF(v);
    return v;
}

static int Store_set_hook(StoreObject *self, PyObject *v, void *c)
{
    if (!v)
        v = Py_None;
    if (v != Py_None && !PyCallable_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "the key codec/decoder must be callable or None");
        return -1;
    }
    cache_clear(self); /* a kept key may no longer be what the decoder says */
    Py_INCREF(v);
    if (c)
        Py_XSETREF(self->key_decoder, v);
    else
        Py_XSETREF(self->key_codec, v);
    return 0;
}

static int Store_traverse(StoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->txn);
    Py_VISIT(self->key_codec);
    Py_VISIT(self->key_decoder);
    return 0;
}

static int Store_clear(StoreObject *self)
{
    Py_CLEAR(self->key_codec);
    Py_CLEAR(self->key_decoder);
    return 0;
}

static void Store_dealloc(StoreObject *self)
{
    PyObject_GC_UnTrack(self);
    TxnObject *t = self->txn;
    /* Give the cursor back early if nobody is using the transaction right
     * now; otherwise the engine frees it when the transaction ends. */
    if (t && self->cur && sopy_txn_trylock(t)) {
        if (t->txn)
            sop_cursor_close(self->cur);
        sopy_txn_unlock(t);
    }
    self->cur = NULL;
    self->store = NULL;
    cache_clear(self);
    Store_clear(self);
    /* bytes and a tuple of str: no cycles, so not in tp_clear (encoding
     * keys relies on them being set) */
    Py_CLEAR(self->index_spec);
    Py_CLEAR(self->spec_names);
    Py_CLEAR(self->name);
    Py_CLEAR(self->txn);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Store_repr(StoreObject *self)
{
    return PyUnicode_FromFormat("<%s %R%s>", Py_TYPE(self)->tp_name, self->name ? self->name : Py_None,
                                (!self->txn || !sopy_txn_peek(self->txn)) ? " (transaction ended)" : "");
}

#define KWM(name, doc) \
    {#name, (PyCFunction)(void (*)(void))Store_##name, METH_FASTCALL | METH_KEYWORDS, doc}

static PyMethodDef Store_methods[] = {
    KWM(add, "add(ctx, key, value=None) -> bool\n\nAdd (key, value), an Item or a list of Items; "
             "False if a key exists in a unique store."),
    KWM(add_if_not_exists, "add_if_not_exists(ctx, key, value=None) -> bool\n\nAdd only "
                           "absent keys; False if any key exists."),
    KWM(update, "update(ctx, key, value=None) -> bool\n\nReplace values; False if any key "
                "is missing."),
    KWM(upsert, "upsert(ctx, key, value=None) -> bool\n\nUpdate or add."),
    KWM(remove, "remove(ctx, keys) -> bool\n\nRemove one key, an Item, or a list of them; "
                "False if any is missing."),
    KWM(update_key, "update_key(ctx, items) -> bool\n\nReplace the stored key document of "
                    "each item's key."),
    KWM(update_current_key, "update_current_key(ctx, item) -> bool\n\nReplace the key "
                            "document at the cursor; False if the cursor is not positioned."),
    KWM(update_current_value, "update_current_value(ctx, value) -> bool\n\nReplace the value "
                              "at the cursor; False if the cursor is not positioned."),
    KWM(find, "find(ctx, key) -> bool\n\nPosition on the first item with key; on a miss "
              "return False and position on the next greater key.  Complex-key stores also "
              "take the leading indexed fields only (e.g. {'region': 'US'}): True when the "
              "first item at or after them starts with them."),
    KWM(find_with_id, "find_with_id(ctx, key, id) -> bool\n\nPosition on the item with key "
                      "and id (str or uuid.UUID)."),
    {"first", (PyCFunction)Store_first, METH_O, "first(ctx) -> bool"},
    {"last", (PyCFunction)Store_last, METH_O, "last(ctx) -> bool"},
    {"next", (PyCFunction)Store_next, METH_O,
     "next(ctx) -> bool\n\nFalse (and unpositioned) past the end."},
    {"previous", (PyCFunction)Store_previous, METH_O, "previous(ctx) -> bool"},
    {"get_current_key", (PyCFunction)Store_get_current_key, METH_O,
     "get_current_key(ctx) -> Item\n\nItem(key, None, id) at the cursor (key None when "
     "unpositioned)."},
    {"get_current_value", (PyCFunction)Store_get_current_value, METH_O,
     "get_current_value(ctx) -> Item\n\nItem(key, value, id) at the cursor (all None "
     "when unpositioned, like the original)."},
    {"get_current_item", (PyCFunction)Store_get_current_item, METH_O,
     "get_current_item(ctx) -> Item\n\nItem(key, value, id) at the cursor; "
     "NoCurrentItemError when the cursor is not on an item."},
    KWM(get_keys, "get_keys(ctx, paging_info) -> list[Item]\n\nItems without values."),
    KWM(get_items, "get_items(ctx, paging_info) -> list[Item]"),
    KWM(get_values, "get_values(ctx, keys) -> list[Item]\n\nLook up each Item (by id when "
                    "set); a missing key comes back with value None.  A partial complex key "
                    "gives the first item that starts with it."),
    {"count", (PyCFunction)Store_count, METH_NOARGS, "count() -> int"},
    {"is_unique", (PyCFunction)Store_is_unique, METH_NOARGS, "is_unique() -> bool"},
    {"get_store_info", (PyCFunction)Store_get_store_info, METH_NOARGS,
     "get_store_info() -> dict\n\nThe engine's record of the store."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Store_getset[] = {
    {"name", (getter)Store_get_name, NULL, "Store name.", NULL},
    {"is_primitive_key", (getter)Store_get_is_primitive_key, NULL,
     "True when keys are plain str/int/float/bool/bytes values.", NULL},
    {"txn", (getter)Store_get_txn, NULL, "The Txn this store was opened in.", NULL},
    {"_index_spec", (getter)Store_get_index_spec, NULL,
     "The store's index spec as kept by the engine (a sopdoc list of [name, ascending] "
     "pairs; b'' when none).", NULL},
    {"ended", (getter)Store_get_ended, NULL, "True once the transaction has ended.", NULL},
    {"_key_codec", (getter)Store_get_hook, (setter)Store_set_hook,
     "None or callable(key) -> (key_bytes, key_doc_bytes|None).", NULL},
    {"_key_decoder", (getter)Store_get_hook, (setter)Store_set_hook,
     "None or callable(key_bytes, key_doc_bytes|None) -> key.", (void *)1},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject SopStore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sop._sop.Store",
    .tp_basicsize = sizeof(StoreObject),
    .tp_dealloc = (destructor)Store_dealloc,
    .tp_repr = (reprfunc)Store_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A B-tree store opened in a transaction (created by Txn.open_store).",
    .tp_traverse = (traverseproc)Store_traverse,
    .tp_clear = (inquiry)Store_clear,
    .tp_methods = Store_methods,
    .tp_getset = Store_getset,
};
