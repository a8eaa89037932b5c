"""Fail early, with the path and what to do, when a config's dataset is not on disk or not usable:
a missing path, classification splits whose class folders differ, an image that does not decode."""
import os
import os.path as osp
from typing import Iterator, List, Optional, Tuple


class DatasetError(ValueError):
    """A dataset a run needs is on disk but unusable."""


# What each dataset type expects under ``data_root``; ``{split}`` is the dataset's split.
EXPECTED_LAYOUT = {
    'ImageNet': 'data_root/{train,val}/<wnid>/*.JPEG (class folders) or data_root/meta/*.txt',
    'CIFAR10': 'data_root/cifar-10-batches-py/ (the extracted python version)',
    'CIFAR100': 'data_root/cifar-100-python/ (the extracted python version)',
    'Food101': 'data_root/images/<class>/<id>.jpg and data_root/meta/{classes,train,test}.txt',
    'CustomDataset': 'data_root/<class>/<image files> (one folder per class)',
    'CocoDataset': 'data_root/annotations/instances_<split>.json and data_root/<split>/<images>',
}
# Classification datasets that number their classes by sorted folder name when no ann_file is
# given (mmpretrain's find_folders).
FOLDER_LAYOUT_TYPES = ('CustomDataset', 'ImageNet', 'ImageNet21k')
SHOWN_NAMES = 8
# Sub-paths that must exist below data_root, by dataset type.
REQUIRED_ENTRIES = {
    'CIFAR10': ['cifar-10-batches-py'],
    'CIFAR100': ['cifar-100-python'],
    'Food101': ['meta/classes.txt', 'meta/{split}.txt', 'images'],
}


def _datasets(cfg: dict) -> Iterator[dict]:
    """The leaf dataset configs below a (possibly wrapped or concatenated) dataset config."""
    if 'datasets' in cfg:
        for sub in cfg['datasets']:
            yield from _datasets(sub)
    elif 'dataset' in cfg:
        yield from _datasets(cfg['dataset'])
    else:
        yield cfg


def _join(root: Optional[str], path: str) -> str:
    return path if root is None or osp.isabs(path) or '://' in path else osp.join(root, path)


def _required_paths(dataset: dict) -> List[str]:
    root = dataset.get('data_root')
    kind = str(dataset.get('type', '')).split('.')[-1]
    paths = [] if root is None else [root]
    if dataset.get('ann_file'):
        paths.append(_join(root, dataset['ann_file']))
    prefix = dataset.get('data_prefix')
    prefixes = prefix.values() if isinstance(prefix, dict) else [prefix] if prefix else []
    paths += [_join(root, p) for p in prefixes if isinstance(p, str) and p]
    split = dataset.get('split', '')
    paths += [_join(root, entry.format(split=split)) for entry in REQUIRED_ENTRIES.get(kind, [])]
    if kind == 'ImageNet' and split and not dataset.get('ann_file'):
        paths.append(_join(root, split))
    return paths


def missing_dataset_paths(cfg, dataloaders: Tuple[str, ...]) -> List[Tuple[str, str, str]]:
    """(dataloader name, dataset type, missing path) for every local path the config needs."""
    missing = []
    for name in dataloaders:
        loader = cfg.get(name)
        if not loader or 'dataset' not in loader:
            continue
        for dataset in _datasets(loader['dataset']):
            for path in _required_paths(dataset):
                if '://' not in path and not osp.exists(path):
                    missing.append((name, str(dataset.get('type', '?')), path))
                    break
    return missing


def check_dataset_paths(cfg, dataloaders: Tuple[str, ...]) -> None:
    """Raise ``FileNotFoundError`` naming the first missing path and the layout it should have.

    Args:
        cfg (Config | dict): A full training or testing config.
        dataloaders (tuple[str]): The dataloader keys to check, e.g.
            ``('train_dataloader', 'val_dataloader')``.
    """
    missing = missing_dataset_paths(cfg, dataloaders)
    if not missing:
        return
    name, kind, path = missing[0]
    layout = EXPECTED_LAYOUT.get(kind.split('.')[-1], 'the layout its dataset class documents')
    raise FileNotFoundError(f'The {name} dataset ({kind}) is missing: {path} does not exist; put the data there '
                            f'as {layout}, or point the config at it, e.g. '
                            f'--cfg-options {name}.dataset.data_root=/path/to/data.')


