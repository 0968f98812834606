/* Checkpoints in the safetensors format.
 *
 * A file is: an 8-byte little-endian header length N; N bytes of JSON mapping each tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data section) plus an optional
 * "__metadata__" object of strings; then the data section, each tensor little-endian, row-major and contiguous.
 *
 * nabla writes "__metadata__" first (when there is any), then the tensors in list order, and lays the data out in
 * the same order without gaps; the header is padded with spaces so that the data starts on an 8-byte boundary,
 * as the reference writer does.
 *
 * Reading trusts nothing: the header length is checked against the file size before anything is allocated, the
 * JSON is parsed strictly with a depth limit, and every tensor's dtype, shape, size and offsets are validated
 * (tensors must tile the data section exactly, as the reference reader requires) before a single byte of data is
 * read. Loading reads every matching tensor into a temporary before copying any of them into the model, so a
 * failure at any point leaves the model untouched; destinations that share memory are refused before that.
 *
 * Saving replaces the file by a rename, so it keeps the old file's permission bits and writes through symbolic
 * links by hand: rename would otherwise give the file the umask's mode and replace a link by a regular file. */
#include "json.h"
#include "nn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000u /* the reference implementation's limit */
#define ST_MAX_DEPTH 8           /* a valid header nests 3 deep */
#define ST_SHOW (NB_NAME_MAX + 4) /* a shown name: any list name in full, longer ones cut with "..." */

#define META_KEY_MAX ((int)sizeof(((nb_metadata_entry *)0)->key))
#define META_VALUE_MAX ((int)sizeof(((nb_metadata_entry *)0)->value))
#define META_ENTRIES_MAX ((int)(sizeof(((nb_metadata *)0)->entries) / sizeof(nb_metadata_entry)))

/* ------------------------------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------------------------------- */
static void *st_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p) nbi_count_system_alloc();
    return p;
}

static bool host_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static void swap_elements(void *data, size_t count, size_t elsize)
{
    unsigned char *p = data;
    for (size_t i = 0; i < count; i++, p += elsize)
        for (size_t a = 0, b = elsize - 1; a < b; a++, b--) {
            unsigned char c = p[a];
            p[a] = p[b];
            p[b] = c;
        }
}

static uint64_t load_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
}

/* A name for messages: control characters shown as '?', cut at a character boundary with "..." when long. */
static const char *show(char buf[ST_SHOW], const char *s, size_t len)
{
    const size_t limit = ST_SHOW - 4;
    size_t n = len;
    if (len > limit) {
        n = limit;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    strcpy(buf + n, len > n ? "..." : "");
    return buf;
}

static const char *show_c(char buf[ST_SHOW], const char *s) { return show(buf, s, strlen(s)); }

/* ------------------------------------------------------------------------------------------------
 * Metadata
 * ---------------------------------------------------------------------------------------------- */
static nb_status check_metadata_count(const nb_metadata *m, const char *fn)
{
    if (m->count < 0 || m->count > META_ENTRIES_MAX)
        return nbi_fail(NB_ERR_ARG, "%s: metadata count %d is outside 0..%d (initialize nb_metadata with {0})", fn,
                        m->count, META_ENTRIES_MAX);
    return NB_OK;
}

nb_status nb_metadata_set(nb_metadata *m, const char *key, const char *value)
{
    const char *fn = "nb_metadata_set";
    if (!m || !key || !value)
        return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !m ? "metadata" : !key ? "key" : "value");
    if (check_metadata_count(m, fn)) return nb_last_status();
    size_t klen = strlen(key), vlen = strlen(value);
    char b[ST_SHOW];
    if (klen == 0) return nbi_fail(NB_ERR_ARG, "%s: key is empty", fn);
    if (klen >= (size_t)META_KEY_MAX)
        return nbi_fail(NB_ERR_ARG, "%s: key \"%s\" has %zu bytes, more than the %d allowed", fn, show_c(b, key),
                        klen, META_KEY_MAX - 1);
    if (vlen >= (size_t)META_VALUE_MAX)
        return nbi_fail(NB_ERR_ARG, "%s: value for key \"%s\" has %zu bytes, more than the %d allowed", fn,
                        show_c(b, key), vlen, META_VALUE_MAX - 1);
    if (!nbi_utf8_valid(key, klen) || !nbi_utf8_valid(value, vlen))
        return nbi_fail(NB_ERR_ARG, "%s: %s for key \"%s\" is not valid UTF-8", fn,
                        nbi_utf8_valid(key, klen) ? "value" : "key", show_c(b, key));
    for (int i = 0; i < m->count; i++)
        if (strcmp(m->entries[i].key, key) == 0) {
            memcpy(m->entries[i].value, value, vlen + 1);
            return NB_OK;
        }
    if (m->count == META_ENTRIES_MAX)
        return nbi_fail(NB_ERR_ARG, "%s: metadata already holds %d entries; cannot add key \"%s\"", fn,
                        META_ENTRIES_MAX, show_c(b, key));
    nb_metadata_entry *e = &m->entries[m->count++];
    memcpy(e->key, key, klen + 1);
    memcpy(e->value, value, vlen + 1);
    return NB_OK;
}

const char *nb_metadata_get(const nb_metadata *m, const char *key)
{
    const char *fn = "nb_metadata_get";
    if (!m || !key) return nbi_error(NB_ERR_NULL, "%s: %s is NULL", fn, !m ? "metadata" : "key");
    if (check_metadata_count(m, fn)) return NULL;
    for (int i = 0; i < m->count; i++)
        if (strncmp(m->entries[i].key, key, (size_t)META_KEY_MAX) == 0 && strlen(key) < (size_t)META_KEY_MAX)
            return m->entries[i].value;
    return NULL;
}

/* "<prefix>.generator", or "generator" without a prefix; false when it does not fit a metadata key. */
static bool generator_key(char key[META_KEY_MAX], const char *prefix)
{
    int n = snprintf(key, META_KEY_MAX, "%s%sgenerator", prefix ? prefix : "", prefix && *prefix ? "." : "");
    return n >= 0 && n < META_KEY_MAX;
}

nb_status nb_generator_state(const nb_generator *g, const char *prefix, nb_metadata *metadata)
{
    const char *fn = "nb_generator_state";
    if (!g || !metadata) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !g ? "generator" : "metadata");
    char key[META_KEY_MAX], value[128];
    if (!generator_key(key, prefix)) return nbi_fail(NB_ERR_ARG, "%s: prefix is too long for a metadata key", fn);
    /* The cached normal value is stored by its bits, so that restoring it is exact. */
    uint64_t spare;
    memcpy(&spare, &g->spare_normal, sizeof spare);
    snprintf(value, sizeof value, "%016llx %016llx %016llx %016llx %016llx %d", (unsigned long long)g->s[0],
             (unsigned long long)g->s[1], (unsigned long long)g->s[2], (unsigned long long)g->s[3],
             (unsigned long long)spare, g->has_spare ? 1 : 0);
    return nb_metadata_set(metadata, key, value);
}

