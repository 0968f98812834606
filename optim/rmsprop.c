/* RMSprop (centered, with momentum and weight decay), as torch.optim.RMSprop (PyTorch 1.13). */
#include "kernels_unary.h"
#include "optim_internal.h"

/* The fused update: one pass computing what the op path of rmsprop_update computes, the same operations in the
 * same order in the parameter's dtype (see adam.c). */
typedef struct rms_args {
    nbi_optim_flat f;
    double alpha, c, wd, eps, lr, momentum;
    bool l2, centered, has_momentum, maximize;
    bool use_gw; /* the update takes gw (built for l2 or maximize), not g */
    int buf_k, avg_k; /* state indices of momentum_buffer and grad_avg */
} rms_args;

#define RMS_BODY(G, SQRT_INPLACE)                                                                                     \
    {                                                                                                                 \
        for (int64_t j = 0; j < n; j++) {                                                                             \
            real gj = G[j], vj = v[j] * alpha + (gj * c) * gj;                                                        \
            v[j] = vj;                                                                                                \
            den[j] = vj;                                                                                              \
        }                                                                                                             \
        if (a->centered)                                                                                              \
            for (int64_t j = 0; j < n; j++) {                                                                         \
                real aj = avg[j] * alpha + G[j] * c;                                                                  \
                avg[j] = aj;                                                                                          \
                den[j] = den[j] - aj * aj;                                                                            \
            }                                                                                                         \
        SQRT_INPLACE(den, n);                                                                                         \
        if (a->has_momentum)                                                                                          \
            for (int64_t j = 0; j < n; j++) {                                                                         \
                real bj = buf[j] * momentum + G[j] / (den[j] + eps);                                                  \
                buf[j] = bj;                                                                                          \
                p[j] = p[j] - bj * lr;                                                                                \
            }                                                                                                         \
        else                                                                                                          \
            for (int64_t j = 0; j < n; j++) p[j] = p[j] - (G[j] * lr) / (den[j] + eps);                               \
    }

#define RMS_KERNEL(T, SUF, SQRT_INPLACE)                                                                              \
    NBI_OPTIM_INLINE void rms_block_##SUF(const rms_args *a, int64_t n, T *restrict p, const T *restrict g,           \
                                          T *restrict v, T *restrict buf, T *restrict avg, T *restrict den,           \
                                          T *restrict gw)                                                             \
    {                                                                                                                 \
        typedef T real;                                                                                               \
        const real alpha = (real)a->alpha, c = (real)a->c, wd = (real)a->wd, eps = (real)a->eps;                      \
        const real lr = (real)a->lr, momentum = (real)a->momentum;                                                    \
        if (a->use_gw) {                                                                                              \
            NBI_OPTIM_EFFECTIVE_GRAD(gw, g, p, wd, n, a->maximize, a->l2);                                            \
            RMS_BODY(gw, SQRT_INPLACE)                                                                                \
        } else {                                                                                                      \
            RMS_BODY(g, SQRT_INPLACE)                                                                                 \
        }                                                                                                             \
    }                                                                                                                 \
    static void rms_range_##SUF(void *ctx, int64_t begin, int64_t end)                                                \
    {                                                                                                                 \
        const rms_args *a = ctx;                                                                                      \
        T *p = a->f.p, *v = a->f.s[1], *buf = a->f.s[a->buf_k], *avg = a->f.s[a->avg_k];                              \
        const T *g = a->f.g;                                                                                          \
        T den[NBI_OPTIM_BLOCK], gw[NBI_OPTIM_BLOCK];                                                                  \
        for (int64_t i = begin; i < end; i += NBI_OPTIM_BLOCK) {                                                      \
            T *bi = a->has_momentum ? buf + i : NULL, *ai = a->centered ? avg + i : NULL;                             \
            if (end - i >= NBI_OPTIM_BLOCK)                                                                           \
                rms_block_##SUF(a, NBI_OPTIM_BLOCK, p + i, g + i, v + i, bi, ai, den, gw);                            \
            else rms_block_##SUF(a, end - i, p + i, g + i, v + i, bi, ai, den, gw);                                   \
        }                                                                                                             \
    }

RMS_KERNEL(float, f32, nbi_sqrt_inplace_f32)
RMS_KERNEL(double, f64, nbi_sqrt_inplace_f64)

