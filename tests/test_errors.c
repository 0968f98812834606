/* The error model: per-thread status and message, propagation of NULL through expressions, the error handler,
 * and the content of the messages. */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>

START_TEST(status_and_message_accessors)
{
    ck_assert_int_eq(nb_last_status(), NB_OK);
    ck_assert_str_eq(nb_last_error(), "");
    nb_scope_begin();
    ck_assert_ptr_null(nb_zeros(NB_SHAPE(-1), NB_F32));
    ck_assert_int_eq(nb_last_status(), NB_ERR_SHAPE);
    ck_assert_str_eq(nb_last_error(), "nb_zeros: negative size in shape (-1)");
    /* a later successful call leaves the record alone: errors are checked once, at the end */
    ck_assert_tensor(nb_ones(NB_SHAPE(2), NB_F32));
    ck_assert_int_eq(nb_last_status(), NB_ERR_SHAPE);
    ck_assert_str_eq(nb_last_error(), "nb_zeros: negative size in shape (-1)");
    nb_clear_error();
    ck_assert_int_eq(nb_last_status(), NB_OK);
    ck_assert_str_eq(nb_last_error(), "");
    /* shapes in messages: every digit of the extreme sizes, zero, and the separators */
    ck_assert_ptr_null(nb_zeros(NB_SHAPE(0, 7, INT64_MIN), NB_F32));
    ck_assert_str_eq(nb_last_error(), "nb_zeros: negative size in shape (0, 7, -9223372036854775808)");
    nb_clear_error();
    ck_assert_ptr_null(nb_zeros(NB_SHAPE(INT64_MAX, 10), NB_F32));
    ck_assert_str_eq(nb_last_error(), "nb_zeros: shape (9223372036854775807, 10) is too large");
    nb_clear_error();
    ck_assert_ptr_null(nb_matmul(nb_zeros(NB_SHAPE(2, 3), NB_F32), nb_zeros(NB_SHAPE(4, 1, 12345), NB_F32)));
    ck_assert_str_eq(nb_last_error(), "nb_matmul: shapes (2, 3) and (4, 1, 12345) cannot be multiplied: 3 != 1");
    nb_clear_error();
    nb_scope_end();
}
END_TEST

START_TEST(status_names)
{
    static const char *const names[] = {"NB_OK",        "NB_ERR_NULL",  "NB_ERR_FREED",  "NB_ERR_ARG",
                                         "NB_ERR_SHAPE", "NB_ERR_DTYPE", "NB_ERR_INDEX",  "NB_ERR_VALUE",
                                         "NB_ERR_NOMEM", "NB_ERR_STATE", "NB_ERR_IO",     "NB_ERR_FORMAT",
                                         "NB_ERR_GRADCHECK", "NB_ERR_COMM"};
    for (int s = NB_OK; s <= NB_ERR_COMM; s++) ck_assert_str_eq(nb_status_name((nb_status)s), names[s]);
    ck_assert_str_eq(nb_status_name((nb_status)(NB_ERR_COMM + 1)), "NB_ERR_?");
    ck_assert_str_eq(nb_status_name((nb_status)-1), "NB_ERR_?");
}
END_TEST

