/* Indexing kernels (internal): range checks, gather, scatter-add, where and masked fill.
 *
 * Gather and scatter-add are written once for every indexing op. Each operand is seen through an explicit
 * stride vector over the iteration shape, so index_select (an index broadcast along all dims but one) and
 * embedding (an index of any shape picking rows) are the same loop as gather. The indexed tensor's stride
 * along the indexed dim is passed separately as dim_stride and is 0 in its stride vector. */
#ifndef NABLA_KERNELS_INDEX_H
#define NABLA_KERNELS_INDEX_H

#include "internal.h"

/* Whether every element of the i64 tensor index lies in [0, size). On false, *bad is the first offending
 * value in row-major order. */
bool nbi_index_in_range(const nbi_tensor *index, int64_t size, int64_t *bad);

/* For every position p of out's shape (out contiguous):
 *     out[p] = src[p . src_stride + index[p . index_stride] * dim_stride]
 * src has out's dtype; indices must already be checked. */
void nbi_gather_kernel(nbi_tensor *out, const nbi_tensor *src, const int64_t *src_stride, int64_t dim_stride,
                       const nbi_tensor *index, const int64_t *index_stride);

/* For every position p of shape (ndim dims, in order, so repeated indices accumulate deterministically):
 *     out[p . out_stride + index[p . index_stride] * dim_stride] += src[p]
 * src is read through its own strides (its sizes may exceed shape's: only the leading corner is used) and has
 * out's dtype (f32, f64 or i64). */
void nbi_scatter_add_kernel(nbi_tensor *out, const int64_t *out_stride, int64_t dim_stride, const nbi_tensor *index,
                            const int64_t *index_stride, const nbi_tensor *src, int ndim, const int64_t *shape);

/* out = cond ? a : b, each broadcast to out's shape; cond is bool, a and b have out's dtype. */
void nbi_where_kernel(nbi_tensor *out, const nbi_tensor *cond, const nbi_tensor *a, const nbi_tensor *b);

/* out[p] = value wherever mask (bool, broadcast to out's shape) is set; value is already in out's dtype's range. */
void nbi_masked_fill_kernel(nbi_tensor *out, const nbi_tensor *mask, double value);

#endif
