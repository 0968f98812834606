/* Binary elementwise kernels (internal). */
#ifndef NABLA_KERNELS_BINARY_H
#define NABLA_KERNELS_BINARY_H

#include "internal.h"

/* Contiguous loops run in blocks of NBI_VEC_BLOCK elements, each block a loop of constant length marked free of
 * loop-carried dependences (an output is never a shifted view of an input; it may be the input itself), so
 * that the compiler vectorizes it at -O2 without runtime overlap checks or a scalar epilogue. */
#define NBI_VEC_BLOCK 16
#if defined(__clang__)
#define NBI_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define NBI_IVDEP _Pragma("GCC ivdep")
#else
#define NBI_IVDEP
#endif
/* for (i = 0; i < n; i++) BODY(i), blocked as above. */
#define NBI_VEC_FOR(n, i, BODY)                                                                            \
    do {                                                                                                  \
        int64_t i##_0 = 0;                                                                                \
        for (; i##_0 + NBI_VEC_BLOCK <= (n); i##_0 += NBI_VEC_BLOCK) {                                    \
            NBI_IVDEP for (int i##_j = 0; i##_j < NBI_VEC_BLOCK; i##_j++) {                               \
                const int64_t i = i##_0 + i##_j;                                                          \
                BODY;                                                                                     \
            }                                                                                             \
        }                                                                                                 \
        for (int64_t i = i##_0; i < (n); i++) { BODY; }                                                   \
    } while (0)

typedef enum nbi_binary_kind {
    NBI_ADD, NBI_SUB, NBI_MUL, NBI_DIV, NBI_POW, NBI_MAXIMUM, NBI_MINIMUM, /* arithmetic: out dtype = inputs' */
    /* (bool: add, mul, maximum, minimum only; div: f32 and f64 only) */
    NBI_EQ, NBI_NE, NBI_LT, NBI_LE, NBI_GT, NBI_GE                        /* comparisons: out is bool */
} nbi_binary_kind;

/* Whether kind is implemented for inputs of dtype dt. */
bool nbi_binary_supported(nbi_binary_kind kind, nb_dtype dt);
/* out = a (kind) b elementwise; a and b have the same dtype and broadcast to out's shape. */
void nbi_binary_kernel(nbi_binary_kind kind, nbi_tensor *out, const nbi_tensor *a, const nbi_tensor *b);

#endif
