"""C-volution: involution whose output is rescaled per channel by a global channel branch (CedNet).

"C-volution: A Hybrid Operator for Visual Recognition", PRCV 2023 (paper not publicly available).
https://github.com/nightmareisme/c-volution

What was reconstructed, and why. The operator's source (``models/add/cvolution.py``) was public only
from April to August 2023 and has since been deleted from the repository; the current README says
the code "will be available soon". The recovered file, read for semantics only (the repository has
no licence), computes

* a spatial branch identical to involution's kernel generator, except that its first 1×1 conv has a
  bias (redundant before BN, kept for parameter parity);
* a channel branch ``a = GAP(conv_q(x))``: a grouped 3×3 conv (C → C, groups 16 in the
  classification code, 4 in the detection neck, no bias) followed by a global average pool, with no
  sigmoid;
* ``out = InvolutionAggregate(x ⊙ a, kernel(x))``.

Because the kernel is generated from the unscaled ``x`` and ``a`` is constant over space, this equals
``a ⊙ InvolutionAggregate(x, kernel(x))``, which is what the default path computes: a post-multiply
after the fused (memory-light or Triton) aggregation, with no extra B×C×H×W input temporary. The
default path also gets ``a`` without running ``conv_q`` over the image (:class:`ChannelBranchMean`:
the mean of a conv is the conv of per-tap window sums); the reference path runs conv then pool. A
CedNet-50 rebuilt with this design has 16.25 M parameters and about 2.85 GMACs, consistent with
the claimed 16.3 M / 2.9 G.

Fixed here: the released conv_q used ``padding=kernel_size // 2`` of the involution kernel (3 for
K = 7) on a 3×3 conv, so the pooled mean included zero borders and depended on the resolution; we pad
by ``cq_kernel // 2``. The released forward also called the autograd Function class instead of
``.apply``, did not pass dilation, and needed CuPy; none of that carries over.

Alternatives, as options: ``gate='sigmoid'`` squashes ``a`` SE-style (more stable in necks with no
norm after the operator); ``kernel_from='gated'`` follows the May-2023 abstract ("use channel
information to promote the generation of dynamic kernels"): the kernel is generated from
``x ⊙ a`` and aggregates ``x ⊙ a``. Both keep the parameters and MACs.
"""
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .flop_handles import register_flop_handle, value_shape
from .involution import Involution
from .validation import check_positive, check_positive_odd

__all__ = ['CVolution', 'ChannelBranchMean']

GATES = ('linear', 'sigmoid')
KERNEL_SOURCES = ('x', 'gated')


