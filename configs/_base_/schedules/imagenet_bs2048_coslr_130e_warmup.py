# RedNet / CedNet ImageNet recipe: 130 epochs, SGD Nesterov lr 0.8 at batch 2048 (32 x 64 GPUs),
# weight decay 1e-4, 5-epoch linear warm-up from 0.25 x lr, then cosine to 0.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.8, momentum=0.9, weight_decay=1e-4, nesterov=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.25, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=125, by_epoch=True, begin=5, end=130, eta_min=0),
]
train_cfg = dict(by_epoch=True, max_epochs=130, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=2048)
