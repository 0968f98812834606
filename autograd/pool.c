/* Pooling: max_pool2d (its own kernel, gradient scattered to the argmax), avg_pool2d (a depthwise convolution
 * with a constant kernel, so its derivatives are the convolution's) and adaptive_avg_pool2d (the same pooling
 * when the sizes divide, else two products with averaging matrices: window averages separate into rows and
 * columns). As in PyTorch, each one's gradient depends on x with a zero derivative (nbi_tie_to_input). */
#include "autograd_internal.h"
#include "kernels_conv.h"

typedef struct pool_ctx {
    int64_t N, C, H, W, L; /* input sizes; L = OH * OW */
} pool_ctx;

/* Ends the internal scope a composite op ran in, moving its result out. */
static nb_tensor *scoped_result(nb_tensor *r)
{
    nbi_tensor *t = nbi_peek(r);
    if (t && nbi_in_innermost_scope(t)) nbi_keep(t);
    nbi_scope_end();
    return t ? r : NULL;
}

static bool check_input(const char *fn, const nbi_tensor *x)
{
    char s[NBI_SHAPE_STR];
    if (x->ndim != 4) {
        nbi_error(NB_ERR_SHAPE, "%s: expected a 4-d input (N, C, H, W), got shape %s", fn,
                  nbi_shape_fmt(s, x->ndim, x->shape));
        return false;
    }
    if (!nbi_is_float(x->dtype)) {
        nbi_error(NB_ERR_DTYPE, "%s: needs an f32 or f64 input, got %s of shape %s", fn, nb_dtype_name(x->dtype),
                  nbi_shape_fmt(s, x->ndim, x->shape));
        return false;
    }
    return true;
}

/* Window geometry of a pooling (kernel, stride = kernel by default, padding <= kernel / 2). */
static bool pool_geometry(const char *fn, const nbi_tensor *x, const int64_t *kernel, const int64_t *stride,
                          const int64_t *padding, nbi_conv_geom *g)
{
    if (!check_input(fn, x)) return false;
    if (!kernel) {
        nbi_error(NB_ERR_NULL, "%s: kernel is NULL", fn);
        return false;
    }
    const int64_t zeros[2] = {0, 0};
    stride = stride ? stride : kernel;
    padding = padding ? padding : zeros;
    char s[NBI_SHAPE_STR];
    nbi_shape_fmt(s, x->ndim, x->shape);
    if (kernel[0] < 1 || kernel[1] < 1 || stride[0] < 1 || stride[1] < 1)
        return nbi_error(NB_ERR_ARG, "%s: kernel (%lld, %lld) and stride (%lld, %lld) must be >= 1", fn,
                         (long long)kernel[0], (long long)kernel[1], (long long)stride[0], (long long)stride[1]);
    if (padding[0] < 0 || padding[1] < 0 || padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2)
        return nbi_error(NB_ERR_ARG, "%s: padding (%lld, %lld) must be >= 0 and at most half of kernel (%lld, %lld)",
                         fn, (long long)padding[0], (long long)padding[1], (long long)kernel[0], (long long)kernel[1]);
    *g = (nbi_conv_geom){.N = x->shape[0], .C = x->shape[1], .H = x->shape[2], .W = x->shape[3], .O = x->shape[1],
                         .KH = kernel[0], .KW = kernel[1], .sh = stride[0], .sw = stride[1], .ph = padding[0],
                         .pw = padding[1], .dh = 1, .dw = 1, .groups = x->shape[1]};
    int64_t padded_h, padded_w; /* 2 p <= kernel, but kernel may be near INT64_MAX */
    if (__builtin_add_overflow(g->H, 2 * g->ph, &padded_h) || __builtin_add_overflow(g->W, 2 * g->pw, &padded_w))
        return nbi_error(NB_ERR_ARG, "%s: padding (%lld, %lld) too large for input %s (the padded size overflows)", fn,
                         (long long)g->ph, (long long)g->pw, s);
    if (padded_h < g->KH || padded_w < g->KW)
        return nbi_error(NB_ERR_SHAPE, "%s: kernel (%lld, %lld) is larger than the padded input (%lld, %lld) of input %s",
                         fn, (long long)g->KH, (long long)g->KW, (long long)padded_h, (long long)padded_w, s);
    g->OH = (padded_h - g->KH) / g->sh + 1;
    g->OW = (padded_w - g->KW) / g->sw + 1;
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * max_pool2d. Inputs recorded: x and the (constant) argmax indices.
 * ---------------------------------------------------------------------------------------------- */
/* dx = g added at each window's argmax: a scatter-add over the flattened planes, whose own derivative in g is
 * a gather (double backward). The argmax positions have zero derivative in x, and PyTorch's gradient depends on
 * x through them: it is tied to x. */
static void max_pool_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const pool_ctx *c = nbi_ctx(out);
    nb_tensor *idx = nb_reshape(nbi_in(out, 1), NB_SHAPE(c->N, c->C, c->L));
    nb_tensor *zeros = nb_zeros(NB_SHAPE(c->N, c->C, c->H * c->W), out->dtype);
    nb_tensor *gx = nb_scatter_add(zeros, 2, idx, nb_reshape(g, NB_SHAPE(c->N, c->C, c->L)));
    gin[0] = nbi_tie_to_input(nb_reshape(gx, NB_SHAPE(c->N, c->C, c->H, c->W)), out->inputs[0]);
}
static const nbi_op max_pool_op = {"max_pool2d", max_pool_backward,
                                   .derivative = "grad x = g added at each window's argmax", .inputs = "x, indices"};

