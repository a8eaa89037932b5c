"""Backbones, registered in mmengine's root ``MODELS`` (usable from mmpretrain and mmdet configs)."""
from .cednet import CedNet
from .densenet import OperatorDenseNet
from .operator_resnet import OperatorResNet
from .rednet import RedNet
from .sccnet import SCCNet
from .scconv_resnet import SCConvResNet
from .sdnet import SDNet

__all__ = ['CedNet', 'OperatorDenseNet', 'OperatorResNet', 'RedNet', 'SCConvResNet', 'SCCNet', 'SDNet']
