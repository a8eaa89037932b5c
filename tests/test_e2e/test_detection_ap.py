"""End to end with an mmconv backbone: Faster R-CNN and Mask R-CNN on a narrow RedNet-26
(involution bottlenecks), trained from scratch by tools/train.py on the generated COCO set, then
tools/test.py on the saved checkpoint; the box (and mask) mAP must be far above what an untrained
model gets.

Why these thresholds. Initialised and never trained (four seeds), the same configs score on the
same val split (32 images) bbox mAP 0.001-0.003 (mAP@0.5 0.004-0.012) and segm mAP 0.000: random
boxes almost never overlap an object well. Trained as below they reached bbox mAP 0.177 (Faster)
and 0.128 / segm mAP 0.149 (Mask). A threshold of 0.05 is ~17x the best untrained score and
under 40% of the trained ones, leaving room for run-to-run noise (thread count, library versions).

Cost, single-threaded CPU time measured on the project's 2-core machine: Faster R-CNN 49 s
training + 8 s testing, Mask R-CNN 73 s + 11 s (startup included); about 2.5 minutes for the file.
"""
import os.path as osp

import pytest
from e2e_helpers import metric_lines, run_tool

pytestmark = pytest.mark.slow

FASTER_CONFIG = 'configs/demo/faster-rcnn_rednet26-w16_fpn_demo-coco.py'
MASK_CONFIG = 'configs/demo/mask-rcnn_rednet26-w16_fpn_demo-coco.py'
EPOCHS = 5
# 5 epochs of the 128 generated train images (32 iterations of 4): the demo schedule's 50-iteration
# warm-up, lr 0.02, x0.1 for the last epoch; no validation during training.
SCHEDULE = [f'train_cfg.max_epochs={EPOCHS}', 'train_cfg.val_interval=100',
            f'param_scheduler.1.milestones=[{EPOCHS - 1}]', f'param_scheduler.1.end={EPOCHS}',
            'default_hooks.checkpoint.interval=100']
UNTRAINED = {'coco/bbox_mAP': 0.003, 'coco/segm_mAP': 0.000}  # best of four seeds
THRESHOLDS = {'coco/bbox_mAP': 0.05, 'coco/segm_mAP': 0.05}


@pytest.mark.parametrize('config, metrics', [
    (FASTER_CONFIG, ['coco/bbox_mAP']),
    (MASK_CONFIG, ['coco/bbox_mAP', 'coco/segm_mAP']),
], ids=['faster_rcnn_rednet26', 'mask_rcnn_rednet26'])
def test_mmconv_detector_learns_the_generated_set(config, metrics, det_data_options, tmp_path):
    work_dir = str(tmp_path)
    options = ['--cfg-options', *det_data_options]
    run_tool(['tools/train.py', config, '--work-dir', work_dir, *options, *SCHEDULE], timeout=600)
    checkpoint = osp.join(work_dir, f'epoch_{EPOCHS}.pth')
    assert osp.exists(checkpoint)
    tested = run_tool(['tools/test.py', config, checkpoint, '--work-dir', work_dir, *options])
    printed = metric_lines(tested.stdout)
    for key in metrics:
        assert key in printed, tested.stdout[-2000:]
        assert printed[key] > THRESHOLDS[key], (
            f'{key} = {printed[key]:.3f} after training, not above {THRESHOLDS[key]} '
            f'(an untrained model gets {UNTRAINED[key]:.3f})')
