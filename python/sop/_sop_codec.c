/*
 * _sop_codec.c - conversions between Python objects and the engine's byte
 * formats, for the sop._sop extension:
 *   - primitive keys <-> order-preserving keys (sop_key_*), with a one-item
 *     key document kept only for integral floats so 3.0 comes back as 3.0;
 *   - values <-> sopdoc documents (sop_doc_*): None, bool, int of any size,
 *     float, str, bytes, list/tuple, dict with str keys, dataclass instances;
 *   - item ids <-> canonical UUID text;
 *   - Arena / FetchBuf: byte buffers filled without the GIL (under the txn
 *     mutex) from borrowed engine results.
 * Everything here except the arena functions needs the GIL.
 */
#include "_sop_int.h"

#include <math.h>
#include <string.h>

/* Containers nest at most this deep (the sopdoc limit). */
#define MAX_DEPTH 64

/* ---- arenas (no GIL: PyMem_Raw* is thread-safe) ------------------------- */

void arena_init(Arena *a)
{
    a->data = a->inl;
    a->size = 0;
    a->cap = sizeof a->inl;
}

void arena_free(Arena *a)
{
    if (a->data != a->inl)
        PyMem_RawFree(a->data);
    arena_init(a);
}

int arena_put(Arena *a, const void *p, size_t n, size_t *off)
{
    if (n > SIZE_MAX - a->size)
        return -1;
    if (a->size + n > a->cap) {
        size_t cap = a->cap;
        while (cap < a->size + n) {
            if (cap > SIZE_MAX / 2) {
                cap = a->size + n;
                break;
            }
            cap *= 2;
        }
        unsigned char *d;
        if (a->data == a->inl) {
            d = PyMem_RawMalloc(cap);
            if (d && a->size)
                memcpy(d, a->inl, a->size);
        } else {
            d = PyMem_RawRealloc(a->data, cap);
        }
        if (!d)
            return -1;
        a->data = d;
        a->cap = cap;
    }
    *off = a->size;
    if (n)
        memcpy(a->data + a->size, p, n);
    a->size += n;
    return 0;
}

void fetchbuf_init(FetchBuf *f)
{
    arena_init(&f->a);
    f->recs = NULL;
    f->n = f->cap = 0;
}

void fetchbuf_free(FetchBuf *f)
{
    arena_free(&f->a);
    PyMem_RawFree(f->recs);
    f->recs = NULL;
    f->n = f->cap = 0;
}

static int put_opt(Arena *a, Span *s, const sop_val *v)
{
    if (!v) {
        s->off = 0;
        s->len = SPAN_NONE;
        return 0;
    }
    return span_put(a, s, v->data, v->size);
}

int fetchrec_put(Arena *a, FetchRec *r, const sop_val *key, const sop_val *key_doc,
                 const sop_val *value, const sop_id *id)
{
    if (put_opt(a, &r->key, key) || put_opt(a, &r->key_doc, key_doc) ||
        put_opt(a, &r->value, value))
        return -1;
    if (id)
        r->id = *id;
    else
        memset(&r->id, 0, sizeof r->id);
    return 0;
}

int fetchbuf_add(FetchBuf *f, const sop_val *key, const sop_val *key_doc, const sop_val *value,
                 const sop_id *id)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        FetchRec *r = PyMem_RawRealloc(f->recs, cap * sizeof *r);
        if (!r)
            return -1;
        f->recs = r;
        f->cap = cap;
    }
    if (fetchrec_put(&f->a, &f->recs[f->n], key, key_doc, value, id) < 0)
        return -1;
    f->n++;
    return 0;
}

int fetchbuf_cb(void *arg, const sop_val *key, const sop_val *key_doc, const sop_val *value,
                const sop_id *id)
{
    return fetchbuf_add((FetchBuf *)arg, key, key_doc, value, id) ? SOP_NOMEM : 0;
}

/* ---- keys --------------------------------------------------------------- */

static int keybuf_check(sop_keybuf *kb)
{
    if (kb->err == SOP_OK && kb->size > SOP_MAX_KEY)
        kb->err = SOP_KEY_TOO_LARGE;
    switch (kb->err) {
    case SOP_OK:
        return 0;
    case SOP_NOMEM:
        PyErr_NoMemory();
        return -1;
    case SOP_KEY_TOO_LARGE:
        sopy_raise(SOP_KEY_TOO_LARGE, "the encoded key is longer than %d bytes", SOP_MAX_KEY);
        return -1;
    default:
        sopy_raise(kb->err, "the key could not be encoded");
        return -1;
    }
}

