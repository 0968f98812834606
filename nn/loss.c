/* Losses and weight penalties, written with nabla's public ops: their first and second derivatives come from
 * the ops'. torch.nn.functional (1.13) is the reference for formulas, defaults and edge cases. Each loss checks
 * its arguments, then builds its graph inside an internal scope (nbi_nn_begin/end) so that every intermediate
 * dies at once and only the result reaches the caller. */
#include "kernels_index.h"
#include "kernels_reduce.h" /* nbi_sum_exp_shifted_f32 */
#include "nn_internal.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Shared checks
 * ---------------------------------------------------------------------------------------------- */
static bool check_reduction(const char *fn, nb_reduction r)
{
    if (r == NB_REDUCTION_MEAN || r == NB_REDUCTION_SUM || r == NB_REDUCTION_NONE) return true;
    nbi_error(NB_ERR_ARG, "%s: reduction %d is not NB_REDUCTION_MEAN, NB_REDUCTION_SUM or NB_REDUCTION_NONE", fn,
              (int)r);
    return false;
}

static bool check_float(const char *fn, const nbi_tensor *t, const char *what)
{
    if (nbi_is_float(t->dtype)) return true;
    nbi_error(NB_ERR_DTYPE, "%s: %s must be f32 or f64, got %s", fn, what, nb_dtype_name(t->dtype));
    return false;
}

static bool same_shape(const nbi_tensor *a, const nbi_tensor *b)
{
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape) == 0;
}

/* input and target of an elementwise loss: both floating point, of exactly the same shape. PyTorch broadcasts
 * different shapes with a warning; that mostly hides a bug (an (N, 1) prediction against an (N) target silently
 * becomes an (N, N) loss), so nabla refuses them. */
static bool check_pair(const char *fn, nb_tensor *input, nb_tensor *target, const char *in_name)
{
    nbi_tensor *a = nbi_resolve(input, fn, in_name), *b = nbi_resolve(target, fn, "target");
    if (!a || !b || !check_float(fn, a, in_name) || !check_float(fn, b, "target")) return false;
    if (same_shape(a, b)) return true;
    char sa[NBI_SHAPE_STR], sb[NBI_SHAPE_STR];
    nbi_error(NB_ERR_SHAPE, "%s: %s of shape %s and target of shape %s differ (losses do not broadcast)", fn, in_name,
              nbi_shape_fmt(sa, a->ndim, a->shape), nbi_shape_fmt(sb, b->ndim, b->shape));
    return false;
}

/* An optional per-element factor (weight, pos_weight): NULL, or a float tensor broadcasting to input's shape
 * without enlarging it (the loss keeps input's shape, as in PyTorch). */
static bool check_factor(const char *fn, nb_tensor *factor, const char *what, nb_tensor *input)
{
    if (!factor) return true;
    nbi_tensor *w = nbi_resolve(factor, fn, what), *x = nbi_peek(input);
    if (!w || !check_float(fn, w, what)) return false;
    bool fits = w->ndim <= x->ndim;
    for (int k = 0; fits && k < w->ndim; k++) {
        int64_t sw = w->shape[k], sx = x->shape[x->ndim - w->ndim + k];
        fits = sw == sx || sw == 1;
    }
    if (fits) return true;
    char sw[NBI_SHAPE_STR], sx[NBI_SHAPE_STR];
    nbi_error(NB_ERR_SHAPE, "%s: %s of shape %s does not broadcast to the input's shape %s", fn, what,
              nbi_shape_fmt(sw, w->ndim, w->shape), nbi_shape_fmt(sx, x->ndim, x->shape));
    return false;
}

static nb_tensor *reduce(nb_tensor *elementwise, nb_reduction r)
{
    if (r == NB_REDUCTION_MEAN) return nb_mean(elementwise, 0, NULL, false);
    if (r == NB_REDUCTION_SUM) return nb_sum(elementwise, 0, NULL, false);
    return elementwise;
}

/* ------------------------------------------------------------------------------------------------
 * Regression losses
 * ---------------------------------------------------------------------------------------------- */
nb_tensor *nb_mse_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction)
{
    const char *fn = "nb_mse_loss";
    if (!check_pair(fn, input, target, "input") || !check_reduction(fn, reduction)) return NULL;
    if (nbi_nn_begin() != NB_OK) return NULL;
    return nbi_nn_end(reduce(nb_square(nb_sub(input, target)), reduction));
}

