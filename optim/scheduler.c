/* Learning-rate schedules: PyTorch's StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR and LinearLR in their
 * chainable form, ReduceLROnPlateau's state machine and OneCycleLR's closed form (PyTorch 1.13), each driving every
 * parameter group of its optimizer. A group's base lr is its initial_lr, kept in the group as PyTorch keeps it, so
 * that every schedule of one optimizer shares it. */
#include "optim_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum kind { STEP, MULTISTEP, EXPONENTIAL, COSINE, LINEAR, PLATEAU, ONECYCLE } kind;
static const char *const type_names[] = {"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
                                         "ReduceLROnPlateau", "OneCycleLR"};

/* ReduceLROnPlateau ignores reductions smaller than this (PyTorch's default eps). */
#define PLATEAU_EPS 1e-8

struct nb_scheduler {
    kind kind;
    nb_optimizer *opt;
    int64_t epoch;
    double gamma;
    int64_t period;     /* step_size, t_max or warmup steps */
    double extra;       /* eta_min or start_factor */
    int n_milestones;
    int64_t *milestones;
    nb_plateau_options plateau;
    double best;
    int64_t bad_epochs, cooldown_left;
    /* OneCycleLR: its options, the phases' last steps (PyTorch's end_step), and each driven group's peak lr (the
     * groups that existed at creation; later ones are left alone). */
    nb_one_cycle_options cycle;
    int n_phases;
    double phase_end[3];
    int n_cycle_groups;
    double *max_lrs;
};

/* The closed forms: only for checkpoints written before schedules saved the lr (see nb_scheduler_restore). */
static double closed_form(const nb_scheduler *s, double base_lr, int64_t e)
{
    switch (s->kind) {
    case STEP: return base_lr * pow(s->gamma, (double)(e / s->period));
    case MULTISTEP: {
        int passed = 0; /* a repeated milestone counts twice, as in PyTorch */
        while (passed < s->n_milestones && s->milestones[passed] <= e) passed++;
        return base_lr * pow(s->gamma, passed);
    }
    case EXPONENTIAL: return base_lr * pow(s->gamma, (double)e);
    case COSINE: {
        /* eta_min + (base - eta_min) w, written as an interpolation so that w = 1 gives base_lr exactly */
        double w = (1 + cos(M_PI * (double)e / (double)s->period)) / 2;
        return base_lr * w + s->extra * (1 - w);
    }
    case LINEAR: {
        double f = s->extra + (1 - s->extra) * (double)(e < s->period ? e : s->period) / (double)s->period;
        return base_lr * f;
    }
    case PLATEAU:
    case ONECYCLE: break;
    }
    return base_lr;
}

/* How many milestones equal e (a repeated one counts twice, as in PyTorch). */
static int milestones_at(const nb_scheduler *s, int64_t e)
{
    int n = 0;
    for (int i = 0; i < s->n_milestones; i++) n += s->milestones[i] == e;
    return n;
}

/* The lr after epoch e from the optimizer's current lr, with PyTorch's chainable formulas (get_lr), so that
 * several schedules on one optimizer multiply as PyTorch's do (a warmup with a decay), with its arithmetic. */
static double chained(const nb_scheduler *s, double base_lr, double lr, int64_t e)
{
    switch (s->kind) {
    case STEP: return e > 0 && e % s->period == 0 ? lr * s->gamma : lr;
    case MULTISTEP: {
        int n = milestones_at(s, e);
        return n ? lr * pow(s->gamma, n) : lr;
    }
    case EXPONENTIAL: return e > 0 ? lr * s->gamma : lr;
    case COSINE: {
        double t_max = (double)s->period, eta_min = s->extra;
        if (e == 0) return lr;
        if ((e - 1 - s->period) % (2 * s->period) == 0) /* the trough, where the ratio below would be 0 / 0 */
            return lr + (base_lr - eta_min) * (1 - cos(M_PI / t_max)) / 2;
        return (1 + cos(M_PI * (double)e / t_max)) / (1 + cos(M_PI * (double)(e - 1) / t_max)) * (lr - eta_min) +
               eta_min;
    }
    case LINEAR: {
        double start = s->extra, rise = 1 - start;
        if (e == 0) return lr * start;
        if (e > s->period) return lr;
        return lr * (1 + rise / ((double)s->period * start + (double)(e - 1) * rise));
    }
    case PLATEAU:
    case ONECYCLE: break;
    }
    return lr;
}

