/* Binary elementwise ops with broadcasting: add, sub, mul, div, pow, maximum, minimum, their scalar forms,
 * and the comparisons. This file is the model for an op family: a shared forward (checks, promotion, kernel
 * call, record) and one short backward per op written with differentiable ops, each reducing its gradient
 * to its input's shape with nb_sum_to (the adjoint of broadcasting). */
#include "autograd_internal.h"
#include "kernels_binary.h"

#include <math.h>

/* PyTorch refuses subtraction with a bool operand (it would not be the logical operation one might expect)
 * and powers of two bools. */
static bool bool_operands_allowed(const char *fn, nbi_binary_kind kind, const nbi_tensor *a, const nbi_tensor *b)
{
    bool a_bool = a->dtype == NB_BOOL, b_bool = b->dtype == NB_BOOL;
    if (!(kind == NBI_SUB && (a_bool || b_bool)) && !(kind == NBI_POW && a_bool && b_bool)) return true;
    char sa[NBI_SHAPE_STR], sb[NBI_SHAPE_STR];
    nbi_shape_fmt(sa, a->ndim, a->shape);
    nbi_shape_fmt(sb, b->ndim, b->shape);
    if (kind == NBI_POW)
        nbi_error(NB_ERR_DTYPE, "%s: powers of two bool tensors are not supported (shapes %s and %s); convert one "
                                "with nb_to_dtype",
                  fn, sa, sb);
    else if (a_bool && b_bool)
        nbi_error(NB_ERR_DTYPE, "%s: subtraction with two bool tensors is not supported (shapes %s and %s); use "
                                "nb_ne for exclusive or",
                  fn, sa, sb);
    else
        nbi_error(NB_ERR_DTYPE, "%s: subtraction with a bool tensor is not supported (%s %s and %s %s); to invert a "
                                "mask use nb_eq_scalar(mask, 0), else convert it with nb_to_dtype",
                  fn, nb_dtype_name(a->dtype), sa, nb_dtype_name(b->dtype), sb);
    return false;
}

static nb_tensor *binary(const char *fn, nbi_binary_kind kind, const nbi_op *op, nb_tensor *ah, nb_tensor *bh)
{
    nbi_tensor *a0 = nbi_resolve(ah, fn, "a"), *b0 = nbi_resolve(bh, fn, "b");
    if (!a0 || !b0) return NULL;
    nb_dtype dt = nbi_promote(a0->dtype, b0->dtype);
    if (!bool_operands_allowed(fn, kind, a0, b0)) return NULL;
    if (kind == NBI_DIV && !nbi_is_float(dt)) dt = NB_F32; /* true division */
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    if (!nbi_broadcast_shape(fn, a0->ndim, a0->shape, b0->ndim, b0->shape, &ndim, shape)) return NULL;
    /* Inputs of another dtype are converted by a recorded op, so their gradients flow back in their own dtype. */
    nbi_tensor *a = a0->dtype == dt ? a0 : nbi_peek(nb_to_dtype(ah, dt));
    nbi_tensor *b = b0->dtype == dt ? b0 : nbi_peek(nb_to_dtype(bh, dt));
    nb_tensor *result = NULL;
    if (a && b) {
        nbi_tensor *out = nbi_tensor_new(kind >= NBI_EQ ? NB_BOOL : dt, ndim, shape, fn);
        if (out) nbi_binary_kernel(kind, out, a, b);
        nbi_tensor *in[2] = {a, b};
        result = op ? nbi_record(out, op, 2, in, NULL, 0) : nbi_handle(out);
    }
    nbi_drop_temp(a, a0);
    nbi_drop_temp(b, b0);
    return result;
}

/* Whether s stands for a Python int: an infinite, NaN or out-of-range s has no int64 value to keep
 * integer arithmetic exact (it would saturate or wrap), so it counts as a float scalar. */
static bool integral_scalar(double s)
{
    return isfinite(s) && s == floor(s) && s >= -0x1p63 && s < 0x1p63;
}

