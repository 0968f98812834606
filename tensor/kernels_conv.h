/* Convolution and pooling kernels (internal).
 *
 * A 2-d convolution of an (N, C, H, W) input with an (O, C/G, KH, KW) weight in G groups is, per image and
 * group, one matrix product: out_g (O/G, OH*OW) = W_g (O/G, K) @ col_g (K, OH*OW) with K = C/G * KH * KW and
 * col the "im2col" unfolding of the receptive fields. The input gradient is the adjoint (col = W_gᵀ @ gy_g,
 * then "col2im" adds each column back onto the pixels it came from), the weight gradient gy_g @ col_gᵀ summed
 * over images. col is never built for a whole image at once: it is made for ranges of output positions in a
 * workspace of bounded size (NBI_CONV_COL_BUDGET bytes per thread), so memory does not grow with the input.
 * Images are spread over threads; the weight gradient sums per-part partials whose split depends only on the
 * shapes, so every result is the same whatever the number of threads.
 */
#ifndef NABLA_KERNELS_CONV_H
#define NABLA_KERNELS_CONV_H

#include "internal.h"

#define NBI_CONV_COL_BUDGET ((size_t)4 << 20)

typedef struct nbi_conv_geom {
    int64_t N, C, H, W;    /* input */
    int64_t O, KH, KW;     /* weight (O, C / groups, KH, KW) */
    int64_t OH, OW;        /* output */
    int64_t sh, sw, ph, pw, dh, dw;
    int64_t groups;
} nbi_conv_geom;

/* out (N, O, OH, OW), contiguous = conv2d(x, w) + bias. x: any strides (x_stride, 4 entries); w contiguous;
 * bias NULL or contiguous (O). false (NB_ERR_NOMEM naming fn) when the workspace cannot be allocated. */
bool nbi_conv2d_kernel(nb_dtype dt, const nbi_conv_geom *g, void *out, const void *x, const int64_t *x_stride,
                       const void *w, const void *bias, const char *fn);
/* gx (N, C, H, W), contiguous = the adjoint of conv2d in x applied to gy (N, O, OH, OW): a transposed
 * convolution. gy and w contiguous. */
bool nbi_conv2d_input_grad_kernel(nb_dtype dt, const nbi_conv_geom *g, void *gx, const void *gy, const void *w,
                                  const char *fn);
/* gw (O, C / groups, KH, KW), contiguous = the adjoint of conv2d in w: sum over images and output positions of
 * gy times the matching input pixels. x: any strides; gy contiguous. */
bool nbi_conv2d_weight_grad_kernel(nb_dtype dt, const nbi_conv_geom *g, void *gw, const void *x,
                                   const int64_t *x_stride, const void *gy, const char *fn);

/* Max pooling over (N, C, H, W) with implicit -inf padding: out and idx (N, C, OH, OW) contiguous; idx holds
 * the flat position ih * W + iw of the first largest element of each window (a NaN counts as largest). Uses
 * the geometry's N, C, H, W, KH, KW, OH, OW, strides and paddings (dilations too). */
void nbi_max_pool2d_kernel(nb_dtype dt, const nbi_conv_geom *g, void *out, int64_t *idx, const void *x,
                           const int64_t *x_stride);

#endif
