/* The lifetime model's sequential core (docs/model.md), one pass in trace order.
 *
 * walk() reads the model's rows (an event code, the view and root pointers, the time and a
 * process id per row, as Arrow streams) and keeps a hash of the open view instances, keyed
 * by (process, pointer), and one record per (run, root) with its live and RCU-pending pin
 * levels. It returns compact columns (row indices, codes, counts) from which qtrace/model.py
 * builds every public table. qtrace/walker.py is the same contract in plain Python (the
 * fallback when this module was not built, and the reference the tests compare it with):
 * the two must stay rule for rule alike.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "arrow_c.h"

/* Row codes (qtrace/runs.py), anomaly kinds (qtrace/anomalies.py), statuses
 * (qtrace/instances.py): the Python side names them in this order. */
enum { NEW, RCU, DESTROY, DROP, FINALIZE };
enum {
    NEW_WHILE_LIVE,
    REUSED_BEFORE_DESTROY,
    ORPHAN_DESTROY_RCU,
    DOUBLE_DESTROY_RCU,
    NULL_ROOT,
    ROOT_MISMATCH,
    ORPHAN_DESTROY,
    DESTROY_WITHOUT_RCU,
    ROOT_FINALIZED_WHILE_PINNED,
};
enum { FREED, RCU_PENDING, IMMORTAL, CURRENT, LEAKED, LOST };
enum { PINNED, PENDING_ONLY, OVERLAP }; /* span kinds; OVERLAP + class (0, 1, 2) */
enum { PHASE_NONE, PHASE_LIVE, PHASE_PENDING };

#define NULL_TS INT64_MIN
#define NONE (-1)

/* ------------------------------------------------------------------ growable columns */

typedef struct {
    char *data;
    int64_t n, cap;
    int width;
    const char *format;
} Col;

static int col_reserve(Col *c, int64_t n) {
    if (n <= c->cap) return 0;
    int64_t cap = c->cap ? c->cap : 1024;
    while (cap < n) cap *= 2;
    char *p = realloc(c->data, (size_t)cap * (size_t)c->width);
    if (!p) return -1;
    c->data = p;
    c->cap = cap;
    return 0;
}

#define PUSH(col, type, value)                                                    \
    do {                                                                          \
        if (col_reserve(&(col), (col).n + 1)) return -1;                          \
        ((type *)(col).data)[(col).n++] = (type)(value);                          \
    } while (0)
#define AT(col, type, i) (((type *)(col).data)[i])

static void col_init(Col *c, const char *format) {
    memset(c, 0, sizeof *c);
    c->format = format;
    c->width = format[0] == 'c' ? 1 : format[0] == 'i' ? 4 : 8;
}

/* ------------------------------------------------------------------ state */

typedef struct {
    uint64_t view, root;
    int64_t id, new_row, rcu_row, destroy_row, lost_row;
    int64_t new_ts, rcu_ts, destroy_ts, live_end_ts;
    int64_t loss_at_new, loss_at_end; /* loss points seen at its new and at its life end */
    int64_t anomalies;                /* its first anomaly (a chain), or NONE */
    int32_t run, generation, rid, prev, next; /* next/prev: the run's open instances */
    int8_t phase, life_ended;
} Inst;

typedef struct {
    uint64_t root;
    int32_t run, next_in_run;
    int64_t live, pending, instances, leaked, max_concurrent;
    int64_t first_row, min_new_ts, last_step_row, newest;
    int64_t span_row[3], span_pos[3], overlap_peak;
    int overlap_class;
} Root;

typedef struct {
    int32_t stream;
    int64_t first_row, last_fv_row, fv_events, loss_base, loss_points, steps_back, last_ts;
    int64_t first_nil; /* instance id of the run's nil-root view, or NONE */
    int32_t roots;      /* its first root record (a chain through next_in_run), or NONE */
} Run;

typedef struct {
    int32_t run;       /* current run, or NONE */
    int32_t open;      /* first open instance of the current run, or NONE */
    int64_t losses;    /* loss points of this process */
} Stream;

/* Open addressing over (stream, pointer); an entry of a run that is no longer its
 * stream's current one is stale: reused in place, and dropped when the table grows. */
typedef struct {
    uint64_t key;
    int32_t stream, run; /* stream NONE: empty slot */
    int32_t a, b;         /* views: generations so far, open instance slot; roots: rid */
} Entry;

typedef struct {
    Entry *slots;
    int64_t cap, used;
} Map;

typedef struct {
    int destroy_traced, release_at_rcu, full;
    int tables_only; /* with full: no spans nor durations (a pass for the two tables only) */
    int32_t null_stream;
    int64_t global_losses;
    Stream *streams;
    int32_t n_streams;
    Map views, rootmap;
    Inst *pool;
    int32_t pool_cap, free_slot;
    Root *roots;
    int32_t n_roots, roots_cap;
    Run *runs;
    int32_t n_runs, runs_cap;
    int64_t n_instances;
    /* outputs */
    Col i_id, i_run, i_view, i_gen, i_root, i_status, i_new, i_rcu, i_destroy, i_lost, i_unc;
    Col a_run, a_kind, a_row, a_code, a_view, a_root, a_gen, a_unc, a_live, a_pending, a_next;
    Col s_rid, s_kind, s_start_row, s_end_row, s_start_pos, s_end_pos, s_peak;
    Col st_rid, st_row, st_live, st_pending;
    Col live_ns, grace_ns;
    int64_t status_counts[6], event_counts[3], uncertain, gen0, gen1, negative;
} K;

