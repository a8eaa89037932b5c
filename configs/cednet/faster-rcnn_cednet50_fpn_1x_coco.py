# Faster R-CNN, CedNet-50 + FPN, COCO 1x. The backbone checkpoint path is a placeholder for an
# mmconv CedNet-50 ImageNet checkpoint (see ../_base_/models/faster-rcnn_rednet50_fpn.py).
_base_ = '../rednet/faster-rcnn_rednet50_fpn_1x_coco.py'

model = dict(backbone=dict(type='CedNet', init_cfg=dict(checkpoint='checkpoints/cednet50_64xb32_in1k.pth')))
