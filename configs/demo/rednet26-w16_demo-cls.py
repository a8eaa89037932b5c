# Demo classifier with an mmconv backbone: the demo classifier with its ResNet-18 swapped for a
# narrow RedNet-26 (involution bottlenecks; stage widths 64/128/256/512, 16 base channels), as in
# the RedNet-26 demo detectors.
_base_ = './resnet18-w16_demo-cls.py'

model = dict(
    backbone=dict(_delete_=True, type='RedNet', depth=26, stem_channels=32, base_channels=16, out_indices=(3, )),
    head=dict(in_channels=512))
