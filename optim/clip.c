/* Gradient clipping by total norm and by value, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_. */
#include "optim_internal.h"

#include <math.h>

/* The gradients to clip: those of every non-buffer entry that has one (frozen or not, as PyTorch takes every
 * parameter whose .grad is set). Checks the handles first so that a failure changes nothing. */
static bool check_list(const nb_param_list *params, const char *fn)
{
    if (!params) {
        nbi_error(NB_ERR_NULL, "%s: params is NULL", fn);
        return false;
    }
    for (int i = 0; i < params->count; i++) {
        if (params->items[i].is_buffer) continue;
        char what[NB_NAME_MAX + 16];
        snprintf(what, sizeof what, "parameter \"%s\"", params->items[i].name);
        if (!nbi_resolve(params->items[i].tensor, fn, what)) return false;
    }
    return true;
}

static nb_tensor *grad_of(const nb_param_list *params, int i)
{
    return params->items[i].is_buffer ? NULL : nb_grad(params->items[i].tensor);
}

/* The norm_type-norm of one gradient, in its dtype as PyTorch computes it, as a double. */
static double grad_norm(nb_tensor *g, double p)
{
    if (nb_numel(g) == 0) return 0;
    nb_tensor *n;
    if (isinf(p)) n = nb_max(nb_abs(g));
    else if (p == 1) n = nb_sum(nb_abs(g), 0, NULL, false);
    else if (p == 2) n = nb_sqrt(nb_sum(nb_square(g), 0, NULL, false));
    else n = nb_pow_scalar(nb_sum(nb_pow_scalar(nb_abs(g), p), 0, NULL, false), 1 / p);
    return n ? nb_item(n) : NAN;
}

static double clip_grad_norm(const nb_param_list *params, double max_norm, double norm_type, bool refuse_nonfinite,
                             const char *fn)
{
    if (!check_list(params, fn)) return NAN;
    if (!(max_norm >= 0)) {
        nbi_error(NB_ERR_ARG, "%s: max_norm must be >= 0, got %g", fn, max_norm);
        return NAN;
    }
    if (!(norm_type > 0)) {
        nbi_error(NB_ERR_ARG, "%s: norm_type must be > 0 (INFINITY for the max norm), got %g", fn, norm_type);
        return NAN;
    }
    if (nbi_scope_begin()) return NAN;
    nb_no_grad_begin();
    uint64_t errors = nbi_error_count();
    bool all_f32 = true;
    double total = 0;
    /* The total is the norm of the per-gradient norms. */
    for (int i = 0; i < params->count; i++) {
        nb_tensor *g = grad_of(params, i);
        if (!g) continue;
        all_f32 = all_f32 && nb_dtype_of(g) == NB_F32;
        double n = grad_norm(g, norm_type);
        if (isinf(norm_type)) total = (isnan(n) || n > total) ? n : total; /* NaN propagates, as torch.max */
        else if (norm_type == 1) total += n;
        else if (norm_type == 2) total += n * n;
        else total += pow(n, norm_type);
    }
    if (norm_type == 2) total = sqrt(total);
    else if (!isinf(norm_type) && norm_type != 1) total = pow(total, 1 / norm_type);
    if (all_f32) total = (float)total;
    if (refuse_nonfinite && !isfinite(total) && nbi_error_count() == errors) {
        nb_no_grad_end();
        nbi_scope_end();
        char order[32];
        snprintf(order, sizeof order, isinf(norm_type) ? "max " : "%g-", norm_type);
        nbi_error(NB_ERR_VALUE, "%s: the total %snorm of the gradients is %s, so it cannot be clipped (gradients "
                  "unchanged)", fn, order, isnan(total) ? "nan" : "inf");
        return NAN;
    }
    /* Written so that a NaN total gives a NaN factor (and NaN gradients), as in PyTorch. */
    double coef = max_norm / (total + 1e-6);
    if (coef > 1) coef = 1;
    for (int i = 0; i < params->count && coef != 1; i++) {
        nb_tensor *g = grad_of(params, i);
        if (g) nb_copy_(g, nb_mul_scalar(g, coef));
    }
    nb_no_grad_end();
    nbi_scope_end();
    return nbi_error_count() == errors ? total : NAN;
}

double nb_clip_grad_norm(const nb_param_list *params, double max_norm, double norm_type)
{
    return clip_grad_norm(params, max_norm, norm_type, false, "nb_clip_grad_norm");
}

double nb_clip_grad_norm_finite(const nb_param_list *params, double max_norm, double norm_type)
{
    return clip_grad_norm(params, max_norm, norm_type, true, "nb_clip_grad_norm_finite");
}

nb_status nb_clip_grad_value(const nb_param_list *params, double clip)
{
    const char *fn = "nb_clip_grad_value";
    if (!check_list(params, fn)) return nb_last_status();
    if (!(clip >= 0)) return nbi_fail(NB_ERR_ARG, "%s: clip must be >= 0, got %g", fn, clip);
    nb_status st = nbi_scope_begin();
    if (st) return st;
    nb_no_grad_begin();
    for (int i = 0; i < params->count && !st; i++) {
        nb_tensor *g = grad_of(params, i);
        if (g) st = nb_copy_(g, nb_clamp(g, -clip, clip));
    }
    nb_no_grad_end();
    nbi_scope_end();
    return st;
}
