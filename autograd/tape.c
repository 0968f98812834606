/* The tape and the backward pass.
 *
 * A tensor made by a recorded op points at its inputs; together they form the graph. Backward sorts the nodes
 * reachable from the root in topological order with an explicit stack (no recursion: a million-op chain is
 * fine), then walks them from the root down, handing each node's summed gradient to its op's backward formula
 * and adding the results into its inputs' pending gradients. Visited marks are an epoch number stored in the
 * node, so a heavily shared DAG is visited once per node without any set structure.
 */
#include "autograd_internal.h"

#include <string.h>

static atomic_uint_fast64_t epoch_counter;

/* ------------------------------------------------------------------------------------------------
 * Recording
 * ---------------------------------------------------------------------------------------------- */
nb_tensor *nbi_record(nbi_tensor *out, const nbi_op *op, int n, nbi_tensor *const *inputs, const void *ctx,
                      size_t ctx_size)
{
    if (!out) return NULL;
    nbi_thread_state *ts = nbi_thread();
    /* Inside backward, a NaN is reported once, by the node whose gradient it reaches (more useful than the
     * name of an op of some backward formula). */
    if (ts->detect_anomaly && ts->backward_depth == 0 && nbi_anomaly_forward(out, op, n, inputs) != NB_OK) goto fail;
    if (ts->no_grad_depth > 0) return nbi_handle(out);
    bool any = false;
    for (int i = 0; i < n; i++) any |= inputs[i]->requires_grad;
    if (!any) return nbi_handle(out);
    if (n > NBI_INLINE_INPUTS) {
        char *block = nbi_alloc((size_t)n * (sizeof *out->inputs + sizeof *out->input_versions), op->name);
        if (!block) goto fail;
        out->inputs = (nbi_tensor **)block;
        out->input_versions = (uint32_t *)(block + (size_t)n * sizeof *out->inputs);
    }
    if (ctx_size) {
        out->ctx = nbi_alloc(ctx_size, op->name);
        if (!out->ctx) goto fail;
        memcpy(out->ctx, ctx, ctx_size);
        out->ctx_size = (uint32_t)ctx_size;
    }
    for (int i = 0; i < n; i++) {
        nbi_retain(inputs[i]);
        out->inputs[i] = inputs[i];
        out->input_versions[i] = (uint32_t)atomic_load_explicit(&inputs[i]->storage->version, memory_order_relaxed);
    }
    out->own_version = (uint32_t)atomic_load_explicit(&out->storage->version, memory_order_relaxed);
    out->n_inputs = n;
    out->op = op;
    out->requires_grad = true;
    return nbi_handle(out);
fail:
    nbi_kill(out);
    return NULL;
}

/* Drops what backward would need a second time: the inputs and ctx. */
static void release_graph(nbi_tensor *t)
{
    int n = t->n_inputs;
    nbi_tensor *inline_copy[NBI_INLINE_INPUTS];
    nbi_tensor **inputs = t->inputs;
    if (inputs == t->inline_inputs) {
        memcpy(inline_copy, inputs, (size_t)n * sizeof *inputs);
        inputs = inline_copy;
    }
    t->n_inputs = 0;
    t->graph_released = true;
    if (t->ctx) nbi_free(t->ctx, t->ctx_size);
    t->ctx = NULL;
    for (int i = 0; i < n; i++) nbi_release(inputs[i]);
    if (inputs != inline_copy) nbi_free(inputs, (size_t)n * (sizeof *t->inputs + sizeof *t->input_versions));
    t->inputs = t->inline_inputs;
    t->input_versions = t->inline_versions;
}

/* ------------------------------------------------------------------------------------------------
 * Gradient state
 * ---------------------------------------------------------------------------------------------- */
nb_status nb_set_requires_grad(nb_tensor *h, bool requires_grad)
{
    nbi_tensor *t = nbi_resolve(h, "nb_set_requires_grad", "tensor");
    if (!t) return nb_last_status();
    if (t->op)
        return nbi_fail(NB_ERR_STATE,
                        "nb_set_requires_grad: tensor is the result of '%s', not a leaf; use nb_detach to get a leaf",
                        t->op->name);
    if (requires_grad && !nbi_is_float(t->dtype))
        return nbi_fail(NB_ERR_DTYPE, "nb_set_requires_grad: only f32 and f64 tensors can require grad, not %s",
                        nb_dtype_name(t->dtype));
    t->requires_grad = requires_grad;
    return NB_OK;
}

