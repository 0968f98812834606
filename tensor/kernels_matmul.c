/* Matrix product kernels: the dispatcher. The blocked GEMM itself is gemm_template.h, instantiated per
 * instruction set in gemm_portable.c, gemm_avx2.c and gemm_avx512.c; the best one the CPU supports is chosen
 * on first use (NABLA_ISA=avx512|avx2|portable, or nbi_gemm_set_isa, force one for testing). Degenerate
 * products (empty, K = 0, alpha = 0) and matrix-vector products are handled here, in portable C. */
#include "kernels_matmul.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_internal.h"

static inline int64_t abs64(int64_t a) { return a < 0 ? -a : a; }

/* ------------------------------------------------------------------------------------------------
 * Instruction set selection
 * ---------------------------------------------------------------------------------------------- */
static nbi_isa best_supported(nbi_isa want)
{
#ifdef NBI_GEMM_X86
    __builtin_cpu_init();
    if (want >= NBI_ISA_AVX512 && __builtin_cpu_supports("avx512f")) return NBI_ISA_AVX512;
    if (want >= NBI_ISA_AVX2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return NBI_ISA_AVX2;
#endif
    (void)want;
    return NBI_ISA_PORTABLE;
}

static _Atomic int g_isa = -1;

static nbi_isa isa_from_env(void)
{
    const char *env = getenv("NABLA_ISA");
    nbi_isa want = NBI_ISA_AVX512;
    if (env && strcmp(env, "avx2") == 0) want = NBI_ISA_AVX2;
    else if (env && strcmp(env, "portable") == 0) want = NBI_ISA_PORTABLE;
    return best_supported(want);
}

nbi_isa nbi_gemm_isa(void)
{
    int isa = g_isa;
    if (isa < 0) {
        int expected = -1;
        atomic_compare_exchange_strong(&g_isa, &expected, (int)isa_from_env());
        isa = g_isa;
    }
    return (nbi_isa)isa;
}

nbi_isa nbi_gemm_set_isa(nbi_isa isa)
{
    g_isa = isa == NBI_ISA_AUTO ? (int)isa_from_env() : (int)best_supported(isa);
    return (nbi_isa)g_isa;
}

const char *nbi_isa_name(nbi_isa isa)
{
    return isa == NBI_ISA_AVX512 ? "avx512" : isa == NBI_ISA_AVX2 ? "avx2" : "portable";
}

/* ------------------------------------------------------------------------------------------------
 * Degenerate and matrix-vector products
 * ---------------------------------------------------------------------------------------------- */
#define SMALL_IMPL(T, SUF)                                                                                     \
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
    /* The cases the blocked kernels do not take; false when the product is for them. */                      \
    static bool small_##SUF(int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t rsa, int64_t csa,    \
                            const T *B, int64_t rsb, int64_t csb, T beta, T *C, int64_t rsc, int64_t csc)      \
    {                                                                                                          \
        if (M <= 0 || N <= 0) return true;                                                                     \
        if (K <= 0 || alpha == 0) {                                                                            \
            scale_##SUF(M, N, beta, C, rsc, csc);                                                              \
            return true;                                                                                       \
        }                                                                                                      \
        if (N == 1) {                                                                                          \
            gemv_##SUF(M, K, alpha, A, rsa, csa, B, rsb, beta, C, rsc);                                        \
            return true;                                                                                       \
        }                                                                                                      \
        if (M == 1) { /* C's row = Bᵀ A's row */                                                               \
            gemv_##SUF(N, K, alpha, B, csb, rsb, A, csa, beta, C, csc);                                        \
            return true;                                                                                       \
        }                                                                                                      \
        return false;                                                                                          \
    }
SMALL_IMPL(float, f32)
SMALL_IMPL(double, f64)

/* ------------------------------------------------------------------------------------------------
 * Dispatch
 * ---------------------------------------------------------------------------------------------- */
