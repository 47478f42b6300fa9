/* The replay's C pass over a plain intake stretch (`plain_run`, part of `leadbus.audit._intake`): the usual record
 * judged by the four checks that apply to an intake topic and counted at once. The seal's judgement, the lead's head and
 * the digest are `_intake.c`'s (`_intake.h`). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>
#include "_intake.h"
#include "_slots.h"

/* plain_run(records, start, state) -> how many records of the list from `start` on were taken
 *
 * For `leadbus.audit.intake_runs.PlainIntake` (its Python reference: the replay's loop's `process_run` of the same
 * records, each check's `check_run` then `_tally_each`): the usual records of a stretch of one intake topic that no
 * stage seal covers, judged at once by the four checks that apply to it and counted, one record after the other,
 * until the first record that one of them would not take its usual way (a record of another shape or type, the first
 * of a partition or of a lane, a seal that closes its lane's run, a lead seen before, ...), which the caller's Python
 * path then judges. A record is taken only when all four take it, and only then is anything changed:
 *
 * - `PartitionOrder`: a later offset, no step back: its partition's [offset, highest, (offset, file, index)] moved on;
 * - `Decodes`: a sealed intake body, under a seal the replay judges: nothing to do;
 * - `IntakeLeads`: a lead met for the first time: kept as `intake_lead` keeps it (its value's SHA-256, coordinates);
 * - `BusSealVerifier`: the usual seal (`quick_seal`) whose link follows its lane's open run: put on it; one that does
 *   not follow it (the run full: `window` links, or its chain broken) opens the lane's next run, and the run it ends
 *   goes to `closing` as (lane, links), whose signature the caller verifies (`BusSealVerifier._close_links`, which
 *   needs Python) before anything else is judged: the pass stops after that record;
 * - the tally: (type name, the seal's publisher) counted, as `_tally_each` counts a sealed record;
 * - the record's `_schema`, `_peek` (its lead's head) and `_sealed` (True) set, as the Python path's reads leave them.
 *
 * `state`: (the record class, the records' catalog, the topic, {fingerprint: (schema, its name)} of the CaseLead
 * schemas whose head `peek_usual` reads, PartitionOrder's `_last`, the seal verifier's `_quick_signers`, `_covers`,
 * `_runs` and `window`, IntakeLeads' `_seen`, `sources` and `ranges` (None: not kept), the tally, `LeadHead`, and
 * `closing`: a list, empty, where a run the pass ended is put). */
enum { P_TOPIC, P_PARTITION, P_OFFSET, P_TIMESTAMP, P_KEY, P_VALUE, P_HEADERS, P_CATALOG, P_OPENS_LOG, P_FILE, P_INDEX,
       P_TRUSTED, P_SCHEMA, P_DECODED, P_PEEK, P_SEALED, N_PLAIN };
static const char *PLAIN_SLOTS[N_PLAIN] = {"topic", "partition", "offset", "timestamp_ms", "key", "value", "headers",
                                           "catalog", "opens_log", "file", "index", "trusted", "_schema", "_decoded",
                                           "_peek", "_sealed"};
static PyTypeObject *plain_cls;
static Py_ssize_t plain_offsets[N_PLAIN];
#define PSLOT(obj, k) (*(PyObject **)((char *)(obj) + plain_offsets[k]))

static int plain_slots(PyTypeObject *cls) {
    if (cls == plain_cls)
        return 1;
    Py_ssize_t offsets[N_PLAIN];
    for (int k = 0; k < N_PLAIN; k++)
        if ((offsets[k] = slot_offset_named(cls, PLAIN_SLOTS[k])) < 0)
            return 0;
    memcpy(plain_offsets, offsets, sizeof offsets);
    Py_XSETREF(plain_cls, (PyTypeObject *)Py_NewRef(cls));
    return 1;
}

static inline void put_slot(PyObject *rec, int k, PyObject *value) { /* a new reference to `value` */
    PyObject *old = PSLOT(rec, k);
    PSLOT(rec, k) = Py_NewRef(value);
    Py_XDECREF(old);
}

static PyObject *one;

