/* Numeric CSV files with a header line of column names. Cells are plain numbers separated by commas (no
 * quoting); anything strtod accepts is a number, including "nan" and "inf". */
#include "data_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FN "nb_csv_read"

/* One line of the file: [begin, end) without its line terminator (LF, CRLF, or a lone CR). */
typedef struct line {
    char *begin, *end;
} line;

/* Terminators as Python's universal newlines (and pandas) read them: a file saved with classic Mac line endings
 * (CR only) would otherwise be one long header line whose names swallow the CRs, read as OK with no rows. A single
 * forward scan for either byte: searching for LF first would rescan a CR-only file for every line. */
static line line_at(char *p, char *file_end, char **next)
{
    char *end = p;
    while (end < file_end && *end != '\n' && *end != '\r') end++;
    char *after = end;
    if (after < file_end) after += (*after == '\r' && after + 1 < file_end && after[1] == '\n') ? 2 : 1;
    *next = after;
    return (line){p, end};
}

static bool is_space(char c) { return c == ' ' || c == '\t'; }

static bool is_blank(line l)
{
    for (char *p = l.begin; p < l.end; p++)
        if (!is_space(*p)) return false;
    return true;
}

/* Trims the spaces around [*b, *e). */
static void trim(char **b, char **e)
{
    while (*b < *e && is_space(**b)) (*b)++;
    while (*e > *b && is_space((*e)[-1])) (*e)--;
}

static char *cell_end(char *p, char *end)
{
    char *comma = memchr(p, ',', (size_t)(end - p));
    return comma ? comma : end;
}

