/* nb_dist.h over MPI (built with -Dmpi=enabled; the only file of nabla that includes mpi.h).
 *
 * Every collective is started nonblocking (MPI_Ibcast, MPI_Iallreduce, MPI_Ibarrier) and completed by polling
 * MPI_Test, so that a rank whose partners have died or hung gives up after nb_dist_timeout() seconds with a
 * message instead of blocking forever inside MPI. A collective that timed out is still pending inside MPI and can
 * never be matched again, so the runtime is then marked broken: every later collective fails at once and the
 * program is expected to call nb_dist_abort.
 *
 * Gradients travel in buckets: contiguous buffers of one dtype that hold the gradients of consecutive trainable
 * parameters, followed by one "has a gradient" flag per parameter (1 or 0; their sum tells how many ranks had a
 * gradient, so a parameter that no rank touched keeps no gradient, as in a single process). The buckets of a
 * layout are planned and allocated once and reused on every step, so a training loop makes no allocation here. */
#include "dist_internal.h"

#include <mpi.h>

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct bucket {
    nb_dtype dtype;
    int first, count; /* items[first .. first + count) of the plan */
    int64_t numel;    /* gradient elements; the flags follow them */
    void *buf;        /* (numel + count) elements */
    size_t bytes;
} bucket;

typedef struct leaf_index {
    const nbi_tensor *tensor;
    int item;
} leaf_index;

typedef struct plan {
    uint64_t key; /* layout of the trainable parameters, bucket size and fill order; 0: no plan */
    int nitems, nbuckets;
    int *items;       /* indices into the parameter list, in bucket order */
    int64_t *offsets; /* element offset of each item inside its bucket */
    int *bucket_of;   /* bucket of each item */
    bucket *buckets;
    MPI_Request *requests;
    /* nb_dist_backward: per bucket, its parameters whose gradient is not final yet; the items sorted by tensor */
    int *waiting;
    leaf_index *by_tensor;
} plan;

static struct {
    bool started, finalized, own_mpi, broken;
    int rank, world;
    MPI_Comm comm;
    plan plans[2]; /* [0]: list order (nb_dist_allreduce_grads), [1]: reverse order (nb_dist_backward) */
} g = {.world = 1};

bool nb_dist_available(void) { return true; }
int nb_dist_rank(void) { return g.started ? g.rank : 0; }
int nb_dist_world_size(void) { return g.started ? g.world : 1; }

static nb_status mpi_fail(const char *fn, const char *call, int rc)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error code %d", rc);
    return nbi_fail(NB_ERR_COMM, "%s: %s failed on rank %d: %s", fn, call, g.rank, text);
}

/* Fails when an earlier collective timed out: MPI still holds it, so no later collective can match up. */
static nb_status check_usable(const char *fn)
{
    if (g.broken)
        return nbi_fail(NB_ERR_COMM, "%s: rank %d cannot communicate any more: an earlier collective failed or timed "
                                     "out (call nb_dist_abort to stop the job)",
                        fn, g.rank);
    return NB_OK;
}

static void format_bytes(char *out, size_t size, double bytes)
{
    if (bytes >= 1024.0 * 1024.0) snprintf(out, size, "%.1f MiB", bytes / (1024.0 * 1024.0));
    else if (bytes >= 1024.0) snprintf(out, size, "%.1f KiB", bytes / 1024.0);
    else snprintf(out, size, "%.0f B", bytes);
}

/* Polls *req until it completes (1), MPI reports a failure (-1, recorded), or nb_dist_timeout() seconds pass (0,
 * *waited set, nothing recorded: the caller describes what it waited for only then, so that a training step formats
 * no message). MPI's non-blocking collectives advance only inside MPI_Test, so a sleep between polls delays every
 * internal round of the collective: polling stays continuous (yielding the core to a rank that shares it) for the
 * first 10 ms, which covers a step's all-reduce, and only a longer wait (a slow or dead rank) sleeps, with a pause
 * growing up to 1 ms. Either failure leaves the request pending inside MPI, so the runtime is broken from then on. */
