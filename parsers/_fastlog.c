/* Fast path of parsers/log_text.py for the common case: a plain log of one dialect
 * (tid-timestamp, iso8601 or bare) read with the default FlatView selection or the model's
 * (the three FlatView events and memory_region_finalize).
 *
 * scan(fd, size) reads the file in windows (pread, never mapped: a file that shrinks under
 * a mapping is a SIGBUS), walks the lines once (memchr for newlines, a hint search for the
 * selected names) and either returns the events as compact buffers (plus the count and
 * first line of hint lines no dialect reads), or None when the file holds anything it does
 * not fully understand: another dialect's line (or one that might be), a FlatView event
 * whose arguments are not "%p (root %p)", bytes that are not ASCII, a line over 1 MiB,
 * an ambiguous dialect. The caller then runs the polars path, which is the reference;
 * this file only has to agree with it wherever it answers. FlatView events carry no args
 * text: view and root are their arguments; a finalize event carries its text, and no
 * pointers.
 *
 * Lines are split like polars' scan_lines: on LF, one CR before it (or at the end of the
 * file) dropped, no empty line after a final LF.
 */
#define _GNU_SOURCE /* memmem */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../qtrace/arrow_c.h"

#define HINT "flatview_"
#define HINT_LEN 9
#define LONG_LINE_BYTES (1 << 20)
#define SAMPLE_TRACE_LINES 64
#define PROBE_LINES 100000
#define MAX_EPOCH_S (INT64_MAX / 1000000000LL)

enum { NONE = 0, TID = 1, BARE = 2, OTHER = 3, ISO = 4 };

/* ------------------------------------------------------------------ character classes */

enum { DIGIT = 1, LOWER = 2, WORD = 4, PROG = 8 };
static unsigned char CLASS[256]; /* bits above, filled at import */
static signed char HEX[256];     /* value of a hex digit, else -1 */

static void init_tables(void) {
    for (int c = 0; c < 256; c++) {
        int digit = c >= '0' && c <= '9', lower = c >= 'a' && c <= 'z';
        int word = digit || lower || (c >= 'A' && c <= 'Z') || c == '_';
        int prog = word || c == '.' || c == '/' || c == '+' || c == '-'; /* [A-Za-z0-9_./+-] */
        CLASS[c] = (unsigned char)((digit ? DIGIT : 0) | (lower ? LOWER : 0) |
                                   (word ? WORD : 0) | (prog ? PROG : 0));
        HEX[c] = (signed char)(digit                    ? c - '0'
                               : c >= 'a' && c <= 'f' ? c - 'a' + 10
                               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                      : -1);
    }
}

#define IS(c, cls) (CLASS[(unsigned char)(c)] & (cls))

/* ------------------------------------------------------------------ line shapes */

typedef struct {
    int kind; /* NONE, TID, BARE, ISO or OTHER */
    const char *name, *name_end;
    const char *at, *dot, *colon; /* TID: the '@', '.' and ':'; ISO: at is the 'Z' */
} Shape;

static inline const char *digits(const char *p, const char *e) {
    while (p < e && IS(*p, DIGIT)) p++;
    return p;
}

/* A name [a-z_][A-Za-z0-9_]* followed by a space or the end; returns its end or NULL. */
static inline const char *name_at(const char *p, const char *e) {
    if (p >= e || !(IS(*p, LOWER) || *p == '_')) return NULL;
    p++;
    while (p < e && IS(*p, WORD)) p++;
    return (p == e || *p == ' ') ? p : NULL;
}

/* Two digits at p as a number. */
static inline int two(const char *p) { return (p[0] - '0') * 10 + (p[1] - '0'); }

/* The 'Z' ending an ISO-8601 stamp YYYY-MM-DDTHH:MM:SS[.F{1,9}]Z at s (the date part is
 * checked by the caller), or NULL. */
static inline const char *iso_end(const char *s, const char *e) {
    if (e - s < 20 || !IS(s[11], DIGIT) || !IS(s[12], DIGIT) || s[13] != ':' ||
        !IS(s[14], DIGIT) || !IS(s[15], DIGIT) || s[16] != ':' || !IS(s[17], DIGIT) ||
        !IS(s[18], DIGIT))
        return NULL;
    const char *p = s + 19;
    if (*p == '.') {
        const char *f = digits(p + 1, e);
        if (f == p + 1 || f - p - 1 > 9) return NULL;
        p = f;
    }
    return p < e && *p == 'Z' ? p : NULL;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant). */
