"""Accuracy of a classifier under common corruptions, optionally over a sweep of the CSC λ.

Without --cifar-c the corruptions (gaussian/shot/impulse/speckle noise, gaussian/defocus blur,
contrast; five severities with CIFAR-10-C's parameters) are generated, seeded, from the config's
clean test set. With --cifar-c DIR the published CIFAR-10-C / CIFAR-100-C files are read
(<corruption>.npy and labels.npy). For models with CSC layers, --lambdas sets the sparse-coding λ of
all layers (or those matching --csc-layers) to each value in turn, SDNet's robust inference.

--preset sdnet reproduces SDNet's robust_inference.py: its four noises over its own grids (Gaussian
σ 0.02-0.20 and impulse 0.03-0.30 in 10 levels, shot 60→6 in 10, speckle 0.1-0.6 in 6), λ of the
first CSC layer swept over 0.1, 0.2, ..., 1.4, and the best λ of every noise level fitted against
the reconstruction error (least squares, as np.polyfit). Any of --corruptions, --severities,
--lambdas and --csc-layers narrows or replaces the preset's choice.

Writes to --out-dir (all files or none):
    robustness.csv           corruption, severity, param, lam, accuracy (%), num_samples, code_density,
                             recon_error (severity 0 = clean; param: the generated corruption's
                             parameter; for the selected CSC layers: the non-zero fraction of their
                             codes and ‖x − A z‖ / ‖x‖ of their inputs)
    summary.csv              per corruption (and 'mean', 'clean') and λ: accuracy averaged over
                             severities, and whether that λ is the corruption's best
    accuracy_vs_severity.png, and with --lambdas on CSC layers also
    accuracy_vs_lambda.png
    best_lambda.csv          per corruption and severity: the most accurate λ and its recon_error
                             (--fit-error-at LAM: the error at that λ instead)
    lambda_fit.csv           per corruption: best λ = slope · recon_error + intercept, R², points
    lambda_fit.png           those points and lines

Example:
    python tools/analysis_tools/robustness.py configs/sdnet/sdnet18_8xb16_cifar10.py ckpt.pth \
        --preset sdnet --out-dir work_dirs/robustness
"""
import argparse
import csv
import os
import os.path as osp
import re
import shutil
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import DictAction

from mmconv.analysis.robustness import (CLEAN, GRIDS, best_lambdas, evaluate_robustness, find_csc_layers,
                                        fit_best_lambda, load_classifier, summarize)
from mmconv.engine.checkpoint import CorruptCheckpointError, UnsafeCheckpointError

ROW_FIELDS = ('corruption', 'severity', 'param', 'lam', 'accuracy', 'num_samples', 'code_density', 'recon_error')
SUMMARY_FIELDS = ('corruption', 'lam', 'accuracy', 'best')
BEST_FIELDS = ('corruption', 'severity', 'param', 'best_lam', 'accuracy', 'recon_error')
FIT_FIELDS = ('corruption', 'num_points', 'slope', 'intercept', 'r2')
# SDNet's robust_inference.py: its noise grids, np.linspace(0.1, 1.4, 14), the first CSC layer only.
PRESETS = {'sdnet': dict(grid='sdnet', lambdas=[round(0.1 * k, 1) for k in range(1, 15)], first_csc_layer=True)}

# Mistakes in the command line or its files: reported in one line, without a traceback.
USER_ERRORS = (FileNotFoundError, ValueError, UnsafeCheckpointError, CorruptCheckpointError)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate a classifier on corrupted test images (and sweep the CSC λ).')
    parser.add_argument('config', help='classification config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--corruptions', nargs='+',
                        help='corruptions to evaluate (default: all generated ones, or every file in --cifar-c)')
    parser.add_argument('--severities', nargs='+', type=int,
                        help='severities: 1..5 for CIFAR-10-C\'s, 1..10 for SDNet\'s grids (default: all)')
    parser.add_argument('--preset', choices=sorted(PRESETS),
                        help='sdnet: SDNet\'s noise grids, λ sweep and best-λ fit (see the module docstring)')
    parser.add_argument('--lambdas', nargs='+', type=float, help='test-time λ values of the CSC layers to sweep')
    parser.add_argument(
        '--fit-error-at', type=float, metavar='LAM',
        help='fit the best λ against the reconstruction error at this swept λ (default: '
        'the error at the best λ, as SDNet\'s script)')
    parser.add_argument('--csc-layers', metavar='REGEX',
                        help='only CSC layers whose module name matches (re.search), e.g. "stem"')
    parser.add_argument('--cifar-c', metavar='DIR',
                        help='read CIFAR-10-C / CIFAR-100-C files from DIR instead of generating')
    parser.add_argument('--out-dir', default='work_dirs/robustness', help='where results go')
    parser.add_argument('--seed', type=int, default=0, help='seed of the generated noise')
    parser.add_argument('--batch-size', type=int, help='default: the test dataloader\'s')
    parser.add_argument('--device', help='default: cuda when available, else cpu')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. test_dataloader.num_workers=0')
    return parser.parse_args(argv)


