/* nabla optim: optimizers, learning-rate schedules, gradient clipping, early stopping.
 *
 * Optimizers update parameters in place, in no-grad mode, with nabla's tensor ops; update rules follow PyTorch's
 * documentation exactly (same defaults, same order of operations). An optimizer works over any nb_param_list:
 * buffers and frozen parameters (requires_grad off) and parameters without a gradient are skipped.
 * The optimizer owns its state tensors (momentum buffers, moments) and frees them in nb_optimizer_free; it does
 * not own the list, which must outlive it.
 */
#ifndef NABLA_OPTIM_H
#define NABLA_OPTIM_H

#include "nb_nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_optimizer nb_optimizer;

/* SGD: g = grad + wd p; with momentum: b = mu b + (1 - dampening) g (b = g at the first step),
 * g = nesterov ? g + mu b : b; p -= lr g.
 * maximize: grad = -grad before anything else (weight decay, momentum), to ascend the objective. */
typedef struct nb_sgd_options {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
    bool maximize;
} nb_sgd_options;
/* Adam / AdamW: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; vmax = max(vmax, v) with amsgrad;
 * p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps). Adam adds wd p to g; AdamW first does
 * p *= 1 - lr wd (decoupled).
 * maximize: grad = -grad before anything else (weight decay, moments), to ascend the objective. */
typedef struct nb_adam_options {
    double lr, beta1, beta2, eps, weight_decay;
    bool amsgrad;
    bool maximize;
} nb_adam_options;
/* RMSprop: v = alpha v + (1 - alpha) g^2; centered: ga = alpha ga + (1 - alpha) g, v~ = v - ga^2;
 * with momentum: b = mu b + g / (sqrt(v~) + eps), p -= lr b; else p -= lr g / (sqrt(v~) + eps).
 * maximize: grad = -grad before anything else (weight decay, averages), to ascend the objective. */
typedef struct nb_rmsprop_options {
    double lr, alpha, eps, weight_decay, momentum;
    bool centered;
    bool maximize;
} nb_rmsprop_options;
/* Adagrad: clr = lr / (1 + (t - 1) lr_decay); s += g^2; p -= clr g / (sqrt(s) + eps).
 * maximize: grad = -grad before anything else (weight decay, sum), to ascend the objective. */
typedef struct nb_adagrad_options {
    double lr, lr_decay, weight_decay, initial_accumulator_value, eps;
    bool maximize;
} nb_adagrad_options;

/* PyTorch's defaults (SGD's lr has none in PyTorch; 0.01 here); maximize false for all. */
NB_API nb_sgd_options nb_sgd_defaults(void);         /* lr 0.01, no momentum, no decay */
NB_API nb_adam_options nb_adam_defaults(void);       /* lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0 */
NB_API nb_adam_options nb_adamw_defaults(void);      /* same with wd 0.01 */
NB_API nb_rmsprop_options nb_rmsprop_defaults(void); /* lr 0.01, alpha 0.99, eps 1e-8 */
NB_API nb_adagrad_options nb_adagrad_defaults(void); /* lr 0.01, eps 1e-10 */

/* Constructors; NULL with an error for invalid options (negative lr, betas outside [0, 1), nesterov without
 * momentum, ...) naming the option and value. */
NB_API nb_optimizer *nb_sgd_new(const nb_param_list *params, nb_sgd_options options);
NB_API nb_optimizer *nb_adam_new(const nb_param_list *params, nb_adam_options options);
NB_API nb_optimizer *nb_adamw_new(const nb_param_list *params, nb_adam_options options);
NB_API nb_optimizer *nb_rmsprop_new(const nb_param_list *params, nb_rmsprop_options options);
NB_API nb_optimizer *nb_adagrad_new(const nb_param_list *params, nb_adagrad_options options);

/* Parameter groups, as PyTorch's add_param_group: the list's parameters (buffers and integer entries left out, as
 * in the constructors) form a new group with its own options and lr, updated by step() with them. The group made
 * by the constructor is group 0; each call appends the next. The list must outlive the optimizer. NB_ERR_ARG
 * (nothing changes) for: an optimizer of another kind (nb_adam_add_param_group serves Adam and AdamW), options
 * the constructor would refuse, a NULL list (NB_ERR_NULL) or one without f32/f64 parameters, a tensor listed
 * twice, or a parameter some group already holds: the same tensor, or another tensor of the same name (its
 * checkpoint state would be ambiguous). Which state tensors a group's parameters carry follows its own options
 * (a momentum buffer only with momentum, ...). An Adagrad group's sums start at its own initial_accumulator_value,
 * where PyTorch 1.13 starts every group's at the constructor's (it fills the state once, in the constructor). */
