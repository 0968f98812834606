/* Data readers: nabla's own gzip/DEFLATE decoder (against /usr/bin/gzip and against streams built here bit by
 * bit), IDX files, numeric CSV, nb_data_dir, and the real data sets when shared/data is present. Every file is
 * written at test time into a temporary directory. */
#include "helpers.h"

#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * Files
 * ---------------------------------------------------------------------------------------------- */
static char tmp_dir[256];
static pid_t parent_pid;

static void remove_tmp_dir(void)
{
    /* Check runs each test in a forked child that also runs atexit handlers: only the parent cleans up. */
    if (getpid() != parent_pid || !tmp_dir[0]) return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
}

static const char *tpath(const char *name)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ & 7];
    snprintf(p, sizeof paths[0], "%s/%s", tmp_dir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t cap = 1 << 16, len = 0;
    unsigned char *p = malloc(cap);
    size_t got;
    while ((got = fread(p + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) p = realloc(p, cap *= 2);
    }
    fclose(f);
    *n = len;
    return p;
}

/* Compresses src into dst with /usr/bin/gzip at the given level (the header keeps the file name). */
static void gzip_file(const char *src, const char *dst, int level)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "gzip -c -N -%d '%s' > '%s'", level, src, dst);
    ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
}

/* nb_gunzip_file(path) must give exactly want[0..n). */
static void check_gunzip(const char *path, const unsigned char *want, size_t n)
{
    size_t size = 12345;
    unsigned char *got = nb_gunzip_file(path, &size);
    ck_assert_msg(got != NULL, "nb_gunzip_file(%s): %s", path, nb_last_error());
    ck_assert_uint_eq(size, n);
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) ck_abort_msg("%s: byte %zu is %d, expected %d", path, i, got[i], want[i]);
    free(got);
}

/* nb_gunzip_file(path) must fail with NB_ERR_FORMAT, a message naming the path and a byte offset. */
static void check_gunzip_fails(const char *path, const char *fragment)
{
    nb_clear_error();
    size_t size = 0;
    void *got = nb_gunzip_file(path, &size);
    if (got) free(got);
    ck_assert_msg(got == NULL, "%s: decompressed although malformed (expected \"%s\")", path, fragment);
    ck_assert_error(NB_ERR_FORMAT, "nb_gunzip_file", path, "byte offset", fragment);
}

/* ------------------------------------------------------------------------------------------------
 * Building gzip and DEFLATE streams by hand
 * ---------------------------------------------------------------------------------------------- */
typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void push(buf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}
static void push_byte(buf *b, unsigned v) { unsigned char c = (unsigned char)v; push(b, &c, 1); }
static void push_le32(buf *b, uint32_t v)
{
    for (int i = 0; i < 4; i++) push_byte(b, (v >> (8 * i)) & 0xff);
}

static uint32_t crc32_ref(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
}

enum { FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16 };

/* A gzip member around a raw DEFLATE stream with the optional header fields selected by flags. */
static void gzip_member(buf *out, const buf *deflate, const unsigned char *content, size_t n, unsigned flags)
{
    size_t start = out->n;
    const unsigned char head[10] = {0x1f, 0x8b, 8, (unsigned char)flags, 1, 2, 3, 4, 0, 3};
    push(out, head, 10);
    if (flags & FEXTRA) push(out, "\x06\x00" "AB\x02\x00xy", 8);
    if (flags & FNAME) push(out, "name.bin", 9);
    if (flags & FCOMMENT) push(out, "a comment", 10);
    if (flags & FHCRC) {
        uint32_t crc = crc32_ref(out->p + start, out->n - start);
        push_byte(out, crc & 0xff);
        push_byte(out, (crc >> 8) & 0xff);
    }
    push(out, deflate->p, deflate->n);
    push_le32(out, crc32_ref(content, n));
    push_le32(out, (uint32_t)n);
}

/* Stored blocks of at most `block` bytes (the only way to get gzip's level 0). */
static void deflate_stored(buf *out, const unsigned char *data, size_t n, size_t block)
{
    size_t pos = 0;
    do {
        size_t len = n - pos < block ? n - pos : block;
        push_byte(out, pos + len == n); /* BFINAL, BTYPE 00, then padding to the byte boundary */
        push_byte(out, len & 0xff);
        push_byte(out, len >> 8);
        push_byte(out, ~len & 0xff);
        push_byte(out, (~len >> 8) & 0xff);
        push(out, data + pos, len);
        pos += len;
    } while (pos < n);
}

/* LSB-first bit writer; Huffman codes go most significant bit first (RFC 1951 3.1.1). */
typedef struct bits {
    buf b;
    unsigned acc, cnt;
} bits;

static void put_bits(bits *w, unsigned v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        w->acc |= ((v >> i) & 1u) << w->cnt;
        if (++w->cnt == 8) {
            push_byte(&w->b, w->acc);
            w->acc = w->cnt = 0;
        }
    }
}
static void put_code(bits *w, unsigned code, unsigned len)
{
    for (unsigned i = len; i-- > 0;) put_bits(w, (code >> i) & 1u, 1);
}
static void flush_bits(bits *w)
{
    if (w->cnt) push_byte(&w->b, w->acc);
    w->acc = w->cnt = 0;
}

static void fixed_lit(bits *w, unsigned sym)
{
    if (sym < 144) put_code(w, 0x30 + sym, 8);
    else if (sym < 256) put_code(w, 0x190 + sym - 144, 9);
    else if (sym < 280) put_code(w, sym - 256, 7);
    else put_code(w, 0xC0 + sym - 280, 8);
}

/* Canonical codes for the given lengths (RFC 1951 3.2.2). */
static void canonical(const uint8_t *len, int n, unsigned *code)
{
    unsigned count[16] = {0}, next[16];
    for (int i = 0; i < n; i++) count[len[i]]++;
    count[0] = 0;
    unsigned c = 0;
    for (int b = 1; b < 16; b++) next[b] = c = (c + count[b - 1]) << 1;
    for (int i = 0; i < n; i++)
        if (len[i]) code[i] = next[len[i]]++;
}

/* Code length code used by the dynamic headers below: 0..12 get 4 bits, 13..18 5 bits (a complete code). */
static const uint8_t clen_order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

/* A dynamic block header. prog (pairs of code-length symbol and its extra bits, ending with -1) replaces
 * the plain encoding of one symbol per length when not NULL. */
static void dynamic_header(bits *w, const uint8_t *lit, int nlit, const uint8_t *dist, int ndist, const int *prog)
{
    uint8_t clen[19];
    unsigned ccode[19];
    for (int i = 0; i < 19; i++) clen[i] = i < 13 ? 4 : 5;
    canonical(clen, 19, ccode);
    put_bits(w, 1, 1); /* final */
    put_bits(w, 2, 2);
    put_bits(w, (unsigned)(nlit - 257), 5);
    put_bits(w, (unsigned)(ndist - 1), 5);
    put_bits(w, 19 - 4, 4);
    for (int i = 0; i < 19; i++) put_bits(w, clen[clen_order[i]], 3);
    if (prog) {
        static const unsigned extra_bits[19] = {[16] = 2, [17] = 3, [18] = 7};
        for (int i = 0; prog[i] >= 0; i += 2) {
            put_code(w, ccode[prog[i]], clen[prog[i]]);
            put_bits(w, (unsigned)prog[i + 1], extra_bits[prog[i]]);
        }
        return;
    }
    for (int i = 0; i < nlit + ndist; i++) {
        unsigned l = i < nlit ? lit[i] : dist[i - nlit];
        put_code(w, ccode[l], clen[l]);
    }
}

