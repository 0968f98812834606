/* Adagrad (lr decay, initial accumulator, weight decay), as torch.optim.Adagrad (PyTorch 1.13). */
#include "optim_internal.h"

#include <math.h>

nb_adagrad_options nb_adagrad_defaults(void)
{
    return (nb_adagrad_options){.lr = 0.01, .eps = 1e-10};
}

/* state: step, sum */
static nb_status adagrad_update(const nbi_optim_group *grp, nb_tensor *p, nb_tensor *g, nb_tensor *const *state,
                                int64_t t)
{
    const nb_adagrad_options *o = &grp->options.adagrad;
    nb_tensor *sum = state[1];
    if (o->maximize) g = nb_neg(g);
    if (o->weight_decay != 0) g = nb_add(g, nb_mul_scalar(p, o->weight_decay));
    double clr = grp->lr / (1 + (double)(t - 1) * o->lr_decay);
    nb_status st = nb_copy_(sum, nb_add(sum, nb_mul(g, g)));
    if (st) return st;
    nb_tensor *std = nb_add_scalar(nb_sqrt(sum), o->eps);
    return nb_copy_(p, nb_sub(p, nb_div(nb_mul_scalar(g, clr), std)));
}

/* The constructor's checks, shared with nb_adagrad_add_param_group. */
static bool adagrad_check(const char *fn, nb_adagrad_options o)
{
    return nbi_optim_check_nonneg(fn, "lr", o.lr) && nbi_optim_check_nonneg(fn, "lr_decay", o.lr_decay) &&
           nbi_optim_check_nonneg(fn, "weight_decay", o.weight_decay) &&
           nbi_optim_check_nonneg(fn, "initial_accumulator_value", o.initial_accumulator_value) &&
           nbi_optim_check_nonneg(fn, "eps", o.eps);
}

/* PyTorch fills the accumulator at construction; here it is filled when first created, which is the same. */
static void adagrad_layout(nbi_optim_group *grp)
{
    nbi_optim_add_state(grp, "sum", grp->options.adagrad.initial_accumulator_value);
}

static nbi_optim_group adagrad_group(nb_adagrad_options o)
{
    nbi_optim_group grp = {.lr = o.lr};
    grp.options.adagrad = o;
    return grp;
}

nb_optimizer *nb_adagrad_new(const nb_param_list *params, nb_adagrad_options o)
{
    const char *fn = "nb_adagrad_new";
    if (!adagrad_check(fn, o)) return NULL;
    nbi_optim_group grp = adagrad_group(o);
    return nbi_optimizer_new(params, "Adagrad", &grp, adagrad_update, adagrad_layout, fn);
}

nb_status nb_adagrad_add_param_group(nb_optimizer *opt, const nb_param_list *params, nb_adagrad_options o)
{
    const char *fn = "nb_adagrad_add_param_group";
    if (!opt) return nbi_fail(NB_ERR_NULL, "%s: optimizer is NULL", fn);
    if (opt->layout != adagrad_layout)
        return nbi_fail(NB_ERR_ARG, "%s: the optimizer is %s, not Adagrad", fn, opt->type);
    if (!adagrad_check(fn, o)) return nb_last_status();
    nbi_optim_group grp = adagrad_group(o);
    return nbi_optimizer_add_group(opt, params, &grp, fn);
}
