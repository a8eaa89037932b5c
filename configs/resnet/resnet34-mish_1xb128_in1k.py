# ResNet34 with Mish in place of every ReLU (the SCCNet table's ResNet34+Mish baseline).
_base_ = './resnet34_1xb128_in1k.py'

model = dict(backbone=dict(act_cfg=dict(type='Mish')))
