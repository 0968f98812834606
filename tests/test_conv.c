/* Convolution and pooling: conv2d/conv1d/conv_transpose2d, max/avg/adaptive pooling, batch_norm, dropout2d and
 * their nn layers. Forward values against PyTorch (tests/reference/conv_reference.py), first and second
 * derivatives by gradcheck (strides, padding, dilation, groups, non-contiguous inputs), the chunked large case
 * by its adjoint identities, errors, initialization, names and memory. */
#include "helpers.h"

/* The reference script's inputs, formulas of the flat index k. */
static nb_tensor *pattern(int ndim, const int64_t *shape, int kind)
{
    nb_tensor *t = nb_empty(ndim, shape, NB_F64);
    for (int64_t k = 0; k < nb_numel(t); k++) {
        double v = kind == 0 ? 1.5 * sin(0.37 * (double)k + 0.1)
                 : kind == 1 ? 0.5 * cos(0.91 * (double)k + 0.3)
                             : 0.1 * (double)k - 0.2;
        nb_set_flat(t, k, v);
    }
    return t;
}
#define PX(...) pattern(NB_SHAPE(__VA_ARGS__), 0)
#define PW(...) pattern(NB_SHAPE(__VA_ARGS__), 1)
#define PB(...) pattern(NB_SHAPE(__VA_ARGS__), 2)

/* The script's summary of a result: its sum, sum(out[k] sin(0.5 k)) and its first four elements. */
#define ck_assert_summary(expr, tol, sum, check, f0, f1, f2, f3)                                          \
    do {                                                                                                 \
        nb_tensor *s_t_ = (expr);                                                                        \
        ck_assert_tensor(s_t_);                                                                          \
        double s_sum_ = 0, s_chk_ = 0;                                                                   \
        for (int64_t s_k_ = 0; s_k_ < nb_numel(s_t_); s_k_++) {                                          \
            double s_v_ = nb_get_flat(s_t_, s_k_);                                                       \
            s_sum_ += s_v_;                                                                              \
            s_chk_ += s_v_ * sin(0.5 * (double)s_k_);                                                    \
        }                                                                                                \
        ck_assert_close(s_sum_, sum, tol);                                                               \
        ck_assert_close(s_chk_, check, tol);                                                             \
        const double s_f_[4] = {f0, f1, f2, f3};                                                         \
        for (int s_i_ = 0; s_i_ < 4; s_i_++) ck_assert_close(nb_get_flat(s_t_, s_i_), s_f_[s_i_], tol);  \
    } while (0)

static const int64_t one2[2] = {1, 1};
static int64_t live_tensors(void) { return nb_memory_stats_get().live_tensors; }

/* ------------------------------------------------------------------------------------------------
 * Forward values against PyTorch
 * ---------------------------------------------------------------------------------------------- */
START_TEST(conv2d_matches_torch)
{
    nb_scope_begin();
    nb_tensor *y = nb_conv2d(PX(2, 3, 7, 6), PW(4, 3, 3, 3), PB(4), NULL, NULL, NULL, 1);
    ck_assert_shape(y, 2, 4, 5, 4);
    ck_assert_summary(y, 1e-9, -18.6436131113, 4.56649773235, -2.20910488132, 0.087206018799, 2.34464493162,
                      4.25767809041);

    y = nb_conv2d(PX(2, 4, 7, 8), PW(6, 2, 3, 2), PB(6), (const int64_t[]){2, 1}, (const int64_t[]){1, 2},
                  (const int64_t[]){1, 2}, 2);
    ck_assert_shape(y, 2, 6, 4, 10);
    ck_assert_summary(y, 1e-9, 80.0642263838, 59.5705972348, -0.212821812648, -0.491675901046, 0.106153883589,
                      -0.157441741787);

    /* depthwise with a channel multiplier of 2 */
    y = nb_conv2d(PX(1, 3, 6, 6), PW(6, 1, 3, 3), NULL, (const int64_t[]){2, 2}, one2, NULL, 3);
    ck_assert_shape(y, 1, 6, 3, 3);
    ck_assert_summary(y, 1e-9, 2.36496826494, -20.6633048866, 0.591497183628, -0.348618776917, -1.90871048864,
                      0.908571686461);

    /* 1x1: the product reads the image directly */
    y = nb_conv2d(PX(2, 5, 4, 3), PW(3, 5, 1, 1), PB(3), NULL, NULL, NULL, 1);
    ck_assert_shape(y, 2, 3, 4, 3);
    ck_assert_summary(y, 1e-9, -7.34577525973, -0.377603962269, -0.682057994542, -0.561318456728,
                      -0.391676160816, -0.196091395732);
    nb_scope_end();
}
END_TEST

START_TEST(conv1d_and_transpose_match_torch)
{
    nb_scope_begin();
    nb_tensor *y = nb_conv1d(PX(2, 3, 10), PW(4, 3, 3), PB(4), 2, 1, 2, 1);
    ck_assert_shape(y, 2, 4, 4);
    ck_assert_summary(y, 1e-9, 7.90311647113, 11.010027311, 0.743137306378, 2.26931805902, 1.99629232582,
                      0.574467597781);

    const int64_t two[2] = {2, 2};
    y = nb_conv_transpose2d(PX(2, 4, 3, 4), PW(4, 3, 3, 2), PB(3), two, one2, one2, NULL, 1);
    ck_assert_shape(y, 2, 3, 6, 7);
    ck_assert_summary(y, 1e-9, -38.3928089462, -35.1787682483, -1.19251402315, -0.737081967263, -1.41006404535,
                      -0.470139424387);

    y = nb_conv_transpose2d(PX(1, 4, 3, 3), PW(4, 2, 3, 3), NULL, (const int64_t[]){1, 2}, (const int64_t[]){0, 1},
                            NULL, (const int64_t[]){2, 1}, 2);
    ck_assert_shape(y, 1, 4, 7, 5);
    ck_assert_summary(y, 1e-9, -17.9368307587, -3.55088892688, -0.0388944798868, 0.343630645679,
                      -0.0206231400519, 0.287133997937);
    nb_scope_end();
}
END_TEST

START_TEST(pooling_matches_torch)
{
    nb_scope_begin();
    nb_tensor *x = PX(2, 3, 7, 6);
    nb_tensor *y = nb_max_pool2d(x, (const int64_t[]){3, 2}, (const int64_t[]){2, 2}, one2, NULL);
    ck_assert_shape(y, 2, 3, 4, 4);
    ck_assert_summary(y, 1e-9, 107.404847851, 2.96258844444, 1.09834716605, 1.11696467996, 1.49993646975,
                      1.39343957251);

    const int64_t k3[2] = {3, 3}, s2[2] = {2, 2};
    y = nb_avg_pool2d(x, k3, s2, one2, true);
    ck_assert_shape(y, 2, 3, 4, 3);
    ck_assert_summary(y, 1e-9, 0.509591790499, 0.37719305725, 0.286891704703, 0.394436821381, 0.185295297569,
                      0.0685066969336);
    y = nb_avg_pool2d(x, k3, s2, one2, false);
    ck_assert_summary(y, 1e-9, 0.895738152608, 0.669883732638, 0.645506335581, 0.591655232072, 0.277942946353,
                      0.1027600454);

    y = nb_adaptive_avg_pool2d(PX(2, 3, 7, 5), 3, 2);
    ck_assert_shape(y, 2, 3, 3, 2);
    ck_assert_summary(y, 1e-9, -1.16615792112, -0.135266328635, 0.15690656943, 0.0174647280421,
                      -0.0557479739837, 0.0983466414197);
    y = nb_adaptive_avg_pool2d(PX(2, 3, 8, 6), 4, 3);
    ck_assert_shape(y, 2, 3, 4, 3);
    ck_assert_summary(y, 1e-9, 0.0543826089032, 1.07726508153, 0.645506335581, 0.554000835281, 0.172718061148,
                      -0.284096379221);
    y = nb_adaptive_avg_pool2d(PX(2, 3, 7, 5), 1, 1);
    ck_assert_shape(y, 2, 3, 1, 1);
    ck_assert_summary(y, 1e-9, 0.186199788715, 0.145021908209, 0.00473534787817, 0.0209210868885,
                      0.034065414889, 0.0422574701681);
    nb_scope_end();
}
END_TEST

