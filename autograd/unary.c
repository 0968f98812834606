/* Stubs until this op family lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_autograd.h"

nb_tensor * nb_neg(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_neg: not implemented yet");
}

nb_tensor * nb_exp(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_exp: not implemented yet");
}

nb_tensor * nb_log(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_log: not implemented yet");
}

nb_tensor * nb_sqrt(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_sqrt: not implemented yet");
}

nb_tensor * nb_rsqrt(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_rsqrt: not implemented yet");
}

nb_tensor * nb_square(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_square: not implemented yet");
}

nb_tensor * nb_reciprocal(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_reciprocal: not implemented yet");
}

nb_tensor * nb_abs(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_abs: not implemented yet");
}

nb_tensor * nb_sin(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_sin: not implemented yet");
}

nb_tensor * nb_cos(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_cos: not implemented yet");
}

nb_tensor * nb_tanh(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_tanh: not implemented yet");
}

nb_tensor * nb_sigmoid(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_sigmoid: not implemented yet");
}

nb_tensor * nb_relu(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_relu: not implemented yet");
}

nb_tensor * nb_leaky_relu(nb_tensor *t, double negative_slope)
{
    (void)t; (void)negative_slope;
    return nbi_error(NB_ERR_STATE, "nb_leaky_relu: not implemented yet");
}

nb_tensor * nb_elu(nb_tensor *t, double alpha)
{
    (void)t; (void)alpha;
    return nbi_error(NB_ERR_STATE, "nb_elu: not implemented yet");
}

nb_tensor * nb_gelu(nb_tensor *t, bool approximate)
{
    (void)t; (void)approximate;
    return nbi_error(NB_ERR_STATE, "nb_gelu: not implemented yet");
}

nb_tensor * nb_silu(nb_tensor *t)
{
    (void)t;
    return nbi_error(NB_ERR_STATE, "nb_silu: not implemented yet");
}

nb_tensor * nb_softplus(nb_tensor *t, double beta, double threshold)
{
    (void)t; (void)beta; (void)threshold;
    return nbi_error(NB_ERR_STATE, "nb_softplus: not implemented yet");
}

nb_tensor * nb_clamp(nb_tensor *t, double lo, double hi)
{
    (void)t; (void)lo; (void)hi;
    return nbi_error(NB_ERR_STATE, "nb_clamp: not implemented yet");
}
