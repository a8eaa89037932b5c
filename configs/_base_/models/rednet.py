# RedNet ImageNet classifier (the official cls/configs/_base_/models/rednet*.py): involution
# ResNet, global average pooling, linear head with label smoothing 0.1. Variants set the depth.
model = dict(
    type='ImageClassifier', backbone=dict(type='RedNet', depth=50,
                                          out_indices=(3, )), neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, loss_weight=1.0), topk=(1, 5)))
