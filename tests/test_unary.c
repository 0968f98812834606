/* Unary elementwise ops and activations: values against reference numbers (computed with mpmath at 40
 * digits) in f32 and f64, extreme inputs, integer inputs, gradients at kinks, first and second order gradient
 * checks on contiguous and non-contiguous inputs, and errors. */
#include "helpers.h"

#include <stdint.h>

typedef nb_tensor *(*unary_fn)(nb_tensor *);

static nb_tensor *leaky_relu_01(nb_tensor *t) { return nb_leaky_relu(t, 0.1); }
static nb_tensor *elu_07(nb_tensor *t) { return nb_elu(t, 0.7); }
static nb_tensor *gelu_erf(nb_tensor *t) { return nb_gelu(t, false); }
static nb_tensor *gelu_tanh(nb_tensor *t) { return nb_gelu(t, true); }
static nb_tensor *softplus_default(nb_tensor *t) { return nb_softplus(t, 1, 20); }
/* beta 2, threshold 1: inputs above 0.5 take the linear branch (x = 0.5 itself does not: the test is >) */
static nb_tensor *softplus_2_1(nb_tensor *t) { return nb_softplus(t, 2, 1); }
static nb_tensor *clamp_both(nb_tensor *t) { return nb_clamp(t, -1, 0.4); }
static nb_tensor *clamp_lo(nb_tensor *t) { return nb_clamp(t, -0.3, INFINITY); }
static nb_tensor *clamp_hi(nb_tensor *t) { return nb_clamp(t, -INFINITY, 0.1); }

/* ------------------------------------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------------------------------- */
typedef struct value_case {
    const char *name;
    unary_fn f;
    bool positive; /* evaluated on P instead of X */
    double y[6];
} value_case;

static const double X[6] = {-2.5, -1, -0.25, 0, 0.5, 2};
static const double P[6] = {0.25, 1, 2, 9, 0.5, 4};

static const value_case value_cases[] = {
    {"neg", nb_neg, false, {2.5, 1, 0.25, 0, -0.5, -2}},
    {"square", nb_square, false, {6.25, 1, 0.0625, 0, 0.25, 4}},
    {"abs", nb_abs, false, {2.5, 1, 0.25, 0, 0.5, 2}},
    {"relu", nb_relu, false, {0, 0, 0, 0, 0.5, 2}},
    {"leaky_relu", leaky_relu_01, false, {-0.25, -0.1, -0.025, 0, 0.5, 2}},
    {"clamp", clamp_both, false, {-1, -1, -0.25, 0, 0.4, 0.4}},
    {"clamp_lo", clamp_lo, false, {-0.3, -0.3, -0.25, 0, 0.5, 2}},
    {"clamp_hi", clamp_hi, false, {-2.5, -1, -0.25, 0, 0.1, 0.1}},
    {"exp", nb_exp, false, {0.0820849986238988, 0.36787944117144233, 0.77880078307140488, 1, 1.6487212707001282,
                            7.3890560989306504}},
    {"sin", nb_sin, false, {-0.59847214410395655, -0.8414709848078965, -0.24740395925452294, 0, 0.47942553860420301,
                            0.90929742682568171}},
    {"cos", nb_cos, false, {-0.8011436155469337, 0.54030230586813977, 0.96891242171064473, 1, 0.87758256189037276,
                            -0.41614683654714241}},
    {"tanh", nb_tanh, false, {-0.98661429815143031, -0.76159415595576485, -0.24491866240370913, 0,
                              0.46211715726000974, 0.9640275800758169}},
    {"sigmoid", nb_sigmoid, false, {0.075858180021243546, 0.2689414213699951, 0.43782349911420188, 0.5,
                                    0.62245933120185459, 0.88079707797788243}},
    {"elu", elu_07, false, {-0.64254050096327087, -0.44248439117999039, -0.1548394518500166, 0, 0.5, 2}},
    {"gelu", gelu_erf, false, {-0.015524163314440337, -0.15865525393145705, -0.10032341857926907, 0,
                               0.34573123063700656, 1.9544997361036416}},
    {"gelu_tanh", gelu_tanh, false, {-0.015084266089998582, -0.15880800939172329, -0.100324649298315, 0,
                                     0.34571400982514394, 1.954597694087775}},
    {"silu", nb_silu, false, {-0.18964545005310887, -0.2689414213699951, -0.10945587477855047, 0, 0.3112296656009273,
                              1.7615941559557649}},
    {"softplus", softplus_default, false, {0.078889734292549626, 0.31326168751822281, 0.57593941987884356,
                                           0.69314718055994529, 0.97407698418010669, 2.1269280110429727}},
    {"softplus_2_1", softplus_2_1, false, {0.0033576742445590342, 0.063464005521486247, 0.23703849209005334,
                                           0.34657359027997264, 0.6566308437591114, 2}},
    {"log", nb_log, true, {-1.3862943611198906, 0, 0.69314718055994529, 2.1972245773362196, -0.69314718055994529,
                           1.3862943611198906}},
    {"sqrt", nb_sqrt, true, {0.5, 1, 1.4142135623730951, 3, 0.70710678118654757, 2}},
    {"rsqrt", nb_rsqrt, true, {2, 1, 0.70710678118654757, 0.33333333333333331, 1.4142135623730951, 0.5}},
    {"reciprocal", nb_reciprocal, true, {4, 1, 0.5, 0.1111111111111111, 2, 0.25}},
};
#define N_VALUE_CASES (int)(sizeof value_cases / sizeof *value_cases)

