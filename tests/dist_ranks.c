/* nb_dist.h with 2 ranks: run as `mpirun -np 2 dist_ranks` (tests/meson.build, suite 'dist').
 *
 * Without arguments it runs the Check suite below in every rank, in one process per rank (CK_NOFORK: MPI does not
 * survive fork), with the tests in the same order everywhere so that their collectives match. Only rank 0 prints
 * Check's output; another rank reports its own failures on stderr, without a summary line, so that CI counts each
 * check once. A failure on any rank ends the whole job with a non-zero exit (nb_dist_abort).
 *
 * `dist_ranks timeout` and `dist_ranks die` are the failure scenarios that tests/dist_timeout.sh drives: rank 1
 * stops answering (sleeps) or exits, and the job must end within seconds rather than hang. */
#include "helpers.h"

#include "dist_internal.h"

#include <time.h>
#include <unistd.h>

static int rank;

/* ------------------------------------------------------------------------------------------------
 * Equivalence: 2 ranks at batch B train exactly like one process at batch 2B
 * ---------------------------------------------------------------------------------------------- */
#define IN 8
#define HIDDEN 16
#define OUT 3
#define ROWS 24
#define BATCH 4 /* per rank; the single process uses 2 * BATCH */

typedef struct mlp {
    nb_tensor *w1, *b1, *w2, *b2;
    nb_param_list *params;
    nb_optimizer *opt;
} mlp;

static nb_tensor *leaf(int ndim, const int64_t *shape, double std, nb_generator *g)
{
    nb_tensor *t = nb_randn(ndim, shape, 0, std, NB_F64, g);
    ck_assert_tensor(t);
    ck_assert_ok(nb_set_requires_grad(t, true));
    return t;
}

static void mlp_init(mlp *m, uint64_t seed)
{
    nb_generator g;
    nb_generator_seed(&g, seed);
    m->w1 = leaf(NB_SHAPE(IN, HIDDEN), 0.4, &g);
    m->b1 = leaf(NB_SHAPE(HIDDEN), 0.1, &g);
    m->w2 = leaf(NB_SHAPE(HIDDEN, OUT), 0.4, &g);
    m->b2 = leaf(NB_SHAPE(OUT), 0.1, &g);
    m->params = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(m->params, "fc1.weight", m->w1, false));
    ck_assert_ok(nb_param_list_add(m->params, "fc1.bias", m->b1, false));
    ck_assert_ok(nb_param_list_add(m->params, "fc2.weight", m->w2, false));
    ck_assert_ok(nb_param_list_add(m->params, "fc2.bias", m->b2, false));
    nb_adam_options o = nb_adam_defaults();
    o.lr = 0.05;
    m->opt = nb_adam_new(m->params, o);
    ck_assert_ptr_nonnull(m->opt);
}

static void mlp_free(mlp *m)
{
    nb_optimizer_free(m->opt);
    nb_param_list_free(m->params);
    nb_free(m->w1);
    nb_free(m->b1);
    nb_free(m->w2);
    nb_free(m->b2);
}

/* How a step gets its gradients: one process alone, or averaged over the ranks after backward or during it. */
typedef enum { LOCAL, ALLREDUCE, DIST_BACKWARD } grad_mode;

/* One step on the iterator's next batch (starting the next epoch when this one is over). */
static void mlp_step(mlp *m, nb_batch_iter *it, grad_mode mode)
{
    nb_scope_begin();
    nb_tensor *xb, *yb;
    if (!nb_batch_iter_next(it, &xb, &yb)) ck_assert(nb_batch_iter_next(it, &xb, &yb));
    nb_tensor *h = nb_relu(nb_add(nb_matmul(xb, m->w1), m->b1));
    nb_tensor *loss = nb_cross_entropy(nb_add(nb_matmul(h, m->w2), m->b2), yb, NULL);
    ck_assert_tensor(loss);
    nb_optimizer_zero_grad(m->opt);
    if (mode == DIST_BACKWARD) {
        ck_assert_ok(nb_dist_backward(loss, m->params));
    } else {
        ck_assert_ok(nb_backward(loss));
        if (mode == ALLREDUCE) ck_assert_ok(nb_dist_allreduce_grads(m->params));
    }
    ck_assert_ok(nb_optimizer_step(m->opt));
    nb_scope_end();
}

