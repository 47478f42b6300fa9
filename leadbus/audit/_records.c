/* A consumed batch made into replay records in C: the loop of `KafkaSource._interleaved` (`leadbus.audit.sources`,
 * the Python path: the reference, which this must agree with), for the usual message.
 *
 * Maker(cls, slots, fields, prototype, message_type)
 *     `cls` is `ReplayRecord`, `slots` the names of all its slots, `fields` the nine set per record (topic, partition,
 *     offset, timestamp_ms, key, value, headers, catalog, opens_log, in that order), `prototype` a record made by its
 *     `__init__`, whose values of the other slots every record starts with (`leadbus.audit.native_records` checks they
 *     are immutable), and `message_type` confluent_kafka's Message.
 *
 * maker.build(batch, start, open_, fresh, done, catalog) -> (records, next)
 *     From batch[start] on, each message of a partition still open (`open_`: (topic, partition) -> its end): one past
 *     the end or beyond, passed over; at end - 1 or beyond, the partition is closed (taken out of `open_`, appended to
 *     `done`); below its end, a record, marked `opens_log` when the partition is in `fresh` (taken out). It stops at
 *     the first message that is not the usual one (an error, an object of another type, a topic, partition, offset,
 *     timestamp or headers of another type), before changing anything for it, and returns its index as `next`: the
 *     Python path takes that message. Records are made without `__init__`: the prototype's values, then the nine.
 *
 * RunReader(cls, slots)
 *     `cls` is `ReplayRecord`, `slots` the names of the fourteen slots read here (`leadbus.audit.native_runs.RUN_SLOTS`).
 *
 * reader.versions(records, start, last, pick, schema, tag, paths, topic, merging) -> next
 *     The usual records of a trusted run of `leadbus.cases` (`topic`, `merging`: a head (case, version, merged_into))
 *     as `CaseVersions.check_run` judges them, or of `leadbus.handover` (`merging` False: a head (case, step)) as
 *     `HandoverSteps.check` (the references): from records[start] on, a record read by the picker `pick` of the run's
 *     writer `schema` (trusted, never decoded, never picked, of that writer or with its single-object header `tag`: it
 *     then keeps `schema`, and its picked head (`paths`, head)) that is its case's first version or the one after the
 *     last (`last`: case -> (version, merged, partition, offset, file, index), without `merged` for steps) moves its
 *     case on. It stops at the first record that is anything else and returns its index: left as it was, or picked
 *     (then `check` reads the head it keeps, as the reference would); the Python path judges it.
 *
 * reader.order(records, start, topic, partition, offset, highest) -> next
 *     The usual records of a run as `PartitionOrder.check_run` passes them (the reference): from records[start] on,
 *     each of `topic`[`partition`] with an offset above the one before (`offset` for the first) and a timestamp not
 *     below the highest (`highest`), all exact ints within 64 bits. It changes nothing and returns the index of the
 *     first record that is anything else (`start` when `topic` is no str or `partition`, `offset`, `highest` no such int): the
 *     caller moves the partition on to the record before it.
 *
 * reader.tally(records, start, tally, by_topic, naming) -> next
 *     The usual records of a run counted as `tally_run` counts them (the reference): without an agency seal header, of
 *     a known writer whose events do not name who sent them (not in `naming`), of a topic named in `by_topic`: counted
 *     in `tally` under (type, by_topic[topic]). It stops at the first record that is anything else, its count written,
 *     and returns its index.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include "_slots.h"

#define MAX_SLOTS 64
enum { F_TOPIC, F_PARTITION, F_OFFSET, F_TIMESTAMP, F_KEY, F_VALUE, F_HEADERS, F_CATALOG, F_OPENS_LOG, N_FIELDS };
enum { M_ERROR, M_TOPIC, M_PARTITION, M_OFFSET, M_TIMESTAMP, M_KEY, M_VALUE, M_HEADERS, N_METHODS };
static const char *METHOD_NAMES[N_METHODS] = {"error", "topic", "partition", "offset", "timestamp", "key", "value",
                                              "headers"};

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    PyTypeObject *message;
    Py_ssize_t field_offsets[N_FIELDS];
    Py_ssize_t n_others;  /* the slots not among the fields: copied from the prototype */
    Py_ssize_t other_offsets[MAX_SLOTS];
    PyObject *other_values[MAX_SLOTS];
    PyObject *methods[N_METHODS];
} Maker;

