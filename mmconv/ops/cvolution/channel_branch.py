"""C-volution's channel branch ``GAP(conv2d(x, weight, padding=K//2, groups))`` as a registered op.

Both steps are linear, so the spatial mean of the conv equals the same grouped conv applied to one
K×K map per channel: ``rect[u, v] = Σ x`` over the inputs that tap (u, v) reads, which is
``Rᵀ · x · C`` with the 0/1 window matrices R (H×K) and C (W×K) of :func:`window_indicator`. That
is one pass over ``x`` forward and one over its gradient backward, instead of a grouped conv (slow on
CPU at 4 channels per group) and its backward, and only the B×C×K×K sums are kept for backward.
Sums and the small conv run in fp32 (or fp64); the result agrees with conv-then-pool to rounding.

``mmconv::channel_branch_mean`` returns the sums beside the mean so that its autograd can keep them;
its backward ``mmconv::channel_branch_mean_backward`` is not differentiable, and differentiating it
raises (build the layer with ``impl='reference'`` for second derivatives).
"""
from typing import Tuple

import torch
from torch import Tensor

from ..flop_handles import register_op_flop_handle, value_shape
from ..precision import accumulation_dtype
from ..registration import NAMESPACE, refuse_second_order

__all__ = ['channel_branch_mean', 'window_indicator']


def window_indicator(size: int, kernel_size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """size×K 0/1 matrix: entry (i, u) is 1 when a same-padded K-tap conv reads input i for tap u.

    Output position o reads input o + u − K//2; over all outputs that covers the inputs
    ``u − K//2 ≤ i < size + u − K//2`` (the rest are zero padding).
    """
    inputs = torch.arange(size, device=device).unsqueeze(1)
    shifts = torch.arange(kernel_size, device=device).unsqueeze(0) - kernel_size // 2
    return ((inputs >= shifts) & (inputs < size + shifts)).to(dtype)


def _sum_dtype(x: Tensor, weight: Tensor) -> torch.dtype:
    return accumulation_dtype(torch.promote_types(x.dtype, weight.dtype))


@torch.library.custom_op(f'{NAMESPACE}::channel_branch_mean', mutates_args=())
def channel_branch_mean_with_sums(x: Tensor, weight: Tensor, groups: int) -> Tuple[Tensor, Tensor]:
    """The mean (B×C_out×1×1) and the per-tap window means ``rect`` (B×C×K×K) it was computed from."""
    height, width = x.shape[2:]
    kernel_size = weight.shape[-1]
    sum_dtype = _sum_dtype(x, weight)
    rows = window_indicator(height, kernel_size, x.dtype, x.device)
    cols = window_indicator(width, kernel_size, x.dtype, x.device)
    column_sums = torch.matmul(x, cols).to(sum_dtype)  # B×C×H×K
    rect = torch.matmul(rows.t().to(sum_dtype), column_sums).div_(height * width)
    mean = torch.conv2d(rect, weight.to(sum_dtype), None, 1, 0, 1, groups)
    return mean.to(torch.promote_types(x.dtype, weight.dtype)), rect


@channel_branch_mean_with_sums.register_fake
def _(x, weight, groups):
    kernel_size = weight.shape[-1]
    return (x.new_empty((x.shape[0], weight.shape[0], 1, 1), dtype=torch.promote_types(x.dtype, weight.dtype)),
            x.new_empty((x.shape[0], x.shape[1], kernel_size, kernel_size), dtype=_sum_dtype(x, weight)))


@torch.library.custom_op(f'{NAMESPACE}::channel_branch_mean_backward', mutates_args=())
def channel_branch_mean_backward(grad_mean: Tensor, rect: Tensor, weight: Tensor, groups: int, height: int, width: int,
                                 input_dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    """∂x (B×C×H×W in ``input_dtype``) and ∂weight of the mean, from the saved window means."""
    kernel_size = weight.shape[-1]
    grad_rect, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad_mean.to(rect.dtype), rect, weight.to(rect.dtype), None, [1, 1], [0, 0], [1, 1], False, [0, 0], groups,
        [True, True, False])
    rows = window_indicator(height, kernel_size, rect.dtype, rect.device)
    cols = window_indicator(width, kernel_size, input_dtype, rect.device)
    # ∂x[i, j] = Σ_{u,v} R[i, u] · ∂rect[u, v] · C[j, v] / (H·W): one pass over the B×C×H×W output.
    row_grads = torch.matmul(rows, grad_rect.div_(height * width)).to(input_dtype)
    return torch.matmul(row_grads, cols.t()), grad_weight.to(weight.dtype)


@channel_branch_mean_backward.register_fake
def _(grad_mean, rect, weight, groups, height, width, input_dtype):
    return (rect.new_empty((rect.shape[0], rect.shape[1], height, width), dtype=input_dtype), torch.empty_like(weight))


def _setup_context(ctx, inputs, output) -> None:
    x, weight, ctx.groups = inputs
    ctx.height, ctx.width, ctx.input_dtype = x.shape[2], x.shape[3], x.dtype
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1], weight)


def _backward(ctx, grad_mean, _grad_rect):
    rect, weight = ctx.saved_tensors
    grad_x, grad_weight = channel_branch_mean_backward(grad_mean, rect, weight, ctx.groups, ctx.height, ctx.width,
                                                       ctx.input_dtype)
    return grad_x, grad_weight, None


channel_branch_mean_with_sums.register_autograd(_backward, setup_context=_setup_context)
refuse_second_order(channel_branch_mean_backward, 'C-volution')


def channel_branch_mean(x: Tensor, weight: Tensor, groups: int) -> Tensor:
    """``GAP(conv2d(x, weight, padding=K//2, groups=groups))``: B×C×H×W → B×C_out×1×1."""
    return channel_branch_mean_with_sums(x, weight, groups)[0]


@register_op_flop_handle(f'{NAMESPACE}::channel_branch_mean')
def channel_branch_flops(inputs, outputs) -> int:
    """Counted as the grouped conv and the pool it equals (the published CedNet budgets do):
    B·H·W·C_out·(C_in/groups)·K² + B·C_in·H·W."""
    batch, channels, height, width = value_shape(inputs[0])
    out_channels, in_per_group, kernel_size, _ = value_shape(inputs[1])
    pixels = batch * height * width
    return pixels * out_channels * in_per_group * kernel_size**2 + pixels * channels
