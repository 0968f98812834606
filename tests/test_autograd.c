/* The tape and backward: accumulation, topological order, long chains, shared DAGs, retain/release, no-grad,
 * detach, freezing, in-place detection, nb_grad_of, double backward, and reference numbers. */
#include "helpers.h"

#include "autograd_internal.h" /* to define a deliberately wrong op */

START_TEST(chain_rule_on_scalars)
{
    nb_scope_begin();
    nb_tensor *a = nb_scalar(2, NB_F64), *b = nb_scalar(-3, NB_F64);
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    nb_tensor *c = nb_add(nb_mul(a, b), nb_pow_scalar(a, 3)); /* ab + a^3 */
    ck_assert_close(nb_item(c), 2.0, 0);
    ck_assert_ok(nb_backward(c));
    ck_assert_close(nb_item(nb_grad(a)), -3 + 3 * 4, 1e-12); /* b + 3a^2 */
    ck_assert_close(nb_item(nb_grad(b)), 2, 0);              /* a */
    ck_assert_int_eq(nb_is_leaf(a), 1);
    ck_assert_int_eq(nb_is_leaf(c), 0);
    ck_assert_str_eq(nb_grad_fn_name(c), "add");
    ck_assert_ptr_null(nb_grad_fn_name(a));
    nb_scope_end();
}
END_TEST

/* a = 1; b = a + a; c = b + b: naive recursion gets dc/da wrong; the topological order gives 4. */
START_TEST(reused_values_accumulate)
{
    nb_scope_begin();
    nb_tensor *a = nb_scalar(1, NB_F64);
    nb_set_requires_grad(a, true);
    nb_tensor *b = nb_add(a, a);
    nb_tensor *c = nb_add(b, b);
    ck_assert_ok(nb_backward(c));
    ck_assert_close(nb_item(nb_grad(a)), 4, 0);
    nb_scope_end();
}
END_TEST

START_TEST(leaf_gradients_accumulate_until_zeroed)
{
    nb_tensor *w = T_F64(NB_SHAPE(2), 1, 2);
    nb_set_requires_grad(w, true);
    for (int i = 0; i < 3; i++) {
        nb_scope_begin();
        ck_assert_ok(nb_backward(nb_sum_to(nb_mul_scalar(w, 5), 0, NULL)));
        nb_scope_end();
    }
    ck_assert_values(nb_grad(w), 0, 15, 15);
    nb_zero_grad(w);
    nb_scope_begin();
    ck_assert_ok(nb_backward(nb_sum_to(nb_mul_scalar(w, 5), 0, NULL)));
    nb_scope_end();
    ck_assert_values(nb_grad(w), 0, 5, 5);
    nb_free(w);
}
END_TEST

/* x = x * 1.000001, a million times: the sort and the release are iterative, so the C stack is untouched. */
START_TEST(million_op_chain)
{
    nb_tensor *x0 = nb_scalar(1, NB_F64);
    nb_set_requires_grad(x0, true);
    nb_scope_begin();
    nb_tensor *factor = nb_scalar(1.000001, NB_F64);
    nb_tensor *x = x0;
    for (int i = 0; i < 1000000; i++) x = nb_mul(x, factor);
    ck_assert_tensor(x);
    ck_assert_ok(nb_backward(x));
    ck_assert_close(nb_item(nb_grad(x0)), pow(1.000001, 1e6), 1e-9);
    nb_scope_end();
    nb_free(x0);
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, 0);
}
END_TEST

/* 30 layers of 4 nodes, each the sum of all 4 nodes below it: 4^30 paths, 120 nodes. Visiting each node once
 * finishes instantly; the gradient is exactly 4^30 = 2^60. */
