/* regression: a one-hidden-layer ReLU network fits a noisy 1-D curve.
 *
 * The data are generated here: x uniform in [-3, 3], y = sin(2x) + 0.3 x + N(0, 0.1^2), seeded. A seeded 80/20
 * split, then Linear(1, 10) -> ReLU -> Linear(10, 1) trained with the mean squared error and Adam on mini-batches.
 * The network is a piecewise-linear function with at most 10 kinks, which is enough to follow the two periods of
 * sin(2x) on the interval. Prints the train and test MSE and the test R^2, and draws the points and the fitted
 * curve into an SVG file.
 *
 *     regression [--seed N] [--epochs N] [--lr X] [--points N] [--svg PATH] [--save PATH] [--load PATH]
 */
#include <nabla.h>

#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define HIDDEN 10
#define BATCH 8 /* small batches: their noise helps the few ReLU bends escape poor arrangements */
#define NOISE 0.1
#define X_MIN (-3.0)
#define X_MAX 3.0
#define CURVE_POINTS 301

static void fail(void)
{
    fprintf(stderr, "regression: %s\n", nb_last_error());
    exit(EXIT_FAILURE);
}

static nb_tensor *check(nb_tensor *t)
{
    if (!t) fail();
    return t;
}

static double target_function(double x)
{
    return sin(2 * x) + 0.3 * x;
}

/* Each hidden unit relu(w x + b) bends at x = -b / w. With PyTorch's default init (w, b ~ U(-1, 1)) those bends
 * crowd around 0, some fall outside [-3, 3] facing away from the data (zero on every point: no gradient, dead for
 * good), and 10 units are too few to lose any. So the first layer starts with one bend in each tenth of the range
 * (at a random place inside it) and slopes of +1 and -1 in turn, so that every part of the range has units opening
 * both ways. Even so, 10 units sometimes settle with too few bends somewhere: test R^2 varies with the seed. */
static void spread_kinks(nb_linear *fc, nb_generator *gen)
{
    float w[HIDDEN], b[HIDDEN];
    for (int i = 0; i < HIDDEN; i++) {
        double slope = i % 2 ? -1.0 : 1.0;
        double kink = X_MIN + (X_MAX - X_MIN) * (i + nb_random_uniform(gen)) / HIDDEN;
        w[i] = (float)slope;
        b[i] = (float)(-slope * kink);
    }
    nb_scope_begin();
    nb_no_grad_begin();
    nb_tensor *wt = check(nb_from_array(w, NB_SHAPE(HIDDEN, 1), NB_F32));
    nb_tensor *bt = check(nb_from_array(b, NB_SHAPE(HIDDEN), NB_F32));
    if (nb_copy_(fc->weight, wt) != NB_OK || nb_copy_(fc->bias, bt) != NB_OK) fail();
    nb_no_grad_end();
    nb_scope_end();
}

/* The model's predictions for the (N, 1) inputs x, copied into out (N values). */
static void predict(nb_module *model, nb_tensor *x, float *out)
{
    nb_scope_begin();
    nb_no_grad_begin();
    nb_tensor *p = check(nb_forward(model, x));
    if (nb_to_array(p, out, nb_numel(p), NB_F32) != NB_OK) fail();
    nb_no_grad_end();
    nb_scope_end();
}

static double mse(nb_module *model, nb_tensor *x, nb_tensor *y)
{
    nb_scope_begin();
    nb_no_grad_begin();
    double v = nb_item(check(nb_mse_loss(nb_forward(model, x), y, NB_REDUCTION_MEAN)));
    nb_no_grad_end();
    nb_scope_end();
    return v;
}

/* Copies the (N, 1) tensor t into a new malloc'ed array of N floats. */
static float *values_of(nb_tensor *t)
{
    int64_t n = nb_numel(t);
    float *v = malloc((size_t)n * sizeof *v);
    if (!v || nb_to_array(t, v, n, NB_F32) != NB_OK) fail();
    return v;
}

