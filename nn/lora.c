/* LoRA adapters around a Linear layer: the low-rank update, merging it into the base weight, and saving or
 * loading the adapters alone. Compositions of nabla's public ops. */
#include "nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* NB_ERR_STATE naming fn when the wrapper has lost its Linear (freed with its container before the wrapper was
 * installed), else NB_OK. */
static nb_status check_linear(const nb_lora_linear *l, const char *fn)
{
    if (l->linear) return NB_OK;
    return nbi_fail(NB_ERR_STATE, "%s: the LoRA layer's Linear was freed with the container that held it (the "
                    "wrapper was never put in its slot)", fn);
}

static nb_tensor *lora_forward(nb_module *m, nb_tensor *x)
{
    nb_lora_linear *l = (nb_lora_linear *)m;
    if (check_linear(l, "nb_lora_linear")) return NULL;
    if (l->merged) return nb_forward(&l->linear->base, x);
    if (!nbi_resolve(x, "nb_lora_linear", "input")) return NULL;
    if (nbi_nn_begin() != NB_OK) return NULL;
    /* x A^T first: the rank-r bottleneck keeps the update at r (in + out) operations per row; scaling it there
     * rather than after B keeps one (..., out) activation fewer in the graph */
    nb_tensor *low = nb_mul_scalar(nb_matmul(x, nb_transpose(l->lora_A, 0, 1)), l->scaling);
    nb_tensor *update = nb_matmul(low, nb_transpose(l->lora_B, 0, 1));
    return nbi_nn_end(nb_add(nb_forward(&l->linear->base, x), update));
}

static nb_status lora_collect(nb_module *m, const char *prefix, nb_param_list *out)
{
    nb_lora_linear *l = (nb_lora_linear *)m;
    nb_status st = check_linear(l, "nb_module_collect");
    if (!st) st = nb_module_collect(&l->linear->base, prefix, out);
    if (!st) st = nbi_nn_collect_one(out, prefix, "lora_A", l->lora_A, false);
    return st ? st : nbi_nn_collect_one(out, prefix, "lora_B", l->lora_B, false);
}

static void lora_set_training(nb_module *m, bool training)
{
    nb_lora_linear *l = (nb_lora_linear *)m;
    if (l->linear) nb_module_train(&l->linear->base, training);
}

static nb_status fold(nb_lora_linear *l, double sign);

static void lora_destroy(nb_module *m)
{
    nb_lora_linear *l = (nb_lora_linear *)m;
    if (l->linear && l->linear->base.owner == m) {
        nb_module_free(&l->linear->base);
    } else if (l->linear) {
        /* Never installed in its Linear's container: the Linear stays there as it was, unmerged and trainable. */
        if (l->merged) fold(l, -1.0);
        nb_set_requires_grad(l->linear->weight, l->weight_grad);
        if (l->linear->bias) nb_set_requires_grad(l->linear->bias, l->bias_grad);
        l->linear->lora = NULL;
    }
    nbi_nn_free_tensor(l->lora_A);
    nbi_nn_free_tensor(l->lora_B);
    free(l);
}

static nb_module *lora_child(nb_module *m, int i)
{
    nb_lora_linear *l = (nb_lora_linear *)m;
    return i == 0 && l->linear ? &l->linear->base : NULL;
}

static const nb_module_type lora_type = {"LoRALinear", lora_forward, lora_collect, lora_set_training, lora_destroy,
                                         lora_child};

/* The end of a failed nb_lora_linear_new: a Linear of the program's own is freed (the documented ownership), one
 * inside a container stays there untouched, so the wrapping idiom leaves the container as it was. */
static nb_module *refuse(nb_module *linear)
{
    if (!linear->owner) nb_module_free(linear);
    return NULL;
}

