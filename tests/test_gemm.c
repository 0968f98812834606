/* The GEMM kernels of every instruction set this machine supports, forced in turn, against a naive loop
 * accumulated in double; bit-identical results for 1, 2 and 3 threads; the thread pool itself. */
#include "helpers.h"

#include "kernels_matmul.h"

#include "gemm_check.h"

/* Sizes around every register tile (6, 8, 12, 16, 32 and one more or less), primes, K = 0, and sizes crossing
 * the cache blocks (KC 256, NC 256/512) so that several K slices and column blocks run. */
static const int64_t sizes[][3] = {
    {1, 1, 1},    {2, 3, 1},    {1, 5, 7},     {7, 1, 3},    {6, 16, 8},   {7, 17, 9},   {8, 32, 5},
    {9, 33, 3},   {5, 31, 2},   {13, 15, 17},  {16, 64, 1},  {17, 65, 19}, {23, 29, 31}, {37, 41, 43},
    {47, 53, 11}, {59, 61, 67}, {64, 64, 64},  {65, 67, 63}, {3, 7, 257},  {9, 37, 513}, {12, 520, 5},
    {2, 3, 0},    {0, 4, 5},    {6, 0, 3},     {33, 530, 260},
    /* one row panel of up to 12 rows (B then read in place), and a last panel of 9-12 rows after full ones */
    {10, 66, 300}, {11, 96, 7},  {20, 45, 9},   {28, 33, 12},
};
static const double alpha_beta[][2] = {{1, 0}, {0.5, -1.5}, {-2, 1}, {1, 1}, {0, 0.75}, {0, 0}};

/* The instruction sets to test: every one the machine supports (forcing one it lacks falls back). */
static int supported_isas(nbi_isa *out)
{
    int n = 0;
    for (int isa = NBI_ISA_PORTABLE; isa <= NBI_ISA_AVX512; isa++)
        if (nbi_gemm_set_isa((nbi_isa)isa) == (nbi_isa)isa) out[n++] = (nbi_isa)isa;
        else ck_assert_int_lt(nbi_gemm_set_isa((nbi_isa)isa), isa);
    ck_assert_int_ge(n, 1);
    return n;
}

static void check_all_sizes(int dtype_f64)
{
    nb_generator g;
    nb_generator_seed(&g, 11);
    nbi_isa isas[3];
    int n_isas = supported_isas(isas);
    char msg[256];
    nb_set_num_threads(2);
    for (int k = 0; k < n_isas; k++) {
        nbi_gemm_set_isa(isas[k]);
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
            for (size_t ab = 0; ab < sizeof alpha_beta / sizeof *alpha_beta; ab++)
                for (int la = 0; la < N_LAYOUTS; la++)
                    for (int lb = 0; lb < N_LAYOUTS; lb++)
                        for (int lc = 0; lc < N_LAYOUTS; lc++) {
                            /* the big sizes only in a few combinations, to keep the test quick */
                            if (M * N * K > 20000 && (ab > 1 || lc == STRIDED || (la + lb + lc) % 2)) continue;
                            double alpha = alpha_beta[ab][0], beta = alpha_beta[ab][1];
                            bool ok = dtype_f64 ? check_double(M, N, K, la, lb, lc, alpha, beta, &g, msg, sizeof msg)
                                                : check_float(M, N, K, la, lb, lc, alpha, beta, &g, msg, sizeof msg);
                            ck_assert_msg(ok, "%s %s (M,N,K)=(%lld,%lld,%lld) layouts A %d B %d C %d alpha %g beta %g: %s",
                                          nbi_isa_name(isas[k]), dtype_f64 ? "f64" : "f32", (long long)M,
                                          (long long)N, (long long)K, la, lb, lc, alpha, beta, msg);
                        }
        }
    }
    nbi_gemm_set_isa(NBI_ISA_AUTO);
}

START_TEST(every_isa_f32) { check_all_sizes(0); }
END_TEST

START_TEST(every_isa_f64) { check_all_sizes(1); }
END_TEST

