/* Random numbers: the exact streams of a seed, reproducibility, independence of generators, distributions,
 * and error paths.
 *
 * The reference numbers for seed 42 come from an independent Python implementation of the published
 * algorithms (splitmix64 seeding of xoshiro256**, uniform = top 53 bits * 2^-53, Marsaglia's polar method with
 * the standard library's log), not from nabla: they pin the generator to the algorithm it claims to be. */
#include "helpers.h"

#include <pthread.h>

static const uint64_t seed42_u64[] = {0x15780b2e0c2ec716ull, 0x6104d9866d113a7eull, 0xae17533239e499a1ull,
                                      0xecb8ad4703b360a1ull, 0xfde6dc7fe2ec5e64ull, 0xc50da53101795238ull};
static const double seed42_uniform[] = {0.08386297105988216, 0.3789802506626686, 0.6800434110281394,
                                        0.9246929453253876};
static const double seed42_normal[] = {-0x1.73d2feb0fb377p-1 /* -0.7262191382447857 */,
                                       -0x1.b088028693f9cp-3 /* -0.21119691823195985 */,
                                       0x1.c5e21f7812a4cp-3 /* 0.2216227015035933 */,
                                       0x1.0ba8bb0c5fa51p-1 /* 0.5227716877560146 */};

START_TEST(seed_42_streams)
{
    nb_generator g;
    nb_generator_seed(&g, 42);
    for (int i = 0; i < 6; i++) ck_assert_uint_eq(nb_random_u64(&g), seed42_u64[i]);
    nb_generator_seed(&g, 42);
    for (int i = 0; i < 4; i++) ck_assert_double_eq(nb_random_uniform(&g), seed42_uniform[i]);
    nb_generator_seed(&g, 42);
    for (int i = 0; i < 4; i++) ck_assert_double_eq(nb_random_normal(&g), seed42_normal[i]);
    /* reseeding drops the spare normal of the polar pair */
    nb_random_normal(&g);
    nb_generator_seed(&g, 42);
    ck_assert_double_eq(nb_random_normal(&g), seed42_normal[0]);
}
END_TEST

START_TEST(manual_seed_drives_the_default_generator)
{
    nb_manual_seed(42);
    for (int i = 0; i < 6; i++) ck_assert_uint_eq(nb_random_u64(NULL), seed42_u64[i]);
    nb_manual_seed(42);
    ck_assert_double_eq(nb_random_uniform(NULL), seed42_uniform[0]);
    ck_assert_uint_eq(nb_random_u64(nb_default_generator()), seed42_u64[1]);
    nb_manual_seed(42);
    ck_assert_double_eq(nb_random_normal(NULL), seed42_normal[0]);
    ck_assert_double_eq(nb_random_normal(NULL), seed42_normal[1]);
}
END_TEST

/* A new thread's default generator starts from seed 0 whatever other threads did. */
static void *first_u64(void *out)
{
    *(uint64_t *)out = nb_random_u64(NULL);
    return NULL;
}

START_TEST(each_thread_starts_from_seed_0)
{
    nb_manual_seed(123);
    nb_random_u64(NULL);
    uint64_t got = 0;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, first_u64, &got), 0);
    pthread_join(th, NULL);
    ck_assert_uint_eq(got, 0x99ec5f36cb75f2b4ull); /* seed 0, from the Python reference */
    nb_generator g;
    nb_generator_seed(&g, 0);
    ck_assert_uint_eq(nb_random_u64(&g), got);
}
END_TEST

static bool same_values(nb_tensor *a, nb_tensor *b)
{
    int64_t n = nb_numel(a);
    if (n != nb_numel(b)) return false;
    for (int64_t i = 0; i < n; i++)
        if (nb_get_flat(a, i) != nb_get_flat(b, i)) return false;
    return true;
}

