/* Reduction and softmax kernels.
 *
 * Reductions over any set of dims iterate over the input's shape with the output broadcast along the reduced
 * dims (stride 0), so one strided loop serves every choice of dims and reads the input in memory order.
 * Reductions along a single dim that need the position (argmax) or a whole row at once (softmax) iterate over
 * the output instead, one row per output element, and scan the row with the input's stride along that dim.
 */
#include "kernels_reduce.h"

#include "kernels_binary.h" /* NBI_VEC_FOR */
#include "vecmath.h"

#include <math.h>
#include <string.h>

/* A header on the stack for t's data seen with another shape (same strides, same first element): the rows or
 * the first slice of t, without allocating. Only the fields the iterator and copies read are set. */
static void shaped_view(nbi_tensor *v, const nbi_tensor *t, const int64_t *shape)
{
    memset(v, 0, sizeof *v);
    v->dtype = t->dtype;
    v->ndim = t->ndim;
    v->offset = t->offset;
    v->storage = t->storage;
    if (t->ndim) {
        memcpy(v->shape, shape, (size_t)t->ndim * sizeof *shape);
        memcpy(v->stride, t->stride, (size_t)t->ndim * sizeof *t->stride);
    }
    v->numel = nbi_shape_numel(t->ndim, v->shape);
}

/* Number of input elements that go into one output element. */
static int64_t reduced_count(const nbi_tensor *out, const nbi_tensor *in)
{
    int64_t n = 1;
    for (int d = 0; d < in->ndim; d++)
        if (out->shape[d] != in->shape[d]) n *= in->shape[d];
    return n;
}

/* A zeroed f64 tensor of out's shape, for accumulating in double. */
static nbi_tensor *double_zeros(const nbi_tensor *out, const char *fn)
{
    nbi_tensor *acc = nbi_tensor_new(NB_F64, out->ndim, out->shape, fn);
    if (acc) memset(nbi_data_ptr(acc), 0, (size_t)acc->numel * sizeof(double));
    return acc;
}

/* ------------------------------------------------------------------------------------------------
 * Sum and mean
 * ---------------------------------------------------------------------------------------------- */
/* A contiguous run summed into one accumulator goes into LANES interleaved partial sums (element i into sum
 * i mod LANES), combined pairwise at the end: independent additions the compiler vectorizes, instead of one
 * chain of dependent ones, in an order fixed by the data's length alone (so results still do not depend on
 * the thread count). f32 runs take vecmath's sum, the same order compiled for the CPU's vector width. */
#define LANES NBI_SUM_LANES
#define LANE_SUM(TA, TI, x, n, total)                                                    \
    do {                                                                                 \
        TA part_[LANES] = {0};                                                           \
        int64_t i_ = 0;                                                                  \
        for (; i_ + LANES <= (n); i_ += LANES)                                           \
            NBI_IVDEP for (int j_ = 0; j_ < LANES; j_++) part_[j_] += (TA)(x)[i_ + j_];  \
        for (; i_ < (n); i_++) part_[i_ % LANES] += (TA)(x)[i_];                         \
        for (int w_ = LANES / 2; w_ > 0; w_ /= 2)                                        \
            for (int j_ = 0; j_ < w_; j_++) part_[j_] += part_[j_ + w_];                 \
        (total) = part_[0];                                                              \
    } while (0)

#define VECMATH_SUM(TA, TI, x, n, total) ((total) = nbi_vecmath_get()->sum((x), (n)))
#define SUM_LOOP(NAME, TA, TI, RUN_SUM)                                                  \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)          \
    {                                                                                    \
        (void)params;                                                                    \
        TA *acc = (TA *)p[0];                                                            \
        const TI *x = (const TI *)p[1];                                                  \
        if (s[0] == 0 && s[1] == 1) {                                                    \
            TA total;                                                                    \
            RUN_SUM(TA, TI, x, n, total);                                                \
            acc[0] += total;                                                             \
        } else if (s[0] == 0) {                                                          \
            TA total = 0;                                                                \
            for (int64_t i = 0; i < n; i++) total += (TA)x[i * s[1]];                    \
            acc[0] += total;                                                             \
        } else if (s[0] == 1 && s[1] == 1) { /* a row added into the sums: vectorizable */ \
            NBI_VEC_FOR(n, i, acc[i] += (TA)x[i]);                                       \
        } else {                                                                         \
            for (int64_t i = 0; i < n; i++) acc[i * s[0]] += (TA)x[i * s[1]];            \
        }                                                                                \
    }
