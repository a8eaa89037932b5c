"""Conv-layer adapters: build_conv_layer / ConvModule / mmdet's dcn slot, and construction errors."""
import pytest
import torch
from mmcv.cnn import ConvModule, build_conv_layer
from torch import nn

import mmconv.models  # noqa: F401  (registers the adapters)
from mmconv.ops.csc import CSCConv2d
from mmconv.ops.cvolution import CVolution
from mmconv.ops.involution import Involution
from mmconv.ops.scc import SCC
from mmconv.ops.scconv import SCConv

# (registered type, operator class, in_channels, out_channels, operator constructor for the same
# layer with the slot's kernel 3 so that state dicts and outputs can be compared).
OPERATORS = [
    ('Involution', Involution, 32, 32, lambda s: Involution(32, 3, s)),
    ('CVolution', CVolution, 32, 32, lambda s: CVolution(32, 3, s)),
    ('SCC', SCC, 16, 24, lambda s: SCC(16, 24, 3, s)),
    ('SCConv', SCConv, 32, 48, lambda s: SCConv(32, 48, 3, s)),
    ('CSCConv2d', CSCConv2d, 8, 16, lambda s: CSCConv2d(8, 16, 3, s)),
]
IDS = [op[0] for op in OPERATORS]


@pytest.mark.parametrize('type_, op_class, cin, cout, make_op', OPERATORS, ids=IDS)
@pytest.mark.parametrize('stride, size', [(1, 9), (2, 10), (2, 9)])
def test_build_conv_layer_matches_operator(type_, op_class, cin, cout, make_op, stride, size):
    """Same class, state-dict keys, output shape (nn.Conv2d's) and output as the operator itself."""
    torch.manual_seed(0)
    layer = build_conv_layer(dict(type=type_), cin, cout, 3, stride=stride, padding=1).eval()
    op = make_op(stride).eval()
    assert isinstance(layer, op_class)
    assert list(layer.state_dict()) == list(op.state_dict())
    op.load_state_dict(layer.state_dict())
    x = torch.randn(2, cin, size, size)
    expected_shape = nn.Conv2d(cin, cout, 3, stride, 1)(x).shape
    with torch.no_grad():
        out = layer(x)
        assert out.shape == expected_shape
        torch.testing.assert_close(out, op(x))


def test_scconv_example_from_the_brief():
    layer = build_conv_layer(dict(type='SCConv'), 64, 64, 3, stride=2, padding=1)
    assert layer(torch.randn(1, 64, 15, 15)).shape == (1, 64, 8, 8)


def test_op_kernel_size_keeps_the_slot_geometry():
    """A 7×7 involution in a 3×3 slot: the operator of kernel 7, the slot's output size."""
    torch.manual_seed(0)
    layer = build_conv_layer(dict(type='Involution', op_kernel_size=7), 32, 32, 3, stride=2, padding=1).eval()
    op = Involution(32, 7, 2).eval()
    op.load_state_dict(layer.state_dict())
    x = torch.randn(1, 32, 11, 11)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), op(x))
    assert layer.kernel_size == 7 and layer(x).shape == (1, 32, 6, 6)


def test_csc_takes_any_padding_and_op_kwargs():
    layer = build_conv_layer(dict(type='CSCConv2d', lam=0.3, num_steps=3), 3, 8, 3, stride=1, padding=0)
    assert layer.lam == 0.3 and layer.num_steps == 3
    assert layer(torch.randn(1, 3, 10, 10)).shape == (1, 8, 8, 8)


@pytest.mark.parametrize('type_, op_class, cin, cout, make_op', OPERATORS, ids=IDS)
def test_conv_module(type_, op_class, cin, cout, make_op):
    """mmcv's ConvModule (used by necks and heads) wraps every adapter, with its norm and act."""
    module = ConvModule(cin, cout, 3, stride=2, padding=1, conv_cfg=dict(type=type_), norm_cfg=dict(type='BN'))
    module.init_weights()
    assert isinstance(module.conv, op_class)
    assert module(torch.randn(2, cin, 9, 9)).shape == (2, cout, 5, 5)


