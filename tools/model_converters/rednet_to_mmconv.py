"""Convert an official RedNet ImageNet checkpoint (mmcls 0.x) into an mmconv checkpoint.

The official checkpoints (github.com/d-li14/involution, ``cls/``) are mmcls 0.x
``ImageClassifier`` state dicts under ``state_dict``. mmconv's ``RedNet`` keeps the official module
names (mmcv ``ConvModule`` stem, ``involution`` with ``conv1.conv``/``conv1.bn``/``conv2.conv``,
``bn1``-``bn3``, ``downsample.0/1``) and mmpretrain 1.x's ``LinearClsHead`` is ``head.fc`` as in
mmcls 0.x, so every key keeps its name. The rules below spell out that layout, so a checkpoint of
another layout (a detection RedNet, a CedNet, a torchvision ResNet...) is refused with the keys that
do not fit, and with ``--config`` every key and shape is checked against the model.

Key layout (prefix ``backbone.`` unless noted; ``BN`` = weight, bias, running_mean, running_var,
num_batches_tracked; ``INV`` = conv1.conv.weight, conv1.bn.BN, conv2.conv.weight, conv2.conv.bias):

    stem.0.conv.weight, stem.0.bn.BN     conv 3×3 stride 2, 3 → 32
    stem.1.INV                          involution(32, K=3) (K=7 in the detection backbone)
    stem.2.BN                           BN(32)
    stem.4.conv.weight, stem.4.bn.BN    conv 3×3, 32 → 64
    layer{1-4}.{j}.conv1.weight, conv3.weight, bn{1,2,3}.BN, conv2.INV
    layer{1-4}.0.downsample.0.weight, downsample.1.BN
    head.fc.weight, head.fc.bias        (no backbone. prefix) linear 2048 → 1000

Usage:
    python tools/model_converters/rednet_to_mmconv.py rednet50.pth rednet50_mmconv.pth \
        --config configs/rednet/rednet50_64xb32_in1k.py
"""
from collections import OrderedDict
from typing import Dict

import torch

from mmconv.cli.state_dict_conversion import converter_main, rename_keys

BN = r'(?:weight|bias|running_mean|running_var|num_batches_tracked)'
INVOLUTION = rf'(?:conv1\.conv\.weight|conv1\.bn\.{BN}|conv2\.conv\.(?:weight|bias))'

RULES = [
    (rf'backbone\.stem\.([04])\.(conv\.weight|bn\.{BN})', r'backbone.stem.\1.\2'),
    (rf'backbone\.stem\.1\.({INVOLUTION})', r'backbone.stem.1.\1'),
    (rf'backbone\.stem\.2\.({BN})', r'backbone.stem.2.\1'),
    (rf'backbone\.layer([1-4])\.(\d+)\.(conv[13]\.weight|bn[123]\.{BN})',
     r'backbone.layer\1.\2.\3'),
    (rf'backbone\.layer([1-4])\.(\d+)\.conv2\.({INVOLUTION})', r'backbone.layer\1.\2.conv2.\3'),
    (rf'backbone\.layer([1-4])\.0\.downsample\.(0\.weight|1\.{BN})',
     r'backbone.layer\1.0.downsample.\2'),
    (r'head\.fc\.(weight|bias)', r'head.fc.\1'),
]


def convert(state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Official RedNet (mmcls 0.x) keys → mmconv ``ImageClassifier`` with a ``RedNet`` backbone."""
    return rename_keys(state_dict, RULES)


def main():
    converter_main(convert, 'official RedNet (mmcls 0.x)', 'official checkpoint (.pth)')


if __name__ == '__main__':
    main()
