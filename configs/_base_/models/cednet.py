# CedNet ImageNet classifier: RedNet's classifier with every involution a C-volution (the
# released CedNet configs are RedNet's with the backbone type changed). Variants set the depth.
_base_ = './rednet.py'

model = dict(backbone=dict(type='CedNet'))
