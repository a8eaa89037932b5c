"""A ResNet whose spatial operator, shortcut, stem and activations are arguments.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016. https://arxiv.org/abs/1512.03385

Every model of the project that is a ResNet underneath (RedNet, CedNet, SCCNet, SCConv-ResNet, SDNet
and their convolution baselines) is this one skeleton with different arguments:

* ``op_cfg`` builds the 3×3 slot of every block (both convs of a basic block, ``conv2`` of a
  bottleneck) through ``mmcv.cnn.build_conv_layer``, so any layer with the conv-layer signature fits,
  the mmconv operators through their adapters (:mod:`mmconv.models.layers.conv_adapters`);
* ``stem_type``, ``stem_op_cfg`` and ``stem_pool`` choose the stem, ``downsample_kernel_size`` and
  ``downsample_conv_cfg`` the projection shortcut, ``act_cfg`` and ``act_positions`` the activation and
  where it is applied, ``residual`` whether blocks have a skip connection at all.

Stride sits on the 3×3 slot (pytorch style). Every stride-2 layer maps a side of length n to
ceil(n / 2) (zero padding k // 2 for odd k, ceil-mode pooling inside the operators), so odd and
non-divisible input sizes work: a stage with total stride s outputs ceil(H / s)-sized maps.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule, build_activation_layer, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule, Sequential
from mmengine.registry import MODELS
from torch import nn

from .staged_backbone import StagedBackbone

__all__ = ['BasicBlock', 'Bottleneck', 'OperatorResLayer', 'OperatorResNet']

ACT_POSITIONS = ('stem', 'block', 'residual')
STEM_TYPES = ('conv7', 'conv3', 'deep')
STEM_POOLS = ('max', 'op', None)


def build_act(act_cfg: Optional[dict], enabled: bool) -> nn.Module:
    """The activation ``act_cfg`` describes, or an identity where it is disabled or None."""
    if act_cfg is None or not enabled:
        return nn.Identity()
    return build_activation_layer(act_cfg)


class BasicBlock(BaseModule):
    """Two 3×3 operator slots, each followed by a norm (ResNet-18/34 block).

    ``x → op(stride) → norm1 → act → op → norm2 → (+ shortcut(x)) → act``; the activations are
    identities where disabled, and the skip connection is dropped when ``residual`` is False.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (the block has expansion 1).
        stride (int): Stride of the first operator. Defaults to 1.
        downsample (nn.Module, optional): Projection applied to the input of the skip connection.
        op_cfg (dict, optional): Conv-layer config of both 3×3 slots; None builds ``nn.Conv2d``.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        act_cfg (dict, optional): Activation config; None means no activation anywhere.
        block_act (bool): Whether the activation follows ``norm1``. Defaults to True.
        residual_act (bool): Whether the activation follows the sum (or ``norm2`` without a skip
            connection). Defaults to True.
        residual (bool): Whether the block adds its (projected) input. Defaults to True.
        with_cp (bool): Recompute the block in backward instead of storing its activations.
        init_cfg (dict or list[dict], optional): Initialization config.

    Shape:
        x: B×in_channels×H×W → B×out_channels×ceil(H/stride)×ceil(W/stride).
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 op_cfg: Optional[dict] = None, norm_cfg: dict = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'), block_act: bool = True, residual_act: bool = True,
                 residual: bool = True, with_cp: bool = False, init_cfg=None):
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.residual = residual
        self.with_cp = with_cp
        self.conv1 = build_conv_layer(op_cfg, in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, out_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.act1 = build_act(act_cfg, block_act)
        self.conv2 = build_conv_layer(op_cfg, out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, out_channels, postfix=2)
        self.add_module(self.norm2_name, norm2)
        self.downsample = downsample
        self.act_out = build_act(act_cfg, residual_act)

    @property
    def norm1(self) -> nn.Module:
        """The norm after the first operator."""
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        """The norm after the second operator (zeroed by ``zero_init_residual``)."""
        return getattr(self, self.norm2_name)

    def _inner_forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self._inner_forward, x, use_reentrant=False)
        else:
            out = self._inner_forward(x)
        return self.act_out(out)


