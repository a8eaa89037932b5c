"""The mmconv operators behind the conv-layer signature, registered for ``build_conv_layer``.

Each adapter subclasses its operator (so state-dict keys are the operator's own) and takes
``(in_channels, out_channels, kernel_size, stride=1, padding=None, dilation=1, groups=1, bias=...,
**op_kwargs)``, the arguments ``mmcv.cnn.build_conv_layer``, ``ConvModule`` and mmdet's ResNet pass.
They are registered in mmengine's root ``MODELS`` under the operator names, so that

* ``build_conv_layer(dict(type='SCConv'), 64, 64, 3, stride=2, padding=1)`` builds an SCConv;
* a stock mmdet ``ResNet(dcn=dict(type='Involution'), stage_with_dcn=(False, True, True, True))``
  puts the operator in every bottleneck's 3×3 slot (mmdet calls
  ``build_conv_layer(dcn, planes, planes, kernel_size=3, stride=s, padding=d, dilation=d, bias=False)``);
* ``ConvModule(..., conv_cfg=dict(type='CVolution'))`` works in necks and heads.

The slot's geometry is honoured, not its weights: ``padding`` must be the "same" padding
``dilation·(kernel_size − 1) / 2`` of the slot (or None for it), so the output is
ceil(H / stride) × ceil(W / stride) like the convolution replaced (``CSCConv2d``, whose output
follows ``nn.Conv2d`` for any padding, also takes other paddings). ``op_kernel_size`` gives the
operator another kernel than the slot's (RedNet puts a 7×7 involution in a 3×3 slot:
``dcn=dict(type='Involution', op_kernel_size=7)``) with the same output size. Everything the
operator cannot honour raises a one-sentence ValueError at construction: unequal channels where the
operator maps C → C, conv groups it has no meaning for, a bias it does not have, a padding
that would change the output size, and, from the operator itself, channel counts its grouping does
not divide.
"""
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from mmengine.registry import MODELS

from mmconv.ops.csc import CSCConv2d
from mmconv.ops.cvolution import CVolution
from mmconv.ops.involution import Involution
from mmconv.ops.scc import SCC
from mmconv.ops.scconv import SCConv

__all__ = [
    'ConvSupport', 'check_conv_args', 'ConvAdapter', 'InvolutionLayer', 'CVolutionLayer', 'SCCLayer', 'SCConvLayer',
    'CSCConv2dLayer'
]

IntPair = Union[int, Tuple[int, int]]


@dataclass(frozen=True)
class ConvSupport:
    """What an operator honours of ``nn.Conv2d``'s arguments.

    Attributes:
        name: operator name used in error messages (its registered type).
        same_channels: the operator maps C → C, so ``in_channels`` must equal ``out_channels``.
        groups: the ``groups`` values supported, or None for any (the operator checks that they
            divide the channels); an operator's own channel grouping has its own argument.
        bias: the ``bias`` values supported.
        any_padding: padding is passed to the operator; otherwise it must be the slot's "same" one.
    """

    name: str
    same_channels: bool = False
    groups: Optional[Tuple[int, ...]] = (1, )
    bias: Tuple[bool, ...] = (False, )
    any_padding: bool = False


@dataclass(frozen=True)
class ConvGeometry:
    """Validated scalar geometry of an adapter: the operator's kernel, stride, padding, dilation."""

    kernel_size: int
    stride: int
    padding: int
    dilation: int


