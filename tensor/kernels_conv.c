/* Convolution kernels: im2col / col2im over bounded ranges of output positions, the products through nbi_gemm,
 * and max pooling. See kernels_conv.h for the decomposition. */
#include "kernels_conv.h"
#include "kernels_matmul.h"

#include <string.h>

/* The weight gradient is summed over at most this many image ranges ("parts"), whatever the thread count, and
 * their partial sums take at most PARTIAL_BUDGET bytes: the result depends on the shapes only. */
#define MAX_PARTS 8
#define PARTIAL_BUDGET ((size_t)16 << 20)

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static int64_t group_k(const nbi_conv_geom *g) { return g->C / g->groups * g->KH * g->KW; }

/* A 1x1 kernel with stride 1 and no padding over contiguous image rows: col is the image itself. */
static bool is_pointwise(const nbi_conv_geom *g, const int64_t *xs)
{
    return g->KH == 1 && g->KW == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
           (xs == NULL || (xs[3] == 1 && xs[2] == g->W));
}

/* Output positions per col chunk: as many as fit the budget, at least one. */
static int64_t chunk_cols(const nbi_conv_geom *g, size_t es)
{
    int64_t per = (int64_t)(NBI_CONV_COL_BUDGET / es) / max64(group_k(g), 1);
    return min64(max64(per, 1), g->OH * g->OW);
}

/* Output columns ow whose input column ow * s + off lies inside [0, size): [*lo, *hi) within [0, n). */
static void valid_range(int64_t off, int64_t s, int64_t size, int64_t n, int64_t *lo, int64_t *hi)
{
    *lo = off >= 0 ? 0 : min64((-off + s - 1) / s, n);
    *hi = off > size - 1 ? 0 : min64((size - 1 - off) / s + 1, n);
    if (*hi < *lo) *hi = *lo;
}

/* im2col: rows (c, kh, kw) of the group's channels, columns the output positions l0 .. l0 + n - 1 (row-major
 * over (OH, OW)); x points at the group's first channel, with strides xs. col2im is its adjoint onto a
 * contiguous image gradient. */
#define IM2COL_IMPL(T, SUF)                                                                                    \
    static void im2col_##SUF(const nbi_conv_geom *g, const T *x, const int64_t *xs, int64_t l0, int64_t n,     \
                             T *restrict col)                                                                  \
    {                                                                                                          \
        int64_t cg = g->C / g->groups, oh_first = l0 / g->OW, ow_first = l0 % g->OW;                           \
        for (int64_t c = 0; c < cg; c++)                                                                       \
            for (int64_t kh = 0; kh < g->KH; kh++)                                                             \
                for (int64_t kw = 0; kw < g->KW; kw++, col += n) {                                             \
                    int64_t off = kw * g->dw - g->pw, lo, hi;                                                  \
                    valid_range(off, g->sw, g->W, g->OW, &lo, &hi);                                            \
                    /* segments of output rows: the first may start mid-row, the others start at ow = 0 */    \
                    for (int64_t j = 0, oh = oh_first, ow0 = ow_first; j < n; oh++, ow0 = 0) {                 \
                        int64_t cnt = min64(g->OW - ow0, n - j);                                               \
                        int64_t ih = oh * g->sh - g->ph + kh * g->dh, ow1 = ow0 + cnt;                         \
                        T *d = col + j; /* d[ow - ow0] */                                                      \
                        int64_t a = min64(max64(lo, ow0), ow1), b = max64(min64(hi, ow1), a);                  \
                        if (ih < 0 || ih >= g->H) a = b = ow1;                                                 \
                        for (int64_t ow = ow0; ow < a; ow++) d[ow - ow0] = 0;                                  \
                        if (b > a) {                                                                           \
                            const T *src = x + c * xs[1] + ih * xs[2] + (a * g->sw + off) * xs[3];             \
                            int64_t step = g->sw * xs[3];                                                      \
                            if (step == 1) /* rows are short: a plain loop beats a call to memcpy */           \
                                for (int64_t ow = a; ow < b; ow++) d[ow - ow0] = src[ow - a];                  \
                            else                                                                               \
                                for (int64_t ow = a; ow < b; ow++) d[ow - ow0] = src[(ow - a) * step];         \
                        }                                                                                      \
                        for (int64_t ow = b; ow < ow1; ow++) d[ow - ow0] = 0;                                  \
                        j += cnt;                                                                              \
                    }                                                                                          \
                }                                                                                              \
    }                                                                                                          \
    static void col2im_##SUF(const nbi_conv_geom *g, T *gx, int64_t l0, int64_t n, const T *restrict col)      \
    {                                                                                                          \
        int64_t cg = g->C / g->groups, oh_first = l0 / g->OW, ow_first = l0 % g->OW;                           \
        for (int64_t c = 0; c < cg; c++)                                                                       \
            for (int64_t kh = 0; kh < g->KH; kh++)                                                             \
                for (int64_t kw = 0; kw < g->KW; kw++, col += n) {                                             \
                    int64_t off = kw * g->dw - g->pw, lo, hi;                                                  \
                    valid_range(off, g->sw, g->W, g->OW, &lo, &hi);                                            \
                    for (int64_t j = 0, oh = oh_first, ow0 = ow_first; j < n; oh++, ow0 = 0) {                 \
                        int64_t cnt = min64(g->OW - ow0, n - j);                                               \
                        int64_t ih = oh * g->sh - g->ph + kh * g->dh, ow1 = ow0 + cnt;                         \
                        const T *s = col + j; /* s[ow - ow0] */                                                \
                        j += cnt;                                                                              \
                        if (ih < 0 || ih >= g->H) continue;                                                    \
                        int64_t a = min64(max64(lo, ow0), ow1), b = max64(min64(hi, ow1), a);                  \
                        T *restrict dst = gx + (c * g->H + ih) * g->W + a * g->sw + off;                       \
                        const T *restrict src = s + (a - ow0);                                                 \
                        if (g->sw == 1)                                                                        \
                            for (int64_t i = 0; i < b - a; i++) dst[i] += src[i];                              \
                        else                                                                                   \
                            for (int64_t i = 0; i < b - a; i++) dst[i * g->sw] += src[i];                      \
                    }                                                                                          \
                }                                                                                              \
    }