bool nb_requires_grad(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_requires_grad", "tensor");
    return t && t->requires_grad;
}

bool nb_is_leaf(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_is_leaf", "tensor");
    return t && !t->op;
}

const char *nb_grad_fn_name(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_grad_fn_name", "tensor");
    return t && t->op ? t->op->name : NULL;
}

nb_tensor *nb_grad(const nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_grad", "tensor");
    return t ? nbi_handle(t->grad) : NULL;
}

nb_status nb_zero_grad(nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_zero_grad", "tensor");
    if (!t) return nb_last_status();
    nbi_tensor *g = t->grad;
    t->grad = NULL;
    if (g) nbi_kill(g);
    return NB_OK;
}

nb_status nb_retain_grad(nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_retain_grad", "tensor");
    if (!t) return nb_last_status();
    if (!t->requires_grad)
        return nbi_fail(NB_ERR_STATE, "nb_retain_grad: tensor does not require grad, so it will get no gradient");
    t->retains_grad = true;
    return NB_OK;
}

nb_tensor *nb_detach(nb_tensor *h)
{
    nbi_tensor *t = nbi_resolve(h, "nb_detach", "tensor");
    if (!t) return NULL;
    return nbi_handle(nbi_tensor_new_view(t->storage, t->dtype, t->ndim, t->shape, t->stride, t->offset, "nb_detach"));
}

void nb_no_grad_begin(void) { nbi_thread()->no_grad_depth++; }
void nb_no_grad_end(void)
{
    nbi_thread_state *s = nbi_thread();
    if (s->no_grad_depth > 0) s->no_grad_depth--;
}
bool nb_is_grad_enabled(void) { return nbi_thread()->no_grad_depth == 0; }

/* ------------------------------------------------------------------------------------------------
 * In-place accumulation kernel (the one place backward writes into an existing tensor)
 * ---------------------------------------------------------------------------------------------- */
static void add_loop_f32(int64_t n, char **p, const int64_t *s, const void *params)
{
    (void)params;
    float *d = (float *)p[0];
    const float *a = (const float *)p[1], *b = (const float *)p[2];
    for (int64_t i = 0; i < n; i++) d[i * s[0]] = a[i * s[1]] + b[i * s[2]];
}
static void add_loop_f64(int64_t n, char **p, const int64_t *s, const void *params)
{
    (void)params;
    double *d = (double *)p[0];
    const double *a = (const double *)p[1], *b = (const double *)p[2];
    for (int64_t i = 0; i < n; i++) d[i * s[0]] = a[i * s[1]] + b[i * s[2]];
}

void nbi_add_inplace(nbi_tensor *dst, const nbi_tensor *src)
{
    const nbi_tensor *in[2] = {dst, src};
    nbi_iter it;
    nbi_iter_init(&it, dst, 2, in);
    nbi_iter_run(&it, dst->dtype == NB_F64 ? add_loop_f64 : add_loop_f32, NULL);
    nbi_storage_bump_version(dst->storage);
}

/* ------------------------------------------------------------------------------------------------
 * The backward pass
 * ---------------------------------------------------------------------------------------------- */
typedef struct frame {
    nbi_tensor *node;
    int next_input;
} frame;

typedef struct growable {
    void *items;
    size_t n, cap, elsize;
} growable;

static bool grow_push(growable *v, const void *item)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 256;
        void *items = nbi_alloc(cap * v->elsize, "nb_backward");
        if (!items) return false;
        if (v->n) memcpy(items, v->items, v->n * v->elsize);
        nbi_free(v->items, v->cap * v->elsize);
        v->items = items;
        v->cap = cap;
    }
    memcpy((char *)v->items + v->n * v->elsize, item, v->elsize);
    v->n++;
    return true;
}

static void grow_free(growable *v) { nbi_free(v->items, v->cap * v->elsize); }

static bool needs_visit(const nbi_tensor *t, uint64_t epoch)
{
    return t->op && t->requires_grad && t->visit_epoch != epoch;
}

