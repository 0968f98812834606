/* Vectorized f32 transcendental functions over contiguous arrays (internal). One table per instruction set;
 * nbi_vecmath_get() gives the one of the instruction set in use (the GEMM's choice: NABLA_ISA forces one).
 * Results are the same on every instruction set with FMA (AVX2, AVX-512); the portable one rounds its
 * multiply-adds in two steps, so its last bit may differ. Each function accepts out == in. */
#ifndef NABLA_VECMATH_H
#define NABLA_VECMATH_H

#include <stdint.h>

typedef void (*nbi_vec_fn)(float *out, const float *in, int64_t n);

typedef struct nbi_vecmath {
    nbi_vec_fn exp, log, tanh, sigmoid, silu, gelu_tanh, erf, gelu;
} nbi_vecmath;

extern const nbi_vecmath nbi_vecmath_portable;
#if defined(__x86_64__) && defined(__GNUC__)
extern const nbi_vecmath nbi_vecmath_avx2, nbi_vecmath_avx512;
#endif

const nbi_vecmath *nbi_vecmath_get(void);

#endif