START_TEST(shared_dag_is_visited_once_per_node)
{
    nb_scope_begin();
    nb_tensor *x = nb_scalar(1, NB_F64);
    nb_set_requires_grad(x, true);
    nb_tensor *layer[4] = {x, x, x, x};
    for (int l = 0; l < 30; l++) {
        nb_tensor *next[4];
        for (int j = 0; j < 4; j++)
            next[j] = nb_add(nb_add(layer[0], layer[1]), nb_add(layer[2], layer[3]));
        memcpy(layer, next, sizeof layer);
    }
    ck_assert_ok(nb_backward(layer[0]));
    ck_assert_double_eq(nb_item(nb_grad(x)), ldexp(1.0, 60));
    nb_scope_end();
}
END_TEST

START_TEST(second_backward_needs_retain_graph)
{
    nb_scope_begin();
    nb_tensor *w = T_F64(NB_SHAPE(2), 1, 2);
    nb_set_requires_grad(w, true);
    nb_tensor *loss = nb_sum_to(nb_mul(w, w), 0, NULL);
    ck_assert_ok(nb_backward(loss));
    ck_assert_int_eq(nb_backward(loss), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_backward", "already released", "NB_RETAIN_GRAPH");
    ck_assert_values(nb_grad(w), 0, 2, 4); /* the failed call changed nothing */

    nb_zero_grad(w);
    nb_tensor *loss2 = nb_sum_to(nb_mul(w, w), 0, NULL);
    ck_assert_ok(nb_backward_ex(loss2, NULL, NB_RETAIN_GRAPH));
    ck_assert_ok(nb_backward_ex(loss2, NULL, NB_RETAIN_GRAPH));
    ck_assert_values(nb_grad(w), 0, 4, 8);
    nb_scope_end();
}
END_TEST

START_TEST(backward_with_explicit_output_gradient)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(3), 1, 2, 3);
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_mul(x, x);
    ck_assert_int_eq(nb_backward(y), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_backward", "(3)", "one element");
    ck_assert_ok(nb_backward_ex(y, T_F64(NB_SHAPE(3), 1, 0.5, -1), 0));
    ck_assert_values(nb_grad(x), 1e-12, 2, 2, -6);
    nb_tensor *z = nb_mul(x, x);
    ck_assert_int_eq(nb_backward_ex(z, nb_ones(NB_SHAPE(2), NB_F64), 0), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "grad_root has shape (2)", "(3)");
    nb_scope_end();
}
END_TEST

