"""Triton kernels for the involution aggregation (forward, grad_x, grad_kernel).

Li et al., "Involution: Inverting the Inherence of Convolution for Visual Recognition", CVPR 2021.
https://arxiv.org/abs/2103.06255

Layouts (all contiguous): ``x`` B×C×H×W, ``kernel`` B×G×K²×H'×W' with channel c in group
c // group_channels (the official, checkpoint-compatible grouping) and tap index u·K + v.

Each program owns one (batch, group) pair and a block of flattened pixels, for all the group's
channels at once, so every kernel value loaded is reused by the ``group_channels`` channels it
weights. Products are accumulated in fp32 whatever the input dtype (fp16, bf16, fp32, fp64 — fp64
accumulates in fp64), and stored in the dtype of the tensor they stand for. Offsets of the
(batch, group) planes are int64 so tensors beyond 2³¹ elements index correctly; offsets inside a
plane stay int32.

This module imports triton; :mod:`.ops` imports it only when a CUDA tensor reaches the registered ops.
Setting ``TRITON_INTERPRET=1`` before this module is imported runs the kernels on CPU tensors with
Triton's interpreter (used by the tests).
"""
import torch
import triton
import triton.language as tl

from ..triton_support import check_triton_device, triton_accumulator

__all__ = ['triton_aggregate', 'triton_grad_input', 'triton_grad_kernel']


