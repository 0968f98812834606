/* Shared helpers for the example programs. */
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(const char *program, const char *summary, int n, const ex_flag *flags)
{
    printf("usage: %s [flags]\n%s\n\nflags:\n", program, summary);
    for (int i = 0; i < n; i++) {
        const ex_flag *f = &flags[i];
        char def[64] = "";
        switch (f->kind) {
        case EX_INT:
        case EX_INT_AUTO: snprintf(def, sizeof def, " (default %lld)", (long long)*(int64_t *)f->value); break;
        case EX_DOUBLE: snprintf(def, sizeof def, " (default %g)", *(double *)f->value); break;
        case EX_STRING:
            if (*(const char **)f->value) snprintf(def, sizeof def, " (default %s)", *(const char **)f->value);
            break;
        case EX_BOOL: break;
        }
        printf("  %-14s %s%s\n", f->name, f->help, def);
    }
}

void ex_parse_flags(int argc, char **argv, const char *program, const char *summary, int n, const ex_flag *flags)
{
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            usage(program, summary, n, flags);
            fflush(stdout);
            nb_dist_finalize(); /* under mpirun, a rank that exits without it counts as failed */
            exit(0);
        }
        const ex_flag *f = NULL;
        for (int i = 0; i < n; i++)
            if (!strcmp(argv[a], flags[i].name)) f = &flags[i];
        if (!f) {
            fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", program, argv[a]);
            exit(2);
        }
        if (f->kind == EX_BOOL) {
            *(bool *)f->value = true;
            continue;
        }
        if (a + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", program, f->name);
            exit(2);
        }
        const char *v = argv[++a];
        char *end;
        errno = 0;
        if (f->kind == EX_INT || f->kind == EX_INT_AUTO) {
            long long x = strtoll(v, &end, 10), least = f->kind == EX_INT_AUTO ? -1 : 0;
            if (errno || *end || end == v || x < least) {
                fprintf(stderr, "%s: %s expects a non-negative integer%s, got '%s'\n", program, f->name,
                        least < 0 ? " or -1" : "", v);
                exit(2);
            }
            *(int64_t *)f->value = x;
        } else if (f->kind == EX_DOUBLE) {
            double x = strtod(v, &end);
            /* No flag has a use for nan or inf, and they slip through every range check written as x < limit. */
            if (errno || *end || end == v || !isfinite(x)) {
                fprintf(stderr, "%s: %s expects a finite number, got '%s'\n", program, f->name, v);
                exit(2);
            }
            *(double *)f->value = x;
        } else {
            *(const char **)f->value = v;
        }
    }
}

/* Prints message on stderr and exits 1; with several ranks it stops the whole job, as ex_fail does. */
static _Noreturn void stop(const char *message)
{
    if (nb_dist_world_size() > 1) nb_dist_abort(EXIT_FAILURE, message);
    fprintf(stderr, "%s\n", message);
    exit(EXIT_FAILURE);
}

void *ex_alloc_for(const char *program, const char *flag, int64_t value, int64_t extra, int64_t per, size_t size)
{
    /* Checked before multiplying: the counts come from the command line, and a product that wraps around gives a
     * small buffer that the loops then overrun. */
    void *p = NULL;
    if (value >= 0 && extra >= 0 && per > 0 && size > 0 && value <= INT64_MAX - extra) {
        uint64_t count = (uint64_t)(value + extra);
        if (count <= SIZE_MAX / (uint64_t)per) {
            size_t n = (size_t)count * (size_t)per;
            p = calloc(n ? n : 1, size);
        }
    }
    if (!p) {
        char message[256];
        snprintf(message, sizeof message, "%s: out of memory for %s %lld", program, flag, (long long)value);
        stop(message);
    }
    return p;
}

double ex_physical_memory(void)
{
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) return (double)pages * (double)page;
#endif
    return 0;
}

void ex_check_loss(const char *program, double loss, const char *unit, int64_t n)
{
    if (isfinite(loss)) return;
    char message[256];
    snprintf(message, sizeof message, "%s: loss is %s at %s %lld: the learning rate may be too large", program,
             isnan(loss) ? "nan" : "inf", unit, (long long)n);
    stop(message);
}