static int poll_request(MPI_Request *req, const char *fn, double *waited)
{
    double start = nbd_now();
    long pause_ns = 2000;
    for (int polls = 0;; polls++) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            g.broken = true;
            mpi_fail(fn, "MPI_Test", rc);
            return -1;
        }
        if (done) return 1;
        *waited = nbd_now() - start;
        if (*waited >= nb_dist_timeout()) {
            g.broken = true;
            return 0;
        }
        if (*waited > 0.01) {
            struct timespec ts = {0, pause_ns};
            nanosleep(&ts, NULL);
            if (pause_ns < 1000000) pause_ns *= 2;
        } else if (polls >= 200) {
            sched_yield();
        }
    }
}

static nb_status timed_out(const char *fn, double waited, const char *what)
{
    return nbi_fail(NB_ERR_COMM,
                    "%s: rank %d waited %.1f s%s without an answer from the other ranks; a rank has likely died or "
                    "stopped, or the network failed",
                    fn, g.rank, waited, what);
}

/* Completes *req (see poll_request); `what` describes the message for the timeout error (" for 'fc1.weight'
 * (392.0 KiB)", or ""). */
static nb_status wait_request(MPI_Request *req, const char *fn, const char *what)
{
    double waited = 0;
    int r = poll_request(req, fn, &waited);
    return r > 0 ? NB_OK : r < 0 ? nb_last_status() : timed_out(fn, waited, what);
}

static nb_status start_failed(const char *fn, const char *call, int rc)
{
    g.broken = true;
    return mpi_fail(fn, call, rc);
}

/* ------------------------------------------------------------------------------------------------
 * Start and stop
 * ---------------------------------------------------------------------------------------------- */
/* Ranks that share a machine share its cores: unless the user chose a thread count, each rank gets its part of
 * them instead of every rank starting one thread per core. */
static void share_cores(void)
{
    /* The split is collective: every rank takes part, whatever its own environment says. */
    MPI_Comm node;
    if (MPI_Comm_split_type(g.comm, MPI_COMM_TYPE_SHARED, g.rank, MPI_INFO_NULL, &node) != MPI_SUCCESS) return;
    int local = 1;
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    const char *env = getenv("NABLA_NUM_THREADS");
    if (env && *env) return;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long n = (cpus < 1 ? 1 : cpus) / (local < 1 ? 1 : local);
    nb_set_num_threads(n < 1 ? 1 : (int)n);
}

/* A failed nb_dist_init leaves MPI as it found it: stopped again if it started it. */
static void undo_init(void)
{
    if (!g.own_mpi) return;
    g.own_mpi = false;
    g.finalized = true; /* MPI cannot be initialized twice in one process */
    MPI_Finalize();
}

nb_status nb_dist_init(int *argc, char ***argv)
{
    const char *fn = "nb_dist_init";
    if (g.started) return nbi_fail(NB_ERR_STATE, "%s: already initialized (call it once)", fn);
    if (g.finalized) return nbi_fail(NB_ERR_STATE, "%s: MPI cannot be started again after nb_dist_finalize", fn);
    int initialized = 0, rc;
    MPI_Initialized(&initialized);
    if (!initialized) {
        /* Only the thread that called init talks to MPI; nabla's worker threads never do. */
        int provided;
        rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return nbi_fail(NB_ERR_COMM, "%s: MPI_Init_thread failed (error code %d)", fn, rc);
        g.own_mpi = true;
        /* nabla's worker threads exist beside the one that calls MPI, which MPI_THREAD_SINGLE does not allow */
        if (provided < MPI_THREAD_FUNNELED) {
            undo_init();
            return nbi_fail(NB_ERR_COMM, "%s: this MPI provides only MPI_THREAD_SINGLE; nabla needs "
                                         "MPI_THREAD_FUNNELED",
                            fn);
        }
    } else {
        int provided;
        MPI_Query_thread(&provided);
        if (provided < MPI_THREAD_FUNNELED)
            return nbi_fail(NB_ERR_COMM, "%s: MPI was started with MPI_THREAD_SINGLE; nabla needs at least "
                                         "MPI_THREAD_FUNNELED (start it with MPI_Init_thread)",
                            fn);
    }
    /* A communicator of our own keeps nabla's messages apart from any the program exchanges itself, and reports
     * errors as return codes instead of killing the process. */
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &g.comm);
    if (rc != MPI_SUCCESS) {
        nb_status st = mpi_fail(fn, "MPI_Comm_dup", rc);
        undo_init();
        return st;
    }
    MPI_Comm_set_errhandler(g.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(g.comm, &g.rank);
    MPI_Comm_size(g.comm, &g.world);
    g.started = true;
    g.broken = false;
    memset(&nbd_stats, 0, sizeof nbd_stats);
    share_cores();
    return NB_OK;
}

