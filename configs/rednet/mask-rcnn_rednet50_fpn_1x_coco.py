# Mask R-CNN, RedNet-50 + FPN, COCO 1x (seed: 34.2 M params, 224.2 GFLOPs, 39.9 box / 35.7 mask AP).
_base_ = [
    '../_base_/models/mask-rcnn_rednet50_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime_det.py',
]
