/* Internal helpers shared by nn/'s modules. Not installed. */
#ifndef NABLA_NN_INTERNAL_H
#define NABLA_NN_INTERNAL_H

#include "autograd_internal.h"
#include "nb_nn.h"

/* Makes a freshly created tensor caller-owned whatever scopes are open: a module's parameters and buffers
 * outlive the scope its constructor ran in and die only in nb_module_free. NULL propagates. */
nb_tensor *nbi_nn_own(nb_tensor *t);
/* A new caller-owned parameter (f32, requires grad) filled with zeros; NULL on error. */
nb_tensor *nbi_nn_param(int ndim, const int64_t *shape, const char *fn);
/* nb_free for a module's tensor that may be NULL or already freed by the user (then nothing happens). */
void nbi_nn_free_tensor(nb_tensor *t);

/* Writes "prefix.name" (or "name" for an empty prefix) into out; NB_ERR_ARG naming fn when it does not fit. */
nb_status nbi_nn_join(char out[NB_NAME_MAX], const char *prefix, const char *name, const char *fn);
/* Appends t as "prefix.name" to out; a NULL t (an absent bias) is skipped. */
nb_status nbi_nn_collect_one(nb_param_list *out, const char *prefix, const char *name, nb_tensor *t,
                             bool is_buffer);

/* A layer's forward runs between these two so that its temporaries die with an internal scope, while its
 * result moves to the caller's scope (or to the caller). nbi_nn_end returns result, or NULL on failure. */
nb_status nbi_nn_begin(void);
nb_tensor *nbi_nn_end(nb_tensor *result);
/* Inverted dropout of a float x with 0 < p < 1, as nn.Dropout computes it: x times a constant mask that is 0 with
 * probability p and 1 / (1 - p) otherwise (a multiplication, so a NaN or infinite x stays NaN where dropped, as
 * in PyTorch). x unchanged for p = 0 or NULL x. */
nb_tensor *nbi_nn_dropout(nb_tensor *x, double p, nb_generator *g);

/* Allocates a zeroed module struct of `size` bytes with its type set and training on; NULL when out of memory. */
void *nbi_nn_module_new(size_t size, const nb_module_type *type, const char *fn);
/* Records m as the owner of each module it holds (through its type's child function); NULL m is a no-op.
 * Containers call it once their children are in place. */
void nbi_nn_adopt_children(nb_module *m);

/* True for an nb_lora_linear, whose destroy leaves a Linear that another container still owns (a wrapper not yet
 * installed in that container's slot). */
bool nbi_nn_is_lora(const nb_module *m);
/* Called by a Linear being freed while a LoRA wrapper that does not own it still points to it. */
void nbi_lora_forget_linear(nb_module *lora);
/* Frees a container's n child slots. A LoRA wrapper put by hand into a slot that held the Linear it wraps
 * (`a->qkv = nb_lora_linear_new(a->qkv, ...)`) took that Linear's place: it is handed the Linear first, as
 * nb_sequential_set hands it over, unless the Linear is still in another slot. */
void nbi_nn_free_children(nb_module *parent, int n, nb_module *const *children);

/* Batch normalization modules (nn/norm.c), shared by BatchNorm1d and BatchNorm2d, which differ only in their type
 * (name and forward): validates the arguments and creates the parameters and running statistics. */
nb_module *nbi_batch_norm_new(const nb_module_type *type, const char *fn, int64_t num_features, double eps,
                              double momentum, bool affine);
nb_status nbi_batch_norm_collect(nb_module *m, const char *prefix, nb_param_list *out);
void nbi_batch_norm_destroy(nb_module *m);

#endif
