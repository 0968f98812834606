/* Indexing ops: gather, scatter_add, index_select, embedding, where, masked_fill.
 *
 * Gather and scatter-add are adjoint linear maps, so each is the other's backward; index_select and embedding
 * are gathers with a broadcast index, whose backward accumulates (repeated indices add up). Every index is
 * checked before anything is written, so a failed call leaves no partial result behind. */
#include "autograd_internal.h"
#include "kernels_index.h"

#include <math.h>
#include <string.h>

typedef struct dim_ctx {
    int dim;
} dim_ctx;

static bool is_index(const char *fn, const nbi_tensor *ix, const char *what)
{
    if (ix->dtype == NB_I64) return true;
    nbi_error(NB_ERR_DTYPE, "%s: %s must be i64, got %s", fn, what, nb_dtype_name(ix->dtype));
    return false;
}

/* PyTorch lets gather and scatter_add take dim 0 (or -1) on a 0-d tensor, seen as one dim of size 1. */
static int wrap_dim(const char *fn, int dim, const nbi_tensor *t, bool allow_scalar)
{
    int d = nbi_wrap_dim(dim, (allow_scalar && t->ndim == 0) ? 1 : t->ndim);
    if (d < 0) {
        char b[NBI_SHAPE_STR];
        nbi_error(NB_ERR_ARG, "%s: dim %d is out of range for shape %s", fn, dim, nbi_shape_fmt(b, t->ndim, t->shape));
    }
    return d;
}
static int64_t size_at(const nbi_tensor *t, int d) { return t->ndim ? t->shape[d] : 1; }
static int64_t stride_at(const nbi_tensor *t, int d) { return t->ndim ? t->stride[d] : 0; }

static bool check_range(const char *fn, const nbi_tensor *ix, int dim, int64_t size)
{
    int64_t bad;
    if (nbi_index_in_range(ix, size, &bad)) return true;
    nbi_error(NB_ERR_INDEX, "%s: index %lld is out of range for dim %d of size %lld", fn, (long long)bad, dim,
              (long long)size);
    return false;
}

/* index.size(k) <= limit.size(k) for every k (except skip, unless skip < 0). */
static bool fits(const char *fn, const nbi_tensor *ix, const nbi_tensor *limit, const char *limit_name, int skip)
{
    for (int k = 0; k < ix->ndim; k++) {
        if (k == skip || ix->shape[k] <= limit->shape[k]) continue;
        char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
        nbi_error(NB_ERR_SHAPE, "%s: index shape %s does not fit %s shape %s: size %lld > %lld at dim %d", fn,
                  nbi_shape_fmt(a, ix->ndim, ix->shape), limit_name, nbi_shape_fmt(b, limit->ndim, limit->shape),
                  (long long)ix->shape[k], (long long)limit->shape[k], k);
        return false;
    }
    return true;
}

static nb_tensor *zeros_of(const nbi_tensor *t) { return nb_zeros(t->ndim, t->shape, t->dtype); }

/* ---- gather: out[p] = t[p with p[dim] replaced by index[p]] ---- */
static void gather_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const dim_ctx *c = nbi_ctx(out);
    if (nbi_wants_grad(out, 0)) gin[0] = nb_scatter_add(zeros_of(out->inputs[0]), c->dim, nbi_in(out, 1), g);
}
static const nbi_op gather_op = {"gather", gather_backward,
                              .derivative = "grad t = zeros with g added at the gathered positions",
                              .inputs = "t, index"};

