/* nabla: a reverse-mode autograd tensor engine in C11. Include this one header.
 *   nb_tensor.h   tensors, memory scopes, errors, creation, printing, random numbers
 *   nb_autograd.h the tape, backward, gradient checking and the differentiable ops
 *   nb_nn.h       parameter lists, modules, layers, initializers, losses, safetensors checkpoints
 *   nb_optim.h    optimizers, learning-rate schedules, gradient clipping, early stopping
 *   nb_data.h     data set readers, batches, preprocessing, splits, metrics, progress display
 *   nb_dist.h     data-parallel training over several processes or machines (MPI, optional) */
#ifndef NABLA_H
#define NABLA_H

#include "nb_tensor.h"
#include "nb_autograd.h"
#include "nb_nn.h"
#include "nb_optim.h"
#include "nb_data.h"
#include "nb_dist.h"

#endif
