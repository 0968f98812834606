/* Memory: the recycling allocator, tensor headers and their handles, reference counts, and scopes.
 *
 * Why it is built this way:
 *  - Small models are dominated by per-op overhead, so a steady-state step must not call malloc. Data buffers
 *    come from per-thread free lists by size class (4 classes per power of two, so at most 25% slack), and
 *    tensor headers from per-thread free lists fed by slabs.
 *  - Handles must detect use after free. Headers are never given back to the system, so a stale handle can
 *    always be read safely, and the handle's low bits carry a generation that no longer matches once the
 *    header's user-visible life has ended.
 *  - Freeing walks graphs iteratively (a worklist threaded through the headers), so releasing a chain of a
 *    million ops does not recurse.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define NBI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NBI_ASAN 1
#endif
#endif
#ifdef NBI_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

_Static_assert(sizeof(nbi_tensor) <= NBI_HEADER_ALIGN, "tensor header must fit its aligned block");

/* ------------------------------------------------------------------------------------------------
 * Global counters
 * ---------------------------------------------------------------------------------------------- */
static atomic_int_fast64_t stat_live_tensors, stat_live_bytes, stat_peak_bytes, stat_cached_bytes,
    stat_system_allocs;

static void *system_alloc(size_t align, size_t nbytes)
{
    atomic_fetch_add_explicit(&stat_system_allocs, 1, memory_order_relaxed);
    return aligned_alloc(align, nbytes);
}

void nbi_count_system_alloc(void) { atomic_fetch_add_explicit(&stat_system_allocs, 1, memory_order_relaxed); }

nb_memory_stats nb_memory_stats_get(void)
{
    nb_memory_stats s;
    s.live_tensors = atomic_load(&stat_live_tensors);
    s.live_bytes = atomic_load(&stat_live_bytes);
    s.peak_live_bytes = atomic_load(&stat_peak_bytes);
    s.cached_bytes = atomic_load(&stat_cached_bytes);
    s.system_allocs = atomic_load(&stat_system_allocs);
    return s;
}

void nb_reset_peak_memory(void) { atomic_store(&stat_peak_bytes, atomic_load(&stat_live_bytes)); }

/* ------------------------------------------------------------------------------------------------
 * Per-thread state
 * ---------------------------------------------------------------------------------------------- */
#define NBI_CLASSES 160 /* 4 per power of two from 64 bytes up to 2^45 */

typedef struct nbi_scope {
    struct nbi_scope *parent;
    nbi_tensor *head;
    bool internal;
} nbi_scope;

typedef struct free_block {
    struct free_block *next;
} free_block;

typedef struct thread_local_state {
    nbi_thread_state pub;
    bool registered;
    free_block *cache[NBI_CLASSES];
    int64_t cached_bytes;
    nbi_tensor *free_headers; /* linked through scope_next */
    int64_t n_free_headers;
    nbi_scope *scope;
    int scope_depth; /* user-visible scopes only */
} thread_local_state;

static _Thread_local thread_local_state tls;
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *arg);
static void make_thread_key(void) { pthread_key_create(&thread_key, thread_exit); }

static thread_local_state *state(void)
{
    if (!tls.registered) {
        tls.registered = true;
        pthread_once(&thread_key_once, make_thread_key);
        pthread_setspecific(thread_key, &tls);
    }
    return &tls;
}

nbi_thread_state *nbi_thread(void) { return &state()->pub; }

/* ------------------------------------------------------------------------------------------------
 * Size-class allocator
 * ---------------------------------------------------------------------------------------------- */
/* Classes: 64, 128, 192, 256 bytes, then four per power of two (5/8, 6/8, 7/8 and 8/8 of the next one),
 * so a buffer wastes at most 20% and every class size is a multiple of 64. */
