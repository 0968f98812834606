/* bench_matmul: GFLOP/s of nb_matmul on square sizes and on the products of MLP training.
 *
 * Square: (n, n) @ (n, n) for n = 64 ... 2048 in f32, and a subset in f64. MLP: for 784-128-10 and
 * 784-512-512-10 at batch 32 and 128, the three products of each Linear layer (weight W stored (out, in) as
 * nn's Linear keeps it, input x (B, in), output gradient g (B, out)):
 *     forward        x @ W^T          (B, in) x (in, out)     layout NT  (right operand a transposed view)
 *     weight grad    g^T @ x          (out, B) x (B, in)      layout TN  (left operand a transposed view)
 *     input grad     g @ W            (B, out) x (out, in)    layout NN  (not for the first layer: the data
 *                                                                         needs no gradient)
 * Shapes are named m x k x n (left operand m x k). Each figure is the median of --reps repetitions; each
 * repetition times enough products to last --min-time seconds. 2·m·k·n flops per product.
 *
 *     bench_matmul [--threads 1] [--reps 5] [--min-time 0.1] [--set all|square|mlp] [--dtype all|f32|f64]
 *                  [--max-size 2048] [--clock wall|cpu] [--quick]
 */
#include "bench.h"

#include "../examples/common.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct shape {
    const char *kind; /* "square" or "mlp" */
    int64_t m, k, n;
    bool a_t, b_t; /* operand given as a transposed view of a contiguous tensor */
} shape;

static int64_t g_reps = 5, g_threads = 1;
static double g_min_time = 0.1;

static void fail(void)
{
    fprintf(stderr, "bench_matmul: %s\n", nb_last_error());
    exit(EXIT_FAILURE);
}

/* A (rows, cols) operand; when transposed, stored as (cols, rows) and viewed through nb_transpose. */
static nb_tensor *operand(int64_t rows, int64_t cols, bool transposed, nb_dtype dtype, nb_generator *gen)
{
    if (!transposed) return nb_rand(NB_SHAPE(rows, cols), -1.0, 1.0, dtype, gen);
    nb_tensor *stored = nb_rand(NB_SHAPE(cols, rows), -1.0, 1.0, dtype, gen);
    nb_tensor *view = nb_transpose(stored, 0, 1);
    nb_free(stored); /* the view keeps the storage */
    return view;
}

static double time_products(nb_tensor *a, nb_tensor *b, int64_t iters)
{
    double start = bench_now();
    for (int64_t i = 0; i < iters; i++) {
        nb_tensor *c = nb_matmul(a, b);
        if (!c) fail();
        nb_free(c);
    }
    return (bench_now() - start) / (double)iters;
}

static void run(const shape *s, nb_dtype dtype, nb_generator *gen)
{
    nb_tensor *a = operand(s->m, s->k, s->a_t, dtype, gen), *b = operand(s->k, s->n, s->b_t, dtype, gen);
    if (!a || !b) fail();
    double once = time_products(a, b, 1); /* also the warm-up */
    int64_t iters = once >= g_min_time ? 1 : (int64_t)(g_min_time / (once > 1e-7 ? once : 1e-7)) + 1;
    double gflops[64];
    int reps = g_reps < 64 ? (int)g_reps : 64;
    for (int r = 0; r < reps; r++) gflops[r] = 2.0 * (double)s->m * (double)s->k * (double)s->n / time_products(a, b, iters) / 1e9;
    double median = bench_median(gflops, reps);
    double lo = gflops[0], hi = gflops[reps - 1];

    const char *name = dtype == NB_F32 ? "sgemm" : "dgemm";
    char key[128], dims[64];
    snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)s->m, (long long)s->k, (long long)s->n);
    if (!strcmp(s->kind, "square"))
        snprintf(key, sizeof key, "%s square %lld t%lld", name, (long long)s->m, (long long)g_threads);
    else
        snprintf(key, sizeof key, "%s mlp %s %c%c t%lld", name, dims, s->a_t ? 'T' : 'N', s->b_t ? 'T' : 'N',
                 (long long)g_threads);
    printf("%-6s %-7s %-16s %c%c  %8.2f  %8.2f  %8.2f  %6lld x %lld\n", name, s->kind, dims, s->a_t ? 'T' : 'N',
           s->b_t ? 'T' : 'N', median, lo, hi, (long long)reps, (long long)iters);
    bench_emit(key, median, "GFLOP/s");
    nb_free(a);
    nb_free(b);
}

