"""Layers registered for configs: the operators' conv-layer adapters and the Mish activation."""
from . import activations  # noqa: F401  (registers Mish)
from .conv_adapters import ConvAdapter, CSCConv2dLayer, CVolutionLayer, InvolutionLayer, SCCLayer, SCConvLayer

__all__ = ['ConvAdapter', 'CSCConv2dLayer', 'CVolutionLayer', 'InvolutionLayer', 'SCCLayer', 'SCConvLayer']
