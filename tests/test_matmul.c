/* Matrix product: the gemm kernel against a naive loop, nb_matmul's shapes and values in every torch.matmul
 * case, gradients (first and second order), dtypes, memory and errors. */
#include "helpers.h"

#include "kernels_matmul.h"

/* ------------------------------------------------------------------------------------------------
 * The kernel, through the checker shared with test_gemm.
 * ---------------------------------------------------------------------------------------------- */
#include "gemm_check.h"

static void check_gemm(int dtype_f64, int64_t M, int64_t N, int64_t K, int la, int lb, int lc, double alpha,
                       double beta, nb_generator *g)
{
    char msg[256] = "";
    bool ok = dtype_f64 ? check_double(M, N, K, la, lb, lc, alpha, beta, g, msg, sizeof msg)
                        : check_float(M, N, K, la, lb, lc, alpha, beta, g, msg, sizeof msg);
    ck_assert_msg(ok, "%s (M,N,K)=(%lld,%lld,%lld) layouts A %d B %d C %d alpha %g beta %g: %s",
                  dtype_f64 ? "double" : "float", (long long)M, (long long)N, (long long)K, la, lb, lc, alpha, beta,
                  msg);
}

/* Awkward sizes: 1s, primes, powers of two, and sizes crossing the kernel's blocking (MC 96, KC 256,
 * NC 1024) so that edge tiles, several K slices (accumulating on the first) and several blocks all run. */
static const int64_t gemm_sizes[][3] = {
    {1, 1, 1},  {1, 7, 3},   {5, 1, 4},   {3, 4, 1},    {2, 2, 2},    {7, 13, 5},   {13, 7, 17},
    {4, 8, 9},  {9, 5, 4},   {31, 29, 2}, {64, 64, 64}, {67, 31, 61}, {65, 67, 3},  {5, 7, 300},
    {2, 3, 520}, {130, 9, 3}, {3, 1030, 4}, {0, 3, 4},  {3, 0, 4},    {3, 4, 0},    {0, 0, 0},
};
static const double alpha_beta[][2] = {{1, 0}, {0.5, -1.5}, {-2, 1}, {0, 0.75}, {0, 0}};

START_TEST(gemm_matches_naive_loop)
{
    nb_generator g;
    nb_generator_seed(&g, 7);
    size_t n_sizes = sizeof gemm_sizes / sizeof *gemm_sizes, n_ab = sizeof alpha_beta / sizeof *alpha_beta;
    for (size_t s = 0; s < n_sizes; s++) {
        int64_t M = gemm_sizes[s][0], N = gemm_sizes[s][1], K = gemm_sizes[s][2];
        for (size_t k = 0; k < n_ab; k++)
            for (int la = 0; la < N_LAYOUTS; la++)
                for (int lb = 0; lb < N_LAYOUTS; lb++)
                    for (int lc = 0; lc < 2; lc++) {
                        /* the big sizes only in a few combinations, to keep the test quick */
                        if (M * N * K > 20000 && (k > 1 || (la + lb + lc) % 2)) continue;
                        check_gemm(0, M, N, K, la, lb, lc, alpha_beta[k][0], alpha_beta[k][1], &g);
                        check_gemm(1, M, N, K, la, lb, lc, alpha_beta[k][0], alpha_beta[k][1], &g);
                    }
    }
}
END_TEST

