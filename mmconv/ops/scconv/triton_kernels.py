"""SCConv's SRU on CUDA: gate and reconstruction as one Triton pass over X.

The torch kernels of :mod:`.kernels` form the SRU output Y in about ten elementwise passes (GroupNorm,
sigmoid, the mask, the products, the cross-sum of the halves). Here the GroupNorm statistics come
from one reduction (``torch.var_mean``), and one kernel reads each pair of channels (c, c + C/2) once
and writes both channels of Y, in the squeeze convs' dtype, which cuBLAS then applies. The math is
:func:`~.kernels._sru_gate` and :func:`~.kernels._sru_output` in fp32:

    R = sigmoid(W_γ·γ·(X − μ)·σ⁻¹ + W_γ·β),  M = [R > t] (soft) or [R ≥ t] (hard),
    soft: U = R·(1 − M)·X, Y_c = M_c·X_c + U_c + U_c',   hard: Y_c = M_c·X_c + (1 − M_c')·X_c',

with c' the channel C/2 away. This module imports triton; :mod:`.kernels` imports it only for CUDA
tensors. Under ``TRITON_INTERPRET=1`` the kernel runs on CPU tensors (the tests).
"""
import torch
import triton
import triton.language as tl

from ..triton_support import check_triton_device

__all__ = ['BLOCK_P', 'triton_sru_output']

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
    gate_top = tl.sigmoid((x_top - tl.load(mean_ptr + stats_top)) * tl.load(rstd_ptr + stats_top)
                          * tl.load(scale_ptr + top) + tl.load(shift_ptr + top))
    gate_bottom = tl.sigmoid((x_bottom - tl.load(mean_ptr + stats_bottom)) * tl.load(rstd_ptr + stats_bottom)
                             * tl.load(scale_ptr + bottom) + tl.load(shift_ptr + bottom))
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
        _sru_output_kernel[grid](x, mean, rstd, scale.float().contiguous(), shift.float().contiguous(), out,
                                 channels, pixels, channels // groups, groups, threshold, gate == 'soft', BLOCK_P)
    return out
