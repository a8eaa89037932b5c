"""Subspace Combination Convolution (SCC): nested centred sub-kernels chosen per output by a running max.

SCCNet, "Subspace Combination Convolutional Network For Image Classification" (R. Zou), code and
ImageNet results at https://github.com/Raven-Z-china/SCCNet (no paper text is public).

One K×K weight W (K odd, c = K // 2) holds L = c + 1 nested centred sub-kernels W_i of size
(2i+1)×(2i+1), i = 0..c. Level i has its own bias b_i and affine gain/offset, and responds

    r_i = conv(x, W_i, stride s, padding i·d, dilation d) + b_i,
    T_i(r) = r · (1 + tanh α_i) + β_i        (per output channel; the gain lies in (0, 2)).

Every level is centred on the same input pixel, so all have ⌊(H − 1)/s⌋ + 1 rows for any H and
stride (odd sizes with stride 2 included). Per output element the level ``idx`` is chosen by a
running maximum over the *raw* responses with a strict ``>``, i.e. the first argmax (ties go to the
smaller kernel), and the output is ``T_idx(r_idx)``. SCC has no separate activation: the selection
is the nonlinearity.

Training-time lock mask (ε-greedy exploration): the upstream code forces, per element, level 0 with
probability p (``mask_prob``) and then level i with probability p/(1 − i·p) unless an earlier level
locked the element; a forced level wins over every later level. This follows the later upstream fix
(2025-12-31, research notes §3.2), under which each level is forced with probability exactly p and
the natural argmax is used with probability 1 − L·p. The seed code already has the earlier lock fix
(``lock | select``; the first upload had ``lock & select``) but forces every level i ≥ 1 with p,
i.e. level i with probability p·(1 − p)^i.

Random numbers: instead of L uniform maps per forward, the forced elements are drawn as a Bernoulli
process of rate L·p (geometric gaps, drawn in float64) with a uniform level for each. The joint law
of the forced levels is exactly the upstream one; the stream is not. This keeps the draw out of the
autocast dtype (upstream's ``rand_like`` in bf16 lowers the effective p to 0.0039) and costs
O(L·p·numel) random numbers. Both implementations below consume the same draw, so train-mode
outputs agree given the same RNG state. In eval mode nothing is drawn and the op is deterministic.

Implementations (``impl``):

* ``'reference'``: the upstream algorithm written out level by level (one conv per level, the
  running max and the lock), kept plain for tests. Autograd saves every level's response and mask.
* ``'fast'`` (``'auto'``): :class:`SCCFunction`. Forward runs one conv per level ≥ 1 and the 1×1
  level as a batched matmul, then an in-place select/affine epilogue that picks levels with
  ``lerp`` by 0/1 float masks (exact at 0 and 1; the CPU ``torch.where`` kernel is ~4× slower).
  Backward saves only ``x`` and the selected level as int8: the per-level gain is folded into the
  (tiny) weights instead of the activations, level 0 is folded into the other levels (see
  :class:`SCCFunction`), and dα_i needs Σ g·r_i over the elements that chose level i, which
  equals ⟨W_i, ∂L/∂W_i'⟩ + b_i · Σ g (∂L/∂W_i' = the weight gradient of level i without its
  gain), so no response is stored or recomputed.

  Cost: the levels are dense convs, Σ_i (2i+1)² taps per output: 10/9 of a 3×3 conv for K = 3 and
  35/25 of a 5×5 conv for K = 5. Computing every level for exactly K² taps needs a tap-ordered
  kernel that snapshots its accumulator at each ring. With library kernels on CPU nothing does
  better than one dense conv per level (measured on a 2-core EPYC, B=8, C=64, 56²): the per-tap
  shift-and-matmul loop takes 1.6-2.2× the time of one oneDNN 5×5 conv, im2col plus ring-ordered
  matmuls 1.9×, and rings built from strip convs ((2, 2i+1) and (2i−1, 2) kernels with dilation
  2i) 1.1× more than the dense level they replace. ``tools/analysis_tools/benchmark_ops.py``
  prints that floor (the dense level convs alone) beside the fast path.

Parameters keep the upstream names and shapes (``weight`` (C_out, C_in/groups, K, K), ``bias``
(L, C_out), ``alpha`` and ``beta`` (L, C_out, 1, 1)) so SCCNet checkpoints load unchanged, and the
module initialiser is upstream's (weight U(−0.2, 0.2); bias, α, β U(−2, 2); SCCNet re-initialises
every SCC with U(−1, 1)). Unlike upstream, ``groups`` is honoured (the weight has C_in/groups input
channels; upstream's ``groups > 1`` cannot run). FLOPs: every nested conv is counted, as in the
SCCNet table (an SCC 3×3 costs a 1×1 plus a 3×3 conv).
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .flop_handles import register_flop_handle, value_shape
from .pointwise import (add_pointwise_input_grad, batched_pointwise, pointwise_weight_grad,
                        strided_pixels)

__all__ = ['SCC', 'SCCFunction', 'scc_reference', 'draw_forced_levels']

IMPLS = ('auto', 'fast', 'reference')

ForcedLevels = Tuple[torch.Tensor, torch.Tensor]


def draw_forced_levels(numel: int, levels: int, mask_prob: float,
                       device: torch.device) -> Optional[ForcedLevels]:
    """Draw which output elements get a forced level, and which level.

    Every element is forced independently with probability ``levels · mask_prob``, to a level drawn
    uniformly from ``0..levels-1``, so each level is forced with probability ``mask_prob``.

    Args:
        numel: number of output elements (the draw indexes the flattened output).
        levels: L, the number of nested kernels.
        mask_prob: p, with 0 ≤ L·p ≤ 1.
        device: where to draw.

    Returns:
        None when p = 0, else ``(positions, level)``: int64 flat indices in increasing order and the
        int64 level forced at each.
    """
    rate = levels * mask_prob
    if rate <= 0 or numel == 0:
        return None
    if rate >= 1:
        positions = torch.arange(numel, device=device)
    else:
        # Gaps of a Bernoulli process are geometric; draw a 10-sigma surplus, top up if still short
        # (the check is one host sync on a GPU).
        mean = numel * rate
        count = int(mean + 10 * math.sqrt(mean) + 16)
        chunks, covered = [], 0
        while covered < numel:
            gaps = torch.empty(count, dtype=torch.float64, device=device).geometric_(rate)
            ends = gaps.cumsum_(0).to(torch.int64).add_(covered)
            chunks.append(ends)
            covered = int(ends[-1])
        positions = torch.cat(chunks).sub_(1)
        positions = positions[:int(torch.searchsorted(positions, torch.tensor(numel, device=device)))]
    return positions, torch.randint(levels, positions.shape, device=device)


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


def scc_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, alpha: torch.Tensor,
                  beta: torch.Tensor, stride: int = 1, dilation: int = 1, groups: int = 1,
                  forced: Optional[ForcedLevels] = None) -> torch.Tensor:
    """SCC written as upstream's level loop: running max, per-level affine and the lock mask.

    Args:
        x: B×C_in×H×W.
        weight, bias, alpha, beta: the SCC parameters, shapes as in :class:`SCC`.
        stride, dilation, groups: as in :class:`SCC`.
        forced: a draw of :func:`draw_forced_levels` over the output (training), or None.

    Returns:
        B×C_out×H'×W'.
    """
    levels = weight.shape[-1] // 2 + 1
    value = F.conv2d(x, sub_kernel(weight, 0), bias[0], stride, 0, 1, groups)
    output = value * (1 + torch.tanh(alpha[0])) + beta[0]
    select = lock = None
    if forced is not None:
        # select == i marks the elements whose draw forces level i (upstream's per-level rand mask).
        select = torch.full(value.shape, -1, dtype=torch.int8, device=value.device)
        select.view(-1)[forced[0]] = forced[1].to(torch.int8)
        lock = select == 0
    for level in range(1, levels):
        padding, level_dilation = level_geometry(level, dilation)
        new = F.conv2d(x, sub_kernel(weight, level), bias[level], stride, padding, level_dilation,
                       groups)
        take = new > value
        if select is not None:
            forced_here = select == level
            take = (take | forced_here) & ~lock
            lock = lock | forced_here
        value = torch.where(take, new, value)
        output = torch.where(take, new * (1 + torch.tanh(alpha[level])) + beta[level], output)
    return output


def _first_argmax(responses: List[torch.Tensor]) -> torch.Tensor:
    """int8 index of the first maximum over the level responses (strict ``>`` running max)."""
    if len(responses) == 1:
        return torch.zeros(responses[0].shape, dtype=torch.int8, device=responses[0].device)
    # Comparisons write bool, then convert: a comparison straight into int8 is ~1.6× slower on CPU.
    choice = torch.gt(responses[1], responses[0]).to(torch.int8)
    if len(responses) > 2:
        best = torch.maximum(responses[0], responses[1])
        for level in range(2, len(responses)):
            # choice += beats·(level − choice): int8 arithmetic, unlike masked_fill_, is vectorised.
            beats = torch.gt(responses[level], best).to(torch.int8)
            choice.add_(beats.mul_(torch.rsub(choice, level)))
            if level + 1 < len(responses):
                torch.maximum(best, responses[level], out=best)
    return choice


def _affine_(response: torch.Tensor, gain: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """response · gain + offset, in place when the result keeps the response's dtype."""
    if torch.promote_types(response.dtype, gain.dtype) == response.dtype:
        return torch.addcmul(offset, response, gain, out=response)
    return torch.addcmul(offset, response, gain)


