# Mask R-CNN, SCConv-ResNet50 + FPN, COCO 1x: the RedNet-50 detector, schedule and backbone
# settings with the backbone swapped. The checkpoint path is a placeholder: train
# configs/scconv/scconv-resnet50_2xb128_in1k.py and copy its last checkpoint there, or override
# model.backbone.init_cfg.
_base_ = '../rednet/mask-rcnn_rednet50_fpn_1x_coco.py'

model = dict(
    backbone=dict(type='SCConvResNet', init_cfg=dict(checkpoint='checkpoints/scconv-resnet50_2xb128_in1k.pth')))
