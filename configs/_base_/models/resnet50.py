# ResNet-50 classifier on mmconv's operator ResNet, so that SCConv-ResNet50 is this model with
# one line more: model.backbone.op_cfg = dict(type='SCConv') puts SCConv in every bottleneck's
# 3x3 slot (strided ones included). Dataset configs set the head's num_classes.
model = dict(
    type='ImageClassifier', backbone=dict(type='OperatorResNet', depth=50, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048,
                                                      loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)))
