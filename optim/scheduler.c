/* Learning-rate schedules: PyTorch's StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR and LinearLR in their
 * chainable form, and ReduceLROnPlateau's state machine (PyTorch 1.13). */
#include "optim_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum kind { STEP, MULTISTEP, EXPONENTIAL, COSINE, LINEAR, PLATEAU } kind;
static const char *const type_names[] = {"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
                                         "ReduceLROnPlateau"};

/* ReduceLROnPlateau ignores reductions smaller than this (PyTorch's default eps). */
#define PLATEAU_EPS 1e-8

struct nb_scheduler {
    kind kind;
    nb_optimizer *opt;
    double base_lr;
    int64_t epoch;
    double gamma;
    int64_t period;     /* step_size, t_max or warmup steps */
    double extra;       /* eta_min or start_factor */
    int n_milestones;
    int64_t *milestones;
    nb_plateau_options plateau;
    double best;
    int64_t bad_epochs, cooldown_left;
};

/* The closed forms: only for checkpoints written before schedules saved the lr (see nb_scheduler_restore). */
static double closed_form(const nb_scheduler *s, int64_t e)
{
    switch (s->kind) {
    case STEP: return s->base_lr * pow(s->gamma, (double)(e / s->period));
    case MULTISTEP: {
        int passed = 0; /* a repeated milestone counts twice, as in PyTorch */
        while (passed < s->n_milestones && s->milestones[passed] <= e) passed++;
        return s->base_lr * pow(s->gamma, passed);
    }
    case EXPONENTIAL: return s->base_lr * pow(s->gamma, (double)e);
    case COSINE: {
        /* eta_min + (base - eta_min) w, written as an interpolation so that w = 1 gives base_lr exactly */
        double w = (1 + cos(M_PI * (double)e / (double)s->period)) / 2;
        return s->base_lr * w + s->extra * (1 - w);
    }
    case LINEAR: {
        double f = s->extra + (1 - s->extra) * (double)(e < s->period ? e : s->period) / (double)s->period;
        return s->base_lr * f;
    }
    case PLATEAU: break;
    }
    return s->base_lr;
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
static double chained(const nb_scheduler *s, double lr, int64_t e)
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
            return lr + (s->base_lr - eta_min) * (1 - cos(M_PI / t_max)) / 2;
        return (1 + cos(M_PI * (double)e / t_max)) / (1 + cos(M_PI * (double)(e - 1) / t_max)) * (lr - eta_min) +
               eta_min;
    }
    case LINEAR: {
        double start = s->extra, rise = 1 - start;
        if (e == 0) return lr * start;
        if (e > s->period) return lr;
        return lr * (1 + rise / ((double)s->period * start + (double)(e - 1) * rise));
    }
    case PLATEAU: break;
    }
    return lr;
}

/* A schedule on opt at epoch 0. base_lr is the optimizer's lr when its first schedule was made (PyTorch's
 * initial_lr), which later schedules share. */
static nb_scheduler *make(nb_optimizer *opt, kind k, const char *fn)
{
    if (!opt) return nbi_error(NB_ERR_NULL, "%s: optimizer is NULL", fn);
    nb_scheduler *s = calloc(1, sizeof *s);
    if (!s) return nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    nbi_count_system_alloc();
    if (isnan(opt->initial_lr)) opt->initial_lr = opt->lr;
    s->kind = k;
    s->opt = opt;
    s->base_lr = opt->initial_lr;
    return s;
}

/* Like PyTorch's constructor, sets the epoch-0 lr (LinearLR starts low, a milestone 0 applies at once). */
static nb_scheduler *start(nb_scheduler *s)
{
    s->opt->lr = chained(s, s->opt->lr, 0);
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
        double old_lr = s->opt->lr, new_lr = fmax(old_lr * o->factor, o->min_lr);
        if (old_lr - new_lr > PLATEAU_EPS) s->opt->lr = new_lr;
        s->cooldown_left = o->cooldown;
        s->bad_epochs = 0;
    }
}