def square(name: str, value: IntPair, support: ConvSupport) -> int:
    """``value`` as one int, raising a ValueError for unequal height and width entries."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f'{support.name} needs a square {name} (an int or an equal pair), '
                             f'got {value!r}.')
        value = value[0]
    if not isinstance(value, int) or value < 0:
        raise ValueError(f'{support.name} needs a non-negative integer {name}, got {value!r}.')
    return value


def check_conv_args(support: ConvSupport, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair,
                    padding: Optional[IntPair], dilation: IntPair, groups: int, bias: bool,
                    op_kernel_size: Optional[int] = None) -> ConvGeometry:
    """Check conv-layer arguments against what an operator supports; return its geometry.

    Args:
        support: what the operator honours.
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: the
            conv-layer arguments (``padding=None`` is the slot's "same" padding).
        op_kernel_size: the operator's own kernel when it differs from the slot's ``kernel_size``.

    Returns:
        The operator's kernel size, stride, padding (rescaled to ``op_kernel_size`` when the
        padding is the slot's "same" padding) and dilation.

    Raises:
        ValueError: naming the first argument the operator cannot honour and the allowed values.
    """
    name = support.name
    if support.same_channels and in_channels != out_channels:
        raise ValueError(f'{name} maps C → C channels, so in_channels must equal out_channels, '
                         f'got {in_channels} and {out_channels}.')
    kernel_size = square('kernel_size', kernel_size, support)
    stride = square('stride', stride, support)
    dilation = square('dilation', dilation, support)
    if kernel_size % 2 == 0 or (op_kernel_size is not None and
                                (not isinstance(op_kernel_size, int) or op_kernel_size % 2 == 0 or op_kernel_size < 1)):
        raise ValueError(f'{name} needs an odd kernel_size and op_kernel_size, '
                         f'got {kernel_size} and {op_kernel_size!r}.')
    if stride < 1:
        raise ValueError(f'{name} needs a positive stride, got {stride}.')
    if dilation < 1:
        raise ValueError(f'{name} needs a positive dilation, got {dilation}.')
    if support.groups is not None and groups not in support.groups:
        allowed = ' or '.join(map(str, support.groups))
        raise ValueError(f'{name} supports groups={allowed} (any channel grouping of its own has '
                         f'its own argument), got {groups!r}.')
    if bias not in support.bias:
        allowed = 'False (it has no output bias)' if support.bias == (False, ) else support.bias
        raise ValueError(f'{name} supports bias={allowed}, got {bias!r}.')
    same_padding = dilation * (kernel_size - 1) // 2
    padding = same_padding if padding is None else square('padding', padding, support)
    op_kernel = kernel_size if op_kernel_size is None else op_kernel_size
    if padding != same_padding and (not support.any_padding or op_kernel != kernel_size):
        raise ValueError(f'{name} keeps the output size of a "same"-padded slot, so padding must '
                         f'be {same_padding} (or None) for kernel_size={kernel_size} and '
                         f'dilation={dilation}, got {padding}.')
    if padding == same_padding:
        padding = dilation * (op_kernel - 1) // 2
    return ConvGeometry(op_kernel, stride, padding, dilation)


class ConvAdapter:
    """Conv-layer constructor shared by the adapters; mixed in before the operator class.

    Subclasses set ``support`` and map the validated geometry to the operator's arguments in
    :meth:`operator_args`; the operator's own constructor then runs with those and ``op_kwargs``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel of the slot, odd; also the operator's unless ``op_kernel_size``
            is given.
        stride (int): Stride. Defaults to 1.
        padding (int, optional): The slot's "same" padding ``dilation·(kernel_size − 1) / 2``
            (None means that); operators that honour any padding take any value.
        dilation (int): Dilation. Defaults to 1.
        groups (int): Conv groups. Defaults to 1.
        bias (bool): Whether the layer adds an output bias. Defaults to False.
        op_kernel_size (int, optional): The operator's kernel when it differs from the slot's.
        **op_kwargs: Further arguments of the operator.
    """

    support: ConvSupport

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: Optional[IntPair] = None, dilation: IntPair = 1, groups: int = 1, bias: bool = False,
                 op_kernel_size: Optional[int] = None, **op_kwargs):
        geometry = check_conv_args(self.support, in_channels, out_channels, kernel_size, stride, padding, dilation,
                                   groups, bias, op_kernel_size)
        super().__init__(**self.operator_args(in_channels, out_channels, geometry, groups), **op_kwargs)
        # ConvModule reads these from its conv; the operator's own attributes take precedence.
        for key, value in dict(in_channels=in_channels, out_channels=out_channels, padding=geometry.padding,
                               groups=groups, transposed=False, output_padding=0).items():
            if not hasattr(self, key):
                setattr(self, key, value)

    @staticmethod
    def operator_args(in_channels: int, out_channels: int, geometry: ConvGeometry, groups: int) -> dict:
        """The operator's constructor arguments for this geometry."""
        raise NotImplementedError


@MODELS.register_module(name='Involution')
class InvolutionLayer(ConvAdapter, Involution):
    """:class:`~mmconv.ops.Involution` as a conv layer: C → C, no bias, groups=1, any dilation.

    ``in_channels`` must equal ``out_channels`` and be a multiple of ``group_channels`` (16).
    ``op_kwargs``: ``reduction_ratio``, ``group_channels``, ``norm_layer``, ``act_layer``,
    ``impl``. See :class:`ConvAdapter` for the conv-layer arguments.

    Shape:
        x: B×C×H×W → B×C×ceil(H/stride)×ceil(W/stride).
    """

    support = ConvSupport('Involution', same_channels=True)

    @staticmethod
    def operator_args(in_channels, out_channels, geometry, groups):
        return dict(channels=in_channels, kernel_size=geometry.kernel_size, stride=geometry.stride,
                    dilation=geometry.dilation)


@MODELS.register_module(name='CVolution')
class CVolutionLayer(ConvAdapter, CVolution):
    """:class:`~mmconv.ops.CVolution` as a conv layer: C → C, no bias, groups=1, any dilation.

    ``in_channels`` must equal ``out_channels`` and be a multiple of ``group_channels`` and
    ``cq_groups`` (16 and 16). ``op_kwargs``: ``reduction_ratio``, ``group_channels``,
    ``cq_kernel``, ``cq_groups``, ``gate``, ``kernel_from``, ``impl``. See :class:`ConvAdapter`.

    Shape:
        x: B×C×H×W → B×C×ceil(H/stride)×ceil(W/stride).
    """

    support = ConvSupport('CVolution', same_channels=True)

    @staticmethod
    def operator_args(in_channels, out_channels, geometry, groups):
        return dict(channels=in_channels, kernel_size=geometry.kernel_size, stride=geometry.stride,
                    dilation=geometry.dilation)


@MODELS.register_module(name='SCC')
class SCCLayer(ConvAdapter, SCC):
    """:class:`~mmconv.ops.SCC` as a conv layer: any channels, dilation and dividing groups.

    ``bias`` is accepted either way: SCC's per-level biases and offsets take part in the
    selection (they are compared and chosen per output), so they are part of the operator and
    always present, whatever the slot asks. ``op_kwargs``: ``mask_prob``, ``impl``. See
    :class:`ConvAdapter`.

    Shape:
        x: B×C_in×H×W → B×C_out×ceil(H/stride)×ceil(W/stride).
    """

    support = ConvSupport('SCC', groups=None, bias=(False, True))

    @staticmethod
    def operator_args(in_channels, out_channels, geometry, groups):
        return dict(in_channels=in_channels, out_channels=out_channels, kernel_size=geometry.kernel_size,
                    stride=geometry.stride, dilation=geometry.dilation, groups=groups)


@MODELS.register_module(name='SCConv')
class SCConvLayer(ConvAdapter, SCConv):
    """:class:`~mmconv.ops.SCConv` as a conv layer: no bias, groups=1, any dilation.

    ``in_channels`` must be even and ``out_channels`` large and divisible enough for the CRU
    (the operator says which). ``op_kwargs``: ``alpha``, ``squeeze_ratio``, ``gwc_groups``,
    ``gn_groups``, ``gate_threshold``, ``gate``, ``fuse``, ``gwc_bias``, ``impl``. See
    :class:`ConvAdapter`.

    Shape:
        x: B×C_in×H×W → B×C_out×ceil(H/stride)×ceil(W/stride).
    """

    support = ConvSupport('SCConv')

    @staticmethod
    def operator_args(in_channels, out_channels, geometry, groups):
        return dict(in_channels=in_channels, out_channels=out_channels, kernel_size=geometry.kernel_size,
                    stride=geometry.stride, dilation=geometry.dilation)


@MODELS.register_module(name='CSCConv2d')
class CSCConv2dLayer(ConvAdapter, CSCConv2d):
    """:class:`~mmconv.ops.csc.CSCConv2d` as a conv layer: any padding, dilation and dividing groups.

    The only conv argument it cannot honour is ``bias=True`` (the output is a sparse code).
    ``op_kwargs``: ``num_steps``, ``lam``, ``solver``, ``non_negative``, ``mu``,
    ``normalize_atoms``, ``step_scale``, ``power_iters``, ``power_interval``, ``recompute``,
    ``impl``... See :class:`ConvAdapter`.

    Shape:
        x: B×C_in×H×W → B×C_out×H'×W' with nn.Conv2d's H', W'.
    """

    support = ConvSupport('CSCConv2d', groups=None, any_padding=True)

    @staticmethod
    def operator_args(in_channels, out_channels, geometry, groups):
        return dict(in_channels=in_channels, out_channels=out_channels, kernel_size=geometry.kernel_size,
                    stride=geometry.stride, padding=geometry.padding, dilation=geometry.dilation, groups=groups)
