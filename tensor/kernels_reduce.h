/* Reduction kernels (internal). A reduction writes into `out`, which has the input's ndim with size 1 along
 * the reduced dims (the keepdim layout; callers make a view of that shape when keepdim is false). */
#ifndef NABLA_KERNELS_REDUCE_H
#define NABLA_KERNELS_REDUCE_H

#include "internal.h"

/* out = sum of in over the dims where out has size 1 and in does not. f32 sums accumulate in double.
 * out and in have the same dtype (f32, f64 or i64). */
bool nbi_reduce_sum(nbi_tensor *out, const nbi_tensor *in); /* false (error recorded) when out of memory */

#endif
