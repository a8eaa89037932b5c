# SCConv-ResNet50: ResNet-50 with SCConv in every bottleneck's 3x3 conv (the strided
# ones included), trained exactly as the baseline ../resnet/resnet50_1xb128_cifar10.py.
_base_ = '../resnet/resnet50_1xb128_cifar10.py'

model = dict(backbone=dict(op_cfg=dict(type='SCConv')))
