# Follows the SCConv reproduction (seed 001/003): its DenseNet runs used batch 64 (for memory) at
# the same lr; otherwise ./densenet121_1xb128_cifar100.py.
_base_ = './densenet121_1xb128_cifar100.py'

train_dataloader = dict(batch_size=64)
auto_scale_lr = dict(base_batch_size=64)
