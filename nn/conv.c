/* Convolutional layers: Conv2d, Conv1d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm2d, Dropout2d. Each
 * forward is one call of the matching op (see nb_autograd.h); the layers hold the parameters and settings. */
#include "nn_internal.h"

#include <math.h>
#include <stdlib.h>

static void free_module(nb_module *m) { free(m); }

/* ------------------------------------------------------------------------------------------------
 * Conv2d and Conv1d (one struct; a 1-d layer has a kernel of height 1)
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *conv2d_forward(nb_module *m, nb_tensor *x)
{
    nb_conv2d_layer *c = (nb_conv2d_layer *)m;
    return nb_conv2d(x, c->weight, c->bias, c->stride, c->padding, c->dilation, c->groups);
}

static nb_tensor *conv1d_forward(nb_module *m, nb_tensor *x)
{
    nb_conv2d_layer *c = (nb_conv2d_layer *)m;
    /* The weight is stored 3-d, (out, in / groups, k), as PyTorch's. */
    return nb_conv1d(x, c->weight, c->bias, c->stride[1], c->padding[1], c->dilation[1], c->groups);
}

static nb_status conv_collect(nb_module *m, const char *prefix, nb_param_list *out)
{
    nb_conv2d_layer *c = (nb_conv2d_layer *)m;
    nb_status st = nbi_nn_collect_one(out, prefix, "weight", c->weight, false);
    return st ? st : nbi_nn_collect_one(out, prefix, "bias", c->bias, false);
}

static void conv_destroy(nb_module *m)
{
    nb_conv2d_layer *c = (nb_conv2d_layer *)m;
    nbi_nn_free_tensor(c->weight);
    nbi_nn_free_tensor(c->bias);
    free(c);
}

static const nb_module_type conv2d_type = {"Conv2d", conv2d_forward, conv_collect, NULL, conv_destroy, NULL};
static const nb_module_type conv1d_type = {"Conv1d", conv1d_forward, conv_collect, NULL, conv_destroy, NULL};

static nb_module *conv_new(const char *fn, const nb_module_type *type, int64_t in, int64_t out,
                           const nb_conv2d_options *o, nb_generator *g)
{
    int64_t groups = o->groups ? o->groups : 1;
    int64_t k[2] = {o->kernel_size[0], o->kernel_size[1]};
    int64_t s[2] = {o->stride[0] ? o->stride[0] : 1, o->stride[1] ? o->stride[1] : 1};
    int64_t d[2] = {o->dilation[0] ? o->dilation[0] : 1, o->dilation[1] ? o->dilation[1] : 1};
    if (in < 1 || out < 1)
        return nbi_error(NB_ERR_ARG, "%s: in_channels %lld and out_channels %lld must be >= 1", fn, (long long)in,
                         (long long)out);
    if (groups < 1 || in % groups || out % groups)
        return nbi_error(NB_ERR_ARG, "%s: groups %lld must be >= 1 and divide in_channels %lld and out_channels %lld",
                         fn, (long long)groups, (long long)in, (long long)out);
    if (k[0] < 1 || k[1] < 1 || s[0] < 1 || s[1] < 1 || d[0] < 1 || d[1] < 1 || o->padding[0] < 0 ||
        o->padding[1] < 0)
        return nbi_error(NB_ERR_ARG, "%s: kernel_size (%lld, %lld), stride (%lld, %lld) and dilation (%lld, %lld) must be >= 1, padding (%lld, %lld) >= 0",
                         fn, (long long)k[0], (long long)k[1], (long long)s[0], (long long)s[1], (long long)d[0],
                         (long long)d[1], (long long)o->padding[0], (long long)o->padding[1]);
    nb_conv2d_layer *c = nbi_nn_module_new(sizeof *c, type, fn);
    if (!c) return NULL;
    c->in_channels = in;
    c->out_channels = out;
    c->groups = groups;
    for (int i = 0; i < 2; i++) {
        c->kernel_size[i] = k[i];
        c->stride[i] = s[i];
        c->padding[i] = o->padding[i];
        c->dilation[i] = d[i];
    }
    int64_t cg = in / groups;
    c->weight = type == &conv1d_type ? nbi_nn_param(NB_SHAPE(out, cg, k[1]), fn)
                                     : nbi_nn_param(NB_SHAPE(out, cg, k[0], k[1]), fn);
    if (!o->no_bias) c->bias = nbi_nn_param(1, &out, fn);
    if (!c->weight || (!o->no_bias && !c->bias)) {
        conv_destroy(&c->base);
        return NULL;
    }
    /* kaiming_uniform(a = sqrt(5)): gain sqrt(2 / (1 + 5)) times sqrt(3 / fan_in) = 1 / sqrt(fan_in). fan_in
     * divides the weight's element count, so it fits now that the weight exists. */
    double bound = 1.0 / sqrt((double)(cg * k[0] * k[1]));
    if (nb_uniform_(c->weight, -bound, bound, g) != NB_OK ||
        (c->bias && nb_uniform_(c->bias, -bound, bound, g) != NB_OK)) {
        conv_destroy(&c->base);
        return NULL;
    }
    return &c->base;
}

