/* mnist_mlp: a multilayer perceptron on MNIST handwritten digits, written with nn/, optim/ and data/.
 *
 * Images are read from the IDX files (gzip) of the data directory, scaled to [0, 1] and flattened to 784
 * values; the default network is 784-128-10 with ReLU, trained with Adam on mini-batches of 32 for 5 epochs
 * with the cross-entropy loss. Test accuracy is printed after each epoch, per-class precision and recall at the
 * end. Each training step is one scope: its activations and temporaries go away at nb_scope_end.
 *
 * Started with mpirun, it trains data-parallel (nb_dist.h): every rank holds the model, trains on its shard of
 * each epoch with --batch images per step, and the gradients are averaged over the ranks, so N ranks take the
 * steps one process would take with a batch of N x --batch. Evaluation is split over the ranks too; rank 0
 * prints and writes the files. With --checkpoint, training resumes from the file when it exists, and the file is
 * rewritten after each epoch; it holds early stopping's counters and best weights too, so a resumed run stops
 * where the uninterrupted one would (and one resumed after its stop trains no further).
 *
 * Regularization, all off by default: --dropout P after each hidden ReLU, --weight-decay L (the L2 penalty
 * (L/2) |w|^2 through the optimizer, as PyTorch's weight_decay), --l1 L (L |w|_1 added to the loss), and
 * --patience N: early stopping on the accuracy of a validation set (the last tenth of the training images,
 * held out), keeping the best epoch's weights.
 *
 *     mnist_mlp [--arch 128] [--optim adam|rmsprop|sgd] [--lr X] [--batch N] [--epochs N] [--limit N]
 *               [--dropout P] [--weight-decay L] [--l1 L] [--patience N]
 *               [--save PATH] [--load PATH] [--checkpoint PATH] [--seed N] [--data DIR]
 *     mpirun -np 2 mnist_mlp [...]
 */
#include <nabla.h>

#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIXELS 784
#define CLASSES 10
#define MAX_LAYERS 16

static _Noreturn void fail(void) { ex_fail("mnist_mlp"); }

/* "512,256" -> sizes; returns the count. */
static int parse_arch(const char *text, int64_t *sizes)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v <= 0 || n == MAX_LAYERS || (*end && *end != ',')) {
            fprintf(stderr, "mnist_mlp: --arch needs a comma-separated list of positive sizes, got '%s'\n", text);
            exit(2);
        }
        sizes[n++] = v;
        p = *end ? end + 1 : end;
    }
    return n;
}

static nb_module *build_model(int n_hidden, const int64_t *hidden, double dropout, nb_generator *gen)
{
    nb_module *layers[3 * MAX_LAYERS + 1];
    int n = 0;
    int64_t in = PIXELS;
    for (int i = 0; i < n_hidden; i++) {
        layers[n++] = nb_linear_new(in, hidden[i], true, gen);
        layers[n++] = nb_relu_layer_new();
        if (dropout > 0) layers[n++] = nb_dropout_new(dropout, gen);
        in = hidden[i];
    }
    layers[n++] = nb_linear_new(in, CLASSES, true, gen);
    nb_module *model = nb_sequential_new(n, layers);
    if (!model) fail();
    return model;
}

static nb_optimizer *make_optimizer(const char *name, const nb_param_list *params, double lr, double weight_decay)
{
    nb_optimizer *opt = NULL;
    if (!strcmp(name, "adam")) {
        nb_adam_options o = nb_adam_defaults();
        if (lr != 0) o.lr = lr;
        o.weight_decay = weight_decay;
        opt = nb_adam_new(params, o);
    } else if (!strcmp(name, "rmsprop")) {
        nb_rmsprop_options o = nb_rmsprop_defaults();
        o.lr = lr != 0 ? lr : 1e-3;
        o.weight_decay = weight_decay;
        opt = nb_rmsprop_new(params, o);
    } else if (!strcmp(name, "sgd")) {
        nb_sgd_options o = nb_sgd_defaults();
        o.lr = lr != 0 ? lr : 0.1;
        o.momentum = 0.9;
        o.weight_decay = weight_decay;
        opt = nb_sgd_new(params, o);
    } else {
        fprintf(stderr, "mnist_mlp: --optim must be adam, rmsprop or sgd, got '%s'\n", name);
        exit(2);
    }
    if (!opt) fail();
    return opt;
}

