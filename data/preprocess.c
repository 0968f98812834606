/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_data.h"

#include <math.h>

nb_status nb_standardizer_fit(nb_standardizer *s, nb_tensor *x)
{
    (void)s; (void)x;
    return nbi_fail(NB_ERR_STATE, "nb_standardizer_fit: not implemented yet");
}

nb_tensor * nb_standardizer_apply(const nb_standardizer *s, nb_tensor *x)
{
    (void)s; (void)x;
    return nbi_error(NB_ERR_STATE, "nb_standardizer_apply: not implemented yet");
}

void nb_standardizer_free(nb_standardizer *s)
{
    (void)s;
    nbi_error(NB_ERR_STATE, "nb_standardizer_free: not implemented yet");
}

nb_status nb_minmax_fit(nb_minmax_scaler *s, nb_tensor *x)
{
    (void)s; (void)x;
    return nbi_fail(NB_ERR_STATE, "nb_minmax_fit: not implemented yet");
}

nb_tensor * nb_minmax_apply(const nb_minmax_scaler *s, nb_tensor *x)
{
    (void)s; (void)x;
    return nbi_error(NB_ERR_STATE, "nb_minmax_apply: not implemented yet");
}

void nb_minmax_free(nb_minmax_scaler *s)
{
    (void)s;
    nbi_error(NB_ERR_STATE, "nb_minmax_free: not implemented yet");
}

nb_tensor * nb_one_hot(nb_tensor *labels, int64_t num_classes)
{
    (void)labels; (void)num_classes;
    return nbi_error(NB_ERR_STATE, "nb_one_hot: not implemented yet");
}

nb_status nb_train_test_split(int64_t n, double test_fraction, uint64_t seed, nb_tensor **train_idx, nb_tensor **test_idx)
{
    (void)n; (void)test_fraction; (void)seed; (void)train_idx; (void)test_idx;
    return nbi_fail(NB_ERR_STATE, "nb_train_test_split: not implemented yet");
}

nb_status nb_kfold_split(int64_t n, int k, int fold, uint64_t seed, nb_tensor **train_idx, nb_tensor **test_idx)
{
    (void)n; (void)k; (void)fold; (void)seed; (void)train_idx; (void)test_idx;
    return nbi_fail(NB_ERR_STATE, "nb_kfold_split: not implemented yet");
}
