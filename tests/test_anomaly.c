/* Anomaly detection: the op where a NaN or an infinity first appears is named, in forward and in backward, and
 * nothing is flagged when the values are fine, when detection is off, or when an infinity is intended. */
#include "helpers.h"

#include <math.h>
#include <pthread.h>

static nb_tensor *leaf(nb_tensor *t)
{
    ck_assert_tensor(t);
    ck_assert_ok(nb_set_requires_grad(t, true));
    return t;
}

START_TEST(forward_nan_names_op_inputs_and_position)
{
    nb_set_detect_anomaly(true);
    ck_assert(nb_is_anomaly_enabled());
    nb_scope_begin();
    nb_tensor *x = leaf(T_F32(NB_SHAPE(3), 1, 2, 3));
    ck_assert_ok(nb_set_label(x, "x"));
    nb_tensor *h = nb_sub_scalar(x, 2.5); /* op #1: -1.5, -0.5, 0.5 */
    ck_assert_ok(nb_set_label(h, "h"));
    ck_assert_tensor(h);
    nb_tensor *bad = nb_sqrt(h); /* op #2: NaN at 0 and 1 */
    ck_assert_ptr_null(bad);
    ck_assert_error(NB_ERR_VALUE, "nb_sqrt: anomaly: output (3) contains NaN at index 0, which no input had",
                    "op #2 since anomaly detection was turned on", "x = 'h' (3) f32 in [-1.5, 0.5]");
    /* The first error is kept: later ops see NULL and do not replace it. */
    ck_assert_ptr_null(nb_sum(bad, 0, NULL, false));
    ck_assert_error(NB_ERR_VALUE, "nb_sqrt: anomaly");
    nb_scope_end();
    nb_set_detect_anomaly(false);
    nb_clear_error();
}
END_TEST

START_TEST(forward_infinity_from_finite_inputs)
{
    nb_set_detect_anomaly(true);
    nb_scope_begin();
    ck_assert_ptr_null(nb_exp(T_F64(NB_SHAPE(2), 1.0, 1000.0)));
    ck_assert_error(NB_ERR_VALUE, "nb_exp: anomaly: output (2) contains an infinity at index 1, computed from finite "
                                  "inputs", "op #1", "x = (2) f64 in [1, 1000]");
    nb_clear_error();
    ck_assert_ptr_null(nb_div(T_F32(NB_SHAPE(2), 1, 1), T_F32(NB_SHAPE(2), 2, 0)));
    ck_assert_error(NB_ERR_VALUE, "nb_div: anomaly", "at index 1", "op #2", "a = (2) f32 in [1, 1]",
                    "b = (2) f32 in [0, 2]");
    nb_clear_error();
    /* An input that already holds an infinity may pass it on; a masked_fill writing -inf is intended. */
    nb_tensor *e = nb_exp(T_F64(NB_SHAPE(2), INFINITY, 0.0));
    ck_assert_tensor(e);
    ck_assert(isinf(nb_get_flat(e, 0)));
    nb_tensor *masked = nb_masked_fill(T_F32(NB_SHAPE(2, 2), 1, 2, 3, 4),
                                       nb_from_array((const bool[]){false, true, false, false}, NB_SHAPE(2, 2), NB_BOOL),
                                       -INFINITY);
    ck_assert_tensor(masked);
    nb_tensor *p = nb_softmax(masked, 1); /* a causal-attention pattern: -inf scores become 0 */
    ck_assert_tensor(p);
    ck_assert_close(nb_get_flat(p, 1), 0.0, 0);
    /* But masked_fill writing NaN is flagged. */
    ck_assert_ptr_null(nb_masked_fill(T_F32(NB_SHAPE(2), 1, 2), nb_from_array((const bool[]){true, false}, NB_SHAPE(2), NB_BOOL),
                                      NAN));
    ck_assert_error(NB_ERR_VALUE, "nb_masked_fill: anomaly", "NaN at index 0");
    nb_scope_end();
    nb_set_detect_anomaly(false);
    nb_clear_error();
}
END_TEST