static inline int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The stamp [s, z) (iso_end's shape) in ns since the epoch, as polars' to_datetime reads
 * it. 0 (the caller gives up) for dates it might read differently: fields out of range,
 * leap seconds, years outside 1970..2261. */
static inline int iso_ns(const char *s, const char *z, int64_t *out) {
    static const int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = two(s) * 100 + two(s + 2), mo = two(s + 5), d = two(s + 8);
    int h = two(s + 11), mi = two(s + 14), sec = two(s + 17);
    if (y < 1970 || y > 2261 || mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 59) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d < 1 || d > DAYS[mo - 1] + (mo == 2 && leap)) return 0;
    int64_t frac = 0;
    int places = 0;
    for (const char *p = s + 20; p < z; p++, places++) frac = frac * 10 + (*p - '0');
    for (; places < 9; places++) frac *= 10;
    *out = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 * 1000000000LL +
           sec * 1000000000LL + frac;
    return 1;
}

/* Which dialect's trace line [s, e) is. OTHER means "might be a line of a dialect this
 * scanner does not read" (the caller gives up); it errs towards OTHER. */
static inline Shape classify(const char *s, const char *e) {
    Shape sh = {NONE, NULL, NULL, NULL, NULL, NULL};
    if (s == e) return sh;
    /* prog-thread: PROG: (TID:...): */
    const char *p = s;
    while (p < e && IS(*p, PROG)) p++;
    if (p > s && e - p >= 3 && p[0] == ':' && p[1] == ' ' && p[2] == '(') {
        sh.kind = OTHER;
        return sh;
    }
    if (IS(*s, DIGIT)) {
        const char *d = digits(s, e);
        /* iso8601: YYYY-MM-DDTHH:MM:SS[.F{1,9}]Z NAME; anything else that starts like it
         * (iso8601-prog-thread, a malformed stamp) is left to the polars path. */
        if (d - s == 4 && e - s >= 11 && s[4] == '-' && IS(s[5], DIGIT) && IS(s[6], DIGIT) &&
            s[7] == '-' && IS(s[8], DIGIT) && IS(s[9], DIGIT) && s[10] == 'T') {
            sh.kind = OTHER;
            const char *z = iso_end(s, e);
            if (!z || z + 1 >= e || z[1] != ' ') return sh;
            const char *ne = name_at(z + 2, e);
            if (!ne) return sh;
            sh.kind = ISO;
            sh.at = z;
            sh.name = z + 2;
            sh.name_end = ne;
            return sh;
        }
        if (d == e || *d != '@') return sh;
        const char *at = d;
        const char *sec_end = digits(at + 1, e);
        if (sec_end == at + 1 || sec_end == e) return sh;
        if (*sec_end == ' ') { /* systemtap: PID@NSEC NAME */
            sh.kind = OTHER;
            return sh;
        }
        if (*sec_end != '.') return sh;
        const char *frac_end = digits(sec_end + 1, e);
        if (frac_end == sec_end + 1 || frac_end == e || *frac_end != ':') return sh;
        const char *ne = name_at(frac_end + 1, e);
        if (!ne) return sh;
        sh.kind = TID;
        sh.at = at;
        sh.dot = sec_end;
        sh.colon = frac_end;
        sh.name = frac_end + 1;
        sh.name_end = ne;
        return sh;
    }
    if (IS(*s, LOWER) || *s == '_') {
        /* bare: (?:_|[a-z][A-Za-z0-9]*_)[A-Za-z0-9_]*(?: |$) */
        int underscore = 0;
        p = s;
        while (p < e && IS(*p, WORD)) underscore |= (*p++ == '_');
        if (underscore && (p == e || *p == ' ')) {
            sh.kind = BARE;
            sh.name = s;
            sh.name_end = p;
        }
    }
    return sh;
}

/* A pointer at p: (nil), or 0x and 1..16 hex digits. Returns its end, or NULL. */
static inline const char *pointer(const char *p, const char *e, uint64_t *out) {
    if (e - p >= 5 && memcmp(p, "(nil)", 5) == 0) {
        *out = 0;
        return p + 5;
    }
    if (e - p < 3 || p[0] != '0' || p[1] != 'x') return NULL;
    const char *q = p + 2, *stop = e - q > 17 ? q + 17 : e;
    uint64_t v = 0;
    int h;
    while (q < stop && (h = HEX[(unsigned char)*q]) >= 0) {
        v = (v << 4) | (uint64_t)h;
        q++;
    }
    if (q == p + 2 || q - p > 18) return NULL;
    *out = v;
    return q;
}

/* Exactly "VIEW (root ROOT)". A pointer holds no space, so the first " (root " (where
 * polars cuts) must follow the view directly. */
static inline int view_root(const char *a, const char *e, uint64_t *view, uint64_t *root) {
    static const char mark[] = " (root ";
    const size_t mark_len = sizeof mark - 1;
    if (e - a < 2 || e[-1] != ')') return 0;
    const char *m = pointer(a, e, view);
    if (!m || (size_t)(e - m) < mark_len + 1 || memcmp(m, mark, mark_len) != 0) return 0;
    return pointer(m + mark_len, e - 1, root) == e - 1;
}

static const int64_t POW10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};