START_TEST(null_propagates_and_keeps_the_first_message)
{
    nb_scope_begin();
    nb_tensor *a = nb_ones(NB_SHAPE(2, 3), NB_F32);
    nb_tensor *bad = nb_ones(NB_SHAPE(5), NB_F32);
    ck_assert_ptr_null(nb_exp(nb_add(a, bad)));
    ck_assert_error(NB_ERR_SHAPE, "nb_add", "(2, 3)", "(5)");
    ck_assert_ptr_null(strstr(nb_last_error(), "nb_exp"));
    /* a longer chain, with both operands of the outer op affected */
    ck_assert_ptr_null(nb_mul(nb_sum(nb_exp(nb_sub(bad, a)), 0, NULL, false), nb_neg(NULL)));
    ck_assert_error(NB_ERR_SHAPE, "nb_sub", "(5)", "(2, 3)");
    /* status-returning calls propagate the status too */
    ck_assert_int_eq(nb_fill(nb_add(a, bad), 1), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_add");
    nb_scope_end();
}
END_TEST

START_TEST(null_argument_names_the_function)
{
    nb_scope_begin();
    nb_clear_error();
    ck_assert_ptr_null(nb_exp(NULL));
    ck_assert_error(NB_ERR_NULL, "nb_exp: tensor is NULL");
    nb_clear_error();
    nb_tensor *a = nb_ones(NB_SHAPE(2), NB_F64);
    ck_assert_ptr_null(nb_add(a, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_add", "is NULL");
    nb_clear_error();
    ck_assert_ptr_null(nb_zeros(2, NULL, NB_F32));
    ck_assert_error(NB_ERR_NULL, "nb_zeros: shape is NULL");
    nb_scope_end();
}
END_TEST

START_TEST(freed_handles_are_reported)
{
    nb_scope_begin();
    nb_tensor *kept = nb_ones(NB_SHAPE(2), NB_F32);
    nb_tensor *gone = nb_ones(NB_SHAPE(2), NB_F32);
    ck_assert_ok(nb_free(gone));
    ck_assert_ptr_null(nb_add(kept, gone));
    ck_assert_error(NB_ERR_FREED, "nb_add", "was freed");
    nb_scope_end();
    /* a handle from a scope that ended */
    nb_scope_begin();
    nb_tensor *inner = nb_zeros(NB_SHAPE(3), NB_F64);
    nb_scope_end();
    nb_clear_error();
    ck_assert_int_eq(nb_numel(inner), -1);
    ck_assert_error(NB_ERR_FREED, "nb_numel", "was freed");
    /* a pointer that never was a tensor */
    static _Alignas(512) unsigned char not_a_tensor[1024];
    nb_clear_error();
    ck_assert_int_eq(nb_ndim((const nb_tensor *)not_a_tensor), -1);
    ck_assert_error(NB_ERR_FREED, "nb_ndim", "not a nabla tensor handle");
}
END_TEST

typedef struct handler_log {
    int calls;
    nb_status status;
    char message[256];
} handler_log;

static void log_handler(nb_status status, const char *message, void *user_data)
{
    handler_log *log = user_data;
    log->calls++;
    log->status = status;
    snprintf(log->message, sizeof log->message, "%s", message);
}

START_TEST(error_handler_sees_each_recorded_error_once)
{
    nb_scope_begin();
    handler_log log = {0};
    nb_set_error_handler(log_handler, &log);
    nb_tensor *a = nb_ones(NB_SHAPE(2, 3), NB_F32);
    /* one error, then propagation through three ops: one call */
    ck_assert_ptr_null(nb_tanh(nb_exp(nb_neg(nb_add(a, nb_ones(NB_SHAPE(4), NB_F32))))));
    ck_assert_int_eq(log.calls, 1);
    ck_assert_int_eq(log.status, NB_ERR_SHAPE);
    ck_assert_str_eq(log.message, nb_last_error());
    ck_assert_ptr_nonnull(strstr(log.message, "nb_add"));
    /* every new error is a call, even while one is pending */
    ck_assert_int_eq(nb_size(a, 5), -1);
    ck_assert_int_eq(log.calls, 2);
    ck_assert_int_eq(log.status, NB_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(log.message, "nb_size"));
    /* successes are not calls */
    ck_assert_tensor(nb_exp(a));
    ck_assert_int_eq(log.calls, 2);
    /* removed: no more calls */
    nb_set_error_handler(NULL, NULL);
    ck_assert_int_eq(nb_size(a, 5), -1);
    ck_assert_int_eq(log.calls, 2);
    ck_assert_error(NB_ERR_ARG, "nb_size");
    nb_scope_end();
}
END_TEST

/* Expected to die of SIGABRT inside nb_abort_on_error. */
START_TEST(abort_on_error_aborts)
{
    nb_set_error_handler(nb_abort_on_error, NULL);
    nb_tensor *t = nb_zeros(NB_SHAPE(-2), NB_F32); /* aborts here */
    nb_free(t);
    nb_set_error_handler(NULL, NULL);
}
END_TEST

/* The handler without an error: no abort. */
START_TEST(abort_on_error_is_quiet_without_errors)
{
    nb_set_error_handler(nb_abort_on_error, NULL);
    nb_scope_begin();
    ck_assert_tensor(nb_exp(nb_ones(NB_SHAPE(2), NB_F32)));
    nb_scope_end();
    nb_set_error_handler(NULL, NULL);
}
END_TEST

typedef struct thread_result {
    nb_status status_at_start, status_after;
    char message[256];
} thread_result;

static void *failing_thread(void *arg)
{
    thread_result *r = arg;
    r->status_at_start = nb_last_status();
    nb_tensor *t = nb_full(NB_SHAPE(3, -4), 1, NB_F64);
    nb_free(t);
    r->status_after = nb_last_status();
    snprintf(r->message, sizeof r->message, "%s", nb_last_error());
    return NULL;
}

START_TEST(errors_are_per_thread)
{
    nb_scope_begin();
    /* the main thread's pending error is invisible to the new thread */
    ck_assert_ptr_null(nb_eye(-1, NB_F32));
    ck_assert_error(NB_ERR_VALUE, "nb_eye");
    thread_result r = {0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, failing_thread, &r), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(r.status_at_start, NB_OK);
    ck_assert_int_eq(r.status_after, NB_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(r.message, "nb_full: negative size in shape (3, -4)"));
    /* and the thread's error did not replace the main thread's */
    ck_assert_error(NB_ERR_VALUE, "nb_eye", "got -1");
    nb_clear_error();
    ck_assert_int_eq(pthread_create(&th, NULL, failing_thread, &r), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(r.status_after, NB_ERR_SHAPE);
    ck_assert_int_eq(nb_last_status(), NB_OK);
    ck_assert_str_eq(nb_last_error(), "");
    nb_scope_end();
}
END_TEST

START_TEST(messages_name_the_function_and_the_values)
{
    nb_scope_begin();
    ck_assert_ptr_null(nb_zeros(NB_SHAPE(2), (nb_dtype)9));
    ck_assert_error(NB_ERR_DTYPE, "nb_zeros: invalid dtype 9");
    ck_assert_ptr_null(nb_full(NB_SHAPE(2), 1, (nb_dtype)-3));
    ck_assert_error(NB_ERR_DTYPE, "nb_full: invalid dtype -3");
    ck_assert_ptr_null(nb_ones(NB_SHAPE(1, 2, 1, 2, 1, 2, 1, 2, 1), NB_F32));
    ck_assert_error(NB_ERR_SHAPE, "nb_ones: 9 dims requested; nabla supports 0 to 8");
    ck_assert_ptr_null(nb_empty(-1, (const int64_t[]){1}, NB_F32));
    ck_assert_error(NB_ERR_SHAPE, "nb_empty: -1 dims requested");
    ck_assert_ptr_null(nb_full(NB_SHAPE(4, -1, 2), 0, NB_I64));
    ck_assert_error(NB_ERR_SHAPE, "nb_full: negative size in shape (4, -1, 2)");
    ck_assert_ptr_null(nb_from_array((const double[]){1}, NB_SHAPE(-1), NB_F64));
    ck_assert_error(NB_ERR_SHAPE, "nb_from_array", "negative size", "(-1)");
    ck_assert_ptr_null(nb_zeros(NB_SHAPE((int64_t)1 << 40, (int64_t)1 << 40), NB_F32));
    ck_assert_error(NB_ERR_SHAPE, "nb_zeros", "(1099511627776, 1099511627776)", "too large");

    nb_tensor *t = nb_zeros(NB_SHAPE(2, 3), NB_F32);
    ck_assert(isnan(nb_get(t, (int64_t[]){0, 7})));
    ck_assert_error(NB_ERR_INDEX, "nb_get: index 7 out of range for dim 1 of shape (2, 3)");
    ck_assert_int_eq(nb_set(t, (int64_t[]){-3, 0}, 1), NB_ERR_INDEX);
    ck_assert_error(NB_ERR_INDEX, "nb_set: index -3 out of range for dim 0 of shape (2, 3)");
    ck_assert(isnan(nb_get_flat(t, 6)));
    ck_assert_error(NB_ERR_INDEX, "nb_get_flat: flat index 6 out of range for 6 elements (shape (2, 3))");
    ck_assert_int_eq(nb_size(t, 2), -1);
    ck_assert_error(NB_ERR_ARG, "nb_size: dim 2 out of range for shape (2, 3)");
    ck_assert(isnan(nb_item(t)));
    ck_assert_error(NB_ERR_SHAPE, "nb_item: tensor of shape (2, 3) has 6 elements, not 1");
    nb_scope_end();
    ck_assert_int_eq(nb_scope_end(), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_scope_end", "no scope is open");
}
END_TEST

/* The handler and its user data are set as a pair: errors raised on one thread while another thread keeps
 * switching between two (handler, data) pairs always see a matching pair. */
static int pair_tag_a, pair_tag_b;
static atomic_int mismatched_pairs, pair_calls;
static void handler_a(nb_status s, const char *m, void *data)
{
    (void)s, (void)m;
    atomic_fetch_add(&pair_calls, 1);
    if (data != &pair_tag_a) atomic_fetch_add(&mismatched_pairs, 1);
}
static void handler_b(nb_status s, const char *m, void *data)
{
    (void)s, (void)m;
    atomic_fetch_add(&pair_calls, 1);
    if (data != &pair_tag_b) atomic_fetch_add(&mismatched_pairs, 1);
}
static atomic_bool switching_done;
static void *raise_errors(void *arg)
{
    (void)arg;
    while (!atomic_load(&switching_done)) nb_zeros(NB_SHAPE(-1), NB_F32);
    return NULL;
}

START_TEST(error_handler_and_data_change_together)
{
    atomic_store(&switching_done, false);
    atomic_store(&pair_calls, 0);
    atomic_store(&mismatched_pairs, 0);
    pthread_t t;
    nb_set_error_handler(handler_a, &pair_tag_a);
    pthread_create(&t, NULL, raise_errors, NULL);
    for (int i = 0; i < 200000 || atomic_load(&pair_calls) < 2000; i++) { /* until both have done enough */
        if (i % 2) nb_set_error_handler(handler_a, &pair_tag_a);
        else nb_set_error_handler(handler_b, &pair_tag_b);
    }
    atomic_store(&switching_done, true);
    pthread_join(t, NULL);
    nb_set_error_handler(NULL, NULL);
    ck_assert_int_gt(atomic_load(&pair_calls), 0);
    ck_assert_int_eq(atomic_load(&mismatched_pairs), 0);
    nb_clear_error();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, status_and_message_accessors);
    tcase_add_test(tc, status_names);
    tcase_add_test(tc, null_propagates_and_keeps_the_first_message);
    tcase_add_test(tc, null_argument_names_the_function);
    tcase_add_test(tc, freed_handles_are_reported);
    tcase_add_test(tc, error_handler_sees_each_recorded_error_once);
    tcase_add_test_raise_signal(tc, abort_on_error_aborts, SIGABRT);
    tcase_add_test(tc, abort_on_error_is_quiet_without_errors);
    tcase_add_test(tc, errors_are_per_thread);
    tcase_add_test(tc, error_handler_and_data_change_together);
    tcase_add_test(tc, messages_name_the_function_and_the_values);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