nb_status nb_generator_restore(nb_generator *g, const nb_metadata *metadata, const char *prefix)
{
    const char *fn = "nb_generator_restore";
    if (!g || !metadata) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !g ? "generator" : "metadata");
    char key[META_KEY_MAX];
    if (!generator_key(key, prefix)) return nbi_fail(NB_ERR_ARG, "%s: prefix is too long for a metadata key", fn);
    const char *value = nb_metadata_get(metadata, key);
    if (!value) return nb_last_status() ? nb_last_status() : nbi_fail(NB_ERR_FORMAT, "%s: no entry \"%s\"", fn, key);
    unsigned long long w[5];
    int has, used = 0;
    if (sscanf(value, "%16llx %16llx %16llx %16llx %16llx %d%n", &w[0], &w[1], &w[2], &w[3], &w[4], &has, &used) != 6 ||
        value[used] != 0 || (has != 0 && has != 1) || (w[0] | w[1] | w[2] | w[3]) == 0)
        return nbi_fail(NB_ERR_FORMAT, "%s: entry \"%s\" is not a generator state: \"%.80s\"", fn, key, value);
    for (int i = 0; i < 4; i++) g->s[i] = (uint64_t)w[i];
    uint64_t spare = (uint64_t)w[4];
    memcpy(&g->spare_normal, &spare, sizeof spare);
    g->has_spare = has == 1;
    return NB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * dtypes of the format. nabla holds four natively; nb_read_safetensors converts the integer and 16-bit float
 * ones (exactly: every value is representable in the target).
 * ---------------------------------------------------------------------------------------------- */
typedef enum st_conv { ST_NATIVE, ST_SIGNED, ST_UNSIGNED, ST_HALF, ST_BFLOAT, ST_NONE } st_conv;
typedef struct st_dtype {
    const char *name;
    size_t size;
    nb_dtype target; /* what it is read as */
    st_conv conv;
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F32", 4, NB_F32, ST_NATIVE},  {"F64", 8, NB_F64, ST_NATIVE},     {"I64", 8, NB_I64, ST_NATIVE},
    {"BOOL", 1, NB_BOOL, ST_NATIVE}, {"F16", 2, NB_F32, ST_HALF},      {"BF16", 2, NB_F32, ST_BFLOAT},
    {"I8", 1, NB_I64, ST_SIGNED},   {"I16", 2, NB_I64, ST_SIGNED},     {"I32", 4, NB_I64, ST_SIGNED},
    {"U8", 1, NB_I64, ST_UNSIGNED}, {"U16", 2, NB_I64, ST_UNSIGNED},   {"U32", 4, NB_I64, ST_UNSIGNED},
    {"U64", 8, NB_I64, ST_UNSIGNED}, {"F8_E4M3", 1, NB_F32, ST_NONE}, {"F8_E5M2", 1, NB_F32, ST_NONE},
};

static const st_dtype *st_dtype_of(nb_dtype d)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
        if (st_dtypes[i].conv == ST_NATIVE && st_dtypes[i].target == d) return &st_dtypes[i];
    return NULL;
}

static const st_dtype *st_dtype_named(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
        if (strlen(st_dtypes[i].name) == len && memcmp(st_dtypes[i].name, s, len) == 0) return &st_dtypes[i];
    return NULL;
}

static float half_to_float(uint16_t h)
{
    int exponent = (h >> 10) & 0x1f;
    unsigned mantissa = h & 0x3ff;
    float v;
    if (exponent == 0) v = ldexpf((float)mantissa, -24); /* zero and subnormals */
    else if (exponent == 31) v = mantissa ? NAN : INFINITY;
    else v = ldexpf((float)(mantissa | 0x400), exponent - 25);
    return (h & 0x8000) ? -v : v;
}

static float bfloat_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* ------------------------------------------------------------------------------------------------
 * Reading and validating a file
 * ---------------------------------------------------------------------------------------------- */
typedef struct st_entry {
    const char *name; /* decoded, NUL-free, in the JSON pool */
    const st_dtype *dtype;
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    uint64_t begin, end;
    bool matched;
} st_entry;

typedef struct st_file {
    const char *fn, *path;
    int fd;
    uint64_t data_start, data_size;
    char *header;
    nbi_json doc;
    st_entry *entries; /* header order */
    size_t n;
    st_entry **by_name;
} st_file;

