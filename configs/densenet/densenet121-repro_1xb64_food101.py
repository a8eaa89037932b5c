# Follows the SCConv reproduction (seed 001/003): ./densenet121_1xb128_food101.py at batch 64 (same
# lr) with Food-101 normalised by its own train statistics.
_base_ = [
    '../_base_/models/densenet121.py',
    '../_base_/datasets/food101_bs128_trainstats.py',
    '../_base_/schedules/food101_bs128_step_100e.py',
    '../_base_/default_runtime_cls.py',
]

model = dict(head=dict(num_classes=101))
train_dataloader = dict(batch_size=64)
auto_scale_lr = dict(base_batch_size=64)
