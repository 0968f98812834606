/* Linear, the activation layers, Dropout, Flatten and Embedding: compositions of nabla's public ops. */
#include "nn_internal.h"

#include <math.h>
#include <stdlib.h>

static void free_module(nb_module *m) { free(m); }

static nb_status reject_negative(const char *fn, const char *what, int64_t v)
{
    if (v >= 0) return NB_OK;
    return nbi_fail(NB_ERR_ARG, "%s: %s must be >= 0, got %lld", fn, what, (long long)v);
}

/* ------------------------------------------------------------------------------------------------
 * Linear
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *linear_forward(nb_module *m, nb_tensor *x)
{
    nb_linear *l = (nb_linear *)m;
    nbi_tensor *t = nbi_resolve(x, "nb_linear", "input");
    if (!t) return NULL;
    if (t->ndim < 1 || t->shape[t->ndim - 1] != l->in_features) {
        char b[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "nb_linear: input of shape %s does not match in_features %lld",
                         nbi_shape_fmt(b, t->ndim, t->shape), (long long)l->in_features);
    }
    return nb_affine(x, l->weight, l->bias);
}

static nb_status linear_collect(nb_module *m, const char *prefix, nb_param_list *out)
{
    nb_linear *l = (nb_linear *)m;
    nb_status st = nbi_nn_collect_one(out, prefix, "weight", l->weight, false);
    return st ? st : nbi_nn_collect_one(out, prefix, "bias", l->bias, false);
}

static void linear_destroy(nb_module *m)
{
    nb_linear *l = (nb_linear *)m;
    /* A wrapper not installed yet must not reach the freed Linear (its container went first). */
    if (l->lora && l->base.owner != l->lora) nbi_lora_forget_linear(l->lora);
    nbi_nn_free_tensor(l->weight);
    nbi_nn_free_tensor(l->bias);
    free(l);
}

static const nb_module_type linear_type = {"Linear", linear_forward, linear_collect, NULL, linear_destroy, NULL};

nb_module *nb_linear_new(int64_t in_features, int64_t out_features, bool bias, nb_generator *g)
{
    const char *fn = "nb_linear_new";
    if (reject_negative(fn, "in_features", in_features) || reject_negative(fn, "out_features", out_features))
        return NULL;
    nb_linear *l = nbi_nn_module_new(sizeof *l, &linear_type, fn);
    if (!l) return NULL;
    l->in_features = in_features;
    l->out_features = out_features;
    l->weight = nbi_nn_param(2, (const int64_t[]){out_features, in_features}, fn);
    if (bias) l->bias = nbi_nn_param(1, &out_features, fn);
    if (!l->weight || (bias && !l->bias)) {
        linear_destroy(&l->base);
        return NULL;
    }
    /* PyTorch draws kaiming_uniform_(a = sqrt(5)) for the weight, which works out to this same bound. */
    double bound = in_features > 0 ? 1.0 / sqrt((double)in_features) : 0.0;
    if (nb_uniform_(l->weight, -bound, bound, g) != NB_OK || (bias && nb_uniform_(l->bias, -bound, bound, g))) {
        linear_destroy(&l->base);
        return NULL;
    }
    return &l->base;
}

/* ------------------------------------------------------------------------------------------------
 * Activation layers: one struct, one type per activation (for its name), one forward.
 * ---------------------------------------------------------------------------------------------- */
typedef enum act_kind { ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_GELU, ACT_LEAKY_RELU, ACT_SOFTMAX, ACT_LOG_SOFTMAX } act_kind;

typedef struct activation {
    nb_module base;
    act_kind kind;
    double slope;
    int dim;
    bool approximate;
} activation;

