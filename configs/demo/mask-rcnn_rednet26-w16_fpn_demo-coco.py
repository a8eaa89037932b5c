# Demo instance segmentation with an mmconv backbone: the demo Mask R-CNN with its ResNet-18
# swapped for a narrow RedNet-26 (involution bottlenecks; stage widths 64/128/256/512, 16 base
# channels), trained from scratch on the synthetic COCO-format set with its polygon masks.
_base_ = './mask-rcnn_r18_fpn_demo-coco.py'

backbone = dict(_delete_=True, type='RedNet', depth=26, stem_channels=32, base_channels=16, out_indices=(0, 1, 2, 3),
                init_cfg=None)
model = dict(backbone=backbone, neck=dict(in_channels=[64, 128, 256, 512]))
