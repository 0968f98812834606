/* Vectorized f32 transcendental functions, sum and softmax's passes over contiguous arrays (internal). One table
 * per instruction set; nbi_vecmath_get() gives the one of the instruction set in use (the GEMM's choice:
 * NABLA_ISA forces one). Results are the same on every instruction set with FMA (AVX2, AVX-512); the portable
 * one rounds its multiply-adds in two steps, so its last bit may differ. Each function accepts out == in. */
#ifndef NABLA_VECMATH_H
#define NABLA_VECMATH_H

#include <stdint.h>

typedef void (*nbi_vec_fn)(float *out, const float *in, int64_t n);

/* Partial sums of `sum`; kernels_reduce.c sums f64 and i64 runs in the same interleaved order. */
#define NBI_SUM_LANES 32

typedef struct nbi_vecmath {
    nbi_vec_fn exp, log, tanh, sigmoid, silu, gelu_tanh, erf, gelu;
    /* the sum in double of x[0..n), in NBI_SUM_LANES interleaved partial sums combined pairwise */
    double (*sum)(const float *x, int64_t n);
    /* out[k] = e^(x[k] - shift) for k < n (out may be x), each also added into part[k mod NBI_SUM_LANES] in
     * double: softmax in one pass; a caller going through an array in pieces keeps each piece's length a
     * multiple of NBI_SUM_LANES but the last, so that the order of the additions depends on the index alone */
    void (*exp_shifted)(float *out, const float *x, int64_t n, float shift, double *part);
    /* the largest of x[0..n), n >= 1 (exact when no element is NaN; with a NaN, some element of x) */
    float (*max)(const float *x, int64_t n);
    /* y[k] = (float)((double)(x[k] - shift) * scale - offset) (y may be x): softmax's normalization and
     * log-softmax */
    void (*shift_scale)(float *y, const float *x, int64_t n, float shift, double scale, double offset);
} nbi_vecmath;

extern const nbi_vecmath nbi_vecmath_portable;
#if defined(__x86_64__) && defined(__GNUC__)
extern const nbi_vecmath nbi_vecmath_avx2, nbi_vecmath_avx512;
#endif

const nbi_vecmath *nbi_vecmath_get(void);

#endif