static inline uint64_t mix(uint64_t key, int32_t stream) {
    uint64_t h = key ^ ((uint64_t)(uint32_t)stream * 0x9E3779B97F4A7C15ULL);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static int entry_live(const K *k, const Entry *e) {
    return e->stream != NONE && k->streams[e->stream].run == e->run;
}

/* A table of slots. A large one is hashed into at random, one slot per event: on 2 MiB
 * pages (where the kernel offers them) its lookups miss the TLB far less often. */
#define HUGE_PAGE ((size_t)2 << 20)

static Entry *slots_alloc(int64_t cap) {
    size_t bytes = (size_t)cap * sizeof(Entry);
    if (bytes < HUGE_PAGE) return malloc(bytes);
    bytes = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    Entry *slots = aligned_alloc(HUGE_PAGE, bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (slots) madvise(slots, bytes, MADV_HUGEPAGE);
#endif
    return slots;
}

static int map_grow(K *k, Map *m) {
    int64_t live = 0;
    for (int64_t i = 0; i < m->cap; i++) live += entry_live(k, &m->slots[i]);
    int64_t cap = 1024;
    while (cap < live * 4) cap *= 2;
    Entry *slots = slots_alloc(cap);
    if (!slots) return -1;
    for (int64_t i = 0; i < cap; i++) slots[i].stream = NONE;
    for (int64_t i = 0; i < m->cap; i++) {
        Entry *e = &m->slots[i];
        if (!entry_live(k, e)) continue;
        uint64_t j = mix(e->key, e->stream) & (uint64_t)(cap - 1);
        while (slots[j].stream != NONE) j = (j + 1) & (uint64_t)(cap - 1);
        slots[j] = *e;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    m->used = live;
    return 0;
}

/* The entry of (stream, key) in the stream's current run; with create, a fresh one when
 * there is none (NULL when out of memory); without, NULL when there is none. */
static Entry *map_get(K *k, Map *m, int32_t stream, uint64_t key, int create) {
    if (create && (m->used + 1) * 2 > m->cap && map_grow(k, m)) return NULL;
    if (!m->cap) return NULL;
    uint64_t mask = (uint64_t)(m->cap - 1), j = mix(key, stream) & mask;
    int32_t run = k->streams[stream].run;
    for (;; j = (j + 1) & mask) {
        Entry *e = &m->slots[j];
        if (e->stream == NONE) {
            if (!create) return NULL;
            m->used++;
            break;
        }
        if (e->key == key && e->stream == stream) {
            if (e->run == run) return e;
            if (!create) return NULL;
            break; /* a stale entry of an earlier run: reused */
        }
    }
    Entry *e = &m->slots[j];
    e->key = key;
    e->stream = stream;
    e->run = run;
    e->a = 0;
    e->b = NONE;
    return e;
}

#define PREFETCH_AHEAD 16

static inline void prefetch_slot(const Map *m, uint64_t key, int32_t stream) {
    if (m->cap) __builtin_prefetch(&m->slots[mix(key, stream) & (uint64_t)(m->cap - 1)]);
}

/* The open instance a row a little ahead will touch, when its entry is the first probed
 * (its slot was prefetched further ahead, so reading it rarely waits). */
static inline void prefetch_instance(const K *k, uint64_t key, int32_t stream);

static inline void prefetch_instance(const K *k, uint64_t key, int32_t stream) {
    const Map *m = &k->views;
    if (!m->cap) return;
    const Entry *e = &m->slots[mix(key, stream) & (uint64_t)(m->cap - 1)];
    if (e->key == key && e->stream == stream && e->b != NONE) __builtin_prefetch(&k->pool[e->b]);
}

static int32_t inst_alloc(K *k) {
    if (k->free_slot == NONE) {
        int32_t cap = k->pool_cap ? k->pool_cap * 2 : 4096;
        Inst *p = realloc(k->pool, (size_t)cap * sizeof *p);
        if (!p) return NONE;
        k->pool = p;
        for (int32_t i = k->pool_cap; i < cap; i++) p[i].next = i + 1 < cap ? i + 1 : NONE;
        k->free_slot = k->pool_cap;
        k->pool_cap = cap;
    }
    int32_t slot = k->free_slot;
    k->free_slot = k->pool[slot].next;
    return slot;
}

static inline int64_t losses(const K *k, const Stream *s) { return s->losses + k->global_losses; }

/* ------------------------------------------------------------------ outputs */

static int emit_anomaly(K *k, int32_t run, int kind, int64_t row, int code, uint64_t view,
                        uint64_t root, Inst *inst, int uncertain, int64_t live, int64_t pending) {
    int64_t i = k->a_run.n;
    PUSH(k->a_run, int32_t, run);
    PUSH(k->a_kind, int8_t, kind);
    PUSH(k->a_row, int64_t, row);
    PUSH(k->a_code, int8_t, code);
    PUSH(k->a_view, uint64_t, view);
    PUSH(k->a_root, uint64_t, root);
    PUSH(k->a_gen, int32_t, inst ? inst->generation : NONE);
    PUSH(k->a_unc, int8_t, uncertain);
    PUSH(k->a_live, int64_t, live);
    PUSH(k->a_pending, int64_t, pending);
    /* An instance's anomalies are uncertain when the instance is: known at its end. */
    PUSH(k->a_next, int64_t, inst ? inst->anomalies : NONE);
    if (inst) inst->anomalies = i;
    return 0;
}

static int emit_span(K *k, int32_t rid, int kind, int64_t start_row, int64_t start_pos,
                     int64_t end_row, int64_t end_pos, int64_t peak) {
    if (k->tables_only) return 0;
    PUSH(k->s_rid, int32_t, rid);
    PUSH(k->s_kind, int8_t, kind);
    PUSH(k->s_start_row, int64_t, start_row);
    PUSH(k->s_end_row, int64_t, end_row);
    PUSH(k->s_start_pos, int64_t, start_pos);
    PUSH(k->s_end_pos, int64_t, end_pos);
    PUSH(k->s_peak, int64_t, peak);
    return 0;
}

static inline int overlap_class(int64_t live, int64_t pending) {
    if (live + pending < 2) return NONE;
    if (live > 0 && pending > 0) return 0; /* live+pending */
    return live >= 2 ? 1 : 2;              /* live+live, pending+pending */
}

/* One event's change of a root's levels (changes within one event are summed first). */
static int apply(K *k, int32_t rid, int64_t dl, int64_t dp, int64_t row, int64_t pos) {
    Root *r = &k->roots[rid];
    int64_t ol = r->live, op = r->pending, nl = ol + dl, np = op + dp;
    r->live = nl;
    r->pending = np;
    r->last_step_row = row;
    if (nl + np > r->max_concurrent) r->max_concurrent = nl + np;
    if (k->full) {
        PUSH(k->st_rid, int32_t, rid);
        PUSH(k->st_row, int64_t, row);
        PUSH(k->st_live, int64_t, nl);
        PUSH(k->st_pending, int64_t, np);
    }
    int was[2] = {ol + op > 0, ol == 0 && op > 0}, is[2] = {nl + np > 0, nl == 0 && np > 0};
    for (int kind = PINNED; kind <= PENDING_ONLY; kind++) {
        if (was[kind] && !is[kind]) {
            if (emit_span(k, rid, kind, r->span_row[kind], r->span_pos[kind], row, pos, NONE))
                return -1;
            r->span_row[kind] = r->span_pos[kind] = NONE;
        } else if (!was[kind] && is[kind]) {
            r->span_row[kind] = row;
            r->span_pos[kind] = pos;
        }
    }
    int oc = r->overlap_class, nc = overlap_class(nl, np);
    if (oc != nc) {
        if (oc != NONE && emit_span(k, rid, OVERLAP + oc, r->span_row[OVERLAP],
                                    r->span_pos[OVERLAP], row, pos, r->overlap_peak))
            return -1;
        if (nc != NONE) {
            r->span_row[OVERLAP] = row;
            r->span_pos[OVERLAP] = pos;
            r->overlap_peak = nl + np;
        }
        r->overlap_class = nc;
    } else if (nc != NONE && nl + np > r->overlap_peak) {
        r->overlap_peak = nl + np;
    }
    return 0;
}

typedef struct {
    int32_t rid[2];
    int64_t dl[2], dp[2];
    int n;
} Changes;

static void change(K *k, Changes *c, int32_t rid, int64_t dl, int64_t dp) {
    if (k->roots[rid].root == 0) return; /* nil-root views pin nothing */
    for (int i = 0; i < c->n; i++)
        if (c->rid[i] == rid) {
            c->dl[i] += dl;
            c->dp[i] += dp;
            return;
        }
    c->rid[c->n] = rid;
    c->dl[c->n] = dl;
    c->dp[c->n] = dp;
    c->n++;
}

static int commit(K *k, Changes *c, int64_t row, int64_t pos) {
    for (int i = 0; i < c->n; i++)
        if ((c->dl[i] || c->dp[i]) && apply(k, c->rid[i], c->dl[i], c->dp[i], row, pos))
            return -1;
    return 0;
}

/* The instance leaves its pin at this event. */
static void unpin(K *k, Changes *c, Inst *in) {
    if (in->phase == PHASE_LIVE) change(k, c, in->rid, -1, 0);
    if (in->phase == PHASE_PENDING) change(k, c, in->rid, 0, -1);
    in->phase = PHASE_NONE;
}

static int duration(K *k, Col *col, int64_t from, int64_t to) {
    if (k->tables_only || from == NULL_TS || to == NULL_TS) return 0;
    if (to < from) { /* a clock that stepped back: never a negative duration */
        k->negative++;
        return 0;
    }
    PUSH(*col, int64_t, to - from);
    return 0;
}

/* An instance ends (or the trace does): its status, uncertainty and durations. */
static int close_inst(K *k, Stream *s, int32_t slot, int status) {
    Inst *in = &k->pool[slot];
    int uncertain = in->loss_at_end > in->loss_at_new;
    for (int64_t a = in->anomalies; a != NONE; a = AT(k->a_next, int64_t, a))
        AT(k->a_unc, int8_t, a) = (int8_t)uncertain;
    k->status_counts[status]++;
    k->uncertain += uncertain;
    if (status == LEAKED) k->roots[in->rid].leaked++;
    if (duration(k, &k->live_ns, in->new_ts, in->live_end_ts)) return -1;
    if (in->rcu_row != NONE && in->destroy_row != NONE &&
        duration(k, &k->grace_ns, in->rcu_ts, in->destroy_ts))
        return -1;
    int64_t at = k->full ? in->id : k->i_id.n;
    if (k->full || status == LEAKED || status == LOST) {
        if (!k->full) { /* flagged instances only: appended as they end */
            Col *cols[] = {&k->i_id,  &k->i_run, &k->i_view,    &k->i_gen,  &k->i_root, &k->i_status,
                           &k->i_new, &k->i_rcu, &k->i_destroy, &k->i_lost, &k->i_unc};
            for (size_t i = 0; i < sizeof cols / sizeof *cols; i++)
                if (col_reserve(cols[i], at + 1)) return -1;
            for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) cols[i]->n = at + 1;
        }
        AT(k->i_id, int64_t, at) = in->id;
        AT(k->i_run, int32_t, at) = in->run;
        AT(k->i_view, uint64_t, at) = in->view;
        AT(k->i_gen, int32_t, at) = in->generation;
        AT(k->i_root, uint64_t, at) = in->root;
        AT(k->i_status, int8_t, at) = (int8_t)status;
        AT(k->i_new, int64_t, at) = in->new_row;
        AT(k->i_rcu, int64_t, at) = in->rcu_row;
        AT(k->i_destroy, int64_t, at) = in->destroy_row;
        AT(k->i_lost, int64_t, at) = in->lost_row;
        AT(k->i_unc, int8_t, at) = (int8_t)uncertain;
    }
    /* out of the run's open list, back to the pool */
    if (in->prev != NONE) k->pool[in->prev].next = in->next;
    else s->open = in->next;
    if (in->next != NONE) k->pool[in->next].prev = in->prev;
    in->next = k->free_slot;
    k->free_slot = slot;
    return 0;
}

/* The end of a stream's current run (a new run of the process, or the end of the input):
 * the statuses of its open instances, and its spans still open. */
static int finish_run(K *k, Stream *s) {
    Run *run = &k->runs[s->run];
    int64_t lost_at_end = losses(k, s);
    run->loss_points = lost_at_end - run->loss_base;
    while (s->open != NONE) {
        int32_t slot = s->open;
        Inst *in = &k->pool[slot];
        int status;
        if (in->rcu_row != NONE) {
            status = k->destroy_traced ? RCU_PENDING : FREED;
        } else if (in->id == run->first_nil) {
            status = IMMORTAL;
        } else {
            status = k->roots[in->rid].newest == in->id ? CURRENT : LEAKED;
        }
        if (!in->life_ended) in->loss_at_end = lost_at_end;
        if (close_inst(k, s, slot, status)) return -1;
    }
    for (int32_t rid = run->roots; rid != NONE; rid = k->roots[rid].next_in_run) {
        Root *r = &k->roots[rid];
        for (int kind = PINNED; kind <= PENDING_ONLY; kind++)
            if (r->span_row[kind] != NONE &&
                emit_span(k, rid, kind, r->span_row[kind], r->span_pos[kind], NONE, NONE, NONE))
                return -1;
        if (r->overlap_class != NONE &&
            emit_span(k, rid, OVERLAP + r->overlap_class, r->span_row[OVERLAP],
                      r->span_pos[OVERLAP], NONE, NONE, r->overlap_peak))
            return -1;
    }
    s->run = NONE;
    return 0;
}

static int start_run(K *k, int32_t sid, int64_t row, int pre_run) {
    Stream *s = &k->streams[sid];
    if (s->run != NONE && finish_run(k, s)) return -1;
    if (k->n_runs == k->runs_cap) {
        int32_t cap = k->runs_cap ? k->runs_cap * 2 : 16;
        Run *p = realloc(k->runs, (size_t)cap * sizeof *p);
        if (!p) return -1;
        k->runs = p;
        k->runs_cap = cap;
    }
    Run *run = &k->runs[k->n_runs];
    memset(run, 0, sizeof *run);
    run->stream = sid;
    run->first_row = row;
    run->last_ts = NULL_TS;
    run->first_nil = NONE;
    run->roots = NONE;
    /* A run that starts mid-trace (no nil-root view) counts the losses before it. */
    run->loss_base = pre_run ? 0 : losses(k, s);
    s->run = k->n_runs++;
    s->open = NONE;
    return 0;
}

static int32_t root_of(K *k, int32_t sid, uint64_t root, int create) {
    Entry *e = map_get(k, &k->rootmap, sid, root, create);
    if (!e) return create ? -2 : NONE;
    if (e->b != NONE) return e->b;
    if (k->n_roots == k->roots_cap) {
        int32_t cap = k->roots_cap ? k->roots_cap * 2 : 256;
        Root *p = realloc(k->roots, (size_t)cap * sizeof *p);
        if (!p) return -2;
        k->roots = p;
        k->roots_cap = cap;
    }
    int32_t rid = k->n_roots++;
    Root *r = &k->roots[rid];
    memset(r, 0, sizeof *r);
    Run *run = &k->runs[k->streams[sid].run];
    r->root = root;
    r->run = k->streams[sid].run;
    r->first_row = r->last_step_row = r->newest = NONE;
    r->min_new_ts = NULL_TS;
    for (int i = 0; i < 3; i++) r->span_row[i] = r->span_pos[i] = NONE;
    r->overlap_class = NONE;
    r->next_in_run = run->roots;
    run->roots = rid;
    e->b = rid;
    return rid;
}

/* ------------------------------------------------------------------ one row */

static int flatview_event(K *k, int32_t sid, int64_t row, int code, uint64_t view, uint64_t root,
                          int64_t ts) {
    Stream *s = &k->streams[sid];
    int starts_run = code == NEW && root == 0;
    if (starts_run || s->run == NONE) {
        if (start_run(k, sid, row, !starts_run)) return -1;
    }
    Run *run = &k->runs[s->run];
    int64_t pos = run->fv_events++;
    run->last_fv_row = row;
    if (ts != NULL_TS) {
        if (run->last_ts != NULL_TS && ts < run->last_ts) run->steps_back++;
        run->last_ts = ts;
    }
    k->event_counts[code]++;
    int32_t r = s->run;
    Changes ch = {.n = 0};
    Entry *e = map_get(k, &k->views, sid, view, code == NEW);
    if (code == NEW && !e) return -1;
    Inst *open = e && e->b != NONE ? &k->pool[e->b] : NULL;
    if (code == NEW) {
        if (open) {
            int32_t slot = e->b;
            if (open->rcu_row == NONE || k->destroy_traced) {
                int kind = open->rcu_row == NONE ? NEW_WHILE_LIVE : REUSED_BEFORE_DESTROY;
                if (open->rcu_row == NONE) open->live_end_ts = ts;
                open->lost_row = row;
                open->loss_at_end = losses(k, s);
                open->life_ended = 1;
                unpin(k, &ch, open);
                if (emit_anomaly(k, r, kind, row, code, view, root, open, 0, 0, 0)) return -1;
                if (close_inst(k, s, slot, LOST)) return -1;
            } else { /* not traced: freed at its destroy_rcu */
                if (close_inst(k, s, slot, FREED)) return -1;
            }
            e->b = NONE;
        }
        int32_t rid = root_of(k, sid, root, 1);
        if (rid < 0) return -1;
        int32_t slot = inst_alloc(k);
        if (slot == NONE) return -1;
        Inst *in = &k->pool[slot];
        memset(in, 0, sizeof *in);
        in->view = view;
        in->root = root;
        in->id = k->n_instances++;
        in->new_row = row;
        in->rcu_row = in->destroy_row = in->lost_row = in->anomalies = NONE;
        in->new_ts = ts;
        in->rcu_ts = in->destroy_ts = in->live_end_ts = NULL_TS;
        in->loss_at_new = losses(k, s);
        in->run = r;
        in->generation = e->a++;
        in->rid = rid;
        in->phase = PHASE_LIVE;
        in->prev = NONE;
        in->next = s->open;
        if (s->open != NONE) k->pool[s->open].prev = slot;
        s->open = slot;
        e->b = slot;
        if (in->generation == 0) k->gen0++;
        if (in->generation == 1) k->gen1++;
        if (k->full) { /* a row per instance, in creation order, filled when it ends */
            Col *cols[] = {&k->i_id,  &k->i_run, &k->i_view,    &k->i_gen,  &k->i_root, &k->i_status,
                           &k->i_new, &k->i_rcu, &k->i_destroy, &k->i_lost, &k->i_unc};
            for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) {
                if (col_reserve(cols[i], in->id + 1)) return -1;
                cols[i]->n = in->id + 1;
            }
        }
        Root *rr = &k->roots[rid];
        rr->instances++;
        rr->newest = in->id;
        if (rr->first_row == NONE) rr->first_row = row;
        if (ts != NULL_TS && (rr->min_new_ts == NULL_TS || ts < rr->min_new_ts))
            rr->min_new_ts = ts;
        if (starts_run) run->first_nil = in->id;
        change(k, &ch, rid, 1, 0);
        return commit(k, &ch, row, pos);
    }
    if (code == RCU) {
        int orphan_uncertain = losses(k, s) > run->loss_base;
        if (root == 0 && emit_anomaly(k, r, NULL_ROOT, row, code, view, root, open,
                                      open ? 0 : orphan_uncertain, 0, 0))
            return -1;
        if (!open)
            return emit_anomaly(k, r, ORPHAN_DESTROY_RCU, row, code, view, root, NULL,
                                orphan_uncertain, 0, 0);
        if (open->rcu_row != NONE)
            return emit_anomaly(k, r, DOUBLE_DESTROY_RCU, row, code, view, root, open, 0, 0, 0);
        open->rcu_row = row;
        open->rcu_ts = ts;
        open->live_end_ts = ts;
        if (root != open->root &&
            emit_anomaly(k, r, ROOT_MISMATCH, row, code, view, root, open, 0, 0, 0))
            return -1;
        if (open->phase == PHASE_LIVE) {
            if (k->release_at_rcu || !k->destroy_traced) {
                unpin(k, &ch, open);
            } else {
                change(k, &ch, open->rid, -1, 1);
                open->phase = PHASE_PENDING;
            }
        }
        if (!k->destroy_traced) { /* the instance is freed here */
            open->loss_at_end = losses(k, s);
            open->life_ended = 1;
        }
        return commit(k, &ch, row, pos);
    }
    /* DESTROY */
    if (!open)
        return emit_anomaly(k, r, ORPHAN_DESTROY, row, code, view, root, NULL,
                            losses(k, s) > run->loss_base, 0, 0);
    if (open->rcu_row == NONE) {
        open->live_end_ts = ts;
        if (emit_anomaly(k, r, DESTROY_WITHOUT_RCU, row, code, view, root, open, 0, 0, 0))
            return -1;
    }
    if (root != open->root &&
        emit_anomaly(k, r, ROOT_MISMATCH, row, code, view, root, open, 0, 0, 0))
        return -1;
    open->destroy_row = row;
    open->destroy_ts = ts;
    open->loss_at_end = losses(k, s);
    open->life_ended = 1;
    unpin(k, &ch, open);
    int32_t slot = e->b;
    e->b = NONE;
    if (close_inst(k, s, slot, FREED)) return -1;
    return commit(k, &ch, row, pos);
}

static int finalize_event(K *k, int32_t sid, int64_t row, uint64_t mr) {
    Stream *s = &k->streams[sid];
    if (s->run == NONE || mr == 0) return 0;
    int32_t rid = root_of(k, sid, mr, 0);
    if (rid < 0) return 0; /* never a root in this run */
    Root *r = &k->roots[rid];
    if (r->live + r->pending == 0) return 0;
    Run *run = &k->runs[s->run];
    return emit_anomaly(k, s->run, ROOT_FINALIZED_WHILE_PINNED, row, FINALIZE, 0, mr, NULL,
                        losses(k, s) > run->loss_base, r->live, r->pending);
}

/* ------------------------------------------------------------------ input columns */

typedef struct {
    ArrowArrayStream *stream;
    ArrowArray chunk;
    int64_t i, n, offset;
    const uint8_t *valid;
    const char *values;
    int width;
} Reader;

static int reader_open(Reader *r, PyObject *capsule, const char *format) {
    memset(r, 0, sizeof *r);
    r->stream = PyCapsule_GetPointer(capsule, "arrow_array_stream");
    if (!r->stream) return -1;
    ArrowSchema schema;
    if (r->stream->get_schema(r->stream, &schema)) {
        PyErr_SetString(PyExc_ValueError, "walk: cannot read a column's schema");
        return -1;
    }
    int ok = strcmp(schema.format, format) == 0;
    if (schema.release) schema.release(&schema);
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "walk: a column is not of Arrow format %s", format);
        return -1;
    }
    r->width = format[0] == 'c' ? 1 : format[0] == 'i' ? 4 : 8;
    return 0;
}

