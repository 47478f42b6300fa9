/* The usual record's stage seal, judged and linked in C: `StageSealVerifier._quick`'s checks of the headers and
 * `leadbus.stage_seals.link_after` (the reference, which this must agree with).
 *
 * quick_link(headers, signer, key_id, chain, link, number, lane, key, value) -> the record's link, or None
 *
 * The link when the seal's five headers come last in the stage's order, no other header is a seal's, the signer,
 * key id and chain values are those given, the number's digits are `number` (no sign, no leading zero, at most 19
 * digits) and `prev` is `link`; None for anything else, and for anything of an unusual type (a header that is not a
 * (str, bytes or None) pair, a name that is not UTF-8, a key or value that is not bytes or None, lengths past 32
 * bits): the caller then judges the record in Python, as without this module. It never says yes where Python would
 * say no, and computes the same link (SHA-256 fed by a copy of `lane`, the lane's shared head).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <string.h>

#include "_sha256.h"
#include "_slots.h"

static int native_sha; /* quick_run hashes with the SHA extensions (set at import when the CPU has them) */

static const char *SEAL_NAMES[6] = {"leadbus-stage-signer", "leadbus-stage-key-id", "leadbus-stage-chain",
                                    "leadbus-stage-seq", "leadbus-stage-prev", "leadbus-stage-signature"};

static PyObject *str_copy, *str_update, *str_digest;

static int is_name(PyObject *name, const char *expected) {
    return PyUnicode_CompareWithASCIIString(name, expected) == 0;
}

/* The str last found to be each seal's header name (held): the records' reader makes each name once and hands the same
 * str with every record (`_rdkafka.c`), so the usual record's names are known by their identity, not compared. */
static PyObject *seal_names_met[6];

/* `is_name(name, SEAL_NAMES[k])` (a str `name`) */
static int is_seal_name(PyObject *name, int k) {
    if (name == seal_names_met[k])
        return 1;
    if (!is_name(name, SEAL_NAMES[k]))
        return 0;
    Py_XSETREF(seal_names_met[k], Py_NewRef(name));
    return 1;
}

/* The (name, value) pair at `item`: 1 with a str name and a bytes-or-None value, else 0. */
static int pair(PyObject *item, PyObject **name, PyObject **value) {
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2)
        return 0;
    *name = PyTuple_GET_ITEM(item, 0);
    *value = PyTuple_GET_ITEM(item, 1);
    return PyUnicode_CheckExact(*name) && (*value == Py_None || PyBytes_CheckExact(*value));
}

static int same_bytes(PyObject *a, PyObject *b) {
    return PyBytes_CheckExact(a) && PyBytes_CheckExact(b) && PyBytes_GET_SIZE(a) == PyBytes_GET_SIZE(b)
        && memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(a)) == 0;
}

static char *put_u32(char *out, Py_ssize_t n) {
    uint32_t v = (uint32_t)n;
    out[0] = (char)(v >> 24);
    out[1] = (char)(v >> 16);
    out[2] = (char)(v >> 8);
    out[3] = (char)v;
    return out + 4;
}

static void put_sized_head(char *out, PyObject *raw) { /* the 4 bytes before `put_sized`'s raw bytes */
    if (raw == Py_None)
        memset(out, 0xFF, 4);
    else
        put_u32(out, PyBytes_GET_SIZE(raw));
}

