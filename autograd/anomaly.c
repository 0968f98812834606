/* Anomaly detection: finds the op where a NaN or an infinity first appears, in forward or in backward.
 * A debugging mode: every result is scanned, so it costs a pass over each op's output. */
#include "autograd_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void nb_set_detect_anomaly(bool on)
{
    nbi_thread_state *ts = nbi_thread();
    if (on && !ts->detect_anomaly) ts->anomaly_ops = 0;
    ts->detect_anomaly = on;
}

bool nb_is_anomaly_enabled(void) { return nbi_thread()->detect_anomaly; }

/* What a float tensor holds: the first NaN, the first infinity (flat indices, -1 when none) and the finite range. */
typedef struct scan {
    int64_t first_nan, first_inf;
    double min, max;
} scan;

static double element(const nbi_tensor *t, int64_t flat)
{
    int64_t offset = t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        offset += (flat % t->shape[d]) * t->stride[d];
        flat /= t->shape[d];
    }
    const char *base = (const char *)t->storage->data;
    return t->dtype == NB_F32 ? (double)((const float *)base)[offset] : ((const double *)base)[offset];
}

static scan scan_tensor(const nbi_tensor *t)
{
    scan s = {-1, -1, INFINITY, -INFINITY};
    if (t->dtype != NB_F32 && t->dtype != NB_F64) return s;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = element(t, i);
        if (isnan(v)) {
            if (s.first_nan < 0) s.first_nan = i;
        } else if (isinf(v)) {
            if (s.first_inf < 0) s.first_inf = i;
        } else {
            s.min = v < s.min ? v : s.min;
            s.max = v > s.max ? v : s.max;
        }
    }
    return s;
}

/* "x = 'h' (2, 3) f32 in [-1, 2]" (the label only when there is one; the range of the finite values, and
 * whether NaN or infinities are present). */
static void describe(char *buf, size_t size, const char *name, const nbi_tensor *t)
{
    char shape[NBI_SHAPE_STR];
    nbi_shape_fmt(shape, t->ndim, t->shape);
    int n = snprintf(buf, size, "%s = %s%s%s%s %s", name, t->label[0] ? "'" : "", t->label, t->label[0] ? "' " : "",
                     shape, nb_dtype_name(t->dtype));
    if (n < 0 || (size_t)n >= size || (t->dtype != NB_F32 && t->dtype != NB_F64)) return;
    scan s = scan_tensor(t);
    if (s.min <= s.max) n += snprintf(buf + n, size - (size_t)n, " in [%.6g, %.6g]", s.min, s.max);
    if ((size_t)n < size && s.first_nan >= 0) n += snprintf(buf + n, size - (size_t)n, " with NaN");
    if ((size_t)n < size && s.first_inf >= 0) snprintf(buf + n, size - (size_t)n, " with infinities");
}

/* The name the trace and the formulas use for input i of op ("x", or "a", "b", ... or the op's own names). */
static void input_name(char *buf, size_t size, const nbi_op *op, int n, int i)
{
    if (!op->inputs) {
        if (n == 1) snprintf(buf, size, "x");
        else snprintf(buf, size, "%c", 'a' + (i < 26 ? i : 25));
        return;
    }
    const char *p = op->inputs;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, ',');
        if (p) p++;
    }
    while (p && *p == ' ') p++;
    size_t len = p ? strcspn(p, ",") : 0;
    if (!len) {
        snprintf(buf, size, "input %d", i);
        return;
    }
    snprintf(buf, size, "%.*s", (int)(len < size - 1 ? len : size - 1), p);
}

nb_status nbi_anomaly_forward(nbi_tensor *out, const nbi_op *op, int n, nbi_tensor *const *inputs)
{
    nbi_thread_state *ts = nbi_thread();
    out->anomaly_seq = ++ts->anomaly_ops;
    if (out->dtype != NB_F32 && out->dtype != NB_F64) return NB_OK;
    scan s = scan_tensor(out);
    if (s.first_nan < 0 && s.first_inf < 0) return NB_OK;
    bool inputs_nan = false, inputs_inf = false;
    for (int i = 0; i < n; i++) {
        scan si = scan_tensor(inputs[i]);
        inputs_nan |= si.first_nan >= 0;
        inputs_inf |= si.first_inf >= 0;
    }
    bool bad_nan = s.first_nan >= 0 && !inputs_nan;
    bool bad_inf = s.first_inf >= 0 && !inputs_nan && !inputs_inf && !op->writes_given_value;
    if (!bad_nan && !bad_inf) return NB_OK;
    char shape[NBI_SHAPE_STR], list[1024] = "", one[256], name[32];
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof list; i++) {
        input_name(name, sizeof name, op, n, i);
        describe(one, sizeof one, name, inputs[i]);
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? "; " : "", one);
    }
    nbi_fail(NB_ERR_VALUE,
             "nb_%s: anomaly: output %s contains %s at index %lld, %s; op #%llu since anomaly detection was turned "
             "on; inputs: %s",
             op->name, nbi_shape_fmt(shape, out->ndim, out->shape), bad_nan ? "NaN" : "an infinity",
             (long long)(bad_nan ? s.first_nan : s.first_inf),
             bad_nan ? "which no input had" : "computed from finite inputs", (unsigned long long)out->anomaly_seq,
             n ? list : "none");
    return NB_ERR_VALUE;
}

nb_status nbi_anomaly_backward(const char *fn, const nbi_tensor *node, int i, const nbi_tensor *grad)
{
    scan s = scan_tensor(grad);
    if (s.first_nan < 0 && s.first_inf < 0) return NB_OK;
    char name[32], in[256], out[256], seq[64] = "";
    input_name(name, sizeof name, node->op, node->n_inputs, i);
    describe(in, sizeof in, name, node->inputs[i]);
    describe(out, sizeof out, "out", node);
    if (node->anomaly_seq)
        snprintf(seq, sizeof seq, " (op #%llu of the forward pass)", (unsigned long long)node->anomaly_seq);
    nbi_fail(NB_ERR_VALUE,
             "%s: anomaly: the backward of '%s'%s returned a gradient with %s at index %lld for input %d (%s); its "
             "output was %s",
             fn, node->op->name, seq, s.first_nan >= 0 ? "NaN" : "an infinity",
             (long long)(s.first_nan >= 0 ? s.first_nan : s.first_inf), i, in, out);
    return NB_ERR_VALUE;
}
