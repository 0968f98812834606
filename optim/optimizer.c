/* The generic optimizer: parameter bookkeeping, per-parameter state, the step loop, lr, checkpoints.
 * The update rules themselves live in sgd.c, adam.c, rmsprop.c and adagrad.c. */
#include "optim_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

nb_optimizer *nbi_optimizer_new(const nb_param_list *list, const char *type, double lr, nbi_optim_update_fn update,
                                const char *fn)
{
    if (!list) return nbi_error(NB_ERR_NULL, "%s: params is NULL", fn);
    int n = 0;
    for (int i = 0; i < list->count; i++) {
        const nb_named_tensor *item = &list->items[i];
        if (item->is_buffer) continue;
        char what[NB_NAME_MAX + 16];
        snprintf(what, sizeof what, "parameter \"%s\"", item->name);
        nbi_tensor *t = nbi_resolve(item->tensor, fn, what);
        if (!t) return NULL;
        if (!nbi_is_float(t->dtype)) continue;
        /* Updating one tensor twice per step would silently double its learning rate. */
        for (int j = 0; j < i; j++)
            if (!list->items[j].is_buffer && nbi_peek(list->items[j].tensor) == t)
                return nbi_error(NB_ERR_ARG, "%s: parameter \"%s\" is the same tensor as \"%s\"", fn, item->name,
                                 list->items[j].name);
        n++;
    }
    if (n == 0)
        return nbi_error(NB_ERR_ARG, "%s: the list has no f32 or f64 parameters to optimize (%d entries)", fn,
                         list->count);

    nb_optimizer *opt = calloc(1, sizeof *opt);
    nbi_optim_param *params = calloc((size_t)n, sizeof *params);
    if (!opt || !params) {
        free(opt);
        free(params);
        return nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    }
    nbi_count_system_alloc();
    nbi_count_system_alloc();
    opt->type = type;
    opt->lr = lr;
    opt->initial_lr = NAN;
    opt->update = update;
    opt->params = params;
    for (int i = 0; i < list->count; i++) {
        const nb_named_tensor *item = &list->items[i];
        if (item->is_buffer || !nbi_is_float(nbi_peek(item->tensor)->dtype)) continue;
        nbi_optim_param *p = &params[opt->n_params++];
        memcpy(p->name, item->name, sizeof p->name);
        p->tensor = item->tensor;
    }
    nbi_optim_add_state(opt, "step", 0);
    return opt;
}

void nbi_optim_add_state(nb_optimizer *opt, const char *name, double initial)
{
    opt->state_names[opt->n_state] = name;
    opt->state_init[opt->n_state] = initial;
    opt->n_state++;
}

static bool check(bool ok, const char *fn, const char *option, const char *rule, double value)
{
    if (!ok) nbi_error(NB_ERR_ARG, "%s: %s must be %s, got %g", fn, option, rule, value);
    return ok;
}
bool nbi_optim_check_nonneg(const char *fn, const char *option, double value)
{
    return check(isfinite(value) && value >= 0, fn, option, "a finite number >= 0", value);
}
bool nbi_optim_check_unit(const char *fn, const char *option, double value)
{
    return check(value >= 0 && value < 1, fn, option, "in [0, 1)", value);
}
bool nbi_optim_check_finite(const char *fn, const char *option, double value)
{
    return check(isfinite(value), fn, option, "finite", value);
}

bool nbi_optim_flat_get(nb_tensor *ph, nb_tensor *gh, nb_tensor *const *state, int n_state, nbi_optim_flat *f)
{
    nbi_tensor *t[NBI_OPTIM_MAX_STATE + 1];
    int n = 0;
    t[n++] = nbi_peek(ph);
    t[n++] = nbi_peek(gh);
    for (int k = 1; k < n_state; k++) t[n++] = nbi_peek(state[k]);
    for (int i = 0; i < n; i++) {
        if (!t[i] || !nbi_is_float(t[i]->dtype) || t[i]->dtype != t[0]->dtype || t[i]->numel != t[0]->numel ||
            !nbi_is_contiguous(t[i]))
            return false;
        for (int j = 0; j < i; j++)
            if (t[i]->storage == t[j]->storage) return false;
    }
    f->dtype = t[0]->dtype;
    f->n = t[0]->numel;
    f->p = nbi_data_ptr(t[0]);
    f->g = nbi_data_ptr(t[1]);
    f->s[0] = NULL;
    for (int k = 1; k < n_state; k++) f->s[k] = nbi_data_ptr(t[k + 1]);
    return true;
}

