/* nabla nn: parameter lists, modules and layers, initializers, losses, penalties, and safetensors checkpoints.
 *
 * Everything here is a composition of nabla's differentiable ops: no layer or loss has a hand-written backward.
 * PyTorch's documented formulas, defaults and shapes are the reference.
 *
 * Modules. A module is a struct whose first member is `nb_module` (its type's function table and the train/eval
 * flag); layers are plain structs with public fields (`nb_linear` has `weight` and `bias`), and a model is a plain
 * struct of modules, or an nb_sequential. Every module can list its named parameters and buffers into an
 * nb_param_list ("fc1.weight", "fc1.bias", "bn.running_mean"), which optimizers, checkpoints and freezing use.
 *
 * Ownership. A module owns its parameter and buffer tensors (created outside any scope) and frees them in
 * nb_module_free. A container owns its children. An nb_param_list only points at tensors; freeing it frees no
 * tensor. Forward results follow the tensor memory model (owned by the current scope).
 */
#ifndef NABLA_NN_H
#define NABLA_NN_H

#include "nb_autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------
 * Parameter lists
 * ---------------------------------------------------------------------------------------------- */
#define NB_NAME_MAX 128

typedef struct nb_named_tensor {
    char name[NB_NAME_MAX];
    nb_tensor *tensor;
    bool is_buffer; /* running statistics and the like: saved in checkpoints, never optimized */
} nb_named_tensor;

typedef struct nb_param_list {
    int count;
    int capacity;
    nb_named_tensor *items;
} nb_param_list;

/* An empty list; NULL when out of memory. Free with nb_param_list_free (the tensors are not freed). */
NB_API nb_param_list *nb_param_list_new(void);
NB_API void nb_param_list_free(nb_param_list *list);
/* Appends (name, t). Errors: NB_ERR_ARG for a duplicate or over-long name. */
NB_API nb_status nb_param_list_add(nb_param_list *list, const char *name, nb_tensor *t, bool is_buffer);
/* The tensor named `name`, or NULL (no error recorded) when absent. */
NB_API nb_tensor *nb_param_list_find(const nb_param_list *list, const char *name);
/* Number of scalar parameters (buffers excluded); trainable_only counts only those requiring grad. */
NB_API int64_t nb_param_list_numel(const nb_param_list *list, bool trainable_only);
/* Freezes (requires_grad off) or unfreezes every parameter whose name starts with prefix ("" = all). The prefix
 * ends at a name boundary: "1" matches "1.weight" but not "10.weight" ("1." and "1.weight" work too).
 * Buffers are never touched. Returns how many parameters matched, or -1 on error. */
NB_API int nb_param_list_set_frozen(nb_param_list *list, const char *prefix, bool frozen);
/* Drops the gradient of every parameter. */
NB_API void nb_param_list_zero_grad(const nb_param_list *list);

/* ------------------------------------------------------------------------------------------------
 * Modules
 * ---------------------------------------------------------------------------------------------- */
typedef struct nb_module nb_module;
typedef struct nb_module_type {
    const char *name;                                                   /* "Linear", "Sequential", ... */
    nb_tensor *(*forward)(nb_module *m, nb_tensor *x);                  /* one input, one output */
    nb_status (*collect)(nb_module *m, const char *prefix, nb_param_list *out); /* NULL: no parameters */
    void (*set_training)(nb_module *m, bool training);                  /* NULL: just the flag */
    void (*destroy)(nb_module *m);                                      /* frees tensors and the struct */
    /* The i-th module m owns (i = 0, 1, ...), NULL past the last; NULL for a module that owns none. Containers
     * use it to refuse a module that is already inside them or that contains them (it would be freed twice). */
    nb_module *(*child)(nb_module *m, int i);
} nb_module_type;
struct nb_module {
    const nb_module_type *type;
    bool training; /* true after creation (PyTorch's default) */
    /* The container that will free this module (a Sequential, a LoRA wrapper, a transformer block ...), NULL for
     * a module the program owns. Set by the containers; a module type of the program's own starts it at NULL. */
    nb_module *owner;
};

/* m's forward. NULL m or x propagates. */
NB_API nb_tensor *nb_forward(nb_module *m, nb_tensor *x);
/* Appends m's parameters and buffers to out, names prefixed with "prefix." (no dot for an empty prefix). */
NB_API nb_status nb_module_collect(nb_module *m, const char *prefix, nb_param_list *out);
/* For models written as plain structs: collects child's parameters as "prefix.name.<param>" (or "name.<param>"
 * for an empty prefix), e.g. nb_module_collect_child(net->fc1, "", "fc1", list) gives "fc1.weight". */
