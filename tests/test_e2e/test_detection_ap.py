"""End to end with an mmconv backbone: Faster R-CNN, Mask R-CNN and RetinaNet (involution FPN) on a
narrow RedNet-26 (involution bottlenecks), trained from scratch by tools/train.py on the generated
COCO set, then tools/test.py on the saved checkpoint; the box (and mask) mAP must be far above what
an untrained model gets.

Why these thresholds. Initialised and never trained (four seeds), the same configs score on the
generated val split (80 images) bbox mAP 0.000-0.004 (mAP@0.5 at most 0.015) and segm mAP 0.000:
random boxes almost never overlap an object well. Trained as below, with one or two CPU threads
(which changes the rounding, hence the run), they reached bbox mAP 0.22-0.28 (Faster) and
0.16-0.23 / segm mAP 0.18-0.26 (Mask). A threshold of 0.05 is 12x the best untrained score and
under a third of the worst trained one. (Five epochs are too few: one run ended at 0.12.)
RetinaNet: untrained (four seeds) bbox mAP 0.000-0.001 (mAP@0.5 at most 0.003); trained as below,
0.15-0.16 (mAP@0.5 0.37-0.40, one and two threads); the same 0.05 threshold holds.

Cost on the project's 2-core machine: Faster R-CNN about 65 s (training, then testing, process
start-up included), Mask R-CNN about 90 s, RetinaNet about 90 s; each under 3 minutes.
"""
import os.path as osp

import pytest

from e2e_helpers import metric_lines, run_tool

pytestmark = pytest.mark.slow

FASTER_CONFIG = 'configs/demo/faster-rcnn_rednet26-w16_fpn_demo-coco.py'
MASK_CONFIG = 'configs/demo/mask-rcnn_rednet26-w16_fpn_demo-coco.py'
RETINANET_CONFIG = 'configs/demo/retinanet_rednet26-w16_involution-fpn_demo-coco.py'
EPOCHS = 6
# 6 epochs of the first 128 generated train images (32 iterations of 4): the demo schedule's
# 50-iteration warm-up, the config's lr (SGD 0.02; RetinaNet's AdamW 2e-3), x0.1 for the last
# epoch; no validation during training. Testing uses the whole val split: CocoMetric scores every
# image of the annotation file, so a subset would count the images left out as missed.
SCHEDULE = [
    '+train_dataloader.dataset.indices=128', f'train_cfg.max_epochs={EPOCHS}', 'train_cfg.val_interval=100',
    f'param_scheduler.1.milestones=[{EPOCHS - 1}]', f'param_scheduler.1.end={EPOCHS}',
    'default_hooks.checkpoint.interval=100'
]
UNTRAINED = {'coco/bbox_mAP': 0.004, 'coco/segm_mAP': 0.000}  # best of four seeds, either model
THRESHOLDS = {'coco/bbox_mAP': 0.05, 'coco/segm_mAP': 0.05}


@pytest.mark.parametrize('config, metrics', [
    (FASTER_CONFIG, ['coco/bbox_mAP']),
    (MASK_CONFIG, ['coco/bbox_mAP', 'coco/segm_mAP']),
    (RETINANET_CONFIG, ['coco/bbox_mAP']),
], ids=['faster_rcnn_rednet26', 'mask_rcnn_rednet26', 'retinanet_rednet26_involution_fpn'])
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
