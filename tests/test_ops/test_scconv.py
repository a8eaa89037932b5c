import math

import pytest
import torch
import torch.nn.functional as F

from mmconv.analysis.memory import saved_tensor_bytes as saved_bytes
from mmconv.ops.scconv import CRU, SRU, SCConv
from mmconv.ops.scconv.ops import cru as cru_op
from mmconv.ops.scconv.ops import sru_squeeze
from op_integration import (assert_channels_last, assert_compiled_matches_eager, assert_empty_batch,
                            assert_onnx_matches_eager, assert_second_order_refused)


def make_scconv(*args, seed=0, dtype=torch.float64, **kwargs):
    """An SCConv with perturbed GroupNorm affine and GWC bias so no parameter sits at its init."""
    torch.manual_seed(seed)
    module = SCConv(*args, **kwargs).to(dtype)
    with torch.no_grad():
        module.sru.gn.weight.uniform_(0.7, 1.3)
        module.sru.gn.bias.uniform_(-0.3, 0.3)
        if module.cru.gwc.bias is not None:
            module.cru.gwc.bias.normal_()
    return module


def away_from_gate(*shape, dtype=torch.float32):
    """Input whose GroupNorm output stays away from 0, so no reweight sits near the threshold."""
    return torch.randn(*shape, dtype=dtype).sign() * (1 + torch.rand(*shape, dtype=dtype))


def gate_margin(module, x):
    """Smallest |R − t| of the SRU reweights (the gate is piecewise in R)."""
    sru = module.sru
    gamma = sru.gn.weight.detach().double()
    reweights = torch.sigmoid(
        F.group_norm(x.double(), sru.gn.num_groups, gamma,
                     sru.gn.bias.detach().double(), sru.gn.eps) * (gamma / gamma.sum()).view(-1, 1, 1))
    return float((reweights - sru.gate_threshold).abs().min())


CONFIGS = [
    dict(in_channels=16, out_channels=16),
    dict(in_channels=32, out_channels=8),  # DenseNet-like C1 = 4·C2: PWC2 has no outputs
    dict(in_channels=16, out_channels=24, stride=2),
    dict(in_channels=16, out_channels=16, gate='hard'),
    dict(in_channels=16, out_channels=16, fuse='joint'),
    dict(in_channels=16, out_channels=12, alpha=0.75, gwc_bias=True, stride=2, dilation=2, fuse='joint'),
    dict(in_channels=24, out_channels=16, kernel_size=5, gn_groups=16),
]


def run_both(module, x, seed=7):
    results = []
    for impl in ('reference', 'fast'):
        module.impl = impl
        out = module(x)
        grad_out = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(seed))
        grads = torch.autograd.grad(out, [x, *module.parameters()], grad_out, allow_unused=True)
        results.append((out, grads))
    return results


@pytest.mark.parametrize('config', CONFIGS)
def test_fast_matches_reference_fp64(config):
    module = make_scconv(**config)
    x = torch.randn(2, config['in_channels'], 9, 7, dtype=torch.float64, requires_grad=True)
    (ref_out, ref_grads), (fast_out, fast_grads) = run_both(module, x)
    stride = config.get('stride', 1)
    assert fast_out.shape == (2, config['out_channels'], math.ceil(9 / stride), math.ceil(7 / stride))
    assert torch.allclose(fast_out, ref_out, rtol=0, atol=1e-12)
    names = ['x'] + [name for name, _ in module.named_parameters()]
    for name, ref, fast in zip(names, ref_grads, fast_grads):
        if config.get('gate') == 'hard' and name.startswith('sru.gn'):
            assert ref is None and fast is None, name  # the hard masks stop every GN gradient
            continue
        assert torch.allclose(fast, ref, rtol=0, atol=1e-10), name


@pytest.mark.parametrize('config', [CONFIGS[0], CONFIGS[1], CONFIGS[2]])
def test_fast_matches_reference_fp32(config):
    module = make_scconv(**config, dtype=torch.float32)
    x = away_from_gate(2, config['in_channels'], 10, 10)
    assert gate_margin(module, x) > 1e-4  # no reweight that fp32 rounding could move across t
    x.requires_grad_(True)
    (ref_out, ref_grads), (fast_out, fast_grads) = run_both(module, x)
    assert (fast_out - ref_out).abs().max() <= 1e-5
    names = ['x'] + [name for name, _ in module.named_parameters()]
    for name, ref, fast in zip(names, ref_grads, fast_grads):
        # Weight gradients are sums over the batch and pixels (|∂W| reaches ~30 here), where the
        # summation order alone moves a few ulp: the bound is 1e-5 at unit scale, relative above.
        assert (fast - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max().item()), name


