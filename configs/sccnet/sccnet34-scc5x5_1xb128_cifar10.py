# SCCNet34 (SCC 5x5 shortcuts, as released) on CIFAR-10, which the SCCNet README claims but gives
# no recipe or numbers for: a CIFAR stem (3x3 stride 1, BN, no max-pool) and SCCNet's own training
# recipe (model/train.py: SGD lr 0.1, wd 5e-5, cosine per epoch to 1e-4 over 120 epochs, batch
# 128); RandomCrop 32 (padding 4) + flip.
_base_ = [
    '../_base_/models/sccnet34.py',
    '../_base_/datasets/cifar10_bs128.py',
    '../_base_/schedules/imagenet_bs128_coslr_120e.py',
    '../_base_/default_runtime_cls.py',
]

model = dict(backbone=dict(stem_type='conv3', stem_pool=None), head=dict(num_classes=10))
