"""OperatorDenseNet: shapes, DenseNet-121 / SCConv-D121 budgets, freezing, norm_eval, with_cp."""
import copy

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm

import mmconv.models  # noqa: F401  (registers the backbones and conv-layer adapters)
from mmconv.analysis import flop_analyzer
from mmconv.models.backbones import OperatorDenseNet

TINY = dict(growth_rate=8, depths=(2, 2, 2, 2), init_channels=16)
SCCONV = dict(type='SCConv')


def classifier(op_cfg, num_classes=100):
    """DenseNet-121 (``op_cfg=None``) or SCConv-D121 as an mmpretrain ImageClassifier."""
    init_default_scope('mmpretrain')
    return MODELS.build(
        dict(type='ImageClassifier', backbone=dict(type='OperatorDenseNet', arch='121', op_cfg=op_cfg),
             neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=num_classes,
                                                               in_channels=1024)))


@pytest.mark.parametrize('stem_type, size, strides', [
    ('conv7', 64, (4, 8, 16, 32)),
    ('conv7', 65, (4, 8, 16, 32)),
    ('conv3', 32, (1, 2, 4, 8)),
    ('conv3', 33, (1, 2, 4, 8)),
])
def test_stage_shapes(stem_type, size, strides):
    model = OperatorDenseNet(arch=TINY, stem_type=stem_type, out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.rand(2, 3, size, size))
    # Widths: 16 + 2·8 = 32, then compress by half and grow by 16 in every later stage.
    widths = (32, 32, 32, 32)
    assert [tuple(o.shape) for o in outs] == [(2, w, -(-size // s), -(-size // s)) for w, s in zip(widths, strides)]
    assert model.stage_channels == list(widths) and model.feat_dim == 32


def test_densenet121_widths():
    model = OperatorDenseNet(out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 1024, 2, 2)]
    dense_layers = [m for m in model.modules() if type(m).__name__ == 'DenseLayer']
    assert len(dense_layers) == 58


def test_last_stage_is_normalised_and_activated():
    model = OperatorDenseNet(arch=TINY, stem_type='conv3').eval()
    out = model(torch.randn(2, 3, 16, 16))[0]
    assert out.min() >= 0  # ReLU after the final norm


def test_scconv_is_one_config_line():
    """The SCConv variant differs by ``op_cfg`` only, and only in the dense layers' 3×3 slot."""
    plain = OperatorDenseNet(arch=TINY)
    scconv = OperatorDenseNet(arch=TINY, op_cfg=SCCONV)
    plain_keys = set(plain.state_dict())
    scconv_keys = set(scconv.state_dict())
    assert {k for k in plain_keys - scconv_keys} == {k for k in plain_keys if '.conv2.' in k}
    assert all('.conv2.' in k for k in scconv_keys - plain_keys)
    slot = scconv.layer2[1][0].conv2
    assert type(slot).__name__ != 'Conv2d'
    # bn_size·growth_rate = 32 → growth_rate = 8 channels, as SCConv-D121's 128 → 32.
    assert slot(torch.randn(2, 32, 8, 8)).shape == (2, 8, 8, 8)


# The SCConv reproduction's table (seed 001: 100-class head, 224², 1 MAC = 1 FLOP).
BUDGETS = {
    'DenseNet-121': (None, 7.06e6, 2.896e9),
    'SCConv-D121': (SCCONV, 5.51e6, 1.983e9),
}


@pytest.mark.parametrize('name', list(BUDGETS))
def test_budget(name):
    """Parameters within 0.5 % and FLOPs within 3 % of the published budget.

    FLOPs are mmengine's count with mmconv's operator handles (what ``get_flops.py`` prints):
    convolutions, SCConv's SRU/CRU Functions, BN, global pooling and the linear head. Measured:
    DenseNet-121 7,056,356 parameters and 2.865 G (2.833 G of it convolutions), SCConv-D121
    5,497,316 and 1.974 G; the table's FLOPs come from a counter that also counts more of the
    elementwise work.
    """
    op_cfg, params, flops = BUDGETS[name]
    model = classifier(op_cfg).eval()
    counted = sum(p.numel() for p in model.parameters())
    assert counted == pytest.approx(params, rel=0.005)
    with torch.no_grad():  # what get_model_complexity_info counts, without its second trace
        analyzer = flop_analyzer(model, (torch.rand(1, 3, 224, 224), ))
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        assert analyzer.total() == pytest.approx(flops, rel=0.03)


def _frozen(module) -> bool:
    return all(not p.requires_grad
               for p in module.parameters()) and not any(m.training
                                                         for m in module.modules() if isinstance(m, _BatchNorm))


def test_frozen_stages():
    model = OperatorDenseNet(arch=TINY, frozen_stages=2)
    model.train()
    assert _frozen(model.stem) and _frozen(model.layer1) and _frozen(model.layer2)
    for module in (model.layer3, model.layer4, model.final_norm):
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training for m in module.modules() if isinstance(m, _BatchNorm))

    everything = OperatorDenseNet(arch=TINY, frozen_stages=4).train()
    assert all(not p.requires_grad for p in everything.parameters())

    nothing = OperatorDenseNet(arch=TINY, frozen_stages=-1).train()
    assert all(p.requires_grad for p in nothing.parameters())


def test_frozen_stem_still_trains_later_stages():
    model = OperatorDenseNet(arch=TINY, stem_type='conv3', frozen_stages=0).train()
    before = copy.deepcopy(model.state_dict())
    model(torch.randn(4, 3, 16, 16))[0].sum().backward()
    assert model.stem[0].weight.grad is None
    assert model.layer1[0][0].conv1.weight.grad is not None
    assert torch.equal(before['stem.0.weight'], model.state_dict()['stem.0.weight'])


def test_norm_eval():
    model = OperatorDenseNet(arch=TINY, norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert all(p.requires_grad for p in model.parameters())
    stats = bns[3].running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(stats, bns[3].running_mean)


@pytest.mark.parametrize('op_cfg', [None, SCCONV], ids=['conv', 'scconv'])
def test_with_cp_equality(op_cfg):
    """Activation checkpointing changes memory, not the function or its gradients."""
    torch.manual_seed(0)
    plain = OperatorDenseNet(arch=TINY, stem_type='conv3', op_cfg=op_cfg).train()
    plain.init_weights()
    checkpointed = OperatorDenseNet(arch=TINY, stem_type='conv3', op_cfg=op_cfg, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(3, 3, 16, 16)
    outputs, grads = [], []
    for model in (plain, checkpointed):
        inputs = x.clone().requires_grad_()
        out = model(inputs)[0]
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outputs.append(out.detach())
        grads.append([inputs.grad] + [p.grad for p in model.parameters()])
    torch.testing.assert_close(outputs[0], outputs[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    assert any(layer.with_cp for layer in checkpointed.modules() if type(layer).__name__ == 'DenseLayer')


def test_init_weights_follow_init_cfg():
    model = OperatorDenseNet(arch=TINY)
    model.init_weights()
    bn = model.layer1[0][0].norm1
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    assert torch.equal(bn.bias, torch.zeros_like(bn.bias))
    # Kaiming fan_out: std = sqrt(2 / (out_channels · k²)) for the 7×7 stem conv (16 outputs).
    stem_std = model.stem[0].weight.std().item()
    assert stem_std == pytest.approx((2 / (16 * 49))**0.5, rel=0.15)


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='122'), 'arch'),
    (dict(arch=dict(growth_rate=8, depths=(2, 2))), 'arch'),
    (dict(arch=dict(TINY, depths=(2, 0, 2, 2))), 'depths'),
    (dict(stem_type='deep'), 'stem_type'),
    (dict(compression=0), 'compression'),
    (dict(out_indices=(4, )), 'out_indices'),
    (dict(frozen_stages=5), 'frozen_stages'),
])
def test_bad_arguments(kwargs, match):
    kwargs.setdefault('arch', TINY)
    with pytest.raises(ValueError, match=match):
        OperatorDenseNet(**kwargs)


def test_pretrained_checkpoint_is_loaded_strictly(tmp_path):
    """A matching checkpoint loads exactly; a plain-conv one into SCConv-DenseNet names its keys."""
    from mmconv.models.pretrained import CheckpointMismatchError
    source = OperatorDenseNet(arch=TINY)
    torch.save(dict(state_dict=source.state_dict()), tmp_path / 'plain.pth')
    init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'plain.pth'))
    same = OperatorDenseNet(arch=TINY, init_cfg=init_cfg)
    same.init_weights()
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in same.state_dict().items())
    other = OperatorDenseNet(arch=TINY, op_cfg=SCCONV, init_cfg=init_cfg)
    with pytest.raises(CheckpointMismatchError, match=r'does not match OperatorDenseNet(.|\n)*missing.*'
                       r'layer1\.0\.0\.conv2\.sru\.gn\.weight'):
        other.init_weights()
