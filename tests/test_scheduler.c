/* Learning-rate schedules and early stopping: lr sequences against PyTorch 1.13 (tests/reference/optim_reference.py),
 * ReduceLROnPlateau on scripted metrics, state and restore, early stopping's epoch and best weights, errors. */
#include "helpers.h"

/* An SGD optimizer (lr 0.1) over one caller-owned parameter. */
typedef struct setup {
    nb_tensor *p;
    nb_param_list *list;
    nb_optimizer *opt;
} setup;

static setup setup_new(void)
{
    setup s;
    s.p = nb_zeros(NB_SHAPE(1), NB_F64);
    nb_set_requires_grad(s.p, true);
    s.list = nb_param_list_new();
    nb_param_list_add(s.list, "p", s.p, false);
    nb_sgd_options o = nb_sgd_defaults();
    o.lr = 0.1;
    s.opt = nb_sgd_new(s.list, o);
    ck_assert_msg(s.opt != NULL, "%s", nb_last_error());
    return s;
}

static void setup_free(setup *s)
{
    nb_optimizer_free(s->opt);
    nb_param_list_free(s->list);
    nb_free(s->p);
}

/* lr right after creation (epoch 0), then after each of 10 steps, for PyTorch's schedulers on SGD(lr=0.1); nabla
 * computes them with PyTorch's chainable formulas, so they agree to the bit. */
static const struct {
    const char *name;
    double lr[11];
} expected[] = {
    {"StepLR(step_size=3, gamma=0.5)", {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125}},
    {"MultiStepLR(milestones=[2, 5, 5, 8], gamma=0.5)",
     {0.1, 0.1, 0.05, 0.05, 0.05, 0.0125, 0.0125, 0.0125, 0.00625, 0.00625, 0.00625}},
    {"ExponentialLR(gamma=0.9)",
     {0.1, 0.09000000000000001, 0.08100000000000002, 0.07290000000000002, 0.06561000000000002, 0.05904900000000002,
      0.05314410000000002, 0.04782969000000002, 0.043046721000000024, 0.03874204890000002, 0.03486784401000002}},
    {"CosineAnnealingLR(T_max=4, eta_min=0.01)",
     {0.1, 0.08681980515339464, 0.05500000000000001, 0.023180194846605363, 0.01, 0.023180194846605363,
      0.05500000000000002, 0.08681980515339469, 0.10000000000000006, 0.0868198051533947, 0.05500000000000005}},
    {"LinearLR(start_factor=0.25, total_iters=4)",
     {0.025, 0.043750000000000004, 0.06250000000000001, 0.08125000000000002, 0.10000000000000002,
      0.10000000000000002, 0.10000000000000002, 0.10000000000000002, 0.10000000000000002, 0.10000000000000002,
      0.10000000000000002}},
};

static nb_scheduler *make_schedule(int i, nb_optimizer *opt)
{
    static const int64_t milestones[] = {2, 5, 5, 8};
    nb_scheduler *s = NULL;
    switch (i) {
    case 0: s = nb_step_lr_new(opt, 3, 0.5); break;
    case 1: s = nb_multistep_lr_new(opt, 4, milestones, 0.5); break;
    case 2: s = nb_exponential_lr_new(opt, 0.9); break;
    case 3: s = nb_cosine_annealing_lr_new(opt, 4, 0.01); break;
    case 4: s = nb_linear_warmup_new(opt, 4, 0.25); break;
    }
    ck_assert_msg(s != NULL, "%s", nb_last_error());
    return s;
}

START_TEST(schedules_match_pytorch)
{
    setup su = setup_new();
    nb_scheduler *s = make_schedule(_i, su.opt);
    for (int e = 0; e <= 10; e++) {
        if (e > 0) ck_assert_ok(e % 2 ? nb_scheduler_step(s) : nb_scheduler_step_metric(s, 123.0));
        ck_assert_int_eq(nb_scheduler_epoch(s), e);
        double lr = nb_optimizer_get_lr(su.opt);
        ck_assert_msg(lr == expected[_i].lr[e], "%s epoch %d: lr %.17g, expected %.17g",
                      expected[_i].name, e, lr, expected[_i].lr[e]);
    }
    nb_scheduler_free(s);
    setup_free(&su);
}
END_TEST

/* Two schedules on one optimizer (lr 1) multiply as PyTorch's chainable ones do, in either order of creation:
 * LinearLR(start_factor 0.1, 5) with ExponentialLR(0.9), LinearLR(0.25, 3) with CosineAnnealingLR(8), stepped
 * in creation order. PyTorch's lrs, to the bit. */
START_TEST(schedules_compose_as_in_pytorch)
{
    static const double warmup_exp[13] = {0.1, 0.252, 0.3726, 0.46656, 0.538002, 0.5904900000000001, 0.531441,
                                          0.4782969000000001, 0.4304672100000001, 0.3874204890000001,
                                          0.3486784401000001, 0.3138105960900001, 0.2824295364810001};
    static const double exp_warmup[13] = {0.1, 0.252, 0.3726, 0.46656, 0.538002, 0.59049, 0.5314409999999999,
                                          0.47829689999999997, 0.43046721, 0.387420489, 0.3486784401, 0.31381059609,
                                          0.282429536481};
    static const double warmup_cosine[13] = {0.25, 0.4809698831278217, 0.6401650429449552, 0.6913417161825449, 0.5,
                                             0.30865828381745514, 0.14644660940672627, 0.03806023374435664, 0.0,
                                             0.03806023374435663, 0.14644660940672638, 0.3086582838174553,
                                             0.5000000000000006};
    for (int c = 0; c < 3; c++) {
        setup su = setup_new();
        nb_optimizer_set_lr(su.opt, 1.0);
        nb_scheduler *first, *second;
        const double *want = c == 0 ? warmup_exp : c == 1 ? exp_warmup : warmup_cosine;
        if (c == 0) {
            first = nb_linear_warmup_new(su.opt, 5, 0.1);
            second = nb_exponential_lr_new(su.opt, 0.9);
        } else if (c == 1) {
            first = nb_exponential_lr_new(su.opt, 0.9);
            second = nb_linear_warmup_new(su.opt, 5, 0.1);
        } else {
            first = nb_linear_warmup_new(su.opt, 3, 0.25);
            second = nb_cosine_annealing_lr_new(su.opt, 8, 0.0);
        }
        for (int e = 0; e <= 12; e++) {
            if (e > 0) {
                ck_assert_ok(nb_scheduler_step(first));
                ck_assert_ok(nb_scheduler_step(second));
            }
            ck_assert_msg(nb_optimizer_get_lr(su.opt) == want[e], "case %d epoch %d: lr %.17g, expected %.17g", c, e,
                          nb_optimizer_get_lr(su.opt), want[e]);
        }
        nb_scheduler_free(first);
        nb_scheduler_free(second);
        setup_free(&su);
    }
}
END_TEST

/* ReduceLROnPlateau: lr after creation and after each metric, from PyTorch. */
static const double min_metrics[20] = {1.0, 0.95, 0.92, 0.91, 0.9, 0.8, 0.79, 0.795, 0.7, 0.71, 0.72, 0.73, 0.74,
                                       0.6, 0.61, 0.62, 0.63, 0.64, 0.65, 0.66};
static const double min_lrs[21] = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05,
                                   0.05, 0.025, 0.025, 0.025, 0.025};
static const double max_metrics[15] = {0.5, 0.6, 0.6, 0.61, 0.62, 0.7, 0.7, 0.7, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9};
static const double max_lrs[16] = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.03, 0.03, 0.03, 0.03, 0.009, 0.009,
                                   0.005, 0.005};

/* mode min, factor 0.5, patience 2, threshold 0.05, cooldown 1, min_lr 0.02 */
static nb_plateau_options min_options(void)
{
    nb_plateau_options o = nb_plateau_defaults();
    o.factor = 0.5;
    o.patience = 2;
    o.threshold = 0.05;
    o.cooldown = 1;
    o.min_lr = 0.02;
    return o;
}

