/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_data.h"

#include <math.h>

void * nb_gunzip_file(const char *path, size_t *size)
{
    (void)path; (void)size;
    return nbi_error(NB_ERR_STATE, "nb_gunzip_file: not implemented yet");
}
