/* Optimizers and gradient clipping: parameters after 5 steps against PyTorch 1.13 for every optimizer and option,
 * frozen / gradient-less / buffer entries, checkpoint state and bit-exact resume, flat memory over 1000 steps,
 * lr and step count, defaults, every error path, and maximize. Reference numbers: tests/reference/optim_reference.py
 * (the maximize cases: see their table). */
#include "helpers.h"

#include <unistd.h>

enum { K_SGD, K_ADAM, K_ADAMW, K_RMSPROP, K_ADAGRAD };

typedef struct ref_case {
    const char *name;
    int kind;
    nb_sgd_options sgd;
    nb_adam_options adam;
    nb_rmsprop_options rmsprop;
    nb_adagrad_options adagrad;
    double w[6], b[2]; /* W (2, 3) and b (2) after 5 steps in PyTorch */
} ref_case;

static const ref_case cases[] = {
    {"sgd", K_SGD,
     .sgd = {.lr = 0.05, .momentum = 0.0, .dampening = 0.0, .weight_decay = 0.0, .nesterov = false},
     .w = {0.6724264680663709, 0.10244746225029211, 0.5497254991165232,
           -0.1123428099771152, 0.13364081667071853, 0.47271327184263956},
     .b = {0.11657564292332966, 0.01973535868586883}},
    {"sgd_weight_decay", K_SGD,
     .sgd = {.lr = 0.05, .momentum = 0.0, .dampening = 0.0, .weight_decay = 0.1, .nesterov = false},
     .w = {0.6605281788207092, 0.10387282531997676, 0.5362692051425801,
           -0.10841208653782446, 0.12737553526585307, 0.46575332999523206},
     .b = {0.11551267468747958, 0.021105626067144046}},
    {"sgd_momentum", K_SGD,
     .sgd = {.lr = 0.05, .momentum = 0.9, .dampening = 0.0, .weight_decay = 0.0, .nesterov = false},
     .w = {0.9249653106351491, 0.6877992097762696, 0.18433313180299976,
           0.019824234169251477, -0.2544080348160255, 1.023211093480142},
     .b = {0.13155029729847312, 0.19983028589340135}},
    {"sgd_dampening", K_SGD,
     .sgd = {.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.0, .nesterov = false},
     .w = {0.8648940055153591, 0.5528016545443654, 0.2694397991679953,
           -0.01426421103262825, -0.16457448762238208, 0.8894427083334911},
     .b = {0.13633411374719986, 0.1534359751390396}},
    {"sgd_nesterov", K_SGD,
     .sgd = {.lr = 0.05, .momentum = 0.8, .dampening = 0.0, .weight_decay = 0.0, .nesterov = true},
     .w = {0.878675184541731, 0.5653047016408244, 0.2594813142929047,
           0.0015661047383168443, -0.17350453034733265, 0.9269827496792576},
     .b = {0.1024711712581712, 0.17582362416099975}},
    {"sgd_nesterov_decay", K_SGD,
     .sgd = {.lr = 0.05, .momentum = 0.8, .dampening = 0.0, .weight_decay = 0.05, .nesterov = true},
     .w = {0.8627761256302757, 0.5618170301752511, 0.24669860603795923,
           0.006129750156549196, -0.17914154629981555, 0.912956867018859},
     .b = {0.10281364223207688, 0.1767615047128576}},
    {"adam", K_ADAM,
     .adam = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-08, .weight_decay = 0.0, .amsgrad = false},
     .w = {0.9583732240736966, 0.17791886528946366, 0.31305215741048087,
           0.14851095398098657, -0.08878013950999804, 0.5775324533208506},
     .b = {0.1692797299433837, 0.3431046720235051}},
    {"adam_weight_decay", K_ADAM,
     .adam = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-08, .weight_decay = 0.2, .amsgrad = false},
     .w = {0.9394285537032132, 0.1778398611522398, 0.31399670062974344,
           0.1463307260383436, -0.08765114562905893, 0.574343248088595},
     .b = {0.09986017280041466, 0.33174659503972653}},
    {"adam_amsgrad", K_ADAM,
     .adam = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.9, .eps = 1e-08, .weight_decay = 0.0, .amsgrad = true},
     .w = {0.9626615864628859, 0.18507900374741332, 0.30724886627026604,
           0.1482571740016877, -0.09495612028724058, 0.5843778528154813},
     .b = {0.16990124732043577, 0.34519636695295014}},
    {"adam_betas", K_ADAM,
     .adam = {.lr = 0.05, .beta1 = 0.5, .beta2 = 0.9, .eps = 0.001, .weight_decay = 0.0, .amsgrad = false},
     .w = {0.7312750277232256, -0.062174799834096565, 0.557932877900165,
           0.007769121621741589, 0.1575588987508809, 0.3379461790611034},
     .b = {0.19421710125153158, 0.1282296846765619}},
    {"adamw", K_ADAMW,
     .adam = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-08, .weight_decay = 0.1, .amsgrad = false},
     .w = {0.9285356098616638, 0.18207658150571313, 0.2855369061215653,
           0.15126338656232513, -0.09826248384997706, 0.5628787623476935},
     .b = {0.17805481390296296, 0.34008634625381}},
    {"adamw_amsgrad", K_ADAMW,
     .adam = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.9, .eps = 1e-08, .weight_decay = 0.3, .amsgrad = true},
     .w = {0.8777372441136407, 0.19632962377856716, 0.2289236586029778,
           0.15550256645400817, -0.12189477430227481, 0.5415884355245549},
     .b = {0.199277994878549, 0.3361299031781788}},
    {"rmsprop", K_RMSPROP,
     .rmsprop = {.lr = 0.01, .alpha = 0.99, .eps = 1e-08, .weight_decay = 0.0, .momentum = 0.0, .centered = false},
     .w = {0.7707539948036038, -0.014543816007027435, 0.5067481575577809,
           0.005467333772496195, 0.10330289617327186, 0.38433381867121796},
     .b = {0.13718176800859963, 0.1582355102838568}},
    {"rmsprop_centered", K_RMSPROP,
     .rmsprop = {.lr = 0.01, .alpha = 0.99, .eps = 1e-08, .weight_decay = 0.0, .momentum = 0.0, .centered = true},
     .w = {0.7734116102145233, -0.011476579404950414, 0.5035344193593028,
           0.006195663721461572, 0.09995514166804323, 0.387345635187182},
     .b = {0.13630054723892995, 0.1604602283539235}},
    {"rmsprop_momentum", K_RMSPROP,
     .rmsprop = {.lr = 0.01, .alpha = 0.99, .eps = 1e-08, .weight_decay = 0.0, .momentum = 0.9, .centered = false},
     .w = {1.176443934598707, 0.4621551358264105, -0.013818372513035635,
           0.21667037378967965, -0.42423835134573545, 0.8606170811422231},
     .b = {0.09817754963962332, 0.5279420945563623}},
    {"rmsprop_all", K_RMSPROP,
     .rmsprop = {.lr = 0.02, .alpha = 0.9, .eps = 0.0001, .weight_decay = 0.1, .momentum = 0.5, .centered = true},
     .w = {0.8269334696019344, 0.05752757181620101, 0.4293901308230589,
           0.051755199066693285, 0.02681295153199247, 0.45503476127576054},
     .b = {0.12551473021188286, 0.21642269095742675}},
    {"adagrad", K_ADAGRAD,
     .adagrad = {.lr = 0.1, .lr_decay = 0.0, .weight_decay = 0.0, .initial_accumulator_value = 0.0, .eps = 1e-10},
     .w = {0.7696026342111538, -0.01573461487996765, 0.5079086129948293,
           0.005001850843143566, 0.10451099760998955, 0.3831692781986186},
     .b = {0.1380239474119237, 0.15723721923063108}},
    {"adagrad_lr_decay", K_ADAGRAD,
     .adagrad = {.lr = 0.1, .lr_decay = 0.5, .weight_decay = 0.0, .initial_accumulator_value = 0.0, .eps = 1e-10},
     .w = {0.6901900741278191, -0.10331853412400546, 0.5989437646014607,
           -0.03273142489640736, 0.19834335905601286, 0.2967046260563192},
     .b = {0.17927709176748927, 0.08685327890579914}},
    {"adagrad_all", K_ADAGRAD,
     .adagrad = {.lr = 0.2, .lr_decay = 0.1, .weight_decay = 0.05, .initial_accumulator_value = 0.5, .eps = 1e-06},
     .w = {0.8417987096198148, 0.1349968717189106, 0.37910333849502315,
           0.005990509267265881, -0.027327735925895602, 0.5296649136496377},
     .b = {0.1154140153039823, 0.19153307854608106}},
};
#define N_CASES ((int)(sizeof cases / sizeof *cases))

static const ref_case *find_case(const char *name)
{
    for (int i = 0; i < N_CASES; i++)
        if (strcmp(cases[i].name, name) == 0) return &cases[i];
    ck_abort_msg("no case %s", name);
    return NULL;
}

/* The fixed problem: loss = mean((X W^T + b - Y)^2) over W (2, 3) and b (2). */
static const double W0[6] = {0.5, -0.3, 0.8, -0.2, 0.4, 0.1}, B0[2] = {0.1, -0.1};
static const double X0[12] = {1.0, 2.0, -1.0, 0.5, -1.5, 2.0, -1.0, 0.5, 0.3, 2.0, 1.0, 1.0};
static const double Y0[8] = {1.0, -1.0, 0.0, 2.0, -0.5, 0.5, 3.0, 1.0};

typedef struct problem {
    nb_tensor *w, *b, *x, *y;
    nb_param_list *list; /* "fc.weight", "fc.bias" */
} problem;

static nb_tensor *from_doubles(const double *v, int ndim, const int64_t *shape, nb_dtype dtype)
{
    nb_tensor *t = nb_from_array(v, ndim, shape, NB_F64);
    if (dtype == NB_F64) return t;
    nb_tensor *converted = nb_to_dtype(t, dtype);
    nb_free(t);
    return converted;
}

/* Caller-owned tensors (call with no scope open). */
static problem problem_new(nb_dtype dtype)
{
    problem p;
    p.w = from_doubles(W0, NB_SHAPE(2, 3), dtype);
    p.b = from_doubles(B0, NB_SHAPE(2), dtype);
    p.x = from_doubles(X0, NB_SHAPE(4, 3), dtype);
    p.y = from_doubles(Y0, NB_SHAPE(4, 2), dtype);
    ck_assert_ok(nb_set_requires_grad(p.w, true));
    ck_assert_ok(nb_set_requires_grad(p.b, true));
    p.list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(p.list, "fc.weight", p.w, false));
    ck_assert_ok(nb_param_list_add(p.list, "fc.bias", p.b, false));
    return p;
}

static void problem_free(problem *p)
{
    nb_free(p->w);
    nb_free(p->b);
    nb_free(p->x);
    nb_free(p->y);
    nb_param_list_free(p->list);
}

static void backward(problem *p)
{
    nb_scope_begin();
    nb_tensor *pred = nb_add(nb_matmul(p->x, nb_transpose(p->w, 0, 1)), p->b);
    nb_tensor *loss = nb_mean(nb_square(nb_sub(pred, p->y)), 0, NULL, false);
    ck_assert_ok(nb_backward(loss));
    nb_scope_end();
}