NB_API nb_status nb_module_collect_child(nb_module *child, const char *prefix, const char *name, nb_param_list *out);
/* A new list of m's parameters and buffers (names without prefix); NULL on error. */
NB_API nb_param_list *nb_module_parameters(nb_module *m);
/* Train or eval mode, recursively (Dropout and BatchNorm behave differently). */
NB_API void nb_module_train(nb_module *m, bool training);
/* Frees m, its children and their tensors. NULL is a no-op. */
NB_API void nb_module_free(nb_module *m);
/* True when inner is outer or one of the modules outer owns, at any depth (through the types' child functions). */
NB_API bool nb_module_contains(const nb_module *outer, const nb_module *inner);

/* Sequential container: children named "0", "1", ... as in PyTorch. Takes ownership of the layers (also on
 * failure, so a failed layer constructor inside the array is safe: the others are freed and NULL is returned with
 * the constructor's message). x -> layers[0] -> ... -> layers[n-1]; an empty Sequential is the identity.
 * append and set take ownership of layer too, also on failure. A module has one owner: NB_ERR_ARG for a layer
 * given twice, one already inside another layer, inside seq or inside another container, or one that contains
 * seq, or one holding a module that another container owns (a LoRA wrapper around another container's Linear);
 * such a layer stays with its owner (on failure, a module owned elsewhere is not freed; a LoRA wrapper around a
 * Linear owned elsewhere is freed, the Linear left to its owner). */
NB_API nb_module *nb_sequential_new(int n, nb_module *const *layers);
NB_API nb_status nb_sequential_append(nb_module *seq, nb_module *layer);
NB_API int nb_sequential_len(const nb_module *seq);
NB_API nb_module *nb_sequential_get(nb_module *seq, int i); /* negative counts from the end */
/* Replaces child i by layer (for example a new head when fine-tuning), freeing the old child, unless layer
 * contains it: nb_sequential_set(seq, i, nb_lora_linear_new(nb_sequential_get(seq, i), ...)) wraps child i (when
 * the wrapper cannot be made, child i stays as it was and the error is returned). */
NB_API nb_status nb_sequential_set(nb_module *seq, int i, nb_module *layer);

/* ------------------------------------------------------------------------------------------------
 * Layers. Constructors return NULL on error. g NULL means the thread's default generator.
 * ---------------------------------------------------------------------------------------------- */
/* y = x W^T + b; x (..., in) -> (..., out). weight (out, in), bias (out). PyTorch's default init:
 * weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)). */
typedef struct nb_linear {
    nb_module base;
    int64_t in_features, out_features;
    nb_tensor *weight, *bias; /* bias NULL when created without one */
    nb_module *lora;          /* the LoRA wrapper around it (nb_lora_linear_new), NULL when none */
} nb_linear;
NB_API nb_module *nb_linear_new(int64_t in_features, int64_t out_features, bool bias, nb_generator *g);

/* Activation layers without parameters. */
NB_API nb_module *nb_relu_layer_new(void);
NB_API nb_module *nb_tanh_layer_new(void);
NB_API nb_module *nb_sigmoid_layer_new(void);
NB_API nb_module *nb_gelu_layer_new(bool approximate);
NB_API nb_module *nb_leaky_relu_layer_new(double negative_slope);
NB_API nb_module *nb_softmax_layer_new(int dim);
NB_API nb_module *nb_log_softmax_layer_new(int dim);

/* Dropout: in training, zeroes each element with probability p and scales the rest by 1/(1-p); identity in
 * eval mode (a new handle on the same data, as every forward returns a new tensor). p = 1 gives zeros.
 * Its generator is g (NULL: the thread's default at forward time); g must outlive the layer. */
typedef struct nb_dropout {
    nb_module base;
    double p;
    nb_generator *generator;
} nb_dropout;
NB_API nb_module *nb_dropout_new(double p, nb_generator *g);

/* Flattens dims start..end (PyTorch's Flatten defaults: 1, -1). */
NB_API nb_module *nb_flatten_layer_new(int start_dim, int end_dim);

/* LayerNorm over the last `ndim` dims of shape normalized_shape: (x - mean) / sqrt(var + eps) * weight + bias,
 * biased variance. weight ones, bias zeros (when elementwise_affine). */
typedef struct nb_layer_norm {
    nb_module base;
    int ndim;
    int64_t normalized_shape[NB_MAX_DIMS];
    double eps;
    nb_tensor *weight, *bias;
} nb_layer_norm;
NB_API nb_module *nb_layer_norm_new(int ndim, const int64_t *normalized_shape, double eps, bool elementwise_affine);

/* BatchNorm1d on (N, C) or (N, C, L). Training: normalizes with the batch's biased statistics and updates
 * running_mean/var (unbiased variance) with momentum: r = (1 - momentum) r + momentum batch. Eval: uses the
 * running statistics. Buffers: running_mean (zeros), running_var (ones), num_batches_tracked (i64 0-d). An empty
 * batch in training gives an empty output and counts in num_batches_tracked only (as PyTorch; BatchNorm2d too). */
