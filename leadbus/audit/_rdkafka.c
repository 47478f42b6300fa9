/* Replay records made straight from librdkafka's messages, for `KafkaSource._interleaved` (`leadbus.audit.sources`;
 * the reference it must agree with is `_taken`, over confluent-kafka's Message objects).
 *
 * Why: a consumed batch through confluent-kafka makes a Message per record, a topic str per message, value and key
 * bytes, and on `headers()` a list of (str, bytes) tuples whose names are decoded each time; then the maker's method
 * calls on each Message. Read here, the same records are made from the `rd_kafka_message_t`s with one topic str per
 * topic and one str per header name seen (cached), a header met again as the pair made before (cached too: most of a
 * sealed record's headers repeat those of the record before), and no Message at all.
 *
 * How the consumer is reached: a confluent_kafka.Consumer is a `Handle` whose fields begin (2.6 to 2.16 alike) with
 * `PyObject_HEAD; rd_kafka_t *rk; error_cb, throttle_cb, stats_cb; int initiated; Py_tss_t tlskey; type; logger`.
 * librdkafka's functions are taken from the library confluent-kafka's own extension was linked with (dlsym on its
 * handle searches its dependencies). The layout is trusted only when it holds what is known of this consumer: the
 * logger object it was made with, the type consumer, an initiated TLS key; then librdkafka itself must say that `rk`
 * is a consumer whose opaque is this very object (confluent-kafka sets the Handle as opaque) and be the version
 * confluent-kafka reports. Anything else: `Reader(...)` raises, and the caller reads through confluent-kafka.
 *
 * librdkafka calls confluent-kafka's callbacks (the logger, error_cb) from inside a consume: they find the thread's
 * saved state in the Handle's TLS key, as around confluent-kafka's own consume (`CallState_begin`/`_end`), so the
 * same is done here; a callback that raised ends the consume with its exception.
 *
 * Reader(consumer, consumer_type, cimpl_path, logger, version, cls, slots, fields, prototype, kafka_exception,
 *        kafka_error)
 * reader.consume(count, timeout_ms) -> n        messages taken (the GIL released while waiting)
 * reader.build(open_, fresh, done, catalog) -> (records, odd)
 *     The records of the messages taken, as `_taken` makes them (open_/fresh/done as there), up to the first that is
 *     not the usual one (an error, no topic): `odd` is that message as a tuple (err, errstr, topic, partition, offset,
 *     timestamp, key, value, headers) for the Python path, None once all were made.
 * reader.close()                                  gives back the messages not built and the queue (before the
 *                                                 consumer is closed: librdkafka waits for them)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include "_slots.h"
#include "_rdheaders.h"
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

/* librdkafka's public, stable ABI: the message struct (rdkafka.h) and the functions used */
typedef struct {
    int err;
    void *rkt;
    int32_t partition;
    void *payload;
    size_t len;
    void *key;
    size_t key_len;
    int64_t offset;
    void *_private;
} rd_message;

#define RD_KAFKA_CONSUMER 1

typedef struct {
    void *(*queue_get_consumer)(void *rk);
    void (*queue_destroy)(void *rkqu);
    ssize_t (*consume_batch_queue)(void *rkqu, int timeout_ms, rd_message **msgs, size_t size);
    void (*message_destroy)(rd_message *m);
    const char *(*topic_name)(const void *rkt);
    int64_t (*message_timestamp)(const rd_message *m, int *tstype);
    int (*message_headers)(const rd_message *m, void **hdrs);
    size_t (*header_cnt)(const void *hdrs);
    int (*header_get_all)(const void *hdrs, size_t idx, const char **name, const void **value, size_t *size);
    const char *(*message_errstr)(const rd_message *m);
    int (*type)(const void *rk);
    void *(*opaque)(const void *rk);
    int (*version)(void);
    int (*last_error)(void);
    const char *(*err2str)(int err);
} RdApi;

/* confluent-kafka's Handle, as far as it is read here */
typedef struct {
    PyObject_HEAD
    void *rk;
    PyObject *error_cb;
    PyObject *throttle_cb;
    PyObject *stats_cb;
    int initiated;
    Py_tss_t tlskey;
    int type;
    PyObject *logger;
} HandleHead;

/* confluent-kafka's CallState: what its callbacks take from the TLS key (exception_value since 2.1x) */
typedef struct {
    PyThreadState *thread_state;
    int crashed;
    PyObject *exception_value;
} CallState;

