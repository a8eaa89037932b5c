"""Layers registered for configs: the operators' conv-layer adapters."""
from .conv_adapters import CVolutionLayer, InvolutionLayer

__all__ = ['CVolutionLayer', 'InvolutionLayer']
