# Follows the SCConv reproduction (seed 001/003): SCConv-ResNet50 trained as its baseline
# ../resnet/resnet50-repro_1xb128_food101.py.
_base_ = '../resnet/resnet50-repro_1xb128_food101.py'

model = dict(backbone=dict(op_cfg=dict(type='SCConv')))
