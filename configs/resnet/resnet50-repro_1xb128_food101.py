# Follows the SCConv reproduction (seed 001/003): ./resnet50_1xb128_food101.py with Food-101
# normalised by its own train statistics.
_base_ = [
    '../_base_/models/resnet50.py',
    '../_base_/datasets/food101_bs128_trainstats.py',
    '../_base_/schedules/food101_bs128_step_100e.py',
    '../_base_/default_runtime_cls.py',
]

model = dict(head=dict(num_classes=101))
