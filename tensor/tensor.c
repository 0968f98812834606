/* Tensor creation, inspection, element access, copies and dtype conversion. */
#include "internal.h"

#include <math.h>
#include <string.h>

const char *nb_dtype_name(nb_dtype dtype)
{
    switch (dtype) {
    case NB_F32: return "f32";
    case NB_F64: return "f64";
    case NB_I64: return "i64";
    case NB_BOOL: return "bool";
    }
    return "?";
}

size_t nb_dtype_size(nb_dtype dtype)
{
    switch (dtype) {
    case NB_F32: return 4;
    case NB_F64: return 8;
    case NB_I64: return 8;
    case NB_BOOL: return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * Scalar loads and stores through double
 * ---------------------------------------------------------------------------------------------- */
static double load(const void *p, nb_dtype dt)
{
    switch (dt) {
    case NB_F32: return *(const float *)p;
    case NB_F64: return *(const double *)p;
    case NB_I64: return (double)*(const int64_t *)p;
    case NB_BOOL: return *(const uint8_t *)p;
    }
    return NAN;
}

static int64_t to_i64(double v)
{
    if (isnan(v)) return 0;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}

/* A value the caller gives for an integer tensor must be representable: PyTorch refuses NaN, infinities and
 * out-of-range values there too ("cannot be converted without overflow") rather than store a saturated number.
 * Fractions are truncated toward zero as in PyTorch; bool takes any value (non-zero is true). */
static bool value_fits(nb_dtype dt, double v, const char *fn)
{
    if (dt != NB_I64 || (v >= -0x1p63 && v < 0x1p63)) return true;
    nbi_error(NB_ERR_VALUE, "%s: %g cannot be stored in an i64 tensor (not a finite number in int64's range)", fn,
              v);
    return false;
}

static void store(void *p, nb_dtype dt, double v)
{
    switch (dt) {
    case NB_F32: *(float *)p = (float)v; break;
    case NB_F64: *(double *)p = v; break;
    case NB_I64: *(int64_t *)p = to_i64(v); break;
    case NB_BOOL: *(uint8_t *)p = v != 0; break;
    }
}

/* Offset (in elements) of row-major element i. */
static int64_t flat_offset(const nbi_tensor *t, int64_t i)
{
    int64_t off = t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->stride[d];
        i /= t->shape[d];
    }
    return off;
}

double nbi_get_flat(const nbi_tensor *t, int64_t i)
{
    return load((char *)t->storage->data + flat_offset(t, i) * (int64_t)nb_dtype_size(t->dtype), t->dtype);
}

/* ------------------------------------------------------------------------------------------------
 * Conversion copies: one inner loop per (destination, source) dtype pair.
 * ---------------------------------------------------------------------------------------------- */
#define CONVERT_LOOP(NAME, TD, TS, EXPR)                                                          \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)                 \
    {                                                                                          \
        (void)params;                                                                          \
        TD *d = (TD *)p[0];                                                                    \
        const TS *x = (const TS *)p[1];                                                        \
        if (s[0] == 1 && s[1] == 1)                                                            \
            for (int64_t i = 0; i < n; i++) { TS v = x[i]; d[i] = (EXPR); }                    \
        else                                                                                   \
            for (int64_t i = 0; i < n; i++) { TS v = x[i * s[1]]; d[i * s[0]] = (EXPR); }      \
    }

#define F2I(v) ((int64_t)to_i64((double)(v)))
CONVERT_LOOP(cv_f32_f32, float, float, v)
CONVERT_LOOP(cv_f32_f64, float, double, (float)v)
CONVERT_LOOP(cv_f32_i64, float, int64_t, (float)v)
CONVERT_LOOP(cv_f32_b, float, uint8_t, (float)v)
CONVERT_LOOP(cv_f64_f32, double, float, (double)v)
CONVERT_LOOP(cv_f64_f64, double, double, v)
CONVERT_LOOP(cv_f64_i64, double, int64_t, (double)v)
CONVERT_LOOP(cv_f64_b, double, uint8_t, (double)v)
CONVERT_LOOP(cv_i64_f32, int64_t, float, F2I(v))
CONVERT_LOOP(cv_i64_f64, int64_t, double, F2I(v))
CONVERT_LOOP(cv_i64_i64, int64_t, int64_t, v)
CONVERT_LOOP(cv_i64_b, int64_t, uint8_t, (int64_t)v)
CONVERT_LOOP(cv_b_f32, uint8_t, float, (uint8_t)(v != 0))
CONVERT_LOOP(cv_b_f64, uint8_t, double, (uint8_t)(v != 0))
CONVERT_LOOP(cv_b_i64, uint8_t, int64_t, (uint8_t)(v != 0))
CONVERT_LOOP(cv_b_b, uint8_t, uint8_t, v)

static const nbi_loop_fn convert_loops[4][4] = {
    [NB_F32] = {[NB_F32] = cv_f32_f32, [NB_F64] = cv_f32_f64, [NB_I64] = cv_f32_i64, [NB_BOOL] = cv_f32_b},
    [NB_F64] = {[NB_F32] = cv_f64_f32, [NB_F64] = cv_f64_f64, [NB_I64] = cv_f64_i64, [NB_BOOL] = cv_f64_b},
    [NB_I64] = {[NB_F32] = cv_i64_f32, [NB_F64] = cv_i64_f64, [NB_I64] = cv_i64_i64, [NB_BOOL] = cv_i64_b},
    [NB_BOOL] = {[NB_F32] = cv_b_f32, [NB_F64] = cv_b_f64, [NB_I64] = cv_b_i64, [NB_BOOL] = cv_b_b},
};

void nbi_copy_into(nbi_tensor *dst, const nbi_tensor *src)
{
    nbi_iter it;
    nbi_iter_init(&it, dst, 1, &src);
    nbi_iter_run(&it, convert_loops[dst->dtype][src->dtype], NULL);
}

nbi_tensor *nbi_contiguous_copy(const nbi_tensor *t, nb_dtype dtype, const char *fn)
{
    nbi_tensor *out = nbi_tensor_new(dtype, t->ndim, t->shape, fn);
    if (out) nbi_copy_into(out, t);
    return out;
}

bool nbi_is_contiguous(const nbi_tensor *t)
{
    if (t->numel == 0) return true; /* as in PyTorch: there is no layout to get wrong */
    int64_t expected = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] == 1) continue;
        if (t->stride[d] != expected) return false;
        expected *= t->shape[d];
    }
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Creation
 * ---------------------------------------------------------------------------------------------- */
