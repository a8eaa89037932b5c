"""SCConv's fast path as registered ops: ``mmconv::sru_squeeze`` (SRU and the CRU squeeze, X → S) and
``mmconv::cru`` (S → Z), with their backward ops, kernels in :mod:`.kernels`. The backward ops are
not differentiable: second derivatives raise one sentence (``impl='reference'`` gives them)."""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..flop_handles import register_op_flop_handle, value_shape
from ..precision import accumulation_dtype
from ..registration import NAMESPACE, refuse_second_order
from . import kernels

__all__ = ['cru', 'sru_squeeze']


@torch.library.custom_op(f'{NAMESPACE}::sru_squeeze', mutates_args=())
def sru_squeeze(x: Tensor, gn_weight: Tensor, gn_bias: Tensor, squeeze1: Tensor, squeeze2: Tensor, groups: int,
                eps: float, threshold: float, gate: str) -> Tensor:
    """SRU followed by the CRU squeeze convs: X → S."""
    return kernels.sru_squeeze_forward(x, gn_weight, gn_bias, squeeze1, squeeze2, groups, eps, threshold, gate)


@sru_squeeze.register_fake
def _(x, gn_weight, gn_bias, squeeze1, squeeze2, groups, eps, threshold, gate):
    return x.new_empty((x.shape[0], squeeze1.shape[0] + squeeze2.shape[0], x.shape[2], x.shape[3]),
                       dtype=squeeze1.dtype)


@torch.library.custom_op(f'{NAMESPACE}::sru_squeeze_backward', mutates_args=())
def sru_squeeze_backward(grad_squeezed: Tensor, x: Tensor, gn_weight: Tensor, gn_bias: Tensor, squeeze1: Tensor,
                         squeeze2: Tensor, groups: int, eps: float, threshold: float, gate: str) -> List[Tensor]:
    """Gradients of X, GroupNorm's weight and bias, and the two squeeze weights."""
    return kernels.sru_squeeze_backward(grad_squeezed, x, gn_weight, gn_bias, squeeze1, squeeze2, groups, eps,
                                        threshold, gate)


@sru_squeeze_backward.register_fake
def _(grad_squeezed, x, gn_weight, gn_bias, squeeze1, squeeze2, groups, eps, threshold, gate):
    return [x.new_empty(x.shape)] + [torch.empty_like(t) for t in (gn_weight, gn_bias, squeeze1, squeeze2)]


def _sru_setup_context(ctx, inputs, output) -> None:
    x, gn_weight, gn_bias, squeeze1, squeeze2, *ctx.config = inputs
    ctx.save_for_backward(x, gn_weight, gn_bias, squeeze1, squeeze2)


def _sru_backward(ctx, grad_squeezed):
    grad_x, grad_gn_weight, grad_gn_bias, grad_squeeze1, grad_squeeze2 = sru_squeeze_backward(
        grad_squeezed, *ctx.saved_tensors, *ctx.config)
    if ctx.config[-1] == 'hard':  # the hard masks are constants: GroupNorm gets no gradient (None, as in
        grad_gn_weight = grad_gn_bias = None  # the reference, so that weight decay leaves it alone too)
    return grad_x, grad_gn_weight, grad_gn_bias, grad_squeeze1, grad_squeeze2, None, None, None, None


sru_squeeze.register_autograd(_sru_backward, setup_context=_sru_setup_context)
refuse_second_order(sru_squeeze_backward, 'SCConv')


@torch.library.custom_op(f'{NAMESPACE}::cru', mutates_args=())
def cru(squeezed: Tensor, gwc_weight: Tensor, gwc_bias: Optional[Tensor], pwc1_weight: Tensor,
        pwc2_weight: Optional[Tensor], stride: int, dilation: int, gwc_groups: int,
        fuse: str) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """CRU: S → Z, and for backward the fuse weights, D = Y1 − Y2 and (``'joint'``) Y2."""
    return kernels.cru_forward(squeezed, gwc_weight, gwc_bias, pwc1_weight, pwc2_weight, stride, dilation, gwc_groups,
                               fuse)


