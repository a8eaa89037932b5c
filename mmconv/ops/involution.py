"""Involution: a K×K kernel generated per pixel from that pixel's features, shared by channel groups.

Li et al., "Involution: Inverting the Inherence of Convolution for Visual Recognition", CVPR 2021.
https://arxiv.org/abs/2103.06255 (official code: https://github.com/d-li14/involution)

For input ``x`` (B×C×H×W), stride ``s``, G = C / group_channels kernel groups:

* kernel generation: ``x̄ = AvgPool_s(x)`` (``x`` when s = 1), then
  ``kernel = conv2(ReLU(BN(conv1(x̄))))`` with conv1 a 1×1 C → C/r conv without bias and conv2 a
  1×1 C/r → K²·G conv with bias, viewed as B×G×K²×H'×W';
* aggregation: ``y[b, c, i, j] = Σ_{u,v} kernel[b, c // group_channels, u·K + v, i, j] ·
  x[b, c, s·i − p + d·u, s·j − p + d·v]`` with zero padding p = d·(K − 1)/2.

The aggregation has three implementations that agree to rounding: ``'reference'`` (unfold; it keeps
a K²-times-the-input tensor for backward), ``'memory'`` (a loop over the K² taps that saves only
``x`` and the kernel; any device and dtype) and ``'triton'`` (fused GPU kernels, see
:mod:`mmconv.ops.involution_triton`).
"""
import math
from functools import lru_cache
from importlib.util import find_spec
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .flop_handles import register_flop_handle, value_shape

__all__ = ['Involution', 'involution_aggregate', 'InvolutionTapLoopFunction', 'IMPLS']

IMPLS = ('auto', 'reference', 'memory', 'triton')


@lru_cache(maxsize=None)
def triton_available() -> bool:
    """Whether the ``triton`` package can be imported (checked once, without importing it)."""
    return find_spec('triton') is not None


def resolve_impl(impl: str, x: torch.Tensor) -> str:
    """The concrete implementation ``'auto'`` stands for on ``x``'s device."""
    if impl != 'auto':
        return impl
    return 'triton' if x.is_cuda and triton_available() else 'memory'


def check_impl(impl: str) -> None:
    """Raise a ValueError for an unknown ``impl`` or for ``'triton'`` without triton installed."""
    if impl not in IMPLS:
        raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}.')
    if impl == 'triton' and not triton_available():
        raise ValueError("impl='triton' needs the triton package; use 'auto', 'memory' or 'reference'.")


