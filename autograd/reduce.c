/* Reductions: sum, mean, var, std, logsumexp over a list of dims; max/min over everything; max/min, argmax
 * and argmin along one dim.
 *
 * Every reduction kernel writes into the "keepdim layout" (the input's ndim, size 1 on reduced dims); when
 * keepdim is false the result is a tensor without those dims and the kernel gets a view of it. Backward
 * formulas bring a gradient of the result's shape back to the input's with expand_reduced, a view with stride 0
 * along the reduced dims whose own backward is nb_sum over the same dims, so gradients of any order work
 * without a reshape op.
 *
 * Dtypes: nb_sum takes any dtype (bool and i64 sum to i64, as in PyTorch); mean, var, std and logsumexp need
 * f32 or f64 (an integer tensor is an error: convert it with nb_to_dtype first); max/min/argmax/argmin take any.
 */
#include "autograd_internal.h"
#include "kernels_reduce.h"

#include <math.h>
#include <string.h>

/* Which dims a reduction removes, and the shapes that follow. */
typedef struct plan {
    unsigned mask; /* bit d set: input dim d is reduced */
    bool keepdim;
    int out_ndim;
    int64_t out_shape[NB_MAX_DIMS];
    int64_t keep_shape[NB_MAX_DIMS]; /* input's ndim, 1 on the reduced dims */
    int64_t count;                   /* input elements per output element */
} plan;

/* What a recorded reduction remembers for its backward. */
typedef struct reduce_ctx {
    unsigned mask;
    bool keepdim;
    int64_t count;
    int64_t correction; /* var and std: the divisor is count - correction */
} reduce_ctx;

static void finish_plan(const nbi_tensor *t, plan *p)
{
    p->out_ndim = 0;
    p->count = 1;
    for (int d = 0; d < t->ndim; d++) {
        bool reduced = p->mask & (1u << d);
        p->keep_shape[d] = reduced ? 1 : t->shape[d];
        if (reduced) p->count *= t->shape[d];
        if (!reduced || p->keepdim) p->out_shape[p->out_ndim++] = p->keep_shape[d];
    }
}

/* A dim of t, possibly negative, checked. A 0-d tensor accepts 0 and -1 (as in PyTorch), returned as 0. */
static int check_dim(const char *fn, const nbi_tensor *t, int dim)
{
    int range = t->ndim ? t->ndim : 1;
    int d = nbi_wrap_dim(dim, range);
    if (d < 0) {
        char b[NBI_SHAPE_STR];
        nbi_error(NB_ERR_ARG, "%s: dim %d is out of range for shape %s (expected %d to %d)", fn, dim,
                  nbi_shape_fmt(b, t->ndim, t->shape), -range, range - 1);
    }
    return d;
}

static bool make_plan(const char *fn, const nbi_tensor *t, int ndims, const int *dims, bool keepdim, plan *p)
{
    char b[NBI_SHAPE_STR];
    memset(p, 0, sizeof *p);
    p->keepdim = keepdim;
    if (ndims < 0) {
        nbi_error(NB_ERR_ARG, "%s: ndims must be >= 0 (0 reduces every dim), got %d", fn, ndims);
        return false;
    }
    if (ndims > 0 && !dims) {
        nbi_error(NB_ERR_NULL, "%s: dims is NULL but ndims is %d", fn, ndims);
        return false;
    }
    if (ndims == 0) p->mask = (1u << t->ndim) - 1u;
    unsigned seen = 0;
    for (int i = 0; i < ndims; i++) {
        int d = check_dim(fn, t, dims[i]);
        if (d < 0) return false;
        if (seen & (1u << d)) {
            nbi_error(NB_ERR_ARG, "%s: dim %d appears more than once in the dims list (shape %s)", fn, dims[i],
                      nbi_shape_fmt(b, t->ndim, t->shape));
            return false;
        }
        seen |= 1u << d;
    }
    if (ndims > 0) p->mask = t->ndim ? seen : 0u; /* reducing a 0-d tensor over "dim 0" leaves it as it is */
    finish_plan(t, p);
    return true;
}