#define MAX_SLOTS 64
#define MAX_TOPICS 1024  /* topic names kept (looked through only where the partition changes) */
enum { F_TOPIC, F_PARTITION, F_OFFSET, F_TIMESTAMP, F_KEY, F_VALUE, F_HEADERS, F_CATALOG, F_OPENS_LOG, N_FIELDS };

typedef struct {
    PyObject_HEAD
    PyObject *consumer;
    void *rk;
    void *queue;
    RdApi api;
    PyTypeObject *cls;
    PyObject *kafka_exception, *kafka_error;
    Py_ssize_t field_offsets[N_FIELDS];
    Py_ssize_t n_others;
    Py_ssize_t other_offsets[MAX_SLOTS];
    PyObject *other_values[MAX_SLOTS];
    rd_message **msgs;
    size_t capacity;
    Py_ssize_t n, at;  /* messages taken, and the next to build */
    Name topics[MAX_TOPICS];
    int n_topics;
    Headers headers;  /* the names and pairs kept, and where librdkafka keeps headers unparsed (`_rdheaders.h`) */
} Reader;

static void give_back(Reader *self) {
    for (; self->at < self->n; self->at++)
        self->api.message_destroy(self->msgs[self->at]);
    self->n = self->at = 0;
}

static void reader_close_all(Reader *self) {
    if (self->msgs != NULL)
        give_back(self);
    if (self->queue != NULL) {
        self->api.queue_destroy(self->queue);
        self->queue = NULL;
    }
}

