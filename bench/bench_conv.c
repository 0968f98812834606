/* bench_conv: training images/s of examples/mnist_cnn.c's network, and of the same network in PyTorch
 * (bench/conv_peer.py) in the same run.
 *
 *     (1, 28, 28) -> Conv 3x3, 32 -> ReLU -> MaxPool 2 -> Conv 3x3, 64 -> ReLU -> MaxPool 2
 *                 -> Flatten -> Linear 1600-128 -> ReLU -> Linear 128-10
 *
 * on random data (pixels uniform in [0, 1), labels uniform in 0..9), batch 64, two figures:
 *     adam    a whole training step as the example takes it: one scope, next batch from a shuffling
 *             nb_batch_iter, forward, cross-entropy, zero_grad, backward, Adam (lr 1e-3) step
 *     fwdbwd  the same without the optimizer step: forward and backward of the layers only
 * Each side reports the median of --reps repetitions of at least --min-time seconds after a warm-up; the two sides
 * alternate over --rounds rounds (which goes first alternates too) so that the machine's load hits both, and the
 * table gives the median over the rounds and the ratio nabla / PyTorch. Without Debian's python3-torch (or with
 * --no-peer) only nabla is measured. bench/compare.py runs it with --no-peer --rounds 1 and runs the peer itself.
 *
 *     bench_conv [--threads 1] [--rounds 3] [--reps 3] [--min-time 0.5] [--batch 64] [--what all|adam|fwdbwd]
 *                [--clock wall|cpu] [--no-peer] [--python PATH] [--peer PATH] [--quick]
 */
#include "bench.h"

#include "../examples/common.h"

#include <stdint.h>

#ifndef BENCH_CONV_PEER
#define BENCH_CONV_PEER "bench/conv_peer.py"
#endif

#define CLASSES 10
#define MODES 2

static const char *const mode_names[MODES] = {"adam", "fwdbwd"};

static void fail(void)
{
    fprintf(stderr, "bench_conv: %s\n", nb_last_error());
    exit(EXIT_FAILURE);
}

static nb_module *build_model(nb_generator *gen)
{
    nb_module *model = ex_mnist_cnn_new(gen);
    if (!model) fail();
    return model;
}

typedef struct trainer {
    nb_module *model;
    nb_param_list *params;
    nb_optimizer *opt;
    nb_batch_iter *it;
    nb_tensor *x, *y;
    int64_t batch;
} trainer;

static void step(trainer *t, bool update)
{
    nb_scope_begin();
    nb_tensor *xb, *yb;
    nb_clear_error();
    if (!nb_batch_iter_next(t->it, &xb, &yb)) { /* a new epoch */
        if (nb_last_status() != NB_OK) fail();
        if (!nb_batch_iter_next(t->it, &xb, &yb)) fail();
    }
    nb_tensor *loss = nb_cross_entropy(nb_forward(t->model, xb), yb, NULL);
    if (!loss) fail();
    nb_optimizer_zero_grad(t->opt);
    if (nb_backward(loss) != NB_OK || (update && nb_optimizer_step(t->opt) != NB_OK)) fail();
    nb_scope_end();
}

/* Median images/s over reps repetitions of at least min_time seconds. */
static double measure(trainer *t, bool update, int64_t reps, double min_time)
{
    double rates[64];
    int n = reps < 64 ? (int)reps : 64;
    for (int r = 0; r < n; r++) {
        double start = bench_now(), elapsed;
        int64_t steps = 0;
        do {
            step(t, update);
            steps++;
            elapsed = bench_now() - start;
        } while (elapsed < min_time);
        rates[r] = (double)(steps * t->batch) / elapsed;
    }
    return bench_median(rates, n);
}

static void key_of(char *key, size_t size, int mode, int64_t batch, int64_t threads)
{
    snprintf(key, size, "conv mnist_cnn %s b%lld t%lld", mode_names[mode], (long long)batch, (long long)threads);
}

/* Runs the peer once, filling theirs[mode] (-1 for a figure it did not print); false when it did not run. */
static bool run_peer(const char *python, const char *peer, const char *what, const char *clock_name, int64_t batch,
                     int64_t threads, int64_t reps, double min_time, bool quick, double theirs[MODES])
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s' --threads %lld --reps %lld --min-time %g --batch %lld --what %s --clock %s%s",
             python, peer, (long long)threads, (long long)reps, min_time, (long long)batch, what, clock_name,
             quick ? " --quick" : "");
    for (int m = 0; m < MODES; m++) theirs[m] = -1;
    FILE *f = popen(cmd, "r");
    if (!f) return false;
    char line[512], key[128];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "BENCH\ttorch\t", 12)) continue;
        for (int m = 0; m < MODES; m++) {
            key_of(key, sizeof key, m, batch, threads);
            size_t len = strlen(key);
            if (!strncmp(line + 12, key, len) && line[12 + len] == '\t') theirs[m] = atof(line + 13 + len);
        }
    }
    return pclose(f) == 0;
}

