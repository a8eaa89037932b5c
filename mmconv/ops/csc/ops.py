"""The CSC solver's first step and later steps as registered ops (``mmconv::csc_*``).

* ``csc_encode(weight, x, step, theta, scale, …) -> (c, z₁)``: ``c = η Aᵀx − θ·[non-negative]``
  (η folded into the weight, θ into the conv's bias) and ``z₁ = P(c)``. ``c`` is the part of every
  later step's argument that does not depend on the codes.
* ``csc_step(weight, x, y, point, c, …) -> (z, A p)``: a later step
  ``z = P(y + η Aᵀ(x − A p)) = shrink(y + c − η AᵀA p)``, p the gradient point (``point``, or y when
  it is None), so no residual is formed. ``A p`` is returned so that it can be saved for backward.
* ``csc_encode_backward`` and ``csc_step_backward``: their gradients, as ops.

The dictionary is passed as plain arguments ``(ndim, stride, padding, dilation, groups)`` (see
:mod:`.dictionaries`); a step also takes the signal ``x`` for its size only (the output padding of
``A``; a traced graph stays valid for other sizes), not its values. η, θ = λη
and the elastic-net factor ς = 1 / (1 + ημ) (``scale``, None for μ = 0) are 0-d tensors: nothing
waits for the device. What backward keeps is chosen by two flags that do not change the values:
``keep_output`` saves the code itself (when the next step saves it anyway as its gradient point)
instead of its one-byte support, and ``recompute`` decodes ``A p`` again in backward instead of
saving it. The kernels are torch ops, so one kernel serves every device; the fake kernels run the
same code on fake tensors (only shape arithmetic and the convolutions' meta functions), which gives
exact sizes and strides for symbolic shapes.

The backward ops are linear in the incoming gradient but depend on the weights through the codes'
supports and convolutions; they are not differentiable, and differentiating them raises (use
``impl='reference'`` for second derivatives).
"""
import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..flop_handles import register_op_flop_handle, value_shape
from ..registration import NAMESPACE, refuse_second_order
from ..triton_support import TRITON_DTYPES, same_dense_layout, use_triton
from .dictionaries import decode, decode_backward, encode, encode_backward, transpose_output_padding

__all__ = ['csc_encode', 'csc_encode_backward', 'csc_step', 'csc_step_backward']


def _shrink(v: Tensor, theta: Tensor, scale: Optional[Tensor], non_negative: bool, inplace: bool) -> Tensor:
    """The proximal map of ``v``; for non-negative codes ``v`` already has θ subtracted."""
    if non_negative:
        z = v.clamp_min_(0) if inplace else v.clamp_min(0)
    else:
        z = v.sub_(v.clamp(-theta, theta)) if inplace else v - v.clamp(-theta, theta)
    return z if scale is None else z.mul_(scale)


def _support(z: Tensor, non_negative: bool) -> Tensor:
    """Where the code is non-zero, one byte per element."""
    return z > 0 if non_negative else z != 0


def _through_shrink(grad: Tensor, support: Tensor, scale: Optional[Tensor], non_negative: bool) -> Tensor:
    """Backward of the proximal map: zero where the code is zero (torch's relu/softshrink convention).

    ``support`` is either the code itself or its boolean support. (Multiplying by the mask is several
    times faster than ``torch.where`` on CPU.) Returns a new tensor.
    """
    if support.dtype != torch.bool:
        if non_negative:
            grad = torch.ops.aten.threshold_backward(grad, support, 0)
            return grad if scale is None else grad.mul_(scale)
        support = support != 0
    grad = grad * support
    return grad if scale is None else grad.mul_(scale)


def _refuse_step_size_grad(needs_grad) -> None:
    if any(needs_grad):
        raise RuntimeError('The CSC ops do not differentiate the step size η, the threshold or the elastic-net '
                           'factor: pass them without requires_grad (the layers use their buffers).')


# ----------------------------------------------------------------------------------- first step


