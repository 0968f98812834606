/* bench_unary: elements/s of the f32 elementwise functions whose kernels are the vector math of
 * tensor/vecmath_template.h (exp, log, tanh, sigmoid, silu, gelu in both forms) and of softmax over rows, against
 * the same calls in PyTorch (bench/unary_peer.py) in the same run.
 *
 * Each op runs forward only, on 2^20 f32 values (log on their absolute values; softmax on 1024 rows of 1024),
 * a new result tensor per call as in PyTorch. Each side reports the median of --reps repetitions of at least
 * --min-time seconds; the two sides alternate over --rounds rounds (which goes first alternates too), and the
 * table gives the median over the rounds and the ratio nabla / PyTorch. Without Debian's python3-torch (or with
 * --no-peer) only nabla is measured.
 *
 *     bench_unary [--threads 1] [--rounds 3] [--reps 5] [--min-time 0.2] [--clock wall|cpu] [--no-peer]
 *                 [--python PATH] [--peer PATH] [--quick]
 */
#include "bench.h"

#include "../examples/common.h"

#include <stdint.h>

#ifndef BENCH_UNARY_PEER
#define BENCH_UNARY_PEER "bench/unary_peer.py"
#endif

#define N_ELEMS (1 << 20)
#define MAX_ROUNDS 64

static nb_tensor *gelu_erf(nb_tensor *t) { return nb_gelu(t, false); }
static nb_tensor *gelu_tanh(nb_tensor *t) { return nb_gelu(t, true); }
static nb_tensor *softmax_rows(nb_tensor *t) { return nb_softmax(t, 1); }

static const struct {
    const char *name;
    nb_tensor *(*fn)(nb_tensor *);
    bool positive, rows;
} ops[] = {
    {"exp", nb_exp, false, false},       {"log", nb_log, true, false},          {"tanh", nb_tanh, false, false},
    {"sigmoid", nb_sigmoid, false, false}, {"silu", nb_silu, false, false},     {"gelu", gelu_erf, false, false},
    {"gelu_tanh", gelu_tanh, false, false}, {"softmax", softmax_rows, false, true},
};
#define N_OPS ((int)(sizeof ops / sizeof *ops))

static void fail(void)
{
    fprintf(stderr, "bench_unary: %s\n", nb_last_error());
    exit(EXIT_FAILURE);
}

/* Median elements/s over reps repetitions of at least min_time seconds. */
static double measure(int op, nb_tensor *x, int64_t reps, double min_time)
{
    double rates[MAX_ROUNDS];
    int n = reps < MAX_ROUNDS ? (int)reps : MAX_ROUNDS;
    for (int r = 0; r < n; r++) {
        double start = bench_now(), elapsed;
        int64_t calls = 0;
        do {
            nb_scope_begin();
            if (!ops[op].fn(x)) fail();
            nb_scope_end();
            calls++;
            elapsed = bench_now() - start;
        } while (elapsed < min_time);
        rates[r] = (double)(calls * N_ELEMS) / elapsed;
    }
    return bench_median(rates, n);
}

static void key_of(char *key, size_t size, int op, int64_t threads)
{
    snprintf(key, size, "unary %s f32 %d t%lld", ops[op].name, N_ELEMS, (long long)threads);
}

/* Runs the peer once, filling theirs[op] (-1 for a figure it did not print); false when it did not run. */
static bool run_peer(const char *python, const char *peer, const char *clock_name, int64_t threads, int64_t reps,
                     double min_time, bool quick, double theirs[N_OPS])
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s' --threads %lld --reps %lld --min-time %g --clock %s%s", python, peer,
             (long long)threads, (long long)reps, min_time, clock_name, quick ? " --quick" : "");
    for (int k = 0; k < N_OPS; k++) theirs[k] = -1;
    FILE *f = popen(cmd, "r");
    if (!f) return false;
    char line[512], key[128];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "BENCH\ttorch\t", 12)) continue;
        for (int k = 0; k < N_OPS; k++) {
            key_of(key, sizeof key, k, threads);
            size_t len = strlen(key);
            if (!strncmp(line + 12, key, len) && line[12 + len] == '\t') theirs[k] = atof(line + 13 + len);
        }
    }
    return pclose(f) == 0;
}

