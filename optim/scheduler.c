/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_optim.h"

#include <math.h>

nb_scheduler * nb_step_lr_new(nb_optimizer *opt, int64_t step_size, double gamma)
{
    (void)opt; (void)step_size; (void)gamma;
    return nbi_error(NB_ERR_STATE, "nb_step_lr_new: not implemented yet");
}

nb_scheduler * nb_multistep_lr_new(nb_optimizer *opt, int n, const int64_t *milestones, double gamma)
{
    (void)opt; (void)n; (void)milestones; (void)gamma;
    return nbi_error(NB_ERR_STATE, "nb_multistep_lr_new: not implemented yet");
}

nb_scheduler * nb_exponential_lr_new(nb_optimizer *opt, double gamma)
{
    (void)opt; (void)gamma;
    return nbi_error(NB_ERR_STATE, "nb_exponential_lr_new: not implemented yet");
}

nb_scheduler * nb_cosine_annealing_lr_new(nb_optimizer *opt, int64_t t_max, double eta_min)
{
    (void)opt; (void)t_max; (void)eta_min;
    return nbi_error(NB_ERR_STATE, "nb_cosine_annealing_lr_new: not implemented yet");
}

nb_scheduler * nb_linear_warmup_new(nb_optimizer *opt, int64_t warmup_steps, double start_factor)
{
    (void)opt; (void)warmup_steps; (void)start_factor;
    return nbi_error(NB_ERR_STATE, "nb_linear_warmup_new: not implemented yet");
}

nb_plateau_options nb_plateau_defaults(void)
{
    
    nb_plateau_options r_ = {0};
    nbi_error(NB_ERR_STATE, "nb_plateau_defaults: not implemented yet");
    return r_;
}

nb_scheduler * nb_reduce_on_plateau_new(nb_optimizer *opt, nb_plateau_options options)
{
    (void)opt; (void)options;
    return nbi_error(NB_ERR_STATE, "nb_reduce_on_plateau_new: not implemented yet");
}

nb_status nb_scheduler_step(nb_scheduler *s)
{
    (void)s;
    return nbi_fail(NB_ERR_STATE, "nb_scheduler_step: not implemented yet");
}

nb_status nb_scheduler_step_metric(nb_scheduler *s, double metric)
{
    (void)s; (void)metric;
    return nbi_fail(NB_ERR_STATE, "nb_scheduler_step_metric: not implemented yet");
}

int64_t nb_scheduler_epoch(const nb_scheduler *s)
{
    (void)s;
    nbi_error(NB_ERR_STATE, "nb_scheduler_epoch: not implemented yet");
    return -1;
}

nb_status nb_scheduler_state(const nb_scheduler *s, const char *prefix, nb_metadata *metadata)
{
    (void)s; (void)prefix; (void)metadata;
    return nbi_fail(NB_ERR_STATE, "nb_scheduler_state: not implemented yet");
}

nb_status nb_scheduler_restore(nb_scheduler *s, const nb_metadata *metadata, const char *prefix)
{
    (void)s; (void)metadata; (void)prefix;
    return nbi_fail(NB_ERR_STATE, "nb_scheduler_restore: not implemented yet");
}

void nb_scheduler_free(nb_scheduler *s)
{
    (void)s;
    nbi_error(NB_ERR_STATE, "nb_scheduler_free: not implemented yet");
}