nb_module *nb_conv2d_new(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
                         int64_t padding, int64_t dilation, int64_t groups, bool bias, nb_generator *g)
{
    const char *fn = "nb_conv2d_new";
    if (stride < 1 || dilation < 1 || groups < 1)
        return nbi_error(NB_ERR_ARG, "%s: stride %lld, dilation %lld and groups %lld must be >= 1", fn,
                         (long long)stride, (long long)dilation, (long long)groups);
    nb_conv2d_options o = {{kernel_size, kernel_size}, {stride, stride}, {padding, padding}, {dilation, dilation},
                           groups, !bias};
    return conv_new(fn, &conv2d_type, in_channels, out_channels, &o, g);
}

nb_module *nb_conv2d_new_ex(int64_t in_channels, int64_t out_channels, const nb_conv2d_options *options,
                            nb_generator *g)
{
    if (!options) return nbi_error(NB_ERR_NULL, "nb_conv2d_new_ex: options is NULL");
    return conv_new("nb_conv2d_new_ex", &conv2d_type, in_channels, out_channels, options, g);
}

nb_module *nb_conv1d_new(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
                         int64_t padding, int64_t dilation, int64_t groups, bool bias, nb_generator *g)
{
    const char *fn = "nb_conv1d_new";
    if (stride < 1 || dilation < 1 || groups < 1)
        return nbi_error(NB_ERR_ARG, "%s: stride %lld, dilation %lld and groups %lld must be >= 1", fn,
                         (long long)stride, (long long)dilation, (long long)groups);
    nb_conv2d_options o = {{1, kernel_size}, {1, stride}, {0, padding}, {1, dilation}, groups, !bias};
    return conv_new(fn, &conv1d_type, in_channels, out_channels, &o, g);
}

/* ------------------------------------------------------------------------------------------------
 * Pooling
 * ---------------------------------------------------------------------------------------------- */
typedef struct pool_layer {
    nb_module base;
    int64_t kernel[2], stride[2], padding[2];
    bool count_include_pad;
} pool_layer;

static nb_tensor *max_pool_forward(nb_module *m, nb_tensor *x)
{
    pool_layer *p = (pool_layer *)m;
    return nb_max_pool2d(x, p->kernel, p->stride, p->padding, NULL);
}
static nb_tensor *avg_pool_forward(nb_module *m, nb_tensor *x)
{
    pool_layer *p = (pool_layer *)m;
    return nb_avg_pool2d(x, p->kernel, p->stride, p->padding, p->count_include_pad);
}
static nb_tensor *adaptive_forward(nb_module *m, nb_tensor *x)
{
    pool_layer *p = (pool_layer *)m;
    return nb_adaptive_avg_pool2d(x, p->kernel[0], p->kernel[1]);
}

static const nb_module_type max_pool_type = {"MaxPool2d", max_pool_forward, NULL, NULL, free_module, NULL};
static const nb_module_type avg_pool_type = {"AvgPool2d", avg_pool_forward, NULL, NULL, free_module, NULL};
static const nb_module_type adaptive_type = {"AdaptiveAvgPool2d", adaptive_forward, NULL, NULL, free_module, NULL};

static nb_module *pool_new(const char *fn, const nb_module_type *type, int64_t kernel, int64_t stride,
                           int64_t padding, bool count_include_pad)
{
    if (stride == 0) stride = kernel;
    if (kernel < 1 || stride < 1 || padding < 0 || 2 * padding > kernel)
        return nbi_error(NB_ERR_ARG, "%s: kernel_size %lld and stride %lld must be >= 1, padding %lld in 0 .. kernel_size / 2",
                         fn, (long long)kernel, (long long)stride, (long long)padding);
    pool_layer *p = nbi_nn_module_new(sizeof *p, type, fn);
    if (!p) return NULL;
    p->kernel[0] = p->kernel[1] = kernel;
    p->stride[0] = p->stride[1] = stride;
    p->padding[0] = p->padding[1] = padding;
    p->count_include_pad = count_include_pad;
    return &p->base;
}

