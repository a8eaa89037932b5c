"""The involution aggregation and its two gradients as registered ops (``mmconv::involution_*``).

The aggregation is bilinear in ``x`` and the kernel, so its gradients are bilinear too, and each of
the three ops differentiates into the other two:

* ``aggregate(x, k)``: ∂x = ``grad_input(g, k)``, ∂k = ``grad_kernel(g, x)``;
* ``grad_input(g, k)`` (``Aₖᵀ g``), given the cotangent v of ∂x: ∂g = ``aggregate(v, k)``,
  ∂k = ``grad_kernel(g, v)``;
* ``grad_kernel(g, x)``, given the cotangent w of ∂k: ∂g = ``aggregate(x, w)``, ∂x = ``grad_input(g, w)``.

So derivatives of any order are exact (checked by ``gradgradcheck``). Each op has a kernel for every
device (the tap loop of :mod:`.tap_loop`, which runs on any device through torch ops) and, for CUDA
tensors with Triton installed, the fused Triton kernels of :mod:`.triton_kernels`; the fake kernels
give the output shapes for symbolic sizes.
"""
import math

import torch
from torch import Tensor

from ..flop_handles import register_op_flop_handle, value_shape
from ..registration import NAMESPACE
from ..triton_support import use_triton
from .tap_loop import tap_loop_aggregate, tap_loop_grad_input, tap_loop_grad_kernel

__all__ = ['aggregate', 'grad_input', 'grad_kernel']


@torch.library.custom_op(f'{NAMESPACE}::involution_aggregate', mutates_args=())
def aggregate(x: Tensor, kernel: Tensor, kernel_size: int, stride: int, dilation: int) -> Tensor:
    """``y[b, c, i, j] = Σ_t kernel[b, g(c), t, i, j] · x[b, c, tap t of (i, j)]`` (see the package)."""
    if use_triton(x, kernel):
        from .triton_kernels import triton_aggregate
        return triton_aggregate(x, kernel, kernel_size, stride, dilation)
    return tap_loop_aggregate(x, kernel, kernel_size, stride, dilation)


@aggregate.register_fake
def _(x, kernel, kernel_size, stride, dilation):
    return x.new_empty((x.shape[0], x.shape[1], kernel.shape[3], kernel.shape[4]),
                       dtype=torch.promote_types(x.dtype, kernel.dtype))


@torch.library.custom_op(f'{NAMESPACE}::involution_grad_input', mutates_args=())
def grad_input(grad_out: Tensor, kernel: Tensor, kernel_size: int, stride: int, dilation: int, height: int,
               width: int) -> Tensor:
    """The aggregation's gradient with respect to ``x`` (H×W) for ``grad_out``."""
    if use_triton(grad_out, kernel):
        from .triton_kernels import triton_grad_input
        return triton_grad_input(grad_out, kernel, kernel_size, stride, dilation, height, width)
    return tap_loop_grad_input(grad_out, kernel, kernel_size, stride, dilation, height, width)


@grad_input.register_fake
def _(grad_out, kernel, kernel_size, stride, dilation, height, width):
    return grad_out.new_empty((grad_out.shape[0], grad_out.shape[1], height, width),
                              dtype=torch.promote_types(grad_out.dtype, kernel.dtype))


@torch.library.custom_op(f'{NAMESPACE}::involution_grad_kernel', mutates_args=())
def grad_kernel(grad_out: Tensor, x: Tensor, kernel_size: int, stride: int, dilation: int, groups: int) -> Tensor:
    """The aggregation's gradient with respect to the kernel (``groups`` groups) for ``grad_out``."""
    if use_triton(grad_out, x):
        from .triton_kernels import triton_grad_kernel
        return triton_grad_kernel(grad_out, x, kernel_size, stride, dilation, groups)
    return tap_loop_grad_kernel(grad_out, x, kernel_size, stride, dilation, groups)


@grad_kernel.register_fake
def _(grad_out, x, kernel_size, stride, dilation, groups):
    return grad_out.new_empty((grad_out.shape[0], groups, kernel_size**2, *grad_out.shape[2:]),
                              dtype=torch.promote_types(grad_out.dtype, x.dtype))


def _cast(grad, like: Tensor):
    return None if grad is None else grad.to(like.dtype)


def _save_pair(ctx, inputs, output) -> None:
    first, second, ctx.kernel_size, ctx.stride, ctx.dilation = inputs[:5]
    ctx.save_for_backward(first, second)


def _aggregate_backward(ctx, grad):
    x, kernel = ctx.saved_tensors
    geometry = (ctx.kernel_size, ctx.stride, ctx.dilation)
    grad_x = grad_k = None
    if ctx.needs_input_grad[0]:
        grad_x = _cast(grad_input(grad, kernel, *geometry, x.shape[2], x.shape[3]), x)
    if ctx.needs_input_grad[1]:
        grad_k = _cast(grad_kernel(grad, x, *geometry, kernel.shape[1]), kernel)
    return grad_x, grad_k, None, None, None


def _grad_input_backward(ctx, cotangent):
    grad_out, kernel = ctx.saved_tensors
    geometry = (ctx.kernel_size, ctx.stride, ctx.dilation)
    d_grad = d_kernel = None
    if ctx.needs_input_grad[0]:
        d_grad = _cast(aggregate(cotangent, kernel, *geometry), grad_out)
    if ctx.needs_input_grad[1]:
        d_kernel = _cast(grad_kernel(grad_out, cotangent, *geometry, kernel.shape[1]), kernel)
    return d_grad, d_kernel, None, None, None, None, None


def _grad_kernel_backward(ctx, cotangent):
    grad_out, x = ctx.saved_tensors
    geometry = (ctx.kernel_size, ctx.stride, ctx.dilation)
    d_grad = d_x = None
    if ctx.needs_input_grad[0]:
        d_grad = _cast(aggregate(x, cotangent, *geometry), grad_out)
    if ctx.needs_input_grad[1]:
        d_x = _cast(grad_input(grad_out, cotangent, *geometry, x.shape[2], x.shape[3]), x)
    return d_grad, d_x, None, None, None, None


aggregate.register_autograd(_aggregate_backward, setup_context=_save_pair)
grad_input.register_autograd(_grad_input_backward, setup_context=_save_pair)
grad_kernel.register_autograd(_grad_kernel_backward, setup_context=_save_pair)


@register_op_flop_handle(f'{NAMESPACE}::involution_aggregate')
def aggregation_flops(inputs, outputs) -> int:
    """One MAC per output element and tap: B·C·K²·H'·W' (taps that read padding included)."""
    return math.prod(value_shape(outputs[0])) * value_shape(inputs[1])[2]
