/* Tensor core: creation, inspection, element access, conversions, fills and copies, views, limits. */
#include "helpers.h"

/* ------------------------------------------------------------------------------------------------
 * Creation
 * ---------------------------------------------------------------------------------------------- */
START_TEST(zeros_ones_full_in_every_dtype)
{
    nb_scope_begin();
    for (int d = NB_F32; d <= NB_BOOL; d++) {
        nb_dtype dt = (nb_dtype)d;
        nb_tensor *z = nb_zeros(NB_SHAPE(2, 3), dt);
        ck_assert_shape(z, 2, 3);
        ck_assert_int_eq(nb_dtype_of(z), dt);
        ck_assert_values(z, 0, 0, 0, 0, 0, 0, 0);
        ck_assert_values(nb_ones(NB_SHAPE(2, 2), dt), 0, 1, 1, 1, 1);
        ck_assert_int_eq(nb_dtype_of(nb_ones(NB_SHAPE(1), dt)), dt);
    }
    ck_assert_values(nb_full(NB_SHAPE(3), 2.5, NB_F32), 0, 2.5, 2.5, 2.5);
    ck_assert_values(nb_full(NB_SHAPE(2), -1e300, NB_F64), 0, -1e300, -1e300);
    ck_assert_values(nb_full(NB_SHAPE(2), -2.7, NB_I64), 0, -2, -2); /* truncation toward zero */
    ck_assert_values(nb_full(NB_SHAPE(2), 0.3, NB_BOOL), 0, 1, 1);   /* nonzero is true */
    /* -0.0 is a value, not "zero the memory": its sign survives */
    nb_tensor *nz = nb_full(NB_SHAPE(2), -0.0, NB_F64);
    ck_assert(signbit(nb_get_flat(nz, 1)));
    nb_scope_end();
}
END_TEST

START_TEST(scalar)
{
    nb_scope_begin();
    nb_tensor *s = nb_scalar(3.25, NB_F64);
    ck_assert_int_eq(nb_ndim(s), 0);
    ck_assert_int_eq(nb_numel(s), 1);
    ck_assert_double_eq(nb_item(s), 3.25);
    ck_assert_double_eq(nb_get(s, NULL), 3.25); /* a 0-d tensor needs no index */
    ck_assert_ok(nb_set(s, NULL, -1));
    ck_assert_double_eq(nb_item(s), -1);
    ck_assert_double_eq(nb_item(nb_scalar(7.9, NB_I64)), 7);
    ck_assert_double_eq(nb_item(nb_scalar(-4, NB_BOOL)), 1);
    ck_assert(nb_is_contiguous(s));
    nb_scope_end();
}
END_TEST

START_TEST(arange)
{
    nb_scope_begin();
    nb_tensor *a = nb_arange(0, 5, 1, NB_I64);
    ck_assert_shape(a, 5);
    ck_assert_int_eq(nb_dtype_of(a), NB_I64);
    ck_assert_values(a, 0, 0, 1, 2, 3, 4);
    ck_assert_values(nb_arange(0, 10, 3, NB_I64), 0, 0, 3, 6, 9);
    /* i64 truncates start, end and step first, as torch.arange(..., dtype=torch.int64) */
    ck_assert_values(nb_arange(0.5, 3, 1, NB_I64), 0, 0, 1, 2);
    ck_assert_values(nb_arange(0, 3.7, 1, NB_I64), 0, 0, 1, 2);
    ck_assert_values(nb_arange(1.5, 4.5, 1.9, NB_I64), 0, 1, 2, 3);
    ck_assert_values(nb_arange(-0.5, -3.5, -1, NB_I64), 0, 0, -1, -2);
    ck_assert_ptr_null(nb_arange(0, 2.5, 0.5, NB_I64));
    ck_assert_error(NB_ERR_VALUE, "nb_arange", "step 0.5 truncates to 0");
    /* negative step: values > end */
    ck_assert_values(nb_arange(5, 0, -1.5, NB_F64), 0, 5, 3.5, 2, 0.5);
    ck_assert_values(nb_arange(2, -2, -1, NB_F32), 0, 2, 1, 0, -1);
    /* float steps: torch.arange(0, 1, 0.1) has 10 elements, the last 0.9 (1.0 is excluded) */
    nb_tensor *f = nb_arange(0, 1, 0.1, NB_F64);
    ck_assert_values(f, 1e-15, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9);
    ck_assert_values(nb_arange(-1, 1, 0.5, NB_F32), 0, -1, -0.5, 0, 0.5);
    ck_assert_values(nb_arange(0, 1, 0.3, NB_F64), 1e-15, 0, 0.3, 0.6, 0.9);
    /* empty ranges */
    ck_assert_shape(nb_arange(0, 0, 1, NB_F32), 0);
    ck_assert_shape(nb_arange(3, 1, 1, NB_F32), 0);
    ck_assert_shape(nb_arange(1, 3, -1, NB_F32), 0);
    /* errors */
    ck_assert_ptr_null(nb_arange(0, 1, 0, NB_F32));
    ck_assert_error(NB_ERR_VALUE, "nb_arange", "nonzero step");
    ck_assert_ptr_null(nb_arange(0, INFINITY, 1, NB_F32));
    ck_assert_error(NB_ERR_VALUE, "nb_arange", "finite");
    ck_assert_ptr_null(nb_arange(0, 1e300, 1, NB_F32));
    ck_assert_error(NB_ERR_VALUE, "nb_arange", "elements");
    ck_assert_ptr_null(nb_arange(0, 3, 1, (nb_dtype)7));
    ck_assert_error(NB_ERR_DTYPE, "nb_arange", "invalid dtype 7");
    nb_scope_end();
}
END_TEST

