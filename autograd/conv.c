/* Convolutions: conv2d, conv1d (a conv2d over rows of height 1) and conv_transpose2d.
 *
 * Three bilinear maps of one geometry carry everything: the convolution y = conv(x, w), its adjoint in x (the
 * transposed convolution x' = convT(y', w)) and its adjoint in w (w' = wgrad(x, y')). Each one's backward is
 * written with the other two, so gradients of any order stay within them:
 *     conv(x, w):    dx = convT(g, w)     dw = wgrad(x, g)
 *     convT(y, w):   dy = conv(g, w)      dw = wgrad(g, y)
 *     wgrad(x, y):   dx = convT(y, g)     dy = conv(x, g)
 * The bias of conv2d adds sum(g) over (N, OH, OW). */
#include "autograd_internal.h"
#include "kernels_conv.h"

typedef struct conv_ctx {
    nbi_conv_geom g;
} conv_ctx;

static nb_tensor *conv_apply(const nbi_conv_geom *g, nb_tensor *xh, nb_tensor *wh, nb_tensor *bh, const char *fn);
static nb_tensor *conv_t_apply(const nbi_conv_geom *g, nb_tensor *yh, nb_tensor *wh, const char *fn);
static nb_tensor *wgrad_apply(const nbi_conv_geom *g, nb_tensor *xh, nb_tensor *yh, const char *fn);

static void conv_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const nbi_conv_geom *geo = &((const conv_ctx *)nbi_ctx(out))->g;
    if (nbi_wants_grad(out, 0)) gin[0] = conv_t_apply(geo, g, nbi_in(out, 1), "conv2d_backward");
    if (nbi_wants_grad(out, 1)) gin[1] = wgrad_apply(geo, nbi_in(out, 0), g, "conv2d_backward");
    if (out->n_inputs > 2 && nbi_wants_grad(out, 2)) gin[2] = nb_sum(g, NB_DIMS(0, 2, 3), false);
}
static void conv_t_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const nbi_conv_geom *geo = &((const conv_ctx *)nbi_ctx(out))->g;
    if (nbi_wants_grad(out, 0)) gin[0] = conv_apply(geo, g, nbi_in(out, 1), NULL, "conv_transpose2d_backward");
    if (nbi_wants_grad(out, 1)) gin[1] = wgrad_apply(geo, g, nbi_in(out, 0), "conv_transpose2d_backward");
}
static void wgrad_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const nbi_conv_geom *geo = &((const conv_ctx *)nbi_ctx(out))->g;
    if (nbi_wants_grad(out, 0)) gin[0] = conv_t_apply(geo, nbi_in(out, 1), g, "conv2d_weight_backward");
    if (nbi_wants_grad(out, 1)) gin[1] = conv_apply(geo, nbi_in(out, 0), g, NULL, "conv2d_weight_backward");
}
static const nbi_op conv_op = {"conv2d", conv_backward,
                               .derivative = "grad x = conv_transpose(g, w), grad w = wgrad(x, g), "
                                             "grad bias = g summed over (N, OH, OW)",
                               .inputs = "x, w, bias"};
static const nbi_op conv_t_op = {"conv_transpose2d", conv_t_backward,
                                 .derivative = "grad y = conv(g, w), grad w = wgrad(g, y)", .inputs = "y, w"};
static const nbi_op wgrad_op = {"conv2d_weight_grad", wgrad_backward,
                                .derivative = "grad x = conv_transpose(y, g), grad y = conv(x, g)", .inputs = "x, y"};

/* t itself when the kernels can read it as it is, else a contiguous copy (a temporary, see drop). */
static nbi_tensor *dense(nbi_tensor *t, const char *fn)
{
    return nbi_is_contiguous(t) ? t : nbi_contiguous_copy(t, t->dtype, fn);
}

/* The three applications. Their operands were validated against geo by the public functions; inside backward
 * a failed earlier op shows up as a NULL handle, which propagates. */
