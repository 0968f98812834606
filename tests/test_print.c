/* Printing: the expected texts are PyTorch 1.13's repr of the same tensors (torch._tensor_str with default
 * print options), followed by nabla's shape and dtype suffixes. */
#include "helpers.h"

#include <errno.h>

#include <unistd.h>

/* nb_format of t equals expected, and the length it reports is the length of that text. */
#define ck_assert_format(t, expected)                                                                 \
    do {                                                                                              \
        char ck_buf_[4096];                                                                           \
        ck_assert_tensor(t);                                                                          \
        size_t ck_n_ = nb_format(t, ck_buf_, sizeof ck_buf_);                                         \
        ck_assert_msg(strcmp(ck_buf_, expected) == 0, "%s printed as\n%s\nexpected\n%s", #t, ck_buf_, \
                      expected);                                                                      \
        ck_assert_uint_eq(ck_n_, strlen(expected));                                                   \
    } while (0)

/* A tensor whose row-major element i is a * i + b. */
static nb_tensor *ramp(int ndim, const int64_t *shape, nb_dtype dtype, double a, double b)
{
    nb_tensor *t = nb_empty(ndim, shape, dtype);
    for (int64_t i = 0; i < nb_numel(t); i++) nb_set_flat(t, i, a * (double)i + b);
    return t;
}

START_TEST(documented_example)
{
    nb_scope_begin();
    ck_assert_format(T_F32(NB_SHAPE(2, 2), 1, 2.5f, 3, 4),
                     "tensor([[1.0000, 2.5000],\n"
                     "        [3.0000, 4.0000]], shape=(2, 2), dtype=f32)");
    nb_scope_end();
}
END_TEST

START_TEST(float_modes)
{
    nb_scope_begin();
    /* all integers: "1." with a common width */
    ck_assert_format(T_F32(NB_SHAPE(3), 1, -2, 3), "tensor([ 1., -2.,  3.], shape=(3), dtype=f32)");
    ck_assert_format(T_F64(NB_SHAPE(2), 1, 1000), "tensor([   1., 1000.], shape=(2), dtype=f64)");
    /* scientific: large values, small values, or a ratio above 1000 (integers too) */
    ck_assert_format(T_F64(NB_SHAPE(2), 0.5, 1e9), "tensor([5.0000e-01, 1.0000e+09], shape=(2), dtype=f64)");
    ck_assert_format(T_F64(NB_SHAPE(2), 0.5, 1e8), "tensor([5.0000e-01, 1.0000e+08], shape=(2), dtype=f64)");
    ck_assert_format(T_F64(NB_SHAPE(2), 1e-5, 1), "tensor([1.0000e-05, 1.0000e+00], shape=(2), dtype=f64)");
    ck_assert_format(T_F64(NB_SHAPE(2), 1, 2000), "tensor([1.0000e+00, 2.0000e+03], shape=(2), dtype=f64)");
    /* the boundaries: up to 1e8 and down to 1e-4 stay fixed */
    ck_assert_format(T_F64(NB_SHAPE(2), 1e8, 5e7), "tensor([100000000.,  50000000.], shape=(2), dtype=f64)");
    ck_assert_format(T_F64(NB_SHAPE(2), 1e8, 99999999.5),
                     "tensor([100000000.0000,  99999999.5000], shape=(2), dtype=f64)");
    ck_assert_format(T_F64(NB_SHAPE(2), 2e8, 1e8), "tensor([2.0000e+08, 1.0000e+08], shape=(2), dtype=f64)");
    ck_assert_format(T_F64(NB_SHAPE(2), 1e-4, 0.05), "tensor([0.0001, 0.0500], shape=(2), dtype=f64)");
    ck_assert_format(T_F64(NB_SHAPE(2), 9.9e-5, 0.05), "tensor([9.9000e-05, 5.0000e-02], shape=(2), dtype=f64)");
    nb_scope_end();
}
END_TEST

START_TEST(non_finite_and_zeros)
{
    nb_scope_begin();
    /* inf and nan do not take part in the width; a NaN with its sign bit set still prints as "nan" */
    ck_assert_format(T_F32(NB_SHAPE(4), 1.5f, INFINITY, -INFINITY, NAN),
                     "tensor([1.5000,    inf,   -inf,    nan], shape=(4), dtype=f32)");
    ck_assert_format(T_F64(NB_SHAPE(3), 1, INFINITY, -NAN), "tensor([1., inf, nan], shape=(3), dtype=f64)");
    ck_assert_format(T_F32(NB_SHAPE(2), 0, -0.0f), "tensor([0., -0.], shape=(2), dtype=f32)");
    ck_assert_format(T_F32(NB_SHAPE(2), 0, NAN), "tensor([0., nan], shape=(2), dtype=f32)");
    nb_scope_end();
}
END_TEST

