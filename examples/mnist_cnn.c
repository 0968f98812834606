/* mnist_cnn: a small convolutional network on MNIST (or Fashion-MNIST), written with nn/, optim/ and data/.
 *
 *     (1, 28, 28) -> Conv 3x3, 32 -> ReLU -> MaxPool 2 -> Conv 3x3, 64 -> ReLU -> MaxPool 2   (64, 5, 5)
 *                 -> Flatten -> Linear 1600-128 -> ReLU -> Linear 128-10
 *
 * trained with Adam (lr 1e-3, optionally decayed after each epoch with --lr-decay) on mini-batches of 64 with the
 * cross-entropy loss, for 5 epochs on MNIST and 10 on Fashion-MNIST (a harder task: 5 epochs reach about 0.896,
 * 10 about 0.914). Test accuracy is printed after each epoch.
 * With --save the parameters are written to a safetensors file, read back into a freshly built network, and
 * that network's test accuracy is reported too (it must be the same).
 *
 * Started with mpirun, it trains data-parallel as mnist_mlp does (--batch per rank; the global batch is N x
 * --batch). With --checkpoint, training resumes from the file when it exists (model, Adam's state, the learning
 * rate schedule and the epoch), and the file is rewritten after each epoch.
 *
 *     mnist_cnn [--dataset mnist|fashion] [--epochs N] [--batch N] [--lr X] [--lr-decay X] [--limit N] [--save PATH]
 *               [--load PATH] [--checkpoint PATH] [--seed N] [--data DIR]
 *     mpirun -np 2 mnist_cnn [...]
 */
#include <nabla.h>

#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLASSES 10

static _Noreturn void fail(void) { ex_fail("mnist_cnn"); }

static nb_module *build_model(nb_generator *gen)
{
    nb_module *model = ex_mnist_cnn_new(gen);
    if (!model) fail();
    return model;
}

static nb_tensor *cross_entropy(nb_tensor *logits, nb_tensor *labels) { return nb_cross_entropy(logits, labels, NULL); }

/* (N, 784) images as (N, 1, 28, 28), replacing *x. */
static void to_images(nb_tensor **x)
{
    nb_tensor *img = nb_clone(nb_reshape(*x, NB_SHAPE(-1, 1, 28, 28)));
    if (!img) fail();
    nb_free(*x);
    *x = img;
}