static nb_tensor *conv_apply(const nbi_conv_geom *geo, nb_tensor *xh, nb_tensor *wh, nb_tensor *bh, const char *fn)
{
    nbi_tensor *x = nbi_resolve(xh, fn, "input"), *w0 = nbi_resolve(wh, fn, "weight");
    nbi_tensor *b0 = bh ? nbi_resolve(bh, fn, "bias") : NULL;
    if (!x || !w0 || (bh && !b0)) return NULL;
    nbi_conv_geom g = *geo;
    g.N = x->shape[0];
    nbi_tensor *w = dense(w0, fn), *b = b0 ? dense(b0, fn) : NULL;
    nbi_tensor *out = w && (b || !b0) ? nbi_tensor_new(x->dtype, 4, (const int64_t[]){g.N, g.O, g.OH, g.OW}, fn)
                                      : NULL;
    if (out && !nbi_conv2d_kernel(x->dtype, &g, nbi_data_ptr(out), nbi_data_ptr(x), x->stride, nbi_data_ptr(w),
                                  b ? nbi_data_ptr(b) : NULL, fn)) {
        nbi_kill(out);
        out = NULL;
    }
    nbi_drop_temp(w, w0);
    nbi_drop_temp(b, b0);
    conv_ctx c = {g};
    nbi_tensor *in[3] = {x, w0, b0};
    return nbi_record(out, &conv_op, b0 ? 3 : 2, in, &c, sizeof c);
}

static nb_tensor *conv_t_apply(const nbi_conv_geom *geo, nb_tensor *yh, nb_tensor *wh, const char *fn)
{
    nbi_tensor *y0 = nbi_resolve(yh, fn, "input"), *w0 = nbi_resolve(wh, fn, "weight");
    if (!y0 || !w0) return NULL;
    nbi_conv_geom g = *geo;
    g.N = y0->shape[0];
    nbi_tensor *y = dense(y0, fn), *w = dense(w0, fn);
    nbi_tensor *out = y && w ? nbi_tensor_new(y0->dtype, 4, (const int64_t[]){g.N, g.C, g.H, g.W}, fn) : NULL;
    if (out && !nbi_conv2d_input_grad_kernel(y0->dtype, &g, nbi_data_ptr(out), nbi_data_ptr(y), nbi_data_ptr(w), fn)) {
        nbi_kill(out);
        out = NULL;
    }
    nbi_drop_temp(y, y0);
    nbi_drop_temp(w, w0);
    conv_ctx c = {g};
    nbi_tensor *in[2] = {y0, w0};
    return nbi_record(out, &conv_t_op, 2, in, &c, sizeof c);
}

static nb_tensor *wgrad_apply(const nbi_conv_geom *geo, nb_tensor *xh, nb_tensor *yh, const char *fn)
{
    nbi_tensor *x = nbi_resolve(xh, fn, "input"), *y0 = nbi_resolve(yh, fn, "grad_output");
    if (!x || !y0) return NULL;
    nbi_conv_geom g = *geo;
    g.N = x->shape[0];
    nbi_tensor *y = dense(y0, fn);
    int64_t wshape[4] = {g.O, g.C / g.groups, g.KH, g.KW};
    nbi_tensor *out = y ? nbi_tensor_new(x->dtype, 4, wshape, fn) : NULL;
    if (out && !nbi_conv2d_weight_grad_kernel(x->dtype, &g, nbi_data_ptr(out), nbi_data_ptr(x), x->stride,
                                              nbi_data_ptr(y), fn)) {
        nbi_kill(out);
        out = NULL;
    }
    nbi_drop_temp(y, y0);
    conv_ctx c = {g};
    nbi_tensor *in[2] = {x, y0};
    return nbi_record(out, &wgrad_op, 2, in, &c, sizeof c);
}

/* ------------------------------------------------------------------------------------------------
 * Validation shared by the public functions
 * ---------------------------------------------------------------------------------------------- */
/* *out = a * b + c, false when that overflows int64 (huge strides, paddings or dilations). */
static bool mul_add(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    int64_t p;
    return !__builtin_mul_overflow(a, b, &p) && !__builtin_add_overflow(p, c, out);
}

static bool too_large(const char *fn, const char *sx, const char *sw)
{
    nbi_error(NB_ERR_ARG, "%s: stride, padding or dilation too large for input %s and weight %s (the sizes overflow)",
              fn, sx, sw);
    return false;
}

