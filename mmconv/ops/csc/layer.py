"""The state and forward shared by the CSC layers: the dictionary, the step size η and its power iteration."""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check_impl, check_positive, use_reference
from .dictionaries import power_iteration
from .reference import check_solver, sparse_code_reference
from .solver import sparse_code

__all__ = ['COLD_POWER_ITERS', 'POWER_SEED', 'SparseCodingLayer', 'cold_start_vector']

# Iterations of the first (cold) power iteration, the SDNet code's cap; warm updates use far fewer.
COLD_POWER_ITERS = 50
# Seed of the cold-start vector: identical on every rank, independent of the global RNG stream.
POWER_SEED = 0


def cold_start_vector(shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """A fixed pseudo-random unit vector of ``shape`` (fp32), the power iteration's cold start.

    An integer hash of the element index and :data:`POWER_SEED`, uniform in [−1, 1): the same values
    on every rank and device, independent of the global RNG stream, and made of tensor ops only, so
    that ``torch.compile(fullgraph=True)`` can trace a layer's first (cold) step-size estimate.
    """
    mask = 0xFFFFFFFF
    x = torch.arange(math.prod(shape), device=device, dtype=torch.int64) + (POWER_SEED + 1) * 0x9E3779B9
    for _ in range(2):
        x = ((x ^ (x >> 16)) * 0x45D9F3B) & mask
    x = x ^ (x >> 16)
    vector = ((x & 0xFFFFFF).to(torch.float32) * 2.0**-23 - 1.0).reshape(shape)
    return vector / torch.linalg.vector_norm(vector)


class SparseCodingLayer(nn.Module):
    """Dictionary, step-size state and forward shared by the CSC layers (see :mod:`mmconv.ops.csc.module`).

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
    export) uses the stored step size and changes no state; exporting a layer that has no estimate yet
    raises (the exported graph would code with another step size than eager).
    """

    def __init__(self, weight_shape: Sequence[int], dictionary, num_steps: int, lam: float, solver: str,
                 non_negative: bool, mu: float, normalize_atoms: bool, step_scale: float, power_iters: int,
                 power_interval: int, power_max_size: int, recompute: bool, impl: str):
        super().__init__()
        check_solver(num_steps, solver)
        _check_number('mu', mu, 'a non-negative number', lambda v: v >= 0)
        _check_number('step_scale', step_scale, 'a number in (0, 2)', lambda v: 0 < v < 2)
        check_positive('power_iters', power_iters)
        check_positive('power_interval', power_interval)
        check_positive('power_max_size', power_max_size)
        check_impl(impl)
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
        # Training calls since the last update, modulo power_interval: torch.compile specialises on
        # it, so it takes power_interval values (one compiled graph each), not one per call.
        self._training_phase = 0
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

    @staticmethod
    def _atom_norms(weight: torch.Tensor) -> torch.Tensor:
        norms = torch.linalg.vector_norm(weight.detach().flatten(1), dim=1).clamp_min(1e-12)
        return norms.view(-1, *([1] * (weight.dim() - 1)))

    @torch.no_grad()
    def project_atoms(self) -> None:
        """Rescale every atom to unit ℓ2 norm in place (a projection, not differentiated)."""
        self.weight.data.div_(self._atom_norms(self.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signal, weight = self._to_signal(x), self.weight
        if torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting():
            # An exported graph changes no state: it codes with the stored step size, which must
            # exist, and with the atoms projected out of place (the same values).
            if self.power_vector.numel() == 0:
                raise RuntimeError(f'{type(self).__name__} has no step-size estimate yet: run a forward pass '
                                   f'in eager mode (or load a checkpoint) before exporting it.')
            if self.normalize_atoms:
                weight = weight / self._atom_norms(weight)
        elif not self._rerun_in_backward():
            if self.normalize_atoms:
                self.project_atoms()
            if self._step_size_due():
                self.update_step_size(signal.shape)
        return self._from_code(self._solve(signal, weight), x)

    @staticmethod
    def _rerun_in_backward() -> bool:
        """Activation checkpointing reruns forward inside backward: that rerun must code with the
        atoms and step size the first pass used (re-projecting moves the atoms by an ulp, enough to
        flip a code entry across the threshold), so the state is left alone while a backward pass
        runs. Under torch.compile the backward pass is compiled and reruns no Python forward."""
        return not torch.compiler.is_compiling() and torch._C._current_graph_task_id() != -1

    def _step_size_due(self) -> bool:
        # A traced forward (FLOP counting) uses the stored step size and changes no state.
        if torch.jit.is_tracing():
            return False
        cold = self.power_vector.numel() == 0
        if not self.training:
            return cold
        due = cold or self._training_phase == 0
        self._training_phase = (self._training_phase + 1) % self.power_interval
        return due

    def _solve(self, signal: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # The step size is cloned so that a later in-place update cannot invalidate this graph.
        args = dict(dictionary=self.dictionary, step=self.step_size.clone(), lam=self.lam, num_steps=self.num_steps,
                    solver=self.solver, non_negative=self.non_negative, mu=self.mu)
        if use_reference(self.impl):
            solve = sparse_code_reference
        else:
            solve, args['recompute'] = sparse_code, self.recompute
        device_type = signal.device.type
        if not torch.is_autocast_enabled(device_type):
            return solve(signal, weight, **args)
        # Under autocast every pass runs in the autocast dtype, like the convolutions it is made of.
        dtype = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return solve(signal.to(dtype), weight.to(dtype), **args)

    @torch.no_grad()
    def update_step_size(self, signal_shape: Sequence[int], num_iters: Optional[int] = None) -> None:
        """Run the power iteration for signals of ``signal_shape`` and set η = step_scale / L.

        Args:
            signal_shape: shape of the signal in the layer's internal layout (B × C × L… or N × d).
            num_iters: iterations; default ``power_iters``, or :data:`COLD_POWER_ITERS` from scratch.
        """
        proxy_shape, code_shape = self.dictionary.power_shapes(signal_shape, self.weight.shape, self.power_max_size)
        weight = self.weight.detach().float()
        vector = self.power_vector.float()
        if vector.numel() == 0:
            vector = cold_start_vector(code_shape, weight.device)
            num_iters = num_iters or COLD_POWER_ITERS
        elif tuple(vector.shape) != tuple(code_shape):
            pad = []
            for old, new in zip(reversed(vector.shape[2:]), reversed(code_shape[2:])):
                pad += [0, new - old]
            vector = F.pad(vector, pad)
            vector /= torch.linalg.vector_norm(vector).clamp_min(1e-30)
        with torch.autocast(weight.device.type, enabled=False):
            vector, lipschitz = power_iteration(self.dictionary, weight, vector, proxy_shape, num_iters
                                                or self.power_iters)
        if self.power_vector.shape == vector.shape:
            self.power_vector.copy_(vector)
        else:
            self.power_vector = vector.to(self.power_vector.dtype)
        self.step_size.copy_(self.step_scale / lipschitz.clamp_min(1e-12))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # The power vector's shape follows the training size: adopt the checkpoint's. SDNet
        # checkpoints have none; then the next forward re-estimates η from scratch.
        key = prefix + 'power_vector'
        if key in state_dict:
            self.power_vector = self.power_vector.new_empty(state_dict[key].shape)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
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
        value = (0.5 * residual.pow(2).sum(dims) + self.lam * z.abs().sum(dims) + 0.5 * self.mu * z.pow(2).sum(dims))
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
