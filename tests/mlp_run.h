/* A small, complete training run shared by the reliability tests (test_resume, test_threads_independent,
 * test_flat_memory): an MLP with dropout, Adam, a step LR schedule, and the thread's default generator in use, with
 * a checkpoint that holds everything needed to resume exactly (model, optimizer state, schedule position,
 * generator state, step count) in one file. */
#ifndef NABLA_TEST_MLP_RUN_H
#define NABLA_TEST_MLP_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla.h"

#define MLP_IN 4
#define MLP_HIDDEN 16
#define MLP_OUT 3
#define MLP_ROWS 32
#define MLP_BATCH 8

typedef struct mlp_run {
    nb_module *model;
    nb_param_list *params; /* the model's parameters */
    nb_param_list *ckpt;   /* parameters + optimizer state: what a checkpoint holds */
    nb_optimizer *opt;
    nb_scheduler *sched;
    nb_tensor *x, *y; /* the data set, caller-owned */
    int64_t step;     /* steps done */
} mlp_run;

/* Builds the run; `seed` fixes the data, the initial weights and the dropout masks (through the calling thread's
 * default generator). Returns false with nabla's error recorded. */
static inline bool mlp_run_init(mlp_run *r, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    nb_generator g;
    nb_generator_seed(&g, seed);
    r->x = nb_randn(NB_SHAPE(MLP_ROWS, MLP_IN), 0, 1, NB_F32, &g);
    r->y = nb_randint(NB_SHAPE(MLP_ROWS), 0, MLP_OUT, &g);
    r->model = nb_sequential_new(4, (nb_module *[]){nb_linear_new(MLP_IN, MLP_HIDDEN, true, &g), nb_relu_layer_new(),
                                                    nb_dropout_new(0.25, NULL),
                                                    nb_linear_new(MLP_HIDDEN, MLP_OUT, true, &g)});
    nb_manual_seed(seed + 1000); /* dropout draws from the thread's default generator */
    if (!r->x || !r->y || !r->model) return false;
    r->params = nb_module_parameters(r->model);
    if (!r->params) return false;
    nb_adam_options o = nb_adam_defaults();
    o.lr = 0.02;
    r->opt = nb_adam_new(r->params, o);
    if (!r->opt) return false;
    r->sched = nb_step_lr_new(r->opt, 5, 0.8);
    if (!r->sched) return false;
    r->ckpt = nb_param_list_new();
    if (!r->ckpt) return false;
    for (int i = 0; i < r->params->count; i++)
        if (nb_param_list_add(r->ckpt, r->params->items[i].name, r->params->items[i].tensor, false)) return false;
    return nb_optimizer_state(r->opt, "optim", r->ckpt, NULL) == NB_OK;
}

/* One training step on the mini-batch the step number picks (deterministic: no iterator state to save). */
static inline bool mlp_run_step(mlp_run *r)
{
    nb_scope_begin();
    int64_t start = (r->step % (MLP_ROWS / MLP_BATCH)) * MLP_BATCH;
    nb_tensor *xb = nb_narrow(r->x, 0, start, MLP_BATCH), *yb = nb_narrow(r->y, 0, start, MLP_BATCH);
    nb_tensor *loss = nb_cross_entropy(nb_forward(r->model, xb), yb, NULL);
    nb_optimizer_zero_grad(r->opt);
    bool ok = loss && nb_backward(loss) == NB_OK && nb_optimizer_step(r->opt) == NB_OK &&
              nb_scheduler_step(r->sched) == NB_OK;
    nb_scope_end();
    if (ok) r->step++;
    return ok;
}

/* Writes the checkpoint (atomically: nb_save_safetensors replaces path only on success). */
static inline nb_status mlp_run_save(mlp_run *r, const char *path)
{
    nb_metadata meta = {0};
    nb_param_list *scratch = nb_param_list_new(); /* nb_optimizer_state's tensors are already in r->ckpt */
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)r->step);
    nb_status st = scratch ? nb_optimizer_state(r->opt, "optim", scratch, &meta) : NB_ERR_NOMEM;
    nb_param_list_free(scratch);
    if (!st) st = nb_scheduler_state(r->sched, "sched", &meta);
    if (!st) st = nb_generator_state(nb_default_generator(), "rng", &meta);
    if (!st) st = nb_metadata_set(&meta, "step", step);
    if (!st) st = nb_save_safetensors(path, r->ckpt, &meta);
    return st;
}

/* Restores everything from a checkpoint written by mlp_run_save into a run made by mlp_run_init.
 * restore_rng false skips the generator (to show that the test notices). */
static inline nb_status mlp_run_load(mlp_run *r, const char *path, bool restore_rng)
{
    nb_metadata meta;
    nb_status st = nb_load_safetensors(path, r->ckpt, NB_LOAD_STRICT, NULL, &meta);
    if (!st) st = nb_optimizer_restore(r->opt, &meta, "optim");
    if (!st) st = nb_scheduler_restore(r->sched, &meta, "sched");
    if (!st && restore_rng) st = nb_generator_restore(nb_default_generator(), &meta, "rng");
    const char *step = st ? NULL : nb_metadata_get(&meta, "step");
    if (!st && !step) st = NB_ERR_FORMAT;
    if (!st) r->step = strtoll(step, NULL, 10);
    return st;
}

static inline void mlp_run_free(mlp_run *r)
{
    nb_scheduler_free(r->sched);
    nb_optimizer_free(r->opt);
    nb_param_list_free(r->ckpt);
    nb_param_list_free(r->params);
    nb_module_free(r->model);
    nb_free(r->x);
    nb_free(r->y);
    memset(r, 0, sizeof *r);
}

/* True when the two lists hold the same names and bit-identical values; otherwise describes the first difference
 * in why. */
static inline bool mlp_lists_identical(const nb_param_list *a, const nb_param_list *b, char *why, size_t why_size)
{
    if (a->count != b->count) {
        snprintf(why, why_size, "%d tensors against %d", a->count, b->count);
        return false;
    }
    for (int i = 0; i < a->count; i++) {
        nb_tensor *ta = a->items[i].tensor, *tb = b->items[i].tensor;
        if (strcmp(a->items[i].name, b->items[i].name) != 0 || nb_numel(ta) != nb_numel(tb) ||
            nb_dtype_of(ta) != nb_dtype_of(tb)) {
            snprintf(why, why_size, "entry %d: %.60s against %.60s", i, a->items[i].name, b->items[i].name);
            return false;
        }
        nb_tensor *ca = nb_contiguous(ta), *cb = nb_contiguous(tb);
        size_t bytes = (size_t)nb_numel(ta) * nb_dtype_size(nb_dtype_of(ta));
        bool same = bytes == 0 || memcmp(nb_data(ca), nb_data(cb), bytes) == 0;
        if (!same) snprintf(why, why_size, "%.60s: the bits differ (zeros of different sign or NaNs)", a->items[i].name);
        if (!same)
            for (int64_t j = 0; j < nb_numel(ta); j++)
                if (nb_get_flat(ta, j) != nb_get_flat(tb, j)) {
                    snprintf(why, why_size, "%.60s element %lld: %.17g against %.17g", a->items[i].name, (long long)j,
                             nb_get_flat(ta, j), nb_get_flat(tb, j));
                    break;
                }
        nb_free(ca);
        nb_free(cb);
        if (!same) return false;
    }
    return true;
}

#endif