nb_tensor *nb_gather(nb_tensor *th, int dim, nb_tensor *ih)
{
    const char *fn = "nb_gather";
    nbi_tensor *t = nbi_resolve(th, fn, "tensor"), *ix = nbi_resolve(ih, fn, "index");
    if (!t || !ix || !is_index(fn, ix, "index")) return NULL;
    int d = wrap_dim(fn, dim, t, true);
    if (d < 0) return NULL;
    if (ix->ndim != t->ndim) {
        char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: index shape %s and tensor shape %s differ in number of dims", fn,
                         nbi_shape_fmt(a, ix->ndim, ix->shape), nbi_shape_fmt(b, t->ndim, t->shape));
    }
    if (!fits(fn, ix, t, "tensor", d) || !check_range(fn, ix, d, size_at(t, d))) return NULL;
    nbi_tensor *out = nbi_tensor_new(t->dtype, ix->ndim, ix->shape, fn);
    if (!out) return NULL;
    int64_t src_stride[NB_MAX_DIMS];
    memcpy(src_stride, t->stride, sizeof src_stride);
    src_stride[d] = 0;
    nbi_gather_kernel(out, t, src_stride, stride_at(t, d), ix, ix->stride);
    dim_ctx c = {d};
    nbi_tensor *in[2] = {t, ix};
    return nbi_record(out, &gather_op, 2, in, &c, sizeof c);
}

/* ---- scatter_add: copy of t, then out[p with p[dim] replaced by index[p]] += src[p] ---- */

/* `small` placed in the leading corner of zeros shaped like `like`: a scatter-add along dim 0 whose index is
 * each row's own number, so the padding is differentiable (its adjoint is a gather that crops). */
static nb_tensor *pad_corner(nb_tensor *small, const nbi_tensor *like)
{
    nbi_tensor *s = nbi_peek(small), *rows = s ? nbi_peek(nb_arange(0, (double)s->shape[0], 1, NB_I64)) : NULL;
    if (!rows) return NULL;
    int64_t stride[NB_MAX_DIMS] = {1};
    nbi_tensor *ix = nbi_tensor_new_view(rows->storage, NB_I64, s->ndim, s->shape, stride, rows->offset,
                                         "nb_scatter_add");
    return nb_scatter_add(zeros_of(like), 0, nbi_handle(ix), small);
}

static void scatter_add_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const dim_ctx *c = nbi_ctx(out);
    const nbi_tensor *ix = out->inputs[1], *src = out->inputs[2];
    if (nbi_wants_grad(out, 0)) gin[0] = g;
    if (nbi_wants_grad(out, 2)) {
        nb_tensor *picked = nb_gather(g, c->dim, nbi_in(out, 1));
        bool same = ix->ndim == src->ndim && !memcmp(ix->shape, src->shape, (size_t)ix->ndim * sizeof *ix->shape);
        gin[2] = same ? picked : pad_corner(picked, src);
    }
}
static const nbi_op scatter_add_op = {"scatter_add", scatter_add_backward,
                              .derivative = "grad t = g, grad src = g gathered at index",
                              .inputs = "t, index, src"};

nb_tensor *nb_scatter_add(nb_tensor *th, int dim, nb_tensor *ih, nb_tensor *sh)
{
    const char *fn = "nb_scatter_add";
    nbi_tensor *t = nbi_resolve(th, fn, "tensor"), *ix = nbi_resolve(ih, fn, "index"), *src = nbi_resolve(sh, fn, "src");
    if (!t || !ix || !src || !is_index(fn, ix, "index")) return NULL;
    int d = wrap_dim(fn, dim, t, true);
    if (d < 0) return NULL;
    if (t->dtype == NB_BOOL) return nbi_error(NB_ERR_DTYPE, "%s: bool tensors are not supported", fn);
    if (src->dtype != t->dtype)
        return nbi_error(NB_ERR_DTYPE, "%s: src dtype %s differs from the tensor's dtype %s", fn,
                         nb_dtype_name(src->dtype), nb_dtype_name(t->dtype));
    if (ix->ndim != t->ndim || src->ndim != t->ndim) {
        char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR], s[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: tensor shape %s, index shape %s and src shape %s differ in number of dims",
                         fn, nbi_shape_fmt(a, t->ndim, t->shape), nbi_shape_fmt(b, ix->ndim, ix->shape),
                         nbi_shape_fmt(s, src->ndim, src->shape));
    }
    if (!fits(fn, ix, src, "src", -1) || !fits(fn, ix, t, "tensor", d) || !check_range(fn, ix, d, size_at(t, d)))
        return NULL;
    nbi_tensor *out = nbi_contiguous_copy(t, t->dtype, fn);
    if (!out) return NULL;
    int64_t out_stride[NB_MAX_DIMS];
    memcpy(out_stride, out->stride, sizeof out_stride);
    out_stride[d] = 0;
    nbi_scatter_add_kernel(out, out_stride, stride_at(out, d), ix, ix->stride, src, ix->ndim, ix->shape);
    dim_ctx c = {d};
    nbi_tensor *in[3] = {t, ix, src};
    return nbi_record(out, &scatter_add_op, 3, in, &c, sizeof c);
}

