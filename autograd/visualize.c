/* Seeing a graph: labels, the Graphviz DOT export (and rendering it with `dot`), micrograd-style printing of a
 * value with its gradient, and the small helpers the backward trace (trace.c) shares with them.
 *
 * The DOT text must be the same for the same graph on every run (tests compare it, learners diff it), so nodes
 * are numbered in breadth-first order from the root, never by address. */
#include "autograd_internal.h"

#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

_Static_assert(sizeof((nbi_tensor *)0)->label == NB_LABEL_MAX + 1, "label field must hold NB_LABEL_MAX bytes");

/* ------------------------------------------------------------------------------------------------
 * Labels
 * ---------------------------------------------------------------------------------------------- */
nb_status nb_set_label(nb_tensor *h, const char *label)
{
    nbi_tensor *t = nbi_resolve(h, "nb_set_label", "tensor");
    if (!t) return nb_last_status();
    if (!label) label = "";
    size_t n = strlen(label);
    if (n > NB_LABEL_MAX)
        return nbi_fail(NB_ERR_ARG, "nb_set_label: label \"%.16s...\" is %zu bytes long; at most %d are allowed", label,
                        n, NB_LABEL_MAX);
    /* a newline or tab would break the line-oriented trace and the DOT records */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f)
            return nbi_fail(NB_ERR_ARG, "nb_set_label: label contains control character 0x%02x at byte %zu",
                            (unsigned)(unsigned char)label[i], i);
    memcpy(t->label, label, n + 1);
    return NB_OK;
}

const char *nb_label(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_label", "tensor");
    return t && t->label[0] ? t->label : NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Shared helpers
 * ---------------------------------------------------------------------------------------------- */
static void write_number(FILE *out, const nbi_tensor *t, double v)
{
    if (t->dtype == NB_BOOL) fputs(v != 0 ? "True" : "False", out);
    else if (t->dtype == NB_I64) fprintf(out, "%lld", (long long)v);
    else if (isnan(v)) fputs("nan", out);
    else if (isinf(v)) fputs(v > 0 ? "inf" : "-inf", out);
    else if (v == 0) fputs("0.0000", out); /* no "-0.0000" */
    else if (fabs(v) < 1e-4 || fabs(v) >= 1e6) fprintf(out, "%.4e", v);
    else fprintf(out, "%.4f", v);
}

/* Dimension d of t starting at flat (row-major) index *k. */
static void write_dim(FILE *out, const nbi_tensor *t, int d, int64_t *k)
{
    fputc('[', out);
    for (int64_t i = 0; i < t->shape[d]; i++) {
        if (i) fputs(", ", out);
        if (d == t->ndim - 1) write_number(out, t, nbi_get_flat(t, (*k)++));
        else write_dim(out, t, d + 1, k);
    }
    fputc(']', out);
}

void nbi_write_values(FILE *out, const nbi_tensor *t)
{
    if (t->numel > NBI_SHOWN_ELEMENTS) {
        fprintf(out, "(%lld values)", (long long)t->numel);
        return;
    }
    int64_t k = 0;
    if (t->ndim == 0) write_number(out, t, nbi_get_flat(t, 0));
    else write_dim(out, t, 0, &k);
}

static size_t hash_ptr(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static bool ids_grow(nbi_node_ids *m)
{
    size_t cap = m->cap ? 2 * m->cap : 64;
    const void **keys = nbi_alloc(cap * sizeof *keys, "nabla graph walk");
    int64_t *ids = nbi_alloc(cap * sizeof *ids, "nabla graph walk");
    if (!keys || !ids) {
        nbi_free(keys, cap * sizeof *keys);
        nbi_free(ids, cap * sizeof *ids);
        return false;
    }
    memset(keys, 0, cap * sizeof *keys);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = hash_ptr(m->keys[i], cap);
        while (keys[j]) j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        ids[j] = m->ids[i];
    }
    nbi_node_ids_free(m);
    m->keys = keys;
    m->ids = ids;
    m->cap = cap;
    return true;
}

int64_t nbi_node_id(nbi_node_ids *m, const void *p, bool *added)
{
    if (added) *added = false;
    if (2 * (m->n + 1) > m->cap && !ids_grow(m)) return -1;
    size_t j = hash_ptr(p, m->cap);
    while (m->keys[j]) {
        if (m->keys[j] == p) return m->ids[j];
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = p;
    m->ids[j] = (int64_t)m->n++;
    if (added) *added = true;
    return m->ids[j];
}

void nbi_node_ids_free(nbi_node_ids *m)
{
    if (m->cap) {
        nbi_free(m->keys, m->cap * sizeof *m->keys);
        nbi_free(m->ids, m->cap * sizeof *m->ids);
    }
    m->keys = NULL;
    m->ids = NULL;
    m->cap = 0;
}

const char *nbi_input_name(const nbi_op *op, int n_inputs, int i, char *buf, size_t size)
{
    const char *list = op ? op->inputs : NULL;
    if (list) {
        /* the i-th comma-separated name */
        for (int k = 0; k < i && list; k++) {
            list = strchr(list, ',');
            if (list) list++;
        }
        if (list) {
            while (*list == ' ') list++;
            size_t n = strcspn(list, ",");
            while (n && list[n - 1] == ' ') n--;
            snprintf(buf, size, "%.*s", (int)n, list);
            return buf;
        }
    }
    if (n_inputs == 1) snprintf(buf, size, "x");
    else if (i < 26) snprintf(buf, size, "%c", 'a' + i);
    else snprintf(buf, size, "input%d", i);
    return buf;
}

/* ------------------------------------------------------------------------------------------------
 * DOT export
 * ---------------------------------------------------------------------------------------------- */
/* Text inside a record label: the characters records treat as structure are escaped. */
static void write_record_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (strchr("{}|<>\"\\", *s)) fputc('\\', out);
        fputc(*s, out);
    }
}

