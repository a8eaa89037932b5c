"""SCConv's units as the paper writes them (the spec): SRU and CRU modules, which also hold the
parameters the fast path uses."""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['CRU', 'FUSES', 'GATES', 'SRU', 'cru_widths']

GATES = ('soft', 'hard')
FUSES = ('paper', 'joint')


class SRU(nn.Module):
    """Spatial reconstruction unit (reference implementation).

    Args:
        channels: C1, even.
        gn_groups: GroupNorm groups, reduced to gcd(C1, gn_groups).
        gate_threshold: t in (0, 1).
        gate: ``'soft'`` or ``'hard'`` (see the module docstring).

    Shapes:
        x: B×C1×H×W → B×C1×H×W.
    """

    def __init__(self, channels: int, gn_groups: int = 4, gate_threshold: float = 0.5, gate: str = 'soft') -> None:
        super().__init__()
        self.gn = nn.GroupNorm(math.gcd(channels, gn_groups), channels)
        self.gate_threshold = gate_threshold
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acc_dtype = torch.promote_types(x.dtype, torch.float32)
        gamma = self.gn.weight.to(acc_dtype)
        gamma_weights = (gamma / gamma.sum()).view(-1, 1, 1)
        reweights = torch.sigmoid(self.gn(x).to(acc_dtype) * gamma_weights)
        informative = reweights > self.gate_threshold
        if self.gate == 'soft':
            w1 = torch.where(informative, torch.ones_like(reweights), reweights)
            w2 = torch.where(informative, torch.zeros_like(reweights), reweights)
        else:
            w1 = (reweights >= self.gate_threshold).to(acc_dtype)
            w2 = (reweights < self.gate_threshold).to(acc_dtype)
        x1, x2 = (w1 * x).to(x.dtype), (w2 * x).to(x.dtype)
        x11, x12 = x1.chunk(2, dim=1)
        x21, x22 = x2.chunk(2, dim=1)
        return torch.cat([x11 + x22, x12 + x21], dim=1)


class CRU(nn.Module):
    """Channel reconstruction unit (reference implementation), general C1 → C2 with stride.

    Args:
        in_channels: C1.
        out_channels: C2.
        kernel_size: k of the group-wise conv (odd).
        stride: stride of GWC, PWC1, PWC2 and of the reused lower part.
        dilation: dilation of GWC.
        alpha: split ratio α; the upper part has ⌊α·C1⌋ channels.
        squeeze_ratio: r.
        gwc_groups: g.
        gwc_bias: give GWC a bias.
        fuse: ``'paper'`` or ``'joint'``.

    Shapes:
        x: B×C1×H×W → B×C2×⌈H/s⌉×⌈W/s⌉.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
                 alpha: float = 0.5, squeeze_ratio: int = 2, gwc_groups: int = 2, gwc_bias: bool = False,
                 fuse: str = 'paper') -> None:
        super().__init__()
        up, low, up_squeezed, low_squeezed = cru_widths(in_channels, alpha, squeeze_ratio)
        self.up_channels, self.low_channels = up, low
        self.stride = stride
        self.fuse = fuse
        self.squeeze1 = nn.Conv2d(up, up_squeezed, 1, bias=False)
        self.squeeze2 = nn.Conv2d(low, low_squeezed, 1, bias=False)
        self.gwc = nn.Conv2d(up_squeezed, out_channels, kernel_size, stride, dilation * (kernel_size // 2), dilation,
                             gwc_groups, bias=gwc_bias)
        self.pwc1 = nn.Conv2d(up_squeezed, out_channels, 1, stride, bias=False)
        pwc2_width = out_channels - low_squeezed
        self.pwc2 = nn.Conv2d(low_squeezed, pwc2_width, 1, stride, bias=False) if pwc2_width else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up, low = torch.split(x, [self.up_channels, self.low_channels], dim=1)
        up, low = self.squeeze1(up), self.squeeze2(low)
        y1 = self.gwc(up) + self.pwc1(up)
        reused = low[:, :, ::self.stride, ::self.stride]
        y2 = torch.cat([self.pwc2(low), reused], dim=1) if self.pwc2 is not None else reused
        pooled = F.adaptive_avg_pool2d(torch.cat([y1, y2], dim=1), 1)
        if self.fuse == 'paper':
            weights = torch.softmax(torch.stack(pooled.chunk(2, dim=1)), dim=0)
        else:
            weights = torch.softmax(pooled, dim=1).chunk(2, dim=1)
        return weights[0] * y1 + weights[1] * y2


def cru_widths(in_channels: int, alpha: float, squeeze_ratio: int) -> Tuple[int, int, int, int]:
    """(up, low, up squeezed, low squeezed) channel counts of the CRU split."""
    up = int(alpha * in_channels)
    low = in_channels - up
    return up, low, up // squeeze_ratio, low // squeeze_ratio
