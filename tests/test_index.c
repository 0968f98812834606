/* Indexing ops: gather, scatter_add, index_select, embedding, where, masked_fill. Values (hand-computed),
 * accumulation of repeated indices, gradients (first and second order, contiguous or not), errors. */
#include "helpers.h"

#define T_BOOL(shape, ...) nb_from_array((const uint8_t[]){__VA_ARGS__}, shape, NB_BOOL)

/* t[i][j][k] = 12 i + 4 j + k, shape (2, 3, 4) */
static nb_tensor *arange_234(void)
{
    double v[24];
    for (int i = 0; i < 24; i++) v[i] = i;
    return nb_from_array(v, NB_SHAPE(2, 3, 4), NB_F64);
}

/* Backward seeded with ones of root's shape (no reduction op needed). */
static void backward_ones(nb_tensor *root)
{
    nb_tensor *ones = nb_ones_like(root);
    ck_assert_ok(nb_backward_ex(root, ones, NB_BACKWARD_DEFAULT));
}

/* ------------------------------------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------------------------------- */
START_TEST(gather_2d_values)
{
    nb_scope_begin();
    nb_tensor *t = T_F64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    nb_tensor *g1 = nb_gather(t, 1, T_I64(NB_SHAPE(2, 2), 2, 0, 1, 1));
    ck_assert_shape(g1, 2, 2);
    ck_assert_values(g1, 0, 3, 1, 5, 5);
    /* the index may be smaller than t along the other dims */
    nb_tensor *g0 = nb_gather(t, 0, T_I64(NB_SHAPE(1, 3), 1, 0, 1));
    ck_assert_shape(g0, 1, 3);
    ck_assert_values(g0, 0, 4, 2, 6);
    /* any dtype is gathered */
    nb_tensor *b = nb_gather(T_BOOL(NB_SHAPE(3), 1, 0, 0), 0, T_I64(NB_SHAPE(4), 2, 0, 0, 1));
    ck_assert_int_eq(nb_dtype_of(b), NB_BOOL);
    ck_assert_values(b, 0, 0, 1, 1, 0);
    ck_assert_values(nb_gather(T_F32(NB_SHAPE(2), 1.5f, 2.5f), -1, T_I64(NB_SHAPE(2), 1, 1)), 0, 2.5, 2.5);
    /* 0-d: dim 0 means the tensor itself */
    ck_assert_values(nb_gather(nb_scalar(7, NB_F64), 0, nb_scalar(0, NB_I64)), 0, 7);
    /* an empty index gives an empty result */
    nb_tensor *e = nb_gather(t, 1, nb_zeros(NB_SHAPE(2, 0), NB_I64));
    ck_assert_shape(e, 2, 0);
    nb_scope_end();
}
END_TEST

START_TEST(gather_3d_each_dim)
{
    nb_scope_begin();
    nb_tensor *t = arange_234();
    nb_tensor *g0 = nb_gather(t, 0, T_I64(NB_SHAPE(1, 2, 2), 1, 0, 0, 1));
    ck_assert_shape(g0, 1, 2, 2);
    ck_assert_values(g0, 0, 12, 1, 4, 17);
    nb_tensor *g1 = nb_gather(t, 1, T_I64(NB_SHAPE(2, 1, 3), 2, 0, 1, 1, 1, 0));
    ck_assert_shape(g1, 2, 1, 3);
    ck_assert_values(g1, 0, 8, 1, 6, 16, 17, 14);
    nb_tensor *g2 = nb_gather(t, -1, T_I64(NB_SHAPE(2, 2, 2), 3, 0, 1, 1, 0, 2, 3, 3));
    ck_assert_shape(g2, 2, 2, 2);
    ck_assert_values(g2, 0, 3, 0, 5, 5, 12, 14, 19, 19);
    ck_assert_str_eq(nb_grad_fn_name(g2) ? nb_grad_fn_name(g2) : "(leaf)", "(leaf)"); /* nothing requires grad */
    nb_scope_end();
}
END_TEST

START_TEST(gather_non_contiguous)
{
    nb_scope_begin();
    /* tt = transpose of [[0, 1, 2], [3, 4, 5]] = [[0, 3], [1, 4], [2, 5]] */
    nb_tensor *tt = nb_transpose(T_F64(NB_SHAPE(2, 3), 0, 1, 2, 3, 4, 5), 0, 1);
    ck_assert_tensor(tt);
    ck_assert(!nb_is_contiguous(tt));
    /* index transposed too: [[1, 0], [0, 0], [1, 1]] */
    nb_tensor *ix = nb_transpose(T_I64(NB_SHAPE(2, 3), 1, 0, 1, 0, 0, 1), 0, 1);
    ck_assert_values(nb_gather(tt, 1, ix), 0, 3, 0, 1, 1, 5, 5);
    nb_scope_end();
}
END_TEST