/* The next non-empty chunk; 0 at the end of the column, -1 on error. */
static int reader_next(Reader *r) {
    for (;;) {
        if (r->chunk.release) r->chunk.release(&r->chunk);
        memset(&r->chunk, 0, sizeof r->chunk);
        if (r->stream->get_next(r->stream, &r->chunk)) {
            PyErr_SetString(PyExc_ValueError, "walk: cannot read a column's chunk");
            return -1;
        }
        if (!r->chunk.release) return 0;
        if (r->chunk.length == 0) continue;
        r->i = 0;
        r->n = r->chunk.length;
        r->offset = r->chunk.offset;
        r->valid = r->chunk.null_count ? r->chunk.buffers[0] : NULL;
        r->values = r->chunk.buffers[1];
        return 1;
    }
}

static void reader_close(Reader *r) {
    if (r->chunk.release) r->chunk.release(&r->chunk);
    r->chunk.release = NULL;
}

static inline int reader_valid(const Reader *r) {
    int64_t j = r->offset + r->i;
    return !r->valid || (r->valid[j >> 3] >> (j & 7)) & 1;
}

#define VALUE(r, type) (((const type *)(r).values)[(r).offset + (r).i])

/* A whole column of 8-byte values (no nulls) in one malloc'd array: *n values; -1 on error. */
static int read_column(PyObject *capsule, const char *format, void **out, int64_t *n) {
    Reader r;
    char *data = NULL;
    int64_t len = 0, cap = 0;
    *out = NULL;
    *n = 0;
    if (reader_open(&r, capsule, format)) return -1;
    for (;;) {
        int got = reader_next(&r);
        if (got < 0) goto fail;
        if (!got) break;
        if (len + r.n > cap) {
            cap = (len + r.n) * 2;
            char *p = realloc(data, (size_t)cap * 8);
            if (!p) {
                PyErr_NoMemory();
                goto fail;
            }
            data = p;
        }
        memcpy(data + len * 8, r.values + r.offset * 8, (size_t)r.n * 8);
        len += r.n;
        r.i = r.n;
    }
    reader_close(&r);
    *out = data;
    *n = len;
    return 0;
fail:
    reader_close(&r);
    free(data);
    return -1;
}

