/* Unary elementwise kernels (internal). */
#ifndef NABLA_KERNELS_UNARY_H
#define NABLA_KERNELS_UNARY_H

#include "internal.h"

typedef enum nbi_unary_kind {
    /* also defined on i64 (integer arithmetic, wrapping on overflow) */
    NBI_NEG, NBI_ABS, NBI_SQUARE, NBI_RELU,
    /* f32/f64 only */
    NBI_EXP, NBI_LOG, NBI_SQRT, NBI_RSQRT, NBI_RECIPROCAL, NBI_SIN, NBI_COS, NBI_TANH, NBI_SIGMOID,
    NBI_LEAKY_RELU, /* a = negative slope */
    NBI_ELU,        /* a = alpha */
    NBI_GELU,       /* erf form */
    NBI_GELU_TANH,  /* tanh approximation */
    NBI_SILU,
    NBI_SOFTPLUS,   /* a = beta, b = threshold */
    NBI_CLAMP,      /* a = lo, b = hi (infinite for no bound) */
    NBI_ERF,
    /* f32, f64, i64 and bool */
    NBI_SIGN,
    NBI_UNARY_COUNT
} nbi_unary_kind;

/* Scalar parameters of the parametrized kinds (see above); unused ones are ignored. */
typedef struct nbi_unary_params {
    double a, b;
} nbi_unary_params;

/* Whether kind is implemented for inputs of dtype dt. */
bool nbi_unary_supported(nbi_unary_kind kind, nb_dtype dt);
/* out = kind(in) elementwise; out is contiguous with in's shape and dtype, in has any strides.
 * params may be NULL for the kinds that take none. */
void nbi_unary_kernel(nbi_unary_kind kind, nbi_tensor *out, const nbi_tensor *in, const nbi_unary_params *params);

/* x[i] = sqrt(x[i]) over a contiguous array, vectorized where the target has a vector square root (a plain C
 * loop does not vectorize: sqrt may set errno, and nabla does not build with -fno-math-errno). Results are the
 * correctly rounded square roots either way. */
void nbi_sqrt_inplace_f32(float *x, int64_t n);
void nbi_sqrt_inplace_f64(double *x, int64_t n);
#if defined(__x86_64__) && defined(__GNUC__)
/* The same with 512-bit vectors, for kernels compiled for AVX-512 (call only when the CPU has it). */
#define NBI_HAVE_AVX512_VARIANTS 1
#define NBI_TARGET_AVX512 __attribute__((target("avx512f")))
void nbi_sqrt_inplace_f32_avx512(float *x, int64_t n);
void nbi_sqrt_inplace_f64_avx512(double *x, int64_t n);
#endif

#endif
