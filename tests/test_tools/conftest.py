"""Fixtures of the analysis-tool tests: a tiny generated class-folder set and classifiers on it."""
import os.path as osp
import subprocess
import sys

import pytest

from analysis_tool_helpers import NUM_VAL, PLAIN, REPO_ROOT, SDNET_ALL_NO_SHORTCUT, SDNET_STEM, write_model


@pytest.fixture(scope='session')
def class_folders(tmp_path_factory):
    """``<root>/val/<class>/*.png``: the demo generator's classification set, 8 val images."""
    pytest.importorskip('mmpretrain')
    root = tmp_path_factory.mktemp('tool_data')
    subprocess.run([
        sys.executable,
        osp.join(REPO_ROOT, 'tools/misc/make_demo_data.py'), '--out',
        str(root), '--seed', '0', '--num-train', '4', '--num-val',
        str(NUM_VAL)
    ], check=True, capture_output=True, cwd=REPO_ROOT)
    return root / 'cls'


@pytest.fixture(scope='session')
def sdnet_model(class_folders, tmp_path_factory):
    """(config, checkpoint) of an SDNet-18 (CSC stem) classifier, 8 channels wide, fitted to the
    test images."""
    return write_model(tmp_path_factory.mktemp('sdnet') / 'm', class_folders, SDNET_STEM, fit_steps=30)


@pytest.fixture(scope='session')
def sdnet_all_model(class_folders, tmp_path_factory):
    """(config, checkpoint) of an SDNet-18-all classifier without shortcut, 8 channels wide."""
    return write_model(tmp_path_factory.mktemp('sdnet_all') / 'm', class_folders, SDNET_ALL_NO_SHORTCUT)


@pytest.fixture(scope='session')
def plain_model(class_folders, tmp_path_factory):
    """(config, checkpoint) of the demo ResNet classifier (no CSC layer)."""
    return write_model(tmp_path_factory.mktemp('plain') / 'm', class_folders, PLAIN)
