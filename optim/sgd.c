/* SGD with momentum, dampening, Nesterov momentum and weight decay, as torch.optim.SGD (PyTorch 1.13). */
#include "optim_internal.h"

/* The fused update: one pass computing what the op path of sgd_update computes, the same operations in the same
 * order in the parameter's dtype (see adam.c). */
typedef struct sgd_args {
    nbi_optim_flat f;
    double wd, momentum, damp, lr;
    bool l2, has_momentum, first, nesterov, maximize;
    bool use_dw; /* the update takes dw (built for l2 or maximize), not g */
} sgd_args;

#define SGD_BODY(D)                                                                                                   \
    {                                                                                                                 \
        if (!a->has_momentum)                                                                                         \
            for (int64_t j = 0; j < n; j++) p[j] = p[j] - D[j] * lr;                                                  \
        else if (a->first && !a->nesterov)                                                                            \
            for (int64_t j = 0; j < n; j++) {                                                                         \
                buf[j] = D[j];                                                                                        \
                p[j] = p[j] - D[j] * lr;                                                                              \
            }                                                                                                         \
        else if (a->first)                                                                                            \
            for (int64_t j = 0; j < n; j++) {                                                                         \
                buf[j] = D[j];                                                                                        \
                p[j] = p[j] - (D[j] + D[j] * momentum) * lr;                                                          \
            }                                                                                                         \
        else if (!a->nesterov)                                                                                        \
            for (int64_t j = 0; j < n; j++) {                                                                         \
                real bj = buf[j] * momentum + D[j] * damp;                                                            \
                buf[j] = bj;                                                                                          \
                p[j] = p[j] - bj * lr;                                                                                \
            }                                                                                                         \
        else                                                                                                          \
            for (int64_t j = 0; j < n; j++) {                                                                         \
                real bj = buf[j] * momentum + D[j] * damp;                                                            \
                buf[j] = bj;                                                                                          \
                p[j] = p[j] - (D[j] + bj * momentum) * lr;                                                            \
            }                                                                                                         \
    }

#define SGD_KERNEL(T, SUF)                                                                                            \
    NBI_OPTIM_INLINE void sgd_block_##SUF(const sgd_args *a, int64_t n, T *restrict p, const T *restrict g,           \
                                          T *restrict buf, T *restrict dw)                                            \
    {                                                                                                                 \
        typedef T real;                                                                                               \
        const real wd = (real)a->wd, momentum = (real)a->momentum, damp = (real)a->damp, lr = (real)a->lr;            \
        if (a->use_dw) {                                                                                              \
            NBI_OPTIM_EFFECTIVE_GRAD(dw, g, p, wd, n, a->maximize, a->l2);                                            \
            SGD_BODY(dw)                                                                                              \
        } else {                                                                                                      \
            SGD_BODY(g)                                                                                               \
        }                                                                                                             \
    }                                                                                                                 \
    static void sgd_range_##SUF(void *ctx, int64_t begin, int64_t end)                                                \
    {                                                                                                                 \
        const sgd_args *a = ctx;                                                                                      \
        T *p = a->f.p, *buf = a->has_momentum ? a->f.s[1] : NULL;                                                     \
        const T *g = a->f.g;                                                                                          \
        T dw[NBI_OPTIM_BLOCK];                                                                                        \
        for (int64_t i = begin; i < end; i += NBI_OPTIM_BLOCK) {                                                      \
            T *bi = buf ? buf + i : NULL;                                                                             \
            if (end - i >= NBI_OPTIM_BLOCK) sgd_block_##SUF(a, NBI_OPTIM_BLOCK, p + i, g + i, bi, dw);                \
            else sgd_block_##SUF(a, end - i, p + i, g + i, bi, dw);                                                   \
        }                                                                                                             \
    }

SGD_KERNEL(float, f32)
SGD_KERNEL(double, f64)

