"""SCConv-ResNet: a ResNet whose 3×3 convs are SCConv (SRU → CRU).

Li, Wen, He, "SCConv: Spatial and Channel Reconstruction Convolution for Feature Redundancy",
CVPR 2023. The placement follows the paper ("only the 3×3 convs") and its parameter counts: every
bottleneck ``conv2`` (the three stride-2 ones included); stem, 1×1 convs and shortcuts stay plain.
"""
from typing import Optional

from mmengine.registry import MODELS

from .operator_resnet import OperatorResNet

__all__ = ['SCConvResNet']


@MODELS.register_module()
class SCConvResNet(OperatorResNet):
    """SCConv-ResNet (SCConv-R50: 16.53 M params with a 1000-class head, 14.69 M with 100 classes).

    :class:`OperatorResNet` (7×7 stem, 1×1 projection shortcuts, ReLU) with an SCConv in every
    3×3 slot: ``conv2`` of each bottleneck, or both convs of a basic block.

    Args:
        depth (int): 18, 26, 34, 38, 50, 101 or 152. Defaults to 50.
        alpha (float): CRU split ratio α. Defaults to 0.5.
        squeeze_ratio (int): CRU squeeze ratio r. Defaults to 2.
        gwc_groups (int): Groups of the CRU group-wise conv. Defaults to 2.
        gn_groups (int): SRU GroupNorm groups. Defaults to 4.
        gate (str): SRU gate, ``'soft'`` (paper) or ``'hard'`` (popular unofficial code).
            Defaults to ``'soft'``.
        fuse (str): CRU fuse, ``'paper'`` or ``'joint'``. Defaults to ``'paper'``.
        impl (str): SCConv implementation. Defaults to ``'auto'``.
        op_kwargs (dict, optional): Further SCConv arguments (``gate_threshold``, ``gwc_bias``).
        **kwargs: :class:`OperatorResNet` arguments.

    Shape:
        x: B×3×H×W → tuple of B×C_i×ceil(H/2^(i+2))×ceil(W/2^(i+2)) for i in ``out_indices``.
    """

    def __init__(self, depth: int = 50, alpha: float = 0.5, squeeze_ratio: int = 2, gwc_groups: int = 2,
                 gn_groups: int = 4, gate: str = 'soft', fuse: str = 'paper', impl: str = 'auto',
                 op_kwargs: Optional[dict] = None, **kwargs):
        op_cfg = dict(type='SCConv', alpha=alpha, squeeze_ratio=squeeze_ratio, gwc_groups=gwc_groups,
                      gn_groups=gn_groups, gate=gate, fuse=fuse, impl=impl, **(op_kwargs or {}))
        super().__init__(depth, op_cfg=op_cfg, **kwargs)
