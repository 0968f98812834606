/* nabla distributed: data-parallel training over MPI.
 *
 * Each process (a "rank") holds a full copy of the model and trains on its own shard of every epoch; after
 * backward the gradients are averaged over all ranks, so every rank applies the same update and the copies
 * stay identical. With the mean loss on a local batch of B, N ranks compute exactly the step one process
 * would take on the N*B samples together (up to float summation order).
 *
 * The MPI part is an optional build feature (`meson setup build -Dmpi=enabled`). Without it, the same functions
 * exist and behave as a world of one process: rank 0 of 1, every collective checks its arguments as the MPI build
 * does and leaves the data as it is, so a program written against this header runs unchanged with or without MPI
 * (and a build with MPI started without mpirun is a world of one too).
 *
 * Every collective waits for the other ranks at most nb_dist_timeout() seconds (default 300, or
 * NABLA_DIST_TIMEOUT). If they do not answer in time (a rank died, the network failed) it fails with
 * NB_ERR_COMM and a message naming the collective, this rank, and how long it waited; the caller should then
 * call nb_dist_abort, which stops every rank of the job instead of leaving them waiting forever.
 *
 * Collectives must be called by every rank in the same order with the same shapes (the usual MPI rule);
 * nb_dist_* checks what it can and fails with NB_ERR_COMM naming the mismatch rather than corrupting memory:
 * nb_dist_broadcast_params compares every rank's list with root's entry by entry, and the gradient all-reduce
 * compares a checksum of the trainable parameters' layout whenever that layout is new.
 *
 * A typical step (each rank):
 *     nb_dist_init(&argc, &argv);
 *     nb_dist_broadcast_params(params, 0);                       // once, after building the model
 *     nb_batch_iter *it = nb_dist_batch_iter_new(x, y, B, true, false, seed);
 *     ... loss = mean loss of the local batch; nb_optimizer_zero_grad(opt);
 *     nb_backward(loss); nb_dist_allreduce_grads(params);        // or nb_dist_backward(loss, params)
 *     nb_optimizer_step(opt);
 *     ... nb_dist_allreduce_sum(metrics, n); if (nb_dist_is_main()) print, save checkpoints
 *     nb_dist_finalize();
 * On an NB_ERR_COMM from any collective, call nb_dist_abort: the collective that failed is still pending inside
 * MPI, so this process cannot take part in another one (later calls fail at once with NB_ERR_COMM).
 *
 * Only the thread that called nb_dist_init may call the collectives (MPI_THREAD_FUNNELED); nabla's own worker
 * threads never touch MPI. */
#ifndef NABLA_DIST_H
#define NABLA_DIST_H

#include "nb_tensor.h"
#include "nb_nn.h"
#include "nb_data.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* C11's _Noreturn is not C++'s spelling. */
#ifdef __cplusplus
#define NB_DIST_NORETURN [[noreturn]]
#else
#define NB_DIST_NORETURN _Noreturn
#endif

/* Whether this build of nabla has MPI (meson option mpi). */
NB_API bool nb_dist_available(void);

/* Starts the distributed runtime (MPI_Init_thread when built with MPI; argc/argv may be NULL). Call once, before
 * any other nb_dist_* call and before creating threads of your own. A program started without mpirun is a
 * world of one. When the program already initialized MPI itself, nabla uses it (and leaves MPI_Finalize to the
 * program). Unless NABLA_NUM_THREADS is set, it sets nabla's thread count (nb_set_num_threads) to the online
 * CPUs divided by the number of ranks on this machine (at least 1), so that ranks sharing a machine do not
 * oversubscribe its cores. NB_ERR_STATE when called twice (or, with MPI, after nb_dist_finalize: MPI cannot be
 * restarted); NB_ERR_COMM when MPI fails to start or offers less than MPI_THREAD_FUNNELED (a program that
 * initialized MPI itself must ask for at least that level); after a failure that started MPI, MPI is stopped
 * again (and cannot be restarted in this process). */
NB_API nb_status nb_dist_init(int *argc, char ***argv);
/* Shuts the runtime down (MPI_Finalize) and frees the gradient buckets; every collective has completed by then,
 * since each one returns only when done. NB_OK when it was never started. NB_ERR_COMM after a collective
 * failed (MPI would wait forever for it): call nb_dist_abort instead. */
NB_API nb_status nb_dist_finalize(void);
/* Stops every rank of the job with exit code `code` after printing message (may be NULL) on stderr as
 * "nabla rank R: message". Does not return. With MPI this is MPI_Abort: mpirun kills the other ranks, even
 * those stuck waiting, and exits non-zero. Without MPI (or before init) it is exit(code). */
NB_DIST_NORETURN NB_API void nb_dist_abort(int code, const char *message);

/* This process's rank in [0, world size) and the number of ranks; 0 and 1 before init or without MPI. */
NB_API int nb_dist_rank(void);
NB_API int nb_dist_world_size(void);
/* Whether this is rank 0, the rank that prints progress and writes checkpoints. */
NB_API bool nb_dist_is_main(void);

/* Collective timeout in seconds (> 0): how long a collective waits for the other ranks before failing with
 * NB_ERR_COMM. The default comes from NABLA_DIST_TIMEOUT, else 300 (an unusable value there is reported on
 * stderr and ignored). Set it above the longest time ranks may legitimately drift apart (a rank 0 that
 * evaluates or writes a checkpoint while the others wait at the next collective). NB_ERR_ARG for a value <= 0,
 * NaN or infinite. */
NB_API nb_status nb_dist_set_timeout(double seconds);
NB_API double nb_dist_timeout(void);