def _encode_kernel(weight: Tensor, x: Tensor, step: Tensor, theta: Tensor, scale: Optional[Tensor], ndim: int,
                   stride: List[int], padding: List[int], dilation: List[int], groups: int, non_negative: bool,
                   keep_output: bool) -> Tuple[Tensor, Tensor]:
    bias = (-theta).to(x.dtype).expand(weight.shape[0]) if non_negative else None
    c = encode(x, weight * step, bias, ndim, stride, padding, dilation, groups)
    return c, _shrink(c, theta, scale, non_negative, inplace=False)


@torch.library.custom_op(f'{NAMESPACE}::csc_encode', mutates_args=())
def csc_encode(weight: Tensor, x: Tensor, step: Tensor, theta: Tensor, scale: Optional[Tensor], ndim: int,
               stride: List[int], padding: List[int], dilation: List[int], groups: int, non_negative: bool,
               keep_output: bool) -> Tuple[Tensor, Tensor]:
    """First step: ``(c, z₁)`` with ``c = η Aᵀx − θ·[non-negative]`` and ``z₁ = P(c)``."""
    return _encode_kernel(weight, x, step, theta, scale, ndim, stride, padding, dilation, groups, non_negative,
                          keep_output)


csc_encode.register_fake(_encode_kernel)


def _encode_backward_kernel(grad_c: Optional[Tensor], grad_z: Optional[Tensor], x: Tensor, weight: Tensor, step: Tensor,
                            scale: Optional[Tensor], support: Tensor, ndim: int, stride: List[int], padding: List[int],
                            dilation: List[int], groups: int, non_negative: bool, need_weight: bool,
                            need_x: bool) -> Tuple[Tensor, Tensor]:
    grad = grad_c
    if grad_z is not None:
        grad = _through_shrink(grad_z, support, scale, non_negative)
        if grad_c is not None:
            grad.add_(grad_c)
    grad_x = grad_weight = None
    if grad is not None:
        grad_x, grad_weight = encode_backward(grad, x, weight * step, need_x, need_weight, ndim, stride, padding,
                                              dilation, groups)
    if grad_weight is not None:
        grad_weight.mul_(step)
    empty = weight.new_empty(0)
    return (empty if grad_weight is None else grad_weight), (x.new_empty(0) if grad_x is None else grad_x)


@torch.library.custom_op(f'{NAMESPACE}::csc_encode_backward', mutates_args=())
def csc_encode_backward(grad_c: Optional[Tensor], grad_z: Optional[Tensor], x: Tensor, weight: Tensor, step: Tensor,
                        scale: Optional[Tensor], support: Tensor, ndim: int, stride: List[int], padding: List[int],
                        dilation: List[int], groups: int, non_negative: bool, need_weight: bool,
                        need_x: bool) -> Tuple[Tensor, Tensor]:
    """``(∂weight, ∂x)`` of :func:`csc_encode` (empty where not asked for); ``support`` is z₁ or its mask."""
    return _encode_backward_kernel(grad_c, grad_z, x, weight, step, scale, support, ndim, stride, padding, dilation,
                                   groups, non_negative, need_weight, need_x)


csc_encode_backward.register_fake(_encode_backward_kernel)


def _encode_setup_context(ctx, inputs, output) -> None:
    (weight, x, step, theta, scale, ctx.ndim, ctx.stride, ctx.padding, ctx.dilation, ctx.groups, ctx.non_negative,
     keep_output) = inputs
    z = output[1]
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(x, weight, step, scale, z if keep_output else _support(z, ctx.non_negative))


def _encode_backward(ctx, grad_c, grad_z):
    need_weight, need_x = ctx.needs_input_grad[:2]
    _refuse_step_size_grad(ctx.needs_input_grad[2:5])
    nothing = (None, ) * 10
    if not (need_weight or need_x) or (grad_c is None and grad_z is None):
        return (None, None) + nothing
    x, weight, step, scale, support = ctx.saved_tensors
    grad_weight, grad_x = csc_encode_backward(grad_c, grad_z, x, weight, step, scale, support, ctx.ndim, ctx.stride,
                                              ctx.padding, ctx.dilation, ctx.groups, ctx.non_negative, need_weight,
                                              need_x)
    return (grad_weight if need_weight else None, grad_x if need_x else None) + nothing


csc_encode.register_autograd(_encode_backward, setup_context=_encode_setup_context)
refuse_second_order(csc_encode_backward, 'CSC')

