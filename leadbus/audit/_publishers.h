/* The accepted leads' publishers `leadbus.audit._records.RunReader.accepted_tally` counts, for `_records.c`: a table
 * kept across calls (open addressing by the contents of the agency's and province's strs). */
#ifndef LEADBUS_PUBLISHERS_H
#define LEADBUS_PUBLISHERS_H

#include <Python.h>

static int same_str(PyObject *a, PyObject *b);

/* The publishers `accepted_tally` met, kept across calls by their agency's and province's contents (the picker makes
 * new strs for each record): each with its "agency.province" str made once and its (name, who) key, and what the
 * current call counted under it, written to the tally when the call ends (or before the table changes), in the order
 * first met in the call: the same keys in the same order and the same sums as one record after the other, without
 * the str, the key and the int made per record. Past PUBLISHERS_MAX publishers the table starts over. */
#define PUBLISHERS_MAX 4096

typedef struct Publisher {
    Py_hash_t hash;  /* of the contents; 0: an empty place */
    PyObject *agency, *province, *who, *key;  /* references held; `key` (name, who), or NULL */
    Py_ssize_t count;  /* in the current call */
} Publisher;

typedef struct {
    Publisher *slots;
    Py_ssize_t size, used;
    PyObject *dot;  /* "." (borrowed from the reader) */
} PublisherTable;

static void forget_publishers(PublisherTable *self) {
    for (Py_ssize_t k = 0; k < self->size; k++) {
        Publisher *p = &self->slots[k];
        if (p->hash == 0)
            continue;
        Py_DECREF(p->agency);
        Py_DECREF(p->province);
        Py_DECREF(p->who);
        Py_XDECREF(p->key);
    }
    PyMem_Free(self->slots);
    self->slots = NULL;
    self->size = self->used = 0;
}

/* FNV-1a over a str's kind and code units, from `h` on */
static Py_uhash_t text_hash(PyObject *text, Py_uhash_t h) {
    const unsigned char *data = PyUnicode_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text) * PyUnicode_KIND(text);
    h = (h ^ (Py_uhash_t)PyUnicode_KIND(text)) * 1099511628211u;
    for (Py_ssize_t k = 0; k < size; k++)
        h = (h ^ data[k]) * 1099511628211u;
    return (h ^ 0xFF) * 1099511628211u;  /* the end of the str: ("A.B", "C") and ("A", "B.C") hash apart */
}

/* tally[key] += count */
static int add_key(PyObject *tally, PyObject *key, Py_ssize_t count) {
    PyObject *had = PyDict_GetItemWithError(tally, key), *sum = NULL;
    if (had == NULL && PyErr_Occurred())
        return -1;
    PyObject *more = PyLong_FromSsize_t(count);
    if (more != NULL)
        sum = had != NULL ? PyNumber_Add(had, more) : Py_NewRef(more);
    Py_XDECREF(more);
    int failed = sum == NULL || PyDict_SetItem(tally, key, sum) < 0;
    Py_XDECREF(sum);
    return failed ? -1 : 0;
}

/* The counts of the publishers `touched[0:*n]` (in the order first met) written to `tally`, and cleared. An error
 * raised before is kept (the counts are written first, as one record after the other would have counted them). */
static int write_counts(PublisherTable *self, PyObject *tally, PyObject *name, Py_ssize_t *touched, Py_ssize_t *n) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    int failed = 0;
    for (Py_ssize_t k = 0; k < *n; k++) {
        Publisher *p = &self->slots[touched[k]];
        if (!failed && (p->key == NULL || PyTuple_GET_ITEM(p->key, 0) != name)) {
            Py_XSETREF(p->key, PyTuple_Pack(2, name, p->who));
            failed = p->key == NULL;
        }
        if (!failed && add_key(tally, p->key, p->count) < 0)
            failed = 1;
        p->count = 0;
    }
    *n = 0;
    if (type != NULL) {
        if (failed)
            PyErr_Clear();
        PyErr_Restore(type, value, traceback);
        return -1;
    }
    return failed ? -1 : 0;
}

/* The place of (agency, province) in the table, made (its `who` joined) when new: -1 on an error. The table may be
 * grown or started over: the counts touched are written first. */
static Py_ssize_t publisher_at(PublisherTable *self, PyObject *agency, PyObject *province, PyObject *tally, PyObject *name,
                               Py_ssize_t *touched, Py_ssize_t *n) {
    Py_hash_t hash = (Py_hash_t)text_hash(province, text_hash(agency, 14695981039346656037u));
    if (hash == 0)
        hash = 1;
    Py_ssize_t mask = self->size - 1;
    if (self->size) {
        for (Py_ssize_t at = (Py_ssize_t)((Py_uhash_t)hash & (Py_uhash_t)mask);; at = (at + 1) & mask) {
            Publisher *p = &self->slots[at];
            if (p->hash == 0)
                break;
            if (p->hash == hash && same_str(p->agency, agency) && same_str(p->province, province))
                return at;
        }
    }
    if (2 * (self->used + 1) > self->size) {  /* grown (or started over), its counts written */
        if (write_counts(self, tally, name, touched, n) < 0)
            return -1;
        Py_ssize_t size = self->size ? 2 * self->size : 64;
        if (self->used >= PUBLISHERS_MAX) {
            forget_publishers(self);
            size = 64;
        }
        Publisher *old = self->slots, *table = PyMem_Calloc((size_t)size, sizeof(Publisher));
        if (table == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t k = 0; k < self->size; k++) {
            if (old[k].hash == 0)
                continue;
            Py_ssize_t at = (Py_ssize_t)((Py_uhash_t)old[k].hash & (Py_uhash_t)(size - 1));
            while (table[at].hash != 0)
                at = (at + 1) & (size - 1);
            table[at] = old[k];
        }
        PyMem_Free(old);
        self->slots = table;
        self->size = size;
        mask = size - 1;
    }
    PyObject *parts[3] = {agency, self->dot, province};  /* f"{agency}.{province}" */
    PyObject *joined = PyTuple_New(3);
    if (joined == NULL)
        return -1;
    for (int k = 0; k < 3; k++)
        PyTuple_SET_ITEM(joined, k, Py_NewRef(parts[k]));
    PyObject *empty = PyUnicode_New(0, 0);
    PyObject *who = empty == NULL ? NULL : PyUnicode_Join(empty, joined);
    Py_XDECREF(empty);
    Py_DECREF(joined);
    if (who == NULL)
        return -1;
    Py_ssize_t at = (Py_ssize_t)((Py_uhash_t)hash & (Py_uhash_t)mask);
    while (self->slots[at].hash != 0)
        at = (at + 1) & mask;
    self->slots[at] = (Publisher){hash, Py_NewRef(agency), Py_NewRef(province), who, NULL, 0};
    self->used++;
    return at;
}

#endif