static void make_data(nb_tensor **x, nb_tensor **y)
{
    nb_generator g;
    nb_generator_seed(&g, 7); /* the same data set on every rank */
    *x = nb_randn(NB_SHAPE(ROWS, IN), 0, 1, NB_F64, &g);
    *y = nb_randint(NB_SHAPE(ROWS), 0, OUT, &g);
}

START_TEST(two_ranks_at_batch_b_equal_one_process_at_2b)
{
    grad_mode mode = _i ? DIST_BACKWARD : ALLREDUCE; /* loop test: both ways of averaging */
    nb_tensor *x, *y;
    make_data(&x, &y);
    /* Each rank starts from different weights; the broadcast makes them rank 0's. */
    mlp m, ref;
    mlp_init(&m, 100 + (uint64_t)rank);
    ck_assert_ok(nb_dist_broadcast_params(m.params, 0));
    nb_batch_iter *it = nb_dist_batch_iter_new(x, y, BATCH, true, false, 31);
    ck_assert_int_eq(nb_batch_iter_batches_per_epoch(it), ROWS / (2 * BATCH));
    /* The reference, computed by each rank on its own: one process, batch 2B, rank 0's initial weights. */
    mlp_init(&ref, 100);
    nb_batch_iter *ref_it = nb_batch_iter_new(x, y, 2 * BATCH, true, false, 31);
    const int steps = 5; /* more than an epoch: the next epoch's reshuffle must agree too */
    for (int s = 0; s < steps; s++) {
        mlp_step(&m, it, mode);
        mlp_step(&ref, ref_it, LOCAL);
    }
    double worst = 0;
    for (int i = 0; i < m.params->count; i++) {
        nb_tensor *a = m.params->items[i].tensor, *b = ref.params->items[i].tensor;
        for (int64_t e = 0; e < nb_numel(a); e++) {
            double va = nb_get_flat(a, e), vb = nb_get_flat(b, e);
            double rel = fabs(va - vb) / fmax(1e-3, fabs(vb));
            if (rel > worst) worst = rel;
        }
    }
    ck_assert_msg(worst <= 1e-9, "rank %d, mode %d: parameters differ from the single process by %g (relative)", rank,
                  (int)mode, worst);
    /* ... and the training moved them, so the comparison means something */
    ck_assert(fabs(nb_get_flat(m.w1, 0) - nb_get_flat(ref.w1, 0)) < 1e-6);
    mlp probe;
    mlp_init(&probe, 100);
    ck_assert(fabs(nb_get_flat(probe.w1, 0) - nb_get_flat(m.w1, 0)) > 1e-3);
    mlp_free(&probe);
    /* the ranks' copies are bit-identical: the sum over ranks of every value is twice this rank's */
    for (int i = 0; i < m.params->count; i++) {
        nb_tensor *a = m.params->items[i].tensor;
        for (int64_t e = 0; e < nb_numel(a); e++) {
            double v[1] = {nb_get_flat(a, e)};
            ck_assert_ok(nb_dist_allreduce_sum(v, 1));
            ck_assert(v[0] == 2 * nb_get_flat(a, e));
        }
    }
    nb_batch_iter_free(it);
    nb_batch_iter_free(ref_it);
    mlp_free(&m);
    mlp_free(&ref);
    nb_free(x);
    nb_free(y);
}
END_TEST

