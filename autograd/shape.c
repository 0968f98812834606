/* Shape ops: views (reshape/view, transpose, permute, squeeze, unsqueeze, narrow, slice) and the copying
 * ops cat and stack.
 *
 * A view is a new header on the same storage with its own shape, strides and offset; no data moves. Each
 * view's backward maps the gradient back to the input's layout with another shape op, so gradients of
 * gradients work. The one op with no natural inverse among the public ones is the adjoint of narrow/slice
 * (a zero tensor with the gradient placed in the slice): it is the internal op "slice_backward" below, whose
 * own backward is a slice again.
 */
#include "autograd_internal.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Shared helpers
 * ---------------------------------------------------------------------------------------------- */
/* A view of t recorded as op (input t). */
static nb_tensor *make_view(nbi_tensor *t, int ndim, const int64_t *shape, const int64_t *stride, int64_t offset,
                            const nbi_op *op, const void *ctx, size_t ctx_size, const char *fn)
{
    nbi_tensor *out = nbi_tensor_new_view(t->storage, t->dtype, ndim, shape, stride, offset, fn);
    return nbi_record(out, op, 1, &t, ctx, ctx_size);
}

/* Wraps dim into 0..extent-1 or records "<fn>: dim D out of range for shape S (expected -E to E-1)".
 * extent is ndim for most ops, ndim + 1 where a dim is inserted; PyTorch lets a 0-d tensor be addressed as
 * if it had one dim for transpose, squeeze and flatten, and those callers pass 1 then. */
static bool wrap_dim(const char *fn, const nbi_tensor *t, int dim, int extent, int *out)
{
    int d = extent > 0 ? nbi_wrap_dim(dim, extent) : -1;
    if (d >= 0) {
        *out = d;
        return true;
    }
    char b[NBI_SHAPE_STR];
    if (extent == 0)
        nbi_error(NB_ERR_ARG, "%s: dim %d out of range for a 0-d tensor (shape %s has no dims)", fn, dim,
                  nbi_shape_fmt(b, t->ndim, t->shape));
    else
        nbi_error(NB_ERR_ARG, "%s: dim %d out of range for shape %s (expected %d to %d)", fn, dim,
                  nbi_shape_fmt(b, t->ndim, t->shape), -extent, extent - 1);
    return false;
}

/* ------------------------------------------------------------------------------------------------
 * reshape, view, flatten
 * ---------------------------------------------------------------------------------------------- */
/* Resolves the requested shape (one -1 inferred) against t's element count into out. */
static nb_status resolve_shape(const char *fn, const nbi_tensor *t, int ndim, const int64_t *shape, int64_t *out)
{
    char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
    if (ndim < 0 || ndim > NB_MAX_DIMS)
        return nbi_fail(NB_ERR_SHAPE, "%s: %d dims requested for a tensor of shape %s; nabla supports 0 to %d", fn,
                        ndim, nbi_shape_fmt(a, t->ndim, t->shape), NB_MAX_DIMS);
    if (ndim > 0 && !shape) return nbi_fail(NB_ERR_NULL, "%s: shape is NULL for %d dims", fn, ndim);
    int infer = -1;
    int64_t known = 1;
    bool overflow = false;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == -1) {
            if (infer >= 0)
                return nbi_fail(NB_ERR_SHAPE, "%s: only one size may be -1, shape %s has several (tensor of shape %s)",
                                fn, nbi_shape_fmt(b, ndim, shape), nbi_shape_fmt(a, t->ndim, t->shape));
            infer = d;
            continue;
        }
        if (shape[d] < 0)
            return nbi_fail(NB_ERR_SHAPE, "%s: invalid size %lld in shape %s (tensor of shape %s)", fn,
                            (long long)shape[d], nbi_shape_fmt(b, ndim, shape),
                            nbi_shape_fmt(a, t->ndim, t->shape));
        overflow |= __builtin_mul_overflow(known, shape[d], &known);
        out[d] = shape[d];
    }
    if (infer >= 0) {
        if (known == 0 || overflow || t->numel % known != 0)
            return nbi_fail(NB_ERR_SHAPE,
                            "%s: cannot reshape a tensor of shape %s (%lld elements) into %s: %s", fn,
                            nbi_shape_fmt(a, t->ndim, t->shape), (long long)t->numel, nbi_shape_fmt(b, ndim, shape),
                            known == 0 ? "the -1 is ambiguous next to a size 0" : "no size fits the -1");
        out[infer] = t->numel / known;
        known = t->numel;
    }
    if (overflow || known != t->numel)
        return nbi_fail(NB_ERR_SHAPE, "%s: cannot reshape a tensor of shape %s (%lld elements) into %s", fn,
                        nbi_shape_fmt(a, t->ndim, t->shape), (long long)t->numel,
                        nbi_shape_fmt(b, ndim, shape));
    return NB_OK;
}

