# Mask R-CNN, RedNet-50 + involution FPN + involution RPN head + mask head of four 7x7
# involutions (+ReLU), COCO 1x with a 2000-iteration warm-up and gradient clipping at norm 5
# (seed: 29.5 M params, 104.6 GFLOPs, 39.6 box / 35.1 mask AP).
_base_ = './mask-rcnn_rednet50_involution-fpn_1x_coco.py'

model = dict(rpn_head=dict(type='InvolutionRPNHead'), roi_head=dict(mask_head=dict(type='InvolutionFCNMaskHead')))
optim_wrapper = dict(clip_grad=dict(max_norm=5, norm_type=2))
