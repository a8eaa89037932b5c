"""Every COCO config's backbone checkpoint is named after the classification config that makes it.

The detection configs start their backbones from ``checkpoints/<name>.pth``, a placeholder for the
last checkpoint of ``configs/*/<name>.py`` (README, "Backbone checkpoints"): that config must exist,
and its classifier's backbone must be of the detection backbone's type and depth. Configs are only read.
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COCO_CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*_coco.py')))
PLACEHOLDER_DIR = 'checkpoints/'


def config_id(path: str) -> str:
    return osp.relpath(path, osp.join(REPO_ROOT, 'configs'))


def test_there_are_coco_configs():
    assert len(COCO_CONFIGS) > 10


@pytest.mark.parametrize('path', COCO_CONFIGS, ids=config_id)
def test_backbone_checkpoint_is_a_classification_config(path):
    backbone = Config.fromfile(path).model.backbone
    init_cfg = backbone.get('init_cfg') or {}
    checkpoint = init_cfg.get('checkpoint', '')
    if not checkpoint.startswith(PLACEHOLDER_DIR):
        pytest.skip(f'backbone starts from {checkpoint or "scratch"}')
    name = osp.splitext(osp.basename(checkpoint))[0]
    makers = glob.glob(osp.join(REPO_ROOT, 'configs', '*', f'{name}.py'))
    assert len(makers) == 1, f'{config_id(path)}: no classification config {name}.py'
    classifier_backbone = Config.fromfile(makers[0]).model.backbone
    for key in ('type', 'depth'):
        assert classifier_backbone.get(key) == backbone.get(key), (config_id(makers[0]), key)