/* Strides that show t's elements, in row-major order, with `shape`, or false when no strides can (then the
 * data must be copied). Same rule as PyTorch's view: t's dims are cut into chunks that are contiguous among
 * themselves (stride[d] = stride[d+1] * size[d+1], size-1 dims ignored); every chunk must be covered exactly by
 * a run of consecutive new dims, which then step through it row-major from the chunk's innermost stride. */
static bool view_strides(const nbi_tensor *t, int ndim, const int64_t *shape, int64_t *stride)
{
    if (t->numel == 0 || t->ndim == 0) { /* nothing to walk: any layout is valid; PyTorch's choice */
        if (t->ndim == ndim && memcmp(t->shape, shape, (size_t)ndim * sizeof *shape) == 0)
            memcpy(stride, t->stride, (size_t)ndim * sizeof *stride);
        else
            nbi_contiguous_strides(ndim, shape, stride);
        return true;
    }
    int vd = ndim - 1;
    int64_t chunk_stride = t->stride[t->ndim - 1], chunk_numel = 1, view_numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        chunk_numel *= t->shape[d];
        bool chunk_ends = d == 0 || (t->shape[d - 1] != 1 && t->stride[d - 1] != chunk_numel * chunk_stride);
        if (!chunk_ends) continue;
        while (vd >= 0 && (view_numel < chunk_numel || shape[vd] == 1)) {
            stride[vd] = view_numel * chunk_stride;
            view_numel *= shape[vd];
            vd--;
        }
        if (view_numel != chunk_numel) return false;
        if (d > 0) {
            chunk_stride = t->stride[d - 1];
            chunk_numel = view_numel = 1;
        }
    }
    return vd == -1;
}

/* Both view and reshape take the gradient back to the input's shape; reshape, since it may not be a view. */
static void reshape_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const nbi_tensor *in = out->inputs[0];
    gin[0] = nb_reshape(g, in->ndim, in->shape);
}
static const nbi_op view_op = {"view", reshape_backward, .derivative = "grad x = g reshaped to the shape of x"};
static const nbi_op reshape_op = {"reshape", reshape_backward, .derivative = "grad x = g reshaped to the shape of x"};

static nb_tensor *reshape(const char *fn, nb_tensor *h, int ndim, const int64_t *shape, bool may_copy)
{
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    int64_t new_shape[NB_MAX_DIMS], stride[NB_MAX_DIMS];
    if (resolve_shape(fn, t, ndim, shape, new_shape) != NB_OK) return NULL;
    if (view_strides(t, ndim, new_shape, stride))
        return make_view(t, ndim, new_shape, stride, t->offset, &view_op, NULL, 0, fn);
    if (!may_copy) {
        char a[NBI_SHAPE_STR], s[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE,
                         "%s: a tensor of shape %s with strides %s cannot be viewed as %s without copying; use "
                         "nb_reshape (which copies) or nb_contiguous first",
                         fn, nbi_shape_fmt(a, t->ndim, t->shape), nbi_shape_fmt(s, t->ndim, t->stride),
                         nbi_shape_fmt(b, ndim, new_shape));
    }
    nbi_tensor *out = nbi_tensor_new(t->dtype, ndim, new_shape, fn);
    if (!out) return NULL;
    /* Copy in t's shape into the new buffer, row-major: the same bytes then read as the new shape. */
    nbi_tensor *as_input = nbi_tensor_new_view(out->storage, t->dtype, t->ndim, t->shape, NULL, 0, fn);
    if (!as_input) {
        nbi_kill(out);
        return NULL;
    }
    nbi_copy_into(as_input, t);
    nbi_kill(as_input);
    return nbi_record(out, &reshape_op, 1, &t, NULL, 0);
}