nb_status nb_scheduler_step(nb_scheduler *s)
{
    if (!s) return nbi_fail(NB_ERR_NULL, "nb_scheduler_step: scheduler is NULL");
    if (s->kind == PLATEAU)
        return nbi_fail(NB_ERR_STATE, "nb_scheduler_step: ReduceLROnPlateau needs the metric: use "
                                      "nb_scheduler_step_metric");
    s->epoch++;
    s->opt->lr = chained(s, s->opt->lr, s->epoch);
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

nb_status nb_scheduler_state(const nb_scheduler *s, const char *prefix, nb_metadata *metadata)
{
    const char *fn = "nb_scheduler_state";
    if (!s || !metadata) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !s ? "scheduler" : "metadata");
    nb_status st = nbi_meta_set_str(metadata, prefix, "scheduler", type_names[s->kind], fn);
    if (!st) st = nbi_meta_set_int(metadata, prefix, "epoch", s->epoch, fn);
    if (!st) st = nbi_meta_set_double(metadata, prefix, "base_lr", s->base_lr, fn);
    if (!st) st = nbi_meta_set_double(metadata, prefix, "lr", s->opt->lr, fn);
    if (!st && s->kind == PLATEAU) {
        st = nbi_meta_set_double(metadata, prefix, "best", s->best, fn);
        if (!st) st = nbi_meta_set_int(metadata, prefix, "num_bad_epochs", s->bad_epochs, fn);
        if (!st) st = nbi_meta_set_int(metadata, prefix, "cooldown_counter", s->cooldown_left, fn);
    }
    return st;
}

nb_status nb_scheduler_restore(nb_scheduler *s, const nb_metadata *metadata, const char *prefix)
{
    const char *fn = "nb_scheduler_restore";
    if (!s || !metadata) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !s ? "scheduler" : "metadata");
    int64_t epoch, bad = 0, cooldown = 0;
    double base_lr, best = s->best, lr = NAN;
    nb_status st = nbi_meta_expect_str(metadata, prefix, "scheduler", type_names[s->kind], fn);
    if (!st) st = nbi_meta_get_int(metadata, prefix, "epoch", &epoch, fn);
    if (!st) st = nbi_meta_get_double(metadata, prefix, "base_lr", &base_lr, fn);
    if (!st && s->kind == PLATEAU) {
        st = nbi_meta_get_double(metadata, prefix, "best", &best, fn);
        if (!st) st = nbi_meta_get_int(metadata, prefix, "num_bad_epochs", &bad, fn);
        if (!st) st = nbi_meta_get_int(metadata, prefix, "cooldown_counter", &cooldown, fn);
    }
    /* The lr is optional: checkpoints written before schedules chained lack it. */
    char key[NB_NAME_MAX];
    snprintf(key, sizeof key, "%s%slr", prefix && *prefix ? prefix : "", prefix && *prefix ? "." : "");
    if (!st && nb_metadata_get(metadata, key)) st = nbi_meta_get_double(metadata, prefix, "lr", &lr, fn);
    if (st) return st;
    if (!isnan(lr) && !(isfinite(lr) && lr >= 0))
        return nbi_fail(NB_ERR_FORMAT, "%s: metadata holds lr %g; expected a finite lr >= 0", fn, lr);
    if (epoch < 0 || bad < 0 || cooldown < 0 || !isfinite(base_lr) || base_lr < 0)
        return nbi_fail(NB_ERR_FORMAT, "%s: metadata holds epoch %lld, base_lr %g, num_bad_epochs %lld, "
                        "cooldown_counter %lld; none may be negative", fn, (long long)epoch, base_lr, (long long)bad,
                        (long long)cooldown);
    s->epoch = epoch;
    s->base_lr = base_lr;
    s->best = best;
    s->bad_epochs = bad;
    s->cooldown_left = cooldown;
    /* A schedule made after its optimizer was restored may have changed the restored lr (LinearLR does): the
     * saved lr, the optimizer's when the state was taken, puts it back bit for bit whatever the order. Without it
     * (an older checkpoint), a lone closed-form schedule's lr is its closed form at the restored epoch. */
    if (!isnan(lr)) s->opt->lr = lr;
    else if (s->kind != PLATEAU) s->opt->lr = closed_form(s, epoch);
    s->opt->initial_lr = base_lr;
    return NB_OK;
}

void nb_scheduler_free(nb_scheduler *s)
{
    if (!s) return;
    free(s->milestones);
    free(s);
}
