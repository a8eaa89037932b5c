"""Involution: reference (unfold) vs the registered ops, geometry, arguments, memory, params, FLOPs,
and the ops under PyTorch's machinery (opcheck, compile, export, second order, layouts, empty batch)."""
import pytest
import torch
import torch.nn.functional as F

from mmconv.analysis.memory import saved_tensor_bytes as saved_bytes
from mmconv.ops import Involution, involution_aggregate
from mmconv.ops.involution import ops as involution_ops
from mmconv.ops.involution.tap_loop import (correlate_taps, plan_taps, tap_windows, zero_outside_taps,
                                            zero_wrapped_columns)
from op_integration import (assert_channels_last, assert_compiled_matches_eager, assert_empty_batch,
                            assert_onnx_matches_eager)


def random_pair(batch, channels, groups, size, kernel_size, stride, dilation, dtype=torch.float64):
    """x and a matching kernel, both requiring grad."""
    height, width = size
    out_h, out_w = -(-height // stride), -(-width // stride)
    x = torch.randn(batch, channels, height, width, dtype=dtype, requires_grad=True)
    kernel = torch.randn(batch, groups, kernel_size**2, out_h, out_w, dtype=dtype, requires_grad=True)
    return x, kernel


def loop_aggregate(x, kernel, kernel_size, stride, dilation):
    """The definition, one output element at a time (independent of both implementations)."""
    batch, channels, height, width = x.shape
    _, groups, _, out_h, out_w = kernel.shape
    padding = dilation * (kernel_size - 1) // 2
    out = torch.zeros(batch, channels, out_h, out_w, dtype=x.dtype)
    for c in range(channels):
        g = c // (channels // groups)
        for i in range(out_h):
            for j in range(out_w):
                for u in range(kernel_size):
                    for v in range(kernel_size):
                        h, w = stride * i - padding + dilation * u, stride * j - padding + dilation * v
                        if 0 <= h < height and 0 <= w < width:
                            out[:, c, i, j] += kernel[:, g, u * kernel_size + v, i, j] * x[:, c, h, w]
    return out


GEOMETRIES = [  # (size, kernel_size, stride, dilation)
    ((6, 6), 3, 1, 1),
    ((6, 6), 3, 2, 1),  # stride 2, even size
    ((7, 5), 3, 2, 1),  # stride 2, odd sizes
    ((5, 6), 5, 1, 2),  # dilation
    ((7, 7), 3, 3, 2),  # stride 3 with dilation
    ((3, 4), 7, 2, 1),  # kernel larger than the image
    ((1, 1), 7, 1, 1),  # only the centre tap reads inside (the last stage of a small input)
    ((1, 2), 3, 1, 3),  # dilation past the image: only the centre column
]


@pytest.mark.parametrize('impl', ['reference', 'fast'])
@pytest.mark.parametrize('size,kernel_size,stride,dilation', GEOMETRIES)
def test_aggregate_matches_definition(impl, size, kernel_size, stride, dilation):
    torch.manual_seed(0)
    x, kernel = random_pair(2, 6, 2, size, kernel_size, stride, dilation)
    expected = loop_aggregate(x.detach(), kernel.detach(), kernel_size, stride, dilation)
    out = involution_aggregate(x, kernel, kernel_size, stride, dilation, impl)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize('size,kernel_size,stride,dilation', GEOMETRIES)
def test_fast_path_gradcheck(size, kernel_size, stride, dilation):
    torch.manual_seed(0)
    x, kernel = random_pair(1, 4, 2, size, kernel_size, stride, dilation)
    assert torch.autograd.gradcheck(lambda a, b: involution_aggregate(a, b, kernel_size, stride, dilation, 'fast'),
                                    (x, kernel))


@pytest.mark.parametrize('stride,size', [(1, (14, 14)), (2, (14, 14)), (2, (13, 15))])
def test_fast_matches_reference_fp32(stride, size):
    torch.manual_seed(0)
    x, kernel = random_pair(2, 32, 2, size, 7, stride, 1, dtype=torch.float32)
    ref = involution_aggregate(x, kernel, 7, stride, 1, 'reference')
    out = involution_aggregate(x, kernel, 7, stride, 1, 'fast')
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (x, kernel), grad)
    out_grads = torch.autograd.grad(out, (x, kernel), grad)
    assert (out - ref).abs().max() <= 1e-5
    for got, want in zip(out_grads, ref_grads):
        assert (got - want).abs().max() <= 1e-5


