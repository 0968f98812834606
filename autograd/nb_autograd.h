/* nabla autograd: the dynamic tape, backward, no-grad mode, gradient checking, and the differentiable ops.
 *
 * How it works. Every op below returns a new tensor. When grad mode is on and one of its inputs requires a
 * gradient, the result records the op and its inputs (the tape is the graph of these records). nb_backward(loss)
 * sorts the graph reachable from loss topologically (iteratively, so chains of millions of ops are fine; each
 * node is visited once however many paths reach it) and applies each op's backward formula in reverse order,
 * summing the gradients of tensors used more than once. Backward formulas are written with these same ops, so
 * with NB_CREATE_GRAPH the gradient computation is itself recorded and can be differentiated again.
 *
 * Ownership: op results follow the memory model of nb_tensor.h (owned by the current scope, or by the caller).
 * A leaf's gradient (nb_grad) is owned by the leaf: it accumulates across backward calls until nb_zero_grad.
 *
 * Errors: ops return NULL and record a message naming the op and the shapes, e.g.
 *     nb_matmul: shapes (3, 4) and (5, 6) cannot be multiplied: 4 != 5
 * A NULL input makes an op return NULL without replacing the first message.
 *
 * Broadcasting: binary and ternary elementwise ops broadcast with NumPy/PyTorch rules (align shapes at the right;
 * sizes must be equal or one of them 1). Mixed dtypes promote in the order bool < i64 < f32 < f64.
 * Gradients flow only into f32 and f64 tensors.
 *
 * Adding an op: see docs/adding-an-op.md. In short, one .c file under autograd/ holds the forward (shape checks
 * and a call to a kernel in tensor/), the backward written with these differentiable ops, and an nbi_op
 * record; its test in tests/ runs nb_gradcheck and nb_gradgradcheck in f64.
 */
#ifndef NABLA_AUTOGRAD_H
#define NABLA_AUTOGRAD_H

#include "nb_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------
 * Gradient state of a tensor
 * ---------------------------------------------------------------------------------------------- */
/* Marks a leaf (a tensor not produced by a recorded op) as needing a gradient, or stops it (freezing a
 * parameter: gradients still flow past it to other inputs). Only f32/f64 tensors can require grad.
 * Errors: NB_ERR_STATE for a non-leaf, NB_ERR_DTYPE for an integer tensor. */
NB_API nb_status nb_set_requires_grad(nb_tensor *t, bool requires_grad);
NB_API bool nb_requires_grad(const nb_tensor *t);
/* True for tensors not produced by a recorded op. */
NB_API bool nb_is_leaf(const nb_tensor *t);
/* Name of the op that produced t ("mul", "matmul", ...), or NULL for a leaf. */
NB_API const char *nb_grad_fn_name(const nb_tensor *t);
/* The accumulated gradient of t (same shape and dtype), or NULL when none has been computed (no error is
 * recorded then). The gradient is owned by t: do not free it; it stays valid until nb_zero_grad(t), the next
 * backward that replaces it under NB_CREATE_GRAPH, or t's release. */
NB_API nb_tensor *nb_grad(const nb_tensor *t);
/* Drops t's gradient (the next backward starts from zero). */
NB_API nb_status nb_zero_grad(nb_tensor *t);
/* Asks backward to also store the gradient of a non-leaf t (read it with nb_grad). */
NB_API nb_status nb_retain_grad(nb_tensor *t);
/* A new tensor sharing t's storage, not attached to any graph and not requiring grad. */
NB_API nb_tensor *nb_detach(nb_tensor *t);

/* ------------------------------------------------------------------------------------------------
 * Backward
 * ---------------------------------------------------------------------------------------------- */
typedef enum nb_backward_flags {
    NB_BACKWARD_DEFAULT = 0,
    /* Keep the graph so that backward can run through it again. Without it, backward releases each op's
     * saved inputs as it goes, and a second backward through them fails with NB_ERR_STATE. */
    NB_RETAIN_GRAPH = 1,
    /* Record the gradient computation itself (implies NB_RETAIN_GRAPH), for gradients of gradients. */
    NB_CREATE_GRAPH = 2
} nb_backward_flags;

/* Backward from a tensor with one element (seeded with 1): accumulates d root / d leaf into nb_grad(leaf) for
 * every leaf that requires grad. Errors: NB_ERR_SHAPE when root has more than one element, NB_ERR_STATE when
 * root does not require grad, when the graph was already released, or when an input of a recorded op was
 * modified in place after it was used, or an op's result after it was computed (in-place writes are not
 * recorded: write into a clone, or into tensors made under no-grad mode). */