typedef struct nb_batch_norm1d {
    nb_module base;
    int64_t num_features;
    double eps, momentum;
    nb_tensor *weight, *bias;
    nb_tensor *running_mean, *running_var, *num_batches_tracked;
} nb_batch_norm1d;
NB_API nb_module *nb_batch_norm1d_new(int64_t num_features, double eps, double momentum, bool affine);

/* Embedding: i64 indices of any shape -> index.shape + (dim). weight (num, dim) ~ N(0, 1). */
typedef struct nb_embedding_layer {
    nb_module base;
    int64_t num_embeddings, embedding_dim;
    nb_tensor *weight;
} nb_embedding_layer;
NB_API nb_module *nb_embedding_layer_new(int64_t num_embeddings, int64_t embedding_dim, nb_generator *g);

/* ------------------------------------------------------------------------------------------------
 * Convolutional layers (NCHW), wrapping the ops of nb_autograd.h's "Convolution and pooling" section.
 * Parameter and buffer names are PyTorch's, so checkpoints map by name.
 * ---------------------------------------------------------------------------------------------- */
/* Conv2d: weight (out, in / groups, kernel_h, kernel_w), bias (out) or none. PyTorch's default initialization:
 * kaiming_uniform(a = sqrt(5)) for the weight, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
 * fan_in = in / groups * kernel_h * kernel_w, and the same bound for the bias. */
typedef struct nb_conv2d_layer {
    nb_module base;
    int64_t in_channels, out_channels;
    int64_t kernel_size[2], stride[2], padding[2], dilation[2], groups;
    nb_tensor *weight, *bias; /* bias NULL when created without one */
} nb_conv2d_layer;
typedef struct nb_conv2d_options {
    int64_t kernel_size[2];
    int64_t stride[2];   /* 0 entries mean 1 */
    int64_t padding[2];
    int64_t dilation[2]; /* 0 entries mean 1 */
    int64_t groups;      /* 0 means 1 */
    bool no_bias;
} nb_conv2d_options;
/* Square kernel, stride, padding and dilation (the usual case); groups 1 for an ordinary convolution. */
NB_API nb_module *nb_conv2d_new(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
                                int64_t padding, int64_t dilation, int64_t groups, bool bias, nb_generator *g);
/* Any (height, width) pairs. */
NB_API nb_module *nb_conv2d_new_ex(int64_t in_channels, int64_t out_channels, const nb_conv2d_options *options,
                                   nb_generator *g);
/* Conv1d on (N, C, L): weight (out, in / groups, kernel_size), same initialization with fan_in = in / groups * k.
 * Its struct is nb_conv2d_layer with kernel_size[0] = 1 (the 1-d values in index 1). */
NB_API nb_module *nb_conv1d_new(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
                                int64_t padding, int64_t dilation, int64_t groups, bool bias, nb_generator *g);

/* MaxPool2d and AvgPool2d (square windows): stride 0 means kernel_size, as PyTorch's stride=None. AvgPool2d with
 * count_include_pad true is PyTorch's default. AdaptiveAvgPool2d to (out_h, out_w). No parameters. */
NB_API nb_module *nb_max_pool2d_new(int64_t kernel_size, int64_t stride, int64_t padding);
NB_API nb_module *nb_avg_pool2d_new(int64_t kernel_size, int64_t stride, int64_t padding, bool count_include_pad);
NB_API nb_module *nb_adaptive_avg_pool2d_new(int64_t out_h, int64_t out_w);

/* BatchNorm2d on (N, C, H, W): nb_batch_norm per channel, with the batch statistics in training (updating the
 * running ones with momentum) and the running ones in eval. Same struct, buffers and names as BatchNorm1d:
 * weight (ones), bias (zeros), running_mean (zeros), running_var (ones), num_batches_tracked (i64 0-d). */
typedef nb_batch_norm1d nb_batch_norm2d;
NB_API nb_module *nb_batch_norm2d_new(int64_t num_features, double eps, double momentum, bool affine);

/* Dropout2d: in training zeroes whole channels with probability p (nb_dropout2d); identity in eval. g as for
 * nb_dropout_new. */
NB_API nb_module *nb_dropout2d_new(double p, nb_generator *g);

/* ------------------------------------------------------------------------------------------------
 * Initializers (in place, no gradient recorded). fan_in and fan_out as PyTorch computes them: for a tensor
 * of shape (out, in, k...) fan_in = in * prod(k), fan_out = out * prod(k); tensors need at least 2 dims.
 * ---------------------------------------------------------------------------------------------- */
typedef enum nb_nonlinearity {
    NB_GAIN_LINEAR, NB_GAIN_SIGMOID, NB_GAIN_TANH, NB_GAIN_RELU, NB_GAIN_LEAKY_RELU, NB_GAIN_SELU
} nb_nonlinearity;
typedef enum nb_fan_mode { NB_FAN_IN, NB_FAN_OUT } nb_fan_mode;

