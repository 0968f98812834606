/* Reductions: values over every choice of dims, keepdim, dtypes, empty and 0-d tensors, max/min with ties and
 * NaN, gradients (first and second order, contiguous or not), errors, and no leaked temporaries. */
#include "helpers.h"

/* x[i][j][k] = 12 i + 4 j + k, shape (2, 3, 4): every reduction of it has a closed form. */
static nb_tensor *arange_234(nb_dtype dt)
{
    nb_tensor *flat = nb_arange(0, 24, 1, dt);
    nb_tensor *x = nb_empty(NB_SHAPE(2, 3, 4), dt);
    for (int64_t i = 0; i < 24; i++) nb_set_flat(x, i, nb_get_flat(flat, i));
    return x;
}

START_TEST(sum_over_dims)
{
    nb_scope_begin();
    nb_tensor *x = arange_234(NB_F64);
    nb_tensor *all = nb_sum(x, 0, NULL, false);
    ck_assert_int_eq(nb_ndim(all), 0);
    ck_assert_values(all, 0, 276);
    ck_assert_shape(nb_sum(x, 0, NULL, true), 1, 1, 1);
    ck_assert_values(nb_sum(x, 0, NULL, true), 0, 276);

    nb_tensor *d0 = nb_sum(x, NB_DIMS(0), false);
    ck_assert_shape(d0, 3, 4);
    ck_assert_values(d0, 0, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34);
    nb_tensor *d1 = nb_sum(x, NB_DIMS(1), true);
    ck_assert_shape(d1, 2, 1, 4);
    ck_assert_values(d1, 0, 12, 15, 18, 21, 48, 51, 54, 57);
    nb_tensor *last = nb_sum(x, NB_DIMS(-1), false);
    ck_assert_shape(last, 2, 3);
    ck_assert_values(last, 0, 6, 22, 38, 54, 70, 86);
    nb_tensor *outer = nb_sum(x, NB_DIMS(0, 2), false);
    ck_assert_shape(outer, 3);
    ck_assert_values(outer, 0, 60, 92, 124);
    nb_tensor *outer_keep = nb_sum(x, NB_DIMS(-1, 0), true); /* order and sign of the dims do not matter */
    ck_assert_shape(outer_keep, 1, 3, 1);
    ck_assert_values(outer_keep, 0, 60, 92, 124);
    nb_tensor *every = nb_sum(x, NB_DIMS(2, 0, 1), false);
    ck_assert_int_eq(nb_ndim(every), 0);
    ck_assert_values(every, 0, 276);
    nb_scope_end();
}
END_TEST

START_TEST(sum_dtypes)
{
    nb_scope_begin();
    nb_tensor *i = T_I64(NB_SHAPE(2, 2), 1, 2, 3, 40);
    nb_tensor *si = nb_sum(i, NB_DIMS(1), false);
    ck_assert_int_eq(nb_dtype_of(si), NB_I64);
    ck_assert_values(si, 0, 3, 43);
    nb_tensor *mask = nb_gt_scalar(T_F64(NB_SHAPE(5), 1, 5, 3, 7, 0), 2);
    nb_tensor *count = nb_sum(mask, 0, NULL, false);
    ck_assert_int_eq(nb_dtype_of(count), NB_I64); /* bools are counted, as in PyTorch */
    ck_assert_values(count, 0, 3);
    /* f32 sums accumulate in double: 2^24 + 1 + 1 + 1 + 1 is exact, a float accumulator would give 2^24 */
    nb_tensor *f = T_F32(NB_SHAPE(5), 16777216.0f, 1, 1, 1, 1);
    nb_tensor *sf = nb_sum(f, 0, NULL, false);
    ck_assert_int_eq(nb_dtype_of(sf), NB_F32);
    ck_assert_values(sf, 0, 16777220.0);
    ck_assert_values(nb_mean(f, 0, NULL, false), 0, 3355444.0);
    nb_scope_end();
}
END_TEST

START_TEST(mean_over_dims)
{
    nb_scope_begin();
    nb_tensor *x = arange_234(NB_F32);
    ck_assert_values(nb_mean(x, 0, NULL, false), 1e-6, 11.5);
    ck_assert_int_eq(nb_dtype_of(nb_mean(x, 0, NULL, false)), NB_F32);
    nb_tensor *m1 = nb_mean(x, NB_DIMS(1), false);
    ck_assert_shape(m1, 2, 4);
    ck_assert_values(m1, 1e-6, 4, 5, 6, 7, 16, 17, 18, 19);
    nb_tensor *m02 = nb_mean(x, NB_DIMS(0, -1), true);
    ck_assert_shape(m02, 1, 3, 1);
    ck_assert_values(m02, 1e-6, 7.5, 11.5, 15.5);
    nb_scope_end();
}
END_TEST