/* Append one primitive field to kb.  For integral floats also write the
 * key document (when kdoc is not NULL).  0 / -1 with an exception. */
static int encode_key_field(PyObject *key, int desc, sop_keybuf *kb, sop_docbuf *kdoc)
{
    if (key == Py_None) {
        sop_key_null(kb, desc);
    } else if (PyBool_Check(key)) {
        sop_key_bool(kb, key == Py_True, desc);
    } else if (PyLong_Check(key)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(key, &overflow);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (!overflow) {
            sop_key_int(kb, (int64_t)v, desc);
        } else if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(key);
            if (u == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                sopy_raise(SOP_BAD_KEY, "int key %R does not fit in 64 bits", key);
                return -1;
            }
            sop_key_uint(kb, (uint64_t)u, desc);
        } else {
            sopy_raise(SOP_BAD_KEY, "int key %R does not fit in 64 bits", key);
            return -1;
        }
    } else if (PyFloat_Check(key)) {
        double d = PyFloat_AS_DOUBLE(key);
        if (isnan(d)) {
            sopy_raise(SOP_INVALID, "NaN cannot be a key");
            return -1;
        }
        sop_key_double(kb, d, desc);
        /* The key decoder reports integral numbers in the 64-bit range as
         * ints; remember that this one was a float. */
        if (kdoc && d == floor(d) && d >= -9223372036854775808.0 && d < 18446744073709551616.0)
            sop_doc_double(kdoc, d);
    } else if (PyUnicode_Check(key)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(key, &n);
        if (!s) {
            sopy_reraise_as(SOP_BAD_KEY, "str key is not valid Unicode");
            return -1;
        }
        if ((size_t)n > SOP_MAX_KEY) { /* avoid encoding huge strings */
            sopy_raise(SOP_KEY_TOO_LARGE, "str key of %zd bytes (the limit is %d)", n,
                       SOP_MAX_KEY);
            return -1;
        }
        sop_key_str(kb, s, (size_t)n, desc);
    } else if (PyBytes_Check(key)) {
        Py_ssize_t n = PyBytes_GET_SIZE(key);
        if ((size_t)n > SOP_MAX_KEY) {
            sopy_raise(SOP_KEY_TOO_LARGE, "bytes key of %zd bytes (the limit is %d)", n,
                       SOP_MAX_KEY);
            return -1;
        }
        sop_key_bytes(kb, PyBytes_AS_STRING(key), (size_t)n, desc);
    } else if (PyObject_CheckBuffer(key)) {
        Py_buffer view;
        if (PyObject_GetBuffer(key, &view, PyBUF_SIMPLE) < 0) {
            sopy_reraise_as(SOP_BAD_KEY, "key buffer is not contiguous");
            return -1;
        }
        if ((size_t)view.len > SOP_MAX_KEY) {
            Py_ssize_t n = view.len;
            PyBuffer_Release(&view);
            sopy_raise(SOP_KEY_TOO_LARGE, "bytes key of %zd bytes (the limit is %d)", n,
                       SOP_MAX_KEY);
            return -1;
        }
        sop_key_bytes(kb, view.buf, (size_t)view.len, desc);
        PyBuffer_Release(&view);
    } else {
        sopy_raise(SOP_BAD_KEY,
                   "a primitive-key store takes str, int, float, bool, bytes or None keys, "
                   "not %.100s",
                   Py_TYPE(key)->tp_name);
        return -1;
    }
    return keybuf_check(kb);
}