class Bottleneck(BaseModule):
    """1×1 reduce, 3×3 operator slot (with the stride), 1×1 expand (ResNet-50+ block).

    ``x → conv1 → norm1 → act → op(stride) → norm2 → act → conv3 → norm3 → (+ shortcut(x)) → act``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels; the slot works at ``out_channels // 4``.
        stride (int): Stride of the operator slot. Defaults to 1.
        downsample (nn.Module, optional): Projection applied to the input of the skip connection.
        op_cfg (dict, optional): Conv-layer config of the 3×3 slot; None builds ``nn.Conv2d``.
        conv_cfg (dict, optional): Conv config of the two 1×1 convs.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        act_cfg (dict, optional): Activation config; None means no activation anywhere.
        block_act (bool): Whether the activation follows ``norm1`` and ``norm2``. Defaults to True.
        residual_act (bool): Whether the activation follows the sum. Defaults to True.
        residual (bool): Whether the block adds its (projected) input. Defaults to True.
        with_cp (bool): Recompute the block in backward instead of storing its activations.
        init_cfg (dict or list[dict], optional): Initialization config.

    Shape:
        x: B×in_channels×H×W → B×out_channels×ceil(H/stride)×ceil(W/stride).
    """

    expansion = 4

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 op_cfg: Optional[dict] = None, conv_cfg: Optional[dict] = None, norm_cfg: dict = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'), block_act: bool = True, residual_act: bool = True,
                 residual: bool = True, with_cp: bool = False, init_cfg=None):
        super().__init__(init_cfg)
        mid_channels = out_channels // self.expansion
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.mid_channels = mid_channels
        self.stride = stride
        self.residual = residual
        self.with_cp = with_cp
        self.conv1 = build_conv_layer(conv_cfg, in_channels, mid_channels, 1, bias=False)
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, mid_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.act1 = build_act(act_cfg, block_act)
        self.conv2 = build_conv_layer(op_cfg, mid_channels, mid_channels, 3, stride=stride, padding=1, bias=False)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, mid_channels, postfix=2)
        self.add_module(self.norm2_name, norm2)
        self.act2 = build_act(act_cfg, block_act)
        self.conv3 = build_conv_layer(conv_cfg, mid_channels, out_channels, 1, bias=False)
        self.norm3_name, norm3 = build_norm_layer(norm_cfg, out_channels, postfix=3)
        self.add_module(self.norm3_name, norm3)
        self.downsample = downsample
        self.act_out = build_act(act_cfg, residual_act)

    @property
    def norm1(self) -> nn.Module:
        """The norm after the 1×1 reduction."""
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        """The norm after the operator slot."""
        return getattr(self, self.norm2_name)

    @property
    def norm3(self) -> nn.Module:
        """The norm after the 1×1 expansion (zeroed by ``zero_init_residual``)."""
        return getattr(self, self.norm3_name)

    def _inner_forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.act2(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self._inner_forward, x, use_reentrant=False)
        else:
            out = self._inner_forward(x)
        return self.act_out(out)