static void reader_dealloc(Reader *self) {
    reader_close_all(self);
    PyMem_Free(self->msgs);
    forget(self->topics, self->n_topics);
    headers_forget(&self->headers);
    Py_XDECREF(self->consumer);
    Py_XDECREF(self->cls);
    Py_XDECREF(self->kafka_exception);
    Py_XDECREF(self->kafka_error);
    for (Py_ssize_t k = 0; k < self->n_others; k++)
        Py_XDECREF(self->other_values[k]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int refuse(const char *why) {
    PyErr_Format(PyExc_RuntimeError, "librdkafka read not usable: %s", why);
    return -1;
}

static int load(RdApi *api, const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL)
        return refuse("confluent-kafka's extension is not loaded");
#define GET(field, name) if ((*(void **)&api->field = dlsym(lib, name)) == NULL) { dlclose(lib); return refuse(name); }
    GET(queue_get_consumer, "rd_kafka_queue_get_consumer")
    GET(queue_destroy, "rd_kafka_queue_destroy")
    GET(consume_batch_queue, "rd_kafka_consume_batch_queue")
    GET(message_destroy, "rd_kafka_message_destroy")
    GET(topic_name, "rd_kafka_topic_name")
    GET(message_timestamp, "rd_kafka_message_timestamp")
    GET(message_headers, "rd_kafka_message_headers")
    GET(header_cnt, "rd_kafka_header_cnt")
    GET(header_get_all, "rd_kafka_header_get_all")
    GET(message_errstr, "rd_kafka_message_errstr")
    GET(type, "rd_kafka_type")
    GET(opaque, "rd_kafka_opaque")
    GET(version, "rd_kafka_version")
    GET(last_error, "rd_kafka_last_error")
    GET(err2str, "rd_kafka_err2str")
#undef GET
    /* the library stays loaded as long as confluent-kafka's extension (never unloaded): the handle is not kept */
    dlclose(lib);
    return 0;
}

static int reader_init(Reader *self, PyObject *args, PyObject *kwargs) {
    PyObject *consumer, *consumer_type, *logger, *cls, *slots, *fields, *prototype, *exc, *err;
    const char *path;
    int version;
    if (!PyArg_ParseTuple(args, "OO!sOiO!O!O!OOO", &consumer, &PyType_Type, &consumer_type, &path, &logger,
                          &version, &PyType_Type, &cls, &PyTuple_Type, &slots, &PyTuple_Type, &fields, &prototype,
                          &exc, &err))
        return -1;
    if (self->consumer != NULL)
        return refuse("a Reader is made once");
    PyTypeObject *type = (PyTypeObject *)cls;
    if (PyTuple_GET_SIZE(fields) != N_FIELDS || PyTuple_GET_SIZE(slots) > MAX_SLOTS + N_FIELDS
        || !(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || !Py_IS_TYPE(prototype, type))
        return refuse("not a record class");
    /* the layout: what is known of this consumer must be where the Handle keeps it */
    HandleHead *h = (HandleHead *)consumer;
    if (!PyObject_TypeCheck(consumer, (PyTypeObject *)consumer_type)
        || Py_TYPE(consumer)->tp_basicsize < (Py_ssize_t)sizeof(HandleHead))
        return refuse("not a confluent_kafka.Consumer");
    if (logger == Py_None || h->logger != logger || h->type != RD_KAFKA_CONSUMER || h->initiated != 1
        || !PyThread_tss_is_created(&h->tlskey) || h->rk == NULL)
        return refuse("the consumer's fields are not where confluent-kafka 2.6-2.16 keeps them (or it is closed)");
    if (load(&self->api, path) < 0)
        return -1;
    if (self->api.version() != version || self->api.type(h->rk) != RD_KAFKA_CONSUMER
        || self->api.opaque(h->rk) != (void *)consumer)
        return refuse("librdkafka does not know the consumer as confluent-kafka's");
    if (record_layout(type, slots, fields, prototype, N_FIELDS, self->field_offsets, self->other_offsets,
                      self->other_values, MAX_SLOTS, &self->n_others) < 0)
        return -1;
    if ((self->queue = self->api.queue_get_consumer(h->rk)) == NULL)
        return refuse("the consumer has no queue");
    self->rk = h->rk;
    self->consumer = Py_NewRef(consumer);
    self->cls = (PyTypeObject *)Py_NewRef(cls);
    self->kafka_exception = Py_NewRef(exc);
    self->kafka_error = Py_NewRef(err);
    return 0;
}

static int usable(Reader *self) {
    if (self->consumer == NULL || self->queue == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the Reader is closed");
        return 0;
    }
    if (((HandleHead *)self->consumer)->rk != self->rk) {
        PyErr_SetString(PyExc_RuntimeError, "Consumer closed");
        return 0;
    }
    return 1;
}

static PyObject *consume(Reader *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!usable(self))
        return NULL;
    if (nargs != 2 || !PyLong_CheckExact(args[0]) || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "consume(count: int, timeout_ms: int)");
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[0]);
    long timeout = PyLong_AsLong(args[1]);
    if (PyErr_Occurred())
        return NULL;
    if (count < 1 || count > 1000000 || timeout < 0 || timeout > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "consume: count 1..1000000, timeout_ms >= 0");
        return NULL;
    }
    if (self->at < self->n) {  /* never dropped unseen: the caller builds a batch whole before the next */
        PyErr_SetString(PyExc_RuntimeError, "consume: the messages taken before are not all built");
        return NULL;
    }
    self->n = self->at = 0;
    if ((size_t)count > self->capacity) {
        rd_message **grown = PyMem_Realloc(self->msgs, (size_t)count * sizeof(rd_message *));
        if (grown == NULL)
            return PyErr_NoMemory();
        self->msgs = grown;
        self->capacity = (size_t)count;
    }
    HandleHead *h = (HandleHead *)self->consumer;
    CallState cs = {NULL, 0, NULL};
    cs.thread_state = PyEval_SaveThread();
    PyThread_tss_set(&h->tlskey, &cs);
    ssize_t got = self->api.consume_batch_queue(self->queue, (int)timeout, self->msgs, (size_t)count);
    int failed = got < 0 ? self->api.last_error() : 0;
    PyThread_tss_set(&h->tlskey, NULL);
    PyEval_RestoreThread(cs.thread_state);
    self->n = got > 0 ? got : 0;
    if (cs.crashed) {  /* a callback raised: its exception, as confluent-kafka's consume gives it */
        if (cs.exception_value != NULL)
            PyErr_SetObject((PyObject *)Py_TYPE(cs.exception_value), cs.exception_value);
        else if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "a librdkafka callback failed");
        Py_XDECREF(cs.exception_value);
        return NULL;
    }
    if (PyErr_CheckSignals() < 0)
        return NULL;
    if (got < 0) {
        PyObject *error = PyObject_CallFunction(self->kafka_error, "is", failed, self->api.err2str(failed));
        if (error != NULL) {
            PyErr_SetObject(self->kafka_exception, error);
            Py_DECREF(error);
        }
        return NULL;
    }
    return PyLong_FromSsize_t(self->n);
}

