"""Train-step time, throughput and memory of mmconv's classifiers against their baselines.

Each mmconv model is measured with the convolution baseline it replaces, interleaved step by step
(baseline, model, baseline, model, …) so that load changes on a shared machine hit both alike, and
reported as ratios to the baseline. A step is forward, cross-entropy and backward of the whole
classifier (backbone, neck and head) on random images. Modes (``--modes``):

* ``eager`` and ``compiled`` (``torch.compile`` with Inductor, the default backend; the first step,
  compilation included, is reported apart);
* ``reference``: the mmconv model with every operator on its reference path (``impl='reference'``),
  eager; its ratio is to the eager fast path of the same model;

each in fp32 and, with ``--dtypes fp32 bf16``, under bf16 autocast.

Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated`` above what was held before the
step; on CPU the bytes of the distinct storages saved for backward and the peak resident set size
above the one before the step (sampled every millisecond).

Example::

    python tools/analysis_tools/benchmark_models.py --batch 8 --size 224 --out-dir work_dirs/bench
    python tools/analysis_tools/benchmark_models.py --models RedNet-50 --modes eager compiled \\
        --dtypes fp32 bf16 --device cuda --batch 64
"""
import argparse
import contextlib
import os.path as osp
import platform
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from torch import nn

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODES = ('eager', 'compiled', 'reference')
DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass
class Pair:
    """An mmconv classifier and the convolution baseline it is compared with.

    Attributes:
        name: what ``--models`` selects.
        config: the mmconv model's config, relative to the repository root.
        baseline: the baseline's name.
        baseline_config: the baseline's config.
        baseline_backbone: replaces the baseline config's backbone, when it has no config of its own.
    """
    name: str
    config: str
    baseline: str
    baseline_config: str
    baseline_backbone: Optional[dict] = None


PAIRS: List[Pair] = [
    Pair('RedNet-50', 'configs/rednet/rednet50_64xb32_in1k.py', 'ResNet-50', 'configs/_base_/models/resnet50.py'),
    Pair('CedNet-50', 'configs/cednet/cednet50_64xb32_in1k.py', 'ResNet-50', 'configs/_base_/models/resnet50.py'),
    Pair('SCConv-R50', 'configs/scconv/scconv-resnet50_1xb128_cifar10.py', 'ResNet-50',
         'configs/resnet/resnet50_1xb128_cifar10.py'),
    Pair('SCConv-D121', 'configs/scconv/scconv-densenet121_1xb128_cifar10.py', 'DenseNet-121',
         'configs/densenet/densenet121_1xb128_cifar10.py'),
    Pair('SCCNet34', 'configs/sccnet/sccnet34-scc3x3_1xb128_in1k.py', 'ResNet-34',
         'configs/resnet/resnet34_1xb128_in1k.py'),
    Pair('SDNet-18', 'configs/sdnet/sdnet18_1xb512_in1k.py', 'ResNet-18', 'configs/sdnet/sdnet18_1xb512_in1k.py',
         dict(type='OperatorResNet', depth=18, out_indices=(3, ))),
]


