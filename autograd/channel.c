/* Per-channel ops on (N, C, ...) feature maps: batch normalization and channel dropout. Both are compositions
 * of differentiable ops (their gradients, of any order, come from those ops); the running statistics are
 * updated outside the graph. */
#include "autograd_internal.h"

#include <math.h>

static nb_tensor *scoped_result(nb_tensor *r)
{
    nbi_tensor *t = nbi_peek(r);
    if (t && nbi_in_innermost_scope(t)) nbi_keep(t);
    nbi_scope_end();
    return t ? r : NULL;
}

/* A per-channel tensor (C) must be 1-d of size C and floating point. */
static bool check_channel_tensor(const char *fn, const char *what, const nbi_tensor *t, int64_t C, const char *xs)
{
    char s[NBI_SHAPE_STR];
    if (t->ndim == 1 && t->shape[0] == C && nbi_is_float(t->dtype)) return true;
    nbi_error(t->ndim == 1 && t->shape[0] == C ? NB_ERR_DTYPE : NB_ERR_SHAPE,
              "%s: %s must be an f32 or f64 tensor of shape (%lld) for input %s, got %s %s", fn, what, (long long)C, xs,
              nb_dtype_name(t->dtype), nbi_shape_fmt(s, t->ndim, t->shape));
    return false;
}