/* Values go into the label through a memory buffer so that their text can be escaped like any other. */
static void write_record_values(FILE *out, const nbi_tensor *t)
{
    char buf[512];
    FILE *mem = fmemopen(buf, sizeof buf, "w");
    if (!mem) return;
    nbi_write_values(mem, t);
    fclose(mem); /* NUL-terminates */
    write_record_text(out, buf);
}

static void write_tensor_node(FILE *out, nbi_node_ids *ids, const nbi_tensor *t)
{
    char shape[NBI_SHAPE_STR], name[32];
    fprintf(out, "  t%lld [label=\"{", (long long)nbi_node_id(ids, t, NULL));
    write_record_text(out, nbi_node_name(t, ids, name, sizeof name));
    fputs(" | ", out);
    fprintf(out, "shape %s %s", nbi_shape_fmt(shape, t->ndim, t->shape), nb_dtype_name(t->dtype));
    if (t->numel <= NBI_SHOWN_ELEMENTS) {
        fputs(" | value ", out);
        write_record_values(out, t);
        if (t->grad) {
            fputs(" | grad ", out);
            write_record_values(out, t->grad);
        }
    }
    fputs("}\"", out);
    /* the tensors a learner trains: leaves that collect a gradient */
    if (!t->op && t->requires_grad) fputs(", style=filled, fillcolor=lightblue", out);
    fputs("];\n", out);
}

static bool list_push(nbi_node_list *l, const nbi_tensor *t, const char *fn)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        const nbi_tensor **items = nbi_alloc(cap * sizeof *items, fn);
        if (!items) return false;
        if (l->n) memcpy(items, l->items, l->n * sizeof *items);
        nbi_free(l->items, l->cap * sizeof *l->items);
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = t;
    return true;
}

