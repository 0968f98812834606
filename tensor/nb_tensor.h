/* nabla tensor core: dtypes, errors, memory scopes, creation, element access, printing, random numbers.
 *
 * Conventions used by every function in nabla:
 *  - Tensors are handled through `nb_tensor *` handles. A handle is opaque: use the accessors below.
 *  - Every function that can fail returns NULL (or a non-zero nb_status) and records a message that
 *    nb_last_error() returns. A function given a NULL tensor returns NULL without replacing an earlier
 *    message, so errors propagate through a whole expression and can be checked once at the end:
 *        nb_tensor *loss = nb_mean(nb_square(nb_sub(pred, target)), 0, NULL, false);
 *        if (!loss) fprintf(stderr, "%s\n", nb_last_error());
 *  - Dimensions may be negative (counted from the end, -1 is the last), as in PyTorch.
 *  - Shapes are passed as (ndim, const int64_t *shape). NB_SHAPE(2, 3) expands to `2, (const int64_t[]){2, 3}`.
 *
 * Memory model (see README "Memory model"):
 *  - A tensor created while no scope is open belongs to the caller, who releases it with nb_free().
 *    Parameters and data sets are created this way (or owned by a model object that frees them).
 *  - nb_scope_begin() opens a scope on the calling thread; every tensor created on that thread until the
 *    matching nb_scope_end() belongs to the scope and is released by nb_scope_end(). Scopes nest.
 *    A training step is one scope: activations, saved tensors and gradients of intermediates all go away
 *    in one call, so a loop of any length keeps flat memory.
 *  - nb_keep(t) moves t out of its scope into the enclosing scope, or to the caller when no scope encloses it.
 *  - Internally tensors are reference counted: a tensor still needed by a graph (for example by a kept loss)
 *    stays in memory after its scope ends, but the handle the user held becomes invalid at once. Using an
 *    invalid handle is reported ("was freed") instead of reading recycled memory; the check is a generation
 *    counter carried in each handle and is always on.
 *  - Tensor headers and data buffers are recycled through per-thread caches, so a steady-state training step
 *    makes no calls to malloc. The caches grow as needed; nb_release_cached_memory() returns them to the system.
 */
#ifndef NABLA_TENSOR_H
#define NABLA_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define NB_API
#elif defined(__GNUC__)
#define NB_API __attribute__((visibility("default")))
#else
#define NB_API
#endif

#define NB_VERSION_MAJOR 0
#define NB_VERSION_MINOR 1
#define NB_VERSION_PATCH 0

/* Largest number of dimensions a tensor may have. */
#define NB_MAX_DIMS 8

/* Shape literal: NB_SHAPE(2, 3) -> 2, (const int64_t[]){2, 3}. */
#define NB_SHAPE(...)                                                   \
    (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),   \
        (const int64_t[]) { __VA_ARGS__ }
/* Dimension-list literal for reductions and permute: NB_DIMS(0, 2) -> 2, (const int[]){0, 2}. */
#define NB_DIMS(...)                                                    \
    (int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int)), (const int[]) { __VA_ARGS__ }

typedef struct nb_tensor nb_tensor;

/* ------------------------------------------------------------------------------------------------
 * dtypes
 * ---------------------------------------------------------------------------------------------- */
typedef enum nb_dtype {
    NB_F32 = 0, /* float, the default for parameters and data */
    NB_F64 = 1, /* double, used by gradient checks */
    NB_I64 = 2, /* int64_t: class labels and indices; never requires grad */
    NB_BOOL = 3 /* uint8_t holding 0 or 1: masks and comparison results */
} nb_dtype;

/* Name of a dtype ("f32", "f64", "i64", "bool"); "?" for an invalid value. */
NB_API const char *nb_dtype_name(nb_dtype dtype);
/* Size of one element in bytes; 0 for an invalid value. */
NB_API size_t nb_dtype_size(nb_dtype dtype);

/* ------------------------------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------------------------- */
typedef enum nb_status {
    NB_OK = 0,
    NB_ERR_NULL,      /* a required argument was NULL */
    NB_ERR_FREED,     /* a tensor handle was used after its scope ended or after nb_free */
    NB_ERR_ARG,       /* an argument is out of its documented range (dim, count, flag) */
    NB_ERR_SHAPE,     /* shapes do not match or cannot broadcast, or a shape array holds a negative size */
    NB_ERR_DTYPE,     /* dtype not supported by the operation */
    NB_ERR_INDEX,     /* an index is out of range */
    NB_ERR_VALUE,     /* a value is not allowed (NaN, a negative count given as a number: nb_eye's n, ...) */
    NB_ERR_NOMEM,     /* out of memory */
    NB_ERR_STATE,     /* the call is not valid now (scope mismatch, graph already released, ...) */
    NB_ERR_IO,        /* reading or writing a file failed */
    NB_ERR_FORMAT,    /* a file's contents are malformed */
    NB_ERR_GRADCHECK, /* nb_gradcheck found a mismatch */
    NB_ERR_COMM       /* communication with other ranks failed or timed out (nb_dist.h) */
} nb_status;

