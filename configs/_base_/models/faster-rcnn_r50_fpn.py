# mmdet's Faster R-CNN (ResNet-50 + FPN, 80 COCO classes); configs override the backbone and classes.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'