@pytest.mark.parametrize('gate', ['soft', 'hard'])
@pytest.mark.parametrize('fuse', ['paper', 'joint'])
def test_gradcheck_fast_functions(gate, fuse):
    module = make_scconv(8, 6, stride=2, gate=gate, fuse=fuse, gwc_bias=True, seed=2)
    x = away_from_gate(1, 8, 5, 5, dtype=torch.float64)
    assert gate_margin(module, x) > 1e-3
    sru, cru = module.sru, module.cru

    def run(x, gamma, beta, squeeze1, squeeze2, gwc_weight, gwc_bias, pwc1, pwc2):
        squeezed = sru_squeeze(x, gamma, beta, squeeze1, squeeze2, sru.gn.num_groups, sru.gn.eps, sru.gate_threshold,
                               gate)
        return cru_op(squeezed, gwc_weight, gwc_bias, pwc1, pwc2, 2, 1, 2, fuse)[0]

    params = [
        sru.gn.weight, sru.gn.bias, cru.squeeze1.weight, cru.squeeze2.weight, cru.gwc.weight, cru.gwc.bias,
        cru.pwc1.weight, cru.pwc2.weight
    ]
    inputs = [x.requires_grad_(True)] + [p.detach().clone().requires_grad_(True) for p in params]
    if gate == 'hard':
        inputs[1].requires_grad_(False)
        inputs[2].requires_grad_(False)
    assert torch.autograd.gradcheck(run, inputs, fast_mode=True)


