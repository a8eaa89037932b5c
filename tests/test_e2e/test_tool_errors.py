"""The tools' refusals: a missing dataset, and a checkpoint that pickles more than weights."""
import os

import pytest
import torch
from e2e_helpers import CLS_CONFIG, DET_CONFIG, run_tool

pytestmark = pytest.mark.slow


@pytest.mark.parametrize('config, loader, layout', [
    (CLS_CONFIG, 'train_dataloader', 'one folder per class'),
    (DET_CONFIG, 'train_dataloader', 'annotations/instances_<split>.json'),
], ids=['classifier', 'faster_rcnn'])
def test_missing_dataset_names_path_and_layout(config, loader, layout, tmp_path):
    missing = str(tmp_path / 'nowhere')
    result = run_tool(['tools/train.py', config, '--work-dir', str(tmp_path / 'work'),
                       '--cfg-options', f'{loader}.dataset.data_root={missing}'], check=False)
    assert result.returncode != 0
    assert missing in result.stderr and layout in result.stderr
    assert 'Traceback' not in result.stderr


def test_unsafe_checkpoint_is_refused(cls_data_options, tmp_path):
    checkpoint = str(tmp_path / 'unsafe.pth')
    # A callable is pickled by reference and would be resolved (imported) while loading.
    torch.save(dict(state_dict={}, meta={}, hook=os.getcwd), checkpoint)
    result = run_tool(['tools/test.py', CLS_CONFIG, checkpoint, '--work-dir', str(tmp_path),
                       '--cfg-options', *cls_data_options], check=False)
    assert result.returncode != 0
    assert f'Refusing to load checkpoint {checkpoint}' in result.stderr
    assert 'MMCONV_TRUSTED_CHECKPOINTS' in result.stderr
    assert 'Traceback' not in result.stderr