/* Each case on a contiguous (2, 3) input, then on the same values seen through a transposed (3, 2) tensor. */
static void check_values(nb_dtype dt, double rel_tol)
{
    nb_scope_begin();
    for (int c = 0; c < 2 * N_VALUE_CASES; c++) {
        const value_case *vc = &value_cases[c % N_VALUE_CASES];
        bool transposed = c >= N_VALUE_CASES;
        const double *v = vc->positive ? P : X;
        nb_tensor *x;
        if (transposed) {
            double vt[6];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++) vt[j * 2 + i] = v[i * 3 + j];
            x = nb_transpose(nb_to_dtype(nb_from_array(vt, NB_SHAPE(3, 2), NB_F64), dt), 0, 1);
            ck_assert_int_eq(nb_is_contiguous(x), 0);
        } else {
            x = nb_to_dtype(nb_from_array(v, NB_SHAPE(2, 3), NB_F64), dt);
        }
        nb_tensor *y = vc->f(x);
        ck_assert_msg(y != NULL, "%s (%s%s): %s", vc->name, nb_dtype_name(dt), transposed ? ", transposed" : "",
                      nb_last_error());
        ck_assert_int_eq(nb_dtype_of(y), dt);
        ck_assert_shape(y, 2, 3);
        for (int i = 0; i < 6; i++) {
            double got = nb_get_flat(y, i), want = vc->y[i];
            ck_assert_msg(fabs(got - want) <= rel_tol * fmax(1, fabs(want)),
                          "%s (%s%s) at x = %g: %.17g, expected %.17g", vc->name, nb_dtype_name(dt), transposed ? ", transposed" : "", v[i], got, want);
        }
    }
    nb_scope_end();
}

START_TEST(values_f64) { check_values(NB_F64, 1e-15); }
END_TEST

START_TEST(values_f32) { check_values(NB_F32, 1e-6); }
END_TEST

START_TEST(gelu_reference_numbers)
{
    nb_scope_begin();
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F32 : NB_F64;
        double tol = d ? 1e-7 : 3e-16;
        nb_tensor *one = nb_scalar(1, dt);
        ck_assert_close(nb_item(nb_gelu(one, false)), 0.8413447460685429, tol);
        ck_assert_close(nb_item(nb_gelu(one, true)), 0.8411919906082768, tol);
    }
    /* the erf form is computed with erfc, so far negative inputs keep their relative precision */
    double tail = nb_item(nb_gelu(nb_scalar(-10, NB_F64), false));
    ck_assert_msg(fabs(tail / -7.6198530241605263e-23 - 1) < 1e-13, "gelu(-10) = %.17g", tail);
    nb_scope_end();
}
END_TEST

/* Every value of t (row-major) is exactly the listed value; handles infinities and signed zeros. */
static void expect_exact(nb_tensor *t, int n, const double *want, const char *what)
{
    ck_assert_msg(t != NULL, "%s: %s", what, nb_last_error());
    ck_assert_int_eq(nb_numel(t), n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(nb_get_flat(t, i) == want[i], "%s element %d = %.17g, expected %.17g", what, i,
                      nb_get_flat(t, i), want[i]);
}
#define EXPECT_EXACT(t, ...)                                                                           \
    expect_exact(t, (int)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)), (const double[]){__VA_ARGS__}, #t)

START_TEST(extreme_inputs)
{
    nb_scope_begin();
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F32 : NB_F64;
        nb_tensor *big = nb_to_dtype(T_F64(NB_SHAPE(2), -1000, 1000), dt);
        EXPECT_EXACT(nb_sigmoid(big), 0, 1);
        EXPECT_EXACT(nb_tanh(big), -1, 1);
        EXPECT_EXACT(nb_softplus(big, 1, 20), 0, 1000);
        EXPECT_EXACT(nb_softplus(big, 1, INFINITY), 0, 1000); /* no threshold: still no overflow */
        EXPECT_EXACT(nb_silu(big), 0, 1000);
        EXPECT_EXACT(nb_gelu(big, false), 0, 1000);
        EXPECT_EXACT(nb_gelu(big, true), 0, 1000);
        EXPECT_EXACT(nb_elu(big, 0.5), -0.5, 1000);
        EXPECT_EXACT(nb_exp(big), 0, INFINITY);
        nb_tensor *zero = nb_zeros(NB_SHAPE(1), dt);
        EXPECT_EXACT(nb_log(zero), -INFINITY); /* as PyTorch */
        EXPECT_EXACT(nb_reciprocal(zero), INFINITY);
        EXPECT_EXACT(nb_rsqrt(zero), INFINITY);
        ck_assert(isnan(nb_item(nb_log(nb_full(NB_SHAPE(1), -1, dt)))));
        ck_assert(isnan(nb_item(nb_sqrt(nb_full(NB_SHAPE(1), -1, dt)))));
        /* NaN passes through the piecewise ops */
        nb_tensor *nan = nb_full(NB_SHAPE(1), NAN, dt);
        ck_assert(isnan(nb_item(nb_relu(nan))));
        ck_assert(isnan(nb_item(nb_clamp(nan, -1, 1))));
        ck_assert(isnan(nb_item(nb_sigmoid(nan))));
        ck_assert(isnan(nb_item(nb_softplus(nan, 1, 20))));
        /* an f32 bound beyond the float range means no bound */
        EXPECT_EXACT(nb_clamp(big, -1e300, 1e300), -1000, 1000);
        double huge = d ? INFINITY : 1e300; /* what 1e300 becomes in the dtype */
        EXPECT_EXACT(nb_clamp(big, 1e300, INFINITY), huge, huge);
    }
    /* f64: exp overflows only beyond 709.78; f32 beyond 88.72 */
    EXPECT_EXACT(nb_exp(T_F64(NB_SHAPE(2), 709, 710)), exp(709.0), INFINITY);
    EXPECT_EXACT(nb_exp(T_F32(NB_SHAPE(2), 88, 89)), (double)expf(88.0f), INFINITY);
    /* tails keep relative precision: log1p for softplus, the e/(1+e) branch for sigmoid, expm1 for elu */
    double sp = nb_item(nb_softplus(nb_scalar(-50, NB_F64), 1, 20));
    ck_assert_msg(fabs(sp / 1.9287498479639178e-22 - 1) < 1e-14, "softplus(-50) = %.17g", sp);
    double sg = nb_item(nb_sigmoid(nb_scalar(-100, NB_F64)));
    ck_assert_msg(fabs(sg / 3.7200759760208361e-44 - 1) < 1e-14, "sigmoid(-100) = %.17g", sg);
    double si = nb_item(nb_silu(nb_scalar(-100, NB_F64)));
    ck_assert_msg(fabs(si / -3.7200759760208357e-42 - 1) < 1e-14, "silu(-100) = %.17g", si);
    double el = nb_item(nb_elu(nb_scalar(-1e-10, NB_F64), 1));
    ck_assert_msg(fabs(el / -9.9999999994999994e-11 - 1) < 1e-15, "elu(-1e-10) = %.17g", el);
    /* just above the threshold: the linear branch, exactly x */
    EXPECT_EXACT(nb_softplus(nb_scalar(20.5, NB_F64), 1, 20), 20.5);
    ck_assert_close(nb_item(nb_softplus(nb_scalar(15, NB_F64), 1, 20)), 15.000000305902274, 1e-14);
    nb_scope_end();
}
END_TEST