static int size_class(size_t n, size_t *class_bytes)
{
    if (n <= 256) {
        size_t q = n ? (n + 63) / 64 : 1;
        *class_bytes = q * 64;
        return (int)q - 1;
    }
    int e = 63 - __builtin_clzll((unsigned long long)(n - 1)); /* 2^e < n <= 2^(e+1), e >= 8 */
    size_t step = (size_t)1 << (e - 2);
    size_t q = (n + step - 1) / step; /* 5..8 */
    *class_bytes = q * step;
    int cls = 4 + (e - 8) * 4 + (int)(q - 5);
    return cls < NBI_CLASSES ? cls : -1;
}

void *nbi_alloc(size_t nbytes, const char *fn)
{
    size_t cb;
    int cls = size_class(nbytes ? nbytes : 1, &cb);
    thread_local_state *st = state();
    if (cls >= 0 && st->cache[cls]) {
        free_block *b = st->cache[cls];
        UNPOISON(b, cb);
        st->cache[cls] = b->next;
        st->cached_bytes -= (int64_t)cb;
        atomic_fetch_sub_explicit(&stat_cached_bytes, (int64_t)cb, memory_order_relaxed);
        return b;
    }
    void *p = system_alloc(64, cls >= 0 ? cb : (nbytes + 63) / 64 * 64);
    if (!p) nbi_error(NB_ERR_NOMEM, "%s: out of memory allocating %zu bytes", fn, nbytes);
    return p;
}

void nbi_free(void *p, size_t nbytes)
{
    if (!p) return;
    size_t cb;
    int cls = size_class(nbytes ? nbytes : 1, &cb);
    if (cls < 0) {
        free(p);
        return;
    }
    thread_local_state *st = state();
    /* A thread that frees what another one allocated (a loader thread handing batches to a training thread)
     * would cache blocks it never reuses, without end: past twice the peak of live bytes (plus room for a
     * step's temporaries), blocks go back to the system. */
    int64_t limit = 2 * atomic_load_explicit(&stat_peak_bytes, memory_order_relaxed) + ((int64_t)64 << 20);
    if (st->cached_bytes + (int64_t)cb > limit) {
        free(p);
        return;
    }
    free_block *b = p;
    b->next = st->cache[cls];
    st->cache[cls] = b;
    st->cached_bytes += (int64_t)cb;
    atomic_fetch_add_explicit(&stat_cached_bytes, (int64_t)cb, memory_order_relaxed);
    POISON((char *)b + sizeof *b, cb - sizeof *b);
}

void nb_release_cached_memory(void)
{
    thread_local_state *st = state();
    for (int c = 0; c < NBI_CLASSES; c++) {
        while (st->cache[c]) {
            free_block *b = st->cache[c];
            UNPOISON(b, sizeof *b);
            st->cache[c] = b->next;
            free(b);
        }
    }
    atomic_fetch_sub(&stat_cached_bytes, st->cached_bytes);
    st->cached_bytes = 0;
}

/* ------------------------------------------------------------------------------------------------
 * Storage
 * ---------------------------------------------------------------------------------------------- */
nbi_storage *nbi_storage_new(size_t nbytes, const char *fn)
{
    /* The storage record sits in the first 64 bytes of its own block: one allocation per buffer. */
    char *block = nbi_alloc(64 + nbytes, fn);
    if (!block) return NULL;
    nbi_storage *s = (nbi_storage *)block;
    atomic_init(&s->refs, 1);
    atomic_init(&s->version, 0);
    s->nbytes = nbytes;
    s->data = block + 64;
    int64_t live = atomic_fetch_add_explicit(&stat_live_bytes, (int64_t)nbytes, memory_order_relaxed) + nbytes;
    int64_t peak = atomic_load_explicit(&stat_peak_bytes, memory_order_relaxed);
    while (live > peak && !atomic_compare_exchange_weak(&stat_peak_bytes, &peak, live)) {
    }
    return s;
}

void nbi_storage_retain(nbi_storage *s) { atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); }

