/* Preprocessing (standardization, min-max scaling, one-hot) and seeded splits.
 *
 * Column statistics are accumulated in double whatever x's dtype, so fitting on f32 data loses nothing to
 * rounding; the fitted tensors are f64 and apply() converts them to x's dtype. apply() is a composition of
 * differentiable ops, so it also works on non-contiguous or grad-requiring inputs. */
#include "internal.h"
#include "nb_data.h"

#include <float.h>
#include <math.h>
#include <string.h>

static double load(const char *p, nb_dtype dt)
{
    switch (dt) {
    case NB_F32: return *(const float *)p;
    case NB_F64: return *(const double *)p;
    case NB_I64: return (double)*(const int64_t *)p;
    default: return *(const uint8_t *)p;
    }
}

/* The fitted tensors belong to the struct (its _free releases them), so they must outlive any scope the
 * caller has open. */
static nb_tensor *owned_by_caller(nb_tensor *h)
{
    nbi_tensor *t = nbi_peek(h);
    if (!t) return NULL;
    while (t->owner == NBI_OWNER_SCOPE) nbi_keep(t);
    return h;
}

/* x must be (N, F) with N >= 1; returns it resolved, or NULL with an error naming fn. */
static nbi_tensor *resolve_matrix(const char *fn, nb_tensor *xh)
{
    nbi_tensor *x = nbi_resolve(xh, fn, "x");
    if (!x) return NULL;
    char buf[NBI_SHAPE_STR];
    if (x->ndim != 2)
        return nbi_error(NB_ERR_SHAPE, "%s: x must be 2-d (N, F), got shape %s", fn,
                         nbi_shape_fmt(buf, x->ndim, x->shape));
    return x;
}

/* Per column: minimum, maximum and (when mean/std are not NULL) mean and biased standard deviation, in two
 * passes (the two-pass variance has no catastrophic cancellation). A constant column gets exactly its value
 * as mean and 0 as std, so that apply() maps it to exactly 0. A column whose values differ only by rounding
 * (0.3 and 0.1 + 0.2) has a variance of the order of its own rounding error: dividing by its square root would
 * blow that noise up to +-1. Like scikit-learn's StandardScaler (_is_constant_feature: the error bound of the
 * two-pass variance, Chan, Golub and LeVeque), a variance var <= n eps var + (n eps mean)^2, eps the f64
 * machine epsilon, counts as constant: std 0 (the column is centered, not scaled). */
static nb_status column_stats(const char *fn, nbi_tensor *x, double *mn, double *mx, double *mean, double *std)
{
    int64_t n = x->shape[0], f = x->shape[1];
    if (n == 0) {
        char buf[NBI_SHAPE_STR];
        return nbi_fail(NB_ERR_VALUE, "%s: x has no rows, shape %s", fn, nbi_shape_fmt(buf, 2, x->shape));
    }
    size_t es = nb_dtype_size(x->dtype);
    const char *base = nbi_data_ptr(x);
#define AT(i, j) load(base + ((i) * x->stride[0] + (j) * x->stride[1]) * (int64_t)es, x->dtype)
    for (int64_t j = 0; j < f; j++) {
        mn[j] = INFINITY;
        mx[j] = -INFINITY;
        if (mean) mean[j] = 0;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < f; j++) {
            double v = AT(i, j);
            if (v < mn[j]) mn[j] = v;
            if (v > mx[j]) mx[j] = v;
            if (mean) mean[j] += v;
        }
    if (!mean) return NB_OK;
    for (int64_t j = 0; j < f; j++) {
        mean[j] /= (double)n;
        std[j] = 0;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < f; j++) {
            double d = AT(i, j) - mean[j];
            std[j] += d * d;
        }
#undef AT
    for (int64_t j = 0; j < f; j++) {
        double var = std[j] / (double)n, bound = (double)n * DBL_EPSILON * mean[j];
        if (mn[j] == mx[j]) {
            mean[j] = mn[j];
            std[j] = 0;
        } else if (var <= (double)n * DBL_EPSILON * var + bound * bound) {
            std[j] = 0;
        } else {
            std[j] = sqrt(var);
        }
    }
    return NB_OK;
}

/* (x - shift) / scale with scale 0 taken as 1 (such columns are shifted, not scaled). */
static nb_tensor *shift_scale(const char *fn, const char *what, nb_tensor *xh, nb_tensor *shift, nb_tensor *scale)
{
    nbi_tensor *x = resolve_matrix(fn, xh);
    nbi_tensor *sh = nbi_resolve(shift, fn, what), *sc = nbi_resolve(scale, fn, what);
    if (!x || !sh || !sc) return NULL;
    if (x->shape[1] != sh->numel) {
        char buf[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: x has shape %s but the %s was fitted on %lld columns", fn,
                         nbi_shape_fmt(buf, 2, x->shape), what, (long long)sh->numel);
    }
    if (nb_scope_begin() != NB_OK) return NULL;
    nb_dtype dt = nbi_is_float(x->dtype) ? x->dtype : NB_F32;
    nb_tensor *safe = nb_to_dtype(nb_add(scale, nb_eq_scalar(scale, 0)), dt);
    /* bool has no subtraction (as in PyTorch): its columns are shifted as dt */
    nb_tensor *xs = x->dtype == NB_BOOL ? nb_to_dtype(xh, dt) : xh;
    nb_tensor *out = nb_keep(nb_div(nb_sub(xs, nb_to_dtype(shift, dt)), safe));
    nb_scope_end();
    return out;
}