START_TEST(max_pool_ties_go_to_first)
{
    nb_scope_begin();
    nb_tensor *t = T_F64(NB_SHAPE(1, 1, 4, 4), 1, 3, 3, 0, 3, 2, 0, 0, 1, 1, 5, 5, 0, 0, 5, 5);
    nb_set_requires_grad(t, true);
    nb_tensor *indices = NULL;
    nb_tensor *y = nb_max_pool2d(t, (const int64_t[]){2, 2}, NULL, NULL, &indices);
    ck_assert_values(y, 0, 3, 3, 1, 5);
    ck_assert_int_eq(nb_dtype_of(indices), NB_I64);
    ck_assert_values(indices, 0, 1, 2, 8, 10);
    ck_assert_ok(nb_backward(nb_sum(y, 0, NULL, false)));
    ck_assert_values(nb_grad(t), 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0);
    nb_scope_end();
}
END_TEST

START_TEST(max_pool_propagates_nan)
{
    nb_scope_begin();
    nb_tensor *t = T_F32(NB_SHAPE(1, 1, 2, 4), 1, NAN, 7, 2, 9, 0, NAN, 8);
    nb_tensor *indices = NULL;
    nb_tensor *y = nb_max_pool2d(t, (const int64_t[]){2, 2}, NULL, NULL, &indices);
    ck_assert(isnan(nb_get_flat(y, 0)) && isnan(nb_get_flat(y, 1)));
    ck_assert_values(indices, 0, 1, 6);
    nb_scope_end();
}
END_TEST

/* Images are spread over threads and the weight gradient is summed in parts fixed by the shapes: the results
 * are the same bits whatever the thread count. */
static void conv_with_threads(int threads, nb_tensor **out)
{
    ck_assert_ok(nb_set_num_threads(threads));
    nb_generator g;
    nb_generator_seed(&g, 3);
    nb_tensor *x = nb_randn(NB_SHAPE(5, 6, 9, 8), 0, 1, NB_F32, &g), *w = nb_randn(NB_SHAPE(4, 3, 3, 3), 0, 1, NB_F32, &g);
    nb_set_requires_grad(x, true);
    nb_set_requires_grad(w, true);
    const int64_t s[2] = {2, 1};
    out[0] = nb_conv2d(x, w, NULL, s, one2, NULL, 2);
    nb_tensor *weights = nb_randn(NB_SHAPE(5, 4, 5, 8), 0, 1, NB_F32, &g);
    ck_assert_ok(nb_grad_of(nb_sum(nb_mul(out[0], weights), 0, NULL, false), NULL, 2, (nb_tensor *const[]){x, w},
                            out + 1, NB_BACKWARD_DEFAULT));
}

START_TEST(same_results_for_any_thread_count)
{
    nb_scope_begin();
    nb_tensor *one[3], *many[3];
    int before = nb_num_threads();
    conv_with_threads(1, one);
    conv_with_threads(3, many);
    ck_assert_ok(nb_set_num_threads(before));
    for (int i = 0; i < 3; i++) {
        ck_assert_tensor(one[i]);
        ck_assert_tensor(many[i]);
        for (int64_t k = 0; k < nb_numel(one[i]); k++)
            ck_assert_msg(nb_get_flat(one[i], k) == nb_get_flat(many[i], k), "result %d element %lld differs", i,
                          (long long)k);
    }
    nb_scope_end();
}
END_TEST

START_TEST(f32_agrees_with_f64)
{
    nb_scope_begin();
    nb_tensor *x = PX(2, 4, 9, 7), *w = PW(6, 2, 3, 3), *b = PB(6);
    const int64_t s[2] = {2, 1};
    nb_tensor *y64 = nb_conv2d(x, w, b, s, one2, NULL, 2);
    nb_tensor *y32 = nb_conv2d(nb_to_dtype(x, NB_F32), nb_to_dtype(w, NB_F32), nb_to_dtype(b, NB_F32), s, one2,
                               NULL, 2);
    ck_assert_int_eq(nb_dtype_of(y32), NB_F32);
    ck_assert_close(nb_item(nb_max(nb_abs(nb_sub(nb_to_dtype(y32, NB_F64), y64)))), 0, 1e-5);
    nb_tensor *p32 = nb_max_pool2d(nb_to_dtype(x, NB_F32), (const int64_t[]){2, 2}, NULL, NULL, NULL);
    nb_tensor *p64 = nb_max_pool2d(x, (const int64_t[]){2, 2}, NULL, NULL, NULL);
    ck_assert_close(nb_item(nb_max(nb_abs(nb_sub(nb_to_dtype(p32, NB_F64), p64)))), 0, 1e-6);
    nb_scope_end();
}
END_TEST

/* A case large enough that the unfolding is made in several chunks: the three maps must still be adjoint,
 * <conv(x, w), y> = <x, convT(y, w)> = <w, wgrad(x, y)>, and conv must match a direct sum at sample points. */
START_TEST(chunked_case_is_consistent)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 7);
    nb_tensor *x = nb_randn(NB_SHAPE(2, 96, 50, 47), 0, 1, NB_F64, &g);
    nb_tensor *w = nb_randn(NB_SHAPE(6, 48, 3, 3), 0, 1, NB_F64, &g);
    nb_set_requires_grad(x, true);
    nb_set_requires_grad(w, true);
    const int64_t s[2] = {1, 2}, p[2] = {1, 0}, d[2] = {2, 1};
    nb_tensor *out = nb_conv2d(x, w, NULL, s, p, d, 2);
    ck_assert_shape(out, 2, 6, 48, 23);
    /* direct sums at a few output positions */
    const int64_t at[3][4] = {{0, 0, 0, 0}, {1, 5, 47, 22}, {1, 2, 20, 7}};
    for (int i = 0; i < 3; i++) {
        int64_t n = at[i][0], o = at[i][1], oh = at[i][2], ow = at[i][3], grp = o / 3;
        double ref = 0;
        for (int64_t c = 0; c < 48; c++)
            for (int64_t kh = 0; kh < 3; kh++)
                for (int64_t kw = 0; kw < 3; kw++) {
                    int64_t ih = oh - 1 + 2 * kh, iw = ow * 2 + kw;
                    if (ih < 0 || ih >= 50 || iw < 0 || iw >= 47) continue;
                    ref += nb_get(w, (const int64_t[]){o, c, kh, kw}) *
                           nb_get(x, (const int64_t[]){n, grp * 48 + c, ih, iw});
                }
        ck_assert_close(nb_get(out, at[i]), ref, 1e-9);
    }
    nb_tensor *y = nb_randn(NB_SHAPE(2, 6, 48, 23), 0, 1, NB_F64, &g);
    nb_tensor *inner = nb_sum(nb_mul(out, y), 0, NULL, false);
    nb_tensor *grads[2];
    ck_assert_ok(nb_grad_of(inner, NULL, 2, (nb_tensor *const[]){x, w}, grads, NB_BACKWARD_DEFAULT));
    double v = nb_item(inner);
    ck_assert_close(nb_item(nb_sum(nb_mul(x, grads[0]), 0, NULL, false)), v, 1e-8 * fabs(v) + 1e-8);
    ck_assert_close(nb_item(nb_sum(nb_mul(w, grads[1]), 0, NULL, false)), v, 1e-8 * fabs(v) + 1e-8);
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Gradients: first and second order
 * ---------------------------------------------------------------------------------------------- */
