/* The Arrow C Data Interface structs, and the export of one plain column as a pair of
 * PyCapsules ("arrow_schema", "arrow_array") that polars imports without copying and without
 * numpy. Shared by parsers/_fastlog.c and qtrace/_kernel.c. */
#ifndef QTRACE_ARROW_C_H
#define QTRACE_ARROW_C_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct ArrowSchema {
    const char *format, *name, *metadata;
    int64_t flags, n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
} ArrowSchema;

typedef struct ArrowArray {
    int64_t length, null_count, offset, n_buffers, n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
} ArrowArray;

typedef struct ArrowArrayStream {
    int (*get_schema)(struct ArrowArrayStream *, ArrowSchema *out);
    int (*get_next)(struct ArrowArrayStream *, ArrowArray *out);
    const char *(*get_last_error)(struct ArrowArrayStream *);
    void (*release)(struct ArrowArrayStream *);
    void *private_data;
} ArrowArrayStream;

static void arrow_schema_release(ArrowSchema *s) { s->release = NULL; }

static void arrow_array_release(ArrowArray *a) {
    for (int64_t i = 0; i < a->n_buffers; i++) free((void *)a->buffers[i]);
    free(a->buffers);
    a->release = NULL;
}

static void arrow_schema_capsule_free(PyObject *cap) {
    ArrowSchema *s = PyCapsule_GetPointer(cap, "arrow_schema");
    if (s) {
        if (s->release) s->release(s);
        free(s);
    }
}

static void arrow_array_capsule_free(PyObject *cap) {
    ArrowArray *a = PyCapsule_GetPointer(cap, "arrow_array");
    if (a) {
        if (a->release) a->release(a);
        free(a);
    }
}

/* The (schema, array) capsule pair that owns s and a (released with them on failure). */
static PyObject *arrow_capsules(ArrowSchema *s, ArrowArray *a) {
    PyObject *sc = PyCapsule_New(s, "arrow_schema", arrow_schema_capsule_free);
    if (!sc) {
        free(s);
        arrow_array_release(a);
        free(a);
        return NULL;
    }
    PyObject *ac = PyCapsule_New(a, "arrow_array", arrow_array_capsule_free);
    if (!ac) {
        Py_DECREF(sc);
        arrow_array_release(a);
        free(a);
        return NULL;
    }
    return Py_BuildValue("(NN)", sc, ac);
}

/* A (schema, array) capsule pair of n values in format ("l" int64, "L" uint64, "i" int32,
 * "c" int8). Takes *values and *validity (NULL: no nulls), malloc'd buffers (sets them
 * NULL); null_count counts the zero bits of validity. */
static PyObject *arrow_export_nullable(const char *format, int64_t n, void **values,
                                       void **validity, int64_t null_count) {
    ArrowSchema *s = calloc(1, sizeof *s);
    ArrowArray *a = calloc(1, sizeof *a);
    const void **buffers = calloc(2, sizeof *buffers); /* validity bitmap, values */
    if (!s || !a || !buffers) {
        free(s);
        free(a);
        free(buffers);
        free(*values);
        free(*validity);
        *values = *validity = NULL;
        return PyErr_NoMemory();
    }
    s->format = format;
    s->name = "";
    s->release = arrow_schema_release;
    buffers[0] = *validity;
    *validity = NULL;
    buffers[1] = *values;
    *values = NULL;
    a->length = n;
    a->null_count = buffers[0] ? null_count : 0;
    a->n_buffers = 2;
    a->buffers = buffers;
    a->release = arrow_array_release;
    return arrow_capsules(s, a);
}

/* A (schema, array) capsule pair of n large UTF-8 strings ("U": int64 offsets). Takes the
 * malloc'd buffers *offsets (n + 1 values), *data and *validity (NULL: no nulls). */
static PyObject *arrow_export_strings(int64_t n, int64_t **offsets, char **data,
                                      uint8_t **validity, int64_t null_count) {
    ArrowSchema *s = calloc(1, sizeof *s);
    ArrowArray *a = calloc(1, sizeof *a);
    const void **buffers = calloc(3, sizeof *buffers);
    if (!s || !a || !buffers) {
        free(s);
        free(a);
        free(buffers);
        free(*offsets);
        free(*data);
        free(*validity);
        *offsets = NULL;
        *data = NULL;
        *validity = NULL;
        return PyErr_NoMemory();
    }
    s->format = "U";
    s->name = "";
    s->release = arrow_schema_release;
    buffers[0] = *validity;
    buffers[1] = *offsets;
    buffers[2] = *data;
    *validity = NULL;
    *offsets = NULL;
    *data = NULL;
    a->length = n;
    a->null_count = buffers[0] ? null_count : 0;
    a->n_buffers = 3;
    a->buffers = buffers;
    a->release = arrow_array_release;
    return arrow_capsules(s, a);
}

/* arrow_export_nullable without nulls. */
static PyObject *arrow_export(const char *format, int64_t n, void **values) {
    void *validity = NULL;
    return arrow_export_nullable(format, n, values, &validity, 0);
}

#endif
