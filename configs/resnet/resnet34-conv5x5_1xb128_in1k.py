# ResNet34 with 5x5 projection shortcuts (the SCCNet table's Conv5x5 baseline).
_base_ = './resnet34_1xb128_in1k.py'

model = dict(backbone=dict(downsample_kernel_size=5))
