/* Checkpoints in the safetensors format: metadata, round trips of every dtype and layout, the exact bytes nabla
 * writes, interoperability with an independent Python reader/writer (tests/reference/safetensors_interop.py),
 * strict and partial loading with their reports, every kind of corrupt file, atomic saves, and a model round
 * trip. */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * Files
 * ---------------------------------------------------------------------------------------------- */
static char tmpdir[256];

static void setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/nb_ckpt_XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d) {
            struct dirent *ent;
            while ((ent = readdir(d))) {
                if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
                char child[1024];
                snprintf(child, sizeof child, "%s/%s", path, ent->d_name);
                remove_tree(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void teardown(void) { remove_tree(tmpdir); }

/* A path in the test's directory; a few rotating buffers so that several can be alive at once. */
static const char *in_tmp(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_int_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return data;
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    ck_assert_int_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* A safetensors file from a header of hlen bytes (its length written in front) and dlen data bytes. */
static void write_raw(const char *path, uint64_t declared, const char *header, size_t hlen, const void *data,
                      size_t dlen)
{
    size_t n = 8 + hlen + dlen;
    unsigned char *buf = calloc(1, n);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(declared >> (8 * i));
    memcpy(buf + 8, header, hlen);
    if (data) memcpy(buf + 8 + hlen, data, dlen);
    spit(path, buf, n);
    free(buf);
}

static void write_st(const char *path, const char *header, const void *data, size_t dlen)
{
    write_raw(path, strlen(header), header, strlen(header), data, dlen);
}

/* Number of entries in the test directory (leftover temporary files show up here). */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)))
        if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void free_list_and_tensors(nb_param_list *list)
{
    if (!list) return;
    for (int i = 0; i < list->count; i++) nb_free(list->items[i].tensor);
    nb_param_list_free(list);
}

/* Bitwise equality of two tensors' values (same dtype and shape), so that -0.0 and NaN payloads count. */
static void ck_assert_same_tensor(nb_tensor *a, nb_tensor *b)
{
    ck_assert_int_eq(nb_dtype_of(a), nb_dtype_of(b));
    ck_assert_int_eq(nb_ndim(a), nb_ndim(b));
    for (int d = 0; d < nb_ndim(a); d++) ck_assert_int_eq(nb_size(a, d), nb_size(b, d));
    int64_t n = nb_numel(a);
    size_t es = nb_dtype_size(nb_dtype_of(a));
    char *x = malloc((size_t)n * es + 1), *y = malloc((size_t)n * es + 1);
    ck_assert_ok(nb_to_array(a, x, n, nb_dtype_of(a)));
    ck_assert_ok(nb_to_array(b, y, n, nb_dtype_of(b)));
    ck_assert_msg(memcmp(x, y, (size_t)n * es) == 0, "tensor values differ");
    free(x);
    free(y);
}

/* ------------------------------------------------------------------------------------------------
 * Metadata
 * ---------------------------------------------------------------------------------------------- */
START_TEST(metadata_set_get)
{
    nb_metadata m = {0};
    ck_assert_ok(nb_metadata_set(&m, "format", "pt"));
    ck_assert_ok(nb_metadata_set(&m, "epoch", "3"));
    ck_assert_int_eq(m.count, 2);
    ck_assert_str_eq(nb_metadata_get(&m, "format"), "pt");
    ck_assert_str_eq(nb_metadata_get(&m, "epoch"), "3");
    /* replacing keeps one entry */
    ck_assert_ok(nb_metadata_set(&m, "epoch", "4"));
    ck_assert_int_eq(m.count, 2);
    ck_assert_str_eq(nb_metadata_get(&m, "epoch"), "4");
    /* absent: NULL without an error */
    nb_clear_error();
    ck_assert_ptr_null(nb_metadata_get(&m, "nope"));
    ck_assert_int_eq(nb_last_status(), NB_OK);
    ck_assert_ok(nb_metadata_set(&m, "empty", ""));
    ck_assert_str_eq(nb_metadata_get(&m, "empty"), "");

    /* limits: 63-byte keys, 255-byte values, NB_METADATA_MAX_ENTRIES (128) entries */
    char key[65], value[257];
    memset(key, 'k', 63);
    key[63] = '\0';
    memset(value, 'v', 255);
    value[255] = '\0';
    ck_assert_ok(nb_metadata_set(&m, key, value));
    ck_assert_str_eq(nb_metadata_get(&m, key), value);
    key[63] = 'k';
    key[64] = '\0';
    ck_assert_int_eq(nb_metadata_set(&m, key, "x"), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_metadata_set", "64 bytes", "63 allowed");
    ck_assert_ptr_null(nb_metadata_get(&m, key)); /* a 64-byte key never matches a stored 63-byte prefix */
    value[255] = 'v';
    value[256] = '\0';
    ck_assert_int_eq(nb_metadata_set(&m, "big", value), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_metadata_set", "\"big\"", "256 bytes", "255 allowed");
    ck_assert_int_eq(nb_metadata_set(&m, "", "x"), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_metadata_set", "key is empty");
    ck_assert_int_eq(nb_metadata_set(&m, "bad", "\xff"), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_metadata_set", "value", "\"bad\"", "UTF-8");
    ck_assert_int_eq(nb_metadata_set(&m, "\xc0\xaf", "x"), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_metadata_set", "key", "UTF-8");
    ck_assert_int_eq(m.count, 4);
    ck_assert_int_eq(NB_METADATA_MAX_ENTRIES, 128);
    for (int i = m.count; i < NB_METADATA_MAX_ENTRIES; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_ok(nb_metadata_set(&m, k, "x"));
    }
    ck_assert_int_eq(m.count, NB_METADATA_MAX_ENTRIES);
    ck_assert_ok(nb_metadata_set(&m, "k127", "replaced")); /* replacing still works when full */
    ck_assert_int_eq(nb_metadata_set(&m, "one-more", "x"), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_metadata_set", "128 entries", "\"one-more\"");

    ck_assert_int_eq(nb_metadata_set(NULL, "a", "b"), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_metadata_set", "metadata is NULL");
    ck_assert_int_eq(nb_metadata_set(&m, NULL, "b"), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_metadata_set", "key is NULL");
    ck_assert_int_eq(nb_metadata_set(&m, "a", NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_metadata_set", "value is NULL");
    ck_assert_ptr_null(nb_metadata_get(NULL, "a"));
    ck_assert_error(NB_ERR_NULL, "nb_metadata_get", "metadata is NULL");
    ck_assert_ptr_null(nb_metadata_get(&m, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_metadata_get", "key is NULL");
    nb_metadata garbage = {.count = -3};
    ck_assert_int_eq(nb_metadata_set(&garbage, "a", "b"), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_metadata_set", "count -3", "{0}");
    ck_assert_ptr_null(nb_metadata_get(&garbage, "a"));
    ck_assert_error(NB_ERR_ARG, "nb_metadata_get", "count -3");
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Round trips
 * ---------------------------------------------------------------------------------------------- */
/* The tensors the interop check expects (see safetensors_interop.py), plus their list. Returns the list; the
 * tensors are caller-owned and freed with free_list_and_tensors. */
static nb_param_list *interop_list(void)
{
    nb_param_list *list = nb_param_list_new();
    /* w is the transpose of a (3, 2) tensor: non-contiguous */
    float base[6];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) base[j * 2 + i] = (float)(i * 3 + j) * 0.25f - 0.5f;
    nb_tensor *b = nb_from_array(base, NB_SHAPE(3, 2), NB_F32);
    nb_tensor *w = nb_transpose(b, 0, 1);
    nb_free(b);
    ck_assert_tensor(w);
    ck_assert(!nb_is_contiguous(w));
    ck_assert_ok(nb_param_list_add(list, "w", w, false));
    ck_assert_ok(nb_param_list_add(list, "d", T_F64(NB_SHAPE(4), 3.141592653589793, -1e300, 5e-324, -0.0), false));
    ck_assert_ok(nb_param_list_add(list, "idx", T_I64(NB_SHAPE(2, 2), INT64_MIN, INT64_MAX, 0, -1), false));
    ck_assert_ok(nb_param_list_add(list, "mask", nb_from_array((const uint8_t[]){1, 0, 1}, NB_SHAPE(3), NB_BOOL),
                                   true));
    ck_assert_ok(nb_param_list_add(list, "s", nb_scalar(2.5, NB_F64), false));
    ck_assert_ok(nb_param_list_add(list, "e", nb_zeros(NB_SHAPE(0, 3), NB_F32), false));
    ck_assert_ok(nb_param_list_add(list, "step", nb_scalar(42, NB_I64), true));
    return list;
}

static nb_metadata interop_metadata(void)
{
    nb_metadata m = {0};
    ck_assert_ok(nb_metadata_set(&m, "format", "pt"));
    ck_assert_ok(nb_metadata_set(&m, "note", "h\xc3\xa9llo \"quoted\"\n"));
    return m;
}

START_TEST(round_trip_all_dtypes)
{
    nb_param_list *list = interop_list();
    nb_metadata meta = interop_metadata();
    const char *path = in_tmp("rt.safetensors");
    ck_assert_ok(nb_save_safetensors(path, list, &meta));
    ck_assert_int_eq(dir_entries(tmpdir), 1); /* no temporary file left behind */

    /* nb_read_safetensors: header order, dtypes, shapes and bits; caller-owned even inside a scope */
    nb_metadata got = {.count = 99};
    nb_scope_begin();
    nb_param_list *read = nb_read_safetensors(path, &got);
    nb_scope_end();
    ck_assert_msg(read != NULL, "%s", nb_last_error());
    ck_assert_int_eq(read->count, list->count);
    for (int i = 0; i < list->count; i++) {
        ck_assert_str_eq(read->items[i].name, list->items[i].name);
        ck_assert(nb_is_valid(read->items[i].tensor));
        ck_assert(!read->items[i].is_buffer);
        ck_assert_same_tensor(read->items[i].tensor, list->items[i].tensor);
    }
    ck_assert(signbit(nb_get_flat(nb_param_list_find(read, "d"), 3)));
    ck_assert_int_eq(nb_ndim(nb_param_list_find(read, "s")), 0);
    ck_assert_shape(nb_param_list_find(read, "e"), 0, 3);
    ck_assert_int_eq(got.count, 2);
    ck_assert_str_eq(nb_metadata_get(&got, "format"), "pt");
    ck_assert_str_eq(nb_metadata_get(&got, "note"), "h\xc3\xa9llo \"quoted\"\n");

    /* nb_load_safetensors into zeroed tensors of the same shapes, one of them a non-contiguous view */
    nb_param_list *into = nb_param_list_new();
    nb_tensor *storage = nb_zeros(NB_SHAPE(3, 2), NB_F32);
    nb_tensor *view = nb_transpose(storage, 0, 1);
    ck_assert_ok(nb_param_list_add(into, "w", view, false));
    for (int i = 1; i < list->count; i++)
        ck_assert_ok(nb_param_list_add(into, list->items[i].name, nb_zeros_like(list->items[i].tensor), false));
    nb_load_report rep;
    nb_metadata got2 = {0};
    ck_assert_ok(nb_load_safetensors(path, into, NB_LOAD_STRICT, &rep, &got2));
    ck_assert_int_eq(rep.loaded, list->count);
    ck_assert_int_eq(rep.missing + rep.unexpected + rep.mismatched, 0);
    ck_assert_str_eq(rep.details, "");
    ck_assert_int_eq(got2.count, 2);
    for (int i = 0; i < list->count; i++) ck_assert_same_tensor(into->items[i].tensor, list->items[i].tensor);
    /* the view wrote through to its storage: storage[j][i] = w[i][j] */
    ck_assert_values(storage, 0, -0.5, 0.25, -0.25, 0.5, 0, 0.75);

    nb_free(storage);
    free_list_and_tensors(into);
    free_list_and_tensors(read);
    free_list_and_tensors(list);
}
END_TEST

START_TEST(round_trip_empty_list_and_sliced_views)
{
    /* no tensors, no metadata: "{}" padded to 8 bytes */
    nb_param_list *list = nb_param_list_new();
    const char *path = in_tmp("empty.safetensors");
    ck_assert_ok(nb_save_safetensors(path, list, NULL));
    size_t len;
    unsigned char *bytes = slurp(path, &len);
    ck_assert_int_eq(len, 16);
    ck_assert_mem_eq(bytes, "\x08\0\0\0\0\0\0\0{}      ", 16);
    free(bytes);
    nb_metadata m = {.count = 5};
    nb_param_list *read = nb_read_safetensors(path, &m);
    ck_assert_ptr_nonnull(read);
    ck_assert_int_eq(read->count, 0);
    ck_assert_int_eq(m.count, 0);
    nb_param_list_free(read);
    ck_assert_ok(nb_load_safetensors(path, list, NB_LOAD_STRICT, NULL, NULL));

    /* a strided slice and an expanded (stride-0) tensor are written as their row-major values */
    nb_tensor *base = nb_arange(0, 10, 1, NB_F64);
    nb_tensor *sl = nb_slice(base, 0, 1, 9, 3); /* 1, 4, 7 */
    nb_tensor *ex = nb_expand(T_I64(NB_SHAPE(1, 2), 5, -6), NB_SHAPE(3, 2));
    ck_assert_tensor(sl);
    ck_assert_tensor(ex);
    ck_assert_ok(nb_param_list_add(list, "slice", sl, false));
    ck_assert_ok(nb_param_list_add(list, "expanded", ex, false));
    ck_assert_ok(nb_save_safetensors(path, list, NULL));
    read = nb_read_safetensors(path, NULL);
    ck_assert_ptr_nonnull(read);
    ck_assert_values(nb_param_list_find(read, "slice"), 0, 1, 4, 7);
    ck_assert_shape(nb_param_list_find(read, "expanded"), 3, 2);
    ck_assert_values(nb_param_list_find(read, "expanded"), 0, 5, -6, 5, -6, 5, -6);
    free_list_and_tensors(read);
    nb_free(base);
    free_list_and_tensors(list);
}
END_TEST

/* The exact bytes of a tiny checkpoint, computed by hand: the header length 192 (188 bytes of JSON and 4 spaces,
 * so that 8 + 192 is a multiple of 8), the header with __metadata__ first and the tensors in list order, then
 * 1.0f, -2.0f, the i64 7 and the bool 1, little-endian, without gaps. */
START_TEST(byte_exact_layout)
{
    nb_param_list *list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(list, "a", T_F32(NB_SHAPE(2), 1, -2), false));
    ck_assert_ok(nb_param_list_add(list, "b", nb_scalar(7, NB_I64), false));
    ck_assert_ok(nb_param_list_add(list, "m", nb_from_array((const uint8_t[]){1}, NB_SHAPE(1), NB_BOOL), true));
    nb_metadata meta = {0};
    ck_assert_ok(nb_metadata_set(&meta, "k", "v"));
    const char *path = in_tmp("tiny.safetensors");
    ck_assert_ok(nb_save_safetensors(path, list, &meta));

    static const char header[] = "{\"__metadata__\":{\"k\":\"v\"},"
                                 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                 "\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
                                 "\"m\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[16,17]}"
                                 "}    ";
    static const unsigned char data[17] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, /* 1.0f, -2.0f */
                                           0x07, 0, 0, 0, 0, 0, 0, 0,                      /* 7 */
                                           0x01};
    ck_assert_int_eq(sizeof header - 1, 192);
    size_t len;
    unsigned char *bytes = slurp(path, &len);
    ck_assert_int_eq(len, 8 + 192 + 17);
    ck_assert_mem_eq(bytes, "\xc0\0\0\0\0\0\0\0", 8);
    ck_assert_msg(memcmp(bytes + 8, header, 192) == 0, "header is %.192s", (const char *)bytes + 8);
    ck_assert_mem_eq(bytes + 200, data, 17);
    free(bytes);
    free_list_and_tensors(list);
}
END_TEST

/* Names with quotes, backslashes, control characters and non-ASCII survive the JSON escaping both ways. */
START_TEST(names_with_escapes)
{
    const char *name = "q\"b\\s\n\t\x01 \xc3\xa9\xf0\x9f\x98\x80";
    nb_param_list *list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(list, name, nb_scalar(1.5, NB_F32), false));
    const char *path = in_tmp("names.safetensors");
    ck_assert_ok(nb_save_safetensors(path, list, NULL));
    size_t len;
    unsigned char *bytes = slurp(path, &len);
    ck_assert_ptr_nonnull(strstr((char *)bytes + 8, "\"q\\\"b\\\\s\\n\\t\\u0001 \xc3\xa9\xf0\x9f\x98\x80\""));
    free(bytes);
    nb_param_list *read = nb_read_safetensors(path, NULL);
    ck_assert_ptr_nonnull(read);
    ck_assert_str_eq(read->items[0].name, name);
    free_list_and_tensors(read);
    free_list_and_tensors(list);

    /* \u escapes, including a surrogate pair, decode to UTF-8 */
    write_st(path, "{\"a\\u00e9\\ud83d\\ude00\\/\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
             (const float[]){3}, 4);
    read = nb_read_safetensors(path, NULL);
    ck_assert_msg(read != NULL, "%s", nb_last_error());
    ck_assert_str_eq(read->items[0].name, "a\xc3\xa9\xf0\x9f\x98\x80/");
    free_list_and_tensors(read);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Interoperability with an independent reader and writer (Python, numpy, json, struct)
 * ---------------------------------------------------------------------------------------------- */
static const char *interop_script(void)
{
    const char *rel = "reference/safetensors_interop.py";
    char src_dir[512];
    snprintf(src_dir, sizeof src_dir, "%s", __FILE__);
    char *slash = strrchr(src_dir, '/');
    if (slash) *slash = '\0';
    else strcpy(src_dir, ".");
    /* __FILE__ is absolute, or relative to the build root, which is the working directory or the executable's
     * directory's parent (meson builds tests/ below the root). */
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char exe_dir[512] = ".";
    if (n > 0) {
        exe[n] = '\0';
        char *s = strrchr(exe, '/');
        if (s) *s = '\0';
        snprintf(exe_dir, sizeof exe_dir, "%s", exe);
    }
    static char candidates[3][2048];
    snprintf(candidates[0], sizeof candidates[0], "%s/%s", src_dir, rel);
    snprintf(candidates[1], sizeof candidates[1], "%s/../%s/%s", exe_dir, src_dir, rel);
    snprintf(candidates[2], sizeof candidates[2], "%s/../../tests/%s", exe_dir, rel);
    for (int i = 0; i < 3; i++)
        if (access(candidates[i], R_OK) == 0) return candidates[i];
    return NULL;
}

/* Debian's python3 with numpy, or NULL (after saying why) to skip. */
static const char *python_with_numpy(void)
{
    static const char *python = "/usr/bin/python3";
    if (access(python, X_OK) != 0) {
        fprintf(stderr, "SKIP: %s not found; the Python interop half of test_checkpoint was not run\n", python);
        return NULL;
    }
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIP: numpy is not installed for %s; the Python interop half was not run\n", python);
        return NULL;
    }
    return python;
}

static int run_script(const char *python, const char *mode, const char *path)
{
    const char *script = interop_script();
    ck_assert_msg(script != NULL, "tests/reference/safetensors_interop.py not found from %s", __FILE__);
    char cmd[8192];
    int len = snprintf(cmd, sizeof cmd, "%s '%s' %s '%s'", python, script, mode, path);
    ck_assert_msg(len > 0 && (size_t)len < sizeof cmd, "command line too long");
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

START_TEST(interop_python_reads_nabla)
{
    const char *python = python_with_numpy();
    if (!python) return;
    nb_param_list *list = interop_list();
    nb_metadata meta = interop_metadata();
    const char *path = in_tmp("from_nabla.safetensors");
    ck_assert_ok(nb_save_safetensors(path, list, &meta));
    ck_assert_int_eq(run_script(python, "check", path), 0);
    free_list_and_tensors(list);
}
END_TEST

START_TEST(interop_nabla_reads_python)
{
    const char *python = python_with_numpy();
    if (!python) return;
    const char *path = in_tmp("from_python.safetensors");
    ck_assert_int_eq(run_script(python, "write", path), 0);

    nb_metadata meta = {0};
    nb_param_list *read = nb_read_safetensors(path, &meta);
    ck_assert_msg(read != NULL, "%s", nb_last_error());
    const char *names[] = {"layer\xc3\xa9.w", "b64", "i", "m", "z", "empty"};
    ck_assert_int_eq(read->count, 6);
    for (int i = 0; i < 6; i++) ck_assert_str_eq(read->items[i].name, names[i]);
    nb_tensor *w = read->items[0].tensor;
    ck_assert_int_eq(nb_dtype_of(w), NB_F32);
    ck_assert_shape(w, 2, 2);
    ck_assert_values(w, 0, 1.5, -2, 3.25, 4);
    nb_tensor *b64 = read->items[1].tensor;
    ck_assert_int_eq(nb_dtype_of(b64), NB_F64);
    ck_assert(nb_get_flat(b64, 0) == 0.1 && nb_get_flat(b64, 1) == 0.2 && nb_get_flat(b64, 2) == 1e-310);
    int64_t ints[2];
    ck_assert_ok(nb_to_array(read->items[2].tensor, ints, 2, NB_I64));
    ck_assert(ints[0] == (int64_t)1 << 62 && ints[1] == -3);
    ck_assert_int_eq(nb_dtype_of(read->items[3].tensor), NB_BOOL);
    ck_assert_values(read->items[3].tensor, 0, 1, 0, 0, 1);
    ck_assert_int_eq(nb_ndim(read->items[4].tensor), 0);
    ck_assert_values(read->items[4].tensor, 0, 7);
    ck_assert_shape(read->items[5].tensor, 0);
    ck_assert_int_eq(nb_dtype_of(read->items[5].tensor), NB_F64);
    ck_assert_int_eq(meta.count, 2);
    ck_assert_str_eq(nb_metadata_get(&meta, "source"), "numpy");
    ck_assert_str_eq(nb_metadata_get(&meta, "quote"), "a\"b");

    /* strict load into a list built in another order */
    nb_param_list *into = nb_param_list_new();
    for (int i = 5; i >= 0; i--)
        ck_assert_ok(nb_param_list_add(into, names[i], nb_zeros_like(read->items[i].tensor), false));
    nb_load_report rep;
    ck_assert_ok(nb_load_safetensors(path, into, NB_LOAD_STRICT, &rep, NULL));
    ck_assert_int_eq(rep.loaded, 6);
    for (int i = 0; i < 6; i++) ck_assert_same_tensor(nb_param_list_find(into, names[i]), read->items[i].tensor);
    free_list_and_tensors(into);
    free_list_and_tensors(read);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Strict and partial loading
 * ---------------------------------------------------------------------------------------------- */
/* File: a (2) f32 = 1, 2; c (4) f32; d (1) f64. Model: a (2) f32, b (3) f32, c (2, 2) f32. */
static void mismatch_fixture(const char *path, nb_param_list **model)
{
    nb_param_list *file = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(file, "a", T_F32(NB_SHAPE(2), 1, 2), false));
    ck_assert_ok(nb_param_list_add(file, "c", T_F32(NB_SHAPE(4), 1, 2, 3, 4), false));
    ck_assert_ok(nb_param_list_add(file, "d", T_F64(NB_SHAPE(1), 9), false));
    ck_assert_ok(nb_save_safetensors(path, file, NULL));
    free_list_and_tensors(file);
    *model = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(*model, "a", nb_full(NB_SHAPE(2), -1, NB_F32), false));
    ck_assert_ok(nb_param_list_add(*model, "b", nb_full(NB_SHAPE(3), -1, NB_F32), false));
    ck_assert_ok(nb_param_list_add(*model, "c", nb_full(NB_SHAPE(2, 2), -1, NB_F32), false));
}

START_TEST(strict_mode_rejects_every_problem)
{
    const char *path = in_tmp("mismatch.safetensors");
    nb_param_list *model;
    mismatch_fixture(path, &model);
    nb_load_report rep;
    nb_metadata meta = {.count = 7};
    ck_assert_int_eq(nb_load_safetensors(path, model, NB_LOAD_STRICT, &rep, &meta), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_load_safetensors", path, "1 missing, 1 unexpected, 1 mismatched",
                    "nothing was loaded", "missing b: model (3) f32", "mismatch c: file (4) f32, model (2, 2) f32",
                    "unexpected d: file (1) f64");
    /* nothing was written, not even the tensor that matched */
    ck_assert_values(nb_param_list_find(model, "a"), 0, -1, -1);
    ck_assert_int_eq(meta.count, 7);
    ck_assert_int_eq(rep.loaded, 0);
    ck_assert_int_eq(rep.missing, 1);
    ck_assert_int_eq(rep.unexpected, 1);
    ck_assert_int_eq(rep.mismatched, 1);
    ck_assert_str_eq(rep.details, "missing b: model (3) f32\n"
                                  "mismatch c: file (4) f32, model (2, 2) f32\n"
                                  "unexpected d: file (1) f64");
    /* a report is optional */
    ck_assert_int_eq(nb_load_safetensors(path, model, NB_LOAD_STRICT, NULL, NULL), NB_ERR_SHAPE);

    /* one problem is enough; f64 data never loads silently into an f32 parameter */
    nb_param_list *one = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(one, "a", nb_zeros(NB_SHAPE(2), NB_F32), false));
    ck_assert_ok(nb_param_list_add(one, "c", nb_zeros(NB_SHAPE(4), NB_F32), false));
    ck_assert_ok(nb_param_list_add(one, "d", nb_zeros(NB_SHAPE(1), NB_F32), false));
    ck_assert_int_eq(nb_load_safetensors(path, one, NB_LOAD_STRICT, &rep, NULL), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "0 missing, 0 unexpected, 1 mismatched", "mismatch d: file (1) f64, model (1) f32");
    ck_assert_str_eq(rep.details, "mismatch d: file (1) f64, model (1) f32");
    ck_assert_values(nb_param_list_find(one, "a"), 0, 0, 0);
    free_list_and_tensors(one);
    free_list_and_tensors(model);
}
END_TEST

START_TEST(partial_mode_loads_matches_and_reports)
{
    const char *path = in_tmp("mismatch.safetensors");
    nb_param_list *model;
    mismatch_fixture(path, &model);
    nb_load_report rep;
    nb_clear_error();
    ck_assert_ok(nb_load_safetensors(path, model, NB_LOAD_PARTIAL, &rep, NULL));
    ck_assert_int_eq(rep.loaded, 1);
    ck_assert_int_eq(rep.missing, 1);
    ck_assert_int_eq(rep.unexpected, 1);
    ck_assert_int_eq(rep.mismatched, 1);
    ck_assert_str_eq(rep.details, "missing b: model (3) f32\n"
                                  "mismatch c: file (4) f32, model (2, 2) f32\n"
                                  "unexpected d: file (1) f64");
    ck_assert_values(nb_param_list_find(model, "a"), 0, 1, 2);
    ck_assert_values(nb_param_list_find(model, "b"), 0, -1, -1, -1);
    ck_assert_values(nb_param_list_find(model, "c"), 0, -1, -1, -1, -1);
    /* an empty list loads nothing and reports every tensor of the file */
    nb_param_list *none = nb_param_list_new();
    ck_assert_ok(nb_load_safetensors(path, none, NB_LOAD_PARTIAL, &rep, NULL));
    ck_assert_int_eq(rep.loaded, 0);
    ck_assert_int_eq(rep.unexpected, 3);
    ck_assert_str_eq(rep.details, "unexpected a: file (2) f32\nunexpected c: file (4) f32\nunexpected d: file (1) f64");
    nb_param_list_free(none);
    free_list_and_tensors(model);
}
END_TEST

/* Reports and messages stay bounded however many problems there are, and say how many lines were left out. */
START_TEST(long_reports_are_summarized)
{
    const char *path = in_tmp("few.safetensors");
    nb_param_list *empty = nb_param_list_new();
    ck_assert_ok(nb_save_safetensors(path, empty, NULL));
    nb_param_list_free(empty);
    nb_param_list *model = nb_param_list_new();
    nb_tensor *t = nb_zeros(NB_SHAPE(1), NB_F32);
    for (int i = 0; i < 200; i++) {
        char name[NB_NAME_MAX];
        snprintf(name, sizeof name, "layer%03d.a_rather_long_parameter_name_to_fill_the_report", i);
        ck_assert_ok(nb_param_list_add(model, name, t, false));
    }
    nb_load_report rep;
    ck_assert_ok(nb_load_safetensors(path, model, NB_LOAD_PARTIAL, &rep, NULL));
    ck_assert_int_eq(rep.missing, 200);
    size_t len = strlen(rep.details);
    ck_assert(len < sizeof rep.details);
    ck_assert_ptr_nonnull(strstr(rep.details, "missing layer000.a_rather_long_parameter_name_to_fill_the_report: "
                                              "model (1) f32\n"));
    const char *tail = strstr(rep.details, "\n... and ");
    ck_assert_ptr_nonnull(tail);
    int more = atoi(tail + 9);
    int shown = 0;
    for (const char *p = rep.details; (p = strstr(p, "missing ")); p++) shown++;
    ck_assert_int_eq(shown + more, 200);
    ck_assert_int_eq(nb_load_safetensors(path, model, NB_LOAD_STRICT, &rep, NULL), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "200 missing", "; ... and ");
    nb_param_list_free(model);
    nb_free(t);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Corrupt files
 * ---------------------------------------------------------------------------------------------- */
/* A file that nb_read_safetensors and nb_load_safetensors (even partial, into an empty list) both reject with
 * NB_ERR_FORMAT, with a message naming the path and containing fragment. */
static void expect_corrupt_bytes(const char *header, size_t hlen, size_t dlen, const char *fragment)
{
    const char *path = in_tmp("corrupt.safetensors");
    unsigned char *zeros = calloc(1, dlen + 1);
    write_raw(path, hlen, header, hlen, zeros, dlen);
    free(zeros);
    ck_assert_ptr_null(nb_read_safetensors(path, NULL));
    ck_assert_msg(nb_last_status() == NB_ERR_FORMAT && strstr(nb_last_error(), fragment) &&
                      strstr(nb_last_error(), path) && strstr(nb_last_error(), "nb_read_safetensors"),
                  "header %.80s: expected NB_ERR_FORMAT with \"%s\", got %s: %s", header, fragment,
                  nb_status_name(nb_last_status()), nb_last_error());
    nb_param_list *none = nb_param_list_new();
    ck_assert_int_eq(nb_load_safetensors(path, none, NB_LOAD_PARTIAL, NULL, NULL), NB_ERR_FORMAT);
    ck_assert_msg(strstr(nb_last_error(), fragment) != NULL, "%s", nb_last_error());
    nb_param_list_free(none);
}

static void expect_corrupt(const char *header, size_t dlen, const char *fragment)
{
    expect_corrupt_bytes(header, strlen(header), dlen, fragment);
}

START_TEST(invalid_json_is_rejected)
{
    expect_corrupt("{\"a\":}", 0, "at byte 5: unexpected '}', expected a value");
    expect_corrupt("{\"a\" 1}", 0, "at byte 5: expected ':' after an object key, found '1'");
    expect_corrupt("{\"a\":1,}", 0, "expected a string key in an object, found '}'");
    expect_corrupt("{\"a\":1 \"b\":2}", 0, "expected ',' or '}' in an object");
    expect_corrupt("{\"a\":[1,2}", 0, "expected ',' or ']' in an array");
    expect_corrupt("{\"a\":\"x", 0, "unterminated string");
    expect_corrupt("{\"a\\", 0, "unterminated string");
    expect_corrupt("{\"a\\x\":1}", 0, "invalid escape '\\x'");
    expect_corrupt("{\"a\\u12\":1}", 0, "4 hexadecimal digits");
    expect_corrupt("{\"a\\u12", 0, "truncated \\u escape");
    expect_corrupt("{\"\\ud800\":1}", 0, "high surrogate without its low half");
    expect_corrupt("{\"\\ud800\\u0041\":1}", 0, "high surrogate without its low half");
    expect_corrupt("{\"\\udc00\":1}", 0, "lone low surrogate");
    expect_corrupt("{\"a\tb\":1}", 0, "control character 0x09");
    expect_corrupt_bytes("{\"a\0b\":1}", 8, 0, "control character 0x00");
    expect_corrupt("{\"\xff\":1}", 0, "invalid UTF-8");
    expect_corrupt("{\"\xc0\xaf\":1}", 0, "invalid UTF-8");      /* overlong '/' */
    expect_corrupt("{\"\xed\xa0\x80\":1}", 0, "invalid UTF-8");  /* an encoded surrogate */
    expect_corrupt("{\"\xf4\x90\x80\x80\":1}", 0, "invalid UTF-8"); /* beyond U+10FFFF */
    expect_corrupt("{\"\xe2\x82\":1}", 0, "invalid UTF-8");      /* cut sequence */
    expect_corrupt("{\"a\":NaN}", 0, "unexpected 'N', expected a value");
    expect_corrupt("{\"a\":tru}", 0, "expected a value");
    expect_corrupt("{\"a\":01}", 0, "leading zero");
    expect_corrupt("{\"a\":-}", 0, "'-' not followed by a digit");
    expect_corrupt("{\"a\":1.}", 0, "no digit after a decimal point");
    expect_corrupt("{\"a\":1e+}", 0, "no digit in an exponent");
    expect_corrupt("{} x", 0, "at byte 3: unexpected 'x' after the end of the JSON value");
    expect_corrupt("{}\x01", 0, "unexpected byte 0x01 after the end");
    expect_corrupt("  ", 0, "the text ends where a value was expected");
    expect_corrupt("{\"a\":{\"b\":{\"c\":1", 0, "expected ',' or '}' in an object, found the end of the text");
    char deep[1001];
    memset(deep, '[', 1000);
    deep[1000] = '\0';
    expect_corrupt(deep, 0, "nested deeper than 8 levels");
    expect_corrupt("[]", 0, "the header is an array, not a JSON object");
    expect_corrupt("\"x\"", 0, "the header is a string, not a JSON object");
    expect_corrupt("null", 0, "the header is null, not a JSON object");
}
END_TEST

#define F32_1 "\"dtype\":\"F32\",\"shape\":[1]"

START_TEST(invalid_entries_are_rejected)
{
    /* types and fields */
    expect_corrupt("{\"t\":1}", 0, "tensor 't' is a number, not an object with dtype, shape and data_offsets");
    expect_corrupt("{\"t\":{" F32_1 "}}", 0, "tensor 't' has no 'data_offsets' field");
    expect_corrupt("{\"t\":{\"shape\":[],\"data_offsets\":[0,4]}}", 4, "tensor 't' has no 'dtype' field");
    expect_corrupt("{\"t\":{" F32_1 ",\"data_offsets\":[0,4],\"x\":1}}", 4, "tensor 't' has an unknown field 'x'");
    expect_corrupt("{\"t\":{" F32_1 ",\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "field 'dtype' twice");
    expect_corrupt("{\"t\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is a number, not a string");
    expect_corrupt("{\"t\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"F33\"");
    expect_corrupt("{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"f32\"");
    expect_corrupt("{\"\":{" F32_1 ",\"data_offsets\":[0,4]}}", 4, "a tensor has an empty name");
    expect_corrupt("{\"a\\u0000b\":{" F32_1 ",\"data_offsets\":[0,4]}}", 4, "tensor name 'a?b' contains a NUL");
    /* shapes */
    expect_corrupt("{\"t\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8,
                   "tensor 't': shape is a string, not an array");
    expect_corrupt("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
                   "shape entry is a string, not an integer");
    expect_corrupt("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape entry -1 is negative");
    expect_corrupt("{\"t\":{\"dtype\":\"F32\",\"shape\":[-0],\"data_offsets\":[0,0]}}", 0, "shape entry -0 is negative");
    expect_corrupt("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
                   "shape entry 1.5 is not an integer");
    expect_corrupt("{\"t\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4,
                   "shape entry 1e0 is not an integer");
    expect_corrupt("{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4,
                   "shape entry 99999999999999999999 is too large");
    expect_corrupt("{\"t\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,4]}}", 4,
                   "shape entry 9223372036854775808 is too large");
    expect_corrupt("{\"t\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}", 0,
                   "shape is too large");
    expect_corrupt("{\"t\":{\"dtype\":\"F64\",\"shape\":[1152921504606846976,0],\"data_offsets\":[0,0]}}", 0,
                   "shape is too large");
    /* Found by fuzzing: an empty tensor whose other sizes overflow the strides (UB in the stride computation). */
    expect_corrupt("{\"t\":{\"dtype\":\"F32\",\"shape\":[0,1099511627776,1099511627776],\"data_offsets\":[0,0]}}", 0,
                   "shape is too large");
    expect_corrupt("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}", 0,
                   "shape is too large");
    expect_corrupt("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
                   "tensor 't' has 9 dimensions; nabla supports at most 8");
    /* offsets */
    expect_corrupt("{\"t\":{" F32_1 ",\"data_offsets\":[0]}}", 4, "data_offsets must be an array of 2 integers, found an array of length 1");
    expect_corrupt("{\"t\":{" F32_1 ",\"data_offsets\":[0,4,8]}}", 8, "found an array of length > 2");
    expect_corrupt("{\"t\":{" F32_1 ",\"data_offsets\":{}}}", 4, "found an object");
    expect_corrupt("{\"t\":{" F32_1 ",\"data_offsets\":[-1,3]}}", 4, "data_offsets entry -1 is negative");
    expect_corrupt("{\"t\":{" F32_1 ",\"data_offsets\":[0,null]}}", 4, "data_offsets entry is null, not an integer");
    expect_corrupt("{\"t\":{" F32_1 ",\"data_offsets\":[0,18446744073709551616]}}", 4,
                   "data_offsets entry 18446744073709551616 is too large");
    expect_corrupt("{\"t\":{" F32_1 ",\"data_offsets\":[8,4]}}", 8, "data_offsets [8, 4] end before they begin");
    expect_corrupt("{\"t\":{" F32_1 ",\"data_offsets\":[0,8]}}", 4,
                   "data_offsets [0, 8] extend past the 4 bytes of data");
    expect_corrupt("{\"t\":{" F32_1 ",\"data_offsets\":[18446744073709551611,18446744073709551615]}}", 4,
                   "extend past the 4 bytes of data");
    expect_corrupt("{\"t\":{" F32_1 ",\"data_offsets\":[0,8]}}", 8, "data_offsets [0, 8] hold 8 bytes, but F32 (1) needs 4");
    expect_corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   12, "tensors 'a' and 'b' overlap: bytes [0, 8) and [4, 12)");
    expect_corrupt("{\"a\":{" F32_1 ",\"data_offsets\":[0,4]},\"b\":{" F32_1 ",\"data_offsets\":[0,4]}}", 4,
                   "tensors 'a' and 'b' overlap");
    expect_corrupt("{\"a\":{" F32_1 ",\"data_offsets\":[0,4]},\"b\":{" F32_1 ",\"data_offsets\":[8,12]}}", 12,
                   "bytes [4, 8) of the data belong to no tensor (gap before tensor 'b')");
    expect_corrupt("{\"a\":{" F32_1 ",\"data_offsets\":[4,8]}}", 8, "bytes [0, 4) of the data belong to no tensor");
    expect_corrupt("{\"a\":{" F32_1 ",\"data_offsets\":[0,4]}}", 5, "the data section has 5 bytes but the tensors end at byte 4");
    expect_corrupt("{}", 3, "the data section has 3 bytes but the tensors end at byte 0");
    expect_corrupt("{\"a\":{" F32_1 ",\"data_offsets\":[0,4]},\"a\":{" F32_1 ",\"data_offsets\":[4,8]}}", 8,
                   "tensor 'a' appears twice");
    /* metadata */
    expect_corrupt("{\"__metadata__\":\"x\"}", 0, "\"__metadata__\" is a string, not an object of strings");
    expect_corrupt("{\"__metadata__\":{\"k\":1}}", 0, "metadata entry 'k' is a number, not a string");
    expect_corrupt("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "metadata key 'k' appears twice");
    expect_corrupt("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "\"__metadata__\" appears twice");
}
END_TEST

START_TEST(header_length_is_checked_first)
{
    const char *path = in_tmp("len.safetensors");
    nb_param_list *none = nb_param_list_new();
    /* shorter than the length field */
    spit(path, "\x02\0\0", 3);
    ck_assert_ptr_null(nb_read_safetensors(path, NULL));
    ck_assert_error(NB_ERR_FORMAT, "nb_read_safetensors", path, "the file has 3 bytes, fewer than the 8");
    /* more than the file holds; 2^62 and 2^64 - 1 must not be allocated */
    const uint64_t lengths[] = {3, (uint64_t)1 << 62, UINT64_MAX};
    const char *shown[] = {"header length 3 exceeds the 2 bytes", "header length 4611686018427387904 exceeds",
                           "header length 18446744073709551615 exceeds"};
    for (int i = 0; i < 3; i++) {
        write_raw(path, lengths[i], "{}", 2, NULL, 0);
        ck_assert_ptr_null(nb_read_safetensors(path, NULL));
        ck_assert_error(NB_ERR_FORMAT, "nb_read_safetensors", path, shown[i], "truncated, or not a safetensors file");
        ck_assert_int_eq(nb_load_safetensors(path, none, NB_LOAD_PARTIAL, NULL, NULL), NB_ERR_FORMAT);
        ck_assert_error(NB_ERR_FORMAT, "nb_load_safetensors", shown[i]);
    }
    /* too short to be an object */
    write_raw(path, 0, "", 0, NULL, 0);
    ck_assert_ptr_null(nb_read_safetensors(path, NULL));
    ck_assert_error(NB_ERR_FORMAT, "invalid JSON header (0 bytes)", "the text ends where a value was expected");
    nb_param_list_free(none);
}
END_TEST

/* Every prefix of a valid file is rejected cleanly, by both readers, and leaves the model untouched. */
START_TEST(truncated_at_every_length)
{
    nb_param_list *list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(list, "w", T_F32(NB_SHAPE(2, 2), 1, 2, 3, 4), false));
    ck_assert_ok(nb_param_list_add(list, "b", T_F64(NB_SHAPE(1), 5), false));
    ck_assert_ok(nb_param_list_add(list, "n", nb_scalar(3, NB_I64), true));
    nb_metadata meta = {0};
    ck_assert_ok(nb_metadata_set(&meta, "k", "v"));
    const char *full = in_tmp("full.safetensors"), *cut = in_tmp("cut.safetensors");
    ck_assert_ok(nb_save_safetensors(full, list, &meta));
    size_t len;
    unsigned char *bytes = slurp(full, &len);
    nb_param_list *model = nb_param_list_new();
    for (int i = 0; i < list->count; i++)
        ck_assert_ok(nb_param_list_add(model, list->items[i].name, nb_zeros_like(list->items[i].tensor), false));
    int64_t live = nb_memory_stats_get().live_tensors;
    for (size_t n = 0; n < len; n++) {
        spit(cut, bytes, n);
        ck_assert_ptr_null(nb_read_safetensors(cut, NULL));
        ck_assert_msg(nb_last_status() == NB_ERR_FORMAT && strstr(nb_last_error(), cut),
                      "length %zu: %s: %s", n, nb_status_name(nb_last_status()), nb_last_error());
        ck_assert_int_eq(nb_load_safetensors(cut, model, NB_LOAD_STRICT, NULL, NULL), NB_ERR_FORMAT);
        ck_assert_int_eq(nb_load_safetensors(cut, model, NB_LOAD_PARTIAL, NULL, NULL), NB_ERR_FORMAT);
    }
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, live);
    for (int i = 0; i < model->count; i++)
        for (int64_t k = 0; k < nb_numel(model->items[i].tensor); k++)
            ck_assert(nb_get_flat(model->items[i].tensor, k) == 0);
    /* and one byte too many */
    bytes = realloc(bytes, len + 1);
    bytes[len] = 0;
    spit(cut, bytes, len + 1);
    ck_assert_int_eq(nb_load_safetensors(cut, model, NB_LOAD_STRICT, NULL, NULL), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "the tensors end at byte");
    /* the whole file loads */
    ck_assert_ok(nb_load_safetensors(full, model, NB_LOAD_STRICT, NULL, NULL));
    ck_assert_values(nb_param_list_find(model, "w"), 0, 1, 2, 3, 4);
    free(bytes);
    free_list_and_tensors(model);
    free_list_and_tensors(list);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Other dtypes: rejected by nb_load_safetensors, converted by nb_read_safetensors
 * ---------------------------------------------------------------------------------------------- */
START_TEST(other_dtypes)
{
    const char *path = in_tmp("dtypes.safetensors");
    /* F16: 1, -2, 65504, 2^-24 (smallest subnormal), inf; BF16: 1, -0.5 */
    static const unsigned char data[] = {
        0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x7c, /* h: F16 (5) */
        0x80, 0x3f, 0x00, 0xbf,                                     /* bf: BF16 (2) */
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x80,             /* i32: I32 (2): -1, INT32_MIN */
        0xff, 0x00,                                                 /* u8: U8 (2): 255, 0 */
        0x80,                                                       /* i8: I8 (1): -128 */
        0x00, 0x80,                                                 /* i16: I16 (1): -32768 */
        0xff, 0xff,                                                 /* u16: U16 (1): 65535 */
        0xff, 0xff, 0xff, 0xff,                                     /* u32: U32 (1): 4294967295 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,             /* u64: U64 (1): INT64_MAX */
    };
    write_st(path,
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[0,10]},"
             "\"bf\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[10,14]},"
             "\"i32\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[14,22]},"
             "\"u8\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[22,24]},"
             "\"i8\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[24,25]},"
             "\"i16\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[25,27]},"
             "\"u16\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[27,29]},"
             "\"u32\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[29,33]},"
             "\"u64\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[33,41]}}",
             data, sizeof data);
    nb_param_list *read = nb_read_safetensors(path, NULL);
    ck_assert_msg(read != NULL, "%s", nb_last_error());
    nb_tensor *h = nb_param_list_find(read, "h");
    ck_assert_int_eq(nb_dtype_of(h), NB_F32);
    ck_assert_values(nb_narrow(h, 0, 0, 4), 0, 1, -2, 65504, ldexp(1, -24));
    ck_assert(isinf(nb_get_flat(h, 4)) && nb_get_flat(h, 4) > 0);
    ck_assert_values(nb_param_list_find(read, "bf"), 0, 1, -0.5);
    int64_t v[2];
    ck_assert_ok(nb_to_array(nb_param_list_find(read, "i32"), v, 2, NB_I64));
    ck_assert(v[0] == -1 && v[1] == INT32_MIN);
    ck_assert_int_eq(nb_dtype_of(nb_param_list_find(read, "u8")), NB_I64);
    ck_assert_values(nb_param_list_find(read, "u8"), 0, 255, 0);
    ck_assert_values(nb_param_list_find(read, "i8"), 0, -128);
    ck_assert_values(nb_param_list_find(read, "i16"), 0, -32768);
    ck_assert_values(nb_param_list_find(read, "u16"), 0, 65535);
    ck_assert_values(nb_param_list_find(read, "u32"), 0, 4294967295.0);
    ck_assert_ok(nb_to_array(nb_param_list_find(read, "u64"), v, 1, NB_I64));
    ck_assert(v[0] == INT64_MAX);
    free_list_and_tensors(read);

    /* loading never converts: the file is refused as a whole, naming the tensor and its dtype */
    nb_param_list *model = nb_param_list_new();
    ck_assert_int_eq(nb_load_safetensors(path, model, NB_LOAD_PARTIAL, NULL, NULL), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_load_safetensors", path, "tensor 'h' has dtype F16",
                    "nabla cannot load into its tensors");
    nb_param_list_free(model);

    /* U64 values beyond i64 and the 8-bit floats are refused by nb_read_safetensors too */
    write_st(path, "{\"u\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
             (const unsigned char[]){0, 0, 0, 0, 0, 0, 0, 0x80}, 8);
    ck_assert_ptr_null(nb_read_safetensors(path, NULL));
    ck_assert_error(NB_ERR_FORMAT, "tensor 'u' (U64) holds 9223372036854775808, more than i64 can represent");
    write_st(path, "{\"f8\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", "\x38", 1);
    ck_assert_ptr_null(nb_read_safetensors(path, NULL));
    ck_assert_error(NB_ERR_FORMAT, "tensor 'f8' has dtype F8_E4M3, which nabla does not support");
    /* bool bytes other than 0 and 1 read as true */
    write_st(path, "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}}", "\x00\x02\xff", 3);
    read = nb_read_safetensors(path, NULL);
    ck_assert_ptr_nonnull(read);
    uint8_t m[3];
    ck_assert_ok(nb_to_array(read->items[0].tensor, m, 3, NB_BOOL));
    ck_assert(m[0] == 0 && m[1] == 1 && m[2] == 1);
    free_list_and_tensors(read);
}
END_TEST

START_TEST(metadata_from_files)
{
    const char *path = in_tmp("meta.safetensors");
    /* more entries than nb_metadata holds: an error only when the caller asks for the metadata */
    char header[4096] = "{\"__metadata__\":{";
    for (int i = 0; i < NB_METADATA_MAX_ENTRIES + 1; i++)
        snprintf(header + strlen(header), sizeof header - strlen(header), "%s\"k%d\":\"v\"", i ? "," : "", i);
    strcat(header, "}}");
    write_st(path, header, NULL, 0);
    nb_metadata m = {0};
    ck_assert_ptr_null(nb_read_safetensors(path, &m));
    ck_assert_error(NB_ERR_FORMAT, "the metadata has 129 entries; nb_metadata holds at most 128", "pass NULL");
    nb_param_list *none = nb_param_list_new();
    ck_assert_int_eq(nb_load_safetensors(path, none, NB_LOAD_STRICT, NULL, &m), NB_ERR_FORMAT);
    ck_assert_ok(nb_load_safetensors(path, none, NB_LOAD_STRICT, NULL, NULL));
    nb_param_list *read = nb_read_safetensors(path, NULL);
    ck_assert_ptr_nonnull(read);
    nb_param_list_free(read);
    /* long keys and values, NUL characters */
    char big[400];
    memset(big, 'x', 300);
    big[300] = '\0';
    snprintf(header, sizeof header, "{\"__metadata__\":{\"k\":\"%s\"}}", big);
    write_st(path, header, NULL, 0);
    ck_assert_int_eq(nb_load_safetensors(path, none, NB_LOAD_STRICT, NULL, &m), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "metadata value for 'k' has 300 bytes; nb_metadata holds at most 255");
    snprintf(header, sizeof header, "{\"__metadata__\":{\"%.70s\":\"v\"}}", big);
    write_st(path, header, NULL, 0);
    ck_assert_int_eq(nb_load_safetensors(path, none, NB_LOAD_STRICT, NULL, &m), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "has 70 bytes; nb_metadata holds 1 to 63");
    write_st(path, "{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", NULL, 0);
    ck_assert_int_eq(nb_load_safetensors(path, none, NB_LOAD_STRICT, NULL, &m), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "metadata entry 'k' contains a NUL character");
    /* an empty object, and a file without metadata, give count 0 */
    m.count = 3;
    write_st(path, "{\"__metadata__\":{}}", NULL, 0);
    ck_assert_ok(nb_load_safetensors(path, none, NB_LOAD_STRICT, NULL, &m));
    ck_assert_int_eq(m.count, 0);
    nb_param_list_free(none);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Argument and I/O errors
 * ---------------------------------------------------------------------------------------------- */
START_TEST(argument_errors)
{
    nb_param_list *list = nb_param_list_new();
    nb_tensor *t = nb_zeros(NB_SHAPE(2), NB_F32);
    ck_assert_ok(nb_param_list_add(list, "t", t, false));
    const char *path = in_tmp("args.safetensors");
    ck_assert_int_eq(nb_save_safetensors(NULL, list, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_save_safetensors", "path is NULL");
    ck_assert_int_eq(nb_save_safetensors(path, NULL, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_save_safetensors", "tensors is NULL");
    ck_assert_int_eq(nb_save_safetensors("", list, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_save_safetensors", "path is empty");
    nb_metadata bad = {.count = NB_METADATA_MAX_ENTRIES + 1};
    ck_assert_int_eq(nb_save_safetensors(path, list, &bad), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_save_safetensors", "count 129", "outside 0..128");
    nb_metadata dup = {.count = 2, .entries = {{"k", "1"}, {"k", "2"}}};
    ck_assert_int_eq(nb_save_safetensors(path, list, &dup), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_save_safetensors", "metadata key 'k' appears twice");
    /* the list's items are public: a caller can break its invariants */
    strcpy(list->items[0].name, "__metadata__");
    ck_assert_int_eq(nb_save_safetensors(path, list, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_save_safetensors", "\"__metadata__\" is reserved");
    strcpy(list->items[0].name, "bad\xff");
    ck_assert_int_eq(nb_save_safetensors(path, list, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_save_safetensors", "name 'bad", "not valid UTF-8");
    strcpy(list->items[0].name, "t");
    ck_assert_ok(nb_param_list_add(list, "u", t, false));
    strcpy(list->items[1].name, "t");
    ck_assert_int_eq(nb_save_safetensors(path, list, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_save_safetensors", "name 't' appears twice");
    strcpy(list->items[1].name, "u"); /* the same tensor under two names is fine */
    ck_assert_ok(nb_save_safetensors(path, list, NULL));
    ck_assert_int_eq(access(path, F_OK), 0);

    ck_assert_int_eq(nb_load_safetensors(NULL, list, NB_LOAD_STRICT, NULL, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_load_safetensors", "path is NULL");
    ck_assert_int_eq(nb_load_safetensors(path, NULL, NB_LOAD_STRICT, NULL, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_load_safetensors", "into is NULL");
    ck_assert_int_eq(nb_load_safetensors(path, list, (nb_load_mode)7, NULL, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_load_safetensors", "mode 7");
    ck_assert_ptr_null(nb_read_safetensors(NULL, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_read_safetensors", "path is NULL");

    /* freed tensors are reported by name, by save and by load */
    nb_free(t);
    ck_assert_int_eq(nb_save_safetensors(in_tmp("other.safetensors"), list, NULL), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_save_safetensors");
    ck_assert_int_eq(access(in_tmp("other.safetensors"), F_OK), -1);
    ck_assert_int_eq(nb_load_safetensors(path, list, NB_LOAD_STRICT, NULL, NULL), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_load_safetensors");
    ck_assert_int_eq(dir_entries(tmpdir), 1);
    nb_param_list_free(list);
}
END_TEST

START_TEST(io_errors)
{
    nb_param_list *list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(list, "t", nb_ones(NB_SHAPE(2), NB_F32), false));
    /* reading what is not there, or not a file */
    const char *missing = in_tmp("missing.safetensors");
    ck_assert_ptr_null(nb_read_safetensors(missing, NULL));
    ck_assert_error(NB_ERR_IO, "nb_read_safetensors", missing, "cannot open", strerror(ENOENT));
    ck_assert_int_eq(nb_load_safetensors(missing, list, NB_LOAD_STRICT, NULL, NULL), NB_ERR_IO);
    ck_assert_error(NB_ERR_IO, "nb_load_safetensors", missing, strerror(ENOENT));
    ck_assert_ptr_null(nb_read_safetensors(tmpdir, NULL));
    ck_assert_error(NB_ERR_IO, "nb_read_safetensors", tmpdir, "not a regular file");
    const char *fifo = in_tmp("fifo");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_ptr_null(nb_read_safetensors(fifo, NULL)); /* refused at once, without waiting for a writer */
    ck_assert_error(NB_ERR_IO, "nb_read_safetensors", fifo, "not a regular file");
    unlink(fifo);
    /* saving into a directory that does not exist */
    const char *nodir = in_tmp("no/such/dir/x.safetensors");
    ck_assert_int_eq(nb_save_safetensors(nodir, list, NULL), NB_ERR_IO);
    ck_assert_error(NB_ERR_IO, "nb_save_safetensors", nodir, "cannot create the temporary file", strerror(ENOENT));
    /* a directory is refused before any temporary file is made */
    const char *dir = in_tmp("taken");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    spit(in_tmp("taken/inside"), "x", 1);
    ck_assert_int_eq(nb_save_safetensors(dir, list, NULL), NB_ERR_IO);
    ck_assert_error(NB_ERR_IO, "nb_save_safetensors", dir, "a directory, not a regular file", "unchanged");
    ck_assert_int_eq(dir_entries(tmpdir), 1);
    ck_assert_int_eq(dir_entries(dir), 1);
    free_list_and_tensors(list);
}
END_TEST

/* A save that fails while writing (the file size limit stands in for a full disk) leaves the previous checkpoint
 * byte-identical and no temporary file behind. */
START_TEST(failed_save_keeps_previous_file)
{
    const char *path = in_tmp("model.safetensors");
    nb_param_list *small = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(small, "w", T_F32(NB_SHAPE(2), 1, 2), false));
    ck_assert_ok(nb_save_safetensors(path, small, NULL));
    size_t before_len;
    unsigned char *before = slurp(path, &before_len);
    ck_assert_int_eq(before_len, 8 + 56 + 8);

    nb_param_list *big = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(big, "w", nb_ones(NB_SHAPE(100000), NB_F32), false));
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(2);
        nb_status st = nb_save_safetensors(path, big, NULL);
        bool ok = st == NB_ERR_IO && strstr(nb_last_error(), path) && strstr(nb_last_error(), strerror(EFBIG)) &&
                  strstr(nb_last_error(), "writing the temporary file");
        if (!ok) fprintf(stderr, "unexpected result %s: %s\n", nb_status_name(st), nb_last_error());
        _exit(ok ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    size_t after_len;
    unsigned char *after = slurp(path, &after_len);
    ck_assert_int_eq(after_len, before_len);
    ck_assert_mem_eq(after, before, before_len);
    ck_assert_int_eq(dir_entries(tmpdir), 1);
    free(after);

    /* without write permission on the directory (only meaningful when not root) */
    if (geteuid() != 0) {
        ck_assert_int_eq(chmod(tmpdir, 0500), 0);
        ck_assert_int_eq(nb_save_safetensors(path, big, NULL), NB_ERR_IO);
        ck_assert_error(NB_ERR_IO, "nb_save_safetensors", path, strerror(EACCES));
        ck_assert_int_eq(chmod(tmpdir, 0700), 0);
        after = slurp(path, &after_len);
        ck_assert_int_eq(after_len, before_len);
        ck_assert_mem_eq(after, before, before_len);
        free(after);
    }
    /* a successful save replaces the file */
    ck_assert_ok(nb_save_safetensors(path, big, NULL));
    after = slurp(path, &after_len);
    ck_assert_int_eq(after_len, 8 + 64 + 400000);
    free(after);
    ck_assert_int_eq(dir_entries(tmpdir), 1);
    free(before);
    free_list_and_tensors(big);
    free_list_and_tensors(small);
}
END_TEST

static mode_t mode_of(const char *path)
{
    struct stat sb;
    ck_assert_msg(stat(path, &sb) == 0, "stat %s: %s", path, strerror(errno));
    return sb.st_mode & 07777;
}

/* A one-tensor list holding the values v0, v1 (the caller frees it with free_list_and_tensors). */
static nb_param_list *pair_list(float v0, float v1)
{
    nb_param_list *list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(list, "w", T_F32(NB_SHAPE(2), v0, v1), false));
    return list;
}

/* The values of tensor "w" in the file at path. */
static void ck_assert_file_holds(const char *path, float v0, float v1)
{
    nb_param_list *read = nb_read_safetensors(path, NULL);
    ck_assert_msg(read != NULL, "%s", nb_last_error());
    ck_assert_values(nb_param_list_find(read, "w"), 0, v0, v1);
    free_list_and_tensors(read);
}

/* Overwriting a checkpoint keeps its permission bits: a private 0600 file must not become world-readable. */
START_TEST(save_keeps_permissions)
{
    mode_t saved_umask = umask(022);
    const char *path = in_tmp("perm.safetensors");
    nb_param_list *list = pair_list(1, 2);
    ck_assert_ok(nb_save_safetensors(path, list, NULL));
    ck_assert_int_eq(mode_of(path), 0644); /* a new file: 0666 less the umask */
    const mode_t modes[] = {0600, 0640, 0400, 0755};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(chmod(path, modes[i]), 0);
        nb_param_list *next = pair_list((float)i, 10);
        ck_assert_ok(nb_save_safetensors(path, next, NULL));
        ck_assert_int_eq(mode_of(path), modes[i]);
        ck_assert_file_holds(path, (float)i, 10);
        free_list_and_tensors(next);
    }
    ck_assert_int_eq(dir_entries(tmpdir), 1);
    umask(saved_umask);
    free_list_and_tensors(list);
}
END_TEST

/* Saving to a symbolic link (latest -> a real checkpoint) updates the file it points to and keeps the link. */
START_TEST(save_through_symbolic_links)
{
    const char *ck = in_tmp("ck.safetensors"), *latest = in_tmp("latest.safetensors");
    nb_param_list *a = pair_list(1, 2), *b = pair_list(3, 4), *c = pair_list(5, 6);
    ck_assert_ok(nb_save_safetensors(ck, a, NULL));
    ck_assert_int_eq(chmod(ck, 0600), 0);
    ck_assert_int_eq(symlink("ck.safetensors", latest), 0); /* relative to the link's directory */
    ck_assert_ok(nb_save_safetensors(latest, b, NULL));
    struct stat sb;
    ck_assert_int_eq(lstat(latest, &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    char target[256];
    ssize_t n = readlink(latest, target, sizeof target - 1);
    ck_assert_int_eq(n, (ssize_t)strlen("ck.safetensors"));
    target[n] = '\0';
    ck_assert_str_eq(target, "ck.safetensors");
    ck_assert_file_holds(ck, 3, 4);
    ck_assert_int_eq(mode_of(ck), 0600); /* the target's permissions, not the link's */
    ck_assert_int_eq(dir_entries(tmpdir), 2);

    /* a chain of links, from another directory, with a relative target climbing out of it */
    ck_assert_int_eq(mkdir(in_tmp("sub"), 0700), 0);
    ck_assert_int_eq(symlink("../latest.safetensors", in_tmp("sub/link")), 0);
    ck_assert_ok(nb_save_safetensors(in_tmp("sub/link"), c, NULL));
    ck_assert_file_holds(ck, 5, 6);
    ck_assert_int_eq(lstat(in_tmp("sub/link"), &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    ck_assert_int_eq(dir_entries(in_tmp("sub")), 1);
    ck_assert_int_eq(dir_entries(tmpdir), 3);

    /* an absolute target */
    const char *abs_link = in_tmp("abs");
    ck_assert_int_eq(symlink(ck, abs_link), 0);
    ck_assert_ok(nb_save_safetensors(abs_link, a, NULL));
    ck_assert_file_holds(ck, 1, 2);

    /* a dangling link whose target's directory exists: the target is created, as writing through it would */
    const char *fresh = in_tmp("sub/fresh.safetensors"), *to_fresh = in_tmp("to_fresh");
    ck_assert_int_eq(symlink("sub/fresh.safetensors", to_fresh), 0);
    ck_assert_ok(nb_save_safetensors(to_fresh, b, NULL));
    ck_assert_file_holds(fresh, 3, 4);
    ck_assert_file_holds(to_fresh, 3, 4);
    ck_assert_int_eq(lstat(to_fresh, &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));

    /* a dangling link into a directory that does not exist: an error naming the link and its target */
    const char *nowhere = in_tmp("nowhere");
    ck_assert_int_eq(symlink("no/such/dir/x.safetensors", nowhere), 0);
    int before = dir_entries(tmpdir);
    ck_assert_int_eq(nb_save_safetensors(nowhere, a, NULL), NB_ERR_IO);
    ck_assert_error(NB_ERR_IO, "nb_save_safetensors", nowhere, "a symbolic link to", "no/such/dir/x.safetensors",
                    strerror(ENOENT));
    ck_assert_int_eq(dir_entries(tmpdir), before);
    ck_assert_int_eq(lstat(nowhere, &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));

    /* a cycle of links */
    const char *loop1 = in_tmp("loop1"), *loop2 = in_tmp("loop2");
    ck_assert_int_eq(symlink("loop2", loop1), 0);
    ck_assert_int_eq(symlink("loop1", loop2), 0);
    ck_assert_int_eq(nb_save_safetensors(loop1, a, NULL), NB_ERR_IO);
    ck_assert_error(NB_ERR_IO, "nb_save_safetensors", loop1, "symbolic link", strerror(ELOOP));
    ck_assert_int_eq(dir_entries(tmpdir), before + 2);

    free_list_and_tensors(a);
    free_list_and_tensors(b);
    free_list_and_tensors(c);
}
END_TEST

/* A file of a = 1s, b = 2s, c = [1, 2, 3], plus "d" = [7, 8] for the disjoint views below. */
static const char *overlap_file(void)
{
    const char *path = in_tmp("overlap.safetensors");
    nb_param_list *list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(list, "a", nb_ones(NB_SHAPE(4), NB_F32), false));
    ck_assert_ok(nb_param_list_add(list, "b", T_F32(NB_SHAPE(2), 2, 2), false));
    ck_assert_ok(nb_param_list_add(list, "c", T_F32(NB_SHAPE(3), 1, 2, 3), false));
    ck_assert_ok(nb_save_safetensors(path, list, NULL));
    free_list_and_tensors(list);
    return path;
}

/* Destinations that share memory would make the result depend on the order of the copies: refused before
 * anything is written. */
START_TEST(load_refuses_overlapping_destinations)
{
    const char *path = overlap_file();
    nb_tensor *w = T_F32(NB_SHAPE(4), 9, 9, 9, 9), *one = T_F32(NB_SHAPE(1), 9);
    nb_tensor *head = nb_narrow(w, 0, 0, 2), *ex = nb_expand(one, NB_SHAPE(3));
    nb_param_list *into = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(into, "a", w, false));
    ck_assert_ok(nb_param_list_add(into, "b", head, false));
    ck_assert_ok(nb_param_list_add(into, "c", ex, false));
    nb_load_report rep;
    ck_assert_int_eq(nb_load_safetensors(path, into, NB_LOAD_STRICT, &rep, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_load_safetensors", path, "nothing was loaded",
                    "'c' is an expanded view: its 3 elements along dim 0", "'a' and 'b' share memory");
    ck_assert_int_eq(rep.loaded, 0);
    ck_assert_values(w, 0, 9, 9, 9, 9);
    ck_assert_values(one, 0, 9);
    ck_assert_int_eq(nb_load_safetensors(path, into, NB_LOAD_PARTIAL, &rep, NULL), NB_ERR_ARG);
    ck_assert_values(w, 0, 9, 9, 9, 9);

    /* each problem alone */
    nb_param_list *only_c = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(only_c, "c", ex, false));
    ck_assert_int_eq(nb_load_safetensors(path, only_c, NB_LOAD_PARTIAL, &rep, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_load_safetensors", "'c' is an expanded view");
    ck_assert(strstr(nb_last_error(), "share memory") == NULL);
    ck_assert_values(one, 0, 9);
    nb_param_list *a_and_b = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(a_and_b, "b", head, false)); /* named in list order whatever the layout */
    ck_assert_ok(nb_param_list_add(a_and_b, "a", w, false));
    ck_assert_int_eq(nb_load_safetensors(path, a_and_b, NB_LOAD_PARTIAL, &rep, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_load_safetensors", "'b' and 'a' share memory");
    ck_assert(strstr(nb_last_error(), "expanded") == NULL);
    ck_assert_values(w, 0, 9, 9, 9, 9);

    /* the same tensor under two names */
    nb_param_list *twice = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(twice, "a", w, false));
    ck_assert_ok(nb_param_list_add(twice, "c", w, false));
    nb_tensor *c4 = T_F32(NB_SHAPE(4), 1, 2, 3, 4);
    nb_param_list *file2 = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(file2, "a", nb_ones(NB_SHAPE(4), NB_F32), false));
    ck_assert_ok(nb_param_list_add(file2, "c", c4, false));
    const char *path2 = in_tmp("twice.safetensors");
    ck_assert_ok(nb_save_safetensors(path2, file2, NULL));
    ck_assert_int_eq(nb_load_safetensors(path2, twice, NB_LOAD_STRICT, NULL, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_load_safetensors", "'a' and 'c' share memory");
    ck_assert_values(w, 0, 9, 9, 9, 9);

    /* only what is written counts: in partial mode an overlapping entry the file does not hold is not a problem */
    nb_param_list *partial = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(partial, "b", head, false));
    ck_assert_ok(nb_param_list_add(partial, "absent", w, false));
    ck_assert_ok(nb_load_safetensors(path, partial, NB_LOAD_PARTIAL, &rep, NULL));
    ck_assert_int_eq(rep.loaded, 1);
    ck_assert_int_eq(rep.missing, 1);
    ck_assert_values(w, 0, 2, 2, 9, 9);

    nb_param_list_free(into);
    nb_param_list_free(only_c);
    nb_param_list_free(a_and_b);
    nb_param_list_free(twice);
    nb_param_list_free(partial);
    free_list_and_tensors(file2);
    nb_free(head);
    nb_free(ex);
    nb_free(w);
    nb_free(one);
}
END_TEST

/* Views of one tensor that do not share an element load correctly, however they interleave in memory. */
START_TEST(load_into_disjoint_views)
{
    nb_tensor *m = nb_zeros(NB_SHAPE(3, 4), NB_F32);
    nb_tensor *left = nb_narrow(m, 1, 0, 2), *right = nb_narrow(m, 1, 2, 2); /* interleaved columns */
    nb_tensor *even = nb_zeros(NB_SHAPE(6), NB_F64);
    nb_tensor *ev = nb_slice(even, 0, 0, 6, 2), *od = nb_slice(even, 0, 1, 6, 2);
    nb_tensor *t = nb_zeros(NB_SHAPE(2, 3), NB_I64);
    nb_tensor *tt = nb_permute(t, 2, (const int[]){1, 0}); /* a transposed destination */
    nb_param_list *file = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(file, "left", T_F32(NB_SHAPE(3, 2), 1, 2, 5, 6, 9, 10), false));
    ck_assert_ok(nb_param_list_add(file, "right", T_F32(NB_SHAPE(3, 2), 3, 4, 7, 8, 11, 12), false));
    ck_assert_ok(nb_param_list_add(file, "even", nb_from_array((const double[]){0, 2, 4}, NB_SHAPE(3), NB_F64),
                                   false));
    ck_assert_ok(nb_param_list_add(file, "odd", nb_from_array((const double[]){1, 3, 5}, NB_SHAPE(3), NB_F64),
                                   false));
    ck_assert_ok(nb_param_list_add(file, "tt", T_I64(NB_SHAPE(3, 2), 1, 4, 2, 5, 3, 6), false));
    const char *path = in_tmp("views.safetensors");
    ck_assert_ok(nb_save_safetensors(path, file, NULL));
    nb_param_list *into = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(into, "left", left, false));
    ck_assert_ok(nb_param_list_add(into, "right", right, false));
    ck_assert_ok(nb_param_list_add(into, "even", ev, false));
    ck_assert_ok(nb_param_list_add(into, "odd", od, false));
    ck_assert_ok(nb_param_list_add(into, "tt", tt, false));
    nb_load_report rep;
    ck_assert_ok(nb_load_safetensors(path, into, NB_LOAD_STRICT, &rep, NULL));
    ck_assert_int_eq(rep.loaded, 5);
    ck_assert_values(m, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
    ck_assert_values(even, 0, 0, 1, 2, 3, 4, 5);
    ck_assert_values(t, 0, 1, 2, 3, 4, 5, 6);

    /* but a step-2 slice and a narrow that meet at one element are refused */
    nb_tensor *mid = nb_narrow(even, 0, 2, 1); /* element 2, which ev also holds */
    nb_param_list *clash = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(clash, "even", ev, false));
    ck_assert_ok(nb_param_list_add(clash, "odd", od, false));
    ck_assert_ok(nb_param_list_add(clash, "mid", mid, false));
    nb_param_list *file2 = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(file2, "mid", nb_from_array((const double[]){-1}, NB_SHAPE(1), NB_F64), false));
    const char *path2 = in_tmp("mid.safetensors");
    ck_assert_ok(nb_save_safetensors(path2, file2, NULL));
    ck_assert_int_eq(nb_load_safetensors(path2, clash, NB_LOAD_PARTIAL, &rep, NULL), NB_OK); /* only mid written */
    ck_assert_values(even, 0, 0, 1, -1, 3, 4, 5);
    ck_assert_ok(nb_param_list_add(file2, "even", nb_from_array((const double[]){7, 7, 7}, NB_SHAPE(3), NB_F64),
                                   false));
    ck_assert_ok(nb_save_safetensors(path2, file2, NULL));
    ck_assert_int_eq(nb_load_safetensors(path2, clash, NB_LOAD_PARTIAL, &rep, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_load_safetensors", "'even' and 'mid' share memory");
    ck_assert(strstr(nb_last_error(), "'odd'") == NULL);
    ck_assert_values(even, 0, 0, 1, -1, 3, 4, 5);

    nb_param_list_free(into);
    nb_param_list_free(clash);
    free_list_and_tensors(file);
    free_list_and_tensors(file2);
    nb_tensor *views[] = {left, right, ev, od, tt, mid, m, even, t};
    for (int i = 0; i < 9; i++) nb_free(views[i]);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * A model
 * ---------------------------------------------------------------------------------------------- */
static nb_module *make_model(uint64_t seed)
{
    nb_generator g;
    nb_generator_seed(&g, seed);
    return nb_sequential_new(3, (nb_module *[]){nb_linear_new(4, 8, true, &g), nb_relu_layer_new(),
                                                nb_linear_new(8, 3, true, &g)});
}

START_TEST(model_round_trip)
{
    nb_module *a = make_model(1), *b = make_model(2);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    nb_param_list *pa = nb_module_parameters(a), *pb = nb_module_parameters(b);
    nb_metadata meta = {0};
    ck_assert_ok(nb_metadata_set(&meta, "epoch", "12"));
    const char *path = in_tmp("mlp.safetensors");
    ck_assert_ok(nb_save_safetensors(path, pa, &meta));

    nb_generator g;
    nb_generator_seed(&g, 7);
    nb_tensor *x = nb_randn(NB_SHAPE(5, 4), 0, 1, NB_F32, &g);
    nb_scope_begin();
    nb_tensor *ya = nb_forward(a, x), *yb = nb_forward(b, x);
    ck_assert(nb_get_flat(ya, 0) != nb_get_flat(yb, 0));
    nb_scope_end();

    int64_t live = nb_memory_stats_get().live_tensors;
    nb_metadata got = {0};
    nb_load_report rep;
    ck_assert_ok(nb_load_safetensors(path, pb, NB_LOAD_STRICT, &rep, &got));
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, live); /* temporaries are gone */
    ck_assert_int_eq(rep.loaded, 4);
    ck_assert_str_eq(nb_metadata_get(&got, "epoch"), "12");
    for (int i = 0; i < pb->count; i++) {
        ck_assert_str_eq(pb->items[i].name, pa->items[i].name);
        ck_assert(nb_requires_grad(pb->items[i].tensor));
        ck_assert_same_tensor(pb->items[i].tensor, pa->items[i].tensor);
    }
    nb_scope_begin();
    ya = nb_forward(a, x);
    yb = nb_forward(b, x);
    ck_assert_same_tensor(ya, yb);
    /* the loaded parameters still train */
    ck_assert_ok(nb_backward(nb_sum(yb, 0, NULL, false)));
    ck_assert_ptr_nonnull(nb_grad(pb->items[0].tensor));
    nb_scope_end();

    /* a model with a different head loads partially */
    nb_generator_seed(&g, 3);
    ck_assert_ok(nb_sequential_set(b, 2, nb_linear_new(8, 5, true, &g)));
    nb_param_list_free(pb);
    pb = nb_module_parameters(b);
    ck_assert_int_eq(nb_load_safetensors(path, pb, NB_LOAD_STRICT, &rep, NULL), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "mismatch 2.weight: file (3, 8) f32, model (5, 8) f32",
                    "mismatch 2.bias: file (3) f32, model (5) f32");
    ck_assert_ok(nb_load_safetensors(path, pb, NB_LOAD_PARTIAL, &rep, NULL));
    ck_assert_int_eq(rep.loaded, 2);
    ck_assert_int_eq(rep.mismatched, 2);
    ck_assert_str_eq(rep.details, "mismatch 2.weight: file (3, 8) f32, model (5, 8) f32\n"
                                  "mismatch 2.bias: file (3) f32, model (5) f32");

    nb_free(x);
    nb_param_list_free(pa);
    nb_param_list_free(pb);
    nb_module_free(a);
    nb_module_free(b);
}
END_TEST

/* Saving over a device node or FIFO must not replace it by a regular file (as root, "--save /dev/null" destroyed
 * the system's /dev/null): it is refused, the node keeps its type and bits, and no temporary file is left. */
static void ck_assert_save_refused(const char *path, const char *target, nb_param_list *list, mode_t type,
                                   const char *kind)
{
    ck_assert_int_eq(nb_save_safetensors(path, list, NULL), NB_ERR_IO);
    ck_assert_error(NB_ERR_IO, "nb_save_safetensors", path, target, kind, "not a regular file", "unchanged");
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & S_IFMT, type);
    ck_assert_int_eq(sb.st_mode & 07777, 0666);
}

START_TEST(save_refuses_special_files)
{
    nb_param_list *list = pair_list(1, 2);
    mode_t mask = umask(0);
    const char *fifo = in_tmp("fifo");
    ck_assert_int_eq(mkfifo(fifo, 0666), 0);
    ck_assert_save_refused(fifo, fifo, list, S_IFIFO, "a FIFO");
    /* through a symbolic link the FIFO at its end is what is checked, and the link stays */
    const char *link = in_tmp("link");
    ck_assert_int_eq(symlink("fifo", link), 0);
    ck_assert_save_refused(link, fifo, list, S_IFIFO, "a FIFO");
    struct stat sb;
    ck_assert_int_eq(lstat(link, &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    int entries = 2;
    /* a character device like /dev/null (1, 3); creating one needs privileges, so it is tried only when allowed */
    const char *dev = in_tmp("null");
    if (mknod(dev, S_IFCHR | 0666, makedev(1, 3)) == 0) {
        ck_assert_save_refused(dev, dev, list, S_IFCHR, "a character device");
        entries++;
    }
    umask(mask);
    ck_assert_int_eq(dir_entries(tmpdir), entries);
    /* a regular file beside them is still saved */
    ck_assert_ok(nb_save_safetensors(in_tmp("ok.safetensors"), list, NULL));
    ck_assert_file_holds(in_tmp("ok.safetensors"), 1, 2);
    free_list_and_tensors(list);
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("safetensors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, metadata_set_get);
    tcase_add_test(tc, round_trip_all_dtypes);
    tcase_add_test(tc, round_trip_empty_list_and_sliced_views);
    tcase_add_test(tc, byte_exact_layout);
    tcase_add_test(tc, names_with_escapes);
    tcase_add_test(tc, interop_python_reads_nabla);
    tcase_add_test(tc, interop_nabla_reads_python);
    tcase_add_test(tc, strict_mode_rejects_every_problem);
    tcase_add_test(tc, partial_mode_loads_matches_and_reports);
    tcase_add_test(tc, long_reports_are_summarized);
    tcase_add_test(tc, invalid_json_is_rejected);
    tcase_add_test(tc, invalid_entries_are_rejected);
    tcase_add_test(tc, header_length_is_checked_first);
    tcase_add_test(tc, truncated_at_every_length);
    tcase_add_test(tc, other_dtypes);
    tcase_add_test(tc, metadata_from_files);
    tcase_add_test(tc, argument_errors);
    tcase_add_test(tc, io_errors);
    tcase_add_test(tc, failed_save_keeps_previous_file);
    tcase_add_test(tc, save_keeps_permissions);
    tcase_add_test(tc, save_through_symbolic_links);
    tcase_add_test(tc, save_refuses_special_files);
    tcase_add_test(tc, load_refuses_overlapping_destinations);
    tcase_add_test(tc, load_into_disjoint_views);
    tcase_add_test(tc, model_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