static nb_status released_error(const char *fn, const nbi_tensor *t)
{
    char b[NBI_SHAPE_STR];
    return nbi_fail(NB_ERR_STATE,
                    "%s: the graph through '%s' (output shape %s) was already released by an earlier backward; pass "
                    "NB_RETAIN_GRAPH to the earlier call to run backward through it again",
                    fn, t->op->name, nbi_shape_fmt(b, t->ndim, t->shape));
}

typedef struct capture {
    int n;
    nbi_tensor *const *targets;
    nbi_tensor **grads; /* summed gradient of each target (a reference), or NULL */
} capture;

static int capture_index(const capture *c, const nbi_tensor *t)
{
    for (int i = 0; c && i < c->n; i++)
        if (c->targets[i] == t) return i;
    return -1;
}

/* Post-order of the nodes reachable from root (inputs before the ops that use them). For nb_grad_of (cap), a
 * requested input whose graph an earlier backward released is where the walk stops: its gradient needs only
 * what lies above it (PyTorch's autograd.grad allows it too). */
static nb_status topo_sort(const char *fn, nbi_tensor *root, growable *order, const capture *cap)
{
    uint64_t epoch = atomic_fetch_add(&epoch_counter, 1) + 1;
    growable stack = {.elsize = sizeof(frame)};
    nb_status st = NB_OK;
    root->visit_epoch = epoch;
    frame f0 = {root, 0};
    if (!grow_push(&stack, &f0)) return NB_ERR_NOMEM;
    while (stack.n) {
        frame *top = (frame *)stack.items + stack.n - 1;
        nbi_tensor *t = top->node;
        if (t->graph_released && capture_index(cap, t) < 0) {
            st = released_error(fn, t);
            break;
        }
        if (top->next_input < t->n_inputs) {
            nbi_tensor *in = t->inputs[top->next_input++];
            if (needs_visit(in, epoch)) {
                in->visit_epoch = epoch;
                frame f = {in, 0};
                if (!grow_push(&stack, &f)) {
                    st = NB_ERR_NOMEM;
                    break;
                }
            }
            continue;
        }
        stack.n--;
        if (!grow_push(order, &t)) {
            st = NB_ERR_NOMEM;
            break;
        }
        /* Held until backward ends: releasing one node's graph may drop the last other reference to a node
         * still waiting its turn (a result whose scope has ended, kept alive only by its consumer). */
        nbi_retain(t);
    }
    grow_free(&stack);
    return st;
}

/* The leaf-ready hook (nbi_set_leaf_ready_hook). */
static _Thread_local nbi_leaf_ready_fn leaf_ready_fn;
static _Thread_local void *leaf_ready_ctx;
static _Thread_local uint64_t leaf_ready_epoch; /* the mark of the leaves the current pass reaches */

void nbi_set_leaf_ready_hook(nbi_leaf_ready_fn fn, void *ctx)
{
    leaf_ready_fn = fn;
    leaf_ready_ctx = ctx;
}

typedef struct ready_leaf {
    size_t node; /* index in the sorted order of the leaf's last consumer to run */
    nbi_tensor *leaf;
} ready_leaf;

/* Pairs each leaf that requires grad with its consumer that backward runs last: the one with the lowest index in
 * the order, since the pass walks it from the end. Filled by ascending index, so the pass finds the leaves its
 * current node completes at the end of the list. Leaves never get a visit mark from the sort, so a fresh epoch
 * marks the ones already listed. */
static nb_status find_last_consumers(nbi_tensor *const *nodes, size_t n, growable *out)
{
    uint64_t epoch = atomic_fetch_add(&epoch_counter, 1) + 1;
    leaf_ready_epoch = epoch;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < nodes[i]->n_inputs; j++) {
            nbi_tensor *in = nodes[i]->inputs[j];
            if (in->op || !in->requires_grad || in->visit_epoch == epoch) continue;
            in->visit_epoch = epoch;
            ready_leaf r = {i, in};
            if (!grow_push(out, &r)) return NB_ERR_NOMEM;
        }
    return NB_OK;
}

bool nbi_leaf_reached(const nbi_tensor *leaf) { return !leaf->op && leaf->visit_epoch == leaf_ready_epoch; }