/* Writes content as gzip of the bits in w (flushed) into path. */
static void write_gzip_bits(const char *path, bits *w, const unsigned char *content, size_t n)
{
    flush_bits(w);
    buf g = {0};
    gzip_member(&g, &w->b, content, n, 0);
    write_bytes(path, g.p, g.n);
    free(g.p);
    free(w->b.p);
    memset(w, 0, sizeof *w);
}

/* ------------------------------------------------------------------------------------------------
 * Test data
 * ---------------------------------------------------------------------------------------------- */
static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* kind 0: uniform random bytes; 1: words from a small vocabulary; 2: bytes with a geometric distribution
 * (some rare symbols get codes longer than 10 bits); 3: long runs and long repeats. */
static unsigned char *make_data(int kind, size_t n, uint64_t seed)
{
    static const char *words[] = {"tensor ", "gradient ", "backward ", "scope ", "nabla ", "the ", "of ", "\n",
                                  "matmul ", "softmax ", "0.125 ", "-3.5e-2 "};
    unsigned char *p = malloc(n ? n : 1);
    uint64_t s = seed;
    size_t i = 0;
    while (i < n) {
        if (kind == 0) {
            p[i++] = (unsigned char)lcg(&s);
        } else if (kind == 1) {
            const char *w = words[lcg(&s) % 12];
            for (; *w && i < n; w++) p[i++] = (unsigned char)*w;
        } else if (kind == 2) {
            unsigned v = 0;
            while (v < 255 && (lcg(&s) & 1)) v++;
            p[i++] = (unsigned char)(v * 37);
        } else {
            size_t run = 1 + lcg(&s) % 3000;
            unsigned char c = (unsigned char)lcg(&s);
            for (size_t k = 0; k < run && i < n; k++) p[i++] = (lcg(&s) % 1000 == 0) ? 'x' : c;
            if (i > 600 && lcg(&s) % 2) { /* repeat a long stretch seen before */
                size_t from = lcg(&s) % (i - 500), len = 300 + lcg(&s) % 200;
                for (size_t k = 0; k < len && i < n; k++) p[i++] = p[from + k];
            }
        }
    }
    return p;
}

/* ------------------------------------------------------------------------------------------------
 * gzip: valid streams
 * ---------------------------------------------------------------------------------------------- */
START_TEST(gunzip_matches_gzip_at_every_level)
{
    static const size_t sizes[] = {1 << 20, 300000, 700000, 2 << 20};
    for (int kind = 0; kind < 4; kind++) {
        unsigned char *data = make_data(kind, sizes[kind], 42 + (uint64_t)kind);
        char name[64];
        snprintf(name, sizeof name, "data%d.bin", kind);
        const char *src = tpath(name);
        write_bytes(src, data, sizes[kind]);
        static const int levels[] = {1, 6, 9};
        for (int l = 0; l < 3; l++) {
            snprintf(name, sizeof name, "data%d-%d.gz", kind, levels[l]);
            const char *gz = tpath(name);
            gzip_file(src, gz, levels[l]);
            check_gunzip(gz, data, sizes[kind]);
        }
        free(data);
    }
}
END_TEST

START_TEST(gunzip_small_and_empty)
{
    /* Tiny inputs make gzip use fixed Huffman codes; an empty file is a lone empty final block. */
    const char *inputs[] = {"", "a", "hello hello hello hello\n", "abcabcabcabcabcabcabcabcabcabcabcabcabc"};
    for (int i = 0; i < 4; i++) {
        const char *src = tpath("small.txt"), *gz = tpath("small.txt.gz");
        write_bytes(src, inputs[i], strlen(inputs[i]));
        gzip_file(src, gz, 6);
        size_t size = 99;
        unsigned char *out = nb_gunzip_file(gz, &size);
        ck_assert_msg(out != NULL, "%s", nb_last_error());
        ck_assert_uint_eq(size, strlen(inputs[i]));
        ck_assert(memcmp(out, inputs[i], size) == 0);
        free(out);
    }
}
END_TEST

START_TEST(gunzip_stored_blocks_and_header_fields)
{
    size_t n = 150000;
    unsigned char *data = make_data(1, n, 7);
    /* Every combination of the optional header fields, around stored blocks of several sizes (level 0). */
    static const size_t blocks[] = {65535, 1000, 1};
    for (unsigned flags = 0; flags < 32; flags += 2) {
        buf d = {0}, g = {0};
        size_t len = flags == 0 ? 3000 : n; /* blocks of 1 byte: keep that one short */
        deflate_stored(&d, data, len, blocks[flags % 3]);
        gzip_member(&g, &d, data, len, flags);
        write_bytes(tpath("stored.gz"), g.p, g.n);
        check_gunzip(tpath("stored.gz"), data, len);
        free(d.p);
        free(g.p);
    }
    /* An empty stored block as the whole stream. */
    buf d = {0}, g = {0};
    deflate_stored(&d, data, 0, 10);
    gzip_member(&g, &d, data, 0, 0);
    write_bytes(tpath("empty-stored.gz"), g.p, g.n);
    check_gunzip(tpath("empty-stored.gz"), data, 0);
    free(d.p);
    free(g.p);
    free(data);
}
END_TEST

START_TEST(gunzip_concatenated_members)
{
    unsigned char *a = make_data(1, 50000, 1), *b = make_data(3, 400000, 2);
    write_bytes(tpath("a.bin"), a, 50000);
    write_bytes(tpath("b.bin"), b, 400000);
    gzip_file(tpath("a.bin"), tpath("a.gz"), 6);
    gzip_file(tpath("b.bin"), tpath("b.gz"), 9);
    size_t na, nb;
    unsigned char *ga = read_bytes(tpath("a.gz"), &na), *gb = read_bytes(tpath("b.gz"), &nb);
    /* b after a, then a after b: the trailer's length (the output buffer's first guess) is wrong both ways. */
    for (int order = 0; order < 2; order++) {
        buf g = {0}, want = {0};
        push(&g, order ? gb : ga, order ? nb : na);
        push(&g, order ? ga : gb, order ? na : nb);
        push(&want, order ? b : a, order ? 400000 : 50000);
        push(&want, order ? a : b, order ? 50000 : 400000);
        write_bytes(tpath("ab.gz"), g.p, g.n);
        check_gunzip(tpath("ab.gz"), want.p, want.n);
        free(g.p);
        free(want.p);
    }
    free(ga);
    free(gb);
    free(a);
    free(b);
}
END_TEST