START_TEST(linspace)
{
    nb_scope_begin();
    ck_assert_values(nb_linspace(0, 1, 5, NB_F64), 0, 0, 0.25, 0.5, 0.75, 1);
    ck_assert_values(nb_linspace(3, -3, 4, NB_F32), 1e-6, 3, 1, -1, -3);
    /* the endpoints are exact even when the step is not representable */
    nb_tensor *l = nb_linspace(-1, 0.3, 11, NB_F64);
    ck_assert_shape(l, 11);
    ck_assert_double_eq(nb_get_flat(l, 0), -1);
    ck_assert_double_eq(nb_get_flat(l, 10), 0.3);
    for (int64_t i = 0; i < 11; i++) ck_assert_close(nb_get_flat(l, i), -1 + 0.13 * (double)i, 1e-15);
    nb_tensor *tenth = nb_linspace(0, 0.1, 7, NB_F64);
    ck_assert_double_eq(nb_get_flat(tenth, 6), 0.1);
    ck_assert_values(nb_linspace(0, 10, 6, NB_I64), 0, 0, 2, 4, 6, 8, 10);
    ck_assert_values(nb_linspace(2.5, 9, 1, NB_F64), 0, 2.5); /* one step: the start, like PyTorch */
    ck_assert_shape(nb_linspace(0, 1, 0, NB_F64), 0);
    ck_assert_ptr_null(nb_linspace(0, 1, -1, NB_F64));
    ck_assert_error(NB_ERR_VALUE, "nb_linspace", "steps must be >= 0", "-1");
    /* i64 bounds are truncated first and must fit, as in PyTorch */
    ck_assert_values(nb_linspace(0.7, 3.9, 4, NB_I64), 0, 0, 1, 2, 3);
    ck_assert_values(nb_linspace(-2.5, 2.5, 3, NB_I64), 0, -2, 0, 2);
    ck_assert_values(nb_linspace(-1, 1, 4, NB_I64), 0, -1, 0, 0, 1);
    ck_assert_values(nb_linspace(0, 1e19, 1, NB_I64), 0, 0); /* end is never stored */
    ck_assert_shape(nb_linspace(NAN, 1, 0, NB_I64), 0);
    ck_assert_ptr_null(nb_linspace(NAN, 1, 3, NB_I64));
    ck_assert_error(NB_ERR_VALUE, "nb_linspace", "nan cannot be stored in an i64 tensor");
    ck_assert_ptr_null(nb_linspace(0, 1e30, 3, NB_I64));
    ck_assert_error(NB_ERR_VALUE, "nb_linspace", "1e+30");
    ck_assert_ptr_null(nb_linspace(0, INFINITY, 3, NB_I64));
    ck_assert_error(NB_ERR_VALUE, "nb_linspace", "inf");
    /* infinite bounds: torch.linspace(0, inf, n) values, NaN where inf * 0 or inf - inf appears */
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        nb_tensor *a = nb_linspace(0, INFINITY, 3, dt), *b = nb_linspace(0, INFINITY, 4, dt);
        for (int64_t i = 0; i < 3; i++) ck_assert(isnan(nb_get_flat(a, i)));
        ck_assert(isnan(nb_get_flat(b, 0)) && isnan(nb_get_flat(b, 2)) && isnan(nb_get_flat(b, 3)));
        ck_assert_double_eq(nb_get_flat(b, 1), INFINITY);
        nb_tensor *c = nb_linspace(-INFINITY, 0, 3, dt);
        ck_assert(isnan(nb_get_flat(c, 0)) && isnan(nb_get_flat(c, 2)));
        ck_assert_double_eq(nb_get_flat(c, 1), -INFINITY);
    }
    /* f32 is computed in float, bit for bit what torch.linspace(0.1, 0.7, 7) and (-1.3, 2.9, 9) give */
    nb_tensor *f = nb_linspace(0.1, 0.7, 7, NB_F32);
    const float want_f[] = {0.10000000149011612f, 0.19999998807907104f, 0.29999998211860657f, 0.4000000059604645f,
                            0.5f, 0.6000000238418579f, 0.699999988079071f};
    for (int64_t i = 0; i < 7; i++) ck_assert_float_eq((float)nb_get_flat(f, i), want_f[i]);
    nb_tensor *g = nb_linspace(-1.3, 2.9, 9, NB_F32);
    const float want_g[] = {-1.2999999523162842f, -0.7749999761581421f, -0.25f, 0.2749999761581421f,
                            0.8000001907348633f, 1.3250001668930054f, 1.8500001430511475f, 2.375f, 2.9000000953674316f};
    for (int64_t i = 0; i < 9; i++) ck_assert_float_eq((float)nb_get_flat(g, i), want_g[i]);
    nb_scope_end();
}
END_TEST

