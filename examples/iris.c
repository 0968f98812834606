/* iris: a 4-5-3 network with sigmoid hidden units classifies Fisher's iris flowers.
 *
 * The classic small tabular workflow with nn/, optim/ and data/: read the CSV, split it 80/20 with a seed,
 * standardize the features with statistics of the training rows only (the test rows must not leak into them),
 * train Linear(4, H) -> Sigmoid -> Linear(H, 3) with cross-entropy and Adam on mini-batches, then report accuracy,
 * per-class precision/recall/F1 and the confusion matrix on the test rows. `--cv K` first runs K-fold
 * cross-validation on the training rows over a small grid of learning rates and hidden sizes, and trains the
 * final model with the best pair.
 *
 *     iris [--data DIR] [--seed N] [--epochs N] [--lr X] [--hidden N] [--cv K] [--save PATH] [--load PATH]
 * (--load takes the hidden size the file records, whatever --hidden says, and trains nothing: not with --cv)
 */
#include <nabla.h>

#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_FEATURES 4
#define N_CLASSES 3
#define BATCH 16

static const char *const class_names[N_CLASSES] = {"setosa", "versicolor", "virginica"};
static const char *const feature_names[N_FEATURES] = {"sepal_length", "sepal_width", "petal_length", "petal_width"};

static void fail(void)
{
    fprintf(stderr, "iris: %s\n", nb_last_error());
    exit(EXIT_FAILURE);
}

static nb_tensor *check(nb_tensor *t)
{
    if (!t) fail();
    return t;
}

static nb_module *make_model(int64_t hidden, uint64_t seed)
{
    nb_generator gen;
    nb_generator_seed(&gen, seed);
    nb_module *layers[] = {nb_linear_new(N_FEATURES, hidden, true, &gen), nb_sigmoid_layer_new(),
                           nb_linear_new(hidden, N_CLASSES, true, &gen)};
    nb_module *m = nb_sequential_new(3, layers);
    if (!m) fail();
    return m;
}

static nb_tensor *cross_entropy(nb_tensor *logits, nb_tensor *labels) { return nb_cross_entropy(logits, labels, NULL); }

/* Mini-batch Adam on (x, y); x already standardized. Returns the last epoch's mean loss. */
static double train(nb_module *model, nb_tensor *x, nb_tensor *y, double lr, int64_t epochs, uint64_t seed,
                    bool verbose)
{
    nb_param_list *params = nb_module_parameters(model);
    if (!params) fail();
    nb_adam_options opt_options = nb_adam_defaults();
    opt_options.lr = lr;
    nb_optimizer *opt = nb_adam_new(params, opt_options);
    nb_batch_iter *it = nb_batch_iter_new(x, y, BATCH, true, false, seed);
    if (!opt || !it) fail();
    int64_t every = epochs >= 10 ? epochs / 10 : 1;
    double epoch_loss = NAN;
    for (int64_t epoch = 0; epoch < epochs; epoch++) {
        epoch_loss = ex_train_epoch("iris", model, opt, it, cross_entropy, NULL, epoch);
        if (verbose && ((epoch + 1) % every == 0 || epoch == 0))
            printf("epoch %4lld  loss %.4f\n", (long long)(epoch + 1), epoch_loss);
    }
    nb_batch_iter_free(it);
    nb_optimizer_free(opt);
    nb_param_list_free(params);
    return epoch_loss;
}

/* Confusion matrix of the model's predictions on (x, y). Caller frees. */
static nb_confusion *evaluate(nb_module *model, nb_tensor *x, nb_tensor *y)
{
    nb_confusion *c = nb_confusion_new(N_CLASSES);
    if (!c) fail();
    nb_module_train(model, false);
    nb_scope_begin();
    nb_no_grad_begin();
    nb_tensor *pred = check(nb_argmax(nb_forward(model, x), 1, false));
    if (nb_confusion_add(c, pred, y) != NB_OK) fail();
    nb_no_grad_end();
    nb_scope_end();
    nb_module_train(model, true);
    return c;
}

