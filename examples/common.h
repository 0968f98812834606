/* Shared helpers for the example programs: command-line flags and simple SVG charts. Not part of the library. */
#ifndef NABLA_EXAMPLES_COMMON_H
#define NABLA_EXAMPLES_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <nabla.h>

/* A flag table: each entry names a flag ("--epochs"), its kind and where to store the value. */
/* EX_INT takes a non-negative integer; EX_INT_AUTO also takes -1, for flags whose default depends on other flags. */
typedef enum { EX_INT, EX_DOUBLE, EX_STRING, EX_BOOL, EX_INT_AUTO } ex_kind;
typedef struct ex_flag {
    const char *name;
    ex_kind kind;
    void *value; /* int64_t* (EX_INT, EX_INT_AUTO), double*, const char**, bool* (EX_BOOL takes no argument) */
    const char *help;
} ex_flag;
/* Parses argv against the table; prints usage (with the defaults currently stored) and exits 0 on --help;
 * prints an error naming the flag and exits 2 on an unknown flag or a bad value. */
void ex_parse_flags(int argc, char **argv, const char *program, const char *summary, int n, const ex_flag *flags);

/* Zeroed storage for (value + extra) * per elements of size bytes, where value is the count given to flag (e.g.
 * "--epochs"): on overflow or when the memory is not there, prints "program: out of memory for flag value" and
 * exits 1. Never returns NULL; at least one byte is allocated. */
void *ex_alloc_for(const char *program, const char *flag, int64_t value, int64_t extra, int64_t per, size_t size);

/* The machine's physical memory in bytes, or 0 where the system does not tell. */
double ex_physical_memory(void);

/* Exits 1 (stopping every rank) with "program: loss is nan at unit n: the learning rate may be too large" when
 * loss is not finite; unit is "epoch" or "step". */
void ex_check_loss(const char *program, double loss, const char *unit, int64_t n);

/* The data directory: flag (the --data value, NULL when not given), else $NABLA_DATA, else ../shared/data when it
 * exists, else NULL. Exits 2 with a message when flag is empty. */
const char *ex_data_dir(const char *program, const char *flag);
/* The data set `what` (e.g. "iris.csv", "MNIST (the four files under DIR/mnist)") is not in dir (NULL: no data
 * directory at all). With --data given (flag not NULL) that is an error: prints "program: --data flag: what not
 * found" and exits 1 (stopping every rank). Otherwise, the default location, it is a skip: prints why on stdout,
 * shuts the distributed runtime down and exits 77. */
_Noreturn void ex_data_missing(const char *program, const char *flag, const char *dir, const char *what);

/* An MNIST-format data set: images (N, 784) f32 scaled to [0, 1], labels (N) i64. */
typedef struct ex_image_set {
    nb_tensor *train_x, *train_y, *test_x, *test_y;
} ex_image_set;
/* Reads dir/sub/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz. Returns false when a file is absent (the caller
 * skips or fails: ex_data_missing), after printing on stderr which one; exits with a message, prefixed by program
 * and naming the file, when a file is present but unreadable, when the images are not (N, 28, 28) with N >= 1, or
 * when a labels file does not hold one label (0..9) per image. */
bool ex_load_image_set(const char *program, const char *dir, const char *sub, ex_image_set *d);
void ex_free_image_set(ex_image_set *d);
/* Accuracy of a classifier on (x, y), evaluated in chunks in eval mode without recording a graph; adds the
 * predictions to c when not NULL. Exits with nabla's message on an error. With several ranks (ex_dist_init under
 * mpirun) each rank evaluates its own contiguous part of the rows and the counts (and c's) are summed over the
 * ranks, so every rank returns the same accuracy: every rank must call it. Exits with a message when x has no
 * rows. */
double ex_accuracy(const char *program, nb_module *model, nb_tensor *x, nb_tensor *y, nb_confusion *c);

/* One epoch of mini-batch training: for each batch of it, loss_fn(model(x), y), backward, optimizer step, each
 * batch in its own scope. With progress (may be NULL), reports each step as step `step` of `epoch`, with the
 * batch accuracy when the targets are class indices (i64) and the output (N, classes). Returns the
 * sample-weighted mean loss of the epoch; exits with nabla's message, prefixed by program, on any error, and
 * through ex_check_loss (naming epoch + 1) when a batch's loss is not finite, and with a message when the epoch
 * has no batch at all (no training rows).
 * With several ranks the gradients are averaged over them between backward and the optimizer step
 * (nb_dist_allreduce_grads), the loss returned is the mean over every rank's samples, and the progress counts
 * every rank's samples (its loss and accuracy are this rank's). */
