"""Initialisation of the involution / C-volution layers inside detection necks and heads.

``'variance_preserving'`` (default) re-initialises each involution's span conv so that the layer
starts as a static kernel that scales its input's second moment like the conv it replaces would
(:meth:`mmconv.ops.Involution.init_span_variance_preserving`); ``'official'`` keeps the official
code's init (Kaiming fan_out in the heads, Xavier in the FPN), under which each 7×7 involution about
doubles the rms of its input and, being quadratic in it, fattens the tails: a four-involution mask
head on RoI features starts with mask logits in the hundreds.
Both keep the state-dict layout, so official checkpoints load either way.
"""
from torch import nn

from mmconv.ops import Involution
from mmconv.ops.validation import check_choice

__all__ = ['OPERATOR_INITS', 'check_operator_init', 'init_involution_spans']

OPERATOR_INITS = ('variance_preserving', 'official')


def check_operator_init(op_init: str) -> None:
    """Raise a ValueError unless ``op_init`` is one of :data:`OPERATOR_INITS`."""
    check_choice('op_init', op_init, OPERATOR_INITS)


def init_involution_spans(module: nn.Module, op_init: str, gain: float) -> None:
    """Under ``'variance_preserving'``, re-initialise the span conv of every involution (C-volution
    included) in ``module`` for ``gain`` (2 where a ReLU follows, 1 where nothing does)."""
    if op_init == 'official':
        return
    for layer in module.modules():
        if isinstance(layer, Involution):
            layer.init_span_variance_preserving(gain)