def _pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int,
                    groups: int) -> torch.Tensor:
    """The 1×1 level. A batched matmul, unlike a oneDNN conv, needs no layout reorders.

    The result is a tensor of its own, not a view: SCC's output is built in it, and a Function
    output that views an internal tensor cannot take an in-place op (an inplace ReLU) afterwards.
    """
    if groups > 1:
        return F.conv2d(x, weight, bias, stride, 0, 1, groups)
    out_h, out_w = output_size(x.shape[2], stride), output_size(x.shape[3], stride)
    out = x.new_empty((x.shape[0], weight.shape[0], out_h, out_w))
    batched_pointwise(weight, strided_pixels(x, stride), bias, out=out.view(*out.shape[:2], -1))
    return out


def _pointwise_conv_backward(
        grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, grad_x: Optional[torch.Tensor],
        stride: int, groups: int,
        want_weight_grad: bool) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Add the 1×1 level's input gradient into ``grad_x`` (in place when given); weight gradient."""
    if groups > 1 or grad_x is None:
        grad_input, grad_weight, _ = torch.ops.aten.convolution_backward(
            grad, x, weight, None, [stride, stride], [0, 0], [1, 1], False, [0, 0], groups,
            [grad_x is not None, want_weight_grad, False])
        return (grad_x.add_(grad_input) if grad_x is not None else None), grad_weight
    grad_pixels = grad.view(*grad.shape[:2], -1)
    add_pointwise_input_grad(grad_x, weight, grad_pixels, stride)
    grad_weight = None
    if want_weight_grad:
        grad_weight = pointwise_weight_grad(grad_pixels, strided_pixels(x, stride)).view_as(weight)
    return grad_x, grad_weight


