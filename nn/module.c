/* The module machinery (dispatch, naming, train/eval, freeing), the Sequential container, and the helpers
 * every layer uses to own its tensors and to run its forward in a scope of its own. */
#include "nn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Helpers for layers
 * ---------------------------------------------------------------------------------------------- */
nb_tensor *nbi_nn_own(nb_tensor *h)
{
    nbi_tensor *t = nbi_peek(h);
    if (!t) return h;
    while (t->owner == NBI_OWNER_SCOPE) nbi_keep(t);
    return h;
}

nb_tensor *nbi_nn_param(int ndim, const int64_t *shape, const char *fn)
{
    nbi_tensor *t = nbi_tensor_new(NB_F32, ndim, shape, fn);
    if (!t) return NULL;
    memset(nbi_data_ptr(t), 0, (size_t)t->numel * sizeof(float));
    t->requires_grad = true;
    return nbi_nn_own(nbi_handle(t));
}

void nbi_nn_free_tensor(nb_tensor *t)
{
    if (t && nb_is_valid(t)) nb_free(t);
}

nb_status nbi_nn_join(char out[NB_NAME_MAX], const char *prefix, const char *name, const char *fn)
{
    int n = (prefix && *prefix) ? snprintf(out, NB_NAME_MAX, "%s.%s", prefix, name)
                                : snprintf(out, NB_NAME_MAX, "%s", name);
    if (n < 0 || n >= NB_NAME_MAX)
        return nbi_fail(NB_ERR_ARG, "%s: name \"%s%s%s\" is longer than %d characters", fn, prefix ? prefix : "",
                        prefix && *prefix ? "." : "", name, NB_NAME_MAX - 1);
    return NB_OK;
}

nb_status nbi_nn_collect_one(nb_param_list *out, const char *prefix, const char *name, nb_tensor *t,
                             bool is_buffer)
{
    if (!t) return NB_OK;
    char full[NB_NAME_MAX];
    nb_status st = nbi_nn_join(full, prefix, name, "nb_module_collect");
    return st ? st : nb_param_list_add(out, full, t, is_buffer);
}

nb_status nbi_nn_begin(void) { return nbi_scope_begin(); }

nb_tensor *nbi_nn_end(nb_tensor *result)
{
    nbi_tensor *t = nbi_peek(result);
    /* A result made inside the scope moves out; anything else (a custom module handing back its input) is
     * returned as it is. */
    if (t && nbi_in_innermost_scope(t)) nbi_keep(t);
    nbi_scope_end();
    return t ? result : NULL;
}

void *nbi_nn_module_new(size_t size, const nb_module_type *type, const char *fn)
{
    nb_module *m = calloc(1, size);
    if (!m) return nbi_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    nbi_count_system_alloc();
    m->type = type;
    m->training = true;
    return m;
}

void nbi_nn_adopt_children(nb_module *m)
{
    if (!m || !m->type || !m->type->child) return;
    nb_module *c;
    for (int i = 0; (c = m->type->child(m, i)) != NULL; i++) c->owner = m;
}

void nbi_nn_free_children(nb_module *parent, int n, nb_module *const *children)
{
    for (int i = 0; i < n; i++) {
        if (!nbi_nn_is_lora(children[i])) continue;
        nb_linear *linear = ((nb_lora_linear *)children[i])->linear;
        bool in_slot = false;
        for (int k = 0; k < n && linear; k++) in_slot |= children[k] == &linear->base;
        if (linear && linear->base.owner == parent && !in_slot) linear->base.owner = children[i];
    }
    for (int i = 0; i < n; i++) nb_module_free(children[i]);
}

static const char *type_name(const nb_module *m)
{
    return m->type && m->type->name ? m->type->name : "module";
}

/* ------------------------------------------------------------------------------------------------
 * Generic module functions
 * ---------------------------------------------------------------------------------------------- */
