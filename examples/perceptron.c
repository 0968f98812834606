/* perceptron: Rosenblatt's perceptron learning rule (1958), and why XOR needed hidden layers.
 *
 * A single threshold unit predicts 1 when w . (x1, x2, 1) > 0, else 0. Rosenblatt's rule visits the points in
 * order and, after each mistake, moves the weights towards the point: w += lr (target - prediction) x. No
 * gradient, no loss: nabla is used here as a plain tensor library (the weights and the data are tensors; one
 * epoch is one scope). The convergence theorem says that on linearly separable data the rule makes finitely many
 * mistakes, so some epoch passes with zero errors. AND, OR and a random separable cloud of points converge. XOR
 * is not linearly separable: the errors never reach zero, and since the weights after an epoch are a function
 * of the weights before it (fixed order, integer steps), the program finds an epoch whose final weights repeat an
 * earlier one's: from there on the rule cycles forever.
 *
 *     perceptron [--seed N] [--epochs N] [--points N]
 */
#include <nabla.h>

#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(void)
{
    fprintf(stderr, "perceptron: %s\n", nb_last_error());
    exit(EXIT_FAILURE);
}

typedef struct outcome {
    bool converged;
    int64_t epochs; /* converged: the first epoch without a mistake */
    int64_t cycle_start, cycle_end; /* not converged: weights after cycle_end equal those after cycle_start (0: none) */
    int64_t min_errors;
    double w[3];
} outcome;

/* Runs the rule on n points xy (n x 2) with 0/1 targets for at most `epochs` epochs, from zero weights. */
static outcome train(const char *name, int64_t n, const double *xy, const double *target, int64_t epochs)
{
    double *rows = ex_alloc_for("perceptron", "--points", n, 0, 3, sizeof *rows);
    double *history = ex_alloc_for("perceptron", "--epochs", epochs, 1, 3, sizeof *history); /* weights after each epoch */
    for (int64_t i = 0; i < n; i++) { /* the constant 1 makes the threshold a third weight */
        rows[3 * i] = xy[2 * i];
        rows[3 * i + 1] = xy[2 * i + 1];
        rows[3 * i + 2] = 1.0;
    }
    nb_tensor *x = nb_from_array(rows, NB_SHAPE(n, 3), NB_F64);
    nb_tensor *w = nb_zeros(NB_SHAPE(1, 3), NB_F64);
    if (!x || !w) fail();
    memset(history, 0, 3 * sizeof *history);

    outcome o = {.min_errors = n};
    printf("%s: errors per epoch:", name);
    for (int64_t epoch = 1; epoch <= epochs; epoch++) {
        nb_scope_begin();
        int64_t errors = 0;
        for (int64_t i = 0; i < n; i++) {
            nb_tensor *xi = nb_narrow(x, 0, i, 1);
            double score = nb_item(nb_sum(nb_mul(xi, w), 0, NULL, false));
            double predicted = score > 0 ? 1.0 : 0.0, delta = target[i] - predicted;
            if (isnan(score)) fail();
            if (delta != 0) {
                errors++;
                if (nb_copy_(w, nb_add(w, nb_mul_scalar(xi, delta))) != NB_OK) fail();
            }
        }
        nb_scope_end();
        if (epoch <= 20) printf(" %lld", (long long)errors);
        else if (epoch == 21) printf(" ...");
        if (errors < o.min_errors) o.min_errors = errors;
        if (errors == 0) {
            o.converged = true;
            o.epochs = epoch;
            break;
        }
        double *now = history + 3 * epoch;
        if (nb_to_array(w, now, 3, NB_F64) != NB_OK) fail();
        for (int64_t e = 0; e < epoch && !o.cycle_end; e++)
            if (!memcmp(history + 3 * e, now, 3 * sizeof *now)) {
                o.cycle_start = e;
                o.cycle_end = epoch;
            }
    }
    printf("\n");
    if (nb_to_array(w, o.w, 3, NB_F64) != NB_OK) fail();
    if (o.converged)
        printf("%s: converged: epoch %lld made no mistake; w = (%.4g, %.4g), threshold %.4g\n", name,
               (long long)o.epochs, o.w[0], o.w[1], -o.w[2]);
    else if (o.cycle_end)
        printf("%s: no convergence in %lld epochs (fewest errors %lld): the weights after epoch %lld equal those "
               "after epoch %lld, so the rule cycles with period %lld forever\n",
               name, (long long)epochs, (long long)o.min_errors, (long long)o.cycle_end, (long long)o.cycle_start,
               (long long)(o.cycle_end - o.cycle_start));
    else
        printf("%s: no convergence in %lld epochs (fewest errors %lld), no repeated weights yet\n", name,
               (long long)epochs, (long long)o.min_errors);
    nb_free(x);
    nb_free(w);
    free(rows);
    free(history);
    return o;
}

