/* Scaled dot-product attention, multi-head self-attention, the pre-LayerNorm transformer block and a GPT, all
 * compositions of nabla's public differentiable ops (their gradients come from the ops'). Also the GPT-specific
 * LoRA plumbing (which of its Linear layers an adapter may wrap) and autoregressive sampling. */
#include "nn_internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static nb_status check_dropout(const char *fn, double p)
{
    if (p >= 0 && p < 1) return NB_OK;
    return nbi_fail(NB_ERR_ARG, "%s: dropout must be in [0, 1), got %g", fn, p);
}


/* ------------------------------------------------------------------------------------------------
 * Scaled dot-product attention
 * ---------------------------------------------------------------------------------------------- */
nb_tensor *nb_scaled_dot_product_attention(nb_tensor *q, nb_tensor *k, nb_tensor *v, nb_tensor *attn_mask,
                                           bool causal, double dropout_p, nb_generator *g)
{
    const char *fn = "nb_scaled_dot_product_attention";
    nbi_tensor *tq = nbi_resolve(q, fn, "q"), *tk = nbi_resolve(k, fn, "k"), *tv = nbi_resolve(v, fn, "v");
    if (!tq || !tk || !tv) return NULL;
    nbi_tensor *tm = NULL;
    if (attn_mask && !(tm = nbi_resolve(attn_mask, fn, "attn_mask"))) return NULL;
    char sq[NBI_SHAPE_STR], sk[NBI_SHAPE_STR], sv[NBI_SHAPE_STR];
    nbi_shape_fmt(sq, tq->ndim, tq->shape);
    nbi_shape_fmt(sk, tk->ndim, tk->shape);
    nbi_shape_fmt(sv, tv->ndim, tv->shape);
    if (!nbi_is_float(tq->dtype) || !nbi_is_float(tk->dtype) || !nbi_is_float(tv->dtype))
        return nbi_error(NB_ERR_DTYPE, "%s: q, k and v must be f32 or f64, got %s, %s and %s", fn,
                         nb_dtype_name(tq->dtype), nb_dtype_name(tk->dtype), nb_dtype_name(tv->dtype));
    if (tq->ndim < 2 || tk->ndim < 2 || tv->ndim < 2 || tq->shape[tq->ndim - 1] != tk->shape[tk->ndim - 1] ||
        tk->shape[tk->ndim - 2] != tv->shape[tv->ndim - 2])
        return nbi_error(NB_ERR_SHAPE,
                         "%s: expected q (..., T, D), k (..., S, D) and v (..., S, Dv), got %s, %s and %s", fn, sq,
                         sk, sv);
    if (tm && tm->dtype != NB_BOOL && !nbi_is_float(tm->dtype))
        return nbi_error(NB_ERR_DTYPE, "%s: attn_mask must be bool or f32/f64, not %s", fn, nb_dtype_name(tm->dtype));
    if (causal && attn_mask)
        return nbi_error(NB_ERR_ARG, "%s: give either causal or attn_mask, not both", fn);
    if (check_dropout(fn, dropout_p)) return NULL;
    const int64_t T = tq->shape[tq->ndim - 2], S = tk->shape[tk->ndim - 2], D = tq->shape[tq->ndim - 1];
    /* The scores are (batch..., T, S), batch being q's and k's leading dims broadcast together; checked here so
     * that a bad shape is reported by this function rather than by the matmul or mask op inside it. */
    int n_scores;
    int64_t scores_shape[NB_MAX_DIMS];
    if (!nbi_broadcast_shape(fn, tq->ndim - 2, tq->shape, tk->ndim - 2, tk->shape, &n_scores, scores_shape))
        return NULL;
    scores_shape[n_scores++] = T;
    scores_shape[n_scores++] = S;
    if (tm && !nbi_broadcasts_to(tm->ndim, tm->shape, n_scores, scores_shape)) {
        char sm[NBI_SHAPE_STR], ss[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: attn_mask of shape %s does not broadcast to the scores %s (q %s, k %s)",
                         fn, nbi_shape_fmt(sm, tm->ndim, tm->shape), nbi_shape_fmt(ss, n_scores, scores_shape), sq,
                         sk);
    }

    if (nbi_nn_begin() != NB_OK) return NULL;
    /* Scaling q rather than the scores touches T D elements instead of T S. */
    nb_tensor *scores = nb_matmul(nb_mul_scalar(q, 1.0 / sqrt((double)D)), nb_transpose(k, -2, -1));
    if (causal || (tm && tm->dtype == NB_BOOL)) {
        nb_no_grad_begin();
        nb_tensor *blocked;
        if (causal) /* key j is hidden from query i when j > i */
            blocked = nb_gt(nb_unsqueeze(nb_arange(0, (double)S, 1, NB_I64), 0),
                            nb_unsqueeze(nb_arange(0, (double)T, 1, NB_I64), 1));
        else
            blocked = nb_eq_scalar(attn_mask, 0.0);
        nb_no_grad_end();
        scores = nb_masked_fill(scores, blocked, -INFINITY);
    } else if (tm) {
        scores = nb_add(scores, attn_mask);
    }
    nb_tensor *att = nbi_nn_dropout(nb_softmax(scores, -1), dropout_p, g);
    return nbi_nn_end(nb_matmul(att, v));
}

