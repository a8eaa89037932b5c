"""What importing mmconv.models does to other libraries: registrations only, one deliberate override.

Run in a fresh interpreter, so that nothing another test imported hides a change.
"""
import subprocess
import sys

import pytest

pytest.importorskip('mmpretrain')

PROBE = r'''
import mmengine.analysis.complexity_analysis as complexity
from mmpretrain.registry import DATASETS
import mmpretrain.datasets

defaults_before = dict(complexity._DEFAULT_SUPPORTED_FLOP_OPS)
upstream_food101 = DATASETS.get('Food101')

import mmconv.models  # noqa: F401

from mmconv.datasets import Food101
assert dict(complexity._DEFAULT_SUPPORTED_FLOP_OPS) == defaults_before, 'mmengine FLOP defaults changed'
assert upstream_food101 is not Food101 and upstream_food101.__module__.startswith('mmpretrain')
assert DATASETS.get('Food101') is Food101, 'mmconv Food101 does not replace upstream'
try:
    DATASETS.build(dict(type='Food101', data_root='/nonexistent/food-101'))
except FileNotFoundError as err:
    assert 'meta/classes.txt is missing' in str(err), err
else:
    raise AssertionError('a missing Food-101 was not refused')
print('ok')
'''


def test_models_import_overrides_only_food101_and_leaves_mmengine_defaults():
    """mmpretrain's Food101 is replaced (configs say type='Food101'; mmconv's names what is missing),
    and mmengine's default FLOP handles stay as they were (mmconv passes its handles per analyzer)."""
    result = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith('ok'), result.stderr[-2000:]
