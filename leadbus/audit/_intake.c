/* The replay's hot path over intake records in C: the usual agency seal read and linked for `BusSealVerifier._quick`
 * (`leadbus.audit.seals`: `_chained_fields` and the link of `leadbus.signing`, the references this must agree with),
 * and a lead's head read from the front of its body (`leadbus.audit.verification._peek_usual`, its reference).
 *
 * chained_fields(headers) -> the six raw values of a chained seal, None, or False
 *
 *   What `seals._chained_fields` gives, for headers that are a tuple or list of (str, bytes or None) pairs; False for
 *   anything else (another type, a str subclass): the caller then asks the Python reference.
 *
 * link_digest(head, sequence, value, prev, signature) -> SHA-256 of the signed message and signature, or None
 *
 *   `link_digest(head + len(sequence) + sequence + len(value) + value + len(prev) + prev, signature)` (4-byte big-endian
 *   lengths: `signed_message` of a v2 seal, whose shared head is `head`) without joining the message; None when an
 *   argument is not bytes or a length does not fit 32 bits (the caller joins it in Python, as without this module).
 *
 * peek_usual(value, cls) -> cls(lead_id, revision, agency, province), or None
 *
 *   What `_peek_usual` gives for bytes (`cls`: `LeadHead`, a tuple's subclass, made as `tuple.__new__` makes it); None
 *   wherever it gives None, and for anything that is not bytes (the caller's general reader then decides).
 *
 * sha256(value) -> hashlib.sha256(value).digest() for bytes, or None (the caller hashes it with hashlib)
 *
 * plain_run(records, start, state) -> how many usual records of a plain intake stretch were judged and counted
 *
 *   The usual records of a stretch of one intake topic no stage seal covers, from `start` on, taken by the four checks
 *   that apply to it (partition order, decode, intake leads, agency seal) and the tally at once, up to the first record
 *   one of them would not take its usual way (see the function; `leadbus.audit.intake_runs`).
 *
 * The digest is OpenSSL's SHA-256 (libcrypto, the library hashlib uses), fed the parts one after the other.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <openssl/evp.h>
#include <string.h>
#include "_intake.h"

static const char *SEAL_NAMES[6] = {"leadbus-publisher", "leadbus-key-id", "leadbus-partition", "leadbus-seq",
                                    "leadbus-signature", "leadbus-prev"};

static Py_ssize_t lengths[6];
static EVP_MD *sha256;
static EVP_MD_CTX *context;
static const char *chain_start; /* CHAIN_START: 32 zero bytes */

/* Which of the seal's six names `name` (an exact str) is (0..5), or -1: by its length and bytes (all six are ASCII). */
static int seal_name(PyObject *name) {
    if (!PyUnicode_IS_COMPACT_ASCII(name))
        return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(name);
    const char *text = (const char *)PyUnicode_1BYTE_DATA(name);
    if (n < 11 || memcmp(text, "leadbus-", 8) != 0)
        return -1;
    for (int s = 0; s < 6; s++)
        if (n == lengths[s] && memcmp(text + 8, SEAL_NAMES[s] + 8, (size_t)(n - 8)) == 0)
            return s;
    return -1;
}

static int digits(PyObject *raw, Py_ssize_t most) { /* bytes.isdigit() and at most `most` of them */
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    const char *d = PyBytes_AS_STRING(raw);
    if (n < 1 || n > most)
        return 0;
    for (Py_ssize_t k = 0; k < n; k++)
        if (d[k] < '0' || d[k] > '9')
            return 0;
    return 1;
}

/* The items of a chained seal's six values in the SDK's shape (`seals._chained_fields`) put in `out` (borrowed): 1;
 * 0 for headers that are no such seal (None); -1 for headers of unusual types (False: the reference reads them). */