/* ------------------------------------------------------------------------------------------------
 * Multi-head self-attention
 * ---------------------------------------------------------------------------------------------- */
/* Part `which` (0 q, 1 k, 2 v) of the fused projection (B, T, 3C) as (B, H, T, D): a view, no copy. */
static nb_tensor *head_view(nb_tensor *qkv, int which, int64_t B, int64_t T, int64_t H, int64_t D)
{
    nb_tensor *part = nb_narrow(qkv, 2, which * H * D, H * D);
    return nb_transpose(nb_reshape(part, NB_SHAPE(B, T, H, D)), 1, 2);
}

static nb_tensor *attention_forward(nb_module *m, nb_tensor *x)
{
    nb_self_attention *a = (nb_self_attention *)m;
    nbi_tensor *t = nbi_resolve(x, "nb_self_attention", "input");
    if (!t) return NULL;
    if (t->ndim != 3 || t->shape[2] != a->embed_dim) {
        char b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "nb_self_attention: expected input of shape (B, T, %lld), got %s",
                         (long long)a->embed_dim, nbi_shape_fmt(b, t->ndim, t->shape));
    }
    const int64_t B = t->shape[0], T = t->shape[1], C = a->embed_dim, H = a->num_heads, D = C / H;
    double p = m->training ? a->dropout : 0.0;
    if (nbi_nn_begin() != NB_OK) return NULL;
    nb_tensor *qkv = nb_forward(a->qkv, x);
    nb_tensor *y = nb_scaled_dot_product_attention(head_view(qkv, 0, B, T, H, D), head_view(qkv, 1, B, T, H, D),
                                                   head_view(qkv, 2, B, T, H, D), NULL, a->causal, p, a->generator);
    y = nb_reshape(nb_transpose(y, 1, 2), NB_SHAPE(B, T, C));
    return nbi_nn_end(nbi_nn_dropout(nb_forward(a->proj, y), p, a->generator));
}

static nb_status attention_collect(nb_module *m, const char *prefix, nb_param_list *out)
{
    nb_self_attention *a = (nb_self_attention *)m;
    nb_status st = nb_module_collect_child(a->qkv, prefix, "qkv", out);
    return st ? st : nb_module_collect_child(a->proj, prefix, "proj", out);
}

static void attention_set_training(nb_module *m, bool training)
{
    nb_self_attention *a = (nb_self_attention *)m;
    nb_module_train(a->qkv, training);
    nb_module_train(a->proj, training);
}

static void attention_destroy(nb_module *m)
{
    nb_self_attention *a = (nb_self_attention *)m;
    nbi_nn_free_children(m, 2, (nb_module *const[]){a->qkv, a->proj});
    free(a);
}

static nb_module *attention_child(nb_module *m, int i)
{
    nb_self_attention *a = (nb_self_attention *)m;
    return i == 0 ? a->qkv : i == 1 ? a->proj : NULL;
}

static const nb_module_type attention_type = {"SelfAttention", attention_forward, attention_collect,
                                              attention_set_training, attention_destroy, attention_child};

