/* Narrow products with AVX-512: C (M, N) = alpha A B + beta C for N <= NBI_GEMM_NARROW_N when A's rows and B's
 * columns are both contiguous along K (A row-major, B a transposed view of a row-major (N, K) matrix: the x Wᵀ
 * of a Linear layer with few outputs). Each element is a dot product of two contiguous vectors, computed with
 * the lanes along K and summed across lanes at the end. The blocked kernel would have to pack and zero-pad B's
 * N columns out to a full register tile for every product, which for a 10-wide output costs about as much as
 * the arithmetic and leaves 6 of 16 lanes idle.
 *
 * Two rows of A share each load of B's columns; up to 12 columns are done at once (24 accumulators). An
 * element's result depends only on its row and column, never on the blocking or the thread split. */
#if defined(__x86_64__) && defined(__GNUC__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx2,fma")
#endif
#include <immintrin.h>

#include "gemm_internal.h"

#define COLS 12 /* columns per pass */

typedef struct narrow_job {
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    int64_t rsa, csb;
    float *C;
    int64_t rsc, csc;
} narrow_job;

/* ROWS rows (1 or 2) starting at row i, columns j0 .. j0 + ncols. */
static inline __attribute__((always_inline)) void narrow_block(const narrow_job *jb, int64_t i, int64_t j0,
                                                             const int ncols, const int rows)
{
    __m512 acc[2][COLS];
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < ncols; j++) acc[r][j] = _mm512_setzero_ps();
    const float *a0 = jb->A + i * jb->rsa, *a1 = a0 + (rows > 1 ? jb->rsa : 0);
    const float *b = jb->B + j0 * jb->csb;
    int64_t K = jb->K, p = 0;
    for (; p + 16 <= K; p += 16) {
        __m512 x0 = _mm512_loadu_ps(a0 + p), x1 = rows > 1 ? _mm512_loadu_ps(a1 + p) : x0;
        for (int j = 0; j < ncols; j++) {
            __m512 w = _mm512_loadu_ps(b + j * jb->csb + p);
            acc[0][j] = _mm512_fmadd_ps(x0, w, acc[0][j]);
            if (rows > 1) acc[1][j] = _mm512_fmadd_ps(x1, w, acc[1][j]);
        }
    }
    if (p < K) {
        __mmask16 m = (__mmask16)((1u << (K - p)) - 1);
        __m512 x0 = _mm512_maskz_loadu_ps(m, a0 + p), x1 = rows > 1 ? _mm512_maskz_loadu_ps(m, a1 + p) : x0;
        for (int j = 0; j < ncols; j++) {
            __m512 w = _mm512_maskz_loadu_ps(m, b + j * jb->csb + p);
            acc[0][j] = _mm512_fmadd_ps(x0, w, acc[0][j]);
            if (rows > 1) acc[1][j] = _mm512_fmadd_ps(x1, w, acc[1][j]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < ncols; j++) {
            float s = _mm512_reduce_add_ps(acc[r][j]);
            float *c = jb->C + (i + r) * jb->rsc + (j0 + j) * jb->csc;
            *c = jb->beta == 0 ? jb->alpha * s : jb->alpha * s + jb->beta * *c;
        }
}

/* Every column block of rows i .. i + rows, with the width a compile-time constant in each call. */
static inline __attribute__((always_inline)) void narrow_rows(const narrow_job *jb, int64_t i, const int rows)
{
    for (int64_t j0 = 0; j0 < jb->N; j0 += COLS) {
        switch (jb->N - j0 < COLS ? jb->N - j0 : COLS) {
#define NARROW_CASE(n)                                                                                         \
    case n: narrow_block(jb, i, j0, n, rows); break;
            NARROW_CASE(1) NARROW_CASE(2) NARROW_CASE(3) NARROW_CASE(4) NARROW_CASE(5) NARROW_CASE(6)
            NARROW_CASE(7) NARROW_CASE(8) NARROW_CASE(9) NARROW_CASE(10) NARROW_CASE(11) NARROW_CASE(12)
#undef NARROW_CASE
        }
    }
}

/* Row pairs begin .. end (the last pair of an odd M is a single row). */
static void narrow_range(void *ctx, int64_t begin, int64_t end)
{
    const narrow_job *jb = ctx;
    for (int64_t pair = begin; pair < end; pair++) {
        int64_t i = 2 * pair;
        if (i + 1 < jb->M) narrow_rows(jb, i, 2);
        else narrow_rows(jb, i, 1);
    }
}

void nbi_gemm_narrow_f32_avx512(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t rsa,
                                const float *B, int64_t csb, float beta, float *C, int64_t rsc, int64_t csc)
{
    narrow_job jb = {M, N, K, alpha, beta, A, B, rsa, csb, C, rsc, csc};
    int64_t pairs = (M + 1) / 2;
    /* rows are independent: any split gives the same bits */
    if ((double)M * (double)N * (double)K < (1 << 20) || nbi_num_threads() == 1) narrow_range(&jb, 0, pairs);
    else nbi_parallel_for(pairs, 16, narrow_range, &jb);
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
