"""SCConv's Triton kernels: the one-pass SRU output vs the reference SRU (the spec), and the CRU fuse vs
the paper's softmax written out; under the interpreter without a GPU (see :mod:`triton_interpreter`)."""
import pytest
import torch

pytest.importorskip('triton')

from mmconv.ops.scconv import SCConv
from mmconv.ops.scconv.kernels import _gate_affine
from mmconv.ops.scconv.reference import SRU
from mmconv.ops.scconv.triton_kernels import triton_cru_fuse, triton_sru_output
from triton_interpreter import INTERPRETED, assert_fast_matches_reference, interpreter_suite, on_cuda, on_devices

test_interpreter_suite_in_subprocess = interpreter_suite(__file__)


def reference_sru(channels, groups, gate, device):
    torch.manual_seed(0)
    sru = SRU(channels, groups, 0.5, gate).to(device)
    with torch.no_grad():
        sru.gn.weight.uniform_(0.7, 1.3)
        sru.gn.bias.uniform_(-0.3, 0.3)
    return sru


def gate_values(sru, x):
    """R in fp64, to keep the comparison off elements whose mask rounding may flip."""
    gamma = sru.gn.weight.detach().double()
    normalised = torch.nn.functional.group_norm(x.double(), sru.gn.num_groups, gamma, sru.gn.bias.double(), sru.gn.eps)
    return torch.sigmoid(normalised * (gamma / gamma.sum()).view(-1, 1, 1))


@on_devices
@pytest.mark.parametrize('gate', ['soft', 'hard'])
@pytest.mark.parametrize('channels,groups,size', [(8, 4, (5, 7)), (16, 16, (9, 9)), (12, 2, (33, 40))])
def test_matches_reference_sru(device, gate, channels, groups, size):
    sru = reference_sru(channels, groups, gate, device)
    x = torch.randn(3, channels, *size, device=device)
    # Y_c depends on the masks of c and of its partner C/2 away: skip pixels where either may flip.
    near = (gate_values(sru, x) - 0.5).abs() < 1e-5
    pair_near = near[:, :channels // 2] | near[:, channels // 2:]
    checked = ~torch.cat([pair_near, pair_near], 1)
    assert checked.float().mean() > 0.99
    want = sru.double()(x.double())
    affine = _gate_affine(sru.gn.weight.detach(), sru.gn.bias.detach(), torch.float32)
    got = triton_sru_output(x, *affine, sru.gn.num_groups, sru.gn.eps, 0.5, gate, torch.float32)
    assert got.dtype == torch.float32 and got.shape == x.shape
    torch.testing.assert_close(got.double()[checked], want[checked], rtol=1e-5, atol=1e-5)


@on_devices
def test_half_input_writes_the_squeeze_dtype(device):
    sru = reference_sru(8, 4, 'soft', device)
    x = torch.randn(2, 8, 6, 6, device=device).to(torch.float16)
    affine = _gate_affine(sru.gn.weight.detach(), sru.gn.bias.detach(), torch.float32)
    got = triton_sru_output(x, *affine, 4, sru.gn.eps, 0.5, 'soft', torch.float16)
    want = sru.double()(x.double())
    assert got.dtype == torch.float16
    # fp32 math on fp16 inputs: one rounding to fp16 at the end.
    assert (got.double() - want).abs().max() <= 2**-9 * want.abs().max()


@on_devices
@pytest.mark.parametrize('fuse', ['paper', 'joint'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_cru_fuse_is_the_softmax_of_the_pooled_branches(device, fuse, dtype):
    torch.manual_seed(0)
    upper, lower = (torch.randn(3, 5, 37, 41, device=device).to(dtype) for _ in range(2))  # 1517 px: 2 blocks
    y1, y2 = upper.double(), lower.double()
    pooled = torch.stack([y1.mean((2, 3)), y2.mean((2, 3))])  # 2×B×C
    if fuse == 'paper':  # a two-way softmax per channel
        want_weights = torch.softmax(pooled, dim=0)[0]
        first, second = want_weights, 1 - want_weights
    else:  # one softmax over all 2C pooled channels, as the unofficial code
        want_weights = torch.softmax(torch.cat(list(pooled), 1), dim=1)
        first, second = want_weights.chunk(2, dim=1)
    want = first[..., None, None] * y1 + second[..., None, None] * y2
    weights = torch.empty(want_weights.shape, device=device)
    lower_copy = torch.empty_like(lower) if fuse == 'joint' else None
    triton_cru_fuse(upper, lower, weights, lower_copy, fuse)  # Y1 → D, Y2 → Z
    tolerance = 1e-5 if dtype == torch.float32 else 2**-9
    torch.testing.assert_close(weights.double(), want_weights, rtol=1e-5, atol=1e-6)
    assert (lower.double() - want).abs().max() <= tolerance * want.abs().max()
    assert (upper.double() - (y1 - y2)).abs().max() <= tolerance * (y1 - y2).abs().max()
    if fuse == 'joint':
        assert torch.equal(lower_copy.double(), y2)


@on_cuda
@pytest.mark.parametrize('gate,fuse', [('soft', 'paper'), ('hard', 'joint')])
def test_module_fast_path_matches_reference(device, gate, fuse):
    torch.manual_seed(0)
    module = SCConv(32, 32, gate=gate, fuse=fuse).to(device)
    x = torch.randn(2, 32, 14, 14, device=device, requires_grad=True)
    assert_fast_matches_reference(module, x, list(module.parameters()), (1e-4, 1e-4), (1e-3, 1e-3))


@pytest.mark.skipif(INTERPRETED, reason='the interpreter accepts CPU tensors')
def test_cpu_tensors_need_the_interpreter():
    with pytest.raises(RuntimeError, match='TRITON_INTERPRET'):
        triton_sru_output(torch.randn(1, 4, 3, 3), torch.ones(4), torch.zeros(4), 2, 1e-5, 0.5, 'soft', torch.float32)
