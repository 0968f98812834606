/* gzip (RFC 1952) and DEFLATE (RFC 1951) decompression, so that nabla reads MNIST's .gz files without zlib.
 *
 * The input is a whole file in memory; every read goes through a bounds-checked bit reader and every back
 * reference is checked against the output produced so far, so malformed input ends in NB_ERR_FORMAT naming
 * the byte offset, never in an out-of-bounds access.
 *
 * Huffman decoding is table driven: a primary table indexed by the next PRIMARY bits of the stream (codes are
 * sent most significant bit first inside an LSB-first bit stream, so tables are indexed by bit-reversed codes)
 * gives the symbol and its length at once; the rare longer codes go through one second-level table per
 * primary entry, indexed by the remaining bits up to the maximum length of 15. */
#include "data_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------------------------------
 * Whole-file reading (shared by the readers)
 * ---------------------------------------------------------------------------------------------- */
unsigned char *nbi_read_file(const char *fn, const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return nbi_error(NB_ERR_IO, "%s: cannot open %s: %s", fn, path, strerror(errno));
    struct stat st;
    size_t cap = 1 << 16;
    /* A regular file's size is known: read it with one allocation (plus the spare byte and one more, so that
     * reaching EOF needs no growth). */
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uint64_t)st.st_size < SIZE_MAX / 2)
        cap = (size_t)st.st_size + 2;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return nbi_error(NB_ERR_NOMEM, "%s: cannot allocate %zu bytes to read %s", fn, cap, path);
    }
    nbi_count_system_alloc();
    size_t n = 0;
    for (;;) {
        if (cap - n < 2) {
            unsigned char *grown = cap < SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!grown) {
                free(buf);
                fclose(f);
                return nbi_error(NB_ERR_NOMEM, "%s: cannot allocate %zu bytes to read %s", fn, cap * 2, path);
            }
            nbi_count_system_alloc();
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        int err = errno;
        free(buf);
        fclose(f);
        return nbi_error(NB_ERR_IO, "%s: cannot read %s: %s", fn, path, strerror(err));
    }
    fclose(f);
    buf[n] = 0;
    *size = n;
    return buf;
}

bool nbi_is_gzip(const unsigned char *data, size_t size) { return size >= 2 && data[0] == 0x1f && data[1] == 0x8b; }

/* ------------------------------------------------------------------------------------------------
 * Decoder state
 * ---------------------------------------------------------------------------------------------- */
#define MAX_BITS 15 /* longest Huffman code DEFLATE allows */
#define LIT_PRIMARY 10
#define DIST_PRIMARY 8
#define CLEN_PRIMARY 7 /* code length codes are at most 7 bits: no second level */
#define LIT_SYMS 288
#define DIST_SYMS 32
#define CLEN_SYMS 19

/* Table entry: bits 0-15 symbol (or the offset of a second-level table), bits 16-23 code length (0: no code
 * has these bits), bit 31 set for a link to a second-level table. */
#define ENTRY_LINK 0x80000000u
#define ENTRY(sym, len) ((uint32_t)(sym) | ((uint32_t)(len) << 16))

/* Room for the primary table plus one second-level table per symbol, the most there can be. */
#define TABLE_SIZE(primary, syms) ((1u << (primary)) + (syms) * (1u << (MAX_BITS - (primary))))

typedef struct inflater {
    const unsigned char *in;
    size_t n, pos;   /* input and the next byte to load into the bit buffer */
    uint64_t bitbuf; /* loaded but unconsumed bits, next bit lowest */
    unsigned bitcnt;
    unsigned char *out;
    size_t len, cap, max_len; /* max_len: no valid stream of this input size can decompress to more */
    size_t member_start;      /* back references must stay inside the current gzip member's output */
    const char *err;          /* first failure: what went wrong ... */
    size_t err_off;           /* ... at which input byte */
    nb_status err_status;
    uint32_t lit[TABLE_SIZE(LIT_PRIMARY, LIT_SYMS)];
    uint32_t dist[TABLE_SIZE(DIST_PRIMARY, DIST_SYMS)];
    uint32_t clen[1u << CLEN_PRIMARY];
    uint32_t fixed_lit[TABLE_SIZE(LIT_PRIMARY, LIT_SYMS)];
    uint32_t fixed_dist[TABLE_SIZE(DIST_PRIMARY, DIST_SYMS)];
    bool fixed_built;
} inflater;

