/* Progress display: a bar redrawn in place with \r on a terminal, plain lines elsewhere (CI logs, files), where
 * carriage returns would pile up as garbage. Loss and accuracy are running means over the epoch, weighted by
 * samples, as Keras shows them: a single step's values are too noisy to read. Rates and ETA use a monotonic
 * clock so that a wall-clock adjustment cannot make them negative. */
#include "internal.h"
#include "nb_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_OFF, MODE_PLAIN, MODE_BAR };

#define BAR_WIDTH 20
#define REDRAW_SECONDS 0.1 /* a bar redrawn more often only costs time: nobody reads it that fast */

struct nb_progress {
    FILE *f;
    enum mode mode;
    int64_t epochs, total_steps, log_every;
    int64_t epoch;      /* index of the epoch being reported */
    int64_t step;       /* index of the last finished step, -1 before the first */
    int64_t steps_done; /* in this epoch */
    int64_t samples;    /* in this epoch */
    double loss_sum, loss_weight, acc_sum, acc_weight;
    double epoch_start, last_draw;
    int last_len; /* length of the bar's last drawing, to blank what a shorter one leaves */
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static enum mode choose_mode(FILE *f)
{
    const char *env = getenv("NB_PROGRESS");
    if (env && !strcmp(env, "off")) return MODE_OFF;
    if (env && !strcmp(env, "plain")) return MODE_PLAIN;
    if (env && !strcmp(env, "bar")) return MODE_BAR;
    int fd = fileno(f); /* -1 for memory streams */
    return fd >= 0 && isatty(fd) ? MODE_BAR : MODE_PLAIN;
}

static void start_epoch(nb_progress *p, int64_t epoch)
{
    p->epoch = epoch;
    p->step = -1;
    p->steps_done = p->samples = 0;
    p->loss_sum = p->loss_weight = p->acc_sum = p->acc_weight = 0;
    p->epoch_start = now_seconds();
    p->last_draw = -INFINITY;
}

nb_progress *nb_progress_new(FILE *f, int64_t epochs, int64_t total_steps, int64_t log_every)
{
    const char *fn = "nb_progress_new";
    if (epochs < 0 || total_steps < 0 || log_every < 0)
        return nbi_error(NB_ERR_ARG, "%s: epochs, total_steps and log_every must be >= 0, got %lld, %lld, %lld", fn,
                         (long long)epochs, (long long)total_steps, (long long)log_every);
    nb_progress *p = malloc(sizeof *p);
    if (!p) return nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    nbi_count_system_alloc();
    memset(p, 0, sizeof *p);
    p->f = f ? f : stderr;
    p->mode = choose_mode(p->f);
    p->epochs = epochs;
    p->total_steps = total_steps;
    p->log_every = log_every;
    start_epoch(p, 0);
    return p;
}

/* "12.3s", "4:05" or "1:02:03". */
static void fmt_duration(char *buf, size_t size, double s)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, size, "?");
        return;
    }
    if (s < 60) {
        snprintf(buf, size, "%.1fs", s);
        return;
    }
    long long t = (long long)(s + 0.5);
    if (t < 3600) snprintf(buf, size, "%lld:%02lld", t / 60, t % 60);
    else snprintf(buf, size, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
}

/* Appends printf-style text to line (of capacity PROGRESS_LINE) at *len, truncating safely. */
#define PROGRESS_LINE 512
static void append(char *line, int *len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *line, int *len, const char *fmt, ...)
{
    if (*len >= PROGRESS_LINE - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + *len, (size_t)(PROGRESS_LINE - *len), fmt, ap);
    va_end(ap);
    if (n > 0) *len = *len + n < PROGRESS_LINE - 1 ? *len + n : PROGRESS_LINE - 1;
}

/* The status text shared by both modes: epoch, step (or bar), loss, accuracy, rate, and ETA or the epoch's
 * time when done. */
