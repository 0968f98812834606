/* API misuse: every public function called with NULL, freed handles (after nb_free and after their scope ended),
 * wrong dtypes, mismatched or negative shapes, out-of-range dims and indices, and zero-size tensors. Each call must
 * fail with the documented status and a message naming the function, or (for zero-size inputs, where PyTorch
 * gives an empty result) succeed; none may crash (this suite runs under ASan/UBSan too).
 *
 * The ops taking a tensor are checked from one table (one loop iteration each, so a crash names its entry); the
 * other calls are grouped by area. The grouped checks do not stop at the first problem: each group collects every
 * unexpected result and reports them together. */
#include "helpers.h"

#include <math.h>
#include <stdarg.h>

/* ------------------------------------------------------------------------------------------------
 * Collecting checks
 * ---------------------------------------------------------------------------------------------- */
static char problems[16384];
static int n_problems;

static void problem(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(int line, const char *fmt, ...)
{
    size_t used = strlen(problems);
    if (used + 200 > sizeof problems) return;
    used += (size_t)snprintf(problems + used, sizeof problems - used, "\n  line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problems + used, sizeof problems - used, fmt, ap);
    va_end(ap);
    n_problems++;
}

/* The call failed (failed is true); the recorded error must have `status` (or any error for NB_OK) and name fn. */
static void check_failure(int line, const char *expr, bool failed, nb_status status, const char *fn)
{
    if (!failed) {
        problem(line, "%s succeeded, expected %s", expr, nb_status_name(status));
    } else if (status != NB_OK && nb_last_status() != status) {
        problem(line, "%s: expected %s, got %s: \"%s\"", expr, nb_status_name(status),
                nb_status_name(nb_last_status()), nb_last_error());
    } else if (nb_last_status() == NB_OK) {
        problem(line, "%s failed without recording an error", expr);
    } else if (!strstr(nb_last_error(), fn)) {
        problem(line, "%s: message \"%s\" does not name %s", expr, nb_last_error(), fn);
    }
    /* NABLA_MISUSE_VERBOSE=1 prints every message, to judge their clarity by reading them. */
    if (failed && getenv("NABLA_MISUSE_VERBOSE")) fprintf(stderr, "%-60.60s %s: %s\n", expr,
                                                          nb_status_name(nb_last_status()), nb_last_error());
    nb_clear_error();
}

/* Pointer-returning call: NULL with `status` and a message naming fn. */
#define FAILS_P(status, fn, expr)                                                                          \
    do {                                                                                                   \
        nb_clear_error();                                                                                  \
        const void *r_ = (expr);                                                                           \
        check_failure(__LINE__, #expr, r_ == NULL, status, fn);                                            \
    } while (0)
/* Status-returning call. */
#define FAILS_S(status, fn, expr)                                                                          \
    do {                                                                                                   \
        nb_clear_error();                                                                                  \
        nb_status s_ = (expr);                                                                             \
        check_failure(__LINE__, #expr, s_ != NB_OK, status, fn);                                           \
        if (s_ != NB_OK && s_ != (status) && (status) != NB_OK)                                            \
            problem(__LINE__, "%s returned %s", #expr, nb_status_name(s_));                                \
    } while (0)
/* Double-returning call that signals errors with NaN. */
#define FAILS_NAN(status, fn, expr)                                                                        \
    do {                                                                                                   \
        nb_clear_error();                                                                                  \
        double d_ = (expr);                                                                                \
        check_failure(__LINE__, #expr, isnan(d_), status, fn);                                             \
    } while (0)
/* Integer-returning call that signals errors with a negative value. */
#define FAILS_NEG(status, fn, expr)                                                                        \
    do {                                                                                                   \
        nb_clear_error();                                                                                  \
        int64_t i_ = (int64_t)(expr);                                                                      \
        check_failure(__LINE__, #expr, i_ < 0, status, fn);                                                \
    } while (0)
/* Boolean-returning call that signals errors with false. */
#define FAILS_FALSE(status, fn, expr)                                                                      \
    do {                                                                                                   \
        nb_clear_error();                                                                                  \
        bool b_ = (expr);                                                                                  \
        check_failure(__LINE__, #expr, !b_, status, fn);                                                   \
    } while (0)
/* A call that must succeed (zero-size inputs and the like). */
#define WORKS_P(expr)                                                                                      \
    do {                                                                                                   \
        nb_clear_error();                                                                                  \
        if (!(expr)) problem(__LINE__, "%s failed: %s", #expr, nb_last_error());                           \
    } while (0)
/* A call without an error channel (void, or a value without an error marker): it must not crash, and it must
 * record no error unless `may_fail`. */
#define SURVIVES(expr)                                                                                     \
    do {                                                                                                   \
        nb_clear_error();                                                                                  \
        (void)(expr);                                                                                      \
    } while (0)

#define REPORT_PROBLEMS()                                                                                  \
    do {                                                                                                   \
        if (n_problems) fprintf(stderr, "%s: %d problem(s):%s\n", __func__, n_problems, problems);        \
        ck_assert_msg(n_problems == 0, "%d problem(s):%s", n_problems, problems);                         \
    } while (0)

static void setup(void)
{
    problems[0] = 0;
    n_problems = 0;
    nb_clear_error();
}

/* A handle whose tensor was released by nb_free. */
static nb_tensor *freed_handle(void)
{
    nb_tensor *t = nb_ones(NB_SHAPE(2, 3), NB_F32);
    nb_free(t);
    return t;
}

/* A handle of a tensor that belonged to a scope that has ended. */
static nb_tensor *scope_ended_handle(void)
{
    nb_scope_begin();
    nb_tensor *t = nb_ones(NB_SHAPE(2, 3), NB_F32);
    nb_scope_end();
    return t;
}

/* ------------------------------------------------------------------------------------------------
 * The table of ops that take a tensor. Each entry calls the op with x in one argument position and valid values
 * (made by the helpers below, for x of shape (2, 3)) everywhere else.
 * ---------------------------------------------------------------------------------------------- */
enum { F32 = 1 << NB_F32, F64 = 1 << NB_F64, I64 = 1 << NB_I64, BOOL = 1 << NB_BOOL, FLOAT = F32 | F64,
       ANY = F32 | F64 | I64 | BOOL, NUM = F32 | F64 | I64 };

static nb_tensor *other(void) { return nb_ones(NB_SHAPE(2, 3), NB_F32); }
static nb_tensor *index_2x3(void) { return nb_zeros(NB_SHAPE(2, 3), NB_I64); }
static nb_tensor *index_1d(void) { return nb_zeros(NB_SHAPE(2), NB_I64); }

typedef nb_tensor *(*op_fn)(nb_tensor *x);
typedef struct op_case {
    const char *fn;  /* the public function the message must name */
    op_fn call;
    unsigned dtypes; /* dtypes x may have (mask of 1 << dtype) */
} op_case;

#define OP(name, body)                                                                              \
    static nb_tensor *call_##name(nb_tensor *x) { return body; }
#define ENTRY(name, fn, dtypes) {fn, call_##name, dtypes}

OP(add_a, nb_add(x, other()))
OP(add_b, nb_add(other(), x))
OP(sub, nb_sub(x, other()))
OP(mul, nb_mul(other(), x))
OP(div, nb_div(x, other()))
OP(pow_a, nb_pow(x, other()))
OP(pow_b, nb_pow(other(), x))
OP(maximum, nb_maximum(x, other()))
OP(minimum, nb_minimum(other(), x))
OP(add_scalar, nb_add_scalar(x, 1))
OP(sub_scalar, nb_sub_scalar(x, 1))
OP(rsub_scalar, nb_rsub_scalar(1, x))
OP(mul_scalar, nb_mul_scalar(x, 2))
OP(div_scalar, nb_div_scalar(x, 2))
OP(rdiv_scalar, nb_rdiv_scalar(2, x))
OP(pow_scalar, nb_pow_scalar(x, 2))
OP(rpow_scalar, nb_rpow_scalar(2, x))
OP(eq, nb_eq(x, other()))
OP(ne, nb_ne(other(), x))
OP(lt, nb_lt(x, other()))
OP(le, nb_le(x, other()))
OP(gt, nb_gt(x, other()))
OP(ge, nb_ge(x, other()))
OP(gt_scalar, nb_gt_scalar(x, 0))
OP(lt_scalar, nb_lt_scalar(x, 0))
OP(eq_scalar, nb_eq_scalar(x, 0))
OP(neg, nb_neg(x))
OP(exp, nb_exp(x))
OP(log, nb_log(x))
OP(sqrt, nb_sqrt(x))
OP(rsqrt, nb_rsqrt(x))
OP(square, nb_square(x))
OP(reciprocal, nb_reciprocal(x))
OP(abs, nb_abs(x))
OP(sign, nb_sign(x))
OP(sin, nb_sin(x))
OP(cos, nb_cos(x))
OP(tanh, nb_tanh(x))
OP(sigmoid, nb_sigmoid(x))
OP(relu, nb_relu(x))
OP(leaky_relu, nb_leaky_relu(x, 0.1))
OP(elu, nb_elu(x, 1))
OP(gelu, nb_gelu(x, false))
OP(silu, nb_silu(x))
OP(softplus, nb_softplus(x, 1, 20))
OP(clamp, nb_clamp(x, 0, 1))
OP(sum, nb_sum(x, 0, NULL, false))
OP(mean, nb_mean(x, NB_DIMS(1), false))
OP(var, nb_var(x, NB_DIMS(0), true, false))
OP(std, nb_std(x, 0, NULL, false, true))
OP(logsumexp, nb_logsumexp(x, NB_DIMS(-1), false))
OP(max, nb_max(x))
OP(min, nb_min(x))
OP(max_dim, nb_max_dim(x, 1, false, NULL))
OP(min_dim, nb_min_dim(x, 0, true, NULL))
OP(argmax, nb_argmax(x, 1, false))
OP(argmin, nb_argmin(x, -1, false))
OP(sum_to, nb_sum_to(x, NB_SHAPE(3)))
OP(softmax, nb_softmax(x, 1))
OP(log_softmax, nb_log_softmax(x, 0))
OP(matmul_a, nb_matmul(x, nb_ones(NB_SHAPE(3, 2), NB_F32)))
OP(matmul_b, nb_matmul(nb_ones(NB_SHAPE(4, 2), NB_F32), x))
OP(reshape, nb_reshape(x, NB_SHAPE(3, -1)))
OP(view, nb_view(x, NB_SHAPE(6)))
OP(flatten, nb_flatten(x, 0, -1))
OP(transpose, nb_transpose(x, 0, 1))
OP(permute, nb_permute(x, NB_DIMS(1, 0)))
OP(expand, nb_expand(x, NB_SHAPE(4, 2, 3)))
OP(squeeze, nb_squeeze(nb_unsqueeze(x, 0), 0))
OP(unsqueeze, nb_unsqueeze(x, 2))
OP(narrow, nb_narrow(x, 1, 1, 2))
OP(slice, nb_slice(x, 1, 0, INT64_MAX, 2))
OP(contiguous, nb_contiguous(x))
OP(clone, nb_clone(x))
OP(to_dtype, nb_to_dtype(x, NB_F64))
OP(cat_first, nb_cat(2, (nb_tensor *[]){x, other()}, 0))
OP(cat_second, nb_cat(2, (nb_tensor *[]){other(), x}, 1))
OP(stack, nb_stack(2, (nb_tensor *[]){other(), x}, 0))
OP(index_select_t, nb_index_select(x, 1, index_1d()))
OP(gather_t, nb_gather(x, 0, index_2x3()))
OP(scatter_add_t, nb_scatter_add(x, 0, index_2x3(), other()))
OP(where_cond, nb_where(x, other(), other()))
OP(where_a, nb_where(nb_ones(NB_SHAPE(2, 3), NB_BOOL), x, other()))
OP(where_b, nb_where(nb_ones(NB_SHAPE(2, 3), NB_BOOL), other(), x))
OP(masked_fill_t, nb_masked_fill(x, nb_ones(NB_SHAPE(2, 3), NB_BOOL), 0))
OP(masked_fill_mask, nb_masked_fill(other(), x, 0))
OP(embedding_weight, nb_embedding(x, index_1d()))
OP(detach, nb_detach(x))
OP(zeros_like, nb_zeros_like(x))
OP(ones_like, nb_ones_like(x))
OP(full_like, nb_full_like(x, 2))
OP(keep, nb_keep(x))
OP(mse_input, nb_mse_loss(x, other(), NB_REDUCTION_MEAN))
OP(mse_target, nb_mse_loss(other(), x, NB_REDUCTION_SUM))
OP(l1_loss, nb_l1_loss(x, other(), NB_REDUCTION_NONE))
OP(smooth_l1, nb_smooth_l1_loss(x, other(), 1, NB_REDUCTION_MEAN))
OP(huber, nb_huber_loss(other(), x, 1, NB_REDUCTION_MEAN))
OP(bce_target, nb_bce_loss(nb_full(NB_SHAPE(2, 3), 0.5, NB_F32), x, NULL, NB_REDUCTION_MEAN))
OP(bce_logits, nb_bce_with_logits_loss(x, other(), NULL, NULL, NB_REDUCTION_MEAN))
OP(cross_entropy_logits, nb_cross_entropy(x, index_1d(), NULL))
OP(nll_log_probs, nb_nll_loss(x, index_1d(), NULL))
OP(standardizer_apply, nb_standardizer_apply(&(nb_standardizer){nb_zeros(NB_SHAPE(3), NB_F64),
                                                                              nb_ones(NB_SHAPE(3), NB_F64)}, x))

static const op_case op_cases[] = {
    ENTRY(add_a, "nb_add", ANY), ENTRY(add_b, "nb_add", ANY), ENTRY(sub, "nb_sub", NUM),
    ENTRY(mul, "nb_mul", ANY), ENTRY(div, "nb_div", ANY), ENTRY(pow_a, "nb_pow", ANY),
    ENTRY(pow_b, "nb_pow", ANY), ENTRY(maximum, "nb_maximum", ANY), ENTRY(minimum, "nb_minimum", ANY),
    ENTRY(add_scalar, "nb_add_scalar", ANY), ENTRY(sub_scalar, "nb_sub_scalar", NUM),
    ENTRY(rsub_scalar, "nb_rsub_scalar", NUM), ENTRY(mul_scalar, "nb_mul_scalar", ANY),
    ENTRY(div_scalar, "nb_div_scalar", ANY), ENTRY(rdiv_scalar, "nb_rdiv_scalar", ANY),
    ENTRY(pow_scalar, "nb_pow_scalar", ANY), ENTRY(rpow_scalar, "nb_rpow_scalar", ANY),
    ENTRY(eq, "nb_eq", ANY), ENTRY(ne, "nb_ne", ANY), ENTRY(lt, "nb_lt", ANY), ENTRY(le, "nb_le", ANY),
    ENTRY(gt, "nb_gt", ANY), ENTRY(ge, "nb_ge", ANY), ENTRY(gt_scalar, "nb_gt_scalar", ANY),
    ENTRY(lt_scalar, "nb_lt_scalar", ANY), ENTRY(eq_scalar, "nb_eq_scalar", ANY),
    ENTRY(neg, "nb_neg", NUM), ENTRY(exp, "nb_exp", FLOAT), ENTRY(log, "nb_log", FLOAT),
    ENTRY(sqrt, "nb_sqrt", FLOAT), ENTRY(rsqrt, "nb_rsqrt", FLOAT), ENTRY(square, "nb_square", NUM),
    ENTRY(reciprocal, "nb_reciprocal", FLOAT), ENTRY(abs, "nb_abs", NUM), ENTRY(sign, "nb_sign", ANY), ENTRY(sin, "nb_sin", FLOAT),
    ENTRY(cos, "nb_cos", FLOAT), ENTRY(tanh, "nb_tanh", FLOAT), ENTRY(sigmoid, "nb_sigmoid", FLOAT),
    ENTRY(relu, "nb_relu", NUM), ENTRY(leaky_relu, "nb_leaky_relu", FLOAT), ENTRY(elu, "nb_elu", FLOAT),
    ENTRY(gelu, "nb_gelu", FLOAT), ENTRY(silu, "nb_silu", FLOAT), ENTRY(softplus, "nb_softplus", FLOAT),
    ENTRY(clamp, "nb_clamp", FLOAT), ENTRY(sum, "nb_sum", ANY), ENTRY(mean, "nb_mean", FLOAT),
    ENTRY(var, "nb_var", FLOAT), ENTRY(std, "nb_std", FLOAT), ENTRY(logsumexp, "nb_logsumexp", FLOAT),
    ENTRY(max, "nb_max", ANY), ENTRY(min, "nb_min", ANY), ENTRY(max_dim, "nb_max_dim", ANY),
    ENTRY(min_dim, "nb_min_dim", ANY), ENTRY(argmax, "nb_argmax", ANY), ENTRY(argmin, "nb_argmin", ANY),
    ENTRY(sum_to, "nb_sum_to", ANY), ENTRY(softmax, "nb_softmax", FLOAT),
    ENTRY(log_softmax, "nb_log_softmax", FLOAT), ENTRY(matmul_a, "nb_matmul", FLOAT),
    ENTRY(matmul_b, "nb_matmul", FLOAT), ENTRY(reshape, "nb_reshape", ANY), ENTRY(view, "nb_view", ANY),
    ENTRY(flatten, "nb_flatten", ANY), ENTRY(transpose, "nb_transpose", ANY), ENTRY(permute, "nb_permute", ANY),
    ENTRY(expand, "nb_expand", ANY), ENTRY(squeeze, "nb_unsqueeze", ANY), ENTRY(unsqueeze, "nb_unsqueeze", ANY),
    ENTRY(narrow, "nb_narrow", ANY), ENTRY(slice, "nb_slice", ANY), ENTRY(contiguous, "nb_contiguous", ANY),
    ENTRY(clone, "nb_clone", ANY), ENTRY(to_dtype, "nb_to_dtype", ANY), ENTRY(cat_first, "nb_cat", ANY),
    ENTRY(cat_second, "nb_cat", ANY), ENTRY(stack, "nb_stack", ANY),
    ENTRY(index_select_t, "nb_index_select", ANY), ENTRY(gather_t, "nb_gather", ANY),
    ENTRY(scatter_add_t, "nb_scatter_add", F32), ENTRY(where_cond, "nb_where", ANY),
    ENTRY(where_a, "nb_where", ANY), ENTRY(where_b, "nb_where", ANY),
    ENTRY(masked_fill_t, "nb_masked_fill", ANY), ENTRY(masked_fill_mask, "nb_masked_fill", ANY),
    ENTRY(embedding_weight, "nb_embedding", ANY), ENTRY(detach, "nb_detach", ANY),
    ENTRY(zeros_like, "nb_zeros_like", ANY), ENTRY(ones_like, "nb_ones_like", ANY),
    ENTRY(full_like, "nb_full_like", ANY), ENTRY(keep, "nb_keep", ANY), ENTRY(mse_input, "nb_mse_loss", FLOAT),
    ENTRY(mse_target, "nb_mse_loss", FLOAT), ENTRY(l1_loss, "nb_l1_loss", FLOAT),
    ENTRY(smooth_l1, "nb_smooth_l1_loss", FLOAT), ENTRY(huber, "nb_huber_loss", FLOAT),
    ENTRY(bce_target, "nb_bce_loss", FLOAT), ENTRY(bce_logits, "nb_bce_with_logits_loss", FLOAT),
    ENTRY(cross_entropy_logits, "nb_cross_entropy", FLOAT), ENTRY(nll_log_probs, "nb_nll_loss", FLOAT),
    ENTRY(standardizer_apply, "nb_standardizer_apply", NUM | BOOL),
};
#define N_OP_CASES ((int)(sizeof op_cases / sizeof *op_cases))

/* NULL, freed and scope-ended handles, every dtype, zero-size and 0-d inputs, for one table entry. */
START_TEST(op_table)
{
    const op_case *c = &op_cases[_i];
    nb_scope_begin();
    char what[96];
    snprintf(what, sizeof what, "%s (entry call_%d)", c->fn, _i);

    nb_clear_error();
    check_failure(__LINE__, what, c->call(NULL) == NULL, NB_ERR_NULL, c->fn);
    if (!strstr(nb_last_error(), "")) problem(__LINE__, "unreachable");
    check_failure(__LINE__, what, c->call(freed_handle()) == NULL, NB_ERR_FREED, c->fn);
    nb_clear_error();
    check_failure(__LINE__, what, c->call(scope_ended_handle()) == NULL, NB_ERR_FREED, c->fn);

    for (int d = NB_F32; d <= NB_BOOL; d++) {
        nb_clear_error();
        nb_tensor *x = nb_ones(NB_SHAPE(2, 3), (nb_dtype)d);
        nb_tensor *r = c->call(x);
        if (c->dtypes & (1u << d)) {
            if (!r) problem(__LINE__, "%s with a %s input failed: %s", what, nb_dtype_name((nb_dtype)d), nb_last_error());
        } else {
            char w[128];
            snprintf(w, sizeof w, "%s with a %s input", what, nb_dtype_name((nb_dtype)d));
            check_failure(__LINE__, w, r == NULL, NB_ERR_DTYPE, c->fn);
        }
    }
    /* Zero-size and 0-d inputs: a result, or an error naming the op (never a crash or a silent NULL). */
    nb_tensor *odd[] = {nb_zeros(NB_SHAPE(0, 3), NB_F32), nb_zeros(NB_SHAPE(2, 0), NB_F32), nb_scalar(1, NB_F32),
                        nb_zeros(NB_SHAPE(0), NB_F32)};
    for (size_t k = 0; k < sizeof odd / sizeof *odd; k++) {
        nb_clear_error();
        nb_tensor *x = c->dtypes & F32 ? odd[k] : nb_to_dtype(odd[k], NB_I64);
        if (!c->call(x)) {
            if (nb_last_status() == NB_OK || nb_last_status() == NB_ERR_NULL || nb_last_status() == NB_ERR_FREED)
                problem(__LINE__, "%s on odd input %zu: status %s: \"%s\"", what, k, nb_status_name(nb_last_status()),
                        nb_last_error());
            else if (!strstr(nb_last_error(), c->fn))
                problem(__LINE__, "%s on odd input %zu: message \"%s\" does not name it", what, k, nb_last_error());
        }
    }
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Tensor core
 * ---------------------------------------------------------------------------------------------- */
START_TEST(creation)
{
    nb_scope_begin();
    const int64_t neg[] = {2, -3}, nine[NB_MAX_DIMS + 1] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const int64_t huge[] = {INT64_MAX / 2, 4};
    FAILS_P(NB_ERR_SHAPE, "nb_empty", nb_empty(2, neg, NB_F32));
    FAILS_P(NB_OK, "nb_zeros", nb_zeros(NB_MAX_DIMS + 1, nine, NB_F32));
    FAILS_P(NB_OK, "nb_ones", nb_ones(-1, neg, NB_F32));
    FAILS_P(NB_ERR_NULL, "nb_full", nb_full(2, NULL, 1, NB_F32));
    /* integers refuse values they cannot hold (a fraction is truncated, as in PyTorch) */
    FAILS_P(NB_ERR_VALUE, "nb_full", nb_full(NB_SHAPE(2), NAN, NB_I64));
    FAILS_P(NB_ERR_VALUE, "nb_full", nb_full(NB_SHAPE(2), 1e19, NB_I64));
    FAILS_P(NB_ERR_VALUE, "nb_scalar", nb_scalar(-INFINITY, NB_I64));
    FAILS_P(NB_ERR_VALUE, "nb_arange", nb_arange(0, 4e19, 1e19, NB_I64));
    WORKS_P(nb_full(NB_SHAPE(2), NAN, NB_BOOL));
    WORKS_P(nb_item(nb_full(NB_SHAPE(1), -2.5, NB_I64)) == -2);
    FAILS_P(NB_OK, "nb_zeros", nb_zeros(2, huge, NB_F64));
    FAILS_P(NB_ERR_DTYPE, "nb_zeros", nb_zeros(NB_SHAPE(2), (nb_dtype)7));
    FAILS_P(NB_ERR_DTYPE, "nb_scalar", nb_scalar(1, (nb_dtype)-1));
    FAILS_P(NB_OK, "nb_arange", nb_arange(0, 10, 0, NB_F32));
    FAILS_P(NB_OK, "nb_arange", nb_arange(0, NAN, 1, NB_F32));
    FAILS_P(NB_OK, "nb_arange", nb_arange(0, 1e300, 1e-300, NB_F32));
        FAILS_P(NB_OK, "nb_linspace", nb_linspace(0, 1, -1, NB_F32));
    FAILS_P(NB_OK, "nb_eye", nb_eye(-2, NB_F32));
    FAILS_P(NB_ERR_NULL, "nb_from_array", nb_from_array(NULL, NB_SHAPE(2), NB_F32));
    FAILS_P(NB_OK, "nb_from_array", nb_from_array((const float[]){1}, 1, neg + 1, NB_F32));
    /* The size limit applies to the nonzero sizes even when another one is 0 (their strides are computed). */
    FAILS_P(NB_ERR_SHAPE, "nb_zeros", nb_zeros(NB_SHAPE(0, INT64_MAX / 2, 4), NB_F32));
    FAILS_P(NB_ERR_SHAPE, "nb_empty", nb_empty(NB_SHAPE(4, 0, INT64_MAX / 2, 4), NB_F32));
    /* zero-size creation is valid */
    WORKS_P(nb_zeros(NB_SHAPE(0, 5), NB_F32));
    WORKS_P(nb_linspace(0, 1, 0, NB_F64));
    WORKS_P(nb_eye(0, NB_F32));
    WORKS_P(nb_arange(3, 3, 1, NB_I64));
    FAILS_P(NB_ERR_NULL, "nb_from_array", nb_from_array(NULL, NB_SHAPE(0), NB_F32));
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

START_TEST(inspection_and_access)
{
    nb_scope_begin();
    nb_tensor *t = nb_ones(NB_SHAPE(2, 3), NB_F32), *gone = freed_handle(), *ended = scope_ended_handle();
    nb_tensor *empty = nb_zeros(NB_SHAPE(0, 3), NB_F32);
    nb_tensor *handles[] = {NULL, gone, ended};
    const nb_status why[] = {NB_ERR_NULL, NB_ERR_FREED, NB_ERR_FREED};
    for (int h = 0; h < 3; h++) {
        nb_tensor *x = handles[h];
        nb_status s = why[h];
        FAILS_NEG(s, "nb_ndim", nb_ndim(x));
        FAILS_NEG(s, "nb_size", nb_size(x, 0));
        FAILS_P(s, "nb_shape", nb_shape(x));
        FAILS_P(s, "nb_strides", nb_strides(x));
        FAILS_NEG(s, "nb_numel", nb_numel(x));
        FAILS_NAN(s, "nb_item", nb_item(x));
        FAILS_NAN(s, "nb_get", nb_get(x, (const int64_t[]){0, 0}));
        FAILS_S(s, "nb_set", nb_set(x, (const int64_t[]){0, 0}, 1));
        FAILS_NAN(s, "nb_get_flat", nb_get_flat(x, 0));
        FAILS_S(s, "nb_set_flat", nb_set_flat(x, 0, 1));
        float buf[6];
        FAILS_S(s, "nb_to_array", nb_to_array(x, buf, 6, NB_F32));
        FAILS_P(s, "nb_data", nb_data(x));
        FAILS_S(s, "nb_fill", nb_fill(x, 1));
        FAILS_S(s, "nb_copy_", nb_copy_(x, t));
        FAILS_S(s, "nb_copy_", nb_copy_(t, x));
        FAILS_S(s, "nb_fprint", nb_fprint(stderr, x));
        char text[64];
        nb_clear_error();
        if (nb_format(x, text, sizeof text) != 0) problem(__LINE__, "nb_format of an invalid handle gave text");
        SURVIVES(nb_shape_str(x, text, sizeof text));
        if (strcmp(text, "(invalid)") != 0) problem(__LINE__, "nb_shape_str of an invalid handle: %s", text);
        SURVIVES(nb_is_contiguous(x));
        SURVIVES(nb_shares_storage(x, t));
        SURVIVES(nb_is_valid(x));
        if (nb_is_valid(x)) problem(__LINE__, "nb_is_valid is true for an invalid handle");
        FAILS_S(s, "nb_uniform_", nb_uniform_(x, 0, 1, NULL));
        FAILS_S(s, "nb_normal_", nb_normal_(x, 0, 1, NULL));
        FAILS_S(s, "nb_set_requires_grad", nb_set_requires_grad(x, true));
        FAILS_S(s, "nb_zero_grad", nb_zero_grad(x));
        FAILS_S(s, "nb_retain_grad", nb_retain_grad(x));
        FAILS_S(s, "nb_backward", nb_backward(x));
        FAILS_S(s, "nb_set_label", nb_set_label(x, "x"));
        SURVIVES(nb_requires_grad(x));
        SURVIVES(nb_is_leaf(x));
        SURVIVES(nb_grad_fn_name(x));
        SURVIVES(nb_grad(x));
        SURVIVES(nb_label(x));
        SURVIVES(nb_dtype_of(x));
    }
    /* Double free, and freeing a gradient. */
    FAILS_S(NB_ERR_FREED, "nb_free", nb_free(gone));
    FAILS_S(NB_ERR_FREED, "nb_free", nb_free(ended));
    nb_tensor *leaf = nb_ones(NB_SHAPE(2), NB_F32);
    nb_set_requires_grad(leaf, true);
    nb_backward(nb_sum(leaf, 0, NULL, false));
    FAILS_S(NB_ERR_STATE, "nb_free", nb_free(nb_grad(leaf)));
    FAILS_P(NB_ERR_STATE, "nb_keep", nb_keep(nb_grad(leaf)));

    /* Out-of-range dims and indices. */
    FAILS_NEG(NB_ERR_ARG, "nb_size", nb_size(t, 2));
    FAILS_NEG(NB_ERR_ARG, "nb_size", nb_size(t, -3));
    FAILS_NAN(NB_ERR_INDEX, "nb_get", nb_get(t, (const int64_t[]){2, 0}));
    FAILS_NAN(NB_ERR_INDEX, "nb_get", nb_get(t, (const int64_t[]){0, -4}));
    FAILS_NAN(NB_ERR_NULL, "nb_get", nb_get(t, NULL));
    FAILS_S(NB_ERR_INDEX, "nb_set", nb_set(t, (const int64_t[]){0, 3}, 1));
    FAILS_S(NB_ERR_NULL, "nb_set", nb_set(t, NULL, 1));
    FAILS_NAN(NB_ERR_INDEX, "nb_get_flat", nb_get_flat(t, 6));
    FAILS_NAN(NB_ERR_INDEX, "nb_get_flat", nb_get_flat(t, -1));
    FAILS_S(NB_ERR_INDEX, "nb_set_flat", nb_set_flat(t, 99, 1));
    FAILS_NAN(NB_OK, "nb_item", nb_item(t));
    FAILS_NAN(NB_OK, "nb_item", nb_item(empty));
    FAILS_NAN(NB_ERR_INDEX, "nb_get_flat", nb_get_flat(empty, 0));
    float small[2];
    FAILS_S(NB_OK, "nb_to_array", nb_to_array(t, small, 2, NB_F32));
    FAILS_S(NB_ERR_NULL, "nb_to_array", nb_to_array(t, NULL, 6, NB_F32));
    FAILS_S(NB_ERR_DTYPE, "nb_to_array", nb_to_array(t, small, 6, (nb_dtype)9));
    FAILS_P(NB_OK, "nb_data", nb_data(nb_transpose(t, 0, 1)));
    FAILS_S(NB_ERR_SHAPE, "nb_copy_", nb_copy_(t, nb_ones(NB_SHAPE(4), NB_F32)));
    FAILS_S(NB_ERR_SHAPE, "nb_copy_", nb_copy_(nb_ones(NB_SHAPE(3), NB_F32), t));
    /* an expanded destination: several elements at one address */
    FAILS_S(NB_ERR_ARG, "nb_copy_", nb_copy_(nb_expand(nb_zeros(NB_SHAPE(1), NB_F32), NB_SHAPE(3)),
                                             nb_ones(NB_SHAPE(3), NB_F32)));
    nb_tensor *labels = nb_zeros(NB_SHAPE(2), NB_I64);
    FAILS_S(NB_ERR_VALUE, "nb_fill", nb_fill(labels, NAN));
    FAILS_S(NB_ERR_VALUE, "nb_set_flat", nb_set_flat(labels, 0, INFINITY));
    FAILS_S(NB_ERR_VALUE, "nb_set", nb_set(labels, (const int64_t[]){1}, -1e300));
    FAILS_S(NB_ERR_NULL, "nb_fprint", nb_fprint(NULL, t));
    nb_clear_error();
    FAILS_S(NB_ERR_NULL, "nb_to_array", nb_to_array(empty, NULL, 0, NB_F32));
    float none[1];
    WORKS_P(nb_to_array(empty, none, 0, NB_F32) == NB_OK);
    WORKS_P(nb_fill(empty, 3) == NB_OK);
    WORKS_P(nb_format(empty, NULL, 0) > 0);
    WORKS_P(nb_format(t, NULL, 0) > 0);
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

START_TEST(scopes_and_grad_mode)
{
    FAILS_S(NB_ERR_STATE, "nb_scope_end", nb_scope_end());
    if (nb_scope_depth() != 0) problem(__LINE__, "scope depth %d after a failed nb_scope_end", nb_scope_depth());
    nb_clear_error();
    /* Unbalanced no-grad end: must not make grad mode negative-nested. */
    nb_no_grad_end();
    nb_clear_error();
    if (!nb_is_grad_enabled()) problem(__LINE__, "grad mode off after an unmatched nb_no_grad_end");
    nb_no_grad_begin();
    if (nb_is_grad_enabled()) problem(__LINE__, "grad mode still on after nb_no_grad_begin");
    nb_no_grad_end();
    if (!nb_is_grad_enabled()) problem(__LINE__, "grad mode off after a balanced begin/end");
    SURVIVES(nb_free(NULL));
    if (nb_last_status() != NB_OK) problem(__LINE__, "nb_free(NULL) recorded an error");
    SURVIVES(nb_keep(NULL));
    nb_clear_error();
    SURVIVES(nb_status_name((nb_status)1000));
    SURVIVES(nb_dtype_name((nb_dtype)1000));
    if (nb_dtype_size((nb_dtype)1000) != 0) problem(__LINE__, "nb_dtype_size of an invalid dtype is not 0");
    SURVIVES(nb_set_error_handler(NULL, NULL));
    REPORT_PROBLEMS();
}
END_TEST

START_TEST(random_numbers)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 1);
    FAILS_P(NB_OK, "nb_rand", nb_rand(NB_SHAPE(2), 0, 1, NB_I64, &g));
    FAILS_P(NB_OK, "nb_rand", nb_rand(NB_SHAPE(-2), 0, 1, NB_F32, &g));
    FAILS_P(NB_OK, "nb_rand", nb_rand(NB_SHAPE(2), 1, NAN, NB_F32, &g));
    FAILS_P(NB_OK, "nb_randn", nb_randn(NB_SHAPE(2), 0, -1, NB_F32, &g));
    FAILS_P(NB_OK, "nb_randn", nb_randn(NB_SHAPE(2), 0, 1, NB_BOOL, &g));
    FAILS_P(NB_OK, "nb_randint", nb_randint(NB_SHAPE(2), 5, 5, &g));
    FAILS_P(NB_OK, "nb_randint", nb_randint(NB_SHAPE(2), 5, 1, &g));
    FAILS_P(NB_OK, "nb_randperm", nb_randperm(-1, &g));
    FAILS_S(NB_OK, "nb_uniform_", nb_uniform_(nb_zeros(NB_SHAPE(2), NB_I64), 0, 1, &g));
    FAILS_S(NB_OK, "nb_normal_", nb_normal_(nb_zeros(NB_SHAPE(2), NB_F32), 0, -1, &g));
    WORKS_P(nb_randperm(0, &g));
    WORKS_P(nb_rand(NB_SHAPE(0), 0, 1, NB_F32, &g));
    /* No error channel: must not crash or loop. */
    SURVIVES(nb_random_below(&g, 0));
    SURVIVES(nb_random_below(NULL, 1));
    SURVIVES(nb_random_u64(NULL));
    SURVIVES(nb_generator_seed(NULL, 3));
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Autograd
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *sum_f(nb_tensor *const *in, void *ud)
{
    (void)ud;
    return nb_sum(in[0], 0, NULL, false);
}

START_TEST(autograd)
{
    nb_scope_begin();
    nb_tensor *w = nb_ones(NB_SHAPE(2, 3), NB_F32);
    nb_set_requires_grad(w, true);
    nb_tensor *y = nb_mul_scalar(w, 2);
    FAILS_S(NB_ERR_DTYPE, "nb_set_requires_grad", nb_set_requires_grad(nb_zeros(NB_SHAPE(2), NB_I64), true));
    FAILS_S(NB_ERR_DTYPE, "nb_set_requires_grad", nb_set_requires_grad(nb_zeros(NB_SHAPE(2), NB_BOOL), true));
    FAILS_S(NB_ERR_STATE, "nb_set_requires_grad", nb_set_requires_grad(y, false));
    FAILS_S(NB_ERR_SHAPE, "nb_backward", nb_backward(y));
    FAILS_S(NB_ERR_STATE, "nb_backward", nb_backward(nb_ones(NB_SHAPE(1), NB_F32)));
    FAILS_S(NB_ERR_SHAPE, "nb_backward_ex", nb_backward_ex(y, nb_ones(NB_SHAPE(3), NB_F32), NB_BACKWARD_DEFAULT));
    FAILS_S(NB_ERR_FREED, "nb_backward_ex", nb_backward_ex(y, freed_handle(), NB_BACKWARD_DEFAULT));
    FAILS_S(NB_ERR_ARG, "nb_backward_ex", nb_backward_ex(nb_sum(y, 0, NULL, false), NULL, (nb_backward_flags)64));
    nb_tensor *loss = nb_sum(nb_mul_scalar(w, 3), 0, NULL, false);
    nb_clear_error();
    if (nb_backward(loss) != NB_OK) problem(__LINE__, "first backward failed: %s", nb_last_error());
    FAILS_S(NB_ERR_STATE, "nb_backward", nb_backward(loss));
    /* Backward after the graph's intermediates went out of scope: the kept loss still works once. */
    nb_scope_begin();
    nb_tensor *kept = nb_keep(nb_sum(nb_exp(w), 0, NULL, false));
    nb_scope_end();
    nb_clear_error();
    if (nb_backward(kept) != NB_OK) problem(__LINE__, "backward of a kept loss failed: %s", nb_last_error());
    /* In-place modification of a saved input. */
    nb_tensor *a = nb_ones(NB_SHAPE(2), NB_F32);
    nb_set_requires_grad(a, true);
    nb_tensor *b = nb_zeros(NB_SHAPE(2), NB_F32);
    nb_tensor *p = nb_sum(nb_mul(a, b), 0, NULL, false);
    nb_fill(b, 3);
    FAILS_S(NB_ERR_STATE, "nb_backward", nb_backward(p));

    nb_tensor *loss2 = nb_sum(nb_square(w), 0, NULL, false), *grads[2];
    FAILS_S(NB_OK, "nb_grad_of", nb_grad_of(loss2, NULL, -1, (nb_tensor *[]){w}, grads, NB_BACKWARD_DEFAULT));
    FAILS_S(NB_ERR_ARG, "nb_grad_of", nb_grad_of(loss2, NULL, 1, NULL, grads, NB_BACKWARD_DEFAULT));
    FAILS_S(NB_ERR_ARG, "nb_grad_of", nb_grad_of(loss2, NULL, 1, (nb_tensor *[]){w}, NULL, NB_BACKWARD_DEFAULT));
    FAILS_S(NB_ERR_NULL, "nb_grad_of", nb_grad_of(loss2, NULL, 1, (nb_tensor *[]){NULL}, grads, NB_BACKWARD_DEFAULT));
    FAILS_S(NB_ERR_FREED, "nb_grad_of",
            nb_grad_of(loss2, NULL, 1, (nb_tensor *[]){freed_handle()}, grads, NB_BACKWARD_DEFAULT));
    FAILS_S(NB_ERR_NULL, "nb_grad_of", nb_grad_of(NULL, NULL, 1, (nb_tensor *[]){w}, grads, NB_BACKWARD_DEFAULT));

    nb_tensor *leaf = nbt_leaf(NB_SHAPE(2), 1);
    FAILS_S(NB_ERR_NULL, "nb_gradcheck", nb_gradcheck(NULL, NULL, 1, (nb_tensor *[]){leaf}, NULL));
    FAILS_S(NB_OK, "nb_gradcheck", nb_gradcheck(sum_f, NULL, 0, (nb_tensor *[]){leaf}, NULL));
    FAILS_S(NB_ERR_ARG, "nb_gradcheck", nb_gradcheck(sum_f, NULL, 1, NULL, NULL));
    FAILS_S(NB_OK, "nb_gradcheck", nb_gradcheck(sum_f, NULL, 1, (nb_tensor *[]){w}, NULL));
    FAILS_S(NB_ERR_FREED, "nb_gradgradcheck", nb_gradgradcheck(sum_f, NULL, 1, (nb_tensor *[]){freed_handle()}, NULL));

    FAILS_S(NB_ERR_ARG, "nb_set_label", nb_set_label(w, "a label that is much longer than thirty-one bytes"));
    FAILS_S(NB_ERR_ARG, "nb_set_label", nb_set_label(w, "new\nline"));
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Shapes, dims and indices of the ops
 * ---------------------------------------------------------------------------------------------- */
START_TEST(shapes_dims_indices)
{
    nb_scope_begin();
    nb_tensor *t = nb_ones(NB_SHAPE(2, 3), NB_F32), *v = nb_ones(NB_SHAPE(4), NB_F32);
    nb_tensor *i64 = nb_zeros(NB_SHAPE(2), NB_I64);
    /* binary ops: shapes that do not broadcast */
    FAILS_P(NB_ERR_SHAPE, "nb_add", nb_add(t, v));
    FAILS_P(NB_ERR_SHAPE, "nb_maximum", nb_maximum(v, t));
    FAILS_P(NB_ERR_SHAPE, "nb_eq", nb_eq(t, v));
    FAILS_P(NB_ERR_SHAPE, "nb_where", nb_where(v, t, t));
    FAILS_P(NB_ERR_SHAPE, "nb_masked_fill", nb_masked_fill(t, nb_ones(NB_SHAPE(3, 3), NB_BOOL), 0));
    FAILS_P(NB_ERR_VALUE, "nb_leaky_relu", nb_leaky_relu(t, NAN));
    FAILS_P(NB_ERR_VALUE, "nb_softplus", nb_softplus(t, 0, 20));
    FAILS_P(NB_ERR_VALUE, "nb_clamp", nb_clamp(t, NAN, 1));
    /* reductions */
    FAILS_P(NB_ERR_ARG, "nb_sum", nb_sum(t, NB_DIMS(2), false));
    FAILS_P(NB_ERR_ARG, "nb_sum", nb_sum(t, NB_DIMS(-3), false));
    FAILS_P(NB_ERR_ARG, "nb_mean", nb_mean(t, NB_DIMS(0, 0), false));
    FAILS_P(NB_ERR_ARG, "nb_sum", nb_sum(t, NB_DIMS(0, -2), false));
    FAILS_P(NB_OK, "nb_sum", nb_sum(t, -1, NULL, false));
    FAILS_P(NB_ERR_NULL, "nb_sum", nb_sum(t, 1, NULL, false));
    FAILS_P(NB_OK, "nb_var", nb_var(t, 3, (const int[]){0, 1, 0}, true, false));
    FAILS_P(NB_ERR_ARG, "nb_max_dim", nb_max_dim(t, 2, false, NULL));
    FAILS_P(NB_ERR_ARG, "nb_argmin", nb_argmin(t, -3, false));
    FAILS_P(NB_OK, "nb_max", nb_max(nb_zeros(NB_SHAPE(0), NB_F32)));
    FAILS_P(NB_OK, "nb_argmax", nb_argmax(nb_zeros(NB_SHAPE(0, 3), NB_F32), 0, false));
    FAILS_P(NB_OK, "nb_max_dim", nb_max_dim(nb_zeros(NB_SHAPE(3, 0), NB_F32), 1, false, NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_sum_to", nb_sum_to(t, NB_SHAPE(4)));
    FAILS_P(NB_OK, "nb_sum_to", nb_sum_to(t, NB_SHAPE(-1)));
    FAILS_P(NB_ERR_ARG, "nb_softmax", nb_softmax(t, 2));
    FAILS_P(NB_ERR_ARG, "nb_log_softmax", nb_log_softmax(t, -3));
    /* matmul */
    FAILS_P(NB_ERR_SHAPE, "nb_matmul", nb_matmul(t, t));
    FAILS_P(NB_ERR_SHAPE, "nb_matmul", nb_matmul(nb_scalar(1, NB_F32), t));
    FAILS_P(NB_ERR_SHAPE, "nb_matmul", nb_matmul(nb_ones(NB_SHAPE(2, 2, 3), NB_F32), nb_ones(NB_SHAPE(3, 3, 1), NB_F32)));
    /* shape ops */
    FAILS_P(NB_ERR_SHAPE, "nb_reshape", nb_reshape(t, NB_SHAPE(4, 2)));
    FAILS_P(NB_OK, "nb_reshape", nb_reshape(t, NB_SHAPE(-1, -1)));
    FAILS_P(NB_OK, "nb_reshape", nb_reshape(t, NB_SHAPE(-2, -3)));
    FAILS_P(NB_OK, "nb_reshape", nb_reshape(t, NB_MAX_DIMS + 1, (const int64_t[9]){6, 1, 1, 1, 1, 1, 1, 1, 1}));
    FAILS_P(NB_ERR_SHAPE, "nb_view", nb_view(nb_transpose(t, 0, 1), NB_SHAPE(6)));
    FAILS_P(NB_ERR_ARG, "nb_flatten", nb_flatten(t, 1, 0));
    FAILS_P(NB_ERR_ARG, "nb_flatten", nb_flatten(t, 0, 5));
    FAILS_P(NB_ERR_ARG, "nb_transpose", nb_transpose(t, 0, 2));
    FAILS_P(NB_OK, "nb_permute", nb_permute(t, NB_DIMS(0)));
    FAILS_P(NB_OK, "nb_permute", nb_permute(t, NB_DIMS(0, 0)));
    FAILS_P(NB_OK, "nb_permute", nb_permute(t, NB_DIMS(0, 7)));
    FAILS_P(NB_ERR_NULL, "nb_permute", nb_permute(t, 2, NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_expand", nb_expand(t, NB_SHAPE(2, 4)));
    FAILS_P(NB_ERR_SHAPE, "nb_expand", nb_expand(t, NB_SHAPE(3)));
    FAILS_P(NB_OK, "nb_expand", nb_expand(t, NB_SHAPE(-1, 2, 3)));
    FAILS_P(NB_ERR_SHAPE, "nb_squeeze", nb_squeeze(t, 0));
    FAILS_P(NB_ERR_ARG, "nb_squeeze", nb_squeeze(t, 2));
    FAILS_P(NB_ERR_ARG, "nb_unsqueeze", nb_unsqueeze(t, 3));
    FAILS_P(NB_ERR_ARG, "nb_unsqueeze", nb_unsqueeze(t, -4));
    FAILS_P(NB_ERR_INDEX, "nb_narrow", nb_narrow(t, 1, 2, 2));
    FAILS_P(NB_ERR_INDEX, "nb_narrow", nb_narrow(t, 1, 4, 0));
    FAILS_P(NB_ERR_VALUE, "nb_narrow", nb_narrow(t, 1, 0, -1));
    FAILS_P(NB_ERR_INDEX, "nb_narrow", nb_narrow(t, 1, INT64_MAX, 1));
    FAILS_P(NB_ERR_INDEX, "nb_narrow", nb_narrow(t, 1, 1, INT64_MAX));
    FAILS_P(NB_ERR_ARG, "nb_narrow", nb_narrow(t, 5, 0, 1));
    FAILS_P(NB_ERR_ARG, "nb_slice", nb_slice(t, 0, 0, 1, 0));
    FAILS_P(NB_ERR_ARG, "nb_slice", nb_slice(t, 0, 0, 1, -1));
    FAILS_P(NB_ERR_ARG, "nb_slice", nb_slice(t, 3, 0, 1, 1));
    WORKS_P(nb_slice(t, 1, INT64_MIN, INT64_MAX, INT64_MAX));
    WORKS_P(nb_slice(t, 1, 5, 1, 1));
    FAILS_P(NB_OK, "nb_to_dtype", nb_to_dtype(t, (nb_dtype)5));
    FAILS_P(NB_OK, "nb_cat", nb_cat(0, (nb_tensor *[]){t}, 0));
    FAILS_P(NB_ERR_NULL, "nb_cat", nb_cat(1, NULL, 0));
    FAILS_P(NB_ERR_SHAPE, "nb_cat", nb_cat(2, (nb_tensor *[]){t, nb_ones(NB_SHAPE(3, 2), NB_F32)}, 0));
    FAILS_P(NB_ERR_ARG, "nb_cat", nb_cat(2, (nb_tensor *[]){t, t}, 2));
    FAILS_P(NB_OK, "nb_cat", nb_cat(2, (nb_tensor *[]){t, nb_scalar(1, NB_F32)}, 0));
    /* pieces whose sizes add up past INT64_MAX (cheap stride-0 views): refused, not wrapped around */
    nb_tensor *pieces[32];
    for (int i = 0; i < 32; i++) pieces[i] = nb_expand(nb_ones(NB_SHAPE(1), NB_F32), NB_SHAPE((int64_t)1 << 58));
    FAILS_P(NB_ERR_SHAPE, "nb_cat", nb_cat(32, pieces, 0));
    FAILS_P(NB_OK, "nb_stack", nb_stack(-1, (nb_tensor *[]){t}, 0));
    FAILS_P(NB_ERR_SHAPE, "nb_stack", nb_stack(2, (nb_tensor *[]){t, v}, 0));
    FAILS_P(NB_ERR_ARG, "nb_stack", nb_stack(2, (nb_tensor *[]){t, t}, 4));
    /* indexing */
    FAILS_P(NB_ERR_INDEX, "nb_index_select", nb_index_select(t, 0, T_I64(NB_SHAPE(2), 0, 2)));
    FAILS_P(NB_ERR_INDEX, "nb_index_select", nb_index_select(t, 0, T_I64(NB_SHAPE(1), -3)));
    FAILS_P(NB_OK, "nb_index_select", nb_index_select(t, 0, nb_zeros(NB_SHAPE(1, 1), NB_I64)));
    FAILS_P(NB_ERR_DTYPE, "nb_index_select", nb_index_select(t, 0, nb_zeros(NB_SHAPE(1), NB_F32)));
    FAILS_P(NB_ERR_ARG, "nb_index_select", nb_index_select(t, 2, i64));
    FAILS_P(NB_ERR_INDEX, "nb_gather", nb_gather(t, 1, T_I64(NB_SHAPE(1, 1), 3)));
    FAILS_P(NB_ERR_SHAPE, "nb_gather", nb_gather(t, 1, i64));
    FAILS_P(NB_ERR_SHAPE, "nb_gather", nb_gather(t, 0, nb_zeros(NB_SHAPE(1, 4), NB_I64)));
    WORKS_P(nb_gather(t, 0, nb_zeros(NB_SHAPE(3, 3), NB_I64)));
    FAILS_P(NB_ERR_DTYPE, "nb_gather", nb_gather(t, 0, t));
    FAILS_P(NB_ERR_ARG, "nb_gather", nb_gather(t, 2, nb_zeros(NB_SHAPE(1, 1), NB_I64)));
    FAILS_P(NB_ERR_INDEX, "nb_scatter_add", nb_scatter_add(t, 0, T_I64(NB_SHAPE(1, 1), -1), t));
    FAILS_P(NB_ERR_SHAPE, "nb_scatter_add", nb_scatter_add(t, 0, nb_zeros(NB_SHAPE(3, 3), NB_I64), t));
    FAILS_P(NB_ERR_DTYPE, "nb_scatter_add", nb_scatter_add(t, 0, nb_zeros(NB_SHAPE(1, 1), NB_I64),
                                                           nb_ones(NB_SHAPE(1, 1), NB_F64)));
    FAILS_P(NB_ERR_INDEX, "nb_embedding", nb_embedding(t, T_I64(NB_SHAPE(1), 2)));
    FAILS_P(NB_ERR_INDEX, "nb_embedding", nb_embedding(t, T_I64(NB_SHAPE(1), -1)));
    FAILS_P(NB_ERR_DTYPE, "nb_embedding", nb_embedding(t, t));
    FAILS_P(NB_ERR_SHAPE, "nb_embedding", nb_embedding(v, i64));
    WORKS_P(nb_embedding(t, nb_zeros(NB_SHAPE(0), NB_I64)));
    WORKS_P(nb_index_select(t, 1, nb_zeros(NB_SHAPE(0), NB_I64)));
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

START_TEST(printing_and_graph_output)
{
    nb_scope_begin();
    nb_tensor *t = nb_ones(NB_SHAPE(2), NB_F32);
    FAILS_S(NB_ERR_NULL, "nb_fprint_value_grad", nb_fprint_value_grad(NULL, t));
    FAILS_S(NB_ERR_FREED, "nb_fprint_value_grad", nb_fprint_value_grad(stderr, freed_handle()));
    FAILS_S(NB_ERR_NULL, "nb_dot_write", nb_dot_write(t, NULL));
    FAILS_S(NB_ERR_NULL, "nb_dot_write", nb_dot_write(NULL, stderr));
    FAILS_S(NB_ERR_NULL, "nb_dot_save", nb_dot_save(t, NULL));
    FAILS_S(NB_ERR_IO, "nb_dot_save", nb_dot_save(t, "/nonexistent-dir/x.dot"));
    FAILS_S(NB_ERR_NULL, "nb_dot_render_svg", nb_dot_render_svg(NULL, "x.svg"));
    SURVIVES(nb_trace_backward(NULL));
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * nn
 * ---------------------------------------------------------------------------------------------- */
START_TEST(param_lists_and_modules)
{
    nb_scope_begin();
    nb_tensor *t = nb_ones(NB_SHAPE(2), NB_F32);
    nb_param_list *list = nb_param_list_new();
    FAILS_S(NB_ERR_NULL, "nb_param_list_add", nb_param_list_add(NULL, "a", t, false));
    FAILS_S(NB_ERR_NULL, "nb_param_list_add", nb_param_list_add(list, NULL, t, false));
    FAILS_S(NB_ERR_NULL, "nb_param_list_add", nb_param_list_add(list, "a", NULL, false));
    FAILS_S(NB_ERR_FREED, "nb_param_list_add", nb_param_list_add(list, "a", freed_handle(), false));
    char long_name[NB_NAME_MAX + 10];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    FAILS_S(NB_ERR_ARG, "nb_param_list_add", nb_param_list_add(list, long_name, t, false));
    nb_param_list_add(list, "a", t, false);
    FAILS_S(NB_ERR_ARG, "nb_param_list_add", nb_param_list_add(list, "a", t, false));
    SURVIVES(nb_param_list_find(NULL, "a"));
    SURVIVES(nb_param_list_find(list, NULL));
    FAILS_NEG(NB_ERR_NULL, "nb_param_list_numel", nb_param_list_numel(NULL, false));
    FAILS_NEG(NB_ERR_NULL, "nb_param_list_set_frozen", nb_param_list_set_frozen(NULL, "", true));
    FAILS_NEG(NB_ERR_NULL, "nb_param_list_set_frozen", nb_param_list_set_frozen(list, NULL, true));
    SURVIVES(nb_param_list_zero_grad(NULL));
    SURVIVES(nb_param_list_free(NULL));
    /* A list holding a tensor the user freed. */
    nb_tensor *doomed = nb_ones(NB_SHAPE(3), NB_F32);
    nb_param_list_add(list, "doomed", doomed, false);
    nb_free(doomed);
    FAILS_NEG(NB_ERR_FREED, "nb_param_list_numel", nb_param_list_numel(list, false));
    SURVIVES(nb_param_list_set_frozen(list, "", true));
    SURVIVES(nb_param_list_zero_grad(list));
    FAILS_P(NB_ERR_FREED, "nb_l2_penalty", nb_l2_penalty(list, true));
    FAILS_P(NB_ERR_NULL, "nb_l1_penalty", nb_l1_penalty(NULL, true));
    nb_param_list_free(list);

    /* modules */
    FAILS_P(NB_ERR_NULL, "nb_forward", nb_forward(NULL, t));
    nb_module *lin = nb_linear_new(3, 2, true, NULL);
    FAILS_P(NB_ERR_NULL, "nb_forward", nb_forward(lin, NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_linear", nb_forward(lin, nb_ones(NB_SHAPE(2, 4), NB_F32)));
    FAILS_P(NB_ERR_SHAPE, "nb_linear", nb_forward(lin, nb_scalar(1, NB_F32)));
    /* The message names the op the layer runs (nb_matmul or a fused op) rather than nb_linear, with the dtype. */
    FAILS_P(NB_ERR_DTYPE, "i64", nb_forward(lin, nb_ones(NB_SHAPE(2, 3), NB_I64)));
    WORKS_P(nb_forward(lin, nb_ones(NB_SHAPE(0, 3), NB_F32)));
    nb_param_list *collected = nb_param_list_new();
    FAILS_S(NB_ERR_NULL, "nb_module_collect", nb_module_collect(NULL, "", collected));
    nb_param_list_free(collected);
    FAILS_S(NB_ERR_NULL, "nb_module_collect", nb_module_collect(lin, "", NULL));
    FAILS_S(NB_ERR_NULL, "nb_module_collect_child", nb_module_collect_child(lin, "", NULL, NULL));
    FAILS_P(NB_ERR_NULL, "nb_module_parameters", nb_module_parameters(NULL));
    SURVIVES(nb_module_train(NULL, false));
    SURVIVES(nb_module_free(NULL));
    /* a module whose weight the user freed */
    nb_free(((nb_linear *)lin)->weight);
    FAILS_P(NB_ERR_FREED, "weight was freed", nb_forward(lin, nb_ones(NB_SHAPE(2, 3), NB_F32)));
    nb_module_free(lin);

    FAILS_P(NB_OK, "nb_linear_new", nb_linear_new(-1, 2, true, NULL));
    FAILS_P(NB_OK, "nb_linear_new", nb_linear_new(3, -2, false, NULL));
    FAILS_P(NB_OK, "nb_leaky_relu_layer_new", nb_leaky_relu_layer_new(NAN));
    FAILS_P(NB_OK, "nb_dropout_new", nb_dropout_new(1.5, NULL));
    FAILS_P(NB_OK, "nb_dropout_new", nb_dropout_new(-0.1, NULL));
    FAILS_P(NB_OK, "nb_dropout_new", nb_dropout_new(NAN, NULL));
    FAILS_P(NB_OK, "nb_layer_norm_new", nb_layer_norm_new(0, NULL, 1e-5, true));
    FAILS_P(NB_OK, "nb_layer_norm_new", nb_layer_norm_new(NB_MAX_DIMS + 1, (const int64_t[9]){1}, 1e-5, true));
    FAILS_P(NB_OK, "nb_layer_norm_new", nb_layer_norm_new(1, (const int64_t[]){-3}, 1e-5, true));
    FAILS_P(NB_OK, "nb_layer_norm_new", nb_layer_norm_new(1, (const int64_t[]){3}, -1, true));
    FAILS_P(NB_OK, "nb_batch_norm1d_new", nb_batch_norm1d_new(0, 1e-5, 0.1, true));
    FAILS_P(NB_OK, "nb_batch_norm1d_new", nb_batch_norm1d_new(3, 1e-5, 2, true));
    FAILS_P(NB_OK, "nb_embedding_layer_new", nb_embedding_layer_new(-1, 3, NULL));
    FAILS_P(NB_OK, "nb_sequential_new", nb_sequential_new(-1, NULL));
    FAILS_P(NB_OK, "nb_sequential_new", nb_sequential_new(1, NULL));
    FAILS_P(NB_OK, "nb_sequential_new", nb_sequential_new(2, (nb_module *[]){nb_relu_layer_new(), NULL}));

    nb_module *seq = nb_sequential_new(1, (nb_module *[]){nb_linear_new(3, 2, true, NULL)});
    FAILS_P(NB_ERR_INDEX, "nb_sequential_get", nb_sequential_get(seq, 1));
    FAILS_P(NB_ERR_INDEX, "nb_sequential_get", nb_sequential_get(seq, -2));
    FAILS_S(NB_ERR_INDEX, "nb_sequential_set", nb_sequential_set(seq, 3, nb_relu_layer_new()));
    FAILS_S(NB_ERR_NULL, "nb_sequential_set", nb_sequential_set(seq, 0, NULL));
    FAILS_S(NB_ERR_NULL, "nb_sequential_append", nb_sequential_append(seq, NULL));
    FAILS_S(NB_ERR_NULL, "nb_sequential_append", nb_sequential_append(NULL, nb_relu_layer_new()));
    FAILS_NEG(NB_ERR_NULL, "nb_sequential_len", nb_sequential_len(NULL));
    /* a module that is not a Sequential */
    nb_module *relu = nb_relu_layer_new();
    FAILS_NEG(NB_ERR_ARG, "nb_sequential_len", nb_sequential_len(relu));
    FAILS_P(NB_ERR_ARG, "nb_sequential_get", nb_sequential_get(relu, 0));
    FAILS_S(NB_ERR_ARG, "nb_sequential_append", nb_sequential_append(relu, nb_relu_layer_new()));
    nb_module_free(relu);
    nb_module_free(seq);

    nb_module *emb = nb_embedding_layer_new(4, 2, NULL);
    FAILS_P(NB_ERR_INDEX, "nb_embedding", nb_forward(emb, T_I64(NB_SHAPE(1), 4)));
    FAILS_P(NB_ERR_DTYPE, "nb_embedding", nb_forward(emb, nb_ones(NB_SHAPE(1), NB_F32)));
    nb_module_free(emb);
    nb_module *bn = nb_batch_norm1d_new(3, 1e-5, 0.1, true);
    FAILS_P(NB_ERR_SHAPE, "nb_batch_norm1d", nb_forward(bn, nb_ones(NB_SHAPE(2, 4), NB_F32)));
    FAILS_P(NB_ERR_SHAPE, "nb_batch_norm1d", nb_forward(bn, nb_ones(NB_SHAPE(3), NB_F32)));
    FAILS_P(NB_OK, "nb_batch_norm1d", nb_forward(bn, nb_ones(NB_SHAPE(1, 3), NB_F32)));
    nb_module_free(bn);
    nb_module *ln = nb_layer_norm_new(1, (const int64_t[]){3}, 1e-5, true);
    FAILS_P(NB_ERR_SHAPE, "nb_layer_norm", nb_forward(ln, nb_ones(NB_SHAPE(2, 4), NB_F32)));
    FAILS_P(NB_ERR_DTYPE, "nb_layer_norm", nb_forward(ln, nb_ones(NB_SHAPE(2, 3), NB_I64)));
    nb_module_free(ln);
    nb_module *sm = nb_softmax_layer_new(3);
    FAILS_P(NB_ERR_ARG, "nb_softmax", nb_forward(sm, nb_ones(NB_SHAPE(2, 4), NB_F32)));
    nb_module_free(sm);
    nb_module *fl = nb_flatten_layer_new(2, 5);
    FAILS_P(NB_ERR_ARG, "nb_flatten", nb_forward(fl, nb_ones(NB_SHAPE(2, 4), NB_F32)));
    nb_module_free(fl);
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

START_TEST(initializers_and_losses)
{
    nb_scope_begin();
    nb_tensor *v = nb_ones(NB_SHAPE(3), NB_F32), *m = nb_ones(NB_SHAPE(2, 3), NB_F32);
    nb_tensor *gone = freed_handle();
    FAILS_S(NB_ERR_NULL, "nb_init_uniform_", nb_init_uniform_(NULL, 0, 1, NULL));
    FAILS_S(NB_ERR_FREED, "nb_init_normal_", nb_init_normal_(gone, 0, 1, NULL));
    FAILS_S(NB_ERR_FREED, "nb_init_zeros_", nb_init_zeros_(gone));
    FAILS_S(NB_ERR_FREED, "nb_init_ones_", nb_init_ones_(gone));
    FAILS_S(NB_ERR_FREED, "nb_init_constant_", nb_init_constant_(gone, 2));
    FAILS_S(NB_OK, "nb_init_uniform_", nb_init_uniform_(m, 1, NAN, NULL));
    FAILS_S(NB_OK, "nb_init_normal_", nb_init_normal_(m, 0, -1, NULL));
    FAILS_S(NB_OK, "nb_init_uniform_", nb_init_uniform_(nb_zeros(NB_SHAPE(2), NB_I64), 0, 1, NULL));
    FAILS_S(NB_ERR_SHAPE, "nb_init_xavier_uniform_", nb_init_xavier_uniform_(v, 1, NULL));
    FAILS_S(NB_ERR_SHAPE, "nb_init_xavier_normal_", nb_init_xavier_normal_(nb_scalar(1, NB_F32), 1, NULL));
    FAILS_S(NB_ERR_SHAPE, "nb_init_kaiming_uniform_", nb_init_kaiming_uniform_(v, 0, NB_FAN_IN, NB_GAIN_RELU, NULL));
    FAILS_S(NB_ERR_SHAPE, "nb_init_kaiming_normal_", nb_init_kaiming_normal_(v, 0, NB_FAN_OUT, NB_GAIN_RELU, NULL));
    FAILS_S(NB_OK, "nb_init_kaiming_normal_",
            nb_init_kaiming_normal_(m, 0, (nb_fan_mode)7, NB_GAIN_RELU, NULL));
    FAILS_S(NB_OK, "nb_init_kaiming_normal_",
            nb_init_kaiming_normal_(m, 0, NB_FAN_IN, (nb_nonlinearity)77, NULL));
    WORKS_P(nb_init_xavier_uniform_(nb_zeros(NB_SHAPE(0, 3), NB_F32), 1, NULL) == NB_OK);
    FAILS_NAN(NB_OK, "nb_calculate_gain", nb_calculate_gain((nb_nonlinearity)77, 0));

    nb_tensor *labels = T_I64(NB_SHAPE(2), 0, 2);
    FAILS_P(NB_ERR_SHAPE, "nb_mse_loss", nb_mse_loss(m, v, NB_REDUCTION_MEAN));
    FAILS_P(NB_ERR_ARG, "nb_mse_loss", nb_mse_loss(m, m, (nb_reduction)9));
    FAILS_P(NB_ERR_ARG, "nb_smooth_l1_loss", nb_smooth_l1_loss(m, m, -1, NB_REDUCTION_MEAN));
    FAILS_P(NB_ERR_ARG, "nb_huber_loss", nb_huber_loss(m, m, 0, NB_REDUCTION_MEAN));
    FAILS_P(NB_ERR_VALUE, "nb_bce_loss", nb_bce_loss(nb_full(NB_SHAPE(2), 2, NB_F32), nb_ones(NB_SHAPE(2), NB_F32),
                                                     NULL, NB_REDUCTION_MEAN));
    FAILS_P(NB_ERR_SHAPE, "nb_bce_loss", nb_bce_loss(v, m, NULL, NB_REDUCTION_MEAN));
    FAILS_P(NB_ERR_SHAPE, "nb_bce_with_logits_loss",
            nb_bce_with_logits_loss(m, m, nb_ones(NB_SHAPE(4), NB_F32), NULL, NB_REDUCTION_MEAN));
    FAILS_P(NB_ERR_FREED, "nb_bce_with_logits_loss", nb_bce_with_logits_loss(m, m, NULL, gone, NB_REDUCTION_MEAN));
    FAILS_P(NB_ERR_INDEX, "nb_cross_entropy", nb_cross_entropy(m, T_I64(NB_SHAPE(2), 0, 3), NULL));
    FAILS_P(NB_ERR_INDEX, "nb_cross_entropy", nb_cross_entropy(m, T_I64(NB_SHAPE(2), -1, 0), NULL));
    FAILS_P(NB_ERR_DTYPE, "nb_cross_entropy", nb_cross_entropy(m, nb_zeros(NB_SHAPE(2), NB_F32), NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_cross_entropy", nb_cross_entropy(m, nb_zeros(NB_SHAPE(3), NB_I64), NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_cross_entropy", nb_cross_entropy(nb_scalar(1, NB_F32), labels, NULL));
    nb_cross_entropy_options o = nb_cross_entropy_defaults();
    o.label_smoothing = 1.5;
    FAILS_P(NB_ERR_ARG, "nb_cross_entropy", nb_cross_entropy(m, labels, &o));
    o = nb_cross_entropy_defaults();
    o.weight = v;
    FAILS_P(NB_ERR_SHAPE, "nb_nll_loss", nb_nll_loss(nb_ones(NB_SHAPE(2, 4), NB_F32), labels, &o));
    o.weight = gone;
    FAILS_P(NB_ERR_FREED, "nb_nll_loss", nb_nll_loss(m, labels, &o));
    o = nb_cross_entropy_defaults();
    o.reduction = (nb_reduction)-1;
    FAILS_P(NB_ERR_ARG, "nb_cross_entropy", nb_cross_entropy(m, labels, &o));
    WORKS_P(nb_cross_entropy(nb_zeros(NB_SHAPE(0, 3), NB_F32), nb_zeros(NB_SHAPE(0), NB_I64), NULL));
    WORKS_P(nb_mse_loss(nb_zeros(NB_SHAPE(0), NB_F32), nb_zeros(NB_SHAPE(0), NB_F32), NB_REDUCTION_MEAN));
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

START_TEST(checkpoint_arguments)
{
    nb_scope_begin();
    nb_metadata meta = {0};
    FAILS_S(NB_ERR_NULL, "nb_metadata_set", nb_metadata_set(NULL, "k", "v"));
    FAILS_S(NB_OK, "nb_metadata_set", nb_metadata_set(&meta, NULL, "v"));
    FAILS_S(NB_OK, "nb_metadata_set", nb_metadata_set(&meta, "k", NULL));
    FAILS_S(NB_ERR_ARG, "nb_metadata_set", nb_metadata_set(&meta, "", "v"));
    FAILS_S(NB_ERR_ARG, "nb_metadata_set", nb_metadata_set(&meta, "k", "\xff\xfe"));
    for (int i = 0; i < NB_METADATA_MAX_ENTRIES; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        nb_metadata_set(&meta, key, "v");
    }
    FAILS_S(NB_ERR_ARG, "nb_metadata_set", nb_metadata_set(&meta, "one-too-many", "v"));
    SURVIVES(nb_metadata_get(NULL, "k"));
    SURVIVES(nb_metadata_get(&meta, NULL));
    nb_metadata corrupt = {.count = 1000};
    SURVIVES(nb_metadata_get(&corrupt, "k"));
    nb_clear_error();

    nb_param_list *list = nb_param_list_new();
    nb_param_list_add(list, "w", nb_ones(NB_SHAPE(2), NB_F32), false);
    FAILS_S(NB_ERR_NULL, "nb_save_safetensors", nb_save_safetensors(NULL, list, NULL));
    FAILS_S(NB_ERR_NULL, "nb_save_safetensors", nb_save_safetensors("x.safetensors", NULL, NULL));
    FAILS_S(NB_ERR_IO, "nb_save_safetensors", nb_save_safetensors("/nonexistent-dir/x.safetensors", list, NULL));
    FAILS_S(NB_ERR_NULL, "nb_load_safetensors", nb_load_safetensors(NULL, list, NB_LOAD_STRICT, NULL, NULL));
    FAILS_S(NB_ERR_NULL, "nb_load_safetensors", nb_load_safetensors("x", NULL, NB_LOAD_STRICT, NULL, NULL));
    FAILS_S(NB_ERR_IO, "nb_load_safetensors",
            nb_load_safetensors("/nonexistent-dir/x", list, NB_LOAD_STRICT, NULL, NULL));
    FAILS_S(NB_ERR_IO, "nb_load_safetensors", nb_load_safetensors("/", list, NB_LOAD_STRICT, NULL, NULL));
    FAILS_S(NB_OK, "nb_load_safetensors", nb_load_safetensors("/dev/null", list, (nb_load_mode)5, NULL, NULL));
    FAILS_P(NB_ERR_NULL, "nb_read_safetensors", nb_read_safetensors(NULL, NULL));
    FAILS_P(NB_ERR_IO, "nb_read_safetensors", nb_read_safetensors("/nonexistent-dir/x", NULL));
    /* A list holding a freed tensor cannot be saved. */
    nb_tensor *doomed = nb_ones(NB_SHAPE(2), NB_F32);
    nb_param_list_add(list, "doomed", doomed, false);
    nb_free(doomed);
    FAILS_S(NB_ERR_FREED, "nb_save_safetensors", nb_save_safetensors("/tmp/never-written.safetensors", list, NULL));
    nb_param_list_free(list);
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * optim
 * ---------------------------------------------------------------------------------------------- */
START_TEST(optimizers_and_schedules)
{
    nb_scope_begin();
    nb_tensor *w = nb_ones(NB_SHAPE(2), NB_F32);
    nb_set_requires_grad(w, true);
    nb_param_list *list = nb_param_list_new();
    nb_param_list_add(list, "w", w, false);

    nb_sgd_options sgd = nb_sgd_defaults();
    FAILS_P(NB_ERR_NULL, "nb_sgd_new", nb_sgd_new(NULL, sgd));
    sgd.lr = -1;
    FAILS_P(NB_ERR_ARG, "nb_sgd_new", nb_sgd_new(list, sgd));
    sgd.lr = NAN;
    FAILS_P(NB_ERR_ARG, "nb_sgd_new", nb_sgd_new(list, sgd));
    sgd = nb_sgd_defaults();
    sgd.nesterov = true;
    FAILS_P(NB_ERR_ARG, "nb_sgd_new", nb_sgd_new(list, sgd));
    nb_adam_options adam = nb_adam_defaults();
    adam.beta1 = 1;
    FAILS_P(NB_ERR_ARG, "nb_adam_new", nb_adam_new(list, adam));
    adam = nb_adamw_defaults();
    adam.eps = -1;
    FAILS_P(NB_ERR_ARG, "nb_adamw_new", nb_adamw_new(list, adam));
    nb_rmsprop_options rms = nb_rmsprop_defaults();
    rms.alpha = -0.5;
    FAILS_P(NB_ERR_ARG, "nb_rmsprop_new", nb_rmsprop_new(list, rms));
    nb_adagrad_options ada = nb_adagrad_defaults();
    ada.lr_decay = -1;
    FAILS_P(NB_ERR_ARG, "nb_adagrad_new", nb_adagrad_new(NULL, ada));

    FAILS_S(NB_ERR_NULL, "nb_optimizer_step", nb_optimizer_step(NULL));
    SURVIVES(nb_optimizer_zero_grad(NULL));
    FAILS_NAN(NB_ERR_NULL, "nb_optimizer_get_lr", nb_optimizer_get_lr(NULL));
    SURVIVES(nb_optimizer_set_lr(NULL, 0.1));
    FAILS_NEG(NB_ERR_NULL, "nb_optimizer_steps", nb_optimizer_steps(NULL));
    FAILS_S(NB_ERR_NULL, "nb_optimizer_state", nb_optimizer_state(NULL, "", list, NULL));
    FAILS_S(NB_ERR_NULL, "nb_optimizer_restore", nb_optimizer_restore(NULL, &(nb_metadata){0}, ""));
    SURVIVES(nb_optimizer_free(NULL));

    nb_optimizer *opt = nb_adam_new(list, nb_adam_defaults());
    nb_clear_error();
    nb_optimizer_set_lr(opt, -1);
    if (nb_last_status() == NB_OK && nb_optimizer_get_lr(opt) < 0)
        problem(__LINE__, "nb_optimizer_set_lr accepted a negative lr silently");
    nb_optimizer_set_lr(opt, 1e-3);
    FAILS_S(NB_ERR_NULL, "nb_optimizer_state", nb_optimizer_state(opt, "", NULL, NULL));
    FAILS_S(NB_ERR_FORMAT, "nb_optimizer_restore", nb_optimizer_restore(opt, &(nb_metadata){0}, ""));
    FAILS_S(NB_ERR_NULL, "nb_optimizer_restore", nb_optimizer_restore(opt, NULL, ""));
    nb_metadata sgd_meta = {0};
    nb_optimizer *other_opt = nb_sgd_new(list, nb_sgd_defaults());
    nb_param_list *tmp = nb_param_list_new();
    nb_optimizer_state(other_opt, "o", tmp, &sgd_meta);
    FAILS_S(NB_ERR_FORMAT, "nb_optimizer_restore", nb_optimizer_restore(opt, &sgd_meta, "o"));
    nb_param_list_free(tmp);
    nb_optimizer_free(other_opt);

    /* schedules */
    FAILS_P(NB_ERR_NULL, "nb_step_lr_new", nb_step_lr_new(NULL, 1, 0.5));
    FAILS_P(NB_ERR_ARG, "nb_step_lr_new", nb_step_lr_new(opt, 0, 0.5));
    FAILS_P(NB_ERR_ARG, "nb_multistep_lr_new", nb_multistep_lr_new(opt, 2, (const int64_t[]){5, 3}, 0.5));
    FAILS_P(NB_OK, "nb_multistep_lr_new", nb_multistep_lr_new(opt, -1, NULL, 0.5));
    FAILS_P(NB_OK, "nb_multistep_lr_new", nb_multistep_lr_new(opt, 2, NULL, 0.5));
    FAILS_P(NB_ERR_ARG, "nb_exponential_lr_new", nb_exponential_lr_new(opt, NAN));
    FAILS_P(NB_ERR_ARG, "nb_cosine_annealing_lr_new", nb_cosine_annealing_lr_new(opt, 0, 0));
    FAILS_P(NB_ERR_ARG, "nb_linear_warmup_new", nb_linear_warmup_new(opt, -1, 0.5));
    FAILS_P(NB_ERR_ARG, "nb_linear_warmup_new", nb_linear_warmup_new(opt, 10, 2));
    nb_plateau_options po = nb_plateau_defaults();
    po.factor = 1.5;
    FAILS_P(NB_ERR_ARG, "nb_reduce_on_plateau_new", nb_reduce_on_plateau_new(opt, po));
    FAILS_S(NB_ERR_NULL, "nb_scheduler_step", nb_scheduler_step(NULL));
    FAILS_S(NB_ERR_NULL, "nb_scheduler_step_metric", nb_scheduler_step_metric(NULL, 1));
    FAILS_NEG(NB_ERR_NULL, "nb_scheduler_epoch", nb_scheduler_epoch(NULL));
    FAILS_S(NB_ERR_NULL, "nb_scheduler_state", nb_scheduler_state(NULL, "s", &(nb_metadata){0}));
    FAILS_S(NB_ERR_NULL, "nb_scheduler_restore", nb_scheduler_restore(NULL, &(nb_metadata){0}, "s"));
    SURVIVES(nb_scheduler_free(NULL));
    nb_scheduler *plateau = nb_reduce_on_plateau_new(opt, nb_plateau_defaults());
    FAILS_S(NB_ERR_STATE, "nb_scheduler_step", nb_scheduler_step(plateau));
    FAILS_S(NB_ERR_NULL, "nb_scheduler_state", nb_scheduler_state(plateau, "s", NULL));
    FAILS_S(NB_ERR_FORMAT, "nb_scheduler_restore", nb_scheduler_restore(plateau, &(nb_metadata){0}, "s"));
    nb_scheduler *step = nb_step_lr_new(opt, 2, 0.5);
    nb_metadata sm = {0};
    nb_scheduler_state(step, "s", &sm);
    FAILS_S(NB_ERR_FORMAT, "nb_scheduler_restore", nb_scheduler_restore(plateau, &sm, "s"));
    nb_scheduler_free(step);
    nb_scheduler_free(plateau);

    /* clipping */
    FAILS_NAN(NB_ERR_NULL, "nb_clip_grad_norm", nb_clip_grad_norm(NULL, 1, 2));
    FAILS_NAN(NB_ERR_ARG, "nb_clip_grad_norm", nb_clip_grad_norm(list, -1, 2));
    FAILS_NAN(NB_ERR_ARG, "nb_clip_grad_norm", nb_clip_grad_norm(list, 1, 0));
    FAILS_NAN(NB_ERR_ARG, "nb_clip_grad_norm", nb_clip_grad_norm(list, 1, NAN));
    FAILS_S(NB_ERR_NULL, "nb_clip_grad_value", nb_clip_grad_value(NULL, 1));
    FAILS_S(NB_ERR_ARG, "nb_clip_grad_value", nb_clip_grad_value(list, -1));

    /* early stopping */
    FAILS_P(NB_ERR_ARG, "nb_early_stopping_new", nb_early_stopping_new(-1, 0, false, false));
    FAILS_P(NB_ERR_ARG, "nb_early_stopping_new", nb_early_stopping_new(3, NAN, false, false));
    SURVIVES(nb_early_stopping_update(NULL, 1, NULL));
    nb_early_stopping *es = nb_early_stopping_new(2, 0, false, true);
    FAILS_FALSE(NB_ERR_NULL, "nb_early_stopping_update", nb_early_stopping_update(es, 1, NULL));
    FAILS_S(NB_ERR_STATE, "nb_early_stopping_restore", nb_early_stopping_restore(es, list));
    FAILS_S(NB_ERR_NULL, "nb_early_stopping_restore", nb_early_stopping_restore(NULL, list));
    FAILS_NAN(NB_ERR_NULL, "nb_early_stopping_best", nb_early_stopping_best(NULL));
    FAILS_NEG(NB_ERR_NULL, "nb_early_stopping_best_epoch", nb_early_stopping_best_epoch(NULL));
    SURVIVES(nb_early_stopping_free(NULL));
    nb_early_stopping_free(es);

    /* The list's parameter freed under the optimizer. */
    nb_backward(nb_sum(nb_square(w), 0, NULL, false));
    nb_free(w);
    FAILS_S(NB_ERR_FREED, "nb_optimizer_step", nb_optimizer_step(opt));
    SURVIVES(nb_optimizer_zero_grad(opt));
    FAILS_NAN(NB_ERR_FREED, "nb_clip_grad_norm", nb_clip_grad_norm(list, 1, 2));
    nb_optimizer_free(opt);
    nb_param_list_free(list);
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * data
 * ---------------------------------------------------------------------------------------------- */
START_TEST(data_functions)
{
    nb_scope_begin();
    nb_tensor *x = nb_ones(NB_SHAPE(4, 2), NB_F32), *y = T_I64(NB_SHAPE(4), 0, 1, 1, 0);
    nb_tensor *gone = freed_handle();
    FAILS_P(NB_ERR_NULL, "nb_read_idx", nb_read_idx(NULL));
    FAILS_P(NB_ERR_IO, "nb_read_idx", nb_read_idx("/nonexistent-dir/x.idx"));
    FAILS_P(NB_ERR_IO, "nb_read_idx", nb_read_idx("/"));
    size_t n;
    FAILS_P(NB_ERR_NULL, "nb_gunzip_file", nb_gunzip_file(NULL, &n));
    FAILS_P(NB_ERR_NULL, "nb_gunzip_file", nb_gunzip_file("/dev/null", NULL));
    FAILS_P(NB_ERR_FORMAT, "nb_gunzip_file", nb_gunzip_file("/dev/null", &n));
    FAILS_P(NB_ERR_NULL, "nb_csv_read", nb_csv_read(NULL));
    FAILS_P(NB_ERR_IO, "nb_csv_read", nb_csv_read("/nonexistent-dir/x.csv"));
    FAILS_P(NB_ERR_FORMAT, "nb_csv_read", nb_csv_read("/dev/null"));
    SURVIVES(nb_csv_free(NULL));
    if (nb_csv_column(NULL, "a") != -1) problem(__LINE__, "nb_csv_column(NULL) is not -1");
    SURVIVES(nb_data_dir(NULL));

    nb_standardizer s = {0};
    FAILS_S(NB_ERR_NULL, "nb_standardizer_fit", nb_standardizer_fit(NULL, x));
    FAILS_S(NB_ERR_NULL, "nb_standardizer_fit", nb_standardizer_fit(&s, NULL));
    FAILS_S(NB_ERR_FREED, "nb_standardizer_fit", nb_standardizer_fit(&s, gone));
    FAILS_S(NB_ERR_SHAPE, "nb_standardizer_fit", nb_standardizer_fit(&s, nb_ones(NB_SHAPE(3), NB_F32)));
    FAILS_S(NB_OK, "nb_standardizer_fit", nb_standardizer_fit(&s, nb_zeros(NB_SHAPE(0, 2), NB_F32)));
    FAILS_P(NB_OK, "nb_standardizer_apply", nb_standardizer_apply(&s, x));
    FAILS_P(NB_ERR_NULL, "nb_standardizer_apply", nb_standardizer_apply(NULL, x));
    nb_standardizer_fit(&s, x);
    FAILS_P(NB_ERR_SHAPE, "nb_standardizer_apply", nb_standardizer_apply(&s, nb_ones(NB_SHAPE(4, 3), NB_F32)));
    nb_standardizer_free(&s);
    SURVIVES(nb_standardizer_free(NULL));
    nb_minmax_scaler mm = {0};
    FAILS_S(NB_ERR_NULL, "nb_minmax_fit", nb_minmax_fit(NULL, x));
    FAILS_S(NB_ERR_SHAPE, "nb_minmax_fit", nb_minmax_fit(&mm, nb_ones(NB_SHAPE(2, 2, 2), NB_F32)));
    FAILS_P(NB_OK, "nb_minmax_apply", nb_minmax_apply(&mm, x));
    SURVIVES(nb_minmax_free(NULL));
    FAILS_P(NB_ERR_INDEX, "nb_one_hot", nb_one_hot(y, 1));
    FAILS_P(NB_OK, "nb_one_hot", nb_one_hot(y, -3));
    FAILS_P(NB_ERR_DTYPE, "nb_one_hot", nb_one_hot(x, 3));
    FAILS_P(NB_ERR_INDEX, "nb_one_hot", nb_one_hot(T_I64(NB_SHAPE(1), -1), 3));
    WORKS_P(nb_one_hot(nb_zeros(NB_SHAPE(0), NB_I64), 3));

    nb_tensor *tr, *te;
    FAILS_S(NB_ERR_ARG, "nb_train_test_split", nb_train_test_split(-1, 0.5, 1, &tr, &te));
    FAILS_S(NB_ERR_ARG, "nb_train_test_split", nb_train_test_split(10, 1.5, 1, &tr, &te));
    FAILS_S(NB_ERR_ARG, "nb_train_test_split", nb_train_test_split(10, NAN, 1, &tr, &te));
    FAILS_S(NB_ERR_NULL, "nb_train_test_split", nb_train_test_split(10, 0.5, 1, NULL, &te));
    FAILS_S(NB_ERR_ARG, "nb_kfold_split", nb_kfold_split(10, 1, 0, 1, &tr, &te));
    FAILS_S(NB_ERR_ARG, "nb_kfold_split", nb_kfold_split(3, 4, 0, 1, &tr, &te));
    FAILS_S(NB_ERR_INDEX, "nb_kfold_split", nb_kfold_split(10, 3, 3, 1, &tr, &te));
    FAILS_S(NB_ERR_INDEX, "nb_kfold_split", nb_kfold_split(10, 3, -1, 1, &tr, &te));
    FAILS_S(NB_ERR_NULL, "nb_kfold_split", nb_kfold_split(10, 3, 0, 1, &tr, NULL));

    FAILS_P(NB_ERR_NULL, "nb_batch_iter_new", nb_batch_iter_new(NULL, y, 2, false, false, 1));
    FAILS_P(NB_ERR_FREED, "nb_batch_iter_new", nb_batch_iter_new(gone, NULL, 2, false, false, 1));
    FAILS_P(NB_ERR_ARG, "nb_batch_iter_new", nb_batch_iter_new(x, y, 0, false, false, 1));
    FAILS_P(NB_ERR_SHAPE, "nb_batch_iter_new", nb_batch_iter_new(x, nb_zeros(NB_SHAPE(3), NB_I64), 2, true, false, 1));
    FAILS_P(NB_ERR_SHAPE, "nb_batch_iter_new", nb_batch_iter_new(nb_scalar(1, NB_F32), NULL, 2, true, false, 1));
    FAILS_FALSE(NB_ERR_NULL, "nb_batch_iter_next", nb_batch_iter_next(NULL, &tr, &te));
    FAILS_NEG(NB_ERR_NULL, "nb_batch_iter_batches_per_epoch", nb_batch_iter_batches_per_epoch(NULL));
    FAILS_NEG(NB_ERR_NULL, "nb_batch_iter_epoch", nb_batch_iter_epoch(NULL));
    SURVIVES(nb_batch_iter_free(NULL));
    nb_tensor *xs = nb_ones(NB_SHAPE(4, 2), NB_F32);
    nb_batch_iter *it = nb_batch_iter_new(xs, NULL, 3, true, false, 1);
    FAILS_FALSE(NB_ERR_NULL, "nb_batch_iter_next", nb_batch_iter_next(it, NULL, NULL));
    nb_free(xs);
    FAILS_FALSE(NB_ERR_FREED, "nb_batch_iter_next", nb_batch_iter_next(it, &tr, NULL));
    nb_batch_iter_free(it);
    /* a batch larger than any data set: one batch per epoch, counted without overflow */
    nb_batch_iter *huge = nb_batch_iter_new(nb_ones(NB_SHAPE(10, 2), NB_F32), NULL, INT64_MAX, true, false, 1);
    if (!huge || nb_batch_iter_batches_per_epoch(huge) != 1)
        problem(__LINE__, "batch size INT64_MAX over 10 rows: %lld batches per epoch, expected 1",
                huge ? (long long)nb_batch_iter_batches_per_epoch(huge) : -1LL);
    nb_batch_iter_free(huge);
    nb_batch_iter *empty_it = nb_batch_iter_new(nb_zeros(NB_SHAPE(0, 2), NB_F32), NULL, 3, true, true, 1);
    if (empty_it) {
        nb_clear_error();
        if (nb_batch_iter_next(empty_it, &tr, NULL)) problem(__LINE__, "an empty data set gave a batch");
        if (nb_last_status() != NB_OK) problem(__LINE__, "an empty data set: %s", nb_last_error());
        nb_batch_iter_free(empty_it);
    }

    FAILS_NAN(NB_ERR_SHAPE, "nb_accuracy", nb_accuracy(y, nb_zeros(NB_SHAPE(3), NB_I64)));
    FAILS_NAN(NB_OK, "nb_accuracy", nb_accuracy(nb_zeros(NB_SHAPE(0), NB_I64), nb_zeros(NB_SHAPE(0), NB_I64)));
    FAILS_NAN(NB_ERR_NULL, "nb_accuracy", nb_accuracy(NULL, y));
    FAILS_NAN(NB_ERR_FREED, "nb_accuracy", nb_accuracy(y, gone));
    FAILS_P(NB_ERR_ARG, "nb_confusion_new", nb_confusion_new(0));
    FAILS_P(NB_ERR_ARG, "nb_confusion_new", nb_confusion_new(-5));
    FAILS_P(NB_OK, "nb_confusion_new", nb_confusion_new(INT64_MAX / 4));
    nb_confusion *c = nb_confusion_new(2);
    FAILS_S(NB_ERR_INDEX, "nb_confusion_add", nb_confusion_add(c, T_I64(NB_SHAPE(1), 2), T_I64(NB_SHAPE(1), 0)));
    FAILS_S(NB_ERR_INDEX, "nb_confusion_add", nb_confusion_add(c, T_I64(NB_SHAPE(1), 0), T_I64(NB_SHAPE(1), -1)));
    FAILS_S(NB_ERR_SHAPE, "nb_confusion_add", nb_confusion_add(c, y, T_I64(NB_SHAPE(1), 0)));
    FAILS_S(NB_ERR_NULL, "nb_confusion_add", nb_confusion_add(NULL, y, y));
    FAILS_NAN(NB_ERR_VALUE, "nb_confusion_accuracy", nb_confusion_accuracy(c));
    FAILS_NAN(NB_ERR_NULL, "nb_confusion_accuracy", nb_confusion_accuracy(NULL));
    FAILS_NAN(NB_ERR_INDEX, "nb_confusion_precision", nb_confusion_precision(c, 2));
    FAILS_NAN(NB_ERR_INDEX, "nb_confusion_recall", nb_confusion_recall(c, -1));
    FAILS_NAN(NB_ERR_INDEX, "nb_confusion_f1", nb_confusion_f1(c, 5));
    FAILS_NAN(NB_ERR_NULL, "nb_confusion_macro_precision", nb_confusion_macro_precision(NULL));
    FAILS_NAN(NB_ERR_NULL, "nb_confusion_macro_recall", nb_confusion_macro_recall(NULL));
    FAILS_NAN(NB_ERR_NULL, "nb_confusion_macro_f1", nb_confusion_macro_f1(NULL));
    FAILS_S(NB_ERR_NULL, "nb_confusion_print", nb_confusion_print(c, NULL, NULL));
    FAILS_S(NB_ERR_NULL, "nb_confusion_print", nb_confusion_print(NULL, stderr, NULL));
    SURVIVES(nb_confusion_free(NULL));
    nb_confusion_free(c);

    FAILS_P(NB_ERR_ARG, "nb_progress_new", nb_progress_new(NULL, -1, 10, 1));
    FAILS_P(NB_ERR_ARG, "nb_progress_new", nb_progress_new(NULL, 1, -10, 1));
    SURVIVES(nb_progress_update(NULL, 0, 0, 1, 1, 1));
    SURVIVES(nb_progress_end_epoch(NULL, NULL));
    SURVIVES(nb_progress_free(NULL));
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Convolution, pooling, batch norm, attention, threads (added during the same session as this suite)
 * ---------------------------------------------------------------------------------------------- */
START_TEST(conv_pool_attention_threads)
{
    nb_scope_begin();
    nb_tensor *x = nb_ones(NB_SHAPE(1, 2, 5, 5), NB_F32), *w = nb_ones(NB_SHAPE(4, 2, 3, 3), NB_F32);
    nb_tensor *gone = freed_handle();
    const int64_t one[2] = {1, 1}, zero[2] = {0, 0}, neg[2] = {-1, 0}, big[2] = {9, 9};
    FAILS_P(NB_ERR_NULL, "nb_conv2d", nb_conv2d(NULL, w, NULL, NULL, NULL, NULL, 1));
    FAILS_P(NB_ERR_NULL, "nb_conv2d", nb_conv2d(x, NULL, NULL, NULL, NULL, NULL, 1));
    FAILS_P(NB_ERR_FREED, "nb_conv2d", nb_conv2d(x, gone, NULL, NULL, NULL, NULL, 1));
    FAILS_P(NB_ERR_FREED, "nb_conv2d", nb_conv2d(x, w, gone, NULL, NULL, NULL, 1));
    FAILS_P(NB_ERR_SHAPE, "nb_conv2d", nb_conv2d(nb_ones(NB_SHAPE(2, 5, 5), NB_F32), w, NULL, NULL, NULL, NULL, 1));
    FAILS_P(NB_ERR_SHAPE, "nb_conv2d", nb_conv2d(nb_ones(NB_SHAPE(1, 3, 5, 5), NB_F32), w, NULL, NULL, NULL, NULL, 1));
    FAILS_P(NB_ERR_SHAPE, "nb_conv2d", nb_conv2d(x, w, nb_ones(NB_SHAPE(3), NB_F32), NULL, NULL, NULL, 1));
    FAILS_P(NB_ERR_SHAPE, "nb_conv2d", nb_conv2d(nb_ones(NB_SHAPE(1, 2, 2, 2), NB_F32), w, NULL, NULL, NULL, NULL, 1));
    FAILS_P(NB_ERR_ARG, "nb_conv2d", nb_conv2d(x, w, NULL, zero, NULL, NULL, 1));
    FAILS_P(NB_ERR_ARG, "nb_conv2d", nb_conv2d(x, w, NULL, NULL, neg, NULL, 1));
    FAILS_P(NB_ERR_ARG, "nb_conv2d", nb_conv2d(x, w, NULL, NULL, NULL, zero, 1));
    FAILS_P(NB_ERR_ARG, "nb_conv2d", nb_conv2d(x, w, NULL, NULL, NULL, NULL, 0));
    FAILS_P(NB_OK, "nb_conv2d", nb_conv2d(x, w, NULL, NULL, NULL, NULL, 3));
    FAILS_P(NB_ERR_DTYPE, "nb_conv2d", nb_conv2d(nb_ones(NB_SHAPE(1, 2, 5, 5), NB_I64), w, NULL, NULL, NULL, NULL, 1));
    FAILS_P(NB_ERR_DTYPE, "nb_conv2d", nb_conv2d(nb_ones(NB_SHAPE(1, 2, 5, 5), NB_F64), w, NULL, NULL, NULL, NULL, 1));
    WORKS_P(nb_conv2d(x, w, NULL, (const int64_t[]){INT64_MAX, 1}, big, NULL, 1));
    /* Huge strides, paddings and dilations: the size arithmetic would overflow. */
    FAILS_P(NB_ERR_ARG, "nb_conv2d", nb_conv2d(x, w, NULL, NULL, (const int64_t[]){INT64_MAX / 2, 0}, NULL, 1));
    FAILS_P(NB_ERR_SHAPE, "nb_conv2d", nb_conv2d(x, w, NULL, NULL, NULL, (const int64_t[]){INT64_MAX / 2, 1}, 1));
    FAILS_P(NB_ERR_ARG, "nb_conv_transpose2d", nb_conv_transpose2d(x, nb_ones(NB_SHAPE(2, 3, 3, 3), NB_F32), NULL,
                                                                   (const int64_t[]){INT64_MAX / 2, 1}, NULL, NULL,
                                                                   NULL, 1));
    FAILS_P(NB_OK, "nb_max_pool2d", nb_max_pool2d(x, (const int64_t[]){INT64_MAX, 2}, NULL, NULL, NULL));
    FAILS_P(NB_ERR_ARG, "nb_adaptive_avg_pool2d", nb_adaptive_avg_pool2d(x, INT64_MAX / 2, INT64_MAX / 2));
    /* padding at most half the kernel, but kernel and padding so large the padded size overflows */
    FAILS_P(NB_ERR_ARG, "nb_max_pool2d", nb_max_pool2d(x, (const int64_t[]){INT64_MAX, 1}, NULL,
                                                       (const int64_t[]){INT64_MAX / 2, 0}, NULL));
    FAILS_P(NB_ERR_ARG, "nb_avg_pool2d", nb_avg_pool2d(x, (const int64_t[]){INT64_MAX, 1}, NULL,
                                                       (const int64_t[]){INT64_MAX / 2, 0}, true));
    /* an empty H: every window's average would be 0 / 0, whichever path (equal windows or not) it would take */
    FAILS_P(NB_ERR_SHAPE, "nb_adaptive_avg_pool2d", nb_adaptive_avg_pool2d(nb_ones(NB_SHAPE(1, 1, 0, 4), NB_F32), 2, 3));
    FAILS_P(NB_ERR_SHAPE, "nb_adaptive_avg_pool2d", nb_adaptive_avg_pool2d(nb_ones(NB_SHAPE(1, 1, 0, 4), NB_F32), 2, 2));
    WORKS_P(nb_conv2d(nb_zeros(NB_SHAPE(0, 2, 5, 5), NB_F32), w, NULL, NULL, NULL, NULL, 1));
    WORKS_P(nb_conv2d(x, nb_zeros(NB_SHAPE(0, 2, 3, 3), NB_F32), NULL, NULL, NULL, NULL, 1));
    nb_tensor *w1 = nb_ones(NB_SHAPE(4, 2, 3), NB_F32), *x1 = nb_ones(NB_SHAPE(1, 2, 6), NB_F32);
    FAILS_P(NB_ERR_NULL, "nb_conv1d", nb_conv1d(NULL, w1, NULL, 1, 0, 1, 1));
    FAILS_P(NB_ERR_SHAPE, "nb_conv1d", nb_conv1d(x, w1, NULL, 1, 0, 1, 1));
    FAILS_P(NB_ERR_ARG, "nb_conv1d", nb_conv1d(x1, w1, NULL, 0, 0, 1, 1));
    FAILS_P(NB_ERR_ARG, "nb_conv1d", nb_conv1d(x1, w1, NULL, 1, -2, 1, 1));
    FAILS_P(NB_ERR_ARG, "nb_conv1d", nb_conv1d(x1, w1, NULL, 1, 0, 1, -1));
    FAILS_P(NB_ERR_SHAPE, "nb_conv1d", nb_conv1d(x1, w1, NULL, 1, 0, 4, 1));
    nb_tensor *wt = nb_ones(NB_SHAPE(2, 3, 3, 3), NB_F32);
    FAILS_P(NB_ERR_NULL, "nb_conv_transpose2d", nb_conv_transpose2d(NULL, wt, NULL, NULL, NULL, NULL, NULL, 1));
    FAILS_P(NB_ERR_SHAPE, "nb_conv_transpose2d", nb_conv_transpose2d(x, w, NULL, NULL, NULL, NULL, NULL, 1));
    FAILS_P(NB_ERR_ARG, "nb_conv_transpose2d", nb_conv_transpose2d(x, wt, NULL, one, NULL, one, NULL, 1));
    FAILS_P(NB_ERR_ARG, "nb_conv_transpose2d", nb_conv_transpose2d(x, wt, NULL, zero, NULL, NULL, NULL, 1));
    FAILS_P(NB_OK, "nb_conv_transpose2d", nb_conv_transpose2d(x, wt, NULL, NULL, big, NULL, NULL, 1));

    const int64_t k2[2] = {2, 2};
    nb_tensor *ind;
    FAILS_P(NB_ERR_NULL, "nb_max_pool2d", nb_max_pool2d(NULL, k2, NULL, NULL, NULL));
    FAILS_P(NB_ERR_NULL, "nb_max_pool2d", nb_max_pool2d(x, NULL, NULL, NULL, NULL));
    FAILS_P(NB_ERR_ARG, "nb_max_pool2d", nb_max_pool2d(x, zero, NULL, NULL, NULL));
    FAILS_P(NB_ERR_ARG, "nb_max_pool2d", nb_max_pool2d(x, k2, zero, NULL, NULL));
    FAILS_P(NB_ERR_ARG, "nb_max_pool2d", nb_max_pool2d(x, k2, NULL, (const int64_t[]){2, 0}, &ind));
    FAILS_P(NB_ERR_SHAPE, "nb_max_pool2d", nb_max_pool2d(nb_ones(NB_SHAPE(5, 5), NB_F32), k2, NULL, NULL, NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_max_pool2d", nb_max_pool2d(x, big, NULL, NULL, NULL));
    FAILS_P(NB_ERR_DTYPE, "nb_max_pool2d", nb_max_pool2d(nb_ones(NB_SHAPE(1, 1, 4, 4), NB_BOOL), k2, NULL, NULL, NULL));
    FAILS_P(NB_ERR_ARG, "nb_avg_pool2d", nb_avg_pool2d(x, (const int64_t[]){-1, 2}, NULL, NULL, true));
    FAILS_P(NB_ERR_FREED, "nb_avg_pool2d", nb_avg_pool2d(gone, k2, NULL, NULL, true));
    FAILS_P(NB_ERR_ARG, "nb_adaptive_avg_pool2d", nb_adaptive_avg_pool2d(x, 0, 2));
    FAILS_P(NB_ERR_SHAPE, "nb_adaptive_avg_pool2d", nb_adaptive_avg_pool2d(nb_ones(NB_SHAPE(3), NB_F32), 1, 1));
    WORKS_P(nb_max_pool2d(nb_zeros(NB_SHAPE(0, 2, 4, 4), NB_F32), k2, NULL, NULL, NULL));

    nb_tensor *rm = nb_zeros(NB_SHAPE(2), NB_F32), *rv = nb_ones(NB_SHAPE(2), NB_F32);
    FAILS_P(NB_ERR_NULL, "nb_batch_norm", nb_batch_norm(NULL, rm, rv, NULL, NULL, true, 0.1, 1e-5));
    FAILS_P(NB_OK, "nb_batch_norm", nb_batch_norm(x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5));
    FAILS_P(NB_ERR_SHAPE, "nb_batch_norm", nb_batch_norm(x, nb_zeros(NB_SHAPE(3), NB_F32), rv, NULL, NULL, true, 0.1, 1e-5));
    nb_tensor *one_for_all = nb_expand(nb_zeros(NB_SHAPE(1), NB_F32), NB_SHAPE(2)); /* running stats in training */
    FAILS_P(NB_ERR_ARG, "nb_batch_norm", nb_batch_norm(x, one_for_all, rv, NULL, NULL, true, 0.1, 1e-5));
    FAILS_P(NB_ERR_SHAPE, "nb_batch_norm", nb_batch_norm(x, rm, rv, nb_ones(NB_SHAPE(5), NB_F32), NULL, true, 0.1, 1e-5));
    FAILS_P(NB_OK, "nb_batch_norm", nb_batch_norm(x, rm, rv, NULL, NULL, true, 1.5, 1e-5));
    FAILS_P(NB_OK, "nb_batch_norm", nb_batch_norm(x, rm, rv, NULL, NULL, true, 0.1, -1));
    FAILS_P(NB_OK, "nb_batch_norm", nb_batch_norm(x, rm, rv, NULL, NULL, true, 0.1, NAN));
    FAILS_P(NB_OK, "nb_batch_norm", nb_batch_norm(nb_ones(NB_SHAPE(1, 2), NB_F32), rm, rv, NULL, NULL, true, 0.1, 1e-5));
    FAILS_P(NB_OK, "nb_batch_norm", nb_batch_norm(nb_ones(NB_SHAPE(4), NB_F32), NULL, NULL, NULL, NULL, true, 0.1, 1e-5));
    FAILS_P(NB_ERR_FREED, "nb_batch_norm", nb_batch_norm(x, rm, gone, NULL, NULL, false, 0.1, 1e-5));
    FAILS_P(NB_OK, "nb_dropout2d", nb_dropout2d(x, 1.5, true, NULL));
    FAILS_P(NB_OK, "nb_dropout2d", nb_dropout2d(x, NAN, true, NULL));
    FAILS_P(NB_ERR_NULL, "nb_dropout2d", nb_dropout2d(NULL, 0.5, true, NULL));
    FAILS_P(NB_OK, "nb_dropout2d", nb_dropout2d(nb_ones(NB_SHAPE(4), NB_F32), 0.5, true, NULL));

    nb_tensor *aw = nb_ones(NB_SHAPE(3, 5), NB_F32);
    FAILS_P(NB_ERR_NULL, "nb_affine", nb_affine(NULL, aw, NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_affine", nb_affine(nb_ones(NB_SHAPE(2, 4), NB_F32), aw, NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_affine", nb_affine(nb_ones(NB_SHAPE(2, 5), NB_F32), aw, nb_ones(NB_SHAPE(5), NB_F32)));
    FAILS_P(NB_ERR_FREED, "nb_affine", nb_affine(nb_ones(NB_SHAPE(2, 5), NB_F32), gone, NULL));
    FAILS_P(NB_ERR_DTYPE, "nb_affine", nb_affine(nb_ones(NB_SHAPE(2, 5), NB_I64), aw, NULL));

    nb_tensor *q = nb_ones(NB_SHAPE(2, 3, 4), NB_F32), *kv = nb_ones(NB_SHAPE(2, 5, 4), NB_F32);
    nb_tensor *sdpa = NULL;
    FAILS_P(NB_ERR_NULL, "nb_scaled_dot_product_attention", nb_scaled_dot_product_attention(NULL, kv, kv, NULL, false, 0, NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_scaled_dot_product_attention",
            nb_scaled_dot_product_attention(q, nb_ones(NB_SHAPE(2, 5, 3), NB_F32), kv, NULL, false, 0, NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_scaled_dot_product_attention",
            nb_scaled_dot_product_attention(q, kv, nb_ones(NB_SHAPE(2, 6, 4), NB_F32), NULL, false, 0, NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_scaled_dot_product_attention",
            nb_scaled_dot_product_attention(nb_ones(NB_SHAPE(4), NB_F32), kv, kv, NULL, false, 0, NULL));
    FAILS_P(NB_ERR_ARG, "nb_scaled_dot_product_attention", nb_scaled_dot_product_attention(q, kv, kv, NULL, false, 1, NULL));
    FAILS_P(NB_ERR_ARG, "nb_scaled_dot_product_attention",
            nb_scaled_dot_product_attention(q, kv, kv, nb_ones(NB_SHAPE(3, 5), NB_BOOL), true, 0, NULL));
    FAILS_P(NB_ERR_SHAPE, "nb_scaled_dot_product_attention",
            nb_scaled_dot_product_attention(q, kv, kv, nb_ones(NB_SHAPE(4, 4), NB_BOOL), false, 0, NULL));
    FAILS_P(NB_ERR_DTYPE, "nb_scaled_dot_product_attention",
            nb_scaled_dot_product_attention(q, kv, kv, nb_ones(NB_SHAPE(3, 5), NB_I64), false, 0, NULL));
    (void)sdpa;

    /* module constructors and forwards */
    FAILS_P(NB_OK, "nb_conv2d_new", nb_conv2d_new(0, 4, 3, 1, 0, 1, 1, true, NULL));
    FAILS_P(NB_OK, "nb_conv2d_new", nb_conv2d_new(2, 4, 0, 1, 0, 1, 1, true, NULL));
    FAILS_P(NB_OK, "nb_conv2d_new", nb_conv2d_new(2, 4, 3, 1, 0, 1, 3, true, NULL));
    FAILS_P(NB_OK, "nb_conv2d_new_ex", nb_conv2d_new_ex(2, 4, NULL, NULL));
    FAILS_P(NB_OK, "nb_conv1d_new", nb_conv1d_new(2, -4, 3, 1, 0, 1, 1, true, NULL));
    FAILS_P(NB_OK, "nb_max_pool2d_new", nb_max_pool2d_new(0, 0, 0));
    FAILS_P(NB_OK, "nb_avg_pool2d_new", nb_avg_pool2d_new(2, -1, 0, true));
    FAILS_P(NB_OK, "nb_adaptive_avg_pool2d_new", nb_adaptive_avg_pool2d_new(0, 1));
    FAILS_P(NB_OK, "nb_batch_norm2d_new", nb_batch_norm2d_new(-1, 1e-5, 0.1, true));
    FAILS_P(NB_OK, "nb_dropout2d_new", nb_dropout2d_new(2, NULL));
    FAILS_P(NB_OK, "nb_self_attention_new", nb_self_attention_new(10, 3, true, 0, true, NULL));
    FAILS_P(NB_OK, "nb_self_attention_new", nb_self_attention_new(8, 2, true, 1.5, true, NULL));
    /* Names nb_self_attention_new (which the block calls) and says what is wrong. */
    FAILS_P(NB_OK, "embed_dim (0)", nb_transformer_block_new(0, 1, true, 0, NULL));
    nb_module *conv = nb_conv2d_new(2, 4, 3, 1, 0, 1, 1, true, NULL);
    FAILS_P(NB_ERR_SHAPE, "conv", nb_forward(conv, nb_ones(NB_SHAPE(1, 3, 5, 5), NB_F32)));
    FAILS_P(NB_ERR_SHAPE, "conv", nb_forward(conv, nb_ones(NB_SHAPE(2, 5, 5), NB_F32)));
    nb_module_free(conv);
    nb_module *bn2 = nb_batch_norm2d_new(2, 1e-5, 0.1, true);
    FAILS_P(NB_ERR_SHAPE, "norm", nb_forward(bn2, nb_ones(NB_SHAPE(1, 3, 2, 2), NB_F32)));
    nb_module_free(bn2);
    nb_module *attn = nb_self_attention_new(8, 2, true, 0, true, NULL);
    FAILS_P(NB_ERR_SHAPE, "", nb_forward(attn, nb_ones(NB_SHAPE(1, 3, 6), NB_F32)));
    nb_module_free(attn);

    FAILS_S(NB_ERR_ARG, "nb_set_num_threads", nb_set_num_threads(0));
    FAILS_S(NB_ERR_ARG, "nb_set_num_threads", nb_set_num_threads(-3));
    if (nb_num_threads() < 1) problem(__LINE__, "nb_num_threads() = %d", nb_num_threads());

    /* the remaining small functions: no error channel, must not crash */
    SURVIVES(nb_random_uniform(NULL));
    SURVIVES(nb_random_normal(NULL));
    SURVIVES(nb_manual_seed(3));
    SURVIVES(nb_default_generator());
    SURVIVES(nb_memory_stats_get());
    SURVIVES(nb_reset_peak_memory());
    SURVIVES(nb_release_cached_memory());
    FAILS_S(NB_ERR_NULL, "nb_print", nb_print(NULL));
    FAILS_S(NB_ERR_FREED, "nb_print_value_grad", nb_print_value_grad(gone));
    FAILS_S(NB_ERR_NULL, "nb_generator_state", nb_generator_state(NULL, "g", &(nb_metadata){0}));
    FAILS_S(NB_ERR_NULL, "nb_generator_restore", nb_generator_restore(nb_default_generator(), NULL, "g"));
    FAILS_S(NB_ERR_FORMAT, "nb_generator_restore", nb_generator_restore(nb_default_generator(), &(nb_metadata){0}, "g"));
    nb_module *layers[] = {nb_tanh_layer_new(), nb_sigmoid_layer_new(), nb_gelu_layer_new(true),
                           nb_log_softmax_layer_new(-1)};
    for (int i = 0; i < 4; i++) {
        FAILS_P(NB_ERR_NULL, "", nb_forward(layers[i], NULL));
        FAILS_P(NB_ERR_FREED, "", nb_forward(layers[i], gone));
        FAILS_P(NB_ERR_DTYPE, "", nb_forward(layers[i], nb_ones(NB_SHAPE(2), NB_I64)));
        nb_module_free(layers[i]);
    }
    nb_scope_end();
    REPORT_PROBLEMS();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("misuse");
    TCase *tc = tcase_create("misuse");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, op_table, 0, N_OP_CASES);
    tcase_add_test(tc, creation);
    tcase_add_test(tc, inspection_and_access);
    tcase_add_test(tc, scopes_and_grad_mode);
    tcase_add_test(tc, random_numbers);
    tcase_add_test(tc, autograd);
    tcase_add_test(tc, shapes_dims_indices);
    tcase_add_test(tc, printing_and_graph_output);
    tcase_add_test(tc, param_lists_and_modules);
    tcase_add_test(tc, initializers_and_losses);
    tcase_add_test(tc, checkpoint_arguments);
    tcase_add_test(tc, optimizers_and_schedules);
    tcase_add_test(tc, data_functions);
    tcase_add_test(tc, conv_pool_attention_threads);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
