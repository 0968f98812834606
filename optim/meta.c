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
    return st ? st : nb_metadata_set(m, key, value);
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
