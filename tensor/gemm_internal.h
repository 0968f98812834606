/* The per-instruction-set GEMM instances behind kernels_matmul.c's dispatcher (see gemm_template.h). Each has
 * the contract of nbi_gemm_f32/f64 for M, N, K >= 1 and alpha != 0; the dispatcher handles the rest. */
#ifndef NABLA_GEMM_INTERNAL_H
#define NABLA_GEMM_INTERNAL_H

#include "internal.h"

#define GEMM_DECLARE(T, SUF)                                                                                   \
    size_t nbi_gemm_workspace_##SUF(int64_t M, int64_t N, int64_t K);                                          \
    void nbi_gemm_##SUF(int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t rsa, int64_t csa,        \
                        const T *B, int64_t rsb, int64_t csb, T beta, T *C, int64_t rsc, int64_t csc, void *work);

GEMM_DECLARE(float, f32_portable)
GEMM_DECLARE(double, f64_portable)
#if defined(__x86_64__) && defined(__GNUC__)
#define NBI_GEMM_X86 1
GEMM_DECLARE(float, f32_avx2)
GEMM_DECLARE(double, f64_avx2)
GEMM_DECLARE(float, f32_avx512)
GEMM_DECLARE(double, f64_avx512)
/* gemm_narrow_avx512.c: M, N, K >= 1, N <= NBI_GEMM_NARROW_N, A's rows (csa 1) and B's columns (rsb 1) contiguous */
#define NBI_GEMM_NARROW_N 16
void nbi_gemm_narrow_f32_avx512(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t rsa,
                                const float *B, int64_t csb, float beta, float *C, int64_t rsc, int64_t csc);
#endif
#undef GEMM_DECLARE

#endif