def window_indicator(size: int, kernel_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """size×K 0/1 matrix: entry (i, u) is 1 when a same-padded K-tap conv reads input i for tap u.

    Output position o reads input o + u − K//2; over all outputs that covers the inputs
    ``u − K//2 ≤ i < size + u − K//2`` (the rest are zero padding).
    """
    inputs = torch.arange(size, device=device).unsqueeze(1)
    shifts = torch.arange(kernel_size, device=device).unsqueeze(0) - kernel_size // 2
    return ((inputs >= shifts) & (inputs < size + shifts)).to(dtype)


class ChannelBranchMean(torch.autograd.Function):
    """``GAP(conv2d(x, weight, padding=K//2, groups))`` without running the conv over the image.

    Both steps are linear, so the spatial mean of the conv equals the same grouped conv applied to
    one K×K map per channel: ``rect[u, v] = Σ x`` over the inputs that tap (u, v) reads, which is
    ``Rᵀ · x · C`` with the 0/1 window matrices R (H×K) and C (W×K) of :func:`window_indicator`.
    That is one pass over ``x`` forward and one over its gradient backward, instead of a grouped
    conv (slow on CPU at 4 channels per group) and its backward. Saves only the B×C×K×K sums.
    Sums and the small conv run in fp32 (or fp64); the results agree with conv-then-pool to rounding.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
        height, width = x.shape[2:]
        kernel_size = weight.shape[-1]
        acc_dtype = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), torch.float32)
        rows = window_indicator(height, kernel_size, x.dtype, x.device)
        cols = window_indicator(width, kernel_size, x.dtype, x.device)
        column_sums = torch.matmul(x, cols).to(acc_dtype)  # B×C×H×K
        rect = torch.matmul(rows.t().to(acc_dtype), column_sums).div_(height * width)
        ctx.groups = groups
        ctx.save_for_backward(rect, weight)
        ctx.input_shape, ctx.input_dtype = x.shape, x.dtype
        return torch.conv2d(rect, weight.to(acc_dtype), None, 1, 0, 1, groups).to(
            torch.promote_types(x.dtype, weight.dtype))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        rect, weight = ctx.saved_tensors
        height, width = ctx.input_shape[2:]
        kernel_size = weight.shape[-1]
        grad_rect, grad_weight, _ = torch.ops.aten.convolution_backward(
            grad_out.to(rect.dtype), rect, weight.to(rect.dtype), None, [1, 1], [0, 0], [1, 1], False,
            [0, 0], ctx.groups, [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False])
        grad_x = None
        if ctx.needs_input_grad[0]:
            rows = window_indicator(height, kernel_size, rect.dtype, rect.device)
            cols = window_indicator(width, kernel_size, ctx.input_dtype, rect.device)
            # ∂x[i, j] = Σ_{u,v} R[i, u] · ∂rect[u, v] · C[j, v] / (H·W): one pass over the B×C×H×W output.
            row_grads = torch.matmul(rows, grad_rect.div_(height * width)).to(ctx.input_dtype)
            grad_x = torch.matmul(row_grads, cols.t())
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_x, grad_weight, None


@register_flop_handle('ChannelBranchMean')
def channel_branch_flops(inputs, outputs) -> int:
    """Counted as the grouped conv and the pool it equals (the published CedNet budgets do):
    B·H·W·C_out·(C_in/groups)·K² + B·C_in·H·W."""
    batch, channels, height, width = value_shape(inputs[0])
    out_channels, in_per_group, kernel_size, _ = value_shape(inputs[1])
    pixels = batch * height * width
    return pixels * out_channels * in_per_group * kernel_size ** 2 + pixels * channels


class CVolution(Involution):
    """Involution rescaled per channel by ``a = gate(GAP(conv_q(x)))`` (C → C channels).

    Args:
        channels: input and output channels; a multiple of ``group_channels`` and ``cq_groups``.
        kernel_size: involution kernel size K, odd.
        stride: involution stride (the channel branch is global, so it has none).
        reduction_ratio: hidden width of the kernel generator is ``channels // reduction_ratio``.
        group_channels: channels sharing one involution kernel.
        cq_kernel: kernel size of the channel-branch conv, odd; padded by ``cq_kernel // 2``.
        cq_groups: groups of the channel-branch conv (16 in the CedNet backbone, 4 in its FPN neck).
        gate: ``'linear'`` (released code: ``a`` as is) or ``'sigmoid'``.
        kernel_from: ``'x'`` (released code: kernel from ``x``, output ``a ⊙ involution(x)``) or
            ``'gated'`` (kernel from and aggregation of ``x ⊙ a``).
        impl: involution aggregation implementation, see
            :func:`mmconv.ops.involution.involution_aggregate`.
        dilation: involution dilation (the released module fixed it to 1).

    Shape:
        x: B×C×H×W → B×C×ceil(H/stride)×ceil(W/stride).
    """

    def __init__(self, channels: int, kernel_size: int = 7, stride: int = 1, reduction_ratio: int = 4,
                 group_channels: int = 16, cq_kernel: int = 3, cq_groups: int = 16, gate: str = 'linear',
                 kernel_from: str = 'x', impl: str = 'auto', dilation: int = 1):
        check_positive('channels', channels)
        check_positive_odd('cq_kernel', cq_kernel)
        check_positive('cq_groups', cq_groups)
        if channels % cq_groups:
            raise ValueError(f'channels must be a multiple of cq_groups={cq_groups}, got {channels}.')
        if gate not in GATES:
            raise ValueError(f'gate must be one of {GATES}, got {gate!r}.')
        if kernel_from not in KERNEL_SOURCES:
            raise ValueError(f'kernel_from must be one of {KERNEL_SOURCES}, got {kernel_from!r}.')
        super().__init__(channels, kernel_size, stride, reduction_ratio, group_channels, dilation,
                         impl=impl, reduce_bias=True)
        self.gate = gate
        self.kernel_from = kernel_from
        self.conv_q = nn.Conv2d(channels, channels, cq_kernel, padding=cq_kernel // 2, groups=cq_groups,
                                bias=False)
        self.pool_q = nn.AdaptiveAvgPool2d(1)

    def channel_scale(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel scale ``a`` (B×C×1×1) from the channel branch.

        The reference path runs ``conv_q`` then ``pool_q``; the others compute the same mean with
        :class:`ChannelBranchMean`, without the conv over the image.
        """
        if self.impl == 'reference':
            scale = self.pool_q(self.conv_q(x))
        else:
            with torch.autocast(x.device.type, enabled=False):  # sums in fp32 whatever the autocast
                scale = ChannelBranchMean.apply(x, self.conv_q.weight, self.conv_q.groups)
        return scale.sigmoid() if self.gate == 'sigmoid' else scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.channel_scale(x)
        if self.kernel_from == 'gated':
            return super().forward(x * scale)
        return super().forward(x) * scale

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, gate={self.gate!r}, kernel_from={self.kernel_from!r}'
