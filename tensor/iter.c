/* Strided, broadcasting iteration for elementwise kernels.
 *
 * Every elementwise op reduces to an inner loop over one dimension with per-operand strides. Dims are merged
 * where all operands are jointly contiguous across them, so a same-shape contiguous op runs as one call over
 * all elements and a bias add (B, N) + (N) runs as B calls over N contiguous elements.
 */
#include "internal.h"

#include <string.h>

bool nbi_broadcast_shape(const char *fn, int na, const int64_t *sa, int nb, const int64_t *sb, int *nout,
                         int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = na - n + i, ib = nb - n + i;
        int64_t a = ia >= 0 ? sa[ia] : 1, b = ib >= 0 ? sb[ib] : 1;
        if (a != b && a != 1 && b != 1) {
            char bufa[NBI_SHAPE_STR], bufb[NBI_SHAPE_STR];
            nbi_error(NB_ERR_SHAPE, "%s: shapes %s and %s cannot be broadcast: size %lld != %lld at dim %d", fn,
                      nbi_shape_fmt(bufa, na, sa), nbi_shape_fmt(bufb, nb, sb), (long long)a, (long long)b,
                      i - n);
            return false;
        }
        out[i] = a == 1 ? b : a;
    }
    *nout = n;
    return true;
}

bool nbi_broadcasts_to(int n, const int64_t *shape, int ndim, const int64_t *target)
{
    if (n > ndim) return false;
    for (int i = 1; i <= n; i++)
        if (shape[n - i] != 1 && shape[n - i] != target[ndim - i]) return false;
    return true;
}

void nbi_broadcast_strides(const nbi_tensor *t, int ndim, const int64_t *shape, int64_t *stride)
{
    for (int i = 0; i < ndim; i++) {
        int it = t->ndim - ndim + i;
        stride[i] = (it < 0 || (t->shape[it] == 1 && shape[i] != 1)) ? 0 : t->stride[it];
    }
}

void nbi_iter_init_over(nbi_iter *it, int ndim, const int64_t *shape, int n_operands,
                        const nbi_tensor *const *operands)
{
    memset(it, 0, sizeof *it);
    it->n_operands = n_operands;
    int64_t stride[NBI_MAX_OPERANDS][NB_MAX_DIMS];
    bool empty = false;
    for (int k = 0; k < n_operands; k++) {
        nbi_broadcast_strides(operands[k], ndim, shape, stride[k]);
        it->base[k] = nbi_data_ptr(operands[k]);
        it->elsize[k] = nb_dtype_size(operands[k]->dtype);
    }
    /* Drop size-1 dims, then merge a dim into the one before it when every operand steps across both evenly. */
    int n = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 0) empty = true;
        if (shape[d] == 1) continue;
        if (n > 0) {
            bool merge = true;
            for (int k = 0; k < n_operands; k++)
                if (it->stride[k][n - 1] != stride[k][d] * shape[d]) merge = false;
            if (merge) {
                it->shape[n - 1] *= shape[d];
                for (int k = 0; k < n_operands; k++) it->stride[k][n - 1] = stride[k][d];
                continue;
            }
        }
        it->shape[n] = shape[d];
        for (int k = 0; k < n_operands; k++) it->stride[k][n] = stride[k][d];
        n++;
    }
    if (n == 0) { /* a scalar, or all sizes 1: one line of one element */
        it->shape[0] = 1;
        n = 1;
    }
    if (empty) it->shape[0] = 0;
    it->ndim = n;
}

void nbi_iter_init(nbi_iter *it, nbi_tensor *out, int n_inputs, const nbi_tensor *const *inputs)
{
    const nbi_tensor *ops[NBI_MAX_OPERANDS];
    ops[0] = out;
    for (int k = 0; k < n_inputs; k++) ops[k + 1] = inputs[k];
    nbi_iter_init_over(it, out->ndim, out->shape, 1 + n_inputs, ops);
}

/* Runs the loop over outer indices [begin, end) of dim 0 (all of a 1-d space when it has one dim). */
static void run_range(const nbi_iter *it, nbi_loop_fn loop, const void *params, int64_t begin, int64_t end)
{
    int nd = it->ndim, k, no = it->n_operands;
    int64_t inner_stride[NBI_MAX_OPERANDS];
    char *ptr[NBI_MAX_OPERANDS];
    for (k = 0; k < no; k++) {
        inner_stride[k] = it->stride[k][nd - 1];
        ptr[k] = it->base[k] + begin * it->stride[k][0] * (int64_t)it->elsize[k];
    }
    if (nd == 1) {
        loop(end - begin, ptr, inner_stride, params);
        return;
    }
    int64_t inner = it->shape[nd - 1];
    int64_t idx[NB_MAX_DIMS] = {0};
    idx[0] = begin;
    for (;;) {
        loop(inner, ptr, inner_stride, params);
        /* odometer over the outer dims */
        int d = nd - 2;
        for (; d >= 0; d--) {
            if (++idx[d] < (d == 0 ? end : it->shape[d])) {
                for (k = 0; k < no; k++) ptr[k] += it->stride[k][d] * (int64_t)it->elsize[k];
                break;
            }
            if (d == 0) return;
            for (k = 0; k < no; k++) ptr[k] -= it->stride[k][d] * (it->shape[d] - 1) * (int64_t)it->elsize[k];
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}

typedef struct split_job {
    const nbi_iter *it;
    nbi_loop_fn loop;
    const void *params;
} split_job;

static void split_chunk(void *ctx, int64_t begin, int64_t end)
{
    const split_job *j = ctx;
    run_range(j->it, j->loop, j->params, begin, end);
}

/* Elements per chunk when a large elementwise op is split over the threads. */
#define ITER_GRAIN 32768

void nbi_iter_run(const nbi_iter *it, nbi_loop_fn loop, const void *params)
{
    int nd = it->ndim;
    int64_t total = 1;
    for (int d = 0; d < nd; d++) {
        if (it->shape[d] == 0) return;
        total *= it->shape[d];
    }
    /* Large spaces are split along dim 0 over the thread pool, unless the output is a reduction's accumulator
     * (stride 0 along that dim: chunks would race on it). Every element is computed by the same loop whatever
     * the split, so the results do not depend on the thread count. */
    if (total > ITER_GRAIN && it->stride[0][0] != 0 && nbi_num_threads() > 1) {
        int64_t per_row = total / it->shape[0];
        int64_t grain = (ITER_GRAIN + per_row - 1) / per_row;
        split_job j = {it, loop, params};
        nbi_parallel_for(it->shape[0], grain, split_chunk, &j);
        return;
    }
    run_range(it, loop, params, 0, it->shape[0]);
}
