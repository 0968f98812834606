/* Two threads training two independent models at the same time get bit-identical results to the same two runs made
 * one after the other: scopes, no-grad state, the error record and the default generator are per thread, and
 * nothing else the runs touch is shared. Each run uses a different seed, so that a leak of state from one to the
 * other would show. */
#include "helpers.h"
#include "mlp_run.h"

#include <pthread.h>

#define STEPS 150

typedef struct run_job {
    uint64_t seed;
    bool ok;
    char error[256];
    nb_param_list *result; /* copies of the final parameters and optimizer state, caller-owned */
    int scope_depth_after, grad_enabled_after;
    nb_status last_status_after;
} run_job;

/* Copies a list's tensors into a new list of caller-owned tensors. */
static nb_param_list *copy_list(const nb_param_list *l)
{
    nb_param_list *out = nb_param_list_new();
    for (int i = 0; i < l->count; i++)
        nb_param_list_add(out, l->items[i].name, nb_clone(l->items[i].tensor), l->items[i].is_buffer);
    return out;
}

static void free_copy(nb_param_list *l)
{
    for (int i = 0; i < l->count; i++) nb_free(l->items[i].tensor);
    nb_param_list_free(l);
}

static void *train(void *arg)
{
    run_job *j = arg;
    mlp_run r;
    j->ok = mlp_run_init(&r, j->seed);
    /* Every step also exercises the per-thread state: a nested scope, no-grad mode and a recorded error. */
    for (int s = 0; j->ok && s < STEPS; s++) {
        nb_no_grad_begin();
        nb_scope_begin();
        nb_tensor *probe = nb_sum(nb_forward(r.model, r.x), 0, NULL, false);
        if (!probe || nb_requires_grad(probe)) j->ok = false;
        nb_scope_end();
        nb_no_grad_end();
        nb_clear_error();
        (void)nb_add(r.x, r.y); /* (32, 4) + (32): an NB_ERR_SHAPE recorded on this thread only */
        if (nb_last_status() != NB_ERR_SHAPE) j->ok = false;
        nb_clear_error();
        if (j->ok) j->ok = mlp_run_step(&r);
    }
    if (!j->ok) snprintf(j->error, sizeof j->error, "%s", nb_last_error());
    j->result = copy_list(r.ckpt);
    j->scope_depth_after = nb_scope_depth();
    j->grad_enabled_after = nb_is_grad_enabled();
    j->last_status_after = nb_last_status();
    mlp_run_free(&r);
    return NULL;
}

static void check_same(const run_job *a, const run_job *b)
{
    char why[256] = "";
    ck_assert_msg(mlp_lists_identical(a->result, b->result, why, sizeof why), "seed %llu: %s",
                  (unsigned long long)a->seed, why);
}

START_TEST(two_threads_match_sequential_runs)
{
    run_job seq[2] = {{.seed = 11}, {.seed = 12}}, par[2] = {{.seed = 11}, {.seed = 12}};
    /* One after the other, on two fresh threads (the main thread's state stays out of it). */
    for (int i = 0; i < 2; i++) {
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, train, &seq[i]), 0);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        ck_assert_msg(seq[i].ok, "sequential run %d: %s", i, seq[i].error);
    }
    /* At the same time. */
    pthread_t t[2];
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, train, &par[i]), 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(par[i].ok, "concurrent run %d: %s", i, par[i].error);
        ck_assert_int_eq(par[i].scope_depth_after, 0);
        ck_assert(par[i].grad_enabled_after);
        ck_assert_int_eq(par[i].last_status_after, NB_OK);
        check_same(&seq[i], &par[i]);
    }
    /* The two seeds give different models (so a mix-up between the runs would be seen). */
    char why[256];
    ck_assert(!mlp_lists_identical(seq[0].result, seq[1].result, why, sizeof why));
    /* The main thread saw none of it. */
    ck_assert_int_eq(nb_scope_depth(), 0);
    ck_assert(nb_is_grad_enabled());
    ck_assert_int_eq(nb_last_status(), NB_OK);
    for (int i = 0; i < 2; i++) {
        free_copy(seq[i].result);
        free_copy(par[i].result);
    }
}
END_TEST

/* The same with the runs' state deliberately left inconsistent on one thread: an open scope and no-grad mode on
 * the main thread must not leak into the workers. */
START_TEST(main_thread_state_does_not_leak)
{
    run_job ref = {.seed = 21}, under = {.seed = 21};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, train, &ref), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    nb_scope_begin();
    nb_no_grad_begin();
    nb_manual_seed(999);
    ck_assert_ptr_null(nb_exp(NULL));
    ck_assert_int_eq(pthread_create(&t, NULL, train, &under), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_msg(under.ok, "%s", under.error);
    check_same(&ref, &under);
    ck_assert(!nb_is_grad_enabled());
    ck_assert_int_eq(nb_scope_depth(), 1);
    ck_assert_error(NB_ERR_NULL, "nb_exp");
    nb_no_grad_end();
    nb_scope_end();
    free_copy(ref.result);
    free_copy(under.result);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("threads_independent");
    TCase *tc = tcase_create("threads_independent");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, two_threads_match_sequential_runs);
    tcase_add_test(tc, main_thread_state_does_not_leak);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
