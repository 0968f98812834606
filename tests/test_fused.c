/* The fused fast paths: nb_affine (values, first and second derivatives, layouts, errors), the one-pass optimizer
 * kernels against the op path they replace (bit for bit), and the steady state of a training step of a small
 * MLP (no malloc, no leaked tensor). */
#include "helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * nb_affine
 * ---------------------------------------------------------------------------------------------- */
START_TEST(affine_values_match_matmul_plus_bias)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(2, 3), 1, 0, -1, 2, 1, 0);
    nb_tensor *w = T_F64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    nb_tensor *b = T_F64(NB_SHAPE(2), 0.5, -1);
    nb_tensor *y = nb_affine(x, w, b);
    ck_assert_shape(y, 2, 2);
    ck_assert_values(y, 1e-12, -1.5, -3, 4.5, 12);
    ck_assert_values(nb_affine(x, w, NULL), 1e-12, -2, -2, 4, 13);
    /* 1-d and 3-d inputs, and a non-contiguous x (a transposed view) */
    ck_assert_values(nb_affine(T_F64(NB_SHAPE(3), 1, 1, 1), w, b), 1e-12, 6.5, 14);
    nb_tensor *y3 = nb_affine(nb_ones(NB_SHAPE(4, 2, 3), NB_F64), w, b);
    ck_assert_shape(y3, 4, 2, 2);
    ck_assert_double_eq(nb_get_flat(y3, 7), 14);
    nb_tensor *xt = nb_transpose(T_F64(NB_SHAPE(3, 2), 1, 2, 0, 1, -1, 0), 0, 1); /* = x */
    nb_tensor *d = nb_sub(nb_affine(xt, w, b), y);
    ck_assert_double_eq(nb_item(nb_sum(nb_abs(d), 0, NULL, false)), 0);
    /* a 3-d x whose leading dims do not merge into one stride (the sliced middle dim) */
    nb_tensor *big = nbt_leaf(NB_SHAPE(2, 4, 3), 9);
    nb_tensor *xs = nb_narrow(big, 1, 1, 2);
    nb_tensor *ref = nb_add(nb_matmul(xs, nb_transpose(w, 0, 1)), b);
    ck_assert_double_le(nb_item(nb_max(nb_abs(nb_sub(nb_affine(xs, w, b), ref)))), 1e-12);
    ck_assert_str_eq(nb_grad_fn_name(nb_affine(xs, w, b)), "affine");
    /* size-1 dims among the leading ones, whose strides say nothing: a narrowed (B, 1, T, C) has stride[1] equal
     * to stride[0] and must still read batch 1 from batch 1; likewise (2, 1, 1, 2, 3) */
    nb_tensor *bt = nbt_leaf(NB_SHAPE(2, 1, 4, 3), 5);
    nb_tensor *x4 = nb_narrow(bt, 2, 0, 2);
    ref = nb_add(nb_matmul(x4, nb_transpose(w, 0, 1)), b);
    ck_assert_double_le(nb_item(nb_max(nb_abs(nb_sub(nb_affine(x4, w, b), ref)))), 1e-12);
    nb_tensor *x5 = nb_narrow(nbt_leaf(NB_SHAPE(2, 1, 1, 3, 3), 6), 3, 1, 2);
    ref = nb_add(nb_matmul(x5, nb_transpose(w, 0, 1)), b);
    ck_assert_double_le(nb_item(nb_max(nb_abs(nb_sub(nb_affine(x5, w, b), ref)))), 1e-12);
    nb_scope_end();
}
END_TEST

static nb_tensor *f_affine(nb_tensor *const *x, void *u) { (void)u; return nb_affine(x[0], x[1], x[2]); }
static nb_tensor *f_affine_nobias(nb_tensor *const *x, void *u) { (void)u; return nb_affine(x[0], x[1], NULL); }
/* Non-contiguous operands: x stored transposed, the weight a transposed view too. */
static nb_tensor *f_affine_views(nb_tensor *const *x, void *u)
{
    (void)u;
    return nb_affine(nb_transpose(x[0], 0, 1), nb_transpose(x[1], 0, 1), x[2]);
}
/* A 3-d input sliced along its middle dim, and a product so that the second derivative is not zero in x. */
static nb_tensor *f_affine_sliced_square(nb_tensor *const *x, void *u)
{
    (void)u;
    nb_tensor *y = nb_affine(nb_narrow(x[0], 1, 1, 2), x[1], x[2]);
    return nb_mul(y, y);
}