START_TEST(same_seed_same_tensors)
{
    nb_scope_begin();
    nb_generator g1, g2;
    nb_generator_seed(&g1, 7);
    nb_generator_seed(&g2, 7);
    ck_assert(same_values(nb_randn(NB_SHAPE(3, 5), 0, 1, NB_F64, &g1), nb_randn(NB_SHAPE(3, 5), 0, 1, NB_F64, &g2)));
    ck_assert(same_values(nb_rand(NB_SHAPE(17), -1, 2, NB_F32, &g1), nb_rand(NB_SHAPE(17), -1, 2, NB_F32, &g2)));
    ck_assert(same_values(nb_randint(NB_SHAPE(9), 0, 100, &g1), nb_randint(NB_SHAPE(9), 0, 100, &g2)));
    ck_assert(same_values(nb_randperm(20, &g1), nb_randperm(20, &g2)));
    /* through the default generator */
    nb_manual_seed(99);
    nb_tensor *a = nb_randn(NB_SHAPE(4, 4), 0, 1, NB_F32, NULL);
    nb_manual_seed(99);
    nb_tensor *b = nb_randn(NB_SHAPE(4, 4), 0, 1, NB_F32, NULL);
    ck_assert(same_values(a, b));
    /* the tensor holds exactly the generator's stream (f64: no rounding) */
    nb_generator_seed(&g1, 42);
    nb_tensor *u = nb_rand(NB_SHAPE(2, 2), 0, 1, NB_F64, &g1);
    ck_assert_values(u, 0, seed42_uniform[0], seed42_uniform[1], seed42_uniform[2], seed42_uniform[3]);
    nb_generator_seed(&g1, 42);
    nb_tensor *z = nb_randn(NB_SHAPE(4), 3, 2, NB_F64, &g1);
    ck_assert_values(z, 1e-15, 3 + 2 * seed42_normal[0], 3 + 2 * seed42_normal[1], 3 + 2 * seed42_normal[2],
                     3 + 2 * seed42_normal[3]);
    nb_scope_end();
}
END_TEST

START_TEST(different_seeds_differ)
{
    nb_scope_begin();
    nb_generator g1, g2;
    nb_generator_seed(&g1, 1);
    nb_generator_seed(&g2, 2);
    nb_tensor *a = nb_randn(NB_SHAPE(100), 0, 1, NB_F64, &g1);
    nb_tensor *b = nb_randn(NB_SHAPE(100), 0, 1, NB_F64, &g2);
    int equal = 0;
    for (int64_t i = 0; i < 100; i++) equal += nb_get_flat(a, i) == nb_get_flat(b, i);
    ck_assert_int_eq(equal, 0);
    /* successive draws differ too */
    nb_tensor *c = nb_randn(NB_SHAPE(100), 0, 1, NB_F64, &g1);
    ck_assert(!same_values(a, c));
    nb_scope_end();
}
END_TEST

START_TEST(explicit_generators_leave_the_default_alone)
{
    nb_scope_begin();
    nb_manual_seed(5);
    uint64_t expected[3];
    for (int i = 0; i < 3; i++) expected[i] = nb_random_u64(NULL);

    nb_manual_seed(5);
    nb_generator g;
    nb_generator_seed(&g, 5);
    ck_assert_uint_eq(nb_random_u64(NULL), expected[0]);
    nb_randn(NB_SHAPE(50), 0, 1, NB_F32, &g);
    nb_rand(NB_SHAPE(50), 0, 1, NB_F64, &g);
    nb_randint(NB_SHAPE(50), 0, 3, &g);
    nb_randperm(50, &g);
    ck_assert_uint_eq(nb_random_u64(NULL), expected[1]);
    ck_assert_uint_eq(nb_random_u64(NULL), expected[2]);
    /* and the explicit generator moved on its own: its next number is not its first */
    nb_generator fresh;
    nb_generator_seed(&fresh, 5);
    ck_assert_uint_ne(nb_random_u64(&g), nb_random_u64(&fresh));
    nb_scope_end();
}
END_TEST

START_TEST(generator_state_can_be_saved_and_restored)
{
    nb_scope_begin();
    nb_manual_seed(11);
    nb_random_normal(NULL); /* leaves a spare normal in the state */
    nb_generator saved = *nb_default_generator();
    nb_tensor *a = nb_randn(NB_SHAPE(5), 0, 1, NB_F64, NULL);
    *nb_default_generator() = saved;
    nb_tensor *b = nb_randn(NB_SHAPE(5), 0, 1, NB_F64, NULL);
    ck_assert(same_values(a, b));
    nb_scope_end();
}
END_TEST

static void moments(nb_tensor *t, double *mean, double *std)
{
    int64_t n = nb_numel(t);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) s += nb_get_flat(t, i);
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = nb_get_flat(t, i) - *mean;
        s2 += d * d;
    }
    *std = sqrt(s2 / (double)(n - 1));
}