static void maker_dealloc(Maker *self) {
    Py_XDECREF(self->cls);
    Py_XDECREF(self->message);
    for (Py_ssize_t k = 0; k < self->n_others; k++)
        Py_XDECREF(self->other_values[k]);
    for (int m = 0; m < N_METHODS; m++)
        Py_XDECREF(self->methods[m]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int maker_init(Maker *self, PyObject *args, PyObject *kwargs) {
    PyObject *cls, *slots, *fields, *prototype, *message;
    if (!PyArg_ParseTuple(args, "O!O!O!OO!", &PyType_Type, &cls, &PyTuple_Type, &slots, &PyTuple_Type, &fields,
                          &prototype, &PyType_Type, &message))
        return -1;
    if (self->cls != NULL) {
        PyErr_SetString(PyExc_TypeError, "a Maker is made once");
        return -1;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    if (PyTuple_GET_SIZE(fields) != N_FIELDS || PyTuple_GET_SIZE(slots) > MAX_SLOTS + N_FIELDS
        || !(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || !Py_IS_TYPE(prototype, type)) {
        PyErr_SetString(PyExc_TypeError, "Maker(cls, slots, fields, prototype, message_type): not a record class");
        return -1;
    }
    if (record_layout(type, slots, fields, prototype, N_FIELDS, self->field_offsets, self->other_offsets,
                      self->other_values, MAX_SLOTS, &self->n_others) < 0)
        return -1;
    for (int m = 0; m < N_METHODS; m++)
        if ((self->methods[m] = PyObject_GetAttrString(message, METHOD_NAMES[m])) == NULL)
            return -1;
    self->message = (PyTypeObject *)Py_NewRef(message);
    self->cls = (PyTypeObject *)Py_NewRef(cls);
    return 0;
}

static inline PyObject *call(Maker *self, int m, PyObject *msg) {
    return PyObject_Vectorcall(self->methods[m], &msg, 1, NULL);
}

static int same_str(PyObject *a, PyObject *b) {
    return a == b || (PyUnicode_GET_LENGTH(a) == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b)
                      && memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b),
                                (size_t)(PyUnicode_GET_LENGTH(a) * PyUnicode_KIND(a))) == 0);
}

static PyObject *build(Maker *self, PyObject *const *args, Py_ssize_t nargs) {
    if (self->cls == NULL) {
        PyErr_SetString(PyExc_TypeError, "the Maker was not made");
        return NULL;
    }
    if (nargs != 6 || !PyList_CheckExact(args[0]) || !PyLong_CheckExact(args[1]) || !PyDict_CheckExact(args[2])
        || !PySet_CheckExact(args[3]) || !PyList_CheckExact(args[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "build(batch: list, start: int, open_: dict, fresh: set, done: list, catalog)");
        return NULL;
    }
    PyObject *batch = args[0], *open_ = args[2], *fresh = args[3], *done = args[4], *catalog = args[5];
    Py_ssize_t i = PyLong_AsSsize_t(args[1]), n = PyList_GET_SIZE(batch);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0 || i > n) {
        PyErr_SetString(PyExc_IndexError, "build: start out of the batch");
        return NULL;
    }
    /* room for a record per message (growing the list as records came cost 6 % of the read path's samples), filled
     * with None, and what is left over cut off at the end */
    Py_ssize_t made = 0;
    PyObject *out = PyList_New(n - i);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < n - i; k++)
        PyList_SET_ITEM(out, k, Py_NewRef(Py_None));
    PyObject *where = NULL;  /* the (topic, partition) of the messages before, and whether it is open, its end */
    int is_open = 0;
    long long end = 0;
    PyObject *topic = NULL, *partition = NULL, *offset = NULL, *stamp = NULL, *key = NULL, *value = NULL;
    PyObject *headers = NULL;
    for (; i < n; i++) {
        PyObject *msg = PyList_GET_ITEM(batch, i);
        if (!Py_IS_TYPE(msg, self->message))
            break;
        PyObject *error = call(self, M_ERROR, msg);
        if (error == NULL)
            goto fail;
        int failed = error != Py_None;
        Py_DECREF(error);
        if (failed)
            break;
        if ((topic = call(self, M_TOPIC, msg)) == NULL || (partition = call(self, M_PARTITION, msg)) == NULL)
            goto fail;
        if (!PyUnicode_CheckExact(topic) || !PyLong_CheckExact(partition))
            break;
        if (where == NULL || !same_str(topic, PyTuple_GET_ITEM(where, 0))
            || PyObject_RichCompareBool(partition, PyTuple_GET_ITEM(where, 1), Py_EQ) != 1) {
            Py_XDECREF(where);
            if ((where = PyTuple_Pack(2, topic, partition)) == NULL)
                goto fail;
            PyObject *found = PyDict_GetItemWithError(open_, where);
            if (found == NULL && PyErr_Occurred())
                goto fail;
            is_open = found != NULL;
            if (is_open
                && (!PyLong_CheckExact(found) || ((end = PyLong_AsLongLong(found)) == -1 && PyErr_Occurred()))) {
                PyErr_Clear();
                Py_CLEAR(where);
                break;
            }
        }
        Py_CLEAR(topic);
        Py_CLEAR(partition);
        if (!is_open)
            continue;
        if ((offset = call(self, M_OFFSET, msg)) == NULL)
            goto fail;
        long long at = PyLong_CheckExact(offset) ? PyLong_AsLongLong(offset) : -1;
        if (at == -1 && (PyErr_Occurred() || !PyLong_CheckExact(offset))) {
            PyErr_Clear();
            break;
        }
        int closes = at >= end - 1;
        if (at < end) {
            if ((stamp = call(self, M_TIMESTAMP, msg)) == NULL || (key = call(self, M_KEY, msg)) == NULL
                || (value = call(self, M_VALUE, msg)) == NULL || (headers = call(self, M_HEADERS, msg)) == NULL)
                goto fail;
            if (!PyTuple_CheckExact(stamp) || PyTuple_GET_SIZE(stamp) != 2
                || !(headers == Py_None || PyList_CheckExact(headers)))
                break;
        }
        if (closes) {
            if (PyDict_DelItem(open_, where) < 0 || PyList_Append(done, where) < 0)
                goto fail;
            is_open = 0;
        }
        if (at >= end) {
            Py_CLEAR(offset);
            continue;
        }
        PyObject *record = self->cls->tp_alloc(self->cls, 0);
        if (record == NULL)
            goto fail;
        for (Py_ssize_t k = 0; k < self->n_others; k++)
            SLOT(record, self->other_offsets[k]) = Py_NewRef(self->other_values[k]);
        PyObject *opens_log = Py_False;
        if (PySet_GET_SIZE(fresh)) {
            int found = PySet_Discard(fresh, where);
            if (found < 0) {
                Py_DECREF(record);
                goto fail;
            }
            if (found)
                opens_log = Py_True;
        }
        SLOT(record, self->field_offsets[F_TOPIC]) = Py_NewRef(PyTuple_GET_ITEM(where, 0));
        SLOT(record, self->field_offsets[F_PARTITION]) = Py_NewRef(PyTuple_GET_ITEM(where, 1));
        SLOT(record, self->field_offsets[F_OFFSET]) = offset;
        SLOT(record, self->field_offsets[F_TIMESTAMP]) = Py_NewRef(PyTuple_GET_ITEM(stamp, 1));
        SLOT(record, self->field_offsets[F_KEY]) = key;
        SLOT(record, self->field_offsets[F_VALUE]) = value;
        if (headers != Py_None && PyList_GET_SIZE(headers)) {
            SLOT(record, self->field_offsets[F_HEADERS]) = PyList_AsTuple(headers);
            Py_DECREF(headers);
        } else {
            Py_DECREF(headers);
            SLOT(record, self->field_offsets[F_HEADERS]) = PyTuple_New(0);
        }
        SLOT(record, self->field_offsets[F_CATALOG]) = Py_NewRef(catalog);
        SLOT(record, self->field_offsets[F_OPENS_LOG]) = Py_NewRef(opens_log);
        Py_DECREF(stamp);
        offset = stamp = key = value = headers = NULL;
        if (SLOT(record, self->field_offsets[F_HEADERS]) == NULL) {
            Py_DECREF(record);
            goto fail;
        }
        Py_SETREF(PyList_GET_ITEM(out, made), record);
        made++;
    }
    /* stopped at a message the Python path takes: what was read of it is dropped, nothing was changed for it */
    Py_XDECREF(topic);
    Py_XDECREF(partition);
    Py_XDECREF(offset);
    Py_XDECREF(stamp);
    Py_XDECREF(key);
    Py_XDECREF(value);
    Py_XDECREF(headers);
    Py_XDECREF(where);
    if (made < PyList_GET_SIZE(out) && PyList_SetSlice(out, made, PyList_GET_SIZE(out), NULL) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return Py_BuildValue("(Nn)", out, i);
fail:
    Py_XDECREF(topic);
    Py_XDECREF(partition);
    Py_XDECREF(offset);
    Py_XDECREF(stamp);
    Py_XDECREF(key);
    Py_XDECREF(value);
    Py_XDECREF(headers);
    Py_XDECREF(where);
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef maker_methods[] = {
    {"build", (PyCFunction)(void (*)(void))build, METH_FASTCALL,
     "build(batch, start, open_, fresh, done, catalog) -> (records, next)"},
    {NULL, NULL, 0, NULL}
};

static PyTypeObject MakerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "leadbus.audit._records.Maker",
    .tp_basicsize = sizeof(Maker),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Replay records made from a consumed batch (see leadbus.audit.native_records).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)maker_init,
    .tp_dealloc = (destructor)maker_dealloc,
    .tp_methods = maker_methods,
};

