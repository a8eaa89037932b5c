"""mmconv: involution, C-volution, SCC, SCConv and convolutional sparse coding for OpenMMLab.

``import mmconv`` needs only torch. When mmengine is installed, importing mmconv also makes
mmengine load checkpoints safely on torch >= 2.6 (see :mod:`mmconv.engine.checkpoint`).
"""
from importlib.util import find_spec

__version__ = '0.1.0'

if find_spec('mmengine') is not None:
    from .engine.checkpoint import enable_safe_checkpoint_loading

    enable_safe_checkpoint_loading()

__all__ = ['__version__']