@pytest.mark.parametrize('type_', IDS)
def test_mmdet_resnet_dcn_slot(type_):
    """A stock mmdet ResNet-50 takes the operator in its bottleneck 3×3 slots with one line."""
    from mmdet.models.backbones import ResNet

    # A quarter of the usual widths keeps this fast; the slots still see 32 to 128 channels.
    model = ResNet(depth=50, base_channels=16, dcn=dict(type=type_), stage_with_dcn=(False, True, True, True),
                   out_indices=(0, 1, 2, 3), norm_eval=False)
    model.init_weights()
    model.train()
    assert isinstance(model.layer1[0].conv2, nn.Conv2d)
    assert all(
        isinstance(getattr(model, f'layer{i}')[0].conv2, nn.Module)
        and type(getattr(model, f'layer{i}')[0].conv2).__name__.endswith('Layer') for i in (2, 3, 4))
    outs = model(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)]
    sum(o.mean() for o in outs).backward()


def test_mmdet_resnet_dcn_slot_with_op_kernel():
    """RedNet's 7×7 involution through the dcn slot, state-dict keys as in the official RedNet."""
    from mmdet.models.backbones import ResNet
    model = ResNet(depth=50, dcn=dict(type='Involution', op_kernel_size=7), stage_with_dcn=(True, True, True, True))
    assert model.layer1[0].conv2.kernel_size == 7
    assert 'layer1.0.conv2.conv2.conv.weight' in model.state_dict()
    assert model.state_dict()['layer1.0.conv2.conv2.conv.weight'].shape == (49 * 4, 16, 1, 1)


@pytest.mark.parametrize('type_, args, kwargs, message', [
    ('Involution', (64, 128, 3), {}, 'in_channels must equal out_channels'),
    ('CVolution', (64, 32, 3), {}, 'in_channels must equal out_channels'),
    ('Involution', (40, 40, 3), {}, 'multiple of group_channels'),
    ('CVolution', (48, 48, 3), dict(cq_groups=32), 'multiple of cq_groups'),
    ('Involution', (64, 64, 3), dict(groups=2), 'groups=1'),
    ('CVolution', (64, 64, 3), dict(groups=4), 'groups=1'),
    ('SCConv', (64, 64, 3), dict(groups=2), 'groups=1'),
    ('SCC', (64, 64, 3), dict(groups=3), 'groups must.* divid'),
    ('CSCConv2d', (64, 64, 3), dict(groups=5), 'groups must.* divid'),
    ('Involution', (64, 64, 3), dict(bias=True), 'bias=False'),
    ('CVolution', (64, 64, 3), dict(bias=True), 'bias=False'),
    ('SCConv', (64, 64, 3), dict(bias=True), 'bias=False'),
    ('CSCConv2d', (64, 64, 3), dict(bias=True), 'bias=False'),
    ('Involution', (64, 64, 3), dict(padding=0), 'padding must be 1'),
    ('SCC', (64, 64, 3), dict(padding=2), 'padding must be 1'),
    ('SCConv', (64, 64, 3), dict(dilation=2, padding=1), 'padding must be 2'),
    ('CSCConv2d', (64, 64, 3), dict(padding=0, op_kernel_size=5), 'padding must be 1'),
    ('SCC', (64, 64, 4), {}, 'odd kernel_size'),
    ('Involution', (64, 64, 3), dict(op_kernel_size=6), 'odd kernel_size'),
    ('SCConv', (64, 64, (3, 5)), {}, 'square kernel_size'),
    ('SCC', (64, 64, 3), dict(stride=0), 'positive stride'),
    ('CVolution', (64, 64, 3), dict(dilation=0), 'dilation'),
    ('SCConv', (33, 64, 3), {}, 'even'),
    ('SCC', (64, 64, 3), dict(mask_prob=0.9), 'mask_prob'),
])
def test_unsupported_arguments_raise_at_construction(type_, args, kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        build_conv_layer(dict(type=type_), *args, **kwargs)
    text = str(error.value)
    assert text.endswith('.') and text.count('. ') == 0, f'not one sentence: {text}'


def test_scc_accepts_either_bias():
    """SCC's per-level biases belong to its selection, so the slot's bias flag does not remove them."""
    for bias in (False, True):
        layer = build_conv_layer(dict(type='SCC'), 8, 8, 3, padding=1, bias=bias)
        assert layer.bias.shape == (2, 8)