/* The list of dims in mask, for calling nb_sum/nb_mean in a backward. */
static int mask_dims(unsigned mask, int ndim, int *dims)
{
    int n = 0;
    for (int d = 0; d < ndim; d++)
        if (mask & (1u << d)) dims[n++] = d;
    return n;
}

/* A new result tensor of the plan's shape and the view of it in the keepdim layout the kernels write into
 * (the result itself when keepdim is true). */
static nbi_tensor *new_result(const char *fn, const nbi_tensor *t, const plan *p, nb_dtype dtype, nbi_tensor **kview)
{
    nbi_tensor *out = nbi_tensor_new(dtype, p->out_ndim, p->out_shape, fn);
    *kview = out;
    if (out && out->ndim != t->ndim) {
        *kview = nbi_tensor_new_view(out->storage, dtype, t->ndim, p->keep_shape, NULL, 0, fn);
        if (!*kview) {
            nbi_kill(out);
            return NULL;
        }
    }
    return out;
}

static void drop_view(nbi_tensor *kview, nbi_tensor *out)
{
    if (kview && kview != out) nbi_kill(kview);
}

static bool require_float(const char *fn, const nbi_tensor *t)
{
    if (nbi_is_float(t->dtype)) return true;
    char b[NBI_SHAPE_STR];
    nbi_error(NB_ERR_DTYPE, "%s: needs an f32 or f64 tensor, got %s of shape %s (convert it with nb_to_dtype)", fn,
              nb_dtype_name(t->dtype), nbi_shape_fmt(b, t->ndim, t->shape));
    return false;
}

/* ------------------------------------------------------------------------------------------------
 * expand_reduced: g (a reduction's result shape) seen with `like`'s shape, repeated along the dims in mask.
 * The adjoint of a sum over those dims, and the way every backward here returns to the input's shape.
 * ---------------------------------------------------------------------------------------------- */
typedef struct expand_ctx {
    unsigned mask;
    bool keepdim;
} expand_ctx;

static void expand_reduced_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const expand_ctx *c = nbi_ctx(out);
    int dims[NB_MAX_DIMS];
    int n = mask_dims(c->mask, out->ndim, dims);
    /* ndims = 0 would mean "all dims": with nothing reduced the gradient passes as it is */
    gin[0] = n ? nb_sum(g, n, dims, c->keepdim) : g;
}
static const nbi_op expand_reduced_op = {"expand_reduced", expand_reduced_backward,
                              .derivative = "grad x = g summed over the repeated dims"};

static nb_tensor *expand_reduced(nb_tensor *gh, const nbi_tensor *like, unsigned mask, bool keepdim)
{
    const char *fn = "expand_reduced";
    nbi_tensor *g = nbi_resolve(gh, fn, "gradient");
    if (!g) return NULL;
    int64_t stride[NB_MAX_DIMS];
    int j = 0;
    for (int d = 0; d < like->ndim; d++) {
        if (mask & (1u << d)) {
            stride[d] = 0;
            if (keepdim) j++;
        } else {
            stride[d] = j < g->ndim ? g->stride[j] : 0;
            j++;
        }
    }
    if (j != g->ndim) {
        char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: gradient of shape %s does not match a reduction of %s", fn,
                         nbi_shape_fmt(a, g->ndim, g->shape), nbi_shape_fmt(b, like->ndim, like->shape));
    }
    nbi_tensor *view = nbi_tensor_new_view(g->storage, g->dtype, like->ndim, like->shape, stride, g->offset, fn);
    expand_ctx c = {mask, keepdim};
    return nbi_record(view, &expand_reduced_op, 1, &g, &c, sizeof c);
}

/* g brought back to input 0's shape. */
static nb_tensor *grad_to_input(nbi_tensor *out, nb_tensor *g)
{
    const reduce_ctx *c = nbi_ctx(out);
    return expand_reduced(g, out->inputs[0], c->mask, c->keepdim);
}

/* ------------------------------------------------------------------------------------------------
 * sum, mean, var, std, logsumexp
 * ---------------------------------------------------------------------------------------------- */
typedef enum reduce_kind { SUM, MEAN, VAR, STD, LOGSUMEXP } reduce_kind;

static void sum_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin) { gin[0] = grad_to_input(out, g); }

