"""SCC's forward on CUDA as one Triton kernel: every nested level in a single pass over the taps.

Level i's kernel is the centred (2i+1)×(2i+1) part of the K×K weight, so its response (before its
bias) is level i−1's plus the taps of ring i (the taps at Chebyshev distance i from the centre).
The kernel walks the rings outwards, accumulating one implicit-GEMM tile (output channels × output
pixels, ``tl.dot`` over input-channel blocks, fp32 accumulation), and after each ring adds that
level's bias, keeps the running maximum (strict ``>``: the first maximal level wins, as in
:func:`~.kernels._first_argmax`), the chosen level and the chosen level's affine r·(1+tanh α)+β.
Forced levels (training) replace the choice where the int8 map is ≥ 0. Each x tap is read once for
all levels, where the level loop of stock convolutions reads the centre taps L times.

Layouts: contiguous NCHW ``x`` (fp16, bf16 or fp32), the weight tap-major (K·K×C_out×C_in/g) in the
same dtype, bias L×C_out, and fp32 gain and offset L×C_out. Each ring is one runtime loop over its
(tap, input-channel block) steps, so the code stays small and pipelines for any K. fp32 data multiply in TF32 when
``torch.backends.cudnn.allow_tf32`` allows it, as ``F.conv2d`` would; else in full fp32.

This module imports triton; :mod:`.ops` imports it only when a CUDA tensor reaches the op. Under
``TRITON_INTERPRET=1`` the kernel runs on CPU tensors (the tests).
"""
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from ..triton_support import check_triton_device, full_register_file
from .kernels import layout_of
from .reference import level_gain, output_size

__all__ = ['NUM_WARPS', 'launch_config', 'triton_scc_forward']

# Three fp32 tiles live across the ring loop (sum, best, chosen) besides the dot operands: 8 warps
# keep them in registers at the largest tile (64×64: 16 registers per thread each).
NUM_WARPS = 8


@triton.jit
def _ring_sum(acc, x_base, weight_taps, co, co_mask, row, col, pixel_mask, out_channels, height, width,
              LEVEL: tl.constexpr, IN_PER_GROUP: tl.constexpr, KERNEL_SIZE: tl.constexpr, DILATION: tl.constexpr,
              INPUT_PRECISION: tl.constexpr, BLOCK_CI: tl.constexpr):
    """``acc`` plus the taps of ring ``LEVEL``, one runtime loop over (tap, input-channel block).

    Ring L > 0 has 8L taps, walked side by side (top row left to right, right column down, bottom
    row right to left, left column up), 2L taps a side; ring 0 is the centre tap.
    """
    span: tl.constexpr = 2 * LEVEL if LEVEL > 0 else 1
    taps: tl.constexpr = 8 * LEVEL if LEVEL > 0 else 1
    ci_blocks: tl.constexpr = (IN_PER_GROUP + BLOCK_CI - 1) // BLOCK_CI
    centre: tl.constexpr = KERNEL_SIZE // 2
    for step in range(taps * ci_blocks):
        tap = step // ci_blocks
        side = tap // span
        along = tap % span
        du = tl.where(side == 0, -LEVEL, tl.where(side == 1, along - LEVEL, tl.where(side == 2, LEVEL, LEVEL - along)))
        dv = tl.where(side == 0, along - LEVEL, tl.where(side == 1, LEVEL, tl.where(side == 2, LEVEL - along, -LEVEL)))
        in_row = row + du * DILATION
        in_col = col + dv * DILATION
        inside = pixel_mask & (in_row >= 0) & (in_row < height) & (in_col >= 0) & (in_col < width)
        ci = (step % ci_blocks) * BLOCK_CI + tl.arange(0, BLOCK_CI)
        ci_mask = ci < IN_PER_GROUP
        tap_index = (du + centre) * KERNEL_SIZE + dv + centre
        tap_weights = weight_taps + tap_index.to(tl.int64) * out_channels * IN_PER_GROUP
        w = tl.load(tap_weights + co[:, None] * IN_PER_GROUP + ci[None, :], mask=co_mask[:, None] & ci_mask[None, :],
                    other=0.0)
        values = tl.load(x_base + ci.to(tl.int64)[:, None] * (height * width) + (in_row * width + in_col)[None, :],
                         mask=ci_mask[:, None] & inside[None, :], other=0.0)
        acc = tl.dot(w, values, acc, input_precision=INPUT_PRECISION)
    return acc


