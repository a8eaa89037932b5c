"""Operators (torch only): involution, C-volution, SCC, SCConv and convolutional sparse coding."""
from .involution import Involution, involution_aggregate  # noqa: F401
from .cvolution import CVolution  # noqa: F401
from .scc import SCC  # noqa: F401
from .scconv import CRU, SCConv, SRU  # noqa: F401
from .csc import CSCConv1d, CSCConv2d, CSCLinear, set_csc_lambda  # noqa: F401