/* Message of the last error recorded on this thread, or "" when none. The text stays valid until the
 * next error on this thread or nb_clear_error(). */
NB_API const char *nb_last_error(void);
/* Status of the last error recorded on this thread (NB_OK when none). */
NB_API nb_status nb_last_status(void);
/* Forgets the last error of this thread. */
NB_API void nb_clear_error(void);
/* Name of a status code ("NB_ERR_SHAPE", ...). */
NB_API const char *nb_status_name(nb_status status);

/* Called, on the thread that failed, each time an error is recorded (not when a NULL merely propagates).
 * Process-wide; pass NULL to remove. Useful to stop in a debugger at the first error. */
typedef void (*nb_error_handler)(nb_status status, const char *message, void *user_data);
NB_API void nb_set_error_handler(nb_error_handler handler, void *user_data);
/* A ready-made handler: prints the message to stderr and calls abort(). */
NB_API void nb_abort_on_error(nb_status status, const char *message, void *user_data);

/* ------------------------------------------------------------------------------------------------
 * Memory: scopes and ownership
 * ---------------------------------------------------------------------------------------------- */
/* Opens a scope on the calling thread. Returns NB_OK, or NB_ERR_NOMEM. */
NB_API nb_status nb_scope_begin(void);
/* Closes the innermost scope of the calling thread and frees every tensor it still owns.
 * Returns NB_ERR_STATE when no scope is open. */
NB_API nb_status nb_scope_end(void);
/* Number of scopes open on the calling thread. */
NB_API int nb_scope_depth(void);
/* Moves t from its scope to the enclosing scope, or to the caller when its scope is the outermost.
 * Returns t; a tensor already owned by the caller is returned unchanged. NULL propagates. */
NB_API nb_tensor *nb_keep(nb_tensor *t);
/* Releases t now, whether it belongs to the caller or to a scope. nb_free(NULL) does nothing.
 * Freeing a gradient owned by its tensor is an error (use nb_zero_grad). Returns NB_OK or an error. */
NB_API nb_status nb_free(nb_tensor *t);
/* True when t is a valid, live handle (does not record an error). */
NB_API bool nb_is_valid(const nb_tensor *t);

typedef struct nb_memory_stats {
    int64_t live_tensors;     /* tensor headers in use (all threads) */
    int64_t live_bytes;       /* bytes of tensor data in use (all threads) */
    int64_t peak_live_bytes;  /* high-water mark of live_bytes since start or nb_reset_peak_memory() */
    int64_t cached_bytes;     /* bytes kept in the recycling caches, ready for reuse */
    int64_t system_allocs;    /* calls made to malloc (and friends) by nabla so far */
} nb_memory_stats;
/* Counters of nabla's allocator, summed over all threads. */
NB_API nb_memory_stats nb_memory_stats_get(void);
/* Sets peak_live_bytes to the current live_bytes. */
NB_API void nb_reset_peak_memory(void);
/* Gives the calling thread's cached buffers back to the system. */
NB_API void nb_release_cached_memory(void);

/* ------------------------------------------------------------------------------------------------
 * Creation. Each returns a new tensor (owned by the current scope, or by the caller when no scope is
 * open) or NULL on error (negative size, more than NB_MAX_DIMS dims, invalid dtype, out of memory). The rule for
 * sizes: a negative entry of a shape array is NB_ERR_SHAPE; a negative count passed as a plain number (nb_eye's
 * n, nb_linspace's steps, nb_randperm's n) is NB_ERR_VALUE.
 * A value stored into an i64 tensor, here and by nb_fill, nb_set and nb_set_flat, must be a finite number in
 * int64's range (else NB_ERR_VALUE, as PyTorch refuses it); a fraction is truncated toward zero. A bool stores
 * value != 0.
 * ---------------------------------------------------------------------------------------------- */
/* Uninitialized contents. */
NB_API nb_tensor *nb_empty(int ndim, const int64_t *shape, nb_dtype dtype);
NB_API nb_tensor *nb_zeros(int ndim, const int64_t *shape, nb_dtype dtype);
NB_API nb_tensor *nb_ones(int ndim, const int64_t *shape, nb_dtype dtype);
NB_API nb_tensor *nb_full(int ndim, const int64_t *shape, double value, nb_dtype dtype);
/* A 0-d tensor holding value. */
NB_API nb_tensor *nb_scalar(double value, nb_dtype dtype);
/* 1-d tensor start, start+step, ... while < end (> end for a negative step), like torch.arange. For i64, start,
 * end and step are first truncated toward zero, as PyTorch converts them (arange(0.5, 3, 1) is 0, 1, 2).
 * Errors: NB_ERR_VALUE for a non-finite argument, a zero step (also one that truncates to 0 for i64) or more
 * elements than can be made. */