static void train(nb_optimizer *opt, problem *p, int steps)
{
    for (int i = 0; i < steps; i++) {
        nb_optimizer_zero_grad(opt);
        backward(p);
        ck_assert_ok(nb_optimizer_step(opt));
    }
}

static nb_optimizer *make_optimizer(const ref_case *c, const nb_param_list *list)
{
    nb_optimizer *opt = NULL;
    switch (c->kind) {
    case K_SGD: opt = nb_sgd_new(list, c->sgd); break;
    case K_ADAM: opt = nb_adam_new(list, c->adam); break;
    case K_ADAMW: opt = nb_adamw_new(list, c->adam); break;
    case K_RMSPROP: opt = nb_rmsprop_new(list, c->rmsprop); break;
    case K_ADAGRAD: opt = nb_adagrad_new(list, c->adagrad); break;
    }
    ck_assert_msg(opt != NULL, "%s: %s", c->name, nb_last_error());
    return opt;
}

static void assert_near(nb_tensor *t, const double *expected, int n, double tol, const char *what)
{
    ck_assert_int_eq(nb_numel(t), n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(nb_get_flat(t, i) - expected[i]) <= tol, "%s element %d = %.17g, expected %.17g", what, i,
                      nb_get_flat(t, i), expected[i]);
}

static void assert_same_bits(nb_tensor *a, nb_tensor *b, const char *what)
{
    ck_assert_int_eq(nb_numel(a), nb_numel(b));
    for (int64_t i = 0; i < nb_numel(a); i++) {
        double x = nb_get_flat(a, i), y = nb_get_flat(b, i);
        ck_assert_msg(memcmp(&x, &y, sizeof x) == 0, "%s element %lld: %.17g != %.17g", what, (long long)i, x, y);
    }
}

START_TEST(matches_pytorch)
{
    const ref_case *c = &cases[_i];
    problem p = problem_new(NB_F64);
    nb_optimizer *opt = make_optimizer(c, p.list);
    train(opt, &p, 5);
    char what[64];
    snprintf(what, sizeof what, "%s W", c->name);
    assert_near(p.w, c->w, 6, 1e-10, what);
    snprintf(what, sizeof what, "%s b", c->name);
    assert_near(p.b, c->b, 2, 1e-10, what);
    ck_assert_int_eq(nb_optimizer_steps(opt), 5);
    nb_optimizer_free(opt);
    problem_free(&p);
}
END_TEST

/* f32 parameters: state in f32 and arithmetic in f32, like PyTorch (Adam, lr 0.1, default betas). */
START_TEST(adam_f32_matches_pytorch)
{
    static const double w[6] = {0.9583731889724731, 0.17791885137557983, 0.3130521774291992, 0.14851094782352448,
                                -0.08878011256456375, 0.5775324106216431};
    static const double b[2] = {0.16927972435951233, 0.34310466051101685};
    problem p = problem_new(NB_F32);
    nb_adam_options o = nb_adam_defaults();
    o.lr = 0.1;
    nb_optimizer *opt = nb_adam_new(p.list, o);
    ck_assert_msg(opt != NULL, "%s", nb_last_error());
    train(opt, &p, 5);
    ck_assert_int_eq(nb_dtype_of(p.w), NB_F32);
    assert_near(p.w, w, 6, 2e-6, "W");
    assert_near(p.b, b, 2, 2e-6, "b");
    nb_param_list *state = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(opt, "optim", state, NULL));
    ck_assert_int_eq(nb_dtype_of(nb_param_list_find(state, "optim.fc.weight.exp_avg")), NB_F32);
    ck_assert_int_eq(nb_dtype_of(nb_param_list_find(state, "optim.fc.bias.exp_avg_sq")), NB_F32);
    nb_param_list_free(state);
    nb_optimizer_free(opt);
    problem_free(&p);
}
END_TEST

/* A frozen parameter (even one still holding a gradient), a parameter without a gradient and a buffer are left
 * bit-identical, and only the trained parameter's step advances. */
START_TEST(frozen_gradless_and_buffers_are_skipped)
{
    problem p = problem_new(NB_F64);
    nb_tensor *unused = T_F64(NB_SHAPE(2), 1.5, -2.5), *buf = T_F64(NB_SHAPE(2), 3, 4);
    ck_assert_ok(nb_set_requires_grad(unused, true));
    ck_assert_ok(nb_set_requires_grad(buf, true)); /* a buffer is skipped even when it could be trained */
    ck_assert_ok(nb_param_list_add(p.list, "unused", unused, false));
    ck_assert_ok(nb_param_list_add(p.list, "buf", buf, true));
    nb_no_grad_begin();
    nb_tensor *w_before = nb_clone(p.w), *b_before = nb_clone(p.b), *unused_before = nb_clone(unused),
              *buf_before = nb_clone(buf);
    nb_no_grad_end();
    nb_optimizer *opt = nb_adam_new(p.list, find_case("adam")->adam);
    ck_assert_msg(opt != NULL, "%s", nb_last_error());

    backward(&p);
    nb_scope_begin(); /* give buf a gradient too */
    ck_assert_ok(nb_backward(nb_sum(nb_mul(buf, unused), 0, NULL, false)));
    nb_scope_end();
    ck_assert_ok(nb_zero_grad(unused));
    ck_assert_ok(nb_set_requires_grad(p.w, false)); /* frozen after backward: its gradient is still there */
    ck_assert_tensor(nb_grad(p.w));
    ck_assert_ok(nb_optimizer_step(opt));
    for (int i = 0; i < 4; i++) train(opt, &p, 1);

    assert_same_bits(p.w, w_before, "frozen W");
    assert_same_bits(unused, unused_before, "unused");
    assert_same_bits(buf, buf_before, "buffer");
    ck_assert(nb_get_flat(p.b, 0) != nb_get_flat(b_before, 0));
    ck_assert_int_eq(nb_optimizer_steps(opt), 5);

    nb_param_list *state = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(opt, "optim", state, NULL));
    ck_assert_int_eq(state->count, 9); /* 3 parameters x (step, exp_avg, exp_avg_sq); no buffer */
    ck_assert_ptr_null(nb_param_list_find(state, "optim.buf.step"));
    ck_assert_int_eq(nb_item(nb_param_list_find(state, "optim.fc.bias.step")), 5);
    ck_assert_int_eq(nb_item(nb_param_list_find(state, "optim.fc.weight.step")), 0);
    ck_assert_int_eq(nb_item(nb_param_list_find(state, "optim.unused.step")), 0);
    ck_assert_values(nb_param_list_find(state, "optim.fc.weight.exp_avg"), 0, 0, 0, 0, 0, 0, 0);
    nb_param_list_free(state);
    nb_optimizer_free(opt);
    nb_free(w_before);
    nb_free(b_before);
    nb_free(unused_before);
    nb_free(buf_before);
    nb_free(unused);
    nb_free(buf);
    problem_free(&p);
}
END_TEST

/* PyTorch keeps a step count per parameter: a parameter that starts training late gets Adam's first-step bias
 * correction then, not the optimizer's. Adam's first update is lr g / (|g| + eps), whatever beta1 and beta2. */
START_TEST(late_parameter_gets_its_own_step_count)
{
    problem p = problem_new(NB_F64);
    nb_adam_options o = nb_adam_defaults();
    o.lr = 0.1;
    nb_optimizer *opt = nb_adam_new(p.list, o);
    ck_assert_ok(nb_set_requires_grad(p.b, false));
    train(opt, &p, 3);
    ck_assert_ok(nb_set_requires_grad(p.b, true));
    nb_optimizer_zero_grad(opt);
    backward(&p);
    double g0 = nb_get_flat(nb_grad(p.b), 0), g1 = nb_get_flat(nb_grad(p.b), 1);
    ck_assert_ok(nb_optimizer_step(opt));
    ck_assert_close(nb_get_flat(p.b, 0), B0[0] - 0.1 * g0 / (fabs(g0) + 1e-8), 1e-12);
    ck_assert_close(nb_get_flat(p.b, 1), B0[1] - 0.1 * g1 / (fabs(g1) + 1e-8), 1e-12);
    nb_optimizer_free(opt);
    problem_free(&p);
}
END_TEST

/* Asked before the first step, the state exists with its initial values, and the updates are unchanged
 * (SGD's momentum buffer still starts as the first gradient). */
START_TEST(state_before_first_step)
{
    problem p = problem_new(NB_F64);
    nb_adam_options ao = find_case("adam_amsgrad")->adam;
    nb_optimizer *adam = nb_adam_new(p.list, ao);
    nb_param_list *state = nb_param_list_new();
    nb_metadata meta = {0};
    ck_assert_ok(nb_optimizer_state(adam, "optim", state, &meta));
    static const char *const names[] = {"optim.fc.weight.step", "optim.fc.weight.exp_avg",
                                        "optim.fc.weight.exp_avg_sq", "optim.fc.weight.max_exp_avg_sq",
                                        "optim.fc.bias.step", "optim.fc.bias.exp_avg", "optim.fc.bias.exp_avg_sq",
                                        "optim.fc.bias.max_exp_avg_sq"};
    ck_assert_int_eq(state->count, 8);
    for (int i = 0; i < 8; i++) {
        ck_assert_str_eq(state->items[i].name, names[i]);
        ck_assert(state->items[i].is_buffer);
        for (int64_t j = 0; j < nb_numel(state->items[i].tensor); j++)
            ck_assert(nb_get_flat(state->items[i].tensor, j) == 0);
    }
    ck_assert_int_eq(nb_dtype_of(state->items[0].tensor), NB_I64);
    ck_assert_int_eq(nb_ndim(state->items[0].tensor), 0);
    ck_assert_shape(state->items[1].tensor, 2, 3);
    ck_assert_shape(state->items[5].tensor, 2);
    ck_assert_str_eq(nb_metadata_get(&meta, "optim.optimizer"), "Adam");
    ck_assert_str_eq(nb_metadata_get(&meta, "optim.steps"), "0");
    ck_assert(strtod(nb_metadata_get(&meta, "optim.lr"), NULL) == ao.lr);
    /* an empty prefix gives the bare names */
    nb_param_list *bare = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(adam, "", bare, NULL));
    ck_assert_str_eq(bare->items[1].name, "fc.weight.exp_avg");
    nb_param_list_free(bare);
    nb_param_list_free(state);
    nb_optimizer_free(adam);

    nb_optimizer *adagrad = nb_adagrad_new(p.list, find_case("adagrad_all")->adagrad);
    state = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(adagrad, "opt", state, NULL));
    ck_assert_values(nb_param_list_find(state, "opt.fc.bias.sum"), 0, 0.5, 0.5);
    nb_param_list_free(state);
    train(adagrad, &p, 5);
    assert_near(p.w, find_case("adagrad_all")->w, 6, 1e-10, "adagrad W");
    nb_optimizer_free(adagrad);
    problem_free(&p);

    p = problem_new(NB_F64);
    const ref_case *c = find_case("sgd_dampening");
    nb_optimizer *sgd = make_optimizer(c, p.list);
    state = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(sgd, "optim", state, NULL));
    ck_assert_ptr_nonnull(nb_param_list_find(state, "optim.fc.weight.momentum_buffer"));
    nb_param_list_free(state);
    train(sgd, &p, 5);
    assert_near(p.w, c->w, 6, 1e-10, "sgd W");
    assert_near(p.b, c->b, 2, 1e-10, "sgd b");
    nb_optimizer_free(sgd);
    problem_free(&p);
}
END_TEST