static int fields_of(PyObject *headers, PyObject *out[6]) {
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers))
        return -1;
    PyObject **items = PySequence_Fast_ITEMS(headers);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    if (n > 64) /* more headers than any producer writes: the reference judges them */
        return -1;
    int names[64];
    for (Py_ssize_t k = 0; k < n; k++) { /* every pair of the usual types first: else the reference judges */
        PyObject *item = items[k];
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 0)))
            return -1;
        PyObject *value = PyTuple_GET_ITEM(item, 1);
        if (value != Py_None && !PyBytes_CheckExact(value))
            return -1;
        names[k] = seal_name(PyTuple_GET_ITEM(item, 0));
    }
    if (n < 6)
        return 0;
    Py_ssize_t at = 0;
    while (at < n && names[at] != 0) { /* the first seal header must be the publisher's */
        if (names[at] > 0)
            return 0;
        at++;
    }
    if (at + 6 > n)
        return 0;
    for (int s = 0; s < 6; s++)
        if (names[at + s] != s || !PyBytes_CheckExact(PyTuple_GET_ITEM(items[at + s], 1)))
            return 0;
    for (Py_ssize_t k = at + 6; k < n; k++)
        if (names[k] >= 0)
            return 0;
    for (int s = 0; s < 6; s++)
        out[s] = PyTuple_GET_ITEM(items[at + s], 1);
    if (!digits(out[2], 9) || !digits(out[3], 19) || PyBytes_GET_SIZE(out[4]) != 64 || PyBytes_GET_SIZE(out[5]) != 32)
        return 0;
    return 1;
}

static PyObject *chained_fields(PyObject *module, PyObject *headers) {
    PyObject *f[6];
    int got = fields_of(headers, f);
    if (got < 0)
        Py_RETURN_FALSE;
    if (got == 0)
        Py_RETURN_NONE;
    return PyTuple_Pack(6, f[0], f[1], f[2], f[3], f[4], f[5]);
}

#define LIMIT ((Py_ssize_t)0xFFFFFFFF)

static void length(unsigned char *out, Py_ssize_t n) {
    uint32_t v = (uint32_t)n;
    out[0] = (unsigned char)(v >> 24);
    out[1] = (unsigned char)(v >> 16);
    out[2] = (unsigned char)(v >> 8);
    out[3] = (unsigned char)v;
}

/* The digest being made: OpenSSL's (the CPU's SHA instructions through `_sha256.h` were measured 8 % faster per
 * digest at these sizes: not worth a second implementation here). */
static int begin(void) {
    return EVP_DigestInit_ex2(context, sha256, NULL);
}

static int update(const void *data, size_t n) {
    return EVP_DigestUpdate(context, data, n);
}

static int end(unsigned char *digest) { /* 32 bytes */
    unsigned int size = 0;
    return EVP_DigestFinal_ex(context, digest, &size) && size == 32;
}

static int feed(PyObject *raw, int sized) {
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    if (sized) {
        unsigned char prefix[4];
        length(prefix, n);
        if (!update(prefix, 4))
            return 0;
    }
    return update(PyBytes_AS_STRING(raw), (size_t)n);
}

/* The link digest of a v2 seal's message of these parts and its signature (`link_digest`), into `digest` (32 bytes):
 * 1, or 0 with an error set. All five are bytes of at most 32-bit lengths (the caller made sure). */
static int digest_link(PyObject *head, PyObject *sequence, PyObject *value, PyObject *prev, PyObject *signature,
                       unsigned char *digest) {
    if (!begin() || !feed(head, 0) || !feed(sequence, 1) || !feed(value, 1) || !feed(prev, 1) || !feed(signature, 0)
        || !end(digest)) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL's SHA-256 failed");
        return 0;
    }
    return 1;
}

static PyObject *link_digest(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "link_digest takes 5 arguments");
        return NULL;
    }
    for (Py_ssize_t k = 0; k < 5; k++)
        if (!PyBytes_CheckExact(args[k]) || PyBytes_GET_SIZE(args[k]) > LIMIT)
            Py_RETURN_NONE;
    unsigned char digest[32];
    if (!digest_link(args[0], args[1], args[2], args[3], args[4], digest))
        return NULL;
    return PyBytes_FromStringAndSize((const char *)digest, 32);
}

INTAKE_SHARED int sha256_into(PyObject *value, unsigned char *digest) {
    return begin() && feed(value, 0) && end(digest);
}

static PyObject *sha256_of(PyObject *module, PyObject *value) {
    if (!PyBytes_CheckExact(value))
        Py_RETURN_NONE;
    unsigned char digest[32];
    if (!begin() || !feed(value, 0) || !end(digest)) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL's SHA-256 failed");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)digest, 32);
}

static PyObject *s_headers, *s_topic, *s_partition, *s_offset, *s_timestamp_ms, *s_key, *s_value, *s_file, *s_index;
INTAKE_SHARED PyObject *zero;

/* The record's attributes that `quick_seal` reads (new references), or 0 with no error set when one is missing. */
static int read_record(PyObject *record, PyObject *names[], PyObject *out[], int n) {
    for (int k = 0; k < n; k++) {
        out[k] = PyObject_GetAttr(record, names[k]);
        if (out[k] == NULL) {
            PyErr_Clear();
            for (int j = 0; j < k; j++)
                Py_DECREF(out[j]);
            return 0;
        }
    }
    return 1;
}