int sopy_encode_primitive_key(PyObject *key, sop_keybuf *kb, sop_docbuf *kdoc)
{
    if (encode_key_field(key, 0, kb, kdoc) < 0)
        return -1;
    if (kdoc->err == SOP_NOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static PyObject *key_field_to_py(const sop_key_field *f)
{
    switch (f->type) {
    case SOP_KT_NULL:
        Py_RETURN_NONE;
    case SOP_KT_BOOL:
        return PyBool_FromLong(f->i != 0);
    case SOP_KT_INT:
        return PyLong_FromLongLong((long long)f->i);
    case SOP_KT_UINT:
        return PyLong_FromUnsignedLongLong((unsigned long long)f->u);
    case SOP_KT_DOUBLE:
        return PyFloat_FromDouble(f->d);
    case SOP_KT_STR: {
        PyObject *s = PyUnicode_DecodeUTF8((const char *)f->p, (Py_ssize_t)f->n, "strict");
        if (!s)
            return sopy_reraise_as(SOP_CORRUPT, "key string is not valid UTF-8");
        return s;
    }
    case SOP_KT_BYTES:
        return PyBytes_FromStringAndSize((const char *)f->p, (Py_ssize_t)f->n);
    default:
        return sopy_raise(SOP_CORRUPT, "unknown key field type %d", f->type);
    }
}

/* Decode all fields of a key into a new list. */
static PyObject *decode_key_fields(const void *p, size_t n, PyObject *desc_out)
{
    sop_key_reader r;
    sop_key_field f;
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    sop_key_reader_init(&r, p, n);
    for (;;) {
        int rc = sop_key_next(&r, &f);
        if (rc == 0)
            break;
        if (rc < 0) {
            sop_key_reader_free(&r);
            Py_DECREF(list);
            if (rc == -SOP_NOMEM)
                return PyErr_NoMemory();
            return sopy_raise(-rc, "cannot decode a stored key: %s", sop_errmsg());
        }
        PyObject *o = key_field_to_py(&f);
        if (!o || PyList_Append(list, o) < 0 ||
            (desc_out && PyList_Append(desc_out, f.descending ? Py_True : Py_False) < 0)) {
            Py_XDECREF(o);
            sop_key_reader_free(&r);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(o);
    }
    sop_key_reader_free(&r);
    return list;
}

PyObject *sopy_decode_key(const void *p, size_t n)
{
    /* the common case, a one-field key: no list in between */
    sop_key_reader r;
    sop_key_field f;
    sop_key_reader_init(&r, p, n);
    if (sop_key_next(&r, &f) > 0) {
        PyObject *one = key_field_to_py(&f);
        if (!one || sop_key_next(&r, &f) == 0) {
            sop_key_reader_free(&r);
            return one;
        }
        Py_DECREF(one); /* more fields (or damage): the general path below */
    }
    sop_key_reader_free(&r);
    PyObject *list = decode_key_fields(p, n, NULL);
    if (!list)
        return NULL;
    PyObject *res;
    if (PyList_GET_SIZE(list) == 1) {
        res = PyList_GET_ITEM(list, 0);
        Py_INCREF(res);
    } else {
        res = PyList_AsTuple(list);
    }
    Py_DECREF(list);
    return res;
}

/* ---- values ------------------------------------------------------------- */

static int is_dataclass_instance(PyObject *v)
{
    /* dataclasses.is_dataclass(v) and not isinstance(v, type) */
    if (PyType_Check(v))
        return 0;
    PyObject *f = PyObject_GetAttrString((PyObject *)Py_TYPE(v), "__dataclass_fields__");
    if (!f) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(f);
    return 1;
}

static int encode_bigint(PyObject *v, sop_docbuf *d)
{
    PyObject *bits = PyObject_CallMethod(v, "bit_length", NULL);
    if (!bits)
        return -1;
    Py_ssize_t nbits = PyLong_AsSsize_t(bits);
    Py_DECREF(bits);
    if (nbits < 0)
        return -1;
    Py_ssize_t nbytes = nbits / 8 + 1; /* room for the sign bit */
    if (nbytes > 1024) {
        sopy_raise(SOP_VALUE_TOO_LARGE, "int value of %zd bits (the limit is 8191)", nbits);
        return -1;
    }
    PyObject *args = Py_BuildValue("(ns)", nbytes, "big");
    PyObject *kw = Py_BuildValue("{s:O}", "signed", Py_True);
    PyObject *meth = PyObject_GetAttrString(v, "to_bytes");
    PyObject *b = NULL;
    if (args && kw && meth)
        b = PyObject_Call(meth, args, kw);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_XDECREF(meth);
    if (!b)
        return -1;
    sop_doc_bigint(d, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return 0;
}

static int encode_value(PyObject *v, sop_docbuf *d, int depth);

static int encode_str(PyObject *s, sop_docbuf *d, const char *what)
{
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    if (!p) {
        sopy_reraise_as(SOP_BAD_VALUE, what);
        return -1;
    }
    sop_doc_str(d, p, (size_t)n);
    return 0;
}

static int encode_map_items(PyObject *items, Py_ssize_t n, sop_docbuf *d, int depth)
{
    /* items: a sequence of (str key, value) pairs */
    sop_doc_map(d, (size_t)n);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *kv = PySequence_Fast_GET_ITEM(items, i);
        PyObject *k = PyTuple_GET_ITEM(kv, 0), *val = PyTuple_GET_ITEM(kv, 1);
        if (!PyUnicode_Check(k)) {
            sopy_raise(SOP_BAD_VALUE, "dict keys in values must be str, not %.100s",
                       Py_TYPE(k)->tp_name);
            return -1;
        }
        if (encode_str(k, d, "dict key is not valid Unicode") < 0 ||
            encode_value(val, d, depth + 1) < 0)
            return -1;
    }
    return 0;
}

static int encode_value(PyObject *v, sop_docbuf *d, int depth)
{
    if (v == Py_None) {
        sop_doc_null(d);
    } else if (PyBool_Check(v)) {
        sop_doc_bool(d, v == Py_True);
    } else if (PyLong_Check(v)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred())
            return -1;
        if (!overflow) {
            sop_doc_int(d, (int64_t)x);
        } else {
            unsigned long long u = overflow > 0 ? PyLong_AsUnsignedLongLong(v) : 0;
            if (overflow > 0 && !(u == (unsigned long long)-1 && PyErr_Occurred())) {
                sop_doc_uint(d, (uint64_t)u);
            } else {
                PyErr_Clear();
                if (encode_bigint(v, d) < 0)
                    return -1;
            }
        }
    } else if (PyFloat_Check(v)) {
        sop_doc_double(d, PyFloat_AS_DOUBLE(v));
    } else if (PyUnicode_Check(v)) {
        if (encode_str(v, d, "str value is not valid Unicode") < 0)
            return -1;
    } else if (PyBytes_Check(v)) {
        sop_doc_bytes(d, PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v));
    } else if (PyByteArray_Check(v) || PyMemoryView_Check(v)) {
        Py_buffer view;
        if (PyObject_GetBuffer(v, &view, PyBUF_SIMPLE) < 0) {
            sopy_reraise_as(SOP_BAD_VALUE, "buffer value is not contiguous");
            return -1;
        }
        sop_doc_bytes(d, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
    } else if (PyList_Check(v) || PyTuple_Check(v)) {
        if (depth >= MAX_DEPTH) {
            sopy_raise(SOP_BAD_VALUE, "value nests deeper than %d levels", MAX_DEPTH);
            return -1;
        }
        /* A list may change while encoding only through our own code, which
         * never runs Python; still, take a fast snapshot. */
        PyObject *seq = PySequence_Fast(v, "");
        if (!seq)
            return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        sop_doc_list(d, (size_t)n);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (encode_value(PySequence_Fast_GET_ITEM(seq, i), d, depth + 1) < 0) {
                Py_DECREF(seq);
                return -1;
            }
        }
        Py_DECREF(seq);
    } else if (PyDict_Check(v)) {
        if (depth >= MAX_DEPTH) {
            sopy_raise(SOP_BAD_VALUE, "value nests deeper than %d levels", MAX_DEPTH);
            return -1;
        }
        PyObject *items = PyDict_Items(v);
        if (!items)
            return -1;
        int rc = encode_map_items(items, PyList_GET_SIZE(items), d, depth);
        Py_DECREF(items);
        if (rc < 0)
            return -1;
    } else if (is_dataclass_instance(v)) {
        if (depth >= MAX_DEPTH) {
            sopy_raise(SOP_BAD_VALUE, "value nests deeper than %d levels", MAX_DEPTH);
            return -1;
        }
        /* like dataclasses.asdict, without the deep copies */
        PyObject *fields = PyObject_CallFunctionObjArgs(sopy_dc_fields, v, NULL);
        if (!fields)
            return -1;
        PyObject *seq = PySequence_Fast(fields, "dataclasses.fields() gave no sequence");
        Py_DECREF(fields);
        if (!seq)
            return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        PyObject *items = PyTuple_New(n);
        if (!items) {
            Py_DECREF(seq);
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *name = PyObject_GetAttrString(PySequence_Fast_GET_ITEM(seq, i), "name");
            PyObject *val = name ? PyObject_GetAttr(v, name) : NULL;
            PyObject *pair = val ? PyTuple_Pack(2, name, val) : NULL;
            Py_XDECREF(name);
            Py_XDECREF(val);
            if (!pair) {
                Py_DECREF(items);
                Py_DECREF(seq);
                return -1;
            }
            PyTuple_SET_ITEM(items, i, pair);
        }
        Py_DECREF(seq);
        int rc = encode_map_items(items, n, d, depth);
        Py_DECREF(items);
        if (rc < 0)
            return -1;
    } else {
        sopy_raise(SOP_BAD_VALUE,
                   "cannot store a value of type %.100s (use None, bool, int, float, str, "
                   "bytes, list, tuple, dict or a dataclass)",
                   Py_TYPE(v)->tp_name);
        return -1;
    }
    return 0;
}

int sopy_encode_value(PyObject *v, sop_docbuf *d)
{
    if (encode_value(v, d, 0) < 0)
        return -1;
    switch (d->err) {
    case SOP_OK:
        break;
    case SOP_NOMEM:
        PyErr_NoMemory();
        return -1;
    default:
        sopy_raise(d->err == SOP_INVALID ? SOP_BAD_VALUE : d->err, "cannot encode the value: %s",
                   sop_errmsg());
        return -1;
    }
    if (d->size > SOP_MAX_VALUE) {
        sopy_raise(SOP_VALUE_TOO_LARGE, "encoded value of %zu bytes (the limit is %u)", d->size,
                   (unsigned)SOP_MAX_VALUE);
        return -1;
    }
    return 0;
}

/* ---- complex keys ----------------------------------------------------------- */

int sopy_encode_key_doc(PyObject *key, sop_docbuf *d)
{
    if (!PyDict_Check(key) && !is_dataclass_instance(key)) {
        sopy_raise(SOP_BAD_KEY,
                   "this store has complex keys (is_primitive_key=False): a key is a dict or "
                   "a dataclass instance, not %.100s",
                   Py_TYPE(key)->tp_name);
        return -1;
    }
    if (encode_value(key, d, 0) < 0) {
        if (PyErr_ExceptionMatches(sopy_exc_class(SOP_BAD_VALUE)))
            sopy_reraise_as(SOP_BAD_KEY, "unsupported key");
        else if (PyErr_ExceptionMatches(sopy_exc_class(SOP_VALUE_TOO_LARGE)))
            sopy_reraise_as(SOP_KEY_TOO_LARGE, "key too large");
        return -1;
    }
    switch (d->err) {
    case SOP_OK:
        break;
    case SOP_NOMEM:
        PyErr_NoMemory();
        return -1;
    default:
        sopy_raise(SOP_BAD_KEY, "cannot encode the key: %s", sop_errmsg());
        return -1;
    }
    if (d->size > SOP_MAX_KEY_DOC) {
        sopy_raise(SOP_KEY_TOO_LARGE, "the key document is %zu bytes (the limit is %u)", d->size,
                   (unsigned)SOP_MAX_KEY_DOC);
        return -1;
    }
    return 0;
}

int sopy_key_has_field(PyObject *key, PyObject *name)
{
    if (PyDict_Check(key)) {
        PyObject *v = PyDict_GetItemWithError(key, name);
        if (!v)
            PyErr_Clear();
        return v != NULL;
    }
    PyObject *f = PyObject_GetAttrString((PyObject *)Py_TYPE(key), "__dataclass_fields__");
    if (!f) {
        PyErr_Clear();
        return 0;
    }
    int r = PyDict_Check(f) ? PyDict_Contains(f, name) : 0;
    Py_DECREF(f);
    if (r < 0) {
        PyErr_Clear();
        r = 0;
    }
    return r;
}

static PyObject *decode_next(sop_doc_reader *r, int depth);

static PyObject *doc_corrupt(int rc)
{
    if (rc == -SOP_NOMEM)
        return PyErr_NoMemory();
    return sopy_raise(SOP_CORRUPT, "cannot decode a stored document: %s", sop_errmsg());
}

static PyObject *bigint_from_bytes(const unsigned char *p, size_t n)
{
    PyObject *b = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
    PyObject *args = b ? Py_BuildValue("(Os)", b, "big") : NULL;
    PyObject *kw = Py_BuildValue("{s:O}", "signed", Py_True);
    PyObject *meth = PyObject_GetAttrString((PyObject *)&PyLong_Type, "from_bytes");
    PyObject *res = NULL;
    if (args && kw && meth)
        res = PyObject_Call(meth, args, kw);
    Py_XDECREF(b);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_XDECREF(meth);
    return res;
}

static PyObject *item_to_py(sop_doc_reader *r, const sop_doc_item *it, int depth)
{
    switch (it->type) {
    case SOP_DT_NULL:
        Py_RETURN_NONE;
    case SOP_DT_FALSE:
        Py_RETURN_FALSE;
    case SOP_DT_TRUE:
        Py_RETURN_TRUE;
    case SOP_DT_INT:
        return PyLong_FromLongLong((long long)it->i);
    case SOP_DT_UINT:
        return PyLong_FromUnsignedLongLong((unsigned long long)it->u);
    case SOP_DT_DOUBLE:
        return PyFloat_FromDouble(it->d);
    case SOP_DT_STR: {
        PyObject *s = PyUnicode_DecodeUTF8((const char *)it->p, (Py_ssize_t)it->n, "strict");
        if (!s)
            return sopy_reraise_as(SOP_CORRUPT, "stored string is not valid UTF-8");
        return s;
    }
    case SOP_DT_BYTES:
        return PyBytes_FromStringAndSize((const char *)it->p, (Py_ssize_t)it->n);
    case SOP_DT_BIGINT:
        return bigint_from_bytes(it->p, it->n);
    case SOP_DT_LIST: {
        if (depth >= MAX_DEPTH)
            return sopy_raise(SOP_CORRUPT, "stored document nests deeper than %d", MAX_DEPTH);
        PyObject *list = PyList_New((Py_ssize_t)it->n);
        if (!list)
            return NULL;
        for (size_t i = 0; i < it->n; i++) {
            PyObject *o = decode_next(r, depth + 1);
            if (!o) {
                Py_DECREF(list);
                return NULL;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)i, o);
        }
        return list;
    }
    case SOP_DT_MAP: {
        if (depth >= MAX_DEPTH)
            return sopy_raise(SOP_CORRUPT, "stored document nests deeper than %d", MAX_DEPTH);
        PyObject *dict = PyDict_New();
        if (!dict)
            return NULL;
        for (size_t i = 0; i < it->n; i++) {
            sop_doc_item k;
            int rc = sop_doc_next(r, &k);
            if (rc <= 0 || k.type != SOP_DT_STR) {
                Py_DECREF(dict);
                if (rc < 0)
                    return doc_corrupt(rc);
                return sopy_raise(SOP_CORRUPT, "stored document: map key is not a string");
            }
            PyObject *ko = PyUnicode_DecodeUTF8((const char *)k.p, (Py_ssize_t)k.n, "strict");
            if (!ko) {
                Py_DECREF(dict);
                return sopy_reraise_as(SOP_CORRUPT, "stored map key is not valid UTF-8");
            }
            PyObject *vo = decode_next(r, depth + 1);
            if (!vo || PyDict_SetItem(dict, ko, vo) < 0) {
                Py_DECREF(ko);
                Py_XDECREF(vo);
                Py_DECREF(dict);
                return NULL;
            }
            Py_DECREF(ko);
            Py_DECREF(vo);
        }
        return dict;
    }
    default:
        return sopy_raise(SOP_CORRUPT, "stored document: unknown item type %d", it->type);
    }
}