/* Rows idx of x and y, as new caller-owned tensors. */
static void select_rows(nb_tensor *x, nb_tensor *y, nb_tensor *idx, nb_tensor **xs, nb_tensor **ys)
{
    *xs = check(nb_index_select(x, 0, idx));
    *ys = check(nb_index_select(y, 0, idx));
}

static nb_tensor *standardize(nb_standardizer *s, nb_tensor *x)
{
    nb_tensor *out = check(nb_standardizer_apply(s, x));
    return out;
}

/* Mean accuracy of K-fold cross-validation on (x, y) (raw features; each fold fits its own standardizer). */
/* The hidden size recorded in a file written with --save (its metadata "hidden"), or fallback for a file
 * without it. Read through a partial load into an empty list: the metadata alone, no tensor. */
static int64_t saved_hidden_size(const char *path, int64_t fallback)
{
    nb_param_list *none = nb_param_list_new();
    nb_metadata meta = {0};
    if (!none || nb_load_safetensors(path, none, NB_LOAD_PARTIAL, NULL, &meta) != NB_OK) fail();
    nb_param_list_free(none);
    const char *text = nb_metadata_get(&meta, "hidden");
    if (!text) return fallback;
    char *end;
    errno = 0;
    long long h = strtoll(text, &end, 10);
    if (errno || end == text || *end || h < 1 || h > 1000000) {
        fprintf(stderr, "iris: %s records hidden = \"%s\", not a hidden size\n", path, text);
        exit(EXIT_FAILURE);
    }
    return (int64_t)h;
}

static double cross_validate(nb_tensor *x, nb_tensor *y, int k, double lr, int64_t hidden, int64_t epochs,
                             uint64_t seed)
{
    double total = 0;
    for (int fold = 0; fold < k; fold++) {
        nb_tensor *tr_idx, *va_idx, *xtr, *ytr, *xva, *yva;
        if (nb_kfold_split(nb_shape(x)[0], k, fold, seed, &tr_idx, &va_idx) != NB_OK) fail();
        select_rows(x, y, tr_idx, &xtr, &ytr);
        select_rows(x, y, va_idx, &xva, &yva);
        nb_standardizer s;
        if (nb_standardizer_fit(&s, xtr) != NB_OK) fail();
        nb_tensor *xtr_s = standardize(&s, xtr), *xva_s = standardize(&s, xva);
        nb_module *model = make_model(hidden, seed + 1 + (uint64_t)fold);
        train(model, xtr_s, ytr, lr, epochs, seed + 2, false);
        nb_confusion *c = evaluate(model, xva_s, yva);
        total += nb_confusion_accuracy(c);
        nb_confusion_free(c);
        nb_module_free(model);
        nb_standardizer_free(&s);
        nb_tensor *temps[] = {tr_idx, va_idx, xtr, ytr, xva, yva, xtr_s, xva_s};
        for (size_t i = 0; i < sizeof temps / sizeof *temps; i++) nb_free(temps[i]);
    }
    return total / k;
}

