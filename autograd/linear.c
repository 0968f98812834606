/* The affine map of a Linear layer, y = x Wᵀ + b, as one op (torch.nn.functional.linear).
 *
 * Composed from matmul, transpose and add it costs three graph nodes, a separate pass for the bias, and a weight
 * gradient that comes out transposed (aᵀ g through the transpose's backward) and must then be copied into a
 * contiguous .grad. Here the forward is one product written straight into the result followed by the bias, and
 * the backward computes gW = gᵀ x in W's own layout. The backward is written with differentiable ops (matmul,
 * transpose, sum_to), so double backward works as for the composed form. */
#include "autograd_internal.h"
#include "kernels_binary.h" /* NBI_VEC_FOR */
#include "kernels_matmul.h"

#include <string.h>

/* t, of shape (..., last), as a (rows, last) matrix: a view when its leading dims merge, else a copy. */
static nb_tensor *as_rows(nb_tensor *t, const nbi_tensor *ti, int64_t rows, int64_t last)
{
    return ti->ndim == 2 ? t : nb_reshape(t, NB_SHAPE(rows, last));
}

static void affine_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const nbi_tensor *xi = out->inputs[0], *wi = out->inputs[1];
    nb_tensor *x = nbi_in(out, 0), *w = nbi_in(out, 1);
    int64_t rows = nbi_shape_numel(xi->ndim - 1, xi->shape), n = wi->shape[0], k = wi->shape[1];
    if (nbi_wants_grad(out, 0)) gin[0] = nb_matmul(g, w); /* (..., n) @ (n, k) */
    if (nbi_wants_grad(out, 1)) /* (n, rows) @ (rows, k) */
        gin[1] = nb_matmul(nb_transpose(as_rows(g, out, rows, n), 0, 1), as_rows(x, xi, rows, k));
    if (out->n_inputs > 2 && nbi_wants_grad(out, 2)) gin[2] = nb_sum_to(g, 1, &n);
}
static const nbi_op affine_op = {.name = "affine",
                                 .backward = affine_backward,
                                 .derivative = "grad x = g @ weight, grad weight = g^T @ x, grad bias = sum of g "
                                               "over all dims but the last",
                                 .inputs = "x, weight, bias"};

/* Adds the bias row to each of the rows of the contiguous (rows, n) result. */
#define ADD_BIAS(T)                                                                                                   \
    do {                                                                                                              \
        T *y = nbi_data_ptr(out);                                                                                     \
        const T *bp = nbi_data_ptr(b);                                                                                \
        int64_t bs = b->stride[0];                                                                                    \
        if (bs == 1)                                                                                                  \
            for (int64_t r = 0; r < rows; r++, y += n) NBI_VEC_FOR(n, j, y[j] += bp[j]);                              \
        else                                                                                                          \
            for (int64_t r = 0; r < rows; r++, y += n)                                                                \
                for (int64_t j = 0; j < n; j++) y[j] += bp[j * bs];                                                   \
    } while (0)

