/* nn/ and optim/ together: an MLP learns XOR, seeded runs are bit-identical, a training loop with a real
 * optimizer keeps flat memory, and fine-tuning (partial load, new head, frozen body) leaves the body untouched. */
#include "helpers.h"

#include <unistd.h>

static const float xor_x[8] = {0, 0, 0, 1, 1, 0, 1, 1};
static const float xor_y[4] = {0, 1, 1, 0};

static nb_module *xor_net(uint64_t seed, nb_generator *g)
{
    nb_generator_seed(g, seed);
    return nb_sequential_new(4, (nb_module *[]){nb_linear_new(2, 4, true, g), nb_tanh_layer_new(),
                                                nb_linear_new(4, 1, true, g), nb_sigmoid_layer_new()});
}

/* Trains a fresh XOR net for `steps` full-batch Adam steps; returns its parameter list (caller frees both). */
static nb_module *train_xor(uint64_t seed, int steps, double *final_loss)
{
    nb_generator g;
    nb_module *net = xor_net(seed, &g);
    nb_param_list *params = nb_module_parameters(net);
    nb_adam_options o = nb_adam_defaults();
    o.lr = 0.05;
    nb_optimizer *opt = nb_adam_new(params, o);
    ck_assert_msg(opt != NULL, "%s", nb_last_error());
    nb_tensor *x = nb_from_array(xor_x, NB_SHAPE(4, 2), NB_F32), *y = nb_from_array(xor_y, NB_SHAPE(4, 1), NB_F32);
    for (int i = 0; i < steps; i++) {
        nb_scope_begin();
        nb_optimizer_zero_grad(opt);
        nb_tensor *loss = nb_bce_loss(nb_forward(net, x), y, NULL, NB_REDUCTION_MEAN);
        ck_assert_ok(nb_backward(loss));
        ck_assert_ok(nb_optimizer_step(opt));
        *final_loss = nb_item(loss);
        nb_scope_end();
    }
    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_free(x);
    nb_free(y);
    return net;
}

START_TEST(mlp_learns_xor)
{
    double loss;
    nb_module *net = train_xor(3, 500, &loss);
    ck_assert_double_lt(loss, 0.05);
    nb_scope_begin();
    nb_tensor *p = nb_forward(net, nb_from_array(xor_x, NB_SHAPE(4, 2), NB_F32));
    ck_assert_tensor(p);
    for (int i = 0; i < 4; i++)
        ck_assert_msg((nb_get_flat(p, i) > 0.5) == (xor_y[i] > 0.5), "XOR output %d = %g", i, nb_get_flat(p, i));
    nb_scope_end();
    nb_module_free(net);
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, 0);
}
END_TEST

static bool same_parameters(nb_module *a, nb_module *b)
{
    nb_param_list *pa = nb_module_parameters(a), *pb = nb_module_parameters(b);
    bool same = pa->count == pb->count;
    for (int i = 0; same && i < pa->count; i++) {
        int64_t n = nb_numel(pa->items[i].tensor);
        same = n == nb_numel(pb->items[i].tensor) &&
               memcmp(nb_data(pa->items[i].tensor), nb_data(pb->items[i].tensor), (size_t)n * sizeof(float)) == 0;
    }
    nb_param_list_free(pa);
    nb_param_list_free(pb);
    return same;
}

START_TEST(seeded_training_is_bit_reproducible)
{
    double l1, l2, l3;
    nb_module *a = train_xor(11, 100, &l1), *b = train_xor(11, 100, &l2), *c = train_xor(12, 100, &l3);
    ck_assert_int_eq(same_parameters(a, b), 1);
    ck_assert_double_eq(l1, l2);
    ck_assert_int_eq(same_parameters(a, c), 0);
    nb_module_free(a);
    nb_module_free(b);
    nb_module_free(c);
}
END_TEST

START_TEST(training_with_an_optimizer_keeps_flat_memory)
{
    nb_generator g;
    nb_module *net = xor_net(5, &g);
    nb_param_list *params = nb_module_parameters(net);
    nb_optimizer *opt = nb_adam_new(params, nb_adam_defaults());
    nb_tensor *x = nb_from_array(xor_x, NB_SHAPE(4, 2), NB_F32), *y = nb_from_array(xor_y, NB_SHAPE(4, 1), NB_F32);
    nb_memory_stats warm = {0};
    for (int i = 0; i < 2000; i++) {
        if (i == 100) warm = nb_memory_stats_get();
        nb_scope_begin();
        nb_optimizer_zero_grad(opt);
        ck_assert_ok(nb_backward(nb_mse_loss(nb_forward(net, x), y, NB_REDUCTION_MEAN)));
        ck_assert_ok(nb_optimizer_step(opt));
        nb_scope_end();
    }
    nb_memory_stats end = nb_memory_stats_get();
    ck_assert_int_eq(end.live_tensors, warm.live_tensors);
    ck_assert_int_eq(end.live_bytes, warm.live_bytes);
    ck_assert_int_eq(end.system_allocs, warm.system_allocs);
    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_module_free(net);
    nb_free(x);
    nb_free(y);
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, 0);
}
END_TEST

/* A model written as a plain struct names its parameters like PyTorch through nb_module_collect_child. */
typedef struct net {
    nb_module *fc1, *fc2;
} net;

START_TEST(plain_struct_model_names)
{
    net n = {nb_linear_new(3, 4, true, NULL), nb_linear_new(4, 2, false, NULL)};
    nb_param_list *list = nb_param_list_new();
    ck_assert_ok(nb_module_collect_child(n.fc1, "", "fc1", list));
    ck_assert_ok(nb_module_collect_child(n.fc2, "model", "fc2", list));
    ck_assert_int_eq(list->count, 3);
    ck_assert_str_eq(list->items[0].name, "fc1.weight");
    ck_assert_str_eq(list->items[1].name, "fc1.bias");
    ck_assert_str_eq(list->items[2].name, "model.fc2.weight");
    nb_param_list_free(list);
    nb_module_free(n.fc1);
    nb_module_free(n.fc2);
}
END_TEST

