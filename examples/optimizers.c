/* optimizers: the same small network trained from the same initial weights with six optimizer setups, and an SVG
 * chart of their loss curves.
 *
 * The data set is a three-arm spiral (300 points, generated here), the model a 2-32-32-3 MLP with tanh, the loss
 * the cross-entropy on the full batch. Setups: plain SGD, SGD with momentum 0.9, RMSprop, Adam, and Adam with a
 * StepLR (halved every 100 steps) or an ExponentialLR (x0.995 per step) schedule; the schedules are stepped once
 * per training step.
 *
 *     optimizers [--steps N] [--seed N] [--svg PATH]
 */
#include <nabla.h>

#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARMS 3
#define PER_ARM 100
#define N_POINTS (ARMS * PER_ARM)
#define HIDDEN 32

enum { SGD, MOMENTUM, RMSPROP, ADAM, ADAM_STEP, ADAM_EXP, N_SETUPS };
static const char *const setup_key[N_SETUPS] = {"sgd", "momentum", "rmsprop", "adam", "adam_step", "adam_exp"};
static const char *const setup_label[N_SETUPS] = {
    "SGD lr 0.1", "SGD+momentum 0.9 lr 0.1", "RMSprop lr 0.01", "Adam lr 0.01", "Adam + StepLR(100, 0.5)",
    "Adam + ExponentialLR(0.995)"};
static const char *const setup_color[N_SETUPS] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};

static void fail(void)
{
    fprintf(stderr, "optimizers: %s\n", nb_last_error());
    exit(EXIT_FAILURE);
}

/* ARMS arms of an Archimedean spiral, each turned by 2 pi / ARMS, with gaussian noise on the angle. */
static void make_spiral(uint64_t seed, float *xy, int64_t *label)
{
    nb_generator gen;
    nb_generator_seed(&gen, seed);
    const double pi = acos(-1.0);
    for (int arm = 0; arm < ARMS; arm++) {
        for (int k = 0; k < PER_ARM; k++) {
            int i = arm * PER_ARM + k;
            double r = (double)k / PER_ARM;
            double t = 4.0 * r + 2.0 * pi * arm / ARMS + 0.2 * nb_random_normal(&gen);
            xy[2 * i] = (float)(r * sin(t));
            xy[2 * i + 1] = (float)(r * cos(t));
            label[i] = arm;
        }
    }
}

static nb_module *build_model(uint64_t seed)
{
    /* Same seed for every setup: all start from the same weights. */
    nb_generator gen;
    nb_generator_seed(&gen, seed);
    nb_module *layers[] = {nb_linear_new(2, HIDDEN, true, &gen), nb_tanh_layer_new(),
                           nb_linear_new(HIDDEN, HIDDEN, true, &gen), nb_tanh_layer_new(),
                           nb_linear_new(HIDDEN, ARMS, true, &gen)};
    nb_module *model = nb_sequential_new((int)(sizeof layers / sizeof layers[0]), layers);
    if (!model) fail();
    return model;
}

static nb_optimizer *make_optimizer(int setup, const nb_param_list *params, nb_scheduler **sched)
{
    nb_optimizer *opt = NULL;
    *sched = NULL;
    if (setup == SGD || setup == MOMENTUM) {
        nb_sgd_options o = nb_sgd_defaults();
        o.lr = 0.1;
        o.momentum = setup == MOMENTUM ? 0.9 : 0.0;
        opt = nb_sgd_new(params, o);
    } else if (setup == RMSPROP) {
        nb_rmsprop_options o = nb_rmsprop_defaults();
        o.lr = 0.01;
        opt = nb_rmsprop_new(params, o);
    } else {
        nb_adam_options o = nb_adam_defaults();
        o.lr = 0.01;
        opt = nb_adam_new(params, o);
    }
    if (!opt) fail();
    if (setup == ADAM_STEP) *sched = nb_step_lr_new(opt, 100, 0.5);
    if (setup == ADAM_EXP) *sched = nb_exponential_lr_new(opt, 0.995);
    if ((setup == ADAM_STEP || setup == ADAM_EXP) && !*sched) fail();
    return opt;
}

