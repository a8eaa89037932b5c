"""The spec of the CSC solver: the SDNet recursion written out with autograd (``impl='reference'``)."""
import math

import torch
import torch.nn.functional as F

from ..validation import check_choice, check_positive

__all__ = ['SOLVERS', 'check_solver', 'sparse_code_reference']

SOLVERS = ('sdnet_fista', 'fista', 'ista')


def check_solver(num_steps: int, solver: str) -> None:
    """Raise a ValueError unless ``num_steps`` is a positive integer and ``solver`` one of SOLVERS."""
    check_positive('num_steps', num_steps)
    check_choice('solver', solver, SOLVERS)


def sparse_code_reference(x: torch.Tensor, weight: torch.Tensor, dictionary, step: torch.Tensor, lam: float,
                          num_steps: int = 2, solver: str = 'sdnet_fista', non_negative: bool = True,
                          mu: float = 0.0) -> torch.Tensor:
    """The SDNet recursion written out with autograd (arguments as :func:`~.solver.sparse_code`).

    Plain and slow on purpose: the residual ``x − A z`` is formed explicitly and every intermediate is
    kept for backward, as in the SDNet code. η stays a tensor (no host sync; exportable), and
    ``v − clamp(v, −θ, θ)`` is ``softshrink(v, θ)`` with a tensor θ.
    """
    check_solver(num_steps, solver)
    eta = step
    scale = 1.0 / (1.0 + mu * eta)
    threshold = lam * eta * scale

    def prox(v):
        v = v * scale
        v = v - v.clamp(-threshold, threshold)
        return F.relu(v) if non_negative else v

    z = prox(eta * dictionary.encode(x, weight))
    z_prev, t = torch.zeros_like(z), 1.0
    for _ in range(1, num_steps):
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        beta = (t - 1.0) / t_next if solver != 'ista' else 0.0
        t = t_next
        y = z + beta * (z - z_prev)
        point = y if solver == 'fista' else z
        residual = x - dictionary.decode(point, weight, x.shape)
        z_prev, z = z, prox(y + eta * dictionary.encode(residual, weight))
    return z