START_TEST(backward_names_the_op_whose_gradient_breaks)
{
    /* sqrt(0) = 0 is fine in forward; its derivative 1 / (2 sqrt(0)) is infinite. */
    nb_tensor *w = leaf(T_F64(NB_SHAPE(2), 4.0, 1.0));
    ck_assert_ok(nb_set_label(w, "w"));
    nb_scope_begin();
    nb_set_detect_anomaly(true);
    nb_tensor *x = nb_sub_scalar(w, 1.0); /* 3, 0 */
    ck_assert_ok(nb_set_label(x, "x"));
    nb_tensor *r = nb_sqrt(x);           /* op #2 */
    nb_tensor *loss = nb_sum(r, 0, NULL, false);
    ck_assert_tensor(loss);
    ck_assert_int_eq(nb_backward(loss), NB_ERR_VALUE);
    ck_assert_error(NB_ERR_VALUE, "nb_backward: anomaly: the backward of 'sqrt' (op #2 of the forward pass) returned "
                                  "a gradient with an infinity at index 1 for input 0 (x = 'x' (2) f64 in [0, 3])",
                    "its output was out = (2) f64");
    ck_assert_ptr_null(nb_grad(w)); /* backward stopped before reaching the leaf */
    nb_set_detect_anomaly(false);
    nb_scope_end();
    nb_clear_error();

    /* Without detection the same backward "succeeds" with an infinite gradient: what the mode is for. */
    nb_scope_begin();
    loss = nb_sum(nb_sqrt(nb_sub_scalar(w, 1.0)), 0, NULL, false);
    ck_assert_ok(nb_backward(loss));
    ck_assert(isinf(nb_get_flat(nb_grad(w), 1)));
    nb_scope_end();
    nb_free(w);
}
END_TEST

START_TEST(clean_training_is_unchanged)
{
    /* A small regression step gives bit-identical gradients with and without detection. */
    double grads[2][6];
    for (int mode = 0; mode < 2; mode++) {
        nb_set_detect_anomaly(mode == 1);
        nb_tensor *w = leaf(T_F64(NB_SHAPE(2, 3), 0.1, -0.2, 0.3, 0.4, -0.5, 0.6));
        nb_scope_begin();
        nb_tensor *x = T_F64(NB_SHAPE(4, 2), 1, 2, 3, 4, -1, 0.5, 2, -2);
        nb_tensor *y = nb_tanh(nb_matmul(x, w));
        nb_tensor *loss = nb_mean(nb_square(nb_sub_scalar(y, 0.25)), 0, NULL, false);
        ck_assert_ok(nb_backward(loss));
        for (int i = 0; i < 6; i++) grads[mode][i] = nb_get_flat(nb_grad(w), i);
        nb_scope_end();
        nb_free(w);
    }
    nb_set_detect_anomaly(false);
    for (int i = 0; i < 6; i++) ck_assert(grads[0][i] == grads[1][i]);
}
END_TEST

static void *probe_thread(void *arg)
{
    *(bool *)arg = nb_is_anomaly_enabled();
    return NULL;
}

START_TEST(detection_is_per_thread_and_off_by_default)
{
    ck_assert(!nb_is_anomaly_enabled());
    nb_scope_begin();
    ck_assert_tensor(nb_sqrt(T_F32(NB_SHAPE(1), -1))); /* off: NaN passes silently, as in PyTorch */
    nb_set_detect_anomaly(true);
    bool other = true;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, probe_thread, &other), 0);
    pthread_join(t, NULL);
    ck_assert(!other);
    /* Turning it on again restarts the op count. */
    nb_set_detect_anomaly(false);
    nb_set_detect_anomaly(true);
    ck_assert_ptr_null(nb_log(T_F32(NB_SHAPE(1), -1)));
    ck_assert_error(NB_ERR_VALUE, "nb_log: anomaly", "op #1 ");
    nb_set_detect_anomaly(false);
    nb_scope_end();
    nb_clear_error();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("anomaly");
    TCase *tc = tcase_create("anomaly");
    tcase_add_test(tc, forward_nan_names_op_inputs_and_position);
    tcase_add_test(tc, forward_infinity_from_finite_inputs);
    tcase_add_test(tc, backward_names_the_op_whose_gradient_breaks);
    tcase_add_test(tc, clean_training_is_unchanged);
    tcase_add_test(tc, detection_is_per_thread_and_off_by_default);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
