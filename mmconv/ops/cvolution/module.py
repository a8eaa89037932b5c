"""The C-volution layer: involution rescaled per channel by a global channel branch."""
import torch
from torch import nn

from ..involution import Involution
from ..validation import check_choice, check_positive, check_positive_odd, use_reference
from .channel_branch import channel_branch_mean

__all__ = ['CVolution', 'GATES', 'KERNEL_SOURCES']

GATES = ('linear', 'sigmoid')
KERNEL_SOURCES = ('x', 'gated')


class CVolution(Involution):
    """Involution rescaled per channel by ``a = gate(GAP(conv_q(x)))`` (C → C channels).

    Args:
        channels: input and output channels; a multiple of ``group_channels`` and ``cq_groups``.
        kernel_size: involution kernel size K, odd.
        stride: involution stride (the channel branch is global, so it has none).
        reduction_ratio: hidden width of the kernel generator is ``channels // reduction_ratio``.
        group_channels: channels sharing one involution kernel.
        cq_kernel: kernel size of the channel-branch conv, odd; padded by ``cq_kernel // 2``.
        cq_groups: groups of the channel-branch conv (16 in the CedNet backbone, 4 in its FPN neck).
        gate: ``'linear'`` (released code: ``a`` as is) or ``'sigmoid'``.
        kernel_from: ``'x'`` (released code: kernel from ``x``, output ``a ⊙ involution(x)``) or
            ``'gated'`` (kernel from and aggregation of ``x ⊙ a``).
        impl: ``'fast'`` (registered ops), ``'reference'`` (conv then pool, unfold aggregation) or
            ``'auto'`` (fast, and the reference while exporting), see :mod:`mmconv.ops.validation`.
        dilation: involution dilation (the released module fixed it to 1).

    Shape:
        x: B×C×H×W → B×C×ceil(H/stride)×ceil(W/stride).
    """

    def __init__(self, channels: int, kernel_size: int = 7, stride: int = 1, reduction_ratio: int = 4,
                 group_channels: int = 16, cq_kernel: int = 3, cq_groups: int = 16, gate: str = 'linear',
                 kernel_from: str = 'x', impl: str = 'auto', dilation: int = 1):
        check_positive('channels', channels)
        check_positive_odd('cq_kernel', cq_kernel)
        check_positive('cq_groups', cq_groups)
        if channels % cq_groups:
            raise ValueError(f'channels must be a multiple of cq_groups={cq_groups}, got {channels}.')
        check_choice('gate', gate, GATES)
        check_choice('kernel_from', kernel_from, KERNEL_SOURCES)
        super().__init__(channels, kernel_size, stride, reduction_ratio, group_channels, dilation, impl=impl,
                         reduce_bias=True)
        self.gate = gate
        self.kernel_from = kernel_from
        self.conv_q = nn.Conv2d(channels, channels, cq_kernel, padding=cq_kernel // 2, groups=cq_groups, bias=False)
        self.pool_q = nn.AdaptiveAvgPool2d(1)

    def channel_scale(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel scale ``a`` (B×C×1×1) from the channel branch.

        The reference path runs ``conv_q`` then ``pool_q``; the fast path computes the same mean with
        :func:`.channel_branch.channel_branch_mean`, without the conv over the image.
        """
        if use_reference(self.impl):
            scale = self.pool_q(self.conv_q(x))
        else:
            with torch.autocast(x.device.type, enabled=False):  # sums in fp32 whatever the autocast
                scale = channel_branch_mean(x, self.conv_q.weight, self.conv_q.groups)
        return scale.sigmoid() if self.gate == 'sigmoid' else scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.channel_scale(x)
        if self.kernel_from == 'gated':
            return super().forward(x * scale)
        return super().forward(x) * scale

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, gate={self.gate!r}, kernel_from={self.kernel_from!r}'