static double lr_of(const ref_case *c)
{
    switch (c->kind) {
    case K_SGD: return c->sgd.lr;
    case K_ADAM:
    case K_ADAMW: return c->adam.lr;
    case K_RMSPROP: return c->rmsprop.lr;
    default: return c->adagrad.lr;
    }
}

/* 3 steps, a checkpoint (state values + metadata + parameters copied out), the run thrown away; then fresh
 * parameters and a fresh optimizer restored from the checkpoint run 2 more steps: bit-identical to 5 steps in one
 * go. The lr is halved after step 2 so that restoring it matters. */
static const char *const resumed[] = {"sgd_dampening", "sgd_nesterov_decay", "adam_amsgrad", "adamw_amsgrad",
                                      "rmsprop_all", "adagrad_all"};

START_TEST(checkpoint_resumes_bit_exactly)
{
    const ref_case *c = find_case(resumed[_i]);
    problem a = problem_new(NB_F64);
    nb_optimizer *oa = make_optimizer(c, a.list);
    train(oa, &a, 2);
    nb_optimizer_set_lr(oa, lr_of(c) / 2);
    train(oa, &a, 3);

    problem b = problem_new(NB_F64);
    nb_optimizer *ob = make_optimizer(c, b.list);
    train(ob, &b, 2);
    nb_optimizer_set_lr(ob, lr_of(c) / 2);
    train(ob, &b, 1);
    nb_param_list *saved = nb_param_list_new();
    nb_metadata meta = {0};
    ck_assert_ok(nb_optimizer_state(ob, "optim", saved, &meta));
    ck_assert_str_eq(nb_metadata_get(&meta, "optim.steps"), "3");
    nb_param_list *checkpoint = nb_param_list_new();
    nb_no_grad_begin();
    for (int i = 0; i < saved->count; i++)
        ck_assert_ok(nb_param_list_add(checkpoint, saved->items[i].name, nb_clone(saved->items[i].tensor), true));
    ck_assert_ok(nb_param_list_add(checkpoint, "fc.weight", nb_clone(b.w), false));
    ck_assert_ok(nb_param_list_add(checkpoint, "fc.bias", nb_clone(b.b), false));
    nb_no_grad_end();
    nb_optimizer_free(ob);
    nb_param_list_free(saved);
    problem_free(&b);

    problem r = problem_new(NB_F64);
    ck_assert_ok(nb_copy_(r.w, nb_param_list_find(checkpoint, "fc.weight")));
    ck_assert_ok(nb_copy_(r.b, nb_param_list_find(checkpoint, "fc.bias")));
    nb_optimizer *orr = make_optimizer(c, r.list);
    nb_param_list *fresh = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(orr, "optim", fresh, NULL));
    ck_assert_int_eq(fresh->count + 2, checkpoint->count);
    for (int i = 0; i < fresh->count; i++) {
        nb_tensor *from = nb_param_list_find(checkpoint, fresh->items[i].name);
        ck_assert_msg(from != NULL, "checkpoint lacks %s", fresh->items[i].name);
        ck_assert_ok(nb_copy_(fresh->items[i].tensor, from));
    }
    ck_assert_ok(nb_optimizer_restore(orr, &meta, "optim"));
    ck_assert_int_eq(nb_optimizer_steps(orr), 3);
    ck_assert(nb_optimizer_get_lr(orr) == lr_of(c) / 2);
    train(orr, &r, 2);
    assert_same_bits(r.w, a.w, c->name);
    assert_same_bits(r.b, a.b, c->name);

    for (int i = 0; i < checkpoint->count; i++) nb_free(checkpoint->items[i].tensor);
    nb_param_list_free(checkpoint);
    nb_param_list_free(fresh);
    nb_optimizer_free(orr);
    nb_optimizer_free(oa);
    problem_free(&r);
    problem_free(&a);
}
END_TEST

/* The same through a safetensors file: nb_optimizer_state's list and metadata are what nb_save_safetensors writes
 * and nb_load_safetensors (strict) reads back in place. */
START_TEST(checkpoint_file_resumes_bit_exactly)
{
    const ref_case *c = find_case("adamw_amsgrad");
    char path[] = "/tmp/nabla_optim_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);

    problem a = problem_new(NB_F64);
    nb_optimizer *oa = make_optimizer(c, a.list);
    train(oa, &a, 5);

    problem b = problem_new(NB_F64);
    nb_optimizer *ob = make_optimizer(c, b.list);
    train(ob, &b, 3);
    nb_metadata meta = {0};
    ck_assert_ok(nb_optimizer_state(ob, "optim", b.list, &meta)); /* model and optimizer in one list */
    ck_assert_int_eq(b.list->count, 2 + 2 * 4);
    ck_assert_ok(nb_save_safetensors(path, b.list, &meta));
    nb_optimizer_free(ob);
    problem_free(&b);

    problem r = problem_new(NB_F64);
    nb_optimizer *orr = make_optimizer(c, r.list);
    ck_assert_ok(nb_optimizer_state(orr, "optim", r.list, NULL));
    nb_metadata loaded = {0};
    nb_load_report report;
    ck_assert_ok(nb_load_safetensors(path, r.list, NB_LOAD_STRICT, &report, &loaded));
    ck_assert_int_eq(report.loaded, 10);
    ck_assert_ok(nb_optimizer_restore(orr, &loaded, "optim"));
    train(orr, &r, 2);
    assert_same_bits(r.w, a.w, "W");
    assert_same_bits(r.b, a.b, "b");

    nb_optimizer_free(orr);
    nb_optimizer_free(oa);
    problem_free(&r);
    problem_free(&a);
    unlink(path);
}
END_TEST

/* Each step's temporaries die with it: 1000 steps allocate nothing and leave no tensor behind. */
START_TEST(memory_stays_flat)
{
    for (int k = 0; k < 3; k++) {
        static const char *const names[] = {"adamw_amsgrad", "rmsprop_all", "sgd_nesterov_decay"};
        problem p = problem_new(NB_F64);
        nb_optimizer *opt = make_optimizer(find_case(names[k]), p.list);
        train(opt, &p, 5);
        nb_memory_stats before = nb_memory_stats_get();
        train(opt, &p, 1000);
        nb_memory_stats after = nb_memory_stats_get();
        ck_assert_int_eq(after.live_tensors, before.live_tensors);
        ck_assert_int_eq(after.system_allocs, before.system_allocs);
        ck_assert_int_eq(after.live_bytes, before.live_bytes);
        ck_assert_int_eq(nb_optimizer_steps(opt), 1005);
        nb_optimizer_free(opt);
        problem_free(&p);
    }
}
END_TEST