/* Gives every group a base lr: its lr when first scheduled (PyTorch's initial_lr), shared by later schedules. A
 * group added after its optimizer's schedules were made gets it at their next step. */
static void adopt_groups(nb_optimizer *opt)
{
    for (int g = 0; g < opt->n_groups; g++)
        if (isnan(opt->groups[g].initial_lr)) opt->groups[g].initial_lr = opt->groups[g].lr;
}

/* A schedule on opt at epoch 0. */
static nb_scheduler *make(nb_optimizer *opt, kind k, const char *fn)
{
    if (!opt) return nbi_error(NB_ERR_NULL, "%s: optimizer is NULL", fn);
    nb_scheduler *s = calloc(1, sizeof *s);
    if (!s) return nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    nbi_count_system_alloc();
    adopt_groups(opt);
    s->kind = k;
    s->opt = opt;
    return s;
}

/* Every group's lr after epoch e, from its current lr by the chainable formula. */
static void apply_chained(nb_scheduler *s, int64_t e)
{
    adopt_groups(s->opt);
    for (int g = 0; g < s->opt->n_groups; g++) {
        nbi_optim_group *grp = &s->opt->groups[g];
        grp->lr = chained(s, grp->initial_lr, grp->lr, e);
    }
}

/* Like PyTorch's constructor, sets the epoch-0 lr (LinearLR starts low, a milestone 0 applies at once). */
static nb_scheduler *start(nb_scheduler *s)
{
    apply_chained(s, 0);
    return s;
}

static bool check_gamma(const char *fn, double gamma)
{
    if (isfinite(gamma) && gamma > 0) return true;
    nbi_error(NB_ERR_ARG, "%s: gamma must be a finite number > 0, got %g", fn, gamma);
    return false;
}

nb_scheduler *nb_step_lr_new(nb_optimizer *opt, int64_t step_size, double gamma)
{
    const char *fn = "nb_step_lr_new";
    if (step_size <= 0) return nbi_error(NB_ERR_ARG, "%s: step_size must be > 0, got %lld", fn, (long long)step_size);
    if (!check_gamma(fn, gamma)) return NULL;
    nb_scheduler *s = make(opt, STEP, fn);
    if (!s) return NULL;
    s->period = step_size;
    s->gamma = gamma;
    return start(s);
}

nb_scheduler *nb_multistep_lr_new(nb_optimizer *opt, int n, const int64_t *milestones, double gamma)
{
    const char *fn = "nb_multistep_lr_new";
    if (n < 0) return nbi_error(NB_ERR_ARG, "%s: n must be >= 0, got %d", fn, n);
    if (n > 0 && !milestones) return nbi_error(NB_ERR_NULL, "%s: milestones is NULL", fn);
    for (int i = 0; i < n; i++) {
        if (milestones[i] < 0)
            return nbi_error(NB_ERR_ARG, "%s: milestones[%d] is %lld; milestones must be >= 0", fn, i,
                             (long long)milestones[i]);
        if (i > 0 && milestones[i] < milestones[i - 1])
            return nbi_error(NB_ERR_ARG, "%s: milestones must be increasing, but milestones[%d] = %lld < %lld", fn,
                             i, (long long)milestones[i], (long long)milestones[i - 1]);
    }
    if (!check_gamma(fn, gamma)) return NULL;
    int64_t *copy = malloc((size_t)(n > 0 ? n : 1) * sizeof *copy);
    if (!copy) return nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    nbi_count_system_alloc();
    nb_scheduler *s = make(opt, MULTISTEP, fn);
    if (!s) {
        free(copy);
        return NULL;
    }
    if (n > 0) memcpy(copy, milestones, (size_t)n * sizeof *copy);
    s->milestones = copy;
    s->n_milestones = n;
    s->gamma = gamma;
    return start(s);
}

nb_scheduler *nb_exponential_lr_new(nb_optimizer *opt, double gamma)
{
    const char *fn = "nb_exponential_lr_new";
    if (!check_gamma(fn, gamma)) return NULL;
    nb_scheduler *s = make(opt, EXPONENTIAL, fn);
    if (!s) return NULL;
    s->gamma = gamma;
    return start(s);
}