/* Copies every tensor of params (parameters and buffers, in list order; any dtype, any layout) from rank `root`
 * to all other ranks, so all ranks start from the same weights; call it after building the model and after
 * loading a checkpoint on root. First the lists are compared: they must match in names, kinds (parameter or
 * buffer), shapes and dtypes on every rank; a mismatch fails on every rank with NB_ERR_COMM naming the first
 * differing entry and both sides ("... differ between ranks at entry 3: rank 0 has parameter 'fc2.weight' f32
 * (16, 3), rank 1 has parameter 'fc2.weight' f32 (16, 4)"), and nothing is copied. Then each tensor is one
 * broadcast. The receiving tensors count as written in place (autograd's version check sees it). NB_ERR_NULL for
 * a NULL list, NB_ERR_FREED for a freed tensor in it, NB_ERR_ARG unless 0 <= root < world size. */
NB_API nb_status nb_dist_broadcast_params(const nb_param_list *params, int root);

/* Copies `bytes` bytes at data from rank `root` to the same place on every other rank (MPI_Bcast), e.g. a
 * checkpoint's metadata that root read, or a setting only root knows. Every rank must pass the same bytes.
 * NB_ERR_NULL for NULL data with bytes > 0, NB_ERR_ARG unless 0 <= root < world size; no-op in a world of one. */
NB_API nb_status nb_dist_broadcast(void *data, size_t bytes, int root);

/* Replaces the .grad of every trainable parameter of params (not a buffer, requires grad) with its mean over all
 * ranks (sum / world size). Call it after nb_backward and before the optimizer step, on every rank.
 *
 * The all-reduce path: gradients are copied into buckets, contiguous buffers of at most nb_dist_bucket_bytes()
 * bytes that hold consecutive trainable parameters of one dtype (list order; a dtype change or a full bucket
 * starts the next one; a parameter larger than a bucket travels alone), each followed by one flag per parameter
 * telling whether this rank has a gradient for it. Each bucket is one MPI_Iallreduce (sum, in place), started as
 * soon as it is packed; then each result is divided by the world size and copied back into .grad. So many small
 * tensors cost few messages, and large models are sent in pieces whose transfer overlaps the packing of the next.
 * A parameter without a gradient on some rank counts as zeros there (that rank gets a gradient); one that no
 * rank has a gradient for keeps none, as in a single process (optimizers skip it). The bucket plan and its
 * buffers are made once per layout (names, shapes, dtypes, requires_grad, bucket size) and reused, so a training
 * loop allocates nothing here after its first step; a new layout is first checked against the other ranks'
 * (NB_ERR_COMM "the trainable parameters differ between ranks"). Works on f32 and f64 parameters (NB_ERR_DTYPE
 * otherwise). In a world of one it only checks its arguments: the mean over one rank is the gradient itself. */
NB_API nb_status nb_dist_allreduce_grads(const nb_param_list *params);
/* nb_backward(loss) followed by the averaging of nb_dist_allreduce_grads(params), with the communication
 * overlapped with the backward pass, as PyTorch's DistributedDataParallel does: buckets are filled in REVERSE list
 * order (the last layers' gradients are final first) and each bucket's all-reduce starts as soon as every
 * parameter in it has its final gradient for this pass (backward itself tells when: after the last op that uses
 * the parameter has delivered), while backward goes on with the earlier layers; then it waits for them all.
 * Parameters that this backward does not reach (unused on this rank) count as final from its start. Buckets always
 * start in the same order on every rank (a bucket whose parameters are ready waits for the ones before it). The
 * result is the same as nb_backward + nb_dist_allreduce_grads (bit for bit with 2 ranks). Errors as for those two;
 * if backward itself fails, the buckets are still exchanged (the other ranks wait for them) and backward's error
 * is returned. */
NB_API nb_status nb_dist_backward(nb_tensor *loss, const nb_param_list *params);
/* Bucket size for nb_dist_allreduce_grads (default 4 MiB, or NABLA_DIST_BUCKET_BYTES); NB_ERR_ARG for 0. All ranks
 * must use the same size. */
NB_API nb_status nb_dist_set_bucket_bytes(size_t bytes);
NB_API size_t nb_dist_bucket_bytes(void);

/* In-place element-wise sum (or max) over all ranks of n doubles, for metrics: losses, correct counts,
 * confusion matrices (sum the counts, then divide). NB_ERR_NULL for NULL values with n > 0, NB_ERR_ARG for
 * n < 0. */
NB_API nb_status nb_dist_allreduce_sum(double *values, int64_t n);
NB_API nb_status nb_dist_allreduce_max(double *values, int64_t n);
/* Blocks until every rank has called it (subject to the timeout). */
NB_API nb_status nb_dist_barrier(void);

/* Time this process spent inside nb_dist collectives since init (seconds, packing and waiting included) and the
 * all-reduce messages it sent, for measuring the communication overhead of a training step (take the
 * difference of two readings). All zero before init and in a build without MPI (nothing is sent). */
typedef struct nb_dist_stats {
    double comm_seconds;
    int64_t allreduce_calls; /* gradient buckets and metric reductions completed */
    int64_t allreduce_bytes; /* their sizes (flags included) */
} nb_dist_stats;
NB_API nb_dist_stats nb_dist_stats_get(void);

/* A batch iterator over this rank's shard of each epoch (nb_batch_iter_new + nb_batch_iter_shard with this
 * rank and world size; see nb_batch_iter_shard for how rows are dealt). All ranks must pass the same seed. With
 * batch B on each of N ranks, the ranks' k-th batches together are the single-process k-th batch of N * B rows,
 * so the learning rate that suits batch N * B on one process suits this. */
NB_API nb_batch_iter *nb_dist_batch_iter_new(nb_tensor *x, nb_tensor *y, int64_t batch_size, bool shuffle,
                                             bool drop_last, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif
