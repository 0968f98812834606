/* Internal interface of autograd: how an op records itself on the tape. Not installed. */
#ifndef NABLA_AUTOGRAD_INTERNAL_H
#define NABLA_AUTOGRAD_INTERNAL_H

#include "internal.h"
#include "nb_autograd.h"

/* An op's entry on the tape. backward receives the op's output (whose inputs and ctx were recorded) and the
 * gradient flowing into it, and stores in grad_in[i] the gradient for input i, a tensor of input i's shape
 * (or leaves it NULL when input i needs none: nbi_wants_grad(out, i) is false, or the gradient is zero).
 * It is written with the public differentiable ops, so that under NB_CREATE_GRAPH it is itself recorded.
 * A failing op inside backward records an error as usual; the engine notices and stops. */
typedef struct nbi_op {
    const char *name;
    void (*backward)(nbi_tensor *out, nb_tensor *grad_out, nb_tensor **grad_in);
} nbi_op;

/* Records op on out when grad mode is on and one of the inputs requires grad; otherwise does nothing.
 * inputs are kept alive by out (their storage versions are noted, so backward can detect in-place changes);
 * ctx_size bytes at ctx are copied (read them back with nbi_ctx). Returns out's handle, or NULL (out is
 * freed) on failure. out NULL propagates. The usual last line of an op's forward. */
nb_tensor *nbi_record(nbi_tensor *out, const nbi_op *op, int n, nbi_tensor *const *inputs, const void *ctx,
                      size_t ctx_size);

/* Backward helpers: input i of out as a handle; whether input i needs a gradient; out's recorded ctx. */
static inline nb_tensor *nbi_in(const nbi_tensor *out, int i) { return nbi_handle(out->inputs[i]); }
static inline bool nbi_wants_grad(const nbi_tensor *out, int i) { return out->inputs[i]->requires_grad; }
static inline const void *nbi_ctx(const nbi_tensor *out) { return out->ctx; }

/* A new tensor sharing t's data and layout whose gradient passes straight to t (for ops that would return
 * their input unchanged but must hand back a new tensor). */
nb_tensor *nbi_alias(nbi_tensor *t, const char *fn);

/* Kills a forward temporary (a converted input, a scalar made into a tensor) once the result holds it. */
static inline void nbi_drop_temp(nbi_tensor *tmp, const nbi_tensor *original)
{
    if (tmp && tmp != original) nbi_kill(tmp);
}

/* Adds src into dst in place (same float dtype; src broadcasts to dst). */
void nbi_add_inplace(nbi_tensor *dst, const nbi_tensor *src);

#endif