/* A dynamic block with codes of every length 1..15 for literals, lengths and distances, so that the decoder's
 * second-level tables are used, and an empty distance code (literals only). */
START_TEST(gunzip_dynamic_blocks_built_by_hand)
{
    uint8_t lit[266] = {0}, dist[16] = {0};
    unsigned lcode[266], dcode[16];
    for (int i = 0; i < 13; i++) lit['A' + i] = (uint8_t)(i + 1); /* 1..13 bits */
    lit[257] = 14;                                               /* length 3 */
    lit[265] = 15;                                               /* lengths 11, 12 (one extra bit) */
    lit[256] = 15;
    for (int i = 0; i < 15; i++) dist[i] = (uint8_t)(i + 1);
    dist[15] = 15;
    canonical(lit, 266, lcode);
    canonical(dist, 16, dcode);
    static const unsigned dbase[16] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193};
    static const unsigned dextra[16] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6};

    bits w = {0};
    buf want = {0};
    dynamic_header(&w, lit, 266, dist, 16, NULL);
    for (int i = 0; i < 300; i++) {
        unsigned c = 'A' + (unsigned)(i * 7 % 13);
        put_code(&w, lcode[c], lit[c]);
        push_byte(&want, c);
    }
    for (int d = 0; d < 16; d++) {
        for (int form = 0; form < 2; form++) {
            unsigned extra = form ? (1u << dextra[d]) - 1 : 0, distance = dbase[d] + extra;
            unsigned length = form ? 12 : 3;
            if (form) {
                put_code(&w, lcode[265], lit[265]);
                put_bits(&w, 1, 1);
            } else {
                put_code(&w, lcode[257], lit[257]);
            }
            put_code(&w, dcode[d], dist[d]);
            put_bits(&w, extra, dextra[d]);
            for (unsigned k = 0; k < length; k++) push_byte(&want, want.p[want.n - distance]);
        }
    }
    put_code(&w, lcode[256], lit[256]);
    write_gzip_bits(tpath("long-codes.gz"), &w, want.p, want.n);
    check_gunzip(tpath("long-codes.gz"), want.p, want.n);

    /* Literals only: two 1-bit codes and no distance code at all. */
    uint8_t lit2[257] = {0}, dist2[1] = {0};
    lit2['z'] = 1;
    lit2[256] = 1;
    dynamic_header(&w, lit2, 257, dist2, 1, NULL);
    for (int i = 0; i < 1000; i++) put_code(&w, 0, 1);
    put_code(&w, 1, 1);
    unsigned char zs[1000];
    memset(zs, 'z', sizeof zs);
    write_gzip_bits(tpath("literals.gz"), &w, zs, sizeof zs);
    check_gunzip(tpath("literals.gz"), zs, sizeof zs);

    /* A code of one symbol (the end of block) is incomplete but valid. */
    uint8_t lit3[257] = {0};
    lit3[256] = 1;
    dynamic_header(&w, lit3, 257, dist2, 1, NULL);
    put_code(&w, 0, 1);
    write_gzip_bits(tpath("eob-only.gz"), &w, zs, 0);
    check_gunzip(tpath("eob-only.gz"), zs, 0);

    /* Repeat codes: 18 for 122 zeros, 'z' = 1, 18 for 133 zeros, EOB = 1 (257 literal/length lengths), then 17
     * for 3 zeros and 16 repeating that 0 three times (6 distance lengths). */
    const int seq[] = {18, 122 - 11, 1, 0, 18, 133 - 11, 1, 0, 17, 0, 16, 0, -1};
    dynamic_header(&w, lit2, 257, dist2, 6, seq);
    for (int i = 0; i < 10; i++) put_code(&w, 0, 1);
    put_code(&w, 1, 1);
    write_gzip_bits(tpath("repeats.gz"), &w, zs, 10);
    check_gunzip(tpath("repeats.gz"), zs, 10);
    free(want.p);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * gzip: malformed input
 * ---------------------------------------------------------------------------------------------- */
START_TEST(gunzip_rejects_every_truncation)
{
    /* A dynamic-code file, a fixed-code file and a stored file, cut at every length. */
    unsigned char *text = make_data(2, 6000, 5);
    write_bytes(tpath("t.bin"), text, 6000);
    gzip_file(tpath("t.bin"), tpath("t.gz"), 9);
    write_bytes(tpath("h.txt"), "hello hello hello\n", 18);
    gzip_file(tpath("h.txt"), tpath("h.gz"), 6);
    buf d = {0}, s = {0};
    deflate_stored(&d, text, 700, 300);
    gzip_member(&s, &d, text, 700, FEXTRA | FNAME | FCOMMENT | FHCRC);
    write_bytes(tpath("s.gz"), s.p, s.n);
    const char *files[] = {tpath("t.gz"), tpath("h.gz"), tpath("s.gz")};
    for (int f = 0; f < 3; f++) {
        size_t n;
        unsigned char *gz = read_bytes(files[f], &n);
        for (size_t cut = 0; cut < n; cut++) {
            write_bytes(tpath("cut.gz"), gz, cut);
            nb_clear_error();
            size_t size;
            void *out = nb_gunzip_file(tpath("cut.gz"), &size);
            ck_assert_msg(out == NULL, "%s cut at %zu decompressed", files[f], cut);
            ck_assert_error(NB_ERR_FORMAT, "nb_gunzip_file", "cut.gz", "byte offset");
            /* Beyond the first two bytes every cut is an early end (the magic is intact). */
            if (cut >= 2)
                ck_assert_msg(strstr(nb_last_error(), "truncated") || strstr(nb_last_error(), "end of data"),
                              "cut at %zu: %s", cut, nb_last_error());
        }
        free(gz);
    }
    free(d.p);
    free(s.p);
    free(text);
}
END_TEST

START_TEST(gunzip_rejects_corrupted_bytes)
{
    unsigned char *text = make_data(1, 20000, 9);
    write_bytes(tpath("c.bin"), text, 20000);
    gzip_file(tpath("c.bin"), tpath("c.gz"), 6);
    size_t n;
    unsigned char *gz = read_bytes(tpath("c.gz"), &n);
    size_t body = 10 + strlen("c.bin") + 1; /* header and file name */
    int crc_errors = 0;
    for (size_t pos = body; pos < n; pos++) {
        for (int k = 0; k < 2; k++) {
            unsigned char saved = gz[pos];
            gz[pos] ^= k ? 0xff : 0x10;
            write_bytes(tpath("bad.gz"), gz, n);
            gz[pos] = saved;
            nb_clear_error();
            size_t size;
            void *out = nb_gunzip_file(tpath("bad.gz"), &size);
            ck_assert_msg(out == NULL, "byte %zu changed, still decompressed", pos);
            ck_assert_error(NB_ERR_FORMAT, "nb_gunzip_file", "bad.gz", "byte offset");
            crc_errors += strstr(nb_last_error(), "CRC-32 mismatch") != NULL;
        }
    }
    /* Most changes still decode to something: the CRC catches those. */
    ck_assert_int_gt(crc_errors, 0);
    free(gz);
    free(text);
}
END_TEST