/* SEC.FRAC (digits, a dot, digits) in nanoseconds, as polars reads it: a double, times
 * 1e6, rounded half to even, times 1000. Below 2**32 s with at most 6 fraction digits the
 * double's error stays under a quarter microsecond, so exact integer arithmetic gives the
 * same number without strtod. 0 when polars would give null (or the text is too long to
 * be read the same way). */
static inline int stamp_ns(const char *p, const char *dot, const char *e, int64_t *out) {
    if (dot - p <= 10 && e - dot - 1 <= 6) {
        int64_t sec = 0, us = 0;
        for (const char *q = p; q < dot; q++) sec = sec * 10 + (*q - '0');
        for (const char *q = dot + 1; q < e; q++) us = us * 10 + (*q - '0');
        if (sec < (1LL << 32)) {
            *out = (sec * 1000000 + us * POW10[6 - (e - dot - 1)]) * 1000;
            return 1;
        }
    }
    size_t n = (size_t)(e - p);
    char stamp[48];
    if (n > 40) return 0; /* polars reads only the first 40 characters */
    memcpy(stamp, p, n);
    stamp[n] = 0;
    double us = nearbyint(strtod(stamp, NULL) * 1e6);
    if (!(us < (double)MAX_EPOCH_S * 1e6)) return 0;
    *out = (int64_t)us * 1000;
    return 1;
}

/* The next "flatview_" in [p, e): memchr for its rarest-enough first byte, then compare;
 * cheaper than memmem's set-up on the short hops between lines. */
static const char *find_hint(const char *p, const char *e) {
    while (e - p >= HINT_LEN) {
        p = memchr(p, 'f', (size_t)(e - p) - (HINT_LEN - 1));
        if (!p) return NULL;
        if (memcmp(p + 1, HINT + 1, HINT_LEN - 1) == 0) return p;
        p++;
    }
    return NULL;
}

/* The model's selection (the three FlatView events and memory_region_finalize) is searched
 * by the hints the polars path uses for it: "flatview_new", "flatview_destroy" (which
 * "flatview_destroy_rcu" holds) and "memory_region_finalize". */
#define FINALIZE_HINT "memory_region_finalize"
#define FINALIZE_HINT_LEN 22

/* The next FlatView hint in [p, e): "flatview_", or for the model's selection only
 * "flatview_new" and "flatview_destroy". */
static const char *find_flatview_hint(const char *p, const char *e, int model) {
    for (;; p++) {
        p = find_hint(p, e);
        if (!p || !model) return p;
        if ((e - p >= 12 && memcmp(p + HINT_LEN, "new", 3) == 0) ||
            (e - p >= 16 && memcmp(p + HINT_LEN, "destroy", 7) == 0))
            return p;
    }
}

static const char *find_finalize_hint(const char *p, const char *e, int model) {
    return model ? memmem(p, (size_t)(e - p), FINALIZE_HINT, FINALIZE_HINT_LEN) : NULL;
}

/* 0, 1, 2: the FlatView events; 3: memory_region_finalize (model selection only). */
static int event_kind(const char *n, const char *ne, int model) {
    size_t len = (size_t)(ne - n);
    if (len == 12 && memcmp(n, "flatview_new", 12) == 0) return 0;
    if (len == 20 && memcmp(n, "flatview_destroy_rcu", 20) == 0) return 1;
    if (len == 16 && memcmp(n, "flatview_destroy", 16) == 0) return 2;
    if (model && len == FINALIZE_HINT_LEN && memcmp(n, FINALIZE_HINT, len) == 0) return 3;
    return -1;
}

/* True when the buffer holds only bytes 0x01..0x7f (ASCII without NUL): then it is valid
 * UTF-8 and polars' line reader and regexes see exactly these bytes. */
static int plain_ascii(const unsigned char *p, size_t n) {
    const uint64_t high = 0x8080808080808080ULL, low = 0x0101010101010101ULL;
    uint64_t bad = 0;
    size_t i = 0;
    /* Blocks of 4 KiB, each a plain reduction the compiler vectorises; checked between. */
    for (; i + 4096 <= n && !bad; i += 4096) {
        for (size_t j = i; j < i + 4096; j += 8) {
            uint64_t w;
            memcpy(&w, p + j, 8);
            bad |= (w | ((w - low) & ~w)) & high; /* high bit set, or a zero byte */
        }
    }
    for (; i + 8 <= n && !bad; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        bad |= (w | ((w - low) & ~w)) & high;
    }
    for (; i < n && !bad; i++)
        if (p[i] == 0 || p[i] >= 0x80) return 0;
    return bad == 0;
}

/* ------------------------------------------------------------------ windows of the input
 * The file is read with pread() in windows of whole lines into a buffer of our own, never
 * mapped: a mapped file that shrinks while it is read (logrotate's copytruncate, a QEMU
 * restarted on the same -D file) kills the process with SIGBUS. A short read is reported
 * instead. The page cache keeps the file outside our memory; the process holds a window. */

