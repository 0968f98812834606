/* Shape ops: values and shapes, storage sharing of views (writes seen both ways), view vs copy, contiguity,
 * negative dims, every error path, zero-size dims, 8-dim tensors, and first and second order gradients
 * (also through non-contiguous inputs and for cat/stack of several inputs). */
#include "helpers.h"

/* 0, 1, ..., n-1 as f64 with the given shape. */
static nb_tensor *iota(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return nb_reshape(nb_arange(0, (double)n, 1, NB_F64), ndim, shape);
}

/* t is a valid 0-d tensor. */
#define ck_assert_scalar_shape(t)                                                                     \
    do {                                                                                              \
        ck_assert_tensor(t);                                                                          \
        ck_assert_int_eq(nb_ndim(t), 0);                                                              \
    } while (0)

#define ck_assert_strides(t, ...)                                                                     \
    do {                                                                                              \
        const int64_t ck_st_[] = {__VA_ARGS__};                                                       \
        ck_assert_tensor(t);                                                                          \
        ck_assert_int_eq(nb_ndim(t), (int)(sizeof ck_st_ / sizeof *ck_st_));                          \
        for (size_t ck_k_ = 0; ck_k_ < sizeof ck_st_ / sizeof *ck_st_; ck_k_++)                       \
            ck_assert_int_eq(nb_strides(t)[ck_k_], ck_st_[ck_k_]);                                    \
    } while (0)

/* ------------------------------------------------------------------------------------------------
 * Values, views, contiguity
 * ---------------------------------------------------------------------------------------------- */
START_TEST(transpose_is_a_shared_view)
{
    nb_scope_begin();
    nb_tensor *x = iota(NB_SHAPE(2, 3));
    nb_tensor *t = nb_transpose(x, 0, 1);
    ck_assert_shape(t, 3, 2);
    ck_assert_strides(t, 1, 3);
    ck_assert_values(t, 0, 0, 3, 1, 4, 2, 5);
    ck_assert(nb_shares_storage(x, t));
    ck_assert(nb_is_contiguous(x));
    ck_assert(!nb_is_contiguous(t));
    /* writes through either are seen by the other */
    ck_assert_ok(nb_set(t, (const int64_t[]){2, 1}, 100));
    ck_assert_close(nb_get(x, (const int64_t[]){1, 2}), 100, 0);
    ck_assert_ok(nb_set(x, (const int64_t[]){0, 1}, -7));
    ck_assert_close(nb_get(t, (const int64_t[]){1, 0}), -7, 0);
    /* negative dims, and transposing a dim with itself */
    ck_assert_values(nb_transpose(x, -1, -2), 0, 0, 3, -7, 4, 2, 100);
    ck_assert_values(nb_transpose(x, 1, -1), 0, 0, -7, 2, 3, 4, 100);
    ck_assert_scalar_shape(nb_transpose(nb_scalar(5, NB_F64), 0, -1)); /* a 0-d tensor as in PyTorch */
    ck_assert_str_eq(nb_grad_fn_name(nb_transpose(nbt_leaf(NB_SHAPE(2, 2), 1), 0, 1)), "transpose");
    /* transposing twice gives back a contiguous layout */
    ck_assert(nb_is_contiguous(nb_transpose(t, 0, 1)));
    nb_scope_end();
}
END_TEST

START_TEST(permute_values_and_strides)
{
    nb_scope_begin();
    nb_tensor *x = iota(NB_SHAPE(2, 3, 4));
    nb_tensor *p = nb_permute(x, NB_DIMS(2, 0, 1));
    ck_assert_shape(p, 4, 2, 3);
    ck_assert_strides(p, 1, 12, 4);
    ck_assert(nb_shares_storage(x, p));
    ck_assert(!nb_is_contiguous(p));
    for (int64_t k = 0; k < 4; k++)
        for (int64_t i = 0; i < 2; i++)
            for (int64_t j = 0; j < 3; j++)
                ck_assert_close(nb_get(p, (const int64_t[]){k, i, j}), i * 12 + j * 4 + k, 0);
    /* negative dims name the same permutation */
    nb_tensor *q = nb_permute(x, NB_DIMS(-1, 0, -2));
    ck_assert_shape(q, 4, 2, 3);
    ck_assert_strides(q, 1, 12, 4);
    ck_assert(nb_is_contiguous(nb_permute(x, NB_DIMS(0, 1, 2))));
    ck_assert_scalar_shape(nb_permute(nb_scalar(1, NB_F64), 0, NULL));
    ck_assert_ok(nb_set(p, (const int64_t[]){3, 1, 2}, -1));
    ck_assert_close(nb_get(x, (const int64_t[]){1, 2, 3}), -1, 0);
    nb_scope_end();
}
END_TEST

START_TEST(reshape_views_when_it_can_and_copies_otherwise)
{
    nb_scope_begin();
    nb_tensor *x = iota(NB_SHAPE(2, 3));
    nb_tensor *r = nb_reshape(x, NB_SHAPE(3, 2));
    ck_assert_shape(r, 3, 2);
    ck_assert_values(r, 0, 0, 1, 2, 3, 4, 5);
    ck_assert(nb_shares_storage(x, r));
    ck_assert(nb_is_contiguous(r));
    ck_assert_ok(nb_set(r, (const int64_t[]){2, 0}, 40));
    ck_assert_close(nb_get(x, (const int64_t[]){1, 1}), 40, 0);
    /* -1 is inferred, anywhere */
    ck_assert_shape(nb_reshape(x, NB_SHAPE(-1)), 6);
    ck_assert_shape(nb_reshape(x, NB_SHAPE(1, -1, 2)), 1, 3, 2);
    ck_assert_shape(nb_reshape(x, NB_SHAPE(6, -1)), 6, 1);
    /* to and from 0-d */
    nb_tensor *one = nb_reshape(nb_scalar(3, NB_F64), NB_SHAPE(1, 1));
    ck_assert_shape(one, 1, 1);
    ck_assert_scalar_shape(nb_reshape(one, 0, NULL));
    ck_assert_close(nb_item(nb_reshape(one, 0, NULL)), 3, 0);

    /* a transposed tensor cannot be read row-major in place: reshape copies, view refuses */
    nb_tensor *t = nb_transpose(x, 0, 1);
    nb_tensor *c = nb_reshape(t, NB_SHAPE(6));
    ck_assert_values(c, 0, 0, 3, 1, 40, 2, 5);
    ck_assert(!nb_shares_storage(c, x));
    ck_assert(nb_is_contiguous(c));
    ck_assert_str_eq(nb_grad_fn_name(nb_reshape(nbt_leaf(NB_SHAPE(2, 3), 1), NB_SHAPE(3, 2))), "view");
    ck_assert_str_eq(nb_grad_fn_name(nb_reshape(nb_transpose(nbt_leaf(NB_SHAPE(2, 3), 1), 0, 1), NB_SHAPE(6))),
                     "reshape");
    ck_assert_ptr_null(nb_view(t, NB_SHAPE(6)));
    ck_assert_error(NB_ERR_SHAPE, "nb_view", "(3, 2)", "strides (1, 3)", "(6)", "nb_reshape");
    /* ... but a view that keeps the transposed dims apart is fine */
    ck_assert_ptr_nonnull(nb_view(t, NB_SHAPE(3, 1, 2)));
    nb_scope_end();
}
END_TEST

