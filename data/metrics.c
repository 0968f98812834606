/* Classification metrics: accuracy, and a confusion matrix with per-class and macro precision, recall and F1
 * (scikit-learn's definitions with zero_division=0) and a printed report. */
#include "internal.h"
#include "nb_data.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* pred and target resolved and of the same shape; NULL with an error naming fn otherwise. */
static bool same_shape(const char *fn, nb_tensor *ph, nb_tensor *th, nbi_tensor **pred, nbi_tensor **target)
{
    *pred = nbi_resolve(ph, fn, "pred");
    *target = nbi_resolve(th, fn, "target");
    if (!*pred || !*target) return false;
    const nbi_tensor *p = *pred, *t = *target;
    if (p->ndim != t->ndim || memcmp(p->shape, t->shape, (size_t)p->ndim * sizeof *p->shape) != 0) {
        char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
        nbi_error(NB_ERR_SHAPE, "%s: pred %s and target %s must have the same shape", fn,
                  nbi_shape_fmt(a, p->ndim, p->shape), nbi_shape_fmt(b, t->ndim, t->shape));
        return false;
    }
    return true;
}

double nb_accuracy(nb_tensor *ph, nb_tensor *th)
{
    const char *fn = "nb_accuracy";
    nbi_tensor *pred, *target;
    if (!same_shape(fn, ph, th, &pred, &target)) return NAN;
    if (pred->numel == 0) {
        char a[NBI_SHAPE_STR];
        nbi_error(NB_ERR_VALUE, "%s: no predictions (shape %s)", fn, nbi_shape_fmt(a, pred->ndim, pred->shape));
        return NAN;
    }
    int64_t equal = 0;
    for (int64_t i = 0; i < pred->numel; i++) equal += nbi_get_flat(pred, i) == nbi_get_flat(target, i);
    return (double)equal / (double)pred->numel;
}

nb_confusion *nb_confusion_new(int64_t num_classes)
{
    const char *fn = "nb_confusion_new";
    /* the bound keeps num_classes^2 counts addressable */
    if (num_classes < 1 || num_classes > (int64_t)1 << 24)
        return nbi_error(NB_ERR_ARG, "%s: num_classes must be in [1, 2^24], got %lld", fn, (long long)num_classes);
    nb_confusion *c = malloc(sizeof *c);
    int64_t *counts = calloc((size_t)(num_classes * num_classes), sizeof *counts);
    if (!c || !counts) {
        free(c);
        free(counts);
        return nbi_error(NB_ERR_NOMEM, "%s: out of memory for %lld classes", fn, (long long)num_classes);
    }
    nbi_count_system_alloc();
    nbi_count_system_alloc();
    c->num_classes = num_classes;
    c->counts = counts;
    return c;
}

