/* LayerNorm and BatchNorm1d, written with nabla's public ops (their gradients come from the ops'). */
#include "nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* (x - mean) / sqrt(var + eps) over dims, biased variance. Computing the variance from the centered values
 * that are normalized anyway saves a pass and keeps one graph. *mean_out and *var_out (may be NULL) receive the
 * statistics with the reduced dims kept. */
static nb_tensor *normalize(nb_tensor *x, int ndims, const int *dims, double eps, nb_tensor **mean_out,
                            nb_tensor **var_out)
{
    nb_tensor *mean = nb_mean(x, ndims, dims, true);
    nb_tensor *centered = nb_sub(x, mean);
    nb_tensor *var = nb_mean(nb_square(centered), ndims, dims, true);
    if (mean_out) *mean_out = mean;
    if (var_out) *var_out = var;
    return nb_mul(centered, nb_rsqrt(nb_add_scalar(var, eps)));
}

static nb_status check_eps(const char *fn, double eps)
{
    if (eps >= 0 && isfinite(eps)) return NB_OK;
    return nbi_fail(NB_ERR_ARG, "%s: eps must be finite and >= 0, got %g", fn, eps);
}

/* ------------------------------------------------------------------------------------------------
 * LayerNorm
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *layer_norm_forward(nb_module *m, nb_tensor *x)
{
    nb_layer_norm *ln = (nb_layer_norm *)m;
    nbi_tensor *t = nbi_resolve(x, "nb_layer_norm", "input");
    if (!t) return NULL;
    if (!nbi_is_float(t->dtype))
        return nbi_error(NB_ERR_DTYPE, "nb_layer_norm: needs an f32 or f64 input, not %s", nb_dtype_name(t->dtype));
    bool fits = t->ndim >= ln->ndim;
    for (int i = 0; fits && i < ln->ndim; i++)
        fits = t->shape[t->ndim - ln->ndim + i] == ln->normalized_shape[i];
    if (!fits) {
        char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "nb_layer_norm: input of shape %s does not end with normalized_shape %s",
                         nbi_shape_fmt(a, t->ndim, t->shape), nbi_shape_fmt(b, ln->ndim, ln->normalized_shape));
    }
    int dims[NB_MAX_DIMS];
    for (int i = 0; i < ln->ndim; i++) dims[i] = i - ln->ndim;
    if (nbi_nn_begin() != NB_OK) return NULL;
    nb_tensor *y = normalize(x, ln->ndim, dims, ln->eps, NULL, NULL);
    if (ln->weight) y = nb_add(nb_mul(y, ln->weight), ln->bias);
    return nbi_nn_end(y);
}

static nb_status layer_norm_collect(nb_module *m, const char *prefix, nb_param_list *out)
{
    nb_layer_norm *ln = (nb_layer_norm *)m;
    nb_status st = nbi_nn_collect_one(out, prefix, "weight", ln->weight, false);
    return st ? st : nbi_nn_collect_one(out, prefix, "bias", ln->bias, false);
}

static void layer_norm_destroy(nb_module *m)
{
    nb_layer_norm *ln = (nb_layer_norm *)m;
    nbi_nn_free_tensor(ln->weight);
    nbi_nn_free_tensor(ln->bias);
    free(ln);
}

static const nb_module_type layer_norm_type = {"LayerNorm", layer_norm_forward, layer_norm_collect, NULL,
                                               layer_norm_destroy, NULL};

nb_module *nb_layer_norm_new(int ndim, const int64_t *normalized_shape, double eps, bool elementwise_affine)
{
    const char *fn = "nb_layer_norm_new";
    if (ndim < 1 || ndim > NB_MAX_DIMS)
        return nbi_error(NB_ERR_ARG, "%s: normalized_shape must have 1 to %d dims, got %d", fn, NB_MAX_DIMS, ndim);
    if (!normalized_shape) {
        nbi_error_null(fn, "normalized_shape");
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (normalized_shape[i] < 1) {
            char b[NBI_SHAPE_STR];
            return nbi_error(NB_ERR_ARG, "%s: normalized_shape %s has a size < 1", fn,
                             nbi_shape_fmt(b, ndim, normalized_shape));
        }
    if (check_eps(fn, eps)) return NULL;
    nb_layer_norm *ln = nbi_nn_module_new(sizeof *ln, &layer_norm_type, fn);
    if (!ln) return NULL;
    ln->ndim = ndim;
    memcpy(ln->normalized_shape, normalized_shape, (size_t)ndim * sizeof *normalized_shape);
    ln->eps = eps;
    if (elementwise_affine) {
        ln->weight = nbi_nn_param(ndim, normalized_shape, fn);
        ln->bias = nbi_nn_param(ndim, normalized_shape, fn);
        if (!ln->weight || !ln->bias || nb_fill(ln->weight, 1.0) != NB_OK) {
            layer_norm_destroy(&ln->base);
            return NULL;
        }
    }
    return &ln->base;
}

/* ------------------------------------------------------------------------------------------------
 * BatchNorm1d
 * ---------------------------------------------------------------------------------------------- */