/* ---- index_select: a gather whose 1-d index is broadcast along every dim but `dim` ---- */

/* The index of an index_select seen with the result's shape. */
static nbi_tensor *spread_index(const nbi_tensor *ix, int ndim, const int64_t *shape, int dim, int64_t *stride)
{
    memset(stride, 0, NB_MAX_DIMS * sizeof *stride);
    stride[dim] = ix->ndim ? ix->stride[0] : 0;
    return nbi_tensor_new_view(ix->storage, NB_I64, ndim, shape, stride, ix->offset, "nb_index_select");
}

static void index_select_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    const dim_ctx *c = nbi_ctx(out);
    if (!nbi_wants_grad(out, 0)) return;
    int64_t stride[NB_MAX_DIMS];
    nbi_tensor *ix = spread_index(out->inputs[1], out->ndim, out->shape, c->dim, stride);
    gin[0] = nb_scatter_add(zeros_of(out->inputs[0]), c->dim, nbi_handle(ix), g);
}
static const nbi_op index_select_op = {"index_select", index_select_backward,
                              .derivative = "grad t = zeros with the rows of g added at the selected indices",
                              .inputs = "t, index"};

nb_tensor *nb_index_select(nb_tensor *th, int dim, nb_tensor *ih)
{
    const char *fn = "nb_index_select";
    nbi_tensor *t = nbi_resolve(th, fn, "tensor"), *ix = nbi_resolve(ih, fn, "index");
    if (!t || !ix || !is_index(fn, ix, "index")) return NULL;
    int d = wrap_dim(fn, dim, t, false);
    if (d < 0) return NULL;
    if (ix->ndim > 1) {
        char a[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: index must be 1-d, got shape %s", fn, nbi_shape_fmt(a, ix->ndim, ix->shape));
    }
    if (!check_range(fn, ix, d, t->shape[d])) return NULL;
    int64_t shape[NB_MAX_DIMS], src_stride[NB_MAX_DIMS], ix_stride[NB_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[d] = ix->numel;
    nbi_tensor *out = nbi_tensor_new(t->dtype, t->ndim, shape, fn);
    if (!out) return NULL;
    memcpy(src_stride, t->stride, sizeof src_stride);
    src_stride[d] = 0;
    memset(ix_stride, 0, sizeof ix_stride);
    ix_stride[d] = ix->ndim ? ix->stride[0] : 0;
    nbi_gather_kernel(out, t, src_stride, t->stride[d], ix, ix_stride);
    dim_ctx c = {d};
    nbi_tensor *in[2] = {t, ix};
    return nbi_record(out, &index_select_op, 2, in, &c, sizeof c);
}

/* ---- embedding: rows of weight picked by an index of any shape ---- */

/* The gradient of embedding with respect to weight: g's rows added into a (num, dim) table of zeros at the
 * rows indices name. It is linear in g; its own backward is an embedding lookup of the incoming gradient. */
static void embedding_grad_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    if (nbi_wants_grad(out, 0)) gin[0] = nb_embedding(g, nbi_in(out, 1));
}
static const nbi_op embedding_grad_op = {"embedding_backward", embedding_grad_backward,
                              .derivative = "grad rows = rows of g picked by indices",
                              .inputs = "rows, indices"};

static nb_tensor *embedding_grad(nb_tensor *gh, nbi_tensor *ix, int64_t num)
{
    const char *fn = "nb_embedding";
    nbi_tensor *g = nbi_resolve(gh, fn, "grad");
    if (!g) return NULL;
    int64_t shape[2] = {num, g->shape[g->ndim - 1]};
    nbi_tensor *out = nbi_tensor_new(g->dtype, 2, shape, fn);
    if (!out) return NULL;
    memset(out->storage->data, 0, out->storage->nbytes);
    int64_t out_stride[NB_MAX_DIMS] = {0}, ix_stride[NB_MAX_DIMS] = {0};
    out_stride[g->ndim - 1] = 1;
    memcpy(ix_stride, ix->stride, (size_t)ix->ndim * sizeof *ix_stride);
    nbi_scatter_add_kernel(out, out_stride, shape[1], ix, ix_stride, g, g->ndim, g->shape);
    nbi_tensor *in[2] = {g, ix};
    return nbi_record(out, &embedding_grad_op, 2, in, NULL, 0);
}

static void embedding_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    if (nbi_wants_grad(out, 0)) gin[0] = embedding_grad(g, out->inputs[1], out->inputs[0]->shape[0]);
}
static const nbi_op embedding_op = {"embedding", embedding_backward,
                              .derivative = "grad weight = zeros with the rows of g added at the picked rows",
                              .inputs = "weight, indices"};