/* ------------------------------------------------------------------ walk() */

static void k_free(K *k) {
    Col *cols[] = {&k->i_id,      &k->i_run,     &k->i_view,    &k->i_gen,      &k->i_root,
                   &k->i_status,  &k->i_new,     &k->i_rcu,     &k->i_destroy,  &k->i_lost,
                   &k->i_unc,     &k->a_run,     &k->a_kind,    &k->a_row,      &k->a_code,
                   &k->a_view,    &k->a_root,    &k->a_gen,     &k->a_unc,      &k->a_live,
                   &k->a_pending, &k->a_next,    &k->s_rid,     &k->s_kind,     &k->s_start_row,
                   &k->s_end_row, &k->s_start_pos, &k->s_end_pos, &k->s_peak,   &k->st_rid,
                   &k->st_row,    &k->st_live,   &k->st_pending, &k->live_ns,   &k->grace_ns};
    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) free(cols[i]->data);
    free(k->streams);
    free(k->views.slots);
    free(k->rootmap.slots);
    free(k->pool);
    free(k->roots);
    free(k->runs);
}

/* A dict of columns (capsule pairs) from Cols; takes their buffers. */
static PyObject *table(const char **names, Col **cols, int n) {
    PyObject *d = PyDict_New();
    for (int i = 0; d && i < n; i++) {
        void *data = cols[i]->data ? cols[i]->data : malloc(1);
        cols[i]->data = NULL;
        PyObject *c = data ? arrow_export(cols[i]->format, cols[i]->n, &data) : PyErr_NoMemory();
        if (!c || PyDict_SetItemString(d, names[i], c)) {
            free(data);
            Py_XDECREF(c);
            Py_CLEAR(d);
            break;
        }
        Py_DECREF(c);
    }
    return d;
}

