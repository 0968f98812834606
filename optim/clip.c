/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_optim.h"

#include <math.h>

double nb_clip_grad_norm(const nb_param_list *params, double max_norm, double norm_type)
{
    (void)params; (void)max_norm; (void)norm_type;
    nbi_error(NB_ERR_STATE, "nb_clip_grad_norm: not implemented yet");
    return NAN;
}

nb_status nb_clip_grad_value(const nb_param_list *params, double clip)
{
    (void)params; (void)clip;
    return nbi_fail(NB_ERR_STATE, "nb_clip_grad_value: not implemented yet");
}

nb_early_stopping * nb_early_stopping_new(int64_t patience, double min_delta, bool maximize, bool keep_best)
{
    (void)patience; (void)min_delta; (void)maximize; (void)keep_best;
    return nbi_error(NB_ERR_STATE, "nb_early_stopping_new: not implemented yet");
}

bool nb_early_stopping_update(nb_early_stopping *es, double metric, const nb_param_list *params)
{
    (void)es; (void)metric; (void)params;
    nbi_error(NB_ERR_STATE, "nb_early_stopping_update: not implemented yet");
    return false;
}

double nb_early_stopping_best(const nb_early_stopping *es)
{
    (void)es;
    nbi_error(NB_ERR_STATE, "nb_early_stopping_best: not implemented yet");
    return NAN;
}

int64_t nb_early_stopping_best_epoch(const nb_early_stopping *es)
{
    (void)es;
    nbi_error(NB_ERR_STATE, "nb_early_stopping_best_epoch: not implemented yet");
    return -1;
}

nb_status nb_early_stopping_restore(nb_early_stopping *es, const nb_param_list *params)
{
    (void)es; (void)params;
    return nbi_fail(NB_ERR_STATE, "nb_early_stopping_restore: not implemented yet");
}

void nb_early_stopping_free(nb_early_stopping *es)
{
    (void)es;
    nbi_error(NB_ERR_STATE, "nb_early_stopping_free: not implemented yet");
}
