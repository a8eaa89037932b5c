"""The fast solver (``impl='fast'``): the SDNet steps as the registered ops of :mod:`.ops`."""
import math
from typing import List

import torch

from .ops import csc_encode, csc_step
from .reference import check_solver

__all__ = ['fista_momentum', 'sparse_code']


def fista_momentum(num_steps: int) -> List[float]:
    """Extrapolation weights β_k of steps k = 1 … num_steps: t₁ = 1, t_{k+1} = (1 + √(1 + 4t_k²)) / 2.

    β_k = (t_{k−1} − 1) / t_k, so β₁ = β₂ = 0, β₃ ≈ 0.282, β₄ ≈ 0.434, … (the SDNet code's sequence).
    """
    betas, t = [0.0], 1.0
    for _ in range(num_steps - 1):
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        betas.append((t - 1.0) / t_next)
        t = t_next
    return betas


def sparse_code(x: torch.Tensor, weight: torch.Tensor, dictionary, step: torch.Tensor, lam: float, num_steps: int = 2,
                solver: str = 'sdnet_fista', non_negative: bool = True, mu: float = 0.0,
                recompute: bool = False) -> torch.Tensor:
    """Unrolled proximal-gradient sparse coding, memory-lean (same result as the reference).

    Args:
        x: signal, B × C_in × L… for a convolutional dictionary, N × d for a matrix one.
        weight: the dictionary, C_out × C_in/groups × k… (m × d for a matrix).
        dictionary: a :class:`~.dictionaries.ConvDictionary` or :class:`~.dictionaries.LinearDictionary`.
        step: step size η, a 0-d tensor (used as a tensor: no host synchronisation).
        lam: ℓ1 weight λ. mu: ℓ2 weight μ.
        num_steps: proximal-gradient steps; the first one starts from z = 0.
        solver: one of :data:`~.reference.SOLVERS` (see :mod:`mmconv.ops.csc`).
        non_negative: restrict the codes to z ≥ 0.
        recompute: recompute ``A p`` in backward instead of saving it (one signal-sized tensor less
            per step, one more transposed conv per step).

    Returns:
        The codes, B × C_out × L'… (N × m).
    """
    check_solver(num_steps, solver)
    theta = step * lam
    scale = 1.0 / (1.0 + step * mu) if mu else None
    betas = fista_momentum(num_steps) if solver != 'ista' else [0.0] * num_steps
    geometry = dictionary.geometry

    def saved_as_point(k: int) -> bool:
        """Whether z_k is the gradient point of step k + 1 (so that step saves it anyway)."""
        return k < num_steps and (solver != 'fista' or betas[k] == 0)

    c, z = csc_encode(weight, x, step, theta, scale, *geometry, non_negative, saved_as_point(1))
    if num_steps == 1:
        return z
    z_prev = None
    for k in range(2, num_steps + 1):
        beta = betas[k - 1]
        y = z if beta == 0 else torch.add(z, z - z_prev, alpha=beta)
        point = None if solver == 'fista' or y is z else z
        z_prev, z = z, csc_step(weight, x, y, point, c, step, theta, scale, *geometry, non_negative, saved_as_point(k),
                                recompute)[0]
    return z