START_TEST(backward_errors)
{
    nb_scope_begin();
    nb_tensor *c = nb_ones(NB_SHAPE(1), NB_F32);
    ck_assert_int_eq(nb_backward(c), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_backward", "does not require grad");
    nb_clear_error(); /* with no error pending, a NULL root is reported as such */
    ck_assert_int_eq(nb_backward(NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_backward", "root is NULL");
    nb_tensor *i = nb_zeros(NB_SHAPE(2), NB_I64);
    ck_assert_int_eq(nb_set_requires_grad(i, true), NB_ERR_DTYPE);
    ck_assert_error(NB_ERR_DTYPE, "nb_set_requires_grad", "i64");
    nb_tensor *w = nb_ones(NB_SHAPE(2), NB_F32);
    nb_set_requires_grad(w, true);
    ck_assert_int_eq(nb_set_requires_grad(nb_mul(w, w), false), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "not a leaf", "mul");
    ck_assert_int_eq(nb_retain_grad(c), NB_ERR_STATE);
    nb_scope_end();
}
END_TEST

START_TEST(no_grad_records_nothing_and_nests)
{
    nb_scope_begin();
    nb_tensor *w = nb_ones(NB_SHAPE(2), NB_F32);
    nb_set_requires_grad(w, true);
    ck_assert_int_eq(nb_is_grad_enabled(), 1);
    nb_no_grad_begin();
    nb_no_grad_begin();
    ck_assert_int_eq(nb_requires_grad(nb_mul(w, w)), 0);
    nb_no_grad_end();
    ck_assert_int_eq(nb_is_grad_enabled(), 0);
    ck_assert_int_eq(nb_requires_grad(nb_mul(w, w)), 0);
    nb_no_grad_end();
    ck_assert_int_eq(nb_is_grad_enabled(), 1);
    ck_assert_int_eq(nb_requires_grad(nb_mul(w, w)), 1);
    nb_scope_end();
}
END_TEST

START_TEST(detach_shares_data_without_history)
{
    nb_scope_begin();
    nb_tensor *w = T_F64(NB_SHAPE(2), 1, 2);
    nb_set_requires_grad(w, true);
    nb_tensor *y = nb_mul(w, w);
    nb_tensor *d = nb_detach(y);
    ck_assert_int_eq(nb_requires_grad(d), 0);
    ck_assert_int_eq(nb_is_leaf(d), 1);
    ck_assert_int_eq(nb_shares_storage(d, y), 1);
    /* the detached factor is a constant: d(y_detached * w)/dw = y */
    ck_assert_ok(nb_backward(nb_sum_to(nb_mul(d, w), 0, NULL)));
    ck_assert_values(nb_grad(w), 0, 1, 4);
    nb_scope_end();
}
END_TEST

/* A frozen parameter gets no gradient, but gradients still flow through it to the layer below. */
START_TEST(frozen_parameter_passes_gradient_on)
{
    nb_scope_begin();
    nb_tensor *w1 = T_F64(NB_SHAPE(2), 1, 2), *w2 = T_F64(NB_SHAPE(2), 3, 4);
    nb_set_requires_grad(w1, true);
    nb_set_requires_grad(w2, true);
    nb_set_requires_grad(w2, false);
    ck_assert_ok(nb_backward(nb_sum_to(nb_mul(nb_mul(w1, w1), w2), 0, NULL)));
    ck_assert_ptr_null(nb_grad(w2));
    ck_assert_values(nb_grad(w1), 0, 6, 16);
    nb_scope_end();
}
END_TEST

START_TEST(in_place_change_after_use_is_detected)
{
    nb_scope_begin();
    nb_tensor *w = T_F64(NB_SHAPE(2), 1, 2), *x = T_F64(NB_SHAPE(2), 3, 4);
    nb_set_requires_grad(w, true);
    nb_tensor *loss = nb_sum_to(nb_mul(w, x), 0, NULL);
    nb_set(x, (const int64_t[]){0}, 10);
    ck_assert_int_eq(nb_backward(loss), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "modified in place", "mul");
    nb_scope_end();
}
END_TEST

/* An op's own result written in place after it was made: exp's backward reads its result, and even an op whose
 * backward does not (add) would send the overwritten element's gradient to its inputs. Both are refused, also
 * through a view of the result; writing into a clone is the way. */
START_TEST(in_place_change_of_a_result_is_detected)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(3), 0.5, 1.5, 2.5);
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_exp(x);
    ck_assert_ok(nb_set_flat(y, 0, 100.0)); /* before its use: mul records the new version */
    nb_tensor *loss = nb_sum_to(nb_mul_scalar(y, 1.0), 0, NULL);
    ck_assert_int_eq(nb_backward(loss), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_backward", "result of 'exp'", "(3)", "modified in place");
    ck_assert_ptr_null(nb_grad(x));

    nb_tensor *m = nb_add_scalar(x, 1);
    ck_assert_ok(nb_fill(nb_narrow(nb_reshape(m, NB_SHAPE(3, 1)), 0, 1, 1), 7));
    loss = nb_sum_to(nb_mul_scalar(m, 2.0), 0, NULL);
    ck_assert_int_eq(nb_backward(loss), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "result of 'add'", "modified in place");

    nb_tensor *c = nb_clone(nb_exp(x));
    loss = nb_sum_to(nb_mul_scalar(c, 2.0), 0, NULL);
    ck_assert_ok(nb_set_flat(nb_exp(x), 0, 100.0)); /* another result, not in this graph */
    ck_assert_ok(nb_backward(loss));
    ck_assert_values(nb_grad(x), 1e-12, 2 * exp(0.5), 2 * exp(1.5), 2 * exp(2.5));
    nb_scope_end();
}
END_TEST

/* With NB_CREATE_GRAPH the leaves' gradients are their own memory: not the seed's (add passes it through) nor one
 * buffer shared by the two inputs of an add. */
START_TEST(create_graph_gradients_own_their_memory)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(3), 1, 2, 3), *seed = T_F64(NB_SHAPE(3), 10, 20, 30);
    nb_set_requires_grad(x, true);
    ck_assert_ok(nb_backward_ex(nb_add_scalar(x, 1), seed, NB_CREATE_GRAPH));
    ck_assert(!nb_shares_storage(nb_grad(x), seed));
    ck_assert_ok(nb_fill(seed, -1));
    ck_assert_values(nb_grad(x), 0, 10, 20, 30);

    nb_tensor *a = T_F64(NB_SHAPE(2), 1, 2), *b = T_F64(NB_SHAPE(2), 3, 4), *w = T_F64(NB_SHAPE(2), 5, 6);
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    ck_assert_ok(nb_backward_ex(nb_sum_to(nb_mul(nb_add(a, b), w), 0, NULL), NULL, NB_CREATE_GRAPH));
    ck_assert(!nb_shares_storage(nb_grad(a), nb_grad(b)));
    ck_assert_values(nb_grad(a), 0, 5, 6);
    ck_assert_values(nb_grad(b), 0, 5, 6);
    nb_scope_end();
}
END_TEST

