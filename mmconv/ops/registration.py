"""Conventions for the operators' registered ``mmconv::`` ops (``torch.library.custom_op``).

Each operator's fast path is one or more custom ops with a CPU kernel, a CUDA kernel, a fake kernel
(exact output shapes, also for symbolic sizes) and autograd through ``register_autograd``. Backward
kernels are custom ops too; where they are not themselves differentiable,
:func:`refuse_second_order` makes differentiating them raise one sentence instead of treating them
as constants (which would give a wrong second derivative).
"""
from typing import Any

__all__ = ['NAMESPACE', 'refuse_second_order']

NAMESPACE = 'mmconv'


def refuse_second_order(backward_op: Any, operator: str) -> None:
    """Make differentiating ``backward_op`` (a custom op) raise a RuntimeError naming ``operator``."""

    def setup_context(ctx, inputs, output) -> None:
        pass

    def backward(ctx, *grads):
        raise RuntimeError(f"Second derivatives through {operator}'s fast path are not implemented; "
                           f"build it with impl='reference' to differentiate twice.")

    backward_op.register_autograd(backward, setup_context=setup_context)