/* Small enough that a window just copied is still in the core's cache when it is scanned. */
#define WINDOW_BYTES ((size_t)512 << 10)
#define PAGE_MASK ((uintptr_t)4095)

/* Read n bytes at off (fewer only at the end of the file); -1 on error. */
static ssize_t read_at(int fd, char *dst, size_t n, int64_t off) {
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(fd, dst + done, n - done, (off_t)(off + (int64_t)done));
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (got == 0) break;
        done += (size_t)got;
    }
    return (ssize_t)done;
}

/* ------------------------------------------------------------------ the scan */

typedef struct {
    int64_t *line, *ts;
    int32_t *tid; /* a pid_t */
    uint64_t *view, *root;
    int8_t *event; /* 0 new, 1 destroy_rcu, 2 destroy, 3 finalize: the caller names them */
    size_t n, cap, first_cap;
    size_t ready; /* events prefaulted */
    /* memory_region_finalize events: their index, and their argument text end to end */
    int64_t *fin_index, *fin_end;
    char *fin_text;
    size_t n_fin, fin_cap, text_len, text_cap;
} Events;

static void events_free(Events *ev) {
    free(ev->line);
    free(ev->ts);
    free(ev->tid);
    free(ev->view);
    free(ev->root);
    free(ev->event);
    free(ev->fin_index);
    free(ev->fin_end);
    free(ev->fin_text);
}

#define GROW(field, cap)                                                                 \
    do {                                                                                 \
        void *p_ = realloc(ev->field, (cap) * sizeof *ev->field);                       \
        if (!p_) return -1;                                                              \
        ev->field = p_;                                                                  \
    } while (0)

/* Fault in [from, to) bytes of p in one call: the columns are written once, front to
 * back, and taking a page fault per 4 KiB cost a quarter of the scan. Best effort: on
 * kernels without MADV_POPULATE_WRITE (before 5.14) the pages fault in as usual. */
static void prefault(void *p, size_t from, size_t to) {
#ifdef MADV_POPULATE_WRITE
    uintptr_t start = ((uintptr_t)p + from) & ~PAGE_MASK;
    uintptr_t stop = ((uintptr_t)p + to) & ~PAGE_MASK;
    if (stop > start) madvise((void *)start, stop - start, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)from;
    (void)to;
#endif
}

#define PREFAULT_EVENTS ((size_t)1 << 16)

/* Prefault the column slots of the next PREFAULT_EVENTS events. */
static void events_prefault(Events *ev) {
    size_t from = ev->ready, to = from + PREFAULT_EVENTS;
    if (to > ev->cap) to = ev->cap;
    prefault(ev->line, from * 8, to * 8);
    prefault(ev->ts, from * 8, to * 8);
    prefault(ev->tid, from * 4, to * 4);
    prefault(ev->view, from * 8, to * 8);
    prefault(ev->root, from * 8, to * 8);
    prefault(ev->event, from, to);
    ev->ready = to;
}

/* Room for one more event; -1 when out of memory. */
static int events_grow(Events *ev) {
    if (ev->n < ev->cap) return 0;
    size_t cap = ev->cap ? ev->cap * 2 : ev->first_cap;
    GROW(line, cap);
    GROW(ts, cap);
    GROW(tid, cap);
    GROW(view, cap);
    GROW(root, cap);
    GROW(event, cap);
    ev->cap = cap;
    return 0;
}

/* Keep a finalize event's argument text [a, e); -1 when out of memory. */
static int keep_args(Events *ev, size_t index, const char *a, const char *e) {
    size_t len = (size_t)(e - a);
    if (ev->n_fin == ev->fin_cap) {
        size_t cap = ev->fin_cap ? ev->fin_cap * 2 : 64;
        GROW(fin_index, cap);
        GROW(fin_end, cap);
        ev->fin_cap = cap;
    }
    if (ev->text_len + len > ev->text_cap) {
        size_t cap = ev->text_cap ? ev->text_cap : 4096;
        while (cap < ev->text_len + len) cap *= 2;
        GROW(fin_text, cap);
        ev->text_cap = cap;
    }
    memcpy(ev->fin_text + ev->text_len, a, len);
    ev->text_len += len;
    ev->fin_index[ev->n_fin] = (int64_t)index;
    ev->fin_end[ev->n_fin++] = (int64_t)ev->text_len;
    return 0;
}

/* One stretch of whole lines of the file, [from, to), scanned by one thread. Line numbers
 * count from the stretch's start; the caller shifts the later stretch's. */
typedef struct {
    int fd, model;
    int64_t from, to;
    Events ev;
    int ok, nomem, shrunk, io_error;
    int64_t lines, n_tid, n_iso, n_bare, hint_bare, damaged, first_damaged;
    int64_t first_prefixed, bare_before_prefixed; /* the first TID or ISO line */
} Part;