void nbi_storage_release(nbi_storage *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    atomic_fetch_sub_explicit(&stat_live_bytes, (int64_t)s->nbytes, memory_order_relaxed);
    nbi_free(s, 64 + s->nbytes);
}

/* ------------------------------------------------------------------------------------------------
 * Tensor headers
 * ---------------------------------------------------------------------------------------------- */
#define SLAB_HEADERS 64
#define GLOBAL_BATCH 32

static pthread_mutex_t global_headers_lock = PTHREAD_MUTEX_INITIALIZER;
static nbi_tensor *global_free_headers;

/* Slabs are referenced from here so that they are never reported as leaks: headers live for the process. */
static void **slabs;
static size_t n_slabs, cap_slabs;

static bool refill_headers(thread_local_state *st)
{
    pthread_mutex_lock(&global_headers_lock);
    for (int i = 0; i < GLOBAL_BATCH && global_free_headers; i++) {
        nbi_tensor *h = global_free_headers;
        global_free_headers = h->scope_next;
        h->scope_next = st->free_headers;
        st->free_headers = h;
        st->n_free_headers++;
    }
    bool ok = st->free_headers != NULL;
    if (!ok && n_slabs == cap_slabs) {
        size_t cap = cap_slabs ? 2 * cap_slabs : 64;
        void **grown = realloc(slabs, cap * sizeof *slabs);
        if (grown) {
            nbi_count_system_alloc();
            slabs = grown;
            cap_slabs = cap;
        }
    }
    if (!ok && n_slabs < cap_slabs) {
        char *slab = system_alloc(NBI_HEADER_ALIGN, (size_t)SLAB_HEADERS * NBI_HEADER_ALIGN);
        if (slab) {
            slabs[n_slabs++] = slab;
            memset(slab, 0, (size_t)SLAB_HEADERS * NBI_HEADER_ALIGN);
            for (int i = SLAB_HEADERS - 1; i >= 0; i--) {
                nbi_tensor *h = (nbi_tensor *)(slab + (size_t)i * NBI_HEADER_ALIGN);
                h->magic = NBI_MAGIC;
                h->state = NBI_FREE;
                h->scope_next = st->free_headers;
                st->free_headers = h;
                st->n_free_headers++;
            }
            ok = true;
        }
    }
    pthread_mutex_unlock(&global_headers_lock);
    return ok;
}

/* The fields a stale handle may read (magic, gen, state) stay unpoisoned; the rest is poisoned while free. */
#define HEADER_KEEP offsetof(nbi_tensor, refs)

static nbi_tensor *header_alloc(const char *fn)
{
    thread_local_state *st = state();
    if (!st->free_headers && !refill_headers(st)) return nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    nbi_tensor *h = st->free_headers;
    UNPOISON(h, sizeof *h);
    st->free_headers = h->scope_next;
    st->n_free_headers--;
    uint32_t gen = h->gen;
    memset(h, 0, sizeof *h);
    h->magic = NBI_MAGIC;
    h->gen = gen;
    h->state = NBI_LIVE;
    atomic_init(&h->refs, 1);
    h->inputs = h->inline_inputs;
    h->input_versions = h->inline_versions;
    atomic_fetch_add_explicit(&stat_live_tensors, 1, memory_order_relaxed);
    return h;
}

/* Free headers a thread keeps; beyond it, half go to the global list, which threads that allocate refill from
 * (the headers a consumer thread frees get back to the producer thread). */
#define THREAD_HEADERS_MAX 8192