/* Whether `bound` (an int, or None: no bound) is such that the record's time `ms` passes: `ms < bound` for `below`,
 * else `ms >= bound`. -1 on error. */
static int within(PyObject *ms, PyObject *bound, int below) {
    if (bound == Py_None)
        return 1;
    return PyObject_RichCompareBool(ms, bound, below ? Py_LT : Py_GE);
}

/* quick_seal(record, lead, signers, covers, runs, window) -> True, (lane, link), or None
 *
 * What `BusSealVerifier._quick` does for a CaseLead whose head `lead` was read (`record.lead_head()`), in one call:
 * the usual chained seal of a signer already judged on this topic and partition (`signers`, its `_quick_signers`),
 * within its key's validity, a sequence number as `str(int)` writes it, the lead's agency and province spoken for by
 * the publisher (`covers` holds True) and the Kafka key the lead's id. Then the record's link goes on its lane's open
 * run in `runs` (True) when it links to the run's last and the run holds fewer than `window`; else the lane and the
 * link are given back for the caller to close the run and open another. None for anything else, with nothing done:
 * the caller's Python path judges the record (the reference). */
/* The usual record's seal as `quick_seal` judges it, from the record's fields `r` (headers, topic, partition,
 * timestamp_ms, key, value, offset, file, index: `QUICK_FIELDS`) and its lead's head: 1 with its link (a new
 * reference), its lane and its lane's open run (borrowed; the run NULL when there is none) and whether the link follows
 * that run, and the `leadbus-publisher` header's value (borrowed); 0 for anything else; -1 with an error set. Nothing
 * is changed. */