/* Whether exact ints `a` > `b` (`strict`) or `a` >= `b`. */
static int above(PyObject *a, PyObject *b, int strict) {
    return PyObject_RichCompareBool(a, b, strict ? Py_GT : Py_GE) == 1;
}

INTAKE_SHARED PyObject *plain_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_CheckExact(args[0]) || !PyLong_CheckExact(args[1]) || !PyTuple_CheckExact(args[2])
        || PyTuple_GET_SIZE(args[2]) != 15) {
        PyErr_SetString(PyExc_TypeError, "plain_run(records: list, start: int, state: a tuple of 15)");
        return NULL;
    }
    PyObject *const *st = &PyTuple_GET_ITEM(args[2], 0);
    PyObject *cls = st[0], *catalog = st[1], *topic = st[2], *heads = st[3], *lasts = st[4], *signers = st[5];
    PyObject *covers = st[6], *runs = st[7], *seen = st[9], *sources = st[10], *ranges = st[11], *tally = st[12];
    PyObject *closing = st[14];
    if (!PyType_Check(cls) || !PyUnicode_CheckExact(topic) || !PyDict_CheckExact(heads) || !PyDict_CheckExact(lasts)
        || !PyDict_CheckExact(signers) || !PyDict_CheckExact(covers) || !PyDict_CheckExact(runs)
        || !PyLong_CheckExact(st[8]) || !PyDict_CheckExact(seen) || !PyDict_Check(tally) || !PyType_Check(st[13])
        || !PyType_IsSubtype((PyTypeObject *)st[13], &PyTuple_Type) || !PyList_CheckExact(closing)
        || PyList_GET_SIZE(closing) != 0
        || !((sources == Py_None && ranges == Py_None) || (PyDict_CheckExact(sources) && PyDict_CheckExact(ranges)))) {
        PyErr_SetString(PyExc_TypeError, "plain_run: a state of unexpected types");
        return NULL;
    }
    Py_ssize_t window = PyLong_AsSsize_t(st[8]), start = PyLong_AsSsize_t(args[1]);
    if ((window == -1 || start == -1) && PyErr_Occurred())
        return NULL;
    if (!plain_slots((PyTypeObject *)cls))
        return NULL;
    PyObject *records = args[0];
    Py_ssize_t k = start < 0 ? 0 : start;
    unsigned char last_fp[8];
    PyObject *entry = NULL; /* borrowed from `heads`: the last fingerprint's */
    int failed = 0, ended = 0;
    for (; !ended && k < PyList_GET_SIZE(records); k++) {
        PyObject *rec = PyList_GET_ITEM(records, k);
        if ((PyObject *)Py_TYPE(rec) != cls)
            break;
        PyObject *s[N_PLAIN];
        int unset = 0;
        for (int j = 0; j < N_PLAIN; j++)
            unset |= (s[j] = PSLOT(rec, j)) == NULL;
        if (unset || s[P_TRUSTED] != Py_False || s[P_SCHEMA] != Py_None || s[P_DECODED] != Py_False
            || s[P_PEEK] != Py_False || (s[P_SEALED] != Py_None && s[P_SEALED] != Py_True) || s[P_CATALOG] != catalog
            || s[P_OPENS_LOG] != Py_False || !PyUnicode_CheckExact(s[P_TOPIC]) || !PyLong_CheckExact(s[P_PARTITION])
            || !PyLong_CheckExact(s[P_OFFSET]) || !PyLong_CheckExact(s[P_TIMESTAMP]) || !PyBytes_CheckExact(s[P_VALUE])
            || (s[P_TOPIC] != topic && PyUnicode_Compare(s[P_TOPIC], topic) != 0) || !above(s[P_OFFSET], zero, 1))
            break;
        /* the lead's writer schema, a usual CaseLead's, by the value's fingerprint (`ReplayRecord.schema`) */
        const unsigned char *v = (const unsigned char *)PyBytes_AS_STRING(s[P_VALUE]);
        if (PyBytes_GET_SIZE(s[P_VALUE]) < 10 || v[0] != 0xc3 || v[1] != 0x01)
            break;
        if (entry == NULL || memcmp(last_fp, v + 2, 8) != 0) {
            PyObject *fp = PyBytes_FromStringAndSize((const char *)v + 2, 8);
            if (fp == NULL)
                return NULL;
            entry = PyDict_GetItemWithError(heads, fp);
            Py_DECREF(fp);
            if (entry == NULL) {
                if (PyErr_Occurred())
                    return NULL;
                break;
            }
            if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2
                || !PyUnicode_CheckExact(PyTuple_GET_ITEM(entry, 1))) {
                entry = NULL;
                break;
            }
            memcpy(last_fp, v + 2, 8);
        }
        PyObject *head = peek_head(s[P_VALUE], (PyTypeObject *)st[13]);
        if (head == NULL)
            return NULL;
        PyObject *link = NULL, *lane = NULL, *run = NULL, *publisher = NULL, *ident = NULL, *place = NULL;
        PyObject *before = NULL, *span = NULL, *who = NULL, *counted = NULL, *count = NULL;
        int usual = 0, follows = 0;
        PyObject *fresh = NULL;
        if (head == Py_None)
            goto next;
        /* the seal: the usual one, following its lane's open run */
        PyObject *r9[9] = {s[P_HEADERS], s[P_TOPIC], s[P_PARTITION], s[P_TIMESTAMP], s[P_KEY], s[P_VALUE], s[P_OFFSET],
                           s[P_FILE], s[P_INDEX]};
        int got = seal_link(r9, head, signers, covers, runs, window, &link, &lane, &run, &follows, &publisher);
        if (got < 0)
            goto error;
        if (got == 0 || PyBytes_GET_SIZE(publisher) == 0)
            goto next;
        /* the lead: met for the first time (an error of the Python path's own: it raises it again there) */
        PyObject *lead_id = PyTuple_GET_ITEM(head, 0);
        if (!PyUnicode_CheckExact(lead_id))
            goto next;
        PyObject *lower = lowered(lead_id);
        if (lower == NULL)
            goto unusual;
        ident = PyTuple_Pack(2, lower, PyTuple_GET_ITEM(head, 1));
        Py_DECREF(lower);
        if (ident == NULL)
            goto error;
        int there = PyDict_Contains(seen, ident);
        if (there < 0)
            goto unusual;
        if (there)
            goto next;
        place = PyTuple_Pack(2, s[P_TOPIC], s[P_PARTITION]);
        if (place == NULL)
            goto error;
        if (sources != Py_None) {
            span = PyDict_GetItemWithError(ranges, place); /* borrowed */
            if (span == NULL && PyErr_Occurred())
                goto unusual;
            if (span != NULL && (!PyList_CheckExact(span) || PyList_GET_SIZE(span) != 2
                                 || !PyLong_CheckExact(PyList_GET_ITEM(span, 0))
                                 || !PyLong_CheckExact(PyList_GET_ITEM(span, 1))))
                goto next;
        }
        /* the order: a later offset than the partition's last, no step back */
        before = PyDict_GetItemWithError(lasts, place); /* borrowed */
        if (before == NULL && PyErr_Occurred())
            goto unusual;
        if (before == NULL || !PyList_CheckExact(before) || PyList_GET_SIZE(before) != 3
            || !PyLong_CheckExact(PyList_GET_ITEM(before, 0)) || !PyLong_CheckExact(PyList_GET_ITEM(before, 1))
            || !above(s[P_OFFSET], PyList_GET_ITEM(before, 0), 1) || !above(s[P_TIMESTAMP], PyList_GET_ITEM(before, 1), 0))
            goto next;
        /* the tally: (type name, the seal's publisher) */
        who = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(publisher), PyBytes_GET_SIZE(publisher), "replace");
        if (who == NULL)
            goto error;
        counted = PyTuple_Pack(2, PyTuple_GET_ITEM(entry, 1), who);
        if (counted == NULL)
            goto error;
        PyObject *so_far = PyDict_GetItemWithError(tally, counted);
        if (so_far == NULL && PyErr_Occurred())
            goto unusual;
        if (so_far != NULL && !PyLong_CheckExact(so_far))
            goto next;
        if (!follows && (fresh = PyList_New(1)) == NULL) /* the lane's next run, made before anything is changed */
            goto error;
        usual = 1;
        /* all four take it: now each keeps what it keeps */
        if (follows) {
            if (PyList_Append(run, link) < 0)
                goto error;
        } else { /* the lane's open run (if any) to `closing`, the link opening the next (`check_run` with (lane, link)) */
            PyList_SET_ITEM(fresh, 0, Py_NewRef(link));
            PyObject *ending = run == NULL ? NULL : PyTuple_Pack(2, lane, run);
            if ((run != NULL && ending == NULL) || PyDict_SetItem(runs, lane, fresh) < 0
                || (ending != NULL && PyList_Append(closing, ending) < 0)) {
                Py_XDECREF(ending);
                goto error;
            }
            ended = ending != NULL;
            Py_XDECREF(ending);
        }
        {
            unsigned char sum[32];
            if (!sha256_into(s[P_VALUE], sum)) {
                PyErr_SetString(PyExc_RuntimeError, "OpenSSL's SHA-256 failed");
                goto error;
            }
            PyObject *digest = PyBytes_FromStringAndSize((const char *)sum, 32);
            if (digest == NULL)
                goto error;
            int kept = 0;
            if (sources != Py_None) {
                PyObject *at = PyTuple_Pack(3, s[P_TOPIC], s[P_PARTITION], s[P_OFFSET]);
                kept = at == NULL ? -1 : PyDict_SetItem(sources, at, digest);
                Py_XDECREF(at);
                if (kept == 0 && span == NULL) {
                    PyObject *both = PyList_New(2);
                    if (both == NULL)
                        kept = -1;
                    else {
                        PyList_SET_ITEM(both, 0, Py_NewRef(s[P_OFFSET]));
                        PyList_SET_ITEM(both, 1, Py_NewRef(s[P_OFFSET]));
                        kept = PyDict_SetItem(ranges, place, both);
                        Py_DECREF(both);
                    }
                } else if (kept == 0 && above(s[P_OFFSET], PyList_GET_ITEM(span, 1), 1)) {
                    PyList_SetItem(span, 1, Py_NewRef(s[P_OFFSET]));
                } else if (kept == 0 && !above(s[P_OFFSET], PyList_GET_ITEM(span, 0), 0)) {
                    PyList_SetItem(span, 0, Py_NewRef(s[P_OFFSET]));
                }
            }
            PyObject *where = kept < 0 ? NULL : PyTuple_Pack(6, digest, s[P_TOPIC], s[P_PARTITION], s[P_OFFSET],
                                                              s[P_FILE], s[P_INDEX]);
            Py_DECREF(digest);
            kept = where == NULL ? -1 : PyDict_SetItem(seen, ident, where);
            Py_XDECREF(where);
            if (kept < 0)
                goto error;
        }
        {
            PyObject *mark = PyTuple_Pack(3, s[P_OFFSET], s[P_FILE], s[P_INDEX]);
            if (mark == NULL)
                goto error;
            PyList_SetItem(before, 0, Py_NewRef(s[P_OFFSET]));
            PyList_SetItem(before, 1, Py_NewRef(s[P_TIMESTAMP]));
            PyList_SetItem(before, 2, mark);
        }
        count = so_far == NULL ? Py_NewRef(one) : PyNumber_Add(so_far, one);
        if (count == NULL || PyDict_SetItem(tally, counted, count) < 0)
            goto error;
        put_slot(rec, P_SCHEMA, PyTuple_GET_ITEM(entry, 0));
        put_slot(rec, P_PEEK, head);
        put_slot(rec, P_SEALED, Py_True);
        goto next;
    unusual: /* an error the Python path meets again (an unhashable part, say): it judges the record */
        PyErr_Clear();
        goto next;
    error:
        failed = 1;
    next:
        Py_DECREF(head);
        Py_XDECREF(link);
        Py_XDECREF(ident);
        Py_XDECREF(place);
        Py_XDECREF(who);
        Py_XDECREF(counted);
        Py_XDECREF(count);
        Py_XDECREF(fresh);
        if (failed)
            return NULL;
        if (!usual)
            break;
    }
    return PyLong_FromSsize_t(k - (start < 0 ? 0 : start));
}

INTAKE_SHARED int plain_run_ready(void) {
    one = PyLong_FromLong(1);
    return one != NULL;
}
