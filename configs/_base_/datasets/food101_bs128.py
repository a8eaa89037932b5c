# Food-101 with its official split: data/food-101/{images/<class>/<id>.jpg, meta/{train,test}.txt}.
# Augmentation as in the SCConv reproduction: ImageNet-style RandomResizedCrop 224 + flip;
# testing resizes the short edge to 256 and crops 224.
dataset_type = 'Food101'
data_root = 'data/food-101'
data_preprocessor = dict(num_classes=101, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(batch_size=128, num_workers=8, dataset=dict(type=dataset_type, data_root=data_root,
                                                                    split='train', pipeline=train_pipeline),
                        sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(batch_size=128, num_workers=8, dataset=dict(type=dataset_type, data_root=data_root, split='test',
                                                                  pipeline=test_pipeline),
                      sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