static void header_free(nbi_tensor *h)
{
    thread_local_state *st = state();
    h->state = NBI_FREE;
    h->scope_next = st->free_headers;
    st->free_headers = h;
    st->n_free_headers++;
    atomic_fetch_sub_explicit(&stat_live_tensors, 1, memory_order_relaxed);
    POISON((char *)h + HEADER_KEEP, offsetof(nbi_tensor, scope_next) - HEADER_KEEP);
    if (st->n_free_headers > THREAD_HEADERS_MAX) {
        pthread_mutex_lock(&global_headers_lock);
        while (st->n_free_headers > THREAD_HEADERS_MAX / 2) {
            nbi_tensor *x = st->free_headers;
            st->free_headers = x->scope_next;
            st->n_free_headers--;
            x->scope_next = global_free_headers;
            global_free_headers = x;
        }
        pthread_mutex_unlock(&global_headers_lock);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Handles
 * ---------------------------------------------------------------------------------------------- */
nbi_tensor *nbi_peek(const nb_tensor *h)
{
    if (!h) return NULL;
    nbi_tensor *t = (nbi_tensor *)((uintptr_t)h & ~(uintptr_t)NBI_GEN_MASK);
    if (t->magic != NBI_MAGIC || t->state == NBI_FREE || (t->gen & NBI_GEN_MASK) != ((uintptr_t)h & NBI_GEN_MASK))
        return NULL;
    return t;
}

nbi_tensor *nbi_resolve(const nb_tensor *h, const char *fn, const char *what)
{
    if (!h) {
        nbi_error_null(fn, what);
        return NULL;
    }
    nbi_tensor *t = nbi_peek(h);
    if (!t) {
        nbi_tensor *raw = (nbi_tensor *)((uintptr_t)h & ~(uintptr_t)NBI_GEN_MASK);
        if (((uintptr_t)h & NBI_GEN_MASK) >= NBI_HEADER_ALIGN || raw->magic != NBI_MAGIC)
            return nbi_error(NB_ERR_FREED, "%s: %s is not a nabla tensor handle", fn, what);
        return nbi_error(NB_ERR_FREED,
                         "%s: %s was freed (its scope ended or nb_free was called) and must not be used", fn,
                         what);
    }
    return t;
}

bool nb_is_valid(const nb_tensor *t) { return nbi_peek(t) != NULL; }

/* ------------------------------------------------------------------------------------------------
 * Scopes
 * ---------------------------------------------------------------------------------------------- */
static void scope_link(nbi_scope *s, nbi_tensor *t)
{
    t->owner = NBI_OWNER_SCOPE;
    t->scope = s;
    t->scope_prev = NULL;
    t->scope_next = s->head;
    if (s->head) s->head->scope_prev = t;
    s->head = t;
}

static void scope_unlink(nbi_tensor *t)
{
    nbi_scope *s = t->scope;
    if (t->scope_prev) t->scope_prev->scope_next = t->scope_next;
    else s->head = t->scope_next;
    if (t->scope_next) t->scope_next->scope_prev = t->scope_prev;
    t->scope = NULL;
    t->scope_prev = t->scope_next = NULL;
    t->owner = NBI_OWNER_USER;
}

static nb_status scope_push(bool internal)
{
    thread_local_state *st = state();
    nbi_scope *s = nbi_alloc(sizeof *s, "nb_scope_begin");
    if (!s) return NB_ERR_NOMEM;
    s->parent = st->scope;
    s->head = NULL;
    s->internal = internal;
    st->scope = s;
    if (!internal) st->scope_depth++;
    return NB_OK;
}

static void scope_pop(void)
{
    thread_local_state *st = state();
    nbi_scope *s = st->scope;
    while (s->head) {
        nbi_tensor *t = s->head;
        scope_unlink(t);
        nbi_kill(t);
    }
    st->scope = s->parent;
    if (!s->internal) st->scope_depth--;
    nbi_free(s, sizeof *s);
}

nb_status nb_scope_begin(void) { return scope_push(false); }

nb_status nb_scope_end(void)
{
    thread_local_state *st = state();
    if (!st->scope) return nbi_fail(NB_ERR_STATE, "nb_scope_end: no scope is open on this thread");
    if (st->scope->internal)
        return nbi_fail(NB_ERR_STATE, "nb_scope_end: called inside a callback while nabla's own scope is open");
    scope_pop();
    return NB_OK;
}

int nb_scope_depth(void) { return state()->scope_depth; }

nb_status nbi_scope_begin(void) { return scope_push(true); }
void nbi_scope_end(void) { scope_pop(); }

bool nbi_in_innermost_scope(const nbi_tensor *t)
{
    return t->owner == NBI_OWNER_SCOPE && t->scope == state()->scope;
}

void nbi_keep(nbi_tensor *t)
{
    if (t->owner != NBI_OWNER_SCOPE) return;
    nbi_scope *parent = t->scope->parent;
    scope_unlink(t);
    if (parent) scope_link(parent, t);
}

nb_tensor *nb_keep(nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_keep", "tensor");
    if (!t) return NULL;
    if (t->owner == NBI_OWNER_TENSOR)
        return nbi_error(NB_ERR_STATE, "nb_keep: tensor is a gradient owned by its tensor; copy it with nb_clone");
    nbi_keep(t);
    return h;
}

nb_status nb_free(nb_tensor *h)
{
    if (!h) return NB_OK;
    nbi_tensor *t = nbi_resolve(h, "nb_free", "tensor");
    if (!t) return nb_last_status();
    if (t->owner == NBI_OWNER_TENSOR)
        return nbi_fail(NB_ERR_STATE, "nb_free: tensor is a gradient owned by its tensor; use nb_zero_grad");
    nbi_kill(t);
    return NB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Creation and reference counting
 * ---------------------------------------------------------------------------------------------- */
int64_t nbi_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

void nbi_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i] > 1 ? shape[i] : 1;
    }
}

