/* Adam (with amsgrad) and AdamW (decoupled weight decay), as torch.optim.Adam / AdamW (PyTorch 1.13). */
#include "optim_internal.h"

#include <math.h>

nb_adam_options nb_adam_defaults(void)
{
    return (nb_adam_options){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

nb_adam_options nb_adamw_defaults(void)
{
    return (nb_adam_options){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
}

/* The update shared by both, after weight decay: state is step, exp_avg, exp_avg_sq [, max_exp_avg_sq]. */
static nb_status adam_moments(const nb_optimizer *opt, nb_tensor *p, nb_tensor *g, nb_tensor *const *state, int64_t t)
{
    const nb_adam_options *o = &opt->options.adam;
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
    nb_tensor *denom = nb_add_scalar(nb_div_scalar(nb_sqrt(second), sqrt(bias2)), o->eps);
    /* PyTorch's addcdiv order: p + (value m) / denom. */
    return nb_copy_(p, nb_sub(p, nb_div(nb_mul_scalar(m, opt->lr / bias1), denom)));
}

static nb_status adam_update(const nb_optimizer *opt, nb_tensor *p, nb_tensor *g, nb_tensor *const *state, int64_t t)
{
    double wd = opt->options.adam.weight_decay;
    if (wd != 0) g = nb_add(g, nb_mul_scalar(p, wd));
    return adam_moments(opt, p, g, state, t);
}

static nb_status adamw_update(const nb_optimizer *opt, nb_tensor *p, nb_tensor *g, nb_tensor *const *state, int64_t t)
{
    nb_status st = nb_copy_(p, nb_mul_scalar(p, 1 - opt->lr * opt->options.adam.weight_decay));
    return st ? st : adam_moments(opt, p, g, state, t);
}

static nb_optimizer *make(const nb_param_list *params, nb_adam_options o, const char *type, nbi_optim_update_fn update,
                          const char *fn)
{
    if (!nbi_optim_check_nonneg(fn, "lr", o.lr) || !nbi_optim_check_unit(fn, "beta1", o.beta1) ||
        !nbi_optim_check_unit(fn, "beta2", o.beta2) || !nbi_optim_check_nonneg(fn, "eps", o.eps) ||
        !nbi_optim_check_nonneg(fn, "weight_decay", o.weight_decay))
        return NULL;
    nb_optimizer *opt = nbi_optimizer_new(params, type, o.lr, update, fn);
    if (!opt) return NULL;
    opt->options.adam = o;
    nbi_optim_add_state(opt, "exp_avg", 0);
    nbi_optim_add_state(opt, "exp_avg_sq", 0);
    if (o.amsgrad) nbi_optim_add_state(opt, "max_exp_avg_sq", 0);
    return opt;
}

nb_optimizer *nb_adam_new(const nb_param_list *params, nb_adam_options o)
{
    return make(params, o, "Adam", adam_update, "nb_adam_new");
}

nb_optimizer *nb_adamw_new(const nb_param_list *params, nb_adam_options o)
{
    return make(params, o, "AdamW", adamw_update, "nb_adamw_new");
}