def test_sru_matches_definition():
    """Soft and hard gates of the SRU written element by element."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    for gate in ('soft', 'hard'):
        sru = SRU(8, gn_groups=4, gate=gate).double()
        with torch.no_grad():
            sru.gn.weight.uniform_(0.5, 1.5)
        normed = F.group_norm(x, 4, sru.gn.weight, sru.gn.bias)
        reweights = torch.sigmoid(normed * (sru.gn.weight / sru.gn.weight.sum()).view(-1, 1, 1))
        expected = torch.empty_like(x)
        for c in range(8):
            partner = (c + 4) % 8
            r, rp = reweights[:, c], reweights[:, partner]
            if gate == 'soft':
                w1 = torch.where(r > 0.5, 1.0, r)
                w2_partner = torch.where(rp > 0.5, 0.0, rp)
            else:
                w1 = (r >= 0.5).double()
                w2_partner = (rp < 0.5).double()
            expected[:, c] = w1 * x[:, c] + w2_partner * x[:, partner]
        assert torch.allclose(sru(x), expected, atol=1e-14)


@pytest.mark.parametrize('fuse', ['paper', 'joint'])
def test_cru_matches_definition(fuse):
    """The CRU written from its submodules: split, squeeze, transform, pooled softmax fuse."""
    torch.manual_seed(0)
    cru = CRU(16, 12, stride=2, fuse=fuse, gwc_bias=True).double()
    x = torch.randn(2, 16, 7, 7, dtype=torch.float64)
    up, low = cru.squeeze1(x[:, :8]), cru.squeeze2(x[:, 8:])
    y1 = cru.gwc(up) + cru.pwc1(up)
    y2 = torch.cat([cru.pwc2(low), low[:, :, ::2, ::2]], 1)
    s1, s2 = y1.mean((2, 3), keepdim=True), y2.mean((2, 3), keepdim=True)
    if fuse == 'paper':  # Eq. 8: a two-way softmax per channel
        beta1 = s1.exp() / (s1.exp() + s2.exp())
        expected = beta1 * y1 + (1 - beta1) * y2
    else:  # one softmax over all 2·C2 pooled channels
        weights = torch.softmax(torch.cat([s1, s2], 1), dim=1)
        expected = weights[:, :12] * y1 + weights[:, 12:] * y2
    assert torch.allclose(cru(x), expected, atol=1e-14)


def test_soft_gate_trains_groupnorm_hard_gate_does_not():
    x = torch.randn(2, 16, 8, 8)
    for gate, expect_grad in (('soft', True), ('hard', False)):
        for impl in ('reference', 'fast'):
            module = SCConv(16, 16, gate=gate, impl=impl)
            module(x).square().mean().backward()
            grad = module.sru.gn.weight.grad
            assert (grad is not None and grad.abs().sum() > 0) == expect_grad, (gate, impl)


@pytest.mark.parametrize('size', [(7, 7), (9, 4), (1, 1)])
def test_odd_sizes_with_stride_two(size):
    x = torch.randn(1, 16, *size)
    for impl in ('reference', 'fast'):
        module = SCConv(16, 8, stride=2, impl=impl)
        assert module(x).shape == (1, 8, math.ceil(size[0] / 2), math.ceil(size[1] / 2))


def test_densenet_layer_has_no_pwc2():
    module = SCConv(128, 32)
    assert module.cru.pwc2 is None
    assert module(torch.randn(1, 128, 5, 5)).shape == (1, 32, 5, 5)


@pytest.mark.parametrize('batch', [1, 2])
def test_fast_path_leaves_its_inputs_alone(batch):
    """With batch 1 the reused lower part is a contiguous view of S; it must not be written."""
    module = make_scconv(32, 8)
    squeezed = torch.randn(batch, 16, 5, 5, dtype=torch.float64)
    before = squeezed.clone()
    cru_op(squeezed, module.cru.gwc.weight, None, module.cru.pwc1.weight, None, 1, 1, 2, 'paper')
    assert torch.equal(squeezed, before)
    x = torch.randn(batch, 32, 5, 5, dtype=torch.float64)
    (ref_out, _), (fast_out, _) = run_both(module, x.requires_grad_(True))
    assert torch.allclose(fast_out, ref_out, rtol=0, atol=1e-12)


@pytest.mark.parametrize('kwargs,name', [
    (dict(in_channels=15), 'in_channels'),
    (dict(kernel_size=2), 'kernel_size'),
    (dict(alpha=1.0), 'alpha'),
    (dict(alpha=0.0), 'alpha'),
    (dict(in_channels=2), 'in_channels'),
    (dict(gwc_groups=3), 'gwc_groups'),
    (dict(out_channels=2), 'out_channels'),
    (dict(gate='sigmoid'), 'gate'),
    (dict(fuse='sum'), 'fuse'),
    (dict(impl='triton'), 'impl'),
    (dict(gate_threshold=1.5), 'gate_threshold'),
    (dict(stride=0), 'stride'),
    (dict(squeeze_ratio=0), 'squeeze_ratio'),
])
def test_bad_arguments(kwargs, name):
    args = dict(in_channels=16, out_channels=16)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        SCConv(**args)


def test_gn_groups_reduced_to_divide_channels():
    assert SCConv(24, 24, gn_groups=16).sru.gn.num_groups == 8
    assert SCConv(6, 6, squeeze_ratio=1, gwc_groups=1).sru.gn.num_groups == 2


@pytest.mark.parametrize('impl', ['reference', 'fast'])
@pytest.mark.parametrize('config', [CONFIGS[0], CONFIGS[2], CONFIGS[5]])
def test_bf16_autocast_cpu(impl, config):
    module = make_scconv(**config, dtype=torch.float32, impl=impl)
    x = torch.randn(2, config['in_channels'], 9, 9, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = module(x)
    out.float().square().mean().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)


def test_fast_path_saves_input_squeezed_map_and_branch_difference():
    x = torch.randn(2, 16, 12, 12, requires_grad=True)
    module = SCConv(16, 16)
    fast = saved_bytes(lambda: module(x))
    module.impl = 'reference'
    reference = saved_bytes(lambda: module(x))
    pixels = 2 * 12 * 12
    activations = 4 * pixels * (16 + 8 + 16)  # x (C1), S (C1/2), Y1 − Y2 (C2)
    params = 4 * sum(p.numel() for p in module.parameters())
    assert activations <= fast <= activations + params + 4 * 2 * 16  # + fuse weights (B×C2)
    assert reference > 3 * fast


def per_layer_params(c1, c2, gwc_bias=False):
    """Paper Eq. 11 with α = 1/2, r = 2, g = 2, k = 3, plus GroupNorm (and the GWC bias)."""
    return (2 * c1 + c1 * c1 // 4 + 9 * (c1 // 4) * c2 // 2 + (c1 // 4) * c2 + (c1 // 4) * (c2 - c1 // 4) +
            (c2 if gwc_bias else 0))


@pytest.mark.parametrize('c1,c2', [(64, 64), (512, 512), (128, 32), (16, 24)])
def test_parameter_count_by_hand(c1, c2):
    for gwc_bias in (False, True):
        module = SCConv(c1, c2, gwc_bias=gwc_bias)
        assert sum(p.numel() for p in module.parameters()) == per_layer_params(c1, c2, gwc_bias)
    assert per_layer_params(64, 64) == 29 * 64 * 64 // 16 + 2 * 64


def test_network_budgets_follow_from_the_layer():
    """SCConv-R50 (16 bottleneck 3×3) and SCConv-D121 (58 dense-layer 3×3) at 100 classes.

    Baselines (torchvision counts, 100-class heads): ResNet-50 23,712,932 and DenseNet-121
    7,056,356 parameters. Targets: 14.7 M and 5.51 M (within 0.5 %).
    """
    resnet_widths = [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3
    scconv_r50 = 23_712_932 + sum(per_layer_params(c, c) - 9 * c * c for c in resnet_widths)
    scconv_d121 = 7_056_356 + 58 * (per_layer_params(128, 32) - 9 * 128 * 32)
    assert scconv_r50 == 14_682_404 and abs(scconv_r50 / 14.7e6 - 1) < 0.005
    assert scconv_d121 == 5_497_316 and abs(scconv_d121 / 5.51e6 - 1) < 0.005


def scconv_flops(c1, c2, batch, height, width, stride):
    """Conv MACs (paper), GroupNorm at 5 per element and the pooled Y1, Y2 (as mmengine counts)."""
    out_pixels = batch * math.ceil(height / stride) * math.ceil(width / stride)
    in_pixels = batch * height * width
    macs = (
        in_pixels * c1 * c1 // 4 + out_pixels * c2 * (9 * (c1 // 8) + c1 // 4) + out_pixels * (c1 // 4) *
        (c2 - c1 // 4))
    return macs + 5 * c1 * in_pixels + 2 * c2 * out_pixels


@pytest.mark.parametrize('impl', ['reference', 'fast'])
@pytest.mark.parametrize('c1,c2,stride', [(32, 32, 1), (32, 8, 1), (16, 24, 2)])
def test_flops_by_hand(impl, c1, c2, stride):
    pytest.importorskip('mmengine')
    from mmconv.analysis import get_model_complexity_info
    module = SCConv(c1, c2, stride=stride, impl=impl).eval()
    x = torch.randn(2, c1, 9, 9)
    flops = get_model_complexity_info(module, inputs=(x, ), show_table=False, show_arch=False)['flops']
    assert flops == scconv_flops(c1, c2, 2, 9, 9, stride)


def test_opcheck():
    module = make_scconv(8, 6, stride=2, gwc_bias=True, seed=2)
    sru, layer = module.sru, module.cru
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64, requires_grad=True)
    for gate in ('soft', 'hard'):
        torch.library.opcheck(torch.ops.mmconv.sru_squeeze.default,
                              (x, sru.gn.weight, sru.gn.bias, layer.squeeze1.weight, layer.squeeze2.weight,
                               sru.gn.num_groups, sru.gn.eps, sru.gate_threshold, gate))
    squeezed = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    for fuse in ('paper', 'joint'):
        for bias, pwc2 in ((layer.gwc.bias, layer.pwc2.weight), (None, None)):
            # Without PWC2 the output is the reused lower part's width (2) alone.
            pwc1 = layer.pwc1.weight if pwc2 is not None else torch.randn(2, 2, 1, 1, dtype=torch.float64)
            gwc = layer.gwc.weight if pwc2 is not None else torch.randn(2, 1, 3, 3, dtype=torch.float64)
            torch.library.opcheck(torch.ops.mmconv.cru.default,
                                  (squeezed, gwc, bias if pwc2 is not None else None, pwc1, pwc2, 2, 1, 2, fuse))


def test_second_order_is_refused_in_one_sentence():
    module = make_scconv(8, 6, seed=2)
    x = away_from_gate(1, 8, 5, 6, dtype=torch.float64)
    assert_second_order_refused(module, [x], 'SCConv')
    module.impl = 'reference'  # the way out the sentence names
    assert torch.autograd.gradgradcheck(module, (x.requires_grad_(True), ))


def make_layer(stride=2, **kwargs):
    torch.manual_seed(0)
    return SCConv(8, 12, stride=stride, **kwargs)


@pytest.mark.parametrize('stride,kwargs', [(1, {}), (2, dict(gate='hard', fuse='joint', gwc_bias=True))])
def test_compiled_matches_eager(stride, kwargs):
    inputs = [torch.randn(2, 8, 10, 13), torch.randn(3, 8, 14, 11)]
    assert_compiled_matches_eager(make_layer(stride, **kwargs), inputs)


def test_onnx_export_matches_eager(tmp_path):
    inputs = [torch.randn(2, 8, 10, 13), torch.randn(3, 8, 15, 9)]
    assert_onnx_matches_eager(make_layer(), inputs, tmp_path / 'scconv.onnx')


@pytest.mark.parametrize('in_channels,out_channels', [(8, 12), (16, 4)])
def test_empty_batch(in_channels, out_channels):
    torch.manual_seed(0)
    assert_empty_batch(SCConv(in_channels, out_channels, stride=2), (in_channels, ), (9, 10))


@pytest.mark.parametrize('stride', [1, 2])
def test_channels_last(stride):
    assert_channels_last(lambda: make_layer(stride), torch.randn(2, 8, 9, 10))
