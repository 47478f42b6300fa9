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
 * The digest is OpenSSL's SHA-256 (libcrypto, the library hashlib uses), fed the parts one after the other.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <string.h>

static const char *SEAL_NAMES[6] = {"leadbus-publisher", "leadbus-key-id", "leadbus-partition", "leadbus-seq",
                                    "leadbus-signature", "leadbus-prev"};

static Py_ssize_t lengths[6];
static EVP_MD *sha256;
static EVP_MD_CTX *context;

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

static PyObject *chained_fields(PyObject *module, PyObject *headers) {
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers))
        Py_RETURN_FALSE;
    PyObject **items = PySequence_Fast_ITEMS(headers);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    if (n > 64) /* more headers than any producer writes: the reference judges them */
        Py_RETURN_FALSE;
    int names[64];
    for (Py_ssize_t k = 0; k < n; k++) { /* every pair of the usual types first: else the reference judges */
        PyObject *item = items[k];
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 0)))
            Py_RETURN_FALSE;
        PyObject *value = PyTuple_GET_ITEM(item, 1);
        if (value != Py_None && !PyBytes_CheckExact(value))
            Py_RETURN_FALSE;
        names[k] = seal_name(PyTuple_GET_ITEM(item, 0));
    }
    if (n < 6)
        Py_RETURN_NONE;
    Py_ssize_t at = 0;
    while (at < n && names[at] != 0) { /* the first seal header must be the publisher's */
        if (names[at] > 0)
            Py_RETURN_NONE;
        at++;
    }
    if (at + 6 > n)
        Py_RETURN_NONE;
    for (int s = 0; s < 6; s++)
        if (names[at + s] != s || !PyBytes_CheckExact(PyTuple_GET_ITEM(items[at + s], 1)))
            Py_RETURN_NONE;
    for (Py_ssize_t k = at + 6; k < n; k++)
        if (names[k] >= 0)
            Py_RETURN_NONE;
    PyObject *partition = PyTuple_GET_ITEM(items[at + 2], 1), *sequence = PyTuple_GET_ITEM(items[at + 3], 1);
    PyObject *signature = PyTuple_GET_ITEM(items[at + 4], 1), *prev = PyTuple_GET_ITEM(items[at + 5], 1);
    if (!digits(partition, 9) || !digits(sequence, 19) || PyBytes_GET_SIZE(signature) != 64
        || PyBytes_GET_SIZE(prev) != 32)
        Py_RETURN_NONE;
    return PyTuple_Pack(6, PyTuple_GET_ITEM(items[at], 1), PyTuple_GET_ITEM(items[at + 1], 1), partition, sequence,
                        signature, prev);
}

#define LIMIT ((Py_ssize_t)0xFFFFFFFF)

static void length(unsigned char *out, Py_ssize_t n) {
    uint32_t v = (uint32_t)n;
    out[0] = (unsigned char)(v >> 24);
    out[1] = (unsigned char)(v >> 16);
    out[2] = (unsigned char)(v >> 8);
    out[3] = (unsigned char)v;
}

static int feed(PyObject *raw, int sized) {
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    if (sized) {
        unsigned char prefix[4];
        length(prefix, n);
        if (!EVP_DigestUpdate(context, prefix, 4))
            return 0;
    }
    return EVP_DigestUpdate(context, PyBytes_AS_STRING(raw), (size_t)n);
}

static PyObject *link_digest(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "link_digest takes 5 arguments");
        return NULL;
    }
    for (Py_ssize_t k = 0; k < 5; k++)
        if (!PyBytes_CheckExact(args[k]) || PyBytes_GET_SIZE(args[k]) > LIMIT)
            Py_RETURN_NONE;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (!EVP_DigestInit_ex2(context, sha256, NULL) || !feed(args[0], 0) || !feed(args[1], 1) || !feed(args[2], 1)
        || !feed(args[3], 1) || !feed(args[4], 0) || !EVP_DigestFinal_ex(context, digest, &size)) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL's SHA-256 failed");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)digest, (Py_ssize_t)size);
}

static PyObject *sha256_of(PyObject *module, PyObject *value) {
    if (!PyBytes_CheckExact(value))
        Py_RETURN_NONE;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (!EVP_DigestInit_ex2(context, sha256, NULL) || !feed(value, 0) || !EVP_DigestFinal_ex(context, digest, &size)) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL's SHA-256 failed");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)digest, (Py_ssize_t)size);
}

/* A string of `n` bytes at `start` as UTF-8 (strict, as bytes.decode()); NULL, with no error set, when it is not. */
static PyObject *text(const unsigned char *data, Py_ssize_t start, Py_ssize_t n) {
    PyObject *out = PyUnicode_DecodeUTF8((const char *)data + start, n, NULL);
    if (out == NULL)
        PyErr_Clear();
    return out;
}

static PyObject *peek_usual(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyType_Check(args[1]) || !PyType_IsSubtype((PyTypeObject *)args[1], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "peek_usual(value, a tuple's subclass)");
        return NULL;
    }
    PyObject *value = args[0];
    if (!PyBytes_CheckExact(value))
        Py_RETURN_NONE;
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
    PyTypeObject *cls = (PyTypeObject *)args[1];
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

static PyMethodDef methods[] = {
    {"sha256", (PyCFunction)sha256_of, METH_O, "sha256(value) -> its SHA-256 digest, or None when it is not bytes"},
    {"peek_usual", (PyCFunction)(void (*)(void))peek_usual, METH_FASTCALL,
     "peek_usual(value, cls) -> cls(lead_id, revision, agency, province), or None"},
    {"chained_fields", (PyCFunction)chained_fields, METH_O,
     "chained_fields(headers) -> the six raw values of a chained seal, None, or False (the reference decides)"},
    {"link_digest", (PyCFunction)(void (*)(void))link_digest, METH_FASTCALL,
     "link_digest(head, sequence, value, prev, signature) -> the link digest, or None"},
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
    return PyModule_Create(&module);
}