nb_module *nb_lora_linear_new(nb_module *linear, int64_t rank, double alpha, nb_generator *g)
{
    const char *fn = "nb_lora_linear_new";
    if (!linear) {
        nbi_error_null(fn, "linear");
        return NULL;
    }
    const char *type = linear->type && linear->type->name ? linear->type->name : "(untyped module)";
    if (strcmp(type, "Linear")) {
        nbi_error(NB_ERR_ARG, "%s: can only wrap a Linear layer, got a %s", fn, type);
        return refuse(linear);
    }
    if (((nb_linear *)linear)->lora) { /* it has an owner (that wrapper or its container): refuse keeps it */
        nbi_error(NB_ERR_ARG, "%s: the Linear is already wrapped by a LoRA layer (%s)", fn,
                  ((nb_linear *)linear)->lora == linear->owner ? "installed" : "not yet in the Linear's slot");
        return refuse(linear);
    }
    if (rank < 1 || !isfinite(alpha)) {
        nbi_error(NB_ERR_ARG, "%s: rank must be >= 1 and alpha finite, got rank %lld and alpha %g", fn,
                  (long long)rank, alpha);
        return refuse(linear);
    }
    nb_lora_linear *l = nbi_nn_module_new(sizeof *l, &lora_type, fn);
    if (!l) return refuse(linear);
    const nb_linear *base = (const nb_linear *)linear;
    const int64_t in = base->in_features, out = base->out_features;
    l->lora_A = nbi_nn_param(2, (const int64_t[]){rank, in}, fn);
    l->lora_B = nbi_nn_param(2, (const int64_t[]){out, rank}, fn); /* zeros: the update starts at 0 */
    nb_status st = l->lora_A && l->lora_B ? NB_OK : nb_last_status();
    /* PEFT and loralib draw A with kaiming_uniform_(a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)) */
    if (!st && in > 0) st = nb_init_kaiming_uniform_(l->lora_A, sqrt(5.0), NB_FAN_IN, NB_GAIN_LEAKY_RELU, g);
    if (st) {
        lora_destroy(&l->base); /* l->linear is still NULL: the Linear is not part of it yet */
        return refuse(linear);
    }
    /* From here nothing fails: freezing a Linear's own parameters (f32 leaves) cannot. */
    l->linear = (nb_linear *)linear;
    l->base.training = linear->training;
    l->rank = rank;
    l->alpha = alpha;
    l->scaling = alpha / (double)rank;
    l->weight_grad = nb_requires_grad(l->linear->weight);
    l->bias_grad = l->linear->bias && nb_requires_grad(l->linear->bias);
    nb_set_requires_grad(l->linear->weight, false);
    if (l->linear->bias) nb_set_requires_grad(l->linear->bias, false);
    /* A Linear inside a container stays that container's until the wrapper takes its place there (the container
     * then hands the Linear over); taking it now would give it two owners whenever the wrapper goes anywhere else. */
    if (!linear->owner) linear->owner = &l->base;
    l->linear->lora = &l->base;
    return &l->base;
}

bool nbi_nn_is_lora(const nb_module *m) { return m && m->type == &lora_type; }

void nbi_lora_forget_linear(nb_module *lora)
{
    nb_lora_linear *l = (nb_lora_linear *)lora;
    l->linear = NULL;
    l->merged = false; /* the merge went with the Linear */
}

static nb_lora_linear *as_lora(nb_module *m, const char *fn)
{
    if (!m) {
        nbi_error_null(fn, "module");
        return NULL;
    }
    if (m->type != &lora_type)
        return nbi_error(NB_ERR_ARG, "%s: module is a %s, not a LoRA layer", fn,
                         m->type && m->type->name ? m->type->name : "(untyped module)");
    return (nb_lora_linear *)m;
}

/* W += sign (alpha / r) B A, without recording a graph. */
static nb_status fold(nb_lora_linear *l, double sign)
{
    nb_no_grad_begin();
    nb_scope_begin();
    nb_tensor *delta = nb_mul_scalar(nb_matmul(l->lora_B, l->lora_A), sign * l->scaling);
    nb_status st = delta ? nb_copy_(l->linear->weight, nb_add(l->linear->weight, delta)) : nb_last_status();
    nb_scope_end();
    nb_no_grad_end();
    return st;
}