static char *put_sized(char *out, PyObject *raw) { /* bytes: length and bytes; None: ff ff ff ff */
    if (raw == Py_None) {
        memset(out, 0xFF, 4);
        return out + 4;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    out = put_u32(out, n);
    memcpy(out, PyBytes_AS_STRING(raw), (size_t)n);
    return out + n;
}

/* `put_sized`'s bytes fed to `ctx` (the raw bytes from their own buffer) */
static void feed_sized(sha256_ctx *ctx, PyObject *raw) {
    char sized[4];
    put_sized_head(sized, raw);
    sha256_update(ctx, (const uint8_t *)sized, 4);
    if (raw != Py_None)
        sha256_update(ctx, (const uint8_t *)PyBytes_AS_STRING(raw), (size_t)PyBytes_GET_SIZE(raw));
}

#define LIMIT ((Py_ssize_t)0xFFFFFFFF)

/* The link of the usual record (a new reference), Py_None (new) for anything else, NULL on an error. SHA-256 fed by a
 * copy of `head` (the lane's head already fed) when given, else by a copy of `lane` (hashlib's, fed the same). */
static PyObject *link_of_items(PyObject **items, Py_ssize_t n, PyObject *signer, PyObject *key_id, PyObject *chain,
                               PyObject *link, unsigned long long expected, PyObject *lane, const sha256_ctx *head,
                               PyObject *key, PyObject *value) {
    Py_ssize_t base = n - 5;
    if (base < 0)
        Py_RETURN_NONE;
    PyObject *names[5], *values[5];
    for (int k = 0; k < 5; k++)
        if (!pair(items[base + k], &names[k], &values[k]) || !is_seal_name(names[k], k))
            Py_RETURN_NONE;
    PyObject *number = values[3], *prev = values[4];
    if (!same_bytes(values[0], signer) || !same_bytes(values[1], key_id) || !same_bytes(values[2], chain)
        || !same_bytes(prev, link) || !PyBytes_CheckExact(number))
        Py_RETURN_NONE;
    /* the number: digits only, no leading zero, at most 19 of them, the one expected */
    Py_ssize_t digits = PyBytes_GET_SIZE(number);
    const char *d = PyBytes_AS_STRING(number);
    if (digits < 1 || digits > 19 || d[0] == '0')
        Py_RETURN_NONE;
    unsigned long long got = 0;
    for (Py_ssize_t k = 0; k < digits; k++) {
        if (d[k] < '0' || d[k] > '9')
            Py_RETURN_NONE;
        got = got * 10 + (unsigned long long)(d[k] - '0');
    }
    if (got != expected)
        Py_RETURN_NONE;
    if ((key != Py_None && !PyBytes_CheckExact(key)) || (value != Py_None && !PyBytes_CheckExact(value)))
        Py_RETURN_NONE;
    /* the other headers: none a seal's; their names and values, length-prefixed */
    Py_ssize_t others = 0;
    for (Py_ssize_t k = 0; k < base; k++) {
        PyObject *name, *raw;
        if (!pair(items[k], &name, &raw))
            Py_RETURN_NONE;
        for (int s = 0; s < 6; s++)
            if (is_name(name, SEAL_NAMES[s]))
                Py_RETURN_NONE;
        Py_ssize_t size;
        if (PyUnicode_AsUTF8AndSize(name, &size) == NULL) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        Py_ssize_t length = raw == Py_None ? 0 : PyBytes_GET_SIZE(raw);
        if (size > LIMIT || length > LIMIT)
            Py_RETURN_NONE;
        others += 8 + size + length;
    }
    Py_ssize_t key_size = key == Py_None ? 0 : PyBytes_GET_SIZE(key);
    Py_ssize_t value_size = value == Py_None ? 0 : PyBytes_GET_SIZE(value);
    Py_ssize_t prev_size = PyBytes_GET_SIZE(prev);
    if (key_size > LIMIT || value_size > LIMIT || others > LIMIT)
        Py_RETURN_NONE;
    Py_ssize_t size = 4 + digits + 4 + key_size + 4 + value_size + 4 + others + 4 + prev_size;
    if (head != NULL) { /* SHA-256 here, from the lane's head fed once (`quick_run`): the same bytes fed piece by
                         * piece, the value from its own buffer (no copy of a 2.3 KB record into one, no allocation) */
        sha256_ctx ctx = *head;
        uint8_t digest[32];
        char small[64], *at;
        at = put_u32(small, digits);
        sha256_update(&ctx, (const uint8_t *)small, (size_t)(at - small));
        sha256_update(&ctx, (const uint8_t *)d, (size_t)digits);
        feed_sized(&ctx, key);
        feed_sized(&ctx, value);
        at = put_u32(small, others);
        sha256_update(&ctx, (const uint8_t *)small, (size_t)(at - small));
        for (Py_ssize_t k = 0; k < base; k++) {
            PyObject *name = PyTuple_GET_ITEM(items[k], 0), *raw = PyTuple_GET_ITEM(items[k], 1);
            Py_ssize_t size;
            const char *utf8 = PyUnicode_AsUTF8AndSize(name, &size);
            at = put_u32(small, size);
            sha256_update(&ctx, (const uint8_t *)small, (size_t)(at - small));
            sha256_update(&ctx, (const uint8_t *)utf8, (size_t)size);
            if (raw == Py_None) { /* a header without a value is fed as an empty one */
                at = put_u32(small, 0);
                sha256_update(&ctx, (const uint8_t *)small, (size_t)(at - small));
            } else {
                feed_sized(&ctx, raw);
            }
        }
        feed_sized(&ctx, prev);
        sha256_final(&ctx, digest);
        return PyBytes_FromStringAndSize((const char *)digest, 32);
    }
    PyObject *fed = PyBytes_FromStringAndSize(NULL, size); /* fed to a copy of `lane` (hashlib) */
    if (fed == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(fed);
    out = put_u32(out, digits);
    memcpy(out, d, (size_t)digits);
    out += digits;
    out = put_sized(out, key);
    out = put_sized(out, value);
    out = put_u32(out, others);
    for (Py_ssize_t k = 0; k < base; k++) {
        PyObject *name = PyTuple_GET_ITEM(items[k], 0), *raw = PyTuple_GET_ITEM(items[k], 1);
        Py_ssize_t size;
        const char *utf8 = PyUnicode_AsUTF8AndSize(name, &size);
        out = put_u32(out, size);
        memcpy(out, utf8, (size_t)size);
        out += size;
        if (raw == Py_None) { /* a header without a value is fed as an empty one */
            out = put_u32(out, 0);
        } else {
            out = put_sized(out, raw);
        }
    }
    out = put_sized(out, prev);
    PyObject *hash = PyObject_CallMethodNoArgs(lane, str_copy);
    if (hash == NULL) {
        Py_DECREF(fed);
        return NULL;
    }
    PyObject *done = PyObject_CallMethodOneArg(hash, str_update, fed);
    Py_DECREF(fed);
    if (done == NULL) {
        Py_DECREF(hash);
        return NULL;
    }
    Py_DECREF(done);
    PyObject *digest = PyObject_CallMethodNoArgs(hash, str_digest);
    Py_DECREF(hash);
    return digest;
}

/* `link_of_items` over a list or tuple of headers (None for anything else). */
static PyObject *link_of(PyObject *headers, PyObject *signer, PyObject *key_id, PyObject *chain, PyObject *link,
                         unsigned long long expected, PyObject *lane, const sha256_ctx *head, PyObject *key,
                         PyObject *value) {
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers))
        Py_RETURN_NONE;
    return link_of_items(PySequence_Fast_ITEMS(headers), PySequence_Fast_GET_SIZE(headers), signer, key_id, chain, link,
                         expected, lane, head, key, value);
}

