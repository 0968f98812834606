#include "helpers.h"
START_TEST(placeholder) { ck_assert_int_eq(nb_scope_depth(), 0); }
END_TEST
Suite *make_suite(void)
{
    Suite *s = suite_create("test_memory");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, placeholder);
    suite_add_tcase(s, tc);
    return s;
}
NB_TEST_MAIN()
