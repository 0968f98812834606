/* Reduction kernels. They iterate over the input's shape with the output broadcast along the reduced dims
 * (stride 0), so one strided loop serves every choice of dims and reads the input in memory order. */
#include "kernels_reduce.h"

#include <string.h>

#define SUM_LOOP(NAME, TA, TI)                                                           \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)          \
    {                                                                                    \
        (void)params;                                                                    \
        TA *acc = (TA *)p[0];                                                            \
        const TI *x = (const TI *)p[1];                                                  \
        if (s[0] == 0) {                                                                 \
            TA total = 0;                                                                \
            for (int64_t i = 0; i < n; i++) total += (TA)x[i * s[1]];                    \
            acc[0] += total;                                                             \
        } else {                                                                         \
            for (int64_t i = 0; i < n; i++) acc[i * s[0]] += (TA)x[i * s[1]];            \
        }                                                                                \
    }
SUM_LOOP(sum_f32, double, float)
SUM_LOOP(sum_f64, double, double)
SUM_LOOP(sum_i64, int64_t, int64_t)

bool nbi_reduce_sum(nbi_tensor *out, const nbi_tensor *in)
{
    nbi_tensor *acc = out;
    if (in->dtype == NB_F32) {
        acc = nbi_tensor_new(NB_F64, out->ndim, out->shape, "nb_sum");
        if (!acc) return false;
    }
    if (nbi_is_contiguous(acc)) memset(nbi_data_ptr(acc), 0, (size_t)acc->numel * nb_dtype_size(acc->dtype));
    else nb_fill(nbi_handle(acc), 0);
    const nbi_tensor *ops[2] = {acc, in};
    nbi_iter it;
    nbi_iter_init_over(&it, in->ndim, in->shape, 2, ops);
    nbi_iter_run(&it, in->dtype == NB_F32 ? sum_f32 : in->dtype == NB_F64 ? sum_f64 : sum_i64, NULL);
    if (acc != out) {
        nbi_copy_into(out, acc);
        nbi_kill(acc);
    }
    return true;
}