/* The products of one training step of a Linear stack (see the header comment), without duplicates. */
static int mlp_shapes(shape *out, int n)
{
    static const int64_t arch_small[] = {784, 128, 10}, arch_big[] = {784, 512, 512, 10};
    const int64_t *archs[] = {arch_small, arch_big};
    const int depth[] = {3, 4};
    const int64_t batches[] = {32, 128};
    int count = n;
    for (int a = 0; a < 2; a++)
        for (int bi = 0; bi < 2; bi++)
            for (int l = 0; l + 1 < depth[a]; l++) {
                int64_t bsz = batches[bi], in = archs[a][l], outf = archs[a][l + 1];
                shape cand[3] = {{"mlp", bsz, in, outf, false, true},
                                 {"mlp", outf, bsz, in, true, false},
                                 {"mlp", bsz, outf, in, false, false}};
                for (int c = 0; c < (l > 0 ? 3 : 2); c++) {
                    bool dup = false;
                    for (int j = n; j < count; j++)
                        dup |= out[j].m == cand[c].m && out[j].k == cand[c].k && out[j].n == cand[c].n &&
                               out[j].a_t == cand[c].a_t && out[j].b_t == cand[c].b_t;
                    if (!dup) out[count++] = cand[c];
                }
            }
    return count;
}

int main(int argc, char **argv)
{
    const char *set = "all", *dtypes = "all", *clock_name = "wall";
    int64_t max_size = 2048;
    bool quick = false;
    const ex_flag flags[] = {
        {"--threads", EX_INT, &g_threads, "size of nabla's thread pool"},
        {"--reps", EX_INT, &g_reps, "repetitions per shape (the median is reported; at most 64)"},
        {"--min-time", EX_DOUBLE, &g_min_time, "seconds each repetition lasts at least"},
        {"--set", EX_STRING, &set, "which shapes: all, square or mlp"},
        {"--dtype", EX_STRING, &dtypes, "all, f32 or f64 (f64 covers a subset of the square sizes)"},
        {"--max-size", EX_INT, &max_size, "largest square size"},
        {"--quick", EX_BOOL, &quick, "smoke run: sizes up to 128, one repetition, short"},
        {"--clock", EX_STRING, &clock_name, "wall, or cpu: CPU time of the process (for a loaded machine)"},
    };
    ex_parse_flags(argc, argv, "bench_matmul", "Measures the GFLOP/s of nb_matmul.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    if (g_threads < 1 || g_reps < 1 || g_min_time < 0) {
        fprintf(stderr, "bench_matmul: --threads and --reps must be positive, --min-time non-negative\n");
        return 2;
    }
    bench_set_clock("bench_matmul", clock_name);
    bool do_square = strcmp(set, "mlp") != 0, do_mlp = strcmp(set, "square") != 0;
    bool do_f32 = strcmp(dtypes, "f64") != 0, do_f64 = strcmp(dtypes, "f32") != 0;
    if (quick) {
        max_size = 128;
        g_reps = 1;
        g_min_time = 0.005;
    }
    int pool = bench_set_threads("bench_matmul", (int)g_threads);

    shape shapes[64];
    int n = 0;
    for (int64_t s = 64; s <= max_size && n < 8; s *= 2) shapes[n++] = (shape){"square", s, s, s, false, false};
    int n_square = n;
    if (do_mlp && !quick) n = mlp_shapes(shapes, n);

    nb_generator gen;
    nb_generator_seed(&gen, 1);
    printf("bench_matmul: %d thread(s), median of %lld repetitions of >= %.3g s (%s clock)\n", pool,
           (long long)g_reps, g_min_time, clock_name);
    printf("%-6s %-7s %-16s %-3s %9s %9s %9s  %s\n", "op", "set", "m x k x n", "AB", "GFLOP/s", "min", "max",
           "reps x products");
    for (int i = 0; i < n; i++) {
        bool square = i < n_square;
        if (square ? !do_square : !do_mlp) continue;
        if (do_f32) run(&shapes[i], NB_F32, &gen);
    }
    /* f64: the square sizes 128, 512, 1024 and 2048 (64 in a quick run). */
    if (do_f64 && do_square)
        for (int i = 0; i < n_square; i++) {
            int64_t s = shapes[i].m;
            if (quick ? s == 64 : (s == 128 || s >= 512)) run(&shapes[i], NB_F64, &gen);
        }
    return 0;
}
