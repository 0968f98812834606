/* The vectorized f32 functions behind nb_exp, nb_log, nb_tanh, nb_sigmoid, nb_silu, nb_gelu, erf and softmax
 * (tensor/vecmath_template.h): their error in ulp against double-precision libm over a sweep of the whole
 * float range, on every instruction set the machine has; special values; the same bits on AVX2 and AVX-512,
 * whatever an element's position, and through strided views. */
#include "helpers.h"

#include <float.h>
#include <stdint.h>

#include "kernels_matmul.h"
#include "vecmath.h"

/* ------------------------------------------------------------------------------------------------
 * References in double, and the error of a float result in units of the float's last place
 * ---------------------------------------------------------------------------------------------- */
/* ck_assert marks a point (a write to Check's pipe) on every call; the sweeps test millions of values, so they
 * call Check only on a failure. */
#define REQUIRE(cond, ...)                                                                                \
    do {                                                                                                  \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                           \
    } while (0)

static double sigmoid_ref(double x) { return 1 / (1 + exp(-x)); }
static double silu_ref(double x) { return x / (1 + exp(-x)); }
static double gelu_ref(double x) { return 0.5 * x * erfc(-x * M_SQRT1_2); }
/* x/2 (1 + tanh u) written as x sigmoid(2u), the same function without cancellation */
static double gelu_tanh_ref(double x) { return x / (1 + exp(-2 * 0.7978845608028654 * (x + 0.044715 * x * x * x))); }

/* |y - ref| over the spacing of floats at ref (2^-149 among subnormals); 0 for matching infinities or NaNs. */
static double ulp_error(float y, double ref)
{
    if (isnan(ref)) return isnan(y) ? 0 : INFINITY;
    if (isinf((float)ref)) {
        if ((double)y == (double)(float)ref) return 0;
        ref = copysign(0x1p128, ref); /* one ulp past FLT_MAX */
    }
    if (!isfinite(y)) return INFINITY;
    int e;
    frexp(ref, &e);
    double ulp = fabs(ref) < 0x1p-126 ? 0x1p-149 : ldexp(1, e - 24);
    return fabs((double)y - ref) / ulp;
}

typedef struct fn_case {
    const char *name;
    size_t slot;          /* offset of the function in nbi_vecmath */
    double (*ref)(double);
    double max_ulp;       /* over results that are normal floats */
    double lowest_x;      /* inputs below are checked for sign and magnitude only */
} fn_case;

static const fn_case cases[] = {
    {"exp", offsetof(nbi_vecmath, exp), exp, 1.0, -INFINITY},
    {"log", offsetof(nbi_vecmath, log), log, 1.0, -INFINITY},
    {"tanh", offsetof(nbi_vecmath, tanh), tanh, 1.5, -INFINITY},
    {"sigmoid", offsetof(nbi_vecmath, sigmoid), sigmoid_ref, 2.5, -INFINITY},
    /* x sigmoid(x) and x sigmoid(2u(x)): e^-|v| is as exact as e^v is, but rounding v itself (u is a cubic)
     * moves e^v by |v| times that rounding, so far left only the size is checked */
    {"silu", offsetof(nbi_vecmath, silu), silu_ref, 3.5, -16},
    {"gelu_tanh", offsetof(nbi_vecmath, gelu_tanh), gelu_tanh_ref, 6, -1.5},
    {"erf", offsetof(nbi_vecmath, erf), erf, 1.5, -INFINITY},
    {"gelu", offsetof(nbi_vecmath, gelu), gelu_ref, 3, -INFINITY},
};
#define N_CASES (sizeof cases / sizeof *cases)

static nbi_vec_fn fn_of(const nbi_vecmath *vm, const fn_case *c) { return *(const nbi_vec_fn *)((const char *)vm + c->slot); }

/* The instruction sets this machine can run, best last. */
static int supported_isas(nbi_isa *out)
{
    int n = 0;
    for (int isa = NBI_ISA_PORTABLE; isa <= NBI_ISA_AVX512; isa++)
        if (nbi_gemm_set_isa((nbi_isa)isa) == (nbi_isa)isa) out[n++] = (nbi_isa)isa;
    nbi_gemm_set_isa(NBI_ISA_AUTO);
    return n;
}