void nbi_node_list_free(nbi_node_list *l)
{
    nbi_free(l->items, l->cap * sizeof *l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

bool nbi_number_graph(const char *fn, const nbi_tensor *root, nbi_node_ids *ids, nbi_node_list *nodes)
{
    if (nbi_node_id(ids, root, NULL) < 0 || !list_push(nodes, root, fn)) return false;
    /* nodes doubles as the queue: a tensor is numbered when first reached, its inputs when its turn comes */
    for (size_t head = 0; head < nodes->n; head++) {
        const nbi_tensor *t = nodes->items[head];
        for (int i = 0; i < t->n_inputs; i++) {
            bool added;
            if (nbi_node_id(ids, t->inputs[i], &added) < 0) return false;
            if (added && !list_push(nodes, t->inputs[i], fn)) return false;
        }
    }
    return true;
}

const char *nbi_node_name(const nbi_tensor *t, nbi_node_ids *ids, char *buf, size_t size)
{
    if (t->label[0]) return t->label;
    snprintf(buf, size, "#%lld", (long long)nbi_node_id(ids, t, NULL));
    return buf;
}

static nb_status dot_write(const char *fn, const nbi_tensor *root, FILE *out)
{
    nbi_node_ids ids = {0};
    nbi_node_list nodes = {0};
    bool ok = nbi_number_graph(fn, root, &ids, &nodes);
    if (ok) {
        fputs("digraph nabla {\n  rankdir=LR;\n  node [shape=record, fontname=\"Helvetica\", fontsize=10];\n", out);
        for (size_t k = 0; k < nodes.n; k++) {
            const nbi_tensor *t = nodes.items[k];
            long long id = (long long)k;
            write_tensor_node(out, &ids, t);
            if (!t->op) continue;
            fprintf(out, "  op%lld [label=\"%s%s\", shape=ellipse];\n  op%lld -> t%lld;\n", id, t->op->name,
                    t->graph_released ? " (graph released)" : "", id, id);
            for (int i = 0; i < t->n_inputs; i++) {
                fprintf(out, "  t%lld -> op%lld", (long long)nbi_node_id(&ids, t->inputs[i], NULL), id);
                if (t->n_inputs > 1) {
                    char name[32];
                    fprintf(out, " [label=\"%s\"]", nbi_input_name(t->op, t->n_inputs, i, name, sizeof name));
                }
                fputs(";\n", out);
            }
        }
        fputs("}\n", out);
    }
    nbi_node_list_free(&nodes);
    nbi_node_ids_free(&ids);
    if (!ok) return nb_last_status();
    if (fflush(out) != 0 || ferror(out)) return nbi_fail(NB_ERR_IO, "%s: writing the DOT text failed", fn);
    return NB_OK;
}

nb_status nb_dot_write(const nb_tensor *root_h, FILE *out)
{
    nbi_tensor *root = nbi_resolve(root_h, "nb_dot_write", "root");
    if (!root) return nb_last_status();
    if (!out) return nbi_fail(NB_ERR_NULL, "nb_dot_write: out is NULL");
    return dot_write("nb_dot_write", root, out);
}

nb_status nb_dot_save(const nb_tensor *root_h, const char *path)
{
    const char *fn = "nb_dot_save";
    nbi_tensor *root = nbi_resolve(root_h, fn, "root");
    if (!root) return nb_last_status();
    if (!path) return nbi_fail(NB_ERR_NULL, "%s: path is NULL", fn);
    FILE *f = fopen(path, "w");
    if (!f) return nbi_fail(NB_ERR_IO, "%s: cannot open '%s' for writing: %s", fn, path, strerror(errno));
    nb_status st = dot_write(fn, root, f);
    if (fclose(f) != 0 && st == NB_OK) st = nbi_fail(NB_ERR_IO, "%s: writing '%s' failed: %s", fn, path, strerror(errno));
    return st;
}

/* The first executable `dot` in the directories of PATH (an empty entry is the current directory, as for
 * execvp) into buf; false when there is none. */
static bool find_dot(char *buf, size_t size)
{
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    for (const char *p = path;; p++) {
        size_t n = strcspn(p, ":");
        int len = n ? snprintf(buf, size, "%.*s/dot", (int)n, p) : snprintf(buf, size, "./dot");
        struct stat sb;
        if (len > 0 && (size_t)len < size && stat(buf, &sb) == 0 && S_ISREG(sb.st_mode) && access(buf, X_OK) == 0)
            return true;
        p += n;
        if (!*p) return false;
    }
}

nb_status nb_dot_render_svg(const nb_tensor *root_h, const char *svg_path)
{
    const char *fn = "nb_dot_render_svg";
    nbi_tensor *root = nbi_resolve(root_h, fn, "root");
    if (!root) return nb_last_status();
    if (!svg_path) return nbi_fail(NB_ERR_NULL, "%s: svg_path is NULL", fn);
    char dot[4096];
    if (!find_dot(dot, sizeof dot))
        return nbi_fail(NB_ERR_STATE, "%s: Graphviz 'dot' not found on PATH; install graphviz or use nb_dot_save", fn);
    /* dot reads the graph from an unnamed temporary file as its standard input: nothing to clean up, and no
     * pipe whose reader could die mid-write. */
    FILE *tmp = tmpfile();
    if (!tmp) return nbi_fail(NB_ERR_IO, "%s: cannot create a temporary file: %s", fn, strerror(errno));
    nb_status st = dot_write(fn, root, tmp);
    if (st == NB_OK && fseek(tmp, 0, SEEK_SET) != 0)
        st = nbi_fail(NB_ERR_IO, "%s: cannot rewind the temporary file: %s", fn, strerror(errno));
    if (st == NB_OK) {
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fileno(tmp), STDIN_FILENO);
        char *argv[] = {"dot", "-Tsvg", "-o", (char *)svg_path, NULL};
        pid_t pid;
        int err = posix_spawn(&pid, dot, &actions, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        if (err) {
            st = nbi_fail(NB_ERR_IO, "%s: cannot run '%s': %s", fn, dot, strerror(err));
        } else {
            int status = 0;
            pid_t done;
            while ((done = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {}
            if (done < 0) /* e.g. SIGCHLD ignored by the program: the exit status is lost */
                st = nbi_fail(NB_ERR_IO, "%s: waiting for '%s' failed: %s", fn, dot, strerror(errno));
            else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                st = nbi_fail(NB_ERR_IO, "%s: '%s -Tsvg -o %s' failed (%s %d)", fn, dot, svg_path,
                              WIFEXITED(status) ? "exit status" : "signal",
                              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
    }
    fclose(tmp);
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * micrograd-style printing
 * ---------------------------------------------------------------------------------------------- */
/* nabla's usual text of t, its continuation lines indented by `indent` so they stay under the first. */
static nb_status write_indented(FILE *out, const nbi_tensor *t, int indent, const char *fn)
{
    size_t n = nb_format(nbi_handle(t), NULL, 0);
    char *buf = nbi_alloc(n + 1, fn);
    if (!buf) return nb_last_status();
    nb_format(nbi_handle(t), buf, n + 1);
    for (const char *p = buf; *p; p++) {
        fputc(*p, out);
        if (*p == '\n') fprintf(out, "%*s", indent, "");
    }
    nbi_free(buf, n + 1);
    return NB_OK;
}

nb_status nb_fprint_value_grad(FILE *out, const nb_tensor *h)
{
    const char *fn = "nb_fprint_value_grad";
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (!t) return nb_last_status();
    if (!out) return nbi_fail(NB_ERR_NULL, "%s: out is NULL", fn);
    int prefix = t->label[0] ? (int)strlen(t->label) + 2 : 0;
    if (t->label[0]) fprintf(out, "%s: ", t->label);
    nb_status st = NB_OK;
    if (t->numel <= NBI_SHOWN_ELEMENTS) {
        fputs("value ", out);
        nbi_write_values(out, t);
        fputs(" grad ", out);
        if (t->grad) nbi_write_values(out, t->grad);
        else fputs("none", out);
    } else {
        fputs("value ", out);
        st = write_indented(out, t, prefix + 6, fn);
        fprintf(out, "\n%*sgrad  ", prefix, "");
        if (st == NB_OK && t->grad) st = write_indented(out, t->grad, prefix + 6, fn);
        else if (st == NB_OK) fputs("none", out);
    }
    fputc('\n', out);
    if (st == NB_OK && (fflush(out) != 0 || ferror(out))) st = nbi_fail(NB_ERR_IO, "%s: writing failed", fn);
    return st;
}

nb_status nb_print_value_grad(const nb_tensor *t)
{
    /* its own name in messages, not nb_fprint_value_grad's */
    if (!nbi_resolve(t, "nb_print_value_grad", "tensor")) return nb_last_status();
    return nb_fprint_value_grad(stdout, t);
}
