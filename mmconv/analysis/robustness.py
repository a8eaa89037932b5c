"""Accuracy of a classifier on corrupted test images, optionally over a sweep of the CSC λ.

What ``tools/analysis_tools/robustness.py`` runs. Two sources of corrupted images:

* generated: the config's clean test set, after its test pipeline (resize, crop, ...), corrupted by
  :func:`mmconv.utils.corruptions.corrupt` just before the model's data preprocessor;
* published: a folder in the CIFAR-10-C / CIFAR-100-C layout (``<corruption>.npy``, uint8
  5N × H × W × 3 RGB, severity s in rows (s−1)N … sN−1, and ``labels.npy``), fed through the
  config's test pipeline without its image-loading step.

For models with CSC layers the sparse-coding λ of all or selected layers can be swept at test time
(SDNet's robust inference, Dai et al., NeurIPS 2022): every batch is scored at every λ, and the mean
fraction of non-zero code entries of the swept layers and their relative reconstruction error are
recorded with each accuracy.
"""
import copy
import glob
import math
import os.path as osp
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.runner import Runner
from torch import nn

from mmconv.analysis.config import load_config
from mmconv.analysis.inference import leaf_dataset, load_model
from mmconv.datasets.data_check import missing_dataset_paths
from mmconv.ops.csc import SparseCodingLayer, set_csc_lambda
from mmconv.utils.corruptions import SEVERITIES, corrupt, resolve_corruptions

CLEAN = 'clean'
CIFAR_C_LAYOUT = ('<corruption>.npy (uint8, 5N x H x W x 3, RGB; severity s in rows (s-1)N..sN-1) '
                  'and labels.npy (5N labels)')

Batch = Tuple[List[torch.Tensor], list, List[int]]  # inputs, data samples, dataset indices


def find_csc_layers(model: nn.Module, pattern: Optional[str] = None) -> Dict[str, nn.Module]:
    """The CSC layers of ``model`` by qualified name: all, or those whose name matches ``pattern``.
    """
    regex = re.compile(pattern) if pattern is not None else None
    return {name: m for name, m in model.named_modules()
            if isinstance(m, SparseCodingLayer) and (regex is None or regex.search(name))}


def load_classifier(config: str,
                    checkpoint: str,
                    device: str = 'cpu',
                    cfg_options: Optional[dict] = None) -> Tuple[nn.Module, Config]:
    """:func:`~mmconv.analysis.inference.load_model` for classification (mmpretrain) configs."""
    cfg = load_config(config, cfg_options)
    if cfg.get('default_scope') != 'mmpretrain':
        raise ValueError(f'{config} is not a classification config (default_scope '
                         f'{cfg.get("default_scope")!r}, expected \'mmpretrain\').')
    return load_model(config, checkpoint, device, cfg_options)


def clean_test_batches(cfg: Config,
                       batch_size: Optional[int] = None) -> Tuple[int, Iterator[Batch]]:
    """The config's test set as (number of batches, iterator over packed batches), in order."""
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    if batch_size:
        loader_cfg['batch_size'] = batch_size
    loader_cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
    loader = Runner.build_dataloader(loader_cfg)

    def batches():
        seen = 0
        for batch in loader:
            samples = batch['data_samples']
            indices = [s.metainfo.get('sample_idx', seen + i) for i, s in enumerate(samples)]
            seen += len(samples)
            yield list(batch['inputs']), samples, indices

    return len(loader), batches()