@pytest.mark.parametrize('stride', [1, 2])
def test_fast_path_chunks_in_parallel(monkeypatch, stride):
    """The CPU tap loop walks (batch, group) pairs in balanced chunks, on worker threads."""
    from mmconv.ops import cpu_chunks
    torch.manual_seed(0)
    x, kernel = random_pair(5, 8, 2, (7, 6), 5, stride, 1)
    unit_bytes = 2 * 4 * 7 * 6 * 8  # input and output of one (batch, group) pair, fp64
    monkeypatch.setattr(cpu_chunks, 'CPU_CHUNK_BYTES', 3 * unit_bytes)
    threads = torch.get_num_threads()
    sizes = [c.stop - c.start for c in cpu_chunks.chunks_of(10, unit_bytes, x.device)]
    assert sum(sizes) == 10 and max(sizes) <= 3 and max(sizes) - min(sizes) <= 1
    assert len(sizes) % min(threads, 10) == 0
    monkeypatch.setattr(cpu_chunks, 'CPU_CHUNK_BYTES', 100 * unit_bytes)
    assert len(cpu_chunks.chunks_of(10, unit_bytes, x.device)) == min(10, threads)
    monkeypatch.setattr(cpu_chunks, 'CPU_CHUNK_BYTES', 3 * unit_bytes)
    grad = torch.randn(5, 8, -(-7 // stride), -(-6 // stride), dtype=torch.float64)
    results = {}
    before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        out = involution_aggregate(x, kernel, 5, stride, 1, 'fast')
        results[threads] = (out, *torch.autograd.grad(out, (x, kernel), grad))
    torch.set_num_threads(before)
    ref = involution_aggregate(x, kernel, 5, stride, 1, 'reference')
    want = (ref, *torch.autograd.grad(ref, (x, kernel), grad))
    for single, parallel, w in zip(results[1], results[2], want):
        assert torch.equal(single, parallel)  # disjoint chunks: the schedule cannot change a bit
        torch.testing.assert_close(parallel, w, rtol=0, atol=1e-12)


def test_worker_threads_leave_the_thread_setting_alone():
    from mmconv.ops import cpu_chunks
    before = torch.get_num_threads()
    pool = cpu_chunks._cpu_workers(2)
    assert torch.get_num_threads() == before
    assert list(pool.map(lambda _: torch.get_num_threads(), range(4))) == [1] * 4


def test_fast_path_partial_gradients():
    torch.manual_seed(0)
    x, kernel = random_pair(1, 4, 1, (5, 5), 3, 1, 1)
    out = involution_aggregate(x.detach(), kernel, 3, impl='fast')
    (grad_kernel, ) = torch.autograd.grad(out.sum(), kernel)
    ref = involution_aggregate(x.detach(), kernel, 3, impl='reference')
    torch.testing.assert_close(grad_kernel, torch.autograd.grad(ref.sum(), kernel)[0])


def test_fast_path_output_takes_an_inplace_activation():
    """An inplace ReLU after the op (as in RedNet's heads) must not break backward."""
    torch.manual_seed(0)
    x, kernel = random_pair(2, 8, 2, (6, 7), 3, 1, 1)
    grads = []
    for impl, activation in (('fast', torch.relu_), ('reference', torch.relu)):
        out = activation(involution_aggregate(x, kernel, 3, impl=impl))
        grads.append(torch.autograd.grad(out.sum(), (x, kernel)))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize('size, kernel_size, stride, dilation', [((7, 6), 5, 1, 1), ((7, 6), 3, 2, 1),
                                                                 ((5, 9), 7, 1, 2), ((4, 4), 7, 3, 1)])
def test_kernel_gradient_needs_no_zero_fill(size, kernel_size, stride, dilation):
    """zero_outside_taps clears every entry the taps leave unwritten, even in NaN-filled memory."""
    torch.manual_seed(0)
    x, kernel = random_pair(2, 4, 2, size, kernel_size, stride, dilation)
    ref = involution_aggregate(x, kernel, kernel_size, stride, dilation, 'reference')
    grad = torch.randn_like(ref)
    (want, ) = torch.autograd.grad(ref, kernel, grad)
    plan = plan_taps(kernel_size, stride, dilation, size, tuple(ref.shape[2:]))
    units = 2 * 2
    got = zero_outside_taps(
        torch.full((units, kernel_size**2, *plan.out_shape), float('nan'), dtype=torch.float64), plan)
    correlate_taps(got, grad.reshape(units, 2, *plan.out_shape), x.detach().reshape(units, 2, *plan.in_shape), plan)
    got = zero_wrapped_columns(got, plan).view_as(kernel)
    torch.testing.assert_close(got, want)


def test_caller_kernel_stays_untouched():
    """The tap loop zeroes the kernel entries whose flattened reads wrap in a copy, not in the input."""
    torch.manual_seed(0)
    x, kernel = random_pair(1, 4, 1, (5, 6), 3, 1, 1)
    kernel = kernel.detach()
    before = kernel.clone()
    ref = involution_aggregate(x, kernel, 3, impl='reference')
    torch.testing.assert_close(involution_aggregate(x, kernel, 3, impl='fast'), ref)
    assert torch.equal(kernel, before)


def test_tap_windows_cover_exactly_the_inside_reads():
    for in_size, kernel_size, stride, dilation in [(7, 3, 2, 1), (5, 7, 1, 2), (4, 7, 3, 1), (9, 5, 2, 2)]:
        out_size = -(-in_size // stride)
        padding = dilation * (kernel_size - 1) // 2
        for u, window in enumerate(tap_windows(kernel_size, stride, dilation, in_size, out_size)):
            reads = {i: stride * i - padding + dilation * u for i in range(out_size)}
            inside = {i: r for i, r in reads.items() if 0 <= r < in_size}
            if window is None:
                assert not inside
                continue
            out_slice, in_slice = window
            assert list(range(out_size))[out_slice] == list(inside)
            assert list(range(in_size))[in_slice] == list(inside.values())


@pytest.mark.parametrize('size,stride', [((16, 16), 2), ((15, 17), 2), ((9, 9), 3), ((8, 8), 1)])
def test_module_paths_agree_and_output_size(size, stride):
    torch.manual_seed(0)
    op = Involution(32, 7, stride, impl='reference').double()
    x = torch.randn(2, 32, *size, dtype=torch.float64, requires_grad=True)
    ref = op(x)
    assert ref.shape == (2, 32, -(-size[0] // stride), -(-size[1] // stride))
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *op.parameters()])
    op.impl = 'fast'
    out = op(x)
    out_grads = torch.autograd.grad(out.square().sum(), [x, *op.parameters()])
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for got, want in zip(out_grads, ref_grads):  # parameter gradients go through BN's backward
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_stride_pooling_is_official_on_even_sizes():
    """ceil-mode pooling without padded counts equals the official AvgPool2d(s, s) on even sizes."""
    op = Involution(16, 3, stride=2)
    x = torch.randn(1, 16, 10, 12)
    torch.testing.assert_close(op.avgpool(x), F.avg_pool2d(x, 2, 2))
    odd = torch.randn(1, 16, 5, 5)
    assert op.avgpool(odd).shape[-2:] == (3, 3)
    torch.testing.assert_close(op.avgpool(odd)[..., -1, -1], odd[..., -1, -1])


def test_checkpoint_key_names():
    keys = set(Involution(64, 7, stride=2).state_dict())
    assert keys == {
        'conv1.conv.weight', 'conv1.bn.weight', 'conv1.bn.bias', 'conv1.bn.running_mean', 'conv1.bn.running_var',
        'conv1.bn.num_batches_tracked', 'conv2.conv.weight', 'conv2.conv.bias'
    }


def test_parameter_count_by_hand():
    # C=64, K=7, r=4, 16 channels per group -> G=4, hidden 16:
    # reduce 64·16 (no bias) + BN 2·16 + span 16·(49·4) + bias 49·4 = 1024 + 32 + 3136 + 196.
    assert sum(p.numel() for p in Involution(64, 7).parameters()) == 4388
    # stem-like: C=32, K=3 -> G=2, hidden 8: 32·8 + 2·8 + 8·18 + 18.
    assert sum(p.numel() for p in Involution(32, 3).parameters()) == 256 + 16 + 144 + 18


def test_flops_by_hand():
    pytest.importorskip('mmengine')
    from mmconv.analysis import get_model_complexity_info
    batch, channels, size, kernel_size = 2, 64, 14, 7
    op = Involution(channels, kernel_size, impl='fast').eval()
    x = torch.randn(batch, channels, size, size)
    flops = get_model_complexity_info(op, inputs=(x, ), show_table=False, show_arch=False)['flops']
    pixels = batch * size * size
    hidden, groups = channels // 4, channels // 16
    reduce = pixels * channels * hidden
    # mmengine counts an eval-mode affine BatchNorm as 2 FLOPs per element (5 in training mode).
    batch_norm = 2 * pixels * hidden
    span = pixels * hidden * kernel_size**2 * groups  # the span conv's bias is not counted
    aggregation = pixels * channels * kernel_size**2
    assert flops == reduce + batch_norm + span + aggregation


def test_flops_with_stride():
    pytest.importorskip('mmengine')
    from mmconv.analysis import get_model_complexity_info
    op = Involution(32, 3, stride=2, impl='fast').eval()
    x = torch.randn(1, 32, 9, 9)
    flops = get_model_complexity_info(op, inputs=(x, ), show_table=False, show_arch=False)['flops']
    pixels = 5 * 5  # ceil(9 / 2)²; the average pool is not counted by mmengine
    assert flops == pixels * (32 * 8 + 2 * 8 + 8 * 9 * 2 + 32 * 9)


def test_fast_path_saves_only_input_and_kernel():
    torch.manual_seed(0)
    x, kernel = random_pair(2, 32, 2, (16, 16), 7, 1, 1, dtype=torch.float32)
    memory = saved_bytes(lambda: involution_aggregate(x, kernel, 7, impl='fast'))
    reference = saved_bytes(lambda: involution_aggregate(x, kernel, 7, impl='reference'))
    input_and_kernel = (x.numel() + kernel.numel()) * 4
    assert memory == input_and_kernel
    assert reference > 10 * memory  # the unfold path keeps a 49×-the-input column tensor


def test_module_memory_far_below_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 64, 16, 16, requires_grad=True)
    memory = saved_bytes(lambda: Involution(64, 7, impl='fast')(x))
    reference = saved_bytes(lambda: Involution(64, 7, impl='reference')(x))
    assert memory < 0.15 * reference


def test_bf16_autocast_cpu():
    torch.manual_seed(0)
    op = Involution(32, 7, stride=2, impl='fast')
    x = torch.randn(2, 32, 15, 15, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = op(x)
    out.float().square().mean().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in op.parameters())
    ref = Involution(32, 7, stride=2, impl='reference')
    ref.load_state_dict(op.state_dict())
    with torch.no_grad():
        expected = ref(x)
    assert (out.float() - expected).abs().max() <= 0.05 * expected.abs().max()


def test_half_precision_inputs_accumulate_in_fp32():
    torch.manual_seed(0)
    x, kernel = random_pair(1, 16, 1, (8, 8), 7, 1, 1, dtype=torch.bfloat16)
    out = involution_aggregate(x, kernel, 7, impl='fast')
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16
    assert kernel.grad.dtype == torch.bfloat16
    expected = involution_aggregate(x.double(), kernel.double(), 7, impl='reference')
    assert (out.double() - expected).abs().max() <= 2**-7 * expected.abs().max()


@pytest.mark.parametrize(
    'kwargs,name',
    [
        (dict(channels=24), 'channels'),  # not a multiple of group_channels=16
        (dict(channels=3, group_channels=3, reduction_ratio=4), 'reduction_ratio'),
        (dict(channels=0), 'channels'),
        (dict(channels=16, kernel_size=4), 'kernel_size'),
        (dict(channels=16, kernel_size=0), 'kernel_size'),
        (dict(channels=16, stride=0), 'stride'),
        (dict(channels=16, dilation=0), 'dilation'),
        (dict(channels=16, group_channels=0), 'group_channels'),
        (dict(channels=16, reduction_ratio=0), 'reduction_ratio'),
        (dict(channels=16, impl='cuda'), 'impl'),
    ])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Involution(**kwargs)


def test_aggregate_rejects_mismatched_kernel():
    x = torch.randn(1, 16, 8, 8)
    with pytest.raises(ValueError, match='kernel'):
        involution_aggregate(x, torch.randn(1, 1, 9, 8, 8), 7)
    with pytest.raises(ValueError, match='kernel'):
        involution_aggregate(x, torch.randn(1, 3, 49, 8, 8), 7)
    with pytest.raises(ValueError, match='impl'):
        involution_aggregate(x, torch.randn(1, 1, 49, 8, 8), 7, impl='memory')


def test_auto_uses_the_registered_op():
    x = torch.randn(1, 16, 6, 6, requires_grad=True)
    out = Involution(16, 3, impl='auto')(x)
    assert 'mmconv_involution_aggregate' in type(out.grad_fn).__name__


OPCHECK_GEOMETRIES = [((5, 6), 3, 1, 1), ((7, 5), 3, 2, 1), ((5, 6), 5, 1, 2)]


@pytest.mark.parametrize('size,kernel_size,stride,dilation', OPCHECK_GEOMETRIES)
def test_opcheck(size, kernel_size, stride, dilation):
    """Schema, fake kernels (also under symbolic sizes) and autograd registration of all three ops."""
    torch.manual_seed(0)
    x, kernel = random_pair(2, 4, 2, size, kernel_size, stride, dilation)
    geometry = (kernel_size, stride, dilation)
    grad = torch.randn(2, 4, *kernel.shape[3:], dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.mmconv.involution_aggregate.default, (x, kernel, *geometry))
    torch.library.opcheck(torch.ops.mmconv.involution_grad_input.default, (grad, kernel, *geometry, *size))
    torch.library.opcheck(torch.ops.mmconv.involution_grad_kernel.default, (grad, x, *geometry, 2))


@pytest.mark.parametrize('size,kernel_size,stride,dilation', [((5, 6), 3, 1, 1), ((7, 5), 3, 2, 1), ((4, 5), 3, 1, 2)])
def test_second_order_is_exact(size, kernel_size, stride, dilation):
    """The gradient ops differentiate into each other, so double backward is exact, not refused."""
    torch.manual_seed(0)
    x, kernel = random_pair(1, 4, 2, size, kernel_size, stride, dilation)
    assert torch.autograd.gradgradcheck(lambda a, b: involution_aggregate(a, b, kernel_size, stride, dilation, 'fast'),
                                        (x, kernel))


def test_module_second_order_matches_reference():
    """A gradient penalty through a whole layer: the issue's 19-28 % error is gone."""
    torch.manual_seed(0)
    x = torch.randn(2, 16, 7, 9, dtype=torch.float64)
    results = {}
    for impl in ('fast', 'reference'):
        torch.manual_seed(1)
        op = Involution(16, 5, stride=2, impl=impl).double()
        inputs = x.clone().requires_grad_(True)
        (grad_x, ) = torch.autograd.grad(op(inputs).square().sum(), inputs, create_graph=True)
        grad_x.square().sum().backward()
        results[impl] = [inputs.grad] + [p.grad for p in op.parameters()]
    for got, want in zip(results['fast'], results['reference']):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def make_layer(stride=2):
    torch.manual_seed(0)
    return Involution(16, 5, stride=stride, group_channels=8)


@pytest.mark.parametrize('stride', [1, 2])
def test_compiled_matches_eager(stride):
    inputs = [torch.randn(2, 16, 10, 13), torch.randn(3, 16, 14, 11)]
    assert_compiled_matches_eager(make_layer(stride).eval(), inputs)


def test_onnx_export_matches_eager(tmp_path):
    inputs = [torch.randn(2, 16, 10, 13), torch.randn(3, 16, 15, 9)]
    assert_onnx_matches_eager(make_layer(), inputs, tmp_path / 'involution.onnx')


def test_empty_batch():
    assert_empty_batch(make_layer(), (16, ), (9, 10))


@pytest.mark.parametrize('stride', [1, 2])
def test_channels_last(stride):
    assert_channels_last(lambda: make_layer(stride), torch.randn(2, 16, 9, 10))


def test_flop_handle_counts_the_registered_op():
    assert involution_ops.aggregation_flops.__name__ == 'aggregation_flops'
    from mmconv.ops.flop_handles import FLOP_HANDLES
    assert FLOP_HANDLES['mmconv::involution_aggregate'] is involution_ops.aggregation_flops