/* Broadcast operands (stride 0) and alpha = 0 (A and B are not read, so their NaN does not matter). */
START_TEST(gemm_zero_strides_and_alpha_zero)
{
    double a_row[3] = {1, 2, 3}, b[3 * 2] = {1, 2, 3, 4, 5, 6}, c[4 * 2];
    void *work = malloc(nbi_gemm_workspace(NB_F64, 4, 2, 3));
    /* every row of A is a_row: rsa = 0 */
    nbi_gemm_f64(4, 2, 3, 1.0, a_row, 0, 1, b, 2, 1, 0.0, c, 2, 1, work);
    for (int i = 0; i < 4; i++) {
        ck_assert_close(c[2 * i], 22, 1e-12);
        ck_assert_close(c[2 * i + 1], 28, 1e-12);
    }
    double nan_a[4 * 3], nan_b[3 * 2];
    for (int i = 0; i < 12; i++) nan_a[i] = NAN;
    for (int i = 0; i < 6; i++) nan_b[i] = NAN;
    nbi_gemm_f64(4, 2, 3, 0.0, nan_a, 3, 1, nan_b, 2, 1, 2.0, c, 2, 1, work);
    ck_assert_close(c[0], 44, 0);
    nbi_gemm_f64(4, 2, 3, 0.0, nan_a, 3, 1, nan_b, 2, 1, 0.0, c, 2, 1, work);
    ck_assert_close(c[7], 0, 0);
    free(work);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * nb_matmul values
 * ---------------------------------------------------------------------------------------------- */
START_TEST(vector_and_matrix_cases)
{
    nb_scope_begin();
    nb_tensor *u = T_F64(NB_SHAPE(3), 1, 2, 3), *v = T_F64(NB_SHAPE(3), 4, 5, 6);
    nb_tensor *m23 = T_F64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    nb_tensor *m32 = T_F64(NB_SHAPE(3, 2), 1, 0, 0, 1, 2, -1);

    nb_tensor *dot = nb_matmul(u, v); /* 1-d . 1-d -> 0-d */
    ck_assert_tensor(dot);
    ck_assert_int_eq(nb_ndim(dot), 0);
    ck_assert_values(dot, 0, 32);

    nb_tensor *mv = nb_matmul(m23, T_F64(NB_SHAPE(3), 1, 0, -1)); /* 2-d . 1-d */
    ck_assert_shape(mv, 2);
    ck_assert_values(mv, 0, -2, -2);

    nb_tensor *vm = nb_matmul(T_F64(NB_SHAPE(2), 1, 2), m23); /* 1-d . 2-d */
    ck_assert_shape(vm, 3);
    ck_assert_values(vm, 0, 9, 12, 15);

    nb_tensor *mm = nb_matmul(m23, m32); /* [[1+0+6, 0+2-3], [4+0+12, 0+5-6]] */
    ck_assert_shape(mm, 2, 2);
    ck_assert_values(mm, 0, 7, -1, 16, -1);
    ck_assert_values(nb_matmul(m32, m23), 0, 1, 2, 3, 4, 5, 6, -2, -1, 0);
    ck_assert_ptr_null(nb_grad_fn_name(mm)); /* nothing needs grad: nothing recorded */
    nb_scope_end();
}
END_TEST

START_TEST(batched_cases)
{
    nb_scope_begin();
    /* two 2x2 blocks: [[1,2],[3,4]] and [[0,1],[1,0]] */
    nb_tensor *a = T_F64(NB_SHAPE(2, 2, 2), 1, 2, 3, 4, 0, 1, 1, 0);
    nb_tensor *b = T_F64(NB_SHAPE(2, 2, 2), 5, 6, 7, 8, 1, 2, 3, 4);
    nb_tensor *ab = nb_matmul(a, b);
    ck_assert_shape(ab, 2, 2, 2);
    ck_assert_values(ab, 0, 19, 22, 43, 50, 3, 4, 1, 2);

    nb_tensor *av = nb_matmul(a, T_F64(NB_SHAPE(2), 1, -1)); /* (2,2,2).(2) -> (2,2) */
    ck_assert_shape(av, 2, 2);
    ck_assert_values(av, 0, -1, -1, -1, 1);

    nb_tensor *va = nb_matmul(T_F64(NB_SHAPE(2), 1, -1), a); /* (2).(2,2,2) -> (2,2) */
    ck_assert_shape(va, 2, 2);
    ck_assert_values(va, 0, -2, -2, -1, 1);

    /* a matrix against a batch, and a batch against a matrix (the folded path) */
    nb_tensor *m = T_F64(NB_SHAPE(2, 2), 1, 1, 0, 2);
    ck_assert_values(nb_matmul(m, b), 0, 12, 14, 14, 16, 4, 6, 6, 8);
    ck_assert_values(nb_matmul(a, m), 0, 1, 5, 3, 11, 0, 2, 1, 1);
    nb_scope_end();
}
END_TEST

/* Reference torch.matmul by the definition, element by element through nb_get. */
static void check_reference(nb_tensor *a, nb_tensor *b, nb_tensor *out, double tol)
{
    int na = nb_ndim(a), nbd = nb_ndim(b);
    int64_t sa[NB_MAX_DIMS + 1], sb[NB_MAX_DIMS + 1]; /* matrix forms of the shapes */
    int ma = na == 1 ? 2 : na, mb = nbd == 1 ? 2 : nbd;
    if (na == 1) sa[0] = 1, sa[1] = nb_size(a, 0);
    else memcpy(sa, nb_shape(a), (size_t)na * sizeof(int64_t));
    if (nbd == 1) sb[0] = nb_size(b, 0), sb[1] = 1;
    else memcpy(sb, nb_shape(b), (size_t)nbd * sizeof(int64_t));
    int nbatch = (ma > mb ? ma : mb) - 2;
    int64_t M = sa[ma - 2], K = sa[ma - 1], N = sb[mb - 1], shape[NB_MAX_DIMS + 2];
    for (int d = 0; d < nbatch; d++) {
        int xa = d - (nbatch - (ma - 2)), xb = d - (nbatch - (mb - 2));
        int64_t da = xa >= 0 ? sa[xa] : 1, db = xb >= 0 ? sb[xb] : 1;
        shape[d] = da == 1 ? db : da;
    }
    shape[nbatch] = M;
    shape[nbatch + 1] = N;
    int64_t total = 1;
    for (int d = 0; d < nbatch + 2; d++) total *= shape[d];
    ck_assert_int_eq(nb_numel(out), total);
    for (int64_t flat = 0; flat < total; flat++) {
        int64_t idx[NB_MAX_DIMS + 2], rest = flat;
        for (int d = nbatch + 1; d >= 0; d--) {
            idx[d] = rest % shape[d];
            rest /= shape[d];
        }
        double want = 0;
        for (int64_t p = 0; p < K; p++) {
            int64_t ia[NB_MAX_DIMS + 1], ib[NB_MAX_DIMS + 1];
            for (int d = 0; d < ma - 2; d++) ia[d] = sa[d] == 1 ? 0 : idx[d + nbatch - (ma - 2)];
            for (int d = 0; d < mb - 2; d++) ib[d] = sb[d] == 1 ? 0 : idx[d + nbatch - (mb - 2)];
            ia[ma - 2] = idx[nbatch], ia[ma - 1] = p;
            ib[mb - 2] = p, ib[mb - 1] = idx[nbatch + 1];
            want += nb_get(a, na == 1 ? ia + 1 : ia) * nb_get(b, ib);
        }
        ck_assert_msg(fabs(nb_get_flat(out, flat) - want) <= tol, "element %lld = %.10g, expected %.10g",
                      (long long)flat, nb_get_flat(out, flat), want);
    }
}

START_TEST(broadcast_batch_dims)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 3);
    nb_tensor *a = nb_randn(NB_SHAPE(2, 1, 3, 4), 0, 1, NB_F64, &g);
    nb_tensor *b = nb_randn(NB_SHAPE(5, 4, 6), 0, 1, NB_F64, &g);
    nb_tensor *c = nb_matmul(a, b);
    ck_assert_shape(c, 2, 5, 3, 6);
    check_reference(a, b, c, 1e-12);

    nb_tensor *v4 = nb_randn(NB_SHAPE(4), 0, 1, NB_F64, &g);
    ck_assert_shape(nb_matmul(a, v4), 2, 1, 3);
    check_reference(a, v4, nb_matmul(a, v4), 1e-12);
    nb_tensor *v3 = nb_randn(NB_SHAPE(3), 0, 1, NB_F64, &g);
    ck_assert_shape(nb_matmul(v3, a), 2, 1, 4);
    check_reference(v3, a, nb_matmul(v3, a), 1e-12);

    /* both sides broadcast: (3,1,2,4).(1,5,4,2) -> (3,5,2,2) */
    nb_tensor *x = nb_randn(NB_SHAPE(3, 1, 2, 4), 0, 1, NB_F64, &g), *y = nb_randn(NB_SHAPE(1, 5, 4, 2), 0, 1, NB_F64, &g);
    ck_assert_shape(nb_matmul(x, y), 3, 5, 2, 2);
    check_reference(x, y, nb_matmul(x, y), 1e-12);

    /* hand-checked: each of the two matrices of p times each of the three of q */
    nb_tensor *p = T_F64(NB_SHAPE(2, 1, 1, 2), 1, 2, 3, 4);
    nb_tensor *q = T_F64(NB_SHAPE(3, 2, 1), 1, 0, 0, 1, 1, 1);
    nb_tensor *pq = nb_matmul(p, q);
    ck_assert_shape(pq, 2, 3, 1, 1);
    ck_assert_values(pq, 0, 1, 2, 3, 3, 4, 7);
    nb_scope_end();
}
END_TEST