START_TEST(training_loop_allocates_nothing_per_step)
{
    nb_tensor *x, *y;
    make_data(&x, &y);
    mlp m;
    mlp_init(&m, 5);
    ck_assert_ok(nb_dist_broadcast_params(m.params, 0));
    nb_batch_iter *it = nb_dist_batch_iter_new(x, y, BATCH, true, false, 3);
    grad_mode mode = _i ? DIST_BACKWARD : ALLREDUCE;
    for (int s = 0; s < 20; s++) mlp_step(&m, it, mode);
    nb_memory_stats warm = nb_memory_stats_get();
    for (int s = 0; s < 60; s++) mlp_step(&m, it, mode);
    nb_memory_stats now = nb_memory_stats_get();
    ck_assert_int_eq(now.system_allocs, warm.system_allocs);
    ck_assert_int_eq(now.live_tensors, warm.live_tensors);
    ck_assert_int_eq(now.live_bytes, warm.live_bytes);
    nb_batch_iter_free(it);
    mlp_free(&m);
    nb_free(x);
    nb_free(y);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Values of the collectives
 * ---------------------------------------------------------------------------------------------- */
/* Trainable: p0, p2, p4 (f32) and p1, p3 (f64), in that list order. Gradient of p_i on rank r, element e:
 * (r + 1) * (i + 1) + e / 4 (exact in f32), except that p2 gets none on rank 1 and p3 none anywhere. */
typedef struct mixed {
    nb_tensor *p[5], *frozen, *buffer;
    nb_param_list *params;
} mixed;

static const int mixed_numel[5] = {3, 6, 5, 1, 4};

static void mixed_init(mixed *m)
{
    const int order[5] = {0, 2, 4, 1, 3};
    m->params = nb_param_list_new();
    for (int k = 0; k < 5; k++) {
        int i = order[k];
        m->p[i] = nb_full(1, (int64_t[]){mixed_numel[i]}, 0.5, (i == 1 || i == 3) ? NB_F64 : NB_F32);
        ck_assert_ok(nb_set_requires_grad(m->p[i], true));
        char name[8];
        snprintf(name, sizeof name, "p%d", i);
        ck_assert_ok(nb_param_list_add(m->params, name, m->p[i], false));
    }
    m->frozen = nb_full(NB_SHAPE(2), 1, NB_F32);
    m->buffer = nb_full(NB_SHAPE(2), 2, NB_F64);
    ck_assert_ok(nb_param_list_add(m->params, "frozen", m->frozen, false));
    ck_assert_ok(nb_param_list_add(m->params, "buffer", m->buffer, true));
}

/* The loss of mixed_backward's gradients; p2 is not in rank 1's graph at all, p3 in nobody's. */
static void mixed_backward_ex(mixed *m, bool dist)
{
    nb_param_list_zero_grad(m->params);
    nb_scope_begin();
    nb_tensor *loss = NULL;
    for (int i = 0; i < 5; i++) {
        if (i == 3 || (i == 2 && rank == 1)) continue;
        nb_tensor *c = nb_arange(0, mixed_numel[i], 1, nb_dtype_of(m->p[i]));
        c = nb_add(nb_mul(c, nb_scalar(0.25, nb_dtype_of(c))), nb_scalar((rank + 1) * (i + 1), nb_dtype_of(c)));
        nb_tensor *term = nb_sum(nb_mul(m->p[i], c), 0, NULL, false);
        if (term && nb_dtype_of(term) == NB_F32) term = nb_to_dtype(term, NB_F64);
        loss = loss ? nb_add(loss, term) : term;
    }
    ck_assert_ok(dist ? nb_dist_backward(loss, m->params) : nb_backward(loss));
    nb_scope_end();
}

static void mixed_backward(mixed *m) { mixed_backward_ex(m, false); }

static void mixed_check(const mixed *m)
{
    for (int i = 0; i < 5; i++) {
        nb_tensor *g = nb_grad(m->p[i]);
        if (i == 3) {
            ck_assert_ptr_null(g); /* no rank had a gradient: none, as in one process */
            continue;
        }
        ck_assert_msg(g != NULL, "rank %d: p%d has no gradient", rank, i);
        ck_assert_int_eq(nb_dtype_of(g), nb_dtype_of(m->p[i]));
        for (int e = 0; e < mixed_numel[i]; e++) {
            /* mean over ranks of (r + 1) * (i + 1) + e / 4; p2 only from rank 0, halved */
            double want = i == 2 ? (1.0 * (i + 1) + e / 4.0) / 2 : 1.5 * (i + 1) + e / 4.0;
            ck_assert_msg(nb_get_flat(g, e) == want, "rank %d: p%d grad[%d] = %.9g, expected %.9g", rank, i, e,
                          nb_get_flat(g, e), want);
        }
    }
    ck_assert_ptr_null(nb_grad(m->frozen));
    ck_assert_double_eq(nb_get_flat(m->buffer, 0), 2);
}

static void mixed_free(mixed *m)
{
    nb_param_list_free(m->params);
    for (int i = 0; i < 5; i++) nb_free(m->p[i]);
    nb_free(m->frozen);
    nb_free(m->buffer);
}

START_TEST(allreduce_grads_averages_in_buckets)
{
    mixed m;
    mixed_init(&m);
    /* default buckets: p0 p2 p4 share one (f32), p1 p3 the other (f64) */
    mixed_backward(&m);
    nb_dist_stats before = nb_dist_stats_get();
    ck_assert_ok(nb_dist_allreduce_grads(m.params));
    nb_dist_stats after = nb_dist_stats_get();
    mixed_check(&m);
    ck_assert_int_eq(after.allreduce_calls - before.allreduce_calls, 2);
    /* 12 f32 gradient values + 3 flags, 7 f64 values + 2 flags */
    ck_assert_int_eq(after.allreduce_bytes - before.allreduce_bytes, 15 * 4 + 9 * 8);
    ck_assert(after.comm_seconds >= before.comm_seconds);

    /* the plan and its buffers are reused: a second reduction allocates nothing */
    mixed_backward(&m);
    nb_memory_stats mem = nb_memory_stats_get();
    ck_assert_ok(nb_dist_allreduce_grads(m.params));
    ck_assert_int_eq(nb_memory_stats_get().system_allocs, mem.system_allocs);
    mixed_check(&m);

    /* 16-byte buckets: every parameter travels alone (p0: 3 values + 1 flag fills one exactly) */
    ck_assert_ok(nb_dist_set_bucket_bytes(16));
    mixed_backward(&m);
    before = nb_dist_stats_get();
    ck_assert_ok(nb_dist_allreduce_grads(m.params));
    after = nb_dist_stats_get();
    mixed_check(&m);
    ck_assert_int_eq(after.allreduce_calls - before.allreduce_calls, 5);
    ck_assert_ok(nb_dist_set_bucket_bytes(4u << 20));
    mixed_free(&m);
}
END_TEST

/* Gradients averaged during backward: the same values as after it, bit for bit with 2 ranks, whatever the buckets;
 * a parameter that this rank's graph lacks (p2 on rank 1) holds its bucket, and those after it, until the end. */
START_TEST(dist_backward_equals_backward_then_allreduce)
{
    mixed m;
    mixed_init(&m);
    const size_t sizes[3] = {4u << 20, 16, 40};
    for (int k = 0; k < 3; k++) {
        ck_assert_ok(nb_dist_set_bucket_bytes(sizes[k]));
        int64_t early = nbd_early_launches;
        nb_dist_stats before = nb_dist_stats_get();
        mixed_backward_ex(&m, true);
        mixed_check(&m);
        ck_assert_int_gt(nb_dist_stats_get().allreduce_calls, before.allreduce_calls);
        /* p3, last in the list, has the first bucket; no graph reaches it, so it is final from the start of
         * backward and does not hold back the buckets after it: all of them start from inside backward (with
         * 16-byte buckets, one per parameter: 5), on rank 1 too, whose graph lacks p2 as well */
        if (k == 1) ck_assert_int_eq(nbd_early_launches - early, 5);
        ck_assert_int_gt(nbd_early_launches, early);
    }

    /* an MLP: both ways give identical gradients */
    nb_tensor *x, *y;
    make_data(&x, &y);
    mlp a, b;
    mlp_init(&a, 11);
    mlp_init(&b, 11);
    for (int k = 0; k < 3; k++) {
        ck_assert_ok(nb_dist_set_bucket_bytes(sizes[k]));
        nb_scope_begin();
        nb_tensor *xb = nb_narrow(x, 0, 4 * rank, 4), *yb = nb_narrow(y, 0, 4 * rank, 4);
        nb_param_list_zero_grad(a.params);
        nb_param_list_zero_grad(b.params);
        nb_tensor *la = nb_cross_entropy(nb_add(nb_matmul(nb_relu(nb_add(nb_matmul(xb, a.w1), a.b1)), a.w2), a.b2), yb, NULL);
        nb_tensor *lb = nb_cross_entropy(nb_add(nb_matmul(nb_relu(nb_add(nb_matmul(xb, b.w1), b.b1)), b.w2), b.b2), yb, NULL);
        ck_assert_ok(nb_backward(la));
        ck_assert_ok(nb_dist_allreduce_grads(a.params));
        int64_t early = nbd_early_launches;
        ck_assert_ok(nb_dist_backward(lb, b.params));
        /* every bucket started from inside backward (with 16-byte buckets, one per parameter: 4) */
        ck_assert_int_eq(nbd_early_launches - early, k == 1 ? 4 : k == 0 ? 1 : nbd_early_launches - early);
        ck_assert_int_gt(nbd_early_launches, early);
        for (int i = 0; i < a.params->count; i++) {
            nb_tensor *ga = nb_grad(a.params->items[i].tensor), *gb = nb_grad(b.params->items[i].tensor);
            for (int64_t e = 0; e < nb_numel(ga); e++)
                ck_assert_msg(nb_get_flat(ga, e) == nb_get_flat(gb, e), "%s[%lld] differs",
                              a.params->items[i].name, (long long)e);
        }
        nb_scope_end();
    }
    ck_assert_ok(nb_dist_set_bucket_bytes(4u << 20));
    mlp_free(&a);
    mlp_free(&b);
    nb_free(x);
    nb_free(y);
    mixed_free(&m);
}
END_TEST

START_TEST(broadcast_params_copies_from_root)
{
    /* values r * 100 + e on rank r; root 1 */
    nb_tensor *a = nb_arange(0, 3, 1, NB_F32), *b = nb_arange(0, 4, 1, NB_F64), *c = nb_arange(0, 2, 1, NB_I64);
    nb_tensor *base = nb_arange(0, 6, 1, NB_F32);
    nb_tensor *shift = nb_scalar(rank * 100.0, NB_F64);
    nb_tensor *shift32 = nb_scalar(rank * 100.0, NB_F32), *shift64 = nb_scalar(rank * 100.0, NB_I64);
    ck_assert_ok(nb_copy_(a, nb_add(a, shift32)));
    ck_assert_ok(nb_copy_(b, nb_add(b, shift)));
    ck_assert_ok(nb_copy_(c, nb_add(c, shift64)));
    ck_assert_ok(nb_copy_(base, nb_add(base, shift32)));
    nb_tensor *base2 = nb_reshape(base, 2, (int64_t[]){2, 3});
    nb_tensor *view = nb_transpose(base2, 0, 1); /* (3, 2), not contiguous */
    ck_assert(!nb_is_contiguous(view));
    nb_param_list *list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(list, "a", a, false));
    ck_assert_ok(nb_param_list_add(list, "b", b, false));
    ck_assert_ok(nb_param_list_add(list, "count", c, true));
    ck_assert_ok(nb_param_list_add(list, "view", view, false));
    ck_assert_ok(nb_dist_broadcast_params(list, 1));
    for (int e = 0; e < 3; e++) ck_assert_double_eq(nb_get_flat(a, e), 100 + e);
    for (int e = 0; e < 4; e++) ck_assert_double_eq(nb_get_flat(b, e), 100 + e);
    for (int e = 0; e < 2; e++) ck_assert_double_eq(nb_get_flat(c, e), 100 + e);
    for (int e = 0; e < 6; e++) ck_assert_double_eq(nb_get_flat(base, e), 100 + e);
    ck_assert_int_eq(nb_dist_broadcast_params(list, 2), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_dist_broadcast_params", "root 2", "2 ranks");
    nb_param_list_free(list);
    nb_tensor *all[] = {a, b, c, base, base2, view, shift, shift32, shift64};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nb_free(all[i]);
}
END_TEST

START_TEST(metrics_sum_and_max)
{
    double v[3] = {rank, 1, rank == 0 ? -5 : 2.5};
    ck_assert_ok(nb_dist_allreduce_sum(v, 3));
    ck_assert(v[0] == 1 && v[1] == 2 && v[2] == -2.5);
    double w[2] = {rank, -rank};
    ck_assert_ok(nb_dist_allreduce_max(w, 2));
    ck_assert(w[0] == 1 && w[1] == 0);
    ck_assert_ok(nb_dist_allreduce_sum(NULL, 0));
    ck_assert_ok(nb_dist_barrier());
    /* raw bytes from either root; a large buffer too */
    char text[8];
    snprintf(text, sizeof text, "rank %d", rank);
    ck_assert_ok(nb_dist_broadcast(text, sizeof text, 1));
    ck_assert_str_eq(text, "rank 1");
    size_t n = (size_t)3 << 20;
    unsigned char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < n; i++) big[i] = rank == 0 ? (unsigned char)(i * 7) : 0;
    ck_assert_ok(nb_dist_broadcast(big, n, 0));
    for (size_t i = 0; i < n; i += 4099) ck_assert_int_eq(big[i], (unsigned char)(i * 7));
    ck_assert_int_eq(big[n - 1], (unsigned char)((n - 1) * 7));
    free(big);
    ck_assert_int_eq(nb_dist_broadcast(text, 1, 2), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_dist_broadcast", "root 2", "2 ranks");
    ck_assert_int_eq(nb_dist_world_size(), 2);
    ck_assert(nb_dist_is_main() == (rank == 0));
    /* nb_dist_init shared the machine's cores between the 2 ranks on it */
    const char *env = getenv("NABLA_NUM_THREADS");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long want = cpus / 2 < 1 ? 1 : cpus / 2;
    if (!env || !*env) ck_assert(nb_num_threads() == want || (want > 256 && nb_num_threads() == 256)); /* capped */
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Models that differ between ranks fail on every rank, naming the difference, and leave the job usable
 * ---------------------------------------------------------------------------------------------- */
START_TEST(layout_mismatch_fails_on_every_rank)
{
    nb_tensor *a = nb_zeros(NB_SHAPE(2), NB_F32), *b = nb_zeros(NB_SHAPE(rank == 0 ? 3 : 4), NB_F32);
    nb_tensor *extra = nb_zeros(NB_SHAPE(1), NB_F64);
    ck_assert_ok(nb_set_requires_grad(a, true));
    ck_assert_ok(nb_set_requires_grad(b, true));
    nb_param_list *list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(list, "a", a, false));
    ck_assert_ok(nb_param_list_add(list, "b", b, false));
    ck_assert_int_eq(nb_dist_broadcast_params(list, 0), NB_ERR_COMM);
    ck_assert_error(NB_ERR_COMM, "nb_dist_broadcast_params", "differ between ranks at entry 1",
                    "rank 0 has parameter 'b' f32 (3)", "rank 1 has parameter 'b' f32 (4)");
    ck_assert_int_eq(nb_dist_allreduce_grads(list), NB_ERR_COMM);
    ck_assert_error(NB_ERR_COMM, "nb_dist_allreduce_grads", "differ between ranks");
    nb_param_list_free(list);

    /* rank 1 has one more entry */
    list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(list, "a", a, false));
    if (rank == 1) ck_assert_ok(nb_param_list_add(list, "extra", extra, true));
    ck_assert_int_eq(nb_dist_broadcast_params(list, 0), NB_ERR_COMM);
    ck_assert_error(NB_ERR_COMM, "nb_dist_broadcast_params", "at entry 1", "rank 0 has no such entry (1 entries)",
                    "rank 1 has buffer 'extra' f64 (1)");
    nb_param_list_free(list);

    /* the job goes on */
    double v[1] = {1};
    ck_assert_ok(nb_dist_allreduce_sum(v, 1));
    ck_assert(v[0] == 2);
    nb_free(a);
    nb_free(b);
    nb_free(extra);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("dist_ranks");
    TCase *tc = tcase_create("two_ranks");
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, two_ranks_at_batch_b_equal_one_process_at_2b, 0, 2);
    tcase_add_loop_test(tc, training_loop_allocates_nothing_per_step, 0, 2);
    tcase_add_test(tc, allreduce_grads_averages_in_buckets);
    tcase_add_test(tc, dist_backward_equals_backward_then_allreduce);
    tcase_add_test(tc, broadcast_params_copies_from_root);
    tcase_add_test(tc, metrics_sum_and_max);
    tcase_add_test(tc, layout_mismatch_fails_on_every_rank);
    suite_add_tcase(s, tc);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Failure scenarios (tests/dist_timeout.sh)
 * ---------------------------------------------------------------------------------------------- */