nb_module *nb_max_pool2d_new(int64_t kernel_size, int64_t stride, int64_t padding)
{
    return pool_new("nb_max_pool2d_new", &max_pool_type, kernel_size, stride, padding, true);
}

nb_module *nb_avg_pool2d_new(int64_t kernel_size, int64_t stride, int64_t padding, bool count_include_pad)
{
    return pool_new("nb_avg_pool2d_new", &avg_pool_type, kernel_size, stride, padding, count_include_pad);
}

nb_module *nb_adaptive_avg_pool2d_new(int64_t out_h, int64_t out_w)
{
    const char *fn = "nb_adaptive_avg_pool2d_new";
    if (out_h < 1 || out_w < 1)
        return nbi_error(NB_ERR_ARG, "%s: output size (%lld, %lld) must be >= 1", fn, (long long)out_h,
                         (long long)out_w);
    pool_layer *p = nbi_nn_module_new(sizeof *p, &adaptive_type, fn);
    if (!p) return NULL;
    p->kernel[0] = out_h;
    p->kernel[1] = out_w;
    return &p->base;
}

/* ------------------------------------------------------------------------------------------------
 * BatchNorm2d: BatchNorm1d's struct and buffers, nb_batch_norm's computation
 * ---------------------------------------------------------------------------------------------- */
static nb_tensor *batch_norm2d_forward(nb_module *m, nb_tensor *x)
{
    const char *fn = "nb_batch_norm2d";
    nb_batch_norm2d *bn = (nb_batch_norm2d *)m;
    nbi_tensor *t = nbi_resolve(x, fn, "input");
    if (!t) return NULL;
    if (t->ndim != 4 || t->shape[1] != bn->num_features) {
        char s[NBI_SHAPE_STR];
        return nbi_error(NB_ERR_SHAPE, "%s: expected input of shape (N, %lld, H, W), got %s", fn,
                         (long long)bn->num_features, nbi_shape_fmt(s, t->ndim, t->shape));
    }
    nb_tensor *y = nb_batch_norm(x, bn->running_mean, bn->running_var, bn->weight, bn->bias, m->training,
                                 bn->momentum, bn->eps);
    if (y && m->training) {
        nb_no_grad_begin();
        nb_status st = nb_fill(bn->num_batches_tracked, nb_item(bn->num_batches_tracked) + 1);
        nb_no_grad_end();
        if (st != NB_OK) {
            nb_free(y);
            return NULL;
        }
    }
    return y;
}

static const nb_module_type batch_norm2d_type = {"BatchNorm2d", batch_norm2d_forward, nbi_batch_norm_collect, NULL,
                                                 nbi_batch_norm_destroy, NULL};

nb_module *nb_batch_norm2d_new(int64_t num_features, double eps, double momentum, bool affine)
{
    return nbi_batch_norm_new(&batch_norm2d_type, "nb_batch_norm2d_new", num_features, eps, momentum, affine);
}

/* ------------------------------------------------------------------------------------------------
 * Dropout2d
 * ---------------------------------------------------------------------------------------------- */
typedef struct dropout2d {
    nb_module base;
    double p;
    nb_generator *generator;
} dropout2d;

static nb_tensor *dropout2d_forward(nb_module *m, nb_tensor *x)
{
    dropout2d *d = (dropout2d *)m;
    return nb_dropout2d(x, d->p, m->training, d->generator);
}

static const nb_module_type dropout2d_type = {"Dropout2d", dropout2d_forward, NULL, NULL, free_module, NULL};

nb_module *nb_dropout2d_new(double p, nb_generator *g)
{
    if (!(p >= 0 && p <= 1))
        return nbi_error(NB_ERR_ARG, "nb_dropout2d_new: dropout probability p must be in [0, 1], got %g", p);
    dropout2d *d = nbi_nn_module_new(sizeof *d, &dropout2d_type, "nb_dropout2d_new");
    if (!d) return NULL;
    d->p = p;
    d->generator = g;
    return &d->base;
}