NB_API nb_tensor *nb_arange(double start, double end, double step, nb_dtype dtype);
/* 1-d tensor of `steps` evenly spaced values from start to end inclusive, like torch.linspace: one step gives
 * start; the first steps/2 values are start + i*step and the rest end - (steps-1-i)*step, computed in the
 * tensor's float type, so an infinite bound gives NaN where PyTorch gives NaN (linspace(0, inf, 3) is all NaN).
 * For i64, start and end are first truncated toward zero and must fit (end only with two steps or more).
 * Errors: NB_ERR_VALUE for steps < 0 or an i64 bound that is not a finite number in int64's range. */
NB_API nb_tensor *nb_linspace(double start, double end, int64_t steps, nb_dtype dtype);
/* n x n identity matrix. Errors: NB_ERR_VALUE for n < 0. */
NB_API nb_tensor *nb_eye(int64_t n, nb_dtype dtype);
/* Copies prod(shape) elements of type `dtype` (float, double, int64_t or uint8_t) from data. */
NB_API nb_tensor *nb_from_array(const void *data, int ndim, const int64_t *shape, nb_dtype dtype);
/* New tensors with the shape (and dtype) of t. */
NB_API nb_tensor *nb_zeros_like(const nb_tensor *t);
NB_API nb_tensor *nb_ones_like(const nb_tensor *t);
NB_API nb_tensor *nb_full_like(const nb_tensor *t, double value);

/* ------------------------------------------------------------------------------------------------
 * Inspection
 * ---------------------------------------------------------------------------------------------- */
/* Number of dimensions (0 for a scalar); -1 for an invalid handle. */
NB_API int nb_ndim(const nb_tensor *t);
/* Size of dimension dim (negative counts from the end); -1 on error. */
NB_API int64_t nb_size(const nb_tensor *t, int dim);
/* Pointer to the shape array (nb_ndim entries); valid while t lives. NULL on error. */
NB_API const int64_t *nb_shape(const nb_tensor *t);
/* Element strides (not bytes); valid while t lives. NULL on error. */
NB_API const int64_t *nb_strides(const nb_tensor *t);
/* Number of elements; -1 on error. */
NB_API int64_t nb_numel(const nb_tensor *t);
/* dtype of t; NB_F32 for an invalid handle (which also records an error). */
NB_API nb_dtype nb_dtype_of(const nb_tensor *t);
/* True when elements are laid out row-major without gaps. */
NB_API bool nb_is_contiguous(const nb_tensor *t);
/* True when a and b are views of the same storage. */
NB_API bool nb_shares_storage(const nb_tensor *a, const nb_tensor *b);
/* Writes "(2, 3)" (or "()" for a scalar) into buf; returns buf. Never fails: an invalid handle gives "(invalid)". */
NB_API char *nb_shape_str(const nb_tensor *t, char *buf, size_t size);

/* ------------------------------------------------------------------------------------------------
 * Element access (any dtype; values pass through double; NaN on error for the getters)
 * ---------------------------------------------------------------------------------------------- */
/* The value of a tensor with exactly one element. */
NB_API double nb_item(const nb_tensor *t);
/* Element at the given index (one entry per dim; negative indices count from the end). */
NB_API double nb_get(const nb_tensor *t, const int64_t *index);
/* Sets one element. Writes are visible through every view of the same storage. */
NB_API nb_status nb_set(nb_tensor *t, const int64_t *index, double value);
/* Element number i of t in row-major order (whatever its strides). */
NB_API double nb_get_flat(const nb_tensor *t, int64_t i);
NB_API nb_status nb_set_flat(nb_tensor *t, int64_t i, double value);
/* Copies all elements, row-major, converted to `dtype`, into out (room for `capacity` elements). */
NB_API nb_status nb_to_array(const nb_tensor *t, void *out, int64_t capacity, nb_dtype dtype);
/* Pointer to the first element of a contiguous tensor; NULL (with an error) when t is not contiguous.
 * Writing through it bypasses autograd's in-place checks. Valid while t lives. */
NB_API void *nb_data(nb_tensor *t);
/* Fills t with value, in place (all views see it). */
NB_API nb_status nb_fill(nb_tensor *t, double value);
/* Copies src into dst in place; src broadcasts to dst's shape and is converted to dst's dtype. NB_ERR_ARG when
 * dst has several elements at one address (a dim of stride 0: an expanded tensor), as in PyTorch. */
