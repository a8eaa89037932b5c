"""Learning-rate schedules against the official recipes they follow, step by step.

The RedNet / CedNet ImageNet schedule is rebuilt from mmengine's schedulers as the runner builds
them and stepped as ParamSchedulerHook steps them (iteration-based ones after every iteration,
epoch-based ones after every epoch); the lr of every iteration must equal what the official mmcls
config (involution's cls/configs/_base_/schedules/imagenet_bs2048_coslr_130e.py, mmcv 1.x
``CosineAnnealing`` with ``min_lr=0`` and a linear warm-up of 3130 iterations from 0.25) gives:
cosine over all 130 epochs, multiplied by the warm-up factor. About a second.
"""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim.scheduler import _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ITERS_PER_EPOCH = 626  # ImageNet-1k's 1,281,167 images at batch 2048, rounded up
WARMUP_ITERS, WARMUP_RATIO = 3130, 0.25


def official_lr(base_lr: float, epoch: int, iteration: int, max_epochs: int) -> float:
    """mmcv 1.x: the per-epoch cosine lr, scaled by the linear warm-up while it lasts."""
    regular = base_lr * 0.5 * (1 + math.cos(math.pi * epoch / max_epochs))
    if iteration >= WARMUP_ITERS:
        return regular
    return regular * (1 - (1 - iteration / WARMUP_ITERS) * (1 - WARMUP_RATIO))


@pytest.mark.parametrize('config', ['rednet/rednet50_64xb32_in1k.py', 'cednet/cednet50_64xb32_in1k.py'])
def test_imagenet_schedule_matches_the_official_mmcls_one(config):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', config))
    base_lr = cfg.optim_wrapper.optimizer.lr
    max_epochs = cfg.train_cfg.max_epochs
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    schedulers = [
        PARAM_SCHEDULERS.build(dict(scheduler, optimizer=optimizer, epoch_length=ITERS_PER_EPOCH))
        for scheduler in cfg.param_scheduler
    ]
    assert all(isinstance(s, _ParamScheduler) for s in schedulers)

    iteration = 0
    for epoch in range(max_epochs):
        for _ in range(ITERS_PER_EPOCH):
            expected = official_lr(base_lr, epoch, iteration, max_epochs)
            lr = optimizer.param_groups[0]['lr']
            assert lr == pytest.approx(expected, rel=1e-9, abs=1e-12), (epoch, iteration)
            optimizer.step()  # no gradient: nothing moves, but schedulers expect this order
            for scheduler in schedulers:
                if not scheduler.by_epoch:
                    scheduler.step()
            iteration += 1
        for scheduler in schedulers:
            if scheduler.by_epoch:
                scheduler.step()