_Noreturn void ex_fail(const char *program)
{
    if (nb_dist_world_size() > 1) {
        char message[4096];
        snprintf(message, sizeof message, "%s: %s", program, nb_last_error());
        nb_dist_abort(EXIT_FAILURE, message);
    }
    fprintf(stderr, "%s: %s\n", program, nb_last_error());
    exit(EXIT_FAILURE);
}

static void die(const char *program) { ex_fail(program); }

const char *ex_data_dir(const char *program, const char *flag)
{
    /* nb_data_dir takes "" as a directory, and every path built on it then starts at the root. */
    if (flag && !*flag) {
        fprintf(stderr, "%s: --data needs a directory, got ''\n", program);
        exit(2);
    }
    return nb_data_dir(flag);
}

_Noreturn void ex_data_missing(const char *program, const char *flag, const char *dir, const char *what)
{
    /* Only the default location may lack the data (a machine without the data sets skips the smoke tests); a
     * directory the user named that lacks them is a mistake worth stopping on. */
    if (flag) {
        char message[2 * 4096];
        snprintf(message, sizeof message, "%s: --data %s: %s not found", program, flag, what);
        stop(message);
    }
    if (dir) printf("%s: %s not found (give --data DIR or set NABLA_DATA); skipping\n", program, what);
    else printf("%s: no data directory (give --data DIR or set NABLA_DATA); skipping\n", program);
    ex_dist_finalize(program);
    exit(77);
}

/* NULL when the file is absent, so that the caller decides between a skip and a failure (ex_data_missing). */
static nb_tensor *read_idx(const char *program, const char *dir, const char *sub, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s is missing\n", program, path);
        return NULL;
    }
    fclose(f);
    nb_tensor *t = nb_read_idx(path);
    if (!t) die(program);
    return t;
}

/* Prints "program: dir/sub/name <what>" and exits 1 (stopping every rank). */
static _Noreturn void bad_set_file(const char *program, const char *dir, const char *sub, const char *name,
                                   const char *what)
{
    char message[3 * 4096];
    snprintf(message, sizeof message, "%s: %s/%s/%s %s", program, dir, sub, name, what);
    stop(message);
}