static void mean_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const reduce_ctx *c = nbi_ctx(out);
    gin[0] = grad_to_input(out, nb_div_scalar(g, (double)c->count));
}

/* d var / dx = 2 (x - mean) / (N - correction), times the incoming gradient gv (of the result's shape). */
static nb_tensor *var_grad(nbi_tensor *out, nb_tensor *gv)
{
    const reduce_ctx *c = nbi_ctx(out);
    nb_tensor *x = nbi_in(out, 0);
    int dims[NB_MAX_DIMS];
    int n = mask_dims(c->mask, out->inputs[0]->ndim, dims);
    nb_tensor *centered = n ? nb_sub(x, nb_mean(x, n, dims, true)) : nb_mul_scalar(x, 0.0);
    double divisor = c->count - c->correction > 0 ? (double)(c->count - c->correction) : 0.0;
    return nb_mul(grad_to_input(out, nb_mul_scalar(gv, 2.0 / divisor)), centered);
}

static void var_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin) { gin[0] = var_grad(out, g); }

/* d std = d var / (2 std); where std = 0 the gradient is taken as 0 (as PyTorch does) instead of inf/NaN. */
static void std_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *s = nbi_handle(out);
    nb_no_grad_begin();
    nb_tensor *zero = nb_to_dtype(nb_eq_scalar(s, 0.0), out->dtype);
    nb_tensor *nonzero = nb_rsub_scalar(1.0, zero);
    nb_no_grad_end();
    nb_tensor *gv = nb_mul(nb_div(g, nb_add(nb_mul_scalar(s, 2.0), zero)), nonzero);
    gin[0] = var_grad(out, gv);
}

/* d logsumexp / dx = exp(x - logsumexp), i.e. the softmax over the reduced dims */
static void logsumexp_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *lse = grad_to_input(out, nbi_handle(out));
    gin[0] = nb_mul(grad_to_input(out, g), nb_exp(nb_sub(nbi_in(out, 0), lse)));
}

static const nbi_op sum_op = {"sum", sum_backward,
                              .derivative = "grad x = g repeated over the reduced dims (d out/d x_i = 1)"};
static const nbi_op mean_op = {"mean", mean_backward,
                              .derivative = "grad x = g / n repeated over the reduced dims (d out/d x_i = 1/n)"};
static const nbi_op var_op = {"var", var_backward, .derivative = "grad x = g 2 (x - mean(x)) / (n - correction)"};
static const nbi_op std_op = {"std", std_backward,
                              .derivative = "grad x = g (x - mean(x)) / ((n - correction) out) (0 where out = 0)"};
static const nbi_op logsumexp_op = {"logsumexp", logsumexp_backward,
                              .derivative = "grad x = g e^(x - out) = g softmax(x)"};

static bool run_kernel(reduce_kind kind, nbi_tensor *out, const nbi_tensor *in, int64_t correction)
{
    switch (kind) {
    case SUM: return nbi_reduce_sum(out, in);
    case MEAN: return nbi_reduce_mean(out, in);
    case VAR: return nbi_reduce_var(out, in, correction, false);
    case STD: return nbi_reduce_var(out, in, correction, true);
    case LOGSUMEXP: return nbi_reduce_logsumexp(out, in);
    }
    return false;
}

static nb_tensor *reduce(const char *fn, reduce_kind kind, nb_tensor *h, int ndims, const int *dims, bool unbiased,
                         bool keepdim)
{
    static const nbi_op *const ops[] = {[SUM] = &sum_op, [MEAN] = &mean_op, [VAR] = &var_op, [STD] = &std_op,
                                        [LOGSUMEXP] = &logsumexp_op};
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    plan p;
    if (!t || !make_plan(fn, t, ndims, dims, keepdim, &p)) return NULL;
    if (kind != SUM && !require_float(fn, t)) return NULL;
    nb_dtype dt = nbi_is_float(t->dtype) ? t->dtype : NB_I64;
    nbi_tensor *kview, *out = new_result(fn, t, &p, dt, &kview);
    if (!out) return NULL;
    nbi_tensor *src = t;
    if (t->dtype == NB_BOOL) src = nbi_contiguous_copy(t, NB_I64, fn); /* sums of bools count them */
    reduce_ctx c = {p.mask, keepdim, p.count, unbiased ? 1 : 0};
    bool ok = src && run_kernel(kind, kview, src, c.correction);
    drop_view(kview, out);
    nbi_drop_temp(src, t);
    if (!ok) {
        nbi_kill(out);
        return NULL;
    }
    return nbi_record(out, ops[kind], 1, &t, &c, sizeof c);
}

