/* Memory stays flat over a long training loop: 100 000 steps of a small MLP (dropout, Adam, a step LR schedule,
 * the mlp_run of test_resume) with nabla's live-allocation counters the same after every checkpoint of the loop as
 * after warm-up, and no call to malloc in the steady state. NABLA_FLAT_STEPS sets the step count (the sanitized
 * builds use fewer steps by default: a leak of one tensor per step shows after a handful of steps anyway). */
#include "helpers.h"
#include "mlp_run.h"

#if defined(__SANITIZE_ADDRESS__)
#define DEFAULT_STEPS 5000
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DEFAULT_STEPS 5000
#endif
#endif
#ifndef DEFAULT_STEPS
#define DEFAULT_STEPS 100000
#endif
#define WARMUP 50

START_TEST(long_training_loop_keeps_memory_flat)
{
    const char *env = getenv("NABLA_FLAT_STEPS");
    long steps = env && *env ? strtol(env, NULL, 10) : DEFAULT_STEPS;
    ck_assert_int_gt(steps, WARMUP);
    mlp_run r;
    ck_assert_msg(mlp_run_init(&r, 5), "%s", nb_last_error());
    for (int s = 0; s < WARMUP; s++) ck_assert_msg(mlp_run_step(&r), "%s", nb_last_error());
    nb_memory_stats warm = nb_memory_stats_get();
    nb_reset_peak_memory();
    long checks = 0;
    for (long s = WARMUP; s < steps; s++) {
        if (!mlp_run_step(&r)) ck_abort_msg("step %ld: %s", s, nb_last_error());
        if ((s + 1) % 1000 == 0 || s + 1 == steps) {
            nb_memory_stats now = nb_memory_stats_get();
            ck_assert_msg(now.live_tensors == warm.live_tensors && now.live_bytes == warm.live_bytes,
                          "step %ld: %lld live tensors, %lld bytes; after warm-up %lld, %lld", s + 1,
                          (long long)now.live_tensors, (long long)now.live_bytes, (long long)warm.live_tensors,
                          (long long)warm.live_bytes);
            checks++;
        }
    }
    nb_memory_stats end = nb_memory_stats_get();
    /* A step's temporaries come from the caches: after warm-up, no new system allocation and no growth of the
     * peak of live bytes beyond what one step needs (the peak was reset at the end of warm-up). */
    ck_assert_msg(end.system_allocs == warm.system_allocs, "%lld calls to malloc after warm-up",
                  (long long)(end.system_allocs - warm.system_allocs));
    ck_assert_int_le(end.cached_bytes, warm.cached_bytes);
    ck_assert_int_ge(checks, 1);
    ck_assert_int_eq(r.step, steps);
    int64_t model_tensors = warm.live_tensors;
    mlp_run_free(&r);
    /* Everything the run made is gone once it is freed. */
    ck_assert_int_lt(nb_memory_stats_get().live_tensors, model_tensors);
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, 0);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("flat_memory");
    TCase *tc = tcase_create("flat_memory");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, long_training_loop_keeps_memory_flat);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