static bool write_svg(const char *path, nb_module *model, nb_tensor *xtr, nb_tensor *ytr, nb_tensor *xte,
                      nb_tensor *yte)
{
    double cx[CURVE_POINTS], cy[CURVE_POINTS], ty[CURVE_POINTS];
    float grid_in[CURVE_POINTS], grid_out[CURVE_POINTS];
    for (int i = 0; i < CURVE_POINTS; i++) {
        cx[i] = X_MIN + (X_MAX - X_MIN) * i / (CURVE_POINTS - 1);
        grid_in[i] = (float)cx[i];
        ty[i] = target_function(cx[i]);
    }
    nb_tensor *grid = check(nb_from_array(grid_in, NB_SHAPE(CURVE_POINTS, 1), NB_F32));
    predict(model, grid, grid_out);
    nb_free(grid);
    for (int i = 0; i < CURVE_POINTS; i++) cy[i] = grid_out[i];

    ex_svg s;
    if (!ex_svg_open(&s, path, 720, 450, X_MIN, X_MAX, -2.5, 2.5,
                     "regression: y = sin(2x) + 0.3x + noise, fitted by a 1-10-1 ReLU network"))
        return false;
    nb_tensor *sets[2][2] = {{xtr, ytr}, {xte, yte}};
    const char *colors[2] = {"#1f77b4", "#ff7f0e"};
    for (int k = 0; k < 2; k++) {
        float *xv = values_of(sets[k][0]), *yv = values_of(sets[k][1]);
        for (int64_t i = 0; i < nb_numel(sets[k][0]); i++) ex_svg_dot(&s, xv[i], yv[i], 3, colors[k]);
        free(xv);
        free(yv);
    }
    /* Zero-length lines only to put the dot colours in the legend. */
    ex_svg_line(&s, 1, cx, ty, colors[0], "training points", 0);
    ex_svg_line(&s, 1, cx, ty, colors[1], "test points", 1);
    ex_svg_line(&s, CURVE_POINTS, cx, ty, "#999999", "true function", 2);
    ex_svg_line(&s, CURVE_POINTS, cx, cy, "#d62728", "network", 3);
    ex_svg_close(&s);
    printf("wrote %s\n", path);
    return true;
}

static nb_tensor *mse_loss(nb_tensor *pred, nb_tensor *target) { return nb_mse_loss(pred, target, NB_REDUCTION_MEAN); }