nb_tensor *nb_forward(nb_module *m, nb_tensor *x)
{
    if (!m || !x) {
        nbi_error_null("nb_forward", !m ? "module" : "input");
        return NULL;
    }
    if (!m->type || !m->type->forward)
        return nbi_error(NB_ERR_ARG, "nb_forward: module of type %s has no forward function",
                         m->type && m->type->name ? m->type->name : "(none)");
    return m->type->forward(m, x);
}

nb_status nb_module_collect(nb_module *m, const char *prefix, nb_param_list *out)
{
    if (!m || !out) {
        nbi_error_null("nb_module_collect", !m ? "module" : "list");
        return NB_ERR_NULL;
    }
    if (!m->type || !m->type->collect) return NB_OK;
    return m->type->collect(m, prefix ? prefix : "", out);
}

nb_status nb_module_collect_child(nb_module *child, const char *prefix, const char *name, nb_param_list *out)
{
    if (!name) return nbi_fail(NB_ERR_NULL, "nb_module_collect_child: name is NULL");
    char full[NB_NAME_MAX];
    nb_status st = nbi_nn_join(full, prefix ? prefix : "", name, "nb_module_collect_child");
    return st ? st : nb_module_collect(child, full, out);
}

nb_param_list *nb_module_parameters(nb_module *m)
{
    if (!m) {
        nbi_error_null("nb_module_parameters", "module");
        return NULL;
    }
    nb_param_list *list = nb_param_list_new();
    if (!list) return NULL;
    if (nb_module_collect(m, "", list) != NB_OK) {
        nb_param_list_free(list);
        return NULL;
    }
    return list;
}

void nb_module_train(nb_module *m, bool training)
{
    if (!m) return;
    m->training = training;
    if (m->type && m->type->set_training) m->type->set_training(m, training);
}

void nb_module_free(nb_module *m)
{
    if (!m) return;
    if (m->type && m->type->destroy) m->type->destroy(m);
    else free(m);
}

/* Module trees are shallow; the depth cap only keeps a cycle made by a faulty custom type from recursing forever. */
static bool contains(const nb_module *outer, const nb_module *inner, int depth)
{
    if (!outer || !inner) return false;
    if (outer == inner) return true;
    if (depth > 1000 || !outer->type || !outer->type->child) return false;
    nb_module *c;
    for (int i = 0; (c = outer->type->child((nb_module *)outer, i)) != NULL; i++)
        if (contains(c, inner, depth + 1)) return true;
    return false;
}

bool nb_module_contains(const nb_module *outer, const nb_module *inner) { return contains(outer, inner, 0); }

/* A module inside m (not m itself) recorded as another container's, except `except`, or NULL; *holder is then the
 * module inside m that holds it. Such a module is there only through a LoRA wrapper not yet installed in that
 * container's slot (or a faulty custom type). */
static nb_module *foreign_inside(nb_module *m, const nb_module *except, nb_module **holder, int depth)
{
    if (!m || depth > 1000 || !m->type || !m->type->child) return NULL;
    nb_module *c;
    for (int i = 0; (c = m->type->child(m, i)) != NULL; i++) {
        if (c != except && c->owner && c->owner != m) {
            *holder = m;
            return c;
        }
        nb_module *found = foreign_inside(c, except, holder, depth + 1);
        if (found) return found;
    }
    return NULL;
}

/* The module inside m whose child is inner, or NULL. */
static nb_module *holder_of(nb_module *m, const nb_module *inner, int depth)
{
    if (!m || depth > 1000 || !m->type || !m->type->child) return NULL;
    nb_module *c;
    for (int i = 0; (c = m->type->child(m, i)) != NULL; i++) {
        if (c == inner) return m;
        nb_module *found = holder_of(c, inner, depth + 1);
        if (found) return found;
    }
    return NULL;
}

/* Whether freeing m frees only modules nobody else owns: a module recorded as another container's is acceptable
 * only under a LoRA wrapper, whose destroy leaves it. */
