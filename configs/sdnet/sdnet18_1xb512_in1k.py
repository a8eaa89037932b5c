# SDNet-18 (CSC stem, ImageNet stem) on ImageNet-1k with SDNet's recipe (experiments/ImageNet.yaml):
# 100 epochs of SGD lr 0.1 (momentum 0.9, no Nesterov, wd 1e-4), x0.1 at epochs 30, 60 and 90,
# batch 512 on one GPU; RandomResizedCrop 224 + flip, test resize 256 -> crop 224.
_base_ = [
    '../_base_/models/sdnet18.py',
    '../_base_/datasets/imagenet_bs32.py',
    '../_base_/schedules/imagenet_bs512_step_100e.py',
    '../_base_/default_runtime_cls.py',
]

train_dataloader = dict(batch_size=512)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