/* Calls the hook for the leaves whose last consumer, node `index`, has just delivered its gradients. */
static void fire_ready(nbi_leaf_ready_fn hook, const growable *ready, size_t *left, size_t index)
{
    const ready_leaf *r = ready->items;
    for (; *left > 0 && r[*left - 1].node == index; (*left)--) hook(r[*left - 1].leaf, leaf_ready_ctx);
}

/* Gradient of shape/dtype not matching its tensor: a bug in an op's backward formula. */
static nb_status check_grad(const char *fn, const nbi_tensor *node, int i, const nbi_tensor *in, const nbi_tensor *g)
{
    if (g->ndim == in->ndim && memcmp(g->shape, in->shape, (size_t)in->ndim * sizeof *in->shape) == 0) return NB_OK;
    char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
    return nbi_fail(NB_ERR_SHAPE, "%s: backward of '%s' returned a gradient of shape %s for input %d of shape %s", fn,
                    node->op->name, nbi_shape_fmt(a, g->ndim, g->shape), i, nbi_shape_fmt(b, in->ndim, in->shape));
}

/* Adds gradient g into t's pending sum. */
static nb_status add_pending(nbi_tensor *t, nbi_tensor *g)
{
    if (!t->pending_grad) {
        nbi_retain(g);
        t->pending_grad = g;
        return NB_OK;
    }
    nbi_tensor *sum = nbi_peek(nb_add(nbi_handle(t->pending_grad), nbi_handle(g)));
    if (!sum) return nb_last_status();
    nbi_retain(sum);
    nbi_release(t->pending_grad);
    t->pending_grad = sum;
    return NB_OK;
}

/* Whether g is a temporary of this backward that nothing else holds, so t can take it as its gradient. Its memory
 * must be its own too: a gradient passed through unchanged (add's) may be a view of the seed or of another
 * input's gradient, which the leaf must not share (PyTorch clones then as well). */
static bool adoptable(const nbi_tensor *t, const nbi_tensor *g, bool create_graph)
{
    if (!nbi_in_innermost_scope(g) || atomic_load(&g->refs) != 1 || atomic_load(&g->storage->refs) != 1) return false;
    return create_graph || (!g->op && g->dtype == t->dtype && nbi_is_contiguous(g));
}

/* Adds g into t->grad, the gradient t owns. Without create_graph a plain gradient is updated in place from then
 * on; with it, the sum is recorded so that it can be differentiated. */
static nb_status accumulate(nbi_tensor *t, nbi_tensor *g, bool create_graph)
{
    nbi_tensor *old = t->grad;
    if (old && !create_graph && !old->op && g->dtype == old->dtype && nbi_is_contiguous(old) &&
        atomic_load(&old->storage->refs) == 1) {
        nbi_add_inplace(old, g);
        return NB_OK;
    }
    nbi_tensor *total;
    if (old) total = nbi_peek(nb_add(nbi_handle(old), nbi_handle(g)));
    else if (adoptable(t, g, create_graph)) total = g;
    else if (create_graph) total = nbi_peek(nb_clone(nbi_handle(g)));
    else total = nbi_contiguous_copy(g, t->dtype, "nb_backward");
    if (!total) return nb_last_status();
    if (old) nbi_kill(old);
    nbi_make_owned_by_tensor(total);
    t->grad = total;
    return NB_OK;
}

static nb_status capture_add(capture *c, int k, nbi_tensor *g)
{
    nbi_tensor *sum = g;
    if (c->grads[k] && !(sum = nbi_peek(nb_add(nbi_handle(c->grads[k]), nbi_handle(g))))) return nb_last_status();
    /* The caller will be handed this tensor: a sum whose scope already ended (a finished node's) is replaced
     * by a live alias, and one in the current node's scope moves out to backward's own scope. */
    if (sum->state != NBI_LIVE && !(sum = nbi_peek(nbi_alias(sum, "nb_grad_of")))) return nb_last_status();
    if (nbi_in_innermost_scope(sum)) nbi_keep(sum);
    nbi_retain(sum);
    if (c->grads[k]) nbi_release(c->grads[k]);
    c->grads[k] = sum;
    return NB_OK;
}

/* Delivers gradient g of tensor t: to a capture target, a leaf's .grad, or t's pending sum. */
static nb_status deliver(nbi_tensor *t, nbi_tensor *g, capture *cap, bool create_graph)
{
    int k = capture_index(cap, t);
    if (k >= 0 && !t->op) return capture_add(cap, k, g);
    if (t->op) return add_pending(t, g);
    if (cap) return NB_OK; /* nb_grad_of leaves .grad alone */
    return accumulate(t, g, create_graph);
}

