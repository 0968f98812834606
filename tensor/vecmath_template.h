/* Vectorized f32 transcendental functions, written once with the compiler's generic vector types and
 * instantiated per instruction set (vecmath_portable.c, vecmath_avx2.c, vecmath_avx512.c), as the GEMM is.
 * Before including, define W (lanes per vector), VFMA(a, b, c) (a * b + c, fused where the target has it),
 * LOAD_PARTIAL(p, len) and STORE_PARTIAL(p, v, len) (the first len < W lanes from / to memory, the other lanes
 * of a load zero; masked where the target has masks: a partial copy through the stack would stall the vector
 * load that follows it, which costs short rows such as a softmax over 10 classes more than the arithmetic) and
 * VECMATH_TABLE (the name of the nbi_vecmath table to define).
 *
 * Every element goes through the same vector code, the last partial vector included (it is padded), so an
 * element's result does not depend on its position, the array's length or the thread count. The algorithms
 * are the classic range reductions with minimax polynomials (Cephes' coefficients for exp, log and tanh; the
 * rational functions and polynomials of erf and gelu were fitted for this file, minimax with each coefficient
 * rounded to float in turn and the others refitted); each is within a few ulp of the correctly rounded result
 * over the whole float range (test_vecmath measures it) and keeps the special values of C's functions: inf,
 * NaN, signed zeros, overflow to inf and underflow to zero or subnormals. */
#include <stdint.h>
#include <string.h>

#include "vecmath.h"

#if defined(__clang__)
/* clang would otherwise fuse a * b + c on its own in the FMA instantiations, so the bits would depend on the
 * compiler; gcc does not contract in ISO C mode. */
#pragma STDC FP_CONTRACT OFF
#endif

typedef float vf __attribute__((vector_size(W * 4)));
typedef int32_t vi __attribute__((vector_size(W * 4)));

static inline vf K(float c)
{
    vf v = {0};
    return v + c;
}
#ifdef VECMATH_PARTIAL_BY_LANES
/* LOAD_PARTIAL and STORE_PARTIAL for targets without masked moves: lane by lane. */
static inline vf load_partial(const float *p, int64_t len)
{
    vf v = {0};
    for (int64_t k = 0; k < len; k++) v[k] = p[k];
    return v;
}
static inline void store_partial(float *p, vf v, int64_t len)
{
    for (int64_t k = 0; k < len; k++) p[k] = v[k];
}
#endif

/* c0 x^(n-1) + c1 x^(n-2) + ... + c(n-1) by Horner's rule, one fused multiply-add per coefficient after the
 * first: HORNER(x, c0, c1, ...), the coefficients as float literals. */
#define HORNER(x, ...) \
    horner_v((x), (const float[]){__VA_ARGS__}, (int)(sizeof((const float[]){__VA_ARGS__}) / sizeof(float)))
/* loops over a few fixed elements that must stay unrolled (their vectors in registers) */
#if defined(__clang__)
#define UNROLL_FULL _Pragma("clang loop unroll(full)")
#else
#define UNROLL_FULL _Pragma("GCC unroll 16")
#endif

/* Lane-wise choice by a comparison mask (all ones where true). */
static inline vf sel(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }
static inline vf fma_v(vf a, vf b, vf c) { return VFMA(a, b, c); }
static inline vf horner_v(vf x, const float *c, int n)
{
    vf p = K(c[0]);
    for (int i = 1; i < n; i++) p = fma_v(p, x, K(c[i]));
    return p;
}
static inline vf abs_v(vf x) { return (vf)((vi)x & 0x7fffffff); }
/* |magnitude| with the sign of sign_of */
static inline vf with_sign(vf magnitude, vf sign_of) { return (vf)((vi)magnitude | ((vi)sign_of & (int32_t)0x80000000)); }

/* (e^r - 1 - r) / r^2 for |r| <= ln2/2 (and a little beyond), of degree 5, so that e^r = 1 + r + r^2 P(r).
 * The callers add the 1 and the r themselves: gelu needs e^r - 1 with r in two parts. */
