/* Unary elementwise ops and activations. One shared forward (checks, kernel call, record with the op's scalar
 * parameters as ctx) and one short backward per op, written with differentiable ops so that double backward
 * works. Where the derivative is a function of the result (exp, tanh, sigmoid, ...), backward uses the result
 * itself; piecewise ops multiply by a constant mask built from comparisons, with PyTorch's choice at kinks, and
 * where PyTorch treats that product as a function of x with zero derivative (relu, leaky_relu, abs; not clamp)
 * tie it to x so that a second backward finds the graph it does. */
#include "autograd_internal.h"
#include "kernels_unary.h"

#include <float.h>
#include <math.h>

static nb_tensor *unary(const char *fn, nbi_unary_kind kind, const nbi_op *op, nb_tensor *h, double a, double b)
{
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    if (!nbi_unary_supported(kind, t->dtype)) {
        char s[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_DTYPE, "%s: tensor of shape %s has dtype %s; expected %s", fn,
                         nbi_shape_fmt(s, t->ndim, t->shape), nb_dtype_name(t->dtype),
                         nbi_unary_supported(kind, NB_I64) ? "f32, f64 or i64"
                                                           : "f32 or f64 (convert with nb_to_dtype)");
    }
    nbi_unary_params params = {a, b};
    nbi_tensor *out = nbi_tensor_new_like(t, t->dtype, fn);
    if (out) nbi_unary_kernel(kind, out, t, &params);
    return nbi_record(out, op, 1, &t, &params, sizeof params);
}

static nb_tensor *x_of(const nbi_tensor *out) { return nbi_in(out, 0); }
static nb_tensor *y_of(const nbi_tensor *out) { return nbi_handle(out); }
static const nbi_unary_params *params_of(const nbi_tensor *out) { return nbi_ctx(out); }

/* ---- gradients tied to their input with a zero derivative (nbi_tie_to_input) ---- */
static void tie_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    if (nbi_wants_grad(out, 0)) gin[0] = g;
    /* explicit zeros rather than nothing, so that x's gradient is 0 as in PyTorch, not absent */
    if (nbi_wants_grad(out, 1)) gin[1] = nb_zeros_like(nbi_in(out, 1));
}
static const nbi_op tie_op = {"tie", tie_backward, .derivative = "d out/d grad = 1, d out/d x = 0",
                              .elementwise = true, .inputs = "grad, x"};

nb_tensor *nbi_tie_to_input(nb_tensor *grad, nbi_tensor *x)
{
    nbi_tensor *g = nbi_resolve(grad, "nbi_tie_to_input", "gradient");
    if (!g) return NULL;
    if (!x->requires_grad || !nb_is_grad_enabled()) return grad;
    nbi_tensor *out = nbi_tensor_new_view(g->storage, g->dtype, g->ndim, g->shape, g->stride, g->offset, "tie");
    nbi_tensor *in[2] = {g, x};
    return nbi_record(out, &tie_op, 2, in, NULL, 0);
}

/* A comparison result as a constant mask of out's dtype. */
static nb_tensor *mask(nb_tensor *bool_mask, const nbi_tensor *out) { return nb_to_dtype(bool_mask, out->dtype); }
/* A parameter as a 0-d tensor of out's dtype, rounded as the kernel rounds it (beyond the f32 range: infinite),
 * so that masks agree with the forward's comparisons. */
static nb_tensor *scalar_like(double v, const nbi_tensor *out)
{
    if (out->dtype == NB_F32 && isfinite(v) && fabs(v) > FLT_MAX) v = copysign(INFINITY, v);
    return nb_scalar(v, out->dtype);
}

