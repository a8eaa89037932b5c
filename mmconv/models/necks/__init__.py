"""Necks, registered in mmengine's root ``MODELS``; they extend mmdet's FPN, so this needs mmdet."""
from .operator_fpn import CVolutionFPN, InvolutionFPN, OperatorFPN

__all__ = ['CVolutionFPN', 'InvolutionFPN', 'OperatorFPN']
