"""Datasets registered in mmpretrain's registry (imported only when mmpretrain is installed)."""
from .food101 import Food101

__all__ = ['Food101']