START_TEST(eye)
{
    nb_scope_begin();
    nb_tensor *e = nb_eye(3, NB_F32);
    ck_assert_shape(e, 3, 3);
    ck_assert_values(e, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1);
    ck_assert_values(nb_eye(2, NB_BOOL), 0, 1, 0, 0, 1);
    ck_assert_int_eq(nb_dtype_of(nb_eye(2, NB_I64)), NB_I64);
    ck_assert_shape(nb_eye(0, NB_F64), 0, 0);
    ck_assert_ptr_null(nb_eye(-2, NB_F64));
    ck_assert_error(NB_ERR_VALUE, "nb_eye", "n must be >= 0", "-2"); /* a count, like nb_linspace's steps */
    /* a negative entry of a shape array is a shape error */
    ck_assert_ptr_null(nb_zeros(NB_SHAPE(2, -1), NB_F32));
    ck_assert_error(NB_ERR_SHAPE, "nb_zeros", "negative size", "(2, -1)");
    nb_scope_end();
}
END_TEST

START_TEST(from_array_every_dtype)
{
    nb_scope_begin();
    const float f[] = {1.5f, -0.1f, 3e38f, 0};
    nb_tensor *tf = nb_from_array(f, NB_SHAPE(2, 2), NB_F32);
    ck_assert_int_eq(nb_dtype_of(tf), NB_F32);
    ck_assert_values(tf, 0, 1.5, (double)-0.1f, (double)3e38f, 0);

    const double d[] = {0.1, -1e-300, 1e300};
    nb_tensor *td = nb_from_array(d, NB_SHAPE(3), NB_F64);
    ck_assert_values(td, 0, 0.1, -1e-300, 1e300);

    const int64_t i[] = {-5, 0, (int64_t)1 << 53, 7};
    nb_tensor *ti = nb_from_array(i, NB_SHAPE(4, 1), NB_I64);
    ck_assert_shape(ti, 4, 1);
    int64_t iback[4];
    ck_assert_ok(nb_to_array(ti, iback, 4, NB_I64));
    ck_assert_mem_eq(iback, i, sizeof i);
    /* i64 round trips exactly beyond 2^53 (no trip through double) */
    const int64_t big[] = {INT64_MAX, INT64_MIN, ((int64_t)1 << 53) + 1};
    int64_t bigback[3];
    ck_assert_ok(nb_to_array(nb_from_array(big, NB_SHAPE(3), NB_I64), bigback, 3, NB_I64));
    ck_assert_mem_eq(bigback, big, sizeof big);

    const uint8_t b[] = {1, 0, 0, 1, 1, 0};
    nb_tensor *tb = nb_from_array(b, NB_SHAPE(2, 3), NB_BOOL);
    ck_assert_values(tb, 0, 1, 0, 0, 1, 1, 0);

    /* the tensor owns a copy */
    double mutable[2] = {1, 2};
    nb_tensor *copy = nb_from_array(mutable, NB_SHAPE(2), NB_F64);
    mutable[0] = 99;
    ck_assert_values(copy, 0, 1, 2);

    ck_assert_ptr_null(nb_from_array(NULL, NB_SHAPE(2), NB_F64));
    ck_assert_error(NB_ERR_NULL, "nb_from_array", "data is NULL");
    /* zero elements: nothing is read */
    ck_assert_shape(nb_from_array(d, NB_SHAPE(0), NB_F64), 0);
    nb_scope_end();
}
END_TEST

