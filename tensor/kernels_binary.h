/* Binary elementwise kernels (internal). */
#ifndef NABLA_KERNELS_BINARY_H
#define NABLA_KERNELS_BINARY_H

#include "internal.h"

typedef enum nbi_binary_kind {
    NBI_ADD, NBI_SUB, NBI_MUL, NBI_DIV, NBI_POW, NBI_MAXIMUM, NBI_MINIMUM, /* arithmetic: out dtype = inputs' */
    NBI_EQ, NBI_NE, NBI_LT, NBI_LE, NBI_GT, NBI_GE                        /* comparisons: out is bool */
} nbi_binary_kind;

/* Whether kind is implemented for inputs of dtype dt. */
bool nbi_binary_supported(nbi_binary_kind kind, nb_dtype dt);
/* out = a (kind) b elementwise; a and b have the same dtype and broadcast to out's shape. */
void nbi_binary_kernel(nbi_binary_kind kind, nbi_tensor *out, const nbi_tensor *a, const nbi_tensor *b);

#endif
