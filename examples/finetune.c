/* finetune: transfer learning with a frozen body, then unfrozen, against training from scratch.
 *
 * 1. Pretrains a 784-128-10 MLP (Linear, ReLU, Linear; Adam lr 1e-3, batch 32) on the MNIST training digits 0-4
 *    and saves it as safetensors.
 * 2. The new task has few labels, the usual reason to fine-tune: by default 1,000 training images of digits
 *    5-9 (relabelled 0-4), or of Fashion-MNIST with --target fashion (10 classes). Builds the same body with a
 *    fresh head, loads the checkpoint with NB_LOAD_PARTIAL (a 5-class head mismatches the file's and is
 *    skipped; a 10-class one loads and is then replaced), freezes the body ("0") and trains only the head, on
 *    the body's features computed once.
 * 3. Unfreezes the body and trains the whole network for --unfreeze-epochs with discriminative learning rates:
 *    Adam with two parameter groups, the body at --body-lr-factor times the head's --lr, optionally both driven
 *    by OneCycleLR stepped per batch (--one-cycle). Every batch now runs the whole network.
 * 4. Trains the whole network from scratch on the same data until it reaches the head-only accuracy of stage 2
 *    (checked ten times per epoch) or runs out of its epoch budget, and prints both training times.
 * Times count training (and the feature extraction) only, not the evaluations.
 *
 *     finetune [--pretrain-epochs N] [--epochs N] [--lr X] [--unfreeze-epochs N] [--body-lr-factor X]
 *              [--one-cycle] [--scratch-epochs N] [--target digits|fashion] [--target-limit N] [--limit N]
 *              [--save PATH] [--seed N] [--data DIR]
 */
#include <nabla.h>

#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIXELS 784
#define HIDDEN 128
#define BATCH 32

static void fail(void)
{
    fprintf(stderr, "finetune: %s\n", nb_last_error());
    exit(EXIT_FAILURE);
}

static void select_classes(nb_tensor *x, nb_tensor *y, int lo, int hi, int64_t limit, nb_tensor **xo,
                           nb_tensor **yo)
{
    int64_t n = nb_size(y, 0), count = 0;
    int64_t *index = malloc((size_t)n * sizeof *index), *labels = malloc((size_t)n * sizeof *labels);
    if (!index || !labels) {
        fprintf(stderr, "finetune: out of memory\n");
        exit(EXIT_FAILURE);
    }
    for (int64_t i = 0; i < n && (limit <= 0 || count < limit); i++) {
        int64_t label = (int64_t)nb_get_flat(y, i);
        if (label < lo || label > hi) continue;
        index[count] = i;
        labels[count++] = label - lo;
    }
    nb_tensor *idx = nb_from_array(index, NB_SHAPE(count), NB_I64);
    *xo = nb_index_select(x, 0, idx);
    *yo = nb_from_array(labels, NB_SHAPE(count), NB_I64);
    if (!*xo || !*yo) fail();
    nb_free(idx);
    free(index);
    free(labels);
}

static nb_module *build_model(int64_t classes, nb_generator *gen)
{
    nb_module *layers[3] = {nb_linear_new(PIXELS, HIDDEN, true, gen), nb_relu_layer_new(),
                            nb_linear_new(HIDDEN, classes, true, gen)};
    nb_module *model = nb_sequential_new(3, layers);
    if (!model) fail();
    return model;
}

/* The frozen body's output (Linear, ReLU) for every row of x, computed without a graph in chunks. */
static nb_tensor *body_features(nb_module *model, nb_tensor *x)
{
    enum { CHUNK = 1000 };
    int64_t n = nb_size(x, 0);
    int chunks = (int)((n + CHUNK - 1) / CHUNK);
    nb_tensor **parts = calloc((size_t)(chunks > 0 ? chunks : 1), sizeof *parts);
    if (!parts) {
        fprintf(stderr, "finetune: out of memory\n");
        exit(EXIT_FAILURE);
    }
    nb_no_grad_begin();
    nb_scope_begin();
    for (int c = 0; c < chunks; c++) {
        int64_t start = (int64_t)c * CHUNK, len = n - start < CHUNK ? n - start : CHUNK;
        nb_tensor *h = nb_forward(nb_sequential_get(model, 0), nb_narrow(x, 0, start, len));
        parts[c] = nb_forward(nb_sequential_get(model, 1), h);
    }
    nb_tensor *features = nb_keep(nb_contiguous(nb_cat(chunks, parts, 0)));
    nb_scope_end();
    nb_no_grad_end();
    free(parts);
    if (!features) fail();
    return features;
}

