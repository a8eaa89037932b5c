"""Robustness to common corruptions, with SDNet's test-time λ sweep (what
``tools/analysis_tools/robustness.py`` runs).

:mod:`.corruptions` generates the corruptions (CIFAR-10-C's and SDNet's grids), :mod:`.sources`
turns a test set or a CIFAR-10-C folder into ``(corruption, severity, batch)``, :mod:`.evaluation`
scores them in one loop, :mod:`.metering` measures the CSC codes, :mod:`.summary` condenses the rows.
"""
from .corruptions import CORRUPTIONS, GRIDS, SDNET_NOISE_GRID, SEVERITIES, SEVERITY_PARAMS, corrupt, corrupt_array
from .evaluation import RobustnessEvaluator, evaluate_robustness, load_classifier
from .metering import CodeMeter, find_csc_layers
from .sources import CLEAN, ArrayCorruptions, CorruptedArrays, GeneratedCorruptions
from .summary import best_lambdas, fit_best_lambda, summarize

__all__ = [
    'ArrayCorruptions', 'CLEAN', 'CORRUPTIONS', 'CodeMeter', 'CorruptedArrays', 'GRIDS', 'GeneratedCorruptions',
    'RobustnessEvaluator', 'SDNET_NOISE_GRID', 'SEVERITIES', 'SEVERITY_PARAMS', 'best_lambdas', 'corrupt',
    'corrupt_array', 'evaluate_robustness', 'find_csc_layers', 'fit_best_lambda', 'load_classifier', 'summarize'
]
