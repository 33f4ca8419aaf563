/*
 * _sop_item.c - sop.btree.Item without running Python code.
 *
 * Every read builds Items (get_current_item, get_items, get_values, ...),
 * every write reads their fields, and cookbook code calls Item(key=...,
 * value=...) once per item.  While the registered class is still the plain
 * dataclass it was when registered (its version tag unchanged: nobody patched
 * __init__, added __post_init__ or replaced a field), this file
 *   - makes instances with tp_alloc and stores the three fields straight
 *     into their __slots__ (or through the generic setattr when the class
 *     has an instance dict, as on Python 3.9);
 *   - reads the fields of an exact Item from its slots;
 *   - installs a C constructor as the class's tp_vectorcall, with the
 *     signature and error messages of the dataclass __init__
 *     (key, value=None, id=NIL_UUID).
 * Any change to the class turns all of this off: the constructor then calls
 * type.__call__ as CPython would, and instances are built by calling the
 * class.  tp_vectorcall is never inherited, so subclasses are untouched.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "_sop_int.h"

PyObject *sopy_Item;
static unsigned int item_version;   /* version tag when registered; 0: not plain */
static Py_ssize_t slot_off[3];      /* key, value, id: byte offsets; 0: no slots */
static PyObject *dflt_value, *dflt_id;

int sopy_item_plain(void)
{
    return sopy_Item && sopy_version_is(sopy_Item, item_version);
}

/* Is cls a dataclass whose __init__ only sets key, value and id (in that
 * order), on instances made by object.__new__ with the generic setattr?
 * Sets the field defaults when it is. */
static int is_plain_item_class(PyObject *cls)
{
    PyTypeObject *tp = (PyTypeObject *)cls;
    if (tp->tp_new != PyBaseObject_Type.tp_new || tp->tp_setattro != PyObject_GenericSetAttr ||
        PyObject_HasAttrString(cls, "__post_init__"))
        return 0;
    PyObject *f = PyObject_GetAttrString(cls, "__dataclass_fields__");
    int ok = 0;
    if (f && PyDict_Check(f) && PyDict_GET_SIZE(f) == 3) {
        PyObject *k, *v;
        Py_ssize_t pos = 0, i = 0;
        PyObject *want[3] = {sopy_str_key, sopy_str_value, sopy_str_id};
        PyObject *dflt[3] = {NULL, NULL, NULL};
        ok = 1;
        while (PyDict_Next(f, &pos, &k, &v)) {
            if (PyUnicode_Compare(k, want[i]) != 0)
                ok = 0;
            else if (!(dflt[i] = PyObject_GetAttrString(v, "default")))
                ok = 0;
            i++;
        }
        if (ok && dflt[1] && dflt[2]) {
            Py_XSETREF(dflt_value, dflt[1]);
            Py_XSETREF(dflt_id, dflt[2]);
            dflt[1] = dflt[2] = NULL;
        } else {
            ok = 0;
        }
        for (i = 0; i < 3; i++)
            Py_XDECREF(dflt[i]);
    }
    Py_XDECREF(f);
    PyErr_Clear();
    return ok;
}

Py_ssize_t sopy_own_slot(PyTypeObject *tp, PyObject *name)
{
    PyObject *d = tp->tp_dict ? PyDict_GetItemWithError(tp->tp_dict, name) : NULL;
    if (!d || Py_TYPE(d) != &PyMemberDescr_Type) {
        PyErr_Clear();
        return 0;
    }
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type != T_OBJECT_EX || (m->flags & READONLY) || m->offset <= 0)
        return 0;
    return m->offset;
}

/* type.__call__(cls, *args, **kwargs) from vectorcall arguments. */
static PyObject *call_class(PyObject *cls, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    PyObject *tuple = PyTuple_New(nargs), *kw = NULL, *res = NULL;
    if (!tuple)
        return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(tuple, i, args[i]);
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nkw && !(kw = PyDict_New()))
        goto out;
    for (Py_ssize_t i = 0; i < nkw; i++)
        if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
            goto out;
    res = PyType_Type.tp_call(cls, tuple, kw);
out:
    Py_DECREF(tuple);
    Py_XDECREF(kw);
    return res;
}

static int field_index(PyObject *name)
{
    PyObject *want[3] = {sopy_str_key, sopy_str_value, sopy_str_id};
    for (int i = 0; i < 3; i++)
        if (name == want[i])
            return i;
    for (int i = 0; i < 3; i++)
        if (PyUnicode_Check(name) && PyUnicode_Compare(name, want[i]) == 0)
            return i;
    return -1;
}