/* PyTorch's rule: dims that are contiguous among themselves can be split and merged freely. */
START_TEST(view_of_non_contiguous_layouts)
{
    nb_scope_begin();
    nb_tensor *x = iota(NB_SHAPE(2, 3, 4));
    nb_tensor *t = nb_transpose(x, 0, 1); /* (3, 2, 4), strides (4, 12, 1) */
    nb_tensor *v = nb_view(t, NB_SHAPE(3, 2, 2, 2));
    ck_assert_shape(v, 3, 2, 2, 2);
    ck_assert_strides(v, 4, 12, 2, 1);
    ck_assert(nb_shares_storage(v, x));
    ck_assert_close(nb_get(v, (const int64_t[]){2, 1, 1, 0}), nb_get(x, (const int64_t[]){1, 2, 2}), 0);
    ck_assert_ptr_null(nb_view(t, NB_SHAPE(3, 8)));
    ck_assert_error(NB_ERR_SHAPE, "nb_view", "(3, 2, 4)", "(3, 8)");
    /* size-1 dims may go anywhere */
    nb_tensor *w = nb_view(t, NB_SHAPE(1, 3, 1, 2, 4, 1));
    ck_assert_shape(w, 1, 3, 1, 2, 4, 1);
    ck_assert_close(nb_get(w, (const int64_t[]){0, 2, 0, 1, 3, 0}), 23, 0);
    /* narrowed rows stay mergeable with the dims inside them */
    nb_tensor *n = nb_narrow(x, 1, 1, 2); /* (2, 2, 4), strides (12, 4, 1) */
    nb_tensor *m = nb_view(n, NB_SHAPE(2, 8));
    ck_assert_strides(m, 12, 1);
    ck_assert_values(m, 0, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23);
    ck_assert_ptr_null(nb_view(n, NB_SHAPE(16)));
    ck_assert_error(NB_ERR_SHAPE, "nb_view", "(2, 2, 4)", "(16)");
    nb_tensor *copied = nb_reshape(n, NB_SHAPE(16));
    ck_assert(!nb_shares_storage(copied, x));
    ck_assert_values(copied, 0, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23);
    /* an expanded tensor copies too */
    nb_tensor *e = nb_expand(T_F64(NB_SHAPE(3), 1, 2, 3), NB_SHAPE(2, 3));
    nb_tensor *ef = nb_reshape(e, NB_SHAPE(6));
    ck_assert_values(ef, 0, 1, 2, 3, 1, 2, 3);
    ck_assert(!nb_shares_storage(e, ef));
    ck_assert_ptr_nonnull(nb_view(e, NB_SHAPE(2, 1, 3)));
    nb_scope_end();
}
END_TEST

START_TEST(flatten_values)
{
    nb_scope_begin();
    nb_tensor *x = iota(NB_SHAPE(2, 3, 4));
    ck_assert_shape(nb_flatten(x, 1, 2), 2, 12);
    ck_assert_shape(nb_flatten(x, 0, 1), 6, 4);
    ck_assert_shape(nb_flatten(x, 0, -1), 24);
    ck_assert_shape(nb_flatten(x, -2, -2), 2, 3, 4);
    ck_assert(nb_shares_storage(nb_flatten(x, 0, -1), x));
    ck_assert_shape(nb_flatten(nb_scalar(2, NB_F64), 0, -1), 1);
    nb_tensor *t = nb_transpose(x, 0, 2); /* (4, 3, 2) */
    nb_tensor *f = nb_flatten(t, 1, 2);
    ck_assert_shape(f, 4, 6);
    ck_assert(!nb_shares_storage(f, x));
    ck_assert_values(nb_narrow(f, 0, 1, 1), 0, 1, 13, 5, 17, 9, 21);
    nb_scope_end();
}
END_TEST

START_TEST(squeeze_and_unsqueeze)
{
    nb_scope_begin();
    nb_tensor *x = iota(NB_SHAPE(2, 1, 3));
    nb_tensor *s = nb_squeeze(x, 1);
    ck_assert_shape(s, 2, 3);
    ck_assert(nb_shares_storage(s, x));
    ck_assert(nb_is_contiguous(s));
    ck_assert_values(s, 0, 0, 1, 2, 3, 4, 5);
    ck_assert_shape(nb_squeeze(x, -2), 2, 3);
    ck_assert_scalar_shape(nb_squeeze(nb_scalar(1, NB_F64), 0)); /* 0-d squeezes to itself, as in PyTorch */

    nb_tensor *u = nb_unsqueeze(s, 0);
    ck_assert_shape(u, 1, 2, 3);
    ck_assert(nb_is_contiguous(u));
    ck_assert_shape(nb_unsqueeze(s, 2), 2, 3, 1);
    ck_assert_shape(nb_unsqueeze(s, -1), 2, 3, 1);
    ck_assert_shape(nb_unsqueeze(s, -3), 1, 2, 3);
    ck_assert_shape(nb_unsqueeze(nb_scalar(1, NB_F64), 0), 1);
    /* unsqueezing a transposed tensor keeps it a view with the right values */
    nb_tensor *tu = nb_unsqueeze(nb_transpose(s, 0, 1), 1);
    ck_assert_shape(tu, 3, 1, 2);
    ck_assert(nb_shares_storage(tu, x));
    ck_assert_values(tu, 0, 0, 3, 1, 4, 2, 5);
    ck_assert_ok(nb_set(tu, (const int64_t[]){1, 0, 1}, 9));
    ck_assert_close(nb_get(x, (const int64_t[]){1, 0, 1}), 9, 0);
    ck_assert_str_eq(nb_grad_fn_name(nb_squeeze(nbt_leaf(NB_SHAPE(1), 1), 0)), "squeeze");
    ck_assert_str_eq(nb_grad_fn_name(nb_unsqueeze(nbt_leaf(NB_SHAPE(1), 1), 0)), "unsqueeze");
    nb_scope_end();
}
END_TEST

START_TEST(narrow_values_and_sharing)
{
    nb_scope_begin();
    nb_tensor *x = iota(NB_SHAPE(3, 4));
    nb_tensor *rows = nb_narrow(x, 0, 1, 2);
    ck_assert_shape(rows, 2, 4);
    ck_assert_values(rows, 0, 4, 5, 6, 7, 8, 9, 10, 11);
    ck_assert(nb_is_contiguous(rows));
    nb_tensor *cols = nb_narrow(x, -1, -3, 2); /* start -3 is column 1 */
    ck_assert_shape(cols, 3, 2);
    ck_assert_values(cols, 0, 1, 2, 5, 6, 9, 10);
    ck_assert(!nb_is_contiguous(cols));
    ck_assert(nb_shares_storage(cols, x));
    ck_assert_ok(nb_set(cols, (const int64_t[]){2, 1}, -5));
    ck_assert_close(nb_get(x, (const int64_t[]){2, 2}), -5, 0);
    ck_assert_ok(nb_set(x, (const int64_t[]){0, 1}, 50));
    ck_assert_close(nb_get(cols, (const int64_t[]){0, 0}), 50, 0);
    /* narrowing a narrowed view */
    ck_assert_values(nb_narrow(cols, 0, 1, 1), 0, 5, 6);
    /* the full range and the empty ranges at both ends */
    ck_assert_shape(nb_narrow(x, 1, 0, 4), 3, 4);
    ck_assert_shape(nb_narrow(x, 1, 4, 0), 3, 0);
    ck_assert_shape(nb_narrow(x, 1, -4, 0), 3, 0);
    ck_assert_str_eq(nb_grad_fn_name(nb_narrow(nbt_leaf(NB_SHAPE(3), 1), 0, 1, 1)), "narrow");
    nb_scope_end();
}
END_TEST

