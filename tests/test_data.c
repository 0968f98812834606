/* data/: preprocessing (standardizer, min-max, one-hot), splits, the batch iterator, metrics and the progress
 * display. Reference numbers for the scalers and metrics come from scikit-learn 1.2
 * (tests/reference/data_reference.py). */
#include "helpers.h"

#include <errno.h>
#include <time.h>

/* The whole contents of a stream written by the code under test. */
static char *read_back(FILE *f)
{
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    char *text = calloc((size_t)n + 1, 1);
    rewind(f);
    ck_assert_int_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    return text;
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

/* i64 tensor contents as an array of at most 64 values. */
static int64_t to_ints(nb_tensor *t, int64_t *out)
{
    ck_assert_tensor(t);
    int64_t n = nb_numel(t);
    ck_assert_int_le(n, 64);
    ck_assert_ok(nb_to_array(t, out, 64, NB_I64));
    return n;
}

/* The test indices of nb_train_test_split(10, 0.25, 42): pinned, since they depend only on nabla's own
 * generator. */
#define SPLIT_T0 7
#define SPLIT_T1 3
#define SPLIT_T2 8

/* ------------------------------------------------------------------------------------------------
 * Preprocessing
 * ---------------------------------------------------------------------------------------------- */
#define TRAIN_X(dt) T_##dt(NB_SHAPE(4, 3), 1, 2, 5, 3, 2, 7, 5, 2, 9, 7, 2, 3)
#define TEST_X(dt) T_##dt(NB_SHAPE(2, 3), 0, 3, 6, 4, 2, 1)

START_TEST(standardizer_matches_scikit_learn)
{
    nb_standardizer s;
    nb_scope_begin(); /* fitted inside a scope: the struct's tensors must outlive it */
    ck_assert_ok(nb_standardizer_fit(&s, TRAIN_X(F64)));
    nb_scope_end();
    ck_assert(nb_is_valid(s.mean) && nb_is_valid(s.std));
    ck_assert_shape(s.mean, 3);
    ck_assert_values(s.mean, 1e-12, 4, 2, 6);
    ck_assert_values(s.std, 1e-12, sqrt(5), 0, sqrt(5)); /* biased: divides by N, the constant column is 0 */
    nb_scope_begin();
    ck_assert_values(nb_standardizer_apply(&s, TRAIN_X(F64)), 1e-12, -1.3416407864998738, 0.0, -0.4472135954999579,
                     -0.4472135954999579, 0.0, 0.4472135954999579, 0.4472135954999579, 0.0, 1.3416407864998738,
                     1.3416407864998738, 0.0, -1.3416407864998738);
    /* fitted on train, applied to test: the constant column is shifted, not scaled */
    nb_tensor *t = nb_standardizer_apply(&s, TEST_X(F64));
    ck_assert_shape(t, 2, 3);
    ck_assert_int_eq(nb_dtype_of(t), NB_F64);
    ck_assert_values(t, 1e-12, -1.7888543819998317, 1.0, 0.0, 0.0, 0.0, -2.23606797749979);
    /* f32 data keeps its dtype; i64 data becomes f32 */
    nb_tensor *t32 = nb_standardizer_apply(&s, TEST_X(F32));
    ck_assert_int_eq(nb_dtype_of(t32), NB_F32);
    ck_assert_values(t32, 1e-6, -1.7888543819998317, 1.0, 0.0, 0.0, 0.0, -2.23606797749979);
    nb_tensor *ti = nb_standardizer_apply(&s, T_I64(NB_SHAPE(1, 3), 4, 2, 6));
    ck_assert_int_eq(nb_dtype_of(ti), NB_F32);
    ck_assert_values(ti, 0, 0, 0, 0);
    nb_scope_end();
    nb_standardizer_free(&s);
    ck_assert_ptr_null(s.mean);
    nb_standardizer_free(&s); /* twice is harmless */
    ck_assert_int_eq(nb_last_status(), NB_OK);
}
END_TEST

START_TEST(standardizer_noncontiguous_and_f32)
{
    nb_scope_begin();
    /* the transpose of the training matrix, transposed back: same statistics from strided reads */
    nb_tensor *xt = nb_transpose(T_F32(NB_SHAPE(3, 4), 1, 3, 5, 7, 2, 2, 2, 2, 5, 7, 9, 3), 0, 1);
    ck_assert(!nb_is_contiguous(xt));
    nb_standardizer s;
    ck_assert_ok(nb_standardizer_fit(&s, xt));
    ck_assert_int_eq(nb_dtype_of(s.mean), NB_F64);
    ck_assert_values(s.mean, 1e-12, 4, 2, 6);
    ck_assert_values(s.std, 1e-7, sqrt(5), 0, sqrt(5));
    ck_assert_values(nb_standardizer_apply(&s, xt), 1e-6, -1.3416407864998738, 0.0, -0.4472135954999579,
                     -0.4472135954999579, 0.0, 0.4472135954999579, 0.4472135954999579, 0.0, 1.3416407864998738,
                     1.3416407864998738, 0.0, -1.3416407864998738);
    nb_standardizer_free(&s);
    nb_scope_end();
}
END_TEST

START_TEST(constant_column_maps_to_exact_zero)
{
    /* 0.1 three times: a naive mean is off by one ulp, which divided by a ~1e-17 std would give +-1 */
    nb_scope_begin();
    nb_tensor *x = T_F64(NB_SHAPE(3, 2), 0.1, 1, 0.1, 2, 0.1, 3);
    nb_standardizer s;
    ck_assert_ok(nb_standardizer_fit(&s, x));
    ck_assert_values(s.std, 0, 0, sqrt(2.0 / 3.0));
    nb_tensor *z = nb_standardizer_apply(&s, x);
    ck_assert_values(z, 1e-12, 0, -sqrt(1.5), 0, 0, 0, sqrt(1.5));
    nb_minmax_scaler m;
    ck_assert_ok(nb_minmax_fit(&m, x));
    ck_assert_values(nb_minmax_apply(&m, x), 0, 0, 0, 0, 0.5, 0, 1);
    nb_standardizer_free(&s);
    nb_minmax_free(&m);
    nb_scope_end();
}
END_TEST

/* Values that differ only by rounding (0.3 and 0.1 + 0.2, std 3.9e-17) count as constant, as in scikit-learn
 * (_is_constant_feature: var <= n eps var + (n eps mean)^2): centered, not blown up to +-1.41. The bound is
 * relative to the column's magnitude: a column of 1e-20s that truly varies is scaled, and steps of 1e-7 around
 * 1e8 (a few ulps) are noise. */
START_TEST(near_constant_column_is_not_scaled)
{
    nb_scope_begin();
    const double third = 0.1 + 0.2; /* 0.30000000000000004 */
    nb_tensor *x = T_F64(NB_SHAPE(4, 4), 0.3, 1e-20, 1e8, 1e8, third, 2e-20, 1e8 + 1e-7, 1e8 + 1e-6, 0.3, 3e-20, 1e8,
                         1e8, third, 2e-20, 1e8 + 1e-7, 1e8 + 1e-6);
    nb_standardizer s;
    ck_assert_ok(nb_standardizer_fit(&s, x));
    ck_assert_values(s.mean, 1e-6, 0.3, 2e-20, 1e8, 1e8);
    ck_assert(nb_get_flat(s.std, 0) == 0 && nb_get_flat(s.std, 2) == 0);
    ck_assert_close(nb_get_flat(s.std, 1), sqrt(0.5) * 1e-20, 1e-35);
    ck_assert_close(nb_get_flat(s.std, 3), 4.992444982454465e-07, 1e-15);
    nb_tensor *z = nb_standardizer_apply(&s, x);
    /* scikit-learn's rule and two-pass statistics evaluated in Python's doubles */
    ck_assert_values(z, 1e-6, 0, -sqrt(2), 0, -1.0148123461978307, 0, 0, 0, 0.9849649242508356, 0, sqrt(2), 0,
                     -1.0148123461978307, 0, 0, 0, 0.9849649242508356);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(fabs(nb_get_flat(z, 4 * i)) < 1e-15, "row %d of the 0.3 column: %g", i, nb_get_flat(z, 4 * i));
        ck_assert_msg(fabs(nb_get_flat(z, 4 * i + 2)) < 1e-6, "row %d of the 1e8 column: %g", i,
                      nb_get_flat(z, 4 * i + 2));
    }
    nb_standardizer_free(&s);
    nb_scope_end();
}
END_TEST