class CorruptedArrays:
    """A folder in the CIFAR-10-C / CIFAR-100-C layout (see the module docstring)."""

    def __init__(self, directory: str):
        if not osp.isdir(directory):
            raise FileNotFoundError(f'Corruption folder {directory} does not exist; expected '
                                    f'{CIFAR_C_LAYOUT}.')
        labels_path = osp.join(directory, 'labels.npy')
        if not osp.isfile(labels_path):
            raise FileNotFoundError(f'{directory} has no labels.npy; expected {CIFAR_C_LAYOUT}.')
        self.directory = directory
        self.labels = np.load(labels_path)
        if self.labels.ndim != 1 or len(self.labels) % len(SEVERITIES):
            raise ValueError(f'{labels_path} must hold 5N labels (N per severity), got shape '
                             f'{self.labels.shape}.')
        self.per_severity = len(self.labels) // len(SEVERITIES)
        self.available = sorted(
            osp.basename(p)[:-4] for p in glob.glob(osp.join(directory, '*.npy'))
            if osp.basename(p) != 'labels.npy')

    def select(self, names: Optional[Sequence[str]]) -> Tuple[str, ...]:
        """Check a selection of corruptions (default: every file in the folder)."""
        if not names or list(names) == ['all']:
            if not self.available:
                raise FileNotFoundError(f'{self.directory} has no <corruption>.npy file; expected '
                                        f'{CIFAR_C_LAYOUT}.')
            return tuple(self.available)
        missing = [n for n in names if n not in self.available]
        if missing:
            files = ', '.join(m + '.npy' for m in missing)
            raise FileNotFoundError(f'{self.directory} has no {files}; it has: '
                                    f'{", ".join(self.available) or "nothing"}.')
        return tuple(names)

    def images(self, corruption: str, severity: int) -> Tuple[np.ndarray, np.ndarray]:
        """uint8 N × H × W × 3 RGB images and N labels of one corruption at one severity."""
        path = osp.join(self.directory, f'{corruption}.npy')
        array = np.load(path, mmap_mode='r')
        if array.dtype != np.uint8 or array.ndim != 4 or len(array) != len(self.labels):
            raise ValueError(f'{path} must be a uint8 array of {len(self.labels)} x H x W x C '
                             f'images (as labels.npy), got {array.dtype} {array.shape}.')
        rows = slice((severity - 1) * self.per_severity, severity * self.per_severity)
        return array[rows], self.labels[rows]


def array_pipeline(cfg: Config) -> Tuple[Compose, bool]:
    """The config's test pipeline without its image-loading transform.

    Returns:
        The pipeline, and whether images must be given as BGR: a pipeline that decodes files with
        ``LoadImageFromFile`` hands BGR images on (the data preprocessor's ``to_rgb`` undoes it).
    """
    pipeline = leaf_dataset(cfg.test_dataloader['dataset'])['pipeline']
    kept = [t for t in pipeline if not str(t['type']).split('.')[-1].startswith('LoadImage')]
    return Compose(kept), len(kept) < len(pipeline)


def array_batches(images: np.ndarray, labels: np.ndarray, pipeline: Compose, to_bgr: bool,
                  batch_size: int) -> Iterator[Batch]:
    """Packed batches of in-memory RGB images, as the test dataloader would give them."""
    for start in range(0, len(images), batch_size):
        inputs, samples = [], []
        for index in range(start, min(start + batch_size, len(images))):
            img = np.ascontiguousarray(images[index][..., ::-1] if to_bgr else images[index])
            packed = pipeline(dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
                                   gt_label=int(labels[index]), sample_idx=index))
            inputs.append(packed['inputs'])
            samples.append(packed['data_samples'])
        yield inputs, samples, list(range(start, start + len(inputs)))


def corrupt_inputs(inputs: List[torch.Tensor], indices: List[int], corruption: str, severity: int,
                   seed: int) -> List[torch.Tensor]:
    """Corrupt packed C × H × W inputs (uint8, or float in 0..255), image by image as one batch."""
    if all(x.shape == inputs[0].shape for x in inputs):
        groups = [(list(range(len(inputs))), torch.stack(inputs))]
    else:
        groups = [([i], x[None]) for i, x in enumerate(inputs)]
    out: List[Optional[torch.Tensor]] = [None] * len(inputs)
    for positions, batch in groups:
        ids = [indices[i] for i in positions]
        if batch.dtype == torch.uint8:
            result = corrupt(batch, corruption, severity, seed, ids)
        else:
            result = corrupt(batch / 255, corruption, severity, seed, ids) * 255
        for i, x in zip(positions, result):
            out[i] = x
    return out


class CodeMeter:
    """Sparsity and reconstruction quality of the codes that some CSC layers output.

    Accumulates, over forward passes, the number of non-zero code entries and of all entries, and
    the squared norms of each layer's input x and residual x − A z (A z decoded through the layer's
    dictionary), whose ratio is the statistic SDNet relates the best test-time λ to.
    """

    def __init__(self, layers: Dict[str, nn.Module]):
        self.counts = torch.zeros(4, dtype=torch.float64)  # non-zero, entries, ‖x − Az‖², ‖x‖²
        self._handles = [m.register_forward_hook(self._hook) for m in layers.values()]

    def _hook(self, module, inputs, output):
        x = inputs[0]
        decoded = (module.decode(output, x.shape[2:]) if hasattr(module, 'kernel_size')
                   else module.decode(output))
        self.counts += torch.stack([
            torch.count_nonzero(output).double().cpu(),
            torch.tensor(float(output.numel()), dtype=torch.float64),
            (x - decoded).double().pow(2).sum().cpu(),
            x.double().pow(2).sum().cpu()
        ])

    def take(self) -> torch.Tensor:
        """The four sums since the last call."""
        counts, self.counts = self.counts, torch.zeros_like(self.counts)
        return counts

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