START_TEST(normal_statistics)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 2024);
    double mean, std;
    moments(nb_randn(NB_SHAPE(100000), 0, 1, NB_F64, &g), &mean, &std);
    ck_assert_close(mean, 0, 0.02);
    ck_assert_close(std, 1, 0.02);
    moments(nb_randn(NB_SHAPE(100, 1000), -3, 0.5, NB_F32, &g), &mean, &std);
    ck_assert_close(mean, -3, 0.01);
    ck_assert_close(std, 0.5, 0.01);
    /* std 0 gives the mean exactly */
    ck_assert_values(nb_randn(NB_SHAPE(3), 4, 0, NB_F64, &g), 0, 4, 4, 4);
    /* the tails are there: about 0.27% of values beyond 3 sigma */
    nb_tensor *z = nb_randn(NB_SHAPE(100000), 0, 1, NB_F64, &g);
    int beyond = 0;
    for (int64_t i = 0; i < 100000; i++) beyond += fabs(nb_get_flat(z, i)) > 3;
    ck_assert_int_gt(beyond, 170);
    ck_assert_int_lt(beyond, 370);
    nb_scope_end();
}
END_TEST

START_TEST(uniform_range_and_statistics)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 3);
    nb_tensor *u = nb_rand(NB_SHAPE(100000), -2, 3, NB_F64, &g);
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < 100000; i++) {
        double v = nb_get_flat(u, i);
        lo = fmin(lo, v);
        hi = fmax(hi, v);
    }
    ck_assert(lo >= -2 && hi < 3);
    ck_assert_close(lo, -2, 1e-3);
    ck_assert_close(hi, 3, 1e-3);
    double mean, std;
    moments(u, &mean, &std);
    ck_assert_close(mean, 0.5, 0.02);
    ck_assert_close(std, 5 / sqrt(12.0), 0.02);
    /* f32, and low == high gives low */
    nb_tensor *f = nb_rand(NB_SHAPE(1000), 10, 11, NB_F32, &g);
    ck_assert_int_eq(nb_dtype_of(f), NB_F32);
    for (int64_t i = 0; i < 1000; i++) ck_assert(nb_get_flat(f, i) >= 10 && nb_get_flat(f, i) < 11);
    ck_assert_values(nb_rand(NB_SHAPE(2), 1.5, 1.5, NB_F64, &g), 0, 1.5, 1.5);
    nb_scope_end();
}
END_TEST

START_TEST(in_place_fills_follow_row_major_order)
{
    nb_scope_begin();
    nb_generator g;
    /* a transposed view gets the same row-major sequence as a contiguous tensor */
    nb_tensor *base = nb_zeros(NB_SHAPE(3, 4), NB_F64);
    nb_tensor *view = nb_transpose(base, 0, 1);
    ck_assert_tensor(view);
    nb_generator_seed(&g, 8);
    ck_assert_ok(nb_normal_(view, 1, 2, &g));
    nb_generator_seed(&g, 8);
    ck_assert(same_values(view, nb_randn(NB_SHAPE(4, 3), 1, 2, NB_F64, &g)));
    /* in place on a slice writes only the slice */
    nb_tensor *t = nb_zeros(NB_SHAPE(10), NB_F32);
    nb_generator_seed(&g, 8);
    ck_assert_ok(nb_uniform_(nb_slice(t, 0, 0, 10, 2), 5, 6, &g));
    for (int64_t i = 0; i < 10; i++) {
        double v = nb_get_flat(t, i);
        if (i % 2) ck_assert_double_eq(v, 0);
        else ck_assert(v >= 5 && v < 6);
    }
    nb_scope_end();
}
END_TEST

START_TEST(randint_covers_its_range)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 4);
    nb_tensor *r = nb_randint(NB_SHAPE(100, 100), -3, 4, &g);
    ck_assert_int_eq(nb_dtype_of(r), NB_I64);
    ck_assert_shape(r, 100, 100);
    int counts[7] = {0};
    for (int64_t i = 0; i < 10000; i++) {
        double v = nb_get_flat(r, i);
        ck_assert(v >= -3 && v < 4 && v == floor(v));
        counts[(int)v + 3]++;
    }
    for (int k = 0; k < 7; k++) ck_assert_int_gt(counts[k], 10000 / 7 - 200); /* ~5 sigma */
    /* a one-value range, and the full i64 range */
    ck_assert_values(nb_randint(NB_SHAPE(3), 9, 10, &g), 0, 9, 9, 9);
    nb_tensor *wide = nb_randint(NB_SHAPE(64), INT64_MIN, INT64_MAX, &g);
    int64_t w[64];
    ck_assert_ok(nb_to_array(wide, w, 64, NB_I64));
    int negative = 0;
    for (int i = 0; i < 64; i++) negative += w[i] < 0;
    ck_assert(negative > 10 && negative < 54);
    nb_scope_end();
}
END_TEST

