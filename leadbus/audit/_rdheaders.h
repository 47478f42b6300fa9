/* A record's headers as the replay's records hold them, for `leadbus.audit._rdkafka`: (name, value) pairs of a str
 * and bytes or None, names made once and pairs met again taken from those made before (`Headers`).
 *
 * Read from the bytes the broker sent, where librdkafka keeps them unparsed in its message until
 * `rd_kafka_message_headers` is first asked (`leadbus.audit._rdkafka`): parsing them there makes a list and a copy of
 * each header (malloc'd, then freed with the message), a fifth of the main thread's CPU in a replay's read.
 *
 * Kafka's record format v2 writes them last in the record, right after the value: a count, then for each header its
 * name's length, the name, its value's length (-1: null) and the value, all zigzag varints. librdkafka keeps where they
 * begin and their size in private fields of its message (rd_kafka_msg_t's rd_kafkap_bytes_t `binhdrs`: an int32 size,
 * then the pointer), and the headers it parsed in another (NULL until asked). Those fields are found, not assumed: on
 * a reader's first message with a value and headers, among the words after the public rd_kafka_message_t, the one
 * word pointing just past the value (preceded by a positive size) is the bytes, and the one word that was NULL and
 * holds librdkafka's headers once it parsed them is theirs. Then the first VERIFIED messages are read both ways and
 * must agree. Anything else: librdkafka parses, as before. A message is read here only where librdkafka has parsed
 * nothing of it and its bytes begin just past its value, and only bytes read whole and plainly (varints of at most 5
 * bytes, lengths within the bytes, nothing left over, at least one header): any other is left to librdkafka, whose
 * reading of it (headers, or none where it fails) stands. */
#ifndef LEADBUS_RDHEADERS_H
#define LEADBUS_RDHEADERS_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SCAN_WORDS 12   /* words looked through after rd_kafka_message_t (librdkafka 2.x: the fields at words 4-7) */
#define VERIFIED 64     /* messages read both ways before this reading alone is trusted */
#define SEARCHED 256    /* messages with a value looked at for the fields before giving up */

typedef struct {
    int state;          /* 0: fields not found yet, 1: found, -1: not usable (librdkafka parses) */
    int verified;       /* messages read both ways that agreed */
    int searched;
    size_t parsed_at, bytes_at;  /* offsets in the message of librdkafka's headers and of the bytes' pointer */
} RawLayout;

/* a zigzag varint of at most 5 bytes (a count or length), or -1 */
static inline int raw_varint(const unsigned char **p, const unsigned char *end, int64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        if (*p >= end)
            return -1;
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return -1;
}

/* the header count of bytes read whole and plainly, or -1 */
static inline int64_t raw_count(const unsigned char *p, size_t size) {
    const unsigned char *end = p + size;
    int64_t count, length;
    if (raw_varint(&p, end, &count) < 0 || count < 1 || count > 100000)
        return -1;
    for (int64_t k = 0; k < count; k++) {
        if (raw_varint(&p, end, &length) < 0 || length < 0 || length > end - p)
            return -1;
        p += length;
        if (raw_varint(&p, end, &length) < 0 || length < -1 || length > end - p)
            return -1;
        if (length > 0)
            p += length;
    }
    return p == end ? count : -1;
}

/* the next header of bytes `raw_count` took: its name as librdkafka gives it (up to a NUL), its value (NULL: null) */
static inline void raw_next(const unsigned char **p, const char **name, size_t *name_size, const void **value,
                            size_t *size) {
    int64_t length = 0;
    raw_varint(p, *p + 5, &length);
    *name = (const char *)*p;
    const void *nul = memchr(*p, 0, (size_t)length);
    *name_size = nul != NULL ? (size_t)((const unsigned char *)nul - *p) : (size_t)length;
    *p += length;
    raw_varint(p, *p + 5, &length);
    *value = length < 0 ? NULL : (const void *)*p;
    *size = length < 0 ? 0 : (size_t)length;
    if (length > 0)
        *p += length;
}

#define WORD(m, at) (*(const void *const *)((const char *)(m) + (at)))

/* the unparsed bytes of `m`'s headers where they may be read here (`payload` `len` its value's), else 0 */
static inline int raw_bytes(const RawLayout *layout, const void *m, const void *payload, size_t len, int parsed_ok,
                            const unsigned char **bytes, size_t *size) {
    if (layout->state != 1 || payload == NULL || (!parsed_ok && WORD(m, layout->parsed_at) != NULL)
        || WORD(m, layout->bytes_at) != (const char *)payload + len)
        return 0;
    int32_t n = *(const int32_t *)((const char *)m + layout->bytes_at - sizeof(void *));
    if (n < 1)
        return 0;
    *bytes = WORD(m, layout->bytes_at);
    *size = (size_t)n;
    return 1;
}

/* before librdkafka parses a message's headers: the words after the public message (`base` bytes), to find where
 * its headers' bytes are (the one word pointing just past the value); -1 where not exactly one */
static inline int raw_before(const void *m, size_t base, const void *payload, size_t len,
                             const void *words[SCAN_WORDS]) {
    int found = -1;
    for (int k = 0; k < SCAN_WORDS; k++) {
        words[k] = WORD(m, base + (size_t)k * sizeof(void *));
        if (k > 0 && payload != NULL && words[k] == (const char *)payload + len) {
            if (found >= 0)
                return -1;
            found = k;
        }
    }
    return found;
}

