/* The replay's field picker in C (`leadbus.audit.native_picker` builds its programs; `leadbus.audit.picker` is the
 * reference it must agree with).
 *
 * A program is a flat array of ints, compiled in Python from the writer schema by the same walk as the Python picker
 * (`picker._compile`): it passes over unwanted values by their lengths and reads the wanted ones into slots of the
 * returned tuple. It only ever accepts bytes the Python picker accepts, with the same values: wherever it is unsure (a
 * varint longer than nine bytes, bytes that end early, an invalid UTF-8 string, any error) it hands the bytes to the
 * Python picker (`fallback`), whose answer (values or exception) is the one given. So it may be stricter, never more
 * lenient.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>

enum {
    OP_END = 0,
    OP_VARINT = 1,   /* pass over a varint of any length */
    OP_FIXED = 2,    /* n: pass over n bytes */
    OP_SIZED = 3,    /* pass over a string or bytes */
    OP_UNION = 4,    /* nb, then per branch: its length, its program (ending OP_END) */
    OP_ARRAY = 5,    /* len, the item's program (ending OP_END): the blocks of an array or map */
    /* a union of null and one value passed over by a single skip (most optional fields): OP_UNION's judgment of the
     * branch's byte without a nested program */
    OP_OPT_VARINT = 6, /* null index */
    OP_OPT_SIZED = 7,  /* null index */
    OP_OPT_FIXED = 8,  /* null index, n */
    OP_STRING = 10,  /* slot */
    OP_BYTES = 11,   /* slot */
    OP_INT = 12,     /* slot */
    OP_LONG = 13,    /* slot */
    OP_BOOL = 14,    /* slot */
    OP_ENUM = 15,    /* slot, index of the symbols' tuple in consts */
    OP_NULLABLE = 16,/* null index, then one value op */
    OP_NONE = 17     /* slot */
};

#define KEPT 128       /* strings kept (a power of two) */
#define KEPT_BYTES 16  /* the longest kept: a code, a name's abbreviation; never a lead's id nor a digest */

typedef struct {
    PyObject_HEAD
    int *ops;
    Py_ssize_t n_ops;
    Py_ssize_t n_values;
    PyObject *consts;   /* tuple of the enums' symbol tuples */
    PyObject *fallback; /* the Python picker */
    vectorcallfunc vectorcall;
    /* short ASCII strings read before, by a hash of their bytes (a lead's publisher: a dozen agencies, a few dozen
     * provinces, met again and again): the same bytes give the same str again instead of a new one, decoded then
     * freed with the record */
    PyObject *kept[KEPT];
} Picker;

static PyTypeObject *module_picker_type;

typedef struct {
    const unsigned char *data;
    Py_ssize_t pos;
    Py_ssize_t end;
    PyObject **slots;
    PyObject *consts;
    PyObject **kept;    /* the picker's `kept` strings (NULL: none kept) */
} Reading;

/* A zig-zag varint of at most nine bytes (the Python reader takes ten: the tenth is left to it). 0 on success. */
static int read_long(Reading *r, int64_t *out) {
    uint64_t n = 0;
    int shift = 0;
    for (;;) {
        if (r->pos >= r->end || shift > 56)
            return -1;
        unsigned char b = r->data[r->pos++];
        n |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80)
            break;
        shift += 7;
    }
    *out = (int64_t)(n >> 1) ^ -(int64_t)(n & 1);
    return 0;
}

static int read_sized(Reading *r, Py_ssize_t *start, Py_ssize_t *size) {
    int64_t n;
    if (read_long(r, &n) < 0 || n < 0 || n > r->end - r->pos)
        return -1;
    *start = r->pos;
    *size = (Py_ssize_t)n;
    r->pos += (Py_ssize_t)n;
    return 0;
}

/* Past a string or bytes (read_sized's judgment), a length of one byte read at once. */
static inline int skip_sized(Reading *r) {
    if (r->pos < r->end && r->data[r->pos] < 0x80) {
        unsigned char b = r->data[r->pos];
        Py_ssize_t n = b >> 1;
        if (b & 1 || n > r->end - r->pos - 1)
            return -1;
        r->pos += 1 + n;
        return 0;
    }
    Py_ssize_t start, size;
    return read_sized(r, &start, &size);
}

static void put(Reading *r, int slot, PyObject *value) {
    Py_XSETREF(r->slots[slot], value);
}