/* Runs `epochs` epochs of it through model and opt, stepping sched (NULL: none) after every batch, as PyTorch's
 * OneCycleLR expects; when target > 0, evaluates ten times per epoch and stops as soon as the test accuracy
 * reaches target. Returns the training seconds (evaluation excluded) and the final test accuracy in *acc. */
static double run_epochs(const char *phase, nb_module *model, nb_optimizer *opt, nb_scheduler *sched,
                         nb_batch_iter *it, nb_tensor *test_x, nb_tensor *test_y, int64_t epochs, double target,
                         double *acc)
{
    int64_t steps = nb_batch_iter_batches_per_epoch(it);
    int64_t check_every = target > 0 && steps >= 10 ? steps / 10 : steps;
    nb_progress *progress = nb_progress_new(stderr, epochs, steps, steps / 10 > 0 ? steps / 10 : 1);
    double seconds = 0;
    bool reached = false;
    *acc = ex_accuracy("finetune", model, test_x, test_y, NULL);
    for (int64_t epoch = 0; epoch < epochs && !reached; epoch++) {
        nb_tensor *xb, *yb;
        for (int64_t step = 0;; step++) {
            double t0 = ex_now();
            nb_scope_begin();
            nb_clear_error();
            if (!nb_batch_iter_next(it, &xb, &yb)) {
                nb_scope_end();
                if (nb_last_status() != NB_OK) fail();
                break;
            }
            nb_tensor *loss = nb_cross_entropy(nb_forward(model, xb), yb, NULL);
            if (!loss) fail();
            double value = nb_item(loss);
            ex_check_loss("finetune", value, "epoch", epoch + 1);
            nb_optimizer_zero_grad(opt);
            if (nb_backward(loss) != NB_OK || nb_optimizer_step(opt) != NB_OK) fail();
            if (sched && nb_scheduler_step(sched) != NB_OK) fail();
            nb_progress_update(progress, epoch, step, nb_size(xb, 0), value, NAN);
            nb_scope_end();
            seconds += ex_now() - t0;
            if (target > 0 && (step + 1) % check_every == 0 &&
                (*acc = ex_accuracy("finetune", model, test_x, test_y, NULL)) >= target) {
                reached = true;
                break;
            }
        }
        if (!reached) *acc = ex_accuracy("finetune", model, test_x, test_y, NULL);
        char extra[64];
        snprintf(extra, sizeof extra, "test_acc=%.4f", *acc);
        nb_progress_end_epoch(progress, extra);
        printf("%s: epoch %lld/%lld  test accuracy %.4f  (%.2f s training)%s\n", phase, (long long)epoch + 1,
               (long long)epochs, *acc, seconds, reached ? "  target reached" : "");
        fflush(stdout);
    }
    nb_progress_free(progress);
    return seconds;
}

/* Trains the parameters of `trainable` with Adam at one lr (see run_epochs). */
static double train(const char *phase, nb_module *model, const nb_param_list *trainable, nb_tensor *x, nb_tensor *y,
                    nb_tensor *test_x, nb_tensor *test_y, int64_t epochs, double lr, double target, uint64_t seed,
                    double *acc)
{
    nb_adam_options o = nb_adam_defaults();
    o.lr = lr;
    nb_optimizer *opt = nb_adam_new(trainable, o);
    nb_batch_iter *it = nb_batch_iter_new(x, y, BATCH, true, false, seed);
    if (!opt || !it) fail();
    double seconds = run_epochs(phase, model, opt, NULL, it, test_x, test_y, epochs, target, acc);
    nb_batch_iter_free(it);
    nb_optimizer_free(opt);
    return seconds;
}

/* The classic last stage of fine-tuning: once the head fits the pretrained features, the whole network trains,
 * the body at a fraction of the head's lr (discriminative learning rates: the body's features are already good
 * and would be wrecked by the steps a fresh head needs), each in its own Adam parameter group as PyTorch's
 * Adam([{"params": body, "lr": ...}, {"params": head}]) would have it. The features now change with every step,
 * so unlike the head-only stage each batch runs the whole network forward and backward. Returns the training
 * seconds and the test accuracy in *acc. */
