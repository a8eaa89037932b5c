# mmdet's RetinaNet (ResNet-50 + FPN from C3 with two strided extra levels on C5, focal-loss head,
# 80 COCO classes); configs override the backbone and classes.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'
