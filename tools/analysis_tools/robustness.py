"""Accuracy of a classifier under common corruptions, optionally over a sweep of the CSC λ.

Without --cifar-c the corruptions (gaussian/shot/impulse/speckle noise, gaussian/defocus blur,
contrast; five severities with CIFAR-10-C's parameters) are generated, seeded, from the config's
clean test set. With --cifar-c DIR the published CIFAR-10-C / CIFAR-100-C files are read
(<corruption>.npy and labels.npy). For models with CSC layers, --lambdas sets the sparse-coding λ of
all layers (or those matching --csc-layers) to each value in turn, SDNet's robust inference.

Writes to --out-dir:
    robustness.csv           corruption, severity, lam, accuracy (%), num_samples, code_density,
                             recon_error (severity 0 = clean; for the selected CSC layers: the
                             non-zero fraction of their codes and ‖x − A z‖ / ‖x‖ of their inputs)
    summary.csv              per corruption (and 'mean', 'clean') and λ: accuracy averaged over
                             severities, and whether that λ is the corruption's best
    accuracy_vs_severity.png, and accuracy_vs_lambda.png with --lambdas

Example:
    python tools/analysis_tools/robustness.py configs/sdnet/sdnet18_8xb16_cifar10.py ckpt.pth \
        --lambdas 0.1 0.2 0.4 0.8 --csc-layers 'stem' --out-dir work_dirs/robustness
"""
import argparse
import csv
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence

import torch
from mmengine.config import DictAction

from mmconv.analysis.robustness import CLEAN, evaluate_robustness, load_classifier, summarize
from mmconv.engine.checkpoint import CorruptCheckpointError, UnsafeCheckpointError
from mmconv.utils.corruptions import SEVERITIES

ROW_FIELDS = ('corruption', 'severity', 'lam', 'accuracy', 'num_samples', 'code_density',
              'recon_error')
SUMMARY_FIELDS = ('corruption', 'lam', 'accuracy', 'best')

# Mistakes in the command line or its files: reported in one line, without a traceback.
USER_ERRORS = (FileNotFoundError, ValueError, UnsafeCheckpointError, CorruptCheckpointError)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate a classifier on corrupted test images (and sweep the CSC λ).')
    parser.add_argument('config', help='classification config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--corruptions', nargs='+',
        help='corruptions to evaluate (default: all generated ones, or every file in --cifar-c)')
    parser.add_argument('--severities', nargs='+', type=int, default=list(SEVERITIES),
                        choices=SEVERITIES, help='severities, 1..5 (default: all)')
    parser.add_argument('--lambdas', nargs='+', type=float,
                        help='test-time λ values of the CSC layers to sweep')
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


def _lam_label(lam) -> str:
    return 'model λ' if lam is None else f'λ={lam:g}'


def plot_accuracy_vs_severity(rows: Sequence[dict], path: str) -> None:
    """One panel per corruption (and the mean): accuracy over severity, one line per λ."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    corruptions = list(dict.fromkeys(r['corruption'] for r in rows if r['corruption'] != CLEAN))
    lams = list(dict.fromkeys(r['lam'] for r in rows))
    clean = {r['lam']: r['accuracy'] for r in rows if r['corruption'] == CLEAN}
    panels = corruptions + ['mean']
    cols = min(4, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), squeeze=False,
                             sharey=True)
    for ax, panel in zip(axes.flat, panels):
        for lam in lams:
            per_severity = {}
            for r in rows:
                if (r['lam'] == lam and r['corruption'] != CLEAN
                        and panel in (r['corruption'], 'mean')):
                    per_severity.setdefault(r['severity'], []).append(r['accuracy'])
            if lam in clean:
                per_severity[0] = [clean[lam]]
            xs = sorted(per_severity)
            ax.plot(xs, [sum(per_severity[x]) / len(per_severity[x]) for x in xs], marker='o',
                    label=_lam_label(lam))
        ax.set_title(panel if panel != 'mean' else 'mean over corruptions', fontsize=9)
        ax.set_xlabel('severity (0 = clean)', fontsize=8)
        ax.set_ylabel('top-1 accuracy (%)', fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis('off')
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy_vs_lambda(rows: Sequence[dict], summary: Sequence[dict], path: str) -> None:
    """One panel per corruption (and the mean): accuracy over λ, per severity and on average."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    corruptions = list(dict.fromkeys(r['corruption'] for r in rows if r['corruption'] != CLEAN))
    panels = corruptions + ['mean']
    cols = min(4, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), squeeze=False,
                             sharey=True)
    for ax, panel in zip(axes.flat, panels):
        if panel != 'mean':
            for severity in sorted({r['severity'] for r in rows if r['corruption'] == panel}):
                points = sorted((r['lam'], r['accuracy']) for r in rows
                                if r['corruption'] == panel and r['severity'] == severity)
                ax.plot(*zip(*points), marker='.', alpha=0.6, label=f'severity {severity}')
        points = sorted((s['lam'], s['accuracy']) for s in summary if s['corruption'] == panel)
        ax.plot(*zip(*points), color='black', linewidth=2, label='mean over severities')
        best = next(s for s in summary if s['corruption'] == panel and s['best'])
        ax.axvline(best['lam'], color='red', linestyle='--', linewidth=1)
        ax.set_title(f'{panel} (best λ={best["lam"]:g})' if panel != 'mean'
                     else f'mean over corruptions (best λ={best["lam"]:g})', fontsize=9)
        ax.set_xlabel('test-time λ', fontsize=8)
        ax.set_ylabel('top-1 accuracy (%)', fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis('off')
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    try:
        device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
        model, cfg = load_classifier(args.config, args.checkpoint, device, args.cfg_options)
        rows = evaluate_robustness(
            model, cfg, corruptions=args.corruptions, severities=args.severities,
            lambdas=args.lambdas, csc_layers=args.csc_layers, cifar_c=args.cifar_c, seed=args.seed,
            batch_size=args.batch_size, progress=not args.no_progress)
    except USER_ERRORS as error:
        sys.exit(f'robustness.py: error: {error}')
    summary = summarize(rows)
    os.makedirs(args.out_dir, exist_ok=True)
    write_csv(osp.join(args.out_dir, 'robustness.csv'), rows, ROW_FIELDS)
    write_csv(osp.join(args.out_dir, 'summary.csv'), summary, SUMMARY_FIELDS)
    plot_accuracy_vs_severity(rows, osp.join(args.out_dir, 'accuracy_vs_severity.png'))
    if args.lambdas:
        plot_accuracy_vs_lambda(rows, summary, osp.join(args.out_dir, 'accuracy_vs_lambda.png'))
    print('\n'.join(report(summary, bool(args.lambdas))))
    print(f'Results written to {args.out_dir}')


if __name__ == '__main__':
    main()