@triton.jit
def _scc_forward_kernel(x_ptr, weight_ptr, bias_ptr, gain_ptr, offset_ptr, forced_ptr, out_ptr, choice_ptr, in_channels,
                        out_channels, height, width, out_h, out_w, IN_PER_GROUP: tl.constexpr,
                        OUT_PER_GROUP: tl.constexpr, KERNEL_SIZE: tl.constexpr, STRIDE: tl.constexpr,
                        DILATION: tl.constexpr, HAS_FORCED: tl.constexpr, INPUT_PRECISION: tl.constexpr,
                        BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_P: tl.constexpr):
    """One (batch, group, output-channel block) × pixel block: all levels, the choice and the output."""
    levels: tl.constexpr = KERNEL_SIZE // 2 + 1
    co_blocks = tl.cdiv(OUT_PER_GROUP, BLOCK_CO)
    pid = tl.program_id(0)
    batch = pid // (co_blocks * (out_channels // OUT_PER_GROUP))
    group = (pid // co_blocks) % (out_channels // OUT_PER_GROUP)
    co_in_group = (pid % co_blocks) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    co_mask = co_in_group < OUT_PER_GROUP
    co = group * OUT_PER_GROUP + co_in_group
    pixels = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    pixel_mask = pixels < out_h * out_w
    row = (pixels // out_w) * STRIDE
    col = (pixels % out_w) * STRIDE

    x_base = x_ptr + (batch.to(tl.int64) * in_channels + group * IN_PER_GROUP) * height * width
    acc = tl.zeros((BLOCK_CO, BLOCK_P), dtype=tl.float32)
    best = tl.zeros((BLOCK_CO, BLOCK_P), dtype=tl.float32)
    chosen = tl.zeros((BLOCK_CO, BLOCK_P), dtype=tl.float32)
    choice = tl.zeros((BLOCK_CO, BLOCK_P), dtype=tl.int8)
    plane = (batch.to(tl.int64) * out_channels + co[:, None]) * (out_h * out_w) + pixels[None, :]
    tile_mask = co_mask[:, None] & pixel_mask[None, :]
    if HAS_FORCED:
        forced = tl.load(forced_ptr + plane, mask=tile_mask, other=-1)
    for level in tl.static_range(levels):
        acc = _ring_sum(acc, x_base, weight_ptr, co, co_mask, row, col, pixel_mask, out_channels, height, width, level,
                        IN_PER_GROUP, KERNEL_SIZE, DILATION, INPUT_PRECISION, BLOCK_CI)
        level_params = level * out_channels + co
        bias = tl.load(bias_ptr + level_params, mask=co_mask, other=0.0).to(tl.float32)
        gain = tl.load(gain_ptr + level_params, mask=co_mask, other=0.0)
        offset = tl.load(offset_ptr + level_params, mask=co_mask, other=0.0)
        response = acc + bias[:, None]
        affine = response * gain[:, None] + offset[:, None]
        if level == 0:
            best = response
            chosen = affine
        else:
            take = response > best
            best = tl.where(take, response, best)
            choice = tl.where(take, tl.full((BLOCK_CO, BLOCK_P), level, tl.int8), choice)
            if HAS_FORCED:  # the output follows the forced level where there is one
                take = tl.where(forced >= 0, forced == level, take)
            chosen = tl.where(take, affine, chosen)
    if HAS_FORCED:
        choice = tl.where(forced >= 0, forced, choice)
    tl.store(out_ptr + plane, chosen.to(out_ptr.dtype.element_ty), mask=tile_mask)
    tl.store(choice_ptr + plane, choice, mask=tile_mask)


def launch_config(in_per_group: int, out_per_group: int, pixels: int) -> Tuple[int, int, int]:
    """(BLOCK_CO, BLOCK_CI, BLOCK_P): powers of two ≥ 16 (``tl.dot``'s least), the channel blocks no
    wider than the group needs, up to 64 output channels × 64 pixels (the three fp32 tiles of
    :data:`NUM_WARPS`) and 32 input channels per ``tl.dot``."""
    block_co = max(16, min(64, triton.next_power_of_2(out_per_group)))
    block_ci = max(16, min(32, triton.next_power_of_2(in_per_group)))
    block_p = max(16, min(64, triton.next_power_of_2(pixels)))
    return block_co, block_ci, block_p


def triton_scc_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, alpha: torch.Tensor,
                       beta: torch.Tensor, stride: int, dilation: int, groups: int,
                       forced: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """SCC's output (dtype of x, α and β promoted) and int8 choice, laid out like ``x``.

    Args:
        x: B×C_in×H×W (fp16, bf16 or fp32); ``weight`` and ``bias`` of its dtype.
        weight, bias, alpha, beta: the SCC parameters (shapes as in :class:`~.module.SCC`).
        stride, dilation, groups: as in :class:`~.module.SCC`.
        forced: int8 map of the output's shape (−1 = natural choice), or None.
    """
    check_triton_device('SCC', x, weight)
    layout = layout_of(x)
    batch, in_channels, height, width = x.shape
    out_channels, kernel_size = weight.shape[0], weight.shape[-1]
    # Tap-major weight (K·K × C_out × C_in/g): each tap's block of the GEMM is one contiguous read.
    x, weight_taps, bias = x.contiguous(), weight.permute(2, 3, 0, 1).contiguous(), bias.contiguous()
    out_h, out_w = output_size(height, stride), output_size(width, stride)
    dtype = torch.promote_types(torch.promote_types(x.dtype, alpha.dtype), beta.dtype)
    out = torch.empty((batch, out_channels, out_h, out_w), dtype=dtype, device=x.device)
    choice = torch.empty((batch, out_channels, out_h, out_w), dtype=torch.int8, device=x.device)
    if out.numel() and in_channels:
        gain = level_gain(alpha.float()).reshape(-1, out_channels).contiguous()
        offset = beta.float().reshape(-1, out_channels).contiguous()
        in_per_group, out_per_group = in_channels // groups, out_channels // groups
        block_co, block_ci, block_p = launch_config(in_per_group, out_per_group, out_h * out_w)
        grid = (batch * groups * triton.cdiv(out_per_group, block_co), triton.cdiv(out_h * out_w, block_p))
        precision = 'tf32' if x.dtype == torch.float32 and torch.backends.cudnn.allow_tf32 else 'ieee'
        _scc_forward_kernel[grid](x, weight_taps, bias, gain, offset,
                                  forced.contiguous() if forced is not None else choice, out, choice, in_channels,
                                  out_channels, height, width, out_h, out_w, in_per_group, out_per_group, kernel_size,
                                  stride, dilation, forced is not None, precision, block_co, block_ci, block_p,
                                  num_warps=NUM_WARPS, **full_register_file())
    return out.contiguous(memory_format=layout), choice.contiguous(memory_format=layout)