START_TEST(randperm_is_a_permutation)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 6);
    nb_tensor *p = nb_randperm(1000, &g);
    ck_assert_int_eq(nb_dtype_of(p), NB_I64);
    ck_assert_shape(p, 1000);
    int64_t v[1000];
    ck_assert_ok(nb_to_array(p, v, 1000, NB_I64));
    bool seen[1000] = {false};
    int fixed = 0;
    for (int i = 0; i < 1000; i++) {
        ck_assert(v[i] >= 0 && v[i] < 1000 && !seen[v[i]]);
        seen[v[i]] = true;
        fixed += v[i] == i;
    }
    ck_assert_int_lt(fixed, 10); /* about 1 fixed point expected: the order really is shuffled */
    ck_assert_shape(nb_randperm(0, &g), 0);
    ck_assert_values(nb_randperm(1, &g), 0, 0);
    nb_scope_end();
}
END_TEST

START_TEST(random_below_is_unbiased)
{
    nb_generator g;
    nb_generator_seed(&g, 10);
    for (int i = 0; i < 100; i++) ck_assert_uint_eq(nb_random_below(&g, 1), 0);
    int counts[6] = {0};
    for (int i = 0; i < 60000; i++) {
        uint64_t r = nb_random_below(&g, 6);
        ck_assert_uint_lt(r, 6);
        counts[r]++;
    }
    for (int k = 0; k < 6; k++) ck_assert_int_lt(abs(counts[k] - 10000), 500);
    /* n = 3 * 2^62: taking 64 random bits modulo n would make [0, 2^62) twice as likely as its share of 1/3 */
    const uint64_t n = 3ull << 62;
    int low = 0;
    for (int i = 0; i < 3000; i++) {
        uint64_t r = nb_random_below(&g, n);
        ck_assert_uint_lt(r, n);
        low += r < (1ull << 62);
    }
    ck_assert_int_gt(low, 900);
    ck_assert_int_lt(low, 1100);
}
END_TEST