def build_classifier(config: str, backbone: Optional[dict] = None, reference: bool = False) -> nn.Module:
    """The config's classifier in train mode, its operators on the reference path if ``reference``."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import mmconv.models  # noqa: F401  (registers mmconv's backbones)
    cfg = Config.fromfile(osp.join(REPO_ROOT, config)).model
    if backbone is not None:
        cfg.backbone = backbone
    cfg.backbone.pop('init_cfg', None)
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg)
    if reference:
        set_reference(model)
    return model.train()


def set_reference(model: nn.Module) -> None:
    """Put every mmconv operator of ``model`` on its reference path."""
    from mmconv.ops.validation import IMPLS
    for module in model.modules():
        if getattr(module, 'impl', None) in IMPLS:
            module.impl = 'reference'


def release_free_memory() -> None:
    """Give the memory glibc keeps after frees back to the system, so that RSS measures a step.

    Without it, a step's tensors reuse pages that earlier steps left mapped and RSS hardly moves.
    """
    import ctypes
    import gc
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL('libc.so.6').malloc_trim(0)


class RSSPeak:
    """Peak resident set size of this process while the context runs, sampled every millisecond."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def current() -> int:
        with open('/proc/self/statm') as statm:
            return int(statm.read().split()[1]) * 4096

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(0.001)

    def __enter__(self) -> 'RSSPeak':
        self.peak = self.current()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class TrainStep:
    """Forward, cross-entropy and backward of a classifier on fixed random images."""

    def __init__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, dtype: Optional[torch.dtype],
                 compiled: bool):
        self.model = model
        self.forward = torch.compile(model) if compiled else model
        self.images, self.labels = images, labels
        self.dtype = dtype

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.images.device.type, dtype=self.dtype)

    def loss(self) -> torch.Tensor:
        with self.autocast():
            logits = self.forward(self.images, mode='tensor')
        return nn.functional.cross_entropy(logits.float(), self.labels)

    def run(self) -> None:
        self.model.zero_grad(set_to_none=True)
        self.loss().backward()

    def seconds(self) -> float:
        synchronize(self.images.device)
        start = time.perf_counter()
        self.run()
        synchronize(self.images.device)
        return time.perf_counter() - start

    def memory(self) -> Dict[str, int]:
        """Peak bytes of one step (CUDA) or bytes saved for backward and peak RSS increase (CPU)."""
        self.model.zero_grad(set_to_none=True)
        device = self.images.device
        if device.type == 'cuda':
            synchronize(device)
            held = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            self.run()
            synchronize(device)
            return dict(peak=torch.cuda.max_memory_allocated(device) - held)
        from mmconv.analysis.memory import saved_tensor_bytes
        saved = saved_tensor_bytes(self.loss)
        self.model.zero_grad(set_to_none=True)
        release_free_memory()
        with RSSPeak() as rss:
            before = rss.current()
            self.run()
        return dict(saved=saved, rss=max(0, rss.peak - before))


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@dataclass
class Result:
    """Medians of one model in one mode and dtype."""
    model: str
    mode: str
    dtype: str
    seconds: float
    first_seconds: float
    memory: Dict[str, int]
    against: str
    batch: int
    ratio_time: float = float('nan')
    ratio_memory: Dict[str, float] = None


def measure_interleaved(steps: Sequence[TrainStep], repeat: int) -> List[Tuple[float, float]]:
    """(first step seconds, median seconds) of each step, the timed steps interleaved."""
    firsts = [step.seconds() for step in steps]  # compilation, allocator and autotuning warm-up
    for step in steps:
        step.run()
    samples = [[] for _ in steps]
    for _ in range(repeat):
        for step, times in zip(steps, samples):
            times.append(step.seconds())
    return [(first, statistics.median(times)) for first, times in zip(firsts, samples)]


def benchmark_pair(pair: Pair, mode: str, dtype_name: str, batch: int, size: int, device: torch.device,
                   repeat: int) -> List[Result]:
    """The pair's two classifiers in one mode and dtype, interleaved; ratios to the right baseline."""
    torch.manual_seed(0)
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, 10, (batch, ), device=device)
    dtype = DTYPES[dtype_name]
    if mode == 'reference':
        builders = [(pair.name + ' fast', lambda: build_classifier(pair.config)),
                    (pair.name, lambda: build_classifier(pair.config, reference=True))]
    else:
        builders = [(pair.baseline, lambda: build_classifier(pair.baseline_config, pair.baseline_backbone)),
                    (pair.name, lambda: build_classifier(pair.config))]
    steps = [TrainStep(build().to(device), images, labels, dtype, mode == 'compiled') for _, build in builders]
    timings = measure_interleaved(steps, repeat)
    memories = [step.memory() for step in steps]
    if mode == 'compiled':
        torch._dynamo.reset()
    results = [
        Result(name, mode, dtype_name, sec, first, mem, builders[0][0], batch)
        for (name, _), (first, sec), mem in zip(builders, timings, memories)
    ]
    base, model = results
    model.ratio_time = model.seconds / base.seconds
    model.ratio_memory = {k: model.memory[k] / max(1, base.memory[k]) for k in model.memory}
    return results