typedef nb_tensor *(*ex_loss_fn)(nb_tensor *output, nb_tensor *target);
double ex_train_epoch(const char *program, nb_module *model, nb_optimizer *opt, nb_batch_iter *it, ex_loss_fn loss_fn,
                      nb_progress *progress, int64_t epoch);

/* The MNIST CNN of examples/mnist_cnn (also measured by bench/bench_conv): conv 3x3 1->32, ReLU, max-pool 2,
 * conv 3x3 32->64, ReLU, max-pool 2, flatten, 1600->128, ReLU, 128->10, for (N, 1, 28, 28) input. NULL (with
 * nabla's error) on failure. */
nb_module *ex_mnist_cnn_new(nb_generator *gen);

/* ------------------------------------------------------------------------------------------------
 * Distributed training (nb_dist.h). Started without mpirun a program is a world of one, and then each helper
 * below does exactly what the plain code did.
 * ---------------------------------------------------------------------------------------------- */
/* Starts the distributed runtime (exits with nabla's message when it cannot). On ranks other than 0 the standard
 * output is sent to /dev/null: only rank 0 reports progress and results; errors still reach stderr. */
void ex_dist_init(const char *program, int *argc, char ***argv);
/* Shuts the runtime down; call before returning from main (exit codes included: 0, 77). */
void ex_dist_finalize(const char *program);
/* Prints nabla's last error prefixed by program and exits 1; with several ranks it stops the whole job
 * (nb_dist_abort) so that the other ranks do not wait for this one. */
_Noreturn void ex_fail(const char *program);
/* With several ranks, copies rank 0's parameters to every rank (nb_dist_broadcast_params); no-op otherwise. */
void ex_dist_broadcast(const char *program, const nb_param_list *params);

/* Checkpoints for resuming a training run (--checkpoint PATH): the model's parameters and buffers, the
 * optimizer's state (moments, step counts, lr), the schedule's position, early stopping's counters and best
 * weights, the model's generator (dropout) and the number of epochs done, in one
 * safetensors file that rank 0 rewrites after each epoch (atomically: a write that fails or is killed part-way
 * leaves the previous file). A resumed run replays the shuffles of the epochs already done (ex_skip_epochs), so it
 * takes exactly the steps the uninterrupted run would have taken. */
typedef struct ex_checkpoint {
    const char *program, *path; /* path NULL: no checkpoints, every call is a no-op */
    nb_param_list *tensors;     /* the model's entries, then the optimizer's state tensors */
    const nb_param_list *params;
    nb_optimizer *opt;
    nb_scheduler *sched;         /* may be NULL */
    nb_early_stopping *stopper; /* may be NULL */
    nb_generator *gen;          /* the model's (dropout masks); may be NULL */
    nb_metadata identity; /* entries the file must match to be resumed from (e.g. the architecture) */
} ex_checkpoint;
/* Prepares checkpoints at path (may be NULL) and, when the file exists, resumes from it: rank 0 reads it and
 * every rank receives its contents. identity (may be NULL) holds entries written into every checkpoint and
 * required to match on resume. Prints what happened. Returns the number of epochs already done (0 when starting
 * afresh); exits with a message when the file cannot be used. */
int64_t ex_checkpoint_open(ex_checkpoint *ck, const char *program, const char *path, const nb_param_list *params,
                           nb_optimizer *opt, nb_scheduler *sched, nb_early_stopping *stopper, nb_generator *gen,
                           const nb_metadata *identity);
/* Rank 0 writes the checkpoint after `epochs_done` epochs (call it on every rank). */
void ex_checkpoint_save(ex_checkpoint *ck, int64_t epochs_done);
void ex_checkpoint_close(ex_checkpoint *ck);
/* Draws n epochs from it without training on them, so that a resumed run sees the batches the uninterrupted run
 * would have seen. */
void ex_skip_epochs(const char *program, nb_batch_iter *it, int64_t n);

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