@dataclass
class Tally:
    """Counts of one (corruption, severity, λ): correct predictions, samples, CodeMeter sums."""
    correct: int = 0
    total: int = 0
    code_counts: torch.Tensor = field(default_factory=lambda: torch.zeros(4, dtype=torch.float64))


@dataclass
class RobustnessEvaluator:
    """Scores a classifier on clean and corrupted batches at every λ of a sweep.

    Args:
        model: an mmpretrain classifier in eval mode.
        lambdas: test-time λ values to sweep over the CSC layers ``csc_layers``; ``None`` keeps the
            model's own λ.
        csc_layers: regular expression (``re.search``) on module names selecting the CSC layers to
            sweep and measure; ``None`` selects all.
    """
    model: nn.Module
    lambdas: Optional[Sequence[float]] = None
    csc_layers: Optional[str] = None
    tallies: Dict[Tuple[str, int, Optional[float]], Tally] = field(default_factory=dict)

    def __post_init__(self):
        layers = find_csc_layers(self.model, self.csc_layers)
        if self.csc_layers is not None and not layers:
            raise ValueError(f'--csc-layers {self.csc_layers!r} matches none of the model\'s CSC '
                             f'layers: {", ".join(find_csc_layers(self.model)) or "it has none"}.')
        if self.lambdas and not layers:
            raise ValueError('--lambdas sweeps the sparse-coding λ of CSC layers, but this model '
                             'has no CSC layer (CSCConv2d and friends); drop --lambdas to evaluate '
                             'it.')
        self.layers = layers
        self.meter = CodeMeter(layers) if layers else None

    @property
    def sweep(self) -> List[Optional[float]]:
        return list(self.lambdas) if self.lambdas else [None]

    def score(self, corruption: str, severity: int, batch: Batch, on_step=None) -> None:
        """Predict one batch at every λ; add the counts to the tallies of (corruption, severity)."""
        inputs, samples, _ = batch
        labels = torch.cat([s.gt_label.view(-1)[:1] for s in samples]).cpu()
        for lam in self.sweep:
            if lam is not None:
                set_csc_lambda(self.model, lam, lambda name, layer: name in self.layers)
            with torch.no_grad():
                outputs = self.model.test_step(dict(inputs=inputs, data_samples=samples))
            predicted = torch.cat([o.pred_label.view(-1)[:1] for o in outputs]).cpu()
            tally = self.tallies.setdefault((corruption, severity, lam), Tally())
            tally.correct += int((predicted == labels).sum())
            tally.total += len(labels)
            if self.meter is not None:
                tally.code_counts += self.meter.take()
            if on_step is not None:
                on_step()

    def rows(self) -> List[dict]:
        """One row per (corruption, severity, λ); see :func:`evaluate_robustness`."""
        rows = []
        for (corruption, severity, lam), t in self.tallies.items():
            nonzero, entries, residual, signal = t.code_counts.tolist()
            rows.append(dict(
                corruption=corruption, severity=severity, lam=lam,
                accuracy=100.0 * t.correct / t.total, num_samples=t.total,
                code_density=nonzero / entries if self.layers else None,
                recon_error=(residual / signal)**0.5 if self.layers else None))
        return rows

    def close(self) -> None:
        if self.meter is not None:
            self.meter.remove()


