/* Indexing kernels. All of them run on nbi_iter: gather and scatter-add see their operands through
 * restrided headers built on the stack (never registered, never freed), so broadcasting an index or skipping
 * the indexed dim is only a matter of strides. Value copies go by element size, whatever the dtype. */
#include "kernels_index.h"

#include <string.h>

/* A header describing t's data seen with another shape and strides (same storage, offset and dtype). */
static void seen_as(nbi_tensor *v, const nbi_tensor *t, int ndim, const int64_t *shape, const int64_t *stride)
{
    memset(v, 0, sizeof *v);
    v->dtype = t->dtype;
    v->ndim = ndim;
    v->storage = t->storage;
    v->offset = t->offset;
    if (ndim) {
        memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
        memcpy(v->stride, stride, (size_t)ndim * sizeof *stride);
    }
    v->numel = nbi_shape_numel(ndim, shape);
}

/* ---- range check ---- */
typedef struct range_state {
    int64_t size;
    bool found;
    int64_t bad;
} range_state;

static void range_loop(int64_t n, char **p, const int64_t *s, const void *params)
{
    range_state *st = (range_state *)params;
    const int64_t *ix = (const int64_t *)p[0];
    if (st->found) return;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = ix[i * s[0]];
        if (v < 0 || v >= st->size) {
            st->found = true;
            st->bad = v;
            return;
        }
    }
}

bool nbi_index_in_range(const nbi_tensor *index, int64_t size, int64_t *bad)
{
    range_state st = {size, false, 0};
    nbi_iter it;
    nbi_iter_init_over(&it, index->ndim, index->shape, 1, &index);
    nbi_iter_run(&it, range_loop, &st);
    if (st.found) *bad = st.bad;
    return !st.found;
}

/* ---- gather: operands out, src, index ---- */
#define GATHER_LOOP(NAME, T)                                                                 \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)             \
    {                                                                                        \
        const int64_t ds = *(const int64_t *)params;                                         \
        T *o = (T *)p[0];                                                                    \
        const T *x = (const T *)p[1];                                                        \
        const int64_t *ix = (const int64_t *)p[2];                                           \
        if (s[0] == 1 && s[1] == 1 && s[2] == 0) { /* a whole row of index_select: one copy */ \
            memcpy(o, x + ix[0] * ds, (size_t)n * sizeof(T));                                \
            return;                                                                          \
        }                                                                                    \
        for (int64_t i = 0; i < n; i++) o[i * s[0]] = x[i * s[1] + ix[i * s[2]] * ds];       \
    }
GATHER_LOOP(gather_1, uint8_t)
GATHER_LOOP(gather_4, uint32_t)
GATHER_LOOP(gather_8, uint64_t)

static nbi_loop_fn by_size(size_t elsize, nbi_loop_fn l1, nbi_loop_fn l4, nbi_loop_fn l8)
{
    return elsize == 1 ? l1 : elsize == 4 ? l4 : l8;
}

void nbi_gather_kernel(nbi_tensor *out, const nbi_tensor *src, const int64_t *src_stride, int64_t dim_stride,
                       const nbi_tensor *index, const int64_t *index_stride)
{
    nbi_tensor sv, iv;
    seen_as(&sv, src, out->ndim, out->shape, src_stride);
    seen_as(&iv, index, out->ndim, out->shape, index_stride);
    const nbi_tensor *ops[3] = {out, &sv, &iv};
    nbi_iter it;
    nbi_iter_init_over(&it, out->ndim, out->shape, 3, ops);
    nbi_iter_run(&it, by_size(nb_dtype_size(out->dtype), gather_1, gather_4, gather_8), &dim_stride);
}