bool ex_load_image_set(const char *program, const char *dir, const char *sub, ex_image_set *d)
{
    *d = (ex_image_set){0};
    nb_tensor *raw[2] = {read_idx(program, dir, sub, "train-images-idx3-ubyte.gz"),
                         read_idx(program, dir, sub, "t10k-images-idx3-ubyte.gz")};
    d->train_y = read_idx(program, dir, sub, "train-labels-idx1-ubyte.gz");
    d->test_y = read_idx(program, dir, sub, "t10k-labels-idx1-ubyte.gz");
    if (!raw[0] || !raw[1] || !d->train_y || !d->test_y) {
        nb_free(raw[0]);
        nb_free(raw[1]);
        ex_free_image_set(d);
        return false;
    }
    /* Checked here, naming the file: a wrong shape would otherwise surface as an nb_reshape error naming no file
     * (or not at all: 14x56 images reshape to 784 pixels too), an empty set as an accuracy of 0/0 or an epoch
     * without a step, a labels file of another set would pair images with the wrong labels, and a label beyond
     * the 10 classes would stop the run only when the confusion matrix meets it. */
    nb_tensor *labels[2] = {d->train_y, d->test_y};
    static const char *const names[2][2] = {{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
                                             {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}};
    static const char *const uses[2] = {"train on", "test on"};
    for (int i = 0; i < 2; i++) {
        char shape[128], what[4096 + 256];
        const int64_t *s = nb_shape(raw[i]);
        if (nb_ndim(raw[i]) != 3 || s[1] != 28 || s[2] != 28) {
            snprintf(what, sizeof what, "has shape %s: expected images of 28 x 28 pixels, (N, 28, 28)",
                     nb_shape_str(raw[i], shape, sizeof shape));
            bad_set_file(program, dir, sub, names[i][0], what);
        }
        if (s[0] < 1) {
            snprintf(what, sizeof what, "has too few rows (0): need at least 1 image to %s", uses[i]);
            bad_set_file(program, dir, sub, names[i][0], what);
        }
        if (nb_ndim(labels[i]) != 1) {
            snprintf(what, sizeof what, "has shape %s: expected one label per image, (N)",
                     nb_shape_str(labels[i], shape, sizeof shape));
            bad_set_file(program, dir, sub, names[i][1], what);
        }
        int64_t images = s[0], count = nb_size(labels[i], 0);
        if (images != count) {
            snprintf(what, sizeof what, "holds %lld labels but %s/%s/%s holds %lld images", (long long)count, dir,
                     sub, names[i][0], (long long)images);
            bad_set_file(program, dir, sub, names[i][1], what);
        }
        const int64_t *y = nb_data(labels[i]);
        for (int64_t k = 0; k < count; k++)
            if (y[k] < 0 || y[k] > 9) {
                snprintf(what, sizeof what, "has label %lld at row %lld: the classes are 0..9", (long long)y[k],
                         (long long)k);
                bad_set_file(program, dir, sub, names[i][1], what);
            }
    }
    nb_tensor **out[2] = {&d->train_x, &d->test_x};
    for (int i = 0; i < 2; i++) {
        /* Scaled in place: a second copy of the training images would double the peak memory of loading. */
        float *pixels = nb_data(raw[i]);
        for (int64_t k = 0, n = nb_numel(raw[i]); k < n; k++) pixels[k] /= 255.0f;
        *out[i] = nb_reshape(raw[i], NB_SHAPE(nb_size(raw[i], 0), 784));
        if (!*out[i]) die(program);
        nb_free(raw[i]);
    }
    return true;
}

void ex_free_image_set(ex_image_set *d)
{
    nb_free(d->train_x);
    nb_free(d->train_y);
    nb_free(d->test_x);
    nb_free(d->test_y);
    *d = (ex_image_set){0};
}

double ex_accuracy(const char *program, nb_module *model, nb_tensor *x, nb_tensor *y, nb_confusion *c)
{
    const int64_t chunk = 1000;
    int64_t n = nb_size(x, 0), correct = 0;
    if (n < 1) { /* 0 / 0 would print as an accuracy of nan */
        char message[256];
        snprintf(message, sizeof message, "%s: too few rows (%lld) to measure an accuracy on: need at least 1",
                 program, (long long)n);
        stop(message);
    }
    int world = nb_dist_world_size(), rank = nb_dist_rank();
    int64_t first = n * rank / world, end = n * (rank + 1) / world; /* this rank's rows */
    /* With several ranks the predictions go to a matrix of this rank's own, summed over the ranks below. */
    nb_confusion *mine = c && world > 1 ? nb_confusion_new(c->num_classes) : c;
    if (c && !mine) die(program);
    nb_module_train(model, false);
    nb_no_grad_begin();
    for (int64_t start = first; start < end; start += chunk) {
        int64_t len = end - start < chunk ? end - start : chunk;
        nb_scope_begin();
        nb_tensor *yb = nb_narrow(y, 0, start, len);
        nb_tensor *pred = nb_argmax(nb_forward(model, nb_narrow(x, 0, start, len)), 1, false);
        if (!pred) die(program);
        correct += (int64_t)(nb_accuracy(pred, yb) * (double)len + 0.5);
        if (mine && nb_confusion_add(mine, pred, yb) != NB_OK) die(program);
        nb_scope_end();
    }
    nb_no_grad_end();
    nb_module_train(model, true);
    if (world > 1) {
        /* Counts are exact in doubles (below 2^53). */
        int64_t cells = c ? c->num_classes * c->num_classes : 0;
        double *sums = calloc((size_t)(1 + cells), sizeof *sums);
        if (!sums) {
            fprintf(stderr, "%s: out of memory\n", program);
            nb_dist_abort(EXIT_FAILURE, NULL);
        }
        sums[0] = (double)correct;
        for (int64_t i = 0; i < cells; i++) sums[1 + i] = (double)mine->counts[i];
        if (nb_dist_allreduce_sum(sums, 1 + cells) != NB_OK) die(program);
        correct = (int64_t)sums[0];
        for (int64_t i = 0; i < cells; i++) c->counts[i] += (int64_t)sums[1 + i];
        free(sums);
        if (mine != c) nb_confusion_free(mine);
    }
    return (double)correct / (double)n;
}

double ex_train_epoch(const char *program, nb_module *model, nb_optimizer *opt, nb_batch_iter *it, ex_loss_fn loss_fn,
                      nb_progress *progress, int64_t epoch)
{
    int world = nb_dist_world_size();
    nb_param_list *params = NULL; /* what the gradients are averaged over, with several ranks */
    if (world > 1 && !(params = nb_module_parameters(model))) die(program);
    double sum = 0;
    int64_t count = 0;
    nb_clear_error(); /* so that the status after the loop tells an iterator error from the epoch's end */
    for (int64_t step = 0;; step++) {
        nb_scope_begin();
        nb_tensor *xb, *yb;
        if (!nb_batch_iter_next(it, &xb, &yb)) {
            nb_scope_end();
            break;
        }
        nb_tensor *output = nb_forward(model, xb);
        nb_tensor *loss = loss_fn(output, yb);
        if (!loss) die(program);
        double value = nb_item(loss);
        /* Before the step: one non-finite loss makes every later weight nan, and the epoch's mean with it. */
        ex_check_loss(program, value, "epoch", epoch + 1);
        /* A diverging run often stays finite (a softmax cross-entropy of 1e22 still is): a loss a million times
         * the model's first one is divergence too. The first loss is kept per model across its epochs. */
        static const nb_module *first_model;
        static double first_loss;
        if (model != first_model || (epoch == 0 && step == 0)) {
            first_model = model;
            first_loss = value;
        } else if (first_loss > 0 && value > 1e6 * first_loss) {
            char message[256];
            snprintf(message, sizeof message,
                     "%s: loss is %g at epoch %lld, over a million times its first value %g: the learning rate may "
                     "be too large", program, value, (long long)(epoch + 1), first_loss);
            stop(message);
        }
        nb_optimizer_zero_grad(opt);
        if (nb_backward(loss) != NB_OK) die(program);
        if (params && nb_dist_allreduce_grads(params) != NB_OK) die(program);
        if (nb_optimizer_step(opt) != NB_OK) die(program);
        int64_t n = nb_shape(xb)[0];
        sum += value * (double)n;
        count += n;
        if (progress) {
            double acc = NAN;
            if (nb_ndim(output) == 2 && nb_dtype_of(yb) == NB_I64) {
                nb_no_grad_begin();
                acc = nb_accuracy(nb_argmax(output, 1, false), yb);
                nb_no_grad_end();
            }
            nb_progress_update(progress, epoch, step, n * world, value, acc);
        }
        nb_scope_end();
    }
    if (nb_last_status() != NB_OK) die(program);
    if (params) {
        double totals[2] = {sum, (double)count};
        if (nb_dist_allreduce_sum(totals, 2) != NB_OK) die(program);
        sum = totals[0];
        count = (int64_t)totals[1];
        nb_param_list_free(params);
    }
    if (count == 0) { /* an epoch without a step trains nothing, and its mean loss would be nan */
        char message[256];
        snprintf(message, sizeof message, "%s: too few rows to train on: epoch %lld had no batch", program,
                 (long long)(epoch + 1));
        stop(message);
    }
    return sum / (double)count;
}

void ex_dist_init(const char *program, int *argc, char ***argv)
{
    if (nb_dist_init(argc, argv) != NB_OK) {
        fprintf(stderr, "%s: %s\n", program, nb_last_error());
        exit(EXIT_FAILURE);
    }
    if (!nb_dist_is_main() && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, "%s: rank %d cannot silence its output: %s\n", program, nb_dist_rank(), strerror(errno));
        nb_dist_abort(EXIT_FAILURE, NULL);
    }
}

