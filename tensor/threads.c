/* Parallel loops. Serial placeholder: the persistent pool replaces it. */
#include "internal.h"

void nbi_parallel_for(int64_t n, int64_t grain, nbi_range_fn fn, void *ctx)
{
    (void)grain;
    if (n > 0) fn(ctx, 0, n);
}

int nbi_num_threads(void) { return 1; }