#include "_publishers.h"

/* -- the usual records of a trusted run (`leadbus.audit.verification`: `CaseVersions.check_run`, `tally_run`) -- */

enum { R_TRUSTED, R_DECODED, R_VALUE, R_PICKED, R_SCHEMA, R_PARTITION, R_OFFSET, R_FILE, R_INDEX, R_SEALED, R_HEADERS,
       R_TOPIC, R_TIMESTAMP, R_OPENS_LOG, N_RUN_SLOTS };

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    Py_ssize_t offsets[N_RUN_SLOTS];
    PyObject *name;  /* "name", a writer schema's attribute */
    PyTypeObject *mark;  /* `Mark` (set by the first `accepted` call): made here without `__init__` */
    Py_ssize_t mark_offsets[5];  /* its slots topic, partition, offset, file, index */
    PyObject *dot;  /* "." */
    PublisherTable publishers;  /* the accepted leads' publishers met (`accepted_tally`), by their strs' contents */
    int tallying;  /* within `accepted_tally` (a tally's value adding by Python code could call it again) */
} RunReader;


static void reader_dealloc(RunReader *self) {
    Py_XDECREF(self->cls);
    Py_XDECREF(self->name);
    Py_XDECREF(self->mark);
    Py_XDECREF(self->dot);
    forget_publishers(&self->publishers);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int reader_init(RunReader *self, PyObject *args, PyObject *kwargs) {
    PyObject *cls, *slots;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &cls, &PyTuple_Type, &slots))
        return -1;
    if (self->cls != NULL) {
        PyErr_SetString(PyExc_TypeError, "a RunReader is made once");
        return -1;
    }
    if (PyTuple_GET_SIZE(slots) != N_RUN_SLOTS || !(((PyTypeObject *)cls)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        PyErr_SetString(PyExc_TypeError, "RunReader(cls, slots): not a record class and its fourteen slots");
        return -1;
    }
    for (int k = 0; k < N_RUN_SLOTS; k++)
        if ((self->offsets[k] = slot_offset((PyTypeObject *)cls, PyTuple_GET_ITEM(slots, k))) < 0)
            return -1;
    if ((self->name = PyUnicode_InternFromString("name")) == NULL || (self->dot = PyUnicode_FromString(".")) == NULL)
        return -1;
    self->publishers.dot = self->dot;
    self->cls = (PyTypeObject *)Py_NewRef(cls);
    return 0;
}

#define RSLOT(rec, k) SLOT(rec, self->offsets[k])

