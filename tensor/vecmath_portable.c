/* The vector math for any CPU: 4-lane vectors (SSE2 on x86-64, NEON on AArch64), multiply-adds in two steps. */
#define W 4
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VECMATH_TABLE nbi_vecmath_portable
#include "vecmath_template.h"