/* nb_grad_of runs backward only above the requested inputs, as torch.autograd.grad: asking for an intermediate's
 * gradient leaves the graph below it alone (usable by a later backward, even one released before), and an
 * input listed twice gets its gradient twice. */
START_TEST(grad_of_stops_at_the_requested_inputs)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(2), 0.5, -1.0);
    nb_set_requires_grad(x, true);
    nb_tensor *h = nb_exp(x), *g[2];
    ck_assert_ok(nb_grad_of(nb_sum_to(nb_mul(h, h), 0, NULL), NULL, 1, &h, g, NB_BACKWARD_DEFAULT));
    ck_assert_values(g[0], 1e-12, 2 * exp(0.5), 2 * exp(-1.0));
    /* exp's graph was not run, so not released: a backward through it works */
    ck_assert_ok(nb_backward(nb_sum_to(h, 0, NULL)));
    ck_assert_values(nb_grad(x), 1e-12, exp(0.5), exp(-1.0));
    /* now it is released; the gradient with respect to h needs nothing below h */
    ck_assert_ok(nb_grad_of(nb_sum_to(nb_mul(h, h), 0, NULL), NULL, 1, &h, g, NB_BACKWARD_DEFAULT));
    ck_assert_values(g[0], 1e-12, 2 * exp(0.5), 2 * exp(-1.0));
    /* but the gradient with respect to x does */
    ck_assert_int_eq(nb_grad_of(nb_sum_to(nb_mul(h, h), 0, NULL), NULL, 1, &x, g, NB_BACKWARD_DEFAULT),
                     NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "already released", "exp");

    /* the same input twice, a leaf and a non-leaf */
    nb_tensor *y = T_F64(NB_SHAPE(2), 0.25, 2.0);
    nb_set_requires_grad(y, true);
    nb_tensor *e = nb_exp(y), *loss = nb_sum_to(nb_mul(e, e), 0, NULL);
    ck_assert_ok(nb_grad_of(loss, NULL, 2, (nb_tensor *[]){y, y}, g, NB_RETAIN_GRAPH));
    ck_assert_values(g[0], 1e-12, 2 * exp(0.5), 2 * exp(4.0));
    ck_assert_values(g[1], 1e-12, 2 * exp(0.5), 2 * exp(4.0));
    ck_assert(!nb_shares_storage(g[0], g[1]));
    ck_assert_ok(nb_grad_of(loss, NULL, 2, (nb_tensor *[]){e, e}, g, NB_BACKWARD_DEFAULT));
    ck_assert_values(g[1], 1e-12, 2 * exp(0.25), 2 * exp(2.0));
    nb_scope_end();
}
END_TEST