static inline vf exp_poly(vf r)
{
    return HORNER(r, 1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f,
                  5.0000001201e-1f);
}

/* y 2^k for an integral k from -152 to 128, as two factors so that neither is outside the normal range: a
 * subnormal result is rounded once, by the second multiplication. */
static inline vf scale_by_pow2(vf y, vf k)
{
    vi ki = __builtin_convertvector(k, vi);
    vi k1 = ki >> 1, k2 = ki - k1;
    return y * (vf)((k1 + 127) << 23) * (vf)((k2 + 127) << 23);
}

/* e^x: x = k ln2 + r with |r| <= ln2/2 (ln2 in two parts so k ln2 is exact), e^r by a degree-7 polynomial,
 * then 2^k as two factors so that k from -150 to 128 (subnormal results, and the top of the range) needs no
 * exponent outside the normal range. Clamping x first keeps k in that range; a NaN fails both comparisons and
 * stays NaN. */
static inline vf v_exp(vf x)
{
    x = sel(x > 88.8f, K(88.8f), x);
    x = sel(x < -104.0f, K(-104.0f), x);
    vf k = fma_v(x, K(1.44269504088896341f), K(12582912.0f)) - 12582912.0f; /* round to nearest */
    vf r = fma_v(k, K(-0.693359375f), x);
    r = fma_v(k, K(2.12194440e-4f), r);
    return scale_by_pow2(fma_v(exp_poly(r), r * r, r) + 1.0f, k);
}

/* log x: x = 2^e m with m in [sqrt(1/2), sqrt 2), log m = f - f^2/2 + f^3 P(f) with f = m - 1 (exact), and
 * e ln2 added in two parts. Subnormals are scaled by 2^23 first. */
static inline vf v_log(vf x)
{
    const vf x0 = x;
    vi subnormal = x < 1.17549435e-38f;
    x = sel(subnormal, x * 8388608.0f, x);
    vi bits = (vi)x;
    vi e = ((bits >> 23) & 0xff) - 126 - (subnormal & 23);
    vf m = (vf)((bits & 0x007fffff) | 0x3f000000); /* [0.5, 1) */
    vi low = m < 0.707106781186547524f;
    e = e + low; /* a mask is -1 where true */
    vf f = sel(low, m + m, m) - 1.0f;
    vf z = f * f;
    vf p = HORNER(f, 7.0376836292e-2f, -1.1514610310e-1f, 1.1676998740e-1f, -1.2420140846e-1f, 1.4249322787e-1f,
                  -1.6668057665e-1f, 2.0000714765e-1f, -2.4999993993e-1f, 3.3333331174e-1f);
    vf ef = __builtin_convertvector(e, vf);
    vf y = p * f * z;
    y = fma_v(ef, K(-2.12194440e-4f), y);
    y = fma_v(z, K(-0.5f), y);
    vf r = fma_v(ef, K(0.693359375f), f + y);
    r = sel(x0 == __builtin_inff(), x0, r);
    r = sel(x0 == 0.0f, K(-__builtin_inff()), r);
    return sel(x0 < 0.0f, K(__builtin_nanf("")), sel(x0 != x0, x0, r));
}

/* tanh: an odd polynomial below |x| = 0.625, 1 - 2/(e^2|x| + 1) above (e^2|x| = inf gives 1), and the sign
 * of x put back (so tanh(-0) = -0). */
static inline vf v_tanh(vf x)
{
    vf a = abs_v(x), z = x * x;
    vf p = HORNER(z, -5.70498872745e-3f, 2.06390887954e-2f, -5.37397155531e-2f, 1.33314422036e-1f,
                  -3.33332819422e-1f);
    vf small = fma_v(p * z, a, a);
    vf big = 1.0f - 2.0f / (v_exp(a + a) + 1.0f);
    return with_sign(sel(a < 0.625f, small, big), x);
}