static int compose(const nb_progress *p, char *line, bool bar, bool done, const char *extra)
{
    int len = 0;
    double elapsed = now_seconds() - p->epoch_start;
    if (p->epochs > 0) append(line, &len, "epoch %lld/%lld", (long long)(p->epoch + 1), (long long)p->epochs);
    else append(line, &len, "epoch %lld", (long long)(p->epoch + 1));
    int64_t shown = p->step + 1;
    if (bar && p->total_steps > 0) {
        /* the ratio in double: shown * BAR_WIDTH overflows int64 for step counts near its range */
        int64_t fill = shown >= p->total_steps ? BAR_WIDTH
                                               : (int64_t)((double)shown / (double)p->total_steps * BAR_WIDTH);
        append(line, &len, " [");
        for (int64_t i = 0; i < BAR_WIDTH; i++) append(line, &len, "%c", i < fill ? '=' : (i == fill ? '>' : ' '));
        append(line, &len, "] %lld/%lld", (long long)shown, (long long)p->total_steps);
    } else if (p->total_steps > 0) {
        append(line, &len, "  step %lld/%lld", (long long)shown, (long long)p->total_steps);
    } else {
        append(line, &len, "  step %lld", (long long)shown);
    }
    if (done) append(line, &len, " done");
    if (p->loss_weight > 0) append(line, &len, "  loss %.4f", p->loss_sum / p->loss_weight);
    if (p->acc_weight > 0) append(line, &len, "  acc %.4f", p->acc_sum / p->acc_weight);
    append(line, &len, "  %.0f samples/s", elapsed > 0 ? (double)p->samples / elapsed : 0.0);
    char dur[32];
    if (done) {
        fmt_duration(dur, sizeof dur, elapsed);
        append(line, &len, "  %s", dur);
    } else if (p->total_steps > 0 && p->steps_done > 0) {
        /* Counted in double: the steps of the later epochs overflow int64 for epoch counts near its range, and
         * an ETA that long only needs to read "?". */
        double left = (double)p->total_steps - (double)shown;
        if (left < 0) left = 0;
        double later = (double)p->epochs - (double)p->epoch - 1;
        if (later > 0) left += later * (double)p->total_steps;
        fmt_duration(dur, sizeof dur, elapsed / (double)p->steps_done * left);
        append(line, &len, "  ETA %s", dur);
    }
    if (extra && *extra) append(line, &len, "  %s", extra);
    return len;
}

/* A redrawn line longer than the terminal would wrap, and \r would then redraw only its last row. */
static int terminal_width(FILE *f)
{
#ifdef TIOCGWINSZ
    struct winsize ws;
    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
#endif
    const char *env = getenv("COLUMNS");
    int cols = env ? atoi(env) : 0;
    return cols > 0 ? cols : 80;
}

static void draw_bar(nb_progress *p, bool done, const char *extra)
{
    char line[PROGRESS_LINE];
    int len = compose(p, line, true, done, extra);
    int width = terminal_width(p->f);
    if (!done && len > width - 1) line[len = width > 1 ? width - 1 : 1] = '\0'; /* a final line may wrap */
    int pad = p->last_len > len ? p->last_len - len : 0;
    fprintf(p->f, "\r%s%*s", line, pad, "");
    if (done) fputc('\n', p->f);
    fflush(p->f);
    p->last_len = done ? 0 : len;
}

static void print_plain(nb_progress *p, bool done, const char *extra)
{
    char line[PROGRESS_LINE];
    compose(p, line, false, done, extra);
    fprintf(p->f, "%s\n", line);
    fflush(p->f);
}

void nb_progress_update(nb_progress *p, int64_t epoch, int64_t step, int64_t samples, double loss, double accuracy)
{
    if (!p) {
        nbi_error(NB_ERR_NULL, "nb_progress_update: progress is NULL");
        return;
    }
    if (epoch != p->epoch) start_epoch(p, epoch); /* the caller skipped nb_progress_end_epoch */
    double w = samples > 0 ? (double)samples : 1.0;
    p->step = step;
    p->steps_done++;
    if (samples > 0) p->samples += samples;
    if (!isnan(loss)) {
        p->loss_sum += w * loss;
        p->loss_weight += w;
    }
    if (!isnan(accuracy)) {
        p->acc_sum += w * accuracy;
        p->acc_weight += w;
    }
    if (p->mode == MODE_PLAIN) {
        /* the epoch's last step is left to nb_progress_end_epoch's summary line */
        if (p->log_every > 0 && (step + 1) % p->log_every == 0 && step + 1 != p->total_steps)
            print_plain(p, false, NULL);
    } else if (p->mode == MODE_BAR) {
        double t = now_seconds();
        if (t - p->last_draw >= REDRAW_SECONDS || step + 1 == p->total_steps) {
            p->last_draw = t;
            draw_bar(p, false, NULL);
        }
    }
}

void nb_progress_end_epoch(nb_progress *p, const char *extra)
{
    if (!p) {
        nbi_error(NB_ERR_NULL, "nb_progress_end_epoch: progress is NULL");
        return;
    }
    if (p->mode == MODE_PLAIN) print_plain(p, true, extra);
    else if (p->mode == MODE_BAR) draw_bar(p, true, extra);
    start_epoch(p, p->epoch + 1);
}

void nb_progress_free(nb_progress *p)
{
    if (!p) return;
    if (p->mode == MODE_BAR && p->last_len > 0) { /* leave the cursor on a fresh line */
        fputc('\n', p->f);
        fflush(p->f);
    }
    free(p);
}
