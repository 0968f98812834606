/* Stubs until this op family lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_autograd.h"

nb_tensor * nb_matmul(nb_tensor *a, nb_tensor *b)
{
    (void)a; (void)b;
    return nbi_error(NB_ERR_STATE, "nb_matmul: not implemented yet");
}