typedef struct conv_case {
    int64_t stride[2], padding[2], dilation[2], groups;
    bool bias, transpose_input, slice_weight;
} conv_case;

static nb_tensor *f_conv(nb_tensor *const *in, void *u)
{
    const conv_case *c = u;
    nb_tensor *x = c->transpose_input ? nb_transpose(in[0], 2, 3) : in[0];
    nb_tensor *w = c->slice_weight ? nb_slice(in[1], 0, 0, INT64_MAX, 2) : in[1];
    return nb_conv2d(x, w, c->bias ? in[2] : NULL, c->stride, c->padding, c->dilation, c->groups);
}

START_TEST(conv2d_gradients)
{
    nb_scope_begin();
    conv_case basic = {{1, 1}, {0, 0}, {1, 1}, 1, true, false, false};
    nb_tensor *a[3] = {nbt_leaf(NB_SHAPE(2, 2, 4, 3), 1), nbt_leaf(NB_SHAPE(3, 2, 2, 2), 2), nbt_leaf(NB_SHAPE(3), 3)};
    ck_assert_gradcheck(f_conv, &basic, 3, a, true);

    conv_case strided = {{2, 1}, {1, 1}, {2, 1}, 2, true, false, false};
    nb_tensor *b[3] = {nbt_leaf(NB_SHAPE(1, 2, 4, 3), 4), nbt_leaf(NB_SHAPE(2, 1, 2, 2), 5), nbt_leaf(NB_SHAPE(2), 6)};
    ck_assert_gradcheck(f_conv, &strided, 3, b, true);

    conv_case depthwise = {{2, 2}, {1, 1}, {1, 1}, 2, false, false, false};
    nb_tensor *c[2] = {nbt_leaf(NB_SHAPE(1, 2, 3, 3), 7), nbt_leaf(NB_SHAPE(4, 1, 2, 2), 8)};
    ck_assert_gradcheck(f_conv, &depthwise, 2, c, true);

    conv_case pointwise = {{1, 1}, {0, 0}, {1, 1}, 1, true, false, false};
    nb_tensor *d[3] = {nbt_leaf(NB_SHAPE(2, 3, 2, 2), 9), nbt_leaf(NB_SHAPE(2, 3, 1, 1), 10), nbt_leaf(NB_SHAPE(2), 11)};
    ck_assert_gradcheck(f_conv, &pointwise, 3, d, true);

    /* non-contiguous input (transposed planes) and weight (every other output channel) */
    conv_case strided_views = {{1, 2}, {1, 0}, {1, 1}, 1, false, true, true};
    nb_tensor *e[2] = {nbt_leaf(NB_SHAPE(1, 2, 3, 4), 12), nbt_leaf(NB_SHAPE(4, 2, 2, 2), 13)};
    ck_assert_gradcheck(f_conv, &strided_views, 2, e, true);
    nb_scope_end();
}
END_TEST

static nb_tensor *f_conv1d(nb_tensor *const *in, void *u)
{
    (void)u;
    return nb_conv1d(in[0], in[1], in[2], 2, 1, 2, 1);
}

typedef struct transpose_case {
    int64_t stride[2], padding[2], output_padding[2], dilation[2], groups;
} transpose_case;

static nb_tensor *f_conv_t(nb_tensor *const *in, void *u)
{
    const transpose_case *c = u;
    return nb_conv_transpose2d(in[0], in[1], in[2], c->stride, c->padding, c->output_padding, c->dilation,
                               c->groups);
}

START_TEST(conv1d_and_transpose_gradients)
{
    nb_scope_begin();
    nb_tensor *a[3] = {nbt_leaf(NB_SHAPE(2, 2, 5), 21), nbt_leaf(NB_SHAPE(3, 2, 2), 22), nbt_leaf(NB_SHAPE(3), 23)};
    ck_assert_gradcheck(f_conv1d, NULL, 3, a, true);

    transpose_case t1 = {{2, 2}, {1, 0}, {1, 1}, {1, 1}, 1};
    nb_tensor *b[3] = {nbt_leaf(NB_SHAPE(1, 2, 3, 2), 24), nbt_leaf(NB_SHAPE(2, 2, 2, 2), 25), nbt_leaf(NB_SHAPE(2), 26)};
    ck_assert_gradcheck(f_conv_t, &t1, 3, b, true);

    transpose_case t2 = {{1, 2}, {0, 1}, {0, 0}, {2, 1}, 2};
    nb_tensor *c[3] = {nbt_leaf(NB_SHAPE(1, 4, 2, 2), 27), nbt_leaf(NB_SHAPE(4, 1, 2, 3), 28), nbt_leaf(NB_SHAPE(2), 29)};
    ck_assert_gradcheck(f_conv_t, &t2, 3, c, true);
    nb_scope_end();
}
END_TEST

typedef struct pool_case {
    int64_t kernel[2], stride[2], padding[2];
    int kind; /* 0 max, 1 avg incl, 2 avg excl, 3 adaptive */
    bool transpose_input;
} pool_case;

static nb_tensor *f_pool(nb_tensor *const *in, void *u)
{
    const pool_case *c = u;
    nb_tensor *x = c->transpose_input ? nb_transpose(in[0], 2, 3) : in[0];
    switch (c->kind) {
    case 0: return nb_max_pool2d(x, c->kernel, c->stride, c->padding, NULL);
    case 1: return nb_avg_pool2d(x, c->kernel, c->stride, c->padding, true);
    case 2: return nb_avg_pool2d(x, c->kernel, c->stride, c->padding, false);
    default: return nb_adaptive_avg_pool2d(x, c->kernel[0], c->kernel[1]);
    }
}

START_TEST(pooling_gradients)
{
    nb_scope_begin();
    nb_tensor *x = nbt_leaf(NB_SHAPE(1, 2, 4, 5), 31);
    pool_case maxp = {{2, 3}, {2, 1}, {1, 1}, 0, false};
    ck_assert_gradcheck(f_pool, &maxp, 1, &x, true);
    pool_case maxt = {{2, 2}, {1, 2}, {0, 1}, 0, true};
    ck_assert_gradcheck(f_pool, &maxt, 1, &x, true);
    pool_case avg_in = {{3, 2}, {2, 1}, {1, 1}, 1, false};
    ck_assert_gradcheck(f_pool, &avg_in, 1, &x, true);
    pool_case avg_ex = {{3, 2}, {2, 1}, {1, 1}, 2, true};
    ck_assert_gradcheck(f_pool, &avg_ex, 1, &x, true);
    pool_case adaptive = {{3, 2}, {0, 0}, {0, 0}, 3, false};
    ck_assert_gradcheck(f_pool, &adaptive, 1, &x, true);
    pool_case adaptive_even = {{2, 5}, {0, 0}, {0, 0}, 3, false};
    ck_assert_gradcheck(f_pool, &adaptive_even, 1, &x, true);
    nb_scope_end();
}
END_TEST