nb_status nb_confusion_add(nb_confusion *c, nb_tensor *ph, nb_tensor *th)
{
    const char *fn = "nb_confusion_add";
    if (!c) return nbi_fail(NB_ERR_NULL, "%s: confusion is NULL", fn);
    nbi_tensor *pred, *target;
    if (!same_shape(fn, ph, th, &pred, &target)) return nb_last_status();
    char a[NBI_SHAPE_STR];
    const nbi_tensor *both[2] = {pred, target};
    const char *names[2] = {"pred", "target"};
    for (int k = 0; k < 2; k++) {
        const nbi_tensor *t = both[k];
        if (t->dtype != NB_I64)
            return nbi_fail(NB_ERR_DTYPE, "%s: %s must hold i64 class indices, got %s (shape %s)", fn, names[k],
                            nb_dtype_name(t->dtype), nbi_shape_fmt(a, t->ndim, t->shape));
        /* checked before counting anything, so a failed call leaves the matrix unchanged */
        for (int64_t i = 0; i < t->numel; i++) {
            double v = nbi_get_flat(t, i);
            if (v < 0 || v >= (double)c->num_classes)
                return nbi_fail(NB_ERR_INDEX, "%s: %s class %lld at position %lld of %s is out of range for %lld classes",
                                fn, names[k], (long long)v, (long long)i, nbi_shape_fmt(a, t->ndim, t->shape),
                                (long long)c->num_classes);
        }
    }
    for (int64_t i = 0; i < pred->numel; i++) {
        int64_t p = (int64_t)nbi_get_flat(pred, i), t = (int64_t)nbi_get_flat(target, i);
        c->counts[t * c->num_classes + p]++;
    }
    return NB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Scores. The unchecked versions serve the printer, which must not record errors.
 * ---------------------------------------------------------------------------------------------- */
typedef struct scores {
    int64_t tp, predicted, actual; /* TP, TP + FP, TP + FN */
} scores;

static scores class_scores(const nb_confusion *c, int64_t k)
{
    scores s = {c->counts[k * c->num_classes + k], 0, 0};
    for (int64_t j = 0; j < c->num_classes; j++) {
        s.predicted += c->counts[j * c->num_classes + k];
        s.actual += c->counts[k * c->num_classes + j];
    }
    return s;
}

static double ratio(int64_t num, int64_t den) { return den ? (double)num / (double)den : 0.0; }

enum metric { PRECISION, RECALL, F1 };

static double metric_of(const nb_confusion *c, int64_t k, enum metric m)
{
    scores s = class_scores(c, k);
    double p = ratio(s.tp, s.predicted), r = ratio(s.tp, s.actual);
    switch (m) {
    case PRECISION: return p;
    case RECALL: return r;
    default: return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
    }
}

static double macro_of(const nb_confusion *c, enum metric m)
{
    double sum = 0;
    for (int64_t k = 0; k < c->num_classes; k++) sum += metric_of(c, k, m);
    return sum / (double)c->num_classes;
}

static int64_t total_of(const nb_confusion *c)
{
    int64_t total = 0;
    for (int64_t i = 0; i < c->num_classes * c->num_classes; i++) total += c->counts[i];
    return total;
}

static double accuracy_of(const nb_confusion *c)
{
    int64_t correct = 0;
    for (int64_t k = 0; k < c->num_classes; k++) correct += c->counts[k * c->num_classes + k];
    int64_t total = total_of(c);
    return total ? (double)correct / (double)total : NAN;
}

static bool checked(const nb_confusion *c, int64_t cls, const char *fn)
{
    if (!c) {
        nbi_error(NB_ERR_NULL, "%s: confusion is NULL", fn);
        return false;
    }
    if (cls < 0 || cls >= c->num_classes) {
        nbi_error(NB_ERR_INDEX, "%s: class %lld is out of range for %lld classes", fn, (long long)cls,
                  (long long)c->num_classes);
        return false;
    }
    return true;
}

double nb_confusion_accuracy(const nb_confusion *c)
{
    const char *fn = "nb_confusion_accuracy";
    if (!checked(c, 0, fn)) return NAN;
    double acc = accuracy_of(c);
    if (isnan(acc)) nbi_error(NB_ERR_VALUE, "%s: no predictions added yet", fn);
    return acc;
}

double nb_confusion_precision(const nb_confusion *c, int64_t cls)
{
    return checked(c, cls, "nb_confusion_precision") ? metric_of(c, cls, PRECISION) : NAN;
}

double nb_confusion_recall(const nb_confusion *c, int64_t cls)
{
    return checked(c, cls, "nb_confusion_recall") ? metric_of(c, cls, RECALL) : NAN;
}

double nb_confusion_f1(const nb_confusion *c, int64_t cls)
{
    return checked(c, cls, "nb_confusion_f1") ? metric_of(c, cls, F1) : NAN;
}

double nb_confusion_macro_precision(const nb_confusion *c)
{
    return checked(c, 0, "nb_confusion_macro_precision") ? macro_of(c, PRECISION) : NAN;
}

double nb_confusion_macro_recall(const nb_confusion *c)
{
    return checked(c, 0, "nb_confusion_macro_recall") ? macro_of(c, RECALL) : NAN;
}

double nb_confusion_macro_f1(const nb_confusion *c)
{
    return checked(c, 0, "nb_confusion_macro_f1") ? macro_of(c, F1) : NAN;
}

/* ------------------------------------------------------------------------------------------------
 * Printing
 * ---------------------------------------------------------------------------------------------- */
/* Name of class k: the caller's, or its number written into buf. */
static const char *class_name(const char *const *names, int64_t k, char *buf, size_t size)
{
    if (names && names[k]) return names[k];
    snprintf(buf, size, "%lld", (long long)k);
    return buf;
}

static int digits(int64_t v) { return snprintf(NULL, 0, "%lld", (long long)v); }

nb_status nb_confusion_print(const nb_confusion *c, FILE *f, const char *const *class_names)
{
    const char *fn = "nb_confusion_print";
    if (!c || !f) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, c ? "stream" : "confusion");
    int64_t n = c->num_classes, total = total_of(c), max_count = 0;
    for (int64_t i = 0; i < n * n; i++)
        if (c->counts[i] > max_count) max_count = c->counts[i];
    char buf[32];
    /* label column wide enough for every row label of both tables; matrix columns for every name and count */
    const char *corner = "true\\pred";
    int label_w = (int)strlen(corner), cell_w = digits(max_count);
    for (int64_t k = 0; k < n; k++) {
        int len = (int)strlen(class_name(class_names, k, buf, sizeof buf));
        if (len > label_w) label_w = len;
        if (len > cell_w) cell_w = len;
    }
    int support_w = digits(total) > 7 ? digits(total) : 7;

    fprintf(f, "confusion matrix (rows: true class, columns: predicted class)\n%-*s", label_w, corner);
    for (int64_t k = 0; k < n; k++) fprintf(f, "  %*s", cell_w, class_name(class_names, k, buf, sizeof buf));
    fputc('\n', f);
    for (int64_t t = 0; t < n; t++) {
        fprintf(f, "%-*s", label_w, class_name(class_names, t, buf, sizeof buf));
        for (int64_t p = 0; p < n; p++) fprintf(f, "  %*lld", cell_w, (long long)c->counts[t * n + p]);
        fputc('\n', f);
    }

    fprintf(f, "\n%-*s  %9s  %9s  %9s  %*s\n", label_w, "class", "precision", "recall", "f1", support_w, "support");
    for (int64_t k = 0; k < n; k++) {
        fprintf(f, "%-*s  %9.4f  %9.4f  %9.4f  %*lld\n", label_w, class_name(class_names, k, buf, sizeof buf),
                metric_of(c, k, PRECISION), metric_of(c, k, RECALL), metric_of(c, k, F1), support_w,
                (long long)class_scores(c, k).actual);
    }
    fprintf(f, "%-*s  %9.4f  %9.4f  %9.4f  %*lld\n", label_w, "macro avg", macro_of(c, PRECISION),
            macro_of(c, RECALL), macro_of(c, F1), support_w, (long long)total);
    fprintf(f, "%-*s  %9s  %9s  %9.4f  %*lld\n", label_w, "accuracy", "", "", accuracy_of(c), support_w,
            (long long)total);
    /* the text may still sit in the stream's buffer, where a full device cannot refuse it yet */
    if (fflush(f) != 0 || ferror(f))
        return nbi_fail(NB_ERR_IO, "%s: writing the report failed: %s", fn, strerror(errno));
    return NB_OK;
}

void nb_confusion_free(nb_confusion *c)
{
    if (!c) return;
    free(c->counts);
    free(c);
}
