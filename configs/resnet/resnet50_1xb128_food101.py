# ResNet-50 on Food-101, the SCConv reproduction's baseline: 100 epochs, SGD lr 0.1
# (wd 1e-4), x0.1 at epochs 30, 60 and 90, batch 128 on one GPU; RandomResizedCrop 224 + flip,
# test resize 256 -> centre crop 224.
_base_ = [
    '../_base_/models/resnet50.py',
    '../_base_/datasets/food101_bs128.py',
    '../_base_/schedules/food101_bs128_step_100e.py',
    '../_base_/default_runtime_cls.py',
]

model = dict(head=dict(num_classes=101))
