/* Stubs until this op family lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_autograd.h"

nb_status nb_fprint(FILE *f, const nb_tensor *t)
{
    (void)f; (void)t;
    return nbi_fail(NB_ERR_STATE, "nb_fprint: not implemented yet");
}

nb_status nb_print(const nb_tensor *t)
{
    (void)t;
    return nbi_fail(NB_ERR_STATE, "nb_print: not implemented yet");
}

size_t nb_format(const nb_tensor *t, char *buf, size_t size)
{
    (void)t; (void)buf; (void)size;
    return 0;
}