nb_tensor *nb_reshape(nb_tensor *t, int ndim, const int64_t *shape)
{
    return reshape("nb_reshape", t, ndim, shape, true);
}
nb_tensor *nb_view(nb_tensor *t, int ndim, const int64_t *shape) { return reshape("nb_view", t, ndim, shape, false); }

nb_tensor *nb_flatten(nb_tensor *h, int start_dim, int end_dim)
{
    const char *fn = "nb_flatten";
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    int extent = t->ndim ? t->ndim : 1, s, e;
    if (!wrap_dim(fn, t, start_dim, extent, &s) || !wrap_dim(fn, t, end_dim, extent, &e)) return NULL;
    if (s > e) {
        char b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_ARG, "%s: start_dim %d comes after end_dim %d (shape %s)", fn, start_dim, end_dim,
                         nbi_shape_fmt(b, t->ndim, t->shape));
    }
    if (t->ndim == 0) return reshape(fn, h, 1, (const int64_t[]){1}, true);
    int64_t shape[NB_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < s; d++) shape[n++] = t->shape[d];
    shape[n] = 1;
    for (int d = s; d <= e; d++) shape[n] *= t->shape[d];
    n++;
    for (int d = e + 1; d < t->ndim; d++) shape[n++] = t->shape[d];
    return reshape(fn, h, n, shape, true);
}

/* ------------------------------------------------------------------------------------------------
 * transpose, permute
 * ---------------------------------------------------------------------------------------------- */
typedef struct pair_ctx {
    int d0, d1;
} pair_ctx;

static void transpose_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const pair_ctx *c = nbi_ctx(out);
    gin[0] = nb_transpose(g, c->d0, c->d1);
}
static const nbi_op transpose_op = {"transpose", transpose_backward, .derivative = "grad x = g transposed back"};

nb_tensor *nb_transpose(nb_tensor *h, int d0, int d1)
{
    const char *fn = "nb_transpose";
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    pair_ctx c;
    int extent = t->ndim ? t->ndim : 1;
    if (!wrap_dim(fn, t, d0, extent, &c.d0) || !wrap_dim(fn, t, d1, extent, &c.d1)) return NULL;
    if (t->ndim == 0) return nbi_alias(t, fn);
    int64_t shape[NB_MAX_DIMS], stride[NB_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    memcpy(stride, t->stride, sizeof stride);
    shape[c.d0] = t->shape[c.d1];
    shape[c.d1] = t->shape[c.d0];
    stride[c.d0] = t->stride[c.d1];
    stride[c.d1] = t->stride[c.d0];
    return make_view(t, t->ndim, shape, stride, t->offset, &transpose_op, &c, sizeof c, fn);
}

typedef struct perm_ctx {
    int inverse[NB_MAX_DIMS];
} perm_ctx;

static void permute_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const perm_ctx *c = nbi_ctx(out);
    gin[0] = nb_permute(g, out->ndim, c->inverse);
}
static const nbi_op permute_op = {"permute", permute_backward, .derivative = "grad x = g permuted back"};

nb_tensor *nb_permute(nb_tensor *h, int ndims, const int *dims)
{
    const char *fn = "nb_permute";
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    char b[NBI_SHAPE_STR];
    if (ndims != t->ndim)
        return nbi_error(NB_ERR_ARG, "%s: %d dims given for a tensor of shape %s, which has %d", fn, ndims,
                         nbi_shape_fmt(b, t->ndim, t->shape), t->ndim);
    if (ndims > 0 && !dims) return nbi_error(NB_ERR_NULL, "%s: dims is NULL for %d dims", fn, ndims);
    perm_ctx c = {{0}};
    bool seen[NB_MAX_DIMS] = {false};
    int64_t shape[NB_MAX_DIMS], stride[NB_MAX_DIMS];
    for (int i = 0; i < ndims; i++) {
        int d;
        if (!wrap_dim(fn, t, dims[i], t->ndim, &d)) return NULL;
        if (seen[d])
            return nbi_error(NB_ERR_ARG, "%s: dim %d appears more than once in the permutation of shape %s", fn,
                             dims[i], nbi_shape_fmt(b, t->ndim, t->shape));
        seen[d] = true;
        shape[i] = t->shape[d];
        stride[i] = t->stride[d];
        c.inverse[d] = i;
    }
    return make_view(t, ndims, shape, stride, t->offset, &permute_op, &c, sizeof c, fn);
}