/* The lines of nearly every large log, "TID@SEC.FRAC:flatview_EVENT VIEW (root ROOT)" and
 * QEMU 10.1's "STAMP flatview_EVENT VIEW (root ROOT)", read in one sweep: the event into
 * slot i of the columns, and the start of the next line returned. NULL for any other line,
 * and for any the sweep might read otherwise than the general path below (which then reads
 * it: the two agree wherever the sweep answers). */

/* "flatview_EVENT VIEW (root ROOT)" at p and the end of its line: the event's kind, view
 * and root into slot i; returns the start of the next line, or NULL. */
static inline const char *flatview_tail(Events *ev, size_t i, const char *p, const char *wend) {
    if (wend - p < HINT_LEN + 8 || memcmp(p, HINT, HINT_LEN) != 0) return NULL;
    p += HINT_LEN;
    int kind;
    if (memcmp(p, "new ", 4) == 0) {
        kind = 0;
        p += 4;
    } else if (memcmp(p, "destroy ", 8) == 0) {
        kind = 2;
        p += 8;
    } else if (wend - p >= 12 && memcmp(p, "destroy_rcu ", 12) == 0) {
        kind = 1;
        p += 12;
    } else {
        return NULL;
    }
    uint64_t view, root;
    p = pointer(p, wend, &view);
    if (!p || wend - p < 8 || memcmp(p, " (root ", 7) != 0) return NULL;
    p = pointer(p + 7, wend, &root);
    if (!p || wend - p < 2 || *p != ')') return NULL;
    p++;
    if (*p == '\r') p++;
    if (p == wend || *p != '\n') return NULL;
    ev->view[i] = view;
    ev->root[i] = root;
    ev->event[i] = (int8_t)kind;
    return p + 1;
}

/* An ISO-8601 FlatView line, as classify() and the general path read it. */
static inline const char *iso_flatview_line(Events *ev, size_t i, const char *s,
                                            const char *wend) {
    if (wend - s < 21 || !IS(s[1], DIGIT) || !IS(s[2], DIGIT) || !IS(s[3], DIGIT) ||
        s[4] != '-' || !IS(s[5], DIGIT) || !IS(s[6], DIGIT) || s[7] != '-' ||
        !IS(s[8], DIGIT) || !IS(s[9], DIGIT) || s[10] != 'T')
        return NULL;
    const char *z = iso_end(s, wend);
    int64_t ts;
    if (!z || wend - z < 2 || z[1] != ' ' || !iso_ns(s, z, &ts)) return NULL;
    const char *next = flatview_tail(ev, i, z + 2, wend);
    if (!next) return NULL;
    ev->ts[i] = ts;
    ev->tid[i] = 0;
    return next;
}

/* A tid-timestamp FlatView line. */
static inline const char *tid_flatview_line(Events *ev, size_t i, const char *s,
                                            const char *wend) {
    const char *p = s, *stop = wend - s > 11 ? s + 11 : wend;
    int64_t tid = 0, sec = 0, us = 0;
    while (p < stop && IS(*p, DIGIT)) tid = tid * 10 + (*p++ - '0');
    /* at most 10 digits, as the general path (and a pid_t) */
    if (p == s || p == stop || *p != '@' || p - s > 10 || tid > INT32_MAX) return NULL;
    const char *q = ++p;
    stop = wend - p > 11 ? p + 11 : wend;
    while (p < stop && IS(*p, DIGIT)) sec = sec * 10 + (*p++ - '0');
    if (p == q || p == stop || *p != '.' || p - q > 10 || sec >= (1LL << 32)) return NULL;
    q = ++p;
    stop = wend - p > 7 ? p + 7 : wend;
    while (p < stop && IS(*p, DIGIT)) us = us * 10 + (*p++ - '0');
    if (p == q || p == stop || *p != ':' || p - q > 6) return NULL;
    int64_t ts = (sec * 1000000 + us * POW10[6 - (p - q)]) * 1000;
    const char *next = flatview_tail(ev, i, p + 1, wend);
    if (!next) return NULL;
    ev->ts[i] = ts;
    ev->tid[i] = (int32_t)tid;
    return next;
}