IM2COL_IMPL(float, f32)
IM2COL_IMPL(double, f64)

static void im2col(nb_dtype dt, const nbi_conv_geom *g, const void *x, const int64_t *xs, int64_t l0, int64_t n,
                   void *col)
{
    if (dt == NB_F32) im2col_f32(g, x, xs, l0, n, col);
    else im2col_f64(g, x, xs, l0, n, col);
}
static void col2im(nb_dtype dt, const nbi_conv_geom *g, void *gx, int64_t l0, int64_t n, const void *col)
{
    if (dt == NB_F32) col2im_f32(g, gx, l0, n, col);
    else col2im_f64(g, gx, l0, n, col);
}

/* ------------------------------------------------------------------------------------------------
 * The three products, each a loop over one "slot" of images run by nbi_parallel_for. Every slot owns a
 * region of the workspace (col buffer, then the GEMM's packing buffer).
 * ---------------------------------------------------------------------------------------------- */
typedef struct conv_job {
    nb_dtype dt;
    size_t es;
    const nbi_conv_geom *g;
    const char *x, *w, *gy, *bias;
    const int64_t *xs;
    char *out;         /* out, gx or gw */
    char *work;        /* nslots regions of slot_bytes */
    size_t slot_bytes, col_bytes;
    int64_t nslots, nparts, chunk;
    char *partials;    /* weight gradient: parts 1 .. nparts - 1 (part 0 is out itself) */
} conv_job;

static void slot_buffers(const conv_job *j, int64_t s, void **col, void **gemm_work)
{
    char *base = j->work + (size_t)s * j->slot_bytes;
    *col = base;
    *gemm_work = base + j->col_bytes;
}

