"""Convolutional sparse coding (CSC) layers: drop-in replacements for Conv2d, Conv1d and Linear.

Dai et al., "Revisiting Sparse Convolutional Model for Visual Recognition", NeurIPS 2022.
https://arxiv.org/abs/2210.12945 (official code: https://github.com/Delay-Xili/SDNet)

A CSC layer outputs the sparse code of its input under a learned dictionary whose atoms are the
layer's filters: with ``A`` the transposed convolution by ``weight`` (the convolution it replaces is
``Aᵀ``), the output approximately solves

    min_{z ≥ 0}  ½‖x − A z‖² + λ‖z‖₁ + μ/2 ‖z‖²,

by ``num_steps`` unrolled proximal-gradient steps from z = 0 with step 0.9/L (L = ‖A‖² by power
iteration). The output has the shape of the replaced layer's output and no bias. With the SDNet
defaults (2 steps, λ = 0.1, μ = 0, non-negative codes, unit-norm atoms) the layer is
``z₁ = ReLU(η Aᵀx − ηλ)``, ``z = ReLU(z₁ + η Aᵀ(x − A z₁) − ηλ)``; the solver (below) is shared
by the three layers.

Differences from the SDNet code, all of them intended:

* any input size after the first call, including odd sizes with stride 2 (the transposed conv's
  output padding follows the actual input size instead of a fixed 0/1);
* η and the power-iteration vector are buffers updated inside ``forward`` (warm-started, one
  iteration per training step by default) instead of by the training loop with up to 50 iterations
  and a host sync; the reconstruction loss the SDNet code computes and discards is not computed;
* λ is a plain attribute that can change at test time (:func:`set_csc_lambda`);
* ``'fista'`` (gradient at the extrapolated point) is offered beside SDNet's ``'sdnet_fista'``;
  with the default 2 steps all solvers coincide;
* SDNet's tiling of the input (``EXPANSION_FACTOR`` > 1), its unsquared-noise variant and its
  ignored ``PAD_MODE`` are not reproduced (every released config uses 1 / squared / zeros).

SDNet checkpoints load after renaming ``<layer>.dn.weight`` / ``<layer>.dn.step_size`` to
``<layer>.weight`` / ``<layer>.step_size``; they carry no power vector, so the first forward
re-estimates η from the weights, as SDNet's own validation loop does.

FLOPs (counted by the handles of :mod:`..flop_handles`, 1 MAC = 1 FLOP): the analysis
conv ``Aᵀx`` once plus, per later step, one synthesis and one analysis conv, each costing the
replaced layer's MACs, i.e. ``(2·num_steps − 1)·B·C_out·(C_in/groups)·(kernel volume)·(output
positions)`` (``(2·num_steps − 1)·N·m·d`` for CSCLinear), for either implementation. Thresholds,
momentum, atom normalisation and the power iteration are not counted: the power iteration runs in
training only (and once in eval before the first estimate), on one code-sized vector of at most
``power_max_size`` per dimension, costing 2 batch-1 convolutions per update (under 1 % of a B = 8,
56×56 training step), and is skipped while tracing.

Solver
------

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

Two implementations give the same result (``impl``, see :mod:`mmconv.ops.validation`):
:func:`sparse_code_reference` (``'reference'``, and what ``'auto'`` exports to ONNX) follows the SDNet
code line by line with autograd, and :func:`sparse_code` (``'fast'``; ``'auto'`` otherwise) runs the
same steps as the registered ops ``mmconv::csc_encode`` and ``mmconv::csc_step`` (:mod:`.ops`), which
work under ``torch.compile`` (fullgraph, dynamic sizes). It reuses ``η Aᵀx`` across steps, forms no
residual, folds the threshold into the first conv's bias, and saves per step only the point the
gradient was taken at, its decoding ``A p`` (or recomputes it) and a one-byte support mask, nothing
for the momentum; η and λη stay tensors, so nothing waits for the device. Both cost 2·num_steps − 1
convolutions forward. Second derivatives need ``impl='reference'``: the fast path's backward ops
refuse to be differentiated.

Package layout: :mod:`.reference` (the spec), :mod:`.dictionaries` (A and Aᵀ, power iteration),
:mod:`.ops` (the registered ops), :mod:`.solver` (the fast solver on them), :mod:`.layer` (the
step-size state shared by the layers) and :mod:`.module` (the layers).
"""
from ..validation import IMPLS
from .dictionaries import ConvDictionary, LinearDictionary, power_iteration
from .layer import COLD_POWER_ITERS, POWER_SEED, SparseCodingLayer, cold_start_vector
from .module import CSCConv1d, CSCConv2d, CSCLinear, set_csc_lambda
from .reference import SOLVERS, sparse_code_reference
from .solver import fista_momentum, sparse_code

__all__ = [
    'COLD_POWER_ITERS', 'CSCConv1d', 'CSCConv2d', 'CSCLinear', 'ConvDictionary', 'IMPLS', 'LinearDictionary',
    'POWER_SEED', 'SOLVERS', 'SparseCodingLayer', 'cold_start_vector', 'fista_momentum', 'power_iteration',
    'set_csc_lambda', 'sparse_code', 'sparse_code_reference'
]