nb_scheduler *nb_cosine_annealing_lr_new(nb_optimizer *opt, int64_t t_max, double eta_min)
{
    const char *fn = "nb_cosine_annealing_lr_new";
    if (t_max <= 0) return nbi_error(NB_ERR_ARG, "%s: t_max must be > 0, got %lld", fn, (long long)t_max);
    if (!nbi_optim_check_nonneg(fn, "eta_min", eta_min)) return NULL;
    nb_scheduler *s = make(opt, COSINE, fn);
    if (!s) return NULL;
    s->period = t_max;
    s->extra = eta_min;
    return start(s);
}

nb_scheduler *nb_linear_warmup_new(nb_optimizer *opt, int64_t warmup_steps, double start_factor)
{
    const char *fn = "nb_linear_warmup_new";
    if (warmup_steps <= 0)
        return nbi_error(NB_ERR_ARG, "%s: warmup_steps must be > 0, got %lld", fn, (long long)warmup_steps);
    if (!(start_factor > 0 && start_factor <= 1))
        return nbi_error(NB_ERR_ARG, "%s: start_factor must be in (0, 1], got %g", fn, start_factor);
    nb_scheduler *s = make(opt, LINEAR, fn);
    if (!s) return NULL;
    s->period = warmup_steps;
    s->extra = start_factor;
    return start(s);
}

nb_plateau_options nb_plateau_defaults(void)
{
    return (nb_plateau_options){.maximize = false, .factor = 0.1, .threshold = 1e-4, .min_lr = 0, .patience = 10,
                                .cooldown = 0, .absolute_threshold = false};
}

nb_scheduler *nb_reduce_on_plateau_new(nb_optimizer *opt, nb_plateau_options o)
{
    const char *fn = "nb_reduce_on_plateau_new";
    if (!(o.factor >= 0 && o.factor < 1))
        return nbi_error(NB_ERR_ARG, "%s: factor must be in [0, 1), got %g", fn, o.factor);
    if (!nbi_optim_check_nonneg(fn, "threshold", o.threshold) || !nbi_optim_check_nonneg(fn, "min_lr", o.min_lr))
        return NULL;
    if (o.patience < 0) return nbi_error(NB_ERR_ARG, "%s: patience must be >= 0, got %lld", fn, (long long)o.patience);
    if (o.cooldown < 0) return nbi_error(NB_ERR_ARG, "%s: cooldown must be >= 0, got %lld", fn, (long long)o.cooldown);
    nb_scheduler *s = make(opt, PLATEAU, fn);
    if (!s) return NULL;
    s->plateau = o;
    s->best = o.maximize ? -INFINITY : INFINITY;
    return start(s);
}

/* PyTorch's relative or absolute threshold; a NaN metric is never better. */
static bool improves(const nb_scheduler *s, double metric)
{
    const nb_plateau_options *o = &s->plateau;
    if (o->absolute_threshold) return o->maximize ? metric > s->best + o->threshold : metric < s->best - o->threshold;
    return o->maximize ? metric > s->best * (1 + o->threshold) : metric < s->best * (1 - o->threshold);
}

static void plateau_step(nb_scheduler *s, double metric)
{
    const nb_plateau_options *o = &s->plateau;
    s->epoch++;
    if (improves(s, metric)) {
        s->best = metric;
        s->bad_epochs = 0;
    } else {
        s->bad_epochs++;
    }
    if (s->cooldown_left > 0) {
        s->cooldown_left--;
        s->bad_epochs = 0;
    }
    if (s->bad_epochs > o->patience) {
        for (int g = 0; g < s->opt->n_groups; g++) {
            nbi_optim_group *grp = &s->opt->groups[g];
            double old_lr = grp->lr, new_lr = fmax(old_lr * o->factor, o->min_lr);
            if (old_lr - new_lr > PLATEAU_EPS) grp->lr = new_lr;
        }
        s->cooldown_left = o->cooldown;
        s->bad_epochs = 0;
    }
}

/* ------------------------------------------------------------------------------------------------
 * OneCycleLR
 * ---------------------------------------------------------------------------------------------- */

nb_one_cycle_options nb_one_cycle_defaults(void)
{
    return (nb_one_cycle_options){.pct_start = 0.3, .anneal_linear = false, .div_factor = 25,
                                  .final_div_factor = 1e4, .three_phase = false, .cycle_momentum = true,
                                  .base_momentum = 0.85, .max_momentum = 0.95};
}

/* PyTorch's _annealing_cos and _annealing_linear, with its arithmetic. */
static double anneal(const nb_scheduler *s, double from, double to, double pct)
{
    if (s->cycle.anneal_linear) return (to - from) * pct + from;
    return to + (from - to) / 2.0 * (cos(M_PI * pct) + 1);
}

/* The momentum of group grp: SGD's or RMSprop's momentum, or Adam's beta1. */
static double *momentum_of(nb_optimizer *opt, nbi_optim_group *grp)
{
    if (opt->layout == nbi_sgd_layout) return &grp->options.sgd.momentum;
    if (opt->layout == nbi_rmsprop_layout) return &grp->options.rmsprop.momentum;
    if (opt->layout == nbi_adam_layout) return &grp->options.adam.beta1;
    return NULL;
}

/* Sets the lr (and momentum) of every group the schedule drives to their values at step e (PyTorch's get_lr):
 * each phase goes from one of initial, max and min lr to another, and the momentum the opposite way. */
static void one_cycle_apply(nb_scheduler *s, int64_t e)
{
    /* Per phase: start and end lr as 0 initial, 1 max, 2 min; start and end momentum as 0 base, 1 max. */
    static const int two[2][4] = {{0, 1, 1, 0}, {1, 2, 0, 1}};
    static const int three[3][4] = {{0, 1, 1, 0}, {1, 0, 0, 1}, {0, 2, 1, 1}};
    const nb_one_cycle_options *o = &s->cycle;
    const double step = (double)e;
    int phase = 0;
    double start = 0;
    while (!(step <= s->phase_end[phase] || phase == s->n_phases - 1)) start = s->phase_end[phase++];
    double pct = (step - start) / (s->phase_end[phase] - start);
    const int *ends = s->cycle.three_phase ? three[phase] : two[phase];
    for (int g = 0; g < s->n_cycle_groups && g < s->opt->n_groups; g++) {
        nbi_optim_group *grp = &s->opt->groups[g];
        double initial = s->max_lrs[g] / o->div_factor;
        double lrs[3] = {initial, s->max_lrs[g], initial / o->final_div_factor};
        grp->lr = anneal(s, lrs[ends[0]], lrs[ends[1]], pct);
        if (o->cycle_momentum) {
            double m[2] = {o->base_momentum, o->max_momentum};
            *momentum_of(s->opt, grp) = anneal(s, m[ends[2]], m[ends[3]], pct);
        }
    }
}

