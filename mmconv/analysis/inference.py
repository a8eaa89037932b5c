"""Build a model from a config and checkpoint, and prepare image files as its inputs.

Shared by the analysis tools. Checkpoints load through mmengine, so mmconv's safe loading applies.
"""
import copy
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint
from torch import nn

from mmconv.utils.runtime import load_config

__all__ = ['leaf_dataset', 'load_model', 'load_images']


def load_model(config: str,
               checkpoint: str,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> Tuple[nn.Module, Config]:
    """Build the model of ``config`` under its default scope and load ``checkpoint`` strictly.

    Returns:
        The model in eval mode on ``device`` and the loaded config.
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint {checkpoint} does not exist; check the path.')
    cfg = load_config(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # a top-level one applies, as in mmengine's Runner
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    return model.to(device).eval(), cfg


def leaf_dataset(dataset_cfg: dict) -> dict:
    """The innermost dataset config of a (possibly wrapped) dataset config."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def _type_name(transform: dict) -> str:
    return str(transform['type']).split('.')[-1]


def load_images(model: nn.Module, cfg: Config, paths: Sequence[str]) -> Tuple[torch.Tensor, List]:
    """Read image files through the config's test pipeline and the model's data preprocessor.

    Annotation loading is dropped from the pipeline. A pipeline without an image-loading step (e.g.
    CIFAR, whose dataset holds arrays) receives the image as an RGB array, as such datasets give it.

    Returns:
        The normalised batch (B × C × H × W, on the model's device) and the packed data samples.
    """
    for path in paths:
        if not osp.isfile(path):
            raise FileNotFoundError(f'Image {path} does not exist; check the path.')
    pipeline = [t for t in leaf_dataset(cfg.test_dataloader['dataset'])['pipeline']
                if not _type_name(t).startswith('LoadAnnotations')]
    reads_files = any(_type_name(t).startswith('LoadImage') for t in pipeline)
    transform = Compose(pipeline)
    packed = []
    for path in paths:
        if reads_files:
            packed.append(transform(dict(img_path=path)))
        else:
            from PIL import Image
            img = np.asarray(Image.open(path).convert('RGB'))
            size = img.shape[:2]
            packed.append(transform(dict(img=img, img_shape=size, ori_shape=size)))
    data = model.data_preprocessor(pseudo_collate(packed), False)
    return data['inputs'], data['data_samples']