nb_tensor *nb_l1_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction)
{
    const char *fn = "nb_l1_loss";
    if (!check_pair(fn, input, target, "input") || !check_reduction(fn, reduction)) return NULL;
    if (nbi_nn_begin() != NB_OK) return NULL;
    return nbi_nn_end(reduce(nb_abs(nb_sub(input, target)), reduction));
}

/* Quadratic below the threshold, linear above: quad_scale d^2 where |d| < threshold, else
 * lin_scale (|d| - threshold / 2). Both pieces are finite everywhere, so where() routes gradients cleanly. */
static nb_tensor *quadratic_linear(nb_tensor *input, nb_tensor *target, double threshold, double quad_scale,
                                   double lin_scale)
{
    nb_tensor *d = nb_sub(input, target);
    nb_tensor *a = nb_abs(d);
    nb_tensor *quad = nb_mul_scalar(nb_square(d), quad_scale);
    nb_tensor *lin = nb_mul_scalar(nb_sub_scalar(a, 0.5 * threshold), lin_scale);
    return nb_where(nb_lt_scalar(a, threshold), quad, lin);
}

nb_tensor *nb_smooth_l1_loss(nb_tensor *input, nb_tensor *target, double beta, nb_reduction reduction)
{
    const char *fn = "nb_smooth_l1_loss";
    if (!check_pair(fn, input, target, "input") || !check_reduction(fn, reduction)) return NULL;
    if (!(beta >= 0) || isinf(beta))
        return nbi_error(NB_ERR_ARG, "%s: beta must be finite and >= 0, got %g", fn, beta);
    if (nbi_nn_begin() != NB_OK) return NULL;
    /* beta 0 is the L1 loss, as in PyTorch (the quadratic piece would divide by zero) */
    nb_tensor *elementwise = beta == 0 ? nb_abs(nb_sub(input, target))
                                       : quadratic_linear(input, target, beta, 0.5 / beta, 1.0);
    return nbi_nn_end(reduce(elementwise, reduction));
}

nb_tensor *nb_huber_loss(nb_tensor *input, nb_tensor *target, double delta, nb_reduction reduction)
{
    const char *fn = "nb_huber_loss";
    if (!check_pair(fn, input, target, "input") || !check_reduction(fn, reduction)) return NULL;
    if (!(delta > 0) || isinf(delta))
        return nbi_error(NB_ERR_ARG, "%s: delta must be finite and > 0, got %g", fn, delta);
    if (nbi_nn_begin() != NB_OK) return NULL;
    return nbi_nn_end(reduce(quadratic_linear(input, target, delta, 0.5, delta), reduction));
}

/* ------------------------------------------------------------------------------------------------
 * Binary cross-entropy
 * ---------------------------------------------------------------------------------------------- */
/* PyTorch refuses probabilities outside [0, 1] (NaN included); so does nabla, naming the first one. */
static bool check_probs(const char *fn, const nbi_tensor *p)
{
    for (int64_t i = 0; i < p->numel; i++) {
        double v = nbi_get_flat(p, i);
        if (v >= 0 && v <= 1) continue;
        nbi_error(NB_ERR_VALUE, "%s: probs must be in [0, 1], got %g at element %lld", fn, v, (long long)i);
        return false;
    }
    return true;
}

/* max(log(q), -100) for q in [0, 1], as PyTorch clamps it. Where q is 0 the log is taken of 1 instead and the
 * result replaced by -100: where() then routes a zero gradient there, where log(0)'s would be 0 / 0. */
static nb_tensor *clamped_log(nb_tensor *q)
{
    nbi_tensor *t = nbi_peek(q);
    if (!t) return NULL;
    nb_tensor *positive = nb_gt_scalar(q, 0);
    nb_tensor *safe = nb_where(positive, q, nb_scalar(1, t->dtype));
    return nb_where(positive, nb_clamp(nb_log(safe), -100, INFINITY), nb_scalar(-100, t->dtype));
}

nb_tensor *nb_bce_loss(nb_tensor *probs, nb_tensor *target, nb_tensor *weight, nb_reduction reduction)
{
    const char *fn = "nb_bce_loss";
    if (!check_pair(fn, probs, target, "probs") || !check_factor(fn, weight, "weight", probs) ||
        !check_reduction(fn, reduction) || !check_probs(fn, nbi_peek(probs)))
        return NULL;
    if (nbi_nn_begin() != NB_OK) return NULL;
    /* (y - 1) log(1 - p) - y log(p), PyTorch's arrangement */
    nb_tensor *elementwise = nb_sub(nb_mul(nb_sub_scalar(target, 1), clamped_log(nb_rsub_scalar(1, probs))),
                                    nb_mul(target, clamped_log(probs)));
    if (weight) elementwise = nb_mul(elementwise, weight);
    return nbi_nn_end(reduce(elementwise, reduction));
}