/* ---- powers and their inverses ---- */
static void neg_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin) { (void)out; gin[0] = nb_neg(g); }
/* d e^x = e^x */
static void exp_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin) { gin[0] = nb_mul(g, y_of(out)); }
/* d ln x = 1/x */
static void log_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin) { gin[0] = nb_div(g, x_of(out)); }
/* d sqrt(x) = 1 / (2 sqrt(x)) */
static void sqrt_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    gin[0] = nb_div(g, nb_mul_scalar(y_of(out), 2));
}
/* d x^-1/2 = -x^-3/2 / 2 = -y^3 / 2 */
static void rsqrt_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *y = y_of(out);
    gin[0] = nb_mul(g, nb_mul_scalar(nb_mul(y, nb_square(y)), -0.5));
}
/* d x^2 = 2x */
static void square_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    gin[0] = nb_mul(g, nb_mul_scalar(x_of(out), 2));
}
/* d 1/x = -1/x^2 = -y^2 */
static void reciprocal_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    gin[0] = nb_neg(nb_mul(g, nb_square(y_of(out))));
}
/* d |x| = sign(x), 0 at 0 */
static void abs_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *x = x_of(out);
    nb_no_grad_begin();
    nb_tensor *sign = nb_sign(x);
    nb_no_grad_end();
    gin[0] = nbi_tie_to_input(nb_mul(g, sign), out->inputs[0]);
}

/* sign is piecewise constant: its derivative is 0 everywhere (PyTorch's choice at 0 too), a gradient of zeros */
static void sign_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    (void)g;
    gin[0] = nb_zeros_like(x_of(out));
}

/* ---- trigonometric and hyperbolic ---- */
static void sin_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin) { gin[0] = nb_mul(g, nb_cos(x_of(out))); }
static void cos_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    gin[0] = nb_neg(nb_mul(g, nb_sin(x_of(out))));
}
/* d tanh = 1 - tanh^2 */
static void tanh_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    gin[0] = nb_mul(g, nb_rsub_scalar(1, nb_square(y_of(out))));
}
/* d sigmoid = sigmoid (1 - sigmoid) */
static void sigmoid_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *y = y_of(out);
    gin[0] = nb_mul(g, nb_mul(y, nb_rsub_scalar(1, y)));
}

/* ---- piecewise activations ---- */
/* 0 where x <= 0, 1 elsewhere: relu'(0) = 0, and a NaN x passes its gradient on, as PyTorch's
 * threshold_backward does */
static void relu_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_no_grad_begin();
    nb_tensor *m = mask(nb_eq_scalar(nb_le(x_of(out), scalar_like(0, out)), 0), out);
    nb_no_grad_end();
    gin[0] = nbi_tie_to_input(nb_mul(g, m), out->inputs[0]);
}
/* 1 where x > 0, slope elsewhere (PyTorch takes the slope at 0) */
static void leaky_relu_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    double slope = params_of(out)->a;
    nb_no_grad_begin();
    nb_tensor *m = nb_add_scalar(nb_mul_scalar(mask(nb_gt_scalar(x_of(out), 0), out), 1 - slope), slope);
    nb_no_grad_end();
    gin[0] = nbi_tie_to_input(nb_mul(g, m), out->inputs[0]);
}
/* 1 where x > 0, alpha e^x elsewhere (at 0 too, as PyTorch). Not y + alpha: in f32 that cancels for large
 * negative x (x = -30 would give 0, not 9.4e-14). The exponent is clamped to 0 on the positive side, where a
 * zero mask times e^x would be 0 inf at x = inf; a NaN x stays NaN. */
static void elu_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    double alpha = params_of(out)->a;
    nb_tensor *x = x_of(out);
    nb_no_grad_begin();
    nb_tensor *above = nb_gt_scalar(x, 0);
    nb_tensor *pos = mask(above, out);
    nb_tensor *neg = nb_rsub_scalar(1, pos);
    nb_no_grad_end();
    nb_tensor *e = nb_mul_scalar(nb_exp(nb_masked_fill(x, above, 0)), alpha);
    gin[0] = nb_mul(g, nb_add(pos, nb_mul(neg, e)));
}
/* 1 inside [lo, hi] (bounds included, as PyTorch), 0 outside and for NaN */
static void clamp_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const nbi_unary_params *p = params_of(out);
    nb_tensor *x = x_of(out);
    nb_no_grad_begin();
    nb_tensor *m = nb_mul(mask(nb_ge(x, scalar_like(p->a, out)), out), mask(nb_le(x, scalar_like(p->b, out)), out));
    nb_no_grad_end();
    gin[0] = nb_mul(g, m);
}