START_TEST(gunzip_names_each_malformation)
{
    unsigned char content[64];
    for (int i = 0; i < 64; i++) content[i] = (unsigned char)(i * 3);
    buf d = {0};
    deflate_stored(&d, content, 64, 40);
    buf g = {0};
    gzip_member(&g, &d, content, 64, FHCRC);
    const char *path = tpath("m.gz");
    size_t n = g.n;
    unsigned char *ok = g.p;
    write_bytes(path, ok, n);
    check_gunzip(path, content, 64);

#define MUTATE(at, value, fragment)                      \
    do {                                                 \
        unsigned char saved_ = ok[at];                   \
        ok[at] = (unsigned char)(value);                 \
        write_bytes(path, ok, n);                        \
        ok[at] = saved_;                                 \
        check_gunzip_fails(path, fragment);              \
    } while (0)
    MUTATE(0, 0x1e, "bad magic");
    MUTATE(1, 0x8c, "bad magic");
    MUTATE(2, 7, "compression method");
    MUTATE(3, FHCRC | 0x20, "reserved");
    MUTATE(10, ok[10] ^ 1, "header CRC");
    MUTATE(13, 0x55, "stored block length");         /* LEN no longer matches NLEN */
    MUTATE(n - 8, ok[n - 8] ^ 1, "CRC-32 mismatch"); /* trailer CRC */
    MUTATE(n - 4, 65, "length mismatch");            /* ISIZE */
    MUTATE(n - 1, 0xff, "length mismatch");          /* an absurd ISIZE is only a hint */
    MUTATE(12 + 4 + 10, 99, "CRC-32 mismatch");      /* stored data itself */
#undef MUTATE

    /* Trailing bytes that are not another member. */
    buf t = {0};
    push(&t, ok, n);
    push(&t, "junk", 4);
    write_bytes(path, t.p, t.n);
    check_gunzip_fails(path, "trailing data");
    char offset[64];
    snprintf(offset, sizeof offset, "byte offset %zu", n);
    ck_assert_error(NB_ERR_FORMAT, offset);
    free(t.p);

    /* Not gzip at all; an empty file; one byte. */
    write_bytes(path, "hello world\n", 12);
    check_gunzip_fails(path, "bad magic");
    ck_assert_error(NB_ERR_FORMAT, "byte offset 0");
    write_bytes(path, "", 0);
    check_gunzip_fails(path, "empty file");
    write_bytes(path, "\x1f", 1);
    check_gunzip_fails(path, "truncated gzip header");

    /* Block type 3; a fixed block whose back reference reaches before the start; invalid symbols. */
    bits w = {0};
    put_bits(&w, 1, 1);
    put_bits(&w, 3, 2);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "invalid block type 3");
    ck_assert_error(NB_ERR_FORMAT, "byte offset 10");

    put_bits(&w, 1, 1);
    put_bits(&w, 1, 2);
    fixed_lit(&w, 'a');
    fixed_lit(&w, 257); /* length 3 */
    put_code(&w, 1, 5); /* distance 2, one byte back is all there is */
    fixed_lit(&w, 256);
    write_gzip_bits(path, &w, (const unsigned char *)"aaaa", 4);
    check_gunzip_fails(path, "distance too far back");

    put_bits(&w, 1, 1);
    put_bits(&w, 1, 2);
    fixed_lit(&w, 'a');
    fixed_lit(&w, 286);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "invalid length symbol");

    put_bits(&w, 1, 1);
    put_bits(&w, 1, 2);
    fixed_lit(&w, 'a');
    fixed_lit(&w, 257);
    put_code(&w, 30, 5);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "invalid distance symbol");

    /* A distance reaching into the previous member is too far back too: members are independent. */
    buf two = {0};
    gzip_member(&two, &d, content, 64, 0);
    put_bits(&w, 1, 1);
    put_bits(&w, 1, 2);
    fixed_lit(&w, 257);
    put_code(&w, 0, 5);
    fixed_lit(&w, 256);
    flush_bits(&w);
    gzip_member(&two, &w.b, content, 3, 0);
    write_bytes(path, two.p, two.n);
    check_gunzip_fails(path, "distance too far back");
    free(w.b.p);
    memset(&w, 0, sizeof w);
    free(two.p);

    /* Dynamic headers: too many codes, bad code lengths of each kind, misuse of the repeat codes. */
    put_bits(&w, 1, 1);
    put_bits(&w, 2, 2);
    put_bits(&w, 30, 5); /* 287 literal/length codes */
    put_bits(&w, 0, 5);
    put_bits(&w, 0, 4);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "too many literal/length codes");
    put_bits(&w, 1, 1);
    put_bits(&w, 2, 2);
    put_bits(&w, 0, 5);
    put_bits(&w, 30, 5); /* 31 distance codes */
    put_bits(&w, 0, 4);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "too many distance codes");

    put_bits(&w, 1, 1);
    put_bits(&w, 2, 2);
    put_bits(&w, 0, 5);
    put_bits(&w, 0, 5);
    put_bits(&w, 0, 4); /* 4 code length code lengths: 16, 17, 18, 0 all of length 1: over-subscribed */
    for (int i = 0; i < 4; i++) put_bits(&w, 1, 3);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "invalid code length code lengths");
    put_bits(&w, 1, 1);
    put_bits(&w, 2, 2);
    put_bits(&w, 0, 5);
    put_bits(&w, 0, 5);
    put_bits(&w, 0, 4); /* only symbol 18, of length 1: incomplete */
    put_bits(&w, 0, 3);
    put_bits(&w, 0, 3);
    put_bits(&w, 1, 3);
    put_bits(&w, 0, 3);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "invalid code length code lengths");

    uint8_t lit[258] = {0}, dist[2] = {0};
    lit['a'] = lit['b'] = lit[256] = 1; /* three 1-bit codes */
    dynamic_header(&w, lit, 257, dist, 1, NULL);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "invalid literal/length code lengths");
    lit['b'] = 0;
    lit['a'] = 2; /* 1/2 + 1/4: incomplete with two codes */
    dynamic_header(&w, lit, 257, dist, 1, NULL);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "invalid literal/length code lengths");
    lit['a'] = 1;
    dist[0] = dist[1] = 2; /* two 2-bit distance codes: incomplete */
    dynamic_header(&w, lit, 257, dist, 2, NULL);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "invalid distance code lengths");
    lit['a'] = lit['b'] = 1;
    lit[256] = 0;
    dist[0] = dist[1] = 0;
    dynamic_header(&w, lit, 257, dist, 1, NULL);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "no end-of-block code");

    const int repeat_first[] = {16, 0, -1};
    dynamic_header(&w, lit, 257, dist, 1, repeat_first);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "no previous length");
    const int overrun[] = {18, 127, 18, 127, -1}; /* 276 zeros for 258 lengths */
    dynamic_header(&w, lit, 257, dist, 1, overrun);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "past the last code");

    /* A valid dynamic header whose distance code has a single symbol ("0"), then the bit "1" where a distance
     * belongs: no such code. */
    memset(lit, 0, sizeof lit);
    lit['a'] = 1;
    lit[257] = 2;
    lit[256] = 2;
    dist[0] = 1; /* one distance code "0": "1" is no code */
    dynamic_header(&w, lit, 258, dist, 1, NULL);
    put_code(&w, 0, 1); /* 'a' (canonical codes: 'a' = 0, EOB = 10, 257 = 11) */
    put_code(&w, 3, 2); /* length 3 */
    put_code(&w, 1, 1); /* the distance */
    put_code(&w, 0, 8);
    write_gzip_bits(path, &w, content, 0);
    check_gunzip_fails(path, "invalid Huffman code");

    free(d.p);
    free(g.p);
}
END_TEST