START_TEST(affine_gradients)
{
    nb_scope_begin();
    nb_tensor *a[3] = {nbt_leaf(NB_SHAPE(4, 3), 1), nbt_leaf(NB_SHAPE(2, 3), 2), nbt_leaf(NB_SHAPE(2), 3)};
    ck_assert_gradcheck(f_affine, NULL, 3, a, true);
    ck_assert_gradcheck(f_affine_nobias, NULL, 2, a, true);
    nb_tensor *v[3] = {nbt_leaf(NB_SHAPE(3), 4), a[1], a[2]};
    ck_assert_gradcheck(f_affine, NULL, 3, v, true);
    nb_tensor *t[3] = {nbt_leaf(NB_SHAPE(3, 4), 5), nbt_leaf(NB_SHAPE(3, 2), 6), a[2]};
    ck_assert_gradcheck(f_affine_views, NULL, 3, t, true);
    nb_tensor *s[3] = {nbt_leaf(NB_SHAPE(2, 3, 3), 7), a[1], a[2]};
    ck_assert_gradcheck(f_affine_sliced_square, NULL, 3, s, true);
    nb_scope_end();
}
END_TEST

START_TEST(affine_errors)
{
    nb_scope_begin();
    nb_tensor *w = nb_ones(NB_SHAPE(2, 3), NB_F32), *b = nb_ones(NB_SHAPE(2), NB_F32);
    ck_assert_ptr_null(nb_affine(nb_ones(NB_SHAPE(4, 5), NB_F32), w, b));
    ck_assert_error(NB_ERR_SHAPE, "nb_affine", "(4, 5)", "(2, 3)");
    ck_assert_ptr_null(nb_affine(nb_ones(NB_SHAPE(4, 3), NB_F32), w, nb_ones(NB_SHAPE(3), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_affine", "bias", "(3)", "(2, 3)");
    ck_assert_ptr_null(nb_affine(nb_ones(NB_SHAPE(3), NB_F32), nb_ones(NB_SHAPE(3), NB_F32), NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_affine", "weight", "(3)");
    ck_assert_ptr_null(nb_affine(nb_zeros(NB_SHAPE(4, 3), NB_I64), w, b));
    ck_assert_error(NB_ERR_DTYPE, "nb_affine", "i64");
    nb_clear_error(); /* a NULL input reports only when no earlier error is pending */
    ck_assert_ptr_null(nb_affine(NULL, w, b));
    ck_assert_error(NB_ERR_NULL, "nb_affine", "x is NULL");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * The fused cross-entropy against the composed form nll_loss(log_softmax(x)), which takes the op path.
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *targets(void) { return T_I64(NB_SHAPE(4), 2, -100, 0, 1); } /* one ignored row */

static nb_tensor *f_ce_mean(nb_tensor *const *x, void *u)
{
    (void)u;
    return nb_cross_entropy(x[0], targets(), NULL);
}
static nb_tensor *f_ce_sum_transposed(nb_tensor *const *x, void *u)
{
    (void)u;
    nb_cross_entropy_options o = nb_cross_entropy_defaults();
    o.reduction = NB_REDUCTION_SUM;
    o.ignore_index = 7; /* no row ignored */
    return nb_cross_entropy(nb_transpose(x[0], 0, 1), T_I64(NB_SHAPE(4), 2, 1, 0, 2), &o); /* stored (3, 4) */
}

START_TEST(fused_cross_entropy_matches_composed_form)
{
    nb_scope_begin();
    nb_tensor *x = nbt_leaf(NB_SHAPE(4, 3), 21);
    nb_tensor *t = targets();
    nb_tensor *fused = nb_cross_entropy(x, t, NULL);
    ck_assert_str_eq(nb_grad_fn_name(fused), "cross_entropy");
    nb_tensor *composed = nb_nll_loss(nb_log_softmax(x, 1), t, NULL);
    ck_assert_double_le(fabs(nb_item(fused) - nb_item(composed)), 1e-14);
    nb_tensor *gf, *gc;
    ck_assert_ok(nb_grad_of(fused, NULL, 1, &x, &gf, 0));
    ck_assert_ok(nb_grad_of(composed, NULL, 1, &x, &gc, 0));
    ck_assert_double_le(nb_item(nb_max(nb_abs(nb_sub(gf, gc)))), 1e-15);
    ck_assert_double_eq(nb_get_flat(gf, 3), 0); /* the ignored row */
    /* f32 and the sum reduction */
    nb_cross_entropy_options o = nb_cross_entropy_defaults();
    o.reduction = NB_REDUCTION_SUM;
    nb_tensor *x32 = nb_to_dtype(x, NB_F32);
    double fused32 = nb_item(nb_cross_entropy(x32, t, &o));
    ck_assert_double_le(fabs(fused32 - nb_item(nb_nll_loss(nb_log_softmax(x32, 1), t, &o))), 1e-5);
    /* out of range, and every row ignored (PyTorch's NaN, from the composed path) */
    ck_assert_ptr_null(nb_cross_entropy(x, T_I64(NB_SHAPE(4), 0, 1, 3, 0), NULL));
    ck_assert_error(NB_ERR_INDEX, "nb_cross_entropy", "target 3", "C = 3");
    ck_assert(isnan(nb_item(nb_cross_entropy(x, T_I64(NB_SHAPE(4), -100, -100, -100, -100), NULL))));
    nb_scope_end();
}
END_TEST

START_TEST(fused_cross_entropy_gradients)
{
    nb_scope_begin();
    nb_tensor *x[1] = {nbt_leaf(NB_SHAPE(4, 3), 22)};
    ck_assert_gradcheck(f_ce_mean, NULL, 1, x, true);
    nb_tensor *xt[1] = {nbt_leaf(NB_SHAPE(3, 4), 23)};
    ck_assert_gradcheck(f_ce_sum_transposed, NULL, 1, xt, true);
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Fused optimizer kernels. A parameter laid out with a stride of 2 (a view of a wider buffer) takes the op
 * path; a contiguous one with the same values takes the fused kernel. Both must end with the same bits.
 * ---------------------------------------------------------------------------------------------- */
#define N_ELEMS 200 /* more than a few kernel blocks, and a partial one */

typedef struct pair {
    nb_tensor *fused, *strided, *wide, *target;
    nb_param_list *lf, *ls;
} pair;

static pair pair_new(nb_dtype dt, uint64_t seed)
{
    pair p;
    nb_generator g;
    nb_generator_seed(&g, seed);
    p.wide = nb_randn(NB_SHAPE(2 * N_ELEMS), 0, 1, dt, &g);
    nb_tensor *every_other = nb_slice(p.wide, 0, 0, 2 * N_ELEMS, 2);
    p.strided = nb_detach(every_other); /* a leaf of stride 2 */
    nb_free(every_other);
    p.fused = nb_clone(p.strided);
    p.target = nb_randn(NB_SHAPE(N_ELEMS), 0, 1, dt, &g);
    ck_assert_ptr_null(nb_data(p.strided)); /* really not contiguous */
    nb_clear_error();
    ck_assert_ptr_nonnull(nb_data(p.fused));
    nb_set_requires_grad(p.strided, true);
    nb_set_requires_grad(p.fused, true);
    p.lf = nb_param_list_new();
    p.ls = nb_param_list_new();
    nb_param_list_add(p.lf, "w", p.fused, false);
    nb_param_list_add(p.ls, "w", p.strided, false);
    return p;
}

static void pair_free(pair *p)
{
    nb_param_list_free(p->lf);
    nb_param_list_free(p->ls);
    nb_free(p->fused), nb_free(p->strided), nb_free(p->wide), nb_free(p->target);
}

/* One step on w with loss sum((w - target)^2 w) (a gradient that changes with w). */
static void step(nb_optimizer *opt, nb_tensor *w, nb_tensor *target)
{
    nb_scope_begin();
    nb_optimizer_zero_grad(opt);
    ck_assert_ok(nb_backward(nb_sum(nb_mul(nb_square(nb_sub(w, target)), w), 0, NULL, false)));
    ck_assert_ok(nb_optimizer_step(opt));
    nb_scope_end();
}

static void assert_same_bits(nb_tensor *a, nb_tensor *b, const char *what)
{
    double x[N_ELEMS], y[N_ELEMS];
    ck_assert_ok(nb_to_array(a, x, N_ELEMS, NB_F64));
    ck_assert_ok(nb_to_array(b, y, N_ELEMS, NB_F64));
    for (int i = 0; i < N_ELEMS; i++)
        ck_assert_msg(memcmp(&x[i], &y[i], sizeof x[i]) == 0, "%s: element %d: fused %.17g, op path %.17g", what,
                      i, x[i], y[i]);
}

typedef nb_optimizer *(*make_fn)(nb_param_list *list, int variant);

static nb_optimizer *make_adam(nb_param_list *l, int v)
{
    nb_adam_options o = nb_adam_defaults();
    o.lr = 0.05;
    o.amsgrad = v & 1;
    if (v & 2) o.weight_decay = 0.1;
    return (v & 4) ? nb_adamw_new(l, o) : nb_adam_new(l, o);
}
static nb_optimizer *make_rmsprop(nb_param_list *l, int v)
{
    nb_rmsprop_options o = nb_rmsprop_defaults();
    o.centered = v & 1;
    if (v & 2) o.weight_decay = 0.1;
    if (v & 4) o.momentum = 0.9;
    return nb_rmsprop_new(l, o);
}
static nb_optimizer *make_sgd(nb_param_list *l, int v)
{
    nb_sgd_options o = nb_sgd_defaults();
    if (v & 1) o.momentum = 0.9;
    if (v & 2) o.weight_decay = 0.1;
    if ((v & 4) && (v & 1)) o.nesterov = true;
    else if (v & 4) o.dampening = 0; /* plain SGD again: the variant still runs */
    if ((v & 1) && !(v & 4)) o.dampening = 0.25;
    return nb_sgd_new(l, o);
}

static void check_fused(make_fn make, const char *name)
{
    for (int dt = 0; dt < 2; dt++)
        for (int v = 0; v < 8; v++) {
            pair p = pair_new(dt ? NB_F64 : NB_F32, 10 + v);
            nb_optimizer *of = make(p.lf, v), *os = make(p.ls, v);
            ck_assert_ptr_nonnull(of);
            ck_assert_ptr_nonnull(os);
            for (int s = 0; s < 5; s++) {
                step(of, p.fused, p.target);
                step(os, p.strided, p.target);
            }
            char what[64];
            snprintf(what, sizeof what, "%s variant %d %s", name, v, dt ? "f64" : "f32");
            assert_same_bits(p.fused, p.strided, what);
            nb_optimizer_free(of);
            nb_optimizer_free(os);
            pair_free(&p);
        }
}

START_TEST(fused_adam_matches_op_path) { check_fused(make_adam, "Adam"); }
END_TEST
START_TEST(fused_rmsprop_matches_op_path) { check_fused(make_rmsprop, "RMSprop"); }
END_TEST
START_TEST(fused_sgd_matches_op_path) { check_fused(make_sgd, "SGD"); }
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Large elementwise ops are split over the threads (and reductions along a kept dim 0): the same bits for 1, 2
 * and 3 threads, and the values of a plain loop.
 * ---------------------------------------------------------------------------------------------- */
START_TEST(split_elementwise_ops_do_not_depend_on_thread_count)
{
    int saved = nb_num_threads();
    nb_generator g;
    nb_generator_seed(&g, 5);
    nb_tensor *a = nb_randn(NB_SHAPE(500, 130), 0, 1, NB_F32, &g), *b = nb_randn(NB_SHAPE(130), 0, 1, NB_F32, &g);
    nb_tensor *at = nb_transpose(nb_randn(NB_SHAPE(130, 500), 0, 1, NB_F32, &g), 0, 1);
    float *ref = malloc(500 * 130 * sizeof *ref), *got = malloc(500 * 130 * sizeof *got);
    float rows[500], rows_got[500];
    for (int threads = 1; threads <= 3; threads++) {
        ck_assert_ok(nb_set_num_threads(threads));
        nb_scope_begin();
        /* a * b + tanh(a^T-like strided input), summed along dim 1 as well */
        nb_tensor *y = nb_add(nb_mul(a, b), nb_tanh(at));
        nb_tensor *r = nb_sum(y, 1, (const int[]){1}, false);
        ck_assert_ok(nb_to_array(y, threads == 1 ? ref : got, 500 * 130, NB_F32));
        ck_assert_ok(nb_to_array(r, threads == 1 ? rows : rows_got, 500, NB_F32));
        if (threads == 1) {
            for (int i = 0; i < 500 * 130; i += 997) {
                double want = nb_get_flat(a, i) * nb_get_flat(b, i % 130) + tanhf((float)nb_get_flat(at, i));
                ck_assert_double_le(fabs(ref[i] - want), 1e-5);
            }
        } else {
            ck_assert_int_eq(memcmp(ref, got, 500 * 130 * sizeof *ref), 0);
            ck_assert_int_eq(memcmp(rows, rows_got, sizeof rows), 0);
        }
        nb_scope_end();
    }
    ck_assert_ok(nb_set_num_threads(saved));
    free(ref);
    free(got);
    nb_free(a), nb_free(b), nb_free(at);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Steady state of a training step: Linear-ReLU-Linear, cross-entropy, Adam, one scope per step.
 * ---------------------------------------------------------------------------------------------- */
START_TEST(mlp_training_steps_make_no_system_allocation)
{
    nb_generator g;
    nb_generator_seed(&g, 3);
    nb_module *layers[3] = {nb_linear_new(20, 16, true, &g), nb_relu_layer_new(), nb_linear_new(16, 4, true, &g)};
    nb_module *model = nb_sequential_new(3, layers);
    nb_param_list *params = nb_module_parameters(model);
    nb_optimizer *opt = nb_adam_new(params, nb_adam_defaults());
    nb_tensor *x = nb_randn(NB_SHAPE(8, 20), 0, 1, NB_F32, &g), *y = nb_randint(NB_SHAPE(8), 0, 4, &g);
    double first = 0, last = 0;
    nb_memory_stats warm = {0};
    for (int i = 0; i < 600; i++) {
        if (i == 100) warm = nb_memory_stats_get();
        nb_scope_begin();
        nb_tensor *loss = nb_cross_entropy(nb_forward(model, x), y, NULL);
        ck_assert_tensor(loss);
        nb_optimizer_zero_grad(opt);
        ck_assert_ok(nb_backward(loss));
        ck_assert_ok(nb_optimizer_step(opt));
        if (i == 0) first = nb_item(loss);
        last = nb_item(loss);
        nb_scope_end();
    }
    nb_memory_stats after = nb_memory_stats_get();
    ck_assert_int_eq(after.system_allocs, warm.system_allocs);
    ck_assert_int_eq(after.live_tensors, warm.live_tensors);
    ck_assert_int_eq(after.live_bytes, warm.live_bytes);
    ck_assert_double_lt(last, first / 4); /* and it learns */
    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_module_free(model);
    nb_free(x), nb_free(y);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("fused");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, affine_values_match_matmul_plus_bias);
    tcase_add_test(tc, affine_gradients);
    tcase_add_test(tc, affine_errors);
    tcase_add_test(tc, fused_cross_entropy_matches_composed_form);
    tcase_add_test(tc, fused_cross_entropy_gradients);
    tcase_add_test(tc, fused_adam_matches_op_path);
    tcase_add_test(tc, fused_rmsprop_matches_op_path);
    tcase_add_test(tc, fused_sgd_matches_op_path);
    tcase_add_test(tc, split_elementwise_ops_do_not_depend_on_thread_count);
    tcase_add_test(tc, mlp_training_steps_make_no_system_allocation);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