/* Recommended gain: linear/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2 / (1 + slope^2)), selu 3/4. */
NB_API double nb_calculate_gain(nb_nonlinearity nonlinearity, double param);
NB_API nb_status nb_init_uniform_(nb_tensor *t, double low, double high, nb_generator *g);
NB_API nb_status nb_init_normal_(nb_tensor *t, double mean, double std, nb_generator *g);
NB_API nb_status nb_init_zeros_(nb_tensor *t);
NB_API nb_status nb_init_ones_(nb_tensor *t);
NB_API nb_status nb_init_constant_(nb_tensor *t, double value);
/* U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out)); normal with std = gain sqrt(2 / (fan_in + fan_out)). */
NB_API nb_status nb_init_xavier_uniform_(nb_tensor *t, double gain, nb_generator *g);
NB_API nb_status nb_init_xavier_normal_(nb_tensor *t, double gain, nb_generator *g);
/* bound = gain(nonlinearity, a) sqrt(3 / fan); std = gain / sqrt(fan); fan by mode. */
NB_API nb_status nb_init_kaiming_uniform_(nb_tensor *t, double a, nb_fan_mode mode, nb_nonlinearity nonlinearity,
                                          nb_generator *g);
NB_API nb_status nb_init_kaiming_normal_(nb_tensor *t, double a, nb_fan_mode mode, nb_nonlinearity nonlinearity,
                                         nb_generator *g);

/* ------------------------------------------------------------------------------------------------
 * Losses. reduction: mean over elements (PyTorch's default), sum, or none (elementwise result); the mean of an
 * empty input is NaN, as in PyTorch. Inputs are f32 or f64 (mixed dtypes promote); targets of the class losses are
 * i64. Errors: NB_ERR_SHAPE naming the loss and both shapes, NB_ERR_DTYPE, NB_ERR_ARG for an invalid reduction,
 * beta, delta or label_smoothing. Gradients flow into every floating-point argument (targets and weights too).
 * ---------------------------------------------------------------------------------------------- */
typedef enum nb_reduction { NB_REDUCTION_MEAN = 0, NB_REDUCTION_SUM, NB_REDUCTION_NONE } nb_reduction;

/* The regression losses take input and target of exactly the same shape: where PyTorch broadcasts different
 * shapes (with a warning), nabla refuses them, since an (N, 1) prediction against an (N) target would silently
 * become an (N, N) loss. d = input - target. */
/* d^2 */
NB_API nb_tensor *nb_mse_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction);
/* |d| (gradient 0 at d = 0) */
NB_API nb_tensor *nb_l1_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction);
/* 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta. beta finite and >= 0; beta 0 is the L1 loss (PyTorch). */
NB_API nb_tensor *nb_smooth_l1_loss(nb_tensor *input, nb_tensor *target, double beta, nb_reduction reduction);
/* 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta). delta finite and > 0. */
NB_API nb_tensor *nb_huber_loss(nb_tensor *input, nb_tensor *target, double delta, nb_reduction reduction);
/* w [(y - 1) max(log(1 - p), -100) - y max(log p, -100)], PyTorch's clamped form; target has probs' shape, weight
 * is NULL or broadcasts to it. probs outside [0, 1] (or NaN) are NB_ERR_VALUE naming the first one. The gradient
 * is the clamped formula's own: 0 where a log is clamped (p = 0 or 1), where PyTorch uses (p - y) / max(p (1 - p),
 * 1e-12). */
NB_API nb_tensor *nb_bce_loss(nb_tensor *probs, nb_tensor *target, nb_tensor *weight, nb_reduction reduction);
/* -w [pw y log s(x) + (1 - y) log(1 - s(x))], computed stably as w [(1 - y) x + (1 + (pw - 1) y) softplus(-x)]
 * (finite for any logits). target has logits' shape; weight and pos_weight (typically (C), one per class along the
 * last dim) are NULL or broadcast to it. */
NB_API nb_tensor *nb_bce_with_logits_loss(nb_tensor *logits, nb_tensor *target, nb_tensor *weight,
                                          nb_tensor *pos_weight, nb_reduction reduction);
typedef struct nb_cross_entropy_options {
    nb_tensor *weight;      /* (C) class weights, or NULL */
    int64_t ignore_index;   /* targets equal to it contribute nothing; PyTorch's default -100 */
    double label_smoothing; /* in [0, 1] */
    nb_reduction reduction; /* mean divides by the sum of the weights of the non-ignored targets (NaN if none) */
} nb_cross_entropy_options;
/* Defaults: no weight, ignore_index -100, no smoothing, mean. */
NB_API nb_cross_entropy_options nb_cross_entropy_defaults(void);
/* Cross-entropy from logits (N, C) (or (N, C, d1, ...), or (C) with a 0-d target) and i64 class indices (N) (or
 * (N, d1, ...)), via a stable log_softmax. With log-probabilities lp and eps = label_smoothing, as PyTorch:
 *     loss_i = (1 - eps) w[t_i] (-lp[i, t_i]) + (eps / C) sum_c w[c] (-lp[i, c])      (0 where t_i is ignored)
 * Targets outside [0, C) other than ignore_index are NB_ERR_INDEX naming the value and C. Class-probability
 * targets (float, shaped like the logits) are not supported. options NULL means the defaults. */
