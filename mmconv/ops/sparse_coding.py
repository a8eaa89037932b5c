"""Unrolled sparse coding with a learned dictionary: the solver shared by every CSC layer.

Dai et al., "Revisiting Sparse Convolutional Model for Visual Recognition", NeurIPS 2022.
https://arxiv.org/abs/2210.12945 (official code: https://github.com/Delay-Xili/SDNet)

For a signal ``x`` and a dictionary operator ``A`` (a transposed convolution, or a matrix for vectors),
the layer output is an approximate solution of the (elastic-net) LASSO

    z* = argmin_{z (≥ 0)}  ½‖x − A z‖² + λ‖z‖₁ + μ/2 ‖z‖²

obtained by ``num_steps`` proximal-gradient steps from z = 0 with step η (0.9 / L, L = ‖A‖²). The
proximal map of ``η(λ|z| + μ/2 z²)`` is ``P(v) = ς·shrink(v, ηλ)``, ς = 1 / (1 + ημ), followed by
ReLU for non-negative codes. Three solvers share the first two steps (z₁ = P(η Aᵀx), then one ISTA
step) and differ from the third step on, where y = z + β (z − z_prev) with the FISTA sequence β:

* ``'sdnet_fista'``: the SDNet code's recursion, ``z ← P(y + η Aᵀ(x − A z))``. The gradient is taken
  at the current iterate z, not at y, so this is an inertial (heavy-ball) proximal method, not FISTA.
* ``'fista'``: Beck and Teboulle's FISTA, ``z ← P(y − η ∇f(y))`` (gradient at the extrapolated point).
* ``'ista'``: no momentum, ``z ← P(z + η Aᵀ(x − A z))``.

Two implementations give the same result: :func:`sparse_code_reference` follows the SDNet code line by
line with autograd, and :func:`sparse_code` (the default) runs the same steps as two custom autograd
Functions. It reuses ``η Aᵀx`` across steps, forms no residual, folds the threshold into the first
conv's bias, and saves per step only the point the gradient was taken at, its decoding ``A p`` (or
recomputes it) and a one-byte support mask, nothing for the momentum; η and λη stay tensors, so
nothing waits for the device. Both cost 2·num_steps − 1 convolutions forward.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .flop_handles import register_flop_handle, value_shape

__all__ = [
    'SOLVERS', 'IMPLS', 'ConvDictionary', 'LinearDictionary', 'SparseCodingLayer', 'sparse_code',
    'sparse_code_reference', 'power_iteration', 'fista_momentum', 'CSCEncode', 'CSCStep'
]

SOLVERS = ('sdnet_fista', 'fista', 'ista')
IMPLS = ('memory', 'reference')

# Iterations of the first (cold) power iteration, the SDNet code's cap; warm updates use far fewer.
COLD_POWER_ITERS = 50
# Seed of the cold-start vector: identical on every rank, independent of the global RNG stream.
POWER_SEED = 0


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

    def __init__(self, ndim: int, kernel_size: Sequence[int], stride: Sequence[int],
                 padding: Sequence[int], dilation: Sequence[int], groups: int):
        self.ndim = ndim
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)
        self.padding = tuple(padding)
        self.dilation = tuple(dilation)
        self.groups = groups
        self._conv = F.conv1d if ndim == 1 else F.conv2d
        self._conv_transpose = F.conv_transpose1d if ndim == 1 else F.conv_transpose2d

    def code_size(self, signal_size: Sequence[int]) -> List[int]:
        """Spatial size of the code of a signal of spatial size ``signal_size`` (as nn.ConvNd)."""
        return [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in zip(
            signal_size, self.kernel_size, self.stride, self.padding, self.dilation)]

    def signal_size(self, code_size: Sequence[int],
                    output_padding: Optional[Sequence[int]] = None) -> List[int]:
        """Spatial size conv_transpose decodes ``code_size`` to (output padding default 0)."""
        output_padding = output_padding or [0] * self.ndim
        return [(c - 1) * s - 2 * p + d * (k - 1) + 1 + o for c, k, s, p, d, o in zip(
            code_size, self.kernel_size, self.stride, self.padding, self.dilation, output_padding)]

    def output_padding(self, signal_size: Sequence[int], code_size: Sequence[int]) -> List[int]:
        """The conv_transpose output padding that decodes ``code_size`` back to ``signal_size``."""
        return [n - m for n, m in zip(signal_size, self.signal_size(code_size))]

    def power_shapes(self, signal_shape: Sequence[int], weight_shape: Sequence[int],
                     max_code_size: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        """(signal, code) shapes of the batch-1 power iteration for signals of ``signal_shape``.

        The signal is cropped to the largest size whose code is at most ``max_code_size`` long.
        """
        largest = self.signal_size([max_code_size] * self.ndim, [s - 1 for s in self.stride])
        sizes = [min(n, m) for n, m in zip(signal_shape[2:], largest)]
        return (1, signal_shape[1], *sizes), (1, weight_shape[0], *self.code_size(sizes))

    def encode(self, x: torch.Tensor, weight: torch.Tensor,
               bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``Aᵀx`` (+ a per-channel ``bias``): B × C_in × L… → B × C_out × L'…."""
        return self._conv(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def decode(self, z: torch.Tensor, weight: torch.Tensor, signal_shape: Sequence[int]) -> torch.Tensor:
        """``A z``: B × C_out × L'… → B × C_in × L… with L… = ``signal_shape[2:]``."""
        padding = self.output_padding(signal_shape[2:], z.shape[2:])
        return self._conv_transpose(z, weight, None, self.stride, self.padding, padding, self.groups,
                                    self.dilation)

    def encode_backward(self, grad_code: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                        mask: Sequence[bool]) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Gradients of ``encode(x, weight)`` w.r.t. (x, weight) where ``mask`` asks for them."""
        grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
            grad_code, x, weight, None, self.stride, self.padding, self.dilation, False,
            [0] * self.ndim, self.groups, [mask[0], mask[1], False])
        return grad_x, grad_weight

    def decode_backward(self, grad_signal: torch.Tensor, z: torch.Tensor, weight: torch.Tensor,
                        mask: Sequence[bool]) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Gradients of ``decode(z, weight, grad_signal.shape)`` w.r.t. (z, weight)."""
        padding = self.output_padding(grad_signal.shape[2:], z.shape[2:])
        grad_z, grad_weight, _ = torch.ops.aten.convolution_backward(
            grad_signal, z, weight, None, self.stride, self.padding, self.dilation, True, padding,
            self.groups, [mask[0], mask[1], False])
        return grad_z, grad_weight


class LinearDictionary:
    """A matrix dictionary for vectors: ``A z = z W`` and ``Aᵀx = x Wᵀ`` with W of shape m × d.

    Signals are N × d and codes N × m; atom j is row ``W[j]``.
    """

    def power_shapes(self, signal_shape, weight_shape, max_code_size):
        """(signal, code) shapes of the power iteration: one vector (‖A‖ does not depend on N)."""
        return (1, weight_shape[1]), (1, weight_shape[0])

    def encode(self, x: torch.Tensor, weight: torch.Tensor,
               bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``Aᵀx`` (+ ``bias``): N × d → N × m."""
        return F.linear(x, weight, bias)

    def decode(self, z: torch.Tensor, weight: torch.Tensor, signal_shape: Sequence[int]) -> torch.Tensor:
        """``A z``: N × m → N × d."""
        return torch.matmul(z, weight)

    def encode_backward(self, grad_code, x, weight, mask):
        """Gradients of ``encode(x, weight)`` w.r.t. (x, weight) where ``mask`` asks for them."""
        grad_x = torch.matmul(grad_code, weight) if mask[0] else None
        grad_weight = torch.matmul(grad_code.t(), x) if mask[1] else None
        return grad_x, grad_weight

    def decode_backward(self, grad_signal, z, weight, mask):
        """Gradients of ``decode(z, weight)`` w.r.t. (z, weight) where ``mask`` asks for them."""
        grad_z = torch.matmul(grad_signal, weight.t()) if mask[0] else None
        grad_weight = torch.matmul(z.t(), grad_signal) if mask[1] else None
        return grad_z, grad_weight


def fista_momentum(num_steps: int) -> List[float]:
    """Extrapolation weights β_k of steps k = 1 … num_steps: t₁ = 1, t_{k+1} = (1 + √(1 + 4t_k²)) / 2.

    β_k = (t_{k−1} − 1) / t_k, so β₁ = β₂ = 0, β₃ ≈ 0.282, β₄ ≈ 0.434, … (the SDNet code's sequence).
    """
    betas, t = [0.0], 1.0
    for _ in range(num_steps - 1):
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        betas.append((t - 1.0) / t_next)
        t = t_next
    return betas


def _shrink(v: torch.Tensor, theta: torch.Tensor, scale: Optional[torch.Tensor], non_negative: bool,
            inplace: bool) -> torch.Tensor:
    """The proximal map of ``v``; for non-negative codes ``v`` already has θ subtracted."""
    if non_negative:
        z = v.clamp_min_(0) if inplace else v.clamp_min(0)
    else:
        z = v.sub_(v.clamp(-theta, theta)) if inplace else v - v.clamp(-theta, theta)
    return z if scale is None else z.mul_(scale)


def _support(z: torch.Tensor, non_negative: bool) -> torch.Tensor:
    """Where the code is non-zero, one byte per element."""
    return z > 0 if non_negative else z != 0


def _through_shrink(grad: torch.Tensor, support: torch.Tensor, scale: Optional[torch.Tensor],
                    non_negative: bool) -> torch.Tensor:
    """Backward of the proximal map: zero where the code is zero (torch's relu/softshrink convention).

    ``support`` is either the code itself or its boolean support. (Multiplying by the mask is several
    times faster than ``torch.where`` on CPU.)
    """
    if support.dtype != torch.bool:
        if non_negative:
            grad = torch.ops.aten.threshold_backward(grad, support, 0)
            return grad if scale is None else grad.mul_(scale)
        support = support != 0
    grad = grad * support
    return grad if scale is None else grad.mul_(scale)


class CSCEncode(torch.autograd.Function):
    """First step: ``c = η Aᵀx − θ·[non-negative]`` and ``z₁ = P(c)``; returns (c, z₁).

    ``c`` is the part of every later step's argument that does not depend on the codes. Saves ``x``
    and z₁ itself when the next step saves it anyway (``keep_output``), else its boolean support.
    """

    @staticmethod
    def forward(ctx, weight, x, step, theta, scale, dictionary, non_negative, keep_output):
        scaled_weight = weight * step
        bias = (-theta).to(x.dtype).expand(weight.shape[0]) if non_negative else None
        c = dictionary.encode(x, scaled_weight, bias)
        z = _shrink(c, theta, scale, non_negative, inplace=False)
        ctx.save_for_backward(x, scaled_weight, step, scale,
                              z if keep_output else _support(z, non_negative))
        ctx.dictionary, ctx.non_negative = dictionary, non_negative
        return c, z

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_c, grad_z):
        x, scaled_weight, step, scale, support = ctx.saved_tensors
        grad = grad_c
        if grad_z is not None:
            grad = _through_shrink(grad_z, support, scale, ctx.non_negative)
            if grad_c is not None:
                grad.add_(grad_c)
        need_weight, need_x = ctx.needs_input_grad[:2]
        grad_x, grad_weight = ctx.dictionary.encode_backward(grad, x, scaled_weight, (need_x, need_weight))
        if grad_weight is not None:
            grad_weight.mul_(step)
        return grad_weight, grad_x, None, None, None, None, None, None


class CSCStep(torch.autograd.Function):
    """A later step ``z = P(y + η Aᵀ(x − A p))``, p the gradient point (``point``, or y when None).

    Computed as ``shrink(y + c − η AᵀA p)`` with c from :class:`CSCEncode` (η Aᵀx, minus θ for
    non-negative codes), so no residual is formed; ``x`` only gives the signal's shape (the output
    padding of ``A``) and is not saved. Saves p, ``A p`` (unless ``recompute``: one more decoding in
    backward) and z itself when the next step saves it anyway (``keep_output``), else its support.
    ``step_weight`` is −η·``weight``, made once for all steps (no gradient flows through it).
    """

    @staticmethod
    def forward(ctx, weight, step_weight, x, y, point, c, step, theta, scale, dictionary, non_negative,
                keep_output, recompute):
        # x only gives the signal's shape (inside the Function, so that tracing works).
        signal_shape = x.shape
        gradient_at_y = point is None
        point = y if gradient_at_y else point
        decoded = dictionary.decode(point, weight, signal_shape)
        z = dictionary.encode(decoded, step_weight).add_(c).add_(y)
        _shrink(z, theta, scale, non_negative, inplace=True)
        ctx.save_for_backward(weight, step_weight, step, scale, point, None if recompute else decoded,
                              z if keep_output else _support(z, non_negative))
        ctx.dictionary, ctx.signal_shape, ctx.non_negative = dictionary, signal_shape, non_negative
        ctx.gradient_at_y = gradient_at_y
        return z

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z):
        weight, step_weight, step, scale, point, decoded, support = ctx.saved_tensors
        dictionary = ctx.dictionary
        grad_v = _through_shrink(grad_z, support, scale, ctx.non_negative)
        if decoded is None:
            decoded = dictionary.decode(point, weight, ctx.signal_shape)
        need_weight, _, _, need_y, need_point = ctx.needs_input_grad[:5]
        need_point = need_point or (ctx.gradient_at_y and need_y)
        # z = P(y + c + conv(A p, −ηW)): back through the analysis conv, then the synthesis A p.
        grad_decoded, grad_weight_analysis = dictionary.encode_backward(
            grad_v, decoded, step_weight, (True, need_weight))
        grad_point, grad_weight = dictionary.decode_backward(grad_decoded, point, weight,
                                                             (need_point, need_weight))
        if need_weight:
            grad_weight.addcmul_(grad_weight_analysis, step, value=-1)
        grad_y = grad_v
        if ctx.gradient_at_y:
            grad_y, grad_point = (grad_point.add_(grad_v) if need_y else None), None
        return (grad_weight, None, None, grad_y, grad_point, grad_v) + (None, ) * 7


def _atom_macs(weight_value) -> int:
    """MACs per code element of one analysis or synthesis pass: C_in/groups · k… (d for a matrix)."""
    return math.prod(value_shape(weight_value)[1:])


@register_flop_handle('CSCEncode')
def encode_flops(inputs, outputs) -> int:
    """The analysis conv ``Aᵀx``: one MAC per code element and atom entry."""
    # The two outputs (c, z₁) are traced as one tuple value; both have the code's shape.
    code_shape = outputs[0].type().elements()[0].sizes()
    return math.prod(code_shape) * _atom_macs(inputs[0])


@register_flop_handle('CSCStep')
def step_flops(inputs, outputs) -> int:
    """One synthesis ``A p`` and one analysis conv: twice the MACs of :func:`encode_flops`."""
    return 2 * math.prod(value_shape(outputs[0])) * _atom_macs(inputs[0])


def _check_solver(num_steps: int, solver: str) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f'num_steps must be a positive integer, got {num_steps!r}.')
    if solver not in SOLVERS:
        raise ValueError(f'solver must be one of {SOLVERS}, got {solver!r}.')


def sparse_code(x: torch.Tensor, weight: torch.Tensor, dictionary, step: torch.Tensor, lam: float,
                num_steps: int = 2, solver: str = 'sdnet_fista', non_negative: bool = True,
                mu: float = 0.0, recompute: bool = False) -> torch.Tensor:
    """Unrolled proximal-gradient sparse coding, memory-lean (same result as the reference).

    Args:
        x: signal, B × C_in × L… for a convolutional dictionary, N × d for a matrix one.
        weight: the dictionary, C_out × C_in/groups × k… (m × d for a matrix).
        dictionary: a :class:`ConvDictionary` or :class:`LinearDictionary`.
        step: step size η, a 0-d tensor (used as a tensor: no host synchronisation).
        lam: ℓ1 weight λ. mu: ℓ2 weight μ.
        num_steps: proximal-gradient steps; the first one starts from z = 0.
        solver: one of :data:`SOLVERS` (see the module docstring).
        non_negative: restrict the codes to z ≥ 0.
        recompute: recompute ``A p`` in backward instead of saving it (one signal-sized tensor less
            per step, one more transposed conv per step).

    Returns:
        The codes, B × C_out × L'… (N × m).
    """
    _check_solver(num_steps, solver)
    theta = step * lam
    scale = 1.0 / (1.0 + step * mu) if mu else None
    betas = fista_momentum(num_steps) if solver != 'ista' else [0.0] * num_steps

    def saved_as_point(k: int) -> bool:
        """Whether z_k is the gradient point of step k + 1 (so that step saves it anyway)."""
        return k < num_steps and (solver != 'fista' or betas[k] == 0)

    c, z = CSCEncode.apply(weight, x, step, theta, scale, dictionary, non_negative, saved_as_point(1))
    with torch.no_grad():
        step_weight = weight * -step
    z_prev = None
    for k in range(2, num_steps + 1):
        beta = betas[k - 1]
        y = z if beta == 0 else torch.add(z, z - z_prev, alpha=beta)
        point = None if solver == 'fista' or y is z else z
        z_prev, z = z, CSCStep.apply(weight, step_weight, x, y, point, c, step, theta, scale, dictionary,
                                     non_negative, saved_as_point(k), recompute)
    return z


def sparse_code_reference(x: torch.Tensor, weight: torch.Tensor, dictionary, step: torch.Tensor,
                          lam: float, num_steps: int = 2, solver: str = 'sdnet_fista',
                          non_negative: bool = True, mu: float = 0.0) -> torch.Tensor:
    """The SDNet recursion written out with autograd (arguments as :func:`sparse_code`).

    Plain and slow on purpose: the residual ``x − A z`` is formed explicitly and every intermediate is
    kept for backward, as in the SDNet code.
    """
    _check_solver(num_steps, solver)
    eta = float(step)
    scale = 1.0 / (1.0 + mu * eta)

    def prox(v):
        v = F.softshrink(v * scale, lam * eta * scale)
        return F.relu(v) if non_negative else v

    z = prox(eta * dictionary.encode(x, weight))
    z_prev, t = torch.zeros_like(z), 1.0
    for _ in range(1, num_steps):
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        beta = (t - 1.0) / t_next if solver != 'ista' else 0.0
        t = t_next
        y = z + beta * (z - z_prev)
        point = y if solver == 'fista' else z
        residual = x - dictionary.decode(point, weight, x.shape)
        z_prev, z = z, prox(y + eta * dictionary.encode(residual, weight))
    return z


@torch.no_grad()
def power_iteration(dictionary, weight: torch.Tensor, vector: torch.Tensor, signal_shape: Sequence[int],
                    num_iters: int) -> Tuple[torch.Tensor, torch.Tensor]:
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


class SparseCodingLayer(nn.Module):
    """Dictionary, step-size state and forward shared by the CSC layers (see :mod:`mmconv.ops.csc`).

    State (all in the state_dict, so a checkpoint reproduces its eval outputs):

    * ``weight``: the dictionary. With ``normalize_atoms`` every atom is projected back to unit ℓ2 norm
      at the start of each forward (in place, outside autograd, as in SDNet).
    * ``step_size``: η = ``step_scale`` / L (the SDNet key name), a 0-d buffer.
    * ``power_vector``: the warm-start vector of the power iteration on AᵀA, code-shaped with batch 1
      (empty until the first estimate).

    The step size is refreshed inside ``forward``: in training every ``power_interval`` calls with
    ``power_iters`` warm-started iterations; in eval only when no estimate exists yet. The first
    estimate runs :data:`COLD_POWER_ITERS` iterations from a fixed-seed vector. The operator's norm
    depends on the signal size and saturates quickly, so the iteration runs on the input's size cropped
    to a code of at most ``power_max_size`` per spatial dimension; a size change crops or zero-pads the
    vector, which keeps its local pattern and thus its warm start. A traced forward (FLOP counting,
    export) uses the stored step size and changes no state.
    """

    def __init__(self, weight_shape: Sequence[int], dictionary, num_steps: int, lam: float, solver: str,
                 non_negative: bool, mu: float, normalize_atoms: bool, step_scale: float,
                 power_iters: int, power_interval: int, power_max_size: int, recompute: bool, impl: str):
        super().__init__()
        _check_solver(num_steps, solver)
        _check_number('mu', mu, 'a non-negative number', lambda v: v >= 0)
        _check_number('step_scale', step_scale, 'a number in (0, 2)', lambda v: 0 < v < 2)
        for name, value in (('power_iters', power_iters), ('power_interval', power_interval),
                            ('power_max_size', power_max_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f'{name} must be a positive integer, got {value!r}.')
        if impl not in IMPLS:
            raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}.')
        self.dictionary = dictionary
        self.num_steps = num_steps
        self.lam = lam
        self.solver = solver
        self.non_negative = bool(non_negative)
        self.mu = float(mu)
        self.normalize_atoms = bool(normalize_atoms)
        self.step_scale = float(step_scale)
        self.power_iters = power_iters
        self.power_interval = power_interval
        self.power_max_size = power_max_size
        self.recompute = bool(recompute)
        self.impl = impl
        self.weight = nn.Parameter(torch.empty(*weight_shape))
        # 0.1 until the first estimate: the SDNet initial value.
        self.register_buffer('step_size', torch.tensor(0.1))
        self.register_buffer('power_vector', torch.empty(0))
        self._training_calls = 0
        self.reset_parameters()

    @property
    def lam(self) -> float:
        """λ, the ℓ1 weight; may be changed at any time, e.g. at test time (see ``set_csc_lambda``)."""
        return self._lam

    @lam.setter
    def lam(self, value: float) -> None:
        _check_number('lam', value, 'a non-negative number', lambda v: v >= 0)
        self._lam = float(value)

    @property
    def lipschitz(self) -> torch.Tensor:
        """The current estimate of L = ‖A‖², ``step_scale / step_size``."""
        return self.step_scale / self.step_size

    def reset_parameters(self) -> None:
        """Kaiming-uniform atoms (the SDNet initialisation), projected to unit norm; forget η."""
        nn.init.kaiming_uniform_(self.weight)
        self.project_atoms()
        self.step_size.fill_(0.1)
        self.power_vector = self.power_vector.new_empty(0)

    @torch.no_grad()
    def project_atoms(self) -> None:
        """Rescale every atom to unit ℓ2 norm in place (a projection, not differentiated)."""
        weight = self.weight.data
        norms = torch.linalg.vector_norm(weight.flatten(1), dim=1).clamp_min(1e-12)
        weight.div_(norms.view(-1, *([1] * (weight.dim() - 1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signal = self._to_signal(x)
        if self.normalize_atoms:
            self.project_atoms()
        if self._step_size_due():
            self.update_step_size(signal.shape)
        return self._from_code(self._solve(signal), x)

    def _step_size_due(self) -> bool:
        # Activation checkpointing reruns forward inside backward: that rerun must code with the
        # step size the first pass used, so the state is left alone while a backward pass runs.
        if torch.jit.is_tracing() or torch._C._current_graph_task_id() != -1:
            return False
        cold = self.power_vector.numel() == 0
        if not self.training:
            return cold
        due = cold or self._training_calls % self.power_interval == 0
        self._training_calls += 1
        return due

    def _solve(self, signal: torch.Tensor) -> torch.Tensor:
        # The step size is cloned so that a later in-place update cannot invalidate this graph.
        args = dict(dictionary=self.dictionary, step=self.step_size.clone(), lam=self.lam,
                    num_steps=self.num_steps, solver=self.solver, non_negative=self.non_negative,
                    mu=self.mu)
        if self.impl == 'memory':
            solve, args['recompute'] = sparse_code, self.recompute
        else:
            solve = sparse_code_reference
        device_type = signal.device.type
        if not torch.is_autocast_enabled(device_type):
            return solve(signal, self.weight, **args)
        # Under autocast every pass runs in the autocast dtype, like the convolutions it is made of.
        dtype = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return solve(signal.to(dtype), self.weight.to(dtype), **args)

    @torch.no_grad()
    def update_step_size(self, signal_shape: Sequence[int], num_iters: Optional[int] = None) -> None:
        """Run the power iteration for signals of ``signal_shape`` and set η = step_scale / L.

        Args:
            signal_shape: shape of the signal in the layer's internal layout (B × C × L… or N × d).
            num_iters: iterations; default ``power_iters``, or :data:`COLD_POWER_ITERS` from scratch.
        """
        proxy_shape, code_shape = self.dictionary.power_shapes(signal_shape, self.weight.shape,
                                                                self.power_max_size)
        weight = self.weight.detach().float()
        vector = self.power_vector.float()
        if vector.numel() == 0:
            generator = torch.Generator().manual_seed(POWER_SEED)
            vector = torch.randn(code_shape, generator=generator).to(weight.device)
            vector /= torch.linalg.vector_norm(vector)
            num_iters = num_iters or COLD_POWER_ITERS
        elif tuple(vector.shape) != tuple(code_shape):
            pad = []
            for old, new in zip(reversed(vector.shape[2:]), reversed(code_shape[2:])):
                pad += [0, new - old]
            vector = F.pad(vector, pad)
            vector /= torch.linalg.vector_norm(vector).clamp_min(1e-30)
        with torch.autocast(weight.device.type, enabled=False):
            vector, lipschitz = power_iteration(self.dictionary, weight, vector, proxy_shape,
                                                num_iters or self.power_iters)
        if self.power_vector.shape == vector.shape:
            self.power_vector.copy_(vector)
        else:
            self.power_vector = vector.to(self.power_vector.dtype)
        self.step_size.copy_(self.step_scale / lipschitz.clamp_min(1e-12))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # The power vector's shape follows the training size: adopt the checkpoint's. SDNet
        # checkpoints have none; then the next forward re-estimates η from scratch.
        key = prefix + 'power_vector'
        if key in state_dict:
            self.power_vector = self.power_vector.new_empty(state_dict[key].shape)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if key not in state_dict:
            if key in missing_keys:
                missing_keys.remove(key)
            self.power_vector = self.power_vector.new_empty(0)

    def objective(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The per-sample objective ½‖x − A z‖² + λ‖z‖₁ + μ/2‖z‖² of ``codes`` for input ``x``.

        Returns a tensor of ``x``'s batch shape (B for a conv layer, x.shape[:-1] for a linear one).
        """
        signal, z = self._to_signal(x), self._to_signal_codes(codes)
        residual = signal - self.dictionary.decode(z, self.weight, signal.shape)
        dims = tuple(range(1, signal.dim()))
        value = (0.5 * residual.pow(2).sum(dims) + self.lam * z.abs().sum(dims)
                 + 0.5 * self.mu * z.pow(2).sum(dims))
        return value.reshape(self._batch_shape(x))

    def extra_repr(self) -> str:
        return (f'num_steps={self.num_steps}, lam={self.lam}, solver={self.solver!r}, '
                f'non_negative={self.non_negative}, mu={self.mu}, impl={self.impl!r}')

    # Layout hooks: conv layers compute on their input as is; the linear layer flattens tokens.
    def _to_signal(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _to_signal_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return codes

    def _from_code(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return z

    def _batch_shape(self, x: torch.Tensor) -> Tuple[int, ...]:
        return tuple(x.shape[:1])


def _check_number(name: str, value, allowed: str, condition) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not condition(value):
        raise ValueError(f'{name} must be {allowed}, got {value!r}.')