static void forward_slot(void *ctx, int64_t begin, int64_t end)
{
    const conv_job *j = ctx;
    const nbi_conv_geom *g = j->g;
    int64_t cg = g->C / g->groups, og = g->O / g->groups, K = group_k(g), L = g->OH * g->OW;
    int64_t es = (int64_t)j->es;
    bool pointwise = is_pointwise(g, j->xs);
    for (int64_t s = begin; s < end; s++) {
        void *col, *gw;
        slot_buffers(j, s, &col, &gw);
        for (int64_t n = s * g->N / j->nslots; n < (s + 1) * g->N / j->nslots; n++) {
            for (int64_t grp = 0; grp < g->groups; grp++) {
                const char *wg = j->w + grp * og * K * es;
                const char *xg = j->x + (n * j->xs[0] + grp * cg * j->xs[1]) * es;
                char *og_out = j->out + (n * g->O + grp * og) * L * es;
                if (pointwise) {
                    nbi_gemm(j->dt, og, L, cg, 1.0, wg, K, 1, xg, j->xs[1], 1, 0.0, og_out, L, 1, gw);
                    continue;
                }
                for (int64_t l0 = 0; l0 < L; l0 += j->chunk) {
                    int64_t m = min64(j->chunk, L - l0);
                    im2col(j->dt, g, xg, j->xs, l0, m, col);
                    nbi_gemm(j->dt, og, m, K, 1.0, wg, K, 1, col, m, 1, 0.0, og_out + l0 * es, L, 1, gw);
                }
            }
            if (!j->bias) continue;
            for (int64_t o = 0; o < g->O; o++) {
                char *plane = j->out + (n * g->O + o) * L * es;
                if (j->dt == NB_F32) {
                    float b = ((const float *)j->bias)[o], *p = (float *)plane;
                    for (int64_t l = 0; l < L; l++) p[l] += b;
                } else {
                    double b = ((const double *)j->bias)[o], *p = (double *)plane;
                    for (int64_t l = 0; l < L; l++) p[l] += b;
                }
            }
        }
    }
}

static void input_grad_slot(void *ctx, int64_t begin, int64_t end)
{
    const conv_job *j = ctx;
    const nbi_conv_geom *g = j->g;
    int64_t cg = g->C / g->groups, og = g->O / g->groups, K = group_k(g), L = g->OH * g->OW, HW = g->H * g->W;
    int64_t es = (int64_t)j->es;
    bool pointwise = is_pointwise(g, NULL);
    for (int64_t s = begin; s < end; s++) {
        void *col, *gw;
        slot_buffers(j, s, &col, &gw);
        for (int64_t n = s * g->N / j->nslots; n < (s + 1) * g->N / j->nslots; n++) {
            char *gx_n = j->out + n * g->C * HW * es;
            if (!pointwise) memset(gx_n, 0, (size_t)(g->C * HW * es));
            for (int64_t grp = 0; grp < g->groups; grp++) {
                const char *wg = j->w + grp * og * K * es; /* read as W_gᵀ (K, og) */
                const char *gyg = j->gy + (n * g->O + grp * og) * L * es;
                char *gxg = gx_n + grp * cg * HW * es;
                if (pointwise) {
                    nbi_gemm(j->dt, cg, L, og, 1.0, wg, 1, K, gyg, L, 1, 0.0, gxg, HW, 1, gw);
                    continue;
                }
                for (int64_t l0 = 0; l0 < L; l0 += j->chunk) {
                    int64_t m = min64(j->chunk, L - l0);
                    nbi_gemm(j->dt, K, m, og, 1.0, wg, 1, K, gyg + l0 * es, L, 1, 0.0, col, m, 1, gw);
                    col2im(j->dt, g, gxg, l0, m, col);
                }
            }
        }
    }
}

static void weight_grad_slot(void *ctx, int64_t begin, int64_t end)
{
    const conv_job *j = ctx;
    const nbi_conv_geom *g = j->g;
    int64_t cg = g->C / g->groups, og = g->O / g->groups, K = group_k(g), L = g->OH * g->OW;
    int64_t es = (int64_t)j->es, wnumel = g->O * K;
    bool pointwise = is_pointwise(g, j->xs);
    for (int64_t s = begin; s < end; s++) {
        void *col, *gw;
        slot_buffers(j, s, &col, &gw);
        for (int64_t p = s; p < j->nparts; p += j->nslots) {
            char *dst = p == 0 ? j->out : j->partials + (p - 1) * wnumel * es;
            int64_t n0 = p * g->N / j->nparts, n1 = (p + 1) * g->N / j->nparts;
            for (int64_t n = n0; n < n1; n++)
                for (int64_t grp = 0; grp < g->groups; grp++) {
                    const char *gyg = j->gy + (n * g->O + grp * og) * L * es;
                    const char *xg = j->x + (n * j->xs[0] + grp * cg * j->xs[1]) * es;
                    char *dg = dst + grp * og * K * es;
                    if (pointwise) {
                        nbi_gemm(j->dt, og, cg, L, 1.0, gyg, L, 1, xg, 1, j->xs[1], n == n0 ? 0.0 : 1.0, dg, K, 1,
                                 gw);
                        continue;
                    }
                    for (int64_t l0 = 0; l0 < L; l0 += j->chunk) {
                        int64_t m = min64(j->chunk, L - l0);
                        im2col(j->dt, g, xg, j->xs, l0, m, col);
                        double beta = n == n0 && l0 == 0 ? 0.0 : 1.0;
                        nbi_gemm(j->dt, og, K, m, 1.0, gyg + l0 * es, L, 1, col, 1, m, beta, dg, K, 1, gw);
                    }
                }
        }
    }
}