/* t (op) s with s made a 0-d tensor whose dtype gives PyTorch's result for a tensor with a Python scalar:
 * a float t keeps its dtype; an integral t with an integral s gives i64 (a bool t too, so that true + 2 is 3,
 * not true); any other s makes the result f32 (the default float dtype). */
static nb_tensor *with_scalar(const char *fn, nbi_binary_kind kind, const nbi_op *op, nb_tensor *th, double s,
                              bool scalar_first)
{
    nbi_tensor *t = nbi_resolve(th, fn, "tensor");
    if (!t) return NULL;
    char b[NBI_SHAPE_STR];
    if (kind == NBI_SUB && t->dtype == NB_BOOL)
        return nbi_error(NB_ERR_DTYPE, "%s: subtraction with a bool tensor (shape %s) is not supported; to invert "
                                       "a mask use nb_eq_scalar(mask, 0), else convert it with nb_to_dtype",
                         fn, nbi_shape_fmt(b, t->ndim, t->shape));
    /* the integer result could only be 0 or +-1, which PyTorch refuses to guess at for t ^ (negative int) */
    if (kind == NBI_POW && !scalar_first && !nbi_is_float(t->dtype) && integral_scalar(s) && s < 0)
        return nbi_error(NB_ERR_VALUE, "%s: integers to negative integer powers are not allowed (%s tensor of shape "
                                       "%s to the power %g); convert the tensor with nb_to_dtype",
                         fn, nb_dtype_name(t->dtype), nbi_shape_fmt(b, t->ndim, t->shape), s);
    nb_dtype dt = nbi_is_float(t->dtype) ? t->dtype : integral_scalar(s) ? NB_I64 : NB_F32;
    nb_tensor *sh = nb_scalar(s, dt);
    if (!sh) return NULL;
    nb_tensor *r = scalar_first ? binary(fn, kind, op, sh, th) : binary(fn, kind, op, th, sh);
    nb_free(sh); /* the result's record holds its own reference */
    return r;
}

/* Gradient for input i: g reduced to that input's shape. */
static nb_tensor *to_input(nbi_tensor *out, int i, nb_tensor *g)
{
    const nbi_tensor *in = out->inputs[i];
    return nb_sum_to(g, in->ndim, in->shape);
}

/* d(a+b) = (g, g) */
static void add_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    if (nbi_wants_grad(out, 0)) gin[0] = to_input(out, 0, g);
    if (nbi_wants_grad(out, 1)) gin[1] = to_input(out, 1, g);
}
/* d(a-b) = (g, -g) */
static void sub_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    if (nbi_wants_grad(out, 0)) gin[0] = to_input(out, 0, g);
    if (nbi_wants_grad(out, 1)) gin[1] = to_input(out, 1, nb_neg(g));
}
/* d(ab) = (g b, g a) */
static void mul_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    if (nbi_wants_grad(out, 0)) gin[0] = to_input(out, 0, nb_mul(g, nbi_in(out, 1)));
    if (nbi_wants_grad(out, 1)) gin[1] = to_input(out, 1, nb_mul(g, nbi_in(out, 0)));
}
/* d(a/b) = (g / b, -g a / b^2) */
static void div_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *a = nbi_in(out, 0), *b = nbi_in(out, 1);
    if (nbi_wants_grad(out, 0)) gin[0] = to_input(out, 0, nb_div(g, b));
    if (nbi_wants_grad(out, 1)) gin[1] = to_input(out, 1, nb_neg(nb_div(nb_mul(g, a), nb_mul(b, b))));
}
/* d(a^b) = (g b a^(b-1), g a^b log a), each taken as 0 where PyTorch masks it: the first where b = 0, the
 * second where a = 0 and b >= 0; there the formulas give 0 inf or inf 0 (NaN). Rather than masking the result,
 * a is replaced by 1 at the offending points, so the backward graph holds no infinity there either (double
 * backward stays finite) and, for the first, an ordinary a with b = 0 keeps its second derivative d/db = 1/a. */
