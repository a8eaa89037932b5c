"""The SCC layer: parameters, arguments, the training-time forced levels and the choice of path."""
import torch
from torch import nn

from ..validation import check_impl, check_positive, check_positive_odd, use_reference
from .ops import scc_forward
from .reference import draw_forced_levels, output_size, scc_reference

__all__ = ['SCC']


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
        impl: ``'fast'`` (``mmconv::scc_forward``), ``'reference'`` (upstream's level loop) or
            ``'auto'`` (fast, and the reference while exporting).

    Shapes:
        x: B×C_in×H×W → B×C_out×(⌊(H−1)/s⌋+1)×(⌊(W−1)/s⌋+1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
                 groups: int = 1, mask_prob: float = 0.005, impl: str = 'auto') -> None:
        super().__init__()
        for name, value in (('in_channels', in_channels), ('out_channels', out_channels), ('stride', stride),
                            ('dilation', dilation), ('groups', groups)):
            check_positive(name, value)
        check_positive_odd('kernel_size', kernel_size)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'groups must divide in_channels ({in_channels}) and out_channels '
                             f'({out_channels}), got {groups}.')
        levels = kernel_size // 2 + 1
        if not 0 <= mask_prob <= 1 / levels:
            raise ValueError(f'mask_prob must lie in [0, 1/{levels}] for kernel_size {kernel_size}, '
                             f'got {mask_prob!r}.')
        check_impl(impl)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.groups = groups
        self.mask_prob = mask_prob
        self.impl = impl
        self.levels = levels
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size))
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
            shape = (x.shape[0], self.out_channels, output_size(x.shape[2],
                                                                self.stride), output_size(x.shape[3], self.stride))
            forced = draw_forced_levels(shape, self.levels, self.mask_prob, x.device)
        if use_reference(self.impl):
            return scc_reference(x, self.weight, self.bias, self.alpha, self.beta, self.stride, self.dilation,
                                 self.groups, forced)
        weight, bias = self.weight, self.bias
        device_type = x.device.type
        if torch.is_autocast_enabled(device_type):
            # Convs run in the autocast dtype, as F.conv2d would; the affine promotes like upstream.
            dtype = torch.get_autocast_dtype(device_type)
            x, weight, bias = x.to(dtype), weight.to(dtype), bias.to(dtype)
        with torch.autocast(device_type, enabled=False):
            return scc_forward(x, weight, bias, self.alpha, self.beta, self.stride, self.dilation, self.groups,
                               forced)[0]