/* 1/(1 + e^-x) as 1/(1+e) for x >= 0 and e/(1+e) below, with e = e^-|x| <= 1: no overflow, and sigmoid of a
 * very negative x is its tiny value rather than 0 from 1/(1 + inf). One division serves both. */
static inline vf v_sigmoid(vf x)
{
    vf e = v_exp(-abs_v(x));
    return sel(x >= 0.0f, K(1.0f), e) / (1.0f + e);
}

static inline vf v_silu(vf x) { return x * v_sigmoid(x); }

/* PyTorch's tanh form of gelu, x/2 (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3), evaluated as
 * x sigmoid(2u) (the same function): 1 + tanh(u) cancels for negative x, the sigmoid does not. */
static inline vf v_gelu_tanh(vf x)
{
    vf u2 = (x + 0.044715f * x * x * x) * 1.59576912160573071f;
    return x * v_sigmoid(u2);
}

/* e^(y^2/2) Phi(-y), the upper tail of the normal distribution without its Gaussian factor, for 0.75 <= y <=
 * 14.5, as *q / (d + *lo): d rounded and *lo its rounding error. The reciprocal is sqrt(2 pi) y + P/Q, P/Q of
 * degree (3, 4) fitted minimax for the error it puts in the sum (below 2^-27 with the coefficients rounded):
 * P/Q falls off like sqrt(2 pi)/y, so the error of its Horner sums (a few ulp once y is large, each sum being
 * dominated by its last term) is scaled down by its share of the sum. The tail is then Q / (sqrt(2 pi) y Q +
 * P), one division, Q's error being common to both and cancelling. The product of t = y Q with sqrt(2 pi) is
 * kept exact the way gelu keeps a^2 exact: t's top 12 bits times sqrt(2 pi)'s top 12 bits, the small products
 * going with P. That big term is at least half the denominator from y = 0.75 up, so d - big is exact and the
 * rounding error of the last sum comes out exactly. */
static inline vf v_tail(vf y, vf *q_out, vf *lo)
{
    vf p = HORNER(y, 3.93759869e-2f, 3.06613177e-1f, 1.11028242f, 1.99989259f);
    vf q = HORNER(y, 1.57127455e-2f, 1.22148819e-1f, 4.77487296e-1f, 1.01027942f, 1.0f);
    vf t = y * q, th = (vf)((vi)t & (int32_t)0xfffff000);
    vf big = th * 2.5068359375f; /* sqrt(2 pi) = 2.5068359375 - 2.07662869e-4 */
    vf rest = fma_v(t - th, K(2.5068359375f), fma_v(t, K(-2.07662869e-4f), p));
    vf d = big + rest;
    *lo = rest - (d - big);
    *q_out = q;
    return d;
}

/* erf of a = |x|, with the sign of x put back (erf(-0) = -0). Below 1, a + a P(a^2), P of degree 6 fitted
 * minimax for relative error. Above, 1 - erfc(a) with erfc(a) = 2 Phi(-a sqrt 2) = 2 e^(-a^2) times
 * v_tail(a sqrt 2): erfc(1) is below 0.16, so its few ulp of error are a fraction of an ulp of erf, and so is
 * the rounding of a^2 (which moves e^(-a^2) by up to a^2 times that rounding). Beyond a = 4 erf rounds to 1;
 * clamping there keeps infinities out. A NaN is returned as it came (as by erff). */
static inline vf v_erf(vf x)
{
    vf a = abs_v(x), s = a * a;
    /* the last coefficient is 2/sqrt(pi) - 1 */
    vf p = HORNER(s, 7.80690316e-5f, -7.9978531e-4f, 5.1871622e-3f, -2.68533472e-2f, 1.12835787e-1f, -3.7612626e-1f,
                  1.28379166e-1f);
    vf small = fma_v(a, p, a);
    vf c = sel(a > 4.0f, K(4.0f), a), q, unused;
    vf d = v_tail(c * 1.41421356237309505f, &q, &unused);
    vf big = fma_v(v_exp(-(c * c)) * -2.0f, q / d, K(1.0f));
    return sel(x != x, x, with_sign(sel(a < 1.0f, small, big), x));
}

