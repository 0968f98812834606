/* softmax and log_softmax: values, stability for huge logits, every dim of a 3-d tensor, non-contiguous
 * inputs, gradients (first and second order), errors. */
#include "helpers.h"

START_TEST(softmax_values)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(2, 3), 1, 2, 3, 0, 0, 0);
    nb_tensor *p = nb_softmax(x, 1);
    ck_assert_shape(p, 2, 3);
    /* e^(x - 3) / (e^-2 + e^-1 + 1) */
    ck_assert_values(p, 1e-12, 0.0900305731703805, 0.2447284710547976, 0.6652409557748219, 1.0 / 3, 1.0 / 3,
                     1.0 / 3);
    nb_tensor *lp = nb_log_softmax(x, -1);
    ck_assert_values(lp, 1e-12, -2.40760596444438, -1.40760596444438, -0.40760596444438, -log(3.0), -log(3.0),
                     -log(3.0));
    /* along dim 0: pairs (1, 0), (2, 0), (3, 0) */
    nb_tensor *p0 = nb_softmax(x, 0);
    double s1 = 1 / (1 + exp(-1.0)), s2 = 1 / (1 + exp(-2.0)), s3 = 1 / (1 + exp(-3.0));
    ck_assert_values(p0, 1e-12, s1, s2, s3, 1 - s1, 1 - s2, 1 - s3);
    ck_assert_values(nb_log_softmax(x, -2), 1e-12, log(s1), log(s2), log(s3), log(1 - s1), log(1 - s2), log(1 - s3));
    /* f32 keeps its dtype */
    nb_tensor *f = T_F32(NB_SHAPE(3), 1, 2, 3);
    ck_assert_int_eq(nb_dtype_of(nb_softmax(f, 0)), NB_F32);
    ck_assert_values(nb_softmax(f, 0), 1e-7, 0.0900305731703805, 0.2447284710547976, 0.6652409557748219);
    ck_assert_values(nb_log_softmax(f, 0), 1e-6, -2.40760596444438, -1.40760596444438, -0.40760596444438);
    nb_scope_end();
}
END_TEST

START_TEST(huge_logits_are_stable)
{
    nb_scope_begin();
    for (int k = 0; k < 2; k++) {
        nb_tensor *x = k ? T_F32(NB_SHAPE(3), 1e4f, -1e4f, 0) : T_F64(NB_SHAPE(3), 1e4, -1e4, 0);
        nb_tensor *p = nb_softmax(x, 0), *lp = nb_log_softmax(x, 0);
        for (int i = 0; i < 3; i++) {
            ck_assert(isfinite(nb_get_flat(p, i)));
            ck_assert(isfinite(nb_get_flat(lp, i)));
        }
        ck_assert_values(p, 0, 1, 0, 0);
        ck_assert_values(lp, 0, 0, -2e4, -1e4);
    }
    /* equal huge logits share the mass evenly */
    ck_assert_values(nb_softmax(T_F64(NB_SHAPE(2), 800, 800), 0), 1e-15, 0.5, 0.5);
    ck_assert_values(nb_log_softmax(T_F32(NB_SHAPE(2), -1e30f, -1e30f), 0), 1e-6, -log(2.0), -log(2.0));
    nb_scope_end();
}
END_TEST

/* Rows of a random (3, 4, 5) tensor sum to 1 along every dim, and exp(log_softmax) = softmax. */
START_TEST(rows_sum_to_one_on_every_dim)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 7);
    nb_tensor *x = nb_randn(NB_SHAPE(3, 4, 5), 0, 3, NB_F64, &g);
    for (int d = -3; d < 3; d++) {
        nb_tensor *p = nb_softmax(x, d);
        nb_tensor *sums = nb_sum(p, 1, &d, false);
        ck_assert_tensor(sums);
        for (int64_t i = 0; i < nb_numel(sums); i++) ck_assert_close(nb_get_flat(sums, i), 1.0, 1e-12);
        nb_tensor *lp = nb_log_softmax(x, d);
        ck_assert_tensor(lp);
        for (int64_t i = 0; i < 60; i++) {
            ck_assert_close(exp(nb_get_flat(lp, i)), nb_get_flat(p, i), 1e-12);
            ck_assert(nb_get_flat(p, i) > 0);
        }
    }
    nb_scope_end();
}
END_TEST

