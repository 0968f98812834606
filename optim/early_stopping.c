/* Early stopping on a validation metric, keeping a copy of the best weights. */
#include "optim_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct nb_early_stopping {
    int64_t patience;
    double min_delta;
    bool maximize, keep_best;
    int64_t epoch;      /* updates so far */
    int64_t best_epoch; /* -1 before the first update */
    double best;
    int64_t bad_epochs;
    bool stopped; /* an update returned true */
    int n_kept; /* copies of every entry (parameters and buffers) at the best epoch, by name */
    nb_named_tensor *kept;
};

nb_early_stopping *nb_early_stopping_new(int64_t patience, double min_delta, bool maximize, bool keep_best)
{
    const char *fn = "nb_early_stopping_new";
    if (patience < 0) return nbi_error(NB_ERR_ARG, "%s: patience must be >= 0, got %lld", fn, (long long)patience);
    if (!nbi_optim_check_nonneg(fn, "min_delta", min_delta)) return NULL;
    nb_early_stopping *es = calloc(1, sizeof *es);
    if (!es) return nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    nbi_count_system_alloc();
    es->patience = patience;
    es->min_delta = min_delta;
    es->maximize = maximize;
    es->keep_best = keep_best;
    es->best_epoch = -1;
    es->best = maximize ? -INFINITY : INFINITY;
    return es;
}

/* NB_OK when the kept copy k and t have the same shape and dtype (nb_copy_ would broadcast or convert), else an
 * error naming fn and the entry; also when either was freed. */
static nb_status same_layout(const nb_named_tensor *k, const nb_tensor *t, const char *fn)
{
    nbi_tensor *dst = nbi_resolve(t, fn, k->name), *src = nbi_resolve(k->tensor, fn, "a kept copy");
    if (!dst || !src) return nb_last_status();
    if (dst->ndim != src->ndim || memcmp(dst->shape, src->shape, (size_t)dst->ndim * sizeof *dst->shape) != 0 ||
        dst->dtype != src->dtype) {
        char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
        return nbi_fail(NB_ERR_SHAPE, "%s: \"%s\" is %s %s, the kept weights %s %s", fn, k->name,
                        nbi_shape_fmt(a, dst->ndim, dst->shape), nb_dtype_name(dst->dtype),
                        nbi_shape_fmt(b, src->ndim, src->shape), nb_dtype_name(src->dtype));
    }
    return NB_OK;
}

/* Copies the list's tensors into the kept copies (made at the first best; the list must keep its layout). All
 * entries are checked before any is copied, so a failure leaves the kept weights those of the last best. */
static nb_status snapshot(nb_early_stopping *es, const nb_param_list *params, const char *fn)
{
    for (int i = 0; i < params->count; i++)
        if (!nbi_resolve(params->items[i].tensor, fn, params->items[i].name)) return nb_last_status();
    if (!es->kept) {
        es->kept = calloc((size_t)(params->count > 0 ? params->count : 1), sizeof *es->kept);
        if (!es->kept) return nbi_fail(NB_ERR_NOMEM, "%s: out of memory", fn);
        nbi_count_system_alloc();
        nb_no_grad_begin();
        for (int i = 0; i < params->count; i++) {
            es->kept[i] = params->items[i];
            es->kept[i].tensor = nbi_nn_own(nb_clone(params->items[i].tensor));
            if (!es->kept[i].tensor) break;
            es->n_kept++;
        }
        nb_no_grad_end();
        if (es->n_kept == params->count) return NB_OK;
        /* out of memory: back to no copies, so that the next best starts over */
        for (int i = 0; i < es->n_kept; i++) nbi_nn_free_tensor(es->kept[i].tensor);
        free(es->kept);
        es->kept = NULL;
        es->n_kept = 0;
        return nb_last_status();
    }
    if (params->count != es->n_kept)
        return nbi_fail(NB_ERR_ARG, "%s: params has %d entries, but had %d when the first best weights were kept", fn,
                        params->count, es->n_kept);
    for (int i = 0; i < es->n_kept; i++) {
        if (strcmp(es->kept[i].name, params->items[i].name) != 0)
            return nbi_fail(NB_ERR_ARG, "%s: entry %d is \"%s\", but was \"%s\" when the first best weights were kept",
                            fn, i, params->items[i].name, es->kept[i].name);
        nb_status st = same_layout(&es->kept[i], params->items[i].tensor, fn);
        if (st) return st;
    }
    nb_status st = NB_OK;
    for (int i = 0; i < es->n_kept && !st; i++) st = nb_copy_(es->kept[i].tensor, params->items[i].tensor);
    return st;
}

