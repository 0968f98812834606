/* Internal interface shared by nabla's source files. Not installed. Internal symbols use the nbi_ prefix. */
#ifndef NABLA_TENSOR_INTERNAL_H
#define NABLA_TENSOR_INTERNAL_H

#include "nb_tensor.h"

#include <stdarg.h>
#include <stdatomic.h>

/* ------------------------------------------------------------------------------------------------
 * Errors (tensor/error.c)
 * ---------------------------------------------------------------------------------------------- */
/* Records an error (printf-style message; by convention it starts with the public function's name) and calls
 * the user's handler. Returns NULL so that `return nbi_error(...)` works in functions returning pointers. */
void *nbi_error(nb_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, returning the status, for functions returning nb_status. */
nb_status nbi_fail(nb_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For a NULL tensor argument: records "<fn>: <what> is NULL" only if no error is pending, so the first message
 * of a failed expression survives. (A NULL array argument is not a propagated failure: use nbi_error.) */
void nbi_error_null(const char *fn, const char *what);
/* Number of errors recorded on this thread so far (to tell whether a callee failed). */
uint64_t nbi_error_count(void);
/* "(2, 3)" into buf (at least NBI_SHAPE_STR bytes). */
#define NBI_SHAPE_STR 128
char *nbi_shape_fmt(char *buf, int ndim, const int64_t *shape);

/* ------------------------------------------------------------------------------------------------
 * Storage: a reference-counted buffer shared by views.
 * ---------------------------------------------------------------------------------------------- */
typedef struct nbi_storage {
    atomic_int_fast32_t refs;
    atomic_uint_fast32_t version; /* bumped by every in-place write; autograd checks it */
    size_t nbytes;
    void *data;
} nbi_storage;

/* ------------------------------------------------------------------------------------------------
 * The tensor header behind a handle.
 * ---------------------------------------------------------------------------------------------- */
struct nbi_op;
struct nbi_scope;

enum nbi_state { NBI_FREE = 0, NBI_LIVE = 1, NBI_ZOMBIE = 2 /* handle dead, still referenced internally */ };
enum nbi_owner { NBI_OWNER_USER = 0, NBI_OWNER_SCOPE = 1, NBI_OWNER_TENSOR = 2 /* a leaf's grad */ };

#define NBI_INLINE_INPUTS 3

typedef struct nbi_tensor nbi_tensor;
struct nbi_tensor {
    uint32_t magic;
    uint32_t gen; /* generation: bumped when the user's handle dies; the handle carries its low bits */
    uint8_t state, owner;
    bool requires_grad;
    bool retains_grad;
    atomic_int_fast32_t refs; /* one for the owner (user/scope/tensor) plus one per internal reference */

    nb_dtype dtype;
    int ndim;
    int64_t numel;
    int64_t offset; /* in elements, into storage */
    int64_t shape[NB_MAX_DIMS];
    int64_t stride[NB_MAX_DIMS]; /* in elements */
    nbi_storage *storage;

    /* scope membership (owner == NBI_OWNER_SCOPE) */
    struct nbi_scope *scope;
    nbi_tensor *scope_prev, *scope_next;

    /* autograd record: the op that produced this tensor and its inputs (NULL op for leaves) */
    const struct nbi_op *op;
    int n_inputs;
    nbi_tensor **inputs;         /* points at inline_inputs or at an nbi_alloc'ed array */
    uint32_t *input_versions;    /* storage versions of the inputs when recorded */
    uint32_t own_version;        /* storage version of this result when recorded (backward reads it, or reads
                                  * values derived from what it held then) */
    nbi_tensor *inline_inputs[NBI_INLINE_INPUTS];
    uint32_t inline_versions[NBI_INLINE_INPUTS];
    void *ctx;                   /* op-specific parameters (nbi_alloc'ed), may be NULL */
    uint32_t ctx_size;
    bool graph_released;         /* backward ran without NB_RETAIN_GRAPH: inputs were dropped */
    bool leads_to_target;        /* nb_grad_of: a requested input lies below this node (set for each pass) */

    nbi_tensor *grad;            /* accumulated gradient (leaves, or retained) */
    nbi_tensor *pending_grad;    /* gradient being summed during one backward */
    uint64_t visit_epoch;        /* marks nodes visited by the current backward's sort */
    uint64_t anomaly_seq;        /* with anomaly detection on: this op's number on its thread (1, 2, ...) */
    char label[32];              /* nb_set_label's name (NB_LABEL_MAX + 1 bytes), "" for none */
};

#define NBI_MAGIC 0x4e41424cu /* "NABL" */

/* Headers are allocated on NBI_HEADER_ALIGN boundaries so that the low bits of a handle can carry the
 * generation: handle = header address | (gen & NBI_GEN_MASK). */
#define NBI_HEADER_ALIGN 512u
#define NBI_GEN_MASK (NBI_HEADER_ALIGN - 1u)

static inline nb_tensor *nbi_handle(const nbi_tensor *t)
{
    return t ? (nb_tensor *)((uintptr_t)t | (t->gen & NBI_GEN_MASK)) : NULL;
}
/* Untags and validates a handle. NULL input: records "<fn>: <what> is NULL" unless an error is pending.
 * Stale handle: records NB_ERR_FREED. Returns NULL on any failure. */
nbi_tensor *nbi_resolve(const nb_tensor *h, const char *fn, const char *what);
/* Same without recording anything. */
nbi_tensor *nbi_peek(const nb_tensor *h);

/* ------------------------------------------------------------------------------------------------
 * Allocation (tensor/memory.c)
 * ---------------------------------------------------------------------------------------------- */
/* Size-class recycling allocator for data buffers and small internal arrays (64-byte aligned). Never
 * returns memory to the system except via nb_release_cached_memory(). nbi_alloc records NB_ERR_NOMEM
 * (naming fn) on failure. */
void *nbi_alloc(size_t nbytes, const char *fn);
void nbi_free(void *p, size_t nbytes);
/* Counts a system allocation made outside nbi_alloc (e.g. file buffers) in nb_memory_stats. */
void nbi_count_system_alloc(void);

/* New storage of nbytes (uninitialized), refs = 1. */
nbi_storage *nbi_storage_new(size_t nbytes, const char *fn);
void nbi_storage_retain(nbi_storage *s);
void nbi_storage_release(nbi_storage *s);
static inline void nbi_storage_bump_version(nbi_storage *s)
{
    atomic_fetch_add_explicit(&s->version, 1, memory_order_relaxed);
}

/* A new header, registered with the current scope (or owned by the caller when none is open).
 * storage: retained by the header (pass NULL to leave it unset). shape/stride copied; stride NULL means
 * row-major contiguous. Returns NULL (with an error naming fn) on bad shapes or out of memory. */
nbi_tensor *nbi_tensor_new_view(nbi_storage *storage, nb_dtype dtype, int ndim, const int64_t *shape,
                                const int64_t *stride, int64_t offset, const char *fn);
/* A new contiguous tensor with fresh, uninitialized storage. */
nbi_tensor *nbi_tensor_new(nb_dtype dtype, int ndim, const int64_t *shape, const char *fn);
/* New contiguous tensors of the same shape as t (dtype given), uninitialized or zeroed. */
nbi_tensor *nbi_tensor_new_like(const nbi_tensor *t, nb_dtype dtype, const char *fn);
nbi_tensor *nbi_tensor_zeros_like(const nbi_tensor *t, nb_dtype dtype, const char *fn);

/* Internal references: a graph record or a gradient holds its tensors alive with these. */
void nbi_retain(nbi_tensor *t);
void nbi_release(nbi_tensor *t);
/* Takes t out of its scope (or the user's ownership) and makes it owned by another tensor (as its grad):
 * the handle stays valid, nb_free on it is refused. */
void nbi_make_owned_by_tensor(nbi_tensor *t);
/* Ends the user-visible life of t (the handle dies) and drops the owner's reference. */
void nbi_kill(nbi_tensor *t);

/* Internal scopes (backward and gradcheck use them for their temporaries). */
nb_status nbi_scope_begin(void);
void nbi_scope_end(void);
/* Whether t belongs to the innermost scope of the calling thread. */
bool nbi_in_innermost_scope(const nbi_tensor *t);
/* Moves t from the innermost scope to its parent (or the user). */
void nbi_keep(nbi_tensor *t);

/* ------------------------------------------------------------------------------------------------
 * Layout helpers (tensor/tensor.c)
 * ---------------------------------------------------------------------------------------------- */
/* Normalizes a possibly negative dim for a tensor of ndim dims (ndim + 1 when inserting); -1 if out of range. */
static inline int nbi_wrap_dim(int dim, int ndim)
{
    if (dim < 0) dim += ndim;
    return (dim >= 0 && dim < ndim) ? dim : -1;
}
bool nbi_is_contiguous(const nbi_tensor *t);
int64_t nbi_shape_numel(int ndim, const int64_t *shape);
void nbi_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);
static inline void *nbi_data_ptr(const nbi_tensor *t)
{
    return (char *)t->storage->data + t->offset * (int64_t)nb_dtype_size(t->dtype);
}
/* Value of element `i` in row-major order, converted to double. */
double nbi_get_flat(const nbi_tensor *t, int64_t i);
/* Copies src into dst (same shape, any layouts, converting dtype). */
void nbi_copy_into(nbi_tensor *dst, const nbi_tensor *src);
/* NB_OK when every element of t has a memory location of its own; else NB_ERR_ARG naming fn (an expanded tensor,
 * with stride 0 on a dim of size > 1, would keep only the last of the values written to a location). */
nb_status nbi_check_writable_elements(const nbi_tensor *t, const char *fn);
/* Contiguous copy of t in dtype. */
nbi_tensor *nbi_contiguous_copy(const nbi_tensor *t, nb_dtype dtype, const char *fn);
/* Broadcast shape of a and b; false (with an error naming fn and both shapes) when incompatible. */
bool nbi_broadcast_shape(const char *fn, int na, const int64_t *sa, int nb, const int64_t *sb, int *nout,
                         int64_t *out);
/* Whether shape (n dims) broadcasts to target (ndim dims) without enlarging it: each of its dims, aligned from
 * the right, is 1 or the target's, and it has no more dims than the target. */
bool nbi_broadcasts_to(int n, const int64_t *shape, int ndim, const int64_t *target);
/* Strides that make t look like it has `shape` (t's shape broadcasts to it): 0 on broadcast dims. */
void nbi_broadcast_strides(const nbi_tensor *t, int ndim, const int64_t *shape, int64_t *stride);
/* Type promotion order: bool < i64 < f32 < f64. */
static inline nb_dtype nbi_promote(nb_dtype a, nb_dtype b)
{
    static const int rank[] = {[NB_F32] = 2, [NB_F64] = 3, [NB_I64] = 1, [NB_BOOL] = 0};
    return rank[a] >= rank[b] ? a : b;
}
static inline bool nbi_is_float(nb_dtype d) { return d == NB_F32 || d == NB_F64; }
static inline bool nbi_dtype_valid(nb_dtype d) { return (unsigned)d <= NB_BOOL; }

/* ------------------------------------------------------------------------------------------------
 * Strided iteration (tensor/iter.c). An elementwise kernel is an inner loop over one dimension:
 *     loop(n, ptrs, strides, params) with ptrs[k] the first element of operand k (operand 0 is the output)
 *     and strides[k] in elements. nbi_iter_run calls it for every line of the (coalesced) iteration space.
 * ---------------------------------------------------------------------------------------------- */
#define NBI_MAX_OPERANDS 4
typedef void (*nbi_loop_fn)(int64_t n, char **ptrs, const int64_t *strides, const void *params);
typedef struct nbi_iter {
    int ndim;
    int n_operands;
    int64_t shape[NB_MAX_DIMS];
    int64_t stride[NBI_MAX_OPERANDS][NB_MAX_DIMS]; /* in elements */
    char *base[NBI_MAX_OPERANDS];
    size_t elsize[NBI_MAX_OPERANDS];
} nbi_iter;
/* Sets up iteration over out's shape; each operand is broadcast to it (inputs must already have the same
 * dtype their loop expects). Dims are coalesced where all operands allow. */
void nbi_iter_init(nbi_iter *it, nbi_tensor *out, int n_inputs, const nbi_tensor *const *inputs);
/* Iteration over an explicit shape that every operand broadcasts to. Reductions use it with the output as an
 * operand of stride 0 along the reduced dims, so the loop sees out[i * 0] repeated: loops must accumulate. */
void nbi_iter_init_over(nbi_iter *it, int ndim, const int64_t *shape, int n_operands,
                        const nbi_tensor *const *operands);
void nbi_iter_run(const nbi_iter *it, nbi_loop_fn loop, const void *params);

/* ------------------------------------------------------------------------------------------------
 * Threads and per-thread state (tensor/memory.c)
 * ---------------------------------------------------------------------------------------------- */
typedef struct nbi_thread_state {
    int no_grad_depth;
    bool detect_anomaly;     /* nb_set_detect_anomaly */
    int backward_depth;      /* > 0 while a backward pass runs on this thread */
    uint64_t anomaly_ops;    /* ops checked since anomaly detection was last turned on */
} nbi_thread_state;
nbi_thread_state *nbi_thread(void);

/* ------------------------------------------------------------------------------------------------
 * Parallel loops (tensor/threads.c): a persistent pool of worker threads, sized by nb_set_num_threads or
 * NABLA_NUM_THREADS (default: the number of online CPUs).
 * nbi_parallel_for splits [0, n) into contiguous chunks of at least `grain` items and calls fn(ctx, begin, end)
 * for each chunk, on the calling thread and the workers; it returns when all chunks are done. Runs fn(ctx, 0, n)
 * inline when n <= grain, when one thread is configured, or when called from inside a parallel region (no
 * nested oversubscription). fn must not record errors or touch per-thread state (scopes, no-grad).
 * ---------------------------------------------------------------------------------------------- */
typedef void (*nbi_range_fn)(void *ctx, int64_t begin, int64_t end);
void nbi_parallel_for(int64_t n, int64_t grain, nbi_range_fn fn, void *ctx);
/* Number of threads nbi_parallel_for may use (>= 1). */
int nbi_num_threads(void);

#endif