/* The address space in use, in bytes (0 where /proc does not tell). */
static size_t address_space_used(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0;
    if (f) {
        if (fscanf(f, "%llu", &pages) != 1) pages = 0;
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* A corrupted length in the trailer (4 GiB claimed for 5 MiB of stored data) must not size the first output
 * buffer: with 1 GiB of address space left, a 4 GiB request fails, and the report would be a misleading
 * NB_ERR_NOMEM instead of the corruption. */
START_TEST(gunzip_distrusts_the_stored_length)
{
    size_t n = 5 << 20;
    unsigned char *data = make_data(0, n, 11);
    buf d = {0}, g = {0};
    deflate_stored(&d, data, n, 65535);
    gzip_member(&g, &d, data, n, 0);
    memcpy(g.p + g.n - 4, "\xf0\xff\xff\xff", 4);
    write_bytes(tpath("biglen.gz"), g.p, g.n);
    free(data);
    free(d.p);
    free(g.p);

    struct rlimit old, limit;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    limit = old;
    size_t used = address_space_used();
    if (used && (old.rlim_cur == RLIM_INFINITY || old.rlim_cur > used + ((size_t)1 << 30)))
        limit.rlim_cur = used + ((size_t)1 << 30);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &limit), 0);
    nb_clear_error();
    size_t size;
    void *out = nb_gunzip_file(tpath("biglen.gz"), &size);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
    free(out);
    ck_assert_msg(out == NULL, "decompressed despite the wrong length");
    ck_assert_error(NB_ERR_FORMAT, "nb_gunzip_file", "biglen.gz", "length mismatch", "byte offset");
}
END_TEST

