# SDNet-18 (CSC stem, CIFAR stem) on CIFAR-10 with SDNet's recipe (experiments/cifar10.yaml):
# 220 epochs of SGD Nesterov lr 0.1 (wd 5e-4), cosine per iteration to 1e-6, batch 128 on one GPU;
# RandomCrop 32 (padding 4) + flip.
_base_ = [
    '../_base_/models/sdnet18.py',
    '../_base_/datasets/cifar10_bs128.py',
    '../_base_/schedules/cifar_bs128_coslr_220e.py',
    '../_base_/default_runtime_cls.py',
]

model = dict(backbone=dict(stem='cifar'), head=dict(num_classes=10))
