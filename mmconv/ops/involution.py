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
from typing import Callable, List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .cpu_chunks import chunks_of, for_each_chunk
from .flop_handles import register_flop_handle, value_shape
from .pointwise import pointwise_conv
from .validation import check_positive, check_positive_odd

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


class TapPlan(NamedTuple):
    """How the tap loop walks the image.

    Attributes:
        in_shape: spatial view of ``x`` the slices index: (H·W,) for stride 1, (H, W) otherwise.
        out_shape: spatial view of the output and the kernel: (H·W,) or (H', W').
        taps: (tap index, output index, input index) of every tap that reads inside the image; the
            indices are tuples of slices over the spatial view. The centre tap comes first: it reads
            inside the image for every output.
        centre_reads_all: whether the centre tap also reads every input (stride 1).
        kernel_grid: (K, K, H', W'), to view a kernel's taps and pixels two-dimensionally.
        wrapped_columns: for stride 1, (v, output columns) whose flattened reads for the taps in
            kernel column v wrap around to a neighbouring row; empty otherwise.
    """
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]
    taps: List[Tuple[int, Tuple[slice, ...], Tuple[slice, ...]]]
    centre_reads_all: bool
    kernel_grid: Tuple[int, int, int, int]
    wrapped_columns: List[Tuple[int, slice]]


