/* Shared helpers of the benchmark programs: clock, medians, thread setup and the machine-readable result lines.
 *
 * Every measurement is printed twice: in a table for people, and as one line
 *     BENCH<TAB>nabla<TAB><key><TAB><value><TAB><unit>
 * that bench/compare.py collects (the peers in bench/peer.py print the same keys). */
#ifndef NABLA_BENCH_H
#define NABLA_BENCH_H

#include <nabla.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Wall-clock time by default. With --clock cpu, the CPU time of the whole process (all its threads): on a
 * machine shared with other jobs a single-threaded figure then counts only the time the process actually ran. */
static bool bench_cpu_clock = false;

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(bench_cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Parses the value of --clock; exits 2 on anything but wall or cpu. */
static inline void bench_set_clock(const char *program, const char *name)
{
    if (strcmp(name, "wall") && strcmp(name, "cpu")) {
        fprintf(stderr, "%s: --clock must be wall or cpu, got '%s'\n", program, name);
        exit(2);
    }
    bench_cpu_clock = !strcmp(name, "cpu");
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static inline void bench_emit(const char *key, double value, const char *unit)
{
    printf("BENCH\tnabla\t%s\t%.6g\t%s\n", key, value, unit);
    fflush(stdout);
}

/* Sets the size of nabla's thread pool (NABLA_NUM_THREADS too, for any child process) and returns the count
 * the library reports. */
static inline int bench_set_threads(const char *program, int threads)
{
    char text[32];
    snprintf(text, sizeof text, "%d", threads);
    setenv("NABLA_NUM_THREADS", text, 1);
    if (nb_set_num_threads(threads) != NB_OK) {
        fprintf(stderr, "%s: %s\n", program, nb_last_error());
        exit(EXIT_FAILURE);
    }
    return nb_num_threads();
}

#endif