START_TEST(slice_follows_python_rules)
{
    nb_scope_begin();
    nb_tensor *x = nb_arange(0, 7, 1, NB_F64); /* [0..6] */
    ck_assert_values(nb_slice(x, 0, 1, 5, 2), 0, 1, 3);
    ck_assert_values(nb_slice(x, 0, 1, 6, 2), 0, 1, 3, 5);
    ck_assert_values(nb_slice(x, 0, -3, INT64_MAX, 1), 0, 4, 5, 6);
    ck_assert_values(nb_slice(x, 0, -100, 100, 3), 0, 0, 3, 6);
    ck_assert_values(nb_slice(x, 0, 0, -1, 4), 0, 0, 4);
    ck_assert_values(nb_slice(x, 0, 6, 7, 10), 0, 6);
    ck_assert_values(nb_slice(x, 0, 2, INT64_MAX, INT64_MAX), 0, 2);
    ck_assert_values(nb_slice(x, 0, INT64_MIN, INT64_MAX, 6), 0, 0, 6);
    ck_assert_shape(nb_slice(x, 0, 4, 1, 1), 0);     /* end before start: empty */
    ck_assert_shape(nb_slice(x, 0, 9, 12, 1), 0);    /* start past the end: empty */
    ck_assert_shape(nb_slice(x, 0, -100, -50, 1), 0);
    ck_assert_shape(nb_slice(x, 0, 3, 3, 2), 0);
    nb_tensor *m = iota(NB_SHAPE(2, 5));
    nb_tensor *s = nb_slice(m, 1, 0, INT64_MAX, 2);
    ck_assert_shape(s, 2, 3);
    ck_assert_strides(s, 5, 2);
    ck_assert_values(s, 0, 0, 2, 4, 5, 7, 9);
    ck_assert(!nb_is_contiguous(s));
    ck_assert(nb_shares_storage(s, m));
    ck_assert_ok(nb_set(s, (const int64_t[]){1, 2}, 90));
    ck_assert_close(nb_get(m, (const int64_t[]){1, 4}), 90, 0);
    /* a slice of a slice composes steps */
    ck_assert_values(nb_slice(s, 1, 1, 3, 1), 0, 2, 4, 7, 90);
    ck_assert_values(nb_slice(nb_slice(x, 0, 1, 7, 2), 0, 0, 3, 2), 0, 1, 5);
    ck_assert_str_eq(nb_grad_fn_name(nb_slice(nbt_leaf(NB_SHAPE(3), 1), 0, 0, 3, 2)), "slice");
    nb_scope_end();
}
END_TEST

START_TEST(cat_values)
{
    nb_scope_begin();
    nb_tensor *a = iota(NB_SHAPE(2, 2));
    nb_tensor *b = nb_full(NB_SHAPE(1, 2), 9, NB_F64);
    nb_tensor *c = nb_full(NB_SHAPE(2, 1), 7, NB_F64);
    nb_tensor *rows = nb_cat(2, (nb_tensor *[]){a, b}, 0);
    ck_assert_shape(rows, 3, 2);
    ck_assert_values(rows, 0, 0, 1, 2, 3, 9, 9);
    ck_assert(!nb_shares_storage(rows, a));
    nb_tensor *cols = nb_cat(3, (nb_tensor *[]){a, c, a}, -1);
    ck_assert_shape(cols, 2, 5);
    ck_assert_values(cols, 0, 0, 1, 7, 0, 1, 2, 3, 7, 2, 3);
    /* non-contiguous pieces */
    ck_assert_values(nb_cat(2, (nb_tensor *[]){nb_transpose(a, 0, 1), a}, 1), 0, 0, 2, 0, 1, 1, 3, 2, 3);
    /* one piece: a copy */
    nb_tensor *one = nb_cat(1, (nb_tensor *[]){a}, 0);
    ck_assert_values(one, 0, 0, 1, 2, 3);
    ck_assert(!nb_shares_storage(one, a));
    /* mixed dtypes promote */
    nb_tensor *ints = T_I64(NB_SHAPE(2), 1, 2);
    nb_tensor *fl = T_F32(NB_SHAPE(1), 0.5f);
    nb_tensor *mixed = nb_cat(2, (nb_tensor *[]){ints, fl}, 0);
    ck_assert_int_eq(nb_dtype_of(mixed), NB_F32);
    ck_assert_values(mixed, 0, 1, 2, 0.5);
    ck_assert_int_eq(nb_dtype_of(nb_cat(2, (nb_tensor *[]){ints, ints}, 0)), NB_I64);
    ck_assert_str_eq(nb_grad_fn_name(nb_cat(2, (nb_tensor *[]){nbt_leaf(NB_SHAPE(1, 2), 1), a}, 0)), "cat");
    nb_scope_end();
}
END_TEST

START_TEST(stack_values)
{
    nb_scope_begin();
    nb_tensor *a = T_F64(NB_SHAPE(3), 1, 2, 3);
    nb_tensor *b = T_F64(NB_SHAPE(3), 4, 5, 6);
    nb_tensor *s0 = nb_stack(2, (nb_tensor *[]){a, b}, 0);
    ck_assert_shape(s0, 2, 3);
    ck_assert_values(s0, 0, 1, 2, 3, 4, 5, 6);
    nb_tensor *s1 = nb_stack(2, (nb_tensor *[]){a, b}, 1);
    ck_assert_shape(s1, 3, 2);
    ck_assert_values(s1, 0, 1, 4, 2, 5, 3, 6);
    ck_assert_shape(nb_stack(2, (nb_tensor *[]){a, b}, -1), 3, 2);
    ck_assert_shape(nb_stack(3, (nb_tensor *[]){a, b, a}, -2), 3, 3);
    ck_assert(!nb_shares_storage(s0, a));
    /* 0-d tensors stack into a vector */
    nb_tensor *v = nb_stack(3, (nb_tensor *[]){nb_scalar(1, NB_F64), nb_scalar(2, NB_F64), nb_scalar(3, NB_F64)}, 0);
    ck_assert_shape(v, 3);
    ck_assert_values(v, 0, 1, 2, 3);
    nb_scope_end();
}
END_TEST

