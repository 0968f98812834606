/* The generic optimizer: parameter bookkeeping, per-parameter state, the step loop, lr, checkpoints.
 * The update rules themselves live in sgd.c, adam.c, rmsprop.c and adagrad.c. */
#include "optim_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* How many of the list's entries a new group takes (f32 and f64 non-buffers), each checked: not freed, not listed
 * twice, and for opt (NULL while constructing) not held by any group already, neither the tensor nor the name
 * (the name keys its state in checkpoints). -1 on error. */
static int count_new_params(const nb_optimizer *opt, const nb_param_list *list, const char *fn)
{
    if (!list) {
        nbi_error(NB_ERR_NULL, "%s: params is NULL", fn);
        return -1;
    }
    int n = 0;
    for (int i = 0; i < list->count; i++) {
        const nb_named_tensor *item = &list->items[i];
        if (item->is_buffer) continue;
        char what[NB_NAME_MAX + 16];
        snprintf(what, sizeof what, "parameter \"%s\"", item->name);
        nbi_tensor *t = nbi_resolve(item->tensor, fn, what);
        if (!t) return -1;
        if (!nbi_is_float(t->dtype)) continue;
        /* Updating one tensor twice per step would silently double its learning rate. */
        for (int j = 0; j < i; j++)
            if (!list->items[j].is_buffer && nbi_peek(list->items[j].tensor) == t) {
                nbi_error(NB_ERR_ARG, "%s: parameter \"%s\" is the same tensor as \"%s\"", fn, item->name,
                          list->items[j].name);
                return -1;
            }
        for (int j = 0; opt && j < opt->n_params; j++) {
            const nbi_optim_param *q = &opt->params[j];
            if (nbi_peek(q->tensor) == t) {
                nbi_error(NB_ERR_ARG, "%s: parameter \"%s\" is already in parameter group %d (as \"%s\"); a "
                          "parameter may appear in only one group", fn, item->name, q->group, q->name);
                return -1;
            }
            if (strcmp(q->name, item->name) == 0) {
                nbi_error(NB_ERR_ARG, "%s: parameter group %d already has a parameter named \"%s\" (another "
                          "tensor); their checkpoint state would share names", fn, q->group, item->name);
                return -1;
            }
        }
        n++;
    }
    if (n == 0)
        nbi_error(NB_ERR_ARG, "%s: the list has no f32 or f64 parameters to optimize (%d entries)", fn, list->count);
    return n > 0 ? n : -1;
}

/* Appends the list's parameters to opt->params (room for them was made) as members of group g. */
static void append_params(nb_optimizer *opt, const nb_param_list *list, int g)
{
    for (int i = 0; i < list->count; i++) {
        const nb_named_tensor *item = &list->items[i];
        if (item->is_buffer || !nbi_is_float(nbi_peek(item->tensor)->dtype)) continue;
        nbi_optim_param *p = &opt->params[opt->n_params++];
        memset(p, 0, sizeof *p);
        memcpy(p->name, item->name, sizeof p->name);
        p->tensor = item->tensor;
        p->group = g;
        opt->groups[g].n_params++;
    }
}

static void init_group(nb_optimizer *opt, int g, const nbi_optim_group *group)
{
    nbi_optim_group *grp = &opt->groups[g];
    *grp = *group;
    grp->initial_lr = NAN;
    grp->n_state = 0;
    grp->n_params = 0;
    nbi_optim_add_state(grp, "step", 0);
    opt->layout(grp);
}

nb_optimizer *nbi_optimizer_new(const nb_param_list *list, const char *type, const nbi_optim_group *group,
                                nbi_optim_update_fn update, nbi_optim_layout_fn layout, const char *fn)
{
    int n = count_new_params(NULL, list, fn);
    if (n < 0) return NULL;
    nb_optimizer *opt = calloc(1, sizeof *opt);
    nbi_optim_param *params = calloc((size_t)n, sizeof *params);
    nbi_optim_group *groups = calloc(1, sizeof *groups);
    if (!opt || !params || !groups) {
        free(opt);
        free(params);
        free(groups);
        return nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    }
    nbi_count_system_alloc();
    nbi_count_system_alloc();
    nbi_count_system_alloc();
    opt->type = type;
    opt->update = update;
    opt->layout = layout;
    opt->params = params;
    opt->groups = groups;
    opt->n_groups = 1;
    init_group(opt, 0, group);
    append_params(opt, list, 0);
    return opt;
}