/* Folds the batch statistics into the running ones (no graph): r = (1 - momentum) r + momentum batch, with
 * the unbiased variance, as PyTorch does. */
static nb_status update_running(nb_batch_norm1d *bn, nb_tensor *mean, nb_tensor *var, int64_t count)
{
    const int64_t c = bn->num_features;
    double m = bn->momentum;
    nb_no_grad_begin();
    if (count == 0) { /* an empty batch: PyTorch counts it and keeps the statistics */
        nb_status st = nb_fill(bn->num_batches_tracked, nb_item(bn->num_batches_tracked) + 1);
        nb_no_grad_end();
        return st;
    }
    nb_tensor *new_mean = nb_add(nb_mul_scalar(bn->running_mean, 1 - m), nb_mul_scalar(nb_reshape(mean, 1, &c), m));
    nb_tensor *unbiased = nb_mul_scalar(nb_reshape(var, 1, &c), (double)count / (double)(count - 1));
    nb_tensor *new_var = nb_add(nb_mul_scalar(bn->running_var, 1 - m), nb_mul_scalar(unbiased, m));
    nb_status st = new_mean && new_var ? NB_OK : nb_last_status();
    if (!st) st = nb_copy_(bn->running_mean, new_mean);
    if (!st) st = nb_copy_(bn->running_var, new_var);
    if (!st) st = nb_fill(bn->num_batches_tracked, nb_item(bn->num_batches_tracked) + 1);
    nb_no_grad_end();
    return st;
}

static nb_tensor *batch_norm_forward(nb_module *m, nb_tensor *x)
{
    const char *fn = "nb_batch_norm1d";
    nb_batch_norm1d *bn = (nb_batch_norm1d *)m;
    nbi_tensor *t = nbi_resolve(x, fn, "input");
    if (!t) return NULL;
    char a[NBI_SHAPE_STR];
    if ((t->ndim != 2 && t->ndim != 3) || t->shape[1] != bn->num_features)
        return nbi_error(NB_ERR_SHAPE, "%s: expected input of shape (N, %lld) or (N, %lld, L), got %s", fn,
                         (long long)bn->num_features, (long long)bn->num_features,
                         nbi_shape_fmt(a, t->ndim, t->shape));
    if (!nbi_is_float(t->dtype))
        return nbi_error(NB_ERR_DTYPE, "%s: needs an f32 or f64 input, not %s", fn, nb_dtype_name(t->dtype));
    int64_t count = t->shape[0] * (t->ndim == 3 ? t->shape[2] : 1);
    if (m->training && count == 1)
        return nbi_error(NB_ERR_SHAPE, "%s: expected more than 1 value per channel when training, got input of shape %s",
                         fn, nbi_shape_fmt(a, t->ndim, t->shape));
    const int dims[2] = {0, 2};
    /* Per-channel tensors of shape (C) broadcast against (N, C) as they are, against (N, C, L) as (C, 1). */
    const int64_t channel_shape[2] = {bn->num_features, 1};
    int channel_ndim = t->ndim == 3 ? 2 : 1;
    if (nbi_nn_begin() != NB_OK) return NULL;
    nb_tensor *y;
    if (m->training) {
        nb_tensor *mean = NULL, *var = NULL;
        y = normalize(x, t->ndim - 1, dims, bn->eps, &mean, &var);
        if (y && update_running(bn, mean, var, count) != NB_OK) y = NULL;
    } else {
        nb_tensor *rm = nb_reshape(bn->running_mean, channel_ndim, channel_shape);
        nb_tensor *rv = nb_reshape(bn->running_var, channel_ndim, channel_shape);
        y = nb_mul(nb_sub(x, rm), nb_rsqrt(nb_add_scalar(rv, bn->eps)));
    }
    if (bn->weight)
        y = nb_add(nb_mul(y, nb_reshape(bn->weight, channel_ndim, channel_shape)),
                   nb_reshape(bn->bias, channel_ndim, channel_shape));
    return nbi_nn_end(y);
}