void nbi_optim_flat_written(nb_tensor *p, nb_tensor *const *state, int n_state)
{
    nbi_storage_bump_version(nbi_peek(p)->storage);
    for (int k = 1; k < n_state; k++) nbi_storage_bump_version(nbi_peek(state[k])->storage);
}

void nbi_optim_parallel(int64_t n, nbi_range_fn fn, void *ctx) { nbi_parallel_for(n, 32768, fn, ctx); }

/* NB_ERR_FREED naming p when its tensor was freed; the name is formatted only on that path, not every step. */
static bool param_valid(const nbi_optim_param *p, const char *fn)
{
    if (nbi_peek(p->tensor)) return true;
    char what[NB_NAME_MAX + 16];
    snprintf(what, sizeof what, "parameter \"%s\"", p->name);
    nbi_resolve(p->tensor, fn, what);
    return false;
}

/* p's state tensors that exist must be usable: not freed (their handles are handed out by nb_optimizer_state),
 * and the step count a whole number >= 0 (a damaged checkpoint could hold anything). */
static nb_status check_state(const nb_optimizer *opt, const nbi_optim_param *p, nb_status code, const char *fn)
{
    for (int k = 0; k < opt->n_state; k++) {
        if (!p->state[k]) continue;
        if (!nbi_peek(p->state[k]))
            return nbi_fail(NB_ERR_FREED, "%s: state \"%s\" of parameter \"%s\" was freed (nb_free on a tensor of "
                            "nb_optimizer_state's list?); the optimizer owns it", fn, opt->state_names[k], p->name);
    }
    if (p->state[0]) {
        double t = nb_item(p->state[0]);
        if (!(t >= 0 && t < 0x1p53 && t == floor(t)))
            return nbi_fail(code, "%s: state \"step\" of parameter \"%s\" holds %g, not a step count >= 0 (loaded "
                            "from a damaged checkpoint?)", fn, p->name, t);
    }
    return NB_OK;
}

/* Creates p's missing state tensors, owned by the optimizer whatever scopes are open, after checking those that
 * exist. */
static nb_status ensure_state(nb_optimizer *opt, nbi_optim_param *p, const char *fn)
{
    if (!param_valid(p, fn)) return nb_last_status();
    nb_status st = check_state(opt, p, NB_ERR_STATE, fn);
    for (int k = 0; k < opt->n_state && !st; k++) {
        if (p->state[k]) continue;
        nb_tensor *s = k == 0 ? nb_zeros(0, (const int64_t[]){1}, NB_I64) : nb_full_like(p->tensor, opt->state_init[k]);
        if (!s) return nb_last_status();
        p->state[k] = nbi_nn_own(s);
    }
    return st;
}

nb_status nb_optimizer_step(nb_optimizer *opt)
{
    const char *fn = "nb_optimizer_step";
    if (!opt) return nbi_fail(NB_ERR_NULL, "%s: optimizer is NULL", fn);
    /* Everything that can fail before an update (a freed parameter, no memory for state) is checked first, so a
     * failed step leaves all parameters untouched. */
    for (int i = 0; i < opt->n_params; i++) {
        nbi_optim_param *p = &opt->params[i];
        if (!param_valid(p, fn)) return nb_last_status();
        nbi_tensor *t = nbi_peek(p->tensor);
        p->active = t->requires_grad && t->grad;
        if (p->active) {
            nb_status st = ensure_state(opt, p, fn);
            if (st) return st;
        }
    }
    nb_status st = NB_OK;
    nb_no_grad_begin();
    for (int i = 0; i < opt->n_params && !st; i++) {
        nbi_optim_param *p = &opt->params[i];
        if (!p->active) continue;
        /* One scope per parameter: memory holds one parameter's temporaries at a time. */
        st = nbi_scope_begin();
        if (st) break;
        int64_t t = (int64_t)nb_item(p->state[0]) + 1;
        st = opt->update(opt, p->tensor, nb_grad(p->tensor), p->state, t);
        if (!st) st = nb_fill(p->state[0], (double)t);
        nbi_scope_end();
    }
    nb_no_grad_end();
    if (!st) opt->steps++;
    return st;
}

