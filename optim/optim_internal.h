/* Internal interface of optim/: the generic optimizer that each algorithm (sgd.c, adam.c, rmsprop.c, adagrad.c)
 * specializes with its options, its state names and its update rule, and the metadata helpers that optimizers
 * and schedulers share for checkpoints. Not installed. */
#ifndef NABLA_OPTIM_INTERNAL_H
#define NABLA_OPTIM_INTERNAL_H

#include "nn_internal.h"
#include "nb_optim.h"

/* "step" plus at most three tensors per parameter (Adam with amsgrad, centered RMSprop with momentum). */
#define NBI_OPTIM_MAX_STATE 4

typedef struct nbi_optim_param {
    char name[NB_NAME_MAX];
    nb_tensor *tensor;
    /* state[0] is "step", a 0-d i64 count of the updates this parameter received (PyTorch keeps it per
     * parameter too: a parameter without a gradient at some step is not advanced, which matters for Adam's bias
     * correction and SGD's first momentum step). The others have the parameter's shape and dtype. NULL until
     * the first update of this parameter, or until nb_optimizer_state asks for them. */
    nb_tensor *state[NBI_OPTIM_MAX_STATE];
    int group;   /* index into the optimizer's groups */
    bool active; /* scratch for nb_optimizer_step: has a gradient and requires grad */
} nbi_optim_param;

typedef struct nbi_optim_group nbi_optim_group;

/* One update of parameter p, in group grp, with gradient g. t counts this parameter's updates including this one
 * (1 at its first). Runs in no-grad mode inside a scope that ends after it, so temporaries need no freeing; writes
 * go through nb_copy_. A NULL from a failed op propagates into nb_copy_, which returns the error. */
typedef nb_status (*nbi_optim_update_fn)(const nbi_optim_group *grp, nb_tensor *p, nb_tensor *g,
                                         nb_tensor *const *state, int64_t t);

/* The raw arrays of one parameter's update, for the fused kernels that read the parameter, its gradient and its
 * state in a single pass: n elements of dtype each, all contiguous. */
typedef struct nbi_optim_flat {
    nb_dtype dtype;
    int64_t n;
    void *p;
    const void *g;
    void *s[NBI_OPTIM_MAX_STATE]; /* s[k] is state[k]'s data (s[0], the step count, is unused) */
} nbi_optim_flat;

/* Fills f when p, g and state[1..n_state-1] are contiguous, of one float dtype and size, and do not share storage
 * (a fused kernel then computes what the ops would, element by element); false sends the update to the op path. */
bool nbi_optim_flat_get(nb_tensor *p, nb_tensor *g, nb_tensor *const *state, int n_state, nbi_optim_flat *f);
/* After a fused kernel wrote p and the state: bumps their storage versions, as nb_copy_ would. */
void nbi_optim_flat_written(nb_tensor *p, nb_tensor *const *state, int n_state);
/* Runs fn over [0, n) in chunks on the thread pool (fixed grain: elementwise, so any split gives the same bits). */
void nbi_optim_parallel(int64_t n, nbi_range_fn fn, void *ctx);
/* Elements per block of the fused kernels: loops over a whole block have a constant trip count, which the
 * compiler vectorizes at -O2. */
#define NBI_OPTIM_BLOCK 64
/* For the block functions, so that the constant block size reaches their loops. */
#if defined(__GNUC__)
#define NBI_OPTIM_INLINE static inline __attribute__((always_inline))
#else
#define NBI_OPTIM_INLINE static inline
#endif

/* The gradient a fused update feeds its rule when maximize or L2 weight decay is on, into out[0..n): the op
 * path's -g when maximizing, then its + p wd when decaying (wd is a real of the kernel's dtype). One of maximize
 * and l2 must hold; without either, the kernels read g itself. */
#define NBI_OPTIM_EFFECTIVE_GRAD(out, g, p, wd, n, maximize, l2)                                                      \
    do {                                                                                                              \
        if (!(maximize))                                                                                              \
            for (int64_t j_ = 0; j_ < (n); j_++) (out)[j_] = (g)[j_] + (p)[j_] * (wd);                                \
        else if (!(l2))                                                                                               \
            for (int64_t j_ = 0; j_ < (n); j_++) (out)[j_] = -(g)[j_];                                                \
        else                                                                                                          \
            for (int64_t j_ = 0; j_ < (n); j_++) (out)[j_] = -(g)[j_] + (p)[j_] * (wd);                               \
    } while (0)

/* A parameter group (PyTorch's param_groups entry): its own options and lr. Which state tensors its parameters
 * carry follows the options it was made with (SGD's momentum buffer only with momentum, ...), so groups of one
 * optimizer may differ in their state; OneCycleLR may later change momentum or beta1, never that layout. */
struct nbi_optim_group {
    double lr;         /* the current lr (schedulers change it); the options keep the one the group was made with */
    double initial_lr; /* the lr when the first schedule drove this group (PyTorch's initial_lr); NAN before */
    union {
        nb_sgd_options sgd;
        nb_adam_options adam;
        nb_rmsprop_options rmsprop;
        nb_adagrad_options adagrad;
    } options;
    int n_state;
    const char *state_names[NBI_OPTIM_MAX_STATE]; /* PyTorch's state keys: "exp_avg", "momentum_buffer", ... */
    double state_init[NBI_OPTIM_MAX_STATE];       /* initial value (Adagrad's initial_accumulator_value) */
    int n_params;                                 /* how many of the optimizer's parameters belong to it */
};