nb_status nbi_batch_norm_collect(nb_module *m, const char *prefix, nb_param_list *out)
{
    nb_batch_norm1d *bn = (nb_batch_norm1d *)m;
    nb_status st = nbi_nn_collect_one(out, prefix, "weight", bn->weight, false);
    if (!st) st = nbi_nn_collect_one(out, prefix, "bias", bn->bias, false);
    if (!st) st = nbi_nn_collect_one(out, prefix, "running_mean", bn->running_mean, true);
    if (!st) st = nbi_nn_collect_one(out, prefix, "running_var", bn->running_var, true);
    if (!st) st = nbi_nn_collect_one(out, prefix, "num_batches_tracked", bn->num_batches_tracked, true);
    return st;
}

void nbi_batch_norm_destroy(nb_module *m)
{
    nb_batch_norm1d *bn = (nb_batch_norm1d *)m;
    nbi_nn_free_tensor(bn->weight);
    nbi_nn_free_tensor(bn->bias);
    nbi_nn_free_tensor(bn->running_mean);
    nbi_nn_free_tensor(bn->running_var);
    nbi_nn_free_tensor(bn->num_batches_tracked);
    free(bn);
}

static const nb_module_type batch_norm_type = {"BatchNorm1d", batch_norm_forward, nbi_batch_norm_collect, NULL,
                                               nbi_batch_norm_destroy, NULL};

nb_module *nbi_batch_norm_new(const nb_module_type *type, const char *fn, int64_t num_features, double eps,
                              double momentum, bool affine)
{
    if (num_features < 1)
        return nbi_error(NB_ERR_ARG, "%s: num_features must be >= 1, got %lld", fn, (long long)num_features);
    if (check_eps(fn, eps)) return NULL;
    if (!(momentum >= 0 && momentum <= 1))
        return nbi_error(NB_ERR_ARG, "%s: momentum must be in [0, 1], got %g", fn, momentum);
    nb_batch_norm1d *bn = nbi_nn_module_new(sizeof *bn, type, fn);
    if (!bn) return NULL;
    bn->num_features = num_features;
    bn->eps = eps;
    bn->momentum = momentum;
    bool ok = true;
    if (affine) {
        bn->weight = nbi_nn_param(1, &num_features, fn);
        bn->bias = nbi_nn_param(1, &num_features, fn);
        ok = bn->weight && bn->bias && nb_fill(bn->weight, 1.0) == NB_OK;
    }
    bn->running_mean = nbi_nn_own(nb_zeros(1, &num_features, NB_F32));
    bn->running_var = nbi_nn_own(nb_ones(1, &num_features, NB_F32));
    bn->num_batches_tracked = nbi_nn_own(nb_zeros(0, NULL, NB_I64));
    if (!ok || !bn->running_mean || !bn->running_var || !bn->num_batches_tracked) {
        nbi_batch_norm_destroy(&bn->base);
        return NULL;
    }
    return &bn->base;
}

nb_module *nb_batch_norm1d_new(int64_t num_features, double eps, double momentum, bool affine)
{
    return nbi_batch_norm_new(&batch_norm_type, "nb_batch_norm1d_new", num_features, eps, momentum, affine);
}