static PyObject *decode_next(sop_doc_reader *r, int depth)
{
    sop_doc_item it;
    int rc = sop_doc_next(r, &it);
    if (rc < 0)
        return doc_corrupt(rc);
    if (rc == 0)
        return sopy_raise(SOP_CORRUPT, "stored document is truncated");
    return item_to_py(r, &it, depth);
}

PyObject *sopy_decode_value(const void *p, size_t n)
{
    if (n == 0)
        Py_RETURN_NONE;
    sop_doc_reader r;
    sop_doc_item extra;
    sop_doc_reader_init(&r, p, n);
    PyObject *o = decode_next(&r, 0);
    if (!o)
        return NULL;
    int rc = sop_doc_next(&r, &extra);
    if (rc != 0) {
        Py_DECREF(o);
        if (rc < 0)
            return doc_corrupt(rc);
        return sopy_raise(SOP_CORRUPT, "stored document has trailing bytes");
    }
    return o;
}

/* ---- ids ------------------------------------------------------------- */

PyObject *sopy_id_str(const sop_id *id)
{
    /* the text is ASCII: format it straight into a new 1-byte str (whose
     * buffer has room for the 37th byte, the NUL) */
    PyObject *s = PyUnicode_New(36, 127);
    if (s)
        sop_id_format(id, (char *)PyUnicode_1BYTE_DATA(s));
    return s;
}