/* Stride-0 operands from nb_expand, and a batch that cannot fold into one product. */
START_TEST(broadcast_views)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 5);
    nb_tensor *m = nb_randn(NB_SHAPE(1, 3, 4), 0, 1, NB_F64, &g);
    nb_tensor *expanded = nb_expand(m, NB_SHAPE(2, 3, 4)); /* batch stride 0 */
    nb_tensor *w = nb_randn(NB_SHAPE(4, 5), 0, 1, NB_F64, &g);
    check_reference(expanded, w, nb_matmul(expanded, w), 1e-12);
    nb_tensor *col = nb_expand(nb_randn(NB_SHAPE(4, 1), 0, 1, NB_F64, &g), NB_SHAPE(4, 5)); /* column stride 0 */
    check_reference(expanded, col, nb_matmul(expanded, col), 1e-12);
    nb_tensor *x = nb_randn(NB_SHAPE(2, 6, 4), 0, 1, NB_F64, &g);
    check_reference(x, col, nb_matmul(x, col), 1e-12);
    nb_tensor *rows = nb_expand(nb_randn(NB_SHAPE(2, 1, 4), 0, 1, NB_F64, &g), NB_SHAPE(2, 3, 4)); /* row stride 0 */
    check_reference(rows, w, nb_matmul(rows, w), 1e-12);
    nb_scope_end();
}
END_TEST

