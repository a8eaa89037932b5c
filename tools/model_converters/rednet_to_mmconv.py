"""Convert an official RedNet checkpoint (ImageNet: mmcls 0.x; COCO: mmdet 2.x) into an mmconv one.

The official checkpoints (github.com/d-li14/involution, ``cls/`` and ``det/``) are mmcls 0.x
``ImageClassifier`` and mmdet 2.x Faster R-CNN / Mask R-CNN / RetinaNet state dicts under
``state_dict``. mmconv's ``RedNet`` keeps the official module names (mmcv ``ConvModule`` stem,
``involution`` with ``conv1.conv``/``conv1.bn``/``conv2.conv``, ``bn1``-``bn3``, ``downsample.0/1``),
mmpretrain 1.x's ``LinearClsHead`` is ``head.fc`` as in mmcls 0.x, and mmdet 3.x kept the FPN, RPN,
RoI and RetinaNet head names of mmdet 2.x. Two keys move: the involution FPN's output operator
(``neck.fpn_convs.{i}``, an involution in the official ``FPN_involution``) sits under ``.conv`` in
mmconv's ``InvolutionFPN``, and the involution mask head's ``convs.{i}.0`` (Sequential(involution,
ReLU)) is ``convs.{i}.conv``. The rules below spell out that layout, so a checkpoint of another layout
(a CedNet, a torchvision ResNet...) is refused with the keys that do not fit, and with ``--config``
every key and shape is checked against the model.

The official detection backbones use a 7×7 stem involution (the classification one is 3×3); mmconv's
detection configs keep 3 so that ImageNet weights load. Convert (and test) an official COCO
checkpoint with ``--cfg-options +model.backbone.stem_kernel=7``; without it the check says so.

Key layout (prefix ``backbone.`` unless noted; ``BN`` = weight, bias, running_mean, running_var,
num_batches_tracked; ``INV`` = conv1.conv.weight, conv1.bn.BN, conv2.conv.weight, conv2.conv.bias):

    stem.0.conv.weight, stem.0.bn.BN     conv 3×3 stride 2, 3 → 32
    stem.1.INV                          involution(32, K=3) (K=7 in the detection backbone)
    stem.2.BN                           BN(32)
    stem.4.conv.weight, stem.4.bn.BN    conv 3×3, 32 → 64
    layer{1-4}.{j}.conv1.weight, conv3.weight, bn{1,2,3}.BN, conv2.INV
    layer{1-4}.0.downsample.0.weight, downsample.1.BN
    head.fc.weight, head.fc.bias        (no backbone. prefix) linear 2048 → 1000
    detection (no backbone. prefix):
    neck.lateral_convs.{i}.conv.{weight,bias}, neck.fpn_convs.{i}.conv.{weight,bias}   (conv FPN;
        RetinaNet's extra 3×3 stride-2 levels in both FPNs)
    neck.fpn_convs.{i}.INV                  → neck.fpn_convs.{i}.conv.INV (involution FPN)
    rpn_head.{rpn_conv,rpn_cls,rpn_reg}.{weight,bias}, rpn_head.rpn_conv.INV (involution RPN)
    roi_head.bbox_head.{shared_fcs.{j},fc_cls,fc_reg}.{weight,bias}
    roi_head.mask_head.convs.{i}.conv.{weight,bias}, .upsample.*, .conv_logits.*
    roi_head.mask_head.convs.{i}.0.INV      → roi_head.mask_head.convs.{i}.conv.INV (involution head)
    bbox_head.{cls_convs,reg_convs}.{i}.conv.{weight,bias}, bbox_head.{retina_cls,retina_reg}.*

Usage:
    python tools/model_converters/rednet_to_mmconv.py rednet50.pth rednet50_mmconv.pth \
        --config configs/rednet/rednet50_64xb32_in1k.py
    python tools/model_converters/rednet_to_mmconv.py faster_rcnn_red50_neck_fpn_1x_coco.pth out.pth \
        --config configs/rednet/faster-rcnn_rednet50_involution-fpn_1x_coco.py \
        --cfg-options +model.backbone.stem_kernel=7
"""
from collections import OrderedDict
from typing import Dict, Mapping, Optional

