/* Parallel loops on a persistent pool of worker threads.
 *
 * One job runs at a time. The caller publishes it by storing one 64-bit claim word: a generation number (high
 * half), the job's chunk count and the count of chunks handed out (16 bits each); workers and the caller claim
 * chunks with a compare-and-swap that also checks the generation, so a worker that wakes late can never take a chunk of
 * a later job. A job's description is only read after a successful claim, when the job cannot finish (and
 * be replaced) before that chunk is done. Idle workers spin briefly (small jobs follow each other closely in
 * a training step) and then sleep on a condition variable; the caller does the same while waiting.
 *
 * Nested calls, calls from a second user thread while the pool is busy, and single-thread configurations run
 * inline, so the machine is never oversubscribed. */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 256 /* chunk counts must fit the claim word's 16 bits */
#define SPIN_ITERS 4000 /* about 0.1 ms of pause instructions */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef struct pool {
    pthread_mutex_t mu;      /* guards the condition variables and worker start/stop */
    pthread_cond_t wake;     /* a new job or stop */
    pthread_cond_t finished; /* the last chunk of the current job is done */
    pthread_mutex_t busy;    /* held by the thread running a job on the pool */
    _Atomic uint64_t claim;  /* generation << 32 | chunk count << 16 | chunks handed out */
    _Atomic int64_t done;    /* chunks finished in the current job */
    _Atomic int stop;
    nbi_range_fn fn;
    void *ctx;
    int64_t n, nchunks;
    int nworkers;
    pthread_t workers[MAX_THREADS];
} pool;

static pool g_pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
                      .wake = PTHREAD_COND_INITIALIZER,
                      .finished = PTHREAD_COND_INITIALIZER,
                      .busy = PTHREAD_MUTEX_INITIALIZER};
static _Atomic int g_nthreads;        /* configured count; 0 until first read */
static _Thread_local bool t_in_parallel; /* inside a parallel region (workers: always) */

static int default_threads(void)
{
    const char *env = getenv("NABLA_NUM_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v > 0) return v > MAX_THREADS ? MAX_THREADS : (int)v;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (int)cpus;
}

int nbi_num_threads(void)
{
    int n = atomic_load_explicit(&g_nthreads, memory_order_relaxed);
    if (n == 0) {
        int expected = 0;
        atomic_compare_exchange_strong(&g_nthreads, &expected, default_threads());
        n = atomic_load(&g_nthreads);
    }
    return n;
}

/* Claims the next chunk of generation gen; -1 when the job has no chunk left or has been replaced. */
static int64_t claim_chunk(pool *p, uint64_t gen)
{
    uint64_t v = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        if (v >> 32 != gen || (v & 0xffff) >= ((v >> 16) & 0xffff)) return -1;
        if (atomic_compare_exchange_weak_explicit(&p->claim, &v, v + 1, memory_order_acq_rel, memory_order_acquire))
            return (int64_t)(v & 0xffff);
    }
}

static void run_chunk(pool *p, int64_t c)
{
    int64_t n = p->n, nc = p->nchunks;
    p->fn(p->ctx, c * n / nc, (c + 1) * n / nc);
    if (atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) == nc - 1) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->finished);
        pthread_mutex_unlock(&p->mu);
    }
}

static void work_on(pool *p, uint64_t gen)
{
    for (int64_t c; (c = claim_chunk(p, gen)) >= 0;) run_chunk(p, c);
}

static void *worker_main(void *arg)
{
    pool *p = arg;
    t_in_parallel = true;
    uint64_t seen = atomic_load(&p->claim) >> 32;
    for (;;) {
        uint64_t gen = seen;
        for (int i = 0; i < SPIN_ITERS && gen == seen; i++) {
            cpu_relax();
            gen = atomic_load_explicit(&p->claim, memory_order_acquire) >> 32;
            if (atomic_load_explicit(&p->stop, memory_order_relaxed)) return NULL;
        }
        if (gen == seen) {
            pthread_mutex_lock(&p->mu);
            while ((gen = atomic_load(&p->claim) >> 32) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
            if (atomic_load(&p->stop)) return NULL;
        }
        seen = gen;
        work_on(p, gen);
    }
}

static void stop_workers(pool *p)
{
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++) pthread_join(p->workers[i], NULL);
    p->nworkers = 0;
    atomic_store(&p->stop, 0);
}

static void stop_at_exit(void)
{
    if (pthread_mutex_trylock(&g_pool.busy) != 0) return; /* exit() from inside a job: leave the pool be */
    stop_workers(&g_pool);
    pthread_mutex_unlock(&g_pool.busy);
}

/* A child process has none of its parent's workers: it starts its own when it needs them. */
static void reset_in_child(void)
{
    pool *p = &g_pool;
    p->nworkers = 0;
    atomic_store(&p->stop, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->busy, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->finished, NULL);
}

/* Starts workers until there are want of them (called with busy held). Returns how many run. */
static int ensure_workers(pool *p, int want)
{
    static bool registered;
    if (p->nworkers == want) return want;
    if (p->nworkers > want) stop_workers(p);
    if (!registered) {
        registered = atexit(stop_at_exit) == 0 && pthread_atfork(NULL, NULL, reset_in_child) == 0;
        if (!registered) return 0; /* without the hooks, workers could outlive the process' state */
    }
    while (p->nworkers < want) {
        if (pthread_create(&p->workers[p->nworkers], NULL, worker_main, p) != 0) break;
        p->nworkers++;
    }
    return p->nworkers;
}

void nbi_parallel_for(int64_t n, int64_t grain, nbi_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int nt = nbi_num_threads();
    int64_t nchunks = n / grain < nt ? n / grain : nt;
    if (nchunks <= 1 || t_in_parallel || pthread_mutex_trylock(&g_pool.busy) != 0) {
        fn(ctx, 0, n);
        return;
    }
    pool *p = &g_pool;
    if (ensure_workers(p, nt - 1) == 0) {
        pthread_mutex_unlock(&p->busy);
        fn(ctx, 0, n);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->nchunks = nchunks;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint64_t gen = (atomic_load(&p->claim) >> 32) + 1;
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->claim, gen << 32 | (uint64_t)nchunks << 16, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    t_in_parallel = true;
    work_on(p, gen);
    t_in_parallel = false;

    for (int i = 0; i < SPIN_ITERS && atomic_load_explicit(&p->done, memory_order_acquire) < nchunks; i++)
        cpu_relax();
    if (atomic_load_explicit(&p->done, memory_order_acquire) < nchunks) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->done) < nchunks) pthread_cond_wait(&p->finished, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->busy);
}

nb_status nb_set_num_threads(int n)
{
    if (n <= 0) return nbi_fail(NB_ERR_ARG, "nb_set_num_threads: the number of threads must be positive, got %d", n);
    atomic_store(&g_nthreads, n > MAX_THREADS ? MAX_THREADS : n);
    return NB_OK;
}

int nb_num_threads(void) { return nbi_num_threads(); }
