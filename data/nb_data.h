/* nabla data: reading data sets (IDX, raw or gzip; numeric CSV), batching, preprocessing, splits, metrics and a
 * progress display. Library code for any program, not only the examples. Depends on tensor/ and autograd/ only.
 *
 * Ownership: every function returning tensors returns caller-owned tensors when no scope is open (the usual rule
 * of nb_tensor.h); structs returned by the _new and _read functions are freed by their _free function, which also
 * frees the tensors the struct holds.
 */
#ifndef NABLA_DATA_H
#define NABLA_DATA_H

#include "nb_autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------
 * Readers. Errors: NB_ERR_IO (cannot open/read: path and system reason), NB_ERR_FORMAT (malformed: the message
 * names the path and the position: byte offset, or line and column for CSV).
 * ---------------------------------------------------------------------------------------------- */
/* Reads an IDX file (MNIST format: big-endian magic 0x0000 <type> <ndim>, ndim u32 sizes, data), raw or gzip
 * compressed (detected from the content, decompressed by nabla's own inflate: no zlib). Only type 0x08 (u8) is
 * supported. Returns an i64 tensor of the stored shape for labels (ndim 1) and an f32 tensor of the raw byte
 * values 0..255 for images; a header claiming more data than the file holds is an error before any large
 * allocation. */
NB_API nb_tensor *nb_read_idx(const char *path);
/* Decompresses a whole gzip file into a malloc'ed buffer (*size bytes); caller frees. NULL on error. Also checks
 * the CRC-32 and the stored length. Exposed for tests and tools. */
NB_API void *nb_gunzip_file(const char *path, size_t *size);

/* A numeric CSV file with a header line: values as an f64 tensor (rows, columns) and the column names. */
typedef struct nb_csv {
    int64_t rows, cols;
    char **names;     /* cols strings */
    nb_tensor *values; /* (rows, cols) f64 */
} nb_csv;
/* Reads path, raw or gzip compressed (detected from the content, decompressed as nb_read_idx does); blank lines
 * at the end are ignored; every row must have the header's column count and numeric cells (NB_ERR_FORMAT naming
 * line and column otherwise, with control bytes of the cell shown escaped, as \x0c). Lines end with LF, CRLF or a
 * lone CR (classic Mac), mixed freely, as in Python's universal newlines; line numbers in messages count every
 * such terminator. */
NB_API nb_csv *nb_csv_read(const char *path);
NB_API void nb_csv_free(nb_csv *csv);
/* Index of the column named name, or -1. */
NB_API int64_t nb_csv_column(const nb_csv *csv, const char *name);

/* Where the examples and tests find data sets: dir_flag if not NULL, else $NABLA_DATA, else "../shared/data" if
 * it exists, else NULL (no error recorded). */
NB_API const char *nb_data_dir(const char *dir_flag);

/* ------------------------------------------------------------------------------------------------
 * Preprocessing (all return new tensors; x is (N, F))
 * ---------------------------------------------------------------------------------------------- */
/* Standardization fitted on training data: mean and std (biased, as scikit-learn's StandardScaler) per column;
 * columns with std 0 are centered but left unscaled. As in scikit-learn, a column whose variance is within the
 * rounding error of its computation, var <= n * eps * var + (n * eps * mean)^2 with n rows and eps = DBL_EPSILON
 * (values such as 0.3 and 0.1 + 0.2), counts as constant: its std is stored as 0. fit() overwrites *s without
 * reading it; the f64 tensors it stores belong to s whatever scope is open (_free releases them). apply()
 * computes (x - mean) / std in x's dtype (f32 for integer x), with differentiable ops. */
typedef struct nb_standardizer {
    nb_tensor *mean, *std; /* (F) */
} nb_standardizer;
NB_API nb_status nb_standardizer_fit(nb_standardizer *s, nb_tensor *x);
NB_API nb_tensor *nb_standardizer_apply(const nb_standardizer *s, nb_tensor *x);
NB_API void nb_standardizer_free(nb_standardizer *s);
/* Min-max scaling to [0, 1] fitted on training data: (x - min) / (max - min); constant columns (a range below 10
 * f64 machine epsilons) are shifted but not scaled (they map to 0 on the training data), as scikit-learn's
 * MinMaxScaler. Ownership as above. */
