# SDNet-18 classifier (github.com/Delay-Xili/SDNet): ResNet-18 with a convolutional sparse coding
# stem (lambda 0.1, 2 unrolled steps), ImageNet stem; plain cross-entropy. CIFAR configs set
# model.backbone.stem='cifar'; SDNet-18-all sets csc_layers='all' (and shortcut=False for the
# variant without skip connections).
model = dict(
    type='ImageClassifier', backbone=dict(type='SDNet', depth=18, csc_layers='stem', shortcut=True, stem='imagenet',
                                          lam=0.1, num_steps=2, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=1000, in_channels=512,
                                                      loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)))