START_TEST(plateau_matches_pytorch)
{
    setup su = setup_new();
    nb_scheduler *s = nb_reduce_on_plateau_new(su.opt, min_options());
    ck_assert(nb_optimizer_get_lr(su.opt) == min_lrs[0]);
    for (int e = 0; e < 20; e++) {
        ck_assert_ok(nb_scheduler_step_metric(s, min_metrics[e]));
        ck_assert_msg(nb_optimizer_get_lr(su.opt) == min_lrs[e + 1], "min, after metric %d: lr %.17g, expected %g", e,
                      nb_optimizer_get_lr(su.opt), min_lrs[e + 1]);
    }
    ck_assert_int_eq(nb_scheduler_epoch(s), 20);
    /* plain step needs the metric */
    ck_assert_int_eq(nb_scheduler_step(s), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_scheduler_step", "nb_scheduler_step_metric");
    nb_scheduler_free(s);
    setup_free(&su);

    /* mode max, factor 0.3, patience 1, threshold 0.01, no cooldown, min_lr 0.005 (reached, then held) */
    su = setup_new();
    nb_plateau_options o = nb_plateau_defaults();
    o.maximize = true;
    o.factor = 0.3;
    o.patience = 1;
    o.threshold = 0.01;
    o.min_lr = 0.005;
    s = nb_reduce_on_plateau_new(su.opt, o);
    for (int e = 0; e < 15; e++) {
        ck_assert_ok(nb_scheduler_step_metric(s, max_metrics[e]));
        ck_assert_msg(fabs(nb_optimizer_get_lr(su.opt) - max_lrs[e + 1]) <= 1e-17,
                      "max, after metric %d: lr %.17g, expected %g", e, nb_optimizer_get_lr(su.opt), max_lrs[e + 1]);
    }
    nb_scheduler_free(s);
    setup_free(&su);
}
END_TEST

/* threshold_mode 'abs': metrics near 100 improving by less than 5% but more than 0.05, and the same schedule
 * in relative mode, from PyTorch (factor 0.5, patience 1, threshold 0.05). */
START_TEST(plateau_absolute_threshold_matches_pytorch)
{
    static const double metrics[11] = {100, 99.97, 99.9, 99.8, 99.78, 99.7, 99.69, 99.68, 99.67, 99.5, 99.49};
    static const double abs_lrs[12] = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05};
    static const double rel_lrs[12] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.00625, 0.00625,
                                       0.003125};
    static const double max_metrics_abs[11] = {-1.0, -0.97, -0.9, -0.86, -0.8, -0.8, -0.7, -0.69, -0.6, -0.59, -0.58};
    static const double max_abs_lrs[12] = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05};
    for (int mode = 0; mode < 3; mode++) {
        setup su = setup_new();
        nb_plateau_options o = nb_plateau_defaults();
        o.factor = 0.5;
        o.patience = 1;
        o.threshold = 0.05;
        o.absolute_threshold = mode != 1;
        o.maximize = mode == 2;
        const double *m = mode == 2 ? max_metrics_abs : metrics;
        const double *want = mode == 0 ? abs_lrs : mode == 1 ? rel_lrs : max_abs_lrs;
        nb_scheduler *s = nb_reduce_on_plateau_new(su.opt, o);
        for (int e = 0; e < 11; e++) {
            ck_assert_ok(nb_scheduler_step_metric(s, m[e]));
            ck_assert_msg(fabs(nb_optimizer_get_lr(su.opt) - want[e + 1]) <= 1e-17, "mode %d, after metric %d: lr %.17g, "
                          "expected %g", mode, e, nb_optimizer_get_lr(su.opt), want[e + 1]);
        }
        nb_scheduler_free(s);
        setup_free(&su);
    }
}
END_TEST

START_TEST(plateau_defaults)
{
    nb_plateau_options o = nb_plateau_defaults();
    ck_assert(!o.maximize && o.factor == 0.1 && o.threshold == 1e-4 && o.min_lr == 0 && o.patience == 10 &&
              o.cooldown == 0 && !o.absolute_threshold);
    /* patience 10: the 11th epoch without improvement reduces */
    setup su = setup_new();
    nb_scheduler *s = nb_reduce_on_plateau_new(su.opt, o);
    ck_assert_ok(nb_scheduler_step_metric(s, 1.0));
    for (int e = 0; e < 10; e++) ck_assert_ok(nb_scheduler_step_metric(s, 0.99995)); /* within the threshold */
    ck_assert(nb_optimizer_get_lr(su.opt) == 0.1);
    ck_assert_ok(nb_scheduler_step_metric(s, NAN)); /* NaN is no improvement, as in PyTorch */
    ck_assert_close(nb_optimizer_get_lr(su.opt), 0.01, 1e-17);
    nb_scheduler_free(s);
    /* PyTorch skips reductions of at most 1e-8 (checked with ReduceLROnPlateau(factor=0.5, patience=0,
     * min_lr=0.02) on lr 0.02 + 5e-9, then 0.02 + 2e-8) */
    o.factor = 0.5;
    o.patience = 0;
    o.min_lr = 0.02;
    nb_optimizer_set_lr(su.opt, 0.02 + 5e-9);
    s = nb_reduce_on_plateau_new(su.opt, o);
    for (int e = 0; e < 3; e++) ck_assert_ok(nb_scheduler_step_metric(s, 1));
    ck_assert(nb_optimizer_get_lr(su.opt) == 0.02 + 5e-9);
    nb_optimizer_set_lr(su.opt, 0.02 + 2e-8);
    ck_assert_ok(nb_scheduler_step_metric(s, 1));
    ck_assert(nb_optimizer_get_lr(su.opt) == 0.02);
    nb_scheduler_free(s);
    setup_free(&su);
}
END_TEST

/* 4 epochs, state saved; a new optimizer and a new schedule restored from it go on exactly like the original. */
START_TEST(schedule_state_restores)
{
    setup a = setup_new();
    nb_scheduler *sa = make_schedule(_i, a.opt);
    for (int e = 0; e < 4; e++) nb_scheduler_step(sa);
    nb_metadata meta = {0};
    ck_assert_ok(nb_optimizer_state(a.opt, "optim", a.list, &meta));
    ck_assert_ok(nb_scheduler_state(sa, "sched", &meta));
    ck_assert_str_eq(nb_metadata_get(&meta, "sched.epoch"), "4");

    setup b = setup_new();
    nb_param_list *state = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(b.opt, "optim", state, NULL));
    ck_assert_ok(nb_optimizer_restore(b.opt, &meta, "optim"));
    nb_scheduler *sb = make_schedule(_i, b.opt); /* created after the optimizer's restore, as may happen */
    ck_assert_ok(nb_scheduler_restore(sb, &meta, "sched"));
    ck_assert_int_eq(nb_scheduler_epoch(sb), 4);
    ck_assert(nb_optimizer_get_lr(b.opt) == nb_optimizer_get_lr(a.opt));
    for (int e = 5; e <= 10; e++) {
        nb_scheduler_step(sa);
        nb_scheduler_step(sb);
        ck_assert(nb_optimizer_get_lr(b.opt) == nb_optimizer_get_lr(a.opt));
        ck_assert_msg(fabs(nb_optimizer_get_lr(b.opt) - expected[_i].lr[e]) <= 1e-15, "%s epoch %d",
                      expected[_i].name, e);
    }
    nb_scheduler_free(sa);
    nb_scheduler_free(sb);
    nb_param_list_free(state);
    setup_free(&a);
    setup_free(&b);
}
END_TEST

START_TEST(plateau_state_restores)
{
    setup a = setup_new();
    nb_scheduler *sa = nb_reduce_on_plateau_new(a.opt, min_options());
    for (int e = 0; e < 11; e++) nb_scheduler_step_metric(sa, min_metrics[e]);
    nb_metadata meta = {0};
    nb_param_list *state = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(a.opt, "", state, &meta));
    ck_assert_ok(nb_scheduler_state(sa, "", &meta));
    ck_assert_str_eq(nb_metadata_get(&meta, "scheduler"), "ReduceLROnPlateau");
    ck_assert_str_eq(nb_metadata_get(&meta, "num_bad_epochs"), "2");

    setup b = setup_new();
    nb_scheduler *sb = nb_reduce_on_plateau_new(b.opt, min_options());
    ck_assert_ok(nb_optimizer_restore(b.opt, &meta, ""));
    ck_assert_ok(nb_scheduler_restore(sb, &meta, NULL));
    for (int e = 11; e < 20; e++) {
        nb_scheduler_step_metric(sb, min_metrics[e]);
        ck_assert_msg(nb_optimizer_get_lr(b.opt) == min_lrs[e + 1], "after metric %d", e);
    }
    /* a fresh schedule restored from the state before any metric keeps best = inf */
    nb_metadata start = {0};
    setup c = setup_new();
    nb_scheduler *sc = nb_reduce_on_plateau_new(c.opt, min_options());
    ck_assert_ok(nb_scheduler_state(sc, "s", &start));
    ck_assert_str_eq(nb_metadata_get(&start, "s.best"), "inf");
    ck_assert_ok(nb_scheduler_restore(sb, &start, "s"));
    ck_assert_ok(nb_scheduler_step_metric(sb, 1e300));
    ck_assert_ok(nb_scheduler_state(sb, "t", &start));
    ck_assert_str_eq(nb_metadata_get(&start, "t.num_bad_epochs"), "0");

    nb_scheduler_free(sa);
    nb_scheduler_free(sb);
    nb_scheduler_free(sc);
    nb_param_list_free(state);
    setup_free(&a);
    setup_free(&b);
    setup_free(&c);
}
END_TEST