/* Data for two tasks on the same 4-d inputs: task A has 3 classes, task B has 2. */
static void task_batch(nb_generator *g, int classes, nb_tensor **x, nb_tensor **y)
{
    *x = nb_randn(NB_SHAPE(32, 4), 0, 1, NB_F32, g);
    int64_t labels[32];
    for (int i = 0; i < 32; i++) {
        double s = nb_get_flat(*x, i * 4) + (classes == 3 ? nb_get_flat(*x, i * 4 + 1) : -nb_get_flat(*x, i * 4 + 2));
        labels[i] = classes == 3 ? (s < -0.5 ? 0 : s < 0.5 ? 1 : 2) : s > 0;
    }
    *y = nb_from_array(labels, NB_SHAPE(32), NB_I64);
}

static double train_steps(nb_module *m, nb_optimizer *opt, nb_tensor *x, nb_tensor *y, int steps)
{
    double loss = NAN;
    for (int i = 0; i < steps; i++) {
        nb_scope_begin();
        nb_optimizer_zero_grad(opt);
        nb_tensor *l = nb_cross_entropy(nb_forward(m, x), y, NULL);
        ck_assert_ok(nb_backward(l));
        ck_assert_ok(nb_optimizer_step(opt));
        loss = nb_item(l);
        nb_scope_end();
    }
    return loss;
}

START_TEST(finetune_freezes_body_and_trains_new_head)
{
    char path[] = "/tmp/nabla-finetune-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    nb_generator g;
    nb_generator_seed(&g, 21);
    nb_tensor *xa, *ya, *xb, *yb;
    task_batch(&g, 3, &xa, &ya);
    task_batch(&g, 2, &xb, &yb);

    /* pretrain on task A and save */
    nb_module *pre = nb_sequential_new(3, (nb_module *[]){nb_linear_new(4, 16, true, &g), nb_relu_layer_new(),
                                                          nb_linear_new(16, 3, true, &g)});
    nb_param_list *pre_params = nb_module_parameters(pre);
    nb_optimizer *opt = nb_adam_new(pre_params, nb_adam_defaults());
    train_steps(pre, opt, xa, ya, 50);
    ck_assert_ok(nb_save_safetensors(path, pre_params, NULL));
    nb_optimizer_free(opt);

    /* a new model with a 2-class head: load what matches, freeze the body */
    nb_module *ft = nb_sequential_new(3, (nb_module *[]){nb_linear_new(4, 16, true, &g), nb_relu_layer_new(),
                                                         nb_linear_new(16, 3, true, &g)});
    ck_assert_ok(nb_sequential_set(ft, 2, nb_linear_new(16, 2, true, &g)));
    nb_param_list *params = nb_module_parameters(ft);
    nb_load_report report;
    ck_assert_ok(nb_load_safetensors(path, params, NB_LOAD_PARTIAL, &report, NULL));
    ck_assert_int_eq(report.loaded, 2);
    ck_assert_int_eq(report.mismatched, 2);
    ck_assert_msg(strstr(report.details, "2.weight") != NULL, "report: %s", report.details);
    /* strict loading of the same file refuses and changes nothing */
    ck_assert_int_eq(nb_load_safetensors(path, params, NB_LOAD_STRICT, NULL, NULL), NB_ERR_SHAPE);
    ck_assert_error(NB_ERR_SHAPE, "2.weight");

    ck_assert_int_eq(nb_param_list_set_frozen(params, "0", true), 2);
    ck_assert_int_eq(nb_param_list_numel(params, true), 16 * 2 + 2);
    nb_tensor *body_w = nb_param_list_find(params, "0.weight");
    nb_tensor *head_w = nb_param_list_find(params, "2.weight");
    ck_assert_int_eq(memcmp(nb_data(body_w), nb_data(nb_param_list_find(pre_params, "0.weight")), 64 * 4), 0);
    float body_before[64], head_before[32];
    memcpy(body_before, nb_data(body_w), sizeof body_before);
    memcpy(head_before, nb_data(head_w), sizeof head_before);

    opt = nb_adam_new(params, nb_adam_defaults());
    double first = train_steps(ft, opt, xb, yb, 1), last = train_steps(ft, opt, xb, yb, 100);
    ck_assert_double_lt(last, first);
    ck_assert_int_eq(memcmp(nb_data(body_w), body_before, sizeof body_before), 0); /* bit-identical */
    ck_assert_int_ne(memcmp(nb_data(head_w), head_before, sizeof head_before), 0);
    ck_assert_ptr_null(nb_grad(body_w));

    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_param_list_free(pre_params);
    nb_module_free(ft);
    nb_module_free(pre);
    nb_free(xa), nb_free(ya), nb_free(xb), nb_free(yb);
    unlink(path);
    ck_assert_int_eq(nb_memory_stats_get().live_tensors, 0);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("finetune");
    TCase *tc = tcase_create("finetune");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, mlp_learns_xor);
    tcase_add_test(tc, seeded_training_is_bit_reproducible);
    tcase_add_test(tc, training_with_an_optimizer_keeps_flat_memory);
    tcase_add_test(tc, plain_struct_model_names);
    tcase_add_test(tc, finetune_freezes_body_and_trains_new_head);
    suite_add_tcase(s, tc);
    return s;
}

NB_TEST_MAIN()
