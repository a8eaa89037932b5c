"""Convert an official SDNet checkpoint (github.com/Delay-Xili/SDNet) into an mmconv checkpoint.

The official ``.pth.tar`` files are either training checkpoints ``{'epoch', 'state_dict', 'perf',
'optimizer', 'lr_scheduler'}`` (``checkpoint.pth.tar``) or bare state dicts (``model_best.pth.tar``,
``final_state.pth.tar``); keys carry a ``module.`` prefix when a ``DataParallel`` model was saved
whole. Both SDNet-18 (``Lib/models/sdnet.py``) and SDNet-18-all (``Lib/models/sdnet_inverse.py``,
blocks inside ``layer{i}.layers``), with the CIFAR or ImageNet stem and with or without shortcuts,
map onto mmconv's ``SDNet`` in an ``ImageClassifier``. ``BN`` = weight, bias, running_mean,
running_var, num_batches_tracked; a CSC layer is ``DictConv2d.dn`` officially, with ``weight``
(the dictionary) and ``step_size`` (η, a buffer):

    layer0.0.dn.{weight,step_size}        -> backbone.conv1.*            CSC stem (3×3 s1 or 7×7 s2)
    layer0.1.BN                           -> backbone.bn1.BN
    layer0.2.dn.{weight,step_size}        -> backbone.stem_pool.*        -all ImageNet: CSC 3×3 s2
    layer{i}.{j}.conv{1,2}.weight         -> backbone.layer{i}.{j}.conv{1,2}.weight   SDNet-18
    layer{i}.layers.{j}.conv{1,2}.dn.*    -> backbone.layer{i}.{j}.conv{1,2}.*        SDNet-18-all
    layer{i}[.layers].{j}.bn{1,2}.BN      -> backbone.layer{i}.{j}.bn{1,2}.BN
    layer{i}[.layers].{j}.shortcut.0.weight, shortcut.1.BN
                                          -> backbone.layer{i}.{j}.downsample.0.weight, .1.BN
    linear.{weight,bias}                  -> head.fc.{weight,bias}

The official layer keeps its power-iteration vector out of the state dict (a plain attribute), so
every converted CSC layer gets an empty ``power_vector``: mmconv's layer then estimates L from the
dictionary on its first forward, as the official code did after loading.

Usage:
    python tools/model_converters/sdnet_to_mmconv.py model_best.pth.tar sdnet18_cifar10.pth \
        --config configs/sdnet/sdnet18_1xb128_cifar10.py
"""
from collections import OrderedDict
from typing import Dict

import torch

from mmconv.cli.state_dict_conversion import converter_main, rename_keys

BN = r'(?:weight|bias|running_mean|running_var|num_batches_tracked)'
CSC = r'(?:weight|step_size)'
BLOCK = r'layer([1-4])\.(?:layers\.)?(\d+)'

RULES = [
    (rf'layer0\.0\.dn\.({CSC})', r'backbone.conv1.\1'),
    (rf'layer0\.1\.({BN})', r'backbone.bn1.\1'),
    (rf'layer0\.2\.dn\.({CSC})', r'backbone.stem_pool.\1'),
    (r'layer([1-4])\.(\d+)\.(conv[12]\.weight)', r'backbone.layer\1.\2.\3'),
    (rf'layer([1-4])\.layers\.(\d+)\.(conv[12])\.dn\.({CSC})', r'backbone.layer\1.\2.\3.\4'),
    (rf'{BLOCK}\.(bn[12]\.{BN})', r'backbone.layer\1.\2.\3'),
    (rf'{BLOCK}\.shortcut\.(0\.weight|1\.{BN})', r'backbone.layer\1.\2.downsample.\3'),
    (r'linear\.(weight|bias)', r'head.fc.\1'),
]


def convert(state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Official SDNet-18 / SDNet-18-all keys → mmconv ``ImageClassifier`` with an ``SDNet``."""
    converted = rename_keys(state_dict, RULES)
    for key in [k for k in converted if k.endswith('.step_size')]:
        converted[key[:-len('step_size')] + 'power_vector'] = torch.empty(0)
    return converted


def main():
    converter_main(convert, 'SDNet (Delay-Xili/SDNet)', 'official checkpoint (.pth.tar)')


if __name__ == '__main__':
    main()
