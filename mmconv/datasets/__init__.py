"""Datasets and the checks tools run on them before any work.

Food-101 registers in mmpretrain's registry and is imported only when mmpretrain is installed.
"""
from importlib.util import find_spec

__all__ = []
if find_spec('mmpretrain') is not None:
    from .food101 import Food101

    __all__ += ['Food101']
