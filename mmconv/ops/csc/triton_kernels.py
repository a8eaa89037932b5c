"""The CSC step's elementwise tail on CUDA as one Triton pass.

A later step forms ``z = P(y + c − η AᵀA p)`` (:func:`~.ops.csc_step`): after the two convolutions,
the torch kernels add c, add y, shrink and scale in three or four passes over the code; this kernel
reads the three operands once and writes z over the convolution's output. θ and the elastic-net
scale are read from their 0-d device tensors, so the step never synchronises the host.

This module imports triton; :mod:`.ops` imports it only for CUDA tensors. Under
``TRITON_INTERPRET=1`` the kernel runs on CPU tensors (the tests).
"""
from typing import Optional

import torch
import triton
import triton.language as tl

from ..triton_support import check_triton_device

__all__ = ['BLOCK', 'triton_shrink_sum']

BLOCK = 1024  # elements per program: 8 per thread at 4 warps


@triton.jit
def _shrink_sum_kernel(pre_ptr, c_ptr, y_ptr, theta_ptr, scale_ptr, numel, NON_NEGATIVE: tl.constexpr,
                       HAS_SCALE: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < numel
    v = (
        tl.load(pre_ptr + offsets, mask=mask, other=0.0).to(tl.float32) +
        tl.load(c_ptr + offsets, mask=mask, other=0.0).to(tl.float32) +
        tl.load(y_ptr + offsets, mask=mask, other=0.0).to(tl.float32))
    if NON_NEGATIVE:  # θ is already in c (its encode bias), so the proximal map is a ReLU
        z = tl.maximum(v, 0.0)
    else:
        theta = tl.load(theta_ptr).to(tl.float32)
        z = v - tl.minimum(tl.maximum(v, -theta), theta)
    if HAS_SCALE:
        z = z * tl.load(scale_ptr).to(tl.float32)
    tl.store(pre_ptr + offsets, z.to(pre_ptr.dtype.element_ty), mask=mask)


def triton_shrink_sum(pre: torch.Tensor, c: torch.Tensor, y: torch.Tensor, theta: torch.Tensor,
                      scale: Optional[torch.Tensor], non_negative: bool) -> torch.Tensor:
    """``P(pre + c + y)`` (times ``scale`` when given), written over ``pre`` and returned.

    Args:
        pre, c, y: codes of one shape and dense layout (:func:`~..triton_support.same_dense_layout`).
        theta: the ℓ1 threshold θ = ηλ (0-d); unused for ``non_negative`` codes, whose c holds −θ.
        scale: the elastic-net factor 1/(1 + ημ) (0-d), or None.
    """
    check_triton_device('CSC', pre, c, y)
    if pre.numel():
        _shrink_sum_kernel[(triton.cdiv(pre.numel(), BLOCK), )](pre, c, y, theta, scale if scale is not None else theta,
                                                                pre.numel(), non_negative, scale is not None, BLOCK)
    return pre
