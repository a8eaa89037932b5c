"""FLOP handles for operators that mmengine's jit-based counter cannot see.

mmengine's ``FlopAnalyzer`` counts convolutions and matmuls it finds in a traced graph, but a
registered op appears there as one opaque ``mmconv::<name>`` node and counts zero, and so does
``aten::baddbmm``. Each operator registers a handle for its ops here; this module depends on torch
only; the analysis layer hands them to each ``FlopAnalyzer`` it makes (its public ``set_op_handle``).

A handle has mmengine's signature ``handle(inputs, outputs) -> int``: the traced graph values of the
node's tensor inputs and outputs, returning multiply-accumulates (1 MAC = 1 FLOP, as in the papers).
"""
from typing import Any, Callable, Dict, List, Optional

FlopHandle = Callable[[List[Any], List[Any]], int]

FLOP_HANDLES: Dict[str, FlopHandle] = {}


def register_op_flop_handle(qualified_name: str) -> Callable[[FlopHandle], FlopHandle]:
    """Register ``handle`` for a dispatcher op, ``'aten::baddbmm'`` or a registered ``'mmconv::…'``."""

    def decorator(handle: FlopHandle) -> FlopHandle:
        FLOP_HANDLES[qualified_name] = handle
        return handle

    return decorator


def value_shape(value: Any) -> Optional[List[int]]:
    """Shape of a traced tensor value, or None for a non-tensor value."""
    if value.isCompleteTensor():
        return value.type().sizes()
    return None
