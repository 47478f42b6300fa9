/* The object slots of a record class (its `__slots__`), found and filled from C: shared by `_records.c` (records made
 * from Messages, the run readers), `_rdkafka.c` (records made from librdkafka's messages) and `_intake_run.c`. */
#ifndef LEADBUS_SLOTS_H
#define LEADBUS_SLOTS_H

#include <Python.h>
#include <structmember.h>

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* The offset in `cls`'s instances of the slot `name` (a writable object slot of `cls` or a base), or -1 (error set). */
static inline Py_ssize_t slot_offset(PyTypeObject *cls, PyObject *name) {
    PyObject *descr = PyObject_GetAttr((PyObject *)cls, name);
    if (descr == NULL)
        return -1;
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *def = ((PyMemberDescrObject *)descr)->d_member;
        if (def->type == T_OBJECT_EX && !(def->flags & READONLY)
            && PyType_IsSubtype(cls, ((PyDescrObject *)descr)->d_type) && def->offset > 0
            && def->offset + (Py_ssize_t)sizeof(PyObject *) <= cls->tp_basicsize)
            offset = def->offset;
    }
    Py_DECREF(descr);
    if (offset < 0)
        PyErr_Format(PyExc_TypeError, "%R is not an object slot of %s", name, cls->tp_name);
    return offset;
}

/* `slot_offset` of a name given as a C string. */
static inline Py_ssize_t slot_offset_named(PyTypeObject *cls, const char *name) {
    PyObject *text = PyUnicode_FromString(name);
    if (text == NULL)
        return -1;
    Py_ssize_t offset = slot_offset(cls, text);
    Py_DECREF(text);
    return offset;
}

/* A record class's layout as the record makers fill it: the offsets of its `n_fields` `fields` (the values each record
 * is made with), and of every other of its `slots` with the value `prototype` holds there (a new reference each; at
 * most `max`), in `other_offsets` / `other_values` / `*n_others`. -1 with an error set when a name is no object slot
 * or the prototype holds no value. */
static inline int record_layout(PyTypeObject *cls, PyObject *slots, PyObject *fields, PyObject *prototype,
                                int n_fields, Py_ssize_t *field_offsets, Py_ssize_t *other_offsets,
                                PyObject **other_values, Py_ssize_t max, Py_ssize_t *n_others) {
    for (int f = 0; f < n_fields; f++)
        if ((field_offsets[f] = slot_offset(cls, PyTuple_GET_ITEM(fields, f))) < 0)
            return -1;
    Py_ssize_t n = 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(slots); k++) {
        Py_ssize_t offset = slot_offset(cls, PyTuple_GET_ITEM(slots, k));
        if (offset < 0)
            return -1;
        int field = 0;
        for (int f = 0; f < n_fields; f++)
            field |= field_offsets[f] == offset;
        if (field)
            continue;
        PyObject *value = SLOT(prototype, offset);
        if (value == NULL || n == max) {
            PyErr_Format(PyExc_TypeError, "the prototype has no value for %R", PyTuple_GET_ITEM(slots, k));
            return -1;
        }
        other_offsets[n] = offset;
        other_values[n] = Py_NewRef(value);
        *n_others = ++n;
    }
    return 0;
}

#endif