/* One value op at ops[i]; the index after it, or -1. */
static Py_ssize_t value(Reading *r, const int *ops, Py_ssize_t i) {
    int op = ops[i];
    switch (op) {
    case OP_NONE:
        Py_INCREF(Py_None);
        put(r, ops[i + 1], Py_None);
        return i + 2;
    case OP_STRING:
    case OP_BYTES: {
        Py_ssize_t start, size;
        if (read_sized(r, &start, &size) < 0)
            return -1;
        const char *text = (const char *)r->data + start;
        if (op == OP_BYTES) {
            PyObject *v = PyBytes_FromStringAndSize(text, size);
            if (v == NULL)
                return -1;
            put(r, ops[i + 1], v);
            return i + 2;
        }
        /* the same bytes as an ASCII string kept are that string (what decoding them gives, equal) */
        PyObject **kept = NULL;
        if (r->kept != NULL && size <= KEPT_BYTES) {
            uint32_t h = 2166136261u;  /* FNV-1a */
            for (Py_ssize_t k = 0; k < size; k++)
                h = (h ^ (unsigned char)text[k]) * 16777619u;
            kept = &r->kept[(h ^ (h >> 16)) & (KEPT - 1)];
            if (*kept != NULL && PyUnicode_GET_LENGTH(*kept) == size
                && memcmp(PyUnicode_DATA(*kept), text, (size_t)size) == 0) {
                put(r, ops[i + 1], Py_NewRef(*kept));
                return i + 2;
            }
        }
        PyObject *v = PyUnicode_DecodeUTF8(text, size, NULL);
        if (v == NULL)
            return -1;
        if (kept != NULL && PyUnicode_IS_ASCII(v))
            Py_XSETREF(*kept, Py_NewRef(v));
        put(r, ops[i + 1], v);
        return i + 2;
    }
    case OP_INT:
    case OP_LONG: {
        int64_t n;
        if (read_long(r, &n) < 0)
            return -1;
        if (op == OP_INT && (n < -2147483648LL || n > 2147483647LL))
            return -1;
        PyObject *v = PyLong_FromLongLong(n);
        if (v == NULL)
            return -1;
        put(r, ops[i + 1], v);
        return i + 2;
    }
    case OP_BOOL: {
        if (r->pos >= r->end)
            return -1;
        unsigned char b = r->data[r->pos++];
        if (b > 1)
            return -1;
        PyObject *v = b ? Py_True : Py_False;
        Py_INCREF(v);
        put(r, ops[i + 1], v);
        return i + 2;
    }
    case OP_ENUM: {
        int64_t n;
        if (read_long(r, &n) < 0 || n < 0)
            return -1;
        PyObject *symbols = PyTuple_GET_ITEM(r->consts, ops[i + 2]);
        if (n >= PyTuple_GET_SIZE(symbols))
            return -1;
        PyObject *v = PyTuple_GET_ITEM(symbols, (Py_ssize_t)n);
        Py_INCREF(v);
        put(r, ops[i + 1], v);
        return i + 3;
    }
    case OP_NULLABLE: {
        int null_index = ops[i + 1];
        if (r->pos >= r->end)
            return -1;
        unsigned char b = r->data[r->pos++];
        if (b == 2 * null_index) {
            /* the slot of the value op that follows, whatever op it is, is its second int */
            Py_INCREF(Py_None);
            put(r, ops[i + 3], Py_None);
            Py_ssize_t j = i + 2;
            return ops[j] == OP_ENUM ? j + 3 : ops[j] == OP_NULLABLE ? -1 : j + 2;
        }
        if (b != 2 * (1 - null_index))
            return -1;
        return value(r, ops, i + 2);
    }
    }
    return -1;
}