INTAKE_SHARED int seal_link(PyObject *const r[], PyObject *lead, PyObject *signers, PyObject *covers, PyObject *runs,
                     Py_ssize_t window, PyObject **link_out, PyObject **lane_out, PyObject **run_out, int *follows_out,
                     PyObject **publisher_out) {
    PyObject *headers = r[0], *topic = r[1], *partition = r[2], *ms = r[3], *key = r[4], *value = r[5];
    PyObject *lookup = NULL, *cover = NULL, *sequence = NULL, *link = NULL;
    int result = -1;
    PyObject *f[6];
    if (!PyTuple_Check(lead) || PyTuple_GET_SIZE(lead) != 4)
        return 0;
    if (fields_of(headers, f) != 1 || !PyUnicode_CheckExact(topic) || !PyLong_CheckExact(partition)
        || !PyLong_CheckExact(ms) || !PyBytes_CheckExact(key) || !PyBytes_CheckExact(value)
        || PyBytes_GET_SIZE(value) > LIMIT)
        return 0;
    lookup = PyTuple_Pack(4, f[0], f[1], topic, partition);
    if (lookup == NULL)
        goto done;
    PyObject *signer = PyDict_GetItemWithError(signers, lookup); /* borrowed */
    if (signer == NULL) {
        if (PyErr_Occurred())
            goto done;
        goto usual_not;
    }
    /* publisher, key id, public key, start, until, revoked, the partition as its header reads, head, lane */
    if (!PyTuple_CheckExact(signer) || PyTuple_GET_SIZE(signer) != 9)
        goto usual_not;
    PyObject *publisher = PyTuple_GET_ITEM(signer, 0), *head = PyTuple_GET_ITEM(signer, 7);
    PyObject *partition_text = PyTuple_GET_ITEM(signer, 6), *lane = PyTuple_GET_ITEM(signer, 8);
    if (!PyBytes_CheckExact(partition_text) || !PyBytes_CheckExact(head) || PyBytes_GET_SIZE(head) > LIMIT
        || PyBytes_GET_SIZE(partition_text) != PyBytes_GET_SIZE(f[2])
        || memcmp(PyBytes_AS_STRING(partition_text), PyBytes_AS_STRING(f[2]), (size_t)PyBytes_GET_SIZE(f[2])) != 0
        || PyBytes_AS_STRING(f[3])[0] == '0')
        goto usual_not;
    int ok = PyObject_RichCompareBool(ms, zero, Py_GT);
    if (ok == 1)
        ok = within(ms, PyTuple_GET_ITEM(signer, 5), 1); /* before its revocation */
    if (ok == 1)
        ok = within(ms, PyTuple_GET_ITEM(signer, 3), 0); /* from its start */
    if (ok == 1)
        ok = within(ms, PyTuple_GET_ITEM(signer, 4), 1); /* before its end */
    if (ok < 0)
        goto done;
    if (!ok)
        goto usual_not;
    /* the content: the lead's agency and province spoken for by the publisher, its id the Kafka key */
    PyObject *lead_id = PyTuple_GET_ITEM(lead, 0);
    cover = PyTuple_Pack(3, publisher, PyTuple_GET_ITEM(lead, 2), PyTuple_GET_ITEM(lead, 3));
    if (cover == NULL)
        goto done;
    PyObject *speaks = PyDict_GetItemWithError(covers, cover);
    if (speaks == NULL && PyErr_Occurred())
        goto done;
    if (speaks != Py_True || !PyUnicode_CheckExact(lead_id))
        goto usual_not;
    Py_ssize_t id_size;
    const char *id = PyUnicode_AsUTF8AndSize(lead_id, &id_size);
    if (id == NULL) { /* not UTF-8 (a lone surrogate): the Python path says what it makes of it */
        PyErr_Clear();
        goto usual_not;
    }
    if (id_size != PyBytes_GET_SIZE(key) || memcmp(id, PyBytes_AS_STRING(key), (size_t)id_size) != 0)
        goto usual_not;
    /* the lane's open run, as `_quick` reads it: a list of links whose last one's digest is at [5] */
    PyObject *run = PyDict_GetItemWithError(runs, lane);
    if (run == NULL && PyErr_Occurred())
        goto done;
    int follows = 0;
    unsigned char digest[32];
    if (run != NULL) {
        if (!PyList_CheckExact(run) || PyList_GET_SIZE(run) == 0)
            goto usual_not;
        PyObject *last = PyList_GET_ITEM(run, PyList_GET_SIZE(run) - 1);
        if (!PyTuple_CheckExact(last) || PyTuple_GET_SIZE(last) != 7 || !PyBytes_CheckExact(PyTuple_GET_ITEM(last, 5)))
            goto usual_not;
        PyObject *before = PyTuple_GET_ITEM(last, 5);
        follows = PyList_GET_SIZE(run) < window && PyBytes_GET_SIZE(before) == 32
                  && memcmp(PyBytes_AS_STRING(before), PyBytes_AS_STRING(f[5]), 32) == 0
                  && memcmp(PyBytes_AS_STRING(f[5]), chain_start, 32) != 0;
    }
    if (!digest_link(head, f[3], value, f[5], f[4], digest))
        goto done;
    sequence = PyLong_FromString(PyBytes_AS_STRING(f[3]), NULL, 10);
    if (sequence == NULL)
        goto done;
    {
        PyObject *where = PyTuple_Pack(5, topic, partition, r[6], r[7], r[8]);
        PyObject *parts = PyTuple_Pack(4, head, f[3], value, f[5]);
        PyObject *linked = PyBytes_FromStringAndSize((const char *)digest, 32);
        if (where != NULL && parts != NULL && linked != NULL)
            link = PyTuple_Pack(7, where, sequence, f[4], PyTuple_GET_ITEM(signer, 1), parts, linked,
                                PyTuple_GET_ITEM(signer, 2));
        Py_XDECREF(where);
        Py_XDECREF(parts);
        Py_XDECREF(linked);
        if (link == NULL)
            goto done;
    }
    *link_out = link;
    link = NULL;
    *lane_out = lane;
    *run_out = run;
    *follows_out = follows;
    *publisher_out = f[0];
    result = 1;
    goto done;
usual_not:
    result = 0;
done:
    Py_XDECREF(lookup);
    Py_XDECREF(cover);
    Py_XDECREF(sequence);
    Py_XDECREF(link);
    return result;
}

/* quick_seal(record, lead, signers, covers, runs, window) -> True, (lane, link), or None
 *
 * What `BusSealVerifier._quick` does for a CaseLead whose head `lead` was read (`record.lead_head()`), in one call:
 * the usual chained seal of a signer already judged on this topic and partition (`signers`, its `_quick_signers`),
 * within its key's validity, a sequence number as `str(int)` writes it, the lead's agency and province spoken for by
 * the publisher (`covers` holds True) and the Kafka key the lead's id. Then the record's link goes on its lane's open
 * run in `runs` (True) when it links to the run's last and the run holds fewer than `window`; else the lane and the
 * link are given back for the caller to close the run and open another. None for anything else, with nothing done:
 * the caller's Python path judges the record (the reference). */