static void plan_free(plan *p)
{
    for (int b = 0; b < p->nbuckets; b++) nbi_free(p->buckets[b].buf, p->buckets[b].bytes);
    /* every array has room for nitems entries (each item may open a bucket) */
    size_t n = (size_t)p->nitems;
    if (p->items) nbi_free(p->items, n * sizeof *p->items);
    if (p->offsets) nbi_free(p->offsets, n * sizeof *p->offsets);
    if (p->bucket_of) nbi_free(p->bucket_of, n * sizeof *p->bucket_of);
    if (p->buckets) nbi_free(p->buckets, n * sizeof *p->buckets);
    if (p->requests) nbi_free(p->requests, n * sizeof *p->requests);
    if (p->waiting) nbi_free(p->waiting, n * sizeof *p->waiting);
    if (p->by_tensor) nbi_free(p->by_tensor, n * sizeof *p->by_tensor);
    memset(p, 0, sizeof *p);
}

nb_status nb_dist_finalize(void)
{
    const char *fn = "nb_dist_finalize";
    if (!g.started) return NB_OK;
    /* MPI_Finalize would wait for the collective that never completed. */
    if (g.broken)
        return nbi_fail(NB_ERR_COMM, "%s: rank %d cannot shut down cleanly after a failed collective (call "
                                     "nb_dist_abort instead)",
                        fn, g.rank);
    for (int i = 0; i < 2; i++) plan_free(&g.plans[i]);
    MPI_Comm_free(&g.comm);
    g.started = false;
    if (g.own_mpi) {
        g.finalized = true;
        int rc = MPI_Finalize();
        if (rc != MPI_SUCCESS) return nbi_fail(NB_ERR_COMM, "%s: MPI_Finalize failed (error code %d)", fn, rc);
    }
    return NB_OK;
}

_Noreturn void nb_dist_abort(int code, const char *message)
{
    if (message) fprintf(stderr, "nabla rank %d: %s\n", nb_dist_rank(), message);
    fflush(NULL);
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); /* not reached after MPI_Abort */
}

/* ------------------------------------------------------------------------------------------------
 * Metrics and barrier
 * ---------------------------------------------------------------------------------------------- */
static nb_status reduce_doubles(double *values, int64_t n, MPI_Op op, const char *fn)
{
    nb_status st = nbd_check_values(values, n, fn);
    if (st != NB_OK || !g.started) return st;
    if ((st = check_usable(fn)) != NB_OK) return st;
    if (n > INT_MAX) return nbi_fail(NB_ERR_ARG, "%s: n = %lld is more than one message can hold", fn, (long long)n);
    double start = nbd_now();
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, values, (int)n, MPI_DOUBLE, op, g.comm, &req);
    if (rc != MPI_SUCCESS) return start_failed(fn, "MPI_Iallreduce", rc);
    st = wait_request(&req, fn, "");
    nbd_stats.comm_seconds += nbd_now() - start;
    if (st == NB_OK) {
        nbd_stats.allreduce_calls++;
        nbd_stats.allreduce_bytes += n * (int64_t)sizeof *values;
    }
    return st;
}

nb_status nb_dist_allreduce_sum(double *values, int64_t n)
{
    return reduce_doubles(values, n, MPI_SUM, "nb_dist_allreduce_sum");
}

nb_status nb_dist_allreduce_max(double *values, int64_t n)
{
    return reduce_doubles(values, n, MPI_MAX, "nb_dist_allreduce_max");
}

nb_status nb_dist_barrier(void)
{
    const char *fn = "nb_dist_barrier";
    if (!g.started) return NB_OK;
    nb_status st = check_usable(fn);
    if (st != NB_OK) return st;
    double start = nbd_now();
    MPI_Request req;
    int rc = MPI_Ibarrier(g.comm, &req);
    if (rc != MPI_SUCCESS) return start_failed(fn, "MPI_Ibarrier", rc);
    st = wait_request(&req, fn, "");
    nbd_stats.comm_seconds += nbd_now() - start;
    return st;
}

