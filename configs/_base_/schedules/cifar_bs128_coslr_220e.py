# SDNet CIFAR recipe (experiments/cifar10.yaml, cifar100.yaml): 220 epochs, SGD Nesterov lr 0.1
# (momentum 0.9), weight decay 5e-4, batch 128; cosine to 1e-6 updated every iteration.
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = dict(type='CosineAnnealingLR', T_max=220, by_epoch=True, eta_min=1e-6, convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=220, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
