/* Unary elementwise kernels: one inner loop per (op, dtype), generated from a one-line expression in `x`.
 * Float expressions are written once with <tgmath.h>, so the f32 loop calls expf, tanhf, ... and the f64 loop
 * exp, tanh, ...; inside a loop `real` is the element type and A, B are the op's parameters in that type.
 * The contiguous case is a separate plain loop so the compiler can vectorize it. f32 exp, log, tanh, sigmoid,
 * silu, gelu (both forms) and erf go through the vector functions of vecmath.h instead (see
 * vector_function). */
#include "kernels_unary.h"

#include "kernels_binary.h" /* NBI_VEC_FOR */
#include "kernels_matmul.h" /* nbi_gemm_isa */
#include "vecmath.h"

#include <float.h>
#include <tgmath.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#elif defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#define UNARY_LOOP_BODY(T, EXPR)                                                                          \
    T *o = (T *)p[0];                                                                                     \
    const T *in = (const T *)p[1];                                                                        \
    if (s[0] == 1 && s[1] == 1)                                                                           \
        NBI_VEC_FOR(n, i, const T x = in[i]; o[i] = (T)(EXPR));                                           \
    else                                                                                                  \
        for (int64_t i = 0; i < n; i++) { const T x = in[i * s[1]]; o[i * s[0]] = (T)(EXPR); }

#define FLOAT_LOOP(NAME, T, EXPR)                                                                         \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)                           \
    {                                                                                                     \
        typedef T real;                                                                                   \
        const nbi_unary_params *prm = params;                                                             \
        const real A = (real)prm->a, B = (real)prm->b;                                                    \
        (void)A;                                                                                          \
        (void)B;                                                                                          \
        UNARY_LOOP_BODY(T, EXPR)                                                                          \
    }

#define INT_LOOP(NAME, EXPR)                                                                              \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)                           \
    {                                                                                                     \
        (void)params;                                                                                     \
        UNARY_LOOP_BODY(int64_t, EXPR)                                                                    \
    }

