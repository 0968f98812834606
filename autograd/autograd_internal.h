/* Internal interface of autograd: how an op records itself on the tape. Not installed. */
#ifndef NABLA_AUTOGRAD_INTERNAL_H
#define NABLA_AUTOGRAD_INTERNAL_H

#include "internal.h"
#include "nb_autograd.h"

/* An op's entry on the tape. backward receives the op's output (whose inputs and ctx were recorded) and the
 * gradient flowing into it, and stores in grad_in[i] the gradient for input i, a tensor of input i's shape
 * (or leaves it NULL when input i needs none: nbi_wants_grad(out, i) is false, or the gradient is zero).
 * It is written with the public differentiable ops, so that under NB_CREATE_GRAPH it is itself recorded.
 * A failing op inside backward records an error as usual; the engine notices and stops. */
typedef struct nbi_op {
    const char *name;
    void (*backward)(nbi_tensor *out, nb_tensor *grad_out, nb_tensor **grad_in);
    /* Optional, for the backward trace (autograd/trace.c) and the DOT export; set them with designated
     * initializers: {"mul", mul_backward, .derivative = "d out/d a = b, d out/d b = a", .elementwise = true}.
     * derivative: the local derivative as a formula in terms of the inputs and the result `out`; for an op whose
     * Jacobian is not diagonal, the rule giving each input's gradient from the upstream gradient g, e.g.
     * "grad a = g @ b^T, grad b = a^T @ g". elementwise: each output element depends only on the input elements
     * at the same (broadcast) position, so the trace can show d out / d input as values (backward seeded with
     * ones). inputs: the names the formula uses for the inputs, comma-separated in input order; NULL means "x"
     * for a one-input op and "a, b, c, ..." otherwise. */
    const char *derivative;
    bool elementwise;
    const char *inputs;
    /* The op writes a value the caller chose (masked_fill): ±Inf in its output is intended, so anomaly
     * detection only flags NaN there. */
    bool writes_given_value;
} nbi_op;

/* Records op on out when grad mode is on and one of the inputs requires grad; otherwise does nothing.
 * inputs are kept alive by out (their storage versions are noted, so backward can detect in-place changes);
 * ctx_size bytes at ctx are copied (read them back with nbi_ctx). Returns out's handle, or NULL (out is
 * freed) on failure. out NULL propagates. The usual last line of an op's forward. */
nb_tensor *nbi_record(nbi_tensor *out, const nbi_op *op, int n, nbi_tensor *const *inputs, const void *ctx,
                      size_t ctx_size);

/* Backward helpers: input i of out as a handle; whether input i needs a gradient; out's recorded ctx. */
static inline nb_tensor *nbi_in(const nbi_tensor *out, int i) { return nbi_handle(out->inputs[i]); }
static inline bool nbi_wants_grad(const nbi_tensor *out, int i) { return out->inputs[i]->requires_grad; }
static inline const void *nbi_ctx(const nbi_tensor *out) { return out->ctx; }

/* A new tensor sharing t's data and layout whose gradient passes straight to t (for ops that would return
 * their input unchanged but must hand back a new tensor). */
nb_tensor *nbi_alias(nbi_tensor *t, const char *fn);

/* For a backward formula whose result depends on x only through quantities with zero derivative (a mask from
 * comparisons of x, argmax positions): grad, unchanged in value, recorded as a function of x whose derivative
 * in x is zero. PyTorch declares these gradients (relu's threshold_backward, abs's sgn, leaky_relu, max pooling,
 * average pooling) as functions of x, so under NB_CREATE_GRAPH the first-order gradient requires grad whenever
 * x does, and differentiating it again gives x a zero gradient instead of failing for want of a graph.
 * Returns grad itself when nothing would be recorded (grad mode off, or x not requiring grad). grad NULL
 * propagates. */
nb_tensor *nbi_tie_to_input(nb_tensor *grad, nbi_tensor *x);

/* Kills a forward temporary (a converted input, a scalar made into a tensor) once the result holds it. */
static inline void nbi_drop_temp(nbi_tensor *tmp, const nbi_tensor *original)
{
    if (tmp && tmp != original) nbi_kill(tmp);
}

