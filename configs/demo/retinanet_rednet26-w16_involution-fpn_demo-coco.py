# The demo RetinaNet with the involution neck of the RedNet detectors: its FPN's output convs on
# C3-C5 are 7x7 involutions (the strided extra levels stay convolutions).
_base_ = './retinanet_rednet26-w16_fpn_demo-coco.py'

model = dict(neck=dict(type='InvolutionFPN'))