/* ------------------------------------------------------------------------------------------------
 * squeeze, unsqueeze
 * ---------------------------------------------------------------------------------------------- */
typedef struct dim_ctx {
    int dim;
} dim_ctx;

static void squeeze_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    gin[0] = nb_unsqueeze(g, ((const dim_ctx *)nbi_ctx(out))->dim);
}
static void unsqueeze_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    gin[0] = nb_squeeze(g, ((const dim_ctx *)nbi_ctx(out))->dim);
}
static const nbi_op squeeze_op = {"squeeze", squeeze_backward,
                              .derivative = "grad x = g with the squeezed dim put back"};
static const nbi_op unsqueeze_op = {"unsqueeze", unsqueeze_backward,
                              .derivative = "grad x = g with the added dim removed"};

nb_tensor *nb_squeeze(nb_tensor *h, int dim)
{
    const char *fn = "nb_squeeze";
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    dim_ctx c;
    if (!wrap_dim(fn, t, dim, t->ndim ? t->ndim : 1, &c.dim)) return NULL;
    if (t->ndim == 0) return nbi_alias(t, fn); /* as in PyTorch, a 0-d tensor squeezes to itself */
    if (t->shape[c.dim] != 1) {
        char b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: dim %d of shape %s has size %lld, not 1", fn, dim,
                         nbi_shape_fmt(b, t->ndim, t->shape), (long long)t->shape[c.dim]);
    }
    int64_t shape[NB_MAX_DIMS], stride[NB_MAX_DIMS];
    for (int d = 0, n = 0; d < t->ndim; d++) {
        if (d == c.dim) continue;
        shape[n] = t->shape[d];
        stride[n++] = t->stride[d];
    }
    return make_view(t, t->ndim - 1, shape, stride, t->offset, &squeeze_op, &c, sizeof c, fn);
}

nb_tensor *nb_unsqueeze(nb_tensor *h, int dim)
{
    const char *fn = "nb_unsqueeze";
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    dim_ctx c;
    if (!wrap_dim(fn, t, dim, t->ndim + 1, &c.dim)) return NULL;
    if (t->ndim == NB_MAX_DIMS) {
        char b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: shape %s already has %d dims, the most nabla supports", fn,
                         nbi_shape_fmt(b, t->ndim, t->shape), NB_MAX_DIMS);
    }
    int64_t shape[NB_MAX_DIMS], stride[NB_MAX_DIMS];
    for (int d = 0, n = 0; d <= t->ndim; d++) {
        if (d == c.dim) {
            /* the stride a contiguous tensor would have there; any value works for a size-1 dim */
            shape[d] = 1;
            stride[d] = d < t->ndim ? t->shape[d] * t->stride[d] : 1;
            continue;
        }
        shape[d] = t->shape[n];
        stride[d] = t->stride[n++];
    }
    return make_view(t, t->ndim + 1, shape, stride, t->offset, &unsqueeze_op, &c, sizeof c, fn);
}

/* ------------------------------------------------------------------------------------------------
 * narrow, slice, and their adjoint slice_backward
 * ---------------------------------------------------------------------------------------------- */
typedef struct slice_ctx {
    int dim;
    int64_t start, step;
} slice_ctx;

static nb_tensor *slice_embed(nb_tensor *g, int ndim, const int64_t *shape, slice_ctx c);

/* The gradient of a slice is the incoming gradient placed back into zeros of the input's shape. */
static void slice_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const nbi_tensor *in = out->inputs[0];
    gin[0] = slice_embed(g, in->ndim, in->shape, *(const slice_ctx *)nbi_ctx(out));
}
static const nbi_op narrow_op = {"narrow", slice_backward,
                              .derivative = "grad x = zeros of the shape of x with g in the narrowed part"};
static const nbi_op slice_op = {"slice", slice_backward,
                              .derivative = "grad x = zeros of the shape of x with g in the sliced elements"};

