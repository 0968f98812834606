/* RMSprop (centered, with momentum and weight decay), as torch.optim.RMSprop (PyTorch 1.13). */
#include "optim_internal.h"

nb_rmsprop_options nb_rmsprop_defaults(void)
{
    return (nb_rmsprop_options){.lr = 0.01, .alpha = 0.99, .eps = 1e-8};
}

/* state: step, square_avg [, momentum_buffer] [, grad_avg] */
static nb_status rmsprop_update(const nb_optimizer *opt, nb_tensor *p, nb_tensor *g, nb_tensor *const *state,
                                int64_t t)
{
    (void)t;
    const nb_rmsprop_options *o = &opt->options.rmsprop;
    int k = 2;
    nb_tensor *v = state[1], *buf = o->momentum > 0 ? state[k++] : NULL, *grad_avg = o->centered ? state[k++] : NULL;
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
    if (!buf) return nb_copy_(p, nb_sub(p, nb_div(nb_mul_scalar(g, opt->lr), denom)));
    st = nb_copy_(buf, nb_add(nb_mul_scalar(buf, o->momentum), nb_div(g, denom)));
    return st ? st : nb_copy_(p, nb_sub(p, nb_mul_scalar(buf, opt->lr)));
}

nb_optimizer *nb_rmsprop_new(const nb_param_list *params, nb_rmsprop_options o)
{
    const char *fn = "nb_rmsprop_new";
    if (!nbi_optim_check_nonneg(fn, "lr", o.lr) || !nbi_optim_check_nonneg(fn, "alpha", o.alpha) ||
        !nbi_optim_check_nonneg(fn, "eps", o.eps) || !nbi_optim_check_nonneg(fn, "weight_decay", o.weight_decay) ||
        !nbi_optim_check_nonneg(fn, "momentum", o.momentum))
        return NULL;
    nb_optimizer *opt = nbi_optimizer_new(params, "RMSprop", o.lr, rmsprop_update, fn);
    if (!opt) return NULL;
    opt->options.rmsprop = o;
    nbi_optim_add_state(opt, "square_avg", 0);
    if (o.momentum > 0) nbi_optim_add_state(opt, "momentum_buffer", 0);
    if (o.centered) nbi_optim_add_state(opt, "grad_avg", 0);
    return opt;
}
