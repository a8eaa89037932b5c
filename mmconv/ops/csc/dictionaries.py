"""The dictionaries of the CSC layers: synthesis ``A`` and analysis ``Aᵀ``, and the power iteration on AᵀA.

A dictionary's geometry travels to the registered ops as plain arguments, ``(ndim, stride, padding,
dilation, groups)`` with ``ndim`` 1 or 2 for a convolutional dictionary and 0 for a matrix one (its
lists empty); the functions :func:`encode`, :func:`decode` and their gradients rebuild the
convolution calls from them. The classes hold the geometry for the layers and the reference.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'ConvDictionary', 'LinearDictionary', 'power_iteration', 'encode', 'decode', 'encode_backward', 'decode_backward',
    'transpose_output_padding'
]

# (ndim, stride, padding, dilation, groups): the op arguments of a dictionary.
Geometry = Tuple[int, List[int], List[int], List[int], int]


def transpose_output_padding(signal_size: Sequence[int], code_size: Sequence[int], kernel_size: Sequence[int],
                             stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int]) -> List[int]:
    """The conv_transpose output padding that decodes ``code_size`` back to ``signal_size``."""
    return [
        n - ((c - 1) * s - 2 * p + d * (k - 1) + 1)
        for n, c, k, s, p, d in zip(signal_size, code_size, kernel_size, stride, padding, dilation)
    ]


def encode(x: Tensor, weight: Tensor, bias: Optional[Tensor], ndim: int, stride: List[int], padding: List[int],
           dilation: List[int], groups: int) -> Tensor:
    """``Aᵀx`` (+ a per-atom ``bias``): conv1d / conv2d by ``weight``, or ``x Wᵀ`` for ``ndim`` 0."""
    if ndim == 0:
        return F.linear(x, weight, bias)
    conv = F.conv1d if ndim == 1 else F.conv2d
    return conv(x, weight, bias, stride, padding, dilation, groups)


def decode(z: Tensor, weight: Tensor, output_padding: List[int], ndim: int, stride: List[int], padding: List[int],
           dilation: List[int], groups: int) -> Tensor:
    """``A z``: the transposed convolution with ``output_padding``, or ``z W`` for ``ndim`` 0."""
    if ndim == 0:
        return torch.matmul(z, weight)
    conv_transpose = F.conv_transpose1d if ndim == 1 else F.conv_transpose2d
    return conv_transpose(z, weight, None, stride, padding, output_padding, groups, dilation)


def encode_backward(grad_code: Tensor, x: Tensor, weight: Tensor, need_x: bool, need_weight: bool, ndim: int,
                    stride: List[int], padding: List[int], dilation: List[int],
                    groups: int) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """Gradients of ``encode(x, weight)`` w.r.t. (x, weight) where asked for (None elsewhere)."""
    if ndim == 0:
        grad_x = torch.matmul(grad_code, weight) if need_x else None
        grad_weight = torch.matmul(grad_code.t(), x) if need_weight else None
        return grad_x, grad_weight
    grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(grad_code, x, weight, None, stride, padding, dilation,
                                                                 False, [0] * ndim, groups,
                                                                 [need_x, need_weight, False])
    return grad_x, grad_weight


def decode_backward(grad_signal: Tensor, z: Tensor, weight: Tensor, output_padding: List[int], need_z: bool,
                    need_weight: bool, ndim: int, stride: List[int], padding: List[int], dilation: List[int],
                    groups: int) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """Gradients of ``decode(z, weight, output_padding)`` w.r.t. (z, weight) where asked for."""
    if ndim == 0:
        grad_z = torch.matmul(grad_signal, weight.t()) if need_z else None
        grad_weight = torch.matmul(z.t(), grad_signal) if need_weight else None
        return grad_z, grad_weight
    grad_z, grad_weight, _ = torch.ops.aten.convolution_backward(grad_signal, z, weight, None, stride, padding,
                                                                 dilation, True, output_padding, groups,
                                                                 [need_z, need_weight, False])
    return grad_z, grad_weight


class ConvDictionary:
    """A convolutional dictionary: synthesis ``A`` = conv_transpose, analysis ``Aᵀ`` = conv, same weight.

    The weight has the shape of the ``Conv{N}d`` it replaces, C_out × C_in/groups × k…; atom j is
    ``weight[j]``. conv_transpose with the output padding of the actual signal size is the exact
    adjoint of the strided conv, so odd sizes with stride > 1 decode back to the signal's size.

    Args:
        ndim: spatial dimensions, 1 or 2.
        kernel_size, stride, padding, dilation: per spatial dimension.
        groups: block-diagonal dictionary with this many blocks.
    """

    def __init__(self, ndim: int, kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                 dilation: Sequence[int], groups: int):
        self.ndim = ndim
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)
        self.padding = tuple(padding)
        self.dilation = tuple(dilation)
        self.groups = groups

    @property
    def geometry(self) -> Geometry:
        """The op arguments ``(ndim, stride, padding, dilation, groups)``."""
        return self.ndim, list(self.stride), list(self.padding), list(self.dilation), self.groups

    def code_size(self, signal_size: Sequence[int]) -> List[int]:
        """Spatial size of the code of a signal of spatial size ``signal_size`` (as nn.ConvNd)."""
        return [(n + 2 * p - d * (k - 1) - 1) // s + 1
                for n, k, s, p, d in zip(signal_size, self.kernel_size, self.stride, self.padding, self.dilation)]

    def signal_size(self, code_size: Sequence[int], output_padding: Optional[Sequence[int]] = None) -> List[int]:
        """Spatial size conv_transpose decodes ``code_size`` to (output padding default 0)."""
        output_padding = output_padding or [0] * self.ndim
        return [(c - 1) * s - 2 * p + d * (k - 1) + 1 + o for c, k, s, p, d, o in zip(
            code_size, self.kernel_size, self.stride, self.padding, self.dilation, output_padding)]

    def power_shapes(self, signal_shape: Sequence[int], weight_shape: Sequence[int],
                     max_code_size: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        """(signal, code) shapes of the batch-1 power iteration for signals of ``signal_shape``.

        The signal is cropped to the largest size whose code is at most ``max_code_size`` long.
        """
        largest = self.signal_size([max_code_size] * self.ndim, [s - 1 for s in self.stride])
        sizes = [min(n, m) for n, m in zip(signal_shape[2:], largest)]
        return (1, signal_shape[1], *sizes), (1, weight_shape[0], *self.code_size(sizes))

    def encode(self, x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
        """``Aᵀx`` (+ a per-channel ``bias``): B × C_in × L… → B × C_out × L'…."""
        return encode(x, weight, bias, *self.geometry)

    def decode(self, z: Tensor, weight: Tensor, signal_shape: Sequence[int]) -> Tensor:
        """``A z``: B × C_out × L'… → B × C_in × L… with L… = ``signal_shape[2:]``.

        Decodes with the largest output padding (stride − 1) and crops to the signal's size: the
        same values as the exact output padding, but with the conv_transpose's arguments fixed, so
        that an export with dynamic sizes can translate it (ONNX's ConvTranspose takes its output
        padding as a constant).
        """
        full = F.conv_transpose1d if self.ndim == 1 else F.conv_transpose2d
        out = full(z, weight, None, self.stride, self.padding, [s - 1 for s in self.stride], self.groups, self.dilation)
        size = signal_shape[2:]
        return out[..., :size[0]] if self.ndim == 1 else out[..., :size[0], :size[1]]


