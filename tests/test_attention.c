/* Attention, transformer blocks, the GPT and LoRA: values (hand-computed, and PyTorch's from
 * tests/reference/attention_reference.py), gradient checks, causality, names, sampling, LoRA's exactness at
 * initialization, merging, adapter-only checkpoints, errors and memory. */
#include "helpers.h"

#include <unistd.h>

static int64_t live_tensors(void) { return nb_memory_stats_get().live_tensors; }

/* ------------------------------------------------------------------------------------------------
 * Helpers: modules in f64 with the reference script's deterministic values
 * ---------------------------------------------------------------------------------------------- */
/* Replaces a module's f32 parameter by an f64 leaf with the same values and requires_grad flag. Called outside
 * any scope: the module owns the new tensor and frees it. */
static void slot_to_f64(nb_tensor **slot)
{
    if (!*slot) return;
    nb_no_grad_begin();
    nb_tensor *t = nb_to_dtype(*slot, NB_F64);
    nb_no_grad_end();
    ck_assert_tensor(t);
    ck_assert_ok(nb_set_requires_grad(t, nb_requires_grad(*slot)));
    nb_free(*slot);
    *slot = t;
}

static void linear_to_f64(nb_module *m)
{
    nb_linear *l = (nb_linear *)m;
    slot_to_f64(&l->weight);
    slot_to_f64(&l->bias);
}

static void layer_norm_to_f64(nb_module *m)
{
    nb_layer_norm *l = (nb_layer_norm *)m;
    slot_to_f64(&l->weight);
    slot_to_f64(&l->bias);
}

static void attention_to_f64(nb_module *m)
{
    nb_self_attention *a = (nb_self_attention *)m;
    linear_to_f64(a->qkv);
    linear_to_f64(a->proj);
}

static void block_to_f64(nb_module *m)
{
    nb_transformer_block *b = (nb_transformer_block *)m;
    layer_norm_to_f64(b->ln1);
    attention_to_f64(b->attn);
    layer_norm_to_f64(b->ln2);
    linear_to_f64(b->fc);
    linear_to_f64(b->proj);
}

static void gpt_to_f64(nb_module *m)
{
    nb_gpt *g = (nb_gpt *)m;
    slot_to_f64(&((nb_embedding_layer *)g->tok_emb)->weight);
    slot_to_f64(&((nb_embedding_layer *)g->pos_emb)->weight);
    for (int i = 0; i < g->config.n_layer; i++) block_to_f64(nb_sequential_get(g->blocks, i));
    layer_norm_to_f64(g->ln_f);
    if (g->head) linear_to_f64(g->head);
}

/* a sin(b i + c), the reference script's vals(). */
static nb_tensor *sin_tensor(int ndim, const int64_t *shape, double a, double b, double c)
{
    nb_tensor *t = nb_empty(ndim, shape, NB_F64);
    for (int64_t i = 0; i < nb_numel(t); i++) nb_set_flat(t, i, a * sin(b * (double)i + c));
    return t;
}

/* Parameter k of the list (in collect order) gets 0.4 sin(0.37 i + 1.3 k + 0.5), as fill() in the script. */
static void fill_params(nb_module *m)
{
    nb_param_list *p = nb_module_parameters(m);
    ck_assert_ptr_nonnull(p);
    for (int k = 0; k < p->count; k++)
        for (int64_t i = 0; i < nb_numel(p->items[k].tensor); i++)
            ck_assert_ok(nb_set_flat(p->items[k].tensor, i, 0.4 * sin(0.37 * (double)i + 1.3 * k + 0.5)));
    nb_param_list_free(p);
}

/* Names of a list joined by spaces. */
static const char *names_of(const nb_param_list *list)
{
    static char buf[4096];
    buf[0] = 0;
    for (int i = 0; i < list->count; i++) {
        if (i) strncat(buf, " ", sizeof buf - strlen(buf) - 1);
        strncat(buf, list->items[i].name, sizeof buf - strlen(buf) - 1);
    }
    return buf;
}

/* Largest |a - b| over all elements (same shape). */
static double max_diff(nb_tensor *a, nb_tensor *b)
{
    ck_assert_tensor(a);
    ck_assert_tensor(b);
    ck_assert_int_eq(nb_numel(a), nb_numel(b));
    double m = 0;
    for (int64_t i = 0; i < nb_numel(a); i++) m = fmax(m, fabs(nb_get_flat(a, i) - nb_get_flat(b, i)));
    return m;
}

static nb_gpt_config tiny_config(int64_t vocab, bool tie)
{
    nb_gpt_config c = nb_gpt_defaults();
    c.vocab_size = vocab;
    c.context = 4;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 4;
    c.tie_weights = tie;
    return c;
}

/* ------------------------------------------------------------------------------------------------
 * Scaled dot-product attention
 * ---------------------------------------------------------------------------------------------- */
/* With q = 0 every allowed key gets the same weight: out row i is the mean of the value rows query i sees. */
START_TEST(sdpa_uniform_weights)
{
    nb_scope_begin();
    nb_tensor *q = nb_zeros(NB_SHAPE(3, 2), NB_F64), *k = nbt_leaf(NB_SHAPE(3, 2), 1);
    nb_tensor *v = T_F64(NB_SHAPE(3, 2), 1, 10, 2, 20, 6, 60);
    ck_assert_values(nb_scaled_dot_product_attention(q, k, v, NULL, false, 0, NULL), 1e-12, 3, 30, 3, 30, 3, 30);
    ck_assert_values(nb_scaled_dot_product_attention(q, k, v, NULL, true, 0, NULL), 1e-12, 1, 10, 1.5, 15, 3, 30);
    /* bool mask: true where attention is allowed (row 0 sees keys 1, 2; row 1 key 0; row 2 all) */
    nb_tensor *allowed = nb_to_dtype(T_I64(NB_SHAPE(3, 3), 0, 1, 1, 1, 0, 0, 1, 1, 1), NB_BOOL);
    ck_assert_values(nb_scaled_dot_product_attention(q, k, v, allowed, false, 0, NULL), 1e-12, 4, 40, 1, 10, 3, 30);
    /* a float mask is added to the scores: log weights 0, log 2, log 3 give 1/6, 2/6, 3/6 */
    nb_tensor *bias = T_F64(NB_SHAPE(3), 0, log(2.0), log(3.0));
    ck_assert_values(nb_scaled_dot_product_attention(q, k, v, bias, false, 0, NULL), 1e-12, 23.0 / 6, 230.0 / 6,
                     23.0 / 6, 230.0 / 6, 23.0 / 6, 230.0 / 6);
    /* one query longer than the keys: causal is top-left aligned, as PyTorch's tril of a (T, S) matrix */
    nb_tensor *q4 = nb_zeros(NB_SHAPE(4, 2), NB_F64);
    ck_assert_values(nb_scaled_dot_product_attention(q4, k, v, NULL, true, 0, NULL), 1e-12, 1, 10, 1.5, 15, 3, 30,
                     3, 30);
    nb_scope_end();
}
END_TEST

/* softmax(q k^T / sqrt(D)) v for one query, computed by hand. */
START_TEST(sdpa_scaled_scores)
{
    nb_scope_begin();
    nb_tensor *q = T_F64(NB_SHAPE(1, 4), 1, 2, 0, -1), *k = T_F64(NB_SHAPE(2, 4), 1, 0, 0, 0, 0, 1, 1, 1);
    nb_tensor *v = T_F64(NB_SHAPE(2, 1), 2, -4);
    /* scores 1/2 and 1/2 (D = 4): equal weights */
    ck_assert_values(nb_scaled_dot_product_attention(q, k, v, NULL, false, 0, NULL), 1e-12, -1);
    nb_tensor *q2 = T_F64(NB_SHAPE(1, 4), 2, 0, 0, 0); /* scores 1 and 0 */
    double w = exp(1.0) / (exp(1.0) + 1);
    ck_assert_values(nb_scaled_dot_product_attention(q2, k, v, NULL, false, 0, NULL), 1e-12, 2 * w - 4 * (1 - w));
    nb_scope_end();
}
END_TEST

