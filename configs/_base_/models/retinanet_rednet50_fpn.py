# RetinaNet with a RedNet-50 backbone and mmdet's FPN (80 COCO classes), backbone set as in mmdet
# (all four stages out, stem + stage 1 frozen, batch norms frozen).
# The backbone starts from an mmconv ImageNet checkpoint; prefix 'backbone.' keeps the
# classifier's backbone weights and drops its head. The path is a placeholder: train
# configs/rednet/rednet50_64xb32_in1k.py and copy its last checkpoint there, or override it with
# --cfg-options model.backbone.init_cfg.checkpoint=PATH (or init_cfg=None to start from scratch).
_base_ = './retinanet_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True, type='RedNet', depth=50, out_indices=(
            0, 1, 2, 3), frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, init_cfg=dict(
                type='Pretrained', checkpoint='checkpoints/rednet50_64xb32_in1k.pth', prefix='backbone.')))