/* records (a list), start (an int in it): or an error set */
static int run_args(RunReader *self, PyObject *records, PyObject *start, Py_ssize_t *i) {
    if (self->cls == NULL) {
        PyErr_SetString(PyExc_TypeError, "the RunReader was not made");
        return -1;
    }
    if (!PyList_CheckExact(records) || !PyLong_CheckExact(start)) {
        PyErr_SetString(PyExc_TypeError, "records: a list, start: an int");
        return -1;
    }
    *i = PyLong_AsSsize_t(start);
    if (*i == -1 && PyErr_Occurred())
        return -1;
    if (*i < 0 || *i > PyList_GET_SIZE(records)) {
        PyErr_SetString(PyExc_IndexError, "start out of the run");
        return -1;
    }
    return 0;
}

/* Whether every slot the reader reads is set (a record made otherwise than by `__init__` or the Maker may lack one). */
static int all_set(RunReader *self, PyObject *rec) {
    for (int k = 0; k < N_RUN_SLOTS; k++)
        if (RSLOT(rec, k) == NULL)
            return 0;
    return 1;
}

static inline void set_slot(PyObject *rec, Py_ssize_t offset, PyObject *value) {
    PyObject *old = SLOT(rec, offset);
    SLOT(rec, offset) = value;  /* a new reference */
    Py_XDECREF(old);
}

/* What both readers ask of a run's record before they judge it, and the same arguments for every record of a call. */
typedef struct {
    PyObject *pick, *schema, *tag, *paths, *topic;
} Picking;

/* A record of the run's topic, trusted, not yet decoded nor picked, of the run's writer schema (known, or its tag
 * heading the value): its schema set and its head picked (`(paths, head)` kept on the record, as `pick_head` keeps
 * it). 1 with *head a new reference; 0 where the Python path takes over (a record of another kind, or bytes the picker
 * does not read: it picks them again, and decodes them whole); -1 with an error set. */
static int picked_head(RunReader *self, PyObject *rec, const Picking *run, PyObject **head) {
    if (!Py_IS_TYPE(rec, self->cls) || !all_set(self, rec))
        return 0;
    PyObject *value = RSLOT(rec, R_VALUE), *known = RSLOT(rec, R_SCHEMA), *where = RSLOT(rec, R_TOPIC);
    /* (a record of another topic: the Python path's, which `check` would judge otherwise once it is picked) */
    if ((where != run->topic && (!PyUnicode_CheckExact(where) || !same_str(where, run->topic)))
        || RSLOT(rec, R_TRUSTED) != Py_True || RSLOT(rec, R_DECODED) != Py_False || !PyBytes_CheckExact(value)
        || RSLOT(rec, R_PICKED) != Py_None)
        return 0;
    Py_ssize_t tag_size = PyBytes_GET_SIZE(run->tag);
    if (known != run->schema
        && (known != Py_None || PyBytes_GET_SIZE(value) < tag_size
            || memcmp(PyBytes_AS_STRING(value), PyBytes_AS_STRING(run->tag), (size_t)tag_size) != 0))
        return 0;
    set_slot(rec, self->offsets[R_SCHEMA], Py_NewRef(run->schema));
    Py_INCREF(value);
    PyObject *got = PyObject_Vectorcall(run->pick, &value, 1, NULL);
    Py_DECREF(value);
    if (got == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return -1;
        PyErr_Clear();
        return 0;
    }
    if (got == Py_None) {
        Py_DECREF(got);
        return 0;
    }
    PyObject *picked = PyTuple_Pack(2, run->paths, got);
    if (picked == NULL) {
        Py_DECREF(got);
        return -1;
    }
    set_slot(rec, self->offsets[R_PICKED], picked);
    *head = got;
    return 1;
}

static PyObject *versions(RunReader *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t i;
    if (nargs != 9 || run_args(self, args[0], args[1], &i) < 0 || !PyDict_CheckExact(args[2])
        || !PyBytes_CheckExact(args[5]) || !PyTuple_CheckExact(args[6]) || !PyUnicode_CheckExact(args[7])
        || !PyBool_Check(args[8])) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "versions(records: list, start: int, last: dict, pick, schema, "
                                             "tag: bytes, paths: tuple, topic: str, merging: bool)");
        return NULL;
    }
    PyObject *records = args[0], *last = args[2];
    const Picking run = {.pick = args[3], .schema = args[4], .tag = args[5], .paths = args[6], .topic = args[7]};
    int merging = args[8] == Py_True;
    Py_ssize_t kept = merging ? 6 : 5, merged_at = merging ? 1 : 0;  /* a case's state: its size, where `merged` is */
    Py_ssize_t n = PyList_GET_SIZE(records);
    for (; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(records, i), *head;
        int got = picked_head(self, rec, &run, &head);
        if (got < 0)
            return NULL;
        if (got == 0)
            break;
        if (!PyTuple_CheckExact(head) || PyTuple_GET_SIZE(head) < 2 + merging
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(head, 0))
            || !PyLong_CheckExact(PyTuple_GET_ITEM(head, 1))) {
            Py_DECREF(head);
            break;
        }
        PyObject *case_id = PyTuple_GET_ITEM(head, 0), *version = PyTuple_GET_ITEM(head, 1);
        PyObject *merged = merging && PyTuple_GET_ITEM(head, 2) != Py_None ? Py_True : Py_False;
        PyObject *before = PyDict_GetItemWithError(last, case_id);
        if (before == NULL && PyErr_Occurred()) {
            Py_DECREF(head);
            return NULL;
        }
        if (before != NULL) {  /* the usual record: the version after the last, of a case not merged away */
            int overflow = 0;
            long long now = PyLong_AsLongLongAndOverflow(version, &overflow), was = 0;
            int usual = !overflow && PyTuple_CheckExact(before) && PyTuple_GET_SIZE(before) == kept
                        && (!merging || PyTuple_GET_ITEM(before, merged_at) == Py_False)
                        && PyLong_CheckExact(PyTuple_GET_ITEM(before, 0));
            if (usual) {
                was = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(before, 0), &overflow);
                usual = !overflow && was < LLONG_MAX && now == was + 1;
            }
            if (!usual) {
                Py_DECREF(head);
                break;
            }
        }
        PyObject *moved = merging ? PyTuple_Pack(6, version, merged, RSLOT(rec, R_PARTITION), RSLOT(rec, R_OFFSET),
                                                 RSLOT(rec, R_FILE), RSLOT(rec, R_INDEX))
                                  : PyTuple_Pack(5, version, RSLOT(rec, R_PARTITION), RSLOT(rec, R_OFFSET),
                                                 RSLOT(rec, R_FILE), RSLOT(rec, R_INDEX));
        int failed = moved == NULL || PyDict_SetItem(last, case_id, moved) < 0;
        Py_XDECREF(moved);
        Py_DECREF(head);
        if (failed)
            return NULL;
    }
    return PyLong_FromSsize_t(i);
}

