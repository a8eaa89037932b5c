# mmdet 1x: 12 epochs, SGD lr 0.02 at batch 16, 500-iteration linear warm-up, x0.1 at 8 and 11.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'
