# SDNet-18-all without shortcuts (no skip connection, no ReLU: the non-negative codes are the only
# nonlinearity; the model SDNet visualises) on CIFAR-10, SDNet-18's recipe.
_base_ = './sdnet18-all_1xb128_cifar10.py'

model = dict(backbone=dict(shortcut=False))
