"""Detection heads, registered in mmdet's ``MODELS``; importing this package needs mmdet."""
from .operator_mask_head import InvolutionFCNMaskHead, OperatorFCNMaskHead
from .operator_rpn_head import InvolutionRPNHead, OperatorRPNHead

__all__ = ['InvolutionFCNMaskHead', 'InvolutionRPNHead', 'OperatorFCNMaskHead', 'OperatorRPNHead']