START_TEST(scatter_add_accumulates)
{
    nb_scope_begin();
    nb_tensor *t = nb_ones(NB_SHAPE(3, 2), NB_F64);
    nb_tensor *ix = T_I64(NB_SHAPE(2, 2), 0, 2, 0, 0);
    nb_tensor *r = nb_scatter_add(t, 0, ix, T_F64(NB_SHAPE(2, 2), 1, 2, 3, 4));
    ck_assert_shape(r, 3, 2);
    ck_assert_values(r, 0, 5, 5, 1, 1, 1, 3);
    ck_assert_values(t, 0, 1, 1, 1, 1, 1, 1); /* not in place */
    /* src larger than the index: only its leading corner is used */
    r = nb_scatter_add(t, 0, ix, T_F64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6));
    ck_assert_values(r, 0, 6, 6, 1, 1, 1, 3);
    /* along dim 1, with a repeated index in each row */
    r = nb_scatter_add(nb_zeros(NB_SHAPE(2, 4), NB_F32), 1, T_I64(NB_SHAPE(2, 3), 3, 3, 0, 1, 2, 1),
                       T_F32(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6));
    ck_assert_int_eq(nb_dtype_of(r), NB_F32);
    ck_assert_values(r, 0, 3, 0, 0, 3, 0, 10, 5, 0);
    /* integers, negative dim, index smaller than t along the other dim */
    r = nb_scatter_add(T_I64(NB_SHAPE(2, 3), 1, 1, 1, 1, 1, 1), -1, T_I64(NB_SHAPE(1, 2), 2, 2),
                       T_I64(NB_SHAPE(1, 2), 10, 20));
    ck_assert_int_eq(nb_dtype_of(r), NB_I64);
    ck_assert_values(r, 0, 1, 1, 31, 1, 1, 1);
    /* 0-d */
    ck_assert_values(nb_scatter_add(nb_scalar(1, NB_F64), 0, nb_scalar(0, NB_I64), nb_scalar(2, NB_F64)), 0, 3);
    nb_scope_end();
}
END_TEST

START_TEST(scatter_add_3d_non_contiguous)
{
    nb_scope_begin();
    nb_tensor *t = arange_234();
    /* src (2, 2, 1) seen through a transpose of (2, 1, 2) = [[10, 20]], [[30, 40]] */
    nb_tensor *src = nb_transpose(T_F64(NB_SHAPE(2, 1, 2), 10, 20, 30, 40), 1, 2);
    ck_assert_tensor(src);
    nb_tensor *r = nb_scatter_add(t, 1, T_I64(NB_SHAPE(2, 2, 1), 2, 2, 0, 1), src);
    ck_assert_shape(r, 2, 3, 4);
    /* t[0][2][0] += 10 + 20, t[1][0][0] += 30, t[1][1][0] += 40 */
    ck_assert_close(nb_get(r, (int64_t[]){0, 2, 0}), 8 + 30, 0);
    ck_assert_close(nb_get(r, (int64_t[]){1, 0, 0}), 12 + 30, 0);
    ck_assert_close(nb_get(r, (int64_t[]){1, 1, 0}), 16 + 40, 0);
    ck_assert_close(nb_get(r, (int64_t[]){0, 0, 0}), 0, 0);
    ck_assert_close(nb_get(r, (int64_t[]){1, 2, 3}), 23, 0);
    nb_scope_end();
}
END_TEST

START_TEST(index_select_values)
{
    nb_scope_begin();
    nb_tensor *t = T_F64(NB_SHAPE(3, 2), 1, 2, 3, 4, 5, 6);
    nb_tensor *r0 = nb_index_select(t, 0, T_I64(NB_SHAPE(3), 2, 0, 2));
    ck_assert_shape(r0, 3, 2);
    ck_assert_values(r0, 0, 5, 6, 1, 2, 5, 6);
    nb_tensor *r1 = nb_index_select(t, -1, T_I64(NB_SHAPE(3), 1, 1, 0));
    ck_assert_shape(r1, 3, 3);
    ck_assert_values(r1, 0, 2, 2, 1, 4, 4, 3, 6, 6, 5);
    nb_tensor *r2 = nb_index_select(t, 0, nb_scalar(1, NB_I64)); /* a 0-d index picks one row */
    ck_assert_shape(r2, 1, 2);
    ck_assert_values(r2, 0, 3, 4);
    ck_assert_shape(nb_index_select(t, 0, nb_zeros(NB_SHAPE(0), NB_I64)), 0, 2);
    /* strided index: every other element of [2, 9, 0, 9, 1] */
    nb_tensor *ix = nb_slice(T_I64(NB_SHAPE(5), 2, 9, 0, 9, 1), 0, 0, 5, 2);
    ck_assert_values(nb_index_select(t, 0, ix), 0, 5, 6, 1, 2, 3, 4);
    nb_scope_end();
}
END_TEST

