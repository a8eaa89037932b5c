"""Subspace Combination Convolution (SCC): nested centred sub-kernels chosen per output by a running max.

SCCNet, "Subspace Combination Convolutional Network For Image Classification" (R. Zou), code and
ImageNet results at https://github.com/Raven-Z-china/SCCNet (no paper text is public).

One K×K weight W (K odd, c = K // 2) holds L = c + 1 nested centred sub-kernels W_i of size
(2i+1)×(2i+1), i = 0..c. Level i has its own bias b_i and affine gain/offset, and responds

    r_i = conv(x, W_i, stride s, padding i·d, dilation d) + b_i,
    T_i(r) = r · (1 + tanh α_i) + β_i        (per output channel; the gain lies in (0, 2)).

Every level is centred on the same input pixel, so all have ⌊(H − 1)/s⌋ + 1 rows for any H and
stride (odd sizes with stride 2 included). Per output element the level ``idx`` is chosen by a
running maximum over the *raw* responses with a strict ``>``, i.e. the first argmax (ties go to the
smaller kernel), and the output is ``T_idx(r_idx)``. SCC has no separate activation: the selection
is the nonlinearity.

Training-time lock mask (ε-greedy exploration): the upstream code forces, per element, level 0 with
probability p (``mask_prob``) and then level i with probability p/(1 − i·p) unless an earlier level
locked the element; a forced level wins over every later level. This follows the later upstream fix
(2025-12-31, research notes §3.2), under which each level is forced with probability exactly p and
the natural argmax is used with probability 1 − L·p. The seed code already has the earlier lock fix
(``lock | select``; the first upload had ``lock & select``) but forces every level i ≥ 1 with p,
i.e. level i with probability p·(1 − p)^i.

Random numbers: instead of L uniform maps per forward, one fp32 uniform map u of the output's shape
is drawn, and an element is forced to level ⌊u/p⌋ where u < L·p (:func:`.reference.draw_forced_levels`,
an int8 map, −1 where nothing is forced). The joint law of the forced levels is exactly the
upstream one (each level with probability p, up to u's 2⁻²⁴ resolution); the stream is not. The
draw stays out of the autocast dtype (upstream's ``rand_like`` in bf16 lowers the effective p to
0.0039), has a fixed shape (so it compiles), and both implementations consume the same map, so
train-mode outputs agree given the same RNG state. In eval mode nothing is drawn and the op is
deterministic.

Implementations (``impl``):

* ``'reference'``: the upstream algorithm written out level by level (one conv per level, the
  running max and the lock), kept plain for tests. Autograd saves every level's response and mask.
* ``'fast'`` (``'auto'``): the registered ``mmconv::scc_forward`` / ``mmconv::scc_backward``
  (:mod:`.ops`, kernels in :mod:`.kernels`; any device). Forward runs one conv per level ≥ 1 and the 1×1
  level as a batched matmul, then an in-place select/affine epilogue that picks levels with
  ``lerp`` by 0/1 float masks (exact at 0 and 1; the CPU ``torch.where`` kernel is ~4× slower).
  Backward saves only ``x`` and the selected level as int8: the per-level gain is folded into the
  (tiny) weights instead of the activations, level 0 is folded into the other levels (see
  :func:`.kernels.scc_backward_kernel`), and dα_i needs Σ g·r_i over the elements that chose level i, which
  equals ⟨W_i, ∂L/∂W_i'⟩ + b_i · Σ g (∂L/∂W_i' = the weight gradient of level i without its
  gain), so no response is stored or recomputed.

  Cost: the levels are dense convs, Σ_i (2i+1)² taps per output: 10/9 of a 3×3 conv for K = 3 and
  35/25 of a 5×5 conv for K = 5. Computing every level for exactly K² taps needs a tap-ordered
  kernel that snapshots its accumulator at each ring. With library kernels on CPU nothing does
  better than one dense conv per level (measured on a 2-core EPYC, B=8, C=64, 56²): the per-tap
  shift-and-matmul loop takes 1.6-2.2× the time of one oneDNN 5×5 conv, im2col plus ring-ordered
  matmuls 1.9×, and rings built from strip convs ((2, 2i+1) and (2i−1, 2) kernels with dilation
  2i) 1.1× more than the dense level they replace. ``tools/analysis_tools/benchmark_ops.py``
  prints that floor (the dense level convs alone) beside the fast path.

Parameters keep the upstream names and shapes (``weight`` (C_out, C_in/groups, K, K), ``bias``
(L, C_out), ``alpha`` and ``beta`` (L, C_out, 1, 1)) so SCCNet checkpoints load unchanged, and the
module initialiser is upstream's (weight U(−0.2, 0.2); bias, α, β U(−2, 2); SCCNet re-initialises
every SCC with U(−1, 1)). Unlike upstream, ``groups`` is honoured (the weight has C_in/groups input
channels; upstream's ``groups > 1`` cannot run). FLOPs: every nested conv is counted, as in the
SCCNet table (an SCC 3×3 costs a 1×1 plus a 3×3 conv).

The backward op is not differentiable: second derivatives through the fast path raise one sentence
(``impl='reference'`` differentiates twice).
"""
from .module import SCC
from .reference import draw_forced_levels, scc_reference

__all__ = ['SCC', 'draw_forced_levels', 'scc_reference']
