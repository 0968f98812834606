/* libFuzzer target: safetensors checkpoints through both readers, nb_read_safetensors (every dtype, converted)
 * and nb_load_safetensors (strict and partial, into a fixed list of each loadable dtype). */
#include "fuzz_common.h"

static nb_param_list *into;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_file(".safetensors");
    /* Tensors named as in the seed corpus, so that loads get past the name matching. */
    into = nb_param_list_new();
    if (!into || nb_param_list_add(into, "w", nb_zeros(NB_SHAPE(2, 3), NB_F32), false) ||
        nb_param_list_add(into, "b", nb_zeros(NB_SHAPE(3), NB_F64), false) ||
        nb_param_list_add(into, "n", nb_zeros(0, NULL, NB_I64), true) ||
        nb_param_list_add(into, "m", nb_zeros(NB_SHAPE(2, 2), NB_BOOL), true))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(data, size);
    int64_t live = nb_memory_stats_get().live_tensors;

    nb_metadata meta;
    nb_param_list *list = nb_read_safetensors(path, &meta);
    if (list) {
        for (int i = 0; i < list->count; i++) {
            nb_tensor *t = list->items[i].tensor;
            /* Touch every element so that a tensor claiming more than was read shows up under ASan. */
            for (int64_t j = 0, n = nb_numel(t); j < n; j++) (void)nb_get_flat(t, j);
            nb_free(t);
        }
        nb_param_list_free(list);
    } else {
        fuzz_expect_error("nb_read_safetensors");
    }
    fuzz_expect_no_live_tensors(live);

    nb_load_report report;
    for (int mode = NB_LOAD_STRICT; mode <= NB_LOAD_PARTIAL; mode++) {
        if (nb_load_safetensors(path, into, (nb_load_mode)mode, &report, mode ? NULL : &meta) != NB_OK)
            fuzz_expect_error("nb_load_safetensors");
        fuzz_expect_no_live_tensors(live);
    }
    return 0;
}
