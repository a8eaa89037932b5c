# Faster R-CNN, RedNet-50 + FPN, COCO 1x (seed: 31.6 M params, 177.9 GFLOPs, 39.5 box AP).
_base_ = [
    '../_base_/models/faster-rcnn_rednet50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
