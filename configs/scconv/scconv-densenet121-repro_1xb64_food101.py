# Follows the SCConv reproduction (seed 001/003): SCConv-DenseNet121 trained as its baseline
# ../densenet/densenet121-repro_1xb64_food101.py.
_base_ = '../densenet/densenet121-repro_1xb64_food101.py'

model = dict(backbone=dict(op_cfg=dict(type='SCConv')))