/* A stride-0 input (expanded along the softmax dim): every row is constant, so the result is uniform. */
START_TEST(non_contiguous_input_values)
{
    nb_scope_begin();
    nb_tensor *col = T_F64(NB_SHAPE(2, 1), 5, -3);
    nb_tensor *wide = nb_expand(col, NB_SHAPE(2, 4));
    ck_assert_values(nb_softmax(wide, 1), 1e-15, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25);
    double s = 1 / (1 + exp(-8.0));
    ck_assert_values(nb_softmax(wide, 0), 1e-15, s, s, s, s, 1 - s, 1 - s, 1 - s, 1 - s);
    nb_scope_end();
}
END_TEST

START_TEST(empty_scalar_and_infinite_rows)
{
    nb_scope_begin();
    ck_assert_shape(nb_softmax(nb_zeros(NB_SHAPE(0, 3), NB_F32), 1), 0, 3);
    ck_assert_shape(nb_log_softmax(nb_zeros(NB_SHAPE(2, 0), NB_F64), 1), 2, 0);
    /* a 0-d tensor is one row of one element */
    ck_assert_values(nb_softmax(nb_scalar(42, NB_F64), 0), 0, 1);
    ck_assert_values(nb_log_softmax(nb_scalar(42, NB_F64), -1), 0, 0);
    /* -inf logits get probability 0 (log -inf) next to finite ones */
    nb_tensor *m = T_F64(NB_SHAPE(3), 0, -INFINITY, 0);
    ck_assert_values(nb_softmax(m, 0), 0, 0.5, 0, 0.5);
    nb_tensor *lm = nb_log_softmax(m, 0);
    ck_assert(isinf(nb_get_flat(lm, 1)) && nb_get_flat(lm, 1) < 0);
    ck_assert_close(nb_get_flat(lm, 0), -log(2.0), 1e-15);
    /* a row of only -inf has no distribution: NaN, as in PyTorch */
    ck_assert(isnan(nb_get_flat(nb_softmax(T_F64(NB_SHAPE(2), -INFINITY, -INFINITY), 0), 0)));
    nb_scope_end();
}
END_TEST

START_TEST(gradient_values)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(3), 1, 2, 3);
    nb_set_requires_grad(x, true);
    nb_tensor *w = T_F64(NB_SHAPE(3), 1, 0, 0);
    /* d p0 / dx = p0 (e0 - p) */
    ck_assert_ok(nb_backward(nb_sum(nb_mul(nb_softmax(x, 0), w), 0, NULL, false)));
    double p0 = 0.0900305731703805, p1 = 0.2447284710547976, p2 = 0.6652409557748219;
    ck_assert_values(nb_grad(x), 1e-12, p0 * (1 - p0), -p0 * p1, -p0 * p2);
    nb_zero_grad(x);
    /* d log p0 / dx = e0 - p */
    ck_assert_ok(nb_backward(nb_sum(nb_mul(nb_log_softmax(x, 0), w), 0, NULL, false)));
    ck_assert_values(nb_grad(x), 1e-12, 1 - p0, -p1, -p2);
    nb_zero_grad(x);
    /* logits of +-1e4: gradients stay finite */
    nb_tensor *big = T_F64(NB_SHAPE(3), 1e4, -1e4, 0);
    nb_set_requires_grad(big, true);
    ck_assert_ok(nb_backward(nb_sum(nb_mul(nb_log_softmax(big, 0), T_F64(NB_SHAPE(3), 0, 1, 0)), 0, NULL, false)));
    ck_assert_values(nb_grad(big), 0, -1, 1, 0);
    ck_assert_str_eq(nb_grad_fn_name(nb_softmax(x, 0)), "softmax");
    ck_assert_str_eq(nb_grad_fn_name(nb_log_softmax(x, 0)), "log_softmax");
    nb_scope_end();
}
END_TEST

typedef struct scase {
    bool log;
    int dim;
    int view; /* 0: the leaf; 1: (2, 1, 4) leaf expanded to (2, 3, 4); 2: leaf transposed (dims 0 and 2) */
} scase;

/* softmax weighted by fixed coefficients, so that the second derivative is not trivially projected away */
static nb_tensor *f_softmax(nb_tensor *const *in, void *ud)
{
    const scase *c = ud;
    nb_tensor *x = in[0];
    if (c->view == 1) x = nb_expand(x, NB_SHAPE(2, 3, 4));
    if (c->view == 2) x = nb_transpose(x, 0, 2);
    return c->log ? nb_log_softmax(x, c->dim) : nb_softmax(x, c->dim);
}