START_TEST(var_and_std_known_numbers)
{
    nb_scope_begin();
    /* the textbook sample: mean 5, squared deviations summing to 32 */
    nb_tensor *s = T_F64(NB_SHAPE(8), 2, 4, 4, 4, 5, 5, 7, 9);
    ck_assert_values(nb_var(s, 0, NULL, false, false), 1e-12, 4);
    ck_assert_values(nb_std(s, 0, NULL, false, false), 1e-12, 2);
    ck_assert_values(nb_var(s, 0, NULL, true, false), 1e-12, 32.0 / 7);
    ck_assert_values(nb_std(s, 0, NULL, true, false), 1e-12, sqrt(32.0 / 7));

    nb_tensor *x = arange_234(NB_F64);
    ck_assert_values(nb_var(x, 0, NULL, true, false), 1e-12, 50);               /* 0..23: n(n+1)/12 */
    ck_assert_values(nb_var(x, 0, NULL, false, false), 1e-12, 575.0 / 12);      /* (n^2-1)/12 */
    ck_assert_values(nb_var(x, NB_DIMS(0), true, false), 1e-12, 72, 72, 72, 72, 72, 72, 72, 72, 72, 72, 72, 72);
    ck_assert_values(nb_std(x, NB_DIMS(0), false, false), 1e-12, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6);
    nb_tensor *v1 = nb_var(x, NB_DIMS(-2), false, true);
    ck_assert_shape(v1, 2, 1, 4);
    ck_assert_values(v1, 1e-12, 32.0 / 3, 32.0 / 3, 32.0 / 3, 32.0 / 3, 32.0 / 3, 32.0 / 3, 32.0 / 3, 32.0 / 3);
    nb_tensor *v2 = nb_var(x, NB_DIMS(2), true, false);
    ck_assert_shape(v2, 2, 3);
    ck_assert_values(v2, 1e-12, 5.0 / 3, 5.0 / 3, 5.0 / 3, 5.0 / 3, 5.0 / 3, 5.0 / 3);
    nb_tensor *s2 = nb_std(x, NB_DIMS(2), false, false);
    ck_assert_values(s2, 1e-12, sqrt(1.25), sqrt(1.25), sqrt(1.25), sqrt(1.25), sqrt(1.25), sqrt(1.25));
    /* over dims 0 and 2: offsets {0..3, 12..15}, squared deviations from 7.5 sum to 298 */
    nb_tensor *v02 = nb_var(x, NB_DIMS(0, 2), true, false);
    ck_assert_shape(v02, 3);
    ck_assert_values(v02, 1e-12, 298.0 / 7, 298.0 / 7, 298.0 / 7);
    ck_assert_values(nb_std(x, NB_DIMS(2, 0), false, true), 1e-12, sqrt(37.25), sqrt(37.25), sqrt(37.25));
    /* f32 input: two passes in double keep a large offset from ruining the result */
    nb_tensor *f = T_F32(NB_SHAPE(4), 1e6f + 1, 1e6f + 2, 1e6f + 3, 1e6f + 4);
    ck_assert_values(nb_var(f, 0, NULL, true, false), 1e-6, 5.0 / 3);
    /* one element: the unbiased variance divides by zero, as in PyTorch */
    ck_assert(isnan(nb_item(nb_var(nb_scalar(3, NB_F64), 0, NULL, true, false))));
    ck_assert_values(nb_var(nb_scalar(3, NB_F64), 0, NULL, false, false), 0, 0);
    nb_scope_end();
}
END_TEST

START_TEST(logsumexp_values)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(2, 3), 1, 2, 3, 1000, 1000, -INFINITY);
    nb_tensor *r = nb_logsumexp(x, NB_DIMS(1), false);
    ck_assert_shape(r, 2);
    ck_assert_values(r, 1e-9, 3.40760596444438, 1000 + log(2.0)); /* no overflow at 1000 */
    ck_assert_values(nb_logsumexp(x, NB_DIMS(0), true), 1e-9, 1000, 1000, 3);
    ck_assert_shape(nb_logsumexp(x, NB_DIMS(0), true), 1, 3);
    ck_assert_values(nb_logsumexp(x, 0, NULL, false), 1e-9, 1000 + log(2.0));
    /* large negative, and f32 */
    ck_assert_values(nb_logsumexp(T_F64(NB_SHAPE(2), -1000, -1000), 0, NULL, false), 1e-9, -1000 + log(2.0));
    nb_tensor *big = T_F32(NB_SHAPE(3), 1e4f, -1e4f, 0);
    ck_assert_values(nb_logsumexp(big, 0, NULL, false), 0, 1e4);
    ck_assert_int_eq(nb_dtype_of(nb_logsumexp(big, 0, NULL, false)), NB_F32);
    /* all -inf gives -inf (not NaN); a +inf element gives +inf */
    nb_tensor *inf = T_F64(NB_SHAPE(2, 2), -INFINITY, -INFINITY, INFINITY, 0);
    nb_tensor *ri = nb_logsumexp(inf, NB_DIMS(-1), false);
    ck_assert(isinf(nb_get_flat(ri, 0)) && nb_get_flat(ri, 0) < 0);
    ck_assert(isinf(nb_get_flat(ri, 1)) && nb_get_flat(ri, 1) > 0);
    nb_scope_end();
}
END_TEST