START_TEST(lr_and_step_count)
{
    problem p = problem_new(NB_F64);
    nb_sgd_options o = nb_sgd_defaults();
    o.lr = 1.0;
    nb_optimizer *opt = nb_sgd_new(p.list, o);
    ck_assert(nb_optimizer_get_lr(opt) == 1.0);
    nb_optimizer_set_lr(opt, 0.05);
    ck_assert(nb_optimizer_get_lr(opt) == 0.05);
    nb_optimizer_set_lr(opt, -1);
    ck_assert_error(NB_ERR_ARG, "nb_optimizer_set_lr", "lr", "-1");
    nb_optimizer_set_lr(opt, NAN);
    ck_assert_error(NB_ERR_ARG, "nb_optimizer_set_lr", "nan");
    ck_assert(nb_optimizer_get_lr(opt) == 0.05);
    /* a step without gradients counts but changes nothing */
    ck_assert_int_eq(nb_optimizer_steps(opt), 0);
    ck_assert_ok(nb_optimizer_step(opt));
    ck_assert_int_eq(nb_optimizer_steps(opt), 1);
    assert_near(p.w, W0, 6, 0, "W");
    /* the set lr is the one used: 5 steps equal PyTorch's SGD with lr 0.05 */
    train(opt, &p, 5);
    assert_near(p.w, find_case("sgd")->w, 6, 1e-10, "W");
    ck_assert_int_eq(nb_optimizer_steps(opt), 6);
    /* zero_grad drops the gradients */
    ck_assert_tensor(nb_grad(p.w));
    nb_optimizer_zero_grad(opt);
    ck_assert_ptr_null(nb_grad(p.w));
    ck_assert_ptr_null(nb_grad(p.b));
    nb_optimizer_free(opt);
    problem_free(&p);

    nb_clear_error();
    ck_assert(isnan(nb_optimizer_get_lr(NULL)));
    ck_assert_error(NB_ERR_NULL, "nb_optimizer_get_lr", "optimizer");
    ck_assert_int_eq(nb_optimizer_steps(NULL), -1);
    ck_assert_error(NB_ERR_NULL, "nb_optimizer_steps");
    ck_assert_int_eq(nb_optimizer_step(NULL), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_optimizer_step");
    nb_optimizer_free(NULL);
}
END_TEST

START_TEST(defaults_match_pytorch)
{
    nb_sgd_options s = nb_sgd_defaults();
    ck_assert(s.lr == 0.01 && s.momentum == 0 && s.dampening == 0 && s.weight_decay == 0 && !s.nesterov &&
              !s.maximize);
    nb_adam_options a = nb_adam_defaults();
    ck_assert(a.lr == 1e-3 && a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8 && a.weight_decay == 0 &&
              !a.amsgrad && !a.maximize);
    nb_adam_options w = nb_adamw_defaults();
    ck_assert(w.lr == 1e-3 && w.beta1 == 0.9 && w.beta2 == 0.999 && w.eps == 1e-8 && w.weight_decay == 0.01 &&
              !w.amsgrad && !w.maximize);
    nb_rmsprop_options r = nb_rmsprop_defaults();
    ck_assert(r.lr == 0.01 && r.alpha == 0.99 && r.eps == 1e-8 && r.weight_decay == 0 && r.momentum == 0 &&
              !r.centered && !r.maximize);
    nb_adagrad_options g = nb_adagrad_defaults();
    ck_assert(g.lr == 0.01 && g.lr_decay == 0 && g.weight_decay == 0 && g.initial_accumulator_value == 0 &&
              g.eps == 1e-10 && !g.maximize);
}
END_TEST

START_TEST(constructor_errors)
{
    problem p = problem_new(NB_F64);
    nb_sgd_options s = nb_sgd_defaults();
    ck_assert_ptr_null(nb_sgd_new(NULL, s));
    ck_assert_error(NB_ERR_NULL, "nb_sgd_new", "params");
    s.lr = -0.1;
    ck_assert_ptr_null(nb_sgd_new(p.list, s));
    ck_assert_error(NB_ERR_ARG, "nb_sgd_new", "lr", ">= 0", "-0.1");
    s = nb_sgd_defaults();
    s.momentum = -0.5;
    ck_assert_ptr_null(nb_sgd_new(p.list, s));
    ck_assert_error(NB_ERR_ARG, "nb_sgd_new", "momentum", "-0.5");
    s = nb_sgd_defaults();
    s.weight_decay = NAN;
    ck_assert_ptr_null(nb_sgd_new(p.list, s));
    ck_assert_error(NB_ERR_ARG, "nb_sgd_new", "weight_decay", "nan");
    s = nb_sgd_defaults();
    s.nesterov = true;
    ck_assert_ptr_null(nb_sgd_new(p.list, s));
    ck_assert_error(NB_ERR_ARG, "nb_sgd_new", "nesterov", "momentum 0");
    s.momentum = 0.9;
    s.dampening = 0.1;
    ck_assert_ptr_null(nb_sgd_new(p.list, s));
    ck_assert_error(NB_ERR_ARG, "nb_sgd_new", "nesterov", "dampening 0.1");

    nb_adam_options a = nb_adam_defaults();
    a.beta1 = 1;
    ck_assert_ptr_null(nb_adam_new(p.list, a));
    ck_assert_error(NB_ERR_ARG, "nb_adam_new", "beta1", "[0, 1)", "got 1");
    a = nb_adamw_defaults();
    a.beta2 = -0.1;
    ck_assert_ptr_null(nb_adamw_new(p.list, a));
    ck_assert_error(NB_ERR_ARG, "nb_adamw_new", "beta2", "-0.1");
    a = nb_adam_defaults();
    a.eps = -1e-8;
    ck_assert_ptr_null(nb_adam_new(p.list, a));
    ck_assert_error(NB_ERR_ARG, "nb_adam_new", "eps", "-1e-08");
    a = nb_adamw_defaults();
    a.weight_decay = INFINITY;
    ck_assert_ptr_null(nb_adamw_new(p.list, a));
    ck_assert_error(NB_ERR_ARG, "nb_adamw_new", "weight_decay", "inf");

    nb_rmsprop_options r = nb_rmsprop_defaults();
    r.alpha = -0.5;
    ck_assert_ptr_null(nb_rmsprop_new(p.list, r));
    ck_assert_error(NB_ERR_ARG, "nb_rmsprop_new", "alpha", "-0.5");
    r = nb_rmsprop_defaults();
    r.momentum = -1;
    ck_assert_ptr_null(nb_rmsprop_new(p.list, r));
    ck_assert_error(NB_ERR_ARG, "nb_rmsprop_new", "momentum", "-1");

    nb_adagrad_options g = nb_adagrad_defaults();
    g.lr_decay = -1;
    ck_assert_ptr_null(nb_adagrad_new(p.list, g));
    ck_assert_error(NB_ERR_ARG, "nb_adagrad_new", "lr_decay", "-1");
    g = nb_adagrad_defaults();
    g.initial_accumulator_value = -0.25;
    ck_assert_ptr_null(nb_adagrad_new(p.list, g));
    ck_assert_error(NB_ERR_ARG, "nb_adagrad_new", "initial_accumulator_value", "-0.25");

    /* lists: empty, buffers only, the same tensor twice, a freed tensor */
    nb_param_list *list = nb_param_list_new();
    ck_assert_ptr_null(nb_adam_new(list, nb_adam_defaults()));
    ck_assert_error(NB_ERR_ARG, "nb_adam_new", "no f32 or f64 parameters", "0 entries");
    nb_tensor *counts = T_I64(NB_SHAPE(2), 1, 2);
    ck_assert_ok(nb_param_list_add(list, "buf", p.w, true));
    ck_assert_ok(nb_param_list_add(list, "counts", counts, false));
    ck_assert_ptr_null(nb_rmsprop_new(list, nb_rmsprop_defaults()));
    ck_assert_error(NB_ERR_ARG, "nb_rmsprop_new", "no f32 or f64 parameters", "2 entries");
    nb_param_list_free(list);

    list = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(list, "a", p.w, false));
    ck_assert_ok(nb_param_list_add(list, "b", p.w, false));
    ck_assert_ptr_null(nb_sgd_new(list, nb_sgd_defaults()));
    ck_assert_error(NB_ERR_ARG, "nb_sgd_new", "\"b\" is the same tensor as \"a\"");
    nb_param_list_free(list);

    list = nb_param_list_new();
    nb_tensor *gone = nb_zeros(NB_SHAPE(2), NB_F64);
    ck_assert_ok(nb_param_list_add(list, "gone", gone, false));
    nb_free(gone);
    ck_assert_ptr_null(nb_adagrad_new(list, nb_adagrad_defaults()));
    ck_assert_error(NB_ERR_FREED, "nb_adagrad_new", "\"gone\"", "was freed");
    nb_param_list_free(list);
    nb_free(counts);
    problem_free(&p);
}
END_TEST

/* A freed parameter fails the step before anything is updated. */
START_TEST(step_with_freed_parameter_changes_nothing)
{
    problem p = problem_new(NB_F64);
    nb_tensor *extra = nb_zeros(NB_SHAPE(2), NB_F64);
    ck_assert_ok(nb_set_requires_grad(extra, true));
    ck_assert_ok(nb_param_list_add(p.list, "extra", extra, false));
    nb_optimizer *opt = nb_sgd_new(p.list, find_case("sgd_momentum")->sgd);
    backward(&p);
    nb_free(extra);
    ck_assert_int_eq(nb_optimizer_step(opt), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_optimizer_step", "\"extra\"", "was freed");
    assert_near(p.w, W0, 6, 0, "W");
    assert_near(p.b, B0, 2, 0, "b");
    ck_assert_int_eq(nb_optimizer_steps(opt), 0);
    nb_optimizer_free(opt);
    problem_free(&p);
}
END_TEST

/* State tensors are handed out by nb_optimizer_state: one freed, or a step count no run could have written (a
 * damaged checkpoint), stops the step before any parameter changes, and restore reports the bad count. */