static bool frees_only_own(const nb_module *m, int depth)
{
    if (depth > 1000) return false;
    if (!m->type || !m->type->child) return true;
    nb_module *c;
    for (int i = 0; (c = m->type->child((nb_module *)m, i)) != NULL; i++) {
        if (c->owner && c->owner != m ? !nbi_nn_is_lora(m) : !frees_only_own(c, depth + 1)) return false;
    }
    return true;
}

/* The end of a refused append or set: the layer is the container's to free, unless that would free something
 * seq or another container still holds. */
static void release(const nb_module *seq, nb_module *layer)
{
    if (layer && !layer->owner && !contains(seq, layer, 0) && !contains(layer, seq, 0) && frees_only_own(layer, 0))
        nb_module_free(layer);
}

/* ------------------------------------------------------------------------------------------------
 * Sequential
 * ---------------------------------------------------------------------------------------------- */
typedef struct sequential {
    nb_module base;
    int count, capacity;
    nb_module **children;
} sequential;

static nb_tensor *sequential_forward(nb_module *m, nb_tensor *x)
{
    sequential *s = (sequential *)m;
    if (!nbi_resolve(x, "nb_sequential", "input")) return NULL;
    if (s->count == 0) return nbi_alias(nbi_peek(x), "nb_sequential");
    if (nbi_nn_begin() != NB_OK) return NULL;
    nb_tensor *y = x;
    for (int i = 0; i < s->count && y; i++) y = nb_forward(s->children[i], y);
    return nbi_nn_end(y);
}

static nb_status sequential_collect(nb_module *m, const char *prefix, nb_param_list *out)
{
    sequential *s = (sequential *)m;
    for (int i = 0; i < s->count; i++) {
        char index[16], name[NB_NAME_MAX];
        snprintf(index, sizeof index, "%d", i);
        nb_status st = nbi_nn_join(name, prefix, index, "nb_module_collect");
        if (!st) st = nb_module_collect(s->children[i], name, out);
        if (st) return st;
    }
    return NB_OK;
}

static void sequential_set_training(nb_module *m, bool training)
{
    sequential *s = (sequential *)m;
    for (int i = 0; i < s->count; i++) nb_module_train(s->children[i], training);
}

static void sequential_destroy(nb_module *m)
{
    sequential *s = (sequential *)m;
    for (int i = 0; i < s->count; i++) nb_module_free(s->children[i]);
    free(s->children);
    free(s);
}

static nb_module *sequential_child(nb_module *m, int i)
{
    sequential *s = (sequential *)m;
    return i >= 0 && i < s->count ? s->children[i] : NULL;
}

static const nb_module_type sequential_type = {"Sequential", sequential_forward, sequential_collect,
                                               sequential_set_training, sequential_destroy, sequential_child};

static sequential *as_sequential(const nb_module *m, const char *fn)
{
    if (!m) {
        nbi_error_null(fn, "seq");
        return NULL;
    }
    if (m->type != &sequential_type)
        return nbi_error(NB_ERR_ARG, "%s: module is a %s, not a Sequential", fn,
                         m->type && m->type->name ? m->type->name : "(untyped module)");
    return (sequential *)m;
}

static nb_status reserve(sequential *s, int count, const char *fn)
{
    if (count <= s->capacity) return NB_OK;
    int cap = s->capacity ? s->capacity : 4;
    while (cap < count) cap *= 2;
    nb_module **children = realloc(s->children, (size_t)cap * sizeof *children);
    if (!children) return nbi_fail(NB_ERR_NOMEM, "%s: out of memory for %d layers", fn, cap);
    nbi_count_system_alloc();
    s->children = children;
    s->capacity = cap;
    return NB_OK;
}

/* The index of another entry that also owns layers[i] (the same module earlier in the array, or one containing
 * it), or -1. */
static int other_owner(int n, nb_module *const *layers, int i)
{
    for (int k = 0; k < n; k++) {
        if (k == i || !layers[k]) continue;
        if (layers[k] == layers[i] ? k < i : nb_module_contains(layers[k], layers[i])) return k;
    }
    return -1;
}

