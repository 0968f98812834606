/* The vector math for AVX-512: 16 lanes. Compiled for that target whatever the build flags; only called when
 * the CPU has the features. */
#if defined(__x86_64__) && defined(__GNUC__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx2,fma")
#endif
#include <immintrin.h>

#define W 16
#define VFMA(a, b, c) ((vf)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define LOAD_PARTIAL(p, len) ((vf)_mm512_maskz_loadu_ps((__mmask16)((1u << (len)) - 1), p))
#define STORE_PARTIAL(p, v, len) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (len)) - 1), (__m512)(v))
#define VECMATH_TABLE nbi_vecmath_avx512
#include "vecmath_template.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