NB_API nb_status nb_sgd_add_param_group(nb_optimizer *opt, const nb_param_list *params, nb_sgd_options options);
NB_API nb_status nb_adam_add_param_group(nb_optimizer *opt, const nb_param_list *params, nb_adam_options options);
NB_API nb_status nb_rmsprop_add_param_group(nb_optimizer *opt, const nb_param_list *params,
                                            nb_rmsprop_options options);
NB_API nb_status nb_adagrad_add_param_group(nb_optimizer *opt, const nb_param_list *params,
                                            nb_adagrad_options options);
/* Number of parameter groups (1 + the groups added); -1 for a NULL optimizer. */
NB_API int nb_optimizer_num_param_groups(const nb_optimizer *opt);
/* Group i's current lr; NAN with NB_ERR_ARG for i outside [0, nb_optimizer_num_param_groups). */
NB_API double nb_optimizer_get_group_lr(const nb_optimizer *opt, int group);
/* Sets group i's lr (finite, >= 0); NB_ERR_ARG for a bad index or lr, which change nothing. */
NB_API nb_status nb_optimizer_set_group_lr(nb_optimizer *opt, int group, double lr);
/* Group i's momentum as OneCycleLR cycles it: SGD's and RMSprop's momentum, Adam's and AdamW's beta1. NAN with
 * NB_ERR_ARG for a bad index or Adagrad. */
NB_API double nb_optimizer_get_group_momentum(const nb_optimizer *opt, int group);

/* One update of every parameter that has a gradient, each with its group's options and lr. */
NB_API nb_status nb_optimizer_step(nb_optimizer *opt);
/* Drops the gradients of all the optimizer's parameters. */
NB_API void nb_optimizer_zero_grad(nb_optimizer *opt);
/* Group 0's lr (the only one without added groups). */
NB_API double nb_optimizer_get_lr(const nb_optimizer *opt);
/* Sets every group's lr to lr (finite, >= 0; else NB_ERR_ARG and no change); nb_optimizer_set_group_lr sets one. */
NB_API void nb_optimizer_set_lr(nb_optimizer *opt, double lr);
/* Number of step calls so far (each parameter also counts its own updates, as PyTorch does: its "step" state). */
NB_API int64_t nb_optimizer_steps(const nb_optimizer *opt);
/* Appends the optimizer's state tensors to out, named "<param name>.<state>" with the given prefix
 * (e.g. "optim.fc1.weight.exp_avg"; no prefix and no dot for "" or NULL), and stores the optimizer type, step count
 * and lr in metadata (may be NULL) as "<prefix>.optimizer", "<prefix>.steps", "<prefix>.lr", so that
 * nb_save_safetensors can write them and nb_load_safetensors + nb_optimizer_restore can resume exactly. With
 * several parameter groups "<prefix>.lr" is group 0's, and "<prefix>.param_groups" (the count),
 * "<prefix>.group_layout" (a digest of which parameter is in which group) and "<prefix>.groups.<g>" entries follow,
 * each holding the size, lr and initial lr ("nan" until a schedule drove it) of groups g, g+1, g+2: 5 + G/3
 * entries for G groups. One group writes no more than before groups existed. State names do not depend on groups.
 * All or nothing: on any error (a full nb_metadata, a name already in out, a freed parameter) neither out nor
 * metadata changes.
 * States (PyTorch's names): every optimizer "step" (0-d i64, this parameter's update count; PyTorch keeps a float
 * tensor, and none for SGD); SGD "momentum_buffer" (with momentum); Adam/AdamW "exp_avg", "exp_avg_sq",
 * "max_exp_avg_sq" (amsgrad); RMSprop "square_avg", "momentum_buffer" (momentum > 0), "grad_avg" (centered);
 * Adagrad "sum". They are added as buffers, are owned by the optimizer (their handles die in nb_optimizer_free;
 * freeing one makes the next step fail with NB_ERR_FREED) and cover every parameter, frozen ones included.
 * State tensors are created on first use by step(); calling this before the first step creates them with their
 * initial values (zeros; Adagrad's sum holds initial_accumulator_value). */
NB_API nb_status nb_optimizer_state(nb_optimizer *opt, const char *prefix, nb_param_list *out, nb_metadata *metadata);
/* Restores the step count and every group's lr (and initial lr) from metadata written by nb_optimizer_state (the
 * state tensors themselves are loaded in place through the list nb_optimizer_state filled). NB_ERR_FORMAT, naming
 * the key, for a missing or malformed entry (an lr that is not finite: a negative one is accepted, as OneCycleLR's
 * linear anneal ends below zero after its last step, as PyTorch's does), another optimizer type, or another group
 * structure (number of groups, of parameters in one, or groups of the same sizes holding other parameters, by
 * name; a checkpoint without group entries has one group); nothing is changed then. The "group<g>.params", ".lr", ".initial_lr" entries of the
 * first version with groups are read too. Options are not saved: momentum or beta1 cycled by OneCycleLR come back
 * with nb_scheduler_restore. */
NB_API nb_status nb_optimizer_restore(nb_optimizer *opt, const nb_metadata *metadata, const char *prefix);
NB_API void nb_optimizer_free(nb_optimizer *opt);

/* ------------------------------------------------------------------------------------------------
 * Learning-rate schedules. Each adjusts its optimizer's lr when stepped (once per epoch, or per batch:
 * the unit is the caller's). The formulas below are the closed forms, for one schedule from base_lr, the lr the
 * optimizer had when its first schedule was created; a step applies PyTorch's chainable form of them to the
 * optimizer's current lr (lr gamma for ExponentialLR, ...), with PyTorch's arithmetic, so several schedules on
 * one optimizer compose as in PyTorch (a LinearLR warmup with a decay: the lr is the product of their factors)
 * and lr changes by ReduceLROnPlateau or nb_optimizer_set_lr carry on. Like PyTorch's constructors, creating
 * one sets the epoch-0 lr (LinearLR starts at lr start_factor). The optimizer must outlive the schedule.
 * Every schedule drives every parameter group, each from its own base_lr (the group's lr when first scheduled).
 * A group added after a schedule exists gets its base_lr from its lr at the schedule's next step, and from then
 * on the chainable factors of the following epochs apply to it (not the epoch-0 one, such as LinearLR's
 * start_factor); ReduceLROnPlateau reduces it like the others; OneCycleLR leaves it alone.
 * ---------------------------------------------------------------------------------------------- */
typedef struct nb_scheduler nb_scheduler;
/* lr = base_lr gamma^floor(epoch / step_size) */
NB_API nb_scheduler *nb_step_lr_new(nb_optimizer *opt, int64_t step_size, double gamma);
/* lr = base_lr gamma^(number of milestones <= epoch); milestones increasing */
NB_API nb_scheduler *nb_multistep_lr_new(nb_optimizer *opt, int n, const int64_t *milestones, double gamma);
/* lr = base_lr gamma^epoch */
NB_API nb_scheduler *nb_exponential_lr_new(nb_optimizer *opt, double gamma);
/* lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / t_max)) / 2 (PyTorch computes it recursively, as here) */
NB_API nb_scheduler *nb_cosine_annealing_lr_new(nb_optimizer *opt, int64_t t_max, double eta_min);
/* Linear warmup: lr = base_lr (start_factor + (1 - start_factor) min(epoch, warmup) / warmup) (PyTorch LinearLR
 * with end_factor 1). */
NB_API nb_scheduler *nb_linear_warmup_new(nb_optimizer *opt, int64_t warmup_steps, double start_factor);
/* ReduceLROnPlateau: when the metric has not improved for more than `patience` steps, lr = max(lr factor,
 * min_lr), then wait `cooldown` steps. Improving means (mode min) going below best (1 - threshold), or below
 * best - threshold with absolute_threshold (PyTorch's threshold_mode 'rel' and 'abs'; mode max: above best (1 +
 * threshold) or best + threshold). As in PyTorch, a reduction smaller than 1e-8 (its eps) is skipped, and a NaN
 * metric counts as no improvement. */
typedef struct nb_plateau_options {
    bool maximize;
    double factor, threshold, min_lr;
    int64_t patience, cooldown;
    bool absolute_threshold;
} nb_plateau_options;
/* min, 0.1, 1e-4 relative, 0, patience 10, cooldown 0 */
NB_API nb_plateau_options nb_plateau_defaults(void);
/* Reduces every group's lr, each to at least the one min_lr. */
NB_API nb_scheduler *nb_reduce_on_plateau_new(nb_optimizer *opt, nb_plateau_options options);