/* the cached bytes of the name whose str is `str`, or NULL */
static const char *cached(Name *names, int n, PyObject *str) {
    for (int k = 0; k < n; k++)
        if (names[k].str == str)
            return names[k].bytes;
    return NULL;
}

/* the message's headers as `Message.headers()` gives them, into a tuple (a name not UTF-8, which confluent-kafka
 * fails on, is decoded with surrogateescape: a name no check knows), as librdkafka parses them */
static PyObject *parsed_headers(Reader *self, rd_message *m, int as_list) {
    void *hdrs = NULL;
    if (self->api.message_headers(m, &hdrs) != 0 || hdrs == NULL)
        return as_list ? Py_NewRef(Py_None) : PyTuple_New(0);
    /* made in place, each item's references stolen: a list appended to, then copied into a tuple, cost a third more */
    size_t count = self->api.header_cnt(hdrs);
    PyObject *items = as_list ? PyList_New((Py_ssize_t)count) : PyTuple_New((Py_ssize_t)count);
    if (items == NULL)
        return NULL;
    const char *name;
    const void *value;
    size_t size, idx = 0;
    for (; idx < count && self->api.header_get_all(hdrs, idx, &name, &value, &size) == 0; idx++) {
        PyObject *pair = pair_of(&self->headers, name, strlen(name), value, size);
        if (pair == NULL) {
            Py_DECREF(items);
            return NULL;
        }
        if (as_list)
            PyList_SET_ITEM(items, (Py_ssize_t)idx, pair);
        else
            PyTuple_SET_ITEM(items, (Py_ssize_t)idx, pair);
    }
    if (idx < count) {  /* fewer than counted: never seen, but no slot is left empty */
        PyObject *whole = as_list ? PyList_GetSlice(items, 0, (Py_ssize_t)idx)
                                  : PyTuple_GetSlice(items, 0, (Py_ssize_t)idx);
        Py_DECREF(items);
        return whole;
    }
    return items;
}

/* the headers of a message while the fields of its unparsed headers are looked for, then read both ways (librdkafka's
 * stands; the reading here is trusted once VERIFIED messages agreed, and never again where one did not) */
static PyObject *learned(Reader *self, rd_message *m, int as_list) {
    RawLayout *layout = &self->headers.raw;
    const size_t base = sizeof(rd_message);
    const void *words[SCAN_WORDS];
    const unsigned char *bytes = NULL;
    size_t size = 0;
    int64_t count = -1;
    int at = -1;
    if (layout->state == 0)
        at = m->payload != NULL ? raw_before(m, base, m->payload, m->len, words) : -1;
    else if (raw_bytes(layout, m, m->payload, m->len, 0, &bytes, &size))
        count = raw_count(bytes, size);
    PyObject *parsed = parsed_headers(self, m, as_list);
    if (parsed == NULL || (layout->state == 0 && m->payload == NULL))
        return parsed;
    if (layout->state == 0) {
        void *hdrs = NULL;
        int32_t n = at > 0 ? *(const int32_t *)((const char *)m + base + (size_t)(at - 1) * sizeof(void *)) : 0;
        int held = n > 0 && self->api.message_headers(m, &hdrs) == 0 && hdrs != NULL ? raw_after(m, base, words, hdrs)
                                                                                     : -1;
        if (held >= 0) {
            *layout = (RawLayout){1, 0, layout->searched, base + (size_t)held * sizeof(void *),
                                  base + (size_t)at * sizeof(void *)};
            bytes = words[at];
            size = (size_t)n;
            count = raw_count(bytes, size);
        } else if (++layout->searched >= SEARCHED) {
            layout->state = -1;
        }
    }
    if (count > 0) {
        PyObject *own = headers_from(&self->headers, bytes, count, as_list);
        int same = own != NULL ? PyObject_RichCompareBool(own, parsed, Py_EQ) : -1;
        Py_XDECREF(own);
        if (same < 0) {
            Py_DECREF(parsed);
            return NULL;
        }
        if (same)
            layout->verified++;
        else
            layout->state = -1;
    }
    return parsed;
}