int main(int argc, char **argv)
{
    int64_t seed = 42, epochs = 100, hidden = 5, cv = 0;
    double lr = 0.01;
    const char *data_flag = NULL, *save_path = NULL, *load_path = NULL;
    const ex_flag flags[] = {
        {"--data", EX_STRING, &data_flag, "directory holding iris.csv"},
        {"--seed", EX_INT, &seed, "seed of the split, the initial weights and the batch order"},
        {"--epochs", EX_INT, &epochs, "passes over the training rows"},
        {"--lr", EX_DOUBLE, &lr, "Adam's learning rate"},
        {"--hidden", EX_INT, &hidden, "hidden units"},
        {"--cv", EX_INT, &cv, "K > 1: K-fold cross-validation and a grid search over lr and hidden first"},
        {"--save", EX_STRING, &save_path, "write the trained parameters to this safetensors file"},
        {"--load", EX_STRING, &load_path, "load the parameters (and hidden size) from this safetensors file instead of training"},
    };
    ex_parse_flags(argc, argv, "iris",
                   "Classifies iris flowers with a 4-H-3 sigmoid network (cross-entropy, Adam, mini-batches of 16).",
                   (int)(sizeof flags / sizeof *flags), flags);
    if (epochs < 0 || hidden < 1 || cv < 0 || cv == 1 || !(lr > 0)) {
        fprintf(stderr, "iris: need --epochs >= 0, --hidden >= 1, --cv 0 or >= 2, --lr > 0\n");
        return 2;
    }
    /* The grid search picks the learning rate and hidden size of a training run; a loaded model is not trained and
     * keeps the hidden size of its file, so the search would only be printed and then ignored. */
    if (load_path && cv) {
        fprintf(stderr, "iris: --cv %lld chooses how to train, and --load %s trains nothing: give one or the other\n",
                (long long)cv, load_path);
        return 2;
    }

    const char *dir = ex_data_dir("iris", data_flag);
    char path[4096];
    snprintf(path, sizeof path, "%s/iris.csv", dir ? dir : ".");
    FILE *probe = dir ? fopen(path, "rb") : NULL;
    if (!probe) ex_data_missing("iris", data_flag, dir, path);
    fclose(probe);
    nb_csv *csv = nb_csv_read(path);
    if (!csv) fail();

    /* Feature columns by name, then the species column as i64 class indices. */
    int64_t n = csv->rows;
    double *values = malloc((size_t)(n * csv->cols) * sizeof *values);
    float *features = malloc((size_t)(n * N_FEATURES) * sizeof *features);
    int64_t *labels = malloc((size_t)n * sizeof *labels);
    if (!values || !features || !labels) {
        fprintf(stderr, "iris: out of memory\n");
        return EXIT_FAILURE;
    }
    if (nb_to_array(csv->values, values, n * csv->cols, NB_F64) != NB_OK) fail();
    int64_t col[N_FEATURES + 1];
    for (int j = 0; j <= N_FEATURES; j++) {
        const char *name = j < N_FEATURES ? feature_names[j] : "species";
        col[j] = nb_csv_column(csv, name);
        if (col[j] < 0) {
            fprintf(stderr, "iris: %s has no column '%s'\n", path, name);
            return EXIT_FAILURE;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < N_FEATURES; j++) {
            double v = values[i * csv->cols + col[j]];
            /* nb_csv_read takes "nan" and "inf" as numbers; one of them would make every weight nan. */
            if (!isfinite(v)) {
                fprintf(stderr, "iris: %s line %lld: %s is %g, not a finite number\n", path, (long long)(i + 2),
                        feature_names[j], v);
                return EXIT_FAILURE;
            }
            features[i * N_FEATURES + j] = (float)v;
        }
        double s = values[i * csv->cols + col[N_FEATURES]];
        if (s != 0 && s != 1 && s != 2) {
            fprintf(stderr, "iris: %s line %lld: species %g is not 0, 1 or 2\n", path, (long long)(i + 2), s);
            return EXIT_FAILURE;
        }
        labels[i] = (int64_t)s;
    }
    nb_tensor *x = check(nb_from_array(features, NB_SHAPE(n, N_FEATURES), NB_F32));
    nb_tensor *y = check(nb_from_array(labels, NB_SHAPE(n), NB_I64));
    free(values);
    free(features);
    free(labels);
    nb_csv_free(csv);

    double start = ex_now();
    nb_tensor *train_idx, *test_idx, *xtr, *ytr, *xte, *yte;
    if (nb_train_test_split(n, 0.2, (uint64_t)seed, &train_idx, &test_idx) != NB_OK) fail();
    select_rows(x, y, train_idx, &xtr, &ytr);
    select_rows(x, y, test_idx, &xte, &yte);
    printf("iris: %lld rows, %lld for training, %lld for testing\n", (long long)n, (long long)nb_shape(xtr)[0],
           (long long)nb_shape(xte)[0]);
    /* Accuracy over no test rows is 0/0, and a standardizer fitted on one row divides by a zero spread. */
    int64_t least_train = cv > 2 ? cv : 2;
    if (nb_shape(xtr)[0] < least_train || nb_shape(xte)[0] < 1) {
        fprintf(stderr, "iris: %s has too few rows (%lld) for an 80/20 split: need at least %lld training rows and "
                        "1 test row\n", path, (long long)n, (long long)least_train);
        return EXIT_FAILURE;
    }

    if (cv >= 2) {
        static const double lrs[] = {0.01, 0.05, 0.1};
        static const int64_t sizes[] = {3, 5, 8};
        double best = -1;
        printf("\n%d-fold cross-validation on the training rows, mean accuracy (%lld epochs each)\n", (int)cv,
               (long long)epochs);
        printf("%10s", "lr \\ H");
        for (int j = 0; j < 3; j++) printf("%8lld", (long long)sizes[j]);
        printf("\n");
        for (int i = 0; i < 3; i++) {
            printf("%10.2f", lrs[i]);
            for (int j = 0; j < 3; j++) {
                double acc = cross_validate(xtr, ytr, (int)cv, lrs[i], sizes[j], epochs, (uint64_t)seed);
                printf("%8.4f", acc);
                fflush(stdout);
                /* Ties keep the earlier (smaller) setting. */
                if (acc > best + 1e-12) {
                    best = acc;
                    lr = lrs[i];
                    hidden = sizes[j];
                }
            }
            printf("\n");
        }
        printf("best: lr=%.2f hidden=%lld (mean CV accuracy %.4f)\n\n", lr, (long long)hidden, best);
    }

    nb_standardizer scaler;
    if (nb_standardizer_fit(&scaler, xtr) != NB_OK) fail();
    nb_tensor *xtr_s = standardize(&scaler, xtr), *xte_s = standardize(&scaler, xte);
    if (load_path) hidden = saved_hidden_size(load_path, hidden);
    nb_module *model = make_model(hidden, (uint64_t)seed + 1);
    nb_param_list *params = nb_module_parameters(model);
    if (!params) fail();
    if (load_path) {
        if (nb_load_safetensors(load_path, params, NB_LOAD_STRICT, NULL, NULL) != NB_OK) fail();
        printf("loaded %s\n", load_path);
        epochs = 0;
    } else {
        printf("training 4-%lld-3 (sigmoid), Adam lr %g, %lld epochs\n", (long long)hidden, lr, (long long)epochs);
        train(model, xtr_s, ytr, lr, epochs, (uint64_t)seed + 2, true);
    }
    if (save_path) {
        nb_metadata meta = {0};
        char text[32];
        snprintf(text, sizeof text, "%lld", (long long)hidden);
        nb_metadata_set(&meta, "hidden", text);
        if (nb_save_safetensors(save_path, params, &meta) != NB_OK) fail();
        printf("saved %s\n", save_path);
    }

    nb_confusion *c = evaluate(model, xte_s, yte);
    double seconds = ex_now() - start;
    double accuracy = nb_confusion_accuracy(c), macro_f1 = nb_confusion_macro_f1(c);
    /* The matrix, then per-class precision/recall/F1 with their macro averages. */
    printf("\ntest split:\n");
    if (nb_confusion_print(c, stdout, class_names) != NB_OK) fail();
    printf("result: test_accuracy=%.4f macro_f1=%.4f epochs=%lld seconds=%.3f\n", accuracy, macro_f1,
           (long long)epochs, seconds);

    nb_confusion_free(c);
    nb_param_list_free(params);
    nb_module_free(model);
    nb_standardizer_free(&scaler);
    nb_tensor *owned[] = {x, y, train_idx, test_idx, xtr, ytr, xte, yte, xtr_s, xte_s};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) nb_free(owned[i]);
    return 0;
}
