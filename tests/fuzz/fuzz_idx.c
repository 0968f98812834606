/* libFuzzer target: IDX files (MNIST format), raw or gzip compressed (nb_read_idx detects which). */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_file(".idx");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(data, size);
    int64_t live = nb_memory_stats_get().live_tensors;
    nb_tensor *t = nb_read_idx(path);
    if (t) {
        for (int64_t j = 0, n = nb_numel(t); j < n; j++) (void)nb_get_flat(t, j);
        nb_free(t);
    } else {
        fuzz_expect_error("nb_read_idx");
    }
    fuzz_expect_no_live_tensors(live);
    return 0;
}