START_TEST(clamp_bounds)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(5), -3, -1, 0, 1, 3);
    ck_assert_values(nb_clamp(x, -1, 1), 0, -1, -1, 0, 1, 1);
    ck_assert_values(nb_clamp(x, -INFINITY, INFINITY), 0, -3, -1, 0, 1, 3);
    ck_assert_values(nb_clamp(x, 2, 1), 0, 1, 1, 1, 1, 1); /* lo > hi: everything is hi, as torch.clamp */
    ck_assert_values(nb_clamp(x, 0, 0), 0, 0, 0, 0, 0, 0);
    nb_scope_end();
}
END_TEST

START_TEST(integer_inputs)
{
    nb_scope_begin();
    nb_tensor *i = T_I64(NB_SHAPE(5), -7, -1, 0, 3, INT64_MIN);
    nb_tensor *n = nb_neg(i), *a = nb_abs(i), *s = nb_square(i), *r = nb_relu(i);
    ck_assert_int_eq(nb_dtype_of(n), NB_I64);
    ck_assert_int_eq(nb_dtype_of(a), NB_I64);
    ck_assert_int_eq(nb_dtype_of(s), NB_I64);
    ck_assert_int_eq(nb_dtype_of(r), NB_I64);
    int64_t got[5];
    /* INT64_MIN has no positive counterpart: negation wraps to itself, as in PyTorch */
    ck_assert_ok(nb_to_array(n, got, 5, NB_I64));
    ck_assert(got[0] == 7 && got[1] == 1 && got[2] == 0 && got[3] == -3 && got[4] == INT64_MIN);
    ck_assert_ok(nb_to_array(a, got, 5, NB_I64));
    ck_assert(got[0] == 7 && got[1] == 1 && got[2] == 0 && got[3] == 3 && got[4] == INT64_MIN);
    ck_assert_ok(nb_to_array(s, got, 5, NB_I64));
    ck_assert(got[0] == 49 && got[1] == 1 && got[2] == 0 && got[3] == 9 && got[4] == 0);
    ck_assert_ok(nb_to_array(r, got, 5, NB_I64));
    ck_assert(got[0] == 0 && got[1] == 0 && got[2] == 0 && got[3] == 3 && got[4] == 0);
    nb_scope_end();
}
END_TEST

START_TEST(empty_and_scalar_inputs)
{
    nb_scope_begin();
    nb_tensor *e = nb_exp(nb_zeros(NB_SHAPE(0, 3), NB_F32));
    ck_assert_shape(e, 0, 3);
    nb_tensor *s = nb_tanh(nb_scalar(0.5, NB_F64));
    ck_assert_int_eq(nb_ndim(s), 0);
    ck_assert_close(nb_item(s), 0.46211715726000974, 1e-16);
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Gradients at specific points (kinks follow PyTorch)
 * ---------------------------------------------------------------------------------------------- */
/* Gradient of sum(f(x)) at the given points, in dtype dt. */
static nb_tensor *grad_at(unary_fn f, nb_dtype dt, int n, const double *values)
{
    nb_tensor *x = nb_to_dtype(nb_from_array(values, 1, (const int64_t[]){n}, NB_F64), dt);
    nb_set_requires_grad(x, true);
    nb_tensor *y = f(x);
    ck_assert_msg(nb_backward_ex(y, nb_ones_like(y), NB_BACKWARD_DEFAULT) == NB_OK, "backward: %s", nb_last_error());
    return nb_grad(x);
}
#define GRAD_AT(f, dt, ...) \
    grad_at(f, dt, (int)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)), (const double[]){__VA_ARGS__})