static const nbi_vecmath *table_for(nbi_isa isa)
{
    nbi_gemm_set_isa(isa);
    const nbi_vecmath *vm = nbi_vecmath_get();
    nbi_gemm_set_isa(NBI_ISA_AUTO);
    return vm;
}

/* Floats from every STEP-th bit pattern, both signs, NaNs and infinities included. */
#define SWEEP_STEP 1021u
#define CHUNK 4096
static int sweep_chunk(uint64_t *next, float *x)
{
    int n = 0;
    for (; n < CHUNK && *next < (1ull << 32); n++, *next += SWEEP_STEP) {
        uint32_t bits = (uint32_t)*next;
        memcpy(&x[n], &bits, sizeof bits);
    }
    return n;
}

static void check_sweep(const nbi_vecmath *vm, const fn_case *c, const char *isa)
{
    static float x[CHUNK], y[CHUNK];
    double worst = 0;
    float worst_x = 0;
    uint64_t next = 0;
    for (int n; (n = sweep_chunk(&next, x)) > 0;) {
        fn_of(vm, c)(y, x, n);
        for (int i = 0; i < n; i++) {
            double ref = c->ref((double)x[i]);
            if (!(x[i] >= c->lowest_x) && !isnan(x[i])) {
                /* far left: a result of ref's sign, within 1% (or 2^-140) of it */
                REQUIRE(!signbit(y[i]) == !signbit(ref) && fabs(y[i] - ref) <= fmax(0.01 * fabs(ref), 0x1p-140),
                              "%s %s(%a) = %a, expected about %a", isa, c->name, x[i], y[i], ref);
                continue;
            }
            if (fabs(ref) < FLT_MIN) {
                /* subnormal or zero results: within one subnormal step, or rounding of the tiny input's scaled
                 * product for silu and gelu (x times a subnormal) */
                double tol = 0x1p-149 * fmax(1, fabs(x[i]));
                REQUIRE(fabs((double)y[i] - ref) <= tol, "%s %s(%a) = %a, expected %a", isa, c->name, x[i],
                              y[i], ref);
                continue;
            }
            double e = ulp_error(y[i], ref);
            if (e > worst) {
                worst = e;
                worst_x = x[i];
            }
        }
    }
    REQUIRE(worst <= c->max_ulp, "%s %s: error %.2f ulp at x = %a (bound %.1f)", isa, c->name, worst, worst_x,
                  c->max_ulp);
}

START_TEST(accuracy_over_the_float_range)
{
    nbi_isa isas[3];
    int n = supported_isas(isas);
    for (int k = 0; k < n; k++)
        for (size_t c = 0; c < N_CASES; c++) check_sweep(table_for(isas[k]), &cases[c], nbi_isa_name(isas[k]));
}
END_TEST

/* Where the functions change method (exp's overflow and underflow edges, tanh's switch to exp at 0.625, log
 * near 1 and the subnormals, erf's and gelu's switches and gelu's underflow), every float. */
START_TEST(accuracy_at_the_seams)
{
    static const struct {
        size_t c;
        float lo;
        int count;
    } seams[] = {
        {0, 88.70f, 4000}, {0, -87.40f, 4000}, {0, -103.99f, 4000}, {1, 0.99f, 200000}, {1, 0x1p-149f, 100000},
        {2, 0.62f, 200000}, {2, -0.63f, 200000}, {3, -88.0f, 4000}, {6, 0.99f, 100000}, {6, 3.99f, 10000},
        {7, -0.76f, 100000}, {7, 0.74f, 100000}, {7, -14.5f, 10000},
    };
    nbi_isa isas[3];
    int n_isa = supported_isas(isas);
    static float x[200000], y[200000];
    for (int k = 0; k < n_isa; k++) {
        const nbi_vecmath *vm = table_for(isas[k]);
        for (size_t s = 0; s < sizeof seams / sizeof *seams; s++) {
            const fn_case *c = &cases[seams[s].c];
            x[0] = seams[s].lo;
            for (int i = 1; i < seams[s].count; i++) x[i] = nextafterf(x[i - 1], INFINITY);
            fn_of(vm, c)(y, x, seams[s].count);
            for (int i = 0; i < seams[s].count; i++) {
                double ref = c->ref(x[i]);
                double e = fabs(ref) < FLT_MIN ? fabs((double)y[i] - ref) / 0x1p-149 : ulp_error(y[i], ref);
                REQUIRE(e <= c->max_ulp, "%s %s(%a) = %a: %.2f ulp from %a", nbi_isa_name(isas[k]), c->name,
                              x[i], y[i], e, ref);
            }
        }
    }
}
END_TEST

