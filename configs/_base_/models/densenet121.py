# DenseNet-121 classifier, so that SCConv-DenseNet121 is this model with one line more:
# model.backbone.op_cfg = dict(type='SCConv') puts SCConv (128 -> 32 channels) in every dense
# layer's 3x3 slot. Dataset configs set the head's num_classes.
model = dict(
    type='ImageClassifier', backbone=dict(type='OperatorDenseNet', arch='121', out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=1000, in_channels=1024,
                                                      loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)))