void ex_dist_finalize(const char *program)
{
    fflush(stdout);
    if (nb_dist_finalize() != NB_OK) die(program);
}

void ex_dist_broadcast(const char *program, const nb_param_list *params)
{
    if (nb_dist_world_size() > 1 && nb_dist_broadcast_params(params, 0) != NB_OK) die(program);
}

/* Fails on every rank (the metadata is the same everywhere) with a message naming the file and the problem. */
static _Noreturn void checkpoint_unusable(const ex_checkpoint *ck, const char *why)
{
    if (nb_dist_is_main())
        fprintf(stderr, "%s: cannot resume from %s: %s (remove the file to start afresh)\n", ck->program, ck->path,
                why);
    fflush(stderr);
    if (nb_dist_world_size() > 1) nb_dist_abort(EXIT_FAILURE, NULL);
    exit(EXIT_FAILURE);
}

int64_t ex_checkpoint_open(ex_checkpoint *ck, const char *program, const char *path, const nb_param_list *params,
                           nb_optimizer *opt, nb_scheduler *sched, nb_early_stopping *stopper, nb_generator *gen,
                           const nb_metadata *identity)
{
    *ck = (ex_checkpoint){.program = program, .path = path, .params = params, .opt = opt, .sched = sched,
                          .stopper = stopper, .gen = gen};
    if (identity) ck->identity = *identity;
    if (!path) return 0;
    /* The optimizer's state tensors exist from here on (zeros until the first step, as they would be then). */
    ck->tensors = nb_param_list_new();
    if (!ck->tensors) die(program);
    for (int i = 0; i < params->count; i++)
        if (nb_param_list_add(ck->tensors, params->items[i].name, params->items[i].tensor, params->items[i].is_buffer) !=
            NB_OK)
            die(program);
    if (nb_optimizer_state(opt, "optim", ck->tensors, NULL) != NB_OK) die(program);
    if (stopper && nb_early_stopping_state(stopper, params, "early_stopping", ck->tensors, NULL) != NB_OK)
        die(program);

    /* Rank 0 reads the file (the other machines of a job need not see it); its metadata, then its tensors, go to
     * every rank. An empty metadata tells every rank that there is nothing to resume from. */
    nb_metadata meta = {0};
    if (nb_dist_is_main() && access(path, F_OK) == 0) {
        nb_load_report report;
        if (nb_load_safetensors(path, ck->tensors, NB_LOAD_STRICT, &report, &meta) != NB_OK) die(program);
        if (meta.count == 0) meta.count = -1; /* not ours: caught below, on every rank */
    }
    if (nb_dist_broadcast(&meta, sizeof meta, 0) != NB_OK) die(program);
    if (meta.count == 0) {
        printf("%s: no checkpoint at %s yet: starting afresh, writing one after each epoch\n", program, path);
        return 0;
    }
    const char *epoch_text = meta.count > 0 ? nb_metadata_get(&meta, "epoch") : NULL;
    char *end = NULL;
    long long epochs_done = epoch_text ? strtoll(epoch_text, &end, 10) : -1;
    if (!epoch_text || *end || epochs_done < 0) checkpoint_unusable(ck, "it has no valid \"epoch\" entry");
    for (int i = 0; i < ck->identity.count; i++) {
        const nb_metadata_entry *e = &ck->identity.entries[i];
        const char *theirs = nb_metadata_get(&meta, e->key);
        if (!theirs || strcmp(theirs, e->value)) {
            char why[700];
            snprintf(why, sizeof why, "it was written with %s %s, this run has %s", e->key, theirs ? theirs : "(none)",
                     e->value);
            checkpoint_unusable(ck, why);
        }
    }
    ex_dist_broadcast(program, ck->tensors);
    if (nb_optimizer_restore(opt, &meta, "optim") != NB_OK) die(program);
    if (sched && nb_scheduler_restore(sched, &meta, "sched") != NB_OK) die(program);
    if (stopper && nb_early_stopping_resume(stopper, &meta, "early_stopping") != NB_OK) die(program);
    /* Checkpoints written before the generator was saved lack it: their dropout masks differ from then on. */
    if (gen && nb_metadata_get(&meta, "model_rng.generator") && nb_generator_restore(gen, &meta, "model_rng") != NB_OK)
        die(program);
    printf("%s: resumed from %s after epoch %lld (optimizer step %lld, lr %g)\n", program, path, epochs_done,
           (long long)nb_optimizer_steps(opt), nb_optimizer_get_lr(opt));
    return (int64_t)epochs_done;
}

