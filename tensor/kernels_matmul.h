/* Matrix product kernels (internal).
 *
 * nbi_gemm_*: C = alpha * A @ B + beta * C for an (M, K) matrix A, a (K, N) matrix B and an (M, N) matrix C,
 * each given as (pointer, row stride, column stride) in elements. Strides may be anything, including 0 and
 * swapped (a transpose is just swapped strides), so the A·Bᵀ and Aᵀ·B of a backward need no copy. C must not
 * overlap A or B. beta = 0 overwrites C without reading it (NaN in C does not leak through); alpha = 0 or
 * K = 0 reads neither A nor B. f32 products accumulate in f32, as BLAS does.
 *
 * B is packed, block by block, into the caller-provided workspace (nbi_gemm_workspace bytes) and A into a
 * small stack buffer when neither of its strides is 1 (it is read in place otherwise), so the micro-kernel
 * sees the same layout whatever the operands' (gemm_template.h describes the blocking); a batch of products
 * can share one buffer. The kernels never fail and never allocate. Small products (a few rows, a narrow
 * last column panel, short K) run on the same path: reading A in place and a half-width micro-kernel for
 * narrow panels take away most of what packing would cost them.
 *
 * Large products spread over the thread pool (nbi_parallel_for; inline when called from inside a parallel
 * region), and so do batches of small ones in nbi_matmul_kernel. Results are bit-identical for any thread count, but not across instruction sets (AVX2 and AVX-512
 * use fused multiply-adds, the portable path does not). The workspace size depends on nbi_num_threads(): ask
 * for it after any change of the thread count.
 */
#ifndef NABLA_KERNELS_MATMUL_H
#define NABLA_KERNELS_MATMUL_H

#include "internal.h"

/* Instruction sets of the GEMM micro-kernels, in increasing order. */
typedef enum nbi_isa { NBI_ISA_AUTO = -1, NBI_ISA_PORTABLE, NBI_ISA_AVX2, NBI_ISA_AVX512 } nbi_isa;
/* The one in use: the best the CPU supports, unless NABLA_ISA (avx512, avx2 or portable; read on first use)
 * asks for a lower one. */
nbi_isa nbi_gemm_isa(void);
/* Forces the kernels' instruction set (for tests and benchmarks; not while products run). An unsupported one
 * falls back to the best supported below it; returns the one now in use. NBI_ISA_AUTO returns to the default
 * choice (NABLA_ISA is read again). */
nbi_isa nbi_gemm_set_isa(nbi_isa isa);
const char *nbi_isa_name(nbi_isa isa);

/* Bytes of workspace nbi_gemm needs for an (M, K) @ (K, N) product of dtype dt (f32 or f64). */
size_t nbi_gemm_workspace(nb_dtype dt, int64_t M, int64_t N, int64_t K);

void nbi_gemm_f32(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t rsa, int64_t csa,
                  const float *B, int64_t rsb, int64_t csb, float beta, float *C, int64_t rsc, int64_t csc,
                  void *work);
void nbi_gemm_f64(int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t rsa, int64_t csa,
                  const double *B, int64_t rsb, int64_t csb, double beta, double *C, int64_t rsc, int64_t csc,
                  void *work);
/* Either of the above by dtype (alpha and beta converted to it). */
void nbi_gemm(nb_dtype dt, int64_t M, int64_t N, int64_t K, double alpha, const void *A, int64_t rsa, int64_t csa,
              const void *B, int64_t rsb, int64_t csb, double beta, void *C, int64_t rsc, int64_t csc, void *work);

/* Batched product into a contiguous c of shape (batch..., M, N) = shape[0..ndim-1] (ndim >= 2):
 * c[i] = a[i] @ b[i] where a_stride holds, for a, the strides of the batch dims (0 where a is broadcast)
 * followed by the row and column strides of its (M, K) matrices, and b_stride the same for (K, N) matrices.
 * Returns false (with an NB_ERR_NOMEM error naming fn) when the workspace cannot be allocated. */
bool nbi_matmul_kernel(nb_dtype dt, int ndim, const int64_t *shape, int64_t K, void *c, const void *a,
                       const int64_t *a_stride, const void *b, const int64_t *b_stride, const char *fn);

#endif