/* Scan the whole lines of [s, wend): 0 to go on, 1 when the scanner gives up. */
static int scan_lines(Part *pt, const char *s, const char *wend, int64_t *lines) {
    Events *ev = &pt->ev;
    if (!plain_ascii((const unsigned char *)s, (size_t)(wend - s))) return 1;
    int ftrace_checked = 0;
    while (s < wend) {
        if (IS(*s, DIGIT)) { /* the usual line, read in one sweep when it is one */
            size_t i = ev->n;
            if (events_grow(ev)) goto oom;
            if (i >= ev->ready) events_prefault(ev);
            int iso = wend - s > 4 && s[4] == '-';
            const char *next =
                iso ? iso_flatview_line(ev, i, s, wend) : tid_flatview_line(ev, i, s, wend);
            if (next) {
                ++*lines;
                if (!pt->n_tid && !pt->n_iso) pt->first_prefixed = *lines;
                if (iso) pt->n_iso++;
                else pt->n_tid++;
                ev->line[i] = *lines;
                ev->n++;
                s = next;
                continue;
            }
        }
        const char *nl = memchr(s, '\n', (size_t)(wend - s));
        const char *e = nl ? nl : wend;
        const char *next = nl ? nl + 1 : wend;
        if (e > s && e[-1] == '\r') e--;
        ++*lines;
        if (e - s > LONG_LINE_BYTES) return 1;
        Shape sh = classify(s, e);
        if (sh.kind == OTHER) return 1;
        /* An ftrace marker line has a prefix of no fixed shape: it classifies as bare or as
         * no dialect. The rest of the window is searched once, at the first such line. */
        if ((sh.kind == NONE || sh.kind == BARE) && !ftrace_checked) {
            if (memmem(s, (size_t)(wend - s), "tracing_mark_write: ", 20)) return 1;
            ftrace_checked = 1;
        }
        if (sh.kind == TID || sh.kind == ISO) {
            if (!pt->n_tid && !pt->n_iso) pt->first_prefixed = *lines;
            if (sh.kind == TID) pt->n_tid++;
            else pt->n_iso++;
        } else if (sh.kind == BARE) {
            pt->n_bare++;
            if (!pt->n_tid && !pt->n_iso) pt->bare_before_prefixed++;
        }
        /* A prefixed line holds a hint where it matters only as the selected event it names;
         * other lines are searched, to count the ones no dialect reads. */
        int holds = sh.kind == TID || sh.kind == ISO
                        ? event_kind(sh.name, sh.name_end, pt->model) >= 0
                        : find_flatview_hint(s, e, pt->model) || find_finalize_hint(s, e, pt->model);
        if (holds) {
            if (sh.kind == BARE)
                pt->hint_bare++;
            /* Cut or garbled: no dialect reads it, and it names a FlatView event, as the
             * reader's damage rule says (parsers/log/damage.py); a mention such as a command
             * line's -trace 'flatview_*' is only skipped there, and here. */
            else if (sh.kind == NONE && find_flatview_hint(s, e, 1) && !pt->damaged++)
                pt->first_damaged = *lines;
            int kind = sh.kind == NONE ? -1 : event_kind(sh.name, sh.name_end, pt->model);
            if (kind >= 0) {
                const char *args = sh.name_end == e ? e : sh.name_end + 1;
                size_t i = ev->n;
                if (events_grow(ev)) goto oom;
                if (i >= ev->ready) events_prefault(ev);
                if (kind == 3) { /* memory_region_finalize: its text is its arguments */
                    ev->view[i] = ev->root[i] = 0;
                    if (keep_args(ev, i, args, e)) goto oom;
                } else if (!view_root(args, e, &ev->view[i], &ev->root[i])) {
                    return 1;
                }
                int64_t tid = 0, ts = 0;
                if (sh.kind == TID) {
                    if (sh.at - s > 10) return 1; /* might not fit a pid_t */
                    for (const char *p = s; p < sh.at; p++) tid = tid * 10 + (*p - '0');
                    if (tid > INT32_MAX) return 1;
                    if (!stamp_ns(sh.at + 1, sh.dot, sh.colon, &ts)) return 1;
                } else if (sh.kind == ISO) {
                    if (!iso_ns(s, sh.at, &ts)) return 1;
                }
                ev->line[i] = *lines;
                ev->ts[i] = ts;
                ev->tid[i] = (int32_t)tid;
                ev->event[i] = (int8_t)kind;
                ev->n++;
            }
        }
        s = next;
    }
    return 0;
oom:
    pt->nomem = 1;
    return 1;
}