/* A sequence number expected, as an exact int of 64 bits at most (19 digits fit): 1, else 0 (never matched). */
static int number_of(PyObject *number, unsigned long long *out) {
    if (!PyLong_CheckExact(number))
        return 0;
    *out = PyLong_AsUnsignedLongLong(number);
    if (*out == (unsigned long long)-1 && PyErr_Occurred()) { /* negative, or past 64 bits */
        PyErr_Clear();
        return 0;
    }
    return 1;
}

static PyObject *quick_link(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "quick_link takes 9 arguments");
        return NULL;
    }
    unsigned long long expected;
    if (!number_of(args[5], &expected))
        Py_RETURN_NONE;
    return link_of(args[0], args[1], args[2], args[3], args[4], expected, args[6], NULL, args[7], args[8]);
}

/* Whether `ms` (a record's timestamp) is an exact int > 0 within [start, until) and before `revoked` (None: no bound).
 * -1 on an error. */
static int in_bounds(PyObject *ms, PyObject *start, PyObject *until, PyObject *revoked) {
    if (!PyLong_CheckExact(ms))
        return 0;
    int overflow;
    long long t = PyLong_AsLongLongAndOverflow(ms, &overflow);
    if (overflow || (t == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (t <= 0)
        return 0;
    PyObject *bounds[3] = {start, until, revoked};
    for (int k = 0; k < 3; k++) {
        if (bounds[k] == Py_None)
            continue;
        long long b = PyLong_AsLongLongAndOverflow(bounds[k], &overflow);
        if (overflow || (b == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        if (k == 0 ? t < b : t >= b)
            return 0;
    }
    return 1;
}

static PyObject *str_topic, *str_partition, *str_headers, *str_key, *str_value, *str_timestamp_ms, *str_pending;
static PyObject *str_sealed;

/* The record class named by `record_class` (`ReplayRecord`): its attributes read here are slots, read and set
 * directly in its instances (a look-up in the class's dict and a descriptor call each, 8 per record of a run, saved);
 * any other object's by `getattr` / `setattr`. */
#define N_KNOWN 9
static PyTypeObject *record_type;
static PyObject *known_names[N_KNOWN];
static Py_ssize_t known_offsets[N_KNOWN];

static Py_ssize_t known_slot(PyObject *record, PyObject *name) {
    if (record_type == NULL || !Py_IS_TYPE(record, record_type))
        return -1;
    for (int k = 0; k < N_KNOWN; k++)
        if (known_names[k] == name)
            return known_offsets[k];
    return -1;
}

/* `getattr(record, name)`: a new reference, or NULL with the error getattr raises (a slot never set) */
static PyObject *get_attr(PyObject *record, PyObject *name) {
    Py_ssize_t at = known_slot(record, name);
    if (at >= 0 && SLOT(record, at) != NULL)
        return Py_NewRef(SLOT(record, at));
    return PyObject_GetAttr(record, name);
}

/* `setattr(record, name, value)` */
static int set_attr(PyObject *record, PyObject *name, PyObject *value) {
    Py_ssize_t at = known_slot(record, name);
    if (at < 0)
        return PyObject_SetAttr(record, name, value);
    PyObject *old = SLOT(record, at);
    SLOT(record, at) = Py_NewRef(value);
    Py_XDECREF(old);
    return 0;
}

/* The record's attribute `name` compared: 1 the same str (topic) or int (partition), 0 not, -1 on an error. */
static int same_attr(PyObject *record, PyObject *name, PyObject *expected) {
    PyObject *got = get_attr(record, name);
    if (got == NULL)
        return -1;
    int same = got == expected;
    if (!same && Py_TYPE(got) == Py_TYPE(expected) && (PyUnicode_CheckExact(got) || PyLong_CheckExact(got))) {
        same = PyObject_RichCompareBool(got, expected, Py_EQ);
    }
    Py_DECREF(got);
    return same;
}

/* The record's link when it is the usual record of the lane (see `quick_run`; with `signed`, the usual record closing
 * a run: the same seal and a 64-byte signature after it, last, which the link does not cover, given in `*signature`
 * as a new reference), a new Py_None when it is not, NULL on an error. */
static PyObject *usual_link(PyObject *record, PyObject *topic, PyObject *partition, PyObject *signer, PyObject *key_id,
                            PyObject *chain, PyObject *link, unsigned long long number, PyObject *lane,
                            const sha256_ctx *head, PyObject *const *bounds, int signed_, PyObject **signature) {
    int same = same_attr(record, str_topic, topic);
    if (same > 0)
        same = same_attr(record, str_partition, partition);
    if (same < 0)
        return NULL;
    if (!same)
        Py_RETURN_NONE;
    PyObject *ms = get_attr(record, str_timestamp_ms);
    if (ms == NULL)
        return NULL;
    int valid = in_bounds(ms, bounds[0], bounds[1], bounds[2]);
    Py_DECREF(ms);
    if (!valid)
        Py_RETURN_NONE;
    PyObject *headers = get_attr(record, str_headers);
    if (headers == NULL)
        return NULL;
    PyObject *result = NULL, *key = NULL, *value = NULL;
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject **items = PySequence_Fast_ITEMS(headers);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    PyObject *last_name, *last_value = NULL;
    if (signed_) { /* the signature last, 64 bytes: the link is over the headers before it */
        if (n < 6 || !pair(items[n - 1], &last_name, &last_value) || !is_seal_name(last_name, 5)
            || last_value == Py_None || PyBytes_GET_SIZE(last_value) != 64) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        n--;
    }
    key = get_attr(record, str_key);
    if (key == NULL)
        goto done;
    value = get_attr(record, str_value);
    if (value == NULL)
        goto done;
    result = link_of_items(items, n, signer, key_id, chain, link, number, lane, head, key, value);
    if (result != NULL && result != Py_None) {
        if (signed_)
            *signature = Py_NewRef(last_value);
        /* the seal's headers and nothing else: no agency seal header (`ReplayRecord.has_seal`, read once) */
        if (n == 5 && set_attr(record, str_sealed, Py_False) < 0)
            Py_CLEAR(result);
    }
done:
    Py_DECREF(headers);
    Py_XDECREF(key);
    Py_XDECREF(value);
    return result;
}

/* quick_run(records, start, stop, topic, partition, signer, key_id, chain, link, number, lane, start_ms, until_ms,
 *           revoked_ms, vouching, head[, signed]) -> (count, link) or, with `signed`, (count, link, closing)
 *
 * From records[start] on (a list), before `stop`: how many records in a row are the usual record of the lane whose
 * state is given (the topic and partition, the seal's headers as `quick_link` takes them, number `number` and `prev`
 * `link` for the first, each following the one before, at a time the key is valid: > 0, from `start_ms`, before
 * `until_ms` and `revoked_ms`, None for no bound), and the link of the last of them (`link` when none); each of them
 * set `pending` when `vouching` (and `_sealed` False, no agency seal, when its headers are the seal's five alone). The
 * first record that is not such a record ends the count: the caller judges it.
 * With `signed` true, `closing` tells of that first record (before `stop`) when it is the usual record closing the run
 * (as above, and the stage's signature last, 64 bytes, after the seal): (its link, its signature), else None. Only its
 * `_sealed` may be set on it (False with the seal's six headers alone); its signature is not verified here: the
 * caller does what `check` does with it.
 * `head`: the bytes `lane` was fed (`leadbus.stage_seals._lane_head`), hashed here with the CPU's SHA instructions
 * (`native_sha`), else `lane` is copied per record as `quick_link` does. */
static PyObject *quick_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 16 && nargs != 17) {
        PyErr_SetString(PyExc_TypeError, "quick_run takes 16 or 17 arguments");
        return NULL;
    }
    int signed_ = 0;
    if (nargs == 17 && (signed_ = PyObject_IsTrue(args[16])) < 0)
        return NULL;
    sha256_ctx lane_head, *head = NULL;
    if (native_sha && PyBytes_CheckExact(args[15])) { /* the lane's head, fed once for the whole run */
        sha256_init(&lane_head);
        sha256_update(&lane_head, (const uint8_t *)PyBytes_AS_STRING(args[15]), (size_t)PyBytes_GET_SIZE(args[15]));
        head = &lane_head;
    }
    PyObject *records = args[0], *topic = args[3], *partition = args[4], *signer = args[5], *key_id = args[6];
    PyObject *chain = args[7], *lane = args[10];
    PyObject *const *bounds = args + 11; /* start_ms, until_ms, revoked_ms */
    int vouching = PyObject_IsTrue(args[14]);
    if (vouching < 0)
        return NULL;
    if (!PyList_CheckExact(records) || !PyLong_CheckExact(args[1]) || !PyLong_CheckExact(args[2])
        || !PyLong_CheckExact(args[9]) || !PyBytes_CheckExact(args[8])) {
        PyErr_SetString(PyExc_TypeError, "quick_run: records a list, start, stop and number ints, link bytes");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]), stop = PyLong_AsSsize_t(args[2]);
    if ((start == -1 || stop == -1) && PyErr_Occurred())
        return NULL;
    if (stop > PyList_GET_SIZE(records))
        stop = PyList_GET_SIZE(records);
    if (start < 0)
        start = stop; /* nothing taken (a negative index is no record of the run) */
    PyObject *link = Py_NewRef(args[8]);
    unsigned long long number;
    Py_ssize_t i = start;
    int numbered = number_of(args[9], &number);
    if (!numbered)
        stop = start;
    for (; i < stop; i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        PyObject *next = usual_link(record, topic, partition, signer, key_id, chain, link, number, lane, head, bounds, 0,
                                    NULL);
        if (next == NULL)
            goto error;
        if (next == Py_None) {
            Py_DECREF(next);
            break;
        }
        Py_SETREF(link, next);
        number++;
        if (vouching && set_attr(record, str_pending, Py_True) < 0)
            goto error;
    }
    if (!signed_)
        return Py_BuildValue("(nN)", i - start, link);
    PyObject *closing = Py_NewRef(Py_None);
    if (i < stop) { /* the record that ended the run: the one closing it, signed? */
        PyObject *signature = NULL;
        PyObject *closed = usual_link(PyList_GET_ITEM(records, i), topic, partition, signer, key_id, chain, link, number,
                                      lane, head, bounds, 1, &signature);
        if (closed == NULL) {
            Py_DECREF(closing);
            goto error;
        }
        if (closed != Py_None)
            Py_SETREF(closing, Py_BuildValue("(NN)", closed, signature));
        else
            Py_DECREF(closed);
        if (closing == NULL)
            goto error;
    }
    return Py_BuildValue("(nNN)", i - start, link, closing);
error:
    Py_DECREF(link);
    return NULL;
}

static PyObject *str_popleft, *str_trusted;

/* trusted_run(held, topic) -> list
 *
 * The records popped from the left of `held` (a deque) while the first is not `pending`, is `trusted`, has a value
 * (not None) and is of `topic` (equal): the rest of a trusted run the replay's loop lets go (`take_trusted` in
 * `leadbus.audit.stage_seals`, the reference). An error raised by a record's attributes is raised, with the records
 * popped before it lost to the caller as the reference loses them (the loop locates nothing there: its records are
 * its own). */
static PyObject *trusted_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "trusted_run takes 2 arguments");
        return NULL;
    }
    PyObject *held = args[0], *topic = args[1];
    PyObject *run = PyList_New(0);
    if (run == NULL)
        return NULL;
    for (;;) {
        Py_ssize_t size = PyObject_Length(held);
        if (size < 0)
            goto error;
        if (size == 0)
            break;
        PyObject *head = PySequence_GetItem(held, 0);
        if (head == NULL)
            goto error;
        int go = 1;
        PyObject *got = get_attr(head, str_pending);
        if (got == NULL)
            go = -1;
        else {
            int pending = PyObject_IsTrue(got);
            Py_DECREF(got);
            go = pending < 0 ? -1 : !pending;
        }
        if (go > 0) {
            got = get_attr(head, str_trusted);
            if (got == NULL)
                go = -1;
            else {
                go = PyObject_IsTrue(got);
                Py_DECREF(got);
            }
        }
        if (go > 0) {
            got = get_attr(head, str_value);
            if (got == NULL)
                go = -1;
            else {
                go = got != Py_None;
                Py_DECREF(got);
            }
        }
        if (go > 0) {
            got = get_attr(head, str_topic);
            if (got == NULL)
                go = -1;
            else {
                int other = PyObject_RichCompareBool(got, topic, Py_NE);
                Py_DECREF(got);
                go = other < 0 ? -1 : !other;
            }
        }
        Py_DECREF(head);
        if (go < 0)
            goto error;
        if (!go)
            break;
        PyObject *popped = PyObject_CallMethodNoArgs(held, str_popleft);
        if (popped == NULL)
            goto error;
        int added = PyList_Append(run, popped);
        Py_DECREF(popped);
        if (added < 0)
            goto error;
    }
    return run;