nb_tensor *nb_bce_with_logits_loss(nb_tensor *logits, nb_tensor *target, nb_tensor *weight, nb_tensor *pos_weight,
                                   nb_reduction reduction)
{
    const char *fn = "nb_bce_with_logits_loss";
    if (!check_pair(fn, logits, target, "logits") || !check_factor(fn, weight, "weight", logits) ||
        !check_factor(fn, pos_weight, "pos_weight", logits) || !check_reduction(fn, reduction))
        return NULL;
    if (nbi_nn_begin() != NB_OK) return NULL;
    /* -log s(x) = softplus(-x); nabla's softplus is max(t, 0) + log1p(e^-|t|), so with no threshold this is
     * exact at any magnitude, and its derivative -s(-x) is smooth, also at x = 0 (where max(x, 0) - x y +
     * log1p(e^-|x|) assembled from relu and abs would get a zero subgradient). With -log(1 - s(x)) =
     * x - log s(x), the loss is (1 - y) x + (1 + (pw - 1) y) softplus(-x). */
    nb_tensor *neg_log_sigmoid = nb_softplus(nb_neg(logits), 1, INFINITY);
    if (pos_weight)
        neg_log_sigmoid = nb_mul(nb_add_scalar(nb_mul(nb_sub_scalar(pos_weight, 1), target), 1), neg_log_sigmoid);
    nb_tensor *elementwise = nb_add(nb_mul(nb_rsub_scalar(1, target), logits), neg_log_sigmoid);
    if (weight) elementwise = nb_mul(elementwise, weight);
    return nbi_nn_end(reduce(elementwise, reduction));
}

/* ------------------------------------------------------------------------------------------------
 * Cross-entropy and negative log-likelihood
 * ---------------------------------------------------------------------------------------------- */
nb_cross_entropy_options nb_cross_entropy_defaults(void)
{
    return (nb_cross_entropy_options){.weight = NULL, .ignore_index = -100, .label_smoothing = 0.0,
                                      .reduction = NB_REDUCTION_MEAN};
}

/* Checks the class losses' arguments: input (N, C, d1, ...) with target (N, d1, ...), or (C) with a 0-d target
 * (PyTorch's unbatched form); a float input, i64 targets, a float weight of shape (C). Returns C, or -1. */
static int64_t check_class_args(const char *fn, nb_tensor *input, nb_tensor *target, const char *in_name,
                                const nb_cross_entropy_options *o, bool smoothing)
{
    nbi_tensor *x = nbi_resolve(input, fn, in_name), *t = nbi_resolve(target, fn, "target");
    if (!x || !t || !check_float(fn, x, in_name) || !check_reduction(fn, o->reduction)) return -1;
    if (t->dtype != NB_I64) {
        nbi_error(NB_ERR_DTYPE, "%s: target must hold i64 class indices, got %s", fn, nb_dtype_name(t->dtype));
        return -1;
    }
    char sx[NBI_SHAPE_STR], st[NBI_SHAPE_STR], se[NBI_SHAPE_STR];
    if (x->ndim == 0) {
        nbi_error(NB_ERR_SHAPE, "%s: %s of shape () has no class dim: expected (N, C, ...) or (C)", fn, in_name);
        return -1;
    }
    const int class_dim = x->ndim == 1 ? 0 : 1;
    const int64_t classes = x->shape[class_dim];
    int64_t expected[NB_MAX_DIMS];
    int n_expected = 0;
    for (int k = 0; k < x->ndim; k++)
        if (k != class_dim) expected[n_expected++] = x->shape[k];
    if (t->ndim != n_expected || memcmp(t->shape, expected, (size_t)n_expected * sizeof *expected) != 0) {
        nbi_error(NB_ERR_SHAPE, "%s: target of shape %s does not match %s of shape %s (expected target shape %s)",
                  fn, nbi_shape_fmt(st, t->ndim, t->shape), in_name, nbi_shape_fmt(sx, x->ndim, x->shape),
                  nbi_shape_fmt(se, n_expected, expected));
        return -1;
    }
    if (classes == 0) {
        nbi_error(NB_ERR_SHAPE, "%s: %s of shape %s has no classes", fn, in_name, nbi_shape_fmt(sx, x->ndim, x->shape));
        return -1;
    }
    if (o->weight) {
        nbi_tensor *w = nbi_resolve(o->weight, fn, "weight");
        if (!w || !check_float(fn, w, "weight")) return -1;
        if (w->ndim != 1 || w->shape[0] != classes) {
            nbi_error(NB_ERR_SHAPE, "%s: weight of shape %s does not match the %lld classes of %s of shape %s", fn,
                      nbi_shape_fmt(se, w->ndim, w->shape), (long long)classes, in_name,
                      nbi_shape_fmt(sx, x->ndim, x->shape));
            return -1;
        }
    }
    if (smoothing && !(o->label_smoothing >= 0 && o->label_smoothing <= 1)) {
        nbi_error(NB_ERR_ARG, "%s: label_smoothing must be in [0, 1], got %g", fn, o->label_smoothing);
        return -1;
    }
    return classes;
}