static double train_unfrozen(nb_module *model, nb_param_list *all, nb_tensor *x, nb_tensor *y, nb_tensor *test_x,
                             nb_tensor *test_y, int64_t epochs, double head_lr, double body_factor, bool one_cycle,
                             uint64_t seed, double *acc)
{
    /* Collected per module with the model's prefixes, the two groups' names stay distinct, which the optimizer
     * requires of its parameters (its checkpoint state is keyed by name). */
    nb_param_list *body = nb_param_list_new(), *head = nb_param_list_new();
    if (!body || !head || nb_module_collect(nb_sequential_get(model, 0), "0", body) != NB_OK ||
        nb_module_collect(nb_sequential_get(model, 2), "2", head) != NB_OK)
        fail();
    if (nb_param_list_set_frozen(all, "0", false) != 2) fail();
    printf("unfreeze: body unfrozen, %lld of %lld parameters trainable\n",
           (long long)nb_param_list_numel(all, true), (long long)nb_param_list_numel(all, false));
    nb_adam_options o = nb_adam_defaults();
    o.lr = head_lr * body_factor;
    nb_optimizer *opt = nb_adam_new(body, o);
    o.lr = head_lr;
    if (!opt || nb_adam_add_param_group(opt, head, o) != NB_OK) fail();
    nb_batch_iter *it = nb_batch_iter_new(x, y, BATCH, true, false, seed);
    if (!it) fail();
    int64_t steps = nb_batch_iter_batches_per_epoch(it);
    nb_scheduler *sched = NULL;
    if (one_cycle) {
        if (steps > 0 && epochs > INT64_MAX / steps) {
            fprintf(stderr, "finetune: --unfreeze-epochs %lld is too many batches for --one-cycle\n",
                    (long long)epochs);
            exit(2);
        }
        /* Each group peaks at its own lr, so the ratio between body and head holds over the whole cycle. */
        const double peaks[2] = {head_lr * body_factor, head_lr};
        sched = nb_one_cycle_lr_new(opt, 2, peaks, epochs * steps, nb_one_cycle_defaults());
        if (!sched) fail();
        printf("unfreeze: lr body=%g head=%g, OneCycleLR per batch to body=%g head=%g over %lld batches\n",
               nb_optimizer_get_group_lr(opt, 0), nb_optimizer_get_group_lr(opt, 1), peaks[0], peaks[1],
               (long long)(epochs * steps));
    } else {
        printf("unfreeze: lr body=%g head=%g\n", nb_optimizer_get_group_lr(opt, 0), nb_optimizer_get_group_lr(opt, 1));
    }
    double seconds = run_epochs("unfreeze", model, opt, sched, it, test_x, test_y, epochs, 0, acc);
    nb_scheduler_free(sched);
    nb_batch_iter_free(it);
    nb_optimizer_free(opt);
    nb_param_list_free(body);
    nb_param_list_free(head);
    return seconds;
}

