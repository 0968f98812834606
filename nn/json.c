/* The strict JSON reader and the small writer behind safetensors headers (see json.h). */
#include "json.h"

#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * UTF-8
 * ---------------------------------------------------------------------------------------------- */
/* Length of the well-formed UTF-8 sequence at s[0, avail), or 0 when it is malformed. */
static size_t utf8_sequence(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0; /* continuation byte, overlong 2-byte lead, or beyond U+10FFFF */
    }
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0; /* overlong */
    if (cp >= 0xd800 && cp <= 0xdfff) return 0;                        /* surrogates are not characters */
    if (cp > 0x10ffff) return 0;
    return n;
}

bool nbi_utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence(s + i, len - i);
        if (!n) return false;
        i += n;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Reader
 * ---------------------------------------------------------------------------------------------- */
typedef struct parser {
    const unsigned char *s;
    size_t len, i;
    int depth, max_depth;
    nbi_json *doc;
    size_t cap;       /* nodes allocated */
    size_t pool_used; /* bytes of doc->pool in use */
    char *err;
    size_t err_size;
} parser;

static bool fail(parser *p, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(parser *p, size_t at, const char *fmt, ...)
{
    int n = snprintf(p->err, p->err_size, "at byte %zu: ", at);
    if (n < 0 || (size_t)n >= p->err_size) return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->err_size - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

static bool fail_nomem(parser *p)
{
    snprintf(p->err, p->err_size, "out of memory");
    return false;
}

/* Describes the byte at p->i for a message: 'x' when printable, the end of the text, or its value. */
static const char *describe(const parser *p, char buf[32])
{
    if (p->i >= p->len) return "the end of the text";
    unsigned char c = p->s[p->i];
    if (c >= 0x21 && c < 0x7f) snprintf(buf, 32, "'%c'", c);
    else snprintf(buf, 32, "byte 0x%02x", c);
    return buf;
}

static void skip_ws(parser *p)
{
    while (p->i < p->len) {
        unsigned char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

/* Index of a new node, or (size_t)-1 when out of memory. Indices, not pointers: the array moves as it grows. */
static size_t new_node(parser *p, nbi_json_type type, size_t pos)
{
    nbi_json *doc = p->doc;
    if (doc->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        if (cap > SIZE_MAX / sizeof *doc->nodes) return (size_t)-1;
        nbi_json_node *nodes = realloc(doc->nodes, cap * sizeof *nodes);
        if (!nodes) return (size_t)-1;
        nbi_count_system_alloc();
        doc->nodes = nodes;
        p->cap = cap;
    }
    size_t k = doc->n++;
    nbi_json_node *node = &doc->nodes[k];
    memset(node, 0, sizeof *node);
    node->type = type;
    node->pos = pos;
    node->end = k + 1;
    return k;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits after "\u" at p->i (which points at the 'u'). */
static bool read_hex4(parser *p, uint32_t *out)
{
    if (p->len - p->i < 5) return fail(p, p->i - 1, "truncated \\u escape");
    uint32_t v = 0;
    for (size_t k = 1; k <= 4; k++) {
        int h = hex_value(p->s[p->i + k]);
        if (h < 0) return fail(p, p->i - 1, "\\u escape needs 4 hexadecimal digits");
        v = (v << 4) | (uint32_t)h;
    }
    p->i += 5;
    *out = v;
    return true;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string at p->i (on the opening quote). Decoded text never outgrows its literal (quotes included), so the
 * pool sized to the whole text always has room. */
static bool parse_string(parser *p)
{
    size_t start = p->i;
    size_t k = new_node(p, NBI_JSON_STRING, start);
    if (k == (size_t)-1) return fail_nomem(p);
    char *out = p->doc->pool + p->pool_used;
    size_t n = 0;
    p->i++;
    for (;;) {
        if (p->i >= p->len) return fail(p, start, "unterminated string");
        unsigned char c = p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20) return fail(p, p->i, "control character 0x%02x inside a string (must be escaped)", c);
        if (c == '\\') {
            if (p->i + 1 >= p->len) return fail(p, start, "unterminated string");
            unsigned char e = p->s[p->i + 1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                static const char decoded[] = "\"\\/\b\f\n\r\t";
                out[n++] = decoded[simple - "\"\\/bfnrt"];
                p->i += 2;
                continue;
            }
            if (e != 'u') return fail(p, p->i, "invalid escape '\\%c'", e >= 0x21 && e < 0x7f ? e : '?');
            size_t esc = p->i;
            p->i++;
            uint32_t cp;
            if (!read_hex4(p, &cp)) return false;
            if (cp >= 0xdc00 && cp <= 0xdfff) return fail(p, esc, "\\u escape is a lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo;
                if (p->len - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                    return fail(p, esc, "\\u escape is a high surrogate without its low half");
                p->i++;
                if (!read_hex4(p, &lo)) return false;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return fail(p, esc, "\\u escape is a high surrogate without its low half");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            n += put_utf8(out + n, cp);
            continue;
        }
        size_t seq = utf8_sequence(p->s + p->i, p->len - p->i);
        if (!seq) return fail(p, p->i, "invalid UTF-8 in a string");
        memcpy(out + n, p->s + p->i, seq);
        n += seq;
        p->i += seq;
    }
    out[n] = '\0';
    p->pool_used += n + 1;
    p->doc->nodes[k].str = out;
    p->doc->nodes[k].len = n;
    return true;
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static bool parse_number(parser *p)
{
    size_t start = p->i;
    if (p->s[p->i] == '-') p->i++;
    if (p->i >= p->len || !is_digit(p->s[p->i])) return fail(p, start, "'-' not followed by a digit");
    if (p->s[p->i] == '0') {
        p->i++;
        if (p->i < p->len && is_digit(p->s[p->i])) return fail(p, start, "number with a leading zero");
    } else {
        while (p->i < p->len && is_digit(p->s[p->i])) p->i++;
    }
    if (p->i < p->len && p->s[p->i] == '.') {
        p->i++;
        if (p->i >= p->len || !is_digit(p->s[p->i])) return fail(p, start, "no digit after a decimal point");
        while (p->i < p->len && is_digit(p->s[p->i])) p->i++;
    }
    if (p->i < p->len && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->len && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->len || !is_digit(p->s[p->i])) return fail(p, start, "no digit in an exponent");
        while (p->i < p->len && is_digit(p->s[p->i])) p->i++;
    }
    size_t k = new_node(p, NBI_JSON_NUMBER, start);
    if (k == (size_t)-1) return fail_nomem(p);
    p->doc->nodes[k].str = (const char *)p->s + start;
    p->doc->nodes[k].len = p->i - start;
    return true;
}

static bool parse_literal(parser *p, const char *word, nbi_json_type type)
{
    size_t n = strlen(word);
    if (p->len - p->i < n || memcmp(p->s + p->i, word, n) != 0) {
        char b[32];
        return fail(p, p->i, "unexpected %s, expected a value", describe(p, b));
    }
    if (new_node(p, type, p->i) == (size_t)-1) return fail_nomem(p);
    p->i += n;
    return true;
}

static bool parse_value(parser *p);

static bool enter(parser *p)
{
    if (++p->depth > p->max_depth)
        return fail(p, p->i, "arrays and objects nested deeper than %d levels", p->max_depth);
    return true;
}

static bool parse_array(parser *p)
{
    size_t k = new_node(p, NBI_JSON_ARRAY, p->i);
    if (k == (size_t)-1) return fail_nomem(p);
    if (!enter(p)) return false;
    p->i++;
    skip_ws(p);
    size_t count = 0;
    if (p->i < p->len && p->s[p->i] == ']') {
        p->i++;
    } else {
        for (;;) {
            if (!parse_value(p)) return false;
            count++;
            skip_ws(p);
            if (p->i < p->len && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->len && p->s[p->i] == ']') {
                p->i++;
                break;
            }
            char b[32];
            return fail(p, p->i, "expected ',' or ']' in an array, found %s", describe(p, b));
        }
    }
    p->depth--;
    p->doc->nodes[k].count = count;
    p->doc->nodes[k].end = p->doc->n;
    return true;
}

static bool parse_object(parser *p)
{
    size_t k = new_node(p, NBI_JSON_OBJECT, p->i);
    if (k == (size_t)-1) return fail_nomem(p);
    if (!enter(p)) return false;
    p->i++;
    skip_ws(p);
    size_t count = 0;
    if (p->i < p->len && p->s[p->i] == '}') {
        p->i++;
    } else {
        for (;;) {
            skip_ws(p);
            char b[32];
            if (p->i >= p->len || p->s[p->i] != '"')
                return fail(p, p->i, "expected a string key in an object, found %s", describe(p, b));
            if (!parse_string(p)) return false;
            skip_ws(p);
            if (p->i >= p->len || p->s[p->i] != ':')
                return fail(p, p->i, "expected ':' after an object key, found %s", describe(p, b));
            p->i++;
            if (!parse_value(p)) return false;
            count++;
            skip_ws(p);
            if (p->i < p->len && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->len && p->s[p->i] == '}') {
                p->i++;
                break;
            }
            return fail(p, p->i, "expected ',' or '}' in an object, found %s", describe(p, b));
        }
    }
    p->depth--;
    p->doc->nodes[k].count = count;
    p->doc->nodes[k].end = p->doc->n;
    return true;
}

static bool parse_value(parser *p)
{
    skip_ws(p);
    if (p->i >= p->len) return fail(p, p->i, "the text ends where a value was expected");
    unsigned char c = p->s[p->i];
    switch (c) {
    case '{': return parse_object(p);
    case '[': return parse_array(p);
    case '"': return parse_string(p);
    case 't': return parse_literal(p, "true", NBI_JSON_TRUE);
    case 'f': return parse_literal(p, "false", NBI_JSON_FALSE);
    case 'n': return parse_literal(p, "null", NBI_JSON_NULL);
    default:
        if (c == '-' || is_digit(c)) return parse_number(p);
        char b[32];
        return fail(p, p->i, "unexpected %s, expected a value", describe(p, b));
    }
}

bool nbi_json_parse(const char *text, size_t len, int max_depth, nbi_json *doc, char *err, size_t err_size)
{
    memset(doc, 0, sizeof *doc);
    parser p = {.s = (const unsigned char *)text, .len = len, .max_depth = max_depth, .doc = doc, .err = err,
                .err_size = err_size};
    if (err_size) err[0] = '\0';
    doc->pool = malloc(len + 1);
    if (!doc->pool) return fail_nomem(&p);
    nbi_count_system_alloc();
    bool ok = parse_value(&p);
    if (ok) {
        skip_ws(&p);
        if (p.i != len) {
            char b[32];
            ok = fail(&p, p.i, "unexpected %s after the end of the JSON value", describe(&p, b));
        }
    }
    if (!ok) nbi_json_free(doc);
    return ok;
}

void nbi_json_free(nbi_json *doc)
{
    free(doc->nodes);
    free(doc->pool);
    memset(doc, 0, sizeof *doc);
}

const char *nbi_json_type_name(nbi_json_type type)
{
    switch (type) {
    case NBI_JSON_NULL: return "null";
    case NBI_JSON_FALSE:
    case NBI_JSON_TRUE: return "a boolean";
    case NBI_JSON_NUMBER: return "a number";
    case NBI_JSON_STRING: return "a string";
    case NBI_JSON_ARRAY: return "an array";
    case NBI_JSON_OBJECT: return "an object";
    }
    return "?";
}

nbi_json_int nbi_json_u64(const nbi_json_node *node, uint64_t *value)
{
    *value = 0;
    if (node->type != NBI_JSON_NUMBER) return NBI_JSON_INT_NOT_NUMBER;
    for (size_t i = 0; i < node->len; i++)
        if (node->str[i] == '.' || node->str[i] == 'e' || node->str[i] == 'E') return NBI_JSON_INT_FRACTION;
    if (node->str[0] == '-') return NBI_JSON_INT_NEGATIVE; /* "-0" included: no writer produces it */
    uint64_t v = 0;
    for (size_t i = 0; i < node->len; i++) {
        unsigned d = (unsigned)(node->str[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return NBI_JSON_INT_TOO_LARGE;
        v = v * 10 + d;
    }
    *value = v;
    return NBI_JSON_INT_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Writer
 * ---------------------------------------------------------------------------------------------- */
static bool reserve(nbi_json_buf *b, size_t extra)
{
    if (b->failed) return false;
    if (extra <= b->cap - b->len) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (!data) {
        b->failed = true;
        return false;
    }
    nbi_count_system_alloc();
    b->data = data;
    b->cap = cap;
    return true;
}

void nbi_json_put(nbi_json_buf *b, const char *s, size_t n)
{
    if (!reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

void nbi_json_putf(nbi_json_buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->failed = true; /* only short numeric fields are written this way */
        return;
    }
    nbi_json_put(b, tmp, (size_t)n);
}

void nbi_json_put_string(nbi_json_buf *b, const char *s)
{
    nbi_json_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"': nbi_json_put(b, "\\\"", 2); break;
        case '\\': nbi_json_put(b, "\\\\", 2); break;
        case '\n': nbi_json_put(b, "\\n", 2); break;
        case '\r': nbi_json_put(b, "\\r", 2); break;
        case '\t': nbi_json_put(b, "\\t", 2); break;
        case '\b': nbi_json_put(b, "\\b", 2); break;
        case '\f': nbi_json_put(b, "\\f", 2); break;
        default:
            if (*c < 0x20) nbi_json_putf(b, "\\u%04x", *c);
            else nbi_json_put(b, (const char *)c, 1);
        }
    }
    nbi_json_put(b, "\"", 1);
}

void nbi_json_buf_free(nbi_json_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}
