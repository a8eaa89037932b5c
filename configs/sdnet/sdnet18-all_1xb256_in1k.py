# SDNet-18-all (every 3x3 conv a CSC layer, with shortcuts; the stem max-pool is a 3x3 stride-2
# CSC layer) on ImageNet-1k. SDNet's README trains it with TRAIN.BATCH_SIZE 256 and the ImageNet
# recipe otherwise unchanged (lr 0.1, wd 1e-4, x0.1 at 30/60/90 of 100 epochs), so the lr is
# 0.1 at batch 256 here.
_base_ = './sdnet18_1xb512_in1k.py'

model = dict(backbone=dict(csc_layers='all'))
train_dataloader = dict(batch_size=256)
auto_scale_lr = dict(base_batch_size=256)
