# Demo classifier: a narrow CIFAR-style ResNet-18 (16 base channels) on the synthetic 4-class set.
# Under a CPU-minute; `make demo` trains and tests it.
_base_ = ['../_base_/datasets/demo_cls.py', '../_base_/default_runtime_cls.py']

# The backbone and the width of its last feature map: to try an mmconv backbone, change these two
# settings (e.g. an mmconv RedNet/SCCNet/SDNet from mmconv/models/backbones/ and its width).
backbone = dict(type='ResNet_CIFAR', depth=18, stem_channels=16, base_channels=16, out_indices=(3, ))
backbone_channels = 128

model = dict(
    type='ImageClassifier', backbone=backbone, neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=4, in_channels=backbone_channels,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

# From scratch, AdamW gets this net to ~90% top-1 in 6 short epochs where SGD needs many more.
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=5e-3, weight_decay=0.05))
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True, T_max=6, eta_min=5e-5, convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=6, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=16)

default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