import torch

from mmconv.cli.state_dict_conversion import converter_main, rename_keys

BN = r'(?:weight|bias|running_mean|running_var|num_batches_tracked)'
INVOLUTION = rf'(?:conv1\.conv\.weight|conv1\.bn\.{BN}|conv2\.conv\.(?:weight|bias))'
PARAMS = r'(?:weight|bias)'
STEM_INVOLUTION_ROWS = 'backbone.stem.1.conv2.conv.weight'  # K² · 2 groups kernel values per pixel

RULES = [
    (rf'backbone\.stem\.([04])\.(conv\.weight|bn\.{BN})', r'backbone.stem.\1.\2'),
    (rf'backbone\.stem\.1\.({INVOLUTION})', r'backbone.stem.1.\1'),
    (rf'backbone\.stem\.2\.({BN})', r'backbone.stem.2.\1'),
    (rf'backbone\.layer([1-4])\.(\d+)\.(conv[13]\.weight|bn[123]\.{BN})', r'backbone.layer\1.\2.\3'),
    (rf'backbone\.layer([1-4])\.(\d+)\.conv2\.({INVOLUTION})', r'backbone.layer\1.\2.conv2.\3'),
    (rf'backbone\.layer([1-4])\.0\.downsample\.(0\.weight|1\.{BN})', r'backbone.layer\1.0.downsample.\2'),
    (r'head\.fc\.(weight|bias)', r'head.fc.\1'),
    # Detection necks and heads (mmdet 2.x names, kept by mmdet 3.x and mmconv).
    (rf'neck\.(lateral_convs|fpn_convs)\.(\d+)\.conv\.({PARAMS})', r'neck.\1.\2.conv.\3'),
    (rf'neck\.fpn_convs\.(\d+)\.({INVOLUTION})', r'neck.fpn_convs.\1.conv.\2'),
    (rf'rpn_head\.(rpn_conv|rpn_cls|rpn_reg)\.({PARAMS})', r'rpn_head.\1.\2'),
    (rf'rpn_head\.rpn_conv\.({INVOLUTION})', r'rpn_head.rpn_conv.\1'),
    (rf'roi_head\.bbox_head\.(shared_fcs\.\d+|fc_cls|fc_reg)\.({PARAMS})', r'roi_head.bbox_head.\1.\2'),
    (rf'roi_head\.mask_head\.convs\.(\d+)\.conv\.({PARAMS})', r'roi_head.mask_head.convs.\1.conv.\2'),
    (rf'roi_head\.mask_head\.convs\.(\d+)\.0\.({INVOLUTION})', r'roi_head.mask_head.convs.\1.conv.\2'),
    (rf'roi_head\.mask_head\.(upsample|conv_logits)\.({PARAMS})', r'roi_head.mask_head.\1.\2'),
    (rf'bbox_head\.(cls_convs|reg_convs)\.(\d+)\.conv\.({PARAMS})', r'bbox_head.\1.\2.conv.\3'),
    (rf'bbox_head\.(retina_cls|retina_reg)\.({PARAMS})', r'bbox_head.\1.\2'),
]


def convert(state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Official RedNet keys (mmcls 0.x classifier or mmdet 2.x detector) → mmconv's model of the same
    kind with a ``RedNet`` backbone."""
    return rename_keys(state_dict, RULES)


def stem_kernel_hint(converted: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> Optional[str]:
    """What to pass when the checkpoint's stem involution has another kernel than the model's."""
    rows, model_rows = converted.get(STEM_INVOLUTION_ROWS), expected.get(STEM_INVOLUTION_ROWS)
    if rows is None or model_rows is None or rows.shape == model_rows.shape:
        return None
    kernel = round((rows.shape[0] / 2)**0.5)
    return (f'This checkpoint\'s stem involution is {kernel}×{kernel} (the official detection models\'); '
            f'add --cfg-options +model.backbone.stem_kernel={kernel} here and to tools/test.py and train.py.')


def main():
    converter_main(convert, 'official RedNet (mmcls 0.x / mmdet 2.x)', 'official checkpoint (.pth)', stem_kernel_hint)


if __name__ == '__main__':
    main()