static void pow_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *a = nbi_in(out, 0), *b = nbi_in(out, 1);
    nb_tensor *one = nb_scalar(1, out->dtype), *zero = nb_scalar(0, out->dtype);
    if (nbi_wants_grad(out, 0)) {
        /* only a = 0 (0 inf) and a NaN make 0 a^-1 other than 0; any other a gives 0 as it is */
        nb_tensor *singular = nb_add(nb_eq_scalar(a, 0), nb_ne(a, a));
        nb_tensor *base = nb_where(nb_mul(nb_eq(b, zero), singular), one, a);
        gin[0] = to_input(out, 0, nb_mul(g, nb_mul(b, nb_pow(base, nb_sub_scalar(b, 1)))));
    }
    if (nbi_wants_grad(out, 1)) {
        /* a^b = 0 or 1 there and log 1 = 0; for b < 0, inf (-inf) = -inf as in PyTorch */
        nb_tensor *safe_a = nb_where(nb_mul(nb_eq(a, zero), nb_ge(b, zero)), one, a);
        gin[1] = to_input(out, 1, nb_mul(g, nb_mul(nb_pow(a, b), nb_log(safe_a))));
    }
}
/* d max(a,b) = g to the larger input, split evenly on ties (the masks are constants). Each mask is 1 less what
 * the other input takes, so where either is NaN (no order, no tie) both get all of g, as in PyTorch. */
static void extremum_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin, nbi_binary_kind wins)
{
    nb_tensor *a = nbi_in(out, 0), *b = nbi_in(out, 1);
    nb_dtype dt = out->dtype;
    nb_no_grad_begin();
    nb_tensor *wins_a = nb_to_dtype(wins == NBI_GT ? nb_gt(a, b) : nb_lt(a, b), dt);
    nb_tensor *wins_b = nb_to_dtype(wins == NBI_GT ? nb_lt(a, b) : nb_gt(a, b), dt);
    nb_tensor *ties = nb_mul_scalar(nb_to_dtype(nb_eq(a, b), dt), 0.5);
    nb_tensor *mask_a = nb_rsub_scalar(1.0, nb_add(wins_b, ties));
    nb_tensor *mask_b = nb_rsub_scalar(1.0, nb_add(wins_a, ties));
    nb_no_grad_end();
    if (nbi_wants_grad(out, 0)) gin[0] = to_input(out, 0, nb_mul(g, mask_a));
    if (nbi_wants_grad(out, 1)) gin[1] = to_input(out, 1, nb_mul(g, mask_b));
}
static void maximum_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin) { extremum_backward(out, g, gin, NBI_GT); }
static void minimum_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin) { extremum_backward(out, g, gin, NBI_LT); }

static const nbi_op add_op = {"add", add_backward, .derivative = "d out/d a = 1, d out/d b = 1", .elementwise = true};
static const nbi_op sub_op = {"sub", sub_backward, .derivative = "d out/d a = 1, d out/d b = -1", .elementwise = true};
static const nbi_op mul_op = {"mul", mul_backward, .derivative = "d out/d a = b, d out/d b = a", .elementwise = true};
static const nbi_op div_op = {"div", div_backward,
                              .derivative = "d out/d a = 1/b, d out/d b = -a/b^2",
                              .elementwise = true};
static const nbi_op pow_op = {"pow", pow_backward,
                              .derivative = "d out/d a = b a^(b-1) (0 where b = 0), d out/d b = out ln a (0 where a = 0, b >= 0)",
                              .elementwise = true};
static const nbi_op maximum_op = {"maximum", maximum_backward,
                              .derivative = "d out/d a = 1 unless a < b, d out/d b = 1 unless b < a (1/2 each on ties)",
                              .elementwise = true};
static const nbi_op minimum_op = {"minimum", minimum_backward,
                              .derivative = "d out/d a = 1 unless a > b, d out/d b = 1 unless b > a (1/2 each on ties)",
                              .elementwise = true};