START_TEST(scheduler_errors)
{
    setup su = setup_new();
    ck_assert_ptr_null(nb_step_lr_new(NULL, 3, 0.5));
    ck_assert_error(NB_ERR_NULL, "nb_step_lr_new", "optimizer");
    ck_assert_ptr_null(nb_step_lr_new(su.opt, 0, 0.5));
    ck_assert_error(NB_ERR_ARG, "nb_step_lr_new", "step_size", "got 0");
    ck_assert_ptr_null(nb_step_lr_new(su.opt, 3, 0));
    ck_assert_error(NB_ERR_ARG, "nb_step_lr_new", "gamma", "got 0");
    ck_assert_ptr_null(nb_exponential_lr_new(su.opt, NAN));
    ck_assert_error(NB_ERR_ARG, "nb_exponential_lr_new", "gamma", "nan");
    ck_assert_ptr_null(nb_multistep_lr_new(su.opt, 3, (const int64_t[]){2, 5, 4}, 0.1));
    ck_assert_error(NB_ERR_ARG, "nb_multistep_lr_new", "increasing", "milestones[2] = 4 < 5");
    ck_assert_ptr_null(nb_multistep_lr_new(su.opt, 1, (const int64_t[]){-1}, 0.1));
    ck_assert_error(NB_ERR_ARG, "nb_multistep_lr_new", "milestones[0] is -1");
    ck_assert_ptr_null(nb_multistep_lr_new(su.opt, 2, NULL, 0.1));
    ck_assert_error(NB_ERR_NULL, "nb_multistep_lr_new", "milestones");
    ck_assert_ptr_null(nb_multistep_lr_new(su.opt, -1, NULL, 0.1));
    ck_assert_error(NB_ERR_ARG, "nb_multistep_lr_new", "n must be >= 0", "-1");
    ck_assert_ptr_null(nb_cosine_annealing_lr_new(su.opt, 0, 0));
    ck_assert_error(NB_ERR_ARG, "nb_cosine_annealing_lr_new", "t_max", "got 0");
    ck_assert_ptr_null(nb_cosine_annealing_lr_new(su.opt, 10, -0.1));
    ck_assert_error(NB_ERR_ARG, "nb_cosine_annealing_lr_new", "eta_min", "-0.1");
    ck_assert_ptr_null(nb_linear_warmup_new(su.opt, 0, 0.5));
    ck_assert_error(NB_ERR_ARG, "nb_linear_warmup_new", "warmup_steps", "got 0");
    ck_assert_ptr_null(nb_linear_warmup_new(su.opt, 5, 0));
    ck_assert_error(NB_ERR_ARG, "nb_linear_warmup_new", "start_factor", "(0, 1]", "got 0");
    ck_assert_ptr_null(nb_linear_warmup_new(su.opt, 5, 1.5));
    ck_assert_error(NB_ERR_ARG, "nb_linear_warmup_new", "start_factor", "1.5");
    nb_plateau_options o = nb_plateau_defaults();
    o.factor = 1;
    ck_assert_ptr_null(nb_reduce_on_plateau_new(su.opt, o));
    ck_assert_error(NB_ERR_ARG, "nb_reduce_on_plateau_new", "factor", "[0, 1)", "got 1");
    o = nb_plateau_defaults();
    o.patience = -1;
    ck_assert_ptr_null(nb_reduce_on_plateau_new(su.opt, o));
    ck_assert_error(NB_ERR_ARG, "nb_reduce_on_plateau_new", "patience", "-1");
    o = nb_plateau_defaults();
    o.cooldown = -2;
    ck_assert_ptr_null(nb_reduce_on_plateau_new(su.opt, o));
    ck_assert_error(NB_ERR_ARG, "nb_reduce_on_plateau_new", "cooldown", "-2");
    o = nb_plateau_defaults();
    o.min_lr = -1;
    ck_assert_ptr_null(nb_reduce_on_plateau_new(su.opt, o));
    ck_assert_error(NB_ERR_ARG, "nb_reduce_on_plateau_new", "min_lr", "-1");
    ck_assert(nb_optimizer_get_lr(su.opt) == 0.1); /* failed constructors leave the lr alone */

    ck_assert_int_eq(nb_scheduler_step(NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_scheduler_step", "scheduler");
    ck_assert_int_eq(nb_scheduler_epoch(NULL), -1);
    ck_assert_error(NB_ERR_NULL, "nb_scheduler_epoch");
    nb_scheduler_free(NULL);

    /* restore from another schedule's state, or from incomplete metadata */
    nb_scheduler *step = nb_step_lr_new(su.opt, 3, 0.5), *cosine = nb_cosine_annealing_lr_new(su.opt, 4, 0);
    nb_metadata meta = {0};
    ck_assert_ok(nb_scheduler_state(step, "sched", &meta));
    ck_assert_int_eq(nb_scheduler_restore(cosine, &meta, "sched"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_scheduler_restore", "\"sched.scheduler\" is \"StepLR\"",
                    "expected \"CosineAnnealingLR\"");
    ck_assert_int_eq(nb_scheduler_restore(step, &meta, "other"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "no entry \"other.scheduler\"");
    nb_metadata bad = meta;
    ck_assert_ok(nb_metadata_set(&bad, "sched.epoch", "-3"));
    ck_assert_int_eq(nb_scheduler_restore(step, &bad, "sched"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_scheduler_restore", "epoch -3");
    ck_assert_int_eq(nb_scheduler_state(step, "sched", NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_scheduler_state", "metadata");
    nb_scheduler_free(step);
    nb_scheduler_free(cosine);
    setup_free(&su);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Parameter groups and OneCycleLR. Reference: PyTorch 1.13 on SGD([dict(params=[a], lr=0.1, momentum=0.9),
 * dict(params=[b], lr=0.02, momentum=0.8)]) (Adam: betas (0.8, 0.99) in group 1), float64; the lrs right after
 * creation and after each of 10 steps (o.step(); s.step()), printed with repr.
 * ---------------------------------------------------------------------------------------------- */
typedef struct two_groups {
    nb_tensor *a, *b;
    nb_param_list *la, *lb;
    nb_optimizer *opt;
} two_groups;

static two_groups two_groups_new(bool adam, bool late)
{
    two_groups t;
    t.a = nb_zeros(NB_SHAPE(1), NB_F64);
    t.b = nb_zeros(NB_SHAPE(1), NB_F64);
    nb_set_requires_grad(t.a, true);
    nb_set_requires_grad(t.b, true);
    t.la = nb_param_list_new();
    t.lb = nb_param_list_new();
    nb_param_list_add(t.la, "a", t.a, false);
    nb_param_list_add(t.lb, "b", t.b, false);
    if (adam) {
        nb_adam_options o0 = nb_adam_defaults(), o1 = nb_adam_defaults();
        o0.lr = 0.1;
        o1.lr = 0.02;
        o1.beta1 = 0.8;
        o1.beta2 = 0.99;
        t.opt = nb_adam_new(t.la, o0);
        ck_assert_ok(nb_adam_add_param_group(t.opt, t.lb, o1));
    } else {
        nb_sgd_options o0 = nb_sgd_defaults(), o1 = nb_sgd_defaults();
        o0.lr = 0.1;
        o0.momentum = 0.9;
        o1.lr = 0.02;
        o1.momentum = 0.8;
        t.opt = nb_sgd_new(t.la, o0);
        if (!late) ck_assert_ok(nb_sgd_add_param_group(t.opt, t.lb, o1));
    }
    return t;
}

static void two_groups_free(two_groups *t)
{
    nb_optimizer_free(t->opt);
    nb_param_list_free(t->la);
    nb_param_list_free(t->lb);
    nb_free(t->a);
    nb_free(t->b);
}

static const struct {
    const char *name;
    double lr[2][11];
} group_expected[] = {
    {"StepLR(3, 0.5)",
     {{0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125},
      {0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.0025, 0.0025}}},
    {"CosineAnnealingLR(4, 0.001)",
     {{0.1, 0.0855017856687341, 0.0505, 0.0154982143312659, 0.001, 0.015498214331265896, 0.05050000000000001,
       0.08550178566873413, 0.10000000000000003, 0.08550178566873413, 0.05050000000000003},
      {0.02, 0.0172175144212722, 0.010499999999999999, 0.0037824855787277987, 0.001, 0.003782485578727798,
       0.010500000000000002, 0.017217514421272208, 0.020000000000000007, 0.017217514421272208,
       0.010500000000000006}}},
    {"LinearLR(0.25, total_iters=4) then ExponentialLR(0.9), both stepped",
     {{0.025, 0.03937500000000001, 0.05062500000000001, 0.05923125000000001, 0.06561000000000002,
       0.05904900000000002, 0.05314410000000002, 0.04782969000000002, 0.043046721000000024, 0.03874204890000002,
       0.03486784401000002},
      {0.005, 0.007875000000000002, 0.010125000000000004, 0.011846250000000006, 0.013122000000000007,
       0.011809800000000006, 0.010628820000000006, 0.009565938000000005, 0.008609344200000004,
       0.007748409780000004, 0.006973568802000004}}},
    {"ReduceLROnPlateau(factor=0.5, patience=1, min_lr=0.01) on the metrics below",
     {{0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.0125},
      {0.02, 0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01}}},
};
static const double group_metrics[10] = {1.0, 0.9, 0.95, 0.97, 0.96, 0.99, 0.98, 0.97, 0.8, 0.85};

START_TEST(schedules_drive_every_group)
{
    two_groups t = two_groups_new(false, false);
    nb_scheduler *s = NULL, *s2 = NULL;
    nb_plateau_options po = nb_plateau_defaults();
    po.factor = 0.5;
    po.patience = 1;
    po.min_lr = 0.01;
    switch (_i) {
    case 0: s = nb_step_lr_new(t.opt, 3, 0.5); break;
    case 1: s = nb_cosine_annealing_lr_new(t.opt, 4, 0.001); break;
    case 2:
        s = nb_linear_warmup_new(t.opt, 4, 0.25);
        s2 = nb_exponential_lr_new(t.opt, 0.9);
        break;
    case 3: s = nb_reduce_on_plateau_new(t.opt, po); break;
    }
    ck_assert_msg(s != NULL, "%s", nb_last_error());
    for (int e = 0; e <= 10; e++) {
        if (e > 0) ck_assert_ok(nb_scheduler_step_metric(s, group_metrics[e - 1]));
        if (e > 0 && s2) ck_assert_ok(nb_scheduler_step(s2));
        for (int g = 0; g < 2; g++) {
            double lr = nb_optimizer_get_group_lr(t.opt, g);
            ck_assert_msg(lr == group_expected[_i].lr[g][e], "%s group %d epoch %d: lr %.17g, expected %.17g",
                          group_expected[_i].name, g, e, lr, group_expected[_i].lr[g][e]);
        }
    }
    nb_scheduler_free(s);
    nb_scheduler_free(s2);
    two_groups_free(&t);
}
END_TEST

/* A group added after the schedule, before its third step, is scheduled from its own lr as PyTorch's StepLR does
 * (its chainable form multiplies every group's current lr): the same sequence as case 0 for both groups. */
START_TEST(group_added_after_schedule)
{
    two_groups t = two_groups_new(false, true);
    nb_scheduler *s = nb_step_lr_new(t.opt, 3, 0.5);
    for (int e = 1; e <= 10; e++) {
        if (e == 3) {
            nb_sgd_options o = nb_sgd_defaults();
            o.lr = 0.02;
            o.momentum = 0.8;
            ck_assert_ok(nb_sgd_add_param_group(t.opt, t.lb, o));
        }
        ck_assert_ok(nb_scheduler_step(s));
        for (int g = 0; g < nb_optimizer_num_param_groups(t.opt); g++)
            ck_assert_msg(nb_optimizer_get_group_lr(t.opt, g) == group_expected[0].lr[g][e], "group %d epoch %d", g,
                          e);
    }
    nb_scheduler_free(s);
    two_groups_free(&t);
}
END_TEST

/* OneCycleLR(max_lr=[1.0, 0.4], total_steps=10), defaults otherwise; lr and momentum of both groups. Momentum is
 * the same for both groups (one base/max pair). */
static const struct {
    const char *name;
    bool adam, linear, three_phase;
    double lr[2][11], momentum[11];
} cycle_expected[] = {
    {"SGD cos", false, false, false,
     {{0.040000000000000036, 0.52, 1.0, 0.9504846320134737, 0.8117456539497631, 0.6112620219362893,
       0.38874197806371075, 0.18825834605023697, 0.049519367986526286, 4e-06, 0.04951936798652623},
      {0.016000000000000014, 0.20800000000000002, 0.4, 0.38019385280538953, 0.3246982615799052, 0.24450480877451572,
       0.1554967912254843, 0.0753033384200948, 0.019807747194610516, 1.6e-06, 0.019807747194610495}},
     {0.95, 0.8999999999999999, 0.85, 0.854951556604879, 0.8688255099070633, 0.8888739533021842, 0.9111260466978157,
      0.9311744900929366, 0.945048443395121, 0.95, 0.945048443395121}},
    {"SGD linear", false, true, false,
     {{0.04, 0.52, 1.0, 0.8571434285714286, 0.7142868571428571, 0.5714302857142857, 0.42857371428571434,
       0.2857171428571429, 0.14286057142857145, 4.000000000004e-06, -0.14285257142857133},
      {0.016, 0.20800000000000002, 0.4, 0.3428573714285714, 0.2857147428571429, 0.2285721142857143,
       0.17142948571428573, 0.11428685714285713, 0.05714422857142859, 1.599999999990498e-06,
       -0.057141028571428554}},
     {0.95, 0.8999999999999999, 0.85, 0.8642857142857142, 0.8785714285714286, 0.8928571428571428,
      0.9071428571428571, 0.9214285714285714, 0.9357142857142857, 0.95, 0.9642857142857142}},
    {"SGD cos three-phase", false, false, true,
     {{0.040000000000000036, 0.52, 1.0, 0.52, 0.04, 0.0361807218535102, 0.0261817218535102, 0.013822278146489805,
       0.0038232781464898036, 4e-06, 0.0038232781464897993},
      {0.016000000000000014, 0.20800000000000002, 0.4, 0.20800000000000002, 0.016, 0.014472288741404079,
       0.010472688741404078, 0.005528911258595921, 0.0015293112585959211, 1.6e-06, 0.0015293112585959194}},
     {0.95, 0.8999999999999999, 0.85, 0.8999999999999999, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95}},
    {"SGD linear three-phase", false, true, true,
     {{0.04, 0.52, 1.0, 0.52, 0.040000000000000036, 0.032000799999999996, 0.024001599999999998, 0.0160024,
       0.008003199999999995, 3.9999999999970615e-06, -0.007995200000000001},
      {0.016, 0.20800000000000002, 0.4, 0.20800000000000002, 0.016000000000000014, 0.01280032, 0.00960064,
       0.006400960000000001, 0.003201280000000001, 1.6000000000009063e-06, -0.003198079999999999}},
     {0.95, 0.8999999999999999, 0.85, 0.8999999999999999, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95}},
    {"Adam cos (beta1 cycles)", true, false, false,
     {{0.040000000000000036, 0.52, 1.0, 0.9504846320134737, 0.8117456539497631, 0.6112620219362893,
       0.38874197806371075, 0.18825834605023697, 0.049519367986526286, 4e-06, 0.04951936798652623},
      {0.016000000000000014, 0.20800000000000002, 0.4, 0.38019385280538953, 0.3246982615799052, 0.24450480877451572,
       0.1554967912254843, 0.0753033384200948, 0.019807747194610516, 1.6e-06, 0.019807747194610495}},
     {0.95, 0.8999999999999999, 0.85, 0.854951556604879, 0.8688255099070633, 0.8888739533021842, 0.9111260466978157,
      0.9311744900929366, 0.945048443395121, 0.95, 0.945048443395121}},
};

static nb_scheduler *one_cycle(nb_optimizer *opt, int i)
{
    nb_one_cycle_options o = nb_one_cycle_defaults();
    o.anneal_linear = cycle_expected[i].linear;
    o.three_phase = cycle_expected[i].three_phase;
    nb_scheduler *s = nb_one_cycle_lr_new(opt, 2, (const double[]){1.0, 0.4}, 10, o);
    ck_assert_msg(s != NULL, "%s", nb_last_error());
    return s;
}

static void check_cycle(nb_optimizer *opt, int i, int e)
{
    for (int g = 0; g < 2; g++) {
        double lr = nb_optimizer_get_group_lr(opt, g), m = nb_optimizer_get_group_momentum(opt, g);
        ck_assert_msg(lr == cycle_expected[i].lr[g][e], "%s group %d epoch %d: lr %.17g, expected %.17g",
                      cycle_expected[i].name, g, e, lr, cycle_expected[i].lr[g][e]);
        ck_assert_msg(m == cycle_expected[i].momentum[e], "%s group %d epoch %d: momentum %.17g, expected %.17g",
                      cycle_expected[i].name, g, e, m, cycle_expected[i].momentum[e]);
    }
}

/* The sequences, then PyTorch's refusal of an 11th step ("Tried to step 12 times. The specified number of total
 * steps is 10"), which changes nothing. */
START_TEST(one_cycle_matches_pytorch)
{
    two_groups t = two_groups_new(cycle_expected[_i].adam, false);
    nb_scheduler *s = one_cycle(t.opt, _i);
    for (int e = 0; e <= 10; e++) {
        if (e > 0) ck_assert_ok(nb_scheduler_step(s));
        check_cycle(t.opt, _i, e);
    }
    ck_assert_int_eq(nb_scheduler_step(s), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_scheduler_step: OneCycleLR tried to step 12 times; the specified number of "
                                  "total steps is 10");
    ck_assert_int_eq(nb_scheduler_epoch(s), 10);
    check_cycle(t.opt, _i, 10);
    nb_scheduler_free(s);
    two_groups_free(&t);
}
END_TEST

/* A OneCycleLR checkpoint after 4 steps, restored into a fresh optimizer and schedule (made, as a restart does,
 * before the restore: creation sets the epoch-0 lr and momentum), continues the sequence, momentum included. */
START_TEST(one_cycle_state_restores)
{
    two_groups a = two_groups_new(false, false);
    nb_scheduler *sa = one_cycle(a.opt, 2);
    for (int e = 0; e < 4; e++) ck_assert_ok(nb_scheduler_step(sa));
    nb_metadata meta = {0};
    nb_param_list *state = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(a.opt, "optim", state, &meta));
    ck_assert_ok(nb_scheduler_state(sa, "sched", &meta));
    ck_assert_str_eq(nb_metadata_get(&meta, "sched.param_groups"), "2");
    ck_assert_str_eq(nb_metadata_get(&meta, "sched.total_steps"), "10");

    two_groups b = two_groups_new(false, false);
    nb_scheduler *sb = one_cycle(b.opt, 2);
    ck_assert_ok(nb_optimizer_restore(b.opt, &meta, "optim"));
    ck_assert_ok(nb_scheduler_restore(sb, &meta, "sched"));
    check_cycle(b.opt, 2, 4);
    for (int e = 5; e <= 10; e++) {
        ck_assert_ok(nb_scheduler_step(sb));
        check_cycle(b.opt, 2, e);
    }
    /* A linear anneal ends below zero after its last allowed step (case 1, as PyTorch's): a checkpoint taken
     * there still restores. */
    two_groups c = two_groups_new(false, false), d = two_groups_new(false, false);
    nb_scheduler *sc = one_cycle(c.opt, 1), *sd = one_cycle(d.opt, 1);
    for (int e = 0; e < 10; e++) ck_assert_ok(nb_scheduler_step(sc));
    ck_assert(nb_optimizer_get_group_lr(c.opt, 0) < 0);
    nb_metadata end = {0};
    nb_param_list *end_state = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(c.opt, "optim", end_state, &end));
    ck_assert_ok(nb_scheduler_state(sc, "sched", &end));
    nb_param_list *d_state = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(d.opt, "optim", d_state, NULL));
    ck_assert_ok(nb_optimizer_restore(d.opt, &end, "optim"));
    ck_assert_ok(nb_scheduler_restore(sd, &end, "sched"));
    check_cycle(d.opt, 1, 10);
    nb_param_list_free(end_state);
    nb_param_list_free(d_state);
    nb_scheduler_free(sc);
    nb_scheduler_free(sd);
    two_groups_free(&c);
    two_groups_free(&d);

    /* Another total_steps, or one group, is refused. */
    nb_scheduler *other = nb_one_cycle_lr_new(b.opt, 1, (const double[]){1.0}, 20, nb_one_cycle_defaults());
    ck_assert_int_eq(nb_scheduler_restore(other, &meta, "sched"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "total_steps 10, this one 20");
    setup one = setup_new();
    nb_scheduler *step = nb_step_lr_new(one.opt, 3, 0.5);
    nb_metadata two = {0};
    nb_scheduler *sa_step = nb_step_lr_new(a.opt, 3, 0.5);
    ck_assert_ok(nb_scheduler_state(sa_step, "s", &two));
    ck_assert_int_eq(nb_scheduler_restore(step, &two, "s"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "drove 2 parameter groups, the optimizer has 1");
    ck_assert(nb_optimizer_get_lr(one.opt) == 0.1);

    nb_scheduler_free(sa_step);
    nb_scheduler_free(step);
    setup_free(&one);
    nb_scheduler_free(other);
    nb_scheduler_free(sa);
    nb_scheduler_free(sb);
    nb_param_list_free(state);
    two_groups_free(&a);
    two_groups_free(&b);
}
END_TEST

START_TEST(one_cycle_errors)
{
    two_groups t = two_groups_new(false, false);
    nb_one_cycle_options o = nb_one_cycle_defaults();
    const double one[1] = {1.0};
    ck_assert_ptr_null(nb_one_cycle_lr_new(NULL, 1, one, 10, o));
    ck_assert_error(NB_ERR_NULL, "nb_one_cycle_lr_new", "optimizer");
    ck_assert_ptr_null(nb_one_cycle_lr_new(t.opt, 3, (const double[]){1, 2, 3}, 10, o));
    ck_assert_error(NB_ERR_ARG, "expected 1 or 2 values for max_lr", "got 3");
    ck_assert_ptr_null(nb_one_cycle_lr_new(t.opt, 1, one, 0, o));
    ck_assert_error(NB_ERR_ARG, "total_steps must be > 0, got 0");
    o.pct_start = 1.5;
    ck_assert_ptr_null(nb_one_cycle_lr_new(t.opt, 1, one, 10, o));
    ck_assert_error(NB_ERR_ARG, "pct_start must be in [0, 1], got 1.5");
    o.pct_start = 0.1; /* pct_start * total_steps = 1: the first phase is empty */
    ck_assert_ptr_null(nb_one_cycle_lr_new(t.opt, 1, one, 10, o));
    ck_assert_error(NB_ERR_ARG, "makes phase 1 of the two-phase schedule empty");
    o = nb_one_cycle_defaults();
    o.base_momentum = 0;
    ck_assert_ptr_null(nb_one_cycle_lr_new(t.opt, 1, one, 10, o));
    ck_assert_error(NB_ERR_ARG, "base_momentum must be finite and > 0, got 0");
    ck_assert(nb_optimizer_get_group_lr(t.opt, 1) == 0.02 && nb_optimizer_get_group_momentum(t.opt, 1) == 0.8);
    /* Without momentum: Adagrad, and an SGD group made with momentum 0 (fine with cycle_momentum off). */
    setup su = setup_new();
    ck_assert_ptr_null(nb_one_cycle_lr_new(su.opt, 1, one, 10, nb_one_cycle_defaults()));
    ck_assert_error(NB_ERR_ARG, "parameter group 0 of SGD was made with momentum 0");
    o = nb_one_cycle_defaults();
    o.cycle_momentum = false;
    nb_scheduler *s = nb_one_cycle_lr_new(su.opt, 1, one, 10, o);
    ck_assert_msg(s != NULL, "%s", nb_last_error());
    ck_assert(nb_optimizer_get_lr(su.opt) == 0.040000000000000036);
    nb_scheduler_free(s);
    nb_optimizer *ada = nb_adagrad_new(su.list, nb_adagrad_defaults());
    ck_assert_ptr_null(nb_one_cycle_lr_new(ada, 1, one, 10, nb_one_cycle_defaults()));
    ck_assert_error(NB_ERR_ARG, "cycle_momentum needs an optimizer with momentum or betas; Adagrad has neither");
    ck_assert(isnan(nb_optimizer_get_group_momentum(ada, 0)));
    nb_optimizer_free(ada);
    setup_free(&su);
    two_groups_free(&t);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Early stopping
 * ---------------------------------------------------------------------------------------------- */
/* Minimizing with patience 3 and min_delta 0.01: the best is epoch 4 (0.7); 0.795 and 0.79 are not better than
 * 0.8 by more than 0.01, nor 0.695 than 0.7; epochs 5, 6, 7 do not improve, so update returns true at epoch 7.
 * The weights hold the epoch number, so the restored weights show which epoch was kept. */
START_TEST(early_stopping_stops_and_restores_best)
{
    static const double metrics[] = {1.0, 0.8, 0.795, 0.79, 0.7, 0.71, 0.695, 0.72, 0.5};
    nb_tensor *w = nb_zeros(NB_SHAPE(2, 2), NB_F64), *running = nb_zeros(NB_SHAPE(2), NB_F64);
    nb_set_requires_grad(w, true);
    nb_param_list *list = nb_param_list_new();
    nb_param_list_add(list, "w", w, false);
    nb_param_list_add(list, "running", running, true);
    nb_early_stopping *es = nb_early_stopping_new(3, 0.01, false, true);
    ck_assert_msg(es != NULL, "%s", nb_last_error());
    ck_assert_int_eq(nb_early_stopping_best_epoch(es), -1);
    ck_assert(nb_early_stopping_best(es) == INFINITY);
    int stopped_at = -1;
    for (int e = 0; e < 9 && stopped_at < 0; e++) {
        nb_fill(w, e);
        nb_fill(running, 10 * e);
        if (nb_early_stopping_update(es, metrics[e], list)) stopped_at = e;
    }
    ck_assert_int_eq(stopped_at, 7);
    ck_assert_int_eq(nb_early_stopping_best_epoch(es), 4);
    ck_assert(nb_early_stopping_best(es) == 0.7);
    ck_assert_ok(nb_early_stopping_restore(es, list));
    ck_assert_values(w, 0, 4, 4, 4, 4);
    ck_assert_values(running, 0, 40, 40);
    ck_assert(nb_requires_grad(w));
    /* the restore goes by name: a rebuilt list in another order works */
    nb_param_list *other = nb_param_list_new();
    nb_tensor *running2 = nb_zeros(NB_SHAPE(2), NB_F64), *w2 = nb_zeros(NB_SHAPE(2, 2), NB_F64);
    nb_param_list_add(other, "running", running2, true);
    nb_param_list_add(other, "w", w2, false);
    ck_assert_ok(nb_early_stopping_restore(es, other));
    ck_assert_values(w2, 0, 4, 4, 4, 4);
    ck_assert_values(running2, 0, 40, 40);
    nb_early_stopping_free(es);
    nb_param_list_free(other);
    nb_param_list_free(list);
    nb_free(w);
    nb_free(w2);
    nb_free(running);
    nb_free(running2);
}
END_TEST

/* The same run as early_stopping_stops_and_restores_best, interrupted after epoch 5 (two epochs without a better
 * metric) and resumed from a checkpoint into a fresh object: it stops at epoch 7 with epoch 4's weights, as the
 * uninterrupted run does. The copies a fresh object makes for loading are no best of their own. */
START_TEST(early_stopping_resumes_from_checkpoint)
{
    static const double metrics[] = {1.0, 0.8, 0.795, 0.79, 0.7, 0.71, 0.695, 0.72, 0.5};
    nb_tensor *w = nb_zeros(NB_SHAPE(2, 2), NB_F64);
    nb_param_list *list = nb_param_list_new();
    nb_param_list_add(list, "w", w, false);
    nb_early_stopping *a = nb_early_stopping_new(3, 0.01, false, true);
    for (int e = 0; e < 6; e++) {
        nb_fill(w, e);
        ck_assert(!nb_early_stopping_update(a, metrics[e], list));
    }
    nb_metadata meta = {0};
    nb_param_list *saved = nb_param_list_new();
    ck_assert_ok(nb_early_stopping_state(a, list, "early_stopping", saved, &meta));
    ck_assert_int_eq(saved->count, 1);
    ck_assert_str_eq(saved->items[0].name, "early_stopping.w");
    ck_assert_values(saved->items[0].tensor, 0, 4, 4, 4, 4);
    ck_assert_str_eq(nb_metadata_get(&meta, "early_stopping.best_epoch"), "4");
    ck_assert_str_eq(nb_metadata_get(&meta, "early_stopping.bad_epochs"), "1");
    ck_assert_int_eq(meta.count, 7);

    /* the resumed run: its copies exist before the load, holding the current weights, and are no best */
    nb_early_stopping *b = nb_early_stopping_new(3, 0.01, false, true);
    nb_param_list *fresh = nb_param_list_new();
    ck_assert_ok(nb_early_stopping_state(b, list, "early_stopping", fresh, NULL));
    ck_assert_int_eq(nb_early_stopping_restore(b, list), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "no metric has been recorded yet");
    ck_assert_ok(nb_copy_(fresh->items[0].tensor, saved->items[0].tensor)); /* what loading the file does */
    /* inconsistent entries change nothing */
    nb_metadata bad = meta;
    ck_assert_ok(nb_metadata_set(&bad, "early_stopping.best_epoch", "6"));
    ck_assert_int_eq(nb_early_stopping_resume(b, &bad, "early_stopping"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_early_stopping_resume", "best_epoch 6", "do not fit together");
    ck_assert_int_eq(nb_early_stopping_best_epoch(b), -1);
    bad = meta; /* more epochs without a better metric than epochs since the best */
    ck_assert_ok(nb_metadata_set(&bad, "early_stopping.bad_epochs", "2"));
    ck_assert_int_eq(nb_early_stopping_resume(b, &bad, "early_stopping"), NB_ERR_FORMAT);
    bad = meta;
    ck_assert_ok(nb_metadata_set(&bad, "early_stopping.epoch", "9223372036854775807"));
    ck_assert_int_eq(nb_early_stopping_resume(b, &bad, "early_stopping"), NB_ERR_FORMAT);
    ck_assert_ok(nb_early_stopping_resume(b, &meta, "early_stopping"));
    ck_assert_int_eq(nb_early_stopping_best_epoch(b), 4);
    ck_assert(nb_early_stopping_best(b) == 0.7 && !nb_early_stopping_stopped(b));
    int stopped_at = -1;
    for (int e = 6; e < 9 && stopped_at < 0; e++) {
        nb_fill(w, e);
        if (nb_early_stopping_update(b, metrics[e], list)) stopped_at = e;
    }
    ck_assert_int_eq(stopped_at, 7);
    ck_assert(nb_early_stopping_stopped(b));
    ck_assert_ok(nb_early_stopping_restore(b, list));
    ck_assert_values(w, 0, 4, 4, 4, 4);

    /* errors, each leaving out and the metadata as they were */
    nb_param_list *out = nb_param_list_new();
    ck_assert_int_eq(nb_early_stopping_state(b, list, "", out, &meta), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_early_stopping_state", "prefix is empty");
    nb_early_stopping *c = nb_early_stopping_new(3, 0.01, false, true);
    ck_assert_int_eq(nb_early_stopping_state(c, NULL, "es", out, NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_early_stopping_state", "params is NULL");
    ck_assert_int_eq(nb_early_stopping_resume(c, &meta, "early_stopping"), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "call nb_early_stopping_state before loading");
    nb_metadata full = {0};
    for (int i = 0; i < NB_METADATA_MAX_ENTRIES - 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_ok(nb_metadata_set(&full, key, "x"));
    }
    ck_assert_int_eq(nb_early_stopping_state(b, list, "early_stopping", out, &full), NB_ERR_ARG);
    ck_assert_int_eq(full.count, NB_METADATA_MAX_ENTRIES - 4);
    ck_assert_int_eq(out->count, 0);
    /* without keep_best, no copies and no params needed */
    nb_early_stopping *d = nb_early_stopping_new(2, 0, true, false);
    nb_metadata plain = {0};
    ck_assert_ok(nb_early_stopping_state(d, NULL, "", out, &plain));
    ck_assert_int_eq(out->count, 0);
    ck_assert_str_eq(nb_metadata_get(&plain, "best"), "-inf");
    /* another direction or keep_best: refused, as the best would be read the other way or never restored */
    ck_assert_int_eq(nb_early_stopping_resume(d, &meta, "early_stopping"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "maximize 0 and keep_best 1, this one 1 and 0");
    ck_assert_int_eq(nb_early_stopping_best_epoch(d), -1);

    /* a list whose entry changed shape: the update fails and the kept weights stay the last best's */
    nb_tensor *v = nb_zeros(NB_SHAPE(2), NB_F64), *v3 = nb_zeros(NB_SHAPE(3), NB_F64);
    nb_param_list *two = nb_param_list_new(), *changed = nb_param_list_new();
    nb_param_list_add(two, "w", w, false);
    nb_param_list_add(two, "v", v, false);
    nb_param_list_add(changed, "w", w, false);
    nb_param_list_add(changed, "v", v3, false);
    nb_early_stopping *e = nb_early_stopping_new(2, 0, false, true);
    nb_fill(w, 1);
    ck_assert(!nb_early_stopping_update(e, 1.0, two));
    nb_fill(w, 2);
    ck_assert(!nb_early_stopping_update(e, 0.5, changed));
    ck_assert_error(NB_ERR_SHAPE, "nb_early_stopping_update", "\"v\" is (3) f64, the kept weights (2) f64");
    ck_assert_ok(nb_early_stopping_restore(e, two));
    ck_assert_values(w, 0, 1, 1, 1, 1);
    /* a kept copy freed by the program: an error, not a crash */
    nb_param_list *lent = nb_param_list_new();
    ck_assert_ok(nb_early_stopping_state(e, two, "es", lent, NULL));
    nb_free(lent->items[0].tensor);
    ck_assert_int_eq(nb_early_stopping_restore(e, two), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_early_stopping_restore", "kept copy");
    nb_early_stopping_free(e);
    nb_param_list_free(lent);
    nb_param_list_free(two);
    nb_param_list_free(changed);
    nb_free(v);
    nb_free(v3);

    nb_early_stopping_free(a);
    nb_early_stopping_free(b);
    nb_early_stopping_free(c);
    nb_early_stopping_free(d);
    nb_param_list_free(out);
    nb_param_list_free(fresh);
    nb_param_list_free(saved);
    nb_param_list_free(list);
    nb_free(w);
}
END_TEST

START_TEST(early_stopping_maximize_and_nan)
{
    /* maximizing accuracy, patience 2, min_delta 0: 0.6 at epoch 1 is the best; equal values do not improve */
    static const double acc[] = {0.5, 0.6, 0.6, 0.55};
    nb_early_stopping *es = nb_early_stopping_new(2, 0, true, false);
    ck_assert(nb_early_stopping_best(es) == -INFINITY);
    bool stop[4];
    for (int e = 0; e < 4; e++) stop[e] = nb_early_stopping_update(es, acc[e], NULL);
    ck_assert(!stop[0] && !stop[1] && !stop[2] && stop[3]);
    ck_assert_int_eq(nb_early_stopping_best_epoch(es), 1);
    ck_assert(nb_early_stopping_best(es) == 0.6);
    /* keep_best off: nothing to restore */
    nb_param_list *list = nb_param_list_new();
    ck_assert_int_eq(nb_early_stopping_restore(es, list), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_early_stopping_restore", "keep_best is off");
    nb_early_stopping_free(es);

    /* min_delta applies upwards too: 0.54 is not better than 0.5 by more than 0.05 */
    es = nb_early_stopping_new(1, 0.05, true, false);
    ck_assert(!nb_early_stopping_update(es, 0.5, NULL));
    ck_assert(nb_early_stopping_update(es, 0.54, NULL));
    ck_assert_int_eq(nb_early_stopping_best_epoch(es), 0);
    nb_early_stopping_free(es);

    /* patience 0 stops at the first epoch without improvement; a NaN metric stops at once */
    es = nb_early_stopping_new(0, 0, false, false);
    ck_assert(!nb_early_stopping_update(es, 1.0, NULL));
    ck_assert(nb_early_stopping_update(es, 1.0, NULL));
    nb_early_stopping_free(es);
    es = nb_early_stopping_new(5, 0, false, false);
    ck_assert(!nb_early_stopping_update(es, 1.0, NULL));
    ck_assert(nb_early_stopping_update(es, NAN, NULL));
    ck_assert(nb_early_stopping_best(es) == 1.0);
    nb_early_stopping_free(es);
    nb_param_list_free(list);
}
END_TEST

START_TEST(early_stopping_errors)
{
    ck_assert_ptr_null(nb_early_stopping_new(-1, 0, false, true));
    ck_assert_error(NB_ERR_ARG, "nb_early_stopping_new", "patience", "-1");
    ck_assert_ptr_null(nb_early_stopping_new(3, -0.5, false, true));
    ck_assert_error(NB_ERR_ARG, "nb_early_stopping_new", "min_delta", "-0.5");
    ck_assert(!nb_early_stopping_update(NULL, 1, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_early_stopping_update");
    ck_assert(isnan(nb_early_stopping_best(NULL)));
    ck_assert_error(NB_ERR_NULL, "nb_early_stopping_best");

    nb_early_stopping *es = nb_early_stopping_new(3, 0, false, true);
    ck_assert(!nb_early_stopping_update(es, 1, NULL));
    ck_assert_error(NB_ERR_NULL, "nb_early_stopping_update", "params", "keep_best");
    nb_param_list *list = nb_param_list_new();
    ck_assert_int_eq(nb_early_stopping_restore(es, list), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_early_stopping_restore", "no metric has been recorded");
    nb_tensor *w = nb_ones(NB_SHAPE(3), NB_F64);
    nb_param_list_add(list, "w", w, false);
    ck_assert(!nb_early_stopping_update(es, 1, list));
    /* a changed list: another entry count, another name, a missing entry, another shape */
    nb_param_list *longer = nb_param_list_new();
    nb_param_list_add(longer, "w", w, false);
    nb_param_list_add(longer, "v", w, false);
    ck_assert(!nb_early_stopping_update(es, 0.5, longer));
    ck_assert_error(NB_ERR_ARG, "nb_early_stopping_update", "2 entries", "had 1");
    nb_param_list *renamed = nb_param_list_new();
    nb_param_list_add(renamed, "u", w, false);
    ck_assert(!nb_early_stopping_update(es, 0.25, renamed));
    ck_assert_error(NB_ERR_ARG, "nb_early_stopping_update", "\"u\"", "was \"w\"");
    /* failed updates record nothing: the best is still epoch 0's */
    ck_assert(nb_early_stopping_best(es) == 1);
    ck_assert_int_eq(nb_early_stopping_best_epoch(es), 0);
    ck_assert_int_eq(nb_early_stopping_restore(es, renamed), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_early_stopping_restore", "no entry \"w\"");
    nb_tensor *w_big = nb_ones(NB_SHAPE(2, 2), NB_F64);
    nb_param_list *reshaped = nb_param_list_new();
    nb_param_list_add(reshaped, "w", w_big, false);
    ck_assert_int_eq(nb_early_stopping_restore(es, reshaped), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "nb_early_stopping_restore", "\"w\"", "(2, 2)", "(3)");
    ck_assert_values(w_big, 0, 1, 1, 1, 1);
    nb_early_stopping_free(es);
    nb_early_stopping_free(NULL);
    nb_param_list_free(list);
    nb_param_list_free(longer);
    nb_param_list_free(renamed);
    nb_param_list_free(reshaped);
    nb_free(w);
    nb_free(w_big);
}
END_TEST

/* Per-layer learning rates: 24 groups of one parameter each, warmed up by LinearLR and decayed by cosine. The
 * optimizer's and both schedules' entries fit one nb_metadata, and restoring them into a fresh optimizer made
 * the same way gives every group's lr, initial lr and the epochs back. */
#define MANY_GROUPS 24
typedef struct many_groups {
    nb_tensor *p[MANY_GROUPS];
    nb_param_list *lists[MANY_GROUPS];
    nb_optimizer *opt;
} many_groups;

/* order[g] is the parameter in group g (names "p0".."p23"); group g's lr is 0.01 (g + 1). */
static many_groups many_groups_new(const int *order)
{
    many_groups m;
    for (int i = 0; i < MANY_GROUPS; i++) {
        m.p[i] = nb_zeros(NB_SHAPE(2), NB_F64);
        nb_set_requires_grad(m.p[i], true);
    }
    for (int g = 0; g < MANY_GROUPS; g++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", order[g]);
        m.lists[g] = nb_param_list_new();
        ck_assert_ok(nb_param_list_add(m.lists[g], name, m.p[order[g]], false));
        nb_adam_options o = nb_adam_defaults();
        o.lr = 0.01 * (g + 1);
        if (g == 0) m.opt = nb_adam_new(m.lists[0], o);
        else ck_assert_ok(nb_adam_add_param_group(m.opt, m.lists[g], o));
    }
    ck_assert_ptr_nonnull(m.opt);
    return m;
}

static void many_groups_free(many_groups *m)
{
    nb_optimizer_free(m->opt);
    for (int i = 0; i < MANY_GROUPS; i++) {
        nb_param_list_free(m->lists[i]);
        nb_free(m->p[i]);
    }
}

START_TEST(many_groups_checkpoint)
{
    int order[MANY_GROUPS];
    for (int g = 0; g < MANY_GROUPS; g++) order[g] = g;
    many_groups a = many_groups_new(order);
    nb_scheduler *warm = nb_linear_warmup_new(a.opt, 3, 0.1), *cosine = nb_cosine_annealing_lr_new(a.opt, 10, 0.0);
    ck_assert_ptr_nonnull(warm);
    ck_assert_ptr_nonnull(cosine);
    for (int e = 0; e < 5; e++) {
        ck_assert_ok(nb_scheduler_step(warm));
        ck_assert_ok(nb_scheduler_step(cosine));
    }
    nb_metadata meta = {0};
    ck_assert_ok(nb_metadata_set(&meta, "epoch", "5"));
    nb_param_list *state = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(a.opt, "optim", state, &meta));
    ck_assert_ok(nb_scheduler_state(warm, "warmup", &meta));
    ck_assert_ok(nb_scheduler_state(cosine, "cosine", &meta));
    /* 5 entries and 3 groups an entry for the optimizer; 6 and 5 groups an entry for each schedule */
    ck_assert_int_eq(meta.count, 1 + (5 + MANY_GROUPS / 3) + 2 * (6 + (MANY_GROUPS + 4) / 5));
    ck_assert_ptr_nonnull(nb_metadata_get(&meta, "optim.groups.21"));
    ck_assert_ptr_nonnull(nb_metadata_get(&meta, "cosine.groups.20"));

    many_groups b = many_groups_new(order);
    nb_scheduler *warm_b = nb_linear_warmup_new(b.opt, 3, 0.1), *cosine_b = nb_cosine_annealing_lr_new(b.opt, 10, 0.0);
    nb_param_list *fresh = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(b.opt, "optim", fresh, NULL));
    ck_assert_ok(nb_optimizer_restore(b.opt, &meta, "optim"));
    ck_assert_ok(nb_scheduler_restore(warm_b, &meta, "warmup"));
    ck_assert_ok(nb_scheduler_restore(cosine_b, &meta, "cosine"));
    for (int g = 0; g < MANY_GROUPS; g++)
        ck_assert_msg(nb_optimizer_get_group_lr(b.opt, g) == nb_optimizer_get_group_lr(a.opt, g), "group %d", g);
    ck_assert_int_eq(nb_scheduler_epoch(cosine_b), 5);
    ck_assert_ok(nb_scheduler_step(warm));
    ck_assert_ok(nb_scheduler_step(cosine));
    ck_assert_ok(nb_scheduler_step(warm_b));
    ck_assert_ok(nb_scheduler_step(cosine_b));
    for (int g = 0; g < MANY_GROUPS; g++)
        ck_assert_msg(nb_optimizer_get_group_lr(b.opt, g) == nb_optimizer_get_group_lr(a.opt, g), "group %d", g);

    /* The same group sizes holding other parameters (p0 and p23 swapped): refused, naming the layout, with every
     * lr unchanged, by the optimizer and by both schedules. */
    order[0] = MANY_GROUPS - 1;
    order[MANY_GROUPS - 1] = 0;
    many_groups c = many_groups_new(order);
    nb_scheduler *cosine_c = nb_cosine_annealing_lr_new(c.opt, 10, 0.0);
    ck_assert_int_eq(nb_optimizer_restore(c.opt, &meta, "optim"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_optimizer_restore", "parameter groups hold other parameters",
                    "\"optim.group_layout\"");
    ck_assert_int_eq(nb_scheduler_restore(cosine_c, &meta, "cosine"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_scheduler_restore", "parameter groups hold other parameters",
                    "\"cosine.group_layout\"");
    for (int g = 0; g < MANY_GROUPS; g++) ck_assert(nb_optimizer_get_group_lr(c.opt, g) == 0.01 * (g + 1));
    ck_assert_int_eq(nb_optimizer_steps(c.opt), 0);
    ck_assert_int_eq(nb_scheduler_epoch(cosine_c), 0);

    /* All or nothing: with room for all but one entry, neither the metadata nor the list changes. */
    nb_metadata full = {0};
    int need = 5 + MANY_GROUPS / 3;
    for (int i = 0; i < NB_METADATA_MAX_ENTRIES - need + 1; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_ok(nb_metadata_set(&full, key, "x"));
    }
    nb_param_list *list = nb_param_list_new();
    ck_assert_int_eq(nb_optimizer_state(a.opt, "optim", list, &full), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_optimizer_state", "128 entries");
    ck_assert_int_eq(full.count, NB_METADATA_MAX_ENTRIES - need + 1);
    ck_assert_int_eq(list->count, 0);
    while (full.count < NB_METADATA_MAX_ENTRIES - 10) { /* the cosine schedule needs 11 */
        char key[16];
        snprintf(key, sizeof key, "k%d", full.count);
        ck_assert_ok(nb_metadata_set(&full, key, "x"));
    }
    ck_assert_int_eq(nb_scheduler_state(cosine, "cosine", &full), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_scheduler_state: nb_metadata_set", "128 entries");
    ck_assert_int_eq(full.count, NB_METADATA_MAX_ENTRIES - 10);
    /* A name already in the list: the list is cut back to what it held. */
    ck_assert_ok(nb_param_list_add(list, "optim.p5.exp_avg", a.p[0], true));
    ck_assert_int_eq(nb_optimizer_state(a.opt, "optim", list, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "duplicate name \"optim.p5.exp_avg\"");
    ck_assert_int_eq(list->count, 1);

    nb_param_list_free(list);
    nb_scheduler_free(cosine_c);
    many_groups_free(&c);
    nb_param_list_free(fresh);
    nb_scheduler_free(warm_b);
    nb_scheduler_free(cosine_b);
    many_groups_free(&b);
    nb_param_list_free(state);
    nb_scheduler_free(warm);
    nb_scheduler_free(cosine);
    many_groups_free(&a);
}
END_TEST

/* The first form of a schedule's entries with groups (one entry per value, no layout) still restores. */
START_TEST(first_group_form_restores)
{
    two_groups t = two_groups_new(false, false);
    nb_scheduler *s = nb_step_lr_new(t.opt, 3, 0.5);
    nb_metadata m = {0};
    ck_assert_ok(nb_metadata_set(&m, "sched.scheduler", "StepLR"));
    ck_assert_ok(nb_metadata_set(&m, "sched.epoch", "4"));
    ck_assert_ok(nb_metadata_set(&m, "sched.base_lr", "0.1"));
    ck_assert_ok(nb_metadata_set(&m, "sched.lr", "0.05"));
    ck_assert_ok(nb_metadata_set(&m, "sched.param_groups", "2"));
    ck_assert_ok(nb_metadata_set(&m, "sched.group0.base_lr", "0.1"));
    ck_assert_ok(nb_metadata_set(&m, "sched.group0.lr", "0.05"));
    ck_assert_ok(nb_metadata_set(&m, "sched.group1.base_lr", "0.02"));
    ck_assert_ok(nb_metadata_set(&m, "sched.group1.base_lr", "-0.02"));
    ck_assert_ok(nb_metadata_set(&m, "sched.group1.lr", "0.01"));
    ck_assert_int_eq(nb_scheduler_restore(s, &m, "sched"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "base_lr -0.02 and lr 0.01 for parameter group 1");
    ck_assert_ok(nb_metadata_set(&m, "sched.group1.base_lr", "0.02"));
    ck_assert(nb_optimizer_get_group_lr(t.opt, 1) == 0.02 && nb_scheduler_epoch(s) == 0);
    ck_assert_ok(nb_metadata_set(&m, "sched.group1.lr", "0.01"));
    ck_assert_ok(nb_scheduler_restore(s, &m, "sched"));
    ck_assert(nb_optimizer_get_group_lr(t.opt, 0) == 0.05 && nb_optimizer_get_group_lr(t.opt, 1) == 0.01);
    ck_assert_int_eq(nb_scheduler_epoch(s), 4);
    ck_assert_ok(nb_scheduler_step(s)); /* epochs 5, 6: the third halving comes at 6 */
    ck_assert_ok(nb_scheduler_step(s));
    ck_assert(nb_optimizer_get_group_lr(t.opt, 0) == 0.025 && nb_optimizer_get_group_lr(t.opt, 1) == 0.005);
    nb_scheduler_free(s);
    two_groups_free(&t);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("scheduler");
    TCase *tc = tcase_create("scheduler");
    tcase_set_timeout(tc, 60);
    int n = (int)(sizeof expected / sizeof *expected);
    tcase_add_loop_test(tc, schedules_match_pytorch, 0, n);
    tcase_add_test(tc, schedules_compose_as_in_pytorch);
    tcase_add_test(tc, plateau_matches_pytorch);
    tcase_add_test(tc, plateau_defaults);
    tcase_add_test(tc, plateau_absolute_threshold_matches_pytorch);
    tcase_add_loop_test(tc, schedule_state_restores, 0, n);
    tcase_add_test(tc, plateau_state_restores);
    tcase_add_test(tc, scheduler_errors);
    tcase_add_loop_test(tc, schedules_drive_every_group, 0, (int)(sizeof group_expected / sizeof *group_expected));
    tcase_add_test(tc, group_added_after_schedule);
    tcase_add_loop_test(tc, one_cycle_matches_pytorch, 0, (int)(sizeof cycle_expected / sizeof *cycle_expected));
    tcase_add_test(tc, one_cycle_state_restores);
    tcase_add_test(tc, one_cycle_errors);
    tcase_add_test(tc, many_groups_checkpoint);
    tcase_add_test(tc, first_group_form_restores);
    tcase_add_test(tc, early_stopping_stops_and_restores_best);
    tcase_add_test(tc, early_stopping_resumes_from_checkpoint);
    tcase_add_test(tc, early_stopping_maximize_and_nan);
    tcase_add_test(tc, early_stopping_errors);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