START_TEST(empty_and_scalar_tensors)
{
    nb_scope_begin();
    nb_tensor *e = nb_zeros(NB_SHAPE(0, 3), NB_F64);
    ck_assert_values(nb_sum(e, 0, NULL, false), 0, 0);
    nb_tensor *s0 = nb_sum(e, NB_DIMS(0), false);
    ck_assert_shape(s0, 3);
    ck_assert_values(s0, 0, 0, 0, 0);
    ck_assert_shape(nb_sum(e, NB_DIMS(1), false), 0);
    ck_assert(isnan(nb_item(nb_mean(e, 0, NULL, false))));
    nb_tensor *m0 = nb_mean(e, NB_DIMS(0), false);
    ck_assert_shape(m0, 3);
    for (int i = 0; i < 3; i++) ck_assert(isnan(nb_get_flat(m0, i)));
    ck_assert(isnan(nb_item(nb_var(e, 0, NULL, true, false))));
    nb_tensor *l0 = nb_logsumexp(e, NB_DIMS(0), false);
    ck_assert_shape(l0, 3);
    ck_assert(isinf(nb_get_flat(l0, 2)) && nb_get_flat(l0, 2) < 0);
    /* reducing a non-empty dim of an empty tensor is fine and empty */
    nb_tensor *idx = NULL;
    nb_tensor *mx = nb_max_dim(e, 1, false, &idx);
    ck_assert_shape(mx, 0);
    ck_assert_shape(idx, 0);
    ck_assert_shape(nb_argmin(e, 1, true), 0, 1);

    /* a 0-d tensor reduces over "dim 0" or -1 to itself */
    nb_tensor *s = nb_scalar(2.5, NB_F64);
    ck_assert_int_eq(nb_ndim(nb_sum(s, NB_DIMS(0), false)), 0);
    ck_assert_values(nb_sum(s, NB_DIMS(-1), true), 0, 2.5);
    ck_assert_values(nb_mean(s, 0, NULL, false), 0, 2.5);
    ck_assert_values(nb_max(s), 0, 2.5);
    nb_tensor *si = NULL;
    ck_assert_values(nb_min_dim(s, 0, false, &si), 0, 2.5);
    ck_assert_values(si, 0, 0);
    ck_assert_values(nb_argmax(s, -1, false), 0, 0);
    nb_scope_end();
}
END_TEST

START_TEST(max_min_values_and_ties)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(2, 3), 3, 7, 7, 1, 7, 0);
    ck_assert_int_eq(nb_ndim(nb_max(x)), 0);
    ck_assert_values(nb_max(x), 0, 7);
    ck_assert_values(nb_min(x), 0, 0);

    nb_tensor *idx = NULL;
    nb_tensor *m1 = nb_max_dim(x, 1, false, &idx);
    ck_assert_shape(m1, 2);
    ck_assert_values(m1, 0, 7, 7);
    ck_assert_int_eq(nb_dtype_of(idx), NB_I64);
    ck_assert_values(idx, 0, 1, 1); /* the first of the tied maxima */
    nb_tensor *m0 = nb_max_dim(x, -2, true, &idx);
    ck_assert_shape(m0, 1, 3);
    ck_assert_shape(idx, 1, 3);
    ck_assert_values(m0, 0, 3, 7, 7);
    ck_assert_values(idx, 0, 0, 0, 0);
    ck_assert_values(nb_min_dim(x, 0, false, &idx), 0, 1, 7, 0);
    ck_assert_values(idx, 0, 1, 0, 1);
    ck_assert_values(nb_min_dim(x, 1, false, NULL), 0, 3, 0);
    ck_assert_values(nb_argmax(x, 1, false), 0, 1, 1);
    ck_assert_values(nb_argmin(x, 1, false), 0, 0, 2);
    ck_assert_shape(nb_argmin(x, 0, true), 1, 3);
    ck_assert_values(nb_argmin(x, 0, true), 0, 1, 0, 1);
    ck_assert_int_eq(nb_dtype_of(nb_argmax(x, 0, false)), NB_I64);

    /* integer and bool tensors keep their dtype */
    nb_tensor *i = T_I64(NB_SHAPE(3), -5, 9, 2);
    ck_assert_int_eq(nb_dtype_of(nb_max(i)), NB_I64);
    ck_assert_values(nb_max(i), 0, 9);
    ck_assert_values(nb_min(i), 0, -5);
    nb_tensor *b = nb_gt_scalar(T_F64(NB_SHAPE(3), 0, 1, 2), 0.5);
    ck_assert_int_eq(nb_dtype_of(nb_max(b)), NB_BOOL);
    ck_assert_values(nb_argmax(b, 0, false), 0, 1);
    ck_assert_values(nb_min(b), 0, 0);

    /* along a dim of a 3-d tensor, with strides in the middle */
    nb_tensor *y = arange_234(NB_F64);
    nb_set_flat(y, 17, 100); /* [1][1][1] */
    nb_tensor *ym = nb_max_dim(y, 1, false, &idx);
    ck_assert_shape(ym, 2, 4);
    ck_assert_values(ym, 0, 8, 9, 10, 11, 20, 100, 22, 23);
    ck_assert_values(idx, 0, 2, 2, 2, 2, 2, 1, 2, 2);
    nb_scope_end();
}
END_TEST

