/* moons: the main demo. A 2-16-16-1 multilayer perceptron learns to separate two interleaving half-moons.
 *
 * The model is an nn/ Sequential (Linear, ReLU, Linear, ReLU, Linear), trained on the full batch with SGD and
 * momentum from optim/. The loss is micrograd's demo loss: the max-margin loss mean(relu(1 - y * score)) with
 * labels y = -1 or +1, plus a small L2 penalty on the parameters. One training step is one scope: its
 * activations and the gradients of intermediates go away at nb_scope_end. At the end the program draws the
 * decision regions with the data points (--svg) and the loss curve (--loss-svg).
 *
 * --load starts from a checkpoint (with --steps 0 it only evaluates and draws it); --save writes one.
 *
 *     moons [--seed N] [--steps N] [--svg PATH] [--loss-svg PATH] [--save PATH] [--load PATH]
 */
#include <nabla.h>

#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N_POINTS 100
#define NOISE 0.1
#define HIDDEN 16
#define LEARNING_RATE 0.1 /* at the start; it decays linearly to a tenth of that at the end */
#define MOMENTUM 0.9
#define L2_ALPHA 1e-4
#define GRID 80 /* cells per side of the decision-region picture */

static void fail(void)
{
    fprintf(stderr, "moons: %s\n", nb_last_error());
    exit(EXIT_FAILURE);
}

/* Two half circles of radius 1, the second shifted by (1, -0.5) and flipped so that they interleave; gaussian
 * noise on both coordinates. Labels are -1 for the upper moon and +1 for the lower one. */
static void make_moons(uint64_t seed, float *xy, float *label)
{
    nb_generator gen;
    nb_generator_seed(&gen, seed);
    const double pi = acos(-1.0);
    for (int i = 0; i < N_POINTS; i++) {
        int lower = i >= N_POINTS / 2;
        int k = lower ? i - N_POINTS / 2 : i, n = lower ? N_POINTS - N_POINTS / 2 : N_POINTS / 2;
        double t = pi * k / (n - 1);
        double x = lower ? 1 - cos(t) : cos(t), y = lower ? 0.5 - sin(t) : sin(t);
        xy[2 * i] = (float)(x + NOISE * nb_random_normal(&gen));
        xy[2 * i + 1] = (float)(y + NOISE * nb_random_normal(&gen));
        label[i] = lower ? 1.0f : -1.0f;
    }
}

/* Fraction of points whose score has the sign of their label. */
static double accuracy(nb_tensor *score, const float *label)
{
    float s[N_POINTS];
    if (nb_to_array(score, s, N_POINTS, NB_F32) != NB_OK) fail();
    int correct = 0;
    for (int i = 0; i < N_POINTS; i++) correct += (s[i] > 0) == (label[i] > 0);
    return (double)correct / N_POINTS;
}

/* The plane colored by the model's prediction on a GRID x GRID grid (deeper where the score is larger), with
 * the training points on top. */
static bool draw_regions(const char *path, nb_module *model, const float *xy, const float *label)
{
    const double x0 = -1.6, x1 = 2.6, y0 = -1.2, y1 = 1.7, cw = (x1 - x0) / GRID, ch = (y1 - y0) / GRID;
    static float cells[2 * GRID * GRID], score[GRID * GRID];
    for (int r = 0; r < GRID; r++)
        for (int c = 0; c < GRID; c++) {
            cells[2 * (r * GRID + c)] = (float)(x0 + (c + 0.5) * cw);
            cells[2 * (r * GRID + c) + 1] = (float)(y0 + (r + 0.5) * ch);
        }
    nb_scope_begin();
    nb_no_grad_begin();
    nb_tensor *s = nb_forward(model, nb_from_array(cells, NB_SHAPE(GRID * GRID, 2), NB_F32));
    nb_status st = nb_to_array(s, score, GRID * GRID, NB_F32);
    nb_no_grad_end();
    nb_scope_end();
    if (st != NB_OK) fail();

    ex_svg svg;
    if (!ex_svg_open(&svg, path, 560, 420, x0, x1, y0, y1, "moons: decision regions of the 2-16-16-1 MLP"))
        return false;
    for (int r = 0; r < GRID; r++)
        for (int c = 0; c < GRID; c++) {
            double v = score[r * GRID + c];
            double opacity = 0.15 + 0.35 * fmin(1.0, fabs(v));
            ex_svg_rect(&svg, x0 + c * cw, y0 + r * ch, cw, ch, v > 0 ? "#d62728" : "#1f77b4", opacity);
        }
    for (int i = 0; i < N_POINTS; i++)
        ex_svg_dot(&svg, xy[2 * i], xy[2 * i + 1], 4, label[i] > 0 ? "#d62728" : "#1f77b4");
    ex_svg_close(&svg);
    return true;
}

static bool draw_loss(const char *path, int64_t n, const double *loss)
{
    double *x = ex_alloc_for("moons", "--steps", n, 0, 1, sizeof *x);
    double top = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = (double)(i + 1);
        if (isfinite(loss[i]) && loss[i] > top) top = loss[i];
    }
    ex_svg svg;
    bool ok = ex_svg_open(&svg, path, 560, 320, 1, (double)(n > 1 ? n : 2), 0, top > 0 ? top : 1,
                          "moons: training loss per step");
    if (ok) {
        ex_svg_line(&svg, (int)n, x, loss, "#d62728", "loss", 0);
        ex_svg_close(&svg);
    }
    free(x);
    return ok;
}