START_TEST(minmax_matches_scikit_learn)
{
    nb_minmax_scaler m;
    nb_scope_begin();
    ck_assert_ok(nb_minmax_fit(&m, TRAIN_X(F64)));
    nb_scope_end();
    ck_assert_values(m.min, 0, 1, 2, 3);
    ck_assert_values(m.max, 0, 7, 2, 9);
    nb_scope_begin();
    ck_assert_values(nb_minmax_apply(&m, TRAIN_X(F64)), 1e-12, 0.0, 0.0, 0.33333333333333326, 0.33333333333333337,
                     0.0, 0.6666666666666665, 0.6666666666666666, 0.0, 1.0, 0.9999999999999999, 0.0, 0.0);
    ck_assert_values(nb_minmax_apply(&m, TEST_X(F64)), 1e-12, -0.16666666666666666, 1.0, 0.5, 0.5, 0.0,
                     -0.33333333333333337);
    nb_tensor *t32 = nb_minmax_apply(&m, TEST_X(F32));
    ck_assert_int_eq(nb_dtype_of(t32), NB_F32);
    ck_assert_values(t32, 1e-6, -0.16666666666666666, 1.0, 0.5, 0.5, 0.0, -0.33333333333333337);
    nb_scope_end();
    nb_minmax_free(&m);
    ck_assert_ptr_null(m.min);
    /* a range of rounding size (one ulp of 5, below 10 eps) is a constant column, shifted only, as in scikit-learn;
     * 1e-10 is a real spread */
    nb_scope_begin();
    nb_tensor *tiny = T_F64(NB_SHAPE(2, 2), 1.0, 5.0, 1.0 + 1e-10, 5.0 + 1e-15);
    ck_assert_ok(nb_minmax_fit(&m, tiny));
    nb_scope_end();
    nb_scope_begin();
    nb_tensor *scaled = nb_minmax_apply(&m, T_F64(NB_SHAPE(1, 2), 1.0 + 0.5e-10, 5.0 + 1.0));
    ck_assert_values(scaled, 1e-6, 0.5, 1.0);
    nb_scope_end();
    nb_minmax_free(&m);
}
END_TEST

