/* bench_mlp: training throughput (samples/s) of multilayer perceptrons, and peak memory of a real MNIST run.
 *
 * Throughput: the models of examples/mnist_mlp.c trained the way a user trains them (one scope per step:
 * next batch from a shuffling nb_batch_iter, forward, cross-entropy, zero_grad, backward, optimizer step) on
 * random data (inputs uniform in [0, 1), labels uniform in 0..9), so no data set is needed:
 *     784-128-10      Adam     batch 32 and 128
 *     784-512-512-10  RMSprop  batch 128
 * Each figure is the median of --reps repetitions of at least --min-time seconds, after a warm-up.
 *
 * Memory (--rss): trains 784-128-10 with Adam at batch 32 on MNIST for --epochs epochs, evaluating test accuracy
 * after each, as examples/mnist_mlp does, and reports the peak resident set size (getrusage ru_maxrss) against
 * the size of the data set held in memory (images as f32, labels as i64). Run it in its own process: the peak
 * covers the whole process lifetime. Exits 77 (a skip) when MNIST is absent.
 *
 *     bench_mlp [--threads 1] [--reps 5] [--min-time 0.5] [--model all|small32|small128|big128] [--clock wall|cpu]
 *               [--quick]
 *     bench_mlp --rss [--epochs 1] [--data DIR]
 *     bench_mlp --gather [--reps 5] [--min-time 0.5]     the batch gather alone (see gather_floor)
 */
#include "mlp_models.h"

#include <stdbool.h>
#include <sys/resource.h>

static _Noreturn void fail(void) { ex_fail("bench_mlp"); }

/* One training step on the next batch (a new epoch starts when the iterator runs out). */
static void train_step(nb_module *model, nb_optimizer *opt, nb_batch_iter *it)
{
    nb_scope_begin();
    nb_tensor *xb, *yb;
    mlp_next_batch("bench_mlp", it, &xb, &yb);
    nb_tensor *loss = nb_cross_entropy(nb_forward(model, xb), yb, NULL);
    if (!loss) fail();
    nb_optimizer_zero_grad(opt);
    if (nb_backward(loss) != NB_OK || nb_optimizer_step(opt) != NB_OK) fail();
    nb_scope_end();
}

static void throughput(const config *c, int64_t threads, int64_t reps, double min_time, bool quick)
{
    nb_generator gen;
    nb_generator_seed(&gen, 7);
    const int64_t n_data = quick ? 256 : 8192;
    nb_tensor *x = nb_rand(NB_SHAPE(n_data, PIXELS), 0.0, 1.0, NB_F32, &gen);
    nb_tensor *y = nb_randint(NB_SHAPE(n_data), 0, CLASSES, &gen);
    nb_module *model = mlp_build("bench_mlp", c, &gen);
    nb_param_list *params = nb_module_parameters(model);
    if (!x || !y || !params) fail();
    nb_optimizer *opt = mlp_optimizer("bench_mlp", c, params);
    nb_batch_iter *it = nb_batch_iter_new(x, y, c->batch, true, true, 8);
    if (!it) fail();

    /* Warm-up (caches, thread pool, optimizer state), then steps per repetition from its timing. */
    int64_t warm = quick ? 1 : 20;
    double start = bench_now();
    for (int64_t i = 0; i < warm; i++) train_step(model, opt, it);
    double per_step = (bench_now() - start) / (double)warm;
    int64_t steps = (int64_t)(min_time / (per_step > 1e-7 ? per_step : 1e-7)) + 1;
    double rate[64];
    int n = reps < 64 ? (int)reps : 64;
    for (int r = 0; r < n; r++) {
        start = bench_now();
        for (int64_t i = 0; i < steps; i++) train_step(model, opt, it);
        rate[r] = (double)(steps * c->batch) / (bench_now() - start);
    }
    double median = bench_median(rate, n);

    char arch[32], key[96];
    if (c->n_hidden == 1) snprintf(arch, sizeof arch, "784-%lld-10", (long long)c->hidden[0]);
    else snprintf(arch, sizeof arch, "784-%lld-%lld-10", (long long)c->hidden[0], (long long)c->hidden[1]);
    printf("%-15s %-8s %5lld %7lld %12.0f %12.0f %12.0f  %d x %lld steps\n", arch, c->optim, (long long)c->batch,
           (long long)threads, median, rate[0], rate[n - 1], n, (long long)steps);
    snprintf(key, sizeof key, "mlp %s %s b%lld t%lld", arch, c->optim, (long long)c->batch, (long long)threads);
    bench_emit(key, median, "samples/s");

    nb_batch_iter_free(it);
    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_module_free(model);
    nb_free(x);
    nb_free(y);
}