static nb_tensor *f_bn_train(nb_tensor *const *in, void *u)
{
    (void)u;
    return nb_batch_norm(in[0], NULL, NULL, in[1], in[2], true, 0.1, 1e-5);
}
static nb_tensor *f_bn_eval(nb_tensor *const *in, void *u)
{
    nb_tensor **running = u;
    return nb_batch_norm(in[0], running[0], running[1], in[1], in[2], false, 0.1, 1e-5);
}
static nb_tensor *f_dropout2d(nb_tensor *const *in, void *u)
{
    (void)u;
    nb_generator g;
    nb_generator_seed(&g, 5); /* the same mask at every evaluation */
    return nb_dropout2d(in[0], 0.5, true, &g);
}

START_TEST(batch_norm_and_dropout2d_gradients)
{
    nb_scope_begin();
    nb_tensor *a[3] = {nbt_leaf(NB_SHAPE(3, 2, 2, 2), 41), nbt_leaf(NB_SHAPE(2), 42), nbt_leaf(NB_SHAPE(2), 43)};
    ck_assert_gradcheck(f_bn_train, NULL, 3, a, true);
    nb_tensor *running[2] = {T_F64(NB_SHAPE(2), 0.3, -0.2), T_F64(NB_SHAPE(2), 0.5, 2.0)};
    ck_assert_gradcheck(f_bn_eval, running, 3, a, true);
    nb_tensor *x = nbt_leaf(NB_SHAPE(2, 3, 2, 2), 44);
    ck_assert_gradcheck(f_dropout2d, NULL, 1, &x, true);
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * batch_norm and dropout2d values
 * ---------------------------------------------------------------------------------------------- */
START_TEST(batch_norm_matches_torch)
{
    nb_scope_begin();
    nb_tensor *rm = nb_zeros(NB_SHAPE(3), NB_F64), *rv = nb_ones(NB_SHAPE(3), NB_F64);
    nb_tensor *x = PX(4, 3, 3, 2), *w = PW(3), *b = PB(3);
    nb_tensor *y = nb_batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5);
    ck_assert_summary(y, 1e-9, -7.2, 1.48672619381, -1.31771737978, -0.702376479259, -0.193869314384,
                      0.138980055597);
    ck_assert_values(rm, 1e-10, 0.11116884433, -0.0689278039437, -0.0278279235036);
    ck_assert_values(rv, 1e-10, 0.917633596118, 0.96105247395, 0.983748801958);
    y = nb_batch_norm(x, rm, rv, w, b, false, 0.1, 1e-5);
    ck_assert_summary(y, 1e-9, 3.67473359499, 2.44833627838, -0.180761731113, 0.0833090529752, 0.301532619181,
                      0.44437343155);
    nb_scope_end();
}
END_TEST

/* weight or bias alone (F.batch_norm takes either): the same as the other one at its neutral value, with
 * gradients; an empty batch trains to an empty result and leaves the running statistics alone (PyTorch 1.13). */
static nb_tensor *f_bn_weight_only(nb_tensor *const *in, void *u)
{
    (void)u;
    return nb_batch_norm(in[0], NULL, NULL, in[1], NULL, true, 0.1, 1e-5);
}
static nb_tensor *f_bn_bias_only(nb_tensor *const *in, void *u)
{
    (void)u;
    return nb_batch_norm(in[0], NULL, NULL, NULL, in[1], true, 0.1, 1e-5);
}

START_TEST(batch_norm_weight_or_bias_alone_and_empty_batch)
{
    nb_scope_begin();
    nb_tensor *x = PX(4, 3, 3, 2), *w = PW(3), *b = PB(3);
    nb_tensor *ones = nb_ones(NB_SHAPE(3), NB_F64), *zeros = nb_zeros(NB_SHAPE(3), NB_F64);
    nb_tensor *wy = nb_batch_norm(x, NULL, NULL, w, NULL, true, 0.1, 1e-5);
    nb_tensor *by = nb_batch_norm(x, NULL, NULL, NULL, b, true, 0.1, 1e-5);
    ck_assert_tensor(wy);
    ck_assert_tensor(by);
    nb_tensor *w0 = nb_batch_norm(x, NULL, NULL, w, zeros, true, 0.1, 1e-5);
    nb_tensor *b1 = nb_batch_norm(x, NULL, NULL, ones, b, true, 0.1, 1e-5);
    ck_assert_double_eq(nb_item(nb_max(nb_abs(nb_sub(wy, w0)))), 0);
    ck_assert_double_eq(nb_item(nb_max(nb_abs(nb_sub(by, b1)))), 0);
    nb_tensor *a[2] = {nbt_leaf(NB_SHAPE(3, 2, 2, 2), 51), nbt_leaf(NB_SHAPE(2), 52)};
    ck_assert_gradcheck(f_bn_weight_only, NULL, 2, a, true);
    ck_assert_gradcheck(f_bn_bias_only, NULL, 2, a, true);

    nb_tensor *rm = T_F32(NB_SHAPE(3), 0.5, -1, 2), *rv = T_F32(NB_SHAPE(3), 1, 2, 3);
    nb_tensor *y = nb_batch_norm(nb_zeros(NB_SHAPE(0, 3, 2, 2), NB_F32), rm, rv, NULL, NULL, true, 0.1, 1e-5);
    ck_assert_tensor(y);
    ck_assert_shape(y, 0, 3, 2, 2);
    ck_assert_values(rm, 0, 0.5, -1, 2);
    ck_assert_values(rv, 0, 1, 2, 3);
    nb_module *layer = nb_batch_norm2d_new(3, 1e-5, 0.1, true);
    nb_batch_norm2d *bn = (nb_batch_norm2d *)layer;
    ck_assert_shape(nb_forward(layer, nb_zeros(NB_SHAPE(0, 3, 2, 2), NB_F32)), 0, 3, 2, 2);
    ck_assert_values(bn->num_batches_tracked, 0, 1);
    ck_assert_values(bn->running_mean, 0, 0, 0, 0);
    ck_assert_values(bn->running_var, 0, 1, 1, 1);
    nb_module_free(layer);
    nb_scope_end();
}
END_TEST

