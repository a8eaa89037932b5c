"""SCC as upstream writes it (one conv per level, running max, lock mask): the spec, and the draw
of the training-time forced levels that both implementations consume."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = ['draw_forced_levels', 'level_gain', 'level_geometry', 'output_size', 'scc_reference', 'sub_kernel']


def draw_forced_levels(shape: Sequence[int], levels: int, mask_prob: float, device: torch.device) -> torch.Tensor:
    """int8 map of the output's ``shape``: the level forced at each element, −1 where none is.

    One fp32 uniform u per element; u < L·p forces level ⌊u / p⌋, so each level is forced with
    probability p and the natural choice is kept with probability 1 − L·p.
    """
    uniform = torch.rand(shape, dtype=torch.float32, device=device)
    level = torch.div(uniform, mask_prob, rounding_mode='floor').clamp_(max=levels - 1)
    return torch.where(uniform < levels * mask_prob, level, -1).to(torch.int8)


def sub_kernel(weight: torch.Tensor, level: int) -> torch.Tensor:
    """The centred (2·level+1)×(2·level+1) part of a K×K weight."""
    centre = weight.shape[-1] // 2
    return weight[..., centre - level:centre + level + 1, centre - level:centre + level + 1]


def level_geometry(level: int, dilation: int) -> Tuple[int, int]:
    """(padding, dilation) of level ``level``: padding level·d centres it; the 1×1 level is undilated."""
    return level * dilation, (dilation if level else 1)


def output_size(size: int, stride: int) -> int:
    """Output length of every level along one axis: ⌊(size − 1)/stride⌋ + 1."""
    return (size - 1) // stride + 1


def level_gain(alpha: torch.Tensor) -> torch.Tensor:
    """Per-level, per-channel gain 1 + tanh α, shape (L, C_out, 1, 1)."""
    return 1 + torch.tanh(alpha)


def scc_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                  stride: int = 1, dilation: int = 1, groups: int = 1,
                  forced: Optional[torch.Tensor] = None) -> torch.Tensor:
    """SCC written as upstream's level loop: running max, per-level affine and the lock mask.

    Args:
        x: B×C_in×H×W.
        weight, bias, alpha, beta: the SCC parameters, shapes as in :class:`~.module.SCC`.
        stride, dilation, groups: as in :class:`~.module.SCC`.
        forced: a :func:`draw_forced_levels` map over the output (training), or None.

    Returns:
        B×C_out×H'×W'.
    """
    levels = weight.shape[-1] // 2 + 1
    value = F.conv2d(x, sub_kernel(weight, 0), bias[0], stride, 0, 1, groups)
    output = value * (1 + torch.tanh(alpha[0])) + beta[0]
    lock = None if forced is None else forced == 0
    for level in range(1, levels):
        padding, level_dilation = level_geometry(level, dilation)
        new = F.conv2d(x, sub_kernel(weight, level), bias[level], stride, padding, level_dilation, groups)
        take = new > value
        if forced is not None:  # upstream's per-level rand mask, then its lock
            forced_here = forced == level
            take = (take | forced_here) & ~lock
            lock = lock | forced_here
        value = torch.where(take, new, value)
        output = torch.where(take, new * (1 + torch.tanh(alpha[level])) + beta[level], output)
    return output
