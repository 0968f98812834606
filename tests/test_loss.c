/* Losses and penalties: values with every reduction against PyTorch's (tests/reference/loss_reference.py prints
 * the numbers hard-coded here under the same names), gradients against PyTorch's and by finite differences
 * (first and second order), extreme logits, errors and memory. */
#include "helpers.h"

static int64_t live_tensors(void) { return nb_memory_stats_get().live_tensors; }

/* CALL, an expression using the variable R, checked with R = none (elementwise values), sum and mean (0-d). */
#define ck_assert_reductions(CALL, tol, sum_v, mean_v, ...)                                           \
    do {                                                                                              \
        nb_reduction R = NB_REDUCTION_NONE;                                                           \
        ck_assert_values(CALL, tol, __VA_ARGS__);                                                     \
        R = NB_REDUCTION_SUM;                                                                         \
        nb_tensor *ck_s_ = (CALL);                                                                    \
        ck_assert_values(ck_s_, tol, sum_v);                                                          \
        ck_assert_int_eq(nb_ndim(ck_s_), 0);                                                          \
        R = NB_REDUCTION_MEAN;                                                                        \
        nb_tensor *ck_m_ = (CALL);                                                                    \
        ck_assert_values(ck_m_, tol, mean_v);                                                         \
        ck_assert_int_eq(nb_ndim(ck_m_), 0);                                                          \
    } while (0)

/* An f64 leaf of uniform values in [lo, hi) requiring grad. */
static nb_tensor *uniform_leaf(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed)
{
    nb_generator g;
    nb_generator_seed(&g, seed);
    nb_tensor *t = nb_rand(ndim, shape, lo, hi, NB_F64, &g);
    nb_set_requires_grad(t, true);
    return t;
}

static nb_tensor *requiring_grad(nb_tensor *t)
{
    nb_set_requires_grad(t, true);
    return t;
}

/* The regression inputs of loss_reference.py: d = x - y = 0.5, -0.2, 1.5, -1.1, 0.1, -1.6. */
#define REG_X T_F64(NB_SHAPE(2, 3), 0.5, -1.2, 2.0, 0.3, 1.5, -0.7)
#define REG_Y T_F64(NB_SHAPE(2, 3), 0.0, -1.0, 0.5, 1.4, 1.4, 0.9)

/* ------------------------------------------------------------------------------------------------
 * Regression losses
 * ---------------------------------------------------------------------------------------------- */
START_TEST(regression_values_match_pytorch)
{
    nb_scope_begin();
    nb_tensor *x = REG_X, *y = REG_Y;
    const double tol = 1e-12;
    ck_assert_reductions(nb_mse_loss(x, y, R), tol, 6.3200000000000012, 1.0533333333333335, 0.25,
                         0.03999999999999998, 2.25, 1.2099999999999997, 0.010000000000000018, 2.5600000000000005);
    ck_assert_reductions(nb_l1_loss(x, y, R), tol, 5, 0.83333333333333337, 0.5, 0.19999999999999996, 1.5,
                         1.0999999999999999, 0.10000000000000009, 1.6000000000000001);
    ck_assert_reductions(nb_smooth_l1_loss(x, y, 1.0, R), tol, 2.8499999999999996, 0.47499999999999992, 0.125,
                         0.01999999999999999, 1, 0.59999999999999987, 0.0050000000000000088, 1.1000000000000001);
    ck_assert_reductions(nb_smooth_l1_loss(x, y, 0.5, R), tol, 3.75, 0.625, 0.25, 0.03999999999999998, 1.25,
                         0.84999999999999987, 0.010000000000000018, 1.3500000000000001);
    /* beta 0 is the L1 loss */
    ck_assert_reductions(nb_smooth_l1_loss(x, y, 0.0, R), tol, 5, 0.83333333333333337, 0.5, 0.19999999999999996,
                         1.5, 1.0999999999999999, 0.10000000000000009, 1.6000000000000001);
    ck_assert_reductions(nb_huber_loss(x, y, 1.0, R), tol, 2.8499999999999996, 0.47499999999999992, 0.125,
                         0.01999999999999999, 1, 0.59999999999999987, 0.0050000000000000088, 1.1000000000000001);
    ck_assert_reductions(nb_huber_loss(x, y, 0.6, R), tol, 2.1299999999999999, 0.35499999999999998, 0.125,
                         0.01999999999999999, 0.71999999999999997, 0.47999999999999987, 0.0050000000000000088,
                         0.78000000000000003);
    /* none keeps the input's shape */
    ck_assert_shape(nb_huber_loss(x, y, 0.6, NB_REDUCTION_NONE), 2, 3);
    nb_scope_end();
}
END_TEST

START_TEST(regression_dtypes)
{
    nb_scope_begin();
    nb_tensor *x = T_F32(NB_SHAPE(2, 3), 0.5f, -1.2f, 2.0f, 0.3f, 1.5f, -0.7f);
    nb_tensor *y = T_F32(NB_SHAPE(2, 3), 0.0f, -1.0f, 0.5f, 1.4f, 1.4f, 0.9f);
    nb_tensor *l = nb_mse_loss(x, y, NB_REDUCTION_MEAN);
    ck_assert_int_eq(nb_dtype_of(l), NB_F32);
    ck_assert_values(l, 1e-6, 1.0533333333333335);
    ck_assert_int_eq(nb_dtype_of(nb_smooth_l1_loss(x, y, 0.5, NB_REDUCTION_SUM)), NB_F32);
    ck_assert_values(nb_smooth_l1_loss(x, y, 0.5, NB_REDUCTION_SUM), 1e-5, 3.75);
    /* mixed float dtypes promote, as every binary op does */
    nb_tensor *m = nb_l1_loss(x, REG_Y, NB_REDUCTION_SUM);
    ck_assert_int_eq(nb_dtype_of(m), NB_F64);
    ck_assert_values(m, 1e-6, 5);
    /* an empty batch averages to NaN, as in PyTorch */
    nb_tensor *e = nb_zeros(NB_SHAPE(0, 3), NB_F64);
    ck_assert(isnan(nb_item(nb_mse_loss(e, e, NB_REDUCTION_MEAN))));
    ck_assert_values(nb_mse_loss(e, e, NB_REDUCTION_SUM), 0, 0);
    nb_scope_end();
}
END_TEST

static nb_tensor *f_mse(nb_tensor *const *x, void *u) { return nb_mse_loss(x[0], x[1], *(nb_reduction *)u); }
static nb_tensor *f_l1(nb_tensor *const *x, void *u) { return nb_l1_loss(x[0], x[1], *(nb_reduction *)u); }
static nb_tensor *f_smooth(nb_tensor *const *x, void *u) { return nb_smooth_l1_loss(x[0], x[1], 0.7, *(nb_reduction *)u); }
static nb_tensor *f_huber(nb_tensor *const *x, void *u) { return nb_huber_loss(x[0], x[1], 0.8, *(nb_reduction *)u); }
/* the same losses on non-contiguous views: a transposed input and a strided slice of the target */
static nb_tensor *f_mse_strided(nb_tensor *const *x, void *u)
{
    return nb_mse_loss(nb_transpose(x[0], 0, 1), nb_slice(x[1], 1, 0, INT64_MAX, 2), *(nb_reduction *)u);
}
static nb_tensor *f_huber_strided(nb_tensor *const *x, void *u)
{
    return nb_huber_loss(nb_transpose(x[0], 0, 1), nb_slice(x[1], 1, 0, INT64_MAX, 2), 0.8, *(nb_reduction *)u);
}

