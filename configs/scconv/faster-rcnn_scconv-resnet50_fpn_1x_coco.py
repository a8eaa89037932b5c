# Faster R-CNN, SCConv-ResNet50 + FPN, COCO 1x: the RedNet-50 detector, schedule and backbone
# settings with the backbone swapped. The checkpoint path is a placeholder for an mmconv
# SCConv-ResNet50 ImageNet checkpoint (mmconv ships CIFAR/Food-101 configs for it; train one on
# ImageNet with the same backbone and put it there, or override model.backbone.init_cfg).
_base_ = '../rednet/faster-rcnn_rednet50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        type='SCConvResNet', init_cfg=dict(checkpoint='checkpoints/scconv-resnet50_in1k.pth')))
