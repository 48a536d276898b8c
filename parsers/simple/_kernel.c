/* The C kernel of qtrace.parsers.simple (see kernel.py): two loops over a window of a QEMU
 * simple-backend trace that the numpy paths do in many passes.
 *
 * scan(): event records back to back, for as long as each is sound (type word 1, a length
 * in range, wholly inside the window), with their header fields and first two argument
 * words. It stops at anything else; the Python walk decides what that is.
 *
 * render(): simpletrace.py's argument text for records that share one layout. Each record's
 * argument bytes are checked against the layout, hashed, and only the distinct ones are
 * rendered: the text of a record is a function of its layout and argument bytes.
 *
 * Both must give exactly what scan.py and arguments.py give without the kernel; the tests
 * read every trace both ways.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_EVENT 1
#define EVENT_HEADER_BYTES 32
#define MIN_EVENT_LENGTH 24
#define MAX_EVENT_LENGTH (24 + 10 * (4 + 512))
#define MAX_ARGS 64

static inline uint64_t u64_at(const unsigned char *p, int big) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return big ? v : __builtin_bswap64(v);
#else
    return big ? __builtin_bswap64(v) : v;
#endif
}

static inline uint32_t u32_at(const unsigned char *p, int big) {
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return big ? v : __builtin_bswap32(v);
#else
    return big ? __builtin_bswap32(v) : v;
#endif
}

/* A writable buffer of at least `count` items of `itemsize` bytes. */
static int out_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t count, Py_ssize_t itemsize,
                      const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->len < count * itemsize) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s: buffer too small", what);
        return -1;
    }
    return 0;
}

static int in_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->len % itemsize) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s: not a whole number of items", what);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------- scan */

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer data;
    long long base, start, stop, capacity;
    int big;
    PyObject *outs[7];
    if (!PyArg_ParseTuple(args, "y*LLLpLOOOOOOO:scan", &data, &base, &start, &stop, &big,
                          &capacity, &outs[0], &outs[1], &outs[2], &outs[3], &outs[4], &outs[5],
                          &outs[6]))
        return NULL;
    static const Py_ssize_t sizes[7] = {8, 8, 8, 4, 4, 8, 8};
    Py_buffer views[7];
    int held = 0;
    PyObject *result = NULL;
    if (start < 0 || stop > data.len || capacity < 0) {
        PyErr_SetString(PyExc_ValueError, "scan: start, stop or capacity out of range");
        goto done;
    }
    for (; held < 7; held++)
        if (out_buffer(outs[held], &views[held], capacity, sizes[held], "scan") < 0) goto done;
    int64_t *offset = views[0].buf;
    uint64_t *eid = views[1].buf, *ts = views[2].buf, *a0 = views[5].buf, *a1 = views[6].buf;
    uint32_t *length = views[3].buf, *pid = views[4].buf;
    const unsigned char *buf = data.buf;
    long long count = 0, pos = start;
    Py_BEGIN_ALLOW_THREADS;
    while (count < capacity && stop - pos >= EVENT_HEADER_BYTES) {
        const unsigned char *p = buf + pos;
        if (u64_at(p, big) != RECORD_EVENT) break;
        uint32_t len = u32_at(p + 24, big);
        if (len < MIN_EVENT_LENGTH || len > MAX_EVENT_LENGTH || pos + 8 + len > stop) break;
        offset[count] = base + pos;
        eid[count] = u64_at(p + 8, big);
        ts[count] = u64_at(p + 16, big);
        length[count] = len;
        pid[count] = u32_at(p + 28, big);
        a0[count] = len >= MIN_EVENT_LENGTH + 8 ? u64_at(p + 32, big) : 0;
        a1[count] = len >= MIN_EVENT_LENGTH + 16 ? u64_at(p + 40, big) : 0;
        count++;
        pos += 8 + len;
    }
    Py_END_ALLOW_THREADS;
    result = PyLong_FromLongLong(count);
done:
    while (held > 0) PyBuffer_Release(&views[--held]);
    PyBuffer_Release(&data);
    return result;
}

/* ----------------------------------------------------------------------------- render */

typedef struct {
    uint32_t at;   /* where the record's argument bytes start, in the window */
    uint32_t size; /* how many */
    uint32_t hash; /* their hash's low half */
    uint32_t code; /* the text's number; EMPTY: a free slot */
} Slot;

#define EMPTY UINT32_MAX
#define FIRST_SLOTS 4096 /* the table grows as distinct texts come: it stays in the cache */

static inline uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h ^ w) + 0x9e3779b97f4a7c15ULL;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    return mix(h ^ w ^ ((uint64_t)n << 56));
}

typedef struct {
    char *text;
    size_t size, capacity;
} Text;

