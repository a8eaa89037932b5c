"""SDNet's "1D case": the matrix dictionary layer (CSCLinear) and the 1-D convolutional layer
(CSCConv1d) against hand formulas; the shared solver itself is tested in test_csc.py for all kinds."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmconv.ops import CSCConv1d, CSCLinear
from op_integration import assert_compiled_matches_eager, assert_empty_batch

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_linear_two_steps_match_closed_form():
    torch.manual_seed(0)
    layer = CSCLinear(32, 64).double().eval()  # SDNet's demo: MatrixSparseCodingLayer(32, 64)
    x = torch.randn(3, 32, dtype=torch.float64)
    out = layer(x)  # the first call estimates the step size
    eta, lam, w = layer.step_size.double(), 0.1, layer.weight
    z1 = F.relu(eta * x @ w.t() - eta * lam)
    z2 = F.relu(z1 + eta * (x - z1 @ w) @ w.t() - eta * lam)
    torch.testing.assert_close(out, z2, rtol=0, atol=1e-12)
    assert layer(x[:1]).shape == (1, 64)


def test_linear_step_size_is_from_largest_singular_value():
    torch.manual_seed(0)
    layer = CSCLinear(16, 24).double()
    x = torch.randn(4, 16, dtype=torch.float64)
    for _ in range(200):
        layer(x)
    sigma = torch.linalg.matrix_norm(layer.weight.detach(), 2)
    torch.testing.assert_close(layer.step_size.double(), 0.9 / sigma**2, rtol=1e-5, atol=0)
    assert layer.power_vector.shape == (1, 24)


def test_linear_atoms_are_rows():
    layer = CSCLinear(5, 7)
    with torch.no_grad():
        layer.weight.mul_(torch.arange(1.0, 8.0).view(7, 1))
    layer(torch.randn(2, 5))
    torch.testing.assert_close(layer.weight.norm(dim=1), torch.ones(7))


@pytest.mark.parametrize('kernel_size,stride,padding,dilation', [(3, 1, None, 1), (5, 2, None, 1), (4, 2, 1, 1),
                                                                 (3, 3, None, 2)])
@pytest.mark.parametrize('length', [7, 8, 16])
def test_conv1d_shape_matches_nn_conv1d_and_decodes_back(kernel_size, stride, padding, dilation, length):
    layer = CSCConv1d(4, 6, kernel_size, stride, padding, dilation=dilation)
    conv = nn.Conv1d(4, 6, kernel_size, stride, layer.padding, dilation)
    x = torch.randn(2, 4, length)
    out = layer(x)
    assert out.shape == conv(x).shape
    assert layer.decode(out, (length, )).shape == x.shape


def test_conv1d_two_steps_match_closed_form_odd_length_stride2():
    torch.manual_seed(0)
    layer = CSCConv1d(3, 5, 5, stride=2).double().eval()
    x = torch.randn(2, 3, 11, dtype=torch.float64)
    out = layer(x)
    eta, lam, w = layer.step_size.double(), 0.1, layer.weight
    z1 = F.relu(eta * F.conv1d(x, w, stride=2, padding=2) - eta * lam)
    pad = 11 - ((z1.shape[-1] - 1) * 2 - 4 + 5)
    residual = x - F.conv_transpose1d(z1, w, stride=2, padding=2, output_padding=pad)
    z2 = F.relu(z1 + eta * F.conv1d(residual, w, stride=2, padding=2) - eta * lam)
    torch.testing.assert_close(out, z2, rtol=0, atol=1e-12)


def test_conv1d_empty_batch():
    torch.manual_seed(0)
    assert_empty_batch(CSCConv1d(3, 5, 3, stride=2, num_steps=3), (3, ), (11, ))


def test_linear_empty_batch():
    layer = CSCLinear(8, 12, num_steps=3)
    for training in (True, False):
        layer.train(training)
        x = torch.randn(0, 5, 8, requires_grad=True)
        out = layer(x)
        assert out.shape == (0, 5, 12)
        grad_x, grad_weight = torch.autograd.grad(out.sum(), [x, layer.weight])
        assert grad_x.shape == x.shape and grad_weight.shape == layer.weight.shape and not grad_weight.any()


@pytest.mark.parametrize('kind', ['conv1d', 'linear'])
def test_compiled_matches_eager(kind):
    """fullgraph + dynamic compile on two sizes, with momentum (4 steps): FISTA's gradient at the
    extrapolated point (conv1d) and SDNet's at the iterate with signed elastic-net codes (matrix)."""
    torch.manual_seed(0)
    if kind == 'conv1d':
        layer = CSCConv1d(3, 5, 5, stride=2, num_steps=4, solver='fista')
        probe, inputs = torch.randn(1, 3, 13), [torch.randn(2, 3, 13), torch.randn(3, 3, 18)]
    else:
        layer = CSCLinear(8, 12, num_steps=4, mu=0.3, non_negative=False)
        probe, inputs = torch.randn(1, 8), [torch.randn(2, 5, 8), torch.randn(3, 7, 8)]
    layer.eval()
    with torch.no_grad():
        layer(probe)
    assert_compiled_matches_eager(layer, inputs)