START_TEST(index_select_gradient_accumulates)
{
    nb_scope_begin();
    nb_tensor *t = T_F64(NB_SHAPE(3, 2), 1, 2, 3, 4, 5, 6);
    nb_set_requires_grad(t, true);
    nb_tensor *r = nb_index_select(t, 0, T_I64(NB_SHAPE(3), 2, 0, 2));
    ck_assert_str_eq(nb_grad_fn_name(r), "index_select");
    backward_ones(r);
    ck_assert_values(nb_grad(t), 0, 1, 1, 0, 0, 2, 2);
    nb_scope_end();
}
END_TEST

START_TEST(embedding_values_and_accumulation)
{
    nb_scope_begin();
    nb_tensor *w = T_F64(NB_SHAPE(4, 2), 0, 1, 10, 11, 20, 21, 30, 31);
    nb_set_requires_grad(w, true);
    nb_tensor *e = nb_embedding(w, T_I64(NB_SHAPE(2, 2), 3, 0, 3, 1));
    ck_assert_shape(e, 2, 2, 2);
    ck_assert_values(e, 0, 30, 31, 0, 1, 30, 31, 10, 11);
    ck_assert_str_eq(nb_grad_fn_name(e), "embedding");
    backward_ones(e);
    ck_assert_values(nb_grad(w), 0, 1, 1, 1, 1, 0, 0, 2, 2); /* row 3 used twice */
    nb_tensor *one = nb_embedding(w, nb_scalar(2, NB_I64));
    ck_assert_shape(one, 2);
    ck_assert_values(one, 0, 20, 21);
    /* non-contiguous weight: columns of the transpose of (2, 4) */
    nb_tensor *wt = nb_transpose(T_F32(NB_SHAPE(2, 4), 0, 10, 20, 30, 1, 11, 21, 31), 0, 1);
    ck_assert_values(nb_embedding(wt, T_I64(NB_SHAPE(3), 1, 1, 2)), 0, 10, 11, 10, 11, 20, 21);
    nb_scope_end();
}
END_TEST

START_TEST(where_broadcasts_all_three)
{
    nb_scope_begin();
    nb_tensor *cond = T_F64(NB_SHAPE(2, 1), 2.5, 0); /* any dtype: nonzero is true */
    nb_tensor *a = T_F64(NB_SHAPE(3), 1, 2, 3);
    nb_tensor *b = T_F64(NB_SHAPE(2, 1, 1), 10, 20);
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    nb_tensor *r = nb_where(cond, a, b);
    ck_assert_shape(r, 2, 2, 3);
    ck_assert_values(r, 0, 1, 2, 3, 10, 10, 10, 1, 2, 3, 20, 20, 20);
    ck_assert_str_eq(nb_grad_fn_name(r), "where");
    backward_ones(r);
    ck_assert_values(nb_grad(a), 0, 2, 2, 2);
    ck_assert_values(nb_grad(b), 0, 3, 3);
    /* promotion like binary ops; bool with bool stays bool */
    nb_tensor *mixed = nb_where(T_BOOL(NB_SHAPE(2), 1, 0), T_I64(NB_SHAPE(2), 1, 2), T_F32(NB_SHAPE(1), 0.5f));
    ck_assert_int_eq(nb_dtype_of(mixed), NB_F32);
    ck_assert_values(mixed, 0, 1, 0.5);
    nb_tensor *bools = nb_where(T_I64(NB_SHAPE(3), 0, -1, 1), T_BOOL(NB_SHAPE(1), 1), T_BOOL(NB_SHAPE(1), 0));
    ck_assert_int_eq(nb_dtype_of(bools), NB_BOOL);
    ck_assert_values(bools, 0, 0, 1, 1);
    nb_scope_end();
}
END_TEST

START_TEST(where_mixed_dtype_gradients)
{
    nb_scope_begin();
    nb_tensor *a = T_F32(NB_SHAPE(2), 1, 2);
    nb_tensor *b = T_F64(NB_SHAPE(2), 3, 4);
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    nb_tensor *r = nb_where(T_BOOL(NB_SHAPE(2), 0, 1), a, b);
    ck_assert_int_eq(nb_dtype_of(r), NB_F64);
    ck_assert_values(r, 0, 3, 2);
    backward_ones(r);
    ck_assert_int_eq(nb_dtype_of(nb_grad(a)), NB_F32); /* the gradient comes back in the input's own dtype */
    ck_assert_values(nb_grad(a), 0, 0, 1);
    ck_assert_values(nb_grad(b), 0, 1, 0);
    nb_scope_end();
}
END_TEST

