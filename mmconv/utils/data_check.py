"""Fail early, with the path and the expected layout, when a config's dataset is not on disk."""
import os.path as osp
from typing import Iterator, List, Optional, Tuple

# What each dataset type expects under ``data_root``; ``{split}`` is the dataset's split.
EXPECTED_LAYOUT = {
    'ImageNet': 'data_root/{train,val}/<wnid>/*.JPEG (class folders) or data_root/meta/*.txt',
    'CIFAR10': 'data_root/cifar-10-batches-py/ (the extracted python version)',
    'CIFAR100': 'data_root/cifar-100-python/ (the extracted python version)',
    'Food101': 'data_root/images/<class>/<id>.jpg and data_root/meta/{classes,train,test}.txt',
    'CustomDataset': 'data_root/<class>/<image files> (one folder per class)',
    'CocoDataset': 'data_root/annotations/instances_<split>.json and data_root/<split>/<images>',
}
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
    raise FileNotFoundError(
        f'The {name} dataset ({kind}) is missing: {path} does not exist; put the data there '
        f'as {layout}, or point the config at it, e.g. '
        f'--cfg-options {name}.dataset.data_root=/path/to/data.')


__all__ = ['check_dataset_paths', 'missing_dataset_paths']
