# ResNet34 ImageNet classifier, the SCCNet table's baseline, on mmconv's operator ResNet: the
# shortcut variants set model.backbone.downsample_kernel_size (1, 3 or 5), the Mish variant
# model.backbone.act_cfg. Plain cross-entropy, as SCCNet's training script.
model = dict(
    type='ImageClassifier', backbone=dict(type='OperatorResNet', depth=34, downsample_kernel_size=1, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=1000, in_channels=512,
                                                      loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)))
