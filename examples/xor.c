/* xor: the smallest problem a single perceptron cannot solve (see perceptron.c), solved by one hidden layer.
 *
 * A 2-4-1 network with sigmoid activations (an nn/ Sequential) is trained on the four points of XOR with the
 * binary cross-entropy loss and Adam, full batch. It prints the network's output for each input; all four end
 * on the right side of 0.5.
 *
 *     xor [--seed N] [--steps N] [--lr X] [--save PATH] [--load PATH]
 */
#include <nabla.h>

#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void fail(void)
{
    fprintf(stderr, "xor: %s\n", nb_last_error());
    exit(EXIT_FAILURE);
}

/* Whether the network's four outputs are all finite numbers. */
static bool finite_outputs(nb_tensor *probs)
{
    float out[4];
    if (nb_to_array(probs, out, 4, NB_F32) != NB_OK) fail();
    for (int i = 0; i < 4; i++)
        if (!isfinite(out[i])) return false;
    return true;
}

int main(int argc, char **argv)
{
    int64_t seed = 1, steps = 1000;
    double lr = 0.05;
    const char *save_path = NULL, *load_path = NULL;
    const ex_flag flags[] = {
        {"--seed", EX_INT, &seed, "seed of the initial weights"},
        {"--steps", EX_INT, &steps, "number of full-batch Adam steps"},
        {"--lr", EX_DOUBLE, &lr, "Adam's learning rate"},
        {"--save", EX_STRING, &save_path, "write the trained weights (safetensors)"},
        {"--load", EX_STRING, &load_path, "start from weights saved with --save"},
    };
    ex_parse_flags(argc, argv, "xor", "Trains a 2-4-1 sigmoid MLP on XOR with BCE and Adam.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    if (!(lr > 0)) {
        fprintf(stderr, "xor: --lr must be positive, got %g\n", lr);
        return 2;
    }

    const float inputs[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
    const float targets[4] = {0, 1, 1, 0};
    nb_tensor *x = nb_from_array(inputs, NB_SHAPE(4, 2), NB_F32);
    nb_tensor *y = nb_from_array(targets, NB_SHAPE(4, 1), NB_F32);
    nb_generator gen;
    nb_generator_seed(&gen, (uint64_t)seed);
    nb_module *layers[] = {nb_linear_new(2, 4, true, &gen), nb_sigmoid_layer_new(), nb_linear_new(4, 1, true, &gen),
                           nb_sigmoid_layer_new()};
    nb_module *model = nb_sequential_new(4, layers);
    nb_param_list *params = nb_module_parameters(model);
    if (!x || !y || !model || !params) fail();
    if (load_path && nb_load_safetensors(load_path, params, NB_LOAD_STRICT, NULL, NULL) != NB_OK) fail();
    nb_adam_options adam = nb_adam_defaults();
    adam.lr = lr;
    nb_optimizer *opt = nb_adam_new(params, adam);
    if (!opt) fail();

    double start = ex_now(), loss_value = NAN;
    for (int64_t step = 0; step < steps; step++) {
        nb_scope_begin();
        nb_tensor *probs = nb_forward(model, x);
        if (!probs) fail();
        /* nb_bce_loss refuses a nan probability (weights blown up by too large a step) with its own error, before
         * there is a loss to check: stop with the same hint the other examples give. */
        if (!finite_outputs(probs)) ex_check_loss("xor", NAN, "step", step + 1);
        nb_tensor *loss = nb_bce_loss(probs, y, NULL, NB_REDUCTION_MEAN);
        nb_optimizer_zero_grad(opt);
        if (nb_backward(loss) != NB_OK || nb_optimizer_step(opt) != NB_OK) fail();
        loss_value = nb_item(loss);
        ex_check_loss("xor", loss_value, "step", step + 1);
        if (step == 0 || (step + 1) % (steps >= 10 ? steps / 10 : 1) == 0)
            printf("step %5lld  loss %.5f\n", (long long)(step + 1), loss_value);
        nb_scope_end();
    }
    double seconds = ex_now() - start;

    float out[4];
    nb_scope_begin();
    nb_no_grad_begin();
    nb_tensor *probs = nb_forward(model, x);
    nb_status st = nb_to_array(probs, out, 4, NB_F32);
    if (steps == 0) loss_value = nb_item(nb_bce_loss(probs, y, NULL, NB_REDUCTION_MEAN));
    nb_no_grad_end();
    nb_scope_end();
    if (st != NB_OK) fail();
    /* The last step can blow the weights up too; its loss was computed before it. */
    for (int i = 0; i < 4 && steps > 0; i++)
        if (!isfinite(out[i])) ex_check_loss("xor", NAN, "step", steps);
    int correct = 0;
    for (int i = 0; i < 4; i++) {
        bool ok = (out[i] > 0.5f) == (targets[i] > 0.5f);
        correct += ok;
        printf("%g xor %g = %g  ->  %.4f  %s\n", inputs[i][0], inputs[i][1], targets[i], out[i], ok ? "ok" : "WRONG");
    }
    if (save_path) {
        if (nb_save_safetensors(save_path, params, NULL) != NB_OK) fail();
        fprintf(stderr, "wrote %s\n", save_path);
    }
    printf("result: correct=%d loss=%.5f steps=%lld seconds=%.3f\n", correct, loss_value, (long long)steps, seconds);

    nb_optimizer_free(opt);
    nb_param_list_free(params);
    nb_module_free(model);
    nb_free(x);
    nb_free(y);
    return 0;
}