static PyObject *quick_seal(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyDict_CheckExact(args[2]) || !PyDict_CheckExact(args[3]) || !PyDict_CheckExact(args[4])
        || !PyLong_CheckExact(args[5])) {
        PyErr_SetString(PyExc_TypeError, "quick_seal(record, lead, signers: dict, covers: dict, runs: dict, window)");
        return NULL;
    }
    Py_ssize_t window = PyLong_AsSsize_t(args[5]);
    if (window == -1 && PyErr_Occurred())
        return NULL;
    if (!PyTuple_Check(args[1]) || PyTuple_GET_SIZE(args[1]) != 4)
        Py_RETURN_NONE;
    PyObject *names[9] = {s_headers, s_topic, s_partition, s_timestamp_ms, s_key, s_value, s_offset, s_file, s_index};
    PyObject *r[9];
    if (!read_record(args[0], names, r, 9))
        Py_RETURN_NONE;
    PyObject *link = NULL, *lane = NULL, *run = NULL, *publisher = NULL, *result = NULL;
    int follows = 0;
    int got = seal_link(r, args[1], args[2], args[3], args[4], window, &link, &lane, &run, &follows, &publisher);
    for (int k = 0; k < 9; k++)
        Py_DECREF(r[k]);
    if (got < 0)
        return NULL;
    if (got == 0)
        Py_RETURN_NONE;
    if (follows) { /* a run there: it follows it */
        if (PyList_Append(run, link) == 0)
            result = Py_NewRef(Py_True);
    } else {
        result = PyTuple_Pack(2, lane, link);
    }
    Py_DECREF(link);
    return result;
}

INTAKE_SHARED PyObject *s_lower;

/* `text.lower()` of an exact str (a new reference): `text` itself when it is ASCII without a capital letter (the usual
 * lead id, a UUID as the SDK writes it), which lower() would copy unchanged; else lower()'s. */
INTAKE_SHARED PyObject *lowered(PyObject *text) {
    if (PyUnicode_IS_COMPACT_ASCII(text)) {
        const Py_UCS1 *c = PyUnicode_1BYTE_DATA(text);
        Py_ssize_t n = PyUnicode_GET_LENGTH(text), k = 0;
        while (k < n && !(c[k] >= 'A' && c[k] <= 'Z'))
            k++;
        if (k == n)
            return Py_NewRef(text);
    }
    return PyObject_CallMethodNoArgs(text, s_lower);
}

/* intake_lead(record, lead, seen, sources, ranges) -> True, or None
 *
 * What `IntakeLeads.check` does for an intake record whose lead head `lead` was read, when the lead's (id in lower
 * case, revision) is not in `seen` yet: the value's SHA-256 kept in `sources` and its offset in `ranges` (when they are
 * dicts: None when they are not kept), and the lead kept in `seen` at the record's place — True. None for a lead seen
 * before, or anything of an unusual type, with `seen` untouched: the Python path then judges the record (what it
 * writes in `sources` and `ranges` again is what is there). */