/* Adds src into dst in place (same float dtype; src broadcasts to dst). */
void nbi_add_inplace(nbi_tensor *dst, const nbi_tensor *src);

/* Called during a backward pass on the calling thread as soon as a leaf's .grad holds its final value for that pass
 * (the last node that consumes the leaf has delivered), once per leaf that requires grad and is reached; lets
 * dist/ start sending gradients while backward still runs. Before the first of these, once the graph is known, it
 * is called with leaf NULL: then (and until the next pass) nbi_leaf_reached tells whether the pass reaches a leaf,
 * so that the caller can treat the leaves it does not reach as final at once. NULL turns the hook off. nb_grad_of
 * does not call it. */
typedef void (*nbi_leaf_ready_fn)(nbi_tensor *leaf, void *ctx);
void nbi_set_leaf_ready_hook(nbi_leaf_ready_fn fn, void *ctx);
bool nbi_leaf_reached(const nbi_tensor *leaf);

/* Anomaly detection (autograd/anomaly.c; see nb_set_detect_anomaly). nbi_anomaly_forward checks an op's output
 * (called by nbi_record when detection is on and no backward runs); nbi_anomaly_backward checks the gradient a
 * node's backward returned for input i. Both record an NB_ERR_VALUE error and return it on an anomaly. */
nb_status nbi_anomaly_forward(nbi_tensor *out, const nbi_op *op, int n, nbi_tensor *const *inputs);
nb_status nbi_anomaly_backward(const char *fn, const nbi_tensor *node, int i, const nbi_tensor *grad);

/* The backward trace (autograd/trace.c; see nb_trace_backward). The engine calls nbi_trace_begin once per
 * backward pass, after sorting; it returns NULL when tracing is off on this thread, and then nothing else is
 * called. order holds the n nodes that backward will visit, inputs before their users. nbi_trace_step runs
 * after node's backward produced grad_in (inside the node's scope, before the gradients are delivered). */
typedef struct nbi_trace nbi_trace;
nbi_trace *nbi_trace_begin(const char *fn, const nbi_tensor *root, nbi_tensor *const *order, size_t n);
void nbi_trace_step(nbi_trace *tr, nbi_tensor *node, nb_tensor *grad_out, nb_tensor *const *grad_in);
void nbi_trace_end(nbi_trace *tr);

/* Shared by the trace and the DOT export (autograd/visualize.c). */
/* Tensors with at most this many elements are shown as numbers, larger ones by shape. */
#define NBI_SHOWN_ELEMENTS 8
/* Writes t's values: "2.0000" for a 0-d tensor, nested brackets "[[1.0000, 2.0000]]" otherwise (4 decimals,
 * scientific notation for very small or large magnitudes), or "(N values)" above NBI_SHOWN_ELEMENTS. */
void nbi_write_values(FILE *out, const nbi_tensor *t);
/* Numbers for the nodes of a graph in order of first appearance: a small open-addressing map from address to
 * index. nbi_node_id returns the index of p, adding it (and setting *added) when new; -1 when out of memory. */
typedef struct nbi_node_ids {
    const void **keys;
    int64_t *ids;
    size_t cap, n;
} nbi_node_ids;
int64_t nbi_node_id(nbi_node_ids *m, const void *p, bool *added);
void nbi_node_ids_free(nbi_node_ids *m);
/* Numbers the tensors reachable from root breadth-first (root is 0, then its inputs in input order, and so on):
 * ids maps each tensor to its number and nodes lists them by number. This numbering is what the DOT export
 * (t3) and the trace (#3) show. false (error recorded, naming fn) when out of memory; free both either way. */
typedef struct nbi_node_list {
    const nbi_tensor **items;
    size_t n, cap;
} nbi_node_list;
bool nbi_number_graph(const char *fn, const nbi_tensor *root, nbi_node_ids *ids, nbi_node_list *nodes);
void nbi_node_list_free(nbi_node_list *l);
/* A tensor's label, or "#k" with k its number in ids (written into buf). */
const char *nbi_node_name(const nbi_tensor *t, nbi_node_ids *ids, char *buf, size_t size);
/* The name formula text uses for input i of op (from op->inputs, else x or a, b, c...), into buf. */
const char *nbi_input_name(const struct nbi_op *op, int n_inputs, int i, char *buf, size_t size);

#endif
