/* Error model: a thread-local message and status, an optional process-wide handler. */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBI_ERROR_MAX 1024

static _Thread_local char error_message[NBI_ERROR_MAX];
static _Thread_local nb_status error_status = NB_OK;
static _Thread_local uint64_t error_count;

/* The handler and its data change together: under a lock, so that an error on another thread never pairs the new
 * handler with the old data. Taken only to set them and on an error, never while the handler runs. */
static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;
static nb_error_handler error_handler;
static void *error_handler_data;

const char *nb_last_error(void) { return error_message; }
nb_status nb_last_status(void) { return error_status; }
uint64_t nbi_error_count(void) { return error_count; }

void nb_clear_error(void)
{
    error_message[0] = '\0';
    error_status = NB_OK;
}

const char *nb_status_name(nb_status status)
{
    static const char *const names[] = {
        "NB_OK",        "NB_ERR_NULL",  "NB_ERR_FREED", "NB_ERR_ARG",   "NB_ERR_SHAPE",
        "NB_ERR_DTYPE", "NB_ERR_INDEX", "NB_ERR_VALUE", "NB_ERR_NOMEM", "NB_ERR_STATE",
        "NB_ERR_IO",    "NB_ERR_FORMAT", "NB_ERR_GRADCHECK", "NB_ERR_COMM"};
    if ((unsigned)status >= sizeof names / sizeof names[0]) return "NB_ERR_?";
    return names[status];
}

void nb_set_error_handler(nb_error_handler handler, void *user_data)
{
    pthread_mutex_lock(&handler_lock);
    error_handler = handler;
    error_handler_data = user_data;
    pthread_mutex_unlock(&handler_lock);
}

void nb_abort_on_error(nb_status status, const char *message, void *user_data)
{
    (void)user_data;
    fprintf(stderr, "nabla: %s (%s)\n", message, nb_status_name(status));
    abort();
}

static void record(nb_status status, const char *fmt, va_list ap)
{
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    error_status = status;
    error_count++;
    pthread_mutex_lock(&handler_lock);
    nb_error_handler handler = error_handler;
    void *data = error_handler_data;
    pthread_mutex_unlock(&handler_lock);
    if (handler) handler(status, error_message, data);
}

void *nbi_error(nb_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(status, fmt, ap);
    va_end(ap);
    return NULL;
}

nb_status nbi_fail(nb_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(status, fmt, ap);
    va_end(ap);
    return status;
}

void nbi_error_null(const char *fn, const char *what)
{
    if (error_status != NB_OK) return; /* keep the message of the op that failed first */
    nbi_error(NB_ERR_NULL, "%s: %s is NULL", fn, what);
}

/* Ops format their operands' shapes up front for their messages, on every call: digits by hand rather than
 * snprintf keeps that to a few nanoseconds. */
static size_t format_int64(char *out, int64_t value)
{
    char digits[24];
    size_t n = 0, used = 0;
    uint64_t v = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (value < 0) out[used++] = '-';
    while (n) out[used++] = digits[--n];
    return used;
}

char *nbi_shape_fmt(char *buf, int ndim, const int64_t *shape)
{
    size_t used = 0;
    buf[used++] = '(';
    for (int i = 0; i < ndim && used < NBI_SHAPE_STR - 24; i++) {
        if (i) {
            buf[used++] = ',';
            buf[used++] = ' ';
        }
        used += format_int64(buf + used, shape[i]);
    }
    buf[used++] = ')';
    buf[used] = '\0';
    return buf;
}
