import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

import mmconv  # noqa: F401  (enables safe loading)
from mmconv.engine.checkpoint import TRUSTED_ENV, CorruptCheckpointError, UnsafeCheckpointError, safe_torch_load


def mmengine_like_checkpoint():
    hub = MessageHub.get_instance('test_checkpoint')
    for value in (1.0, np.float64(2.5), torch.tensor(3.0)):
        hub.update_scalar('train/loss', value)
    hub.update_info('iter', np.int64(7))
    return dict(
        meta=dict(epoch=1, iter=7, seed=np.int64(3),
                  dataset_meta=dict(classes=('a', 'b'))), state_dict={'w': torch.arange(4.)},
        message_hub=hub.state_dict(), optimizer=dict(state={}, param_groups=[dict(lr=0.1, params=[0])]),
        rng_state=dict(numpy=np.random.get_state(), torch=torch.get_rng_state()))


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(mmengine_like_checkpoint(), path)
    loaded = _load_checkpoint(path, map_location='cpu')
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx((1.0 + 2.5 + 3.0) / 3)
    assert buffer.current() == pytest.approx(3.0)
    assert loaded['meta']['seed'] == 3
    assert torch.equal(loaded['state_dict']['w'], torch.arange(4.))


def test_loads_before_any_history_buffer_exists(tmp_path, monkeypatch):
    # HistoryBuffer registers its built-in statistics when a first buffer is created; a fresh
    # process that only evaluates (tools/test.py) loads checkpoints before that happens.
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(mmengine_like_checkpoint(), path)
    monkeypatch.setattr(HistoryBuffer, '_statistics_methods', {})
    buffer = safe_torch_load(path)['message_hub']['log_scalars']['train/loss']
    assert buffer.max() == pytest.approx(3.0)


def test_checkpoint_with_a_callable_is_refused(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'hook': os.system}, path)
    with pytest.raises(UnsafeCheckpointError, match=r'posix\.system.*' + TRUSTED_ENV):
        _load_checkpoint(path, map_location='cpu')


def test_getattr_gadget_is_refused(tmp_path):

    class Gadget:

        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    path = str(tmp_path / 'gadget.pth')
    torch.save({'x': Gadget()}, path)
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(path)


def test_trusted_checkpoint_loads_fully(tmp_path, monkeypatch):
    path = str(tmp_path / 'trusted.pth')
    torch.save({'fn': os.path.join}, path)
    monkeypatch.setenv(TRUSTED_ENV, path)
    assert safe_torch_load(path)['fn'] is os.path.join


def test_truncated_checkpoint_gives_a_clear_error(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(mmengine_like_checkpoint(), str(good))
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CorruptCheckpointError, match='bad.pth cannot be read'):
        safe_torch_load(str(bad))


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth does not exist'):
        safe_torch_load(str(tmp_path / 'nope.pth'))
