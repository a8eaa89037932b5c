"""Accuracy of a classifier on corrupted test images, optionally over a sweep of the CSC λ: one
evaluation loop over any source of :mod:`.sources`.

For models with CSC layers the sparse-coding λ of all or selected layers can be swept at test time
(SDNet's robust inference, Dai et al., NeurIPS 2022): every batch is scored at every λ, and the mean
fraction of non-zero code entries of the swept layers and their relative reconstruction error are
recorded with each accuracy (:class:`.metering.CodeMeter`).
"""
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from torch import nn

from mmconv.analysis.config import load_config
from mmconv.analysis.inference import load_model
from mmconv.ops.csc import set_csc_lambda
from .corruptions import SEVERITY_PARAMS
from .metering import CodeMeter, find_csc_layers
from .sources import ArrayCorruptions, Batch, GeneratedCorruptions

__all__ = ['RobustnessEvaluator', 'Tally', 'evaluate_robustness', 'load_classifier']


def load_classifier(config: str, checkpoint: str, device: str = 'cpu',
                    cfg_options: Optional[dict] = None) -> Tuple[nn.Module, Config]:
    """:func:`~mmconv.analysis.inference.load_model` for classification (mmpretrain) configs."""
    cfg = load_config(config, cfg_options)
    if cfg.get('default_scope') != 'mmpretrain':
        raise ValueError(f'{config} is not a classification config (default_scope '
                         f'{cfg.get("default_scope")!r}, expected \'mmpretrain\').')
    return load_model(config, checkpoint, device, cfg_options)


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
        params: the corruption parameter of each (corruption, severity), reported with its rows
            (a source's ``params``).
    """
    model: nn.Module
    lambdas: Optional[Sequence[float]] = None
    csc_layers: Optional[str] = None
    params: Dict[Tuple[str, int], object] = field(default_factory=dict)
    tallies: Dict[Tuple[str, int, Optional[float]], Tally] = field(default_factory=dict)

    def __post_init__(self):
        layers = find_csc_layers(self.model, self.csc_layers)
        if self.csc_layers is not None and not layers:
            raise ValueError(f'csc_layers {self.csc_layers!r} matches none of the model\'s CSC '
                             f'layers: {", ".join(find_csc_layers(self.model)) or "it has none"}.')
        if self.lambdas and not layers:
            raise ValueError('lambdas sweep the sparse-coding λ of CSC layers, but this model has no CSC '
                             'layer (CSCConv2d and friends); evaluate it without a λ sweep.')
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
            rows.append(
                dict(corruption=corruption, severity=severity, param=self.params.get(
                    (corruption, severity)), lam=lam, accuracy=100.0 * t.correct / t.total, num_samples=t.total,
                     code_density=nonzero / entries if self.layers else None,
                     recon_error=(residual / signal)**0.5 if self.layers else None))
        return rows

    def close(self) -> None:
        if self.meter is not None:
            self.meter.remove()


def evaluate_robustness(model: nn.Module, cfg: Config, corruptions: Optional[Sequence[str]] = None,
                        severities: Optional[Sequence[int]] = None, lambdas: Optional[Sequence[float]] = None,
                        csc_layers: Optional[str] = None, cifar_c: Optional[str] = None, seed: int = 0,
                        batch_size: Optional[int] = None, progress: bool = True,
                        grid: Mapping[str, Tuple] = SEVERITY_PARAMS) -> List[dict]:
    """Accuracy of ``model`` per corruption, severity (and λ), plus clean accuracy (severity 0).

    Without ``cifar_c`` the corruptions are generated from the config's test set at the levels of
    ``grid`` (CIFAR-10-C's severities by default; ``severities=None``: every level); with it they
    are read from that folder, and clean accuracy is added when the config's test set is on disk.
    The λ of the swept layers is restored afterwards.

    Returns:
        Rows (dicts) with keys corruption, severity, param (the generated corruption's parameter,
        else ``None``), lam, accuracy (%), num_samples, and for the selected CSC layers (``None``
        without CSC layers) code_density, the fraction of non-zero code entries, and recon_error,
        the relative reconstruction error ‖x − A z‖ / ‖x‖ of their inputs from their codes.
    """
    evaluator = RobustnessEvaluator(model, lambdas, csc_layers)
    if cifar_c is None:
        source = GeneratedCorruptions(cfg, corruptions, severities, grid, seed, batch_size)
    else:
        source = ArrayCorruptions(cfg, cifar_c, corruptions, severities, batch_size)
    evaluator.params = source.params
    saved_lambdas = {name: layer.lam for name, layer in evaluator.layers.items()}
    try:
        with _progress(source.num_batches * len(evaluator.sweep), source.description, progress) as bar:
            for corruption, severity, batch in source:
                evaluator.score(corruption, severity, batch, bar.update)
        if cifar_c is not None and not source.with_clean:
            print('Clean accuracy skipped: the config\'s test set is not on disk.', file=sys.stderr)
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
                self.bar = tqdm(total=self.total, desc=self.desc, unit='batch', file=sys.stderr, mininterval=1.0)
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
