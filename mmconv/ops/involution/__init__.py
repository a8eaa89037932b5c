"""Involution: a K×K kernel generated per pixel from that pixel's features, shared by channel groups.

Li et al., "Involution: Inverting the Inherence of Convolution for Visual Recognition", CVPR 2021.
https://arxiv.org/abs/2103.06255 (official code: https://github.com/d-li14/involution)

For input ``x`` (B×C×H×W), stride ``s``, G = C / group_channels kernel groups:

* kernel generation: ``x̄ = AvgPool_s(x)`` (``x`` when s = 1), then
  ``kernel = conv2(ReLU(BN(conv1(x̄))))`` with conv1 a 1×1 C → C/r conv without bias and conv2 a
  1×1 C/r → K²·G conv with bias, viewed as B×G×K²×H'×W';
* aggregation: ``y[b, c, i, j] = Σ_{u,v} kernel[b, c // group_channels, u·K + v, i, j] ·
  x[b, c, s·i − p + d·u, s·j − p + d·v]`` with zero padding p = d·(K − 1)/2.

Files: :mod:`.reference` (the aggregation by unfold: the spec; it keeps a K²-times-the-input tensor
for backward), :mod:`.ops` (the registered ``mmconv::involution_aggregate`` and its two gradient ops,
each differentiable, so every order of derivative is exact), :mod:`.tap_loop` (their kernels for any
device: a loop over the K² taps that saves only ``x`` and the kernel), :mod:`.triton_kernels` (fused
CUDA kernels) and :mod:`.module` (:class:`Involution`).
"""
from .module import ConvNormAct, Involution, involution_aggregate
from .reference import aggregate_reference, aggregation_output_size

__all__ = ['ConvNormAct', 'Involution', 'aggregate_reference', 'aggregation_output_size', 'involution_aggregate']