nb_module *nb_sequential_new(int n, nb_module *const *layers)
{
    const char *fn = "nb_sequential_new";
    const char *problem = NULL;
    int bad = -1, owner = -1;
    if (n < 0) problem = "n is negative";
    else if (n > 0 && !layers) problem = "layers is NULL";
    for (int i = 0; !problem && i < n; i++)
        if (!layers[i]) problem = "a layer is NULL", bad = i;
    for (int i = 0; !problem && i < n; i++)
        if ((owner = other_owner(n, layers, i)) >= 0) problem = "a module has one owner", bad = i;
    for (int i = 0; !problem && i < n; i++)
        if (layers[i]->owner) problem = "a module has one owner", bad = i;
    nb_module *foreign = NULL, *holder = NULL;
    for (int i = 0; !problem && i < n; i++)
        if ((foreign = foreign_inside(layers[i], NULL, &holder, 0)) != NULL)
            problem = "a module has one owner", bad = i;
    sequential *s = NULL;
    if (!problem) {
        s = nbi_nn_module_new(sizeof *s, &sequential_type, fn);
        if (s && reserve(s, n, fn) != NB_OK) {
            free(s);
            s = NULL;
        }
    }
    if (!s) {
        if (owner >= 0 && layers[owner] == layers[bad])
            nbi_error(NB_ERR_ARG, "%s: layers %d and %d are the same %s (a module has one owner)", fn, owner, bad,
                      layers[bad]->type && layers[bad]->type->name ? layers[bad]->type->name : "module");
        else if (owner >= 0)
            nbi_error(NB_ERR_ARG, "%s: layer %d is already inside layer %d (a module has one owner)", fn, bad, owner);
        else if (bad >= 0 && layers[bad] && layers[bad]->owner)
            nbi_error(NB_ERR_ARG, "%s: layer %d already belongs to a %s (a module has one owner)", fn, bad,
                      type_name(layers[bad]->owner));
        else if (foreign)
            nbi_error(NB_ERR_ARG, "%s: layer %d (a %s) holds a %s that already belongs to a %s (a module has one "
                      "owner; a LoRA wrapper goes into its Linear's slot, nb_sequential_set)", fn, bad,
                      type_name(layers[bad]), type_name(foreign), type_name(foreign->owner));
        else if (problem && bad >= 0) nbi_error_null(fn, "a layer (its constructor failed?)");
        else if (problem) nbi_error(NB_ERR_ARG, "%s: %s (n = %d)", fn, problem, n);
        /* The container owns the layers even when it could not be made; each module is freed once, the roots
         * only, which are all found before any is freed. */
        bool *root = layers && n > 0 ? malloc((size_t)n * sizeof *root) : NULL;
        for (int i = 0; root && i < n; i++)
            root[i] = other_owner(n, layers, i) < 0 && layers[i] && !layers[i]->owner && frees_only_own(layers[i], 0);
        for (int i = 0; root && i < n; i++)
            if (root[i]) nb_module_free(layers[i]);
        free(root); /* out of memory for it: the layers leak rather than risk a double free */
        return NULL;
    }
    for (int i = 0; i < n; i++) s->children[i] = layers[i];
    s->count = n;
    nbi_nn_adopt_children(&s->base);
    return &s->base;
}

nb_status nb_sequential_append(nb_module *seq, nb_module *layer)
{
    const char *fn = "nb_sequential_append";
    sequential *s = as_sequential(seq, fn);
    nb_status st = s ? NB_OK : nb_last_status();
    if (!st && !layer) {
        nbi_error_null(fn, "layer");
        st = NB_ERR_NULL;
    }
    nb_module *foreign, *holder;
    if (st) {
    } else if (nb_module_contains(layer, seq)) {
        st = nbi_fail(NB_ERR_ARG, "%s: the layer is or contains this Sequential, which cannot contain itself", fn);
    } else if (nb_module_contains(seq, layer)) {
        st = nbi_fail(NB_ERR_ARG, "%s: the layer is already inside this Sequential (a module has one owner)", fn);
    } else if (layer->owner) {
        st = nbi_fail(NB_ERR_ARG, "%s: the layer already belongs to a %s (a module has one owner)", fn,
                      type_name(layer->owner));
    } else if ((foreign = foreign_inside(layer, NULL, &holder, 0)) != NULL) {
        st = nbi_fail(NB_ERR_ARG, "%s: the layer (a %s) holds a %s that already belongs to a %s%s (a module has one "
                      "owner)", fn, type_name(layer), type_name(foreign), type_name(foreign->owner),
                      foreign->owner == seq ? ", this one" : "");
    } else {
        st = reserve(s, s->count + 1, fn);
    }
    if (st) {
        release(seq, layer);
        return st;
    }
    s->children[s->count++] = layer;
    layer->owner = seq;
    return NB_OK;
}