/* NABLA_ISA selects a path when the choice is made again; an unknown or unsupported name does not crash. */
START_TEST(isa_from_environment)
{
    setenv("NABLA_ISA", "portable", 1);
    ck_assert_int_eq(nbi_gemm_set_isa(NBI_ISA_AUTO), NBI_ISA_PORTABLE);
    ck_assert_str_eq(nbi_isa_name(nbi_gemm_isa()), "portable");
    setenv("NABLA_ISA", "avx2", 1);
    ck_assert_int_le(nbi_gemm_set_isa(NBI_ISA_AUTO), NBI_ISA_AVX2);
    setenv("NABLA_ISA", "no-such-isa", 1);
    nbi_isa best = nbi_gemm_set_isa(NBI_ISA_AVX512);
    ck_assert_int_eq(nbi_gemm_set_isa(NBI_ISA_AUTO), best);
    unsetenv("NABLA_ISA");
    ck_assert_int_eq(nbi_gemm_set_isa(NBI_ISA_AUTO), best);
    float a[4] = {1, 2, 3, 4}, c[4];
    void *work = malloc(nbi_gemm_workspace(NB_F32, 2, 2, 2));
    nbi_gemm_f32(2, 2, 2, 1, a, 2, 1, a, 2, 1, 0, c, 2, 1, work);
    free(work);
    ck_assert_float_eq(c[3], 22);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Thread counts: products large enough to be split (by columns, and by rows when C is tall and narrow) give
 * the same bits for 1, 2 and 3 threads.
 * ---------------------------------------------------------------------------------------------- */
#define SAME_BITS(T, GEMM)                                                                                   \
    static void same_bits_##T(int64_t M, int64_t N, int64_t K, enum layout la, enum layout lb, double beta,  \
                              nb_generator *g, const char *isa)                                              \
    {                                                                                                        \
        strided sa = make_layout(la, M, K), sb = make_layout(lb, K, N);                                      \
        T *A = malloc(((size_t)sa.span + 1) * sizeof(T)), *B = malloc(((size_t)sb.span + 1) * sizeof(T));   \
        T *C0 = malloc((size_t)(M * N) * sizeof(T)), *C[3];                                                  \
        for (int64_t i = 0; i <= sa.span; i++) A[i] = (T)uniform(g);                                         \
        for (int64_t i = 0; i <= sb.span; i++) B[i] = (T)uniform(g);                                         \
        for (int64_t i = 0; i < M * N; i++) C0[i] = (T)uniform(g);                                           \
        for (int t = 0; t < 3; t++) {                                                                        \
            nb_set_num_threads(t + 1);                                                                       \
            C[t] = malloc((size_t)(M * N) * sizeof(T));                                                      \
            memcpy(C[t], C0, (size_t)(M * N) * sizeof(T));                                                   \
            void *work = malloc(nbi_gemm_workspace(sizeof(T) == 4 ? NB_F32 : NB_F64, M, N, K));              \
            GEMM(M, N, K, (T)0.75, A, sa.rs, sa.cs, B, sb.rs, sb.cs, (T)beta, C[t], N, 1, work);             \
            free(work);                                                                                      \
        }                                                                                                    \
        for (int t = 1; t < 3; t++)                                                                          \
            ck_assert_msg(memcmp(C[0], C[t], (size_t)(M * N) * sizeof(T)) == 0,                              \
                          "%s %s (%lld,%lld,%lld) layouts %d %d: %d threads differ from 1", isa, #T,         \
                          (long long)M, (long long)N, (long long)K, la, lb, t + 1);                          \
        /* and the product is right (one element checked against a double loop) */                          \
        double dot = 0;                                                                                      \
        for (int64_t p = 0; p < K; p++)                                                                      \
            dot += (double)A[(M - 1) * sa.rs + p * sa.cs] * (double)B[p * sb.rs + (N - 1) * sb.cs];          \
        ck_assert_close(C[0][M * N - 1], 0.75 * dot + beta * (double)C0[M * N - 1], 1e-3);                   \
        for (int t = 0; t < 3; t++) free(C[t]);                                                              \
        free(A);                                                                                             \
        free(B);                                                                                             \
        free(C0);                                                                                            \
    }
