"""Decode hidden representations of a CSC network back to the input space (SDNet's visualisation).

Dai et al., "Revisiting Sparse Convolutional Model for Visual Recognition", NeurIPS 2022.
https://arxiv.org/abs/2210.12945

Every CSC layer's output is a sparse code z of its input, x ≈ A z, with A the transposed convolution
by the layer's dictionary. SDNet-18-all without shortcut is a plain chain
x → CSC → BN → CSC → BN → …, so running it backwards maps any hidden representation h to pixels:

    x̂ = A₁ B₁⁻¹ A₂ B₂⁻¹ … (h),

where Bᵢ⁻¹ undoes a BatchNorm with its running statistics. The paper shows such reconstructions:
early layers give edge and colour versions of the input, deep ones blob-like layouts.

The chain is read off one forward pass: forward hooks record, in execution order, every leaf module
(and every CSC layer) with its input and output tensors, and a record only counts as a link when its
input *is* the previous record's output. So a shortcut, a ReLU or any computation outside modules
stops decoding with a message naming where, instead of giving a silently wrong picture.

Differences from the SDNet visualisation script, which is not reused: the BN inverse includes ε,
as the forward does; each layer decodes to the size its input actually had (odd sizes with stride 2
come out right); it runs in eval mode with the checkpoint's step sizes, without re-running the power
iteration per batch (the SDNet script's "bad last layers" remark); and a 2x2 pooling after a
stride-1 CSC layer (SDNet's ``POOLING`` option) is undone by bilinear upsampling as there.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmconv.ops.csc import SparseCodingLayer

__all__ = [
    'ChainRecord', 'CodeTrace', 'NotDecodable', 'Reconstructions', 'every_stage_output', 'invert_batch_norm',
    'reconstruct', 'trace_codes'
]

# Modules that leave their input unchanged in eval mode.
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout2d)
# Pooling a 2x2 (or larger) window down: undone approximately by bilinear upsampling.
_POOLS = (nn.MaxPool2d, nn.AvgPool2d)


class NotDecodable(ValueError):
    """The requested representation is not reachable from the input through invertible modules."""


def invert_batch_norm(bn: _BatchNorm, y: torch.Tensor) -> torch.Tensor:
    """Undo an eval-mode BatchNorm: ``(y − β)/γ · √(running_var + ε) + running_mean``.

    Channels with γ = 0 carry no information about their input and come back as the running mean.

    Args:
        bn: a BatchNorm with running statistics.
        y: its output, B × C × ….
    """
    if bn.running_mean is None or bn.running_var is None:
        raise NotDecodable(f'{type(bn).__name__} keeps no running statistics, so its output cannot '
                           'be mapped back.')
    shape = (1, -1) + (1, ) * (y.dim() - 2)
    mean = bn.running_mean.view(shape)
    std = torch.sqrt(bn.running_var + bn.eps).view(shape)
    if not bn.affine:
        return y * std + mean
    gamma, beta = bn.weight.view(shape), bn.bias.view(shape)
    normalized = torch.where(gamma != 0, (y - beta) / torch.where(gamma != 0, gamma, 1), 0)
    return normalized * std + mean


@dataclass
class ChainRecord:
    """One module call of the traced forward: the module, its qualified name, input and output."""
    name: str
    module: nn.Module
    input: torch.Tensor
    output: torch.Tensor


class CodeTrace:
    """The module calls of one forward pass, and the decoding of their outputs to the input space.

    Build it with :func:`trace_codes`.
    """

    def __init__(self, inputs: torch.Tensor, records: List[ChainRecord], output):
        self.inputs = inputs
        self.records = records
        self.output = output

    def index_of(self, tensor: torch.Tensor) -> Optional[int]:
        """The index of the (last) record that produced ``tensor``, or None."""
        for index in range(len(self.records) - 1, -1, -1):
            if self.records[index].output is tensor:
                return index
        return None

    def csc_indices(self) -> List[int]:
        """Indices of the records of CSC layers, in execution order."""
        return [i for i, r in enumerate(self.records) if isinstance(r.module, SparseCodingLayer)]

    def decoded_code_index(self, csc_index: int) -> int:
        """The record to decode for a CSC layer's code: its BatchNorm when one directly follows."""
        following = csc_index + 1
        if (following < len(self.records) and isinstance(self.records[following].module, _BatchNorm)
                and self.records[following].input is self.records[csc_index].output):
            return following
        return csc_index

    def decode(self, index: int, value: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Map the output of record ``index`` (or ``value`` in its place) back to the input space.

        Raises:
            NotDecodable: when the records from the input to ``index`` do not form a chain of
                invertible modules (CSC layers, BatchNorms, identities, 2x2 pooling).
        """
        h = self.records[index].output if value is None else value
        with torch.no_grad():
            for position in range(index, -1, -1):
                record = self.records[position]
                source = self.records[position - 1].output if position else self.inputs
                if record.input is not source:
                    before = self.records[position - 1].name if position else 'the input'
                    raise NotDecodable(f'{record.name} does not take the output of {before} unchanged (a '
                                       'shortcut, an activation or an operation outside modules lies between '
                                       f'them), so {self.records[index].name} cannot be decoded through a chain '
                                       'of dictionaries.')
                h = _invert(record, h)
        return h


def _invert(record: ChainRecord, h: torch.Tensor) -> torch.Tensor:
    module = record.module
    if isinstance(module, SparseCodingLayer):
        if hasattr(module, 'kernel_size'):
            return module.decode(h, record.input.shape[2:])
        return module.decode(h)
    if isinstance(module, _BatchNorm):
        return invert_batch_norm(module, h)
    if isinstance(module, _PASS_THROUGH):
        return h
    if isinstance(module, _POOLS):
        return F.interpolate(h, size=record.input.shape[2:], mode='bilinear', align_corners=False)
    raise NotDecodable(f'{record.name} ({type(module).__name__}) cannot be inverted; decoding goes '
                       'through CSC layers, BatchNorms, identities and pooling only.')


def _is_recorded(module: nn.Module) -> bool:
    return isinstance(module, SparseCodingLayer) or next(module.children(), None) is None


def trace_codes(module: nn.Module, inputs: torch.Tensor, forward: Optional[Callable[[torch.Tensor], object]] = None,
                skip: Sequence[type] = ()) -> CodeTrace:
    """Run ``module`` once on ``inputs`` (no gradients) and record its leaf-module calls.

    Args:
        module: e.g. a backbone, in eval mode (BatchNorms use their running statistics).
        inputs: B × C × H × W, as the module receives them (normalised).
        forward: what to call instead of ``module(inputs)``, e.g. a bound method.
        skip: module types not to record.

    Returns:
        The trace; its ``output`` is the forward's return value (e.g. a backbone's stage outputs).
    """
    records: List[ChainRecord] = []
    handles = []

    def hook(name):

        def record(mod, args, output):
            if args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                records.append(ChainRecord(name, mod, args[0], output))

        return record

    for name, sub in module.named_modules():
        if _is_recorded(sub) and not isinstance(sub, tuple(skip)):
            handles.append(sub.register_forward_hook(hook(name or type(sub).__name__)))
    try:
        with torch.no_grad():
            output = (forward or module)(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return CodeTrace(inputs, records, output)


@contextmanager
def every_stage_output(backbone: nn.Module):
    """Make a ResNet-style backbone (with ``num_stages`` and ``out_indices``) return every stage.

    Other backbones are left as they are. The previous ``out_indices`` is restored on exit.
    """
    saved = getattr(backbone, 'out_indices', None)
    expandable = saved is not None and isinstance(getattr(backbone, 'num_stages', None), int)
    if expandable:
        backbone.out_indices = tuple(range(backbone.num_stages))
    try:
        yield expandable
    finally:
        if expandable:
            backbone.out_indices = saved


@dataclass
class Reconstructions:
    """Stage outputs of a backbone and their decodings to the input space.

    ``features`` maps ``'stage<i>'`` to B × C × H × W outputs. ``decoded`` maps ``'stem'`` (the
    first CSC layer's code, through the BatchNorm that follows it), ``'csc<k>'`` (the k-th CSC
    layer's code, when asked for) and ``'stage<i>'`` to B × C_in × H × W reconstructions;
    ``failures`` maps the names that could not be decoded to the reason.
    """
    features: Dict[str, torch.Tensor]
    decoded: Dict[str, torch.Tensor]
    failures: Dict[str, str]


def reconstruct(backbone: nn.Module, inputs: torch.Tensor, stages: Optional[Sequence[int]] = None,
                layers: Optional[Sequence[int]] = None) -> Reconstructions:
    """Run ``backbone`` on ``inputs`` and decode the stem code and each stage output to pixels.

    Decoding succeeds where the path from the input is a chain of CSC layers and BatchNorms, as in
    SDNet-all without shortcut; for SDNet with a CSC stem only the stem decodes.

    Args:
        backbone: in eval mode; ResNet-style backbones are made to return every stage.
        inputs: B × C × H × W, normalised as the backbone expects.
        stages: stage indices to keep (default all returned).
        layers: CSC layers, numbered from 1 in execution order, whose codes to decode too (SDNet's
            figure shows layers 1, 3 and 5).

    Raises:
        ValueError: a layer number outside 1 … the number of CSC layers.
    """
    with every_stage_output(backbone) as expanded:
        trace = trace_codes(backbone, inputs)
    outputs = trace.output if isinstance(trace.output, (tuple, list)) else (trace.output, )
    if expanded:
        indices = list(range(len(outputs)))
    else:
        indices = list(getattr(backbone, 'out_indices', range(len(outputs))))[:len(outputs)]
    features, decoded, failures = {}, {}, {}
    targets = []
    csc = trace.csc_indices()
    bad = [k for k in layers or () if not 1 <= k <= len(csc)]
    if bad:
        names = ', '.join(trace.records[i].name for i in csc) or 'none'
        raise ValueError(f'CSC layers are numbered 1..{len(csc)} in execution order ({names}); got {bad}.')
    if csc:
        targets.append(('stem', trace.decoded_code_index(csc[0])))
    targets += [(f'csc{k}', trace.decoded_code_index(csc[k - 1])) for k in layers or ()]
    for stage, output in zip(indices, outputs):
        if stages is not None and stage not in stages:
            continue
        features[f'stage{stage}'] = output
        targets.append((f'stage{stage}', trace.index_of(output)))
    for name, index in targets:
        if not csc:
            failures[name] = 'the backbone has no CSC layer'
        elif index is None:
            failures[name] = 'it is not the output of a module (computed outside modules)'
        else:
            try:
                decoded[name] = trace.decode(index)
            except NotDecodable as error:
                failures[name] = str(error)
    return Reconstructions(features, decoded, failures)