static int put(Text *t, const char *s, size_t n) {
    if (t->size + n > t->capacity) {
        size_t capacity = (t->size + n) * 2 + 64;
        char *grown = realloc(t->text, capacity);
        if (!grown) return -1;
        t->text = grown;
        t->capacity = capacity;
    }
    memcpy(t->text + t->size, s, n);
    t->size += n;
    return 0;
}

/* Python's repr() of bytes: b'...' (b"..." when the bytes hold ' but no "). */
static int put_bytes_repr(Text *t, const unsigned char *s, uint32_t n) {
    static const char hex[] = "0123456789abcdef";
    int squote = memchr(s, '\'', n) != NULL, dquote = memchr(s, '"', n) != NULL;
    char quote = squote && !dquote ? '"' : '\'';
    char head[2] = {'b', quote};
    if (put(t, head, 2) < 0) return -1;
    for (uint32_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        char out[4];
        size_t k = 0;
        if (c == (unsigned char)quote || c == '\\') {
            out[k++] = '\\';
            out[k++] = (char)c;
        } else if (c == '\t') {
            out[k++] = '\\';
            out[k++] = 't';
        } else if (c == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else if (c == '\r') {
            out[k++] = '\\';
            out[k++] = 'r';
        } else if (c < ' ' || c >= 0x7f) {
            out[k++] = '\\';
            out[k++] = 'x';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        } else {
            out[k++] = (char)c;
        }
        if (put(t, out, k) < 0) return -1;
    }
    return put(t, &quote, 1);
}

static inline int put_hex(Text *t, uint64_t value) {
    static const char hex[] = "0123456789abcdef";
    char digits[18];
    int n = 0;
    do {
        digits[17 - n++] = hex[value & 15];
        value >>= 4;
    } while (value);
    digits[17 - n++] = 'x';
    digits[17 - n++] = '0';
    return put(t, digits + 18 - n, (size_t)n);
}

/* The text of one record's arguments (already checked against the layout). */
static PyObject *render_one(const unsigned char *p, const char *strings, Py_ssize_t nargs,
                            const char *const *names, const Py_ssize_t *name_sizes, int big,
                            Text *t) {
    t->size = 0;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if ((i && put(t, " ", 1) < 0) || put(t, names[i], (size_t)name_sizes[i]) < 0 ||
            put(t, "=", 1) < 0)
            return PyErr_NoMemory();
        if (strings[i]) {
            uint32_t n = u32_at(p, big);
            if (put_bytes_repr(t, p + 4, n) < 0) return PyErr_NoMemory();
            p += 4 + n;
        } else {
            if (put_hex(t, u64_at(p, big)) < 0) return PyErr_NoMemory();
            p += 8;
        }
    }
    return PyUnicode_DecodeASCII(t->text ? t->text : "", (Py_ssize_t)t->size, "strict");
}

/* Double the table, placing every slot again. */
static Slot *grow(Slot *slots, size_t *capacity) {
    size_t bigger = *capacity * 2;
    Slot *grown = malloc(bigger * sizeof(Slot));
    if (!grown) return NULL;
    for (size_t i = 0; i < bigger; i++) grown[i].code = EMPTY;
    for (size_t i = 0; i < *capacity; i++) {
        if (slots[i].code == EMPTY) continue;
        size_t slot = slots[i].hash & (bigger - 1);
        while (grown[slot].code != EMPTY) slot = (slot + 1) & (bigger - 1);
        grown[slot] = slots[i];
    }
    free(slots);
    *capacity = bigger;
    return grown;
}

