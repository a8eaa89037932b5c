# ResNet34 with 3x3 projection shortcuts (the SCCNet table's Conv3x3 baseline).
_base_ = './resnet34_1xb128_in1k.py'

model = dict(backbone=dict(downsample_kernel_size=3))
