/* Stubs until this op family lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_autograd.h"

nb_tensor * nb_sum(nb_tensor *t, int ndims, const int *dims, bool keepdim)
{
    (void)t; (void)ndims; (void)dims; (void)keepdim;
    return nbi_error(NB_ERR_STATE, "nb_sum: not implemented yet");
}

nb_tensor * nb_mean(nb_tensor *t, int ndims, const int *dims, bool keepdim)
{
    (void)t; (void)ndims; (void)dims; (void)keepdim;
    return nbi_error(NB_ERR_STATE, "nb_mean: not implemented yet");
}

nb_tensor * nb_var(nb_tensor *t, int ndims, const int *dims, bool unbiased, bool keepdim)
{
    (void)t; (void)ndims; (void)dims; (void)unbiased; (void)keepdim;
    return nbi_error(NB_ERR_STATE, "nb_var: not implemented yet");
}

nb_tensor * nb_std(nb_tensor *t, int ndims, const int *dims, bool unbiased, bool keepdim)
{
    (void)t; (void)ndims; (void)dims; (void)unbiased; (void)keepdim;
    return nbi_error(NB_ERR_STATE, "nb_std: not implemented yet");
}

nb_tensor * nb_logsumexp(nb_tensor *t, int ndims, const int *dims, bool keepdim)
{
    (void)t; (void)ndims; (void)dims; (void)keepdim;
    return nbi_error(NB_ERR_STATE, "nb_logsumexp: not implemented yet");
}

nb_tensor * nb_max(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_max: not implemented yet");
}

nb_tensor * nb_min(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_min: not implemented yet");
}

nb_tensor * nb_max_dim(nb_tensor *t, int dim, bool keepdim, nb_tensor **indices)
{
    (void)t; (void)dim; (void)keepdim; (void)indices;
    return nbi_error(NB_ERR_STATE, "nb_max_dim: not implemented yet");
}

nb_tensor * nb_min_dim(nb_tensor *t, int dim, bool keepdim, nb_tensor **indices)
{
    (void)t; (void)dim; (void)keepdim; (void)indices;
    return nbi_error(NB_ERR_STATE, "nb_min_dim: not implemented yet");
}

nb_tensor * nb_argmax(nb_tensor *t, int dim, bool keepdim)
{
    (void)t; (void)dim; (void)keepdim;
    return nbi_error(NB_ERR_STATE, "nb_argmax: not implemented yet");
}

nb_tensor * nb_argmin(nb_tensor *t, int dim, bool keepdim)
{
    (void)t; (void)dim; (void)keepdim;
    return nbi_error(NB_ERR_STATE, "nb_argmin: not implemented yet");
}
