"""Training-loop additions registered in mmengine's root registries."""
from .hooks import RNGStateHook
from .optim_wrappers import CPUBF16AutocastOptimWrapper

__all__ = ['CPUBF16AutocastOptimWrapper', 'RNGStateHook']