void ex_checkpoint_save(ex_checkpoint *ck, int64_t epochs_done)
{
    if (!ck->path || !nb_dist_is_main()) return;
    nb_metadata meta = ck->identity;
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)epochs_done);
    /* nb_optimizer_state appends the same state tensors again: a scratch list takes them, ck->tensors has them. */
    nb_param_list *scratch = nb_param_list_new();
    nb_status st = scratch ? nb_optimizer_state(ck->opt, "optim", scratch, &meta) : NB_ERR_NOMEM;
    nb_param_list_free(scratch);
    if (st == NB_OK && ck->sched) st = nb_scheduler_state(ck->sched, "sched", &meta);
    if (st == NB_OK && ck->stopper) { /* its copies, too, are in ck->tensors already */
        nb_param_list *copies = nb_param_list_new();
        st = copies ? nb_early_stopping_state(ck->stopper, ck->params, "early_stopping", copies, &meta) : NB_ERR_NOMEM;
        nb_param_list_free(copies);
    }
    if (st == NB_OK && ck->gen) st = nb_generator_state(ck->gen, "model_rng", &meta);
    if (st == NB_OK) st = nb_metadata_set(&meta, "epoch", text);
    if (st == NB_OK) st = nb_save_safetensors(ck->path, ck->tensors, &meta);
    if (st != NB_OK) die(ck->program);
}