/* Every rank must hold the same value: a max-reduction of (v, -v) gives (max, -min). */
static nb_status agree(int64_t v, bool *same, const char *fn)
{
    long long pair[2] = {v, -v};
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, pair, 2, MPI_LONG_LONG, MPI_MAX, g.comm, &req);
    if (rc != MPI_SUCCESS) return start_failed(fn, "MPI_Iallreduce", rc);
    nb_status st = wait_request(&req, fn, " for the other ranks' parameter layout");
    *same = pair[0] == v && -pair[1] == v;
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * Broadcast of parameters
 * ---------------------------------------------------------------------------------------------- */
typedef struct entry_desc {
    char name[NB_NAME_MAX];
    int32_t dtype, ndim, is_buffer, present; /* present 0: the list has no such entry */
    int64_t shape[NB_MAX_DIMS];
} entry_desc;

static void describe(const nb_param_list *params, int i, entry_desc *d)
{
    memset(d, 0, sizeof *d);
    if (i >= params->count) return;
    const nb_named_tensor *item = &params->items[i];
    const nbi_tensor *t = nbi_peek(item->tensor);
    snprintf(d->name, sizeof d->name, "%s", item->name);
    d->dtype = (int32_t)t->dtype;
    d->ndim = t->ndim;
    d->is_buffer = item->is_buffer;
    d->present = 1;
    memcpy(d->shape, t->shape, (size_t)t->ndim * sizeof *t->shape);
}

static void format_entry(char *out, size_t size, const entry_desc *d, int count)
{
    if (!d->present) {
        snprintf(out, size, "no such entry (%d entries)", count);
        return;
    }
    char shape[NBI_SHAPE_STR];
    snprintf(out, size, "%s '%s' %s %s", d->is_buffer ? "buffer" : "parameter", d->name,
             nb_dtype_name((nb_dtype)d->dtype), nbi_shape_fmt(shape, d->ndim, d->shape));
}

static nb_status bcast(void *buf, size_t bytes, int root, const char *fn, const char *what)
{
    /* MPI counts are ints: larger tensors go in several messages. */
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done > (size_t)1 << 30 ? (size_t)1 << 30 : bytes - done;
        MPI_Request req;
        int rc = MPI_Ibcast((char *)buf + done, (int)n, MPI_BYTE, root, g.comm, &req);
        if (rc != MPI_SUCCESS) return start_failed(fn, "MPI_Ibcast", rc);
        nb_status st = wait_request(&req, fn, what);
        if (st != NB_OK) return st;
        done += n;
    }
    return NB_OK;
}

nb_status nb_dist_broadcast(void *data, size_t bytes, int root)
{
    const char *fn = "nb_dist_broadcast";
    nb_status st = nbd_check_broadcast(data, bytes, root, nb_dist_world_size(), fn);
    if (st != NB_OK || !g.started || g.world == 1) return st;
    if ((st = check_usable(fn)) != NB_OK) return st;
    double start = nbd_now();
    char what[64];
    snprintf(what, sizeof what, " for %zu bytes from rank %d", bytes, root);
    st = bcast(data, bytes, root, fn, what);
    nbd_stats.comm_seconds += nbd_now() - start;
    return st;
}

/* Compares every rank's list with root's before any tensor data moves. All ranks learn the lowest index where
 * some rank differs (and which rank), then that rank describes its entry so that every rank can name both sides. */