/* View of `length` elements along c.dim from c.start, every c.step-th; arguments already validated. */
static nb_tensor *take_slice(nbi_tensor *t, slice_ctx c, int64_t length, const nbi_op *op, const char *fn)
{
    int64_t shape[NB_MAX_DIMS], stride[NB_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    memcpy(stride, t->stride, sizeof stride);
    shape[c.dim] = length;
    /* With two or more elements the step is bounded by the size, so this cannot overflow; with fewer the
     * stride is never used, and a huge step must not overflow it. */
    if (length > 1) stride[c.dim] = t->stride[c.dim] * c.step;
    /* An empty slice may start at the very end; keep its offset in bounds rather than point past the data. */
    int64_t offset = length ? t->offset + c.start * t->stride[c.dim] : t->offset;
    return make_view(t, t->ndim, shape, stride, offset, op, &c, sizeof c, fn);
}

/* Adjoint of slicing: zeros of `shape` holding gradient g at start, start+step, ... along c.dim. */
static void slice_embed_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const slice_ctx *c = nbi_ctx(out);
    nbi_tensor *gt = nbi_resolve(g, "nb_backward", "gradient");
    if (gt) gin[0] = take_slice(gt, *c, out->inputs[0]->shape[c->dim], &slice_op, "nb_backward");
}
static const nbi_op slice_embed_op = {"slice_backward", slice_embed_backward,
                              .derivative = "grad x = the slice of g where x was placed"};

static nb_tensor *slice_embed(nb_tensor *h, int ndim, const int64_t *shape, slice_ctx c)
{
    const char *fn = "nb_backward";
    nbi_tensor *g = nbi_resolve(h, fn, "gradient");
    if (!g) return NULL;
    nbi_tensor *out = nbi_tensor_new(g->dtype, ndim, shape, fn);
    if (!out) return NULL;
    memset(out->storage->data, 0, out->storage->nbytes);
    int64_t stride[NB_MAX_DIMS];
    nbi_contiguous_strides(ndim, shape, stride);
    int64_t offset = g->shape[c.dim] ? c.start * stride[c.dim] : 0;
    if (g->shape[c.dim] > 1) stride[c.dim] *= c.step; /* as in take_slice */
    nbi_tensor *window = nbi_tensor_new_view(out->storage, g->dtype, g->ndim, g->shape, stride, offset, fn);
    if (!window) {
        nbi_kill(out);
        return NULL;
    }
    nbi_copy_into(window, g);
    nbi_kill(window);
    return nbi_record(out, &slice_embed_op, 1, &g, &c, sizeof c);
}

nb_tensor *nb_narrow(nb_tensor *h, int dim, int64_t start, int64_t length)
{
    const char *fn = "nb_narrow";
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    slice_ctx c = {.start = start, .step = 1};
    if (!wrap_dim(fn, t, dim, t->ndim, &c.dim)) return NULL;
    char b[NBI_SHAPE_STR];
    int64_t size = t->shape[c.dim];
    if (start < -size || start > size)
        return nbi_error(NB_ERR_INDEX, "%s: start %lld out of range for dim %d of shape %s (expected %lld to %lld)",
                         fn, (long long)start, dim, nbi_shape_fmt(b, t->ndim, t->shape), (long long)-size,
                         (long long)size);
    if (c.start < 0) c.start += size;
    if (length < 0)
        return nbi_error(NB_ERR_VALUE, "%s: length %lld is negative (shape %s)", fn, (long long)length,
                         nbi_shape_fmt(b, t->ndim, t->shape));
    if (length > size - c.start)
        return nbi_error(NB_ERR_INDEX,
                         "%s: start %lld + length %lld exceeds size %lld of dim %d of shape %s", fn, (long long)start,
                         (long long)length, (long long)size, dim, nbi_shape_fmt(b, t->ndim, t->shape));
    return take_slice(t, c, length, &narrow_op, fn);
}

/* Python's rule for one slice bound: negative counts from the end, then clamp into [0, size]. */
static int64_t clamp_bound(int64_t i, int64_t size)
{
    if (i < 0) i = i < -size ? 0 : i + size;
    return i > size ? size : i;
}

