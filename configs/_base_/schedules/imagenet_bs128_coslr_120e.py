# SCCNet34 / ResNet34 ImageNet recipe (SCCNet's model/train.py): 120 epochs, SGD lr 0.1
# (momentum 0.9, no Nesterov) at batch 128 on one GPU, weight decay 5e-5, no warm-up; cosine
# decay per epoch to lrf = 0.001 of the initial lr (its LambdaLR is exactly this schedule).
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-5))
param_scheduler = dict(type='CosineAnnealingLR', T_max=120, by_epoch=True, eta_min=1e-4)
train_cfg = dict(by_epoch=True, max_epochs=120, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
