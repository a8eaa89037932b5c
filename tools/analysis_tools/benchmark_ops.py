"""Forward+backward time and memory of mmconv's operators against the 3×3 conv they replace.

For every entry of ``CASES`` the fast path, the reference path and a bias-free 3×3 convolution of the
same width are measured in one run, interleaved (conv, fast, reference, conv, fast, …) so that load
changes on a shared machine hit all three alike, and reported as ratios to the convolution. A case
may add a ``floor``: the library convolutions that any implementation built on them must run (for
SCC, one dense conv per nested level), to show how much of the fast path is overhead.

Memory is the peak of ``torch.cuda.max_memory_allocated`` above the memory held before the step on
CUDA, and the bytes of distinct storages saved for backward (``saved_tensors_hooks``) on CPU.

Adding an operator: append ``Case(name, fast_factory, reference_factory, shape[, floor_factory])``
entries to ``CASES``; a factory takes the channel count and returns the module.

Example::

    python tools/analysis_tools/benchmark_ops.py --ops involution7 cvolution7 --repeat 5
"""
import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from mmconv.analysis.memory import saved_tensor_bytes
from mmconv.ops import SCC, CSCConv2d, CVolution, Involution, SCConv

Factory = Callable[[int], nn.Module]


@dataclass
class Case:
    """One operator at one layer shape.

    Attributes:
        name: what ``--ops`` selects; several cases may share a name (one per shape).
        fast: builds the default (fast) path from the channel count.
        reference: builds the plain reference path from the channel count.
        shape: input B×C×H×W.
        floor: builds the library convs the operator cannot avoid, or None.
    """
    name: str
    fast: Factory
    reference: Factory
    shape: Tuple[int, int, int, int]
    floor: Optional[Factory] = None