static bool check_pair(const char *fn, const char *what, const int64_t *v, int64_t min)
{
    if (v[0] >= min && v[1] >= min) return true;
    nbi_error(NB_ERR_ARG, "%s: %s must be >= %lld, got (%lld, %lld)", fn, what, (long long)min, (long long)v[0],
              (long long)v[1]);
    return false;
}

/* Checks dtypes and ranks of input, weight and bias: float tensors of one dtype with `rank` dims, bias
 * (channels). */
static bool check_operands(const char *fn, const nbi_tensor *x, const nbi_tensor *w, const nbi_tensor *b, int rank,
                           int64_t bias_channels)
{
    char sx[NBI_SHAPE_STR], sw[NBI_SHAPE_STR], sb[NBI_SHAPE_STR];
    nbi_shape_fmt(sx, x->ndim, x->shape);
    nbi_shape_fmt(sw, w->ndim, w->shape);
    if (x->ndim != rank || w->ndim != rank) {
        nbi_error(NB_ERR_SHAPE, "%s: expected a %d-d input (%s) and a %d-d weight, got input %s and weight %s", fn,
                  rank, rank == 4 ? "N, C, H, W" : "N, C, L", rank, sx, sw);
        return false;
    }
    if (!nbi_is_float(x->dtype) || x->dtype != w->dtype || (b && b->dtype != x->dtype)) {
        nbi_error(NB_ERR_DTYPE, "%s: input, weight and bias must be f32 or f64 of one dtype, got input %s %s, weight %s %s%s%s",
                  fn, nb_dtype_name(x->dtype), sx, nb_dtype_name(w->dtype), sw, b ? ", bias " : "",
                  b ? nb_dtype_name(b->dtype) : "");
        return false;
    }
    if (b && (b->ndim != 1 || b->shape[0] != bias_channels)) {
        nbi_error(NB_ERR_SHAPE, "%s: bias of shape %s does not match the %lld output channels of weight %s", fn,
                  nbi_shape_fmt(sb, b->ndim, b->shape), (long long)bias_channels, sw);
        return false;
    }
    return true;
}

static const int64_t ones2[2] = {1, 1}, zeros2[2] = {0, 0};

/* The convolution geometry of an input (N, C, H, W) and a weight (O, C / groups, KH, KW), with its error
 * messages; x and w are the tensors the user passed (their shapes are shown). */
static bool conv_geometry(const char *fn, const nbi_tensor *x, const nbi_tensor *w, const int64_t *xs,
                          const int64_t *ws, const int64_t *stride, const int64_t *padding, const int64_t *dilation,
                          int64_t groups, nbi_conv_geom *g)
{
    char sx[NBI_SHAPE_STR], sw[NBI_SHAPE_STR];
    nbi_shape_fmt(sx, x->ndim, x->shape);
    nbi_shape_fmt(sw, w->ndim, w->shape);
    if (!check_pair(fn, "stride", stride, 1) || !check_pair(fn, "padding", padding, 0) ||
        !check_pair(fn, "dilation", dilation, 1))
        return false;
    if (groups < 1) {
        nbi_error(NB_ERR_ARG, "%s: groups must be >= 1, got %lld", fn, (long long)groups);
        return false;
    }
    int64_t C = xs[1], O = ws[0];
    if (C % groups || O % groups) {
        nbi_error(NB_ERR_SHAPE, "%s: groups %lld must divide the %lld input channels of input %s and the %lld output channels of weight %s",
                  fn, (long long)groups, (long long)C, sx, (long long)O, sw);
        return false;
    }
    if (ws[1] * groups != C) {
        nbi_error(NB_ERR_SHAPE, "%s: weight %s with groups %lld expects %lld input channels, got input %s with %lld",
                  fn, sw, (long long)groups, (long long)(ws[1] * groups), sx, (long long)C);
        return false;
    }
    *g = (nbi_conv_geom){.N = xs[0], .C = C, .H = xs[2], .W = xs[3], .O = O, .KH = ws[2], .KW = ws[3],
                         .sh = stride[0], .sw = stride[1], .ph = padding[0], .pw = padding[1], .dh = dilation[0],
                         .dw = dilation[1], .groups = groups};
    int64_t span_h, span_w, in_h, in_w;
    if (!mul_add(g->dh, g->KH - 1, 1, &span_h) || !mul_add(g->dw, g->KW - 1, 1, &span_w) ||
        !mul_add(2, g->ph, g->H, &in_h) || !mul_add(2, g->pw, g->W, &in_w))
        return too_large(fn, sx, sw);
    if (g->KH < 1 || g->KW < 1 || span_h > in_h || span_w > in_w) {
        nbi_error(NB_ERR_SHAPE, "%s: kernel (%lld, %lld) with dilation (%lld, %lld) spans (%lld, %lld), more than the padded input (%lld, %lld) of input %s",
                  fn, (long long)g->KH, (long long)g->KW, (long long)g->dh, (long long)g->dw, (long long)span_h,
                  (long long)span_w, (long long)in_h, (long long)in_w, sx);
        return false;
    }
    g->OH = (in_h - span_h) / g->sh + 1;
    g->OW = (in_w - span_w) / g->sw + 1;
    return true;
}

