"""OperatorResNet and its presets: shapes, freezing, norm_eval, with_cp, init, keys, errors."""
import copy

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm

import mmconv.models  # noqa: F401  (registers the backbones and conv-layer adapters)
from mmconv.models.backbones import CedNet, OperatorResNet, RedNet, SCCNet, SCConvResNet, SDNet
from mmconv.ops.csc import CSCConv2d
from mmconv.ops.involution import Involution
from mmconv.ops.scc import SCC

ALL = (0, 1, 2, 3)
# Cheap step-size estimates for the CSC layers: the power iteration runs on codes of at most 4×4.
FAST_CSC = dict(csc_kwargs=dict(power_max_size=4))


def ceil_div(size, stride):
    return -(-size // stride)


# (factory, input size, per-stage (channels, total stride)); sizes include odd and
# non-divisible ones: every stride-2 layer rounds up.
SHAPE_CASES = {
    'resnet18': (lambda: OperatorResNet(18, out_indices=ALL), 65, [(64, 4), (128, 8), (256, 16), (512, 32)]),
    'resnet50-cifar': (lambda: OperatorResNet(50, stem_type='conv3', stem_pool=None, out_indices=ALL), 33, [(256, 1),
                                                                                                            (512, 2),
                                                                                                            (1024, 4),
                                                                                                            (2048, 8)]),
    'rednet26': (lambda: RedNet(26, out_indices=ALL), 64, [(256, 4), (512, 8), (1024, 16), (2048, 32)]),
    'rednet26-stem7': (lambda: RedNet(26, stem_kernel=7, out_indices=ALL), 57, [(256, 4), (512, 8), (1024, 16),
                                                                                (2048, 32)]),
    'cednet26': (lambda: CedNet(26, out_indices=ALL), 65, [(256, 4), (512, 8), (1024, 16), (2048, 32)]),
    'sccnet18-scc5x5': (lambda: SCCNet(18, out_indices=ALL), 63, [(64, 4), (128, 8), (256, 16), (512, 32)]),
    'sccnet18-cifar': (lambda: SCCNet(18, stem_type='conv3', stem_pool=None, out_indices=ALL), 33, [(64, 1), (128, 2),
                                                                                                    (256, 4),
                                                                                                    (512, 8)]),
    'scconv-r26': (lambda: SCConvResNet(26, out_indices=ALL), 33, [(256, 4), (512, 8), (1024, 16), (2048, 32)]),
    'sdnet18-cifar': (lambda: SDNet(18, stem='cifar', out_indices=ALL, **FAST_CSC), 32, [(64, 1), (128, 2), (256, 4),
                                                                                         (512, 8)]),
    'sdnet18-all-imagenet': (lambda: SDNet(18, csc_layers='all', out_indices=ALL, **FAST_CSC), 65, [(64, 4), (128, 8),
                                                                                                    (256, 16),
                                                                                                    (512, 32)]),
    'sdnet18-all-noshortcut-cifar':
    (lambda: SDNet(18, csc_layers='all', shortcut=False, stem='cifar', out_indices=ALL, **FAST_CSC), 31, [(64, 1),
                                                                                                          (128, 2),
                                                                                                          (256, 4),
                                                                                                          (512, 8)]),
}


@pytest.mark.parametrize('name', list(SHAPE_CASES))
def test_stage_shapes_ceil_mode(name):
    factory, size, stages = SHAPE_CASES[name]
    model = factory().eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, size, size))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == [(1, c, ceil_div(size, s), ceil_div(size, s)) for c, s in stages]
    assert model.feat_dim == stages[-1][0]


@pytest.mark.parametrize('out_indices', [(3, ), (0, ), (1, 3), (0, 1, 2, 3)])
def test_out_indices(out_indices):
    model = OperatorResNet(18, out_indices=out_indices).eval()
    outs = model(torch.randn(1, 3, 32, 32))
    assert isinstance(outs, tuple)
    assert [o.shape[1] for o in outs] == [64 * 2**i for i in out_indices]