/* A gradient recorded with NB_CREATE_GRAPH refers back to its leaf (a cycle): freeing the leaf must still free
 * it, the graph behind it and the leaf itself. */
START_TEST(create_graph_gradient_dies_with_its_leaf)
{
    int64_t before = nb_memory_stats_get().live_tensors;
    nb_tensor *w = nb_full(NB_SHAPE(3, 2), 0.5, NB_F64), *x = nb_full(NB_SHAPE(4, 3), -0.25, NB_F64);
    nb_set_requires_grad(w, true);
    nb_scope_begin();
    nb_tensor *loss = nb_sum_to(nb_square(nb_tanh(nb_matmul(x, w))), 0, NULL);
    ck_assert_ok(nb_backward_ex(loss, NULL, NB_CREATE_GRAPH));
    nb_scope_end();
    ck_assert_ptr_nonnull(nb_grad(w));
    nb_free(w);
    nb_free(x);
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, before);
}
END_TEST

START_TEST(retained_intermediate_gradient)
{
    nb_scope_begin();
    nb_tensor *w = T_F64(NB_SHAPE(2), 1, 2);
    nb_set_requires_grad(w, true);
    nb_tensor *h = nb_mul_scalar(w, 3);
    ck_assert_ok(nb_retain_grad(h));
    ck_assert_ok(nb_backward(nb_sum_to(nb_mul(h, h), 0, NULL)));
    ck_assert_values(nb_grad(h), 0, 6, 12);
    ck_assert_values(nb_grad(w), 0, 18, 36);
    nb_scope_end();
}
END_TEST

START_TEST(grad_of_leaves_accumulated_gradients_alone)
{
    nb_scope_begin();
    nb_tensor *a = T_F64(NB_SHAPE(2), 1, 2), *b = T_F64(NB_SHAPE(2), 5, 6), *unused = nb_ones(NB_SHAPE(3), NB_F64);
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    nb_set_requires_grad(unused, true);
    nb_tensor *y = nb_sum_to(nb_mul(a, b), 0, NULL);
    nb_tensor *g[3];
    ck_assert_ok(nb_grad_of(y, NULL, 3, (nb_tensor *[]){a, b, unused}, g, 0));
    ck_assert_values(g[0], 0, 5, 6);
    ck_assert_values(g[1], 0, 1, 2);
    ck_assert_values(g[2], 0, 0, 0, 0); /* independent input: zeros */
    ck_assert_ptr_null(nb_grad(a));
    ck_assert_ptr_null(nb_grad(b));
    nb_scope_end();
}
END_TEST

/* d/dx of (d/dx x^3) = 6x, through nb_grad_of with NB_CREATE_GRAPH then backward. */
START_TEST(double_backward_scalar)
{
    nb_scope_begin();
    nb_tensor *x = nb_scalar(1.5, NB_F64);
    nb_set_requires_grad(x, true);
    nb_tensor *dy;
    ck_assert_ok(nb_grad_of(nb_pow_scalar(x, 3), NULL, 1, &x, &dy, NB_CREATE_GRAPH));
    ck_assert_close(nb_item(dy), 3 * 1.5 * 1.5, 1e-12);
    ck_assert_int_eq(nb_requires_grad(dy), 1);
    ck_assert_ok(nb_backward(dy));
    ck_assert_close(nb_item(nb_grad(x)), 6 * 1.5, 1e-12);
    nb_scope_end();
}
END_TEST

/* Hessian-vector product of f(x, y) = sum(x^2 y + x^3 / 3): H_xx = diag(2y + 2x), H_xy = diag(2x).
 * Hv for v = (vx, vy): d/dx(g . v) = (2y + 2x) vx + 2x vy. */
