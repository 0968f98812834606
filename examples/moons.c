/* moons: the main demo. A 2-16-16-1 multilayer perceptron learns to separate two interleaving half-moons.
 *
 * Everything is written with nabla's tensor ops, to show the bare engine: the parameters are leaves the program
 * owns, one training step is one scope (all its activations and gradients of intermediates go away at
 * nb_scope_end), and SGD updates the parameters in place under no-grad mode. The loss is micrograd's max-margin
 * loss, mean(relu(1 - y * score)) with labels y = -1 or +1, on the full batch.
 *
 *     moons [--seed N] [--steps N]
 */
#include <nabla.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_POINTS 100
#define NOISE 0.1
#define HIDDEN 16
#define LEARNING_RATE 0.3 /* at the start; it decays linearly to a tenth of that at the end */

enum { W1, B1, W2, B2, W3, B3, N_PARAMS };

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

/* A (fan_in, fan_out) weight with He-normal values, or a zero bias of size fan_out when fan_in is 0. */
static nb_tensor *parameter(int64_t fan_in, int64_t fan_out, nb_generator *gen)
{
    nb_tensor *p = fan_in ? nb_randn(NB_SHAPE(fan_in, fan_out), 0.0, sqrt(2.0 / (double)fan_in), NB_F32, gen)
                          : nb_zeros(NB_SHAPE(fan_out), NB_F32);
    if (!p || nb_set_requires_grad(p, true) != NB_OK) fail();
    return p;
}

/* (N, 2) points -> (N, 1) scores; positive means the lower moon. */
static nb_tensor *forward(nb_tensor *const *p, nb_tensor *x)
{
    nb_tensor *h = nb_relu(nb_add(nb_matmul(x, p[W1]), p[B1]));
    h = nb_relu(nb_add(nb_matmul(h, p[W2]), p[B2]));
    return nb_add(nb_matmul(h, p[W3]), p[B3]);
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

static long long parse_count(const char *flag, const char *text)
{
    char *end;
    errno = 0;
    long long v = text ? strtoll(text, &end, 10) : -1;
    if (!text || errno || *end || v < 0) {
        fprintf(stderr, "moons: %s needs a non-negative integer, got '%s'\n", flag, text ? text : "");
        exit(2);
    }
    return v;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    uint64_t seed = 42;
    long long steps = 1000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: moons [--seed N] [--steps N]\n"
                   "Trains a 2-16-16-1 MLP on %d noisy half-moon points with full-batch SGD.\n"
                   "  --seed N   seed of the data and the initial weights (default 42)\n"
                   "  --steps N  number of SGD steps (default 1000)\n",
                   N_POINTS);
            return 0;
        } else if (!strcmp(argv[i], "--seed")) {
            seed = (uint64_t)parse_count("--seed", i + 1 < argc ? argv[++i] : NULL);
        } else if (!strcmp(argv[i], "--steps")) {
            steps = parse_count("--steps", i + 1 < argc ? argv[++i] : NULL);
        } else {
            fprintf(stderr, "moons: unknown argument '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }

    float xy[2 * N_POINTS], label[N_POINTS];
    make_moons(seed, xy, label);
    /* Data and parameters are created outside any scope: the program owns them until nb_free. */
    nb_tensor *x = nb_from_array(xy, NB_SHAPE(N_POINTS, 2), NB_F32);
    nb_tensor *y = nb_from_array(label, NB_SHAPE(N_POINTS, 1), NB_F32);
    if (!x || !y) fail();
    nb_generator gen;
    nb_generator_seed(&gen, seed + 1);
    nb_tensor *p[N_PARAMS] = {parameter(2, HIDDEN, &gen), parameter(0, HIDDEN, &gen),
                              parameter(HIDDEN, HIDDEN, &gen), parameter(0, HIDDEN, &gen),
                              parameter(HIDDEN, 1, &gen), parameter(0, 1, &gen)};

    long long every = steps >= 10 ? steps / 10 : 1;
    double start = seconds_now();
    for (long long step = 1; step <= steps; step++) {
        nb_scope_begin();
        nb_tensor *score = forward(p, x);
        nb_tensor *loss = nb_mean(nb_relu(nb_rsub_scalar(1.0, nb_mul(y, score))), 0, NULL, false);
        if (nb_backward(loss) != NB_OK) fail();
        /* p -= lr * grad, not recorded; the gradient is then dropped so the next backward starts from zero. */
        double lr = LEARNING_RATE * (1.0 - 0.9 * (double)(step - 1) / (double)steps);
        nb_no_grad_begin();
        for (int i = 0; i < N_PARAMS; i++) {
            if (nb_copy_(p[i], nb_sub(p[i], nb_mul_scalar(nb_grad(p[i]), lr))) != NB_OK) fail();
            nb_zero_grad(p[i]);
        }
        nb_no_grad_end();
        if (step % every == 0 || step == 1)
            printf("step %5lld  loss %.4f  accuracy %.4f\n", step, nb_item(loss), accuracy(score, label));
        nb_scope_end();
    }

    /* Accuracy of the final parameters. */
    nb_scope_begin();
    nb_no_grad_begin();
    nb_tensor *score = forward(p, x);
    if (!score) fail();
    double acc = accuracy(score, label);
    nb_no_grad_end();
    nb_scope_end();
    printf("result: train_accuracy=%.4f steps=%lld seconds=%.3f\n", acc, steps, seconds_now() - start);

    for (int i = 0; i < N_PARAMS; i++) nb_free(p[i]);
    nb_free(x);
    nb_free(y);
    return 0;
}
