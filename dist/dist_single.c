/* nb_dist.h without MPI: a world of one process. Every collective checks its arguments exactly as the MPI build
 * does (so a program that is wrong fails the same way in both builds) and then has nothing to exchange. */
#include "dist_internal.h"

#include <stdio.h>
#include <stdlib.h>

static bool g_started;

bool nb_dist_available(void) { return false; }

nb_status nb_dist_init(int *argc, char ***argv)
{
    if (g_started) return nbi_fail(NB_ERR_STATE, "nb_dist_init: already initialized (call it once)");
    g_started = true;
    return NB_OK;
}

nb_status nb_dist_finalize(void)
{
    g_started = false;
    return NB_OK;
}

_Noreturn void nb_dist_abort(int code, const char *message)
{
    if (message) fprintf(stderr, "nabla rank 0: %s\n", message);
    fflush(NULL);
    exit(code);
}

int nb_dist_rank(void) { return 0; }
int nb_dist_world_size(void) { return 1; }

nb_status nb_dist_broadcast_params(const nb_param_list *params, int root)
{
    const char *fn = "nb_dist_broadcast_params";
    nb_status st = nbd_check_params(params, fn);
    if (st != NB_OK) return st;
    return nbd_check_broadcast(NULL, 0, root, 1, fn);
}

nb_status nb_dist_broadcast(void *data, size_t bytes, int root)
{
    return nbd_check_broadcast(data, bytes, root, 1, "nb_dist_broadcast");
}

nb_status nb_dist_allreduce_grads(const nb_param_list *params)
{
    const char *fn = "nb_dist_allreduce_grads";
    nb_status st = nbd_check_params(params, fn);
    return st != NB_OK ? st : nbd_check_grad_dtypes(params, fn);
}

nb_status nb_dist_backward(nb_tensor *loss, const nb_param_list *params)
{
    const char *fn = "nb_dist_backward";
    if (!nbi_resolve(loss, fn, "loss")) return nb_last_status();
    nb_status st = nbd_check_params(params, fn);
    if (st == NB_OK) st = nbd_check_grad_dtypes(params, fn);
    return st != NB_OK ? st : nb_backward(loss);
}

nb_status nb_dist_allreduce_sum(double *values, int64_t n) { return nbd_check_values(values, n, "nb_dist_allreduce_sum"); }
nb_status nb_dist_allreduce_max(double *values, int64_t n) { return nbd_check_values(values, n, "nb_dist_allreduce_max"); }

nb_status nb_dist_barrier(void) { return NB_OK; }