nbi_tensor *nbi_tensor_new_view(nbi_storage *storage, nb_dtype dtype, int ndim, const int64_t *shape,
                                const int64_t *stride, int64_t offset, const char *fn)
{
    if (!nbi_dtype_valid(dtype)) return nbi_error(NB_ERR_DTYPE, "%s: invalid dtype %d", fn, (int)dtype);
    if (ndim < 0 || ndim > NB_MAX_DIMS)
        return nbi_error(NB_ERR_SHAPE, "%s: %d dims requested; nabla supports 0 to %d", fn, ndim, NB_MAX_DIMS);
    if (ndim > 0 && !shape) return nbi_error(NB_ERR_NULL, "%s: shape is NULL for %d dims", fn, ndim);
    /* The limit applies to the product of the nonzero sizes: strides are computed from them even when another
     * size is 0 and the tensor is empty. */
    int64_t numel = 1, nonzero = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char b[NBI_SHAPE_STR];
            return nbi_error(NB_ERR_SHAPE, "%s: negative size in shape %s", fn, nbi_shape_fmt(b, ndim, shape));
        }
        if (shape[i] && nonzero > INT64_MAX / 16 / shape[i]) {
            char b[NBI_SHAPE_STR];
            return nbi_error(NB_ERR_SHAPE, "%s: shape %s is too large", fn, nbi_shape_fmt(b, ndim, shape));
        }
        if (shape[i]) nonzero *= shape[i];
        numel *= shape[i];
    }
    nbi_tensor *t = header_alloc(fn);
    if (!t) return NULL;
    t->dtype = dtype;
    t->ndim = ndim;
    t->numel = numel;
    t->offset = offset;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    if (stride) memcpy(t->stride, stride, (size_t)ndim * sizeof *stride);
    else nbi_contiguous_strides(ndim, shape, t->stride);
    if (storage) {
        nbi_storage_retain(storage);
        t->storage = storage;
    }
    thread_local_state *st = state();
    if (st->scope) scope_link(st->scope, t);
    return t;
}

nbi_tensor *nbi_tensor_new(nb_dtype dtype, int ndim, const int64_t *shape, const char *fn)
{
    nbi_tensor *t = nbi_tensor_new_view(NULL, dtype, ndim, shape, NULL, 0, fn);
    if (!t) return NULL;
    t->storage = nbi_storage_new((size_t)t->numel * nb_dtype_size(dtype), fn);
    if (!t->storage) {
        nbi_kill(t);
        return NULL;
    }
    return t;
}

