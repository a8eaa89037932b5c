"""End to end: the demo Faster R-CNN (and Mask R-CNN) through tools/train.py, --resume and
tools/test.py, on a few images of the generated COCO set."""
import os.path as osp
import re

import pytest

from e2e_helpers import DET_CONFIG, MASK_CONFIG, load_checkpoint, metric_lines, run_tool

pytestmark = pytest.mark.slow

# Two iterations of 4 images per epoch; validation (at the end of each run) and testing use 8
# images too. A score threshold of 0 keeps every detection, so an untrained model still yields
# results to evaluate. `indices` is not in the configs, hence the new-key prefix `+`.
SHORT_RUN = [
    *(f'+{split}_dataloader.dataset.indices=8' for split in ('train', 'val', 'test')),
    'model.test_cfg.rcnn.score_thr=0.0'
]
ITERS_PER_EPOCH = 2


@pytest.mark.parametrize('config, metrics', [
    (DET_CONFIG, ['coco/bbox_mAP', 'coco/bbox_mAP_50']),
    (MASK_CONFIG, ['coco/bbox_mAP', 'coco/segm_mAP']),
], ids=['faster_rcnn', 'mask_rcnn'])
def test_train_resume_then_test(config, metrics, det_data_options, tmp_path):
    work_dir = str(tmp_path)
    options = ['--cfg-options', *det_data_options, *SHORT_RUN]
    run_tool(['tools/train.py', config, '--work-dir', work_dir, *options, 'train_cfg.max_epochs=1'])
    meta = load_checkpoint(osp.join(work_dir, 'epoch_1.pth'))['meta']
    assert (meta['epoch'], meta['iter']) == (1, ITERS_PER_EPOCH)

    resumed = run_tool(
        ['tools/train.py', config, '--work-dir', work_dir, '--resume', *options, 'train_cfg.max_epochs=2'])
    log = resumed.stdout + resumed.stderr
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in log
    assert re.search(r'Epoch\(train\)\s+\[2\]', log)
    assert not re.search(r'Epoch\(train\)\s+\[1\]', log)
    meta = load_checkpoint(osp.join(work_dir, 'epoch_2.pth'))['meta']
    assert (meta['epoch'], meta['iter']) == (2, 2 * ITERS_PER_EPOCH)

    tested = run_tool(['tools/test.py', config, osp.join(work_dir, 'epoch_2.pth'), '--work-dir', work_dir, *options])
    printed = metric_lines(tested.stdout)
    assert all(key in printed for key in metrics), tested.stdout[-2000:]
    assert all(0.0 <= printed[key] <= 1.0 for key in metrics)
