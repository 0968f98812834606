/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_data.h"

#include <math.h>

nb_progress * nb_progress_new(FILE *f, int64_t epochs, int64_t total_steps, int64_t log_every)
{
    (void)f; (void)epochs; (void)total_steps; (void)log_every;
    return nbi_error(NB_ERR_STATE, "nb_progress_new: not implemented yet");
}

void nb_progress_update(nb_progress *p, int64_t epoch, int64_t step, int64_t samples, double loss, double accuracy)
{
    (void)p; (void)epoch; (void)step; (void)samples; (void)loss; (void)accuracy;
    nbi_error(NB_ERR_STATE, "nb_progress_update: not implemented yet");
}

void nb_progress_end_epoch(nb_progress *p, const char *extra)
{
    (void)p; (void)extra;
    nbi_error(NB_ERR_STATE, "nb_progress_end_epoch: not implemented yet");
}

void nb_progress_free(nb_progress *p)
{
    (void)p;
    nbi_error(NB_ERR_STATE, "nb_progress_free: not implemented yet");
}