/* gelu(x) = x Phi(x). Below |x| = 0.75, x/2 + x^2 P(x^2), P of degree 4 fitted minimax for the relative error
 * of gelu(-|x|) (the two terms cancel by at most a factor 2.2 there). Above, with a = |x| and
 * g = a Phi(-a) = a e^(-a^2/2) v_tail(a), gelu(x) is -g for x < 0 and x - g for x > 0 (Phi(x) = 1 - Phi(-x)):
 * the tiny negative results keep their relative precision, with no 1 + erf to cancel, and g < x/4 costs
 * x - g nothing.
 * e^(-a^2/2) is the delicate part: rounding a^2/2 (up to 105) would move it by that much times 2^-24, a
 * hundred ulp. So a is split into ah, its top 12 significant bits, and al = a - ah: ah^2/2 is exact, and the
 * rest, al (ah + al/2), is small enough for its rounding not to matter. The exact part goes into the range
 * reduction k ln2 + r, whose first step (ah^2/2 - k ln2hi) is exact too. r stays in two parts, rh + rl, rl
 * gathering the small terms and also v_tail's rounding error (as a relative correction of c = a v_tail(a)),
 * and g = c + c (e^r - 1), times 2^k: the roundings left are those of c, of e^r - 1 (a fraction of an ulp of
 * g) and of g.
 * Beyond a = 14.5, g is below half the smallest subnormal: clamping there keeps infinities out (gelu(inf) =
 * inf - 0). gelu(-inf) is NaN, as PyTorch's and the f64 path's -inf times 0, although the limit is -0. A NaN is
 * returned as it came, so that its payload does not depend on the ISA. */
static inline vf v_gelu(vf x)
{
    vf a = abs_v(x);
    a = sel(a > 14.5f, K(14.5f), a);
    vf ah = (vf)((vi)a & (int32_t)0xfffff000), al = a - ah;
    vf hi = ah * ah * -0.5f;
    vf lo = -(al * (ah + al * 0.5f));
    vf k = fma_v(hi + lo, K(1.44269504088896341f), K(12582912.0f)) - 12582912.0f; /* round to nearest */
    vf q, dlo, d = v_tail(a, &q, &dlo);
    vf c = a * q / d; /* a q / (d + dlo) = c (1 - dlo/d) = c e^(-dlo/d) */
    vf rcp = (vf)(0x7ef311c7 - (vi)d); /* 1/d within 6%, plenty for dlo/d < 2^-24 */
    vf rh = fma_v(k, K(-0.693359375f), hi);
    vf rl = fma_v(k, K(2.12194440e-4f), lo) - dlo * rcp;
    vf r = rh + rl;
    vf em1 = rh + fma_v(exp_poly(r), r * r, rl);
    vf g = scale_by_pow2(fma_v(c, em1, c), k);
    vf big = sel(x > 0.0f, x - g, g);
    vf s = x * x;
    vf p = HORNER(s, 9.83251739e-5f, -1.17541756e-3f, 9.96985193e-3f, -6.64898977e-2f, 3.98942262e-1f);
    vf small = fma_v(s, p, x * 0.5f);
    vf y = sel(x == -__builtin_inff(), K(__builtin_nanf("")), with_sign(sel(a < 0.75f, small, big), x));
    return sel(x != x, x, y);
}

/* out[i] = F(in[i]) for i < n; out may be in. The tail is computed as a whole vector padded with zeros. */
#define VECMATH_ARRAY(NAME, F)                                                                            \
    static void NAME(float *out, const float *in, int64_t n)                                              \
    {                                                                                                     \
        int64_t i = 0;                                                                                    \
        for (; i + W <= n; i += W) {                                                                      \
            vf v;                                                                                         \
            memcpy(&v, in + i, sizeof v);                                                                 \
            v = F(v);                                                                                     \
            memcpy(out + i, &v, sizeof v);                                                                \
        }                                                                                                 \
        if (i < n) STORE_PARTIAL(out + i, F(LOAD_PARTIAL(in + i, n - i)), n - i);                         \
    }