START_TEST(regression_gradients)
{
    nb_scope_begin();
    /* inputs and targets both differentiable, scaled so that |d| falls on both sides of beta and delta */
    nb_tensor *x[2] = {nbt_leaf(NB_SHAPE(3, 4), 11), nbt_leaf(NB_SHAPE(3, 4), 12)};
    nb_tensor *xs[2] = {nbt_leaf(NB_SHAPE(4, 3), 13), nbt_leaf(NB_SHAPE(3, 8), 14)};
    const nb_reduction rs[3] = {NB_REDUCTION_MEAN, NB_REDUCTION_SUM, NB_REDUCTION_NONE};
    for (int i = 0; i < 3; i++) {
        nb_reduction r = rs[i];
        ck_assert_gradcheck(f_mse, &r, 2, x, true);
        ck_assert_gradcheck(f_l1, &r, 2, x, true);
        ck_assert_gradcheck(f_smooth, &r, 2, x, true);
        ck_assert_gradcheck(f_huber, &r, 2, x, true);
        ck_assert_gradcheck(f_mse_strided, &r, 2, xs, true);
        ck_assert_gradcheck(f_huber_strided, &r, 2, xs, true);
    }
    nb_scope_end();
}
END_TEST

START_TEST(regression_gradient_values)
{
    nb_scope_begin();
    nb_tensor *x = requiring_grad(REG_X), *y = requiring_grad(REG_Y);
    /* mse mean: 2 d / n; the target gets the opposite */
    ck_assert_ok(nb_backward(nb_mse_loss(x, y, NB_REDUCTION_MEAN)));
    ck_assert_values(nb_grad(x), 1e-12, 1.0 / 6, -0.4 / 6, 3.0 / 6, -2.2 / 6, 0.2 / 6, -3.2 / 6);
    ck_assert_values(nb_grad(y), 1e-12, -1.0 / 6, 0.4 / 6, -3.0 / 6, 2.2 / 6, -0.2 / 6, 3.2 / 6);
    nb_zero_grad(x);
    /* huber delta 0.6, sum: d inside, clip(d, -delta, delta) outside */
    ck_assert_ok(nb_backward(nb_huber_loss(x, y, 0.6, NB_REDUCTION_SUM)));
    ck_assert_values(nb_grad(x), 1e-12, 0.5, -0.2, 0.6, -0.6, 0.1, -0.6);
    nb_zero_grad(x);
    /* smooth L1 beta 0.5, sum: d / beta inside, sign(d) outside */
    ck_assert_ok(nb_backward(nb_smooth_l1_loss(x, y, 0.5, NB_REDUCTION_SUM)));
    ck_assert_values(nb_grad(x), 1e-12, 1, -0.4, 1, -1, 0.2, -1);
    nb_zero_grad(x);
    /* l1 at d = 0: subgradient 0, as PyTorch */
    ck_assert_ok(nb_backward(nb_l1_loss(x, nb_detach(x), NB_REDUCTION_SUM)));
    ck_assert_values(nb_grad(x), 0, 0, 0, 0, 0, 0, 0);
    nb_scope_end();
}
END_TEST