START_TEST(like_constructors)
{
    nb_scope_begin();
    nb_tensor *src = nb_arange(0, 6, 1, NB_I64);
    nb_tensor *z = nb_zeros_like(src), *o = nb_ones_like(src), *f = nb_full_like(src, -3.9);
    ck_assert_values(z, 0, 0, 0, 0, 0, 0, 0);
    ck_assert_values(o, 0, 1, 1, 1, 1, 1, 1);
    ck_assert_values(f, 0, -3, -3, -3, -3, -3, -3);
    ck_assert_int_eq(nb_dtype_of(f), NB_I64);
    ck_assert(!nb_shares_storage(src, z));
    /* of a non-contiguous view: its shape, in fresh contiguous storage */
    nb_tensor *view = nb_transpose(nb_zeros(NB_SHAPE(2, 3), NB_F32), 0, 1);
    nb_tensor *like = nb_full_like(view, 0.5);
    ck_assert_shape(like, 3, 2);
    ck_assert(nb_is_contiguous(like));
    ck_assert_values(like, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5);
    nb_clear_error();
    ck_assert_ptr_null(nb_ones_like(NULL));
    ck_assert_error(NB_ERR_NULL, "nb_ones_like: tensor is NULL");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Inspection
 * ---------------------------------------------------------------------------------------------- */
START_TEST(inspection)
{
    nb_scope_begin();
    nb_tensor *t = nb_zeros(NB_SHAPE(2, 3, 4), NB_F64);
    ck_assert_int_eq(nb_ndim(t), 3);
    ck_assert_int_eq(nb_numel(t), 24);
    ck_assert_int_eq(nb_size(t, 0), 2);
    ck_assert_int_eq(nb_size(t, 2), 4);
    ck_assert_int_eq(nb_size(t, -1), 4);
    ck_assert_int_eq(nb_size(t, -3), 2);
    ck_assert_int_eq(nb_size(t, 3), -1);
    ck_assert_error(NB_ERR_ARG, "nb_size", "dim 3", "(2, 3, 4)");
    ck_assert_int_eq(nb_size(t, -4), -1);
    ck_assert_error(NB_ERR_ARG, "nb_size", "dim -4", "(2, 3, 4)");
    const int64_t *shape = nb_shape(t), *strides = nb_strides(t);
    ck_assert(shape[0] == 2 && shape[1] == 3 && shape[2] == 4);
    ck_assert(strides[0] == 12 && strides[1] == 4 && strides[2] == 1);
    ck_assert_int_eq(nb_dtype_of(t), NB_F64);
    ck_assert(nb_is_contiguous(t));

    nb_tensor *tt = nb_transpose(t, 0, 2);
    ck_assert_shape(tt, 4, 3, 2);
    ck_assert(!nb_is_contiguous(tt));
    ck_assert(nb_strides(tt)[0] == 1 && nb_strides(tt)[2] == 12);
    ck_assert(nb_shares_storage(t, tt));
    ck_assert(!nb_shares_storage(t, nb_zeros_like(t)));

    char buf[32];
    ck_assert_str_eq(nb_shape_str(t, buf, sizeof buf), "(2, 3, 4)");
    ck_assert_str_eq(nb_shape_str(nb_scalar(1, NB_F32), buf, sizeof buf), "()");
    ck_assert_str_eq(nb_shape_str(nb_zeros(NB_SHAPE(0), NB_F32), buf, sizeof buf), "(0)");
    ck_assert_str_eq(nb_shape_str(NULL, buf, sizeof buf), "(invalid)");
    char small[5];
    ck_assert_str_eq(nb_shape_str(t, small, sizeof small), "(2, ");

    /* invalid handles: documented sentinel values */
    nb_clear_error();
    ck_assert_int_eq(nb_ndim(NULL), -1);
    ck_assert_error(NB_ERR_NULL, "nb_ndim: tensor is NULL");
    ck_assert_int_eq(nb_numel(NULL), -1);
    ck_assert_ptr_null(nb_shape(NULL));
    ck_assert_ptr_null(nb_strides(NULL));
    ck_assert_int_eq(nb_dtype_of(NULL), NB_F32);
    ck_assert(!nb_is_contiguous(NULL));
    nb_tensor *gone = nb_zeros(NB_SHAPE(2), NB_F32);
    nb_free(gone);
    ck_assert(!nb_is_valid(gone));
    ck_assert_str_eq(nb_shape_str(gone, buf, sizeof buf), "(invalid)");
    ck_assert_int_eq(nb_numel(gone), -1);
    ck_assert_error(NB_ERR_FREED, "nb_numel", "was freed");
    nb_scope_end();
}
END_TEST

START_TEST(dtype_names_and_sizes)
{
    ck_assert_str_eq(nb_dtype_name(NB_F32), "f32");
    ck_assert_str_eq(nb_dtype_name(NB_F64), "f64");
    ck_assert_str_eq(nb_dtype_name(NB_I64), "i64");
    ck_assert_str_eq(nb_dtype_name(NB_BOOL), "bool");
    ck_assert_str_eq(nb_dtype_name((nb_dtype)42), "?");
    ck_assert_uint_eq(nb_dtype_size(NB_F32), 4);
    ck_assert_uint_eq(nb_dtype_size(NB_F64), 8);
    ck_assert_uint_eq(nb_dtype_size(NB_I64), 8);
    ck_assert_uint_eq(nb_dtype_size(NB_BOOL), 1);
    ck_assert_uint_eq(nb_dtype_size((nb_dtype)-1), 0);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Element access
 * ---------------------------------------------------------------------------------------------- */
START_TEST(item)
{
    nb_scope_begin();
    ck_assert_double_eq(nb_item(T_F32(NB_SHAPE(1, 1), 2.5f)), 2.5);
    ck_assert(isnan(nb_item(T_F32(NB_SHAPE(2), 1, 2))));
    ck_assert_error(NB_ERR_SHAPE, "nb_item", "(2)", "2 elements");
    ck_assert(isnan(nb_item(nb_zeros(NB_SHAPE(0, 4), NB_F32))));
    ck_assert_error(NB_ERR_SHAPE, "nb_item", "(0, 4)", "0 elements");
    nb_scope_end();
}
END_TEST

START_TEST(get_and_set_with_negative_indices)
{
    nb_scope_begin();
    nb_tensor *t = nb_arange(0, 6, 1, NB_F32);
    t = nb_reshape(t, NB_SHAPE(2, 3));
    ck_assert_tensor(t);
    ck_assert_double_eq(nb_get(t, (int64_t[]){1, 2}), 5);
    ck_assert_double_eq(nb_get(t, (int64_t[]){-1, -1}), 5);
    ck_assert_double_eq(nb_get(t, (int64_t[]){-2, 1}), 1);
    ck_assert_double_eq(nb_get(t, (int64_t[]){0, -3}), 0);
    ck_assert_ok(nb_set(t, (int64_t[]){-2, -1}, 20));
    ck_assert_double_eq(nb_get(t, (int64_t[]){0, 2}), 20);
    ck_assert_values(t, 0, 0, 1, 20, 3, 4, 5);

    ck_assert(isnan(nb_get(t, (int64_t[]){2, 0})));
    ck_assert_error(NB_ERR_INDEX, "nb_get", "index 2", "dim 0", "(2, 3)");
    ck_assert(isnan(nb_get(t, (int64_t[]){0, -4})));
    ck_assert_error(NB_ERR_INDEX, "nb_get", "index -4", "dim 1", "(2, 3)");
    ck_assert_int_eq(nb_set(t, (int64_t[]){0, 3}, 1), NB_ERR_INDEX);
    ck_assert_error(NB_ERR_INDEX, "nb_set", "index 3", "dim 1", "(2, 3)");
    ck_assert_values(t, 0, 0, 1, 20, 3, 4, 5); /* a failed set writes nothing */
    ck_assert(isnan(nb_get(t, NULL)));
    ck_assert_error(NB_ERR_NULL, "nb_get", "index is NULL");

    /* set converts to the dtype */
    nb_tensor *i = nb_zeros(NB_SHAPE(2), NB_I64);
    ck_assert_ok(nb_set(i, (int64_t[]){-1}, -7.8));
    ck_assert_double_eq(nb_get(i, (int64_t[]){1}), -7);
    nb_tensor *b = nb_zeros(NB_SHAPE(2), NB_BOOL);
    ck_assert_ok(nb_set(b, (int64_t[]){0}, -0.5));
    ck_assert_values(b, 0, 1, 0);
    nb_scope_end();
}
END_TEST

START_TEST(flat_access_on_views)
{
    nb_scope_begin();
    nb_tensor *t = nb_reshape(nb_arange(0, 6, 1, NB_F64), NB_SHAPE(2, 3)); /* [[0 1 2] [3 4 5]] */
    nb_tensor *tt = nb_transpose(t, 0, 1);                                  /* [[0 3] [1 4] [2 5]] */
    ck_assert_tensor(tt);
    ck_assert(!nb_is_contiguous(tt));
    ck_assert_values(tt, 0, 0, 3, 1, 4, 2, 5);
    ck_assert_double_eq(nb_get(tt, (int64_t[]){2, 0}), 2);
    /* writes through the view land in the base */
    ck_assert_ok(nb_set_flat(tt, 1, 30));
    ck_assert_double_eq(nb_get(t, (int64_t[]){1, 0}), 30);
    ck_assert_ok(nb_set(tt, (int64_t[]){-1, -1}, 50));
    ck_assert_values(t, 0, 0, 1, 2, 30, 4, 50);
    /* a strided slice */
    nb_tensor *s = nb_slice(nb_arange(0, 10, 1, NB_I64), 0, 1, 10, 3); /* 1 4 7 */
    ck_assert_values(s, 0, 1, 4, 7);
    ck_assert_ok(nb_set_flat(s, 2, -1));
    ck_assert_double_eq(nb_get_flat(s, 2), -1);
    /* a broadcast view repeats the element */
    nb_tensor *e = nb_expand(T_F32(NB_SHAPE(2, 1), 1, 2), NB_SHAPE(2, 3));
    ck_assert_values(e, 0, 1, 1, 1, 2, 2, 2);
    /* out of range */
    ck_assert(isnan(nb_get_flat(tt, 6)));
    ck_assert_error(NB_ERR_INDEX, "nb_get_flat", "flat index 6", "6 elements", "(3, 2)");
    ck_assert(isnan(nb_get_flat(tt, -1)));
    ck_assert_error(NB_ERR_INDEX, "nb_get_flat", "flat index -1");
    ck_assert_int_eq(nb_set_flat(tt, 6, 0), NB_ERR_INDEX);
    ck_assert_error(NB_ERR_INDEX, "nb_set_flat", "flat index 6", "(3, 2)");
    nb_scope_end();
}
END_TEST

START_TEST(to_array_converts)
{
    nb_scope_begin();
    nb_tensor *d = T_F64(NB_SHAPE(7), 1.9, -1.9, NAN, 2.5, -0.5, 1e300, -1e300);
    int64_t i[7];
    ck_assert_ok(nb_to_array(d, i, 7, NB_I64));
    /* truncation toward zero, NaN to 0, saturation instead of undefined behavior */
    const int64_t iexp[7] = {1, -1, 0, 2, 0, INT64_MAX, INT64_MIN};
    ck_assert_mem_eq(i, iexp, sizeof iexp);

    uint8_t b[7];
    ck_assert_ok(nb_to_array(T_F64(NB_SHAPE(7), 0, -0.0, 0.1, NAN, -3, INFINITY, 1e-300), b, 7, NB_BOOL));
    const uint8_t bexp[7] = {0, 0, 1, 1, 1, 1, 1};
    ck_assert_mem_eq(b, bexp, sizeof bexp);

    float f[3];
    ck_assert_ok(nb_to_array(T_F64(NB_SHAPE(3), 0.1, 1e40, -2), f, 3, NB_F32));
    ck_assert(f[0] == 0.1f && isinf(f[1]) && f[2] == -2.0f);

    double w[3];
    ck_assert_ok(nb_to_array(T_F32(NB_SHAPE(3), 0.1f, -3, 0.5f), w, 3, NB_F64));
    ck_assert(w[0] == (double)0.1f && w[1] == -3 && w[2] == 0.5); /* widening is exact */
    ck_assert_ok(nb_to_array(T_I64(NB_SHAPE(3), -4, 0, 9), w, 3, NB_F64));
    ck_assert(w[0] == -4 && w[1] == 0 && w[2] == 9);
    ck_assert_ok(nb_to_array(nb_from_array((const uint8_t[]){1, 0, 1}, NB_SHAPE(3), NB_BOOL), w, 3, NB_F64));
    ck_assert(w[0] == 1 && w[1] == 0 && w[2] == 1);
    ck_assert_ok(nb_to_array(T_I64(NB_SHAPE(3), -4, 0, 9), b, 3, NB_BOOL));
    ck_assert(b[0] == 1 && b[1] == 0 && b[2] == 1);
    ck_assert_ok(nb_to_array(T_F32(NB_SHAPE(2), -7.99f, 7.99f), i, 2, NB_I64));
    ck_assert(i[0] == -7 && i[1] == 7);

    /* row-major order of a view, and more room than needed is fine */
    double v[8] = {0};
    nb_tensor *tt = nb_transpose(T_F64(NB_SHAPE(2, 2), 1, 2, 3, 4), 0, 1);
    ck_assert_ok(nb_to_array(tt, v, 8, NB_F64));
    ck_assert(v[0] == 1 && v[1] == 3 && v[2] == 2 && v[3] == 4 && v[4] == 0);

    /* errors */
    ck_assert_int_eq(nb_to_array(tt, v, 3, NB_F64), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_to_array", "room for 3", "has 4");
    ck_assert_int_eq(nb_to_array(tt, NULL, 4, NB_F64), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_to_array", "out is NULL");
    ck_assert_int_eq(nb_to_array(tt, v, 4, (nb_dtype)5), NB_ERR_DTYPE);
    ck_assert_error(NB_ERR_DTYPE, "nb_to_array", "invalid dtype 5");
    /* an empty tensor needs no room */
    ck_assert_ok(nb_to_array(nb_zeros(NB_SHAPE(0, 2), NB_F32), v, 0, NB_F64));
    nb_scope_end();
}
END_TEST

START_TEST(data_pointer)
{
    nb_scope_begin();
    nb_tensor *t = T_F32(NB_SHAPE(2, 3), 0, 1, 2, 3, 4, 5);
    float *p = nb_data(t);
    ck_assert_ptr_nonnull(p);
    ck_assert(p[0] == 0 && p[5] == 5);
    p[1] = 10; /* writes through the pointer are the tensor's */
    ck_assert_double_eq(nb_get_flat(t, 1), 10);
    /* a contiguous view points into its base */
    float *row = nb_data(nb_narrow(t, 0, 1, 1));
    ck_assert_ptr_eq(row, p + 3);
    ck_assert_ptr_nonnull(nb_data(nb_zeros(NB_SHAPE(0), NB_F64)));

    ck_assert_ptr_null(nb_data(nb_transpose(t, 0, 1)));
    ck_assert_error(NB_ERR_STATE, "nb_data", "(3, 2)", "not contiguous");
    ck_assert_ptr_null(nb_data(nb_slice(t, 1, 0, 3, 2)));
    ck_assert_error(NB_ERR_STATE, "nb_data", "(2, 2)", "not contiguous");
    nb_clear_error();
    ck_assert_ptr_null(nb_data(NULL));
    ck_assert_error(NB_ERR_NULL, "nb_data: tensor is NULL");
    nb_scope_end();
}
END_TEST

START_TEST(fill)
{
    nb_scope_begin();
    nb_tensor *t = nb_zeros(NB_SHAPE(2, 3), NB_F64);
    ck_assert_ok(nb_fill(t, 1.5));
    ck_assert_values(t, 0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5);
    /* a view fills only its elements, and the base sees them */
    ck_assert_ok(nb_fill(nb_slice(t, 1, 0, 3, 2), -1));
    ck_assert_values(t, 0, -1, 1.5, -1, -1, 1.5, -1);
    ck_assert_ok(nb_fill(nb_transpose(nb_narrow(t, 0, 1, 1), 0, 1), 7));
    ck_assert_values(t, 0, -1, 1.5, -1, 7, 7, 7);
    /* conversion to the dtype */
    nb_tensor *i = nb_zeros(NB_SHAPE(3), NB_I64);
    ck_assert_ok(nb_fill(i, -2.9));
    ck_assert_values(i, 0, -2, -2, -2);
    nb_tensor *b = nb_zeros(NB_SHAPE(2), NB_BOOL);
    ck_assert_ok(nb_fill(b, 0.5));
    ck_assert_values(b, 0, 1, 1);
    nb_tensor *f = nb_zeros(NB_SHAPE(2), NB_F32);
    ck_assert_ok(nb_fill(f, NAN));
    ck_assert(isnan(nb_get_flat(f, 0)) && isnan(nb_get_flat(f, 1)));
    ck_assert_ok(nb_fill(nb_zeros(NB_SHAPE(0), NB_F32), 1));
    nb_clear_error();
    ck_assert_int_eq(nb_fill(NULL, 1), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_fill: tensor is NULL");
    nb_scope_end();
}
END_TEST

START_TEST(copy_broadcasts_and_converts)
{
    nb_scope_begin();
    nb_tensor *dst = nb_zeros(NB_SHAPE(2, 3), NB_F32);
    ck_assert_ok(nb_copy_(dst, T_F64(NB_SHAPE(3), 1, 2, 3)));
    ck_assert_values(dst, 0, 1, 2, 3, 1, 2, 3);
    ck_assert_ok(nb_copy_(dst, T_F64(NB_SHAPE(2, 1), -1, 5)));
    ck_assert_values(dst, 0, -1, -1, -1, 5, 5, 5);
    ck_assert_ok(nb_copy_(dst, nb_scalar(0.25, NB_F64)));
    ck_assert_values(dst, 0, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25);
    /* conversions: f64 -> i64 truncates, -> bool tests nonzero */
    nb_tensor *i = nb_zeros(NB_SHAPE(4), NB_I64);
    ck_assert_ok(nb_copy_(i, T_F64(NB_SHAPE(4), 2.7, -2.7, NAN, 0.2)));
    ck_assert_values(i, 0, 2, -2, 0, 0);
    nb_tensor *b = nb_ones(NB_SHAPE(3), NB_BOOL);
    ck_assert_ok(nb_copy_(b, T_I64(NB_SHAPE(3), 0, -3, 4)));
    ck_assert_values(b, 0, 0, 1, 1);
    /* into a non-contiguous destination, from a non-contiguous source */
    nb_tensor *base = nb_zeros(NB_SHAPE(3, 2), NB_F64);
    ck_assert_ok(nb_copy_(nb_transpose(base, 0, 1), nb_transpose(T_F64(NB_SHAPE(3, 2), 1, 2, 3, 4, 5, 6), 0, 1)));
    ck_assert_values(base, 0, 1, 2, 3, 4, 5, 6);
    /* shape errors name both shapes */
    ck_assert_int_eq(nb_copy_(nb_zeros(NB_SHAPE(3), NB_F32), nb_zeros(NB_SHAPE(2, 3), NB_F32)), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_copy_", "(2, 3)", "(3)");
    ck_assert_int_eq(nb_copy_(dst, nb_zeros(NB_SHAPE(4), NB_F32)), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_copy_", "(2, 3)", "(4)");
    ck_assert_values(dst, 0, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25); /* untouched */
    nb_clear_error();
    ck_assert_int_eq(nb_copy_(dst, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_copy_: src is NULL");
    nb_clear_error();
    ck_assert_int_eq(nb_copy_(NULL, dst), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_copy_: dst is NULL");
    nb_scope_end();
}
END_TEST

START_TEST(copy_between_overlapping_views)
{
    nb_scope_begin();
    /* shift right by one inside the same storage: a naive forward copy would smear t[0] everywhere */
    nb_tensor *t = nb_arange(0, 6, 1, NB_F64);
    ck_assert_ok(nb_copy_(nb_narrow(t, 0, 1, 5), nb_narrow(t, 0, 0, 5)));
    ck_assert_values(t, 0, 0, 0, 1, 2, 3, 4);
    /* shift left */
    t = nb_arange(0, 6, 1, NB_F64);
    ck_assert_ok(nb_copy_(nb_narrow(t, 0, 0, 5), nb_narrow(t, 0, 1, 5)));
    ck_assert_values(t, 0, 1, 2, 3, 4, 5, 5);
    /* a matrix made equal to its own transpose */
    nb_tensor *m = nb_reshape(nb_arange(0, 9, 1, NB_F32), NB_SHAPE(3, 3));
    ck_assert_ok(nb_copy_(m, nb_transpose(m, 0, 1)));
    ck_assert_values(m, 0, 0, 3, 6, 1, 4, 7, 2, 5, 8);
    /* a row broadcast over the matrix that holds it */
    ck_assert_ok(nb_copy_(m, nb_narrow(m, 0, 2, 1)));
    ck_assert_values(m, 0, 2, 5, 8, 2, 5, 8, 2, 5, 8);
    /* in-place writes bump the version that autograd checks: a saved input modified later is detected */
    nb_tensor *x = T_F64(NB_SHAPE(2), 1, 2);
    nb_set_requires_grad(x, true);
    nb_tensor *w = T_F64(NB_SHAPE(2), 3, 4);
    nb_tensor *y = nb_sum(nb_mul(x, w), 0, NULL, false);
    ck_assert_ok(nb_copy_(w, T_F64(NB_SHAPE(2), 5, 6)));
    ck_assert_int_eq(nb_backward(y), NB_ERR_STATE);
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Limits: 8 dims, zero-size tensors
 * ---------------------------------------------------------------------------------------------- */
START_TEST(eight_dims)
{
    nb_scope_begin();
    nb_tensor *t = nb_arange(0, 256, 1, NB_F64);
    t = nb_reshape(t, NB_SHAPE(2, 2, 2, 2, 2, 2, 2, 2));
    ck_assert_tensor(t);
    ck_assert_int_eq(nb_ndim(t), NB_MAX_DIMS);
    ck_assert_int_eq(nb_numel(t), 256);
    ck_assert_int_eq(nb_strides(t)[0], 128);
    ck_assert_int_eq(nb_strides(t)[7], 1);
    ck_assert_double_eq(nb_get(t, (int64_t[]){1, 0, 0, 0, 0, 0, 0, 1}), 129);
    ck_assert_double_eq(nb_get(t, (int64_t[]){-1, -1, -1, -1, -1, -1, -1, -1}), 255);
    ck_assert_ok(nb_set(t, (int64_t[]){0, 1, 0, 1, 0, 1, 0, 1}, -1));
    ck_assert_double_eq(nb_get_flat(t, 85), -1);
    /* the reversed-dims view: element i of it is at the bit-reversed position */
    nb_tensor *r = nb_permute(t, NB_DIMS(7, 6, 5, 4, 3, 2, 1, 0));
    ck_assert_tensor(r);
    ck_assert_double_eq(nb_get_flat(r, 1), 128);
    ck_assert_double_eq(nb_get_flat(r, 3), 192);
    char buf[64];
    ck_assert_str_eq(nb_shape_str(nb_zeros(NB_SHAPE(1, 2, 3, 4, 5, 6, 7, 8), NB_BOOL), buf, sizeof buf),
                     "(1, 2, 3, 4, 5, 6, 7, 8)");
    ck_assert_ptr_null(nb_zeros(NB_SHAPE(1, 1, 1, 1, 1, 1, 1, 1, 1), NB_F32));
    ck_assert_error(NB_ERR_SHAPE, "nb_zeros", "9 dims");
    nb_scope_end();
}
END_TEST

START_TEST(zero_size_tensors)
{
    nb_scope_begin();
    nb_tensor *t = nb_zeros(NB_SHAPE(3, 0, 2), NB_F32);
    ck_assert_shape(t, 3, 0, 2);
    ck_assert_int_eq(nb_numel(t), 0);
    ck_assert(nb_is_contiguous(t));
    ck_assert_ok(nb_fill(t, 3));
    ck_assert_ok(nb_copy_(t, nb_scalar(1, NB_F64)));
    ck_assert_ok(nb_copy_(t, nb_ones(NB_SHAPE(2), NB_F64)));
    ck_assert_shape(nb_ones_like(t), 3, 0, 2);
    ck_assert_shape(nb_empty(NB_SHAPE(0), NB_I64), 0);
    ck_assert(isnan(nb_get_flat(t, 0)));
    ck_assert_error(NB_ERR_INDEX, "nb_get_flat", "0 elements", "(3, 0, 2)");
    ck_assert(isnan(nb_get(t, (int64_t[]){0, 0, 0})));
    ck_assert_error(NB_ERR_INDEX, "nb_get", "dim 1", "(3, 0, 2)");
    nb_scope_end();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("tensor");
    tcase_add_test(tc, zeros_ones_full_in_every_dtype);
    tcase_add_test(tc, scalar);
    tcase_add_test(tc, arange);
    tcase_add_test(tc, linspace);
    tcase_add_test(tc, eye);
    tcase_add_test(tc, from_array_every_dtype);
    tcase_add_test(tc, like_constructors);
    tcase_add_test(tc, inspection);
    tcase_add_test(tc, dtype_names_and_sizes);
    tcase_add_test(tc, item);
    tcase_add_test(tc, get_and_set_with_negative_indices);
    tcase_add_test(tc, flat_access_on_views);
    tcase_add_test(tc, to_array_converts);
    tcase_add_test(tc, data_pointer);
    tcase_add_test(tc, fill);
    tcase_add_test(tc, copy_broadcasts_and_converts);
    tcase_add_test(tc, copy_between_overlapping_views);
    tcase_add_test(tc, eight_dims);
    tcase_add_test(tc, zero_size_tensors);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
