/* What dist_common.c shares with the backend (dist_mpi.c or dist_single.c). */
#ifndef NABLA_DIST_INTERNAL_H
#define NABLA_DIST_INTERNAL_H

#include "internal.h"
#include "autograd_internal.h"
#include "nb_dist.h"

/* Updated by the backend's collectives; only the thread driving training calls them. */
extern nb_dist_stats nbd_stats;
/* Buckets nb_dist_backward started while backward was still running (white-box tests of the overlap). */
extern int64_t nbd_early_launches;

/* Forgets the timeout and bucket size so that the next read takes them from the environment again (tests). */
void nbd_settings_reset(void);

/* Monotonic clock in seconds. */
double nbd_now(void);

/* Validates a parameter list argument: non-NULL, and every tensor in it alive. fn names the public function. */
nb_status nbd_check_params(const nb_param_list *params, const char *fn);
/* Validates the (values, n) arguments of the metric reductions. */
nb_status nbd_check_values(const double *values, int64_t n, const char *fn);
/* Validates the arguments of nb_dist_broadcast (and of the root of the parameter broadcast when data is NULL and
 * bytes 0) against the world size. */
nb_status nbd_check_broadcast(const void *data, size_t bytes, int root, int world, const char *fn);
/* Whether the all-reduce of gradients covers this entry: a parameter (not a buffer) that requires grad. */
bool nbd_trainable(const nb_named_tensor *item);
/* A 64-bit hash of the list's layout (count, names, kinds, dtypes, shapes; only the trainable entries if asked):
 * equal on every rank of a well-formed job, so comparing it catches models that differ between ranks before any
 * data moves. */
uint64_t nbd_layout_hash(const nb_param_list *params, bool trainable_only);
/* Copies t's elements (any layout) into / out of a contiguous buffer holding them as `dtype` (converting when it
 * differs from t's); unpack counts as an in-place write of t (its version is bumped). */
void nbd_pack(const nbi_tensor *t, nb_dtype dtype, void *buf);
void nbd_unpack(nbi_tensor *t, nb_dtype dtype, const void *buf);
/* NB_ERR_DTYPE unless every trainable parameter is f32 or f64 (call after nbd_check_params). */
nb_status nbd_check_grad_dtypes(const nb_param_list *params, const char *fn);

#endif
