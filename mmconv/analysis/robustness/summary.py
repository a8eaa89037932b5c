"""Summaries of the evaluation rows: per-λ means with the best λ marked, and SDNet's fit of the best
test-time λ against the reconstruction error."""
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .sources import CLEAN

__all__ = ['best_lambdas', 'fit_best_lambda', 'summarize']


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
    summary = [
        dict(corruption=c, lam=lam, accuracy=float(np.mean(groups[(c, lam)])), best=False) for c in names
        for lam in lams if (c, lam) in groups
    ]
    best: Dict[str, dict] = {}
    for row in summary:
        if row['corruption'] not in best or row['accuracy'] > best[row['corruption']]['accuracy']:
            best[row['corruption']] = row
    for row in best.values():
        row['best'] = True
    return summary


def best_lambdas(rows: Sequence[dict], error_at: Optional[float] = None) -> List[dict]:
    """The most accurate λ of every (corruption, severity), clean included (ties: the first λ swept).

    Args:
        rows: the rows of :func:`~.evaluation.evaluate_robustness` of a λ sweep over CSC layers.
        error_at: which reconstruction error goes with it: ``None`` the error at the best λ itself
            (SDNet's script plots that), or the error at this λ (one of the swept values), the
            error observable before choosing λ.

    Returns:
        Rows with keys corruption, severity, param, best_lam, accuracy and recon_error.
    """
    by_setting: Dict[Tuple[str, int], List[dict]] = defaultdict(list)
    for row in rows:
        by_setting[(row['corruption'], row['severity'])].append(row)
    best = []
    for (corruption, severity), swept in by_setting.items():
        winner = max(swept, key=lambda r: r['accuracy'])  # max keeps the first of equals
        if error_at is None:
            error = winner['recon_error']
        else:
            at = [r for r in swept if r['lam'] is not None and np.isclose(r['lam'], error_at)]
            if not at:
                raise ValueError(f'error_at={error_at:g} is not one of the swept λ values '
                                 f'{sorted(r["lam"] for r in swept)}.')
            error = at[0]['recon_error']
        best.append(
            dict(corruption=corruption, severity=severity, param=winner.get('param'), best_lam=winner['lam'],
                 accuracy=winner['accuracy'], recon_error=error))
    return best


def fit_best_lambda(best: Sequence[dict]) -> List[dict]:
    """Per corruption, the least-squares line best λ = slope · recon_error + intercept over its
    severities (clean excluded), as SDNet fits it (``np.polyfit``, degree 1), and its R².

    Returns:
        Rows with keys corruption, num_points, slope, intercept, r2; the last three are ``None``
        where fewer than two distinct errors leave the line undetermined (a best λ that never
        changes gives the flat line, R² 1).
    """
    fits = []
    for corruption in dict.fromkeys(b['corruption'] for b in best if b['corruption'] != CLEAN):
        points = [(b['recon_error'], b['best_lam']) for b in best if b['corruption'] == corruption]
        errors, lams = (np.array(v, dtype=np.float64) for v in zip(*points))
        fit = dict(corruption=corruption, num_points=len(points), slope=None, intercept=None, r2=None)
        if np.ptp(lams) == 0:  # one best λ for every severity: the flat line fits exactly
            fit.update(slope=0.0, intercept=float(lams[0]), r2=1.0)
        elif len(np.unique(errors)) >= 2:
            slope, intercept = np.polyfit(errors, lams, 1)
            residual = float(((lams - (slope * errors + intercept))**2).sum())
            total = float(((lams - lams.mean())**2).sum())
            fit.update(slope=float(slope), intercept=float(intercept), r2=1.0 - residual / total)
        fits.append(fit)
    return fits
