/* bench_gpt: training tokens/s of examples/tiny_gpt.c's default model (4 layers, 4 heads, width 128, context 64,
 * batch 32, tied head, vocabulary 65), and of the same model in PyTorch (bench/gpt_peer.py) in the same run.
 *
 * A training step is the example's: B random windows, forward, cross-entropy, zero_grad, backward, gradient
 * clipping at 1, Adam (betas 0.9, 0.99), all in one scope. Each side reports the median of --reps repetitions of
 * at least --min-time seconds after a warm-up; the two sides alternate over --rounds rounds (which goes first
 * alternates too) so that the machine's load hits both, and the table gives the median over the rounds and the
 * ratio nabla / PyTorch. Without Debian's python3-torch the peer is skipped with a message.
 *
 *     bench_gpt [--threads 1] [--rounds 3] [--reps 3] [--min-time 2] [--batch 32] [--context 64] [--layers 4]
 *               [--heads 4] [--width 128] [--vocab 65] [--no-peer] [--python PATH] [--peer PATH] [--quick]
 */
#include <nabla.h>

#include "../examples/common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef BENCH_GPT_PEER
#define BENCH_GPT_PEER "bench/gpt_peer.py"
#endif

static void fail(void)
{
    fprintf(stderr, "bench_gpt: %s\n", nb_last_error());
    exit(EXIT_FAILURE);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct setup {
    int64_t batch, context, layers, heads, width, vocab;
} setup;

typedef struct trainer {
    setup s;
    nb_module *model;
    nb_param_list *params;
    nb_optimizer *opt;
    nb_generator gen;
    int64_t *data, n_data, *x, *y;
} trainer;

static void step(trainer *t)
{
    const int64_t B = t->s.batch, T = t->s.context;
    for (int64_t b = 0; b < B; b++) {
        int64_t at = (int64_t)nb_random_below(&t->gen, (uint64_t)(t->n_data - T - 1));
        memcpy(t->x + b * T, t->data + at, (size_t)T * sizeof *t->x);
        memcpy(t->y + b * T, t->data + at + 1, (size_t)T * sizeof *t->y);
    }
    nb_scope_begin();
    nb_tensor *xb = nb_from_array(t->x, NB_SHAPE(B, T), NB_I64), *yb = nb_from_array(t->y, NB_SHAPE(B * T), NB_I64);
    nb_tensor *loss = nb_cross_entropy(nb_reshape(nb_forward(t->model, xb), NB_SHAPE(B * T, -1)), yb, NULL);
    if (!loss) fail();
    nb_optimizer_zero_grad(t->opt);
    if (nb_backward(loss) != NB_OK || isnan(nb_clip_grad_norm(t->params, 1.0, 2.0)) ||
        nb_optimizer_step(t->opt) != NB_OK)
        fail();
    nb_scope_end();
}

/* Median tokens/s over reps repetitions of at least min_time seconds. */
static double measure(trainer *t, int64_t reps, double min_time)
{
    double rates[64];
    int n = reps < 64 ? (int)reps : 64;
    for (int r = 0; r < n; r++) {
        double start = ex_now(), elapsed;
        int64_t steps = 0;
        do {
            step(t);
            steps++;
            elapsed = ex_now() - start;
        } while (elapsed < min_time);
        rates[r] = (double)(steps * t->s.batch * t->s.context) / elapsed;
    }
    return median(rates, n);
}

/* Runs the peer once; its tokens/s, or -1 when it is unavailable (the reason printed once). */
static double run_peer(const char *python, const char *peer, const setup *s, int64_t threads, int64_t reps,
                       double min_time, bool quick)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' '%s' --threads %lld --reps %lld --min-time %g --batch %lld --context %lld --layers %lld --heads %lld"
             " --width %lld --vocab %lld%s",
             python, peer, (long long)threads, (long long)reps, min_time, (long long)s->batch, (long long)s->context,
             (long long)s->layers, (long long)s->heads, (long long)s->width, (long long)s->vocab,
             quick ? " --quick" : "");
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char line[512];
    double value = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "BENCH\ttorch\t", 12)) continue;
        const char *tab = strchr(line + 12, '\t');
        if (tab) value = atof(tab + 1);
    }
    int status = pclose(f);
    return status == 0 ? value : -1;
}

