/* Random numbers: xoshiro256** seeded by splitmix64, and a polar-method normal built on a logarithm of our own,
 * so that a seed gives bit-identical tensors on every platform (libm's log may differ in the last bit). */
#include "internal.h"

#include <float.h>
#include <math.h>

static _Thread_local nb_generator default_generator;
static _Thread_local bool default_seeded;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void nb_generator_seed(nb_generator *g, uint64_t seed)
{
    if (!g) return;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) g->s[i] = splitmix64(&x);
    g->has_spare = false;
    g->spare_normal = 0;
}

nb_generator *nb_default_generator(void)
{
    if (!default_seeded) {
        nb_generator_seed(&default_generator, 0);
        default_seeded = true;
    }
    return &default_generator;
}

void nb_manual_seed(uint64_t seed)
{
    nb_generator_seed(&default_generator, seed);
    default_seeded = true;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nb_random_u64(nb_generator *g)
{
    if (!g) g = nb_default_generator();
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double nb_random_uniform(nb_generator *g) { return (double)(nb_random_u64(g) >> 11) * 0x1.0p-53; }

uint64_t nb_random_below(nb_generator *g, uint64_t n)
{
    if (n == 0) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the incomplete last block */
    uint64_t x;
    do x = nb_random_u64(g);
    while (x >= limit);
    return x % n;
}

/* ln(x) for x > 0 from basic arithmetic only: x = m 2^e with m in [sqrt(1/2), sqrt(2)), then
 * ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, summed to full double precision. */
static double portable_log(double x)
{
    int e;
    double m = frexp(x, &e); /* exact: m in [0.5, 1) */
    if (m < 0.70710678118654752440) {
        m *= 2;
        e--;
    }
    double s = (m - 1) / (m + 1), s2 = s * s, term = s, sum = 0;
    for (int k = 1; k < 40; k += 2) {
        sum += term / k;
        term *= s2;
    }
    return 2 * sum + e * 0.69314718055994530942;
}

double nb_random_normal(nb_generator *g)
{
    if (!g) g = nb_default_generator();
    if (g->has_spare) {
        g->has_spare = false;
        return g->spare_normal;
    }
    double u, v, s;
    do {
        u = 2 * nb_random_uniform(g) - 1;
        v = 2 * nb_random_uniform(g) - 1;
        s = u * u + v * v;
    } while (s >= 1 || s == 0);
    double f = sqrt(-2 * portable_log(s) / s); /* sqrt is correctly rounded everywhere */
    g->spare_normal = v * f;
    g->has_spare = true;
    return u * f;
}

static nb_status check_float(const nbi_tensor *t, const char *fn)
{
    if (nbi_is_float(t->dtype)) return NB_OK;
    return nbi_fail(NB_ERR_DTYPE, "%s: needs an f32 or f64 tensor, not %s", fn, nb_dtype_name(t->dtype));
}

/* Fills row-major element order, whatever the strides, so a view and a copy get the same numbers. */
static void fill_random(nbi_tensor *t, bool normal, double a, double b, nb_generator *g)
{
    char *base = t->storage->data;
    size_t es = nb_dtype_size(t->dtype);
    int64_t idx[NB_MAX_DIMS] = {0};
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t off = t->offset;
        for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
        double v = normal ? a + b * nb_random_normal(g) : a + (b - a) * nb_random_uniform(g);
        if (t->dtype == NB_F32) *(float *)(base + (size_t)off * es) = (float)v;
        else *(double *)(base + (size_t)off * es) = v;
        for (int d = t->ndim - 1; d >= 0 && ++idx[d] == t->shape[d]; d--) idx[d] = 0;
    }
    nbi_storage_bump_version(t->storage);
}

/* The checks and fill of nb_uniform_ / nb_normal_, with messages naming fn (the function the user called). */
static nb_status fill_checked(nb_tensor *h, bool normal, double a, double b, nb_generator *g, const char *fn)
{
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return nb_last_status();
    if (check_float(t, fn) || nbi_check_writable_elements(t, fn)) return nb_last_status();
    if (normal && (!(b >= 0) || !isfinite(a) || !isfinite(b)))
        return nbi_fail(NB_ERR_VALUE, "%s: need a finite mean and std >= 0, got %g and %g", fn, a, b);
    if (!normal && (!(a <= b) || !isfinite(a) || !isfinite(b)))
        return nbi_fail(NB_ERR_VALUE, "%s: need finite low <= high, got %g and %g", fn, a, b);
    if (!normal) {
        /* PyTorch's rules for uniform_: both bounds representable in the dtype and high - low no more than its
         * largest value; past that every value would come out infinite. */
        double max = t->dtype == NB_F32 ? FLT_MAX : DBL_MAX;
        if (a < -max || b > max)
            return nbi_fail(NB_ERR_VALUE, "%s: bound %g is out of range for %s (largest magnitude %g)", fn,
                            a < -max ? a : b, nb_dtype_name(t->dtype), max);
        if (!(b - a <= max))
            return nbi_fail(NB_ERR_VALUE, "%s: high - low overflows %s: low %g, high %g (span at most %g)", fn,
                            nb_dtype_name(t->dtype), a, b, max);
    }
    fill_random(t, normal, a, b, g ? g : nb_default_generator());
    return NB_OK;
}

nb_status nb_uniform_(nb_tensor *h, double low, double high, nb_generator *g)
{
    return fill_checked(h, false, low, high, g, "nb_uniform_");
}

nb_status nb_normal_(nb_tensor *h, double mean, double std, nb_generator *g)
{
    return fill_checked(h, true, mean, std, g, "nb_normal_");
}

nb_tensor *nb_rand(int ndim, const int64_t *shape, double low, double high, nb_dtype dtype, nb_generator *g)
{
    nbi_tensor *t = nbi_tensor_new(dtype, ndim, shape, "nb_rand");
    if (t && fill_checked(nbi_handle(t), false, low, high, g, "nb_rand") != NB_OK) {
        nbi_kill(t);
        return NULL;
    }
    return nbi_handle(t);
}

nb_tensor *nb_randn(int ndim, const int64_t *shape, double mean, double std, nb_dtype dtype, nb_generator *g)
{
    nbi_tensor *t = nbi_tensor_new(dtype, ndim, shape, "nb_randn");
    if (t && fill_checked(nbi_handle(t), true, mean, std, g, "nb_randn") != NB_OK) {
        nbi_kill(t);
        return NULL;
    }
    return nbi_handle(t);
}

nb_tensor *nb_randint(int ndim, const int64_t *shape, int64_t low, int64_t high, nb_generator *g)
{
    if (high <= low)
        return nbi_error(NB_ERR_VALUE, "nb_randint: need low < high, got %lld and %lld", (long long)low,
                         (long long)high);
    nbi_tensor *t = nbi_tensor_new(NB_I64, ndim, shape, "nb_randint");
    if (!t) return NULL;
    int64_t *p = t->storage->data;
    uint64_t span = (uint64_t)high - (uint64_t)low;
    for (int64_t i = 0; i < t->numel; i++) p[i] = (int64_t)((uint64_t)low + nb_random_below(g, span));
    return nbi_handle(t);
}

nb_tensor *nb_randperm(int64_t n, nb_generator *g)
{
    if (n < 0) return nbi_error(NB_ERR_VALUE, "nb_randperm: n must be >= 0, got %lld", (long long)n);
    nbi_tensor *t = nbi_tensor_new(NB_I64, 1, &n, "nb_randperm");
    if (!t) return NULL;
    int64_t *p = t->storage->data;
    for (int64_t i = 0; i < n; i++) p[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)nb_random_below(g, (uint64_t)i + 1);
        int64_t tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    return nbi_handle(t);
}
