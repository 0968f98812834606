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
#define VECMATH_TABLE nbi_vecmath_avx512
#include "vecmath_template.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
