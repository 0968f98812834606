/* Broadcasting as ops: expand (a view) and sum_to (its adjoint). Each is the other's backward. */
#include "autograd_internal.h"
#include "kernels_reduce.h"

#include <string.h>

/* ---- sum_to: sums t down to `shape`, the inverse of broadcasting ---- */
static void sum_to_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const nbi_tensor *in = out->inputs[0];
    gin[0] = nb_expand(g, in->ndim, in->shape);
}
static const nbi_op sum_to_op = {"sum_to", sum_to_backward, .derivative = "grad x = g expanded back to the shape of x"};

nb_tensor *nb_sum_to(nb_tensor *h, int ndim, const int64_t *shape)
{
    const char *fn = "nb_sum_to";
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    if (ndim < 0 || ndim > t->ndim || (ndim && !shape)) {
        char a[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: cannot sum shape %s down to %d dims", fn,
                         nbi_shape_fmt(a, t->ndim, t->shape), ndim);
    }
    int64_t kshape[NB_MAX_DIMS]; /* target shape with t's ndim (leading 1s) */
    int lead = t->ndim - ndim;
    bool same = lead == 0;
    for (int d = 0; d < t->ndim; d++) {
        kshape[d] = d < lead ? 1 : shape[d - lead];
        if (kshape[d] != t->shape[d] && kshape[d] != 1) {
            char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
            return nbi_error(NB_ERR_SHAPE, "%s: shape %s does not broadcast to %s", fn, nbi_shape_fmt(b, ndim, shape),
                             nbi_shape_fmt(a, t->ndim, t->shape));
        }
        if (kshape[d] != t->shape[d]) same = false;
    }
    if (same) return nbi_alias(t, fn);
    nbi_tensor *out = nbi_tensor_new(t->dtype == NB_BOOL ? NB_I64 : t->dtype, ndim, shape, fn);
    if (!out) return NULL;
    nbi_tensor *src = t;
    if (t->dtype == NB_BOOL && !(src = nbi_contiguous_copy(t, NB_I64, fn))) goto fail;
    nbi_tensor *kview = nbi_tensor_new_view(out->storage, out->dtype, t->ndim, kshape, NULL, 0, fn);
    if (!kview) goto fail;
    bool ok = nbi_reduce_sum(kview, src);
    nbi_kill(kview);
    nbi_drop_temp(src, t);
    if (!ok) goto fail;
    return nbi_record(out, &sum_to_op, 1, &t, NULL, 0);
fail:
    nbi_drop_temp(src, t);
    nbi_kill(out);
    return NULL;
}

/* ---- expand: a view with stride 0 along broadcast dims ---- */
static void expand_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    (void)out;
    const nbi_tensor *in = out->inputs[0];
    gin[0] = nb_sum_to(g, in->ndim, in->shape);
}
static const nbi_op expand_op = {"expand", expand_backward, .derivative = "grad x = g summed over the expanded dims"};

nb_tensor *nb_expand(nb_tensor *h, int ndim, const int64_t *shape)
{
    const char *fn = "nb_expand";
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
    if (ndim < t->ndim || ndim > NB_MAX_DIMS || (ndim && !shape))
        return nbi_error(NB_ERR_SHAPE, "%s: cannot expand shape %s to %d dims", fn,
                         nbi_shape_fmt(a, t->ndim, t->shape), ndim);
    int64_t out_shape[NB_MAX_DIMS], stride[NB_MAX_DIMS];
    int lead = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        int64_t want = shape[d];
        if (d < lead) {
            if (want < 0)
                return nbi_error(NB_ERR_SHAPE, "%s: size -1 is not allowed for a new leading dim (target %s)", fn,
                                 nbi_shape_fmt(b, ndim, shape));
            out_shape[d] = want;
            stride[d] = 0;
            continue;
        }
        int64_t have = t->shape[d - lead];
        if (want == -1) want = have;
        if (want != have && have != 1)
            return nbi_error(NB_ERR_SHAPE, "%s: shape %s cannot be expanded to %s: size %lld at dim %d is not 1", fn,
                             nbi_shape_fmt(a, t->ndim, t->shape), nbi_shape_fmt(b, ndim, shape), (long long)have,
                             d - lead);
        if (want < 0)
            return nbi_error(NB_ERR_SHAPE, "%s: negative size in target shape %s", fn, nbi_shape_fmt(b, ndim, shape));
        out_shape[d] = want;
        stride[d] = want == have ? t->stride[d - lead] : 0;
    }
    nbi_tensor *out = nbi_tensor_new_view(t->storage, t->dtype, ndim, out_shape, stride, t->offset, fn);
    return nbi_record(out, &expand_op, 1, &t, NULL, 0);
}
