# SDNet-18 (CSC stem, CIFAR stem) on CIFAR-100 with SDNet's recipe (experiments/cifar100.yaml):
# 220 epochs of SGD Nesterov lr 0.1 (wd 5e-4), cosine per iteration to 1e-6, batch 128 on one GPU;
# RandomCrop 32 (padding 4) + flip.
_base_ = [
    '../_base_/models/sdnet18.py',
    '../_base_/datasets/cifar100_bs128.py',
    '../_base_/schedules/cifar_bs128_coslr_220e.py',
    '../_base_/default_runtime_cls.py',
]

model = dict(backbone=dict(stem='cifar'), head=dict(num_classes=100))

# SDNet normalises CIFAR-100 with the CIFAR-10 statistics (one transform for both datasets).
data_preprocessor = dict(mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255])
