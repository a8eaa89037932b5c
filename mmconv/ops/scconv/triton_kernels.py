"""SCConv on CUDA: the SRU's gate and reconstruction as one Triton pass over X, and the CRU's fuse as
two passes over the branch outputs.

The torch kernels of :mod:`.kernels` form the SRU output Y in about ten elementwise passes (GroupNorm,
sigmoid, the mask, the products, the cross-sum of the halves). Here the GroupNorm statistics come
from one reduction (``torch.var_mean``), and one kernel reads each pair of channels (c, c + C/2) once
and writes both channels of Y, in the squeeze convs' dtype, which cuBLAS then applies. The math is
:func:`~.kernels._sru_gate` and :func:`~.kernels._sru_output` in fp32:

    R = sigmoid(W_γ·γ·(X − μ)·σ⁻¹ + W_γ·β),  M = [R > t] (soft) or [R ≥ t] (hard),
    soft: U = R·(1 − M)·X, Y_c = M_c·X_c + U_c + U_c',   hard: Y_c = M_c·X_c + (1 − M_c')·X_c',

with c' the channel C/2 away. The CRU fuse (:func:`~.kernels._cru_chunk_forward`: D = Y1 − Y2, the
pooled means, Z = s·Y2 + β1·D) takes four to seven torch passes; here one kernel forms D and both
means per (image, channel) row, and after the B×C softmax (torch) a second writes Z (and, for
``'joint'``, the copy of Y2 backward needs). This module imports triton; :mod:`.kernels` imports it only for CUDA
tensors. Under ``TRITON_INTERPRET=1`` the kernel runs on CPU tensors (the tests).
"""
import torch
import triton
import triton.language as tl

from ..triton_support import check_triton_device
from .kernels import fuse_weights

__all__ = ['BLOCK_P', 'triton_cru_fuse', 'triton_sru_output']

BLOCK_P = 1024  # pixels per program: two channels × 1024 fp32 values, 8 per thread at 4 warps