int main(int argc, char **argv)
{
    int64_t threads = 1, rounds = 3, reps = 3;
    double min_time = 2.0;
    setup s = {32, 64, 4, 4, 128, 65};
    bool no_peer = false, quick = false;
    const char *python = "/usr/bin/python3", *peer = BENCH_GPT_PEER;
    const ex_flag flags[] = {
        {"--threads", EX_INT, &threads, "threads of nabla's pool and of PyTorch"},
        {"--rounds", EX_INT, &rounds, "alternating rounds (the table shows their median)"},
        {"--reps", EX_INT, &reps, "repetitions per side and round (each reports its median)"},
        {"--min-time", EX_DOUBLE, &min_time, "seconds each repetition lasts at least"},
        {"--batch", EX_INT, &s.batch, "windows per batch"},
        {"--context", EX_INT, &s.context, "characters per window"},
        {"--layers", EX_INT, &s.layers, "transformer blocks"},
        {"--heads", EX_INT, &s.heads, "attention heads"},
        {"--width", EX_INT, &s.width, "embedding width"},
        {"--vocab", EX_INT, &s.vocab, "vocabulary size"},
        {"--no-peer", EX_BOOL, &no_peer, "measure nabla only"},
        {"--python", EX_STRING, &python, "interpreter with torch for the peer"},
        {"--peer", EX_STRING, &peer, "path of bench/gpt_peer.py"},
        {"--quick", EX_BOOL, &quick, "smoke run: one short repetition, one round"},
    };
    ex_parse_flags(argc, argv, "bench_gpt", "Training tokens/s of the tiny_gpt model, nabla against PyTorch.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    if (threads < 1 || rounds < 1 || reps < 1 || min_time < 0 || s.batch < 1 || s.context < 2 || s.vocab < 2 ||
        s.layers < 1 || s.heads < 1 || s.width < 1 || s.width % s.heads) {
        fprintf(stderr, "bench_gpt: invalid sizes\n");
        return 2;
    }
    if (quick) {
        rounds = 1;
        reps = 1;
        min_time = 0.01;
    }
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)threads);
    setenv("NABLA_NUM_THREADS", text, 1); /* read when nabla's pool starts, before the first op */

    trainer t = {.s = s};
    nb_generator_seed(&t.gen, 1);
    nb_gpt_config c = nb_gpt_defaults();
    c.vocab_size = s.vocab;
    c.context = s.context;
    c.n_layer = s.layers;
    c.n_head = s.heads;
    c.n_embd = s.width;
    t.model = nb_gpt_new(&c, &t.gen);
    t.params = t.model ? nb_module_parameters(t.model) : NULL;
    nb_adam_options ao = nb_adam_defaults();
    ao.beta2 = 0.99;
    t.opt = t.params ? nb_adam_new(t.params, ao) : NULL;
    if (!t.opt) fail();
    t.n_data = 100000;
    t.data = malloc((size_t)t.n_data * sizeof *t.data);
    t.x = malloc((size_t)(s.batch * s.context) * sizeof *t.x);
    t.y = malloc((size_t)(s.batch * s.context) * sizeof *t.y);
    if (!t.data || !t.x || !t.y) {
        fprintf(stderr, "bench_gpt: out of memory\n");
        return EXIT_FAILURE;
    }
    for (int64_t i = 0; i < t.n_data; i++) t.data[i] = (int64_t)nb_random_below(&t.gen, (uint64_t)s.vocab);

    char key[128];
    snprintf(key, sizeof key, "gpt L%lldH%lldC%lldT%lld b%lld t%lld", (long long)s.layers, (long long)s.heads,
             (long long)s.width, (long long)s.context, (long long)s.batch, (long long)threads);
    printf("bench_gpt: %s, %lld parameters; %lld rounds of %lld repetitions of >= %g s per side\n", key,
           (long long)nb_param_list_numel(t.params, true), (long long)rounds, (long long)reps, min_time);
    for (int w = 0; w < (quick ? 1 : 3); w++) step(&t);

    double ours[64], theirs[64];
    int n = rounds < 64 ? (int)rounds : 64, n_peer = 0;
    bool peer_ok = !no_peer;
    for (int r = 0; r < n; r++) {
        bool peer_first = r % 2 == 1;
        double p = -1;
        if (peer_ok && peer_first) p = run_peer(python, peer, &s, threads, reps, min_time, quick);
        ours[r] = measure(&t, reps, min_time);
        if (peer_ok && !peer_first) p = run_peer(python, peer, &s, threads, reps, min_time, quick);
        if (peer_ok && p < 0) {
            printf("bench_gpt: the PyTorch peer (%s %s) did not run; measuring nabla only\n", python, peer);
            peer_ok = false;
        }
        if (p > 0) theirs[n_peer++] = p;
        printf("round %d: nabla %.0f tokens/s%s", r + 1, ours[r], p > 0 ? "" : "\n");
        if (p > 0) printf(", PyTorch %.0f tokens/s\n", p);
        fflush(stdout);
    }
    double a = median(ours, n);
    printf("BENCH\tnabla\t%s\t%.6g\ttokens/s\n", key, a);
    printf("\n%-32s %14s %14s %8s\n", "model", "nabla tok/s", "PyTorch tok/s", "ratio");
    if (n_peer > 0) {
        double b = median(theirs, n_peer);
        printf("BENCH\ttorch\t%s\t%.6g\ttokens/s\n", key, b);
        printf("%-32s %14.0f %14.0f %8.2f\n", key, a, b, a / b);
    } else {
        printf("%-32s %14.0f %14s %8s\n", key, a, "-", "-");
    }
    free(t.data);
    free(t.x);
    free(t.y);
    nb_optimizer_free(t.opt);
    nb_param_list_free(t.params);
    nb_module_free(t.model);
    return 0;
}