static void fill_value(nbi_tensor *t, double v)
{
    char *p = nbi_data_ptr(t);
    size_t es = nb_dtype_size(t->dtype);
    if (t->numel == 0) return; /* the first store below would write past an empty buffer */
    if (v == 0 && !signbit(v)) {
        memset(p, 0, (size_t)t->numel * es);
        return;
    }
    store(p, t->dtype, v);
    for (int64_t i = 1; i < t->numel; i++) memcpy(p + (size_t)i * es, p, es);
}

nb_tensor *nb_empty(int ndim, const int64_t *shape, nb_dtype dtype)
{
    return nbi_handle(nbi_tensor_new(dtype, ndim, shape, "nb_empty"));
}

static nb_tensor *full(int ndim, const int64_t *shape, double v, nb_dtype dtype, const char *fn)
{
    if (!value_fits(dtype, v, fn)) return NULL;
    nbi_tensor *t = nbi_tensor_new(dtype, ndim, shape, fn);
    if (t) fill_value(t, v);
    return nbi_handle(t);
}

nb_tensor *nb_zeros(int ndim, const int64_t *shape, nb_dtype dtype) { return full(ndim, shape, 0, dtype, "nb_zeros"); }
nb_tensor *nb_ones(int ndim, const int64_t *shape, nb_dtype dtype) { return full(ndim, shape, 1, dtype, "nb_ones"); }
nb_tensor *nb_full(int ndim, const int64_t *shape, double value, nb_dtype dtype)
{
    return full(ndim, shape, value, dtype, "nb_full");
}
nb_tensor *nb_scalar(double value, nb_dtype dtype) { return full(0, NULL, value, dtype, "nb_scalar"); }