nb_tensor *nb_slice(nb_tensor *h, int dim, int64_t start, int64_t end, int64_t step)
{
    const char *fn = "nb_slice";
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return NULL;
    slice_ctx c = {.step = step};
    if (!wrap_dim(fn, t, dim, t->ndim, &c.dim)) return NULL;
    if (step <= 0) {
        char b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_ARG, "%s: step must be positive, got %lld (shape %s)", fn, (long long)step,
                         nbi_shape_fmt(b, t->ndim, t->shape));
    }
    int64_t size = t->shape[c.dim];
    c.start = clamp_bound(start, size);
    end = clamp_bound(end, size);
    int64_t length = end > c.start ? (end - c.start - 1) / step + 1 : 0;
    return take_slice(t, c, length, &slice_op, fn);
}

/* ------------------------------------------------------------------------------------------------
 * cat, stack
 * ---------------------------------------------------------------------------------------------- */
/* PyTorch still accepts 1-d empty tensors of shape (0) in a cat of any rank, and skips them. */
static bool skipped_in_cat(const nbi_tensor *t, int out_ndim) { return out_ndim != 1 && t->ndim == 1 && t->numel == 0; }

/* The gradient of each piece is its slice of g, converted back to the piece's dtype when the cat promoted it. */
static void cat_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    int dim = ((const dim_ctx *)nbi_ctx(out))->dim;
    int64_t offset = 0;
    for (int i = 0; i < out->n_inputs; i++) {
        const nbi_tensor *in = out->inputs[i];
        if (skipped_in_cat(in, out->ndim)) {
            if (nbi_wants_grad(out, i)) gin[i] = nb_zeros(1, in->shape, in->dtype);
            continue;
        }
        int64_t len = in->shape[dim];
        if (nbi_wants_grad(out, i)) {
            gin[i] = nb_narrow(g, dim, offset, len);
            if (in->dtype != out->dtype) gin[i] = nb_to_dtype(gin[i], in->dtype);
        }
        offset += len;
    }
}
static const nbi_op cat_op = {"cat", cat_backward, .derivative = "grad of each input = its part of g along dim"};

/* Resolves tensors[0..n-1] into ts (room for n), naming the first bad one. */
static bool resolve_all(const char *fn, int n, nb_tensor *const *tensors, nbi_tensor **ts)
{
    for (int i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "tensors[%d]", i);
        if (!(ts[i] = nbi_resolve(tensors[i], fn, what))) return false;
    }
    return true;
}

/* A list of n inputs: resolved into a small stack array, or into an allocated one for long lists. */
#define LIST_INLINE 16
static nbi_tensor **list_alloc(nbi_tensor **inline_buf, int n, const char *fn)
{
    return n <= LIST_INLINE ? inline_buf : nbi_alloc((size_t)n * sizeof(nbi_tensor *), fn);
}
static void list_free(nbi_tensor **list, nbi_tensor **inline_buf, int n)
{
    if (list && list != inline_buf) nbi_free(list, (size_t)n * sizeof *list);
}

static nb_status check_list(const char *fn, int n, nb_tensor *const *tensors)
{
    if (n <= 0) return nbi_fail(NB_ERR_ARG, "%s: need at least one tensor, got %d", fn, n);
    if (!tensors) return nbi_fail(NB_ERR_NULL, "%s: tensors is NULL (n = %d)", fn, n);
    return NB_OK;
}