START_TEST(gradients_at_kinks)
{
    nb_scope_begin();
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F32 : NB_F64;
        ck_assert_values(GRAD_AT(nb_relu, dt, -1, 0, 2), 0, 0, 0, 1);
        ck_assert_values(GRAD_AT(nb_abs, dt, -1, 0, 2), 0, -1, 0, 1);
        ck_assert_values(GRAD_AT(leaky_relu_01, dt, -1, 0, 2), 1e-7, 0.1, 0.1, 1);
        ck_assert_values(GRAD_AT(elu_07, dt, -1, 0, 2), 1e-6, 0.7 * exp(-1.0), 0.7, 1);
        /* bounds are inside: clamp(-1, 0.4) passes the gradient at -1 and 0.4 exactly */
        ck_assert_values(GRAD_AT(clamp_both, NB_F64, -1.5, -1, 0, 0.4, 0.5), 0, 0, 1, 1, 1, 0);
        ck_assert_values(GRAD_AT(clamp_lo, dt, -0.5, 0.3, 1e30), 0, 0, 1, 1);
        /* softplus(beta 2, threshold 1): sigmoid(2x) up to x = 0.5 inclusive, 1 above */
        ck_assert_values(GRAD_AT(softplus_2_1, dt, -1, 0.5, 0.75), 1e-6, 1 / (1 + exp(2.0)), 1 / (1 + exp(-1.0)), 1);
        ck_assert_values(GRAD_AT(nb_sigmoid, dt, -1000, 0, 1000), 0, 0, 0.25, 0);
        ck_assert_values(GRAD_AT(nb_tanh, dt, -1000, 0, 1000), 0, 0, 1, 0);
        ck_assert_values(GRAD_AT(nb_exp, dt, 0, 1), 1e-6, 1, exp(1.0));
        ck_assert_values(GRAD_AT(nb_silu, dt, -1000, 0, 1000), 0, 0, 0.5, 1);
        ck_assert_values(GRAD_AT(gelu_erf, dt, -1000, 0, 1000), 0, 0, 0.5, 1);
        ck_assert_values(GRAD_AT(gelu_tanh, dt, -1000, 0, 1000), 0, 0, 0.5, 1);
        ck_assert_values(GRAD_AT(softplus_default, dt, -1000, 0, 1000), 0, 0, 0.5, 1);
        ck_assert_values(GRAD_AT(elu_07, dt, -1000, 1000), 0, 0, 1); /* no inf * 0 from e^1000 */
    }
    /* sqrt'(0) = inf and log'(0) = inf, as PyTorch */
    EXPECT_EXACT(GRAD_AT(nb_sqrt, NB_F64, 0), INFINITY);
    EXPECT_EXACT(GRAD_AT(nb_log, NB_F64, 0), INFINITY);
    nb_scope_end();
}
END_TEST

/* Every value of t is within rtol of the listed value relative to it (exactly it when that is 0 or infinite). */
static void expect_rel(nb_tensor *t, int n, const double *want, double rtol, const char *what)
{
    ck_assert_msg(t != NULL, "%s: %s", what, nb_last_error());
    ck_assert_int_eq(nb_numel(t), n);
    for (int i = 0; i < n; i++) {
        double got = nb_get_flat(t, i);
        bool ok = want[i] == 0 || isinf(want[i]) ? got == want[i] : fabs(got - want[i]) <= rtol * fabs(want[i]);
        ck_assert_msg(ok, "%s element %d = %.17g, expected %.17g", what, i, got, want[i]);
    }
}
#define EXPECT_REL(t, rtol, ...)                                                                      \
    expect_rel(t, (int)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)), (const double[]){__VA_ARGS__}, \
               rtol, #t)

static nb_tensor *elu_1(nb_tensor *t) { return nb_elu(t, 1); }
static nb_tensor *elu_05(nb_tensor *t) { return nb_elu(t, 0.5); }

/* torch.nn.functional.elu backward in PyTorch 1.13: 1 at x = inf (not 0 inf), and alpha e^x with full relative
 * precision on the negative side (y + alpha cancels in f32: -30 gave 0, -10 was off by 1e-3). */
START_TEST(elu_gradient_matches_torch)
{
    nb_scope_begin();
    EXPECT_REL(GRAD_AT(elu_1, NB_F32, INFINITY, -INFINITY, -30, -10, -1, 0, 1), 1e-6, 1, 0, 9.357622912219837e-14,
               4.539993096841499e-05, 0.3678794503211975, 1, 1);
    EXPECT_REL(GRAD_AT(elu_1, NB_F64, INFINITY, -INFINITY, -30, -10, -1, 0, 1, -100), 1e-14, 1, 0,
               9.357622968840175e-14, 4.5399929762484854e-05, 0.36787944117144233, 1, 1, 3.720075976020836e-44);
    EXPECT_REL(GRAD_AT(elu_05, NB_F32, -30, -10, -1, 0), 1e-6, 4.6788114561099187e-14, 2.2699965484207496e-05,
               0.18393972516059875, 0.5);
    EXPECT_REL(GRAD_AT(elu_05, NB_F64, -30, -10, -1, 0), 1e-14, 4.6788114844200874e-14, 2.2699964881242427e-05,
               0.18393972058572117, 0.5);
    nb_scope_end();
}
END_TEST