nb_tensor *nb_sum(nb_tensor *t, int ndims, const int *dims, bool keepdim)
{
    return reduce("nb_sum", SUM, t, ndims, dims, false, keepdim);
}
nb_tensor *nb_mean(nb_tensor *t, int ndims, const int *dims, bool keepdim)
{
    return reduce("nb_mean", MEAN, t, ndims, dims, false, keepdim);
}
nb_tensor *nb_var(nb_tensor *t, int ndims, const int *dims, bool unbiased, bool keepdim)
{
    return reduce("nb_var", VAR, t, ndims, dims, unbiased, keepdim);
}
nb_tensor *nb_std(nb_tensor *t, int ndims, const int *dims, bool unbiased, bool keepdim)
{
    return reduce("nb_std", STD, t, ndims, dims, unbiased, keepdim);
}
nb_tensor *nb_logsumexp(nb_tensor *t, int ndims, const int *dims, bool keepdim)
{
    return reduce("nb_logsumexp", LOGSUMEXP, t, ndims, dims, false, keepdim);
}

/* ------------------------------------------------------------------------------------------------
 * max and min over all elements: the gradient is shared evenly by the elements equal to the result
 * ---------------------------------------------------------------------------------------------- */
/* A NaN result comes from the NaNs of x, which eq does not match: they are the hits then, as in PyTorch
 * (otherwise the share would be 0/0 everywhere). */
static void extreme_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *x = nbi_in(out, 0), *y = nbi_handle(out);
    nb_no_grad_begin();
    nb_tensor *nan_hits = nb_mul(nb_ne(x, x), nb_ne(y, y));
    nb_tensor *hits = nb_to_dtype(nb_add(nb_eq(x, y), nan_hits), out->dtype);
    nb_tensor *share = nb_div(hits, nb_sum(hits, 0, NULL, false));
    nb_no_grad_end();
    gin[0] = nb_mul(g, share);
}
static const nbi_op max_op = {"max", extreme_backward,
                              .derivative = "grad x = g shared evenly by the elements equal to out (the NaNs if out is NaN)"};
static const nbi_op min_op = {"min", extreme_backward,
                              .derivative = "grad x = g shared evenly by the elements equal to out (the NaNs if out is NaN)"};

static nb_tensor *extreme(const char *fn, nb_tensor *h, bool is_max)
{
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    if (t->numel == 0) {
        char b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: the tensor of shape %s is empty and has no %s (use nb_%s_dim)", fn,
                         nbi_shape_fmt(b, t->ndim, t->shape), is_max ? "maximum" : "minimum", is_max ? "max" : "min");
    }
    plan p;
    make_plan(fn, t, 0, NULL, false, &p);
    nbi_tensor *kview, *out = new_result(fn, t, &p, t->dtype, &kview);
    if (!out) return NULL;
    nbi_reduce_extreme(kview, t, is_max);
    drop_view(kview, out);
    return nbi_record(out, is_max ? &max_op : &min_op, 1, &t, NULL, 0);
}

nb_tensor *nb_max(nb_tensor *t) { return extreme("nb_max", t, true); }
nb_tensor *nb_min(nb_tensor *t) { return extreme("nb_min", t, false); }

/* ------------------------------------------------------------------------------------------------
 * max/min along a dim with the index of the first extremal element; argmax/argmin
 * ---------------------------------------------------------------------------------------------- */
typedef struct dim_ctx {
    int dim;
    bool keepdim;
} dim_ctx;

/* The gradient goes to the recorded index only: g repeated along dim, times a one-hot mask (a constant) that
 * compares each position along dim with the index. Input 1 is the index tensor in the keepdim layout. */
