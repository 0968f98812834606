/* Shared helpers for the example programs: command-line flags and simple SVG charts. Not part of the library. */
#ifndef NABLA_EXAMPLES_COMMON_H
#define NABLA_EXAMPLES_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* A flag table: each entry names a flag ("--epochs"), its kind and where to store the value. */
typedef enum { EX_INT, EX_DOUBLE, EX_STRING, EX_BOOL } ex_kind;
typedef struct ex_flag {
    const char *name;
    ex_kind kind;
    void *value; /* int64_t*, double*, const char**, bool* (EX_BOOL takes no argument) */
    const char *help;
} ex_flag;
/* Parses argv against the table; prints usage (with the defaults currently stored) and exits 0 on --help;
 * prints an error naming the flag and exits 2 on an unknown flag or a bad value. */
void ex_parse_flags(int argc, char **argv, const char *program, const char *summary, int n, const ex_flag *flags);

/* Seconds from a monotonic clock. */
double ex_now(void);

/* SVG output: a chart of width x height pixels mapping data coordinates [x0,x1] x [y0,y1]. */
typedef struct ex_svg {
    FILE *f;
    double width, height, x0, x1, y0, y1, margin;
} ex_svg;
/* Opens path and writes the header, axes box and a title; false (message on stderr) when it cannot. */
bool ex_svg_open(ex_svg *s, const char *path, double width, double height, double x0, double x1, double y0,
                 double y1, const char *title);
/* A polyline through n points in data coordinates, with a legend entry `label` (may be NULL) at slot `slot`. */
void ex_svg_line(ex_svg *s, int n, const double *x, const double *y, const char *color, const char *label, int slot);
/* A dot at a data point. */
void ex_svg_dot(ex_svg *s, double x, double y, double radius, const char *color);
/* A filled rectangle in data coordinates with opacity (for decision-region grids). */
void ex_svg_rect(ex_svg *s, double x, double y, double w, double h, const char *color, double opacity);
/* Writes the footer and closes the file. */
void ex_svg_close(ex_svg *s);

#endif