void ex_checkpoint_close(ex_checkpoint *ck)
{
    nb_param_list_free(ck->tensors);
    ck->tensors = NULL;
}

void ex_skip_epochs(const char *program, nb_batch_iter *it, int64_t n)
{
    for (int64_t e = 0; e < n; e++) {
        nb_clear_error();
        for (bool more = true; more;) {
            nb_scope_begin();
            nb_tensor *xb;
            more = nb_batch_iter_next(it, &xb, NULL);
            nb_scope_end();
        }
        if (nb_last_status() != NB_OK) die(program);
    }
}

nb_module *ex_mnist_cnn_new(nb_generator *gen)
{
    nb_module *layers[] = {
        nb_conv2d_new(1, 32, 3, 1, 0, 1, 1, true, gen),  nb_relu_layer_new(), nb_max_pool2d_new(2, 0, 0),
        nb_conv2d_new(32, 64, 3, 1, 0, 1, 1, true, gen), nb_relu_layer_new(), nb_max_pool2d_new(2, 0, 0),
        nb_flatten_layer_new(1, -1),
        nb_linear_new(64 * 5 * 5, 128, true, gen),       nb_relu_layer_new(),
        nb_linear_new(128, 10, true, gen),
    };
    return nb_sequential_new((int)(sizeof layers / sizeof layers[0]), layers);
}

double ex_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double px(const ex_svg *s, double x) { return s->margin + (x - s->x0) / (s->x1 - s->x0) * (s->width - 2 * s->margin); }
static double py(const ex_svg *s, double y)
{
    return s->height - s->margin - (y - s->y0) / (s->y1 - s->y0) * (s->height - 2 * s->margin);
}

bool ex_svg_open(ex_svg *s, const char *path, double width, double height, double x0, double x1, double y0,
                 double y1, const char *title)
{
    *s = (ex_svg){fopen(path, "w"), width, height, x0, x1 > x0 ? x1 : x0 + 1, y0, y1 > y0 ? y1 : y0 + 1, 40};
    if (!s->f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    fprintf(s->f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%g\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n"
            "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#888\"/>\n"
            "<text x=\"%g\" y=\"%g\">%.3g</text><text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.3g</text>\n"
            "<text x=\"5\" y=\"%g\">%.3g</text><text x=\"5\" y=\"%g\">%.3g</text>\n",
            width, height, width / 2, title ? title : "", s->margin, s->margin, width - 2 * s->margin,
            height - 2 * s->margin, s->margin, height - s->margin + 15, s->x0, width - s->margin,
            height - s->margin + 15, s->x1, height - s->margin, s->y0, s->margin + 10, s->y1);
    return true;
}

void ex_svg_line(ex_svg *s, int n, const double *x, const double *y, const char *color, const char *label, int slot)
{
    fprintf(s->f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
    for (int i = 0; i < n; i++) fprintf(s->f, "%.1f,%.1f ", px(s, x[i]), py(s, y[i]));
    fprintf(s->f, "\"/>\n");
    if (label)
        fprintf(s->f, "<text x=\"%g\" y=\"%g\" fill=\"%s\" text-anchor=\"end\">%s</text>\n", s->width - s->margin - 5,
                s->margin + 15 + 15 * slot, color, label);
}

void ex_svg_dot(ex_svg *s, double x, double y, double radius, const char *color)
{
    fprintf(s->f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%g\" fill=\"%s\" stroke=\"black\" stroke-width=\"0.5\"/>\n",
            px(s, x), py(s, y), radius, color);
}

void ex_svg_rect(ex_svg *s, double x, double y, double w, double h, const char *color, double opacity)
{
    double ax = px(s, x), ay = py(s, y + h), bx = px(s, x + w), by = py(s, y);
    fprintf(s->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" fill-opacity=\"%g\"/>\n", ax,
            ay, bx - ax, by - ay, color, opacity);
}

void ex_svg_close(ex_svg *s)
{
    if (!s->f) return;
    fprintf(s->f, "</svg>\n");
    fclose(s->f);
    s->f = NULL;
}