# ----------------------------------------------------------------------------------- later steps


def _output_padding(x: Tensor, code: Tensor, weight: Tensor, ndim: int, stride: List[int], padding: List[int],
                    dilation: List[int]) -> List[int]:
    """The output padding of ``A`` that decodes ``code`` to ``x``'s size ([] for a matrix)."""
    if ndim == 0:
        return []
    return transpose_output_padding(x.shape[2:], code.shape[2:], weight.shape[2:], stride, padding, dilation)


def _step_kernel(weight: Tensor, x: Tensor, y: Tensor, point: Optional[Tensor], c: Tensor, step: Tensor, theta: Tensor,
                 scale: Optional[Tensor], ndim: int, stride: List[int], padding: List[int], dilation: List[int],
                 groups: int, non_negative: bool, keep_output: bool, recompute: bool,
                 fused: bool = False) -> Tuple[Tensor, Tensor]:
    """The step's kernels; ``fused`` (the op on real tensors, not the fake kernel) lets CUDA codes take
    the sum, shrink and scale in one Triton pass."""
    geometry = (ndim, stride, padding, dilation, groups)
    padding_out = _output_padding(x, c, weight, ndim, stride, padding, dilation)
    decoded = decode(y if point is None else point, weight, padding_out, *geometry)
    z = encode(decoded, weight * -step, None, *geometry)
    if fused and use_triton(z, c, y, dtypes=TRITON_DTYPES) and same_dense_layout(z, c, y):
        from .triton_kernels import triton_shrink_sum
        return triton_shrink_sum(z, c, y, theta, scale, non_negative), decoded
    return _shrink(z.add_(c).add_(y), theta, scale, non_negative, inplace=True), decoded


@torch.library.custom_op(f'{NAMESPACE}::csc_step', mutates_args=())
def csc_step(weight: Tensor, x: Tensor, y: Tensor, point: Optional[Tensor], c: Tensor, step: Tensor, theta: Tensor,
             scale: Optional[Tensor], ndim: int, stride: List[int], padding: List[int], dilation: List[int],
             groups: int, non_negative: bool, keep_output: bool, recompute: bool) -> Tuple[Tensor, Tensor]:
    """A later step: ``(z, A p)`` with ``z = P(y + c − η AᵀA p)``, p = ``point`` or y when None.

    ``x`` (the signal) only gives the size ``A`` decodes to: its values are not read.
    """
    return _step_kernel(weight, x, y, point, c, step, theta, scale, ndim, stride, padding, dilation, groups,
                        non_negative, keep_output, recompute, fused=True)


csc_step.register_fake(_step_kernel)


def _step_backward_kernel(grad_z: Optional[Tensor], grad_decoded: Optional[Tensor], support: Tensor, weight: Tensor,
                          step: Tensor, scale: Optional[Tensor], point: Tensor, decoded: Optional[Tensor],
                          output_padding: List[int], ndim: int, stride: List[int], padding: List[int],
                          dilation: List[int], groups: int, non_negative: bool, need_weight: bool, need_point: bool,
                          add_to_point: bool) -> Tuple[Tensor, Tensor, Tensor]:
    geometry = (ndim, stride, padding, dilation, groups)
    grad_v = None if grad_z is None else _through_shrink(grad_z, support, scale, non_negative)
    grad_analysis = None
    if grad_v is not None and (need_weight or need_point):
        # z = P(y + c + conv(A p, −ηW)): back through the analysis conv, then the synthesis A p.
        if decoded is None:
            decoded = decode(point, weight, output_padding, *geometry)
        grad_signal, grad_analysis = encode_backward(grad_v, decoded, weight * -step, True, need_weight, *geometry)
        if grad_decoded is not None:
            grad_signal.add_(grad_decoded)
    else:
        grad_signal = grad_decoded
    grad_point = grad_weight = None
    if grad_signal is not None and (need_weight or need_point):
        grad_point, grad_weight = decode_backward(grad_signal, point, weight, output_padding, need_point, need_weight,
                                                  *geometry)
        if grad_analysis is not None:
            grad_weight.addcmul_(grad_analysis, step, value=-1)
    if add_to_point and grad_v is not None:
        grad_point = grad_v.clone() if grad_point is None else grad_point.add_(grad_v)
    return (weight.new_empty(0) if grad_weight is None else grad_weight,
            point.new_empty(0) if grad_v is None else grad_v, point.new_empty(0) if grad_point is None else grad_point)


