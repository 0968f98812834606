/* One instance of the blocked GEMM (BLIS/GotoBLAS organisation) for one dtype and one instruction set.
 * Included by gemm_<isa>.c after defining:
 *   T, SUF (name suffix), MR x NR (register tile: MR rows of C by NR columns, NR a multiple of VL),
 *   KC, NC (cache blocks, NC a multiple of NR), VEC (vector type of VL lanes of T) and the vector operations
 *   VZERO(), VLOAD(p), VSTORE(p, v), VSET1(x), VMUL(a, b), VFMA(a, b, c) = a * b + c;
 *   optionally TRANSPOSE_BLOCK(src, ld, dst, ldd), a TB x TB in-register transpose (dst[k * ldd + r] =
 *   src[r * ld + k]) for packing a transposed B, and MRX (> MR), the most rows one micro-kernel call may take
 *   when registers allow: a last row panel of up to MRX rows then runs as one call instead of an MR-row call
 *   plus a mostly empty one (a 10-row product: one 10-row call rather than 8 rows, then 2 rows computed as 8).
 * It defines nbi_gemm_SUF and nbi_gemm_SUF_workspace (declared in gemm_internal.h).
 *
 * Loop nest of one stripe of C (rows r0..r1, columns c0..c1):
 *   for each NC-wide column block:
 *     for each KC-deep slice of the inner dimension: pack B's (KC, NC) block into NR-wide panels (meant for L2)
 *       for each MR-high row panel of A (MR x KC, meant for L1; packed only when A has no unit stride)
 *         for each NR-wide panel of the B block: micro-kernel, C tile += A panel @ B panel.
 * Packing makes every operand layout (row-major, transposed, broadcast with stride 0) look the same to the
 * micro-kernel and zero-pads the edges, so the micro-kernel only ever computes full tiles.
 *
 * Threads: C is cut into stripes (of whole NR-column panels, or of whole MR-row panels when C is tall and
 * narrow), one per thread, each with its own packing buffer. Tile boundaries, the K slices and the order of
 * operations for every element are those of the single-thread product, so results are bit-identical for any
 * thread count. */

#define GT_CAT2(a, b) a##b
#define GT_CAT(a, b) GT_CAT2(a, b)
#define GT(name) GT_CAT(name##_, SUF)

/* Products below this many multiply-adds run on one thread: waking the pool would cost more than it saves. */
#ifndef GT_PAR_MIN
#define GT_PAR_MIN (1 << 20)
#endif
#ifndef MRX
#define MRX MR
#define GT_UNDEF_MRX
#endif

/* A's (mr, kc) panel into dst (kc groups of MR values, p-major), rows mr..MR zero. Only used when neither of
 * A's strides is 1 (the micro-kernel reads A in place otherwise). */
static void GT(pack_a)(int64_t mr, int64_t kc, const T *restrict A, int64_t rsa, int64_t csa, T *restrict dst)
{
    for (int64_t p = 0; p < kc; p++)
        for (int64_t i = 0; i < MR; i++) dst[p * MR + i] = i < mr ? A[i * rsa + p * csa] : 0;
}