nb_tensor *nb_conv2d(nb_tensor *input, nb_tensor *weight, nb_tensor *bias, const int64_t *stride,
                     const int64_t *padding, const int64_t *dilation, int64_t groups)
{
    const char *fn = "nb_conv2d";
    nbi_tensor *x = nbi_resolve(input, fn, "input"), *w = nbi_resolve(weight, fn, "weight");
    nbi_tensor *b = bias ? nbi_resolve(bias, fn, "bias") : NULL;
    if (!x || !w || (bias && !b)) return NULL;
    nbi_conv_geom g;
    if (!check_operands(fn, x, w, b, 4, w->ndim == 4 ? w->shape[0] : 0) ||
        !conv_geometry(fn, x, w, x->shape, w->shape, stride ? stride : ones2, padding ? padding : zeros2,
                       dilation ? dilation : ones2, groups, &g))
        return NULL;
    return conv_apply(&g, input, weight, bias, fn);
}

/* Ends the internal scope a composite op ran in, moving its result out (the inner temporaries die). */
static nb_tensor *scoped_result(nb_tensor *r)
{
    nbi_tensor *t = nbi_peek(r);
    if (t && nbi_in_innermost_scope(t)) nbi_keep(t);
    nbi_scope_end();
    return t ? r : NULL;
}

nb_tensor *nb_conv1d(nb_tensor *input, nb_tensor *weight, nb_tensor *bias, int64_t stride, int64_t padding,
                     int64_t dilation, int64_t groups)
{
    const char *fn = "nb_conv1d";
    nbi_tensor *x = nbi_resolve(input, fn, "input"), *w = nbi_resolve(weight, fn, "weight");
    nbi_tensor *b = bias ? nbi_resolve(bias, fn, "bias") : NULL;
    if (!x || !w || (bias && !b)) return NULL;
    if (!check_operands(fn, x, w, b, 3, w->ndim == 3 ? w->shape[0] : 0)) return NULL;
    /* A row of height 1: validated here so that the messages name conv1d and the user's shapes. */
    const int64_t xs[4] = {x->shape[0], x->shape[1], 1, x->shape[2]}, ws[4] = {w->shape[0], w->shape[1], 1, w->shape[2]};
    const int64_t s[2] = {1, stride}, p[2] = {0, padding}, d[2] = {1, dilation};
    nbi_conv_geom g;
    if (!conv_geometry(fn, x, w, xs, ws, s, p, d, groups, &g)) return NULL;
    if (nbi_scope_begin() != NB_OK) return NULL;
    nb_tensor *y = conv_apply(&g, nb_unsqueeze(input, 2), nb_unsqueeze(weight, 2), bias, fn);
    return scoped_result(nb_squeeze(y, 2));
}

