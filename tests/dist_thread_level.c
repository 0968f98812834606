/* nb_dist_init with an MPI that the program started itself (MPI builds only; one process, no mpirun): at
 * MPI_THREAD_FUNNELED nabla uses it and leaves it running for the program to finalize; at MPI_THREAD_SINGLE,
 * which does not allow nabla's worker threads, it refuses with NB_ERR_COMM. The level to start MPI with is the
 * argument ("funneled" or "single"): MPI starts once per process. */
#include "helpers.h"

#include <mpi.h>

static int requested = MPI_THREAD_FUNNELED;

START_TEST(init_over_the_programs_mpi)
{
    int provided = -1;
    ck_assert_int_eq(MPI_Init_thread(NULL, NULL, requested, &provided), MPI_SUCCESS);
    ck_assert_int_eq(provided, requested);
    if (requested == MPI_THREAD_SINGLE) {
        ck_assert_int_eq(nb_dist_init(NULL, NULL), NB_ERR_COMM);
        ck_assert_error(NB_ERR_COMM, "nb_dist_init", "MPI_THREAD_SINGLE", "MPI_THREAD_FUNNELED");
        /* nothing started: the collectives are those of a world of one, and finalize has nothing to do */
        double v[1] = {2};
        ck_assert_ok(nb_dist_allreduce_sum(v, 1));
        ck_assert_double_eq(v[0], 2);
    } else {
        ck_assert_ok(nb_dist_init(NULL, NULL));
        ck_assert_int_eq(nb_dist_world_size(), 1);
        double v[1] = {2};
        ck_assert_ok(nb_dist_allreduce_sum(v, 1));
        ck_assert_double_eq(v[0], 2);
    }
    ck_assert_ok(nb_dist_finalize());
    int finalized = 1;
    MPI_Finalized(&finalized);
    ck_assert_msg(!finalized, "nabla finalized an MPI that the program started");
    ck_assert_int_eq(MPI_Finalize(), MPI_SUCCESS);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "single") && strcmp(argv[1], "funneled"))) {
        fprintf(stderr, "usage: dist_thread_level single|funneled\n");
        return 2;
    }
    requested = strcmp(argv[1], "single") ? MPI_THREAD_FUNNELED : MPI_THREAD_SINGLE;
    Suite *s = suite_create("dist_thread_level");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, init_over_the_programs_mpi);
    suite_add_tcase(s, tc);
    SRunner *runner = srunner_create(s);
    srunner_set_fork_status(runner, CK_NOFORK); /* MPI does not survive a fork */
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? 1 : 0;
}