static nb_status backward_pass(const char *fn, nbi_tensor *root, nbi_tensor *seed, nb_backward_flags flags,
                               capture *cap)
{
    bool create_graph = flags & NB_CREATE_GRAPH, retain = create_graph || (flags & NB_RETAIN_GRAPH);
    if (!root->op) return deliver(root, seed, cap, create_graph);

    growable order = {.elsize = sizeof(nbi_tensor *)};
    nb_status st = topo_sort(fn, root, &order, cap);
    nbi_thread_state *ts = nbi_thread();
    bool anomaly = ts->detect_anomaly;
    ts->backward_depth++;
    nbi_tensor **nodes = order.items;
    /* nb_grad_of runs the backward of the nodes above a requested input only, as PyTorch does: the rest would be
     * wasted work, and without NB_RETAIN_GRAPH it would release graph that a later backward may need. The order
     * has inputs first, so one pass marks every node with a requested input, or a marked node, among its inputs. */
    for (size_t n = 0; n < order.n; n++) {
        nbi_tensor *t = nodes[n];
        t->leads_to_target = !cap;
        for (int j = 0; cap && j < t->n_inputs && !t->leads_to_target; j++) {
            const nbi_tensor *in = t->inputs[j];
            t->leads_to_target = capture_index(cap, in) >= 0 || (in->op && in->visit_epoch == t->visit_epoch &&
                                                                  in->leads_to_target);
        }
    }
    nbi_trace *trace = st == NB_OK ? nbi_trace_begin(fn, root, nodes, order.n) : NULL; /* NULL unless tracing */
    nbi_leaf_ready_fn hook = cap ? NULL : leaf_ready_fn;
    growable ready = {.elsize = sizeof(ready_leaf)};
    if (st == NB_OK && hook) st = find_last_consumers(nodes, order.n, &ready);
    if (st == NB_OK && hook) hook(NULL, leaf_ready_ctx);
    size_t ready_left = ready.n;
    size_t i = order.n;
    if (st == NB_OK) st = add_pending(root, seed);
    for (; st == NB_OK && i > 0; i--) {
        nbi_tensor *node = nodes[i - 1];
        nbi_tensor *g = node->pending_grad;
        node->pending_grad = NULL;
        if (!g) {
            if (hook) fire_ready(hook, &ready, &ready_left, i - 1);
            continue;
        }
        int k = capture_index(cap, node);
        if (k >= 0) st = capture_add(cap, k, g);
        else if (node->retains_grad && !cap) st = accumulate(node, g, create_graph);
        if (st == NB_OK && !node->leads_to_target) { /* nothing requested below: its graph stays as it is */
            nbi_release(g);
            continue;
        }
        /* A result written in place after it was made: backward formulas that read it (exp, tanh, softmax, ...)
         * would use the new values, and the overwritten elements' gradient would still flow to the inputs as if
         * they were not replaced (in-place writes are not recorded). */
        if ((uint32_t)atomic_load(&node->storage->version) != node->own_version) {
            char b[NBI_SHAPE_STR];
            st = nbi_fail(NB_ERR_STATE,
                          "%s: the result of '%s' (shape %s) was modified in place after it was computed; the "
                          "gradient would be wrong (write into a clone instead)",
                          fn, node->op->name, nbi_shape_fmt(b, node->ndim, node->shape));
        }
        for (int j = 0; st == NB_OK && j < node->n_inputs; j++) {
            nbi_tensor *in = node->inputs[j];
            if ((uint32_t)atomic_load(&in->storage->version) != node->input_versions[j]) {
                char b[NBI_SHAPE_STR];
                st = nbi_fail(NB_ERR_STATE,
                              "%s: input %d of '%s' (shape %s) was modified in place after it was used; the "
                              "gradient would be wrong",
                              fn, j, node->op->name, nbi_shape_fmt(b, in->ndim, in->shape));
            }
        }
        /* Each node's temporaries live in a scope of their own: what the inputs still need is held by their
         * pending sums (references), everything else is freed as soon as the node is done. */
        if (st == NB_OK) st = nbi_scope_begin();
        if (st != NB_OK) {
            nbi_release(g);
            break;
        }
        nb_tensor *grad_in[NBI_INLINE_INPUTS];
        nb_tensor **gin = grad_in;
        if (st == NB_OK && node->n_inputs > NBI_INLINE_INPUTS) {
            gin = nbi_alloc((size_t)node->n_inputs * sizeof *gin, fn);
            if (!gin) st = NB_ERR_NOMEM;
        }
        if (st == NB_OK) {
            memset(gin, 0, (size_t)node->n_inputs * sizeof *gin);
            uint64_t errors_before = nbi_error_count();
            node->op->backward(node, nbi_handle(g), gin);
            if (nbi_error_count() != errors_before) st = nb_last_status();
            else if (trace) nbi_trace_step(trace, node, nbi_handle(g), gin);
        }
        for (int j = 0; st == NB_OK && j < node->n_inputs; j++) {
            nbi_tensor *in = node->inputs[j];
            if (!in->requires_grad || !gin[j]) continue;
            nbi_tensor *gj = nbi_peek(gin[j]);
            st = gj ? check_grad(fn, node, j, in, gj) : nbi_fail(NB_ERR_STATE, "%s: backward of '%s' returned an "
                                                                                "invalid gradient handle",
                                                                  fn, node->op->name);
            if (st == NB_OK && anomaly) st = nbi_anomaly_backward(fn, node, j, gj);
            if (st == NB_OK) st = deliver(in, gj, cap, create_graph);
        }
        if (gin != grad_in) nbi_free(gin, (size_t)node->n_inputs * sizeof *gin);
        nbi_release(g);
        nbi_scope_end();
        /* before release_graph, which may drop the last reference to a leaf the user has freed */
        if (st == NB_OK && hook) fire_ready(hook, &ready, &ready_left, i - 1);
        if (st == NB_OK && !retain) release_graph(node);
    }
    /* On failure, drop the sums still waiting in unprocessed nodes. */
    for (; i > 0; i--) {
        nbi_tensor *node = nodes[i - 1];
        if (node->pending_grad) nbi_release(node->pending_grad);
        node->pending_grad = NULL;
    }
    for (size_t j = order.n; j > 0; j--) nbi_release(nodes[j - 1]);
    if (trace) nbi_trace_end(trace);
    ts->backward_depth--;
    grow_free(&ready);
    grow_free(&order);
    return st;
}