/* an exact int within 64 bits, into *out */
static int small_int(PyObject *number, long long *out) {
    int overflow = 0;
    if (!PyLong_CheckExact(number))
        return 0;
    *out = PyLong_AsLongLongAndOverflow(number, &overflow);
    return !overflow && !(*out == -1 && PyErr_Occurred());
}

static PyObject *order(RunReader *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t i;
    long long offset, highest, partition;
    if (nargs != 6 || run_args(self, args[0], args[1], &i) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "order(records: list, start: int, topic: str, partition, offset, highest)");
        return NULL;
    }
    if (!PyUnicode_CheckExact(args[2]) || !small_int(args[3], &partition) || !small_int(args[4], &offset)
        || !small_int(args[5], &highest))
        return PyLong_FromSsize_t(i);  /* not the usual topic and numbers: all left to the Python path */
    PyObject *records = args[0], *topic = args[2];
    Py_ssize_t n = PyList_GET_SIZE(records);
    for (; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(records, i);
        if (!Py_IS_TYPE(rec, self->cls) || !all_set(self, rec))
            break;
        PyObject *where = RSLOT(rec, R_TOPIC);
        long long now_partition, now_offset, stamp;
        if (!small_int(RSLOT(rec, R_PARTITION), &now_partition) || now_partition != partition
            || !small_int(RSLOT(rec, R_OFFSET), &now_offset) || !small_int(RSLOT(rec, R_TIMESTAMP), &stamp)
            || (where != topic && (!PyUnicode_CheckExact(where) || !same_str(where, topic)))
            || now_offset <= offset || stamp < highest)
            break;
        offset = now_offset;
        highest = stamp;
    }
    return PyLong_FromSsize_t(i);
}

/* tally[(name, who)] += count */
static int add(PyObject *tally, PyObject *name, PyObject *who, Py_ssize_t count) {
    PyObject *key = PyTuple_Pack(2, name, who);
    if (key == NULL)
        return -1;
    PyObject *had = PyDict_GetItemWithError(tally, key), *sum = NULL;
    int failed = -1;
    if (had != NULL || !PyErr_Occurred()) {
        PyObject *more = PyLong_FromSsize_t(count);
        if (more != NULL)
            sum = had != NULL ? PyNumber_Add(had, more) : Py_NewRef(more);
        Py_XDECREF(more);
        if (sum != NULL)
            failed = PyDict_SetItem(tally, key, sum);
    }
    Py_XDECREF(sum);
    Py_DECREF(key);
    return failed;
}

static PyObject *tally(RunReader *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t i;
    if (nargs != 5 || run_args(self, args[0], args[1], &i) < 0 || !PyDict_Check(args[2])
        || !PyDict_CheckExact(args[3]) || !PyFrozenSet_CheckExact(args[4])) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError,
                            "tally(records: list, start: int, tally: dict, by_topic: dict, naming: frozenset)");
        return NULL;
    }
    PyObject *records = args[0], *counts = args[2], *by_topic = args[3], *naming = args[4];
    Py_ssize_t n = PyList_GET_SIZE(records), count = 0;
    /* the writer, its name, the topic and who it names of the record before; what the `count` records before are */
    PyObject *schema = NULL, *name = NULL, *topic = NULL, *who = NULL, *counted_name = NULL, *counted_who = NULL;
    int failed = 0;
    for (; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(records, i);
        if (!Py_IS_TYPE(rec, self->cls) || !all_set(self, rec))
            break;
        PyObject *sealed = RSLOT(rec, R_SEALED);
        if (sealed != Py_False) {  /* no agency seal header: known so, or no headers at all */
            if (sealed != Py_None)
                break;
            int any = PyObject_IsTrue(RSLOT(rec, R_HEADERS));
            if (any != 0) {
                failed = any < 0;
                break;
            }
        }
        PyObject *known = RSLOT(rec, R_SCHEMA);
        if (known == Py_None)
            break;
        if (known != schema) {
            PyObject *got = PyObject_GetAttr(known, self->name);
            if (got == NULL) {
                PyErr_Clear();  /* the Python path names it */
                break;
            }
            int naming_one = PyUnicode_CheckExact(got) ? PySet_Contains(naming, got) : 1;
            if (naming_one != 0) {
                Py_DECREF(got);
                failed = naming_one < 0;
                break;
            }
            Py_XSETREF(name, got);
            Py_XSETREF(schema, Py_NewRef(known));
        }
        PyObject *where = RSLOT(rec, R_TOPIC);
        if (where != topic) {
            if (!PyUnicode_CheckExact(where))
                break;
            PyObject *named = PyDict_GetItemWithError(by_topic, where);
            if (named == NULL) {
                failed = PyErr_Occurred() != NULL;
                break;
            }
            Py_XSETREF(who, Py_NewRef(named));
            Py_XSETREF(topic, Py_NewRef(where));
        }
        if (count && (counted_name != name || counted_who != who)) {
            if (add(counts, counted_name, counted_who, count) < 0) {
                failed = 1;
                break;
            }
            count = 0;
        }
        if (count == 0) {
            Py_XSETREF(counted_name, Py_NewRef(name));
            Py_XSETREF(counted_who, Py_NewRef(who));
        }
        count++;
    }
    if (!failed && count && add(counts, counted_name, counted_who, count) < 0)
        failed = 1;
    Py_XDECREF(schema);
    Py_XDECREF(name);
    Py_XDECREF(topic);
    Py_XDECREF(who);
    Py_XDECREF(counted_name);
    Py_XDECREF(counted_who);
    return failed ? NULL : PyLong_FromSsize_t(i);
}