START_TEST(integer_bool_and_scalars)
{
    nb_scope_begin();
    ck_assert_format(T_I64(NB_SHAPE(3), 1, -20, 300), "tensor([  1, -20, 300], shape=(3), dtype=i64)");
    ck_assert_format(nb_from_array((const uint8_t[]){1, 0, 1}, NB_SHAPE(3), NB_BOOL),
                     "tensor([ True, False,  True], shape=(3), dtype=bool)");
    ck_assert_format(nb_scalar(3.5, NB_F32), "tensor(3.5000, shape=(), dtype=f32)");
    ck_assert_format(nb_scalar(-7, NB_I64), "tensor(-7, shape=(), dtype=i64)");
    ck_assert_format(nb_scalar(1, NB_BOOL), "tensor(True, shape=(), dtype=bool)");
    ck_assert_format(nb_zeros(NB_SHAPE(0, 3), NB_F32), "tensor([], shape=(0, 3), dtype=f32)");
    /* an i64 beyond 2^53 prints exactly (no trip through double) */
    ck_assert_format(T_I64(NB_SHAPE(1), INT64_MAX), "tensor([9223372036854775807], shape=(1), dtype=i64)");
    nb_scope_end();
}
END_TEST

START_TEST(nested_and_wrapped)
{
    nb_scope_begin();
    ck_assert_format(ramp(NB_SHAPE(2, 2, 2), NB_F32, 1, 0),
                     "tensor([[[0., 1.],\n"
                     "         [2., 3.]],\n"
                     "\n"
                     "        [[4., 5.],\n"
                     "         [6., 7.]]], shape=(2, 2, 2), dtype=f32)");
    ck_assert_format(ramp(NB_SHAPE(30), NB_F32, 1, 0.5),
                     "tensor([ 0.5000,  1.5000,  2.5000,  3.5000,  4.5000,  5.5000,  6.5000,  7.5000,\n"
                     "         8.5000,  9.5000, 10.5000, 11.5000, 12.5000, 13.5000, 14.5000, 15.5000,\n"
                     "        16.5000, 17.5000, 18.5000, 19.5000, 20.5000, 21.5000, 22.5000, 23.5000,\n"
                     "        24.5000, 25.5000, 26.5000, 27.5000, 28.5000, 29.5000], shape=(30),\n"
                     "       dtype=f32)");
    ck_assert_format(ramp(NB_SHAPE(2, 20), NB_F64, 1.25, 0),
                     "tensor([[ 0.0000,  1.2500,  2.5000,  3.7500,  5.0000,  6.2500,  7.5000,  8.7500,\n"
                     "         10.0000, 11.2500, 12.5000, 13.7500, 15.0000, 16.2500, 17.5000, 18.7500,\n"
                     "         20.0000, 21.2500, 22.5000, 23.7500],\n"
                     "        [25.0000, 26.2500, 27.5000, 28.7500, 30.0000, 31.2500, 32.5000, 33.7500,\n"
                     "         35.0000, 36.2500, 37.5000, 38.7500, 40.0000, 41.2500, 42.5000, 43.7500,\n"
                     "         45.0000, 46.2500, 47.5000, 48.7500]], shape=(2, 20), dtype=f64)");
    ck_assert_format(ramp(NB_SHAPE(1, 24), NB_I64, 1000000, -12000000),
                     "tensor([[-12000000, -11000000, -10000000,  -9000000,  -8000000,  -7000000,\n"
                     "          -6000000,  -5000000,  -4000000,  -3000000,  -2000000,  -1000000,\n"
                     "                 0,   1000000,   2000000,   3000000,   4000000,   5000000,\n"
                     "           6000000,   7000000,   8000000,   9000000,  10000000,  11000000]],\n"
                     "       shape=(1, 24), dtype=i64)");
    ck_assert_format(nb_ones(NB_SHAPE(1, 1, 1, 1, 1, 1, 1, 2), NB_F32),
                     "tensor([[[[[[[[1., 1.]]]]]]]], shape=(1, 1, 1, 1, 1, 1, 1, 2), dtype=f32)");
    nb_scope_end();
}
END_TEST