@triton.jit
def _sru_output_kernel(x_ptr, mean_ptr, rstd_ptr, scale_ptr, shift_ptr, out_ptr, channels, pixels, group_channels,
                       groups, threshold, SOFT: tl.constexpr, BLOCK_P: tl.constexpr):
    """One (image, channel pair c / c + C/2) × pixel block of Y."""
    half = channels // 2
    pair = tl.program_id(0)
    image = pair // half
    top = pair % half
    bottom = top + half
    offsets = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    mask = offsets < pixels
    top_base = (image.to(tl.int64) * channels + top) * pixels
    bottom_base = (image.to(tl.int64) * channels + bottom) * pixels
    x_top = tl.load(x_ptr + top_base + offsets, mask=mask, other=0.0).to(tl.float32)
    x_bottom = tl.load(x_ptr + bottom_base + offsets, mask=mask, other=0.0).to(tl.float32)
    stats_top = image * groups + top // group_channels
    stats_bottom = image * groups + bottom // group_channels
    gate_top = tl.sigmoid((x_top - tl.load(mean_ptr + stats_top)) * tl.load(rstd_ptr + stats_top) *
                          tl.load(scale_ptr + top) + tl.load(shift_ptr + top))
    gate_bottom = tl.sigmoid((x_bottom - tl.load(mean_ptr + stats_bottom)) * tl.load(rstd_ptr + stats_bottom) *
                             tl.load(scale_ptr + bottom) + tl.load(shift_ptr + bottom))
    if SOFT:
        keep_top = (gate_top > threshold).to(tl.float32)
        keep_bottom = (gate_bottom > threshold).to(tl.float32)
        shared = gate_top * (1 - keep_top) * x_top + gate_bottom * (1 - keep_bottom) * x_bottom
        y_top = keep_top * x_top + shared
        y_bottom = keep_bottom * x_bottom + shared
    else:
        keep_top = (gate_top >= threshold).to(tl.float32)
        keep_bottom = (gate_bottom >= threshold).to(tl.float32)
        y_top = keep_top * x_top + (1 - keep_bottom) * x_bottom
        y_bottom = keep_bottom * x_bottom + (1 - keep_top) * x_top
    tl.store(out_ptr + top_base + offsets, y_top.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(out_ptr + bottom_base + offsets, y_bottom.to(out_ptr.dtype.element_ty), mask=mask)


def triton_sru_output(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, groups: int, eps: float,
                      threshold: float, gate: str, dtype: torch.dtype) -> torch.Tensor:
    """The SRU output Y of ``x`` (B×C×H×W), contiguous, in ``dtype``.

    Args:
        scale, shift: the gate's GroupNorm affine W_γ·γ and W_γ·β (C, fp32).
        groups, eps: GroupNorm's groups and ε. threshold, gate: the gate's t and ``'soft'``/``'hard'``.
    """
    check_triton_device('SCConv', x)
    x = x.contiguous()
    batch, channels = x.shape[:2]
    pixels = x[0, 0].numel()
    # GroupNorm's statistics in fp32 (biased variance, as GroupNorm normalises).
    variance, mean = torch.var_mean(x.view(batch * groups, -1).float(), dim=1, correction=0)
    rstd = torch.rsqrt(variance + eps)
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    if out.numel():
        grid = (batch * (channels // 2), triton.cdiv(pixels, BLOCK_P))
        _sru_output_kernel[grid](x, mean, rstd, scale.float().contiguous(), shift.float().contiguous(), out, channels,
                                 pixels, channels // groups, groups, threshold, gate == 'soft', BLOCK_P)
    return out


@triton.jit
def _difference_and_means_kernel(diff_ptr, lower_ptr, mean_diff_ptr, mean_lower_ptr, pixels, BLOCK_P: tl.constexpr):
    """One (image, channel) row: D = Y1 − Y2 over Y1 (``diff_ptr``), and the means of D and Y2."""
    row = tl.program_id(0).to(tl.int64) * pixels
    diff_sum = tl.zeros((BLOCK_P, ), dtype=tl.float32)
    lower_sum = tl.zeros((BLOCK_P, ), dtype=tl.float32)
    for start in range(0, pixels, BLOCK_P):
        offsets = start + tl.arange(0, BLOCK_P)
        mask = offsets < pixels
        lower = tl.load(lower_ptr + row + offsets, mask=mask, other=0.0).to(tl.float32)
        diff = tl.load(diff_ptr + row + offsets, mask=mask, other=0.0).to(tl.float32) - lower
        tl.store(diff_ptr + row + offsets, diff.to(diff_ptr.dtype.element_ty), mask=mask)
        diff_sum += diff
        lower_sum += lower
    tl.store(mean_diff_ptr + tl.program_id(0), tl.sum(diff_sum) / pixels)
    tl.store(mean_lower_ptr + tl.program_id(0), tl.sum(lower_sum) / pixels)


@triton.jit
def _fuse_kernel(out_ptr, diff_ptr, first_ptr, lower_scale_ptr, lower_copy_ptr, pixels, COPY_LOWER: tl.constexpr,
                 BLOCK_P: tl.constexpr):
    """Z = s·Y2 + β1·D over Y2 (``out_ptr``) for one (image, channel) row × pixel block."""
    row = tl.program_id(0).to(tl.int64) * pixels
    offsets = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    mask = offsets < pixels
    lower = tl.load(out_ptr + row + offsets, mask=mask, other=0.0)
    if COPY_LOWER:
        tl.store(lower_copy_ptr + row + offsets, lower, mask=mask)
    diff = tl.load(diff_ptr + row + offsets, mask=mask, other=0.0).to(tl.float32)
    row_scale = tl.load(lower_scale_ptr + tl.program_id(0))
    fused = lower.to(tl.float32) * row_scale + diff * tl.load(first_ptr + tl.program_id(0))
    tl.store(out_ptr + row + offsets, fused.to(out_ptr.dtype.element_ty), mask=mask)


def triton_cru_fuse(upper: torch.Tensor, out: torch.Tensor, weights: torch.Tensor, lower_copy, fuse: str) -> None:
    """The CRU fuse in place: ``upper`` (Y1) becomes D = Y1 − Y2, ``out`` (Y2) becomes Z, ``weights``
    (B×C for ``'paper'``, B×2C for ``'joint'``, fp32) the fuse weights, and ``lower_copy`` (``'joint'``)
    a copy of Y2; all maps contiguous B×C×H'×W'."""
    check_triton_device('SCConv', upper, out)
    batch, channels = out.shape[:2]
    pixels = out[0, 0].numel()
    mean_diff = torch.empty((batch, channels), dtype=torch.float32, device=out.device)
    mean_lower = torch.empty_like(mean_diff)
    if out.numel():
        _difference_and_means_kernel[(batch * channels, )](upper, out, mean_diff, mean_lower, pixels, BLOCK_P)
    first, lower_scale = fuse_weights(mean_diff, mean_lower, fuse, weights)
    first = first.contiguous()
    lower_scale = torch.ones_like(mean_diff) if lower_scale is None else lower_scale
    if out.numel():
        _fuse_kernel[(batch * channels, triton.cdiv(pixels, BLOCK_P))](out, upper, first, lower_scale,
                                                                       lower_copy if fuse == 'joint' else out, pixels,
                                                                       fuse == 'joint', BLOCK_P)