/* -- the usual records of a trusted run of `leadbus.leads.accepted` (`AcceptedLeads.check_run`, `tally_accepted`) -- */

static const char *MARK_SLOTS[5] = {"topic", "partition", "offset", "file", "index"};

/* `mark` as the class of the places kept: a heap type whose instances are its five slots alone (no `__dict__`), as
 * `Mark` is (a slots dataclass whose `__init__` only sets them); its slots' offsets read once. 0, or -1 with an error. */
static int mark_class(RunReader *self, PyObject *mark) {
    if ((PyObject *)self->mark == mark)
        return 0;
    if (self->mark != NULL || !PyType_Check(mark) || !(((PyTypeObject *)mark)->tp_flags & Py_TPFLAGS_HEAPTYPE)
        || ((PyTypeObject *)mark)->tp_dictoffset != 0
        || ((PyTypeObject *)mark)->tp_basicsize != (Py_ssize_t)(sizeof(PyObject) + 5 * sizeof(PyObject *))) {
        PyErr_SetString(PyExc_TypeError, "accepted: mark is one class of five slots, the same at every call");
        return -1;
    }
    for (int k = 0; k < 5; k++) {
        PyObject *name = PyUnicode_FromString(MARK_SLOTS[k]);
        if (name == NULL)
            return -1;
        self->mark_offsets[k] = slot_offset((PyTypeObject *)mark, name);
        Py_DECREF(name);
        if (self->mark_offsets[k] < 0)
            return -1;
    }
    self->mark = (PyTypeObject *)Py_NewRef(mark);
    return 0;
}

/* `Mark(topic, partition, offset, file, index)` as its `__init__` makes it: a new reference or NULL. */
static PyObject *mark_at(RunReader *self, PyObject *const fields[5]) {
    PyObject *mark = self->mark->tp_alloc(self->mark, 0);
    if (mark == NULL)
        return NULL;
    for (int k = 0; k < 5; k++)
        SLOT(mark, self->mark_offsets[k]) = Py_NewRef(fields[k]);
    return mark;
}

/* A `Mark` of the record (`Mark.of`): a new reference or NULL. */
static PyObject *mark_of(RunReader *self, PyObject *rec) {
    PyObject *fields[5] = {RSLOT(rec, R_TOPIC), RSLOT(rec, R_PARTITION), RSLOT(rec, R_OFFSET), RSLOT(rec, R_FILE),
                           RSLOT(rec, R_INDEX)};
    return mark_at(self, fields);
}