START_TEST(hessian_vector_product)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(3), 0.5, -1, 2), *y = T_F64(NB_SHAPE(3), 3, 0.25, -2);
    nb_tensor *vx = T_F64(NB_SHAPE(3), 1, 2, -1), *vy = T_F64(NB_SHAPE(3), 0.5, 0.5, 3);
    nb_set_requires_grad(x, true);
    nb_set_requires_grad(y, true);
    nb_tensor *f = nb_sum_to(nb_add(nb_mul(nb_mul(x, x), y), nb_div_scalar(nb_pow_scalar(x, 3), 3)), 0, NULL);
    nb_tensor *g[2];
    ck_assert_ok(nb_grad_of(f, NULL, 2, (nb_tensor *[]){x, y}, g, NB_CREATE_GRAPH));
    nb_tensor *gv = nb_sum_to(nb_add(nb_mul(g[0], vx), nb_mul(g[1], vy)), 0, NULL);
    nb_tensor *hv[2];
    ck_assert_ok(nb_grad_of(gv, NULL, 2, (nb_tensor *[]){x, y}, hv, 0));
    double X[3] = {0.5, -1, 2}, Y[3] = {3, 0.25, -2}, VX[3] = {1, 2, -1}, VY[3] = {0.5, 0.5, 3};
    for (int i = 0; i < 3; i++) {
        ck_assert_close(nb_get_flat(hv[0], i), (2 * Y[i] + 2 * X[i]) * VX[i] + 2 * X[i] * VY[i], 1e-12);
        ck_assert_close(nb_get_flat(hv[1], i), 2 * X[i] * VX[i], 1e-12);
    }
    nb_scope_end();
}
END_TEST

/* A gradient penalty: minimize |d loss/dx|^2 needs the gradient of a gradient w.r.t. the weights. */
START_TEST(gradient_penalty_reaches_weights)
{
    nb_scope_begin();
    nb_tensor *w = T_F64(NB_SHAPE(2), 0.5, -1.5), *x = T_F64(NB_SHAPE(2), 2, 3);
    nb_set_requires_grad(w, true);
    nb_set_requires_grad(x, true);
    /* loss = sum(w x^2) -> dloss/dx = 2 w x; penalty = sum((2 w x)^2) = 4 sum(w^2 x^2); d/dw = 8 w x^2 */
    nb_tensor *loss = nb_sum_to(nb_mul(w, nb_mul(x, x)), 0, NULL);
    nb_tensor *gx;
    ck_assert_ok(nb_grad_of(loss, NULL, 1, &x, &gx, NB_CREATE_GRAPH));
    ck_assert_ok(nb_backward(nb_sum_to(nb_mul(gx, gx), 0, NULL)));
    ck_assert_values(nb_grad(w), 1e-12, 8 * 0.5 * 4, 8 * -1.5 * 9);
    nb_scope_end();
}
END_TEST

/* ---- composite reference: 2-layer MLP with softmax cross-entropy (tests/reference/mlp_reference.py) ---- */
static nb_tensor *sin_values(int ndim, const int64_t *shape, double a, double b)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    double v[64];
    for (int64_t i = 0; i < n; i++) v[i] = a * sin(b * (double)i + 1);
    nb_tensor *t = nb_from_array(v, ndim, shape, NB_F64);
    nb_set_requires_grad(t, true);
    return t;
}

