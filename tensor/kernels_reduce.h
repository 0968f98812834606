/* Reduction and softmax kernels (internal). A reduction writes into `out`, which has the input's ndim with size 1
 * along the reduced dims (the keepdim layout; callers make a view of that shape when keepdim is false). Callers
 * have checked dtypes and shapes; the kernels only compute. */
#ifndef NABLA_KERNELS_REDUCE_H
#define NABLA_KERNELS_REDUCE_H

#include "internal.h"

/* out = sum of in over the dims where out has size 1 and in does not. f32 sums accumulate in double.
 * out and in have the same dtype (f32, f64 or i64). */
bool nbi_reduce_sum(nbi_tensor *out, const nbi_tensor *in); /* false (error recorded) when out of memory */
/* Same dims, divided by the number of elements reduced (NaN for an empty reduction). f32 or f64. */
bool nbi_reduce_mean(nbi_tensor *out, const nbi_tensor *in);
/* Variance (two passes, in double) with divisor max(0, N - correction); its square root when take_sqrt. */
bool nbi_reduce_var(nbi_tensor *out, const nbi_tensor *in, int64_t correction, bool take_sqrt);
/* log(sum(exp(in))) shifted by the maximum so that nothing overflows; -inf for an empty reduction. f32/f64. */
bool nbi_reduce_logsumexp(nbi_tensor *out, const nbi_tensor *in);
/* Largest (is_max) or smallest element; NaN wins, as in PyTorch. Any dtype, out's equal to in's. Every reduced
 * dim must be non-empty unless in has no elements at all. */
void nbi_reduce_extreme(nbi_tensor *out, const nbi_tensor *in, bool is_max);
/* Along one dim (which must be non-empty unless in has no elements): the i64 index of the first largest or
 * smallest element (the first NaN if any) into indices, and the element itself into values unless values is
 * NULL. Both have in's shape with size 1 at dim. A 0-d in counts as one element along dim 0. */
void nbi_reduce_arg(nbi_tensor *values, nbi_tensor *indices, const nbi_tensor *in, int dim, bool is_max);
/* out = softmax (or log_softmax when log) of in along dim; out has in's shape and dtype (f32 or f64). Each row
 * is shifted by its maximum, and sums accumulate in double. */
void nbi_softmax_kernel(nbi_tensor *out, const nbi_tensor *in, int dim, bool log);
/* The sum in double of exp(x[k stride] - shift) over k < n, with the vector exp that f32 softmax uses, so a loss
 * computed from it agrees with log_softmax to the bit. */
double nbi_sum_exp_shifted_f32(const float *x, int64_t n, int64_t stride, float shift);

#endif