/* Transposed views (the layouts every backward produces). */
START_TEST(transposed_operands)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 6);
    nb_tensor *big = nb_randn(NB_SHAPE(7, 9), 0, 1, NB_F64, &g);
    nb_tensor *t = nb_transpose(big, 0, 1);
    ck_assert_tensor(t);
    check_reference(t, big, nb_matmul(t, big), 1e-11);
    check_reference(big, t, nb_matmul(big, t), 1e-11);
    nb_tensor *bt = nb_transpose(nb_randn(NB_SHAPE(2, 9, 3), 0, 1, NB_F64, &g), 1, 2); /* (2, 3, 9) */
    ck_assert_tensor(bt);
    check_reference(bt, t, nb_matmul(bt, t), 1e-11);
    nb_tensor *perm = nb_transpose(nb_randn(NB_SHAPE(3, 2, 9), 0, 1, NB_F64, &g), 0, 1); /* (2, 3, 9), batch strided */
    ck_assert_tensor(perm);
    check_reference(perm, t, nb_matmul(perm, t), 1e-11);
    nb_scope_end();
}
END_TEST

START_TEST(f32_and_mixed_dtypes)
{
    nb_scope_begin();
    nb_tensor *a = T_F32(NB_SHAPE(2, 2), 1, 2, 3, 4);
    nb_tensor *b = T_F32(NB_SHAPE(2, 2), 0.5f, 0, 0, 0.25f);
    nb_tensor *c = nb_matmul(a, b);
    ck_assert_int_eq(nb_dtype_of(c), NB_F32);
    ck_assert_values(c, 0, 0.5, 0.5, 1.5, 1);

    nb_tensor *d = T_F64(NB_SHAPE(2), 1, -1);
    nb_set_requires_grad(a, true);
    nb_tensor *mixed = nb_matmul(a, d);
    ck_assert_int_eq(nb_dtype_of(mixed), NB_F64);
    ck_assert_values(mixed, 0, -1, -1);
    ck_assert_str_eq(nb_grad_fn_name(mixed), "matmul");
    /* the gradient of the f32 operand comes back in f32: d(sum a.d)/da[i][j] = d[j] */
    ck_assert_ok(nb_backward_ex(mixed, nb_ones(NB_SHAPE(2), NB_F64), NB_BACKWARD_DEFAULT));
    ck_assert_int_eq(nb_dtype_of(nb_grad(a)), NB_F32);
    ck_assert_values(nb_grad(a), 0, 1, -1, 1, -1);

    /* a large f32 product stays accurate relative to f64 (accumulation in f32, as BLAS) */
    nb_generator g;
    nb_generator_seed(&g, 11);
    nb_tensor *x = nb_rand(NB_SHAPE(33, 70), -1, 1, NB_F64, &g), *y = nb_rand(NB_SHAPE(70, 29), -1, 1, NB_F64, &g);
    nb_tensor *exact = nb_matmul(x, y);
    nb_tensor *single = nb_matmul(nb_to_dtype(x, NB_F32), nb_to_dtype(y, NB_F32));
    for (int64_t i = 0; i < nb_numel(exact); i++)
        ck_assert_close(nb_get_flat(single, i), nb_get_flat(exact, i), 1e-4);
    nb_scope_end();
}
END_TEST