VECMATH_ARRAY(exp_array, v_exp)
VECMATH_ARRAY(log_array, v_log)
VECMATH_ARRAY(tanh_array, v_tanh)
VECMATH_ARRAY(sigmoid_array, v_sigmoid)
VECMATH_ARRAY(silu_array, v_silu)
VECMATH_ARRAY(gelu_tanh_array, v_gelu_tanh)
VECMATH_ARRAY(erf_array, v_erf)
VECMATH_ARRAY(gelu_array, v_gelu)

/* The sum in double of n floats in NBI_SUM_LANES interleaved partial sums (element i into sum i mod
 * NBI_SUM_LANES), combined pairwise at the end: one fixed order, the same on every instruction set. */
typedef float vhalf_f __attribute__((vector_size(W * 2)));
typedef double vhalf_d __attribute__((vector_size(W * 4)));
#define SUM_ACCS (NBI_SUM_LANES / (W / 2))
static double sum_array(const float *x, int64_t n)
{
    /* SUM_ACCS vectors of doubles in registers: acc[a] lane l holds the elements a W/2 + l mod NBI_SUM_LANES */
    vhalf_d acc[SUM_ACCS];
    UNROLL_FULL
    for (int a = 0; a < SUM_ACCS; a++) acc[a] = (vhalf_d){0};
    int64_t i = 0;
    for (; i + NBI_SUM_LANES <= n; i += NBI_SUM_LANES) {
    UNROLL_FULL
        for (int a = 0; a < SUM_ACCS; a++) {
            vhalf_f v;
            memcpy(&v, x + i + a * (W / 2), sizeof v);
            acc[a] += __builtin_convertvector(v, vhalf_d);
        }
    }
    double p[NBI_SUM_LANES];
    memcpy(p, acc, sizeof p);
    for (; i < n; i++) p[i % NBI_SUM_LANES] += x[i];
    for (int w = NBI_SUM_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++) p[j] += p[j + w];
    return p[0];
}

/* out[k] = e^(in[k] - shift) for k < n (out may be in), each added into part[k mod NBI_SUM_LANES] in double:
 * softmax's exponentials and their sum in one pass. A last block shorter than NBI_SUM_LANES is computed as a
 * whole one with its missing lanes zeroed before the sum, so the sums stay in registers (reading back what a
 * masked store wrote would stall). */
typedef double vd __attribute__((vector_size(W * 8)));
static inline void add_block(vd *acc, const vf *e)
{
    /* acc[b] lane l holds the partial sum of elements b W + l mod NBI_SUM_LANES, the layout of part[]; widening
     * whole vectors keeps e in registers (taking halves through memory made the store before it stall) */
    UNROLL_FULL
    for (int b = 0; b < NBI_SUM_LANES / W; b++) acc[b] += __builtin_convertvector(e[b], vd);
}

static void exp_shifted_array(float *out, const float *in, int64_t n, float shift, double *part)
{
    enum { BLOCK_VECTORS = NBI_SUM_LANES / W };
    vd acc[BLOCK_VECTORS];
    memcpy(acc, part, sizeof acc);
    vf e[BLOCK_VECTORS];
    int64_t i = 0;
    for (; i + NBI_SUM_LANES <= n; i += NBI_SUM_LANES) {
        for (int b = 0; b < BLOCK_VECTORS; b++) {
            vf v;
            memcpy(&v, in + i + b * W, sizeof v);
            e[b] = v_exp(v - shift);
            memcpy(out + i + b * W, &e[b], sizeof e[b]);
        }
        add_block(acc, e);
    }
    if (i < n) {
        vi lane;
        for (int k = 0; k < W; k++) lane[k] = k;
        for (int b = 0; b < BLOCK_VECTORS; b++) {
            const int64_t len = n - i - b * W;
            if (len <= 0) {
                e[b] = K(0.0f);
            } else if (len >= W) {
                vf v;
                memcpy(&v, in + i + b * W, sizeof v);
                e[b] = v_exp(v - shift);
                memcpy(out + i + b * W, &e[b], sizeof e[b]);
            } else {
                vf v = v_exp(LOAD_PARTIAL(in + i + b * W, len) - shift);
                STORE_PARTIAL(out + i + b * W, v, len);
                e[b] = sel(lane < (int32_t)len, v, K(0.0f));
            }
        }
        add_block(acc, e);
    }
    memcpy(part, acc, sizeof acc);
}