static nb_status check_layouts(const nb_param_list *params, int root, const char *fn)
{
    int count = params->count;
    char what[64];
    snprintf(what, sizeof what, " for rank %d's parameter list", root);
    nb_status st = bcast(&count, sizeof count, root, fn, what);
    if (st != NB_OK) return st;
    size_t bytes = (size_t)(count > 0 ? count : 1) * sizeof(entry_desc);
    entry_desc *theirs = nbi_alloc(bytes, fn);
    entry_desc mine;
    if (!theirs) {
        g.broken = true; /* this rank leaves the sequence of collectives: the other ranks time out */
        return nb_last_status();
    }
    if (g.rank == root)
        for (int i = 0; i < count; i++) describe(params, i, &theirs[i]);
    st = bcast(theirs, (size_t)count * sizeof(entry_desc), root, fn, what);
    int diff[2] = {INT_MAX, g.rank}; /* lowest differing index, rank */
    for (int i = 0; st == NB_OK && i <= count && i <= params->count; i++) {
        if (i == count || i == params->count) {
            if (count != params->count) diff[0] = i;
            break;
        }
        describe(params, i, &mine);
        if (memcmp(&mine, &theirs[i], sizeof mine) != 0) {
            diff[0] = i;
            break;
        }
    }
    if (st == NB_OK) {
        MPI_Request req;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, diff, 1, MPI_2INT, MPI_MINLOC, g.comm, &req);
        st = rc != MPI_SUCCESS ? start_failed(fn, "MPI_Iallreduce", rc)
                               : wait_request(&req, fn, " for the other ranks' parameter lists");
    }
    if (st == NB_OK && diff[0] != INT_MAX) {
        int at = diff[0], who = diff[1];
        entry_desc other;
        describe(params, at, &other);
        int other_count = params->count;
        st = bcast(&other, sizeof other, who, fn, " for the differing parameter list");
        if (st == NB_OK) st = bcast(&other_count, sizeof other_count, who, fn, " for the differing list");
        if (st == NB_OK) {
            char a[NB_NAME_MAX + 64], b[NB_NAME_MAX + 64];
            entry_desc root_entry;
            if (at < count) root_entry = theirs[at];
            else memset(&root_entry, 0, sizeof root_entry);
            format_entry(a, sizeof a, &root_entry, count);
            format_entry(b, sizeof b, &other, other_count);
            st = nbi_fail(NB_ERR_COMM, "%s: the parameter lists differ between ranks at entry %d: rank %d has %s, "
                                       "rank %d has %s",
                          fn, at, root, a, who, b);
        }
    }
    nbi_free(theirs, bytes);
    return st;
}