nb_tensor *nb_batch_norm(nb_tensor *input, nb_tensor *running_mean, nb_tensor *running_var, nb_tensor *weight,
                         nb_tensor *bias, bool training, double momentum, double eps)
{
    const char *fn = "nb_batch_norm";
    nbi_tensor *x = nbi_resolve(input, fn, "input");
    if (!x) return NULL;
    nbi_tensor *t[4] = {NULL, NULL, NULL, NULL};
    nb_tensor *const h[4] = {running_mean, running_var, weight, bias};
    static const char *names[4] = {"running_mean", "running_var", "weight", "bias"};
    for (int i = 0; i < 4; i++)
        if (h[i] && !(t[i] = nbi_resolve(h[i], fn, names[i]))) return NULL;
    char xs[NBI_SHAPE_STR];
    nbi_shape_fmt(xs, x->ndim, x->shape);
    if (x->ndim < 2)
        return nbi_error(NB_ERR_SHAPE, "%s: expected an input (N, C, ...) of at least 2 dims, got %s", fn, xs);
    if (!nbi_is_float(x->dtype))
        return nbi_error(NB_ERR_DTYPE, "%s: needs an f32 or f64 input, got %s %s", fn, nb_dtype_name(x->dtype), xs);
    int64_t C = x->shape[1];
    for (int i = 0; i < 4; i++)
        if (t[i] && !check_channel_tensor(fn, names[i], t[i], C, xs)) return NULL;
    if (!(eps >= 0 && isfinite(eps))) return nbi_error(NB_ERR_ARG, "%s: eps must be finite and >= 0, got %g", fn, eps);
    if (!(momentum >= 0 && momentum <= 1))
        return nbi_error(NB_ERR_ARG, "%s: momentum must be in [0, 1], got %g", fn, momentum);
    if ((running_mean == NULL) != (running_var == NULL))
        return nbi_error(NB_ERR_ARG, "%s: running_mean and running_var must be given together (or both NULL)", fn);
    if (!training && !running_mean)
        return nbi_error(NB_ERR_ARG, "%s: evaluation mode needs running_mean and running_var", fn);
    /* Written in place in training: an expanded (stride 0) tensor would hold one value for all its channels. */
    for (int i = 0; training && i < 2; i++)
        if (t[i] && t[i]->ndim == 1 && t[i]->shape[0] > 1 && t[i]->stride[0] == 0)
            return nbi_error(NB_ERR_ARG, "%s: %s is an expanded tensor: its %lld channels are one element in memory, "
                             "which cannot hold per-channel statistics", fn, names[i], (long long)C);
    int64_t count = x->numel / (C ? C : 1);
    /* an empty batch gives an empty result and leaves the running statistics alone, as in PyTorch */
    if (training && count == 1)
        return nbi_error(NB_ERR_SHAPE, "%s: expected more than 1 value per channel when training, got input %s", fn, xs);

    /* The statistics reduce every dim but 1; per-channel tensors broadcast as (C, 1, ..., 1). */
    int dims[NB_MAX_DIMS], nd = 0;
    int64_t cshape[NB_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        if (d != 1) dims[nd++] = d;
    for (int d = 1; d < x->ndim; d++) cshape[d - 1] = d == 1 ? C : 1;
    int cnd = x->ndim - 1;

    if (nbi_scope_begin() != NB_OK) return NULL;
    nb_tensor *y;
    if (training) {
        nb_tensor *mean = nb_mean(input, nd, dims, true);
        nb_tensor *centered = nb_sub(input, mean);
        nb_tensor *var = nb_mean(nb_square(centered), nd, dims, true);
        y = nb_mul(centered, nb_rsqrt(nb_add_scalar(var, eps)));
        if (y && running_mean && count > 0) {
            nb_no_grad_begin();
            nb_tensor *m1 = nb_reshape(mean, 1, &C), *v1 = nb_reshape(var, 1, &C);
            nb_tensor *new_mean = nb_add(nb_mul_scalar(running_mean, 1 - momentum), nb_mul_scalar(m1, momentum));
            nb_tensor *unbiased = nb_mul_scalar(v1, (double)count / (double)(count - 1));
            nb_tensor *new_var = nb_add(nb_mul_scalar(running_var, 1 - momentum), nb_mul_scalar(unbiased, momentum));
            if (!new_mean || !new_var || nb_copy_(running_mean, new_mean) || nb_copy_(running_var, new_var)) y = NULL;
            nb_no_grad_end();
        }
    } else {
        nb_tensor *rm = nb_reshape(running_mean, cnd, cshape), *rv = nb_reshape(running_var, cnd, cshape);
        y = nb_mul(nb_sub(input, rm), nb_rsqrt(nb_add_scalar(rv, eps)));
    }
    if (weight) y = nb_mul(y, nb_reshape(weight, cnd, cshape));
    if (bias) y = nb_add(y, nb_reshape(bias, cnd, cshape));
    return scoped_result(y);
}

nb_tensor *nb_dropout2d(nb_tensor *input, double p, bool training, nb_generator *g)
{
    const char *fn = "nb_dropout2d";
    nbi_tensor *x = nbi_resolve(input, fn, "input");
    if (!x) return NULL;
    char xs[NBI_SHAPE_STR];
    nbi_shape_fmt(xs, x->ndim, x->shape);
    if (!(p >= 0 && p <= 1)) return nbi_error(NB_ERR_ARG, "%s: dropout probability p must be in [0, 1], got %g", fn, p);
    /* in evaluation any input passes unchanged, whatever its rank (torch 1.13 only warns) */
    if (!training) return nbi_alias(x, fn);
    if (x->ndim != 3 && x->ndim != 4)
        return nbi_error(NB_ERR_SHAPE, "%s: expected an input (N, C, H, W) or (N, C, L), got %s", fn, xs);
    if (p == 0 || x->numel == 0) return nbi_alias(x, fn);
    if (!nbi_is_float(x->dtype))
        return nbi_error(NB_ERR_DTYPE, "%s: needs an f32 or f64 input in training, got %s %s", fn,
                         nb_dtype_name(x->dtype), xs);
    if (p == 1) return nb_mul_scalar(input, 0.0);
    if (nbi_scope_begin() != NB_OK) return NULL;
    /* One uniform draw per (n, c), broadcast over the plane; u < p drops the channel. The mask is a constant. */
    int64_t mshape[4] = {x->shape[0], x->shape[1], 1, 1};
    nb_tensor *u = nb_rand(x->ndim, mshape, 0.0, 1.0, x->dtype, g);
    nb_tensor *keep = nb_mul_scalar(nb_to_dtype(nb_ge(u, nb_scalar(p, x->dtype)), x->dtype), 1.0 / (1.0 - p));
    return scoped_result(nb_mul(input, keep));
}
