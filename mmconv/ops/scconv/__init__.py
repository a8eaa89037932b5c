"""SCConv: Spatial and Channel reconstruction Convolution (SRU followed by CRU).

Li, Wen, He, "SCConv: Spatial and Channel Reconstruction Convolution for Feature Redundancy",
CVPR 2023, pp. 6153-6162.
https://openaccess.thecvf.com/content/CVPR2023/html/Li_SCConv_Spatial_and_Channel_Reconstruction_Convolution_for_Feature_Redundancy_CVPR_2023_paper.html
(the authors' repository https://github.com/JavonLi/SCConv holds no code).

SRU (spatial reconstruction unit), on X (B×C1×H×W, C1 even):

    W_γ = γ / Σγ (γ, β: the GroupNorm affine),  R = sigmoid(W_γ ⊙ GN(X)),
    gate ``'soft'`` (paper default here): W1 = 1 where R > t else R,  W2 = 0 where R > t else R,
    gate ``'hard'``: W1 = [R ≥ t],  W2 = [R < t]                                 (t = 0.5),
    X1 = W1 ⊙ X,  X2 = W2 ⊙ X  (the gates multiply X, not GN(X)),
    Y = concat(X1[:C1/2] + X2[C1/2:],  X1[C1/2:] + X2[:C1/2]).

CRU (channel reconstruction unit), Y → Z (B×C2×H'×W'), split α, squeeze ratio r, GWC groups g:

    up = ⌊α·C1⌋ and low = C1 − up channels of Y, each squeezed by a 1×1 conv to us = up//r and
    ls = low//r channels;
    Y1 = GWC(S_up) + PWC1(S_up)   (k×k conv with g groups, and a 1×1 conv, both us → C2, stride s),
    Y2 = concat(PWC2(S_low), S_low[::s, ::s])   (PWC2: 1×1, ls → C2 − ls; omitted when that is 0),
    fuse ``'paper'`` (Eq. 7-9): β1 = e^{S1}/(e^{S1} + e^{S2}) per channel with S = GAP(Y),
        i.e. β1 = sigmoid(GAP(Y1 − Y2)), Z = β1·Y1 + (1 − β1)·Y2;
    fuse ``'joint'``: one softmax over all 2·C2 pooled channels, Z = β[:C2]·Y1 + β[C2:]·Y2.

Choices where the references disagree (research notes scconv_sccnet.md §1.2-§1.6, §6):

* Defaults follow the paper: α = 1/2, r = 2, g = 2, k = 3, t = 0.5, the per-channel two-way softmax
  (``fuse='paper'``) and the soft gate, which is the literal reading of "set the weights above the
  threshold to 1 ... to 0"; the hard gate also stops every gradient to GroupNorm.
  ``gate='hard'`` and ``fuse='joint'`` reproduce the popular unofficial code (cheng-haha/ScConv
  July-October 2023, also XxxxYi and the mmengine variant), which many published results used.
* GroupNorm is ``nn.GroupNorm`` (γ = 1, β = 0 at init, so Σγ stays away from 0) with 4 groups, the
  cheng-haha wrapper's default; the count is reduced to gcd(C1, gn_groups) so every even width works.
  Σγ is a tensor sum (upstream's Python ``sum`` launches C adds) and the gate is computed in fp32.
* The paper gives no bias to GWC (Eq. 11); ``gwc_bias=True`` adds cheng-haha's bias.
* C1 ≠ C2 uses the paper's general form (Eq. 11); cheng-haha's code has one width only. For a
  DenseNet layer (128 → 32) PWC2 has 0 outputs and the lower branch is pure reuse.
* Stride (the paper is silent): on GWC, PWC1 and PWC2, with the reused S_low subsampled
  ``[::s, ::s]``; the squeeze and the SRU run at the input resolution. Odd sizes with stride 2
  give ⌈H/2⌉ rows on every branch.

Parameters per layer (α = 1/2, r = 2, g = 2, k = 3, no GWC bias): 2·C1 (GN) + C1²/4 (squeezes) +
9·(C1/4)·C2/2 (GWC) + (C1/4)·C2 (PWC1) + (C1/4)·(C2 − C1/4) (PWC2); 29·C²/16 + 2C for C1 = C2 = C,
against 9·C² for a 3×3 conv.

Implementations (``impl``):

* ``'reference'``: the :class:`SRU` and :class:`CRU` modules, written plainly. Autograd keeps about
  ten activation-sized tensors (GN output, reweights, masks, both gated copies, squeezed maps,
  branch outputs, concatenations, the weighted product).
* ``'fast'`` (``'auto'``): two registered ops (:mod:`.ops`, kernels in :mod:`.kernels`) with the
  same results. ``mmconv::sru_squeeze`` maps X to the squeezed S (B×(us+ls)×H×W) and saves only X
  (backward recomputes the gate); ``mmconv::cru`` maps S to Z and saves only S and Y1 − Y2 (the paper
  fuse needs nothing else;
  ``'joint'`` also keeps Y2). The 1×1 convs are batched matmuls (no oneDNN layout reorders), the
  gates use 0/1 float masks instead of ``torch.where``, and the fuse is one in-place
  Z = Y2 + β1·(Y1 − Y2). Every step is per image (GroupNorm and the fuse pools included), so on CPU
  both ops walk the batch in chunks of about 2 MiB per map (:mod:`mmconv.ops.cpu_chunks`):
  the dozen elementwise passes of the gate and the fuse then run in the caches instead of streaming
  the whole batch from memory each time (measured on a 2-core EPYC, B=8, C=64, 56², against the
  whole-batch passes in interleaved runs: 6-15 % less time for the layer). Results agree with the
  reference to rounding (fp64: ~1e-15), whatever the chunking. Their backward ops are not
  differentiable: second derivatives raise one sentence naming ``impl='reference'``.

FLOPs (mmengine counter with mmconv's handles): the convs' MACs, GroupNorm at 5 per element and the
pooling of Y1 and Y2 at 1 per element, as mmengine counts the reference modules, whichever path runs.
"""
from .module import SCConv
from .reference import CRU, FUSES, GATES, SRU, cru_widths

__all__ = ['CRU', 'FUSES', 'GATES', 'SCConv', 'SRU', 'cru_widths']
