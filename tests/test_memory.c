/* The memory model: ownership, scopes, keep, free, stale handles, flat memory over long loops, threads. */
#include "helpers.h"

#include <pthread.h>

static int64_t live_tensors(void) { return nb_memory_stats_get().live_tensors; }

START_TEST(unscoped_tensors_belong_to_the_caller)
{
    int64_t base = live_tensors();
    nb_tensor *t = nb_zeros(NB_SHAPE(3, 4), NB_F32);
    ck_assert_tensor(t);
    ck_assert_int_eq(live_tensors(), base + 1);
    ck_assert_int_eq(nb_memory_stats_get().live_bytes >= 48, 1);
    ck_assert_ok(nb_free(t));
    ck_assert_int_eq(live_tensors(), base);
    ck_assert_ok(nb_free(NULL)); /* freeing NULL is a no-op, like free() */
}
END_TEST

START_TEST(scope_end_frees_everything_created_inside)
{
    int64_t base = live_tensors();
    ck_assert_ok(nb_scope_begin());
    ck_assert_int_eq(nb_scope_depth(), 1);
    nb_tensor *a = nb_ones(NB_SHAPE(8), NB_F32);
    nb_tensor *b = nb_add(nb_mul(a, a), a);
    ck_assert_tensor(b);
    ck_assert_int_gt(live_tensors(), base + 2);
    ck_assert_ok(nb_scope_end());
    ck_assert_int_eq(nb_scope_depth(), 0);
    ck_assert_int_eq(live_tensors(), base);
    ck_assert_int_eq(nb_memory_stats_get().live_bytes, 0);
}
END_TEST

START_TEST(scopes_nest_and_keep_moves_one_level_out)
{
    int64_t base = live_tensors();
    nb_scope_begin();
    nb_tensor *outer = nb_ones(NB_SHAPE(2), NB_F64);
    nb_scope_begin();
    nb_tensor *inner = nb_full(NB_SHAPE(2), 3.0, NB_F64);
    nb_tensor *kept = nb_keep(nb_add(outer, inner));
    ck_assert_ptr_null(nb_keep(NULL)); /* NULL propagates */
    nb_scope_end();
    ck_assert_int_eq(nb_is_valid(inner), 0);
    ck_assert_int_eq(nb_is_valid(kept), 1);
    ck_assert_values(kept, 0, 4, 4);
    nb_tensor *escaped = nb_keep(nb_mul(kept, kept)); /* from the outermost scope: now the caller's */
    nb_scope_end();
    ck_assert_int_eq(nb_is_valid(kept), 0);
    ck_assert_int_eq(nb_is_valid(escaped), 1);
    ck_assert_values(escaped, 0, 16, 16);
    ck_assert_int_eq(live_tensors(), base + 1);
    nb_free(escaped);
    ck_assert_int_eq(live_tensors(), base);
}
END_TEST

START_TEST(stale_handles_are_reported_not_read)
{
    nb_scope_begin();
    nb_tensor *t = nb_ones(NB_SHAPE(4), NB_F32);
    nb_scope_end();
    /* The header is recycled by the next allocation; the stale handle must still be caught. */
    nb_scope_begin();
    nb_tensor *fresh = nb_zeros(NB_SHAPE(4), NB_F32);
    ck_assert_tensor(fresh);
    nb_clear_error();
    ck_assert_ptr_null(nb_add(t, fresh));
    ck_assert_error(NB_ERR_FREED, "nb_add", "was freed");
    ck_assert_int_eq(nb_numel(t), -1);
    ck_assert_error(NB_ERR_FREED, "nb_numel");
    ck_assert_int_eq(nb_free(t), NB_ERR_FREED);
    ck_assert_int_eq(nb_is_valid(t), 0);
    ck_assert_int_eq(nb_is_valid(fresh), 1);
    nb_scope_end();
}
END_TEST

