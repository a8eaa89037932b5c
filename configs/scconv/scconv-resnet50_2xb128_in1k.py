# SCConv-ResNet50 (alpha 1/2) on ImageNet-1k with the SCConv paper's recipe, on its 2 GPUs x 128
# images: 100 epochs of SGD lr 0.1 (wd 1e-4), x0.1 every 30 epochs; 224 random resized crops.
# Paper: 16.78 M params, 2.70 GFLOPs, 76.41 top-1. Its checkpoint is the one the SCConv detection
# configs start from (checkpoints/scconv-resnet50_2xb128_in1k.pth).
_base_ = [
    '../_base_/models/resnet50.py',
    '../_base_/datasets/imagenet_bs32.py',
    '../_base_/schedules/imagenet_bs256_step_100e.py',
    '../_base_/default_runtime_cls.py',
]

# The detection backbone's class, so the checkpoint's keys are the detectors' by construction.
model = dict(backbone=dict(type='SCConvResNet'))
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