START_TEST(mlp_matches_reference_numbers)
{
    nb_scope_begin();
    nb_tensor *x = sin_values(NB_SHAPE(3, 4), 1.0, 0.7);
    nb_set_requires_grad(x, false);
    nb_tensor *w1 = sin_values(NB_SHAPE(4, 5), 0.5, 1.3), *b1 = sin_values(NB_SHAPE(5), 0.1, 2.1);
    nb_tensor *w2 = sin_values(NB_SHAPE(5, 3), 0.6, 0.9), *b2 = sin_values(NB_SHAPE(3), 0.2, 1.7);
    nb_tensor *labels = T_I64(NB_SHAPE(3, 1), 0, 2, 1);
    nb_tensor *h = nb_tanh(nb_add(nb_matmul(x, w1), b1));
    nb_tensor *logits = nb_add(nb_matmul(h, w2), b2);
    nb_tensor *picked = nb_gather(nb_log_softmax(logits, 1), 1, labels);
    nb_tensor *loss = nb_neg(nb_mean(picked, 0, NULL, false));
    ck_assert_tensor(loss);
    ck_assert_close(nb_item(loss), 1.16925409475243, 1e-13);
    ck_assert_ok(nb_backward(loss));
    ck_assert_values(nb_grad(w1), 1e-13, -0.0221624486566857, -0.00948915873629272, 0.0617081060854591,
                     -0.0611016592417443, 0.219911018066845, -0.0365177017404835, 0.0057646014107949,
                     0.0753002158615602, -0.075696159676617, 0.297540882219303, -0.0336981090909021,
                     0.0183071794400039, 0.0534774575196405, -0.054689573430455, 0.235232620259492,
                     -0.0150297691883903, 0.0222396049210096, 0.00650341529791017, -0.00796162625179277,
                     0.0622907813805595);
    ck_assert_values(nb_grad(b1), 1e-13, 0.00888084969665513, 0.0053185574988705, -0.00509696930829728,
                     -0.00335686832321402, -0.0368392293498346);
    ck_assert_values(nb_grad(w2), 1e-13, -0.202416597816361, -0.185790325881371, 0.388206923697732,
                     -0.16046116287058, -0.113668933966786, 0.274130096837366, 0.158623481267586,
                     0.167293229201121, -0.325916710468706, 0.20313217071184, 0.17380575519815,
                     -0.37693792590999, -0.0321619652154189, -0.0929474853499515, 0.12510945056537);
    ck_assert_values(nb_grad(b2), 1e-13, 0.0447314818458446, 0.0176120662979588, -0.0623435481438034);
    nb_scope_end();
}
END_TEST

/* The same MLP as a function of its weights: first and second order checks of the whole composite. */
static nb_tensor *mlp_loss(nb_tensor *const *p, void *ud)
{
    nb_tensor *x = ud;
    nb_tensor *h = nb_tanh(nb_add(nb_matmul(x, p[0]), p[1]));
    nb_tensor *logits = nb_add(nb_matmul(h, p[2]), p[3]);
    return nb_neg(nb_mean(nb_log_softmax(logits, 1), 0, NULL, false));
}

START_TEST(mlp_gradcheck_first_and_second_order)
{
    nb_scope_begin();
    nb_tensor *x = sin_values(NB_SHAPE(3, 4), 1.0, 0.7);
    nb_set_requires_grad(x, false);
    nb_tensor *p[4] = {sin_values(NB_SHAPE(4, 5), 0.5, 1.3), sin_values(NB_SHAPE(5), 0.1, 2.1),
                       sin_values(NB_SHAPE(5, 3), 0.6, 0.9), sin_values(NB_SHAPE(3), 0.2, 1.7)};
    ck_assert_gradcheck(mlp_loss, x, 4, p, true);
    nb_scope_end();
}
END_TEST

/* nb_gradcheck itself must catch a wrong gradient and say where: an op whose backward forgets a factor 2. */
static void bad_square_backward(nbi_tensor *out, nb_tensor *g, nb_tensor **gin) { gin[0] = nb_mul(g, nbi_in(out, 0)); }
static const nbi_op bad_square_op = {"bad_square", bad_square_backward, .derivative = "d out/d x = x (wrong)"};
static nb_tensor *bad_square(nb_tensor *const *x, void *u)
{
    (void)u;
    nb_no_grad_begin();
    nbi_tensor *out = nbi_peek(nb_mul(x[0], x[0]));
    nb_no_grad_end();
    nbi_tensor *in = nbi_peek(x[0]);
    return nbi_record(out, &bad_square_op, 1, &in, NULL, 0);
}
static nb_tensor *f_mul_self(nb_tensor *const *x, void *u) { (void)u; return nb_mul(x[0], x[0]); }
static nb_tensor *f_bad_shapes(nb_tensor *const *x, void *u)
{
    (void)u;
    return nb_matmul(x[0], nb_ones(NB_SHAPE(5, 5), NB_F64));
}

