# SCConv ImageNet recipe (paper, Sec. 4.1): 100 epochs, SGD lr 0.1 (momentum 0.9), weight decay
# 1e-4, divided by 10 every 30 epochs. The paper does not state the batch; lr 0.1 is the usual
# rate for batch 256, which is taken here.
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
