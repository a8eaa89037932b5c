# ResNet-50 (ImageNet stem) on CIFAR-100 upsampled to 224, the SCConv reproduction's baseline:
# 200 epochs, SGD lr 0.05 (wd 5e-4), x0.1 at epochs 100 and 150, batch 128 on one GPU.
_base_ = [
    '../_base_/models/resnet50.py',
    '../_base_/datasets/cifar100_bs128_resize224.py',
    '../_base_/schedules/cifar_bs128_step_200e.py',
    '../_base_/default_runtime_cls.py',
]

model = dict(head=dict(num_classes=100))
