"""The CSC layers: CSCConv2d, CSCConv1d and CSCLinear, and ``set_csc_lambda`` (see :mod:`mmconv.ops.csc`)."""
import re
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..validation import check_positive
from .dictionaries import ConvDictionary, LinearDictionary
from .layer import SparseCodingLayer

__all__ = ['CSCConv2d', 'CSCConv1d', 'CSCLinear', 'set_csc_lambda']


def _per_dim(name: str, value, ndim: int, minimum: int) -> Tuple[int, ...]:
    """``value`` as an ndim-tuple of ints ≥ ``minimum``, from an int or a sequence of ndim ints."""
    values = (value, ) * ndim if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(values, (tuple, list)) or len(values) != ndim
            or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values)):
        raise ValueError(f'{name} must be an integer >= {minimum} or a sequence of {ndim} such '
                         f'integers, got {value!r}.')
    return tuple(values)


class _CSCConvNd(SparseCodingLayer):
    """Shared constructor and synthesis of :class:`CSCConv2d` and :class:`CSCConv1d`."""

    _ndim = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Union[int, Sequence[int]] = 3,
                 stride: Union[int, Sequence[int]] = 1, padding: Optional[Union[int, Sequence[int]]] = None, *,
                 dilation: Union[int, Sequence[int]] = 1, groups: int = 1, num_steps: int = 2, lam: float = 0.1,
                 solver: str = 'sdnet_fista', non_negative: bool = True, mu: float = 0.0, normalize_atoms: bool = True,
                 step_scale: float = 0.9, power_iters: int = 1, power_interval: int = 1, power_max_size: int = 32,
                 recompute: bool = False, impl: str = 'auto'):
        ndim = self._ndim
        check_positive('in_channels', in_channels)
        check_positive('out_channels', out_channels)
        check_positive('groups', groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'groups must be a positive integer dividing in_channels ({in_channels}) '
                             f'and out_channels ({out_channels}), got {groups}.')
        kernel_size = _per_dim('kernel_size', kernel_size, ndim, 1)
        stride = _per_dim('stride', stride, ndim, 1)
        dilation = _per_dim('dilation', dilation, ndim, 1)
        if padding is None:
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel_size, dilation))
        padding = _per_dim('padding', padding, ndim, 0)
        super().__init__((out_channels, in_channels // groups, *kernel_size),
                         ConvDictionary(ndim, kernel_size, stride, padding, dilation,
                                        groups), num_steps=num_steps, lam=lam, solver=solver, non_negative=non_negative,
                         mu=mu, normalize_atoms=normalize_atoms, step_scale=step_scale, power_iters=power_iters,
                         power_interval=power_interval, power_max_size=power_max_size, recompute=recompute, impl=impl)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation

    def decode(self, codes: torch.Tensor, output_size: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Synthesis ``A z``: map codes back to the input space through the dictionary.

        Args:
            codes: B × C_out × L'… (this layer's output).
            output_size: spatial size of the signal to decode to (the input's, for a reconstruction);
                default the smallest size with these codes' size.

        Returns:
            B × C_in × output_size.
        """
        code_size = tuple(codes.shape[2:])
        output_size = tuple(self.dictionary.signal_size(code_size) if output_size is None else output_size)
        if tuple(self.dictionary.code_size(output_size)) != code_size:
            raise ValueError(f'output_size must be a size whose code size is {code_size}, '
                             f'got {output_size}.')
        return self.dictionary.decode(codes, self.weight, (codes.shape[0], self.in_channels, *output_size))

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, padding={self.padding}, dilation={self.dilation}, '
                f'groups={self.groups}, {super().extra_repr()}')


class CSCConv2d(_CSCConvNd):
    """2-D convolutional sparse coding layer (SDNet's ``DictConv2d``), a drop-in for a bias-free Conv2d.

    Args:
        in_channels: channels C_in of the input (the signal).
        out_channels: number of atoms C_out, the channels of the output (the codes).
        kernel_size: atom size k (int or pair). stride, padding (default d·(k−1)//2), dilation and
            groups: as for ``nn.Conv2d``; the output has nn.Conv2d's shape.
        num_steps: unrolled proximal-gradient steps (SDNet: 2).
        lam: ℓ1 weight λ (SDNet: 0.1), an attribute that may change at test time.
        solver: ``'sdnet_fista'`` (default, SDNet's recursion: momentum, gradient at the current
            iterate), ``'fista'`` (true FISTA, gradient at the extrapolated point) or ``'ista'``;
            identical for num_steps ≤ 2 (see :mod:`mmconv.ops.csc`).
        non_negative: codes z ≥ 0 (SDNet: True).
        mu: ℓ2 (elastic-net) weight μ (SDNet: 0).
        normalize_atoms: project the atoms to unit norm at every forward (SDNet: True).
        step_scale: η = step_scale / L (SDNet: 0.9).
        power_iters: warm-started power iterations per step-size update.
        power_interval: training forwards between step-size updates.
        power_max_size: largest code size per spatial dimension the power iteration runs on.
        recompute: recompute ``A z`` in backward instead of saving it (less memory, one more
            transposed conv per step).
        impl: ``'auto'`` (default: ``'fast'``, or the reference while exporting to ONNX), ``'fast'``
            (the registered ``mmconv::csc_*`` ops, memory-lean) or ``'reference'`` (the SDNet
            recursion with plain autograd, which also differentiates twice); they agree to rounding.

    Shape:
        x: B × C_in × H × W → B × C_out × H' × W', H' = ⌊(H + 2p − d(k − 1) − 1)/s⌋ + 1.
    """

    _ndim = 2


class CSCConv1d(_CSCConvNd):
    """1-D convolutional sparse coding layer (conv1d / conv_transpose1d dictionary), for sequences.

    Arguments as :class:`CSCConv2d`, with int or 1-tuple geometry.

    Shape:
        x: B × C_in × L → B × C_out × L', L' = ⌊(L + 2p − d(k − 1) − 1)/s⌋ + 1.
    """

    _ndim = 1


class CSCLinear(SparseCodingLayer):
    """Sparse coding of vectors or tokens under a matrix dictionary (SDNet's "1D case" layer).

    The dictionary ``weight`` (out_features × in_features, nn.Linear's layout) has one atom per row;
    the output is the code of each input vector, ``A z = z W``. SDNet's ``MatrixSparseCodingLayer``
    returns (codes, reconstruction, residual, losses); this layer returns the codes, and
    :meth:`decode` gives the reconstruction.

    Args:
        in_features: size d of each input vector.
        out_features: number of atoms m, the size of each code.
        num_steps, lam, solver, non_negative, mu, normalize_atoms, step_scale, power_iters,
        power_interval, recompute, impl: as for :class:`CSCConv2d`.

    Shape:
        x: (…, d) → (…, m).
    """

    def __init__(self, in_features: int, out_features: int, *, num_steps: int = 2, lam: float = 0.1,
                 solver: str = 'sdnet_fista', non_negative: bool = True, mu: float = 0.0, normalize_atoms: bool = True,
                 step_scale: float = 0.9, power_iters: int = 1, power_interval: int = 1, recompute: bool = False,
                 impl: str = 'auto'):
        check_positive('in_features', in_features)
        check_positive('out_features', out_features)
        super().__init__((out_features, in_features), LinearDictionary(), num_steps=num_steps, lam=lam, solver=solver,
                         non_negative=non_negative, mu=mu, normalize_atoms=normalize_atoms, step_scale=step_scale,
                         power_iters=power_iters, power_interval=power_interval, power_max_size=1, recompute=recompute,
                         impl=impl)
        self.in_features, self.out_features = in_features, out_features

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Synthesis ``A z = z W``: (…, m) → (…, d)."""
        return torch.matmul(codes, self.weight)

    def _to_signal(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, self.in_features)

    def _to_signal_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.reshape(-1, self.out_features)

    def _from_code(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return z.reshape(*x.shape[:-1], self.out_features)

    def _batch_shape(self, x: torch.Tensor) -> Tuple[int, ...]:
        return tuple(x.shape[:-1])

    def extra_repr(self) -> str:
        return f'{self.in_features}, {self.out_features}, {super().extra_repr()}'


LayerFilter = Union[None, str, Callable[[str, nn.Module], bool]]


def set_csc_lambda(model: nn.Module, lam: float, layer_filter: LayerFilter = None) -> Dict[str, float]:
    """Set λ of the CSC layers of ``model`` (e.g. a larger λ at test time for corrupted inputs).

    Args:
        model: any module; every CSC layer inside it (itself included) is a candidate.
        lam: the new λ, a non-negative number.
        layer_filter: which layers to change: all (None), those whose qualified name matches this
            regular expression (``re.search``), or those for which ``layer_filter(name, layer)`` is
            true.

    Returns:
        The previous λ of every changed layer, by qualified name (pass it back to restore).
    """
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam < 0:
        raise ValueError(f'lam must be a non-negative number, got {lam!r}.')
    if isinstance(layer_filter, str):
        pattern = re.compile(layer_filter)
        selected = lambda name, layer: pattern.search(name) is not None  # noqa: E731
    elif layer_filter is None or callable(layer_filter):
        selected = layer_filter or (lambda name, layer: True)
    else:
        raise ValueError(f'layer_filter must be None, a regular expression or a callable, '
                         f'got {layer_filter!r}.')
    previous = {}
    for name, layer in model.named_modules():
        if isinstance(layer, SparseCodingLayer) and selected(name, layer):
            previous[name] = layer.lam
            layer.lam = lam
    return previous
