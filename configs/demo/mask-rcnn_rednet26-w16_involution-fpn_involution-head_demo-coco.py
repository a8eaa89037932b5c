# Demo Mask R-CNN with every involution component of RedNet's detection code: the narrow RedNet-26
# backbone, involution FPN output convs, involution RPN head and involution mask head, trained from
# scratch on the synthetic COCO-format set (the heads' default variance-preserving initialisation).
_base_ = './mask-rcnn_rednet26-w16_fpn_demo-coco.py'

model = dict(
    neck=dict(type='InvolutionFPN'), rpn_head=dict(type='InvolutionRPNHead'),
    roi_head=dict(mask_head=dict(type='InvolutionFCNMaskHead')))
