/* Shared helpers for the example programs. */
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(const char *program, const char *summary, int n, const ex_flag *flags)
{
    printf("usage: %s [flags]\n%s\n\nflags:\n", program, summary);
    for (int i = 0; i < n; i++) {
        const ex_flag *f = &flags[i];
        char def[64] = "";
        switch (f->kind) {
        case EX_INT: snprintf(def, sizeof def, " (default %lld)", (long long)*(int64_t *)f->value); break;
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
        if (f->kind == EX_INT) {
            long long x = strtoll(v, &end, 10);
            if (errno || *end || end == v || x < 0) {
                fprintf(stderr, "%s: %s expects a non-negative integer, got '%s'\n", program, f->name, v);
                exit(2);
            }
            *(int64_t *)f->value = x;
        } else if (f->kind == EX_DOUBLE) {
            double x = strtod(v, &end);
            if (errno || *end || end == v) {
                fprintf(stderr, "%s: %s expects a number, got '%s'\n", program, f->name, v);
                exit(2);
            }
            *(double *)f->value = x;
        } else {
            *(const char **)f->value = v;
        }
    }
}

static void die(const char *program)
{
    fprintf(stderr, "%s: %s\n", program, nb_last_error());
    exit(EXIT_FAILURE);
}

/* NULL when the file is absent, so that a missing data set is a skip rather than a failure. */
static nb_tensor *read_idx(const char *program, const char *dir, const char *sub, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fclose(f);
    nb_tensor *t = nb_read_idx(path);
    if (!t) die(program);
    return t;
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
    nb_module_train(model, false);
    nb_no_grad_begin();
    for (int64_t start = 0; start < n; start += chunk) {
        int64_t len = n - start < chunk ? n - start : chunk;
        nb_scope_begin();
        nb_tensor *yb = nb_narrow(y, 0, start, len);
        nb_tensor *pred = nb_argmax(nb_forward(model, nb_narrow(x, 0, start, len)), 1, false);
        if (!pred) die(program);
        correct += (int64_t)(nb_accuracy(pred, yb) * (double)len + 0.5);
        if (c && nb_confusion_add(c, pred, yb) != NB_OK) die(program);
        nb_scope_end();
    }
    nb_no_grad_end();
    nb_module_train(model, true);
    return (double)correct / (double)n;
}

double ex_train_epoch(const char *program, nb_module *model, nb_optimizer *opt, nb_batch_iter *it, ex_loss_fn loss_fn,
                      nb_progress *progress, int64_t epoch)
{
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
        nb_optimizer_zero_grad(opt);
        if (nb_backward(loss) != NB_OK || nb_optimizer_step(opt) != NB_OK) die(program);
        int64_t n = nb_shape(xb)[0];
        double value = nb_item(loss);
        sum += value * (double)n;
        count += n;
        if (progress) {
            double acc = NAN;
            if (nb_ndim(output) == 2 && nb_dtype_of(yb) == NB_I64) {
                nb_no_grad_begin();
                acc = nb_accuracy(nb_argmax(output, 1, false), yb);
                nb_no_grad_end();
            }
            nb_progress_update(progress, epoch, step, n, value, acc);
        }
        nb_scope_end();
    }
    if (nb_last_status() != NB_OK) die(program);
    return sum / (double)count;
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