static nb_status st_fail(const st_file *f, nb_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static nb_status st_fail(const st_file *f, nb_status status, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nbi_fail(status, "%s: '%s': %s", f->fn, f->path, msg);
}

static void st_close(st_file *f)
{
    if (f->fd >= 0) close(f->fd);
    free(f->header);
    nbi_json_free(&f->doc);
    free(f->entries);
    free(f->by_name);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

static nb_status st_pread(st_file *f, void *buf, size_t n, uint64_t offset, const char *what)
{
    unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t r = pread(f->fd, p, chunk, (off_t)offset);
        if (r < 0) {
            if (errno == EINTR) continue;
            return st_fail(f, NB_ERR_IO, "reading %s failed: %s", what, strerror(errno));
        }
        if (r == 0)
            return st_fail(f, NB_ERR_FORMAT, "the file ended while reading %s (was it changed while being read?)",
                           what);
        p += r;
        n -= (size_t)r;
        offset += (uint64_t)r;
    }
    return NB_OK;
}

/* Text of a number node for messages (it is not NUL-terminated). */
#define NUM_ARGS(node) (int)((node)->len < 40 ? (node)->len : 40), (node)->str

/* A non-negative integer field; `what` is "shape entry" or "data_offsets entry". */
static nb_status st_uint(st_file *f, const char *name, const char *what, const nbi_json_node *node, uint64_t max,
                         uint64_t *out)
{
    switch (nbi_json_u64(node, out)) {
    case NBI_JSON_INT_OK:
        if (*out <= max) return NB_OK;
        /* fall through */
    case NBI_JSON_INT_TOO_LARGE:
        return st_fail(f, NB_ERR_FORMAT, "tensor '%s': %s %.*s is too large", name, what, NUM_ARGS(node));
    case NBI_JSON_INT_NEGATIVE:
        return st_fail(f, NB_ERR_FORMAT, "tensor '%s': %s %.*s is negative", name, what, NUM_ARGS(node));
    case NBI_JSON_INT_FRACTION:
        return st_fail(f, NB_ERR_FORMAT, "tensor '%s': %s %.*s is not an integer", name, what, NUM_ARGS(node));
    case NBI_JSON_INT_NOT_NUMBER: break;
    }
    return st_fail(f, NB_ERR_FORMAT, "tensor '%s': %s is %s, not an integer", name, what,
                   nbi_json_type_name(node->type));
}

static bool key_is(const nbi_json_node *key, const char *s)
{
    return key->len == strlen(s) && memcmp(key->str, s, key->len) == 0;
}

/* One tensor's entry: the key node is at index `key`, its value right after it. */
static nb_status st_parse_entry(st_file *f, size_t key, st_entry *e)
{
    const nbi_json_node *nodes = f->doc.nodes, *k = &nodes[key], *v = &nodes[key + 1];
    char name[ST_SHOW];
    show(name, k->str, k->len);
    if (k->len == 0) return st_fail(f, NB_ERR_FORMAT, "a tensor has an empty name");
    if (strlen(k->str) != k->len)
        return st_fail(f, NB_ERR_FORMAT, "tensor name '%s' contains a NUL character", name);
    e->name = k->str;
    if (v->type != NBI_JSON_OBJECT)
        return st_fail(f, NB_ERR_FORMAT, "tensor '%s' is %s, not an object with dtype, shape and data_offsets",
                       name, nbi_json_type_name(v->type));
    static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
    size_t at[3] = {0, 0, 0}; /* value node of each field; 0 (the root) means absent */
    size_t m = key + 2;
    for (size_t c = 0; c < v->count; c++, m = nodes[m + 1].end) {
        int which = -1;
        for (int i = 0; i < 3; i++)
            if (key_is(&nodes[m], fields[i])) which = i;
        char field[ST_SHOW];
        if (which < 0)
            return st_fail(f, NB_ERR_FORMAT, "tensor '%s' has an unknown field '%s'", name,
                           show(field, nodes[m].str, nodes[m].len));
        if (at[which]) return st_fail(f, NB_ERR_FORMAT, "tensor '%s' has field '%s' twice", name, fields[which]);
        at[which] = m + 1;
    }
    for (int i = 0; i < 3; i++)
        if (!at[i]) return st_fail(f, NB_ERR_FORMAT, "tensor '%s' has no '%s' field", name, fields[i]);

    const nbi_json_node *dt = &nodes[at[0]], *sh = &nodes[at[1]], *off = &nodes[at[2]];
    if (dt->type != NBI_JSON_STRING)
        return st_fail(f, NB_ERR_FORMAT, "tensor '%s': dtype is %s, not a string", name,
                       nbi_json_type_name(dt->type));
    e->dtype = st_dtype_named(dt->str, dt->len);
    char dname[ST_SHOW];
    if (!e->dtype)
        return st_fail(f, NB_ERR_FORMAT, "tensor '%s' has unknown dtype \"%s\"", name, show(dname, dt->str, dt->len));

    if (sh->type != NBI_JSON_ARRAY)
        return st_fail(f, NB_ERR_FORMAT, "tensor '%s': shape is %s, not an array", name,
                       nbi_json_type_name(sh->type));
    if (sh->count > NB_MAX_DIMS)
        return st_fail(f, NB_ERR_FORMAT, "tensor '%s' has %zu dimensions; nabla supports at most %d", name,
                       sh->count, NB_MAX_DIMS);
    e->ndim = (int)sh->count;
    /* The limit applies to the product of the nonzero sizes: an empty tensor of shape (0, 2^40, 2^40) has no
     * elements, but its strides would still overflow. */
    int64_t numel = 1, nonzero = 1;
    for (int d = 0; d < e->ndim; d++) {
        uint64_t size;
        nb_status st = st_uint(f, name, "shape entry", &nodes[at[1] + 1 + (size_t)d], INT64_MAX, &size);
        if (st) return st;
        e->shape[d] = (int64_t)size;
        /* nabla's own limit on element counts (see nbi_tensor_new_view), which also rules out overflow below */
        if (size && nonzero > INT64_MAX / 16 / (int64_t)size) {
            for (int r = d + 1; r < e->ndim; r++) e->shape[r] = 0;
            return st_fail(f, NB_ERR_FORMAT, "tensor '%s': shape is too large (entry %d is %llu)", name, d,
                           (unsigned long long)size);
        }
        numel *= (int64_t)size;
        if (size) nonzero *= (int64_t)size;
    }

    if (off->type != NBI_JSON_ARRAY || off->count != 2)
        return st_fail(f, NB_ERR_FORMAT, "tensor '%s': data_offsets must be an array of 2 integers, found %s%s", name,
                       off->type == NBI_JSON_ARRAY ? "an array of length " : nbi_json_type_name(off->type),
                       off->type == NBI_JSON_ARRAY ? (off->count == 0 ? "0" : off->count == 1 ? "1" : "> 2") : "");
    nb_status st = st_uint(f, name, "data_offsets entry", &nodes[at[2] + 1], UINT64_MAX, &e->begin);
    if (!st) st = st_uint(f, name, "data_offsets entry", &nodes[at[2] + 2], UINT64_MAX, &e->end);
    if (st) return st;
    unsigned long long b = e->begin, en = e->end;
    if (e->begin > e->end)
        return st_fail(f, NB_ERR_FORMAT, "tensor '%s': data_offsets [%llu, %llu] end before they begin", name, b, en);
    if (e->end > f->data_size)
        return st_fail(f, NB_ERR_FORMAT,
                       "tensor '%s': data_offsets [%llu, %llu] extend past the %llu bytes of data (truncated file?)",
                       name, b, en, (unsigned long long)f->data_size);
    uint64_t need = (uint64_t)numel * e->dtype->size;
    if (e->end - e->begin != need) {
        char sb[NBI_SHAPE_STR];
        return st_fail(f, NB_ERR_FORMAT, "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but %s %s needs %llu",
                       name, b, en, en - b, e->dtype->name, nbi_shape_fmt(sb, e->ndim, e->shape),
                       (unsigned long long)need);
    }
    return NB_OK;
}

typedef struct st_key {
    const char *s;
    size_t len;
} st_key;

static int compare_keys(const void *a, const void *b)
{
    const st_key *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* "__metadata__": an object of strings. Copied into out when out is not NULL (entries that do not fit in
 * nb_metadata are an error then). */
static nb_status st_parse_metadata(st_file *f, size_t vi, nb_metadata *out)
{
    const nbi_json_node *nodes = f->doc.nodes, *v = &nodes[vi];
    if (v->type != NBI_JSON_OBJECT)
        return st_fail(f, NB_ERR_FORMAT, "\"__metadata__\" is %s, not an object of strings",
                       nbi_json_type_name(v->type));
    st_key *keys = st_malloc(v->count * sizeof *keys);
    if (!keys) return st_fail(f, NB_ERR_NOMEM, "out of memory reading the metadata");
    if (out) out->count = 0;
    nb_status st = NB_OK;
    char kb[ST_SHOW];
    size_t m = vi + 1;
    for (size_t c = 0; c < v->count && !st; c++, m = nodes[m + 1].end) {
        const nbi_json_node *k = &nodes[m], *val = &nodes[m + 1];
        keys[c] = (st_key){k->str, k->len};
        show(kb, k->str, k->len);
        if (val->type != NBI_JSON_STRING)
            st = st_fail(f, NB_ERR_FORMAT, "metadata entry '%s' is %s, not a string", kb,
                         nbi_json_type_name(val->type));
        else if (out && out->count == META_ENTRIES_MAX)
            st = st_fail(f, NB_ERR_FORMAT,
                         "the metadata has %zu entries; nb_metadata holds at most %d (pass NULL to skip it)", v->count,
                         META_ENTRIES_MAX);
        else if (out && (k->len == 0 || k->len >= (size_t)META_KEY_MAX))
            st = st_fail(f, NB_ERR_FORMAT, "metadata key '%s' has %zu bytes; nb_metadata holds 1 to %d", kb, k->len,
                         META_KEY_MAX - 1);
        else if (out && val->len >= (size_t)META_VALUE_MAX)
            st = st_fail(f, NB_ERR_FORMAT, "metadata value for '%s' has %zu bytes; nb_metadata holds at most %d", kb,
                         val->len, META_VALUE_MAX - 1);
        else if (out && (strlen(k->str) != k->len || strlen(val->str) != val->len))
            st = st_fail(f, NB_ERR_FORMAT, "metadata entry '%s' contains a NUL character", kb);
        else if (out) {
            memcpy(out->entries[out->count].key, k->str, k->len + 1);
            memcpy(out->entries[out->count].value, val->str, val->len + 1);
            out->count++;
        }
    }
    if (!st) {
        qsort(keys, v->count, sizeof *keys, compare_keys);
        for (size_t c = 1; c < v->count && !st; c++)
            if (compare_keys(&keys[c - 1], &keys[c]) == 0)
                st = st_fail(f, NB_ERR_FORMAT, "metadata key '%s' appears twice", show(kb, keys[c].s, keys[c].len));
    }
    free(keys);
    return st;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

static int compare_offsets(const void *a, const void *b)
{
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Tensors must tile the data section: no overlap, no gap, nothing after the last one. */
static nb_status st_check_layout(st_file *f)
{
    st_entry **order = st_malloc(f->n * sizeof *order);
    if (!order) return st_fail(f, NB_ERR_NOMEM, "out of memory checking the layout");
    for (size_t i = 0; i < f->n; i++) order[i] = &f->entries[i];
    qsort(order, f->n, sizeof *order, compare_offsets);
    uint64_t next = 0;
    nb_status st = NB_OK;
    char a[ST_SHOW], b[ST_SHOW];
    for (size_t i = 0; i < f->n && !st; i++) {
        const st_entry *e = order[i];
        if (e->begin < next)
            st = st_fail(f, NB_ERR_FORMAT, "tensors '%s' and '%s' overlap: bytes [%llu, %llu) and [%llu, %llu) of the data",
                         show_c(a, order[i - 1]->name), show_c(b, e->name), (unsigned long long)order[i - 1]->begin,
                         (unsigned long long)order[i - 1]->end, (unsigned long long)e->begin,
                         (unsigned long long)e->end);
        else if (e->begin > next)
            st = st_fail(f, NB_ERR_FORMAT, "bytes [%llu, %llu) of the data belong to no tensor (gap before tensor '%s')",
                         (unsigned long long)next, (unsigned long long)e->begin, show_c(a, e->name));
        next = e->end;
    }
    if (!st && next != f->data_size)
        st = st_fail(f, NB_ERR_FORMAT, "the data section has %llu bytes but the tensors end at byte %llu",
                     (unsigned long long)f->data_size, (unsigned long long)next);
    free(order);
    return st;
}

/* Opens and validates path. `convert`: dtypes that nb_read_safetensors converts are accepted; otherwise only the
 * four native ones. meta (may be NULL) receives the metadata. On failure f is closed. */
static nb_status st_open(st_file *f, const char *path, const char *fn, bool convert, nb_metadata *meta)
{
    memset(f, 0, sizeof *f);
    f->fn = fn;
    f->path = path;
    f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us before fstat rejects it */
    nb_status st = NB_OK;
    if (f->fd < 0) {
        st = st_fail(f, NB_ERR_IO, "cannot open: %s", strerror(errno));
        goto done;
    }
    struct stat sb;
    if (fstat(f->fd, &sb) != 0) {
        st = st_fail(f, NB_ERR_IO, "cannot stat: %s", strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = st_fail(f, NB_ERR_IO, "not a regular file");
        goto done;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        st = st_fail(f, NB_ERR_FORMAT, "the file has %llu bytes, fewer than the 8 of the header length",
                     (unsigned long long)size);
        goto done;
    }
    unsigned char lenbytes[8];
    if ((st = st_pread(f, lenbytes, 8, 0, "the header length"))) goto done;
    uint64_t n = load_le(lenbytes, 8);
    /* Checked against the file before anything is allocated: a corrupt length must not cause a huge allocation. */
    if (n > size - 8) {
        st = st_fail(f, NB_ERR_FORMAT,
                     "header length %llu exceeds the %llu bytes that follow it (truncated, or not a safetensors file)",
                     (unsigned long long)n, (unsigned long long)(size - 8));
        goto done;
    }
    if (n > ST_MAX_HEADER) {
        st = st_fail(f, NB_ERR_FORMAT, "header length %llu is more than the %u bytes allowed", (unsigned long long)n,
                     ST_MAX_HEADER);
        goto done;
    }
    f->data_start = 8 + n;
    f->data_size = size - 8 - n;
    f->header = st_malloc((size_t)n);
    if (!f->header) {
        st = st_fail(f, NB_ERR_NOMEM, "out of memory for a header of %llu bytes", (unsigned long long)n);
        goto done;
    }
    if ((st = st_pread(f, f->header, (size_t)n, 8, "the header"))) goto done;
    char err[256];
    if (!nbi_json_parse(f->header, (size_t)n, ST_MAX_DEPTH, &f->doc, err, sizeof err)) {
        st = st_fail(f, strcmp(err, "out of memory") == 0 ? NB_ERR_NOMEM : NB_ERR_FORMAT,
                     "invalid JSON header (%llu bytes): %s", (unsigned long long)n, err);
        goto done;
    }
    const nbi_json_node *nodes = f->doc.nodes, *root = &nodes[0];
    if (root->type != NBI_JSON_OBJECT) {
        st = st_fail(f, NB_ERR_FORMAT, "the header is %s, not a JSON object", nbi_json_type_name(root->type));
        goto done;
    }
    f->entries = st_malloc(root->count * sizeof *f->entries);
    f->by_name = st_malloc(root->count * sizeof *f->by_name);
    if (!f->entries || !f->by_name) {
        st = st_fail(f, NB_ERR_NOMEM, "out of memory for %zu tensors", root->count);
        goto done;
    }
    bool seen_metadata = false;
    size_t m = 1;
    for (size_t c = 0; c < root->count; c++, m = nodes[m + 1].end) {
        if (key_is(&nodes[m], "__metadata__")) {
            if (seen_metadata) {
                st = st_fail(f, NB_ERR_FORMAT, "\"__metadata__\" appears twice");
                goto done;
            }
            seen_metadata = true;
            if ((st = st_parse_metadata(f, m + 1, meta))) goto done;
            continue;
        }
        st_entry *e = &f->entries[f->n];
        memset(e, 0, sizeof *e);
        if ((st = st_parse_entry(f, m, e))) goto done;
        f->by_name[f->n++] = e;
    }
    if (!seen_metadata && meta) meta->count = 0;
    qsort(f->by_name, f->n, sizeof *f->by_name, compare_names);
    char b[ST_SHOW];
    for (size_t i = 1; i < f->n; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0) {
            st = st_fail(f, NB_ERR_FORMAT, "tensor '%s' appears twice", show_c(b, f->by_name[i]->name));
            goto done;
        }
    if ((st = st_check_layout(f))) goto done;
    for (size_t i = 0; i < f->n; i++) {
        const st_entry *e = &f->entries[i];
        if (e->dtype->conv == ST_NONE || (!convert && e->dtype->conv != ST_NATIVE)) {
            st = st_fail(f, NB_ERR_FORMAT,
                         "tensor '%s' has dtype %s, which %s (F32, F64, I64 and BOOL%s)", show_c(b, e->name),
                         e->dtype->name, convert ? "nabla does not support" : "nabla cannot load into its tensors",
                         convert ? ", converted from the integer and 16-bit float dtypes"
                                 : "; nb_read_safetensors converts the integer and 16-bit float dtypes");
            goto done;
        }
    }
done:
    if (st) st_close(f);
    return st;
}

static st_entry *st_find(const st_file *f, const char *name)
{
    st_entry key = {.name = name}, *pk = &key;
    st_entry **hit = f->n ? bsearch(&pk, f->by_name, f->n, sizeof *f->by_name, compare_names) : NULL;
    return hit ? *hit : NULL;
}

/* A new tensor holding entry e's data (converted to its target dtype). */
static nbi_tensor *st_read_tensor(st_file *f, const st_entry *e)
{
    nbi_tensor *t = nbi_tensor_new(e->dtype->target, e->ndim, e->shape, f->fn);
    if (!t) return NULL;
    size_t nbytes = (size_t)(e->end - e->begin), count = (size_t)t->numel;
    char what[ST_SHOW + 16], b[ST_SHOW];
    snprintf(what, sizeof what, "tensor '%s'", show_c(b, e->name));
    uint64_t at = f->data_start + e->begin;
    if (e->dtype->conv == ST_NATIVE) {
        void *data = nbi_data_ptr(t);
        if (nbytes && st_pread(f, data, nbytes, at, what)) goto fail;
        if (!host_little_endian()) swap_elements(data, count, e->dtype->size);
        if (t->dtype == NB_BOOL) /* any nonzero byte is true; nabla's bools hold exactly 0 or 1 */
            for (size_t i = 0; i < count; i++) ((uint8_t *)data)[i] = ((uint8_t *)data)[i] != 0;
        return t;
    }
    unsigned char *raw = st_malloc(nbytes);
    if (!raw) {
        st_fail(f, NB_ERR_NOMEM, "out of memory reading %s", what);
        goto fail;
    }
    if (nbytes && st_pread(f, raw, nbytes, at, what)) {
        free(raw);
        goto fail;
    }
    size_t size = e->dtype->size;
    for (size_t i = 0; i < count; i++) {
        uint64_t bits = load_le(raw + i * size, size);
        switch (e->dtype->conv) {
        case ST_HALF: ((float *)nbi_data_ptr(t))[i] = half_to_float((uint16_t)bits); break;
        case ST_BFLOAT: ((float *)nbi_data_ptr(t))[i] = bfloat_to_float((uint16_t)bits); break;
        case ST_SIGNED: {
            uint64_t sign = (uint64_t)1 << (8 * size - 1);
            ((int64_t *)nbi_data_ptr(t))[i] = (int64_t)(bits ^ sign) - (int64_t)sign; /* sign extension */
            break;
        }
        case ST_UNSIGNED:
            if (bits > INT64_MAX) {
                st_fail(f, NB_ERR_FORMAT, "%s (%s) holds %llu, more than i64 can represent", what, e->dtype->name,
                        (unsigned long long)bits);
                free(raw);
                goto fail;
            }
            ((int64_t *)nbi_data_ptr(t))[i] = (int64_t)bits;
            break;
        default: break;
        }
    }
    free(raw);
    return t;
fail:
    nbi_kill(t);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Saving
 * ---------------------------------------------------------------------------------------------- */
#define ST_WBUF ((size_t)1 << 16)

typedef struct st_writer {
    int fd;
    unsigned char *buf;
    size_t used;
    int err; /* errno of the first failure; later writes do nothing */
} st_writer;

static void w_write_all(st_writer *w, const unsigned char *p, size_t n)
{
    while (n > 0 && !w->err) {
        ssize_t r = write(w->fd, p, n < ((size_t)1 << 30) ? n : ((size_t)1 << 30));
        if (r < 0) {
            if (errno != EINTR) w->err = errno;
            continue;
        }
        if (r == 0) w->err = EIO;
        p += r;
        n -= (size_t)r;
    }
}

static void w_flush(st_writer *w)
{
    w_write_all(w, w->buf, w->used);
    w->used = 0;
}

static void w_put(st_writer *w, const void *src, size_t n)
{
    const unsigned char *p = src;
    if (n >= ST_WBUF) { /* large tensors go straight to the file */
        w_flush(w);
        w_write_all(w, p, n);
        return;
    }
    while (n > 0 && !w->err) {
        size_t k = ST_WBUF - w->used < n ? ST_WBUF - w->used : n;
        memcpy(w->buf + w->used, p, k);
        w->used += k;
        p += k;
        n -= k;
        if (w->used == ST_WBUF) w_flush(w);
    }
}

/* count elements of elsize bytes, in little-endian order whatever the host's. */
static void w_put_le(st_writer *w, const void *src, size_t count, size_t elsize)
{
    if (host_little_endian() || elsize == 1) {
        w_put(w, src, count * elsize);
        return;
    }
    const unsigned char *p = src;
    for (size_t i = 0; i < count && !w->err; i++, p += elsize) {
        unsigned char tmp[8];
        for (size_t k = 0; k < elsize; k++) tmp[k] = p[elsize - 1 - k];
        w_put(w, tmp, elsize);
    }
}

/* The tensor's elements, row-major; non-contiguous tensors go through a contiguous copy. */
static nb_status w_tensor(st_writer *w, const nbi_tensor *t, const char *fn)
{
    if (t->numel == 0) return NB_OK;
    size_t elsize = nb_dtype_size(t->dtype);
    if (nbi_is_contiguous(t)) {
        w_put_le(w, nbi_data_ptr(t), (size_t)t->numel, elsize);
        return NB_OK;
    }
    nbi_tensor *c = nbi_contiguous_copy(t, t->dtype, fn);
    if (!c) return nb_last_status();
    w_put_le(w, nbi_data_ptr(c), (size_t)c->numel, elsize);
    nbi_kill(c);
    return NB_OK;
}

/* Every name is terminated, non-empty, valid UTF-8, not the reserved "__metadata__", and unique; every tensor is a
 * live handle of a dtype the format has. */
static nb_status check_list_for_save(const nb_param_list *list, const char *fn)
{
    if (list->count < 0 || (list->count > 0 && !list->items))
        return nbi_fail(NB_ERR_ARG, "%s: the list is corrupt (count %d)", fn, list->count);
    char b[ST_SHOW];
    for (int i = 0; i < list->count; i++) {
        const nb_named_tensor *item = &list->items[i];
        if (!memchr(item->name, '\0', NB_NAME_MAX))
            return nbi_fail(NB_ERR_ARG, "%s: name of list entry %d is not NUL-terminated", fn, i);
        size_t len = strlen(item->name);
        if (len == 0) return nbi_fail(NB_ERR_ARG, "%s: name of list entry %d is empty", fn, i);
        if (!nbi_utf8_valid(item->name, len))
            return nbi_fail(NB_ERR_ARG, "%s: name '%s' is not valid UTF-8", fn, show_c(b, item->name));
        if (strcmp(item->name, "__metadata__") == 0)
            return nbi_fail(NB_ERR_ARG, "%s: the name \"__metadata__\" is reserved by the format", fn);
        if (!nbi_resolve(item->tensor, fn, item->name)) return nb_last_status();
    }
    /* O(n log n) even for long lists */
    st_key *keys = st_malloc((size_t)list->count * sizeof *keys);
    if (!keys) return nbi_fail(NB_ERR_NOMEM, "%s: out of memory", fn);
    for (int i = 0; i < list->count; i++) keys[i] = (st_key){list->items[i].name, strlen(list->items[i].name)};
    qsort(keys, (size_t)list->count, sizeof *keys, compare_keys);
    nb_status st = NB_OK;
    for (int i = 1; i < list->count && !st; i++)
        if (compare_keys(&keys[i - 1], &keys[i]) == 0)
            st = nbi_fail(NB_ERR_ARG, "%s: name '%s' appears twice in the list", fn, show_c(b, keys[i].s));
    free(keys);
    return st;
}

static nb_status check_metadata_for_save(const nb_metadata *m, const char *fn)
{
    if (check_metadata_count(m, fn)) return nb_last_status();
    char b[ST_SHOW];
    for (int i = 0; i < m->count; i++) {
        const nb_metadata_entry *e = &m->entries[i];
        if (!memchr(e->key, '\0', sizeof e->key) || !memchr(e->value, '\0', sizeof e->value))
            return nbi_fail(NB_ERR_ARG, "%s: metadata entry %d is not NUL-terminated", fn, i);
        if (!e->key[0]) return nbi_fail(NB_ERR_ARG, "%s: metadata entry %d has an empty key", fn, i);
        if (!nbi_utf8_valid(e->key, strlen(e->key)) || !nbi_utf8_valid(e->value, strlen(e->value)))
            return nbi_fail(NB_ERR_ARG, "%s: metadata entry '%s' is not valid UTF-8", fn, show_c(b, e->key));
        for (int j = 0; j < i; j++)
            if (strcmp(m->entries[j].key, e->key) == 0)
                return nbi_fail(NB_ERR_ARG, "%s: metadata key '%s' appears twice", fn, show_c(b, e->key));
    }
    return NB_OK;
}

static void build_header(nbi_json_buf *h, const nb_param_list *list, const nb_metadata *metadata)
{
    nbi_json_put(h, "{", 1);
    bool first = true;
    if (metadata && metadata->count > 0) {
        nbi_json_put_string(h, "__metadata__");
        nbi_json_put(h, ":{", 2);
        for (int i = 0; i < metadata->count; i++) {
            if (i) nbi_json_put(h, ",", 1);
            nbi_json_put_string(h, metadata->entries[i].key);
            nbi_json_put(h, ":", 1);
            nbi_json_put_string(h, metadata->entries[i].value);
        }
        nbi_json_put(h, "}", 1);
        first = false;
    }
    uint64_t offset = 0;
    for (int i = 0; i < list->count; i++) {
        const nbi_tensor *t = nbi_peek(list->items[i].tensor);
        if (!first) nbi_json_put(h, ",", 1);
        first = false;
        nbi_json_put_string(h, list->items[i].name);
        nbi_json_putf(h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_of(t->dtype)->name);
        for (int d = 0; d < t->ndim; d++) nbi_json_putf(h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        uint64_t end = offset + (uint64_t)t->numel * nb_dtype_size(t->dtype);
        nbi_json_putf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset, (unsigned long long)end);
        offset = end;
    }
    nbi_json_put(h, "}", 1);
    while (!h->failed && h->len % 8) nbi_json_put(h, " ", 1); /* the data starts 8-byte aligned */
}

/* target: where a link at path leads (NULL, or path itself, for no link), named so that the user sees which file
 * was meant. */
static nb_status save_fail(const char *path, const char *target, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static nb_status save_fail(const char *path, const char *target, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bool link = target && strcmp(target, path) != 0;
    return nbi_fail(NB_ERR_IO, "nb_save_safetensors: '%s'%s%s%s: %s; any existing file there is unchanged", path,
                    link ? " (a symbolic link to '" : "", link ? target : "", link ? "')" : "", msg);
}

/* The directory entry made by rename is durable only once the directory itself is synced. Best effort: some
 * file systems refuse fsync on directories, and the data is already safe. */
static void sync_directory(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    if (!slash) {
        dir = strdup(".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(n + 1);
        if (dir) {
            memcpy(dir, path, n);
            dir[n] = '\0';
        }
    }
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* The contents of symbolic link `link`, malloc'ed; NULL with errno set on failure. */
static char *read_link(const char *link)
{
    for (size_t size = 256;; size *= 2) {
        char *buf = st_malloc(size);
        if (!buf) {
            errno = ENOMEM;
            return NULL;
        }
        ssize_t n = readlink(link, buf, size);
        if (n < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return NULL;
        }
        if ((size_t)n < size) {
            buf[n] = '\0';
            return buf;
        }
        free(buf);
    }
}

#define ST_MAX_LINKS 40 /* Linux's limit on links followed in one lookup */

/* Where a save to `path` must go, malloc'ed: path itself, or, when it is a symbolic link, the file at the end of
 * its chain. Renaming over the link itself would turn it into a regular file and leave the checkpoint it pointed
 * to stale. Only the last component is followed (links in directories resolve the same way for the temporary
 * file and the rename); a relative target is relative to the link's directory. A dangling link yields its
 * target, which the save creates, as writing through the link with open() would. NULL with errno set on
 * failure (ELOOP for a cycle). */
static char *save_target(const char *path)
{
    char *cur = strdup(path);
    if (!cur) {
        errno = ENOMEM;
        return NULL;
    }
    nbi_count_system_alloc();
    for (int hops = 0;; hops++) {
        struct stat sb;
        if (lstat(cur, &sb) != 0 || !S_ISLNK(sb.st_mode)) return cur; /* absent or not a link: write it */
        if (hops == ST_MAX_LINKS) {
            free(cur);
            errno = ELOOP;
            return NULL;
        }
        char *link = read_link(cur);
        if (!link) {
            int e = errno;
            free(cur);
            errno = e;
            return NULL;
        }
        const char *slash = strrchr(cur, '/');
        if (link[0] == '/' || !slash) {
            free(cur);
            cur = link;
            continue;
        }
        size_t dirlen = (size_t)(slash - cur) + 1, n = strlen(link);
        char *next = st_malloc(dirlen + n + 1);
        if (!next) {
            free(cur);
            free(link);
            errno = ENOMEM;
            return NULL;
        }
        memcpy(next, cur, dirlen);
        memcpy(next + dirlen, link, n + 1);
        free(cur);
        free(link);
        cur = next;
    }
}

/* What a file that is not a regular file is, for messages. */
static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    return "a special file";
}

nb_status nb_save_safetensors(const char *path, const nb_param_list *tensors, const nb_metadata *metadata)
{
    const char *fn = "nb_save_safetensors";
    if (!path || !tensors) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !path ? "path" : "tensors");
    if (!*path) return nbi_fail(NB_ERR_ARG, "%s: path is empty", fn);
    if (check_list_for_save(tensors, fn)) return nb_last_status();
    if (metadata && check_metadata_for_save(metadata, fn)) return nb_last_status();

    char *target = save_target(path);
    if (!target) {
        if (errno == ENOMEM) return nbi_fail(NB_ERR_NOMEM, "%s: out of memory", fn);
        return save_fail(path, NULL, "cannot follow the symbolic link: %s", strerror(errno));
    }
    /* rename() would replace a device node, FIFO or socket by a regular file (as root, saving to /dev/null would
     * destroy it), and the loader refuses such files anyway. Checked before anything is created. */
    struct stat old;
    bool exists = stat(target, &old) == 0;
    if (exists && !S_ISREG(old.st_mode)) {
        nb_status r = save_fail(path, target, "it is %s, not a regular file", file_kind(old.st_mode));
        free(target);
        return r;
    }
    nbi_json_buf header = {0};
    build_header(&header, tensors, metadata);
    size_t tmp_size = strlen(target) + 64;
    char *tmp = st_malloc(tmp_size);
    unsigned char *wbuf = st_malloc(ST_WBUF);
    if (header.failed || !tmp || !wbuf) {
        nbi_json_buf_free(&header);
        free(target);
        free(tmp);
        free(wbuf);
        return nbi_fail(NB_ERR_NOMEM, "%s: out of memory", fn);
    }
    /* pid and a counter: concurrent saves (other processes, other threads) never share a temporary file. Beside
     * the target, so that the rename stays within one file system. */
    static atomic_uint counter;
    snprintf(tmp, tmp_size, "%s.tmp.%ld.%u", target, (long)getpid(), atomic_fetch_add(&counter, 1));

    /* Overwriting must not loosen the permissions of a checkpoint the user protected (0600 would become the
     * umask's default, typically 0644). The temporary file is created no more open than the old file, so that
     * the new data is never readable by more users than the old, and set to exactly its bits before the rename. */
    bool keep_mode = exists;
    mode_t create_mode = keep_mode ? (old.st_mode & 0666) : 0666;

    nb_status st = NB_OK;
    bool created = false;
    st_writer w = {.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, create_mode), .buf = wbuf};
    if (w.fd < 0) {
        st = save_fail(path, target, "cannot create the temporary file '%s': %s", tmp, strerror(errno));
        goto done;
    }
    created = true;
    if (keep_mode && fchmod(w.fd, old.st_mode & 07777) != 0) {
        st = save_fail(path, target, "cannot give the temporary file '%s' the permissions %04o of the existing file: %s",
                       tmp, (unsigned)(old.st_mode & 07777), strerror(errno));
        goto done;
    }
    unsigned char lenbytes[8];
    for (int i = 0; i < 8; i++) lenbytes[i] = (unsigned char)((uint64_t)header.len >> (8 * i));
    w_put(&w, lenbytes, 8);
    w_put(&w, header.data, header.len);
    for (int i = 0; i < tensors->count && !w.err; i++)
        if ((st = w_tensor(&w, nbi_peek(tensors->items[i].tensor), fn))) goto done;
    w_flush(&w);
    if (w.err) {
        st = save_fail(path, target, "writing the temporary file '%s' failed: %s", tmp, strerror(w.err));
        goto done;
    }
    if (fsync(w.fd) != 0) {
        st = save_fail(path, target, "fsync of the temporary file '%s' failed: %s", tmp, strerror(errno));
        goto done;
    }
    int fd = w.fd;
    w.fd = -1;
    if (close(fd) != 0) {
        st = save_fail(path, target, "closing the temporary file '%s' failed: %s", tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, target) != 0) {
        st = save_fail(path, target, "cannot rename the temporary file '%s' over it: %s", tmp, strerror(errno));
        goto done;
    }
    sync_directory(target);
done:
    if (w.fd >= 0) close(w.fd);
    if (st && created) unlink(tmp);
    nbi_json_buf_free(&header);
    free(target);
    free(tmp);
    free(wbuf);
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * Loading
 * ---------------------------------------------------------------------------------------------- */
/* Lines joined by sep into a fixed buffer; what does not fit is counted and summarized at the end. */
typedef struct st_text {
    char *buf;
    size_t size, len;
    int omitted;
    const char *sep;
} st_text;

#define ST_TEXT_TRAILER 40 /* room kept for "... and N more" */

static void text_add(st_text *t, const char *line)
{
    if (!t->buf) return;
    size_t need = (t->len ? strlen(t->sep) : 0) + strlen(line);
    if (t->omitted || t->len + need + ST_TEXT_TRAILER >= t->size) {
        t->omitted++;
        return;
    }
    t->len += (size_t)snprintf(t->buf + t->len, t->size - t->len, "%s%s", t->len ? t->sep : "", line);
}

static void text_finish(st_text *t)
{
    if (t->buf && t->omitted)
        snprintf(t->buf + t->len, t->size - t->len, "%s... and %d more", t->len ? t->sep : "", t->omitted);
}

static void add_problem(st_text *details, st_text *msg, const char *line)
{
    text_add(details, line);
    text_add(msg, line);
}

static nb_status check_list_for_load(const nb_param_list *list, const char *fn)
{
    if (list->count < 0 || (list->count > 0 && !list->items))
        return nbi_fail(NB_ERR_ARG, "%s: the list is corrupt (count %d)", fn, list->count);
    for (int i = 0; i < list->count; i++) {
        if (!memchr(list->items[i].name, '\0', NB_NAME_MAX))
            return nbi_fail(NB_ERR_ARG, "%s: name of list entry %d is not NUL-terminated", fn, i);
        if (!nbi_resolve(list->items[i].tensor, fn, list->items[i].name)) return nb_last_status();
    }
    return NB_OK;
}

/* Where a destination's elements lie in its storage, in bytes from the start of the storage, with the dims of
 * size 1 dropped, negative strides reflected, and the rest sorted by increasing stride. */
typedef struct st_span {
    int item; /* index in the list */
    const nbi_storage *storage;
    size_t elsize;
    int ndim;
    int64_t size[NB_MAX_DIMS], stride[NB_MAX_DIMS];
    int64_t lo, hi; /* [lo, hi): from the first byte of the first element to the end of the last */
    bool dense;     /* its elements fill [lo, hi) */
} st_span;

/* Fills s for t (numel > 0). Returns whether every element has memory of its own. The test is that each stride
 * passes the whole extent of the smaller ones: exact for every view nabla's operations make (narrow, slice,
 * permute, transpose, expand), conservative for arbitrary strides; *bad_dim is the first dim that fails it. */
static bool st_span_of(const nbi_tensor *t, int item, st_span *s, int *bad_dim)
{
    memset(s, 0, sizeof *s);
    s->item = item;
    s->storage = t->storage;
    s->elsize = nb_dtype_size(t->dtype);
    int64_t es = (int64_t)s->elsize, base = t->offset * es;
    int dims[NB_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 1) continue;
        int64_t st = t->stride[d] * es;
        if (st < 0) {
            base += (t->shape[d] - 1) * st;
            st = -st;
        }
        int k = s->ndim++;
        for (; k > 0 && s->stride[k - 1] > st; k--) { /* insertion by stride */
            s->stride[k] = s->stride[k - 1];
            s->size[k] = s->size[k - 1];
            dims[k] = dims[k - 1];
        }
        s->stride[k] = st;
        s->size[k] = t->shape[d];
        dims[k] = d;
    }
    int64_t extent = es;
    bool distinct = true;
    for (int k = 0; k < s->ndim; k++) {
        if (distinct && s->stride[k] < extent) {
            distinct = false;
            *bad_dim = dims[k];
        }
        extent += (s->size[k] - 1) * s->stride[k];
    }
    s->lo = base;
    s->hi = base + extent;
    s->dense = extent == t->numel * es;
    return distinct;
}

/* Whether the element starting at byte x belongs to s (whose elements are distinct, so each stride exceeds what
 * the smaller ones reach and the index along each dim, largest stride first, is the quotient). */
static bool st_span_has(const st_span *s, int64_t x)
{
    if (x < s->lo || x >= s->hi) return false;
    int64_t r = x - s->lo;
    for (int k = s->ndim - 1; k >= 0; k--) {
        int64_t i = r / s->stride[k];
        if (i >= s->size[k]) return false;
        r -= i * s->stride[k];
    }
    return r == 0;
}

/* Whether a and b (same storage, intersecting extents, each one-to-one) have an element in common: the elements
 * of the smaller one are looked up in the other. */
static bool st_spans_overlap(const st_span *a, const st_span *b)
{
    if (a->dense && b->dense) return true;
    if (a->elsize != b->elsize || a->lo % (int64_t)a->elsize != b->lo % (int64_t)b->elsize) return true;
    int64_t na = 1, nb = 1;
    for (int k = 0; k < a->ndim; k++) na *= a->size[k];
    for (int k = 0; k < b->ndim; k++) nb *= b->size[k];
    if (na > nb) {
        const st_span *t = a;
        a = b;
        b = t;
    }
    int64_t idx[NB_MAX_DIMS] = {0}, x = a->lo;
    for (;;) {
        if (st_span_has(b, x)) return true;
        int k = 0;
        for (; k < a->ndim; k++) {
            x += a->stride[k];
            if (++idx[k] < a->size[k]) break;
            x -= idx[k] * a->stride[k];
            idx[k] = 0;
        }
        if (k == a->ndim) return false;
    }
}

static int compare_spans(const void *pa, const void *pb)
{
    const st_span *a = pa, *b = pb;
    if (a->storage != b->storage) return (uintptr_t)a->storage < (uintptr_t)b->storage ? -1 : 1;
    if (a->lo != b->lo) return a->lo < b->lo ? -1 : 1;
    return (a->item > b->item) - (a->item < b->item);
}

/* nb_copy_ writes the destinations one after the other, element by element: if two elements of the destinations
 * share memory, the last write wins and the loaded model silently differs from the file. So every destination
 * that is about to be written must be one-to-one with its memory (no expanded dims) and disjoint from the others.
 * Problems are collected into msg; returns how many there are (-1 when out of memory). */
static int st_check_destinations(const nb_param_list *into, const st_entry *const *match, st_text *msg)
{
    st_span *spans = st_malloc((size_t)into->count * sizeof *spans);
    if (!spans) return -1;
    int n = 0, problems = 0;
    char line[2 * ST_SHOW + 3 * NBI_SHAPE_STR + 160], n1[ST_SHOW], n2[ST_SHOW], sh[NBI_SHAPE_STR],
        sd[NBI_SHAPE_STR];
    for (int i = 0; i < into->count; i++) {
        const nbi_tensor *t = nbi_peek(into->items[i].tensor);
        if (!match[i] || t->numel == 0) continue;
        int d = 0;
        if (st_span_of(t, i, &spans[n], &d)) {
            n++;
            continue;
        }
        problems++;
        if (t->stride[d] == 0)
            snprintf(line, sizeof line, "'%s' is an expanded view: its %lld elements along dim %d are one element in memory (stride 0)",
                     show_c(n1, into->items[i].name), (long long)t->shape[d], d);
        else
            snprintf(line, sizeof line, "'%s' has elements that share memory (shape %s, strides %s)",
                     show_c(n1, into->items[i].name), nbi_shape_fmt(sh, t->ndim, t->shape),
                     nbi_shape_fmt(sd, t->ndim, t->stride));
        text_add(msg, line);
    }
    qsort(spans, (size_t)n, sizeof *spans, compare_spans);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n && spans[j].storage == spans[i].storage && spans[j].lo < spans[i].hi; j++) {
            if (!st_spans_overlap(&spans[i], &spans[j])) continue;
            int a = spans[i].item, b = spans[j].item;
            if (a > b) {
                a = spans[j].item;
                b = spans[i].item;
            }
            problems++;
            snprintf(line, sizeof line, "'%s' and '%s' share memory", show_c(n1, into->items[a].name),
                     show_c(n2, into->items[b].name));
            text_add(msg, line);
        }
    free(spans);
    return problems;
}

nb_status nb_load_safetensors(const char *path, nb_param_list *into, nb_load_mode mode, nb_load_report *report,
                              nb_metadata *metadata)
{
    const char *fn = "nb_load_safetensors";
    if (report) memset(report, 0, sizeof *report);
    if (!path || !into) return nbi_fail(NB_ERR_NULL, "%s: %s is NULL", fn, !path ? "path" : "into");
    if (mode != NB_LOAD_STRICT && mode != NB_LOAD_PARTIAL)
        return nbi_fail(NB_ERR_ARG, "%s: mode %d is neither NB_LOAD_STRICT nor NB_LOAD_PARTIAL", fn, (int)mode);
    if (check_list_for_load(into, fn)) return nb_last_status();

    nb_metadata meta;
    st_file f;
    nb_status st = st_open(&f, path, fn, false, metadata ? &meta : NULL);
    if (st) return st;

    const st_entry **match = st_malloc((size_t)into->count * sizeof *match);
    nbi_tensor **temps = st_malloc((size_t)into->count * sizeof *temps);
    if (temps) memset(temps, 0, (size_t)into->count * sizeof *temps);
    if (!match || !temps) {
        st = st_fail(&f, NB_ERR_NOMEM, "out of memory");
        goto done;
    }
    int loaded = 0, missing = 0, unexpected = 0, mismatched = 0;
    char msgbuf[700];
    st_text details = {report ? report->details : NULL, report ? sizeof report->details : 0, 0, 0, "\n"};
    st_text msg = {msgbuf, sizeof msgbuf, 0, 0, "; "};
    msgbuf[0] = '\0';
    char line[2 * ST_SHOW + 3 * NBI_SHAPE_STR], nb[ST_SHOW], s1[NBI_SHAPE_STR], s2[NBI_SHAPE_STR];
    for (int i = 0; i < into->count; i++) {
        const nb_named_tensor *item = &into->items[i];
        const nbi_tensor *t = nbi_peek(item->tensor);
        st_entry *e = st_find(&f, item->name);
        match[i] = NULL;
        if (!e) {
            missing++;
            snprintf(line, sizeof line, "missing %s: model %s %s", show_c(nb, item->name),
                     nbi_shape_fmt(s1, t->ndim, t->shape), nb_dtype_name(t->dtype));
            add_problem(&details, &msg, line);
            continue;
        }
        e->matched = true;
        if (e->dtype->target != t->dtype || e->ndim != t->ndim ||
            memcmp(e->shape, t->shape, (size_t)t->ndim * sizeof *t->shape) != 0) {
            mismatched++;
            snprintf(line, sizeof line, "mismatch %s: file %s %s, model %s %s", show_c(nb, item->name),
                     nbi_shape_fmt(s1, e->ndim, e->shape), nb_dtype_name(e->dtype->target),
                     nbi_shape_fmt(s2, t->ndim, t->shape), nb_dtype_name(t->dtype));
            add_problem(&details, &msg, line);
            continue;
        }
        match[i] = e;
        loaded++;
    }
    for (size_t i = 0; i < f.n; i++) {
        const st_entry *e = &f.entries[i];
        if (e->matched) continue;
        unexpected++;
        snprintf(line, sizeof line, "unexpected %s: file %s %s", show_c(nb, e->name),
                 nbi_shape_fmt(s1, e->ndim, e->shape), nb_dtype_name(e->dtype->target));
        add_problem(&details, &msg, line);
    }
    text_finish(&details);
    text_finish(&msg);
    if (report) {
        report->missing = missing;
        report->unexpected = unexpected;
        report->mismatched = mismatched;
    }
    if (mode == NB_LOAD_STRICT && missing + unexpected + mismatched > 0) {
        st = st_fail(&f, NB_ERR_SHAPE,
                     "does not match the tensors to load (%d missing, %d unexpected, %d mismatched); nothing was "
                     "loaded: %s",
                     missing, unexpected, mismatched, msgbuf);
        goto done;
    }
    msgbuf[0] = '\0';
    msg = (st_text){msgbuf, sizeof msgbuf, 0, 0, "; "};
    int aliased = st_check_destinations(into, match, &msg);
    text_finish(&msg);
    if (aliased < 0) {
        st = st_fail(&f, NB_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (aliased > 0) {
        st = st_fail(&f, NB_ERR_ARG,
                     "the tensors to load into overlap in memory, so the result would depend on the order of the "
                     "copies; nothing was loaded: %s",
                     msgbuf);
        goto done;
    }
    /* Everything is read before anything is written: an I/O error halfway leaves the model as it was. */
    for (int i = 0; i < into->count; i++)
        if (match[i] && !(temps[i] = st_read_tensor(&f, match[i]))) {
            st = nb_last_status();
            goto done;
        }
    for (int i = 0; i < into->count; i++)
        if (temps[i] && (st = nb_copy_(into->items[i].tensor, nbi_handle(temps[i])))) goto done;
    if (report) report->loaded = loaded;
    if (metadata) *metadata = meta;
done:
    if (temps)
        for (int i = 0; i < into->count; i++)
            if (temps[i]) nbi_kill(temps[i]);
    free(match);
    free(temps);
    st_close(&f);
    return st;
}

nb_param_list *nb_read_safetensors(const char *path, nb_metadata *metadata)
{
    const char *fn = "nb_read_safetensors";
    if (!path) return nbi_error(NB_ERR_NULL, "%s: path is NULL", fn);
    nb_metadata meta;
    st_file f;
    if (st_open(&f, path, fn, true, metadata ? &meta : NULL)) return NULL;
    char b[ST_SHOW];
    for (size_t i = 0; i < f.n; i++)
        if (strlen(f.entries[i].name) >= NB_NAME_MAX) {
            st_fail(&f, NB_ERR_FORMAT, "tensor name '%s' has %zu bytes; nabla's names hold at most %d",
                    show_c(b, f.entries[i].name), strlen(f.entries[i].name), NB_NAME_MAX - 1);
            st_close(&f);
            return NULL;
        }
    nb_param_list *list = nb_param_list_new();
    bool ok = list != NULL;
    for (size_t i = 0; ok && i < f.n; i++) {
        nbi_tensor *t = st_read_tensor(&f, &f.entries[i]);
        nb_tensor *h = t ? nbi_nn_own(nbi_handle(t)) : NULL;
        ok = h && nb_param_list_add(list, f.entries[i].name, h, false) == NB_OK;
        if (!ok && h) nb_free(h);
    }
    st_close(&f);
    if (!ok) {
        if (list) {
            for (int i = 0; i < list->count; i++) nb_free(list->items[i].tensor);
            nb_param_list_free(list);
        }
        return NULL;
    }
    if (metadata) *metadata = meta;
    return list;
}