class OperatorResLayer(Sequential):
    """One stage: ``num_blocks`` blocks, the first one strided and projecting its shortcut.

    The projection (``downsample``: conv + norm) exists when the stride or the width changes and
    the blocks are residual. Its conv is ``downsample_kernel_size``×``downsample_kernel_size`` with
    zero padding ``k // 2``, built from ``downsample_conv_cfg`` (``nn.Conv2d`` when None).

    Args:
        block (type): :class:`BasicBlock` or :class:`Bottleneck`.
        num_blocks (int): Number of blocks.
        in_channels (int): Input channels of the stage.
        out_channels (int): Output channels of every block.
        stride (int): Stride of the first block. Defaults to 1.
        downsample_kernel_size (int): Kernel of the shortcut projection (odd). Defaults to 1.
        downsample_conv_cfg (dict, optional): Conv-layer config of the shortcut projection.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        residual (bool): Whether the blocks have skip connections. Defaults to True.
        **block_kwargs: Passed on to every block (``op_cfg``, ``act_cfg``, ``with_cp``...).
    """

    def __init__(self, block: type, num_blocks: int, in_channels: int, out_channels: int, stride: int = 1,
                 downsample_kernel_size: int = 1, downsample_conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'), residual: bool = True, **block_kwargs):
        downsample = None
        if residual and (stride != 1 or in_channels != out_channels):
            downsample = nn.Sequential(
                build_conv_layer(downsample_conv_cfg, in_channels, out_channels, downsample_kernel_size, stride=stride,
                                 padding=downsample_kernel_size // 2, bias=False),
                build_norm_layer(norm_cfg, out_channels)[1])
        blocks = [
            block(in_channels, out_channels, stride=stride, downsample=downsample, norm_cfg=norm_cfg, residual=residual,
                  **block_kwargs)
        ]
        blocks += [
            block(out_channels, out_channels, stride=1, norm_cfg=norm_cfg, residual=residual, **block_kwargs)
            for _ in range(1, num_blocks)
        ]
        super().__init__(*blocks)


@MODELS.register_module()
class OperatorResNet(StagedBackbone):
    """ResNet with the block operator, shortcut, stem and activations given as arguments.

    With the defaults it is a plain ResNet (7×7 stem, 1×1 projection shortcuts, ReLU); the named
    backbones (:class:`~mmconv.models.backbones.RedNet`, ``CedNet``, ``SCCNet``, ``SCConvResNet``,
    ``SDNet``) only choose arguments. It serves mmpretrain (``ImageClassifier`` with
    ``GlobalAveragePooling``) and mmdet (a tuple of stage outputs for the neck) unchanged.

    Args:
        depth (int): 18 or 34 (basic blocks); 26, 38, 50, 101 or 152 (bottlenecks).
        in_channels (int): Input image channels. Defaults to 3.
        stem_channels (int): Output channels of the stem. Defaults to 64.
        base_channels (int): Output channels of the first stage divided by the block expansion.
            Defaults to 64.
        num_stages (int): Number of stages, 1 to 4. Defaults to 4.
        strides (Sequence[int]): Stride of the first block of each stage. Defaults to (1, 2, 2, 2).
        out_indices (Sequence[int]): Stages whose outputs ``forward`` returns. Defaults to (3,).
        stem_type (str): ``'conv7'``: 7×7 stride-2 slot → norm → act (ImageNet ResNet);
            ``'conv3'``: 3×3 stride-1 slot → norm → act (CIFAR); ``'deep'``: RedNet's stem, conv 3×3
            stride 2 to ``stem_channels // 2`` (+ norm + act) → slot (``stem_channels // 2`` wide,
            3×3 geometry) → norm → act → conv 3×3 to ``stem_channels`` (+ norm + act).
            Defaults to ``'conv7'``.
        stem_op_cfg (dict, optional): Conv-layer config of the stem's operator slot (the 7×7 or
            3×3 conv, or the middle layer of the deep stem); None builds ``nn.Conv2d``.
        stem_pool (str, optional): ``'max'``: 3×3 stride-2 max-pool; ``'op'``: a 3×3 stride-2
            slot built from ``stem_op_cfg`` (``stem_channels`` → ``stem_channels``, no norm);
            None: no pooling. Defaults to ``'max'``.
        op_cfg (dict, optional): Conv-layer config of the blocks' 3×3 slots. Defaults to None
            (``nn.Conv2d``).
        conv_cfg (dict, optional): Conv config of the other convs (bottleneck 1×1s, deep-stem
            convs). Defaults to None.
        downsample_kernel_size (int): Kernel of the projection shortcuts (1, 3 or 5 in the
            SCCNet tables). Defaults to 1.
        downsample_conv_cfg (dict, optional): Conv-layer config of the projection shortcuts.
            Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict, optional): Activation config; None removes every activation.
            Defaults to ``dict(type='ReLU')``.
        act_positions (Sequence[str]): Where the activation is applied: ``'stem'`` (after the
            stem norms), ``'block'`` (inside blocks) and ``'residual'`` (after each block's sum).
            Defaults to all three.
        residual (bool): Whether blocks have skip connections. Defaults to True.
        frozen_stages (int): Stages to freeze (no gradient, norms in eval mode): -1 none, 0 the
            stem, k the stem and stages 1..k. Defaults to -1.
        norm_eval (bool): Keep every batch norm (including those inside operators) in eval mode
            during training. Defaults to False.
        with_cp (bool): Activation checkpointing of every block. Defaults to False.
        zero_init_residual (bool): Initialise the last norm of each residual block to zero so
            blocks start as identities. Defaults to True.
        init_cfg (dict or list[dict], optional): Initialization config. Defaults to Kaiming
            (fan_out, normal) on every ``nn.Conv2d`` (operator internals included) and weight 1,
            bias 0 on every norm.

    Shape:
        x: B×in_channels×H×W → tuple of B×C_i×ceil(H/S_i)×ceil(W/S_i) for i in ``out_indices``,
        with C_i = ``base_channels``·2^i·expansion and S_i = 4·2^i for the default strides and a
        pooled stride-2 stem (the CIFAR stem without pooling has S_i = 2^i).

    Example:
        >>> import torch
        >>> from mmconv.models.backbones import OperatorResNet
        >>> model = OperatorResNet(depth=18, out_indices=(0, 1, 2, 3)).eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 65, 65))]
        [(1, 64, 17, 17), (1, 128, 9, 9), (1, 256, 5, 5), (1, 512, 3, 3)]
    """

    arch_settings = {
        18: (BasicBlock, (2, 2, 2, 2)),
        26: (Bottleneck, (1, 2, 4, 1)),
        34: (BasicBlock, (3, 4, 6, 3)),
        38: (Bottleneck, (2, 3, 5, 2)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
        152: (Bottleneck, (3, 8, 36, 3)),
    }

    def __init__(self, depth: int, in_channels: int = 3, stem_channels: int = 64, base_channels: int = 64,
                 num_stages: int = 4, strides: Sequence[int] = (1, 2, 2, 2), out_indices: Sequence[int] = (3, ),
                 stem_type: str = 'conv7', stem_op_cfg: Optional[dict] = None, stem_pool: Optional[str] = 'max',
                 op_cfg: Optional[dict] = None, conv_cfg: Optional[dict] = None, downsample_kernel_size: int = 1,
                 downsample_conv_cfg: Optional[dict] = None, norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: Optional[dict] = dict(type='ReLU'), act_positions: Sequence[str] = ACT_POSITIONS,
                 residual: bool = True, frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 zero_init_residual: bool = True, init_cfg=None):
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
            ]
        super().__init__(init_cfg)
        self._check_args(depth, num_stages, strides, out_indices, stem_type, stem_pool, downsample_kernel_size,
                         act_positions, frozen_stages)
        self.depth = depth
        self.num_stages = num_stages
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.block, stage_blocks = self.arch_settings[depth]
        self.stage_blocks = stage_blocks[:num_stages]

        stem_act = 'stem' in act_positions
        self._make_stem(stem_type, in_channels, stem_channels, stem_op_cfg, stem_pool, conv_cfg, norm_cfg,
                        build_act(act_cfg, stem_act), act_cfg if stem_act else None)

        # Zero-initialising the last norm only makes a block an identity when it has a shortcut.
        last_norm = 'norm3' if self.block is Bottleneck else 'norm2'
        block_init_cfg = (
            dict(type='Constant', val=0, override=dict(name=last_norm)) if zero_init_residual and residual else None)
        block_kwargs = dict(op_cfg=op_cfg, act_cfg=act_cfg, block_act='block' in act_positions, residual_act='residual'
                            in act_positions, with_cp=with_cp, init_cfg=block_init_cfg)
        if self.block is Bottleneck:
            block_kwargs['conv_cfg'] = conv_cfg
        self.res_layers = []
        channels = stem_channels
        for i, num_blocks in enumerate(self.stage_blocks):
            out_channels = base_channels * 2**i * self.block.expansion
            layer = OperatorResLayer(self.block, num_blocks, channels, out_channels, stride=strides[i],
                                     downsample_kernel_size=downsample_kernel_size,
                                     downsample_conv_cfg=downsample_conv_cfg, norm_cfg=norm_cfg, residual=residual,
                                     **block_kwargs)
            channels = out_channels
            self.add_module(f'layer{i + 1}', layer)
            self.res_layers.append(f'layer{i + 1}')
        self.feat_dim = channels
        self._freeze_stages()

    def _check_args(self, depth, num_stages, strides, out_indices, stem_type, stem_pool, downsample_kernel_size,
                    act_positions, frozen_stages) -> None:
        """Raise a one-sentence ValueError for the first argument the skeleton cannot build."""
        if depth not in self.arch_settings:
            raise ValueError(f'depth must be one of {sorted(self.arch_settings)}, got {depth!r}.')
        if num_stages not in (1, 2, 3, 4):
            raise ValueError(f'num_stages must be 1, 2, 3 or 4, got {num_stages!r}.')
        if len(strides) != num_stages:
            raise ValueError(f'strides must have num_stages={num_stages} entries, got {strides!r}.')
        if not out_indices or any(i not in range(num_stages) for i in out_indices):
            raise ValueError(f'out_indices must be a non-empty subset of 0..{num_stages - 1}, '
                             f'got {out_indices!r}.')
        if stem_type not in STEM_TYPES:
            raise ValueError(f'stem_type must be one of {STEM_TYPES}, got {stem_type!r}.')
        if stem_pool not in STEM_POOLS:
            raise ValueError(f'stem_pool must be one of {STEM_POOLS}, got {stem_pool!r}.')
        if downsample_kernel_size not in (1, 3, 5, 7):
            raise ValueError(f'downsample_kernel_size must be 1, 3, 5 or 7, '
                             f'got {downsample_kernel_size!r}.')
        if not set(act_positions) <= set(ACT_POSITIONS):
            raise ValueError(f'act_positions must be a subset of {ACT_POSITIONS}, '
                             f'got {act_positions!r}.')
        if frozen_stages not in range(-1, num_stages + 1):
            raise ValueError(f'frozen_stages must be between -1 and num_stages={num_stages}, '
                             f'got {frozen_stages!r}.')

    def _make_stem(self, stem_type: str, in_channels: int, stem_channels: int, stem_op_cfg: Optional[dict],
                   stem_pool: Optional[str], conv_cfg: Optional[dict], norm_cfg: dict, act: nn.Module,
                   convmodule_act_cfg: Optional[dict]) -> None:
        """Build the stem under the names of the official checkpoints it has to load.

        ``conv7``/``conv3``: ``conv1``, ``bn1`` (mmdet/torchvision ResNet). ``deep``: ``stem.0``
        (ConvModule: ``conv``, ``bn``), ``stem.1`` (the slot), ``stem.2`` (norm), ``stem.3``
        (activation), ``stem.4`` (ConvModule), as in the official RedNet.
        """
        self.stem_type = stem_type
        if stem_type == 'deep':
            mid_channels = stem_channels // 2
            self.stem = nn.Sequential(
                ConvModule(in_channels, mid_channels, 3, stride=2, padding=1, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                           act_cfg=convmodule_act_cfg),
                build_conv_layer(stem_op_cfg, mid_channels, mid_channels, 3, stride=1, padding=1, bias=False),
                build_norm_layer(norm_cfg, mid_channels)[1], act,
                ConvModule(mid_channels, stem_channels, 3, stride=1, padding=1, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                           act_cfg=convmodule_act_cfg))
        else:
            kernel_size, stride = (7, 2) if stem_type == 'conv7' else (3, 1)
            self.conv1 = build_conv_layer(stem_op_cfg, in_channels, stem_channels, kernel_size, stride=stride,
                                          padding=kernel_size // 2, bias=False)
            self.norm1_name, norm1 = build_norm_layer(norm_cfg, stem_channels, postfix=1)
            self.add_module(self.norm1_name, norm1)
            self.stem_act = act
        if stem_pool == 'max':
            self.stem_pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        elif stem_pool == 'op':
            self.stem_pool = build_conv_layer(stem_op_cfg, stem_channels, stem_channels, 3, stride=2, padding=1,
                                              bias=False)
        else:
            self.stem_pool = nn.Identity()

    @property
    def norm1(self) -> nn.Module:
        """The stem norm of the ``conv7``/``conv3`` stems."""
        return getattr(self, self.norm1_name)

    def stem_modules(self) -> Tuple[nn.Module, ...]:
        """Every module of the stem, pooling included (what ``frozen_stages=0`` freezes)."""
        if self.stem_type == 'deep':
            return self.stem, self.stem_pool
        return self.conv1, self.norm1, self.stem_act, self.stem_pool

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and its pooling: B×in_channels×H×W → B×stem_channels×H'×W'."""
        if self.stem_type == 'deep':
            x = self.stem(x)
        else:
            x = self.stem_act(self.norm1(self.conv1(x)))
        return self.stem_pool(x)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Stage outputs selected by ``out_indices``, shallowest first."""
        x = self.forward_stem(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def frozen_modules(self) -> List[nn.Module]:
        frozen = list(self.stem_modules()) if self.frozen_stages >= 0 else []
        return frozen + [getattr(self, f'layer{i}') for i in range(1, self.frozen_stages + 1)]