START_TEST(double_free_is_reported)
{
    nb_tensor *t = nb_ones(NB_SHAPE(2), NB_F32);
    ck_assert_ok(nb_free(t));
    ck_assert_int_eq(nb_free(t), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_free");
}
END_TEST

START_TEST(scope_end_without_begin_is_an_error)
{
    ck_assert_int_eq(nb_scope_end(), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_scope_end", "no scope");
}
END_TEST

START_TEST(early_free_inside_a_scope)
{
    int64_t base = live_tensors();
    nb_scope_begin();
    nb_tensor *a = nb_ones(NB_SHAPE(1000), NB_F32);
    ck_assert_ok(nb_free(a));
    ck_assert_int_eq(live_tensors(), base);
    nb_scope_end(); /* must not touch a again */
    ck_assert_int_eq(live_tensors(), base);
}
END_TEST

START_TEST(a_kept_result_keeps_its_graph_alive)
{
    nb_tensor *w = T_F64(NB_SHAPE(2), 1.5, -2);
    nb_set_requires_grad(w, true);
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(2), 3, 4);
    nb_tensor *loss = nb_keep(nb_sum_to(nb_mul(nb_mul(w, w), x), 0, NULL));
    nb_scope_end();
    /* x and the products are gone as handles, but backward through the kept loss still works */
    ck_assert_int_eq(nb_is_valid(x), 0);
    ck_assert_ok(nb_backward(loss));
    ck_assert_values(nb_grad(w), 1e-12, 2 * 1.5 * 3, 2 * -2 * 4);
    nb_free(loss);
    nb_free(w);
    ck_assert_int_eq(nb_memory_stats_get().live_bytes, 0);
    ck_assert_int_eq(live_tensors(), 0);
}
END_TEST

START_TEST(gradients_are_owned_by_their_tensor)
{
    nb_tensor *w = T_F32(NB_SHAPE(3), 1, 2, 3);
    nb_set_requires_grad(w, true);
    nb_scope_begin();
    ck_assert_ok(nb_backward(nb_sum_to(nb_mul(w, w), 0, NULL)));
    nb_scope_end(); /* the gradient outlives the step's scope */
    nb_tensor *g = nb_grad(w);
    ck_assert_values(g, 1e-6, 2, 4, 6);
    ck_assert_int_eq(nb_free(g), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_free", "nb_zero_grad");
    ck_assert_ok(nb_zero_grad(w));
    ck_assert_int_eq(nb_is_valid(g), 0);
    ck_assert_ptr_null(nb_grad(w));
    nb_free(w);
    ck_assert_int_eq(live_tensors(), 0);
}
END_TEST

/* One SGD step of a small model pred = sum_j w2_j (x w1_j + b1_j)^2, built from binary ops only. */
static void train_step(nb_tensor *w1, nb_tensor *b1, nb_tensor *w2, nb_tensor *x, nb_tensor *y)
{
    nb_scope_begin();
    nb_tensor *h = nb_add(nb_mul(x, w1), b1);              /* (16, 8) */
    nb_tensor *pred = nb_sum_to(nb_mul(nb_mul(h, h), w2), 2, (const int64_t[]){16, 1});
    nb_tensor *err = nb_sub(pred, y);
    nb_tensor *loss = nb_div_scalar(nb_sum_to(nb_mul(err, err), 0, NULL), 16);
    ck_assert_ok(nb_backward(loss));
    nb_no_grad_begin();
    nb_tensor *params[3] = {w1, b1, w2};
    for (int i = 0; i < 3; i++) {
        ck_assert_ok(nb_copy_(params[i], nb_sub(params[i], nb_mul_scalar(nb_grad(params[i]), 1e-3))));
        nb_zero_grad(params[i]);
    }
    nb_no_grad_end();
    nb_scope_end();
}

START_TEST(ten_thousand_steps_keep_memory_flat)
{
    nb_generator g;
    nb_generator_seed(&g, 7);
    nb_tensor *w1 = nb_randn(NB_SHAPE(1, 8), 0, 0.5, NB_F32, &g);
    nb_tensor *b1 = nb_zeros(NB_SHAPE(8), NB_F32);
    nb_tensor *w2 = nb_randn(NB_SHAPE(8), 0, 0.5, NB_F32, &g);
    nb_tensor *x = nb_randn(NB_SHAPE(16, 1), 0, 1, NB_F32, &g);
    nb_tensor *y = nb_randn(NB_SHAPE(16, 1), 0, 1, NB_F32, &g);
    nb_set_requires_grad(w1, true);
    nb_set_requires_grad(b1, true);
    nb_set_requires_grad(w2, true);

    for (int i = 0; i < 100; i++) train_step(w1, b1, w2, x, y); /* warm the caches */
    nb_memory_stats warm = nb_memory_stats_get();
    nb_reset_peak_memory();
    for (int i = 0; i < 10000; i++) train_step(w1, b1, w2, x, y);
    nb_memory_stats after = nb_memory_stats_get();

    ck_assert_int_eq(after.live_tensors, warm.live_tensors); /* the 5 user tensors, nothing else */
    ck_assert_int_eq(after.live_tensors, 5);
    ck_assert_int_eq(after.live_bytes, warm.live_bytes);
    ck_assert_int_eq(after.cached_bytes, warm.cached_bytes);
    ck_assert_int_eq(after.system_allocs, warm.system_allocs); /* steady state: no malloc at all */
    ck_assert_int_le(after.peak_live_bytes, warm.live_bytes + 64 * 1024);
    nb_free(w1), nb_free(b1), nb_free(w2), nb_free(x), nb_free(y);
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, 0);
}
END_TEST

START_TEST(release_cached_memory_empties_this_threads_cache)
{
    nb_scope_begin();
    nb_zeros(NB_SHAPE(1024, 64), NB_F32);
    nb_scope_end();
    ck_assert_int_gt(nb_memory_stats_get().cached_bytes, 0);
    nb_release_cached_memory();
    ck_assert_int_eq(nb_memory_stats_get().cached_bytes, 0);
}
END_TEST

/* Two threads train their own copies of a model; each must match a run on one thread. */
typedef struct worker {
    uint64_t seed;
    double result;
    int64_t scope_depth_seen;
} worker;

static double train_small(uint64_t seed)
{
    nb_generator g;
    nb_generator_seed(&g, seed);
    nb_tensor *w = nb_randn(NB_SHAPE(4), 0, 1, NB_F64, &g);
    nb_tensor *x = nb_randn(NB_SHAPE(4), 0, 1, NB_F64, &g);
    nb_set_requires_grad(w, true);
    for (int i = 0; i < 500; i++) {
        nb_scope_begin();
        nb_tensor *d = nb_sub(nb_mul(w, x), x);
        nb_backward(nb_sum_to(nb_mul(d, d), 0, NULL));
        nb_no_grad_begin();
        nb_copy_(w, nb_sub(w, nb_mul_scalar(nb_grad(w), 0.01)));
        nb_no_grad_end();
        nb_zero_grad(w);
        nb_scope_end();
    }
    double v = nb_get_flat(w, 0) + 10 * nb_get_flat(w, 3);
    nb_free(w);
    nb_free(x);
    return v;
}

static void *worker_main(void *arg)
{
    worker *wk = arg;
    wk->result = train_small(wk->seed);
    wk->scope_depth_seen = nb_scope_depth();
    return NULL;
}

START_TEST(threads_have_independent_scopes_and_state)
{
    double expect1 = train_small(1), expect2 = train_small(2);
    worker a = {1, 0, -1}, b = {2, 0, -1};
    pthread_t ta, tb;
    nb_scope_begin(); /* a scope open on the main thread is invisible to the workers */
    pthread_create(&ta, NULL, worker_main, &a);
    pthread_create(&tb, NULL, worker_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    nb_scope_end();
    ck_assert_double_eq(a.result, expect1);
    ck_assert_double_eq(b.result, expect2);
    ck_assert_int_eq(a.scope_depth_seen, 0);
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, 0);
}
END_TEST

/* Tensors made on one thread and freed on another (a loader handing batches to the trainer): the freeing
 * thread's cache of blocks it never reuses stays bounded (twice the peak of live bytes plus 64 MiB). */
typedef struct batch_maker {
    nb_tensor *made[50];
} batch_maker;

static void *make_batches(void *arg)
{
    batch_maker *m = arg;
    for (int i = 0; i < 50; i++) m->made[i] = nb_ones(NB_SHAPE(256, 256), NB_F32); /* 256 KiB each */
    return NULL;
}

START_TEST(freeing_another_threads_tensors_keeps_the_cache_bounded)
{
    nb_release_cached_memory();
    nb_reset_peak_memory();
    for (int round = 0; round < 40; round++) { /* 2000 batches, 500 MiB in all */
        batch_maker m;
        pthread_t t;
        pthread_create(&t, NULL, make_batches, &m);
        pthread_join(t, NULL);
        for (int i = 0; i < 50; i++) {
            ck_assert_double_eq(nb_get_flat(m.made[i], 7), 1);
            nb_free(m.made[i]);
        }
    }
    nb_memory_stats ms = nb_memory_stats_get();
    ck_assert_int_eq(ms.live_tensors, 0);
    ck_assert_int_le(ms.cached_bytes, 2 * ms.peak_live_bytes + ((int64_t)64 << 20));
    nb_release_cached_memory();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("memory");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, unscoped_tensors_belong_to_the_caller);
    tcase_add_test(tc, scope_end_frees_everything_created_inside);
    tcase_add_test(tc, scopes_nest_and_keep_moves_one_level_out);
    tcase_add_test(tc, stale_handles_are_reported_not_read);
    tcase_add_test(tc, double_free_is_reported);
    tcase_add_test(tc, scope_end_without_begin_is_an_error);
    tcase_add_test(tc, early_free_inside_a_scope);
    tcase_add_test(tc, a_kept_result_keeps_its_graph_alive);
    tcase_add_test(tc, gradients_are_owned_by_their_tensor);
    tcase_add_test(tc, ten_thousand_steps_keep_memory_flat);
    tcase_add_test(tc, release_cached_memory_empties_this_threads_cache);
    tcase_add_test(tc, threads_have_independent_scopes_and_state);
    tcase_add_test(tc, freeing_another_threads_tensors_keeps_the_cache_bounded);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