typedef struct nb_minmax_scaler {
    nb_tensor *min, *max; /* (F) */
} nb_minmax_scaler;
NB_API nb_status nb_minmax_fit(nb_minmax_scaler *s, nb_tensor *x);
NB_API nb_tensor *nb_minmax_apply(const nb_minmax_scaler *s, nb_tensor *x);
NB_API void nb_minmax_free(nb_minmax_scaler *s);
/* f32 (N, num_classes) one-hot rows from i64 labels (N) (any label shape gains a trailing class dim);
 * out-of-range labels are NB_ERR_INDEX naming the label and its position. */
NB_API nb_tensor *nb_one_hot(nb_tensor *labels, int64_t num_classes);

/* ------------------------------------------------------------------------------------------------
 * Splits (seeded: the same seed gives the same split everywhere)
 * ---------------------------------------------------------------------------------------------- */
/* A random permutation of 0..n-1 split into the first round(n * test_fraction) indices (test; rounding half
 * away from zero) and the rest (train), both i64 (k) tensors in permutation order. */
NB_API nb_status nb_train_test_split(int64_t n, double test_fraction, uint64_t seed, nb_tensor **train_idx,
                                     nb_tensor **test_idx);
/* Fold `fold` (0..k-1) of a seeded k-fold split of 0..n-1 (2 <= k <= n): test is the fold, train the other
 * folds, both in permutation order; the first n % k folds hold one more index (as scikit-learn's KFold). The
 * same seed gives the same permutation, so the k folds partition 0..n-1. */
NB_API nb_status nb_kfold_split(int64_t n, int k, int fold, uint64_t seed, nb_tensor **train_idx,
                                nb_tensor **test_idx);

/* ------------------------------------------------------------------------------------------------
 * Batches
 * ---------------------------------------------------------------------------------------------- */
typedef struct nb_batch_iter nb_batch_iter;
/* Iterates over rows of x (N, ...) and y (N, ...) (y may be NULL) in batches, reshuffled at each epoch with the
 * generator seeded by `seed` when shuffle is on; drop_last skips a last incomplete batch. The iterator does not
 * own x and y. */
NB_API nb_batch_iter *nb_batch_iter_new(nb_tensor *x, nb_tensor *y, int64_t batch_size, bool shuffle,
                                        bool drop_last, uint64_t seed);
/* Next batch of the current epoch as new tensors (rows gathered with nb_index_select, contiguous, owned by the
 * current scope like any op result); false at the end of the epoch, after which the next call starts a new
 * epoch (reshuffled). y_batch may be NULL; *y_batch is NULL when y is. On an error (x or y freed, ...) it
 * returns false with the error recorded and the epoch does not advance. */
NB_API bool nb_batch_iter_next(nb_batch_iter *it, nb_tensor **x_batch, nb_tensor **y_batch);
/* Restricts the iterator to shard `rank` of `world_size` (data-parallel training, like PyTorch's
 * DistributedSampler): every rank draws the same epoch order (same seed), the order is made divisible by
 * world_size (padded by repeating its first rows, or truncated when drop_last is on), and rank r takes the
 * positions r, r + world_size, r + 2 * world_size, ... of it. So the shards of one epoch are disjoint (up to the
 * padding), cover every row, and give every rank the same number of batches; the ranks' k-th batches of B rows
 * together are exactly the rows of the single-process k-th batch of world_size * B rows. Call it before the first
 * nb_batch_iter_next (NB_ERR_STATE after); NB_ERR_ARG unless 0 <= rank < world_size. nb_dist_batch_iter_new
 * (nb_dist.h) does this with the process's rank. */
