# SDNet-18-all (every 3x3 conv a CSC layer, with shortcuts) on CIFAR-100, SDNet-18's recipe.
_base_ = './sdnet18_1xb128_cifar100.py'

model = dict(backbone=dict(csc_layers='all'))
