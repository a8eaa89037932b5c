# SCConv-DenseNet121: DenseNet-121 with SCConv in every dense layer's 3x3 conv (128 -> 32
# channels), trained exactly as the baseline ../densenet/densenet121_1xb128_cifar100.py.
_base_ = '../densenet/densenet121_1xb128_cifar100.py'

model = dict(backbone=dict(op_cfg=dict(type='SCConv')))