SAME_BITS(float, nbi_gemm_f32)
SAME_BITS(double, nbi_gemm_f64)

START_TEST(thread_counts_give_identical_bits)
{
    /* above the 2^20 multiply-adds from which a product is split: by columns, by rows (tall and narrow), and
     * by row pairs (the narrow AVX-512 path, N <= 16, odd M) */
    static const int64_t big[][3] = {{70, 300, 60}, {1400, 20, 40}, {67, 530, 257}, {300, 37, 300},
                                     {2999, 10, 70}};
    nb_generator g;
    nb_generator_seed(&g, 5);
    nbi_isa isas[3];
    int n_isas = supported_isas(isas);
    for (int k = 0; k < n_isas; k++) {
        nbi_gemm_set_isa(isas[k]);
        for (size_t s = 0; s < sizeof big / sizeof *big; s++)
            for (int la = 0; la < 2; la++)
                for (int lb = 0; lb < 2; lb++) {
                    double beta = (la + lb) % 2 ? 0.5 : 0;
                    same_bits_float(big[s][0], big[s][1], big[s][2], la, lb, beta, &g, nbi_isa_name(isas[k]));
                    same_bits_double(big[s][0], big[s][1], big[s][2], la, lb, beta, &g, nbi_isa_name(isas[k]));
                }
    }
    nbi_gemm_set_isa(NBI_ISA_AUTO);
}
END_TEST