static nb_tensor *activation_forward(nb_module *m, nb_tensor *x)
{
    activation *a = (activation *)m;
    switch (a->kind) {
    case ACT_RELU: return nb_relu(x);
    case ACT_TANH: return nb_tanh(x);
    case ACT_SIGMOID: return nb_sigmoid(x);
    case ACT_GELU: return nb_gelu(x, a->approximate);
    case ACT_LEAKY_RELU: return nb_leaky_relu(x, a->slope);
    case ACT_SOFTMAX: return nb_softmax(x, a->dim);
    case ACT_LOG_SOFTMAX: return nb_log_softmax(x, a->dim);
    }
    return nbi_error(NB_ERR_ARG, "nb_forward: corrupt activation layer");
}

#define ACT_TYPE(var, name) static const nb_module_type var = {name, activation_forward, NULL, NULL, free_module, NULL}
ACT_TYPE(relu_type, "ReLU");
ACT_TYPE(tanh_type, "Tanh");
ACT_TYPE(sigmoid_type, "Sigmoid");
ACT_TYPE(gelu_type, "GELU");
ACT_TYPE(leaky_relu_type, "LeakyReLU");
ACT_TYPE(softmax_type, "Softmax");
ACT_TYPE(log_softmax_type, "LogSoftmax");

static nb_module *activation_new(const nb_module_type *type, act_kind kind, const char *fn)
{
    activation *a = nbi_nn_module_new(sizeof *a, type, fn);
    if (a) a->kind = kind;
    return a ? &a->base : NULL;
}

nb_module *nb_relu_layer_new(void) { return activation_new(&relu_type, ACT_RELU, "nb_relu_layer_new"); }
nb_module *nb_tanh_layer_new(void) { return activation_new(&tanh_type, ACT_TANH, "nb_tanh_layer_new"); }
nb_module *nb_sigmoid_layer_new(void) { return activation_new(&sigmoid_type, ACT_SIGMOID, "nb_sigmoid_layer_new"); }

nb_module *nb_gelu_layer_new(bool approximate)
{
    nb_module *m = activation_new(&gelu_type, ACT_GELU, "nb_gelu_layer_new");
    if (m) ((activation *)m)->approximate = approximate;
    return m;
}

nb_module *nb_leaky_relu_layer_new(double negative_slope)
{
    if (isnan(negative_slope)) return nbi_error(NB_ERR_VALUE, "nb_leaky_relu_layer_new: negative_slope is NaN");
    nb_module *m = activation_new(&leaky_relu_type, ACT_LEAKY_RELU, "nb_leaky_relu_layer_new");
    if (m) ((activation *)m)->slope = negative_slope;
    return m;
}

nb_module *nb_softmax_layer_new(int dim)
{
    nb_module *m = activation_new(&softmax_type, ACT_SOFTMAX, "nb_softmax_layer_new");
    if (m) ((activation *)m)->dim = dim;
    return m;
}

nb_module *nb_log_softmax_layer_new(int dim)
{
    nb_module *m = activation_new(&log_softmax_type, ACT_LOG_SOFTMAX, "nb_log_softmax_layer_new");
    if (m) ((activation *)m)->dim = dim;
    return m;
}

/* ------------------------------------------------------------------------------------------------
 * Dropout
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *dropout_forward(nb_module *m, nb_tensor *x)
{
    nb_dropout *d = (nb_dropout *)m;
    nbi_tensor *t = nbi_resolve(x, "nb_dropout", "input");
    if (!t) return NULL;
    /* PyTorch returns the input itself here; a new handle keeps ownership simple (the caller frees both). */
    if (!m->training || d->p == 0 || t->numel == 0) return nbi_alias(t, "nb_dropout");
    if (d->p == 1) return nb_mul_scalar(x, 0.0);
    if (!nbi_is_float(t->dtype))
        return nbi_error(NB_ERR_DTYPE, "nb_dropout: needs an f32 or f64 input in training, not %s",
                         nb_dtype_name(t->dtype));
    if (nbi_nn_begin() != NB_OK) return NULL;
    return nbi_nn_end(nbi_nn_dropout(x, d->p, d->generator));
}

