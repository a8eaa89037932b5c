# CIFAR-10 (python version): data/cifar10/cifar-10-batches-py/. Nothing is downloaded.
_base_ = 'mmpretrain::_base_/datasets/cifar10_bs16.py'

train_dataloader = dict(batch_size=128, dataset=dict(data_root='data/cifar10', download=False))
val_dataloader = dict(batch_size=128, dataset=dict(data_root='data/cifar10', download=False))
test_dataloader = val_dataloader