START_TEST(empty_operands)
{
    /* operands from nb_zeros: nb_ones/nb_full write one element into an empty tensor (tensor.c fill_value) */
    nb_scope_begin();
    nb_tensor *z = nb_matmul(nb_zeros(NB_SHAPE(2, 0), NB_F64), nb_zeros(NB_SHAPE(0, 3), NB_F64));
    ck_assert_shape(z, 2, 3);
    ck_assert_values(z, 0, 0, 0, 0, 0, 0, 0); /* an empty sum is 0 (the output is fresh memory: written, not left) */
    ck_assert_shape(nb_matmul(nb_zeros(NB_SHAPE(0, 3), NB_F32), nb_zeros(NB_SHAPE(3, 2), NB_F32)), 0, 2);
    ck_assert_shape(nb_matmul(nb_zeros(NB_SHAPE(0, 2, 3), NB_F32), nb_zeros(NB_SHAPE(3, 2), NB_F32)), 0, 2, 2);
    ck_assert_values(nb_matmul(nb_zeros(NB_SHAPE(0), NB_F64), nb_zeros(NB_SHAPE(0), NB_F64)), 0, 0);
    nb_scope_end();
}
END_TEST

/* Without a scope the caller owns the result: the converted operand must not outlive it. */
START_TEST(no_leaked_temporaries)
{
    int64_t base = nb_memory_stats_get().live_tensors;
    nb_tensor *a = nb_ones(NB_SHAPE(2, 3), NB_F32), *b = nb_ones(NB_SHAPE(3), NB_F64);
    nb_tensor *c = nb_matmul(a, b); /* a is converted to f64 on the way */
    ck_assert_values(c, 0, 3, 3);
    ck_assert_ok(nb_free(c));
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, base + 2);
    nb_set_requires_grad(a, true); /* now the result's graph holds the converted a until the result goes */
    c = nb_matmul(a, b);
    ck_assert_tensor(c);
    ck_assert_ok(nb_free(c));
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, base + 2);
    ck_assert_ok(nb_free(a));
    ck_assert_ok(nb_free(b));
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, base);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Gradients
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *f_matmul(nb_tensor *const *x, void *u) { (void)u; return nb_matmul(x[0], x[1]); }
/* Non-contiguous operands: x[0] is stored transposed (its transpose is the operand). */
static nb_tensor *f_matmul_ta(nb_tensor *const *x, void *u) { (void)u; return nb_matmul(nb_transpose(x[0], -1, -2), x[1]); }
static nb_tensor *f_matmul_tb(nb_tensor *const *x, void *u) { (void)u; return nb_matmul(x[0], nb_transpose(x[1], -1, -2)); }
/* Both operands the same tensor: gradients from both sides add up. */
static nb_tensor *f_square(nb_tensor *const *x, void *u) { (void)u; return nb_matmul(x[0], x[0]); }