START_TEST(batch_norm2d_layer_train_and_eval)
{
    nb_module *bn = nb_batch_norm2d_new(3, 1e-5, 0.1, true);
    ck_assert_ptr_nonnull(bn);
    nb_param_list *params = nb_module_parameters(bn);
    ck_assert_int_eq(params->count, 5);
    const char *names[5] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
    for (int i = 0; i < 5; i++) ck_assert_str_eq(params->items[i].name, names[i]);
    nb_param_list_free(params);
    nb_batch_norm2d *b = (nb_batch_norm2d *)bn;
    nb_scope_begin();
    ck_assert_ok(nb_copy_(b->weight, PW(3)));
    ck_assert_ok(nb_copy_(b->bias, PB(3)));
    nb_tensor *x = PX(4, 3, 3, 2);
    nb_tensor *y = nb_forward(bn, x);
    ck_assert_summary(y, 1e-5, -7.2, 1.48672619381, -1.31771737978, -0.702376479259, -0.193869314384,
                      0.138980055597);
    ck_assert_values(b->running_mean, 1e-6, 0.11116884433, -0.0689278039437, -0.0278279235036);
    ck_assert_values(b->running_var, 1e-6, 0.917633596118, 0.96105247395, 0.983748801958);
    ck_assert_int_eq((int)nb_item(b->num_batches_tracked), 1);
    nb_module_train(bn, false);
    y = nb_forward(bn, x);
    ck_assert_summary(y, 1e-5, 3.67473359499, 2.44833627838, -0.180761731113, 0.0833090529752, 0.301532619181,
                      0.44437343155);
    ck_assert_int_eq((int)nb_item(b->num_batches_tracked), 1);
    ck_assert_ptr_null(nb_forward(bn, nb_zeros(NB_SHAPE(2, 4, 2, 2), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_batch_norm2d", "(N, 3, H, W)", "(2, 4, 2, 2)");
    nb_scope_end();
    nb_module_free(bn);
}
END_TEST

START_TEST(dropout2d_drops_whole_channels)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 3);
    nb_tensor *x = nb_ones(NB_SHAPE(8, 16, 3, 3), NB_F32);
    nb_tensor *y = nb_dropout2d(x, 0.25, true, &g);
    int dropped = 0;
    for (int64_t p = 0; p < 8 * 16; p++) {
        double first = nb_get_flat(y, p * 9);
        ck_assert_msg(first == 0 || fabs(first - 1 / 0.75) < 1e-6, "value %g", first);
        for (int64_t k = 1; k < 9; k++) ck_assert_close(nb_get_flat(y, p * 9 + k), first, 0);
        dropped += first == 0;
    }
    ck_assert_msg(dropped > 16 && dropped < 48, "%d of 128 channels dropped with p = 0.25", dropped);
    /* eval and p = 0 give the input back; p = 1 gives zeros */
    ck_assert_values(nb_sum(nb_dropout2d(x, 0.5, false, &g), 0, NULL, false), 0, 8 * 16 * 9);
    ck_assert_values(nb_sum(nb_dropout2d(x, 0, true, &g), 0, NULL, false), 0, 8 * 16 * 9);
    ck_assert_values(nb_sum(nb_dropout2d(x, 1, true, &g), 0, NULL, false), 0, 0);
    nb_module *layer = nb_dropout2d_new(0.5, &g);
    ck_assert_shape(nb_forward(layer, x), 8, 16, 3, 3);
    nb_module_free(layer);
    nb_scope_end();
}
END_TEST

/* torch 1.13: F.dropout2d(x, 0.5, training=False) returns x for any rank (a warning below 3-d or above 4-d), while
 * training still needs (N, C, H, W) or (N, C, L) here. */
START_TEST(dropout2d_eval_takes_any_rank)
{
    nb_scope_begin();
    nb_tensor *ins[4] = {nb_scalar(2.5, NB_F64), T_F64(NB_SHAPE(3), 1, -2, 3), T_F64(NB_SHAPE(2, 3), 1, 2, 3, 4, 5, 6),
                         nb_full(NB_SHAPE(1, 2, 2, 2, 2), 1.5, NB_F64)};
    for (int k = 0; k < 4; k++) {
        nb_set_requires_grad(ins[k], true);
        nb_tensor *y = nb_dropout2d(ins[k], 0.5, false, NULL);
        ck_assert_msg(y != NULL, "rank %d: %s", nb_ndim(ins[k]), nb_last_error());
        ck_assert_int_eq(nb_ndim(y), nb_ndim(ins[k]));
        for (int64_t i = 0; i < nb_numel(y); i++) ck_assert_close(nb_get_flat(y, i), nb_get_flat(ins[k], i), 0);
        ck_assert_ok(nb_backward(nb_sum(nb_mul_scalar(y, 3), 0, NULL, false)));
        for (int64_t i = 0; i < nb_numel(y); i++) ck_assert_close(nb_get_flat(nb_grad(ins[k]), i), 3, 0);
    }
    ck_assert_values(nb_dropout2d(T_I64(NB_SHAPE(2), 4, 5), 0.5, false, NULL), 0, 4, 5);
    ck_assert_ptr_null(nb_dropout2d(ins[2], 0.5, true, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_dropout2d", "(2, 3)");
    ck_assert_ptr_null(nb_dropout2d(ins[2], 2, false, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_dropout2d", "2");
    nb_scope_end();
}
END_TEST

/* PyTorch 1.13, float64, x = the (1, 1, 4, 4) tensor below requiring grad, c = [[1, -2], [3, 0.5]] for 2x2 outputs
 * and arange(1, 10) as (3, 3) for adaptive_avg_pool2d(x, 3):
 *   gx, = torch.autograd.grad((pool(x) * c).sum(), x, create_graph=True)
 * gx.requires_grad is True (max_pool2d_with_indices_backward, avg_pool2d_backward and
 * adaptive_avg_pool2d_backward depend on x with a zero derivative); (gx * gx).sum().backward() leaves x.grad zeros.
 * gx values below. */
START_TEST(pooling_gradients_depend_on_input)
{
    static const double max_gx[16] = {0, 1, 0, 0, 0, 0, -2, 0, 0, 3, 0, 0, 0, 0, 0.5, 0};
    static const double avg_gx[16] = {0.25, 0.25, -0.5, -0.5, 0.25, 0.25, -0.5, -0.5,
                                      0.75, 0.75, 0.125, 0.125, 0.75, 0.75, 0.125, 0.125};
    static const double pad_gx[16] = {0.25, -1.0 / 12, -1.0 / 3, -1.0 / 3, 0.75, 17.0 / 36, -5.0 / 18, -5.0 / 18,
                                      0.5, 5.0 / 9, 1.0 / 18, 1.0 / 18, 0.5, 5.0 / 9, 1.0 / 18, 1.0 / 18};
    static const double ada_gx[16] = {0.25, 0.75, 1.25, 0.75, 1.25, 3, 4, 2.25, 2.75, 6, 7, 3.75, 1.75, 3.75, 4.25, 2.25};
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(1, 1, 4, 4), 0.1, 0.9, -0.3, 0.4, 0.5, -0.2, 0.8, 0.7, -1.0, 0.6, 0.2, 0.3, 0.0, -0.4,
                         1.2, -0.5);
    nb_set_requires_grad(x, true);
    nb_tensor *c2 = T_F64(NB_SHAPE(1, 1, 2, 2), 1, -2, 3, 0.5);
    nb_tensor *c3 = nb_reshape(nb_arange(1, 10, 1, NB_F64), NB_SHAPE(1, 1, 3, 3));
    const int64_t k2[2] = {2, 2}, k3[2] = {3, 3}, s2[2] = {2, 2}, p1[2] = {1, 1};
    for (int k = 0; k < 4; k++) {
        nb_tensor *out = k == 0   ? nb_max_pool2d(x, k2, NULL, NULL, NULL)
                         : k == 1 ? nb_avg_pool2d(x, k2, NULL, NULL, true)
                         : k == 2 ? nb_avg_pool2d(x, k3, s2, p1, false)
                                  : nb_adaptive_avg_pool2d(x, 3, 3);
        const double *want = k == 0 ? max_gx : k == 1 ? avg_gx : k == 2 ? pad_gx : ada_gx;
        nb_tensor *gx;
        ck_assert_ok(nb_grad_of(nb_sum(nb_mul(out, k == 3 ? c3 : c2), 0, NULL, false), NULL, 1, &x, &gx,
                                NB_CREATE_GRAPH));
        for (int j = 0; j < 16; j++) ck_assert_close(nb_get_flat(gx, j), want[j], 1e-15);
        ck_assert_msg(nb_requires_grad(gx), "case %d: the gradient does not depend on x", k);
        ck_assert_ok(nb_backward(nb_sum(nb_square(gx), 0, NULL, false)));
        for (int j = 0; j < 16; j++) ck_assert_close(nb_get_flat(nb_grad(x), j), 0, 0);
        nb_zero_grad(x);
    }
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Layers
 * ---------------------------------------------------------------------------------------------- */
START_TEST(conv2d_layer_init_and_names)
{
    nb_generator g;
    nb_generator_seed(&g, 11);
    nb_module *m = nb_conv2d_new(16, 32, 3, 1, 1, 1, 2, true, &g);
    ck_assert_ptr_nonnull(m);
    nb_conv2d_layer *c = (nb_conv2d_layer *)m;
    ck_assert_shape(c->weight, 32, 8, 3, 3);
    ck_assert_shape(c->bias, 32);
    ck_assert(nb_requires_grad(c->weight));
    /* U(-b, b) with b = 1/sqrt(8 * 9): every value inside, mean near 0, std near b/sqrt(3) (PyTorch: 0.0681) */
    double bound = 1 / sqrt(72.0), sum = 0, sq = 0;
    int64_t n = nb_numel(c->weight);
    for (int64_t i = 0; i < n; i++) {
        double v = nb_get_flat(c->weight, i);
        ck_assert(fabs(v) <= bound);
        sum += v;
        sq += v * v;
    }
    ck_assert_close(sum / (double)n, 0, 0.005);
    ck_assert_close(sqrt(sq / (double)n), bound / sqrt(3.0), 0.003);
    for (int64_t i = 0; i < 32; i++) ck_assert(fabs(nb_get_flat(c->bias, i)) <= bound);
    nb_param_list *params = nb_module_parameters(m);
    ck_assert_int_eq(params->count, 2);
    ck_assert_str_eq(params->items[0].name, "weight");
    ck_assert_str_eq(params->items[1].name, "bias");
    nb_param_list_free(params);
    nb_scope_begin();
    ck_assert_shape(nb_forward(m, nb_zeros(NB_SHAPE(2, 16, 5, 5), NB_F32)), 2, 32, 5, 5);
    nb_scope_end();
    nb_module_free(m);

    nb_conv2d_options o = {.kernel_size = {3, 5}, .stride = {2, 1}, .padding = {1, 2}, .no_bias = true};
    m = nb_conv2d_new_ex(3, 4, &o, &g);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_null(((nb_conv2d_layer *)m)->bias);
    nb_scope_begin();
    ck_assert_shape(nb_forward(m, nb_zeros(NB_SHAPE(1, 3, 7, 6), NB_F32)), 1, 4, 4, 6);
    nb_scope_end();
    nb_module_free(m);

    m = nb_conv1d_new(4, 6, 3, 2, 1, 1, 2, true, &g);
    ck_assert_shape(((nb_conv2d_layer *)m)->weight, 6, 2, 3);
    nb_scope_begin();
    ck_assert_shape(nb_forward(m, nb_zeros(NB_SHAPE(2, 4, 9), NB_F32)), 2, 6, 5);
    nb_scope_end();
    nb_module_free(m);

    ck_assert_ptr_null(nb_conv2d_new(6, 4, 3, 1, 0, 1, 4, true, &g));
    ck_assert_error(NB_ERR_ARG, "nb_conv2d_new", "groups 4", "in_channels 6");
    ck_assert_ptr_null(nb_conv2d_new(6, 4, 0, 1, 0, 1, 1, true, &g));
    ck_assert_error(NB_ERR_ARG, "nb_conv2d_new", "kernel_size (0, 0)");
    ck_assert_ptr_null(nb_conv2d_new(6, 4, 3, 0, 0, 1, 1, true, &g));
    ck_assert_error(NB_ERR_ARG, "nb_conv2d_new", "stride 0");
}
END_TEST

START_TEST(pooling_layers)
{
    nb_module *mp = nb_max_pool2d_new(2, 0, 0), *ap = nb_avg_pool2d_new(3, 2, 1, true);
    nb_module *ad = nb_adaptive_avg_pool2d_new(1, 1);
    nb_module *flat = nb_flatten_layer_new(1, -1);
    nb_scope_begin();
    nb_tensor *x = PX(2, 3, 7, 6);
    ck_assert_shape(nb_forward(mp, x), 2, 3, 3, 3);
    ck_assert_shape(nb_forward(ap, x), 2, 3, 4, 3);
    ck_assert_summary(nb_forward(ap, x), 1e-9, 0.509591790499, 0.37719305725, 0.286891704703, 0.394436821381,
                      0.185295297569, 0.0685066969336);
    ck_assert_shape(nb_forward(flat, nb_forward(ad, x)), 2, 3);
    nb_scope_end();
    nb_module_free(mp);
    nb_module_free(ap);
    nb_module_free(ad);
    nb_module_free(flat);
    ck_assert_ptr_null(nb_max_pool2d_new(2, 1, 2));
    ck_assert_error(NB_ERR_ARG, "nb_max_pool2d_new", "padding 2");
    ck_assert_ptr_null(nb_adaptive_avg_pool2d_new(0, 1));
    ck_assert_error(NB_ERR_ARG, "nb_adaptive_avg_pool2d_new", "(0, 1)");
    ck_assert_ptr_null(nb_dropout2d_new(1.5, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_dropout2d_new", "1.5");
    ck_assert_ptr_null(nb_batch_norm2d_new(0, 1e-5, 0.1, true));
    ck_assert_error(NB_ERR_ARG, "nb_batch_norm2d_new", "num_features");
}
END_TEST

/* A small CNN trains: the loss of a fixed batch falls under SGD. */
START_TEST(small_cnn_learns)
{
    nb_generator g;
    nb_generator_seed(&g, 1);
    nb_module *layers[] = {nb_conv2d_new(1, 4, 3, 1, 1, 1, 1, true, &g), nb_batch_norm2d_new(4, 1e-5, 0.1, true),
                           nb_relu_layer_new(), nb_max_pool2d_new(2, 0, 0), nb_dropout2d_new(0.1, &g),
                           nb_flatten_layer_new(1, -1), nb_linear_new(4 * 4 * 4, 3, true, &g)};
    nb_module *net = nb_sequential_new(7, layers);
    ck_assert_ptr_nonnull(net);
    nb_param_list *params = nb_module_parameters(net);
    ck_assert_ptr_nonnull(nb_param_list_find(params, "0.weight"));
    ck_assert_ptr_nonnull(nb_param_list_find(params, "1.running_var"));
    nb_tensor *x = nb_randn(NB_SHAPE(6, 1, 8, 8), 0, 1, NB_F32, &g);
    nb_tensor *y = T_I64(NB_SHAPE(6), 0, 1, 2, 0, 1, 2);
    double first = 0, last = 0;
    int64_t live = live_tensors();
    for (int step = 0; step < 30; step++) {
        nb_scope_begin();
        nb_tensor *loss = nb_cross_entropy(nb_forward(net, x), y, NULL);
        ck_assert_tensor(loss);
        ck_assert_ok(nb_backward(loss));
        if (step == 0) first = nb_item(loss);
        last = nb_item(loss);
        nb_no_grad_begin();
        for (int i = 0; i < params->count; i++) {
            nb_tensor *p = params->items[i].tensor, *gr = nb_grad(p);
            if (!params->items[i].is_buffer && gr) ck_assert_ok(nb_copy_(p, nb_sub(p, nb_mul_scalar(gr, 0.1))));
            if (!params->items[i].is_buffer) nb_zero_grad(p);
        }
        nb_no_grad_end();
        nb_scope_end();
        if (step == 1) live = live_tensors();
        if (step > 1) ck_assert_int_eq(live_tensors(), live); /* flat memory */
    }
    ck_assert_msg(last < 0.5 * first, "loss %g -> %g", first, last);
    nb_param_list_free(params);
    nb_free(x);
    nb_free(y);
    nb_module_free(net);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Errors and memory
 * ---------------------------------------------------------------------------------------------- */
START_TEST(conv_errors)
{
    nb_scope_begin();
    nb_tensor *x = nb_zeros(NB_SHAPE(2, 4, 5, 5), NB_F32), *w = nb_zeros(NB_SHAPE(6, 3, 3, 3), NB_F32);
    ck_assert_ptr_null(nb_conv2d(x, w, NULL, NULL, NULL, NULL, 1));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv2d", "(6, 3, 3, 3)", "expects 3 input channels", "(2, 4, 5, 5)");
    nb_tensor *w2 = nb_zeros(NB_SHAPE(6, 2, 3, 3), NB_F32);
    ck_assert_ptr_null(nb_conv2d(x, w2, NULL, NULL, NULL, NULL, 3));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv2d", "groups 3 must divide", "4 input channels");
    ck_assert_ptr_null(nb_conv2d(x, w2, NULL, NULL, NULL, NULL, 0));
    ck_assert_error(NB_ERR_ARG, "nb_conv2d", "groups must be >= 1, got 0");
    ck_assert_ptr_null(nb_conv2d(x, w2, NULL, (const int64_t[]){-1, 1}, NULL, NULL, 2));
    ck_assert_error(NB_ERR_ARG, "nb_conv2d", "stride must be >= 1", "(-1, 1)");
    ck_assert_ptr_null(nb_conv2d(x, w2, NULL, NULL, (const int64_t[]){0, -2}, NULL, 2));
    ck_assert_error(NB_ERR_ARG, "nb_conv2d", "padding must be >= 0", "(0, -2)");
    ck_assert_ptr_null(nb_conv2d(x, w2, NULL, NULL, NULL, (const int64_t[]){1, 0}, 2));
    ck_assert_error(NB_ERR_ARG, "nb_conv2d", "dilation must be >= 1", "(1, 0)");
    ck_assert_ptr_null(nb_conv2d(x, w2, NULL, NULL, NULL, (const int64_t[]){3, 1}, 2));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv2d", "spans (7, 3)", "padded input (5, 5)", "(2, 4, 5, 5)");
    nb_tensor *small = nb_zeros(NB_SHAPE(1, 4, 2, 2), NB_F32);
    ck_assert_ptr_null(nb_conv2d(small, w2, NULL, NULL, NULL, NULL, 2));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv2d", "kernel (3, 3)", "padded input (2, 2)");
    ck_assert_ptr_nonnull(nb_conv2d(small, w2, NULL, NULL, one2, NULL, 2)); /* padding makes room */
    ck_assert_ptr_null(nb_conv2d(x, w2, nb_zeros(NB_SHAPE(5), NB_F32), NULL, NULL, NULL, 2));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv2d", "bias of shape (5)", "6 output channels");
    ck_assert_ptr_null(nb_conv2d(x, nb_zeros(NB_SHAPE(6, 2, 3, 3), NB_F64), NULL, NULL, NULL, NULL, 2));
    ck_assert_error(NB_ERR_DTYPE, "nb_conv2d", "f32", "f64");
    ck_assert_ptr_null(nb_conv2d(nb_zeros(NB_SHAPE(2, 4, 5, 5), NB_I64), w2, NULL, NULL, NULL, NULL, 2));
    ck_assert_error(NB_ERR_DTYPE, "nb_conv2d", "i64");
    ck_assert_ptr_null(nb_conv2d(nb_zeros(NB_SHAPE(4, 5, 5), NB_F32), w2, NULL, NULL, NULL, NULL, 2));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv2d", "4-d input", "(4, 5, 5)");
    nb_clear_error();
    ck_assert_ptr_null(nb_conv2d(NULL, w2, NULL, NULL, NULL, NULL, 2));
    ck_assert_error(NB_ERR_NULL, "nb_conv2d", "input");

    ck_assert_ptr_null(nb_conv1d(nb_zeros(NB_SHAPE(2, 3, 4), NB_F32), nb_zeros(NB_SHAPE(2, 3, 5), NB_F32), NULL, 1, 0,
                                 1, 1));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv1d", "kernel (1, 5)", "(2, 3, 4)");
    ck_assert_ptr_null(nb_conv1d(x, w2, NULL, 1, 0, 1, 1));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv1d", "3-d input", "(2, 4, 5, 5)");

    nb_tensor *wt = nb_zeros(NB_SHAPE(4, 3, 3, 3), NB_F32);
    ck_assert_ptr_null(nb_conv_transpose2d(x, wt, NULL, NULL, NULL, one2, NULL, 1));
    ck_assert_error(NB_ERR_ARG, "nb_conv_transpose2d", "output_padding (1, 1)", "stride (1, 1)");
    ck_assert_ptr_null(nb_conv_transpose2d(nb_zeros(NB_SHAPE(2, 3, 5, 5), NB_F32), wt, NULL, NULL, NULL, NULL, NULL, 1));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv_transpose2d", "(4, 3, 3, 3)", "(2, 3, 5, 5)");
    ck_assert_ptr_null(nb_conv_transpose2d(x, wt, NULL, NULL, NULL, NULL, NULL, 0));
    ck_assert_error(NB_ERR_ARG, "nb_conv_transpose2d", "groups must be >= 1, got 0");
    ck_assert_ptr_null(nb_conv_transpose2d(nb_zeros(NB_SHAPE(1, 4, 1, 1), NB_F32), wt, NULL, NULL,
                                           (const int64_t[]){2, 2}, NULL, NULL, 1));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv_transpose2d", "empty output (-1, -1)", "(1, 4, 1, 1)");
    ck_assert_ptr_null(nb_conv_transpose2d(x, wt, nb_zeros(NB_SHAPE(4), NB_F32), NULL, NULL, NULL, NULL, 1));
    ck_assert_error(NB_ERR_SHAPE, "nb_conv_transpose2d", "bias of shape (4)", "3 output channels");
    nb_scope_end();
}
END_TEST

START_TEST(pool_and_norm_errors)
{
    nb_scope_begin();
    nb_tensor *x = nb_zeros(NB_SHAPE(2, 3, 5, 5), NB_F32);
    const int64_t k2[2] = {2, 2};
    ck_assert_ptr_null(nb_max_pool2d(x, k2, NULL, (const int64_t[]){2, 0}, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_max_pool2d", "padding (2, 0)", "half of kernel (2, 2)");
    ck_assert_ptr_null(nb_max_pool2d(x, (const int64_t[]){0, 2}, NULL, NULL, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_max_pool2d", "kernel (0, 2)");
    ck_assert_ptr_null(nb_avg_pool2d(x, k2, (const int64_t[]){1, -1}, NULL, true));
    ck_assert_error(NB_ERR_ARG, "nb_avg_pool2d", "stride (1, -1)");
    ck_assert_ptr_null(nb_avg_pool2d(x, (const int64_t[]){6, 2}, NULL, NULL, true));
    ck_assert_error(NB_ERR_SHAPE, "nb_avg_pool2d", "kernel (6, 2)", "padded input (5, 5)", "(2, 3, 5, 5)");
    ck_assert_ptr_null(nb_max_pool2d(x, NULL, NULL, NULL, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_max_pool2d", "kernel");
    ck_assert_ptr_null(nb_max_pool2d(nb_zeros(NB_SHAPE(3, 5, 5), NB_F32), k2, NULL, NULL, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_max_pool2d", "4-d input", "(3, 5, 5)");
    ck_assert_ptr_null(nb_max_pool2d(nb_zeros(NB_SHAPE(1, 1, 5, 5), NB_I64), k2, NULL, NULL, NULL));
    ck_assert_error(NB_ERR_DTYPE, "nb_max_pool2d", "i64");
    ck_assert_ptr_null(nb_adaptive_avg_pool2d(x, 0, 2));
    ck_assert_error(NB_ERR_ARG, "nb_adaptive_avg_pool2d", "(0, 2)");

    nb_tensor *c3 = nb_ones(NB_SHAPE(3), NB_F32);
    ck_assert_ptr_null(nb_batch_norm(x, nb_zeros(NB_SHAPE(4), NB_F32), c3, NULL, NULL, true, 0.1, 1e-5));
    ck_assert_error(NB_ERR_SHAPE, "nb_batch_norm", "running_mean", "(3)", "(4)");
    ck_assert_ptr_null(nb_batch_norm(x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5));
    ck_assert_error(NB_ERR_ARG, "nb_batch_norm", "evaluation mode needs running_mean");
    ck_assert_ptr_null(nb_batch_norm(x, NULL, NULL, NULL, NULL, true, 1.5, 1e-5));
    ck_assert_error(NB_ERR_ARG, "nb_batch_norm", "momentum", "1.5");
    ck_assert_ptr_null(nb_batch_norm(x, NULL, NULL, NULL, NULL, true, 0.1, -1));
    ck_assert_error(NB_ERR_ARG, "nb_batch_norm", "eps");
    ck_assert_ptr_null(nb_batch_norm(nb_zeros(NB_SHAPE(1, 3, 1, 1), NB_F32), NULL, NULL, NULL, NULL, true, 0.1, 1e-5));
    ck_assert_error(NB_ERR_SHAPE, "nb_batch_norm", "more than 1 value per channel", "(1, 3, 1, 1)");
    ck_assert_ptr_null(nb_dropout2d(x, -0.5, true, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_dropout2d", "-0.5");
    ck_assert_ptr_null(nb_dropout2d(nb_zeros(NB_SHAPE(5, 5), NB_F32), 0.5, true, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_dropout2d", "(5, 5)");
    ck_assert_ptr_null(nb_dropout2d(nb_zeros(NB_SHAPE(2, 2, 5), NB_I64), 0.5, true, NULL));
    ck_assert_error(NB_ERR_DTYPE, "nb_dropout2d", "i64", "(2, 2, 5)");
    ck_assert_ptr_null(nb_batch_norm(x, nb_zeros(NB_SHAPE(3), NB_I64), c3, NULL, NULL, true, 0.1, 1e-5));
    ck_assert_error(NB_ERR_DTYPE, "nb_batch_norm", "running_mean", "i64 (3)");
    ck_assert_ptr_null(nb_batch_norm(nb_zeros(NB_SHAPE(4), NB_F32), NULL, NULL, NULL, NULL, true, 0.1, 1e-5));
    ck_assert_error(NB_ERR_SHAPE, "nb_batch_norm", "at least 2 dims", "(4)");
    ck_assert_ptr_null(nb_batch_norm(x, c3, NULL, NULL, NULL, true, 0.1, 1e-5));
    ck_assert_error(NB_ERR_ARG, "nb_batch_norm", "running_mean and running_var");
    ck_assert_ptr_null(nb_adaptive_avg_pool2d(nb_zeros(NB_SHAPE(3, 5, 5), NB_F32), 2, 2));
    ck_assert_error(NB_ERR_SHAPE, "nb_adaptive_avg_pool2d", "4-d input", "(3, 5, 5)");
    nb_scope_end();
}
END_TEST

/* Outside any scope the caller owns only the results: the composite ops free their temporaries (without grad
 * nothing else stays alive; with grad the graph holds its nodes until the results are freed). */
static void run_all(nb_tensor *x, nb_tensor *w, nb_tensor *x1, nb_tensor *w1, nb_tensor **r)
{
    const int64_t k[2] = {2, 2};
    nb_tensor *xt = nb_transpose(x, 2, 3);
    r[0] = nb_conv2d(xt, w, NULL, NULL, one2, NULL, 1);
    r[1] = nb_conv1d(x1, w1, NULL, 1, 1, 1, 1);
    r[2] = nb_conv_transpose2d(r[0], w, NULL, NULL, one2, NULL, NULL, 1);
    r[3] = nb_max_pool2d(xt, k, NULL, NULL, NULL);
    r[4] = nb_avg_pool2d(xt, k, NULL, one2, false);
    r[5] = nb_adaptive_avg_pool2d(x, 4, 5);
    r[6] = nb_batch_norm(x, NULL, NULL, NULL, NULL, true, 0.1, 1e-5);
    r[7] = nb_dropout2d(x, 0.5, true, NULL);
    nb_free(xt);
    for (int i = 0; i < 8; i++) ck_assert_msg(r[i] != NULL, "result %d: %s", i, nb_last_error());
}

START_TEST(no_temporaries_leak)
{
    nb_tensor *x = nbt_leaf(NB_SHAPE(2, 3, 6, 6), 51), *w = nbt_leaf(NB_SHAPE(4, 3, 3, 3), 52);
    nb_tensor *x1 = nbt_leaf(NB_SHAPE(2, 3, 8), 53), *w1 = nbt_leaf(NB_SHAPE(4, 3, 3), 54);
    int64_t live = live_tensors();
    nb_tensor *r[8];
    nb_no_grad_begin();
    run_all(x, w, x1, w1, r);
    nb_no_grad_end();
    ck_assert_int_eq(live_tensors(), live + 8);
    for (int i = 0; i < 8; i++) nb_free(r[i]);
    ck_assert_int_eq(live_tensors(), live);

    run_all(x, w, x1, w1, r);
    nb_scope_begin(); /* the loss and its parts */
    nb_tensor *total = nb_sum(r[0], 0, NULL, false);
    for (int i = 1; i < 8; i++) total = nb_add(total, nb_sum(r[i], 0, NULL, false));
    ck_assert_ok(nb_backward(total));
    nb_scope_end();
    for (int i = 0; i < 8; i++) nb_free(r[i]);
    nb_tensor *leaves[4] = {x, w, x1, w1};
    for (int i = 0; i < 4; i++) nb_zero_grad(leaves[i]);
    ck_assert_int_eq(live_tensors(), live);
    for (int i = 0; i < 4; i++) nb_free(leaves[i]);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("conv");
    TCase *values = tcase_create("values");
    tcase_add_test(values, conv2d_matches_torch);
    tcase_add_test(values, conv1d_and_transpose_match_torch);
    tcase_add_test(values, pooling_matches_torch);
    tcase_add_test(values, max_pool_ties_go_to_first);
    tcase_add_test(values, max_pool_propagates_nan);
    tcase_add_test(values, same_results_for_any_thread_count);
    tcase_add_test(values, f32_agrees_with_f64);
    tcase_add_test(values, chunked_case_is_consistent);
    tcase_add_test(values, batch_norm_matches_torch);
    tcase_add_test(values, batch_norm_weight_or_bias_alone_and_empty_batch);
    tcase_add_test(values, dropout2d_drops_whole_channels);
    tcase_add_test(values, dropout2d_eval_takes_any_rank);
    suite_add_tcase(s, values);
    TCase *grads = tcase_create("gradients");
    tcase_set_timeout(grads, 300);
    tcase_add_test(grads, conv2d_gradients);
    tcase_add_test(grads, conv1d_and_transpose_gradients);
    tcase_add_test(grads, pooling_gradients);
    tcase_add_test(grads, batch_norm_and_dropout2d_gradients);
    tcase_add_test(grads, pooling_gradients_depend_on_input);
    suite_add_tcase(s, grads);
    TCase *layers = tcase_create("layers");
    tcase_add_test(layers, conv2d_layer_init_and_names);
    tcase_add_test(layers, pooling_layers);
    tcase_add_test(layers, batch_norm2d_layer_train_and_eval);
    tcase_add_test(layers, small_cnn_learns);
    suite_add_tcase(s, layers);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, conv_errors);
    tcase_add_test(errors, pool_and_norm_errors);
    tcase_add_test(errors, no_temporaries_leak);
    suite_add_tcase(s, errors);
    return s;
}

NB_TEST_MAIN()