static void check_all_dims(nb_tensor *leaf, int view)
{
    for (int log = 0; log < 2; log++)
        for (int d = -3; d < 3; d++) {
            scase c = {log, d, view};
            nb_tensor *in[1] = {leaf};
            nb_status st = nb_gradcheck(f_softmax, &c, 1, in, NULL);
            ck_assert_msg(st == NB_OK, "gradcheck %s dim %d view %d: %s", log ? "log_softmax" : "softmax", d, view,
                          nb_last_error());
            st = nb_gradgradcheck(f_softmax, &c, 1, in, NULL);
            ck_assert_msg(st == NB_OK, "gradgradcheck %s dim %d view %d: %s", log ? "log_softmax" : "softmax", d,
                          view, nb_last_error());
        }
}

START_TEST(gradcheck_every_dim)
{
    nb_scope_begin();
    check_all_dims(nbt_leaf(NB_SHAPE(2, 3, 4), 21), 0);
    check_all_dims(nbt_leaf(NB_SHAPE(2, 1, 4), 22), 1);
    nb_tensor *v[1] = {nbt_leaf(NB_SHAPE(5), 23)};
    scase c = {false, 0, 0};
    ck_assert_gradcheck(f_softmax, &c, 1, v, true);
    c.log = true;
    ck_assert_gradcheck(f_softmax, &c, 1, v, true);
    nb_scope_end();
}
END_TEST

/* The shape family provides nb_transpose; until it lands this test reports its "not implemented" error. */
START_TEST(gradcheck_transposed)
{
    nb_scope_begin();
    check_all_dims(nbt_leaf(NB_SHAPE(4, 3, 2), 24), 2);
    nb_scope_end();
}
END_TEST

START_TEST(errors)
{
    nb_scope_begin();
    nb_tensor *x = nb_zeros(NB_SHAPE(2, 3), NB_F32);
    ck_assert_ptr_null(nb_softmax(x, 2));
    ck_assert_error(NB_ERR_ARG, "nb_softmax", "dim 2", "(2, 3)", "-2 to 1");
    ck_assert_ptr_null(nb_log_softmax(x, -3));
    ck_assert_error(NB_ERR_ARG, "nb_log_softmax", "dim -3", "(2, 3)");
    ck_assert_ptr_null(nb_softmax(nb_scalar(1, NB_F64), 1));
    ck_assert_error(NB_ERR_ARG, "nb_softmax", "dim 1", "()");
    nb_tensor *i = T_I64(NB_SHAPE(2), 1, 2);
    ck_assert_ptr_null(nb_softmax(i, 0));
    ck_assert_error(NB_ERR_DTYPE, "nb_softmax", "i64", "(2)", "nb_to_dtype");
    ck_assert_ptr_null(nb_log_softmax(nb_gt_scalar(i, 1), 0));
    ck_assert_error(NB_ERR_DTYPE, "nb_log_softmax", "bool");
    nb_clear_error();
    ck_assert_ptr_null(nb_softmax(NULL, 0));
    ck_assert_error(NB_ERR_NULL, "nb_softmax");
    nb_tensor *gone = nb_ones(NB_SHAPE(2), NB_F32);
    nb_free(gone);
    ck_assert_ptr_null(nb_log_softmax(gone, 0));
    ck_assert_error(NB_ERR_FREED, "nb_log_softmax");
    nb_scope_end();
}
END_TEST

START_TEST(no_leaked_temporaries)
{
    nb_tensor *x = T_F32(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    int64_t base = nb_memory_stats_get().live_tensors;
    for (int grad = 0; grad < 2; grad++) {
        nb_set_requires_grad(x, grad);
        nb_tensor *p = nb_softmax(x, 1), *lp = nb_log_softmax(x, 0);
        ck_assert_tensor(p);
        ck_assert_tensor(lp);
        nb_free(p);
        nb_free(lp);
        ck_assert_int_eq(nb_memory_stats_get().live_tensors, base);
    }
    nb_free(x);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("softmax");
    TCase *tc = tcase_create("softmax");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, softmax_values);
    tcase_add_test(tc, huge_logits_are_stable);
    tcase_add_test(tc, rows_sum_to_one_on_every_dim);
    tcase_add_test(tc, non_contiguous_input_values);
    tcase_add_test(tc, empty_scalar_and_infinite_rows);
    tcase_add_test(tc, gradient_values);
    tcase_add_test(tc, gradcheck_every_dim);
    tcase_add_test(tc, gradcheck_transposed);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, no_leaked_temporaries);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
