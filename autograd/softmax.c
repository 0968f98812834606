/* Stubs until this op family lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_autograd.h"

nb_tensor * nb_softmax(nb_tensor *t, int dim)
{
    (void)t; (void)dim;
    return nbi_error(NB_ERR_STATE, "nb_softmax: not implemented yet");
}

nb_tensor * nb_log_softmax(nb_tensor *t, int dim)
{
    (void)t; (void)dim;
    return nbi_error(NB_ERR_STATE, "nb_log_softmax: not implemented yet");
}
