/* Binary elementwise ops: values, broadcasting, promotion, gradients (first and second order), errors. */
#include "helpers.h"

START_TEST(add_broadcasts_row_and_column)
{
    nb_scope_begin();
    nb_tensor *col = T_F64(NB_SHAPE(2, 1), 10, 20);
    nb_tensor *row = T_F64(NB_SHAPE(3), 1, 2, 3);
    nb_tensor *sum = nb_add(col, row);
    ck_assert_shape(sum, 2, 3);
    ck_assert_values(sum, 0, 11, 12, 13, 21, 22, 23);
    nb_scope_end();
}
END_TEST

START_TEST(arithmetic_values)
{
    nb_scope_begin();
    nb_tensor *a = T_F32(NB_SHAPE(4), 1, -2, 3, 0.5f);
    nb_tensor *b = T_F32(NB_SHAPE(4), 2, 4, -1, 2);
    ck_assert_values(nb_sub(a, b), 1e-6, -1, -6, 4, -1.5);
    ck_assert_values(nb_mul(a, b), 1e-6, 2, -8, -3, 1);
    ck_assert_values(nb_div(a, b), 1e-6, 0.5, -0.5, -3, 0.25);
    ck_assert_values(nb_pow(nb_abs(a), b), 1e-5, 1, 16, 1.0 / 3, 0.25);
    ck_assert_values(nb_maximum(a, b), 0, 2, 4, 3, 2);
    ck_assert_values(nb_minimum(a, b), 0, 1, -2, -1, 0.5);
    ck_assert_values(nb_add_scalar(a, 1), 1e-6, 2, -1, 4, 1.5);
    ck_assert_values(nb_rsub_scalar(1, a), 1e-6, 0, 3, -2, 0.5);
    ck_assert_values(nb_rdiv_scalar(1, b), 1e-6, 0.5, 0.25, -1, 0.5);
    ck_assert_values(nb_pow_scalar(b, 2), 1e-6, 4, 16, 1, 4);
    ck_assert_values(nb_rpow_scalar(2, b), 1e-6, 4, 16, 0.5, 4);
    ck_assert_values(nb_gt(a, b), 0, 0, 0, 1, 0);
    ck_assert_values(nb_eq_scalar(b, 2), 0, 1, 0, 0, 1);
    ck_assert_int_eq(nb_dtype_of(nb_gt(a, b)), NB_BOOL);
    nb_scope_end();
}
END_TEST

START_TEST(dtype_promotion)
{
    nb_scope_begin();
    nb_tensor *f = T_F32(NB_SHAPE(2), 1.5f, 2.5f);
    nb_tensor *d = T_F64(NB_SHAPE(2), 1, 1);
    nb_tensor *i = T_I64(NB_SHAPE(2), 3, 4);
    ck_assert_int_eq(nb_dtype_of(nb_add(f, d)), NB_F64);
    ck_assert_int_eq(nb_dtype_of(nb_add(i, f)), NB_F32);
    ck_assert_int_eq(nb_dtype_of(nb_add(i, i)), NB_I64);
    ck_assert_int_eq(nb_dtype_of(nb_div(i, i)), NB_F32); /* true division */
    ck_assert_values(nb_div(i, T_I64(NB_SHAPE(2), 2, 8)), 0, 1.5, 0.5);
    ck_assert_int_eq(nb_dtype_of(nb_mul_scalar(f, 2.0)), NB_F32); /* a scalar keeps the tensor's dtype */
    ck_assert_int_eq(nb_dtype_of(nb_mul_scalar(i, 2.0)), NB_I64);
    ck_assert_int_eq(nb_dtype_of(nb_mul_scalar(i, 0.5)), NB_F32);
    nb_scope_end();
}
END_TEST

START_TEST(incompatible_shapes_name_both)
{
    nb_scope_begin();
    nb_tensor *a = nb_zeros(NB_SHAPE(2, 3), NB_F32);
    nb_tensor *b = nb_zeros(NB_SHAPE(4), NB_F32);
    ck_assert_ptr_null(nb_add(a, b));
    ck_assert_error(NB_ERR_SHAPE, "nb_add", "(2, 3)", "(4)", "3 != 4");
    /* the error propagates through an expression; the first message survives */
    ck_assert_ptr_null(nb_mul(nb_exp(nb_sub(a, b)), a));
    ck_assert_error(NB_ERR_SHAPE, "nb_sub", "(2, 3)", "(4)");
    nb_scope_end();
}
END_TEST

