"""C-volution: involution whose output is rescaled per channel by a global channel branch (CedNet).

"C-volution: A Hybrid Operator for Visual Recognition", PRCV 2023 (paper not publicly available).
https://github.com/nightmareisme/c-volution

What was reconstructed, and why. The operator's source (``models/add/cvolution.py``) was public only
from April to August 2023 and has since been deleted from the repository; the current README says
the code "will be available soon". The recovered file, read for semantics only (the repository has
no licence), computes

* a spatial branch identical to involution's kernel generator, except that its first 1×1 conv has a
  bias (redundant before BN, kept for parameter parity);
* a channel branch ``a = GAP(conv_q(x))``: a grouped 3×3 conv (C → C, groups 16 in the
  classification code, 4 in the detection neck, no bias) followed by a global average pool, with no
  sigmoid;
* ``out = InvolutionAggregate(x ⊙ a, kernel(x))``.

Because the kernel is generated from the unscaled ``x`` and ``a`` is constant over space, this equals
``a ⊙ InvolutionAggregate(x, kernel(x))``, which is what the default path computes: a post-multiply
after the fused (memory-light or Triton) aggregation, with no extra B×C×H×W input temporary. A
CedNet-50 rebuilt with this design has 16.25 M parameters and about 2.85 GMACs, consistent with
the claimed 16.3 M / 2.9 G.

Fixed here: the released conv_q used ``padding=kernel_size // 2`` of the involution kernel (3 for
K = 7) on a 3×3 conv, so the pooled mean included zero borders and depended on the resolution; we pad
by ``cq_kernel // 2``. The released forward also called the autograd Function class instead of
``.apply``, did not pass dilation, and needed CuPy; none of that carries over.

Alternatives, as options: ``gate='sigmoid'`` squashes ``a`` SE-style (more stable in necks with no
norm after the operator); ``kernel_from='gated'`` follows the May-2023 abstract ("use channel
information to promote the generation of dynamic kernels"): the kernel is generated from
``x ⊙ a`` and aggregates ``x ⊙ a``. Both keep the parameters and MACs.
"""
import torch
from torch import nn

from .involution import Involution, check_positive, check_positive_odd

__all__ = ['CVolution']

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
        impl: involution aggregation implementation, see
            :func:`mmconv.ops.involution.involution_aggregate`.
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
        if gate not in GATES:
            raise ValueError(f'gate must be one of {GATES}, got {gate!r}.')
        if kernel_from not in KERNEL_SOURCES:
            raise ValueError(f'kernel_from must be one of {KERNEL_SOURCES}, got {kernel_from!r}.')
        super().__init__(channels, kernel_size, stride, reduction_ratio, group_channels, dilation,
                         impl=impl, reduce_bias=True)
        self.gate = gate
        self.kernel_from = kernel_from
        self.conv_q = nn.Conv2d(channels, channels, cq_kernel, padding=cq_kernel // 2, groups=cq_groups,
                                bias=False)
        self.pool_q = nn.AdaptiveAvgPool2d(1)

    def channel_scale(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel scale ``a`` (B×C×1×1) from the channel branch."""
        scale = self.pool_q(self.conv_q(x))
        return scale.sigmoid() if self.gate == 'sigmoid' else scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.channel_scale(x)
        if self.kernel_from == 'gated':
            return super().forward(x * scale)
        return super().forward(x) * scale

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, gate={self.gate!r}, kernel_from={self.kernel_from!r}'