/* Item(key, value=None, id=NIL_UUID): the dataclass __init__, in C. */
static PyObject *item_vectorcall(PyObject *cls, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (cls != sopy_Item || !sopy_item_plain())
        return call_class(cls, args, nargs, kwnames);
    const char *name = ((PyTypeObject *)cls)->tp_name;
    PyObject *v[3] = {NULL, NULL, NULL};
    if (nargs > 3)
        return PyErr_Format(PyExc_TypeError,
                            "%s.__init__() takes from 2 to 4 positional arguments but %zd "
                            "were given",
                            name, nargs + 1);
    for (Py_ssize_t i = 0; i < nargs; i++)
        v[i] = args[i];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *kn = PyTuple_GET_ITEM(kwnames, i);
        int f = field_index(kn);
        if (f < 0)
            return PyErr_Format(PyExc_TypeError,
                                "%s.__init__() got an unexpected keyword argument '%S'", name, kn);
        if (v[f])
            return PyErr_Format(PyExc_TypeError,
                                "%s.__init__() got multiple values for argument '%S'", name, kn);
        v[f] = args[nargs + i];
    }
    if (!v[0])
        return PyErr_Format(PyExc_TypeError,
                            "%s.__init__() missing 1 required positional argument: 'key'", name);
    return sopy_new_item(v[0], v[1] ? v[1] : dflt_value, v[2] ? v[2] : dflt_id);
}

int sopy_item_register(PyObject *cls)
{
    PyTypeObject *tp = (PyTypeObject *)cls;
    if (sopy_Item && ((PyTypeObject *)sopy_Item)->tp_vectorcall == item_vectorcall)
        ((PyTypeObject *)sopy_Item)->tp_vectorcall = NULL;
    Py_INCREF(cls);
    Py_XSETREF(sopy_Item, cls);
    item_version = 0;
    memset(slot_off, 0, sizeof slot_off);
    if (!is_plain_item_class(cls))
        return 0;
    /* Remember the version tag: changing the class (e.g. patching its
     * __init__) changes it and turns the fast paths off. */
    item_version = sopy_type_version(cls, sopy_str_init);
    PyObject *names[3] = {sopy_str_key, sopy_str_value, sopy_str_id};
    Py_ssize_t off[3];
    int slots = 1;
    for (int i = 0; i < 3; i++)
        slots &= (off[i] = sopy_own_slot(tp, names[i])) > 0;
#ifdef Py_TPFLAGS_MANAGED_DICT
    slots &= !(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT);
#endif
    if (slots && tp->tp_dictoffset == 0)
        memcpy(slot_off, off, sizeof off);
    if (item_version && tp->tp_vectorcall == NULL)
        tp->tp_vectorcall = item_vectorcall;
    return 0;
}

PyObject *sopy_new_item(PyObject *key, PyObject *value, PyObject *id)
{
    if (!sopy_Item)
        return PyTuple_Pack(3, key, value, id);
    if (!sopy_item_plain())
        return PyObject_CallFunctionObjArgs(sopy_Item, key, value, id, NULL);
    PyTypeObject *tp = (PyTypeObject *)sopy_Item;
    if (slot_off[0]) {
        PyObject *item = tp->tp_alloc(tp, 0);
        if (!item)
            return NULL;
        PyObject *f[3] = {key, value, id};
        for (int i = 0; i < 3; i++) {
            Py_INCREF(f[i]);
            *(PyObject **)((char *)item + slot_off[i]) = f[i];
        }
        return item;
    }
    /* An instance dict: what the dataclass __init__ does, without running
     * Python code. */
    PyObject *noargs = PyTuple_New(0);
    PyObject *item = noargs ? tp->tp_new(tp, noargs, NULL) : NULL;
    Py_XDECREF(noargs);
    if (item && (PyObject_GenericSetAttr(item, sopy_str_key, key) < 0 ||
                 PyObject_GenericSetAttr(item, sopy_str_value, value) < 0 ||
                 PyObject_GenericSetAttr(item, sopy_str_id, id) < 0))
        Py_CLEAR(item);
    return item;
}

PyObject *sopy_item_field(PyObject *item, int which)
{
    static PyObject **const names[3] = {&sopy_str_key, &sopy_str_value, &sopy_str_id};
    if (slot_off[0] && (PyObject *)Py_TYPE(item) == sopy_Item && sopy_item_plain()) {
        PyObject *v = *(PyObject **)((char *)item + slot_off[which]);
        if (v) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(item, *names[which]);
}

int sopy_is_item(PyObject *o)
{
    if (!sopy_Item)
        return 0;
    if ((PyObject *)Py_TYPE(o) == sopy_Item)
        return 1;
    int r = PyObject_IsInstance(o, sopy_Item);
    if (r < 0) {
        PyErr_Clear();
        return 0;
    }
    return r;
}
