"""C-volution: involution whose output is rescaled per channel by a global channel branch (CedNet).

"C-volution: A Hybrid Operator for Visual Recognition", PRCV 2023 (paper not publicly available).
https://github.com/nightmareisme/c-volution

What was reconstructed, and why. The operator's source (``models/add/cvolution.py``) was public only
from April to August 2023 and has since been deleted from the repository; the current README says
the code "will be available soon". The recovered file, read for semantics only (the repository has
no licence), computes

* a spatial branch identical to involution's kernel generator, except that its first 1×1 conv has a
  bias (redundant before BN, kept for parameter parity);
* a channel branch ``a = GAP(conv_q(x))``: a grouped 3×3 conv (C → C, groups 16 in the
  classification code, 4 in the detection neck, no bias) followed by a global average pool, with no
  sigmoid;
* ``out = InvolutionAggregate(x ⊙ a, kernel(x))``.

Because the kernel is generated from the unscaled ``x`` and ``a`` is constant over space, this equals
``a ⊙ InvolutionAggregate(x, kernel(x))``, which is what the default path computes: a post-multiply
after the registered aggregation (:mod:`mmconv.ops.involution`), with no extra B×C×H×W input
temporary. The fast path also gets ``a`` without running ``conv_q`` over the image
(``mmconv::channel_branch_mean`` in :mod:`.channel_branch`: the mean of a conv is the conv of
per-tap window sums); the reference path runs conv then pool. A
CedNet-50 rebuilt with this design has 16.25 M parameters and about 2.85 GMACs, consistent with
the claimed 16.3 M / 2.9 G.

Fixed here: the released conv_q used ``padding=kernel_size // 2`` of the involution kernel (3 for
K = 7) on a 3×3 conv, so the pooled mean included zero borders and depended on the resolution; we pad
by ``cq_kernel // 2``. The released forward also called the autograd Function class instead of
``.apply``, did not pass dilation, and needed CuPy; none of that carries over.

Alternatives, as options: ``gate='sigmoid'`` squashes ``a`` SE-style (more stable in necks with no
norm after the operator); ``kernel_from='gated'`` follows the May-2023 abstract ("use channel
information to promote the generation of dynamic kernels"): the kernel is generated from
``x ⊙ a`` and aggregates ``x ⊙ a``. Both keep the parameters and MACs.
"""
from .channel_branch import channel_branch_mean
from .module import CVolution

__all__ = ['CVolution', 'channel_branch_mean']