/* The batch gather alone (--gather): nb_index_select of `batch` random rows of a (rows, 784) f32 set, as
 * nb_batch_iter_next does it, in µs per batch, beside one core's sequential copy speed. It is the floor of the
 * gather's share of a training step, whose other traffic can only slow it. */
static void gather_floor(int64_t batch, int64_t reps, double min_time)
{
    nb_generator gen;
    nb_generator_seed(&gen, 9);
    const int64_t sets[] = {8192, 60000}; /* bench_mlp's random set, and MNIST's training set */
    for (size_t s = 0; s < sizeof sets / sizeof *sets; s++) {
        nb_tensor *x = nb_rand(NB_SHAPE(sets[s], PIXELS), 0.0, 1.0, NB_F32, &gen);
        if (!x) fail();
        double us[64];
        int n = reps < 64 ? (int)reps : 64;
        for (int r = 0; r < n; r++) {
            int64_t done = 0;
            double start = bench_now(), elapsed;
            do {
                nb_scope_begin();
                nb_tensor *idx = nb_randint(NB_SHAPE(batch), 0, sets[s], &gen);
                if (!nb_index_select(x, 0, idx)) fail();
                nb_scope_end();
                done++;
            } while ((elapsed = bench_now() - start) < min_time);
            us[r] = elapsed / (double)done * 1e6;
        }
        double median = bench_median(us, n);
        double bytes = (double)(batch * PIXELS) * sizeof(float);
        printf("gather %lld of %lld rows: %.1f us per batch, %.2f GB/s\n", (long long)batch, (long long)sets[s],
               median, bytes / (median * 1e-6) / 1e9);
        char key[64];
        snprintf(key, sizeof key, "gather b%lld of %lld rows", (long long)batch, (long long)sets[s]);
        bench_emit(key, median, "us");
        nb_free(x);
    }
    /* one core's sequential copy, for comparison */
    size_t bytes = (size_t)64 << 20;
    char *src = malloc(bytes), *dst = malloc(bytes);
    if (!src || !dst) {
        fprintf(stderr, "bench_mlp: out of memory\n");
        exit(EXIT_FAILURE);
    }
    memset(src, 1, bytes);
    memset(dst, 2, bytes);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double start = bench_now();
        memcpy(dst, src, bytes);
        double t = bench_now() - start;
        if (t < best) best = t;
    }
    printf("sequential copy of 64 MiB: %.2f GB/s (best of 5)\n", (double)bytes / best / 1e9);
    bench_emit("copy 64MiB", (double)bytes / best / 1e9, "GB/s");
    free(src);
    free(dst);
}

static double tensor_mib(nb_tensor *t) { return (double)nb_numel(t) * (double)nb_dtype_size(nb_dtype_of(t)) / 1048576.0; }

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
}

