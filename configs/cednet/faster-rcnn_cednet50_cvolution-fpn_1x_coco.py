# Faster R-CNN, CedNet-50 + FPN whose output convs are 7x7 C-volutions (channel branch with 4
# groups, as released), COCO 1x with a 2000-iteration warm-up (released README: 29.8 M params,
# 92.3 GFLOPs, 40.5 box AP; see README for what this design gives).
_base_ = '../rednet/faster-rcnn_rednet50_involution-fpn_1x_coco.py'

model = dict(
    backbone=dict(type='CedNet', init_cfg=dict(checkpoint='checkpoints/cednet50_64xb32_in1k.pth')),
    neck=dict(type='CVolutionFPN'))