nb_scheduler *nb_one_cycle_lr_new(nb_optimizer *opt, int n_max_lr, const double *max_lr, int64_t total_steps,
                                  nb_one_cycle_options o)
{
    const char *fn = "nb_one_cycle_lr_new";
    if (!opt) return nbi_error(NB_ERR_NULL, "%s: optimizer is NULL", fn);
    if (!max_lr) return nbi_error(NB_ERR_NULL, "%s: max_lr is NULL", fn);
    if (n_max_lr != 1 && n_max_lr != opt->n_groups)
        return nbi_error(NB_ERR_ARG, "%s: expected 1 or %d values for max_lr (one per parameter group), got %d", fn,
                         opt->n_groups, n_max_lr);
    for (int i = 0; i < n_max_lr; i++)
        if (!nbi_optim_check_nonneg(fn, "max_lr", max_lr[i])) return NULL;
    if (total_steps <= 0)
        return nbi_error(NB_ERR_ARG, "%s: total_steps must be > 0, got %lld", fn, (long long)total_steps);
    if (!(o.pct_start >= 0 && o.pct_start <= 1))
        return nbi_error(NB_ERR_ARG, "%s: pct_start must be in [0, 1], got %g", fn, o.pct_start);
    if (!(isfinite(o.div_factor) && o.div_factor > 0) || !(isfinite(o.final_div_factor) && o.final_div_factor > 0))
        return nbi_error(NB_ERR_ARG, "%s: div_factor and final_div_factor must be finite and > 0, got %g and %g", fn,
                         o.div_factor, o.final_div_factor);
    /* PyTorch's end steps, with its arithmetic. */
    double t = (double)total_steps, ends[3];
    int n_phases = o.three_phase ? 3 : 2;
    ends[0] = o.pct_start * t - 1;
    if (o.three_phase) ends[1] = 2 * o.pct_start * t - 2;
    ends[n_phases - 1] = t - 1;
    for (int i = 0; i < n_phases; i++)
        if (ends[i] == (i ? ends[i - 1] : 0))
            return nbi_error(NB_ERR_ARG, "%s: pct_start %g with total_steps %lld makes phase %d of the %s-phase "
                             "schedule empty (PyTorch divides by zero there)", fn, o.pct_start,
                             (long long)total_steps, i + 1, o.three_phase ? "three" : "two");
    if (o.cycle_momentum) {
        if (opt->layout != nbi_sgd_layout && opt->layout != nbi_rmsprop_layout && opt->layout != nbi_adam_layout)
            return nbi_error(NB_ERR_ARG, "%s: cycle_momentum needs an optimizer with momentum or betas; %s has "
                             "neither (turn cycle_momentum off)", fn, opt->type);
        bool adam = opt->layout == nbi_adam_layout;
        const double m[2] = {o.base_momentum, o.max_momentum};
        const char *names[2] = {"base_momentum", "max_momentum"};
        for (int i = 0; i < 2; i++)
            if (!(isfinite(m[i]) && m[i] > 0 && (!adam || m[i] < 1)))
                return nbi_error(NB_ERR_ARG, "%s: %s must be %s, got %g", fn, names[i],
                                 adam ? "in (0, 1) (it becomes beta1)" : "finite and > 0", m[i]);
        /* A group made without momentum has no momentum buffer, which PyTorch would start mid-run. */
        for (int g = 0; g < opt->n_groups && !adam; g++)
            if (*momentum_of(opt, &opt->groups[g]) == 0)
                return nbi_error(NB_ERR_ARG, "%s: parameter group %d of %s was made with momentum 0, so it has no "
                                 "momentum to cycle; give it momentum > 0 or turn cycle_momentum off", fn, g,
                                 opt->type);
    }
    double *max_lrs = malloc((size_t)opt->n_groups * sizeof *max_lrs);
    if (!max_lrs) return nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    nbi_count_system_alloc();
    nb_scheduler *s = make(opt, ONECYCLE, fn);
    if (!s) {
        free(max_lrs);
        return NULL;
    }
    for (int g = 0; g < opt->n_groups; g++) {
        max_lrs[g] = max_lr[n_max_lr == 1 ? 0 : g];
        opt->groups[g].initial_lr = max_lrs[g] / o.div_factor; /* as PyTorch sets it */
    }
    s->cycle = o;
    s->n_phases = n_phases;
    memcpy(s->phase_end, ends, sizeof ends);
    s->period = total_steps;
    s->n_cycle_groups = opt->n_groups;
    s->max_lrs = max_lrs;
    one_cycle_apply(s, 0);
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Stepping, state
 * ---------------------------------------------------------------------------------------------- */

nb_status nb_scheduler_step(nb_scheduler *s)
{
    const char *fn = "nb_scheduler_step";
    if (!s) return nbi_fail(NB_ERR_NULL, "%s: scheduler is NULL", fn);
    if (s->kind == PLATEAU)
        return nbi_fail(NB_ERR_STATE, "%s: ReduceLROnPlateau needs the metric: use nb_scheduler_step_metric", fn);
    if (s->kind == ONECYCLE) {
        /* PyTorch allows total_steps steps after the constructor's, and counts the constructor's as one. */
        if (s->epoch + 1 > s->period)
            return nbi_fail(NB_ERR_STATE, "%s: OneCycleLR tried to step %lld times; the specified number of total "
                            "steps is %lld", fn, (long long)s->epoch + 2, (long long)s->period);
        s->epoch++;
        one_cycle_apply(s, s->epoch);
        return NB_OK;
    }
    s->epoch++;
    apply_chained(s, s->epoch);
    return NB_OK;
}

nb_status nb_scheduler_step_metric(nb_scheduler *s, double metric)
{
    if (!s) return nbi_fail(NB_ERR_NULL, "nb_scheduler_step_metric: scheduler is NULL");
    if (s->kind != PLATEAU) return nb_scheduler_step(s);
    plateau_step(s, metric);
    return NB_OK;
}

int64_t nb_scheduler_epoch(const nb_scheduler *s)
{
    if (!s) {
        nbi_error(NB_ERR_NULL, "nb_scheduler_epoch: scheduler is NULL");
        return -1;
    }
    return s->epoch;
}

/* A group's base lr for the checkpoint: a group added since the last step has none yet, and gets its lr. */
static double base_of(const nbi_optim_group *grp) { return isnan(grp->initial_lr) ? grp->lr : grp->initial_lr; }

static nb_status write_metadata(const nb_scheduler *s, const char *prefix, nb_metadata *metadata, const char *fn)
{
    const nb_optimizer *opt = s->opt;
    nb_status st = nbi_meta_set_str(metadata, prefix, "scheduler", type_names[s->kind], fn);
    if (!st) st = nbi_meta_set_int(metadata, prefix, "epoch", s->epoch, fn);
    if (!st) st = nbi_meta_set_double(metadata, prefix, "base_lr", base_of(&opt->groups[0]), fn);
    if (!st) st = nbi_meta_set_double(metadata, prefix, "lr", opt->groups[0].lr, fn);
    if (!st && opt->n_groups > 1) st = nbi_meta_set_int(metadata, prefix, "param_groups", opt->n_groups, fn);
    if (!st && opt->n_groups > 1) st = nbi_meta_set_layout(metadata, prefix, opt, fn);
    if (!st && opt->n_groups > 1) {
        double *values = malloc(2 * (size_t)opt->n_groups * sizeof *values);
        if (!values) return nbi_fail(NB_ERR_NOMEM, "%s: out of memory writing %d parameter groups", fn, opt->n_groups);
        for (int g = 0; g < opt->n_groups; g++) {
            values[2 * g] = base_of(&opt->groups[g]);
            values[2 * g + 1] = opt->groups[g].lr;
        }
        st = nbi_meta_set_group_values(metadata, prefix, opt->n_groups, 2, values, fn);
        free(values);
    }
    if (!st && s->kind == PLATEAU) {
        st = nbi_meta_set_double(metadata, prefix, "best", s->best, fn);
        if (!st) st = nbi_meta_set_int(metadata, prefix, "num_bad_epochs", s->bad_epochs, fn);
        if (!st) st = nbi_meta_set_int(metadata, prefix, "cooldown_counter", s->cooldown_left, fn);
    }
    if (!st && s->kind == ONECYCLE) st = nbi_meta_set_int(metadata, prefix, "total_steps", s->period, fn);
    return st;
}

nb_status nb_scheduler_state(const nb_scheduler *s, const char *prefix, nb_metadata *metadata)
{
    const char *fn = "nb_scheduler_state";
    if (!s || !metadata) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !s ? "scheduler" : "metadata");
    nb_metadata *draft = nbi_meta_draft(metadata, fn); /* all entries or none */
    if (!draft) return nb_last_status();
    return nbi_meta_commit(metadata, draft, write_metadata(s, prefix, draft, fn));
}

