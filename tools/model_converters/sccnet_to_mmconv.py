"""Convert an SCCNet checkpoint (github.com/Raven-Z-china/SCCNet) into an mmconv checkpoint.

The released checkpoints (``flin1kp0.5ds5x-best.pth``, Hugging Face ``Raven686/SCCNet``) are bare
state dicts of ``model/SCCNet.py``'s ``SCCNet`` (its training script saves ``model.state_dict()``
and loads with ``load_state_dict``). Its layout and the mmconv names (``ImageClassifier`` with an
``SCCNet`` backbone and a ``LinearClsHead``); ``BN`` = weight, bias, running_mean, running_var,
num_batches_tracked; ``SCC`` = weight, bias, alpha, beta (SCC's shapes are the same in both):

    conv.weight                        -> backbone.conv1.weight         stem conv 7×7 s2, 3 → 64
    bn1.BN                             -> backbone.bn1.BN
    layer{i}.{j}.conv{1,2}.SCC         -> backbone.layer{i}.{j}.conv{1,2}.SCC
    layer{i}.{j}.bn{1,2}.BN            -> backbone.layer{i}.{j}.bn{1,2}.BN
    layer{i}.0.downsample.0.SCC        -> backbone.layer{i}.0.downsample.0.SCC  (SCC shortcut)
    layer{i}.0.downsample.0.weight     -> backbone.layer{i}.0.downsample.0.weight  (conv shortcut)
    layer{i}.0.downsample.1.BN         -> backbone.layer{i}.0.downsample.1.BN
    head.weight, head.bias             -> head.fc.weight, head.fc.bias  linear 512 → classes

Usage:
    python tools/model_converters/sccnet_to_mmconv.py flin1kp0.5ds5x-best.pth sccnet34.pth \
        --config configs/sccnet/sccnet34-scc5x5_1xb128_in1k.py
"""
from collections import OrderedDict
from typing import Dict

import torch

from mmconv.cli.state_dict_conversion import converter_main, rename_keys

BN = r'(?:weight|bias|running_mean|running_var|num_batches_tracked)'
SCC = r'(?:weight|bias|alpha|beta)'

RULES = [
    (r'conv\.weight', r'backbone.conv1.weight'),
    (rf'bn1\.({BN})', r'backbone.bn1.\1'),
    (rf'layer([1-4])\.(\d+)\.(conv[12]\.{SCC}|bn[12]\.{BN})', r'backbone.layer\1.\2.\3'),
    (rf'layer([1-4])\.0\.downsample\.(0\.{SCC}|1\.{BN})', r'backbone.layer\1.0.downsample.\2'),
    (r'head\.(weight|bias)', r'head.fc.\1'),
]


def convert(state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """SCCNet (seed repository) keys → mmconv ``ImageClassifier`` with an ``SCCNet`` backbone."""
    return rename_keys(state_dict, RULES)


def main():
    converter_main(convert, 'SCCNet (Raven-Z-china/SCCNet)', 'SCCNet checkpoint (.pth, a state dict)')


if __name__ == '__main__':
    main()
