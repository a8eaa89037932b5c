# Faster R-CNN, RedNet-50 + involution FPN + RPN head with a 7x7 involution, COCO 1x with a
# 2000-iteration warm-up and gradient clipping at norm 5 (seed: 29.0 M params, 91.5 GFLOPs,
# 39.2 box AP).
_base_ = './faster-rcnn_rednet50_involution-fpn_1x_coco.py'

model = dict(rpn_head=dict(type='InvolutionRPNHead'))
optim_wrapper = dict(clip_grad=dict(max_norm=5, norm_type=2))