/* Sizes the job's slots (nslots of them) and allocates their workspace plus extra_bytes after it. */
static bool job_alloc(conv_job *j, int64_t nslots, bool pointwise, size_t extra_bytes, size_t *total,
                      const char *fn)
{
    const nbi_conv_geom *g = j->g;
    int64_t og = g->O / g->groups, K = group_k(g), L = g->OH * g->OW, cg = g->C / g->groups;
    j->chunk = chunk_cols(g, j->es);
    j->nslots = max64(nslots, 1);
    j->col_bytes = pointwise ? 0 : align64((size_t)(K * j->chunk) * j->es);
    /* The largest GEMM workspace any of the three products asks for with these sizes. */
    size_t gws = 0, sizes[4] = {
        nbi_gemm_workspace(j->dt, og, pointwise ? L : j->chunk, pointwise ? cg : K),
        nbi_gemm_workspace(j->dt, pointwise ? cg : K, pointwise ? L : j->chunk, og),
        nbi_gemm_workspace(j->dt, og, pointwise ? cg : K, pointwise ? L : j->chunk), 0};
    for (int i = 0; i < 3; i++) gws = sizes[i] > gws ? sizes[i] : gws;
    j->slot_bytes = j->col_bytes + align64(gws);
    *total = (size_t)j->nslots * j->slot_bytes + extra_bytes;
    j->work = nbi_alloc(*total, fn);
    return j->work != NULL;
}

static int64_t slots_for(int64_t items)
{
    return max64(min64((int64_t)nbi_num_threads(), items), 1);
}

bool nbi_conv2d_kernel(nb_dtype dt, const nbi_conv_geom *g, void *out, const void *x, const int64_t *x_stride,
                       const void *w, const void *bias, const char *fn)
{
    conv_job j = {.dt = dt, .es = nb_dtype_size(dt), .g = g, .x = x, .xs = x_stride, .w = w, .bias = bias,
                  .out = out};
    if (g->N == 0 || g->O == 0 || g->OH * g->OW == 0) return true;
    size_t total;
    if (!job_alloc(&j, slots_for(g->N), is_pointwise(g, x_stride), 0, &total, fn)) return false;
    nbi_parallel_for(j.nslots, 1, forward_slot, &j);
    nbi_free(j.work, total);
    return true;
}

bool nbi_conv2d_input_grad_kernel(nb_dtype dt, const nbi_conv_geom *g, void *gx, const void *gy, const void *w,
                                  const char *fn)
{
    conv_job j = {.dt = dt, .es = nb_dtype_size(dt), .g = g, .gy = gy, .w = w, .out = gx};
    if (g->N * g->C * g->H * g->W == 0) return true;
    size_t total;
    if (!job_alloc(&j, slots_for(g->N), is_pointwise(g, NULL), 0, &total, fn)) return false;
    nbi_parallel_for(j.nslots, 1, input_grad_slot, &j);
    nbi_free(j.work, total);
    return true;
}