static nb_tensor *f_elu_07(nb_tensor *const *x, void *u) { (void)u; return elu_07(x[0]); }

/* First and second derivatives far out on both sides, against finite differences. */
START_TEST(elu_gradcheck_tails)
{
    nb_scope_begin();
    nb_tensor *x[1] = {nb_from_array((const double[]){-30, -10, -2.5, 0.3, 4, 40}, NB_SHAPE(6), NB_F64)};
    nb_set_requires_grad(x[0], true);
    ck_assert_gradcheck(f_elu_07, NULL, 1, x, true);
    nb_scope_end();
}
END_TEST

/* torch.relu backward is threshold_backward: 0 where the input is <= 0, so a NaN input passes the gradient;
 * leaky_relu's test is x > 0, so NaN takes the slope. */
START_TEST(gradients_at_nan)
{
    nb_scope_begin();
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F32 : NB_F64;
        EXPECT_EXACT(GRAD_AT(nb_relu, dt, NAN, -INFINITY, -1, 0, 2, INFINITY), 1, 0, 0, 0, 1, 1);
        ck_assert_values(GRAD_AT(leaky_relu_01, dt, NAN, -1, 2), 1e-7, 0.1, 0.1, 1);
    }
    nb_scope_end();
}
END_TEST

START_TEST(grad_fn_names)
{
    nb_scope_begin();
    nb_tensor *x = nbt_leaf(NB_SHAPE(2), 1);
    ck_assert_str_eq(nb_grad_fn_name(nb_exp(x)), "exp");
    ck_assert_str_eq(nb_grad_fn_name(nb_gelu(x, false)), "gelu");
    ck_assert_str_eq(nb_grad_fn_name(nb_gelu(x, true)), "gelu_tanh");
    ck_assert_str_eq(nb_grad_fn_name(nb_clamp(x, -1, 1)), "clamp");
    /* without grad nothing is recorded */
    nb_tensor *c = nb_zeros(NB_SHAPE(2), NB_F64);
    ck_assert_ptr_null(nb_grad_fn_name(nb_exp(c)));
    ck_assert_int_eq(nb_requires_grad(nb_exp(c)), 0);
    nb_scope_end();
}
END_TEST

/* torch.sign in PyTorch 1.13: sign(tensor([-2., -0., 0., 3., nan, inf, -inf])) = [-1, 0, 0, 1, 0, 1, -1] with +0
 * for -0 and 0 for NaN (its kernel is (0 < x) - (x < 0)); an int64 tensor gives int64, a bool tensor itself;
 * x.sign().sum().backward() leaves x.grad = zeros. */
START_TEST(sign_matches_torch)
{
    nb_scope_begin();
    for (nb_dtype dt = NB_F32; dt <= NB_F64; dt++) {
        nb_tensor *x = nb_to_dtype(T_F64(NB_SHAPE(7), -2, -0.0, 0, 3, NAN, INFINITY, -INFINITY), dt);
        nb_tensor *s = nb_sign(x);
        ck_assert_int_eq(nb_dtype_of(s), dt);
        ck_assert_values(s, 0, -1, 0, 0, 1, 0, 1, -1);
        ck_assert(!signbit(nb_get_flat(s, 1)));
    }
    nb_tensor *i = nb_sign(T_I64(NB_SHAPE(4), -5, 0, 7, INT64_MIN));
    ck_assert_int_eq(nb_dtype_of(i), NB_I64);
    ck_assert_values(i, 0, -1, 0, 1, -1);
    nb_tensor *b = nb_sign(nb_to_dtype(T_I64(NB_SHAPE(3), 1, 0, 1), NB_BOOL));
    ck_assert_int_eq(nb_dtype_of(b), NB_BOOL);
    ck_assert_values(b, 0, 1, 0, 1);
    /* a strided input */
    ck_assert_values(nb_sign(nb_transpose(T_F64(NB_SHAPE(2, 2), -1, 2, 0, -3), 0, 1)), 0, -1, 0, 1, -1);

    nb_tensor *x = T_F64(NB_SHAPE(3), -0.5, 0, 2);
    nb_set_requires_grad(x, true);
    nb_tensor *s = nb_sign(x);
    ck_assert_str_eq(nb_grad_fn_name(s), "sign");
    ck_assert_ok(nb_backward(nb_sum(nb_mul(s, x), 0, NULL, false))); /* d/dx (sign(x) x) = sign(x) + 0 */
    ck_assert_values(nb_grad(x), 0, -1, 0, 1);
    nb_zero_grad(x);
    ck_assert_ok(nb_backward(nb_sum(nb_sign(x), 0, NULL, false)));
    ck_assert_values(nb_grad(x), 0, 0, 0, 0);
    ck_assert_ptr_null(nb_sign(NULL));
    nb_scope_end();
}
END_TEST

/* PyTorch 1.13, x = tensor([-1.5, 0., 2., 0.5, -0.25, 3.], dtype=float64, requires_grad=True):
 * gx, = torch.autograd.grad(act(x).sum(), x, create_graph=True) has gx.requires_grad True for relu, leaky_relu
 * (slope 0.1) and abs, whose backward formulas (threshold_backward, leaky_relu_backward, grad * sgn(x)) depend on
 * x with a zero derivative, and gx.sum().backward() then leaves x.grad = zeros; for clamp it is False. */
