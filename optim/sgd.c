/* SGD with momentum, dampening, Nesterov momentum and weight decay, as torch.optim.SGD (PyTorch 1.13). */
#include "optim_internal.h"

nb_sgd_options nb_sgd_defaults(void)
{
    return (nb_sgd_options){.lr = 0.01};
}

static nb_status sgd_update(const nb_optimizer *opt, nb_tensor *p, nb_tensor *g, nb_tensor *const *state, int64_t t)
{
    const nb_sgd_options *o = &opt->options.sgd;
    nb_tensor *d = g;
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
    return nb_copy_(p, nb_sub(p, nb_mul_scalar(d, opt->lr)));
}

nb_optimizer *nb_sgd_new(const nb_param_list *params, nb_sgd_options o)
{
    const char *fn = "nb_sgd_new";
    if (!nbi_optim_check_nonneg(fn, "lr", o.lr) || !nbi_optim_check_nonneg(fn, "momentum", o.momentum) ||
        !nbi_optim_check_finite(fn, "dampening", o.dampening) ||
        !nbi_optim_check_nonneg(fn, "weight_decay", o.weight_decay))
        return NULL;
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
        return nbi_error(NB_ERR_ARG,
                         "%s: nesterov needs momentum > 0 and dampening 0, got momentum %g and dampening %g", fn,
                         o.momentum, o.dampening);
    nb_optimizer *opt = nbi_optimizer_new(params, "SGD", o.lr, sgd_update, fn);
    if (!opt) return NULL;
    opt->options.sgd = o;
    if (o.momentum != 0) nbi_optim_add_state(opt, "momentum_buffer", 0);
    return opt;
}