static int peak_rss(const char *data, int64_t epochs)
{
    const char *dir = nb_data_dir(data);
    ex_image_set mnist;
    if (!dir || !ex_load_image_set("bench_mlp", dir, "mnist", &mnist)) {
        printf("bench_mlp: MNIST not found (give --data DIR or set NABLA_DATA); skipping the memory figure\n");
        return 77;
    }
    double data_mib = tensor_mib(mnist.train_x) + tensor_mib(mnist.train_y) + tensor_mib(mnist.test_x) +
                      tensor_mib(mnist.test_y);
    double load_peak_mib = peak_rss_mib(); /* to tell the loading's peak from the training's */
    const config *c = &configs[0];
    nb_generator gen;
    nb_generator_seed(&gen, 42);
    nb_module *model = mlp_build("bench_mlp", c, &gen);
    nb_param_list *params = nb_module_parameters(model);
    if (!params) fail();
    nb_optimizer *opt = mlp_optimizer("bench_mlp", c, params);
    nb_batch_iter *it = nb_batch_iter_new(mnist.train_x, mnist.train_y, c->batch, true, false, 43);
    if (!it) fail();
    double start = bench_now(), acc = 0;
    int64_t steps = nb_batch_iter_batches_per_epoch(it);
    for (int64_t e = 0; e < epochs; e++) {
        for (int64_t i = 0; i < steps; i++) train_step(model, opt, it);
        acc = ex_accuracy("bench_mlp", model, mnist.test_x, mnist.test_y, NULL);
    }
    double seconds = bench_now() - start;
    double rss_mib = peak_rss_mib();
    printf("MNIST 784-128-10 Adam batch 32, %lld epoch(s) in %.1f s, test accuracy %.4f\n", (long long)epochs,
           seconds, acc);
    printf("peak RSS %.1f MiB (%.1f MiB when loading was done), data set in memory %.1f MiB, overhead %.1f MiB "
           "(target <= 32)\n", rss_mib, load_peak_mib, data_mib, rss_mib - data_mib);
    bench_emit("rss mnist peak after loading", load_peak_mib, "MiB");
    bench_emit("rss mnist peak", rss_mib, "MiB");
    bench_emit("rss mnist data", data_mib, "MiB");

    nb_batch_iter_free(it);
    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_module_free(model);
    ex_free_image_set(&mnist);
    return 0;
}

int main(int argc, char **argv)
{
    int64_t threads = 1, reps = 5, epochs = 1;
    double min_time = 0.5;
    const char *model = "all", *data = NULL, *clock_name = "wall";
    bool quick = false, rss = false, gather = false;
    const ex_flag flags[] = {
        {"--threads", EX_INT, &threads, "size of nabla's thread pool"},
        {"--reps", EX_INT, &reps, "repetitions per model (the median is reported; at most 64)"},
        {"--min-time", EX_DOUBLE, &min_time, "seconds each repetition lasts at least"},
        {"--model", EX_STRING, &model, "all, small32 (784-128-10 b32), small128 or big128 (784-512-512-10)"},
        {"--quick", EX_BOOL, &quick, "smoke run: one short repetition per model"},
        {"--clock", EX_STRING, &clock_name, "wall, or cpu: CPU time of the process (for a loaded machine)"},
        {"--rss", EX_BOOL, &rss, "instead: peak RSS of MNIST training (needs the data set)"},
        {"--gather", EX_BOOL, &gather, "instead: time of the batch gather alone (128 rows) and of a plain copy"},
        {"--epochs", EX_INT, &epochs, "epochs of the --rss run"},
        {"--data", EX_STRING, &data, "data directory of --rss (default $NABLA_DATA, else ../shared/data)"},
    };
    ex_parse_flags(argc, argv, "bench_mlp", "Measures MLP training throughput (samples/s) and memory.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    if (threads < 1 || reps < 1 || min_time < 0 || epochs < 1) {
        fprintf(stderr, "bench_mlp: --threads, --reps and --epochs must be positive, --min-time non-negative\n");
        return 2;
    }
    bench_set_clock("bench_mlp", clock_name);
    int pool = bench_set_threads("bench_mlp", (int)threads);
    if (rss) return peak_rss(data, epochs);
    if (gather) {
        gather_floor(128, quick ? 1 : reps, quick ? 0.01 : min_time);
        return 0;
    }
    if (quick) {
        reps = 1;
        min_time = 0.01;
    }
    printf("bench_mlp: %d thread(s), median of %lld repetitions of >= %.3g s (%s clock), random data\n", pool,
           (long long)reps, min_time, clock_name);
    printf("%-15s %-8s %5s %7s %12s %12s %12s\n", "model", "optim", "batch", "threads", "samples/s", "min", "max");
    bool any = false;
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        if (!strcmp(model, "all") || !strcmp(model, configs[i].name)) {
            throughput(&configs[i], threads, reps, min_time, quick);
            any = true;
        }
    if (!any) {
        fprintf(stderr, "bench_mlp: --model must be all, small32, small128 or big128, got '%s'\n", model);
        return 2;
    }
    return 0;
}