START_TEST(nan_wins_max_and_min)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(4), 1, NAN, 3, NAN);
    ck_assert(isnan(nb_item(nb_max(x))));
    ck_assert(isnan(nb_item(nb_min(x))));
    ck_assert_values(nb_argmax(x, 0, false), 0, 1);
    ck_assert_values(nb_argmin(x, 0, false), 0, 1);
    nb_tensor *idx = NULL;
    ck_assert(isnan(nb_item(nb_max_dim(x, 0, false, &idx))));
    ck_assert_values(idx, 0, 1);
    nb_tensor *f = T_F32(NB_SHAPE(3), 5, 2, NAN);
    ck_assert(isnan(nb_item(nb_min(f))));
    ck_assert_values(nb_argmin(f, 0, false), 0, 2);
    nb_scope_end();
}
END_TEST

START_TEST(gradients_of_max_and_min)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(2, 3), 3, 7, 7, 1, 7, 0);
    nb_set_requires_grad(x, true);
    ck_assert_ok(nb_backward(nb_max(x)));
    ck_assert_values(nb_grad(x), 1e-15, 0, 1.0 / 3, 1.0 / 3, 0, 1.0 / 3, 0); /* shared by the three ties */
    nb_zero_grad(x);
    ck_assert_ok(nb_backward(nb_min(x)));
    ck_assert_values(nb_grad(x), 0, 0, 0, 0, 0, 0, 1);
    nb_zero_grad(x);
    ck_assert_ok(nb_backward(nb_sum(nb_max_dim(x, 1, false, NULL), 0, NULL, false)));
    ck_assert_values(nb_grad(x), 0, 0, 1, 0, 0, 1, 0); /* only the first index of a tie */
    nb_zero_grad(x);
    nb_tensor *w = T_F64(NB_SHAPE(1, 3), 1, 2, 3);
    ck_assert_ok(nb_backward(nb_sum(nb_mul(nb_max_dim(x, 0, true, NULL), w), 0, NULL, false)));
    ck_assert_values(nb_grad(x), 0, 1, 2, 3, 0, 0, 0);
    nb_zero_grad(x);
    ck_assert_ok(nb_backward(nb_sum(nb_min_dim(x, 0, false, NULL), 0, NULL, false)));
    ck_assert_values(nb_grad(x), 0, 0, 1, 0, 1, 0, 1);
    ck_assert_str_eq(nb_grad_fn_name(nb_min_dim(x, 0, false, NULL)), "min_dim");
    /* the index tensor stays readable after the values are gone, and the values' graph survives freeing it */
    nb_tensor *idx = NULL;
    nb_tensor *v = nb_max_dim(x, 1, false, &idx);
    ck_assert_ok(nb_free(idx));
    nb_zero_grad(x);
    ck_assert_ok(nb_backward(nb_sum(v, 0, NULL, false)));
    ck_assert_values(nb_grad(x), 0, 0, 1, 0, 0, 1, 0);
    nb_scope_end();
}
END_TEST

/* PyTorch 1.13 with x = [[1, 3, 3, 2], [nan, 1, nan, 0]]: max and min over everything are NaN and share the
 * gradient among the NaNs; along a dim the gradient goes to the index returned, the first NaN. */