/* Offset of the byte holding the next unconsumed bit. */
static size_t input_offset(const inflater *s) { return s->pos - s->bitcnt / 8; }

static bool fail_at(inflater *s, const char *what, size_t off)
{
    if (!s->err) {
        s->err = what;
        s->err_off = off;
        s->err_status = NB_ERR_FORMAT;
    }
    return false;
}
static bool fail(inflater *s, const char *what) { return fail_at(s, what, input_offset(s)); }

/* ------------------------------------------------------------------------------------------------
 * Bit reader
 * ---------------------------------------------------------------------------------------------- */
static inline void refill(inflater *s)
{
    while (s->bitcnt <= 56 && s->pos < s->n) {
        s->bitbuf |= (uint64_t)s->in[s->pos++] << s->bitcnt;
        s->bitcnt += 8;
    }
}

/* Reads n <= 32 bits into *v. */
static inline bool get_bits(inflater *s, unsigned n, uint32_t *v)
{
    if (s->bitcnt < n) {
        refill(s);
        if (s->bitcnt < n) return fail_at(s, "unexpected end of data", s->n);
    }
    *v = (uint32_t)(s->bitbuf & ((UINT64_C(1) << n) - 1));
    s->bitbuf >>= n;
    s->bitcnt -= n;
    return true;
}

/* Drops the bits up to the next byte boundary and gives the whole bytes still buffered back to the input, so
 * that byte-aligned data (stored blocks, the gzip trailer) is read directly from s->in at s->pos. */
static void align_to_byte(inflater *s)
{
    s->bitbuf >>= s->bitcnt & 7;
    s->bitcnt -= s->bitcnt & 7;
    s->pos -= s->bitcnt / 8;
    s->bitbuf = 0;
    s->bitcnt = 0;
}

/* ------------------------------------------------------------------------------------------------
 * Huffman tables
 * ---------------------------------------------------------------------------------------------- */
static unsigned reverse_bits(unsigned code, unsigned len)
{
    unsigned r = 0;
    for (unsigned i = 0; i < len; i++, code >>= 1) r = (r << 1) | (code & 1);
    return r;
}

/* Builds the decoding table of the canonical code with the given code lengths (0: symbol unused). RFC 1951
 * 3.2.2: codes are assigned in order of length, then symbol. An over-subscribed set of lengths is never valid;
 * an incomplete one only where DEFLATE encoders legitimately produce it (a code of at most one symbol, of
 * length 1), and only when allow_single is set. */