bool nb_early_stopping_update(nb_early_stopping *es, double metric, const nb_param_list *params)
{
    const char *fn = "nb_early_stopping_update";
    if (!es) {
        nbi_error(NB_ERR_NULL, "%s: early stopping is NULL", fn);
        return false;
    }
    if (es->keep_best && !params) {
        nbi_error(NB_ERR_NULL, "%s: params is NULL, but keep_best needs the parameters", fn);
        return false;
    }
    /* A diverged run (NaN metric) stops at once; it never counts as an improvement. */
    if (isnan(metric)) {
        es->epoch++;
        return es->stopped = true;
    }
    bool improved = es->maximize ? metric > es->best + es->min_delta : metric < es->best - es->min_delta;
    if (!improved) {
        es->epoch++;
        if (++es->bad_epochs >= es->patience) es->stopped = true;
        return es->bad_epochs >= es->patience;
    }
    /* The copy first: a failed call records nothing, so best and the kept weights always agree. */
    if (es->keep_best && snapshot(es, params, fn)) return false;
    es->best = metric;
    es->best_epoch = es->epoch++;
    es->bad_epochs = 0;
    return false;
}

double nb_early_stopping_best(const nb_early_stopping *es)
{
    if (!es) {
        nbi_error(NB_ERR_NULL, "nb_early_stopping_best: early stopping is NULL");
        return NAN;
    }
    return es->best;
}

int64_t nb_early_stopping_best_epoch(const nb_early_stopping *es)
{
    if (!es) {
        nbi_error(NB_ERR_NULL, "nb_early_stopping_best_epoch: early stopping is NULL");
        return -1;
    }
    return es->best_epoch;
}

nb_status nb_early_stopping_restore(nb_early_stopping *es, const nb_param_list *params)
{
    const char *fn = "nb_early_stopping_restore";
    if (!es || !params) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !es ? "early stopping" : "params");
    if (!es->n_kept || es->best_epoch < 0) /* copies made for a checkpoint before the first best are not a best */
        return nbi_fail(NB_ERR_STATE, "%s: no best weights were kept (%s)", fn,
                        es->keep_best ? "no metric has been recorded yet" : "keep_best is off");
    /* Matched by name, all checked before anything is written. */
    for (int i = 0; i < es->n_kept; i++) {
        const nb_named_tensor *k = &es->kept[i];
        nb_tensor *t = nb_param_list_find(params, k->name);
        if (!t) return nbi_fail(NB_ERR_ARG, "%s: params has no entry \"%s\"", fn, k->name);
        nb_status st = same_layout(k, t, fn);
        if (st) return st;
    }
    nb_status st = NB_OK;
    for (int i = 0; i < es->n_kept && !st; i++)
        st = nb_copy_(nb_param_list_find(params, es->kept[i].name), es->kept[i].tensor);
    return st;
}

bool nb_early_stopping_stopped(const nb_early_stopping *es)
{
    if (!es) {
        nbi_error(NB_ERR_NULL, "nb_early_stopping_stopped: early stopping is NULL");
        return false;
    }
    return es->stopped;
}

static nb_status write_metadata(const nb_early_stopping *es, const char *prefix, nb_metadata *m, const char *fn)
{
    nb_status st = nbi_meta_set_int(m, prefix, "epoch", es->epoch, fn);
    if (!st) st = nbi_meta_set_int(m, prefix, "best_epoch", es->best_epoch, fn);
    if (!st) st = nbi_meta_set_double(m, prefix, "best", es->best, fn);
    if (!st) st = nbi_meta_set_int(m, prefix, "bad_epochs", es->bad_epochs, fn);
    if (!st) st = nbi_meta_set_int(m, prefix, "stopped", es->stopped, fn);
    if (!st) st = nbi_meta_set_int(m, prefix, "maximize", es->maximize, fn);
    if (!st) st = nbi_meta_set_int(m, prefix, "keep_best", es->keep_best, fn);
    return st;
}