def _level_mask(choice: torch.Tensor, level: int, levels: int, out: torch.Tensor) -> torch.Tensor:
    """Write 1.0 where the element chose ``level`` ≥ 1 and 0.0 elsewhere into ``out``."""
    return out.copy_(choice) if levels == 2 else torch.eq(choice, level, out=out)


class SCCFunction(torch.autograd.Function):
    """SCC forward with a select/affine epilogue; backward from ``x`` and the int8 level choice only.

    Inputs share one dtype (the caller casts under autocast) except ``alpha``/``beta``, whose dtype
    the output follows by type promotion, like the reference.

    Backward, with g the output gradient, G_i = g on the elements that chose level i (0 elsewhere)
    and γ_i the level gains: ∂x = Σ_i convᵀ(G_i, γ_i·W_i). Level 0 is folded into the others with
    G_0 = g − Σ_{i≥1} G_i, i.e. ∂x = convᵀ(g, γ_0·W_0) + Σ_{i≥1} convᵀ(G_i, γ_i·W_i − γ_0·W_0), and
    likewise for its weight gradient and sums, so G_0 is never formed.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, alpha: torch.Tensor,
                beta: torch.Tensor, stride: int, dilation: int, groups: int,
                forced_positions: Optional[torch.Tensor],
                forced_levels: Optional[torch.Tensor]) -> torch.Tensor:
        levels = weight.shape[-1] // 2 + 1
        responses = [_pointwise_conv(x, sub_kernel(weight, 0), bias[0], stride, groups)]
        for level in range(1, levels):
            padding, level_dilation = level_geometry(level, dilation)
            responses.append(F.conv2d(x, sub_kernel(weight, level), bias[level], stride, padding,
                                      level_dilation, groups))
        choice = _first_argmax(responses)
        if forced_positions is not None:
            choice.view(-1)[forced_positions] = forced_levels.to(torch.int8)
        gain = level_gain(alpha)
        out = _affine_(responses[0], gain[0], beta[0])
        if levels > 1:
            mask = torch.empty_like(out)
        for level in range(1, levels):
            selected = _affine_(responses[level], gain[level], beta[level])
            # lerp by a 0/1 float mask returns either end exactly, and is ~4× faster than torch.where.
            out = torch.lerp(out, selected, _level_mask(choice, level, levels, out=mask), out=out)
        ctx.geometry = (stride, dilation, groups)
        ctx.save_for_backward(x, choice, weight, bias, alpha)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, choice, weight, bias, alpha = ctx.saved_tensors
        stride, dilation, groups = ctx.geometry
        levels = weight.shape[-1] // 2 + 1
        needs_x, needs_weight, needs_bias, needs_alpha, needs_beta = ctx.needs_input_grad[:5]
        want_weight_grad = needs_weight or needs_alpha
        acc_dtype = torch.promote_types(weight.dtype, torch.float32)
        grad_out = grad_out.to(x.dtype).contiguous()
        gain = level_gain(alpha.to(acc_dtype)).view(levels, -1, 1, 1, 1)
        centre_weight = sub_kernel(weight, 0)
        scaled_centre = centre_weight * gain[0].to(weight.dtype)
        grad_x = torch.zeros_like(x) if needs_x and levels == 1 else None
        # Per level: the weight gradient without its gain, Σ g (= ∂β_i) over the elements that chose it.
        level_weight_grads: List[Optional[torch.Tensor]] = [None] * levels
        grad_sums = grad_out.new_empty((levels, weight.shape[0]), dtype=acc_dtype)
        if levels > 1:
            buffer = torch.empty_like(grad_out)
        for level in range(1, levels):
            grad_level = _level_mask(choice, level, levels, out=buffer).mul_(grad_out)
            padding, level_dilation = level_geometry(level, dilation)
            folded_weight = sub_kernel(weight, level) * gain[level].to(weight.dtype)
            sub_kernel(folded_weight, 0).sub_(scaled_centre)
            grad_input, level_weight_grads[level], _ = torch.ops.aten.convolution_backward(
                grad_level, x, folded_weight, None, [stride, stride], [padding, padding],
                [level_dilation, level_dilation], False, [0, 0], groups,
                [needs_x, want_weight_grad, False])
            if needs_x:
                grad_x = grad_input if grad_x is None else grad_x.add_(grad_input)
            grad_sums[level] = grad_level.sum(dim=(0, 2, 3), dtype=acc_dtype)
        grad_x, full_weight_grad = _pointwise_conv_backward(grad_out, x, scaled_centre, grad_x,
                                                            stride, groups, want_weight_grad)
        grad_sums[0] = grad_out.sum(dim=(0, 2, 3), dtype=acc_dtype) - grad_sums[1:].sum(0)

        grad_weight = grad_alpha = grad_beta = None
        if want_weight_grad:
            level_weight_grads[0] = full_weight_grad.to(acc_dtype)
            for level in range(1, levels):
                level_weight_grads[level] = level_weight_grads[level].to(acc_dtype)
                level_weight_grads[0] -= sub_kernel(level_weight_grads[level], 0)
            grad_weight = torch.zeros_like(weight, dtype=acc_dtype)
            # Σ g·r_i over the elements choosing level i = ⟨W_i, ∂W_i⟩ + b_i·Σ g (per channel).
            response_sums = torch.empty_like(grad_sums)
            for level, level_grad in enumerate(level_weight_grads):
                sub_kernel(grad_weight, level).add_(level_grad * gain[level])
                level_weight = sub_kernel(weight, level).to(acc_dtype)
                response_sums[level] = ((level_weight * level_grad).sum(dim=(1, 2, 3))
                                        + bias[level].to(acc_dtype) * grad_sums[level])
            if needs_alpha:
                sech2 = 1 - torch.tanh(alpha.to(acc_dtype)) ** 2
                grad_alpha = (response_sums.view(alpha.shape) * sech2).to(alpha.dtype)
            grad_weight = grad_weight.to(weight.dtype) if needs_weight else None
        if needs_beta:
            grad_beta = grad_sums.view(alpha.shape).to(alpha.dtype)
        grad_bias = (grad_sums * gain.view(levels, -1)).to(bias.dtype) if needs_bias else None
        return (grad_x, grad_weight, grad_bias, grad_alpha, grad_beta, None, None, None, None, None)


@register_flop_handle('SCCFunction')
def scc_flops(inputs, outputs) -> int:
    """Every nested conv: B·C_out·H'·W'·(C_in/groups)·Σ_i (2i+1)², as SCCNet counts it."""
    _, in_per_group, kernel_size, _ = value_shape(inputs[1])
    taps = sum((2 * level + 1) ** 2 for level in range(kernel_size // 2 + 1))
    return math.prod(value_shape(outputs[0])) * in_per_group * taps


class SCC(nn.Module):
    """Subspace Combination Convolution (SCCNet): per-pixel choice among nested centred kernels.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: K, odd; levels 1×1, 3×3, …, K×K.
        stride: stride of every level.
        dilation: dilation of every level (level i is padded by i·dilation).
        groups: conv groups, dividing C_in and C_out.
        mask_prob: p, the probability that training forces each level (0 ≤ p ≤ 1/L).
        impl: ``'auto'``/``'fast'`` (:class:`SCCFunction`) or ``'reference'``.

    Shapes:
        x: B×C_in×H×W → B×C_out×(⌊(H−1)/s⌋+1)×(⌊(W−1)/s⌋+1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, groups: int = 1, mask_prob: float = 0.005,
                 impl: str = 'auto') -> None:
        super().__init__()
        for name, value in (('in_channels', in_channels), ('out_channels', out_channels),
                            ('stride', stride), ('dilation', dilation), ('groups', groups)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive integer, got {value!r}.')
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be an odd positive integer, got {kernel_size!r}.')
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'groups must divide in_channels ({in_channels}) and out_channels '
                             f'({out_channels}), got {groups}.')
        levels = kernel_size // 2 + 1
        if not 0 <= mask_prob <= 1 / levels:
            raise ValueError(f'mask_prob must lie in [0, 1/{levels}] for kernel_size {kernel_size}, '
                             f'got {mask_prob!r}.')
        if impl not in IMPLS:
            raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}.')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.groups = groups
        self.mask_prob = mask_prob
        self.impl = impl
        self.levels = levels
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kernel_size,
                                               kernel_size))
        self.bias = nn.Parameter(torch.empty(levels, out_channels))
        self.alpha = nn.Parameter(torch.empty(levels, out_channels, 1, 1))
        self.beta = nn.Parameter(torch.empty(levels, out_channels, 1, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Upstream's module initialiser: weight U(−0.2, 0.2); bias, α and β U(−2, 2)."""
        nn.init.uniform_(self.weight, -0.2, 0.2)
        for param in (self.bias, self.alpha, self.beta):
            nn.init.uniform_(param, -2.0, 2.0)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, dilation={self.dilation}, groups={self.groups}, '
                f'mask_prob={self.mask_prob}, impl={self.impl!r}')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'SCC expects B×{self.in_channels}×H×W input, got {tuple(x.shape)}.')
        forced = None
        if self.training and self.mask_prob > 0:
            out_numel = (x.shape[0] * self.out_channels * output_size(x.shape[2], self.stride)
                         * output_size(x.shape[3], self.stride))
            forced = draw_forced_levels(out_numel, self.levels, self.mask_prob, x.device)
        if self.impl == 'reference':
            return scc_reference(x, self.weight, self.bias, self.alpha, self.beta, self.stride,
                                 self.dilation, self.groups, forced)
        weight, bias = self.weight, self.bias
        device_type = x.device.type
        if torch.is_autocast_enabled(device_type):
            # Convs run in the autocast dtype, as F.conv2d would; the affine promotes like upstream.
            dtype = torch.get_autocast_dtype(device_type)
            x, weight, bias = x.to(dtype), weight.to(dtype), bias.to(dtype)
        with torch.autocast(device_type, enabled=False):
            return SCCFunction.apply(x, weight, bias, self.alpha, self.beta, self.stride,
                                     self.dilation, self.groups,
                                     *(forced if forced is not None else (None, None)))