static nb_tensor *full_like(const nb_tensor *h, double v, const char *fn)
{
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    return t ? full(t->ndim, t->shape, v, t->dtype, fn) : NULL;
}
nb_tensor *nb_zeros_like(const nb_tensor *t) { return full_like(t, 0, "nb_zeros_like"); }
nb_tensor *nb_ones_like(const nb_tensor *t) { return full_like(t, 1, "nb_ones_like"); }
nb_tensor *nb_full_like(const nb_tensor *t, double value) { return full_like(t, value, "nb_full_like"); }

nb_tensor *nb_arange(double start, double end, double step, nb_dtype dtype)
{
    if (!isfinite(start) || !isfinite(end) || !isfinite(step) || step == 0)
        return nbi_error(NB_ERR_VALUE, "nb_arange: need finite start, end and a nonzero step (got %g, %g, %g)",
                         start, end, step);
    if (dtype == NB_I64) {
        /* PyTorch converts the three to the integer type first: arange(0.5, 3, 1) is 0, 1, 2, and a step that
         * truncates to 0 is an error rather than a repeated value */
        if (!value_fits(dtype, start, "nb_arange") || !value_fits(dtype, end, "nb_arange") ||
            !value_fits(dtype, step, "nb_arange"))
            return NULL;
        start = trunc(start), end = trunc(end);
        if (trunc(step) == 0)
            return nbi_error(NB_ERR_VALUE, "nb_arange: step %g truncates to 0 in an i64 tensor (start, end and step "
                             "are converted to i64 first, as in PyTorch)", step);
        step = trunc(step);
    }
    double count = ceil((end - start) / step);
    if (count < 0) count = 0;
    if (count > 1e15) return nbi_error(NB_ERR_VALUE, "nb_arange: %g elements requested", count);
    int64_t n = (int64_t)count;
    if (n > 0 && (!value_fits(dtype, start, "nb_arange") || !value_fits(dtype, start + (double)(n - 1) * step, "nb_arange")))
        return NULL;
    nbi_tensor *t = nbi_tensor_new(dtype, 1, &n, "nb_arange");
    if (!t) return NULL;
    char *p = t->storage->data;
    size_t es = nb_dtype_size(dtype);
    for (int64_t i = 0; i < n; i++) store(p + (size_t)i * es, dtype, start + (double)i * step);
    return nbi_handle(t);
}

nb_tensor *nb_linspace(double start, double end, int64_t steps, nb_dtype dtype)
{
    if (steps < 0) return nbi_error(NB_ERR_VALUE, "nb_linspace: steps must be >= 0, got %lld", (long long)steps);
    if (dtype == NB_I64 && steps > 0) {
        /* PyTorch converts start and end to the integer type first (linspace(0.7, 3.9, 4) is 0, 1, 2, 3) and
         * refuses what does not convert; end is only stored, and so only checked, with two steps or more. */
        if (!value_fits(dtype, start, "nb_linspace") || (steps > 1 && !value_fits(dtype, end, "nb_linspace")))
            return NULL;
        start = trunc(start), end = trunc(end);
    }
    nbi_tensor *t = nbi_tensor_new(dtype, 1, &steps, "nb_linspace");
    if (!t) return NULL;
    char *p = t->storage->data;
    size_t es = nb_dtype_size(dtype);
    /* PyTorch's formula: the first steps/2 values from start, the rest back from end so that the last is exactly
     * `end` (PyTorch's vectorized loop for long f32/f64 outputs may still differ in the last bit). f32 is computed in float, as PyTorch does, so that rounding and overflow (an infinite bound gives
     * NaN where inf * 0 appears) come out the same. */
    int64_t halfway = steps == 1 ? 1 : steps / 2; /* a single step is the start */
    if (dtype == NB_F32) {
        float fs = (float)start, fe = (float)end, fstep = steps > 1 ? (fe - fs) / (float)(steps - 1) : 0;
        for (int64_t i = 0; i < steps; i++)
            ((float *)p)[i] = i < halfway ? fs + fstep * (float)i : fe - fstep * (float)(steps - 1 - i);
        return nbi_handle(t);
    }
    double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0;
    for (int64_t i = 0; i < steps; i++) {
        double v = i < halfway ? start + step * (double)i : end - step * (double)(steps - 1 - i);
        store(p + (size_t)i * es, dtype, v);
    }
    return nbi_handle(t);
}