def test_forward_in_train_mode_and_backward():
    model = RedNet(26, out_indices=ALL)
    model.init_weights()
    model.train()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    sum(o.square().mean() for o in model(x)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def frozen_modules(model, frozen_stages):
    stem = list(model.stem_modules())
    return stem + [getattr(model, f'layer{i}') for i in range(1, frozen_stages + 1)]


@pytest.mark.parametrize('factory, frozen_stages', [
    (lambda f: RedNet(26, frozen_stages=f), 1),
    (lambda f: OperatorResNet(18, frozen_stages=f), 0),
    (lambda f: SDNet(18, csc_layers='all', frozen_stages=f, **FAST_CSC), 0),
    (lambda f: SCCNet(18, frozen_stages=f), 4),
])
def test_frozen_stages(factory, frozen_stages):
    model = factory(frozen_stages)
    model.train()
    frozen = frozen_modules(model, frozen_stages)
    frozen_ids = {id(p) for m in frozen for p in m.parameters()}
    assert frozen_ids, 'nothing was frozen'
    for param in model.parameters():
        assert param.requires_grad == (id(param) not in frozen_ids)
    for module in frozen:
        for sub in module.modules():
            assert not sub.training
    if frozen_stages < 4:
        live = getattr(model, f'layer{frozen_stages + 1}')
        assert all(m.training for m in live.modules())
    # Frozen norms keep their running statistics through a training forward.
    norms = [m for module in frozen for m in module.modules() if isinstance(m, _BatchNorm)]
    before = [m.running_mean.clone() for m in norms]
    model(torch.randn(2, 3, 32, 32))
    for norm, mean in zip(norms, before):
        torch.testing.assert_close(norm.running_mean, mean)


def test_norm_eval_covers_norms_inside_operators():
    model = RedNet(26, norm_eval=True)
    model.train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    inner = [
        m for op in model.modules() if isinstance(op, Involution) for m in op.modules() if isinstance(m, _BatchNorm)
    ]
    assert inner and all(not m.training for m in norms)
    assert model.training and model.layer1[0].conv1.training
    before = [m.running_var.clone() for m in norms]
    model(torch.randn(2, 3, 32, 32))
    for norm, var in zip(norms, before):
        torch.testing.assert_close(norm.running_var, var)


CP_CASES = {
    'resnet18-mish': lambda cp: OperatorResNet(18, act_cfg=dict(type='Mish'), with_cp=cp),
    'rednet26': lambda cp: RedNet(26, with_cp=cp),
    'cednet26': lambda cp: CedNet(26, with_cp=cp),
    'sccnet18': lambda cp: SCCNet(18, mask_prob=0.1, with_cp=cp),
    'scconv-r26': lambda cp: SCConvResNet(26, with_cp=cp),
    'sdnet18-all': lambda cp: SDNet(18, csc_layers='all', stem='cifar', with_cp=cp, **FAST_CSC),
}


def assert_close_scaled(actual, expected, msg=None):
    """Equal up to fp32 rounding of sums: tolerance relative to the tensor's largest entry."""
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale, msg=msg)