START_TEST(piecewise_gradients_depend_on_input)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(6), -1.5, 0, 2, 0.5, -0.25, 3);
    nb_set_requires_grad(x, true);
    const unary_fn tied[3] = {nb_relu, leaky_relu_01, nb_abs};
    const double first[3][6] = {{0, 0, 1, 1, 0, 1}, {0.1, 0.1, 1, 1, 0.1, 1}, {-1, 0, 1, 1, -1, 1}};
    for (int k = 0; k < 3; k++) {
        nb_tensor *gx;
        ck_assert_ok(nb_grad_of(nb_sum(tied[k](x), 0, NULL, false), NULL, 1, &x, &gx, NB_CREATE_GRAPH));
        ck_assert_msg(nb_requires_grad(gx), "case %d: the gradient does not depend on x", k);
        for (int j = 0; j < 6; j++) ck_assert_close(nb_get_flat(gx, j), first[k][j], 0);
        ck_assert_ok(nb_backward(nb_sum(gx, 0, NULL, false)));
        ck_assert_values(nb_grad(x), 0, 0, 0, 0, 0, 0, 0);
        nb_zero_grad(x);
        /* the same through nb_backward_ex: the stored gradient can be differentiated */
        ck_assert_ok(nb_backward_ex(nb_sum(tied[k](x), 0, NULL, false), NULL, NB_CREATE_GRAPH));
        nb_tensor *stored = nb_grad(x);
        ck_assert(nb_requires_grad(stored));
        nb_tensor *again = nb_sum(nb_square(stored), 0, NULL, false);
        nb_zero_grad(x);
        ck_assert_ok(nb_backward(again));
        ck_assert_values(nb_grad(x), 0, 0, 0, 0, 0, 0, 0);
        nb_zero_grad(x);
        /* without NB_CREATE_GRAPH nothing is recorded */
        ck_assert_ok(nb_grad_of(nb_sum(tied[k](x), 0, NULL, false), NULL, 1, &x, &gx, 0));
        ck_assert(!nb_requires_grad(gx));
    }
    nb_tensor *gx;
    ck_assert_ok(nb_grad_of(nb_sum(nb_clamp(x, -1, 1), 0, NULL, false), NULL, 1, &x, &gx, NB_CREATE_GRAPH));
    ck_assert(!nb_requires_grad(gx));
    ck_assert_values(gx, 0, 0, 1, 0, 1, 1, 0);
    nb_scope_end();
}
END_TEST

/* A second derivative through piecewise ops that mixes in weights. PyTorch 1.13, float64:
 *   x = tensor([[1.5, -0.2, 0.3], [-0.7, 0.9, 1.1]], requires_grad=True)
 *   W = tensor([[0.4, -0.6], [1.0, 0.2], [-0.3, 0.8]], requires_grad=True)
 *   gx, = torch.autograd.grad(act(x @ W).sum(), x, create_graph=True)
 *   L = (gx * gx).sum(); L.backward()   # W.grad and x.grad (zeros) below */
START_TEST(second_derivative_through_relu_matches_torch)
{
    static const struct {
        unary_fn f;
        double gx[6], loss, dw[6];
    } cases[] = {
        {nb_relu, {0.4, 1.0, -0.3, -0.2, 1.2, 0.5}, 2.98, {0.4, -0.4, 4.4, 2.4, 0.4, 1.0}},
        {leaky_relu_01, {0.34, 1.02, -0.22, -0.2, 1.2, 0.5}, 2.9344, {0.28, -0.332, 4.44, 2.604, 0.56, 0.956}},
        {nb_abs, {1.0, 0.8, -1.1, -0.2, 1.2, 0.5}, 4.58, {1.6, -2.4, 4.0, 0.8, -1.2, 3.2}},
    };
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(2, 3), 1.5, -0.2, 0.3, -0.7, 0.9, 1.1);
    nb_tensor *w = T_F64(NB_SHAPE(3, 2), 0.4, -0.6, 1.0, 0.2, -0.3, 0.8);
    nb_set_requires_grad(x, true);
    nb_set_requires_grad(w, true);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nb_tensor *gx;
        ck_assert_ok(nb_grad_of(nb_sum(cases[k].f(nb_matmul(x, w)), 0, NULL, false), NULL, 1, &x, &gx,
                                NB_CREATE_GRAPH));
        for (int j = 0; j < 6; j++) ck_assert_close(nb_get_flat(gx, j), cases[k].gx[j], 1e-15);
        nb_tensor *loss = nb_sum(nb_square(gx), 0, NULL, false);
        ck_assert_close(nb_item(loss), cases[k].loss, 1e-14);
        ck_assert_ok(nb_backward(loss));
        for (int j = 0; j < 6; j++) ck_assert_close(nb_get_flat(nb_grad(w), j), cases[k].dw[j], 1e-14);
        ck_assert_msg(nb_grad(x) != NULL, "case %zu: x got no gradient", k);
        ck_assert_values(nb_grad(x), 0, 0, 0, 0, 0, 0, 0);
        nb_zero_grad(x);
        nb_zero_grad(w);
    }
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Gradient checks
 * ---------------------------------------------------------------------------------------------- */
typedef struct grad_case {
    const char *name;
    unary_fn f;
    bool positive; /* applied to |x| + 0.5 */
    bool linear;   /* second derivative zero: gradgradcheck also runs on f(x)^2 to make it meaningful */
} grad_case;