nb_tensor *nb_eye(int64_t n, nb_dtype dtype)
{
    if (n < 0) return nbi_error(NB_ERR_VALUE, "nb_eye: n must be >= 0, got %lld", (long long)n);
    int64_t shape[2] = {n, n};
    nbi_tensor *t = nbi_tensor_new(dtype, 2, shape, "nb_eye");
    if (!t) return NULL;
    fill_value(t, 0);
    char *p = t->storage->data;
    size_t es = nb_dtype_size(dtype);
    for (int64_t i = 0; i < n; i++) store(p + (size_t)(i * n + i) * es, dtype, 1);
    return nbi_handle(t);
}

nb_tensor *nb_from_array(const void *data, int ndim, const int64_t *shape, nb_dtype dtype)
{
    if (!data) return nbi_error(NB_ERR_NULL, "nb_from_array: data is NULL");
    nbi_tensor *t = nbi_tensor_new(dtype, ndim, shape, "nb_from_array");
    if (t) memcpy(t->storage->data, data, t->storage->nbytes);
    return nbi_handle(t);
}

/* ------------------------------------------------------------------------------------------------
 * Inspection
 * ---------------------------------------------------------------------------------------------- */
int nb_ndim(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_ndim", "tensor");
    return t ? t->ndim : -1;
}

int64_t nb_size(const nb_tensor *h, int dim)
{
    nbi_tensor *t = nbi_resolve(h, "nb_size", "tensor");
    if (!t) return -1;
    int d = nbi_wrap_dim(dim, t->ndim);
    if (d < 0) {
        char b[NBI_SHAPE_STR];
        nbi_error(NB_ERR_ARG, "nb_size: dim %d out of range for shape %s", dim, nbi_shape_fmt(b, t->ndim, t->shape));
        return -1;
    }
    return t->shape[d];
}

const int64_t *nb_shape(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_shape", "tensor");
    return t ? t->shape : NULL;
}

const int64_t *nb_strides(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_strides", "tensor");
    return t ? t->stride : NULL;
}

int64_t nb_numel(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_numel", "tensor");
    return t ? t->numel : -1;
}

nb_dtype nb_dtype_of(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_dtype_of", "tensor");
    return t ? t->dtype : NB_F32;
}

bool nb_is_contiguous(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_is_contiguous", "tensor");
    return t && nbi_is_contiguous(t);
}

bool nb_shares_storage(const nb_tensor *a, const nb_tensor *b)
{
    nbi_tensor *x = nbi_resolve(a, "nb_shares_storage", "a"), *y = nbi_resolve(b, "nb_shares_storage", "b");
    return x && y && x->storage == y->storage;
}

char *nb_shape_str(const nb_tensor *h, char *buf, size_t size)
{
    if (!buf || !size) return buf;
    nbi_tensor *t = nbi_peek(h);
    char tmp[NBI_SHAPE_STR];
    snprintf(buf, size, "%s", t ? nbi_shape_fmt(tmp, t->ndim, t->shape) : "(invalid)");
    return buf;
}