/* Gradient checks. Each function takes its inputs from an array so nb_gradcheck can drive it. */
static nb_tensor *f_add(nb_tensor *const *x, void *u) { (void)u; return nb_add(x[0], x[1]); }
static nb_tensor *f_sub(nb_tensor *const *x, void *u) { (void)u; return nb_sub(x[0], x[1]); }
static nb_tensor *f_mul(nb_tensor *const *x, void *u) { (void)u; return nb_mul(x[0], x[1]); }
static nb_tensor *f_div(nb_tensor *const *x, void *u) { (void)u; return nb_div(x[0], nb_add_scalar(nb_abs(x[1]), 0.5)); }
static nb_tensor *f_pow(nb_tensor *const *x, void *u)
{
    (void)u;
    return nb_pow(nb_add_scalar(nb_abs(x[0]), 0.5), x[1]);
}
static nb_tensor *f_maximum(nb_tensor *const *x, void *u) { (void)u; return nb_maximum(x[0], x[1]); }
static nb_tensor *f_minimum(nb_tensor *const *x, void *u) { (void)u; return nb_minimum(x[0], x[1]); }
static nb_tensor *f_scalars(nb_tensor *const *x, void *u)
{
    (void)u;
    nb_tensor *t = nb_add_scalar(nb_mul_scalar(x[0], 3), 1);
    t = nb_sub_scalar(nb_div_scalar(t, 2), 0.25);
    t = nb_mul(t, nb_rdiv_scalar(1, nb_add_scalar(nb_square(x[0]), 1)));
    t = nb_add(t, nb_rsub_scalar(2, nb_pow_scalar(x[0], 3)));
    return nb_add(t, nb_rpow_scalar(1.5, x[0]));
}

START_TEST(gradients_same_shape)
{
    nb_scope_begin();
    nb_tensor *x[2] = {nbt_leaf(NB_SHAPE(2, 3), 1), nbt_leaf(NB_SHAPE(2, 3), 2)};
    ck_assert_gradcheck(f_add, NULL, 2, x, true);
    ck_assert_gradcheck(f_sub, NULL, 2, x, true);
    ck_assert_gradcheck(f_mul, NULL, 2, x, true);
    ck_assert_gradcheck(f_div, NULL, 2, x, true);
    ck_assert_gradcheck(f_pow, NULL, 2, x, true);
    ck_assert_gradcheck(f_maximum, NULL, 2, x, false);
    ck_assert_gradcheck(f_minimum, NULL, 2, x, false);
    ck_assert_gradcheck(f_scalars, NULL, 1, x, true);
    nb_scope_end();
}
END_TEST

START_TEST(gradients_broadcast)
{
    nb_scope_begin();
    nb_tensor *x[2] = {nbt_leaf(NB_SHAPE(2, 1, 3), 3), nbt_leaf(NB_SHAPE(4, 1), 4)};
    ck_assert_gradcheck(f_add, NULL, 2, x, true);
    ck_assert_gradcheck(f_sub, NULL, 2, x, true);
    ck_assert_gradcheck(f_mul, NULL, 2, x, true);
    ck_assert_gradcheck(f_div, NULL, 2, x, true);
    ck_assert_gradcheck(f_pow, NULL, 2, x, true);
    ck_assert_gradcheck(f_maximum, NULL, 2, x, false);
    nb_scope_end();
}
END_TEST

START_TEST(maximum_splits_ties)
{
    nb_scope_begin();
    nb_tensor *a = T_F64(NB_SHAPE(3), 1, 2, 3);
    nb_tensor *b = T_F64(NB_SHAPE(3), 1, 5, 0);
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    ck_assert_ok(nb_backward(nb_sum(nb_maximum(a, b), 0, NULL, false)));
    ck_assert_values(nb_grad(a), 0, 0.5, 0, 1);
    ck_assert_values(nb_grad(b), 0, 0.5, 1, 0);
    nb_scope_end();
}
END_TEST

