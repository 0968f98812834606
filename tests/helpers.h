/* Shared helpers for nabla's Check suites. */
#ifndef NABLA_TEST_HELPERS_H
#define NABLA_TEST_HELPERS_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla.h"

/* Each test file defines `Suite *make_suite(void)` and ends with NB_TEST_MAIN(). */
#define NB_TEST_MAIN()                                                    \
    int main(void)                                                        \
    {                                                                     \
        SRunner *runner = srunner_create(make_suite());                   \
        srunner_run_all(runner, CK_NORMAL);                               \
        int failed = srunner_ntests_failed(runner);                       \
        srunner_free(runner);                                             \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;                      \
    }

/* |a - b| <= tol, with both values in the failure message. */
#define ck_assert_close(a, b, tol)                                                                        \
    do {                                                                                                  \
        double ck_a_ = (a), ck_b_ = (b), ck_t_ = (tol);                                                   \
        ck_assert_msg(fabs(ck_a_ - ck_b_) <= ck_t_, "%s = %.10g, expected %s = %.10g (tolerance %g)", #a, \
                      ck_a_, #b, ck_b_, ck_t_);                                                           \
    } while (0)

/* A non-NULL tensor, or a failure showing nabla's last error. */
#define ck_assert_tensor(t) ck_assert_msg((t) != NULL, "%s is NULL: %s", #t, nb_last_error())
/* A call returned NB_OK, or a failure showing nabla's last error. */
#define ck_assert_ok(expr)                                                                            \
    do {                                                                                              \
        nb_status ck_st_ = (expr);                                                                    \
        ck_assert_msg(ck_st_ == NB_OK, "%s failed: %s (%s)", #expr, nb_last_error(),                  \
                      nb_status_name(ck_st_));                                                        \
    } while (0)
/* The last error has the given status and its message contains every listed fragment. */
#define ck_assert_error(status, ...)                                                                  \
    do {                                                                                              \
        ck_assert_msg(nb_last_status() == (status), "expected %s, got %s: %s", #status,               \
                      nb_status_name(nb_last_status()), nb_last_error());                              \
        const char *ck_frags_[] = {__VA_ARGS__};                                                      \
        for (size_t ck_i_ = 0; ck_i_ < sizeof ck_frags_ / sizeof *ck_frags_; ck_i_++)                 \
            ck_assert_msg(strstr(nb_last_error(), ck_frags_[ck_i_]) != NULL,                          \
                          "error message \"%s\" lacks \"%s\"", nb_last_error(), ck_frags_[ck_i_]);     \
    } while (0)

/* Tensor from literal values: T_F64(NB_SHAPE(2, 2), 1, 2, 3, 4). */
#define T_F64(shape, ...) nb_from_array((const double[]){__VA_ARGS__}, shape, NB_F64)
#define T_F32(shape, ...) nb_from_array((const float[]){__VA_ARGS__}, shape, NB_F32)
#define T_I64(shape, ...) nb_from_array((const int64_t[]){__VA_ARGS__}, shape, NB_I64)

/* Every element of t equals the listed values within tol. */
#define ck_assert_values(t, tol, ...)                                                                 \
    do {                                                                                              \
        const double ck_v_[] = {__VA_ARGS__};                                                         \
        int64_t ck_n_ = (int64_t)(sizeof ck_v_ / sizeof *ck_v_);                                      \
        nb_tensor *ck_t_ = (t); /* evaluated once: t may be an expression with effects */             \
        ck_assert_msg(ck_t_ != NULL, "%s is NULL: %s", #t, nb_last_error());                          \
        ck_assert_int_eq(nb_numel(ck_t_), ck_n_);                                                     \
        for (int64_t ck_i_ = 0; ck_i_ < ck_n_; ck_i_++)                                               \
            ck_assert_msg(fabs(nb_get_flat(ck_t_, ck_i_) - ck_v_[ck_i_]) <= (tol),                    \
                          "%s element %lld = %.10g, expected %.10g", #t, (long long)ck_i_,            \
                          nb_get_flat(ck_t_, ck_i_), ck_v_[ck_i_]);                                   \
    } while (0)

/* The shape of t is exactly the listed sizes. */
#define ck_assert_shape(t, ...)                                                                       \
    do {                                                                                              \
        const int64_t ck_s_[] = {__VA_ARGS__};                                                        \
        int ck_nd_ = (int)(sizeof ck_s_ / sizeof *ck_s_);                                             \
        nb_tensor *ck_t_ = (t);                                                                       \
        ck_assert_msg(ck_t_ != NULL, "%s is NULL: %s", #t, nb_last_error());                          \
        char ck_buf_[128];                                                                            \
        ck_assert_msg(nb_ndim(ck_t_) == ck_nd_ && memcmp(nb_shape(ck_t_), ck_s_, sizeof ck_s_) == 0,  \
                      "%s has shape %s", #t, nb_shape_str(ck_t_, ck_buf_, sizeof ck_buf_));           \
    } while (0)

/* A leaf f64 tensor of normal values requiring grad (for gradient checks). */
static inline nb_tensor *nbt_leaf(int ndim, const int64_t *shape, uint64_t seed)
{
    nb_generator g;
    nb_generator_seed(&g, seed);
    nb_tensor *t = nb_randn(ndim, shape, 0, 1, NB_F64, &g);
    nb_set_requires_grad(t, true);
    return t;
}

/* Runs nb_gradcheck and nb_gradgradcheck (when second is true), failing with nabla's message. */
#define ck_assert_gradcheck(f, ud, n, inputs, second)                                                 \
    do {                                                                                              \
        nb_status ck_g_ = nb_gradcheck(f, ud, n, inputs, NULL);                                       \
        ck_assert_msg(ck_g_ == NB_OK, "gradcheck of %s: %s", #f, nb_last_error());                    \
        if (second) {                                                                                 \
            ck_g_ = nb_gradgradcheck(f, ud, n, inputs, NULL);                                         \
            ck_assert_msg(ck_g_ == NB_OK, "gradgradcheck of %s: %s", #f, nb_last_error());            \
        }                                                                                             \
    } while (0)

#endif