bool nbi_conv2d_weight_grad_kernel(nb_dtype dt, const nbi_conv_geom *g, void *gw, const void *x,
                                   const int64_t *x_stride, const void *gy, const char *fn)
{
    size_t es = nb_dtype_size(dt);
    int64_t wnumel = g->O * group_k(g);
    if (wnumel == 0) return true;
    if (g->N == 0) {
        memset(gw, 0, (size_t)wnumel * es);
        return true;
    }
    int64_t by_memory = (int64_t)(PARTIAL_BUDGET / ((size_t)wnumel * es));
    int64_t nparts = max64(min64(min64(g->N, MAX_PARTS), by_memory), 1);
    conv_job j = {.dt = dt, .es = es, .g = g, .x = x, .xs = x_stride, .gy = gy, .out = gw, .nparts = nparts};
    size_t total, partial_bytes = (size_t)((nparts - 1) * wnumel) * es;
    if (!job_alloc(&j, slots_for(nparts), is_pointwise(g, x_stride), partial_bytes, &total, fn)) return false;
    j.partials = j.work + (size_t)j.nslots * j.slot_bytes;
    nbi_parallel_for(j.nslots, 1, weight_grad_slot, &j);
    for (int64_t p = 1; p < nparts; p++) { /* in a fixed order */
        if (dt == NB_F32) {
            const float *src = (const float *)j.partials + (p - 1) * wnumel;
            float *d = gw;
            for (int64_t i = 0; i < wnumel; i++) d[i] += src[i];
        } else {
            const double *src = (const double *)j.partials + (p - 1) * wnumel;
            double *d = gw;
            for (int64_t i = 0; i < wnumel; i++) d[i] += src[i];
        }
    }
    nbi_free(j.work, total);
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Max pooling, one (n, c) plane per item
 * ---------------------------------------------------------------------------------------------- */
typedef struct pool_job {
    nb_dtype dt;
    const nbi_conv_geom *g;
    char *out;
    int64_t *idx;
    const char *x;
    const int64_t *xs;
} pool_job;

/* Window positions k in [*lo, *hi) with start + k d inside [0, size). */
static inline void window_range(int64_t start, int64_t d, int64_t k, int64_t size, int64_t *lo, int64_t *hi)
{
    if (d == 1) { /* the usual case, without the divisions */
        *lo = start >= 0 ? 0 : -start;
        *hi = min64(k, size - start);
    } else {
        *lo = start >= 0 ? 0 : (-start + d - 1) / d;
        *hi = start > size - 1 ? 0 : min64(k, (size - 1 - start) / d + 1);
    }
    if (*hi < *lo) *hi = *lo;
}

/* As PyTorch: a strictly larger value replaces the best (so the first maximum wins), and so does a NaN. The
 * choice is blended through bit masks: on real data the comparison is unpredictable, and a mispredicted branch
 * per element costs more than the whole window. Columns whose windows lie inside the image are swept a whole
 * output row at a time, one window element after the other (the same order for every output); the edge
 * columns take the general path. */
#define MAX_POOL_IMPL(T, UT, SUF)                                                                              \
    static inline void take_max_##SUF(T v, int64_t pos, T *best, int64_t *at)                                  \
    {                                                                                                          \
        int64_t mask = -(int64_t)((v > *best) | (v != v));                                                     \
        UT vb, bb;                                                                                             \
        memcpy(&vb, &v, sizeof v);                                                                             \
        memcpy(&bb, best, sizeof bb);                                                                          \
        bb = (bb & ~(UT)mask) | (vb & (UT)mask);                                                               \
        memcpy(best, &bb, sizeof bb);                                                                          \
        *at = (*at & ~mask) | (pos & mask);                                                                    \
    }                                                                                                          \
    static void max_pool_one_##SUF(const nbi_conv_geom *g, int64_t ih0, int64_t kh0, int64_t kh1, int64_t ow,  \
                                   T *out, int64_t *idx, const T *x, const int64_t *xs)                        \
    {                                                                                                          \
        int64_t iw0 = ow * g->sw - g->pw, kw0, kw1;                                                            \
        window_range(iw0, g->dw, g->KW, g->W, &kw0, &kw1);                                                     \
        int64_t ih = ih0 + kh0 * g->dh, iw = iw0 + kw0 * g->dw, at = ih * g->W + iw;                           \
        T best = x[ih * xs[2] + iw * xs[3]];                                                                   \
        for (int64_t kh = kh0; kh < kh1; kh++) {                                                               \
            ih = ih0 + kh * g->dh;                                                                             \
            for (int64_t kw = kw0; kw < kw1; kw++) {                                                           \
                iw = iw0 + kw * g->dw;                                                                         \
                take_max_##SUF(x[ih * xs[2] + iw * xs[3]], ih * g->W + iw, &best, &at);                        \
            }                                                                                                  \
        }                                                                                                      \
        *out = best;                                                                                           \
        *idx = at;                                                                                             \
    }                                                                                                          \
    static void max_pool_plane_##SUF(const nbi_conv_geom *g, T *out, int64_t *idx, const T *x,                 \
                                     const int64_t *xs)                                                        \
    {                                                                                                          \
        /* interior columns: ow * sw - pw >= 0 and ow * sw - pw + (KW - 1) dw <= W - 1 */                      \
        int64_t a = min64((g->pw + g->sw - 1) / g->sw, g->OW);                                                 \
        int64_t last = g->W - 1 - (g->KW - 1) * g->dw + g->pw;                                                 \
        int64_t b = last < 0 ? a : max64(min64(last / g->sw + 1, g->OW), a);                                   \
        for (int64_t oh = 0; oh < g->OH; oh++) {                                                               \
            int64_t ih0 = oh * g->sh - g->ph, kh0, kh1;                                                        \
            window_range(ih0, g->dh, g->KH, g->H, &kh0, &kh1);                                                 \
            T *orow = out + oh * g->OW;                                                                        \
            int64_t *irow = idx + oh * g->OW;                                                                  \
            for (int64_t ow = 0; ow < a; ow++) max_pool_one_##SUF(g, ih0, kh0, kh1, ow, orow + ow, irow + ow, x, xs); \
            for (int64_t ow = b; ow < g->OW; ow++)                                                             \
                max_pool_one_##SUF(g, ih0, kh0, kh1, ow, orow + ow, irow + ow, x, xs);                         \
            if (b <= a) continue;                                                                              \
            for (int64_t kh = kh0; kh < kh1; kh++) {                                                           \
                int64_t ih = ih0 + kh * g->dh;                                                                 \
                for (int64_t kw = 0; kw < g->KW; kw++) {                                                       \
                    int64_t iw = a * g->sw - g->pw + kw * g->dw, step = g->sw * xs[3];                         \
                    const T *src = x + ih * xs[2] + iw * xs[3];                                                \
                    int64_t pos = ih * g->W + iw;                                                              \
                    if (kh == kh0 && kw == 0) {                                                                \
                        for (int64_t ow = a; ow < b; ow++) {                                                   \
                            orow[ow] = src[(ow - a) * step];                                                   \
                            irow[ow] = pos + (ow - a) * g->sw;                                                 \
                        }                                                                                      \
                    } else {                                                                                   \
                        for (int64_t ow = a; ow < b; ow++)                                                     \
                            take_max_##SUF(src[(ow - a) * step], pos + (ow - a) * g->sw, orow + ow, irow + ow); \
                    }                                                                                          \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }
MAX_POOL_IMPL(float, uint32_t, f32)
MAX_POOL_IMPL(double, uint64_t, f64)

static void max_pool_range(void *ctx, int64_t begin, int64_t end)
{
    const pool_job *j = ctx;
    const nbi_conv_geom *g = j->g;
    int64_t L = g->OH * g->OW, es = (int64_t)nb_dtype_size(j->dt);
    for (int64_t p = begin; p < end; p++) {
        int64_t n = p / g->C, c = p % g->C;
        const char *x = j->x + (n * j->xs[0] + c * j->xs[1]) * es;
        if (j->dt == NB_F32)
            max_pool_plane_f32(g, (float *)j->out + p * L, j->idx + p * L, (const float *)x, j->xs);
        else
            max_pool_plane_f64(g, (double *)j->out + p * L, j->idx + p * L, (const double *)x, j->xs);
    }
}

void nbi_max_pool2d_kernel(nb_dtype dt, const nbi_conv_geom *g, void *out, int64_t *idx, const void *x,
                           const int64_t *x_stride)
{
    pool_job j = {dt, g, out, idx, x, x_stride};
    int64_t work = max64(g->OH * g->OW * g->KH * g->KW, 1);
    nbi_parallel_for(g->N * g->C, max64(32768 / work, 1), max_pool_range, &j);
}
