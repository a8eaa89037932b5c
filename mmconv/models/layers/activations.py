"""Activations that configs name and mmcv does not register: Mish (the SCCNet table's ResNet34+Mish).

Misra, "Mish: A Self Regularized Non-Monotonic Activation Function", BMVC 2020.
https://arxiv.org/abs/1908.08681
"""
from mmengine.registry import MODELS
from torch import nn

__all__ = []

if 'Mish' not in MODELS.module_dict:
    MODELS.register_module(name='Mish', module=nn.Mish)