START_TEST(masked_fill_values)
{
    nb_scope_begin();
    nb_tensor *t = T_F64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    nb_set_requires_grad(t, true);
    nb_tensor *r = nb_masked_fill(t, T_BOOL(NB_SHAPE(3), 1, 0, 1), -1);
    ck_assert_shape(r, 2, 3);
    ck_assert_values(r, 0, -1, 2, -1, -1, 5, -1);
    ck_assert_str_eq(nb_grad_fn_name(r), "masked_fill");
    backward_ones(r);
    ck_assert_values(nb_grad(t), 0, 0, 1, 0, 0, 1, 0);
    /* an i64 mask of shape (2, 1): nonzero fills the whole row */
    ck_assert_values(nb_masked_fill(t, T_I64(NB_SHAPE(2, 1), 0, 5), 9), 0, 1, 2, 3, 9, 9, 9);
    /* integer and bool tensors; a 0-d mask */
    nb_tensor *ri = nb_masked_fill(T_I64(NB_SHAPE(3), 1, 2, 3), T_BOOL(NB_SHAPE(3), 0, 1, 0), -7);
    ck_assert_int_eq(nb_dtype_of(ri), NB_I64);
    ck_assert_values(ri, 0, 1, -7, 3);
    ck_assert_values(nb_masked_fill(T_BOOL(NB_SHAPE(2), 0, 0), nb_scalar(1, NB_BOOL), 3), 0, 1, 1);
    nb_tensor *inf = nb_masked_fill(T_F32(NB_SHAPE(2), 1, 2), nb_scalar(1, NB_BOOL), -INFINITY);
    ck_assert_tensor(inf);
    ck_assert(isinf(nb_get_flat(inf, 0)) && nb_get_flat(inf, 1) < 0 && isinf(nb_get_flat(inf, 1)));
    /* a non-contiguous input */
    nb_tensor *tt = nb_transpose(T_F64(NB_SHAPE(2, 2), 1, 2, 3, 4), 0, 1); /* [[1, 3], [2, 4]] */
    ck_assert_values(nb_masked_fill(tt, T_BOOL(NB_SHAPE(2), 0, 1), 0), 0, 1, 0, 2, 0);
    nb_scope_end();
}
END_TEST

/* Without a scope the caller owns results: the forward's temporaries (converted inputs, bool masks) must not
 * outlive the call, and a failed call must leave nothing behind. */
START_TEST(no_leaked_temporaries)
{
    nb_tensor *cond = T_F64(NB_SHAPE(2), 1, 0);
    nb_tensor *a = T_I64(NB_SHAPE(2), 1, 2);
    nb_tensor *b = T_F64(NB_SHAPE(2), 3, 4);
    nb_set_requires_grad(b, true);
    nb_tensor *ix = T_I64(NB_SHAPE(2), 1, 5);
    int64_t before = nb_memory_stats_get().live_tensors;
    nb_tensor *r = nb_where(cond, a, b);
    ck_assert_values(r, 0, 1, 4);
    nb_tensor *m = nb_masked_fill(b, cond, 0);
    ck_assert_values(m, 0, 0, 4);
    nb_free(r);
    nb_free(m);
    ck_assert_ptr_null(nb_index_select(b, 0, ix));
    ck_assert_ptr_null(nb_scatter_add(b, 0, ix, b));
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, before);
    nb_free(cond);
    nb_free(a);
    nb_free(b);
    nb_free(ix);
}
END_TEST

