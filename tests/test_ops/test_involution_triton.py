"""Triton involution kernels vs the unfold reference (under the interpreter without a GPU: see
:mod:`triton_interpreter`)."""
import pytest
import torch

pytest.importorskip('triton')

from mmconv.ops import Involution, involution_aggregate
from mmconv.ops.involution.triton_kernels import triton_aggregate, triton_grad_input, triton_grad_kernel
from triton_interpreter import INTERPRETED, interpreter_suite, on_cuda, on_devices

test_interpreter_suite_in_subprocess = interpreter_suite(__file__)


def random_pair(batch, channels, groups, size, kernel_size, stride, device, dtype=torch.float64):
    height, width = size
    out_h, out_w = -(-height // stride), -(-width // stride)
    x = torch.randn(batch, channels, height, width, dtype=dtype, device=device, requires_grad=True)
    kernel = torch.randn(batch, groups, kernel_size**2, out_h, out_w, dtype=dtype, device=device, requires_grad=True)
    return x, kernel


def forward_and_grads(x, kernel, kernel_size, stride, dilation, impl, grad):
    """Output and gradients of the reference (autograd) or of the three Triton kernels called
    directly (the registered ops call them for CUDA tensors and cast gradients to the inputs' dtypes)."""
    if impl == 'reference':
        out = involution_aggregate(x, kernel, kernel_size, stride, dilation, impl)
        return (out, *torch.autograd.grad(out, (x, kernel), grad))
    geometry = (kernel_size, stride, dilation)
    x, kernel = x.detach(), kernel.detach()
    return (triton_aggregate(x, kernel, *geometry), triton_grad_input(grad, kernel, *geometry,
                                                                      *x.shape[2:]).to(x.dtype),
            triton_grad_kernel(grad, x, *geometry, kernel.shape[1]).to(kernel.dtype))


GEOMETRIES = [  # (channels, groups, size, kernel_size, stride, dilation)
    (8, 2, (6, 6), 3, 1, 1),
    (8, 2, (6, 6), 3, 2, 1),  # stride 2, even size
    (8, 2, (7, 5), 3, 2, 1),  # stride 2, odd sizes
    (6, 2, (5, 6), 5, 1, 2),  # dilation; 3 channels per group (channel block padded to 4)
    (4, 1, (7, 7), 3, 3, 2),  # stride 3 with dilation
    (8, 2, (3, 4), 7, 2, 1),  # kernel larger than the image
    (16, 1, (11, 13), 7, 1, 1),  # several pixel blocks per (batch, group)
]


@on_devices
@pytest.mark.parametrize('channels,groups,size,kernel_size,stride,dilation', GEOMETRIES)
def test_matches_reference_fp64(device, channels, groups, size, kernel_size, stride, dilation):
    torch.manual_seed(0)
    x, kernel = random_pair(2, channels, groups, size, kernel_size, stride, device)
    grad = torch.randn(2, channels, -(-size[0] // stride), -(-size[1] // stride), dtype=x.dtype, device=device)
    want = forward_and_grads(x, kernel, kernel_size, stride, dilation, 'reference', grad)
    got = forward_and_grads(x, kernel, kernel_size, stride, dilation, 'triton', grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


@on_cuda
@pytest.mark.parametrize('stride,size', [(1, (6, 5)), (2, (5, 5))])
def test_gradcheck(device, stride, size):
    torch.manual_seed(0)
    x, kernel = random_pair(1, 4, 2, size, 3, stride, device)
    assert torch.autograd.gradcheck(lambda a, b: involution_aggregate(a, b, 3, stride, 1, 'fast'), (x, kernel))
    assert torch.autograd.gradgradcheck(lambda a, b: involution_aggregate(a, b, 3, stride, 1, 'fast'), (x, kernel))


@on_devices
@pytest.mark.parametrize('stride', [1, 2])
def test_fp32_within_1e5(device, stride):
    torch.manual_seed(0)
    x, kernel = random_pair(2, 32, 2, (9, 10), 7, stride, device, dtype=torch.float32)
    grad = torch.randn(2, 32, -(-9 // stride), -(-10 // stride), device=device)
    want = forward_and_grads(x, kernel, 7, stride, 1, 'reference', grad)
    got = forward_and_grads(x, kernel, 7, stride, 1, 'triton', grad)
    for g, w in zip(got, want):
        assert g.dtype == torch.float32 and (g - w).abs().max() <= 1e-5


@on_devices
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_fp32(device, dtype):
    torch.manual_seed(0)
    x, kernel = random_pair(1, 16, 1, (7, 7), 7, 1, device, dtype=dtype)
    grad = torch.randn(1, 16, 7, 7, device=device, dtype=dtype)
    got = forward_and_grads(x, kernel, 7, 1, 1, 'triton', grad)
    x64, kernel64 = (t.detach().double().requires_grad_() for t in (x, kernel))
    want = forward_and_grads(x64, kernel64, 7, 1, 1, 'reference', grad.double())
    for g, w in zip(got, want):
        assert g.dtype == dtype and torch.isfinite(g).all()
        # fp32 accumulation: only the final rounding to the storage type remains (2⁻⁸ for bf16).
        assert (g.double() - w).abs().max() <= 2**-7 * w.abs().max()


@on_devices
def test_mixed_dtypes_promote(device):
    torch.manual_seed(0)
    x, kernel = random_pair(1, 8, 2, (5, 5), 3, 1, device, dtype=torch.float32)
    half_kernel = kernel.detach().to(torch.bfloat16)
    out, grad_x, grad_kernel = forward_and_grads(x, half_kernel, 3, 1, 1, 'triton', torch.ones(1, 8, 5, 5))
    assert out.dtype == torch.float32 and grad_x.dtype == torch.float32
    assert grad_kernel.dtype == torch.bfloat16
    ref = involution_aggregate(x.detach(), half_kernel.detach().float(), 3, impl='reference')
    assert (out - ref).abs().max() <= 1e-5


@on_devices
def test_non_contiguous_inputs_and_partial_grads(device):
    torch.manual_seed(0)
    x = torch.randn(1, 8, 6, 6, dtype=torch.float64, device=device).transpose(2, 3)
    kernel = torch.randn(1, 6, 6, 9, 2, dtype=torch.float64, device=device).permute(0, 4, 3, 1, 2)
    kernel.requires_grad_()
    out, _, grad_kernel = forward_and_grads(x, kernel, 3, 1, 1, 'triton', torch.ones(1, 8, 6, 6))
    ref = involution_aggregate(x, kernel, 3, impl='reference')
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_kernel, torch.autograd.grad(ref.sum(), kernel)[0], rtol=0, atol=1e-12)


@on_cuda
def test_module_with_triton_matches_reference(device):
    torch.manual_seed(0)
    op = Involution(16, 3, stride=2, impl='reference').double().to(device)
    x = torch.randn(2, 16, 7, 8, dtype=torch.float64, device=device, requires_grad=True)
    ref = op(x)
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *op.parameters()])
    op.impl = 'fast'
    out = op(x)
    out_grads = torch.autograd.grad(out.square().sum(), [x, *op.parameters()])
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for got, want in zip(out_grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_launch_blocks_are_powers_of_two():
    from mmconv.ops.involution.triton_kernels import _launch_config
    for group_channels in (1, 3, 8, 16, 24, 64):
        for pixels in (1, 5, 49, 3136):
            block_c, block_p = _launch_config(group_channels, pixels)
            assert block_c >= group_channels and block_c & (block_c - 1) == 0
            assert 16 <= block_p <= 128 and block_p & (block_p - 1) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_autocast_fp16():
    op = Involution(64, 7, stride=2).cuda()
    x = torch.randn(4, 64, 29, 29, device='cuda', requires_grad=True)
    with torch.autocast('cuda', dtype=torch.float16):
        out = op(x)
    out.float().square().mean().backward()
    assert 'mmconv_involution_aggregate' in type(out.grad_fn).__name__
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


@pytest.mark.skipif(INTERPRETED, reason='the interpreter accepts CPU tensors')
def test_cpu_tensors_need_the_interpreter():
    x, kernel = random_pair(1, 16, 1, (5, 5), 3, 1, 'cpu')
    with pytest.raises(RuntimeError, match='TRITON_INTERPRET'):
        triton_aggregate(x, kernel, 3, 1, 1)