static void free_names(char **names, int64_t n)
{
    if (!names) return;
    for (int64_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Splits the header into malloc'ed names; returns the count, or -1 after recording an error. */
static int64_t parse_header(const char *path, line l, char ***names_out)
{
    int64_t cols = 1;
    for (char *p = l.begin; p < l.end; p++) cols += *p == ',';
    char **names = calloc((size_t)cols, sizeof *names);
    if (!names) return nbi_error(NB_ERR_NOMEM, FN ": %s: out of memory for %lld column names", path, (long long)cols), -1;
    nbi_count_system_alloc();
    char *p = l.begin;
    for (int64_t c = 0; c < cols; c++) {
        char *e = cell_end(p, l.end), *next = e + 1, *b = p;
        trim(&b, &e);
        if (b == e) {
            free_names(names, cols);
            nbi_error(NB_ERR_FORMAT, FN ": %s: line 1, column %lld: empty column name in the header", path,
                      (long long)c + 1);
            return -1;
        }
        names[c] = malloc((size_t)(e - b) + 1);
        if (!names[c]) {
            free_names(names, cols);
            nbi_error(NB_ERR_NOMEM, FN ": %s: out of memory for the column names", path);
            return -1;
        }
        nbi_count_system_alloc();
        memcpy(names[c], b, (size_t)(e - b));
        names[c][e - b] = 0;
        p = next;
    }
    *names_out = names;
    return cols;
}

/* The first 40 bytes of [b, e) for a message, with control bytes (a form feed, a NUL inside the cell) and
 * backslashes escaped (\x0c, \\): printed raw they would be invisible, or cut the message short. Bytes from
 * 0x80 up are left alone: they are UTF-8 text, readable as it is. */
#define SHOWN_BYTES 40
static const char *shown(const char *b, const char *e, char out[4 * SHOWN_BYTES + 4])
{
    char *o = out;
    for (const char *p = b; p < e && p - b < SHOWN_BYTES; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f) o += sprintf(o, "\\x%02x", c);
        else if (c == '\\') o += sprintf(o, "\\\\");
        else *o++ = (char)c;
    }
    *o = 0;
    return out;
}

/* Parses the cells of data line `lineno` into row[0..cols). Writes NULs into the line (the buffer is ours). */
static bool parse_row(const char *path, line l, int64_t lineno, int64_t cols, char **names, double *row)
{
    char *p = l.begin;
    for (int64_t c = 0; c < cols; c++) {
        if (p > l.end) {
            nbi_error(NB_ERR_FORMAT, FN ": %s: line %lld, column %lld: missing cell: the row has %lld of the "
                      "header's %lld columns", path, (long long)lineno, (long long)c + 1, (long long)c,
                      (long long)cols);
            return false;
        }
        char *e = cell_end(p, l.end), *next = e + 1, *b = p;
        trim(&b, &e);
        if (b == e) {
            nbi_error(NB_ERR_FORMAT, FN ": %s: line %lld, column %lld (%s): empty cell", path, (long long)lineno,
                      (long long)c + 1, names[c]);
            return false;
        }
        *e = 0;
        char *stop, text[4 * SHOWN_BYTES + 4];
        errno = 0;
        double v = strtod(b, &stop);
        if (stop != e) {
            nbi_error(NB_ERR_FORMAT, FN ": %s: line %lld, column %lld (%s): \"%s\" is not a number", path,
                      (long long)lineno, (long long)c + 1, names[c], shown(b, e, text));
            return false;
        }
        if (errno == ERANGE && isinf(v)) {
            nbi_error(NB_ERR_FORMAT, FN ": %s: line %lld, column %lld (%s): %s is out of range", path,
                      (long long)lineno, (long long)c + 1, names[c], shown(b, e, text));
            return false;
        }
        row[c] = v;
        p = next;
    }
    if (p <= l.end) {
        nbi_error(NB_ERR_FORMAT, FN ": %s: line %lld, column %lld: extra cell: the header has %lld columns", path,
                  (long long)lineno, (long long)cols + 1, (long long)cols);
        return false;
    }
    return true;
}

/* The tensor belongs to the struct, which the caller frees with nb_csv_free: take it out of any open scope. */
static void own(nb_tensor *h)
{
    nbi_tensor *t = nbi_peek(h);
    while (t && t->owner == NBI_OWNER_SCOPE) nbi_keep(t);
}

nb_csv *nb_csv_read(const char *path)
{
    if (!path) return nbi_error(NB_ERR_NULL, FN ": path is NULL");
    size_t size;
    char *text = (char *)nbi_read_file(FN, path, &size);
    if (!text) return NULL;
    /* Data sets ship as .csv.gz too; parsed as text, the compressed bytes would become the column names. */
    if (nbi_is_gzip((const unsigned char *)text, size)) {
        size_t n;
        unsigned char *raw = nbi_gunzip(FN, path, (const unsigned char *)text, size, &n);
        free(text);
        if (!raw) return NULL;
        /* the spare zero byte nbi_read_file leaves after the text: parse_row may write a NUL there */
        char *grown = realloc(raw, n + 1);
        if (!grown) {
            free(raw);
            return nbi_error(NB_ERR_NOMEM, FN ": %s: out of memory for the decompressed text", path);
        }
        nbi_count_system_alloc();
        text = grown;
        text[n] = 0;
        size = n;
    }
    char *p = text, *end = text + size;
    if (size >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3; /* a UTF-8 byte order mark */

    line header = line_at(p, end, &p);
    if (is_blank(header)) {
        free(text);
        return nbi_error(NB_ERR_FORMAT, FN ": %s: line 1, column 1: no header line%s", path,
                         size == 0 ? " (empty file)" : "");
    }
    char *data_start = p;
    /* Rows run up to the last non-blank line; blank lines after it are ignored. */
    int64_t rows = 0, lines = 0;
    while (p < end) {
        line l = line_at(p, end, &p);
        lines++;
        if (!is_blank(l)) rows = lines;
    }

    nb_csv *csv = calloc(1, sizeof *csv);
    if (!csv) {
        free(text);
        return nbi_error(NB_ERR_NOMEM, FN ": %s: out of memory", path);
    }
    nbi_count_system_alloc();
    csv->cols = parse_header(path, header, &csv->names);
    if (csv->cols < 0) {
        free(csv);
        free(text);
        return NULL;
    }
    /* Values go to a plain buffer first: the tensor is allocated only once the whole file has proved valid. */
    size_t cap = 0;
    double *values = NULL;
    p = data_start;
    for (int64_t r = 0; r < rows; r++) {
        line l = line_at(p, end, &p);
        int64_t lineno = r + 2;
        if (is_blank(l)) {
            nbi_error(NB_ERR_FORMAT, FN ": %s: line %lld, column 1: blank line between rows", path,
                      (long long)lineno);
            goto failed;
        }
        size_t need = (size_t)(r + 1) * (size_t)csv->cols;
        if (need > cap) {
            size_t grown_cap = cap ? cap * 2 : need * 64;
            double *grown = realloc(values, grown_cap * sizeof *values);
            if (!grown) {
                nbi_error(NB_ERR_NOMEM, FN ": %s: out of memory at line %lld", path, (long long)lineno);
                goto failed;
            }
            nbi_count_system_alloc();
            values = grown;
            cap = grown_cap;
        }
        if (!parse_row(path, l, lineno, csv->cols, csv->names, values + (size_t)r * (size_t)csv->cols))
            goto failed;
    }
    csv->rows = rows;
    nbi_tensor *t = nbi_tensor_new(NB_F64, 2, (const int64_t[]){rows, csv->cols}, FN);
    if (!t) goto failed;
    if (rows) memcpy(nbi_data_ptr(t), values, (size_t)rows * (size_t)csv->cols * sizeof *values);
    csv->values = nbi_handle(t);
    own(csv->values);
    free(values);
    free(text);
    return csv;

failed:
    free(values);
    free(text);
    nb_csv_free(csv);
    return NULL;
}

void nb_csv_free(nb_csv *csv)
{
    if (!csv) return;
    free_names(csv->names, csv->cols);
    if (csv->values && nb_is_valid(csv->values)) nb_free(csv->values);
    free(csv);
}

int64_t nb_csv_column(const nb_csv *csv, const char *name)
{
    if (!csv) return nbi_error(NB_ERR_NULL, "nb_csv_column: csv is NULL"), -1;
    if (!name) return nbi_error(NB_ERR_NULL, "nb_csv_column: name is NULL"), -1;
    for (int64_t c = 0; c < csv->cols; c++)
        if (strcmp(csv->names[c], name) == 0) return c;
    return -1;
}
