# CedNet-38 on ImageNet-1k: CedNet-50's recipe with the depth changed.
_base_ = './cednet50_64xb32_in1k.py'

model = dict(backbone=dict(depth=38))