START_TEST(pow_exponent_gradient_at_zero_base)
{
    nb_scope_begin();
    nb_tensor *a = T_F64(NB_SHAPE(2), 0, 2);
    nb_tensor *b = T_F64(NB_SHAPE(2), 2, 3);
    nb_set_requires_grad(b, true);
    ck_assert_ok(nb_backward(nb_sum(nb_pow(a, b), 0, NULL, false)));
    ck_assert_values(nb_grad(b), 1e-12, 0, 8 * log(2.0)); /* 0^b log 0 is taken as 0, not NaN */
    nb_scope_end();
}
END_TEST

/* Element i of t is v: the same infinity or NaN, or within tol of a finite v. */
static void check_ieee(nb_tensor *t, int64_t n, const double *v, double tol, const char *what)
{
    ck_assert_msg(t != NULL, "%s is NULL: %s", what, nb_last_error());
    ck_assert_int_eq(nb_numel(t), n);
    for (int64_t i = 0; i < n; i++) {
        double got = nb_get_flat(t, i);
        bool ok = isnan(v[i]) ? isnan(got) : isinf(v[i]) ? got == v[i] : fabs(got - v[i]) <= tol;
        ck_assert_msg(ok, "%s element %lld = %.10g, expected %.10g", what, (long long)i, got, v[i]);
    }
}
#define CHECK_IEEE(t, tol, ...)                                                                              \
    check_ieee(t, (int64_t)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)), (const double[]){__VA_ARGS__}, \
               tol, #t)

/* PyTorch 1.13: torch.tensor([True, False, True]) + 2 etc. */
START_TEST(scalar_with_bool_tensor)
{
    nb_scope_begin();
    nb_tensor *b = nb_to_dtype(T_I64(NB_SHAPE(3), 1, 0, 1), NB_BOOL);
    nb_tensor *r = nb_add_scalar(b, 2);
    ck_assert_int_eq(nb_dtype_of(r), NB_I64); /* an integral scalar makes bool arithmetic i64, not bool */
    ck_assert_values(r, 0, 3, 2, 3);
    ck_assert_values(nb_mul_scalar(b, 3), 0, 3, 0, 3);
    ck_assert_values(nb_eq_scalar(b, 2), 0, 0, 0, 0);
    ck_assert_values(nb_eq_scalar(b, 1), 0, 1, 0, 1);
    ck_assert_values(nb_gt_scalar(b, 0.5), 0, 1, 0, 1);
    r = nb_add_scalar(b, 0.5);
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    ck_assert_values(r, 0, 1.5, 0.5, 1.5);
    /* torch refuses bool subtraction; nabla's nb_sub does it in i64, and the scalar forms agree with it */
    nb_tensor *ones = nb_to_dtype(T_I64(NB_SHAPE(3), 1, 1, 1), NB_BOOL);
    nb_tensor *d = nb_sub(b, ones);
    ck_assert_int_eq(nb_dtype_of(d), NB_I64);
    ck_assert_values(d, 0, 0, -1, 0);
    r = nb_sub_scalar(b, 1);
    ck_assert_int_eq(nb_dtype_of(r), NB_I64);
    ck_assert_values(r, 0, 0, -1, 0);
    ck_assert_values(nb_rsub_scalar(1, b), 0, 0, 1, 0);
    ck_assert_values(nb_sub(ones, b), 0, 0, 1, 0);
    nb_scope_end();
}
END_TEST