#ifdef NBI_GEMM_X86
#define PICK(SUF, ...)                                                                                         \
    (nbi_gemm_isa() == NBI_ISA_AVX512 ? SUF##_avx512(__VA_ARGS__)                                             \
     : nbi_gemm_isa() == NBI_ISA_AVX2 ? SUF##_avx2(__VA_ARGS__)                                               \
                                      : SUF##_portable(__VA_ARGS__))
#else
#define PICK(SUF, ...) SUF##_portable(__VA_ARGS__)
#endif

size_t nbi_gemm_workspace(nb_dtype dt, int64_t M, int64_t N, int64_t K)
{
    if (dt == NB_F32) return PICK(nbi_gemm_workspace_f32, M, N, K);
    return PICK(nbi_gemm_workspace_f64, M, N, K);
}

void nbi_gemm_f32(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t rsa, int64_t csa,
                  const float *B, int64_t rsb, int64_t csb, float beta, float *C, int64_t rsc, int64_t csc,
                  void *work)
{
    if (small_f32(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc)) return;
#ifdef NBI_GEMM_X86
    if (N <= NBI_GEMM_NARROW_N && csa == 1 && rsb == 1 && nbi_gemm_isa() == NBI_ISA_AVX512) {
        nbi_gemm_narrow_f32_avx512(M, N, K, alpha, A, rsa, B, csb, beta, C, rsc, csc);
        return;
    }
#endif
    PICK(nbi_gemm_f32, M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, work);
}

void nbi_gemm_f64(int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t rsa, int64_t csa,
                  const double *B, int64_t rsb, int64_t csb, double beta, double *C, int64_t rsc, int64_t csc,
                  void *work)
{
    if (small_f64(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc)) return;
    PICK(nbi_gemm_f64, M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, work);
}

void nbi_gemm(nb_dtype dt, int64_t M, int64_t N, int64_t K, double alpha, const void *A, int64_t rsa, int64_t csa,
              const void *B, int64_t rsb, int64_t csb, double beta, void *C, int64_t rsc, int64_t csc, void *work)
{
    if (dt == NB_F32)
        nbi_gemm_f32(M, N, K, (float)alpha, A, rsa, csa, B, rsb, csb, (float)beta, C, rsc, csc, work);
    else
        nbi_gemm_f64(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, work);
}

/* A batch of products shared out over the pool: each chunk of consecutive batch entries has its own slice of
 * the workspace. Every product is computed as it would be alone, so the thread count changes nothing. */
typedef struct batch_job {
    nb_dtype dt;
    int nbatch;
    const int64_t *shape, *a_stride, *b_stride;
    int64_t M, N, K, rsa, csa, rsb, csb, batch, nchunks;
    const char *a, *b;
    char *c, *work;
    size_t ws;
} batch_job;

static void run_batch(void *ctx, int64_t begin, int64_t end)
{
    const batch_job *j = ctx;
    int64_t es = (int64_t)nb_dtype_size(j->dt);
    for (int64_t chunk = begin; chunk < end; chunk++) {
        for (int64_t i = chunk * j->batch / j->nchunks; i < (chunk + 1) * j->batch / j->nchunks; i++) {
            int64_t off_a = 0, off_b = 0, rest = i; /* batch index i, last dim fastest */
            for (int d = j->nbatch - 1; d >= 0; d--) {
                int64_t k = rest % j->shape[d];
                rest /= j->shape[d];
                off_a += k * j->a_stride[d];
                off_b += k * j->b_stride[d];
            }
            nbi_gemm(j->dt, j->M, j->N, j->K, 1.0, j->a + off_a * es, j->rsa, j->csa, j->b + off_b * es, j->rsb,
                     j->csb, 0.0, j->c + i * j->M * j->N * es, j->N, 1, j->work + (size_t)begin * j->ws);
        }
    }
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

    /* A batch of products each too small to be split is shared out by entries instead. */
    int nt = nbi_num_threads();
    int64_t nchunks = 1;
    if (batch > 1 && nt > 1 && (double)M * (double)N * (double)K * (double)batch >= 1 << 20)
        nchunks = batch < nt ? batch : nt;
    size_t ws = (nbi_gemm_workspace(dt, M, N, K) + 63) & ~(size_t)63;
    void *work = nbi_alloc(ws * (size_t)nchunks, fn);
    if (!work) return false;
    batch_job j = {dt,  nbatch, shape, a_stride, b_stride, M,  N, K, rsa, csa, rsb, csb, batch, nchunks,
                   a,   b,      c,     work,     ws};
    if (nchunks == 1) run_batch(&j, 0, 1);
    else nbi_parallel_for(nchunks, 1, run_batch, &j);
    nbi_free(work, ws * (size_t)nchunks);
    return true;
}