static nb_tensor *cat(const char *fn, int n, nbi_tensor **ts, int dim)
{
    int r = 0; /* the reference piece: the first one not skipped */
    while (r < n - 1 && skipped_in_cat(ts[r], 2)) r++;
    const nbi_tensor *ref = ts[r];
    char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
    if (ref->ndim == 0) return nbi_error(NB_ERR_SHAPE, "%s: cannot concatenate 0-d tensors; use nb_stack", fn);
    int d;
    if (!wrap_dim(fn, ref, dim, ref->ndim, &d)) return NULL;
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, ref->shape, sizeof shape);
    shape[d] = 0;
    nb_dtype dtype = ref->dtype;
    for (int i = 0; i < n; i++) {
        const nbi_tensor *t = ts[i];
        dtype = nbi_promote(dtype, t->dtype);
        if (skipped_in_cat(t, ref->ndim)) continue;
        if (t->ndim != ref->ndim)
            return nbi_error(NB_ERR_SHAPE, "%s: tensor %d has shape %s but tensor %d has shape %s: dims differ", fn, i,
                             nbi_shape_fmt(a, t->ndim, t->shape), r, nbi_shape_fmt(b, ref->ndim, ref->shape));
        for (int k = 0; k < t->ndim; k++) {
            if (k != d && t->shape[k] != ref->shape[k])
                return nbi_error(NB_ERR_SHAPE,
                                 "%s: sizes must match except in dim %d: tensor %d has shape %s, tensor %d has %s", fn,
                                 d, i, nbi_shape_fmt(a, t->ndim, t->shape), r,
                                 nbi_shape_fmt(b, ref->ndim, ref->shape));
        }
        if (__builtin_add_overflow(shape[d], t->shape[d], &shape[d]))
            return nbi_error(NB_ERR_SHAPE, "%s: the sizes in dim %d add up to more than %lld (tensor %d has shape %s)",
                             fn, d, (long long)INT64_MAX, i, nbi_shape_fmt(a, t->ndim, t->shape));
    }
    nbi_tensor *out = nbi_tensor_new(dtype, ref->ndim, shape, fn);
    if (!out) return NULL;
    int64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const nbi_tensor *t = ts[i];
        if (skipped_in_cat(t, ref->ndim)) continue;
        if (t->shape[d]) {
            nbi_tensor *window = nbi_tensor_new_view(out->storage, dtype, out->ndim, t->shape, out->stride,
                                                     offset * out->stride[d], fn);
            if (!window) {
                nbi_kill(out);
                return NULL;
            }
            nbi_copy_into(window, t);
            nbi_kill(window);
        }
        offset += t->shape[d];
    }
    dim_ctx c = {d};
    return nbi_record(out, &cat_op, n, ts, &c, sizeof c);
}

nb_tensor *nb_cat(int n, nb_tensor *const *tensors, int dim)
{
    const char *fn = "nb_cat";
    if (check_list(fn, n, tensors) != NB_OK) return NULL;
    nbi_tensor *inline_buf[LIST_INLINE];
    nbi_tensor **ts = list_alloc(inline_buf, n, fn);
    nb_tensor *result = ts && resolve_all(fn, n, tensors, ts) ? cat(fn, n, ts, dim) : NULL;
    list_free(ts, inline_buf, n);
    return result;
}

/* stack = unsqueeze every tensor at dim, then cat along it. */
nb_tensor *nb_stack(int n, nb_tensor *const *tensors, int dim)
{
    const char *fn = "nb_stack";
    if (check_list(fn, n, tensors) != NB_OK) return NULL;
    nbi_tensor *inline_buf[LIST_INLINE];
    nbi_tensor **ts = list_alloc(inline_buf, n, fn);
    if (!ts) return NULL;
    nb_tensor *result = NULL;
    int made = 0, d;
    if (!resolve_all(fn, n, tensors, ts)) goto done;
    char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
    for (int i = 1; i < n; i++) {
        if (ts[i]->ndim != ts[0]->ndim ||
            memcmp(ts[i]->shape, ts[0]->shape, (size_t)ts[0]->ndim * sizeof *ts[0]->shape) != 0) {
            nbi_error(NB_ERR_SHAPE, "%s: all tensors must have the same shape: tensor %d has shape %s, tensor 0 has %s",
                      fn, i, nbi_shape_fmt(a, ts[i]->ndim, ts[i]->shape), nbi_shape_fmt(b, ts[0]->ndim, ts[0]->shape));
            goto done;
        }
    }
    if (!wrap_dim(fn, ts[0], dim, ts[0]->ndim + 1, &d)) goto done;
    if (ts[0]->ndim == NB_MAX_DIMS) {
        nbi_error(NB_ERR_SHAPE, "%s: shape %s already has %d dims, the most nabla supports", fn,
                  nbi_shape_fmt(a, ts[0]->ndim, ts[0]->shape), NB_MAX_DIMS);
        goto done;
    }
    /* ts now takes the unsqueezed views, each killed once cat's record holds it. */
    for (; made < n; made++)
        if (!(ts[made] = nbi_peek(nb_unsqueeze(nbi_handle(ts[made]), d)))) goto done;
    result = cat(fn, n, ts, d);
done:
    for (int i = 0; i < made; i++) nbi_kill(ts[i]);
    list_free(ts, inline_buf, n);
    return result;
}