START_TEST(summarized)
{
    nb_scope_begin();
    ck_assert_format(ramp(NB_SHAPE(2000), NB_F32, 1, 0),
                     "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n"
                     "        1.9990e+03], shape=(2000), dtype=f32)");
    /* only the values shown choose the format: the hidden 0.5 does not end integer mode */
    nb_tensor *hidden = ramp(NB_SHAPE(2000), NB_F32, 1, 1000);
    nb_set_flat(hidden, 1500, 0.5);
    ck_assert_format(hidden, "tensor([1000., 1001., 1002.,  ..., 2997., 2998., 2999.], shape=(2000),\n"
                             "       dtype=f32)");
    ck_assert_format(ramp(NB_SHAPE(2, 1000), NB_I64, 1, 0),
                     "tensor([[   0,    1,    2,  ...,  997,  998,  999],\n"
                     "        [1000, 1001, 1002,  ..., 1997, 1998, 1999]], shape=(2, 1000), dtype=i64)");
    ck_assert_format(ramp(NB_SHAPE(40, 40), NB_F32, 0.25, 1),
                     "tensor([[  1.0000,   1.2500,   1.5000,  ...,  10.2500,  10.5000,  10.7500],\n"
                     "        [ 11.0000,  11.2500,  11.5000,  ...,  20.2500,  20.5000,  20.7500],\n"
                     "        [ 21.0000,  21.2500,  21.5000,  ...,  30.2500,  30.5000,  30.7500],\n"
                     "        ...,\n"
                     "        [371.0000, 371.2500, 371.5000,  ..., 380.2500, 380.5000, 380.7500],\n"
                     "        [381.0000, 381.2500, 381.5000,  ..., 390.2500, 390.5000, 390.7500],\n"
                     "        [391.0000, 391.2500, 391.5000,  ..., 400.2500, 400.5000, 400.7500]],\n"
                     "       shape=(40, 40), dtype=f32)");
    ck_assert_format(ramp(NB_SHAPE(40, 40), NB_F32, 0.25, 0),
                     "tensor([[0.0000e+00, 2.5000e-01, 5.0000e-01,  ..., 9.2500e+00, 9.5000e+00,\n"
                     "         9.7500e+00],\n"
                     "        [1.0000e+01, 1.0250e+01, 1.0500e+01,  ..., 1.9250e+01, 1.9500e+01,\n"
                     "         1.9750e+01],\n"
                     "        [2.0000e+01, 2.0250e+01, 2.0500e+01,  ..., 2.9250e+01, 2.9500e+01,\n"
                     "         2.9750e+01],\n"
                     "        ...,\n"
                     "        [3.7000e+02, 3.7025e+02, 3.7050e+02,  ..., 3.7925e+02, 3.7950e+02,\n"
                     "         3.7975e+02],\n"
                     "        [3.8000e+02, 3.8025e+02, 3.8050e+02,  ..., 3.8925e+02, 3.8950e+02,\n"
                     "         3.8975e+02],\n"
                     "        [3.9000e+02, 3.9025e+02, 3.9050e+02,  ..., 3.9925e+02, 3.9950e+02,\n"
                     "         3.9975e+02]], shape=(40, 40), dtype=f32)");
    nb_scope_end();
}
END_TEST

START_TEST(non_contiguous_views)
{
    nb_scope_begin();
    nb_tensor *t = nb_transpose(T_F64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6), 0, 1);
    ck_assert_tensor(t);
    ck_assert(!nb_is_contiguous(t));
    ck_assert_format(t, "tensor([[1., 4.],\n"
                        "        [2., 5.],\n"
                        "        [3., 6.]], shape=(3, 2), dtype=f64)");
    /* a strided slice: every other element of a ramp */
    nb_tensor *s = nb_slice(ramp(NB_SHAPE(10), NB_F32, 0.5, 0), 0, 1, 10, 2);
    ck_assert_format(s, "tensor([0.5000, 1.5000, 2.5000, 3.5000, 4.5000], shape=(5), dtype=f32)");
    /* a large transposed view is summarized along its own dims */
    nb_tensor *big = nb_transpose(ramp(NB_SHAPE(1000, 2), NB_I64, 1, 0), 0, 1);
    ck_assert_format(big, "tensor([[   0,    2,    4,  ..., 1994, 1996, 1998],\n"
                          "        [   1,    3,    5,  ..., 1995, 1997, 1999]], shape=(2, 1000), dtype=i64)");
    nb_scope_end();
}
END_TEST

