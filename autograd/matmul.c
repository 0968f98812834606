/* Matrix product with torch.matmul semantics. The forward maps every case (vector or matrix operands,
 * broadcast batch dims) onto one strided batched kernel without copying: a 1-d operand is read as a (1, n)
 * or (n, 1) matrix and a broadcast batch dim as stride 0. The backward is two matmuls of the same kind,
 * ga = g bᵀ and gb = aᵀ g (transposes are views), summed over broadcast batch dims with nb_sum_to. */
#include "autograd_internal.h"
#include "kernels_matmul.h"

static void matmul_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const nbi_tensor *ai = out->inputs[0], *bi = out->inputs[1];
    nb_tensor *a = nbi_in(out, 0), *b = nbi_in(out, 1);
    /* Matrix forms: the 1-d operands and g get back the size-1 dims the forward dropped. */
    nb_tensor *a2 = ai->ndim == 1 ? nb_unsqueeze(a, 0) : a;  /* (1, K) */
    nb_tensor *b2 = bi->ndim == 1 ? nb_unsqueeze(b, 1) : b;  /* (K, 1) */
    nb_tensor *g2 = bi->ndim == 1 ? nb_unsqueeze(g, -1) : g; /* (..., M, N) */
    if (ai->ndim == 1) g2 = nb_unsqueeze(g2, -2);
    if (nbi_wants_grad(out, 0)) {
        /* (..., M, K); for a vector a the leading dims, the added row included, are summed away */
        gin[0] = nb_sum_to(nb_matmul(g2, nb_transpose(b2, -1, -2)), ai->ndim, ai->shape);
    }
    if (nbi_wants_grad(out, 1)) {
        nb_tensor *gb;
        int64_t K = ai->shape[ai->ndim - 1], N = bi->ndim == 1 ? 1 : bi->shape[bi->ndim - 1];
        if (ai->ndim > 2 && bi->ndim <= 2) {
            /* b was shared by the whole batch: one product over all rows at once, instead of a batch of
             * (K, N) products summed afterwards. */
            int64_t rows = 1;
            for (int d = 0; d < ai->ndim - 1; d++) rows *= ai->shape[d];
            nb_tensor *a_rows = nb_reshape(a, NB_SHAPE(rows, K)), *g_rows = nb_reshape(g2, NB_SHAPE(rows, N));
            gb = nb_matmul(nb_transpose(a_rows, 0, 1), g_rows);
        } else {
            gb = nb_matmul(nb_transpose(a2, -1, -2), g2); /* (..., K, N) */
        }
        if (bi->ndim == 1) gb = nb_squeeze(gb, -1);
        gin[1] = nb_sum_to(gb, bi->ndim, bi->shape);
    }
}
static const nbi_op matmul_op = {"matmul", matmul_backward,
                              .derivative = "grad a = g @ b^T, grad b = a^T @ g (summed over broadcast batch dims)"};