static PyObject *accepted(RunReader *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t i;
    if ((nargs != 10 && nargs != 11) || run_args(self, args[0], args[1], &i) < 0 || !PyDict_CheckExact(args[2])
        || (args[3] != Py_None && !PyList_CheckExact(args[3])) || !PyBytes_CheckExact(args[6])
        || !PyTuple_CheckExact(args[7]) || !PyUnicode_CheckExact(args[8])
        || (nargs == 11 && args[10] != Py_None && !PyByteArray_CheckExact(args[10]))) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "accepted(records: list, start: int, revisions: dict, noted: list | None, "
                                             "pick, schema, tag: bytes, paths: tuple, topic: str, mark: type"
                                             "[, hashes: bytearray | None])");
        return NULL;
    }
    if (mark_class(self, args[9]) < 0)
        return NULL;
    PyObject *records = args[0], *revisions = args[2], *noted = args[3];
    PyObject *hashes = nargs == 11 && args[10] != Py_None ? args[10] : NULL;
    const Picking run = {.pick = args[4], .schema = args[5], .tag = args[6], .paths = args[7], .topic = args[8]};
    Py_ssize_t n = PyList_GET_SIZE(records);
    for (; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(records, i), *head;
        int got = picked_head(self, rec, &run, &head);
        if (got < 0)
            return NULL;
        if (got == 0)
            break;
        /* the lead's id, revision and digest as `_vouched` reads them (str, int, str: the same objects), else the
         * Python path reads the head kept */
        if (!PyTuple_CheckExact(head) || PyTuple_GET_SIZE(head) < 5 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(head, 0))
            || !PyLong_CheckExact(PyTuple_GET_ITEM(head, 1)) || !PyUnicode_CheckExact(PyTuple_GET_ITEM(head, 4))) {
            Py_DECREF(head);
            break;
        }
        PyObject *lead_id = PyTuple_GET_ITEM(head, 0), *revision = PyTuple_GET_ITEM(head, 1);
        PyObject *digest = PyTuple_GET_ITEM(head, 4);
        if (noted != Py_None) {  /* the tail of a cut: noted for the parent, judged there */
            PyObject *row = PyTuple_Pack(5, lead_id, revision, digest, RSLOT(rec, R_PARTITION), RSLOT(rec, R_OFFSET));
            int failed = row == NULL || PyList_Append(noted, row) < 0;
            if (!failed && hashes != NULL) {
                /* the lead's hash beside its note, while its id is in the caches (`boundary.settle_tail` sends these:
                 * hashed there, after the read, the notes' 51,000 ids cost 7-10 ms of cache misses on the cut's
                 * critical path); 8 bytes in native order, as array('q') holds them */
                Py_hash_t h = PyObject_Hash(lead_id);
                Py_ssize_t at = PyByteArray_GET_SIZE(hashes);
                failed = h == -1 || PyByteArray_Resize(hashes, at + (Py_ssize_t)sizeof h) < 0;
                if (!failed)
                    memcpy(PyByteArray_AS_STRING(hashes) + at, &h, sizeof h);
            }
            Py_XDECREF(row);
            Py_DECREF(head);
            if (failed)
                return NULL;
            continue;
        }
        /* kept under the lead's id where it is its first record: one look in the dict (SetDefault), not two; a later
         * revision of a lead leaves the dict as it was, for `revision` to judge */
        PyObject *here = mark_of(self, rec);
        PyObject *kept = here == NULL ? NULL : PyTuple_Pack(3, revision, digest, here);
        Py_XDECREF(here);
        PyObject *held = kept == NULL ? NULL : PyDict_SetDefault(revisions, lead_id, kept);
        Py_XDECREF(kept);  /* (the dict's reference stays where it took it) */
        Py_DECREF(head);
        if (held == NULL)
            return NULL;
        if (held != kept)  /* seen before */
            break;
    }
    return PyLong_FromSsize_t(i);
}


/* noted_firsts(noted, start, revisions, topic, mark) -> next: the leads a cut's tail noted (`AcceptedLeads.noted`:
 * (lead id, revision, digest, partition, offset)), from noted[start] on, as `boundary._accepted` carries them over
 * after the head's: a lead not in `revisions` is its first record there, kept under (revision, digest, a `mark` of
 * (topic, partition, offset)). It stops at the first that is anything else (a lead seen before, a row of another
 * shape) and returns its index: the Python path judges it. */
static PyObject *noted_firsts(RunReader *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyList_CheckExact(args[0]) || !PyLong_CheckExact(args[1]) || !PyDict_CheckExact(args[2])
        || !PyUnicode_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "noted_firsts(noted: list, start: int, revisions: dict, topic: str, mark)");
        return NULL;
    }
    if (mark_class(self, args[4]) < 0)
        return NULL;
    PyObject *noted = args[0], *revisions = args[2], *topic = args[3];
    Py_ssize_t i = PyLong_AsSsize_t(args[1]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0 || i > PyList_GET_SIZE(noted)) {
        PyErr_SetString(PyExc_IndexError, "start out of the notes");
        return NULL;
    }
    for (; i < PyList_GET_SIZE(noted); i++) {
        PyObject *row = PyList_GET_ITEM(noted, i);
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != 5)
            break;
        PyObject *lead = PyTuple_GET_ITEM(row, 0);
        if (!PyUnicode_CheckExact(lead))
            break;
        int seen = PyDict_Contains(revisions, lead);
        if (seen != 0) {
            if (seen < 0)
                return NULL;
            break;
        }
        PyObject *fields[5] = {topic, PyTuple_GET_ITEM(row, 3), PyTuple_GET_ITEM(row, 4), Py_None, Py_None};
        PyObject *here = mark_at(self, fields);
        PyObject *kept = here == NULL ? NULL : PyTuple_Pack(3, PyTuple_GET_ITEM(row, 1), PyTuple_GET_ITEM(row, 2), here);
        Py_XDECREF(here);
        int failed = kept == NULL || PyDict_SetItem(revisions, lead, kept) < 0;
        Py_XDECREF(kept);
        if (failed)
            return NULL;
    }
    return PyLong_FromSsize_t(i);
}

/* unstamped_bus(records, start, prefix) -> next: the records `BusSealVerifier.check_run` passes over (the reference):
 * from records[start] on, each known to carry no agency seal (`_sealed` False), at an offset other than 0, not opening
 * its log, of a topic (a str) not starting with `prefix` (an intake topic's). It changes nothing and returns the index
 * of the first other record: the Python path judges it. */
