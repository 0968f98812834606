/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_data.h"

#include <math.h>

nb_batch_iter * nb_batch_iter_new(nb_tensor *x, nb_tensor *y, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed)
{
    (void)x; (void)y; (void)batch_size; (void)shuffle; (void)drop_last; (void)seed;
    return nbi_error(NB_ERR_STATE, "nb_batch_iter_new: not implemented yet");
}

bool nb_batch_iter_next(nb_batch_iter *it, nb_tensor **x_batch, nb_tensor **y_batch)
{
    (void)it; (void)x_batch; (void)y_batch;
    nbi_error(NB_ERR_STATE, "nb_batch_iter_next: not implemented yet");
    return false;
}

int64_t nb_batch_iter_batches_per_epoch(const nb_batch_iter *it)
{
    (void)it;
    nbi_error(NB_ERR_STATE, "nb_batch_iter_batches_per_epoch: not implemented yet");
    return -1;
}

int64_t nb_batch_iter_epoch(const nb_batch_iter *it)
{
    (void)it;
    nbi_error(NB_ERR_STATE, "nb_batch_iter_epoch: not implemented yet");
    return -1;
}

void nb_batch_iter_free(nb_batch_iter *it)
{
    (void)it;
    nbi_error(NB_ERR_STATE, "nb_batch_iter_free: not implemented yet");
}
