# COCO 2017 boxes and masks: data/coco/{annotations/instances_{train,val}2017.json, train2017/, val2017/}.
_base_ = 'mmdet::_base_/datasets/coco_instance.py'