/* An infinite, NaN or beyond-int64 scalar is a float scalar: the result is f32, not saturated or wrapped. */
/* i64 arithmetic wraps around on overflow, as PyTorch's (two's complement), and so does an i64 sum. */
START_TEST(i64_overflow_wraps)
{
    nb_scope_begin();
    nb_tensor *big = T_I64(NB_SHAPE(2), INT64_MAX, INT64_MIN);
    nb_tensor *one = T_I64(NB_SHAPE(2), 1, 1);
    ck_assert(nb_get_flat(nb_add(big, one), 0) == (double)INT64_MIN);
    ck_assert(nb_get_flat(nb_sub(big, one), 1) == (double)INT64_MAX);
    nb_tensor *p = nb_mul(T_I64(NB_SHAPE(1), (int64_t)1 << 62), T_I64(NB_SHAPE(1), 4));
    ck_assert(nb_get_flat(p, 0) == 0);
    int64_t out[1];
    ck_assert_ok(nb_to_array(nb_sum(T_I64(NB_SHAPE(2), INT64_MAX, 2), 0, NULL, false), out, 1, NB_I64));
    ck_assert(out[0] == INT64_MIN + 1);
    nb_scope_end();
}
END_TEST

START_TEST(non_integral_scalars_with_i64_tensor)
{
    nb_scope_begin();
    nb_tensor *i = T_I64(NB_SHAPE(3), 5, -7, 2);
    nb_tensor *r = nb_add_scalar(i, INFINITY);
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    CHECK_IEEE(r, 0, INFINITY, INFINITY, INFINITY);
    CHECK_IEEE(nb_add_scalar(i, -INFINITY), 0, -INFINITY, -INFINITY, -INFINITY);
    CHECK_IEEE(nb_mul_scalar(i, INFINITY), 0, INFINITY, -INFINITY, INFINITY);
    r = nb_add_scalar(i, NAN);
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    CHECK_IEEE(r, 0, NAN, NAN, NAN);
    r = nb_mul_scalar(i, 1e19);
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    ck_assert_values(r, 0, (float)5e19, (float)-7e19, (float)2e19);
    ck_assert_int_eq(nb_dtype_of(nb_add_scalar(i, 0x1p63)), NB_F32);  /* 2^63 is one past INT64_MAX */
    /* INT64_MIN fits (added to non-negative values: i64 overflow is not what this test is about) */
    ck_assert_int_eq(nb_dtype_of(nb_add_scalar(nb_abs(i), -0x1p63)), NB_I64);
    ck_assert_values(nb_eq_scalar(i, INFINITY), 0, 0, 0, 0);
    ck_assert_values(nb_lt_scalar(i, INFINITY), 0, 1, 1, 1);
    ck_assert_values(nb_gt_scalar(i, NAN), 0, 0, 0, 0);
    r = nb_add_scalar(i, 2.5);
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    ck_assert_values(r, 0, 7.5, -4.5, 4.5);
    nb_scope_end();
}
END_TEST

/* torch: x ** 0 has gradient 0 everywhere, x = 0 included (b a^(b-1) would be 0 inf = NaN). */
START_TEST(pow_zero_exponent_gradient_at_zero_base)
{
    nb_scope_begin();
    for (int d = 0; d < 2; d++) {
        nb_tensor *x = nb_to_dtype(T_F64(NB_SHAPE(3), 0, 1, 2), d ? NB_F32 : NB_F64);
        nb_set_requires_grad(x, true);
        ck_assert_ok(nb_backward(nb_sum(nb_pow_scalar(x, 0), 0, NULL, false)));
        CHECK_IEEE(nb_grad(x), 0, 0, 0, 0);
    }
    /* torch.pow(a, b) with a = [0, 0, 0, 0, 2, nan], b = [0, 2, -1, -2, 0, 0] */
    nb_tensor *a = T_F64(NB_SHAPE(6), 0, 0, 0, 0, 2, NAN);
    nb_tensor *b = T_F64(NB_SHAPE(6), 0, 2, -1, -2, 0, 0);
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    ck_assert_ok(nb_backward(nb_sum(nb_pow(a, b), 0, NULL, false)));
    CHECK_IEEE(nb_grad(a), 0, 0, 0, -INFINITY, -INFINITY, 0, 0);
    CHECK_IEEE(nb_grad(b), 1e-15, 0, 0, -INFINITY, -INFINITY, log(2.0), NAN);
    /* the base is broadcast against a larger exponent */
    nb_tensor *z = T_F64(NB_SHAPE(1), 0);
    nb_tensor *e = T_F64(NB_SHAPE(3), 0, 1, 2);
    nb_set_requires_grad(z, true);
    nb_set_requires_grad(e, true);
    ck_assert_ok(nb_backward(nb_sum(nb_pow(z, e), 0, NULL, false)));
    CHECK_IEEE(nb_grad(z), 0, 1); /* 0 + 1 + 0 */
    CHECK_IEEE(nb_grad(e), 0, 0, 0, 0);
    nb_scope_end();
}
END_TEST

