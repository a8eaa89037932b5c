# mmdet's Mask R-CNN (ResNet-50 + FPN, 80 COCO classes); configs override the backbone and classes.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