static PyObject *render(PyObject *self, PyObject *args) {
    Py_buffer data, offsets_view, lengths_view, strings_view, codes_view, ok_view;
    PyObject *offsets_obj, *lengths_obj, *names_obj, *codes_obj, *ok_obj;
    int big;
    if (!PyArg_ParseTuple(args, "y*OOy*O!pOO:render", &data, &offsets_obj, &lengths_obj,
                          &strings_view, &PyTuple_Type, &names_obj, &big, &codes_obj, &ok_obj))
        return NULL;
    PyObject *texts = NULL;
    Slot *slots = NULL;
    Text text = {NULL, 0, 0};
    int held = 0;
    if (in_buffer(offsets_obj, &offsets_view, 8, "render offsets") < 0) goto done;
    held = 1;
    Py_ssize_t rows = offsets_view.len / 8;
    if (in_buffer(lengths_obj, &lengths_view, 4, "render lengths") < 0) goto done;
    held = 2;
    if (lengths_view.len / 4 != rows) {
        PyErr_SetString(PyExc_ValueError, "render: offsets and lengths differ in length");
        goto done;
    }
    if (out_buffer(codes_obj, &codes_view, rows, 4, "render codes") < 0) goto done;
    held = 3;
    if (out_buffer(ok_obj, &ok_view, rows, 1, "render ok") < 0) goto done;
    held = 4;
    Py_ssize_t nargs = strings_view.len;
    if (PyTuple_GET_SIZE(names_obj) != nargs || nargs > MAX_ARGS) {
        PyErr_SetString(PyExc_ValueError, "render: one name per argument (at most 64)");
        goto done;
    }
    const int64_t *offsets = offsets_view.buf;
    const uint32_t *lengths = lengths_view.buf;
    const char *strings = strings_view.buf;
    uint32_t *codes = codes_view.buf;
    unsigned char *ok = ok_view.buf;
    const unsigned char *buf = data.buf;
    const char *names[MAX_ARGS];
    Py_ssize_t name_sizes[MAX_ARGS];
    for (Py_ssize_t i = 0; i < nargs; i++) {
        names[i] = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(names_obj, i), &name_sizes[i]);
        if (!names[i]) goto done;
    }
    if (data.len > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "render: a window of 4 GiB or more");
        goto done;
    }
    texts = PyList_New(0);
    if (!texts) goto done;
    size_t capacity = FIRST_SLOTS, used = 0;
    slots = malloc(capacity * sizeof(Slot));
    if (!slots) {
        PyErr_NoMemory();
        goto failed;
    }
    for (size_t i = 0; i < capacity; i++) slots[i].code = EMPTY;
    for (Py_ssize_t row = 0; row < rows; row++) {
        int64_t at = offsets[row];
        int64_t end = at + 8 + (int64_t)lengths[row];
        codes[row] = 0;
        ok[row] = 0;
        if (at < 0 || end > data.len || lengths[row] < MIN_EVENT_LENGTH) continue;
        /* Walk the layout inside the record: every argument must fit, and fill it exactly. */
        int64_t pos = at + EVENT_HEADER_BYTES;
        int fits = 1;
        for (Py_ssize_t i = 0; i < nargs && fits; i++) {
            if (strings[i]) {
                if (pos + 4 > end) {
                    fits = 0;
                    break;
                }
                pos += 4 + (int64_t)u32_at(buf + pos, big);
            } else {
                pos += 8;
            }
            if (pos > end) fits = 0;
        }
        if (!fits || pos != end) continue;
        uint32_t key_at = (uint32_t)(at + EVENT_HEADER_BYTES);
        uint32_t size = (uint32_t)(end - key_at);
        uint32_t hash = (uint32_t)hash_bytes(buf + key_at, size);
        size_t slot = hash & (capacity - 1);
        while (slots[slot].code != EMPTY &&
               !(slots[slot].hash == hash && slots[slot].size == size &&
                 memcmp(buf + slots[slot].at, buf + key_at, size) == 0))
            slot = (slot + 1) & (capacity - 1);
        if (slots[slot].code == EMPTY) {
            PyObject *rendered =
                render_one(buf + key_at, strings, nargs, names, name_sizes, big, &text);
            if (!rendered) goto failed;
            int appended = PyList_Append(texts, rendered);
            Py_DECREF(rendered);
            if (appended < 0) goto failed;
            uint32_t code = (uint32_t)(PyList_GET_SIZE(texts) - 1);
            slots[slot] = (Slot){key_at, size, hash, code};
            codes[row] = code;
            ok[row] = 1;
            if (++used * 2 > capacity) { /* keep the load at most one half */
                Slot *grown = grow(slots, &capacity);
                if (!grown) {
                    PyErr_NoMemory();
                    goto failed;
                }
                slots = grown;
            }
            continue;
        }
        codes[row] = slots[slot].code;
        ok[row] = 1;
    }
    goto done;
failed:
    Py_CLEAR(texts);
done:
    free(slots);
    free(text.text);
    if (held >= 4) PyBuffer_Release(&ok_view);
    if (held >= 3) PyBuffer_Release(&codes_view);
    if (held >= 2) PyBuffer_Release(&lengths_view);
    if (held >= 1) PyBuffer_Release(&offsets_view);
    PyBuffer_Release(&strings_view);
    PyBuffer_Release(&data);
    return texts;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(buffer, base, start, stop, big_endian, capacity, offset, eid, ts, length, pid, a0, "
     "a1) -> int: the sound event records back to back in buffer[start:stop], at most "
     "capacity, their fields written into the seven arrays (offsets are base + position)."},
    {"render", render, METH_VARARGS,
     "render(buffer, offsets, lengths, strings, names, big_endian, codes, ok) -> list[str]: "
     "simpletrace.py's argument text of the records at offsets (int64) with lengths (uint32) "
     "under one layout (strings: one byte per argument, 1 for a string; names: a tuple); "
     "each record's text number goes to codes (uint32) and whether it fits the layout to ok."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel", "The C kernel of qtrace.parsers.simple.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&module); }
