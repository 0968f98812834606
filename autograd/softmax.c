/* softmax and log_softmax along one dim. The forward is one row kernel (max, sum of exponentials, normalize);
 * both backwards are written with the result itself, y = softmax(x) or log_softmax(x):
 *     softmax:      dx = y (g - sum(g y))
 *     log_softmax:  dx = g - exp(y) sum(g)
 * with the sums along dim (keepdim, so they broadcast back). */
#include "autograd_internal.h"
#include "kernels_reduce.h"

typedef struct softmax_ctx {
    int dim;
} softmax_ctx;

static void softmax_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const softmax_ctx *c = nbi_ctx(out);
    nb_tensor *y = nbi_handle(out);
    gin[0] = nb_mul(y, nb_sub(g, nb_sum(nb_mul(g, y), 1, &c->dim, true)));
}

static void log_softmax_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const softmax_ctx *c = nbi_ctx(out);
    gin[0] = nb_sub(g, nb_mul(nb_exp(nbi_handle(out)), nb_sum(g, 1, &c->dim, true)));
}

static const nbi_op softmax_op = {"softmax", softmax_backward, .derivative = "grad x = out (g - sum(g out)) along dim"};
static const nbi_op log_softmax_op = {"log_softmax", log_softmax_backward,
                              .derivative = "grad x = g - e^out sum(g) along dim"};

static nb_tensor *softmax(const char *fn, nb_tensor *h, int dim, bool log)
{
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    char b[NBI_SHAPE_STR];
    if (!nbi_is_float(t->dtype))
        return nbi_error(NB_ERR_DTYPE, "%s: needs an f32 or f64 tensor, got %s of shape %s (convert it with nb_to_dtype)",
                         fn, nb_dtype_name(t->dtype), nbi_shape_fmt(b, t->ndim, t->shape));
    /* a 0-d tensor is one row of one element, along dim 0 or -1 as in PyTorch */
    int range = t->ndim ? t->ndim : 1;
    int d = nbi_wrap_dim(dim, range);
    if (d < 0)
        return nbi_error(NB_ERR_ARG, "%s: dim %d is out of range for shape %s (expected %d to %d)", fn, dim,
                         nbi_shape_fmt(b, t->ndim, t->shape), -range, range - 1);
    nbi_tensor *out = nbi_tensor_new_like(t, t->dtype, fn);
    if (!out) return NULL;
    nbi_softmax_kernel(out, t, d, log);
    softmax_ctx c = {d};
    return nbi_record(out, log ? &log_softmax_op : &softmax_op, 1, &t, &c, sizeof c);
}

nb_tensor *nb_softmax(nb_tensor *t, int dim) { return softmax("nb_softmax", t, dim, false); }
nb_tensor *nb_log_softmax(nb_tensor *t, int dim) { return softmax("nb_log_softmax", t, dim, true); }