START_TEST(step_with_bad_state_changes_nothing)
{
    problem p = problem_new(NB_F64);
    nb_optimizer *opt = nb_adam_new(p.list, nb_adam_defaults());
    nb_param_list *state = nb_param_list_new();
    nb_metadata meta = {0};
    ck_assert_ok(nb_optimizer_state(opt, "optim", state, &meta));
    backward(&p);
    ck_assert_ok(nb_fill(nb_param_list_find(state, "optim.fc.bias.step"), -1));
    ck_assert_int_eq(nb_optimizer_restore(opt, &meta, "optim"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_optimizer_restore", "\"step\" of parameter \"fc.bias\" holds -1");
    ck_assert_int_eq(nb_optimizer_step(opt), NB_ERR_STATE);
    ck_assert_error(NB_ERR_STATE, "nb_optimizer_step", "\"step\" of parameter \"fc.bias\" holds -1");
    assert_near(p.w, W0, 6, 0, "W");
    assert_near(p.b, B0, 2, 0, "b");
    ck_assert_ok(nb_fill(nb_param_list_find(state, "optim.fc.bias.step"), 0));

    nb_free(nb_param_list_find(state, "optim.fc.bias.exp_avg_sq"));
    ck_assert_int_eq(nb_optimizer_step(opt), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_optimizer_step", "\"exp_avg_sq\" of parameter \"fc.bias\" was freed");
    assert_near(p.w, W0, 6, 0, "W");
    assert_near(p.b, B0, 2, 0, "b");
    ck_assert_int_eq(nb_optimizer_steps(opt), 0);
    nb_param_list_free(state);
    nb_optimizer_free(opt);
    problem_free(&p);
}
END_TEST

START_TEST(state_and_restore_errors)
{
    problem p = problem_new(NB_F64);
    nb_optimizer *adam = nb_adam_new(p.list, nb_adam_defaults());
    nb_optimizer *sgd = nb_sgd_new(p.list, nb_sgd_defaults());
    nb_param_list *list = nb_param_list_new();
    nb_metadata meta = {0};
    ck_assert_int_eq(nb_optimizer_state(NULL, "optim", list, &meta), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_optimizer_state", "optimizer");
    ck_assert_int_eq(nb_optimizer_state(adam, "optim", NULL, &meta), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_optimizer_state", "out");
    char long_prefix[80];
    memset(long_prefix, 'p', sizeof long_prefix - 1);
    long_prefix[sizeof long_prefix - 1] = '\0';
    ck_assert_int_eq(nb_optimizer_state(adam, long_prefix, list, &meta), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_optimizer_state", "metadata key", "longer than 63");
    ck_assert_ok(nb_optimizer_state(adam, "optim", list, &meta));
    /* the same entries again: duplicate names */
    ck_assert_int_eq(nb_optimizer_state(adam, "optim", list, NULL), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "duplicate", "optim.fc.weight.step");

    ck_assert_int_eq(nb_optimizer_restore(sgd, &meta, "optim"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_optimizer_restore", "\"optim.optimizer\" is \"Adam\"", "expected \"SGD\"");
    ck_assert_int_eq(nb_optimizer_restore(adam, &meta, "other"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_optimizer_restore", "no entry \"other.optimizer\"");
    nb_metadata bad = meta;
    ck_assert_ok(nb_metadata_set(&bad, "optim.steps", "3x"));
    ck_assert_int_eq(nb_optimizer_restore(adam, &bad, "optim"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "\"optim.steps\" is \"3x\"", "not an integer");
    bad = meta;
    ck_assert_ok(nb_metadata_set(&bad, "optim.lr", "fast"));
    ck_assert_int_eq(nb_optimizer_restore(adam, &bad, "optim"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "\"optim.lr\" is \"fast\"", "not a number");
    bad = meta;
    ck_assert_ok(nb_metadata_set(&bad, "optim.lr", "-inf"));
    ck_assert_int_eq(nb_optimizer_restore(adam, &bad, "optim"), NB_ERR_FORMAT);
    ck_assert_error(NB_ERR_FORMAT, "nb_optimizer_restore", "lr -inf", "a finite lr");
    ck_assert(nb_optimizer_get_lr(adam) == 1e-3); /* nothing applied */
    ck_assert_int_eq(nb_optimizer_restore(adam, NULL, "optim"), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_optimizer_restore", "metadata");

    nb_param_list_free(list);
    nb_optimizer_free(adam);
    nb_optimizer_free(sgd);
    problem_free(&p);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * maximize (gradient ascent): the gradient is negated before anything else, as in PyTorch 1.13
 * ---------------------------------------------------------------------------------------------- */
/* Parameters after 5 steps of maximizing the fixed problem's loss, from PyTorch 1.13 (Debian's /usr/bin/python3,
 * float64): the problem and run() of tests/reference/optim_reference.py with maximize=True given to the torch
 * optimizer, e.g. run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1,
 * maximize=True)); Adam / AdamW take betas=(beta1, beta2). Each also differs from the same run with
 * maximize=False. */
static const ref_case maximize_cases[] = {
    {"sgd_maximize_decay", K_SGD,
     .sgd = {.lr = 0.05, .momentum = 0.0, .dampening = 0.0, .weight_decay = 0.1, .nesterov = false, .maximize = true},
     .w = {0.1940785860196394, -0.9856361070782118, 1.2017628315608233,
           -0.32608073453613, 0.8463824865941576, -0.509374348689447},
     .b = {0.027869944417022948, -0.2788965947844222}},
    {"sgd_maximize_dampening_decay", K_SGD,
     .sgd = {.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.1, .nesterov = false, .maximize = true},
     .w = {-0.1170832486495443, -1.6812777812391662, 1.6102912441974084,
           -0.45694983157180935, 1.299495149403817, -1.1334394396976093},
     .b = {-0.04046920775412452, -0.46396590528905063}},
    {"sgd_maximize_nesterov_decay", K_SGD,
     .sgd = {.lr = 0.05, .momentum = 0.8, .dampening = 0.0, .weight_decay = 0.05, .nesterov = true, .maximize = true},
     .w = {-0.573779203074988, -2.802310677374539, 2.2915026119646384,
           -0.6380548701131903, 2.034418262879916, -2.0533377264219754},
     .b = {-0.19996246273520293, -0.7187216759550262}},
    {"adam_maximize", K_ADAM,
     .adam = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-08, .weight_decay = 0.0, .amsgrad = false,
              .maximize = true},
     .w = {-0.0006839078505688212, -0.8018701950659016, 1.3022315128312663,
           -0.6970918117098133, 0.902236485279372, -0.4019366949493042},
     .b = {-0.3850894430994981, -0.60041286736434}},
    {"adam_maximize_amsgrad_decay", K_ADAM,
     .adam = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.9, .eps = 1e-08, .weight_decay = 0.2, .amsgrad = true,
              .maximize = true},
     .w = {0.005278417265866378, -0.7960239946871432, 1.2981790820101435,
           -0.687448070559399, 0.898244435243175, -0.3964986546939096},
     .b = {-0.3774880871857336, -0.5934598129219867}},
    {"adamw_maximize_amsgrad", K_ADAMW,
     .adam = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.9, .eps = 1e-08, .weight_decay = 0.3, .amsgrad = true,
              .maximize = true},
     .w = {-0.03411956371883701, -0.7251266542902657, 1.157055079555162,
           -0.630928212238995, 0.8128166470609915, -0.38160135626340275},
     .b = {-0.35626745854297026, -0.5498584424315324}},
    {"rmsprop_maximize_momentum_decay", K_RMSPROP,
     .rmsprop = {.lr = 0.01, .alpha = 0.99, .eps = 1e-08, .weight_decay = 0.1, .momentum = 0.9, .centered = false,
                 .maximize = true},
     .w = {-0.575500585649149, -1.353556080188404, 1.8185553163136106,
           -1.3218684112253984, 1.419746881041854, -0.9489876865030271},
     .b = {-1.0756123564965197, -1.1831672332548275}},
    {"rmsprop_maximize_all", K_RMSPROP,
     .rmsprop = {.lr = 0.02, .alpha = 0.9, .eps = 0.0001, .weight_decay = 0.1, .momentum = 0.5, .centered = true,
                 .maximize = true},
     .w = {0.05229105453099333, -0.7399007596911966, 1.227925013429703,
           -0.6650162334280094, 0.828352134606146, -0.338288512739561},
     .b = {-0.38618638389058135, -0.5504222051087548}},
    {"adagrad_maximize_all", K_ADAGRAD,
     .adagrad = {.lr = 0.2, .lr_decay = 0.1, .weight_decay = 0.05, .initial_accumulator_value = 0.5, .eps = 1e-06,
                 .maximize = true},
     .w = {-0.07855645438638682, -0.9171166651187648, 1.3824182113313714,
           -0.6926647123380534, 0.9864023318591446, -0.5123833267799149},
     .b = {-0.2546447897806351, -0.6232233857449038}},
};
#define N_MAXIMIZE ((int)(sizeof maximize_cases / sizeof *maximize_cases))

/* Every maximize case of the given kinds (the contiguous parameters take the fused kernels where there are
 * some). */
static void maximize_matches_pytorch(int kind, int other_kind)
{
    int n = 0;
    for (int i = 0; i < N_MAXIMIZE; i++) {
        const ref_case *c = &maximize_cases[i];
        if (c->kind != kind && c->kind != other_kind) continue;
        problem p = problem_new(NB_F64);
        nb_optimizer *opt = make_optimizer(c, p.list);
        train(opt, &p, 5);
        char what[64];
        snprintf(what, sizeof what, "%s W", c->name);
        assert_near(p.w, c->w, 6, 1e-10, what);
        snprintf(what, sizeof what, "%s b", c->name);
        assert_near(p.b, c->b, 2, 1e-10, what);
        nb_optimizer_free(opt);
        problem_free(&p);
        n++;
    }
    ck_assert_int_gt(n, 0);
}

START_TEST(sgd_maximize_matches_pytorch) { maximize_matches_pytorch(K_SGD, K_SGD); }
END_TEST
START_TEST(adam_maximize_matches_pytorch) { maximize_matches_pytorch(K_ADAM, K_ADAMW); }
END_TEST
START_TEST(rmsprop_maximize_matches_pytorch) { maximize_matches_pytorch(K_RMSPROP, K_RMSPROP); }
END_TEST
START_TEST(adagrad_maximize_matches_pytorch) { maximize_matches_pytorch(K_ADAGRAD, K_ADAGRAD); }
END_TEST

/* The same case without maximize. */
static ref_case minimizing(const ref_case *c)
{
    ref_case m = *c;
    m.sgd.maximize = m.adam.maximize = m.rmsprop.maximize = m.adagrad.maximize = false;
    return m;
}

/* Maximizing L is minimizing -L to the bit: the gradient of -L is exactly -grad L, and the optimizer negates
 * the gradient before anything else (weight decay included). Every case, SGD and Adam among them, in f64. */
START_TEST(maximize_equals_minimizing_negated_loss)
{
    for (int i = 0; i < N_MAXIMIZE; i++) {
        const ref_case *c = &maximize_cases[i];
        problem a = problem_new(NB_F64);
        nb_optimizer *oa = make_optimizer(c, a.list);
        train(oa, &a, 5);

        ref_case m = minimizing(c);
        problem b = problem_new(NB_F64);
        nb_optimizer *ob = make_optimizer(&m, b.list);
        for (int s = 0; s < 5; s++) {
            nb_optimizer_zero_grad(ob);
            nb_scope_begin();
            nb_tensor *pred = nb_add(nb_matmul(b.x, nb_transpose(b.w, 0, 1)), b.b);
            nb_tensor *loss = nb_mean(nb_square(nb_sub(pred, b.y)), 0, NULL, false);
            ck_assert_ok(nb_backward(nb_neg(loss)));
            nb_scope_end();
            ck_assert_ok(nb_optimizer_step(ob));
        }
        char what[64];
        snprintf(what, sizeof what, "%s W", c->name);
        assert_same_bits(a.w, b.w, what);
        snprintf(what, sizeof what, "%s b", c->name);
        assert_same_bits(a.b, b.b, what);

        /* and maximizing is not minimizing */
        problem d = problem_new(NB_F64);
        nb_optimizer *od = make_optimizer(&m, d.list);
        train(od, &d, 5);
        ck_assert_msg(nb_get_flat(d.w, 0) != nb_get_flat(a.w, 0), "%s: maximize changed nothing", c->name);

        nb_optimizer_free(oa);
        nb_optimizer_free(ob);
        nb_optimizer_free(od);
        problem_free(&a);
        problem_free(&b);
        problem_free(&d);
    }
}
END_TEST

/* The fused kernels against the op path with maximize, as tests/test_fused.c checks the other options: a
 * parameter of stride 2 (a view of a wider buffer) takes the op path, a contiguous copy the fused kernel; with a
 * loss whose gradient changes with w, 5 steps give the same bits. 200 elements: whole kernel blocks and a partial
 * one; f32 and f64. (Adagrad has no fused kernel: both runs take the op path.) */
START_TEST(maximize_fused_matches_op_path)
{
    enum { N = 200 };
    for (int dt = 0; dt < 2; dt++)
        for (int i = 0; i < N_MAXIMIZE; i++) {
            const ref_case *c = &maximize_cases[i];
            nb_dtype dtype = dt ? NB_F64 : NB_F32;
            nb_generator gen;
            nb_generator_seed(&gen, 20 + (uint64_t)i);
            nb_tensor *wide = nb_randn(NB_SHAPE(2 * N), 0, 1, dtype, &gen);
            nb_tensor *every_other = nb_slice(wide, 0, 0, 2 * N, 2);
            nb_tensor *strided = nb_detach(every_other); /* a leaf of stride 2 */
            nb_free(every_other);
            nb_tensor *fused = nb_clone(strided);
            nb_tensor *target = nb_randn(NB_SHAPE(N), 0, 1, dtype, &gen);
            ck_assert_ptr_null(nb_data(strided)); /* really not contiguous */
            nb_clear_error();
            ck_assert_ptr_nonnull(nb_data(fused));
            nb_tensor *w[2] = {fused, strided};
            nb_param_list *list[2];
            nb_optimizer *opt[2];
            for (int k = 0; k < 2; k++) {
                ck_assert_ok(nb_set_requires_grad(w[k], true));
                list[k] = nb_param_list_new();
                ck_assert_ok(nb_param_list_add(list[k], "w", w[k], false));
                opt[k] = make_optimizer(c, list[k]);
            }
            for (int s = 0; s < 5; s++)
                for (int k = 0; k < 2; k++) { /* loss sum((w - target)^2 w) */
                    nb_scope_begin();
                    nb_optimizer_zero_grad(opt[k]);
                    ck_assert_ok(nb_backward(nb_sum(nb_mul(nb_square(nb_sub(w[k], target)), w[k]), 0, NULL, false)));
                    ck_assert_ok(nb_optimizer_step(opt[k]));
                    nb_scope_end();
                }
            char what[64];
            snprintf(what, sizeof what, "%s %s", c->name, dt ? "f64" : "f32");
            assert_same_bits(fused, strided, what);
            for (int k = 0; k < 2; k++) {
                nb_optimizer_free(opt[k]);
                nb_param_list_free(list[k]);
            }
            nb_free(fused);
            nb_free(strided);
            nb_free(wide);
            nb_free(target);
        }
}
END_TEST

/* Parameter groups: W in group 0, b in group 1 added with other options, 5 steps, against PyTorch 1.13 with the
 * same two groups. Produced by (float64; both groups passed to the constructor, which PyTorch 1.13 needs for
 * Adagrad: a group added later gets no "sum" state there, a KeyError at step):
 *   opt = cls([dict(params=[w], **g0), dict(params=[b], **g1)], lr=g0["lr"]); 5 x (zero_grad,
 *   mean((x @ w.T + b - y)^2).backward(), step), with the problem of tests/reference/optim_reference.py and g0 /
 *   g1 the table's options (those not listed: PyTorch's defaults). PyTorch 1.13's Adagrad fills every group's sum
 *   with the constructor's initial_accumulator_value (passed as 0.5), so both groups here start from 0.5. */
/* The last error message contains frag. */
#define assert_error_has(frag)                                                                                        \
    ck_assert_msg(strstr(nb_last_error(), (frag)) != NULL, "error \"%s\" lacks \"%s\"", nb_last_error(), (frag))

typedef struct group_case {
    const char *name;
    int kind;
    nb_sgd_options sgd[2];
    nb_adam_options adam[2];
    nb_rmsprop_options rmsprop[2];
    nb_adagrad_options adagrad[2];
    double w[6], b[2];
} group_case;

static const group_case group_cases[] = {
    {"sgd", K_SGD,
     .sgd = {{.lr = 0.05, .momentum = 0.9, .nesterov = true, .weight_decay = 0.1},
             {.lr = 0.2, .momentum = 0.5, .dampening = 0.3}},
     .w = {0.8907929649940878, 0.6726079029058463, 0.14795685929332122,
           0.01592624029250346, -0.2910988897615098, 0.9847883282929235},
     .b = {0.09841647894652027, 0.3010928699046061}},
    {"sgd_plain_head", K_SGD, .sgd = {{.lr = 0.01, .momentum = 0.8, .nesterov = true}, {.lr = 0.1}},
     .w = {0.6139023270539529, -0.029511427581265303, 0.6304444443107333,
           -0.1488133226226213, 0.21591935705011953, 0.3417958776097569},
     .b = {0.14474093220657488, 0.1294930647894779}},
    {"adam", K_ADAM,
     .adam = {{.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1},
              {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.9, .eps = 1e-6, .amsgrad = true}},
     .w = {0.5495503336260493, -0.2501613669033577, 0.7499675903920576,
           -0.1518792694990888, 0.3499334902628205, 0.1497452682233697},
     .b = {0.22736598084665577, 0.3375101239348387}},
    {"adamw", K_ADAMW,
     .adam = {{.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.3},
              {.lr = 0.1, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-8}},
     .w = {0.5418028189685116, -0.24601226979728735, 0.7383279408637484,
           -0.149394374012507, 0.344264910129863, 0.1479523765005378},
     .b = {0.29439317494471984, 0.36739212194329773}},
    {"rmsprop", K_RMSPROP,
     .rmsprop = {{.lr = 0.01, .alpha = 0.9, .eps = 1e-8, .momentum = 0.5, .centered = true},
                 {.lr = 0.05, .alpha = 0.99, .eps = 1e-8, .weight_decay = 0.1}},
     .w = {0.6840678399974374, -0.1078213126946224, 0.6054325241724121,
           -0.10945201311586468, 0.19807434094028695, 0.2845523509147045},
     .b = {0.15548700621440423, 0.39793488807427585}},
    {"adagrad", K_ADAGRAD,
     .adagrad = {{.lr = 0.1, .lr_decay = 0.1, .initial_accumulator_value = 0.5, .eps = 1e-10},
                 {.lr = 0.5, .initial_accumulator_value = 0.5, .weight_decay = 0.05, .eps = 1e-10}},
     .w = {0.7083658356243122, -0.05241526111675328, 0.559005138953316, -0.11083648559100402, 0.14838331859683218,
           0.33662491903312547},
     .b = {0.1476420338348582, 0.40398244302027575}},
};

/* The problem's W alone in one list and b alone in another (caller frees both lists). */
static void split_lists(const problem *p, nb_param_list **body, nb_param_list **head)
{
    *body = nb_param_list_new();
    *head = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(*body, "fc.weight", p->w, false));
    ck_assert_ok(nb_param_list_add(*head, "fc.bias", p->b, false));
}

static nb_optimizer *make_grouped(const group_case *c, const nb_param_list *body, const nb_param_list *head)
{
    nb_optimizer *opt = NULL;
    nb_status st = NB_ERR_ARG;
    switch (c->kind) {
    case K_SGD:
        opt = nb_sgd_new(body, c->sgd[0]);
        if (opt) st = nb_sgd_add_param_group(opt, head, c->sgd[1]);
        break;
    case K_ADAM:
    case K_ADAMW:
        opt = c->kind == K_ADAM ? nb_adam_new(body, c->adam[0]) : nb_adamw_new(body, c->adam[0]);
        if (opt) st = nb_adam_add_param_group(opt, head, c->adam[1]);
        break;
    case K_RMSPROP:
        opt = nb_rmsprop_new(body, c->rmsprop[0]);
        if (opt) st = nb_rmsprop_add_param_group(opt, head, c->rmsprop[1]);
        break;
    case K_ADAGRAD:
        opt = nb_adagrad_new(body, c->adagrad[0]);
        if (opt) st = nb_adagrad_add_param_group(opt, head, c->adagrad[1]);
        break;
    }
    ck_assert_msg(opt != NULL && st == NB_OK, "%s: %s", c->name, nb_last_error());
    ck_assert_int_eq(nb_optimizer_num_param_groups(opt), 2);
    return opt;
}

START_TEST(groups_match_pytorch)
{
    const group_case *c = &group_cases[_i];
    problem p = problem_new(NB_F64);
    nb_param_list *body, *head;
    split_lists(&p, &body, &head);
    nb_optimizer *opt = make_grouped(c, body, head);
    train(opt, &p, 5);
    char what[64];
    snprintf(what, sizeof what, "%s W", c->name);
    assert_near(p.w, c->w, 6, 1e-12, what);
    snprintf(what, sizeof what, "%s b", c->name);
    assert_near(p.b, c->b, 2, 1e-12, what);
    nb_optimizer_free(opt);
    nb_param_list_free(body);
    nb_param_list_free(head);
    problem_free(&p);
}
END_TEST

/* f32, through the fused kernels: Adam(lr 0.01, weight_decay 0.1) on W, (lr 0.1, amsgrad) on b, PyTorch in
 * float32 (the same script with dtype=torch.float32). */
START_TEST(groups_f32_match_pytorch)
{
    static const double w[6] = {0.5494568943977356, -0.2501814663410187, 0.7499446272850037, -0.15198329091072083,
                                0.3499293625354767, 0.14973776042461395};
    static const double b[2] = {0.31305932998657227, 0.3773428201675415};
    problem p = problem_new(NB_F32);
    nb_param_list *body, *head;
    split_lists(&p, &body, &head);
    nb_adam_options o0 = nb_adam_defaults(), o1 = nb_adam_defaults();
    o0.lr = 0.01;
    o0.weight_decay = 0.1;
    o1.lr = 0.1;
    o1.amsgrad = true;
    nb_optimizer *opt = nb_adam_new(body, o0);
    ck_assert_ok(nb_adam_add_param_group(opt, head, o1));
    train(opt, &p, 5);
    assert_near(p.w, w, 6, 1e-6, "W");
    assert_near(p.b, b, 2, 1e-6, "b");
    nb_optimizer_free(opt);
    nb_param_list_free(body);
    nb_param_list_free(head);
    problem_free(&p);
}
END_TEST

/* Group lrs: set_lr sets every group, set_group_lr one; bad indices and lrs are refused and change nothing. */
START_TEST(group_lr_accessors)
{
    problem p = problem_new(NB_F64);
    nb_param_list *body, *head;
    split_lists(&p, &body, &head);
    nb_optimizer *opt = make_grouped(&group_cases[0], body, head);
    ck_assert(nb_optimizer_get_lr(opt) == 0.05);
    ck_assert(nb_optimizer_get_group_lr(opt, 0) == 0.05);
    ck_assert(nb_optimizer_get_group_lr(opt, 1) == 0.2);
    ck_assert(nb_optimizer_get_group_momentum(opt, 1) == 0.5);
    ck_assert(isnan(nb_optimizer_get_group_lr(opt, 2)));
    assert_error_has("nb_optimizer_get_group_lr: group 2 out of range");
    ck_assert(isnan(nb_optimizer_get_group_lr(opt, -1)));
    ck_assert_int_eq(nb_optimizer_set_group_lr(opt, 2, 0.1), NB_ERR_ARG);
    ck_assert_int_eq(nb_optimizer_set_group_lr(opt, 1, -0.1), NB_ERR_ARG);
    assert_error_has("lr must be a finite number >= 0, got -0.1");
    ck_assert(nb_optimizer_get_group_lr(opt, 1) == 0.2);
    ck_assert_ok(nb_optimizer_set_group_lr(opt, 1, 0.3));
    ck_assert(nb_optimizer_get_group_lr(opt, 1) == 0.3 && nb_optimizer_get_lr(opt) == 0.05);
    nb_optimizer_set_lr(opt, 0.01);
    ck_assert(nb_optimizer_get_group_lr(opt, 0) == 0.01 && nb_optimizer_get_group_lr(opt, 1) == 0.01);
    ck_assert_int_eq(nb_optimizer_num_param_groups(NULL), -1);
    nb_optimizer_free(opt);
    nb_param_list_free(body);
    nb_param_list_free(head);
    problem_free(&p);
}
END_TEST

/* Every refusal of add_param_group leaves the optimizer as it was: one group, which still trains as before. */
START_TEST(add_param_group_refusals)
{
    problem p = problem_new(NB_F64);
    nb_param_list *body, *head;
    split_lists(&p, &body, &head);
    nb_sgd_options o = nb_sgd_defaults();
    o.lr = 0.05;
    nb_optimizer *opt = nb_sgd_new(body, o);
    nb_param_list *empty = nb_param_list_new(), *renamed = nb_param_list_new(), *clash = nb_param_list_new();
    ck_assert_ok(nb_param_list_add(renamed, "other.weight", p.w, false));
    nb_tensor *other = nb_zeros(NB_SHAPE(2), NB_F64);
    ck_assert_ok(nb_param_list_add(clash, "fc.weight", other, false));

    ck_assert_int_eq(nb_adam_add_param_group(opt, head, nb_adam_defaults()), NB_ERR_ARG);
    assert_error_has("nb_adam_add_param_group: the optimizer is SGD, not Adam or AdamW");
    ck_assert_int_eq(nb_rmsprop_add_param_group(opt, head, nb_rmsprop_defaults()), NB_ERR_ARG);
    ck_assert_int_eq(nb_adagrad_add_param_group(opt, head, nb_adagrad_defaults()), NB_ERR_ARG);
    nb_sgd_options bad = o;
    bad.nesterov = true;
    ck_assert_int_eq(nb_sgd_add_param_group(opt, head, bad), NB_ERR_ARG);
    assert_error_has("nb_sgd_add_param_group: nesterov needs momentum > 0");
    bad = o;
    bad.lr = -1;
    ck_assert_int_eq(nb_sgd_add_param_group(opt, head, bad), NB_ERR_ARG);
    assert_error_has("lr must be a finite number >= 0, got -1");
    ck_assert_int_eq(nb_sgd_add_param_group(opt, NULL, o), NB_ERR_NULL);
    ck_assert_int_eq(nb_sgd_add_param_group(NULL, head, o), NB_ERR_NULL);
    ck_assert_int_eq(nb_sgd_add_param_group(opt, empty, o), NB_ERR_ARG);
    assert_error_has("no f32 or f64 parameters");
    ck_assert_int_eq(nb_sgd_add_param_group(opt, body, o), NB_ERR_ARG);
    assert_error_has("parameter \"fc.weight\" is already in parameter group 0");
    ck_assert_int_eq(nb_sgd_add_param_group(opt, renamed, o), NB_ERR_ARG);
    assert_error_has("parameter \"other.weight\" is already in parameter group 0 (as "
                                            "\"fc.weight\")");
    ck_assert_int_eq(nb_sgd_add_param_group(opt, clash, o), NB_ERR_ARG);
    assert_error_has("parameter group 0 already has a parameter named \"fc.weight\"");
    ck_assert_int_eq(nb_optimizer_num_param_groups(opt), 1);
    ck_assert_ok(nb_sgd_add_param_group(opt, head, o));
    ck_assert_int_eq(nb_sgd_add_param_group(opt, head, o), NB_ERR_ARG); /* now held by group 1 */
    assert_error_has("already in parameter group 1");
    ck_assert_int_eq(nb_optimizer_num_param_groups(opt), 2);
    /* The two groups with equal options train exactly as one group (tests/reference: case "sgd"). */
    train(opt, &p, 5);
    const ref_case *c = find_case("sgd");
    assert_near(p.w, c->w, 6, 1e-10, "W");
    assert_near(p.b, c->b, 2, 1e-10, "b");

    nb_free(other);
    nb_param_list_free(empty);
    nb_param_list_free(renamed);
    nb_param_list_free(clash);
    nb_optimizer_free(opt);
    nb_param_list_free(body);
    nb_param_list_free(head);
    problem_free(&p);
}
END_TEST

/* Two groups, their lrs changed after step 2: a checkpoint after step 3 restored into a fresh two-group optimizer
 * gives, 2 steps later, the bits of 5 uninterrupted steps. State names are those of one group. Then the group
 * structure is checked: one group, a group of another size, and a one-group checkpoint are refused. */
START_TEST(groups_checkpoint_resumes_bit_exactly)
{
    const group_case *c = &group_cases[2]; /* Adam, amsgrad in group 1: the two groups differ in state */
    problem a = problem_new(NB_F64);
    nb_param_list *ab, *ah;
    split_lists(&a, &ab, &ah);
    nb_optimizer *oa = make_grouped(c, ab, ah);
    train(oa, &a, 2);
    ck_assert_ok(nb_optimizer_set_group_lr(oa, 0, 0.005));
    ck_assert_ok(nb_optimizer_set_group_lr(oa, 1, 0.07));
    train(oa, &a, 3);

    problem b = problem_new(NB_F64);
    nb_param_list *bb, *bh;
    split_lists(&b, &bb, &bh);
    nb_optimizer *ob = make_grouped(c, bb, bh);
    train(ob, &b, 2);
    ck_assert_ok(nb_optimizer_set_group_lr(ob, 0, 0.005));
    ck_assert_ok(nb_optimizer_set_group_lr(ob, 1, 0.07));
    train(ob, &b, 1);
    nb_param_list *saved = nb_param_list_new();
    nb_metadata meta = {0};
    ck_assert_ok(nb_optimizer_state(ob, "optim", saved, &meta));
    ck_assert_int_eq(saved->count, 3 + 4);
    ck_assert_ptr_nonnull(nb_param_list_find(saved, "optim.fc.bias.max_exp_avg_sq"));
    ck_assert_ptr_null(nb_param_list_find(saved, "optim.fc.weight.max_exp_avg_sq"));
    ck_assert_str_eq(nb_metadata_get(&meta, "optim.param_groups"), "2");
    /* each group's size, lr and initial lr (none: no schedule drove it) */
    ck_assert_str_eq(nb_metadata_get(&meta, "optim.groups.0"), "1 0.0050000000000000001 nan 1 0.070000000000000007 nan");
    ck_assert_ptr_nonnull(nb_metadata_get(&meta, "optim.group_layout"));
    nb_param_list *checkpoint = nb_param_list_new();
    nb_no_grad_begin();
    for (int i = 0; i < saved->count; i++)
        ck_assert_ok(nb_param_list_add(checkpoint, saved->items[i].name, nb_clone(saved->items[i].tensor), true));
    ck_assert_ok(nb_param_list_add(checkpoint, "fc.weight", nb_clone(b.w), false));
    ck_assert_ok(nb_param_list_add(checkpoint, "fc.bias", nb_clone(b.b), false));
    nb_no_grad_end();
    nb_optimizer_free(ob);
    nb_param_list_free(saved);
    nb_param_list_free(bb);
    nb_param_list_free(bh);
    problem_free(&b);

    problem r = problem_new(NB_F64);
    nb_param_list *rb, *rh;
    split_lists(&r, &rb, &rh);
    /* Wrong structures first: nothing they refuse may change the optimizer that then resumes. */
    nb_optimizer *one = nb_adam_new(r.list, c->adam[0]);
    ck_assert_int_eq(nb_optimizer_restore(one, &meta, "optim"), NB_ERR_FORMAT);
    assert_error_has("the checkpoint has 2 parameter groups, the optimizer 1");
    nb_optimizer_free(one);
    ck_assert_ok(nb_copy_(r.w, nb_param_list_find(checkpoint, "fc.weight")));
    ck_assert_ok(nb_copy_(r.b, nb_param_list_find(checkpoint, "fc.bias")));
    nb_optimizer *orr = make_grouped(c, rb, rh);
    nb_param_list *fresh = nb_param_list_new();
    ck_assert_ok(nb_optimizer_state(orr, "optim", fresh, NULL));
    for (int i = 0; i < fresh->count; i++)
        ck_assert_ok(nb_copy_(fresh->items[i].tensor, nb_param_list_find(checkpoint, fresh->items[i].name)));
    nb_metadata other = meta;
    ck_assert_ok(nb_metadata_set(&other, "optim.groups.0", "1 0.005 nan 2 0.07 nan"));
    ck_assert_int_eq(nb_optimizer_restore(orr, &other, "optim"), NB_ERR_FORMAT);
    assert_error_has("parameter group 1 has 2 parameters in the checkpoint, 1 in the");
    ck_assert_ok(nb_metadata_set(&other, "optim.groups.0", "1 0.005 nan 1 0.07"));
    ck_assert_int_eq(nb_optimizer_restore(orr, &other, "optim"), NB_ERR_FORMAT);
    assert_error_has("\"optim.groups.0\" is \"1 0.005 nan 1 0.07\"; expected 6 numbers (3 for each of parameter "
                     "groups 0 to 1)");
    ck_assert_ok(nb_metadata_set(&other, "optim.groups.0", "1 0.005 nan 1 0.07 nan 1"));
    ck_assert_int_eq(nb_optimizer_restore(orr, &other, "optim"), NB_ERR_FORMAT);
    assert_error_has("expected only 6 numbers");
    ck_assert_ok(nb_metadata_set(&other, "optim.groups.0", "1 0.005 nan 1 inf nan"));
    ck_assert_int_eq(nb_optimizer_restore(orr, &other, "optim"), NB_ERR_FORMAT);
    assert_error_has("lr inf for parameter group 1");
    ck_assert_ok(nb_metadata_set(&other, "optim.groups.0", "1 0.005 -0.5 1 0.07 nan"));
    ck_assert_int_eq(nb_optimizer_restore(orr, &other, "optim"), NB_ERR_FORMAT);
    assert_error_has("initial_lr -0.5 for parameter group 0");
    nb_metadata single = {0};
    ck_assert_ok(nb_metadata_set(&single, "optim.optimizer", "Adam"));
    ck_assert_ok(nb_metadata_set(&single, "optim.steps", "3"));
    ck_assert_ok(nb_metadata_set(&single, "optim.lr", "0.5"));
    ck_assert_int_eq(nb_optimizer_restore(orr, &single, "optim"), NB_ERR_FORMAT);
    assert_error_has("the checkpoint has 1 parameter group, the optimizer 2");
    ck_assert(nb_optimizer_get_group_lr(orr, 0) == 0.01 && nb_optimizer_steps(orr) == 0);
    /* The first form with groups, one entry per value and no layout, still restores. */
    nb_metadata first = {0};
    ck_assert_ok(nb_metadata_set(&first, "optim.optimizer", "Adam"));
    ck_assert_ok(nb_metadata_set(&first, "optim.steps", "3"));
    ck_assert_ok(nb_metadata_set(&first, "optim.lr", "0.0050000000000000001"));
    ck_assert_ok(nb_metadata_set(&first, "optim.param_groups", "2"));
    ck_assert_ok(nb_metadata_set(&first, "optim.group0.params", "1"));
    ck_assert_ok(nb_metadata_set(&first, "optim.group0.lr", "0.0050000000000000001"));
    ck_assert_ok(nb_metadata_set(&first, "optim.group1.params", "1"));
    ck_assert_ok(nb_metadata_set(&first, "optim.group1.lr", "0.5"));
    ck_assert_ok(nb_optimizer_restore(orr, &first, "optim"));
    ck_assert(nb_optimizer_get_group_lr(orr, 0) == 0.005 && nb_optimizer_get_group_lr(orr, 1) == 0.5);
    ck_assert_ok(nb_optimizer_restore(orr, &meta, "optim"));
    ck_assert(nb_optimizer_get_group_lr(orr, 0) == 0.005 && nb_optimizer_get_group_lr(orr, 1) == 0.07);
    train(orr, &r, 2);
    assert_same_bits(r.w, a.w, "W");
    assert_same_bits(r.b, a.b, "b");

    for (int i = 0; i < checkpoint->count; i++) nb_free(checkpoint->items[i].tensor);
    nb_param_list_free(checkpoint);
    nb_param_list_free(fresh);
    nb_optimizer_free(orr);
    nb_optimizer_free(oa);
    nb_param_list_free(rb);
    nb_param_list_free(rh);
    nb_param_list_free(ab);
    nb_param_list_free(ah);
    problem_free(&r);
    problem_free(&a);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Gradient clipping
 * ---------------------------------------------------------------------------------------------- */
static const double G1[6] = {0.5, -1.0, 2.0, 0.25, -0.75, 1.5}, G2[2] = {-3.0, 0.125};

typedef struct grads {
    nb_tensor *a, *c, *unused, *buf;
    nb_param_list *list; /* a, c, unused (no gradient), buf (a buffer holding a gradient) */
} grads;

/* a.grad = G1, c.grad = G2, buf.grad = (100, 100) set through backward of sum(a G1) + sum(c G2) + 100 sum(buf). */
static grads grads_new(void)
{
    grads g;
    g.a = nb_zeros(NB_SHAPE(2, 3), NB_F64);
    g.c = nb_zeros(NB_SHAPE(2), NB_F64);
    g.unused = nb_zeros(NB_SHAPE(3), NB_F64);
    g.buf = nb_zeros(NB_SHAPE(2), NB_F64);
    nb_set_requires_grad(g.a, true);
    nb_set_requires_grad(g.c, true);
    nb_set_requires_grad(g.unused, true);
    nb_set_requires_grad(g.buf, true);
    nb_scope_begin();
    nb_tensor *loss = nb_add(nb_sum(nb_mul(g.a, nb_from_array(G1, NB_SHAPE(2, 3), NB_F64)), 0, NULL, false),
                             nb_sum(nb_mul(g.c, nb_from_array(G2, NB_SHAPE(2), NB_F64)), 0, NULL, false));
    loss = nb_add(loss, nb_mul_scalar(nb_sum(g.buf, 0, NULL, false), 100));
    ck_assert_ok(nb_backward(loss));
    nb_scope_end();
    g.list = nb_param_list_new();
    nb_param_list_add(g.list, "a", g.a, false);
    nb_param_list_add(g.list, "c", g.c, false);
    nb_param_list_add(g.list, "unused", g.unused, false);
    nb_param_list_add(g.list, "buf", g.buf, true);
    return g;
}

static void grads_free(grads *g)
{
    nb_free(g->a);
    nb_free(g->c);
    nb_free(g->unused);
    nb_free(g->buf);
    nb_param_list_free(g->list);
}

/* torch.nn.utils.clip_grad_norm_([a, c], max_norm=1.5, norm_type) */
static const struct {
    double norm_type, total, a[6], c[2];
} clip_cases[] = {
    {2, 4.140123790419799,
     {0.1811539598360637, -0.3623079196721274, 0.7246158393442548, 0.09057697991803185, -0.27173093975409557,
      0.5434618795081911},
     {-1.0869237590163823, 0.04528848995901592}},
    {1, 9.125,
     {0.08219177181460036, -0.1643835436292007, 0.3287670872584014, 0.04109588590730018, -0.12328765772190053,
      0.24657531544380107},
     {-0.49315063088760214, 0.02054794295365009}},
    {INFINITY, 3.0,
     {0.24999991666669444, -0.4999998333333889, 0.9999996666667778, 0.12499995833334722, -0.37499987500004167,
      0.7499997500000833},
     {-1.4999995000001667, 0.06249997916667361}},
    {3, 3.418225460310843,
     {0.2194120280526403, -0.4388240561052806, 0.8776481122105612, 0.10970601402632014, -0.32911804207896045,
      0.6582360841579209},
     {-1.3164721683158418, 0.05485300701316007}},
};

START_TEST(clip_grad_norm_matches_pytorch)
{
    grads g = grads_new();
    double total = nb_clip_grad_norm(g.list, 1.5, clip_cases[_i].norm_type);
    ck_assert_close(total, clip_cases[_i].total, 1e-12);
    assert_near(nb_grad(g.a), clip_cases[_i].a, 6, 1e-12, "a.grad");
    assert_near(nb_grad(g.c), clip_cases[_i].c, 2, 1e-12, "c.grad");
    ck_assert_values(nb_grad(g.buf), 0, 100, 100); /* buffers are neither counted nor clipped */
    ck_assert_ptr_null(nb_grad(g.unused));
    grads_free(&g);
}
END_TEST

/* f32 gradients: the total norm is an f32 value, as PyTorch's (clip_grad_norm_ on float32 tensors). */
START_TEST(clip_grad_norm_f32)
{
    nb_tensor *a = nb_zeros(NB_SHAPE(2, 3), NB_F32), *c = nb_zeros(NB_SHAPE(2), NB_F32);
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(c, true);
    nb_scope_begin();
    nb_tensor *loss = nb_add(nb_sum(nb_mul(a, from_doubles(G1, NB_SHAPE(2, 3), NB_F32)), 0, NULL, false),
                             nb_sum(nb_mul(c, from_doubles(G2, NB_SHAPE(2), NB_F32)), 0, NULL, false));
    ck_assert_ok(nb_backward(loss));
    nb_scope_end();
    nb_param_list *list = nb_param_list_new();
    nb_param_list_add(list, "a", a, false);
    nb_param_list_add(list, "c", c, false);
    ck_assert(nb_clip_grad_norm(list, 1.5, 2) == 4.1401238441467285);
    ck_assert_values(nb_grad(a), 1e-7, 0.18115395307540894, -0.36230790615081787, 0.7246158123016357,
                     0.09057697653770447, -0.2717309296131134, 0.5434618592262268);
    ck_assert_values(nb_grad(c), 1e-7, -1.0869237184524536, 0.045288488268852234);
    nb_param_list_free(list);
    nb_free(a);
    nb_free(c);
}
END_TEST

START_TEST(clip_grad_norm_below_max_changes_nothing)
{
    grads g = grads_new();
    ck_assert_close(nb_clip_grad_norm(g.list, 10, 2), 4.140123790419799, 1e-12);
    assert_near(nb_grad(g.a), G1, 6, 0, "a.grad");
    assert_near(nb_grad(g.c), G2, 2, 0, "c.grad");
    /* a list without gradients has norm 0 */
    nb_param_list *none = nb_param_list_new();
    nb_param_list_add(none, "unused", g.unused, false);
    ck_assert(nb_clip_grad_norm(none, 1, 2) == 0);
    ck_assert(nb_clip_grad_norm(none, 1, INFINITY) == 0);
    nb_param_list_free(none);
    /* max_norm 0 zeroes every gradient */
    ck_assert_close(nb_clip_grad_norm(g.list, 0, 1), 9.125, 1e-12);
    ck_assert_values(nb_grad(g.a), 0, 0, 0, 0, 0, 0, 0);
    grads_free(&g);
}
END_TEST

/* error_if_nonfinite=True: a NaN or infinite total is an error and no gradient changes; a finite one clips as
 * nb_clip_grad_norm does. */
START_TEST(clip_grad_norm_finite_refuses_nan_and_inf)
{
    grads g = grads_new();
    ck_assert_close(nb_clip_grad_norm_finite(g.list, 1.5, 2), clip_cases[0].total, 1e-12);
    assert_near(nb_grad(g.a), clip_cases[0].a, 6, 1e-12, "a.grad");
    grads_free(&g);
    const double bad[2] = {NAN, INFINITY};
    const double norms[2] = {2, INFINITY};
    for (int k = 0; k < 2; k++)
        for (int n = 0; n < 2; n++) {
            g = grads_new();
            nb_set_flat(nb_grad(g.c), 1, bad[k]);
            ck_assert(isnan(nb_clip_grad_norm_finite(g.list, 1.5, norms[n])));
            ck_assert_error(NB_ERR_VALUE, "nb_clip_grad_norm_finite", n ? "max norm" : "2-norm",
                            k ? "is inf" : "is nan", "gradients unchanged");
            assert_near(nb_grad(g.a), G1, 6, 0, "a.grad");
            ck_assert(nb_get_flat(nb_grad(g.c), 0) == G2[0]);
            grads_free(&g);
        }
}
END_TEST

START_TEST(clip_grad_value_clamps)
{
    grads g = grads_new();
    ck_assert_ok(nb_clip_grad_value(g.list, 0.8));
    ck_assert_values(nb_grad(g.a), 0, 0.5, -0.8, 0.8, 0.25, -0.75, 0.8);
    ck_assert_values(nb_grad(g.c), 0, -0.8, 0.125);
    ck_assert_values(nb_grad(g.buf), 0, 100, 100);
    grads_free(&g);
}
END_TEST

START_TEST(clip_errors)
{
    grads g = grads_new();
    ck_assert(isnan(nb_clip_grad_norm(NULL, 1, 2)));
    ck_assert_error(NB_ERR_NULL, "nb_clip_grad_norm", "params");
    ck_assert(isnan(nb_clip_grad_norm(g.list, -1, 2)));
    ck_assert_error(NB_ERR_ARG, "nb_clip_grad_norm", "max_norm", "-1");
    ck_assert(isnan(nb_clip_grad_norm(g.list, 1, 0)));
    ck_assert_error(NB_ERR_ARG, "nb_clip_grad_norm", "norm_type", "got 0");
    ck_assert(isnan(nb_clip_grad_norm(g.list, 1, NAN)));
    ck_assert_error(NB_ERR_ARG, "nb_clip_grad_norm", "norm_type", "nan");
    ck_assert_int_eq(nb_clip_grad_value(NULL, 1), NB_ERR_NULL);
    ck_assert_error(NB_ERR_NULL, "nb_clip_grad_value", "params");
    ck_assert_int_eq(nb_clip_grad_value(g.list, -0.5), NB_ERR_ARG);
    ck_assert_error(NB_ERR_ARG, "nb_clip_grad_value", "clip", "-0.5");
    assert_near(nb_grad(g.a), G1, 6, 0, "a.grad"); /* nothing clipped by a failed call */
    nb_param_list *list = nb_param_list_new();
    nb_tensor *gone = nb_zeros(NB_SHAPE(1), NB_F64);
    nb_param_list_add(list, "gone", gone, false);
    nb_free(gone);
    ck_assert(isnan(nb_clip_grad_norm(list, 1, 2)));
    ck_assert_error(NB_ERR_FREED, "nb_clip_grad_norm", "\"gone\"");
    ck_assert_int_eq(nb_clip_grad_value(list, 1), NB_ERR_FREED);
    ck_assert_error(NB_ERR_FREED, "nb_clip_grad_value", "\"gone\"");
    nb_param_list_free(list);
    grads_free(&g);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, matches_pytorch, 0, N_CASES);
    tcase_add_test(tc, adam_f32_matches_pytorch);
    tcase_add_test(tc, frozen_gradless_and_buffers_are_skipped);
    tcase_add_test(tc, late_parameter_gets_its_own_step_count);
    tcase_add_test(tc, state_before_first_step);
    tcase_add_loop_test(tc, checkpoint_resumes_bit_exactly, 0, (int)(sizeof resumed / sizeof *resumed));
    tcase_add_test(tc, checkpoint_file_resumes_bit_exactly);
    tcase_add_test(tc, memory_stays_flat);
    tcase_add_test(tc, lr_and_step_count);
    tcase_add_test(tc, defaults_match_pytorch);
    tcase_add_test(tc, constructor_errors);
    tcase_add_test(tc, step_with_freed_parameter_changes_nothing);
    tcase_add_test(tc, step_with_bad_state_changes_nothing);
    tcase_add_test(tc, state_and_restore_errors);
    tcase_add_test(tc, sgd_maximize_matches_pytorch);
    tcase_add_test(tc, adam_maximize_matches_pytorch);
    tcase_add_test(tc, rmsprop_maximize_matches_pytorch);
    tcase_add_test(tc, adagrad_maximize_matches_pytorch);
    tcase_add_test(tc, maximize_equals_minimizing_negated_loss);
    tcase_add_test(tc, maximize_fused_matches_op_path);
    tcase_add_loop_test(tc, groups_match_pytorch, 0, (int)(sizeof group_cases / sizeof *group_cases));
    tcase_add_test(tc, groups_f32_match_pytorch);
    tcase_add_test(tc, group_lr_accessors);
    tcase_add_test(tc, add_param_group_refusals);
    tcase_add_test(tc, groups_checkpoint_resumes_bit_exactly);
    tcase_add_loop_test(tc, clip_grad_norm_matches_pytorch, 0, (int)(sizeof clip_cases / sizeof *clip_cases));
    tcase_add_test(tc, clip_grad_norm_f32);
    tcase_add_test(tc, clip_grad_norm_below_max_changes_nothing);
    tcase_add_test(tc, clip_grad_norm_finite_refuses_nan_and_inf);
    tcase_add_test(tc, clip_grad_value_clamps);
    tcase_add_test(tc, clip_errors);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