def _class_folders(dataset: dict) -> Optional[Tuple[str, ...]]:
    """The class folders of a folder-layout classification dataset in label order, else None."""
    kind = str(dataset.get('type', '')).split('.')[-1]
    if kind not in FOLDER_LAYOUT_TYPES or dataset.get('ann_file'):
        return None
    prefix = dataset.get('data_prefix') or dataset.get('split') or ''
    prefix = prefix.get('img_path', '') if isinstance(prefix, dict) else prefix
    folder = _join(dataset.get('data_root'), prefix) if prefix else dataset.get('data_root')
    if not folder or not osp.isdir(folder):
        return None
    return tuple(sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d))))


def quoted_names(names) -> str:
    """Names quoted and comma-separated, the first few of a long list and the count."""
    names = list(names)
    more = f', ... ({len(names)} in all)' if len(names) > SHOWN_NAMES else ''
    return ', '.join(repr(n) for n in names[:SHOWN_NAMES]) + more


def check_class_folders(cfg, dataloaders: Tuple[str, ...], reference: Optional[Tuple[str, Tuple[str,
                                                                                                ...]]] = None) -> None:
    """Raise :class:`DatasetError` when the folder-layout classification datasets of
    ``dataloaders`` do not all have the classes of the first one (or of ``reference``).

    mmpretrain numbers classes by sorted folder name, separately for each split: a class folder
    missing from one split shifts the labels of the classes after it, and the run trains or
    evaluates against wrong labels without an error.

    Args:
        cfg (Config | dict): A full training or testing config.
        dataloaders (tuple[str]): The dataloader keys to compare.
        reference (tuple, optional): ``(what, classes)`` the datasets must match, e.g. the
            classes a checkpoint was trained on.
    """
    for name in dataloaders:
        loader = cfg.get(name)
        if not loader or 'dataset' not in loader:
            continue
        for dataset in _datasets(loader['dataset']):
            classes = _class_folders(dataset)
            if classes is None:
                continue
            if reference is None:
                reference = (f'the {name} dataset', classes)
                continue
            what, expected = reference
            if classes != tuple(expected):
                lacks = [c for c in expected if c not in classes]
                extra = [c for c in classes if c not in expected]
                differences = '; '.join(
                    filter(None, [
                        lacks and f'it lacks {quoted_names(lacks)}', extra
                        and f'it has {quoted_names(extra)} that {what} lacks', not (lacks or extra)
                        and f'{what} has them in the order {quoted_names(expected)}'
                    ]))
                raise DatasetError(f'The {name} dataset\'s class folders differ from the classes of {what} '
                                   f'({differences}), which would give its images wrong labels (classes are '
                                   'numbered by sorted folder name); give every split the same class folders.')


def undecodable_images(cfg, dataloaders: Tuple[str, ...]) -> Tuple[int, List[str]]:
    """(number of images, paths of those that cannot be decoded) of the datasets of
    ``dataloaders``, each image read once, as ``LoadImageFromFile`` reads it."""
    import mmcv
    from mmengine.fileio import get
    from mmengine.registry import DATASETS, DefaultScope

    total, bad = 0, []
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        for name in dataloaders:
            loader = cfg.get(name)
            if not loader or 'dataset' not in loader:
                continue
            for dataset_cfg in _datasets(loader['dataset']):
                dataset = DATASETS.build(dict(dataset_cfg, pipeline=[]))
                for index in range(len(dataset)):
                    path = dataset.get_data_info(index)['img_path']
                    total += 1
                    try:
                        decoded = mmcv.imfrombytes(get(path))
                    except Exception:  # any decoder failure means the same: not an image
                        decoded = None
                    if decoded is None:
                        bad.append(path)
    return total, bad


def check_images(cfg, dataloaders: Tuple[str, ...]) -> None:
    """Raise :class:`DatasetError` naming the images of ``dataloaders`` that do not decode."""
    total, bad = undecodable_images(cfg, dataloaders)
    if bad:
        raise DatasetError(f'{len(bad)} of the {total} images cannot be decoded: {quoted_names(bad)}; replace or '
                           'remove them.')


__all__ = [
    'DatasetError', 'check_class_folders', 'check_dataset_paths', 'check_images', 'missing_dataset_paths',
    'quoted_names', 'undecodable_images'
]
