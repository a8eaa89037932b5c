"""The involution layer and the checked entry point of its aggregation."""
from typing import Callable, Optional

import torch
from torch import nn

from ..pointwise import pointwise_conv
from ..validation import check_impl, check_positive, check_positive_odd, use_reference
from . import ops
from .reference import aggregate_reference, aggregation_output_size

__all__ = ['ConvNormAct', 'Involution', 'involution_aggregate']


def involution_aggregate(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int = 1, dilation: int = 1,
                         impl: str = 'auto') -> torch.Tensor:
    """Weight every K×K neighbourhood of ``x`` by a per-pixel kernel shared by each channel group.

    Args:
        x: input, B×C×H×W.
        kernel: per-pixel kernels, B×G×K²×H'×W' with G dividing C (channel c uses group
            c // (C / G); the tap index is u·K + v, row-major) and H' = ceil(H / stride).
        kernel_size: K, odd.
        stride: stride of the aggregation.
        dilation: spacing between taps; zero padding is dilation·(K − 1)/2.
        impl: ``'fast'`` (``mmconv::involution_aggregate``: the tap loop, or Triton on CUDA),
            ``'reference'`` (unfold) or ``'auto'`` (fast, and the reference while exporting).

    Returns:
        B×C×H'×W', in the promoted dtype of ``x`` and ``kernel``.
    """
    check_impl(impl)
    if x.dim() != 4 or kernel.dim() != 5:
        raise ValueError(f'x must be B×C×H×W and kernel B×G×K²×H\'×W\', got {tuple(x.shape)} and '
                         f'{tuple(kernel.shape)}.')
    out_hw = tuple(aggregation_output_size(size, kernel_size, stride, dilation) for size in x.shape[2:])
    expected = (x.shape[0], kernel.shape[1], kernel_size**2) + out_hw
    if tuple(kernel.shape) != expected or x.shape[1] % kernel.shape[1]:
        raise ValueError(f'kernel must have shape B×G×K²×H\'×W\' = {expected} with G dividing '
                         f'{x.shape[1]} channels, got {tuple(kernel.shape)}.')
    if use_reference(impl):
        return aggregate_reference(x, kernel, kernel_size, stride, dilation)
    return ops.aggregate(x, kernel, kernel_size, stride, dilation)


class ConvNormAct(nn.Sequential):
    """1×1 conv, then optional norm and activation, under mmcv ``ConvModule``'s names.

    The submodules are ``conv``, ``bn`` (whatever the norm) and ``activate``, so that official RedNet
    checkpoints (keys ``conv1.conv.weight``, ``conv1.bn.running_mean``, ``conv2.conv.bias``…) load.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool,
                 norm_layer: Optional[Callable[[int],
                                               nn.Module]] = None, act_layer: Optional[Callable[[], nn.Module]] = None):
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
        impl: ``'fast'`` (the registered ops), ``'reference'`` (unfold) or ``'auto'`` (fast, and
            the reference while exporting to ONNX); see :mod:`mmconv.ops.validation`.
        reduce_bias: whether the first 1×1 conv has a bias (False in involution; C-volution's
            released code has one).

    Shape:
        x: B×C×H×W → B×C×ceil(H/stride)×ceil(W/stride).
    """

    def __init__(self, channels: int, kernel_size: int = 7, stride: int = 1, reduction_ratio: int = 4,
                 group_channels: int = 16, dilation: int = 1,
                 norm_layer: Optional[Callable[[int], nn.Module]] = nn.BatchNorm2d,
                 act_layer: Optional[Callable[[], nn.Module]] = nn.ReLU, impl: str = 'auto', reduce_bias: bool = False):
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
        self.avgpool = (
            nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity())
        self.conv1 = ConvNormAct(channels, hidden, reduce_bias, norm_layer, act_layer)
        self.conv2 = ConvNormAct(hidden, kernel_size**2 * self.groups, bias=True)

    def init_span_variance_preserving(self, gain: float = 2.0) -> None:
        """Start as a static kernel that multiplies the input's second moment by ``gain`` (2 before
        a ReLU, as He init gives a conv; 1 where nothing follows, as Xavier does).

        The span conv (``conv2``) gets zero weights and N(0, gain / K²) biases, so every pixel's
        kernel is the bias, a random K×K kernel per group: y = Σ_t b_t·x_t, E[y²] = K²·σ_b²·E[x²]
        = gain·E[x²]. The dynamic part grows from zero in training (its gradient is ∂k·h ≠ 0).
        Why not scale the weights instead: the kernel is then generated from x, so y is quadratic in
        x and its tails compound (in a four-involution mask head the logits reached 10⁵ on RoI
        features although their rms was preserved on Gaussian input); the official Kaiming
        (fan_out) init also doubles the rms per layer at RedNet's widths.
        """
        span = self.conv2.conv
        nn.init.zeros_(span.weight)
        nn.init.normal_(span.bias, 0.0, (gain / self.kernel_size**2)**0.5)

    def generate_kernel(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel kernels B×G×K²×H'×W' generated from (pooled) ``x``."""
        weight = self.conv2(self.conv1(self.avgpool(x)))
        return weight.view(x.shape[0], self.groups, self.kernel_size**2, *weight.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return involution_aggregate(x, self.generate_kernel(x), self.kernel_size, self.stride, self.dilation, self.impl)

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, '
                f'dilation={self.dilation}, group_channels={self.group_channels}, impl={self.impl!r}')
