/* Batch iterator: the row order of an epoch is a plain array (not a tensor, so that no scope the caller opens
 * or closes can take it away); each batch is gathered with nb_index_select into new tensors that belong to the
 * caller's current scope, like any op result, so a training step's scope frees its batch. */
#include "internal.h"
#include "nb_data.h"

#include <string.h>

struct nb_batch_iter {
    nb_tensor *x, *y; /* not owned */
    int64_t n, batch_size;
    bool shuffle, drop_last;
    nb_generator gen;
    int64_t *order; /* n row numbers in this epoch's order */
    size_t order_bytes;
    int64_t pos; /* position in rows() of the next batch's first row */
    int64_t epoch;
    /* nb_batch_iter_shard: this rank's rows of each epoch, rebuilt from order after every reshuffle */
    int rank, world;
    int64_t count;  /* rows per epoch for this rank: n unless sharded */
    int64_t *shard; /* count rows, NULL unless world > 1 */
    size_t shard_bytes;
    bool started; /* nb_batch_iter_next was called: too late to shard */
};

static const int64_t *rows(const nb_batch_iter *it) { return it->shard ? it->shard : it->order; }

/* Rank r's rows are the positions r, r + W, ... of the epoch's order, which is virtually extended by wrapping
 * around to its start; the shard's length (count) already says whether that padding or a truncation applies. */
static void deal(nb_batch_iter *it)
{
    for (int64_t p = 0; it->shard && p < it->count; p++)
        it->shard[p] = it->order[((int64_t)it->rank + (int64_t)it->world * p) % it->n];
}

/* Draws the next epoch's order; the same seed gives the same sequence of orders everywhere. */
static void reshuffle(nb_batch_iter *it)
{
    if (!it->shuffle || it->n < 2) return;
    nb_tensor *perm = nb_randperm(it->n, &it->gen);
    if (!perm) return; /* out of memory: keep the previous order, the error stays recorded */
    memcpy(it->order, nb_data(perm), (size_t)it->n * sizeof *it->order);
    nb_free(perm);
}

nb_batch_iter *nb_batch_iter_new(nb_tensor *xh, nb_tensor *yh, int64_t batch_size, bool shuffle, bool drop_last,
                                 uint64_t seed)
{
    const char *fn = "nb_batch_iter_new";
    nbi_tensor *x = nbi_resolve(xh, fn, "x");
    if (!x) return NULL;
    char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
    if (x->ndim < 1) return nbi_error(NB_ERR_SHAPE, "%s: x must have a row dim, got shape ()", fn);
    if (yh) {
        nbi_tensor *y = nbi_resolve(yh, fn, "y");
        if (!y) return NULL;
        if (y->ndim < 1 || y->shape[0] != x->shape[0])
            return nbi_error(NB_ERR_SHAPE, "%s: x %s and y %s must have the same number of rows", fn,
                             nbi_shape_fmt(a, x->ndim, x->shape), nbi_shape_fmt(b, y->ndim, y->shape));
    }
    if (batch_size < 1)
        return nbi_error(NB_ERR_ARG, "%s: batch_size must be >= 1, got %lld", fn, (long long)batch_size);
    nb_batch_iter *it = nbi_alloc(sizeof *it, fn);
    if (!it) return NULL;
    memset(it, 0, sizeof *it);
    it->x = xh;
    it->y = yh;
    it->n = x->shape[0];
    it->batch_size = batch_size;
    it->shuffle = shuffle;
    it->drop_last = drop_last;
    nb_generator_seed(&it->gen, seed);
    it->order_bytes = (size_t)(it->n ? it->n : 1) * sizeof *it->order;
    it->order = nbi_alloc(it->order_bytes, fn);
    if (!it->order) {
        nbi_free(it, sizeof *it);
        return NULL;
    }
    for (int64_t i = 0; i < it->n; i++) it->order[i] = i;
    it->world = 1;
    it->count = it->n;
    reshuffle(it);
    return it;
}

