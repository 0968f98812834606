/* Matrix product kernels, organised like BLIS/GotoBLAS so that a SIMD micro-kernel can later replace the
 * portable one without touching anything else:
 *   for each NC-wide column block of B and C
 *     for each KC-deep slice of the inner dimension: pack B's (KC, NC) block into NR-wide panels
 *       for each MC-high row block of A: pack A's (MC, KC) block into MR-high panels
 *         for each (MR, NR) tile of C: micro-kernel over the two panels, then scale and store the tile.
 * Packing makes every operand layout (row-major, transposed, broadcast with stride 0) look the same to the
 * micro-kernel, keeps the panels it streams through in cache, and zero-pads the edges so the micro-kernel
 * only ever sees full tiles: its loops have constant trip counts, which gcc -O2 unrolls and vectorizes.
 * Products with a single row or column (matrix-vector) skip the tiling, which would waste most of a tile. */
#include "kernels_matmul.h"

/* Cache blocking (in elements). MC x KC of A is meant for L2, KC x NC of B for L3. MC and NC must be
 * multiples of every MR and NR below. */
#define MC 96
#define KC 256
#define NC 1024

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }
static inline int64_t abs64(int64_t a) { return a < 0 ? -a : a; }

/* Workspace layout shared by nbi_gemm_workspace and the kernels: [align slack][packed B][packed A]. */
static size_t packed_b_bytes(size_t es, int64_t nr, int64_t N, int64_t K)
{
    return (size_t)round_up(min64(KC, K) * min64(NC, round_up(N, nr)) * (int64_t)es, 64);
}
static size_t workspace_bytes(size_t es, int64_t mr, int64_t nr, int64_t M, int64_t N, int64_t K)
{
    if (M <= 0 || N <= 0 || K <= 0) return 64;
    return 64 + packed_b_bytes(es, nr, N, K) + (size_t)(min64(MC, round_up(M, mr)) * min64(KC, K)) * es;
}
static inline void *align64(void *p) { return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

#define GEMM_IMPL(T, SUF, MR, NR)                                                                              \
    /* A's (mc, kc) block as MR-row panels, each stored p-major (kc groups of MR values), zero-padded. */      \
    static void pack_a_##SUF(int64_t mc, int64_t kc, const T *A, int64_t rsa, int64_t csa, T *restrict dst)    \
    {                                                                                                          \
        for (int64_t ir = 0; ir < mc; ir += MR) {                                                              \
            int64_t mr = min64(MR, mc - ir);                                                                   \
            for (int64_t p = 0; p < kc; p++, dst += MR) {                                                      \
                const T *src = A + ir * rsa + p * csa;                                                         \
                int64_t i = 0;                                                                                 \
                for (; i < mr; i++) dst[i] = src[i * rsa];                                                     \
                for (; i < MR; i++) dst[i] = 0;                                                                \
            }                                                                                                  \
        }                                                                                                      \
    }                                                                                                          \
    /* B's (kc, nc) block as NR-column panels, each stored p-major (kc rows of NR values), zero-padded. */     \
    static void pack_b_##SUF(int64_t kc, int64_t nc, const T *B, int64_t rsb, int64_t csb, T *restrict dst)    \
    {                                                                                                          \
        for (int64_t jr = 0; jr < nc; jr += NR) {                                                              \
            int64_t nr = min64(NR, nc - jr);                                                                   \
            for (int64_t p = 0; p < kc; p++, dst += NR) {                                                      \
                const T *src = B + p * rsb + jr * csb;                                                         \
                int64_t j = 0;                                                                                 \
                for (; j < nr; j++) dst[j] = src[j * csb];                                                     \
                for (; j < NR; j++) dst[j] = 0;                                                                \
            }                                                                                                  \
        }                                                                                                      \
    }                                                                                                          \
    /* ab (MR x NR, row-major) = a panel @ b panel over kc steps: the hot loop. */                             \
    static void ukernel_##SUF(int64_t kc, const T *restrict a, const T *restrict b, T *restrict ab)            \
    {                                                                                                          \
        T acc[MR * NR] = {0};                                                                                  \
        for (int64_t p = 0; p < kc; p++, a += MR, b += NR)                                                     \
            for (int i = 0; i < MR; i++)                                                                       \
                for (int j = 0; j < NR; j++) acc[i * NR + j] += a[i] * b[j];                                   \
        for (int k = 0; k < MR * NR; k++) ab[k] = acc[k];                                                      \
    }                                                                                                          \
    /* The valid (mr, nr) corner of a tile into C; beta = 0 must not read C (it may hold NaN). */              \
    static void store_##SUF(int64_t mr, int64_t nr, T alpha, const T *ab, T beta, T *C, int64_t rsc,           \
                            int64_t csc)                                                                       \
    {                                                                                                          \
        for (int64_t i = 0; i < mr; i++) {                                                                     \
            T *c = C + i * rsc;                                                                                \
            if (beta == 0)                                                                                     \
                for (int64_t j = 0; j < nr; j++) c[j * csc] = alpha * ab[i * NR + j];                          \
            else                                                                                               \
                for (int64_t j = 0; j < nr; j++) c[j * csc] = beta * c[j * csc] + alpha * ab[i * NR + j];      \
        }                                                                                                      \
    }                                                                                                          \
    static void scale_##SUF(int64_t m, int64_t n, T beta, T *C, int64_t rsc, int64_t csc)                      \
    {                                                                                                          \
        if (beta == 1) return;                                                                                 \
        for (int64_t i = 0; i < m; i++)                                                                        \
            for (int64_t j = 0; j < n; j++) C[i * rsc + j * csc] = beta == 0 ? 0 : beta * C[i * rsc + j * csc]; \
    }                                                                                                          \
    /* y = alpha A x + beta y for an (m, k) matrix A: dot products when A's rows are the short stride,         \
     * column updates (axpy) otherwise, so A is read along its memory order either way. */                    \
    static void gemv_##SUF(int64_t m, int64_t k, T alpha, const T *A, int64_t rs, int64_t cs, const T *x,      \
                           int64_t incx, T beta, T *y, int64_t incy)                                           \
    {                                                                                                          \
        if (abs64(cs) <= abs64(rs)) {                                                                          \
            for (int64_t i = 0; i < m; i++) {                                                                  \
                T s = 0;                                                                                       \
                for (int64_t p = 0; p < k; p++) s += A[i * rs + p * cs] * x[p * incx];                         \
                y[i * incy] = beta == 0 ? alpha * s : beta * y[i * incy] + alpha * s;                          \
            }                                                                                                  \
        } else {                                                                                               \
            scale_##SUF(m, 1, beta, y, incy, 0);                                                               \
            for (int64_t p = 0; p < k; p++) {                                                                  \
                T xp = alpha * x[p * incx];                                                                    \
                for (int64_t i = 0; i < m; i++) y[i * incy] += xp * A[i * rs + p * cs];                        \
            }                                                                                                  \
        }                                                                                                      \
    }                                                                                                          \
    void nbi_gemm_##SUF(int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t rsa, int64_t csa,        \
                        const T *B, int64_t rsb, int64_t csb, T beta, T *C, int64_t rsc, int64_t csc,          \
                        void *work)                                                                            \
    {                                                                                                          \
        if (M <= 0 || N <= 0) return;                                                                          \
        if (K <= 0 || alpha == 0) {                                                                            \
            scale_##SUF(M, N, beta, C, rsc, csc);                                                              \
            return;                                                                                            \
        }                                                                                                      \
        if (N == 1) {                                                                                          \
            gemv_##SUF(M, K, alpha, A, rsa, csa, B, rsb, beta, C, rsc);                                        \
            return;                                                                                            \
        }                                                                                                      \
        if (M == 1) { /* C's row = Bᵀ A's row */                                                               \
            gemv_##SUF(N, K, alpha, B, csb, rsb, A, csa, beta, C, csc);                                        \
            return;                                                                                            \
        }                                                                                                      \
        T *bp = align64(work);                                                                                 \
        T *ap = (T *)((char *)bp + packed_b_bytes(sizeof(T), NR, N, K));                                       \
        T ab[MR * NR];                                                                                         \
        for (int64_t jc = 0; jc < N; jc += NC) {                                                               \
            int64_t nc = min64(NC, N - jc);                                                                    \
            for (int64_t pc = 0; pc < K; pc += KC) {                                                           \
                int64_t kc = min64(KC, K - pc);                                                                \
                T beta_k = pc == 0 ? beta : 1; /* later slices accumulate onto the first */                  \
                pack_b_##SUF(kc, nc, B + pc * rsb + jc * csb, rsb, csb, bp);                                   \
                for (int64_t ic = 0; ic < M; ic += MC) {                                                       \
                    int64_t mc = min64(MC, M - ic);                                                            \
                    pack_a_##SUF(mc, kc, A + ic * rsa + pc * csa, rsa, csa, ap);                               \
                    for (int64_t jr = 0; jr < nc; jr += NR)                                                    \
                        for (int64_t ir = 0; ir < mc; ir += MR) {                                              \
                            ukernel_##SUF(kc, ap + ir * kc, bp + jr * kc, ab);                                 \
                            store_##SUF(min64(MR, mc - ir), min64(NR, nc - jr), alpha, ab, beta_k,             \
                                        C + (ic + ir) * rsc + (jc + jr) * csc, rsc, csc);                      \
                        }                                                                                      \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }

/* Tile shapes for the 16 vector registers of baseline x86-64 (SSE2): 8 x 8 floats or 8 x 4 doubles of
 * accumulators measured fastest with gcc -O2 (about 20 and 10 GFLOP/s on one core at n = 512). */
#define MR_F32 8
#define NR_F32 8
#define MR_F64 8
#define NR_F64 4
GEMM_IMPL(float, f32, MR_F32, NR_F32)
GEMM_IMPL(double, f64, MR_F64, NR_F64)

size_t nbi_gemm_workspace(nb_dtype dt, int64_t M, int64_t N, int64_t K)
{
    if (dt == NB_F32) return workspace_bytes(sizeof(float), MR_F32, NR_F32, M, N, K);
    return workspace_bytes(sizeof(double), MR_F64, NR_F64, M, N, K);
}

void nbi_gemm(nb_dtype dt, int64_t M, int64_t N, int64_t K, double alpha, const void *A, int64_t rsa, int64_t csa,
              const void *B, int64_t rsb, int64_t csb, double beta, void *C, int64_t rsc, int64_t csc, void *work)
{
    if (dt == NB_F32)
        nbi_gemm_f32(M, N, K, (float)alpha, A, rsa, csa, B, rsb, csb, (float)beta, C, rsc, csc, work);
    else
        nbi_gemm_f64(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, work);
}

bool nbi_matmul_kernel(nb_dtype dt, int ndim, const int64_t *shape, int64_t K, void *c, const void *a,
                       const int64_t *a_stride, const void *b, const int64_t *b_stride, const char *fn)
{
    int nbatch = ndim - 2;
    int64_t M = shape[nbatch], N = shape[nbatch + 1], batch = nbi_shape_numel(nbatch, shape);
    if (batch == 0 || M == 0 || N == 0) return true;
    int64_t rsa = a_stride[nbatch], csa = a_stride[nbatch + 1], rsb = b_stride[nbatch], csb = b_stride[nbatch + 1];

    /* When every entry of the batch uses the same B and A's batch dims step evenly over its rows, the batch
     * folds into M: one tall product instead of many small ones (a linear layer on (batch, seq, in) inputs). */
    int64_t rows = M, rs = rsa;
    int d = nbatch - 1;
    for (; d >= 0; d--) {
        if (shape[d] == 1) continue;
        if (b_stride[d] != 0 || (rows != 1 && a_stride[d] != rs * rows)) break;
        if (rows == 1) rs = a_stride[d];
        rows *= shape[d];
    }
    if (d < 0) {
        M = rows;
        rsa = rs;
        batch = 1;
        nbatch = 0;
    }

    size_t ws = nbi_gemm_workspace(dt, M, N, K);
    void *work = nbi_alloc(ws, fn);
    if (!work) return false;
    size_t es = nb_dtype_size(dt);
    int64_t idx[NB_MAX_DIMS] = {0}, off_a = 0, off_b = 0;
    for (int64_t i = 0; i < batch; i++) {
        nbi_gemm(dt, M, N, K, 1.0, (const char *)a + off_a * (int64_t)es, rsa, csa,
                 (const char *)b + off_b * (int64_t)es, rsb, csb, 0.0, (char *)c + i * M * N * (int64_t)es, N, 1,
                 work);
        for (int k = nbatch - 1; k >= 0; k--) { /* next batch index, last dim fastest */
            off_a += a_stride[k];
            off_b += b_stride[k];
            if (++idx[k] < shape[k]) break;
            off_a -= a_stride[k] * shape[k];
            off_b -= b_stride[k] * shape[k];
            idx[k] = 0;
        }
    }
    nbi_free(work, ws);
    return true;
}