nb_tensor *nb_conv_transpose2d(nb_tensor *input, nb_tensor *weight, nb_tensor *bias, const int64_t *stride,
                               const int64_t *padding, const int64_t *output_padding, const int64_t *dilation,
                               int64_t groups)
{
    const char *fn = "nb_conv_transpose2d";
    nbi_tensor *y = nbi_resolve(input, fn, "input"), *w = nbi_resolve(weight, fn, "weight");
    nbi_tensor *b = bias ? nbi_resolve(bias, fn, "bias") : NULL;
    if (!y || !w || (bias && !b)) return NULL;
    stride = stride ? stride : ones2;
    padding = padding ? padding : zeros2;
    output_padding = output_padding ? output_padding : zeros2;
    dilation = dilation ? dilation : ones2;
    if (!check_operands(fn, y, w, b, 4, w->ndim == 4 ? w->shape[1] * (groups > 0 ? groups : 1) : 0) ||
        !check_pair(fn, "stride", stride, 1) || !check_pair(fn, "padding", padding, 0) ||
        !check_pair(fn, "dilation", dilation, 1) || !check_pair(fn, "output_padding", output_padding, 0))
        return NULL;
    char sy[NBI_SHAPE_STR], sw[NBI_SHAPE_STR];
    nbi_shape_fmt(sy, y->ndim, y->shape);
    nbi_shape_fmt(sw, w->ndim, w->shape);
    for (int i = 0; i < 2; i++)
        if (output_padding[i] >= stride[i] && output_padding[i] >= dilation[i])
            return nbi_error(NB_ERR_ARG, "%s: output_padding (%lld, %lld) must be smaller than stride (%lld, %lld) or dilation (%lld, %lld)",
                             fn, (long long)output_padding[0], (long long)output_padding[1], (long long)stride[0],
                             (long long)stride[1], (long long)dilation[0], (long long)dilation[1]);
    if (groups < 1) return nbi_error(NB_ERR_ARG, "%s: groups must be >= 1, got %lld", fn, (long long)groups);
    /* The weight is (C_in, C_out / groups, KH, KW): the convolution it transposes maps C_out to C_in. */
    if (y->shape[1] != w->shape[0] || w->shape[0] % groups)
        return nbi_error(NB_ERR_SHAPE, "%s: weight %s expects %lld input channels divisible by groups %lld, got input %s",
                         fn, sw, (long long)w->shape[0], (long long)groups, sy);
    nbi_conv_geom g = {.N = y->shape[0], .C = w->shape[1] * groups, .O = w->shape[0], .KH = w->shape[2],
                       .KW = w->shape[3], .OH = y->shape[2], .OW = y->shape[3], .sh = stride[0], .sw = stride[1],
                       .ph = padding[0], .pw = padding[1], .dh = dilation[0], .dw = dilation[1], .groups = groups};
    /* H = (OH - 1) sh - 2 ph + dh (KH - 1) + output_padding + 1, each step checked for overflow. */
    int64_t span_h, span_w;
    if (!mul_add(g.dh, g.KH - 1, output_padding[0] + 1, &span_h) ||
        !mul_add(g.dw, g.KW - 1, output_padding[1] + 1, &span_w) || !mul_add(g.OH - 1, g.sh, span_h, &g.H) ||
        !mul_add(-2, g.ph, g.H, &g.H) || !mul_add(g.OW - 1, g.sw, span_w, &g.W) || !mul_add(-2, g.pw, g.W, &g.W)) {
        too_large(fn, sy, sw);
        return NULL;
    }
    if (g.H < 1 || g.W < 1 || g.KH < 1 || g.KW < 1)
        return nbi_error(NB_ERR_SHAPE, "%s: input %s with weight %s, stride (%lld, %lld) and padding (%lld, %lld) gives an empty output (%lld, %lld)",
                         fn, sy, sw, (long long)g.sh, (long long)g.sw, (long long)g.ph, (long long)g.pw,
                         (long long)g.H, (long long)g.W);
    if (!b) return conv_t_apply(&g, input, weight, fn);
    if (nbi_scope_begin() != NB_OK) return NULL;
    nb_tensor *out = conv_t_apply(&g, input, weight, fn);
    return scoped_result(nb_add(out, nb_reshape(bias, NB_SHAPE(g.C, 1, 1))));
}
