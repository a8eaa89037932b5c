"""RedNet: ResNet with a 7×7 involution in every bottleneck and an involution stem.

Li et al., "Involution: Inverting the Inherence of Convolution for Visual Recognition", CVPR 2021.
https://arxiv.org/abs/2103.06255 (official code: https://github.com/d-li14/involution)
"""
from typing import Optional

from mmengine.registry import MODELS

from .operator_resnet import OperatorResNet

__all__ = ['RedNet']


@MODELS.register_module()
class RedNet(OperatorResNet):
    """RedNet-26/38/50/101/152 (ImageNet: 9.23/12.39/15.54/25.65/33.99 M params with the head).

    :class:`OperatorResNet` with bottlenecks whose 3×3 slot (carrying the stride) is a
    ``kernel_size``×``kernel_size`` involution, 1×1 projection shortcuts, ReLU, and the official
    stem: conv 3×3 stride 2 (3 → 32) + BN + ReLU, involution(32, ``stem_kernel``), BN, ReLU,
    conv 3×3 (32 → 64) + BN + ReLU, max-pool 3×3 stride 2. State-dict keys are the official ones
    (``stem.1.conv1.conv.weight``, ``layer1.0.conv2.conv2.conv.bias``, ``layer1.0.bn2.weight``...),
    so its classification checkpoints load without renaming.

    Args:
        depth (int): 26, 38, 50, 101 or 152.
        stem_kernel (int): Kernel of the stem involution: 3 in the official classification
            model and its checkpoints, 7 in the official detection/segmentation backbones.
            Defaults to 3.
        kernel_size (int): Kernel of the block involutions. Defaults to 7.
        reduction_ratio (int): Kernel-generator reduction r. Defaults to 4.
        group_channels (int): Channels sharing one involution kernel. Defaults to 16.
        impl (str): Involution aggregation implementation (``'auto'``, ``'fast'``,
            ``'reference'``; see :mod:`mmconv.ops.validation`). Defaults to ``'auto'``.
        op_kwargs (dict, optional): Further operator arguments, for the stem and every block.
        **kwargs: :class:`OperatorResNet` arguments (``out_indices``, ``frozen_stages``,
            ``norm_eval``, ``with_cp``, ``norm_cfg``, ``init_cfg``...). The default init is the
            official one: Kaiming (fan_out) on every conv, involution internals included, BN
            weight 1, and zero-initialised ``bn3`` in every bottleneck.

    Shape:
        x: B×3×H×W → tuple of B×(256·2^i)×ceil(H/2^(i+2))×ceil(W/2^(i+2)) for i in ``out_indices``.

    Example:
        >>> import torch
        >>> from mmconv.models.backbones import RedNet
        >>> model = RedNet(depth=26, out_indices=(0, 3)).eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 64, 64))]
        [(1, 256, 16, 16), (1, 2048, 2, 2)]
    """

    depths = (26, 38, 50, 101, 152)
    operator = 'Involution'

    def __init__(self, depth: int, stem_kernel: int = 3, kernel_size: int = 7, reduction_ratio: int = 4,
                 group_channels: int = 16, impl: str = 'auto', op_kwargs: Optional[dict] = None, **kwargs):
        self.check_depth(depth)
        op_kwargs = dict(reduction_ratio=reduction_ratio, group_channels=group_channels, impl=impl, **(op_kwargs or {}))
        super().__init__(depth, stem_type='deep', stem_op_cfg=self.op_cfg(stem_kernel, op_kwargs), stem_pool='max',
                         op_cfg=self.op_cfg(kernel_size, op_kwargs), **kwargs)

    def check_depth(self, depth: int) -> None:
        """Raise a ValueError for a depth without bottleneck blocks."""
        if depth not in self.depths:
            raise ValueError(f'{type(self).__name__} depth must be one of {self.depths}, '
                             f'got {depth!r}.')

    def op_cfg(self, kernel_size: int, op_kwargs: dict) -> dict:
        """Conv-layer config of the operator with kernel ``kernel_size`` in a 3×3 slot."""
        return dict(type=self.operator, op_kernel_size=kernel_size, **op_kwargs)