/* B's (kc, nc) block into NR-column panels (each kc rows of NR values, p-major), columns past nc zero. */
static void GT(pack_b)(int64_t kc, int64_t nc, const T *restrict B, int64_t rsb, int64_t csb, T *restrict dst)
{
    for (int64_t jr = 0; jr < nc; jr += NR, dst += kc * NR) {
        int64_t nr = nc - jr < NR ? nc - jr : NR;
        const T *src = B + jr * csb;
        if (csb == 1 && nr == NR) {
            for (int64_t p = 0; p < kc; p++) {
                const T *s = src + p * rsb;
#pragma GCC unroll 32
                for (int j = 0; j < NR; j++) dst[p * NR + j] = s[j];
            }
            continue;
        }
        if (rsb == 1) {
#ifdef TRANSPOSE_BLOCK
            /* TB x TB blocks transposed in registers, the ragged rest element by element */
            int64_t j0 = 0;
            for (; j0 + TB <= nr; j0 += TB) {
                int64_t p0 = 0;
                for (; p0 + TB <= kc; p0 += TB) TRANSPOSE_BLOCK(src + j0 * csb + p0, csb, dst + p0 * NR + j0, NR);
                for (int64_t j = j0; j < j0 + TB; j++)
                    for (int64_t p = p0; p < kc; p++) dst[p * NR + j] = src[j * csb + p];
            }
            for (int64_t j = j0; j < nr; j++) {
#else
            for (int64_t j = 0; j < nr; j++) {
#endif
                const T *s = src + j * csb;
                for (int64_t p = 0; p < kc; p++) dst[p * NR + j] = s[p];
            }
        } else {
            for (int64_t p = 0; p < kc; p++)
                for (int64_t j = 0; j < nr; j++) dst[p * NR + j] = src[p * rsb + j * csb];
        }
        /* a panel of at most VL columns is read by the half-width kernel, which ignores its second half */
        int64_t pad_to = NR / VL == 2 && nr <= VL ? VL : NR;
        for (int64_t p = 0; p < kc; p++)
            for (int64_t j = nr; j < pad_to; j++) dst[p * NR + j] = 0;
    }
}

/* C tile (mr, nr) = alpha * (A panel @ b panel) + beta * C tile; beta = 0 does not read C. The A panel's
 * element (i, p) is a[i * ars + p * acs]: a packed panel (ars 1, acs MR) or A itself when one of its strides
 * is 1 (rows past mr then repeat the last valid row, whose results are discarded). Only the first nvu vectors
 * of each B row are used, which skips the padding of a narrow last panel. Full tiles of a row-major C are
 * stored straight from the registers; edge tiles go through a buffer with the same vector arithmetic, so an
 * element's result does not depend on where the tile boundaries fall. */
static inline __attribute__((always_inline)) void GT(ukernel_body)(int64_t kc, const T *a, int64_t ars, int64_t acs,
                                                                  const T *restrict b, int64_t brs, T alpha,
                                                                  T beta, T *restrict c, int64_t rsc, int64_t csc,
                                                                  int64_t mr, int64_t nr, const int nvu,
                                                                  const int rows)
{
    enum { NV = NR / VL };
    VEC acc[MRX][NV];
    const T *ai[MRX];
#pragma GCC unroll 32
    for (int i = 0; i < rows; i++) {
        ai[i] = a + (i < mr ? i : mr - 1) * ars;
#pragma GCC unroll 8
        for (int j = 0; j < nvu; j++) acc[i][j] = VZERO();
    }
    int64_t off = 0;
    for (int64_t p = 0; p < kc; p++, off += acs, b += brs) {
        VEC bv[NV];
#pragma GCC unroll 8
        for (int j = 0; j < nvu; j++) bv[j] = VLOAD(b + j * VL);
#pragma GCC unroll 32
        for (int i = 0; i < rows; i++) {
            VEC av = VSET1(ai[i][off]);
#pragma GCC unroll 8
            for (int j = 0; j < nvu; j++) acc[i][j] = VFMA(av, bv[j], acc[i][j]);
        }
    }
    VEC va = VSET1(alpha), vb = VSET1(beta);
    if (mr == rows && nr == nvu * VL && csc == 1) {
#pragma GCC unroll 32
        for (int i = 0; i < rows; i++)
#pragma GCC unroll 8
            for (int j = 0; j < nvu; j++) {
                T *cp = c + i * rsc + j * VL;
                VEC t = alpha == 1 ? acc[i][j] : VMUL(va, acc[i][j]); /* 1 * x is x: same bits */
                if (beta != 0) t = VFMA(vb, VLOAD(cp), t);
                VSTORE(cp, t);
            }
        return;
    }
    T tile[MRX * NR] __attribute__((aligned(64)));
    if (beta != 0) {
        for (int i = 0; i < rows * NR; i++) tile[i] = 0;
        for (int64_t i = 0; i < mr; i++)
            for (int64_t j = 0; j < nr; j++) tile[i * NR + j] = c[i * rsc + j * csc];
    }
    /* unrolled like the loops above so that acc stays in registers (a variable index would make the compiler
     * spill every accumulator to the stack before the full-tile path too) */
#pragma GCC unroll 32
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 8
        for (int j = 0; j < nvu; j++) {
            VEC t = alpha == 1 ? acc[i][j] : VMUL(va, acc[i][j]); /* 1 * x is x: same bits */
            if (beta != 0) t = VFMA(vb, VLOAD(tile + i * NR + j * VL), t);
            VSTORE(tile + i * NR + j * VL, t);
        }
    for (int64_t i = 0; i < mr; i++)
        for (int64_t j = 0; j < nr; j++) c[i * rsc + j * csc] = tile[i * NR + j];
}

/* The body specialised for the common A layouts (packed or transposed: ars 1; row-major: acs 1), where a
 * constant stride lets the compiler address every row from one index, for narrow last panels, and for a last
 * row panel taller than MR (only A read in place has one: see stripe). */
#define GT_BODY_ROWS(ARS, ACS, ROWS)                                                                           \
    do {                                                                                                       \
        if (NR / VL == 2 && nr <= VL)                                                                          \
            GT(ukernel_body)(kc, a, ARS, ACS, b, brs, alpha, beta, c, rsc, csc, mr, nr, 1, ROWS);                   \
        else                                                                                                   \
            GT(ukernel_body)(kc, a, ARS, ACS, b, brs, alpha, beta, c, rsc, csc, mr, nr, NR / VL, ROWS);             \
    } while (0)
#define GT_BODY(ARS, ACS)                                                                                      \
    do {                                                                                                       \
        if (MRX >= MR + 4 && mr > MR) { /* as many rows as there are, up to MR + 4 */                          \
            if (mr == MR + 1) GT_BODY_ROWS(ARS, ACS, MR + 1);                                                  \
            else if (mr == MR + 2) GT_BODY_ROWS(ARS, ACS, MR + 2);                                             \
            else if (mr == MR + 3) GT_BODY_ROWS(ARS, ACS, MR + 3);                                             \
            else GT_BODY_ROWS(ARS, ACS, MRX);                                                                  \
        } else if (MRX > MR && mr > MR) GT_BODY_ROWS(ARS, ACS, MRX);                                           \
        else GT_BODY_ROWS(ARS, ACS, MR);                                                                       \
    } while (0)
static void GT(ukernel)(int64_t kc, const T *a, int64_t ars, int64_t acs, const T *restrict b, int64_t brs,
                        T alpha, T beta,
                        T *restrict c, int64_t rsc, int64_t csc, int64_t mr, int64_t nr)
{
    if (ars == 1) GT_BODY(1, acs);
    else if (acs == 1) GT_BODY(ars, 1);
    else GT_BODY(ars, acs);
}
#undef GT_BODY
#undef GT_BODY_ROWS

typedef struct GT(job) {
    int64_t M, N, K;
    T alpha, beta;
    const T *A, *B;
    T *C;
    int64_t rsa, csa, rsb, csb, rsc, csc;
    char *work;
    size_t slot_bytes;
    bool split_n;    /* stripes of columns (else of rows) */
    int64_t units;   /* NR-column (or MR-row) panels to share out */
    int64_t nstripes;
} GT(job);

static void GT(stripe)(const GT(job) * j, int64_t r0, int64_t r1, int64_t c0, int64_t c1, T *bp)
{
    T ap[MR * KC] __attribute__((aligned(64)));
    /* With a single row panel each element of B is used once: packing it would cost as much as the product, so
     * row-major B is read in place (full panels only; a ragged last panel is still packed, zero-padded). */
    bool a_in_place = j->rsa == 1 || j->csa == 1;
    bool b_in_place = j->csb == 1 && r1 - r0 <= (a_in_place ? MRX : MR);
    for (int64_t jc = c0; jc < c1; jc += NC) {
        int64_t nc = c1 - jc < NC ? c1 - jc : NC;
        for (int64_t pc = 0; pc < j->K; pc += KC) {
            int64_t kc = j->K - pc < KC ? j->K - pc : KC;
            T beta = pc == 0 ? j->beta : 1; /* later slices accumulate onto the first */
            if (b_in_place) {
                const T *a = j->A + r0 * j->rsa + pc * j->csa;
                int64_t ars = j->rsa, acs = j->csa;
                if (!a_in_place) {
                    GT(pack_a)(r1 - r0, kc, a, ars, acs, ap);
                    a = ap;
                    ars = 1;
                    acs = MR;
                }
                T *c = j->C + r0 * j->rsc + jc * j->csc;
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    int64_t nr = nc - jr < NR ? nc - jr : NR;
                    const T *b = j->B + pc * j->rsb + jc + jr;
                    int64_t brs = j->rsb;
                    if (nr < NR) {
                        GT(pack_b)(kc, nr, b, j->rsb, 1, bp);
                        b = bp;
                        brs = NR;
                    }
                    GT(ukernel)(kc, a, ars, acs, b, brs, j->alpha, beta, c + jr * j->csc, j->rsc, j->csc, r1 - r0,
                                nr);
                }
                continue;
            }
            GT(pack_b)(kc, nc, j->B + pc * j->rsb + jc * j->csb, j->rsb, j->csb, bp);
            for (int64_t ir = r0, mr; ir < r1; ir += mr) {
                /* A is read in place when one of its strides is 1, else packed (in MR-row panels) */
                const T *a = j->A + ir * j->rsa + pc * j->csa;
                int64_t ars = j->rsa, acs = j->csa;
                mr = r1 - ir <= (ars == 1 || acs == 1 ? MRX : MR) ? r1 - ir : MR;
                if (ars != 1 && acs != 1) {
                    GT(pack_a)(mr, kc, a, ars, acs, ap);
                    a = ap;
                    ars = 1;
                    acs = MR;
                }
                T *c = j->C + ir * j->rsc + jc * j->csc;
                for (int64_t jr = 0; jr < nc; jr += NR)
                    GT(ukernel)(kc, a, ars, acs, bp + jr * kc, NR, j->alpha, beta, c + jr * j->csc, j->rsc, j->csc,
                                mr, nc - jr < NR ? nc - jr : NR);
            }
        }
    }
}