START_TEST(scaler_errors)
{
    nb_scope_begin();
    nb_standardizer s;
    nb_minmax_scaler m;
    ck_assert_int_eq(nb_standardizer_fit(&s, T_F64(NB_SHAPE(4), 1, 2, 3, 4)), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_standardizer_fit", "2-d", "(4)");
    ck_assert_ptr_null(s.mean);
    ck_assert_int_eq(nb_minmax_fit(&m, nb_zeros(NB_SHAPE(0, 3), NB_F32)), NB_ERR_VALUE);
    ck_assert_error(NB_ERR_VALUE, "nb_minmax_fit", "no rows", "(0, 3)");
    ck_assert_int_eq(nb_standardizer_fit(NULL, TRAIN_X(F64)), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_standardizer_fit", "standardizer");
    nb_clear_error();
    ck_assert_int_eq(nb_standardizer_fit(&s, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_standardizer_fit", "x");

    ck_assert_ok(nb_standardizer_fit(&s, TRAIN_X(F64)));
    ck_assert_ptr_null(nb_standardizer_apply(&s, nb_zeros(NB_SHAPE(2, 2), NB_F64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_standardizer_apply", "(2, 2)", "3 columns");
    ck_assert_ptr_null(nb_standardizer_apply(&s, nb_zeros(NB_SHAPE(3), NB_F64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_standardizer_apply", "(3)");
    ck_assert_ok(nb_minmax_fit(&m, TRAIN_X(F64)));
    ck_assert_ptr_null(nb_minmax_apply(&m, nb_zeros(NB_SHAPE(1, 4), NB_F64)));
    ck_assert_error(NB_ERR_SHAPE, "nb_minmax_apply", "(1, 4)", "3 columns");
    ck_assert_ptr_null(nb_minmax_apply(NULL, TRAIN_X(F64)));
    ck_assert_error(NB_ERR_NULL, "nb_minmax_apply", "scaler");
    nb_standardizer_free(&s);
    nb_minmax_free(&m);
    /* a freed scaler is reported, not read */
    ck_assert_ptr_null(nb_standardizer_apply(&s, TRAIN_X(F64)));
    ck_assert_error(NB_ERR_STATE, "nb_standardizer_apply", "not fitted");
    ck_assert_ptr_null(nb_minmax_apply(&m, TRAIN_X(F64)));
    ck_assert_error(NB_ERR_STATE, "nb_minmax_apply", "not fitted");
    nb_scope_end();
}
END_TEST

START_TEST(one_hot_values_and_errors)
{
    nb_scope_begin();
    nb_tensor *oh = nb_one_hot(T_I64(NB_SHAPE(4), 2, 0, 1, 2), 3);
    ck_assert_shape(oh, 4, 3);
    ck_assert_int_eq(nb_dtype_of(oh), NB_F32);
    ck_assert_values(oh, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1);
    /* any label shape gains a trailing class dim; strided labels are read by index */
    nb_tensor *grid = nb_transpose(T_I64(NB_SHAPE(2, 2), 0, 1, 0, 1), 0, 1); /* [[0, 0], [1, 1]] */
    nb_tensor *oh2 = nb_one_hot(grid, 2);
    ck_assert_shape(oh2, 2, 2, 2);
    ck_assert_values(oh2, 0, 1, 0, 1, 0, 0, 1, 0, 1);
    ck_assert_shape(nb_one_hot(nb_zeros(NB_SHAPE(0), NB_I64), 5), 0, 5);

    ck_assert_ptr_null(nb_one_hot(T_I64(NB_SHAPE(3), 0, 3, 1), 3));
    ck_assert_error(NB_ERR_INDEX, "nb_one_hot", "label 3", "position 1", "3 classes");
    ck_assert_ptr_null(nb_one_hot(T_I64(NB_SHAPE(2), 0, -1), 3));
    ck_assert_error(NB_ERR_INDEX, "nb_one_hot", "label -1", "position 1");
    ck_assert_ptr_null(nb_one_hot(T_F32(NB_SHAPE(2), 0, 1), 3));
    ck_assert_error(NB_ERR_DTYPE, "nb_one_hot", "i64", "f32", "(2)");
    ck_assert_ptr_null(nb_one_hot(T_I64(NB_SHAPE(2), 0, 1), 0));
    ck_assert_error(NB_ERR_ARG, "nb_one_hot", "num_classes", "0");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Splits
 * ---------------------------------------------------------------------------------------------- */
/* Every index of 0..n-1 appears exactly once over the listed tensors. */
static void assert_partition(int64_t n, int count, nb_tensor *const *parts)
{
    int seen[64] = {0};
    ck_assert_int_le(n, 64);
    int64_t total = 0;
    for (int k = 0; k < count; k++) {
        int64_t v[64], m = to_ints(parts[k], v);
        ck_assert_int_eq(nb_dtype_of(parts[k]), NB_I64);
        for (int64_t i = 0; i < m; i++) {
            ck_assert(v[i] >= 0 && v[i] < n);
            seen[v[i]]++;
        }
        total += m;
    }
    ck_assert_int_eq(total, n);
    for (int64_t i = 0; i < n; i++) ck_assert_msg(seen[i] == 1, "index %lld seen %d times", (long long)i, seen[i]);
}

static bool same_ints(nb_tensor *a, nb_tensor *b)
{
    int64_t va[64], vb[64];
    int64_t na = to_ints(a, va), nbn = to_ints(b, vb);
    return na == nbn && memcmp(va, vb, (size_t)na * sizeof *va) == 0;
}

START_TEST(train_test_split_sizes_and_seeds)
{
    nb_scope_begin();
    nb_tensor *train, *test, *train2, *test2, *train3, *test3;
    ck_assert_ok(nb_train_test_split(10, 0.25, 42, &train, &test));
    ck_assert_shape(test, 3); /* round(2.5) = 3: half away from zero */
    ck_assert_shape(train, 7);
    assert_partition(10, 2, (nb_tensor *[]){train, test});
    /* pinned: the split depends only on nabla's own generator, so these are the numbers on every platform */
    int64_t v[64];
    to_ints(test, v);
    ck_assert_msg(v[0] == SPLIT_T0 && v[1] == SPLIT_T1 && v[2] == SPLIT_T2, "test = %lld %lld %lld", (long long)v[0],
                  (long long)v[1], (long long)v[2]);
    ck_assert_ok(nb_train_test_split(10, 0.25, 42, &train2, &test2));
    ck_assert(same_ints(train, train2) && same_ints(test, test2));
    ck_assert_ok(nb_train_test_split(10, 0.25, 43, &train3, &test3));
    ck_assert(!same_ints(test, test3) || !same_ints(train, train3));
    ck_assert_ok(nb_train_test_split(7, 0.2, 1, &train, &test)); /* round(1.4) = 1 */
    ck_assert_shape(test, 1);
    ck_assert_shape(train, 6);
    ck_assert_ok(nb_train_test_split(5, 0, 1, &train, &test));
    ck_assert_shape(test, 0);
    assert_partition(5, 2, (nb_tensor *[]){train, test});
    ck_assert_ok(nb_train_test_split(5, 1, 1, &train, &test));
    ck_assert_shape(train, 0);
    assert_partition(5, 2, (nb_tensor *[]){train, test});
    ck_assert_ok(nb_train_test_split(0, 0.5, 1, &train, &test));
    ck_assert_shape(train, 0);
    ck_assert_shape(test, 0);

    ck_assert_int_eq(nb_train_test_split(10, 1.5, 1, &train, &test), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_train_test_split", "test_fraction", "1.5");
    ck_assert_ptr_null(train);
    ck_assert_int_eq(nb_train_test_split(10, NAN, 1, &train, &test), NB_ERR_ARG);
    ck_assert_int_eq(nb_train_test_split(-1, 0.5, 1, &train, &test), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_train_test_split", "n", "-1");
    ck_assert_int_eq(nb_train_test_split(10, 0.5, 1, &train, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_train_test_split", "test_idx");
    nb_scope_end();
}
END_TEST

START_TEST(kfold_partitions)
{
    nb_scope_begin();
    for (int n = 6; n <= 11; n++) {
        nb_tensor *train[3], *test[3];
        for (int f = 0; f < 3; f++) {
            ck_assert_ok(nb_kfold_split(n, 3, f, 7, &train[f], &test[f]));
            assert_partition(n, 2, (nb_tensor *[]){train[f], test[f]});
            int64_t size = nb_numel(test[f]);
            ck_assert(size == n / 3 || size == n / 3 + 1);
        }
        assert_partition(n, 3, test); /* the test folds cover 0..n-1 once */
        int64_t big = nb_numel(test[0]), small = nb_numel(test[2]);
        ck_assert_int_le(big - small, 1);
        ck_assert_int_ge(big - small, 0); /* larger folds first, as scikit-learn's KFold */
    }
    nb_tensor *a, *b, *c, *d;
    ck_assert_ok(nb_kfold_split(9, 3, 1, 5, &a, &b));
    ck_assert_ok(nb_kfold_split(9, 3, 1, 5, &c, &d));
    ck_assert(same_ints(a, c) && same_ints(b, d));
    ck_assert_ok(nb_kfold_split(9, 3, 1, 6, &c, &d));
    ck_assert(!same_ints(b, d));
    ck_assert_ok(nb_kfold_split(2, 2, 1, 5, &a, &b)); /* k = n: leave-one-out */
    ck_assert_shape(b, 1);

    ck_assert_int_eq(nb_kfold_split(10, 1, 0, 1, &a, &b), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_kfold_split", "k", "got 1");
    ck_assert_ptr_null(a);
    ck_assert_int_eq(nb_kfold_split(3, 4, 0, 1, &a, &b), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_kfold_split", "[2, 3]", "got 4");
    ck_assert_int_eq(nb_kfold_split(10, 3, 3, 1, &a, &b), NB_ERR_INDEX);
    ck_assert_error(NB_ERR_INDEX, "nb_kfold_split", "fold 3", "k = 3");
    ck_assert_int_eq(nb_kfold_split(10, 3, -1, 1, &a, &b), NB_ERR_INDEX);
    ck_assert_int_eq(nb_kfold_split(10, 3, 0, 1, NULL, &b), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_kfold_split", "train_idx");
    nb_scope_end();
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Batches
 * ---------------------------------------------------------------------------------------------- */
/* x row i = (i, -i) f32, y[i] = 100 + i. */
static void make_data(int64_t n, nb_tensor **x, nb_tensor **y)
{
    *x = nb_empty(NB_SHAPE(n, 2), NB_F32);
    *y = nb_empty(NB_SHAPE(n), NB_I64);
    for (int64_t i = 0; i < n; i++) {
        nb_set(*x, (int64_t[]){i, 0}, (double)i);
        nb_set(*x, (int64_t[]){i, 1}, -(double)i);
        nb_set(*y, (int64_t[]){i}, 100.0 + (double)i);
    }
}

/* One epoch: fills order with the row numbers in the order served and returns the batch sizes' count. */
static int run_epoch(nb_batch_iter *it, int64_t *order, int64_t *served, int64_t *sizes)
{
    nb_tensor *xb, *yb;
    int batches = 0;
    *served = 0;
    while (nb_batch_iter_next(it, &xb, &yb)) {
        ck_assert_tensor(xb);
        ck_assert_tensor(yb);
        ck_assert(nb_is_contiguous(xb));
        int64_t m = nb_size(xb, 0);
        ck_assert_int_eq(nb_size(xb, 1), 2);
        ck_assert_int_eq(nb_size(yb, 0), m);
        for (int64_t r = 0; r < m; r++) {
            double a = nb_get(xb, (int64_t[]){r, 0}), b = nb_get(xb, (int64_t[]){r, 1});
            ck_assert(a == -b);
            ck_assert_msg(nb_get(yb, (int64_t[]){r}) == 100 + a, "x and y rows not paired");
            order[(*served)++] = (int64_t)a;
        }
        sizes[batches++] = m;
        nb_free(xb);
        nb_free(yb);
    }
    ck_assert_int_eq(nb_last_status(), NB_OK);
    return batches;
}

START_TEST(batch_iterator_epochs)
{
    nb_tensor *x, *y;
    make_data(10, &x, &y);
    int64_t order[3][64], sizes[16], served;

    nb_batch_iter *it = nb_batch_iter_new(x, y, 3, true, false, 11);
    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(nb_batch_iter_batches_per_epoch(it), 4);
    ck_assert_int_eq(nb_batch_iter_epoch(it), 0);
    for (int e = 0; e < 3; e++) {
        ck_assert_int_eq(run_epoch(it, order[e], &served, sizes), 4);
        ck_assert_int_eq(served, 10);
        ck_assert(sizes[0] == 3 && sizes[1] == 3 && sizes[2] == 3 && sizes[3] == 1); /* the last partial batch */
        int seen[10] = {0};
        for (int i = 0; i < 10; i++) seen[order[e][i]]++;
        for (int i = 0; i < 10; i++) ck_assert_int_eq(seen[i], 1);
        ck_assert_int_eq(nb_batch_iter_epoch(it), e + 1);
    }
    ck_assert_msg(memcmp(order[0], order[1], 10 * sizeof(int64_t)) != 0, "not reshuffled between epochs");
    ck_assert_msg(memcmp(order[1], order[2], 10 * sizeof(int64_t)) != 0, "not reshuffled between epochs");
    nb_batch_iter_free(it);

    /* the same seed replays the same epochs */
    it = nb_batch_iter_new(x, y, 3, true, false, 11);
    int64_t replay[64];
    for (int e = 0; e < 3; e++) {
        run_epoch(it, replay, &served, sizes);
        ck_assert(memcmp(replay, order[e], 10 * sizeof(int64_t)) == 0);
    }
    nb_batch_iter_free(it);
    it = nb_batch_iter_new(x, y, 3, true, false, 12);
    run_epoch(it, replay, &served, sizes);
    ck_assert(memcmp(replay, order[0], 10 * sizeof(int64_t)) != 0);
    nb_batch_iter_free(it);

    /* drop_last skips the incomplete batch */
    it = nb_batch_iter_new(x, y, 3, true, true, 11);
    ck_assert_int_eq(nb_batch_iter_batches_per_epoch(it), 3);
    ck_assert_int_eq(run_epoch(it, replay, &served, sizes), 3);
    ck_assert_int_eq(served, 9);
    nb_batch_iter_free(it);
    it = nb_batch_iter_new(x, y, 5, false, true, 0);
    ck_assert_int_eq(nb_batch_iter_batches_per_epoch(it), 2);
    nb_batch_iter_free(it);
    it = nb_batch_iter_new(x, y, 11, false, true, 0);
    ck_assert_int_eq(nb_batch_iter_batches_per_epoch(it), 0);
    ck_assert_int_eq(run_epoch(it, replay, &served, sizes), 0);
    nb_batch_iter_free(it);

    /* without shuffle: rows in order, every epoch */
    it = nb_batch_iter_new(x, y, 4, false, false, 0);
    for (int e = 0; e < 2; e++) {
        ck_assert_int_eq(run_epoch(it, replay, &served, sizes), 3);
        for (int i = 0; i < 10; i++) ck_assert_int_eq(replay[i], i);
    }
    nb_batch_iter_free(it);
    nb_free(x);
    nb_free(y);
}
END_TEST

START_TEST(batch_iterator_without_y_and_strided_x)
{
    nb_scope_begin();
    /* x is the transpose of a (3, 5) matrix: rows gathered into a contiguous (2, 3) batch */
    nb_tensor *x = nb_transpose(nb_reshape(nb_arange(0, 15, 1, NB_F64), NB_SHAPE(3, 5)), 0, 1);
    nb_batch_iter *it = nb_batch_iter_new(x, NULL, 2, false, false, 0);
    nb_tensor *xb, *yb = x;
    ck_assert(nb_batch_iter_next(it, &xb, &yb));
    ck_assert_ptr_null(yb);
    ck_assert(nb_is_contiguous(xb));
    ck_assert_shape(xb, 2, 3);
    ck_assert_values(xb, 0, 0, 5, 10, 1, 6, 11);
    ck_assert(nb_batch_iter_next(it, &xb, NULL)); /* y_batch may be NULL */
    ck_assert_values(xb, 0, 2, 7, 12, 3, 8, 13);
    ck_assert(nb_batch_iter_next(it, &xb, NULL));
    ck_assert_values(xb, 0, 4, 9, 14);
    ck_assert(!nb_batch_iter_next(it, &xb, NULL));
    ck_assert_ptr_null(xb);
    ck_assert_int_eq(nb_last_status(), NB_OK); /* the end of an epoch is not an error */
    nb_batch_iter_free(it);
    nb_scope_end();
}
END_TEST

START_TEST(batch_iterator_keeps_memory_flat)
{
    nb_tensor *x, *y;
    make_data(50, &x, &y);
    nb_batch_iter *it = nb_batch_iter_new(x, y, 8, true, false, 3);
    int64_t base = nb_memory_stats_get().live_tensors;
    for (int e = 0; e < 100; e++) {
        nb_scope_begin(); /* one scope per epoch: batches and the reshuffle's temporaries die with it */
        nb_tensor *xb, *yb;
        int64_t rows = 0;
        while (nb_batch_iter_next(it, &xb, &yb)) {
            nb_scope_begin(); /* and one per step, as a training loop does */
            nb_tensor *s = nb_sum(nb_mul_scalar(xb, 2), 0, NULL, false);
            ck_assert_tensor(s);
            rows += nb_size(xb, 0);
            nb_scope_end();
        }
        ck_assert_int_eq(rows, 50);
        nb_scope_end();
        ck_assert_int_eq(nb_memory_stats_get().live_tensors, base);
    }
    nb_batch_iter_free(it);
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, base);
    nb_free(x);
    nb_free(y);
}
END_TEST

START_TEST(batch_iterator_errors)
{
    nb_scope_begin();
    nb_tensor *x = nb_zeros(NB_SHAPE(4, 2), NB_F32);
    ck_assert_ptr_null(nb_batch_iter_new(x, nb_zeros(NB_SHAPE(5), NB_I64), 2, true, false, 0));
    ck_assert_error(NB_ERR_SHAPE, "nb_batch_iter_new", "(4, 2)", "(5)");
    ck_assert_ptr_null(nb_batch_iter_new(x, NULL, 0, true, false, 0));
    ck_assert_error(NB_ERR_ARG, "nb_batch_iter_new", "batch_size", "0");
    ck_assert_ptr_null(nb_batch_iter_new(nb_scalar(1, NB_F32), NULL, 2, true, false, 0));
    ck_assert_error(NB_ERR_SHAPE, "nb_batch_iter_new", "()");
    nb_clear_error();
    ck_assert_ptr_null(nb_batch_iter_new(NULL, NULL, 2, true, false, 0));
    ck_assert_error(NB_ERR_NULL, "nb_batch_iter_new", "x");
    nb_tensor *xb;
    ck_assert(!nb_batch_iter_next(NULL, &xb, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_batch_iter_next", "iterator");
    ck_assert_int_eq(nb_batch_iter_batches_per_epoch(NULL), -1);
    ck_assert_int_eq(nb_batch_iter_epoch(NULL), -1);
    ck_assert_error(NB_ERR_NULL, "nb_batch_iter_epoch");

    nb_tensor *gone = nb_zeros(NB_SHAPE(4, 2), NB_F32);
    nb_batch_iter *it = nb_batch_iter_new(gone, NULL, 2, true, false, 0);
    ck_assert(!nb_batch_iter_next(it, NULL, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_batch_iter_next", "x_batch");
    nb_free(gone);
    ck_assert(!nb_batch_iter_next(it, &xb, NULL));
    ck_assert_error(NB_ERR_FREED, "nb_batch_iter_next");
    ck_assert_int_eq(nb_batch_iter_epoch(it), 0); /* an error is not the end of an epoch */
    nb_batch_iter_free(it);
    nb_batch_iter_free(NULL);
    nb_scope_end();
}
END_TEST

/* Sharding (data-parallel training): rank r of W takes the positions r, r + W, ... of the single-process epoch
 * order, padded by wrapping around to its start (or truncated with drop_last). The reference order is that of an
 * unsharded iterator with the same seed. */
static void single_process_order(nb_tensor *x, nb_tensor *y, uint64_t seed, int epochs, int64_t order[][64])
{
    nb_batch_iter *it = nb_batch_iter_new(x, y, 64, true, false, seed);
    ck_assert_ptr_nonnull(it);
    int64_t sizes[4], served;
    for (int e = 0; e < epochs; e++) run_epoch(it, order[e], &served, sizes);
    nb_batch_iter_free(it);
}

START_TEST(batch_iterator_shard_pads_by_wrapping)
{
    nb_tensor *x, *y;
    make_data(10, &x, &y);
    int64_t ref[2][64], order[64], sizes[16], served;
    single_process_order(x, y, 21, 2, ref);
    int seen[2][10] = {{0}};
    for (int r = 0; r < 3; r++) {
        nb_batch_iter *it = nb_batch_iter_new(x, y, 2, true, false, 21);
        ck_assert_ok(nb_batch_iter_shard(it, r, 3));
        ck_assert_int_eq(nb_batch_iter_batches_per_epoch(it), 2); /* ceil(10 / 3) = 4 rows each */
        for (int e = 0; e < 2; e++) {
            ck_assert_int_eq(run_epoch(it, order, &served, sizes), 2);
            ck_assert_int_eq(served, 4);
            for (int64_t p = 0; p < served; p++) {
                ck_assert_int_eq(order[p], ref[e][(r + 3 * p) % 10]);
                seen[e][order[p]]++;
            }
        }
        nb_batch_iter_free(it);
    }
    /* every row served; the two padding rows are the first two of the epoch's order, served twice */
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < 10; i++)
            ck_assert_int_eq(seen[e][i], (i == ref[e][0] || i == ref[e][1]) ? 2 : 1);
    ck_assert(memcmp(ref[0], ref[1], 10 * sizeof ref[0][0]) != 0); /* epochs are reshuffled */

    /* fewer rows than ranks: every rank still gets a batch */
    nb_tensor *x1, *y1;
    make_data(1, &x1, &y1);
    for (int r = 0; r < 3; r++) {
        nb_batch_iter *it = nb_batch_iter_new(x1, y1, 4, true, false, 5);
        ck_assert_ok(nb_batch_iter_shard(it, r, 3));
        ck_assert_int_eq(run_epoch(it, order, &served, sizes), 1);
        ck_assert_int_eq(order[0], 0);
        nb_batch_iter_free(it);
    }
    nb_free(x1);
    nb_free(y1);
    nb_free(x);
    nb_free(y);
}
END_TEST

START_TEST(batch_iterator_shard_drop_last_truncates)
{
    nb_tensor *x, *y;
    make_data(10, &x, &y);
    int64_t ref[1][64], order[64], sizes[16], served;
    single_process_order(x, y, 8, 1, ref);
    int seen[10] = {0};
    for (int r = 0; r < 3; r++) {
        nb_batch_iter *it = nb_batch_iter_new(x, y, 1, true, true, 8);
        ck_assert_ok(nb_batch_iter_shard(it, r, 3));
        ck_assert_int_eq(nb_batch_iter_batches_per_epoch(it), 3);
        ck_assert_int_eq(run_epoch(it, order, &served, sizes), 3);
        for (int64_t p = 0; p < served; p++) {
            ck_assert_int_eq(order[p], ref[0][r + 3 * p]);
            seen[order[p]]++;
        }
        nb_batch_iter_free(it);
        /* drop_last also drops the shard's last incomplete batch: 3 rows in batches of 2 */
        it = nb_batch_iter_new(x, y, 2, true, true, 8);
        ck_assert_ok(nb_batch_iter_shard(it, r, 3));
        ck_assert_int_eq(nb_batch_iter_batches_per_epoch(it), 1);
        ck_assert_int_eq(run_epoch(it, order, &served, sizes), 1);
        nb_batch_iter_free(it);
    }
    /* disjoint, and only the last position of the order (10 is not divisible by 3) is left out */
    for (int i = 0; i < 10; i++) ck_assert_int_eq(seen[i], i == ref[0][9] ? 0 : 1);

    /* fewer rows than ranks with drop_last: nothing at all, on every rank alike */
    nb_tensor *x1, *y1;
    make_data(2, &x1, &y1);
    nb_batch_iter *it = nb_batch_iter_new(x1, y1, 1, false, true, 0);
    ck_assert_ok(nb_batch_iter_shard(it, 2, 3));
    ck_assert_int_eq(nb_batch_iter_batches_per_epoch(it), 0);
    ck_assert_int_eq(run_epoch(it, order, &served, sizes), 0);
    nb_batch_iter_free(it);
    nb_free(x1);
    nb_free(y1);
    nb_free(x);
    nb_free(y);
}
END_TEST

/* The data-parallel identity: the ranks' k-th batches of B rows are, interleaved, the single-process k-th batch of
 * W * B rows, so W ranks at batch B take the same steps as one process at batch W * B. */
START_TEST(batch_iterator_shard_interleaves_into_the_big_batch)
{
    nb_tensor *x, *y;
    make_data(24, &x, &y);
    const int W = 2, B = 3;
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        nb_batch_iter *big = nb_batch_iter_new(x, y, W * B, shuffle, false, 77);
        nb_batch_iter *rank[2];
        for (int r = 0; r < W; r++) {
            rank[r] = nb_batch_iter_new(x, y, B, shuffle, false, 77);
            ck_assert_ok(nb_batch_iter_shard(rank[r], r, W));
            ck_assert_int_eq(nb_batch_iter_batches_per_epoch(rank[r]), nb_batch_iter_batches_per_epoch(big));
        }
        for (int e = 0; e < 2; e++) {
            int batches = 0;
            nb_tensor *xb, *yb;
            while (nb_batch_iter_next(big, &xb, &yb)) {
                for (int r = 0; r < W; r++) {
                    nb_tensor *xr, *yr;
                    ck_assert(nb_batch_iter_next(rank[r], &xr, &yr));
                    ck_assert_int_eq(nb_size(xr, 0), B);
                    for (int j = 0; j < B; j++) {
                        ck_assert(nb_get(xr, (int64_t[]){j, 0}) == nb_get(xb, (int64_t[]){r + W * j, 0}));
                        ck_assert(nb_get(yr, (int64_t[]){j}) == nb_get(yb, (int64_t[]){r + W * j}));
                    }
                    nb_free(xr);
                    nb_free(yr);
                }
                nb_free(xb);
                nb_free(yb);
                batches++;
            }
            ck_assert_int_eq(batches, 4);
            for (int r = 0; r < W; r++) ck_assert(!nb_batch_iter_next(rank[r], &xb, &yb)); /* same epoch end */
        }
        nb_batch_iter_free(big);
        for (int r = 0; r < W; r++) nb_batch_iter_free(rank[r]);
    }
    /* a world of one is the plain iterator */
    int64_t a[64], b[64], sizes[16], na, nb_;
    nb_batch_iter *plain = nb_batch_iter_new(x, y, 5, true, false, 3), *one = nb_batch_iter_new(x, y, 5, true, false, 3);
    ck_assert_ok(nb_batch_iter_shard(one, 0, 1));
    ck_assert_int_eq(run_epoch(plain, a, &na, sizes), run_epoch(one, b, &nb_, sizes));
    ck_assert_int_eq(na, 24);
    ck_assert_int_eq(nb_, 24);
    ck_assert(memcmp(a, b, 24 * sizeof a[0]) == 0);
    nb_batch_iter_free(plain);
    nb_batch_iter_free(one);
    nb_free(x);
    nb_free(y);
}
END_TEST

START_TEST(batch_iterator_shard_errors)
{
    nb_tensor *x, *y;
    make_data(6, &x, &y);
    ck_assert_int_eq(nb_batch_iter_shard(NULL, 0, 2), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_batch_iter_shard", "iterator");
    nb_batch_iter *it = nb_batch_iter_new(x, y, 2, true, false, 0);
    ck_assert_int_eq(nb_batch_iter_shard(it, 2, 2), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_batch_iter_shard", "rank 2", "world_size 2");
    ck_assert_int_eq(nb_batch_iter_shard(it, -1, 2), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_batch_iter_shard", "rank -1");
    ck_assert_int_eq(nb_batch_iter_shard(it, 0, 0), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_batch_iter_shard", "world_size 0");
    ck_assert_int_eq(nb_batch_iter_batches_per_epoch(it), 3); /* a failed call changes nothing */
    /* sharding again before the first batch replaces the previous shard */
    ck_assert_ok(nb_batch_iter_shard(it, 1, 3));
    ck_assert_ok(nb_batch_iter_shard(it, 1, 2));
    ck_assert_int_eq(nb_batch_iter_batches_per_epoch(it), 2);
    nb_tensor *xb, *yb;
    ck_assert(nb_batch_iter_next(it, &xb, &yb));
    nb_free(xb);
    nb_free(yb);
    ck_assert_int_eq(nb_batch_iter_shard(it, 0, 2), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_batch_iter_shard", "already");
    nb_batch_iter_free(it);
    nb_free(x);
    nb_free(y);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Metrics
 * ---------------------------------------------------------------------------------------------- */
START_TEST(accuracy_values_and_errors)
{
    nb_scope_begin();
    ck_assert_close(nb_accuracy(T_I64(NB_SHAPE(4), 0, 1, 2, 1), T_I64(NB_SHAPE(4), 0, 2, 2, 1)), 0.75, 0);
    nb_tensor *logits = T_F32(NB_SHAPE(3, 2), 0.1f, 0.9f, 0.8f, 0.2f, 0.3f, 0.7f);
    ck_assert_close(nb_accuracy(nb_argmax(logits, 1, false), T_I64(NB_SHAPE(3), 1, 1, 1)), 2.0 / 3.0, 1e-15);
    ck_assert(isnan(nb_accuracy(T_I64(NB_SHAPE(3), 0, 1, 2), T_I64(NB_SHAPE(4), 0, 1, 2, 3))));
    ck_assert_error(NB_ERR_SHAPE, "nb_accuracy", "(3)", "(4)");
    ck_assert(isnan(nb_accuracy(nb_zeros(NB_SHAPE(0), NB_I64), nb_zeros(NB_SHAPE(0), NB_I64))));
    ck_assert_error(NB_ERR_VALUE, "nb_accuracy", "(0)");
    nb_clear_error();
    ck_assert(isnan(nb_accuracy(NULL, T_I64(NB_SHAPE(1), 0))));
    ck_assert_error(NB_ERR_NULL, "nb_accuracy", "pred");
    nb_scope_end();
}
END_TEST

/* y_true = 0 0 0 0 1 1 1 2 2 2 2 2, y_pred = 0 0 1 2 1 1 0 2 2 2 1 0, added in two batches. */
static nb_confusion *three_class(void)
{
    nb_confusion *c = nb_confusion_new(3);
    ck_assert_ptr_nonnull(c);
    nb_scope_begin();
    ck_assert_ok(nb_confusion_add(c, T_I64(NB_SHAPE(5), 0, 0, 1, 2, 1), T_I64(NB_SHAPE(5), 0, 0, 0, 0, 1)));
    ck_assert_ok(nb_confusion_add(c, T_I64(NB_SHAPE(7), 1, 0, 2, 2, 2, 1, 0), T_I64(NB_SHAPE(7), 1, 1, 2, 2, 2, 2, 2)));
    nb_scope_end();
    return c;
}

START_TEST(confusion_matches_scikit_learn)
{
    nb_confusion *c = three_class();
    const int64_t expected[9] = {2, 1, 1, 1, 2, 0, 1, 1, 3}; /* rows: true class */
    for (int i = 0; i < 9; i++) ck_assert_int_eq(c->counts[i], expected[i]);
    ck_assert_close(nb_confusion_accuracy(c), 0.5833333333333334, 1e-15);
    const double p[3] = {0.5, 0.5, 0.75}, r[3] = {0.5, 0.666666666667, 0.6}, f[3] = {0.5, 0.571428571429, 0.666666666667};
    for (int k = 0; k < 3; k++) {
        ck_assert_close(nb_confusion_precision(c, k), p[k], 1e-12);
        ck_assert_close(nb_confusion_recall(c, k), r[k], 1e-12);
        ck_assert_close(nb_confusion_f1(c, k), f[k], 1e-12);
    }
    ck_assert_close(nb_confusion_macro_precision(c), 0.583333333333, 1e-12);
    ck_assert_close(nb_confusion_macro_recall(c), 0.588888888889, 1e-12);
    ck_assert_close(nb_confusion_macro_f1(c), 0.579365079365, 1e-12);
    ck_assert_int_eq(nb_last_status(), NB_OK);
    nb_confusion_free(c);
}
END_TEST

START_TEST(confusion_zero_division)
{
    /* class 2 is never predicted (precision 0/0), class 3 appears nowhere (everything 0/0): all 0 */
    nb_confusion *c = nb_confusion_new(4);
    nb_scope_begin();
    ck_assert_ok(nb_confusion_add(c, T_I64(NB_SHAPE(5), 0, 1, 1, 0, 0), T_I64(NB_SHAPE(5), 0, 1, 2, 2, 0)));
    nb_scope_end();
    const double p[4] = {0.666666666667, 0.5, 0, 0}, r[4] = {1, 1, 0, 0}, f[4] = {0.8, 0.666666666667, 0, 0};
    for (int k = 0; k < 4; k++) {
        ck_assert_close(nb_confusion_precision(c, k), p[k], 1e-12);
        ck_assert_close(nb_confusion_recall(c, k), r[k], 1e-12);
        ck_assert_close(nb_confusion_f1(c, k), f[k], 1e-12);
    }
    /* macro averages over all num_classes classes (scikit-learn with labels=range(4)) */
    ck_assert_close(nb_confusion_macro_precision(c), 0.291666666667, 1e-12);
    ck_assert_close(nb_confusion_macro_recall(c), 0.5, 1e-12);
    ck_assert_close(nb_confusion_macro_f1(c), 0.366666666667, 1e-12);
    ck_assert_close(nb_confusion_accuracy(c), 0.6, 1e-15);
    ck_assert_int_eq(nb_last_status(), NB_OK);
    nb_confusion_free(c);

    /* nothing added: every score is 0, accuracy is undefined */
    c = nb_confusion_new(2);
    ck_assert_close(nb_confusion_macro_f1(c), 0, 0);
    ck_assert_close(nb_confusion_precision(c, 1), 0, 0);
    ck_assert(isnan(nb_confusion_accuracy(c)));
    ck_assert_error(NB_ERR_VALUE, "nb_confusion_accuracy", "no predictions");
    nb_confusion_free(c);
}
END_TEST

START_TEST(confusion_errors)
{
    ck_assert_ptr_null(nb_confusion_new(0));
    ck_assert_error(NB_ERR_ARG, "nb_confusion_new", "num_classes", "0");
    nb_confusion *c = nb_confusion_new(3);
    nb_scope_begin();
    ck_assert_int_eq(nb_confusion_add(c, T_I64(NB_SHAPE(3), 0, 3, 1), T_I64(NB_SHAPE(3), 0, 1, 1)), NB_ERR_INDEX);
    ck_assert_error(NB_ERR_INDEX, "nb_confusion_add", "pred class 3", "position 1", "3 classes");
    ck_assert_int_eq(nb_confusion_add(c, T_I64(NB_SHAPE(2), 0, 1), T_I64(NB_SHAPE(2), -1, 1)), NB_ERR_INDEX);
    ck_assert_error(NB_ERR_INDEX, "nb_confusion_add", "target class -1", "position 0");
    for (int i = 0; i < 9; i++) ck_assert_int_eq(c->counts[i], 0); /* a failed add counts nothing */
    ck_assert_int_eq(nb_confusion_add(c, T_I64(NB_SHAPE(2), 0, 1), T_I64(NB_SHAPE(3), 0, 1, 2)), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_confusion_add", "(2)", "(3)");
    ck_assert_int_eq(nb_confusion_add(c, T_F32(NB_SHAPE(2), 0, 1), T_I64(NB_SHAPE(2), 0, 1)), NB_ERR_DTYPE);
    ck_assert_error(NB_ERR_DTYPE, "nb_confusion_add", "pred", "f32");
    ck_assert_int_eq(nb_confusion_add(NULL, T_I64(NB_SHAPE(2), 0, 1), T_I64(NB_SHAPE(2), 0, 1)), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_confusion_add", "confusion");
    nb_scope_end();
    ck_assert(isnan(nb_confusion_recall(c, 3)));
    ck_assert_error(NB_ERR_INDEX, "nb_confusion_recall", "class 3", "3 classes");
    ck_assert(isnan(nb_confusion_f1(c, -1)));
    ck_assert_error(NB_ERR_INDEX, "nb_confusion_f1", "class -1");
    ck_assert(isnan(nb_confusion_macro_precision(NULL)));
    ck_assert_error(NB_ERR_NULL, "nb_confusion_macro_precision");
    ck_assert_int_eq(nb_confusion_print(c, NULL, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_confusion_print", "stream");
    nb_confusion_free(c);
    nb_confusion_free(NULL);
}
END_TEST

START_TEST(confusion_print_table)
{
    nb_confusion *c = three_class();
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_ok(nb_confusion_print(c, f, (const char *const[]){"cat", "dog", "hamster"}));
    char *text = read_back(f);
    const char *expected =
        "confusion matrix (rows: true class, columns: predicted class)\n"
        "true\\pred      cat      dog  hamster\n"
        "cat              2        1        1\n"
        "dog              1        2        0\n"
        "hamster          1        1        3\n"
        "\n"
        "class      precision     recall         f1  support\n"
        "cat           0.5000     0.5000     0.5000        4\n"
        "dog           0.5000     0.6667     0.5714        3\n"
        "hamster       0.7500     0.6000     0.6667        5\n"
        "macro avg     0.5833     0.5889     0.5794       12\n"
        "accuracy                            0.5833       12\n";
    ck_assert_str_eq(text, expected);
    free(text);
    fclose(f);

    /* without names: class numbers */
    f = tmpfile();
    ck_assert_ok(nb_confusion_print(c, f, NULL));
    text = read_back(f);
    ck_assert_ptr_nonnull(strstr(text, "true\\pred  0  1  2\n"));
    ck_assert_ptr_nonnull(strstr(text, "2          1  1  3\n"));
    ck_assert_ptr_nonnull(strstr(text, "2             0.7500     0.6000     0.6667        5\n"));
    free(text);
    fclose(f);

    /* a full device takes the report into the stream's buffer and refuses it only on flush: still an error */
    f = fopen("/dev/full", "w");
    if (f) {
        ck_assert_int_eq(nb_confusion_print(c, f, NULL), NB_ERR_IO);
        ck_assert_error(NB_ERR_IO, "nb_confusion_print", "writing the report failed", strerror(ENOSPC));
        fclose(f);
    }
    nb_confusion_free(c);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Progress
 * ---------------------------------------------------------------------------------------------- */
/* Two epochs of four steps of 10 samples, losses 1.0, 0.5, 0.25, 0.25 and accuracies 0.5 .. 0.8. */
static char *run_progress(int64_t log_every)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    nb_progress *p = nb_progress_new(f, 2, 4, log_every);
    ck_assert_ptr_nonnull(p);
    const double loss[4] = {1.0, 0.5, 0.25, 0.25}, acc[4] = {0.5, 0.6, 0.7, 0.8};
    for (int e = 0; e < 2; e++) {
        for (int s = 0; s < 4; s++) nb_progress_update(p, e, s, 10, loss[s], e ? NAN : acc[s]);
        nb_progress_end_epoch(p, e ? "test_acc=0.97" : NULL);
    }
    nb_progress_free(p);
    char *text = read_back(f);
    fclose(f);
    return text;
}

START_TEST(progress_plain_lines)
{
    unsetenv("NB_PROGRESS"); /* a tmpfile is not a terminal: plain mode is chosen */
    char *text = run_progress(2);
    /* step 2 of each epoch, and each epoch's end (which replaces step 4's line) */
    ck_assert_int_eq(count_char(text, '\n'), 4);
    ck_assert_int_eq(count_char(text, '\r'), 0);
    ck_assert_ptr_nonnull(strstr(text, "epoch 1/2  step 2/4  loss 0.7500  acc 0.5500  "));
    ck_assert_ptr_nonnull(strstr(text, "epoch 1/2  step 4/4 done  loss 0.5000  acc 0.6500  "));
    ck_assert_ptr_nonnull(strstr(text, "samples/s"));
    ck_assert_ptr_nonnull(strstr(text, "ETA"));
    /* unknown accuracy (NAN) is left out */
    const char *second = strstr(text, "epoch 2/2  step 2/4  loss 0.7500  ");
    ck_assert_ptr_nonnull(second);
    char line[256];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(second, "\n"), second);
    ck_assert_msg(strstr(line, "acc") == NULL, "unknown accuracy shown: %s", line);
    const char *last = strstr(text, "epoch 2/2  step 4/4 done  loss 0.5000  ");
    ck_assert_ptr_nonnull(last);
    ck_assert_ptr_nonnull(strstr(last, "test_acc=0.97\n"));
    free(text);

    text = run_progress(0); /* only the epochs' ends */
    ck_assert_int_eq(count_char(text, '\n'), 2);
    free(text);
    setenv("NB_PROGRESS", "plain", 1);
    text = run_progress(3);
    ck_assert_int_eq(count_char(text, '\n'), 4);
    free(text);
}
END_TEST

START_TEST(progress_off_and_bar)
{
    setenv("NB_PROGRESS", "off", 1);
    char *text = run_progress(1);
    ck_assert_str_eq(text, "");
    free(text);

    setenv("NB_PROGRESS", "bar", 1);
    setenv("COLUMNS", "200", 1); /* the width used when the stream is not a terminal */
    text = run_progress(1);
    /* at least the first and last step and the end of each epoch (others may be skipped: redraws are throttled) */
    ck_assert_int_ge(count_char(text, '\r'), 6);
    ck_assert_int_eq(count_char(text, '\n'), 2); /* one finished line per epoch */
    ck_assert_ptr_nonnull(strstr(text, "\repoch 1/2 [=====>              ] 1/4  loss 1.0000  acc 0.5000  "));
    ck_assert_ptr_nonnull(strstr(text, "\repoch 2/2 [====================] 4/4 done  loss 0.5000"));
    ck_assert_ptr_nonnull(strstr(text, "samples/s"));
    ck_assert_ptr_nonnull(strstr(text, "test_acc=0.97\n"));
    free(text);
    /* redrawn lines are cut to the width so that they never wrap; finished lines are kept whole */
    setenv("COLUMNS", "12", 1);
    text = run_progress(1);
    ck_assert_ptr_nonnull(strstr(text, "\repoch 1/2 [\r"));
    ck_assert_ptr_nonnull(strstr(text, "test_acc=0.97\n"));
    free(text);

    ck_assert_ptr_null(nb_progress_new(NULL, -1, 4, 1));
    ck_assert_error(NB_ERR_ARG, "nb_progress_new", "-1");
    nb_progress_update(NULL, 0, 0, 1, 0, 0);
    ck_assert_error(NB_ERR_NULL, "nb_progress_update");
    nb_progress_free(NULL);
}
END_TEST

/* Counts of steps beyond int64 (epochs * steps per epoch, or a step times the bar's width): the ETA and the bar are
 * computed without overflow, so the ETA reads "?" (too long to show) and the bar stays proportional. */
START_TEST(progress_huge_counts)
{
    setenv("NB_PROGRESS", "plain", 1);
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    /* (epochs - 1) * total_steps is 2^64 here: wrapped around to 0, the ETA would be the last step's time */
    const int64_t total = (int64_t)1 << 32;
    nb_progress *p = nb_progress_new(f, total + 1, total, 1);
    ck_assert_ptr_nonnull(p);
    nanosleep(&(struct timespec){0, 2000000}, NULL); /* a step of 2 ms: the true ETA is 2^64 times longer */
    nb_progress_update(p, 0, total - 2, 10, 1.0, NAN);
    nb_progress_free(p);
    char *text = read_back(f);
    fclose(f);
    ck_assert_msg(strstr(text, "step 4294967295/4294967296  loss 1.0000") && strstr(text, "ETA ?"), "%s", text);
    free(text);

    setenv("NB_PROGRESS", "bar", 1);
    setenv("COLUMNS", "200", 1);
    f = tmpfile();
    ck_assert_ptr_nonnull(f);
    p = nb_progress_new(f, 1, INT64_MAX, 1);
    ck_assert_ptr_nonnull(p);
    nb_progress_update(p, 0, INT64_MAX / 4, 10, 1.0, NAN); /* a quarter of the epoch */
    nb_progress_free(p);
    text = read_back(f);
    fclose(f);
    ck_assert_msg(strstr(text, "\repoch 1/1 [=====>              ] 2305843009213693952/9223372036854775807  ") &&
                      strstr(text, "ETA ?"),
                  "%s", text);
    free(text);
}
END_TEST

/* Tests assert that calls leave no error behind: start each from a clean state (CK_FORK=no runs them all in
 * one process). */
static void clear_state(void)
{
    nb_clear_error();
    unsetenv("NB_PROGRESS");
}

Suite *make_suite(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, clear_state, NULL);
    tcase_add_test(tc, standardizer_matches_scikit_learn);
    tcase_add_test(tc, standardizer_noncontiguous_and_f32);
    tcase_add_test(tc, constant_column_maps_to_exact_zero);
    tcase_add_test(tc, near_constant_column_is_not_scaled);
    tcase_add_test(tc, minmax_matches_scikit_learn);
    tcase_add_test(tc, scaler_errors);
    tcase_add_test(tc, one_hot_values_and_errors);
    tcase_add_test(tc, train_test_split_sizes_and_seeds);
    tcase_add_test(tc, kfold_partitions);
    tcase_add_test(tc, batch_iterator_epochs);
    tcase_add_test(tc, batch_iterator_without_y_and_strided_x);
    tcase_add_test(tc, batch_iterator_keeps_memory_flat);
    tcase_add_test(tc, batch_iterator_errors);
    tcase_add_test(tc, batch_iterator_shard_pads_by_wrapping);
    tcase_add_test(tc, batch_iterator_shard_drop_last_truncates);
    tcase_add_test(tc, batch_iterator_shard_interleaves_into_the_big_batch);
    tcase_add_test(tc, batch_iterator_shard_errors);
    tcase_add_test(tc, accuracy_values_and_errors);
    tcase_add_test(tc, confusion_matches_scikit_learn);
    tcase_add_test(tc, confusion_zero_division);
    tcase_add_test(tc, confusion_errors);
    tcase_add_test(tc, confusion_print_table);
    tcase_add_test(tc, progress_plain_lines);
    tcase_add_test(tc, progress_off_and_bar);
    tcase_add_test(tc, progress_huge_counts);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