START_TEST(special_values)
{
    static const struct {
        size_t c;
        float x, y; /* y NaN: any NaN */
    } cases_sv[] = {
        {0, INFINITY, INFINITY}, {0, -INFINITY, 0}, {0, NAN, NAN}, {0, 0, 1}, {0, -0.0f, 1},
        {0, 88.72283f, 3.40279851e38f}, {0, 88.7229f, INFINITY}, {0, 1000, INFINITY}, {0, -1000, 0},
        {0, -103.278931f, 0x1p-149f}, {0, -104, 0},
        {1, 1, 0}, {1, 0, -INFINITY}, {1, -0.0f, -INFINITY}, {1, -1, NAN}, {1, -INFINITY, NAN}, {1, INFINITY, INFINITY},
        {1, NAN, NAN}, {1, 0x1p-149f, -103.278931f}, {1, FLT_MAX, 88.7228394f},
        {2, 0, 0}, {2, INFINITY, 1}, {2, -INFINITY, -1}, {2, 20, 1}, {2, -20, -1}, {2, NAN, NAN},
        {3, 0, 0.5f}, {3, INFINITY, 1}, {3, -INFINITY, 0}, {3, 200, 1}, {3, NAN, NAN},
        {4, INFINITY, INFINITY}, {4, -INFINITY, NAN}, {4, 0, 0}, {4, NAN, NAN},
        {5, INFINITY, INFINITY}, {5, 0, 0}, {5, NAN, NAN},
        {6, INFINITY, 1}, {6, -INFINITY, -1}, {6, 0, 0}, {6, 10, 1}, {6, NAN, NAN},
        /* gelu(-inf) is NaN as in PyTorch (-inf times 0), though tiny negative inputs go smoothly to -0 */
        {7, INFINITY, INFINITY}, {7, -INFINITY, NAN}, {7, 0, 0}, {7, FLT_MAX, FLT_MAX}, {7, -20, 0}, {7, NAN, NAN},
    };
    nbi_isa isas[3];
    int n_isa = supported_isas(isas);
    for (int k = 0; k < n_isa; k++) {
        const nbi_vecmath *vm = table_for(isas[k]);
        for (size_t i = 0; i < sizeof cases_sv / sizeof *cases_sv; i++) {
            float y;
            fn_of(vm, &cases[cases_sv[i].c])(&y, &cases_sv[i].x, 1);
            float want = cases_sv[i].y;
            REQUIRE(isnan(want) ? isnan(y) : y == want, "%s %s(%a) = %a, expected %a", nbi_isa_name(isas[k]),
                          cases[cases_sv[i].c].name, cases_sv[i].x, y, want);
        }
        /* odd functions keep the sign of zero, as tanh(-0) = -0 in C and PyTorch */
        float mz = -0.0f, y;
        vm->tanh(&y, &mz, 1);
        ck_assert(y == 0 && signbit(y));
        vm->erf(&y, &mz, 1);
        ck_assert(y == 0 && signbit(y));
    }
}
END_TEST

/* AVX2 and AVX-512 run the same operations, fused multiply-adds included: the same bits. */
START_TEST(fma_instruction_sets_agree)
{
    nbi_isa isas[3];
    int n_isa = supported_isas(isas);
    if (n_isa < 3) return; /* nothing to compare on this machine */
    const nbi_vecmath *a = table_for(NBI_ISA_AVX2), *b = table_for(NBI_ISA_AVX512);
    static float x[CHUNK], ya[CHUNK], yb[CHUNK];
    for (size_t c = 0; c < N_CASES; c++) {
        uint64_t next = 7;
        for (int n; (n = sweep_chunk(&next, x)) > 0;) {
            fn_of(a, &cases[c])(ya, x, n);
            fn_of(b, &cases[c])(yb, x, n);
            for (int i = 0; i < n; i++)
                REQUIRE(memcmp(&ya[i], &yb[i], sizeof(float)) == 0 || (isnan(ya[i]) && isnan(yb[i])),
                              "%s(%a): avx2 %a, avx512 %a", cases[c].name, x[i], ya[i], yb[i]);
        }
    }
}
END_TEST

