/* GEMM micro-kernels for AVX2 + FMA (16 ymm registers): 6 rows by 2 vectors of accumulators, 2 for a row of
 * B and one broadcast of A. Compiled for that target whatever the build flags; the dispatcher only calls it
 * when the CPU has the features. */
#if defined(__x86_64__) && defined(__GNUC__)
/* clang ignores GCC's target pragma; its own form applies the target to every function that follows. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#endif
#include <immintrin.h>

#include "gemm_internal.h"

#include "gemm_transpose_avx.h"

#define MR 6
#define KC 256

#define T float
#define VEC __m256
#define VL 8
#define TB 8
#define TRANSPOSE_BLOCK transpose8_ps
#define SUF f32_avx2
#define NR 16
#define NC 512
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VSET1(x) _mm256_set1_ps(x)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#include "gemm_template.h"
#undef T
#undef TB
#undef TRANSPOSE_BLOCK
#undef VEC
#undef VL
#undef SUF
#undef NR
#undef NC
#undef VZERO
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VMUL
#undef VFMA

#define T double
#define VEC __m256d
#define VL 4
#define TB 4
#define TRANSPOSE_BLOCK transpose4_pd
#define SUF f64_avx2
#define NR 8
#define NC 256
#define VZERO() _mm256_setzero_pd()
#define VLOAD(p) _mm256_loadu_pd(p)
#define VSTORE(p, v) _mm256_storeu_pd(p, v)
#define VSET1(x) _mm256_set1_pd(x)
#define VMUL(a, b) _mm256_mul_pd(a, b)
#define VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#include "gemm_template.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