START_TEST(gradients_of_max_and_min_with_nan)
{
    nb_scope_begin();
    for (int d = 0; d < 2; d++) {
        nb_tensor *x = nb_to_dtype(T_F64(NB_SHAPE(2, 4), 1, 3, 3, 2, NAN, 1, NAN, 0), d ? NB_F32 : NB_F64);
        nb_set_requires_grad(x, true);
        ck_assert_ok(nb_backward(nb_max(x)));
        ck_assert_values(nb_grad(x), 0, 0, 0, 0, 0, 0.5, 0, 0.5, 0);
        nb_zero_grad(x);
        ck_assert_ok(nb_backward(nb_min(x)));
        ck_assert_values(nb_grad(x), 0, 0, 0, 0, 0, 0.5, 0, 0.5, 0);
        nb_zero_grad(x);
        nb_tensor *idx = NULL;
        ck_assert_ok(nb_backward(nb_sum(nb_max_dim(x, 1, false, &idx), 0, NULL, false)));
        ck_assert_values(idx, 0, 1, 0);
        ck_assert_values(nb_grad(x), 0, 0, 1, 0, 0, 1, 0, 0, 0);
        nb_zero_grad(x);
        ck_assert_ok(nb_backward(nb_sum(nb_min_dim(x, 0, false, &idx), 0, NULL, false)));
        ck_assert_values(idx, 0, 1, 1, 1, 1);
        ck_assert_values(nb_grad(x), 0, 0, 0, 0, 0, 1, 1, 1, 1);
        /* without a NaN the ties still share: torch.max([[1,3,3,2],[1,1,0,0]]) */
        nb_tensor *y = nb_to_dtype(T_F64(NB_SHAPE(2, 4), 1, 3, 3, 2, 1, 1, 0, 0), d ? NB_F32 : NB_F64);
        nb_set_requires_grad(y, true);
        ck_assert_ok(nb_backward(nb_min(y)));
        ck_assert_values(nb_grad(y), 0, 0, 0, 0, 0, 0, 0, 0.5, 0.5);
    }
    nb_scope_end();
}
END_TEST

START_TEST(gradients_of_sum_mean_var)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(2, 2), 1, 2, 3, 5);
    nb_set_requires_grad(x, true);
    ck_assert_ok(nb_backward(nb_sum(nb_mean(x, NB_DIMS(0), false), 0, NULL, false)));
    ck_assert_values(nb_grad(x), 0, 0.5, 0.5, 0.5, 0.5);
    nb_zero_grad(x);
    /* the gradient of a sum is a stride-0 view: accumulating a second one must not write through it */
    ck_assert_ok(nb_backward(nb_sum(x, 0, NULL, false)));
    ck_assert_ok(nb_backward(nb_sum(x, 0, NULL, false)));
    ck_assert_ok(nb_backward(nb_sum(nb_sum(x, NB_DIMS(1), false), 0, NULL, false)));
    ck_assert_values(nb_grad(x), 0, 3, 3, 3, 3);
    nb_zero_grad(x);
    /* var over dim 1 (unbiased, N - 1 = 1): d/dx = 2 (x - mean) */
    ck_assert_ok(nb_backward(nb_sum(nb_var(x, NB_DIMS(1), true, false), 0, NULL, false)));
    ck_assert_values(nb_grad(x), 1e-12, -1, 1, -2, 2);
    nb_zero_grad(x);
    /* std of a constant row: the gradient is 0, not NaN (PyTorch masks it the same way) */
    nb_tensor *c = T_F64(NB_SHAPE(2, 3), 5, 5, 5, 1, 2, 3);
    nb_set_requires_grad(c, true);
    ck_assert_ok(nb_backward(nb_sum(nb_std(c, NB_DIMS(1), true, false), 0, NULL, false)));
    ck_assert_values(nb_grad(c), 1e-15, 0, 0, 0, -0.5, 0, 0.5);
    nb_zero_grad(c);
    ck_assert_ok(nb_backward(nb_std(nb_narrow(c, 0, 0, 1), 0, NULL, false, false)));
    ck_assert_values(nb_grad(c), 0, 0, 0, 0, 0, 0, 0);
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Gradient checks over many dims choices. One function evaluates the configured reduction.
 * ---------------------------------------------------------------------------------------------- */
typedef enum { R_SUM, R_MEAN, R_VAR, R_STD, R_LSE, R_MAX, R_MIN, R_MAX_DIM, R_MIN_DIM } rop;
typedef struct rcase {
    rop op;
    int ndims;
    int dims[3];
    bool keepdim, unbiased;
    bool square;    /* f = op(x)^2: the incoming gradient then depends on x, which exercises the backward's
                       own backward in the second-order check */
    bool broadcast; /* the input is the (2, 1, 4) leaf expanded to (2, 3, 4): a stride-0, non-contiguous view */
    bool transpose; /* the input is the leaf with dims 0 and 2 swapped (a non-contiguous view) */
} rcase;

