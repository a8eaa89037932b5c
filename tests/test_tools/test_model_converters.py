"""The official-checkpoint converters of tools/model_converters/.

For each family a state dict in the official layout is built here, from the research notes'
description of the official architectures (module names, nesting, which layers exist), filled with
random tensors. Two models are then compared:

* the *converted* one: the converter renames the official dict, and the result is loaded with
  ``strict=True`` (so every key of the model is produced, none is left over, shapes agree);
* the *direct* one: each official tensor is copied straight into the module the official
  architecture puts it in, found by walking the model (no key strings of ours involved).

Equal state dicts and equal outputs show the mapping is a bijection onto our keys that moves every
tensor to its place, including among same-shaped tensors a wrong rule could swap.
"""
import importlib.util
import os.path as osp
import re
from typing import Dict, Iterator, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmconv.cli.state_dict_conversion import ConversionError

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
SCC_KEYS = ('weight', 'bias', 'alpha', 'beta')

Pairs = Iterator[Tuple[str, torch.Tensor]]

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def load_converter(name: str):
    path = osp.join(REPO_ROOT, 'tools', 'model_converters', f'{name}_to_mmconv.py')
    spec = importlib.util.spec_from_file_location(f'{name}_to_mmconv', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(config: str) -> torch.nn.Module:
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', config))
    init_default_scope('mmpretrain')
    return MODELS.build(cfg.model).eval()


def bn(prefix: str, module) -> Pairs:
    for key in BN_KEYS:
        yield f'{prefix}.{key}', getattr(module, key)


def stages(backbone):
    return [getattr(backbone, f'layer{i}') for i in range(1, 5)]


# ---------------------------------------------------------------- official layouts, by walking
def involution(prefix, inv) -> Pairs:
    """An official involution: conv1 = ConvModule 1×1 + BN + ReLU, conv2 = ConvModule 1×1 with bias."""
    yield f'{prefix}.conv1.conv.weight', inv.conv1.conv.weight
    yield from bn(f'{prefix}.conv1.bn', inv.conv1.bn)
    yield f'{prefix}.conv2.conv.weight', inv.conv2.conv.weight
    yield f'{prefix}.conv2.conv.bias', inv.conv2.conv.bias


def rednet_backbone_official(backbone) -> Pairs:
    """mmcls 0.x / mmdet 2.x RedNet: ConvModule stem, involution bottlenecks
    conv1/bn1/conv2/bn2/conv3/bn3/downsample."""
    for index in (0, 4):
        yield f'backbone.stem.{index}.conv.weight', backbone.stem[index].conv.weight
        yield from bn(f'backbone.stem.{index}.bn', backbone.stem[index].bn)
    yield from involution('backbone.stem.1', backbone.stem[1])
    yield from bn('backbone.stem.2', backbone.stem[2])
    for i, stage in enumerate(stages(backbone), 1):
        for j, block in enumerate(stage):
            prefix = f'backbone.layer{i}.{j}'
            yield f'{prefix}.conv1.weight', block.conv1.weight
            yield from involution(f'{prefix}.conv2', block.conv2)
            yield f'{prefix}.conv3.weight', block.conv3.weight
            for k in (1, 2, 3):
                yield from bn(f'{prefix}.bn{k}', getattr(block, f'norm{k}'))
            if block.downsample is not None:
                yield f'{prefix}.downsample.0.weight', block.downsample[0].weight
                yield from bn(f'{prefix}.downsample.1', block.downsample[1])


def rednet_official(model) -> Pairs:
    """mmcls 0.x RedNet classifier: the backbone and ``head.fc``."""
    yield from rednet_backbone_official(model.backbone)
    yield 'head.fc.weight', model.head.fc.weight
    yield 'head.fc.bias', model.head.fc.bias


def conv_with_bias(prefix, conv) -> Pairs:
    yield f'{prefix}.weight', conv.weight
    yield f'{prefix}.bias', conv.bias


def rednet_detector_official(model) -> Pairs:
    """The involution repository's mmdet 2.x detectors, from its notes: FPN (``FPN_involution``: each
    ``fpn_convs[i]`` of the used levels an involution itself; RetinaNet's extra stride-2 levels stay
    ConvModules), RPNHead (``RPNHead_involution``: ``rpn_conv`` an involution), Shared2FC bbox head,
    FCNMaskHead (``FCNMaskHead_involution``: ``convs[i]`` = Sequential(involution, ReLU)), RetinaHead."""
    from mmconv.ops import Involution
    yield from rednet_backbone_official(model.backbone)
    neck = model.neck
    for i, lateral in enumerate(neck.lateral_convs):
        yield from conv_with_bias(f'neck.lateral_convs.{i}.conv', lateral.conv)
    for i, output in enumerate(neck.fpn_convs):
        if isinstance(output.conv, Involution):
            yield from involution(f'neck.fpn_convs.{i}', output.conv)
        else:
            yield from conv_with_bias(f'neck.fpn_convs.{i}.conv', output.conv)
    if hasattr(model, 'rpn_head'):
        head = model.rpn_head
        if isinstance(head.rpn_conv, Involution):
            yield from involution('rpn_head.rpn_conv', head.rpn_conv)
        else:
            yield from conv_with_bias('rpn_head.rpn_conv', head.rpn_conv)
        for name in ('rpn_cls', 'rpn_reg'):
            yield from conv_with_bias(f'rpn_head.{name}', getattr(head, name))
        bbox = model.roi_head.bbox_head
        for j, fc in enumerate(bbox.shared_fcs):
            yield from conv_with_bias(f'roi_head.bbox_head.shared_fcs.{j}', fc)
        for name in ('fc_cls', 'fc_reg'):
            yield from conv_with_bias(f'roi_head.bbox_head.{name}', getattr(bbox, name))
        if getattr(model.roi_head, 'mask_head', None) is not None:
            mask = model.roi_head.mask_head
            for i, conv in enumerate(mask.convs):
                if isinstance(conv.conv, Involution):
                    yield from involution(f'roi_head.mask_head.convs.{i}.0', conv.conv)
                else:
                    yield from conv_with_bias(f'roi_head.mask_head.convs.{i}.conv', conv.conv)
            for name in ('upsample', 'conv_logits'):
                yield from conv_with_bias(f'roi_head.mask_head.{name}', getattr(mask, name))
    else:
        head = model.bbox_head
        for branch in ('cls_convs', 'reg_convs'):
            for i, conv in enumerate(getattr(head, branch)):
                yield from conv_with_bias(f'bbox_head.{branch}.{i}.conv', conv.conv)
        for name in ('retina_cls', 'retina_reg'):
            yield from conv_with_bias(f'bbox_head.{name}', getattr(head, name))


def sccnet_official(model) -> Pairs:
    """SCCNet.py: ``conv``/``bn1``/``maxpool`` stem, blocks conv1/bn1/conv2/bn2 of ``Conv2d``
    (SCC: weight, bias, alpha, beta), ``downsample`` = (SCC or conv, BN), ``head`` linear."""
    backbone = model.backbone
    yield 'conv.weight', backbone.conv1.weight
    yield from bn('bn1', backbone.norm1)
    for i, stage in enumerate(stages(backbone), 1):
        for j, block in enumerate(stage):
            for k in (1, 2):
                for key in SCC_KEYS:
                    yield f'layer{i}.{j}.conv{k}.{key}', getattr(getattr(block, f'conv{k}'), key)
                yield from bn(f'layer{i}.{j}.bn{k}', getattr(block, f'norm{k}'))
            if block.downsample is not None:
                shortcut = block.downsample[0]
                keys = SCC_KEYS if hasattr(shortcut, 'alpha') else ('weight', )
                for key in keys:
                    yield f'layer{i}.{j}.downsample.0.{key}', getattr(shortcut, key)
                yield from bn(f'layer{i}.{j}.downsample.1', block.downsample[1])
    yield 'head.weight', model.head.fc.weight
    yield 'head.bias', model.head.fc.bias


def sdnet_official(model, all_csc: bool) -> Pairs:
    """SDNet: ``layer0`` = (DictConv2d, BN[, DictConv2d]) with the CSC layer under ``.dn``; SDNet-18
    blocks of plain convs in ``layer{i}.{j}``, SDNet-18-all blocks of DictConv2d in
    ``layer{i}.layers.{j}``; ``shortcut`` = (1×1 conv, BN); ``linear`` head."""
    backbone = model.backbone

    def csc(prefix, layer):
        yield f'{prefix}.dn.weight', layer.weight
        yield f'{prefix}.dn.step_size', layer.step_size

    yield from csc('layer0.0', backbone.conv1)
    yield from bn('layer0.1', backbone.norm1)
    if hasattr(backbone.stem_pool, 'step_size'):
        yield from csc('layer0.2', backbone.stem_pool)
    for i, stage in enumerate(stages(backbone), 1):
        for j, block in enumerate(stage):
            prefix = f'layer{i}.layers.{j}' if all_csc else f'layer{i}.{j}'
            for k in (1, 2):
                conv = getattr(block, f'conv{k}')
                if all_csc:
                    yield from csc(f'{prefix}.conv{k}', conv)
                else:
                    yield f'{prefix}.conv{k}.weight', conv.weight
                yield from bn(f'{prefix}.bn{k}', getattr(block, f'norm{k}'))
            if block.downsample is not None:
                yield f'{prefix}.shortcut.0.weight', block.downsample[0].weight
                yield from bn(f'{prefix}.shortcut.1', block.downsample[1])
    yield 'linear.weight', model.head.fc.weight
    yield 'linear.bias', model.head.fc.bias


def random_like(key: str, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if key.endswith('num_batches_tracked'):
        return torch.randint(1, 1000, (), generator=generator)
    if key.endswith(('running_var', 'step_size')):
        return torch.rand(tensor.shape, generator=generator) + 0.5
    return torch.randn(tensor.shape, generator=generator) * 0.2


def official_checkpoint(pairs: Pairs) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """(official state dict of random tensors, official key → the module tensor it belongs in)."""
    generator = torch.Generator().manual_seed(0)
    targets = dict(pairs)
    return {k: random_like(k, t, generator) for k, t in targets.items()}, targets


# family: (converter, config, official walker, input size, number of official tensors)
CASES = {
    'rednet26': ('rednet', 'rednet/rednet26_64xb32_in1k.py', rednet_official, 32, None),
    'sccnet34-scc5x5': (
        'sccnet',
        'sccnet/sccnet34-scc5x5_1xb128_in1k.py',
        sccnet_official,
        32,
        # stem 1 + 5, 16 blocks × (2 × 4 + 2 × 5), 3 SCC shortcuts × 9, head 2
        1 + 5 + 16 * 18 + 3 * 9 + 2),
    'sccnet34-conv1x1':
    ('sccnet', 'sccnet/sccnet34-conv1x1_1xb128_in1k.py', sccnet_official, 32, 1 + 5 + 16 * 18 + 3 * 6 + 2),
    'sdnet18-cifar': (
        'sdnet',
        'sdnet/sdnet18_1xb128_cifar10.py',
        lambda m: sdnet_official(m, all_csc=False),
        32,
        # CSC stem 2 + 5, 8 blocks × (2 + 10), 3 shortcuts × 6, linear 2
        2 + 5 + 8 * 12 + 3 * 6 + 2),
    'sdnet18-all-imagenet': ('sdnet', 'sdnet/sdnet18-all_1xb256_in1k.py', lambda m: sdnet_official(m, all_csc=True), 32,
                             2 + 5 + 2 + 8 * 14 + 3 * 6 + 2),
    'sdnet18-all-noshortcut-cifar': ('sdnet', 'sdnet/sdnet18-all-noshortcut_1xb128_cifar10.py',
                                     lambda m: sdnet_official(m, all_csc=True), 32, 2 + 5 + 8 * 14 + 2),
}


@pytest.mark.parametrize('case', list(CASES))
def test_conversion_is_a_bijection_onto_the_model(case):
    converter_name, config, walker, size, num_official = CASES[case]
    converter = load_converter(converter_name)

    direct = build(config)
    official, targets = official_checkpoint(walker(direct))
    if num_official is not None:
        assert len(official) == num_official
    with torch.no_grad():
        for key, tensor in official.items():
            targets[key].copy_(tensor)

    converted_model = build(config)
    converted = converter.convert(official)
    converted_model.load_state_dict(converted, strict=True)

    # Every official tensor lands in exactly one place, and that place is the direct one.
    direct_state, converted_state = direct.state_dict(), converted_model.state_dict()
    assert direct_state.keys() == converted_state.keys()
    for key in direct_state:
        torch.testing.assert_close(converted_state[key], direct_state[key], rtol=0, atol=0)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(converted_model(x), direct(x), rtol=0, atol=0)


DETECTORS = [
    'faster-rcnn_rednet50_fpn_1x_coco', 'faster-rcnn_rednet50_involution-fpn_1x_coco',
    'faster-rcnn_rednet50_involution-fpn_involution-head_1x_coco', 'mask-rcnn_rednet50_fpn_1x_coco',
    'mask-rcnn_rednet50_involution-fpn_1x_coco', 'mask-rcnn_rednet50_involution-fpn_involution-head_1x_coco',
    'retinanet_rednet50_fpn_1x_coco', 'retinanet_rednet50_involution-fpn_1x_coco'
]
SEVEN_BY_SEVEN_STEM = {'+model.backbone.stem_kernel': 7}  # the official detection backbones'


def build_detector(name: str, cfg_options=SEVEN_BY_SEVEN_STEM) -> torch.nn.Module:
    from mmconv.analysis.config import build_model, load_config
    return build_model(load_config(osp.join(REPO_ROOT, 'configs', 'rednet', f'{name}.py'), cfg_options)).eval()


@pytest.mark.parametrize('name', DETECTORS)
def test_official_coco_checkpoints_convert_bijectively(name):
    pytest.importorskip('mmdet')
    converter = load_converter('rednet')
    direct = build_detector(name)
    official, targets = official_checkpoint(rednet_detector_official(direct))
    assert official['backbone.stem.1.conv2.conv.weight'].shape == (49 * 2, 8, 1, 1)  # the 7×7 stem
    with torch.no_grad():
        for key, tensor in official.items():
            targets[key].copy_(tensor)
    converted_model = build_detector(name)
    converted_model.load_state_dict(converter.convert(official), strict=True)
    direct_state, converted_state = direct.state_dict(), converted_model.state_dict()
    assert direct_state.keys() == converted_state.keys()
    for key in direct_state:
        torch.testing.assert_close(converted_state[key], direct_state[key], rtol=0, atol=0)


def test_coco_checkpoint_refused_by_the_wrong_config_with_what_to_do(tmp_path, monkeypatch, capsys):
    pytest.importorskip('mmdet')
    converter = load_converter('rednet')
    official, _ = official_checkpoint(
        rednet_detector_official(build_detector('faster-rcnn_rednet50_involution-fpn_1x_coco')))
    src, dst = tmp_path / 'faster_rcnn_red50_neck_fpn_1x_coco.pth', tmp_path / 'out.pth'
    torch.save(dict(state_dict=official), src)
    config = osp.join(REPO_ROOT, 'configs', 'rednet', 'faster-rcnn_rednet50_fpn_1x_coco.py')  # a conv FPN
    with pytest.raises(SystemExit) as exit_info:
        _run_main(converter,
                  [str(src), str(dst), '--config', config, '--cfg-options', '+model.backbone.stem_kernel=7'],
                  monkeypatch)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert re.search(r'missing .*\(8\):\n\s+neck\.fpn_convs\.0\.conv\.weight', message)
    assert 'neck.fpn_convs.0.conv.conv1.conv.weight' in message and not dst.exists()
    # The right config without the 7×7 stem: the shape check says what to add.
    config = osp.join(REPO_ROOT, 'configs', 'rednet', 'faster-rcnn_rednet50_involution-fpn_1x_coco.py')
    with pytest.raises(SystemExit):
        _run_main(converter, [str(src), str(dst), '--config', config], monkeypatch)
    message = capsys.readouterr().err
    assert 'backbone.stem.1.conv2.conv.weight: checkpoint (98, 8, 1, 1), model (18, 8, 1, 1)' in message
    assert 'add --cfg-options +model.backbone.stem_kernel=7' in message and not dst.exists()
    _run_main(converter,
              [str(src), str(dst), '--config', config, '--cfg-options', '+model.backbone.stem_kernel=7'], monkeypatch)
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['cfg_options'] == SEVEN_BY_SEVEN_STEM and len(saved['state_dict']) == len(official)


def test_official_shapes_from_the_notes():
    """Spot checks of the official shapes the converted tensors must have."""
    sccnet = dict(sccnet_official(build('sccnet/sccnet34-scc5x5_1xb128_in1k.py')))
    assert sccnet['conv.weight'].shape == (64, 3, 7, 7)
    assert sccnet['layer1.0.conv1.bias'].shape == (2, 64)  # one bias per level, L = 2
    assert sccnet['layer1.0.conv1.alpha'].shape == (2, 64, 1, 1)
    assert sccnet['layer2.0.downsample.0.weight'].shape == (128, 64, 5, 5)
    assert sccnet['layer2.0.downsample.0.beta'].shape == (3, 128, 1, 1)
    assert sccnet['head.weight'].shape == (1000, 512)
    rednet = dict(rednet_official(build('rednet/rednet26_64xb32_in1k.py')))
    # Classification stem involution: 32 channels, 2 groups, K = 3 → 18 kernel values per pixel.
    assert rednet['backbone.stem.1.conv2.conv.weight'].shape == (18, 8, 1, 1)
    assert rednet['backbone.layer1.0.conv2.conv2.conv.weight'].shape == (49 * 4, 16, 1, 1)
    sdnet = dict(sdnet_official(build('sdnet/sdnet18-all_1xb256_in1k.py'), all_csc=True))
    assert sdnet['layer0.0.dn.weight'].shape == (64, 3, 7, 7)
    assert sdnet['layer0.2.dn.weight'].shape == (64, 64, 3, 3)
    assert sdnet['layer0.0.dn.step_size'].shape == ()


def test_unknown_keys_are_reported():
    converter = load_converter('sccnet')
    model = build('sccnet/sccnet34-scc5x5_1xb128_in1k.py')
    official, _ = official_checkpoint(sccnet_official(model))
    official['layer5.0.conv1.weight'] = torch.zeros(1)
    official['fc.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError) as err:
        converter.convert(official)
    message = str(err.value)
    assert 'unexpected (2)' in message
    assert 'layer5.0.conv1.weight' in message and 'fc.weight' in message


def _run_main(module, argv, monkeypatch):
    monkeypatch.setattr('sys.argv', [f'{module.__name__}.py', *argv])
    module.main()


def test_cli_writes_an_mmengine_checkpoint_atomically(tmp_path, monkeypatch):
    """A DataParallel ``.pth.tar`` training checkpoint converts into a file mmengine loads."""
    from mmengine.runner import load_checkpoint

    converter = load_converter('sdnet')
    config = 'sdnet/sdnet18_1xb128_cifar10.py'
    direct = build(config)
    official, targets = official_checkpoint(sdnet_official(direct, all_csc=False))
    with torch.no_grad():
        for key, tensor in official.items():
            targets[key].copy_(tensor)
    src = tmp_path / 'checkpoint.pth.tar'
    wrapped = {f'module.{k}': v for k, v in official.items()}  # a saved DataParallel model
    torch.save(dict(epoch=220, perf=95.3, state_dict=wrapped), src)
    dst = tmp_path / 'out' / 'sdnet18_cifar10.pth'
    _run_main(converter, [str(src), str(dst), '--config', osp.join(REPO_ROOT, 'configs', config)], monkeypatch)

    assert sorted(p.name for p in dst.parent.iterdir()) == [dst.name]  # no temporary left over
    saved = torch.load(dst, weights_only=True)
    assert set(saved) == {'state_dict', 'meta'} and saved['meta']['source'].startswith('SDNet')
    model = build(config)
    load_checkpoint(model, str(dst), map_location='cpu', strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), direct(x), rtol=0, atol=0)


def test_cli_reports_missing_and_unexpected_keys(tmp_path, monkeypatch, capsys):
    converter = load_converter('rednet')
    config = 'rednet/rednet26_64xb32_in1k.py'
    official, _ = official_checkpoint(rednet_official(build(config)))
    del official['backbone.layer2.0.bn3.running_var']
    official['backbone.layer1.0.conv2.conv1.conv.bias'] = torch.zeros(4)  # a CedNet-style key
    src, dst = tmp_path / 'rednet26.pth', tmp_path / 'converted.pth'
    torch.save(dict(meta=dict(epoch=130), state_dict=official), src)
    with pytest.raises(SystemExit) as exit_info:
        _run_main(converter, [str(src), str(dst), '--config', osp.join(REPO_ROOT, 'configs', config)], monkeypatch)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert re.search(r'missing .*\(1\):\n\s+backbone\.layer2\.0\.bn3\.running_var', message)
    assert re.search(r'unexpected .*\(1\):\n\s+backbone\.layer1\.0\.conv2\.conv1\.conv\.bias', message)
    assert not dst.exists()
