/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_optim.h"

#include <math.h>

nb_status nb_metadata_set(nb_metadata *m, const char *key, const char *value)
{
    (void)m; (void)key; (void)value;
    return nbi_fail(NB_ERR_STATE, "nb_metadata_set: not implemented yet");
}

const char * nb_metadata_get(const nb_metadata *m, const char *key)
{
    (void)m; (void)key;
    return nbi_error(NB_ERR_STATE, "nb_metadata_get: not implemented yet");
}

nb_status nb_save_safetensors(const char *path, const nb_param_list *tensors, const nb_metadata *metadata)
{
    (void)path; (void)tensors; (void)metadata;
    return nbi_fail(NB_ERR_STATE, "nb_save_safetensors: not implemented yet");
}

nb_status nb_load_safetensors(const char *path, nb_param_list *into, nb_load_mode mode, nb_load_report *report, nb_metadata *metadata)
{
    (void)path; (void)into; (void)mode; (void)report; (void)metadata;
    return nbi_fail(NB_ERR_STATE, "nb_load_safetensors: not implemented yet");
}

nb_param_list * nb_read_safetensors(const char *path, nb_metadata *metadata)
{
    (void)path; (void)metadata;
    return nbi_error(NB_ERR_STATE, "nb_read_safetensors: not implemented yet");
}
