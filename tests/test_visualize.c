/* Seeing the graph and the chain rule: labels, the DOT export and its SVG rendering, the backward trace (checked
 * against the hand-computed chain rule of tests/reference/trace_reference.py), micrograd-style printing, and
 * micrograd's scalar examples redone with 0-d tensors. */
#define _GNU_SOURCE /* open_memstream, mkdtemp, setenv */
#include "helpers.h"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------------------------------- */
/* Text written to a memory stream. */
typedef struct capture {
    FILE *f;
    char *text;
    size_t size;
} capture;

static void capture_open(capture *c)
{
    c->text = NULL;
    c->size = 0;
    c->f = open_memstream(&c->text, &c->size);
    ck_assert_ptr_nonnull(c->f);
}

/* Closes the stream; the text stays in c->text until capture_free. */
static const char *capture_close(capture *c)
{
    fclose(c->f);
    c->f = NULL;
    return c->text;
}

static void capture_free(capture *c) { free(c->text); }

/* text contains the line `line` exactly (whole line). */
#define ck_assert_has_line(text, line)                                                                   \
    do {                                                                                                 \
        const char *ck_t_ = (text), *ck_l_ = (line);                                                     \
        size_t ck_n_ = strlen(ck_l_);                                                                    \
        bool ck_found_ = false;                                                                          \
        for (const char *ck_p_ = ck_t_; ck_p_ && *ck_p_ && !ck_found_;) {                                \
            const char *ck_e_ = strchr(ck_p_, '\n');                                                     \
            size_t ck_len_ = ck_e_ ? (size_t)(ck_e_ - ck_p_) : strlen(ck_p_);                            \
            ck_found_ = ck_len_ == ck_n_ && memcmp(ck_p_, ck_l_, ck_n_) == 0;                            \
            ck_p_ = ck_e_ ? ck_e_ + 1 : NULL;                                                            \
        }                                                                                                \
        ck_assert_msg(ck_found_, "line\n%s\nnot found in\n%s", ck_l_, ck_t_);                            \
    } while (0)

static nb_tensor *scalar_leaf(double v, const char *label)
{
    nb_tensor *t = nb_scalar(v, NB_F64);
    nb_set_requires_grad(t, true);
    if (label) nb_set_label(t, label);
    return t;
}

/* micrograd's first example: L = (a b + c) f, with c and the sum unlabelled and f a constant. */
typedef struct example {
    nb_tensor *a, *b, *c, *e, *d, *f, *L;
} example;

static example make_example(void)
{
    example x;
    x.a = scalar_leaf(2, "a");
    x.b = scalar_leaf(-3, "b");
    x.c = scalar_leaf(10, NULL);
    x.f = nb_scalar(-2, NB_F64);
    nb_set_label(x.f, "f");
    x.e = nb_mul(x.a, x.b);
    nb_set_label(x.e, "e");
    x.d = nb_add(x.e, x.c);
    x.L = nb_mul(x.d, x.f);
    nb_set_label(x.L, "L");
    ck_assert_tensor(x.L);
    return x;
}

/* ------------------------------------------------------------------------------------------------
 * Labels
 * ---------------------------------------------------------------------------------------------- */
