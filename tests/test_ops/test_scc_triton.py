"""SCC's one-pass Triton forward vs upstream's level loop (:func:`scc_reference`), under the
interpreter without a GPU (see :mod:`triton_interpreter`)."""
import pytest
import torch

pytest.importorskip('triton')

from mmconv.ops.scc import SCC, draw_forced_levels
from mmconv.ops.scc.reference import scc_reference
from mmconv.ops.scc.triton_kernels import launch_config, triton_scc_forward
from triton_interpreter import INTERPRETED, assert_fast_matches_reference, interpreter_suite, on_cuda, on_devices

test_interpreter_suite_in_subprocess = interpreter_suite(__file__)


def scc_parameters(in_channels, out_channels, kernel_size, groups, device, dtype):
    levels = kernel_size // 2 + 1
    weight = torch.randn(out_channels, in_channels // groups, kernel_size, kernel_size, device=device)
    return (weight.to(dtype), torch.randn(levels, out_channels, device=device).to(dtype),
            torch.randn(levels, out_channels, 1, 1,
                        device=device), torch.randn(levels, out_channels, 1, 1, device=device))


def level_responses(x, weight, bias, stride, dilation, groups):
    """Each level's response, computed in fp64 with each sub-kernel zero-padded to K×K (independent of
    the ring walk), stacked on a leading level axis."""
    kernel_size = weight.shape[-1]
    centre = kernel_size // 2
    responses = []
    for level in range(centre + 1):
        masked = torch.zeros_like(weight, dtype=torch.float64)
        window = slice(centre - level, centre + level + 1)
        masked[..., window, window] = weight[..., window, window].double()
        responses.append(
            torch.nn.functional.conv2d(x.double(), masked, bias[level].double(), stride, centre * dilation, dilation,
                                       groups))
    return torch.stack(responses)


def assert_matches_reference(x, weight, bias, alpha, beta, stride, dilation, groups, forced=None, atol=1e-4):
    """Output within ``atol`` (relative to the output's scale) of the fp64 reference wherever the best
    level wins by more than ``atol`` (elsewhere rounding may flip a near-tie), and the same choice."""
    out, choice = triton_scc_forward(x, weight, bias, alpha, beta, stride, dilation, groups, forced)
    want = scc_reference(x.double(), weight.double(), bias.double(), alpha.double(), beta.double(), stride, dilation,
                         groups, forced)
    responses = level_responses(x, weight, bias, stride, dilation, groups)
    scale = float(responses.abs().max())
    want_choice = responses.argmax(0).to(torch.int8)  # first maximal level, as the kernel keeps it
    if forced is not None:
        want_choice = torch.where(forced >= 0, forced, want_choice)
    top2 = responses.topk(min(2, responses.shape[0]), dim=0).values
    clear = (top2[0] - top2[-1] > atol * scale) if responses.shape[0] > 1 else torch.ones_like(want, dtype=bool)
    if forced is not None:
        clear |= forced >= 0
    assert clear.float().mean() > 0.9  # the check below covers almost every element
    assert out.shape == want.shape and choice.shape == want.shape and choice.dtype == torch.int8
    assert torch.equal(choice[clear], want_choice[clear])
    assert (out.double() - want)[clear].abs().max() <= atol * scale * 4


GEOMETRIES = [  # (in, out, kernel, stride, dilation, groups, height, width)
    (4, 6, 3, 1, 1, 1, 9, 7),
    (4, 6, 5, 2, 1, 1, 9, 7),  # stride 2, odd sizes
    (4, 6, 3, 2, 2, 2, 7, 8),  # groups, dilation
    (4, 4, 1, 1, 1, 1, 5, 5),  # K = 1: one level
    (3, 5, 7, 1, 1, 1, 9, 9),  # K = 7, channel blocks padded
    (6, 4, 5, 2, 2, 2, 11, 9),
    (40, 36, 3, 1, 1, 1, 10, 9),  # two input-channel blocks, several pixel blocks
]


@on_devices
@pytest.mark.parametrize('in_channels,out_channels,kernel_size,stride,dilation,groups,height,width', GEOMETRIES)
def test_matches_reference_fp32(device, in_channels, out_channels, kernel_size, stride, dilation, groups, height,
                                width):
    torch.manual_seed(0)
    x = torch.randn(2, in_channels, height, width, device=device)
    params = scc_parameters(in_channels, out_channels, kernel_size, groups, device, torch.float32)
    with torch.backends.cudnn.flags(allow_tf32=False):
        assert_matches_reference(x, *params, stride, dilation, groups)


@on_devices
def test_forced_levels_override_the_choice(device):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 7, device=device)
    params = scc_parameters(4, 6, 5, 1, device, torch.float32)
    forced = draw_forced_levels((2, 6, 8, 7), 3, 0.2, torch.device(device))
    assert (forced >= 0).any() and (forced < 0).any()
    with torch.backends.cudnn.flags(allow_tf32=False):
        assert_matches_reference(x, *params, 1, 1, 1, forced)
        out, choice = triton_scc_forward(x, *params, 1, 1, 1, forced)
    assert torch.equal(choice[forced >= 0], forced[forced >= 0])


