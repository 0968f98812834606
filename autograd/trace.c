/* The backward trace: prints each step of backward so that a learner can redo the chain rule by hand.
 *
 * For each node, in the order backward visits them (the root first, every node after all of its users):
 *     step 2/4: h = tanh(#3)  shape (2) f64
 *       value     [0.4621, -0.1974]
 *       upstream  d L/d h = [0.2000, -0.5000]
 *       local     d out/d x = 1 - tanh(x)^2 = 1 - out^2
 *       x = #3  shape (2) f64
 *         value   [0.5000, -0.2000]
 *         local   [0.7864, 0.9610]
 *         grad    upstream * local = [0.1573, -0.4805]  -> added to d L/d #3
 * "local" values are the op's own backward seeded with ones (exact for elementwise ops, whose Jacobian is
 * diagonal); other ops show their gradient rule instead. The engine (tape.c) calls in here only when tracing is
 * on, so an untraced backward pays one branch per node. */
#include "autograd_internal.h"

#include <stdlib.h>
#include <string.h>

/* Per thread: the stream chosen by nb_trace_backward, once it has been called; otherwise NABLA_TRACE decides. */
static _Thread_local FILE *trace_out;
static _Thread_local bool trace_chosen;
static atomic_int env_trace; /* 0 not read yet, 1 off, 2 on */

void nb_trace_backward(FILE *out)
{
    trace_out = out;
    trace_chosen = true;
}

static FILE *trace_stream(void)
{
    if (trace_chosen) return trace_out;
    int e = atomic_load_explicit(&env_trace, memory_order_relaxed);
    if (!e) {
        const char *v = getenv("NABLA_TRACE");
        e = v && *v && strcmp(v, "0") != 0 ? 2 : 1;
        atomic_store_explicit(&env_trace, e, memory_order_relaxed);
    }
    return e == 2 ? stderr : NULL;
}

struct nbi_trace {
    FILE *out;
    const char *fn;
    const nbi_tensor *root;
    nbi_node_ids ids;
    nbi_node_list nodes; /* every tensor of the graph, by number; leaves are retained until the end */
    size_t step, steps;
    bool numbered;
};

static const char *name_of(nbi_trace *tr, const nbi_tensor *t, char *buf, size_t size)
{
    return nbi_node_name(t, &tr->ids, buf, size);
}

nbi_trace *nbi_trace_begin(const char *fn, const nbi_tensor *root, nbi_tensor *const *order, size_t n)
{
    (void)order;
    FILE *out = trace_stream();
    if (!out) return NULL;
    nbi_trace *tr = nbi_alloc(sizeof *tr, fn);
    if (!tr) return NULL; /* tracing is a help, not a reason to fail backward */
    memset(tr, 0, sizeof *tr);
    tr->out = out;
    tr->fn = fn;
    tr->root = root;
    tr->steps = n;
    tr->numbered = nbi_number_graph(fn, root, &tr->ids, &tr->nodes);
    /* the summary at the end reads the leaves after backward may have dropped the graph's references to them */
    for (size_t k = 0; k < tr->nodes.n; k++)
        if (!tr->nodes.items[k]->op) nbi_retain((nbi_tensor *)tr->nodes.items[k]);
    char name[32], shape[NBI_SHAPE_STR];
    fprintf(out, "%s trace: %zu step%s from %s (shape %s %s), in topological order\n", fn, n, n == 1 ? "" : "s",
            name_of(tr, root, name, sizeof name), nbi_shape_fmt(shape, root->ndim, root->shape),
            nb_dtype_name(root->dtype));
    return tr;
}

static void write_handle_values(FILE *out, nb_tensor *h)
{
    nbi_tensor *t = nbi_peek(h);
    if (t) nbi_write_values(out, t);
    else fputs("(invalid)", out);
}

/* Local derivatives of an elementwise op: its backward seeded with ones, without recording. NULL entries where
 * the op gives none (an input that needs no gradient). */
static bool local_derivatives(nbi_tensor *node, nb_tensor **local)
{
    memset(local, 0, (size_t)node->n_inputs * sizeof *local);
    uint64_t errors_before = nbi_error_count();
    nb_no_grad_begin();
    nb_tensor *ones = nb_ones(node->ndim, node->shape, node->dtype);
    if (ones) node->op->backward(node, ones, local);
    nb_no_grad_end();
    return nbi_error_count() == errors_before;
}