nb_status nb_dist_broadcast_params(const nb_param_list *params, int root)
{
    const char *fn = "nb_dist_broadcast_params";
    nb_status st = nbd_check_params(params, fn);
    if (st != NB_OK) return st;
    if ((st = nbd_check_broadcast(NULL, 0, root, nb_dist_world_size(), fn)) != NB_OK || !g.started) return st;
    if ((st = check_usable(fn)) != NB_OK) return st;
    double start = nbd_now();
    st = check_layouts(params, root, fn);
    /* Tensors go one message each, through a staging buffer when not contiguous. The layouts agree, so every rank
     * sends or receives the same sequence of sizes. */
    for (int i = 0; st == NB_OK && i < params->count; i++) {
        nbi_tensor *t = nbi_peek(params->items[i].tensor);
        size_t bytes = (size_t)t->numel * nb_dtype_size(t->dtype);
        char what[NB_NAME_MAX + 64], size[32];
        format_bytes(size, sizeof size, (double)bytes);
        snprintf(what, sizeof what, " for '%s' (%s)", params->items[i].name, size);
        if (nbi_is_contiguous(t)) {
            st = bcast(nbi_data_ptr(t), bytes, root, fn, what);
            if (st == NB_OK && g.rank != root) nbi_storage_bump_version(t->storage);
            continue;
        }
        void *staging = nbi_alloc(bytes ? bytes : 1, fn);
        if (!staging) {
            g.broken = true; /* as in check_layouts */
            st = nb_last_status();
            break;
        }
        if (g.rank == root) nbd_pack(t, t->dtype, staging);
        st = bcast(staging, bytes, root, fn, what);
        if (st == NB_OK && g.rank != root) nbd_unpack(t, t->dtype, staging);
        nbi_free(staging, bytes ? bytes : 1);
    }
    nbd_stats.comm_seconds += nbd_now() - start;
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * All-reduce of gradients
 * ---------------------------------------------------------------------------------------------- */
static uint64_t plan_key(const nb_param_list *params, bool reverse)
{
    uint64_t h = nbd_layout_hash(params, true);
    size_t bucket_bytes = nb_dist_bucket_bytes();
    h = (h ^ (uint64_t)bucket_bytes) * 0x100000001b3ull;
    h = (h ^ (uint64_t)reverse) * 0x100000001b3ull;
    return h ? h : 1;
}

static nb_status plan_build(plan *p, const nb_param_list *params, bool reverse, uint64_t key, const char *fn)
{
    plan_free(p);
    size_t cap = nb_dist_bucket_bytes();
    int n = 0;
    for (int i = 0; i < params->count; i++) n += nbd_trainable(&params->items[i]);
    if (n == 0) {
        p->key = key;
        return NB_OK;
    }
    p->nitems = n;
    p->items = nbi_alloc((size_t)n * sizeof *p->items, fn);
    p->offsets = nbi_alloc((size_t)n * sizeof *p->offsets, fn);
    p->bucket_of = nbi_alloc((size_t)n * sizeof *p->bucket_of, fn);
    p->buckets = nbi_alloc((size_t)n * sizeof *p->buckets, fn);
    p->requests = nbi_alloc((size_t)n * sizeof *p->requests, fn);
    p->waiting = nbi_alloc((size_t)n * sizeof *p->waiting, fn);
    p->by_tensor = nbi_alloc((size_t)n * sizeof *p->by_tensor, fn);
    if (!p->items || !p->offsets || !p->bucket_of || !p->buckets || !p->requests || !p->waiting || !p->by_tensor) {
        nb_status st = nb_last_status();
        plan_free(p);
        return st;
    }
    memset(p->buckets, 0, (size_t)n * sizeof *p->buckets);
    int k = 0, nb = 0;
    for (int step = 0; step < params->count; step++) {
        int i = reverse ? params->count - 1 - step : step;
        const nb_named_tensor *item = &params->items[i];
        if (!nbd_trainable(item)) continue;
        const nbi_tensor *t = nbi_peek(item->tensor);
        size_t es = nb_dtype_size(t->dtype);
        bucket *cur = nb ? &p->buckets[nb - 1] : NULL;
        if (!cur || cur->dtype != t->dtype || (size_t)(cur->numel + t->numel + cur->count + 1) * es > cap) {
            cur = &p->buckets[nb++];
            cur->dtype = t->dtype;
            cur->first = k;
        }
        if (cur->numel + t->numel + cur->count + 1 > INT_MAX) {
            plan_free(p);
            return nbi_fail(NB_ERR_ARG, "%s: parameter '%s' has %lld elements, more than one message can hold", fn,
                            item->name, (long long)t->numel);
        }
        p->items[k] = i;
        p->offsets[k] = cur->numel;
        p->bucket_of[k] = nb - 1;
        cur->numel += t->numel;
        cur->count++;
        k++;
    }
    for (int b = 0; b < nb; b++) {
        bucket *bk = &p->buckets[b];
        bk->bytes = (size_t)(bk->numel + bk->count) * nb_dtype_size(bk->dtype);
        bk->buf = nbi_alloc(bk->bytes, fn);
        p->nbuckets = b + 1;
        if (!bk->buf) {
            p->nbuckets = b; /* plan_free releases the buffers allocated so far */
            nb_status st = nb_last_status();
            plan_free(p);
            return st;
        }
    }
    p->key = key;
    return NB_OK;
}

/* The plan for this list: reused while the layout stays the same; a new one is checked against the other ranks'
 * before it is used, so that a model that differs between ranks fails here instead of mixing up buffers. */
static nb_status get_plan(plan **out, const nb_param_list *params, bool reverse, const char *fn)
{
    plan *p = &g.plans[reverse];
    uint64_t key = plan_key(params, reverse);
    *out = p;
    if (p->key == key) return NB_OK;
    nb_status st = plan_build(p, params, reverse, key, fn);
    /* Agreement is a collective: a rank that failed to plan still takes part, with a key nobody else has. */
    bool same = false;
    nb_status agreed = agree(st == NB_OK ? (int64_t)(key >> 1) : -1 - (int64_t)g.rank, &same, fn);
    if (st != NB_OK) return st;
    if (agreed != NB_OK) {
        plan_free(p);
        return agreed;
    }
    if (!same) {
        plan_free(p);
        return nbi_fail(NB_ERR_COMM, "%s: the trainable parameters differ between ranks (names, shapes, dtypes, which "
                                     "ones require grad) or so does the bucket size; every rank must train the same "
                                     "model (nb_dist_broadcast_params names the first difference)",
                        fn);
    }
    return NB_OK;
}

static void pack_bucket(const plan *p, int b, const nb_param_list *params)
{
    const bucket *bk = &p->buckets[b];
    size_t es = nb_dtype_size(bk->dtype);
    char *buf = bk->buf;
    for (int j = 0; j < bk->count; j++) {
        int k = bk->first + j;
        const nbi_tensor *t = nbi_peek(params->items[p->items[k]].tensor);
        char *dst = buf + (size_t)p->offsets[k] * es;
        bool has = t->grad != NULL;
        if (has) nbd_pack(t->grad, bk->dtype, dst);
        else memset(dst, 0, (size_t)t->numel * es);
        char *flag = buf + (size_t)(bk->numel + j) * es;
        if (bk->dtype == NB_F32) *(float *)flag = has ? 1.0f : 0.0f;
        else *(double *)flag = has ? 1.0 : 0.0;
    }
}

static nb_status start_bucket(plan *p, int b, const char *fn)
{
    bucket *bk = &p->buckets[b];
    MPI_Datatype type = bk->dtype == NB_F32 ? MPI_FLOAT : MPI_DOUBLE;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, bk->buf, (int)(bk->numel + bk->count), type, MPI_SUM, g.comm,
                            &p->requests[b]);
    if (rc != MPI_SUCCESS) return start_failed(fn, "MPI_Iallreduce", rc);
    return NB_OK;
}

