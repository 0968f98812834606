/* Initializers: gains, fans, bounds and spreads per torch.nn.init's formulas, reproducibility, errors. */
#include "helpers.h"

typedef struct stats {
    double mean, std, max_abs;
} stats;

static stats stats_of(nb_tensor *t)
{
    int64_t n = nb_numel(t);
    double sum = 0, sq = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = nb_get_flat(t, i);
        sum += v;
        sq += v * v;
        m = fmax(m, fabs(v));
    }
    double mean = sum / (double)n;
    return (stats){mean, sqrt(sq / (double)n - mean * mean), m};
}

/* Every element within [-bound, bound], and the largest close to the bound (the whole range is used). */
#define ck_assert_uniform_bound(t, bound)                                                                    \
    do {                                                                                                     \
        stats ck_s_ = stats_of(t);                                                                           \
        double ck_b_ = (bound);                                                                              \
        ck_assert_msg(ck_s_.max_abs <= ck_b_, "max |x| %.10g exceeds the bound %.10g", ck_s_.max_abs, ck_b_); \
        ck_assert_msg(ck_s_.max_abs > 0.97 * ck_b_, "max |x| %.10g far below the bound %.10g", ck_s_.max_abs, \
                      ck_b_);                                                                                \
    } while (0)

START_TEST(gains)
{
    ck_assert_close(nb_calculate_gain(NB_GAIN_LINEAR, 0), 1, 0);
    ck_assert_close(nb_calculate_gain(NB_GAIN_SIGMOID, 0), 1, 0);
    ck_assert_close(nb_calculate_gain(NB_GAIN_TANH, 0), 5.0 / 3.0, 1e-15);
    ck_assert_close(nb_calculate_gain(NB_GAIN_RELU, 0), 1.4142135623730951, 1e-15);
    ck_assert_close(nb_calculate_gain(NB_GAIN_LEAKY_RELU, 0), 1.4142135623730951, 1e-15);
    ck_assert_close(nb_calculate_gain(NB_GAIN_LEAKY_RELU, 0.2), 1.3867504905630728, 1e-15);
    ck_assert_close(nb_calculate_gain(NB_GAIN_LEAKY_RELU, sqrt(5.0)), sqrt(1.0 / 3.0), 1e-15);
    ck_assert_close(nb_calculate_gain(NB_GAIN_SELU, 0), 0.75, 0);
    ck_assert(isnan(nb_calculate_gain((nb_nonlinearity)42, 0)));
    ck_assert_error(NB_ERR_ARG, "nb_calculate_gain", "42");
    ck_assert(isnan(nb_calculate_gain(NB_GAIN_LEAKY_RELU, NAN)));
    ck_assert_error(NB_ERR_VALUE, "nb_calculate_gain", "nan");
}
END_TEST

