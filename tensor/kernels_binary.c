/* Binary elementwise kernels: one inner loop per (op, dtype), generated from a one-line expression.
 * The contiguous and scalar-operand cases get their own blocked loops (NBI_VEC_FOR) so the compiler vectorizes
 * them; large operations are split over the threads by nbi_iter_run. */
#include "kernels_binary.h"

#include <math.h>

#define BINARY_LOOP(NAME, TO, TI, EXPR)                                                                   \
    static void NAME(int64_t n, char **p, const int64_t *s, const void *params)                           \
    {                                                                                                     \
        (void)params;                                                                                     \
        TO *o = (TO *)p[0];                                                                               \
        const TI *xa = (const TI *)p[1], *xb = (const TI *)p[2];                                          \
        if (s[0] == 1 && s[1] == 1 && s[2] == 1)                                                          \
            NBI_VEC_FOR(n, i, TI a = xa[i]; TI b = xb[i]; o[i] = (TO)(EXPR));                             \
        else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {                                                   \
            const TI b = xb[0];                                                                           \
            NBI_VEC_FOR(n, i, TI a = xa[i]; o[i] = (TO)(EXPR));                                           \
        } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {                                                 \
            const TI a = xa[0];                                                                           \
            NBI_VEC_FOR(n, i, TI b = xb[i]; o[i] = (TO)(EXPR));                                           \
        } else                                                                                            \
            for (int64_t i = 0; i < n; i++) { TI a = xa[i * s[1]], b = xb[i * s[2]]; o[i * s[0]] = (TO)(EXPR); } \
    }

#define ARITH(KIND, EXPR_F, EXPR_I)                        \
    BINARY_LOOP(KIND##_f32, float, float, EXPR_F)          \
    BINARY_LOOP(KIND##_f64, double, double, EXPR_F)        \
    BINARY_LOOP(KIND##_i64, int64_t, int64_t, EXPR_I)
#define FLOAT_ONLY(KIND, EXPR)                             \
    BINARY_LOOP(KIND##_f32, float, float, EXPR)            \
    BINARY_LOOP(KIND##_f64, double, double, EXPR)
#define COMPARE(KIND, EXPR)                                \
    BINARY_LOOP(KIND##_f32, uint8_t, float, EXPR)          \
    BINARY_LOOP(KIND##_f64, uint8_t, double, EXPR)         \
    BINARY_LOOP(KIND##_i64, uint8_t, int64_t, EXPR)        \
    BINARY_LOOP(KIND##_bool, uint8_t, uint8_t, EXPR)

/* Integer arithmetic wraps around as PyTorch's does (two's complement), computed unsigned: signed overflow would
 * be undefined behaviour. max/min propagate NaN like PyTorch's maximum/minimum. */
#define WRAP(OP) (int64_t)((uint64_t)a OP (uint64_t)b)
ARITH(add, a + b, WRAP(+))
ARITH(sub, a - b, WRAP(-))
ARITH(mul, a * b, WRAP(*))
FLOAT_ONLY(div, a / b)
FLOAT_ONLY(pow, pow(a, b))
ARITH(maximum, (a != a || a > b) ? a : b, a > b ? a : b)
ARITH(minimum, (a != a || a < b) ? a : b, a < b ? a : b)

/* Integer powers as PyTorch computes them: square-and-multiply, wrapping on overflow; a negative exponent
 * leaves 1 for a base of 1, +-1 for -1 and 0 (the truncated quotient) for any other base, 0 included. */
static inline int64_t int_pow(int64_t a, int64_t b)
{
    if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
    uint64_t base = (uint64_t)a, r = 1;
    for (uint64_t e = (uint64_t)b; e; e >>= 1) {
        if (e & 1) r *= base;
        base *= base;
    }
    return (int64_t)r;
}
BINARY_LOOP(pow_i64, int64_t, int64_t, int_pow(a, b))

/* Bool arithmetic stays bool, as in PyTorch: + and max are "or", * and min are "and" (inputs hold 0 or 1). */
BINARY_LOOP(add_bool, uint8_t, uint8_t, a | b)
BINARY_LOOP(mul_bool, uint8_t, uint8_t, a & b)
COMPARE(eq, a == b)
COMPARE(ne, a != b)
COMPARE(lt, a < b)
COMPARE(le, a <= b)
COMPARE(gt, a > b)
COMPARE(ge, a >= b)

#define ROW_ARITH(K) {[NB_F32] = K##_f32, [NB_F64] = K##_f64, [NB_I64] = K##_i64}
#define ROW_BOOL(K, B) {[NB_F32] = K##_f32, [NB_F64] = K##_f64, [NB_I64] = K##_i64, [NB_BOOL] = B}
#define ROW_CMP(K) {[NB_F32] = K##_f32, [NB_F64] = K##_f64, [NB_I64] = K##_i64, [NB_BOOL] = K##_bool}

static const nbi_loop_fn loops[][4] = {
    [NBI_ADD] = ROW_BOOL(add, add_bool), [NBI_SUB] = ROW_ARITH(sub), [NBI_MUL] = ROW_BOOL(mul, mul_bool),
    [NBI_DIV] = {[NB_F32] = div_f32, [NB_F64] = div_f64},            [NBI_POW] = ROW_ARITH(pow),
    [NBI_MAXIMUM] = ROW_BOOL(maximum, add_bool), [NBI_MINIMUM] = ROW_BOOL(minimum, mul_bool),
    [NBI_EQ] = ROW_CMP(eq), [NBI_NE] = ROW_CMP(ne), [NBI_LT] = ROW_CMP(lt),
    [NBI_LE] = ROW_CMP(le), [NBI_GT] = ROW_CMP(gt), [NBI_GE] = ROW_CMP(ge),
};

bool nbi_binary_supported(nbi_binary_kind kind, nb_dtype dt)
{
    return (unsigned)kind <= NBI_GE && nbi_dtype_valid(dt) && loops[kind][dt] != NULL;
}

void nbi_binary_kernel(nbi_binary_kind kind, nbi_tensor *out, const nbi_tensor *a, const nbi_tensor *b)
{
    const nbi_tensor *in[2] = {a, b};
    nbi_iter it;
    nbi_iter_init(&it, out, 2, in);
    nbi_iter_run(&it, loops[kind][a->dtype], NULL);
}
