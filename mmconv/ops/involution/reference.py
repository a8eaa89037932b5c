"""The involution aggregation as the paper and the official code write it (unfold): the spec."""
import torch
import torch.nn.functional as F

__all__ = ['aggregate_reference', 'aggregation_output_size']


def aggregation_output_size(size: int, kernel_size: int, stride: int, dilation: int) -> int:
    """Output length of the zero-padded aggregation along one axis: ceil(size / stride) for odd K."""
    padding = dilation * (kernel_size - 1) // 2
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def aggregate_reference(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int,
                        dilation: int) -> torch.Tensor:
    """Unfold every K×K neighbourhood, weight it by the kernel and sum (the official naive path).

    Autograd keeps the unfolded K²-times-the-input tensor for backward.
    """
    batch, channels = x.shape[:2]
    _, groups, taps, out_h, out_w = kernel.shape
    columns = F.unfold(x, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2, stride=stride)
    columns = columns.view(batch, groups, channels // groups, taps, out_h, out_w)
    return (kernel.unsqueeze(2) * columns).sum(dim=3).view(batch, channels, out_h, out_w)
