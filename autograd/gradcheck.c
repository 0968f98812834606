/* Gradient checking: analytical Jacobians from backward against central finite differences, in f64. */
#include "autograd_internal.h"

#include <math.h>
#include <string.h>

static const nb_gradcheck_options defaults = {1e-6, 1e-5, 1e-3};

static void format_index(char *buf, size_t size, const nbi_tensor *t, int64_t flat)
{
    int64_t idx[NB_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = t->shape[d] ? flat % t->shape[d] : 0;
        flat = t->shape[d] ? flat / t->shape[d] : 0;
    }
    nbi_shape_fmt(buf, t->ndim, idx);
    (void)size;
}

/* The function under test failed: its own message is kept inside gradcheck's. It is copied first, since the
 * message buffer it lives in is the one the new message is written to. */
static nb_status function_failed(const char *fn)
{
    char inner[512];
    snprintf(inner, sizeof inner, "%s", nb_last_error());
    return nbi_fail(nb_last_status() ? nb_last_status() : NB_ERR_STATE, "%s: the function failed: %s", fn, inner);
}

/* Evaluates f in its own scope and copies its output, as doubles, into values. */
static nb_status evaluate(const char *fn, nb_function f, void *ud, nb_tensor *const *inputs, double *values,
                          int64_t m)
{
    if (nbi_scope_begin() != NB_OK) return nb_last_status();
    /* Grad mode stays on: f may itself take gradients (nb_gradgradcheck's projected gradient does). */
    nb_tensor *out = f(inputs, ud);
    nb_status st = NB_OK;
    nbi_tensor *o = nbi_peek(out);
    if (!o) st = function_failed(fn);
    else if (o->numel != m) st = nbi_fail(NB_ERR_SHAPE, "%s: the function's output changed size", fn);
    else
        for (int64_t j = 0; j < m; j++) values[j] = nbi_get_flat(o, j);
    nbi_scope_end();
    return st;
}

static nb_status check(const char *fn, nb_function f, void *ud, int n, nb_tensor *const *inputs,
                       const nb_gradcheck_options *opt)
{
    if (!f) return nbi_fail(NB_ERR_NULL, "%s: function is NULL", fn);
    if (n <= 0 || !inputs) return nbi_fail(NB_ERR_ARG, "%s: need at least one input", fn);
    nbi_tensor *in[16];
    if (n > 16) return nbi_fail(NB_ERR_ARG, "%s: at most 16 inputs, got %d", fn, n);
    if (!(opt->eps > 0 && isfinite(opt->eps)) || !(opt->atol >= 0) || !(opt->rtol >= 0))
        return nbi_fail(NB_ERR_ARG, "%s: options need a finite eps > 0 and atol, rtol >= 0, got eps %g, atol %g, "
                        "rtol %g", fn, opt->eps, opt->atol, opt->rtol);
    for (int k = 0; k < n; k++) {
        char what[32];
        snprintf(what, sizeof what, "inputs[%d]", k);
        if (!(in[k] = nbi_resolve(inputs[k], fn, what))) return nb_last_status();
        if (in[k]->dtype != NB_F64 || !in[k]->requires_grad)
            return nbi_fail(NB_ERR_DTYPE, "%s: inputs[%d] must be an f64 tensor that requires grad (it is %s%s)", fn,
                            k, nb_dtype_name(in[k]->dtype), in[k]->requires_grad ? "" : ", no grad");
    }
    if (nbi_scope_begin() != NB_OK) return nb_last_status();
    nb_status st = NB_OK;
    double *analytic = NULL, *plus = NULL, *minus = NULL;
    size_t analytic_bytes = 0, out_bytes = 0;

    nb_tensor *out_h = f(inputs, ud);
    nbi_tensor *out = nbi_peek(out_h);
    if (!out) {
        st = function_failed(fn);
        goto done;
    }
    int64_t m = out->numel, total = 0, offsets[17];
    for (int k = 0; k < n; k++) {
        offsets[k] = total;
        total += in[k]->numel;
    }
    offsets[n] = total;
    analytic_bytes = (size_t)(m * total) * sizeof(double) + 8;
    out_bytes = (size_t)m * sizeof(double) + 8;
    analytic = nbi_alloc(analytic_bytes, fn);
    plus = nbi_alloc(out_bytes, fn);
    minus = nbi_alloc(out_bytes, fn);
    if (!analytic || !plus || !minus) {
        st = NB_ERR_NOMEM;
        goto done;
    }
    memset(analytic, 0, analytic_bytes);

    /* Analytical Jacobian, one row per output element: backward seeded with a one-hot gradient. */
    for (int64_t j = 0; j < m && st == NB_OK && out->requires_grad; j++) {
        if (nbi_scope_begin() != NB_OK) {
            st = nb_last_status();
            break;
        }
        nb_tensor *seed = nb_zeros(out->ndim, out->shape, out->dtype);
        nb_tensor *grads[16];
        st = seed ? nb_set_flat(seed, j, 1.0) : nb_last_status();
        if (st == NB_OK) st = nb_grad_of(out_h, seed, n, inputs, grads, NB_RETAIN_GRAPH);
        for (int k = 0; k < n && st == NB_OK; k++) {
            nbi_tensor *g = nbi_peek(grads[k]);
            for (int64_t e = 0; e < in[k]->numel; e++) analytic[j * total + offsets[k] + e] = nbi_get_flat(g, e);
        }
        nbi_scope_end();
    }

    /* Numerical Jacobian, one column per input element, compared as it is produced. */
    for (int k = 0; k < n && st == NB_OK; k++) {
        for (int64_t e = 0; e < in[k]->numel && st == NB_OK; e++) {
            double x = nbi_get_flat(in[k], e);
            nb_set_flat(inputs[k], e, x + opt->eps);
            st = evaluate(fn, f, ud, inputs, plus, m);
            nb_set_flat(inputs[k], e, x - opt->eps);
            if (st == NB_OK) st = evaluate(fn, f, ud, inputs, minus, m);
            nb_set_flat(inputs[k], e, x);
            for (int64_t j = 0; j < m && st == NB_OK; j++) {
                double numeric = (plus[j] - minus[j]) / (2 * opt->eps);
                double a = analytic[j * total + offsets[k] + e];
                double tol = opt->atol + opt->rtol * fabs(numeric);
                if (!(fabs(a - numeric) <= tol)) {
                    char ei[NBI_SHAPE_STR], oj[NBI_SHAPE_STR];
                    format_index(ei, sizeof ei, in[k], e);
                    format_index(oj, sizeof oj, out, j);
                    st = nbi_fail(NB_ERR_GRADCHECK,
                                  "%s: mismatch for input %d element %s, output element %s: analytical %.10g vs "
                                  "numerical %.10g (difference %.3g > tolerance %.3g)",
                                  fn, k, ei, oj, a, numeric, fabs(a - numeric), tol);
                }
            }
        }
    }
done:
    nbi_free(analytic, analytic_bytes);
    nbi_free(plus, out_bytes);
    nbi_free(minus, out_bytes);
    nbi_scope_end();
    return st;
}