nb_tensor *nbi_nn_dropout(nb_tensor *x, double p, nb_generator *g)
{
    if (p == 0 || !x) return x;
    nb_dtype dt = nb_dtype_of(x);
    /* u < p drops an element, so each survives with probability 1 - p. */
    nb_tensor *u = nb_rand(nb_ndim(x), nb_shape(x), 0.0, 1.0, dt, g);
    return nb_mul(x, nb_mul_scalar(nb_to_dtype(nb_ge(u, nb_scalar(p, dt)), dt), 1.0 / (1.0 - p)));
}

static const nb_module_type dropout_type = {"Dropout", dropout_forward, NULL, NULL, free_module, NULL};

nb_module *nb_dropout_new(double p, nb_generator *g)
{
    if (!(p >= 0 && p <= 1))
        return nbi_error(NB_ERR_ARG, "nb_dropout_new: dropout probability p must be in [0, 1], got %g", p);
    nb_dropout *d = nbi_nn_module_new(sizeof *d, &dropout_type, "nb_dropout_new");
    if (!d) return NULL;
    d->p = p;
    d->generator = g;
    return &d->base;
}

/* ------------------------------------------------------------------------------------------------
 * Flatten
 * ---------------------------------------------------------------------------------------------- */
typedef struct flatten {
    nb_module base;
    int start_dim, end_dim;
} flatten;

static nb_tensor *flatten_forward(nb_module *m, nb_tensor *x)
{
    flatten *f = (flatten *)m;
    return nb_flatten(x, f->start_dim, f->end_dim);
}

static const nb_module_type flatten_type = {"Flatten", flatten_forward, NULL, NULL, free_module, NULL};

nb_module *nb_flatten_layer_new(int start_dim, int end_dim)
{
    flatten *f = nbi_nn_module_new(sizeof *f, &flatten_type, "nb_flatten_layer_new");
    if (!f) return NULL;
    f->start_dim = start_dim;
    f->end_dim = end_dim;
    return &f->base;
}

/* ------------------------------------------------------------------------------------------------
 * Embedding
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *embedding_forward(nb_module *m, nb_tensor *x)
{
    nb_embedding_layer *e = (nb_embedding_layer *)m;
    nbi_tensor *t = nbi_resolve(x, "nb_embedding_layer", "indices");
    if (!t) return NULL;
    if (t->dtype != NB_I64)
        return nbi_error(NB_ERR_DTYPE, "nb_embedding_layer: indices must be i64, not %s", nb_dtype_name(t->dtype));
    return nb_embedding(e->weight, x);
}

static nb_status embedding_collect(nb_module *m, const char *prefix, nb_param_list *out)
{
    return nbi_nn_collect_one(out, prefix, "weight", ((nb_embedding_layer *)m)->weight, false);
}

static void embedding_destroy(nb_module *m)
{
    nbi_nn_free_tensor(((nb_embedding_layer *)m)->weight);
    free(m);
}

static const nb_module_type embedding_type = {"Embedding", embedding_forward, embedding_collect, NULL,
                                              embedding_destroy, NULL};

nb_module *nb_embedding_layer_new(int64_t num_embeddings, int64_t embedding_dim, nb_generator *g)
{
    const char *fn = "nb_embedding_layer_new";
    if (reject_negative(fn, "num_embeddings", num_embeddings) ||
        reject_negative(fn, "embedding_dim", embedding_dim))
        return NULL;
    nb_embedding_layer *e = nbi_nn_module_new(sizeof *e, &embedding_type, fn);
    if (!e) return NULL;
    e->num_embeddings = num_embeddings;
    e->embedding_dim = embedding_dim;
    e->weight = nbi_nn_param(2, (const int64_t[]){num_embeddings, embedding_dim}, fn);
    if (!e->weight || nb_normal_(e->weight, 0.0, 1.0, g) != NB_OK) {
        embedding_destroy(&e->base);
        return NULL;
    }
    return &e->base;
}
