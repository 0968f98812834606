/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_optim.h"

#include <math.h>

nb_tensor * nb_mse_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction)
{
    (void)input; (void)target; (void)reduction;
    return nbi_error(NB_ERR_STATE, "nb_mse_loss: not implemented yet");
}

nb_tensor * nb_l1_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction)
{
    (void)input; (void)target; (void)reduction;
    return nbi_error(NB_ERR_STATE, "nb_l1_loss: not implemented yet");
}

nb_tensor * nb_smooth_l1_loss(nb_tensor *input, nb_tensor *target, double beta, nb_reduction reduction)
{
    (void)input; (void)target; (void)beta; (void)reduction;
    return nbi_error(NB_ERR_STATE, "nb_smooth_l1_loss: not implemented yet");
}

nb_tensor * nb_huber_loss(nb_tensor *input, nb_tensor *target, double delta, nb_reduction reduction)
{
    (void)input; (void)target; (void)delta; (void)reduction;
    return nbi_error(NB_ERR_STATE, "nb_huber_loss: not implemented yet");
}

nb_tensor * nb_bce_loss(nb_tensor *probs, nb_tensor *target, nb_tensor *weight, nb_reduction reduction)
{
    (void)probs; (void)target; (void)weight; (void)reduction;
    return nbi_error(NB_ERR_STATE, "nb_bce_loss: not implemented yet");
}

nb_tensor * nb_bce_with_logits_loss(nb_tensor *logits, nb_tensor *target, nb_tensor *weight, nb_tensor *pos_weight, nb_reduction reduction)
{
    (void)logits; (void)target; (void)weight; (void)pos_weight; (void)reduction;
    return nbi_error(NB_ERR_STATE, "nb_bce_with_logits_loss: not implemented yet");
}

nb_cross_entropy_options nb_cross_entropy_defaults(void)
{
    
    nb_cross_entropy_options r_ = {0};
    nbi_error(NB_ERR_STATE, "nb_cross_entropy_defaults: not implemented yet");
    return r_;
}

nb_tensor * nb_cross_entropy(nb_tensor *logits, nb_tensor *target, const nb_cross_entropy_options *options)
{
    (void)logits; (void)target; (void)options;
    return nbi_error(NB_ERR_STATE, "nb_cross_entropy: not implemented yet");
}

nb_tensor * nb_nll_loss(nb_tensor *log_probs, nb_tensor *target, const nb_cross_entropy_options *options)
{
    (void)log_probs; (void)target; (void)options;
    return nbi_error(NB_ERR_STATE, "nb_nll_loss: not implemented yet");
}

nb_tensor * nb_l1_penalty(const nb_param_list *params, bool include_frozen)
{
    (void)params; (void)include_frozen;
    return nbi_error(NB_ERR_STATE, "nb_l1_penalty: not implemented yet");
}

nb_tensor * nb_l2_penalty(const nb_param_list *params, bool include_frozen)
{
    (void)params; (void)include_frozen;
    return nbi_error(NB_ERR_STATE, "nb_l2_penalty: not implemented yet");
}