nb_tensor *nb_max_pool2d(nb_tensor *input, const int64_t *kernel, const int64_t *stride, const int64_t *padding,
                         nb_tensor **indices)
{
    const char *fn = "nb_max_pool2d";
    if (indices) *indices = NULL;
    nbi_tensor *x = nbi_resolve(input, fn, "input");
    nbi_conv_geom g;
    if (!x || !pool_geometry(fn, x, kernel, stride, padding, &g)) return NULL;
    const int64_t shape[4] = {g.N, g.C, g.OH, g.OW};
    nbi_tensor *out = nbi_tensor_new(x->dtype, 4, shape, fn);
    nbi_tensor *idx = out ? nbi_tensor_new(NB_I64, 4, shape, fn) : NULL;
    if (!idx) {
        if (out) nbi_kill(out);
        return NULL;
    }
    nbi_max_pool2d_kernel(x->dtype, &g, nbi_data_ptr(out), nbi_data_ptr(idx), nbi_data_ptr(x), x->stride);
    pool_ctx c = {g.N, g.C, g.H, g.W, g.OH * g.OW};
    nbi_tensor *in[2] = {x, idx};
    nb_tensor *r = nbi_record(out, &max_pool_op, 2, in, &c, sizeof c);
    if (r && indices) *indices = nbi_handle(idx);
    else nbi_kill(idx); /* the record holds it when it needs it */
    return r;
}

/* ------------------------------------------------------------------------------------------------
 * avg_pool2d and adaptive_avg_pool2d, composed of differentiable ops
 * ---------------------------------------------------------------------------------------------- */
/* The average poolings are linear in x and their composites' backward formulas never read x, yet PyTorch's
 * gradient depends on x (with derivative 0), so that under NB_CREATE_GRAPH it can be differentiated again. They
 * run on this identity of x, whose backward ties the gradient to x. */
static void pool_input_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    gin[0] = nbi_tie_to_input(g, out->inputs[0]);
}
static const nbi_op pool_input_op = {"pool_input", pool_input_backward, .derivative = "d out/d x = 1",
                                     .elementwise = true};

static nb_tensor *pool_input(nb_tensor *input, nbi_tensor *x, const char *fn)
{
    if (!x->requires_grad || !nb_is_grad_enabled()) return input;
    nbi_tensor *out = nbi_tensor_new_view(x->storage, x->dtype, x->ndim, x->shape, x->stride, x->offset, fn);
    return nbi_record(out, &pool_input_op, 1, &x, NULL, 0);
}