int main(int argc, char **argv)
{
    int64_t threads = 1, rounds = 3, reps = 5;
    double min_time = 0.2;
    bool no_peer = false, quick = false;
    const char *python = "/usr/bin/python3", *peer = BENCH_UNARY_PEER, *clock_name = "wall";
    const ex_flag flags[] = {
        {"--threads", EX_INT, &threads, "threads of nabla's pool and of PyTorch"},
        {"--rounds", EX_INT, &rounds, "alternating rounds (the table shows their median)"},
        {"--reps", EX_INT, &reps, "repetitions per side and round (each reports its median; at most 64)"},
        {"--min-time", EX_DOUBLE, &min_time, "seconds each repetition lasts at least"},
        {"--clock", EX_STRING, &clock_name, "wall, or cpu: CPU time of the process (for a loaded machine)"},
        {"--no-peer", EX_BOOL, &no_peer, "measure nabla only"},
        {"--python", EX_STRING, &python, "interpreter with torch for the peer"},
        {"--peer", EX_STRING, &peer, "path of bench/unary_peer.py"},
        {"--quick", EX_BOOL, &quick, "smoke run: one short repetition, one round"},
    };
    ex_parse_flags(argc, argv, "bench_unary", "Elements/s of f32 elementwise functions and softmax, nabla against PyTorch.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    if (threads < 1 || rounds < 1 || reps < 1 || min_time < 0) {
        fprintf(stderr, "bench_unary: --threads, --rounds and --reps must be positive, --min-time non-negative\n");
        return 2;
    }
    bench_set_clock("bench_unary", clock_name);
    if (quick) {
        rounds = 1;
        reps = 1;
        min_time = 0.005;
    }
    int pool = bench_set_threads("bench_unary", (int)threads);

    nb_generator gen;
    nb_generator_seed(&gen, 3);
    nb_tensor *x = nb_randn(NB_SHAPE(N_ELEMS), 0.0, 2.0, NB_F32, &gen);
    nb_tensor *ax = x ? nb_abs(x) : NULL, *rows = x ? nb_reshape(x, NB_SHAPE(1024, 1024)) : NULL;
    if (!ax || !rows) fail();
    printf("bench_unary: %d f32 values (normal, sd 2; log of their absolute values, softmax over 1024 rows of "
           "1024), %d thread(s); %lld round(s) of %lld repetitions of >= %g s per side (%s clock)\n",
           N_ELEMS, pool, (long long)rounds, (long long)reps, min_time, clock_name);

    double ours[N_OPS][MAX_ROUNDS], theirs[N_OPS][MAX_ROUNDS], p[N_OPS];
    int n = rounds < MAX_ROUNDS ? (int)rounds : MAX_ROUNDS, n_peer[N_OPS] = {0};
    bool peer_ok = !no_peer;
    for (int r = 0; r < n; r++) {
        bool peer_first = r % 2 == 1, ran = false;
        if (peer_ok && peer_first) ran = run_peer(python, peer, clock_name, threads, reps, min_time, quick, p);
        for (int k = 0; k < N_OPS; k++)
            ours[k][r] = measure(k, ops[k].rows ? rows : ops[k].positive ? ax : x, reps, min_time);
        if (peer_ok && !peer_first) ran = run_peer(python, peer, clock_name, threads, reps, min_time, quick, p);
        if (peer_ok && !ran) {
            printf("bench_unary: the PyTorch peer (%s %s) did not run; measuring nabla only\n", python, peer);
            peer_ok = false;
        }
        for (int k = 0; k < N_OPS; k++)
            if (peer_ok && p[k] > 0) theirs[k][n_peer[k]++] = p[k];
    }

    printf("\n%-34s %14s %14s %8s\n", "op", "nabla Melem/s", "PyTorch Melem/s", "ratio");
    for (int k = 0; k < N_OPS; k++) {
        char key[128];
        key_of(key, sizeof key, k, threads);
        double a = bench_median(ours[k], n);
        if (n_peer[k] > 0) {
            double b = bench_median(theirs[k], n_peer[k]);
            printf("%-34s %14.0f %14.0f %8.2f\n", key, a / 1e6, b / 1e6, a / b);
        } else {
            printf("%-34s %14.0f %14s %8s\n", key, a / 1e6, "-", "-");
        }
    }
    for (int k = 0; k < N_OPS; k++) {
        char key[128];
        key_of(key, sizeof key, k, threads);
        bench_emit(key, bench_median(ours[k], n), "elements/s");
        if (n_peer[k] > 0) printf("BENCH\ttorch\t%s\t%.6g\telements/s\n", key, bench_median(theirs[k], n_peer[k]));
    }
    nb_free(x);
    nb_free(ax);
    nb_free(rows);
    return 0;
}
