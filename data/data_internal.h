/* Internal helpers shared by the data readers (data/inflate.c, idx.c, csv.c). Not installed. */
#ifndef NABLA_DATA_INTERNAL_H
#define NABLA_DATA_INTERNAL_H

#include "internal.h"
#include "nb_data.h"

#include <stdbool.h>
#include <stddef.h>

/* Reads a whole file into a malloc'ed buffer with one spare zero byte after the *size bytes (so text parsers
 * may treat it as a C string). NULL with NB_ERR_IO "<fn>: cannot ... <path>: <reason>" on failure. */
unsigned char *nbi_read_file(const char *fn, const char *path, size_t *size);
/* True when the buffer starts with the gzip magic bytes 1f 8b. */
bool nbi_is_gzip(const unsigned char *data, size_t size);
/* Decompresses the gzip members in data[0..size) into a malloc'ed buffer (*out_size bytes; never NULL on
 * success, even when empty). Errors: NB_ERR_FORMAT "<fn>: <path>: <what> at byte offset N", NB_ERR_NOMEM. */
unsigned char *nbi_gunzip(const char *fn, const char *path, const unsigned char *data, size_t size,
                          size_t *out_size);

#endif