static void check_pair(nb_function f, int na, const int64_t *sa, int nbd, const int64_t *sb, uint64_t seed)
{
    nb_tensor *x[2] = {nbt_leaf(na, sa, seed), nbt_leaf(nbd, sb, seed + 100)};
    char s0[64], s1[64];
    nb_shape_str(x[0], s0, sizeof s0);
    nb_shape_str(x[1], s1, sizeof s1);
    nb_status st = nb_gradcheck(f, NULL, 2, x, NULL);
    ck_assert_msg(st == NB_OK, "gradcheck with shapes %s and %s: %s", s0, s1, nb_last_error());
    st = nb_gradgradcheck(f, NULL, 2, x, NULL);
    ck_assert_msg(st == NB_OK, "gradgradcheck with shapes %s and %s: %s", s0, s1, nb_last_error());
}

START_TEST(gradients_vector_and_matrix)
{
    nb_scope_begin();
    check_pair(f_matmul, NB_SHAPE(4), NB_SHAPE(4), 1);       /* dot */
    check_pair(f_matmul, NB_SHAPE(3, 4), NB_SHAPE(4), 2);    /* matrix . vector */
    check_pair(f_matmul, NB_SHAPE(4), NB_SHAPE(4, 3), 3);    /* vector . matrix */
    check_pair(f_matmul, NB_SHAPE(3, 4), NB_SHAPE(4, 2), 4); /* matrix . matrix */
    check_pair(f_matmul, NB_SHAPE(1, 1), NB_SHAPE(1, 5), 5);
    nb_tensor *sq[1] = {nbt_leaf(NB_SHAPE(3, 3), 6)};
    ck_assert_gradcheck(f_square, NULL, 1, sq, true);
    nb_scope_end();
}
END_TEST

START_TEST(gradients_batched_and_broadcast)
{
    nb_scope_begin();
    check_pair(f_matmul, NB_SHAPE(2, 3, 4), NB_SHAPE(2, 4, 2), 10);    /* plain batch */
    check_pair(f_matmul, NB_SHAPE(2, 3, 4), NB_SHAPE(4, 2), 11);       /* batch . matrix (folded) */
    check_pair(f_matmul, NB_SHAPE(2, 3, 4), NB_SHAPE(4), 12);          /* batch . vector (folded) */
    check_pair(f_matmul, NB_SHAPE(3, 4), NB_SHAPE(2, 4, 2), 13);       /* matrix . batch */
    check_pair(f_matmul, NB_SHAPE(3), NB_SHAPE(2, 3, 2), 14);          /* vector . batch */
    check_pair(f_matmul, NB_SHAPE(2, 1, 2, 3), NB_SHAPE(3, 3, 2), 15); /* broadcast both ways */
    check_pair(f_matmul, NB_SHAPE(1, 2, 3), NB_SHAPE(2, 1, 3, 2), 16);
    nb_scope_end();
}
END_TEST

START_TEST(gradients_non_contiguous)
{
    nb_scope_begin();
    check_pair(f_matmul_ta, NB_SHAPE(4, 3), NB_SHAPE(4, 2), 20);       /* aᵀ b */
    check_pair(f_matmul_tb, NB_SHAPE(3, 4), NB_SHAPE(2, 4), 21);       /* a bᵀ */
    check_pair(f_matmul_ta, NB_SHAPE(2, 4, 3), NB_SHAPE(4, 2), 22);    /* batch of aᵀ, b shared */
    check_pair(f_matmul_tb, NB_SHAPE(2, 1, 3, 2), NB_SHAPE(3, 4, 2), 23);
    check_pair(f_matmul_tb, NB_SHAPE(4), NB_SHAPE(2, 3, 4), 24);       /* vector . batch of bᵀ */
    nb_scope_end();
}
END_TEST