NB_API nb_tensor *nb_cross_entropy(nb_tensor *logits, nb_tensor *target, const nb_cross_entropy_options *options);
/* Negative log-likelihood from log-probabilities, same shapes and options (label_smoothing ignored). */
NB_API nb_tensor *nb_nll_loss(nb_tensor *log_probs, nb_tensor *target, const nb_cross_entropy_options *options);

/* Penalties over the parameters of a list (buffers excluded; frozen ones included only if include_frozen):
 * L1 = sum |p|, L2 = sum p^2 (add lambda * penalty to the loss). 0-d f32 (f64 if any included parameter is f64);
 * 0 when no parameter is included. */
NB_API nb_tensor *nb_l1_penalty(const nb_param_list *params, bool include_frozen);
NB_API nb_tensor *nb_l2_penalty(const nb_param_list *params, bool include_frozen);

/* ------------------------------------------------------------------------------------------------
 * Checkpoints in the safetensors format (a little-endian u64 header length, a JSON header naming each tensor's
 * dtype, shape and byte range, then the raw data), readable by PyTorch / Hugging Face tools. nabla writes F32,
 * F64, I64 and BOOL tensors, and string key/value metadata under "__metadata__".
 * ---------------------------------------------------------------------------------------------- */
typedef struct nb_metadata_entry {
    char key[64];
    char value[256];
} nb_metadata_entry;
/* Room for a checkpoint of a model, an optimizer with a few dozen parameter groups and two schedules, and the
 * program's own entries (about 40 KiB, so an nb_metadata on the stack stays well within a thread's). */
#define NB_METADATA_MAX_ENTRIES 128
typedef struct nb_metadata {
    int count;
    nb_metadata_entry entries[NB_METADATA_MAX_ENTRIES];
} nb_metadata;
/* Adds key = value, or replaces the value of an existing key. Start from `nb_metadata m = {0};`. Errors: NB_ERR_ARG
 * for an empty key, a key over 63 or a value over 255 bytes, text that is not UTF-8, or a key beyond
 * NB_METADATA_MAX_ENTRIES. */
NB_API nb_status nb_metadata_set(nb_metadata *m, const char *key, const char *value);
NB_API const char *nb_metadata_get(const nb_metadata *m, const char *key); /* NULL when absent */

/* Writes every tensor of the list (parameters and buffers; non-contiguous ones as their row-major values) and the
 * metadata (may be NULL) to path atomically: a temporary file "<path>.tmp.<pid>.<n>" in the same directory,
 * fsync, rename, fsync of the directory; a failure at any point removes the temporary file and leaves an existing
 * file at path untouched. Replacing a file keeps its permission bits (a 0600 checkpoint stays 0600); a new file
 * gets 0666 less the umask. When path is a symbolic link (a chain is followed to its end; a relative target is
 * relative to the link's directory), the file it points to is replaced, with the temporary file beside it, and
 * the link is left as it is; a dangling link's target is created if its directory exists, as writing through
 * the link would, and is otherwise NB_ERR_IO naming the link and its target. The header lists "__metadata__"
 * first, then the tensors in list order, and the data follows in the same order. Errors: NB_ERR_IO naming the
 * path (and a link's target) and the system's reason, including a cycle of links, and a path (or a link's end)
 * that exists but is not a regular file (a directory, device, FIFO or socket), which is left unchanged;
 * NB_ERR_ARG for names that are not valid UTF-8, duplicated, or "__metadata__". */
NB_API nb_status nb_save_safetensors(const char *path, const nb_param_list *tensors, const nb_metadata *metadata);

typedef enum nb_load_mode {
    NB_LOAD_STRICT = 0, /* every tensor of the list must be in the file with the same dtype and shape, and the
                           file must hold nothing else; on any mismatch nothing is loaded */
    NB_LOAD_PARTIAL = 1 /* load what matches by name, dtype and shape; report the rest */
} nb_load_mode;
typedef struct nb_load_report {
    int loaded;
    int missing;    /* in the list, not in the file */
    int unexpected; /* in the file, not in the list */
    int mismatched; /* same name, different dtype or shape */
    char details[4096]; /* one line per missing/unexpected/mismatched name, e.g. "mismatch fc2.weight: file (5, 128) f32, model (10, 128) f32" */
} nb_load_report;
/* Loads tensors from path into the list's tensors (copied in place, by name, with nb_copy_). Every tensor is read
 * before any is written, so on any error the list's tensors are unchanged. report may be NULL. The tensors that
 * would be written must not share memory, or the result would depend on the order of the copies: each must be
 * one-to-one with its memory (not an expanded view with stride 0 along a dim of size > 1) and no two may have an
 * element in common (the same tensor under two names, a view and its base, overlapping views); disjoint views
 * of one tensor (interleaved columns, even and odd elements) are fine. Any such problem is NB_ERR_ARG naming the
 * entries, before any data is read; in partial mode only the entries the file holds count. Errors:
 * NB_ERR_IO (cannot open/read), NB_ERR_FORMAT (truncated or corrupt file: bad header length, invalid JSON,
 * offsets outside the data, overlapping or with gaps, any dtype other than F32/F64/I64/BOOL; the message names the
 * path and what is wrong), NB_ERR_SHAPE (strict mode mismatch; the message lists every problem, as far as the
 * message length allows, then "... and N more"; the report has the same lines). metadata (may be NULL) receives the file's
 * metadata. A corrupt file never causes a crash, an out-of-bounds read or a huge allocation. */
