"""The SCConv layer (SRU → CRU) and its argument checks."""
import torch
from torch import nn

from ..validation import check_choice, check_impl, check_positive, check_positive_odd, use_reference
from .ops import cru as cru_op
from .ops import sru_squeeze
from .reference import CRU, FUSES, GATES, SRU, cru_widths

__all__ = ['SCConv']


class SCConv(nn.Module):
    """SCConv (SRU → CRU), a drop-in replacement for a k×k convolution.

    Args:
        in_channels: C1, even.
        out_channels: C2, divisible by ``gwc_groups`` and at least ⌊(C1 − ⌊α·C1⌋)/r⌋.
        kernel_size: k of the group-wise conv, odd.
        stride: stride (GWC, PWC1, PWC2 and the reused lower part).
        dilation: dilation of the group-wise conv.
        alpha: split ratio α in (0, 1).
        squeeze_ratio: r.
        gwc_groups: g, dividing ⌊α·C1⌋ // r and C2.
        gn_groups: GroupNorm groups, reduced to gcd(C1, gn_groups).
        gate_threshold: t in (0, 1).
        gate: ``'soft'`` (default) or ``'hard'``.
        fuse: ``'paper'`` (default) or ``'joint'``.
        gwc_bias: give GWC a bias (cheng-haha's code does; the paper does not).
        impl: ``'fast'`` (``mmconv::sru_squeeze`` and ``mmconv::cru``), ``'reference'`` (the SRU and
            CRU modules) or ``'auto'`` (fast, and the reference while exporting).

    Shapes:
        x: B×C1×H×W → B×C2×⌈H/s⌉×⌈W/s⌉.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
                 alpha: float = 0.5, squeeze_ratio: int = 2, gwc_groups: int = 2, gn_groups: int = 4,
                 gate_threshold: float = 0.5, gate: str = 'soft', fuse: str = 'paper', gwc_bias: bool = False,
                 impl: str = 'auto') -> None:
        super().__init__()
        _check_arguments(in_channels, out_channels, kernel_size, stride, dilation, alpha, squeeze_ratio, gwc_groups,
                         gn_groups, gate_threshold, gate, fuse, impl)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.impl = impl
        self.sru = SRU(in_channels, gn_groups, gate_threshold, gate)
        self.cru = CRU(in_channels, out_channels, kernel_size, stride, dilation, alpha, squeeze_ratio, gwc_groups,
                       gwc_bias, fuse)

    def extra_repr(self) -> str:
        return f'impl={self.impl!r}, gate={self.sru.gate!r}, fuse={self.cru.fuse!r}'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'SCConv expects B×{self.in_channels}×H×W input, got {tuple(x.shape)}.')
        if use_reference(self.impl):
            return self.cru(self.sru(x))
        sru, cru = self.sru, self.cru
        convs = [
            cru.squeeze1.weight, cru.squeeze2.weight, cru.gwc.weight, cru.gwc.bias, cru.pwc1.weight,
            cru.pwc2.weight if cru.pwc2 is not None else None
        ]
        device_type = x.device.type
        if torch.is_autocast_enabled(device_type):
            dtype = torch.get_autocast_dtype(device_type)
            convs = [param.to(dtype) if param is not None else None for param in convs]
        squeeze1, squeeze2, gwc_weight, gwc_bias, pwc1, pwc2 = convs
        with torch.autocast(device_type, enabled=False):
            squeezed = sru_squeeze(x, sru.gn.weight, sru.gn.bias, squeeze1, squeeze2, sru.gn.num_groups, sru.gn.eps,
                                   sru.gate_threshold, sru.gate)
            return cru_op(squeezed, gwc_weight, gwc_bias, pwc1, pwc2, self.stride, self.dilation, cru.gwc.groups,
                          cru.fuse)[0]


def _check_arguments(in_channels, out_channels, kernel_size, stride, dilation, alpha, squeeze_ratio, gwc_groups,
                     gn_groups, gate_threshold, gate, fuse, impl) -> None:
    """Raise a one-sentence ValueError for the first argument SCConv cannot honour."""
    for name, value in (('in_channels', in_channels), ('out_channels', out_channels), ('stride', stride),
                        ('dilation', dilation), ('squeeze_ratio',
                                                 squeeze_ratio), ('gwc_groups', gwc_groups), ('gn_groups', gn_groups)):
        check_positive(name, value)
    if in_channels % 2:
        raise ValueError(f'in_channels must be even (the SRU swaps channel halves), got {in_channels}.')
    check_positive_odd('kernel_size', kernel_size)
    if not 0 < alpha < 1:
        raise ValueError(f'alpha must lie strictly between 0 and 1, got {alpha!r}.')
    up, low, up_squeezed, low_squeezed = cru_widths(in_channels, alpha, squeeze_ratio)
    if min(up_squeezed, low_squeezed) < 1:
        raise ValueError(f'in_channels={in_channels} with alpha={alpha} and squeeze_ratio='
                         f'{squeeze_ratio} must leave both CRU parts (now {up} and {low} channels) at '
                         f'least squeeze_ratio channels.')
    if up_squeezed % gwc_groups or out_channels % gwc_groups:
        raise ValueError(f'gwc_groups must divide the squeezed upper width {up_squeezed} and '
                         f'out_channels {out_channels}, got {gwc_groups}.')
    if out_channels < low_squeezed:
        raise ValueError(f'out_channels must be at least the squeezed lower width {low_squeezed} '
                         f'(it is reused as output channels), got {out_channels}.')
    if not 0 < gate_threshold < 1:
        raise ValueError(f'gate_threshold must lie strictly between 0 and 1, got {gate_threshold!r}.')
    check_choice('gate', gate, GATES)
    check_choice('fuse', fuse, FUSES)
    check_impl(impl)