SUM_LOOP(sum_f32, double, float, VECMATH_SUM)
SUM_LOOP(sum_f64, double, double, LANE_SUM)
SUM_LOOP(sum_i64, uint64_t, int64_t, LANE_SUM) /* unsigned: an overflowing sum wraps as PyTorch's, without undefined behaviour */

/* acc += in summed over the reduced dims; acc is f64 (f32 or f64 input) or i64 (i64 input). */
static void accumulate_sum(nbi_tensor *acc, const nbi_tensor *in)
{
    const nbi_tensor *ops[2] = {acc, in};
    nbi_iter it;
    nbi_iter_init_over(&it, in->ndim, in->shape, 2, ops);
    nbi_iter_run(&it, in->dtype == NB_F32 ? sum_f32 : in->dtype == NB_F64 ? sum_f64 : sum_i64, NULL);
}

bool nbi_reduce_sum(nbi_tensor *out, const nbi_tensor *in)
{
    nbi_tensor *acc = out;
    if (in->dtype == NB_F32) {
        acc = nbi_tensor_new(NB_F64, out->ndim, out->shape, "nb_sum");
        if (!acc) return false;
    }
    if (nbi_is_contiguous(acc)) memset(nbi_data_ptr(acc), 0, (size_t)acc->numel * nb_dtype_size(acc->dtype));
    else nb_fill(nbi_handle(acc), 0);
    accumulate_sum(acc, in);
    if (acc != out) {
        nbi_copy_into(out, acc);
        nbi_kill(acc);
    }
    return true;
}

/* Sums into a new f64 tensor of out's shape and divides each sum by the count. */
static nbi_tensor *double_mean(const nbi_tensor *out, const nbi_tensor *in, const char *fn)
{
    nbi_tensor *acc = double_zeros(out, fn);
    if (!acc) return NULL;
    accumulate_sum(acc, in);
    double n = (double)reduced_count(out, in), *a = nbi_data_ptr(acc);
    for (int64_t i = 0; i < acc->numel; i++) a[i] /= n; /* 0 / 0 = NaN: the mean of nothing */
    return acc;
}