/* The ops from i to their OP_END; the index after it, or -1. */
static Py_ssize_t run(Reading *r, const int *ops, Py_ssize_t i) {
    for (;;) {
        int op = ops[i];
        switch (op) {
        case OP_END:
            return i + 1;
        case OP_VARINT:
            for (;;) {
                if (r->pos >= r->end)
                    return -1;
                if (r->data[r->pos++] < 0x80)
                    break;
            }
            i += 1;
            break;
        case OP_FIXED:
            if (ops[i + 1] > r->end - r->pos)
                return -1;
            r->pos += ops[i + 1];
            i += 2;
            break;
        case OP_SIZED:
            if (skip_sized(r) < 0)
                return -1;
            i += 1;
            break;
        case OP_OPT_VARINT:
        case OP_OPT_SIZED:
        case OP_OPT_FIXED: {
            if (r->pos >= r->end)
                return -1;
            unsigned char b = r->data[r->pos++];
            int null_index = ops[i + 1];
            Py_ssize_t next = i + (op == OP_OPT_FIXED ? 3 : 2);
            if (b == 2 * null_index) {
                i = next;
                break;
            }
            if (b != 2 * (1 - null_index))
                return -1;
            if (op == OP_OPT_SIZED) {
                if (skip_sized(r) < 0)
                    return -1;
            } else if (op == OP_OPT_FIXED) {
                if (ops[i + 2] > r->end - r->pos)
                    return -1;
                r->pos += ops[i + 2];
            } else {
                for (;;) {
                    if (r->pos >= r->end)
                        return -1;
                    if (r->data[r->pos++] < 0x80)
                        break;
                }
            }
            i = next;
            break;
        }
        case OP_UNION: {
            int nb = ops[i + 1];
            if (r->pos >= r->end)
                return -1;
            unsigned char b = r->data[r->pos++];
            if (b & 1 || b / 2 >= nb)
                return -1;
            Py_ssize_t j = i + 2;
            for (int k = 0; k < nb; k++) {
                if (k == b / 2 && run(r, ops, j + 1) < 0)
                    return -1;
                j += 1 + ops[j];
            }
            i = j;
            break;
        }
        case OP_ARRAY: {
            Py_ssize_t item = i + 2;
            for (;;) {
                int64_t count, blocksize;
                if (read_long(r, &count) < 0)
                    return -1;
                if (count == 0)
                    break;
                if (count < 0) {
                    count = -count;
                    if (read_long(r, &blocksize) < 0)
                        return -1;
                }
                if (count > r->end - r->pos) /* each item takes a byte at least */
                    return -1;
                if (ops[item] == OP_SIZED && ops[item + 1] == OP_END) { /* strings: no nested run per item */
                    for (int64_t k = 0; k < count; k++)
                        if (skip_sized(r) < 0)
                            return -1;
                    continue;
                }
                for (int64_t k = 0; k < count; k++)
                    if (run(r, ops, item) < 0)
                        return -1;
            }
            i = item + ops[i + 1];
            break;
        }
        default: {
            Py_ssize_t next = value(r, ops, i);
            if (next < 0)
                return -1;
            i = next;
        }
        }
    }
}

static PyObject *pick(Picker *self, PyObject *data) {
    if (!PyBytes_CheckExact(data))
        return PyObject_CallOneArg(self->fallback, data);
    PyObject *slots[64] = {NULL};
    Reading r = {(const unsigned char *)PyBytes_AS_STRING(data), 10, PyBytes_GET_SIZE(data), slots, self->consts,
                 self->kept};
    Py_ssize_t n = self->n_values;
    int ok = run(&r, self->ops, 0) >= 0 && r.pos <= r.end;
    PyObject *result = NULL;
    if (ok) {
        for (Py_ssize_t k = 0; k < n; k++)
            if (slots[k] == NULL)
                ok = 0;
    }
    if (ok) {
        result = PyTuple_New(n);
        if (result != NULL) {
            for (Py_ssize_t k = 0; k < n; k++) {
                PyTuple_SET_ITEM(result, k, slots[k]);
                slots[k] = NULL;
            }
        }
    }
    for (Py_ssize_t k = 0; k < n; k++)
        Py_XDECREF(slots[k]);
    if (result != NULL)
        return result;
    PyErr_Clear(); /* a string that is not UTF-8, no memory …: the Python picker judges the bytes */
    return PyObject_CallOneArg(self->fallback, data);
}

/* end_of(picker, data): the position after the body `picker`'s program passes over (a program of skips alone, made
 * from the whole writer schema: `native_picker.native_body_end`), or, wherever it is unsure, what its fallback (the
 * Python pass, `picker.body_end`) gives for the bytes: a position or an exception. */