START_TEST(format_measures_and_truncates)
{
    nb_scope_begin();
    nb_tensor *t = T_F32(NB_SHAPE(2), 1.5f, 2);
    const char *full = "tensor([1.5000, 2.0000], shape=(2), dtype=f32)";
    ck_assert_uint_eq(nb_format(t, NULL, 0), strlen(full));
    char small[11];
    memset(small, 'x', sizeof small);
    ck_assert_uint_eq(nb_format(t, small, sizeof small), strlen(full));
    ck_assert_str_eq(small, "tensor([1.");
    char one[1] = {'x'};
    ck_assert_uint_eq(nb_format(t, one, 1), strlen(full));
    ck_assert_int_eq(one[0], '\0');
    ck_assert_int_eq(nb_last_status(), NB_OK);
    nb_scope_end();
}
END_TEST

START_TEST(fprint_writes_text_and_newline)
{
    nb_scope_begin();
    nb_tensor *t = nb_eye(2, NB_I64);
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_ok(nb_fprint(f, t));
    ck_assert_ok(nb_fprint(f, nb_scalar(0.25, NB_F64)));
    rewind(f);
    char text[256] = {0};
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    ck_assert_uint_gt(n, 0);
    ck_assert_str_eq(text, "tensor([[1, 0],\n"
                           "        [0, 1]], shape=(2, 2), dtype=i64)\n"
                           "tensor(0.2500, shape=(), dtype=f64)\n");
    nb_scope_end();
}
END_TEST

START_TEST(print_goes_to_stdout)
{
    nb_scope_begin();
    /* stdout redirected to a file for the duration of the call */
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(dup2(fileno(f), STDOUT_FILENO), 0);
    nb_status st = nb_print(T_F32(NB_SHAPE(1), -1));
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    ck_assert_ok(st);
    rewind(f);
    char text[128] = {0};
    ck_assert_uint_gt(fread(text, 1, sizeof text - 1, f), 0);
    fclose(f);
    ck_assert_str_eq(text, "tensor([-1.], shape=(1), dtype=f32)\n");
    nb_scope_end();
}
END_TEST

START_TEST(errors)
{
    nb_scope_begin();
    nb_tensor *t = nb_ones(NB_SHAPE(2, 3), NB_F32);
    char buf[64];
    memset(buf, 'x', sizeof buf);

    nb_clear_error();
    ck_assert_uint_eq(nb_format(NULL, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "");
    ck_assert_error(NB_ERR_NULL, "nb_format: tensor is NULL");

    nb_clear_error();
    ck_assert_uint_eq(nb_format(t, NULL, 10), 0);
    ck_assert_error(NB_ERR_NULL, "nb_format", "buf is NULL");

    nb_clear_error();
    ck_assert_int_eq(nb_fprint(stdout, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_fprint: tensor is NULL");
    ck_assert_int_eq(nb_fprint(NULL, t), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_fprint: file is NULL");
    nb_clear_error();
    ck_assert_int_eq(nb_print(NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_print: tensor is NULL");

    /* a write that fails is reported */
    FILE *ro = fopen("/dev/null", "r");
    ck_assert_ptr_nonnull(ro);
    ck_assert_int_eq(nb_fprint(ro, t), NB_ERR_IO);
    ck_assert_error(NB_ERR_IO, "nb_fprint", "failed");
    fclose(ro);
    /* a full device accepts the text into the stream's buffer and refuses it only on flush: still an error */
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        ck_assert_int_eq(nb_fprint(full, t), NB_ERR_IO);
        ck_assert_error(NB_ERR_IO, "nb_fprint", "failed", strerror(ENOSPC));
        fclose(full);
    }

    /* a freed handle is refused, not read */
    nb_tensor *gone = nb_zeros(NB_SHAPE(2), NB_F32);
    nb_free(gone);
    ck_assert_uint_eq(nb_format(gone, buf, sizeof buf), 0);
    ck_assert_error(NB_ERR_FREED, "nb_format", "was freed");

    /* a NULL coming out of a failed op keeps that op's message */
    nb_clear_error();
    ck_assert_int_eq(nb_print(nb_add(t, nb_ones(NB_SHAPE(4), NB_F32))), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_add", "(2, 3)", "(4)");
    nb_scope_end();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("print");
    TCase *tc = tcase_create("print");
    tcase_add_test(tc, documented_example);
    tcase_add_test(tc, float_modes);
    tcase_add_test(tc, non_finite_and_zeros);
    tcase_add_test(tc, integer_bool_and_scalars);
    tcase_add_test(tc, nested_and_wrapped);
    tcase_add_test(tc, summarized);
    tcase_add_test(tc, non_contiguous_views);
    tcase_add_test(tc, format_measures_and_truncates);
    tcase_add_test(tc, fprint_writes_text_and_newline);
    tcase_add_test(tc, print_goes_to_stdout);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