/* The shared body of nll_loss and cross_entropy, following PyTorch's definitions. With log-probabilities lp
 * (N, C, d...), targets t and class weights w (ones when absent), for every non-ignored position i:
 *     nll_i    = -w[t_i] lp[i, t_i]
 *     smooth_i = -sum_c w[c] lp[i, c]
 *     loss_i   = (1 - eps) nll_i + (eps / C) smooth_i         (ignored positions: 0)
 * and the mean divides the sum by sum_i w[t_i] over the non-ignored positions: 0 / 0 = NaN when all are
 * ignored, as in PyTorch 1.13. */
static nb_tensor *class_loss(const char *fn, nb_tensor *input, nb_tensor *target, const char *in_name,
                             const nb_cross_entropy_options *options, bool from_logits)
{
    const nb_cross_entropy_options defaults = nb_cross_entropy_defaults();
    const nb_cross_entropy_options *o = options ? options : &defaults;
    const int64_t classes = check_class_args(fn, input, target, in_name, o, from_logits);
    if (classes < 0) return NULL;
    const double eps = from_logits ? o->label_smoothing : 0.0;
    const bool unbatched = nb_ndim(input) == 1;
    if (nbi_nn_begin() != NB_OK) return NULL;

    nb_tensor *x = unbatched ? nb_unsqueeze(input, 0) : input;
    nb_tensor *t = unbatched ? nb_unsqueeze(target, 0) : target;
    /* Ignored targets (which may be any value, -100 by default) read class 0 instead, and their terms are then
     * masked out. The i64 comparison is exact for any ignore_index. */
    nb_tensor *ignored = nb_eq(t, nb_from_array(&o->ignore_index, 0, NULL, NB_I64));
    nb_tensor *safe = nb_masked_fill(t, ignored, 0);
    if (!safe) return nbi_nn_end(NULL);
    int64_t bad;
    if (!nbi_index_in_range(nbi_peek(safe), classes, &bad)) {
        nbi_error(NB_ERR_INDEX, "%s: target %lld is out of range for C = %lld classes (ignore_index is %lld)", fn,
                  (long long)bad, (long long)classes, (long long)o->ignore_index);
        return nbi_nn_end(NULL);
    }

    nb_tensor *lp = from_logits ? nb_log_softmax(x, 1) : x;
    nb_tensor *picked = nb_squeeze(nb_gather(lp, 1, nb_unsqueeze(safe, 1)), 1);
    nb_tensor *w_target; /* w[t_i], 0 where ignored: the terms' weights and the mean's denominator */
    nb_tensor *nll;
    if (o->weight) {
        nb_tensor *gathered = nb_index_select(o->weight, 0, nb_reshape(safe, 1, (const int64_t[]){-1}));
        w_target = nb_masked_fill(nb_reshape(gathered, nb_ndim(t), nb_shape(t)), ignored, 0);
        nll = nb_mul(w_target, picked);
    } else {
        w_target = nb_masked_fill(nb_ones_like(picked), ignored, 0);
        nll = picked;
    }
    /* masked_fill rather than the zero weight alone: 0 * (-inf), from a log-probability of -inf in class 0 at
     * an ignored position, would be NaN */
    nb_tensor *elementwise = nb_masked_fill(nb_neg(nll), ignored, 0);
    if (eps > 0) {
        nb_tensor *weighted = lp;
        if (o->weight) {
            /* w as (C, 1, ..., 1) broadcasts along the class dim of (N, C, d...) */
            int64_t wshape[NB_MAX_DIMS];
            int wdims = nb_ndim(lp) - 1;
            wshape[0] = classes;
            for (int k = 1; k < wdims; k++) wshape[k] = 1;
            weighted = nb_mul(lp, nb_reshape(o->weight, wdims, wshape));
        }
        nb_tensor *smooth = nb_masked_fill(nb_neg(nb_sum(weighted, 1, (const int[]){1}, false)), ignored, 0);
        elementwise = nb_add(nb_mul_scalar(elementwise, 1 - eps), nb_mul_scalar(smooth, eps / (double)classes));
    }

    nb_tensor *result;
    if (o->reduction == NB_REDUCTION_NONE)
        result = unbatched ? nb_squeeze(elementwise, 0) : elementwise;
    else if (o->reduction == NB_REDUCTION_SUM)
        result = nb_sum(elementwise, 0, NULL, false);
    else
        result = nb_div(nb_sum(elementwise, 0, NULL, false), nb_sum(w_target, 0, NULL, false));
    return nbi_nn_end(result);
}