nb_status nb_standardizer_fit(nb_standardizer *s, nb_tensor *xh)
{
    const char *fn = "nb_standardizer_fit";
    if (!s) return nbi_fail(NB_ERR_NULL, "%s: standardizer is NULL", fn);
    s->mean = s->std = NULL;
    nbi_tensor *x = resolve_matrix(fn, xh);
    if (!x) return nb_last_status();
    int64_t f = x->shape[1];
    size_t bytes = 4 * (size_t)(f ? f : 1) * sizeof(double);
    double *buf = nbi_alloc(bytes, fn);
    if (!buf) return NB_ERR_NOMEM;
    nb_status st = column_stats(fn, x, buf, buf + f, buf + 2 * f, buf + 3 * f);
    if (st == NB_OK) {
        s->mean = owned_by_caller(nb_from_array(buf + 2 * f, 1, &f, NB_F64));
        s->std = owned_by_caller(nb_from_array(buf + 3 * f, 1, &f, NB_F64));
        if (!s->mean || !s->std) {
            st = nb_last_status();
            nb_standardizer_free(s);
        }
    }
    nbi_free(buf, bytes);
    return st;
}

nb_tensor *nb_standardizer_apply(const nb_standardizer *s, nb_tensor *x)
{
    if (!s) return nbi_error(NB_ERR_NULL, "nb_standardizer_apply: standardizer is NULL");
    if (!s->mean || !s->std)
        return nbi_error(NB_ERR_STATE, "nb_standardizer_apply: the standardizer is not fitted (or was freed)");
    return shift_scale("nb_standardizer_apply", "standardizer", x, s->mean, s->std);
}

void nb_standardizer_free(nb_standardizer *s)
{
    if (!s) return;
    nb_free(s->mean);
    nb_free(s->std);
    s->mean = s->std = NULL;
}

nb_status nb_minmax_fit(nb_minmax_scaler *s, nb_tensor *xh)
{
    const char *fn = "nb_minmax_fit";
    if (!s) return nbi_fail(NB_ERR_NULL, "%s: scaler is NULL", fn);
    s->min = s->max = NULL;
    nbi_tensor *x = resolve_matrix(fn, xh);
    if (!x) return nb_last_status();
    int64_t f = x->shape[1];
    size_t bytes = 2 * (size_t)(f ? f : 1) * sizeof(double);
    double *buf = nbi_alloc(bytes, fn);
    if (!buf) return NB_ERR_NOMEM;
    nb_status st = column_stats(fn, x, buf, buf + f, NULL, NULL);
    if (st == NB_OK) {
        s->min = owned_by_caller(nb_from_array(buf, 1, &f, NB_F64));
        s->max = owned_by_caller(nb_from_array(buf + f, 1, &f, NB_F64));
        if (!s->min || !s->max) {
            st = nb_last_status();
            nb_minmax_free(s);
        }
    }
    nbi_free(buf, bytes);
    return st;
}

nb_tensor *nb_minmax_apply(const nb_minmax_scaler *s, nb_tensor *x)
{
    const char *fn = "nb_minmax_apply";
    if (!s) return nbi_error(NB_ERR_NULL, "%s: scaler is NULL", fn);
    if (!s->min || !s->max) return nbi_error(NB_ERR_STATE, "%s: the scaler is not fitted (or was freed)", fn);
    if (!nbi_resolve(s->min, fn, "scaler") || !nbi_resolve(s->max, fn, "scaler")) return NULL;
    /* A range below 10 machine epsilons is rounding, not spread: scikit-learn treats such a column as constant
     * (_handle_zeros_in_scale), and so does shift_scale with a range of 0. */
    nb_scope_begin();
    nb_tensor *range = nb_sub(s->max, s->min);
    range = nb_keep(nb_masked_fill(range, nb_lt_scalar(range, 10 * DBL_EPSILON), 0.0));
    nb_scope_end();
    nb_tensor *out = range ? shift_scale(fn, "scaler", x, s->min, range) : NULL;
    nb_free(range);
    return out;
}

void nb_minmax_free(nb_minmax_scaler *s)
{
    if (!s) return;
    nb_free(s->min);
    nb_free(s->max);
    s->min = s->max = NULL;
}

