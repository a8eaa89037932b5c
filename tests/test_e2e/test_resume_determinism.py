"""A run killed after its first checkpoint and resumed ends with the same weights as a run that
was never interrupted, on deterministic CPU, with random augmentation on (RandomCrop and
RandomFlip draw from numpy) and stochastic depth in the backbone (drawing from torch).

Stock mmengine does not checkpoint the random streams; mmconv's RNGStateHook does. Without the
hook the two runs must differ, which shows that the comparison can fail. (An iteration-based
loop replays the trained batches on resume, which happens to bring numpy's stream back; the
torch draws of stochastic depth are what stock mmengine loses there.)"""
import os
import os.path as osp

import pytest

from e2e_helpers import CLS_CONFIG, REPO_ROOT, max_weight_difference, run_tool, run_until_first_checkpoint

pytestmark = pytest.mark.slow

DETERMINISTIC = ['randomness.seed=0', 'randomness.deterministic=True']
STOCHASTIC_DEPTH = ['+model.backbone.drop_path_rate=0.1']
WITHOUT_HOOK = ['custom_hooks=[]']
# Two epochs of 4 iterations, validating after each: validation runs between the first
# checkpoint and the second epoch, so the hook's isolation of validation is exercised too.
EPOCH_BASED = ['train_cfg.max_epochs=2', 'train_cfg.val_interval=1']
# The same classifier with an iteration-based loop, which replays the trained batches on resume.
ITER_BASED_CONFIG = f'''
_base_ = '{REPO_ROOT}/{CLS_CONFIG}'
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=8, val_interval=4)
param_scheduler = dict(by_epoch=False, T_max=8, convert_to_iter_based=False)
default_hooks = dict(logger=dict(interval=2), checkpoint=dict(by_epoch=False, interval=4))
log_processor = dict(by_epoch=False)
'''


def interrupted_then_resumed(config, options, work_dir, first, last):
    os.makedirs(work_dir)
    train = ['tools/train.py', config, '--work-dir', work_dir]
    checkpoint = run_until_first_checkpoint([*train, '--cfg-options', *options], work_dir)
    assert osp.basename(checkpoint) == first
    assert not osp.exists(osp.join(work_dir, last)), 'the run ended before it was interrupted'
    resumed = run_tool([*train, '--resume', '--cfg-options', *options])
    assert 'resumed epoch:' in resumed.stdout + resumed.stderr
    return osp.join(work_dir, last)


@pytest.mark.parametrize('loop', ['epoch_based', 'iter_based'])
def test_resumed_run_matches_uninterrupted_run(loop, cls_data_options, tmp_path):
    if loop == 'epoch_based':
        config, options, first, last = CLS_CONFIG, EPOCH_BASED, 'epoch_1.pth', 'epoch_2.pth'
    else:
        config, options, first, last = str(tmp_path / 'iter.py'), [], 'iter_4.pth', 'iter_8.pth'
        (tmp_path / 'iter.py').write_text(ITER_BASED_CONFIG)
    options = [*cls_data_options, *DETERMINISTIC, *STOCHASTIC_DEPTH, *options]

    straight_dir = str(tmp_path / 'straight')
    run_tool(['tools/train.py', config, '--work-dir', straight_dir, '--cfg-options', *options])
    straight = osp.join(straight_dir, last)

    resumed = interrupted_then_resumed(config, options, str(tmp_path / 'resumed'), first, last)
    assert max_weight_difference(straight, resumed) == 0.0

    unhooked = interrupted_then_resumed(config, [*options, *WITHOUT_HOOK], str(tmp_path / 'resumed_without_hook'),
                                        first, last)
    assert max_weight_difference(straight, unhooked) > 0.0
