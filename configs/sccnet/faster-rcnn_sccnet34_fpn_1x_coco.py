# Faster R-CNN, SCCNet34 (SCC 5x5 projection shortcuts, as released) + FPN, COCO 1x: the RedNet-50
# detector and schedule with the backbone swapped. The checkpoint path is a placeholder for the
# mmconv checkpoint of ../sccnet/sccnet34-scc5x5_1xb128_in1k.py.
_base_ = '../rednet/faster-rcnn_rednet50_fpn_1x_coco.py'

model = dict(
    backbone=dict(type='SCCNet', depth=34, init_cfg=dict(checkpoint='checkpoints/sccnet34-scc5x5_1xb128_in1k.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
