/* A small, strict JSON reader and writer for safetensors headers. Not installed.
 *
 * The reader takes untrusted bytes: it follows RFC 8259 exactly (no comments, no trailing commas, no NaN, no
 * leading zeros), validates UTF-8, decodes escapes (surrogate pairs included), limits nesting, and never reads
 * outside the text it is given. Numbers are kept as their literal text so that 64-bit integers stay exact. */
#ifndef NABLA_NN_JSON_H
#define NABLA_NN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum nbi_json_type {
    NBI_JSON_NULL,
    NBI_JSON_FALSE,
    NBI_JSON_TRUE,
    NBI_JSON_NUMBER,
    NBI_JSON_STRING,
    NBI_JSON_ARRAY,
    NBI_JSON_OBJECT
} nbi_json_type;

/* One value. A document is a flat array of nodes in document order: the first child of node i is node i + 1,
 * and `end` is the index just past i's subtree (the next sibling), so walking needs no pointers. An object's
 * children alternate key (a STRING node) and value. */
typedef struct nbi_json_node {
    nbi_json_type type;
    size_t pos;      /* byte offset of the value in the text, for messages */
    size_t count;    /* ARRAY: elements; OBJECT: members (half the children) */
    size_t end;      /* index of the first node after this subtree */
    const char *str; /* STRING: decoded UTF-8, NUL-terminated (may contain NULs: compare len);
                        NUMBER: the literal's text, not terminated */
    size_t len;      /* bytes at str */
} nbi_json_node;

typedef struct nbi_json {
    nbi_json_node *nodes;
    size_t n;
    char *pool; /* decoded strings */
} nbi_json;

/* Parses text[0, len) as one JSON value with optional surrounding whitespace, arrays and objects nested at most
 * max_depth deep. On failure returns false, leaves doc empty and writes "at byte 12: expected ':' after an object
 * key" (or "out of memory") into err. */
bool nbi_json_parse(const char *text, size_t len, int max_depth, nbi_json *doc, char *err, size_t err_size);
void nbi_json_free(nbi_json *doc);
/* "a string", "an object", ... for messages. */
const char *nbi_json_type_name(nbi_json_type type);

typedef enum nbi_json_int {
    NBI_JSON_INT_OK,
    NBI_JSON_INT_NOT_NUMBER,
    NBI_JSON_INT_NEGATIVE,
    NBI_JSON_INT_FRACTION, /* has a fraction or an exponent: not an integer literal */
    NBI_JSON_INT_TOO_LARGE /* more than UINT64_MAX */
} nbi_json_int;
/* The value of a non-negative integer literal. */
nbi_json_int nbi_json_u64(const nbi_json_node *node, uint64_t *value);

/* True when s[0, len) is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF). */
bool nbi_utf8_valid(const char *s, size_t len);

/* Growable output text. After an allocation failure `failed` is set and further writes are ignored. */
typedef struct nbi_json_buf {
    char *data;
    size_t len, cap;
    bool failed;
} nbi_json_buf;
void nbi_json_put(nbi_json_buf *b, const char *s, size_t n);
void nbi_json_putf(nbi_json_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s (NUL-terminated UTF-8) as a quoted JSON string, escaping quotes, backslashes and control characters. */
void nbi_json_put_string(nbi_json_buf *b, const char *s);
void nbi_json_buf_free(nbi_json_buf *b);

#endif
