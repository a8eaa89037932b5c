"""opcheck on channels_last inputs: the fake kernels must give the strides the real kernels give
(Inductor asserts them; aot_eager and contiguous opcheck inputs do not). SCC's are in test_scc.py."""
import torch

from mmconv.ops import SCConv

CHANNELS_LAST = torch.channels_last


def channels_last(*shape, requires_grad=False):
    return torch.randn(*shape,
                       dtype=torch.float64).contiguous(memory_format=CHANNELS_LAST).requires_grad_(requires_grad)


def test_involution_and_cvolution_ops():
    x = channels_last(2, 8, 7, 6, requires_grad=True)
    kernel = torch.randn(2, 2, 9, 7, 6, dtype=torch.float64, requires_grad=True)
    grad = channels_last(2, 8, 7, 6)
    torch.library.opcheck(torch.ops.mmconv.involution_aggregate.default, (x, kernel, 3, 1, 1))
    torch.library.opcheck(torch.ops.mmconv.involution_grad_input.default, (grad, kernel.detach(), 3, 1, 1, 7, 6))
    torch.library.opcheck(torch.ops.mmconv.involution_grad_kernel.default, (grad, x.detach(), 3, 1, 1, 2))
    weight = torch.randn(8, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.mmconv.channel_branch_mean.default, (x, weight, 4))


def test_scconv_ops():
    torch.manual_seed(0)
    module = SCConv(8, 6).double()
    sru, cru = module.sru, module.cru
    x = channels_last(2, 8, 7, 6, requires_grad=True)
    torch.library.opcheck(torch.ops.mmconv.sru_squeeze.default,
                          (x, sru.gn.weight, sru.gn.bias, cru.squeeze1.weight, cru.squeeze2.weight, sru.gn.num_groups,
                           sru.gn.eps, 0.5, 'soft'))
    squeezed = channels_last(2, 4, 7, 6, requires_grad=True)
    torch.library.opcheck(torch.ops.mmconv.cru.default,
                          (squeezed, cru.gwc.weight, None, cru.pwc1.weight, cru.pwc2.weight, 1, 1, 2, 'paper'))