/* ------------------------------------------------------------------------------------------------
 * Element access
 * ---------------------------------------------------------------------------------------------- */
static bool index_offset(const nbi_tensor *t, const int64_t *index, const char *fn, int64_t *off)
{
    if (t->ndim > 0 && !index) {
        nbi_error(NB_ERR_NULL, "%s: index is NULL", fn);
        return false;
    }
    int64_t o = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        int64_t i = index[d] < 0 ? index[d] + t->shape[d] : index[d];
        if (i < 0 || i >= t->shape[d]) {
            char b[NBI_SHAPE_STR];
            nbi_error(NB_ERR_INDEX, "%s: index %lld out of range for dim %d of shape %s", fn, (long long)index[d],
                      d, nbi_shape_fmt(b, t->ndim, t->shape));
            return false;
        }
        o += i * t->stride[d];
    }
    *off = o;
    return true;
}

double nb_item(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_item", "tensor");
    if (!t) return NAN;
    if (t->numel != 1) {
        char b[NBI_SHAPE_STR];
        nbi_error(NB_ERR_SHAPE, "nb_item: tensor of shape %s has %lld elements, not 1",
                  nbi_shape_fmt(b, t->ndim, t->shape), (long long)t->numel);
        return NAN;
    }
    return nbi_get_flat(t, 0);
}

double nb_get(const nb_tensor *h, const int64_t *index)
{
    nbi_tensor *t = nbi_resolve(h, "nb_get", "tensor");
    int64_t off;
    if (!t || !index_offset(t, index, "nb_get", &off)) return NAN;
    return load((char *)t->storage->data + off * (int64_t)nb_dtype_size(t->dtype), t->dtype);
}

nb_status nb_set(nb_tensor *h, const int64_t *index, double value)
{
    nbi_tensor *t = nbi_resolve(h, "nb_set", "tensor");
    int64_t off;
    if (!t || !index_offset(t, index, "nb_set", &off) || !value_fits(t->dtype, value, "nb_set")) return nb_last_status();
    store((char *)t->storage->data + off * (int64_t)nb_dtype_size(t->dtype), t->dtype, value);
    nbi_storage_bump_version(t->storage);
    return NB_OK;
}

static bool flat_index_ok(const nbi_tensor *t, int64_t i, const char *fn)
{
    if (i >= 0 && i < t->numel) return true;
    char b[NBI_SHAPE_STR];
    nbi_error(NB_ERR_INDEX, "%s: flat index %lld out of range for %lld elements (shape %s)", fn, (long long)i,
              (long long)t->numel, nbi_shape_fmt(b, t->ndim, t->shape));
    return false;
}

double nb_get_flat(const nb_tensor *h, int64_t i)
{
    nbi_tensor *t = nbi_resolve(h, "nb_get_flat", "tensor");
    if (!t || !flat_index_ok(t, i, "nb_get_flat")) return NAN;
    return nbi_get_flat(t, i);
}

nb_status nb_set_flat(nb_tensor *h, int64_t i, double value)
{
    nbi_tensor *t = nbi_resolve(h, "nb_set_flat", "tensor");
    if (!t || !flat_index_ok(t, i, "nb_set_flat") || !value_fits(t->dtype, value, "nb_set_flat"))
        return nb_last_status();
    store((char *)t->storage->data + flat_offset(t, i) * (int64_t)nb_dtype_size(t->dtype), t->dtype, value);
    nbi_storage_bump_version(t->storage);
    return NB_OK;
}