NB_API nb_status nb_load_safetensors(const char *path, nb_param_list *into, nb_load_mode mode,
                                     nb_load_report *report, nb_metadata *metadata);
/* Reads every tensor of a safetensors file, in header order, into a new list of new caller-owned tensors (free
 * each with nb_free, then the list). Unlike nb_load_safetensors it converts exactly: F16 and BF16 to f32, the
 * integer dtypes (I8..I32, U8..U64) to i64 (a U64 value above INT64_MAX is NB_ERR_FORMAT); F8 dtypes are
 * NB_ERR_FORMAT. For both functions, file metadata that does not fit nb_metadata is NB_ERR_FORMAT unless
 * metadata is NULL. */
NB_API nb_param_list *nb_read_safetensors(const char *path, nb_metadata *metadata);
/* Saves / restores a random generator's exact state (its four xoshiro256** words and the cached second normal
 * value) as one metadata entry "<prefix>.generator" ("generator" for an empty or NULL prefix), so that a training
 * run resumed from a checkpoint draws the same dropout masks, shuffles and initial values as an uninterrupted
 * run. Save nb_default_generator() for the thread's default generator. Errors: NB_ERR_NULL; NB_ERR_FORMAT naming
 * the key when it is missing or malformed on restore (g is unchanged then); nb_metadata_set's errors on save. */
NB_API nb_status nb_generator_state(const nb_generator *g, const char *prefix, nb_metadata *metadata);
NB_API nb_status nb_generator_restore(nb_generator *g, const nb_metadata *metadata, const char *prefix);

/* ------------------------------------------------------------------------------------------------
 * Attention, transformer blocks, a GPT language model, and LoRA adapters (nn/attention.c, nn/lora.c).
 * Shapes: B batch, T sequence length (queries), S keys, C = embed_dim channels, H heads, D = C / H per head.
 * Names follow PyTorch/nanoGPT habits so that a PyTorch user recognises a checkpoint:
 * "blocks.0.attn.qkv.weight", "blocks.0.mlp.fc.bias", "blocks.0.attn.qkv.lora_A", ...
 * The constructors' generator g (NULL: the thread's default) draws the initial weights only; dropout draws from
 * the module's `generator` field, NULL (the thread's default) after creation: set it (on each module that has
 * one) to use a generator of your own, which must then outlive the module.
 * ---------------------------------------------------------------------------------------------- */
/* Scaled dot-product attention (PyTorch 2's F.scaled_dot_product_attention, math path):
 *     att = softmax(q k^T / sqrt(D) + M, dim -1);   out = dropout(att, p) v
 * q (..., T, D), k (..., S, D), v (..., S, Dv), batch dims broadcasting -> (..., T, Dv). M is 0 where a query may
 * look at a key and -inf elsewhere: with causal, query i sees keys j <= i (PyTorch's is_causal, tril of a (T, S)
 * matrix of ones); with attn_mask (broadcasting to (..., T, S)), a bool mask is true where attention is allowed
 * and a float mask is added to the scores. A query row that sees no key gives NaN, as in PyTorch. dropout_p in
 * [0, 1) is applied whenever it is > 0 (pass 0 in eval), with generator g (NULL: the thread's default).
 * Errors: NB_ERR_SHAPE naming the three shapes (fewer than 2 dims, D of q and k differ, S of k and v differ),
 * NB_ERR_ARG for causal together with attn_mask or a dropout_p outside [0, 1), NB_ERR_DTYPE for an integer q, k, v
 * or attn_mask. */
NB_API nb_tensor *nb_scaled_dot_product_attention(nb_tensor *q, nb_tensor *k, nb_tensor *v, nb_tensor *attn_mask,
                                                  bool causal, double dropout_p, nb_generator *g);

