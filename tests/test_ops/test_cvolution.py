"""C-volution: the released formula, its options, paths, arguments, params and FLOPs."""
import pytest
import torch
import torch.nn.functional as F

from mmconv.ops import CVolution, Involution, involution_aggregate
from mmconv.ops.cvolution import channel_branch_mean
from op_integration import (assert_channels_last, assert_compiled_matches_eager, assert_empty_batch,
                            assert_onnx_matches_eager, assert_second_order_refused)


def released_formula(op, x):
    """Released code: aggregate x ⊙ a with the kernel generated from the unscaled x (unfold path)."""
    scale = F.adaptive_avg_pool2d(F.conv2d(x, op.conv_q.weight, padding=1, groups=op.conv_q.groups), 1)
    return involution_aggregate(x * scale, op.generate_kernel(x), op.kernel_size, op.stride, op.dilation, 'reference')


@pytest.mark.parametrize('stride,size', [(1, (12, 12)), (2, (12, 12)), (2, (11, 13))])
def test_default_equals_released_formula(stride, size):
    torch.manual_seed(0)
    op = CVolution(32, 7, stride).double()
    x = torch.randn(2, 32, *size, dtype=torch.float64)
    torch.testing.assert_close(op(x), released_formula(op, x), rtol=0, atol=1e-12)


def test_post_multiply_identity_with_involution():
    """out == a ⊙ involution(x) with the same kernel-generator weights."""
    torch.manual_seed(0)
    op = CVolution(32, 7)
    involution = Involution(32, 7, reduce_bias=True)
    involution.load_state_dict(op.state_dict(), strict=False)
    x = torch.randn(2, 32, 10, 10)
    torch.testing.assert_close(op(x), op.channel_scale(x) * involution(x))


def test_channel_branch_padding_is_fixed():
    """The mean is over a same-size conv output (padding cq_kernel // 2), not a zero-bordered one."""
    op = CVolution(16, 7, cq_kernel=5, cq_groups=4)
    x = torch.randn(1, 16, 9, 9)
    conv = F.conv2d(x, op.conv_q.weight, padding=2, groups=4)
    assert conv.shape[-2:] == x.shape[-2:]
    torch.testing.assert_close(op.channel_scale(x), conv.mean((2, 3), keepdim=True))


def test_gated_kernel_option():
    torch.manual_seed(0)
    op = CVolution(16, 3, kernel_from='gated').double()
    x = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    gated = x * op.channel_scale(x)
    expected = involution_aggregate(gated, op.generate_kernel(gated), 3, impl='reference')
    torch.testing.assert_close(op(x), expected, rtol=0, atol=1e-12)


def test_sigmoid_gate():
    op = CVolution(16, 3, gate='sigmoid')
    x = torch.randn(2, 16, 6, 6)
    scale = op.channel_scale(x)
    assert scale.shape == (2, 16, 1, 1) and ((scale > 0) & (scale < 1)).all()
    linear = CVolution(16, 3)
    linear.load_state_dict(op.state_dict())
    torch.testing.assert_close(scale, linear.channel_scale(x).sigmoid())


@pytest.mark.parametrize('kernel_from', ['x', 'gated'])
def test_fast_and_reference_paths_agree(kernel_from):
    torch.manual_seed(0)
    op = CVolution(32, 7, stride=2, kernel_from=kernel_from, impl='reference').double()
    x = torch.randn(2, 32, 9, 10, dtype=torch.float64, requires_grad=True)
    ref = op(x)
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *op.parameters()])
    op.impl = 'fast'
    out = op(x)
    out_grads = torch.autograd.grad(out.square().sum(), [x, *op.parameters()])
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for got, want in zip(out_grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_fast_path_fp32_within_1e5():
    torch.manual_seed(0)
    op = CVolution(32, 7, impl='reference')
    x = torch.randn(2, 32, 14, 14, requires_grad=True)
    ref = op(x)
    (ref_grad, ) = torch.autograd.grad(ref.sum(), x)
    op.impl = 'fast'
    out = op(x)
    (grad, ) = torch.autograd.grad(out.sum(), x)
    assert (out - ref).abs().max() <= 1e-5 and (grad - ref_grad).abs().max() <= 1e-5


def test_gradcheck_fast_path():
    torch.manual_seed(0)
    op = CVolution(4, 3, group_channels=2, cq_groups=2, impl='fast').double().eval()
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x, ))


def test_parameter_count_by_hand():
    # C=64, K=7: involution 4388 + the reduce conv's bias 16 + conv_q 64·(64/16)·3·3 = 2304.
    assert sum(p.numel() for p in CVolution(64, 7).parameters()) == 4388 + 16 + 2304
    # neck variant: C=256, cq_groups=4 -> conv_q 256·64·9.
    involution = sum(p.numel() for p in Involution(256, 7).parameters())
    neck = CVolution(256, 7, cq_groups=4)
    assert sum(p.numel() for p in neck.parameters()) == involution + 64 + 256 * 64 * 9