@torch.library.custom_op(f'{NAMESPACE}::csc_step_backward', mutates_args=())
def csc_step_backward(grad_z: Optional[Tensor], grad_decoded: Optional[Tensor], support: Tensor, weight: Tensor,
                      step: Tensor, scale: Optional[Tensor], point: Tensor, decoded: Optional[Tensor],
                      output_padding: List[int], ndim: int, stride: List[int], padding: List[int], dilation: List[int],
                      groups: int, non_negative: bool, need_weight: bool, need_point: bool,
                      add_to_point: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """``(∂weight, ∂v, ∂p)`` of :func:`csc_step` (empty where not asked for or zero).

    ∂v, the gradient of the shrink's argument, is the gradient of y and of c; with ``add_to_point``
    (the step's gradient point is y itself) it is added into ∂p. ``decoded`` is the saved ``A p``,
    or None to decode it again.
    """
    return _step_backward_kernel(grad_z, grad_decoded, support, weight, step, scale, point, decoded, output_padding,
                                 ndim, stride, padding, dilation, groups, non_negative, need_weight, need_point,
                                 add_to_point)


csc_step_backward.register_fake(_step_backward_kernel)


def _step_setup_context(ctx, inputs, output) -> None:
    (weight, x, y, point, c, step, theta, scale, ctx.ndim, ctx.stride, ctx.padding, ctx.dilation, ctx.groups,
     ctx.non_negative, keep_output, recompute) = inputs
    z, decoded = output
    ctx.output_padding = _output_padding(x, c, weight, ctx.ndim, ctx.stride, ctx.padding, ctx.dilation)
    ctx.set_materialize_grads(False)
    ctx.gradient_at_y = point is None
    ctx.save_for_backward(weight, step, scale, y if point is None else point, None if recompute else decoded,
                          z if keep_output else _support(z, ctx.non_negative))


def _step_backward(ctx, grad_z, grad_decoded):
    need_weight, _, need_y, need_point, need_c = ctx.needs_input_grad[:5]
    _refuse_step_size_grad(ctx.needs_input_grad[5:8])
    nothing = (None, ) * 11
    if grad_z is None and grad_decoded is None:
        return (None, ) * 5 + nothing
    weight, step, scale, point, decoded, support = ctx.saved_tensors
    at_y = ctx.gradient_at_y
    grad_weight, grad_v, grad_point = csc_step_backward(grad_z, grad_decoded, support, weight, step, scale, point,
                                                        decoded, ctx.output_padding, ctx.ndim, ctx.stride, ctx.padding,
                                                        ctx.dilation, ctx.groups, ctx.non_negative, need_weight,
                                                        need_point or (at_y and need_y), at_y and need_y)
    has_v = grad_z is not None
    grad_y = (grad_point if at_y else grad_v if has_v else None) if need_y else None
    return (grad_weight if need_weight else None, None, grad_y, grad_point if need_point and not at_y else None,
            grad_v if need_c and has_v else None) + nothing


csc_step.register_autograd(_step_backward, setup_context=_step_setup_context)
refuse_second_order(csc_step_backward, 'CSC')

# ----------------------------------------------------------------------------------------- FLOPs


def _atom_macs(weight_value) -> int:
    """MACs per code element of one analysis or synthesis pass: C_in/groups · k… (d for a matrix)."""
    return math.prod(value_shape(weight_value)[1:])


@register_op_flop_handle(f'{NAMESPACE}::csc_encode')
def encode_flops(inputs, outputs) -> int:
    """The analysis conv ``Aᵀx``: one MAC per code element and atom entry."""
    return math.prod(value_shape(outputs[0])) * _atom_macs(inputs[0])


@register_op_flop_handle(f'{NAMESPACE}::csc_step')
def step_flops(inputs, outputs) -> int:
    """One synthesis ``A p`` and one analysis conv: twice the MACs of :func:`encode_flops`."""
    return 2 * math.prod(value_shape(outputs[0])) * _atom_macs(inputs[0])