int sopy_parse_id(PyObject *o, sop_id *id)
{
    memset(id, 0, sizeof *id);
    if (o == Py_None)
        return 0;
    PyObject *s = NULL;
    if (PyUnicode_Check(o)) {
        s = o;
        Py_INCREF(s);
    } else if (sopy_UUID && PyObject_IsInstance(o, sopy_UUID) == 1) {
        s = PyObject_Str(o);
        if (!s)
            return -1;
    } else if (PyBytes_Check(o) && PyBytes_GET_SIZE(o) == 16) {
        memcpy(id->bytes, PyBytes_AS_STRING(o), 16);
        return 0;
    } else {
        sopy_raise(SOP_INVALID, "an item id must be a UUID str or uuid.UUID, not %.100s",
                   Py_TYPE(o)->tp_name);
        return -1;
    }
    Py_ssize_t n;
    const char *t = PyUnicode_AsUTF8AndSize(s, &n);
    if (!t) {
        Py_DECREF(s);
        sopy_reraise_as(SOP_INVALID, "item id is not valid text");
        return -1;
    }
    if (sop_id_parse(t, (size_t)n, id) != SOP_OK) {
        sopy_raise(SOP_INVALID, "%R is not a UUID", s);
        Py_DECREF(s);
        return -1;
    }
    Py_DECREF(s);
    return 0;
}

