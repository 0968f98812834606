/* Printing in the layout of PyTorch's repr (torch/_tensor_str.py with its default print options), so that a
 * nabla tensor and the same PyTorch tensor print the same values the same way:
 *  - one format for all values, chosen from the nonzero finite values that are shown: integers as "2.",
 *    otherwise 4 decimals, scientific notation when the range is wide (max > 1e8, min < 1e-4 or max/min > 1000);
 *  - values right-aligned to a common width (non-finite values do not take part in the width, as in PyTorch);
 *  - rows wrapped at 80 columns, nested brackets aligned under the opening one;
 *  - above 1000 elements, only the first and last 3 entries of each dimension are shown, around "...".
 * The text is streamed to a sink (a FILE or a caller's buffer) so printing allocates nothing. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define LINEWIDTH 80
#define EDGEITEMS 3
#define THRESHOLD 1000
#define PRECISION 4
#define VALUE_CHARS 64 /* enough: fixed notation is used only up to 1e8 */

/* ------------------------------------------------------------------------------------------------
 * Sink: counts what is written, tracks the column (suffix wrapping needs it), stores what fits.
 * ---------------------------------------------------------------------------------------------- */
typedef struct sink {
    FILE *file; /* streaming target, or NULL for the buffer */
    char *buf;
    size_t size;
    size_t len;
    size_t col;
    bool io_failed;
} sink;

static void put(sink *s, const char *p, size_t n)
{
    if (s->file) {
        if (fwrite(p, 1, n, s->file) != n) s->io_failed = true;
    } else if (s->len + 1 < s->size) {
        size_t room = s->size - 1 - s->len;
        memcpy(s->buf + s->len, p, n < room ? n : room);
    }
    s->len += n;
    const char *nl = memchr(p, '\n', n);
    if (!nl) {
        s->col += n;
        return;
    }
    while (nl) { /* column after the last newline */
        s->col = n - (size_t)(nl - p) - 1;
        nl = memchr(nl + 1, '\n', n - (size_t)(nl - p) - 1);
    }
}

static void put_str(sink *s, const char *p) { put(s, p, strlen(p)); }

static void put_spaces(sink *s, size_t n)
{
    static const char spaces[] = "                                ";
    while (n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        put(s, spaces, k);
        n -= k;
    }
}

/* ------------------------------------------------------------------------------------------------
 * Walking the shown elements. With summarize, a dimension longer than 2 * EDGEITEMS shows its first and
 * last EDGEITEMS entries; `index_of(k)` maps the k-th shown entry to its index.
 * ---------------------------------------------------------------------------------------------- */
static bool elided(const nbi_tensor *t, int d, bool summarize)
{
    return summarize && t->shape[d] > 2 * EDGEITEMS;
}

static int64_t shown_count(const nbi_tensor *t, int d, bool summarize)
{
    return elided(t, d, summarize) ? 2 * EDGEITEMS : t->shape[d];
}

static int64_t shown_index(const nbi_tensor *t, int d, bool summarize, int64_t k)
{
    return elided(t, d, summarize) && k >= EDGEITEMS ? t->shape[d] - 2 * EDGEITEMS + k : k;
}

typedef void (*visit_fn)(const char *elem, void *ctx);

static void visit(const nbi_tensor *t, int d, int64_t off, bool summarize, visit_fn fn, void *ctx)
{
    size_t es = nb_dtype_size(t->dtype);
    if (d == t->ndim) {
        fn((const char *)t->storage->data + off * (int64_t)es, ctx);
        return;
    }
    int64_t n = shown_count(t, d, summarize);
    for (int64_t k = 0; k < n; k++)
        visit(t, d + 1, off + shown_index(t, d, summarize, k) * t->stride[d], summarize, fn, ctx);
}

/* ------------------------------------------------------------------------------------------------
 * The format shared by all shown values.
 * ---------------------------------------------------------------------------------------------- */
typedef struct formatter {
    nb_dtype dtype;
    bool int_mode; /* floats that are all integers: "2." */
    bool sci_mode; /* "2.0000e+08" */
    int width;
} formatter;

static double load_float(const char *p, nb_dtype dtype)
{
    return dtype == NB_F32 ? (double)*(const float *)p : *(const double *)p;
}