#define FLOAT_OP(KIND, EXPR)                                                                              \
    FLOAT_LOOP(KIND##_f32, float, EXPR)                                                                   \
    FLOAT_LOOP(KIND##_f64, double, EXPR)
#define ANY_OP(KIND, EXPR_F, EXPR_I)                                                                      \
    FLOAT_OP(KIND, EXPR_F)                                                                                \
    INT_LOOP(KIND##_i64, EXPR_I)

/* Logistic function without overflow: with e = exp(-|x|) <= 1, sigmoid is 1/(1+e) for x >= 0 and e/(1+e)
 * below, so sigmoid(-1000) is 0 instead of 1/(1+inf) and sigmoid(1000) is 1. */
#define SIGMOID_FN(T, SUF)                                                                                \
    static inline T logistic_##SUF(T x)                                                                    \
    {                                                                                                     \
        T e = exp(-fabs(x)), r = 1 / (1 + e);                                                             \
        return x >= 0 ? r : e * r;                                                                        \
    }
SIGMOID_FN(float, f32)
SIGMOID_FN(double, f64)
#define SIGMOID(x) _Generic((x), float: logistic_f32, double: logistic_f64)(x)

/* sqrt(2/pi) and the cubic coefficient of the tanh approximation of gelu (PyTorch's constants). */
#define GELU_BETA (M_SQRT2 * M_2_SQRTPI * 0.5)
#define GELU_KAPPA 0.044715

/* Integer negation wraps through unsigned arithmetic (INT64_MIN stays INT64_MIN, as in PyTorch) instead of
 * overflowing, which C leaves undefined. */
#define INEG(x) ((int64_t)(0u - (uint64_t)(x)))

ANY_OP(neg, -x, INEG(x))
ANY_OP(abs, fabs(x), x < 0 ? INEG(x) : x)
ANY_OP(square, x * x, (int64_t)((uint64_t)x * (uint64_t)x))
/* NaN fails x <= 0 and passes through, like torch.relu */
ANY_OP(relu, x <= 0 ? (real)0 : x, x > 0 ? x : 0)
FLOAT_OP(exp, exp(x))
FLOAT_OP(log, log(x))
FLOAT_OP(sqrt, sqrt(x))
FLOAT_OP(rsqrt, 1 / sqrt(x))
FLOAT_OP(reciprocal, 1 / x)
FLOAT_OP(sin, sin(x))
FLOAT_OP(cos, cos(x))
FLOAT_OP(tanh, tanh(x))
FLOAT_OP(sigmoid, SIGMOID(x))
FLOAT_OP(leaky_relu, x > 0 ? x : x * A)
/* expm1 keeps alpha (e^x - 1) accurate for x near 0 */
FLOAT_OP(elu, x > 0 ? x : A * expm1(x))
/* x Phi(x) with Phi(x) = erfc(-x/sqrt 2)/2: the same function as PyTorch's (1 + erf(x/sqrt 2))/2, without the
 * cancellation that 1 + erf suffers for negative x */
FLOAT_OP(gelu, x * (real)0.5 * erfc(-x * (real)M_SQRT1_2))
/* x/2 (1 + tanh u) as x sigmoid(2u), the same function without the cancellation of 1 + tanh u for negative x
 * (as the vector f32 code computes it) */
FLOAT_OP(gelu_tanh, x * SIGMOID((x + (real)GELU_KAPPA * x * x * x) * (real)(2 * GELU_BETA)))
/* x / (1 + e^-x) computed as x sigmoid(x), so x = -1000 gives -0 without an infinite intermediate */
FLOAT_OP(silu, x * SIGMOID(x))
/* Above the threshold softplus is x itself (PyTorch's rule). Below it, log(1 + e^bx) is evaluated as
 * max(bx, 0) + log1p(e^-|bx|): exact for very negative bx (log1p of a tiny number) and free of overflow for
 * large bx when the threshold is large. */
FLOAT_OP(softplus, x * A > B ? x : ((x * A > 0 ? x * A : (real)0) + log1p(exp(-fabs(x * A)))) / A)
/* lo then hi, so that lo > hi gives hi everywhere (torch.clamp); NaN passes through */
FLOAT_OP(clamp, (x < A ? A : x) > B ? B : (x < A ? A : x))
FLOAT_OP(erf, erf(x))
/* PyTorch's (0 < x) - (x < 0): a NaN has sign 0 and -0 has sign +0, not NaN and -0 as copysign would give */
ANY_OP(sign, (real)((x > 0) - (x < 0)), (x > 0) - (x < 0))
/* a bool's sign is itself */
static void sign_bool(int64_t n, char **p, const int64_t *s, const void *params)
{
    (void)params;
    UNARY_LOOP_BODY(uint8_t, x)
}

#define ROW_ANY(K) {[NB_F32] = K##_f32, [NB_F64] = K##_f64, [NB_I64] = K##_i64}
#define ROW_FLOAT(K) {[NB_F32] = K##_f32, [NB_F64] = K##_f64}

static const nbi_loop_fn loops[NBI_UNARY_COUNT][4] = {
    [NBI_NEG] = ROW_ANY(neg),
    [NBI_ABS] = ROW_ANY(abs),
    [NBI_SQUARE] = ROW_ANY(square),
    [NBI_RELU] = ROW_ANY(relu),
    [NBI_EXP] = ROW_FLOAT(exp),
    [NBI_LOG] = ROW_FLOAT(log),
    [NBI_SQRT] = ROW_FLOAT(sqrt),
    [NBI_RSQRT] = ROW_FLOAT(rsqrt),
    [NBI_RECIPROCAL] = ROW_FLOAT(reciprocal),
    [NBI_SIN] = ROW_FLOAT(sin),
    [NBI_COS] = ROW_FLOAT(cos),
    [NBI_TANH] = ROW_FLOAT(tanh),
    [NBI_SIGMOID] = ROW_FLOAT(sigmoid),
    [NBI_LEAKY_RELU] = ROW_FLOAT(leaky_relu),
    [NBI_ELU] = ROW_FLOAT(elu),
    [NBI_GELU] = ROW_FLOAT(gelu),
    [NBI_GELU_TANH] = ROW_FLOAT(gelu_tanh),
    [NBI_SILU] = ROW_FLOAT(silu),
    [NBI_SOFTPLUS] = ROW_FLOAT(softplus),
    [NBI_CLAMP] = ROW_FLOAT(clamp),
    [NBI_ERF] = ROW_FLOAT(erf),
    [NBI_SIGN] = {[NB_F32] = sign_f32, [NB_F64] = sign_f64, [NB_I64] = sign_i64, [NB_BOOL] = sign_bool},
};

bool nbi_unary_supported(nbi_unary_kind kind, nb_dtype dt)
{
    return (unsigned)kind < NBI_UNARY_COUNT && nbi_dtype_valid(dt) && loops[kind][dt] != NULL;
}

/* A double parameter as the nearest float, saturating to infinity: converting a double beyond the float range
 * is undefined in C, and a bound of 1e300 on f32 data means the same as no bound. */
static double saturate_f32(double v)
{
    if (v > FLT_MAX) return INFINITY;
    if (v < -FLT_MAX) return -INFINITY;
    return v;
}

const nbi_vecmath *nbi_vecmath_get(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    switch (nbi_gemm_isa()) {
    case NBI_ISA_AVX512: return &nbi_vecmath_avx512;
    case NBI_ISA_AVX2: return &nbi_vecmath_avx2;
    default: break;
    }
#endif
    return &nbi_vecmath_portable;
}

/* The f32 kinds with a vector function, or NULL. */
static nbi_vec_fn vector_function(nbi_unary_kind kind)
{
    const nbi_vecmath *vm = nbi_vecmath_get();
    switch (kind) {
    case NBI_EXP: return vm->exp;
    case NBI_LOG: return vm->log;
    case NBI_TANH: return vm->tanh;
    case NBI_SIGMOID: return vm->sigmoid;
    case NBI_SILU: return vm->silu;
    case NBI_GELU_TANH: return vm->gelu_tanh;
    case NBI_GELU: return vm->gelu;
    case NBI_ERF: return vm->erf;
    default: return NULL;
    }
}

/* Strided operands are gathered into a buffer and go through the same vector code, so a view gives the same
 * bits as a contiguous copy. */
#define GATHER_CHUNK 256
static void vector_loop_f32(int64_t n, char **p, const int64_t *s, const void *params)
{
    const nbi_vec_fn fn = *(const nbi_vec_fn *)params;
    float *o = (float *)p[0];
    const float *in = (const float *)p[1];
    if (s[0] == 1 && s[1] == 1) {
        fn(o, in, n);
        return;
    }
    float buf[GATHER_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += GATHER_CHUNK) {
        const int64_t m = n - i0 < GATHER_CHUNK ? n - i0 : GATHER_CHUNK;
        for (int64_t k = 0; k < m; k++) buf[k] = in[(i0 + k) * s[1]];
        fn(buf, buf, m);
        for (int64_t k = 0; k < m; k++) o[(i0 + k) * s[0]] = buf[k];
    }
}

void nbi_unary_kernel(nbi_unary_kind kind, nbi_tensor *out, const nbi_tensor *in, const nbi_unary_params *params)
{
    nbi_unary_params p = params ? *params : (nbi_unary_params){0, 0};
    if (in->dtype == NB_F32) {
        p.a = saturate_f32(p.a);
        p.b = saturate_f32(p.b);
    }
    nbi_iter it;
    nbi_iter_init(&it, out, 1, &in);
    nbi_vec_fn fn = in->dtype == NB_F32 ? vector_function(kind) : NULL;
    if (fn) nbi_iter_run(&it, vector_loop_f32, &fn);
    else nbi_iter_run(&it, loops[kind][in->dtype], &p);
}

void nbi_sqrt_inplace_f32(float *x, int64_t n)
{
    int64_t i = 0;
#if defined(__SSE2__)
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#elif defined(__aarch64__) && defined(__ARM_NEON)
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vsqrtq_f32(vld1q_f32(x + i)));
#endif
    for (; i < n; i++) x[i] = sqrtf(x[i]);
}
void nbi_sqrt_inplace_f64(double *x, int64_t n)
{
    int64_t i = 0;
#if defined(__SSE2__)
    for (; i + 2 <= n; i += 2) _mm_storeu_pd(x + i, _mm_sqrt_pd(_mm_loadu_pd(x + i)));
#elif defined(__aarch64__) && defined(__ARM_NEON)
    for (; i + 2 <= n; i += 2) vst1q_f64(x + i, vsqrtq_f64(vld1q_f64(x + i)));
#endif
    for (; i < n; i++) x[i] = sqrt(x[i]);
}

#ifdef NBI_HAVE_AVX512_VARIANTS
NBI_TARGET_AVX512 void nbi_sqrt_inplace_f32_avx512(float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_sqrt_ps(_mm512_loadu_ps(x + i)));
    for (; i < n; i++) x[i] = sqrtf(x[i]);
}
NBI_TARGET_AVX512 void nbi_sqrt_inplace_f64_avx512(double *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(x + i, _mm512_sqrt_pd(_mm512_loadu_pd(x + i)));
    for (; i < n; i++) x[i] = sqrt(x[i]);
}
#endif
