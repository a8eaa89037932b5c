# CIFAR-10 upsampled to 224x224 (the SCConv reproduction's CIFAR setting): train Resize 224 +
# horizontal flip, test Resize 224; normalised with the CIFAR-10 training-set mean/std.
_base_ = './cifar10_bs128.py'

train_pipeline = [
    dict(type='Resize', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='Resize', scale=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