/* Writes one value without padding into out (VALUE_CHARS bytes); returns its length. */
static int format_value(const formatter *f, const char *p, char *out)
{
    switch (f->dtype) {
    case NB_I64: return snprintf(out, VALUE_CHARS, "%lld", (long long)*(const int64_t *)p);
    case NB_BOOL: return snprintf(out, VALUE_CHARS, "%s", *(const uint8_t *)p ? "True" : "False");
    case NB_F32:
    case NB_F64: break;
    }
    double v = load_float(p, f->dtype);
    /* spelled out: printf may write "-nan", Python never does */
    if (isnan(v)) return snprintf(out, VALUE_CHARS, "nan");
    if (isinf(v)) return snprintf(out, VALUE_CHARS, v > 0 ? "inf" : "-inf");
    if (f->sci_mode) return snprintf(out, VALUE_CHARS, "%.*e", PRECISION, v);
    if (f->int_mode) return snprintf(out, VALUE_CHARS, "%.0f.", v);
    return snprintf(out, VALUE_CHARS, "%.*f", PRECISION, v);
}

/* Over the nonzero finite values shown. */
typedef struct stats_ctx {
    nb_dtype dtype;
    int64_t count;
    double min_abs, max_abs;
    bool all_integers;
} stats_ctx;

static void stats_visit(const char *p, void *ctx)
{
    stats_ctx *c = ctx;
    double v = load_float(p, c->dtype);
    if (!isfinite(v) || v == 0) return;
    double a = fabs(v);
    if (c->count == 0 || a < c->min_abs) c->min_abs = a;
    if (c->count == 0 || a > c->max_abs) c->max_abs = a;
    if (v != ceil(v)) c->all_integers = false;
    c->count++;
}

typedef struct width_ctx {
    formatter *f;
    bool nonzero_finite_only;
} width_ctx;

static void width_visit(const char *p, void *ctx)
{
    width_ctx *c = ctx;
    if (c->nonzero_finite_only) {
        double v = load_float(p, c->f->dtype);
        if (!isfinite(v) || v == 0) return;
    }
    char tmp[VALUE_CHARS];
    int n = format_value(c->f, p, tmp);
    if (n > c->f->width) c->f->width = n;
}

static formatter choose_format(const nbi_tensor *t, bool summarize)
{
    formatter f = {.dtype = t->dtype, .int_mode = true, .sci_mode = false, .width = 1};
    width_ctx wc = {.f = &f, .nonzero_finite_only = nbi_is_float(t->dtype)};
    if (nbi_is_float(t->dtype)) {
        stats_ctx sc = {.dtype = t->dtype, .all_integers = true};
        visit(t, 0, t->offset, summarize, stats_visit, &sc);
        if (sc.count == 0) return f; /* only zeros and non-finite values: "0.", "nan" */
        double lo = sc.min_abs, hi = sc.max_abs;
        f.int_mode = sc.all_integers;
        f.sci_mode = hi / lo > 1000.0 || hi > 1.0e8 || (!f.int_mode && lo < 1.0e-4);
    }
    visit(t, 0, t->offset, summarize, width_visit, &wc);
    return f;
}

/* ------------------------------------------------------------------------------------------------
 * Layout
 * ---------------------------------------------------------------------------------------------- */
static void put_value(sink *s, const formatter *f, const char *p)
{
    char tmp[VALUE_CHARS];
    int n = format_value(f, p, tmp);
    if (n < f->width) put_spaces(s, (size_t)(f->width - n));
    put(s, tmp, (size_t)n);
}

static void put_separator(sink *s, int newlines, int indent)
{
    put_str(s, ",");
    for (int i = 0; i < newlines; i++) put_str(s, "\n");
    put_spaces(s, (size_t)indent);
}

/* Before entry number `entry` of a row: nothing, ", ", or a line break when the line holds per_line entries. */
static void row_separator(sink *s, int64_t entry, int64_t per_line, int indent)
{
    if (entry == 0) return;
    if (entry % per_line) put_str(s, ", ");
    else put_separator(s, 1, indent + 1);
}

