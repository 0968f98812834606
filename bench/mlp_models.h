/* The MLP trainings that bench_mlp (one process) and bench_dist (several ranks) measure, built the same way in
 * both so that their figures compare: examples/mnist_mlp.c's networks, Adam with PyTorch's defaults and RMSprop
 * with lr 1e-3 (as mnist_mlp and the peer use). */
#ifndef NABLA_BENCH_MLP_MODELS_H
#define NABLA_BENCH_MLP_MODELS_H

#include "bench.h"

#include "../examples/common.h"

#include <stdint.h>

#define PIXELS 784
#define CLASSES 10

typedef struct config {
    const char *name; /* model key (--model): also the name of the peer's figure */
    int n_hidden;
    int64_t hidden[2];
    const char *optim;
    int64_t batch; /* per rank, in bench_dist */
} config;

static const config configs[] = {
    {"small32", 1, {128}, "adam", 32},
    {"small128", 1, {128}, "adam", 128},
    {"big128", 2, {512, 512}, "rmsprop", 128},
};

/* Exits with nabla's message, prefixed by program, on failure. */
static inline nb_module *mlp_build(const char *program, const config *c, nb_generator *gen)
{
    nb_module *layers[5];
    int n = 0;
    int64_t in = PIXELS;
    for (int i = 0; i < c->n_hidden; i++) {
        layers[n++] = nb_linear_new(in, c->hidden[i], true, gen);
        layers[n++] = nb_relu_layer_new();
        in = c->hidden[i];
    }
    layers[n++] = nb_linear_new(in, CLASSES, true, gen);
    nb_module *model = nb_sequential_new(n, layers);
    if (!model) ex_fail(program);
    return model;
}

static inline nb_optimizer *mlp_optimizer(const char *program, const config *c, const nb_param_list *params)
{
    nb_optimizer *opt;
    if (!strcmp(c->optim, "adam")) {
        opt = nb_adam_new(params, nb_adam_defaults());
    } else {
        nb_rmsprop_options o = nb_rmsprop_defaults();
        o.lr = 1e-3;
        opt = nb_rmsprop_new(params, o);
    }
    if (!opt) ex_fail(program);
    return opt;
}

/* The next batch of it, starting the next epoch when this one has run out. */
static inline void mlp_next_batch(const char *program, nb_batch_iter *it, nb_tensor **xb, nb_tensor **yb)
{
    nb_clear_error(); /* so that the status tells the epoch's end from an error */
    if (nb_batch_iter_next(it, xb, yb)) return;
    if (nb_last_status() != NB_OK || !nb_batch_iter_next(it, xb, yb)) ex_fail(program);
}

#endif