nb_status nb_early_stopping_state(nb_early_stopping *es, const nb_param_list *params, const char *prefix,
                                  nb_param_list *out, nb_metadata *metadata)
{
    const char *fn = "nb_early_stopping_state";
    if (!es || !out) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !es ? "early stopping" : "out");
    if (!prefix) prefix = "";
    if (es->keep_best && !*prefix)
        return nbi_fail(NB_ERR_ARG, "%s: prefix is empty; the kept weights would take the parameters' own names", fn);
    if (es->keep_best && !es->kept) {
        if (!params) return nbi_fail(NB_ERR_NULL, "%s: params is NULL, but keep_best needs it to make the copies", fn);
        nb_status st = snapshot(es, params, fn);
        if (st) return st;
    }
    for (int i = 0; i < es->n_kept; i++)
        if (strlen(prefix) + 1 + strlen(es->kept[i].name) >= NB_NAME_MAX)
            return nbi_fail(NB_ERR_ARG, "%s: name \"%s.%s\" is longer than %d characters", fn, prefix,
                            es->kept[i].name, NB_NAME_MAX - 1);
    nb_metadata *draft = NULL;
    if (metadata) {
        if (!(draft = nbi_meta_draft(metadata, fn))) return nb_last_status();
        nb_status st = write_metadata(es, prefix, draft, fn);
        if (st) return nbi_meta_commit(metadata, draft, st);
    }
    int length = out->count;
    nb_status st = NB_OK;
    for (int i = 0; i < es->n_kept && !st; i++) {
        char name[NB_NAME_MAX];
        int len = snprintf(name, sizeof name, "%s.%s", prefix, es->kept[i].name);
        st = len < NB_NAME_MAX ? nb_param_list_add(out, name, es->kept[i].tensor, true) : NB_ERR_ARG;
    }
    if (st) out->count = length;
    return draft ? nbi_meta_commit(metadata, draft, st) : st;
}

nb_status nb_early_stopping_resume(nb_early_stopping *es, const nb_metadata *metadata, const char *prefix)
{
    const char *fn = "nb_early_stopping_resume";
    if (!es || !metadata) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !es ? "early stopping" : "metadata");
    int64_t epoch, best_epoch, bad, stopped, maximize, keep_best;
    double best;
    nb_status st = nbi_meta_get_int(metadata, prefix, "epoch", &epoch, fn);
    if (!st) st = nbi_meta_get_int(metadata, prefix, "best_epoch", &best_epoch, fn);
    if (!st) st = nbi_meta_get_double(metadata, prefix, "best", &best, fn);
    if (!st) st = nbi_meta_get_int(metadata, prefix, "bad_epochs", &bad, fn);
    if (!st) st = nbi_meta_get_int(metadata, prefix, "stopped", &stopped, fn);
    if (!st) st = nbi_meta_get_int(metadata, prefix, "maximize", &maximize, fn);
    if (!st) st = nbi_meta_get_int(metadata, prefix, "keep_best", &keep_best, fn);
    if (st) return st;
    /* The best would be read the other way round, or restored from copies that never held it. */
    if (maximize != es->maximize || keep_best != es->keep_best)
        return nbi_fail(NB_ERR_FORMAT, "%s: the checkpoint's early stopping has maximize %lld and keep_best %lld, this "
                        "one %d and %d", fn, (long long)maximize, (long long)keep_best, es->maximize, es->keep_best);
    /* A NaN metric is never a best; epochs without a better metric came after the best; epoch counts calls. */
    int64_t since_best = best_epoch >= 0 ? epoch - best_epoch - 1 : epoch;
    if (epoch < 0 || epoch > (INT64_C(1) << 53) || best_epoch < -1 || best_epoch >= epoch || bad < 0 ||
        bad > since_best || (stopped != 0 && stopped != 1) || isnan(best))
        return nbi_fail(NB_ERR_FORMAT, "%s: metadata holds epoch %lld, best_epoch %lld, best %g, bad_epochs %lld, "
                        "stopped %lld, which do not fit together", fn, (long long)epoch, (long long)best_epoch, best,
                        (long long)bad, (long long)stopped);
    if (best_epoch >= 0 && es->keep_best && !es->n_kept)
        return nbi_fail(NB_ERR_STATE, "%s: the checkpoint has best weights, but no copies were made to load them into "
                        "(call nb_early_stopping_state before loading)", fn);
    es->epoch = epoch;
    es->best_epoch = best_epoch;
    es->best = best_epoch >= 0 ? best : es->maximize ? -INFINITY : INFINITY;
    es->bad_epochs = bad;
    es->stopped = stopped;
    return NB_OK;
}

void nb_early_stopping_free(nb_early_stopping *es)
{
    if (!es) return;
    for (int i = 0; i < es->n_kept; i++) nbi_nn_free_tensor(es->kept[i].tensor);
    free(es->kept);
    free(es);
}