nb_module *nb_self_attention_new(int64_t embed_dim, int64_t num_heads, bool causal, double dropout_p, bool bias,
                                 nb_generator *g)
{
    const char *fn = "nb_self_attention_new";
    if (num_heads < 1 || embed_dim < 1 || embed_dim % num_heads)
        return nbi_error(NB_ERR_ARG, "%s: embed_dim (%lld) must be a positive multiple of num_heads (%lld)", fn,
                         (long long)embed_dim, (long long)num_heads);
    if (check_dropout(fn, dropout_p)) return NULL;
    if (embed_dim > INT64_MAX / 3)
        return nbi_error(NB_ERR_SHAPE, "%s: embed_dim %lld is too large (the qkv layer has 3 * embed_dim outputs)",
                         fn, (long long)embed_dim);
    nb_self_attention *a = nbi_nn_module_new(sizeof *a, &attention_type, fn);
    if (!a) return NULL;
    a->embed_dim = embed_dim;
    a->num_heads = num_heads;
    a->causal = causal;
    a->dropout = dropout_p;
    a->qkv = nb_linear_new(embed_dim, 3 * embed_dim, bias, g);
    a->proj = a->qkv ? nb_linear_new(embed_dim, embed_dim, bias, g) : NULL;
    if (!a->proj) {
        attention_destroy(&a->base);
        return NULL;
    }
    nbi_nn_adopt_children(&a->base);
    return &a->base;
}

/* ------------------------------------------------------------------------------------------------
 * Transformer block
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *block_forward(nb_module *m, nb_tensor *x)
{
    nb_transformer_block *b = (nb_transformer_block *)m;
    if (!nbi_resolve(x, "nb_transformer_block", "input")) return NULL;
    double p = m->training ? b->dropout : 0.0;
    if (nbi_nn_begin() != NB_OK) return NULL;
    nb_tensor *h = nb_add(x, nb_forward(b->attn, nb_forward(b->ln1, x)));
    nb_tensor *mlp = nb_forward(b->proj, nb_gelu(nb_forward(b->fc, nb_forward(b->ln2, h)), false));
    return nbi_nn_end(nb_add(h, nbi_nn_dropout(mlp, p, b->generator)));
}

static nb_status block_collect(nb_module *m, const char *prefix, nb_param_list *out)
{
    nb_transformer_block *b = (nb_transformer_block *)m;
    nb_status st = nb_module_collect_child(b->ln1, prefix, "ln1", out);
    if (!st) st = nb_module_collect_child(b->attn, prefix, "attn", out);
    if (!st) st = nb_module_collect_child(b->ln2, prefix, "ln2", out);
    if (!st) st = nb_module_collect_child(b->fc, prefix, "mlp.fc", out);
    if (!st) st = nb_module_collect_child(b->proj, prefix, "mlp.proj", out);
    return st;
}

static void block_set_training(nb_module *m, bool training)
{
    nb_transformer_block *b = (nb_transformer_block *)m;
    nb_module *children[5] = {b->ln1, b->attn, b->ln2, b->fc, b->proj};
    for (int i = 0; i < 5; i++) nb_module_train(children[i], training);
}

static void block_destroy(nb_module *m)
{
    nb_transformer_block *b = (nb_transformer_block *)m;
    nbi_nn_free_children(m, 5, (nb_module *const[]){b->ln1, b->attn, b->ln2, b->fc, b->proj});
    free(b);
}

static nb_module *block_child(nb_module *m, int i)
{
    nb_transformer_block *b = (nb_transformer_block *)m;
    nb_module *children[5] = {b->ln1, b->attn, b->ln2, b->fc, b->proj};
    return i >= 0 && i < 5 ? children[i] : NULL;
}

static const nb_module_type block_type = {"TransformerBlock", block_forward, block_collect, block_set_training,
                                          block_destroy, block_child};

nb_module *nb_transformer_block_new(int64_t embed_dim, int64_t num_heads, bool causal, double dropout_p,
                                    nb_generator *g)
{
    const char *fn = "nb_transformer_block_new";
    if (embed_dim > INT64_MAX / 4)
        return nbi_error(NB_ERR_SHAPE, "%s: embed_dim %lld is too large (the MLP is 4 * embed_dim wide)", fn,
                         (long long)embed_dim);
    nb_module *attn = nb_self_attention_new(embed_dim, num_heads, causal, dropout_p, true, g);
    if (!attn) return NULL;
    nb_transformer_block *b = nbi_nn_module_new(sizeof *b, &block_type, fn);
    if (!b) {
        nb_module_free(attn);
        return NULL;
    }
    b->attn = attn;
    b->dropout = dropout_p;
    b->ln1 = nb_layer_norm_new(1, &embed_dim, 1e-5, true);
    b->ln2 = nb_layer_norm_new(1, &embed_dim, 1e-5, true);
    b->fc = nb_linear_new(embed_dim, 4 * embed_dim, true, g);
    b->proj = nb_linear_new(4 * embed_dim, embed_dim, true, g);
    if (!b->ln1 || !b->ln2 || !b->fc || !b->proj) {
        block_destroy(&b->base);
        return NULL;
    }
    nbi_nn_adopt_children(&b->base);
    return &b->base;
}

/* ------------------------------------------------------------------------------------------------
 * GPT
 * ---------------------------------------------------------------------------------------------- */