/* Window sums of every plane of x as one single-channel convolution of the (N C, 1, H, W) stack with ones. */
static nb_tensor *window_sum(nb_tensor *x, const nbi_conv_geom *g, nb_dtype dt)
{
    nb_tensor *planes = nb_reshape(x, NB_SHAPE(g->N * g->C, 1, g->H, g->W));
    nb_tensor *ones = nb_ones(NB_SHAPE(1, 1, g->KH, g->KW), dt);
    const int64_t s[2] = {g->sh, g->sw}, p[2] = {g->ph, g->pw};
    return nb_reshape(nb_conv2d(planes, ones, NULL, s, p, NULL, 1), NB_SHAPE(g->N, g->C, g->OH, g->OW));
}

nb_tensor *nb_avg_pool2d(nb_tensor *input, const int64_t *kernel, const int64_t *stride, const int64_t *padding,
                         bool count_include_pad)
{
    const char *fn = "nb_avg_pool2d";
    nbi_tensor *x = nbi_resolve(input, fn, "input");
    nbi_conv_geom g;
    if (!x || !pool_geometry(fn, x, kernel, stride, padding, &g)) return NULL;
    if (nbi_scope_begin() != NB_OK) return NULL;
    nb_tensor *sum = window_sum(pool_input(input, x, fn), &g, x->dtype), *out;
    if (count_include_pad || (g.ph == 0 && g.pw == 0)) {
        out = nb_mul_scalar(sum, 1.0 / (double)(g.KH * g.KW));
    } else {
        /* The number of real pixels under each window: the same window sum over an image of ones. */
        nbi_conv_geom one = g;
        one.N = one.C = 1;
        nb_no_grad_begin();
        nb_tensor *count = window_sum(nb_ones(NB_SHAPE(1, 1, g.H, g.W), x->dtype), &one, x->dtype);
        nb_no_grad_end();
        out = nb_div(sum, count);
    }
    return scoped_result(out);
}

/* (out, in) matrix whose row i averages the input positions of adaptive window i. */
static nb_tensor *averaging_matrix(int64_t out, int64_t in, nb_dtype dt)
{
    nb_tensor *m = nb_zeros(NB_SHAPE(out, in), dt);
    if (!m) return NULL;
    for (int64_t i = 0; i < out; i++) {
        int64_t start = i * in / out, end = ((i + 1) * in + out - 1) / out;
        for (int64_t k = start; k < end; k++) nb_set(m, (const int64_t[]){i, k}, 1.0 / (double)(end - start));
    }
    return m;
}

nb_tensor *nb_adaptive_avg_pool2d(nb_tensor *input, int64_t out_h, int64_t out_w)
{
    const char *fn = "nb_adaptive_avg_pool2d";
    nbi_tensor *x = nbi_resolve(input, fn, "input");
    if (!x || !check_input(fn, x)) return NULL;
    if (out_h < 1 || out_w < 1)
        return nbi_error(NB_ERR_ARG, "%s: output size (%lld, %lld) must be >= 1", fn, (long long)out_h,
                         (long long)out_w);
    int64_t H = x->shape[2], W = x->shape[3];
    if (H < 1 || W < 1) { /* every window would be empty: its average 0 / 0 (PyTorch refuses it too) */
        char s[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: input %s has an empty spatial dim; H and W must be >= 1", fn,
                         nbi_shape_fmt(s, x->ndim, x->shape));
    }
    /* Uneven windows use (out, in) averaging matrices: refuse sizes whose matrices could never be allocated. */
    const int64_t limit = (int64_t)1 << 40;
    if (out_h > limit / (H ? H : 1) || out_w > limit / (W ? W : 1)) {
        char s[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_ARG, "%s: output size (%lld, %lld) is too large for input %s", fn, (long long)out_h,
                         (long long)out_w, nbi_shape_fmt(s, x->ndim, x->shape));
    }
    if (H % out_h == 0 && W % out_w == 0) {
        /* Equal windows side by side: plain average pooling. */
        const int64_t k[2] = {H / out_h, W / out_w};
        return nb_avg_pool2d(input, k, k, NULL, true);
    }
    if (nbi_scope_begin() != NB_OK) return NULL;
    nb_tensor *rows = averaging_matrix(out_h, H, x->dtype), *cols = averaging_matrix(out_w, W, x->dtype);
    return scoped_result(nb_matmul(nb_matmul(rows, pool_input(input, x, fn)), nb_transpose(cols, 0, 1)));
}
