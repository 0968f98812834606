/* GEMM for any CPU: plain C on scalars, which gcc unrolls and vectorizes with the baseline instruction set. */
#include "gemm_internal.h"

#define VL 1
#define VZERO() 0
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VSET1(x) (x)
#define VMUL(a, b) ((a) * (b))
#define VFMA(a, b, c) ((a) * (b) + (c))

/* 8 x 8 floats or 8 x 4 doubles of accumulators fit the 16 SSE registers. */
#define T float
#define VEC float
#define SUF f32_portable
#define MR 8
#define NR 8
#define KC 256
#define NC 512
#include "gemm_template.h"
#undef T
#undef VEC
#undef SUF
#undef NR
#undef NC

#define T double
#define VEC double
#define SUF f64_portable
#define NR 4
#define NC 256
#include "gemm_template.h"
