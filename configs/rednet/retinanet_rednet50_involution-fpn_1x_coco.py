# RetinaNet, RedNet-50 + FPN whose three output convs (C3-C5) are 7x7 involutions (the two strided
# extra levels stay convolutions), COCO 1x with the official recipe (involution's
# det/configs/involution/retinanet_red50_neck_fpn_1x_coco.py): lr 0.01, 2000-iteration warm-up,
# gradient clipping at norm 40 (seed: 26.3 M params, 199.9 GFLOPs, 38.2 box AP).
_base_ = './retinanet_rednet50_fpn_1x_coco.py'

model = dict(neck=dict(type='InvolutionFPN'))
optim_wrapper = dict(clip_grad=dict(max_norm=40, norm_type=2))