/* micrograd's demo loss: mean(relu(1 - y * score)) + alpha * sum of squared parameters. */
static nb_tensor *demo_loss(nb_tensor *score, nb_tensor *y, nb_param_list *params)
{
    nb_tensor *margin = nb_mean(nb_relu(nb_rsub_scalar(1.0, nb_mul(y, score))), 0, NULL, false);
    return nb_add(margin, nb_mul_scalar(nb_l2_penalty(params, false), L2_ALPHA));
}

int main(int argc, char **argv)
{
    int64_t seed = 42, steps = 1000;
    const char *svg_path = "moons.svg", *loss_svg_path = "moons_loss.svg", *save = NULL, *load = NULL;
    const ex_flag flags[] = {
        {"--seed", EX_INT, &seed, "seed of the data and the initial weights"},
        {"--steps", EX_INT, &steps, "number of full-batch SGD steps"},
        {"--svg", EX_STRING, &svg_path, "where to draw the decision regions"},
        {"--loss-svg", EX_STRING, &loss_svg_path, "where to draw the loss curve"},
        {"--save", EX_STRING, &save, "write the trained parameters to this safetensors file"},
        {"--load", EX_STRING, &load, "start from the parameters of this safetensors file"},
    };
    ex_parse_flags(argc, argv, "moons",
                   "Trains a 2-16-16-1 MLP on 100 noisy half-moon points with full-batch SGD and momentum.",
                   (int)(sizeof flags / sizeof flags[0]), flags);

    float xy[2 * N_POINTS], label[N_POINTS];
    make_moons((uint64_t)seed, xy, label);
    /* Data, model and optimizer are created outside any scope: the program owns them until they are freed. */
    nb_tensor *x = nb_from_array(xy, NB_SHAPE(N_POINTS, 2), NB_F32);
    nb_tensor *y = nb_from_array(label, NB_SHAPE(N_POINTS, 1), NB_F32);
    if (!x || !y) fail();
    nb_generator gen;
    nb_generator_seed(&gen, (uint64_t)seed + 1);
    nb_module *layers[] = {nb_linear_new(2, HIDDEN, true, &gen), nb_relu_layer_new(),
                           nb_linear_new(HIDDEN, HIDDEN, true, &gen), nb_relu_layer_new(),
                           nb_linear_new(HIDDEN, 1, true, &gen)};
    nb_module *model = nb_sequential_new(5, layers);
    nb_param_list *params = nb_module_parameters(model);
    if (!model || !params) fail();
    if (load) {
        nb_load_report report;
        if (nb_load_safetensors(load, params, NB_LOAD_STRICT, &report, NULL) != NB_OK) fail();
        fprintf(stderr, "moons: loaded %d tensors from %s\n", report.loaded, load);
    }
    nb_sgd_options opt_options = nb_sgd_defaults();
    opt_options.lr = LEARNING_RATE;
    opt_options.momentum = MOMENTUM;
    nb_optimizer *opt = nb_sgd_new(params, opt_options);
    if (!opt) fail();

    double *losses = ex_alloc_for("moons", "--steps", steps, 0, 1, sizeof *losses);
    /* The progress display shows ten rounds of steps/10 steps each, a line per round. */
    int64_t rounds = steps >= 10 ? 10 : (steps > 0 ? steps : 1), per_round = (steps + rounds - 1) / rounds;
    nb_progress *progress = nb_progress_new(NULL, rounds, per_round, 0);
    if (!progress) fail();

    double start = ex_now();
    for (int64_t step = 0; step < steps; step++) {
        nb_optimizer_set_lr(opt, LEARNING_RATE * (1.0 - 0.9 * (double)step / (double)steps));
        nb_scope_begin();
        nb_tensor *score = nb_forward(model, x);
        nb_tensor *loss = demo_loss(score, y, params);
        nb_optimizer_zero_grad(opt);
        if (nb_backward(loss) != NB_OK || nb_optimizer_step(opt) != NB_OK) fail();
        losses[step] = nb_item(loss);
        ex_check_loss("moons", losses[step], "step", step + 1);
        nb_progress_update(progress, step / per_round, step % per_round, N_POINTS, losses[step],
                           accuracy(score, label));
        if ((step + 1) % per_round == 0 || step + 1 == steps) nb_progress_end_epoch(progress, NULL);
        nb_scope_end();
    }
    double seconds = ex_now() - start;

    /* Accuracy of the final parameters. */
    nb_scope_begin();
    nb_no_grad_begin();
    nb_tensor *score = nb_forward(model, x);
    nb_tensor *final_loss = demo_loss(score, y, params);
    if (!final_loss) fail();
    double acc = accuracy(score, label), loss_value = nb_item(final_loss);
    nb_no_grad_end();
    nb_scope_end();

    if (save) {
        nb_metadata meta = {0};
        nb_metadata_set(&meta, "arch", "2-16-16-1 relu");
        if (nb_save_safetensors(save, params, &meta) != NB_OK) fail();
        fprintf(stderr, "moons: saved the parameters to %s\n", save);
    }
    bool charts_ok = true;
    if (svg_path && *svg_path) {
        if (draw_regions(svg_path, model, xy, label)) fprintf(stderr, "wrote %s\n", svg_path);
        else charts_ok = false;
    }
    if (loss_svg_path && *loss_svg_path) {
        if (draw_loss(loss_svg_path, steps, losses)) fprintf(stderr, "wrote %s\n", loss_svg_path);
        else charts_ok = false;
    }
    printf("result: train_accuracy=%.4f loss=%.4f steps=%lld seconds=%.3f\n", acc, loss_value,
           (long long)steps, seconds);

    free(losses);
    nb_progress_free(progress);
    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_module_free(model);
    nb_free(x);
    nb_free(y);
    return charts_ok ? 0 : EXIT_FAILURE;
}
