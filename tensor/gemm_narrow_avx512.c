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

#define COLS 12 /* columns per pass: 24 accumulators */

typedef struct narrow_job {
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    int64_t rsa, csb;
    float *C;
    int64_t rsc, csc;
} narrow_job;

/* r[j] = the sum of v[j]'s 16 lanes, for 16 vectors at once: four rounds that each add the two halves of pairs
 * of vectors (whole 256-bit halves, then 128-bit blocks, then pairs of lanes, then lanes), about 3 operations
 * per sum where reducing each vector on its own takes 8. Every sum adds its lanes in the same tree (lane l with
 * l + 8, then l + 4, l + 2, l + 1) whichever vectors share the call, so a result does not depend on how many
 * columns a block has. */
static inline __attribute__((always_inline)) __m512 sum_lanes16(const __m512 v[16])
{
    __m512 w[8], x[4], y[2];
#pragma GCC unroll 16
    for (int k = 0; k < 8; k++)
        w[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xEE));
    /* w[k]: v[2k]'s 8 partial sums, then v[2k + 1]'s */
#pragma GCC unroll 16
    for (int k = 0; k < 4; k++)
        x[k] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * k], w[2 * k + 1], 0x88),
                             _mm512_shuffle_f32x4(w[2 * k], w[2 * k + 1], 0xDD));
    /* x[k]: 4 partial sums of each of v[4k] .. v[4k + 3], one 128-bit block each */
#pragma GCC unroll 16
    for (int k = 0; k < 2; k++)
        y[k] = _mm512_add_ps(_mm512_shuffle_ps(x[2 * k], x[2 * k + 1], 0x44),
                             _mm512_shuffle_ps(x[2 * k], x[2 * k + 1], 0xEE));
    __m512 z = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xDD));
    /* z's lane 4b + q holds the sum of v[4q + b] */
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(order, z);
}

/* ROWS rows (1 or 2) starting at row i, columns j0 .. j0 + ncols. */
static inline __attribute__((always_inline)) void narrow_block(const narrow_job *jb, int64_t i, int64_t j0,
                                                             const int ncols, const int rows)
{
    /* every loop over acc is unrolled: indexed with a variable, the array would live on the stack */
    __m512 acc[2][16];
#pragma GCC unroll 16
    for (int r = 0; r < 2; r++)
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) acc[r][j] = _mm512_setzero_ps();
    const float *a0 = jb->A + i * jb->rsa, *a1 = a0 + (rows > 1 ? jb->rsa : 0);
    const float *b = jb->B + j0 * jb->csb;
    int64_t K = jb->K, p = 0;
    for (; p + 16 <= K; p += 16) {
        __m512 x0 = _mm512_loadu_ps(a0 + p), x1 = rows > 1 ? _mm512_loadu_ps(a1 + p) : x0;
#pragma GCC unroll 16
        for (int j = 0; j < ncols; j++) {
            __m512 w = _mm512_loadu_ps(b + j * jb->csb + p);
            acc[0][j] = _mm512_fmadd_ps(x0, w, acc[0][j]);
            if (rows > 1) acc[1][j] = _mm512_fmadd_ps(x1, w, acc[1][j]);
        }
    }
    if (p < K) {
        __mmask16 m = (__mmask16)((1u << (K - p)) - 1);
        __m512 x0 = _mm512_maskz_loadu_ps(m, a0 + p), x1 = rows > 1 ? _mm512_maskz_loadu_ps(m, a1 + p) : x0;
#pragma GCC unroll 16
        for (int j = 0; j < ncols; j++) {
            __m512 w = _mm512_maskz_loadu_ps(m, b + j * jb->csb + p);
            acc[0][j] = _mm512_fmadd_ps(x0, w, acc[0][j]);
            if (rows > 1) acc[1][j] = _mm512_fmadd_ps(x1, w, acc[1][j]);
        }
    }
    const __mmask16 cols = (__mmask16)((1u << ncols) - 1);
    const __m512 alpha = _mm512_set1_ps(jb->alpha), beta = _mm512_set1_ps(jb->beta);
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++) {
        /* alpha * s (+ beta * c), rounded as the scalar expression would be */
        __m512 s = _mm512_mul_ps(alpha, sum_lanes16(acc[r]));
        float *c = jb->C + (i + r) * jb->rsc + j0 * jb->csc;
        if (jb->csc == 1) {
            if (jb->beta != 0) s = _mm512_add_ps(s, _mm512_mul_ps(beta, _mm512_maskz_loadu_ps(cols, c)));
            _mm512_mask_storeu_ps(c, cols, s);
            continue;
        }
        float out[16];
        _mm512_storeu_ps(out, s);
#pragma GCC unroll 16
        for (int j = 0; j < ncols; j++)
            c[j * jb->csc] = jb->beta == 0 ? out[j] : out[j] + jb->beta * c[j * jb->csc];
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