static const grad_case grad_cases[] = {
    {"neg", nb_neg, false, true},
    {"exp", nb_exp, false, false},
    {"log", nb_log, true, false},
    {"sqrt", nb_sqrt, true, false},
    {"rsqrt", nb_rsqrt, true, false},
    {"square", nb_square, false, false},
    {"reciprocal", nb_reciprocal, true, false},
    {"abs", nb_abs, false, true},
    {"sin", nb_sin, false, false},
    {"cos", nb_cos, false, false},
    {"tanh", nb_tanh, false, false},
    {"sigmoid", nb_sigmoid, false, false},
    {"relu", nb_relu, false, true},
    {"leaky_relu", leaky_relu_01, false, true},
    {"elu", elu_07, false, false},
    {"gelu", gelu_erf, false, false},
    {"gelu_tanh", gelu_tanh, false, false},
    {"silu", nb_silu, false, false},
    {"softplus", softplus_default, false, false},
    {"softplus_2_1", softplus_2_1, false, false},
    {"clamp", clamp_both, false, true},
    {"clamp_lo", clamp_lo, false, true},
    {"clamp_hi", clamp_hi, false, true},
    {"sign", nb_sign, false, true},
};
#define N_GRAD_CASES (int)(sizeof grad_cases / sizeof *grad_cases)

enum layout { CONTIGUOUS, TRANSPOSED, SLICED };
static const char *const layout_names[] = {"contiguous", "transposed", "sliced"};

typedef struct grad_ud {
    const grad_case *c;
    enum layout layout;
    bool squared;
} grad_ud;

/* The op applied to a (2, 3) view of the leaf: the leaf itself, a transposed (3, 2) leaf, or every other column
 * of a (2, 6) leaf. */
static nb_tensor *apply_case(nb_tensor *const *x, void *u)
{
    const grad_ud *d = u;
    nb_tensor *t = x[0];
    if (d->layout == TRANSPOSED) t = nb_transpose(t, 0, 1);
    if (d->layout == SLICED) t = nb_slice(t, 1, 1, 6, 2);
    if (d->c->positive) t = nb_add_scalar(nb_abs(t), 0.5);
    t = d->c->f(t);
    return d->squared ? nb_square(t) : t;
}

/* Values at least 0.05 away from every kink used above (0, -1, 0.4, -0.3, 0.1, and 0.5 for softplus_2_1). */
static const double away[12] = {-1.3, 0.75, -0.6, 0.2, -0.2, 1.7, 0.3, -0.45, 0.65, -0.8, 1.1, 0.15};

static nb_tensor *leaf_for(enum layout layout)
{
    nb_tensor *x = layout == CONTIGUOUS   ? nb_from_array(away, NB_SHAPE(2, 3), NB_F64)
                   : layout == TRANSPOSED ? nb_from_array(away, NB_SHAPE(3, 2), NB_F64)
                                          : nb_from_array(away, NB_SHAPE(2, 6), NB_F64);
    nb_set_requires_grad(x, true);
    return x;
}

static void check_case(const grad_case *c, nb_tensor *x, enum layout layout)
{
    grad_ud ud = {c, layout, false};
    nb_tensor *in[1] = {x};
    ck_assert_msg(nb_gradcheck(apply_case, &ud, 1, in, NULL) == NB_OK, "gradcheck of %s (%s): %s", c->name,
                  layout_names[layout], nb_last_error());
    ck_assert_msg(nb_gradgradcheck(apply_case, &ud, 1, in, NULL) == NB_OK, "gradgradcheck of %s (%s): %s",
                  c->name, layout_names[layout], nb_last_error());
    if (c->linear) {
        ud.squared = true;
        ck_assert_msg(nb_gradgradcheck(apply_case, &ud, 1, in, NULL) == NB_OK, "gradgradcheck of %s^2 (%s): %s",
                      c->name, layout_names[layout], nb_last_error());
    }
}

START_TEST(gradcheck_every_op)
{
    enum layout layout = (enum layout)_i;
    nb_scope_begin();
    nb_tensor *x = leaf_for(layout);
    for (int c = 0; c < N_GRAD_CASES; c++) check_case(&grad_cases[c], x, layout);
    nb_scope_end();
}
END_TEST