/* ---- smooth activations ---- */
/* erf, internal: the building block of gelu's derivative. d erf(x) = 2/sqrt(pi) e^(-x^2) */
static void erf_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *x = x_of(out);
    gin[0] = nb_mul(g, nb_mul_scalar(nb_exp(nb_neg(nb_square(x))), M_2_SQRTPI));
}
static const nbi_op erf_op = {"erf", erf_backward,
                              .derivative = "d out/d x = 2/sqrt(pi) e^(-x^2)",
                              .elementwise = true};
static nb_tensor *erf_(nb_tensor *t) { return unary("nb_gelu", NBI_ERF, &erf_op, t, 0, 0); }

/* d x Phi(x) = Phi(x) + x phi(x), Phi(x) = (1 + erf(x/sqrt 2))/2, phi(x) = e^(-x^2/2)/sqrt(2 pi) */
static void gelu_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *x = x_of(out);
    nb_tensor *cdf = nb_mul_scalar(nb_add_scalar(erf_(nb_mul_scalar(x, M_SQRT1_2)), 1), 0.5);
    nb_tensor *pdf = nb_mul_scalar(nb_exp(nb_mul_scalar(nb_square(x), -0.5)), 0.5 * M_2_SQRTPI * M_SQRT1_2);
    gin[0] = nb_mul(g, nb_add(cdf, nb_mul(x, pdf)));
}
/* With u = beta (x + kappa x^3) and t = tanh(u):
 * d 0.5 x (1 + t) = 0.5 (1 + t) + 0.5 x (1 - t^2) beta (1 + 3 kappa x^2) */
static void gelu_tanh_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const double beta = M_SQRT2 * M_2_SQRTPI * 0.5, kappa = 0.044715;
    nb_tensor *x = x_of(out);
    nb_tensor *x2 = nb_square(x);
    nb_tensor *t = nb_tanh(nb_mul_scalar(nb_add(x, nb_mul_scalar(nb_mul(x2, x), kappa)), beta));
    nb_tensor *left = nb_mul_scalar(nb_add_scalar(t, 1), 0.5);
    nb_tensor *du = nb_mul_scalar(nb_add_scalar(nb_mul_scalar(x2, 3 * kappa), 1), beta);
    nb_tensor *right = nb_mul(nb_mul_scalar(x, 0.5), nb_mul(nb_rsub_scalar(1, nb_square(t)), du));
    gin[0] = nb_mul(g, nb_add(left, right));
}
/* d x s(x) = s (1 + x (1 - s)) */
static void silu_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *x = x_of(out), *s = nb_sigmoid(x);
    gin[0] = nb_mul(g, nb_mul(s, nb_add_scalar(nb_mul(x, nb_rsub_scalar(1, s)), 1)));
}
/* sigmoid(beta x) below the threshold, 1 above it (where the forward is x itself) */
static void softplus_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const nbi_unary_params *p = params_of(out);
    nb_tensor *x = x_of(out);
    nb_no_grad_begin();
    nb_tensor *above = mask(nb_gt(nb_mul_scalar(x, p->a), scalar_like(p->b, out)), out);
    nb_tensor *below = nb_rsub_scalar(1, above);
    nb_no_grad_end();
    nb_tensor *slope = nb_add(nb_mul(nb_sigmoid(nb_mul_scalar(x, p->a)), below), above);
    gin[0] = nb_mul(g, slope);
}