nb_gpt_config nb_gpt_defaults(void)
{
    return (nb_gpt_config){.vocab_size = 0, .context = 64, .n_layer = 4, .n_head = 4, .n_embd = 128,
                           .dropout = 0.0, .tie_weights = true};
}

static nb_transformer_block *gpt_block(const nb_gpt *gpt, int i)
{
    return (nb_transformer_block *)nb_sequential_get(gpt->blocks, i);
}

static nb_tensor *gpt_forward(nb_module *m, nb_tensor *idx)
{
    const char *fn = "nb_gpt";
    nb_gpt *gpt = (nb_gpt *)m;
    nbi_tensor *t = nbi_resolve(idx, fn, "idx");
    if (!t) return NULL;
    char b[NBI_SHAPE_STR];
    if (t->dtype != NB_I64)
        return nbi_error(NB_ERR_DTYPE, "%s: token indices must be i64, not %s", fn, nb_dtype_name(t->dtype));
    if (t->ndim != 2 || t->shape[1] < 1 || t->shape[1] > gpt->config.context)
        return nbi_error(NB_ERR_SHAPE, "%s: expected token indices (B, T) with 1 <= T <= context %lld, got %s", fn,
                         (long long)gpt->config.context, nbi_shape_fmt(b, t->ndim, t->shape));
    const int64_t T = t->shape[1];
    double p = m->training ? gpt->config.dropout : 0.0;
    if (nbi_nn_begin() != NB_OK) return NULL;
    nb_tensor *pos = nb_forward(gpt->pos_emb, nb_arange(0, (double)T, 1, NB_I64));
    nb_tensor *x = nbi_nn_dropout(nb_add(nb_forward(gpt->tok_emb, idx), pos), p, gpt->generator);
    x = nb_forward(gpt->ln_f, nb_forward(gpt->blocks, x));
    nb_tensor *logits;
    if (gpt->head) logits = nb_forward(gpt->head, x);
    else logits = nb_matmul(x, nb_transpose(((nb_embedding_layer *)gpt->tok_emb)->weight, 0, 1));
    return nbi_nn_end(logits);
}

static nb_status gpt_collect(nb_module *m, const char *prefix, nb_param_list *out)
{
    nb_gpt *gpt = (nb_gpt *)m;
    nb_status st = nb_module_collect_child(gpt->tok_emb, prefix, "tok_emb", out);
    if (!st) st = nb_module_collect_child(gpt->pos_emb, prefix, "pos_emb", out);
    if (!st) st = nb_module_collect_child(gpt->blocks, prefix, "blocks", out);
    if (!st) st = nb_module_collect_child(gpt->ln_f, prefix, "ln_f", out);
    if (!st && gpt->head) st = nb_module_collect_child(gpt->head, prefix, "head", out);
    return st;
}

static void gpt_set_training(nb_module *m, bool training)
{
    nb_gpt *gpt = (nb_gpt *)m;
    nb_module *children[5] = {gpt->tok_emb, gpt->pos_emb, gpt->blocks, gpt->ln_f, gpt->head};
    for (int i = 0; i < 5; i++) nb_module_train(children[i], training);
}