def evaluate_robustness(model: nn.Module,
                        cfg: Config,
                        corruptions: Optional[Sequence[str]] = None,
                        severities: Sequence[int] = SEVERITIES,
                        lambdas: Optional[Sequence[float]] = None,
                        csc_layers: Optional[str] = None,
                        cifar_c: Optional[str] = None,
                        seed: int = 0,
                        batch_size: Optional[int] = None,
                        progress: bool = True) -> List[dict]:
    """Accuracy of ``model`` per corruption, severity (and λ), plus clean accuracy (severity 0).

    Without ``cifar_c`` the corruptions are generated from the config's test set; with it they are
    read from that folder, and clean accuracy is added when the config's test set is on disk. The
    λ of the swept layers is restored afterwards.

    Returns:
        Rows (dicts) with keys corruption, severity, lam, accuracy (%), num_samples, and for the
        selected CSC layers (``None`` without CSC layers) code_density, the fraction of non-zero
        code entries, and recon_error, the relative reconstruction error ‖x − A z‖ / ‖x‖ of their
        inputs from their codes.
    """
    for severity in severities:
        if severity not in SEVERITIES:
            raise ValueError(f'severities must lie in 1..5, got {severity!r}.')
    evaluator = RobustnessEvaluator(model, lambdas, csc_layers)
    batch_size = batch_size or cfg.test_dataloader['batch_size']
    saved_lambdas = {name: layer.lam for name, layer in evaluator.layers.items()}
    with_clean = cifar_c is None or not missing_dataset_paths(cfg, ('test_dataloader', ))
    try:
        if cifar_c is None:
            names = resolve_corruptions(corruptions)
            num_batches, batches = clean_test_batches(cfg, batch_size)
            steps = num_batches * (1 + len(names) * len(severities)) * len(evaluator.sweep)
            with _progress(steps, 'generated corruptions', progress) as bar:
                for batch in batches:
                    evaluator.score(CLEAN, 0, batch, bar.update)
                    inputs, samples, indices = batch
                    for name in names:
                        for severity in severities:
                            corrupted = corrupt_inputs(inputs, indices, name, severity, seed)
                            evaluator.score(name, severity, (corrupted, samples, indices),
                                            bar.update)
        else:
            arrays = CorruptedArrays(cifar_c)
            names = arrays.select(corruptions)
            pipeline, to_bgr = array_pipeline(cfg)
            per_unit = math.ceil(arrays.per_severity / batch_size)
            clean_batches = clean_test_batches(cfg, batch_size) if with_clean else (0, iter(()))
            steps = clean_batches[0] + len(names) * len(severities) * per_unit
            steps *= len(evaluator.sweep)
            with _progress(steps, f'{cifar_c}', progress) as bar:
                for batch in clean_batches[1]:
                    evaluator.score(CLEAN, 0, batch, bar.update)
                for name in names:
                    for severity in severities:
                        images, labels = arrays.images(name, severity)
                        for batch in array_batches(images, labels, pipeline, to_bgr, batch_size):
                            evaluator.score(name, severity, batch, bar.update)
            if not with_clean:
                print('Clean accuracy skipped: the config\'s test set is not on disk.',
                      file=sys.stderr)
    finally:
        evaluator.close()
        for name, value in saved_lambdas.items():
            evaluator.layers[name].lam = value
    return evaluator.rows()


class _progress:
    """tqdm when installed and wanted, otherwise a line every 10 % on stderr."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.total, self.desc, self.enabled, self.done, self.bar = total, desc, enabled, 0, None

    def __enter__(self):
        if self.enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=self.total, desc=self.desc, unit='batch', file=sys.stderr,
                                mininterval=1.0)
            except ImportError:
                self.bar = None
        return self

    def update(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update()
        elif self.enabled and self.done * 10 // self.total != (self.done - 1) * 10 // self.total:
            print(f'{self.desc}: {self.done}/{self.total} batches', file=sys.stderr)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


def summarize(rows: Sequence[dict]) -> List[dict]:
    """Per λ: clean accuracy, mean corruption accuracy and, per corruption, the severities' mean.

    Returns:
        Rows with keys corruption (a name, ``'clean'`` or ``'mean'`` = mean corruption accuracy over
        every corruption and severity), lam, accuracy (%) and best (whether this λ is the best for
        that corruption; ties go to the first λ swept).
    """
    groups: Dict[Tuple[str, Optional[float]], List[float]] = defaultdict(list)
    for row in rows:
        groups[(row['corruption'], row['lam'])].append(row['accuracy'])
        if row['corruption'] != CLEAN:
            groups[('mean', row['lam'])].append(row['accuracy'])
    corruptions = [c for c, _ in groups if c not in (CLEAN, 'mean')]
    names = list(dict.fromkeys([CLEAN, *corruptions, 'mean']))
    lams = list(dict.fromkeys(lam for _, lam in groups))
    summary = [dict(corruption=c, lam=lam, accuracy=float(np.mean(groups[(c, lam)])), best=False)
               for c in names for lam in lams if (c, lam) in groups]
    best: Dict[str, dict] = {}
    for row in summary:
        if row['corruption'] not in best or row['accuracy'] > best[row['corruption']]['accuracy']:
            best[row['corruption']] = row
    for row in best.values():
        row['best'] = True
    return summary


__all__ = [
    'CLEAN', 'CorruptedArrays', 'CodeMeter', 'RobustnessEvaluator', 'array_batches',
    'find_csc_layers',
    'array_pipeline', 'corrupt_inputs', 'evaluate_robustness', 'load_classifier', 'summarize',
    'clean_test_batches'
]