static bool build_table(inflater *s, uint32_t *table, unsigned primary, const uint8_t *lengths, unsigned nsyms,
                        bool allow_single, const char *what)
{
    unsigned count[MAX_BITS + 1] = {0};
    for (unsigned i = 0; i < nsyms; i++) count[lengths[i]]++;
    int left = 1;
    unsigned used = 0, longest = 0;
    for (unsigned len = 1; len <= MAX_BITS; len++) {
        left = left * 2 - (int)count[len];
        if (left < 0) return fail(s, what); /* over-subscribed */
        used += count[len];
        if (count[len]) longest = len;
    }
    if (left > 0 && !(allow_single && used <= 1 && longest <= 1)) return fail(s, what); /* incomplete */

    /* First code of each length, then the symbols in code order (a counting sort by length). */
    unsigned next_code[MAX_BITS + 2], first_index[MAX_BITS + 2];
    unsigned code = 0, index = 0;
    for (unsigned len = 1; len <= MAX_BITS; len++) {
        code = (code + count[len - 1] * (len > 1)) << 1;
        next_code[len] = code;
        first_index[len] = index;
        index += count[len];
    }
    uint16_t order[LIT_SYMS];
    for (unsigned sym = 0; sym < nsyms; sym++)
        if (lengths[sym]) order[first_index[lengths[sym]]++] = (uint16_t)sym;

    const unsigned psize = 1u << primary, sub_bits = MAX_BITS - primary, sub_size = 1u << sub_bits;
    memset(table, 0, psize * sizeof *table);
    unsigned next_sub = psize;
    for (unsigned k = 0; k < used; k++) {
        unsigned sym = order[k], len = lengths[sym];
        unsigned rev = reverse_bits(next_code[len]++, len);
        if (len <= primary) {
            /* Every primary index whose low len bits are this code decodes to it. */
            for (unsigned i = rev; i < psize; i += 1u << len) table[i] = ENTRY(sym, len);
            continue;
        }
        uint32_t *link = &table[rev & (psize - 1)];
        if (!(*link & ENTRY_LINK)) {
            /* Cannot overflow: at most one second-level table per symbol was reserved. */
            memset(table + next_sub, 0, sub_size * sizeof *table);
            *link = ENTRY_LINK | next_sub;
            next_sub += sub_size;
        }
        uint32_t *sub = table + (*link & 0xffff);
        for (unsigned i = rev >> primary; i < sub_size; i += 1u << (len - primary)) sub[i] = ENTRY(sym, len);
    }
    return true;
}

/* Decodes one symbol; -1 on failure. */
static inline int decode(inflater *s, const uint32_t *table, unsigned primary)
{
    refill(s);
    uint32_t e = table[s->bitbuf & ((1u << primary) - 1)];
    if (e & ENTRY_LINK)
        e = table[(e & 0xffff) + ((s->bitbuf >> primary) & ((1u << (MAX_BITS - primary)) - 1))];
    unsigned len = (e >> 16) & 0xff;
    /* Past the end of the input the buffer holds zeros: a code decoded from them is not really there. */
    if (len > s->bitcnt) return fail_at(s, "unexpected end of data", s->n), -1;
    if (len == 0) return fail(s, "invalid Huffman code"), -1;
    s->bitbuf >>= len;
    s->bitcnt -= len;
    return (int)(e & 0xffff);
}

/* ------------------------------------------------------------------------------------------------
 * Output
 * ---------------------------------------------------------------------------------------------- */