def describe_device(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    try:
        lscpu = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        model = next(line.split(':', 1)[1].strip() for line in lscpu.splitlines() if line.startswith('Model name'))
    except (OSError, StopIteration):
        model = platform.processor() or 'unknown CPU'
    return f'{model}, {torch.get_num_threads()} threads'


def markdown(results: List[Result], device: torch.device) -> str:
    """The results as a markdown table: absolute numbers for the models and ratios to the baseline."""
    cuda = device.type == 'cuda'
    memory_head = 'peak MiB | ×base' if cuda else 'saved MiB | ×base | peak RSS MiB | ×base'
    header = f'| model | mode | dtype | vs | ms/step | img/s | ×base time | first step s | {memory_head} |'
    lines = [header, '|' + '---|' * (header.count('|') - 1)]
    for r in results:
        if r.ratio_memory is None:
            continue
        keys = ['peak'] if cuda else ['saved', 'rss']
        memory = ' | '.join(f'{r.memory[k] / 2**20:.0f} | {r.ratio_memory[k]:.2f}' for k in keys)
        throughput = r.batch / r.seconds
        lines.append(f'| {r.model} | {r.mode} | {r.dtype} | {r.against} | {r.seconds * 1e3:.0f} | '
                     f'{throughput:.1f} | {r.ratio_time:.2f} | {r.first_seconds:.1f} | {memory} |')
    return '\n'.join(lines)


def bar_chart(results: List[Result], path: str, title: str) -> None:
    """Time and memory ratios to the baseline, one group of bars per model."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = [r for r in results if r.ratio_memory is not None]
    memory_key = 'peak' if 'peak' in rows[0].memory else 'saved'
    labels = [f'{r.model}\n{r.mode} {r.dtype}' for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4.5))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r.ratio_time for r in rows], 0.4, label='time × baseline')
    ax.bar([x + 0.2 for x in xs], [r.ratio_memory[memory_key] for r in rows], 0.4,
           label=f'memory ({memory_key}) × baseline')
    ax.axhline(1.0, color='black', linewidth=0.8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=60, ha='right', fontsize=7)
    ax.set_ylabel('ratio to the baseline (reference mode: to the fast path)')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    names = [pair.name for pair in PAIRS]
    parser.add_argument('--models', nargs='+', choices=names, default=names)
    parser.add_argument('--modes', nargs='+', choices=MODES, default=['eager', 'compiled'])
    parser.add_argument('--dtypes', nargs='+', choices=sorted(DTYPES), default=['fp32'])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, default=8, help='images per step (default 8)')
    parser.add_argument('--size', type=int, default=224, help='image side (default 224)')
    parser.add_argument('--repeat', type=int, default=3, help='timed steps per model (median)')
    parser.add_argument('--threads', type=int, help="CPU intra-op threads (default: torch's)")
    parser.add_argument('--out-dir', help='write benchmark_models.md and benchmark_models.png here')
    args = parser.parse_args(argv)
    for name in ('batch', 'size', 'repeat'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be at least 1, got {getattr(args, name)}.')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda needs a CUDA GPU; this machine has none (use --device cpu).')
    if 'fp16' in args.dtypes and not args.device.startswith('cuda'):
        parser.error('fp16 autocast needs --device cuda; use bf16 on CPU.')
    return args


def main(argv=None) -> List[Result]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    pairs = [pair for pair in PAIRS if pair.name in args.models]
    title = (f'{describe_device(device)}, torch {torch.__version__}, batch {args.batch}, '
             f'{args.size}², median of {args.repeat}')
    print(f'# {title}')
    results: List[Result] = []
    for pair in pairs:
        for mode in args.modes:
            for dtype_name in args.dtypes:
                results += benchmark_pair(pair, mode, dtype_name, args.batch, args.size, device, args.repeat)
                print(f'measured {pair.name} {mode} {dtype_name}', flush=True)
    table = markdown(results, device)
    print(table)
    if args.out_dir:
        import os
        os.makedirs(args.out_dir, exist_ok=True)
        with open(osp.join(args.out_dir, 'benchmark_models.md'), 'w') as f:
            f.write(f'{title}\n\n{table}\n')
        bar_chart(results, osp.join(args.out_dir, 'benchmark_models.png'), title)
        print(f'Wrote {args.out_dir}/benchmark_models.md and benchmark_models.png.')
    return results


if __name__ == '__main__':
    main()