/* Trains one setup for `steps` full-batch steps, storing the loss before each update in losses[0..steps-1] and the
 * loss of the final weights in losses[steps]. */
static void train(int setup, uint64_t seed, int64_t steps, nb_tensor *x, nb_tensor *y, double *losses)
{
    nb_module *model = build_model(seed);
    nb_param_list *params = nb_module_parameters(model);
    if (!params) fail();
    nb_scheduler *sched;
    nb_optimizer *opt = make_optimizer(setup, params, &sched);
    for (int64_t step = 0; step <= steps; step++) {
        nb_scope_begin();
        if (step == steps) nb_no_grad_begin();
        nb_tensor *loss = nb_cross_entropy(nb_forward(model, x), y, NULL);
        if (!loss) fail();
        losses[step] = nb_item(loss);
        ex_check_loss("optimizers", losses[step], "step", step);
        if (step == steps) {
            nb_no_grad_end();
        } else {
            nb_optimizer_zero_grad(opt);
            if (nb_backward(loss) != NB_OK || nb_optimizer_step(opt) != NB_OK) fail();
            if (sched && nb_scheduler_step(sched) != NB_OK) fail();
        }
        nb_scope_end();
    }
    nb_scheduler_free(sched);
    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_module_free(model);
}

int main(int argc, char **argv)
{
    int64_t steps = 500, seed = 42;
    const char *svg_path = "optimizers.svg";
    const ex_flag flags[] = {
        {"--steps", EX_INT, &steps, "full-batch training steps per optimizer"},
        {"--seed", EX_INT, &seed, "seed of the data and the (shared) initial weights"},
        {"--svg", EX_STRING, &svg_path, "where to write the chart of the loss curves"},
    };
    ex_parse_flags(argc, argv, "optimizers", "Compares optimizers and schedules on one small classification problem.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    if (steps < 1) {
        fprintf(stderr, "optimizers: --steps must be positive\n");
        return 2;
    }

    float xy[2 * N_POINTS];
    int64_t label[N_POINTS];
    make_spiral((uint64_t)seed, xy, label);
    nb_tensor *x = nb_from_array(xy, NB_SHAPE(N_POINTS, 2), NB_F32);
    nb_tensor *y = nb_from_array(label, NB_SHAPE(N_POINTS), NB_I64);
    if (!x || !y) fail();

    double *losses = ex_alloc_for("optimizers", "--steps", steps, 1, N_SETUPS, sizeof *losses);
    double *xs = ex_alloc_for("optimizers", "--steps", steps, 1, 1, sizeof *xs);
    double start = ex_now(), ymax = 0;
    for (int s = 0; s < N_SETUPS; s++) {
        double *l = losses + (size_t)s * (size_t)(steps + 1);
        train(s, (uint64_t)seed + 1, steps, x, y, l);
        for (int64_t i = 0; i <= steps; i++)
            if (isfinite(l[i]) && l[i] > ymax) ymax = l[i];
        printf("%-28s final loss %.4f\n", setup_label[s], l[steps]);
    }
    for (int64_t i = 0; i <= steps; i++) xs[i] = (double)i;

    ex_svg svg;
    bool svg_ok = ex_svg_open(&svg, svg_path, 720, 440, 0, (double)steps, 0, ymax * 1.05,
                              "Cross-entropy on a 3-arm spiral, 2-32-32-3 tanh MLP");
    if (svg_ok) {
        for (int s = 0; s < N_SETUPS; s++)
            ex_svg_line(&svg, (int)(steps + 1), xs, losses + (size_t)s * (size_t)(steps + 1), setup_color[s],
                        setup_label[s], s);
        ex_svg_close(&svg);
        printf("optimizers: wrote %s\n", svg_path);
    }

    printf("result:");
    for (int s = 0; s < N_SETUPS; s++) printf(" %s=%.4f", setup_key[s], losses[(size_t)s * (size_t)(steps + 1) + (size_t)steps]);
    printf(" steps=%lld seconds=%.2f\n", (long long)steps, ex_now() - start);

    free(losses);
    free(xs);
    nb_free(x);
    nb_free(y);
    return svg_ok ? 0 : EXIT_FAILURE;
}