/* The L1 term needs the parameters, which the loss callback does not get. */
static const nb_param_list *l1_params;
static double l1_strength;

static nb_tensor *cross_entropy(nb_tensor *logits, nb_tensor *labels)
{
    nb_tensor *loss = nb_cross_entropy(logits, labels, NULL);
    if (l1_strength > 0) loss = nb_add(loss, nb_mul_scalar(nb_l1_penalty(l1_params, false), l1_strength));
    return loss;
}

int main(int argc, char **argv)
{
    ex_dist_init("mnist_mlp", &argc, &argv);
    const char *arch = "128", *optim = "adam", *save = NULL, *load = NULL, *checkpoint = NULL, *data = NULL;
    double lr = 0, dropout = 0, weight_decay = 0, l1 = 0;
    int64_t batch = 32, epochs = 5, limit = 0, seed = 42, patience = 0;
    const ex_flag flags[] = {
        {"--arch", EX_STRING, &arch, "hidden layer sizes, comma-separated (e.g. 512,512)"},
        {"--optim", EX_STRING, &optim, "optimizer: adam, rmsprop or sgd (with momentum 0.9)"},
        {"--lr", EX_DOUBLE, &lr, "learning rate (0: adam 1e-3, rmsprop 1e-3, sgd 0.1)"},
        {"--batch", EX_INT, &batch, "mini-batch size (of each rank, under mpirun)"},
        {"--epochs", EX_INT, &epochs, "passes over the training set"},
        {"--limit", EX_INT, &limit, "use only the first N training images (0: all)"},
        {"--dropout", EX_DOUBLE, &dropout, "dropout probability after each hidden layer, in [0, 1) (0: none)"},
        {"--weight-decay", EX_DOUBLE, &weight_decay, "L2 regularization through the optimizer's weight decay"},
        {"--l1", EX_DOUBLE, &l1, "L1 regularization: this times the sum of |w| added to the loss"},
        {"--patience", EX_INT, &patience,
         "early stopping: hold out a tenth of the training images, stop after N epochs without a better "
         "validation accuracy and keep the best weights (0: off)"},
        {"--save", EX_STRING, &save, "write the trained parameters to this safetensors file"},
        {"--load", EX_STRING, &load, "start from the parameters of this safetensors file"},
        {"--checkpoint", EX_STRING, &checkpoint, "resume from this file if it exists; rewrite it after each epoch"},
        {"--seed", EX_INT, &seed, "seed of the initial weights and the shuffling"},
        {"--data", EX_STRING, &data, "data directory (default $NABLA_DATA, else ../shared/data)"},
    };
    ex_parse_flags(argc, argv, "mnist_mlp", "Trains a multilayer perceptron on MNIST and reports its test accuracy.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    if (batch <= 0 || epochs < 0 || limit < 0) {
        fprintf(stderr, "mnist_mlp: --batch must be positive, --epochs and --limit non-negative\n");
        return 2;
    }
    if (!(dropout >= 0 && dropout < 1) || weight_decay < 0 || l1 < 0) {
        fprintf(stderr, "mnist_mlp: --dropout must be in [0, 1), --weight-decay and --l1 non-negative\n");
        return 2;
    }
    /* Only 0 means the optimizer's default: a negative rate is a mistake, not a request for the default. */
    if (lr < 0) {
        fprintf(stderr, "mnist_mlp: --lr must be positive (or 0 for the optimizer's default), got %g\n", lr);
        return 2;
    }
    int64_t hidden[MAX_LAYERS];
    int n_hidden = parse_arch(arch, hidden);

    const char *dir = ex_data_dir("mnist_mlp", data);
    ex_image_set mnist;
    if (!dir || !ex_load_image_set("mnist_mlp", dir, "mnist", &mnist)) {
        char what[4200];
        snprintf(what, sizeof what, "MNIST (the four files under %s/mnist)", dir ? dir : "DIR");
        ex_data_missing("mnist_mlp", data, dir, what);
    }
    nb_tensor *train_x = mnist.train_x, *train_y = mnist.train_y, *test_x = mnist.test_x, *test_y = mnist.test_y;
    if (limit > 0 && limit < nb_size(train_x, 0)) {
        nb_tensor *xv = nb_narrow(train_x, 0, 0, limit), *yv = nb_narrow(train_y, 0, 0, limit);
        nb_tensor *x = nb_clone(xv), *y = nb_clone(yv);
        if (!x || !y) fail();
        nb_free(xv);
        nb_free(yv);
        nb_free(train_x);
        nb_free(train_y);
        train_x = x;
        train_y = y;
    }
    /* Early stopping judges epochs on images it does not train on: the last tenth of the training set. */
    nb_tensor *val_x = NULL, *val_y = NULL;
    if (patience > 0) {
        int64_t n = nb_size(train_x, 0), n_val = n / 10;
        if (n_val < 1) {
            fprintf(stderr, "mnist_mlp: --patience needs at least 10 training images, got %lld\n", (long long)n);
            return 2;
        }
        nb_tensor *xs[2] = {nb_narrow(train_x, 0, 0, n - n_val), nb_narrow(train_x, 0, n - n_val, n_val)};
        nb_tensor *ys[2] = {nb_narrow(train_y, 0, 0, n - n_val), nb_narrow(train_y, 0, n - n_val, n_val)};
        nb_tensor *x = nb_clone(xs[0]), *y = nb_clone(ys[0]);
        val_x = nb_clone(xs[1]);
        val_y = nb_clone(ys[1]);
        if (!x || !y || !val_x || !val_y) fail();
        for (int i = 0; i < 2; i++) {
            nb_free(xs[i]);
            nb_free(ys[i]);
        }
        nb_free(train_x);
        nb_free(train_y);
        train_x = x;
        train_y = y;
    }
    printf("mnist_mlp: %lld training and %lld test images from %s/mnist\n", (long long)nb_size(train_x, 0),
           (long long)nb_size(test_x, 0), dir);
    if (val_x) printf("mnist_mlp: %lld validation images held out for early stopping\n", (long long)nb_size(val_x, 0));

    nb_generator gen;
    nb_generator_seed(&gen, (uint64_t)seed);
    nb_module *model = build_model(n_hidden, hidden, dropout, &gen);
    nb_param_list *params = nb_module_parameters(model);
    if (!params) fail();
    l1_params = params;
    l1_strength = l1;
    /* Rank 0 reads the file; the broadcast then gives every rank rank 0's weights, loaded or not. */
    nb_load_report report = {0};
    if (load && nb_dist_is_main() && nb_load_safetensors(load, params, NB_LOAD_STRICT, &report, NULL) != NB_OK)
        fail();
    ex_dist_broadcast("mnist_mlp", params);
    if (load)
        printf("mnist_mlp: loaded %d tensors from %s (test accuracy %.4f)\n", report.loaded, load,
               ex_accuracy("mnist_mlp", model, test_x, test_y, NULL));
    printf("mnist_mlp: %lld parameters, arch 784-%s-10, optimizer %s\n",
           (long long)nb_param_list_numel(params, true), arch, optim);
    int world = nb_dist_world_size();
    if (world > 1)
        printf("mnist_mlp: %d ranks (%d thread%s each), batch %lld per rank, global batch %lld\n", world,
               nb_num_threads(), nb_num_threads() == 1 ? "" : "s", (long long)batch, (long long)batch * world);
    nb_optimizer *opt = make_optimizer(optim, params, lr, weight_decay);
    nb_early_stopping *stopper = patience > 0 ? nb_early_stopping_new(patience, 0, true, true) : NULL;
    if (patience > 0 && !stopper) fail();
    nb_metadata identity = {0};
    if (nb_metadata_set(&identity, "arch", arch) != NB_OK) fail();
    ex_checkpoint ck;
    int64_t done = ex_checkpoint_open(&ck, "mnist_mlp", checkpoint, params, opt, NULL, stopper, &gen, &identity);

    /* Every rank draws the same shuffles (same seed) and takes its own part of each. */
    nb_batch_iter *it = nb_dist_batch_iter_new(train_x, train_y, batch, true, false, (uint64_t)seed + 1);
    if (!it) fail();
    ex_skip_epochs("mnist_mlp", it, done < epochs ? done : epochs);
    int64_t steps = nb_batch_iter_batches_per_epoch(it);
    nb_progress *progress = nb_dist_is_main() ? nb_progress_new(stderr, epochs, steps, steps / 10 > 0 ? steps / 10 : 1)
                                              : NULL;
    if (nb_dist_is_main() && !progress) fail();
    double start = ex_now(), test_acc = ex_accuracy("mnist_mlp", model, test_x, test_y, NULL);
    int64_t trained = done;
    /* A run resumed after its early stop trains no further. */
    for (int64_t epoch = done; epoch < epochs && !(stopper && nb_early_stopping_stopped(stopper)); epoch++) {
        double loss = ex_train_epoch("mnist_mlp", model, opt, it, cross_entropy, progress, epoch);
        trained = epoch + 1;
        test_acc = ex_accuracy("mnist_mlp", model, test_x, test_y, NULL);
        char extra[96];
        bool stop = false;
        if (stopper) {
            double val_acc = ex_accuracy("mnist_mlp", model, val_x, val_y, NULL);
            stop = nb_early_stopping_update(stopper, val_acc, params);
            if (nb_last_status() != NB_OK && !stop) fail();
            snprintf(extra, sizeof extra, "val_acc=%.4f test_acc=%.4f", val_acc, test_acc);
        } else {
            snprintf(extra, sizeof extra, "test_acc=%.4f", test_acc);
        }
        ex_checkpoint_save(&ck, epoch + 1); /* after the update: early stopping has seen this epoch */
        if (progress) nb_progress_end_epoch(progress, extra);
        if (world > 1)
            printf("epoch %lld/%lld  train loss %.4f  test accuracy %.4f  (%.1f s)\n", (long long)epoch + 1,
                   (long long)epochs, loss, test_acc, ex_now() - start);
        else
            printf("epoch %lld/%lld  test accuracy %.4f  (%.1f s)\n", (long long)epoch + 1, (long long)epochs,
                   test_acc, ex_now() - start);
        fflush(stdout);
        if (stop) {
            printf("mnist_mlp: early stop after epoch %lld: no better validation accuracy for %lld epochs\n",
                   (long long)epoch + 1, (long long)patience);
            break;
        }
    }
    double seconds = ex_now() - start;
    if (stopper && nb_early_stopping_best_epoch(stopper) >= 0) {
        if (nb_early_stopping_restore(stopper, params) != NB_OK) fail();
        test_acc = ex_accuracy("mnist_mlp", model, test_x, test_y, NULL);
        printf("mnist_mlp: kept the weights of epoch %lld (validation accuracy %.4f), test accuracy %.4f\n",
               (long long)nb_early_stopping_best_epoch(stopper) + 1, nb_early_stopping_best(stopper), test_acc);
    }

    nb_confusion *c = nb_confusion_new(CLASSES);
    if (!c) fail();
    ex_accuracy("mnist_mlp", model, test_x, test_y, c);
    printf("\nper-class precision and recall on the test set:\n");
    if (nb_confusion_print(c, stdout, NULL) != NB_OK) fail();
    if (save && nb_dist_is_main()) {
        nb_metadata meta = {0};
        nb_metadata_set(&meta, "arch", arch);
        if (nb_save_safetensors(save, params, &meta) != NB_OK) fail();
        printf("mnist_mlp: saved the parameters to %s\n", save);
    }
    printf("result: test_accuracy=%.4f epochs=%lld seconds=%.1f", test_acc, (long long)trained, seconds);
    if (world > 1) printf(" ranks=%d global_batch=%lld", world, (long long)batch * world);
    printf("\n");

    ex_checkpoint_close(&ck);
    nb_confusion_free(c);
    nb_progress_free(progress);
    nb_batch_iter_free(it);
    nb_early_stopping_free(stopper);
    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_module_free(model);
    nb_free(train_x);
    nb_free(train_y);
    nb_free(test_x);
    nb_free(test_y);
    nb_free(val_x);
    nb_free(val_y);
    ex_dist_finalize("mnist_mlp");
    return 0;
}