/* Every group's base lr and lr (values[2 g], values[2 g + 1]) from metadata with several groups: the packed
 * "groups.<g>" entries, or the entries of one value each that nabla wrote first ("group<g>.base_lr", ".lr");
 * checked. */
static nb_status read_groups(const nb_metadata *metadata, const char *prefix, int n_groups, double *values,
                             const char *fn)
{
    nb_status st = NB_OK;
    if (nbi_meta_has(metadata, prefix, "groups.0")) {
        st = nbi_meta_get_group_values(metadata, prefix, n_groups, 2, values, fn);
    } else {
        for (int g = 0; g < n_groups && !st; g++) {
            char field[48];
            nbi_meta_group_field(field, sizeof field, g, "base_lr");
            st = nbi_meta_get_double(metadata, prefix, field, &values[2 * g], fn);
            nbi_meta_group_field(field, sizeof field, g, "lr");
            if (!st) st = nbi_meta_get_double(metadata, prefix, field, &values[2 * g + 1], fn);
        }
    }
    for (int g = 0; g < n_groups && !st; g++) {
        double base_lr = values[2 * g], lr = values[2 * g + 1];
        if (!(isfinite(base_lr) && base_lr >= 0 && isfinite(lr)))
            st = nbi_fail(NB_ERR_FORMAT, "%s: metadata holds base_lr %g and lr %g for parameter group %d; expected "
                          "a finite base_lr >= 0 and a finite lr", fn, base_lr, lr, g);
    }
    return st;
}