/* The largest of x[0..n), n >= 1: what C's "m = x[0]; if (x[k] > m) m = x[k]" finds when no element is NaN
 * (the maximum is exact, so the order of the comparisons does not matter); with a NaN, some element. Four
 * vectors of running maxima; the last block overlaps the one before it, which a maximum does not mind. */
static float max_array(const float *x, int64_t n)
{
    enum { ACCS = 4, BLOCK = ACCS * W };
    if (n < BLOCK) {
        float m = x[0];
        for (int64_t k = 1; k < n; k++)
            if (x[k] > m) m = x[k];
        return m;
    }
    vf acc[ACCS];
    memcpy(acc, x, sizeof acc);
    for (int64_t i = BLOCK; i < n; i += BLOCK) {
        const float *b = i + BLOCK <= n ? x + i : x + n - BLOCK;
        UNROLL_FULL
        for (int a = 0; a < ACCS; a++) {
            vf v;
            memcpy(&v, b + a * W, sizeof v);
            acc[a] = sel(v > acc[a], v, acc[a]);
        }
    }
    for (int a = 1; a < ACCS; a++) acc[0] = sel(acc[a] > acc[0], acc[a], acc[0]);
    float m = acc[0][0];
    for (int k = 1; k < W; k++)
        if (acc[0][k] > m) m = acc[0][k];
    return m;
}

/* y[k] = (float)((double)(x[k] - shift) * scale - offset) for k < n (y may be x), one rounding from double:
 * softmax's normalization (shift 0, offset 0) and log-softmax (scale 1), where multiplying by 1 and subtracting
 * 0 change no bits. Half vectors of floats widen to whole vectors of doubles; the tail is scalar C, which rounds
 * the same way. */
static inline void shift_scale_loop(float *y, const float *x, int64_t n, float shift, double scale, double offset,
                                    int scale_only)
{
    int64_t i = 0;
    for (; i + W / 2 <= n; i += W / 2) {
        vhalf_f v;
        memcpy(&v, x + i, sizeof v);
        v = scale_only ? __builtin_convertvector(__builtin_convertvector(v, vhalf_d) * scale, vhalf_f)
                       : __builtin_convertvector(__builtin_convertvector(v - shift, vhalf_d) * scale - offset, vhalf_f);
        memcpy(y + i, &v, sizeof v);
    }
    for (; i < n; i++) y[i] = (float)((double)(x[i] - shift) * scale - offset);
}

static void shift_scale_array(float *y, const float *x, int64_t n, float shift, double scale, double offset)
{
    /* softmax's case without the subtractions of +0 (which change no bits; -0 would turn -0 into +0), which cost a
     * third of the pass */
    if (shift == 0 && !__builtin_signbit(shift) && offset == 0 && !__builtin_signbit(offset))
        shift_scale_loop(y, x, n, 0.0f, scale, 0.0, 1);
    else shift_scale_loop(y, x, n, shift, scale, offset, 0);
}

const nbi_vecmath VECMATH_TABLE = {
    .exp = exp_array,
    .log = log_array,
    .tanh = tanh_array,
    .sigmoid = sigmoid_array,
    .silu = silu_array,
    .gelu_tanh = gelu_tanh_array,
    .erf = erf_array,
    .gelu = gelu_array,
    .sum = sum_array,
    .exp_shifted = exp_shifted_array,
    .max = max_array,
    .shift_scale = shift_scale_array,
};