static nb_tensor *f_sdpa(nb_tensor *const *x, void *ud)
{
    const int *mode = ud;
    return nb_scaled_dot_product_attention(x[0], x[1], x[2], mode[0] == 2 ? x[3] : NULL, mode[0] == 1, 0, NULL);
}

static nb_tensor *f_sdpa_bool(nb_tensor *const *x, void *ud)
{
    nb_tensor *allowed = ud;
    return nb_scaled_dot_product_attention(x[0], x[1], x[2], allowed, false, 0, NULL);
}

/* q, k and v handed over transposed: non-contiguous (D, T) leaves read as (T, D) */
static nb_tensor *f_sdpa_transposed(nb_tensor *const *x, void *ud)
{
    (void)ud;
    return nb_scaled_dot_product_attention(nb_transpose(x[0], -1, -2), nb_transpose(x[1], -1, -2),
                                           nb_transpose(x[2], -1, -2), NULL, true, 0, NULL);
}

START_TEST(sdpa_gradients)
{
    nb_scope_begin();
    int plain = 0, causal = 1, additive = 2;
    nb_tensor *x[4] = {nbt_leaf(NB_SHAPE(2, 3, 2), 1), nbt_leaf(NB_SHAPE(2, 4, 2), 2), nbt_leaf(NB_SHAPE(2, 4, 3), 3),
                       nbt_leaf(NB_SHAPE(3, 4), 4)};
    ck_assert_gradcheck(f_sdpa, &plain, 3, x, true);
    ck_assert_gradcheck(f_sdpa, &additive, 4, x, true);
    nb_tensor *c[3] = {nbt_leaf(NB_SHAPE(2, 3, 2), 5), nbt_leaf(NB_SHAPE(2, 3, 2), 6), nbt_leaf(NB_SHAPE(2, 3, 2), 7)};
    ck_assert_gradcheck(f_sdpa, &causal, 3, c, true);
    /* batch dims broadcast: q (2, 1, 3, 2) against k, v (2, 3, 2) */
    nb_tensor *bq[3] = {nbt_leaf(NB_SHAPE(2, 1, 3, 2), 8), c[1], c[2]};
    ck_assert_gradcheck(f_sdpa, &causal, 3, bq, true);
    nb_tensor *allowed = nb_to_dtype(T_I64(NB_SHAPE(3, 3), 1, 0, 1, 1, 1, 0, 0, 1, 1), NB_BOOL);
    ck_assert_gradcheck(f_sdpa_bool, allowed, 3, c, true);
    nb_tensor *t[3] = {nbt_leaf(NB_SHAPE(2, 3), 9), nbt_leaf(NB_SHAPE(2, 3), 10), nbt_leaf(NB_SHAPE(2, 3), 11)};
    ck_assert_gradcheck(f_sdpa_transposed, NULL, 3, t, true);
    nb_scope_end();
}
END_TEST

START_TEST(sdpa_dropout)
{
    nb_scope_begin();
    nb_generator g1, g2;
    nb_generator_seed(&g1, 7);
    nb_generator_seed(&g2, 7);
    /* v = 1: each output is the sum of the kept weights scaled by 1 / (1 - p); its mean over many rows is ~1 */
    nb_tensor *q = nb_randn(NB_SHAPE(256, 4), 0, 1, NB_F64, &g1), *k = nb_randn(NB_SHAPE(256, 4), 0, 1, NB_F64, &g1);
    nb_tensor *v = nb_ones(NB_SHAPE(256, 1), NB_F64);
    nb_tensor *a = nb_scaled_dot_product_attention(q, k, v, NULL, false, 0.25, &g1);
    nb_tensor *b = nb_scaled_dot_product_attention(q, k, v, NULL, false, 0.25, &g2);
    nb_generator_seed(&g2, 7); /* re-seeded: the same q, k, then the same mask */
    ck_assert_tensor(a);
    double mean = nb_item(nb_mean(a, 0, NULL, false));
    ck_assert_msg(fabs(mean - 1) < 0.05, "mean %g", mean);
    ck_assert_msg(max_diff(a, v) > 0.1, "dropout changed nothing");
    ck_assert_msg(max_diff(a, b) > 0, "two draws gave the same mask");
    nb_randn(NB_SHAPE(256, 4), 0, 1, NB_F64, &g2);
    nb_randn(NB_SHAPE(256, 4), 0, 1, NB_F64, &g2);
    ck_assert_msg(max_diff(a, nb_scaled_dot_product_attention(q, k, v, NULL, false, 0.25, &g2)) == 0,
                  "same generator state, different mask");
    nb_scope_end();
}
END_TEST