error:
    Py_DECREF(run);
    return NULL;
}

/* libsodium's crypto_sign_verify_detached, from the copy PyNaCl loaded (`use_sodium`); NULL until found. The very
 * function PyNaCl's crypto_sign_open calls (crypto_sign_ed25519_open verifies by it before copying the message out),
 * so the verdicts are the same, without the signed message built, the buffers made and the message copied back. */
typedef int (*verify_fn)(const unsigned char *sig, const unsigned char *m, unsigned long long mlen,
                         const unsigned char *pk);
static verify_fn sodium_verify;

/* use_sodium(path) -> whether `verified` verifies by the libsodium of the shared object at `path` (PyNaCl's, already
 * loaded: it is not loaded here, only looked up). */
static PyObject *use_sodium(PyObject *module, PyObject *path) {
    const char *name = PyUnicode_AsUTF8(path);
    if (name == NULL)
        return NULL;
    sodium_verify = NULL;
    void *handle = dlopen(name, RTLD_NOW | RTLD_NOLOAD); /* kept open: PyNaCl keeps it loaded anyway */
    if (handle != NULL)
        sodium_verify = (verify_fn)dlsym(handle, "crypto_sign_verify_detached");
    return PyBool_FromLong(sodium_verify != NULL);
}

/* verified(public_key, signature, message) -> whether `signature` is the Ed25519 signature of `message` under
 * `public_key` as libsodium judges it (`leadbus.signing._verified`: False for a key not of 32 bytes or a signature
 * not of 64); None when `use_sodium` found no libsodium, or for arguments that are not all bytes. */