static bool rmsprop_fused(const nbi_optim_group *grp, nb_tensor *p, nb_tensor *g, nb_tensor *const *state)
{
    const nb_rmsprop_options *o = &grp->options.rmsprop;
    rms_args a = {.alpha = o->alpha, .c = 1 - o->alpha, .wd = o->weight_decay, .eps = o->eps, .lr = grp->lr,
                  .momentum = o->momentum, .l2 = o->weight_decay != 0, .centered = o->centered,
                  .has_momentum = o->momentum > 0, .maximize = o->maximize};
    a.use_gw = a.l2 || a.maximize;
    int k = 2;
    a.buf_k = a.has_momentum ? k++ : 1;
    a.avg_k = a.centered ? k++ : 1;
    if (!nbi_optim_flat_get(p, g, state, k, &a.f)) return false;
    nbi_optim_parallel(a.f.n, a.f.dtype == NB_F64 ? rms_range_f64 : rms_range_f32, &a);
    nbi_optim_flat_written(p, state, k);
    return true;
}

nb_rmsprop_options nb_rmsprop_defaults(void)
{
    return (nb_rmsprop_options){.lr = 0.01, .alpha = 0.99, .eps = 1e-8};
}

/* state: step, square_avg [, momentum_buffer] [, grad_avg] */
static nb_status rmsprop_update(const nbi_optim_group *grp, nb_tensor *p, nb_tensor *g, nb_tensor *const *state,
                                int64_t t)
{
    (void)t;
    if (rmsprop_fused(grp, p, g, state)) return NB_OK;
    const nb_rmsprop_options *o = &grp->options.rmsprop;
    int k = 2;
    nb_tensor *v = state[1], *buf = o->momentum > 0 ? state[k++] : NULL, *grad_avg = o->centered ? state[k++] : NULL;
    if (o->maximize) g = nb_neg(g);
    if (o->weight_decay != 0) g = nb_add(g, nb_mul_scalar(p, o->weight_decay));
    nb_status st = nb_copy_(v, nb_add(nb_mul_scalar(v, o->alpha), nb_mul(nb_mul_scalar(g, 1 - o->alpha), g)));
    if (st) return st;
    nb_tensor *var = v;
    if (grad_avg) {
        st = nb_copy_(grad_avg, nb_add(nb_mul_scalar(grad_avg, o->alpha), nb_mul_scalar(g, 1 - o->alpha)));
        if (st) return st;
        var = nb_sub(v, nb_mul(grad_avg, grad_avg));
    }
    nb_tensor *denom = nb_add_scalar(nb_sqrt(var), o->eps);
    if (!buf) return nb_copy_(p, nb_sub(p, nb_div(nb_mul_scalar(g, grp->lr), denom)));
    st = nb_copy_(buf, nb_add(nb_mul_scalar(buf, o->momentum), nb_div(g, denom)));
    return st ? st : nb_copy_(p, nb_sub(p, nb_mul_scalar(buf, grp->lr)));
}

/* The constructor's checks, shared with nb_rmsprop_add_param_group. */
static bool rmsprop_check(const char *fn, nb_rmsprop_options o)
{
    return nbi_optim_check_nonneg(fn, "lr", o.lr) && nbi_optim_check_nonneg(fn, "alpha", o.alpha) &&
           nbi_optim_check_nonneg(fn, "eps", o.eps) && nbi_optim_check_nonneg(fn, "weight_decay", o.weight_decay) &&
           nbi_optim_check_nonneg(fn, "momentum", o.momentum);
}

void nbi_rmsprop_layout(nbi_optim_group *grp)
{
    nbi_optim_add_state(grp, "square_avg", 0);
    if (grp->options.rmsprop.momentum > 0) nbi_optim_add_state(grp, "momentum_buffer", 0);
    if (grp->options.rmsprop.centered) nbi_optim_add_state(grp, "grad_avg", 0);
}

static nbi_optim_group rmsprop_group(nb_rmsprop_options o)
{
    nbi_optim_group grp = {.lr = o.lr};
    grp.options.rmsprop = o;
    return grp;
}

nb_optimizer *nb_rmsprop_new(const nb_param_list *params, nb_rmsprop_options o)
{
    const char *fn = "nb_rmsprop_new";
    if (!rmsprop_check(fn, o)) return NULL;
    nbi_optim_group grp = rmsprop_group(o);
    return nbi_optimizer_new(params, "RMSprop", &grp, rmsprop_update, nbi_rmsprop_layout, fn);
}

nb_status nb_rmsprop_add_param_group(nb_optimizer *opt, const nb_param_list *params, nb_rmsprop_options o)
{
    const char *fn = "nb_rmsprop_add_param_group";
    if (!opt) return nbi_fail(NB_ERR_NULL, "%s: optimizer is NULL", fn);
    if (opt->layout != nbi_rmsprop_layout)
        return nbi_fail(NB_ERR_ARG, "%s: the optimizer is %s, not RMSprop", fn, opt->type);
    if (!rmsprop_check(fn, o)) return nb_last_status();
    nbi_optim_group grp = rmsprop_group(o);
    return nbi_optimizer_add_group(opt, params, &grp, fn);
}