static PyObject *results(K *k) {
    static const char *inames[] = {"id",     "run", "view",    "generation", "root",
                                   "status", "new_row", "rcu_row", "destroy_row", "lost_row",
                                   "uncertain"};
    Col *icols[] = {&k->i_id,     &k->i_run, &k->i_view, &k->i_gen,     &k->i_root, &k->i_status,
                    &k->i_new,    &k->i_rcu, &k->i_destroy, &k->i_lost, &k->i_unc};
    static const char *anames[] = {"run",  "kind",       "row",       "code", "view",
                                   "root", "generation", "uncertain", "live", "pending"};
    Col *acols[] = {&k->a_run,  &k->a_kind, &k->a_row, &k->a_code, &k->a_view,
                    &k->a_root, &k->a_gen,  &k->a_unc, &k->a_live, &k->a_pending};
    static const char *snames[] = {"rid", "kind", "start_row", "end_row", "start_pos", "end_pos",
                                   "peak"};
    Col *scols[] = {&k->s_rid,       &k->s_kind,    &k->s_start_row, &k->s_end_row,
                    &k->s_start_pos, &k->s_end_pos, &k->s_peak};
    static const char *stnames[] = {"rid", "row", "live", "pending"};
    Col *stcols[] = {&k->st_rid, &k->st_row, &k->st_live, &k->st_pending};
    static const char *dnames[] = {"live_ns", "grace_ns"};
    Col *dcols[] = {&k->live_ns, &k->grace_ns};

    /* per root record, per run */
    static const char *rnames[] = {"run", "root", "instances", "leaked", "max_concurrent",
                                   "pinned_at_end", "first_row", "min_new_ts", "last_step_row"};
    Col rc[9];
    const char *rformats[] = {"i", "L", "l", "l", "l", "c", "l", "l", "l"};
    for (int i = 0; i < 9; i++) col_init(&rc[i], rformats[i]);
    static const char *unames[] = {"stream", "first_row", "last_fv_row", "flatview_events",
                                   "loss_points", "clock_steps_back"};
    Col uc[6];
    const char *uformats[] = {"i", "l", "l", "l", "l", "l"};
    for (int i = 0; i < 6; i++) col_init(&uc[i], uformats[i]);
    PyObject *out = NULL;
    for (int i = 0; i < 9; i++)
        if (col_reserve(&rc[i], k->n_roots + 1)) goto fail;
    for (int i = 0; i < 6; i++)
        if (col_reserve(&uc[i], k->n_runs + 1)) goto fail;
    for (int32_t rid = 0; rid < k->n_roots; rid++) {
        Root *r = &k->roots[rid];
        AT(rc[0], int32_t, rid) = r->run;
        AT(rc[1], uint64_t, rid) = r->root;
        AT(rc[2], int64_t, rid) = r->instances;
        AT(rc[3], int64_t, rid) = r->leaked;
        AT(rc[4], int64_t, rid) = r->max_concurrent;
        AT(rc[5], int8_t, rid) = (int8_t)(r->live + r->pending > 0);
        AT(rc[6], int64_t, rid) = r->first_row;
        AT(rc[7], int64_t, rid) = r->min_new_ts;
        AT(rc[8], int64_t, rid) = r->last_step_row;
    }
    for (int i = 0; i < 9; i++) rc[i].n = k->n_roots;
    for (int32_t i = 0; i < k->n_runs; i++) {
        Run *u = &k->runs[i];
        AT(uc[0], int32_t, i) = u->stream;
        AT(uc[1], int64_t, i) = u->first_row;
        AT(uc[2], int64_t, i) = u->last_fv_row;
        AT(uc[3], int64_t, i) = u->fv_events;
        AT(uc[4], int64_t, i) = u->loss_points;
        AT(uc[5], int64_t, i) = u->steps_back;
    }
    for (int i = 0; i < 6; i++) uc[i].n = k->n_runs;
    Col *rcp[9], *ucp[6];
    for (int i = 0; i < 9; i++) rcp[i] = &rc[i];
    for (int i = 0; i < 6; i++) ucp[i] = &uc[i];
    PyObject *tables[] = {
        table(inames, icols, 11), table(anames, acols, 10), table(snames, scols, 7),
        k->full ? table(stnames, stcols, 4) : (Py_INCREF(Py_None), Py_None),
        table(dnames, dcols, 2),  table(rnames, rcp, 9),    table(unames, ucp, 6),
    };
    int ok = 1;
    for (int i = 0; i < 7; i++) ok &= tables[i] != NULL;
    if (ok) {
        int64_t *sc = k->status_counts, *ec = k->event_counts;
        out = Py_BuildValue(
            "{s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:(LLLLLL),s:(LLL),s:L,s:L,s:L,s:L}", "instances",
            tables[0], "anomalies", tables[1], "spans", tables[2], "steps", tables[3],
            "durations", tables[4], "roots", tables[5], "runs", tables[6], "status_counts",
            (long long)sc[0], (long long)sc[1], (long long)sc[2], (long long)sc[3],
            (long long)sc[4], (long long)sc[5], "event_counts", (long long)ec[0],
            (long long)ec[1], (long long)ec[2], "uncertain_views", (long long)k->uncertain,
            "generation_0", (long long)k->gen0, "generation_1", (long long)k->gen1,
            "negative_durations", (long long)k->negative);
    } else {
        for (int i = 0; i < 7; i++) Py_XDECREF(tables[i]);
    }
fail:
    for (int i = 0; i < 9; i++) free(rc[i].data);
    for (int i = 0; i < 6; i++) free(uc[i].data);
    if (!out && !PyErr_Occurred()) PyErr_NoMemory();
    return out;
}

