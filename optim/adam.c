/* Adam (with amsgrad) and AdamW (decoupled weight decay), as torch.optim.Adam / AdamW (PyTorch 1.13). */
#include "kernels_matmul.h"
#include "kernels_unary.h"
#include "optim_internal.h"

#include <math.h>

/* ------------------------------------------------------------------------------------------------
 * The fused update: one pass over parameter, gradient and moments, computing in the parameter's dtype exactly
 * what the op path below computes (the same operations in the same order, scalars rounded to the dtype first),
 * so both give the same bits. Each block of NBI_OPTIM_BLOCK elements runs a few short loops that the compiler
 * vectorizes; the square roots go through nbi_sqrt_inplace.
 * ---------------------------------------------------------------------------------------------- */
typedef struct adam_args {
    nbi_optim_flat f;
    double b1, c1, b2, c2, wd, decay, eps, step; /* eps and step scaled as in adam_moments */
    bool l2, adamw, amsgrad, maximize;
    bool use_gw; /* the moments take gw (built for l2 or maximize), not g */
} adam_args;

#define ADAM_MOMENTS(G, N)                                                                                            \
    for (int64_t j = 0; j < (N); j++) {                                                                               \
        real gj = G[j], mj = m[j] * b1 + gj * c1, vj = v[j] * b2 + (gj * c2) * gj;                                    \
        m[j] = mj;                                                                                                    \
        v[j] = vj;                                                                                                    \
        den[j] = vj;                                                                                                  \
    }

/* One block: the restrict parameters (which the compiler trusts only on parameters) and a constant n let it
 * vectorize every loop without runtime overlap checks. */
#define ADAM_KERNEL(T, SUF, SQRT_INPLACE, ATTR)                                                                       \
    ATTR NBI_OPTIM_INLINE void adam_block_##SUF(const adam_args *a, int64_t n, T *restrict p, const T *restrict g,    \
                                           T *restrict m, T *restrict v, T *restrict mx, T *restrict den,             \
                                           T *restrict gw)                                                            \
    {                                                                                                                 \
        typedef T real;                                                                                               \
        const real b1 = (real)a->b1, c1 = (real)a->c1, b2 = (real)a->b2, c2 = (real)a->c2;                            \
        const real wd = (real)a->wd, decay = (real)a->decay, eps = (real)a->eps;                                      \
        const real step = (real)a->step;                                                                              \
        if (a->adamw)                                                                                                 \
            for (int64_t j = 0; j < n; j++) p[j] = p[j] * decay;                                                      \
        if (a->use_gw) {                                                                                              \
            NBI_OPTIM_EFFECTIVE_GRAD(gw, g, p, wd, n, a->maximize, a->l2);                                            \
            ADAM_MOMENTS(gw, n)                                                                                       \
        } else {                                                                                                      \
            ADAM_MOMENTS(g, n)                                                                                        \
        }                                                                                                             \
        if (a->amsgrad)                                                                                               \
            for (int64_t j = 0; j < n; j++) {                                                                         \
                real x = mx[j], y = v[j];                                                                             \
                x = (x != x || x > y) ? x : y;                                                                        \
                mx[j] = x;                                                                                            \
                den[j] = x;                                                                                           \
            }                                                                                                         \
        SQRT_INPLACE(den, n);                                                                                         \
        for (int64_t j = 0; j < n; j++) p[j] = p[j] - (m[j] * step) / (den[j] + eps);                                 \
    }                                                                                                                 \
    ATTR static void adam_range_##SUF(void *ctx, int64_t begin, int64_t end)                                          \
    {                                                                                                                 \
        const adam_args *a = ctx;                                                                                     \
        T *p = a->f.p, *m = a->f.s[1], *v = a->f.s[2], *mx = a->amsgrad ? a->f.s[3] : NULL;                           \
        const T *g = a->f.g;                                                                                          \
        T den[NBI_OPTIM_BLOCK], gw[NBI_OPTIM_BLOCK];                                                                  \
        for (int64_t i = begin; i < end; i += NBI_OPTIM_BLOCK) {                                                      \
            T *mxi = mx ? mx + i : NULL;                                                                              \
            if (end - i >= NBI_OPTIM_BLOCK)                                                                       \
                adam_block_##SUF(a, NBI_OPTIM_BLOCK, p + i, g + i, m + i, v + i, mxi, den, gw);                   \
            else adam_block_##SUF(a, end - i, p + i, g + i, m + i, v + i, mxi, den, gw);                              \
        }                                                                                                             \
    }