START_TEST(sdpa_errors)
{
    nb_scope_begin();
    nb_tensor *q = nb_zeros(NB_SHAPE(2, 3, 4), NB_F32), *k = nb_zeros(NB_SHAPE(2, 5, 4), NB_F32);
    nb_tensor *v = nb_zeros(NB_SHAPE(2, 5, 6), NB_F32);
    ck_assert_ptr_null(nb_scaled_dot_product_attention(q, k, nb_zeros(NB_SHAPE(2, 4, 6), NB_F32), NULL, false, 0,
                                                       NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_scaled_dot_product_attention", "(2, 3, 4)", "(2, 5, 4)", "(2, 4, 6)");
    ck_assert_ptr_null(nb_scaled_dot_product_attention(q, nb_zeros(NB_SHAPE(2, 5, 3), NB_F32), v, NULL, false, 0,
                                                       NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_scaled_dot_product_attention", "(2, 5, 3)");
    ck_assert_ptr_null(nb_scaled_dot_product_attention(nb_zeros(NB_SHAPE(4), NB_F32), k, v, NULL, false, 0, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_scaled_dot_product_attention", "(4)");
    ck_assert_ptr_null(nb_scaled_dot_product_attention(q, k, v, nb_zeros(NB_SHAPE(3, 5), NB_F32), true, 0, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_scaled_dot_product_attention", "causal", "attn_mask");
    ck_assert_ptr_null(nb_scaled_dot_product_attention(q, k, v, NULL, false, 1.0, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_scaled_dot_product_attention", "dropout", "1");
    ck_assert_ptr_null(nb_scaled_dot_product_attention(nb_zeros(NB_SHAPE(2, 3, 4), NB_I64), k, v, NULL, false, 0,
                                                       NULL));
    ck_assert_error(NB_ERR_DTYPE, "nb_scaled_dot_product_attention", "i64");
    ck_assert_ptr_null(nb_scaled_dot_product_attention(q, k, v, nb_zeros(NB_SHAPE(3, 5), NB_I64), false, 0, NULL));
    ck_assert_error(NB_ERR_DTYPE, "nb_scaled_dot_product_attention", "attn_mask", "i64");
    /* a mask that does not broadcast to the scores (2, 3, 5) */
    ck_assert_ptr_null(nb_scaled_dot_product_attention(q, k, v, nb_zeros(NB_SHAPE(3, 4), NB_F32), false, 0, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_scaled_dot_product_attention", "attn_mask", "(3, 4)", "(2, 3, 5)");
    ck_assert_ptr_null(nb_scaled_dot_product_attention(q, k, v, nb_zeros(NB_SHAPE(3, 4), NB_BOOL), false, 0, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_scaled_dot_product_attention", "attn_mask", "(3, 4)", "(2, 3, 5)");
    /* nor one that would enlarge them */
    ck_assert_ptr_null(nb_scaled_dot_product_attention(q, k, v, nb_zeros(NB_SHAPE(4, 2, 3, 5), NB_BOOL), false, 0,
                                                       NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_scaled_dot_product_attention", "attn_mask", "(4, 2, 3, 5)");
    /* batch dims of q and k that do not broadcast */
    ck_assert_ptr_null(nb_scaled_dot_product_attention(q, nb_zeros(NB_SHAPE(3, 5, 4), NB_F32),
                                                       nb_zeros(NB_SHAPE(3, 5, 6), NB_F32), NULL, false, 0, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_scaled_dot_product_attention", "(2)", "(3)");
    /* a mask that broadcasts is accepted: (3, 5), (1, 3, 1) */
    ck_assert_ptr_nonnull(nb_scaled_dot_product_attention(q, k, v, nb_zeros(NB_SHAPE(3, 5), NB_F32), false, 0, NULL));
    ck_assert_ptr_nonnull(nb_scaled_dot_product_attention(q, k, v, nb_ones(NB_SHAPE(1, 3, 1), NB_BOOL), false, 0,
                                                          NULL));
    /* NULL propagates */
    ck_assert_ptr_null(nb_scaled_dot_product_attention(NULL, k, v, NULL, false, 0, NULL));
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Self-attention and the block
 * ---------------------------------------------------------------------------------------------- */
START_TEST(attention_names_and_shapes)
{
    nb_module *a = nb_self_attention_new(8, 2, true, 0, true, NULL);
    ck_assert_ptr_nonnull(a);
    nb_param_list *p = nb_module_parameters(a);
    ck_assert_str_eq(names_of(p), "qkv.weight qkv.bias proj.weight proj.bias");
    ck_assert_shape(nb_param_list_find(p, "qkv.weight"), 24, 8);
    ck_assert_int_eq(nb_param_list_numel(p, true), 8 * 24 + 24 + 64 + 8);
    nb_param_list_free(p);
    nb_module *nobias = nb_self_attention_new(8, 2, true, 0, false, NULL);
    p = nb_module_parameters(nobias);
    ck_assert_str_eq(names_of(p), "qkv.weight proj.weight");
    nb_param_list_free(p);
    nb_scope_begin();
    ck_assert_shape(nb_forward(a, nb_randn(NB_SHAPE(3, 5, 8), 0, 1, NB_F32, NULL)), 3, 5, 8);
    ck_assert_ptr_null(nb_forward(a, nb_zeros(NB_SHAPE(5, 8), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_self_attention", "(B, T, 8)", "(5, 8)");
    ck_assert_ptr_null(nb_forward(a, nb_zeros(NB_SHAPE(1, 5, 6), NB_F32)));
    ck_assert_error(NB_ERR_SHAPE, "nb_self_attention", "(1, 5, 6)");
    nb_scope_end();
    nb_module_free(a);
    nb_module_free(nobias);

    nb_module *b = nb_transformer_block_new(8, 4, true, 0.1, NULL);
    p = nb_module_parameters(b);
    ck_assert_str_eq(names_of(p), "ln1.weight ln1.bias attn.qkv.weight attn.qkv.bias attn.proj.weight "
                                  "attn.proj.bias ln2.weight ln2.bias mlp.fc.weight mlp.fc.bias mlp.proj.weight "
                                  "mlp.proj.bias");
    ck_assert_shape(nb_param_list_find(p, "mlp.fc.weight"), 32, 8);
    ck_assert_int_eq(nb_param_list_numel(p, true), 12 * 64 + 13 * 8);
    nb_param_list_free(p);
    nb_module_free(b);

    ck_assert_ptr_null(nb_self_attention_new(10, 4, true, 0, true, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_self_attention_new", "10", "4");
    ck_assert_ptr_null(nb_self_attention_new(8, 0, true, 0, true, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_self_attention_new", "num_heads");
    ck_assert_ptr_null(nb_transformer_block_new(8, 2, true, -0.5, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_self_attention_new", "dropout", "-0.5");
}
END_TEST

/* PyTorch's output of the same block (nanoGPT-style modules, float64). */
START_TEST(block_reference)
{
    nb_module *b = nb_transformer_block_new(4, 2, true, 0, NULL);
    block_to_f64(b);
    fill_params(b);
    nb_scope_begin();
    nb_tensor *x = sin_tensor(NB_SHAPE(2, 3, 4), 1.5, 0.9, 0.2);
    ck_assert_values(nb_forward(b, x), 1e-9, 1.090264532, 2.764040777, 2.454916537, 0.8695055222, -0.1043862408,
                     -0.06599477121, 0.1140143645, 0.8247274759, 2.129979328, 2.781647603, 1.435260898,
                     -0.4227798091, -0.6237900309, 0.5177680651, 1.349274215, 1.834717193, 2.128753209, 1.732213459,
                     0.1365243348, -0.9783477202, -0.08528609631, 1.796951032, 2.425553725, 1.835255439);
    nb_scope_end();
    nb_module_free(b);
}
END_TEST

static nb_tensor *f_module(nb_tensor *const *x, void *ud) { return nb_forward(ud, x[0]); }
static nb_tensor *f_module_transposed(nb_tensor *const *x, void *ud) { return nb_forward(ud, nb_transpose(x[0], 1, 2)); }

START_TEST(attention_and_block_gradients)
{
    for (int causal = 0; causal < 2; causal++) {
        nb_module *a = nb_self_attention_new(4, 2, causal, 0, true, NULL);
        attention_to_f64(a);
        nb_self_attention *sa = (nb_self_attention *)a;
        nb_scope_begin();
        nb_tensor *x[4] = {nbt_leaf(NB_SHAPE(1, 3, 4), 20 + causal), ((nb_linear *)sa->qkv)->weight,
                           ((nb_linear *)sa->qkv)->bias, ((nb_linear *)sa->proj)->weight};
        ck_assert_gradcheck(f_module, a, 4, x, true);
        nb_scope_end();
        nb_module_free(a);
    }
    nb_module *b = nb_transformer_block_new(4, 2, true, 0, NULL);
    block_to_f64(b);
    fill_params(b);
    nb_transformer_block *tb = (nb_transformer_block *)b;
    nb_scope_begin();
    nb_tensor *x[5] = {nbt_leaf(NB_SHAPE(1, 3, 4), 30), ((nb_layer_norm *)tb->ln1)->weight,
                       ((nb_linear *)((nb_self_attention *)tb->attn)->qkv)->weight, ((nb_linear *)tb->fc)->bias,
                       ((nb_layer_norm *)tb->ln2)->bias};
    ck_assert_gradcheck(f_module, b, 5, x, false);
    ck_assert_gradcheck(f_module, b, 1, x, true);
    /* a non-contiguous input: a (1, 4, 3) leaf read transposed */
    nb_tensor *xt[1] = {nbt_leaf(NB_SHAPE(1, 4, 3), 31)};
    ck_assert_gradcheck(f_module_transposed, b, 1, xt, false);
    nb_scope_end();
    nb_module_free(b);
}
END_TEST

/* Changing token t never changes the outputs at positions before t, and does change those from t on. */
static void check_causal(nb_module *m, nb_tensor *x, nb_tensor *x2, int64_t t, int64_t T)
{
    nb_tensor *y = nb_forward(m, x), *y2 = nb_forward(m, x2);
    ck_assert_tensor(y);
    ck_assert_tensor(y2);
    int64_t per_position = nb_numel(y) / (nb_size(y, 0) * T);
    for (int64_t bidx = 0; bidx < nb_size(y, 0); bidx++)
        for (int64_t pos = 0; pos < T; pos++) {
            double diff = 0;
            for (int64_t c = 0; c < per_position; c++) {
                int64_t i = (bidx * T + pos) * per_position + c;
                diff = fmax(diff, fabs(nb_get_flat(y, i) - nb_get_flat(y2, i)));
            }
            if (pos < t) ck_assert_msg(diff == 0, "position %lld changed by %g (token %lld changed)", (long long)pos,
                                       diff, (long long)t);
            else ck_assert_msg(diff > 0, "%s: position %lld did not change (token %lld changed)", m->type->name,
                               (long long)pos, (long long)t);
        }
}

START_TEST(causality)
{
    nb_generator g;
    nb_generator_seed(&g, 3);
    nb_module *a = nb_self_attention_new(8, 2, true, 0, true, &g);
    nb_module *b = nb_transformer_block_new(8, 2, true, 0, &g);
    nb_gpt_config c = nb_gpt_defaults();
    c.vocab_size = 11;
    c.context = 8;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 8;
    nb_module *gpt = nb_gpt_new(&c, &g);
    ck_assert_ptr_nonnull(gpt);
    nb_scope_begin();
    for (int64_t t = 0; t < 6; t++) {
        nb_tensor *x = nb_randn(NB_SHAPE(2, 6, 8), 0, 1, NB_F32, &g);
        nb_tensor *x2 = nb_clone(x);
        /* one channel only: a shift of all channels would vanish in the block's LayerNorm */
        for (int64_t bidx = 0; bidx < 2; bidx++)
            nb_set(x2, (const int64_t[]){bidx, t, 1}, nb_get(x, (const int64_t[]){bidx, t, 1}) + 1.0);
        check_causal(a, x, x2, t, 6);
        check_causal(b, x, x2, t, 6);
        nb_tensor *idx = nb_randint(NB_SHAPE(2, 6), 0, 11, &g);
        nb_tensor *idx2 = nb_clone(idx);
        for (int64_t bidx = 0; bidx < 2; bidx++) {
            int64_t at[2] = {bidx, t};
            nb_set(idx2, at, fmod(nb_get(idx, at) + 1, 11));
        }
        check_causal(gpt, idx, idx2, t, 6);
    }
    nb_scope_end();
    nb_module_free(a);
    nb_module_free(b);
    nb_module_free(gpt);
}
END_TEST

/* Without the causal mask every position sees the future. */
START_TEST(non_causal_sees_everything)
{
    nb_module *a = nb_self_attention_new(4, 2, false, 0, true, NULL);
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(1, 3, 4), 0, 1, NB_F32, NULL), *x2 = nb_clone(x);
    nb_set(x2, (const int64_t[]){0, 2, 0}, 5.0);
    nb_tensor *y = nb_forward(a, x), *y2 = nb_forward(a, x2);
    ck_assert_msg(fabs(nb_get_flat(y, 0) - nb_get_flat(y2, 0)) > 0, "position 0 did not see position 2");
    nb_scope_end();
    nb_module_free(a);
}
END_TEST

START_TEST(dropout_in_training_only)
{
    nb_module *b = nb_transformer_block_new(8, 2, true, 0.5, NULL);
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(2, 4, 8), 0, 1, NB_F32, NULL);
    ck_assert_msg(max_diff(nb_forward(b, x), nb_forward(b, x)) > 0, "training forwards should differ");
    nb_module_train(b, false);
    ck_assert_msg(!((nb_self_attention *)((nb_transformer_block *)b)->attn)->base.training, "eval not propagated");
    ck_assert_msg(max_diff(nb_forward(b, x), nb_forward(b, x)) == 0, "eval forwards should agree");
    nb_scope_end();
    nb_module_free(b);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * GPT
 * ---------------------------------------------------------------------------------------------- */
START_TEST(gpt_reference)
{
    nb_gpt_config c = tiny_config(5, true);
    nb_module *gpt = nb_gpt_new(&c, NULL);
    ck_assert_ptr_nonnull(gpt);
    gpt_to_f64(gpt);
    fill_params(gpt);
    nb_scope_begin();
    nb_tensor *logits = nb_forward(gpt, T_I64(NB_SHAPE(2, 3), 0, 3, 1, 4, 2, 2));
    ck_assert_shape(logits, 2, 3, 5);
    ck_assert_values(logits, 1e-9, -0.5088691782, -0.3992617819, 0.4364657495, 0.4784118989, -0.3497089814,
                     -0.5291210577, -0.4031726959, 0.4560084112, 0.4858667427, -0.3678997575, -0.5166633066,
                     -0.4008769821, 0.4439669722, 0.4813873953, -0.356670618, -0.5243863128, -0.4023411669,
                     0.4514244584, 0.4842039448, -0.3636173419, -0.4566493502, -0.3858799913, 0.3866726188,
                     0.4560004602, -0.3039800139, -0.529199075, -0.4031921502, 0.4560829005, 0.4858997052,
                     -0.3679682694);
    nb_scope_end();
    nb_module_free(gpt);
}
END_TEST

START_TEST(gpt_names_tying_and_init)
{
    nb_gpt_config c = tiny_config(7, true);
    nb_module *tied = nb_gpt_new(&c, NULL);
    nb_param_list *p = nb_module_parameters(tied);
    ck_assert_int_eq(p->count, 2 + 2 * 12 + 2);
    ck_assert_str_eq(p->items[0].name, "tok_emb.weight");
    ck_assert_str_eq(p->items[1].name, "pos_emb.weight");
    ck_assert_str_eq(p->items[2].name, "blocks.0.ln1.weight");
    ck_assert_str_eq(p->items[5].name, "blocks.0.attn.qkv.bias");
    ck_assert_str_eq(p->items[14].name, "blocks.1.ln1.weight");
    ck_assert_str_eq(p->items[27].name, "ln_f.bias");
    ck_assert_ptr_null(nb_param_list_find(p, "head.weight"));
    int64_t tied_count = nb_param_list_numel(p, true);
    ck_assert_int_eq(tied_count, 7 * 4 + 4 * 4 + 2 * (12 * 16 + 13 * 4) + 8);
    /* GPT-2's initialization: biases 0, LayerNorm weights 1, the residual projections with a smaller std */
    ck_assert_double_eq(nb_item(nb_sum(nb_abs(nb_param_list_find(p, "blocks.1.mlp.fc.bias")), 0, NULL, false)), 0);
    ck_assert_double_eq(nb_item(nb_mean(nb_param_list_find(p, "blocks.0.ln2.weight"), 0, NULL, false)), 1);
    nb_param_list_free(p);
    c.tie_weights = false;
    nb_module *untied = nb_gpt_new(&c, NULL);
    p = nb_module_parameters(untied);
    ck_assert_str_eq(p->items[p->count - 1].name, "head.weight");
    ck_assert_shape(p->items[p->count - 1].tensor, 7, 4);
    ck_assert_int_eq(nb_param_list_numel(p, true), tied_count + 7 * 4);
    nb_param_list_free(p);
    nb_module_free(tied);
    nb_module_free(untied);

    /* the standard deviations of a wider model's initial weights */
    nb_gpt_config w = nb_gpt_defaults();
    w.vocab_size = 50;
    w.n_embd = 64;
    w.n_layer = 8;
    nb_generator g;
    nb_generator_seed(&g, 1);
    nb_module *wide = nb_gpt_new(&w, &g);
    p = nb_module_parameters(wide);
    nb_scope_begin();
    double s_fc = nb_item(nb_std(nb_param_list_find(p, "blocks.3.mlp.fc.weight"), 0, NULL, false, false));
    double s_proj = nb_item(nb_std(nb_param_list_find(p, "blocks.3.attn.proj.weight"), 0, NULL, false, false));
    ck_assert_msg(fabs(s_fc - 0.02) < 0.001, "fc std %g", s_fc);
    ck_assert_msg(fabs(s_proj - 0.02 / 4) < 0.0005, "proj std %g", s_proj);
    nb_scope_end();
    nb_param_list_free(p);
    nb_module_free(wide);
}
END_TEST

/* Tied: the embedding matrix receives the gradients of both its uses. */
static nb_tensor *f_gpt(nb_tensor *const *x, void *ud)
{
    (void)x;
    nb_tensor *idx = T_I64(NB_SHAPE(1, 3), 0, 3, 3);
    nb_tensor *y = nb_forward(ud, idx);
    nb_free(idx);
    return y;
}

START_TEST(gpt_gradients)
{
    for (int tie = 0; tie < 2; tie++) {
        nb_gpt_config c = tiny_config(4, tie);
        c.n_layer = 1;
        nb_module *gpt = nb_gpt_new(&c, NULL);
        gpt_to_f64(gpt);
        fill_params(gpt);
        nb_gpt *g = (nb_gpt *)gpt;
        nb_scope_begin();
        nb_tensor *x[3] = {((nb_embedding_layer *)g->tok_emb)->weight, ((nb_embedding_layer *)g->pos_emb)->weight,
                           ((nb_layer_norm *)g->ln_f)->weight};
        ck_assert_gradcheck(f_gpt, gpt, 3, x, false);
        nb_scope_end();
        nb_module_free(gpt);
    }
}
END_TEST

START_TEST(gpt_errors)
{
    nb_gpt_config c = tiny_config(5, true);
    nb_module *gpt = nb_gpt_new(&c, NULL);
    nb_scope_begin();
    ck_assert_ptr_null(nb_forward(gpt, nb_zeros(NB_SHAPE(1, 5), NB_I64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_gpt", "context 4", "(1, 5)");
    ck_assert_ptr_null(nb_forward(gpt, nb_zeros(NB_SHAPE(3), NB_I64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_gpt", "(3)");
    ck_assert_ptr_null(nb_forward(gpt, nb_zeros(NB_SHAPE(1, 3), NB_F32)));
    ck_assert_error(NB_ERR_DTYPE, "nb_gpt", "f32");
    ck_assert_ptr_null(nb_forward(gpt, T_I64(NB_SHAPE(1, 2), 1, 5)));
    ck_assert_error(NB_ERR_INDEX, "5");
    ck_assert_ptr_null(nb_gpt_generate(gpt, nb_zeros(NB_SHAPE(1, 2), NB_I64), -1, 1, 0, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_gpt_generate", "n_new");
    /* so many new tokens that the token buffer's size overflows: refused before any allocation */
    ck_assert_ptr_null(nb_gpt_generate(gpt, nb_zeros(NB_SHAPE(1, 2), NB_I64), INT64_MAX, 1, 0, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_gpt_generate", "too many");
    ck_assert_ptr_null(nb_gpt_generate(gpt, nb_zeros(NB_SHAPE(2, 2), NB_I64), INT64_MAX / 3, 1, 0, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_gpt_generate", "too many");
    ck_assert_ptr_null(nb_gpt_generate(gpt, nb_zeros(NB_SHAPE(2), NB_I64), 1, 1, 0, NULL));
    ck_assert_error(NB_ERR_SHAPE, "nb_gpt_generate", "(2)");
    nb_module *lin = nb_linear_new(2, 2, true, NULL);
    ck_assert_ptr_null(nb_gpt_generate(lin, nb_zeros(NB_SHAPE(1, 2), NB_I64), 1, 1, 0, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_gpt_generate", "Linear", "not a GPT");
    nb_module_free(lin);
    nb_scope_end();
    nb_module_free(gpt);
    c.n_embd = 6;
    c.n_head = 4;
    ck_assert_ptr_null(nb_gpt_new(&c, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_gpt_new", "n_embd", "6", "4");
    c = tiny_config(0, true);
    ck_assert_ptr_null(nb_gpt_new(&c, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_gpt_new", "vocab_size", "0");
    c = tiny_config(5, true);
    c.context = -1;
    ck_assert_ptr_null(nb_gpt_new(&c, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_gpt_new", "context", "-1");
    c = tiny_config(5, true);
    c.dropout = 1;
    ck_assert_ptr_null(nb_gpt_new(&c, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_gpt_new", "dropout");
    nb_clear_error();
    ck_assert_ptr_null(nb_gpt_new(NULL, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_gpt_new", "config");
}
END_TEST

START_TEST(gpt_generate)
{
    nb_gpt_config c = tiny_config(6, false);
    c.context = 3;
    nb_generator g;
    nb_generator_seed(&g, 5);
    nb_module *gpt = nb_gpt_new(&c, &g);
    /* larger weights than GPT-2's init so that the distributions are far from uniform */
    nb_param_list *p = nb_module_parameters(gpt);
    for (int i = 0; i < p->count; i++) nb_normal_(p->items[i].tensor, 0, 1, &g);
    nb_param_list_free(p);
    nb_scope_begin();
    nb_tensor *start = T_I64(NB_SHAPE(2, 2), 1, 2, 3, 4);
    nb_generator g1, g2;
    nb_generator_seed(&g1, 9);
    nb_generator_seed(&g2, 9);
    nb_tensor *a = nb_gpt_generate(gpt, start, 8, 1.0, 0, &g1), *b = nb_gpt_generate(gpt, start, 8, 1.0, 0, &g2);
    ck_assert_shape(a, 2, 10);
    ck_assert_msg(max_diff(a, b) == 0, "same seed, different samples");
    ck_assert_values(nb_narrow(a, 1, 0, 2), 0, 1, 2, 3, 4);
    for (int64_t i = 0; i < 20; i++) ck_assert(nb_get_flat(a, i) >= 0 && nb_get_flat(a, i) < 6);
    /* temperature 0 and top_k 1 are both greedy decoding; check it against an argmax by hand, feeding the last
     * `context` tokens */
    nb_tensor *greedy = nb_gpt_generate(gpt, start, 5, 0.0, 0, &g1);
    ck_assert_msg(max_diff(greedy, nb_gpt_generate(gpt, start, 5, 1.0, 1, &g1)) == 0, "top_k 1 is not greedy");
    for (int64_t len = 2; len < 7; len++) {
        int64_t w = len < 3 ? len : 3;
        nb_tensor *window = nb_narrow(greedy, 1, len - w, w);
        nb_tensor *next = nb_argmax(nb_narrow(nb_forward(gpt, nb_contiguous(window)), 1, w - 1, 1), -1, false);
        for (int64_t r = 0; r < 2; r++)
            ck_assert_int_eq((int64_t)nb_get_flat(next, r), (int64_t)nb_get(greedy, (const int64_t[]){r, len}));
    }
    /* with top_k 2 every sampled token is one of the two most likely */
    nb_tensor *topk = nb_gpt_generate(gpt, start, 1, 5.0, 2, &g1);
    nb_tensor *logits = nb_narrow(nb_forward(gpt, start), 1, 1, 1);
    for (int64_t r = 0; r < 2; r++) {
        int64_t tok = (int64_t)nb_get(topk, (const int64_t[]){r, 2});
        double v = nb_get(logits, (const int64_t[]){r, 0, tok});
        int above = 0;
        for (int64_t j = 0; j < 6; j++) above += nb_get(logits, (const int64_t[]){r, 0, j}) > v;
        ck_assert_int_le(above, 1);
    }
    /* the frequencies of 4000 draws follow softmax(logits / temperature), over all tokens or the top 3 */
    for (int trial = 0; trial < 3; trial++) {
        double temperature = trial == 1 ? 2.0 : 1.0;
        int64_t k = trial == 2 ? 3 : 0, N = 4000;
        nb_tensor *from = nb_full(NB_SHAPE(N, 1), 4, NB_I64);
        nb_tensor *drawn = nb_gpt_generate(gpt, from, 1, temperature, k, &g1);
        nb_tensor *row = nb_narrow(nb_forward(gpt, nb_full(NB_SHAPE(1, 1), 4, NB_I64)), 1, 0, 1);
        double l[6], prob[6], total = 0, sorted[6];
        for (int j = 0; j < 6; j++) sorted[j] = l[j] = nb_get_flat(row, j) / temperature;
        for (int i1 = 0; i1 < 6; i1++) /* descending, for the k-th largest */
            for (int i2 = i1 + 1; i2 < 6; i2++)
                if (sorted[i2] > sorted[i1]) {
                    double t = sorted[i1];
                    sorted[i1] = sorted[i2];
                    sorted[i2] = t;
                }
        for (int j = 0; j < 6; j++) total += prob[j] = k && l[j] < sorted[k - 1] ? 0 : exp(l[j]);
        int64_t counts[6] = {0};
        for (int64_t i = 0; i < N; i++) counts[(int64_t)nb_get(drawn, (const int64_t[]){i, 1})]++;
        for (int j = 0; j < 6; j++) {
            double expect = prob[j] / total, got = (double)counts[j] / (double)N;
            ck_assert_msg(fabs(got - expect) < 4 * sqrt(expect * (1 - expect) / (double)N) + 1e-9,
                          "trial %d token %d: frequency %g, probability %g", trial, j, got, expect);
        }
    }
    /* n_new 0 copies */
    ck_assert_values(nb_gpt_generate(gpt, start, 0, 1.0, 0, &g1), 0, 1, 2, 3, 4);
    ck_assert_msg(nb_is_grad_enabled(), "grad mode left off");
    nb_scope_end();
    nb_module_free(gpt);
}
END_TEST

/* A training loop keeps flat memory: the same live tensors after each step, and the loss goes down. */
START_TEST(gpt_training_memory)
{
    nb_gpt_config c = tiny_config(6, true);
    nb_generator g;
    nb_generator_seed(&g, 2);
    nb_module *gpt = nb_gpt_new(&c, &g);
    nb_param_list *p = nb_module_parameters(gpt);
    nb_adam_options o = nb_adam_defaults();
    o.lr = 0.01;
    nb_optimizer *opt = nb_adamw_new(p, o);
    nb_tensor *idx = T_I64(NB_SHAPE(2, 4), 0, 1, 2, 3, 3, 2, 1, 0);
    nb_tensor *target = T_I64(NB_SHAPE(8), 1, 2, 3, 4, 2, 1, 0, 5);
    int64_t live = 0;
    double first = 0, last = 0;
    for (int step = 0; step < 30; step++) {
        nb_scope_begin();
        nb_tensor *loss = nb_cross_entropy(nb_reshape(nb_forward(gpt, idx), NB_SHAPE(8, 6)), target, NULL);
        nb_optimizer_zero_grad(opt);
        ck_assert_ok(nb_backward(loss));
        ck_assert_ok(nb_optimizer_step(opt));
        last = nb_item(loss);
        if (step == 0) first = last;
        nb_scope_end();
        if (step == 2) live = live_tensors();
        if (step > 2) ck_assert_int_eq(live_tensors(), live);
    }
    ck_assert_msg(last < first - 0.5, "loss %g -> %g", first, last);
    nb_free(idx);
    nb_free(target);
    nb_optimizer_free(opt);
    nb_param_list_free(p);
    nb_module_free(gpt);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * LoRA
 * ---------------------------------------------------------------------------------------------- */
START_TEST(lora_starts_equal_to_base)
{
    nb_generator g;
    nb_generator_seed(&g, 4);
    nb_module *base = nb_linear_new(6, 5, true, &g);
    nb_generator_seed(&g, 4);
    nb_module *copy = nb_linear_new(6, 5, true, &g);
    nb_module *lora = nb_lora_linear_new(copy, 3, 6.0, &g);
    ck_assert_ptr_nonnull(lora);
    nb_lora_linear *l = (nb_lora_linear *)lora;
    ck_assert_double_eq(l->scaling, 2.0);
    ck_assert_shape(l->lora_A, 3, 6);
    ck_assert_shape(l->lora_B, 5, 3);
    nb_scope_begin();
    /* A ~ U(-1/sqrt(6), 1/sqrt(6)), not all zero; B zeros */
    double amax = nb_item(nb_max(nb_abs(l->lora_A)));
    ck_assert_msg(amax > 0.1 && amax <= 1 / sqrt(6.0), "max |A| %g", amax);
    ck_assert_double_eq(nb_item(nb_max(nb_abs(l->lora_B))), 0);
    nb_tensor *x = nb_randn(NB_SHAPE(2, 4, 6), 0, 1, NB_F32, &g);
    ck_assert_msg(max_diff(nb_forward(base, x), nb_forward(lora, x)) == 0, "differs from the base at init");
    /* names as loralib: the base's own, plus the adapters; the base is frozen */
    nb_param_list *p = nb_module_parameters(lora);
    ck_assert_str_eq(names_of(p), "weight bias lora_A lora_B");
    ck_assert_int_eq(nb_param_list_numel(p, true), 3 * 6 + 5 * 3);
    ck_assert(!nb_requires_grad(l->linear->weight) && !nb_requires_grad(l->linear->bias));
    nb_param_list_free(p);
    /* only the adapters receive gradients; with B = 0, A's is zero and B's is not */
    ck_assert_ok(nb_backward(nb_sum(nb_forward(lora, x), 0, NULL, false)));
    ck_assert_ptr_null(nb_grad(l->linear->weight));
    ck_assert_double_eq(nb_item(nb_max(nb_abs(nb_grad(l->lora_A)))), 0);
    ck_assert_msg(nb_item(nb_max(nb_abs(nb_grad(l->lora_B)))) > 0, "B has no gradient");
    nb_scope_end();
    nb_module_free(base);
    nb_module_free(lora);
}
END_TEST

/* loralib's formula in PyTorch (float64). */
START_TEST(lora_reference_and_gradients)
{
    nb_module *lin = nb_linear_new(3, 2, true, NULL);
    linear_to_f64(lin);
    nb_module *lora = nb_lora_linear_new(lin, 2, 3.0, NULL);
    nb_lora_linear *l = (nb_lora_linear *)lora;
    slot_to_f64(&l->lora_A);
    slot_to_f64(&l->lora_B);
    nb_scope_begin();
    ck_assert_ok(nb_copy_(l->linear->weight, sin_tensor(NB_SHAPE(2, 3), 0.4, 0.37, 0.5)));
    ck_assert_ok(nb_copy_(l->linear->bias, sin_tensor(NB_SHAPE(2), 0.4, 0.37, 1.8)));
    ck_assert_ok(nb_copy_(l->lora_A, sin_tensor(NB_SHAPE(2, 3), 0.5, 0.61, 0.1)));
    ck_assert_ok(nb_copy_(l->lora_B, sin_tensor(NB_SHAPE(2, 2), 0.5, 0.83, 0.9)));
    nb_tensor *x = sin_tensor(NB_SHAPE(4, 3), 1.0, 0.7, 0.3);
    ck_assert_values(nb_forward(lora, x), 1e-9, 1.806286394, 1.28777409, 0.3987238401, 0.2778481662, -1.036482098,
                     -0.5741717549, 1.82019671, 1.296032045);
    nb_tensor *in[3] = {nbt_leaf(NB_SHAPE(4, 3), 40), l->lora_A, l->lora_B};
    ck_assert_gradcheck(f_module, lora, 3, in, true);
    nb_scope_end();
    nb_module_free(lora);
}
END_TEST

START_TEST(lora_merge_unmerge)
{
    nb_generator g;
    nb_generator_seed(&g, 8);
    nb_module *lora = nb_lora_linear_new(nb_linear_new(16, 12, true, &g), 4, 8.0, &g);
    nb_lora_linear *l = (nb_lora_linear *)lora;
    ck_assert_ok(nb_normal_(l->lora_B, 0, 0.5, &g)); /* a trained-looking adapter */
    nb_scope_begin();
    nb_tensor *w0 = nb_clone(l->linear->weight);
    nb_tensor *x = nb_randn(NB_SHAPE(3, 16), 0, 1, NB_F32, &g);
    nb_tensor *before = nb_forward(lora, x);
    ck_assert_msg(max_diff(before, nb_forward(&l->linear->base, x)) > 0.1, "the adapter changes nothing");
    ck_assert_ok(nb_lora_merge(lora));
    ck_assert(l->merged);
    nb_tensor *after = nb_forward(lora, x);
    ck_assert_msg(max_diff(before, after) < 1e-5, "merged output differs by %g", max_diff(before, after));
    ck_assert_msg(max_diff(w0, l->linear->weight) > 0.01, "merge left W unchanged");
    ck_assert_int_eq(nb_lora_merge(lora), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_lora_merge", "already merged");
    ck_assert_ok(nb_lora_unmerge(lora));
    ck_assert_msg(max_diff(w0, l->linear->weight) < 1e-6, "unmerge: W off by %g", max_diff(w0, l->linear->weight));
    ck_assert_msg(max_diff(before, nb_forward(lora, x)) < 1e-5, "unmerged output differs");
    ck_assert_int_eq(nb_lora_unmerge(lora), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_lora_unmerge", "not merged");
    nb_scope_end();
    nb_module_free(lora);
}
END_TEST

START_TEST(lora_errors)
{
    ck_assert_ptr_null(nb_lora_linear_new(nb_relu_layer_new(), 2, 1, NULL)); /* freed on failure (ASan checks) */
    ck_assert_error(NB_ERR_ARG, "nb_lora_linear_new", "Linear", "ReLU");
    ck_assert_ptr_null(nb_lora_linear_new(nb_linear_new(2, 2, true, NULL), 0, 1, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_lora_linear_new", "rank", "0");
    ck_assert_ptr_null(nb_lora_linear_new(nb_linear_new(2, 2, true, NULL), 1, NAN, NULL));
    ck_assert_error(NB_ERR_ARG, "nb_lora_linear_new", "alpha", "nan");
    ck_assert_ptr_null(nb_lora_linear_new(NULL, 1, 1, NULL));
    nb_module *lin = nb_linear_new(2, 2, true, NULL);
    ck_assert_int_eq(nb_lora_merge(lin), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_lora_merge", "Linear", "not a LoRA layer");
    ck_assert_int_eq(nb_lora_save("/nonexistent/x.safetensors", lin, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_lora_save", "no LoRA adapters");
    nb_module_free(lin);
    nb_gpt_config c = tiny_config(5, true);
    nb_module *gpt = nb_gpt_new(&c, NULL);
    ck_assert_int_eq(nb_gpt_apply_lora(gpt, "attention", 2, 2, NULL), -1);
    ck_assert_error(NB_ERR_ARG, "nb_gpt_apply_lora", "\"attention\"");
    ck_assert_int_eq(nb_gpt_apply_lora(gpt, "qkv", 0, 2, NULL), -1);
    ck_assert_error(NB_ERR_ARG, "nb_gpt_apply_lora", "rank");
    /* nothing was frozen by the failed calls */
    nb_param_list *p = nb_module_parameters(gpt);
    ck_assert_int_eq(nb_param_list_numel(p, true), nb_param_list_numel(p, false));
    nb_param_list_free(p);
    nb_module_free(gpt);
}
END_TEST

START_TEST(gpt_lora_targets_and_freezing)
{
    nb_gpt_config c = tiny_config(5, false);
    nb_generator g;
    nb_generator_seed(&g, 11);
    nb_module *gpt = nb_gpt_new(&c, &g);
    nb_scope_begin();
    nb_tensor *idx = T_I64(NB_SHAPE(2, 4), 0, 1, 2, 3, 4, 3, 2, 1);
    nb_tensor *before = nb_forward(gpt, idx);
    ck_assert_int_eq(nb_gpt_apply_lora(gpt, "qkv, attn.proj", 2, 4.0, &g), 4);
    ck_assert_msg(max_diff(before, nb_forward(gpt, idx)) == 0, "LoRA changed the model at init");
    nb_param_list *p = nb_module_parameters(gpt);
    ck_assert_ptr_nonnull(nb_param_list_find(p, "blocks.0.attn.qkv.lora_A"));
    ck_assert_ptr_nonnull(nb_param_list_find(p, "blocks.1.attn.proj.lora_B"));
    ck_assert_ptr_nonnull(nb_param_list_find(p, "blocks.1.attn.qkv.weight")); /* base names unchanged */
    ck_assert_ptr_null(nb_param_list_find(p, "blocks.0.mlp.fc.lora_A"));
    /* only the adapters train: qkv A (2, 4) B (12, 2), proj A (2, 4) B (4, 2), in each of 2 blocks */
    ck_assert_int_eq(nb_param_list_numel(p, true), 2 * (8 + 24 + 8 + 8));
    nb_param_list *adapters = nb_lora_adapters(p);
    ck_assert_int_eq(adapters->count, 8);
    ck_assert_str_eq(adapters->items[0].name, "blocks.0.attn.qkv.lora_A");
    nb_param_list_free(adapters);
    nb_param_list_free(p);
    /* already wrapped layers are skipped; "proj" now finds only the MLP's; "head" the output layer */
    ck_assert_int_eq(nb_gpt_apply_lora(gpt, "proj,head", 1, 1.0, &g), 3);
    /* all that match wrapped already: none newly wrapped, not an error (it used to say nothing matched) */
    nb_clear_error();
    ck_assert_int_eq(nb_gpt_apply_lora(gpt, "qkv", 2, 4.0, &g), 0);
    ck_assert_int_eq(nb_last_status(), NB_OK);
    ck_assert_int_eq(nb_gpt_apply_lora(gpt, "mlp.fc,qkv", 2, 4.0, &g), 2);
    p = nb_module_parameters(gpt);
    ck_assert_ptr_nonnull(nb_param_list_find(p, "blocks.0.mlp.proj.lora_A"));
    ck_assert_ptr_nonnull(nb_param_list_find(p, "head.lora_B"));
    ck_assert_ptr_nonnull(nb_param_list_find(p, "blocks.0.mlp.fc.lora_A"));
    /* the earlier calls' adapters still train: mlp.proj A (1, 16) B (4, 1) twice, head A (1, 4) B (5, 1), mlp.fc
     * A (2, 4) B (16, 2) twice */
    ck_assert_int_eq(nb_param_list_numel(p, true), 2 * (8 + 24 + 8 + 8) + 2 * (16 + 4) + 4 + 5 + 2 * (8 + 32));
    nb_param_list_free(p);
    nb_scope_end();
    nb_module_free(gpt);
}
END_TEST

/* Adapters saved alone load into a fresh copy of the base model wrapped the same way; merging all the GPT's
 * adapters keeps its outputs. */
START_TEST(gpt_lora_save_load_merge)
{
    char path[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/nb_lora_%d.safetensors", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    nb_gpt_config c = tiny_config(5, true);
    nb_generator g;
    nb_generator_seed(&g, 12);
    nb_module *a = nb_gpt_new(&c, &g);
    nb_generator_seed(&g, 12);
    nb_module *b = nb_gpt_new(&c, &g); /* the same base weights */
    ck_assert_int_eq(nb_gpt_apply_lora(a, "qkv,attn.proj", 2, 4.0, &g), 4);
    ck_assert_int_eq(nb_gpt_apply_lora(b, "qkv,attn.proj", 2, 4.0, &g), 4); /* different A */
    nb_param_list *pa = nb_module_parameters(a);
    nb_param_list *ad = nb_lora_adapters(pa);
    for (int i = 0; i < ad->count; i++) ck_assert_ok(nb_normal_(ad->items[i].tensor, 0, 0.3, &g));
    nb_scope_begin();
    nb_tensor *idx = T_I64(NB_SHAPE(1, 4), 0, 4, 1, 2);
    nb_tensor *ya = nb_forward(a, idx);
    ck_assert_msg(max_diff(ya, nb_forward(b, idx)) > 1e-3, "the adapters should differ before loading");
    nb_metadata meta = {0};
    ck_assert_ok(nb_metadata_set(&meta, "lora.rank", "2"));
    ck_assert_ok(nb_lora_save(path, a, &meta));
    /* the file holds the adapters only */
    nb_metadata got = {0};
    nb_param_list *file = nb_read_safetensors(path, &got);
    ck_assert_ptr_nonnull(file);
    ck_assert_int_eq(file->count, 8);
    ck_assert_str_eq(nb_metadata_get(&got, "lora.rank"), "2");
    for (int i = 0; i < file->count; i++) {
        ck_assert_msg(strstr(file->items[i].name, ".lora_") != NULL, "%s in the file", file->items[i].name);
        nb_free(file->items[i].tensor);
    }
    nb_param_list_free(file);
    nb_load_report report;
    ck_assert_ok(nb_lora_load(path, b, &report, NULL));
    ck_assert_int_eq(report.loaded, 8);
    ck_assert_msg(max_diff(ya, nb_forward(b, idx)) == 0, "loaded adapters give other outputs");
    /* a model wrapped differently does not take the file */
    nb_generator_seed(&g, 12);
    nb_module *other = nb_gpt_new(&c, &g);
    ck_assert_int_eq(nb_gpt_apply_lora(other, "qkv", 2, 4.0, &g), 2);
    ck_assert_int_eq(nb_lora_load(path, other, NULL, NULL), NB_ERR_SHAPE);
    nb_module_free(other);
    /* merging every adapter of the GPT */
    ck_assert_int_eq(nb_gpt_merge_lora(a, true), 4);
    ck_assert_int_eq(nb_gpt_merge_lora(a, true), 0);
    ck_assert_msg(max_diff(ya, nb_forward(a, idx)) < 1e-5, "merged GPT differs by %g", max_diff(ya, nb_forward(a, idx)));
    /* merged adapters take no file: the old ones are folded into the weights */
    ck_assert_int_eq(nb_lora_load(path, a, NULL, NULL), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_lora_load", "merged", "unmerge");
    ck_assert_msg(max_diff(ya, nb_forward(a, idx)) < 1e-5, "a refused load changed the merged GPT");
    ck_assert_int_eq(nb_gpt_merge_lora(a, false), 4);
    ck_assert_msg(max_diff(ya, nb_forward(a, idx)) < 1e-5, "unmerged GPT differs");
    nb_scope_end();
    unlink(path);
    nb_param_list_free(ad);
    nb_param_list_free(pa);
    nb_module_free(a);
    nb_module_free(b);
}
END_TEST

/* A checkpoint of the base model loads strictly into its LoRA-wrapped version's base parameters. */
START_TEST(base_checkpoint_loads_into_wrapped_model)
{
    char path[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/nb_base_%d.safetensors", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    nb_gpt_config c = tiny_config(5, true);
    nb_generator g;
    nb_generator_seed(&g, 13);
    nb_module *a = nb_gpt_new(&c, &g);
    nb_param_list *pa = nb_module_parameters(a);
    ck_assert_ok(nb_save_safetensors(path, pa, NULL));
    nb_module *b = nb_gpt_new(&c, &g); /* other weights */
    ck_assert_int_eq(nb_gpt_apply_lora(b, "qkv", 2, 2.0, &g), 2);
    nb_param_list *pb = nb_module_parameters(b);
    nb_load_report report;
    ck_assert_ok(nb_load_safetensors(path, pb, NB_LOAD_PARTIAL, &report, NULL));
    ck_assert_int_eq(report.loaded, pa->count);
    ck_assert_int_eq(report.missing, 4); /* the adapters */
    ck_assert_int_eq(report.unexpected, 0);
    nb_scope_begin();
    nb_tensor *idx = T_I64(NB_SHAPE(1, 3), 1, 2, 3);
    ck_assert_msg(max_diff(nb_forward(a, idx), nb_forward(b, idx)) == 0, "base weights not loaded");
    nb_scope_end();
    unlink(path);
    nb_param_list_free(pa);
    nb_param_list_free(pb);
    nb_module_free(a);
    nb_module_free(b);
}
END_TEST

/* Wrapping a block's or an attention module's Linear by assigning the field (the header allows it) frees
 * everything with the block; a GPT whose blocks a program replaced or appended gets adapters on the transformer
 * blocks it holds now (a non-block child used to be read as one: a heap overflow). */
START_TEST(lora_in_fields_and_changed_blocks)
{
    int64_t before = live_tensors();
    nb_module *block = nb_transformer_block_new(4, 2, true, 0.0, NULL);
    nb_transformer_block *b = (nb_transformer_block *)block;
    nb_self_attention *a = (nb_self_attention *)b->attn;
    a->qkv = nb_lora_linear_new(a->qkv, 2, 1.0, NULL);
    b->fc = nb_lora_linear_new(b->fc, 2, 1.0, NULL);
    ck_assert(a->qkv && b->fc);
    nb_scope_begin();
    ck_assert_shape(nb_forward(block, nb_zeros(NB_SHAPE(1, 3, 4), NB_F32)), 1, 3, 4);
    nb_scope_end();
    nb_param_list *p = nb_module_parameters(block);
    ck_assert_ptr_nonnull(nb_param_list_find(p, "attn.qkv.lora_A"));
    ck_assert_ptr_nonnull(nb_param_list_find(p, "mlp.fc.weight"));
    nb_param_list_free(p);
    nb_module_free(block);
    ck_assert_int_eq(live_tensors(), before);

    nb_gpt_config c = tiny_config(5, false);
    c.n_layer = 3;
    nb_module *gpt = nb_gpt_new(&c, NULL);
    nb_gpt *g = (nb_gpt *)gpt;
    /* a wrapper the program made around block 0's fc and kept aside: refused before anything changes */
    nb_module *fc = ((nb_transformer_block *)nb_sequential_get(g->blocks, 0))->fc;
    nb_module *aside = nb_lora_linear_new(fc, 2, 1.0, NULL);
    ck_assert_int_eq(nb_gpt_apply_lora(gpt, "fc", 2, 4.0, NULL), -1);
    ck_assert_error(NB_ERR_ARG, "nb_gpt_apply_lora", "blocks.0.mlp.fc is already wrapped", "nothing was changed");
    ck_assert(nb_requires_grad(((nb_linear *)((nb_transformer_block *)nb_sequential_get(g->blocks, 1))->fc)->weight));
    nb_module_free(aside);
    ck_assert(nb_requires_grad(((nb_linear *)fc)->weight));
    ck_assert_ok(nb_sequential_set(g->blocks, 1, nb_gelu_layer_new(false)));
    ck_assert_ok(nb_sequential_append(g->blocks, nb_transformer_block_new(4, 2, true, 0.0, NULL)));
    /* blocks 0, 2 and 3 are transformer blocks: their qkv, and the head */
    ck_assert_int_eq(nb_gpt_apply_lora(gpt, "qkv", 2, 4.0, NULL), 3);
    ck_assert_int_eq(nb_gpt_apply_lora(gpt, "head", 2, 4.0, NULL), 1);
    p = nb_module_parameters(gpt);
    ck_assert_ptr_nonnull(nb_param_list_find(p, "blocks.3.attn.qkv.lora_B"));
    ck_assert_ptr_null(nb_param_list_find(p, "blocks.1.attn.qkv.lora_B"));
    nb_param_list_free(p);
    ck_assert_int_eq(nb_gpt_merge_lora(gpt, true), 4);
    ck_assert_int_eq(nb_gpt_merge_lora(gpt, false), 4);
    nb_module_free(gpt);
    ck_assert_int_eq(live_tensors(), before);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("attention");
    TCase *tc = tcase_create("attention");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, sdpa_uniform_weights);
    tcase_add_test(tc, sdpa_scaled_scores);
    tcase_add_test(tc, sdpa_gradients);
    tcase_add_test(tc, sdpa_dropout);
    tcase_add_test(tc, sdpa_errors);
    tcase_add_test(tc, attention_names_and_shapes);
    tcase_add_test(tc, block_reference);
    tcase_add_test(tc, attention_and_block_gradients);
    tcase_add_test(tc, causality);
    tcase_add_test(tc, non_causal_sees_everything);
    tcase_add_test(tc, dropout_in_training_only);
    tcase_add_test(tc, gpt_reference);
    tcase_add_test(tc, gpt_names_tying_and_init);
    tcase_add_test(tc, gpt_gradients);
    tcase_add_test(tc, gpt_errors);
    tcase_add_test(tc, gpt_generate);
    tcase_add_test(tc, gpt_training_memory);
    tcase_add_test(tc, lora_starts_equal_to_base);
    tcase_add_test(tc, lora_reference_and_gradients);
    tcase_add_test(tc, lora_merge_unmerge);
    tcase_add_test(tc, lora_errors);
    tcase_add_test(tc, gpt_lora_targets_and_freezing);
    tcase_add_test(tc, gpt_lora_save_load_merge);
    tcase_add_test(tc, base_checkpoint_loads_into_wrapped_model);
    tcase_add_test(tc, lora_in_fields_and_changed_blocks);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
