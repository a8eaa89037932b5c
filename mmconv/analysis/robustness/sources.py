"""Where corrupted test batches come from, behind one interface.

A source is an iterable of ``(corruption, severity, batch)`` with ``num_batches`` and ``params``
(the corruption parameter of each (corruption, severity), where known); severity 0 is the clean
test set. Two sources:

* :class:`GeneratedCorruptions`: the config's clean test set, after its test pipeline (resize,
  crop, ...), corrupted by :func:`.corruptions.corrupt` just before the model's data preprocessor,
  at the levels of a grid (CIFAR-10-C's severities or SDNet's noise grids);
* :class:`ArrayCorruptions`: a folder in the CIFAR-10-C / CIFAR-100-C layout (``<corruption>.npy``,
  uint8 5N × H × W × 3 RGB, severity s in rows (s−1)N … sN−1, and ``labels.npy``), fed through the
  config's test pipeline without its image-loading step; clean batches first when the config's
  test set is on disk.
"""
import copy
import glob
import math
import os.path as osp
from typing import Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.runner import Runner

from mmconv.analysis.inference import leaf_dataset
from mmconv.datasets.data_check import missing_dataset_paths
from .corruptions import SEVERITIES, SEVERITY_PARAMS, check_corruption, corrupt, resolve_corruptions

__all__ = [
    'ArrayCorruptions', 'Batch', 'CLEAN', 'CorruptedArrays', 'GeneratedCorruptions', 'array_batches', 'array_pipeline',
    'clean_test_batches', 'corrupt_inputs'
]

CLEAN = 'clean'
CIFAR_C_LAYOUT = ('<corruption>.npy (uint8, 5N x H x W x 3, RGB; severity s in rows (s-1)N..sN-1) '
                  'and labels.npy (5N labels)')

Batch = Tuple[List[torch.Tensor], list, List[int]]  # inputs, data samples, dataset indices


def clean_test_batches(cfg: Config, batch_size: Optional[int] = None) -> Tuple[int, Iterator[Batch]]:
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
            osp.basename(p)[:-4] for p in glob.glob(osp.join(directory, '*.npy')) if osp.basename(p) != 'labels.npy')

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
            packed = pipeline(
                dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], gt_label=int(labels[index]),
                     sample_idx=index))
            inputs.append(packed['inputs'])
            samples.append(packed['data_samples'])
        yield inputs, samples, list(range(start, start + len(inputs)))


def corrupt_inputs(inputs: List[torch.Tensor], indices: List[int], corruption: str, severity: int, seed: int,
                   grid: Mapping[str, Tuple] = SEVERITY_PARAMS) -> List[torch.Tensor]:
    """Corrupt packed C × H × W inputs (uint8, or float in 0..255), image by image as one batch."""
    if all(x.shape == inputs[0].shape for x in inputs):
        groups = [(list(range(len(inputs))), torch.stack(inputs))]
    else:
        groups = [([i], x[None]) for i, x in enumerate(inputs)]
    out: List[Optional[torch.Tensor]] = [None] * len(inputs)
    for positions, batch in groups:
        ids = [indices[i] for i in positions]
        if batch.dtype == torch.uint8:
            result = corrupt(batch, corruption, severity, seed, ids, grid)
        else:
            result = corrupt(batch / 255, corruption, severity, seed, ids, grid) * 255
        for i, x in zip(positions, result):
            out[i] = x
    return out


class GeneratedCorruptions:
    """Each clean test batch, then that batch under every corruption and level of ``grid``.

    Args:
        cfg: the classification config (its test dataloader).
        corruptions: names in ``grid`` (``None``: all of them).
        severities: levels to use (``None``: every level of each corruption).
        grid: corruption → parameter per level (:data:`.corruptions.GRIDS`).
        seed: base seed of the noise. batch_size: default: the test dataloader's.
    """

    def __init__(self, cfg: Config, corruptions: Optional[Sequence[str]] = None,
                 severities: Optional[Sequence[int]] = None, grid: Mapping[str, Tuple] = SEVERITY_PARAMS, seed: int = 0,
                 batch_size: Optional[int] = None):
        self.names = resolve_corruptions(corruptions, grid)
        self.units = [(name, level) for name in self.names for level in (severities or range(1, len(grid[name]) + 1))]
        for name, level in self.units:
            check_corruption(name, level, grid)
        self.grid, self.seed = grid, seed
        self.params = {(name, level): grid[name][level - 1] for name, level in self.units}
        self.clean_batches, self.batches = clean_test_batches(cfg, batch_size)
        self.num_batches = self.clean_batches * (1 + len(self.units))
        self.description = 'generated corruptions'

    def __iter__(self) -> Iterator[Tuple[str, int, Batch]]:
        for batch in self.batches:
            yield CLEAN, 0, batch
            inputs, samples, indices = batch
            for name, level in self.units:
                yield name, level, (corrupt_inputs(inputs, indices, name, level, self.seed,
                                                   self.grid), samples, indices)


class ArrayCorruptions:
    """Clean test batches (when the config's test set is on disk), then the folder's arrays.

    Args:
        cfg: the classification config. directory: the CIFAR-10-C-style folder.
        corruptions: file names without ``.npy`` (``None``: every file). severities: 1..5 (``None``: all).
        batch_size: default: the test dataloader's.
    """

    def __init__(self, cfg: Config, directory: str, corruptions: Optional[Sequence[str]] = None,
                 severities: Optional[Sequence[int]] = None, batch_size: Optional[int] = None):
        self.arrays = CorruptedArrays(directory)
        self.params = {}  # the files do not say how they were made
        self.names = self.arrays.select(corruptions)
        self.severities = tuple(severities or SEVERITIES)
        for severity in self.severities:
            if severity not in SEVERITIES:
                raise ValueError(f'severities of CIFAR-10-C files lie in 1..5, got {severity!r}.')
        self.pipeline, self.to_bgr = array_pipeline(cfg)
        self.batch_size = batch_size or cfg.test_dataloader['batch_size']
        self.with_clean = not missing_dataset_paths(cfg, ('test_dataloader', ))
        self.clean_batches, self.batches = (
            clean_test_batches(cfg, self.batch_size) if self.with_clean else (0, iter(())))
        per_unit = math.ceil(self.arrays.per_severity / self.batch_size)
        self.num_batches = self.clean_batches + len(self.names) * len(self.severities) * per_unit
        self.description = directory

    def __iter__(self) -> Iterator[Tuple[str, int, Batch]]:
        for batch in self.batches:
            yield CLEAN, 0, batch
        for name in self.names:
            for severity in self.severities:
                images, labels = self.arrays.images(name, severity)
                for batch in array_batches(images, labels, self.pipeline, self.to_bgr, self.batch_size):
                    yield name, severity, batch