static void GT(run_stripes)(void *ctx, int64_t begin, int64_t end)
{
    const GT(job) *j = ctx;
    T *bp = (T *)(j->work + (size_t)begin * j->slot_bytes); /* stripes of one call run in turn */
    for (int64_t s = begin; s < end; s++) {
        int64_t u0 = s * j->units / j->nstripes, u1 = (s + 1) * j->units / j->nstripes;
        if (j->split_n) {
            int64_t c1 = u1 * NR < j->N ? u1 * NR : j->N;
            GT(stripe)(j, 0, j->M, u0 * NR, c1, bp);
        } else {
            int64_t r1 = u1 * MR < j->M ? u1 * MR : j->M;
            GT(stripe)(j, u0 * MR, r1, 0, j->N, bp);
        }
    }
}

/* How the product is shared out: the number of stripes (1 = single thread), their direction and units. */
static int64_t GT(plan)(int64_t M, int64_t N, int64_t K, bool *split_n, int64_t *units)
{
    int64_t un = (N + NR - 1) / NR, um = (M + MR - 1) / MR;
    int nt = nbi_num_threads();
    *split_n = un >= um || un >= 4 * (int64_t)nt;
    *units = *split_n ? un : um;
    if (nt == 1 || (double)M * (double)N * (double)K < GT_PAR_MIN) return 1;
    return *units < nt ? *units : nt;
}

