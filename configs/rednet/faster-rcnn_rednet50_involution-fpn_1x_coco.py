# Faster R-CNN, RedNet-50 + FPN whose output convs are 7x7 involutions, COCO 1x with a
# 2000-iteration warm-up (seed: 29.5 M params, 135.0 GFLOPs, 40.2 box AP).
_base_ = [
    '../_base_/models/faster-rcnn_rednet50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x_warmup2000.py',
    '../_base_/default_runtime_det.py',
]

model = dict(neck=dict(type='InvolutionFPN'))