static PyObject *intake_lead(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyDict_CheckExact(args[2]) || (args[3] != Py_None && !PyDict_CheckExact(args[3]))
        || (args[4] != Py_None && !PyDict_CheckExact(args[4]))) {
        PyErr_SetString(PyExc_TypeError, "intake_lead(record, lead, seen: dict, sources: dict | None, ranges: dict | None)");
        return NULL;
    }
    PyObject *record = args[0], *lead = args[1], *seen = args[2], *sources = args[3], *ranges = args[4];
    if (!PyTuple_Check(lead) || PyTuple_GET_SIZE(lead) != 4 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(lead, 0)))
        Py_RETURN_NONE;
    PyObject *names[6] = {s_topic, s_partition, s_offset, s_value, s_file, s_index};
    PyObject *r[6];
    if (!read_record(record, names, r, 6))
        Py_RETURN_NONE;
    PyObject *topic = r[0], *partition = r[1], *offset = r[2], *value = r[3];
    PyObject *result = NULL, *digest = NULL, *place = NULL, *lower = NULL, *ident = NULL, *kept = NULL;
    if (!PyBytes_CheckExact(value) || !PyLong_CheckExact(offset))
        goto usual_not;
    {
        unsigned char sum[32];
        if (!begin() || !feed(value, 0) || !end(sum)) {
            PyErr_SetString(PyExc_RuntimeError, "OpenSSL's SHA-256 failed");
            goto done;
        }
        digest = PyBytes_FromStringAndSize((const char *)sum, 32);
        if (digest == NULL)
            goto done;
    }
    if (sources != Py_None) {
        PyObject *span = NULL;
        place = PyTuple_Pack(2, topic, partition);
        if (place == NULL)
            goto done;
        span = PyDict_GetItemWithError(ranges, place); /* borrowed */
        if (span == NULL && PyErr_Occurred())
            goto unusual;
        if (span != NULL && (!PyList_CheckExact(span) || PyList_GET_SIZE(span) != 2))
            goto usual_not;
        PyObject *at = PyTuple_Pack(3, topic, partition, offset);
        if (at == NULL)
            goto done;
        int set = PyDict_SetItem(sources, at, digest);
        Py_DECREF(at);
        if (set < 0)
            goto unusual;
        if (span == NULL) {
            PyObject *both = PyList_New(2);
            if (both == NULL)
                goto done;
            PyList_SET_ITEM(both, 0, Py_NewRef(offset));
            PyList_SET_ITEM(both, 1, Py_NewRef(offset));
            set = PyDict_SetItem(ranges, place, both);
            Py_DECREF(both);
            if (set < 0)
                goto unusual;
        } else {
            int above = PyObject_RichCompareBool(offset, PyList_GET_ITEM(span, 1), Py_GT);
            if (above < 0)
                goto unusual;
            if (above) {
                PyList_SetItem(span, 1, Py_NewRef(offset));
            } else {
                int below = PyObject_RichCompareBool(offset, PyList_GET_ITEM(span, 0), Py_LT);
                if (below < 0)
                    goto unusual;
                if (below)
                    PyList_SetItem(span, 0, Py_NewRef(offset));
            }
        }
    }
    lower = lowered(PyTuple_GET_ITEM(lead, 0));
    if (lower == NULL)
        goto unusual;
    ident = PyTuple_Pack(2, lower, PyTuple_GET_ITEM(lead, 1));
    if (ident == NULL)
        goto done;
    int there = PyDict_Contains(seen, ident);
    if (there < 0)
        goto unusual;
    if (there)
        goto usual_not; /* a repeat: the Python path names it */
    kept = PyTuple_Pack(6, digest, topic, partition, offset, r[4], r[5]);
    if (kept == NULL)
        goto done;
    if (PyDict_SetItem(seen, ident, kept) < 0)
        goto unusual;
    result = Py_NewRef(Py_True);
    goto done;
unusual: /* an error of the Python path's own (an unhashable part, say): it raises it again there */
    PyErr_Clear();
usual_not:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(digest);
    Py_XDECREF(place);
    Py_XDECREF(lower);
    Py_XDECREF(ident);
    Py_XDECREF(kept);
    for (int k = 0; k < 6; k++)
        Py_DECREF(r[k]);
    return result;
}

/* has_stage_seal(headers, names) -> whether a header's name is among `names` (a frozenset), as
 * `stage_seals._has_stage_seal` reads them one after the other; None at the first header of an unusual shape (not a
 * pair, or a name that is no exact str) before any such name, or headers that are no list or tuple: the reference
 * reads them then (and says what is wrong). */
static PyObject *has_stage_seal(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyFrozenSet_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "has_stage_seal(headers, names: frozenset)");
        return NULL;
    }
    PyObject *headers = args[0];
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers))
        Py_RETURN_NONE;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PySequence_Fast_ITEMS(headers)[k]; /* a list's items are read again: a name's hash is C */
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 0)))
            Py_RETURN_NONE;
        int in = PySet_Contains(args[1], PyTuple_GET_ITEM(item, 0));
        if (in < 0)
            return NULL;
        if (in)
            Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

/* unsealed_run(records, start, stop, names) -> how many records from `start` on are of the first one's topic and
 * partition with headers that name nothing in `names` (a frozenset)
 *
 * For `StageSealVerifier.unsealed_many`: records[start:stop] of a list, one after the other, while each is of the same
 * topic (an exact str) and partition (an exact int) as the first, and its headers are a list or tuple of (exact str,
 * anything) pairs none of whose names is in `names` (what `_has_stage_seal` reads as False). 0 when the first is not
 * one; a record of any other shape stops the count (the caller's `check` judges it). */
