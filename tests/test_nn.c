/* nn modules: parameter lists, Sequential, Linear, activations, Dropout, Flatten, LayerNorm, BatchNorm1d,
 * Embedding. Values (hand numbers and PyTorch's from tests/reference/norm_reference.py), gradients, naming,
 * train/eval, errors and memory. */
#include "helpers.h"

/* a*sin(b*i + 1) for i < n as an f64 tensor of the given shape: the inputs of norm_reference.py. */
static nb_tensor *sin_tensor(int ndim, const int64_t *shape, double a, double b)
{
    nb_tensor *t = nb_empty(ndim, shape, NB_F64);
    for (int64_t i = 0; i < nb_numel(t); i++) nb_set_flat(t, i, a * sin(b * (double)i + 1));
    return t;
}

/* helpers.h's ck_assert_values and ck_assert_shape evaluate their tensor argument many times: these evaluate an
 * expression (a forward that updates running statistics or draws a mask) exactly once. */
#define ck_assert_values_of(expr, tol, ...)                                                           \
    do {                                                                                              \
        nb_tensor *ck_once_ = (expr);                                                                 \
        ck_assert_values(ck_once_, tol, __VA_ARGS__);                                                 \
    } while (0)
#define ck_assert_shape_of(expr, ...)                                                                 \
    do {                                                                                              \
        nb_tensor *ck_once_ = (expr);                                                                 \
        ck_assert_shape(ck_once_, __VA_ARGS__);                                                       \
    } while (0)

static int64_t live_tensors(void) { return nb_memory_stats_get().live_tensors; }

/* Names of a list joined by spaces, for comparing whole lists at once. */
static const char *names_of(const nb_param_list *list)
{
    static char buf[1024];
    buf[0] = '\0';
    for (int i = 0; i < list->count; i++) {
        if (i) strcat(buf, " ");
        strcat(buf, list->items[i].name);
    }
    return buf;
}

/* ------------------------------------------------------------------------------------------------
 * Linear
 * ---------------------------------------------------------------------------------------------- */
