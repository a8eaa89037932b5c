# Demo detector: Faster R-CNN with a ResNet-18 + narrow FPN, trained from scratch on the synthetic
# COCO-format set (3 shape classes, 128x128 images). A few CPU-minutes.
_base_ = [
    '../_base_/models/faster-rcnn_r50_fpn.py',
    '../_base_/datasets/demo_coco_detection.py',
    '../_base_/schedules/demo_det_6e.py',
    '../_base_/default_runtime_det.py',
]

# The backbone and the widths of its four stages: to try an mmconv backbone, change these two lines.
backbone = dict(type='ResNet', depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None)
backbone_channels = [64, 128, 256, 512]
fpn_channels = 64

model = dict(
    backbone=backbone,
    neck=dict(in_channels=backbone_channels, out_channels=fpn_channels),
    rpn_head=dict(in_channels=fpn_channels, feat_channels=fpn_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_channels), bbox_head=dict(in_channels=fpn_channels,
                                                                           fc_out_channels=256, num_classes=3)),
    # 128-px images hold at most four objects: 300 proposals and 64 sampled RoIs per image are
    # plenty, and RoIAlign and NMS dominate a CPU step.
    train_cfg=dict(rpn_proposal=dict(nms_pre=300, max_per_img=300), rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=300)))

default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