/* Shared entry: validates, opens an internal scope for the temporaries, and sets grad mode for the pass. */
static nb_status run_backward(const char *fn, nb_tensor *root_h, const nb_tensor *grad_h, nb_backward_flags flags,
                              capture *cap)
{
    nbi_tensor *root = nbi_resolve(root_h, fn, "root");
    if (!root) return nb_last_status();
    if (flags & ~(NB_RETAIN_GRAPH | NB_CREATE_GRAPH))
        return nbi_fail(NB_ERR_ARG, "%s: unknown flags 0x%x (expected NB_RETAIN_GRAPH and/or NB_CREATE_GRAPH)", fn,
                        (unsigned)flags);
    if (!root->requires_grad)
        return nbi_fail(NB_ERR_STATE, "%s: root does not require grad (no input of its graph requires grad, or it "
                                      "was computed in no-grad mode)",
                        fn);
    nbi_tensor *grad = NULL;
    char a[NBI_SHAPE_STR], b[NBI_SHAPE_STR];
    if (grad_h) {
        grad = nbi_resolve(grad_h, fn, "grad_root");
        if (!grad) return nb_last_status();
        if (grad->ndim != root->ndim || memcmp(grad->shape, root->shape, (size_t)root->ndim * sizeof *root->shape))
            return nbi_fail(NB_ERR_SHAPE, "%s: grad_root has shape %s but root has shape %s", fn,
                            nbi_shape_fmt(a, grad->ndim, grad->shape), nbi_shape_fmt(b, root->ndim, root->shape));
    } else if (root->numel != 1) {
        return nbi_fail(NB_ERR_SHAPE,
                        "%s: root has shape %s; backward without grad_root needs a tensor with one element", fn,
                        nbi_shape_fmt(a, root->ndim, root->shape));
    }
    if (nbi_scope_begin() != NB_OK) return nb_last_status();
    nbi_thread_state *ts = nbi_thread();
    int saved_depth = ts->no_grad_depth;
    ts->no_grad_depth = (flags & NB_CREATE_GRAPH) ? 0 : saved_depth + 1;
    nb_status st = NB_OK;
    nbi_tensor *seed;
    if (grad) seed = grad->dtype == root->dtype ? grad : nbi_contiguous_copy(grad, root->dtype, fn);
    else {
        seed = nbi_tensor_new_like(root, root->dtype, fn);
        if (seed) nb_fill(nbi_handle(seed), 1.0);
    }
    if (!seed) st = nb_last_status();
    else st = backward_pass(fn, root, seed, flags, cap);
    ts->no_grad_depth = saved_depth;
    if (cap) /* captured gradients outlive the internal scope: hand them to the caller's scope */
        for (int k = 0; k < cap->n; k++)
            if (cap->grads[k] && nbi_in_innermost_scope(cap->grads[k])) nbi_keep(cap->grads[k]);
    nbi_scope_end();
    return st;
}