static const nbi_op neg_op = {"neg", neg_backward, .derivative = "d out/d x = -1", .elementwise = true};
static const nbi_op exp_op = {"exp", exp_backward, .derivative = "d out/d x = e^x = out", .elementwise = true};
static const nbi_op log_op = {"log", log_backward, .derivative = "d out/d x = 1/x", .elementwise = true};
static const nbi_op sqrt_op = {"sqrt", sqrt_backward,
                              .derivative = "d out/d x = 1/(2 sqrt(x)) = 1/(2 out)",
                              .elementwise = true};
static const nbi_op rsqrt_op = {"rsqrt", rsqrt_backward,
                              .derivative = "d out/d x = -1/(2 x^(3/2)) = -out^3/2",
                              .elementwise = true};
static const nbi_op square_op = {"square", square_backward, .derivative = "d out/d x = 2x", .elementwise = true};
static const nbi_op reciprocal_op = {"reciprocal", reciprocal_backward,
                              .derivative = "d out/d x = -1/x^2 = -out^2",
                              .elementwise = true};
static const nbi_op abs_op = {"abs", abs_backward, .derivative = "d out/d x = sign(x) (0 at 0)", .elementwise = true};
static const nbi_op sign_op = {"sign", sign_backward, .derivative = "d out/d x = 0", .elementwise = true};
static const nbi_op sin_op = {"sin", sin_backward, .derivative = "d out/d x = cos(x)", .elementwise = true};
static const nbi_op cos_op = {"cos", cos_backward, .derivative = "d out/d x = -sin(x)", .elementwise = true};
static const nbi_op tanh_op = {"tanh", tanh_backward,
                              .derivative = "d out/d x = 1 - tanh(x)^2 = 1 - out^2",
                              .elementwise = true};
static const nbi_op sigmoid_op = {"sigmoid", sigmoid_backward,
                              .derivative = "d out/d x = sigmoid(x) (1 - sigmoid(x)) = out (1 - out)",
                              .elementwise = true};
static const nbi_op relu_op = {"relu", relu_backward,
                              .derivative = "d out/d x = 1 where x > 0, else 0",
                              .elementwise = true};
static const nbi_op leaky_relu_op = {"leaky_relu", leaky_relu_backward,
                              .derivative = "d out/d x = 1 where x > 0, else negative_slope",
                              .elementwise = true};
static const nbi_op elu_op = {"elu", elu_backward,
                              .derivative = "d out/d x = 1 where x > 0, else alpha e^x",
                              .elementwise = true};
static const nbi_op gelu_op = {"gelu", gelu_backward,
                              .derivative = "d out/d x = Phi(x) + x phi(x) (normal CDF and density)",
                              .elementwise = true};
static const nbi_op gelu_tanh_op = {"gelu_tanh", gelu_tanh_backward,
                              .derivative = "d out/d x = (1 + t)/2 + x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2)/2, t = tanh(sqrt(2/pi) (x + 0.044715 x^3))",
                              .elementwise = true};
static const nbi_op silu_op = {"silu", silu_backward,
                              .derivative = "d out/d x = s (1 + x (1 - s)), s = sigmoid(x)",
                              .elementwise = true};
static const nbi_op softplus_op = {"softplus", softplus_backward,
                              .derivative = "d out/d x = sigmoid(beta x) (1 above the threshold)",
                              .elementwise = true};
static const nbi_op clamp_op = {"clamp", clamp_backward,
                              .derivative = "d out/d x = 1 inside [lo, hi], 0 outside",
                              .elementwise = true};