NB_API nb_status nb_batch_iter_shard(nb_batch_iter *it, int rank, int world_size);
/* Batches per epoch (of this rank's shard when sharded). */
NB_API int64_t nb_batch_iter_batches_per_epoch(const nb_batch_iter *it);
/* Number of epochs completed so far (the index, from 0, of the epoch being iterated). */
NB_API int64_t nb_batch_iter_epoch(const nb_batch_iter *it);
NB_API void nb_batch_iter_free(nb_batch_iter *it);

/* ------------------------------------------------------------------------------------------------
 * Metrics for classification: predictions and targets are i64 class indices (N) (nb_argmax of logits).
 * ---------------------------------------------------------------------------------------------- */
/* Fraction of equal entries; NAN with an error for mismatched shapes or no entries. */
NB_API double nb_accuracy(nb_tensor *pred, nb_tensor *target);
typedef struct nb_confusion {
    int64_t num_classes;
    int64_t *counts; /* num_classes * num_classes, row = true class, column = predicted class */
} nb_confusion;
NB_API nb_confusion *nb_confusion_new(int64_t num_classes);
/* Adds a batch of predictions; out-of-range classes are NB_ERR_INDEX. */
NB_API nb_status nb_confusion_add(nb_confusion *c, nb_tensor *pred, nb_tensor *target);
NB_API double nb_confusion_accuracy(const nb_confusion *c);
/* Per-class precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R); 0 where the denominator
 * is 0 (scikit-learn's zero_division=0). Macro averages are unweighted means over all num_classes classes
 * (scikit-learn with labels=range(num_classes)). Accuracy is NAN with an error when nothing was added. */
NB_API double nb_confusion_precision(const nb_confusion *c, int64_t cls);
NB_API double nb_confusion_recall(const nb_confusion *c, int64_t cls);
NB_API double nb_confusion_f1(const nb_confusion *c, int64_t cls);
NB_API double nb_confusion_macro_precision(const nb_confusion *c);
NB_API double nb_confusion_macro_recall(const nb_confusion *c);
NB_API double nb_confusion_macro_f1(const nb_confusion *c);
/* Prints the matrix as an aligned table with class names (NULL: numbers) and a per-class
 * precision/recall/F1 table, then flushes f. Errors: NB_ERR_NULL for a NULL c or f; NB_ERR_IO when writing or
 * flushing fails (a full disk shows only on the flush) or f already has its error indicator set. */
NB_API nb_status nb_confusion_print(const nb_confusion *c, FILE *f, const char *const *class_names);
NB_API void nb_confusion_free(nb_confusion *c);

/* ------------------------------------------------------------------------------------------------
 * Progress display for long loops: on a terminal a bar redrawn in place with epoch, step, loss, accuracy,
 * samples/s and ETA; otherwise (CI, files) a plain line every `log_every` steps and at the end of each epoch.
 * ---------------------------------------------------------------------------------------------- */
typedef struct nb_progress nb_progress;
/* total_steps per epoch; epochs; f the stream (NULL: stderr). NB_PROGRESS=plain|bar|off overrides the choice.
 * 0 for epochs or total_steps means unknown (no total, no ETA); log_every 0 prints only the epochs' ends. */
NB_API nb_progress *nb_progress_new(FILE *f, int64_t epochs, int64_t total_steps, int64_t log_every);
/* Reports one finished step of `samples` samples; epoch (0..epochs-1) and step (0..total_steps-1) are loop
 * indices, displayed from 1 ("epoch 1/2"). loss and accuracy may be NAN when unknown (not shown); the values
 * displayed are running means over the epoch weighted by samples. */
NB_API void nb_progress_update(nb_progress *p, int64_t epoch, int64_t step, int64_t samples, double loss,
                               double accuracy);
/* Ends the current epoch's line with a summary (and extra text such as "test_acc=0.97", may be NULL). In plain
 * mode this summary replaces the line of the epoch's last step. */
NB_API void nb_progress_end_epoch(nb_progress *p, const char *extra);
NB_API void nb_progress_free(nb_progress *p);

#ifdef __cplusplus
}
#endif
#endif
