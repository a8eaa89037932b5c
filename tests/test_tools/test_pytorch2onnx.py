"""tools/deployment/pytorch2onnx.py on RedNet-26: exported, checked in onnxruntime, or refused."""
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

pytest.importorskip('onnxruntime', reason='onnxruntime is a test requirement (requirements/tests.txt)')

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/rednet/rednet26_64xb32_in1k.py'


@pytest.fixture(scope='module')
def rednet26_checkpoint(tmp_path_factory):
    """A RedNet-26 ImageNet classifier checkpoint (initialised, not trained)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import mmconv.models  # noqa: F401
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(osp.join(REPO_ROOT, CONFIG)).model)
    model.init_weights()
    path = tmp_path_factory.mktemp('rednet26') / 'rednet26.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def run_export(*args):
    return subprocess.run([sys.executable, 'tools/deployment/pytorch2onnx.py', *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


def test_export_matches_eager_in_onnxruntime(rednet26_checkpoint, tmp_path):
    import onnxruntime as ort
    out = tmp_path / 'r26.onnx'
    result = run_export(CONFIG, rednet26_checkpoint, out, '--shape', 64, 80, '--dynamic')
    assert result.returncode == 0, result.stderr[-3000:]
    errors = [float(e) for e in re.findall(r'max error (\S+) \(relative', result.stdout)]
    assert len(errors) == 2 and max(errors) <= 1e-4, result.stdout  # export size and another one
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    logits = session.run(None, {'input': torch.randn(3, 3, 96, 72).numpy()})[0]
    assert logits.shape == (3, 1000)  # batch and spatial size are dynamic


def test_checkpoint_of_another_model_is_refused(rednet26_checkpoint, tmp_path):
    out = tmp_path / 'r26.onnx'
    result = run_export(CONFIG, rednet26_checkpoint, out, '--cfg-options', 'model.head.num_classes=10')
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]  # after the libraries' import-time warnings
    assert last.startswith('pytorch2onnx.py: error: ') and 'Traceback' not in result.stderr
    assert 'does not fit the model' in last and 'head.fc.weight' in last
    assert not list(tmp_path.iterdir())  # nothing written