/* The graph keeps index tensors and conditions alive: the user may free them before backward. */
START_TEST(constants_freed_before_backward)
{
    nb_scope_begin();
    nb_tensor *w = T_F64(NB_SHAPE(3, 2), 1, 2, 3, 4, 5, 6);
    nb_set_requires_grad(w, true);
    nb_tensor *ix = T_I64(NB_SHAPE(2), 2, 2);
    nb_tensor *gx = T_I64(NB_SHAPE(1, 2), 0, 0);
    nb_tensor *cond = T_BOOL(NB_SHAPE(2), 0, 1);
    nb_tensor *e = nb_embedding(w, ix);
    nb_tensor *g = nb_gather(w, 0, gx);
    nb_tensor *r = nb_where(cond, nb_add(e, g), nb_zeros(NB_SHAPE(1), NB_F64));
    ck_assert_values(r, 0, 0, 8, 0, 8);
    ck_assert_ok(nb_free(ix));
    ck_assert_ok(nb_free(gx));
    ck_assert_ok(nb_free(cond));
    backward_ones(r);
    ck_assert_values(nb_grad(w), 0, 0, 2, 0, 0, 0, 2); /* column 1 only: row 2 twice, row 0 broadcast twice */
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Gradient checks. Index tensors and masks are constants reached through user_data.
 * ---------------------------------------------------------------------------------------------- */
enum layout { PLAIN, TRANSPOSED, NARROWED };
typedef struct idx_case {
    int dim;
    nb_tensor *index; /* or the condition / mask */
    enum layout layout;
    bool square; /* f(x) = op(x)^2, so that second derivatives are not all zero */
} idx_case;

/* The leaves are laid out so that the op sees the intended shape: (n, m) leaves of a TRANSPOSED case are
 * transposed to (m, n); NARROWED leaves lose their first row. */
static nb_tensor *arrange(nb_tensor *x, const idx_case *c)
{
    if (c->layout == TRANSPOSED) return nb_transpose(x, 0, 1);
    if (c->layout == NARROWED) return nb_narrow(x, 0, 1, nb_size(x, 0) - 1);
    return x;
}
static nb_tensor *finish(nb_tensor *y, const idx_case *c) { return c->square ? nb_mul(y, y) : y; }

static nb_tensor *f_gather(nb_tensor *const *x, void *u)
{
    idx_case *c = u;
    return finish(nb_gather(arrange(x[0], c), c->dim, c->index), c);
}
static nb_tensor *f_scatter_add(nb_tensor *const *x, void *u)
{
    idx_case *c = u;
    return finish(nb_scatter_add(arrange(x[0], c), c->dim, c->index, arrange(x[1], c)), c);
}
static nb_tensor *f_index_select(nb_tensor *const *x, void *u)
{
    idx_case *c = u;
    return finish(nb_index_select(arrange(x[0], c), c->dim, c->index), c);
}
static nb_tensor *f_embedding(nb_tensor *const *x, void *u)
{
    idx_case *c = u;
    return finish(nb_embedding(arrange(x[0], c), c->index), c);
}
static nb_tensor *f_where(nb_tensor *const *x, void *u)
{
    idx_case *c = u;
    return finish(nb_where(c->index, arrange(x[0], c), x[1]), c);
}
static nb_tensor *f_masked_fill(nb_tensor *const *x, void *u)
{
    idx_case *c = u;
    return finish(nb_masked_fill(arrange(x[0], c), c->index, 2.5), c);
}

/* Runs the check plain and squared (second derivative through the op's backward). */
static void check_both(nb_function f, idx_case c, int n, nb_tensor *const *x)
{
    c.square = false;
    ck_assert_gradcheck(f, &c, n, x, true);
    c.square = true;
    ck_assert_gradcheck(f, &c, n, x, true);
}

START_TEST(gather_gradients)
{
    nb_scope_begin();
    nb_tensor *x[1] = {nbt_leaf(NB_SHAPE(3, 4), 1)};
    /* repeated indices along dim 1, index smaller than x along dim 0 */
    check_both(f_gather, (idx_case){1, T_I64(NB_SHAPE(2, 3), 3, 3, 0, 1, 2, 1), PLAIN, false}, 1, x);
    check_both(f_gather, (idx_case){0, T_I64(NB_SHAPE(2, 4), 2, 2, 0, 1, 0, 0, 1, 2), PLAIN, false}, 1, x);
    /* x seen as (4, 3) through a transpose, and as (2, 4) through a narrow */
    check_both(f_gather, (idx_case){-1, T_I64(NB_SHAPE(4, 2), 0, 2, 1, 1, 2, 2, 0, 0), TRANSPOSED, false}, 1, x);
    check_both(f_gather, (idx_case){0, T_I64(NB_SHAPE(3, 4), 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1), NARROWED, false},
               1, x);
    /* 3-d along the middle dim */
    nb_tensor *x3[1] = {nbt_leaf(NB_SHAPE(2, 3, 2), 2)};
    check_both(f_gather, (idx_case){1, T_I64(NB_SHAPE(2, 2, 2), 2, 0, 2, 2, 1, 0, 0, 1), PLAIN, false}, 1, x3);
    nb_scope_end();
}
END_TEST

START_TEST(scatter_add_gradients)
{
    nb_scope_begin();
    nb_tensor *x[2] = {nbt_leaf(NB_SHAPE(3, 4), 3), nbt_leaf(NB_SHAPE(2, 3), 4)};
    check_both(f_scatter_add, (idx_case){0, T_I64(NB_SHAPE(2, 3), 2, 0, 2, 2, 2, 1), PLAIN, false}, 2, x);
    check_both(f_scatter_add, (idx_case){1, T_I64(NB_SHAPE(2, 3), 3, 3, 0, 1, 1, 1), PLAIN, false}, 2, x);
    /* index smaller than src: src's uncovered elements get zero gradient */
    check_both(f_scatter_add, (idx_case){1, T_I64(NB_SHAPE(1, 2), 3, 3), PLAIN, false}, 2, x);
    /* both inputs transposed: t (4, 3), src (3, 2) */
    check_both(f_scatter_add, (idx_case){0, T_I64(NB_SHAPE(2, 2), 3, 0, 3, 3), TRANSPOSED, false}, 2, x);
    nb_scope_end();
}
END_TEST

START_TEST(index_select_gradients)
{
    nb_scope_begin();
    nb_tensor *x[1] = {nbt_leaf(NB_SHAPE(3, 4), 5)};
    check_both(f_index_select, (idx_case){0, T_I64(NB_SHAPE(4), 2, 0, 2, 2), PLAIN, false}, 1, x);
    check_both(f_index_select, (idx_case){1, T_I64(NB_SHAPE(3), 3, 1, 3), PLAIN, false}, 1, x);
    check_both(f_index_select, (idx_case){1, nb_scalar(2, NB_I64), TRANSPOSED, false}, 1, x);
    check_both(f_index_select, (idx_case){-1, T_I64(NB_SHAPE(5), 0, 3, 3, 1, 0), NARROWED, false}, 1, x);
    nb_scope_end();
}
END_TEST

START_TEST(embedding_gradients)
{
    nb_scope_begin();
    nb_tensor *x[1] = {nbt_leaf(NB_SHAPE(4, 3), 6)};
    check_both(f_embedding, (idx_case){0, T_I64(NB_SHAPE(2, 2), 3, 0, 3, 3), PLAIN, false}, 1, x);
    check_both(f_embedding, (idx_case){0, T_I64(NB_SHAPE(3), 1, 2, 1), TRANSPOSED, false}, 1, x);
    check_both(f_embedding, (idx_case){0, nb_scalar(2, NB_I64), NARROWED, false}, 1, x);
    nb_scope_end();
}
END_TEST

START_TEST(where_gradients)
{
    nb_scope_begin();
    /* cond (2, 1, 1), a (3, 2) -> (2, 3), b (1, 2): all three broadcast to (2, 3, 2) */
    nb_tensor *x[2] = {nbt_leaf(NB_SHAPE(3, 2), 7), nbt_leaf(NB_SHAPE(1, 2), 8)};
    check_both(f_where, (idx_case){0, T_BOOL(NB_SHAPE(2, 1, 1), 1, 0), PLAIN, false}, 2, x);
    /* a (2, 3) seen as (3, 2); a float condition */
    nb_tensor *xt[2] = {nbt_leaf(NB_SHAPE(2, 3), 10), x[1]};
    check_both(f_where, (idx_case){0, T_F64(NB_SHAPE(3, 1), 0, -2, 1), TRANSPOSED, false}, 2, xt);
    check_both(f_where, (idx_case){0, T_I64(NB_SHAPE(2), 0, 3), NARROWED, false}, 2, x);
    nb_scope_end();
}
END_TEST

START_TEST(masked_fill_gradients)
{
    nb_scope_begin();
    nb_tensor *x[1] = {nbt_leaf(NB_SHAPE(3, 4), 9)};
    check_both(f_masked_fill, (idx_case){0, T_BOOL(NB_SHAPE(4), 1, 0, 0, 1), PLAIN, false}, 1, x);
    check_both(f_masked_fill, (idx_case){0, T_I64(NB_SHAPE(4, 1), 0, 1, 1, 0), TRANSPOSED, false}, 1, x);
    check_both(f_masked_fill, (idx_case){0, T_BOOL(NB_SHAPE(2, 4), 1, 0, 0, 1, 0, 1, 1, 0), NARROWED, false}, 1, x);
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------------------------- */
START_TEST(gather_errors)
{
    nb_scope_begin();
    nb_tensor *t = nb_zeros(NB_SHAPE(2, 3), NB_F64);
    ck_assert_ptr_null(nb_gather(t, 1, nb_zeros(NB_SHAPE(2, 2), NB_F32)));
    ck_assert_error(NB_ERR_DTYPE, "nb_gather", "index must be i64", "f32");
    ck_assert_ptr_null(nb_gather(t, 1, T_I64(NB_SHAPE(2, 2), 0, 1, 2, 3)));
    ck_assert_error(NB_ERR_INDEX, "nb_gather", "index 3", "dim 1", "size 3");
    ck_assert_ptr_null(nb_gather(t, 0, T_I64(NB_SHAPE(1, 2), 0, -1)));
    ck_assert_error(NB_ERR_INDEX, "nb_gather", "index -1", "dim 0", "size 2");
    ck_assert_ptr_null(nb_gather(t, 2, T_I64(NB_SHAPE(2, 2), 0, 0, 0, 0)));
    ck_assert_error(NB_ERR_ARG, "nb_gather", "dim 2", "(2, 3)");
    ck_assert_ptr_null(nb_gather(t, -3, T_I64(NB_SHAPE(2, 2), 0, 0, 0, 0)));
    ck_assert_error(NB_ERR_ARG, "nb_gather", "dim -3");
    ck_assert_ptr_null(nb_gather(t, 1, T_I64(NB_SHAPE(2), 0, 0)));
    ck_assert_error(NB_ERR_SHAPE, "nb_gather", "(2)", "(2, 3)", "number of dims");
    ck_assert_ptr_null(nb_gather(t, 1, nb_zeros(NB_SHAPE(3, 1), NB_I64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_gather", "(3, 1)", "(2, 3)", "3 > 2 at dim 0");
    /* the first error of an expression survives */
    ck_assert_ptr_null(nb_gather(nb_gather(t, 5, t), 0, NULL));
    ck_assert_error(NB_ERR_DTYPE, "nb_gather", "index must be i64, got f64");
    ck_assert_ptr_null(nb_gather(NULL, 0, t));
    nb_scope_end();
}
END_TEST

START_TEST(scatter_add_errors)
{
    nb_scope_begin();
    nb_tensor *t = nb_zeros(NB_SHAPE(2, 3), NB_F64);
    nb_tensor *src = nb_ones(NB_SHAPE(2, 3), NB_F64);
    nb_tensor *ix = nb_zeros(NB_SHAPE(2, 3), NB_I64);
    ck_assert_ptr_null(nb_scatter_add(t, 0, nb_zeros(NB_SHAPE(2, 3), NB_BOOL), src));
    ck_assert_error(NB_ERR_DTYPE, "nb_scatter_add", "index must be i64", "bool");
    ck_assert_ptr_null(nb_scatter_add(t, 0, ix, nb_ones(NB_SHAPE(2, 3), NB_F32)));
    ck_assert_error(NB_ERR_DTYPE, "nb_scatter_add", "src dtype f32", "f64");
    ck_assert_ptr_null(nb_scatter_add(nb_zeros(NB_SHAPE(2, 3), NB_BOOL), 0, ix, nb_zeros(NB_SHAPE(2, 3), NB_BOOL)));
    ck_assert_error(NB_ERR_DTYPE, "nb_scatter_add", "bool");
    /* every index is checked before anything is written: the bad one is the last */
    ck_assert_ptr_null(nb_scatter_add(t, 1, T_I64(NB_SHAPE(2, 3), 0, 1, 2, 2, 1, 7), src));
    ck_assert_error(NB_ERR_INDEX, "nb_scatter_add", "index 7", "dim 1", "size 3");
    ck_assert_values(t, 0, 0, 0, 0, 0, 0, 0);
    ck_assert_ptr_null(nb_scatter_add(t, 0, T_I64(NB_SHAPE(1, 1), -2), src));
    ck_assert_error(NB_ERR_INDEX, "nb_scatter_add", "index -2", "dim 0", "size 2");
    ck_assert_ptr_null(nb_scatter_add(t, -3, ix, src));
    ck_assert_error(NB_ERR_ARG, "nb_scatter_add", "dim -3", "(2, 3)");
    ck_assert_ptr_null(nb_scatter_add(t, 0, nb_zeros(NB_SHAPE(3), NB_I64), src));
    ck_assert_error(NB_ERR_SHAPE, "nb_scatter_add", "(2, 3)", "(3)", "number of dims");
    ck_assert_ptr_null(nb_scatter_add(t, 0, ix, nb_ones(NB_SHAPE(2, 2), NB_F64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_scatter_add", "index shape (2, 3)", "src shape (2, 2)", "3 > 2 at dim 1");
    ck_assert_ptr_null(nb_scatter_add(t, 1, nb_zeros(NB_SHAPE(3, 1), NB_I64), nb_ones(NB_SHAPE(3, 3), NB_F64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_scatter_add", "index shape (3, 1)", "tensor shape (2, 3)", "3 > 2 at dim 0");
    /* along dim itself the index may be longer than t */
    ck_assert_values(nb_scatter_add(nb_zeros(NB_SHAPE(1), NB_F64), 0, nb_zeros(NB_SHAPE(3), NB_I64),
                                    nb_ones(NB_SHAPE(3), NB_F64)), 0, 3);
    nb_scope_end();
}
END_TEST

START_TEST(index_select_errors)
{
    nb_scope_begin();
    nb_tensor *t = nb_zeros(NB_SHAPE(2, 3), NB_F32);
    ck_assert_ptr_null(nb_index_select(t, 0, T_F64(NB_SHAPE(1), 0)));
    ck_assert_error(NB_ERR_DTYPE, "nb_index_select", "index must be i64", "f64");
    ck_assert_ptr_null(nb_index_select(t, 1, T_I64(NB_SHAPE(3), 0, 3, 1)));
    ck_assert_error(NB_ERR_INDEX, "nb_index_select", "index 3", "dim 1", "size 3");
    ck_assert_ptr_null(nb_index_select(t, 0, T_I64(NB_SHAPE(2), 1, -1)));
    ck_assert_error(NB_ERR_INDEX, "nb_index_select", "index -1", "dim 0", "size 2");
    ck_assert_ptr_null(nb_index_select(t, 2, T_I64(NB_SHAPE(1), 0)));
    ck_assert_error(NB_ERR_ARG, "nb_index_select", "dim 2", "(2, 3)");
    ck_assert_ptr_null(nb_index_select(t, 0, nb_zeros(NB_SHAPE(1, 1), NB_I64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_index_select", "1-d", "(1, 1)");
    ck_assert_ptr_null(nb_index_select(nb_scalar(1, NB_F32), 0, T_I64(NB_SHAPE(1), 0)));
    ck_assert_error(NB_ERR_ARG, "nb_index_select", "dim 0", "()");
    nb_scope_end();
}
END_TEST

START_TEST(embedding_errors)
{
    nb_scope_begin();
    nb_tensor *w = nb_zeros(NB_SHAPE(4, 2), NB_F32);
    ck_assert_ptr_null(nb_embedding(w, T_F32(NB_SHAPE(2), 0, 1)));
    ck_assert_error(NB_ERR_DTYPE, "nb_embedding", "indices must be i64", "f32");
    ck_assert_ptr_null(nb_embedding(w, T_I64(NB_SHAPE(2, 2), 0, 1, 4, 2)));
    ck_assert_error(NB_ERR_INDEX, "nb_embedding", "index 4", "dim 0", "size 4");
    ck_assert_ptr_null(nb_embedding(w, T_I64(NB_SHAPE(1), -1)));
    ck_assert_error(NB_ERR_INDEX, "nb_embedding", "index -1", "size 4");
    ck_assert_ptr_null(nb_embedding(nb_zeros(NB_SHAPE(4), NB_F32), T_I64(NB_SHAPE(1), 0)));
    ck_assert_error(NB_ERR_SHAPE, "nb_embedding", "weight must be 2-d", "(4)");
    ck_assert_ptr_null(nb_embedding(w, nb_zeros(NB_SHAPE(1, 1, 1, 1, 1, 1, 1, 1), NB_I64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_embedding", "(1, 1, 1, 1, 1, 1, 1, 1)");
    nb_scope_end();
}
END_TEST

START_TEST(where_and_masked_fill_errors)
{
    nb_scope_begin();
    nb_tensor *t = nb_zeros(NB_SHAPE(2, 3), NB_F64);
    ck_assert_ptr_null(nb_where(nb_ones(NB_SHAPE(4), NB_BOOL), t, t));
    ck_assert_error(NB_ERR_SHAPE, "nb_where", "(4)", "(2, 3)");
    ck_assert_ptr_null(nb_where(nb_ones(NB_SHAPE(3), NB_BOOL), t, nb_zeros(NB_SHAPE(2), NB_F64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_where", "(2, 3)", "(2)");
    nb_clear_error(); /* a NULL argument is reported only when no error is pending */
    ck_assert_ptr_null(nb_where(NULL, t, t));
    ck_assert_error(NB_ERR_NULL, "nb_where", "cond");
    /* the mask broadcasts to t's shape, not the other way round */
    ck_assert_ptr_null(nb_masked_fill(nb_zeros(NB_SHAPE(3), NB_F64), nb_ones(NB_SHAPE(2, 3), NB_BOOL), 1));
    ck_assert_error(NB_ERR_SHAPE, "nb_masked_fill", "mask shape (2, 3)", "(3)");
    ck_assert_ptr_null(nb_masked_fill(t, nb_ones(NB_SHAPE(2), NB_BOOL), 1));
    ck_assert_error(NB_ERR_SHAPE, "nb_masked_fill", "mask shape (2)", "(2, 3)");
    ck_assert_ptr_null(nb_masked_fill(nb_zeros(NB_SHAPE(2), NB_I64), nb_ones(NB_SHAPE(2), NB_BOOL), NAN));
    ck_assert_error(NB_ERR_VALUE, "nb_masked_fill", "nan", "i64");
    ck_assert_ptr_null(nb_masked_fill(nb_zeros(NB_SHAPE(2), NB_I64), nb_ones(NB_SHAPE(2), NB_BOOL), 1e19));
    ck_assert_error(NB_ERR_VALUE, "nb_masked_fill", "1e+19", "i64");
    nb_scope_end();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("index");
    TCase *tc = tcase_create("index");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gather_2d_values);
    tcase_add_test(tc, gather_3d_each_dim);
    tcase_add_test(tc, gather_non_contiguous);
    tcase_add_test(tc, scatter_add_accumulates);
    tcase_add_test(tc, scatter_add_3d_non_contiguous);
    tcase_add_test(tc, index_select_values);
    tcase_add_test(tc, index_select_gradient_accumulates);
    tcase_add_test(tc, embedding_values_and_accumulation);
    tcase_add_test(tc, where_broadcasts_all_three);
    tcase_add_test(tc, where_mixed_dtype_gradients);
    tcase_add_test(tc, masked_fill_values);
    tcase_add_test(tc, no_leaked_temporaries);
    tcase_add_test(tc, constants_freed_before_backward);
    tcase_add_test(tc, gather_gradients);
    tcase_add_test(tc, scatter_add_gradients);
    tcase_add_test(tc, index_select_gradients);
    tcase_add_test(tc, embedding_gradients);
    tcase_add_test(tc, where_gradients);
    tcase_add_test(tc, masked_fill_gradients);
    tcase_add_test(tc, gather_errors);
    tcase_add_test(tc, scatter_add_errors);
    tcase_add_test(tc, index_select_errors);
    tcase_add_test(tc, embedding_errors);
    tcase_add_test(tc, where_and_masked_fill_errors);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