def plan_taps(kernel_size: int, stride: int, dilation: int, in_hw: Tuple[int, int],
              out_hw: Tuple[int, int]) -> TapPlan:
    """Slices of every tap, flattened for stride 1 and two-dimensional otherwise.

    With stride 1 a tap (u, v) shifts the flattened image by a constant ``a·W + b`` (a, b the row
    and column offsets), so it is one long contiguous slice instead of H short rows. Its reads at
    the ``wrapped_columns`` of column v land on a neighbouring row; the caller zeroes the kernel
    there, which leaves the result unchanged since those taps read zero padding anyway.
    """
    rows = tap_windows(kernel_size, stride, dilation, in_hw[0], out_hw[0])
    cols = tap_windows(kernel_size, stride, dilation, in_hw[1], out_hw[1])
    padding = dilation * (kernel_size - 1) // 2
    height, width = in_hw
    taps = []
    for u, row in enumerate(rows):
        for v, col in enumerate(cols):
            if row is None or col is None:
                continue
            if stride > 1:
                taps.append((u * kernel_size + v, (row[0], col[0]), (row[1], col[1])))
                continue
            shift = (dilation * u - padding) * width + dilation * v - padding
            start = max(row[0].start * width, -shift)
            stop = min(row[0].stop * width, height * width - shift)
            taps.append((u * kernel_size + v, (slice(start, stop),), (slice(start + shift, stop + shift),)))
    taps.sort(key=lambda tap: tap[0] != kernel_size ** 2 // 2)  # stable: the centre first
    grid = (kernel_size, kernel_size, *out_hw)
    if stride > 1:
        return TapPlan(in_hw, out_hw, taps, False, grid, [])
    wrapped = []
    for v, col in enumerate(cols):
        if col is not None:
            wrapped += [(v, columns) for columns in (slice(0, col[0].start), slice(col[0].stop, width))
                        if columns.stop > columns.start]
    return TapPlan((height * width,), (height * width,), taps, True, grid, wrapped)


def zero_wrapped_columns(kernel: torch.Tensor, plan: TapPlan) -> torch.Tensor:
    """Zero, in place, the entries of a B×G×K²×H'×W' kernel whose flattened reads wrap around."""
    grid = kernel.view(*kernel.shape[:2], *plan.kernel_grid)
    for v, columns in plan.wrapped_columns:
        grid[:, :, :, v, :, columns] = 0
    return kernel


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for half-precision inputs, the input dtype otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _kernel_planes(kernel: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Per tap, the N×1×spatial plane of an N×K²×spatial kernel, broadcastable over a group's channels.

    Made once per chunk: indexing these is half the Python cost of indexing the kernel per tap.
    """
    return kernel.unsqueeze(2).unbind(1)


def _assign_product(dest: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``dest = a · b`` with the product formed in ``dest``'s precision."""
    if dest.dtype == a.dtype == b.dtype:
        torch.mul(a, b, out=dest)
    else:
        dest.copy_(a).mul_(b)


def gather_taps(out: torch.Tensor, x: torch.Tensor, kernel: torch.Tensor, plan: TapPlan) -> None:
    """Forward: ``out[o] = Σ_taps x[tap input] · kernel[tap][o]`` (views N×gc×spatial).

    ``out`` need not be initialised: the centre tap, first in the plan, writes every output. The
    other taps go to one ``_foreach_addcmul_`` call, which runs them in order in C++ without holding
    the GIL, so the workers of :func:`for_each_chunk` do not wait for each other's Python.
    """
    planes = _kernel_planes(kernel)
    (centre, out_index, in_index), *others = plan.taps
    _assign_product(out, x[(..., *in_index)], planes[centre][(..., *out_index)])
    if others:  # on an image smaller than the kernel, the centre may be the only tap inside
        torch._foreach_addcmul_([out[(..., *o)] for _, o, _ in others],
                                [x[(..., *i)] for _, _, i in others],
                                [planes[tap][(..., *o)] for tap, o, _ in others])


def scatter_taps(grad_x: torch.Tensor, grad_out: torch.Tensor, kernel: torch.Tensor, plan: TapPlan) -> None:
    """grad_x: ``grad_x[tap input] += grad_out[o] · kernel[tap][o]`` for every tap.

    ``grad_x`` need not be initialised when ``plan.centre_reads_all``; it must be zero otherwise.
    """
    taps, planes = plan.taps, _kernel_planes(kernel)
    if plan.centre_reads_all:
        (centre, out_index, in_index), *taps = taps
        _assign_product(grad_x[(..., *in_index)], grad_out[(..., *out_index)],
                        planes[centre][(..., *out_index)])
    if taps:
        torch._foreach_addcmul_([grad_x[(..., *i)] for _, _, i in taps],
                                [grad_out[(..., *o)] for _, o, _ in taps],
                                [planes[tap][(..., *o)] for tap, o, _ in taps])


def zero_outside_taps(grad_kernel: torch.Tensor, plan: TapPlan) -> torch.Tensor:
    """Zero, in place, the entries of an N×K²×spatial gradient that no tap of ``plan`` writes.

    Those are the outputs whose read falls into the padding, a few border rows and columns per
    tap (whole planes for taps that read only padding): far less than zero-filling the tensor.
    """
    planes = grad_kernel.unbind(1)
    windows = {tap: out_index for tap, out_index, _ in plan.taps}
    outside = []
    for tap, plane in enumerate(planes):
        if tap not in windows:
            outside.append(plane)
            continue
        for dim, window in enumerate(windows[tap], start=1):
            lead = (slice(None),) * dim
            outside += [plane[(*lead, slice(0, window.start))], plane[(*lead, slice(window.stop, None))]]
    if outside:
        torch._foreach_zero_(outside)
    return grad_kernel


def correlate_taps(grad_kernel: torch.Tensor, grad_out: torch.Tensor, x: torch.Tensor,
                   plan: TapPlan) -> None:
    """grad_kernel: ``grad_kernel[tap][o] = Σ_c grad_out[c, o] · x[c, tap input]`` for every tap.

    One product buffer is reused by every tap, so the channel sums make no fresh temporaries.
    """
    products, planes = torch.empty_like(grad_out), grad_kernel.unbind(1)
    for tap, out_index, in_index in plan.taps:
        window = products[(..., *(slice(0, index.stop - index.start) for index in out_index))]
        torch.mul(grad_out[(..., *out_index)], x[(..., *in_index)], out=window)
        torch.sum(window, dim=1, out=planes[tap][(..., *out_index)])


class InvolutionTapLoopFunction(torch.autograd.Function):
    """Involution aggregation as a loop over the K² taps; saves only ``x`` and the kernel.

    Each tap is one broadcast multiply-add between a shifted slice of ``x`` and one kernel plane
    (see :func:`plan_taps`), restricted to the reads inside the image, so no padded copy and no
    K²-sized buffer is made. With stride 1 the saved kernel is zero where its flattened read wraps.
    On CPU the (batch, group) pairs are walked in cache-sized chunks, in parallel (see
    :func:`for_each_chunk`). Accumulates in fp32 for fp16/bf16 inputs.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int,
                dilation: int, overwrite_kernel: bool = False) -> torch.Tensor:
        batch, channels, height, width = x.shape
        _, groups, taps, out_h, out_w = kernel.shape
        plan = plan_taps(kernel_size, stride, dilation, (height, width), (out_h, out_w))
        if plan.wrapped_columns:
            if not (overwrite_kernel and kernel.is_contiguous()):
                kernel = kernel.clone(memory_format=torch.contiguous_format)
            kernel = zero_wrapped_columns(kernel, plan)
        ctx.save_for_backward(x, kernel)
        ctx.plan = plan
        out_dtype = torch.promote_types(x.dtype, kernel.dtype)
        units, group_channels = batch * groups, channels // groups
        x_units = x.reshape(units, group_channels, *plan.in_shape)
        kernel_units = kernel.reshape(units, taps, *plan.out_shape)
        # Allocated in the output shape: a Function that returns a view of an internal tensor makes
        # in-place ops on its output (an inplace ReLU) fail in backward.
        out = x.new_empty((batch, channels, out_h, out_w), dtype=accumulation_dtype(out_dtype))
        out_units = out.view(units, group_channels, *plan.out_shape)
        for_each_chunk(lambda chunk: gather_taps(out_units[chunk], x_units[chunk], kernel_units[chunk], plan),
                       chunks_of(units, 2 * x_units[0].nbytes, x.device), x.device)
        return out.to(out_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, kernel = ctx.saved_tensors
        plan = ctx.plan
        batch, channels, height, width = x.shape
        _, groups, taps, out_h, out_w = kernel.shape
        units, group_channels = batch * groups, channels // groups
        acc_dtype = accumulation_dtype(torch.promote_types(x.dtype, kernel.dtype))
        # Upcast once so every product below is formed in the accumulation precision.
        x_units = x.to(acc_dtype).reshape(units, group_channels, *plan.in_shape)
        kernel_units = kernel.to(acc_dtype).reshape(units, taps, *plan.out_shape)
        grad_units = grad_out.to(acc_dtype).reshape(units, group_channels, *plan.out_shape)
        chunks = chunks_of(units, x_units[0].nbytes + grad_units[0].nbytes, x.device)

        grad_x = grad_kernel = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.empty_like(x_units) if plan.centre_reads_all else torch.zeros_like(x_units)
            for_each_chunk(
                lambda chunk: scatter_taps(grad_x[chunk], grad_units[chunk], kernel_units[chunk], plan),
                chunks, x.device)
            grad_x = grad_x.view(batch, channels, height, width).to(x.dtype)
        if ctx.needs_input_grad[1]:
            grad_kernel = zero_outside_taps(torch.empty_like(kernel_units), plan)
            for_each_chunk(
                lambda chunk: correlate_taps(grad_kernel[chunk], grad_units[chunk], x_units[chunk], plan),
                chunks, x.device)
            grad_kernel = grad_kernel.view(batch, groups, taps, out_h, out_w)
            zero_wrapped_columns(grad_kernel, plan)  # the flattened slices also multiplied those reads
            grad_kernel = grad_kernel.to(kernel.dtype)
        return grad_x, grad_kernel, None, None, None, None


@register_flop_handle('InvolutionTapLoopFunction')
@register_flop_handle('InvolutionTritonFunction')
def aggregation_flops(inputs, outputs) -> int:
    """One MAC per output element and tap: B·C·K²·H'·W' (taps that read padding included)."""
    taps = value_shape(inputs[1])[2]
    return math.prod(value_shape(outputs[0])) * taps


def involution_aggregate(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int = 1,
                         dilation: int = 1, impl: str = 'auto', overwrite_kernel: bool = False) -> torch.Tensor:
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
        overwrite_kernel: let the memory path zero, in place, the kernel entries that multiply only
            padding (they cannot change the result) instead of zeroing a copy; for callers whose
            kernel is a temporary that nothing else reads, like :class:`Involution`.

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
        return InvolutionTapLoopFunction.apply(x, kernel, kernel_size, stride, dilation,
                                               overwrite_kernel)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The conv runs as a batched matmul on its own weight (see mmconv.ops.pointwise), so hooks
        # registered on ``self.conv`` itself do not fire; hooks on this module do.
        x = pointwise_conv(x, self.conv.weight, self.conv.bias)
        for module in list(self.children())[1:]:
            x = module(x)
        return x


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
                                    self.dilation, self.impl, overwrite_kernel=True)

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, '
                f'dilation={self.dilation}, group_channels={self.group_channels}, impl={self.impl!r}')
