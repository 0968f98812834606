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
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
