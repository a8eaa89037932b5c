"""SCCNet: a ResNet whose every 3×3 conv is a Subspace Combination Convolution, with no activation.

SCCNet, "Subspace Combination Convolutional Network For Image Classification" (R. Zou), code and
ImageNet results at https://github.com/Raven-Z-china/SCCNet.
"""
from typing import Optional

from mmengine.model.weight_init import BaseInit, update_init_info
from mmengine.registry import MODELS, WEIGHT_INITIALIZERS
from torch import nn

from .operator_resnet import OperatorResNet

__all__ = ['SCCNet', 'UniformParamsInit']

# Projection shortcut of the first block of stages 2-4 (the SCCNet table's "Downsample" column):
# (kernel size, operator type), each followed by BN.
DOWNSAMPLES = {
    'conv1x1': (1, None),
    'conv3x3': (3, None),
    'conv5x5': (5, None),
    'scc3x3': (3, 'SCC'),
    'scc5x5': (5, 'SCC'),
}


@WEIGHT_INITIALIZERS.register_module(name='UniformParams')
class UniformParamsInit(BaseInit):
    """U(a, b) on every parameter of the matched layers (SCC's bias, α and β, not just its weight).

    mmengine's ``Uniform`` initialises ``weight`` and fills ``bias`` with a constant; SCCNet draws
    all four SCC parameters from U(−1, 1).

    Args:
        a (float): Lower bound. Defaults to -1.
        b (float): Upper bound. Defaults to 1.
        layer (str | list[str]): Class names (or direct base-class names) of the layers.
    """

    def __init__(self, a: float = -1.0, b: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.a = a
        self.b = b

    def __call__(self, module: nn.Module) -> None:

        def init(m: nn.Module) -> None:
            names = {type(m).__name__} | {base.__name__ for base in type(m).__bases__}
            if self.wholemodule or names & set(self.layer):
                for param in m.parameters(recurse=False):
                    nn.init.uniform_(param, self.a, self.b)

        module.apply(init)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return f'{type(self).__name__}: a={self.a}, b={self.b} on every parameter'


@MODELS.register_module()
class SCCNet(OperatorResNet):
    """SCCNet-18/34: ResNet basic blocks with SCC 3×3 convs and no activation anywhere.

    Released SCCNet34 (ImageNet, 1000 classes): every block conv (32 of them) is an SCC 3×3,
    the stride sitting on the first conv of stages 2-4; the stem is a 7×7 stride-2 conv → BN →
    3×3 stride-2 max-pool; blocks are ``SCC → BN → SCC → BN → + shortcut``. There is no ReLU in the
    stem, inside the blocks or after the sums: SCC's per-pixel kernel selection (and the max-pool)
    is the only nonlinearity. The four published variants differ only in the projection shortcut
    (``downsample``): 21.84 / 25.98 / 23.22 / 25.98 M parameters for Conv1x1 / Conv5x5 / SCC 3×3 /
    SCC 5×5; the released code and checkpoint use SCC 5×5.

    Init as upstream: Kaiming (fan_out) on the plain convs, U(−1, 1) on every SCC parameter (weight,
    bias, α, β), BN weight 1 and bias 0, no zero-initialised residual norm.

    Args:
        depth (int): 18 or 34. Defaults to 34.
        downsample (str): Projection shortcut: ``'conv1x1'``, ``'conv3x3'``, ``'conv5x5'``,
            ``'scc3x3'`` or ``'scc5x5'``. Defaults to ``'scc5x5'``.
        mask_prob (float): SCC's training-time forcing probability p. Defaults to 0.005.
        impl (str): SCC implementation (``'auto'``, ``'fast'``, ``'reference'``). Defaults to
            ``'auto'``.
        stem_type (str): ``'conv7'`` (released, ImageNet) or ``'conv3'`` (3×3 stride 1, for
            32×32 CIFAR images), followed by BN only. Defaults to ``'conv7'``.
        stem_pool (str, optional): ``'max'`` (released) or None (CIFAR). Defaults to ``'max'``.
        **kwargs: :class:`OperatorResNet` arguments (``out_indices``, ``frozen_stages``,
            ``norm_eval``, ``with_cp``...).

    Shape:
        x: B×3×H×W → tuple of B×(64·2^i)×ceil(H/2^(i+2))×ceil(W/2^(i+2)) for i in ``out_indices``.
    """

    depths = (18, 34)

    def __init__(self, depth: int = 34, downsample: str = 'scc5x5', mask_prob: float = 0.005, impl: str = 'auto',
                 stem_type: str = 'conv7', stem_pool: Optional[str] = 'max', init_cfg=None, **kwargs):
        if depth not in self.depths:
            raise ValueError(f'SCCNet depth must be one of {self.depths}, got {depth!r}.')
        if downsample not in DOWNSAMPLES:
            raise ValueError(f'downsample must be one of {tuple(DOWNSAMPLES)}, got {downsample!r}.')
        scc_cfg = dict(type='SCC', mask_prob=mask_prob, impl=impl)
        kernel_size, op_type = DOWNSAMPLES[downsample]
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
                dict(type='UniformParams', a=-1.0, b=1.0, layer='SCC')
            ]
        kwargs.setdefault('zero_init_residual', False)
        super().__init__(depth, stem_type=stem_type, stem_pool=stem_pool, op_cfg=scc_cfg,
                         downsample_kernel_size=kernel_size, downsample_conv_cfg=scc_cfg if op_type else None,
                         act_cfg=None, act_positions=(), init_cfg=init_cfg, **kwargs)
