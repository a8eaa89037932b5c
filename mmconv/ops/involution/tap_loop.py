"""CPU kernels of the involution aggregation: a loop over the K² taps (any device and dtype).

Each tap is one broadcast multiply-add between a shifted slice of ``x`` and one kernel plane (see
:func:`plan_taps`), restricted to the reads inside the image, so no padded copy and no K²-sized
buffer is made, and backward needs only ``x`` and the kernel. On CPU the (batch, group) pairs are
walked in cache-sized chunks, in parallel (:func:`mmconv.ops.cpu_chunks.for_each_chunk`).
Half-precision inputs accumulate in fp32.

The three functions at the bottom are the registered ops' kernels (:mod:`.ops`): the aggregation
and its gradients with respect to ``x`` and to the kernel.
"""
from typing import List, NamedTuple, Optional, Tuple

import torch

from ..cpu_chunks import chunks_of, for_each_chunk
from ..precision import accumulation_dtype

__all__ = ['plan_taps', 'tap_loop_aggregate', 'tap_loop_grad_input', 'tap_loop_grad_kernel', 'tap_windows']


def tap_windows(kernel_size: int, stride: int, dilation: int, in_size: int,
                out_size: int) -> List[Optional[Tuple[slice, slice]]]:
    """Where each kernel offset along one axis lands inside the (unpadded) input.

    For offset index u the output position i reads input ``stride·i + dilation·u − padding``. Returns,
    per u, the output slice whose reads fall inside ``[0, in_size)`` and the matching (strided) input
    slice, or None when every read of that offset falls into the zero padding.
    """
    padding = dilation * (kernel_size - 1) // 2
    windows = []
    for u in range(kernel_size):
        offset = dilation * u - padding
        first = -(offset // stride) if offset < 0 else 0  # ceil(-offset / stride)
        stop = min(out_size, (in_size - 1 - offset) // stride + 1)
        if stop <= first:
            windows.append(None)
            continue
        start = stride * first + offset
        windows.append((slice(first, stop), slice(start, start + stride * (stop - first - 1) + 1, stride)))
    return windows


class TapPlan(NamedTuple):
    """How the tap loop walks the image.

    Attributes:
        in_shape: spatial view of ``x`` the slices index: (H·W,) for stride 1, (H, W) otherwise.
        out_shape: spatial view of the output and the kernel: (H·W,) or (H', W').
        taps: (tap index, output index, input index) of every tap that reads inside the image; the
            indices are tuples of slices over the spatial view. The centre tap comes first: it reads
            inside the image for every output.
        centre_reads_all: whether the centre tap also reads every input (stride 1).
        kernel_grid: (K, K, H', W'), to view a kernel's taps and pixels two-dimensionally.
        wrapped_columns: for stride 1, (v, output columns) whose flattened reads for the taps in
            kernel column v wrap around to a neighbouring row; empty otherwise.
    """
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]
    taps: List[Tuple[int, Tuple[slice, ...], Tuple[slice, ...]]]
    centre_reads_all: bool
    kernel_grid: Tuple[int, int, int, int]
    wrapped_columns: List[Tuple[int, slice]]


def plan_taps(kernel_size: int, stride: int, dilation: int, in_hw: Tuple[int, int], out_hw: Tuple[int, int]) -> TapPlan:
    """Slices of every tap, flattened for stride 1 and two-dimensional otherwise.

    With stride 1 a tap (u, v) shifts the flattened image by a constant ``a·W + b`` (a, b the row
    and column offsets), so it is one long contiguous slice instead of H short rows. Its reads at
    the ``wrapped_columns`` of column v land on a neighbouring row; the caller zeroes the kernel
    there, which leaves the result unchanged since those taps read zero padding anyway.
    """
    rows = tap_windows(kernel_size, stride, dilation, in_hw[0], out_hw[0])
    cols = tap_windows(kernel_size, stride, dilation, in_hw[1], out_hw[1])
    padding = dilation * (kernel_size - 1) // 2
    height, width = in_hw
    taps = []
    for u, row in enumerate(rows):
        for v, col in enumerate(cols):
            if row is None or col is None:
                continue
            if stride > 1:
                taps.append((u * kernel_size + v, (row[0], col[0]), (row[1], col[1])))
                continue
            shift = (dilation * u - padding) * width + dilation * v - padding
            start = max(row[0].start * width, -shift)
            stop = min(row[0].stop * width, height * width - shift)
            taps.append((u * kernel_size + v, (slice(start, stop), ), (slice(start + shift, stop + shift), )))
    taps.sort(key=lambda tap: tap[0] != kernel_size**2 // 2)  # stable: the centre first
    grid = (kernel_size, kernel_size, *out_hw)
    if stride > 1:
        return TapPlan(in_hw, out_hw, taps, False, grid, [])
    wrapped = []
    for v, col in enumerate(cols):
        if col is not None:
            wrapped += [(v, columns) for columns in (slice(0, col[0].start), slice(col[0].stop, width))
                        if columns.stop > columns.start]
    return TapPlan((height * width, ), (height * width, ), taps, True, grid, wrapped)


def wrapped_column_mask(plan: TapPlan, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """1×1×K×1×W' factor over a unit view n×K×K×H'×W' of a kernel: 0 where a tap's flattened read
    wraps around to a neighbouring row (see :func:`plan_taps`), 1 elsewhere."""
    mask = torch.ones(1, 1, plan.kernel_grid[1], 1, plan.kernel_grid[3], dtype=dtype, device=device)
    for v, columns in plan.wrapped_columns:
        mask[:, :, v, :, columns] = 0
    return mask


def kernel_for_taps(kernel: torch.Tensor, plan: TapPlan, mask: Optional[torch.Tensor],
                    dtype: torch.dtype) -> torch.Tensor:
    """A chunk (n×K²×spatial) of the kernel in ``dtype``, zero where its flattened reads wrap.

    The zeroed entries multiply padding in the aggregation, so the result is unchanged; the copy is
    made per cache-sized chunk, since the op may not write into its input.
    """
    if mask is None:
        return kernel.to(dtype)
    masked = torch.empty(kernel.shape, dtype=dtype, device=kernel.device)
    torch.mul(
        kernel.view(kernel.shape[0], *plan.kernel_grid), mask, out=masked.view(kernel.shape[0], *plan.kernel_grid))
    return masked


def zero_wrapped_columns(grad_kernel: torch.Tensor, plan: TapPlan) -> torch.Tensor:
    """Zero, in place, the entries of an n×K²×spatial gradient whose flattened reads wrap."""
    grid = grad_kernel.view(grad_kernel.shape[0], *plan.kernel_grid)
    for v, columns in plan.wrapped_columns:
        grid[:, :, v, :, columns] = 0
    return grad_kernel


def _kernel_planes(kernel: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Per tap, the N×1×spatial plane of an N×K²×spatial kernel, broadcastable over a group's channels.

    Made once per chunk: indexing these is half the Python cost of indexing the kernel per tap.
    """
    return kernel.unsqueeze(2).unbind(1)


def _assign_product(dest: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``dest = a · b`` with the product formed in ``dest``'s precision."""
    if dest.dtype == a.dtype == b.dtype:
        torch.mul(a, b, out=dest)
    else:
        dest.copy_(a).mul_(b)


def gather_taps(out: torch.Tensor, x: torch.Tensor, kernel: torch.Tensor, plan: TapPlan) -> None:
    """Forward: ``out[o] = Σ_taps x[tap input] · kernel[tap][o]`` (views N×gc×spatial).

    ``out`` need not be initialised: the centre tap, first in the plan, writes every output. The
    other taps go to one ``_foreach_addcmul_`` call, which runs them in order in C++ without holding
    the GIL, so the workers of :func:`for_each_chunk` do not wait for each other's Python.
    """
    planes = _kernel_planes(kernel)
    (centre, out_index, in_index), *others = plan.taps
    _assign_product(out, x[(..., *in_index)], planes[centre][(..., *out_index)])
    if others:  # on an image smaller than the kernel, the centre may be the only tap inside
        torch._foreach_addcmul_([out[(..., *o)] for _, o, _ in others], [x[(..., *i)] for _, _, i in others],
                                [planes[tap][(..., *o)] for tap, o, _ in others])


def scatter_taps(grad_x: torch.Tensor, grad_out: torch.Tensor, kernel: torch.Tensor, plan: TapPlan) -> None:
    """grad_x: ``grad_x[tap input] += grad_out[o] · kernel[tap][o]`` for every tap.

    ``grad_x`` need not be initialised when ``plan.centre_reads_all``; it must be zero otherwise.
    """
    taps, planes = plan.taps, _kernel_planes(kernel)
    if plan.centre_reads_all:
        (centre, out_index, in_index), *taps = taps
        _assign_product(grad_x[(..., *in_index)], grad_out[(..., *out_index)], planes[centre][(..., *out_index)])
    if taps:
        torch._foreach_addcmul_([grad_x[(..., *i)] for _, _, i in taps], [grad_out[(..., *o)] for _, o, _ in taps],
                                [planes[tap][(..., *o)] for tap, o, _ in taps])


def zero_outside_taps(grad_kernel: torch.Tensor, plan: TapPlan) -> torch.Tensor:
    """Zero, in place, the entries of an N×K²×spatial gradient that no tap of ``plan`` writes.

    Those are the outputs whose read falls into the padding, a few border rows and columns per
    tap (whole planes for taps that read only padding): far less than zero-filling the tensor.
    """
    planes = grad_kernel.unbind(1)
    windows = {tap: out_index for tap, out_index, _ in plan.taps}
    outside = []
    for tap, plane in enumerate(planes):
        if tap not in windows:
            outside.append(plane)
            continue
        for dim, window in enumerate(windows[tap], start=1):
            lead = (slice(None), ) * dim
            outside += [plane[(*lead, slice(0, window.start))], plane[(*lead, slice(window.stop, None))]]
    if outside:
        torch._foreach_zero_(outside)
    return grad_kernel


def correlate_taps(grad_kernel: torch.Tensor, grad_out: torch.Tensor, x: torch.Tensor, plan: TapPlan) -> None:
    """grad_kernel: ``grad_kernel[tap][o] = Σ_c grad_out[c, o] · x[c, tap input]`` for every tap.

    One product buffer is reused by every tap, so the channel sums make no fresh temporaries.
    """
    products, planes = torch.empty_like(grad_out), grad_kernel.unbind(1)
    for tap, out_index, in_index in plan.taps:
        window = products[(..., *(slice(0, index.stop - index.start) for index in out_index))]
        torch.mul(grad_out[(..., *out_index)], x[(..., *in_index)], out=window)
        torch.sum(window, dim=1, out=planes[tap][(..., *out_index)])


def _units(tensor: torch.Tensor, units: int, shape: Tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` as units × ``shape`` in ``dtype`` (a view when it already is)."""
    return tensor.to(dtype).reshape(units, *shape)


def tap_loop_aggregate(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int,
                       dilation: int) -> torch.Tensor:
    """Forward: B×C×H×W and B×G×K²×H'×W' → B×C×H'×W' in the promoted dtype."""
    batch, channels, height, width = x.shape
    _, groups, taps, out_h, out_w = kernel.shape
    out_dtype = torch.promote_types(x.dtype, kernel.dtype)
    plan = plan_taps(kernel_size, stride, dilation, (height, width), (out_h, out_w))
    mask = wrapped_column_mask(plan, kernel.dtype, x.device) if plan.wrapped_columns else None
    units, group_channels = batch * groups, channels // groups
    x_units = _units(x, units, (group_channels, *plan.in_shape), x.dtype)
    kernel_units = _units(kernel, units, (taps, *plan.out_shape), kernel.dtype)
    out = x.new_empty((batch, channels, out_h, out_w), dtype=accumulation_dtype(out_dtype))
    out_units = out.view(units, group_channels, *plan.out_shape)
    for_each_chunk(
        lambda chunk: gather_taps(out_units[chunk], x_units[chunk],
                                  kernel_for_taps(kernel_units[chunk], plan, mask, kernel.dtype), plan),
        chunks_of(units, 2 * x_units[0].nbytes if units else 0, x.device), x.device)
    return out.to(out_dtype)


def tap_loop_grad_input(grad_out: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int, dilation: int,
                        height: int, width: int) -> torch.Tensor:
    """∂x: B×C×H'×W' and B×G×K²×H'×W' → B×C×H×W in the promoted dtype."""
    batch, channels, out_h, out_w = grad_out.shape
    _, groups, taps, _, _ = kernel.shape
    dtype = torch.promote_types(grad_out.dtype, kernel.dtype)
    acc_dtype = accumulation_dtype(dtype)
    plan = plan_taps(kernel_size, stride, dilation, (height, width), (out_h, out_w))
    mask = wrapped_column_mask(plan, acc_dtype, grad_out.device) if plan.wrapped_columns else None
    units, group_channels = batch * groups, channels // groups
    grad_units = _units(grad_out, units, (group_channels, *plan.out_shape), acc_dtype)
    kernel_units = _units(kernel, units, (taps, *plan.out_shape), kernel.dtype)
    make = torch.empty if plan.centre_reads_all else torch.zeros
    grad_x = make((units, group_channels, *plan.in_shape), dtype=acc_dtype, device=grad_out.device)
    for_each_chunk(
        lambda chunk: scatter_taps(grad_x[chunk], grad_units[chunk],
                                   kernel_for_taps(kernel_units[chunk], plan, mask, acc_dtype), plan),
        chunks_of(units, 2 * grad_x[0].nbytes if units else 0, grad_out.device), grad_out.device)
    return grad_x.view(batch, channels, height, width).to(dtype)


def tap_loop_grad_kernel(grad_out: torch.Tensor, x: torch.Tensor, kernel_size: int, stride: int, dilation: int,
                         groups: int) -> torch.Tensor:
    """∂kernel: B×C×H'×W' and B×C×H×W → B×G×K²×H'×W' in the promoted dtype."""
    batch, channels, out_h, out_w = grad_out.shape
    height, width = x.shape[2:]
    dtype = torch.promote_types(grad_out.dtype, x.dtype)
    acc_dtype = accumulation_dtype(dtype)
    plan = plan_taps(kernel_size, stride, dilation, (height, width), (out_h, out_w))
    units, group_channels, taps = batch * groups, channels // groups, kernel_size**2
    # Upcast once so every product below is formed in the accumulation precision.
    x_units = _units(x, units, (group_channels, *plan.in_shape), acc_dtype)
    grad_units = _units(grad_out, units, (group_channels, *plan.out_shape), acc_dtype)
    grad_kernel = zero_outside_taps(torch.empty((units, taps, *plan.out_shape), dtype=acc_dtype, device=x.device), plan)
    for_each_chunk(lambda chunk: correlate_taps(grad_kernel[chunk], grad_units[chunk], x_units[chunk], plan),
                   chunks_of(units, x_units[0].nbytes + grad_units[0].nbytes if units else 0, x.device), x.device)
    zero_wrapped_columns(grad_kernel, plan)  # the flattened slices also multiplied those reads
    return grad_kernel.view(batch, groups, taps, out_h, out_w).to(dtype)