nb_tensor *nb_matmul(nb_tensor *ah, nb_tensor *bh)
{
    const char *fn = "nb_matmul";
    nbi_tensor *a0 = nbi_resolve(ah, fn, "a"), *b0 = nbi_resolve(bh, fn, "b");
    if (!a0 || !b0) return NULL;
    char sa[NBI_SHAPE_STR], sb[NBI_SHAPE_STR];
    nbi_shape_fmt(sa, a0->ndim, a0->shape);
    nbi_shape_fmt(sb, b0->ndim, b0->shape);
    if (a0->ndim == 0 || b0->ndim == 0)
        return nbi_error(NB_ERR_SHAPE, "%s: both arguments must be at least 1-d, got shapes %s and %s", fn, sa, sb);
    if (!nbi_is_float(a0->dtype) || !nbi_is_float(b0->dtype))
        return nbi_error(NB_ERR_DTYPE, "%s: expected f32 or f64 tensors, got %s %s and %s %s", fn,
                         nb_dtype_name(a0->dtype), sa, nb_dtype_name(b0->dtype), sb);

    /* The matrices: a is (M, K) (M = 1 for a vector), b is (K, N) (N = 1 for a vector). */
    int ma = a0->ndim, mb = b0->ndim;
    int64_t M = ma >= 2 ? a0->shape[ma - 2] : 1, K = a0->shape[ma - 1];
    int64_t Kb = mb >= 2 ? b0->shape[mb - 2] : b0->shape[0], N = mb >= 2 ? b0->shape[mb - 1] : 1;
    if (K != Kb)
        return nbi_error(NB_ERR_SHAPE, "%s: shapes %s and %s cannot be multiplied: %lld != %lld", fn, sa, sb,
                         (long long)K, (long long)Kb);

    /* Batch dims broadcast, aligned at the right. */
    int batch_a = ma > 2 ? ma - 2 : 0, batch_b = mb > 2 ? mb - 2 : 0;
    int nbatch = batch_a > batch_b ? batch_a : batch_b;
    int64_t shape[NB_MAX_DIMS + 2];
    for (int d = 0; d < nbatch; d++) {
        int64_t da = d >= nbatch - batch_a ? a0->shape[d - (nbatch - batch_a)] : 1;
        int64_t db = d >= nbatch - batch_b ? b0->shape[d - (nbatch - batch_b)] : 1;
        if (da != db && da != 1 && db != 1)
            return nbi_error(NB_ERR_SHAPE, "%s: batch dims of shapes %s and %s cannot be broadcast: %lld != %lld", fn,
                             sa, sb, (long long)da, (long long)db);
        shape[d] = da == 1 ? db : da;
    }
    shape[nbatch] = M;
    shape[nbatch + 1] = N;
    /* The result drops the row of a vector a and the column of a vector b. */
    int64_t out_shape[NB_MAX_DIMS];
    int out_ndim = 0;
    for (int d = 0; d < nbatch; d++) out_shape[out_ndim++] = shape[d];
    if (ma >= 2) out_shape[out_ndim++] = M;
    if (mb >= 2) out_shape[out_ndim++] = N;

    nb_dtype dt = nbi_promote(a0->dtype, b0->dtype);
    /* Inputs of another dtype are converted by a recorded op, so their gradients flow back in their own dtype. */
    nbi_tensor *a = a0->dtype == dt ? a0 : nbi_peek(nb_to_dtype(ah, dt));
    nbi_tensor *b = b0->dtype == dt ? b0 : nbi_peek(nb_to_dtype(bh, dt));
    nb_tensor *result = NULL;
    if (a && b) {
        /* Strides of the batched view: 0 on broadcast batch dims, then the matrix's row and column strides. */
        int64_t as[NB_MAX_DIMS + 2], bs[NB_MAX_DIMS + 2];
        for (int d = 0; d < nbatch; d++) {
            int xa = d - (nbatch - batch_a), xb = d - (nbatch - batch_b);
            as[d] = xa >= 0 && a->shape[xa] != 1 ? a->stride[xa] : 0;
            bs[d] = xb >= 0 && b->shape[xb] != 1 ? b->stride[xb] : 0;
        }
        as[nbatch] = ma >= 2 ? a->stride[ma - 2] : 0;
        as[nbatch + 1] = a->stride[ma - 1];
        bs[nbatch] = mb >= 2 ? b->stride[mb - 2] : b->stride[0];
        bs[nbatch + 1] = mb >= 2 ? b->stride[mb - 1] : 0;
        nbi_tensor *out = nbi_tensor_new(dt, out_ndim, out_shape, fn);
        if (out && !nbi_matmul_kernel(dt, nbatch + 2, shape, K, nbi_data_ptr(out), nbi_data_ptr(a), as,
                                      nbi_data_ptr(b), bs, fn)) {
            nbi_kill(out);
            out = NULL;
        }
        nbi_tensor *in[2] = {a, b};
        result = nbi_record(out, &matmul_op, 2, in, NULL, 0);
    }
    nbi_drop_temp(a, a0);
    nbi_drop_temp(b, b0);
    return result;
}