START_TEST(regression_errors)
{
    nb_scope_begin();
    nb_tensor *x = REG_X, *row = T_F64(NB_SHAPE(3), 1, 2, 3);
    /* no broadcasting, unlike PyTorch (which warns) */
    ck_assert_ptr_null(nb_mse_loss(x, row, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_SHAPE, "nb_mse_loss", "(2, 3)", "(3)", "do not broadcast");
    ck_assert_ptr_null(nb_l1_loss(nb_zeros(NB_SHAPE(4, 1), NB_F32), nb_zeros(NB_SHAPE(4), NB_F32), NB_REDUCTION_SUM));
    ck_assert_error(NB_ERR_SHAPE, "nb_l1_loss", "(4, 1)", "(4)");
    ck_assert_ptr_null(nb_huber_loss(row, x, 1.0, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_SHAPE, "nb_huber_loss", "input of shape (3)", "target of shape (2, 3)");
    ck_assert_ptr_null(nb_smooth_l1_loss(row, x, 1.0, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_SHAPE, "nb_smooth_l1_loss", "(3)", "(2, 3)");
    /* integer inputs and targets */
    nb_tensor *ints = T_I64(NB_SHAPE(3), 1, 2, 3);
    ck_assert_ptr_null(nb_mse_loss(ints, row, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_DTYPE, "nb_mse_loss", "input", "i64");
    ck_assert_ptr_null(nb_mse_loss(row, ints, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_DTYPE, "nb_mse_loss", "target", "i64");
    /* parameters */
    ck_assert_ptr_null(nb_smooth_l1_loss(x, x, -1, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_ARG, "nb_smooth_l1_loss", "beta", "-1");
    ck_assert_ptr_null(nb_smooth_l1_loss(x, x, NAN, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_ARG, "nb_smooth_l1_loss", "beta", "nan");
    ck_assert_ptr_null(nb_huber_loss(x, x, 0, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_ARG, "nb_huber_loss", "delta", "0");
    ck_assert_ptr_null(nb_huber_loss(x, x, INFINITY, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_ARG, "nb_huber_loss", "delta", "inf");
    ck_assert_ptr_null(nb_mse_loss(x, x, (nb_reduction)7));
    ck_assert_error(NB_ERR_ARG, "nb_mse_loss", "reduction 7");
    /* NULL propagates without replacing the first message */
    nb_clear_error();
    ck_assert_ptr_null(nb_l1_loss(x, NULL, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_NULL, "nb_l1_loss", "target");
    ck_assert_ptr_null(nb_mse_loss(nb_add(x, nb_zeros(NB_SHAPE(4), NB_F64)), x, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_SHAPE, "nb_add");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Binary cross-entropy
 * ---------------------------------------------------------------------------------------------- */
START_TEST(bce_values_match_pytorch)
{
    nb_scope_begin();
    /* probabilities 0 and 1 included: the logs are clamped at -100 */
    nb_tensor *p = T_F64(NB_SHAPE(2, 3), 0.2, 0.9, 0.5, 0.0, 1.0, 0.7);
    nb_tensor *y = T_F64(NB_SHAPE(2, 3), 0.0, 1.0, 1.0, 1.0, 0.0, 0.3);
    nb_tensor *w = T_F64(NB_SHAPE(3), 1.0, 2.0, 0.5);
    nb_tensor *wcol = T_F64(NB_SHAPE(2, 1), 2.0, 0.5);
    const double tol = 1e-10;
    ck_assert_reductions(nb_bce_loss(p, y, NULL, R), tol, 201.97143469374174, 33.66190578229029,
                         0.22314355131420971, 0.10536051565782628, 0.69314718055994529, 100, 100,
                         0.94978344620977484);
    ck_assert_reductions(nb_bce_loss(p, y, w, R), tol, 301.2553298960147, 50.209221649335781, 0.22314355131420971,
                         0.21072103131565256, 0.34657359027997264, 100, 200, 0.47489172310488742);
    ck_assert_reductions(nb_bce_loss(p, y, wcol, R), tol, 102.51819421816884, 17.08636570302814,
                         0.44628710262841942, 0.21072103131565256, 1.3862943611198906, 50, 50, 0.47489172310488742);
    /* f32 */
    nb_tensor *l32 = nb_bce_loss(nb_to_dtype(p, NB_F32), nb_to_dtype(y, NB_F32), NULL, NB_REDUCTION_SUM);
    ck_assert_int_eq(nb_dtype_of(l32), NB_F32);
    ck_assert_values(l32, 1e-4, 201.97143469374174);
    nb_scope_end();
}
END_TEST

START_TEST(bce_gradients)
{
    nb_scope_begin();
    nb_tensor *y = T_F64(NB_SHAPE(2, 3), 0.0, 1.0, 1.0, 1.0, 0.0, 0.3);
    nb_tensor *w = T_F64(NB_SHAPE(3), 1.0, 2.0, 0.5);
    nb_tensor *p = requiring_grad(T_F64(NB_SHAPE(2, 3), 0.2, 0.9, 0.5, 0.05, 0.95, 0.7));
    ck_assert_ok(nb_backward(nb_bce_loss(p, y, w, NB_REDUCTION_MEAN)));
    ck_assert_values(nb_grad(p), 1e-12, 0.20833333333333329, -0.37037037037037041, -0.16666666666666666,
                     -3.3333333333333335, 6.6666666666666607, 0.15873015873015869);
    /* at 0 and 1 the clamped log is constant: a zero gradient (finite, where PyTorch's eps formula gives +-1e12) */
    nb_tensor *edge = requiring_grad(T_F64(NB_SHAPE(4), 0.0, 1.0, 0.0, 1.0));
    ck_assert_ok(nb_backward(nb_bce_loss(edge, T_F64(NB_SHAPE(4), 1, 0, 0, 1), NULL, NB_REDUCTION_SUM)));
    ck_assert_values(nb_grad(edge), 0, 0, 0, 1, -1);
    nb_scope_end();
}
END_TEST

static nb_tensor *f_bce(nb_tensor *const *x, void *u) { return nb_bce_loss(x[0], x[1], x[2], *(nb_reduction *)u); }
static nb_tensor *f_bcel(nb_tensor *const *x, void *u)
{
    return nb_bce_with_logits_loss(x[0], x[1], x[2], x[3], *(nb_reduction *)u);
}
static nb_tensor *f_bcel_plain(nb_tensor *const *x, void *u)
{
    return nb_bce_with_logits_loss(nb_transpose(x[0], 0, 1), x[1], NULL, NULL, *(nb_reduction *)u);
}

START_TEST(bce_gradchecks)
{
    nb_scope_begin();
    /* probabilities, targets and weights all differentiable; probabilities kept away from 0 and 1 */
    nb_tensor *b[3] = {uniform_leaf(NB_SHAPE(2, 3), 0.1, 0.9, 21), uniform_leaf(NB_SHAPE(2, 3), 0, 1, 22),
                       uniform_leaf(NB_SHAPE(3), 0.5, 2, 23)};
    /* logits (scaled up to cover the tails), targets, weight (2, 1) and pos_weight (3) */
    nb_tensor *l[4] = {requiring_grad(nb_detach(nb_mul_scalar(nbt_leaf(NB_SHAPE(2, 3), 24), 3))),
                       uniform_leaf(NB_SHAPE(2, 3), 0, 1, 25), uniform_leaf(NB_SHAPE(2, 1), 0.5, 2, 26),
                       uniform_leaf(NB_SHAPE(3), 0.5, 3, 27)};
    nb_tensor *lt[2] = {nbt_leaf(NB_SHAPE(3, 2), 28), uniform_leaf(NB_SHAPE(2, 3), 0, 1, 29)};
    const nb_reduction rs[3] = {NB_REDUCTION_MEAN, NB_REDUCTION_SUM, NB_REDUCTION_NONE};
    for (int i = 0; i < 3; i++) {
        nb_reduction r = rs[i];
        ck_assert_gradcheck(f_bce, &r, 3, b, true);
        ck_assert_gradcheck(f_bcel, &r, 4, l, true);
        ck_assert_gradcheck(f_bcel_plain, &r, 2, lt, true);
    }
    nb_scope_end();
}
END_TEST

START_TEST(bce_with_logits_values_match_pytorch)
{
    nb_scope_begin();
    nb_tensor *z = T_F64(NB_SHAPE(2, 4), 0.5, -2.0, 3.0, 0.0, -1e4, 1e4, -1e4, 1e4);
    nb_tensor *y = T_F64(NB_SHAPE(2, 4), 1.0, 0.0, 1.0, 0.5, 1.0, 0.0, 0.0, 1.0);
    nb_tensor *w = T_F64(NB_SHAPE(4), 1.0, 2.0, 0.5, 1.5);
    nb_tensor *pw = T_F64(NB_SHAPE(4), 2.0, 0.5, 1.0, 3.0);
    const double tol = 1e-9;
    ck_assert_reductions(nb_bce_with_logits_loss(z, y, NULL, NULL, R), tol, 20001.342739527357, 2500.1678424409197,
                         0.47407698418010669, 0.1269280110429726, 0.048587351573741965, 0.69314718055994529, 10000,
                         10000, 0, 0);
    ck_assert_reductions(nb_bce_with_logits_loss(z, y, w, NULL, R), tol, 30001.791947452894, 3750.2239934316117,
                         0.47407698418010669, 0.25385602208594521, 0.024293675786870982, 1.0397207708399179, 10000,
                         20000, 0, 0);
    ck_assert_reductions(nb_bce_with_logits_loss(z, y, NULL, pw, R), tol, 30002.5099636921, 3750.3137454615126,
                         0.94815396836021337, 0.12692801104297269, 0.048587351573741965, 1.3862943611198906, 20000,
                         10000, 0, 0);
    ck_assert_reductions(nb_bce_with_logits_loss(z, y, w, pw, R), tol, 40003.305745207916, 5000.4132181509895,
                         0.94815396836021337, 0.25385602208594538, 0.024293675786870982, 2.0794415416798357, 20000,
                         20000, 0, 0);
    /* gradients, extreme logits included: finite, and sigmoid(0) - y = 0.5 - y at x = 0 */
    nb_tensor *zg = requiring_grad(nb_clone(z));
    ck_assert_ok(nb_backward(nb_bce_with_logits_loss(zg, y, w, pw, NB_REDUCTION_MEAN)));
    ck_assert_values(nb_grad(zg), 1e-12, -0.094385167199536352, 0.029800730505529387, -0.0029641170735979147,
                     -0.09375, -0.25, 0.25, 0, 0);
    nb_zero_grad(zg);
    ck_assert_ok(nb_backward(nb_bce_with_logits_loss(zg, y, NULL, NULL, NB_REDUCTION_SUM)));
    ck_assert_close(nb_get_flat(nb_grad(zg), 3), 0.0, 1e-15);
    ck_assert_close(nb_get_flat(nb_grad(zg), 4), -1.0, 1e-15);
    /* exact in the tails: -log s(-21) = 21 + log1p(e^-21) (a softplus threshold of 20 would drop the 7.6e-10),
     * and -log s(40) = log1p(e^-40) = 4.2e-18 (not rounded to 0) */
    nb_tensor *tails = nb_bce_with_logits_loss(T_F64(NB_SHAPE(2), -21, 40), T_F64(NB_SHAPE(2), 1, 1), NULL, NULL,
                                               NB_REDUCTION_NONE);
    ck_assert_close(nb_get_flat(tails, 0), 21 + log1p(exp(-21.0)), 1e-13);
    ck_assert_close(nb_get_flat(tails, 1) / log1p(exp(-40.0)), 1.0, 1e-14);
    /* f32 at +-1e4: finite */
    nb_tensor *z32 = requiring_grad(nb_to_dtype(z, NB_F32));
    nb_tensor *l32 = nb_bce_with_logits_loss(z32, nb_to_dtype(y, NB_F32), NULL, NULL, NB_REDUCTION_SUM);
    ck_assert_values(l32, 1e-2, 20001.342739527357);
    ck_assert_ok(nb_backward(l32));
    for (int i = 0; i < 8; i++) ck_assert(isfinite(nb_get_flat(nb_grad(z32), i)));
    nb_scope_end();
}
END_TEST

START_TEST(bce_errors)
{
    nb_scope_begin();
    nb_tensor *p = T_F64(NB_SHAPE(2, 3), 0.2, 0.9, 0.5, 0.0, 1.0, 0.7);
    ck_assert_ptr_null(nb_bce_loss(T_F64(NB_SHAPE(3), 0.5, 1.5, 0.2), T_F64(NB_SHAPE(3), 0, 1, 0), NULL,
                                   NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_VALUE, "nb_bce_loss", "[0, 1]", "1.5", "element 1");
    ck_assert_ptr_null(nb_bce_loss(T_F64(NB_SHAPE(2), -0.25, 0.5), T_F64(NB_SHAPE(2), 0, 1), NULL, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_VALUE, "nb_bce_loss", "-0.25", "element 0");
    ck_assert_ptr_null(nb_bce_loss(T_F64(NB_SHAPE(2), 0.5, NAN), T_F64(NB_SHAPE(2), 0, 1), NULL, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_VALUE, "nb_bce_loss", "nan");
    /* the range is checked through any layout: the transposed view's element 2 is bad[0][1] = 2, and a
     * strided view that skips it passes */
    nb_tensor *bad = T_F64(NB_SHAPE(2, 2), 0.5, 2.0, 0.25, 0.75);
    ck_assert_ptr_null(nb_bce_loss(nb_transpose(bad, 0, 1), nb_zeros(NB_SHAPE(2, 2), NB_F64), NULL, NB_REDUCTION_SUM));
    ck_assert_error(NB_ERR_VALUE, "nb_bce_loss", "2", "element 2");
    ck_assert_tensor(nb_bce_loss(nb_slice(bad, 1, 0, 1, 1), nb_zeros(NB_SHAPE(2, 1), NB_F64), NULL, NB_REDUCTION_SUM));
    /* shapes */
    ck_assert_ptr_null(nb_bce_loss(p, nb_zeros(NB_SHAPE(3), NB_F64), NULL, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_SHAPE, "nb_bce_loss", "probs of shape (2, 3)", "target of shape (3)");
    ck_assert_ptr_null(nb_bce_loss(p, p, nb_ones(NB_SHAPE(2), NB_F64), NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_SHAPE, "nb_bce_loss", "weight of shape (2)", "(2, 3)");
    /* a weight that would enlarge the loss is refused too */
    ck_assert_ptr_null(nb_bce_loss(p, p, nb_ones(NB_SHAPE(4, 2, 3), NB_F64), NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_SHAPE, "nb_bce_loss", "(4, 2, 3)");
    ck_assert_ptr_null(nb_bce_with_logits_loss(p, p, NULL, nb_ones(NB_SHAPE(2), NB_F64), NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_SHAPE, "nb_bce_with_logits_loss", "pos_weight of shape (2)", "(2, 3)");
    ck_assert_ptr_null(nb_bce_with_logits_loss(p, nb_zeros(NB_SHAPE(3, 2), NB_F64), NULL, NULL, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_SHAPE, "nb_bce_with_logits_loss", "logits of shape (2, 3)", "target of shape (3, 2)");
    /* dtypes */
    ck_assert_ptr_null(nb_bce_with_logits_loss(nb_zeros(NB_SHAPE(2), NB_I64), nb_zeros(NB_SHAPE(2), NB_F32), NULL,
                                               NULL, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_DTYPE, "nb_bce_with_logits_loss", "logits", "i64");
    ck_assert_ptr_null(nb_bce_with_logits_loss(p, p, nb_ones(NB_SHAPE(3), NB_BOOL), NULL, NB_REDUCTION_MEAN));
    ck_assert_error(NB_ERR_DTYPE, "nb_bce_with_logits_loss", "weight", "bool");
    ck_assert_ptr_null(nb_bce_loss(p, p, NULL, (nb_reduction)-1));
    ck_assert_error(NB_ERR_ARG, "nb_bce_loss", "reduction -1");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Cross-entropy and NLL
 * ---------------------------------------------------------------------------------------------- */
#define CE_LOGITS T_F64(NB_SHAPE(3, 4), 1.0, 2.0, 0.5, -1.0, 0.3, -0.2, 2.2, 1.1, -1.5, 0.7, 0.0, 2.5)
#define CE_WEIGHT T_F64(NB_SHAPE(4), 1.0, 2.0, 0.5, 1.5)

static nb_cross_entropy_options ce_opts(nb_tensor *weight, int64_t ignore_index, double smoothing)
{
    nb_cross_entropy_options o = nb_cross_entropy_defaults();
    o.weight = weight;
    o.ignore_index = ignore_index;
    o.label_smoothing = smoothing;
    return o;
}
/* nb_cross_entropy with options o and reduction R (for ck_assert_reductions) */
#define CE(logits, target, o) (o.reduction = R, nb_cross_entropy(logits, target, &o))

START_TEST(cross_entropy_defaults)
{
    nb_cross_entropy_options o = nb_cross_entropy_defaults();
    ck_assert_ptr_null(o.weight);
    ck_assert_int_eq(o.ignore_index, -100);
    ck_assert(o.label_smoothing == 0.0);
    ck_assert_int_eq(o.reduction, NB_REDUCTION_MEAN);
    /* NULL options mean the defaults */
    nb_scope_begin();
    nb_tensor *a = nb_cross_entropy(CE_LOGITS, T_I64(NB_SHAPE(3), 1, 0, 3), NULL);
    ck_assert_values(a, 1e-12, 1.0279638992340876);
    ck_assert_values(nb_cross_entropy(CE_LOGITS, T_I64(NB_SHAPE(3), 1, -100, 3), NULL), 1e-12, 0.36540342609786913);
    nb_scope_end();
}
END_TEST

START_TEST(cross_entropy_values_match_pytorch)
{
    nb_scope_begin();
    nb_tensor *L = CE_LOGITS, *w = CE_WEIGHT;
    nb_tensor *t = T_I64(NB_SHAPE(3), 1, 0, 3), *t_ign = T_I64(NB_SHAPE(3), 1, -100, 3);
    const double tol = 1e-12;
    nb_cross_entropy_options o = ce_opts(NULL, -100, 0);
    ck_assert_reductions(CE(L, t, o), tol, 3.083891697702263, 1.0279638992340876, 0.49518189808585605,
                         2.3530848455065247, 0.23562495410988224);
    ck_assert_reductions(CE(L, t_ign, o), tol, 0.73080685219573827, 0.36540342609786913, 0.49518189808585605, 0,
                         0.23562495410988224);
    o = ce_opts(w, -100, 0);
    ck_assert_reductions(CE(L, t, o), tol, 3.6968860728430601, 0.82153023840956896, 0.99036379617171211,
                         2.3530848455065247, 0.35343743116482335);
    /* weighted mean divides by the weights of the non-ignored targets */
    ck_assert_reductions(CE(L, t_ign, o), tol, 1.3438012273365354, 0.38394320781043867, 0.99036379617171211, 0,
                         0.35343743116482335);
    /* ignore_index may be a valid class */
    o = ce_opts(w, 0, 0);
    ck_assert_reductions(CE(L, t, o), tol, 1.3438012273365354, 0.38394320781043867, 0.99036379617171211, 0,
                         0.35343743116482335);
    /* label smoothing, alone, with weights, with weights and ignored targets, with ignored targets */
    o = ce_opts(NULL, -100, 0.1);
    ck_assert_reductions(CE(L, t, o), tol, 3.373891697702263, 1.1246305659007543, 0.63268189808585606,
                         2.298084845506525, 0.44312495410988223);
    o = ce_opts(w, -100, 0.1);
    ck_assert_reductions(CE(L, t, o), tol, 4.061433927771537, 0.90254087283811935, 1.109475153815273,
                         2.3831619666441881, 0.56879680731207627);
    o = ce_opts(w, -100, 0.3);
    ck_assert_reductions(CE(L, t_ign, o), tol, 2.3472134287089763, 0.67063240820256453, 1.3476978691023942, 0,
                         0.999515559606582);
    o = ce_opts(NULL, -100, 0.3);
    ck_assert_reductions(CE(L, t_ign, o), tol, 1.7658068521957384, 0.8829034260978692, 0.90768189808585609, 0,
                         0.8581249541098821);
    /* and its gradient */
    nb_tensor *Lg = requiring_grad(CE_LOGITS);
    o = ce_opts(w, -100, 0.3);
    ck_assert_ok(nb_backward(nb_cross_entropy(Lg, t_ign, &o)));
    ck_assert_values(nb_grad(Lg), 1e-12, 0.092276822010159146, -0.13377383807485516, 0.058251521580992088,
                     -0.016754505516296054, 0, 0, 0, 0, -0.015536903306763229, 0.010315241476361836,
                     0.015690338913281292, -0.010468677082879829);
    /* f32 logits give an f32 loss */
    o = ce_opts(NULL, -100, 0.1);
    nb_tensor *l32 = nb_cross_entropy(nb_to_dtype(L, NB_F32), t, &o);
    ck_assert_int_eq(nb_dtype_of(l32), NB_F32);
    ck_assert_values(l32, 1e-6, 1.1246305659007543);
    nb_scope_end();
}
END_TEST

START_TEST(cross_entropy_spatial_shapes)
{
    nb_scope_begin();
    /* (N, C, d) = (2, 3, 2) with (2, 2) targets, one ignored */
    nb_tensor *L3 = T_F64(NB_SHAPE(2, 3, 2), 0.2, -1.0, 1.5, 0.3, -0.4, 0.8, 2.0, 0.1, -0.7, -1.2, 0.9, 1.6);
    nb_tensor *t3 = T_I64(NB_SHAPE(2, 2), 0, 2, 1, -100);
    nb_tensor *w3 = T_F64(NB_SHAPE(3), 0.5, 1.0, 2.0);
    const double tol = 1e-12;
    nb_cross_entropy_options o = ce_opts(NULL, -100, 0);
    ck_assert_reductions(CE(L3, t3, o), tol, 5.2606745448006667, 1.7535581816002221, 1.6521349422893397,
                         0.57201265564543968, 3.0365269468658869, 0);
    o.reduction = NB_REDUCTION_NONE;
    ck_assert_shape(nb_cross_entropy(L3, t3, &o), 2, 2);
    o = ce_opts(w3, -100, 0.2);
    ck_assert_reductions(CE(L3, t3, o), tol, 5.0161198438946375, 1.4331770982556107, 1.0396854634499151,
                         1.1420232020166394, 2.8344111784280832, 0);
    nb_tensor *Lg = requiring_grad(nb_clone(L3));
    ck_assert_ok(nb_backward(nb_cross_entropy(Lg, t3, &o)));
    ck_assert_values(nb_grad(Lg), 1e-12, -0.089131749715871331, 0.039343832415305174, 0.10819542187467297,
                     0.16026225667398497, -0.019063672158801625, -0.1996060890892902, 0.20134900699870092, 0,
                     -0.23344723186177713, 0, 0.032098224863076251, 0);
    /* (N, C, d1, d2) = (1, 3, 2, 2) */
    nb_tensor *L4 = nb_reshape(L3, NB_SHAPE(1, 3, 2, 2));
    nb_tensor *t4 = T_I64(NB_SHAPE(1, 2, 2), 0, 2, 1, 1);
    o = ce_opts(NULL, -100, 0);
    ck_assert_reductions(CE(L4, t4, o), tol, 5.4983856130964206, 1.3745964032741051, 0.67058521065278087,
                         2.2628519697185636, 0.66237954583124437, 1.9025688868938324);
    nb_scope_end();
}
END_TEST

START_TEST(cross_entropy_extreme_logits)
{
    nb_scope_begin();
    nb_tensor *Lx = T_F64(NB_SHAPE(2, 3), 1e4, -1e4, 0.0, -1e4, 1e4, 1e4);
    nb_tensor *tx = T_I64(NB_SHAPE(2), 1, 0);
    const double tol = 1e-9;
    nb_cross_entropy_options o = ce_opts(NULL, -100, 0);
    ck_assert_reductions(CE(Lx, tx, o), tol, 40000.693147180558, 20000.346573590279, 20000, 20000.693147180558);
    o = ce_opts(NULL, -100, 0.1);
    ck_assert_reductions(CE(Lx, tx, o), tol, 37667.359813847223, 18833.679906923611, 19000, 18667.359813847226);
    nb_tensor *Lg = requiring_grad(nb_clone(Lx));
    ck_assert_ok(nb_backward(nb_cross_entropy(Lg, tx, &o)));
    ck_assert_values(nb_grad(Lg), 1e-12, 0.48333333333333334, -0.46666666666666667, -0.016666666666666666,
                     -0.46666666666666667, 0.23333333333333334, 0.23333333333333334);
    /* f32: finite loss and gradient */
    nb_tensor *L32 = requiring_grad(nb_to_dtype(Lx, NB_F32));
    nb_tensor *l32 = nb_cross_entropy(L32, tx, &o);
    ck_assert_values(l32, 1e-2, 18833.679906923611);
    ck_assert_ok(nb_backward(l32));
    for (int i = 0; i < 6; i++) ck_assert(isfinite(nb_get_flat(nb_grad(L32), i)));
    nb_scope_end();
}
END_TEST

START_TEST(cross_entropy_gradient_is_softmax_minus_onehot)
{
    nb_scope_begin();
    nb_tensor *L = requiring_grad(nb_detach(nb_mul_scalar(nbt_leaf(NB_SHAPE(5, 4), 31), 2)));
    nb_tensor *t = T_I64(NB_SHAPE(5), 3, 0, 2, 2, 1);
    ck_assert_ok(nb_backward(nb_cross_entropy(L, t, NULL)));
    nb_tensor *onehot = nb_zeros(NB_SHAPE(5, 4), NB_F64);
    for (int64_t i = 0; i < 5; i++) nb_set(onehot, (const int64_t[]){i, (int64_t)nb_get_flat(t, i)}, 1.0);
    nb_tensor *expected = nb_div_scalar(nb_sub(nb_softmax(nb_detach(L), 1), onehot), 5);
    for (int64_t i = 0; i < 20; i++) ck_assert_close(nb_get_flat(nb_grad(L), i), nb_get_flat(expected, i), 1e-14);
    nb_scope_end();
}
END_TEST

START_TEST(cross_entropy_all_ignored_and_unbatched)
{
    nb_scope_begin();
    nb_tensor *L = requiring_grad(CE_LOGITS);
    nb_tensor *none_left = T_I64(NB_SHAPE(3), -100, -100, -100);
    /* PyTorch 1.13: the mean of no targets is 0 / 0 */
    nb_cross_entropy_options o = ce_opts(NULL, -100, 0);
    ck_assert(isnan(nb_item(nb_cross_entropy(L, none_left, &o))));
    o = ce_opts(CE_WEIGHT, -100, 0.2);
    ck_assert(isnan(nb_item(nb_cross_entropy(L, none_left, &o))));
    o.reduction = NB_REDUCTION_SUM;
    nb_tensor *s = nb_cross_entropy(L, none_left, &o);
    ck_assert_values(s, 0, 0);
    ck_assert_ok(nb_backward(s));
    ck_assert_values(nb_grad(L), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    o.reduction = NB_REDUCTION_NONE;
    ck_assert_values(nb_cross_entropy(L, none_left, &o), 0, 0, 0, 0);

    /* unbatched: (C) logits and a 0-d target */
    nb_tensor *row = T_F64(NB_SHAPE(4), 0.3, -0.2, 2.2, 1.1), *t = nb_scalar(2, NB_I64);
    o = ce_opts(CE_WEIGHT, -100, 0.1);
    ck_assert_reductions(CE(row, t, o), 1e-12, 0.46927378616625159, 0.93854757233250319, 0.46927378616625159);
    o.reduction = NB_REDUCTION_NONE;
    ck_assert_int_eq(nb_ndim(nb_cross_entropy(row, t, &o)), 0);
    nb_scope_end();
}
END_TEST

START_TEST(nll_values_match_pytorch)
{
    nb_scope_begin();
    nb_tensor *LP = T_F64(NB_SHAPE(3, 4), -1.0, -2.0, -0.5, -3.0, -0.3, -1.2, -2.2, -0.1, -1.5, -0.7, -4.0, -2.5);
    nb_tensor *t = T_I64(NB_SHAPE(3), 1, 0, 3), *t_ign = T_I64(NB_SHAPE(3), 1, -100, 3);
    nb_cross_entropy_options o = ce_opts(NULL, -100, 0);
    ck_assert_reductions((o.reduction = R, nb_nll_loss(LP, t, &o)), 1e-12, 4.7999999999999998, 1.5999999999999999, 2,
                         0.29999999999999999, 2.5);
    o = ce_opts(CE_WEIGHT, -100, 0);
    ck_assert_reductions((o.reduction = R, nb_nll_loss(LP, t_ign, &o)), 1e-12, 7.75, 2.2142857142857144, 4, 0, 3.75);
    /* label_smoothing is ignored by nll */
    o = ce_opts(NULL, -100, 0.5);
    ck_assert_values(nb_nll_loss(LP, t, &o), 1e-12, 1.5999999999999999);
    /* nll of log_softmax is cross-entropy */
    nb_tensor *L = CE_LOGITS;
    o = ce_opts(CE_WEIGHT, -100, 0);
    ck_assert_close(nb_item(nb_nll_loss(nb_log_softmax(L, 1), t_ign, &o)), 0.38394320781043867, 1e-12);
    /* an ignored row may hold -inf in class 0 without producing NaN */
    nb_tensor *LPi = T_F64(NB_SHAPE(2, 2), -INFINITY, -1.0, -0.5, -2.0);
    nb_set_requires_grad(LPi, true);
    o = ce_opts(NULL, -100, 0);
    nb_tensor *l = nb_nll_loss(LPi, T_I64(NB_SHAPE(2), -100, 0), &o);
    ck_assert_values(l, 1e-12, 0.5);
    ck_assert_ok(nb_backward(l));
    ck_assert_values(nb_grad(LPi), 0, 0, 0, -1, 0);
    nb_scope_end();
}
END_TEST

typedef struct class_case {
    nb_cross_entropy_options o;
    nb_tensor *target;
    bool transpose; /* feed the logits as a transposed (non-contiguous) view */
} class_case;
static nb_tensor *f_ce(nb_tensor *const *x, void *u)
{
    class_case *c = u;
    return nb_cross_entropy(c->transpose ? nb_transpose(x[0], 0, 1) : x[0], c->target, &c->o);
}
static nb_tensor *f_nll(nb_tensor *const *x, void *u)
{
    class_case *c = u;
    return nb_nll_loss(c->transpose ? nb_transpose(x[0], 0, 1) : x[0], c->target, &c->o);
}

START_TEST(class_loss_gradchecks)
{
    nb_scope_begin();
    nb_tensor *w = CE_WEIGHT, *w3 = T_F64(NB_SHAPE(3), 0.5, 1.0, 2.0);
    nb_tensor *L[1] = {nbt_leaf(NB_SHAPE(3, 4), 41)};
    nb_tensor *Lt[1] = {nbt_leaf(NB_SHAPE(4, 3), 42)}; /* transposed to (3, 4) */
    nb_tensor *L3[1] = {nbt_leaf(NB_SHAPE(2, 3, 2), 43)};
    nb_tensor *t = T_I64(NB_SHAPE(3), 1, -100, 3), *t3 = T_I64(NB_SHAPE(2, 2), 0, 2, 1, -100);
    const nb_reduction rs[3] = {NB_REDUCTION_MEAN, NB_REDUCTION_SUM, NB_REDUCTION_NONE};
    for (int i = 0; i < 3; i++) {
        class_case plain = {ce_opts(NULL, -100, 0), t, false};
        class_case full = {ce_opts(w, -100, 0.2), t, false};
        class_case strided = {ce_opts(w, 0, 0.1), T_I64(NB_SHAPE(3), 1, 0, 3), true};
        class_case spatial = {ce_opts(w3, -100, 0.3), t3, false};
        plain.o.reduction = full.o.reduction = strided.o.reduction = spatial.o.reduction = rs[i];
        ck_assert_gradcheck(f_ce, &plain, 1, L, true);
        ck_assert_gradcheck(f_ce, &full, 1, L, true);
        ck_assert_gradcheck(f_ce, &strided, 1, Lt, true);
        ck_assert_gradcheck(f_ce, &spatial, 1, L3, true);
        /* nll is linear in its input: its second derivative is zero, checked all the same */
        ck_assert_gradcheck(f_nll, &full, 1, L, true);
        ck_assert_gradcheck(f_nll, &spatial, 1, L3, true);
    }
    nb_scope_end();
}
END_TEST

START_TEST(class_loss_errors)
{
    nb_scope_begin();
    nb_tensor *L = CE_LOGITS;
    /* targets out of range name the value and C; ignore_index is exempt */
    ck_assert_ptr_null(nb_cross_entropy(L, T_I64(NB_SHAPE(3), 1, 4, 0), NULL));
    ck_assert_error(NB_ERR_INDEX, "nb_cross_entropy", "target 4", "C = 4");
    ck_assert_ptr_null(nb_cross_entropy(L, T_I64(NB_SHAPE(3), 1, -100, -1), NULL));
    ck_assert_error(NB_ERR_INDEX, "nb_cross_entropy", "target -1", "C = 4");
    nb_cross_entropy_options o = ce_opts(NULL, 7, 0);
    ck_assert_ptr_null(nb_nll_loss(L, T_I64(NB_SHAPE(3), 7, -100, 0), &o));
    ck_assert_error(NB_ERR_INDEX, "nb_nll_loss", "target -100", "C = 4", "ignore_index is 7");
    ck_assert_tensor(nb_nll_loss(L, T_I64(NB_SHAPE(3), 7, 7, 0), &o));
    /* shapes */
    ck_assert_ptr_null(nb_cross_entropy(L, T_I64(NB_SHAPE(4), 1, 0, 3, 2), NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_cross_entropy", "target of shape (4)", "logits of shape (3, 4)",
                    "expected target shape (3)");
    ck_assert_ptr_null(nb_cross_entropy(nb_zeros(NB_SHAPE(2, 3, 5), NB_F32), nb_zeros(NB_SHAPE(2, 3), NB_I64), NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_cross_entropy", "(2, 3)", "(2, 3, 5)", "expected target shape (2, 5)");
    ck_assert_ptr_null(nb_cross_entropy(nb_scalar(1, NB_F32), nb_zeros(0, NULL, NB_I64), NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_cross_entropy", "()", "no class dim");
    ck_assert_ptr_null(nb_nll_loss(nb_zeros(NB_SHAPE(2, 0), NB_F32), nb_zeros(NB_SHAPE(2), NB_I64), NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_nll_loss", "(2, 0)", "no classes");
    o = ce_opts(T_F64(NB_SHAPE(3), 1, 1, 1), -100, 0);
    ck_assert_ptr_null(nb_cross_entropy(L, T_I64(NB_SHAPE(3), 1, 0, 3), &o));
    ck_assert_error(NB_ERR_SHAPE, "nb_cross_entropy", "weight of shape (3)", "4 classes", "(3, 4)");
    /* dtypes */
    ck_assert_ptr_null(nb_cross_entropy(T_I64(NB_SHAPE(1, 2), 3, 4), T_I64(NB_SHAPE(1), 0), NULL));
    ck_assert_error(NB_ERR_DTYPE, "nb_cross_entropy", "logits", "i64");
    ck_assert_ptr_null(nb_cross_entropy(L, T_F64(NB_SHAPE(3), 1, 0, 3), NULL));
    ck_assert_error(NB_ERR_DTYPE, "nb_cross_entropy", "target", "i64 class indices", "f64");
    o = ce_opts(T_I64(NB_SHAPE(4), 1, 1, 1, 1), -100, 0);
    ck_assert_ptr_null(nb_cross_entropy(L, T_I64(NB_SHAPE(3), 1, 0, 3), &o));
    ck_assert_error(NB_ERR_DTYPE, "nb_cross_entropy", "weight", "i64");
    /* options */
    o = ce_opts(NULL, -100, 1.5);
    ck_assert_ptr_null(nb_cross_entropy(L, T_I64(NB_SHAPE(3), 1, 0, 3), &o));
    ck_assert_error(NB_ERR_ARG, "nb_cross_entropy", "label_smoothing", "1.5");
    o = ce_opts(NULL, -100, NAN);
    ck_assert_ptr_null(nb_cross_entropy(L, T_I64(NB_SHAPE(3), 1, 0, 3), &o));
    ck_assert_error(NB_ERR_ARG, "nb_cross_entropy", "label_smoothing");
    o = ce_opts(NULL, -100, 0);
    o.reduction = (nb_reduction)3;
    ck_assert_ptr_null(nb_nll_loss(L, T_I64(NB_SHAPE(3), 1, 0, 3), &o));
    ck_assert_error(NB_ERR_ARG, "nb_nll_loss", "reduction 3");
    nb_clear_error();
    ck_assert_ptr_null(nb_cross_entropy(L, NULL, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_cross_entropy", "target");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Penalties
 * ---------------------------------------------------------------------------------------------- */
START_TEST(penalties_values_and_gradients)
{
    /* parameters are caller-owned, as a module's are */
    nb_tensor *a = requiring_grad(T_F32(NB_SHAPE(2, 2), 1.0f, -2.0f, 0.5f, 0.0f));
    nb_tensor *b = requiring_grad(T_F32(NB_SHAPE(3), -1.0f, 3.0f, -0.25f));
    nb_tensor *frozen = T_F32(NB_SHAPE(2), 10.0f, -10.0f);
    nb_tensor *buffer = T_F32(NB_SHAPE(1), 100.0f);
    nb_param_list *list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(list, "a", a, false));
    ck_assert_ok(nb_param_list_add(list, "b", b, false));
    ck_assert_ok(nb_param_list_add(list, "frozen", frozen, false));
    ck_assert_ok(nb_param_list_add(list, "running", buffer, true));

    nb_scope_begin();
    nb_tensor *l1 = nb_l1_penalty(list, false);
    ck_assert_int_eq(nb_ndim(l1), 0);
    ck_assert_int_eq(nb_dtype_of(l1), NB_F32);
    ck_assert_values(l1, 1e-6, 1 + 2 + 0.5 + 1 + 3 + 0.25);
    ck_assert_values(nb_l1_penalty(list, true), 1e-6, 7.75 + 20);
    nb_tensor *l2 = nb_l2_penalty(list, false);
    ck_assert_values(l2, 1e-6, 1 + 4 + 0.25 + 1 + 9 + 0.0625);
    ck_assert_values(nb_l2_penalty(list, true), 1e-5, 15.3125 + 200);
    /* gradients: sign(p) (0 at 0) for L1, 2 p for L2; frozen tensors and buffers get none */
    ck_assert_ok(nb_backward(nb_add(l1, nb_mul_scalar(l2, 0.5))));
    ck_assert_values(nb_grad(a), 1e-6, 2, -3, 1.5, 0);
    ck_assert_values(nb_grad(b), 1e-6, -2, 4, -1.25);
    ck_assert_ptr_null(nb_grad(frozen));
    ck_assert_ptr_null(nb_grad(buffer));
    /* an f64 parameter makes the penalty f64 */
    nb_tensor *d = requiring_grad(nb_keep(T_F64(NB_SHAPE(1), -4)));
    nb_scope_end();
    ck_assert_ok(nb_param_list_add(list, "d", d, false));
    nb_scope_begin();
    nb_tensor *l1d = nb_l1_penalty(list, false);
    ck_assert_int_eq(nb_dtype_of(l1d), NB_F64);
    ck_assert_values(l1d, 1e-6, 11.75);
    /* an empty list (or one with nothing trainable) gives 0 */
    nb_param_list *empty = nb_param_list_new();
    ck_assert_values(nb_l2_penalty(empty, false), 0, 0);
    ck_assert_int_eq(nb_dtype_of(nb_l2_penalty(empty, false)), NB_F32);
    nb_param_list_add(empty, "frozen", frozen, false);
    ck_assert_values(nb_l2_penalty(empty, false), 0, 0);
    ck_assert_values(nb_l2_penalty(empty, true), 1e-4, 200);
    nb_param_list_free(empty);
    /* errors */
    ck_assert_ptr_null(nb_l1_penalty(NULL, false));
    ck_assert_error(NB_ERR_NULL, "nb_l1_penalty", "params");
    nb_scope_end();
    nb_free(d);
    ck_assert_ptr_null(nb_l2_penalty(list, false));
    ck_assert_error(NB_ERR_FREED, "nb_l2_penalty", "d");

    nb_param_list_free(list);
    nb_free(a);
    nb_free(b);
    nb_free(frozen);
    nb_free(buffer);
}
END_TEST

static nb_tensor *f_penalty(nb_tensor *const *x, void *u)
{
    nb_param_list *list = nb_param_list_new();
    nb_param_list_add(list, "w", x[0], false);
    nb_param_list_add(list, "b", x[1], false);
    nb_tensor *p = *(bool *)u ? nb_l2_penalty(list, false) : nb_l1_penalty(list, false);
    nb_param_list_free(list);
    return p;
}

START_TEST(penalty_gradchecks)
{
    nb_scope_begin();
    nb_tensor *x[2] = {nbt_leaf(NB_SHAPE(3, 2), 51), nbt_leaf(NB_SHAPE(4), 52)};
    bool squared = false;
    ck_assert_gradcheck(f_penalty, &squared, 2, x, true);
    squared = true;
    ck_assert_gradcheck(f_penalty, &squared, 2, x, true);
    nb_scope_end();
}
END_TEST

START_TEST(penalty_over_module_parameters)
{
    nb_generator g;
    nb_generator_seed(&g, 5);
    nb_module *m = nb_linear_new(3, 2, true, &g);
    nb_param_list *params = nb_module_parameters(m);
    nb_linear *lin = (nb_linear *)m;
    nb_scope_begin();
    nb_tensor *expected = nb_add(nb_sum(nb_square(lin->weight), 0, NULL, false),
                                 nb_sum(nb_square(lin->bias), 0, NULL, false));
    ck_assert_close(nb_item(nb_l2_penalty(params, false)), nb_item(expected), 1e-6);
    ck_assert_int_eq(nb_param_list_set_frozen(params, "bias", true), 1);
    ck_assert_close(nb_item(nb_l2_penalty(params, false)), nb_item(nb_sum(nb_square(lin->weight), 0, NULL, false)),
                    1e-6);
    nb_scope_end();
    nb_param_list_free(params);
    nb_module_free(m);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Memory: without a scope the caller owns the result and nothing else is left behind
 * ---------------------------------------------------------------------------------------------- */
START_TEST(no_leaked_temporaries)
{
    nb_tensor *x = requiring_grad(T_F64(NB_SHAPE(2, 3), 0.5, -1.2, 2.0, 0.3, 1.5, -0.7));
    nb_tensor *y = T_F64(NB_SHAPE(2, 3), 0.2, 0.9, 0.5, 0.0, 1.0, 0.7);
    nb_tensor *w = T_F64(NB_SHAPE(3), 1.0, 2.0, 0.5);
    nb_tensor *L = requiring_grad(T_F64(NB_SHAPE(3, 4), 1.0, 2.0, 0.5, -1.0, 0.3, -0.2, 2.2, 1.1, -1.5, 0.7, 0.0, 2.5));
    nb_tensor *t = T_I64(NB_SHAPE(3), 1, -100, 3), *bad = T_I64(NB_SHAPE(3), 1, 9, 3);
    nb_tensor *cw = T_F64(NB_SHAPE(4), 1.0, 2.0, 0.5, 1.5);
    nb_param_list *list = nb_param_list_new();
    nb_param_list_add(list, "x", x, false);
    nb_param_list_add(list, "L", L, false);
    nb_cross_entropy_options o = ce_opts(cw, -100, 0.2);
    const int64_t before = live_tensors();
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 10; i++) {
            nb_reduction red = (nb_reduction)r;
            o.reduction = red;
            nb_tensor *loss = i == 0 ? nb_mse_loss(x, y, red)
                            : i == 1 ? nb_l1_loss(x, y, red)
                            : i == 2 ? nb_smooth_l1_loss(x, y, 0.5, red)
                            : i == 3 ? nb_huber_loss(x, y, 0.5, red)
                            : i == 4 ? nb_bce_loss(y, y, w, red)
                            : i == 5 ? nb_bce_with_logits_loss(x, y, w, w, red)
                            : i == 6 ? nb_cross_entropy(L, t, &o)
                            : i == 7 ? nb_nll_loss(L, t, &o)
                            : i == 8 ? nb_l1_penalty(list, false)
                                     : nb_l2_penalty(list, true);
            ck_assert_tensor(loss);
            ck_assert_ok(nb_free(loss));
            ck_assert_msg(live_tensors() == before, "loss %d, reduction %d: %lld live tensors, expected %lld", i, r,
                          (long long)live_tensors(), (long long)before);
        }
    }
    /* backward through a loss, then releasing it and the gradients, leaves nothing behind */
    o.reduction = NB_REDUCTION_MEAN;
    nb_tensor *ce = nb_cross_entropy(L, t, &o), *bce = nb_bce_with_logits_loss(x, y, w, w, NB_REDUCTION_MEAN);
    nb_tensor *loss = nb_add(ce, bce);
    ck_assert_ok(nb_backward(loss));
    nb_free(loss);
    nb_free(ce);
    nb_free(bce);
    nb_zero_grad(x);
    nb_zero_grad(L);
    ck_assert_int_eq(live_tensors(), before);
    /* failures inside the loss's own scope (the target's range is checked there) leave nothing either */
    ck_assert_ptr_null(nb_cross_entropy(L, bad, &o));
    ck_assert_error(NB_ERR_INDEX, "nb_cross_entropy", "target 9");
    ck_assert_ptr_null(nb_bce_loss(x, y, NULL, NB_REDUCTION_MEAN));
    ck_assert_int_eq(live_tensors(), before);

    nb_param_list_free(list);
    nb_tensor *all[] = {x, y, w, L, t, bad, cw};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nb_free(all[i]);
    ck_assert_int_eq(live_tensors(), 0);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("loss");
    TCase *reg = tcase_create("regression");
    tcase_add_test(reg, regression_values_match_pytorch);
    tcase_add_test(reg, regression_dtypes);
    tcase_add_test(reg, regression_gradients);
    tcase_add_test(reg, regression_gradient_values);
    tcase_add_test(reg, regression_errors);
    suite_add_tcase(s, reg);
    TCase *bce = tcase_create("bce");
    tcase_add_test(bce, bce_values_match_pytorch);
    tcase_add_test(bce, bce_gradients);
    tcase_add_test(bce, bce_gradchecks);
    tcase_add_test(bce, bce_with_logits_values_match_pytorch);
    tcase_add_test(bce, bce_errors);
    suite_add_tcase(s, bce);
    TCase *ce = tcase_create("cross_entropy");
    tcase_add_test(ce, cross_entropy_defaults);
    tcase_add_test(ce, cross_entropy_values_match_pytorch);
    tcase_add_test(ce, cross_entropy_spatial_shapes);
    tcase_add_test(ce, cross_entropy_extreme_logits);
    tcase_add_test(ce, cross_entropy_gradient_is_softmax_minus_onehot);
    tcase_add_test(ce, cross_entropy_all_ignored_and_unbatched);
    tcase_add_test(ce, nll_values_match_pytorch);
    tcase_add_test(ce, class_loss_gradchecks);
    tcase_add_test(ce, class_loss_errors);
    suite_add_tcase(s, ce);
    TCase *pen = tcase_create("penalties_and_memory");
    tcase_add_test(pen, penalties_values_and_gradients);
    tcase_add_test(pen, penalty_gradchecks);
    tcase_add_test(pen, penalty_over_module_parameters);
    tcase_add_test(pen, no_leaked_temporaries);
    suite_add_tcase(s, pen);
    return s;
}

NB_TEST_MAIN()