/* Smooth ops on random inputs too (no kinks to avoid), including larger magnitudes. */
START_TEST(gradcheck_smooth_ops_random)
{
    nb_scope_begin();
    nb_tensor *x = nbt_leaf(NB_SHAPE(2, 3), 7);
    nb_generator g;
    nb_generator_seed(&g, 8);
    nb_tensor *w = nb_randn(NB_SHAPE(2, 3), 0, 4, NB_F64, &g); /* larger magnitudes */
    nb_set_requires_grad(w, true);
    for (int c = 0; c < N_GRAD_CASES; c++) {
        if (grad_cases[c].linear || grad_cases[c].f == softplus_2_1) continue;
        check_case(&grad_cases[c], x, CONTIGUOUS);
        check_case(&grad_cases[c], w, CONTIGUOUS);
    }
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Memory: no temporaries left behind by forward or backward
 * ---------------------------------------------------------------------------------------------- */
START_TEST(no_leaks)
{
    nb_tensor *x = nbt_leaf(NB_SHAPE(2, 3), 3);
    int64_t before = nb_memory_stats_get().live_tensors;
    for (int c = 0; c < N_GRAD_CASES; c++) {
        nb_tensor *y = grad_cases[c].f(x);
        nb_tensor *seed = nb_ones_like(y);
        ck_assert_msg(nb_backward_ex(y, seed, NB_BACKWARD_DEFAULT) == NB_OK, "%s: %s", grad_cases[c].name,
                      nb_last_error());
        nb_free(seed);
        nb_free(y);
        ck_assert_ok(nb_zero_grad(x));
        ck_assert_msg(nb_memory_stats_get().live_tensors == before, "%s leaves %lld tensors", grad_cases[c].name,
                      (long long)(nb_memory_stats_get().live_tensors - before));
    }
    nb_free(x);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------------------------- */
START_TEST(null_input)
{
    nb_clear_error();
    ck_assert_ptr_null(nb_exp(NULL));
    ck_assert_error(NB_ERR_NULL, "nb_exp", "tensor is NULL");
    nb_clear_error();
    ck_assert_ptr_null(nb_softplus(NULL, 0, 20)); /* the NULL is reported, not the bad beta */
    ck_assert_error(NB_ERR_NULL, "nb_softplus", "tensor is NULL");
    /* a NULL propagates without replacing the first error */
    ck_assert_ptr_null(nb_relu(nb_clamp(nb_sigmoid(NULL), 0, 1)));
    ck_assert_error(NB_ERR_NULL, "nb_softplus");
}
END_TEST

START_TEST(wrong_dtype)
{
    nb_scope_begin();
    nb_tensor *i = T_I64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    nb_tensor *b = nb_gt_scalar(T_F64(NB_SHAPE(4), 0, 1, 2, 3), 1);
    ck_assert_ptr_null(nb_exp(i));
    ck_assert_error(NB_ERR_DTYPE, "nb_exp", "(2, 3)", "i64", "f32 or f64");
    ck_assert_ptr_null(nb_sigmoid(b));
    ck_assert_error(NB_ERR_DTYPE, "nb_sigmoid", "(4)", "bool");
    ck_assert_ptr_null(nb_gelu(i, true));
    ck_assert_error(NB_ERR_DTYPE, "nb_gelu", "i64");
    ck_assert_ptr_null(nb_clamp(i, 0, 1));
    ck_assert_error(NB_ERR_DTYPE, "nb_clamp", "i64");
    ck_assert_ptr_null(nb_neg(b));
    ck_assert_error(NB_ERR_DTYPE, "nb_neg", "bool", "f32, f64 or i64");
    ck_assert_ptr_null(nb_abs(b));
    ck_assert_error(NB_ERR_DTYPE, "nb_abs", "bool");
    /* the first error survives the rest of the expression */
    ck_assert_ptr_null(nb_neg(nb_log(nb_abs(i))));
    ck_assert_error(NB_ERR_DTYPE, "nb_log", "i64");
    nb_scope_end();
}
END_TEST

START_TEST(bad_parameters)
{
    nb_scope_begin();
    nb_tensor *x = nb_ones(NB_SHAPE(3), NB_F32);
    ck_assert_ptr_null(nb_softplus(x, 0, 20));
    ck_assert_error(NB_ERR_VALUE, "nb_softplus", "beta", "got 0");
    ck_assert_ptr_null(nb_softplus(x, INFINITY, 20));
    ck_assert_error(NB_ERR_VALUE, "nb_softplus", "beta", "inf");
    ck_assert_ptr_null(nb_softplus(x, 1, NAN));
    ck_assert_error(NB_ERR_VALUE, "nb_softplus", "threshold");
    ck_assert_ptr_null(nb_clamp(x, NAN, 1));
    ck_assert_error(NB_ERR_VALUE, "nb_clamp", "NaN");
    ck_assert_ptr_null(nb_leaky_relu(x, NAN));
    ck_assert_error(NB_ERR_VALUE, "nb_leaky_relu", "negative_slope");
    ck_assert_ptr_null(nb_elu(x, NAN));
    ck_assert_error(NB_ERR_VALUE, "nb_elu", "alpha");
    nb_scope_end();
}
END_TEST

START_TEST(freed_input)
{
    nb_tensor *x = nb_ones(NB_SHAPE(2), NB_F64);
    nb_free(x);
    ck_assert_ptr_null(nb_tanh(x));
    ck_assert_error(NB_ERR_FREED, "nb_tanh", "was freed");
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("unary");
    TCase *tc = tcase_create("unary");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, values_f64);
    tcase_add_test(tc, values_f32);
    tcase_add_test(tc, gelu_reference_numbers);
    tcase_add_test(tc, extreme_inputs);
    tcase_add_test(tc, clamp_bounds);
    tcase_add_test(tc, integer_inputs);
    tcase_add_test(tc, empty_and_scalar_inputs);
    tcase_add_test(tc, gradients_at_kinks);
    tcase_add_test(tc, elu_gradient_matches_torch);
    tcase_add_test(tc, elu_gradcheck_tails);
    tcase_add_test(tc, gradients_at_nan);
    tcase_add_test(tc, grad_fn_names);
    tcase_add_test(tc, sign_matches_torch);
    tcase_add_test(tc, piecewise_gradients_depend_on_input);
    tcase_add_test(tc, second_derivative_through_relu_matches_torch);
    tcase_add_loop_test(tc, gradcheck_every_op, CONTIGUOUS, SLICED + 1);
    tcase_add_test(tc, gradcheck_smooth_ops_random);
    tcase_add_test(tc, no_leaks);
    tcase_add_test(tc, null_input);
    tcase_add_test(tc, wrong_dtype);
    tcase_add_test(tc, bad_parameters);
    tcase_add_test(tc, freed_input);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
