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
    /* torch: "Subtraction, the `-` operator, with a bool tensor is not supported" for b - 1 and 1 - b */
    ck_assert_ptr_null(nb_sub_scalar(b, 1));
    ck_assert_error(NB_ERR_DTYPE, "nb_sub_scalar", "bool tensor", "(3)");
    ck_assert_ptr_null(nb_rsub_scalar(1, b));
    ck_assert_error(NB_ERR_DTYPE, "nb_rsub_scalar", "bool tensor");
    nb_scope_end();
}
END_TEST

/* PyTorch 1.13 with T = tensor([True, False, True, False]) and U = tensor([True, True, False, False]):
 * T + U, torch.maximum(T, U) -> bool [T, T, T, F]; T * U, torch.minimum(T, U) -> bool [T, F, F, F];
 * T / U -> float32 [1, 0, inf, nan]; T - U raises "Subtraction, the `-` operator, with two bool tensors is not
 * supported", T - tensor([1, 2, 3, 4]) and tensor([1.5]) - T "... with a bool tensor ..."; T ** U raises
 * ("pow" not implemented for 'Bool'); T + tensor([1, 2, 3, 4]) is int64, T * tensor([1.5, 2, 3, 4]) float32.
 * Scalars: T + 1 int64 [2, 1, 2, 1], T * 2 int64, T / 2 float32 [0.5, 0, 0.5, 0], 2 / T float32 [2, inf, 2, inf],
 * T ** 2 int64 [1, 0, 1, 0], T ** 0.5 float32, 2 ** T int64 [2, 1, 2, 1], T ** -1 raises. */
START_TEST(bool_arithmetic_matches_torch)
{
    nb_scope_begin();
    nb_tensor *t = nb_to_dtype(T_I64(NB_SHAPE(4), 1, 0, 1, 0), NB_BOOL);
    nb_tensor *u = nb_to_dtype(T_I64(NB_SHAPE(4), 1, 1, 0, 0), NB_BOOL);
    nb_tensor *r;
    nb_tensor *(*const or_ops[2])(nb_tensor *, nb_tensor *) = {nb_add, nb_maximum};
    nb_tensor *(*const and_ops[2])(nb_tensor *, nb_tensor *) = {nb_mul, nb_minimum};
    for (int k = 0; k < 2; k++) {
        r = or_ops[k](t, u);
        ck_assert_int_eq(nb_dtype_of(r), NB_BOOL);
        ck_assert_values(r, 0, 1, 1, 1, 0);
        r = and_ops[k](t, u);
        ck_assert_int_eq(nb_dtype_of(r), NB_BOOL);
        ck_assert_values(r, 0, 1, 0, 0, 0);
    }
    /* broadcasting and a strided operand go through the same loops */
    ck_assert_values(nb_add(nb_slice(t, 0, 0, 4, 2), nb_to_dtype(T_I64(NB_SHAPE(2, 1), 0, 1), NB_BOOL)), 0, 1, 1, 1,
                     1);
    r = nb_div(t, u);
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    CHECK_IEEE(r, 0, 1, 0, INFINITY, NAN);
    ck_assert_ptr_null(nb_sub(t, u));
    ck_assert_error(NB_ERR_DTYPE, "nb_sub", "two bool tensors", "(4)");
    ck_assert_ptr_null(nb_sub(t, T_I64(NB_SHAPE(4), 1, 2, 3, 4)));
    ck_assert_error(NB_ERR_DTYPE, "nb_sub", "a bool tensor", "bool (4)", "i64 (4)");
    ck_assert_ptr_null(nb_sub(T_F32(NB_SHAPE(1), 1.5f), t));
    ck_assert_error(NB_ERR_DTYPE, "nb_sub", "a bool tensor", "f32 (1)", "bool (4)");
    ck_assert_ptr_null(nb_pow(t, u));
    ck_assert_error(NB_ERR_DTYPE, "nb_pow", "two bool tensors");
    ck_assert_int_eq(nb_dtype_of(nb_add(t, T_I64(NB_SHAPE(4), 1, 2, 3, 4))), NB_I64);
    ck_assert_values(nb_add(t, T_I64(NB_SHAPE(4), 1, 2, 3, 4)), 0, 2, 2, 4, 4);
    ck_assert_int_eq(nb_dtype_of(nb_mul(t, T_F32(NB_SHAPE(4), 1.5f, 2, 3, 4))), NB_F32);
    ck_assert_int_eq(nb_dtype_of(nb_maximum(t, T_I64(NB_SHAPE(4), 3, 3, 3, 3))), NB_I64);

    r = nb_add_scalar(t, 1);
    ck_assert_int_eq(nb_dtype_of(r), NB_I64);
    ck_assert_values(r, 0, 2, 1, 2, 1);
    ck_assert_int_eq(nb_dtype_of(nb_mul_scalar(t, 2)), NB_I64);
    r = nb_div_scalar(t, 2);
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    ck_assert_values(r, 0, 0.5, 0, 0.5, 0);
    CHECK_IEEE(nb_rdiv_scalar(2, t), 0, 2, INFINITY, 2, INFINITY);
    r = nb_pow_scalar(t, 2);
    ck_assert_int_eq(nb_dtype_of(r), NB_I64);
    ck_assert_values(r, 0, 1, 0, 1, 0);
    ck_assert_int_eq(nb_dtype_of(nb_pow_scalar(t, 0.5)), NB_F32);
    r = nb_rpow_scalar(2, t);
    ck_assert_int_eq(nb_dtype_of(r), NB_I64);
    ck_assert_values(r, 0, 2, 1, 2, 1);
    ck_assert_ptr_null(nb_pow_scalar(t, -1));
    ck_assert_error(NB_ERR_VALUE, "nb_pow_scalar", "negative integer powers", "bool", "(4)", "-1");
    nb_scope_end();
}
END_TEST