static nb_tensor *f_reduce(nb_tensor *const *in, void *ud)
{
    const rcase *c = ud;
    nb_tensor *x = in[0];
    if (c->broadcast) x = nb_expand(x, NB_SHAPE(2, 3, 4));
    if (c->transpose) x = nb_transpose(x, 0, 2);
    const int *d = c->ndims ? c->dims : NULL;
    nb_tensor *y = NULL;
    switch (c->op) {
    case R_SUM: y = nb_sum(x, c->ndims, d, c->keepdim); break;
    case R_MEAN: y = nb_mean(x, c->ndims, d, c->keepdim); break;
    case R_VAR: y = nb_var(x, c->ndims, d, c->unbiased, c->keepdim); break;
    case R_STD: y = nb_std(x, c->ndims, d, c->unbiased, c->keepdim); break;
    case R_LSE: y = nb_logsumexp(x, c->ndims, d, c->keepdim); break;
    case R_MAX: y = nb_max(x); break;
    case R_MIN: y = nb_min(x); break;
    case R_MAX_DIM: y = nb_max_dim(x, c->dims[0], c->keepdim, NULL); break;
    case R_MIN_DIM: y = nb_min_dim(x, c->dims[0], c->keepdim, NULL); break;
    }
    return c->square ? nb_mul(y, y) : y;
}

static const char *rop_name(rop op)
{
    static const char *names[] = {"sum", "mean", "var", "std", "logsumexp", "max", "min", "max_dim", "min_dim"};
    return names[op];
}

static void check_case(const rcase *c, nb_tensor *leaf)
{
    nb_tensor *in[1] = {leaf};
    nb_status st = nb_gradcheck(f_reduce, (void *)c, 1, in, NULL);
    ck_assert_msg(st == NB_OK, "gradcheck %s ndims %d (%d, %d) keepdim %d square %d: %s", rop_name(c->op), c->ndims,
                  c->dims[0], c->dims[1], c->keepdim, c->square, nb_last_error());
    st = nb_gradgradcheck(f_reduce, (void *)c, 1, in, NULL);
    ck_assert_msg(st == NB_OK, "gradgradcheck %s ndims %d (%d, %d) keepdim %d square %d: %s", rop_name(c->op),
                  c->ndims, c->dims[0], c->dims[1], c->keepdim, c->square, nb_last_error());
}

/* Every dims choice below, for the ops reducing a dims list, in both keepdim modes, plain and squared. */
static void check_dims_lists(rop op, nb_tensor *leaf, bool broadcast, bool transpose)
{
    static const struct { int ndims, dims[3]; } lists[] = {
        {0, {0}}, {1, {0}}, {1, {1}}, {1, {-1}}, {2, {0, 2}}, {2, {-1, -2}}, {3, {1, 0, 2}},
    };
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        /* std along the broadcast dim sees equal values: sqrt at 0, not differentiable */
        if (op == R_STD && broadcast && lists[i].ndims == 1 && lists[i].dims[0] == 1) continue;
        for (int keep = 0; keep < 2; keep++)
            for (int sq = 0; sq < 2; sq++) {
                rcase c = {op, lists[i].ndims, {lists[i].dims[0], lists[i].dims[1], lists[i].dims[2]}, keep, true,
                           sq, broadcast, transpose};
                check_case(&c, leaf);
                if (op == R_VAR || op == R_STD) {
                    c.unbiased = false;
                    check_case(&c, leaf);
                }
            }
    }
}

START_TEST(gradcheck_sum_mean)
{
    nb_scope_begin();
    nb_tensor *x = nbt_leaf(NB_SHAPE(2, 3, 4), 11);
    check_dims_lists(R_SUM, x, false, false);
    check_dims_lists(R_MEAN, x, false, false);
    nb_tensor *b = nbt_leaf(NB_SHAPE(2, 1, 4), 12);
    check_dims_lists(R_SUM, b, true, false);
    check_dims_lists(R_MEAN, b, true, false);
    nb_scope_end();
}
END_TEST

START_TEST(gradcheck_var_std)
{
    nb_scope_begin();
    nb_tensor *x = nbt_leaf(NB_SHAPE(2, 3, 4), 13);
    check_dims_lists(R_VAR, x, false, false);
    check_dims_lists(R_STD, x, false, false);
    nb_tensor *b = nbt_leaf(NB_SHAPE(2, 1, 4), 14);
    check_dims_lists(R_VAR, b, true, false);
    check_dims_lists(R_STD, b, true, false);
    nb_scope_end();
}
END_TEST

START_TEST(gradcheck_logsumexp)
{
    nb_scope_begin();
    nb_tensor *x = nbt_leaf(NB_SHAPE(2, 3, 4), 15);
    check_dims_lists(R_LSE, x, false, false);
    nb_tensor *b = nbt_leaf(NB_SHAPE(2, 1, 4), 16);
    check_dims_lists(R_LSE, b, true, false);
    nb_scope_end();
}
END_TEST

