# Demo single-stage detector with an mmconv backbone: RetinaNet on a narrow RedNet-26 (involution
# bottlenecks; stage widths 64/128/256/512, 16 base channels) + narrow FPN (P3-P7, as RetinaNet's),
# trained from scratch on the synthetic COCO-format set (3 shape classes, 128x128 images).
_base_ = [
    '../_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/demo_coco_detection.py',
    '../_base_/schedules/demo_det_6e.py',
    '../_base_/default_runtime_det.py',
]

fpn_channels = 64

model = dict(
    backbone=dict(_delete_=True, type='RedNet', depth=26, stem_channels=32, base_channels=16, out_indices=(0, 1, 2, 3),
                  init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=fpn_channels),
    # Group norm in the head's conv towers (as in RetinaNet-GN): without it, from scratch, the
    # focal loss barely moves in the demo's few hundred steps.
    bbox_head=dict(num_classes=3, in_channels=fpn_channels, feat_channels=fpn_channels,
                   norm_cfg=dict(type='GN', num_groups=16, requires_grad=True)))

# From scratch, AdamW trains this single-stage detector about twice as far as the demo schedule's
# SGD in the same steps (bbox mAP 0.16 against 0.09 on the generated set).
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=0.05))

default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