ADAM_KERNEL(float, f32, nbi_sqrt_inplace_f32, )
ADAM_KERNEL(double, f64, nbi_sqrt_inplace_f64, )
#ifdef NBI_HAVE_AVX512_VARIANTS
ADAM_KERNEL(float, f32_avx512, nbi_sqrt_inplace_f32_avx512, NBI_TARGET_AVX512)
ADAM_KERNEL(double, f64_avx512, nbi_sqrt_inplace_f64_avx512, NBI_TARGET_AVX512)
#endif

static nbi_range_fn adam_range(nb_dtype dt)
{
#ifdef NBI_HAVE_AVX512_VARIANTS
    if (nbi_gemm_isa() == NBI_ISA_AVX512) return dt == NB_F64 ? adam_range_f64_avx512 : adam_range_f32_avx512;
#endif
    return dt == NB_F64 ? adam_range_f64 : adam_range_f32;
}

/* Adam's or AdamW's whole update of one parameter in one pass; false when the layout calls for the op path. */
static bool adam_fused(const nbi_optim_group *grp, nb_tensor *p, nb_tensor *g, nb_tensor *const *state, int64_t t,
                       bool adamw)
{
    const nb_adam_options *o = &grp->options.adam;
    int n_state = o->amsgrad ? 4 : 3;
    adam_args a = {.b1 = o->beta1, .c1 = 1 - o->beta1, .b2 = o->beta2, .c2 = 1 - o->beta2, .eps = o->eps,
                   .amsgrad = o->amsgrad, .adamw = adamw && o->weight_decay != 0,
                   .l2 = !adamw && o->weight_decay != 0, .wd = o->weight_decay, .maximize = o->maximize,
                   .decay = 1 - grp->lr * o->weight_decay};
    a.use_gw = a.l2 || a.maximize;
    if (!nbi_optim_flat_get(p, g, state, n_state, &a.f)) return false;
    double bias1 = 1 - pow(o->beta1, (double)t), bias2 = 1 - pow(o->beta2, (double)t);
    a.step = grp->lr / bias1 * sqrt(bias2);
    a.eps = o->eps * sqrt(bias2);
    nbi_optim_parallel(a.f.n, adam_range(a.f.dtype), &a);
    nbi_optim_flat_written(p, state, n_state);
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * The op path (any layout), which the fused kernel reproduces
 * ---------------------------------------------------------------------------------------------- */

nb_adam_options nb_adam_defaults(void)
{
    return (nb_adam_options){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

nb_adam_options nb_adamw_defaults(void)
{
    return (nb_adam_options){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
}

/* The update shared by both, after weight decay: state is step, exp_avg, exp_avg_sq [, max_exp_avg_sq]. */
static nb_status adam_moments(const nbi_optim_group *grp, nb_tensor *p, nb_tensor *g, nb_tensor *const *state,
                              int64_t t)
{
    const nb_adam_options *o = &grp->options.adam;
    nb_tensor *m = state[1], *v = state[2];
    nb_status st = nb_copy_(m, nb_add(nb_mul_scalar(m, o->beta1), nb_mul_scalar(g, 1 - o->beta1)));
    if (!st) st = nb_copy_(v, nb_add(nb_mul_scalar(v, o->beta2), nb_mul(nb_mul_scalar(g, 1 - o->beta2), g)));
    nb_tensor *second = v;
    if (!st && o->amsgrad) {
        st = nb_copy_(state[3], nb_maximum(state[3], v));
        second = state[3];
    }
    if (st) return st;
    double bias1 = 1 - pow(o->beta1, (double)t), bias2 = 1 - pow(o->beta2, (double)t);
    /* PyTorch divides sqrt(v) by sqrt(bias2) before adding eps; multiplying the step and eps by sqrt(bias2)
     * instead is the same update with one division per element fewer (it may differ in the last bit). */
    nb_tensor *denom = nb_add_scalar(nb_sqrt(second), o->eps * sqrt(bias2));
    /* PyTorch's addcdiv order: p + (value m) / denom. */
    return nb_copy_(p, nb_sub(p, nb_div(nb_mul_scalar(m, grp->lr / bias1 * sqrt(bias2)), denom)));
}

static nb_status adam_update(const nbi_optim_group *grp, nb_tensor *p, nb_tensor *g, nb_tensor *const *state,
                             int64_t t)
{
    if (adam_fused(grp, p, g, state, t, false)) return NB_OK;
    if (grp->options.adam.maximize) g = nb_neg(g);
    double wd = grp->options.adam.weight_decay;
    if (wd != 0) g = nb_add(g, nb_mul_scalar(p, wd));
    return adam_moments(grp, p, g, state, t);
}

static nb_status adamw_update(const nbi_optim_group *grp, nb_tensor *p, nb_tensor *g, nb_tensor *const *state,
                              int64_t t)
{
    if (adam_fused(grp, p, g, state, t, true)) return NB_OK;
    if (grp->options.adam.maximize) g = nb_neg(g);
    nb_status st = nb_copy_(p, nb_mul_scalar(p, 1 - grp->lr * grp->options.adam.weight_decay));
    return st ? st : adam_moments(grp, p, g, state, t);
}

/* The constructors' checks, shared with nb_adam_add_param_group. */
static bool adam_check(const char *fn, nb_adam_options o)
{
    return nbi_optim_check_nonneg(fn, "lr", o.lr) && nbi_optim_check_unit(fn, "beta1", o.beta1) &&
           nbi_optim_check_unit(fn, "beta2", o.beta2) && nbi_optim_check_nonneg(fn, "eps", o.eps) &&
           nbi_optim_check_nonneg(fn, "weight_decay", o.weight_decay);
}

void nbi_adam_layout(nbi_optim_group *grp)
{
    nbi_optim_add_state(grp, "exp_avg", 0);
    nbi_optim_add_state(grp, "exp_avg_sq", 0);
    if (grp->options.adam.amsgrad) nbi_optim_add_state(grp, "max_exp_avg_sq", 0);
}

static nbi_optim_group adam_group(nb_adam_options o)
{
    nbi_optim_group grp = {.lr = o.lr};
    grp.options.adam = o;
    return grp;
}

static nb_optimizer *make(const nb_param_list *params, nb_adam_options o, const char *type, nbi_optim_update_fn update,
                          const char *fn)
{
    if (!adam_check(fn, o)) return NULL;
    nbi_optim_group grp = adam_group(o);
    return nbi_optimizer_new(params, type, &grp, update, nbi_adam_layout, fn);
}

nb_optimizer *nb_adam_new(const nb_param_list *params, nb_adam_options o)
{
    return make(params, o, "Adam", adam_update, "nb_adam_new");
}

nb_optimizer *nb_adamw_new(const nb_param_list *params, nb_adam_options o)
{
    return make(params, o, "AdamW", adamw_update, "nb_adamw_new");
}

nb_status nb_adam_add_param_group(nb_optimizer *opt, const nb_param_list *params, nb_adam_options o)
{
    const char *fn = "nb_adam_add_param_group";
    if (!opt) return nbi_fail(NB_ERR_NULL, "%s: optimizer is NULL", fn);
    if (opt->layout != nbi_adam_layout)
        return nbi_fail(NB_ERR_ARG, "%s: the optimizer is %s, not Adam or AdamW", fn, opt->type);
    if (!adam_check(fn, o)) return nb_last_status();
    nbi_optim_group grp = adam_group(o);
    return nbi_optimizer_add_group(opt, params, &grp, fn);
}
