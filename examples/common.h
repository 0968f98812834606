/* Shared helpers for the example programs: command-line flags and simple SVG charts. Not part of the library. */
#ifndef NABLA_EXAMPLES_COMMON_H
#define NABLA_EXAMPLES_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <nabla.h>

/* A flag table: each entry names a flag ("--epochs"), its kind and where to store the value. */
typedef enum { EX_INT, EX_DOUBLE, EX_STRING, EX_BOOL } ex_kind;
typedef struct ex_flag {
    const char *name;
    ex_kind kind;
    void *value; /* int64_t*, double*, const char**, bool* (EX_BOOL takes no argument) */
    const char *help;
} ex_flag;
/* Parses argv against the table; prints usage (with the defaults currently stored) and exits 0 on --help;
 * prints an error naming the flag and exits 2 on an unknown flag or a bad value. */
void ex_parse_flags(int argc, char **argv, const char *program, const char *summary, int n, const ex_flag *flags);

/* An MNIST-format data set: images (N, 784) f32 scaled to [0, 1], labels (N) i64. */
typedef struct ex_image_set {
    nb_tensor *train_x, *train_y, *test_x, *test_y;
} ex_image_set;
/* Reads dir/sub/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz. Returns false when a file is absent (the caller
 * skips); exits with nabla's message, prefixed by program, when a file is present but unreadable. */
bool ex_load_image_set(const char *program, const char *dir, const char *sub, ex_image_set *d);
void ex_free_image_set(ex_image_set *d);
/* Accuracy of a classifier on (x, y), evaluated in chunks in eval mode without recording a graph; adds the
 * predictions to c when not NULL. Exits with nabla's message on an error. */
double ex_accuracy(const char *program, nb_module *model, nb_tensor *x, nb_tensor *y, nb_confusion *c);

/* One epoch of mini-batch training: for each batch of it, loss_fn(model(x), y), backward, optimizer step, each
 * batch in its own scope. With progress (may be NULL), reports each step as step `step` of `epoch`, with the
 * batch accuracy when the targets are class indices (i64) and the output (N, classes). Returns the
 * sample-weighted mean loss of the epoch; exits with nabla's message, prefixed by program, on any error. */
typedef nb_tensor *(*ex_loss_fn)(nb_tensor *output, nb_tensor *target);
double ex_train_epoch(const char *program, nb_module *model, nb_optimizer *opt, nb_batch_iter *it, ex_loss_fn loss_fn,
                      nb_progress *progress, int64_t epoch);

/* The MNIST CNN of examples/mnist_cnn (also measured by bench/bench_conv): conv 3x3 1->32, ReLU, max-pool 2,
 * conv 3x3 32->64, ReLU, max-pool 2, flatten, 1600->128, ReLU, 128->10, for (N, 1, 28, 28) input. NULL (with
 * nabla's error) on failure. */
nb_module *ex_mnist_cnn_new(nb_generator *gen);

/* Seconds from a monotonic clock. */
double ex_now(void);

/* SVG output: a chart of width x height pixels mapping data coordinates [x0,x1] x [y0,y1]. */
typedef struct ex_svg {
    FILE *f;
    double width, height, x0, x1, y0, y1, margin;
} ex_svg;
/* Opens path and writes the header, axes box and a title; false (message on stderr) when it cannot. */
bool ex_svg_open(ex_svg *s, const char *path, double width, double height, double x0, double x1, double y0,
                 double y1, const char *title);
/* A polyline through n points in data coordinates, with a legend entry `label` (may be NULL) at slot `slot`. */
void ex_svg_line(ex_svg *s, int n, const double *x, const double *y, const char *color, const char *label, int slot);
/* A dot at a data point. */
void ex_svg_dot(ex_svg *s, double x, double y, double radius, const char *color);
/* A filled rectangle in data coordinates with opacity (for decision-region grids). */
void ex_svg_rect(ex_svg *s, double x, double y, double w, double h, const char *color, double opacity);
/* Writes the footer and closes the file. */
void ex_svg_close(ex_svg *s);

#endif
