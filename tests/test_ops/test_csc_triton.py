"""The CSC step's fused sum-and-shrink (Triton) vs the proximal map written out, under the interpreter
without a GPU (see :mod:`triton_interpreter`)."""
import pytest
import torch

pytest.importorskip('triton')

from mmconv.ops.csc import CSCConv2d
from mmconv.ops.csc.triton_kernels import triton_shrink_sum
from mmconv.ops.triton_support import same_dense_layout
from triton_interpreter import INTERPRETED, assert_fast_matches_reference, interpreter_suite, on_cuda, on_devices

test_interpreter_suite_in_subprocess = interpreter_suite(__file__)


def proximal(v, theta, scale, non_negative):
    """P(v) written out: max(v, 0) (θ is in c for non-negative codes) or sign(v)·max(|v| − θ, 0)."""
    z = v.clamp_min(0) if non_negative else v.sign() * (v.abs() - theta).clamp_min(0)
    return z if scale is None else z * scale


@on_devices
@pytest.mark.parametrize('non_negative', [True, False])
@pytest.mark.parametrize('with_scale', [False, True])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16])
def test_matches_the_proximal_map(device, non_negative, with_scale, dtype):
    torch.manual_seed(0)
    pre, c, y = (torch.randn(2, 5, 9, 13, device=device).to(dtype) for _ in range(3))  # 1170: two blocks
    theta = torch.tensor(0.3, device=device)
    scale = torch.tensor(0.8, device=device) if with_scale else None
    want = proximal(pre.double() + c.double() + y.double(), 0.3, 0.8 if with_scale else None, non_negative)
    out = triton_shrink_sum(pre, c, y, theta, scale, non_negative)
    assert out.data_ptr() == pre.data_ptr() and out.dtype == dtype
    tolerance = 1e-6 if dtype == torch.float32 else 2**-7
    assert (out.double() - want).abs().max() <= tolerance * want.abs().max()
    assert torch.equal(out == 0, want.to(dtype) == 0) or dtype != torch.float32


@on_devices
def test_channels_last_codes(device):
    torch.manual_seed(0)
    pre, c, y = (torch.randn(2, 6, 5, 4, device=device).contiguous(memory_format=torch.channels_last) for _ in range(3))
    assert same_dense_layout(pre, c, y)
    want = proximal(pre + c + y, 0.0, None, True)
    torch.testing.assert_close(triton_shrink_sum(pre, c, y, torch.tensor(0.1), None, True), want)


def test_layouts_that_do_not_share_one_index_are_refused():
    x = torch.randn(2, 6, 5, 4)
    assert same_dense_layout(x, x.clone())
    assert not same_dense_layout(x, x.contiguous(memory_format=torch.channels_last))
    assert not same_dense_layout(x[:, :, :, :2], x[:, :, :, :2].clone())  # a non-dense view
    assert not same_dense_layout(x, x[:1])


@on_cuda
@pytest.mark.parametrize('non_negative', [True, False])
def test_layer_fast_path_matches_reference(device, non_negative):
    torch.manual_seed(0)
    layer = CSCConv2d(8, 16, 3, num_steps=3, non_negative=non_negative).to(device).eval()
    x = torch.randn(2, 8, 12, 12, device=device, requires_grad=True)
    assert_fast_matches_reference(layer, x, [layer.weight], (1e-4, 1e-5), (1e-3, 1e-4))


@on_cuda
def test_training_forward_never_synchronises_the_host(device):
    layer = CSCConv2d(8, 16, 3, num_steps=3, power_interval=1).to(device).train()
    x = torch.randn(2, 8, 12, 12, device=device)
    layer(x)  # first forward: warm-up allocations
    torch.cuda.set_sync_debug_mode('error')
    try:
        layer(x).sum().backward()  # power iteration, step size and the fused steps
    finally:
        torch.cuda.set_sync_debug_mode('default')


@pytest.mark.skipif(INTERPRETED, reason='the interpreter accepts CPU tensors')
def test_cpu_tensors_need_the_interpreter():
    t = torch.randn(4)
    with pytest.raises(RuntimeError, match='TRITON_INTERPRET'):
        triton_shrink_sum(t, t, t, torch.tensor(0.1), None, True)