nb_status nbi_optimizer_add_group(nb_optimizer *opt, const nb_param_list *list, const nbi_optim_group *group,
                                  const char *fn)
{
    int n = count_new_params(opt, list, fn);
    if (n < 0) return nb_last_status();
    /* Grown one at a time: groups are added a few times per run, never in the training loop. A failed second
     * realloc leaves a larger groups array behind, which nothing reads. */
    nbi_optim_group *groups = realloc(opt->groups, (size_t)(opt->n_groups + 1) * sizeof *groups);
    if (!groups) return nbi_fail(NB_ERR_NOMEM, "%s: out of memory", fn);
    nbi_count_system_alloc();
    opt->groups = groups;
    nbi_optim_param *params = realloc(opt->params, (size_t)(opt->n_params + n) * sizeof *params);
    if (!params) return nbi_fail(NB_ERR_NOMEM, "%s: out of memory", fn);
    nbi_count_system_alloc();
    opt->params = params;
    init_group(opt, opt->n_groups, group);
    append_params(opt, list, opt->n_groups);
    opt->n_groups++;
    return NB_OK;
}

void nbi_optim_add_state(nbi_optim_group *grp, const char *name, double initial)
{
    grp->state_names[grp->n_state] = name;
    grp->state_init[grp->n_state] = initial;
    grp->n_state++;
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
    const nbi_optim_group *grp = &opt->groups[p->group];
    for (int k = 0; k < grp->n_state; k++) {
        if (!p->state[k]) continue;
        if (!nbi_peek(p->state[k]))
            return nbi_fail(NB_ERR_FREED, "%s: state \"%s\" of parameter \"%s\" was freed (nb_free on a tensor of "
                            "nb_optimizer_state's list?); the optimizer owns it", fn, grp->state_names[k], p->name);
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
    const nbi_optim_group *grp = &opt->groups[p->group];
    nb_status st = check_state(opt, p, NB_ERR_STATE, fn);
    for (int k = 0; k < grp->n_state && !st; k++) {
        if (p->state[k]) continue;
        nb_tensor *s = k == 0 ? nb_zeros(0, (const int64_t[]){1}, NB_I64) : nb_full_like(p->tensor, grp->state_init[k]);
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
        st = opt->update(&opt->groups[p->group], p->tensor, nb_grad(p->tensor), p->state, t);
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
    return opt->groups[0].lr;
}

void nb_optimizer_set_lr(nb_optimizer *opt, double lr)
{
    if (!opt) {
        nbi_error(NB_ERR_NULL, "nb_optimizer_set_lr: optimizer is NULL");
        return;
    }
    if (!nbi_optim_check_nonneg("nb_optimizer_set_lr", "lr", lr)) return;
    for (int g = 0; g < opt->n_groups; g++) opt->groups[g].lr = lr;
}

int nb_optimizer_num_param_groups(const nb_optimizer *opt)
{
    if (!opt) {
        nbi_error(NB_ERR_NULL, "nb_optimizer_num_param_groups: optimizer is NULL");
        return -1;
    }
    return opt->n_groups;
}

/* The group, or NULL with an error naming fn when opt is NULL or group out of range. */
static nbi_optim_group *group_at(const nb_optimizer *opt, int group, const char *fn)
{
    if (!opt) return nbi_error(NB_ERR_NULL, "%s: optimizer is NULL", fn);
    if (group < 0 || group >= opt->n_groups)
        return nbi_error(NB_ERR_ARG, "%s: group %d out of range: the optimizer has %d parameter group%s", fn, group,
                         opt->n_groups, opt->n_groups == 1 ? "" : "s");
    return &opt->groups[group];
}

double nb_optimizer_get_group_lr(const nb_optimizer *opt, int group)
{
    const nbi_optim_group *grp = group_at(opt, group, "nb_optimizer_get_group_lr");
    return grp ? grp->lr : NAN;
}

nb_status nb_optimizer_set_group_lr(nb_optimizer *opt, int group, double lr)
{
    const char *fn = "nb_optimizer_set_group_lr";
    nbi_optim_group *grp = group_at(opt, group, fn);
    if (!grp) return nb_last_status();
    if (!nbi_optim_check_nonneg(fn, "lr", lr)) return nb_last_status();
    grp->lr = lr;
    return NB_OK;
}

double nb_optimizer_get_group_momentum(const nb_optimizer *opt, int group)
{
    const char *fn = "nb_optimizer_get_group_momentum";
    const nbi_optim_group *grp = group_at(opt, group, fn);
    if (!grp) return NAN;
    if (opt->layout == nbi_sgd_layout) return grp->options.sgd.momentum;
    if (opt->layout == nbi_rmsprop_layout) return grp->options.rmsprop.momentum;
    if (opt->layout == nbi_adam_layout) return grp->options.adam.beta1;
    nbi_error(NB_ERR_ARG, "%s: %s has no momentum", fn, opt->type);
    return NAN;
}

int64_t nb_optimizer_steps(const nb_optimizer *opt)
{
    if (!opt) {
        nbi_error(NB_ERR_NULL, "nb_optimizer_steps: optimizer is NULL");
        return -1;
    }
    return opt->steps;
}

/* "group<g>.<field>" under prefix, for the entries of optimizers and schedules with several groups. */
void nbi_meta_group_field(char *out, size_t size, int g, const char *field)
{
    snprintf(out, size, "group%d.%s", g, field);
}

uint64_t nbi_optim_group_layout(const nb_optimizer *opt)
{
    uint64_t sum = 0;
    for (int i = 0; i < opt->n_params; i++) {
        uint64_t h = 0xcbf29ce484222325u; /* FNV-1a of the name, then mixed with the group */
        for (const unsigned char *c = (const unsigned char *)opt->params[i].name; *c; c++) h = (h ^ *c) * 0x100000001b3u;
        h ^= (uint64_t)(opt->params[i].group + 1) * 0x9e3779b97f4a7c15u;
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
        sum += h ^ (h >> 31);
    }
    return sum;
}

/* The entries of nb_optimizer_state, into a draft. A single group writes what nabla wrote before groups existed;
 * more add their count, layout, and each group's size, lr and initial lr packed in "groups.<g>" entries. */
static nb_status write_metadata(const nb_optimizer *opt, const char *prefix, nb_metadata *m, const char *fn)
{
    nb_status st = nbi_meta_set_str(m, prefix, "optimizer", opt->type, fn);
    if (!st) st = nbi_meta_set_int(m, prefix, "steps", opt->steps, fn);
    if (!st) st = nbi_meta_set_double(m, prefix, "lr", opt->groups[0].lr, fn);
    if (opt->n_groups == 1) return st;
    if (!st) st = nbi_meta_set_int(m, prefix, "param_groups", opt->n_groups, fn);
    if (!st) st = nbi_meta_set_layout(m, prefix, opt, fn);
    if (st) return st;
    double *values = malloc(3 * (size_t)opt->n_groups * sizeof *values);
    if (!values) return nbi_fail(NB_ERR_NOMEM, "%s: out of memory writing %d parameter groups", fn, opt->n_groups);
    for (int g = 0; g < opt->n_groups; g++) {
        values[3 * g] = opt->groups[g].n_params;
        values[3 * g + 1] = opt->groups[g].lr;
        values[3 * g + 2] = opt->groups[g].initial_lr; /* NAN until a schedule drives the group */
    }
    st = nbi_meta_set_group_values(m, prefix, opt->n_groups, 3, values, fn);
    free(values);
    return st;
}

nb_status nb_optimizer_state(nb_optimizer *opt, const char *prefix, nb_param_list *out, nb_metadata *metadata)
{
    const char *fn = "nb_optimizer_state";
    if (!opt || !out) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !opt ? "optimizer" : "out");
    if (!prefix) prefix = "";
    /* All or nothing: every state exists and every name fits before the metadata is written (on a draft, which a
     * full nb_metadata leaves unchanged), and the list is cut back to its length if an entry cannot be added. */
    for (int i = 0; i < opt->n_params; i++) {
        nbi_optim_param *p = &opt->params[i];
        const nbi_optim_group *grp = &opt->groups[p->group];
        nb_status st = ensure_state(opt, p, fn);
        if (st) return st;
        for (int k = 0; k < grp->n_state; k++) {
            int len = snprintf(NULL, 0, "%s%s%s.%s", prefix, *prefix ? "." : "", p->name, grp->state_names[k]);
            if (len < 0 || len >= NB_NAME_MAX)
                return nbi_fail(NB_ERR_ARG, "%s: state name \"%s%s%s.%s\" is longer than %d characters", fn, prefix,
                                *prefix ? "." : "", p->name, grp->state_names[k], NB_NAME_MAX - 1);
        }
    }
    nb_metadata *draft = NULL;
    if (metadata) {
        draft = nbi_meta_draft(metadata, fn);
        if (!draft) return nb_last_status();
        nb_status st = write_metadata(opt, prefix, draft, fn);
        if (st) return nbi_meta_commit(metadata, draft, st);
    }
    int length = out->count;
    nb_status st = NB_OK;
    for (int i = 0; i < opt->n_params && !st; i++) {
        nbi_optim_param *p = &opt->params[i];
        const nbi_optim_group *grp = &opt->groups[p->group];
        for (int k = 0; k < grp->n_state && !st; k++) {
            char name[NB_NAME_MAX];
            int len = snprintf(name, sizeof name, "%s%s%s.%s", prefix, *prefix ? "." : "", p->name,
                               grp->state_names[k]);
            /* A buffer: checkpoints save it, optimizers never update it. (The length was checked above.) */
            st = len < NB_NAME_MAX ? nb_param_list_add(out, name, p->state[k], true) : NB_ERR_ARG;
        }
    }
    if (st) out->count = length; /* the names live in the items: nothing to free */
    return draft ? nbi_meta_commit(metadata, draft, st) : st;
}

/* The number of groups metadata describes: its "param_groups" entry, 1 without one (a single group, or a
 * checkpoint older than groups). */
nb_status nbi_meta_get_groups(const nb_metadata *m, const char *prefix, int64_t *out, const char *fn)
{
    *out = 1;
    return nbi_meta_has(m, prefix, "param_groups") ? nbi_meta_get_int(m, prefix, "param_groups", out, fn) : NB_OK;
}

/* Group g's size, lr and initial lr (NAN when none) from metadata with several groups: from values, the packed
 * "groups.<g>" entries read by the caller (3 a group), or, when values is NULL, from the entries of one value each
 * that nabla wrote first ("group<g>.params", ".lr", ".initial_lr"). Its size must match, its lr and initial lr be
 * finite and >= 0; else NB_ERR_FORMAT naming them. */
static nb_status read_group(const nb_optimizer *opt, const nb_metadata *metadata, const char *prefix,
                            const double *values, int g, double *lr, double *initial, const char *fn)
{
    double size;
    *initial = NAN;
    if (values) {
        size = values[3 * g];
        *lr = values[3 * g + 1];
        *initial = values[3 * g + 2];
    } else {
        char field[48];
        int64_t n;
        nbi_meta_group_field(field, sizeof field, g, "params");
        nb_status st = nbi_meta_get_int(metadata, prefix, field, &n, fn);
        nbi_meta_group_field(field, sizeof field, g, "lr");
        if (!st) st = nbi_meta_get_double(metadata, prefix, field, lr, fn);
        if (st) return st;
        size = (double)n;
        nbi_meta_group_field(field, sizeof field, g, "initial_lr");
        if (nbi_meta_has(metadata, prefix, field) && (st = nbi_meta_get_double(metadata, prefix, field, initial, fn)))
            return st;
    }
    if (size != opt->groups[g].n_params)
        return nbi_fail(NB_ERR_FORMAT, "%s: parameter group %d has %g parameters in the checkpoint, %d in the "
                        "optimizer: its group structure differs", fn, g, size, opt->groups[g].n_params);
    if (!isfinite(*lr)) /* negative is possible: OneCycleLR's linear anneal ends below zero, as PyTorch's */
        return nbi_fail(NB_ERR_FORMAT, "%s: metadata holds lr %g for parameter group %d; expected a finite lr", fn,
                        *lr, g);
    if (!isnan(*initial) && !(isfinite(*initial) && *initial >= 0))
        return nbi_fail(NB_ERR_FORMAT, "%s: metadata holds initial_lr %g for parameter group %d; expected a finite "
                        "lr >= 0", fn, *initial, g);
    return NB_OK;
}

nb_status nb_optimizer_restore(nb_optimizer *opt, const nb_metadata *metadata, const char *prefix)
{
    const char *fn = "nb_optimizer_restore";
    if (!opt || !metadata) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !opt ? "optimizer" : "metadata");
    int64_t steps, n_groups;
    double lr;
    nb_status st = nbi_meta_expect_str(metadata, prefix, "optimizer", opt->type, fn);
    if (!st) st = nbi_meta_get_int(metadata, prefix, "steps", &steps, fn);
    if (!st) st = nbi_meta_get_double(metadata, prefix, "lr", &lr, fn);
    if (!st) st = nbi_meta_get_groups(metadata, prefix, &n_groups, fn);
    if (st) return st;
    if (steps < 0 || !isfinite(lr))
        return nbi_fail(NB_ERR_FORMAT, "%s: metadata holds steps %lld and lr %g; expected steps >= 0 and a finite lr",
                        fn, (long long)steps, lr);
    if (n_groups != opt->n_groups)
        return nbi_fail(NB_ERR_FORMAT, "%s: the checkpoint has %lld parameter group%s, the optimizer %d: its group "
                        "structure differs", fn, (long long)n_groups, n_groups == 1 ? "" : "s", opt->n_groups);
    int n = opt->n_groups > 1 ? opt->n_groups : 0;
    double *values = NULL, *lrs = n ? malloc(2 * (size_t)n * sizeof *lrs) : NULL, *initials = lrs + n;
    if (n && !lrs) return nbi_fail(NB_ERR_NOMEM, "%s: out of memory reading %d parameter groups", fn, n);
    if (n && nbi_meta_has(metadata, prefix, "groups.0")) {
        values = malloc(3 * (size_t)n * sizeof *values);
        st = values ? nbi_meta_get_group_values(metadata, prefix, n, 3, values, fn)
                    : nbi_fail(NB_ERR_NOMEM, "%s: out of memory reading %d parameter groups", fn, n);
    }
    /* Everything is read and checked before anything changes. */
    for (int g = 0; g < n && !st; g++) st = read_group(opt, metadata, prefix, values, g, &lrs[g], &initials[g], fn);
    if (!st && n) st = nbi_meta_check_layout(metadata, prefix, opt, fn);
    /* The state tensors were loaded in place before this call: a bad step count is reported here, not at step. */
    for (int i = 0; i < opt->n_params && !st; i++) st = check_state(opt, &opt->params[i], NB_ERR_FORMAT, fn);
    if (!st) {
        opt->steps = steps;
        opt->groups[0].lr = lr;
        for (int g = 0; g < n; g++) {
            opt->groups[g].lr = lrs[g];
            if (!isnan(initials[g])) opt->groups[g].initial_lr = initials[g];
        }
    }
    free(values);
    free(lrs);
    return st;
}

void nb_optimizer_free(nb_optimizer *opt)
{
    if (!opt) return;
    for (int i = 0; i < opt->n_params; i++)
        for (int k = 0; k < opt->groups[opt->params[i].group].n_state; k++)
            nbi_nn_free_tensor(opt->params[i].state[k]);
    free(opt->params);
    free(opt->groups);
    free(opt);
}
