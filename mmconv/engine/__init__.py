"""Training-loop additions registered in mmengine's root registries."""
from .hooks import RNGStateHook

__all__ = ['RNGStateHook']