START_TEST(gunzip_argument_and_io_errors)
{
    size_t size;
    ck_assert_ptr_null(nb_gunzip_file(NULL, &size));
    ck_assert_error(NB_ERR_NULL, "nb_gunzip_file", "path");
    ck_assert_ptr_null(nb_gunzip_file(tpath("x.gz"), NULL));
    ck_assert_error(NB_ERR_NULL, "nb_gunzip_file", "size");
    ck_assert_ptr_null(nb_gunzip_file(tpath("does-not-exist.gz"), &size));
    ck_assert_error(NB_ERR_IO, "nb_gunzip_file", "does-not-exist.gz", "No such file");
    ck_assert_ptr_null(nb_gunzip_file(tmp_dir, &size)); /* a directory */
    ck_assert_error(NB_ERR_IO, "nb_gunzip_file", tmp_dir);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * IDX
 * ---------------------------------------------------------------------------------------------- */
static const unsigned char idx_images[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2,
                                           0, 1, 2, 255, 10, 20, 30, 40, 128, 127, 254, 7};
static const unsigned char idx_labels[] = {0, 0, 8, 1, 0, 0, 0, 5, 5, 0, 4, 1, 9};

START_TEST(idx_reads_images_and_labels_raw_and_gzip)
{
    for (int gz = 0; gz < 3; gz++) {
        const char *img = tpath("img.idx"), *lab = tpath("lab.idx");
        write_bytes(img, idx_images, sizeof idx_images);
        write_bytes(lab, idx_labels, sizeof idx_labels);
        if (gz == 1) {
            gzip_file(img, tpath("img.idx.gz"), 9);
            gzip_file(lab, tpath("lab.idx.gz"), 1);
            img = tpath("img.idx.gz");
            lab = tpath("lab.idx.gz");
        } else if (gz == 2) {
            buf d = {0}, g = {0};
            deflate_stored(&d, idx_images, sizeof idx_images, 5);
            gzip_member(&g, &d, idx_images, sizeof idx_images, FNAME);
            write_bytes(tpath("img-stored.gz"), g.p, g.n);
            img = tpath("img-stored.gz");
            free(d.p);
            free(g.p);
        }
        nb_tensor *x = nb_read_idx(img);
        ck_assert_tensor(x);
        ck_assert_shape(x, 3, 2, 2);
        ck_assert_int_eq(nb_dtype_of(x), NB_F32);
        ck_assert_values(x, 0, 0, 1, 2, 255, 10, 20, 30, 40, 128, 127, 254, 7);
        nb_tensor *y = nb_read_idx(lab);
        ck_assert_shape(y, 5);
        ck_assert_int_eq(nb_dtype_of(y), NB_I64);
        ck_assert_values(y, 0, 5, 0, 4, 1, 9);
        nb_free(x);
        nb_free(y);
    }
    /* A zero-sized dimension is a valid empty tensor. */
    const unsigned char empty[] = {0, 0, 8, 2, 0, 0, 0, 0, 0, 0, 0, 28};
    write_bytes(tpath("empty.idx"), empty, sizeof empty);
    nb_tensor *e = nb_read_idx(tpath("empty.idx"));
    ck_assert_shape(e, 0, 28);
    nb_free(e);
}
END_TEST

static void check_idx_fails(const unsigned char *bytes, size_t n, nb_status status, const char *frag1,
                            const char *frag2)
{
    const char *path = tpath("bad.idx");
    write_bytes(path, bytes, n);
    nb_clear_error();
    ck_assert_ptr_null(nb_read_idx(path));
    ck_assert_error(status, "nb_read_idx", path, frag1, frag2);
}

START_TEST(idx_rejects_malformed_files)
{
    unsigned char b[sizeof idx_images];
    memcpy(b, idx_images, sizeof b);
    b[1] = 1;
    check_idx_fails(b, sizeof b, NB_ERR_FORMAT, "bad magic number 0x00010803", "byte offset 0");
    memcpy(b, idx_images, sizeof b);
    b[2] = 0x0D;
    check_idx_fails(b, sizeof b, NB_ERR_FORMAT, "unsupported type 0x0D (float)", "byte offset 2");
    b[2] = 0x42;
    check_idx_fails(b, sizeof b, NB_ERR_FORMAT, "unknown type 0x42", "byte offset 2");
    memcpy(b, idx_images, sizeof b);
    b[3] = 0;
    check_idx_fails(b, sizeof b, NB_ERR_FORMAT, "0 dimensions", "byte offset 3");
    b[3] = 9;
    check_idx_fails(b, sizeof b, NB_ERR_FORMAT, "9 dimensions", "byte offset 3");

    /* Counts larger than the data: detected before allocating (4e9 x 4e9 would not fit anywhere). */
    memcpy(b, idx_images, sizeof b);
    b[7] = 4;
    check_idx_fails(b, sizeof b, NB_ERR_FORMAT, "claims shape (4, 2, 2)", "12 bytes of data");
    const unsigned char huge[] = {0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3};
    check_idx_fails(huge, sizeof huge, NB_ERR_FORMAT, "claims shape (4294967295, 4294967295)", "3 bytes");
    /* Found by fuzzing: no data and a zero size, but the other sizes overflow the strides. */
    const unsigned char empty_huge[] = {0, 0, 8, 4, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff};
    check_idx_fails(empty_huge, sizeof empty_huge, NB_ERR_FORMAT, "claims shape (4294967295, 0, 4294967295, "
                    "4294967295)", "too large even without elements");
    const unsigned char empty_ok[] = {0, 0, 8, 3, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 28};
    write_bytes(tpath("empty.idx"), empty_ok, sizeof empty_ok);
    nb_tensor *empty = nb_read_idx(tpath("empty.idx"));
    ck_assert_shape(empty, 0, 4294967295, 28);
    nb_free(empty);
    /* More data than the header says. */
    unsigned char longer[sizeof idx_labels + 2];
    memcpy(longer, idx_labels, sizeof idx_labels);
    longer[sizeof idx_labels] = longer[sizeof idx_labels + 1] = 3;
    check_idx_fails(longer, sizeof longer, NB_ERR_FORMAT, "unexpected data", "byte offset 13");
    /* Truncated: inside the magic, inside the sizes, inside the data. */
    check_idx_fails(idx_images, 3, NB_ERR_FORMAT, "truncated header", "3 bytes");
    check_idx_fails(idx_images, 0, NB_ERR_FORMAT, "truncated header", "0 bytes");
    check_idx_fails(idx_images, 10, NB_ERR_FORMAT, "truncated header", "need 16");
    check_idx_fails(idx_images, sizeof idx_images - 1, NB_ERR_FORMAT, "claims shape (3, 2, 2)", "11 bytes");

    /* The same problems inside a gzip file name the decompressed position; a broken gzip file fails too. */
    b[3] = 0;
    write_bytes(tpath("bad-raw.idx"), b, sizeof b);
    gzip_file(tpath("bad-raw.idx"), tpath("bad.idx.gz"), 6);
    nb_clear_error();
    ck_assert_ptr_null(nb_read_idx(tpath("bad.idx.gz")));
    ck_assert_error(NB_ERR_FORMAT, "nb_read_idx", "bad.idx.gz", "byte offset 3 (decompressed)");
    size_t n;
    write_bytes(tpath("ok.idx"), idx_images, sizeof idx_images);
    gzip_file(tpath("ok.idx"), tpath("ok.idx.gz"), 6);
    unsigned char *gz = read_bytes(tpath("ok.idx.gz"), &n);
    check_idx_fails(gz, n - 5, NB_ERR_FORMAT, "truncated gzip trailer", "byte offset");
    gz[n - 6] ^= 1;
    check_idx_fails(gz, n, NB_ERR_FORMAT, "CRC-32 mismatch", "byte offset");
    free(gz);

    nb_clear_error();
    ck_assert_ptr_null(nb_read_idx(tpath("missing.idx")));
    ck_assert_error(NB_ERR_IO, "nb_read_idx", "missing.idx", "No such file");
    ck_assert_ptr_null(nb_read_idx(NULL));
    ck_assert_error(NB_ERR_NULL, "nb_read_idx");
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * nb_data_dir and the real data sets
 * ---------------------------------------------------------------------------------------------- */
START_TEST(data_dir_order)
{
    ck_assert_str_eq(nb_data_dir("/some/where"), "/some/where");
    setenv("NABLA_DATA", "/from/env", 1);
    ck_assert_str_eq(nb_data_dir(NULL), "/from/env");
    ck_assert_str_eq(nb_data_dir("/flag"), "/flag");
    setenv("NABLA_DATA", "", 1);
    /* From a directory with ../shared/data next to it, and from one without. */
    char cwd[1024];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    mkdir(tpath("shared"), 0700);
    mkdir(tpath("shared/data"), 0700);
    mkdir(tpath("main"), 0700);
    ck_assert_int_eq(chdir(tpath("main")), 0);
    ck_assert_str_eq(nb_data_dir(NULL), "../shared/data");
    ck_assert_int_eq(chdir(tpath("shared/data")), 0);
    nb_clear_error();
    ck_assert_ptr_null(nb_data_dir(NULL));
    ck_assert_int_eq(nb_last_status(), NB_OK); /* absence is no error */
    ck_assert_int_eq(chdir(cwd), 0);
    unsetenv("NABLA_DATA");
}
END_TEST

/* The data directory, or NULL (with a message) when the data sets are absent. Besides nb_data_dir's own
 * places, the test looks next to the source tree (the build directory is usually one level below it). */
static const char *real_data(const char *file)
{
    static char path[1024];
    const char *dir = nb_data_dir(NULL);
    struct stat st;
    if (dir) {
        snprintf(path, sizeof path, "%s/%s", dir, file);
        if (stat(path, &st) == 0) return path;
    }
    snprintf(path, sizeof path, "../../shared/data/%s", file);
    if (stat(path, &st) == 0) return path;
    printf("skipped: %s not found (set NABLA_DATA to the data directory)\n", file);
    return NULL;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

START_TEST(mnist_labels)
{
    const char *path = real_data("mnist/train-labels-idx1-ubyte.gz");
    if (!path) return;
    nb_tensor *y = nb_read_idx(path);
    ck_assert_tensor(y);
    ck_assert_shape(y, 60000);
    ck_assert_int_eq(nb_dtype_of(y), NB_I64);
    const int64_t *v = nb_data(y);
    static const int64_t first[10] = {5, 0, 4, 1, 9, 2, 1, 3, 1, 4};
    for (int i = 0; i < 10; i++) ck_assert_int_eq(v[i], first[i]);
    int64_t counts[10] = {0}, out_of_range = 0;
    for (int i = 0; i < 60000; i++) {
        if (v[i] >= 0 && v[i] < 10)
            counts[v[i]]++;
        else
            out_of_range++;
    }
    ck_assert_int_eq(out_of_range, 0);
    static const int64_t want[10] = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
    for (int c = 0; c < 10; c++) ck_assert_int_eq(counts[c], want[c]);
    nb_free(y);

    path = real_data("mnist/t10k-labels-idx1-ubyte.gz");
    if (!path) return;
    y = nb_read_idx(path);
    ck_assert_shape(y, 10000);
    ck_assert_values(nb_narrow(y, 0, 0, 10), 0, 7, 2, 1, 0, 4, 1, 4, 9, 5, 9);
    nb_free(y);
}
END_TEST

START_TEST(mnist_images)
{
    const char *path = real_data("mnist/train-images-idx3-ubyte.gz");
    if (!path) return;
    double t0 = seconds();
    size_t size;
    unsigned char *raw = nb_gunzip_file(path, &size);
    double t1 = seconds();
    ck_assert_msg(raw != NULL, "%s", nb_last_error());
    ck_assert_uint_eq(size, 47040016);
    free(raw);
    printf("gunzip of MNIST training images (47 MB): %.3f s\n", t1 - t0);

    nb_tensor *x = nb_read_idx(path);
    ck_assert_tensor(x);
    ck_assert_shape(x, 60000, 28, 28);
    ck_assert_int_eq(nb_dtype_of(x), NB_F32);
    const float *v = nb_data(x);
    float lo = 255, hi = 0;
    double sum = 0;
    int64_t fractional = 0; /* counted, not asserted per pixel: each ck_assert costs a message to the parent */
    for (int64_t i = 0; i < 60000 * 28 * 28; i++) {
        fractional += v[i] != (float)(int)v[i];
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
        sum += v[i];
    }
    ck_assert_int_eq(fractional, 0);
    ck_assert_float_eq(lo, 0);
    ck_assert_float_eq(hi, 255);
    /* The mean pixel of MNIST's training set, 0.1307 * 255 (the normalization constant everyone uses). */
    ck_assert_close(sum / (60000.0 * 784) / 255, 0.1307, 5e-4);
    nb_free(x);

    path = real_data("mnist/t10k-images-idx3-ubyte.gz");
    if (!path) return;
    x = nb_read_idx(path);
    ck_assert_shape(x, 10000, 28, 28);
    nb_free(x);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * CSV
 * ---------------------------------------------------------------------------------------------- */
static nb_csv *csv_from(const char *text)
{
    write_bytes(tpath("t.csv"), text, strlen(text));
    nb_clear_error();
    return nb_csv_read(tpath("t.csv"));
}

START_TEST(csv_reads_values_and_names)
{
    const char *texts[] = {
        "a,b, c\n1,2,3\n4.5, -6e2 ,7\n",
        "a,b, c\r\n1,2,3\r\n4.5, -6e2 ,7\r\n",
        "\xEF\xBB\xBF" "a,b,c\n1,2,3\n4.5,-6e2,7", /* byte order mark, no final newline */
        "a ,b,c\n1,2,3\n\t4.5,-6e2,7\t\n\n  \r\n\n", /* trailing blank lines */
    };
    for (int i = 0; i < 4; i++) {
        nb_csv *csv = csv_from(texts[i]);
        ck_assert_msg(csv != NULL, "text %d: %s", i, nb_last_error());
        ck_assert_int_eq(csv->rows, 2);
        ck_assert_int_eq(csv->cols, 3);
        ck_assert_str_eq(csv->names[0], "a");
        ck_assert_str_eq(csv->names[1], "b");
        ck_assert_str_eq(csv->names[2], "c");
        ck_assert_shape(csv->values, 2, 3);
        ck_assert_int_eq(nb_dtype_of(csv->values), NB_F64);
        ck_assert_values(csv->values, 0, 1, 2, 3, 4.5, -600, 7);
        ck_assert_int_eq(nb_csv_column(csv, "c"), 2);
        ck_assert_int_eq(nb_csv_column(csv, "a"), 0);
        nb_clear_error();
        ck_assert_int_eq(nb_csv_column(csv, "zz"), -1);
        ck_assert_int_eq(nb_last_status(), NB_OK);
        nb_csv_free(csv);
    }
    /* A header alone: no rows. NaN and infinities are numbers to strtod. */
    nb_csv *csv = csv_from("x,y\n");
    ck_assert_ptr_nonnull(csv);
    ck_assert_int_eq(csv->rows, 0);
    ck_assert_shape(csv->values, 0, 2);
    nb_csv_free(csv);
    csv = csv_from("x\nnan\n-inf\n1e-400\n");
    ck_assert_ptr_nonnull(csv);
    ck_assert(isnan(nb_get_flat(csv->values, 0)));
    ck_assert(isinf(nb_get_flat(csv->values, 1)));
    ck_assert(nb_get_flat(csv->values, 2) == 0);
    nb_csv_free(csv);
    nb_csv_free(NULL);
}
END_TEST

START_TEST(csv_values_outlive_the_scope)
{
    nb_memory_stats before = nb_memory_stats_get();
    nb_scope_begin();
    nb_csv *csv = csv_from("p,q\n1,2\n");
    nb_scope_end();
    ck_assert(nb_is_valid(csv->values));
    ck_assert_values(csv->values, 0, 1, 2);
    nb_csv_free(csv);
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, before.live_tensors);
}
END_TEST

static void check_csv_fails(const char *text, const char *frag1, const char *frag2)
{
    nb_csv *csv = csv_from(text);
    if (csv) nb_csv_free(csv);
    ck_assert_msg(csv == NULL, "\"%s\" was read", text);
    ck_assert_error(NB_ERR_FORMAT, "nb_csv_read", "t.csv", frag1, frag2);
}

START_TEST(csv_rejects_malformed_files)
{
    check_csv_fails("", "line 1", "no header");
    check_csv_fails("\n1,2\n", "line 1", "no header");
    check_csv_fails("a,,c\n1,2,3\n", "line 1, column 2", "empty column name");
    check_csv_fails("a,b,c\n1,,3\n", "line 2, column 2 (b)", "empty cell");
    check_csv_fails("a,b,c\n1,2,3\n4, ,6\n", "line 3, column 2", "empty cell");
    check_csv_fails("a,b,c\r\n1,2,3\r\n4,x5,6\r\n", "line 3, column 2 (b)", "\"x5\" is not a number");
    check_csv_fails("a,b,c\n1,2,3\n4,5,6 7\n", "line 3, column 3", "\"6 7\" is not a number");
    check_csv_fails("a,b,c\n1,2,3\n4,5,setosa\n", "line 3, column 3", "not a number");
    check_csv_fails("a,b,c\n1,2\n", "line 2, column 3", "missing cell");
    check_csv_fails("a,b,c\n1,2,3,4\n", "line 2, column 4", "extra cell");
    check_csv_fails("a,b,c\n1,2,3,\n", "line 2, column 4", "extra cell");
    check_csv_fails("a,b,c\n1,2,3\n\n4,5,6\n", "line 3, column 1", "blank line");
    check_csv_fails("a,b,c\n1,2,3\n4,5,6\n7,8,9\n10,11\n", "line 5, column 3", "missing cell");
    check_csv_fails("a\n1e999\n", "line 2, column 1", "out of range");

    nb_clear_error();
    ck_assert_ptr_null(nb_csv_read(tpath("missing.csv")));
    ck_assert_error(NB_ERR_IO, "nb_csv_read", "missing.csv", "No such file");
    ck_assert_ptr_null(nb_csv_read(NULL));
    ck_assert_error(NB_ERR_NULL, "nb_csv_read");
    ck_assert_int_eq(nb_csv_column(NULL, "a"), -1);
    ck_assert_error(NB_ERR_NULL, "nb_csv_column");
}
END_TEST

/* A control byte in a cell is shown escaped: printed raw, a form feed is invisible and a NUL cuts the message, so
 * that "2<FF>" and "2<NUL>3" were both reported as "2". */
START_TEST(csv_messages_escape_control_bytes)
{
    check_csv_fails("a,b\n1,2\f\n", "line 2, column 2 (b)", "\"2\\x0c\" is not a number");
    check_csv_fails("a,b\n1,\x7f\n", "line 2, column 2 (b)", "\"\\x7f\" is not a number");
    check_csv_fails("a\n1\\2\n", "line 2, column 1 (a)", "\"1\\\\2\" is not a number"); /* \ itself is doubled */
    check_csv_fails("a\n1\xc3\xa9\n", "line 2, column 1 (a)", "\"1\xc3\xa9\" is not a number"); /* UTF-8 as is */
    static const char nul[] = "a,b\n1,2\0003\n";
    write_bytes(tpath("t.csv"), nul, sizeof nul - 1);
    nb_clear_error();
    ck_assert_ptr_null(nb_csv_read(tpath("t.csv")));
    ck_assert_error(NB_ERR_FORMAT, "nb_csv_read", "line 2, column 2 (b)", "\"2\\x003\" is not a number");
}
END_TEST

/* A gzip-compressed CSV is decompressed (its bytes parsed as text would become garbage column names); corruption
 * is a format error naming the file. */
START_TEST(csv_reads_gzip)
{
    const char *text = "x,y\n1,2\n3,4.5"; /* no final newline: the last cell ends at the buffer's end */
    write_bytes(tpath("g.csv"), text, strlen(text));
    gzip_file(tpath("g.csv"), tpath("g.csv.gz"), 6);
    nb_clear_error();
    nb_csv *csv = nb_csv_read(tpath("g.csv.gz"));
    ck_assert_msg(csv != NULL, "%s", nb_last_error());
    ck_assert_int_eq(csv->cols, 2);
    ck_assert_str_eq(csv->names[0], "x");
    ck_assert_str_eq(csv->names[1], "y");
    ck_assert_values(csv->values, 0, 1, 2, 3, 4.5);
    nb_csv_free(csv);

    size_t n;
    unsigned char *gz = read_bytes(tpath("g.csv.gz"), &n);
    gz[n - 8] ^= 0xff; /* the CRC-32 */
    write_bytes(tpath("bad.csv.gz"), gz, n);
    free(gz);
    nb_clear_error();
    ck_assert_ptr_null(nb_csv_read(tpath("bad.csv.gz")));
    ck_assert_error(NB_ERR_FORMAT, "nb_csv_read", "bad.csv.gz", "CRC-32 mismatch", "byte offset");
}
END_TEST

/* Classic Mac line endings (CR alone), also mixed with LF and CRLF, as Python's universal newlines read them; line
 * numbers in errors count them too. */
START_TEST(csv_reads_cr_line_endings)
{
    const char *texts[] = {"a,b\r1,2\r3,4\r", "a,b\r1,2\r3,4", "a,b\r\n1,2\r3,4\n", "a,b\n1,2\r\n3,4\r\r\n\r"};
    for (int i = 0; i < 4; i++) {
        nb_csv *csv = csv_from(texts[i]);
        ck_assert_msg(csv != NULL, "text %d: %s", i, nb_last_error());
        ck_assert_int_eq(csv->rows, 2);
        ck_assert_int_eq(csv->cols, 2);
        ck_assert_str_eq(csv->names[0], "a");
        ck_assert_str_eq(csv->names[1], "b");
        ck_assert_shape(csv->values, 2, 2);
        ck_assert_values(csv->values, 0, 1, 2, 3, 4);
        nb_csv_free(csv);
    }
    nb_csv *csv = csv_from("only\r");
    ck_assert_ptr_nonnull(csv);
    ck_assert_int_eq(csv->rows, 0);
    ck_assert_str_eq(csv->names[0], "only");
    nb_csv_free(csv);
    check_csv_fails("a,b\r1,2\r3,x\r", "line 3, column 2 (b)", "\"x\" is not a number");
    check_csv_fails("a,b\r1,2\r\r3,4\r", "line 3, column 1", "blank line");
    check_csv_fails("a,b\r1,2,3\r", "line 2, column 3", "extra cell");
    check_csv_fails("\r1,2\r", "line 1", "no header");
}
END_TEST

START_TEST(csv_reads_iris)
{
    const char *path = real_data("iris.csv");
    if (!path) return;
    nb_csv *csv = nb_csv_read(path);
    ck_assert_msg(csv != NULL, "%s", nb_last_error());
    ck_assert_int_eq(csv->rows, 150);
    ck_assert_int_eq(csv->cols, 5);
    const char *names[] = {"sepal_length", "sepal_width", "petal_length", "petal_width", "species"};
    for (int c = 0; c < 5; c++) ck_assert_str_eq(csv->names[c], names[c]);
    ck_assert_int_eq(nb_csv_column(csv, "species"), 4);
    ck_assert_values(nb_narrow(nb_narrow(csv->values, 0, 0, 1), 1, 0, 5), 1e-12, 5.1, 3.5, 1.4, 0.2, 0);
    int counts[3] = {0};
    for (int r = 0; r < 150; r++) {
        double s = nb_get(csv->values, (const int64_t[]){r, 4});
        ck_assert(s == 0 || s == 1 || s == 2);
        counts[(int)s]++;
    }
    for (int k = 0; k < 3; k++) ck_assert_int_eq(counts[k], 50);
    nb_csv_free(csv);
}
END_TEST

Suite *make_suite(void)
{
    parent_pid = getpid();
    snprintf(tmp_dir, sizeof tmp_dir, "%s/nabla-readers-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        exit(EXIT_FAILURE);
    }
    atexit(remove_tmp_dir);

    Suite *s = suite_create("readers");
    TCase *tc = tcase_create("readers");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, gunzip_matches_gzip_at_every_level);
    tcase_add_test(tc, gunzip_small_and_empty);
    tcase_add_test(tc, gunzip_stored_blocks_and_header_fields);
    tcase_add_test(tc, gunzip_concatenated_members);
    tcase_add_test(tc, gunzip_dynamic_blocks_built_by_hand);
    tcase_add_test(tc, gunzip_rejects_every_truncation);
    tcase_add_test(tc, gunzip_rejects_corrupted_bytes);
    tcase_add_test(tc, gunzip_names_each_malformation);
    tcase_add_test(tc, gunzip_distrusts_the_stored_length);
    tcase_add_test(tc, gunzip_argument_and_io_errors);
    tcase_add_test(tc, idx_reads_images_and_labels_raw_and_gzip);
    tcase_add_test(tc, idx_rejects_malformed_files);
    tcase_add_test(tc, data_dir_order);
    tcase_add_test(tc, mnist_labels);
    tcase_add_test(tc, mnist_images);
    tcase_add_test(tc, csv_reads_values_and_names);
    tcase_add_test(tc, csv_values_outlive_the_scope);
    tcase_add_test(tc, csv_rejects_malformed_files);
    tcase_add_test(tc, csv_reads_cr_line_endings);
    tcase_add_test(tc, csv_messages_escape_control_bytes);
    tcase_add_test(tc, csv_reads_gzip);
    tcase_add_test(tc, csv_reads_iris);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
