"""SCC's kernels behind the registered ops (torch ops, so any device): the level convs with a fused
select/affine epilogue, and a backward from ``x`` and the int8 level choice only.

Inputs share one dtype (the module casts under autocast) except ``alpha``/``beta``, whose dtype
the output follows by type promotion, like the reference.

Backward, with g the output gradient, G_i = g on the elements that chose level i (0 elsewhere)
and γ_i the level gains: ∂x = Σ_i convᵀ(G_i, γ_i·W_i). Level 0 is folded into the others with
G_0 = g − Σ_{i≥1} G_i, i.e. ∂x = convᵀ(g, γ_0·W_0) + Σ_{i≥1} convᵀ(G_i, γ_i·W_i − γ_0·W_0), and
likewise for its weight gradient and sums, so G_0 is never formed.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..pointwise import add_pointwise_input_grad, batched_pointwise, pointwise_weight_grad, strided_pixels
from ..precision import accumulation_dtype
from .reference import level_gain, level_geometry, output_size, sub_kernel

__all__ = ['layout_of', 'scc_backward_kernel', 'scc_forward_kernel']


def layout_of(x: torch.Tensor) -> torch.memory_format:
    """channels_last for an input laid out so (and not also contiguous), else contiguous_format.

    The kernels' outputs and ∂x are laid out like this (as conv2d's follow its input), and the fake
    kernels say so from the same strides.
    """
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


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

    The result is a tensor of its own: SCC's output is built in it in place. Grouped convs and
    inputs not in contiguous layout (channels_last) take the library conv, which keeps their layout.
    """
    if groups > 1 or not x.is_contiguous():
        return F.conv2d(x, weight, bias, stride, 0, 1, groups)
    out_h, out_w = output_size(x.shape[2], stride), output_size(x.shape[3], stride)
    out = x.new_empty((x.shape[0], weight.shape[0], out_h, out_w))
    batched_pointwise(weight, strided_pixels(x, stride), bias, out=out.flatten(2))
    return out


def _pointwise_conv_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, grad_x: Optional[torch.Tensor],
                             stride: int, groups: int) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
    """Add the 1×1 level's input gradient into ``grad_x`` (in place when given); weight gradient.

    The batched-matmul path writes through a flattened view of ``grad_x``, so it needs contiguous
    tensors (a channels_last ``grad_x`` would be flattened into a copy and the addition lost).
    """
    matmul_layout = grad_x is not None and all(t.is_contiguous() for t in (x, grad_x, grad))
    if groups > 1 or not matmul_layout:
        grad_input, grad_weight, _ = torch.ops.aten.convolution_backward(grad, x, weight, None, [stride, stride],
                                                                         [0, 0], [1, 1], False, [0, 0], groups,
                                                                         [grad_x is not None, True, False])
        return (grad_x.add_(grad_input) if grad_x is not None else None), grad_weight
    grad_pixels = grad.flatten(2)
    add_pointwise_input_grad(grad_x, weight, grad_pixels, stride)
    return grad_x, pointwise_weight_grad(grad_pixels, strided_pixels(x, stride)).view_as(weight)


def _level_mask(choice: torch.Tensor, level: int, levels: int, out: torch.Tensor) -> torch.Tensor:
    """Write 1.0 where the element chose ``level`` ≥ 1 and 0.0 elsewhere into ``out``."""
    return out.copy_(choice) if levels == 2 else torch.eq(choice, level, out=out)


def scc_forward_kernel(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, alpha: torch.Tensor,
                       beta: torch.Tensor, stride: int, dilation: int, groups: int,
                       forced: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """The output and the int8 level each element chose (``forced`` where that is ≥ 0)."""
    levels = weight.shape[-1] // 2 + 1
    responses = [_pointwise_conv(x, sub_kernel(weight, 0), bias[0], stride, groups)]
    for level in range(1, levels):
        padding, level_dilation = level_geometry(level, dilation)
        responses.append(F.conv2d(x, sub_kernel(weight, level), bias[level], stride, padding, level_dilation, groups))
    choice = _first_argmax(responses)
    if forced is not None:
        choice = torch.where(forced >= 0, forced, choice)
    gain = level_gain(alpha)
    out = _affine_(responses[0], gain[0], beta[0])
    if levels > 1:
        mask = torch.empty_like(out)
    for level in range(1, levels):
        selected = _affine_(responses[level], gain[level], beta[level])
        # lerp by a 0/1 float mask returns either end exactly, and is ~4× faster than torch.where.
        out = torch.lerp(out, selected, _level_mask(choice, level, levels, out=mask), out=out)
    # The layout the fake kernel promises (conv backends may pick another): no copy when it matches.
    layout = layout_of(x)
    return out.contiguous(memory_format=layout), choice.contiguous(memory_format=layout)


def scc_backward_kernel(grad_out: torch.Tensor, x: torch.Tensor, choice: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor, alpha: torch.Tensor, stride: int, dilation: int, groups: int,
                        needs_x: bool) -> Tuple[torch.Tensor, ...]:
    """Gradients of x (an empty tensor unless ``needs_x``), weight, bias, alpha and beta."""
    levels = weight.shape[-1] // 2 + 1
    acc_dtype = accumulation_dtype(weight.dtype)
    layout = layout_of(x)
    grad_out = grad_out.to(x.dtype).contiguous(memory_format=layout)
    choice = choice.contiguous(memory_format=layout)
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
            grad_level, x, folded_weight, None, [stride, stride], [padding, padding], [level_dilation, level_dilation],
            False, [0, 0], groups, [needs_x, True, False])
        if needs_x:
            grad_x = grad_input if grad_x is None else grad_x.add_(grad_input)
        grad_sums[level] = grad_level.sum(dim=(0, 2, 3), dtype=acc_dtype)
    grad_x, full_weight_grad = _pointwise_conv_backward(grad_out, x, scaled_centre, grad_x, stride, groups)
    grad_sums[0] = grad_out.sum(dim=(0, 2, 3), dtype=acc_dtype) - grad_sums[1:].sum(0)

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
        response_sums[level] = ((level_weight * level_grad).sum(dim=(1, 2, 3)) +
                                bias[level].to(acc_dtype) * grad_sums[level])
    sech2 = 1 - torch.tanh(alpha.to(acc_dtype))**2
    grad_alpha = (response_sums.view(alpha.shape) * sech2).to(alpha.dtype)
    grad_weight = grad_weight.to(weight.dtype)
    grad_beta = grad_sums.view(alpha.shape).to(alpha.dtype)
    grad_bias = (grad_sums * gain.view(levels, -1)).to(bias.dtype)
    if grad_x is None:  # not asked for: an empty tensor stands for it (op outputs are tensors)
        grad_x = x.new_empty(0)
    else:
        grad_x = grad_x.contiguous(memory_format=layout)
    return grad_x, grad_weight, grad_bias, grad_alpha, grad_beta