nb_status nb_to_array(const nb_tensor *h, void *out, int64_t capacity, nb_dtype dtype)
{
    nbi_tensor *t = nbi_resolve(h, "nb_to_array", "tensor");
    if (!t) return nb_last_status();
    if (!out) return nbi_fail(NB_ERR_NULL, "nb_to_array: out is NULL");
    if (!nbi_dtype_valid(dtype)) return nbi_fail(NB_ERR_DTYPE, "nb_to_array: invalid dtype %d", (int)dtype);
    if (capacity < t->numel)
        return nbi_fail(NB_ERR_ARG, "nb_to_array: room for %lld elements, tensor has %lld", (long long)capacity,
                        (long long)t->numel);
    /* A contiguous destination header over the caller's buffer lets the strided copy do the work. */
    nbi_storage wrap = {.nbytes = (size_t)t->numel * nb_dtype_size(dtype), .data = out};
    atomic_init(&wrap.refs, 1);
    nbi_tensor dst;
    memset(&dst, 0, sizeof dst);
    dst.dtype = dtype;
    dst.ndim = t->ndim;
    dst.numel = t->numel;
    memcpy(dst.shape, t->shape, sizeof dst.shape);
    nbi_contiguous_strides(t->ndim, t->shape, dst.stride);
    dst.storage = &wrap;
    nbi_copy_into(&dst, t);
    return NB_OK;
}

void *nb_data(nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_data", "tensor");
    if (!t) return NULL;
    if (!nbi_is_contiguous(t)) {
        char b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_STATE, "nb_data: tensor of shape %s is not contiguous; call nb_contiguous first",
                         nbi_shape_fmt(b, t->ndim, t->shape));
    }
    return nbi_data_ptr(t);
}

nb_status nb_fill(nb_tensor *h, double value)
{
    nbi_tensor *t = nbi_resolve(h, "nb_fill", "tensor");
    if (!t || !value_fits(t->dtype, value, "nb_fill")) return nb_last_status();
    nbi_storage src_storage = {.nbytes = 8, .data = &value};
    atomic_init(&src_storage.refs, 1);
    nbi_tensor src;
    memset(&src, 0, sizeof src);
    src.dtype = NB_F64;
    src.numel = 1;
    src.storage = &src_storage;
    nbi_copy_into(t, &src);
    nbi_storage_bump_version(t->storage);
    return NB_OK;
}

nb_status nbi_check_writable_elements(const nbi_tensor *t, const char *fn)
{
    for (int d = 0; d < t->ndim; d++)
        if (t->stride[d] == 0 && t->shape[d] > 1) { /* PyTorch refuses it too: which value would win? */
            char a[NBI_SHAPE_STR];
            return nbi_fail(NB_ERR_ARG, "%s: destination of shape %s has several elements at one memory location "
                            "(dim %d has stride 0: an expanded tensor); write into a clone of it",
                            fn, nbi_shape_fmt(a, t->ndim, t->shape), d);
        }
    return NB_OK;
}

nb_status nb_copy_(nb_tensor *dst_h, const nb_tensor *src_h)
{
    nbi_tensor *dst = nbi_resolve(dst_h, "nb_copy_", "dst"), *src = nbi_resolve(src_h, "nb_copy_", "src");
    if (!dst || !src) return nb_last_status();
    int n;
    int64_t shape[NB_MAX_DIMS];
    if (!nbi_broadcast_shape("nb_copy_", dst->ndim, dst->shape, src->ndim, src->shape, &n, shape))
        return nb_last_status();
    if (!nbi_broadcasts_to(src->ndim, src->shape, dst->ndim, dst->shape)) {
        char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
        return nbi_fail(NB_ERR_SHAPE, "nb_copy_: source shape %s does not broadcast to destination shape %s",
                        nbi_shape_fmt(b, src->ndim, src->shape), nbi_shape_fmt(a, dst->ndim, dst->shape));
    }
    if (nbi_check_writable_elements(dst, "nb_copy_")) return nb_last_status();
    if (src->storage == dst->storage) { /* overlapping copy: go through a temporary */
        nbi_tensor *tmp = nbi_contiguous_copy(src, src->dtype, "nb_copy_");
        if (!tmp) return nb_last_status();
        nbi_copy_into(dst, tmp);
        nbi_kill(tmp);
    } else {
        nbi_copy_into(dst, src);
    }
    nbi_storage_bump_version(dst->storage);
    return NB_OK;
}
