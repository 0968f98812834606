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
    bool active; /* scratch for nb_optimizer_step: has a gradient and requires grad */
} nbi_optim_param;

/* One update of parameter p with gradient g. t counts this parameter's updates including this one (1 at its
 * first). Runs in no-grad mode inside a scope that ends after it, so temporaries need no freeing; writes go
 * through nb_copy_. A NULL from a failed op propagates into nb_copy_, which returns the error. */
typedef nb_status (*nbi_optim_update_fn)(const nb_optimizer *opt, nb_tensor *p, nb_tensor *g,
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

struct nb_optimizer {
    const char *type; /* PyTorch's class name, written to checkpoints: "SGD", "Adam", ... */
    double lr;        /* the current lr (schedulers change it); the options keep the initial one */
    double initial_lr; /* the lr when the first schedule was made (PyTorch's initial_lr); NAN before */
    int64_t steps;
    union {
        nb_sgd_options sgd;
        nb_adam_options adam;
        nb_rmsprop_options rmsprop;
        nb_adagrad_options adagrad;
    } options;
    nbi_optim_update_fn update;
    int n_state;
    const char *state_names[NBI_OPTIM_MAX_STATE]; /* PyTorch's state keys: "exp_avg", "momentum_buffer", ... */
    double state_init[NBI_OPTIM_MAX_STATE];       /* initial value (Adagrad's initial_accumulator_value) */
    int n_params;
    nbi_optim_param *params;
};

/* A new optimizer of the given type over the list's parameters: buffers and integer entries are left out (they
 * can never have a gradient), frozen ones are kept (they may be unfrozen later). Only "step" is declared; the
 * constructor adds its state with nbi_optim_add_state. Errors (naming fn): NULL or empty list, a freed tensor,
 * a tensor listed twice. */
nb_optimizer *nbi_optimizer_new(const nb_param_list *list, const char *type, double lr, nbi_optim_update_fn update,
                                const char *fn);
void nbi_optim_add_state(nb_optimizer *opt, const char *name, double initial);

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

#endif