/* A batch (one operand broadcast, so it does not fold into one product) shared out by entries. */
START_TEST(batched_products_identical_for_thread_counts)
{
    enum { B0 = 3, B1 = 4, M = 33, N = 45, K = 80 }; /* 2^20 multiply-adds and more in all */
    int64_t shape[4] = {B0, B1, M, N};
    int64_t as[4] = {B1 * M * K, M * K, K, 1}, bs[4] = {0, K * N, 1, K}; /* b transposed, shared over dim 0 */
    nb_generator g;
    nb_generator_seed(&g, 3);
    float *a = malloc(sizeof(float) * B0 * B1 * M * K), *b = malloc(sizeof(float) * B1 * K * N);
    for (int i = 0; i < B0 * B1 * M * K; i++) a[i] = (float)uniform(&g);
    for (int i = 0; i < B1 * K * N; i++) b[i] = (float)uniform(&g);
    float *c[3];
    for (int t = 0; t < 3; t++) {
        nb_set_num_threads(t + 1);
        c[t] = malloc(sizeof(float) * B0 * B1 * M * N);
        ck_assert(nbi_matmul_kernel(NB_F32, 4, shape, K, c[t], a, as, b, bs, "test"));
    }
    for (int t = 1; t < 3; t++)
        ck_assert_msg(memcmp(c[0], c[t], sizeof(float) * B0 * B1 * M * N) == 0, "%d threads differ", t + 1);
    /* entry (2, 3) against a single product */
    float *one = malloc(sizeof(float) * M * N);
    void *work = malloc(nbi_gemm_workspace(NB_F32, M, N, K));
    nbi_gemm_f32(M, N, K, 1, a + 2 * as[0] + 3 * as[1], K, 1, b + 3 * bs[1], 1, K, 0, one, N, 1, work);
    ck_assert(memcmp(one, c[0] + (2 * B1 + 3) * M * N, sizeof(float) * M * N) == 0);
    free(work);
    free(one);
    for (int t = 0; t < 3; t++) free(c[t]);
    free(a);
    free(b);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * The pool
 * ---------------------------------------------------------------------------------------------- */
typedef struct cover {
    int *hits;
    int64_t min_chunk, grain, n;
    _Atomic int bad;
} cover;

static void count_range(void *ctx, int64_t begin, int64_t end)
{
    cover *c = ctx;
    /* every chunk but a lone one holds at least grain items */
    if (end - begin < c->grain && !(begin == 0 && end == c->n)) atomic_store(&c->bad, 1);
    for (int64_t i = begin; i < end; i++) c->hits[i]++;
}

static void nested_range(void *ctx, int64_t begin, int64_t end)
{
    cover *c = ctx;
    for (int64_t i = begin; i < end; i++) {
        cover inner = {c->hits + i * 10, 0, 1, 10, 0};
        nbi_parallel_for(10, 1, count_range, &inner); /* runs inline: no oversubscription, no deadlock */
        if (atomic_load(&inner.bad)) atomic_store(&c->bad, 1);
    }
}

START_TEST(parallel_for_covers_each_index_once)
{
    static const int64_t ns[] = {0, 1, 2, 3, 7, 100, 1001, 65537};
    static const int64_t grains[] = {1, 3, 64, 100000};
    int *hits = malloc(65537 * sizeof(int));
    for (int threads = 1; threads <= 3; threads++) {
        ck_assert_int_eq(nb_set_num_threads(threads), NB_OK);
        ck_assert_int_eq(nb_num_threads(), threads);
        ck_assert_int_eq(nbi_num_threads(), threads);
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof grains / sizeof *grains; b++)
                for (int rep = 0; rep < 20; rep++) {
                    int64_t n = ns[a];
                    memset(hits, 0, 65537 * sizeof(int));
                    cover c = {hits, 0, grains[b], n, 0};
                    nbi_parallel_for(n, grains[b], count_range, &c);
                    int64_t wrong = -1; /* one assertion per call: each passing one costs Check a system call */
                    for (int64_t i = 0; i < n && wrong < 0; i++)
                        if (hits[i] != 1) wrong = i;
                    ck_assert_msg(wrong < 0 && !atomic_load(&c.bad),
                                  "n %lld grain %lld threads %d: index %lld ran %d times, or a chunk below the grain",
                                  (long long)n, (long long)grains[b], threads, (long long)wrong, wrong < 0 ? 1 : hits[wrong]);
                }
        memset(hits, 0, 1000 * sizeof(int));
        cover c = {hits, 0, 1, 100, 0};
        nbi_parallel_for(100, 1, nested_range, &c);
        ck_assert_int_eq(atomic_load(&c.bad), 0);
        int wrong = 0;
        for (int i = 0; i < 1000; i++) wrong += hits[i] != 1;
        ck_assert_int_eq(wrong, 0);
    }
    free(hits);
}
END_TEST

/* NABLA_NUM_THREADS is read on first use: each test runs in a fresh child process (unless CK_FORK=no),
 * where nothing has asked for the thread count yet. */
START_TEST(thread_count_from_environment)
{
    const char *fork_mode = getenv("CK_FORK");
    if (fork_mode && strcmp(fork_mode, "no") == 0) return;
    setenv("NABLA_NUM_THREADS", "3", 1);
    ck_assert_int_eq(nb_num_threads(), 3);
    unsetenv("NABLA_NUM_THREADS");
    ck_assert_int_eq(nb_num_threads(), 3); /* read once */
}
END_TEST

START_TEST(thread_count_errors)
{
    ck_assert_int_eq(nb_set_num_threads(2), NB_OK);
    ck_assert_int_eq(nb_set_num_threads(0), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_set_num_threads", "0");
    ck_assert_int_eq(nb_set_num_threads(-3), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_set_num_threads", "-3");
    ck_assert_int_eq(nb_num_threads(), 2); /* unchanged by the failed calls */
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, every_isa_f32);
    tcase_add_test(tc, every_isa_f64);
    tcase_add_test(tc, isa_from_environment);
    tcase_add_test(tc, thread_counts_give_identical_bits);
    tcase_add_test(tc, batched_products_identical_for_thread_counts);
    tcase_add_test(tc, parallel_for_covers_each_index_once);
    tcase_add_test(tc, thread_count_from_environment);
    tcase_add_test(tc, thread_count_errors);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