def test_flops_by_hand():
    pytest.importorskip('mmengine')
    from mmconv.analysis import get_model_complexity_info
    batch, channels, size, kernel_size = 2, 64, 14, 7
    op = CVolution(channels, kernel_size, impl='fast').eval()
    x = torch.randn(batch, channels, size, size)
    flops = get_model_complexity_info(op, inputs=(x, ), show_table=False, show_arch=False)['flops']
    pixels = batch * size * size
    hidden, groups = channels // 4, channels // 16
    involution = pixels * (channels * hidden + 2 * hidden + hidden * kernel_size**2 * groups + channels * kernel_size**2
                           )  # eval BN: 2 per element; biases: 0
    conv_q = pixels * channels * (channels // 16) * 9
    pool = pixels * channels  # mmengine: adaptive_avg_pool2d = 1 per input element; ⊙ a: 0
    assert flops == involution + conv_q + pool


def test_bf16_autocast_cpu():
    torch.manual_seed(0)
    op = CVolution(32, 7, stride=2, impl='fast')
    x = torch.randn(2, 32, 15, 15, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = op(x)
    out.float().square().mean().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in op.parameters())


@pytest.mark.parametrize('kwargs,name', [
    (dict(channels=24), 'channels'),
    (dict(channels=32, cq_groups=3), 'cq_groups'),
    (dict(channels=32, cq_groups=0), 'cq_groups'),
    (dict(channels=32, cq_kernel=2), 'cq_kernel'),
    (dict(channels=32, gate='relu'), 'gate'),
    (dict(channels=32, kernel_from='scaled'), 'kernel_from'),
    (dict(channels=32, kernel_size=6), 'kernel_size'),
    (dict(channels=32, stride=0), 'stride'),
    (dict(channels=32, impl='cupy'), 'impl'),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CVolution(**kwargs)


@pytest.mark.parametrize('size, cq_kernel, groups', [((7, 6), 3, 4), ((2, 1), 3, 2), ((5, 9), 5, 1), ((1, 1), 7, 8)])
def test_channel_branch_mean_equals_conv_then_pool(size, cq_kernel, groups):
    """The window-sum form of GAP(conv_q(x)) agrees with the conv, in value and in gradients."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, *size, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(8, 8 // groups, cq_kernel, cq_kernel, dtype=torch.float64, requires_grad=True)
    want = F.adaptive_avg_pool2d(F.conv2d(x, weight, padding=cq_kernel // 2, groups=groups), 1)
    got = channel_branch_mean(x, weight, groups)
    torch.testing.assert_close(got, want)
    grad = torch.randn_like(want)
    for g, w in zip(torch.autograd.grad(got, (x, weight), grad), torch.autograd.grad(want, (x, weight), grad)):
        torch.testing.assert_close(g, w)
    assert torch.autograd.gradcheck(lambda a, b: channel_branch_mean(a, b, groups), (x, weight))


def test_opcheck_channel_branch():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(8, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.mmconv.channel_branch_mean.default, (x, weight, 4))
    grad = torch.randn(2, 8, 1, 1, dtype=torch.float64)
    rect = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    torch.library.opcheck(torch.ops.mmconv.channel_branch_mean_backward.default,
                          (grad, rect, weight.detach(), 4, 5, 7, torch.float64))


def test_second_order_is_refused_in_one_sentence():
    torch.manual_seed(0)
    weight = torch.randn(8, 2, 3, 3, dtype=torch.float64)
    assert_second_order_refused(lambda x, w: channel_branch_mean(x, w, 4),
                                [torch.randn(2, 8, 5, 7, dtype=torch.float64), weight], 'C-volution')


def test_reference_second_order_works():
    """The way out the refusal names: impl='reference' differentiates twice."""
    torch.manual_seed(0)
    op = CVolution(16, 3, group_channels=8, cq_groups=4, impl='reference').double()
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(op, (x, ))


def make_layer(kernel_from='x', stride=1):
    torch.manual_seed(0)
    return CVolution(16, 5, stride=stride, group_channels=8, cq_groups=4, kernel_from=kernel_from)


@pytest.mark.parametrize('kernel_from,stride', [('x', 1), ('gated', 2)])
def test_compiled_matches_eager(kernel_from, stride):
    inputs = [torch.randn(2, 16, 10, 13), torch.randn(3, 16, 14, 11)]
    assert_compiled_matches_eager(make_layer(kernel_from, stride).eval(), inputs)


def test_onnx_export_matches_eager(tmp_path):
    inputs = [torch.randn(2, 16, 10, 13), torch.randn(3, 16, 15, 9)]
    assert_onnx_matches_eager(make_layer(), inputs, tmp_path / 'cvolution.onnx')


def test_empty_batch():
    assert_empty_batch(make_layer(), (16, ), (9, 10))


@pytest.mark.parametrize('kernel_from', ['x', 'gated'])
def test_channels_last(kernel_from):
    assert_channels_last(lambda: make_layer(kernel_from, 2), torch.randn(2, 16, 9, 10))
