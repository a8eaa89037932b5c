# RedNet / CedNet ImageNet recipe, as the official mmcls config (involution's
# cls/configs/_base_/schedules/imagenet_bs2048_coslr_130e.py): 130 epochs, SGD Nesterov lr 0.8 at
# batch 2048 (32 x 64 GPUs), weight decay 1e-4; cosine to 0 over all 130 epochs (stepped per
# epoch), multiplied during the first 3130 iterations (5 epochs at batch 2048) by a linear warm-up
# from 0.25, as mmcv's warm-up scales the cosine's lr: both schedulers are multiplicative.
# LinearLR reaches its end factor at iteration end - 1, mmcv's warm-up at warmup_iters: end is
# one more than the official 3130.
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.8, momentum=0.9, weight_decay=1e-4, nesterov=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.25, by_epoch=False, begin=0, end=3131),
    dict(type='CosineAnnealingLR', T_max=130, by_epoch=True, begin=0, end=130, eta_min=0),
]
train_cfg = dict(by_epoch=True, max_epochs=130, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=2048)
