# RedNet-101 on ImageNet-1k: RedNet-50's recipe with the depth changed.
_base_ = './rednet50_64xb32_in1k.py'

model = dict(backbone=dict(depth=101))