static void extreme_dim_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const dim_ctx *c = nbi_ctx(out);
    const nbi_tensor *x = out->inputs[0];
    int64_t n = x->ndim ? x->shape[c->dim] : 1, shape[NB_MAX_DIMS], stride[NB_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        shape[d] = d == c->dim ? n : 1;
        stride[d] = d == c->dim ? 1 : 0;
    }
    nb_no_grad_begin();
    nbi_tensor *positions = nbi_peek(nb_arange(0, (double)n, 1, NB_I64));
    nb_tensor *onehot = NULL;
    if (positions) {
        nbi_tensor *along = nbi_tensor_new_view(positions->storage, NB_I64, x->ndim, shape, stride, 0,
                                                "nb_max_dim backward");
        onehot = nb_to_dtype(nb_eq(nbi_handle(along), nbi_in(out, 1)), out->dtype);
    }
    nb_no_grad_end();
    if (!onehot) return; /* the error is recorded; the engine stops */
    unsigned mask = x->ndim ? 1u << c->dim : 0u;
    gin[0] = nb_mul(expand_reduced(g, x, mask, c->keepdim), onehot);
}
static const nbi_op max_dim_op = {"max_dim", extreme_dim_backward,
                              .derivative = "grad x = g at the position of the max along dim, 0 elsewhere",
                              .inputs = "x, indices"};
static const nbi_op min_dim_op = {"min_dim", extreme_dim_backward,
                              .derivative = "grad x = g at the position of the min along dim, 0 elsewhere",
                              .inputs = "x, indices"};

/* The values along dim (or, for argmax/argmin, with values_wanted false, the indices) and the indices in
 * *indices when asked for. */
static nb_tensor *extreme_dim(const char *fn, nb_tensor *h, int dim, bool keepdim, bool is_max, bool values_wanted,
                              nb_tensor **indices)
{
    if (indices) *indices = NULL;
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    int d = check_dim(fn, t, dim);
    if (d < 0) return NULL;
    if (t->ndim && t->shape[d] == 0) {
        char b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: dim %d of shape %s has size 0: an empty row has no %s", fn, dim,
                         nbi_shape_fmt(b, t->ndim, t->shape), is_max ? "maximum" : "minimum");
    }
    plan p;
    make_plan(fn, t, 1, &d, keepdim, &p);
    nbi_tensor *ikview, *idx = new_result(fn, t, &p, NB_I64, &ikview);
    if (!idx) return NULL;
    if (!values_wanted) {
        nbi_reduce_arg(NULL, ikview, t, d, is_max);
        drop_view(ikview, idx);
        return nbi_handle(idx);
    }
    nbi_tensor *vkview, *values = new_result(fn, t, &p, t->dtype, &vkview);
    nb_tensor *result = NULL;
    if (values) {
        nbi_reduce_arg(vkview, ikview, t, d, is_max);
        drop_view(vkview, values);
        /* backward needs the indices: the record keeps (the keepdim view of) them whether or not the caller does */
        dim_ctx c = {d, keepdim};
        nbi_tensor *in[2] = {t, ikview};
        result = nbi_record(values, is_max ? &max_dim_op : &min_dim_op, 2, in, &c, sizeof c);
    }
    drop_view(ikview, idx);
    if (result && indices) *indices = nbi_handle(idx);
    else nbi_kill(idx);
    return result;
}

nb_tensor *nb_max_dim(nb_tensor *t, int dim, bool keepdim, nb_tensor **indices)
{
    return extreme_dim("nb_max_dim", t, dim, keepdim, true, true, indices);
}
nb_tensor *nb_min_dim(nb_tensor *t, int dim, bool keepdim, nb_tensor **indices)
{
    return extreme_dim("nb_min_dim", t, dim, keepdim, false, true, indices);
}
nb_tensor *nb_argmax(nb_tensor *t, int dim, bool keepdim)
{
    return extreme_dim("nb_argmax", t, dim, keepdim, true, false, NULL);
}
nb_tensor *nb_argmin(nb_tensor *t, int dim, bool keepdim)
{
    return extreme_dim("nb_argmin", t, dim, keepdim, false, false, NULL);
}