/* ---- scatter-add: operands out (restrided), index, src ---- */
#define SCATTER_ADD_LOOP(NAME, T)                                                            \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)             \
    {                                                                                        \
        const int64_t ds = *(const int64_t *)params;                                         \
        T *o = (T *)p[0];                                                                    \
        const int64_t *ix = (const int64_t *)p[1];                                           \
        const T *x = (const T *)p[2];                                                        \
        for (int64_t i = 0; i < n; i++) o[i * s[0] + ix[i * s[1]] * ds] += x[i * s[2]];      \
    }
SCATTER_ADD_LOOP(scatter_add_f32, float)
SCATTER_ADD_LOOP(scatter_add_f64, double)
SCATTER_ADD_LOOP(scatter_add_i64, int64_t)

void nbi_scatter_add_kernel(nbi_tensor *out, const int64_t *out_stride, int64_t dim_stride, const nbi_tensor *index,
                            const int64_t *index_stride, const nbi_tensor *src, int ndim, const int64_t *shape)
{
    nbi_tensor ov, iv, sv;
    seen_as(&ov, out, ndim, shape, out_stride);
    seen_as(&iv, index, ndim, shape, index_stride);
    seen_as(&sv, src, ndim, shape, src->stride);
    const nbi_tensor *ops[3] = {&ov, &iv, &sv};
    nbi_iter it;
    nbi_iter_init_over(&it, ndim, shape, 3, ops);
    nbi_loop_fn loop = out->dtype == NB_F32 ? scatter_add_f32 : out->dtype == NB_F64 ? scatter_add_f64 : scatter_add_i64;
    nbi_iter_run(&it, loop, &dim_stride);
}

/* ---- where: operands out, cond, a, b ---- */
#define WHERE_LOOP(NAME, T)                                                                  \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)             \
    {                                                                                        \
        (void)params;                                                                        \
        T *o = (T *)p[0];                                                                    \
        const uint8_t *c = (const uint8_t *)p[1];                                            \
        const T *a = (const T *)p[2], *b = (const T *)p[3];                                  \
        for (int64_t i = 0; i < n; i++) o[i * s[0]] = c[i * s[1]] ? a[i * s[2]] : b[i * s[3]]; \
    }
WHERE_LOOP(where_1, uint8_t)
WHERE_LOOP(where_4, uint32_t)
WHERE_LOOP(where_8, uint64_t)

void nbi_where_kernel(nbi_tensor *out, const nbi_tensor *cond, const nbi_tensor *a, const nbi_tensor *b)
{
    const nbi_tensor *in[3] = {cond, a, b};
    nbi_iter it;
    nbi_iter_init(&it, out, 3, in);
    nbi_iter_run(&it, by_size(nb_dtype_size(out->dtype), where_1, where_4, where_8), NULL);
}

/* ---- masked fill: operands out, mask; params points at the value's bits in out's dtype ---- */
#define FILL_LOOP(NAME, T)                                                                   \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)             \
    {                                                                                        \
        T v;                                                                                 \
        memcpy(&v, params, sizeof v);                                                        \
        T *o = (T *)p[0];                                                                    \
        const uint8_t *m = (const uint8_t *)p[1];                                            \
        for (int64_t i = 0; i < n; i++)                                                      \
            if (m[i * s[1]]) o[i * s[0]] = v;                                                \
    }
FILL_LOOP(fill_1, uint8_t)
FILL_LOOP(fill_4, uint32_t)
FILL_LOOP(fill_8, uint64_t)

void nbi_masked_fill_kernel(nbi_tensor *out, const nbi_tensor *mask, double value)
{
    unsigned char bits[8];
    switch (out->dtype) {
    case NB_F32: { float v = (float)value; memcpy(bits, &v, sizeof v); break; }
    case NB_F64: memcpy(bits, &value, sizeof value); break;
    case NB_I64: { int64_t v = (int64_t)value; memcpy(bits, &v, sizeof v); break; }
    default: bits[0] = value != 0; break;
    }
    nbi_iter it;
    nbi_iter_init(&it, out, 1, &mask);
    nbi_iter_run(&it, by_size(nb_dtype_size(out->dtype), fill_1, fill_4, fill_8), bits);
}