@pytest.mark.parametrize('name', CP_CASES)
def test_with_cp_gives_identical_outputs_and_gradients(name):
    """Checkpointed blocks give the same outputs and gradients (train mode, same random draws)."""
    torch.manual_seed(0)
    plain = CP_CASES[name](False)
    plain.init_weights()
    checkpointed = CP_CASES[name](True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    results = []
    for model in (plain, checkpointed):
        model.train()
        inputs = x.clone().requires_grad_()
        torch.manual_seed(1)
        outs = model(inputs)
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs).backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        results.append(([o.detach() for o in outs], inputs.grad, grads))
    (outs_a, gx_a, grads_a), (outs_b, gx_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(b, a)
    assert_close_scaled(gx_b, gx_a)
    assert grads_a.keys() == grads_b.keys()
    for key in grads_a:
        assert_close_scaled(grads_b[key], grads_a[key], msg=key)


def official_rednet_shapes(stage_blocks, stem_kernel=3):
    """State-dict keys and shapes of the official RedNet (d-li14/involution, cls/mmcls backbone).

    Written from the official layout, independently of mmconv: mmcv ConvModule stems
    (``conv``/``bn``), the involution's ``conv1.conv``/``conv1.bn``/``conv2.conv`` and mmcls
    bottlenecks (``conv1..3``, ``bn1..3``, ``downsample.0/1``).
    """
    shapes = {}

    def bn(prefix, channels):
        for key in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{prefix}.{key}'] = (channels, )
        shapes[f'{prefix}.num_batches_tracked'] = ()

    def involution(prefix, channels, kernel):
        shapes[f'{prefix}.conv1.conv.weight'] = (channels // 4, channels, 1, 1)
        bn(f'{prefix}.conv1.bn', channels // 4)
        shapes[f'{prefix}.conv2.conv.weight'] = (kernel**2 * channels // 16, channels // 4, 1, 1)
        shapes[f'{prefix}.conv2.conv.bias'] = (kernel**2 * channels // 16, )

    shapes['stem.0.conv.weight'] = (32, 3, 3, 3)
    bn('stem.0.bn', 32)
    involution('stem.1', 32, stem_kernel)
    bn('stem.2', 32)
    shapes['stem.4.conv.weight'] = (64, 32, 3, 3)
    bn('stem.4.bn', 64)
    in_channels = 64
    for i, num_blocks in enumerate(stage_blocks):
        mid, out = 64 * 2**i, 256 * 2**i
        for j in range(num_blocks):
            prefix = f'layer{i + 1}.{j}'
            shapes[f'{prefix}.conv1.weight'] = (mid, in_channels if j == 0 else out, 1, 1)
            bn(f'{prefix}.bn1', mid)
            involution(f'{prefix}.conv2', mid, 7)
            bn(f'{prefix}.bn2', mid)
            shapes[f'{prefix}.conv3.weight'] = (out, mid, 1, 1)
            bn(f'{prefix}.bn3', out)
            if j == 0:
                shapes[f'{prefix}.downsample.0.weight'] = (out, in_channels, 1, 1)
                bn(f'{prefix}.downsample.1', out)
        in_channels = out
    return shapes


@pytest.mark.parametrize('depth, stage_blocks', [(26, (1, 2, 4, 1)), (38, (2, 3, 5, 2))])
def test_rednet_state_dict_is_the_official_one(depth, stage_blocks):
    model = RedNet(depth)
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == official_rednet_shapes(stage_blocks)
    stem7 = {key: tuple(value.shape) for key, value in RedNet(depth, stem_kernel=7).state_dict().items()}
    assert stem7 == official_rednet_shapes(stage_blocks, stem_kernel=7)


def test_rednet_init_is_the_official_one():
    """Kaiming fan_out on every conv (involution internals too), BN 1/0, zero bn3."""
    torch.manual_seed(0)
    model = RedNet(50)
    model.init_weights()
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            expected = 0.0 if name.endswith('bn3') else 1.0
            assert torch.all(module.weight == expected), name
            assert torch.all(module.bias == 0), name
    span = model.layer3[0].conv2.conv2.conv  # 1×1, 64 → 49·16 with bias
    assert torch.all(span.bias == 0)
    fan_out = span.out_channels
    assert span.weight.std().item() == pytest.approx((2 / fan_out)**0.5, rel=0.1)
    reduce = model.layer4[0].conv2.conv1.conv  # 1×1, 512 → 128
    assert reduce.weight.std().item() == pytest.approx((2 / 128)**0.5, rel=0.1)


def test_sccnet_init_and_activations():
    """U(−1, 1) on all four SCC parameters, no zero-init residual, and no activation module."""
    torch.manual_seed(0)
    model = SCCNet(34, downsample='scc5x5')
    model.init_weights()
    sccs = [m for m in model.modules() if isinstance(m, SCC)]
    assert len(sccs) == 32 + 3
    for param_name in ('weight', 'bias', 'alpha', 'beta'):
        values = torch.cat([getattr(m, param_name).detach().flatten() for m in sccs])
        assert values.abs().max() <= 1 and values.abs().max() > 0.99, param_name
    assert all(torch.all(block.norm2.weight == 1) for layer in model.res_layers for block in getattr(model, layer))
    activations = (torch.nn.ReLU, torch.nn.Mish, torch.nn.GELU, torch.nn.SiLU)
    assert not any(isinstance(m, activations) for m in model.modules())


def test_sdnet_layout():
    """SDNet-18: only the stem is CSC; SDNet-18-all ImageNet: 16 block CSCs + 2 stem CSCs."""
    stem_only = SDNet(18)
    assert [n for n, m in stem_only.named_modules() if isinstance(m, CSCConv2d)] == ['conv1']
    assert isinstance(stem_only.stem_act, torch.nn.Identity)
    every = SDNet(18, csc_layers='all')
    names = [n for n, m in every.named_modules() if isinstance(m, CSCConv2d)]
    assert len(names) == 18 and names[:2] == ['conv1', 'stem_pool']
    assert isinstance(every.layer2[0].downsample[0], torch.nn.Conv2d)
    assert isinstance(every.layer1[0].act1, torch.nn.Identity)
    assert isinstance(every.layer1[0].act_out, torch.nn.ReLU)
    no_shortcut = SDNet(18, csc_layers='all', shortcut=False)
    assert no_shortcut.layer2[0].downsample is None
    assert not any(isinstance(m, torch.nn.ReLU) for m in no_shortcut.modules())


def test_sdnet_lambda_per_layer_at_test_time():
    torch.manual_seed(0)
    model = SDNet(18, csc_layers='all', stem='cifar', **FAST_CSC).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        reference = model(x)[0]
        previous = model.set_lambda(0.8, '^conv1$')
        assert previous == {'conv1': 0.1}
        assert model.conv1.lam == 0.8 and model.layer1[0].conv1.lam == 0.1
        changed = model(x)[0]
        assert not torch.allclose(changed, reference)
        model.set_lambda(0.1, '^conv1$')
        torch.testing.assert_close(model(x)[0], reference)
    every = model.set_lambda(0.3)
    assert len(every) == 17 and all(m.lam == 0.3 for m in model.modules() if isinstance(m, CSCConv2d))


@pytest.mark.parametrize('factory, message', [
    (lambda: OperatorResNet(20), 'depth must be one of'),
    (lambda: OperatorResNet(18, out_indices=(4, )), 'out_indices'),
    (lambda: OperatorResNet(18, out_indices=()), 'out_indices'),
    (lambda: OperatorResNet(18, num_stages=3, out_indices=(0, )), 'strides must have'),
    (lambda: OperatorResNet(18, frozen_stages=5), 'frozen_stages'),
    (lambda: OperatorResNet(18, stem_type='conv5'), 'stem_type'),
    (lambda: OperatorResNet(18, stem_pool='avg'), 'stem_pool'),
    (lambda: OperatorResNet(18, downsample_kernel_size=2), 'downsample_kernel_size'),
    (lambda: OperatorResNet(18, act_positions=('head', )), 'act_positions'),
    (lambda: RedNet(18), 'RedNet depth must be one of'),
    (lambda: CedNet(34), 'CedNet depth must be one of'),
    (lambda: RedNet(26, stem_kernel=4), 'odd kernel_size'),
    (lambda: RedNet(26, group_channels=48), 'group_channels'),
    (lambda: SCCNet(50), 'SCCNet depth must be one of'),
    (lambda: SCCNet(34, downsample='scc7x7'), 'downsample must be one of'),
    (lambda: SDNet(50), 'SDNet depth must be one of'),
    (lambda: SDNet(18, csc_layers='some'), 'csc_layers'),
    (lambda: SDNet(18, stem='tiny'), 'stem must be one of'),
    (lambda: SDNet(18, shortcut=False), "shortcut=False needs csc_layers='all'"),
    (lambda: SDNet(18, lam=-1.0), 'lam'),
    (lambda: SCConvResNet(50, alpha=1.5), 'alpha'),
])
def test_bad_arguments(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


@pytest.mark.parametrize('cfg', [
    dict(type='RedNet', depth=26),
    dict(type='CedNet', depth=26),
    dict(type='SCCNet', depth=18),
    dict(type='SCConvResNet', depth=26),
    dict(type='SDNet', depth=18, csc_layers='all', **FAST_CSC),
    dict(type='OperatorResNet', depth=18, downsample_kernel_size=3),
])
def test_builds_from_mmdet_and_mmpretrain_scopes(cfg):
    """Registered in mmengine's root MODELS: found from a detector's and a classifier's scope."""
    pytest.importorskip('mmdet')
    pytest.importorskip('mmpretrain')
    init_default_scope('mmdet')
    backbone = MODELS.build(dict(cfg, out_indices=ALL, frozen_stages=1, norm_eval=True))
    backbone.train()
    assert len(backbone(torch.randn(1, 3, 32, 32))) == 4
    init_default_scope('mmpretrain')
    classifier = MODELS.build(
        dict(type='ImageClassifier', backbone=copy.deepcopy(cfg), neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=7, in_channels=backbone.feat_dim)))
    assert classifier(torch.randn(2, 3, 32, 32), mode='tensor').shape == (2, 7)
