/* libFuzzer target: numeric CSV files (nb_csv_read), every value and column name read back. */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_file(".csv");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(data, size);
    int64_t live = nb_memory_stats_get().live_tensors;
    nb_csv *csv = nb_csv_read(path);
    if (csv) {
        if (nb_numel(csv->values) != csv->rows * csv->cols) abort();
        size_t len = 0;
        for (int64_t c = 0; c < csv->cols; c++) {
            len += strlen(csv->names[c]);
            if (nb_csv_column(csv, csv->names[c]) < 0) abort();
        }
        for (int64_t j = 0, n = nb_numel(csv->values); j < n; j++) (void)nb_get_flat(csv->values, j);
        if (len == (size_t)-1) fputc(' ', stderr);
        nb_csv_free(csv);
    } else {
        fuzz_expect_error("nb_csv_read");
    }
    fuzz_expect_no_live_tensors(live);
    return 0;
}