nb_tensor *nb_embedding(nb_tensor *wh, nb_tensor *ih)
{
    const char *fn = "nb_embedding";
    nbi_tensor *w = nbi_resolve(wh, fn, "weight"), *ix = nbi_resolve(ih, fn, "indices");
    if (!w || !ix || !is_index(fn, ix, "indices")) return NULL;
    char a[NBI_SHAPE_STR];
    if (w->ndim != 2)
        return nbi_error(NB_ERR_SHAPE, "%s: weight must be 2-d (num_embeddings, embedding_dim), got shape %s", fn,
                         nbi_shape_fmt(a, w->ndim, w->shape));
    if (ix->ndim >= NB_MAX_DIMS)
        return nbi_error(NB_ERR_SHAPE, "%s: indices of shape %s leave no room for the embedding dim (at most %d dims)",
                         fn, nbi_shape_fmt(a, ix->ndim, ix->shape), NB_MAX_DIMS);
    if (!check_range(fn, ix, 0, w->shape[0])) return NULL;
    int n = ix->ndim + 1;
    int64_t shape[NB_MAX_DIMS], src_stride[NB_MAX_DIMS] = {0}, ix_stride[NB_MAX_DIMS] = {0};
    memcpy(shape, ix->shape, (size_t)ix->ndim * sizeof *shape);
    shape[n - 1] = w->shape[1];
    nbi_tensor *out = nbi_tensor_new(w->dtype, n, shape, fn);
    if (!out) return NULL;
    src_stride[n - 1] = w->stride[1];
    memcpy(ix_stride, ix->stride, (size_t)ix->ndim * sizeof *ix_stride);
    nbi_gather_kernel(out, w, src_stride, w->stride[0], ix, ix_stride);
    nbi_tensor *in[2] = {w, ix};
    return nbi_record(out, &embedding_op, 2, in, NULL, 0);
}

/* ---- where and masked_fill ---- */

/* A bool copy of a condition of another dtype (not recorded: conditions carry no gradient). */
static nbi_tensor *as_bool(nbi_tensor *c, const char *fn)
{
    return c->dtype == NB_BOOL ? c : nbi_contiguous_copy(c, NB_BOOL, fn);
}

/* d where(c, a, b) = (where(c, g, 0), where(c, 0, g)), each summed down to its input's shape */
static void where_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    nb_tensor *c = nbi_in(out, 0), *zero = nb_scalar(0, out->dtype);
    const nbi_tensor *a = out->inputs[1], *b = out->inputs[2];
    if (nbi_wants_grad(out, 1)) gin[1] = nb_sum_to(nb_where(c, g, zero), a->ndim, a->shape);
    if (nbi_wants_grad(out, 2)) gin[2] = nb_sum_to(nb_where(c, zero, g), b->ndim, b->shape);
}
static const nbi_op where_op = {"where", where_backward,
                              .derivative = "d out/d a = cond, d out/d b = 1 - cond",
                              .elementwise = true,
                              .inputs = "cond, a, b"};