static void check_i64(nb_tensor *t, int64_t n, const int64_t *expected, const char *what)
{
    ck_assert_msg(t != NULL, "%s is NULL: %s", what, nb_last_error());
    ck_assert_int_eq(nb_dtype_of(t), NB_I64);
    ck_assert_int_eq(nb_numel(t), n);
    int64_t got[8];
    ck_assert_ok(nb_to_array(t, got, n, NB_I64));
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == expected[i], "%s element %lld = %lld, expected %lld", what, (long long)i,
                      (long long)got[i], (long long)expected[i]);
}
#define CHECK_I64(t, ...)                                                                                    \
    check_i64(t, (int64_t)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                        \
              (const int64_t[]){__VA_ARGS__}, #t)

/* PyTorch 1.13 with a = tensor([-3, -1, 0, 2, 5]) (int64):
 *   a ** 2 -> int64 [9, 1, 0, 4, 25];  a ** 0 -> int64 ones;  a ** 0.5 -> float32 [nan, nan, 0, 1.41421354, 2.23606801]
 *   a ** tensor([2, 3, 0, 1, 2]) -> int64 [9, -1, 1, 2, 25];  a ** -1 raises "Integers to negative integer powers
 *   are not allowed."; a ** tensor([2., 3, 0, 1, 2]) -> float32; a ** float('inf') -> float32 [inf, 1, 0, inf, inf]
 *   tensor([0, 1, -1, 2, -2, -1]) ** tensor([-1, -1, -1, -1, -2, -2]) -> [0, 1, -1, 0, 0, 1]
 *   2 ** a -> int64 [0, 0, 1, 4, 32];  2 ** tensor([0, 3, 62, 63, 64]) -> [1, 8, 2^62, -2^63, 0]
 *   (-2) ** tensor([0, 1, 3]) -> [1, -2, -8];  3 ** tensor([-1, 2]) -> [0, 9];  2.5 ** a -> float32
 *   tensor([3, -3, 2]) ** tensor([41, 41, 63]) -> [-420491770248316829, 420491770248316829, -2^63] (wrapped)
 *   a ** tensor([True, False, True, True, False]) -> int64 [-3, 1, 0, 2, 1] */
START_TEST(integer_pow_matches_torch)
{
    nb_scope_begin();
    nb_tensor *a = T_I64(NB_SHAPE(5), -3, -1, 0, 2, 5);
    CHECK_I64(nb_pow_scalar(a, 2), 9, 1, 0, 4, 25);
    CHECK_I64(nb_pow_scalar(a, 0), 1, 1, 1, 1, 1);
    nb_tensor *r = nb_pow_scalar(a, 0.5);
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    CHECK_IEEE(r, 1e-7, NAN, NAN, 0, 1.41421354, 2.23606801);
    CHECK_I64(nb_pow(a, T_I64(NB_SHAPE(5), 2, 3, 0, 1, 2)), 9, -1, 1, 2, 25);
    ck_assert_ptr_null(nb_pow_scalar(a, -1));
    ck_assert_error(NB_ERR_VALUE, "nb_pow_scalar", "negative integer powers", "i64", "(5)");
    ck_assert_int_eq(nb_dtype_of(nb_pow(a, T_F32(NB_SHAPE(5), 2, 3, 0, 1, 2))), NB_F32);
    r = nb_pow_scalar(a, INFINITY);
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    CHECK_IEEE(r, 0, INFINITY, 1, 0, INFINITY, INFINITY);
    CHECK_I64(nb_pow(T_I64(NB_SHAPE(6), 0, 1, -1, 2, -2, -1), T_I64(NB_SHAPE(6), -1, -1, -1, -1, -2, -2)), 0, 1, -1,
              0, 0, 1);
    CHECK_I64(nb_rpow_scalar(2, a), 0, 0, 1, 4, 32);
    CHECK_I64(nb_rpow_scalar(2, T_I64(NB_SHAPE(5), 0, 3, 62, 63, 64)), 1, 8, INT64_C(4611686018427387904), INT64_MIN,
              0);
    CHECK_I64(nb_rpow_scalar(-2, T_I64(NB_SHAPE(3), 0, 1, 3)), 1, -2, -8);
    CHECK_I64(nb_rpow_scalar(3, T_I64(NB_SHAPE(2), -1, 2)), 0, 9);
    r = nb_rpow_scalar(2.5, a);
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    ck_assert_values(r, 1e-7, 0.064, 0.4, 1, 6.25, 97.65625);
    CHECK_I64(nb_pow(T_I64(NB_SHAPE(3), 3, -3, 2), T_I64(NB_SHAPE(3), 41, 41, 63)), INT64_C(-420491770248316829),
              INT64_C(420491770248316829), INT64_MIN);
    CHECK_I64(nb_pow(a, nb_to_dtype(T_I64(NB_SHAPE(5), 1, 0, 1, 1, 0), NB_BOOL)), -3, 1, 0, 2, 1);
    /* float powers are unchanged: f32 stays f32, and an integer exponent tensor promotes to it */
    r = nb_pow(T_F32(NB_SHAPE(2), 2, 3), T_I64(NB_SHAPE(2), -1, 2));
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    ck_assert_values(r, 0, 0.5, 9);
    ck_assert_values(nb_pow_scalar(T_F64(NB_SHAPE(2), 2, 4), -1), 0, 0.5, 0.25);
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
    tcase_add_test(tc, bool_arithmetic_matches_torch);
    tcase_add_test(tc, integer_pow_matches_torch);
    tcase_add_test(tc, non_integral_scalars_with_i64_tensor);
    tcase_add_test(tc, i64_overflow_wraps);
    tcase_add_test(tc, pow_zero_exponent_gradient_at_zero_base);
    tcase_add_test(tc, pow_gradcheck_at_zero_exponent);
    tcase_add_test(tc, maximum_minimum_with_nan);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