/* Long lists go through an allocated array rather than the inline one. */
START_TEST(cat_and_stack_many_inputs)
{
    nb_scope_begin();
    nb_tensor *pieces[40];
    for (int i = 0; i < 40; i++) pieces[i] = nb_full(NB_SHAPE(1, 2), i, NB_F64);
    nb_tensor *c = nb_cat(40, pieces, 0);
    ck_assert_shape(c, 40, 2);
    nb_tensor *s = nb_stack(40, pieces, 1);
    ck_assert_shape(s, 1, 40, 2);
    for (int64_t i = 0; i < 40; i++) {
        ck_assert_close(nb_get(c, (const int64_t[]){i, 1}), (double)i, 0);
        ck_assert_close(nb_get(s, (const int64_t[]){0, i, 0}), (double)i, 0);
    }
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Zero-size dims and 8 dims
 * ---------------------------------------------------------------------------------------------- */
START_TEST(zero_size_dims)
{
    nb_scope_begin();
    nb_tensor *e = nb_zeros(NB_SHAPE(0, 3), NB_F64);
    nb_tensor *r = nb_reshape(e, NB_SHAPE(3, 0));
    ck_assert_shape(r, 3, 0);
    ck_assert(nb_shares_storage(r, e));
    ck_assert_shape(nb_reshape(e, NB_SHAPE(-1)), 0);
    ck_assert_shape(nb_reshape(e, NB_SHAPE(2, 0, 5)), 2, 0, 5);
    ck_assert_shape(nb_view(nb_transpose(e, 0, 1), NB_SHAPE(0, 5)), 0, 5); /* no elements: any view works */
    ck_assert_strides(nb_view(nb_transpose(e, 0, 1), NB_SHAPE(3, 0)), 1, 3); /* same shape keeps strides */
    /* as in PyTorch, -1 next to a 0 is ambiguous */
    ck_assert_ptr_null(nb_reshape(e, NB_SHAPE(0, -1)));
    ck_assert_error(NB_ERR_SHAPE, "nb_reshape", "(0, 3)", "(0, -1)", "ambiguous");
    ck_assert_shape(nb_transpose(e, 0, 1), 3, 0);
    ck_assert_shape(nb_permute(e, NB_DIMS(1, 0)), 3, 0);
    ck_assert_shape(nb_unsqueeze(e, 1), 0, 1, 3);
    ck_assert_shape(nb_flatten(e, 0, 1), 0);
    ck_assert_shape(nb_narrow(e, 1, 1, 2), 0, 2);
    ck_assert_shape(nb_slice(e, 0, 0, 10, 3), 0, 3);
    ck_assert_shape(nb_squeeze(nb_zeros(NB_SHAPE(0, 1), NB_F64), 1), 0);
    ck_assert_ptr_null(nb_squeeze(e, 0));
    ck_assert_error(NB_ERR_SHAPE, "nb_squeeze", "(0, 3)", "size 0");

    /* narrow and slice of length 0 */
    nb_tensor *x = iota(NB_SHAPE(2, 3));
    ck_assert_shape(nb_narrow(x, 0, 2, 0), 0, 3);
    ck_assert_int_eq(nb_numel(nb_narrow(x, 1, 0, 0)), 0);
    ck_assert_shape(nb_slice(x, 1, 3, 3, 1), 2, 0);

    /* an empty piece in cat contributes nothing, and a legacy (0) piece is skipped at any rank */
    nb_tensor *c = nb_cat(3, (nb_tensor *[]){x, e, x}, 0);
    ck_assert_shape(c, 4, 3);
    ck_assert_values(c, 0, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5);
    nb_tensor *legacy = nb_zeros(NB_SHAPE(0), NB_F64);
    ck_assert_shape(nb_cat(3, (nb_tensor *[]){legacy, x, legacy}, 1), 2, 3);
    ck_assert_values(nb_cat(3, (nb_tensor *[]){legacy, x, x}, 1), 0, 0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5);
    ck_assert_shape(nb_cat(2, (nb_tensor *[]){legacy, legacy}, 0), 0);
    ck_assert_shape(nb_cat(2, (nb_tensor *[]){nb_zeros(NB_SHAPE(2, 0), NB_F64), nb_narrow(x, 1, 1, 0)}, 1), 2, 0);
    ck_assert_shape(nb_stack(2, (nb_tensor *[]){e, e}, 1), 0, 2, 3);
    ck_assert_shape(nb_stack(2, (nb_tensor *[]){legacy, legacy}, 0), 2, 0);
    nb_scope_end();
}
END_TEST

START_TEST(eight_dims)
{
    nb_scope_begin();
    nb_tensor *x = iota(NB_SHAPE(1, 2, 1, 2, 1, 2, 1, 2));
    nb_tensor *p = nb_permute(x, NB_DIMS(7, 6, 5, 4, 3, 2, 1, 0));
    ck_assert_shape(p, 2, 1, 2, 1, 2, 1, 2, 1);
    ck_assert_strides(p, 1, 2, 2, 4, 4, 8, 8, 16);
    ck_assert_close(nb_get(p, (const int64_t[]){1, 0, 0, 0, 1, 0, 1, 0}), 1 + 4 + 8, 0);
    ck_assert_shape(nb_squeeze(x, 0), 2, 1, 2, 1, 2, 1, 2);
    ck_assert_shape(nb_reshape(p, NB_SHAPE(2, 2, 2, 2, 1, 1, 1, 1)), 2, 2, 2, 2, 1, 1, 1, 1);
    ck_assert_shape(nb_transpose(x, 0, 7), 2, 2, 1, 2, 1, 2, 1, 1);
    ck_assert_shape(nb_narrow(x, 7, 1, 1), 1, 2, 1, 2, 1, 2, 1, 1);
    ck_assert_shape(nb_flatten(x, 1, 6), 1, 8, 2);
    ck_assert_shape(nb_cat(2, (nb_tensor *[]){x, x}, 4), 1, 2, 1, 2, 2, 2, 1, 2);
    /* a ninth dim is refused */
    ck_assert_ptr_null(nb_unsqueeze(x, 0));
    ck_assert_error(NB_ERR_SHAPE, "nb_unsqueeze", "(1, 2, 1, 2, 1, 2, 1, 2)", "8 dims");
    ck_assert_ptr_null(nb_stack(2, (nb_tensor *[]){x, x}, 0));
    ck_assert_error(NB_ERR_SHAPE, "nb_stack", "(1, 2, 1, 2, 1, 2, 1, 2)", "8 dims");
    ck_assert_ptr_null(nb_reshape(x, 9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 2, 8}));
    ck_assert_error(NB_ERR_SHAPE, "nb_reshape", "9 dims", "(1, 2, 1, 2, 1, 2, 1, 2)");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Gradients. Each function squares its op's result, so that the second derivative is nonzero and
 * nb_gradgradcheck runs the op's backward through its own backward. Inputs are made non-contiguous by the
 * functions themselves where the name says so.
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *sq(nb_tensor *y) { return nb_mul(y, y); }

static nb_tensor *f_transpose(nb_tensor *const *x, void *u) { (void)u; return sq(nb_transpose(x[0], 0, -1)); }
static nb_tensor *f_transpose_sliced(nb_tensor *const *x, void *u)
{
    (void)u;
    return sq(nb_transpose(nb_slice(x[0], 1, 0, 4, 2), 0, 1));
}
static nb_tensor *f_permute(nb_tensor *const *x, void *u) { (void)u; return sq(nb_permute(x[0], NB_DIMS(2, 0, 1))); }
static nb_tensor *f_permute_transposed(nb_tensor *const *x, void *u)
{
    (void)u;
    return sq(nb_permute(nb_transpose(x[0], 0, 2), NB_DIMS(1, 2, 0)));
}
static nb_tensor *f_reshape(nb_tensor *const *x, void *u) { (void)u; return sq(nb_reshape(x[0], NB_SHAPE(3, -1))); }
static nb_tensor *f_reshape_copy(nb_tensor *const *x, void *u)
{
    (void)u;
    return sq(nb_reshape(nb_transpose(x[0], 0, 1), NB_SHAPE(-1)));
}
static nb_tensor *f_view(nb_tensor *const *x, void *u)
{
    (void)u; /* (2, 3, 2) transposed to (3, 2, 2), viewed with its last dim split */
    return sq(nb_view(nb_transpose(x[0], 0, 1), NB_SHAPE(3, 2, 2, 1)));
}
static nb_tensor *f_flatten(nb_tensor *const *x, void *u) { (void)u; return sq(nb_flatten(x[0], 0, 1)); }
static nb_tensor *f_flatten_transposed(nb_tensor *const *x, void *u)
{
    (void)u;
    return sq(nb_flatten(nb_transpose(x[0], 0, 2), 1, 2));
}
static nb_tensor *f_squeeze(nb_tensor *const *x, void *u) { (void)u; return sq(nb_squeeze(x[0], 1)); }
static nb_tensor *f_unsqueeze(nb_tensor *const *x, void *u)
{
    (void)u;
    return sq(nb_unsqueeze(nb_transpose(x[0], 0, 1), -2));
}
static nb_tensor *f_narrow(nb_tensor *const *x, void *u) { (void)u; return sq(nb_narrow(x[0], 1, 1, 2)); }
static nb_tensor *f_narrow_transposed(nb_tensor *const *x, void *u)
{
    (void)u;
    return sq(nb_narrow(nb_transpose(x[0], 0, 1), 0, -3, 2));
}
static nb_tensor *f_slice(nb_tensor *const *x, void *u) { (void)u; return sq(nb_slice(x[0], 0, 1, 100, 2)); }
static nb_tensor *f_slice_of_slice(nb_tensor *const *x, void *u)
{
    (void)u;
    return sq(nb_slice(nb_transpose(nb_slice(x[0], 0, -4, INT64_MAX, 3), 0, 1), 1, 0, 2, 1));
}
static nb_tensor *f_slice_huge_step(nb_tensor *const *x, void *u)
{
    (void)u;
    return sq(nb_slice(x[0], 1, -2, INT64_MAX, INT64_MAX));
}
static nb_tensor *f_cat3(nb_tensor *const *x, void *u) { (void)u; return sq(nb_cat(3, x, 0)); }
static nb_tensor *f_cat_transposed(nb_tensor *const *x, void *u)
{
    (void)u; /* x[0] (2, 3) transposed to (3, 2), next to x[1] (3, 1), a constant, and x[1] again */
    nb_tensor *c = nb_full(NB_SHAPE(3, 2), 0.5, NB_F64);
    return sq(nb_cat(4, (nb_tensor *[]){nb_transpose(x[0], 0, 1), x[1], c, x[1]}, -1));
}
static nb_tensor *f_cat_empty(nb_tensor *const *x, void *u)
{
    (void)u; /* x[1] is (0, 2) and x[2] a legacy (0) */
    return sq(nb_cat(3, (nb_tensor *[]){x[0], x[1], x[2]}, 0));
}
static nb_tensor *f_stack(nb_tensor *const *x, void *u) { (void)u; return sq(nb_stack(3, x, *(int *)u)); }
static nb_tensor *f_stack_transposed(nb_tensor *const *x, void *u)
{
    (void)u;
    return sq(nb_stack(2, (nb_tensor *[]){nb_transpose(x[0], 0, 1), x[1]}, 1));
}
static nb_tensor *f_eight_dims(nb_tensor *const *x, void *u)
{
    (void)u;
    nb_tensor *p = nb_permute(x[0], NB_DIMS(7, 6, 5, 4, 3, 2, 1, 0));
    return sq(nb_narrow(nb_reshape(p, NB_SHAPE(2, 2, 2, 2, 1, 1, 1, 1)), 2, 1, 1));
}

START_TEST(gradients_of_views)
{
    nb_scope_begin();
    nb_tensor *m23[1] = {nbt_leaf(NB_SHAPE(2, 3), 1)};
    nb_tensor *m34[1] = {nbt_leaf(NB_SHAPE(3, 4), 2)};
    nb_tensor *t232[1] = {nbt_leaf(NB_SHAPE(2, 3, 2), 3)};
    nb_tensor *t213[1] = {nbt_leaf(NB_SHAPE(2, 1, 3), 4)};
    nb_tensor *m53[1] = {nbt_leaf(NB_SHAPE(5, 3), 5)};
    ck_assert_gradcheck(f_transpose, NULL, 1, m23, true);
    ck_assert_gradcheck(f_transpose_sliced, NULL, 1, m34, true);
    ck_assert_gradcheck(f_permute, NULL, 1, t232, true);
    ck_assert_gradcheck(f_permute_transposed, NULL, 1, t232, true);
    ck_assert_gradcheck(f_reshape, NULL, 1, m23, true);
    ck_assert_gradcheck(f_reshape_copy, NULL, 1, m23, true);
    ck_assert_gradcheck(f_view, NULL, 1, t232, true);
    ck_assert_gradcheck(f_flatten, NULL, 1, t232, true);
    ck_assert_gradcheck(f_flatten_transposed, NULL, 1, t232, true);
    ck_assert_gradcheck(f_squeeze, NULL, 1, t213, true);
    ck_assert_gradcheck(f_unsqueeze, NULL, 1, m23, true);
    ck_assert_gradcheck(f_narrow, NULL, 1, m34, true);
    ck_assert_gradcheck(f_narrow_transposed, NULL, 1, m34, true);
    ck_assert_gradcheck(f_slice, NULL, 1, m53, true);
    ck_assert_gradcheck(f_slice_of_slice, NULL, 1, m53, true);
    ck_assert_gradcheck(f_slice_huge_step, NULL, 1, m53, true);
    nb_scope_end();
}
END_TEST

START_TEST(gradients_of_cat_and_stack)
{
    nb_scope_begin();
    nb_tensor *rows[3] = {nbt_leaf(NB_SHAPE(2, 2), 1), nbt_leaf(NB_SHAPE(1, 2), 2), nbt_leaf(NB_SHAPE(3, 2), 3)};
    ck_assert_gradcheck(f_cat3, NULL, 3, rows, true);
    nb_tensor *mixed[2] = {nbt_leaf(NB_SHAPE(2, 3), 4), nbt_leaf(NB_SHAPE(3, 1), 5)};
    ck_assert_gradcheck(f_cat_transposed, NULL, 2, mixed, true);
    nb_tensor *empty[3] = {nbt_leaf(NB_SHAPE(2, 2), 6), nbt_leaf(NB_SHAPE(0, 2), 7), nbt_leaf(NB_SHAPE(0), 8)};
    ck_assert_gradcheck(f_cat_empty, NULL, 3, empty, true);
    nb_tensor *same[3] = {nbt_leaf(NB_SHAPE(2, 2), 9), nbt_leaf(NB_SHAPE(2, 2), 10), nbt_leaf(NB_SHAPE(2, 2), 11)};
    for (int dim = -3; dim <= 2; dim++) ck_assert_gradcheck(f_stack, &dim, 3, same, true);
    nb_tensor *two[2] = {nbt_leaf(NB_SHAPE(3, 2), 12), nbt_leaf(NB_SHAPE(2, 3), 13)};
    ck_assert_gradcheck(f_stack_transposed, NULL, 2, two, true);
    nb_scope_end();
}
END_TEST

START_TEST(gradients_in_eight_dims)
{
    nb_scope_begin();
    nb_tensor *x[1] = {nbt_leaf(NB_SHAPE(1, 2, 1, 2, 1, 2, 1, 2), 1)};
    ck_assert_gradcheck(f_eight_dims, NULL, 1, x, true);
    nb_scope_end();
}
END_TEST

/* The adjoint of a slice puts the gradient back in place among zeros, for narrow, strided slices, and cat. */
START_TEST(backward_values)
{
    nb_scope_begin();
    nb_tensor *x = iota(NB_SHAPE(3, 4));
    x = nb_detach(x);
    ck_assert_ok(nb_set_requires_grad(x, true));
    nb_tensor *n = nb_narrow(x, 1, 1, 2);
    ck_assert_ok(nb_backward_ex(n, T_F64(NB_SHAPE(3, 2), 1, 2, 3, 4, 5, 6), NB_BACKWARD_DEFAULT));
    ck_assert_values(nb_grad(x), 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0);
    ck_assert_ok(nb_zero_grad(x));
    nb_tensor *s = nb_slice(x, 1, 1, INT64_MAX, 2);
    ck_assert_ok(nb_backward_ex(s, nb_ones(NB_SHAPE(3, 2), NB_F64), NB_BACKWARD_DEFAULT));
    ck_assert_values(nb_grad(x), 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
    ck_assert_ok(nb_zero_grad(x));
    nb_tensor *e = nb_narrow(x, 0, 3, 0); /* length 0: a zero gradient of x's shape */
    ck_assert_ok(nb_backward_ex(e, nb_zeros(NB_SHAPE(0, 4), NB_F64), NB_BACKWARD_DEFAULT));
    ck_assert_values(nb_grad(x), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    ck_assert_ok(nb_zero_grad(x));
    /* cat: each piece gets its slice, converted back to its own dtype */
    nb_tensor *f = T_F32(NB_SHAPE(1, 4), 1, 1, 1, 1);
    ck_assert_ok(nb_set_requires_grad(f, true));
    nb_tensor *c = nb_cat(3, (nb_tensor *[]){x, f, x}, 0);
    ck_assert_int_eq(nb_dtype_of(c), NB_F64);
    nb_tensor *seed = nb_reshape(nb_arange(0, 28, 1, NB_F64), NB_SHAPE(7, 4));
    ck_assert_ok(nb_backward_ex(c, seed, NB_BACKWARD_DEFAULT));
    ck_assert_int_eq(nb_dtype_of(nb_grad(f)), NB_F32);
    ck_assert_values(nb_grad(f), 0, 12, 13, 14, 15);
    ck_assert_values(nb_grad(x), 0, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38);
    /* under NB_CREATE_GRAPH the gradient of a slice is itself differentiable */
    nb_tensor *gx = NULL;
    nb_tensor *y = sq(nb_slice(x, 0, 0, 3, 2));
    ck_assert_ok(nb_grad_of(y, nb_ones(NB_SHAPE(2, 4), NB_F64), 1, (nb_tensor *[]){x}, &gx, NB_CREATE_GRAPH));
    ck_assert_ptr_nonnull(nb_grad_fn_name(gx));
    ck_assert_values(gx, 0, 0, 2, 4, 6, 0, 0, 0, 0, 16, 18, 20, 22);
    nb_scope_end();
}
END_TEST

/* A view shares its base's storage version: writing through the base after a view was used is caught. */
START_TEST(writes_through_a_base_invalidate_its_views)
{
    nb_scope_begin();
    nb_tensor *w = nbt_leaf(NB_SHAPE(2), 1);
    nb_tensor *base = nb_ones(NB_SHAPE(2, 2), NB_F64);
    nb_tensor *y = nb_mul(w, nb_narrow(base, 0, 1, 1)); /* mul saves the view for its backward */
    ck_assert_ok(nb_set(base, (const int64_t[]){0, 0}, 5));
    ck_assert_int_eq(nb_backward_ex(y, nb_ones(NB_SHAPE(1, 2), NB_F64), NB_BACKWARD_DEFAULT), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "modified in place");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------------------------- */
START_TEST(reshape_errors)
{
    nb_scope_begin();
    nb_tensor *x = nb_zeros(NB_SHAPE(2, 3), NB_F32);
    ck_assert_ptr_null(nb_reshape(x, NB_SHAPE(4, 2)));
    ck_assert_error(NB_ERR_SHAPE, "nb_reshape", "(2, 3)", "(4, 2)", "6 elements");
    ck_assert_ptr_null(nb_reshape(x, NB_SHAPE(4, -1)));
    ck_assert_error(NB_ERR_SHAPE, "nb_reshape", "(2, 3)", "(4, -1)", "no size fits");
    ck_assert_ptr_null(nb_reshape(x, NB_SHAPE(-1, -1)));
    ck_assert_error(NB_ERR_SHAPE, "nb_reshape", "only one", "(-1, -1)", "(2, 3)");
    ck_assert_ptr_null(nb_reshape(x, NB_SHAPE(-2, -3)));
    ck_assert_error(NB_ERR_SHAPE, "nb_reshape", "invalid size -2", "(-2, -3)", "(2, 3)");
    ck_assert_ptr_null(nb_reshape(x, NB_SHAPE(INT64_MAX, 4, 0, -1)));
    ck_assert_error(NB_ERR_SHAPE, "nb_reshape", "(2, 3)");
    ck_assert_ptr_null(nb_reshape(x, NB_SHAPE(INT64_MAX, INT64_MAX, 2)));
    ck_assert_error(NB_ERR_SHAPE, "nb_reshape", "(2, 3)");
    ck_assert_ptr_null(nb_reshape(x, -1, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_reshape", "-1 dims", "(2, 3)");
    ck_assert_ptr_null(nb_reshape(x, 2, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_reshape", "shape is NULL");
    ck_assert_ptr_null(nb_view(x, NB_SHAPE(5)));
    ck_assert_error(NB_ERR_SHAPE, "nb_view", "(2, 3)", "(5)");
    ck_assert_ptr_null(nb_view(nb_transpose(x, 0, 1), NB_SHAPE(2, 3)));
    ck_assert_error(NB_ERR_SHAPE, "nb_view", "shape (3, 2) with strides (1, 3) cannot be viewed as (2, 3)");
    ck_assert_ptr_null(nb_flatten(x, 1, 0));
    ck_assert_error(NB_ERR_ARG, "nb_flatten", "start_dim 1 comes after end_dim 0", "(2, 3)");
    ck_assert_ptr_null(nb_flatten(x, 0, 2));
    ck_assert_error(NB_ERR_ARG, "nb_flatten", "dim 2 out of range for shape (2, 3) (expected -2 to 1)");
    ck_assert_ptr_null(nb_flatten(nb_scalar(1, NB_F32), 0, 1));
    ck_assert_error(NB_ERR_ARG, "nb_flatten", "dim 1 out of range for shape ()");
    nb_scope_end();
}
END_TEST

START_TEST(view_op_errors)
{
    nb_scope_begin();
    nb_tensor *x = nb_zeros(NB_SHAPE(2, 3), NB_F32);
    ck_assert_ptr_null(nb_transpose(x, 0, 2));
    ck_assert_error(NB_ERR_ARG, "nb_transpose", "dim 2 out of range for shape (2, 3) (expected -2 to 1)");
    ck_assert_ptr_null(nb_transpose(x, -3, 0));
    ck_assert_error(NB_ERR_ARG, "nb_transpose", "dim -3", "(2, 3)");
    ck_assert_ptr_null(nb_transpose(nb_scalar(1, NB_F32), 0, 1));
    ck_assert_error(NB_ERR_ARG, "nb_transpose", "dim 1", "()");

    ck_assert_ptr_null(nb_permute(x, NB_DIMS(0)));
    ck_assert_error(NB_ERR_ARG, "nb_permute", "1 dims given", "(2, 3)", "has 2");
    ck_assert_ptr_null(nb_permute(x, NB_DIMS(1, -1)));
    ck_assert_error(NB_ERR_ARG, "nb_permute", "dim -1 appears more than once", "(2, 3)");
    ck_assert_ptr_null(nb_permute(x, NB_DIMS(0, 2)));
    ck_assert_error(NB_ERR_ARG, "nb_permute", "dim 2 out of range", "(2, 3)");
    ck_assert_ptr_null(nb_permute(x, 2, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_permute", "dims is NULL");

    ck_assert_ptr_null(nb_squeeze(x, 0));
    ck_assert_error(NB_ERR_SHAPE, "nb_squeeze", "dim 0 of shape (2, 3) has size 2, not 1");
    ck_assert_ptr_null(nb_squeeze(x, -1));
    ck_assert_error(NB_ERR_SHAPE, "nb_squeeze", "dim -1 of shape (2, 3) has size 3");
    ck_assert_ptr_null(nb_squeeze(x, 2));
    ck_assert_error(NB_ERR_ARG, "nb_squeeze", "dim 2 out of range", "(2, 3)");
    ck_assert_ptr_null(nb_unsqueeze(x, 3));
    ck_assert_error(NB_ERR_ARG, "nb_unsqueeze", "dim 3 out of range for shape (2, 3) (expected -3 to 2)");
    ck_assert_ptr_null(nb_unsqueeze(x, -4));
    ck_assert_error(NB_ERR_ARG, "nb_unsqueeze", "dim -4", "(2, 3)");

    ck_assert_ptr_null(nb_narrow(x, 1, 4, 0));
    ck_assert_error(NB_ERR_INDEX, "nb_narrow", "start 4 out of range for dim 1 of shape (2, 3) (expected -3 to 3)");
    ck_assert_ptr_null(nb_narrow(x, 1, -4, 1));
    ck_assert_error(NB_ERR_INDEX, "nb_narrow", "start -4", "(2, 3)");
    ck_assert_ptr_null(nb_narrow(x, -1, 1, 3));
    ck_assert_error(NB_ERR_INDEX, "nb_narrow", "start 1 + length 3 exceeds size 3 of dim -1 of shape (2, 3)");
    ck_assert_ptr_null(nb_narrow(x, 0, 0, -1));
    ck_assert_error(NB_ERR_VALUE, "nb_narrow", "length -1 is negative", "(2, 3)");
    ck_assert_ptr_null(nb_narrow(x, 2, 0, 1));
    ck_assert_error(NB_ERR_ARG, "nb_narrow", "dim 2 out of range", "(2, 3)");
    ck_assert_ptr_null(nb_narrow(nb_scalar(1, NB_F32), 0, 0, 1));
    ck_assert_error(NB_ERR_ARG, "nb_narrow", "0-d tensor");
    ck_assert_ptr_null(nb_narrow(x, 0, INT64_MAX, INT64_MAX));
    ck_assert_error(NB_ERR_INDEX, "nb_narrow", "(2, 3)");
    ck_assert_ptr_null(nb_narrow(x, 0, 1, INT64_MAX));
    ck_assert_error(NB_ERR_INDEX, "nb_narrow", "(2, 3)");

    ck_assert_ptr_null(nb_slice(x, 1, 0, 3, 0));
    ck_assert_error(NB_ERR_ARG, "nb_slice", "step must be positive, got 0", "(2, 3)");
    ck_assert_ptr_null(nb_slice(x, 1, 3, 0, -1));
    ck_assert_error(NB_ERR_ARG, "nb_slice", "got -1");
    ck_assert_ptr_null(nb_slice(x, -3, 0, 1, 1));
    ck_assert_error(NB_ERR_ARG, "nb_slice", "dim -3 out of range", "(2, 3)");
    ck_assert_ptr_null(nb_slice(nb_scalar(1, NB_F32), 0, 0, 1, 1));
    ck_assert_error(NB_ERR_ARG, "nb_slice", "0-d tensor");
    nb_scope_end();
}
END_TEST

START_TEST(cat_and_stack_errors)
{
    nb_scope_begin();
    nb_tensor *a = nb_zeros(NB_SHAPE(2, 3), NB_F32), *b = nb_zeros(NB_SHAPE(2, 4), NB_F32);
    nb_tensor *v = nb_zeros(NB_SHAPE(3), NB_F32);
    ck_assert_ptr_null(nb_cat(2, (nb_tensor *[]){a, b}, 0));
    ck_assert_error(NB_ERR_SHAPE, "nb_cat", "except in dim 0", "tensor 1 has shape (2, 4)", "tensor 0 has (2, 3)");
    ck_assert_ptr_nonnull(nb_cat(2, (nb_tensor *[]){a, b}, 1));
    ck_assert_ptr_null(nb_cat(3, (nb_tensor *[]){a, a, v}, 0));
    ck_assert_error(NB_ERR_SHAPE, "nb_cat", "tensor 2 has shape (3)", "tensor 0 has shape (2, 3)", "dims differ");
    ck_assert_ptr_null(nb_cat(2, (nb_tensor *[]){a, a}, 2));
    ck_assert_error(NB_ERR_ARG, "nb_cat", "dim 2 out of range for shape (2, 3)");
    ck_assert_ptr_null(nb_cat(2, (nb_tensor *[]){nb_scalar(1, NB_F32), nb_scalar(2, NB_F32)}, 0));
    ck_assert_error(NB_ERR_SHAPE, "nb_cat", "0-d", "nb_stack");
    ck_assert_ptr_null(nb_cat(0, (nb_tensor *[]){a}, 0));
    ck_assert_error(NB_ERR_ARG, "nb_cat", "at least one tensor, got 0");
    ck_assert_ptr_null(nb_cat(2, NULL, 0));
    ck_assert_error(NB_ERR_NULL, "nb_cat", "tensors is NULL");
    nb_clear_error();
    ck_assert_ptr_null(nb_cat(2, (nb_tensor *[]){a, NULL}, 0));
    ck_assert_error(NB_ERR_NULL, "nb_cat", "tensors[1] is NULL");
    /* a failed input keeps the first message */
    ck_assert_ptr_null(nb_cat(2, (nb_tensor *[]){a, nb_transpose(a, 0, 5)}, 0));
    ck_assert_error(NB_ERR_ARG, "nb_transpose", "dim 5");

    ck_assert_ptr_null(nb_stack(2, (nb_tensor *[]){a, b}, 0));
    ck_assert_error(NB_ERR_SHAPE, "nb_stack", "same shape", "tensor 1 has shape (2, 4)", "tensor 0 has (2, 3)");
    ck_assert_ptr_null(nb_stack(2, (nb_tensor *[]){a, v}, 0));
    ck_assert_error(NB_ERR_SHAPE, "nb_stack", "(3)", "(2, 3)");
    ck_assert_ptr_null(nb_stack(2, (nb_tensor *[]){a, a}, 3));
    ck_assert_error(NB_ERR_ARG, "nb_stack", "dim 3 out of range for shape (2, 3) (expected -3 to 2)");
    ck_assert_ptr_null(nb_stack(2, (nb_tensor *[]){a, a}, -4));
    ck_assert_error(NB_ERR_ARG, "nb_stack", "dim -4");
    ck_assert_ptr_null(nb_stack(-1, (nb_tensor *[]){a}, 0));
    ck_assert_error(NB_ERR_ARG, "nb_stack", "at least one tensor, got -1");
    ck_assert_ptr_null(nb_stack(1, NULL, 0));
    ck_assert_error(NB_ERR_NULL, "nb_stack", "tensors is NULL");
    nb_clear_error();
    ck_assert_ptr_null(nb_stack(2, (nb_tensor *[]){NULL, a}, 0));
    ck_assert_error(NB_ERR_NULL, "nb_stack", "tensors[0] is NULL");
    nb_scope_end();
}
END_TEST

/* A NULL input names the op; a freed one is reported as freed. */
START_TEST(null_and_freed_inputs)
{
    nb_tensor *freed = nb_zeros(NB_SHAPE(2, 2), NB_F32);
    nb_free(freed);
    nb_clear_error();
    ck_assert_ptr_null(nb_reshape(NULL, NB_SHAPE(4)));
    ck_assert_error(NB_ERR_NULL, "nb_reshape", "tensor is NULL");
    ck_assert_ptr_null(nb_reshape(freed, NB_SHAPE(4)));
    ck_assert_error(NB_ERR_FREED, "nb_reshape", "freed");
#define CHECK_NULL_AND_FREED(name, ...)                                                               \
    do {                                                                                              \
        nb_clear_error();                                                                             \
        ck_assert_ptr_null(name(NULL, __VA_ARGS__));                                                  \
        ck_assert_error(NB_ERR_NULL, #name ": tensor is NULL");                                       \
        ck_assert_ptr_null(name(freed, __VA_ARGS__));                                                 \
        ck_assert_error(NB_ERR_FREED, #name ": tensor was freed");                                    \
    } while (0)
    CHECK_NULL_AND_FREED(nb_view, NB_SHAPE(4));
    CHECK_NULL_AND_FREED(nb_flatten, 0, 1);
    CHECK_NULL_AND_FREED(nb_transpose, 0, 1);
    CHECK_NULL_AND_FREED(nb_permute, NB_DIMS(1, 0));
    CHECK_NULL_AND_FREED(nb_squeeze, 0);
    CHECK_NULL_AND_FREED(nb_unsqueeze, 0);
    CHECK_NULL_AND_FREED(nb_narrow, 0, 0, 1);
    CHECK_NULL_AND_FREED(nb_slice, 0, 0, 1, 1);
#undef CHECK_NULL_AND_FREED
    ck_assert_ptr_null(nb_cat(1, (nb_tensor *[]){freed}, 0));
    ck_assert_error(NB_ERR_FREED, "nb_cat", "tensors[0] was freed");
    ck_assert_ptr_null(nb_stack(1, (nb_tensor *[]){freed}, 0));
    ck_assert_error(NB_ERR_FREED, "nb_stack", "tensors[0] was freed");
}
END_TEST

/* Without a scope the caller owns every result: an op must leave no temporary behind (forward temporaries
 * held by a graph go away with the result that holds them). */
START_TEST(no_leaked_temporaries)
{
    int64_t before = nb_memory_stats_get().live_tensors;
    for (int grad = 0; grad < 2; grad++) {
        nb_tensor *a = nbt_leaf(NB_SHAPE(2, 3), 1), *b = nbt_leaf(NB_SHAPE(2, 3), 2);
        ck_assert_ok(nb_set_requires_grad(a, grad));
        nb_tensor *t = nb_transpose(a, 0, 1), *z = nb_zeros(NB_SHAPE(3, 2), NB_F64);
        nb_tensor *results[] = {
            nb_stack(2, (nb_tensor *[]){a, b}, 1),      nb_cat(2, (nb_tensor *[]){a, b}, 0),
            nb_reshape(t, NB_SHAPE(6)),                  nb_narrow(b, 1, 1, 1),
            nb_slice(t, 0, 0, 3, 2),                     nb_flatten(t, 0, 1),
            nb_stack(3, (nb_tensor *[]){t, z, t}, -1),   nb_unsqueeze(a, 0),
        };
        ck_assert_ptr_null(nb_stack(2, (nb_tensor *[]){a, z}, 0));
        ck_assert_ptr_null(nb_cat(2, (nb_tensor *[]){a, z}, 0));
        ck_assert_ptr_null(nb_view(t, NB_SHAPE(6)));
        for (size_t i = 0; i < sizeof results / sizeof *results; i++) {
            ck_assert_tensor(results[i]);
            nb_free(results[i]);
        }
        nb_free(a);
        nb_free(b);
        nb_free(t);
        nb_free(z);
        ck_assert_int_eq(nb_memory_stats_get().live_tensors, before);
        nb_clear_error();
    }
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("shape");
    TCase *tc = tcase_create("shape");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, transpose_is_a_shared_view);
    tcase_add_test(tc, permute_values_and_strides);
    tcase_add_test(tc, reshape_views_when_it_can_and_copies_otherwise);
    tcase_add_test(tc, view_of_non_contiguous_layouts);
    tcase_add_test(tc, flatten_values);
    tcase_add_test(tc, squeeze_and_unsqueeze);
    tcase_add_test(tc, narrow_values_and_sharing);
    tcase_add_test(tc, slice_follows_python_rules);
    tcase_add_test(tc, cat_values);
    tcase_add_test(tc, stack_values);
    tcase_add_test(tc, cat_and_stack_many_inputs);
    tcase_add_test(tc, zero_size_dims);
    tcase_add_test(tc, eight_dims);
    tcase_add_test(tc, gradients_of_views);
    tcase_add_test(tc, gradients_of_cat_and_stack);
    tcase_add_test(tc, gradients_in_eight_dims);
    tcase_add_test(tc, backward_values);
    tcase_add_test(tc, writes_through_a_base_invalidate_its_views);
    tcase_add_test(tc, reshape_errors);
    tcase_add_test(tc, view_op_errors);
    tcase_add_test(tc, cat_and_stack_errors);
    tcase_add_test(tc, null_and_freed_inputs);
    tcase_add_test(tc, no_leaked_temporaries);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