nb_tensor *nb_neg(nb_tensor *t) { return unary("nb_neg", NBI_NEG, &neg_op, t, 0, 0); }
nb_tensor *nb_exp(nb_tensor *t) { return unary("nb_exp", NBI_EXP, &exp_op, t, 0, 0); }
nb_tensor *nb_log(nb_tensor *t) { return unary("nb_log", NBI_LOG, &log_op, t, 0, 0); }
nb_tensor *nb_sqrt(nb_tensor *t) { return unary("nb_sqrt", NBI_SQRT, &sqrt_op, t, 0, 0); }
nb_tensor *nb_rsqrt(nb_tensor *t) { return unary("nb_rsqrt", NBI_RSQRT, &rsqrt_op, t, 0, 0); }
nb_tensor *nb_square(nb_tensor *t) { return unary("nb_square", NBI_SQUARE, &square_op, t, 0, 0); }
nb_tensor *nb_reciprocal(nb_tensor *t) { return unary("nb_reciprocal", NBI_RECIPROCAL, &reciprocal_op, t, 0, 0); }
nb_tensor *nb_abs(nb_tensor *t) { return unary("nb_abs", NBI_ABS, &abs_op, t, 0, 0); }
nb_tensor *nb_sign(nb_tensor *t) { return unary("nb_sign", NBI_SIGN, &sign_op, t, 0, 0); }
nb_tensor *nb_sin(nb_tensor *t) { return unary("nb_sin", NBI_SIN, &sin_op, t, 0, 0); }
nb_tensor *nb_cos(nb_tensor *t) { return unary("nb_cos", NBI_COS, &cos_op, t, 0, 0); }
nb_tensor *nb_tanh(nb_tensor *t) { return unary("nb_tanh", NBI_TANH, &tanh_op, t, 0, 0); }
nb_tensor *nb_sigmoid(nb_tensor *t) { return unary("nb_sigmoid", NBI_SIGMOID, &sigmoid_op, t, 0, 0); }
nb_tensor *nb_relu(nb_tensor *t) { return unary("nb_relu", NBI_RELU, &relu_op, t, 0, 0); }
nb_tensor *nb_silu(nb_tensor *t) { return unary("nb_silu", NBI_SILU, &silu_op, t, 0, 0); }

nb_tensor *nb_gelu(nb_tensor *t, bool approximate)
{
    if (approximate) return unary("nb_gelu", NBI_GELU_TANH, &gelu_tanh_op, t, 0, 0);
    return unary("nb_gelu", NBI_GELU, &gelu_op, t, 0, 0);
}

/* Parameters are checked after the tensor, so a NULL tensor still propagates silently. */
nb_tensor *nb_leaky_relu(nb_tensor *t, double negative_slope)
{
    if (!nbi_resolve(t, "nb_leaky_relu", "tensor")) return NULL;
    if (isnan(negative_slope)) return nbi_error(NB_ERR_VALUE, "nb_leaky_relu: negative_slope is NaN");
    return unary("nb_leaky_relu", NBI_LEAKY_RELU, &leaky_relu_op, t, negative_slope, 0);
}

nb_tensor *nb_elu(nb_tensor *t, double alpha)
{
    if (!nbi_resolve(t, "nb_elu", "tensor")) return NULL;
    if (isnan(alpha)) return nbi_error(NB_ERR_VALUE, "nb_elu: alpha is NaN");
    return unary("nb_elu", NBI_ELU, &elu_op, t, alpha, 0);
}

nb_tensor *nb_softplus(nb_tensor *t, double beta, double threshold)
{
    if (!nbi_resolve(t, "nb_softplus", "tensor")) return NULL;
    if (beta == 0 || !isfinite(beta))
        return nbi_error(NB_ERR_VALUE, "nb_softplus: beta must be finite and nonzero, got %g", beta);
    if (isnan(threshold)) return nbi_error(NB_ERR_VALUE, "nb_softplus: threshold is NaN");
    return unary("nb_softplus", NBI_SOFTPLUS, &softplus_op, t, beta, threshold);
}

nb_tensor *nb_clamp(nb_tensor *t, double lo, double hi)
{
    if (!nbi_resolve(t, "nb_clamp", "tensor")) return NULL;
    if (isnan(lo) || isnan(hi))
        return nbi_error(NB_ERR_VALUE, "nb_clamp: bounds must not be NaN, got [%g, %g]", lo, hi);
    return unary("nb_clamp", NBI_CLAMP, &clamp_op, t, lo, hi);
}
