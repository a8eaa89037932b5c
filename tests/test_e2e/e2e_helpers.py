"""Helpers of the end-to-end tests: tool runs, interruption and checkpoint reading.

The tools run as subprocesses of the test interpreter (the project's venv) from the repository
root, exactly as a user runs them; their work dirs live under pytest's ``tmp_path``.
"""
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CONFIG = 'configs/demo/resnet18-w16_demo-cls.py'
DET_CONFIG = 'configs/demo/faster-rcnn_r18_fpn_demo-coco.py'
MASK_CONFIG = 'configs/demo/mask-rcnn_r18_fpn_demo-coco.py'
# Images in each split of the generated sets (classification: 80 per class in train, 20 in val).
NUM_TRAIN, NUM_VAL = 320, 80


def tool_env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.pop('MMCONV_TRUSTED_CHECKPOINTS', None)
    # The tools import mmconv from this checkout (as tools/dist_train.sh arranges), whatever
    # copy may be installed.
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [REPO_ROOT, env.get('PYTHONPATH')]))
    # One intra-op thread: on a small shared machine, several threads per process make these
    # tiny models many times slower (OpenMP threads wait on each other), never faster.
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


def run_tool(args: List[str], timeout: float = 300, check: bool = True,
             env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root; on an unexpected failure show its output."""
    result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                            env=env or tool_env())
    if check and result.returncode != 0:
        pytest.fail(f'{" ".join(args)} exited with {result.returncode}:\n'
                    f'{result.stdout[-4000:]}\n{result.stderr[-6000:]}')
    return result


def run_until_first_checkpoint(args: List[str], work_dir: str, timeout: float = 300) -> str:
    """Start ``python <args>``, kill it (SIGKILL, as a crash would) as soon as it has written its
    first checkpoint, and return that checkpoint's path."""
    marker = osp.join(work_dir, 'last_checkpoint')
    with open(osp.join(work_dir, 'interrupted_run.log'), 'w') as log:
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env=tool_env())
        deadline = time.time() + timeout
        checkpoint = ''
        try:
            while time.time() < deadline and proc.poll() is None:
                if osp.exists(marker):
                    with open(marker) as f:
                        checkpoint = f.read().strip()
                    if checkpoint.endswith('.pth'):
                        break
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert checkpoint.endswith('.pth'), (
        f'no checkpoint before the run ended (exit code {proc.returncode}); see {log.name}')
    return checkpoint


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def load_checkpoint(path: str) -> dict:
    from mmconv.engine.checkpoint import safe_torch_load
    return safe_torch_load(path, map_location='cpu')


def max_weight_difference(path_a: str, path_b: str) -> float:
    """max |a - b| over every floating-point tensor of two checkpoints' state dicts."""
    a, b = load_checkpoint(path_a)['state_dict'], load_checkpoint(path_b)['state_dict']
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if torch.is_floating_point(a[k]))


def metric_lines(stdout: str) -> Dict[str, float]:
    """The ``key: value`` lines tools/test.py prints at the end."""
    metrics = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition(': ')
        if sep and '/' in key and ' ' not in key:
            try:
                metrics[key] = float(value)
            except ValueError:
                pass
    return metrics


def refusal(result: subprocess.CompletedProcess) -> str:
    """The message of a run the tool refused: exit code 2, stderr from its one ``error:`` line
    on (a checkpoint mismatch lists keys on the lines below), no traceback."""
    assert result.returncode == 2, f'exit code {result.returncode}:\n{result.stderr[-4000:]}'
    assert 'Traceback' not in result.stderr, result.stderr[-4000:]
    lines = result.stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith('error: ')]
    assert len(starts) == 1, result.stderr[-4000:]
    return '\n'.join(lines[starts[0]:])


def data_root_options(root) -> List[str]:
    """``--cfg-options`` entries pointing the three dataloaders of a config at ``root``."""
    return [
        f'{loader}.dataset.data_root={root}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


def save_model_checkpoint(config: str, path: str, options: Optional[dict] = None,
                          classes: Optional[tuple] = None) -> None:
    """Save the untrained weights of ``config``'s model (``options`` merged into the config) as
    an mmengine checkpoint, with ``classes`` as the classes it was trained on."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    cfg.merge_from_dict(options or {})
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    meta = dict(dataset_meta=dict(classes=classes)) if classes else {}
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