/* a usual message's headers: read from their bytes where they may be, else as librdkafka parses them */
static PyObject *headers_of(Reader *self, rd_message *m, int as_list) {
    const unsigned char *bytes;
    size_t size;
    int64_t count;
    if (self->headers.raw.state == 1 && self->headers.raw.verified >= VERIFIED) {
        if (raw_bytes(&self->headers.raw, m, m->payload, m->len, 0, &bytes, &size) && (count = raw_count(bytes, size)) > 0)
            return headers_from(&self->headers, bytes, count, as_list);
        return parsed_headers(self, m, as_list);
    }
    return self->headers.raw.state < 0 ? parsed_headers(self, m, as_list) : learned(self, m, as_list);
}

/* an unusual message as the tuple `sources._Odd` stands in a Message for */
static PyObject *odd_of(Reader *self, rd_message *m) {
    int tstype = 0;
    int64_t stamp = self->api.message_timestamp(m, &tstype);
    PyObject *topic = Py_NewRef(Py_None);
    if (m->rkt != NULL) {
        Py_DECREF(topic);
        if ((topic = PyUnicode_DecodeUTF8(self->api.topic_name(m->rkt), (Py_ssize_t)strlen(self->api.topic_name(m->rkt)),
                                          NULL)) == NULL) {
            PyErr_Clear();  /* confluent-kafka's Message has no topic then */
            topic = Py_NewRef(Py_None);
        }
    }
    const char *errstr = m->err ? self->api.message_errstr(m) : NULL;
    PyObject *headers = parsed_headers(self, m, 1);
    if (headers == NULL) {
        Py_DECREF(topic);
        return NULL;
    }
    return Py_BuildValue("(izNiL(iL)NNN)", m->err, errstr, topic, (int)m->partition, (long long)m->offset, tstype,
                         (long long)stamp, bytes_or_none(m->key, m->key_len), bytes_or_none(m->payload, m->len),
                         headers);
}

