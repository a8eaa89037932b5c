"""Reading a config and building its model: the one way every mmconv tool and API does it.

``--cfg-options`` keys are checked against the config before they are merged: mmengine's
``merge_from_dict`` silently adds a misspelt key as a new one, and the run then ignores it.
"""
import copy
import difflib
import os.path as osp
from typing import Dict, Iterator, List, Optional

from mmengine.config import Config
from torch import nn

__all__ = ['NEW_KEY_PREFIX', 'ConfigOptionError', 'build_model', 'checked_cfg_options', 'load_config', 'task_of']


class ConfigOptionError(ValueError):
    """A ``--cfg-options`` key the config does not have and that is not marked new."""


# ``--cfg-options +KEY=VALUE`` adds a key the config does not have (a constructor argument left at
# its default, say); without the prefix, an unknown key is taken for a misspelling and refused.
NEW_KEY_PREFIX = '+'


def _key_paths(node, prefix: str = '') -> Iterator[str]:
    """Every dotted key of a config, list items by index, as ``--cfg-options`` addresses them."""
    items = (node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, (list, tuple)) else ())
    for key, value in items:
        path = f'{prefix}{key}'
        yield path
        yield from _key_paths(value, path + '.')


def _first_unknown_part(tree: dict, key: str) -> Optional[int]:
    """The index of the first part of dotted ``key`` the config lacks, None when it has them all."""
    node = tree
    for index, part in enumerate(key.split('.')):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return index
    return None


def _nearest_key(tree: dict, parts: List[str], unknown: int) -> Optional[str]:
    """The existing key closest to ``parts`` among those of the same depth, with the same parts
    before index ``unknown`` (the first one the config lacks) and a near spelling of that part."""
    candidates = [
        path for path in _key_paths(tree)
        if len(path.split('.')) == len(parts) and path.split('.')[:unknown] == parts[:unknown]
        and difflib.SequenceMatcher(None,
                                    path.split('.')[unknown], parts[unknown]).ratio() >= 0.75
    ]
    nearest = difflib.get_close_matches('.'.join(parts), candidates, n=1, cutoff=0)
    return nearest[0] if nearest else None


def checked_cfg_options(cfg: Config, options: Dict[str, object]) -> Dict[str, object]:
    """``options`` as ``Config.merge_from_dict`` takes them, without the new-key prefix.

    Raises:
        ConfigOptionError: for a key the config does not have and that is not marked new, naming
            the nearest existing key.
    """
    checked, tree = {}, cfg.to_dict()
    for key, value in options.items():
        if key.startswith(NEW_KEY_PREFIX):
            checked[key[len(NEW_KEY_PREFIX):]] = value
            continue
        unknown = _first_unknown_part(tree, key)
        if unknown is not None:
            parts = key.split('.')
            known = '.'.join(parts[:unknown])
            nearest = _nearest_key(tree, parts, unknown)
            hint = (f'did you mean {nearest}?' if nearest else
                    f'{known} has no key {parts[unknown]!r}' if known else 'no key of the config is close')
            raise ConfigOptionError(f'--cfg-options key {key} is not in the config ({hint}); to add a key the '
                                    f'config does not have, write {NEW_KEY_PREFIX}{key}=VALUE.')
        checked[key] = value
    return checked


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read the config file ``path`` and merge ``cfg_options`` (checked by :func:`checked_cfg_options`).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ConfigOptionError: from :func:`checked_cfg_options`.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file {path} does not exist; check the path.')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(checked_cfg_options(cfg, cfg_options))
    return cfg


def task_of(cfg: Config) -> str:
    """``'det'`` for mmdet configs, ``'cls'`` for mmpretrain ones (by their default scope)."""
    return 'det' if cfg.get('default_scope') == 'mmdet' else 'cls'


def build_model(cfg: Config) -> nn.Module:
    """The config's model as mmengine's Runner builds it (under the config's default scope, with
    a top-level ``data_preprocessor`` applied), before any weights are initialised or loaded."""
    from mmengine.registry import MODELS, DefaultScope
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmpretrain')):
        return MODELS.build(model_cfg)