@triton.jit
def _involution_fwd_kernel(x_ptr, kernel_ptr, out_ptr, height, width, out_h, out_w, GROUP_CHANNELS: tl.constexpr,
                           KERNEL_SIZE: tl.constexpr, STRIDE: tl.constexpr, DILATION: tl.constexpr,
                           ACC_DTYPE: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """out[b, c, p] = Σ_t kernel[b, g, t, p] · x[b, c, tap t of p] for one (b, g) and a pixel block."""
    pid_bg = tl.program_id(0).to(tl.int64)  # b·G + g, so that the group's first channel is pid_bg·GC
    pid_p = tl.program_id(1)
    padding: tl.constexpr = DILATION * (KERNEL_SIZE - 1) // 2
    taps: tl.constexpr = KERNEL_SIZE * KERNEL_SIZE
    channels = tl.arange(0, BLOCK_C)
    channel_mask = channels < GROUP_CHANNELS
    pixels = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    pixel_mask = pixels < out_h * out_w
    row = pixels // out_w
    col = pixels % out_w

    x_base = x_ptr + pid_bg * GROUP_CHANNELS * height * width
    kernel_base = kernel_ptr + pid_bg * taps * out_h * out_w
    channel_offsets = channels[:, None] * (height * width)
    acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=ACC_DTYPE)
    for tap in range(taps):
        in_row = row * STRIDE - padding + (tap // KERNEL_SIZE) * DILATION
        in_col = col * STRIDE - padding + (tap % KERNEL_SIZE) * DILATION
        inside = pixel_mask & (in_row >= 0) & (in_row < height) & (in_col >= 0) & (in_col < width)
        weight = tl.load(kernel_base + tap * out_h * out_w + pixels, mask=pixel_mask, other=0.0)
        values = tl.load(x_base + channel_offsets + (in_row * width + in_col)[None, :],
                         mask=channel_mask[:, None] & inside[None, :], other=0.0)
        acc += values.to(ACC_DTYPE) * weight.to(ACC_DTYPE)[None, :]
    out_offsets = (pid_bg * GROUP_CHANNELS * out_h * out_w + channels[:, None] * (out_h * out_w) + pixels[None, :])
    tl.store(out_ptr + out_offsets, acc.to(out_ptr.dtype.element_ty), mask=channel_mask[:, None] & pixel_mask[None, :])


@triton.jit
def _involution_grad_x_kernel(grad_out_ptr, kernel_ptr, grad_x_ptr, height, width, out_h, out_w,
                              GROUP_CHANNELS: tl.constexpr, KERNEL_SIZE: tl.constexpr, STRIDE: tl.constexpr,
                              DILATION: tl.constexpr, ACC_DTYPE: tl.constexpr, BLOCK_C: tl.constexpr,
                              BLOCK_P: tl.constexpr):
    """grad_x[b, c, q] = Σ_(t, p): tap t of p reads q of kernel[b, g, t, p] · grad_out[b, c, p].

    A gather over input pixels (no atomics): for tap (u, v) the input pixel (h, w) was read by the
    output pixel ((h + pad − d·u) / s, (w + pad − d·v) / s) when both divisions are exact and land
    inside the output.
    """
    pid_bg = tl.program_id(0).to(tl.int64)
    pid_p = tl.program_id(1)
    padding: tl.constexpr = DILATION * (KERNEL_SIZE - 1) // 2
    taps: tl.constexpr = KERNEL_SIZE * KERNEL_SIZE
    channels = tl.arange(0, BLOCK_C)
    channel_mask = channels < GROUP_CHANNELS
    pixels = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    pixel_mask = pixels < height * width
    row = pixels // width
    col = pixels % width

    grad_out_base = grad_out_ptr + pid_bg * GROUP_CHANNELS * out_h * out_w
    kernel_base = kernel_ptr + pid_bg * taps * out_h * out_w
    channel_offsets = channels[:, None] * (out_h * out_w)
    acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=ACC_DTYPE)
    for tap in range(taps):
        row_num = row + padding - (tap // KERNEL_SIZE) * DILATION
        col_num = col + padding - (tap % KERNEL_SIZE) * DILATION
        # Clamp before dividing: negative numerators are masked out anyway, and a non-negative
        # numerator keeps // and % free of C-style rounding towards zero.
        row_num_pos = tl.maximum(row_num, 0)
        col_num_pos = tl.maximum(col_num, 0)
        out_row = row_num_pos // STRIDE
        out_col = col_num_pos // STRIDE
        reached = (
            pixel_mask & (row_num >= 0) & (col_num >= 0) & (row_num_pos % STRIDE == 0)
            & (col_num_pos % STRIDE == 0) & (out_row < out_h) & (out_col < out_w))
        out_pixel = out_row * out_w + out_col
        weight = tl.load(kernel_base + tap * out_h * out_w + out_pixel, mask=reached, other=0.0)
        grads = tl.load(grad_out_base + channel_offsets + out_pixel[None, :],
                        mask=channel_mask[:, None] & reached[None, :], other=0.0)
        acc += grads.to(ACC_DTYPE) * weight.to(ACC_DTYPE)[None, :]
    grad_x_offsets = (pid_bg * GROUP_CHANNELS * height * width + channels[:, None] * (height * width) + pixels[None, :])
    tl.store(grad_x_ptr + grad_x_offsets, acc.to(grad_x_ptr.dtype.element_ty),
             mask=channel_mask[:, None] & pixel_mask[None, :])


@triton.jit
def _involution_grad_kernel_kernel(grad_out_ptr, x_ptr, grad_kernel_ptr, height, width, out_h, out_w,
                                   GROUP_CHANNELS: tl.constexpr, KERNEL_SIZE: tl.constexpr, STRIDE: tl.constexpr,
                                   DILATION: tl.constexpr, ACC_DTYPE: tl.constexpr, BLOCK_C: tl.constexpr,
                                   BLOCK_P: tl.constexpr):
    """grad_kernel[b, g, t, p] = Σ_{c in g} grad_out[b, c, p] · x[b, c, tap t of p].

    The grad_out block is loaded once and reused by all K² taps; the channel sum stays in registers.
    Taps reading the zero padding get 0.
    """
    pid_bg = tl.program_id(0).to(tl.int64)
    pid_p = tl.program_id(1)
    padding: tl.constexpr = DILATION * (KERNEL_SIZE - 1) // 2
    taps: tl.constexpr = KERNEL_SIZE * KERNEL_SIZE
    channels = tl.arange(0, BLOCK_C)
    channel_mask = channels < GROUP_CHANNELS
    pixels = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    pixel_mask = pixels < out_h * out_w
    row = pixels // out_w
    col = pixels % out_w

    grad_out_offsets = (pid_bg * GROUP_CHANNELS * out_h * out_w + channels[:, None] * (out_h * out_w) + pixels[None, :])
    grads = tl.load(grad_out_ptr + grad_out_offsets, mask=channel_mask[:, None] & pixel_mask[None, :],
                    other=0.0).to(ACC_DTYPE)
    x_base = x_ptr + pid_bg * GROUP_CHANNELS * height * width
    grad_kernel_base = grad_kernel_ptr + pid_bg * taps * out_h * out_w
    channel_offsets = channels[:, None] * (height * width)
    for tap in range(taps):
        in_row = row * STRIDE - padding + (tap // KERNEL_SIZE) * DILATION
        in_col = col * STRIDE - padding + (tap % KERNEL_SIZE) * DILATION
        inside = pixel_mask & (in_row >= 0) & (in_row < height) & (in_col >= 0) & (in_col < width)
        values = tl.load(x_base + channel_offsets + (in_row * width + in_col)[None, :],
                         mask=channel_mask[:, None] & inside[None, :], other=0.0)
        grad = tl.sum(grads * values.to(ACC_DTYPE), axis=0)
        tl.store(grad_kernel_base + tap * out_h * out_w + pixels, grad.to(grad_kernel_ptr.dtype.element_ty),
                 mask=pixel_mask)


def _launch_config(group_channels: int, pixels: int):
    """Channel block (all the group's channels, padded to a power of two) and pixel block.

    The pixel block keeps the accumulator tile at ≤ 2048 elements (16 fp32 registers per thread
    with 4 warps) and is a power of two between 16 and 128.
    """
    block_c = triton.next_power_of_2(group_channels)
    block_p = max(16, min(128, 2048 // block_c, triton.next_power_of_2(pixels)))
    return block_c, block_p


def triton_aggregate(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int,
                     dilation: int) -> torch.Tensor:
    """Aggregation forward: B×C×H×W and B×G×K²×H'×W' → B×C×H'×W' (promoted dtype)."""
    check_triton_device('involution', x, kernel)
    x, kernel = x.contiguous(), kernel.contiguous()
    batch, channels, height, width = x.shape
    _, groups, _, out_h, out_w = kernel.shape
    out_dtype = torch.promote_types(x.dtype, kernel.dtype)
    out = torch.empty((batch, channels, out_h, out_w), dtype=out_dtype, device=x.device)
    if out.numel() == 0:
        return out
    group_channels = channels // groups
    block_c, block_p = _launch_config(group_channels, out_h * out_w)
    grid = (batch * groups, triton.cdiv(out_h * out_w, block_p))
    _involution_fwd_kernel[grid](x, kernel, out, height, width, out_h, out_w, group_channels, kernel_size, stride,
                                 dilation, triton_accumulator(out_dtype), block_c, block_p)
    return out


def triton_grad_input(grad_out: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int, dilation: int,
                      height: int, width: int) -> torch.Tensor:
    """∂x (B×C×H×W, promoted dtype of ``grad_out`` and ``kernel``)."""
    check_triton_device('involution', grad_out, kernel)
    grad_out, kernel = grad_out.contiguous(), kernel.contiguous()
    batch, channels, out_h, out_w = grad_out.shape
    groups = kernel.shape[1]
    dtype = torch.promote_types(grad_out.dtype, kernel.dtype)
    grad_x = torch.empty((batch, channels, height, width), dtype=dtype, device=grad_out.device)
    if grad_x.numel() == 0:
        return grad_x
    group_channels = channels // groups
    block_c, block_p = _launch_config(group_channels, height * width)
    grid = (batch * groups, triton.cdiv(height * width, block_p))
    _involution_grad_x_kernel[grid](grad_out, kernel, grad_x, height, width, out_h, out_w, group_channels, kernel_size,
                                    stride, dilation, triton_accumulator(dtype), block_c, block_p)
    return grad_x


def triton_grad_kernel(grad_out: torch.Tensor, x: torch.Tensor, kernel_size: int, stride: int, dilation: int,
                       groups: int) -> torch.Tensor:
    """∂kernel (B×G×K²×H'×W', promoted dtype of ``grad_out`` and ``x``)."""
    check_triton_device('involution', grad_out, x)
    grad_out, x = grad_out.contiguous(), x.contiguous()
    batch, channels, height, width = x.shape
    out_h, out_w = grad_out.shape[2:]
    dtype = torch.promote_types(grad_out.dtype, x.dtype)
    grad_kernel = torch.empty((batch, groups, kernel_size**2, out_h, out_w), dtype=dtype, device=x.device)
    if grad_kernel.numel() == 0:
        return grad_kernel
    group_channels = channels // groups
    block_c, block_p = _launch_config(group_channels, out_h * out_w)
    grid = (batch * groups, triton.cdiv(out_h * out_w, block_p))
    _involution_grad_kernel_kernel[grid](grad_out, x, grad_kernel, height, width, out_h, out_w, group_channels,
                                         kernel_size, stride, dilation, triton_accumulator(dtype), block_c, block_p)
    return grad_kernel
