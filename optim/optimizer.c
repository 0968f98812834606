/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_optim.h"

#include <math.h>

nb_sgd_options nb_sgd_defaults(void)
{
    
    nb_sgd_options r_ = {0};
    nbi_error(NB_ERR_STATE, "nb_sgd_defaults: not implemented yet");
    return r_;
}

nb_adam_options nb_adam_defaults(void)
{
    
    nb_adam_options r_ = {0};
    nbi_error(NB_ERR_STATE, "nb_adam_defaults: not implemented yet");
    return r_;
}

nb_adam_options nb_adamw_defaults(void)
{
    
    nb_adam_options r_ = {0};
    nbi_error(NB_ERR_STATE, "nb_adamw_defaults: not implemented yet");
    return r_;
}

nb_rmsprop_options nb_rmsprop_defaults(void)
{
    
    nb_rmsprop_options r_ = {0};
    nbi_error(NB_ERR_STATE, "nb_rmsprop_defaults: not implemented yet");
    return r_;
}

nb_adagrad_options nb_adagrad_defaults(void)
{
    
    nb_adagrad_options r_ = {0};
    nbi_error(NB_ERR_STATE, "nb_adagrad_defaults: not implemented yet");
    return r_;
}

nb_optimizer * nb_sgd_new(const nb_param_list *params, nb_sgd_options options)
{
    (void)params; (void)options;
    return nbi_error(NB_ERR_STATE, "nb_sgd_new: not implemented yet");
}

nb_optimizer * nb_adam_new(const nb_param_list *params, nb_adam_options options)
{
    (void)params; (void)options;
    return nbi_error(NB_ERR_STATE, "nb_adam_new: not implemented yet");
}

nb_optimizer * nb_adamw_new(const nb_param_list *params, nb_adam_options options)
{
    (void)params; (void)options;
    return nbi_error(NB_ERR_STATE, "nb_adamw_new: not implemented yet");
}

nb_optimizer * nb_rmsprop_new(const nb_param_list *params, nb_rmsprop_options options)
{
    (void)params; (void)options;
    return nbi_error(NB_ERR_STATE, "nb_rmsprop_new: not implemented yet");
}

nb_optimizer * nb_adagrad_new(const nb_param_list *params, nb_adagrad_options options)
{
    (void)params; (void)options;
    return nbi_error(NB_ERR_STATE, "nb_adagrad_new: not implemented yet");
}

nb_status nb_optimizer_step(nb_optimizer *opt)
{
    (void)opt;
    return nbi_fail(NB_ERR_STATE, "nb_optimizer_step: not implemented yet");
}

void nb_optimizer_zero_grad(nb_optimizer *opt)
{
    (void)opt;
    nbi_error(NB_ERR_STATE, "nb_optimizer_zero_grad: not implemented yet");
}

double nb_optimizer_get_lr(const nb_optimizer *opt)
{
    (void)opt;
    nbi_error(NB_ERR_STATE, "nb_optimizer_get_lr: not implemented yet");
    return NAN;
}

void nb_optimizer_set_lr(nb_optimizer *opt, double lr)
{
    (void)opt; (void)lr;
    nbi_error(NB_ERR_STATE, "nb_optimizer_set_lr: not implemented yet");
}

int64_t nb_optimizer_steps(const nb_optimizer *opt)
{
    (void)opt;
    nbi_error(NB_ERR_STATE, "nb_optimizer_steps: not implemented yet");
    return -1;
}

nb_status nb_optimizer_state(nb_optimizer *opt, const char *prefix, nb_param_list *out, nb_metadata *metadata)
{
    (void)opt; (void)prefix; (void)out; (void)metadata;
    return nbi_fail(NB_ERR_STATE, "nb_optimizer_state: not implemented yet");
}

nb_status nb_optimizer_restore(nb_optimizer *opt, const nb_metadata *metadata, const char *prefix)
{
    (void)opt; (void)metadata; (void)prefix;
    return nbi_fail(NB_ERR_STATE, "nb_optimizer_restore: not implemented yet");
}

void nb_optimizer_free(nb_optimizer *opt)
{
    (void)opt;
    nbi_error(NB_ERR_STATE, "nb_optimizer_free: not implemented yet");
}