static bool reserve(inflater *s, size_t extra)
{
    if (s->cap - s->len >= extra) return true;
    if (extra > s->max_len - s->len) return fail(s, "output larger than any valid stream of this size can give");
    size_t want = s->len + extra;
    size_t cap = s->cap > s->max_len / 2 ? s->max_len : s->cap * 2;
    if (cap < want) cap = want;
    unsigned char *grown = realloc(s->out, cap);
    if (!grown) {
        if (!s->err) {
            s->err = "out of memory for the decompressed data";
            s->err_off = input_offset(s);
            s->err_status = NB_ERR_NOMEM;
        }
        return false;
    }
    nbi_count_system_alloc();
    s->out = grown;
    s->cap = cap;
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Blocks
 * ---------------------------------------------------------------------------------------------- */
static const uint16_t length_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                         31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t length_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                         2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                       193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static bool stored_block(inflater *s)
{
    align_to_byte(s);
    if (s->n - s->pos < 4) return fail_at(s, "unexpected end of data", s->n);
    const unsigned char *p = s->in + s->pos;
    unsigned len = p[0] | (unsigned)p[1] << 8, nlen = p[2] | (unsigned)p[3] << 8;
    if (len != (~nlen & 0xffff)) return fail_at(s, "stored block length does not match its complement", s->pos);
    s->pos += 4;
    if (s->n - s->pos < len) return fail_at(s, "unexpected end of data", s->n);
    if (!reserve(s, len)) return false;
    memcpy(s->out + s->len, s->in + s->pos, len);
    s->len += len;
    s->pos += len;
    return true;
}

/* Decodes literals and length/distance pairs until the end-of-block symbol. */
static bool huffman_block(inflater *s, const uint32_t *lit, const uint32_t *dist)
{
    for (;;) {
        int sym = decode(s, lit, LIT_PRIMARY);
        if (sym < 0) return false;
        if (sym < 256) {
            if (s->len == s->cap && !reserve(s, 1)) return false;
            s->out[s->len++] = (unsigned char)sym;
            continue;
        }
        if (sym == 256) return true;
        size_t at = input_offset(s);
        sym -= 257;
        if (sym >= 29) return fail_at(s, "invalid length symbol", at);
        uint32_t extra;
        if (!get_bits(s, length_extra[sym], &extra)) return false;
        size_t length = length_base[sym] + extra;
        int dsym = decode(s, dist, DIST_PRIMARY);
        if (dsym < 0) return false;
        if (dsym >= 30) return fail_at(s, "invalid distance symbol", at);
        if (!get_bits(s, dist_extra[dsym], &extra)) return false;
        size_t distance = dist_base[dsym] + extra;
        if (distance > s->len - s->member_start) return fail_at(s, "distance too far back", at);
        if (!reserve(s, length)) return false;
        unsigned char *dst = s->out + s->len;
        const unsigned char *src = dst - distance;
        if (distance >= length) {
            memcpy(dst, src, length);
        } else {
            /* Overlapping: the copy repeats the last `distance` bytes, so it must go byte by byte. */
            for (size_t i = 0; i < length; i++) dst[i] = src[i];
        }
        s->len += length;
    }
}

static bool fixed_tables(inflater *s)
{
    if (s->fixed_built) return true;
    uint8_t lengths[LIT_SYMS];
    /* RFC 1951 3.2.6 */
    for (unsigned i = 0; i < LIT_SYMS; i++) lengths[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    if (!build_table(s, s->fixed_lit, LIT_PRIMARY, lengths, LIT_SYMS, false, "internal error")) return false;
    memset(lengths, 5, DIST_SYMS);
    if (!build_table(s, s->fixed_dist, DIST_PRIMARY, lengths, DIST_SYMS, false, "internal error")) return false;
    s->fixed_built = true;
    return true;
}

/* Reads a dynamic block's code descriptions (RFC 1951 3.2.7) into s->lit and s->dist. */
static bool dynamic_tables(inflater *s)
{
    static const uint8_t clen_order[CLEN_SYMS] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    size_t at = input_offset(s);
    uint32_t hlit, hdist, hclen;
    if (!get_bits(s, 5, &hlit) || !get_bits(s, 5, &hdist) || !get_bits(s, 4, &hclen)) return false;
    hlit += 257;
    hdist += 1;
    hclen += 4;
    if (hlit > 286) return fail_at(s, "too many literal/length codes", at);
    if (hdist > 30) return fail_at(s, "too many distance codes", at);

    uint8_t lengths[LIT_SYMS + DIST_SYMS] = {0};
    for (unsigned i = 0; i < hclen; i++) {
        uint32_t v;
        if (!get_bits(s, 3, &v)) return false;
        lengths[clen_order[i]] = (uint8_t)v;
    }
    if (!build_table(s, s->clen, CLEN_PRIMARY, lengths, CLEN_SYMS, false, "invalid code length code lengths"))
        return false;

    /* Literal/length and distance code lengths form one sequence: repeats may run from one into the other. */
    memset(lengths, 0, sizeof lengths);
    unsigned total = hlit + hdist;
    for (unsigned i = 0; i < total;) {
        size_t sym_at = input_offset(s);
        int sym = decode(s, s->clen, CLEN_PRIMARY);
        if (sym < 0) return false;
        if (sym < 16) {
            lengths[i++] = (uint8_t)sym;
            continue;
        }
        uint32_t rep;
        uint8_t value = 0;
        if (sym == 16) {
            if (i == 0) return fail_at(s, "repeat of a code length with no previous length", sym_at);
            value = lengths[i - 1];
            if (!get_bits(s, 2, &rep)) return false;
            rep += 3;
        } else if (sym == 17) {
            if (!get_bits(s, 3, &rep)) return false;
            rep += 3;
        } else {
            if (!get_bits(s, 7, &rep)) return false;
            rep += 11;
        }
        if (rep > total - i) return fail_at(s, "code length repeat runs past the last code", sym_at);
        memset(lengths + i, value, rep);
        i += rep;
    }
    if (lengths[256] == 0) return fail_at(s, "no end-of-block code", at);
    return build_table(s, s->lit, LIT_PRIMARY, lengths, hlit, true, "invalid literal/length code lengths") &&
           build_table(s, s->dist, DIST_PRIMARY, lengths + hlit, hdist, true, "invalid distance code lengths");
}

/* One DEFLATE stream (RFC 1951 3.2.3), starting at s->pos; afterwards s->pos is the first byte after it. */
static bool inflate_stream(inflater *s)
{
    s->bitbuf = 0;
    s->bitcnt = 0;
    uint32_t final;
    do {
        uint32_t type;
        size_t at = input_offset(s);
        if (!get_bits(s, 1, &final) || !get_bits(s, 2, &type)) return false;
        bool ok;
        switch (type) {
        case 0: ok = stored_block(s); break;
        case 1: ok = fixed_tables(s) && huffman_block(s, s->fixed_lit, s->fixed_dist); break;
        case 2: ok = dynamic_tables(s) && huffman_block(s, s->lit, s->dist); break;
        default: return fail_at(s, "invalid block type 3", at);
        }
        if (!ok) return false;
    } while (!final);
    align_to_byte(s);
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * gzip
 * ---------------------------------------------------------------------------------------------- */
static void crc32_table(uint32_t table[256])
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
        table[i] = c;
    }
}

static uint32_t crc32_update(const uint32_t table[256], uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t le32(const unsigned char *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Skips a zero-terminated header field. */
static bool skip_string(inflater *s, const char *what)
{
    const unsigned char *end = memchr(s->in + s->pos, 0, s->n - s->pos);
    if (!end) return fail_at(s, what, s->n);
    s->pos = (size_t)(end - s->in) + 1;
    return true;
}

/* One member's header (RFC 1952 2.3); s->pos ends at the compressed data. */
static bool gzip_header(inflater *s, const uint32_t crc_table[256])
{
    enum { FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16 };
    size_t start = s->pos, rem = s->n - start;
    const unsigned char *p = s->in + start;
    if (rem == 0) return fail_at(s, "empty file, not gzip data", start);
    if (p[0] != 0x1f || (rem >= 2 && p[1] != 0x8b))
        return fail_at(s, start ? "trailing data after the last gzip member (bad magic bytes)"
                                : "not gzip data (bad magic bytes)", start);
    if (rem < 10) return fail_at(s, "truncated gzip header", s->n);
    if (p[2] != 8) return fail_at(s, "unsupported compression method (not deflate)", start + 2);
    unsigned flags = p[3];
    if (flags & 0xe0) return fail_at(s, "reserved gzip header flags set", start + 3);
    s->pos = start + 10;
    if (flags & FEXTRA) {
        if (s->n - s->pos < 2) return fail_at(s, "truncated gzip header", s->n);
        size_t xlen = s->in[s->pos] | (size_t)s->in[s->pos + 1] << 8;
        s->pos += 2;
        if (s->n - s->pos < xlen) return fail_at(s, "truncated gzip header", s->n);
        s->pos += xlen;
    }
    if ((flags & FNAME) && !skip_string(s, "truncated gzip header")) return false;
    if ((flags & FCOMMENT) && !skip_string(s, "truncated gzip header")) return false;
    if (flags & FHCRC) {
        if (s->n - s->pos < 2) return fail_at(s, "truncated gzip header", s->n);
        uint32_t crc = crc32_update(crc_table, 0, s->in + start, s->pos - start);
        unsigned stored = s->in[s->pos] | (unsigned)s->in[s->pos + 1] << 8;
        if ((crc & 0xffff) != stored) return fail_at(s, "gzip header CRC mismatch", s->pos);
        s->pos += 2;
    }
    return true;
}

static bool gunzip_all(inflater *s)
{
    uint32_t crc_table[256];
    crc32_table(crc_table);
    do {
        if (!gzip_header(s, crc_table)) return false;
        s->member_start = s->len;
        if (!inflate_stream(s)) return false;
        if (s->n - s->pos < 8) return fail_at(s, "truncated gzip trailer (CRC-32 and length)", s->n);
        const unsigned char *trailer = s->in + s->pos;
        size_t member_len = s->len - s->member_start;
        uint32_t crc = crc32_update(crc_table, 0, s->out + s->member_start, member_len);
        if (crc != le32(trailer)) return fail_at(s, "CRC-32 mismatch (corrupted data)", s->pos);
        if ((uint32_t)member_len != le32(trailer + 4))
            return fail_at(s, "length mismatch (stored size differs from decompressed size)", s->pos + 4);
        s->pos += 8;
        /* Concatenated gzip files are one file (RFC 1952 2.2): another member may follow. */
    } while (s->pos < s->n);
    return true;
}

unsigned char *nbi_gunzip(const char *fn, const char *path, const unsigned char *data, size_t size,
                          size_t *out_size)
{
    inflater *s = malloc(sizeof *s);
    if (!s) return nbi_error(NB_ERR_NOMEM, "%s: %s: cannot allocate the decompressor", fn, path);
    nbi_count_system_alloc();
    s->in = data;
    s->n = size;
    s->pos = 0;
    s->len = 0;
    s->err = NULL;
    s->err_off = 0;
    s->err_status = NB_OK;
    s->fixed_built = false;
    /* At best DEFLATE spends 2 bits on 258 bytes (a 1-bit length code, a 1-bit distance code), so no valid
     * input of `size` bytes decompresses to more than 1032 * size bytes. */
    s->max_len = size <= (SIZE_MAX - 4096) / 1032 ? size * 1032 + 4096 : SIZE_MAX;
    /* The trailer's length (mod 2^32) is only a hint, and unchecked until the end: a corrupted one must not make
     * the first allocation gigabytes (which could fail as NB_ERR_NOMEM before the corruption is found). It is
     * trusted up to 8 times the input plus 64 KiB, more than ordinary data shrinks by; beyond that, or without a
     * hint, the buffer starts at that size and grows geometrically (reserve). */
    size_t hint = size >= 18 ? le32(data + size - 4) : 0;
    size_t start = size < (SIZE_MAX - 65536) / 8 ? size * 8 + 65536 : SIZE_MAX;
    if (start > s->max_len) start = s->max_len;
    s->cap = hint && hint < start ? hint : start;
    s->out = malloc(s->cap ? s->cap : 1);
    if (!s->out) {
        size_t cap = s->cap;
        free(s);
        return nbi_error(NB_ERR_NOMEM, "%s: %s: cannot allocate %zu bytes for the decompressed data", fn, path,
                         cap);
    }
    nbi_count_system_alloc();
    if (!gunzip_all(s)) {
        if (s->err_status == NB_ERR_NOMEM)
            nbi_error(NB_ERR_NOMEM, "%s: %s: %s", fn, path, s->err);
        else
            nbi_error(NB_ERR_FORMAT, "%s: %s: %s at byte offset %zu", fn, path, s->err, s->err_off);
        free(s->out);
        free(s);
        return NULL;
    }
    unsigned char *out = s->out;
    *out_size = s->len;
    free(s);
    return out;
}

void *nb_gunzip_file(const char *path, size_t *size)
{
    if (!path) return nbi_error(NB_ERR_NULL, "nb_gunzip_file: path is NULL");
    if (!size) return nbi_error(NB_ERR_NULL, "nb_gunzip_file: size is NULL");
    size_t n;
    unsigned char *data = nbi_read_file("nb_gunzip_file", path, &n);
    if (!data) return NULL;
    unsigned char *out = nbi_gunzip("nb_gunzip_file", path, data, n, size);
    free(data);
    return out;
}