/* Waits for bucket b, then writes each parameter's averaged gradient, creating a zero one first where this rank
 * had none but another rank had. A failure leaves the later buckets pending: the runtime is broken then. */
static nb_status finish_bucket(plan *p, int b, const nb_param_list *params, const char *fn)
{
    bucket *bk = &p->buckets[b];
    double waited = 0;
    int r = poll_request(&p->requests[b], fn, &waited);
    if (r < 0) return nb_last_status();
    if (r == 0) {
        char what[96], size[32];
        format_bytes(size, sizeof size, (double)bk->bytes);
        snprintf(what, sizeof what, " for bucket %d of %d (%s)", b + 1, p->nbuckets, size);
        return timed_out(fn, waited, what);
    }
    nbd_stats.allreduce_calls++;
    nbd_stats.allreduce_bytes += (int64_t)bk->bytes;
    size_t es = nb_dtype_size(bk->dtype);
    char *buf = bk->buf;
    if (bk->dtype == NB_F32) {
        float *v = (float *)buf, w = (float)g.world;
        for (int64_t e = 0; e < bk->numel; e++) v[e] /= w;
    } else {
        double *v = (double *)buf, w = (double)g.world;
        for (int64_t e = 0; e < bk->numel; e++) v[e] /= w;
    }
    for (int j = 0; j < bk->count; j++) {
        int k = bk->first + j;
        nbi_tensor *t = nbi_peek(params->items[p->items[k]].tensor);
        const char *flag = buf + (size_t)(bk->numel + j) * es;
        double ranks_with_grad = bk->dtype == NB_F32 ? *(const float *)flag : *(const double *)flag;
        if (ranks_with_grad == 0) continue; /* no rank computed one: it stays without, as in one process */
        if (!t->grad) {
            nbi_tensor *z = nbi_tensor_zeros_like(t, t->dtype, fn);
            if (!z) {
                g.broken = true;
                return nb_last_status();
            }
            nbi_make_owned_by_tensor(z);
            t->grad = z;
        }
        nbd_unpack(t->grad, bk->dtype, buf + (size_t)p->offsets[k] * es);
    }
    return NB_OK;
}

