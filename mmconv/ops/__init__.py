"""Operators (torch only): involution, C-volution, SCC, SCConv and convolutional sparse coding."""
from .csc import CSCConv1d, CSCConv2d, CSCLinear, set_csc_lambda
from .cvolution import CVolution
from .involution import Involution, involution_aggregate
from .scc import SCC
from .scconv import CRU, SRU, SCConv

__all__ = [
    'CRU', 'CSCConv1d', 'CSCConv2d', 'CSCLinear', 'CVolution', 'Involution', 'SCC', 'SCConv', 'SRU',
    'involution_aggregate', 'set_csc_lambda'
]