START_TEST(linear_forward_values)
{
    nb_module *m = nb_linear_new(3, 2, true, NULL);
    ck_assert_ptr_nonnull(m);
    nb_linear *l = (nb_linear *)m;
    ck_assert_int_eq(l->in_features, 3);
    ck_assert_int_eq(l->out_features, 2);
    nb_scope_begin();
    ck_assert_ok(nb_copy_(l->weight, T_F64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6)));
    ck_assert_ok(nb_copy_(l->bias, T_F64(NB_SHAPE(2), 0.5, -1)));
    nb_tensor *y = nb_forward(m, T_F32(NB_SHAPE(2, 3), 1, 0, -1, 2, 1, 0));
    ck_assert_shape(y, 2, 2);
    ck_assert_values(y, 1e-6, -1.5, -3, 4.5, 12);
    ck_assert_str_eq(nb_grad_fn_name(y), "affine");
    /* (in) -> (out) and (..., in) -> (..., out) */
    nb_tensor *v = nb_forward(m, T_F32(NB_SHAPE(3), 1, 1, 1));
    ck_assert_shape(v, 2);
    ck_assert_values(v, 1e-6, 6.5, 14);
    nb_tensor *b = nb_forward(m, nb_ones(NB_SHAPE(4, 2, 3), NB_F32));
    ck_assert_shape(b, 4, 2, 2);
    ck_assert_values_of(nb_sum(b, 2, (const int[]){0, 1}, false), 1e-5, 8 * 6.5, 8 * 14);
    /* the input's last dim must be in_features */
    ck_assert_ptr_null(nb_forward(m, nb_zeros(NB_SHAPE(3, 5), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_linear", "(3, 5)", "in_features 3");
    ck_assert_ptr_null(nb_forward(m, nb_scalar(1, NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_linear", "()");
    /* NULL propagates without replacing the first message */
    nb_clear_error();
    ck_assert_ptr_null(nb_forward(m, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_forward", "input");
    nb_clear_error();
    ck_assert_ptr_null(nb_forward(NULL, v));
    ck_assert_error(NB_ERR_NULL, "nb_forward", "module");
    nb_scope_end();
    nb_module_free(m);

    m = nb_linear_new(3, 2, false, NULL);
    l = (nb_linear *)m;
    ck_assert_ptr_null(l->bias);
    nb_scope_begin();
    ck_assert_ok(nb_copy_(l->weight, T_F64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6)));
    ck_assert_values_of(nb_forward(m, T_F32(NB_SHAPE(3), 1, 1, 1)), 1e-6, 6, 15);
    nb_param_list *p = nb_module_parameters(m);
    ck_assert_str_eq(names_of(p), "weight");
    nb_param_list_free(p);
    nb_scope_end();
    nb_module_free(m);

    ck_assert_ptr_null(nb_linear_new(-1, 2, true, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_linear_new", "in_features", "-1");
}
END_TEST

START_TEST(linear_default_init)
{
    nb_generator g1, g2, g3;
    nb_generator_seed(&g1, 7);
    nb_generator_seed(&g2, 7);
    nb_generator_seed(&g3, 8);
    nb_linear *a = (nb_linear *)nb_linear_new(16, 8, true, &g1);
    nb_linear *b = (nb_linear *)nb_linear_new(16, 8, true, &g2);
    nb_linear *c = (nb_linear *)nb_linear_new(16, 8, true, &g3);
    ck_assert_ptr_nonnull(a);
    ck_assert_shape(a->weight, 8, 16);
    ck_assert_shape(a->bias, 8);
    ck_assert_int_eq(nb_dtype_of(a->weight), NB_F32);
    ck_assert(nb_requires_grad(a->weight) && nb_requires_grad(a->bias));
    ck_assert(nb_is_leaf(a->weight));
    double bound = 1.0 / sqrt(16.0), wmax = 0, bmax = 0;
    int differ = 0;
    for (int64_t i = 0; i < 128; i++) {
        double w = nb_get_flat(a->weight, i);
        ck_assert(fabs(w) <= bound);
        wmax = fmax(wmax, fabs(w));
        ck_assert(w == nb_get_flat(b->weight, i));
        differ += w != nb_get_flat(c->weight, i);
    }
    for (int64_t i = 0; i < 8; i++) {
        double v = nb_get_flat(a->bias, i);
        ck_assert(fabs(v) <= bound);
        bmax = fmax(bmax, fabs(v));
        ck_assert(v == nb_get_flat(b->bias, i));
    }
    ck_assert_msg(wmax > 0.9 * bound, "weights use the whole range: max |w| %g of %g", wmax, bound);
    ck_assert(bmax > 0);
    ck_assert_int_gt(differ, 120);
    /* a NULL generator means the thread's default one */
    nb_manual_seed(7);
    nb_linear *d = (nb_linear *)nb_linear_new(16, 8, true, NULL);
    for (int64_t i = 0; i < 128; i++) ck_assert(nb_get_flat(d->weight, i) == nb_get_flat(a->weight, i));
    nb_module_free(&a->base);
    nb_module_free(&b->base);
    nb_module_free(&c->base);
    nb_module_free(&d->base);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Activations, Flatten
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *run_layer(nb_module *m, nb_tensor *x)
{
    ck_assert_msg(m != NULL, "constructor failed: %s", nb_last_error());
    nb_tensor *y = nb_forward(m, x);
    nb_module_free(m);
    return y;
}

START_TEST(activation_layers)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(4), -2, -0.5, 0, 1);
    ck_assert_values_of(run_layer(nb_relu_layer_new(), x), 0, 0, 0, 0, 1);
    ck_assert_values_of(run_layer(nb_tanh_layer_new(), x), 1e-12, tanh(-2), tanh(-0.5), 0, tanh(1));
    ck_assert_values_of(run_layer(nb_sigmoid_layer_new(), x), 1e-12, 1 / (1 + exp(2)), 1 / (1 + exp(0.5)), 0.5,
                     1 / (1 + exp(-1)));
    ck_assert_values_of(run_layer(nb_gelu_layer_new(false), x), 1e-7, -0.0455002639, -0.1542687694, 0, 0.8413447461);
    ck_assert_values_of(run_layer(nb_gelu_layer_new(true), x), 1e-7, -0.0454022884, -0.1542859972, 0, 0.8411919906);
    ck_assert_values_of(run_layer(nb_leaky_relu_layer_new(0.1), x), 1e-12, -0.2, -0.05, 0, 1);
    nb_tensor *m = T_F64(NB_SHAPE(2, 2), 0, log(2.0), log(3.0), 0);
    ck_assert_values_of(run_layer(nb_softmax_layer_new(1), m), 1e-12, 1.0 / 3, 2.0 / 3, 0.75, 0.25);
    ck_assert_values_of(run_layer(nb_softmax_layer_new(0), m), 1e-12, 0.25, 2.0 / 3, 0.75, 1.0 / 3);
    ck_assert_values_of(run_layer(nb_log_softmax_layer_new(-1), m), 1e-12, log(1.0 / 3), log(2.0 / 3), log(0.75),
                     log(0.25));
    /* errors come from the op, naming it */
    ck_assert_ptr_null(run_layer(nb_softmax_layer_new(2), m));
    ck_assert_error(NB_ERR_ARG, "nb_softmax");
    ck_assert_ptr_null(nb_leaky_relu_layer_new(NAN));
    ck_assert_error(NB_ERR_VALUE, "nb_leaky_relu_layer_new", "NaN");
    /* the type names are PyTorch's */
    nb_module *r = nb_relu_layer_new(), *s = nb_log_softmax_layer_new(1);
    ck_assert_str_eq(r->type->name, "ReLU");
    ck_assert_str_eq(s->type->name, "LogSoftmax");
    nb_param_list *p = nb_module_parameters(r);
    ck_assert_int_eq(p->count, 0);
    nb_param_list_free(p);
    nb_module_free(r);
    nb_module_free(s);
    nb_scope_end();
}
END_TEST

START_TEST(flatten_layer)
{
    nb_scope_begin();
    nb_tensor *x = nb_arange(0, 24, 1, NB_F32);
    x = nb_reshape(x, NB_SHAPE(2, 3, 4));
    nb_tensor *y = run_layer(nb_flatten_layer_new(1, -1), x);
    ck_assert_shape(y, 2, 12);
    ck_assert_close(nb_get(y, (const int64_t[]){1, 5}), 17, 0);
    ck_assert_shape_of(run_layer(nb_flatten_layer_new(0, 1), x), 6, 4);
    ck_assert_shape_of(run_layer(nb_flatten_layer_new(0, -1), x), 24);
    ck_assert_ptr_null(run_layer(nb_flatten_layer_new(1, 5), x));
    ck_assert_error(NB_ERR_ARG, "nb_flatten");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Dropout
 * ---------------------------------------------------------------------------------------------- */
START_TEST(dropout_training_masks_and_scales)
{
    nb_generator g;
    nb_generator_seed(&g, 42);
    nb_module *d = nb_dropout_new(0.5, &g);
    ck_assert_ptr_nonnull(d);
    ck_assert(d->training);
    nb_scope_begin();
    nb_tensor *x = nb_ones(NB_SHAPE(100, 100), NB_F32);
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_forward(d, x);
    ck_assert_shape(y, 100, 100);
    int64_t zeros = 0;
    for (int64_t i = 0; i < 10000; i++) {
        double v = nb_get_flat(y, i);
        ck_assert_msg(v == 0 || v == 2, "element %lld = %g, expected 0 or 1/(1-p) = 2", (long long)i, v);
        zeros += v == 0;
    }
    ck_assert_msg(zeros > 4700 && zeros < 5300, "%lld of 10000 dropped at p = 0.5", (long long)zeros);
    /* the gradient is the mask times the scale */
    ck_assert_ok(nb_backward(nb_sum(y, 0, NULL, false)));
    for (int64_t i = 0; i < 10000; i += 97) ck_assert(nb_get_flat(nb_grad(x), i) == nb_get_flat(y, i));

    /* the mean is preserved on average */
    nb_module *d2 = nb_dropout_new(0.2, &g);
    nb_tensor *z = nb_forward(d2, nb_randn(NB_SHAPE(200, 200), 3.0, 1.0, NB_F64, &g));
    ck_assert_close(nb_item(nb_mean(z, 0, NULL, false)), 3.0, 0.06);
    nb_module_free(d2);
    nb_scope_end();
    nb_module_free(d);
}
END_TEST

START_TEST(dropout_reproducible_and_eval)
{
    nb_generator g1, g2, g3;
    nb_generator_seed(&g1, 5);
    nb_generator_seed(&g2, 5);
    nb_generator_seed(&g3, 6);
    nb_module *a = nb_dropout_new(0.3, &g1), *b = nb_dropout_new(0.3, &g2), *c = nb_dropout_new(0.3, &g3);
    nb_scope_begin();
    nb_tensor *x = nb_ones(NB_SHAPE(64), NB_F64);
    nb_tensor *ya = nb_forward(a, x), *yb = nb_forward(b, x), *yc = nb_forward(c, x);
    int differ = 0;
    for (int64_t i = 0; i < 64; i++) {
        ck_assert(nb_get_flat(ya, i) == nb_get_flat(yb, i));
        differ += nb_get_flat(ya, i) != nb_get_flat(yc, i);
        ck_assert(nb_get_flat(ya, i) == 0 || fabs(nb_get_flat(ya, i) - 1 / 0.7) < 1e-12);
    }
    ck_assert_int_gt(differ, 0);
    /* NULL generator: the thread's default at forward time */
    nb_module *n = nb_dropout_new(0.3, NULL);
    nb_manual_seed(11);
    nb_tensor *n1 = nb_forward(n, x);
    nb_manual_seed(11);
    nb_tensor *n2 = nb_forward(n, x);
    for (int64_t i = 0; i < 64; i++) ck_assert(nb_get_flat(n1, i) == nb_get_flat(n2, i));
    nb_module_free(n);

    /* eval: identity, as a new handle through which gradients pass */
    nb_module_train(a, false);
    ck_assert(!a->training);
    nb_tensor *w = T_F64(NB_SHAPE(3), 1, -2, 3);
    nb_set_requires_grad(w, true);
    nb_tensor *e = nb_forward(a, w);
    ck_assert_ptr_ne(e, w);
    ck_assert_values(e, 0, 1, -2, 3);
    ck_assert_ok(nb_backward(nb_sum(nb_mul_scalar(e, 2), 0, NULL, false)));
    ck_assert_values(nb_grad(w), 0, 2, 2, 2);
    nb_module_train(a, true);
    ck_assert(a->training);
    nb_scope_end();
    nb_module_free(a);
    nb_module_free(b);
    nb_module_free(c);
}
END_TEST

START_TEST(dropout_edge_probabilities)
{
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(4), 1, -2, 3, 4);
    nb_set_requires_grad(x, true);
    nb_module *keep = nb_dropout_new(0.0, NULL), *drop = nb_dropout_new(1.0, NULL);
    ck_assert_values_of(nb_forward(keep, x), 0, 1, -2, 3, 4);
    nb_tensor *z = nb_forward(drop, x);
    ck_assert_values(z, 0, 0, 0, 0, 0);
    ck_assert_ok(nb_backward(nb_sum(z, 0, NULL, false)));
    ck_assert_values(nb_grad(x), 0, 0, 0, 0, 0);
    nb_module_free(keep);
    nb_module_free(drop);
    ck_assert_ptr_null(nb_dropout_new(1.5, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_dropout_new", "[0, 1]", "1.5");
    ck_assert_ptr_null(nb_dropout_new(-0.1, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_dropout_new", "-0.1");
    ck_assert_ptr_null(nb_dropout_new(NAN, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_dropout_new", "nan");
    /* integer input in training */
    nb_module *d = nb_dropout_new(0.5, NULL);
    ck_assert_ptr_null(nb_forward(d, T_I64(NB_SHAPE(2), 1, 2)));
    ck_assert_error(NB_ERR_DTYPE, "nb_dropout", "i64");
    /* non-finite inputs: dropping multiplies by 0, so NaN and infinities become NaN where dropped, as in
     * PyTorch; kept ones are scaled (inf stays inf) */
    nb_tensor *bad = nb_full(NB_SHAPE(64), INFINITY, NB_F32);
    nb_set_flat(bad, 0, NAN);
    nb_tensor *y = nb_forward(d, bad);
    int dropped = 0, kept = 0;
    for (int64_t i = 0; i < 64; i++) {
        double v = nb_get_flat(y, i);
        if (i > 0 && isinf(v)) kept++;
        else if (isnan(v)) dropped++;
    }
    ck_assert_int_eq(kept + dropped, 64);
    ck_assert_int_gt(kept, 10);
    ck_assert_int_gt(dropped, 10);
    nb_module_free(d);
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * LayerNorm, BatchNorm1d against PyTorch (tests/reference/norm_reference.py)
 * ---------------------------------------------------------------------------------------------- */
START_TEST(layer_norm_reference)
{
    nb_module *ln = nb_layer_norm_new(NB_SHAPE(4), 1e-5, true);
    ck_assert_ptr_nonnull(ln);
    nb_layer_norm *l = (nb_layer_norm *)ln;
    ck_assert_values(l->weight, 0, 1, 1, 1, 1);
    ck_assert_values(l->bias, 0, 0, 0, 0, 0);
    nb_scope_begin();
    ck_assert_ok(nb_copy_(l->weight, sin_tensor(NB_SHAPE(4), 1.5, 0.4)));
    ck_assert_ok(nb_copy_(l->bias, sin_tensor(NB_SHAPE(4), 0.5, 1.1)));
    nb_tensor *x = sin_tensor(NB_SHAPE(2, 3, 4), 2.0, 0.9);
    nb_tensor *y = nb_forward(ln, x);
    ck_assert_shape(y, 2, 3, 4);
    ck_assert_values(y, 1e-5, 1.379441713, 1.819885133, -0.187496985, -2.386782721, -0.9954420502, -0.6373501555,
                     0.5765780211, 1.276694675, 2.120027961, 1.19759573, -0.9517740011, -1.953291259, -1.502101059,
                     0.03783625081, 1.193943323, 0.6970116715, 2.482581073, 0.2020398712, -1.587654363,
                     -0.9569360835, -1.077989533, 1.760665316, 1.543896957, -1.414482123);
    ck_assert_ptr_null(nb_forward(ln, nb_zeros(NB_SHAPE(2, 3, 5), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_layer_norm", "(2, 3, 5)", "(4)");
    nb_param_list *p = nb_module_parameters(ln);
    ck_assert_str_eq(names_of(p), "weight bias");
    nb_param_list_free(p);

    nb_module *ln2 = nb_layer_norm_new(NB_SHAPE(3, 4), 1e-3, true);
    ck_assert_values_of(nb_forward(ln2, x), 1e-5, 1.080284567, 1.223081655, 0.390359045, -0.7876953925, -1.419553546,
                     -1.027037761, 0.09280384044, 1.092497461, 1.215494899, 0.3687141453, -0.8070180075,
                     -1.421930906, -1.213285246, 0.007976628905, 1.080299235, 1.192170203, 0.2589278133,
                     -1.013168698, -1.661422053, -1.195247036, 0.03256439324, 1.092829024, 1.183159722,
                     0.2351960148);
    ck_assert_ptr_null(nb_forward(ln2, nb_zeros(NB_SHAPE(4), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_layer_norm", "(4)", "(3, 4)");
    nb_module_free(ln2);
    /* without affine parameters: plain normalization, nothing to collect */
    nb_module *bare = nb_layer_norm_new(NB_SHAPE(2), 0, false);
    ck_assert_ptr_null(((nb_layer_norm *)bare)->weight);
    ck_assert_values_of(nb_forward(bare, T_F64(NB_SHAPE(2), 1, 3)), 1e-12, -1, 1);
    p = nb_module_parameters(bare);
    ck_assert_int_eq(p->count, 0);
    nb_param_list_free(p);
    nb_module_free(bare);
    nb_scope_end();
    nb_module_free(ln);

    ck_assert_ptr_null(nb_layer_norm_new(0, NULL, 1e-5, true));
    ck_assert_error(NB_ERR_ARG, "nb_layer_norm_new", "dims");
    ck_assert_ptr_null(nb_layer_norm_new(NB_SHAPE(3, 0), 1e-5, true));
    ck_assert_error(NB_ERR_ARG, "nb_layer_norm_new", "(3, 0)");
    ck_assert_ptr_null(nb_layer_norm_new(NB_SHAPE(3), -1, true));
    ck_assert_error(NB_ERR_ARG, "nb_layer_norm_new", "eps", "-1");
}
END_TEST

START_TEST(batch_norm_reference)
{
    nb_module *m = nb_batch_norm1d_new(3, 1e-5, 0.1, true);
    ck_assert_ptr_nonnull(m);
    nb_batch_norm1d *bn = (nb_batch_norm1d *)m;
    ck_assert_values(bn->running_mean, 0, 0, 0, 0);
    ck_assert_values(bn->running_var, 0, 1, 1, 1);
    ck_assert_int_eq(nb_ndim(bn->num_batches_tracked), 0);
    ck_assert_int_eq(nb_dtype_of(bn->num_batches_tracked), NB_I64);
    nb_scope_begin();
    ck_assert_ok(nb_copy_(bn->weight, sin_tensor(NB_SHAPE(3), 1.2, 0.7)));
    ck_assert_ok(nb_copy_(bn->bias, sin_tensor(NB_SHAPE(3), 0.3, 1.9)));
    nb_tensor *x1 = sin_tensor(NB_SHAPE(4, 3), 1.0, 0.8);
    nb_tensor *x2 = nb_add_scalar(sin_tensor(NB_SHAPE(5, 3), 3.0, 0.35), 1.0);
    nb_tensor *x3 = sin_tensor(NB_SHAPE(2, 3), 2.0, 1.3);
    ck_assert_values_of(nb_forward(m, x1), 1e-5, 1.174235817, 1.431367605, 0.249693807, -0.5814868327, -1.83829592,
                     -1.389848831, -0.916080474, 0.2579140543, 0.6758148289, 1.333096672, 0.436113456,
                     -0.7310573355);
    ck_assert_values_of(nb_forward(m, x2), 1e-5, 1.339958514, 1.693789384, 0.9631474095, 1.399851849, 1.22348166,
                     0.2710199198, 0.2960131081, -0.3099666773, -0.8562545491, -0.8623566253, -1.365657945,
                     -1.285925337, -0.9112603686, -0.882772428, -0.5862343564);
    ck_assert_values(bn->running_mean, 1e-6, 0.1263548504, 0.1006359665, 0.06582081908);
    ck_assert_values(bn->running_var, 1e-6, 1.531204653, 1.513476072, 1.447888801);
    ck_assert_values(bn->num_batches_tracked, 0, 2);
    /* eval uses the running statistics and leaves them alone; a batch of one is fine there */
    nb_module_train(m, false);
    ck_assert_values_of(nb_forward(m, x3), 1e-5, 1.52265205, 1.417057756, -0.9393671479, -1.454074843, -0.1863126025,
                     0.9205202554);
    ck_assert_values_of(nb_forward(m, nb_narrow(x3, 0, 0, 1)), 1e-5, 1.52265205, 1.417057756, -0.9393671479);
    ck_assert_values(bn->running_mean, 1e-6, 0.1263548504, 0.1006359665, 0.06582081908);
    ck_assert_values(bn->num_batches_tracked, 0, 2);
    nb_module_train(m, true);
    /* one value per channel cannot be normalized in training (PyTorch's rule) */
    ck_assert_ptr_null(nb_forward(m, nb_narrow(x3, 0, 0, 1)));
    ck_assert_error(NB_ERR_SHAPE, "nb_batch_norm1d", "more than 1 value per channel when training", "(1, 3)");
    ck_assert_ptr_null(nb_forward(m, nb_zeros(NB_SHAPE(1, 3, 1), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_batch_norm1d", "more than 1 value per channel", "(1, 3, 1)");
    ck_assert_values(bn->num_batches_tracked, 0, 2);
    /* an empty batch: an empty output, counted, the statistics kept (torch.nn.BatchNorm1d 1.13) */
    nb_tensor *empty = nb_forward(m, nb_zeros(NB_SHAPE(0, 3), NB_F32));
    ck_assert_tensor(empty);
    ck_assert_shape(empty, 0, 3);
    ck_assert_shape(nb_forward(m, nb_zeros(NB_SHAPE(0, 3, 5), NB_F32)), 0, 3, 5);
    ck_assert_values(bn->running_mean, 1e-6, 0.1263548504, 0.1006359665, 0.06582081908);
    ck_assert_values(bn->running_var, 1e-6, 1.531204653, 1.513476072, 1.447888801);
    ck_assert_values(bn->num_batches_tracked, 0, 4);
    ck_assert_ptr_null(nb_forward(m, nb_zeros(NB_SHAPE(4, 5), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_batch_norm1d", "(N, 3)", "(4, 5)");
    ck_assert_ptr_null(nb_forward(m, nb_zeros(NB_SHAPE(4, 3, 2, 2), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_batch_norm1d", "(4, 3, 2, 2)");
    /* parameters and buffers */
    nb_param_list *p = nb_module_parameters(m);
    ck_assert_str_eq(names_of(p), "weight bias running_mean running_var num_batches_tracked");
    ck_assert(!p->items[0].is_buffer && !p->items[1].is_buffer);
    ck_assert(p->items[2].is_buffer && p->items[3].is_buffer && p->items[4].is_buffer);
    ck_assert_int_eq(nb_param_list_numel(p, false), 6);
    ck_assert(!nb_requires_grad(bn->running_mean));
    nb_param_list_free(p);
    nb_scope_end();
    nb_module_free(m);

    ck_assert_ptr_null(nb_batch_norm1d_new(0, 1e-5, 0.1, true));
    ck_assert_error(NB_ERR_ARG, "nb_batch_norm1d_new", "num_features", "0");
    ck_assert_ptr_null(nb_batch_norm1d_new(3, 1e-5, 1.5, true));
    ck_assert_error(NB_ERR_ARG, "nb_batch_norm1d_new", "momentum", "1.5");
}
END_TEST

START_TEST(batch_norm_3d_reference)
{
    nb_module *m = nb_batch_norm1d_new(3, 1e-5, 0.3, false);
    nb_batch_norm1d *bn = (nb_batch_norm1d *)m;
    ck_assert_ptr_null(bn->weight);
    nb_scope_begin();
    nb_tensor *x = sin_tensor(NB_SHAPE(2, 3, 4), 1.7, 0.45);
    ck_assert_values_of(nb_forward(m, x), 1e-5, 0.3318076113, 0.8733936995, 0.7071926328, -0.1337039933, 0.4412816334,
                     -0.3431734455, -1.089497687, -1.64909361, -0.9039147897, -0.6838347431, 0.3608092137,
                     2.022022415, -2.264081989, -0.7586673933, 0.3639128693, 0.8801465628, 1.513473938, 1.086586255,
                     0.413155968, -0.3727330517, 1.069734243, -0.2944365538, -0.9115748763, -0.6588049083);
    ck_assert_values(bn->running_mean, 1e-6, 0.3818937135, 0.04369836087, -0.4017504317);
    ck_assert_values(bn->running_var, 1e-6, 0.7772683491, 1.016254652, 0.7514315797);
    nb_module_train(m, false);
    ck_assert_values_of(nb_forward(m, nb_narrow(x, 0, 0, 1)), 1e-5, 1.18939046, 1.481021043, 1.391525919,
                     0.9387240872, 0.5215571296, -0.2258012071, -0.9368319073, -1.469964638, -1.485278227,
                     -1.386943738, -0.9201838886, -0.1779332693);
    nb_param_list *p = nb_module_parameters(m);
    ck_assert_str_eq(names_of(p), "running_mean running_var num_batches_tracked");
    ck_assert_int_eq(nb_param_list_numel(p, false), 0);
    nb_param_list_free(p);
    nb_scope_end();
    nb_module_free(m);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Embedding
 * ---------------------------------------------------------------------------------------------- */
START_TEST(embedding_layer)
{
    nb_generator g;
    nb_generator_seed(&g, 3);
    nb_module *m = nb_embedding_layer_new(5, 3, &g);
    ck_assert_ptr_nonnull(m);
    nb_embedding_layer *e = (nb_embedding_layer *)m;
    ck_assert_shape(e->weight, 5, 3);
    ck_assert(nb_requires_grad(e->weight));
    /* N(0, 1) from the generator, in row-major order */
    nb_generator_seed(&g, 3);
    for (int64_t i = 0; i < 15; i++) ck_assert_close(nb_get_flat(e->weight, i), (float)nb_random_normal(&g), 0);
    nb_scope_begin();
    nb_tensor *y = nb_forward(m, T_I64(NB_SHAPE(2, 2), 4, 0, 4, 1));
    ck_assert_shape(y, 2, 2, 3);
    for (int64_t j = 0; j < 3; j++) {
        ck_assert(nb_get(y, (const int64_t[]){0, 0, j}) == nb_get(e->weight, (const int64_t[]){4, j}));
        ck_assert(nb_get(y, (const int64_t[]){1, 1, j}) == nb_get(e->weight, (const int64_t[]){1, j}));
    }
    /* repeated rows accumulate their gradients */
    ck_assert_ok(nb_backward(nb_sum(y, 0, NULL, false)));
    ck_assert_values(nb_grad(e->weight), 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 2, 2, 2);
    ck_assert_ptr_null(nb_forward(m, T_F32(NB_SHAPE(2), 1, 2)));
    ck_assert_error(NB_ERR_DTYPE, "nb_embedding_layer", "i64", "f32");
    ck_assert_ptr_null(nb_forward(m, T_I64(NB_SHAPE(2), 1, 5)));
    ck_assert_error(NB_ERR_INDEX, "nb_embedding", "5");
    nb_param_list *p = nb_module_parameters(m);
    ck_assert_str_eq(names_of(p), "weight");
    nb_param_list_free(p);
    nb_scope_end();
    nb_module_free(m);
    ck_assert_ptr_null(nb_embedding_layer_new(-2, 3, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_embedding_layer_new", "num_embeddings", "-2");
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Gradient checks: each layer's forward as a function of its input and of its parameters (swapped for f64
 * leaves for the duration of the call).
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *f_linear(nb_tensor *const *x, void *ud)
{
    nb_linear *l = ud;
    nb_tensor *w = l->weight, *b = l->bias;
    l->weight = x[1];
    l->bias = x[2];
    nb_tensor *y = nb_forward(&l->base, x[0]);
    l->weight = w;
    l->bias = b;
    return y;
}

static nb_tensor *f_linear_transposed(nb_tensor *const *x, void *ud)
{
    nb_tensor *in[3] = {nb_transpose(x[0], 0, 1), x[1], x[2]};
    return f_linear(in, ud);
}

static nb_tensor *f_layer_norm(nb_tensor *const *x, void *ud)
{
    nb_layer_norm *l = ud;
    nb_tensor *w = l->weight, *b = l->bias;
    l->weight = x[1];
    l->bias = x[2];
    nb_tensor *y = nb_forward(&l->base, x[0]);
    l->weight = w;
    l->bias = b;
    return y;
}

static nb_tensor *f_batch_norm(nb_tensor *const *x, void *ud)
{
    nb_batch_norm1d *bn = ud;
    nb_tensor *w = bn->weight, *b = bn->bias;
    bn->weight = x[1];
    bn->bias = x[2];
    nb_tensor *y = nb_forward(&bn->base, x[0]);
    bn->weight = w;
    bn->bias = b;
    return y;
}

static nb_tensor *f_embedding(nb_tensor *const *x, void *ud)
{
    nb_embedding_layer *e = ud;
    nb_tensor *w = e->weight;
    e->weight = x[0];
    nb_tensor *idx = T_I64(NB_SHAPE(2, 2), 3, 0, 3, 1);
    nb_tensor *y = nb_forward(&e->base, idx);
    e->weight = w;
    nb_free(idx);
    return y;
}

START_TEST(layer_gradients)
{
    nb_module *lin = nb_linear_new(3, 2, true, NULL);
    nb_module *ln = nb_layer_norm_new(NB_SHAPE(4), 1e-5, true);
    nb_module *ln2 = nb_layer_norm_new(NB_SHAPE(2, 2), 1e-5, true);
    nb_module *bn = nb_batch_norm1d_new(3, 1e-5, 0.1, true);
    nb_module *emb = nb_embedding_layer_new(4, 3, NULL);
    nb_scope_begin();
    nb_tensor *xl[3] = {nbt_leaf(NB_SHAPE(4, 3), 1), nbt_leaf(NB_SHAPE(2, 3), 2), nbt_leaf(NB_SHAPE(2), 3)};
    ck_assert_gradcheck(f_linear, lin, 3, xl, true);
    nb_tensor *xt[3] = {nbt_leaf(NB_SHAPE(3, 4), 4), xl[1], xl[2]}; /* a non-contiguous input */
    ck_assert_gradcheck(f_linear_transposed, lin, 3, xt, true);
    nb_tensor *xn[3] = {nbt_leaf(NB_SHAPE(3, 4), 5), nbt_leaf(NB_SHAPE(4), 6), nbt_leaf(NB_SHAPE(4), 7)};
    ck_assert_gradcheck(f_layer_norm, ln, 3, xn, true);
    nb_tensor *xn2[3] = {nbt_leaf(NB_SHAPE(2, 2, 2), 8), nbt_leaf(NB_SHAPE(2, 2), 9), nbt_leaf(NB_SHAPE(2, 2), 10)};
    ck_assert_gradcheck(f_layer_norm, ln2, 3, xn2, true);
    nb_tensor *xb[3] = {nbt_leaf(NB_SHAPE(4, 3), 11), nbt_leaf(NB_SHAPE(3), 12), nbt_leaf(NB_SHAPE(3), 13)};
    ck_assert_gradcheck(f_batch_norm, bn, 3, xb, true);
    nb_tensor *xb3[3] = {nbt_leaf(NB_SHAPE(2, 3, 2), 14), xb[1], xb[2]};
    ck_assert_gradcheck(f_batch_norm, bn, 3, xb3, true);
    nb_module_train(bn, false);
    ck_assert_gradcheck(f_batch_norm, bn, 3, xb3, false);
    nb_tensor *xe[1] = {nbt_leaf(NB_SHAPE(4, 3), 15)};
    ck_assert_gradcheck(f_embedding, emb, 1, xe, false);
    nb_scope_end();
    nb_module_free(lin);
    nb_module_free(ln);
    nb_module_free(ln2);
    nb_module_free(bn);
    nb_module_free(emb);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Sequential and the module machinery
 * ---------------------------------------------------------------------------------------------- */
START_TEST(sequential_naming_and_forward)
{
    nb_generator g;
    nb_generator_seed(&g, 1);
    nb_module *inner = nb_sequential_new(2, (nb_module *[]){nb_relu_layer_new(), nb_linear_new(3, 2, true, &g)});
    nb_module *seq = nb_sequential_new(2, (nb_module *[]){nb_linear_new(4, 3, true, &g), inner});
    ck_assert_ptr_nonnull(seq);
    ck_assert_str_eq(seq->type->name, "Sequential");
    nb_param_list *p = nb_module_parameters(seq);
    ck_assert_str_eq(names_of(p), "0.weight 0.bias 1.1.weight 1.1.bias");
    ck_assert_int_eq(nb_param_list_numel(p, false), 12 + 3 + 6 + 2);
    nb_param_list_free(p);
    p = nb_param_list_new();
    ck_assert_ok(nb_module_collect(seq, "model", p));
    ck_assert_str_eq(names_of(p), "model.0.weight model.0.bias model.1.1.weight model.1.1.bias");
    /* the forward is the composition of the children's */
    nb_scope_begin();
    nb_tensor *x = nbt_leaf(NB_SHAPE(2, 4), 9);
    nb_tensor *y = nb_forward(seq, x);
    nb_linear *l0 = (nb_linear *)nb_sequential_get(seq, 0);
    nb_linear *l1 = (nb_linear *)nb_sequential_get(inner, -1);
    nb_tensor *h = nb_relu(nb_add(nb_matmul(x, nb_transpose(l0->weight, 0, 1)), l0->bias));
    nb_tensor *want = nb_add(nb_matmul(h, nb_transpose(l1->weight, 0, 1)), l1->bias);
    ck_assert_shape(y, 2, 2);
    for (int64_t i = 0; i < 4; i++) ck_assert_close(nb_get_flat(y, i), nb_get_flat(want, i), 1e-12);
    ck_assert_ok(nb_backward(nb_sum(y, 0, NULL, false)));
    ck_assert_ptr_nonnull(nb_grad(nb_param_list_find(p, "model.0.weight")));
    /* a failing child stops the chain, its message intact */
    ck_assert_ptr_null(nb_forward(seq, nb_zeros(NB_SHAPE(2, 5), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_linear", "(2, 5)", "in_features 4");
    nb_scope_end();
    nb_param_list_free(p);
    nb_module_free(seq);
}
END_TEST

START_TEST(sequential_get_set_append)
{
    int64_t before = live_tensors();
    nb_module *seq = nb_sequential_new(0, NULL);
    ck_assert_int_eq(nb_sequential_len(seq), 0);
    nb_scope_begin();
    nb_tensor *x = T_F32(NB_SHAPE(1, 2), 1, 2);
    ck_assert_values_of(nb_forward(seq, x), 0, 1, 2); /* empty: identity */
    ck_assert_ok(nb_sequential_append(seq, nb_linear_new(2, 8, true, NULL)));
    ck_assert_ok(nb_sequential_append(seq, nb_tanh_layer_new()));
    ck_assert_ok(nb_sequential_append(seq, nb_linear_new(8, 10, true, NULL)));
    ck_assert_int_eq(nb_sequential_len(seq), 3);
    ck_assert_str_eq(nb_sequential_get(seq, 1)->type->name, "Tanh");
    ck_assert_ptr_eq(nb_sequential_get(seq, -1), nb_sequential_get(seq, 2));
    ck_assert_ptr_null(nb_sequential_get(seq, 3));
    ck_assert_error(NB_ERR_INDEX, "nb_sequential_get", "3", "3 layers");
    ck_assert_ptr_null(nb_sequential_get(seq, -4));
    ck_assert_error(NB_ERR_INDEX, "nb_sequential_get", "-4");
    ck_assert_shape_of(nb_forward(seq, x), 1, 10);
    nb_scope_end();
    /* a new head: the old one is freed with its tensors */
    int64_t with_old_head = live_tensors();
    ck_assert_ok(nb_sequential_set(seq, -1, nb_linear_new(8, 3, false, NULL)));
    ck_assert_int_eq(live_tensors(), with_old_head - 1);
    nb_scope_begin();
    ck_assert_shape_of(nb_forward(seq, T_F32(NB_SHAPE(1, 2), 1, 2)), 1, 3);
    nb_param_list *p = nb_module_parameters(seq);
    ck_assert_str_eq(names_of(p), "0.weight 0.bias 2.weight");
    nb_param_list_free(p);
    nb_scope_end();
    /* errors; the layer passed in is owned (freed) even then */
    ck_assert_int_eq(nb_sequential_set(seq, 5, nb_linear_new(2, 2, true, NULL)), NB_ERR_INDEX);
    ck_assert_error(NB_ERR_INDEX, "nb_sequential_set", "5");
    nb_clear_error();
    ck_assert_int_eq(nb_sequential_set(seq, 0, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_sequential_set", "layer");
    ck_assert_int_eq(nb_sequential_append(seq, seq), NB_ERR_ARG);
    nb_module *relu = nb_relu_layer_new();
    ck_assert_int_eq(nb_sequential_len(relu), -1);
    ck_assert_error(NB_ERR_ARG, "nb_sequential_len", "ReLU", "not a Sequential");
    ck_assert_int_eq(nb_sequential_append(relu, nb_linear_new(2, 2, true, NULL)), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_sequential_append", "not a Sequential");
    nb_module_free(relu);
    ck_assert_int_eq(nb_sequential_len(seq), 3);
    nb_module_free(seq);
    ck_assert_int_eq(live_tensors(), before);

    /* a failed constructor inside the list: NULL, the first message kept, the other layers freed */
    nb_clear_error();
    seq = nb_sequential_new(3, (nb_module *[]){nb_linear_new(2, 2, true, NULL), nb_dropout_new(2.0, NULL),
                                               nb_relu_layer_new()});
    ck_assert_ptr_null(seq);
    ck_assert_error(NB_ERR_ARG, "nb_dropout_new");
    ck_assert_int_eq(live_tensors(), before);
    ck_assert_ptr_null(nb_sequential_new(-1, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_sequential_new", "negative");
}
END_TEST

/* A module has one owner: a layer given twice, or one already inside (or containing) the container, is refused
 * without being freed, and the container stays usable; wrapping a child (LoRA) hands it to the wrapper. */
START_TEST(sequential_single_owner)
{
    int64_t before = live_tensors();
    nb_module *lin = nb_linear_new(4, 4, true, NULL), *relu = nb_relu_layer_new();
    /* the same module twice in the array: refused, freed once */
    ck_assert_ptr_null(nb_sequential_new(3, (nb_module *[]){lin, relu, lin}));
    ck_assert_error(NB_ERR_ARG, "nb_sequential_new", "layers 0 and 2 are the same Linear");
    ck_assert_int_eq(live_tensors(), before);
    /* a layer already inside another one of the array */
    nb_module *inner = nb_relu_layer_new();
    nb_module *box = nb_sequential_new(1, (nb_module *[]){inner});
    ck_assert_ptr_null(nb_sequential_new(2, (nb_module *[]){inner, box}));
    ck_assert_error(NB_ERR_ARG, "nb_sequential_new", "layer 0 is already inside layer 1");

    nb_module *seq = nb_sequential_new(2, (nb_module *[]){nb_linear_new(4, 4, true, NULL), nb_relu_layer_new()});
    nb_module *first = nb_sequential_get(seq, 0), *outer = nb_sequential_new(1, (nb_module *[]){seq});
    ck_assert(nb_module_contains(outer, first) && nb_module_contains(seq, seq) && !nb_module_contains(first, seq));
    /* already inside: append and set refuse and free nothing */
    ck_assert_int_eq(nb_sequential_append(seq, first), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_sequential_append", "already inside");
    ck_assert_int_eq(nb_sequential_set(seq, 1, first), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_sequential_set", "already inside child 0");
    /* a cycle, directly or through another container, even at a bad index */
    ck_assert_int_eq(nb_sequential_append(seq, outer), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_sequential_append", "cannot contain itself");
    ck_assert_int_eq(nb_sequential_set(seq, 0, outer), NB_ERR_ARG);
    ck_assert_int_eq(nb_sequential_set(seq, 5, seq), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_sequential_set", "cannot contain itself");
    ck_assert_int_eq(nb_sequential_len(seq), 2);
    ck_assert_ptr_eq(nb_sequential_get(seq, 0), first);

    /* wrapping child 0 in a LoRA adapter: the adapter takes the Linear over, set does not free it */
    nb_linear *base = (nb_linear *)first;
    nb_no_grad_begin();
    nb_fill(base->weight, 0.5);
    nb_fill(base->bias, 0.25);
    nb_no_grad_end();
    ck_assert_ok(nb_sequential_set(seq, 0, nb_lora_linear_new(first, 2, 4.0, NULL)));
    ck_assert_str_eq(nb_sequential_get(seq, 0)->type->name, "LoRALinear");
    ck_assert(nb_module_contains(seq, first));
    nb_scope_begin();
    nb_tensor *y = nb_forward(outer, T_F32(NB_SHAPE(1, 4), 1, 1, 1, 1));
    ck_assert_values(y, 1e-6, 2.25, 2.25, 2.25, 2.25); /* B starts at 0: the base layer's output */
    nb_param_list *p = nb_module_parameters(outer);
    ck_assert_str_eq(names_of(p), "0.0.weight 0.0.bias 0.0.lora_A 0.0.lora_B");
    nb_param_list_free(p);
    nb_scope_end();
    nb_module_free(outer);
    ck_assert_int_eq(live_tensors(), before);
}
END_TEST

/* The wrapping idiom when the wrapper cannot be made (bad rank, not a Linear): the error comes back and the
 * Sequential keeps its child as it was (it used to be freed under it); a Linear of the program's own is freed. A
 * module inside one container is refused by another, and stays where it is. */
START_TEST(failed_wrap_and_second_owner_leave_models_intact)
{
    int64_t before = live_tensors();
    nb_module *seq = nb_sequential_new(2, (nb_module *[]){nb_linear_new(3, 2, true, NULL), nb_relu_layer_new()});
    nb_module *first = nb_sequential_get(seq, 0), *second = nb_sequential_get(seq, 1);
    ck_assert_ptr_eq(first->owner, seq);
    ck_assert_int_eq(nb_sequential_set(seq, 0, nb_lora_linear_new(first, 0, 8.0, NULL)), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_lora_linear_new", "rank must be >= 1");
    ck_assert_int_eq(nb_sequential_set(seq, 1, nb_lora_linear_new(second, 2, 8.0, NULL)), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_lora_linear_new", "can only wrap a Linear layer, got a ReLU");
    ck_assert_ptr_eq(nb_sequential_get(seq, 0), first);
    ck_assert_ptr_eq(nb_sequential_get(seq, 1), second);
    ck_assert(first->type->name[0] == 'L' && first->owner == seq && second->owner == seq);
    nb_scope_begin();
    nb_tensor *y = nb_forward(seq, T_F32(NB_SHAPE(1, 3), 1, 2, 3));
    ck_assert_tensor(y);
    ck_assert_int_eq(nb_ndim(y), 2);
    nb_scope_end();
    /* a free-standing Linear is the wrapper's to free, also on failure */
    ck_assert_ptr_null(nb_lora_linear_new(nb_linear_new(3, 2, true, NULL), 2, NAN, NULL));
    ck_assert_error(NB_ERR_ARG, "alpha finite");

    /* a second container: refused, nothing freed, the first one unchanged */
    nb_module *other = nb_sequential_new(0, NULL);
    ck_assert_int_eq(nb_sequential_append(other, first), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_sequential_append", "already belongs to a Sequential");
    ck_assert_int_eq(nb_sequential_append(other, nb_tanh_layer_new()), NB_OK);
    ck_assert_int_eq(nb_sequential_set(other, 0, second), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_sequential_set", "already belongs to a Sequential");
    ck_assert_ptr_null(nb_sequential_new(2, (nb_module *[]){nb_sigmoid_layer_new(), first}));
    ck_assert_error(NB_ERR_ARG, "nb_sequential_new", "layer 1 already belongs to a Sequential");
    ck_assert_int_eq(nb_sequential_len(seq), 2);
    ck_assert_int_eq(nb_sequential_len(other), 1);
    /* wrapping for real afterwards still works, and the wrapper is the Sequential's */
    ck_assert_ok(nb_sequential_set(seq, 0, nb_lora_linear_new(first, 1, 2.0, NULL)));
    ck_assert_ptr_eq(nb_sequential_get(seq, 0)->owner, seq);
    ck_assert_ptr_ne(first->owner, seq);
    nb_module_free(other);
    nb_module_free(seq);
    ck_assert_int_eq(live_tensors(), before);
}
END_TEST

/* A LoRA wrapper around a module another container owns goes only into that module's own slot: appended, put in
 * another slot, into a new Sequential, or wrapping a Linear already wrapped, it is refused and freed alone, and the
 * Linear stays in its container with its owner and its trainable weights (it used to be freed twice). */
START_TEST(lora_wrapper_goes_only_into_its_linears_slot)
{
    int64_t before = live_tensors();
    nb_module *seq =
        nb_sequential_new(2, (nb_module *[]){nb_linear_new(2, 2, true, NULL), nb_linear_new(2, 2, true, NULL)});
    nb_module *first = nb_sequential_get(seq, 0), *second = nb_sequential_get(seq, 1);
    nb_linear *lin2 = (nb_linear *)second;
    nb_no_grad_begin();
    nb_fill(((nb_linear *)first)->weight, 1);
    nb_fill(((nb_linear *)first)->bias, 0);
    nb_fill(lin2->weight, 0.5);
    nb_fill(lin2->bias, -1);
    nb_no_grad_end();

    /* another slot, then append: refused, the wrapper freed (ASan), child 1 unchanged and trainable */
    ck_assert_int_eq(nb_sequential_set(seq, 0, nb_lora_linear_new(second, 2, 1.0, NULL)), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_sequential_set", "child 1", "not the one it replaces (0)");
    ck_assert_int_eq(nb_sequential_append(seq, nb_lora_linear_new(second, 2, 1.0, NULL)), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_sequential_append", "LoRALinear", "holds a Linear", "belongs to a Sequential");
    ck_assert_int_eq(nb_sequential_len(seq), 2);
    ck_assert_ptr_eq(nb_sequential_get(seq, 0), first);
    ck_assert_ptr_eq(nb_sequential_get(seq, 1), second);
    ck_assert(first->owner == seq && second->owner == seq);
    ck_assert(nb_requires_grad(lin2->weight) && nb_requires_grad(lin2->bias));

    /* a new Sequential around a wrapper of another one's child */
    nb_module *wrapper = nb_lora_linear_new(first, 1, 1.0, NULL);
    ck_assert_ptr_null(nb_sequential_new(2, (nb_module *[]){nb_relu_layer_new(), wrapper}));
    ck_assert_error(NB_ERR_ARG, "nb_sequential_new", "layer 1 (a LoRALinear) holds a Linear", "Sequential");
    ck_assert(first->owner == seq && nb_requires_grad(((nb_linear *)first)->weight));

    /* a wrapper never installed frees only itself */
    nb_module_free(nb_lora_linear_new(second, 2, 1.0, NULL));
    ck_assert(second->owner == seq && nb_requires_grad(lin2->weight));

    /* the idiom: child 0 wrapped in place; then a second wrapper around the Linear inside it, given child 1's
     * slot, is refused, and the first wrapper keeps its Linear */
    ck_assert_ok(nb_sequential_set(seq, 0, nb_lora_linear_new(first, 1, 1.0, NULL)));
    nb_module *wrap = nb_sequential_get(seq, 0);
    ck_assert(wrap->owner == seq && first->owner == wrap);
    ck_assert_ptr_null(nb_lora_linear_new(first, 1, 1.0, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_lora_linear_new", "already wrapped by a LoRA layer (installed)");
    ck_assert(first->owner == wrap && second->owner == seq);
    ck_assert_ptr_eq(nb_sequential_get(seq, 1), second);
    ck_assert(!nb_requires_grad(((nb_linear *)first)->weight)); /* frozen by the adapter that owns it */

    /* the model still works: x (1, 2) -> Linear of ones -> 0.5 x - 1 */
    nb_scope_begin();
    ck_assert_values_of(nb_forward(seq, T_F32(NB_SHAPE(1, 2), 1, 2)), 1e-6, 2.0, 2.0);
    nb_scope_end();
    nb_module_free(seq);
    ck_assert_int_eq(live_tensors(), before);
}
END_TEST

/* A wrapper not yet installed, left pending: a second wrapper is refused, freeing it puts the Linear back unmerged
 * and trainable even after a merge, and if the container goes first the wrapper reports the lost Linear instead
 * of reading freed memory (ASan). */
START_TEST(lora_pending_wrapper)
{
    int64_t before = live_tensors();
    nb_module *seq = nb_sequential_new(1, (nb_module *[]){nb_linear_new(2, 2, true, NULL)});
    nb_module *lin = nb_sequential_get(seq, 0);
    nb_no_grad_begin();
    nb_fill(((nb_linear *)lin)->weight, 1);
    nb_fill(((nb_linear *)lin)->bias, 0);
    nb_no_grad_end();
    nb_module *w = nb_lora_linear_new(lin, 1, 1.0, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_null(nb_lora_linear_new(lin, 1, 1.0, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_lora_linear_new", "already wrapped", "not yet in the Linear's slot");
    ck_assert(lin->owner == seq);
    /* merged, then freed without being installed: the Sequential computes what it did before */
    nb_lora_linear *l = (nb_lora_linear *)w;
    nb_no_grad_begin();
    nb_fill(l->lora_A, 1);
    nb_fill(l->lora_B, 1);
    nb_no_grad_end();
    ck_assert_ok(nb_lora_merge(w));
    nb_scope_begin();
    ck_assert_values_of(nb_forward(seq, T_F32(NB_SHAPE(1, 2), 1, 2)), 1e-6, 6.0, 6.0); /* (W + B A) x */
    nb_scope_end();
    nb_module_free(w);
    nb_scope_begin();
    ck_assert_values_of(nb_forward(seq, T_F32(NB_SHAPE(1, 2), 1, 2)), 1e-6, 3.0, 3.0);
    nb_scope_end();
    ck_assert(nb_requires_grad(((nb_linear *)lin)->weight) && ((nb_linear *)lin)->lora == NULL);
    /* wrapping again works; the container freed first leaves the wrapper without a Linear */
    w = nb_lora_linear_new(lin, 1, 1.0, NULL);
    ck_assert_ptr_nonnull(w);
    nb_module_free(seq);
    nb_scope_begin();
    ck_assert_ptr_null(nb_forward(w, T_F32(NB_SHAPE(1, 2), 1, 2)));
    ck_assert_error(NB_ERR_STATE, "nb_lora_linear", "Linear was freed with the container");
    nb_scope_end();
    ck_assert_int_eq(nb_lora_merge(w), NB_ERR_STATE);
    ck_assert_ptr_null(nb_module_parameters(w));
    ck_assert_error(NB_ERR_STATE, "nb_module_collect", "Linear was freed");
    nb_module_free(w);
    /* two wrappers of one free-standing Linear: the second is refused and the Linear stays the first's */
    nb_module *free_lin = nb_linear_new(2, 2, true, NULL);
    nb_module *w1 = nb_lora_linear_new(free_lin, 1, 1.0, NULL);
    ck_assert_ptr_null(nb_lora_linear_new(free_lin, 1, 1.0, NULL));
    ck_assert_error(NB_ERR_ARG, "already wrapped by a LoRA layer (installed)");
    nb_module_free(w1);
    ck_assert_int_eq(live_tensors(), before);
}
END_TEST

/* Sizes whose products overflow int64 are refused before anything is allocated (they used to be signed
 * overflow). */
START_TEST(constructor_sizes_that_overflow)
{
    ck_assert_ptr_null(nb_conv1d_new(INT64_C(1) << 40, 2, INT64_C(1) << 40, 1, 0, 1, 1, true, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv1d_new", "too large");
    nb_conv2d_options o = {{INT64_C(1) << 32, INT64_C(1) << 32}, {1, 1}, {0, 0}, {1, 1}, 1, false};
    ck_assert_ptr_null(nb_conv2d_new_ex(INT64_C(1) << 32, 2, &o, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv2d_new_ex", "too large");
    ck_assert_ptr_null(nb_self_attention_new(INT64_C(3) << 61, 1, true, 0, true, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_self_attention_new", "6917529027641081856", "too large");
    nb_gpt_config c = nb_gpt_defaults();
    c.vocab_size = 5;
    c.n_embd = 4;
    c.n_head = 1;
    c.context = 2;
    c.n_layer = INT64_MAX;
    ck_assert_ptr_null(nb_gpt_new(&c, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_gpt_new", "n_layer 9223372036854775807 is too large");
    /* a sane conv still gets kaiming bounds 1 / sqrt(fan_in): fan_in 2 * 3 * 3 = 18 */
    nb_module *conv = nb_conv2d_new(2, 1, 3, 1, 0, 1, 1, true, NULL);
    ck_assert_ptr_nonnull(conv);
    nb_tensor *w = ((nb_conv2d_layer *)conv)->weight;
    for (int64_t i = 0; i < nb_numel(w); i++) ck_assert(fabs(nb_get_flat(w, i)) <= 1 / sqrt(18.0));
    nb_module_free(conv);
}
END_TEST

START_TEST(module_train_propagates)
{
    nb_module *bn = nb_batch_norm1d_new(2, 1e-5, 0.1, true);
    nb_module *drop = nb_dropout_new(0.5, NULL);
    nb_module *inner = nb_sequential_new(1, (nb_module *[]){bn});
    nb_module *seq = nb_sequential_new(2, (nb_module *[]){drop, inner});
    ck_assert(seq->training && inner->training && bn->training && drop->training);
    nb_module_train(seq, false);
    ck_assert(!seq->training && !inner->training && !bn->training && !drop->training);
    /* in eval the whole model is deterministic: dropout passes through, batch norm uses running stats */
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(1, 2), 3, -1);
    ck_assert_values_of(nb_forward(seq, x), 1e-5, 3 / sqrt(1 + 1e-5), -1 / sqrt(1 + 1e-5));
    nb_scope_end();
    nb_module_train(seq, true);
    ck_assert(seq->training && inner->training && bn->training && drop->training);
    nb_module_free(seq);
    nb_module_train(NULL, true);
    nb_module_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Parameter lists
 * ---------------------------------------------------------------------------------------------- */
START_TEST(param_list_basics)
{
    nb_param_list *p = nb_param_list_new();
    nb_tensor *a = nb_zeros(NB_SHAPE(2, 3), NB_F32), *b = nb_zeros(NB_SHAPE(4), NB_F32);
    nb_tensor *buf = nb_zeros(NB_SHAPE(5), NB_F32);
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    ck_assert_ok(nb_param_list_add(p, "a", a, false));
    ck_assert_ok(nb_param_list_add(p, "b", b, false));
    ck_assert_ok(nb_param_list_add(p, "stats", buf, true));
    ck_assert_int_eq(p->count, 3);
    ck_assert_ptr_eq(nb_param_list_find(p, "b"), b);
    nb_clear_error();
    ck_assert_ptr_null(nb_param_list_find(p, "c"));
    ck_assert_int_eq(nb_last_status(), NB_OK); /* absence is not an error */
    ck_assert_int_eq(nb_param_list_numel(p, false), 10);
    ck_assert_int_eq(nb_param_list_add(p, "a", b, false), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_param_list_add", "duplicate", "\"a\"");
    char longname[NB_NAME_MAX + 1];
    memset(longname, 'x', NB_NAME_MAX);
    longname[NB_NAME_MAX] = '\0';
    ck_assert_int_eq(nb_param_list_add(p, longname, b, false), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_param_list_add", "128 characters", "127");
    longname[NB_NAME_MAX - 1] = '\0'; /* 127 characters fit */
    ck_assert_ok(nb_param_list_add(p, longname, b, false));
    ck_assert_int_eq(nb_param_list_add(p, "", b, false), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_param_list_add", "empty");
    nb_clear_error();
    ck_assert_int_eq(nb_param_list_add(p, "n", NULL, false), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_param_list_add", "tensor");
    ck_assert_int_eq(p->count, 4);
    /* many entries: the list grows */
    for (int i = 0; i < 100; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        ck_assert_ok(nb_param_list_add(p, name, a, false));
    }
    ck_assert_ptr_eq(nb_param_list_find(p, "p99"), a);
    ck_assert_int_eq(nb_param_list_numel(p, false), 10 + 4 + 600);
    nb_param_list_free(p);
    nb_param_list_free(NULL);
    /* freeing the list leaves the tensors alone */
    ck_assert(nb_is_valid(a) && nb_is_valid(b));
    nb_free(a);
    nb_free(b);
    nb_free(buf);
}
END_TEST

START_TEST(param_list_freezing)
{
    nb_module *layers[11];
    for (int i = 0; i < 11; i++) layers[i] = nb_linear_new(2, 2, true, NULL);
    nb_module *seq = nb_sequential_new(11, layers);
    nb_param_list *p = nb_module_parameters(seq);
    ck_assert_int_eq(p->count, 22);
    ck_assert_int_eq(nb_param_list_numel(p, true), 66);
    /* "1" names layer 1 only, not layer 10 */
    ck_assert_int_eq(nb_param_list_set_frozen(p, "1", true), 2);
    ck_assert_int_eq(nb_param_list_numel(p, true), 60);
    ck_assert_int_eq(nb_param_list_numel(p, false), 66);
    ck_assert(!nb_requires_grad(nb_param_list_find(p, "1.weight")));
    ck_assert(nb_requires_grad(nb_param_list_find(p, "10.weight")));
    ck_assert_int_eq(nb_param_list_set_frozen(p, "10.", true), 2);
    ck_assert_int_eq(nb_param_list_set_frozen(p, "0.weight", true), 1);
    ck_assert_int_eq(nb_param_list_numel(p, true), 66 - 6 - 6 - 4);
    ck_assert_int_eq(nb_param_list_set_frozen(p, "nothing", true), 0);
    ck_assert_int_eq(nb_param_list_set_frozen(p, "", false), 22);
    ck_assert_int_eq(nb_param_list_numel(p, true), 66);
    /* frozen parameters get no gradient, the others do; zero_grad drops them */
    ck_assert_int_eq(nb_param_list_set_frozen(p, "0", true), 2);
    nb_scope_begin();
    ck_assert_ok(nb_backward(nb_sum(nb_forward(seq, nb_ones(NB_SHAPE(3, 2), NB_F32)), 0, NULL, false)));
    nb_scope_end();
    ck_assert_ptr_null(nb_grad(nb_param_list_find(p, "0.weight")));
    ck_assert_ptr_null(nb_grad(nb_param_list_find(p, "0.bias")));
    ck_assert_ptr_nonnull(nb_grad(nb_param_list_find(p, "1.weight")));
    ck_assert_ptr_nonnull(nb_grad(nb_param_list_find(p, "10.bias")));
    nb_param_list_zero_grad(p);
    for (int i = 0; i < p->count; i++) ck_assert_ptr_null(nb_grad(p->items[i].tensor));
    ck_assert_int_eq(nb_param_list_set_frozen(NULL, "", true), -1);
    ck_assert_error(NB_ERR_NULL, "nb_param_list_set_frozen");
    nb_param_list_free(p);
    nb_module_free(seq);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Memory
 * ---------------------------------------------------------------------------------------------- */
static nb_module *small_model(void)
{
    return nb_sequential_new(5, (nb_module *[]){nb_linear_new(4, 8, true, NULL), nb_batch_norm1d_new(8, 1e-5, 0.1, true),
                                                nb_gelu_layer_new(false), nb_dropout_new(0.25, NULL),
                                                nb_linear_new(8, 2, true, NULL)});
}

START_TEST(memory_model_lifetime)
{
    int64_t before = live_tensors();
    nb_module *m = small_model();
    ck_assert_ptr_nonnull(m);
    int64_t with_model = live_tensors();
    ck_assert_int_eq(with_model - before, 2 + 5 + 2);
    nb_module_free(m);
    ck_assert_int_eq(live_tensors(), before);

    /* built inside a user scope, the parameters still belong to the model */
    nb_scope_begin();
    m = small_model();
    nb_scope_end();
    nb_param_list *p = nb_module_parameters(m);
    for (int i = 0; i < p->count; i++) ck_assert_msg(nb_is_valid(p->items[i].tensor), "%s died", p->items[i].name);

    /* a training step inside a scope leaves only the parameters' gradients behind */
    for (int step = 0; step < 3; step++) {
        nb_scope_begin();
        nb_tensor *y = nb_forward(m, nb_randn(NB_SHAPE(6, 4), 0, 1, NB_F32, NULL));
        ck_assert_ok(nb_backward(nb_mean(nb_square(y), 0, NULL, false)));
        nb_scope_end();
        ck_assert_int_eq(live_tensors(), with_model + 6); /* one gradient per parameter */
        nb_param_list_zero_grad(p);
        ck_assert_int_eq(live_tensors(), with_model);
    }
    /* without any scope the caller owns the result only: the forward's temporaries are gone (in no-grad mode
     * nothing else remains; with a graph, the graph goes with the result) */
    nb_tensor *x = nb_ones(NB_SHAPE(3, 4), NB_F32);
    nb_no_grad_begin();
    nb_tensor *y = nb_forward(m, x);
    nb_no_grad_end();
    ck_assert_tensor(y);
    ck_assert_int_eq(live_tensors(), with_model + 2);
    nb_free(y);
    y = nb_forward(m, x);
    ck_assert_tensor(y);
    ck_assert_int_gt(live_tensors(), with_model + 2);
    nb_free(y);
    ck_assert_int_eq(live_tensors(), with_model + 1);
    nb_module_train(m, false);
    nb_no_grad_begin();
    y = nb_forward(m, x);
    nb_no_grad_end();
    ck_assert_int_eq(live_tensors(), with_model + 2);
    nb_free(y);
    nb_free(x);
    ck_assert_int_eq(live_tensors(), with_model);
    nb_param_list_free(p);
    nb_module_free(m);
    ck_assert_int_eq(live_tensors(), before);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("nn");
    TCase *tc = tcase_create("nn");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, linear_forward_values);
    tcase_add_test(tc, linear_default_init);
    tcase_add_test(tc, activation_layers);
    tcase_add_test(tc, flatten_layer);
    tcase_add_test(tc, dropout_training_masks_and_scales);
    tcase_add_test(tc, dropout_reproducible_and_eval);
    tcase_add_test(tc, dropout_edge_probabilities);
    tcase_add_test(tc, layer_norm_reference);
    tcase_add_test(tc, batch_norm_reference);
    tcase_add_test(tc, batch_norm_3d_reference);
    tcase_add_test(tc, embedding_layer);
    tcase_add_test(tc, layer_gradients);
    tcase_add_test(tc, sequential_naming_and_forward);
    tcase_add_test(tc, sequential_get_set_append);
    tcase_add_test(tc, sequential_single_owner);
    tcase_add_test(tc, failed_wrap_and_second_owner_leave_models_intact);
    tcase_add_test(tc, lora_wrapper_goes_only_into_its_linears_slot);
    tcase_add_test(tc, lora_pending_wrapper);
    tcase_add_test(tc, constructor_sizes_that_overflow);
    tcase_add_test(tc, module_train_propagates);
    tcase_add_test(tc, param_list_basics);
    tcase_add_test(tc, param_list_freezing);
    tcase_add_test(tc, memory_model_lifetime);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
