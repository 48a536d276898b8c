/* The hot formatting rules of qtrace/formatting.py, for columns of millions of values.
 *
 * hex_pointers(stream) renders a UInt64 column (an Arrow C stream) as QEMU prints a
 * pointer: "0x" and lower-case hex digits without leading zeros, "0x0" for nil, null for
 * null. qtrace.formatting.hex_pointer is the rule; it calls this when the extension is built
 * and computes the same text with polars expressions otherwise (the tests compare the two).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arrow_c.h"

#define MAX_TEXT 18 /* "0x" and 16 digits */

/* "0x..." of v at out; returns its length. */
static inline int hex_text(uint64_t v, char *out) {
    static const char DIGITS[] = "0123456789abcdef";
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = DIGITS[v & 15];
        v >>= 4;
    } while (v);
    out[0] = '0';
    out[1] = 'x';
    for (int i = 0; i < n; i++) out[2 + i] = tmp[n - 1 - i];
    return n + 2;
}

static PyObject *hex_pointers(PyObject *self, PyObject *capsule) {
    (void)self;
    ArrowArrayStream *stream = PyCapsule_GetPointer(capsule, "arrow_array_stream");
    if (!stream) return NULL;
    ArrowSchema schema;
    if (stream->get_schema(stream, &schema)) {
        PyErr_SetString(PyExc_ValueError, "hex_pointers: cannot read the column's schema");
        return NULL;
    }
    int ok = strcmp(schema.format, "L") == 0;
    if (schema.release) schema.release(&schema);
    if (!ok) {
        PyErr_SetString(PyExc_TypeError, "hex_pointers: the column is not UInt64");
        return NULL;
    }
    int64_t n = 0, cap = 0, nulls = 0;
    int64_t *offsets = malloc(sizeof *offsets);
    char *data = NULL;
    uint8_t *validity = NULL;
    if (!offsets) return PyErr_NoMemory();
    offsets[0] = 0;
    ArrowArray chunk;
    for (;;) {
        memset(&chunk, 0, sizeof chunk);
        if (stream->get_next(stream, &chunk)) {
            PyErr_SetString(PyExc_ValueError, "hex_pointers: cannot read the column's chunk");
            goto fail;
        }
        if (!chunk.release) break;
        int64_t len = chunk.length, off = chunk.offset;
        const uint8_t *valid = chunk.null_count ? chunk.buffers[0] : NULL;
        const uint64_t *values = chunk.buffers[1];
        if (n + len > cap) {
            cap = (n + len) * 2;
            int64_t *o = realloc(offsets, (size_t)(cap + 1) * sizeof *o);
            char *d = o ? realloc(data, (size_t)cap * MAX_TEXT) : NULL;
            uint8_t *v = d ? realloc(validity, (size_t)(cap + 7) / 8) : NULL;
            if (o) offsets = o;
            if (d) data = d;
            if (v) validity = v;
            if (!v) {
                PyErr_NoMemory();
                chunk.release(&chunk);
                goto fail;
            }
        }
        int64_t at = offsets[n];
        for (int64_t i = 0; i < len; i++, n++) {
            int64_t j = off + i;
            int present = !valid || (valid[j >> 3] >> (j & 7)) & 1;
            if (present) {
                validity[n >> 3] |= (uint8_t)(1u << (n & 7));
                at += hex_text(values[j], data + at);
            } else {
                validity[n >> 3] &= (uint8_t)~(1u << (n & 7));
                nulls++;
            }
            offsets[n + 1] = at;
        }
        chunk.release(&chunk);
    }
    if (!data) data = malloc(1);
    if (!data) {
        PyErr_NoMemory();
        goto fail;
    }
    if (!nulls) {
        free(validity);
        validity = NULL;
    }
    return arrow_export_strings(n, &offsets, &data, &validity, nulls);
fail:
    free(offsets);
    free(data);
    free(validity);
    return NULL;
}

static PyMethodDef methods[] = {
    {"hex_pointers", hex_pointers, METH_O,
     "hex_pointers(stream) -> (schema, array) capsules: a UInt64 column (an Arrow C stream "
     "capsule) as QEMU prints pointers, '0x' and lower-case hex digits; null stays null."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_format", "Hot formatting rules of qtrace.formatting.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__format(void) { return PyModule_Create(&module); }