static size_t GT(slot_bytes)(int64_t M, int64_t N, int64_t K, bool split_n, int64_t units, int64_t nstripes)
{
    /* a stripe is at most ceil(units / nstripes) panels wide */
    int64_t width = split_n ? ((units + nstripes - 1) / nstripes) * NR : (N + NR - 1) / NR * NR;
    if (width > NC) width = NC;
    int64_t kc = K < KC ? K : KC;
    return ((size_t)(kc * width) * sizeof(T) + 63) & ~(size_t)63;
}

size_t GT(nbi_gemm_workspace)(int64_t M, int64_t N, int64_t K)
{
    if (M <= 0 || N <= 0 || K <= 0) return 64;
    bool split_n;
    int64_t units, ns = GT(plan)(M, N, K, &split_n, &units);
    return 64 + (size_t)ns * GT(slot_bytes)(M, N, K, split_n, units, ns);
}

void GT(nbi_gemm)(int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t rsa, int64_t csa, const T *B,
                  int64_t rsb, int64_t csb, T beta, T *C, int64_t rsc, int64_t csc, void *work)
{
    GT(job) j = {M, N, K, alpha, beta, A, B, C, rsa, csa, rsb, csb, rsc, csc, NULL, 0, false, 0, 0};
    j.nstripes = GT(plan)(M, N, K, &j.split_n, &j.units);
    j.slot_bytes = GT(slot_bytes)(M, N, K, j.split_n, j.units, j.nstripes);
    j.work = (char *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    if (j.nstripes == 1) GT(run_stripes)(&j, 0, 1);
    else nbi_parallel_for(j.nstripes, 1, GT(run_stripes), &j);
}

#ifdef GT_UNDEF_MRX
#undef MRX
#undef GT_UNDEF_MRX
#endif
#undef GT
#undef GT_CAT
#undef GT_CAT2
