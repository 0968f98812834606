/* A GEMM kernel against a naive loop accumulated in double, shared by test_gemm (every instruction set) and
 * test_matmul. Operands live in buffers larger than the matrix, laid out in one of several ways; C's elements
 * outside the matrix hold a sentinel that must survive. Include after helpers.h and kernels_matmul.h. */
#ifndef NABLA_TESTS_GEMM_CHECK_H
#define NABLA_TESTS_GEMM_CHECK_H

enum layout { ROW_MAJOR, COL_MAJOR, STRIDED, N_LAYOUTS };
#define SENTINEL 12345.0

typedef struct strided {
    int64_t rs, cs, span;
} strided;

static strided make_layout(enum layout l, int64_t rows, int64_t cols)
{
    strided s;
    if (l == ROW_MAJOR) s = (strided){cols + 3, 1, 0};
    else if (l == COL_MAJOR) s = (strided){1, rows + 1, 0};
    else s = (strided){2 * cols + 1, 2, 0}; /* no unit stride at all */
    s.span = rows && cols ? (rows - 1) * s.rs + (cols - 1) * s.cs + 1 : 0;
    return s;
}

static double uniform(nb_generator *g) { return 2 * nb_random_uniform(g) - 1; }

/* Runs one product and compares every element with the naive loop; the tolerance is the classic bound for a
 * K-term dot product. Returns false with a message in msg on the first mismatch. */
#define CHECK_GEMM(T, GEMM, EPS)                                                                            \
    static bool check_##T(int64_t M, int64_t N, int64_t K, enum layout la, enum layout lb, enum layout lc, \
                          double alpha, double beta, nb_generator *g, char *msg, size_t msg_size)           \
    {                                                                                                       \
        strided sa = make_layout(la, M, K), sb = make_layout(lb, K, N), sc = make_layout(lc, M, N);         \
        size_t na = (size_t)sa.span + 1, nbb = (size_t)sb.span + 1, nc = (size_t)sc.span + 1;               \
        T *A = malloc(na * sizeof(T)), *B = malloc(nbb * sizeof(T)), *C = malloc(nc * sizeof(T));           \
        double *C0 = malloc(nc * sizeof(double));                                                           \
        bool *inside = calloc(nc, 1), ok = true;                                                            \
        for (size_t i = 0; i < na; i++) A[i] = (T)uniform(g);                                               \
        for (size_t i = 0; i < nbb; i++) B[i] = (T)uniform(g);                                              \
        for (size_t i = 0; i < nc; i++) C[i] = (T)SENTINEL;                                                 \
        for (int64_t i = 0; i < M; i++)                                                                     \
            for (int64_t j = 0; j < N; j++)                                                                 \
                C[i * sc.rs + j * sc.cs] = beta == 0 ? (T)NAN : (T)uniform(g);                              \
        for (size_t i = 0; i < nc; i++) C0[i] = C[i];                                                       \
        void *work = malloc(nbi_gemm_workspace(sizeof(T) == 4 ? NB_F32 : NB_F64, M, N, K));                 \
        GEMM(M, N, K, (T)alpha, A, sa.rs, sa.cs, B, sb.rs, sb.cs, (T)beta, C, sc.rs, sc.cs, work);          \
        for (int64_t i = 0; i < M && ok; i++)                                                               \
            for (int64_t j = 0; j < N; j++) {                                                               \
                double dot = 0, mag = 0;                                                                    \
                for (int64_t p = 0; p < K; p++) {                                                           \
                    double x = (double)A[i * sa.rs + p * sa.cs] * (double)B[p * sb.rs + j * sb.cs];         \
                    dot += x;                                                                               \
                    mag += fabs(x);                                                                         \
                }                                                                                           \
                size_t at = (size_t)(i * sc.rs + j * sc.cs);                                                \
                double c0 = beta == 0 ? 0 : C0[at];                                                         \
                double want = alpha * dot + beta * c0;                                                      \
                double tol = 4 * (EPS) * ((double)K + 2) * (fabs(alpha) * mag + fabs(beta * c0) + 1e-30);  \
                inside[at] = true;                                                                          \
                if (!(fabs((double)C[at] - want) <= tol)) {                                                 \
                    snprintf(msg, msg_size, "C[%lld,%lld] = %.10g, expected %.10g (tolerance %.3g)",        \
                             (long long)i, (long long)j, (double)C[at], want, tol);                         \
                    ok = false;                                                                             \
                    break;                                                                                  \
                }                                                                                           \
            }                                                                                               \
        for (size_t i = 0; i < nc && ok; i++)                                                               \
            if (!inside[i] && C[i] != (T)SENTINEL) {                                                        \
                snprintf(msg, msg_size, "element %zu of C's buffer, outside the matrix, was written", i);    \
                ok = false;                                                                                 \
            }                                                                                               \
        free(inside);                                                                                       \
        free(work);                                                                                         \
        free(A);                                                                                            \
        free(B);                                                                                            \
        free(C);                                                                                            \
        free(C0);                                                                                           \
        return ok;                                                                                          \
    }
CHECK_GEMM(float, nbi_gemm_f32, 1.2e-7)
CHECK_GEMM(double, nbi_gemm_f64, 2.3e-16)

#endif