/* Multi-head self-attention on x (B, T, C):
 *     q, k, v = split(qkv(x), 3, dim -1), each viewed as (B, H, T, D);
 *     y = sdpa(q, k, v, causal, dropout in training) merged back to (B, T, C);   out = dropout(proj(y))
 * qkv: Linear(C, 3C) whose output rows 0..C-1 give q, C..2C-1 k and 2C..3C-1 v (nanoGPT's c_attn layout);
 * proj: Linear(C, C). Both are modules, so a LoRA wrapper can replace them. Parameters "qkv.weight" (3C, C),
 * "qkv.bias" (3C), "proj.weight" (C, C), "proj.bias" (C) (no biases when created without). Linear's default
 * initialization. embed_dim must be a positive multiple of num_heads; dropout in [0, 1) (0: none). */
typedef struct nb_self_attention {
    nb_module base;
    int64_t embed_dim, num_heads;
    bool causal;
    double dropout;
    nb_generator *generator; /* dropout's; NULL: the thread's default */
    nb_module *qkv, *proj;
} nb_self_attention;
NB_API nb_module *nb_self_attention_new(int64_t embed_dim, int64_t num_heads, bool causal, double dropout, bool bias,
                                        nb_generator *g);

/* Pre-LayerNorm transformer block (GPT-2) on x (B, T, C):
 *     x = x + attn(ln1(x));   x = x + dropout(mlp.proj(gelu(mlp.fc(ln2(x)))))
 * ln1, ln2: LayerNorm(C, eps 1e-5); attn: nb_self_attention; mlp.fc: Linear(C, 4C); mlp.proj: Linear(4C, C);
 * GELU is the exact (erf) one, PyTorch's default. Parameters "ln1.weight", "ln1.bias", "attn.qkv.weight",
 * "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias", "ln2.weight", "ln2.bias", "mlp.fc.weight",
 * "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias". */
typedef struct nb_transformer_block {
    nb_module base;
    double dropout;
    nb_generator *generator;
    nb_module *ln1, *ln2; /* nb_layer_norm */
    nb_module *attn;      /* nb_self_attention */
    nb_module *fc, *proj; /* the MLP's Linear layers ("mlp.fc", "mlp.proj") */
} nb_transformer_block;
NB_API nb_module *nb_transformer_block_new(int64_t embed_dim, int64_t num_heads, bool causal, double dropout,
                                           nb_generator *g);

/* A GPT: a decoder-only transformer language model. idx (B, T) i64 token indices, 1 <= T <= context ->
 * logits (B, T, vocab_size):
 *     x = dropout(tok_emb[idx] + pos_emb[0..T-1]);   x = blocks(x);   logits = head(ln_f(x))
 * blocks: n_layer causal nb_transformer_block in a Sequential; head: Linear(C, vocab_size, no bias), or with
 * tie_weights logits = ln_f(x) tok_emb.weight^T (the head shares the embedding matrix, as in GPT-2).
 * Initialization as GPT-2/nanoGPT: Linear and Embedding weights ~ N(0, 0.02), biases 0, the residual
 * projections (attn.proj and mlp.proj of each block) ~ N(0, 0.02 / sqrt(2 n_layer)), LayerNorms 1 and 0.
 * Parameters "tok_emb.weight" (vocab, C), "pos_emb.weight" (context, C), "blocks.<i>.<block names>",
 * "ln_f.weight", "ln_f.bias", "head.weight" (absent when tied: the shared matrix is listed once, so optimizers
 * update it once and checkpoints hold it once, as Hugging Face does). */
typedef struct nb_gpt_config {
    int64_t vocab_size; /* required (no default) */
    int64_t context;    /* longest sequence (block_size): size of pos_emb */
    int64_t n_layer, n_head, n_embd;
    double dropout;
    bool tie_weights;
} nb_gpt_config;
/* vocab_size 0 (to set), context 64, 4 layers, 4 heads, n_embd 128, dropout 0, tie_weights true. */
NB_API nb_gpt_config nb_gpt_defaults(void);
typedef struct nb_gpt {
    nb_module base;
    nb_gpt_config config;
    nb_generator *generator; /* dropout's (embeddings); the blocks have their own */
    nb_module *tok_emb, *pos_emb; /* nb_embedding_layer */
    nb_module *blocks;            /* Sequential of nb_transformer_block */
    nb_module *ln_f;              /* nb_layer_norm */
    nb_module *head;              /* nb_linear, NULL when tie_weights */
} nb_gpt;
/* Errors: NB_ERR_ARG naming the config field for a non-positive size, n_embd not a multiple of n_head, or a
 * dropout outside [0, 1). */
NB_API nb_module *nb_gpt_new(const nb_gpt_config *config, nb_generator *g);
/* Autoregressive sampling: returns idx (B, T0) i64 extended by n_new tokens, (B, T0 + n_new). Each new token is
 * drawn from softmax(logits / temperature) of the last position, the model seeing the last `context` tokens,
 * restricted to the top_k most likely tokens when top_k > 0 (ties at the k-th value kept); temperature 0 picks
 * the most likely token. Runs without recording a graph, in the model's current mode (call nb_module_train(m,
 * false) first to turn dropout off). Deterministic for a given generator state (NULL: the thread's default). */