int main(int argc, char **argv)
{
    const char *save = "finetune_pretrained.safetensors", *data = NULL, *target = "digits";
    int64_t pretrain_epochs = 1, epochs = 20, unfreeze_epochs = 5, scratch_epochs = 50, limit = 0, target_limit = 1000,
            seed = 42;
    double head_lr = 1e-2, body_lr_factor = 0.1;
    bool one_cycle = false;
    const ex_flag flags[] = {
        {"--pretrain-epochs", EX_INT, &pretrain_epochs, "epochs of pretraining on digits 0-4"},
        {"--epochs", EX_INT, &epochs, "epochs of fine-tuning the head"},
        {"--lr", EX_DOUBLE, &head_lr, "Adam learning rate of the head while fine-tuning (both stages)"},
        {"--unfreeze-epochs", EX_INT, &unfreeze_epochs,
         "epochs of training the whole network after the head (0: skip)"},
        {"--body-lr-factor", EX_DOUBLE, &body_lr_factor, "the body's lr once unfrozen, as a fraction of --lr"},
        {"--one-cycle", EX_BOOL, &one_cycle, "drive both lrs of the unfrozen stage by OneCycleLR, stepped per batch"},
        {"--scratch-epochs", EX_INT, &scratch_epochs, "epoch budget of training from scratch"},
        {"--target", EX_STRING, &target, "new task: digits (5-9) or fashion (Fashion-MNIST, 10 classes)"},
        {"--limit", EX_INT, &limit, "use at most N training images per phase (0: all)"},
        {"--target-limit", EX_INT, &target_limit, "labelled images of the new task (0: all, or --limit)"},
        {"--save", EX_STRING, &save, "where to write the pretrained checkpoint (safetensors)"},
        {"--seed", EX_INT, &seed, "seed of the initial weights and the shuffling"},
        {"--data", EX_STRING, &data, "data directory (default $NABLA_DATA, else ../shared/data)"},
    };
    ex_parse_flags(argc, argv, "finetune",
                   "Pretrains an MLP on digits 0-4, fine-tunes its head on a new task, then the whole network with "
                   "a smaller lr for the body, and compares with training from scratch.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    bool fashion = !strcmp(target, "fashion");
    if (!fashion && strcmp(target, "digits")) {
        fprintf(stderr, "finetune: --target must be digits or fashion, got '%s'\n", target);
        return 2;
    }
    if (target_limit == 0) target_limit = limit;
    if (pretrain_epochs < 0 || epochs < 0 || limit < 0) {
        fprintf(stderr, "finetune: --pretrain-epochs, --epochs and --limit must be non-negative\n");
        return 2;
    }
    if (!(head_lr > 0)) {
        fprintf(stderr, "finetune: --lr must be positive, got %g\n", head_lr);
        return 2;
    }
    if (!(body_lr_factor > 0) || !isfinite(head_lr * body_lr_factor)) {
        fprintf(stderr, "finetune: --body-lr-factor must be positive and give a finite lr, got %g\n", body_lr_factor);
        return 2;
    }

    const char *dir = ex_data_dir("finetune", data);
    ex_image_set mnist = {0}, fmnist = {0};
    if (!dir || !ex_load_image_set("finetune", dir, "mnist", &mnist) ||
        (fashion && !ex_load_image_set("finetune", dir, "fashion-mnist", &fmnist))) {
        char what[4200];
        snprintf(what, sizeof what, "%s (the four files under %s/%s)", fashion ? "MNIST and Fashion-MNIST" : "MNIST",
                 dir ? dir : "DIR", fashion ? "{mnist,fashion-mnist}" : "mnist");
        ex_data_missing("finetune", data, dir, what);
    }
    nb_generator gen;
    nb_generator_seed(&gen, (uint64_t)seed);

    /* 1. Pretraining on digits 0-4. */
    nb_tensor *pre_x, *pre_y, *pre_tx, *pre_ty;
    select_classes(mnist.train_x, mnist.train_y, 0, 4, limit, &pre_x, &pre_y);
    select_classes(mnist.test_x, mnist.test_y, 0, 4, 0, &pre_tx, &pre_ty);
    printf("pretrain: %lld training and %lld test images of digits 0-4\n", (long long)nb_size(pre_x, 0),
           (long long)nb_size(pre_tx, 0));
    nb_module *pre = build_model(10, &gen);
    nb_param_list *pre_params = nb_module_parameters(pre);
    if (!pre_params) fail();
    double pretrain_acc;
    train("pretrain", pre, pre_params, pre_x, pre_y, pre_tx, pre_ty, pretrain_epochs, 1e-3, 0, (uint64_t)seed + 1,
          &pretrain_acc);
    nb_metadata meta = {0};
    nb_metadata_set(&meta, "task", "mnist digits 0-4");
    if (nb_save_safetensors(save, pre_params, &meta) != NB_OK) fail();
    printf("pretrain: test accuracy on digits 0-4 %.4f, saved to %s\n", pretrain_acc, save);
    nb_param_list_free(pre_params);
    nb_module_free(pre);
    nb_free(pre_x);
    nb_free(pre_y);
    nb_free(pre_tx);
    nb_free(pre_ty);

    /* The new task. */
    int64_t classes = fashion ? 10 : 5;
    nb_tensor *x, *y, *tx, *ty;
    if (fashion) {
        select_classes(fmnist.train_x, fmnist.train_y, 0, 9, target_limit, &x, &y);
        select_classes(fmnist.test_x, fmnist.test_y, 0, 9, 0, &tx, &ty);
    } else {
        select_classes(mnist.train_x, mnist.train_y, 5, 9, target_limit, &x, &y);
        select_classes(mnist.test_x, mnist.test_y, 5, 9, 0, &tx, &ty);
    }
    printf("target: %s, %lld training and %lld test images, %lld classes\n",
           fashion ? "Fashion-MNIST" : "digits 5-9 (as 0-4)", (long long)nb_size(x, 0), (long long)nb_size(tx, 0),
           (long long)classes);

    /* 2. Fine-tuning: load what fits (a 10-class head mismatches the file and is reported), then give the model
     * a fresh head in every case, since the pretrained one answers another question. */
    nb_module *ft = build_model(classes, &gen);
    nb_param_list *ft_params = nb_module_parameters(ft);
    if (!ft_params) fail();
    nb_load_report report;
    if (nb_load_safetensors(save, ft_params, NB_LOAD_PARTIAL, &report, NULL) != NB_OK) fail();
    printf("finetune: loaded %d tensors from %s (%d mismatched)\n", report.loaded, save, report.mismatched);
    size_t len = strlen(report.details);
    if (len) printf("%s%s", report.details, report.details[len - 1] == '\n' ? "" : "\n");
    nb_param_list_free(ft_params);
    if (nb_sequential_set(ft, 2, nb_linear_new(HIDDEN, classes, true, &gen)) != NB_OK) fail();
    ft_params = nb_module_parameters(ft);
    if (!ft_params || nb_param_list_set_frozen(ft_params, "0", true) != 2) fail();
    printf("finetune: body frozen, %lld of %lld parameters trainable\n",
           (long long)nb_param_list_numel(ft_params, true), (long long)nb_param_list_numel(ft_params, false));
    double before = ex_accuracy("finetune", ft, tx, ty, NULL), after;
    printf("finetune: test accuracy before fine-tuning %.4f\n", before);
    /* A frozen body computes the same features every epoch, so they are computed once and the head trains on
     * them: each step then costs a 128x5 product instead of the whole network's forward and backward. The
     * extraction counts as fine-tuning time; the test features serve evaluation only. */
    double t0 = ex_now();
    nb_tensor *features = body_features(ft, x);
    double extract_seconds = ex_now() - t0;
    nb_tensor *test_features = body_features(ft, tx);
    nb_module *head_module = nb_sequential_get(ft, 2);
    nb_param_list *head = nb_module_parameters(head_module);
    if (!head) fail();
    double ft_seconds = extract_seconds + train("finetune", head_module, head, features, y, test_features, ty, epochs,
                                                head_lr, 0, (uint64_t)seed + 2, &after);
    printf("finetune: test accuracy after %.4f in %.2f s (%.2f s of it extracting features)\n", after, ft_seconds,
           extract_seconds);
    /* The head trained on cached features is the whole model's head: both must agree (up to rounding where
     * different batch sizes take different product kernels). */
    double unfrozen = ex_accuracy("finetune", ft, tx, ty, NULL), unfreeze_seconds = 0;
    if (fabs(unfrozen - after) > 0.01) {
        fprintf(stderr, "finetune: the whole model disagrees with its head on cached features\n");
        return EXIT_FAILURE;
    }
    nb_param_list_free(head);

    /* 3. The whole network, body unfrozen at a smaller lr. */
    if (unfreeze_epochs > 0) {
        unfreeze_seconds = train_unfrozen(ft, ft_params, x, y, tx, ty, unfreeze_epochs, head_lr, body_lr_factor,
                                          one_cycle, (uint64_t)seed + 4, &unfrozen);
        printf("unfreeze: test accuracy %.4f after %lld epochs in %.2f s (head only %.4f)\n", unfrozen,
               (long long)unfreeze_epochs, unfreeze_seconds, after);
    }
    nb_param_list_free(ft_params);
    nb_free(features);
    nb_free(test_features);
    nb_module_free(ft);

    /* 4. The same network from scratch, stopped as soon as it matches the head-only accuracy: the cheap stage is
     * the one whose time a fresh start must beat. */
    nb_module *scratch = build_model(classes, &gen);
    nb_param_list *sc_params = nb_module_parameters(scratch);
    if (!sc_params) fail();
    double scratch_acc;
    double sc_seconds =
        train("scratch", scratch, sc_params, x, y, tx, ty, scratch_epochs, 1e-3, after, (uint64_t)seed + 3,
              &scratch_acc);
    double saved = sc_seconds - ft_seconds;
    printf("scratch: test accuracy %.4f in %.2f s (%s the fine-tuned %.4f); fine-tuning %s %.2f s", scratch_acc,
           sc_seconds, scratch_acc >= after ? "reached" : "did not reach", after, saved >= 0 ? "saved" : "cost",
           fabs(saved));
    if (ft_seconds > 0 && scratch_acc >= after) printf(", %.1fx sooner", sc_seconds / ft_seconds);
    printf("\n");
    printf("result: pretrain_accuracy=%.4f before=%.4f after=%.4f unfrozen=%.4f scratch=%.4f finetune_seconds=%.3f "
           "unfreeze_seconds=%.3f scratch_seconds=%.3f saved_seconds=%.3f\n",
           pretrain_acc, before, after, unfrozen, scratch_acc, ft_seconds, unfreeze_seconds, sc_seconds, saved);

    nb_param_list_free(sc_params);
    nb_module_free(scratch);
    nb_free(x);
    nb_free(y);
    nb_free(tx);
    nb_free(ty);
    ex_free_image_set(&mnist);
    if (fashion) ex_free_image_set(&fmnist);
    return 0;
}