START_TEST(plain_fills)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 1);
    nb_tensor *t = nb_empty(NB_SHAPE(100, 50), NB_F32);
    ck_assert_ok(nb_init_uniform_(t, -0.5, 2.0, &g));
    stats s = stats_of(t);
    ck_assert_close(s.mean, 0.75, 0.03);
    ck_assert_close(s.std, 2.5 / sqrt(12.0), 0.02);
    for (int64_t i = 0; i < 5000; i++) ck_assert(nb_get_flat(t, i) >= -0.5 && nb_get_flat(t, i) <= 2.0);
    ck_assert_ok(nb_init_normal_(t, 3.0, 0.5, &g));
    s = stats_of(t);
    ck_assert_close(s.mean, 3.0, 0.03);
    ck_assert_close(s.std, 0.5, 0.02);
    ck_assert_ok(nb_init_zeros_(t));
    ck_assert_close(stats_of(t).max_abs, 0, 0);
    ck_assert_ok(nb_init_ones_(t));
    ck_assert_close(stats_of(t).mean, 1, 0);
    ck_assert_ok(nb_init_constant_(t, -2.5));
    ck_assert_close(stats_of(t).mean, -2.5, 0);
    /* integer tensors take constants but not random values */
    nb_tensor *i = nb_empty(NB_SHAPE(3), NB_I64);
    ck_assert_ok(nb_init_constant_(i, 7));
    ck_assert_values(i, 0, 7, 7, 7);
    ck_assert_int_eq(nb_init_constant_(i, NAN), NB_ERR_VALUE);
    ck_assert_error(NB_ERR_VALUE, "nb_init_constant_", "NaN", "i64");
    ck_assert_int_eq(nb_init_uniform_(i, 0, 1, NULL), NB_ERR_DTYPE);
    ck_assert_error(NB_ERR_DTYPE, "nb_init_uniform_", "i64");
    ck_assert_int_eq(nb_init_normal_(i, 0, 1, NULL), NB_ERR_DTYPE);
    ck_assert_error(NB_ERR_DTYPE, "nb_init_normal_", "i64");
    ck_assert_int_eq(nb_init_uniform_(t, 1, -1, NULL), NB_ERR_VALUE);
    ck_assert_error(NB_ERR_VALUE, "nb_init_uniform_", "low <= high", "1", "-1");
    ck_assert_int_eq(nb_init_normal_(t, 0, -1, NULL), NB_ERR_VALUE);
    ck_assert_error(NB_ERR_VALUE, "nb_init_normal_", "std", "-1");
    nb_clear_error();
    ck_assert_int_eq(nb_init_zeros_(NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_init_zeros_");
    nb_scope_end();
}
END_TEST

START_TEST(xavier)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 2);
    /* (out 64, in 32): a = sqrt(6 / 96) = 0.25 */
    nb_tensor *w = nb_empty(NB_SHAPE(64, 32), NB_F64);
    ck_assert_ok(nb_init_xavier_uniform_(w, 1.0, &g));
    ck_assert_uniform_bound(w, 0.25);
    ck_assert_ok(nb_init_xavier_uniform_(w, 2.0, &g));
    ck_assert_uniform_bound(w, 0.5);
    /* (out 8, in 4, k 3 x 2): fan_in 24, fan_out 48, a = sqrt(6 / 72) */
    nb_tensor *conv = nb_empty(NB_SHAPE(8, 4, 3, 2), NB_F64);
    ck_assert_ok(nb_init_xavier_uniform_(conv, 1.0, &g));
    ck_assert_uniform_bound(conv, sqrt(6.0 / 72.0));
    /* normal: std = gain sqrt(2 / (fan_in + fan_out)) = sqrt(2 / 512) on 256 x 256 */
    nb_tensor *big = nb_empty(NB_SHAPE(256, 256), NB_F32);
    ck_assert_ok(nb_init_xavier_normal_(big, 1.0, &g));
    stats s = stats_of(big);
    ck_assert_close(s.std, 0.0625, 0.0625 * 0.02);
    ck_assert_close(s.mean, 0, 0.002);
    ck_assert_ok(nb_init_xavier_normal_(big, nb_calculate_gain(NB_GAIN_TANH, 0), &g));
    ck_assert_close(stats_of(big).std, 0.0625 * 5 / 3, 0.0625 * 5 / 3 * 0.02);
    /* errors */
    nb_tensor *v = nb_empty(NB_SHAPE(5), NB_F32);
    ck_assert_int_eq(nb_init_xavier_uniform_(v, 1.0, &g), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_init_xavier_uniform_", "fewer than 2 dims", "(5)");
    ck_assert_int_eq(nb_init_xavier_normal_(nb_scalar(1, NB_F32), 1.0, &g), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_init_xavier_normal_", "()");
    ck_assert_int_eq(nb_init_xavier_uniform_(w, -1.0, &g), NB_ERR_VALUE);
    ck_assert_error(NB_ERR_VALUE, "nb_init_xavier_uniform_", "gain", "-1");
    ck_assert_int_eq(nb_init_xavier_uniform_(nb_zeros(NB_SHAPE(2, 2), NB_I64), 1.0, &g), NB_ERR_DTYPE);
    ck_assert_error(NB_ERR_DTYPE, "nb_init_xavier_uniform_", "i64");
    nb_scope_end();
}
END_TEST

START_TEST(kaiming)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 3);
    /* (out 20, in 10, k 3): fan_in 30, fan_out 60 */
    nb_tensor *w = nb_empty(NB_SHAPE(20, 10, 3), NB_F64);
    ck_assert_ok(nb_init_kaiming_uniform_(w, 0, NB_FAN_IN, NB_GAIN_RELU, &g));
    ck_assert_uniform_bound(w, sqrt(2.0) * sqrt(3.0 / 30.0));
    ck_assert_ok(nb_init_kaiming_uniform_(w, 0, NB_FAN_OUT, NB_GAIN_RELU, &g));
    ck_assert_uniform_bound(w, sqrt(2.0) * sqrt(3.0 / 60.0));
    /* leaky_relu with a = sqrt(5) is PyTorch's Linear default: bound 1 / sqrt(fan_in) */
    ck_assert_ok(nb_init_kaiming_uniform_(w, sqrt(5.0), NB_FAN_IN, NB_GAIN_LEAKY_RELU, &g));
    ck_assert_uniform_bound(w, 1 / sqrt(30.0));
    /* a only matters for leaky_relu */
    ck_assert_ok(nb_init_kaiming_uniform_(w, 3.0, NB_FAN_IN, NB_GAIN_LINEAR, &g));
    ck_assert_uniform_bound(w, sqrt(3.0 / 30.0));
    /* normal: std = gain / sqrt(fan) */
    nb_tensor *big = nb_empty(NB_SHAPE(256, 256), NB_F32);
    ck_assert_ok(nb_init_kaiming_normal_(big, 0, NB_FAN_IN, NB_GAIN_RELU, &g));
    stats s = stats_of(big);
    ck_assert_close(s.std, sqrt(2.0) / 16, sqrt(2.0) / 16 * 0.02);
    ck_assert_close(s.mean, 0, 0.003);
    ck_assert_ok(nb_init_kaiming_normal_(big, 0.2, NB_FAN_OUT, NB_GAIN_LEAKY_RELU, &g));
    ck_assert_close(stats_of(big).std, sqrt(2.0 / 1.04) / 16, sqrt(2.0 / 1.04) / 16 * 0.02);
    nb_tensor *rect = nb_empty(NB_SHAPE(64, 1024), NB_F32);
    ck_assert_ok(nb_init_kaiming_normal_(rect, 0, NB_FAN_OUT, NB_GAIN_LINEAR, &g));
    ck_assert_close(stats_of(rect).std, 1.0 / 8, 1.0 / 8 * 0.02);
    ck_assert_ok(nb_init_kaiming_normal_(rect, 0, NB_FAN_IN, NB_GAIN_LINEAR, &g));
    ck_assert_close(stats_of(rect).std, 1.0 / 32, 1.0 / 32 * 0.02);
    /* zero elements: nothing to do */
    ck_assert_ok(nb_init_kaiming_uniform_(nb_empty(NB_SHAPE(0, 5), NB_F32), 0, NB_FAN_IN, NB_GAIN_RELU, &g));
    /* errors */
    ck_assert_int_eq(nb_init_kaiming_uniform_(nb_empty(NB_SHAPE(7), NB_F32), 0, NB_FAN_IN, NB_GAIN_RELU, &g),
                     NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_init_kaiming_uniform_", "fewer than 2 dims", "(7)");
    ck_assert_int_eq(nb_init_kaiming_normal_(nb_empty(NB_SHAPE(7), NB_F32), 0, NB_FAN_IN, NB_GAIN_RELU, &g),
                     NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_init_kaiming_normal_", "(7)");
    ck_assert_int_eq(nb_init_kaiming_uniform_(w, 0, (nb_fan_mode)9, NB_GAIN_RELU, &g), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_init_kaiming_uniform_", "fan mode", "9");
    ck_assert_int_eq(nb_init_kaiming_normal_(w, 0, NB_FAN_IN, (nb_nonlinearity)17, &g), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_calculate_gain", "17");
    nb_scope_end();
}
END_TEST

START_TEST(reproducible_and_untracked)
{
    nb_scope_begin();
    nb_generator g1, g2;
    nb_generator_seed(&g1, 9);
    nb_generator_seed(&g2, 9);
    nb_tensor *a = nb_empty(NB_SHAPE(6, 5), NB_F32), *b = nb_empty(NB_SHAPE(6, 5), NB_F32);
    nb_set_requires_grad(a, true);
    ck_assert_ok(nb_init_kaiming_normal_(a, 0, NB_FAN_IN, NB_GAIN_RELU, &g1));
    ck_assert_ok(nb_init_kaiming_normal_(b, 0, NB_FAN_IN, NB_GAIN_RELU, &g2));
    for (int64_t i = 0; i < 30; i++) ck_assert(nb_get_flat(a, i) == nb_get_flat(b, i));
    /* an initialized parameter is still a leaf that requires grad */
    ck_assert(nb_is_leaf(a) && nb_requires_grad(a));
    ck_assert_ptr_null(nb_grad_fn_name(a));
    /* a NULL generator is the thread's default */
    nb_manual_seed(4);
    ck_assert_ok(nb_init_xavier_uniform_(a, 1.0, NULL));
    nb_generator_seed(&g1, 4);
    ck_assert_ok(nb_init_xavier_uniform_(b, 1.0, &g1));
    for (int64_t i = 0; i < 30; i++) ck_assert(nb_get_flat(a, i) == nb_get_flat(b, i));
    nb_scope_end();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("init");
    TCase *tc = tcase_create("init");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gains);
    tcase_add_test(tc, plain_fills);
    tcase_add_test(tc, xavier);
    tcase_add_test(tc, kaiming);
    tcase_add_test(tc, reproducible_and_untracked);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