static nb_tensor *f_pow_plain(nb_tensor *const *x, void *u) { (void)u; return nb_pow(x[0], x[1]); }
static nb_tensor *f_pow_scalar0(nb_tensor *const *x, void *u) { (void)u; return nb_pow_scalar(x[0], 0); }

/* Exponents exactly 0 (and bases exactly 0 with an exponent of 0): first and second derivatives against finite
 * differences. d/db d/da a^b = 1/a at b = 0 must survive the masking. */
START_TEST(pow_gradcheck_at_zero_exponent)
{
    nb_scope_begin();
    nb_tensor *x[2] = {T_F64(NB_SHAPE(4), 0.7, 1.3, 2, 0.4), T_F64(NB_SHAPE(4), 0, 0, 0, 2)};
    nb_set_requires_grad(x[0], true);
    nb_set_requires_grad(x[1], true);
    ck_assert_gradcheck(f_pow_plain, NULL, 2, x, true);
    nb_tensor *z[1] = {T_F64(NB_SHAPE(3), 0, 1, -2)};
    nb_set_requires_grad(z[0], true);
    ck_assert_gradcheck(f_pow_scalar0, NULL, 1, z, true);
    nb_scope_end();
}
END_TEST

/* torch.maximum / torch.minimum: where either input is NaN, both get the whole gradient; ties split. */
START_TEST(maximum_minimum_with_nan)
{
    nb_scope_begin();
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F32 : NB_F64;
        nb_tensor *a = nb_to_dtype(T_F64(NB_SHAPE(5), NAN, 1, 5, NAN, 2), dt);
        nb_tensor *b = nb_to_dtype(T_F64(NB_SHAPE(5), 0, NAN, 2, NAN, 2), dt);
        nb_set_requires_grad(a, true);
        nb_set_requires_grad(b, true);
        ck_assert_ok(nb_backward(nb_sum(nb_maximum(a, b), 0, NULL, false)));
        ck_assert_values(nb_grad(a), 0, 1, 1, 1, 1, 0.5);
        ck_assert_values(nb_grad(b), 0, 1, 1, 0, 1, 0.5);
        nb_zero_grad(a);
        nb_zero_grad(b);
        ck_assert_ok(nb_backward(nb_sum(nb_minimum(a, b), 0, NULL, false)));
        ck_assert_values(nb_grad(a), 0, 1, 1, 0, 1, 0.5);
        ck_assert_values(nb_grad(b), 0, 1, 1, 1, 1, 0.5);
    }
    /* the masks on ordinary values, broadcast, against finite differences */
    nb_tensor *x[2] = {nbt_leaf(NB_SHAPE(2, 1, 3), 5), nbt_leaf(NB_SHAPE(4, 1), 6)};
    ck_assert_gradcheck(f_maximum, NULL, 2, x, false);
    ck_assert_gradcheck(f_minimum, NULL, 2, x, false);
    nb_scope_end();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("binary");
    TCase *tc = tcase_create("binary");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, add_broadcasts_row_and_column);
    tcase_add_test(tc, arithmetic_values);
    tcase_add_test(tc, dtype_promotion);
    tcase_add_test(tc, incompatible_shapes_name_both);
    tcase_add_test(tc, gradients_same_shape);
    tcase_add_test(tc, gradients_broadcast);
    tcase_add_test(tc, maximum_splits_ties);
    tcase_add_test(tc, pow_exponent_gradient_at_zero_base);
    tcase_add_test(tc, scalar_with_bool_tensor);
    tcase_add_test(tc, non_integral_scalars_with_i64_tensor);
    tcase_add_test(tc, i64_overflow_wraps);
    tcase_add_test(tc, pow_zero_exponent_gradient_at_zero_base);
    tcase_add_test(tc, pow_gradcheck_at_zero_exponent);
    tcase_add_test(tc, maximum_minimum_with_nan);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