int main(int argc, char **argv)
{
    ex_dist_init("mnist_cnn", &argc, &argv);
    const char *dataset = "mnist", *save = NULL, *load = NULL, *checkpoint = NULL, *data = NULL;
    double lr = 1e-3, lr_decay = 1.0;
    int64_t batch = 64, epochs = -1, limit = 0, seed = 42;
    const ex_flag flags[] = {
        {"--dataset", EX_STRING, &dataset, "mnist (handwritten digits) or fashion (Fashion-MNIST)"},
        {"--epochs", EX_INT_AUTO, &epochs, "passes over the training set (-1: 5 for mnist, 10 for fashion)"},
        {"--batch", EX_INT, &batch, "mini-batch size (of each rank, under mpirun)"},
        {"--lr", EX_DOUBLE, &lr, "Adam's learning rate"},
        {"--lr-decay", EX_DOUBLE, &lr_decay, "factor applied to the learning rate after each epoch (1: constant)"},
        {"--limit", EX_INT, &limit, "use only the first N training images (0: all)"},
        {"--save", EX_STRING, &save, "write the trained parameters to this safetensors file, then reload and check them"},
        {"--load", EX_STRING, &load, "start from the parameters of this safetensors file"},
        {"--checkpoint", EX_STRING, &checkpoint, "resume from this file if it exists; rewrite it after each epoch"},
        {"--seed", EX_INT, &seed, "seed of the initial weights and the shuffling"},
        {"--data", EX_STRING, &data, "data directory (default $NABLA_DATA, else ../shared/data)"},
    };
    ex_parse_flags(argc, argv, "mnist_cnn", "Trains a convolutional network on MNIST and reports its test accuracy.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    if (batch <= 0 || epochs < -1 || limit < 0 || !(lr > 0) || !(lr_decay > 0 && lr_decay <= 1)) {
        fprintf(stderr, "mnist_cnn: --batch and --lr must be positive, --lr-decay in (0, 1], --limit non-negative, --epochs non-negative or -1\n");
        return 2;
    }
    bool fashion = !strcmp(dataset, "fashion");
    if (!fashion && strcmp(dataset, "mnist")) {
        fprintf(stderr, "mnist_cnn: --dataset must be mnist or fashion, got '%s'\n", dataset);
        return 2;
    }
    const char *sub = fashion ? "fashion-mnist" : "mnist";
    if (epochs < 0) epochs = fashion ? 10 : 5;

    const char *dir = ex_data_dir("mnist_cnn", data);
    ex_image_set set;
    if (!dir || !ex_load_image_set("mnist_cnn", dir, sub, &set)) {
        char what[4200];
        snprintf(what, sizeof what, "%s (the four files under %s/%s)", sub, dir ? dir : "DIR", sub);
        ex_data_missing("mnist_cnn", data, dir, what);
    }
    if (limit > 0 && limit < nb_size(set.train_x, 0)) {
        nb_tensor *xv = nb_narrow(set.train_x, 0, 0, limit), *yv = nb_narrow(set.train_y, 0, 0, limit);
        nb_tensor *x = nb_clone(xv), *y = nb_clone(yv);
        if (!x || !y) fail();
        nb_free(xv);
        nb_free(yv);
        nb_free(set.train_x);
        nb_free(set.train_y);
        set.train_x = x;
        set.train_y = y;
    }
    to_images(&set.train_x);
    to_images(&set.test_x);
    printf("mnist_cnn: %lld training and %lld test images from %s/%s\n", (long long)nb_size(set.train_x, 0),
           (long long)nb_size(set.test_x, 0), dir, sub);

    nb_generator gen;
    nb_generator_seed(&gen, (uint64_t)seed);
    nb_module *model = build_model(&gen);
    nb_param_list *params = nb_module_parameters(model);
    if (!params) fail();
    /* Rank 0 reads the file; the broadcast then gives every rank rank 0's weights, loaded or not. */
    nb_load_report report = {0};
    if (load && nb_dist_is_main() && nb_load_safetensors(load, params, NB_LOAD_STRICT, &report, NULL) != NB_OK)
        fail();
    ex_dist_broadcast("mnist_cnn", params);
    if (load)
        printf("mnist_cnn: loaded %d tensors from %s (test accuracy %.4f)\n", report.loaded, load,
               ex_accuracy("mnist_cnn", model, set.test_x, set.test_y, NULL));
    printf("mnist_cnn: %lld parameters, conv 32-64 + linear 128, Adam lr %g (x %g per epoch), batch %lld\n",
           (long long)nb_param_list_numel(params, true), lr, lr_decay, (long long)batch);
    int world = nb_dist_world_size();
    if (world > 1)
        printf("mnist_cnn: %d ranks (%d thread%s each), batch %lld per rank, global batch %lld\n", world,
               nb_num_threads(), nb_num_threads() == 1 ? "" : "s", (long long)batch, (long long)batch * world);
    nb_adam_options o = nb_adam_defaults();
    o.lr = lr;
    nb_optimizer *opt = nb_adam_new(params, o);
    nb_scheduler *schedule = opt ? nb_exponential_lr_new(opt, lr_decay) : NULL;
    if (!schedule) fail();
    nb_metadata identity = {0};
    if (nb_metadata_set(&identity, "model", "mnist_cnn") != NB_OK || nb_metadata_set(&identity, "dataset", dataset))
        fail();
    ex_checkpoint ck;
    int64_t done = ex_checkpoint_open(&ck, "mnist_cnn", checkpoint, params, opt, schedule, NULL, &gen, &identity);

    /* Every rank draws the same shuffles (same seed) and takes its own part of each. */
    nb_batch_iter *it = nb_dist_batch_iter_new(set.train_x, set.train_y, batch, true, false, (uint64_t)seed + 1);
    if (!it) fail();
    ex_skip_epochs("mnist_cnn", it, done < epochs ? done : epochs);
    int64_t steps = nb_batch_iter_batches_per_epoch(it);
    nb_progress *progress = nb_dist_is_main() ? nb_progress_new(stderr, epochs, steps, steps / 20 > 0 ? steps / 20 : 1)
                                              : NULL;
    if (nb_dist_is_main() && !progress) fail();
    double start = ex_now(), test_acc = ex_accuracy("mnist_cnn", model, set.test_x, set.test_y, NULL);
    for (int64_t epoch = done; epoch < epochs; epoch++) {
        double t0 = ex_now();
        double loss = ex_train_epoch("mnist_cnn", model, opt, it, cross_entropy, progress, epoch);
        double train_seconds = ex_now() - t0;
        if (nb_scheduler_step(schedule) != NB_OK) fail();
        test_acc = ex_accuracy("mnist_cnn", model, set.test_x, set.test_y, NULL);
        ex_checkpoint_save(&ck, epoch + 1);
        char extra[64];
        snprintf(extra, sizeof extra, "test_acc=%.4f", test_acc);
        if (progress) nb_progress_end_epoch(progress, extra);
        if (world > 1)
            printf("epoch %lld/%lld  train loss %.4f  test accuracy %.4f  (training %.1f s, %.0f images/s on %d "
                   "ranks; %.1f s in all)\n",
                   (long long)epoch + 1, (long long)epochs, loss, test_acc, train_seconds,
                   (double)nb_size(set.train_x, 0) / train_seconds, world, ex_now() - start);
        else
            printf("epoch %lld/%lld  test accuracy %.4f  (training %.1f s, %.0f images/s; %.1f s in all)\n",
                   (long long)epoch + 1, (long long)epochs, test_acc, train_seconds,
                   (double)nb_size(set.train_x, 0) / train_seconds, ex_now() - start);
        fflush(stdout);
    }
    double seconds = ex_now() - start;

    double reloaded = test_acc;
    if (save) {
        nb_metadata meta = {0};
        nb_metadata_set(&meta, "model", "mnist_cnn");
        nb_metadata_set(&meta, "dataset", dataset);
        if (nb_dist_is_main() && nb_save_safetensors(save, params, &meta) != NB_OK) fail();
        /* A network built from another seed, then given the saved parameters, must classify identically (rank 0
         * reads the file back; the broadcast hands its weights to the other ranks, which evaluate their part). */
        nb_generator other;
        nb_generator_seed(&other, (uint64_t)seed + 1000);
        nb_module *copy = build_model(&other);
        nb_param_list *copy_params = nb_module_parameters(copy);
        if (!copy_params ||
            (nb_dist_is_main() && nb_load_safetensors(save, copy_params, NB_LOAD_STRICT, NULL, NULL) != NB_OK))
            fail();
        ex_dist_broadcast("mnist_cnn", copy_params);
        reloaded = ex_accuracy("mnist_cnn", copy, set.test_x, set.test_y, NULL);
        printf("mnist_cnn: saved the parameters to %s; reloaded, they give test accuracy %.4f (%s)\n", save, reloaded,
               reloaded == test_acc ? "the same" : "DIFFERENT");
        nb_param_list_free(copy_params);
        nb_module_free(copy);
    }
    printf("result: test_accuracy=%.4f reloaded=%.4f epochs=%lld seconds=%.1f", test_acc, reloaded,
           (long long)epochs, seconds);
    if (world > 1) printf(" ranks=%d global_batch=%lld", world, (long long)batch * world);
    printf("\n");

    ex_checkpoint_close(&ck);
    nb_progress_free(progress);
    nb_scheduler_free(schedule);
    nb_batch_iter_free(it);
    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_module_free(model);
    ex_free_image_set(&set);
    ex_dist_finalize("mnist_cnn");
    return reloaded == test_acc ? 0 : 1;
}