/* Declares the group's state after "step", from its options; each algorithm has one. */
typedef void (*nbi_optim_layout_fn)(nbi_optim_group *grp);

struct nb_optimizer {
    const char *type; /* PyTorch's class name, written to checkpoints: "SGD", "Adam", ... */
    int64_t steps;
    nbi_optim_update_fn update;
    nbi_optim_layout_fn layout;
    int n_groups;
    nbi_optim_group *groups; /* groups[0] is the one given at creation */
    int n_params;
    nbi_optim_param *params; /* in group order: group 0's first, each group's in its list's order */
};

/* A new optimizer of the given type over the list's parameters, all in group 0, which takes *group (options and
 * lr already set; its state layout is made here): buffers and integer entries are left out (they can never have a
 * gradient), frozen ones are kept (they may be unfrozen later). Errors (naming fn): NULL or empty list, a freed
 * tensor, a tensor listed twice. */
nb_optimizer *nbi_optimizer_new(const nb_param_list *list, const char *type, const nbi_optim_group *group,
                                nbi_optim_update_fn update, nbi_optim_layout_fn layout, const char *fn);
/* Appends a group taking the list's parameters, with the same rules as nbi_optimizer_new, and refuses a parameter
 * (tensor or name) that some group already holds. Nothing changes on error. */
nb_status nbi_optimizer_add_group(nb_optimizer *opt, const nb_param_list *list, const nbi_optim_group *group,
                                  const char *fn);
void nbi_optim_add_state(nbi_optim_group *grp, const char *name, double initial);
/* The layouts of sgd.c, adam.c (Adam and AdamW) and rmsprop.c: an optimizer's layout tells its algorithm. */
void nbi_sgd_layout(nbi_optim_group *grp);
void nbi_adam_layout(nbi_optim_group *grp);
void nbi_rmsprop_layout(nbi_optim_group *grp);

/* Option checks: true when the value is allowed, else an NB_ERR_ARG naming fn, the option and the value. */
bool nbi_optim_check_nonneg(const char *fn, const char *option, double value);       /* finite, >= 0 */
bool nbi_optim_check_unit(const char *fn, const char *option, double value);         /* in [0, 1) */
bool nbi_optim_check_finite(const char *fn, const char *option, double value);

/* Metadata entries "<prefix>.<field>" (just "<field>" for an empty or NULL prefix). The setters fail when the key
 * does not fit in nb_metadata_entry.key or the metadata is full; the getters fail with NB_ERR_FORMAT, naming the
 * key, when the entry is missing or does not hold what is expected. Doubles are written with 17 significant
 * digits, so they read back bit-exactly. */
nb_status nbi_meta_set_str(nb_metadata *m, const char *prefix, const char *field, const char *value, const char *fn);
nb_status nbi_meta_set_int(nb_metadata *m, const char *prefix, const char *field, int64_t value, const char *fn);
nb_status nbi_meta_set_double(nb_metadata *m, const char *prefix, const char *field, double value, const char *fn);
nb_status nbi_meta_expect_str(const nb_metadata *m, const char *prefix, const char *field, const char *expected,
                              const char *fn);
nb_status nbi_meta_get_int(const nb_metadata *m, const char *prefix, const char *field, int64_t *out,
                           const char *fn);
nb_status nbi_meta_get_double(const nb_metadata *m, const char *prefix, const char *field, double *out,
                              const char *fn);

/* Metadata of several parameter groups: "group<g>.<field>" into out, and the group count of a checkpoint (its
 * "<prefix>.param_groups", 1 when absent: one group, or written before groups existed). */
void nbi_meta_group_field(char *out, size_t size, int g, const char *field);
nb_status nbi_meta_get_groups(const nb_metadata *m, const char *prefix, int64_t *out, const char *fn);
/* Whether "<prefix>.<field>" is present. */
bool nbi_meta_has(const nb_metadata *m, const char *prefix, const char *field);
/* n values for each of n_groups groups (values[g n + j]), packed as space-separated numbers in entries
 * "<prefix>.groups.<first group>" holding as many groups as fit in a value, so that a few entries serve dozens of
 * groups; the getter fails with NB_ERR_FORMAT naming the entry when one is missing or holds other than the
 * expected count of numbers. */
nb_status nbi_meta_set_group_values(nb_metadata *m, const char *prefix, int n_groups, int n, const double *values,
                                    const char *fn);
nb_status nbi_meta_get_group_values(const nb_metadata *m, const char *prefix, int n_groups, int n, double *out,
                                    const char *fn);
/* Entries written all or none: a writer fills a draft (a copy of m; NULL with NB_ERR_NOMEM) and commits it, which
 * copies it back only when st is NB_OK, frees it and returns st. */
nb_metadata *nbi_meta_draft(const nb_metadata *m, const char *fn);
nb_status nbi_meta_commit(nb_metadata *m, nb_metadata *draft, nb_status st);
/* A digest of which parameter, by name, is in which group (order-independent, as states are matched by name):
 * "<prefix>.group_layout" in checkpoints with several groups. Groups of the same sizes holding other parameters
 * would otherwise restore silently, each with another's lr. The check passes when the entry is absent (written
 * before it existed) and is NB_ERR_FORMAT naming both digests when it differs. */
uint64_t nbi_optim_group_layout(const nb_optimizer *opt);
nb_status nbi_meta_set_layout(nb_metadata *m, const char *prefix, const nb_optimizer *opt, const char *fn);
nb_status nbi_meta_check_layout(const nb_metadata *m, const char *prefix, const nb_optimizer *opt, const char *fn);

#endif
