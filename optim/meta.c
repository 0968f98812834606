/* Checkpoint metadata of optimizers and schedulers: typed entries "<prefix>.<field>" in an nb_metadata. */
#include "optim_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KEY_SIZE sizeof(((nb_metadata_entry *)0)->key)

static nb_status make_key(char *key, const char *prefix, const char *field, const char *fn)
{
    if (!prefix) prefix = "";
    int n = snprintf(key, KEY_SIZE, "%s%s%s", prefix, *prefix ? "." : "", field);
    if (n < 0 || (size_t)n >= KEY_SIZE)
        return nbi_fail(NB_ERR_ARG, "%s: metadata key \"%s%s%s\" is longer than %zu characters", fn, prefix,
                        *prefix ? "." : "", field, KEY_SIZE - 1);
    return NB_OK;
}

nb_status nbi_meta_set_str(nb_metadata *m, const char *prefix, const char *field, const char *value, const char *fn)
{
    char key[KEY_SIZE];
    nb_status st = make_key(key, prefix, field, fn);
    if (!st && (st = nb_metadata_set(m, key, value)) != NB_OK) {
        char reason[512];
        snprintf(reason, sizeof reason, "%s", nb_last_error());
        return nbi_fail(st, "%s: %s", fn, reason); /* the caller's name first: which state did not fit */
    }
    return st;
}

nb_status nbi_meta_set_int(nb_metadata *m, const char *prefix, const char *field, int64_t value, const char *fn)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, value);
    return nbi_meta_set_str(m, prefix, field, text, fn);
}

nb_status nbi_meta_set_double(nb_metadata *m, const char *prefix, const char *field, double value, const char *fn)
{
    char text[32];
    snprintf(text, sizeof text, "%.17g", value);
    return nbi_meta_set_str(m, prefix, field, text, fn);
}

/* The entry's text, or NULL with NB_ERR_FORMAT naming the key. */
static const char *get(const nb_metadata *m, const char *prefix, const char *field, char *key, const char *fn)
{
    if (make_key(key, prefix, field, fn)) return NULL;
    const char *value = nb_metadata_get(m, key);
    if (!value) nbi_error(NB_ERR_FORMAT, "%s: metadata has no entry \"%s\"", fn, key);
    return value;
}

nb_status nbi_meta_expect_str(const nb_metadata *m, const char *prefix, const char *field, const char *expected,
                              const char *fn)
{
    char key[KEY_SIZE];
    const char *value = get(m, prefix, field, key, fn);
    if (!value) return nb_last_status();
    if (strcmp(value, expected) != 0)
        return nbi_fail(NB_ERR_FORMAT, "%s: metadata \"%s\" is \"%s\", expected \"%s\"", fn, key, value, expected);
    return NB_OK;
}

nb_status nbi_meta_get_int(const nb_metadata *m, const char *prefix, const char *field, int64_t *out, const char *fn)
{
    char key[KEY_SIZE];
    const char *value = get(m, prefix, field, key, fn);
    if (!value) return nb_last_status();
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (end == value || *end || errno)
        return nbi_fail(NB_ERR_FORMAT, "%s: metadata \"%s\" is \"%s\", not an integer", fn, key, value);
    *out = v;
    return NB_OK;
}

nb_status nbi_meta_get_double(const nb_metadata *m, const char *prefix, const char *field, double *out,
                              const char *fn)
{
    char key[KEY_SIZE];
    const char *value = get(m, prefix, field, key, fn);
    if (!value) return nb_last_status();
    char *end;
    double v = strtod(value, &end); /* "inf" reads back too (a plateau's best before any metric) */
    if (end == value || *end)
        return nbi_fail(NB_ERR_FORMAT, "%s: metadata \"%s\" is \"%s\", not a number", fn, key, value);
    *out = v;
    return NB_OK;
}

nb_metadata *nbi_meta_draft(const nb_metadata *m, const char *fn)
{
    nb_metadata *copy = malloc(sizeof *copy);
    if (!copy) return nbi_error(NB_ERR_NOMEM, "%s: out of memory copying the metadata (%zu bytes)", fn, sizeof *copy);
    nbi_count_system_alloc();
    *copy = *m;
    return copy;
}

