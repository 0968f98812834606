/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_data.h"

#include <math.h>

nb_tensor * nb_read_idx(const char *path)
{
    (void)path;
    return nbi_error(NB_ERR_STATE, "nb_read_idx: not implemented yet");
}

const char * nb_data_dir(const char *dir_flag)
{
    (void)dir_flag;
    return nbi_error(NB_ERR_STATE, "nb_data_dir: not implemented yet");
}