int main(int argc, char **argv)
{
    int64_t seed = 42, epochs = 500, points = 200;
    double lr = 0.01;
    const char *svg_path = "regression.svg", *save_path = NULL, *load_path = NULL;
    const ex_flag flags[] = {
        {"--seed", EX_INT, &seed, "seed of the data, the split, the initial weights and the batch order"},
        {"--epochs", EX_INT, &epochs, "passes over the training points"},
        {"--lr", EX_DOUBLE, &lr, "Adam's learning rate"},
        {"--points", EX_INT, &points, "number of generated points (80% train, 20% test)"},
        {"--svg", EX_STRING, &svg_path, "chart of the points and the fitted curve ('' for none)"},
        {"--save", EX_STRING, &save_path, "write the trained parameters to this safetensors file"},
        {"--load", EX_STRING, &load_path, "load the parameters from this safetensors file instead of training"},
    };
    ex_parse_flags(argc, argv, "regression",
                   "Fits y = sin(2x) + 0.3x + noise with a 1-10-1 ReLU network (MSE, Adam, mini-batches of 8).",
                   (int)(sizeof flags / sizeof *flags), flags);
    if (epochs < 0 || points < 10 || !(lr > 0)) {
        fprintf(stderr, "regression: need --epochs >= 0, --points >= 10, --lr > 0\n");
        return 2;
    }

    /* The data set, owned by the program. */
    float *xs = ex_alloc_for("regression", "--points", points, 0, 1, sizeof *xs);
    float *ys = ex_alloc_for("regression", "--points", points, 0, 1, sizeof *ys);
    nb_generator gen;
    nb_generator_seed(&gen, (uint64_t)seed);
    for (int64_t i = 0; i < points; i++) {
        double x = X_MIN + (X_MAX - X_MIN) * nb_random_uniform(&gen);
        xs[i] = (float)x;
        ys[i] = (float)(target_function(x) + NOISE * nb_random_normal(&gen));
    }
    nb_tensor *x = check(nb_from_array(xs, NB_SHAPE(points, 1), NB_F32));
    nb_tensor *y = check(nb_from_array(ys, NB_SHAPE(points, 1), NB_F32));
    free(xs);
    free(ys);
    nb_tensor *train_idx, *test_idx;
    if (nb_train_test_split(points, 0.2, (uint64_t)seed + 1, &train_idx, &test_idx) != NB_OK) fail();
    nb_tensor *xtr = check(nb_index_select(x, 0, train_idx)), *ytr = check(nb_index_select(y, 0, train_idx));
    nb_tensor *xte = check(nb_index_select(x, 0, test_idx)), *yte = check(nb_index_select(y, 0, test_idx));

    nb_generator_seed(&gen, (uint64_t)seed + 2);
    nb_module *layers[] = {nb_linear_new(1, HIDDEN, true, &gen), nb_relu_layer_new(),
                           nb_linear_new(HIDDEN, 1, true, &gen)};
    nb_module *model = nb_sequential_new(3, layers);
    if (!model) fail();
    spread_kinks((nb_linear *)nb_sequential_get(model, 0), &gen);
    nb_param_list *params = nb_module_parameters(model);
    if (!params) fail();

    double start = ex_now();
    if (load_path) {
        if (nb_load_safetensors(load_path, params, NB_LOAD_STRICT, NULL, NULL) != NB_OK) fail();
        printf("loaded %s\n", load_path);
        epochs = 0;
    } else {
        nb_adam_options options = nb_adam_defaults();
        options.lr = lr;
        nb_optimizer *opt = nb_adam_new(params, options);
        nb_batch_iter *it = nb_batch_iter_new(xtr, ytr, BATCH, true, false, (uint64_t)seed + 3);
        if (!opt || !it) fail();
        int64_t every = epochs >= 10 ? epochs / 10 : 1;
        for (int64_t epoch = 0; epoch < epochs; epoch++) {
            double loss = ex_train_epoch("regression", model, opt, it, mse_loss, NULL, epoch);
            if ((epoch + 1) % every == 0 || epoch == 0)
                printf("epoch %4lld  train loss %.5f\n", (long long)(epoch + 1), loss);
        }
        nb_batch_iter_free(it);
        nb_optimizer_free(opt);
    }
    if (save_path) {
        if (nb_save_safetensors(save_path, params, NULL) != NB_OK) fail();
        printf("saved %s\n", save_path);
    }
    double seconds = ex_now() - start;

    double train_mse = mse(model, xtr, ytr), test_mse = mse(model, xte, yte);
    /* R^2 = 1 - SS_res / SS_tot on the test points. */
    float *yv = values_of(yte);
    int64_t n_test = nb_numel(yte);
    double mean = 0, ss_tot = 0;
    for (int64_t i = 0; i < n_test; i++) mean += yv[i];
    mean /= (double)n_test;
    for (int64_t i = 0; i < n_test; i++) ss_tot += (yv[i] - mean) * (yv[i] - mean);
    free(yv);
    double r2 = 1.0 - test_mse * (double)n_test / ss_tot;
    printf("train MSE %.5f  test MSE %.5f  test R^2 %.4f  (noise variance %.4f)\n", train_mse, test_mse, r2,
           NOISE * NOISE);
    bool svg_ok = !(svg_path && *svg_path) || write_svg(svg_path, model, xtr, ytr, xte, yte);
    printf("result: train_mse=%.5f test_mse=%.5f r2=%.4f epochs=%lld seconds=%.3f\n", train_mse, test_mse, r2,
           (long long)epochs, seconds);

    nb_param_list_free(params);
    nb_module_free(model);
    nb_tensor *owned[] = {x, y, train_idx, test_idx, xtr, ytr, xte, yte};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) nb_free(owned[i]);
    return svg_ok ? 0 : EXIT_FAILURE;
}