def _format(value) -> str:
    if value is None:
        return ''
    if isinstance(value, float):
        return f'{value:.6g}'
    return str(value)


def write_csv(path: str, rows: Sequence[dict], fields: Sequence[str]) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _format(row[key]) for key in fields})


def write_all(out_dir: str, writers: Dict[str, Callable[[str], None]]) -> None:
    """Write every file into a temporary folder next to ``out_dir``, then move them in: a failure
    leaves ``out_dir`` as it was."""
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.robustness-', dir=out_dir)
    try:
        for name, write in writers.items():
            write(osp.join(staging, name))
        for name in writers:
            os.replace(osp.join(staging, name), osp.join(out_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _lam_label(lam) -> str:
    return 'model λ' if lam is None else f'λ={lam:g}'


def _panel_grid(count: int, sharey: bool):
    """A figure of ``count`` panels, four to a row (matplotlib with the Agg backend)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cols = min(4, count)
    rows = -(-count // cols)
    return plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False, sharey=sharey)


def _save_panels(fig, axes, count: int, path: str, legend: bool = True) -> None:
    """Blank the unused panels, add the first panel's legend, write ``path`` and close the figure."""
    import matplotlib.pyplot as plt
    for ax in list(axes.flat)[count:]:
        ax.axis('off')
    if legend:
        axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy_vs_severity(rows: Sequence[dict], path: str) -> None:
    """One panel per corruption (and the mean): accuracy over severity, one line per λ."""
    corruptions = list(dict.fromkeys(r['corruption'] for r in rows if r['corruption'] != CLEAN))
    lams = list(dict.fromkeys(r['lam'] for r in rows))
    clean = {r['lam']: r['accuracy'] for r in rows if r['corruption'] == CLEAN}
    panels = corruptions + ['mean']
    fig, axes = _panel_grid(len(panels), sharey=True)
    for ax, panel in zip(axes.flat, panels):
        for lam in lams:
            per_severity = {}
            for r in rows:
                if (r['lam'] == lam and r['corruption'] != CLEAN and panel in (r['corruption'], 'mean')):
                    per_severity.setdefault(r['severity'], []).append(r['accuracy'])
            if lam in clean:
                per_severity[0] = [clean[lam]]
            xs = sorted(per_severity)
            ax.plot(xs, [sum(per_severity[x]) / len(per_severity[x]) for x in xs], marker='o', label=_lam_label(lam))
        ax.set_title(panel if panel != 'mean' else 'mean over corruptions', fontsize=9)
        ax.set_xlabel('severity (0 = clean)', fontsize=8)
        ax.set_ylabel('top-1 accuracy (%)', fontsize=8)
        ax.grid(alpha=0.3)
    _save_panels(fig, axes, len(panels), path)


def plot_accuracy_vs_lambda(rows: Sequence[dict], summary: Sequence[dict], path: str) -> None:
    """One panel per corruption (and the mean): accuracy over λ, per severity and on average."""
    corruptions = list(dict.fromkeys(r['corruption'] for r in rows if r['corruption'] != CLEAN))
    panels = corruptions + ['mean']
    fig, axes = _panel_grid(len(panels), sharey=True)
    for ax, panel in zip(axes.flat, panels):
        if panel != 'mean':
            for severity in sorted({r['severity'] for r in rows if r['corruption'] == panel}):
                points = sorted(
                    (r['lam'], r['accuracy']) for r in rows if r['corruption'] == panel and r['severity'] == severity)
                ax.plot(*zip(*points), marker='.', alpha=0.6, label=f'severity {severity}')
        points = sorted((s['lam'], s['accuracy']) for s in summary if s['corruption'] == panel)
        ax.plot(*zip(*points), color='black', linewidth=2, label='mean over severities')
        best = next(s for s in summary if s['corruption'] == panel and s['best'])
        ax.axvline(best['lam'], color='red', linestyle='--', linewidth=1)
        ax.set_title(
            f'{panel} (best λ={best["lam"]:g})'
            if panel != 'mean' else f'mean over corruptions (best λ={best["lam"]:g})', fontsize=9)
        ax.set_xlabel('test-time λ', fontsize=8)
        ax.set_ylabel('top-1 accuracy (%)', fontsize=8)
        ax.grid(alpha=0.3)
    _save_panels(fig, axes, len(panels), path)


def plot_lambda_fit(best: Sequence[dict], fits: Sequence[dict], path: str) -> None:
    """Best λ against reconstruction error: one panel per corruption, its severities and the line."""
    fig, axes = _panel_grid(len(fits), sharey=False)
    for ax, fit in zip(axes.flat, fits):
        points = [(b['recon_error'], b['best_lam']) for b in best if b['corruption'] == fit['corruption']]
        ax.scatter(*zip(*points), s=14)
        title = fit['corruption']
        if fit['slope'] is not None:
            errors = np.linspace(min(p[0] for p in points), max(p[0] for p in points), 20)
            ax.plot(errors, fit['slope'] * errors + fit['intercept'], color='red', linewidth=1)
            title += f' (R²={fit["r2"]:.2f})'
        ax.set_title(title, fontsize=9)
        ax.set_xlabel('reconstruction error ‖x − Az‖/‖x‖', fontsize=8)
        ax.set_ylabel('best test-time λ', fontsize=8)
        ax.grid(alpha=0.3)
    _save_panels(fig, axes, len(fits), path, legend=False)


def report(summary: Sequence[dict], swept: bool) -> List[str]:
    """Readable lines: clean and mean corruption accuracy, and the best λ per corruption."""
    lines = []
    for label, key in (('clean accuracy', CLEAN), ('mean corruption accuracy', 'mean')):
        for s in summary:
            if s['corruption'] == key:
                at = f' at λ={s["lam"]:g}' if swept else ''
                lines.append(f'{label}{at}: {s["accuracy"]:.2f}%')
    for s in summary:
        if s['corruption'] not in (CLEAN, 'mean') and (s['best'] or not swept):
            best = f' (best λ={s["lam"]:g})' if swept else ''
            lines.append(f'{s["corruption"]}: {s["accuracy"]:.2f}%{best}')
    return lines


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    preset = PRESETS.get(args.preset, {})
    if preset and args.cifar_c:
        sys.exit(f'robustness.py: error: --preset {args.preset} generates its noise grids; drop --cifar-c '
                 'or the preset.')
    grid = GRIDS[preset.get('grid', 'cifar-c')]
    lambdas = args.lambdas or preset.get('lambdas')
    try:
        device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
        model, cfg = load_classifier(args.config, args.checkpoint, device, args.cfg_options)
        csc_layers, all_csc_layers = args.csc_layers, find_csc_layers(model)
        if csc_layers is None and preset.get('first_csc_layer') and all_csc_layers:
            csc_layers = f'^{re.escape(next(iter(all_csc_layers)))}$'
        rows = evaluate_robustness(model, cfg, corruptions=args.corruptions, severities=args.severities,
                                   lambdas=lambdas, csc_layers=csc_layers, cifar_c=args.cifar_c, seed=args.seed,
                                   batch_size=args.batch_size, progress=not args.no_progress, grid=grid)
        summary = summarize(rows)
        swept_codes = bool(lambdas) and rows[0]['recon_error'] is not None
        best = best_lambdas(rows, args.fit_error_at) if swept_codes else []
    except USER_ERRORS as error:
        sys.exit(f'robustness.py: error: {error}')
    writers = {
        'robustness.csv': lambda path: write_csv(path, rows, ROW_FIELDS),
        'summary.csv': lambda path: write_csv(path, summary, SUMMARY_FIELDS),
        'accuracy_vs_severity.png': lambda path: plot_accuracy_vs_severity(rows, path),
    }
    fits = fit_best_lambda(best)
    if swept_codes:
        writers['accuracy_vs_lambda.png'] = lambda path: plot_accuracy_vs_lambda(rows, summary, path)
        writers['best_lambda.csv'] = lambda path: write_csv(path, best, BEST_FIELDS)
        writers['lambda_fit.csv'] = lambda path: write_csv(path, fits, FIT_FIELDS)
        if fits:
            writers['lambda_fit.png'] = lambda path: plot_lambda_fit(best, fits, path)
    write_all(args.out_dir, writers)
    print('\n'.join(report(summary, bool(lambdas))))
    for fit in fits:
        line = ('undetermined (fewer than two distinct errors)' if fit['slope'] is None else
                f'best λ = {fit["slope"]:.4g} · recon_error + {fit["intercept"]:.4g} (R² {fit["r2"]:.3f})')
        print(f'{fit["corruption"]}: {line}, {fit["num_points"]} severities')
    print(f'Results written to {args.out_dir}')


if __name__ == '__main__':
    main()
