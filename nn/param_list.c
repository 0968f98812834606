/* Parameter lists: named pointers to a module's tensors, in the order the modules declare them. */
#include "nn_internal.h"

#include <stdlib.h>
#include <string.h>

nb_param_list *nb_param_list_new(void)
{
    nb_param_list *list = calloc(1, sizeof *list);
    if (!list) return nbi_error(NB_ERR_NOMEM, "nb_param_list_new: out of memory");
    nbi_count_system_alloc();
    return list;
}

void nb_param_list_free(nb_param_list *list)
{
    if (!list) return;
    free(list->items);
    free(list);
}

nb_status nb_param_list_add(nb_param_list *list, const char *name, nb_tensor *t, bool is_buffer)
{
    const char *fn = "nb_param_list_add";
    if (!list || !name) {
        nbi_error_null(fn, !list ? "list" : "name");
        return NB_ERR_NULL;
    }
    if (!nbi_resolve(t, fn, "tensor")) return nb_last_status();
    size_t len = strlen(name);
    if (len == 0) return nbi_fail(NB_ERR_ARG, "%s: name is empty", fn);
    if (len >= NB_NAME_MAX)
        return nbi_fail(NB_ERR_ARG, "%s: name \"%.40s...\" has %zu characters, more than the %d allowed", fn, name,
                        len, NB_NAME_MAX - 1);
    for (int i = 0; i < list->count; i++)
        if (strcmp(list->items[i].name, name) == 0)
            return nbi_fail(NB_ERR_ARG, "%s: duplicate name \"%s\"", fn, name);
    if (list->count == list->capacity) {
        int cap = list->capacity ? 2 * list->capacity : 16;
        nb_named_tensor *items = realloc(list->items, (size_t)cap * sizeof *items);
        if (!items) return nbi_fail(NB_ERR_NOMEM, "%s: out of memory growing the list to %d entries", fn, cap);
        nbi_count_system_alloc();
        list->items = items;
        list->capacity = cap;
    }
    nb_named_tensor *item = &list->items[list->count++];
    memcpy(item->name, name, len + 1);
    item->tensor = t;
    item->is_buffer = is_buffer;
    return NB_OK;
}

nb_tensor *nb_param_list_find(const nb_param_list *list, const char *name)
{
    if (!list || !name) return NULL;
    for (int i = 0; i < list->count; i++)
        if (strcmp(list->items[i].name, name) == 0) return list->items[i].tensor;
    return NULL;
}

int64_t nb_param_list_numel(const nb_param_list *list, bool trainable_only)
{
    if (!list) {
        nbi_error_null("nb_param_list_numel", "list");
        return -1;
    }
    int64_t total = 0;
    for (int i = 0; i < list->count; i++) {
        const nb_named_tensor *item = &list->items[i];
        if (item->is_buffer) continue;
        nbi_tensor *t = nbi_resolve(item->tensor, "nb_param_list_numel", item->name);
        if (!t) return -1;
        if (!trainable_only || t->requires_grad) total += t->numel;
    }
    return total;
}

/* "fc1" matches "fc1.weight" but not "fc10.weight": a prefix ends at a component boundary (or at its own
 * trailing '.'), so freezing layer "1" of a long Sequential leaves layer "10" alone. */
static bool has_prefix(const char *name, const char *prefix, size_t plen)
{
    if (plen == 0) return true;
    if (strncmp(name, prefix, plen) != 0) return false;
    return name[plen] == '\0' || name[plen] == '.' || prefix[plen - 1] == '.';
}

int nb_param_list_set_frozen(nb_param_list *list, const char *prefix, bool frozen)
{
    const char *fn = "nb_param_list_set_frozen";
    if (!list || !prefix) {
        nbi_error_null(fn, !list ? "list" : "prefix");
        return -1;
    }
    size_t plen = strlen(prefix);
    int matched = 0;
    for (int i = 0; i < list->count; i++) {
        nb_named_tensor *item = &list->items[i];
        if (item->is_buffer || !has_prefix(item->name, prefix, plen)) continue;
        if (!nbi_resolve(item->tensor, fn, item->name)) return -1;
        if (nb_set_requires_grad(item->tensor, !frozen) != NB_OK) return -1;
        matched++;
    }
    return matched;
}

void nb_param_list_zero_grad(const nb_param_list *list)
{
    if (!list) return;
    for (int i = 0; i < list->count; i++)
        if (!list->items[i].is_buffer && nb_is_valid(list->items[i].tensor)) nb_zero_grad(list->items[i].tensor);
}