static PyObject *build(Reader *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!usable(self))
        return NULL;
    if (nargs != 4 || !PyDict_CheckExact(args[0]) || !PySet_CheckExact(args[1]) || !PyList_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "build(open_: dict, fresh: set, done: list, catalog)");
        return NULL;
    }
    PyObject *open_ = args[0], *fresh = args[1], *done = args[2], *catalog = args[3];
    PyObject *out = PyList_New(self->n - self->at);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < self->n - self->at; k++)
        PyList_SET_ITEM(out, k, Py_NewRef(Py_None));
    Py_ssize_t made = 0;
    PyObject *where = NULL, *odd = NULL;  /* the (topic, partition) of the messages before */
    const char *where_name = NULL;  /* its topic's name, as cached (the message's own goes with the message) */
    int32_t where_partition = -1;
    int is_open = 0;
    long long end = 0;
    for (; self->at < self->n; self->at++) {
        rd_message *m = self->msgs[self->at];
        if (m->err != 0 || m->rkt == NULL) {
            if ((odd = odd_of(self, m)) == NULL)
                goto fail;
            self->api.message_destroy(m);
            self->at++;
            break;
        }
        const char *name = self->api.topic_name(m->rkt);
        if (where_name == NULL || m->partition != where_partition || strcmp(name, where_name) != 0) {
            int at_topic;
            PyObject *topic = named(self->topics, &self->n_topics, MAX_TOPICS, name, strlen(name), NULL, &at_topic);
            if (topic == NULL) {  /* not UTF-8: confluent-kafka's Message has no topic, the Python path passes it over */
                PyErr_Clear();
                if ((odd = odd_of(self, m)) == NULL)
                    goto fail;
                self->api.message_destroy(m);
                self->at++;
                break;
            }
            PyObject *partition = PyLong_FromLong(m->partition);
            Py_XDECREF(where);
            where = partition != NULL ? PyTuple_Pack(2, topic, partition) : NULL;
            Py_DECREF(topic);
            Py_XDECREF(partition);
            if (where == NULL)
                goto fail;
            where_name = cached(self->topics, self->n_topics, PyTuple_GET_ITEM(where, 0));
            where_partition = m->partition;  /* (a topic not cached: looked up at each message) */
            PyObject *found = PyDict_GetItemWithError(open_, where);
            if (found == NULL && PyErr_Occurred())
                goto fail;
            is_open = found != NULL;
            if (is_open && (!PyLong_CheckExact(found) || ((end = PyLong_AsLongLong(found)) == -1 && PyErr_Occurred()))) {
                if (!PyErr_Occurred())  /* ends are ints the plan made: anything else is a bug, raised */
                    PyErr_SetString(PyExc_TypeError, "build: a partition's end is no int");
                goto fail;
            }
        }
        if (!is_open) {
            self->api.message_destroy(m);
            continue;
        }
        long long at = m->offset;
        if (at >= end - 1) {
            if (PyDict_DelItem(open_, where) < 0 || PyList_Append(done, where) < 0)
                goto fail;
            is_open = 0;
            if (at >= end) {
                self->api.message_destroy(m);
                continue;
            }
        }
        PyObject *opens_log = Py_False;
        if (PySet_GET_SIZE(fresh)) {
            int found = PySet_Discard(fresh, where);
            if (found < 0)
                goto fail;
            if (found)
                opens_log = Py_True;
        }
        PyObject *record = self->cls->tp_alloc(self->cls, 0);
        if (record == NULL)
            goto fail;
        for (Py_ssize_t k = 0; k < self->n_others; k++)
            SLOT(record, self->other_offsets[k]) = Py_NewRef(self->other_values[k]);
        int tstype = 0;
        SLOT(record, self->field_offsets[F_TOPIC]) = Py_NewRef(PyTuple_GET_ITEM(where, 0));
        SLOT(record, self->field_offsets[F_PARTITION]) = Py_NewRef(PyTuple_GET_ITEM(where, 1));
        SLOT(record, self->field_offsets[F_OFFSET]) = PyLong_FromLongLong(at);
        SLOT(record, self->field_offsets[F_TIMESTAMP]) = PyLong_FromLongLong(self->api.message_timestamp(m, &tstype));
        SLOT(record, self->field_offsets[F_KEY]) = bytes_or_none(m->key, m->key_len);
        SLOT(record, self->field_offsets[F_VALUE]) = bytes_or_none(m->payload, m->len);
        SLOT(record, self->field_offsets[F_HEADERS]) = headers_of(self, m, 0);
        SLOT(record, self->field_offsets[F_CATALOG]) = Py_NewRef(catalog);
        SLOT(record, self->field_offsets[F_OPENS_LOG]) = Py_NewRef(opens_log);
        Py_SETREF(PyList_GET_ITEM(out, made), record);
        made++;
        for (int f = 0; f < N_FIELDS; f++)
            if (SLOT(record, self->field_offsets[f]) == NULL)
                goto fail;
        self->api.message_destroy(m);
    }
    Py_XDECREF(where);
    if (made < PyList_GET_SIZE(out) && PyList_SetSlice(out, made, PyList_GET_SIZE(out), NULL) < 0) {
        Py_DECREF(out);
        Py_XDECREF(odd);
        return NULL;
    }
    return Py_BuildValue("(NN)", out, odd != NULL ? odd : Py_NewRef(Py_None));
fail:
    /* the message at `at` is given back with the rest when the reader closes */
    Py_XDECREF(where);
    Py_XDECREF(odd);
    Py_DECREF(out);
    return NULL;
}

static PyObject *reader_close(Reader *self, PyObject *unused) {
    reader_close_all(self);
    Py_RETURN_NONE;
}

static PyMethodDef reader_methods[] = {
    {"consume", (PyCFunction)(void (*)(void))consume, METH_FASTCALL, "consume(count, timeout_ms) -> n"},
    {"build", (PyCFunction)(void (*)(void))build, METH_FASTCALL, "build(open_, fresh, done, catalog) -> (records, odd)"},
    {"close", (PyCFunction)reader_close, METH_NOARGS, "close(): the messages not built and the queue given back"},
    {NULL, NULL, 0, NULL}
};

static PyObject *from_bytes(Reader *self, void *unused) {
    return PyBool_FromLong(self->headers.raw.state == 1 && self->headers.raw.verified >= VERIFIED);
}

static PyGetSetDef reader_getset[] = {
    {"headers_from_bytes", (getter)from_bytes, NULL, "whether headers are now read from their bytes", NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "leadbus.audit._rdkafka.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Replay records made straight from librdkafka's messages (see leadbus.audit.native_records).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)reader_init,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_methods = reader_methods,
    .tp_getset = reader_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rdkafka", "Replay records made straight from librdkafka's messages.", -1, NULL,
};

PyMODINIT_FUNC PyInit__rdkafka(void) {
    if (PyType_Ready(&ReaderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