nb_tensor *nb_affine(nb_tensor *xh, nb_tensor *wh, nb_tensor *bh)
{
    const char *fn = "nb_affine";
    nbi_tensor *x0 = nbi_resolve(xh, fn, "x"), *w0 = nbi_resolve(wh, fn, "weight");
    nbi_tensor *b0 = bh ? nbi_resolve(bh, fn, "bias") : NULL;
    if (!x0 || !w0 || (bh && !b0)) return NULL;
    char sx[NBI_SHAPE_STR], sw[NBI_SHAPE_STR], sb[NBI_SHAPE_STR];
    nbi_shape_fmt(sx, x0->ndim, x0->shape);
    nbi_shape_fmt(sw, w0->ndim, w0->shape);
    if (!nbi_is_float(x0->dtype) || !nbi_is_float(w0->dtype) || (b0 && !nbi_is_float(b0->dtype)))
        return nbi_error(NB_ERR_DTYPE, "%s: expected f32 or f64 tensors, got x %s, weight %s%s%s", fn,
                         nb_dtype_name(x0->dtype), nb_dtype_name(w0->dtype), b0 ? ", bias " : "",
                         b0 ? nb_dtype_name(b0->dtype) : "");
    if (w0->ndim != 2 || x0->ndim < 1 || x0->shape[x0->ndim - 1] != w0->shape[1])
        return nbi_error(NB_ERR_SHAPE, "%s: x of shape %s does not match weight of shape %s (expected (out, %lld))",
                         fn, sx, sw, (long long)x0->shape[x0->ndim > 0 ? x0->ndim - 1 : 0]);
    int64_t n = w0->shape[0], k = w0->shape[1];
    if (b0 && !(b0->ndim == 1 && b0->shape[0] == n))
        return nbi_error(NB_ERR_SHAPE, "%s: bias of shape %s does not match weight of shape %s (expected (%lld))", fn,
                         nbi_shape_fmt(sb, b0->ndim, b0->shape), sw, (long long)n);

    nb_dtype dt = nbi_promote(x0->dtype, w0->dtype);
    if (b0) dt = nbi_promote(dt, b0->dtype);
    /* Inputs of another dtype are converted by a recorded op, so their gradients flow back in their own dtype. */
    nbi_tensor *x = x0->dtype == dt ? x0 : nbi_peek(nb_to_dtype(xh, dt));
    nbi_tensor *w = w0->dtype == dt ? w0 : nbi_peek(nb_to_dtype(wh, dt));
    nbi_tensor *b = !b0 || b0->dtype == dt ? b0 : nbi_peek(nb_to_dtype(bh, dt));
    /* The leading dims of x read as rows: a view when they merge into one stride, else a contiguous copy. Dims of
     * size 1 are skipped: their strides are arbitrary (a narrowed (B, 1, T, C) has stride[1] == stride[0]). */
    nbi_tensor *xr = x;
    int64_t rows = nbi_shape_numel(x0->ndim - 1, x0->shape), rs = k;
    if (x && x->ndim >= 2) {
        bool even = true;
        int64_t expect = -1; /* the stride the next non-1 dim outwards needs to merge */
        for (int d = x->ndim - 2; d >= 0; d--) {
            if (x->shape[d] == 1) continue;
            if (expect < 0) rs = x->stride[d];
            else if (x->stride[d] != expect) even = false;
            expect = x->stride[d] * x->shape[d];
        }
        if (!even) {
            rs = k;
            xr = nbi_contiguous_copy(x, dt, fn);
        }
    }
    nb_tensor *result = NULL;
    if (x && w && (b || !b0) && xr) {
        int64_t out_shape[NB_MAX_DIMS];
        memcpy(out_shape, x->shape, (size_t)x->ndim * sizeof *out_shape);
        out_shape[x->ndim - 1] = n;
        nbi_tensor *out = nbi_tensor_new(dt, x->ndim, out_shape, fn);
        int64_t as[2] = {rs, xr->stride[xr->ndim - 1]}, ws[2] = {w->stride[1], w->stride[0]}; /* Wᵀ: (k, n) */
        if (out && !nbi_matmul_kernel(dt, 2, (const int64_t[]){rows, n}, k, nbi_data_ptr(out), nbi_data_ptr(xr), as,
                                      nbi_data_ptr(w), ws, fn)) {
            nbi_kill(out);
            out = NULL;
        }
        if (out && b) {
            if (dt == NB_F32) ADD_BIAS(float);
            else ADD_BIAS(double);
        }
        nbi_tensor *in[3] = {x, w, b};
        result = nbi_record(out, &affine_op, b ? 3 : 2, in, NULL, 0);
    }
    if (xr != x) nbi_drop_temp(xr, x);
    nbi_drop_temp(x, x0);
    nbi_drop_temp(w, w0);
    nbi_drop_temp(b, b0);
    return result;
}
