# SDNet-18-all without shortcuts on ImageNet-1k (the README's 69.03 % checkpoint), trained as
# SDNet-18-all.
_base_ = './sdnet18-all_1xb256_in1k.py'

model = dict(backbone=dict(shortcut=False))
