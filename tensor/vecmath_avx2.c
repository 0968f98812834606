/* The vector math for AVX2 + FMA: 8 lanes. Compiled for that target whatever the build flags; only called
 * when the CPU has the features. */
#if defined(__x86_64__) && defined(__GNUC__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#endif
#include <immintrin.h>

#define W 8
#define VFMA(a, b, c) ((vf)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
/* lanes below len: the sign bit of (lane - len) */
#define AVX2_MASK(len) _mm256_sub_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)(len)))
#define LOAD_PARTIAL(p, len) ((vf)_mm256_maskload_ps(p, AVX2_MASK(len)))
#define STORE_PARTIAL(p, v, len) _mm256_maskstore_ps(p, AVX2_MASK(len), (__m256)(v))
#define VECMATH_TABLE nbi_vecmath_avx2
#include "vecmath_template.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