static void scan_part(Part *pt) {
    Events *ev = &pt->ev;
    size_t size = (size_t)(pt->to - pt->from);
    /* An event line takes at least 32 bytes: room for all of them up front (untouched
     * pages cost nothing), so the columns are never copied while growing. */
    ev->first_cap = size / 32 + 1024;
    if (events_grow(ev)) {
        /* A small machine may refuse that much address space: grow as needed instead. */
        events_free(ev);
        memset(ev, 0, sizeof *ev);
        ev->first_cap = 4096;
        if (events_grow(ev)) goto oom;
    }
    /* A window, plus room for the unfinished line carried over from the one before (a long
     * line is read on, window by window, until it ends or passes LONG_LINE_BYTES). */
    size_t cap = WINDOW_BYTES + LONG_LINE_BYTES + 2, carry = 0;
    char *buf = malloc(cap);
    if (!buf) goto oom;
    int64_t at = pt->from, lines = 0;
    for (;;) {
        size_t want = carry + WINDOW_BYTES <= cap ? WINDOW_BYTES : cap - carry;
        if ((int64_t)want > pt->to - at) want = (size_t)(pt->to - at);
        ssize_t got = read_at(pt->fd, buf + carry, want, at);
        if (got < 0) {
            pt->io_error = errno ? errno : EIO;
            break;
        }
        if ((size_t)got < want) { /* the file shrank while we read it */
            pt->shrunk = 1;
            break;
        }
        at += got;
        int last = at == pt->to;
        const char *end = buf + carry + got, *wend = end;
        if (!last) {
            const char *nl = memrchr(buf, '\n', (size_t)(end - buf));
            if (!nl) { /* a line longer than the window: read on, to its end or the limit */
                carry = (size_t)(end - buf);
                if (carry > LONG_LINE_BYTES) break; /* the polars path reports it */
                continue;
            }
            wend = nl + 1;
        }
        if (scan_lines(pt, buf, wend, &lines)) break;
        if (last) {
            pt->lines = lines;
            pt->ok = 1;
            break;
        }
        carry = (size_t)(end - wend);
        if (carry > LONG_LINE_BYTES) break;
        memmove(buf, wend, carry);
    }
    free(buf);
    return;
oom:
    pt->nomem = 1;
}

static void *scan_thread(void *arg) {
    scan_part(arg);
    return NULL;
}

/* The finalize events' texts as a list of str (ASCII: every window was checked). */
static PyObject *finalize_args(Events *ev) {
    PyObject *list = PyList_New((Py_ssize_t)ev->n_fin);
    int64_t start = 0;
    for (size_t i = 0; list && i < ev->n_fin; i++) {
        PyObject *text = PyUnicode_DecodeASCII(ev->fin_text + start, ev->fin_end[i] - start, NULL);
        if (!text) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, text);
        start = ev->fin_end[i];
    }
    return list;
}

/* A validity bitmap for view and root: finalize events have neither. NULL when none. */
static uint8_t *pointer_validity(Events *ev) {
    if (!ev->n_fin) return NULL;
    size_t bytes = (ev->n + 7) / 8;
    uint8_t *bits = malloc(bytes ? bytes : 1);
    if (!bits) return NULL;
    memset(bits, 0xff, bytes);
    for (size_t i = 0; i < ev->n_fin; i++) {
        int64_t j = ev->fin_index[i];
        bits[j >> 3] &= (uint8_t)~(1u << (j & 7));
    }
    return bits;
}

/* The columns of one part as a dict of capsule pairs; takes the part's buffers. */
static PyObject *export_part(Part *pt) {
    Events *ev = &pt->ev;
    int64_t n = (int64_t)ev->n, nulls = (int64_t)ev->n_fin;
    void *view_valid = pointer_validity(ev), *root_valid = pointer_validity(ev);
    if (ev->n_fin && (!view_valid || !root_valid)) {
        free(view_valid);
        free(root_valid);
        return PyErr_NoMemory();
    }
    PyObject *col[6] = {
        arrow_export("l", n, (void **)&ev->line),
        arrow_export("l", n, (void **)&ev->ts),
        arrow_export("i", n, (void **)&ev->tid),
        arrow_export("c", n, (void **)&ev->event),
        arrow_export_nullable("L", n, (void **)&ev->view, &view_valid, nulls),
        arrow_export_nullable("L", n, (void **)&ev->root, &root_valid, nulls),
    };
    PyObject *index = NULL, *texts = finalize_args(ev);
    if (texts) {
        index = PyList_New((Py_ssize_t)ev->n_fin);
        for (size_t i = 0; index && i < ev->n_fin; i++) {
            PyObject *v = PyLong_FromLongLong(ev->fin_index[i]);
            if (!v) Py_CLEAR(index);
            else PyList_SET_ITEM(index, (Py_ssize_t)i, v);
        }
    }
    int ok = index && texts;
    for (int i = 0; i < 6; i++) ok &= col[i] != NULL;
    if (!ok) {
        for (int j = 0; j < 6; j++) Py_XDECREF(col[j]);
        Py_XDECREF(index);
        Py_XDECREF(texts);
        return NULL;
    }
    return Py_BuildValue("{s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "line", col[0], "ts_ns", col[1],
                         "tid", col[2], "event", col[3], "view", col[4], "root", col[5],
                         "finalize_index", index, "finalize_args", texts);
}

/* The first newline at or after half of [from, to) (its offset + 1), or 0 when there is
 * none within a long line's length. */