/* An element gives the same bits alone, in the padded tail of an array, or in its vector body. */
START_TEST(result_does_not_depend_on_position)
{
    nbi_isa isas[3];
    int n_isa = supported_isas(isas);
    float x[41], y[41], one;
    for (int i = 0; i < 41; i++) x[i] = (float)(i - 20) * 0.37f;
    for (int k = 0; k < n_isa; k++) {
        const nbi_vecmath *vm = table_for(isas[k]);
        for (size_t c = 0; c < N_CASES; c++) {
            for (int len = 1; len <= 41; len += 3) {
                fn_of(vm, &cases[c])(y, x + 41 - len, len);
                for (int i = 0; i < len; i++) {
                    fn_of(vm, &cases[c])(&one, x + 41 - len + i, 1);
                    REQUIRE(memcmp(&one, &y[i], sizeof one) == 0 || (isnan(one) && isnan(y[i])),
                                  "%s length %d element %d", cases[c].name, len, i);
                }
            }
            /* in place */
            float z[41];
            memcpy(z, x, sizeof z);
            fn_of(vm, &cases[c])(z, z, 41);
            fn_of(vm, &cases[c])(y, x, 41);
            ck_assert(memcmp(z, y, sizeof z) == 0 || c == 1); /* log of negatives: NaNs */
        }
    }
}
END_TEST

/* The f32 sum's partial sums are fixed by the element's index alone: every instruction set gives the same
 * double, for every length (the tail included), and it is the exact sum to double rounding. */
START_TEST(sum_is_the_same_on_every_isa)
{
    nbi_isa isas[3];
    int n_isa = supported_isas(isas);
    static float x[5000];
    for (int i = 0; i < 5000; i++) x[i] = (float)((i * 7919) % 1000 - 500) * 0.001f + (i % 3 ? 1e4f : -3e-3f);
    for (int n = 0; n <= 5000; n += n < 70 ? 1 : 331) {
        long double exact = 0;
        for (int i = 0; i < n; i++) exact += x[i];
        double first = table_for(isas[0])->sum(x, n);
        REQUIRE(fabsl(first - exact) <= 1e-12L * (fabsl(exact) + 1), "length %d: sum %.17g, exact %.17Lg", n, first,
                exact);
        for (int k = 1; k < n_isa; k++) {
            double other = table_for(isas[k])->sum(x, n);
            REQUIRE(memcmp(&first, &other, sizeof first) == 0, "length %d: %s %.17g, %s %.17g", n,
                    nbi_isa_name(isas[0]), first, nbi_isa_name(isas[k]), other);
        }
    }
}
END_TEST

/* Softmax's other passes (the row maximum, the normalization, log-softmax's shift) give on every instruction set
 * and every length the bits of the plain C loops they replace, the overlapped last block of the maximum and the
 * scalar tails included; the maximum of a row with a NaN is an element of the row. */
