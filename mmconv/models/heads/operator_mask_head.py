"""FCN mask head whose convs are an mmconv operator (the mask "involution head" of RedNet).

He et al., "Mask R-CNN", ICCV 2017. https://arxiv.org/abs/1703.06870
Li et al., "Involution: Inverting the Inherence of Convolution for Visual Recognition", CVPR 2021,
https://arxiv.org/abs/2103.06255: ``FCNMaskHead_involution`` replaces each of the four 3×3 convs
on the 14×14 RoI features by a 7×7 involution followed by ReLU (no norm); the deconv upsampling
and the 1×1 mask logits are unchanged.
"""
import copy
from typing import Optional

from mmcv.cnn import ConvModule
from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmdet.registry import MODELS
from mmengine.model import ModuleList
from torch import nn

from mmconv.models.layers.operator_init import check_operator_init, init_involution_spans
from mmconv.ops.validation import check_positive_odd

__all__ = ['OperatorFCNMaskHead', 'InvolutionFCNMaskHead']


@MODELS.register_module()
class OperatorFCNMaskHead(FCNMaskHead):
    """mmdet ``FCNMaskHead`` with each of its ``num_convs`` convs built from ``op_cfg``.

    Each conv is ``ConvModule(C, C, op_kernel_size, conv_cfg=op_cfg, norm_cfg=norm_cfg,
    act_cfg=ReLU, bias=False)`` with "same" padding; the mmconv operators map C → C, so
    ``conv_out_channels`` must equal ``in_channels``.

    Initialisation: Kaiming-normal (fan_out, ReLU gain, bias 0) on every ``nn.Conv2d`` inside the
    operators, as the original's involution got from its ``ConvModule``s; then, by default, each
    involution's span conv variance-preserving for the ReLU that follows
    (:mod:`mmconv.models.layers.operator_init`). The upsampling and logits keep ``FCNMaskHead``'s
    own init. (``FCNMaskHead`` refuses an ``init_cfg``.)

    Args:
        op_cfg (dict, optional): Conv-layer config of the operators; None takes the class default
            (``dict(type='Involution')`` here).
        op_kernel_size (int): Kernel size of the operators (odd). Defaults to 7.
        op_init (str): ``'variance_preserving'`` (default) or ``'official'`` (the official code's
            init; four stacked involutions then start with mask logits about 16× those of mmdet's
            ``FCNMaskHead``).
        **kwargs: mmdet ``FCNMaskHead`` arguments (``num_convs``, ``in_channels``,
            ``conv_out_channels``, ``num_classes``, ``norm_cfg``, ``upsample_cfg``,
            ``loss_mask``...). ``conv_kernel_size`` and ``conv_cfg`` are replaced by the two above.
    """

    default_op_cfg = dict(type='Involution')

    def __init__(self, op_cfg: Optional[dict] = None, op_kernel_size: int = 7, op_init: str = 'variance_preserving',
                 **kwargs):
        check_positive_odd('op_kernel_size', op_kernel_size)
        check_operator_init(op_init)
        super().__init__(**kwargs)
        self.op_init = op_init
        self.op_cfg = copy.deepcopy(self.default_op_cfg if op_cfg is None else op_cfg)
        self.conv_kernel_size = op_kernel_size
        self.convs = ModuleList(
            ConvModule(self.in_channels if i == 0 else self.conv_out_channels, self.conv_out_channels, op_kernel_size,
                       padding=op_kernel_size //
                       2, bias=False, conv_cfg=self.op_cfg, norm_cfg=self.norm_cfg, inplace=False)
            for i in range(self.num_convs))

    def init_weights(self) -> None:
        """``FCNMaskHead``'s init, Kaiming-normal on the operators' internal convs, then ``op_init``."""
        super().init_weights()
        for module in self.convs.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        init_involution_spans(self.convs, self.op_init, gain=2.0)


@MODELS.register_module()
class InvolutionFCNMaskHead(OperatorFCNMaskHead):
    """:class:`OperatorFCNMaskHead` with 7×7 involutions (``FCNMaskHead_involution`` of RedNet)."""

    default_op_cfg = dict(type='Involution')