/* ------------------------------------------------------------------------------------------------
 * The common case as one op: (N, C) logits and (N) targets, no class weights, no label smoothing, a mean or a
 * sum. The forward is one pass per row (max, log-sum-exp, the target's term); the backward is
 *     grad logits = (softmax(logits) - onehot(target)) g / d        (rows of ignored targets: 0)
 * with d the number of non-ignored rows for the mean (1 for the sum), written with differentiable ops so that
 * double backward works as for the composed form above.
 * ---------------------------------------------------------------------------------------------- */
typedef struct ce_ctx {
    int64_t ignore_index;
    double divisor;
    bool any_ignored;
} ce_ctx;

static void fused_ce_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const ce_ctx *c = nbi_ctx(out);
    nb_tensor *x = nbi_in(out, 0), *t = nb_unsqueeze(nbi_in(out, 1), 1);
    nb_dtype dt = out->dtype;
    nb_no_grad_begin();
    nb_tensor *classes = nb_arange(0, (double)out->inputs[0]->shape[1], 1, NB_I64);
    nb_tensor *onehot = nb_to_dtype(nb_eq(t, classes), dt); /* an ignored row matches no class */
    nb_tensor *kept = c->any_ignored ? nb_to_dtype(nb_ne(t, nb_full(0, NULL, (double)c->ignore_index, NB_I64)), dt)
                                     : NULL;
    nb_no_grad_end();
    nb_tensor *d = nb_sub(nb_softmax(x, 1), onehot);
    if (kept) d = nb_mul(d, kept);
    gin[0] = nb_mul(d, nb_div_scalar(g, c->divisor));
}
static const nbi_op fused_ce_op = {.name = "cross_entropy",
                                   .backward = fused_ce_backward,
                                   .derivative = "grad logits = (softmax(logits) - onehot(target)) g / N",
                                   .inputs = "logits, target"};

static double sum_exp_shifted_f64(const double *x, int64_t n, int64_t stride, double shift)
{
    double sum = 0;
    for (int64_t k = 0; k < n; k++) sum += exp(x[k * stride] - shift);
    return sum;
}

/* Sum over the kept rows of logsumexp(x_i) - x_i[t_i], each term rounded to T as log_softmax would give it. */
#define CE_ROWS(T, SUM_EXP)                                                                                   \
    do {                                                                                                  \
        const T *x = nbi_data_ptr(xi);                                                                    \
        for (int64_t i = 0; i < n; i++) {                                                                 \
            int64_t c_i = tp[i * ts];                                                                     \
            if (c_i == ignore) continue;                                                                  \
            const T *row = x + i * rs;                                                                    \
            T m = row[0];                                                                                 \
            for (int64_t k = 1; k < classes; k++)                                                         \
                if (row[k * cs] > m) m = row[k * cs];                                                     \
            const double sum = SUM_EXP(row, classes, cs, m);                                              \
            total -= (double)(T)((double)(row[c_i * cs] - m) - log(sum));                                 \
        }                                                                                                 \
    } while (0)

