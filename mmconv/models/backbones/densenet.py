"""A DenseNet whose dense-layer 3×3 convolution is a conv-layer config argument.

Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.
https://arxiv.org/abs/1608.06993

DenseNet-121 and SCConv-DenseNet121 (Li et al., "SCConv: Spatial and Channel Reconstruction
Convolution for Feature Redundancy", CVPR 2023) are this one skeleton: ``op_cfg=None`` builds the
plain 3×3 convolution of every dense layer, ``op_cfg=dict(type='SCConv')`` the SCConv that maps the
bottleneck width ``bn_size·growth_rate`` (128) to ``growth_rate`` (32) channels. Any layer with
the conv-layer signature fits (it is built with ``mmcv.cnn.build_conv_layer``).

Layout (torchvision's DenseNet-BC): stem (7×7 stride-2 conv → norm → act → 3×3 stride-2 max-pool
for ImageNet, a 3×3 stride-1 conv for CIFAR), then four stages. Stage i > 0 starts with a
transition (norm → act → 1×1 conv compressing the width by ``compression`` → 2×2 average pool),
then a dense block of pre-activation layers ``norm → act → 1×1 conv (→ bn_size·growth_rate) →
norm → act → op (→ growth_rate)`` whose outputs are concatenated to their input. The last stage
ends with a norm and an activation. Stage i outputs stride 4·2^i (ImageNet stem), so the same
backbone feeds mmdet necks; the transition that halves a stage's resolution belongs to the next
stage, as the strided first block of a ResNet stage does.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import nn

from .staged_backbone import StagedBackbone

__all__ = ['DenseLayer', 'DenseBlock', 'Transition', 'OperatorDenseNet']

STEM_TYPES = ('conv7', 'conv3')


class DenseLayer(BaseModule):
    """Pre-activation bottleneck layer: ``norm → act → 1×1 conv → norm → act → op``.

    Args:
        in_channels (int): Width of the concatenated input features.
        growth_rate (int): Output channels (k).
        bn_size (int): The 1×1 conv outputs ``bn_size · growth_rate`` channels. Defaults to 4.
        op_cfg (dict, optional): Conv-layer config of the 3×3 slot; None builds ``nn.Conv2d``.
        conv_cfg (dict, optional): Conv config of the 1×1 conv.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to ``dict(type='ReLU')``.
        drop_rate (float): Dropout probability on the output. Defaults to 0.
        with_cp (bool): Recompute the layer in backward instead of storing its activations.
        init_cfg (dict or list[dict], optional): Initialization config.

    Shape:
        features: tensors B×C_j×H×W with Σ C_j = ``in_channels`` → B×growth_rate×H×W.
    """

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int = 4, op_cfg: Optional[dict] = None,
                 conv_cfg: Optional[dict] = None, norm_cfg: dict = dict(type='BN'), act_cfg: dict = dict(type='ReLU'),
                 drop_rate: float = 0.0, with_cp: bool = False, init_cfg=None):
        super().__init__(init_cfg)
        mid_channels = bn_size * growth_rate
        self.with_cp = with_cp
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, in_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.act1 = build_activation_layer(act_cfg)
        self.conv1 = build_conv_layer(conv_cfg, in_channels, mid_channels, 1, bias=False)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, mid_channels, postfix=2)
        self.add_module(self.norm2_name, norm2)
        self.act2 = build_activation_layer(act_cfg)
        self.conv2 = build_conv_layer(op_cfg, mid_channels, growth_rate, 3, stride=1, padding=1, bias=False)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()

    @property
    def norm1(self) -> nn.Module:
        """The norm of the concatenated input."""
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        """The norm before the operator slot."""
        return getattr(self, self.norm2_name)

    def _inner_forward(self, *features: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.act1(self.norm1(torch.cat(features, dim=1))))
        return self.drop(self.conv2(self.act2(self.norm2(out))))

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        # Checkpointing includes the concatenation, the largest tensor the layer would keep.
        if self.with_cp and any(f.requires_grad for f in features):
            return cp.checkpoint(self._inner_forward, *features, use_reentrant=False)
        return self._inner_forward(*features)


class DenseBlock(nn.ModuleList):
    """``num_layers`` dense layers, each seeing the concatenation of the input and all previous
    outputs.

    Args:
        num_layers (int): Number of dense layers.
        in_channels (int): Input channels.
        growth_rate (int): Channels each layer adds.
        **layer_kwargs: :class:`DenseLayer` arguments.

    Shape:
        x: B×in_channels×H×W → B×(in_channels + num_layers·growth_rate)×H×W.
    """

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, **layer_kwargs):
        super().__init__(
            DenseLayer(in_channels + i * growth_rate, growth_rate, **layer_kwargs) for i in range(num_layers))
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: List[torch.Tensor] = [x]
        for layer in self:
            features.append(layer(features))
        return torch.cat(features, dim=1)


class Transition(nn.Sequential):
    """``norm → act → 1×1 conv → 2×2 stride-2 average pool`` between dense blocks.

    The pool runs in ceil mode without counting padding, so an odd side n becomes ceil(n / 2);
    even sides give exactly DenseNet's floor-mode result.

    Shape:
        x: B×in_channels×H×W → B×out_channels×ceil(H/2)×ceil(W/2).
    """

    def __init__(self, in_channels: int, out_channels: int, conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'), act_cfg: dict = dict(type='ReLU')):
        super().__init__()
        self.add_module('norm', build_norm_layer(norm_cfg, in_channels)[1])
        self.add_module('act', build_activation_layer(act_cfg))
        self.add_module('conv', build_conv_layer(conv_cfg, in_channels, out_channels, 1, bias=False))
        self.add_module('pool', nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False))


@MODELS.register_module()
class OperatorDenseNet(StagedBackbone):
    """DenseNet-BC with the dense layers' 3×3 convolution given as a conv-layer config.

    With ``op_cfg=None`` and ``arch='121'`` this is DenseNet-121 (7.06 M parameters and 2.90
    GFLOPs with a 100-class head at 224²); ``op_cfg=dict(type='SCConv')`` makes it
    SCConv-DenseNet121 (5.50 M, 1.98 G). Registered under a name of its own because mmpretrain
    already owns ``DenseNet``.

    Args:
        arch (str | dict): ``'121'``, ``'169'``, ``'201'`` or ``'161'``, or a dict with
            ``growth_rate``, ``depths`` (dense layers per stage) and ``init_channels`` (stem
            width). Defaults to ``'121'``.
        in_channels (int): Input image channels. Defaults to 3.
        bn_size (int): Bottleneck width factor of the dense layers. Defaults to 4.
        compression (float): Width factor of the transitions (θ). Defaults to 0.5.
        drop_rate (float): Dropout after every dense layer. Defaults to 0.
        stem_type (str): ``'conv7'``: 7×7 stride-2 conv → norm → act → 3×3 stride-2 max-pool
            (ImageNet); ``'conv3'``: 3×3 stride-1 conv (CIFAR, as in the paper's CIFAR
            DenseNet-BC). Defaults to ``'conv7'``.
        op_cfg (dict, optional): Conv-layer config of every dense layer's 3×3 slot
            (``bn_size·growth_rate`` → ``growth_rate`` channels). Defaults to None (conv).
        conv_cfg (dict, optional): Conv config of the stem and the 1×1 convs.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activation config. Defaults to ``dict(type='ReLU', inplace=True)``.
        out_indices (Sequence[int]): Stages whose outputs ``forward`` returns. Defaults to (3,).
        frozen_stages (int): Freeze the stem (0) and the first ``frozen_stages`` stages
            (parameters fixed, norms in eval mode); -1 freezes nothing. Defaults to -1.
        norm_eval (bool): Keep every BN in eval mode during training. Defaults to False.
        with_cp (bool): Recompute each dense layer in backward instead of storing its
            activations. Defaults to False.
        init_cfg (dict or list[dict], optional): Initialization config. Defaults to Kaiming
            (fan_out) for convs and 1/0 for norm weight/bias, as torchvision's DenseNet.

    Shape:
        x: B×3×H×W → tuple, for i in ``out_indices``, of B×C_i×ceil(H/(4·2^i))×ceil(W/(4·2^i))
        (``'conv7'``) or B×C_i×ceil(H/2^i)×ceil(W/2^i) (``'conv3'``); for DenseNet-121,
        C = (256, 512, 1024, 1024). The last stage's output is normalised and activated.

    Example:
        >>> import torch
        >>> from mmconv.models.backbones import OperatorDenseNet
        >>> model = OperatorDenseNet(out_indices=(0, 1, 2, 3)).eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 64, 64))]
        [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 1024, 2, 2)]
    """

    arch_settings = {
        '121': dict(growth_rate=32, depths=(6, 12, 24, 16), init_channels=64),
        '169': dict(growth_rate=32, depths=(6, 12, 32, 32), init_channels=64),
        '201': dict(growth_rate=32, depths=(6, 12, 48, 32), init_channels=64),
        '161': dict(growth_rate=48, depths=(6, 12, 36, 24), init_channels=96),
    }

    def __init__(self, arch: Union[str, dict] = '121', in_channels: int = 3, bn_size: int = 4, compression: float = 0.5,
                 drop_rate: float = 0.0, stem_type: str = 'conv7', op_cfg: Optional[dict] = None,
                 conv_cfg: Optional[dict] = None, norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='ReLU', inplace=True), out_indices: Sequence[int] = (3, ),
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False, init_cfg=None):
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
            ]
        super().__init__(init_cfg)
        arch = self._resolve_arch(arch)
        depths = tuple(arch['depths'])
        self._check_args(stem_type, compression, depths, out_indices, frozen_stages)
        self.growth_rate = arch['growth_rate']
        self.depths = depths
        self.num_stages = len(depths)
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.stem_type = stem_type

        init_channels = arch['init_channels']
        self._make_stem(in_channels, init_channels, conv_cfg, norm_cfg, act_cfg)
        layer_kwargs = dict(bn_size=bn_size, op_cfg=op_cfg, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg,
                            drop_rate=drop_rate, with_cp=with_cp)
        self.stage_channels: List[int] = []
        self.res_layers: List[str] = []
        channels = init_channels
        for i, num_layers in enumerate(depths):
            modules = []
            if i > 0:
                compressed = int(channels * compression)
                modules.append(Transition(channels, compressed, conv_cfg, norm_cfg, act_cfg))
                channels = compressed
            block = DenseBlock(num_layers, channels, self.growth_rate, **layer_kwargs)
            channels = block.out_channels
            modules.append(block)
            self.add_module(f'layer{i + 1}', nn.Sequential(*modules))
            self.res_layers.append(f'layer{i + 1}')
            self.stage_channels.append(channels)
        self.final_norm_name, final_norm = build_norm_layer(norm_cfg, channels, postfix='_final')
        self.add_module(self.final_norm_name, final_norm)
        self.final_act = build_activation_layer(act_cfg)
        self.feat_dim = channels
        self._freeze_stages()

    def _resolve_arch(self, arch: Union[str, dict]) -> dict:
        """The arch settings ``arch`` names, or ``arch`` itself after checking its keys."""
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise ValueError(f'arch must be one of {sorted(self.arch_settings)} or a dict, '
                                 f'got {arch!r}.')
            return self.arch_settings[arch]
        keys = {'growth_rate', 'depths', 'init_channels'}
        if not isinstance(arch, dict) or set(arch) != keys:
            raise ValueError(f'a custom arch must be a dict with exactly the keys {sorted(keys)}, '
                             f'got {arch!r}.')
        return arch

    def _check_args(self, stem_type, compression, depths, out_indices, frozen_stages) -> None:
        """Raise a one-sentence ValueError for the first argument the skeleton cannot build."""
        if stem_type not in STEM_TYPES:
            raise ValueError(f'stem_type must be one of {STEM_TYPES}, got {stem_type!r}.')
        if not 0 < compression <= 1:
            raise ValueError(f'compression must be in (0, 1], got {compression!r}.')
        if not depths or any(not isinstance(d, int) or d < 1 for d in depths):
            raise ValueError(f'depths must be positive layer counts, got {depths!r}.')
        num_stages = len(depths)
        if not out_indices or any(i not in range(num_stages) for i in out_indices):
            raise ValueError(f'out_indices must be a non-empty subset of 0..{num_stages - 1}, '
                             f'got {out_indices!r}.')
        if frozen_stages not in range(-1, num_stages + 1):
            raise ValueError(f'frozen_stages must be between -1 and {num_stages}, '
                             f'got {frozen_stages!r}.')

    def _make_stem(self, in_channels: int, out_channels: int, conv_cfg: Optional[dict], norm_cfg: dict,
                   act_cfg: dict) -> None:
        """ImageNet stem (conv 7×7/2, norm, act, max-pool 3×3/2) or CIFAR stem (conv 3×3)."""
        if self.stem_type == 'conv7':
            self.stem = nn.Sequential(
                build_conv_layer(conv_cfg, in_channels, out_channels, 7, stride=2, padding=3, bias=False),
                build_norm_layer(norm_cfg, out_channels)[1], build_activation_layer(act_cfg),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        else:
            # The CIFAR DenseNet-BC stem is a bare conv: the first dense layer normalises it.
            self.stem = nn.Sequential(
                build_conv_layer(conv_cfg, in_channels, out_channels, 3, stride=1, padding=1, bias=False))

    @property
    def final_norm(self) -> nn.Module:
        """The norm after the last dense block."""
        return getattr(self, self.final_norm_name)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Stage outputs selected by ``out_indices``, shallowest first."""
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i == self.num_stages - 1:
                x = self.final_act(self.final_norm(x))
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def frozen_modules(self) -> List[nn.Module]:
        frozen = [self.stem] if self.frozen_stages >= 0 else []
        frozen += [getattr(self, f'layer{i}') for i in range(1, self.frozen_stages + 1)]
        if self.frozen_stages == self.num_stages:
            frozen.append(self.final_norm)
        return frozen