nb_status nb_dist_allreduce_grads(const nb_param_list *params)
{
    const char *fn = "nb_dist_allreduce_grads";
    nb_status st = nbd_check_params(params, fn);
    if (st == NB_OK) st = nbd_check_grad_dtypes(params, fn);
    /* The mean over a world of one is the gradient itself (a program started without mpirun pays nothing). */
    if (st != NB_OK || !g.started || g.world == 1) return st;
    if ((st = check_usable(fn)) != NB_OK) return st;
    double start = nbd_now();
    plan *p;
    st = get_plan(&p, params, false, fn);
    /* Each bucket goes out as soon as it is packed, so packing the next overlaps with sending this one. */
    int started = 0;
    for (; st == NB_OK && started < p->nbuckets; started++) {
        pack_bucket(p, started, params);
        st = start_bucket(p, started, fn);
    }
    for (int b = 0; st == NB_OK && b < p->nbuckets; b++) st = finish_bucket(p, b, params, fn);
    nbd_stats.comm_seconds += nbd_now() - start;
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * Backward with the all-reduce overlapped
 * ---------------------------------------------------------------------------------------------- */
typedef struct overlap {
    plan *p;
    const nb_param_list *params;
    const char *fn;
    int launched; /* buckets started so far, always a prefix: every rank starts them in the same order */
    nb_status st; /* the first failure to start one */
    double seconds; /* spent in the hook */
} overlap;

static int compare_leaf(const void *a, const void *b)
{
    const nbi_tensor *x = ((const leaf_index *)a)->tensor, *y = ((const leaf_index *)b)->tensor;
    return x < y ? -1 : x > y;
}

/* Packs and starts every bucket from the first one not started whose parameters are all final (or all of them). */
static void launch_ready(overlap *o, bool all)
{
    plan *p = o->p;
    while (o->st == NB_OK && o->launched < p->nbuckets && (all || p->waiting[o->launched] == 0)) {
        pack_bucket(p, o->launched, o->params);
        o->st = start_bucket(p, o->launched, o->fn);
        if (o->st == NB_OK && !all) nbd_early_launches++;
        o->launched++;
    }
}

/* The tape calls this as soon as a leaf's gradient is final: the buckets it completes go out while backward
 * continues; polling the ones in flight lets MPI move them along meanwhile. */
static void on_leaf_ready(nbi_tensor *leaf, void *ctx)
{
    overlap *o = ctx;
    plan *p = o->p;
    if (o->st != NB_OK || p->nitems == 0) return;
    double t0 = nbd_now();
    if (!leaf) {
        /* The graph is known: parameters it does not reach keep their gradient as it is, so they are final now
         * (otherwise an unused parameter would hold back its bucket and every later one until backward ends). */
        for (int k = 0; k < p->nitems; k++)
            if (!p->by_tensor[k].tensor->op && !nbi_leaf_reached(p->by_tensor[k].tensor))
                p->waiting[p->bucket_of[p->by_tensor[k].item]]--;
        launch_ready(o, false);
        o->seconds += nbd_now() - t0;
        return;
    }
    leaf_index key = {leaf, 0};
    const leaf_index *hit = bsearch(&key, p->by_tensor, (size_t)p->nitems, sizeof key, compare_leaf);
    if (hit) {
        /* the same tensor may be listed twice: find its first entry */
        while (hit > p->by_tensor && hit[-1].tensor == leaf) hit--;
        for (; hit < p->by_tensor + p->nitems && hit->tensor == leaf; hit++) p->waiting[p->bucket_of[hit->item]]--;
        launch_ready(o, false);
    }
    for (int b = 0; b < o->launched; b++) {
        int done;
        if (p->requests[b] != MPI_REQUEST_NULL) MPI_Test(&p->requests[b], &done, MPI_STATUS_IGNORE);
    }
    o->seconds += nbd_now() - t0;
}

nb_status nb_dist_backward(nb_tensor *loss, const nb_param_list *params)
{
    const char *fn = "nb_dist_backward";
    if (!nbi_resolve(loss, fn, "loss")) return nb_last_status();
    nb_status st = nbd_check_params(params, fn);
    if (st == NB_OK) st = nbd_check_grad_dtypes(params, fn);
    if (st != NB_OK) return st;
    if (!g.started || g.world == 1) return nb_backward(loss);
    if ((st = check_usable(fn)) != NB_OK) return st;
    double start = nbd_now();
    plan *p;
    if ((st = get_plan(&p, params, true, fn)) != NB_OK) {
        nbd_stats.comm_seconds += nbd_now() - start;
        return st;
    }
    for (int b = 0; b < p->nbuckets; b++) {
        p->waiting[b] = p->buckets[b].count;
        p->requests[b] = MPI_REQUEST_NULL;
    }
    for (int k = 0; k < p->nitems; k++) {
        p->by_tensor[k].tensor = nbi_peek(params->items[p->items[k]].tensor);
        p->by_tensor[k].item = k;
    }
    qsort(p->by_tensor, (size_t)p->nitems, sizeof *p->by_tensor, compare_leaf);
    overlap o = {.p = p, .params = params, .fn = fn, .st = NB_OK};
    double setup = nbd_now() - start;

    nbi_set_leaf_ready_hook(on_leaf_ready, &o);
    nb_status backward_st = nb_backward(loss);
    nbi_set_leaf_ready_hook(NULL, NULL);

    /* Even when backward failed, this rank sends every bucket: the other ranks are waiting for them, and a job
     * whose ranks disagree on the collectives in flight cannot recover. */
    double t0 = nbd_now();
    launch_ready(&o, true);
    st = o.st;
    for (int b = 0; st == NB_OK && b < p->nbuckets; b++) st = finish_bucket(p, b, params, fn);
    nbd_stats.comm_seconds += setup + o.seconds + (nbd_now() - t0);
    if (st != NB_OK) return st;
    return backward_st;
}