class NestedLevelConvs(nn.Module):
    """SCC's unavoidable work with dense library convs: one bias-free conv per level, 1×1 … K×K.

    The levels are summed (two cheap adds) so that one backward reaches them all.
    """

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Conv2d(channels, channels, 2 * level + 1, padding=level, bias=False)
            for level in range(kernel_size // 2 + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(level(x) for level in self.levels)


CASES: List[Case] = [
    Case('involution7', lambda c: Involution(c, 7), lambda c: Involution(c, 7, impl='reference'), (8, 64, 56, 56)),
    Case('involution7', lambda c: Involution(c, 7), lambda c: Involution(c, 7, impl='reference'), (8, 256, 14, 14)),
    Case('cvolution7', lambda c: CVolution(c, 7), lambda c: CVolution(c, 7, impl='reference'), (8, 64, 56, 56)),
    Case('scconv', lambda c: SCConv(c, c), lambda c: SCConv(c, c, impl='reference'), (8, 64, 56, 56)),
    # The unofficial code's semantics (hard gate: no gradient reaches GroupNorm; joint softmax).
    Case('scconv_hard_joint', lambda c: SCConv(c, c, gate='hard', fuse='joint'),
         lambda c: SCConv(c, c, gate='hard', fuse='joint', impl='reference'), (8, 64, 56, 56)),
    Case('scc3', lambda c: SCC(c, c, 3), lambda c: SCC(c, c, 3, impl='reference'), (8, 64, 56, 56),
         lambda c: NestedLevelConvs(c, 3)),
    Case('scc5', lambda c: SCC(c, c, 5), lambda c: SCC(c, c, 5, impl='reference'), (8, 64, 56, 56),
         lambda c: NestedLevelConvs(c, 5)),
    # Training mode: the time includes the in-forward step-size update (one warm power iteration).
    Case('csc2', lambda c: CSCConv2d(c, c, 3), lambda c: CSCConv2d(c, c, 3, impl='reference'), (8, 64, 56, 56)),
]


def conv3x3(channels: int) -> nn.Module:
    """The layer every operator replaces: bias-free 3×3 conv, same width, padding 1."""
    return nn.Conv2d(channels, channels, 3, padding=1, bias=False)


class Step:
    """One forward+backward of ``module`` on a fixed input, with its time and memory."""

    def __init__(self, module: nn.Module, x: torch.Tensor):
        self.module = module
        self.x = x
        with torch.no_grad():
            self.grad = torch.randn_like(module(x))

    def run(self) -> None:
        self.module.zero_grad(set_to_none=True)
        self.x.grad = None
        self.module(self.x).backward(self.grad)

    def seconds(self) -> float:
        synchronize(self.x.device)
        start = time.perf_counter()
        self.run()
        synchronize(self.x.device)
        return time.perf_counter() - start

    def memory_bytes(self) -> int:
        if self.x.device.type == 'cuda':
            synchronize(self.x.device)
            held = torch.cuda.memory_allocated(self.x.device)
            torch.cuda.reset_peak_memory_stats(self.x.device)
            self.run()
            synchronize(self.x.device)
            return torch.cuda.max_memory_allocated(self.x.device) - held
        return saved_tensor_bytes(lambda: self.module(self.x))


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def compiled(factory: Factory) -> Factory:
    """``factory``'s module under ``torch.compile`` (Inductor)."""
    return lambda channels: torch.compile(factory(channels))


def measure(case: Case, shape, device: torch.device, repeat: int, with_compiled: bool = False):
    """Path names, median seconds and memory bytes of the conv, fast, reference (floor, compiled
    fast path) steps, interleaved; the first step of each path (compilation) is not timed."""
    channels = shape[1]
    x = torch.randn(*shape, device=device, requires_grad=True)
    paths = [('conv3x3', conv3x3), ('fast', case.fast), ('reference', case.reference)]
    if case.floor:
        paths.append(('floor', case.floor))
    if with_compiled:
        paths.append(('compiled', compiled(case.fast)))
    steps = [Step(factory(channels).to(device), x) for _, factory in paths]
    for step in steps:  # warm-up: allocator, kernel compilation, autotuning caches
        step.run()
    times = [[] for _ in steps]
    for _ in range(repeat):
        for step, samples in zip(steps, times):
            samples.append(step.seconds())
    return ([name for name, _ in paths], [statistics.median(t) for t in times], [step.memory_bytes() for step in steps])


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--ops', nargs='+', help='case names to run (default: all)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--repeat', type=int, default=5, help='timed steps per path (median)')
    parser.add_argument('--shape', type=int, nargs=4, metavar=('B', 'C', 'H', 'W'),
                        help='input shape for every case instead of the listed ones')
    parser.add_argument('--threads', type=int, help='CPU intra-op threads (default: torch\'s)')
    parser.add_argument(
        '--compile', action='store_true', help='also time the fast path under torch.compile (Inductor); its ×ref '
        'columns are then to the eager fast path')
    return parser.parse_args()


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cases = [case for case in CASES if not args.ops or case.name in args.ops]
    if not cases:
        raise SystemExit(f'no case named {args.ops}; known: {sorted({case.name for case in CASES})}')
    if args.shape:
        unique = {case.name: case for case in cases}  # one run per operator at the given shape
        cases = [Case(c.name, c.fast, c.reference, tuple(args.shape), c.floor) for c in unique.values()]

    where = (torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads')
    memory_kind = ('peak allocated above the step start (MiB)'
                   if device.type == 'cuda' else 'bytes saved for backward (MiB)')
    print(f'# {where}, torch {torch.__version__}, fp32, forward+backward, median of {args.repeat}')
    print(f'# memory = {memory_kind}; ratios are to the bias-free 3×3 conv of the same width')
    header = (f'{"op":<17} {"shape":<13} {"path":<10} {"ms":>9} {"×conv":>7} {"memory":>9} {"×conv":>7}'
              f' {"×ref time":>9} {"×ref mem":>8}')
    print(header)
    print('-' * len(header))
    for case in cases:
        shape = case.shape
        paths, seconds, memory = measure(case, shape, device, args.repeat, args.compile)
        shape_text = '×'.join(map(str, shape))
        for path, sec, mem in zip(paths, seconds, memory):
            against = dict(fast=2, compiled=1).get(path)  # the reference, or the eager fast path
            against_ref = (f' {sec / seconds[against]:>9.3f} {mem / memory[against]:>8.3f}'
                           if against is not None else '')
            print(f'{case.name:<17} {shape_text:<13} {path:<10} {sec * 1e3:>9.1f} {sec / seconds[0]:>7.2f}'
                  f' {mem / 2**20:>9.1f} {mem / memory[0]:>7.2f}{against_ref}')


if __name__ == '__main__':
    main()
