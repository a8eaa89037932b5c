# CIFAR-100 (python version): data/cifar100/cifar-100-python/. Nothing is downloaded.
_base_ = 'mmpretrain::_base_/datasets/cifar100_bs16.py'

train_dataloader = dict(batch_size=128, dataset=dict(data_root='data/cifar100', download=False))
val_dataloader = dict(batch_size=128, dataset=dict(data_root='data/cifar100', download=False))
test_dataloader = val_dataloader