static PyObject *unsealed_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyList_CheckExact(args[0]) || !PyLong_CheckExact(args[1]) || !PyLong_CheckExact(args[2])
        || !PyFrozenSet_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "unsealed_run(records: list, start: int, stop: int, names: frozenset)");
        return NULL;
    }
    PyObject *records = args[0], *names = args[3];
    Py_ssize_t start = PyLong_AsSsize_t(args[1]), stop = PyLong_AsSsize_t(args[2]);
    if ((start == -1 || stop == -1) && PyErr_Occurred())
        return NULL;
    if (start < 0)
        start = 0;
    PyObject *topic = NULL, *partition = NULL;
    Py_ssize_t k = start;
    for (; k < stop && k < PyList_GET_SIZE(records); k++) {
        PyObject *record = PyList_GET_ITEM(records, k);
        PyObject *r[3];
        PyObject *fields[3] = {s_topic, s_partition, s_headers};
        if (!read_record(record, fields, r, 3))
            break;
        int usual = PyUnicode_CheckExact(r[0]) && PyLong_CheckExact(r[1])
                    && (PyList_CheckExact(r[2]) || PyTuple_CheckExact(r[2]));
        if (usual && topic != NULL) {
            int same = r[0] == topic ? 1 : PyUnicode_Compare(r[0], topic) == 0;
            usual = same && PyObject_RichCompareBool(r[1], partition, Py_EQ) == 1;
            if (PyErr_Occurred())
                PyErr_Clear();
        }
        if (usual) {
            Py_ssize_t n = PySequence_Fast_GET_SIZE(r[2]);
            for (Py_ssize_t h = 0; usual && h < n; h++) {
                PyObject *item = PySequence_Fast_ITEMS(r[2])[h];
                if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2
                    || !PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 0))) {
                    usual = 0;
                    break;
                }
                int in = PySet_Contains(names, PyTuple_GET_ITEM(item, 0));
                if (in != 0) {
                    if (in < 0)
                        PyErr_Clear();
                    usual = 0;
                }
            }
        }
        if (usual && topic == NULL) {
            topic = Py_NewRef(r[0]);
            partition = Py_NewRef(r[1]);
        }
        for (int j = 0; j < 3; j++)
            Py_DECREF(r[j]);
        if (!usual)
            break;
    }
    Py_XDECREF(topic);
    Py_XDECREF(partition);
    return PyLong_FromSsize_t(k - start);
}

/* A string of `n` bytes at `start` as UTF-8 (strict, as bytes.decode()); NULL, with no error set, when it is not. */
static PyObject *text(const unsigned char *data, Py_ssize_t start, Py_ssize_t n) {
    PyObject *out = PyUnicode_DecodeUTF8((const char *)data + start, n, NULL);
    if (out == NULL)
        PyErr_Clear();
    return out;
}

/* `peek_usual` of bytes `value`: the head (a new `cls`), None (a new reference), or NULL with an error set. */
INTAKE_SHARED PyObject *peek_head(PyObject *value, PyTypeObject *cls) {
    const unsigned char *v = (const unsigned char *)PyBytes_AS_STRING(value);
    Py_ssize_t size = PyBytes_GET_SIZE(value);
    /* the id: a one-byte length, even (no negative size) */
    if (size <= 10 || v[10] >= 0x80 || (v[10] & 1))
        Py_RETURN_NONE;
    Py_ssize_t end = 11 + (v[10] >> 1);
    if (end >= size || v[end] >= 0x80) /* the revision: a one-byte varint */
        Py_RETURN_NONE;
    long revision = (long)(v[end] >> 1) ^ -(long)(v[end] & 1);
    Py_ssize_t id_end = end, pos = end + 1, last = end + 10;
    for (;;) { /* reported_at, passed over: a varint of at most 10 bytes */
        if (pos >= size)
            Py_RETURN_NONE;
        if (v[pos] < 0x80)
            break;
        pos++;
        if (pos > last)
            Py_RETURN_NONE;
    }
    if (pos + 1 >= size || v[pos + 1] >= 0x80 || (v[pos + 1] & 1)) /* the agency's length */
        Py_RETURN_NONE;
    Py_ssize_t start = pos + 2;
    end = start + (v[pos + 1] >> 1);
    if (end >= size || v[end] >= 0x80 || (v[end] & 1)) /* the province's length */
        Py_RETURN_NONE;
    Py_ssize_t agency_end = end, province = end + 1, province_end = province + (v[end] >> 1);
    if (province_end > size)
        Py_RETURN_NONE;
    PyObject *parts[4] = {text(v, 11, id_end - 11), PyLong_FromLong(revision), NULL, NULL};
    if (parts[0] != NULL)
        parts[2] = text(v, start, agency_end - start);
    if (parts[2] != NULL)
        parts[3] = text(v, province, province_end - province);
    if (parts[1] == NULL) { /* out of memory */
        Py_XDECREF(parts[0]);
        Py_XDECREF(parts[2]);
        Py_XDECREF(parts[3]);
        return NULL;
    }
    if (parts[0] == NULL || parts[2] == NULL || parts[3] == NULL) {
        for (int k = 0; k < 4; k++)
            Py_XDECREF(parts[k]);
        Py_RETURN_NONE;
    }
    PyObject *head = cls->tp_alloc(cls, 4); /* as tuple.__new__(cls, ...) makes it */
    if (head == NULL) {
        for (int k = 0; k < 4; k++)
            Py_DECREF(parts[k]);
        return NULL;
    }
    for (int k = 0; k < 4; k++)
        PyTuple_SET_ITEM(head, k, parts[k]);
    return head;
}

