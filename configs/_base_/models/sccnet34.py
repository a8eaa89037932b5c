# SCCNet34 ImageNet classifier (github.com/Raven-Z-china/SCCNet): SCC 3x3 in every block, no
# activation anywhere, the released SCC 5x5 stride-2 projection shortcuts; plain cross-entropy.
# The four table variants set model.backbone.downsample.
model = dict(
    type='ImageClassifier', backbone=dict(type='SCCNet', depth=34, downsample='scc5x5', out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=1000, in_channels=512,
                                                      loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)))
