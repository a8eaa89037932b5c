"""End to end: the demo classifier through tools/train.py, --resume and tools/test.py."""
import glob
import os.path as osp
import re

import pytest

from e2e_helpers import CLS_CONFIG, NUM_TRAIN, load_checkpoint, metric_lines, run_tool

pytestmark = pytest.mark.slow

BATCH_SIZE = 16  # the demo config's
NUM_CLASSES = 4


def test_train_resume_then_test(cls_data_options, tmp_path):
    work_dir = str(tmp_path)
    options = ['--cfg-options', *cls_data_options]
    run_tool(['tools/train.py', CLS_CONFIG, '--work-dir', work_dir, *options, 'train_cfg.max_epochs=1'])
    iters_per_epoch = NUM_TRAIN // BATCH_SIZE
    meta = load_checkpoint(osp.join(work_dir, 'epoch_1.pth'))['meta']
    assert (meta['epoch'], meta['iter']) == (1, iters_per_epoch)

    resumed = run_tool(
        ['tools/train.py', CLS_CONFIG, '--work-dir', work_dir, '--resume', *options, 'train_cfg.max_epochs=3'])
    log = resumed.stdout + resumed.stderr
    assert f'resumed epoch: 1, iter: {iters_per_epoch}' in log
    # It went on with epochs 2 and 3 and did not train epoch 1 again.
    assert re.search(r'Epoch\(train\)\s+\[2\]', log) and re.search(r'Epoch\(train\)\s+\[3\]', log)
    assert not re.search(r'Epoch\(train\)\s+\[1\]', log)
    meta = load_checkpoint(osp.join(work_dir, 'epoch_3.pth'))['meta']
    assert (meta['epoch'], meta['iter']) == (3, 3 * iters_per_epoch)
    # The runtime keeps the best epoch on top-1 (validated every epoch) next to the periodic ones.
    best = glob.glob(osp.join(work_dir, 'best_accuracy_top1_epoch_*.pth'))
    assert len(best) == 1, sorted(glob.glob(osp.join(work_dir, '*.pth')))

    tested = run_tool(
        ['tools/test.py', CLS_CONFIG,
         osp.join(work_dir, 'epoch_3.pth'), '--work-dir', work_dir, *options])
    accuracy = metric_lines(tested.stdout)['accuracy/top1']
    chance = 100 / NUM_CLASSES
    assert accuracy >= 2 * chance, f'top-1 {accuracy:.1f}% is not well above chance ({chance}%)'