static PyObject *end_of(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyObject_TypeCheck(args[0], module_picker_type)) {
        PyErr_SetString(PyExc_TypeError, "end_of(picker, data)");
        return NULL;
    }
    Picker *self = (Picker *)args[0];
    PyObject *data = args[1];
    if (self->n_values != 0) {
        PyErr_SetString(PyExc_ValueError, "end_of: a program of skips alone (no values)");
        return NULL;
    }
    if (PyBytes_CheckExact(data)) {
        Reading r = {(const unsigned char *)PyBytes_AS_STRING(data), 10, PyBytes_GET_SIZE(data), NULL, self->consts,
                     NULL};
        if (r.end >= 10 && run(&r, self->ops, 0) >= 0 && r.pos <= r.end)
            return PyLong_FromSsize_t(r.pos);
    }
    return PyObject_CallOneArg(self->fallback, data);
}

static PyObject *Picker_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "a picker takes one argument: the record's value");
        return NULL;
    }
    return pick((Picker *)self, args[0]);
}

static PyObject *Picker_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *ops, *consts, *fallback;
    Py_ssize_t n_values;
    static char *names[] = {"ops", "consts", "values", "fallback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!nO", names, &PyTuple_Type, &ops, &PyTuple_Type, &consts,
                                     &n_values, &fallback))
        return NULL;
    if (n_values < 0 || n_values > 64) {
        PyErr_SetString(PyExc_ValueError, "a picker reads 0 to 64 values");
        return NULL;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(consts); k++) {
        if (!PyTuple_Check(PyTuple_GET_ITEM(consts, k))) {
            PyErr_SetString(PyExc_TypeError, "consts: a tuple of the enums' symbol tuples");
            return NULL;
        }
    }
    Py_ssize_t n_ops = PyTuple_GET_SIZE(ops);
    int *array = PyMem_Malloc(sizeof(int) * (size_t)(n_ops + 1));
    if (array == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t k = 0; k < n_ops; k++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(ops, k));
        if (v == -1 && PyErr_Occurred()) {
            PyMem_Free(array);
            return NULL;
        }
        if (v < 0 || v > INT32_MAX) {
            PyMem_Free(array);
            PyErr_SetString(PyExc_ValueError, "ops: small non-negative ints");
            return NULL;
        }
        array[k] = (int)v;
    }
    array[n_ops] = OP_END;
    Picker *self = (Picker *)type->tp_alloc(type, 0);
    if (self == NULL) {
        PyMem_Free(array);
        return NULL;
    }
    self->ops = array;
    self->n_ops = n_ops;
    self->n_values = n_values;
    Py_INCREF(consts);
    self->consts = consts;
    Py_INCREF(fallback);
    self->fallback = fallback;
    self->vectorcall = Picker_vectorcall;
    return (PyObject *)self;
}

static int Picker_traverse(Picker *self, visitproc visit, void *arg) {
    Py_VISIT(self->consts);
    Py_VISIT(self->fallback);
    return 0;
}

static int Picker_clear(Picker *self) {
    Py_CLEAR(self->consts);
    Py_CLEAR(self->fallback);
    for (int k = 0; k < KEPT; k++)
        Py_CLEAR(self->kept[k]);
    return 0;
}

static void Picker_dealloc(Picker *self) {
    PyObject_GC_UnTrack(self);
    Picker_clear(self);
    PyMem_Free(self->ops);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef Picker_members[] = {
    {"fallback", T_OBJECT_EX, offsetof(Picker, fallback), READONLY, "the Python picker"},
    {NULL}
};

static PyTypeObject PickerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "leadbus.audit._picker.Picker",
    .tp_basicsize = sizeof(Picker),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Picker(ops, consts, values, fallback): a compiled field picker (see leadbus.audit.native_picker)",
    .tp_new = Picker_new,
    .tp_dealloc = (destructor)Picker_dealloc,
    .tp_traverse = (traverseproc)Picker_traverse,
    .tp_clear = (inquiry)Picker_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Picker, vectorcall),
    .tp_members = Picker_members,
};

static PyMethodDef methods[] = {
    {"end_of", (PyCFunction)(void (*)(void))end_of, METH_FASTCALL,
     "end_of(picker, data) -> the position after the body its skips pass over (else its fallback's answer)"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_picker", "The replay's field picker in C (see leadbus.audit.native_picker).", -1, methods,
};

PyMODINIT_FUNC PyInit__picker(void) {
    if (PyType_Ready(&PickerType) < 0)
        return NULL;
    module_picker_type = &PickerType;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&PickerType);
    if (PyModule_AddObject(m, "Picker", (PyObject *)&PickerType) < 0) {
        Py_DECREF(&PickerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
