"""Everything mmconv configs name, registered on import.

Configs load it with ``custom_imports = dict(imports=['mmconv.models'])``. Operators, backbones and
necks register in mmengine's root ``MODELS`` so they resolve under the ``mmdet`` and ``mmpretrain``
scopes alike (and through ``build_conv_layer``); task heads and datasets register in the downstream
registries and are imported only when that downstream package is installed.
"""
from importlib.util import find_spec

from mmconv import datasets, engine  # noqa: F401  (Food101 when mmpretrain is installed; RNGStateHook)
from . import backbones, layers  # noqa: F401  (conv-layer adapters, backbones)

if find_spec('mmdet') is not None:
    from . import heads, necks  # noqa: F401  (FPN and detection heads built on mmdet's)