static PyObject *unstamped_bus(RunReader *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t i;
    if (nargs != 3 || run_args(self, args[0], args[1], &i) < 0 || !PyUnicode_CheckExact(args[2])) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "unstamped_bus(records: list, start: int, prefix: str)");
        return NULL;
    }
    PyObject *records = args[0], *prefix = args[2], *topic = NULL;  /* the topic of the record before, not an intake's */
    Py_ssize_t n = PyList_GET_SIZE(records), prefix_size = PyUnicode_GET_LENGTH(prefix);
    for (; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(records, i);
        if (!Py_IS_TYPE(rec, self->cls) || !all_set(self, rec))
            break;
        PyObject *offset = RSLOT(rec, R_OFFSET), *where = RSLOT(rec, R_TOPIC);
        if (RSLOT(rec, R_SEALED) != Py_False || RSLOT(rec, R_OPENS_LOG) != Py_False || !PyLong_CheckExact(offset))
            break;
        int overflow = 0;
        if (PyLong_AsLongLongAndOverflow(offset, &overflow) == 0 && !overflow)  /* offset 0 (an exact int: no error) */
            break;
        if (where != topic) {
            if (!PyUnicode_CheckExact(where))
                break;
            Py_ssize_t starts = PyUnicode_Tailmatch(where, prefix, 0, prefix_size, -1);
            if (starts != 0) {
                if (starts < 0)
                    return NULL;
                break;
            }
            topic = where;  /* held by the record, which the list holds */
        }
    }
    return PyLong_FromSsize_t(i);
}

static PyObject *accepted_tally(RunReader *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t i;
    if (nargs != 6 || run_args(self, args[0], args[1], &i) < 0 || !PyDict_Check(args[2])
        || !PyUnicode_CheckExact(args[4]) || !PyTuple_CheckExact(args[5])) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError,
                            "accepted_tally(records: list, start: int, tally: dict, schema, name: str, paths: tuple)");
        return NULL;
    }
    if (self->tallying)  /* called again from within: the Python path counts them */
        return PyLong_FromSsize_t(i);
    PyObject *records = args[0], *counts = args[2], *schema = args[3], *name = args[4], *paths = args[5];
    Py_ssize_t n = PyList_GET_SIZE(records), touched_n = 0;
    Py_ssize_t *touched = PyMem_Malloc((size_t)(n - i + 1) * sizeof(Py_ssize_t));  /* the publishers counted, in order */
    if (touched == NULL)
        return PyErr_NoMemory();
    self->tallying = 1;
    for (; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(records, i);
        if (!Py_IS_TYPE(rec, self->cls) || !all_set(self, rec))
            break;
        PyObject *picked = RSLOT(rec, R_PICKED), *values;
        /* no agency seal header (known so), the writer given, trusted, its head picked by one of `paths` */
        if (RSLOT(rec, R_SEALED) != Py_False || RSLOT(rec, R_SCHEMA) != schema || RSLOT(rec, R_TRUSTED) != Py_True
            || !PyTuple_CheckExact(picked) || PyTuple_GET_SIZE(picked) != 2)
            break;
        PyObject *which = PyTuple_GET_ITEM(picked, 0);
        int known = 0;
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(paths); k++)
            known |= PyTuple_GET_ITEM(paths, k) == which;
        values = PyTuple_GET_ITEM(picked, 1);
        if (!known || !PyTuple_CheckExact(values) || PyTuple_GET_SIZE(values) < 4 || PyTuple_GET_SIZE(values) == 2
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(values, 2)) || !PyUnicode_CheckExact(PyTuple_GET_ITEM(values, 3)))
            break;
        Py_ssize_t at = publisher_at(&self->publishers, PyTuple_GET_ITEM(values, 2), PyTuple_GET_ITEM(values, 3), counts, name,
                                     touched, &touched_n);
        if (at < 0) {
            write_counts(&self->publishers, counts, name, touched, &touched_n);
            PyMem_Free(touched);
            self->tallying = 0;
            return NULL;
        }
        if (self->publishers.slots[at].count++ == 0)
            touched[touched_n++] = at;
    }
    int failed = write_counts(&self->publishers, counts, name, touched, &touched_n) < 0;
    PyMem_Free(touched);
    self->tallying = 0;
    return failed ? NULL : PyLong_FromSsize_t(i);
}

static PyMethodDef reader_methods[] = {
    {"versions", (PyCFunction)(void (*)(void))versions, METH_FASTCALL,
     "versions(records, start, last, pick, schema, tag, paths, topic, merging) -> next"},
    {"order", (PyCFunction)(void (*)(void))order, METH_FASTCALL,
     "order(records, start, topic, partition, offset, highest) -> next"},
    {"tally", (PyCFunction)(void (*)(void))tally, METH_FASTCALL, "tally(records, start, tally, by_topic, naming) -> next"},
    {"accepted", (PyCFunction)(void (*)(void))accepted, METH_FASTCALL,
     "accepted(records, start, revisions, noted, pick, schema, tag, paths, topic, mark) -> next"},
    {"accepted_tally", (PyCFunction)(void (*)(void))accepted_tally, METH_FASTCALL,
     "accepted_tally(records, start, tally, schema, name, paths) -> next"},
    {"unstamped_bus", (PyCFunction)(void (*)(void))unstamped_bus, METH_FASTCALL,
     "unstamped_bus(records, start, prefix) -> next"},
    {"noted_firsts", (PyCFunction)(void (*)(void))noted_firsts, METH_FASTCALL,
     "noted_firsts(noted, start, revisions, topic, mark) -> next"},
    {NULL, NULL, 0, NULL}
};

static PyTypeObject RunReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "leadbus.audit._records.RunReader",
    .tp_basicsize = sizeof(RunReader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The usual records of a trusted run, checked and counted (see leadbus.audit.native_runs).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)reader_init,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_methods = reader_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_records", "A consumed batch made into replay records (see leadbus.audit.native_records).",
    -1, NULL,
};

PyMODINIT_FUNC PyInit__records(void) {
    if (PyType_Ready(&MakerType) < 0 || PyType_Ready(&RunReaderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Maker", (PyObject *)&MakerType) < 0
        || PyModule_AddObjectRef(m, "RunReader", (PyObject *)&RunReaderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
