/* IDX files (the MNIST format), raw or gzip compressed, and where the data sets live. */
#include "data_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Name of an IDX element type, for the message that rejects it. */
static const char *idx_type_name(unsigned type)
{
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return NULL;
    }
}

/* Parses the IDX content in data[0..n) (`what` says "" or " (decompressed)" for positions in messages). */
static nb_tensor *parse_idx(const char *path, const unsigned char *data, size_t n, const char *what)
{
    const char *fn = "nb_read_idx";
    if (n < 4)
        return nbi_error(NB_ERR_FORMAT, "%s: %s: truncated header: %zu bytes%s, the magic number needs 4", fn,
                         path, n, what);
    if (data[0] != 0 || data[1] != 0)
        return nbi_error(NB_ERR_FORMAT,
                         "%s: %s: bad magic number 0x%02x%02x%02x%02x at byte offset 0%s (an IDX file starts "
                         "with two zero bytes)",
                         fn, path, data[0], data[1], data[2], data[3], what);
    unsigned type = data[2], ndim = data[3];
    if (type != 0x08) {
        const char *name = idx_type_name(type);
        return nbi_error(NB_ERR_FORMAT, "%s: %s: %s type 0x%02X%s%s%s at byte offset 2%s: only 0x08 (unsigned byte) "
                         "is supported", fn, path, name ? "unsupported" : "unknown", type, name ? " (" : "",
                         name ? name : "", name ? ")" : "", what);
    }
    if (ndim == 0 || ndim > NB_MAX_DIMS)
        return nbi_error(NB_ERR_FORMAT, "%s: %s: %u dimensions at byte offset 3%s: expected 1 to %d", fn, path,
                         ndim, what, NB_MAX_DIMS);
    size_t header = 4 + 4 * (size_t)ndim;
    if (n < header)
        return nbi_error(NB_ERR_FORMAT, "%s: %s: truncated header: %zu bytes%s, %u dimensions need %zu", fn, path,
                         n, what, ndim, header);

    /* The element count is checked against the bytes present before anything is allocated, so a corrupted
     * size cannot ask for a huge tensor; the product stays below n, so it cannot overflow either. */
    size_t avail = n - header, count = 1;
    bool too_big = false, empty = false;
    int64_t shape[NB_MAX_DIMS];
    for (unsigned d = 0; d < ndim; d++) {
        shape[d] = be32(data + 4 + 4 * d);
        empty |= shape[d] == 0;
    }
    for (unsigned d = 0; d < ndim && !empty && !too_big; d++) {
        if (count > avail / (size_t)shape[d])
            too_big = true;
        else
            count *= (size_t)shape[d];
    }
    if (empty) {
        /* No data to check the sizes against, but the other sizes still make strides: their product must stay
         * within nabla's limit on element counts (see nbi_tensor_new_view), or the strides would overflow. */
        count = 0;
        int64_t nonzero = 1;
        for (unsigned d = 0; d < ndim; d++) {
            if (shape[d] && nonzero > INT64_MAX / 16 / shape[d]) {
                char shape_buf[NBI_SHAPE_STR];
                nbi_shape_fmt(shape_buf, (int)ndim, shape);
                return nbi_error(NB_ERR_FORMAT, "%s: %s: the header (byte offset 4%s) claims shape %s, which is too "
                                 "large even without elements", fn, path, what, shape_buf);
            }
            if (shape[d]) nonzero *= shape[d];
        }
    }
    if (too_big || count != avail) {
        char shape_buf[NBI_SHAPE_STR];
        nbi_shape_fmt(shape_buf, (int)ndim, shape);
        if (too_big || count > avail)
            return nbi_error(NB_ERR_FORMAT, "%s: %s: the header (byte offset 4%s) claims shape %s, more than the "
                             "%zu bytes of data that follow it", fn, path, what, shape_buf, avail);
        return nbi_error(NB_ERR_FORMAT, "%s: %s: the header claims shape %s (%zu bytes) but %zu bytes follow it: "
                         "unexpected data at byte offset %zu%s", fn, path, shape_buf, count, avail,
                         header + count, what);
    }

    /* Labels become i64 class indices, anything else f32 pixel values (still 0..255: scaling is the
     * caller's choice). */
    const unsigned char *values = data + header;
    nbi_tensor *t = nbi_tensor_new(ndim == 1 ? NB_I64 : NB_F32, (int)ndim, shape, fn);
    if (!t) return NULL;
    if (ndim == 1) {
        int64_t *out = nbi_data_ptr(t);
        for (size_t i = 0; i < count; i++) out[i] = values[i];
    } else {
        float *out = nbi_data_ptr(t);
        for (size_t i = 0; i < count; i++) out[i] = (float)values[i];
    }
    return nbi_handle(t);
}

nb_tensor *nb_read_idx(const char *path)
{
    if (!path) return nbi_error(NB_ERR_NULL, "nb_read_idx: path is NULL");
    size_t n;
    unsigned char *data = nbi_read_file("nb_read_idx", path, &n);
    if (!data) return NULL;
    /* An IDX file starts with two zero bytes, gzip with 1f 8b: the content tells which it is. */
    if (nbi_is_gzip(data, n)) {
        size_t raw_n;
        unsigned char *raw = nbi_gunzip("nb_read_idx", path, data, n, &raw_n);
        free(data);
        if (!raw) return NULL;
        nb_tensor *t = parse_idx(path, raw, raw_n, " (decompressed)");
        free(raw);
        return t;
    }
    nb_tensor *t = parse_idx(path, data, n, "");
    free(data);
    return t;
}

const char *nb_data_dir(const char *dir_flag)
{
    if (dir_flag) return dir_flag;
    const char *env = getenv("NABLA_DATA");
    if (env && *env) return env;
    struct stat st;
    if (stat("../shared/data", &st) == 0 && S_ISDIR(st.st_mode)) return "../shared/data";
    return NULL;
}
