/* The vector math for any CPU: 4-lane vectors (SSE2 on x86-64, NEON on AArch64), multiply-adds in two steps. */
#define W 4
#define VFMA(a, b, c) ((a) * (b) + (c))
#define LOAD_PARTIAL(p, len) load_partial(p, len)
#define STORE_PARTIAL(p, v, len) store_partial(p, v, len)
#define VECMATH_TABLE nbi_vecmath_portable
#define VECMATH_PARTIAL_BY_LANES
#include "vecmath_template.h"