@cru.register_fake
def _(squeezed, gwc_weight, gwc_bias, pwc1_weight, pwc2_weight, stride, dilation, gwc_groups, fuse):
    batch, _, height, width = squeezed.shape
    shape = (batch, gwc_weight.shape[0], (height + stride - 1) // stride, (width + stride - 1) // stride)
    weights = squeezed.new_empty((batch, gwc_weight.shape[0] * (1 if fuse == 'paper' else 2)),
                                 dtype=accumulation_dtype(squeezed.dtype))
    return (squeezed.new_empty(shape), weights, squeezed.new_empty(shape),
            squeezed.new_empty(shape if fuse == 'joint' else (0, )))


@torch.library.custom_op(f'{NAMESPACE}::cru_backward', mutates_args=())
def cru_backward(grad_out: Tensor, squeezed: Tensor, gwc_weight: Tensor, has_bias: bool, pwc1_weight: Tensor,
                 pwc2_weight: Optional[Tensor], fuse_weights: Tensor, diff: Tensor, lower_output: Tensor, stride: int,
                 dilation: int, gwc_groups: int, fuse: str) -> List[Tensor]:
    """Gradients of S, the GWC weight and bias (empty without), PWC1 and PWC2 (empty without)."""
    return kernels.cru_backward(grad_out, squeezed, gwc_weight, has_bias, pwc1_weight, pwc2_weight, fuse_weights, diff,
                                lower_output, stride, dilation, gwc_groups, fuse)


@cru_backward.register_fake
def _(grad_out, squeezed, gwc_weight, has_bias, pwc1_weight, pwc2_weight, fuse_weights, diff, lower_output, stride,
      dilation, gwc_groups, fuse):
    empty = squeezed.new_empty(0)
    return [
        torch.empty_like(squeezed),
        torch.empty_like(gwc_weight),
        gwc_weight.new_empty(gwc_weight.shape[:1]) if has_bias else empty,
        torch.empty_like(pwc1_weight), empty if pwc2_weight is None else torch.empty_like(pwc2_weight)
    ]


def _cru_setup_context(ctx, inputs, output) -> None:
    squeezed, gwc_weight, gwc_bias, pwc1_weight, pwc2_weight, *ctx.config = inputs
    ctx.has_bias, ctx.has_pwc2 = gwc_bias is not None, pwc2_weight is not None
    _, fuse_weights, diff, lower_output = output
    ctx.mark_non_differentiable(fuse_weights, diff, lower_output)
    ctx.save_for_backward(squeezed, gwc_weight, pwc1_weight, pwc2_weight, fuse_weights, diff, lower_output)


def _cru_backward(ctx, grad_out, *_):
    squeezed, gwc_weight, pwc1_weight, pwc2_weight, fuse_weights, diff, lower_output = ctx.saved_tensors
    grad_squeezed, grad_gwc_weight, grad_gwc_bias, grad_pwc1, grad_pwc2 = cru_backward(
        grad_out, squeezed, gwc_weight, ctx.has_bias, pwc1_weight, pwc2_weight, fuse_weights, diff, lower_output,
        *ctx.config)
    return (grad_squeezed, grad_gwc_weight, grad_gwc_bias if ctx.has_bias else None, grad_pwc1,
            grad_pwc2 if ctx.has_pwc2 else None, None, None, None, None)


cru.register_autograd(_cru_backward, setup_context=_cru_setup_context)
refuse_second_order(cru_backward, 'SCConv')


@register_op_flop_handle(f'{NAMESPACE}::sru_squeeze')
def sru_squeeze_flops(inputs, outputs) -> int:
    """GroupNorm as mmengine counts ``nn.GroupNorm`` (5 per element) plus the two squeeze convs."""
    batch, channels, height, width = value_shape(inputs[0])
    squeeze1, squeeze2 = value_shape(inputs[3]), value_shape(inputs[4])
    pixels = batch * height * width
    return 5 * channels * pixels + pixels * (squeeze1[0] * squeeze1[1] + squeeze2[0] * squeeze2[1])


@register_op_flop_handle(f'{NAMESPACE}::cru')
def cru_flops(inputs, outputs) -> int:
    """GWC + PWC1 + PWC2 MACs plus the global average pool of Y1 and Y2, as the reference counts."""
    batch, out_channels, out_h, out_w = value_shape(outputs[0])
    weights = [shape for shape in map(value_shape, inputs[1:5]) if shape is not None and len(shape) == 4]
    gwc, pwc1 = weights[0], weights[1]
    pixels = batch * out_h * out_w
    flops = pixels * out_channels * (gwc[1] * gwc[2] * gwc[3] + pwc1[1]) + 2 * pixels * out_channels
    if len(weights) > 2:
        flops += pixels * weights[2][0] * weights[2][1]
    return flops