static bool sgd_fused(const nbi_optim_group *grp, nb_tensor *p, nb_tensor *g, nb_tensor *const *state, int64_t t)
{
    const nb_sgd_options *o = &grp->options.sgd;
    sgd_args a = {.wd = o->weight_decay, .momentum = o->momentum, .damp = 1 - o->dampening, .lr = grp->lr,
                  .l2 = o->weight_decay != 0, .has_momentum = o->momentum != 0, .first = t == 1,
                  .nesterov = o->nesterov, .maximize = o->maximize};
    a.use_dw = a.l2 || a.maximize;
    int n_state = a.has_momentum ? 2 : 1;
    if (!nbi_optim_flat_get(p, g, state, n_state, &a.f)) return false;
    nbi_optim_parallel(a.f.n, a.f.dtype == NB_F64 ? sgd_range_f64 : sgd_range_f32, &a);
    nbi_optim_flat_written(p, state, n_state);
    return true;
}

nb_sgd_options nb_sgd_defaults(void)
{
    return (nb_sgd_options){.lr = 0.01};
}

static nb_status sgd_update(const nbi_optim_group *grp, nb_tensor *p, nb_tensor *g, nb_tensor *const *state, int64_t t)
{
    if (sgd_fused(grp, p, g, state, t)) return NB_OK;
    const nb_sgd_options *o = &grp->options.sgd;
    nb_tensor *d = o->maximize ? nb_neg(g) : g;
    if (o->weight_decay != 0) d = nb_add(d, nb_mul_scalar(p, o->weight_decay));
    if (o->momentum != 0) {
        nb_tensor *buf = state[1];
        /* PyTorch starts the buffer as a copy of the first gradient, not from zeros. */
        nb_status st = t == 1 ? nb_copy_(buf, d)
                              : nb_copy_(buf, nb_add(nb_mul_scalar(buf, o->momentum),
                                                     nb_mul_scalar(d, 1 - o->dampening)));
        if (st) return st;
        d = o->nesterov ? nb_add(d, nb_mul_scalar(buf, o->momentum)) : buf;
    }
    return nb_copy_(p, nb_sub(p, nb_mul_scalar(d, grp->lr)));
}

/* The constructor's checks, shared with nb_sgd_add_param_group. */
static bool sgd_check(const char *fn, nb_sgd_options o)
{
    if (!nbi_optim_check_nonneg(fn, "lr", o.lr) || !nbi_optim_check_nonneg(fn, "momentum", o.momentum) ||
        !nbi_optim_check_finite(fn, "dampening", o.dampening) ||
        !nbi_optim_check_nonneg(fn, "weight_decay", o.weight_decay))
        return false;
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) {
        nbi_error(NB_ERR_ARG, "%s: nesterov needs momentum > 0 and dampening 0, got momentum %g and dampening %g",
                  fn, o.momentum, o.dampening);
        return false;
    }
    return true;
}

void nbi_sgd_layout(nbi_optim_group *grp)
{
    if (grp->options.sgd.momentum != 0) nbi_optim_add_state(grp, "momentum_buffer", 0);
}

static nbi_optim_group sgd_group(nb_sgd_options o)
{
    nbi_optim_group grp = {.lr = o.lr};
    grp.options.sgd = o;
    return grp;
}

nb_optimizer *nb_sgd_new(const nb_param_list *params, nb_sgd_options o)
{
    const char *fn = "nb_sgd_new";
    if (!sgd_check(fn, o)) return NULL;
    nbi_optim_group grp = sgd_group(o);
    return nbi_optimizer_new(params, "SGD", &grp, sgd_update, nbi_sgd_layout, fn);
}

nb_status nb_sgd_add_param_group(nb_optimizer *opt, const nb_param_list *params, nb_sgd_options o)
{
    const char *fn = "nb_sgd_add_param_group";
    if (!opt) return nbi_fail(NB_ERR_NULL, "%s: optimizer is NULL", fn);
    if (opt->layout != nbi_sgd_layout)
        return nbi_fail(NB_ERR_ARG, "%s: the optimizer is %s, not SGD (use nb_%s_add_param_group)", fn, opt->type,
                        opt->layout == nbi_adam_layout ? "adam" : opt->layout == nbi_rmsprop_layout ? "rmsprop"
                                                                                                   : "adagrad");
    if (!sgd_check(fn, o)) return nb_last_status();
    nbi_optim_group grp = sgd_group(o);
    return nbi_optimizer_add_group(opt, params, &grp, fn);
}
