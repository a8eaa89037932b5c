# Mask R-CNN, RedNet-50 + FPN whose output convs are 7x7 involutions, COCO 1x with a
# 2000-iteration warm-up (seed: 32.2 M params, 181.3 GFLOPs, 40.8 box / 36.4 mask AP).
_base_ = [
    '../_base_/models/mask-rcnn_rednet50_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x_warmup2000.py',
    '../_base_/default_runtime_det.py',
]

model = dict(neck=dict(type='InvolutionFPN'))