NB_API nb_status nb_backward(nb_tensor *root);
/* Backward seeded with grad_root (same shape as root; NULL means ones for a one-element root). */
NB_API nb_status nb_backward_ex(nb_tensor *root, const nb_tensor *grad_root, nb_backward_flags flags);
/* Like torch.autograd.grad: computes d root / d inputs[i] (seeded with grad_root, NULL = ones for a one-element
 * root) into grads_out[i] without touching any tensor's accumulated gradient. grads_out[i] is a new tensor
 * owned like any op result, or a tensor of zeros when root does not depend on inputs[i]. */
NB_API nb_status nb_grad_of(nb_tensor *root, const nb_tensor *grad_root, int n, nb_tensor *const *inputs,
                            nb_tensor **grads_out, nb_backward_flags flags);

/* Anomaly detection, per thread (like torch.autograd.detect_anomaly), for finding where a NaN or an infinity
 * first appears. While it is on, every differentiable op checks its result: a NaN that none of its inputs had,
 * or an infinity computed from finite inputs (log(0), overflow, 1/0), makes the op fail with NB_ERR_VALUE and a
 * message naming the op, the position of the first bad element, each input's label, shape, dtype and range,
 * and the op's number since detection was turned on (ops are counted 1, 2, ... on the thread), e.g.
 *     nb_log: anomaly: output (2) contains NaN at index 1, which no input had; op #3 since anomaly detection
 *     was turned on; inputs: x = 'h' (2) f32 in [-1, 2]
 * (masked_fill may write an infinity on purpose; only a NaN is flagged there). In backward, the gradient each
 * op hands to each input is checked: nb_backward fails with NB_ERR_VALUE naming the op whose backward produced
 * the NaN or infinity, its number from the forward pass, and the input. Off by default: the checks read every
 * result, so they cost time. */
NB_API void nb_set_detect_anomaly(bool on);
NB_API bool nb_is_anomaly_enabled(void);

/* No-grad mode, per thread and nestable: while it is on, ops record nothing. */
NB_API void nb_no_grad_begin(void);
NB_API void nb_no_grad_end(void);
NB_API bool nb_is_grad_enabled(void);

/* ------------------------------------------------------------------------------------------------
 * Gradient checking: the way to test a new op.
 * f maps the inputs to one output tensor of any shape; the inputs must be f64 leaves requiring grad.
 * nb_gradcheck compares the full Jacobian from backward with central finite differences; on a mismatch it
 * returns NB_ERR_GRADCHECK and the message names the input, element index, output element, analytical and
 * numerical values. nb_gradgradcheck does the same for the gradient of (a random projection of) the first
 * derivatives, computed with NB_CREATE_GRAPH.
 * ---------------------------------------------------------------------------------------------- */
typedef nb_tensor *(*nb_function)(nb_tensor *const *inputs, void *user_data);
typedef struct nb_gradcheck_options {
    double eps;  /* finite-difference step; default 1e-6 */
    double atol; /* absolute tolerance; default 1e-5 */
    double rtol; /* relative tolerance; default 1e-3 */
} nb_gradcheck_options;
NB_API nb_status nb_gradcheck(nb_function f, void *user_data, int n, nb_tensor *const *inputs,
                              const nb_gradcheck_options *options /* NULL for defaults */);
NB_API nb_status nb_gradgradcheck(nb_function f, void *user_data, int n, nb_tensor *const *inputs,
                                  const nb_gradcheck_options *options);

/* ------------------------------------------------------------------------------------------------
 * Elementwise binary ops (broadcasting; result dtype by promotion)
 * The result has the promoted dtype of a and b (bool < i64 < f32 < f64), with PyTorch's exceptions:
 *  - nb_div of two integer or bool tensors is f32 (true division: 1 / 2 is 0.5, 1 / 0 is inf).
 *  - two bool tensors give bool for nb_add and nb_maximum (logical or) and nb_mul and nb_minimum (logical and).
 *  - nb_sub with a bool operand (either one) is NB_ERR_DTYPE, as in PyTorch: nb_ne is exclusive or,
 *    nb_eq_scalar(mask, 0) inverts a mask, or convert with nb_to_dtype.
 *  - nb_pow of integer tensors (i64, or bool with i64) is i64, by repeated multiplication wrapping on overflow
 *    like the other integer ops; a negative exponent gives 1 for a base of 1, -1 or 1 for -1 (odd or even
 *    exponent) and 0 for any other base (0 included). nb_pow of two bool tensors is NB_ERR_DTYPE.
 * ---------------------------------------------------------------------------------------------- */