static PyObject *verified(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "verified takes 3 arguments");
        return NULL;
    }
    if (sodium_verify == NULL)
        Py_RETURN_NONE;
    PyObject *key = args[0], *signature = args[1], *message = args[2];
    if (!PyBytes_CheckExact(key) || !PyBytes_CheckExact(signature) || !PyBytes_CheckExact(message))
        Py_RETURN_NONE; /* the caller's own verification judges anything else */
    if (PyBytes_GET_SIZE(key) != 32 || PyBytes_GET_SIZE(signature) != 64)
        Py_RETURN_FALSE;
    int rc;
    Py_BEGIN_ALLOW_THREADS /* the bytes are immutable and held by the caller */
    rc = sodium_verify((const unsigned char *)PyBytes_AS_STRING(signature),
                       (const unsigned char *)PyBytes_AS_STRING(message),
                       (unsigned long long)PyBytes_GET_SIZE(message), (const unsigned char *)PyBytes_AS_STRING(key));
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(rc == 0);
}

/* native_sha(use) -> whether the links of `quick_run` are hashed here (the CPU's SHA extensions, when it has them and
 * `use` is true) rather than by hashlib: tests compare both. */
static PyObject *set_native_sha(PyObject *module, PyObject *use) {
    int on = PyObject_IsTrue(use);
    if (on < 0)
        return NULL;
    native_sha = on && sha256_choose(1);
    return PyBool_FromLong(native_sha);
}