static void gpt_destroy(nb_module *m)
{
    nb_gpt *gpt = (nb_gpt *)m;
    nbi_nn_free_children(m, 5, (nb_module *const[]){gpt->tok_emb, gpt->pos_emb, gpt->blocks, gpt->ln_f, gpt->head});
    free(gpt);
}

/* The children in order, skipping the head when the weights are tied (child i must be non-NULL for every i
 * before the end). */
static nb_module *gpt_child(nb_module *m, int i)
{
    nb_gpt *gpt = (nb_gpt *)m;
    nb_module *children[5] = {gpt->tok_emb, gpt->pos_emb, gpt->blocks, gpt->ln_f, gpt->head};
    for (int k = 0; k < 5; k++)
        if (children[k] && i-- == 0) return children[k];
    return NULL;
}

static const nb_module_type gpt_type = {"GPT", gpt_forward, gpt_collect, gpt_set_training, gpt_destroy, gpt_child};

static nb_gpt *as_gpt(nb_module *m, const char *fn)
{
    if (!m) {
        nbi_error_null(fn, "gpt");
        return NULL;
    }
    if (m->type != &gpt_type)
        return nbi_error(NB_ERR_ARG, "%s: module is a %s, not a GPT", fn, m->type && m->type->name ? m->type->name : "?");
    return (nb_gpt *)m;
}

/* GPT-2's initialization, over the Linear defaults the constructors drew. */
static nb_status gpt_init(nb_gpt *gpt, nb_generator *g)
{
    const double std = 0.02, residual_std = 0.02 / sqrt(2.0 * (double)gpt->config.n_layer);
    nb_status st = nb_init_normal_(((nb_embedding_layer *)gpt->tok_emb)->weight, 0, std, g);
    if (!st) st = nb_init_normal_(((nb_embedding_layer *)gpt->pos_emb)->weight, 0, std, g);
    for (int i = 0; !st && i < gpt->config.n_layer; i++) {
        nb_transformer_block *b = gpt_block(gpt, i);
        nb_self_attention *a = (nb_self_attention *)b->attn;
        nb_linear *layers[4] = {(nb_linear *)a->qkv, (nb_linear *)a->proj, (nb_linear *)b->fc, (nb_linear *)b->proj};
        for (int j = 0; !st && j < 4; j++) {
            bool residual = j == 1 || j == 3;
            st = nb_init_normal_(layers[j]->weight, 0, residual ? residual_std : std, g);
            if (!st) st = nb_init_zeros_(layers[j]->bias);
        }
    }
    if (!st && gpt->head) st = nb_init_normal_(((nb_linear *)gpt->head)->weight, 0, std, g);
    return st;
}