class LinearDictionary:
    """A matrix dictionary for vectors: ``A z = z W`` and ``Aᵀx = x Wᵀ`` with W of shape m × d.

    Signals are N × d and codes N × m; atom j is row ``W[j]``.
    """

    geometry: Geometry = (0, [], [], [], 1)

    def power_shapes(self, signal_shape, weight_shape, max_code_size):
        """(signal, code) shapes of the power iteration: one vector (‖A‖ does not depend on N)."""
        return (1, weight_shape[1]), (1, weight_shape[0])

    def encode(self, x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
        """``Aᵀx`` (+ ``bias``): N × d → N × m."""
        return F.linear(x, weight, bias)

    def decode(self, z: Tensor, weight: Tensor, signal_shape: Sequence[int]) -> Tensor:
        """``A z``: N × m → N × d."""
        return torch.matmul(z, weight)


@torch.no_grad()
def power_iteration(dictionary, weight: Tensor, vector: Tensor, signal_shape: Sequence[int],
                    num_iters: int) -> Tuple[Tensor, Tensor]:
    """``num_iters`` steps of v ← AᵀA v / ‖AᵀA v‖ from the unit-norm code-shaped ``vector``.

    Returns the new unit vector and ‖AᵀA v‖ of the last step's starting vector, a lower bound on
    L = λ_max(AᵀA) = ‖A‖² that is tighter than the Rayleigh quotient ⟨v, AᵀA v⟩. No host sync.
    """
    norm = vector.new_zeros(())
    for _ in range(num_iters):
        image = dictionary.encode(dictionary.decode(vector, weight, signal_shape), weight)
        norm = torch.linalg.vector_norm(image)
        vector = image / norm.clamp_min(1e-30)
    return vector, norm
