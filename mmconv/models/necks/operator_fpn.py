"""FPN whose per-level 3×3 output convs are an mmconv operator (the "involution neck").

Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017.
https://arxiv.org/abs/1612.03144
Li et al., "Involution: Inverting the Inherence of Convolution for Visual Recognition", CVPR 2021,
https://arxiv.org/abs/2103.06255: its detection models replace every FPN output conv by a 7×7
involution (256 → 256, no bias, norm or activation); the C-volution release (PRCV 2023,
https://github.com/nightmareisme/c-volution) does the same with a C-volution whose channel branch
has 4 groups.

Everything else is mmdet's FPN unchanged: the 1×1 lateral convs, the top-down nearest upsampling
(to the lower level's size, so odd sizes work) and the extra levels (max-pool, or the strided 3×3
convs of ``add_extra_convs``). Initialisation is mmdet FPN's: Xavier-uniform on every ``nn.Conv2d``
of the neck, which here includes the operators' own 1×1 kernel-generator convs and C-volution's
channel-branch conv, as the official ``FPN_involution.init_weights`` does; the operators' batch
norms keep weight 1, bias 0. Then, by default, each involution's span conv is re-initialised so
that the output conv keeps its input's second moment, as the Xavier-initialised 3×3 conv it
replaces does (:mod:`mmconv.models.layers.operator_init`; ``op_init='official'`` skips this).
"""
import copy
from typing import List, Optional

from mmcv.cnn import ConvModule
from mmdet.models.necks import FPN
from mmengine.registry import MODELS

from mmconv.models.layers.operator_init import check_operator_init, init_involution_spans
from mmconv.ops.validation import check_positive_odd

__all__ = ['OperatorFPN', 'InvolutionFPN', 'CVolutionFPN']


@MODELS.register_module()
class OperatorFPN(FPN):
    """mmdet ``FPN`` with the output conv of every backbone level built from ``output_op_cfg``.

    The operator is built by ``mmcv.cnn.build_conv_layer`` (through ``ConvModule``) as a
    ``out_channels → out_channels`` layer with kernel ``output_kernel_size``, "same" padding and
    no bias, so any layer with the conv-layer signature fits: the mmconv adapters
    (``'Involution'``, ``'CVolution'``, ``'SCC'``, ``'SCConv'``, ``'CSCConv2d'``) or ``'Conv2d'``
    itself. It is followed by the FPN's ``norm_cfg`` and ``act_cfg`` (None in Faster/Mask R-CNN,
    as in the original).

    Args:
        in_channels (list[int]): Channels of each backbone level.
        out_channels (int): Channels of every pyramid level.
        num_outs (int): Number of pyramid levels.
        output_op_cfg (dict, optional): Conv-layer config of the per-level output operator; None
            takes the class default (``dict(type='Involution')`` here).
        output_kernel_size (int): Kernel size of that operator (odd). Defaults to 7.
        op_init (str): ``'variance_preserving'`` (default) or ``'official'`` (Xavier only).
        **kwargs: mmdet ``FPN`` arguments (``start_level``, ``end_level``, ``add_extra_convs``,
            ``relu_before_extra_convs``, ``conv_cfg``, ``norm_cfg``, ``act_cfg``,
            ``upsample_cfg``, ``init_cfg``...).

    Shape:
        inputs: tuple of B×in_channels[i]×H_i×W_i →
        tuple of ``num_outs`` B×out_channels×H_i×W_i.

    Example:
        >>> import torch
        >>> neck = OperatorFPN([16, 32], 32, num_outs=3)
        >>> outs = neck((torch.rand(1, 16, 16, 16), torch.rand(1, 32, 8, 8)))
        >>> [tuple(out.shape) for out in outs]
        [(1, 32, 16, 16), (1, 32, 8, 8), (1, 32, 4, 4)]
    """

    default_output_op_cfg = dict(type='Involution')

    def __init__(self, in_channels: List[int], out_channels: int, num_outs: int, output_op_cfg: Optional[dict] = None,
                 output_kernel_size: int = 7, op_init: str = 'variance_preserving', **kwargs):
        check_positive_odd('output_kernel_size', output_kernel_size)
        check_operator_init(op_init)
        super().__init__(in_channels, out_channels, num_outs, **kwargs)
        self.op_init = op_init
        self.output_op_cfg = copy.deepcopy(self.default_output_op_cfg if output_op_cfg is None else output_op_cfg)
        # The first len(lateral_convs) entries are the per-level output convs; the rest (if any)
        # are the strided extra-level convs, which the original keeps as convolutions.
        for level in range(len(self.lateral_convs)):
            self.fpn_convs[level] = ConvModule(out_channels, out_channels, output_kernel_size,
                                               padding=output_kernel_size // 2, bias=False, conv_cfg=self.output_op_cfg,
                                               norm_cfg=kwargs.get('norm_cfg'), act_cfg=kwargs.get('act_cfg'),
                                               inplace=False)

    def init_weights(self) -> None:
        """mmdet FPN's Xavier init, then ``op_init`` on the output operators (nothing follows them)."""
        super().init_weights()
        init_involution_spans(self.fpn_convs, self.op_init, gain=1.0)


@MODELS.register_module()
class InvolutionFPN(OperatorFPN):
    """:class:`OperatorFPN` with 7×7 involution output convs (``FPN_involution`` of RedNet).

    Saves about 2.1 M parameters over mmdet's FPN at 256 channels (4 × 590 k → 4 × 67 k).
    """

    default_output_op_cfg = dict(type='Involution')


@MODELS.register_module()
class CVolutionFPN(OperatorFPN):
    """:class:`OperatorFPN` with 7×7 C-volution output convs (``FPN_C`` of CedNet).

    The channel branch has 4 groups in the released detection neck (16 in the backbone), which
    ``output_op_cfg=dict(type='CVolution', cq_groups=...)`` changes.
    """

    default_output_op_cfg = dict(type='CVolution', cq_groups=4)