nb_tensor *nb_one_hot(nb_tensor *lh, int64_t num_classes)
{
    const char *fn = "nb_one_hot";
    nbi_tensor *labels = nbi_resolve(lh, fn, "labels");
    if (!labels) return NULL;
    char buf[NBI_SHAPE_STR];
    if (labels->dtype != NB_I64)
        return nbi_error(NB_ERR_DTYPE, "%s: labels must be i64, got %s (shape %s)", fn, nb_dtype_name(labels->dtype),
                         nbi_shape_fmt(buf, labels->ndim, labels->shape));
    if (num_classes < 1) return nbi_error(NB_ERR_ARG, "%s: num_classes must be >= 1, got %lld", fn, (long long)num_classes);
    if (labels->ndim >= NB_MAX_DIMS)
        return nbi_error(NB_ERR_SHAPE, "%s: labels of shape %s leave no room for the class dim (at most %d dims)", fn,
                         nbi_shape_fmt(buf, labels->ndim, labels->shape), NB_MAX_DIMS);
    for (int64_t i = 0; i < labels->numel; i++) {
        double v = nbi_get_flat(labels, i);
        if (v < 0 || v >= (double)num_classes)
            return nbi_error(NB_ERR_INDEX, "%s: label %lld at position %lld of labels %s is out of range for %lld classes",
                             fn, (long long)v, (long long)i, nbi_shape_fmt(buf, labels->ndim, labels->shape),
                             (long long)num_classes);
    }
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, labels->shape, (size_t)labels->ndim * sizeof *shape);
    shape[labels->ndim] = num_classes;
    nbi_tensor *out = nbi_tensor_new(NB_F32, labels->ndim + 1, shape, fn);
    if (!out) return NULL;
    float *o = nbi_data_ptr(out);
    memset(o, 0, (size_t)out->numel * sizeof *o);
    for (int64_t i = 0; i < labels->numel; i++) o[i * num_classes + (int64_t)nbi_get_flat(labels, i)] = 1.0f;
    return nbi_handle(out);
}

/* ------------------------------------------------------------------------------------------------
 * Splits: slices of one seeded permutation, copied into new tensors.
 * ---------------------------------------------------------------------------------------------- */
/* train = perm[0, a) ++ perm[b, n), test = perm[a, b). */
static nb_status split(int64_t n, int64_t a, int64_t b, uint64_t seed, nb_tensor **train_idx,
                       nb_tensor **test_idx)
{
    nb_generator g;
    nb_generator_seed(&g, seed);
    nb_tensor *perm = nb_randperm(n, &g);
    if (!perm) return nb_last_status();
    const int64_t *p = nb_data(perm);
    int64_t n_test = b - a, n_train = n - n_test;
    nb_tensor *test = nb_empty(1, &n_test, NB_I64), *train = nb_empty(1, &n_train, NB_I64);
    if (test && train) {
        /* empty tensors may have no buffer: memcpy must not see their NULL pointers */
        if (n_test) memcpy(nb_data(test), p + a, (size_t)n_test * sizeof *p);
        int64_t *t = n_train ? nb_data(train) : NULL;
        if (a) memcpy(t, p, (size_t)a * sizeof *p);
        if (n > b) memcpy(t + a, p + b, (size_t)(n - b) * sizeof *p);
    }
    nb_free(perm);
    if (!test || !train) {
        nb_free(test);
        nb_free(train);
        return nb_last_status();
    }
    *train_idx = train;
    *test_idx = test;
    return NB_OK;
}

static nb_status check_outputs(const char *fn, nb_tensor **train_idx, nb_tensor **test_idx)
{
    if (train_idx) *train_idx = NULL;
    if (test_idx) *test_idx = NULL;
    if (!train_idx || !test_idx)
        return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, train_idx ? "test_idx" : "train_idx");
    return NB_OK;
}

nb_status nb_train_test_split(int64_t n, double test_fraction, uint64_t seed, nb_tensor **train_idx,
                              nb_tensor **test_idx)
{
    const char *fn = "nb_train_test_split";
    nb_status st = check_outputs(fn, train_idx, test_idx);
    if (st) return st;
    if (n < 0) return nbi_fail(NB_ERR_ARG, "%s: n must be >= 0, got %lld", fn, (long long)n);
    if (!(test_fraction >= 0 && test_fraction <= 1))
        return nbi_fail(NB_ERR_ARG, "%s: test_fraction must be in [0, 1], got %g", fn, test_fraction);
    int64_t n_test = (int64_t)round((double)n * test_fraction);
    return split(n, 0, n_test, seed, train_idx, test_idx);
}

nb_status nb_kfold_split(int64_t n, int k, int fold, uint64_t seed, nb_tensor **train_idx, nb_tensor **test_idx)
{
    const char *fn = "nb_kfold_split";
    nb_status st = check_outputs(fn, train_idx, test_idx);
    if (st) return st;
    if (k < 2 || n < k)
        return nbi_fail(NB_ERR_ARG, "%s: k must be in [2, n] = [2, %lld], got %d", fn, (long long)n, k);
    if (fold < 0 || fold >= k)
        return nbi_fail(NB_ERR_INDEX, "%s: fold %d is out of range for k = %d", fn, fold, k);
    /* As scikit-learn's KFold: the first n % k folds hold one more element. */
    int64_t small = n / k, extra = n % k;
    int64_t start = fold * small + (fold < extra ? fold : extra);
    int64_t size = small + (fold < extra ? 1 : 0);
    return split(n, start, start + size, seed, train_idx, test_idx);
}