/* record_class(cls): the class whose instances' slots `quick_run` and `trusted_run` read directly (TypeError when
 * one of the attributes they read is no object slot of it: nothing changed). */
static PyObject *record_class(PyObject *module, PyObject *cls) {
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "record_class(cls): a class");
        return NULL;
    }
    PyObject *names[N_KNOWN] = {str_topic, str_partition, str_headers, str_key, str_value, str_timestamp_ms,
                                str_pending, str_sealed, str_trusted};
    Py_ssize_t offsets[N_KNOWN];
    for (int k = 0; k < N_KNOWN; k++)
        if ((offsets[k] = slot_offset((PyTypeObject *)cls, names[k])) < 0)
            return NULL;
    for (int k = 0; k < N_KNOWN; k++) {
        known_names[k] = names[k];
        known_offsets[k] = offsets[k];
    }
    Py_XSETREF(record_type, (PyTypeObject *)Py_NewRef(cls));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"record_class", (PyCFunction)record_class, METH_O,
     "record_class(cls): the record class whose slots quick_run and trusted_run read directly"},
    {"native_sha", (PyCFunction)set_native_sha, METH_O,
     "native_sha(use) -> whether quick_run hashes with the CPU's SHA instructions (when it has them and use is true)"},
    {"quick_link", (PyCFunction)(void (*)(void))quick_link, METH_FASTCALL,
     "quick_link(headers, signer, key_id, chain, link, number, lane, key, value) -> the link, or None"},
    {"quick_run", (PyCFunction)(void (*)(void))quick_run, METH_FASTCALL,
     "quick_run(records, start, stop, topic, partition, signer, key_id, chain, link, number, lane, start_ms, until_ms, "
     "revoked_ms, vouching, head[, signed]) -> (count, link[, closing])"},
    {"trusted_run", (PyCFunction)(void (*)(void))trusted_run, METH_FASTCALL,
     "trusted_run(held, topic) -> the records popped from the left of held while trusted, let go, of topic"},
    {"use_sodium", (PyCFunction)use_sodium, METH_O,
     "use_sodium(path) -> whether verified uses the libsodium of the (loaded) shared object at path"},
    {"verified", (PyCFunction)(void (*)(void))verified, METH_FASTCALL,
     "verified(public_key, signature, message) -> the Ed25519 verdict of libsodium, None without it"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_seal_link", "The usual stage seal judged and linked in C (see StageSealVerifier._quick).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__seal_link(void) {
    str_copy = PyUnicode_InternFromString("copy");
    str_update = PyUnicode_InternFromString("update");
    str_digest = PyUnicode_InternFromString("digest");
    str_topic = PyUnicode_InternFromString("topic");
    str_partition = PyUnicode_InternFromString("partition");
    str_headers = PyUnicode_InternFromString("headers");
    str_key = PyUnicode_InternFromString("key");
    str_value = PyUnicode_InternFromString("value");
    str_timestamp_ms = PyUnicode_InternFromString("timestamp_ms");
    str_pending = PyUnicode_InternFromString("pending");
    str_sealed = PyUnicode_InternFromString("_sealed");
    str_popleft = PyUnicode_InternFromString("popleft");
    str_trusted = PyUnicode_InternFromString("trusted");
    if (str_copy == NULL || str_update == NULL || str_digest == NULL || str_topic == NULL || str_partition == NULL
        || str_headers == NULL || str_key == NULL || str_value == NULL || str_timestamp_ms == NULL
        || str_pending == NULL || str_sealed == NULL || str_popleft == NULL || str_trusted == NULL)
        return NULL;
    native_sha = sha256_choose(1);
    return PyModule_Create(&module);
}
