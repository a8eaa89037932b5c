"""Every operator's output takes an in-place op afterwards (an inplace ReLU), with correct gradients.

An op whose output is a view of one of its internal tensors makes autograd refuse in-place ops on
that output in backward; the fast paths must return tensors of their own.
"""
import pytest
import torch

from mmconv.ops import SCC, CSCConv2d, CVolution, Involution, SCConv

OPERATORS = {  # name: (factory taking impl, channels)
    'involution': (lambda impl: Involution(16, 3, impl=impl), 16),
    'cvolution': (lambda impl: CVolution(16, 3, impl=impl), 16),
    'scc3': (lambda impl: SCC(8, 8, 3, impl=impl), 8),
    'scc5_stride2': (lambda impl: SCC(8, 8, 5, stride=2, impl=impl), 8),
    'scconv': (lambda impl: SCConv(8, 8, impl=impl), 8),
    'scconv_dense': (lambda impl: SCConv(16, 4, impl=impl), 16),
    'csc': (lambda impl: CSCConv2d(8, 8, 3, impl=impl), 8),
}


@pytest.mark.parametrize('name', sorted(OPERATORS))
def test_inplace_relu_after_fast_path(name):
    factory, channels = OPERATORS[name]
    torch.manual_seed(0)
    fast = factory('fast').double().eval()
    reference = factory('reference').double().eval()
    reference.load_state_dict(fast.state_dict())
    x = torch.randn(2, channels, 7, 6, dtype=torch.float64, requires_grad=True)
    fast_out = torch.relu_(fast(x))
    reference_out = torch.relu(reference(x))
    grad = torch.randn_like(reference_out)
    fast_grads = torch.autograd.grad(fast_out, [x, *fast.parameters()], grad)
    reference_grads = torch.autograd.grad(reference_out, [x, *reference.parameters()], grad)
    torch.testing.assert_close(fast_out, reference_out)
    for got, want in zip(fast_grads, reference_grads):
        torch.testing.assert_close(got, want)