/* d(sum(a b))/da = 1 bᵀ: row sums of b in every row; d/db = aᵀ 1: column sums of a in every column. */
START_TEST(gradient_values)
{
    nb_scope_begin();
    nb_tensor *a = T_F64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6), *b = T_F64(NB_SHAPE(3, 2), 1, 2, 3, 4, 5, 6);
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    nb_tensor *c = nb_matmul(a, b);
    ck_assert_ok(nb_backward_ex(c, nb_ones(NB_SHAPE(2, 2), NB_F64), NB_BACKWARD_DEFAULT));
    ck_assert_values(nb_grad(a), 0, 3, 7, 11, 3, 7, 11);
    ck_assert_values(nb_grad(b), 0, 5, 5, 7, 7, 9, 9);
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------------------------- */
START_TEST(errors)
{
    nb_scope_begin();
    nb_tensor *m34 = nb_zeros(NB_SHAPE(3, 4), NB_F32), *m56 = nb_zeros(NB_SHAPE(5, 6), NB_F32);
    ck_assert_ptr_null(nb_matmul(m34, m56));
    ck_assert_error(NB_ERR_SHAPE, "nb_matmul: shapes (3, 4) and (5, 6) cannot be multiplied: 4 != 5");

    ck_assert_ptr_null(nb_matmul(nb_zeros(NB_SHAPE(3), NB_F64), nb_zeros(NB_SHAPE(4), NB_F64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_matmul", "(3)", "(4)", "3 != 4");
    ck_assert_ptr_null(nb_matmul(m34, nb_zeros(NB_SHAPE(3), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_matmul", "(3, 4)", "(3)", "4 != 3");
    ck_assert_ptr_null(nb_matmul(nb_zeros(NB_SHAPE(4), NB_F32), nb_zeros(NB_SHAPE(2, 3, 5), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_matmul", "(4)", "(2, 3, 5)", "4 != 3");

    ck_assert_ptr_null(nb_matmul(nb_zeros(NB_SHAPE(2, 3, 4), NB_F32), nb_zeros(NB_SHAPE(3, 4, 5), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_matmul", "batch", "(2, 3, 4)", "(3, 4, 5)", "2 != 3");

    ck_assert_ptr_null(nb_matmul(nb_scalar(2, NB_F32), m34));
    ck_assert_error(NB_ERR_SHAPE, "nb_matmul", "at least 1-d", "()", "(3, 4)");
    ck_assert_ptr_null(nb_matmul(m34, nb_scalar(2, NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_matmul", "(3, 4)", "()");

    ck_assert_ptr_null(nb_matmul(nb_zeros(NB_SHAPE(2, 2), NB_I64), nb_zeros(NB_SHAPE(2, 2), NB_F32)));
    ck_assert_error(NB_ERR_DTYPE, "nb_matmul", "i64", "(2, 2)");
    ck_assert_ptr_null(nb_matmul(m34, nb_zeros(NB_SHAPE(4), NB_BOOL)));
    ck_assert_error(NB_ERR_DTYPE, "nb_matmul", "bool", "(4)");

    nb_clear_error();
    ck_assert_ptr_null(nb_matmul(NULL, m34));
    ck_assert_error(NB_ERR_NULL, "nb_matmul", "a is NULL");
    nb_clear_error();
    ck_assert_ptr_null(nb_matmul(m34, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_matmul", "b is NULL");

    nb_tensor *gone = nb_zeros(NB_SHAPE(4, 2), NB_F32);
    nb_free(gone);
    ck_assert_ptr_null(nb_matmul(m34, gone));
    ck_assert_error(NB_ERR_FREED, "nb_matmul");

    /* the first error of an expression survives */
    ck_assert_ptr_null(nb_matmul(nb_matmul(m34, m56), m34));
    ck_assert_error(NB_ERR_SHAPE, "(3, 4) and (5, 6)");
    nb_scope_end();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("matmul");
    TCase *tc = tcase_create("matmul");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, gemm_matches_naive_loop);
    tcase_add_test(tc, gemm_zero_strides_and_alpha_zero);
    tcase_add_test(tc, vector_and_matrix_cases);
    tcase_add_test(tc, batched_cases);
    tcase_add_test(tc, broadcast_batch_dims);
    tcase_add_test(tc, broadcast_views);
    tcase_add_test(tc, transposed_operands);
    tcase_add_test(tc, f32_and_mixed_dtypes);
    tcase_add_test(tc, empty_operands);
    tcase_add_test(tc, no_leaked_temporaries);
    tcase_add_test(tc, gradients_vector_and_matrix);
    tcase_add_test(tc, gradients_batched_and_broadcast);
    tcase_add_test(tc, gradients_non_contiguous);
    tcase_add_test(tc, gradient_values);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