nb_module *nb_gpt_new(const nb_gpt_config *config, nb_generator *g)
{
    const char *fn = "nb_gpt_new";
    if (!config) {
        nbi_error_null(fn, "config");
        return NULL;
    }
    nb_gpt_config c = *config;
    const char *field = c.vocab_size < 1 ? "vocab_size" : c.context < 1 ? "context" : c.n_layer < 1 ? "n_layer"
                        : c.n_head < 1   ? "n_head"
                        : c.n_embd < 1   ? "n_embd"
                                         : NULL;
    if (field) {
        int64_t v = !strcmp(field, "vocab_size") ? c.vocab_size : !strcmp(field, "context") ? c.context
                    : !strcmp(field, "n_layer")  ? c.n_layer
                    : !strcmp(field, "n_head")   ? c.n_head
                                                 : c.n_embd;
        return nbi_error(NB_ERR_ARG, "%s: config.%s must be >= 1, got %lld", fn, field, (long long)v);
    }
    /* the blocks live in a Sequential (an int count), and the LoRA helpers list 4 n_layer + 1 layers in an int */
    if (c.n_layer > (INT_MAX - 1) / 4)
        return nbi_error(NB_ERR_ARG, "%s: config.n_layer %lld is too large (at most %d)", fn, (long long)c.n_layer,
                         (INT_MAX - 1) / 4);
    if (c.n_embd % c.n_head)
        return nbi_error(NB_ERR_ARG, "%s: config.n_embd (%lld) must be a multiple of config.n_head (%lld)", fn,
                         (long long)c.n_embd, (long long)c.n_head);
    if (check_dropout(fn, c.dropout)) return NULL;
    nb_gpt *gpt = nbi_nn_module_new(sizeof *gpt, &gpt_type, fn);
    if (!gpt) return NULL;
    gpt->config = c;
    gpt->tok_emb = nb_embedding_layer_new(c.vocab_size, c.n_embd, g);
    gpt->pos_emb = nb_embedding_layer_new(c.context, c.n_embd, g);
    gpt->blocks = nb_sequential_new(0, NULL);
    for (int64_t i = 0; gpt->blocks && i < c.n_layer; i++)
        if (nb_sequential_append(gpt->blocks, nb_transformer_block_new(c.n_embd, c.n_head, true, c.dropout, g)))
            break;
    gpt->ln_f = nb_layer_norm_new(1, &c.n_embd, 1e-5, true);
    if (!c.tie_weights) gpt->head = nb_linear_new(c.n_embd, c.vocab_size, false, g);
    if (!gpt->tok_emb || !gpt->pos_emb || !gpt->blocks || nb_sequential_len(gpt->blocks) != c.n_layer ||
        !gpt->ln_f || (!c.tie_weights && !gpt->head) || gpt_init(gpt, g) != NB_OK) {
        gpt_destroy(&gpt->base);
        return NULL;
    }
    nbi_nn_adopt_children(&gpt->base);
    return &gpt->base;
}

/* One token from a row of logits: temperature, top-k, then a draw from the softmax (computed in double). */
static int64_t sample_row(double *logits, int64_t V, double temperature, int64_t top_k, double *scratch,
                          nb_generator *g)
{
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature == 0) return best;
    double cut = -INFINITY;
    if (top_k > 0 && top_k < V) {
        /* the k-th largest value: partial selection sort of a copy (V is a vocabulary, small) */
        memcpy(scratch, logits, (size_t)V * sizeof *scratch);
        for (int64_t i = 0; i < top_k; i++) {
            int64_t m = i;
            for (int64_t j = i + 1; j < V; j++)
                if (scratch[j] > scratch[m]) m = j;
            double tmp = scratch[i];
            scratch[i] = scratch[m];
            scratch[m] = tmp;
        }
        cut = scratch[top_k - 1];
    }
    double total = 0, top = logits[best];
    for (int64_t i = 0; i < V; i++) {
        logits[i] = logits[i] >= cut ? exp((logits[i] - top) / temperature) : 0.0;
        total += logits[i];
    }
    double u = nb_random_uniform(g) * total, acc = 0;
    for (int64_t i = 0; i < V; i++) {
        acc += logits[i];
        if (u < acc && logits[i] > 0) return i;
    }
    return best; /* u landed on the rounding error at the very end */
}