/* OneCycleLR (Smith's 1cycle policy), PyTorch's closed form: for each group, lr rises from initial = max_lr /
 * div_factor to max_lr over the first pct_start of total_steps, then falls to min = initial / final_div_factor
 * (three_phase: back to initial over as many steps, then to min), annealed by half a cosine or linearly. With
 * cycle_momentum the momentum (SGD's or RMSprop's momentum, Adam's and AdamW's beta1) moves the other way
 * between max_momentum and base_momentum. Step it once per batch: total_steps steps are allowed after creation
 * (as in PyTorch, the last of them already past the end of the cycle); one more is NB_ERR_STATE naming the
 * counts, and changes nothing. */
typedef struct nb_one_cycle_options {
    double pct_start;   /* share of the steps spent rising, in [0, 1] */
    bool anneal_linear; /* false: cosine (PyTorch's anneal_strategy 'cos') */
    double div_factor, final_div_factor;
    bool three_phase;
    bool cycle_momentum;
    double base_momentum, max_momentum; /* > 0 (and < 1 for Adam's beta1) */
} nb_one_cycle_options;
/* pct_start 0.3, cos, div_factor 25, final_div_factor 1e4, two phases, cycle_momentum with 0.85 and 0.95 */
NB_API nb_one_cycle_options nb_one_cycle_defaults(void);
/* max_lr holds n_max_lr peak lrs: 1 for all groups, or one per group. Sets each group's initial_lr (the base of
 * other schedules) to max_lr / div_factor, and the epoch-0 lr and momentum, as PyTorch's constructor. Errors
 * (NB_ERR_ARG): total_steps <= 0, pct_start outside [0, 1] or making a phase empty (PyTorch divides by zero
 * there), factors not finite and > 0, a max_lr not finite and >= 0; with cycle_momentum, an Adagrad optimizer
 * (no momentum, as PyTorch refuses) or an SGD / RMSprop group made with momentum 0 (it has no momentum buffer,
 * which PyTorch would start mid-run), or momenta out of range. Groups added later are not driven. */
NB_API nb_scheduler *nb_one_cycle_lr_new(nb_optimizer *opt, int n_max_lr, const double *max_lr, int64_t total_steps,
                                         nb_one_cycle_options options);

/* Advances one epoch and sets the optimizer's lr. NB_ERR_STATE for reduce-on-plateau (use _metric). */
NB_API nb_status nb_scheduler_step(nb_scheduler *s);
/* Advances reduce-on-plateau with this epoch's metric (other schedules ignore the metric). */
NB_API nb_status nb_scheduler_step_metric(nb_scheduler *s, double metric);
NB_API int64_t nb_scheduler_epoch(const nb_scheduler *s);
/* Saves / restores the schedule position (epoch, base_lr, the optimizer's lr, and for plateau the best metric and
 * counters) as metadata entries under prefix ("<prefix>.scheduler" names the kind, checked on restore). Restoring
 * also sets the optimizer's lr to the saved one, so the schedule may be created before or after
 * nb_optimizer_restore (creating a LinearLR changes the lr). A checkpoint without "<prefix>.lr" (written by
 * an older nabla) gets the closed form's lr at the restored epoch. With several parameter groups,
 * "<prefix>.param_groups", "<prefix>.group_layout" and "<prefix>.groups.<g>" entries holding the base lr and lr of
 * groups g to g+4 are added (6 + G/5 entries in all for G groups), and restoring into an optimizer with another
 * number of groups, or groups holding other parameters, is NB_ERR_FORMAT (nothing changes). OneCycleLR adds
 * "<prefix>.total_steps" (checked) and restores the momentum it cycles. Saving writes all entries or none (a full
 * nb_metadata is NB_ERR_ARG and left as it was). */
NB_API nb_status nb_scheduler_state(const nb_scheduler *s, const char *prefix, nb_metadata *metadata);
NB_API nb_status nb_scheduler_restore(nb_scheduler *s, const nb_metadata *metadata, const char *prefix);
NB_API void nb_scheduler_free(nb_scheduler *s);

/* ------------------------------------------------------------------------------------------------
 * Gradient clipping (in place, over the gradients of a list's parameters)
 * ---------------------------------------------------------------------------------------------- */
