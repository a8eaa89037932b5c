"""SDNet: a ResNet with convolutional sparse coding (CSC) layers in place of convolutions.

Dai et al., "Revisiting Sparse Convolutional Model for Visual Recognition", NeurIPS 2022.
https://arxiv.org/abs/2210.12945 (official code: https://github.com/Delay-Xili/SDNet)
"""
from typing import Callable, Dict, Optional, Union

from mmengine.registry import MODELS
from torch import nn

from mmconv.ops.csc import set_csc_lambda
from .operator_resnet import OperatorResNet

__all__ = ['SDNet']

CSC_LAYERS = ('stem', 'all')
STEMS = ('cifar', 'imagenet')


@MODELS.register_module()
class SDNet(OperatorResNet):
    """SDNet-18/34 (CSC stem) and SDNet-18/34-all (every 3×3 conv is CSC), CIFAR or ImageNet stem.

    ``csc_layers='stem'`` (SDNet-18): a ResNet whose stem conv is a CSC layer followed by BN and
    no ReLU (the codes are non-negative already): CIFAR ``CSC 3×3 s1 → BN``, ImageNet
    ``CSC 7×7 s2 → BN → max-pool``; the blocks are standard (ReLU inside and after the sum).

    ``csc_layers='all'`` (SDNet-18-all): both 3×3 convs of every block are CSC layers and blocks
    have no ReLU inside; ``shortcut=True`` adds the (plain 1×1 conv + BN) shortcut and a ReLU after
    the sum, ``shortcut=False`` drops both, leaving the non-negative codes as the only
    nonlinearity. The ImageNet stem is ``CSC 7×7 s2 → BN → CSC 3×3 s2`` (the second CSC replaces
    the max-pool and has no BN).

    Parameters equal those of the matching ResNet (a CSC layer has its conv's weight); each CSC
    layer adds the buffers ``step_size`` and ``power_vector``. λ can be changed per layer at any
    time, e.g. at test time for corrupted inputs, with :meth:`set_lambda`.

    Args:
        depth (int): 18 or 34. Defaults to 18.
        csc_layers (str): ``'stem'`` or ``'all'``. Defaults to ``'stem'``.
        shortcut (bool): Skip connections in the blocks; only ``csc_layers='all'`` can drop them.
            Defaults to True.
        stem (str): ``'cifar'`` or ``'imagenet'``. Defaults to ``'imagenet'``.
        lam (float): λ of every CSC layer during training. Defaults to 0.1.
        num_steps (int): Unrolled proximal-gradient steps of every CSC layer. Defaults to 2.
        csc_kwargs (dict, optional): Further :class:`~mmconv.ops.csc.CSCConv2d` arguments
            (``solver``, ``power_interval``, ``recompute``, ``impl``...).
        **kwargs: :class:`OperatorResNet` arguments (``out_indices``, ``frozen_stages``,
            ``norm_eval``, ``with_cp``...). ``zero_init_residual`` defaults to False, as in SDNet.

    Shape:
        x: B×3×H×W → tuple of B×(64·2^i)×ceil(H/S_i)×ceil(W/S_i) for i in ``out_indices``, with
        S_i = 2^i (CIFAR stem) or 4·2^i (ImageNet stem).
    """

    depths = (18, 34)

    def __init__(self, depth: int = 18, csc_layers: str = 'stem', shortcut: bool = True, stem: str = 'imagenet',
                 lam: float = 0.1, num_steps: int = 2, csc_kwargs: Optional[dict] = None, **kwargs):
        if depth not in self.depths:
            raise ValueError(f'SDNet depth must be one of {self.depths}, got {depth!r}.')
        if csc_layers not in CSC_LAYERS:
            raise ValueError(f'csc_layers must be one of {CSC_LAYERS}, got {csc_layers!r}.')
        if stem not in STEMS:
            raise ValueError(f'stem must be one of {STEMS}, got {stem!r}.')
        if not shortcut and csc_layers == 'stem':
            raise ValueError("shortcut=False needs csc_layers='all' (SDNet-18-all without "
                             "shortcut); SDNet-18 always has its shortcuts.")
        csc_cfg = dict(type='CSCConv2d', lam=lam, num_steps=num_steps, **(csc_kwargs or {}))
        imagenet = stem == 'imagenet'
        if csc_layers == 'stem':
            layout = dict(stem_pool='max' if imagenet else None, op_cfg=None, act_positions=('block', 'residual'))
        else:
            layout = dict(stem_pool='op' if imagenet else None, op_cfg=csc_cfg,
                          act_positions=('residual', ) if shortcut else (), residual=shortcut)
        kwargs.setdefault('zero_init_residual', False)
        super().__init__(depth, stem_type='conv7' if imagenet else 'conv3', stem_op_cfg=csc_cfg, **layout, **kwargs)

    def set_lambda(self, lam: float, layer_filter: Union[None, str, Callable[[str, nn.Module],
                                                                             bool]] = None) -> Dict[str, float]:
        """Set λ of the CSC layers, all or some (e.g. only the stem, ``layer_filter='^conv1$'``).

        Args:
            lam (float): The new λ (non-negative).
            layer_filter (None | str | callable): All CSC layers (None), those whose qualified
                name matches this regular expression, or those for which
                ``layer_filter(name, layer)`` is true.

        Returns:
            dict[str, float]: The previous λ of every changed layer (pass values back to restore).
        """
        return set_csc_lambda(self, lam, layer_filter)
