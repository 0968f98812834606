/* Copies and conversions: to_dtype, clone, contiguous, and the internal alias op. */
#include "autograd_internal.h"

/* ---- alias: a new handle on the same data; gradient passes through unchanged ---- */
static void alias_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    (void)out;
    gin[0] = g;
}
static const nbi_op alias_op = {"alias", alias_backward, .derivative = "d out/d x = 1", .elementwise = true};

nb_tensor *nbi_alias(nbi_tensor *t, const char *fn)
{
    nbi_tensor *out = nbi_tensor_new_view(t->storage, t->dtype, t->ndim, t->shape, t->stride, t->offset, fn);
    return nbi_record(out, &alias_op, 1, &t, NULL, 0);
}

/* ---- to_dtype ---- */
static void to_dtype_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    gin[0] = nb_to_dtype(g, out->inputs[0]->dtype);
}
static const nbi_op to_dtype_op = {"to_dtype", to_dtype_backward,
                              .derivative = "d out/d x = 1 (the gradient is converted back to the dtype of x)",
                              .elementwise = true};

nb_tensor *nb_to_dtype(nb_tensor *h, nb_dtype dtype)
{
    nbi_tensor *t = nbi_resolve(h, "nb_to_dtype", "tensor");
    if (!t) return NULL;
    if (!nbi_dtype_valid(dtype)) return nbi_error(NB_ERR_DTYPE, "nb_to_dtype: invalid dtype %d", (int)dtype);
    nbi_tensor *out = nbi_contiguous_copy(t, dtype, "nb_to_dtype");
    /* Gradients flow between float dtypes only; a conversion to an integer type ends the graph. */
    if (!nbi_is_float(dtype)) return nbi_handle(out);
    return nbi_record(out, &to_dtype_op, 1, &t, NULL, 0);
}

/* ---- clone and contiguous ---- */
static const nbi_op clone_op = {"clone", alias_backward, .derivative = "d out/d x = 1", .elementwise = true};
static const nbi_op contiguous_op = {"contiguous", alias_backward, .derivative = "d out/d x = 1", .elementwise = true};

nb_tensor *nb_clone(nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_clone", "tensor");
    if (!t) return NULL;
    return nbi_record(nbi_contiguous_copy(t, t->dtype, "nb_clone"), &clone_op, 1, &t, NULL, 0);
}

nb_tensor *nb_contiguous(nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_contiguous", "tensor");
    if (!t) return NULL;
    if (nbi_is_contiguous(t)) return nbi_alias(t, "nb_contiguous");
    return nbi_record(nbi_contiguous_copy(t, t->dtype, "nb_contiguous"), &contiguous_op, 1, &t, NULL, 0);
}