NB_API nb_tensor *nb_gpt_generate(nb_module *gpt, nb_tensor *idx, int64_t n_new, double temperature, int64_t top_k,
                                  nb_generator *g);

/* LoRA (Hu et al., 2021) around a Linear layer, with loralib's/PEFT's conventions:
 *     y = base(x) + (alpha / r) (x A^T) B^T
 * A (r, in) ~ kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); B (out, r) = 0, so the wrapped layer
 * starts out exactly equal to the base. The base weight and bias are frozen (requires_grad off); only A and B
 * train. Names: "weight" and "bias" stay the base layer's (a checkpoint of the base model loads into the wrapped
 * model unchanged), plus "lora_A" and "lora_B". Merged (nb_lora_merge), the forward is the base layer alone with
 * W + (alpha / r) B A; A and B then get no gradient, so unmerge before training again. */
typedef struct nb_lora_linear {
    nb_module base;
    nb_linear *linear; /* the wrapped layer, owned once linear->base.owner is this wrapper */
    int64_t rank;
    double alpha, scaling; /* scaling = alpha / rank */
    nb_tensor *lora_A, *lora_B;
    bool merged;
    bool weight_grad, bias_grad; /* the Linear's requires_grad before wrapping */
} nb_lora_linear;
/* Takes ownership of linear (an nb_linear). On failure a linear of the program's own is freed, and one inside a
 * container (child i of a Sequential, a transformer block's layer) stays with it unchanged. Such a Linear remains
 * the container's until the wrapper takes its place there (nb_sequential_set(seq, i, wrapper) for child i, or the
 * field of a block or attention module that held it: `a->qkv = wrapper`), which hands it over; anywhere else
 * (another slot, append, another container) the wrapper is refused with NB_ERR_ARG and freed alone, the Linear
 * back in its container as it was (trainable again, and unmerged if the wrapper was merged). nb_module_free of a
 * wrapper never installed likewise frees only the wrapper; if its Linear's container is freed first, the wrapper
 * is left without a Linear, and its forward, merge and parameters are NB_ERR_STATE until it is freed. Errors:
 * NB_ERR_ARG for a module that is not a Linear, a Linear that a LoRA wrapper already wraps, rank < 1 or a
 * non-finite alpha. */
NB_API nb_module *nb_lora_linear_new(nb_module *linear, int64_t rank, double alpha, nb_generator *g);
/* Folds the adapter into the base weight, W += (alpha / r) B A, or takes it back out, W -= (alpha / r) B A (equal
 * to the original within f32 rounding). NB_ERR_STATE when already merged / not merged; NB_ERR_ARG when m is not
 * an nb_lora_linear. */
NB_API nb_status nb_lora_merge(nb_module *m);
NB_API nb_status nb_lora_unmerge(nb_module *m);
/* The adapter entries of a parameter list: those whose last name component is "lora_A" or "lora_B" (a new list
 * pointing at the same tensors; free it with nb_param_list_free). */
NB_API nb_param_list *nb_lora_adapters(const nb_param_list *params);
/* Saves only the adapters of model (its lora_A and lora_B tensors, under their full names such as
 * "blocks.0.attn.qkv.lora_A") with metadata (may be NULL); NB_ERR_ARG when the model has none. Loading is strict
 * (every adapter of the model in the file, nothing else, same shapes); load into an unmerged model (NB_ERR_STATE
 * for a merged LoRA layer among the modules the model's type lists as children). */
NB_API nb_status nb_lora_save(const char *path, nb_module *model, const nb_metadata *metadata);
NB_API nb_status nb_lora_load(const char *path, nb_module *model, nb_load_report *report, nb_metadata *metadata);

/* Wraps the Linear layers of a GPT named by targets, a comma-separated list matched as PEFT's target_modules: a
 * target matches a layer whose full name equals it or ends with "." + target. Layer names: "blocks.<i>.attn.qkv",
 * "blocks.<i>.attn.proj", "blocks.<i>.mlp.fc", "blocks.<i>.mlp.proj", "head" (so "qkv" picks every block's qkv,
 * "attn.proj" only the attention projections, "proj" both projections). Every other parameter of the model is
 * frozen, as PEFT does: only the adapters (these and any added before) train. Returns the number of layers wrapped, or -1 on error (NB_ERR_ARG
 * when nothing matches, naming the targets, or, with nothing changed, when a matching Linear has a wrapper the
 * program made and has not put in its place; layers already wrapped are skipped, so applying the same targets
 * again returns 0). The blocks are those gpt->blocks holds when called (children that are not transformer blocks
 * are skipped). */
NB_API int nb_gpt_apply_lora(nb_module *gpt, const char *targets, int64_t rank, double alpha, nb_generator *g);
/* Merges (merge true) or unmerges every LoRA layer of the GPT that is not already in that state; returns how
 * many changed, or -1 on error. */
NB_API int nb_gpt_merge_lora(nb_module *gpt, bool merge);

#ifdef __cplusplus
}
#endif
#endif
