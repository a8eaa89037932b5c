"""tools/dist_train.sh on CPU: two torchrun processes over gloo train the demo classifier."""
import os.path as osp
import subprocess
import sys

import pytest

from e2e_helpers import CLS_CONFIG, REPO_ROOT, free_port, load_checkpoint, tool_env

pytestmark = pytest.mark.slow


def test_two_processes_train_and_checkpoint(cls_data_options, tmp_path):
    work_dir = str(tmp_path)
    env = dict(tool_env(), PYTHON=sys.executable, PORT=str(free_port()))
    result = subprocess.run([
        'bash', 'tools/dist_train.sh', CLS_CONFIG, '2', '--work-dir', work_dir, '--cfg-options', *cls_data_options,
        'train_cfg.max_epochs=1'
    ], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert 'Distributed training: True' in log and 'GPU number: 2' in log  # world size
    assert "dist_cfg: {'backend': 'gloo'}" in log
    # 320 images, batch 16 per process, 2 processes: 10 iterations per epoch.
    meta = load_checkpoint(osp.join(work_dir, 'epoch_1.pth'))['meta']
    assert (meta['epoch'], meta['iter']) == (1, 10)
