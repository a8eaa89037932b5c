# Food-101 as ./food101_bs128.py, normalised with the Food-101 train split's own channel
# mean/std, as the SCConv reproduction does (it computed them but did not publish them; these are
# the commonly published train-split values, 0.5459/0.4448/0.3468 and 0.2761/0.2691/0.2821).
_base_ = './food101_bs128.py'

data_preprocessor = dict(mean=[139.20, 113.42, 88.43], std=[70.41, 68.62, 71.94])
