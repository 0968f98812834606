/* Nothing lost: training resumes bit-exactly after a real SIGKILL (model, Adam state, LR schedule, dropout RNG and
 * step all come back from one checkpoint), and a checkpoint write that fails part-way (file-size limit) leaves the
 * previous checkpoint intact and usable. The training runs in forked children, so that every run starts from a
 * fresh process as a restarted job would. */
#include "helpers.h"
#include "mlp_run.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEED 7
#define TOTAL_STEPS 60 /* n: the step at which the runs are compared */
#define EVERY 7        /* k: checkpoint interval */

static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/nabla-resume-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(tmpdir);
}

static const char *in_tmp(const char *name)
{
    static char paths[32][512]; /* jobs keep these pointers: enough for every path a test names */
    static int next;
    char *p = paths[next++ & 31];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* What a child does. */
typedef struct job {
    const char *ckpt;  /* checkpoint path: resumed from when it exists, written every EVERY steps up to TOTAL_STEPS */
    const char *final; /* where to write the state at TOTAL_STEPS; NULL: train until killed */
    int64_t stop_at;   /* with final NULL and stop_at > 0: exit normally after that step (and its checkpoint) */
    bool restore_rng;
} job;

/* The child: trains per `j`, reporting each finished step on fd (the first message is the step it starts from).
 * Exit status: 0 done, 1 error (printed). Never returns. */
static void child(const job *j, int fd)
{
    mlp_run r;
    if (!mlp_run_init(&r, SEED)) goto fail;
    if (exists(j->ckpt) && mlp_run_load(&r, j->ckpt, j->restore_rng) != NB_OK) goto fail;
    int64_t msg = r.step;
    if (fd >= 0 && write(fd, &msg, sizeof msg) != sizeof msg) _exit(1);
    for (;;) {
        if (j->final && r.step == TOTAL_STEPS) break;
        if (!mlp_run_step(&r)) goto fail;
        /* Checkpoints stop before TOTAL_STEPS so that a run killed late still resumes from before it. */
        if (r.step % EVERY == 0 && r.step < TOTAL_STEPS && mlp_run_save(&r, j->ckpt) != NB_OK) goto fail;
        msg = r.step;
        if (fd >= 0 && write(fd, &msg, sizeof msg) != sizeof msg) _exit(1);
        if (!j->final && j->stop_at > 0 && r.step == j->stop_at) _exit(0);
    }
    if (mlp_run_save(&r, j->final) != NB_OK) goto fail;
    mlp_run_free(&r);
    _exit(0);
fail:
    fprintf(stderr, "child: %s\n", nb_last_error());
    _exit(1);
}

/* Runs a child to completion; returns the step it started from. */
static int64_t run_to_end(const job *j)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child(j, fds[1]);
    }
    close(fds[1]);
    int64_t first = -1, msg;
    if (read(fds[0], &msg, sizeof msg) == sizeof msg) first = msg;
    while (read(fds[0], &msg, sizeof msg) == sizeof msg) {
    }
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed (status %d)", status);
    return first;
}

/* Starts a child that trains without end and SIGKILLs it once it reports step `kill_after` (it keeps running while
 * the signal is on its way, so the kill lands at an arbitrary point, possibly inside a checkpoint write). Returns
 * the step it started from; *last receives the last step it reported. */
static int64_t run_and_kill(const job *j, int64_t kill_after, int64_t *last)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child(j, fds[1]);
    }
    close(fds[1]);
    int64_t first = -1, msg = -1;
    if (read(fds[0], &msg, sizeof msg) == sizeof msg) first = msg;
    while (msg < kill_after && read(fds[0], &msg, sizeof msg) == sizeof msg) {
    }
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    *last = msg;
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child was not killed (status %d)", status);
    ck_assert_int_ge(*last, kill_after);
    return first;
}

static nb_param_list *read_list(const char *path)
{
    nb_param_list *l = nb_read_safetensors(path, NULL);
    ck_assert_msg(l != NULL, "%s", nb_last_error());
    return l;
}

static void free_list(nb_param_list *l)
{
    for (int i = 0; i < l->count; i++) nb_free(l->items[i].tensor);
    nb_param_list_free(l);
}

START_TEST(resume_after_sigkill_is_bit_exact)
{
    /* The reference: one uninterrupted run (it checkpoints too, which must not change anything). */
    job ref = {in_tmp("ref.ckpt"), in_tmp("ref.final"), 0, true};
    ck_assert_int_eq(run_to_end(&ref), 0);

    /* Killed twice, resumed each time from its last checkpoint, then run to the end. */
    job killed = {in_tmp("run.ckpt"), NULL, 0, true};
    int64_t last;
    ck_assert_int_eq(run_and_kill(&killed, 17, &last), 0);
    int64_t resumed = run_and_kill(&killed, 38, &last);
    ck_assert_msg(resumed > 0 && resumed % EVERY == 0 && resumed >= 14, "resumed at step %lld", (long long)resumed);
    job finish = {in_tmp("run.ckpt"), in_tmp("run.final"), 0, true};
    int64_t resumed2 = run_to_end(&finish);
    ck_assert_msg(resumed2 % EVERY == 0 && resumed2 >= 35 && resumed2 < TOTAL_STEPS, "resumed at step %lld",
                  (long long)resumed2);

    nb_param_list *a = read_list(ref.final), *b = read_list(finish.final);
    char why[256] = "";
    ck_assert_msg(mlp_lists_identical(a, b, why, sizeof why), "resumed run differs from the uninterrupted one: %s",
                  why);
    /* The parameters did move (the comparison is not between two untouched models). */
    mlp_run fresh;
    ck_assert(mlp_run_init(&fresh, SEED));
    ck_assert(!mlp_lists_identical(fresh.params, a, why, sizeof why));
    mlp_run_free(&fresh);
    free_list(a);
    free_list(b);
}
END_TEST