static int failure_scenario(const char *mode)
{
    if (rank == 1) {
        if (strcmp(mode, "die") == 0) _exit(0); /* gone without a word */
        sleep(30);                              /* alive but not answering */
        return 0;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double v[1] = {1};
    nb_status st = nb_dist_allreduce_sum(v, 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("rank 0: %s after %.1f s: %s\n", nb_status_name(st), waited, nb_last_error());
    fflush(stdout);
    if (st != NB_ERR_COMM) return 0; /* the script fails on exit status 0 */
    nb_dist_abort(3, nb_last_error());
}

int main(int argc, char **argv)
{
    if (nb_dist_init(&argc, &argv) != NB_OK) {
        fprintf(stderr, "dist_ranks: %s\n", nb_last_error());
        return 1;
    }
    rank = nb_dist_rank();
    if (nb_dist_world_size() != 2) nb_dist_abort(1, "dist_ranks needs exactly 2 ranks (mpirun -np 2)");
    if (argc > 1) return failure_scenario(argv[1]);

    SRunner *runner = srunner_create(make_suite());
    srunner_set_fork_status(runner, CK_NOFORK);
    srunner_run_all(runner, rank == 0 ? CK_NORMAL : CK_SILENT);
    int failed = srunner_ntests_failed(runner);
    if (rank != 0) {
        TestResult **results = srunner_failures(runner);
        for (int i = 0; i < failed; i++)
            fprintf(stderr, "rank %d: %s:%d: %s: %s\n", rank, tr_lfile(results[i]), tr_lno(results[i]),
                    tr_tcname(results[i]), tr_msg(results[i]));
        free(results);
    }
    srunner_free(runner);
    if (failed) {
        char message[96];
        snprintf(message, sizeof message, "%d test(s) failed on this rank", failed);
        nb_dist_abort(1, message);
    }
    /* every rank passed its tests; the last collective makes sure no rank is still waiting for another */
    if (nb_dist_barrier() != NB_OK) nb_dist_abort(1, nb_last_error());
    return nb_dist_finalize() == NB_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}