nb_tensor *nb_add(nb_tensor *a, nb_tensor *b) { return binary("nb_add", NBI_ADD, &add_op, a, b); }
nb_tensor *nb_sub(nb_tensor *a, nb_tensor *b) { return binary("nb_sub", NBI_SUB, &sub_op, a, b); }
nb_tensor *nb_mul(nb_tensor *a, nb_tensor *b) { return binary("nb_mul", NBI_MUL, &mul_op, a, b); }
nb_tensor *nb_div(nb_tensor *a, nb_tensor *b) { return binary("nb_div", NBI_DIV, &div_op, a, b); }
nb_tensor *nb_pow(nb_tensor *a, nb_tensor *b) { return binary("nb_pow", NBI_POW, &pow_op, a, b); }
nb_tensor *nb_maximum(nb_tensor *a, nb_tensor *b) { return binary("nb_maximum", NBI_MAXIMUM, &maximum_op, a, b); }
nb_tensor *nb_minimum(nb_tensor *a, nb_tensor *b) { return binary("nb_minimum", NBI_MINIMUM, &minimum_op, a, b); }

nb_tensor *nb_add_scalar(nb_tensor *t, double s) { return with_scalar("nb_add_scalar", NBI_ADD, &add_op, t, s, false); }
nb_tensor *nb_sub_scalar(nb_tensor *t, double s) { return with_scalar("nb_sub_scalar", NBI_SUB, &sub_op, t, s, false); }
nb_tensor *nb_rsub_scalar(double s, nb_tensor *t) { return with_scalar("nb_rsub_scalar", NBI_SUB, &sub_op, t, s, true); }
nb_tensor *nb_mul_scalar(nb_tensor *t, double s) { return with_scalar("nb_mul_scalar", NBI_MUL, &mul_op, t, s, false); }
nb_tensor *nb_div_scalar(nb_tensor *t, double s) { return with_scalar("nb_div_scalar", NBI_DIV, &div_op, t, s, false); }
nb_tensor *nb_rdiv_scalar(double s, nb_tensor *t) { return with_scalar("nb_rdiv_scalar", NBI_DIV, &div_op, t, s, true); }
nb_tensor *nb_pow_scalar(nb_tensor *t, double p) { return with_scalar("nb_pow_scalar", NBI_POW, &pow_op, t, p, false); }
nb_tensor *nb_rpow_scalar(double s, nb_tensor *t) { return with_scalar("nb_rpow_scalar", NBI_POW, &pow_op, t, s, true); }

nb_tensor *nb_eq(nb_tensor *a, nb_tensor *b) { return binary("nb_eq", NBI_EQ, NULL, a, b); }
nb_tensor *nb_ne(nb_tensor *a, nb_tensor *b) { return binary("nb_ne", NBI_NE, NULL, a, b); }
nb_tensor *nb_lt(nb_tensor *a, nb_tensor *b) { return binary("nb_lt", NBI_LT, NULL, a, b); }
nb_tensor *nb_le(nb_tensor *a, nb_tensor *b) { return binary("nb_le", NBI_LE, NULL, a, b); }
nb_tensor *nb_gt(nb_tensor *a, nb_tensor *b) { return binary("nb_gt", NBI_GT, NULL, a, b); }
nb_tensor *nb_ge(nb_tensor *a, nb_tensor *b) { return binary("nb_ge", NBI_GE, NULL, a, b); }
nb_tensor *nb_gt_scalar(nb_tensor *t, double s) { return with_scalar("nb_gt_scalar", NBI_GT, NULL, t, s, false); }
nb_tensor *nb_lt_scalar(nb_tensor *t, double s) { return with_scalar("nb_lt_scalar", NBI_LT, NULL, t, s, false); }
nb_tensor *nb_eq_scalar(nb_tensor *t, double s) { return with_scalar("nb_eq_scalar", NBI_EQ, NULL, t, s, false); }
