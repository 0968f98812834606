/* GEMM micro-kernels for AVX-512 (32 zmm registers): 8 rows (12 for a last row panel) by 2 vectors of
 * accumulators, 2 for a row of B and one broadcast of A. Compiled for that target whatever the build flags; the dispatcher only calls it
 * when the CPU has the features. */
#if defined(__x86_64__) && defined(__GNUC__)
/* clang ignores GCC's target pragma; its own form applies the target to every function that follows. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx2,fma")
#endif
#include <immintrin.h>

#include "gemm_internal.h"

#include "gemm_transpose_avx.h"

#define MR 8
/* 12 rows by 2 vectors still fit: 24 accumulators, 2 of B and a broadcast in 32 registers */
#define MRX 12
#define KC 256

#define T float
#define VEC __m512
#define VL 16
#define TB 8
#define TRANSPOSE_BLOCK transpose8_ps
#define SUF f32_avx512
#define NR 32
#define NC 512
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VSET1(x) _mm512_set1_ps(x)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
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
#define VEC __m512d
#define VL 8
#define TB 4
#define TRANSPOSE_BLOCK transpose4_pd
#define SUF f64_avx512
#define NR 16
#define NC 256
#define VZERO() _mm512_setzero_pd()
#define VLOAD(p) _mm512_loadu_pd(p)
#define VSTORE(p, v) _mm512_storeu_pd(p, v)
#define VSET1(x) _mm512_set1_pd(x)
#define VMUL(a, b) _mm512_mul_pd(a, b)
#define VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#include "gemm_template.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
