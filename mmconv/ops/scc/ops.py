"""SCC's fast path as registered ops: ``mmconv::scc_forward`` (output and the int8 level choice) and
``mmconv::scc_backward`` (every gradient from ``x`` and that choice), kernels in :mod:`.kernels`.
On CUDA with Triton installed the forward is :mod:`.triton_kernels`' one-pass kernel; the backward
keeps the torch kernels (cuDNN convs per level, masked by the saved choice)."""
import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..flop_handles import register_op_flop_handle, value_shape
from ..registration import NAMESPACE, refuse_second_order
from ..triton_support import TRITON_DTYPES, use_triton
from .kernels import layout_of, scc_backward_kernel, scc_forward_kernel
from .reference import output_size

__all__ = ['scc_forward']


@torch.library.custom_op(f'{NAMESPACE}::scc_forward', mutates_args=())
def scc_forward(x: Tensor, weight: Tensor, bias: Tensor, alpha: Tensor, beta: Tensor, stride: int, dilation: int,
                groups: int, forced: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """SCC's output and the level (int8) each element chose; ``forced`` (int8, −1 = none) overrides."""
    if use_triton(x, weight, bias, dtypes=TRITON_DTYPES) and x.dtype == weight.dtype == bias.dtype:
        from .triton_kernels import triton_scc_forward  # every level in one pass over the taps
        return triton_scc_forward(x, weight, bias, alpha, beta, stride, dilation, groups, forced)
    return scc_forward_kernel(x, weight, bias, alpha, beta, stride, dilation, groups, forced)


@scc_forward.register_fake
def _(x, weight, bias, alpha, beta, stride, dilation, groups, forced):
    shape = (x.shape[0], weight.shape[0], output_size(x.shape[2], stride), output_size(x.shape[3], stride))
    layout = layout_of(x)  # the kernel's outputs follow the input's layout, as conv2d's do
    dtype = torch.promote_types(torch.promote_types(x.dtype, alpha.dtype), beta.dtype)
    return (torch.empty(shape, dtype=dtype, device=x.device, memory_format=layout),
            torch.empty(shape, dtype=torch.int8, device=x.device, memory_format=layout))


@torch.library.custom_op(f'{NAMESPACE}::scc_backward', mutates_args=())
def scc_backward(grad_out: Tensor, x: Tensor, choice: Tensor, weight: Tensor, bias: Tensor, alpha: Tensor, stride: int,
                 dilation: int, groups: int, needs_x: bool) -> List[Tensor]:
    """Gradients of x (empty unless ``needs_x``), weight, bias, alpha and beta."""
    return list(scc_backward_kernel(grad_out, x, choice, weight, bias, alpha, stride, dilation, groups, needs_x))


@scc_backward.register_fake
def _(grad_out, x, choice, weight, bias, alpha, stride, dilation, groups, needs_x):
    grad_x = (
        torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=layout_of(x)) if needs_x else x.new_empty(0))
    return [grad_x, torch.empty_like(weight), torch.empty_like(bias), torch.empty_like(alpha), torch.empty_like(alpha)]


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, alpha, _beta, ctx.stride, ctx.dilation, ctx.groups, _forced = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(x, output[1], weight, bias, alpha)


def _backward(ctx, grad_out, _grad_choice):
    x, choice, weight, bias, alpha = ctx.saved_tensors
    grad_x, *param_grads = scc_backward(grad_out, x, choice, weight, bias, alpha, ctx.stride, ctx.dilation, ctx.groups,
                                        ctx.needs_input_grad[0])
    return (grad_x if ctx.needs_input_grad[0] else None, *param_grads, None, None, None, None)


scc_forward.register_autograd(_backward, setup_context=_setup_context)
refuse_second_order(scc_backward, 'SCC')


@register_op_flop_handle(f'{NAMESPACE}::scc_forward')
def scc_flops(inputs, outputs) -> int:
    """Every nested conv: B·C_out·H'·W'·(C_in/groups)·Σ_i (2i+1)², as SCCNet counts it."""
    _, in_per_group, kernel_size, _ = value_shape(inputs[1])
    taps = sum((2 * level + 1)**2 for level in range(kernel_size // 2 + 1))
    return math.prod(value_shape(outputs[0])) * in_per_group * taps