/* after: the one word that was NULL and now holds `parsed` (librdkafka's headers), or -1 */
static inline int raw_after(const void *m, size_t base, const void *words[SCAN_WORDS], const void *parsed) {
    int found = -1;
    for (int k = 0; k < SCAN_WORDS; k++)
        if (words[k] == NULL && WORD(m, base + (size_t)k * sizeof(void *)) == parsed) {
            if (found >= 0)
                return -1;
            found = k;
        }
    return found;
}

#define MAX_NAMES 32     /* header names kept (looked through at each header) */
#define PAIRS 4          /* the (name, value) pairs last made of each header name kept (a stage's signer, key id and
                          * chain, a content type, a publisher repeat record after record): not made again */
#define PAIR_BYTES 64    /* the longest value kept so */

/* a name (of a topic, of a header) as met, and its str */
typedef struct {
    char *bytes;
    size_t size;
    PyObject *str;
} Name;

/* the names of headers and the pairs (name, value) kept, and where librdkafka keeps a message's headers unparsed */
typedef struct {
    Name names[MAX_NAMES];
    int n_names;
    PyObject *pairs[MAX_NAMES][PAIRS];  /* of names[k]: tuples (names[k].str, bytes or None), NULL where none yet */
    unsigned char next_pair[MAX_NAMES];  /* the one replaced next */
    RawLayout raw;
} Headers;

static void forget(Name *names, int n) {
    for (int k = 0; k < n; k++) {
        PyMem_Free(names[k].bytes);
        Py_XDECREF(names[k].str);
    }
}

static void headers_forget(Headers *self) {
    forget(self->names, self->n_names);
    for (int k = 0; k < self->n_names; k++)
        for (int j = 0; j < PAIRS; j++)
            Py_XDECREF(self->pairs[k][j]);
}

/* the str of `size` `bytes` (up to a NUL, as confluent-kafka reads a name) from the cache, or made and kept there;
 * `*at` its place in the cache, -1 where it is not kept */
static PyObject *named(Name *names, int *n, int most, const char *bytes, size_t size, const char *errors, int *at) {
    for (int k = 0; k < *n; k++)
        if (names[k].size == size && memcmp(names[k].bytes, bytes, size) == 0) {
            *at = k;
            return Py_NewRef(names[k].str);
        }
    *at = -1;
    PyObject *str = PyUnicode_DecodeUTF8(bytes, (Py_ssize_t)size, errors);
    if (str == NULL || *n == most)
        return str;
    char *kept = PyMem_Malloc(size + 1);
    if (kept == NULL)
        return str;  /* not cached: made again next time */
    memcpy(kept, bytes, size);
    kept[size] = 0;
    names[*n] = (Name){kept, size, Py_NewRef(str)};
    *at = (*n)++;
    return str;
}

static PyObject *bytes_or_none(const void *data, size_t size) {
    return data != NULL ? PyBytes_FromStringAndSize(data, (Py_ssize_t)size) : Py_NewRef(Py_None);
}

/* the pair (name, value) of a header: the one made before for the same name and value where it is kept (tuples, str
 * and bytes are immutable, and no check asks whether two records' headers are the same objects), else a new one,
 * kept in its stead of the oldest of its name */
static PyObject *pair_of(Headers *self, const char *name, size_t name_size, const void *value, size_t size) {
    int at;
    PyObject *key = named(self->names, &self->n_names, MAX_NAMES, name, name_size, "surrogateescape", &at);
    if (key == NULL)
        return NULL;
    int keep = at >= 0 && (value == NULL || size <= PAIR_BYTES);
    if (keep) {
        PyObject **kept = self->pairs[at];
        for (int k = 0; k < PAIRS && kept[k] != NULL; k++) {
            PyObject *raw = PyTuple_GET_ITEM(kept[k], 1);
            if (value == NULL ? raw == Py_None
                              : raw != Py_None && (size_t)PyBytes_GET_SIZE(raw) == size
                                    && memcmp(PyBytes_AS_STRING(raw), value, size) == 0) {
                Py_DECREF(key);
                return Py_NewRef(kept[k]);
            }
        }
    }
    PyObject *pair = PyTuple_New(2);
    PyObject *raw = pair != NULL ? bytes_or_none(value, size) : NULL;
    if (raw == NULL) {
        Py_DECREF(key);
        Py_XDECREF(pair);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, key);
    PyTuple_SET_ITEM(pair, 1, raw);
    if (keep) {
        unsigned char *next = &self->next_pair[at];
        Py_XSETREF(self->pairs[at][*next], Py_NewRef(pair));
        *next = (unsigned char)((*next + 1) % PAIRS);
    }
    return pair;
}

/* a message's headers as `Message.headers()` gives them (a tuple, or a list: `as_list`), from their bytes (`count`
 * of them: `raw_count` took them) */
static PyObject *headers_from(Headers *self, const unsigned char *p, int64_t count, int as_list) {
    PyObject *items = as_list ? PyList_New((Py_ssize_t)count) : PyTuple_New((Py_ssize_t)count);
    if (items == NULL)
        return NULL;
    int64_t counted;
    raw_varint(&p, p + 5, &counted);  /* the count, read before */
    for (Py_ssize_t k = 0; k < (Py_ssize_t)count; k++) {
        const char *name;
        const void *value;
        size_t name_size, size;
        raw_next(&p, &name, &name_size, &value, &size);
        PyObject *pair = pair_of(self, name, name_size, value, size);
        if (pair == NULL) {
            Py_DECREF(items);
            return NULL;
        }
        if (as_list)
            PyList_SET_ITEM(items, k, pair);
        else
            PyTuple_SET_ITEM(items, k, pair);
    }
    return items;
}

#endif
