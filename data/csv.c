/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_data.h"

#include <math.h>

nb_csv * nb_csv_read(const char *path)
{
    (void)path;
    return nbi_error(NB_ERR_STATE, "nb_csv_read: not implemented yet");
}

void nb_csv_free(nb_csv *csv)
{
    (void)csv;
    nbi_error(NB_ERR_STATE, "nb_csv_free: not implemented yet");
}

int64_t nb_csv_column(const nb_csv *csv, const char *name)
{
    (void)csv; (void)name;
    nbi_error(NB_ERR_STATE, "nb_csv_column: not implemented yet");
    return -1;
}