/* The shape family provides nb_transpose; until it lands this test reports its "not implemented" error. */
START_TEST(gradcheck_transposed_inputs)
{
    nb_scope_begin();
    nb_tensor *x = nbt_leaf(NB_SHAPE(4, 3, 2), 17); /* seen as (2, 3, 4) through the transpose */
    check_dims_lists(R_SUM, x, false, true);
    check_dims_lists(R_MEAN, x, false, true);
    check_dims_lists(R_VAR, x, false, true);
    check_dims_lists(R_STD, x, false, true);
    check_dims_lists(R_LSE, x, false, true);
    for (int d = -3; d < 3; d++)
        for (int keep = 0; keep < 2; keep++) {
            rcase c = {R_MAX_DIM, 1, {d}, keep, false, true, false, true};
            check_case(&c, x);
            c.op = R_MIN_DIM;
            check_case(&c, x);
        }
    rcase c = {R_MAX, 0, {0}, false, false, true, false, true};
    check_case(&c, x);
    nb_scope_end();
}
END_TEST

START_TEST(gradcheck_max_min)
{
    nb_scope_begin();
    nb_tensor *x = nbt_leaf(NB_SHAPE(2, 3, 4), 18); /* normal values: no ties */
    for (int sq = 0; sq < 2; sq++) {
        rcase c = {R_MAX, 0, {0}, false, false, sq, false, false};
        check_case(&c, x);
        c.op = R_MIN;
        check_case(&c, x);
        for (int d = -3; d < 3; d++)
            for (int keep = 0; keep < 2; keep++) {
                rcase cd = {R_MAX_DIM, 1, {d}, keep, false, sq, false, false};
                check_case(&cd, x);
                cd.op = R_MIN_DIM;
                check_case(&cd, x);
            }
    }
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------------------------- */
START_TEST(dim_errors)
{
    nb_scope_begin();
    nb_tensor *x = nb_zeros(NB_SHAPE(2, 3, 4), NB_F32);
    ck_assert_ptr_null(nb_sum(x, NB_DIMS(3), false));
    ck_assert_error(NB_ERR_ARG, "nb_sum", "dim 3", "(2, 3, 4)", "-3 to 2");
    ck_assert_ptr_null(nb_mean(x, NB_DIMS(0, -4), false));
    ck_assert_error(NB_ERR_ARG, "nb_mean", "dim -4", "(2, 3, 4)");
    ck_assert_ptr_null(nb_var(x, NB_DIMS(1, -2), true, false));
    ck_assert_error(NB_ERR_ARG, "nb_var", "dim -2 appears more than once", "(2, 3, 4)");
    ck_assert_ptr_null(nb_std(x, NB_DIMS(2, 2), true, true));
    ck_assert_error(NB_ERR_ARG, "nb_std", "dim 2 appears more than once");
    ck_assert_ptr_null(nb_logsumexp(x, -1, NULL, false));
    ck_assert_error(NB_ERR_ARG, "nb_logsumexp", "ndims", "-1");
    ck_assert_ptr_null(nb_sum(x, 2, NULL, false));
    ck_assert_error(NB_ERR_NULL, "nb_sum", "dims is NULL");
    ck_assert_ptr_null(nb_max_dim(x, 3, false, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_max_dim", "dim 3", "(2, 3, 4)");
    ck_assert_ptr_null(nb_min_dim(x, -4, false, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_min_dim", "dim -4", "(2, 3, 4)");
    ck_assert_ptr_null(nb_argmax(x, 5, false));
    ck_assert_error(NB_ERR_ARG, "nb_argmax", "dim 5");
    ck_assert_ptr_null(nb_argmin(nb_scalar(1, NB_F32), 1, false));
    ck_assert_error(NB_ERR_ARG, "nb_argmin", "dim 1", "()", "-1 to 0");
    ck_assert_ptr_null(nb_sum(nb_scalar(1, NB_F32), NB_DIMS(0, -1), false));
    ck_assert_error(NB_ERR_ARG, "nb_sum", "dim -1 appears more than once", "()");
    nb_scope_end();
}
END_TEST

START_TEST(dtype_empty_and_null_errors)
{
    nb_scope_begin();
    nb_tensor *i = T_I64(NB_SHAPE(2, 2), 1, 2, 3, 4);
    ck_assert_ptr_null(nb_mean(i, 0, NULL, false));
    ck_assert_error(NB_ERR_DTYPE, "nb_mean", "i64", "(2, 2)", "nb_to_dtype");
    ck_assert_ptr_null(nb_var(i, 0, NULL, true, false));
    ck_assert_error(NB_ERR_DTYPE, "nb_var", "i64");
    ck_assert_ptr_null(nb_std(nb_gt_scalar(i, 1), 0, NULL, true, false));
    ck_assert_error(NB_ERR_DTYPE, "nb_std", "bool");
    ck_assert_ptr_null(nb_logsumexp(i, NB_DIMS(1), false));
    ck_assert_error(NB_ERR_DTYPE, "nb_logsumexp", "i64");

    nb_tensor *e = nb_zeros(NB_SHAPE(0, 3), NB_F32);
    ck_assert_ptr_null(nb_max(e));
    ck_assert_error(NB_ERR_SHAPE, "nb_max", "(0, 3)", "empty");
    ck_assert_ptr_null(nb_min(e));
    ck_assert_error(NB_ERR_SHAPE, "nb_min", "(0, 3)");
    nb_tensor *idx = (nb_tensor *)&idx; /* must be reset to NULL on failure */
    ck_assert_ptr_null(nb_max_dim(e, 0, false, &idx));
    ck_assert_error(NB_ERR_SHAPE, "nb_max_dim", "dim 0", "(0, 3)", "size 0");
    ck_assert_ptr_null(idx);
    ck_assert_ptr_null(nb_argmin(e, -2, false));
    ck_assert_error(NB_ERR_SHAPE, "nb_argmin", "dim -2", "(0, 3)");

    nb_clear_error();
    ck_assert_ptr_null(nb_sum(NULL, 0, NULL, false));
    ck_assert_error(NB_ERR_NULL, "nb_sum");
    ck_assert_ptr_null(nb_max(NULL));
    ck_assert_error(NB_ERR_NULL, "nb_sum"); /* the first error of an expression survives */
    nb_clear_error();
    ck_assert_ptr_null(nb_argmax(NULL, 0, false));
    ck_assert_error(NB_ERR_NULL, "nb_argmax");
    nb_tensor *gone = nb_ones(NB_SHAPE(2), NB_F32);
    nb_free(gone);
    ck_assert_ptr_null(nb_mean(gone, 0, NULL, false));
    ck_assert_error(NB_ERR_FREED, "nb_mean");
    nb_scope_end();
}
END_TEST

/* Without a scope the caller owns what ops return: temporaries made inside a forward must all be gone. */
START_TEST(no_leaked_temporaries)
{
    nb_tensor *x = T_F32(NB_SHAPE(2, 3, 4), 1, 5, 2, 8, 3, 3, 0, 1, 9, 4, 2, 6, 1, 5, 2, 8, 3, 3, 0, 1, 9, 4, 2, 6);
    nb_tensor *b = nb_gt_scalar(x, 2);
    int64_t base = nb_memory_stats_get().live_tensors;
    for (int grad = 0; grad < 2; grad++) {
        nb_set_requires_grad(x, grad);
        nb_tensor *idx = NULL;
        nb_tensor *r[] = {
            nb_sum(x, NB_DIMS(1), false), nb_sum(b, NB_DIMS(0, 2), true), nb_mean(x, 0, NULL, false),
            nb_var(x, NB_DIMS(-1), true, false), nb_std(x, NB_DIMS(0, 1), false, false),
            nb_logsumexp(x, NB_DIMS(2), false), nb_max(x), nb_min(x), nb_max_dim(x, 1, false, NULL),
            nb_min_dim(x, 2, false, &idx), nb_argmax(x, 0, false), nb_argmin(x, -1, true),
        };
        for (size_t i = 0; i < sizeof r / sizeof *r; i++) {
            ck_assert_msg(r[i] != NULL, "result %zu: %s", i, nb_last_error());
            nb_free(r[i]);
        }
        nb_free(idx);
        ck_assert_int_eq(nb_memory_stats_get().live_tensors, base);
    }
    nb_free(b);
    nb_free(x);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("reduce");
    TCase *tc = tcase_create("reduce");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, sum_over_dims);
    tcase_add_test(tc, sum_dtypes);
    tcase_add_test(tc, mean_over_dims);
    tcase_add_test(tc, var_and_std_known_numbers);
    tcase_add_test(tc, logsumexp_values);
    tcase_add_test(tc, empty_and_scalar_tensors);
    tcase_add_test(tc, max_min_values_and_ties);
    tcase_add_test(tc, nan_wins_max_and_min);
    tcase_add_test(tc, gradients_of_max_and_min);
    tcase_add_test(tc, gradients_of_max_and_min_with_nan);
    tcase_add_test(tc, gradients_of_sum_mean_var);
    tcase_add_test(tc, gradcheck_sum_mean);
    tcase_add_test(tc, gradcheck_var_std);
    tcase_add_test(tc, gradcheck_logsumexp);
    tcase_add_test(tc, gradcheck_transposed_inputs);
    tcase_add_test(tc, gradcheck_max_min);
    tcase_add_test(tc, dim_errors);
    tcase_add_test(tc, dtype_empty_and_null_errors);
    tcase_add_test(tc, no_leaked_temporaries);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