int nb_sequential_len(const nb_module *seq)
{
    const sequential *s = as_sequential(seq, "nb_sequential_len");
    return s ? s->count : -1;
}

static int wrap_index(const sequential *s, int i, const char *fn)
{
    int j = i < 0 ? i + s->count : i;
    if (j < 0 || j >= s->count) {
        nbi_error(NB_ERR_INDEX, "%s: index %d is out of range for a Sequential of %d layers", fn, i, s->count);
        return -1;
    }
    return j;
}

nb_module *nb_sequential_get(nb_module *seq, int i)
{
    const char *fn = "nb_sequential_get";
    sequential *s = as_sequential(seq, fn);
    if (!s) return NULL;
    int j = wrap_index(s, i, fn);
    return j < 0 ? NULL : s->children[j];
}

nb_status nb_sequential_set(nb_module *seq, int i, nb_module *layer)
{
    const char *fn = "nb_sequential_set";
    sequential *s = as_sequential(seq, fn);
    int j = s ? wrap_index(s, i, fn) : -1;
    if (j >= 0 && !layer) nbi_error_null(fn, "layer");
    /* Whatever else is wrong, a layer tied to seq is never freed here: that would free (part of) seq. */
    if (nb_module_contains(layer, seq))
        return nbi_fail(NB_ERR_ARG, "%s: the layer is or contains this Sequential, which cannot contain itself", fn);
    if (j < 0 || !layer) {
        release(seq, layer);
        return nb_last_status();
    }
    nb_module *old = s->children[j];
    if (old == layer) return NB_OK;
    for (int k = 0; k < s->count; k++)
        if (nb_module_contains(s->children[k], layer))
            return nbi_fail(NB_ERR_ARG, "%s: the layer is already inside child %d of this Sequential (a module has "
                            "one owner)", fn, k);
    nb_status st = NB_OK;
    for (int k = 0; !st && k < s->count; k++)
        if (k != j && nb_module_contains(layer, s->children[k]))
            st = nbi_fail(NB_ERR_ARG, "%s: the layer contains child %d of this Sequential, which is not the one it "
                          "replaces (%d)", fn, k, j);
    nb_module *foreign, *holder;
    if (st) {
    } else if (layer->owner) {
        return nbi_fail(NB_ERR_ARG, "%s: the layer already belongs to a %s (a module has one owner)", fn,
                        type_name(layer->owner));
    } else if ((foreign = foreign_inside(layer, old, &holder, 0)) != NULL) {
        /* old itself is the one exception: a wrapper around child j taking its place */
        st = nbi_fail(NB_ERR_ARG, "%s: the layer (a %s) holds a %s that already belongs to a %s (a module has one "
                      "owner; only child %d, the one replaced, may be inside the layer)", fn, type_name(layer),
                      type_name(foreign), type_name(foreign->owner), j);
    }
    if (st) {
        release(seq, layer);
        return st;
    }
    /* A layer wrapping the old child (a LoRA adapter around it) takes it over. */
    nb_module *new_holder = holder_of(layer, old, 0);
    if (new_holder) old->owner = new_holder;
    else nb_module_free(old);
    s->children[j] = layer;
    layer->owner = seq;
    return NB_OK;
}
