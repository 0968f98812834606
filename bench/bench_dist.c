/* bench_dist: data-parallel training throughput over MPI (nb_dist.h) and the cost of the gradient all-reduce.
 *
 * The models of bench_mlp (examples/mnist_mlp.c's networks) trained on random data, one thread per rank, each rank
 * on its shard of the same data set (nb_dist_batch_iter_new) with --batch rows per step, the gradients averaged
 * over the ranks between backward and the optimizer step (nb_dist_allreduce_grads):
 *     784-128-10      Adam     batch 32 and 128 per rank
 *     784-512-512-10  RMSprop  batch 128 per rank
 * Run it once alone (1 rank: plain training, no all-reduce, the baseline) and once under `mpirun -np N`: the
 * samples/s are those of the whole job (every rank's samples), so the ratio of the two runs is the speed-up. Under
 * mpirun it also reports, from nb_dist_stats_get, the time spent in the all-reduce per step (waiting for the
 * slowest rank included) and the bytes each rank sends into it per step.
 *
 * Every rank runs the same number of steps (rank 0's choice, broadcast), and a repetition's time is the slowest
 * rank's. Each figure is the median of --reps repetitions of at least --min-time seconds, after a warm-up.
 *
 * With --overlap the all-reduce runs during backward (nb_dist_backward) rather than after it; "comm ms" then
 * counts the time spent in nabla's distributed code during the step (packing, starting the buckets from backward,
 * and the wait after backward), not backward's own computation.
 *
 *     bench_dist [--reps 5] [--min-time 0.5] [--model all|small32|small128|big128] [--overlap] [--clock wall|cpu]
 *                [--quick]
 *     mpirun -np 2 bench_dist [...]
 */
#include "mlp_models.h"

#include <stdbool.h>

#define MAX_REPS 64

static _Noreturn void fail(void) { ex_fail("bench_dist"); }

/* One data-parallel step on this rank's next batch; with one rank exactly bench_mlp's step. overlap: the
 * all-reduce runs during backward (nb_dist_backward) instead of after it (nb_dist_allreduce_grads). */
static bool overlap;

static void train_step(nb_module *model, const nb_param_list *params, nb_optimizer *opt, nb_batch_iter *it)
{
    nb_scope_begin();
    nb_tensor *xb, *yb;
    mlp_next_batch("bench_dist", it, &xb, &yb);
    nb_tensor *loss = nb_cross_entropy(nb_forward(model, xb), yb, NULL);
    if (!loss) fail();
    nb_optimizer_zero_grad(opt);
    if (nb_dist_world_size() == 1) {
        if (nb_backward(loss) != NB_OK) fail();
    } else if (overlap) {
        if (nb_dist_backward(loss, params) != NB_OK) fail();
    } else {
        if (nb_backward(loss) != NB_OK || nb_dist_allreduce_grads(params) != NB_OK) fail();
    }
    if (nb_optimizer_step(opt) != NB_OK) fail();
    nb_scope_end();
}

/* The largest value of v over the ranks. */
static double max_over_ranks(double v)
{
    if (nb_dist_allreduce_max(&v, 1) != NB_OK) fail();
    return v;
}

