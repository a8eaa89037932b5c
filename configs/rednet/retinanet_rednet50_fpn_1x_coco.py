# RetinaNet, RedNet-50 + FPN, COCO 1x with the official recipe (involution's
# det/configs/involution/retinanet_red50_fpn_1x_coco.py): lr 0.01 at batch 16 and a 2000-iteration
# warm-up (seed: 27.8 M params, 210.1 GFLOPs, 38.2 box AP).
_base_ = [
    '../_base_/models/retinanet_rednet50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x_warmup2000.py',
    '../_base_/default_runtime_det.py',
]

optim_wrapper = dict(optimizer=dict(lr=0.01))