int main(int argc, char **argv)
{
    int64_t threads = 1, rounds = 3, reps = 3, batch = 64;
    double min_time = 0.5;
    bool no_peer = false, quick = false;
    const char *python = "/usr/bin/python3", *peer = BENCH_CONV_PEER, *what = "all", *clock_name = "wall";
    const ex_flag flags[] = {
        {"--threads", EX_INT, &threads, "threads of nabla's pool and of PyTorch"},
        {"--rounds", EX_INT, &rounds, "alternating rounds (the table shows their median)"},
        {"--reps", EX_INT, &reps, "repetitions per side and round (each reports its median; at most 64)"},
        {"--min-time", EX_DOUBLE, &min_time, "seconds each repetition lasts at least"},
        {"--batch", EX_INT, &batch, "images per batch"},
        {"--what", EX_STRING, &what, "all, adam (training steps) or fwdbwd (forward and backward only)"},
        {"--clock", EX_STRING, &clock_name, "wall, or cpu: CPU time of the process (for a loaded machine)"},
        {"--no-peer", EX_BOOL, &no_peer, "measure nabla only"},
        {"--python", EX_STRING, &python, "interpreter with torch for the peer"},
        {"--peer", EX_STRING, &peer, "path of bench/conv_peer.py"},
        {"--quick", EX_BOOL, &quick, "smoke run: one short repetition, one round"},
    };
    ex_parse_flags(argc, argv, "bench_conv", "Training images/s of the mnist_cnn network, nabla against PyTorch.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    bool run[MODES] = {!strcmp(what, "all") || !strcmp(what, "adam"), !strcmp(what, "all") || !strcmp(what, "fwdbwd")};
    if (!run[0] && !run[1]) {
        fprintf(stderr, "bench_conv: --what must be all, adam or fwdbwd, got '%s'\n", what);
        return 2;
    }
    if (threads < 1 || rounds < 1 || reps < 1 || min_time < 0 || batch < 1) {
        fprintf(stderr, "bench_conv: --threads, --rounds, --reps and --batch must be positive, --min-time "
                        "non-negative\n");
        return 2;
    }
    bench_set_clock("bench_conv", clock_name);
    if (quick) {
        rounds = 1;
        reps = 1;
        min_time = 0.01;
    }
    int pool = bench_set_threads("bench_conv", (int)threads);

    nb_generator gen;
    nb_generator_seed(&gen, 7);
    trainer t = {.batch = batch};
    const int64_t n_data = batch * (quick ? 2 : 32);
    t.x = nb_rand(NB_SHAPE(n_data, 1, 28, 28), 0.0, 1.0, NB_F32, &gen);
    t.y = nb_randint(NB_SHAPE(n_data), 0, CLASSES, &gen);
    t.model = build_model(&gen);
    t.params = nb_module_parameters(t.model);
    if (!t.x || !t.y || !t.params) fail();
    t.opt = nb_adam_new(t.params, nb_adam_defaults());
    t.it = t.opt ? nb_batch_iter_new(t.x, t.y, batch, true, true, 8) : NULL;
    if (!t.it) fail();

    printf("bench_conv: mnist_cnn network, %lld parameters, batch %lld, %d thread(s); %lld round(s) of %lld "
           "repetitions of >= %g s per side (%s clock), random data\n",
           (long long)nb_param_list_numel(t.params, true), (long long)batch, pool, (long long)rounds, (long long)reps,
           min_time, clock_name);
    for (int w = 0; w < (quick ? 1 : 5); w++) step(&t, true); /* caches, thread pool, Adam's state */

    double ours[MODES][64], theirs[MODES][64], p[MODES];
    int n = rounds < 64 ? (int)rounds : 64, n_peer[MODES] = {0, 0};
    bool peer_ok = !no_peer;
    for (int r = 0; r < n; r++) {
        bool peer_first = r % 2 == 1, ran = false;
        if (peer_ok && peer_first)
            ran = run_peer(python, peer, what, clock_name, batch, threads, reps, min_time, quick, p);
        for (int m = 0; m < MODES; m++)
            if (run[m]) ours[m][r] = measure(&t, m == 0, reps, min_time);
        if (peer_ok && !peer_first)
            ran = run_peer(python, peer, what, clock_name, batch, threads, reps, min_time, quick, p);
        if (peer_ok && !ran) {
            printf("bench_conv: the PyTorch peer (%s %s) did not run; measuring nabla only\n", python, peer);
            peer_ok = false;
        }
        printf("round %d:", r + 1);
        for (int m = 0; m < MODES; m++) {
            if (!run[m]) continue;
            printf("  %s nabla %.0f images/s", mode_names[m], ours[m][r]);
            if (peer_ok && p[m] > 0) {
                printf(", PyTorch %.0f", p[m]);
                theirs[m][n_peer[m]++] = p[m];
            }
        }
        printf("\n");
        fflush(stdout);
    }

    printf("\n%-32s %14s %14s %8s\n", "model", "nabla img/s", "PyTorch img/s", "ratio");
    for (int m = 0; m < MODES; m++) {
        if (!run[m]) continue;
        char key[128];
        key_of(key, sizeof key, m, batch, threads);
        double a = bench_median(ours[m], n);
        if (n_peer[m] > 0) {
            double b = bench_median(theirs[m], n_peer[m]);
            printf("%-32s %14.0f %14.0f %8.2f\n", key, a, b, a / b);
        } else {
            printf("%-32s %14.0f %14s %8s\n", key, a, "-", "-");
        }
    }
    for (int m = 0; m < MODES; m++) {
        if (!run[m]) continue;
        char key[128];
        key_of(key, sizeof key, m, batch, threads);
        bench_emit(key, bench_median(ours[m], n), "images/s");
        if (n_peer[m] > 0)
            printf("BENCH\ttorch\t%s\t%.6g\timages/s\n", key, bench_median(theirs[m], n_peer[m]));
    }

    nb_batch_iter_free(t.it);
    nb_optimizer_free(t.opt);
    nb_param_list_free(t.params);
    nb_module_free(t.model);
    nb_free(t.x);
    nb_free(t.y);
    return 0;
}