static void throughput(const config *c, int64_t reps, double min_time, bool quick)
{
    int world = nb_dist_world_size();
    nb_generator gen;
    nb_generator_seed(&gen, 7); /* the same data set on every rank: each trains on its shard */
    const int64_t n_data = (quick ? 256 : 8192) * world;
    nb_tensor *x = nb_rand(NB_SHAPE(n_data, PIXELS), 0.0, 1.0, NB_F32, &gen);
    nb_tensor *y = nb_randint(NB_SHAPE(n_data), 0, CLASSES, &gen);
    nb_module *model = mlp_build("bench_dist", c, &gen);
    nb_param_list *params = nb_module_parameters(model);
    if (!x || !y || !params) fail();
    if (nb_dist_broadcast_params(params, 0) != NB_OK) fail();
    nb_optimizer *opt = mlp_optimizer("bench_dist", c, params);
    nb_batch_iter *it = nb_dist_batch_iter_new(x, y, c->batch, true, true, 8);
    if (!it) fail();

    /* Warm-up (caches, optimizer state, the all-reduce's buffers), then steps per repetition from the slowest
     * rank's timing, so that every rank runs the same number of collectives. */
    int64_t warm = quick ? 1 : 20;
    if (nb_dist_barrier() != NB_OK) fail();
    double start = bench_now();
    for (int64_t i = 0; i < warm; i++) train_step(model, params, opt, it);
    double per_step = max_over_ranks((bench_now() - start) / (double)warm);
    int64_t steps = (int64_t)(min_time / (per_step > 1e-7 ? per_step : 1e-7)) + 1;
    double rate[MAX_REPS], comm_ms[MAX_REPS];
    int n = reps < MAX_REPS ? (int)reps : MAX_REPS;
    nb_dist_stats before = nb_dist_stats_get(), after = before;
    for (int r = 0; r < n; r++) {
        if (nb_dist_barrier() != NB_OK) fail();
        before = nb_dist_stats_get();
        start = bench_now();
        for (int64_t i = 0; i < steps; i++) train_step(model, params, opt, it);
        double seconds = bench_now() - start;
        after = nb_dist_stats_get();
        seconds = max_over_ranks(seconds);
        rate[r] = (double)(steps * c->batch * world) / seconds;
        comm_ms[r] = max_over_ranks(after.comm_seconds - before.comm_seconds) * 1e3 / (double)steps;
    }
    double calls = (double)(after.allreduce_calls - before.allreduce_calls) / (double)steps;
    double bytes = (double)(after.allreduce_bytes - before.allreduce_bytes) / (double)steps;
    double median = bench_median(rate, n), comm = bench_median(comm_ms, n);
    double step_ms = (double)(c->batch * world) / median * 1e3;

    char arch[32], key[128];
    if (c->n_hidden == 1) snprintf(arch, sizeof arch, "784-%lld-10", (long long)c->hidden[0]);
    else snprintf(arch, sizeof arch, "784-%lld-%lld-10", (long long)c->hidden[0], (long long)c->hidden[1]);
    printf("%-15s %-8s %5lld %5d %12.0f %9.3f %9.3f %6.1f%% %8.2f %10.0f  %d x %lld steps\n", arch, c->optim,
           (long long)c->batch, world, median, step_ms, comm, 100.0 * comm / step_ms, calls, bytes, n,
           (long long)steps);
    const char *how = world == 1 ? "" : overlap ? " overlap" : " after";
    snprintf(key, sizeof key, "dist mlp %s %s b%lld r%d%s", arch, c->optim, (long long)c->batch, world, how);
    if (nb_dist_is_main()) bench_emit(key, median, "samples/s");
    if (world > 1 && nb_dist_is_main()) {
        snprintf(key, sizeof key, "dist allreduce %s %s b%lld r%d%s", arch, c->optim, (long long)c->batch, world,
                 how);
        bench_emit(key, comm, "ms/step");
        snprintf(key, sizeof key, "dist allreduce bytes %s r%d", arch, world);
        bench_emit(key, bytes, "bytes/step");
    }

    nb_batch_iter_free(it);
    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_module_free(model);
    nb_free(x);
    nb_free(y);
}

int main(int argc, char **argv)
{
    ex_dist_init("bench_dist", &argc, &argv);
    int64_t reps = 5;
    double min_time = 0.5;
    const char *model = "all", *clock_name = "wall";
    bool quick = false;
    const ex_flag flags[] = {
        {"--reps", EX_INT, &reps, "repetitions per model (the median is reported; at most 64)"},
        {"--min-time", EX_DOUBLE, &min_time, "seconds each repetition lasts at least"},
        {"--model", EX_STRING, &model, "all, small32 (784-128-10 b32), small128 or big128 (784-512-512-10)"},
        {"--overlap", EX_BOOL, &overlap, "all-reduce during backward (nb_dist_backward), not after it"},
        {"--quick", EX_BOOL, &quick, "smoke run: one short repetition per model"},
        {"--clock", EX_STRING, &clock_name, "wall, or cpu: CPU time of each process (for a loaded machine)"},
    };
    ex_parse_flags(argc, argv, "bench_dist",
                   "Measures data-parallel MLP training (samples/s of all ranks) and the all-reduce cost per step; run "
                   "it alone and under mpirun -np N.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    if (reps < 1 || min_time < 0) {
        fprintf(stderr, "bench_dist: --reps must be positive, --min-time non-negative\n");
        nb_dist_abort(2, NULL);
    }
    bool known = !strcmp(model, "all");
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) known = known || !strcmp(model, configs[i].name);
    if (!known) {
        fprintf(stderr, "bench_dist: --model must be all, small32, small128 or big128, got '%s'\n", model);
        nb_dist_abort(2, NULL);
    }
    bench_set_clock("bench_dist", clock_name);
    /* One thread per rank: the speed-up measured is that of adding ranks, not threads. */
    bench_set_threads("bench_dist", 1);
    if (quick) {
        reps = 1;
        min_time = 0.01;
    }
    printf("bench_dist: %d rank%s x 1 thread, %s%s, median of %lld repetitions of >= %.3g s (%s clock), random "
           "data\n",
           nb_dist_world_size(), nb_dist_world_size() == 1 ? "" : "s",
           nb_dist_available() ? "MPI build" : "built without MPI",
           nb_dist_world_size() == 1 ? "" : overlap ? ", all-reduce during backward" : ", all-reduce after backward",
           (long long)reps, min_time, clock_name);
    printf("%-15s %-8s %5s %5s %12s %9s %9s %7s %8s %10s\n", "model", "optim", "batch", "ranks", "samples/s",
           "ms/step", "comm ms", "comm", "msgs", "bytes/step");
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        if (!strcmp(model, "all") || !strcmp(model, configs[i].name)) throughput(&configs[i], reps, min_time, quick);
    ex_dist_finalize("bench_dist");
    return 0;
}