def aggregation_output_size(size: int, kernel_size: int, stride: int, dilation: int) -> int:
    """Output length of the zero-padded aggregation along one axis: ceil(size / stride) for odd K."""
    padding = dilation * (kernel_size - 1) // 2
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def _aggregate_reference(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int,
                         dilation: int) -> torch.Tensor:
    """Unfold every K×K neighbourhood, weight it by the kernel and sum (the official naive path)."""
    batch, channels = x.shape[:2]
    _, groups, taps, out_h, out_w = kernel.shape
    columns = F.unfold(x, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2,
                       stride=stride)
    columns = columns.view(batch, groups, channels // groups, taps, out_h, out_w)
    return (kernel.unsqueeze(2) * columns).sum(dim=3).view(batch, channels, out_h, out_w)


def tap_windows(kernel_size: int, stride: int, dilation: int, in_size: int,
                out_size: int) -> List[Optional[Tuple[slice, slice]]]:
    """Where each kernel offset along one axis lands inside the (unpadded) input.

    For offset index u the output position i reads input ``stride·i + dilation·u − padding``. Returns,
    per u, the output slice whose reads fall inside ``[0, in_size)`` and the matching (strided) input
    slice, or None when every read of that offset falls into the zero padding.
    """
    padding = dilation * (kernel_size - 1) // 2
    windows = []
    for u in range(kernel_size):
        offset = dilation * u - padding
        first = -(offset // stride) if offset < 0 else 0  # ceil(-offset / stride)
        stop = min(out_size, (in_size - 1 - offset) // stride + 1)
        if stop <= first:
            windows.append(None)
            continue
        start = stride * first + offset
        windows.append((slice(first, stop), slice(start, start + stride * (stop - first - 1) + 1, stride)))
    return windows


def _taps(kernel_size, stride, dilation, in_hw, out_hw):
    """(tap index, output rows, output cols, input rows, input cols) of every tap that reads the image."""
    rows = tap_windows(kernel_size, stride, dilation, in_hw[0], out_hw[0])
    cols = tap_windows(kernel_size, stride, dilation, in_hw[1], out_hw[1])
    for u, row in enumerate(rows):
        for v, col in enumerate(cols):
            if row is not None and col is not None:
                yield u * kernel_size + v, row[0], col[0], row[1], col[1]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for half-precision inputs, the input dtype otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class InvolutionTapLoopFunction(torch.autograd.Function):
    """Involution aggregation as a loop over the K² taps; saves only ``x`` and the kernel.

    Each tap is one broadcast multiply-add between a shifted (strided) slice of ``x`` and one kernel
    plane, restricted to the positions that read inside the image, so no padded copy and no K²-sized
    buffer is ever made. Accumulates in fp32 for fp16/bf16 inputs.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int,
                dilation: int) -> torch.Tensor:
        ctx.save_for_backward(x, kernel)
        ctx.geometry = (kernel_size, stride, dilation)
        batch, channels, height, width = x.shape
        _, groups, _, out_h, out_w = kernel.shape
        out_dtype = torch.promote_types(x.dtype, kernel.dtype)
        x_groups = x.reshape(batch, groups, channels // groups, height, width)
        out = x.new_zeros((batch, groups, channels // groups, out_h, out_w),
                          dtype=accumulation_dtype(out_dtype))
        for tap, out_rows, out_cols, in_rows, in_cols in _taps(kernel_size, stride, dilation,
                                                                (height, width), (out_h, out_w)):
            out[..., out_rows, out_cols].addcmul_(x_groups[..., in_rows, in_cols],
                                                  kernel[:, :, tap, None, out_rows, out_cols])
        return out.view(batch, channels, out_h, out_w).to(out_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, kernel = ctx.saved_tensors
        kernel_size, stride, dilation = ctx.geometry
        batch, channels, height, width = x.shape
        _, groups, taps, out_h, out_w = kernel.shape
        acc_dtype = accumulation_dtype(torch.promote_types(x.dtype, kernel.dtype))
        # Upcast once so every product below is formed in the accumulation precision.
        x_groups = x.to(acc_dtype).reshape(batch, groups, channels // groups, height, width)
        kernel_acc = kernel.to(acc_dtype)
        grad_groups = grad_out.to(acc_dtype).reshape(batch, groups, channels // groups, out_h, out_w)
        tap_list = list(_taps(kernel_size, stride, dilation, (height, width), (out_h, out_w)))

        grad_x = grad_kernel = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.zeros_like(x_groups)
            for tap, out_rows, out_cols, in_rows, in_cols in tap_list:
                grad_x[..., in_rows, in_cols].addcmul_(grad_groups[..., out_rows, out_cols],
                                                       kernel_acc[:, :, tap, None, out_rows, out_cols])
            grad_x = grad_x.view(batch, channels, height, width).to(x.dtype)
        if ctx.needs_input_grad[1]:
            grad_kernel = kernel_acc.new_zeros((batch, groups, taps, out_h, out_w))
            # One reused product buffer: the channel sum of a tap needs no fresh temporary.
            products = torch.empty_like(grad_groups)
            for tap, out_rows, out_cols, in_rows, in_cols in tap_list:
                window = products[..., :out_rows.stop - out_rows.start, :out_cols.stop - out_cols.start]
                torch.mul(grad_groups[..., out_rows, out_cols], x_groups[..., in_rows, in_cols], out=window)
                torch.sum(window, dim=2, out=grad_kernel[:, :, tap, out_rows, out_cols])
            grad_kernel = grad_kernel.to(kernel.dtype)
        return grad_x, grad_kernel, None, None, None


@register_flop_handle('InvolutionTapLoopFunction')
@register_flop_handle('InvolutionTritonFunction')
def aggregation_flops(inputs, outputs) -> int:
    """One MAC per output element and tap: B·C·K²·H'·W' (taps that read padding included)."""
    taps = value_shape(inputs[1])[2]
    return math.prod(value_shape(outputs[0])) * taps


def involution_aggregate(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int = 1,
                         dilation: int = 1, impl: str = 'auto') -> torch.Tensor:
    """Weight every K×K neighbourhood of ``x`` by a per-pixel kernel shared by each channel group.

    Args:
        x: input, B×C×H×W.
        kernel: per-pixel kernels, B×G×K²×H'×W' with G dividing C (channel c uses group
            c // (C / G); the tap index is u·K + v, row-major) and H' = ceil(H / stride).
        kernel_size: K, odd.
        stride: stride of the aggregation.
        dilation: spacing between taps; zero padding is dilation·(K − 1)/2.
        impl: ``'reference'`` (unfold), ``'memory'`` (tap loop), ``'triton'`` or ``'auto'``
            (triton for CUDA tensors when triton is installed, memory otherwise).

    Returns:
        B×C×H'×W', in the promoted dtype of ``x`` and ``kernel``.
    """
    check_impl(impl)
    if x.dim() != 4 or kernel.dim() != 5:
        raise ValueError(f'x must be B×C×H×W and kernel B×G×K²×H\'×W\', got {tuple(x.shape)} and '
                         f'{tuple(kernel.shape)}.')
    out_hw = tuple(aggregation_output_size(size, kernel_size, stride, dilation) for size in x.shape[2:])
    expected = (x.shape[0], kernel.shape[1], kernel_size ** 2) + out_hw
    if tuple(kernel.shape) != expected or x.shape[1] % kernel.shape[1]:
        raise ValueError(f'kernel must have shape B×G×K²×H\'×W\' = {expected} with G dividing '
                         f'{x.shape[1]} channels, got {tuple(kernel.shape)}.')
    impl = resolve_impl(impl, x)
    if impl == 'reference':
        return _aggregate_reference(x, kernel, kernel_size, stride, dilation)
    if impl == 'memory':
        return InvolutionTapLoopFunction.apply(x, kernel, kernel_size, stride, dilation)
    from .involution_triton import InvolutionTritonFunction
    return InvolutionTritonFunction.apply(x, kernel, kernel_size, stride, dilation)


class ConvNormAct(nn.Sequential):
    """1×1 conv, then optional norm and activation, under mmcv ``ConvModule``'s names.

    The submodules are ``conv``, ``bn`` (whatever the norm) and ``activate``, so that official RedNet
    checkpoints (keys ``conv1.conv.weight``, ``conv1.bn.running_mean``, ``conv2.conv.bias``…) load.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None,
                 act_layer: Optional[Callable[[], nn.Module]] = None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
        if norm_layer is not None:
            self.bn = norm_layer(out_channels)
        if act_layer is not None:
            self.activate = act_layer()


def check_positive_odd(name: str, value: int) -> None:
    """Raise a ValueError unless ``value`` is a positive odd integer."""
    if not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f'{name} must be a positive odd integer, got {value!r}.')


def check_positive(name: str, value: int) -> None:
    """Raise a ValueError unless ``value`` is a positive integer."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive integer, got {value!r}.')


class Involution(nn.Module):
    """Involution layer (C → C channels) with a dynamic per-pixel kernel, as in RedNet.

    Args:
        channels: input and output channels; a multiple of ``group_channels``.
        kernel_size: K, odd (7 in RedNet blocks, 3 in its classification stem).
        stride: stride of the aggregation; the kernel generator then sees ``AvgPool(stride)(x)``,
            pooled in ceil mode without counting padding so that odd sizes work (the official
            floor-mode pool breaks there) and even sizes give the official result.
        reduction_ratio: r, the generator's hidden width is ``channels // r``.
        group_channels: channels sharing one kernel; G = channels / group_channels kernels per pixel.
        dilation: spacing between taps (zero padding dilation·(K − 1)/2 keeps ceil(H / stride)).
        norm_layer: norm after the first 1×1 conv (called with its width), or None.
        act_layer: activation after that norm (called without arguments), or None.
        impl: aggregation implementation, see :func:`involution_aggregate`.
        reduce_bias: whether the first 1×1 conv has a bias (False in involution; C-volution's
            released code has one).

    Shape:
        x: B×C×H×W → B×C×ceil(H/stride)×ceil(W/stride).
    """

    def __init__(self, channels: int, kernel_size: int = 7, stride: int = 1, reduction_ratio: int = 4,
                 group_channels: int = 16, dilation: int = 1,
                 norm_layer: Optional[Callable[[int], nn.Module]] = nn.BatchNorm2d,
                 act_layer: Optional[Callable[[], nn.Module]] = nn.ReLU, impl: str = 'auto',
                 reduce_bias: bool = False):
        super().__init__()
        check_positive('channels', channels)
        check_positive_odd('kernel_size', kernel_size)
        check_positive('stride', stride)
        check_positive('reduction_ratio', reduction_ratio)
        check_positive('group_channels', group_channels)
        check_positive('dilation', dilation)
        if channels % group_channels:
            raise ValueError(f'channels must be a multiple of group_channels={group_channels}, '
                             f'got {channels}.')
        if channels < reduction_ratio:
            raise ValueError(f'reduction_ratio must be at most channels={channels}, got {reduction_ratio}.')
        check_impl(impl)
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.group_channels = group_channels
        self.groups = channels // group_channels
        self.impl = impl
        hidden = channels // reduction_ratio
        self.avgpool = (nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                        if stride > 1 else nn.Identity())
        self.conv1 = ConvNormAct(channels, hidden, reduce_bias, norm_layer, act_layer)
        self.conv2 = ConvNormAct(hidden, kernel_size ** 2 * self.groups, bias=True)

    def generate_kernel(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel kernels B×G×K²×H'×W' generated from (pooled) ``x``."""
        weight = self.conv2(self.conv1(self.avgpool(x)))
        return weight.view(x.shape[0], self.groups, self.kernel_size ** 2, *weight.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return involution_aggregate(x, self.generate_kernel(x), self.kernel_size, self.stride,
                                    self.dilation, self.impl)

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, '
                f'dilation={self.dilation}, group_channels={self.group_channels}, impl={self.impl!r}')