nb_tensor *nb_gpt_generate(nb_module *m, nb_tensor *idx, int64_t n_new, double temperature, int64_t top_k,
                           nb_generator *g)
{
    const char *fn = "nb_gpt_generate";
    nb_gpt *gpt = as_gpt(m, fn);
    nbi_tensor *t = nbi_resolve(idx, fn, "idx");
    if (!gpt || !t) return NULL;
    char b[NBI_SHAPE_STR];
    if (t->dtype != NB_I64 || t->ndim != 2 || t->shape[1] < 1)
        return nbi_error(NB_ERR_SHAPE, "%s: expected i64 token indices (B, T) with T >= 1, got %s %s", fn,
                         nb_dtype_name(t->dtype), nbi_shape_fmt(b, t->ndim, t->shape));
    if (n_new < 0 || !(temperature >= 0) || !isfinite(temperature) || top_k < 0)
        return nbi_error(NB_ERR_ARG, "%s: need n_new >= 0, a finite temperature >= 0 and top_k >= 0, got %lld, %g, %lld",
                         fn, (long long)n_new, temperature, (long long)top_k);
    const int64_t B = t->shape[0], T0 = t->shape[1], V = gpt->config.vocab_size;
    int64_t L, total;
    if (__builtin_add_overflow(T0, n_new, &L) || __builtin_mul_overflow(B, L, &total) ||
        (uint64_t)total > SIZE_MAX / sizeof(int64_t))
        return nbi_error(NB_ERR_ARG, "%s: %lld prompts of %lld tokens plus n_new = %lld tokens is too many to hold", fn,
                         (long long)B, (long long)T0, (long long)n_new);
    int64_t *tokens = malloc((size_t)(B * L) * sizeof *tokens), *window = malloc((size_t)(B * L) * sizeof *window);
    double *logits = malloc((size_t)(B * V) * sizeof *logits), *scratch = malloc((size_t)V * sizeof *scratch);
    nb_tensor *result = NULL;
    if (!tokens || !window || !logits || !scratch) {
        nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
        goto done;
    }
    for (int64_t i = 0; i < B * T0; i++) tokens[(i / T0) * L + i % T0] = (int64_t)nbi_get_flat(t, i);
    nb_no_grad_begin();
    bool ok = true;
    for (int64_t len = T0; ok && len < L; len++) {
        int64_t w = len < gpt->config.context ? len : gpt->config.context;
        for (int64_t r = 0; r < B; r++) memcpy(window + r * w, tokens + r * L + len - w, (size_t)w * sizeof *window);
        nb_scope_begin();
        nb_tensor *in = nb_from_array(window, NB_SHAPE(B, w), NB_I64);
        nb_tensor *last = nb_narrow(nb_forward(m, in), 1, w - 1, 1);
        ok = last && nb_to_array(last, logits, B * V, NB_F64) == NB_OK;
        nb_scope_end();
        for (int64_t r = 0; ok && r < B; r++)
            tokens[r * L + len] = sample_row(logits + r * V, V, temperature, top_k, scratch, g);
    }
    nb_no_grad_end();
    if (ok) result = nb_from_array(tokens, NB_SHAPE(B, L), NB_I64);
done:
    free(tokens);
    free(window);
    free(logits);
    free(scratch);
    return result;
}

/* ------------------------------------------------------------------------------------------------
 * LoRA on a GPT: the Linear layers an adapter may wrap, by name.
 * ---------------------------------------------------------------------------------------------- */
static bool is_type(const nb_module *m, const char *name)
{
    return m && m->type && m->type->name && !strcmp(m->type->name, name);
}

typedef struct gpt_slot {
    char name[NB_NAME_MAX];
    nb_module **layer;
} gpt_slot;

/* The layers an adapter may wrap, in a new array (NULL with NB_ERR_NOMEM naming fn) of *n slots. The blocks are
 * what gpt->blocks holds now (a program may have set or appended some): transformer blocks, others skipped. */
static gpt_slot *gpt_slots(nb_gpt *gpt, int *n, const char *fn)
{
    int blocks = nb_sequential_len(gpt->blocks);
    gpt_slot *slots = malloc((size_t)(4 * (blocks > 0 ? blocks : 0) + 1) * sizeof *slots);
    if (!slots) return nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    *n = 0;
    for (int i = 0; i < blocks; i++) {
        nb_module *block = nb_sequential_get(gpt->blocks, i);
        if (!is_type(block, "TransformerBlock")) continue;
        nb_transformer_block *b = (nb_transformer_block *)block;
        nb_self_attention *a = is_type(b->attn, "SelfAttention") ? (nb_self_attention *)b->attn : NULL;
        const char *names[4] = {"attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"};
        nb_module **layers[4] = {a ? &a->qkv : NULL, a ? &a->proj : NULL, &b->fc, &b->proj};
        for (int j = 0; j < 4; j++) {
            if (!layers[j]) continue;
            snprintf(slots[*n].name, NB_NAME_MAX, "blocks.%d.%s", i, names[j]);
            slots[(*n)++].layer = layers[j];
        }
    }
    if (gpt->head) {
        snprintf(slots[*n].name, NB_NAME_MAX, "head");
        slots[(*n)++].layer = &gpt->head;
    }
    return slots;
}

