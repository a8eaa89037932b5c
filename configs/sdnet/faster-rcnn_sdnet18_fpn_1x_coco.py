# Faster R-CNN, SDNet-18 (CSC stem) + FPN, COCO 1x: the RedNet-50 detector and schedule with the
# backbone swapped. The checkpoint path is a placeholder for the mmconv checkpoint of
# ../sdnet/sdnet18_1xb512_in1k.py.
_base_ = '../rednet/faster-rcnn_rednet50_fpn_1x_coco.py'

model = dict(
    backbone=dict(type='SDNet', depth=18, init_cfg=dict(checkpoint='checkpoints/sdnet18_1xb512_in1k.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
