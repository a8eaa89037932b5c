"""Fail early, naming the file and the classes, when a COCO-format dataset has nothing to learn,
is not valid JSON, or lacks a class the config names.

Without this, a training set whose annotation file has no boxes, or none of the classes the
config names (``metainfo=dict(classes=...)`` must repeat the file's category names), ends in
``ValueError: need at least one array to concatenate`` deep inside mmengine; a validation or test
set without them ends in an error or an AP of -1 from ``CocoMetric`` after a whole epoch. A class
the config names that the file lacks (``ellipse`` for ``Ellipse``) ends, after a whole epoch, in an
``IndexError`` in ``CocoMetric``, which numbers the file's categories by the config's names.
"""
import json
import os.path as osp
from typing import Iterator, Optional, Tuple

from .data_check import SHOWN_NAMES, DatasetError, quoted_names

__all__ = ['EmptyAnnotationsError', 'check_detection_annotations', 'read_annotation_file', 'usable_annotations']

# The evaluator whose metric needs the ground truth of each evaluated dataloader.
EVALUATORS = dict(val_dataloader='val_evaluator', test_dataloader='test_evaluator')


class EmptyAnnotationsError(DatasetError):
    """A detection dataset that a training or evaluation run needs has no usable annotation."""


def _leaf_datasets(cfg: dict) -> Iterator[dict]:
    if 'datasets' in cfg:
        for sub in cfg['datasets']:
            yield from _leaf_datasets(sub)
    elif 'dataset' in cfg:
        yield from _leaf_datasets(cfg['dataset'])
    else:
        yield cfg


def usable_annotations(coco: dict, classes: Optional[Tuple[str, ...]]) -> int:
    """Annotations mmdet's ``CocoDataset`` keeps as instances: of a category named in ``classes``
    (all categories when None), not ignored, with a box at least 1 px wide and high."""
    names = {c['id']: c['name'] for c in coco.get('categories', [])}
    wanted = {i for i, n in names.items() if classes is None or n in classes}
    count = 0
    for ann in coco.get('annotations') or []:
        bbox = ann.get('bbox') or [0, 0, 0, 0]
        if ann.get('category_id') in wanted and not ann.get('ignore', False) and \
                bbox[2] >= 1 and bbox[3] >= 1 and ann.get('area', 1) > 0:
            count += 1
    return count


def _evaluated_with_ground_truth(cfg, loader: str) -> bool:
    """Whether ``loader``'s evaluator is a ``CocoMetric`` that compares with ground truth."""
    evaluators = cfg.get(EVALUATORS[loader])
    evaluators = evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]
    return any(
        e and str(e.get('type', '')).split('.')[-1] == 'CocoMetric' and not e.get('format_only', False)
        for e in evaluators)


def _problem(loader: str, dataset: dict) -> Optional[str]:
    root = dataset.get('data_root') or ''
    ann_file = dataset.get('ann_file') or ''
    path = ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)
    if not ann_file or '://' in path or not osp.isfile(path):
        return None  # nothing local to read; a missing file is check_dataset_paths' to report
    coco = read_annotation_file(loader, path)
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None:
        from mmdet.datasets import CocoDataset
        classes = CocoDataset.METAINFO['classes']
    classes = tuple(classes)
    if usable_annotations(coco, classes):
        _check_classes_present(loader, path, coco, classes)
        return None
    num_images, annotations = len(coco.get('images', [])), coco.get('annotations') or []
    remedy = ('so there is nothing to train on' if loader == 'train_dataloader' else
              f'so {EVALUATORS[loader]} (CocoMetric) has no ground truth to compare with; set '
              f'{EVALUATORS[loader]}.format_only=True to only write predictions')
    if not usable_annotations(coco, None):
        what = (f'{len(annotations)} annotations but no box at least 1 px wide and high'
                if annotations else 'no annotations')
        return (f'The {loader} dataset has no annotations: {path} lists {num_images} images and '
                f'{what}, {remedy}.')
    file_names = [c['name'] for c in coco.get('categories', [])]
    return (f'The {loader} dataset has no annotations of the classes the config names: {path} '
            f'has {len(annotations)} annotations of the categories {quoted_names(file_names)} '
            f'but none of {quoted_names(classes)}, {remedy}; set the dataset\'s '
            'metainfo=dict(classes=(...)) to the category names of the file.')


def read_annotation_file(loader: str, path: str) -> dict:
    """The parsed COCO file, or :class:`DatasetError` naming it and where its JSON breaks."""
    with open(path, 'rb') as f:
        text = f.read()
    if not text.strip():
        raise DatasetError(f'The {loader} annotation file {path} is empty; regenerate or '
                           're-download it.')
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = (f'line {err.lineno}, column {err.colno}: {err.msg}'
                 if isinstance(err, json.JSONDecodeError) else str(err))
        raise DatasetError(f'The {loader} annotation file {path} is not valid JSON ({where}); '
                           'regenerate or re-download it.') from None


def _check_classes_present(loader: str, path: str, coco: dict, classes: Tuple[str, ...]) -> None:
    file_names = [c['name'] for c in coco.get('categories', [])]
    missing = [name for name in classes if name not in file_names]
    if not missing:
        return
    by_lower_case = {name.lower(): name for name in file_names}
    described = ', '.join(
        f'{name!r} (the file has {by_lower_case[name.lower()]!r})' if name.lower() in by_lower_case else repr(name)
        for name in missing[:SHOWN_NAMES])
    more = f', ... ({len(missing)} in all)' if len(missing) > SHOWN_NAMES else ''
    raise DatasetError(f'The {loader} dataset names classes that {path} does not have: {described}{more}; its '
                       f'categories are {quoted_names(file_names)}: set the dataset\'s '
                       'metainfo=dict(classes=(...)) to category names of the file.')


def check_detection_annotations(cfg, dataloaders: Tuple[str, ...]) -> None:
    """Raise :class:`EmptyAnnotationsError` for a ``CocoDataset`` with no usable annotation, and
    :class:`DatasetError` for one whose file is not JSON or lacks a class the config names.

    The training set is always checked; a validation or test set only when its evaluator is a
    ``CocoMetric`` that needs ground truth (``format_only=False``). Other dataset types and
    remote files are skipped.

    Args:
        cfg (Config | dict): A full training or testing config.
        dataloaders (tuple[str]): Dataloader keys to check, e.g.
            ``('train_dataloader', 'val_dataloader')``.
    """
    for loader in dataloaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg or 'dataset' not in loader_cfg:
            continue
        if loader in EVALUATORS and not _evaluated_with_ground_truth(cfg, loader):
            continue
        for dataset in _leaf_datasets(loader_cfg['dataset']):
            if str(dataset.get('type', '')).split('.')[-1] == 'CocoDataset':
                problem = _problem(loader, dataset)
                if problem:
                    raise EmptyAnnotationsError(problem)