bool nbi_reduce_mean(nbi_tensor *out, const nbi_tensor *in)
{
    nbi_tensor *acc = double_mean(out, in, "nb_mean");
    if (!acc) return false;
    nbi_copy_into(out, acc);
    nbi_kill(acc);
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Variance: the mean first, then the squared deviations from it (more accurate than E[x^2] - E[x]^2)
 * ---------------------------------------------------------------------------------------------- */
#define SQDEV_LOOP(NAME, TI)                                                                   \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)                \
    {                                                                                          \
        (void)params;                                                                          \
        double *acc = (double *)p[0];                                                          \
        const double *mean = (const double *)p[1];                                             \
        const TI *x = (const TI *)p[2];                                                        \
        if (s[0] == 0) {                                                                       \
            double total = 0, m = mean[0];                                                     \
            for (int64_t i = 0; i < n; i++) {                                                  \
                double d = (double)x[i * s[2]] - m;                                            \
                total += d * d;                                                                \
            }                                                                                  \
            acc[0] += total;                                                                   \
        } else {                                                                               \
            for (int64_t i = 0; i < n; i++) {                                                  \
                double d = (double)x[i * s[2]] - mean[i * s[1]];                               \
                acc[i * s[0]] += d * d;                                                        \
            }                                                                                  \
        }                                                                                      \
    }
SQDEV_LOOP(sqdev_f32, float)
SQDEV_LOOP(sqdev_f64, double)

bool nbi_reduce_var(nbi_tensor *out, const nbi_tensor *in, int64_t correction, bool take_sqrt)
{
    const char *fn = take_sqrt ? "nb_std" : "nb_var";
    nbi_tensor *mean = double_mean(out, in, fn), *acc = mean ? double_zeros(out, fn) : NULL;
    if (!acc) {
        if (mean) nbi_kill(mean);
        return false;
    }
    const nbi_tensor *ops[3] = {acc, mean, in};
    nbi_iter it;
    nbi_iter_init_over(&it, in->ndim, in->shape, 3, ops);
    nbi_iter_run(&it, in->dtype == NB_F32 ? sqdev_f32 : sqdev_f64, NULL);
    int64_t n = reduced_count(out, in) - correction;
    double divisor = n > 0 ? (double)n : 0.0, *a = nbi_data_ptr(acc);
    for (int64_t i = 0; i < acc->numel; i++) a[i] = take_sqrt ? sqrt(a[i] / divisor) : a[i] / divisor;
    nbi_copy_into(out, acc);
    nbi_kill(acc);
    nbi_kill(mean);
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Max and min over any dims. The output starts as the first slice of the input, so no identity value is
 * needed (there is none for NaN-propagating float max, nor a convenient one for every integer type).
 * ---------------------------------------------------------------------------------------------- */
#define IS_NAN_F(v) ((v) != (v))
#define IS_NAN_I(v) 0
#define EXTREME_LOOP(NAME, T, CMP, IS_NAN)                                                     \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)                \
    {                                                                                          \
        (void)params;                                                                          \
        T *o = (T *)p[0];                                                                      \
        const T *x = (const T *)p[1];                                                          \
        if (s[0] == 0) {                                                                       \
            T best = o[0];                                                                     \
            int64_t i = 0;                                                                     \
            if (s[1] == 1 && n >= LANES) { /* LANES running extremes, as LANE_SUM */           \
                T lane[LANES];                                                                 \
                for (int j = 0; j < LANES; j++) lane[j] = best;                                \
                for (; i + LANES <= n; i += LANES)                                             \
                    NBI_IVDEP for (int j = 0; j < LANES; j++) {                                \
                        T v = x[i + j];                                                        \
                        lane[j] = v CMP lane[j] || IS_NAN(v) ? v : lane[j];                    \
                    }                                                                          \
                for (int j = 0; j < LANES; j++)                                                \
                    if (lane[j] CMP best || IS_NAN(lane[j])) best = lane[j];                   \
            }                                                                                  \
            for (; i < n; i++) {                                                               \
                T v = x[i * s[1]];                                                             \
                if (v CMP best || IS_NAN(v)) best = v;                                         \
            }                                                                                  \
            o[0] = best;                                                                       \
        } else {                                                                               \
            for (int64_t i = 0; i < n; i++) {                                                  \
                T v = x[i * s[1]];                                                             \
                if (v CMP o[i * s[0]] || IS_NAN(v)) o[i * s[0]] = v;                           \
            }                                                                                  \
        }                                                                                      \
    }
#define EXTREME_LOOPS(KIND, CMP)                                  \
    EXTREME_LOOP(KIND##_f32, float, CMP, IS_NAN_F)                \
    EXTREME_LOOP(KIND##_f64, double, CMP, IS_NAN_F)               \
    EXTREME_LOOP(KIND##_i64, int64_t, CMP, IS_NAN_I)              \
    EXTREME_LOOP(KIND##_bool, uint8_t, CMP, IS_NAN_I)
EXTREME_LOOPS(max, >)
EXTREME_LOOPS(min, <)

static const nbi_loop_fn extreme_loops[2][4] = {
    {[NB_F32] = min_f32, [NB_F64] = min_f64, [NB_I64] = min_i64, [NB_BOOL] = min_bool},
    {[NB_F32] = max_f32, [NB_F64] = max_f64, [NB_I64] = max_i64, [NB_BOOL] = max_bool},
};

void nbi_reduce_extreme(nbi_tensor *out, const nbi_tensor *in, bool is_max)
{
    if (in->numel == 0) return;
    nbi_tensor first;
    shaped_view(&first, in, out->shape);
    nbi_copy_into(out, &first);
    const nbi_tensor *ops[2] = {out, in};
    nbi_iter it;
    nbi_iter_init_over(&it, in->ndim, in->shape, 2, ops);
    nbi_iter_run(&it, extreme_loops[is_max][in->dtype], NULL);
}

/* ------------------------------------------------------------------------------------------------
 * log-sum-exp: max, then sum of exp(x - max), then max + log(sum). An infinite max is not subtracted
 * (inf - inf would be NaN): all -inf gives log(0) = -inf, a +inf element gives +inf, as in PyTorch.
 * ---------------------------------------------------------------------------------------------- */
static inline double lse_shift(double m) { return isinf(m) ? 0.0 : m; }

#define SUMEXP_LOOP(NAME, T)                                                                   \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)                \
    {                                                                                          \
        (void)params;                                                                          \
        double *acc = (double *)p[0];                                                          \
        const T *m = (const T *)p[1], *x = (const T *)p[2];                                    \
        if (s[0] == 0) {                                                                       \
            double total = 0, shift = lse_shift(m[0]);                                         \
            for (int64_t i = 0; i < n; i++) total += exp((double)x[i * s[2]] - shift);        \
            acc[0] += total;                                                                   \
        } else {                                                                               \
            for (int64_t i = 0; i < n; i++)                                                    \
                acc[i * s[0]] += exp((double)x[i * s[2]] - lse_shift(m[i * s[1]]));           \
        }                                                                                      \
    }
#define LSE_FINISH_LOOP(NAME, T)                                                               \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)                \
    {                                                                                          \
        (void)params;                                                                          \
        T *o = (T *)p[0];                                                                      \
        const double *acc = (const double *)p[1];                                              \
        const T *m = (const T *)p[2];                                                          \
        for (int64_t i = 0; i < n; i++) o[i * s[0]] = (T)(log(acc[i * s[1]]) + lse_shift(m[i * s[2]])); \
    }
SUMEXP_LOOP(sumexp_f32, float)
SUMEXP_LOOP(sumexp_f64, double)
LSE_FINISH_LOOP(lse_finish_f32, float)
LSE_FINISH_LOOP(lse_finish_f64, double)

bool nbi_reduce_logsumexp(nbi_tensor *out, const nbi_tensor *in)
{
    const char *fn = "nb_logsumexp";
    if (in->numel == 0) { /* the log of an empty sum */
        nb_fill(nbi_handle(out), -INFINITY);
        return true;
    }
    nbi_tensor *m = nbi_tensor_new(in->dtype, out->ndim, out->shape, fn), *acc = m ? double_zeros(out, fn) : NULL;
    if (!acc) {
        if (m) nbi_kill(m);
        return false;
    }
    nbi_reduce_extreme(m, in, true);
    const nbi_tensor *ops[3] = {acc, m, in};
    nbi_iter it;
    nbi_iter_init_over(&it, in->ndim, in->shape, 3, ops);
    nbi_iter_run(&it, in->dtype == NB_F32 ? sumexp_f32 : sumexp_f64, NULL);
    const nbi_tensor *fin[2] = {acc, m};
    nbi_iter_init(&it, out, 2, fin);
    nbi_iter_run(&it, in->dtype == NB_F32 ? lse_finish_f32 : lse_finish_f64, NULL);
    nbi_kill(acc);
    nbi_kill(m);
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Row kernels: one output element per row along `dim`. ptrs[k] point at the first element of a row;
 * the row itself is n elements `stride` apart.
 * ---------------------------------------------------------------------------------------------- */
/* in's shape with size 1 at dim (in's own shape for a 0-d tensor), and the row's length and stride. */
static void row_layout(const nbi_tensor *in, int dim, int64_t *keep, int64_t *n, int64_t *stride)
{
    if (in->ndim) memcpy(keep, in->shape, (size_t)in->ndim * sizeof *keep);
    *n = in->ndim ? in->shape[dim] : 1;
    *stride = in->ndim ? in->stride[dim] : 0;
    if (in->ndim) keep[dim] = 1;
}

typedef struct arg_params {
    int64_t n, stride;
    bool is_max, with_values;
} arg_params;

/* Operands: indices (i64), in, and values (in's dtype) when with_values. A NaN ends the scan: it is the
 * answer for max and min alike. */
#define ARG_LOOP(NAME, T, IS_NAN)                                                              \
    static void NAME(int64_t count, char **p, const int64_t *s, const void *params)            \
    {                                                                                          \
        const arg_params *a = params;                                                          \
        for (int64_t i = 0; i < count; i++) {                                                  \
            const T *row = (const T *)p[1] + i * s[1];                                         \
            T best = row[0];                                                                   \
            int64_t at = 0;                                                                    \
            for (int64_t k = 1; k < a->n && !IS_NAN(best); k++) {                              \
                T v = row[k * a->stride];                                                      \
                if ((a->is_max ? v > best : v < best) || IS_NAN(v)) {                          \
                    best = v;                                                                  \
                    at = k;                                                                    \
                }                                                                              \
            }                                                                                  \
            ((int64_t *)p[0])[i * s[0]] = at;                                                  \
            if (a->with_values) ((T *)p[2])[i * s[2]] = best;                                  \
        }                                                                                      \
    }
ARG_LOOP(arg_f32, float, IS_NAN_F)
ARG_LOOP(arg_f64, double, IS_NAN_F)
ARG_LOOP(arg_i64, int64_t, IS_NAN_I)
ARG_LOOP(arg_bool, uint8_t, IS_NAN_I)

void nbi_reduce_arg(nbi_tensor *values, nbi_tensor *indices, const nbi_tensor *in, int dim, bool is_max)
{
    static const nbi_loop_fn loops[4] = {[NB_F32] = arg_f32, [NB_F64] = arg_f64, [NB_I64] = arg_i64,
                                         [NB_BOOL] = arg_bool};
    if (in->numel == 0) return;
    int64_t keep[NB_MAX_DIMS];
    arg_params a = {.is_max = is_max, .with_values = values != NULL};
    row_layout(in, dim, keep, &a.n, &a.stride);
    nbi_tensor rows;
    shaped_view(&rows, in, keep);
    const nbi_tensor *ops[3] = {indices, &rows, values};
    nbi_iter it;
    nbi_iter_init_over(&it, in->ndim, keep, values ? 3 : 2, ops);
    nbi_iter_run(&it, loops[in->dtype], &a);
}

typedef struct softmax_params {
    int64_t n, in_stride, out_stride;
    bool log;
} softmax_params;

/* Operands: out, in. A row of all -inf (or with a NaN or +inf) gives NaN, as in PyTorch. */
#define SOFTMAX_LOOP(NAME, T, EXP)                                                             \
    static void NAME(int64_t count, char **p, const int64_t *s, const void *params)            \
    {                                                                                          \
        const softmax_params *a = params;                                                      \
        const int64_t n = a->n, is = a->in_stride, os = a->out_stride;                         \
        for (int64_t i = 0; i < count; i++) {                                                  \
            T *y = (T *)p[0] + i * s[0];                                                       \
            const T *x = (const T *)p[1] + i * s[1];                                           \
            T m = x[0];                                                                        \
            for (int64_t k = 1; k < n; k++)                                                    \
                if (x[k * is] > m) m = x[k * is];                                              \
            double sum = 0;                                                                    \
            if (a->log) {                                                                      \
                for (int64_t k = 0; k < n; k++) sum += EXP(x[k * is] - m);                     \
                double log_sum = log(sum);                                                     \
                for (int64_t k = 0; k < n; k++) y[k * os] = (T)((double)(x[k * is] - m) - log_sum); \
            } else {                                                                           \
                for (int64_t k = 0; k < n; k++) {                                              \
                    T e = EXP(x[k * is] - m);                                                  \
                    y[k * os] = e;                                                             \
                    sum += e;                                                                  \
                }                                                                              \
                double inv = 1.0 / sum;                                                        \
                for (int64_t k = 0; k < n; k++) y[k * os] = (T)(y[k * os] * inv);              \
            }                                                                                  \
        }                                                                                      \
    }
SOFTMAX_LOOP(softmax_f64, double, exp)

/* f32 rows: exp(x - max) with the sum accumulating in double. Rows of at most SHORT_ROW elements (a handful of
 * classes) take the C library's expf and sum in index order: one vector exp's chain of dependent steps takes
 * longer than that many scalar calls, which overlap. Longer rows take the vector code (vecmath.h) and sum in
 * NBI_SUM_LANES interleaved partial sums, element k into sum k mod NBI_SUM_LANES, combined pairwise at the end.
 * Either is a fixed order whatever the stride (a strided row is gathered in chunks that are multiples of
 * NBI_SUM_LANES), so the fused cross-entropy, which sums the same way, agrees with log_softmax to the bit. */
#define SOFTMAX_CHUNK 256
#define SHORT_ROW 16
static double exp_shifted_f32(float *out, int64_t out_stride, const float *x, int64_t stride, int64_t n, float shift)
{
    const nbi_vecmath *vm = nbi_vecmath_get();
    float buf[SOFTMAX_CHUNK];
    if (n <= SHORT_ROW) {
        double sum = 0;
        for (int64_t k = 0; k < n; k++) {
            float e = expf(x[k * stride] - shift);
            sum += e;
            if (out) out[k * out_stride] = e;
        }
        return sum;
    }
    double part[NBI_SUM_LANES] = {0};
    for (int64_t k0 = 0; k0 < n; k0 += SOFTMAX_CHUNK) {
        const int64_t len = n - k0 < SOFTMAX_CHUNK ? n - k0 : SOFTMAX_CHUNK;
        if (stride == 1 && out && out_stride == 1) {
            vm->exp_shifted(out + k0, x + k0, len, shift, part);
            continue;
        }
        if (stride == 1) memcpy(buf, x + k0, (size_t)len * sizeof *buf);
        else for (int64_t k = 0; k < len; k++) buf[k] = x[(k0 + k) * stride];
        vm->exp_shifted(buf, buf, len, shift, part);
        if (out) for (int64_t k = 0; k < len; k++) out[(k0 + k) * out_stride] = buf[k];
    }
    for (int w = NBI_SUM_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++) part[j] += part[j + w];
    return part[0];
}

double nbi_sum_exp_shifted_f32(const float *x, int64_t n, int64_t stride, float shift)
{
    return exp_shifted_f32(NULL, 0, x, stride, n, shift);
}

/* The largest element, NaNs skipped (a NaN then makes x - max and the sum NaN). Contiguous rows longer than
 * SHORT_ROW go through the vector code; the maximum is exact, so it finds the same value. */
static float row_max_f32(const nbi_vecmath *vm, const float *x, int64_t n, int64_t stride)
{
    if (stride == 1 && n > SHORT_ROW) return vm->max(x, n);
    float m = x[0];
    for (int64_t k = 1; k < n; k++)
        if (x[k * stride] > m) m = x[k * stride];
    return m;
}

/* The normalizing passes of long contiguous rows go through the vector code too, rounding the same way. */
static void softmax_f32(int64_t count, char **p, const int64_t *s, const void *params)
{
    const softmax_params *a = params;
    const int64_t n = a->n, is = a->in_stride, os = a->out_stride;
    const nbi_vecmath *vm = nbi_vecmath_get();
    const bool vector = n > SHORT_ROW;
    for (int64_t i = 0; i < count; i++) {
        float *y = (float *)p[0] + i * s[0];
        const float *x = (const float *)p[1] + i * s[1];
        const float m = row_max_f32(vm, x, n, is);
        if (a->log) {
            const double log_sum = log(exp_shifted_f32(NULL, 0, x, is, n, m));
            if (vector && is == 1 && os == 1) vm->shift_scale(y, x, n, m, 1.0, log_sum);
            else for (int64_t k = 0; k < n; k++) y[k * os] = (float)((double)(x[k * is] - m) - log_sum);
        } else {
            const double inv = 1.0 / exp_shifted_f32(y, os, x, is, n, m);
            if (vector && os == 1) vm->shift_scale(y, y, n, 0.0f, inv, 0.0);
            else for (int64_t k = 0; k < n; k++) y[k * os] = (float)(y[k * os] * inv);
        }
    }
}

void nbi_softmax_kernel(nbi_tensor *out, const nbi_tensor *in, int dim, bool log)
{
    if (in->numel == 0) return;
    int64_t keep[NB_MAX_DIMS];
    softmax_params a = {.log = log};
    row_layout(in, dim, keep, &a.n, &a.in_stride);
    a.out_stride = out->ndim ? out->stride[dim] : 0;
    nbi_tensor out_rows, in_rows;
    shaped_view(&out_rows, out, keep);
    shaped_view(&in_rows, in, keep);
    const nbi_tensor *ops[2] = {&out_rows, &in_rows};
    nbi_iter it;
    nbi_iter_init_over(&it, in->ndim, keep, 2, ops);
    nbi_iter_run(&it, in->dtype == NB_F32 ? softmax_f32 : softmax_f64, &a);
}