START_TEST(softmax_passes_match_the_c_loops)
{
    nbi_isa isas[3];
    int n_isa = supported_isas(isas);
    enum { N = 700 };
    static float x[N], y[N], want[N];
    for (int i = 0; i < N; i++)
        x[i] = i % 11 == 3 ? -0.0f : (float)((i * 7919) % 2003 - 1000) * 0.0173f + (i % 5 ? 0 : -1e3f);
    for (int k = 0; k < n_isa; k++) {
        const nbi_vecmath *vm = table_for(isas[k]);
        const char *isa = nbi_isa_name(isas[k]);
        for (int n = 1; n <= N; n += n < 140 ? 1 : 37) {
            for (int off = 0; off < 3 && off + n <= N; off++) {
                const float *row = x + off;
                float m = row[0];
                for (int i = 1; i < n; i++)
                    if (row[i] > m) m = row[i];
                float got = vm->max(row, n);
                REQUIRE(got == m, "%s max of %d from %d: %a, expected %a", isa, n, off, got, m);
                /* as softmax and log-softmax call it: -0 stays -0, multiplying by 1 changes nothing */
                const double s = 1 / 3.7, c = 2.718281828459045;
                for (int i = 0; i < n; i++) {
                    y[i] = row[i];
                    want[i] = (float)((double)row[i] * s);
                }
                vm->shift_scale(y, y, n, 0.0f, s, 0.0);
                REQUIRE(memcmp(y, want, (size_t)n * sizeof *y) == 0, "%s scale of %d from %d", isa, n, off);
                for (int i = 0; i < n; i++) want[i] = (float)((double)(row[i] - m) - c);
                vm->shift_scale(y, row, n, m, 1.0, c);
                REQUIRE(memcmp(y, want, (size_t)n * sizeof *y) == 0, "%s log-softmax of %d from %d", isa, n, off);
                /* a shift and an offset of -0 turn -0 into +0, as the C expression does */
                for (int i = 0; i < n; i++) want[i] = (float)((double)(row[i] - -0.0f) * 1.0 - -0.0);
                vm->shift_scale(y, row, n, -0.0f, 1.0, -0.0);
                REQUIRE(memcmp(y, want, (size_t)n * sizeof *y) == 0, "%s shift by -0 of %d from %d", isa, n, off);
                for (int i = 0; i < n; i++) want[i] = (float)((double)row[i] * 1.0 - -0.0);
                vm->shift_scale(y, row, n, 0.0f, 1.0, -0.0);
                REQUIRE(memcmp(y, want, (size_t)n * sizeof *y) == 0, "%s offset -0 of %d from %d", isa, n, off);
            }
        }
        /* a NaN anywhere, and -inf throughout */
        static float z[100];
        for (int pos = 0; pos < 100; pos += 7) {
            for (int i = 0; i < 100; i++) z[i] = (float)i;
            z[pos] = NAN;
            float got = vm->max(z, 100);
            REQUIRE(isnan(got) || (got == floorf(got) && got >= 0 && got <= 99), "%s max with a NaN at %d: %a", isa,
                    pos, got);
        }
        for (int i = 0; i < 100; i++) z[i] = -INFINITY;
        REQUIRE(vm->max(z, 100) == -INFINITY, "%s max of -inf", isa);
    }
}
END_TEST

static nb_tensor *gelu_exact(nb_tensor *t) { return nb_gelu(t, false); }

/* nb_exp and the others give the same bits on a transposed view as on its contiguous copy, and softmax's rows
 * are the vector exp of x - max over their sum. */
START_TEST(tensor_ops_through_views)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 11);
    nb_tensor *x = nb_randn(NB_SHAPE(37, 29), 0, 3, NB_F32, &g);
    nb_tensor *xt = nb_transpose(x, 0, 1), *xc = nb_contiguous(xt);
    nb_tensor *(*ops[])(nb_tensor *) = {nb_exp, nb_tanh, nb_sigmoid, nb_silu, gelu_exact};
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
        nb_tensor *a = nb_contiguous(ops[k](xt)), *b = ops[k](xc);
        ck_assert_tensor(a);
        ck_assert_int_eq(memcmp(nb_data(a), nb_data(b), 37 * 29 * sizeof(float)), 0);
    }
    /* rows with a stride (a transposed view) give the same bits as their contiguous copy */
    for (int log = 0; log < 2; log++) {
        nb_tensor *a = nb_contiguous(log ? nb_log_softmax(xt, 1) : nb_softmax(xt, 1));
        nb_tensor *b = log ? nb_log_softmax(xc, 1) : nb_softmax(xc, 1);
        ck_assert_tensor(a);
        ck_assert_int_eq(memcmp(nb_data(a), nb_data(b), 37 * 29 * sizeof(float)), 0);
    }
    nb_tensor *sm = nb_softmax(x, 1);
    nb_tensor *e = nb_exp(nb_sub(x, nb_max_dim(x, 1, true, NULL)));
    nb_tensor *want = nb_div(e, nb_sum(e, NB_DIMS(1), true));
    const float *a = nb_data(sm), *b = nb_data(want);
    for (int i = 0; i < 37 * 29; i++) ck_assert_float_eq_tol(a[i], b[i], 2e-7f * b[i]);
    nb_scope_end();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("vecmath");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, accuracy_over_the_float_range);
    tcase_add_test(tc, accuracy_at_the_seams);
    tcase_add_test(tc, special_values);
    tcase_add_test(tc, fma_instruction_sets_agree);
    tcase_add_test(tc, result_does_not_depend_on_position);
    tcase_add_test(tc, sum_is_the_same_on_every_isa);
    tcase_add_test(tc, softmax_passes_match_the_c_loops);
    tcase_add_test(tc, tensor_ops_through_views);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