/* The test can fail: resuming without the generator's state gives other dropout masks, hence other weights. */
START_TEST(resume_without_rng_state_differs)
{
    job ref = {in_tmp("ref.ckpt"), in_tmp("ref.final"), 0, true};
    run_to_end(&ref);
    job part = {in_tmp("run.ckpt"), NULL, 21, true};
    ck_assert_int_eq(run_to_end(&part), 0);
    job rest = {in_tmp("run.ckpt"), in_tmp("run.final"), 0, false};
    ck_assert_int_eq(run_to_end(&rest), 21);
    nb_param_list *a = read_list(ref.final), *b = read_list(rest.final);
    char why[256] = "";
    ck_assert_msg(!mlp_lists_identical(a, b, why, sizeof why), "the RNG state made no difference");
    free_list(a);
    free_list(b);
    /* With the generator restored, the same split run matches. */
    unlink(in_tmp("run.ckpt"));
    part.restore_rng = true;
    run_to_end(&part);
    rest.restore_rng = true;
    ck_assert_int_eq(run_to_end(&rest), 21);
    a = read_list(ref.final);
    b = read_list(rest.final);
    ck_assert_msg(mlp_lists_identical(a, b, why, sizeof why), "%s", why);
    free_list(a);
    free_list(b);
}
END_TEST

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

static int dir_entries(void)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* A full disk part-way through a checkpoint (model + optimizer state + schedule + RNG, one file): the write fails
 * with NB_ERR_IO, the previous checkpoint is byte-for-byte intact with no temporary file left, and resuming from it
 * still reproduces the uninterrupted run. */
START_TEST(failed_checkpoint_write_keeps_previous)
{
    job ref = {in_tmp("ref.ckpt"), in_tmp("ref.final"), 0, true};
    run_to_end(&ref);
    unlink(ref.ckpt);
    job part = {in_tmp("run.ckpt"), NULL, 14, true};
    run_to_end(&part);
    size_t before_n;
    unsigned char *before = slurp(part.ckpt, &before_n);
    ck_assert_uint_gt(before_n, 1024);

    for (rlim_t limit = 8; limit < before_n; limit += before_n / 3) {
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            mlp_run r;
            if (!mlp_run_init(&r, SEED) || mlp_run_load(&r, part.ckpt, true) || !mlp_run_step(&r)) _exit(2);
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {limit, limit};
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
            nb_status st = mlp_run_save(&r, part.ckpt);
            bool ok = st == NB_ERR_IO && strstr(nb_last_error(), "nb_save_safetensors") &&
                      strstr(nb_last_error(), part.ckpt);
            if (!ok) fprintf(stderr, "save under a %llu-byte limit: %s: %s\n", (unsigned long long)limit,
                             nb_status_name(st), nb_last_error());
            _exit(ok ? 0 : 1);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "limit %llu: child status %d",
                      (unsigned long long)limit, status);
        size_t after_n;
        unsigned char *after = slurp(part.ckpt, &after_n);
        ck_assert_uint_eq(after_n, before_n);
        ck_assert_mem_eq(after, before, before_n);
        free(after);
        ck_assert_int_eq(dir_entries(), 2); /* ref.final and run.ckpt: no temporary file left behind */
    }
    free(before);
    job rest = {in_tmp("run.ckpt"), in_tmp("run.final"), 0, true};
    ck_assert_int_eq(run_to_end(&rest), 14);
    nb_param_list *a = read_list(ref.final), *b = read_list(rest.final);
    char why[256] = "";
    ck_assert_msg(mlp_lists_identical(a, b, why, sizeof why), "%s", why);
    free_list(a);
    free_list(b);
}
END_TEST

START_TEST(generator_state_round_trip)
{
    nb_generator g, h;
    nb_generator_seed(&g, 99);
    (void)nb_random_normal(&g); /* leaves a cached second value */
    nb_metadata m = {0};
    ck_assert_ok(nb_generator_state(&g, "rng", &m));
    ck_assert_ptr_nonnull(nb_metadata_get(&m, "rng.generator"));
    nb_generator_seed(&h, 1);
    ck_assert_ok(nb_generator_restore(&h, &m, "rng"));
    for (int i = 0; i < 5; i++) ck_assert(nb_random_normal(&g) == nb_random_normal(&h));
    ck_assert_ok(nb_generator_state(&g, NULL, &m));
    ck_assert_ptr_nonnull(nb_metadata_get(&m, "generator"));

    nb_generator before = h;
    ck_assert_int_eq(nb_generator_restore(&h, &m, "other"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_generator_restore", "other.generator");
    nb_metadata bad = {0};
    nb_metadata_set(&bad, "rng.generator", "0 0 0 0 0 0");
    ck_assert_int_eq(nb_generator_restore(&h, &bad, "rng"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_generator_restore", "not a generator state");
    nb_metadata_set(&bad, "rng.generator", "1 2 3 4 5 1 extra");
    ck_assert_int_eq(nb_generator_restore(&h, &bad, "rng"), NB_ERR_FORMAT);
    ck_assert_mem_eq(&h, &before, sizeof h);
    ck_assert_int_eq(nb_generator_state(NULL, "rng", &m), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_generator_state", "generator");
    ck_assert_int_eq(nb_generator_restore(&h, NULL, "rng"), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_generator_restore", "metadata");
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("resume");
    TCase *tc = tcase_create("resume");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, generator_state_round_trip);
    tcase_add_test(tc, resume_after_sigkill_is_bit_exact);
    tcase_add_test(tc, resume_without_rng_state_differs);
    tcase_add_test(tc, failed_checkpoint_write_keeps_previous);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