void nb_optimizer_zero_grad(nb_optimizer *opt)
{
    if (!opt) {
        nbi_error(NB_ERR_NULL, "nb_optimizer_zero_grad: optimizer is NULL");
        return;
    }
    for (int i = 0; i < opt->n_params; i++)
        if (nb_is_valid(opt->params[i].tensor)) nb_zero_grad(opt->params[i].tensor);
}

double nb_optimizer_get_lr(const nb_optimizer *opt)
{
    if (!opt) {
        nbi_error(NB_ERR_NULL, "nb_optimizer_get_lr: optimizer is NULL");
        return NAN;
    }
    return opt->lr;
}

void nb_optimizer_set_lr(nb_optimizer *opt, double lr)
{
    if (!opt) {
        nbi_error(NB_ERR_NULL, "nb_optimizer_set_lr: optimizer is NULL");
        return;
    }
    if (nbi_optim_check_nonneg("nb_optimizer_set_lr", "lr", lr)) opt->lr = lr;
}

int64_t nb_optimizer_steps(const nb_optimizer *opt)
{
    if (!opt) {
        nbi_error(NB_ERR_NULL, "nb_optimizer_steps: optimizer is NULL");
        return -1;
    }
    return opt->steps;
}

nb_status nb_optimizer_state(nb_optimizer *opt, const char *prefix, nb_param_list *out, nb_metadata *metadata)
{
    const char *fn = "nb_optimizer_state";
    if (!opt || !out) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !opt ? "optimizer" : "out");
    if (!prefix) prefix = "";
    /* The metadata first: a prefix too long for its keys fails before the list grows. */
    if (metadata) {
        nb_status st = nbi_meta_set_str(metadata, prefix, "optimizer", opt->type, fn);
        if (!st) st = nbi_meta_set_int(metadata, prefix, "steps", opt->steps, fn);
        if (!st) st = nbi_meta_set_double(metadata, prefix, "lr", opt->lr, fn);
        if (st) return st;
    }
    for (int i = 0; i < opt->n_params; i++) {
        nbi_optim_param *p = &opt->params[i];
        nb_status st = ensure_state(opt, p, fn);
        for (int k = 0; k < opt->n_state && !st; k++) {
            char name[NB_NAME_MAX];
            int len = snprintf(name, sizeof name, "%s%s%s.%s", prefix, *prefix ? "." : "", p->name,
                               opt->state_names[k]);
            if (len < 0 || len >= NB_NAME_MAX)
                return nbi_fail(NB_ERR_ARG, "%s: state name \"%s%s%s.%s\" is longer than %d characters", fn, prefix,
                                *prefix ? "." : "", p->name, opt->state_names[k], NB_NAME_MAX - 1);
            /* A buffer: checkpoints save it, optimizers never update it. */
            st = nb_param_list_add(out, name, p->state[k], true);
        }
        if (st) return st;
    }
    return NB_OK;
}

nb_status nb_optimizer_restore(nb_optimizer *opt, const nb_metadata *metadata, const char *prefix)
{
    const char *fn = "nb_optimizer_restore";
    if (!opt || !metadata) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !opt ? "optimizer" : "metadata");
    int64_t steps;
    double lr;
    nb_status st = nbi_meta_expect_str(metadata, prefix, "optimizer", opt->type, fn);
    if (!st) st = nbi_meta_get_int(metadata, prefix, "steps", &steps, fn);
    if (!st) st = nbi_meta_get_double(metadata, prefix, "lr", &lr, fn);
    if (st) return st;
    if (steps < 0 || !isfinite(lr) || lr < 0)
        return nbi_fail(NB_ERR_FORMAT, "%s: metadata holds steps %lld and lr %g; expected steps >= 0 and lr >= 0", fn,
                        (long long)steps, lr);
    /* The state tensors were loaded in place before this call: a bad step count is reported here, not at step. */
    for (int i = 0; i < opt->n_params; i++) {
        st = check_state(opt, &opt->params[i], NB_ERR_FORMAT, fn);
        if (st) return st;
    }
    opt->steps = steps;
    opt->lr = lr;
    return NB_OK;
}

void nb_optimizer_free(nb_optimizer *opt)
{
    if (!opt) return;
    for (int i = 0; i < opt->n_params; i++)
        for (int k = 0; k < opt->n_state; k++) nbi_nn_free_tensor(opt->params[i].state[k]);
    free(opt->params);
    free(opt);
}