nb_status nb_backward(nb_tensor *root) { return run_backward("nb_backward", root, NULL, 0, NULL); }

nb_status nb_backward_ex(nb_tensor *root, const nb_tensor *grad_root, nb_backward_flags flags)
{
    return run_backward("nb_backward_ex", root, grad_root, flags, NULL);
}

nb_status nb_grad_of(nb_tensor *root, const nb_tensor *grad_root, int n, nb_tensor *const *inputs,
                     nb_tensor **grads_out, nb_backward_flags flags)
{
    const char *fn = "nb_grad_of";
    if (n < 0 || (n > 0 && (!inputs || !grads_out)))
        return nbi_fail(NB_ERR_ARG, "nb_grad_of: need n >= 0 inputs and room for n gradients");
    for (int k = 0; k < n; k++) grads_out[k] = NULL;
    nbi_tensor *targets_inline[8], *grads_inline[8];
    nbi_tensor **targets = n <= 8 ? targets_inline : nbi_alloc((size_t)n * sizeof *targets, fn);
    nbi_tensor **grads = n <= 8 ? grads_inline : nbi_alloc((size_t)n * sizeof *grads, fn);
    nb_status st = (targets && grads) ? NB_OK : NB_ERR_NOMEM;
    for (int k = 0; st == NB_OK && k < n; k++) {
        char what[32];
        snprintf(what, sizeof what, "inputs[%d]", k);
        targets[k] = nbi_resolve(inputs[k], fn, what);
        grads[k] = NULL;
        if (!targets[k]) st = nb_last_status();
        else if (!targets[k]->requires_grad)
            st = nbi_fail(NB_ERR_STATE, "nb_grad_of: inputs[%d] does not require grad", k);
    }
    capture cap = {n, targets, grads};
    if (st == NB_OK) st = run_backward(fn, root, grad_root, flags, &cap);
    nbi_tensor *user_grad = grad_root ? nbi_peek(grad_root) : NULL;
    for (int k = 0; k < n && targets; k++) {
        if (st == NB_OK) {
            /* an input listed twice was captured in its first slot: each listing gets that gradient */
            int first = k;
            for (int j = 0; j < k && first == k; j++)
                if (targets[j] == targets[k]) first = j;
            nbi_tensor *g = grads[first];
            bool shared = g == user_grad || (g && first < k);
            for (int j = 0; j < k; j++) shared |= g && g == grads[j];
            /* the caller owns each result: a tensor that is not a fresh temporary is handed back as a copy */
            if (!g) g = nbi_tensor_zeros_like(targets[k], targets[k]->dtype, fn);
            else if (shared) g = nbi_peek(nb_clone(nbi_handle(g)));
            if (!g) st = nb_last_status();
            grads_out[k] = nbi_handle(g);
        }
    }
    for (int k = 0; k < n && targets; k++)
        if (grads[k]) nbi_release(grads[k]);
    if (st != NB_OK)
        for (int k = 0; k < n; k++)
            if (grads_out[k]) {
                nb_free(grads_out[k]);
                grads_out[k] = NULL;
            }
    if (n > 8) {
        nbi_free(targets, (size_t)n * sizeof *targets);
        nbi_free(grads, (size_t)n * sizeof *grads);
    }
    return st;
}
