/* The parts of nb_dist.h that do not depend on MPI: settings read from the environment, statistics, the sharded
 * batch iterator and argument checks shared by both backends. */
#include "dist_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT 300.0
#define DEFAULT_BUCKET_BYTES ((size_t)4 << 20)

nb_dist_stats nbd_stats;
int64_t nbd_early_launches;

static double g_timeout;      /* 0 until first read */
static size_t g_bucket_bytes; /* 0 until first read */

double nbd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* An unusable value in the environment is reported once on stderr rather than silently ignored: a job that
 * meant to wait 30 s would otherwise wait 300 s without a hint why. */
static void bad_env(const char *name, const char *value, const char *want)
{
    fprintf(stderr, "nabla: ignoring %s=\"%s\" (%s)\n", name, value, want);
}

double nb_dist_timeout(void)
{
    if (g_timeout > 0) return g_timeout;
    g_timeout = DEFAULT_TIMEOUT;
    const char *env = getenv("NABLA_DIST_TIMEOUT");
    if (env && *env) {
        char *end;
        double v = strtod(env, &end);
        if (*end == '\0' && v > 0 && isfinite(v)) g_timeout = v;
        else bad_env("NABLA_DIST_TIMEOUT", env, "expected a positive number of seconds");
    }
    return g_timeout;
}

nb_status nb_dist_set_timeout(double seconds)
{
    if (!(seconds > 0) || !isfinite(seconds))
        return nbi_fail(NB_ERR_ARG, "nb_dist_set_timeout: timeout must be a positive number of seconds, got %g",
                        seconds);
    g_timeout = seconds;
    return NB_OK;
}

size_t nb_dist_bucket_bytes(void)
{
    if (g_bucket_bytes > 0) return g_bucket_bytes;
    g_bucket_bytes = DEFAULT_BUCKET_BYTES;
    const char *env = getenv("NABLA_DIST_BUCKET_BYTES");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end == '\0' && v > 0 && env[0] != '-') g_bucket_bytes = (size_t)v;
        else bad_env("NABLA_DIST_BUCKET_BYTES", env, "expected a positive number of bytes");
    }
    return g_bucket_bytes;
}

nb_status nb_dist_set_bucket_bytes(size_t bytes)
{
    if (bytes == 0) return nbi_fail(NB_ERR_ARG, "nb_dist_set_bucket_bytes: bucket size must be > 0 bytes, got 0");
    g_bucket_bytes = bytes;
    return NB_OK;
}

nb_dist_stats nb_dist_stats_get(void) { return nbd_stats; }

void nbd_settings_reset(void)
{
    g_timeout = 0;
    g_bucket_bytes = 0;
}

bool nb_dist_is_main(void) { return nb_dist_rank() == 0; }

nb_batch_iter *nb_dist_batch_iter_new(nb_tensor *x, nb_tensor *y, int64_t batch_size, bool shuffle, bool drop_last,
                                      uint64_t seed)
{
    nb_batch_iter *it = nb_batch_iter_new(x, y, batch_size, shuffle, drop_last, seed);
    if (it && nb_batch_iter_shard(it, nb_dist_rank(), nb_dist_world_size()) != NB_OK) {
        nb_batch_iter_free(it);
        return NULL;
    }
    return it;
}

nb_status nbd_check_params(const nb_param_list *params, const char *fn)
{
    if (!params) return nbi_fail(NB_ERR_NULL, "%s: params is NULL", fn);
    if (params->count < 0 || (params->count > 0 && !params->items))
        return nbi_fail(NB_ERR_ARG, "%s: params is not a valid list (count %d)", fn, params->count);
    for (int i = 0; i < params->count; i++) {
        if (nbi_peek(params->items[i].tensor)) continue; /* the message is formatted only for a bad entry */
        char what[NB_NAME_MAX + 16];
        snprintf(what, sizeof what, "params '%s'", params->items[i].name);
        nbi_resolve(params->items[i].tensor, fn, what);
        return nb_last_status();
    }
    return NB_OK;
}

nb_status nbd_check_values(const double *values, int64_t n, const char *fn)
{
    if (n < 0) return nbi_fail(NB_ERR_ARG, "%s: n must be >= 0, got %lld", fn, (long long)n);
    if (n > 0 && !values) return nbi_fail(NB_ERR_NULL, "%s: values is NULL", fn);
    return NB_OK;
}

nb_status nbd_check_broadcast(const void *data, size_t bytes, int root, int world, const char *fn)
{
    if (bytes > 0 && !data) return nbi_fail(NB_ERR_NULL, "%s: data is NULL", fn);
    if (root < 0 || root >= world)
        return nbi_fail(NB_ERR_ARG, "%s: root %d is out of range for %d rank%s", fn, root, world, world == 1 ? "" : "s");
    return NB_OK;
}

bool nbd_trainable(const nb_named_tensor *item)
{
    return !item->is_buffer && nb_requires_grad(item->tensor);
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

uint64_t nbd_layout_hash(const nb_param_list *params, bool trainable_only)
{
    uint64_t h = 0xcbf29ce484222325ull;
    int32_t count = params->count;
    h = mix(h, &count, sizeof count);
    for (int i = 0; i < params->count; i++) {
        const nb_named_tensor *item = &params->items[i];
        if (trainable_only && !nbd_trainable(item)) continue;
        nbi_tensor *t = nbi_peek(item->tensor);
        int32_t fields[3] = {(int32_t)t->dtype, (int32_t)t->ndim, item->is_buffer};
        h = mix(h, item->name, strlen(item->name) + 1);
        h = mix(h, fields, sizeof fields);
        h = mix(h, t->shape, (size_t)t->ndim * sizeof *t->shape);
    }
    return h;
}

/* A contiguous header of t's shape and dtype over a caller's buffer, so that the strided copy moves data between
 * a tensor of any layout and a message buffer without a temporary tensor. */
static void wrap_buffer(const nbi_tensor *t, nb_dtype dtype, void *buf, nbi_storage *storage, nbi_tensor *view)
{
    memset(storage, 0, sizeof *storage);
    storage->nbytes = (size_t)t->numel * nb_dtype_size(dtype);
    storage->data = buf;
    atomic_init(&storage->refs, 1);
    memset(view, 0, sizeof *view);
    view->dtype = dtype;
    view->ndim = t->ndim;
    view->numel = t->numel;
    memcpy(view->shape, t->shape, sizeof view->shape);
    nbi_contiguous_strides(t->ndim, t->shape, view->stride);
    view->storage = storage;
}

void nbd_pack(const nbi_tensor *t, nb_dtype dtype, void *buf)
{
    nbi_storage s;
    nbi_tensor v;
    wrap_buffer(t, dtype, buf, &s, &v);
    nbi_copy_into(&v, t);
}

void nbd_unpack(nbi_tensor *t, nb_dtype dtype, const void *buf)
{
    nbi_storage s;
    nbi_tensor v;
    wrap_buffer(t, dtype, (void *)buf, &s, &v);
    nbi_copy_into(t, &v);
    nbi_storage_bump_version(t->storage);
}

nb_status nbd_check_grad_dtypes(const nb_param_list *params, const char *fn)
{
    for (int i = 0; i < params->count; i++) {
        const nb_named_tensor *item = &params->items[i];
        nb_dtype dt = nbi_peek(item->tensor)->dtype;
        if (nbd_trainable(item) && dt != NB_F32 && dt != NB_F64)
            return nbi_fail(NB_ERR_DTYPE, "%s: parameter '%s' has dtype %s; gradients are averaged in f32 or f64 only",
                            fn, item->name, nb_dtype_name(dt));
    }
    return NB_OK;
}
