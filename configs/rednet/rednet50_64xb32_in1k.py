# RedNet-50 on ImageNet-1k with the official recipe: 64 GPUs x 32 images, 130 epochs of SGD
# Nesterov (lr 0.8, wd 1e-4), cosine over epochs 0-130 scaled by a 5-epoch warm-up from 0.25;
# label smoothing 0.1.
_base_ = [
    '../_base_/models/rednet.py',
    '../_base_/datasets/imagenet_bs32.py',
    '../_base_/schedules/imagenet_bs2048_coslr_130e_warmup.py',
    '../_base_/default_runtime_cls.py',
]