/* PEFT's rule: name == target, or name ends with "." + target. */
static bool matches_target(const char *name, const char *targets)
{
    size_t len = strlen(name);
    for (const char *p = targets; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && p[0] == ' ') p++, n--;
        while (n > 0 && p[n - 1] == ' ') n--;
        if (n > 0 && n <= len && !memcmp(name + len - n, p, n) && (n == len || name[len - n - 1] == '.'))
            return true;
        p = end ? end + 1 : p + strlen(p);
    }
    return false;
}


int nb_gpt_apply_lora(nb_module *m, const char *targets, int64_t rank, double alpha, nb_generator *g)
{
    const char *fn = "nb_gpt_apply_lora";
    nb_gpt *gpt = as_gpt(m, fn);
    if (!gpt) return -1;
    if (!targets) {
        nbi_error_null(fn, "targets");
        return -1;
    }
    if (rank < 1 || !isfinite(alpha)) {
        nbi_error(NB_ERR_ARG, "%s: rank must be >= 1 and alpha finite, got %lld and %g", fn, (long long)rank, alpha);
        return -1;
    }
    int n, matched = 0, wrapped = 0;
    gpt_slot *slots = gpt_slots(gpt, &n, fn);
    if (!slots) return -1;
    for (int i = 0; i < n; i++)
        if (matches_target(slots[i].name, targets) &&
            (is_type(*slots[i].layer, "Linear") || is_type(*slots[i].layer, "LoRALinear")))
            matched++;
    for (int i = 0; i < n; i++) {
        nb_module *layer = *slots[i].layer;
        if (matches_target(slots[i].name, targets) && is_type(layer, "Linear") && ((nb_linear *)layer)->lora) {
            nbi_error(NB_ERR_ARG, "%s: %s is already wrapped by a LoRA layer the program made and has not put in its "
                      "place (free it first); nothing was changed", fn, slots[i].name);
            free(slots);
            return -1;
        }
    }
    if (!matched) {
        free(slots);
        nbi_error(NB_ERR_ARG, "%s: no Linear layer of the GPT matches the targets \"%s\" (names such as "
                              "blocks.0.attn.qkv, blocks.0.attn.proj, blocks.0.mlp.fc, blocks.0.mlp.proj, head)",
                  fn, targets);
        return -1;
    }
    /* PEFT freezes everything but the adapters (those of an earlier call keep training) */
    nb_param_list *params = nb_module_parameters(m);
    nb_status st = params ? NB_OK : nb_last_status();
    for (int i = 0; !st && i < params->count; i++) {
        const char *name = params->items[i].name, *last = strrchr(name, '.');
        last = last ? last + 1 : name;
        if (!params->items[i].is_buffer && strcmp(last, "lora_A") && strcmp(last, "lora_B"))
            st = nb_set_requires_grad(params->items[i].tensor, false);
    }
    nb_param_list_free(params);
    if (st) {
        free(slots);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!matches_target(slots[i].name, targets) || !is_type(*slots[i].layer, "Linear")) continue;
        /* on failure the Linear, which its block owns, stays in its slot; the wrapper takes its place */
        nb_module *owner = (*slots[i].layer)->owner;
        nb_module *lora = nb_lora_linear_new(*slots[i].layer, rank, alpha, g);
        if (!lora) {
            free(slots);
            return -1;
        }
        lora->owner = owner;
        nbi_nn_adopt_children(lora);
        *slots[i].layer = lora;
        wrapped++;
    }
    free(slots);
    return wrapped;
}

int nb_gpt_merge_lora(nb_module *m, bool merge)
{
    const char *fn = "nb_gpt_merge_lora";
    nb_gpt *gpt = as_gpt(m, fn);
    if (!gpt) return -1;
    int n, changed = 0;
    gpt_slot *slots = gpt_slots(gpt, &n, fn);
    if (!slots) return -1;
    for (int i = 0; i < n && changed >= 0; i++) {
        nb_module *layer = *slots[i].layer;
        if (!is_type(layer, "LoRALinear") || ((nb_lora_linear *)layer)->merged == merge) continue;
        changed = (merge ? nb_lora_merge(layer) : nb_lora_unmerge(layer)) == NB_OK ? changed + 1 : -1;
    }
    free(slots);
    return changed;
}