/* Scales all gradients by min(1, max_norm / (total_norm + 1e-6)), total_norm the norm_type-norm of all
 * gradients together (INFINITY for the max norm; any norm_type > 0). Every non-buffer entry holding a gradient
 * takes part, as PyTorch takes every parameter whose .grad is set. Returns total_norm (0 when no gradient), or NAN
 * on error; as in PyTorch, a NaN in a gradient gives a NaN total and NaN gradients without an error. */
NB_API double nb_clip_grad_norm(const nb_param_list *params, double max_norm, double norm_type);
/* The same, except that a total norm that is NaN or infinite is an error (NB_ERR_VALUE naming the norm; returns
 * NAN) and leaves every gradient unchanged, as PyTorch's error_if_nonfinite=True: for training loops that would
 * rather stop (or skip the step) than carry NaN weights on. */
NB_API double nb_clip_grad_norm_finite(const nb_param_list *params, double max_norm, double norm_type);
/* Clamps every gradient element (non-buffer entries) to [-clip, clip], clip >= 0. */
NB_API nb_status nb_clip_grad_value(const nb_param_list *params, double clip);

/* ------------------------------------------------------------------------------------------------
 * Early stopping: feed it the validation metric each epoch; it remembers the best weights.
 * ---------------------------------------------------------------------------------------------- */
typedef struct nb_early_stopping nb_early_stopping;
/* Stop after `patience` epochs without an improvement larger than min_delta (below best - min_delta when
 * minimizing). keep_best copies the list's tensors (parameters and buffers) at each new best. Epochs count the
 * update calls from 0. */
NB_API nb_early_stopping *nb_early_stopping_new(int64_t patience, double min_delta, bool maximize, bool keep_best);
/* Records this epoch's metric; returns true when training should stop (at once for a NaN metric). params may be
 * NULL without keep_best; with it, the list must keep its entries (names, order, shapes, dtypes) across calls. On
 * error (returns false) nothing is recorded and the kept weights stay those of the last best. */
NB_API bool nb_early_stopping_update(nb_early_stopping *es, double metric, const nb_param_list *params);
NB_API double nb_early_stopping_best(const nb_early_stopping *es);
NB_API int64_t nb_early_stopping_best_epoch(const nb_early_stopping *es);
/* Whether an update has returned true: the run should have stopped (also after nb_early_stopping_resume). */
NB_API bool nb_early_stopping_stopped(const nb_early_stopping *es);
/* Copies the best weights back into params, matched by name. NB_ERR_STATE when none were kept (keep_best off, or
 * no metric recorded yet). */
NB_API nb_status nb_early_stopping_restore(nb_early_stopping *es, const nb_param_list *params);
/* Checkpoint state, as for optimizers, so that a resumed run stops when the uninterrupted one would and keeps the
 * same best weights: metadata (may be NULL) "<prefix>.epoch", ".best_epoch", ".best", ".bad_epochs", ".stopped",
 * ".maximize" and ".keep_best", and with keep_best the kept copies appended to out as buffers named
 * "<prefix>.<entry name>" (owned by es, freed by nb_early_stopping_free: the list only lends them). Before
 * the first best there are no copies yet: they are made from params (needed then; otherwise ignored, and NULL is
 * fine without keep_best), holding its current values until a best replaces them, so that a fresh run's list has
 * the tensors a checkpoint loads into. prefix must not be empty with keep_best (the copies would take the entries'
 * own names). All or nothing: on error neither out nor metadata changes. */
NB_API nb_status nb_early_stopping_state(nb_early_stopping *es, const nb_param_list *params, const char *prefix,
                                         nb_param_list *out, nb_metadata *metadata);
/* Restores the counters and best metric from metadata written by nb_early_stopping_state; the kept copies were
 * loaded in place (into the tensors nb_early_stopping_state added) before this call. patience and min_delta are
 * this object's, not the checkpoint's. NB_ERR_FORMAT naming the key for a missing or inconsistent entry, or a
 * checkpoint of another direction (maximize) or keep_best (nothing changes); NB_ERR_STATE when the checkpoint has
 * best weights but this object has no copies to hold them (nb_early_stopping_state not called). */
NB_API nb_status nb_early_stopping_resume(nb_early_stopping *es, const nb_metadata *metadata, const char *prefix);
NB_API void nb_early_stopping_free(nb_early_stopping *es);

#ifdef __cplusplus
}
#endif
#endif
