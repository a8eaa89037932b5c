"""RPN head whose shared 3×3 conv is an mmconv operator (the "involution head" of RedNet).

Ren et al., "Faster R-CNN: Towards Real-Time Object Detection with Region Proposal Networks",
NeurIPS 2015. https://arxiv.org/abs/1506.01497
Li et al., "Involution: Inverting the Inherence of Convolution for Visual Recognition", CVPR 2021,
https://arxiv.org/abs/2103.06255: ``RPNHead_involution`` replaces the RPN's 3×3 conv by a 7×7
involution (followed, as before, by ReLU); the 1×1 objectness and box convs are unchanged.
"""
import copy
from typing import Optional

from mmcv.cnn import build_conv_layer
from mmdet.models.dense_heads import RPNHead
from mmdet.registry import MODELS
from torch import nn

from mmconv.models.layers.operator_init import check_operator_init, init_involution_spans
from mmconv.ops.validation import check_positive_odd

__all__ = ['OperatorRPNHead', 'InvolutionRPNHead']

RPN_CONV_STD = 0.01  # mmdet RPNHead's Normal init of its shared 3×3 conv


@MODELS.register_module()
class OperatorRPNHead(RPNHead):
    """mmdet ``RPNHead`` with its shared conv(s) built from ``op_cfg``.

    Each of the ``num_convs`` shared layers is ``build_conv_layer(op_cfg, C, C, op_kernel_size)``
    with "same" padding and no bias, ReLU between them and after the last (as in ``RPNHead``). The
    mmconv operators map C → C, so ``feat_channels`` must equal ``in_channels``.

    Initialisation: Kaiming-normal (fan_out, ReLU gain) on every ``nn.Conv2d`` inside the operator
    (what the original's involution got from its ``ConvModule``s), then N(0, 0.01) on ``rpn_cls``
    and ``rpn_reg`` as in ``RPNHead``. mmdet's default ``Normal(layer='Conv2d', std=0.01)`` is not
    used because it would also shrink the operator's kernel-generator convs, which the original
    left alone. Then, by default, each involution's span conv is set so that the involution scales
    its input's second moment as the N(0, 0.01) 3×3 conv of ``RPNHead`` that it replaces does
    (9·C·0.01², :mod:`mmconv.models.layers.operator_init`); Kaiming alone starts the objectness
    logits 8× larger than ``RPNHead``'s.

    Args:
        in_channels (int): Channels of every input level.
        op_cfg (dict, optional): Conv-layer config of the shared operator; None takes the class
            default (``dict(type='Involution')`` here).
        op_kernel_size (int): Kernel size of that operator (odd). Defaults to 7.
        op_init (str): ``'variance_preserving'`` (default) or ``'official'`` (the init above only).
        init_cfg (dict or list[dict], optional): Initialization config; None gives the one above.
        **kwargs: mmdet ``RPNHead`` / ``AnchorHead`` arguments (``feat_channels``,
            ``num_convs``, ``anchor_generator``, ``bbox_coder``, ``loss_cls``, ``loss_bbox``...).
    """

    default_op_cfg = dict(type='Involution')

    def __init__(self, in_channels: int, op_cfg: Optional[dict] = None, op_kernel_size: int = 7,
                 op_init: str = 'variance_preserving', init_cfg=None, **kwargs):
        check_positive_odd('op_kernel_size', op_kernel_size)
        check_operator_init(op_init)
        self.op_init = op_init
        # Read by _init_layers, which AnchorHead.__init__ calls.
        self.op_cfg = copy.deepcopy(self.default_op_cfg if op_cfg is None else op_cfg)
        self.op_kernel_size = op_kernel_size
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu', distribution='normal'),
                dict(type='Normal', std=0.01, override=[dict(name='rpn_cls'),
                                                        dict(name='rpn_reg')]),
            ]
        super().__init__(in_channels, init_cfg=init_cfg, **kwargs)

    def init_weights(self) -> None:
        """``init_cfg``, then ``op_init`` on the shared operators."""
        super().init_weights()
        init_involution_spans(self.rpn_conv, self.op_init, gain=9 * self.feat_channels * RPN_CONV_STD**2)

    def _init_layers(self) -> None:
        """The shared operator(s), then mmdet's 1×1 ``rpn_cls`` and ``rpn_reg``."""
        layers = []
        for i in range(self.num_convs):
            if i:
                layers.append(nn.ReLU(inplace=False))
            layers.append(
                build_conv_layer(self.op_cfg, self.in_channels if i == 0 else self.feat_channels, self.feat_channels,
                                 self.op_kernel_size, padding=self.op_kernel_size // 2, bias=False))
        self.rpn_conv = layers[0] if len(layers) == 1 else nn.Sequential(*layers)
        self.rpn_cls = nn.Conv2d(self.feat_channels, self.num_base_priors * self.cls_out_channels, 1)
        self.rpn_reg = nn.Conv2d(self.feat_channels, self.num_base_priors * self.bbox_coder.encode_size, 1)


@MODELS.register_module()
class InvolutionRPNHead(OperatorRPNHead):
    """:class:`OperatorRPNHead` with a 7×7 involution (``RPNHead_involution`` of RedNet)."""

    default_op_cfg = dict(type='Involution')