/* ---- module-level helpers exposed to Python (for codecs written in Python
 * and for tests) ------------------------------------------------------------ */

/* encode_key(fields, descending=None) -> bytes: fields is a sequence of
 * primitive values; descending an optional sequence of bools. */
PyObject *sopy_py_encode_key(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"fields", "descending", NULL};
    PyObject *fields, *desc = Py_None;
    (void)mod;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:encode_key", kwlist, &fields, &desc))
        return NULL;
    PyObject *seq = PySequence_Fast(fields, "fields must be a sequence");
    if (!seq)
        return NULL;
    PyObject *dseq = desc == Py_None ? NULL : PySequence_Fast(desc, "descending must be a sequence");
    if (desc != Py_None && !dseq) {
        Py_DECREF(seq);
        return NULL;
    }
    sop_keybuf kb;
    sop_key_init(&kb);
    PyObject *res = NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        int d = 0;
        if (dseq && i < PySequence_Fast_GET_SIZE(dseq)) {
            d = PyObject_IsTrue(PySequence_Fast_GET_ITEM(dseq, i));
            if (d < 0)
                goto done;
        }
        if (encode_key_field(PySequence_Fast_GET_ITEM(seq, i), d, &kb, NULL) < 0)
            goto done;
    }
    res = PyBytes_FromStringAndSize((const char *)kb.data, (Py_ssize_t)kb.size);
done:
    sop_key_free(&kb);
    Py_DECREF(seq);
    Py_XDECREF(dseq);
    return res;
}

/* decode_key(data) -> list of field values */
PyObject *sopy_py_decode_key(PyObject *mod, PyObject *arg)
{
    Py_buffer view;
    (void)mod;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *res = decode_key_fields(view.buf, (size_t)view.len, NULL);
    PyBuffer_Release(&view);
    return res;
}

/* encode_value(obj) -> bytes */
PyObject *sopy_py_encode_value(PyObject *mod, PyObject *arg)
{
    (void)mod;
    sop_docbuf d;
    sop_doc_init(&d);
    PyObject *res = NULL;
    if (sopy_encode_value(arg, &d) == 0)
        res = PyBytes_FromStringAndSize((const char *)d.data, (Py_ssize_t)d.size);
    sop_doc_free(&d);
    return res;
}

/* decode_value(data) -> object */
PyObject *sopy_py_decode_value(PyObject *mod, PyObject *arg)
{
    Py_buffer view;
    (void)mod;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *res = sopy_decode_value(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return res;
}