nb_tensor *nb_where(nb_tensor *ch, nb_tensor *ah, nb_tensor *bh)
{
    const char *fn = "nb_where";
    nbi_tensor *c0 = nbi_resolve(ch, fn, "cond"), *a0 = nbi_resolve(ah, fn, "a"), *b0 = nbi_resolve(bh, fn, "b");
    if (!c0 || !a0 || !b0) return NULL;
    int nab, ndim;
    int64_t ab[NB_MAX_DIMS], shape[NB_MAX_DIMS];
    if (!nbi_broadcast_shape(fn, a0->ndim, a0->shape, b0->ndim, b0->shape, &nab, ab) ||
        !nbi_broadcast_shape(fn, c0->ndim, c0->shape, nab, ab, &ndim, shape))
        return NULL;
    nb_dtype dt = nbi_promote(a0->dtype, b0->dtype);
    /* Converted values are recorded ops, so their gradients flow back in each input's own dtype. */
    nbi_tensor *a = a0->dtype == dt ? a0 : nbi_peek(nb_to_dtype(ah, dt));
    nbi_tensor *b = b0->dtype == dt ? b0 : nbi_peek(nb_to_dtype(bh, dt));
    nbi_tensor *c = as_bool(c0, fn);
    nb_tensor *result = NULL;
    if (a && b && c) {
        nbi_tensor *out = nbi_tensor_new(dt, ndim, shape, fn);
        if (out) nbi_where_kernel(out, c, a, b);
        nbi_tensor *in[3] = {c, a, b};
        result = nbi_record(out, &where_op, 3, in, NULL, 0);
    }
    nbi_drop_temp(a, a0);
    nbi_drop_temp(b, b0);
    nbi_drop_temp(c, c0);
    return result;
}

/* d masked_fill(t, m, v) = where(m, 0, g) */
static void masked_fill_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin)
{
    if (nbi_wants_grad(out, 0)) gin[0] = nb_where(nbi_in(out, 1), nb_scalar(0, out->dtype), g);
}
static const nbi_op masked_fill_op = {"masked_fill", masked_fill_backward,
                              .derivative = "d out/d t = 0 where mask, else 1",
                              .elementwise = true,
                              .inputs = "t, mask",
                              .writes_given_value = true};

nb_tensor *nb_masked_fill(nb_tensor *th, nb_tensor *mh, double value)
{
    const char *fn = "nb_masked_fill";
    nbi_tensor *t = nbi_resolve(th, fn, "tensor"), *m0 = nbi_resolve(mh, fn, "mask");
    if (!t || !m0) return NULL;
    bool ok = m0->ndim <= t->ndim;
    for (int k = 0; ok && k < m0->ndim; k++) {
        int64_t sm = m0->shape[k], st = t->shape[t->ndim - m0->ndim + k];
        ok = sm == st || sm == 1;
    }
    if (!ok) {
        char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: mask shape %s does not broadcast to the tensor's shape %s", fn,
                         nbi_shape_fmt(a, m0->ndim, m0->shape), nbi_shape_fmt(b, t->ndim, t->shape));
    }
    /* int64 conversion of NaN or of values outside its range is undefined: refuse them */
    if (t->dtype == NB_I64 && !(value >= -9223372036854775808.0 && value < 9223372036854775808.0))
        return nbi_error(NB_ERR_VALUE, "%s: value %g cannot be stored in an i64 tensor", fn, value);
    nbi_tensor *m = as_bool(m0, fn);
    if (!m) return NULL;
    nbi_tensor *out = nbi_contiguous_copy(t, t->dtype, fn);
    if (out) nbi_masked_fill_kernel(out, m, value);
    nbi_tensor *in[2] = {t, m};
    nb_tensor *result = nbi_record(out, &masked_fill_op, 2, in, NULL, 0);
    nbi_drop_temp(m, m0);
    return result;
}
