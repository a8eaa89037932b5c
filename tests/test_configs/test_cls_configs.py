"""Every classification config builds its model and runs one real training step.

Each classification config of the model-family folders is read with ``Config.fromfile``, checked
against the batch layout and dataset its name states (``<model>_<gpus>xb<batch>_<dataset>.py``, as
mmpretrain names configs), built under the ``mmpretrain`` scope, and trained for one step through
``train_step`` with the optimizer wrapper its config describes, on two random 32×32 images. The
folders also hold the families' detection configs (``*_coco.py``), which other tests cover.
"""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FAMILIES = ('rednet', 'cednet', 'sccnet', 'scconv', 'sdnet', 'resnet', 'densenet')
FAMILY_FILES = sorted(path for family in FAMILIES for path in glob.glob(osp.join(REPO_ROOT, 'configs', family, '*.py')))
DATASETS = ('in1k', 'cifar10', 'cifar100', 'food101')
CONFIGS = [path for path in FAMILY_FILES if path.endswith(tuple(f'_{d}.py' for d in DATASETS))]
NAME = re.compile(r'(?P<model>[a-z0-9-]+)_(?P<gpus>\d+)xb(?P<batch>\d+)_'
                  rf'(?P<data>{"|".join(DATASETS)})\.py')
NUM_CLASSES = dict(in1k=1000, cifar10=10, cifar100=100, food101=101)
INPUT_SIZE = 32

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def config_id(path: str) -> str:
    return osp.relpath(path, osp.join(REPO_ROOT, 'configs'))


def test_every_family_has_configs():
    found = {osp.basename(osp.dirname(path)) for path in CONFIGS}
    assert found == set(FAMILIES)
    others = [config_id(p) for p in FAMILY_FILES if p not in CONFIGS and not p.endswith('_coco.py')]
    assert not others, f'neither classification nor COCO configs: {others}'


def check_name(cfg: Config, path: str) -> str:
    """The config's batch layout, dataset and plugin loading match its name; returns the dataset."""
    match = NAME.fullmatch(osp.basename(path))
    assert match, f'{config_id(path)} is not named <model>_<gpus>xb<batch>_<dataset>.py'
    gpus, batch, data = int(match['gpus']), int(match['batch']), match['data']
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.auto_scale_lr.base_batch_size == gpus * batch
    assert cfg.model.head.num_classes == NUM_CLASSES[data]
    assert cfg.data_preprocessor.num_classes == NUM_CLASSES[data]
    assert cfg.default_scope == 'mmpretrain'
    assert 'mmconv.models' in cfg.custom_imports.imports
    return data


def demo_batch(size: int, num_classes: int) -> dict:
    """Two uint8 images with labels, as a classification dataloader yields them."""
    from mmpretrain.structures import DataSample
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator) for _ in range(2)]
    samples = [DataSample().set_gt_label(label % num_classes) for label in (1, 7)]
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_builds_and_trains_one_step(path):
    cfg = Config.fromfile(path)
    data = check_name(cfg, path)
    init_default_scope(cfg.default_scope)
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)

    # The first parameter of the backbone is the farthest from the loss.
    first_name, first = next(model.named_parameters())
    assert first_name.startswith('backbone.'), first_name
    first_grads = []
    first.register_hook(lambda grad: first_grads.append(grad.detach().abs().sum()))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    losses = model.train_step(demo_batch(INPUT_SIZE, NUM_CLASSES[data]), optim_wrapper)

    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss), losses
    assert first_grads and torch.isfinite(first_grads[0]) and first_grads[0] > 0, first_name
    changed = [name for name, p in model.named_parameters() if not torch.equal(before[name], p)]
    assert first_name in changed and 'head.fc.weight' in changed
    assert len(changed) > 0.9 * len(before), (f'only {len(changed)} of {len(before)} parameters changed')