nb_status nb_lora_merge(nb_module *m)
{
    nb_lora_linear *l = as_lora(m, "nb_lora_merge");
    if (!l || check_linear(l, "nb_lora_merge")) return nb_last_status();
    if (l->merged) return nbi_fail(NB_ERR_STATE, "nb_lora_merge: the adapter is already merged");
    nb_status st = fold(l, 1.0);
    if (!st) l->merged = true;
    return st;
}

nb_status nb_lora_unmerge(nb_module *m)
{
    nb_lora_linear *l = as_lora(m, "nb_lora_unmerge");
    if (!l || check_linear(l, "nb_lora_unmerge")) return nb_last_status();
    if (!l->merged) return nbi_fail(NB_ERR_STATE, "nb_lora_unmerge: the adapter is not merged");
    nb_status st = fold(l, -1.0);
    if (!st) l->merged = false;
    return st;
}

static bool is_adapter_name(const char *name)
{
    const char *last = strrchr(name, '.');
    last = last ? last + 1 : name;
    return !strcmp(last, "lora_A") || !strcmp(last, "lora_B");
}

nb_param_list *nb_lora_adapters(const nb_param_list *params)
{
    if (!params) {
        nbi_error_null("nb_lora_adapters", "params");
        return NULL;
    }
    nb_param_list *out = nb_param_list_new();
    for (int i = 0; out && i < params->count; i++) {
        const nb_named_tensor *e = &params->items[i];
        if (is_adapter_name(e->name) && nb_param_list_add(out, e->name, e->tensor, e->is_buffer) != NB_OK) {
            nb_param_list_free(out);
            out = NULL;
        }
    }
    return out;
}

/* The model's adapters in a new list; NB_ERR_ARG naming fn when it has none. */
static nb_param_list *model_adapters(nb_module *model, const char *fn)
{
    if (!model) {
        nbi_error_null(fn, "model");
        return NULL;
    }
    nb_param_list *all = nb_module_parameters(model);
    nb_param_list *adapters = all ? nb_lora_adapters(all) : NULL;
    nb_param_list_free(all);
    if (adapters && adapters->count == 0) {
        nb_param_list_free(adapters);
        return nbi_error(NB_ERR_ARG, "%s: the model has no LoRA adapters", fn);
    }
    return adapters;
}

nb_status nb_lora_save(const char *path, nb_module *model, const nb_metadata *metadata)
{
    nb_param_list *adapters = model_adapters(model, "nb_lora_save");
    if (!adapters) return nb_last_status();
    nb_status st = nb_save_safetensors(path, adapters, metadata);
    nb_param_list_free(adapters);
    return st;
}

/* A merged LoRA layer in m's tree: loading new adapters into it would leave the old ones folded into W, and
 * unmerging would then subtract the new ones. */
static const nb_lora_linear *find_merged(nb_module *m)
{
    if (!m || !m->type) return NULL;
    if (m->type == &lora_type) return ((nb_lora_linear *)m)->merged ? (nb_lora_linear *)m : NULL;
    nb_module *c;
    for (int i = 0; m->type->child && (c = m->type->child(m, i)) != NULL; i++) {
        const nb_lora_linear *found = find_merged(c);
        if (found) return found;
    }
    return NULL;
}

nb_status nb_lora_load(const char *path, nb_module *model, nb_load_report *report, nb_metadata *metadata)
{
    const nb_lora_linear *merged = find_merged(model);
    if (merged)
        return nbi_fail(NB_ERR_STATE, "nb_lora_load: the model has a merged LoRA layer (%lld x %lld, rank %lld); "
                        "unmerge it (nb_lora_unmerge, nb_gpt_merge_lora(model, false)) before loading adapters",
                        (long long)merged->linear->out_features, (long long)merged->linear->in_features,
                        (long long)merged->rank);
    nb_param_list *adapters = model_adapters(model, "nb_lora_load");
    if (!adapters) return nb_last_status();
    nb_status st = nb_load_safetensors(path, adapters, NB_LOAD_STRICT, report, metadata);
    nb_param_list_free(adapters);
    return st;
}
