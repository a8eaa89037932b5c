# SCCNet34 with SCC 5x5 projection shortcuts (the released model and checkpoint) on ImageNet-1k,
# with SCCNet's recipe: one GPU x 128 images, 120 epochs of SGD lr 0.1 (wd 5e-5), cosine per
# epoch to 1e-4, no warm-up; RandomResizedCrop 224 + flip, test resize 256 -> crop 224.
_base_ = [
    '../_base_/models/sccnet34.py',
    '../_base_/datasets/imagenet_bs32.py',
    '../_base_/schedules/imagenet_bs128_coslr_120e.py',
    '../_base_/default_runtime_cls.py',
]

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