static PyObject *peek_usual(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyType_Check(args[1]) || !PyType_IsSubtype((PyTypeObject *)args[1], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "peek_usual(value, a tuple's subclass)");
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0]))
        Py_RETURN_NONE;
    return peek_head(args[0], (PyTypeObject *)args[1]);
}

static PyMethodDef methods[] = {
    {"sha256", (PyCFunction)sha256_of, METH_O, "sha256(value) -> its SHA-256 digest, or None when it is not bytes"},
    {"peek_usual", (PyCFunction)(void (*)(void))peek_usual, METH_FASTCALL,
     "peek_usual(value, cls) -> cls(lead_id, revision, agency, province), or None"},
    {"chained_fields", (PyCFunction)chained_fields, METH_O,
     "chained_fields(headers) -> the six raw values of a chained seal, None, or False (the reference decides)"},
    {"link_digest", (PyCFunction)(void (*)(void))link_digest, METH_FASTCALL,
     "link_digest(head, sequence, value, prev, signature) -> the link digest, or None"},
    {"quick_seal", (PyCFunction)(void (*)(void))quick_seal, METH_FASTCALL,
     "quick_seal(record, lead, signers, covers, runs, window) -> True, (lane, link), or None (the Python path judges)"},
    {"intake_lead", (PyCFunction)(void (*)(void))intake_lead, METH_FASTCALL,
     "intake_lead(record, lead, seen, sources, ranges) -> True (a lead kept the first time), or None (Python judges)"},
    {"has_stage_seal", (PyCFunction)(void (*)(void))has_stage_seal, METH_FASTCALL,
     "has_stage_seal(headers, names) -> whether a header's name is among names, or None (the reference reads them)"},
    {"unsealed_run", (PyCFunction)(void (*)(void))unsealed_run, METH_FASTCALL,
     "unsealed_run(records, start, stop, names) -> how many records from start on, of one partition, name nothing in names"},
    {"plain_run", (PyCFunction)(void (*)(void))plain_run, METH_FASTCALL, /* in _intake_run.c */
     "plain_run(records, start, state) -> how many usual records of a plain intake stretch were judged and counted"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_intake", "The replay's hot path over intake records in C (leadbus.audit.native_intake).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__intake(void) {
    for (int s = 0; s < 6; s++)
        lengths[s] = (Py_ssize_t)strlen(SEAL_NAMES[s]);
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    context = EVP_MD_CTX_new();
    if (sha256 == NULL || context == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL's SHA-256 is not available");
        return NULL;
    }
    static const char chain_zeros[32] = {0};
    chain_start = chain_zeros;
    s_headers = PyUnicode_InternFromString("headers");
    s_topic = PyUnicode_InternFromString("topic");
    s_partition = PyUnicode_InternFromString("partition");
    s_offset = PyUnicode_InternFromString("offset");
    s_timestamp_ms = PyUnicode_InternFromString("timestamp_ms");
    s_key = PyUnicode_InternFromString("key");
    s_value = PyUnicode_InternFromString("value");
    s_file = PyUnicode_InternFromString("file");
    s_index = PyUnicode_InternFromString("index");
    zero = PyLong_FromLong(0);
    s_lower = PyUnicode_InternFromString("lower");
    if (!s_headers || !s_topic || !s_partition || !s_offset || !s_timestamp_ms || !s_key || !s_value || !s_file
        || !s_index || !zero || !s_lower || !plain_run_ready())
        return NULL;
    return PyModule_Create(&module);
}