nbi_tensor *nbi_tensor_new_like(const nbi_tensor *t, nb_dtype dtype, const char *fn)
{
    return nbi_tensor_new(dtype, t->ndim, t->shape, fn);
}

nbi_tensor *nbi_tensor_zeros_like(const nbi_tensor *t, nb_dtype dtype, const char *fn)
{
    nbi_tensor *z = nbi_tensor_new(dtype, t->ndim, t->shape, fn);
    if (z) memset(z->storage->data, 0, z->storage->nbytes);
    return z;
}

/* The user's handle dies; the owner's reference is dropped by the caller. */
static void end_handle(nbi_tensor *t)
{
    if (t->owner == NBI_OWNER_SCOPE) scope_unlink(t);
    t->gen++;
    t->owner = NBI_OWNER_USER;
    t->state = NBI_ZOMBIE;
}

void nbi_retain(nbi_tensor *t) { atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed); }

/* Drops one reference; frees everything that reaches zero, iteratively. */
void nbi_release(nbi_tensor *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
    nbi_tensor *work = t;
    t->scope_next = NULL;
    while (work) {
        nbi_tensor *x = work;
        work = x->scope_next;
        nbi_tensor *drop[NBI_INLINE_INPUTS + 3];
        int n_drop = 0;
        for (int i = 0; i < x->n_inputs; i++) {
            nbi_tensor *in = x->inputs[i];
            if (atomic_fetch_sub_explicit(&in->refs, 1, memory_order_acq_rel) == 1) {
                in->scope_next = work;
                work = in;
            }
        }
        if (x->inputs != x->inline_inputs) {
            nbi_free(x->inputs, (size_t)x->n_inputs * (sizeof *x->inputs + sizeof *x->input_versions));
        }
        if (x->ctx) nbi_free(x->ctx, x->ctx_size);
        if (x->pending_grad) drop[n_drop++] = x->pending_grad;
        if (x->grad) {
            end_handle(x->grad);
            drop[n_drop++] = x->grad;
        }
        for (int i = 0; i < n_drop; i++) {
            if (atomic_fetch_sub_explicit(&drop[i]->refs, 1, memory_order_acq_rel) == 1) {
                drop[i]->scope_next = work;
                work = drop[i];
            }
        }
        nbi_storage_release(x->storage);
        x->gen++;
        header_free(x);
    }
}

void nbi_kill(nbi_tensor *t)
{
    /* The gradient goes with the handle, not with the last reference: a gradient recorded with NB_CREATE_GRAPH
     * holds a graph that refers back to its own tensor, a cycle that reference counting would never free, and
     * once the handle is gone nobody can read it anyway. */
    nbi_tensor *g = t->grad;
    t->grad = NULL;
    if (g) nbi_kill(g);
    end_handle(t);
    nbi_release(t);
}

void nbi_make_owned_by_tensor(nbi_tensor *t)
{
    if (t->owner == NBI_OWNER_SCOPE) scope_unlink(t);
    t->owner = NBI_OWNER_TENSOR;
}

/* ------------------------------------------------------------------------------------------------
 * Thread exit: give cached buffers back and hand free headers to the global list.
 * ---------------------------------------------------------------------------------------------- */
static void thread_exit(void *arg)
{
    thread_local_state *st = arg;
    while (st->scope) scope_pop();
    nb_release_cached_memory();
    if (st->free_headers) {
        pthread_mutex_lock(&global_headers_lock);
        while (st->free_headers) {
            nbi_tensor *h = st->free_headers;
            st->free_headers = h->scope_next;
            h->scope_next = global_free_headers;
            global_free_headers = h;
        }
        pthread_mutex_unlock(&global_headers_lock);
    }
}