NB_API nb_tensor *nb_add(nb_tensor *a, nb_tensor *b);     /* a + b */
NB_API nb_tensor *nb_sub(nb_tensor *a, nb_tensor *b);     /* a - b */
NB_API nb_tensor *nb_mul(nb_tensor *a, nb_tensor *b);     /* a * b */
NB_API nb_tensor *nb_div(nb_tensor *a, nb_tensor *b);     /* a / b */
/* a ^ b; as in PyTorch, d/da = b a^(b-1) is taken as 0 where b = 0 and d/db = a^b log a as 0 where a = 0 and
 * b >= 0 (not NaN). */
NB_API nb_tensor *nb_pow(nb_tensor *a, nb_tensor *b);
/* max(a, b) and min(a, b). On ties the gradient is split evenly; where a or b is NaN, both get all of it
 * (as in PyTorch). */
NB_API nb_tensor *nb_maximum(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_minimum(nb_tensor *a, nb_tensor *b);

/* Scalar forms. The result's dtype follows PyTorch's rule for a tensor with a Python scalar: f32 and f64 t keep
 * their dtype; an i64 or bool t with an integral s (finite, whole, within the i64 range; it stands for a Python
 * int, never for True or False) gives i64 (bool + 2 is i64 3, bool * 1 is i64); any other s (2.5, inf, NaN, 1e19)
 * makes the result f32. Division of an i64 or bool t is f32 whatever s is, as nb_div. Powers of an i64 or bool t
 * follow nb_pow: i64 for an integral s (nb_rpow_scalar too), f32 for any other; nb_pow_scalar of an i64 or bool t
 * to a negative integral power is NB_ERR_VALUE (PyTorch: "Integers to negative integer powers are not allowed").
 * nb_sub_scalar and nb_rsub_scalar of a bool t are NB_ERR_DTYPE, as nb_sub. */
NB_API nb_tensor *nb_add_scalar(nb_tensor *t, double s);  /* t + s */
NB_API nb_tensor *nb_sub_scalar(nb_tensor *t, double s);  /* t - s */
NB_API nb_tensor *nb_rsub_scalar(double s, nb_tensor *t); /* s - t */
NB_API nb_tensor *nb_mul_scalar(nb_tensor *t, double s);  /* t * s */
NB_API nb_tensor *nb_div_scalar(nb_tensor *t, double s);  /* t / s */
NB_API nb_tensor *nb_rdiv_scalar(double s, nb_tensor *t); /* s / t */
NB_API nb_tensor *nb_pow_scalar(nb_tensor *t, double p);  /* t ^ p */
NB_API nb_tensor *nb_rpow_scalar(double s, nb_tensor *t); /* s ^ t */

/* Comparisons (broadcasting, no gradient): bool tensors of 0/1. */
NB_API nb_tensor *nb_eq(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_ne(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_lt(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_le(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_gt(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_ge(nb_tensor *a, nb_tensor *b);
/* The scalar forms compare in the dtype the scalar rule above gives: a bool t never equals 2, an i64 t is
 * compared with 2.5 or inf as f32. */
NB_API nb_tensor *nb_gt_scalar(nb_tensor *t, double s);
NB_API nb_tensor *nb_lt_scalar(nb_tensor *t, double s);
NB_API nb_tensor *nb_eq_scalar(nb_tensor *t, double s);

/* ------------------------------------------------------------------------------------------------
 * Elementwise unary ops: a new contiguous tensor of the input's shape and dtype.
 * nb_neg, nb_abs, nb_square and nb_relu also take i64 (integer arithmetic, wrapping on overflow), nb_sign i64 and
 * bool; every other op needs f32 or f64 and fails with NB_ERR_DTYPE on i64 and bool, where PyTorch would promote
 * to float: convert explicitly with nb_to_dtype. Derivatives at kinks follow PyTorch (relu'(0) = abs'(0) = 0,
 * leaky_relu'(0) = slope, elu'(0) = alpha). A NaN scalar parameter is NB_ERR_VALUE.
 * Second derivatives: as in PyTorch, the gradient of relu, leaky_relu and abs taken with NB_CREATE_GRAPH depends
 * on t (with derivative 0) whenever t requires grad, even if the upstream gradient does not, so it can be
 * differentiated again and gives t a zero gradient; that of clamp does not depend on t (as torch.clamp's).
 * Accuracy: f64 uses the C library. f32 exp, log, tanh, sigmoid, silu and gelu (both forms), and softmax and
 * cross-entropy over rows of more than 16 classes, use nabla's vectorized functions: within a few ulp of the correctly rounded result (exp and log
 * 1 ulp, tanh 1.5, sigmoid 2.5; test_vecmath measures them), the same bits on AVX2 and AVX-512 and for any
 * layout, position or thread count; the portable build (no FMA) may differ in the last bit. The tanh form of
 * gelu is evaluated as t sigmoid(2u), which avoids the cancellation of 1 + tanh(u) for negative t.
 * ---------------------------------------------------------------------------------------------- */
NB_API nb_tensor *nb_neg(nb_tensor *t);        /* -t */
NB_API nb_tensor *nb_exp(nb_tensor *t);        /* e^t */
NB_API nb_tensor *nb_log(nb_tensor *t);        /* ln t */
NB_API nb_tensor *nb_sqrt(nb_tensor *t);       /* sqrt(t) */
NB_API nb_tensor *nb_rsqrt(nb_tensor *t);      /* 1 / sqrt(t) */
NB_API nb_tensor *nb_square(nb_tensor *t);     /* t^2 */
NB_API nb_tensor *nb_reciprocal(nb_tensor *t); /* 1 / t */
NB_API nb_tensor *nb_abs(nb_tensor *t);        /* |t|; gradient sign(t), 0 at 0 */
/* sign(t) as torch.sign: -1, 0 or +1 in t's dtype (f32, f64, i64; a bool t gives itself). As PyTorch 1.13
 * computes it, a NaN has sign 0 and -0 has sign +0. Its derivative is 0 everywhere: a float t requiring grad
 * gets a gradient of zeros. */
NB_API nb_tensor *nb_sign(nb_tensor *t);
NB_API nb_tensor *nb_sin(nb_tensor *t);
NB_API nb_tensor *nb_cos(nb_tensor *t);
NB_API nb_tensor *nb_tanh(nb_tensor *t);
NB_API nb_tensor *nb_sigmoid(nb_tensor *t);    /* 1 / (1 + e^-t), stable for large |t| */
NB_API nb_tensor *nb_relu(nb_tensor *t);       /* max(t, 0); gradient 0 at 0, 1 at NaN (as PyTorch) */
NB_API nb_tensor *nb_leaky_relu(nb_tensor *t, double negative_slope); /* t if t > 0 else slope * t */
NB_API nb_tensor *nb_elu(nb_tensor *t, double alpha);                 /* t if t > 0 else alpha (e^t - 1) */
/* gelu(t) = t Phi(t) with Phi the standard normal CDF (erf form), or with approximate = true the tanh form
 * 0.5 t (1 + tanh(sqrt(2/pi) (t + 0.044715 t^3))). */
NB_API nb_tensor *nb_gelu(nb_tensor *t, bool approximate);
NB_API nb_tensor *nb_silu(nb_tensor *t);       /* t sigmoid(t) */
/* softplus(t) = log(1 + e^(beta t)) / beta, and t itself where beta t > threshold (PyTorch: beta 1, threshold 20).
 * NB_ERR_VALUE when beta is 0 or not finite, or threshold is NaN. */
NB_API nb_tensor *nb_softplus(nb_tensor *t, double beta, double threshold);
/* clamp(t, lo, hi); pass -INFINITY or INFINITY for no bound. Gradient 1 inside [lo, hi], 0 outside.
 * lo > hi gives hi everywhere (as torch.clamp); NaN bounds are NB_ERR_VALUE. */
NB_API nb_tensor *nb_clamp(nb_tensor *t, double lo, double hi);

/* ------------------------------------------------------------------------------------------------
 * Reductions. (ndims, dims) lists the dims to reduce; ndims = 0 (dims NULL) reduces over all elements.
 * keepdim keeps reduced dims with size 1. Dims may be negative; repeated dims are an error.
 * ---------------------------------------------------------------------------------------------- */
NB_API nb_tensor *nb_sum(nb_tensor *t, int ndims, const int *dims, bool keepdim);
NB_API nb_tensor *nb_mean(nb_tensor *t, int ndims, const int *dims, bool keepdim);
/* Variance and standard deviation; unbiased divides by N - 1 (PyTorch's default) instead of N. */
NB_API nb_tensor *nb_var(nb_tensor *t, int ndims, const int *dims, bool unbiased, bool keepdim);
NB_API nb_tensor *nb_std(nb_tensor *t, int ndims, const int *dims, bool unbiased, bool keepdim);
/* log(sum(exp(t))) computed stably. */
NB_API nb_tensor *nb_logsumexp(nb_tensor *t, int ndims, const int *dims, bool keepdim);
/* Largest / smallest element over all of t (0-d). The gradient is split evenly among ties; when the result
 * is NaN (t holds a NaN), among the NaNs. */
NB_API nb_tensor *nb_max(nb_tensor *t);
NB_API nb_tensor *nb_min(nb_tensor *t);
/* Largest / smallest along dim, and (when indices is not NULL) the i64 index of the first such element in
 * *indices (a new tensor). The gradient flows to that index. */
NB_API nb_tensor *nb_max_dim(nb_tensor *t, int dim, bool keepdim, nb_tensor **indices);
NB_API nb_tensor *nb_min_dim(nb_tensor *t, int dim, bool keepdim, nb_tensor **indices);
/* Index (i64) of the first largest / smallest element along dim. No gradient. */
NB_API nb_tensor *nb_argmax(nb_tensor *t, int dim, bool keepdim);
NB_API nb_tensor *nb_argmin(nb_tensor *t, int dim, bool keepdim);
/* Sums t down to `shape`, the inverse of broadcasting (used by the backward of broadcasting ops). */
NB_API nb_tensor *nb_sum_to(nb_tensor *t, int ndim, const int64_t *shape);

/* softmax(t)_i = e^(t_i - max) / sum_j e^(t_j - max) along dim; log_softmax = t - logsumexp(t). Stable for
 * logits of any magnitude. */
NB_API nb_tensor *nb_softmax(nb_tensor *t, int dim);
NB_API nb_tensor *nb_log_softmax(nb_tensor *t, int dim);

/* ------------------------------------------------------------------------------------------------
 * Matrix product with torch.matmul semantics:
 *  (n)·(n) -> ();  (m,n)·(n) -> (m);  (n)·(n,p) -> (p);  (m,n)·(n,p) -> (m,p);
 *  (...,m,n)·(...,n,p) -> (...,m,p) with the batch dims (...) broadcast; a 1-d operand is promoted to a
 *  matrix and the added dim removed from the result.
 * f32 and f64 (mixed: promoted to f64, gradients flow back in each input's dtype); f32 accumulates in f32,
 * as BLAS does. Errors: NB_ERR_SHAPE for a 0-d operand, inner sizes that differ or batch dims that do not
 * broadcast; NB_ERR_DTYPE for integer or bool operands.
 * ---------------------------------------------------------------------------------------------- */
NB_API nb_tensor *nb_matmul(nb_tensor *a, nb_tensor *b);
/* The affine map of a Linear layer (torch.nn.functional.linear): x @ weightᵀ + bias for x of shape (..., in),
 * weight (out, in) and bias (out) or NULL, giving (..., out). One op: the product is written straight into the
 * result and the weight's gradient comes out in weight's own layout. Operands of mixed float dtypes are promoted
 * as by nb_matmul. Errors: NB_ERR_SHAPE when x's last dim is not in, weight is not 2-d, or bias is not (out);
 * NB_ERR_DTYPE for integer or bool operands. */
NB_API nb_tensor *nb_affine(nb_tensor *x, nb_tensor *weight, nb_tensor *bias);

/* ------------------------------------------------------------------------------------------------
 * Shape ops. Views share storage with their input (writes through one are visible in the other);
 * the others copy. All are differentiable.
 * ---------------------------------------------------------------------------------------------- */
/* New shape with the same number of elements; one entry may be -1 (inferred). A view when the strides allow
 * it (PyTorch's rule: dims that are contiguous with each other may be split and merged), else a copy.
 * NB_ERR_SHAPE, naming both shapes, when the sizes do not fit (or a -1 sits next to a 0, which is ambiguous). */
NB_API nb_tensor *nb_reshape(nb_tensor *t, int ndim, const int64_t *shape);
/* Like reshape but never copies: NB_ERR_SHAPE when the strides do not allow a view. */
NB_API nb_tensor *nb_view(nb_tensor *t, int ndim, const int64_t *shape);
/* Merges dims start..end (inclusive) into one. View when possible. */
NB_API nb_tensor *nb_flatten(nb_tensor *t, int start_dim, int end_dim);
/* View with dims d0 and d1 swapped. */
NB_API nb_tensor *nb_transpose(nb_tensor *t, int d0, int d1);
/* View with dims reordered: result dim i is input dim dims[i]; ndims must equal nb_ndim(t). */
NB_API nb_tensor *nb_permute(nb_tensor *t, int ndims, const int *dims);
/* View broadcasting size-1 dims to `shape` (new leading dims allowed; -1 keeps a size). */
NB_API nb_tensor *nb_expand(nb_tensor *t, int ndim, const int64_t *shape);
/* View without dim `dim`, which must have size 1 (NB_ERR_SHAPE otherwise, where PyTorch would do nothing).
 * A 0-d tensor squeezes to itself (dim 0 or -1). */
NB_API nb_tensor *nb_squeeze(nb_tensor *t, int dim);
/* View with a new size-1 dim at position dim (in 0..ndim; negative counts from ndim+1). */
NB_API nb_tensor *nb_unsqueeze(nb_tensor *t, int dim);
/* View of elements start..start+length-1 along dim. start may be negative (counted from the end); NB_ERR_INDEX
 * when start is outside -size..size or start + length > size, NB_ERR_VALUE for a negative length. */
NB_API nb_tensor *nb_narrow(nb_tensor *t, int dim, int64_t start, int64_t length);
/* View of start:end:step along dim, with Python slicing rules for negative and out-of-range bounds (pass
 * INT64_MAX as end for "to the end"); step > 0, else NB_ERR_ARG. */
NB_API nb_tensor *nb_slice(nb_tensor *t, int dim, int64_t start, int64_t end, int64_t step);
/* Contiguous copy (or t itself, as a new handle sharing storage, when already contiguous). */
NB_API nb_tensor *nb_contiguous(nb_tensor *t);
/* Always a new contiguous copy. */
NB_API nb_tensor *nb_clone(nb_tensor *t);
/* Converted copy (differentiable between f32 and f64). */
NB_API nb_tensor *nb_to_dtype(nb_tensor *t, nb_dtype dtype);
/* Concatenation of n >= 1 tensors along an existing dim (a copy); all other sizes must match. Mixed dtypes
 * promote. As in PyTorch, 1-d empty tensors (shape (0)) are skipped whatever the others' rank. */
NB_API nb_tensor *nb_cat(int n, nb_tensor *const *tensors, int dim);
/* Stacking of n >= 1 same-shape tensors along a new dim (0..ndim; negative counts from ndim+1). */
NB_API nb_tensor *nb_stack(int n, nb_tensor *const *tensors, int dim);

/* ------------------------------------------------------------------------------------------------
 * Indexing ops (index tensors are i64; out-of-range indices are errors naming the index and the size)
 * ---------------------------------------------------------------------------------------------- */
/* Rows of t along dim picked by a 1-d index: result size along dim is numel(index). */
NB_API nb_tensor *nb_index_select(nb_tensor *t, int dim, nb_tensor *index);
/* out[i][j] = t[index[i][j]][j] for dim 0 (and so on): index has t's ndim and index.size(d) <= t.size(d) for
 * d != dim; result has index's shape. */
NB_API nb_tensor *nb_gather(nb_tensor *t, int dim, nb_tensor *index);
/* Copy of t with src added at the positions index names along dim: out[index[i][j]][j] += src[i][j] for dim 0
 * (repeated indices accumulate). index, src and t have the same ndim; index.size(d) <= src.size(d) for every d
 * (only that leading part of src is used) and <= t.size(d) for d != dim; src has t's dtype (f32, f64 or i64). */
NB_API nb_tensor *nb_scatter_add(nb_tensor *t, int dim, nb_tensor *index, nb_tensor *src);
/* Rows of weight (num, dim) picked by an i64 tensor of any shape: result shape index.shape + (dim). */
NB_API nb_tensor *nb_embedding(nb_tensor *weight, nb_tensor *indices);
/* cond ? a : b elementwise, broadcasting all three; cond is any dtype, nonzero meaning true. */
NB_API nb_tensor *nb_where(nb_tensor *cond, nb_tensor *a, nb_tensor *b);
/* Copy of t with value where mask (broadcast to t's shape) is nonzero. */
NB_API nb_tensor *nb_masked_fill(nb_tensor *t, nb_tensor *mask, double value);

/* ------------------------------------------------------------------------------------------------
 * Seeing the graph and the chain rule (autograd/visualize.c, autograd/trace.c): labels, Graphviz pictures
 * of a graph, a step-by-step trace of backward, and micrograd-style printing of a value and its gradient.
 * ---------------------------------------------------------------------------------------------- */
/* Longest label, in bytes. */
#define NB_LABEL_MAX 31
/* Gives t a short name shown by the DOT export, the backward trace and nb_print_value_grad (copied; the
 * label belongs to the tensor, not to views or results made from it). NULL or "" removes it.
 * Errors: NB_ERR_ARG when label is longer than NB_LABEL_MAX bytes or contains a control character
 * (newline, tab, ...); the tensor keeps its previous label then. */
NB_API nb_status nb_set_label(nb_tensor *t, const char *label);
/* t's label, or NULL when it has none (no error is recorded then) or t is invalid. The text stays valid until
 * the next nb_set_label on t or t's release. */
NB_API const char *nb_label(const nb_tensor *t);

/* Writes the graph reachable from root in Graphviz DOT: a record node per tensor (its label, or #k for an
 * unlabelled one; shape and dtype; and for tensors of at most 8 elements the value and the gradient, if any) and
 * an ellipse per op (its name), with edges input -> op -> output; the inputs of multi-input ops are marked on
 * their edge with the names the op's derivative formula uses (a, b for nb_sub: a - b). Tensors are numbered
 * breadth-first from root (root is #0 and node t0, the op that made it op0; then its inputs in order, ...), the
 * same numbers the backward trace uses, so the same graph always gives the same text. Leaves that require grad
 * are filled light blue; a tensor without a recorded op (a leaf, a constant, a result computed without grad)
 * ends the walk. Errors: NB_ERR_NULL for a NULL file, NB_ERR_IO when writing fails. */
NB_API nb_status nb_dot_write(const nb_tensor *root, FILE *out);
/* nb_dot_write into the file at path (created or truncated). NB_ERR_IO naming the path when it cannot be
 * written. */
NB_API nb_status nb_dot_save(const nb_tensor *root, const char *path);
/* Renders the graph to an SVG file by running Graphviz's `dot -Tsvg` (found on PATH; the path is passed to it as
 * one argument, never through a shell). When `dot` is not installed, returns NB_ERR_STATE with the message
 * "nb_dot_render_svg: Graphviz 'dot' not found on PATH; install graphviz or use nb_dot_save" and writes nothing.
 * NB_ERR_IO when dot fails (its exit status is in the message). */
NB_API nb_status nb_dot_render_svg(const nb_tensor *root, const char *svg_path);

/* Turns the backward trace on for the calling thread, writing to out, or off with NULL. Setting NABLA_TRACE=1 in
 * the environment (any value but empty or 0) turns it on, to stderr, for every thread that has not called this
 * function; the variable is read once, at the first backward.
 * With the trace on, nb_backward (and nb_backward_ex, nb_grad_of) prints each step in topological order: the
 * node (op name, label, shape, value), the upstream gradient d root / d node, the op's local derivative (its
 * formula, and for elementwise ops its value d out / d input), and the gradient handed to each input (the
 * upstream gradient times the local derivative, for an elementwise op). Tensors of at most 8 elements are
 * printed as numbers (4 decimals), larger ones as "(N values)" (shapes are on each tensor's line). Unlabelled tensors are named #k, their number in the DOT
 * export of the same root. At the end, the accumulated gradient of every leaf is printed. Tracing costs one
 * branch per node when off; when on, each small elementwise step runs its op's backward once more (seeded with
 * ones, without recording) to show the local derivative. out is not closed; keep it open while tracing. */
NB_API void nb_trace_backward(FILE *out);

/* Prints t micrograd-style, followed by a newline: "a: value 2.0000 grad -3.0000" for a tensor of at most 8
 * elements ("[1.0000, 2.0000]" for several; "grad none" before any backward; the label and colon are omitted
 * without a label), and nabla's usual format for value and grad of a larger tensor. nb_print_value_grad
 * writes to stdout. Errors: NB_ERR_NULL for a NULL file, NB_ERR_IO when writing fails. */
NB_API nb_status nb_fprint_value_grad(FILE *out, const nb_tensor *t);
NB_API nb_status nb_print_value_grad(const nb_tensor *t);

/* ------------------------------------------------------------------------------------------------
 * Convolution and pooling, on NCHW tensors (f32 or f64; input, weight and bias of one dtype). Pairs of
 * per-dimension parameters (height, width) are `const int64_t[2]` arrays; NULL means the default noted.
 * Output sizes, as PyTorch (floor mode):  OH = (H + 2 ph - dh (KH - 1) - 1) / sh + 1  (same for W).
 * Errors: NB_ERR_SHAPE naming the op and the shapes (wrong rank, channel mismatch, kernel larger than the padded
 * input, bias not (O)), NB_ERR_ARG for stride < 1, padding < 0, dilation < 1, groups < 1, NB_ERR_DTYPE for
 * integer or mixed dtypes. Every op has first and second derivatives (gradients of gradients). As in PyTorch, the
 * gradient of each pooling taken with NB_CREATE_GRAPH depends on the input (with derivative 0) whenever the input
 * requires grad, so differentiating it again gives the input a zero gradient rather than an error.
 * ---------------------------------------------------------------------------------------------- */
/* 2-d cross-correlation, as torch.nn.functional.conv2d with zero padding:
 *     out[n, o, i, j] = bias[o] + sum_{c, kh, kw} weight[o, c, kh, kw]
 *                                    * input[n, g Cg + c, i sh - ph + kh dh, j sw - pw + kw dw]
 * with g = o / (O / groups) the group of o and Cg = C / groups (out-of-range pixels read as 0).
 * input (N, C, H, W), weight (O, C / groups, KH, KW), bias (O) or NULL -> (N, O, OH, OW). groups must divide C and
 * O; groups = C is a depthwise convolution. stride (default 1, 1), padding (0, 0), dilation (1, 1).
 * Computed as matrix products over im2col unfoldings made in bounded chunks (4 MiB per thread), images spread
 * over threads; the results (gradients included) do not depend on the thread count. */
NB_API nb_tensor *nb_conv2d(nb_tensor *input, nb_tensor *weight, nb_tensor *bias, const int64_t *stride,
                            const int64_t *padding, const int64_t *dilation, int64_t groups);
/* 1-d form: input (N, C, L), weight (O, C / groups, K), bias (O) or NULL -> (N, O, (L + 2 p - d (K - 1) - 1) / s + 1). */
NB_API nb_tensor *nb_conv1d(nb_tensor *input, nb_tensor *weight, nb_tensor *bias, int64_t stride, int64_t padding,
                            int64_t dilation, int64_t groups);
/* Transposed convolution (the gradient of nb_conv2d with respect to its input), as torch's conv_transpose2d:
 * input (N, C_in, H, W), weight (C_in, C_out / groups, KH, KW), bias (C_out) or NULL -> (N, C_out, OH, OW) with
 *     OH = (H - 1) sh - 2 ph + dh (KH - 1) + output_padding_h + 1
 * output_padding (default 0, 0) must be smaller than the stride or the dilation. */
NB_API nb_tensor *nb_conv_transpose2d(nb_tensor *input, nb_tensor *weight, nb_tensor *bias, const int64_t *stride,
                                      const int64_t *padding, const int64_t *output_padding,
                                      const int64_t *dilation, int64_t groups);

/* Max pooling: out[n, c, i, j] = max over the window (kernel, stride, padding) of input (N, C, H, W), padding
 * counting as -inf. kernel (KH, KW) >= 1; stride NULL means kernel; padding NULL means (0, 0) and must be at most
 * half the kernel. The gradient flows to the first largest element of each window (a NaN counts as largest), as
 * PyTorch. indices, when not NULL, receives a new i64 tensor of the output's shape holding that element's flat
 * position h W + w in its (H, W) plane (PyTorch's return_indices). */
NB_API nb_tensor *nb_max_pool2d(nb_tensor *input, const int64_t *kernel, const int64_t *stride,
                                const int64_t *padding, nb_tensor **indices);
/* Average pooling with zero padding: the window sum divided by KH KW when count_include_pad (PyTorch's default),
 * else by the number of window elements inside the input. Same parameters and limits as nb_max_pool2d. */
NB_API nb_tensor *nb_avg_pool2d(nb_tensor *input, const int64_t *kernel, const int64_t *stride,
                                const int64_t *padding, bool count_include_pad);
/* Adaptive average pooling to (out_h, out_w), as PyTorch: output row i averages input rows
 * floor(i H / out_h) .. ceil((i + 1) H / out_h) - 1, and the same for columns. out_h, out_w >= 1. */
NB_API nb_tensor *nb_adaptive_avg_pool2d(nb_tensor *input, int64_t out_h, int64_t out_w);

/* Batch normalization over (N, C, ...) inputs (BatchNorm1d/2d/3d's function), per channel c:
 *     out = (input - mean_c) / sqrt(var_c + eps) * weight[c] + bias[c]
 * training: mean and biased var of the batch over every dim but 1 (which need more than one value per channel);
 * running_mean and running_var (C), when not NULL, are updated in place without a graph:
 *     r = (1 - momentum) r + momentum batch_stat   (the variance unbiased, N/(N-1) times the batch's)
 * eval (training false): mean and var are running_mean and running_var (then required). weight and bias (C), each
 * or both NULL (then no scaling, no shift). momentum in [0, 1], eps >= 0 finite. Gradients flow to input, weight
 * and bias. An empty batch gives an empty result and leaves the running statistics unchanged (as PyTorch). */
NB_API nb_tensor *nb_batch_norm(nb_tensor *input, nb_tensor *running_mean, nb_tensor *running_var,
                                nb_tensor *weight, nb_tensor *bias, bool training, double momentum, double eps);
/* Channel dropout (Dropout2d): in training, zeroes each whole channel input[n, c] of an (N, C, H, W) (or (N, C, L))
 * input with probability p and scales the others by 1 / (1 - p); otherwise (or p = 0) returns the input as a new
 * handle. p in [0, 1] (1 gives zeros), else NB_ERR_ARG. Training needs a 3-d or 4-d input (NB_ERR_SHAPE); in
 * evaluation an input of any rank and dtype is returned as it is (torch 1.13 does the same, with a warning).
 * g NULL means the thread's default generator. */
NB_API nb_tensor *nb_dropout2d(nb_tensor *input, double p, bool training, nb_generator *g);

#ifdef __cplusplus
}
#endif
#endif
