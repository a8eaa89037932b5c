# The synthetic classification set of tools/misc/make_demo_data.py (four 32x32 pattern classes):
# data/demo/cls/{train,val}/<class>/*.png. Generate it with `python tools/misc/make_demo_data.py`.
dataset_type = 'CustomDataset'
data_root = 'data/demo/cls'

data_preprocessor = dict(num_classes=4, mean=[127.5, 127.5, 127.5], std=[64.0, 64.0, 64.0], to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]

# Workers run in the main process: the set is tiny, and exact resumption needs no worker streams.
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='train', pipeline=train_pipeline))
val_dataloader = dict(batch_size=64, num_workers=0, persistent_workers=False,
                      sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(type=dataset_type, data_root=data_root, data_prefix='val', pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