static int64_t split_point(int fd, int64_t from, int64_t to) {
    int64_t half = from + (to - from) / 2;
    size_t n = (size_t)LONG_LINE_BYTES + 1;
    if ((int64_t)n > to - half) n = (size_t)(to - half);
    char *buf = malloc(n ? n : 1);
    if (!buf) return 0;
    ssize_t got = read_at(fd, buf, n, half);
    const char *nl = got > 0 ? memchr(buf, '\n', (size_t)got) : NULL;
    int64_t at = nl ? half + (nl - buf) + 1 : 0;
    free(buf);
    return at;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    (void)self;
    int fd, model = 0;
    long long size;
    Py_ssize_t split_bytes = (Py_ssize_t)64 << 20; /* below this one thread is quicker */
    if (!PyArg_ParseTuple(args, "iL|np:scan", &fd, &size, &split_bytes, &model)) return NULL;
    Part part[2];
    memset(part, 0, sizeof part);
    int n_parts = 1;
    part[0].fd = part[1].fd = fd;
    part[0].model = part[1].model = model;
    part[0].from = 0;
    part[0].to = size;

    Py_BEGIN_ALLOW_THREADS;
    /* Two halves split after a newline, the second in its own thread. */
    int64_t mid = size >= split_bytes ? split_point(fd, 0, size) : 0;
    pthread_t thread;
    if (mid > 0 && mid < size) {
        part[0].to = part[1].from = mid;
        part[1].to = size;
        n_parts = pthread_create(&thread, NULL, scan_thread, &part[1]) == 0 ? 2 : 1;
        if (n_parts == 1) part[0].to = size;
    }
    scan_part(&part[0]);
    if (n_parts == 2) pthread_join(thread, NULL);
    Py_END_ALLOW_THREADS;

    Part *a = &part[0], *b = &part[1];
    int nomem = a->nomem || (n_parts == 2 && b->nomem);
    int shrunk = a->shrunk || (n_parts == 2 && b->shrunk);
    int io_error = a->io_error ? a->io_error : n_parts == 2 ? b->io_error : 0;
    int ok = a->ok && (n_parts == 1 || b->ok);
    int64_t lines = a->lines, n_tid = a->n_tid, n_iso = a->n_iso, n_bare = a->n_bare;
    int64_t hint_bare = a->hint_bare;
    int64_t first_prefixed = a->first_prefixed, bare_before_prefixed = a->bare_before_prefixed;
    int64_t damaged = a->damaged, first_damaged = a->first_damaged;
    if (ok && n_parts == 2) {
        for (size_t i = 0; i < b->ev.n; i++) b->ev.line[i] += a->lines;
        if (!a->n_tid && !a->n_iso) {
            first_prefixed = b->n_tid || b->n_iso ? b->first_prefixed + a->lines : 0;
            bare_before_prefixed = a->n_bare + b->bare_before_prefixed;
        }
        if (!a->damaged) first_damaged = b->damaged ? b->first_damaged + a->lines : 0;
        lines += b->lines;
        n_tid += b->n_tid;
        n_iso += b->n_iso;
        n_bare += b->n_bare;
        hint_bare += b->hint_bare;
        damaged += b->damaged;
    }
    const char *dialect = NULL;
    int64_t trace = 0;
    /* One prefixed dialect, found where the polars path looks for it; bare lines there are
     * other -d output. Two prefixed dialects in one file are the polars path's to report. */
    int prefixed = ok && !hint_bare && (n_tid > 0) != (n_iso > 0) &&
                   (bare_before_prefixed < SAMPLE_TRACE_LINES || first_prefixed <= PROBE_LINES);
    if (prefixed) {
        dialect = n_tid ? "tid-timestamp" : "iso8601";
        trace = n_tid + n_iso;
    } else if (ok && !n_tid && !n_iso && n_bare) {
        dialect = "bare";
        trace = n_bare;
    }
    PyObject *parts = NULL;
    if (dialect && !nomem && !shrunk && !io_error) {
        parts = PyList_New(n_parts);
        for (int i = 0; parts && i < n_parts; i++) {
            PyObject *one = export_part(&part[i]);
            if (!one) Py_CLEAR(parts);
            else PyList_SET_ITEM(parts, i, one);
        }
    }
    for (int i = 0; i < n_parts; i++) events_free(&part[i].ev); /* what export did not take */
    if (io_error) {
        errno = io_error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (shrunk) return Py_BuildValue("{s:O}", "shrunk", Py_True);
    if (nomem) return PyErr_NoMemory();
    if (!dialect) Py_RETURN_NONE;
    if (!parts) return NULL;
    return Py_BuildValue("{s:s,s:L,s:L,s:L,s:N}", "dialect", dialect, "lines_skipped",
                         (long long)(lines - trace), "damaged", (long long)damaged,
                         "first_damaged", (long long)first_damaged, "parts", parts);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(fd, size, split_bytes=64 MiB, model=False) -> dict | None: the FlatView events "
     "(model: and memory_region_finalize) of the first size bytes of the plain "
     "tid-timestamp, iso8601 or bare log open as fd, or None when the polars path must read "
     "it; {'shrunk': True} when the file turned out shorter than size. Files of split_bytes "
     "or more are scanned in two halves by two threads."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastlog", "Fast path of qtrace.parsers.log_text.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastlog(void) {
    init_tables();
    return PyModule_Create(&module);
}
