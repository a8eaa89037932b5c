"""Build a model from a config and checkpoint, prepare image files as its inputs, and wrap it in
mmpretrain's or mmdet's inferencer to draw its predictions.

Shared by the analysis tools and the demos. Checkpoints load through mmengine, so mmconv's safe
loading applies.
"""
import copy
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from torch import nn

from .config import build_model, load_config, task_of

__all__ = ['draw_predictions', 'leaf_dataset', 'load_inferencer', 'load_model', 'load_images', 'predict', 'read_image']


def load_model(config: str, checkpoint: str, device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> Tuple[nn.Module, Config]:
    """Build the model of ``config`` under its default scope and load ``checkpoint`` strictly.

    The checkpoint's ``meta['dataset_meta']`` (class names, palette; what mmengine's Runner saves),
    where it has one, becomes ``model.dataset_meta``, as in mmdet's and mmpretrain's loaders.

    Returns:
        The model in eval mode on ``device`` and the loaded config.
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint {checkpoint} does not exist; check the path.')
    cfg = load_config(config, cfg_options)
    # The scope stays set: the test pipeline and the inferencers resolve their transforms in it.
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = build_model(cfg)
    loaded = load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    checkpoint_meta = loaded.get('meta') or {}
    if 'dataset_meta' in checkpoint_meta:
        model.dataset_meta = checkpoint_meta['dataset_meta']
    return model.to(device).eval(), cfg


def leaf_dataset(dataset_cfg: dict) -> dict:
    """The innermost dataset config of a (possibly wrapped) dataset config."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def _type_name(transform: dict) -> str:
    return str(transform['type']).split('.')[-1]


def _reads_files(pipeline: Sequence[dict]) -> bool:
    return any(_type_name(t).startswith('LoadImage') for t in pipeline)


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
    pipeline = [
        t for t in leaf_dataset(cfg.test_dataloader['dataset'])['pipeline']
        if not _type_name(t).startswith('LoadAnnotations')
    ]
    reads_files = _reads_files(pipeline)
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


def read_image(path: str) -> np.ndarray:
    """The image file ``path`` as an RGB array (H × W × 3, uint8)."""
    import mmcv
    if not osp.isfile(path):
        raise FileNotFoundError(f'Image {path} does not exist; check the path.')
    image = mmcv.imread(path)
    if image is None:
        raise ValueError(f'{path} is not an image file that OpenCV can read.')
    return mmcv.bgr2rgb(image)


def _test_set_metainfo(cfg: Config) -> dict:
    """Class names (and palette) of the config's test set, read without loading its data."""
    from mmengine.registry import DATASETS
    dataset_cfg = copy.deepcopy(leaf_dataset(cfg.test_dataloader['dataset']))
    dataset_cfg['lazy_init'] = True
    return dict(DATASETS.build(dataset_cfg).metainfo)


def _det_inferencer(model: nn.Module, cfg: Config):
    """mmdet's ``DetInferencer`` on ``model`` as :func:`load_model` loaded it (strictly), instead
    of a model it builds and loads itself (non-strictly: a checkpoint of another model would pass).
    """
    from mmdet.apis import DetInferencer

    class LoadedModelDetInferencer(DetInferencer):

        def _init_model(self, cfg, weights, device):
            return model

    return LoadedModelDetInferencer(model=cfg, show_progress=False)


def load_inferencer(config: str, checkpoint: str, device: str = 'cpu', cfg_options: Optional[dict] = None):
    """mmpretrain's ``ImageClassificationInferencer`` or mmdet's ``DetInferencer``, by the config's
    default scope, on the model of :func:`load_model`.

    Class names and palette come from the checkpoint's dataset meta, else from the config's test
    set (mmdet's own fallback would name the classes of any detector after COCO's).
    """
    model, cfg = load_model(config, checkpoint, device, cfg_options)
    if getattr(model, 'dataset_meta', None) is None:
        model.dataset_meta = _test_set_metainfo(cfg)
    if task_of(cfg) == 'det':
        return _det_inferencer(model, cfg)
    from mmpretrain.apis import ImageClassificationInferencer
    model._config = cfg  # what mmpretrain's own loader attaches
    model._dataset_meta = model.dataset_meta
    return ImageClassificationInferencer(model, pretrained=False)


def predict(inferencer, image: np.ndarray):
    """The prediction of ``inferencer`` (from :func:`load_inferencer`) on the RGB ``image``: an
    mmpretrain ``DataSample`` (``pred_score``) or an mmdet ``DetDataSample`` (``pred_instances``).
    """
    from mmpretrain.apis import ImageClassificationInferencer
    if not isinstance(inferencer, ImageClassificationInferencer):
        return inferencer(image[..., ::-1], return_datasamples=True)['predictions'][0]
    # Pipelines that load files see BGR (OpenCV's order); the others RGB, as their datasets give it.
    pipeline = leaf_dataset(inferencer.config.test_dataloader['dataset'])['pipeline']
    batch = next(inferencer.preprocess([image[..., ::-1] if _reads_files(pipeline) else image]))
    return inferencer.forward(batch)[0]  # its __call__'s steps, without its progress bar


def draw_predictions(inferencer, image: np.ndarray, prediction, topk: int = 3, score_thr: float = 0.3) -> np.ndarray:
    """Draw ``prediction`` (from :func:`predict`) on the RGB ``image`` with the visualiser of the
    inferencer's library: the ``topk`` classes and their scores for a classifier, the boxes (and
    masks) scoring at least ``score_thr`` for a detector.

    Returns:
        The picture, an RGB array of the image's size.
    """
    from mmpretrain.apis import ImageClassificationInferencer
    if not isinstance(inferencer, ImageClassificationInferencer):
        inferencer.visualizer.add_datasample('prediction', image, prediction, draw_gt=False, pred_score_thr=score_thr)
        return inferencer.visualizer.get_image()
    from mmpretrain.visualization import UniversalVisualizer
    scores = prediction.pred_score
    top = prediction.clone().set_pred_label(scores.topk(min(topk, scores.numel())).indices)
    return UniversalVisualizer().visualize_cls(image, top, classes=inferencer.classes, draw_gt=False)