NB_API nb_status nb_copy_(nb_tensor *dst, const nb_tensor *src);

/* ------------------------------------------------------------------------------------------------
 * Printing. Format follows PyTorch: values with a common width, 4 decimals (or scientific notation for
 * wide ranges), the middle elided as "..." when there are more than 1000 elements, then shape and dtype:
 *     tensor([[1.0000, 2.5000],
 *             [3.0000, 4.0000]], shape=(2, 2), dtype=f32)
 * ---------------------------------------------------------------------------------------------- */
/* Writes the text and a newline to f (nb_print: to stdout) and flushes f. NB_ERR_IO when writing or flushing
 * fails (a full disk shows only on the flush) or f already has its error indicator set. */
NB_API nb_status nb_fprint(FILE *f, const nb_tensor *t);
NB_API nb_status nb_print(const nb_tensor *t);
/* Writes the same text, without the newline, into buf (NUL-terminated, truncated to size; buf may be NULL
 * when size is 0); returns the length it needed, like snprintf, or 0 on error. */
NB_API size_t nb_format(const nb_tensor *t, char *buf, size_t size);

/* ------------------------------------------------------------------------------------------------
 * Random numbers. A generator is a xoshiro256** state seeded through splitmix64: the same seed gives
 * the same numbers on every platform. Uniform values are exact functions of the bits; normal values use
 * the Marsaglia polar method with nabla's own logarithm, so they are identical across platforms too.
 * Each thread has a default generator (seed 0 until nb_manual_seed is called on that thread).
 * ---------------------------------------------------------------------------------------------- */
typedef struct nb_generator {
    uint64_t s[4];
    double spare_normal;
    bool has_spare;
} nb_generator;

/* Seeds g. */
NB_API void nb_generator_seed(nb_generator *g, uint64_t seed);
/* Seeds the calling thread's default generator. */
NB_API void nb_manual_seed(uint64_t seed);
/* The calling thread's default generator (to save or restore its state). */
NB_API nb_generator *nb_default_generator(void);
/* Next 64 random bits; uniform double in [0, 1); standard normal double. g NULL means the default. */
NB_API uint64_t nb_random_u64(nb_generator *g);
NB_API double nb_random_uniform(nb_generator *g);
NB_API double nb_random_normal(nb_generator *g);
/* Uniform integer in [0, n), without modulo bias. */
NB_API uint64_t nb_random_below(nb_generator *g, uint64_t n);

/* Tensors of uniform [low, high) or normal (mean, std) values; f32 or f64. g NULL means the default. Errors
 * (NB_ERR_VALUE): a non-finite bound, mean or std; low > high; std < 0; as in PyTorch, a bound beyond the
 * dtype's largest magnitude or high - low above it (f32 (0, 1e39) or f64 (-1.7e308, 1.7e308) would be all inf). */
NB_API nb_tensor *nb_rand(int ndim, const int64_t *shape, double low, double high, nb_dtype dtype, nb_generator *g);
NB_API nb_tensor *nb_randn(int ndim, const int64_t *shape, double mean, double std, nb_dtype dtype, nb_generator *g);
/* i64 tensor of uniform integers in [low, high). */
NB_API nb_tensor *nb_randint(int ndim, const int64_t *shape, int64_t low, int64_t high, nb_generator *g);
/* i64 tensor holding a random permutation of 0..n-1 (Fisher-Yates). */
NB_API nb_tensor *nb_randperm(int64_t n, nb_generator *g);
/* In place: fills t with uniform or normal values. Errors: NB_ERR_DTYPE for an integer or bool t, NB_ERR_VALUE
 * for bounds as nb_rand / nb_randn, NB_ERR_ARG for an expanded t (several elements at one memory location). */
NB_API nb_status nb_uniform_(nb_tensor *t, double low, double high, nb_generator *g);
NB_API nb_status nb_normal_(nb_tensor *t, double mean, double std, nb_generator *g);

/* ------------------------------------------------------------------------------------------------
 * Threads. Large matrix products and large elementwise/reduction ops spread over a persistent pool of worker
 * threads, started on first use. Results do not depend on the thread count, except where an op documents
 * that its summation order does.
 * ---------------------------------------------------------------------------------------------- */
/* Sets the number of threads ops may use (the calling thread included); 1 runs everything on the calling
 * thread. The default is the environment variable NABLA_NUM_THREADS when it holds a positive integer, else the
 * number of online CPUs. n <= 0 fails with NB_ERR_ARG. Safe to call between ops, but not while another thread
 * runs ops. */
NB_API nb_status nb_set_num_threads(int n);
/* The number of threads ops may use (>= 1). */
NB_API int nb_num_threads(void);

#ifdef __cplusplus
}
#endif
#endif
