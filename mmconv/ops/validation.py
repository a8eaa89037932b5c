"""Argument checks and the ``impl`` vocabulary shared by every operator.

Every operator takes ``impl`` from :data:`IMPLS`:

* ``'reference'``: the spec, a short composition of torch ops (each operator's ``reference.py``);
* ``'fast'``: the operator's registered ``mmconv::`` ops (CPU kernels, and Triton or composite
  kernels on CUDA), which keep less for backward and run faster;
* ``'auto'``: ``'fast'``, except while a model is being exported to ONNX, where the reference's
  torch ops are what the exporter can translate (the two agree to rounding).
"""
from typing import Any, Iterable

import torch

__all__ = ['IMPLS', 'check_choice', 'check_impl', 'check_positive', 'check_positive_odd', 'use_reference']

IMPLS = ('auto', 'fast', 'reference')


def check_positive(name: str, value: Any) -> None:
    """Raise a ValueError unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive integer, got {value!r}.')


def check_positive_odd(name: str, value: Any) -> None:
    """Raise a ValueError unless ``value`` is a positive odd integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f'{name} must be a positive odd integer, got {value!r}.')


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise a ValueError unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f'{name} must be one of {allowed}, got {value!r}.')


def check_impl(impl: Any) -> None:
    """Raise a ValueError unless ``impl`` is one of :data:`IMPLS`."""
    check_choice('impl', impl, IMPLS)


def use_reference(impl: str) -> bool:
    """Whether an operator called with ``impl`` runs its reference composition now.

    During ONNX export the registered ops are opaque to the exporter (it would refuse them), so every
    ``impl`` exports through the reference, which computes the same function.
    """
    return impl == 'reference' or torch.onnx.is_in_onnx_export()