nb_status nb_gradcheck(nb_function f, void *user_data, int n, nb_tensor *const *inputs,
                       const nb_gradcheck_options *options)
{
    return check("nb_gradcheck", f, user_data, n, inputs, options ? options : &defaults);
}

/* Second order: h(x) = sum_k sum(r_k * d/dx_k [sum(u * f(x))]) with fixed random u and r_k, checked with the
 * first-order machinery. Its gradient involves every second derivative of f (projected). */
typedef struct gradgrad_ctx {
    nb_function f;
    void *user_data;
    int n;
    nb_tensor *u;
    nb_tensor *r[16];
} gradgrad_ctx;

static nb_tensor *projected_gradient(nb_tensor *const *inputs, void *user_data)
{
    gradgrad_ctx *c = user_data;
    nb_tensor *out = c->f(inputs, c->user_data);
    nb_tensor *loss = nb_sum(nb_mul(c->u, out), 0, NULL, false);
    if (!loss) return NULL;
    if (!nb_requires_grad(loss)) return nb_mul_scalar(loss, 0.0); /* f ignores its inputs */
    nb_tensor *grads[16];
    if (nb_grad_of(loss, NULL, c->n, inputs, grads, NB_CREATE_GRAPH) != NB_OK) return NULL;
    nb_tensor *total = NULL;
    for (int k = 0; k < c->n; k++) {
        nb_tensor *term = nb_sum(nb_mul(c->r[k], grads[k]), 0, NULL, false);
        total = total ? nb_add(total, term) : term;
    }
    return total;
}

nb_status nb_gradgradcheck(nb_function f, void *user_data, int n, nb_tensor *const *inputs,
                           const nb_gradcheck_options *options)
{
    const char *fn = "nb_gradgradcheck";
    if (!f) return nbi_fail(NB_ERR_NULL, "%s: function is NULL", fn);
    if (n <= 0 || n > 16 || !inputs) return nbi_fail(NB_ERR_ARG, "%s: need 1 to 16 inputs, got %d", fn, n);
    for (int k = 0; k < n; k++)
        if (!nbi_resolve(inputs[k], fn, "input")) return nb_last_status();
    if (nbi_scope_begin() != NB_OK) return nb_last_status();
    nb_generator g;
    nb_generator_seed(&g, 12345);
    gradgrad_ctx c = {.f = f, .user_data = user_data, .n = n};
    nb_status st = NB_OK;
    nb_no_grad_begin();
    nb_tensor *out = f(inputs, user_data);
    nb_no_grad_end();
    nbi_tensor *o = nbi_peek(out);
    if (!o) st = function_failed(fn);
    if (st == NB_OK) {
        c.u = nb_randn(o->ndim, o->shape, 0, 1, NB_F64, &g);
        for (int k = 0; k < n; k++) c.r[k] = nb_randn(nb_ndim(inputs[k]), nb_shape(inputs[k]), 0, 1, NB_F64, &g);
        nb_gradcheck_options opt = options ? *options : defaults;
        st = check(fn, projected_gradient, &c, n, inputs, &opt);
    }
    nbi_scope_end();
    return st;
}