static bool same_shape(const nbi_tensor *a, const nbi_tensor *b)
{
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape) == 0;
}

void nbi_trace_step(nbi_trace *tr, nbi_tensor *node, nb_tensor *grad_out, nb_tensor *const *grad_in)
{
    FILE *o = tr->out;
    const nbi_op *op = node->op;
    char name_buf[32], in_buf[32], var[32], shape[NBI_SHAPE_STR], root_buf[32];
    tr->step++;
    const char *root_name = name_of(tr, tr->root, root_buf, sizeof root_buf);
    const char *name = name_of(tr, node, name_buf, sizeof name_buf);
    fprintf(o, "step %zu/%zu: %s = %s(", tr->step, tr->steps, name, op->name);
    for (int i = 0; i < node->n_inputs; i++)
        fprintf(o, "%s%s", i ? ", " : "", name_of(tr, node->inputs[i], in_buf, sizeof in_buf));
    fprintf(o, ")  shape %s %s\n  value     ", nbi_shape_fmt(shape, node->ndim, node->shape),
            nb_dtype_name(node->dtype));
    nbi_write_values(o, node);
    fprintf(o, "\n  upstream  d %s/d %s = ", root_name, name);
    write_handle_values(o, grad_out);
    fputc('\n', o);
    if (op->derivative)
        fprintf(o, "  %s%s\n", op->elementwise ? "local     " : "backward  with g = upstream: ", op->derivative);

    enum { MAX_LOCAL = 4 };
    nb_tensor *local[MAX_LOCAL];
    bool have_local = op->elementwise && node->n_inputs <= MAX_LOCAL && node->numel <= NBI_SHOWN_ELEMENTS &&
                      local_derivatives(node, local);
    for (int i = 0; i < node->n_inputs; i++) {
        const nbi_tensor *in = node->inputs[i];
        const char *in_name = name_of(tr, in, in_buf, sizeof in_buf);
        fprintf(o, "  %s = %s  shape %s %s%s\n    value   ", nbi_input_name(op, node->n_inputs, i, var, sizeof var),
                in_name, nbi_shape_fmt(shape, in->ndim, in->shape),
                nb_dtype_name(in->dtype), !in->op && in->requires_grad ? " (leaf)" : "");
        nbi_write_values(o, in);
        fputc('\n', o);
        if (!in->requires_grad) {
            fputs("    grad    none (needs no gradient)\n", o);
            continue;
        }
        bool diagonal = have_local && local[i] && same_shape(in, node);
        if (diagonal) {
            fputs("    local   ", o);
            write_handle_values(o, local[i]);
            fputc('\n', o);
        }
        fputs("    grad    ", o);
        if (!grad_in[i]) {
            fputs("none (zero)\n", o);
            continue;
        }
        if (diagonal) fputs("upstream * local = ", o);
        else if (op->elementwise && !same_shape(in, node))
            fprintf(o, "upstream * local, summed to shape %s = ", nbi_shape_fmt(shape, in->ndim, in->shape));
        write_handle_values(o, grad_in[i]);
        fprintf(o, "  -> added to d %s/d %s\n", root_name, in_name);
    }
    fflush(o);
}

void nbi_trace_end(nbi_trace *tr)
{
    FILE *o = tr->out;
    char name[32];
    /* nb_grad_of leaves .grad alone: only a real backward has accumulated gradients to report */
    bool report = strcmp(tr->fn, "nb_grad_of") != 0;
    for (size_t k = 0; k < tr->nodes.n; k++) {
        nbi_tensor *t = (nbi_tensor *)tr->nodes.items[k];
        if (t->op) continue;
        if (report && t->requires_grad && t->grad) {
            fprintf(o, "%s.grad = ", name_of(tr, t, name, sizeof name));
            nbi_write_values(o, t->grad);
            fputc('\n', o);
        }
        nbi_release(t);
    }
    fprintf(o, "end of %s trace\n", tr->fn);
    fflush(o);
    nbi_node_list_free(&tr->nodes);
    nbi_node_ids_free(&tr->ids);
    nbi_free(tr, sizeof *tr);
}