/* Dimension d at element offset off, its '[' printed at column `indent`. */
static void layout(sink *s, const nbi_tensor *t, const formatter *f, int d, int64_t off, int indent,
                   bool summarize)
{
    size_t es = nb_dtype_size(t->dtype);
    const char *base = t->storage->data;
    int64_t n = shown_count(t, d, summarize);
    bool dots = elided(t, d, summarize);
    put_str(s, "[");
    if (d == t->ndim - 1) {
        /* the " ..." marker counts as one entry of the row, as in PyTorch */
        int64_t per_line = (LINEWIDTH - indent) / (f->width + 2);
        if (per_line < 1) per_line = 1;
        int64_t entry = 0;
        for (int64_t k = 0; k < n; k++) {
            if (dots && k == EDGEITEMS) {
                row_separator(s, entry++, per_line, indent);
                put_str(s, " ...");
            }
            row_separator(s, entry++, per_line, indent);
            put_value(s, f, base + (off + shown_index(t, d, summarize, k) * t->stride[d]) * (int64_t)es);
        }
    } else {
        /* blocks of higher dimensions are separated by more blank lines, as in PyTorch */
        int newlines = t->ndim - d - 1;
        for (int64_t k = 0; k < n; k++) {
            if (k > 0) put_separator(s, newlines, indent + 1);
            if (dots && k == EDGEITEMS) {
                put_str(s, "...");
                put_separator(s, newlines, indent + 1);
            }
            layout(s, t, f, d + 1, off + shown_index(t, d, summarize, k) * t->stride[d], indent + 1, summarize);
        }
    }
    put_str(s, "]");
}

/* ", suffix", moved to its own line (aligned with the values) when it would pass the line width. */
static void put_suffix(sink *s, const char *suffix, int indent)
{
    size_t n = strlen(suffix);
    if (s->col + 2 + n + 1 > LINEWIDTH) put_separator(s, 1, indent);
    else put_str(s, ", ");
    put(s, suffix, n);
}

static void render(sink *s, const nbi_tensor *t)
{
    static const char prefix[] = "tensor(";
    const int indent = (int)sizeof prefix - 1;
    put_str(s, prefix);
    if (t->numel == 0) {
        put_str(s, "[]");
    } else {
        bool summarize = t->numel > THRESHOLD;
        formatter f = choose_format(t, summarize);
        if (t->ndim == 0)
            put_value(s, &f, (const char *)t->storage->data + t->offset * (int64_t)nb_dtype_size(t->dtype));
        else
            layout(s, t, &f, 0, t->offset, indent, summarize);
    }
    char shape[NBI_SHAPE_STR], suffix[NBI_SHAPE_STR + 16];
    snprintf(suffix, sizeof suffix, "shape=%s", nbi_shape_fmt(shape, t->ndim, t->shape));
    put_suffix(s, suffix, indent);
    snprintf(suffix, sizeof suffix, "dtype=%s", nb_dtype_name(t->dtype));
    put_suffix(s, suffix, indent);
    put_str(s, ")");
}

/* ------------------------------------------------------------------------------------------------
 * Public entry points
 * ---------------------------------------------------------------------------------------------- */
static nb_status print_to(FILE *f, const nb_tensor *h, const char *fn)
{
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return nb_last_status();
    if (!f) return nbi_fail(NB_ERR_NULL, "%s: file is NULL", fn);
    sink s = {.file = f};
    render(&s, t);
    put_str(&s, "\n");
    /* fwrite into the stream's buffer succeeds even when the device is full; the failure shows only on flush */
    if (fflush(f) != 0 || ferror(f)) s.io_failed = true;
    if (s.io_failed)
        return nbi_fail(NB_ERR_IO, "%s: writing %zu characters failed: %s", fn, s.len, strerror(errno));
    return NB_OK;
}

nb_status nb_fprint(FILE *f, const nb_tensor *t) { return print_to(f, t, "nb_fprint"); }

nb_status nb_print(const nb_tensor *t) { return print_to(stdout, t, "nb_print"); }

size_t nb_format(const nb_tensor *h, char *buf, size_t size)
{
    if (buf && size > 0) buf[0] = '\0';
    nbi_tensor *t = nbi_resolve(h, "nb_format", "tensor");
    if (!t) return 0;
    if (!buf && size > 0) {
        nbi_error(NB_ERR_NULL, "nb_format: buf is NULL but size is %zu", size);
        return 0;
    }
    sink s = {.buf = buf, .size = size};
    render(&s, t);
    if (size > 0) buf[s.len < size ? s.len : size - 1] = '\0';
    return s.len;
}
