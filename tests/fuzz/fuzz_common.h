/* Shared by nabla's libFuzzer targets: the parsers read paths, so each input is written to one temporary file
 * per process (rewritten in place for every input) whose path the target passes to the parser. */
#ifndef NABLA_FUZZ_COMMON_H
#define NABLA_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nabla.h"

static char fuzz_path[256];
static int fuzz_fd = -1;

static void fuzz_remove_file(void)
{
    if (fuzz_fd >= 0) unlink(fuzz_path);
}

/* Creates the temporary file (once); aborts when that is impossible, since no input could then be tested. */
static void fuzz_init_file(const char *suffix)
{
    const char *dir = getenv("TMPDIR");
    snprintf(fuzz_path, sizeof fuzz_path, "%s/nabla-fuzz-XXXXXX%s", dir && *dir ? dir : "/tmp", suffix);
    fuzz_fd = mkstemps(fuzz_path, (int)strlen(suffix));
    if (fuzz_fd < 0) {
        perror("fuzz: mkstemps");
        abort();
    }
    atexit(fuzz_remove_file);
}

/* Replaces the file's contents with data[0..size) and returns its path. */
static const char *fuzz_write(const uint8_t *data, size_t size)
{
    if (ftruncate(fuzz_fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fuzz_fd, data + done, size - done, (off_t)done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
    return fuzz_path;
}

/* Every parser failure must leave a message naming the function; a silent NULL would be a bug. */
static void fuzz_expect_error(const char *fn)
{
    if (nb_last_status() == NB_OK || !strstr(nb_last_error(), fn)) {
        fprintf(stderr, "fuzz: %s failed without a proper error (status %s, message \"%s\")\n", fn,
                nb_status_name(nb_last_status()), nb_last_error());
        abort();
    }
    nb_clear_error();
}

/* No tensor may outlive an input: the parsers free what they allocate on every path. */
static void fuzz_expect_no_live_tensors(int64_t before)
{
    int64_t now = nb_memory_stats_get().live_tensors;
    if (now != before) {
        fprintf(stderr, "fuzz: %lld tensors leaked by one input\n", (long long)(now - before));
        abort();
    }
}

#endif