nb_status nb_batch_iter_shard(nb_batch_iter *it, int rank, int world_size)
{
    const char *fn = "nb_batch_iter_shard";
    if (!it) return nbi_fail(NB_ERR_NULL, "%s: iterator is NULL", fn);
    if (world_size < 1 || rank < 0 || rank >= world_size)
        return nbi_fail(NB_ERR_ARG, "%s: rank %d of world_size %d is out of range (need world_size >= 1 and 0 <= rank < "
                                    "world_size)",
                        fn, rank, world_size);
    if (it->started)
        return nbi_fail(NB_ERR_STATE, "%s: the iterator has already produced batches; shard it right after creating it",
                        fn);
    int64_t count = it->n;
    if (world_size > 1)
        count = it->drop_last ? it->n / world_size : (it->n + world_size - 1) / world_size;
    int64_t *shard = NULL;
    size_t bytes = (size_t)(count ? count : 1) * sizeof *shard;
    if (world_size > 1 && !(shard = nbi_alloc(bytes, fn))) return nb_last_status();
    if (it->shard) nbi_free(it->shard, it->shard_bytes);
    it->shard = shard;
    it->shard_bytes = shard ? bytes : 0;
    it->rank = rank;
    it->world = world_size;
    it->count = count;
    deal(it);
    return NB_OK;
}

bool nb_batch_iter_next(nb_batch_iter *it, nb_tensor **x_batch, nb_tensor **y_batch)
{
    const char *fn = "nb_batch_iter_next";
    if (x_batch) *x_batch = NULL;
    if (y_batch) *y_batch = NULL;
    if (!it || !x_batch) {
        nbi_error(NB_ERR_NULL, "%s: %s is NULL", fn, it ? "x_batch" : "iterator");
        return false;
    }
    if (!nbi_resolve(it->x, fn, "x") || (it->y && !nbi_resolve(it->y, fn, "y"))) return false;
    it->started = true;
    int64_t left = it->count - it->pos;
    if (left == 0 || (it->drop_last && left < it->batch_size)) {
        it->epoch++;
        it->pos = 0;
        reshuffle(it);
        deal(it);
        return false;
    }
    int64_t count = left < it->batch_size ? left : it->batch_size;
    nb_tensor *idx = nb_from_array(rows(it) + it->pos, 1, &count, NB_I64);
    nb_tensor *xb = nb_index_select(it->x, 0, idx);
    nb_tensor *yb = (it->y && y_batch) ? nb_index_select(it->y, 0, idx) : NULL;
    nb_free(idx); /* a recorded gather holds its own reference */
    if (!xb || (it->y && y_batch && !yb)) {
        nb_free(xb);
        nb_free(yb);
        return false;
    }
    it->pos += count;
    *x_batch = xb;
    if (y_batch) *y_batch = yb;
    return true;
}

int64_t nb_batch_iter_batches_per_epoch(const nb_batch_iter *it)
{
    if (!it) {
        nbi_error(NB_ERR_NULL, "nb_batch_iter_batches_per_epoch: iterator is NULL");
        return -1;
    }
    /* count / batch_size rounded up, without count + batch_size overflowing for a huge batch_size */
    int64_t full = it->count / it->batch_size;
    return it->drop_last || it->count % it->batch_size == 0 ? full : full + 1;
}

int64_t nb_batch_iter_epoch(const nb_batch_iter *it)
{
    if (!it) {
        nbi_error(NB_ERR_NULL, "nb_batch_iter_epoch: iterator is NULL");
        return -1;
    }
    return it->epoch;
}

void nb_batch_iter_free(nb_batch_iter *it)
{
    if (!it) return;
    if (it->shard) nbi_free(it->shard, it->shard_bytes);
    nbi_free(it->order, it->order_bytes);
    nbi_free(it, sizeof *it);
}
