/* nb_dist.h in a world of one process, in every build: without MPI, and with MPI but started without mpirun (then
 * the collectives really go through MPI with one rank). The tests with two ranks are in dist_ranks.c.
 * NB_TEST_HAVE_MPI tells which build this is. */
#include "helpers.h"

#include "dist_internal.h"

#ifndef NB_TEST_HAVE_MPI
#define NB_TEST_HAVE_MPI 0
#endif

/* Two parameters with gradients (f32 and f64), one without, a frozen one and a buffer. */
typedef struct small_model {
    nb_tensor *a, *b, *unused, *frozen, *buffer;
    nb_param_list *params;
} small_model;

static void small_model_init(small_model *m)
{
    m->a = nb_from_array((float[]){1, 2, 3}, 1, (int64_t[]){3}, NB_F32);
    m->b = nb_from_array((double[]){4, 5, 6, 7}, 2, (int64_t[]){2, 2}, NB_F64);
    m->unused = nb_zeros(NB_SHAPE(2), NB_F32);
    m->frozen = nb_ones(NB_SHAPE(2), NB_F64);
    m->buffer = nb_full(NB_SHAPE(2), 9, NB_I64);
    ck_assert_ok(nb_set_requires_grad(m->a, true));
    ck_assert_ok(nb_set_requires_grad(m->b, true));
    ck_assert_ok(nb_set_requires_grad(m->unused, true));
    m->params = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(m->params, "a", m->a, false));
    ck_assert_ok(nb_param_list_add(m->params, "b", m->b, false));
    ck_assert_ok(nb_param_list_add(m->params, "unused", m->unused, false));
    ck_assert_ok(nb_param_list_add(m->params, "frozen", m->frozen, false));
    ck_assert_ok(nb_param_list_add(m->params, "buffer", m->buffer, true));
    /* loss = sum(a * a) + sum(3 * b): grad a = 2a, grad b = 3 */
    nb_scope_begin();
    nb_tensor *loss = nb_add(nb_sum(nb_mul(m->a, m->a), 0, NULL, false),
                             nb_sum(nb_mul(m->b, nb_full(NB_SHAPE(2, 2), 3, NB_F64)), 0, NULL, false));
    ck_assert_ok(nb_backward(loss));
    nb_scope_end();
}

static void small_model_free(small_model *m)
{
    nb_param_list_free(m->params);
    nb_free(m->a);
    nb_free(m->b);
    nb_free(m->unused);
    nb_free(m->frozen);
    nb_free(m->buffer);
}

/* Every value of the small model as small_model_init left it. */
static void assert_small_model_unchanged(const small_model *m)
{
    for (int i = 0; i < 3; i++) {
        ck_assert_double_eq(nb_get_flat(m->a, i), i + 1);
        ck_assert_double_eq(nb_get_flat(nb_grad(m->a), i), 2 * (i + 1));
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_double_eq(nb_get_flat(m->b, i), i + 4);
        ck_assert_double_eq(nb_get_flat(nb_grad(m->b), i), 3);
    }
    ck_assert_ptr_null(nb_grad(m->unused)); /* no rank computed one: it gets none */
    ck_assert_ptr_null(nb_grad(m->frozen));
    ck_assert_double_eq(nb_get_flat(m->buffer, 1), 9);
}

/* Check runs each test in a child process of its own unless CK_FORK=no; MPI cannot be started again in a process
 * once finalized, and nb_dist_abort ends the process, so those tests need the fork. */
static bool forked(void)
{
    const char *mode = getenv("CK_FORK");
    return !mode || strcmp(mode, "no") != 0;
}

/* The collectives of a world of one leave everything as it is. */
static void check_identity(void)
{
    small_model m;
    small_model_init(&m);
    ck_assert_ok(nb_dist_broadcast_params(m.params, 0));
    assert_small_model_unchanged(&m);
    ck_assert_ok(nb_dist_allreduce_grads(m.params));
    assert_small_model_unchanged(&m);
    ck_assert_ok(nb_dist_set_bucket_bytes(8)); /* one bucket per parameter */
    ck_assert_ok(nb_dist_allreduce_grads(m.params));
    assert_small_model_unchanged(&m);
    double v[3] = {1.5, -2, 7};
    ck_assert_ok(nb_dist_allreduce_sum(v, 3));
    ck_assert_ok(nb_dist_allreduce_max(v, 3));
    ck_assert(v[0] == 1.5 && v[1] == -2 && v[2] == 7);
    ck_assert_ok(nb_dist_allreduce_sum(NULL, 0));
    ck_assert_ok(nb_dist_barrier());
    char text[6] = "hello";
    ck_assert_ok(nb_dist_broadcast(text, sizeof text, 0));
    ck_assert_str_eq(text, "hello");
    ck_assert_ok(nb_dist_broadcast(NULL, 0, 0));
    small_model_free(&m);
}

START_TEST(world_of_one_before_init)
{
    ck_assert(nb_dist_available() == (bool)NB_TEST_HAVE_MPI);
    ck_assert_int_eq(nb_dist_rank(), 0);
    ck_assert_int_eq(nb_dist_world_size(), 1);
    ck_assert(nb_dist_is_main());
    check_identity();
    nb_dist_stats s = nb_dist_stats_get();
    ck_assert_int_eq(s.allreduce_calls, 0); /* nothing was sent */
    ck_assert_ok(nb_dist_finalize());        /* never started: nothing to do */
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, 0);
}
END_TEST

START_TEST(world_of_one_after_init)
{
    int argc = 1;
    char *args[] = {"test_dist", NULL}, **argv = args;
    ck_assert_ok(nb_dist_init(&argc, &argv));
    ck_assert_int_eq(nb_dist_init(NULL, NULL), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_dist_init", "already");
    ck_assert_int_eq(nb_dist_rank(), 0);
    ck_assert_int_eq(nb_dist_world_size(), 1);
    ck_assert(nb_dist_is_main());
    check_identity();
    nb_dist_stats s = nb_dist_stats_get();
    /* With MPI a world of one sends only the three metric reductions (an empty one included) to itself: the
     * gradients' mean over one rank is the gradients, so they are not sent; without MPI nothing is sent. */
    if (NB_TEST_HAVE_MPI) {
        ck_assert_int_eq(s.allreduce_calls, 3);
        ck_assert_int_gt(s.allreduce_bytes, 0);
    } else {
        ck_assert_int_eq(s.allreduce_calls, 0);
    }
    ck_assert(s.comm_seconds >= 0);
    ck_assert_ok(nb_dist_finalize());
    ck_assert_ok(nb_dist_finalize());
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, 0);
}
END_TEST

START_TEST(argument_errors)
{
    small_model m;
    small_model_init(&m);
    ck_assert_int_eq(nb_dist_broadcast_params(NULL, 0), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_dist_broadcast_params", "params");
    ck_assert_int_eq(nb_dist_broadcast_params(m.params, 1), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_dist_broadcast_params", "root 1", "1 rank");
    ck_assert_int_eq(nb_dist_broadcast_params(m.params, -1), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_dist_broadcast_params", "root -1");
    ck_assert_int_eq(nb_dist_allreduce_grads(NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_dist_allreduce_grads", "params");
    char byte = 1;
    ck_assert_int_eq(nb_dist_broadcast(NULL, 4, 0), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_dist_broadcast", "data");
    ck_assert_int_eq(nb_dist_broadcast(&byte, 1, 1), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_dist_broadcast", "root 1", "1 rank");
    ck_assert_int_eq(nb_dist_broadcast(&byte, 1, -2), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_dist_broadcast", "root -2");
    ck_assert_int_eq(byte, 1);
    double v[2] = {0, 0};
    ck_assert_int_eq(nb_dist_allreduce_sum(NULL, 2), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_dist_allreduce_sum", "values");
    ck_assert_int_eq(nb_dist_allreduce_max(v, -1), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_dist_allreduce_max", "-1");
    /* a tensor of the list freed behind the list's back */
    nb_tensor *gone = nb_zeros(NB_SHAPE(2), NB_F32);
    ck_assert_ok(nb_param_list_add(m.params, "gone", gone, false));
    nb_free(gone);
    ck_assert_int_eq(nb_dist_allreduce_grads(m.params), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_dist_allreduce_grads", "gone");
    ck_assert_int_eq(nb_dist_broadcast_params(m.params, 0), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_dist_broadcast_params", "gone");
    small_model_free(&m);
}
END_TEST

START_TEST(timeout_and_bucket_settings)
{
    unsetenv("NABLA_DIST_TIMEOUT");
    unsetenv("NABLA_DIST_BUCKET_BYTES");
    nbd_settings_reset();
    ck_assert_double_eq(nb_dist_timeout(), 300);
    ck_assert_uint_eq(nb_dist_bucket_bytes(), 4u << 20);
    ck_assert_int_eq(nb_dist_set_timeout(0), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_dist_set_timeout", "got 0");
    ck_assert_int_eq(nb_dist_set_timeout(-3), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_dist_set_timeout", "-3");
    ck_assert_int_eq(nb_dist_set_timeout(NAN), NB_ERR_ARG);
    ck_assert_int_eq(nb_dist_set_timeout(INFINITY), NB_ERR_ARG);
    ck_assert_double_eq(nb_dist_timeout(), 300); /* a failed call changes nothing */
    ck_assert_ok(nb_dist_set_timeout(2.5));
    ck_assert_double_eq(nb_dist_timeout(), 2.5);
    ck_assert_int_eq(nb_dist_set_bucket_bytes(0), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_dist_set_bucket_bytes", "0");
    ck_assert_ok(nb_dist_set_bucket_bytes(1000));
    ck_assert_uint_eq(nb_dist_bucket_bytes(), 1000);

    /* the environment gives the defaults; unusable values are ignored (with a line on stderr) */
    setenv("NABLA_DIST_TIMEOUT", "7.5", 1);
    setenv("NABLA_DIST_BUCKET_BYTES", "65536", 1);
    nbd_settings_reset();
    ck_assert_double_eq(nb_dist_timeout(), 7.5);
    ck_assert_uint_eq(nb_dist_bucket_bytes(), 65536);
    setenv("NABLA_DIST_TIMEOUT", "soon", 1);
    setenv("NABLA_DIST_BUCKET_BYTES", "-5", 1);
    nbd_settings_reset();
    ck_assert_double_eq(nb_dist_timeout(), 300);
    ck_assert_uint_eq(nb_dist_bucket_bytes(), 4u << 20);
    unsetenv("NABLA_DIST_TIMEOUT");
    unsetenv("NABLA_DIST_BUCKET_BYTES");
    nbd_settings_reset();
}
END_TEST

START_TEST(dist_batch_iter_is_shard_zero_of_one)
{
    nb_generator g;
    nb_generator_seed(&g, 4);
    nb_tensor *x = nb_randn(NB_SHAPE(11, 2), 0, 1, NB_F32, &g), *y = nb_randint(NB_SHAPE(11), 0, 3, &g);
    nb_batch_iter *d = nb_dist_batch_iter_new(x, y, 4, true, false, 9), *p = nb_batch_iter_new(x, y, 4, true, false, 9);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(nb_batch_iter_batches_per_epoch(d), 3);
    for (int e = 0; e < 2; e++) {
        nb_tensor *xd, *yd, *xp, *yp;
        int batches = 0;
        while (nb_batch_iter_next(d, &xd, &yd)) {
            ck_assert(nb_batch_iter_next(p, &xp, &yp));
            ck_assert_int_eq(nb_numel(xd), nb_numel(xp));
            for (int64_t i = 0; i < nb_numel(xd); i++) ck_assert(nb_get_flat(xd, i) == nb_get_flat(xp, i));
            for (int64_t i = 0; i < nb_numel(yd); i++) ck_assert(nb_get_flat(yd, i) == nb_get_flat(yp, i));
            nb_free(xd);
            nb_free(yd);
            nb_free(xp);
            nb_free(yp);
            batches++;
        }
        ck_assert_int_eq(batches, 3);
        ck_assert(!nb_batch_iter_next(p, &xp, &yp));
    }
    nb_batch_iter_free(d);
    nb_batch_iter_free(p);
    ck_assert_ptr_null(nb_dist_batch_iter_new(x, y, 0, true, false, 9));
    ck_assert_error(NB_ERR_ARG, "nb_batch_iter_new", "batch_size");
    nb_free(x);
    nb_free(y);
}
END_TEST

/* The tape's leaf-ready hook (what nb_dist_backward builds on): each leaf that requires grad is reported once,
 * after its last consumer delivered, so its .grad already holds the final value of the pass. */
typedef struct ready_log {
    int graph_known; /* calls with leaf NULL, made before any leaf's */
    bool reached[5]; /* nbi_leaf_reached of the watched tensors at that call */
    nb_tensor *watch[5];
    int n;
    nbi_tensor *leaf[8];
    double first_grad[8]; /* element 0 of .grad when reported */
} ready_log;

static void log_ready(nbi_tensor *leaf, void *ctx)
{
    ready_log *log = ctx;
    if (!leaf) {
        ck_assert_int_eq(log->n, 0);
        log->graph_known++;
        for (int i = 0; i < 5; i++) log->reached[i] = nbi_leaf_reached(nbi_peek(log->watch[i]));
        return;
    }
    ck_assert_int_eq(log->graph_known, 1);
    ck_assert_int_lt(log->n, 8);
    log->leaf[log->n] = leaf;
    log->first_grad[log->n] = leaf->grad ? nbi_get_flat(leaf->grad, 0) : NAN;
    log->n++;
}

static int logged(const ready_log *log, const nb_tensor *t)
{
    int at = -1, count = 0;
    for (int i = 0; i < log->n; i++)
        if (log->leaf[i] == nbi_peek(t)) at = i, count++;
    ck_assert_int_le(count, 1);
    return at;
}

START_TEST(leaf_ready_hook_fires_when_the_gradient_is_final)
{
    nb_tensor *a = nbt_leaf(NB_SHAPE(2, 3), 1), *b = nbt_leaf(NB_SHAPE(3), 2), *c = nbt_leaf(NB_SHAPE(3), 3);
    nb_tensor *x = nbt_leaf(NB_SHAPE(2, 3), 4), *unused = nbt_leaf(NB_SHAPE(1), 5);
    ck_assert_ok(nb_set_requires_grad(x, false));
    ready_log log = {.watch = {a, b, c, x, unused}};
    nbi_set_leaf_ready_hook(log_ready, &log);
    for (int pass = 0; pass < 2; pass++) { /* the second pass accumulates: reported after the sum */
        log.n = 0;
        log.graph_known = 0;
        nb_scope_begin();
        /* a is used twice (first and last op of the forward), b once near the output, c once in the middle */
        nb_tensor *h = nb_tanh(nb_mul(a, x));
        nb_tensor *k = nb_mul(nb_add(h, c), b);
        nb_tensor *loss = nb_sum(nb_mul(k, a), 0, NULL, false);
        ck_assert_ok(nb_backward(loss));
        nb_scope_end();
        ck_assert_int_eq(log.n, 3); /* a, b, c; not x (no grad), not unused (not in the graph) */
        ck_assert_int_eq(log.graph_known, 1);
        ck_assert(log.reached[0] && log.reached[1] && log.reached[2] && !log.reached[3] && !log.reached[4]);
        int ia = logged(&log, a), ib = logged(&log, b), ic = logged(&log, c);
        ck_assert(ia >= 0 && ib >= 0 && ic >= 0);
        ck_assert_int_lt(ib, ic); /* b's only use is nearer the output than c's */
        ck_assert_int_eq(ia, 2);  /* a's last consumer (the first op) runs last */
        ck_assert_double_eq(log.first_grad[ia], nb_get_flat(nb_grad(a), 0));
        ck_assert_double_eq(log.first_grad[ib], nb_get_flat(nb_grad(b), 0));
        ck_assert_double_eq(log.first_grad[ic], nb_get_flat(nb_grad(c), 0));
    }
    /* nb_grad_of leaves .grad alone and reports nothing */
    log.n = 0;
    log.graph_known = 0;
    nb_scope_begin();
    nb_tensor *ga;
    ck_assert_ok(nb_grad_of(nb_sum(nb_mul(a, a), 0, NULL, false), NULL, 1, &a, &ga, 0));
    nb_scope_end();
    ck_assert_int_eq(log.n, 0);
    ck_assert_int_eq(log.graph_known, 0);
    /* off */
    nbi_set_leaf_ready_hook(NULL, NULL);
    nb_scope_begin();
    ck_assert_ok(nb_backward(nb_sum(b, 0, NULL, false)));
    nb_scope_end();
    ck_assert_int_eq(log.n, 0);
    ck_assert_int_eq(log.graph_known, 0);
    nb_tensor *all[] = {a, b, c, x, unused};
    for (int i = 0; i < 5; i++) nb_free(all[i]);
}
END_TEST

START_TEST(dist_backward_in_a_world_of_one_is_backward)
{
    for (int init = 0; init < 2; init++) {
        if (init && !forked()) {
            fprintf(stderr, "dist_backward_in_a_world_of_one_is_backward: after init SKIPPED under CK_FORK=no\n");
            break;
        }
        if (init) ck_assert_ok(nb_dist_init(NULL, NULL));
        small_model m;
        small_model_init(&m); /* grads from nb_backward */
        nb_tensor *ga = nb_clone(nb_grad(m.a)), *gb = nb_clone(nb_grad(m.b));
        nb_param_list_zero_grad(m.params);
        ck_assert_ok(nb_dist_set_bucket_bytes(init ? 8 : 4u << 20));
        nb_scope_begin();
        nb_tensor *loss = nb_add(nb_sum(nb_mul(m.a, m.a), 0, NULL, false),
                                 nb_sum(nb_mul(m.b, nb_full(NB_SHAPE(2, 2), 3, NB_F64)), 0, NULL, false));
        ck_assert_ok(nb_dist_backward(loss, m.params));
        nb_scope_end();
        for (int i = 0; i < 3; i++) ck_assert_double_eq(nb_get_flat(nb_grad(m.a), i), nb_get_flat(ga, i));
        for (int i = 0; i < 4; i++) ck_assert_double_eq(nb_get_flat(nb_grad(m.b), i), nb_get_flat(gb, i));
        ck_assert_ptr_null(nb_grad(m.unused));
        ck_assert_ptr_null(nb_grad(m.frozen));

        /* errors: the function is named, and backward does not run */
        nb_param_list_zero_grad(m.params);
        nb_scope_begin();
        loss = nb_sum(nb_mul(m.a, m.a), 0, NULL, false);
        ck_assert_int_eq(nb_dist_backward(loss, NULL), NB_ERR_NULL);
        ck_assert_error(NB_ERR_NULL, "nb_dist_backward", "params");
        ck_assert_ptr_null(nb_grad(m.a));
        nb_clear_error(); /* a NULL loss keeps the error of the op that failed first, if any */
        ck_assert_int_eq(nb_dist_backward(NULL, m.params), NB_ERR_NULL);
        ck_assert_error(NB_ERR_NULL, "nb_dist_backward", "loss");
        /* backward's own errors come through */
        ck_assert_int_eq(nb_dist_backward(nb_mul(m.a, m.a), m.params), NB_ERR_SHAPE);
        ck_assert_error(NB_ERR_SHAPE, "nb_backward", "(3)");
        nb_scope_end();
        nb_free(ga);
        nb_free(gb);
        small_model_free(&m);
    }
    if (forked()) ck_assert_int_eq(nb_dist_stats_get().allreduce_calls, 0); /* a world of one sends no gradients */
    ck_assert_ok(nb_dist_finalize());
}
END_TEST

START_TEST(abort_exits_with_the_code)
{
    /* Check runs each test in its own process: nb_dist_abort ends it with the code (see tcase_add_exit_test). */
    nb_dist_abort(3, "stopping on purpose");
}
END_TEST

START_TEST(comm_status_has_a_name)
{
    ck_assert_str_eq(nb_status_name(NB_ERR_COMM), "NB_ERR_COMM");
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("world_of_one");
    tcase_add_test(tc, world_of_one_before_init);
    tcase_add_test(tc, world_of_one_after_init);
    tcase_add_test(tc, argument_errors);
    tcase_add_test(tc, timeout_and_bucket_settings);
    tcase_add_test(tc, dist_batch_iter_is_shard_zero_of_one);
    tcase_add_test(tc, leaf_ready_hook_fires_when_the_gradient_is_final);
    tcase_add_test(tc, dist_backward_in_a_world_of_one_is_backward);
    if (forked()) tcase_add_exit_test(tc, abort_exits_with_the_code, 3);
    tcase_add_test(tc, comm_status_has_a_name);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