nb_status nbi_meta_commit(nb_metadata *m, nb_metadata *draft, nb_status st)
{
    if (!st) *m = *draft;
    free(draft);
    return st;
}

nb_status nbi_meta_set_layout(nb_metadata *m, const char *prefix, const nb_optimizer *opt, const char *fn)
{
    char text[24];
    snprintf(text, sizeof text, "%016" PRIx64, nbi_optim_group_layout(opt));
    return nbi_meta_set_str(m, prefix, "group_layout", text, fn);
}

nb_status nbi_meta_check_layout(const nb_metadata *m, const char *prefix, const nb_optimizer *opt, const char *fn)
{
    char key[KEY_SIZE];
    if (make_key(key, prefix, "group_layout", fn)) return nb_last_status();
    const char *saved = nb_metadata_get(m, key);
    if (!saved) return NB_OK; /* written before the layout was recorded: the group sizes were checked */
    char text[24];
    snprintf(text, sizeof text, "%016" PRIx64, nbi_optim_group_layout(opt));
    if (strcmp(saved, text) != 0)
        return nbi_fail(NB_ERR_FORMAT, "%s: the optimizer's parameter groups hold other parameters than the "
                        "checkpoint's (metadata \"%s\" is %s, this optimizer's layout %s): each group would get "
                        "another group's learning rate", fn, key, saved, text);
    return NB_OK;
}

bool nbi_meta_has(const nb_metadata *m, const char *prefix, const char *field)
{
    char key[KEY_SIZE];
    return make_key(key, prefix, field, "") == NB_OK && nb_metadata_get(m, key) != NULL;
}

/* A number takes at most 24 characters with 17 significant digits ("-2.2250738585072014e-308") and a space. */
#define VALUE_SIZE sizeof(((nb_metadata_entry *)0)->value)
static int groups_per_entry(int n) { return (int)((VALUE_SIZE - 1) / ((size_t)n * 25)); }

nb_status nbi_meta_set_group_values(nb_metadata *m, const char *prefix, int n_groups, int n, const double *values,
                                    const char *fn)
{
    int per = groups_per_entry(n);
    for (int first = 0; first < n_groups; first += per) {
        char field[32], text[VALUE_SIZE];
        size_t used = 0;
        snprintf(field, sizeof field, "groups.%d", first);
        for (int i = first * n; i < n_groups * n && i < (first + per) * n; i++)
            used += (size_t)snprintf(text + used, sizeof text - used, "%s%.17g", used ? " " : "", values[i]);
        nb_status st = nbi_meta_set_str(m, prefix, field, text, fn);
        if (st) return st;
    }
    return NB_OK;
}

nb_status nbi_meta_get_group_values(const nb_metadata *m, const char *prefix, int n_groups, int n, double *out,
                                    const char *fn)
{
    int per = groups_per_entry(n);
    for (int first = 0; first < n_groups; first += per) {
        char field[32], key[KEY_SIZE];
        snprintf(field, sizeof field, "groups.%d", first);
        const char *text = get(m, prefix, field, key, fn);
        if (!text) return nb_last_status();
        int count = (n_groups - first < per ? n_groups - first : per) * n;
        const char *c = text;
        for (int i = 0; i < count; i++) {
            char *end;
            out[first * n + i] = strtod(c, &end); /* "nan" reads back: an initial lr not set yet */
            if (end == c || (*end && *end != ' '))
                return nbi_fail(NB_ERR_FORMAT, "%s: metadata \"%s\" is \"%s\"; expected %d numbers (%d for each of "
                                "parameter groups %d to %d)", fn, key, text, count, n, first, first + count / n - 1);
            c = end;
        }
        if (*c)
            return nbi_fail(NB_ERR_FORMAT, "%s: metadata \"%s\" is \"%s\"; expected only %d numbers (%d for each of "
                            "parameter groups %d to %d)", fn, key, text, count, n, first, first + count / n - 1);
    }
    return NB_OK;
}
