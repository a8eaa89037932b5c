"""CedNet: RedNet with every involution replaced by C-volution.

C-volution (PRCV 2023), https://github.com/nightmareisme/c-volution. The operator is the
reconstruction documented in :mod:`mmconv.ops.cvolution`.
"""
from typing import Optional

from mmengine.registry import MODELS

from .rednet import RedNet

__all__ = ['CedNet']


@MODELS.register_module()
class CedNet(RedNet):
    """CedNet-26/38/50/101/152 (ImageNet CedNet-50: 16.3 M params, 2.9 GFLOPs with the head).

    The released ``cednet.py`` is ``rednet.py`` with ``involution`` → ``Cvolution``: every
    bottleneck's 3×3 slot is a 7×7 C-volution with the stride, and the stem's involution a
    C-volution too (kernel 7 in the final release, 3 in one intermediate commit). The README's
    CedNet-38 figures (12.40 M, 2.2 G) repeat RedNet-38's; the released design gives ≈12.9 M.

    Args:
        depth (int): 26, 38, 50, 101 or 152 (the released model zoo has 38 and 50).
        stem_kernel (int): Kernel of the stem C-volution. Defaults to 7.
        kernel_size (int): Kernel of the block C-volutions. Defaults to 7.
        reduction_ratio (int): Kernel-generator reduction r. Defaults to 4.
        group_channels (int): Channels sharing one involution kernel. Defaults to 16.
        cq_groups (int): Groups of the channel branch's 3×3 conv (16 in the released backbone).
            Defaults to 16.
        gate (str): ``'linear'`` (released) or ``'sigmoid'``. Defaults to ``'linear'``.
        kernel_from (str): ``'x'`` (released) or ``'gated'``. Defaults to ``'x'``.
        impl (str): Aggregation implementation. Defaults to ``'auto'``.
        op_kwargs (dict, optional): Further operator arguments, for the stem and every block.
        **kwargs: :class:`OperatorResNet` arguments.

    Shape:
        x: B×3×H×W → tuple of B×(256·2^i)×ceil(H/2^(i+2))×ceil(W/2^(i+2)) for i in ``out_indices``.
    """

    operator = 'CVolution'

    def __init__(self, depth: int, stem_kernel: int = 7, kernel_size: int = 7, reduction_ratio: int = 4,
                 group_channels: int = 16, cq_groups: int = 16, gate: str = 'linear', kernel_from: str = 'x',
                 impl: str = 'auto', op_kwargs: Optional[dict] = None, **kwargs):
        op_kwargs = dict(cq_groups=cq_groups, gate=gate, kernel_from=kernel_from, **(op_kwargs or {}))
        super().__init__(depth, stem_kernel=stem_kernel, kernel_size=kernel_size, reduction_ratio=reduction_ratio,
                         group_channels=group_channels, impl=impl, op_kwargs=op_kwargs, **kwargs)