START_TEST(labels)
{
    nb_scope_begin();
    nb_tensor *t = nb_zeros(NB_SHAPE(2), NB_F32);
    ck_assert_ptr_null(nb_label(t));
    ck_assert_int_eq(nb_last_status(), NB_OK); /* no label is not an error */
    ck_assert_ok(nb_set_label(t, "weights"));
    ck_assert_str_eq(nb_label(t), "weights");
    /* copied: the caller's buffer may change */
    char buf[16] = "bias";
    ck_assert_ok(nb_set_label(t, buf));
    strcpy(buf, "other");
    ck_assert_str_eq(nb_label(t), "bias");
    /* results do not inherit labels */
    ck_assert_ptr_null(nb_label(nb_add_scalar(t, 1)));
    /* exactly NB_LABEL_MAX bytes is fine, one more is refused and the old label stays */
    char longest[NB_LABEL_MAX + 2];
    memset(longest, 'x', NB_LABEL_MAX);
    longest[NB_LABEL_MAX] = '\0';
    ck_assert_ok(nb_set_label(t, longest));
    ck_assert_str_eq(nb_label(t), longest);
    strcat(longest, "y");
    ck_assert_int_eq(nb_set_label(t, longest), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_set_label", "32 bytes", "at most 31");
    ck_assert_uint_eq(strlen(nb_label(t)), NB_LABEL_MAX);
    ck_assert_int_eq(nb_set_label(t, "two\nlines"), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_set_label", "control character 0x0a at byte 3");
    /* NULL and "" remove it */
    ck_assert_ok(nb_set_label(t, NULL));
    ck_assert_ptr_null(nb_label(t));
    ck_assert_ok(nb_set_label(t, "w"));
    ck_assert_ok(nb_set_label(t, ""));
    ck_assert_ptr_null(nb_label(t));
    /* errors */
    nb_clear_error();
    ck_assert_int_eq(nb_set_label(NULL, "x"), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_set_label", "tensor is NULL");
    nb_clear_error();
    ck_assert_ptr_null(nb_label(NULL));
    ck_assert_error(NB_ERR_NULL, "nb_label", "tensor is NULL");
    nb_tensor *gone = nb_ones(NB_SHAPE(1), NB_F64);
    nb_free(gone);
    ck_assert_int_eq(nb_set_label(gone, "x"), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_set_label");
    ck_assert_ptr_null(nb_label(gone));
    ck_assert_error(NB_ERR_FREED, "nb_label");
    nb_scope_end();
}
END_TEST

/* A recycled header starts without the label of the tensor that used it before. */
START_TEST(labels_do_not_survive_recycling)
{
    for (int i = 0; i < 64; i++) {
        nb_tensor *t = nb_zeros(NB_SHAPE(1), NB_F32);
        ck_assert_ptr_null(nb_label(t));
        nb_set_label(t, "old");
        nb_free(t);
    }
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * DOT
 * ---------------------------------------------------------------------------------------------- */
static const char example_dot[] =
    "digraph nabla {\n"
    "  rankdir=LR;\n"
    "  node [shape=record, fontname=\"Helvetica\", fontsize=10];\n"
    "  t0 [label=\"{L | shape () f64 | value -8.0000}\"];\n"
    "  op0 [label=\"mul\", shape=ellipse];\n"
    "  op0 -> t0;\n"
    "  t1 -> op0 [label=\"a\"];\n"
    "  t2 -> op0 [label=\"b\"];\n"
    "  t1 [label=\"{#1 | shape () f64 | value 4.0000}\"];\n"
    "  op1 [label=\"add\", shape=ellipse];\n"
    "  op1 -> t1;\n"
    "  t3 -> op1 [label=\"a\"];\n"
    "  t4 -> op1 [label=\"b\"];\n"
    "  t2 [label=\"{f | shape () f64 | value -2.0000}\"];\n"
    "  t3 [label=\"{e | shape () f64 | value -6.0000}\"];\n"
    "  op3 [label=\"mul\", shape=ellipse];\n"
    "  op3 -> t3;\n"
    "  t5 -> op3 [label=\"a\"];\n"
    "  t6 -> op3 [label=\"b\"];\n"
    "  t4 [label=\"{#4 | shape () f64 | value 10.0000%s}\", style=filled, fillcolor=lightblue];\n"
    "  t5 [label=\"{a | shape () f64 | value 2.0000%s}\", style=filled, fillcolor=lightblue];\n"
    "  t6 [label=\"{b | shape () f64 | value -3.0000%s}\", style=filled, fillcolor=lightblue];\n"
    "}\n";

START_TEST(dot_of_micrograd_example)
{
    nb_scope_begin();
    example x = make_example();
    char expected[4096];
    capture c;
    capture_open(&c);
    ck_assert_ok(nb_dot_write(x.L, c.f));
    snprintf(expected, sizeof expected, example_dot, "", "", "");
    ck_assert_str_eq(capture_close(&c), expected);
    capture_free(&c);

    /* after a backward that keeps the graph, the leaves show their gradients */
    ck_assert_ok(nb_backward_ex(x.L, NULL, NB_RETAIN_GRAPH));
    capture_open(&c);
    ck_assert_ok(nb_dot_write(x.L, c.f));
    snprintf(expected, sizeof expected, example_dot, " | grad -2.0000", " | grad 6.0000", " | grad -4.0000");
    ck_assert_str_eq(capture_close(&c), expected);
    capture_free(&c);

    /* the same graph gives the same text every time */
    capture_open(&c);
    ck_assert_ok(nb_dot_write(x.L, c.f));
    ck_assert_str_eq(capture_close(&c), expected);
    capture_free(&c);

    /* a released graph says so */
    ck_assert_ok(nb_backward(x.L));
    capture_open(&c);
    ck_assert_ok(nb_dot_write(x.L, c.f));
    ck_assert_str_eq(capture_close(&c), "digraph nabla {\n"
                                        "  rankdir=LR;\n"
                                        "  node [shape=record, fontname=\"Helvetica\", fontsize=10];\n"
                                        "  t0 [label=\"{L | shape () f64 | value -8.0000}\"];\n"
                                        "  op0 [label=\"mul (graph released)\", shape=ellipse];\n"
                                        "  op0 -> t0;\n"
                                        "}\n");
    capture_free(&c);
    nb_scope_end();
}
END_TEST

/* Reuse (b = a + a) draws two edges from a; tensors above 8 elements show no values; labels are escaped; a
 * non-recorded tensor is one node. */
START_TEST(dot_details)
{
    nb_scope_begin();
    nb_tensor *a = scalar_leaf(1, "a{1}|<x>");
    nb_tensor *b = nb_add(a, a);
    nb_tensor *w = nb_ones(NB_SHAPE(3, 3), NB_F64);
    nb_set_requires_grad(w, true);
    nb_tensor *s = nb_sum(nb_mul(w, b), 0, NULL, false);
    capture c;
    capture_open(&c);
    ck_assert_ok(nb_dot_write(s, c.f));
    ck_assert_str_eq(capture_close(&c),
                     "digraph nabla {\n"
                     "  rankdir=LR;\n"
                     "  node [shape=record, fontname=\"Helvetica\", fontsize=10];\n"
                     "  t0 [label=\"{#0 | shape () f64 | value 18.0000}\"];\n"
                     "  op0 [label=\"sum\", shape=ellipse];\n"
                     "  op0 -> t0;\n"
                     "  t1 -> op0;\n"
                     "  t1 [label=\"{#1 | shape (3, 3) f64}\"];\n"
                     "  op1 [label=\"mul\", shape=ellipse];\n"
                     "  op1 -> t1;\n"
                     "  t2 -> op1 [label=\"a\"];\n"
                     "  t3 -> op1 [label=\"b\"];\n"
                     "  t2 [label=\"{#2 | shape (3, 3) f64}\", style=filled, fillcolor=lightblue];\n"
                     "  t3 [label=\"{#3 | shape () f64 | value 2.0000}\"];\n"
                     "  op3 [label=\"add\", shape=ellipse];\n"
                     "  op3 -> t3;\n"
                     "  t4 -> op3 [label=\"a\"];\n"
                     "  t4 -> op3 [label=\"b\"];\n"
                     "  t4 [label=\"{a\\{1\\}\\|\\<x\\> | shape () f64 | value 1.0000}\", style=filled, "
                     "fillcolor=lightblue];\n"
                     "}\n");
    capture_free(&c);

    /* a lone constant */
    nb_tensor *k = nb_from_array((const int64_t[]){1, 2}, NB_SHAPE(2), NB_I64);
    capture_open(&c);
    ck_assert_ok(nb_dot_write(k, c.f));
    ck_assert_str_eq(capture_close(&c), "digraph nabla {\n"
                                        "  rankdir=LR;\n"
                                        "  node [shape=record, fontname=\"Helvetica\", fontsize=10];\n"
                                        "  t0 [label=\"{#0 | shape (2) i64 | value [1, 2]}\"];\n"
                                        "}\n");
    capture_free(&c);
    nb_scope_end();
}
END_TEST

START_TEST(dot_errors_and_save)
{
    nb_scope_begin();
    example x = make_example();
    nb_clear_error();
    ck_assert_int_eq(nb_dot_write(NULL, stdout), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_dot_write", "root is NULL");
    ck_assert_int_eq(nb_dot_write(x.L, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_dot_write", "out is NULL");
    nb_tensor *gone = nb_ones(NB_SHAPE(1), NB_F64);
    nb_free(gone);
    ck_assert_int_eq(nb_dot_write(gone, stdout), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_dot_write");

    char dir[] = "/tmp/nabla_dot_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/graph.dot", dir);
    ck_assert_ok(nb_dot_save(x.L, path));
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    char expected[4096];
    snprintf(expected, sizeof expected, example_dot, "", "", "");
    ck_assert_str_eq(text, expected);
    unlink(path);

    snprintf(path, sizeof path, "%s/missing/graph.dot", dir);
    ck_assert_int_eq(nb_dot_save(x.L, path), NB_ERR_IO);
    ck_assert_error(NB_ERR_IO, "nb_dot_save", "cannot open", "missing/graph.dot", "No such file");
    ck_assert_int_eq(nb_dot_save(x.L, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_dot_save", "path is NULL");
    /* a freed root creates no file */
    snprintf(path, sizeof path, "%s/freed.dot", dir);
    ck_assert_int_eq(nb_dot_save(gone, path), NB_ERR_FREED);
    ck_assert_int_ne(access(path, F_OK), 0);
    rmdir(dir);
    nb_scope_end();
}
END_TEST

/* Whether an executable `dot` is on PATH (the test's own search, independent of the library's). */
static bool have_dot(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/dot", (int)n, path);
        if (n && access(buf, X_OK) == 0) return true;
        path += n + (path[n] == ':');
    }
    return false;
}

START_TEST(render_svg)
{
    nb_scope_begin();
    example x = make_example();
    char dir[] = "/tmp/nabla_svg_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* a path with spaces and shell syntax reaches dot as one argument: nothing is interpreted */
    char path[256], marker[256];
    snprintf(path, sizeof path, "%s/my graph; touch injected.svg", dir);
    snprintf(marker, sizeof marker, "%s/injected.svg", dir);
    if (have_dot()) {
        ck_assert_ok(nb_dot_render_svg(x.L, path));
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        char text[8192];
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
        ck_assert_ptr_nonnull(strstr(text, "<svg"));
        ck_assert_ptr_nonnull(strstr(text, "mul")); /* an op node's text */
        ck_assert_int_ne(access(marker, F_OK), 0);
        unlink(path);
    } else {
        fprintf(stderr, "render_svg: SKIPPED the rendering check: Graphviz 'dot' is not on PATH\n");
    }

    /* without dot: a clear error and no file */
    char empty[] = "/tmp/nabla_nodot_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(empty));
    char *old_path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", empty, 1);
    nb_status st = nb_dot_render_svg(x.L, path);
    if (old_path) setenv("PATH", old_path, 1);
    else unsetenv("PATH");
    free(old_path);
    ck_assert_int_eq(st, NB_ERR_STATE);
    ck_assert_str_eq(nb_last_error(),
                     "nb_dot_render_svg: Graphviz 'dot' not found on PATH; install graphviz or use nb_dot_save");
    ck_assert_int_ne(access(path, F_OK), 0);

    ck_assert_int_eq(nb_dot_render_svg(x.L, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_dot_render_svg", "svg_path is NULL");
    nb_clear_error();
    ck_assert_int_eq(nb_dot_render_svg(NULL, path), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_dot_render_svg", "root is NULL");
    rmdir(empty);
    rmdir(dir);
    nb_scope_end();
}
END_TEST

/* dot itself failing (an unwritable output path) is an NB_ERR_IO naming the command. */
START_TEST(render_svg_dot_fails)
{
    if (!have_dot()) {
        fprintf(stderr, "render_svg_dot_fails: SKIPPED: Graphviz 'dot' is not on PATH\n");
        return;
    }
    nb_scope_begin();
    example x = make_example();
    ck_assert_int_eq(nb_dot_render_svg(x.L, "/nonexistent-dir/graph.svg"), NB_ERR_IO);
    ck_assert_error(NB_ERR_IO, "nb_dot_render_svg", "-Tsvg -o /nonexistent-dir/graph.svg", "failed (exit status");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * The trace of a 2-layer MLP, against tests/reference/trace_reference.py
 * ---------------------------------------------------------------------------------------------- */
typedef struct mlp {
    nb_tensor *x, *W1, *b1, *W2, *b2, *t, *L;
} mlp;

static nb_tensor *labelled(nb_tensor *t, const char *label)
{
    nb_set_label(t, label);
    return t;
}

static mlp make_mlp(void)
{
    mlp m;
    m.x = labelled(T_F64(NB_SHAPE(1, 2), 0.5, -1.0), "x");
    m.W1 = labelled(T_F64(NB_SHAPE(2, 2), 0.1, -0.3, 0.4, 0.2), "W1");
    m.b1 = labelled(T_F64(NB_SHAPE(2), 0.05, -0.1), "b1");
    m.W2 = labelled(T_F64(NB_SHAPE(2, 1), 0.7, -0.5), "W2");
    m.b2 = labelled(T_F64(NB_SHAPE(1), 0.2), "b2");
    m.t = labelled(T_F64(NB_SHAPE(1, 1), 1.0), "t");
    nb_tensor *params[] = {m.W1, m.b1, m.W2, m.b2};
    for (int i = 0; i < 4; i++) nb_set_requires_grad(params[i], true);
    nb_tensor *z1 = labelled(nb_matmul(m.x, m.W1), "z1");
    nb_tensor *a1 = labelled(nb_add(z1, m.b1), "a1");
    nb_tensor *h = labelled(nb_tanh(a1), "h");
    nb_tensor *z2 = labelled(nb_matmul(h, m.W2), "z2");
    nb_tensor *y = labelled(nb_add(z2, m.b2), "y");
    nb_tensor *diff = labelled(nb_sub(y, m.t), "diff");
    nb_tensor *sq = labelled(nb_square(diff), "sq");
    m.L = labelled(nb_mean(sq, 0, NULL, false), "L");
    ck_assert_tensor(m.L);
    return m;
}

START_TEST(trace_of_mlp_matches_hand_computation)
{
    nb_scope_begin();
    mlp m = make_mlp();
    capture c;
    capture_open(&c);
    nb_trace_backward(c.f);
    ck_assert_ok(nb_backward(m.L));
    nb_trace_backward(NULL);
    const char *trace = capture_close(&c);

    /* the steps, in topological order */
    ck_assert_has_line(trace, "nb_backward trace: 8 steps from L (shape () f64), in topological order");
    ck_assert_has_line(trace, "step 1/8: L = mean(sq)  shape () f64");
    ck_assert_has_line(trace, "step 2/8: sq = square(diff)  shape (1, 1) f64");
    ck_assert_has_line(trace, "step 3/8: diff = sub(y, t)  shape (1, 1) f64");
    ck_assert_has_line(trace, "step 4/8: y = add(z2, b2)  shape (1, 1) f64");
    ck_assert_has_line(trace, "step 5/8: z2 = matmul(h, W2)  shape (1, 1) f64");
    ck_assert_has_line(trace, "step 6/8: h = tanh(a1)  shape (1, 2) f64");
    ck_assert_has_line(trace, "step 7/8: a1 = add(z1, b1)  shape (1, 2) f64");
    ck_assert_has_line(trace, "step 8/8: z1 = matmul(x, W1)  shape (1, 2) f64");
    ck_assert(strstr(trace, "step 1/8") < strstr(trace, "step 2/8"));
    ck_assert(strstr(trace, "step 7/8") < strstr(trace, "step 8/8"));
    /* forward values (trace_reference.py "forward") */
    ck_assert_has_line(trace, "  value     0.6288");
    ck_assert_has_line(trace, "  value     [[-0.7930]]");
    ck_assert_has_line(trace, "  value     [[0.2070]]");
    ck_assert_has_line(trace, "  value     [[-0.2913, -0.4219]]");
    ck_assert_has_line(trace, "  value     [[-0.3000, -0.4500]]");
    ck_assert_has_line(trace, "  value     [[-0.3500, -0.3500]]");
    /* the upstream gradient at every node */
    ck_assert_has_line(trace, "  upstream  d L/d L = 1.0000");
    ck_assert_has_line(trace, "  upstream  d L/d sq = [[1.0000]]");
    ck_assert_has_line(trace, "  upstream  d L/d diff = [[-1.5859]]");
    ck_assert_has_line(trace, "  upstream  d L/d y = [[-1.5859]]");
    ck_assert_has_line(trace, "  upstream  d L/d z2 = [[-1.5859]]");
    ck_assert_has_line(trace, "  upstream  d L/d h = [[-1.1102, 0.7930]]");
    ck_assert_has_line(trace, "  upstream  d L/d a1 = [[-1.0159, 0.6518]]");
    ck_assert_has_line(trace, "  upstream  d L/d z1 = [[-1.0159, 0.6518]]");
    /* local derivatives: formulas and values */
    ck_assert_has_line(trace, "  local     d out/d x = 2x");
    ck_assert_has_line(trace, "    local   [[-1.5859]]");
    ck_assert_has_line(trace, "  local     d out/d x = 1 - tanh(x)^2 = 1 - out^2");
    ck_assert_has_line(trace, "    local   [[0.9151, 0.8220]]");
    ck_assert_has_line(trace, "  backward  with g = upstream: grad a = g @ b^T, grad b = a^T @ g (summed over "
                              "broadcast batch dims)");
    /* the gradient handed to each input */
    ck_assert_has_line(trace, "    grad    [[1.0000]]  -> added to d L/d sq");
    ck_assert_has_line(trace, "    grad    upstream * local = [[-1.5859]]  -> added to d L/d diff");
    ck_assert_has_line(trace, "    grad    upstream * local = [[-1.5859]]  -> added to d L/d y");
    ck_assert_has_line(trace, "    grad    none (needs no gradient)"); /* t, and x */
    ck_assert_has_line(trace, "    grad    upstream * local, summed to shape (1) = [-1.5859]  -> added to d L/d b2");
    ck_assert_has_line(trace, "    grad    [[-1.1102, 0.7930]]  -> added to d L/d h");
    ck_assert_has_line(trace, "    grad    [[0.4620], [0.6691]]  -> added to d L/d W2");
    ck_assert_has_line(trace, "    grad    upstream * local = [[-1.0159, 0.6518]]  -> added to d L/d a1");
    ck_assert_has_line(trace,
                       "    grad    upstream * local, summed to shape (2) = [-1.0159, 0.6518]  -> added to d L/d b1");
    ck_assert_has_line(trace, "    grad    [[-0.5080, 0.3259], [1.0159, -0.6518]]  -> added to d L/d W1");
    /* the leaves' gradients, and the end */
    ck_assert_has_line(trace, "W1.grad = [[-0.5080, 0.3259], [1.0159, -0.6518]]");
    ck_assert_has_line(trace, "b1.grad = [-1.0159, 0.6518]");
    ck_assert_has_line(trace, "W2.grad = [[0.4620], [0.6691]]");
    ck_assert_has_line(trace, "b2.grad = [-1.5859]");
    ck_assert_has_line(trace, "end of nb_backward trace");

    /* the full-precision gradients (trace_reference.py "final gradients") */
    ck_assert_values(nb_grad(m.W1), 1e-12, -0.50797287793050938, 0.32591088044942118, 1.0159457558610188,
                     -0.65182176089884236);
    ck_assert_values(nb_grad(m.b1), 1e-12, -1.0159457558610188, 0.65182176089884236);
    ck_assert_values(nb_grad(m.W2), 1e-12, 0.46200393195515732, 0.66910593974321664);
    ck_assert_values(nb_grad(m.b2), 1e-12, -1.5859386521822194);
    ck_assert_close(nb_item(m.L), 0.62880035212138863, 1e-12);
    capture_free(&c);

    /* off again: a second backward prints nothing */
    capture_open(&c);
    mlp m2 = make_mlp();
    ck_assert_ok(nb_backward(m2.L));
    ck_assert_str_eq(capture_close(&c), "");
    capture_free(&c);
    nb_scope_end();
}
END_TEST

/* Tracing changes no result: the same gradients with and without it, for first and second order. */
START_TEST(trace_changes_nothing)
{
    nb_scope_begin();
    mlp plain = make_mlp(), traced = make_mlp();
    ck_assert_ok(nb_backward(plain.L));
    FILE *sink = fopen("/dev/null", "w");
    nb_trace_backward(sink);
    ck_assert_ok(nb_backward(traced.L));
    nb_tensor *p[] = {plain.W1, plain.b1, plain.W2, plain.b2}, *q[] = {traced.W1, traced.b1, traced.W2, traced.b2};
    for (int i = 0; i < 4; i++)
        for (int64_t k = 0; k < nb_numel(p[i]); k++)
            ck_assert_double_eq(nb_get_flat(nb_grad(p[i]), k), nb_get_flat(nb_grad(q[i]), k));
    /* d/dx of d(x^3)/dx = 6x, with create_graph under the trace */
    nb_tensor *x = scalar_leaf(1.5, "x");
    nb_tensor *y = nb_pow_scalar(x, 3);
    nb_tensor *gx;
    ck_assert_ok(nb_grad_of(y, NULL, 1, &x, &gx, NB_CREATE_GRAPH));
    ck_assert_close(nb_item(gx), 3 * 1.5 * 1.5, 1e-12);
    ck_assert_ok(nb_backward(gx));
    ck_assert_close(nb_item(nb_grad(x)), 6 * 1.5, 1e-12);
    ck_assert_int_eq(nb_last_status(), NB_OK);
    nb_trace_backward(NULL);
    fclose(sink);
    nb_scope_end();
}
END_TEST

/* The reuse case a + a: both uses hand their gradient to a, which sums them. nb_grad_of reports no .grad. */
START_TEST(trace_reuse_and_grad_of)
{
    nb_scope_begin();
    nb_tensor *a = scalar_leaf(1, "a");
    nb_tensor *b = labelled(nb_add(a, a), "b");
    nb_tensor *c = labelled(nb_add(b, b), "c");
    capture cap;
    capture_open(&cap);
    nb_trace_backward(cap.f);
    ck_assert_ok(nb_backward_ex(c, NULL, NB_RETAIN_GRAPH));
    nb_tensor *g;
    ck_assert_ok(nb_grad_of(c, NULL, 1, &a, &g, 0));
    nb_trace_backward(NULL);
    const char *text = capture_close(&cap);
    ck_assert_has_line(text, "step 1/2: c = add(b, b)  shape () f64");
    ck_assert_has_line(text, "    grad    upstream * local = 1.0000  -> added to d c/d b");
    ck_assert_has_line(text, "  upstream  d c/d b = 2.0000"); /* the two uses summed */
    ck_assert_has_line(text, "    grad    upstream * local = 2.0000  -> added to d c/d a");
    ck_assert_has_line(text, "a.grad = 4.0000");
    ck_assert_has_line(text, "nb_grad_of trace: 2 steps from c (shape () f64), in topological order");
    ck_assert_has_line(text, "end of nb_grad_of trace");
    /* the .grad line appears once: for nb_backward only */
    const char *first = strstr(text, "a.grad");
    ck_assert_ptr_null(strstr(first + 1, "a.grad"));
    ck_assert_close(nb_item(g), 4, 0);
    capture_free(&cap);
    nb_scope_end();
}
END_TEST

/* Large tensors are shown by their number of values; an unlabelled graph uses #k names. */
START_TEST(trace_large_and_unlabelled)
{
    nb_scope_begin();
    nb_tensor *w = nbt_leaf(NB_SHAPE(3, 4), 5);
    nb_tensor *loss = nb_sum(nb_relu(w), 0, NULL, false);
    capture cap;
    capture_open(&cap);
    nb_trace_backward(cap.f);
    ck_assert_ok(nb_backward(loss));
    nb_trace_backward(NULL);
    const char *text = capture_close(&cap);
    ck_assert_has_line(text, "step 2/2: #1 = relu(#2)  shape (3, 4) f64");
    ck_assert_has_line(text, "  upstream  d #0/d #1 = (12 values)");
    ck_assert_has_line(text, "  local     d out/d x = 1 where x > 0, else 0");
    ck_assert_has_line(text, "    grad    (12 values)  -> added to d #0/d #2");
    ck_assert_has_line(text, "#2.grad = (12 values)");
    capture_free(&cap);
    nb_scope_end();
}
END_TEST

static void *backward_on_thread(void *arg)
{
    nb_tensor *a = scalar_leaf(3, "thread_a");
    nb_tensor *y = nb_mul(a, a);
    *(nb_status *)arg = nb_backward(y);
    nb_free(y);
    nb_free(a);
    return NULL;
}

/* NABLA_TRACE=1 turns the trace on, to stderr, for every thread that did not choose. Needs a fresh process
 * (Check forks one per test unless CK_FORK=no), since the variable is read once. */
START_TEST(trace_from_environment)
{
    const char *fork_mode = getenv("CK_FORK");
    if (fork_mode && strcmp(fork_mode, "no") == 0) {
        fprintf(stderr, "trace_from_environment: SKIPPED under CK_FORK=no\n");
        return;
    }
    setenv("NABLA_TRACE", "1", 1);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), STDERR_FILENO);
    nb_tensor *a = scalar_leaf(2, "main_a");
    nb_tensor *y = nb_exp(a);
    nb_status st = nb_backward(y), thread_st = NB_ERR_STATE;
    pthread_t th;
    pthread_create(&th, NULL, backward_on_thread, &thread_st);
    pthread_join(th, NULL);
    /* a thread that chose a stream (here: none) is not traced */
    nb_trace_backward(NULL);
    nb_tensor *y2 = nb_exp(a);
    nb_status st2 = nb_backward(y2);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ck_assert_ok(st);
    ck_assert_ok(thread_st);
    ck_assert_ok(st2);
    char text[8192];
    rewind(tmp);
    size_t n = fread(text, 1, sizeof text - 1, tmp);
    text[n] = '\0';
    fclose(tmp);
    ck_assert_has_line(text, "  local     d out/d x = e^x = out");
    ck_assert_has_line(text, "    grad    upstream * local = 7.3891  -> added to d #0/d main_a");
    ck_assert_has_line(text, "    grad    upstream * local = 3.0000  -> added to d #0/d thread_a");
    ck_assert_has_line(text, "main_a.grad = 7.3891");
    ck_assert_has_line(text, "thread_a.grad = 6.0000");
    /* two traces: the main thread's first backward and the other thread's, not the one after choosing NULL */
    const char *p = strstr(text, "end of nb_backward trace");
    ck_assert_ptr_nonnull(p);
    p = strstr(p + 1, "end of nb_backward trace");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(strstr(p + 1, "end of nb_backward trace"));
    nb_free(y2);
    nb_free(y);
    nb_free(a);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * nb_print_value_grad
 * ---------------------------------------------------------------------------------------------- */
START_TEST(print_value_grad)
{
    nb_scope_begin();
    example x = make_example();
    capture c;
    capture_open(&c);
    ck_assert_ok(nb_fprint_value_grad(c.f, x.a));
    ck_assert_ok(nb_backward(x.L));
    ck_assert_ok(nb_fprint_value_grad(c.f, x.a));
    ck_assert_ok(nb_fprint_value_grad(c.f, x.b));
    ck_assert_ok(nb_fprint_value_grad(c.f, x.c)); /* no label */
    nb_tensor *v = T_F64(NB_SHAPE(2), 1.5, -0.25);
    nb_set_label(v, "v");
    ck_assert_ok(nb_fprint_value_grad(c.f, v));
    /* above 8 elements: nabla's format, continuation lines aligned */
    nb_tensor *w = nb_ones(NB_SHAPE(3, 3), NB_F32);
    nb_set_requires_grad(w, true);
    nb_set_label(w, "w");
    ck_assert_ok(nb_backward(nb_sum(nb_mul_scalar(w, 2), 0, NULL, false)));
    ck_assert_ok(nb_fprint_value_grad(c.f, w));
    ck_assert_str_eq(capture_close(&c), "a: value 2.0000 grad none\n"
                                        "a: value 2.0000 grad 6.0000\n"
                                        "b: value -3.0000 grad -4.0000\n"
                                        "value 10.0000 grad -2.0000\n"
                                        "v: value [1.5000, -0.2500] grad none\n"
                                        "w: value tensor([[1., 1., 1.],\n"
                                        "                 [1., 1., 1.],\n"
                                        "                 [1., 1., 1.]], shape=(3, 3), dtype=f32)\n"
                                        "   grad  tensor([[2., 2., 2.],\n"
                                        "                 [2., 2., 2.],\n"
                                        "                 [2., 2., 2.]], shape=(3, 3), dtype=f32)\n");
    capture_free(&c);

    ck_assert_int_eq(nb_fprint_value_grad(NULL, x.a), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_fprint_value_grad", "out is NULL");
    nb_clear_error();
    ck_assert_int_eq(nb_fprint_value_grad(stdout, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_fprint_value_grad", "tensor is NULL");
    nb_clear_error();
    ck_assert_int_eq(nb_print_value_grad(NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_print_value_grad", "tensor is NULL");
    nb_tensor *gone = nb_ones(NB_SHAPE(1), NB_F64);
    nb_free(gone);
    ck_assert_int_eq(nb_print_value_grad(gone), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_print_value_grad");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * micrograd's examples with 0-d tensors
 * ---------------------------------------------------------------------------------------------- */
START_TEST(micrograd_examples)
{
    nb_scope_begin();
    /* L = (a b + c) f */
    example x = make_example();
    nb_retain_grad(x.e);
    nb_retain_grad(x.d);
    nb_set_requires_grad(x.f, true); /* a leaf: allowed after use, it only matters for the next graph */
    x.L = nb_mul(x.d, x.f);
    ck_assert_ok(nb_backward(x.L));
    ck_assert_double_eq(nb_item(x.L), -8);
    ck_assert_double_eq(nb_item(nb_grad(x.a)), 6);
    ck_assert_double_eq(nb_item(nb_grad(x.b)), -4);
    ck_assert_double_eq(nb_item(nb_grad(x.c)), -2);
    ck_assert_double_eq(nb_item(nb_grad(x.f)), 4);
    ck_assert_double_eq(nb_item(nb_grad(x.d)), -2);
    ck_assert_double_eq(nb_item(nb_grad(x.e)), -2);

    /* the neuron: o = tanh(x1 w1 + x2 w2 + b) */
    nb_tensor *x1 = scalar_leaf(2, "x1"), *x2 = scalar_leaf(0, "x2"), *w1 = scalar_leaf(-3, "w1"),
              *w2 = scalar_leaf(1, "w2"), *b = scalar_leaf(6.8813735870195432, "b");
    nb_tensor *o = nb_tanh(nb_add(nb_add(nb_mul(x1, w1), nb_mul(x2, w2)), b));
    ck_assert_ok(nb_backward(o));
    ck_assert_close(nb_item(o), M_SQRT1_2, 1e-12);
    ck_assert_close(nb_item(nb_grad(x1)), -1.5, 1e-12);
    ck_assert_close(nb_item(nb_grad(w1)), 1.0, 1e-12);
    ck_assert_close(nb_item(nb_grad(x2)), 0.5, 1e-12);
    ck_assert_close(nb_item(nb_grad(w2)), 0.0, 1e-12);
    ck_assert_close(nb_item(nb_grad(b)), 0.5, 1e-12);

    /* the same neuron with tanh spelled out: (e^2n - 1) / (e^2n + 1) */
    nb_tensor *n = nb_add(nb_add(nb_mul(x1, w1), nb_mul(x2, w2)), b);
    nb_tensor *e = nb_exp(nb_mul_scalar(n, 2));
    nb_tensor *o2 = nb_div(nb_sub_scalar(e, 1), nb_add_scalar(e, 1));
    nb_zero_grad(x1);
    nb_zero_grad(w1);
    ck_assert_ok(nb_backward(o2));
    ck_assert_close(nb_item(o2), M_SQRT1_2, 1e-12);
    ck_assert_close(nb_item(nb_grad(x1)), -1.5, 1e-12);
    ck_assert_close(nb_item(nb_grad(w1)), 1.0, 1e-12);

    /* reuse: b = a + a, c = b + b gives dc/da = 4 */
    nb_tensor *a = scalar_leaf(1, "a");
    nb_tensor *bb = nb_add(a, a);
    ck_assert_ok(nb_backward(nb_add(bb, bb)));
    ck_assert_double_eq(nb_item(nb_grad(a)), 4);
    nb_scope_end();
}
END_TEST

/* Every scalar op micrograd's Value has, on 0-d tensors: result 0-d, value and gradient by hand. */
START_TEST(zero_dim_ops)
{
    nb_scope_begin();
    const double av = 2.0, bv = -3.0;
    struct {
        const char *name;
        nb_tensor *(*make)(nb_tensor *, nb_tensor *);
        double value, da, db;
    } cases[] = {
        {"add", nb_add, av + bv, 1, 1},
        {"sub", nb_sub, av - bv, 1, -1},
        {"mul", nb_mul, av * bv, bv, av},
        {"div", nb_div, av / bv, 1 / bv, -av / (bv * bv)},
        {"pow", nb_pow, 0.125, -3.0 / 16 /* b a^(b-1) */, 0.125 * log(av)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_tensor *a = scalar_leaf(av, "a"), *b = scalar_leaf(bv, "b");
        nb_tensor *r = cases[i].make(a, b);
        ck_assert_tensor(r);
        ck_assert_int_eq(nb_ndim(r), 0);
        ck_assert_ok(nb_backward(r));
        ck_assert_msg(fabs(nb_item(r) - cases[i].value) < 1e-12, "%s value", cases[i].name);
        ck_assert_msg(fabs(nb_item(nb_grad(a)) - cases[i].da) < 1e-12, "%s d/da", cases[i].name);
        ck_assert_msg(fabs(nb_item(nb_grad(b)) - cases[i].db) < 1e-12, "%s d/db", cases[i].name);
    }
    struct {
        const char *name;
        nb_tensor *(*make)(nb_tensor *);
        double x, value, dx;
    } unary[] = {
        {"tanh", nb_tanh, 0.5, tanh(0.5), 1 - tanh(0.5) * tanh(0.5)},
        {"relu+", nb_relu, 0.5, 0.5, 1},
        {"relu-", nb_relu, -0.5, 0, 0},
        {"exp", nb_exp, 0.5, exp(0.5), exp(0.5)},
        {"neg", nb_neg, 0.5, -0.5, -1},
        {"sigmoid", nb_sigmoid, 0.5, 1 / (1 + exp(-0.5)), exp(-0.5) / ((1 + exp(-0.5)) * (1 + exp(-0.5)))},
        {"log", nb_log, 0.5, log(0.5), 2},
    };
    for (size_t i = 0; i < sizeof unary / sizeof *unary; i++) {
        nb_tensor *x = scalar_leaf(unary[i].x, "x");
        nb_tensor *r = unary[i].make(x);
        ck_assert_tensor(r);
        ck_assert_int_eq(nb_ndim(r), 0);
        ck_assert_ok(nb_backward(r));
        ck_assert_msg(fabs(nb_item(r) - unary[i].value) < 1e-12, "%s value", unary[i].name);
        ck_assert_msg(fabs(nb_item(nb_grad(x)) - unary[i].dx) < 1e-12, "%s d/dx", unary[i].name);
    }
    /* scalar forms: x^2, 2^x, 1 - x, 1 / x, x + 1, x * 3 */
    nb_tensor *x = scalar_leaf(1.5, "x");
    nb_tensor *r = nb_add(nb_add(nb_pow_scalar(x, 2), nb_rpow_scalar(2, x)),
                          nb_add(nb_add(nb_rsub_scalar(1, x), nb_rdiv_scalar(1, x)),
                                 nb_add(nb_add_scalar(x, 1), nb_mul_scalar(x, 3))));
    ck_assert_int_eq(nb_ndim(r), 0);
    ck_assert_ok(nb_backward(r));
    ck_assert_close(nb_item(r), 2.25 + pow(2, 1.5) + (1 - 1.5) + 1 / 1.5 + 2.5 + 4.5, 1e-12);
    ck_assert_close(nb_item(nb_grad(x)), 3 + pow(2, 1.5) * log(2) - 1 - 1 / 2.25 + 1 + 3, 1e-12);

    /* a 0-d tensor broadcasts against any shape, and its gradient sums back to 0-d */
    nb_tensor *s = scalar_leaf(2, "s");
    nb_tensor *v = T_F64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    nb_tensor *m = nb_mul(v, s);
    ck_assert_shape(m, 2, 3);
    ck_assert_ok(nb_backward(nb_sum(m, 0, NULL, false)));
    ck_assert_int_eq(nb_ndim(nb_grad(s)), 0);
    ck_assert_double_eq(nb_item(nb_grad(s)), 21);
    /* mixed with an i64 0-d tensor: promoted */
    nb_tensor *k = nb_scalar(3, NB_I64);
    nb_tensor *sk = nb_add(s, k);
    ck_assert_int_eq(nb_dtype_of(sk), NB_F64);
    ck_assert_double_eq(nb_item(sk), 5);
    /* printing a 0-d tensor */
    char buf[128];
    nb_format(s, buf, sizeof buf);
    ck_assert_str_eq(buf, "tensor(2., shape=(), dtype=f64)");
    nb_scope_end();
}
END_TEST

static nb_tensor *f_mul(nb_tensor *const *x, void *u) { (void)u; return nb_mul(x[0], x[1]); }
static nb_tensor *f_div(nb_tensor *const *x, void *u) { (void)u; return nb_div(x[0], x[1]); }
static nb_tensor *f_pow(nb_tensor *const *x, void *u) { (void)u; return nb_pow(nb_exp(x[0]), x[1]); }
static nb_tensor *f_tanh_relu(nb_tensor *const *x, void *u)
{
    (void)u;
    return nb_add(nb_tanh(nb_sub(x[0], x[1])), nb_mul(nb_relu(x[0]), nb_exp(nb_neg(x[1]))));
}

START_TEST(zero_dim_gradchecks)
{
    nb_scope_begin();
    nb_tensor *x[2] = {scalar_leaf(0.7, NULL), scalar_leaf(-1.3, NULL)};
    ck_assert_gradcheck(f_mul, NULL, 2, x, true);
    ck_assert_gradcheck(f_div, NULL, 2, x, true);
    ck_assert_gradcheck(f_pow, NULL, 2, x, true);
    ck_assert_gradcheck(f_tanh_relu, NULL, 2, x, true);
    nb_scope_end();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("visualize");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, labels);
    tcase_add_test(tc, labels_do_not_survive_recycling);
    tcase_add_test(tc, dot_of_micrograd_example);
    tcase_add_test(tc, dot_details);
    tcase_add_test(tc, dot_errors_and_save);
    tcase_add_test(tc, render_svg);
    tcase_add_test(tc, render_svg_dot_fails);
    tcase_add_test(tc, trace_of_mlp_matches_hand_computation);
    tcase_add_test(tc, trace_changes_nothing);
    tcase_add_test(tc, trace_reuse_and_grad_of);
    tcase_add_test(tc, trace_large_and_unlabelled);
    tcase_add_test(tc, trace_from_environment);
    tcase_add_test(tc, print_value_grad);
    tcase_add_test(tc, micrograd_examples);
    tcase_add_test(tc, zero_dim_ops);
    tcase_add_test(tc, zero_dim_gradchecks);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