START_TEST(gradcheck_reports_mismatch_location)
{
    nb_scope_begin();
    nb_tensor *x = nbt_leaf(NB_SHAPE(2, 2), 3);
    nb_gradcheck_options tight = {1e-6, 1e-5, 1e-3};
    ck_assert_ok(nb_gradcheck(f_mul_self, NULL, 1, &x, &tight));
    ck_assert_int_eq(nb_gradcheck(bad_square, NULL, 1, &x, &tight), NB_ERR_GRADCHECK);
    ck_assert_error(NB_ERR_GRADCHECK, "nb_gradcheck", "input 0 element (0, 0)", "output element (0, 0)",
                    "analytical", "numerical");
    /* an f32 input is refused with a clear message */
    nb_tensor *f = nb_ones(NB_SHAPE(2), NB_F32);
    nb_set_requires_grad(f, true);
    ck_assert_int_eq(nb_gradcheck(f_mul_self, NULL, 1, &f, NULL), NB_ERR_DTYPE);
    ck_assert_error(NB_ERR_DTYPE, "nb_gradcheck", "f64");
    /* a failing function: its own message, once, inside gradcheck's (it was garbled) */
    ck_assert_int_eq(nb_gradcheck(f_bad_shapes, NULL, 1, &x, NULL), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_gradcheck: the function failed: nb_matmul: shapes (2, 2) and (5, 5)");
    ck_assert_ptr_null(strstr(strstr(nb_last_error(), "failed") + 1, "failed"));
    ck_assert_int_eq(nb_gradgradcheck(f_bad_shapes, NULL, 1, &x, NULL), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_gradgradcheck: the function failed: nb_matmul");
    /* options that make no finite difference */
    nb_gradcheck_options zero_step = {0, 1e-5, 1e-3};
    ck_assert_int_eq(nb_gradcheck(f_mul_self, NULL, 1, &x, &zero_step), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_gradcheck", "eps > 0", "eps 0");
    nb_scope_end();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("autograd");
    TCase *tc = tcase_create("autograd");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, chain_rule_on_scalars);
    tcase_add_test(tc, reused_values_accumulate);
    tcase_add_test(tc, leaf_gradients_accumulate_until_zeroed);
    tcase_add_test(tc, million_op_chain);
    tcase_add_test(tc, shared_dag_is_visited_once_per_node);
    tcase_add_test(tc, second_backward_needs_retain_graph);
    tcase_add_test(tc, backward_with_explicit_output_gradient);
    tcase_add_test(tc, backward_errors);
    tcase_add_test(tc, no_grad_records_nothing_and_nests);
    tcase_add_test(tc, detach_shares_data_without_history);
    tcase_add_test(tc, frozen_parameter_passes_gradient_on);
    tcase_add_test(tc, in_place_change_after_use_is_detected);
    tcase_add_test(tc, in_place_change_of_a_result_is_detected);
    tcase_add_test(tc, create_graph_gradients_own_their_memory);
    tcase_add_test(tc, grad_of_stops_at_the_requested_inputs);
    tcase_add_test(tc, create_graph_gradient_dies_with_its_leaf);
    tcase_add_test(tc, retained_intermediate_gradient);
    tcase_add_test(tc, grad_of_leaves_accumulated_gradients_alone);
    tcase_add_test(tc, double_backward_scalar);
    tcase_add_test(tc, hessian_vector_product);
    tcase_add_test(tc, gradient_penalty_reaches_weights);
    tcase_add_test(tc, mlp_matches_reference_numbers);
    tcase_add_test(tc, mlp_gradcheck_first_and_second_order);
    tcase_add_test(tc, gradcheck_reports_mismatch_location);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
