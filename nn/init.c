/* Initializers, with PyTorch's formulas for gains and fans (torch.nn.init). They fill tensors in place and
 * record nothing on the tape. */
#include "nn_internal.h"

#include <math.h>

double nb_calculate_gain(nb_nonlinearity nonlinearity, double param)
{
    switch (nonlinearity) {
    case NB_GAIN_LINEAR:
    case NB_GAIN_SIGMOID: return 1.0;
    case NB_GAIN_TANH: return 5.0 / 3.0;
    case NB_GAIN_RELU: return sqrt(2.0);
    case NB_GAIN_LEAKY_RELU:
        if (!isfinite(param)) {
            nbi_error(NB_ERR_VALUE, "nb_calculate_gain: leaky_relu's negative slope must be finite, got %g", param);
            return NAN;
        }
        return sqrt(2.0 / (1.0 + param * param));
    case NB_GAIN_SELU: return 0.75;
    }
    nbi_error(NB_ERR_ARG, "nb_calculate_gain: unknown nonlinearity %d", (int)nonlinearity);
    return NAN;
}

/* Resolves t and checks that random values can be written into it, naming the initializer on failure. */
static nbi_tensor *float_target(nb_tensor *h, const char *fn)
{
    nbi_tensor *t = nbi_resolve(h, fn, "tensor");
    if (t && !nbi_is_float(t->dtype))
        return nbi_error(NB_ERR_DTYPE, "%s: needs an f32 or f64 tensor, not %s", fn, nb_dtype_name(t->dtype));
    return t;
}

/* For a weight of shape (out, in, k...): fan_in = in * prod(k), fan_out = out * prod(k). */
static bool fans(const nbi_tensor *t, const char *fn, double *fan_in, double *fan_out)
{
    if (t->ndim < 2) {
        char b[NBI_SHAPE_STR];
        nbi_error(NB_ERR_SHAPE, "%s: fan_in and fan_out cannot be computed for a tensor with fewer than 2 dims, "
                  "got shape %s", fn, nbi_shape_fmt(b, t->ndim, t->shape));
        return false;
    }
    double receptive = 1;
    for (int d = 2; d < t->ndim; d++) receptive *= (double)t->shape[d];
    *fan_in = (double)t->shape[1] * receptive;
    *fan_out = (double)t->shape[0] * receptive;
    return true;
}

static nb_status check_gain(const char *fn, double gain)
{
    if (gain >= 0 && isfinite(gain)) return NB_OK;
    return nbi_fail(NB_ERR_VALUE, "%s: gain must be finite and >= 0, got %g", fn, gain);
}

nb_status nb_init_uniform_(nb_tensor *h, double low, double high, nb_generator *g)
{
    const char *fn = "nb_init_uniform_";
    if (!float_target(h, fn)) return nb_last_status();
    if (!(low <= high) || !isfinite(low) || !isfinite(high))
        return nbi_fail(NB_ERR_VALUE, "%s: need finite low <= high, got %g and %g", fn, low, high);
    return nb_uniform_(h, low, high, g);
}

nb_status nb_init_normal_(nb_tensor *h, double mean, double std, nb_generator *g)
{
    const char *fn = "nb_init_normal_";
    if (!float_target(h, fn)) return nb_last_status();
    if (!(std >= 0) || !isfinite(mean) || !isfinite(std))
        return nbi_fail(NB_ERR_VALUE, "%s: need a finite mean and a finite std >= 0, got %g and %g", fn, mean, std);
    return nb_normal_(h, mean, std, g);
}

static nb_status fill(nb_tensor *h, double value, const char *fn)
{
    if (!nbi_resolve(h, fn, "tensor")) return nb_last_status();
    if (isnan(value) && !nbi_is_float(nbi_peek(h)->dtype))
        return nbi_fail(NB_ERR_VALUE, "%s: cannot store NaN in a %s tensor", fn, nb_dtype_name(nbi_peek(h)->dtype));
    return nb_fill(h, value);
}

nb_status nb_init_zeros_(nb_tensor *t) { return fill(t, 0.0, "nb_init_zeros_"); }
nb_status nb_init_ones_(nb_tensor *t) { return fill(t, 1.0, "nb_init_ones_"); }
nb_status nb_init_constant_(nb_tensor *t, double value) { return fill(t, value, "nb_init_constant_"); }

nb_status nb_init_xavier_uniform_(nb_tensor *h, double gain, nb_generator *g)
{
    const char *fn = "nb_init_xavier_uniform_";
    nbi_tensor *t = float_target(h, fn);
    double fan_in, fan_out;
    if (!t || check_gain(fn, gain) || !fans(t, fn, &fan_in, &fan_out)) return nb_last_status();
    if (t->numel == 0) return NB_OK;
    double a = gain * sqrt(6.0 / (fan_in + fan_out));
    return nb_uniform_(h, -a, a, g);
}

nb_status nb_init_xavier_normal_(nb_tensor *h, double gain, nb_generator *g)
{
    const char *fn = "nb_init_xavier_normal_";
    nbi_tensor *t = float_target(h, fn);
    double fan_in, fan_out;
    if (!t || check_gain(fn, gain) || !fans(t, fn, &fan_in, &fan_out)) return nb_last_status();
    if (t->numel == 0) return NB_OK;
    return nb_normal_(h, 0.0, gain * sqrt(2.0 / (fan_in + fan_out)), g);
}

/* gain / sqrt(fan), the standard deviation both kaiming initializers aim at; NAN after an error. */
static double kaiming_std(nbi_tensor *t, double a, nb_fan_mode mode, nb_nonlinearity nonlinearity, const char *fn)
{
    double fan_in, fan_out;
    if (!fans(t, fn, &fan_in, &fan_out)) return NAN;
    if (mode != NB_FAN_IN && mode != NB_FAN_OUT) {
        nbi_error(NB_ERR_ARG, "%s: unknown fan mode %d", fn, (int)mode);
        return NAN;
    }
    if ((unsigned)nonlinearity > NB_GAIN_SELU) { /* checked here so that the message names fn */
        nbi_error(NB_ERR_ARG, "%s: unknown nonlinearity %d (see nb_calculate_gain)", fn, (int)nonlinearity);
        return NAN;
    }
    double gain = nb_calculate_gain(nonlinearity, a);
    if (isnan(gain)) return NAN;
    double fan = mode == NB_FAN_IN ? fan_in : fan_out;
    return gain / sqrt(fan);
}

nb_status nb_init_kaiming_uniform_(nb_tensor *h, double a, nb_fan_mode mode, nb_nonlinearity nonlinearity,
                                   nb_generator *g)
{
    const char *fn = "nb_init_kaiming_uniform_";
    nbi_tensor *t = float_target(h, fn);
    if (!t) return nb_last_status();
    double std = kaiming_std(t, a, mode, nonlinearity, fn);
    if (isnan(std)) return nb_last_status();
    if (t->numel == 0) return NB_OK;
    double bound = sqrt(3.0) * std;
    return nb_uniform_(h, -bound, bound, g);
}

nb_status nb_init_kaiming_normal_(nb_tensor *h, double a, nb_fan_mode mode, nb_nonlinearity nonlinearity,
                                  nb_generator *g)
{
    const char *fn = "nb_init_kaiming_normal_";
    nbi_tensor *t = float_target(h, fn);
    if (!t) return nb_last_status();
    double std = kaiming_std(t, a, mode, nonlinearity, fn);
    if (isnan(std)) return nb_last_status();
    if (t->numel == 0) return NB_OK;
    return nb_normal_(h, 0.0, std, g);
}