START_TEST(errors)
{
    nb_scope_begin();
    nb_generator g;
    nb_generator_seed(&g, 1);
    ck_assert_ptr_null(nb_rand(NB_SHAPE(2), 0, 1, NB_I64, &g));
    ck_assert_error(NB_ERR_DTYPE, "needs an f32 or f64 tensor", "i64");
    ck_assert_ptr_null(nb_randn(NB_SHAPE(2), 0, 1, NB_BOOL, &g));
    ck_assert_error(NB_ERR_DTYPE, "needs an f32 or f64 tensor", "bool");
    ck_assert_ptr_null(nb_rand(NB_SHAPE(2), 1, 0, NB_F32, &g));
    ck_assert_error(NB_ERR_VALUE, "low <= high", "1 and 0");
    ck_assert_ptr_null(nb_rand(NB_SHAPE(2), 0, INFINITY, NB_F32, &g));
    ck_assert_error(NB_ERR_VALUE, "finite low <= high");
    ck_assert_ptr_null(nb_rand(NB_SHAPE(2), NAN, 1, NB_F32, &g));
    ck_assert_error(NB_ERR_VALUE, "finite low <= high");
    ck_assert_ptr_null(nb_randn(NB_SHAPE(2), 0, -1, NB_F64, &g));
    ck_assert_error(NB_ERR_VALUE, "std >= 0", "-1");
    ck_assert_ptr_null(nb_randn(NB_SHAPE(2), NAN, 1, NB_F64, &g));
    ck_assert_error(NB_ERR_VALUE, "finite mean");
    /* finite bounds whose values or span the dtype cannot hold would give all inf: refused, as in PyTorch */
    ck_assert_ptr_null(nb_rand(NB_SHAPE(4), -1.7e308, 1.7e308, NB_F64, &g));
    ck_assert_error(NB_ERR_VALUE, "nb_rand", "high - low overflows f64", "-1.7e+308", "1.7e+308");
    ck_assert_ptr_null(nb_rand(NB_SHAPE(4), 0, 1e39, NB_F32, &g));
    ck_assert_error(NB_ERR_VALUE, "nb_rand", "bound 1e+39 is out of range for f32");
    ck_assert_ptr_null(nb_rand(NB_SHAPE(4), -1e39, 0, NB_F32, &g));
    ck_assert_error(NB_ERR_VALUE, "nb_rand", "bound -1e+39 is out of range for f32");
    ck_assert_ptr_null(nb_rand(NB_SHAPE(4), -3e38, 3e38, NB_F32, &g));
    ck_assert_error(NB_ERR_VALUE, "nb_rand", "high - low overflows f32", "-3e+38", "3e+38");
    {
        nb_tensor *d = nb_zeros(NB_SHAPE(4), NB_F64);
        ck_assert_int_eq(nb_uniform_(d, -1.7e308, 1.7e308, &g), NB_ERR_VALUE);
        ck_assert_error(NB_ERR_VALUE, "nb_uniform_", "high - low overflows f64");
        ck_assert_values(d, 0, 0, 0, 0, 0); /* untouched */
        /* the largest spans that fit still give finite values inside the bounds */
        ck_assert_ok(nb_uniform_(d, -8e307, 8e307, &g));
        for (int64_t k = 0; k < 4; k++) {
            double v = nb_get_flat(d, k);
            ck_assert(isfinite(v) && v >= -8e307 && v < 8e307);
        }
        nb_tensor *f = nb_rand(NB_SHAPE(4), -3.4e38, -3.3e38, NB_F32, &g); /* near f32's limit, small span */
        ck_assert_ptr_nonnull(f);
        for (int64_t k = 0; k < 4; k++) {
            double v = nb_get_flat(f, k);
            ck_assert(isfinite(v) && v >= -3.4e38 && v <= -3.3e38);
        }
        ck_assert_ptr_nonnull(nb_rand(NB_SHAPE(4), 0, 1e39, NB_F64, &g)); /* fine in f64 */
    }
    ck_assert_ptr_null(nb_rand(NB_SHAPE(2, -1), 0, 1, NB_F32, &g));
    ck_assert_error(NB_ERR_SHAPE, "nb_rand", "negative size", "(2, -1)");
    ck_assert_ptr_null(nb_randint(NB_SHAPE(2), 5, 5, &g));
    ck_assert_error(NB_ERR_VALUE, "nb_randint", "low < high", "5 and 5");
    ck_assert_ptr_null(nb_randperm(-1, &g));
    ck_assert_error(NB_ERR_VALUE, "nb_randperm", "-1");

    nb_tensor *i = nb_zeros(NB_SHAPE(3), NB_I64);
    ck_assert_int_eq(nb_uniform_(i, 0, 1, &g), NB_ERR_DTYPE);
    ck_assert_error(NB_ERR_DTYPE, "nb_uniform_", "i64");
    ck_assert_int_eq(nb_normal_(i, 0, 1, &g), NB_ERR_DTYPE);
    ck_assert_error(NB_ERR_DTYPE, "nb_normal_", "i64");
    ck_assert_values(i, 0, 0, 0, 0); /* untouched */
    /* an expanded tensor: 12 draws into 3 locations would leave 3 values repeated, so it is refused (PyTorch too) */
    nb_tensor *col = nb_zeros(NB_SHAPE(3, 1), NB_F32), *wide = nb_expand(col, NB_SHAPE(3, 4));
    ck_assert_int_eq(nb_uniform_(wide, 0, 1, &g), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_uniform_", "(3, 4)", "dim 1 has stride 0");
    ck_assert_int_eq(nb_normal_(wide, 0, 1, &g), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_normal_", "several elements at one memory location");
    ck_assert_values(col, 0, 0, 0, 0);
    ck_assert_ok(nb_uniform_(nb_expand(col, NB_SHAPE(3, 1)), 0, 1, &g)); /* size-1 dims may have any stride */
    nb_clear_error();
    ck_assert_int_eq(nb_uniform_(NULL, 0, 1, &g), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_uniform_: tensor is NULL");
    nb_scope_end();
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("random");
    TCase *tc = tcase_create("random");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, seed_42_streams);
    tcase_add_test(tc, manual_seed_drives_the_default_generator);
    tcase_add_test(tc, each_thread_starts_from_seed_0);
    tcase_add_test(tc, same_seed_same_tensors);
    tcase_add_test(tc, different_seeds_differ);
    tcase_add_test(tc, explicit_generators_leave_the_default_alone);
    tcase_add_test(tc, generator_state_can_be_saved_and_restored);
    tcase_add_test(tc, normal_statistics);
    tcase_add_test(tc, uniform_range_and_statistics);
    tcase_add_test(tc, in_place_fills_follow_row_major_order);
    tcase_add_test(tc, randint_covers_its_range);
    tcase_add_test(tc, randperm_is_a_permutation);
    tcase_add_test(tc, random_below_is_unbiased);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
