# ImageNet-1k, 224² RandomResizedCrop/flip for training, resize 256 + centre crop 224 for testing.
# Layout: data/imagenet/{train,val}/<wnid>/*.JPEG (class folders), or mmpretrain's meta/ annotation files.
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32.py'