static PyObject *walk(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *kwlist[] = {"code",      "view",           "root",           "ts",
                             "stream",    "finalize_rows",  "finalize_mr",    "n_streams",
                             "null_stream", "destroy_traced", "release_at_rcu", "full",
                             "tables_only", NULL};
    PyObject *c_code, *c_view, *c_root, *c_ts, *c_stream, *c_fin_rows, *c_fin_mr;
    int n_streams, null_stream, destroy_traced, release_at_rcu, full, tables_only = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOOiippp|p:walk", kwlist, &c_code,
                                     &c_view, &c_root, &c_ts, &c_stream, &c_fin_rows, &c_fin_mr,
                                     &n_streams, &null_stream, &destroy_traced, &release_at_rcu,
                                     &full, &tables_only))
        return NULL;
    K k;
    memset(&k, 0, sizeof k);
    k.destroy_traced = destroy_traced;
    k.release_at_rcu = release_at_rcu;
    k.full = full;
    k.tables_only = full && tables_only;
    k.null_stream = null_stream;
    k.free_slot = NONE;
    Col *fmt_i[] = {&k.i_run, &k.i_gen, &k.a_run, &k.a_gen, &k.s_rid, &k.st_rid};
    Col *fmt_c[] = {&k.i_status, &k.i_unc, &k.a_kind, &k.a_code, &k.a_unc, &k.s_kind};
    Col *fmt_L[] = {&k.i_view, &k.i_root, &k.a_view, &k.a_root};
    Col *fmt_l[] = {&k.i_id,     &k.i_new,        &k.i_rcu,      &k.i_destroy,   &k.i_lost,
                    &k.a_row,    &k.a_live,       &k.a_pending,  &k.a_next,      &k.s_start_row,
                    &k.s_end_row, &k.s_start_pos, &k.s_end_pos,  &k.s_peak,      &k.st_row,
                    &k.st_live,  &k.st_pending,   &k.live_ns,    &k.grace_ns};
    for (size_t i = 0; i < sizeof fmt_i / sizeof *fmt_i; i++) col_init(fmt_i[i], "i");
    for (size_t i = 0; i < sizeof fmt_c / sizeof *fmt_c; i++) col_init(fmt_c[i], "c");
    for (size_t i = 0; i < sizeof fmt_L / sizeof *fmt_L; i++) col_init(fmt_L[i], "L");
    for (size_t i = 0; i < sizeof fmt_l / sizeof *fmt_l; i++) col_init(fmt_l[i], "l");
    PyObject *out = NULL;
    Reader rd[5];
    memset(rd, 0, sizeof rd);
    int has_stream = c_stream != Py_None;
    int64_t *frows = NULL, n_fin = 0, n_fin_mr = 0, f = 0;
    uint64_t *fmr = NULL;
    if (read_column(c_fin_rows, "l", (void **)&frows, &n_fin) ||
        read_column(c_fin_mr, "L", (void **)&fmr, &n_fin_mr))
        goto done;
    k.n_streams = n_streams > 0 ? n_streams : 1;
    k.streams = calloc((size_t)k.n_streams, sizeof *k.streams);
    if (!k.streams || n_fin_mr != n_fin) {
        if (k.streams) PyErr_SetString(PyExc_ValueError, "walk: finalize arrays differ");
        else PyErr_NoMemory();
        goto done;
    }
    for (int32_t i = 0; i < k.n_streams; i++) k.streams[i].run = k.streams[i].open = NONE;
    if (reader_open(&rd[0], c_code, "c") || reader_open(&rd[1], c_view, "L") ||
        reader_open(&rd[2], c_root, "L") || reader_open(&rd[3], c_ts, "l") ||
        (has_stream && reader_open(&rd[4], c_stream, "i")))
        goto done;
    int n_readers = has_stream ? 5 : 4;
    for (int64_t row = 0;; row++) {
        int more = 1;
        for (int i = 0; i < n_readers; i++) {
            if (rd[i].i == rd[i].n) {
                int got = reader_next(&rd[i]);
                if (got < 0) goto done;
                if (i == 0) more = got;
                else if (got != more) {
                    PyErr_SetString(PyExc_ValueError, "walk: columns of different lengths");
                    goto done;
                }
            }
            if (!more) break;
        }
        if (!more) break;
        /* The hash slots of a row a little ahead: the tables outgrow the caches, and the
         * rows' pointers are known in advance. */
        if (rd[1].i + PREFETCH_AHEAD < rd[1].n && rd[2].i + PREFETCH_AHEAD < rd[2].n &&
            (!has_stream || rd[4].i + PREFETCH_AHEAD < rd[4].n)) {
            int64_t j1 = rd[1].offset + rd[1].i + PREFETCH_AHEAD;
            int64_t j2 = rd[2].offset + rd[2].i + PREFETCH_AHEAD;
            int32_t ahead = has_stream
                                ? ((const int32_t *)rd[4].values)[rd[4].offset + rd[4].i + PREFETCH_AHEAD]
                                : 0;
            prefetch_slot(&k.views, ((const uint64_t *)rd[1].values)[j1], ahead);
            prefetch_slot(&k.rootmap, ((const uint64_t *)rd[2].values)[j2], ahead);
            int64_t j3 = rd[1].offset + rd[1].i + PREFETCH_AHEAD / 2;
            int32_t near = has_stream ? ((const int32_t *)rd[4].values)[rd[4].offset + rd[4].i +
                                                                       PREFETCH_AHEAD / 2]
                                      : 0;
            prefetch_instance(&k, ((const uint64_t *)rd[1].values)[j3], near);
        }
        if (reader_valid(&rd[0])) {
            int code = VALUE(rd[0], int8_t);
            int32_t sid = has_stream ? VALUE(rd[4], int32_t) : 0;
            if (sid < 0 || sid >= k.n_streams) {
                PyErr_SetString(PyExc_ValueError, "walk: stream id out of range");
                goto done;
            }
            int rc = 0;
            if (code <= DESTROY) {
                int64_t ts = reader_valid(&rd[3]) ? VALUE(rd[3], int64_t) : NULL_TS;
                rc = flatview_event(&k, sid, row, code, VALUE(rd[1], uint64_t),
                                    VALUE(rd[2], uint64_t), ts);
            } else if (code == DROP) {
                /* A hole without a process may have lost any process's events. */
                if (sid == k.null_stream) k.global_losses++;
                else k.streams[sid].losses++;
            } else if (code == FINALIZE) {
                while (f < n_fin && frows[f] < row) f++;
                if (f < n_fin && frows[f] == row) rc = finalize_event(&k, sid, row, fmr[f]);
            }
            if (rc) {
                if (!PyErr_Occurred()) PyErr_NoMemory();
                goto done;
            }
        }
        for (int i = 0; i < n_readers; i++) rd[i].i++;
    }
    for (int32_t i = 0; i < k.n_streams; i++)
        if (k.streams[i].run != NONE && finish_run(&k, &k.streams[i])) {
            PyErr_NoMemory();
            goto done;
        }
    out = results(&k);
done:
    for (int i = 0; i < 5; i++) reader_close(&rd[i]);
    free(frows);
    free(fmr);
    k_free(&k);
    return out;
}

static PyMethodDef methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_VARARGS | METH_KEYWORDS,
     "walk(code, view, root, ts, stream, finalize_rows, finalize_mr, n_streams, null_stream, "
     "destroy_traced, release_at_rcu, full, tables_only=False) -> dict: the lifetime model's "
     "pass over the rows (see qtrace/kernel.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel", "The lifetime model's sequential core.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernel(void) {
#ifdef __GLIBC__
    /* The columns handed to polars are large malloc'd blocks that live for a while. glibc
     * raises its mmap threshold as such blocks are freed, and then serves the next ones
     * from its heap, whose freed memory it keeps: hundreds of MiB of a finished pass stayed
     * in the process. A fixed threshold keeps large blocks mapped, returned when freed. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
    return PyModule_Create(&module);
}