static const char *verdict(const outcome *o) { return o->converged ? "converged" : "no_convergence"; }

int main(int argc, char **argv)
{
    int64_t seed = 42, epochs = 100, points = 100;
    const ex_flag flags[] = {
        {"--seed", EX_INT, &seed, "seed of the separable point cloud"},
        {"--epochs", EX_INT, &epochs, "most passes over each data set"},
        {"--points", EX_INT, &points, "size of the separable point cloud"},
    };
    ex_parse_flags(argc, argv, "perceptron",
                   "Rosenblatt's perceptron rule learns AND, OR and a separable cloud, and cycles on XOR.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    if (points < 1) { /* an empty cloud has nothing to misclassify and would count as converged */
        fprintf(stderr, "perceptron: --points must be at least 1, got %lld\n", (long long)points);
        return 2;
    }

    const double corners[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    const double and_t[4] = {0, 0, 0, 1}, or_t[4] = {0, 1, 1, 1}, xor_t[4] = {0, 1, 1, 0};

    /* Uniform points of [-1, 1]^2 labeled by the side of the line 0.8 x1 - 0.6 x2 + 0.1 = 0 (a unit normal, so
     * the value is the distance); points closer than 0.05 are redrawn, which bounds the number of mistakes by
     * (R / 0.05)^2 with R = sqrt(3) the largest input norm. */
    double *cloud = ex_alloc_for("perceptron", "--points", points, 0, 2, sizeof *cloud);
    double *cloud_t = ex_alloc_for("perceptron", "--points", points, 0, 1, sizeof *cloud_t);
    nb_generator gen;
    nb_generator_seed(&gen, (uint64_t)seed);
    for (int64_t i = 0; i < points; i++) {
        double a, b, d;
        do {
            a = 2 * nb_random_uniform(&gen) - 1;
            b = 2 * nb_random_uniform(&gen) - 1;
            d = 0.8 * a - 0.6 * b + 0.1;
        } while (fabs(d) < 0.05);
        cloud[2 * i] = a;
        cloud[2 * i + 1] = b;
        cloud_t[i] = d > 0;
    }

    double start = ex_now();
    outcome o_and = train("and", 4, corners, and_t, epochs);
    outcome o_or = train("or", 4, corners, or_t, epochs);
    outcome o_sep = train("separable", points, cloud, cloud_t, epochs);
    outcome o_xor = train("xor", 4, corners, xor_t, epochs);
    double seconds = ex_now() - start;

    printf("result: and=%s or=%s separable=%s xor=%s and_epochs=%lld or_epochs=%lld separable_epochs=%lld "
           "xor_cycle=%lld seconds=%.3f\n",
           verdict(&o_and), verdict(&o_or), verdict(&o_sep), verdict(&o_xor), (long long)o_and.epochs,
           (long long)o_or.epochs, (long long)o_sep.epochs,
           (long long)(o_xor.cycle_end ? o_xor.cycle_end - o_xor.cycle_start : 0), seconds);
    free(cloud);
    free(cloud_t);
    return 0;
}
