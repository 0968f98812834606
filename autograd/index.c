/* Stubs until this op family lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_autograd.h"

nb_tensor * nb_index_select(nb_tensor *t, int dim, nb_tensor *index)
{
    (void)t; (void)dim; (void)index;
    return nbi_error(NB_ERR_STATE, "nb_index_select: not implemented yet");
}

nb_tensor * nb_gather(nb_tensor *t, int dim, nb_tensor *index)
{
    (void)t; (void)dim; (void)index;
    return nbi_error(NB_ERR_STATE, "nb_gather: not implemented yet");
}

nb_tensor * nb_scatter_add(nb_tensor *t, int dim, nb_tensor *index, nb_tensor *src)
{
    (void)t; (void)dim; (void)index; (void)src;
    return nbi_error(NB_ERR_STATE, "nb_scatter_add: not implemented yet");
}

nb_tensor * nb_embedding(nb_tensor *weight, nb_tensor *indices)
{
    (void)weight; (void)indices;
    return nbi_error(NB_ERR_STATE, "nb_embedding: not implemented yet");
}

nb_tensor * nb_where(nb_tensor *cond, nb_tensor *a, nb_tensor *b)
{
    (void)cond; (void)a; (void)b;
    return nbi_error(NB_ERR_STATE, "nb_where: not implemented yet");
}

nb_tensor * nb_masked_fill(nb_tensor *t, nb_tensor *mask, double value)
{
    (void)t; (void)mask; (void)value;
    return nbi_error(NB_ERR_STATE, "nb_masked_fill: not implemented yet");
}
