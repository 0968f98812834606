/* Stubs until this op family lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_autograd.h"

nb_tensor * nb_reshape(nb_tensor *t, int ndim, const int64_t *shape)
{
    (void)t; (void)ndim; (void)shape;
    return nbi_error(NB_ERR_STATE, "nb_reshape: not implemented yet");
}

nb_tensor * nb_view(nb_tensor *t, int ndim, const int64_t *shape)
{
    (void)t; (void)ndim; (void)shape;
    return nbi_error(NB_ERR_STATE, "nb_view: not implemented yet");
}

nb_tensor * nb_flatten(nb_tensor *t, int start_dim, int end_dim)
{
    (void)t; (void)start_dim; (void)end_dim;
    return nbi_error(NB_ERR_STATE, "nb_flatten: not implemented yet");
}

nb_tensor * nb_transpose(nb_tensor *t, int d0, int d1)
{
    (void)t; (void)d0; (void)d1;
    return nbi_error(NB_ERR_STATE, "nb_transpose: not implemented yet");
}

nb_tensor * nb_permute(nb_tensor *t, int ndims, const int *dims)
{
    (void)t; (void)ndims; (void)dims;
    return nbi_error(NB_ERR_STATE, "nb_permute: not implemented yet");
}

nb_tensor * nb_squeeze(nb_tensor *t, int dim)
{
    (void)t; (void)dim;
    return nbi_error(NB_ERR_STATE, "nb_squeeze: not implemented yet");
}

nb_tensor * nb_unsqueeze(nb_tensor *t, int dim)
{
    (void)t; (void)dim;
    return nbi_error(NB_ERR_STATE, "nb_unsqueeze: not implemented yet");
}

nb_tensor * nb_narrow(nb_tensor *t, int dim, int64_t start, int64_t length)
{
    (void)t; (void)dim; (void)start; (void)length;
    return nbi_error(NB_ERR_STATE, "nb_narrow: not implemented yet");
}

nb_tensor * nb_slice(nb_tensor *t, int dim, int64_t start, int64_t end, int64_t step)
{
    (void)t; (void)dim; (void)start; (void)end; (void)step;
    return nbi_error(NB_ERR_STATE, "nb_slice: not implemented yet");
}

nb_tensor * nb_cat(int n, nb_tensor *const *tensors, int dim)
{
    (void)n; (void)tensors; (void)dim;
    return nbi_error(NB_ERR_STATE, "nb_cat: not implemented yet");
}

nb_tensor * nb_stack(int n, nb_tensor *const *tensors, int dim)
{
    (void)n; (void)tensors; (void)dim;
    return nbi_error(NB_ERR_STATE, "nb_stack: not implemented yet");
}