# Triton 3.8's interpreter gets tl.dot of bf16 operands wrong (numpy has no bf16: a 16×16 product is
# off by 1e10); the compiled bf16 kernel is checked by triton_aot.py and on a GPU by gpu_check.sh.
BF16_DOT = pytest.param(
    torch.bfloat16,
    marks=pytest.mark.skipif(INTERPRETED,
                             reason="Triton's interpreter computes bf16 tl.dot wrongly; runs on CUDA only"))


@on_devices
@pytest.mark.parametrize('dtype', [torch.float16, BF16_DOT])
def test_half_precision_accumulates_in_fp32(device, dtype):
    torch.manual_seed(0)
    x = torch.randn(1, 32, 7, 6, device=device).to(dtype)
    params = scc_parameters(32, 16, 5, 1, device, dtype)
    out, _ = triton_scc_forward(x, *params, 1, 1, 1, None)
    assert out.dtype == torch.float32  # α and β are fp32, as under autocast
    # fp32 accumulation of the rounded inputs: the reference on those inputs agrees to fp32 rounding.
    assert_matches_reference(x, *params, 1, 1, 1, atol=1e-4)


@on_devices
def test_channels_last_input_keeps_its_layout(device):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6, device=device).contiguous(memory_format=torch.channels_last)
    params = scc_parameters(8, 8, 3, 1, device, torch.float32)
    out, choice = triton_scc_forward(x, *params, 1, 1, 1, None)
    assert out.is_contiguous(memory_format=torch.channels_last)
    with torch.backends.cudnn.flags(allow_tf32=False):
        assert_matches_reference(x, *params, 1, 1, 1)


def test_launch_blocks_are_powers_of_two_at_least_16():
    for in_per_group, out_per_group, pixels in [(1, 1, 1), (3, 5, 49), (64, 64, 3136), (512, 256, 49)]:
        blocks = launch_config(in_per_group, out_per_group, pixels)
        assert all(b >= 16 and b & (b - 1) == 0 for b in blocks)
        assert blocks[0] <= 64 and blocks[1] <= 32 and blocks[2] <= 64


@on_cuda
def test_module_fast_path_matches_reference_with_gradients(device):
    torch.manual_seed(0)
    op = SCC(16, 16, 5, stride=2).to(device)
    x = torch.randn(2, 16, 15, 14, device=device, requires_grad=True)
    assert_fast_matches_reference(op, x, list(op.parameters()), (1e-4, 1e-4), (1e-3, 1e-3))


@on_cuda
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_module_autocast(device, dtype):
    op = SCC(32, 32, 5).to(device)
    x = torch.randn(4, 32, 17, 17, device=device, requires_grad=True)
    with torch.autocast('cuda', dtype=dtype):
        out = op(x)
    out.float().square().mean().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


@pytest.mark.skipif(INTERPRETED, reason='the interpreter accepts CPU tensors')
def test_cpu_tensors_need_the_interpreter():
    params = scc_parameters(4, 4, 3, 1, 'cpu', torch.float32)
    with pytest.raises(RuntimeError, match='TRITON_INTERPRET'):
        triton_scc_forward(torch.randn(1, 4, 5, 5), *params, 1, 1, 1, None)
