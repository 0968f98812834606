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
#define VECMATH_TABLE nbi_vecmath_avx2
#include "vecmath_template.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