/* Returns NULL without an error when the case is not the fused one (the caller then composes the loss). */
static nb_tensor *fused_cross_entropy(nb_tensor *logits, nb_tensor *target, const nb_cross_entropy_options *o,
                                      int64_t classes, bool *handled)
{
    nbi_tensor *xi = nbi_peek(logits), *ti = nbi_peek(target);
    *handled = false;
    if (o->weight || o->label_smoothing != 0 || o->reduction == NB_REDUCTION_NONE || xi->ndim != 2) return NULL;
    const int64_t n = xi->shape[0], rs = xi->stride[0], cs = xi->stride[1], ts = ti->stride[0];
    const int64_t ignore = o->ignore_index;
    const int64_t *tp = nbi_data_ptr(ti);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t t = tp[i * ts];
        if (t == ignore) continue;
        if (t < 0 || t >= classes) {
            *handled = true;
            return nbi_error(NB_ERR_INDEX, "nb_cross_entropy: target %lld is out of range for C = %lld classes "
                             "(ignore_index is %lld)", (long long)t, (long long)classes, (long long)ignore);
        }
        kept++;
    }
    if (kept == 0) return NULL; /* 0 / 0: the composed path gives PyTorch's NaN and its gradient */
    *handled = true;
    double total = 0;
    if (xi->dtype == NB_F32) CE_ROWS(float, nbi_sum_exp_shifted_f32);
    else CE_ROWS(double, sum_exp_shifted_f64);
    ce_ctx c = {.ignore_index = ignore, .divisor = o->reduction == NB_REDUCTION_MEAN ? (double)kept : 1.0,
                .any_ignored = kept < n};
    nbi_tensor *out = nbi_tensor_new(xi->dtype, 0, NULL, "nb_cross_entropy");
    if (!out) return NULL;
    if (xi->dtype == NB_F32) *(float *)nbi_data_ptr(out) = (float)(total / c.divisor);
    else *(double *)nbi_data_ptr(out) = total / c.divisor;
    nbi_tensor *in[2] = {xi, ti};
    return nbi_record(out, &fused_ce_op, 2, in, &c, sizeof c);
}

nb_tensor *nb_cross_entropy(nb_tensor *logits, nb_tensor *target, const nb_cross_entropy_options *options)
{
    const nb_cross_entropy_options defaults = nb_cross_entropy_defaults();
    const nb_cross_entropy_options *o = options ? options : &defaults;
    int64_t classes = check_class_args("nb_cross_entropy", logits, target, "logits", o, true);
    if (classes < 0) return NULL;
    bool handled;
    nb_tensor *r = fused_cross_entropy(logits, target, o, classes, &handled);
    return handled ? r : class_loss("nb_cross_entropy", logits, target, "logits", options, true);
}

nb_tensor *nb_nll_loss(nb_tensor *log_probs, nb_tensor *target, const nb_cross_entropy_options *options)
{
    return class_loss("nb_nll_loss", log_probs, target, "log_probs", options, false);
}

/* ------------------------------------------------------------------------------------------------
 * Penalties
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *penalty(const char *fn, const nb_param_list *params, bool include_frozen, bool squared)
{
    if (!params) {
        nbi_error_null(fn, "params");
        return NULL;
    }
    /* Resolve everything first, so that a freed tensor fails before any work, and pick the result's dtype. */
    nb_dtype dtype = NB_F32;
    for (int i = 0; i < params->count; i++) {
        const nb_named_tensor *item = &params->items[i];
        if (item->is_buffer) continue;
        nbi_tensor *p = nbi_resolve(item->tensor, fn, item->name);
        if (!p) return NULL;
        if ((include_frozen || p->requires_grad) && p->dtype == NB_F64) dtype = NB_F64;
    }
    if (nbi_nn_begin() != NB_OK) return NULL;
    nb_tensor *total = nb_zeros(0, NULL, dtype);
    for (int i = 0; i < params->count; i++) {
        const nb_named_tensor *item = &params->items[i];
        nb_tensor *p = item->tensor;
        if (item->is_buffer || !(include_frozen || nb_requires_grad(p))) continue;
        /* an integer tensor (never trainable, so only when include_frozen) counts by its value */
        if (!nbi_is_float(nb_dtype_of(p))) p = nb_to_dtype(p, dtype);
        total = nb_add(total, nb_sum(squared ? nb_square(p) : nb_abs(p), 0, NULL, false));
    }
    return nbi_nn_end(total);
}

nb_tensor *nb_l1_penalty(const nb_param_list *params, bool include_frozen)
{
    return penalty("nb_l1_penalty", params, include_frozen, false);
}

nb_tensor *nb_l2_penalty(const nb_param_list *params, bool include_frozen)
{
    return penalty("nb_l2_penalty", params, include_frozen, true);
}