nb_status nb_scheduler_restore(nb_scheduler *s, const nb_metadata *metadata, const char *prefix)
{
    const char *fn = "nb_scheduler_restore";
    if (!s || !metadata) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !s ? "scheduler" : "metadata");
    nb_optimizer *opt = s->opt;
    int64_t epoch, bad = 0, cooldown = 0, n_groups, total = s->period;
    double base_lr, best = s->best, lr = NAN;
    nb_status st = nbi_meta_expect_str(metadata, prefix, "scheduler", type_names[s->kind], fn);
    if (!st) st = nbi_meta_get_int(metadata, prefix, "epoch", &epoch, fn);
    if (!st) st = nbi_meta_get_double(metadata, prefix, "base_lr", &base_lr, fn);
    if (!st) st = nbi_meta_get_groups(metadata, prefix, &n_groups, fn);
    if (!st && n_groups != opt->n_groups)
        st = nbi_fail(NB_ERR_FORMAT, "%s: the checkpoint's schedule drove %lld parameter group%s, the optimizer has "
                      "%d: its group structure differs", fn, (long long)n_groups, n_groups == 1 ? "" : "s",
                      opt->n_groups);
    if (!st && n_groups > 1) st = nbi_meta_check_layout(metadata, prefix, opt, fn);
    if (!st && s->kind == PLATEAU) {
        st = nbi_meta_get_double(metadata, prefix, "best", &best, fn);
        if (!st) st = nbi_meta_get_int(metadata, prefix, "num_bad_epochs", &bad, fn);
        if (!st) st = nbi_meta_get_int(metadata, prefix, "cooldown_counter", &cooldown, fn);
    }
    if (!st && s->kind == ONECYCLE) {
        st = nbi_meta_get_int(metadata, prefix, "total_steps", &total, fn);
        if (!st && total != s->period)
            st = nbi_fail(NB_ERR_FORMAT, "%s: the checkpoint's OneCycleLR has total_steps %lld, this one %lld", fn,
                          (long long)total, (long long)s->period);
        if (!st && epoch > s->period)
            st = nbi_fail(NB_ERR_FORMAT, "%s: metadata holds epoch %lld, beyond total_steps %lld", fn,
                          (long long)epoch, (long long)s->period);
    }
    /* The lr is optional: checkpoints written before schedules chained lack it. */
    if (!st && nbi_meta_has(metadata, prefix, "lr")) st = nbi_meta_get_double(metadata, prefix, "lr", &lr, fn);
    double *groups = NULL;
    if (!st && opt->n_groups > 1) {
        groups = malloc(2 * (size_t)opt->n_groups * sizeof *groups);
        st = groups ? read_groups(metadata, prefix, opt->n_groups, groups, fn)
                    : nbi_fail(NB_ERR_NOMEM, "%s: out of memory reading %d parameter groups", fn, opt->n_groups);
    }
    if (!st && !isnan(lr) && !isfinite(lr)) /* negative: see nb_optimizer_restore */
        st = nbi_fail(NB_ERR_FORMAT, "%s: metadata holds lr %g; expected a finite lr", fn, lr);
    if (!st && (epoch < 0 || bad < 0 || cooldown < 0 || !isfinite(base_lr) || base_lr < 0))
        st = nbi_fail(NB_ERR_FORMAT, "%s: metadata holds epoch %lld, base_lr %g, num_bad_epochs %lld, "
                      "cooldown_counter %lld; none may be negative", fn, (long long)epoch, base_lr, (long long)bad,
                      (long long)cooldown);
    if (st) {
        free(groups);
        return st;
    }
    s->epoch = epoch;
    s->best = best;
    s->bad_epochs = bad;
    s->cooldown_left = cooldown;
    /* A schedule made after its optimizer was restored may have changed the restored lr (LinearLR does): the
     * saved lr, the optimizer's when the state was taken, puts it back bit for bit whatever the order. Without it
     * (an older checkpoint, one group), a lone closed-form schedule's lr is its closed form at the restored epoch.
     * OneCycleLR's momentum is a function of the epoch, so it is recomputed (the lr then set from the saved). */
    if (s->kind == ONECYCLE) one_cycle_apply(s, epoch);
    nbi_optim_group *first = &opt->groups[0];
    first->initial_lr = base_lr;
    if (!isnan(lr)) first->lr = lr;
    else if (s->kind != PLATEAU && s->kind != ONECYCLE) first->lr = closed_form(s, base_lr, epoch);
    for (int g = 0; g < opt->n_groups && groups; g++) {
        opt->groups[g].initial_lr = groups[2 * g];
        opt->groups[g].lr = groups[2 * g + 1];
    }
    free(groups);
    return NB_OK;
}

void nb_scheduler_free(nb_scheduler *s)
{
    if (!s) return;
    free(s->milestones);
    free(s->max_lrs);
    free(s);
}
