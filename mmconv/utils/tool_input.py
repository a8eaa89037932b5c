"""The checks tools/train.py and tools/test.py make before any work, and how they refuse.

A refused input is reported as one ``error: ...`` sentence on stderr with exit code 2, before the
Runner is built, so a refused run writes nothing in the work dir.
"""
import argparse
import difflib
import os
import re
import sys
from typing import Dict, Iterator, List, NoReturn, Optional

from mmengine.config import Config, DictAction

from .checkpoint import CorruptCheckpointError, UnsafeCheckpointError
from .data_check import DatasetError
from .pretrained import CheckpointMismatchError, describe_mismatch, state_dict_of

__all__ = [
    'NEW_KEY_PREFIX', 'REFUSED_INPUT_ERRORS', 'CfgOptionsAction', 'ToolArgumentParser',
    'ToolInputError', 'check_checkpoint_fits', 'checked_cfg_options',
    'launch_rank', 'refuse', 'undecodable_image_in'
]

# ``--cfg-options +KEY=VALUE`` adds a key the config does not have (a constructor argument left at
# its default, say); without the prefix, an unknown key is taken for a misspelling and refused.
NEW_KEY_PREFIX = '+'


class ToolInputError(ValueError):
    """A command line or config that a tool refuses before doing any work."""


# What the tools report as one sentence; anything else is a bug and keeps its traceback.
REFUSED_INPUT_ERRORS = (ToolInputError, FileNotFoundError, DatasetError, CheckpointMismatchError,
                        CorruptCheckpointError, UnsafeCheckpointError)


def refuse(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with code 2 (argparse's code for bad usage)."""
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


class ToolArgumentParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``error:`` sentence, like the tools' other
    refusals."""

    def error(self, message: str) -> NoReturn:
        refuse(f'{message}; see {self.prog} --help.')


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction``, refusing an entry without ``=`` (which it unpacks with a bare
    ``ValueError``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        for entry in values or []:
            if '=' not in entry:
                parser.error(f'{option_string} entry {entry!r} has no "="; write KEY=VALUE, e.g. '
                             'train_cfg.max_epochs=12')
        super().__call__(parser, namespace, values, option_string)


def _key_paths(node, prefix: str = '') -> Iterator[str]:
    """Every dotted key of a config, list items by index, as ``--cfg-options`` addresses them."""
    items = (node.items() if isinstance(node, dict) else
             enumerate(node) if isinstance(node, (list, tuple)) else ())
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
    candidates = [path for path in _key_paths(tree)
                  if len(path.split('.')) == len(parts)
                  and path.split('.')[:unknown] == parts[:unknown] and difflib.SequenceMatcher(
                      None, path.split('.')[unknown], parts[unknown]).ratio() >= 0.75]
    nearest = difflib.get_close_matches('.'.join(parts), candidates, n=1, cutoff=0)
    return nearest[0] if nearest else None


def checked_cfg_options(cfg: Config, options: Dict[str, object]) -> Dict[str, object]:
    """``options`` as ``Config.merge_from_dict`` takes them, without the new-key prefix.

    Raises:
        ToolInputError: for a key the config does not have and that is not marked new, naming
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
                    f'{known} has no key {parts[unknown]!r}' if known else
                    'no key of the config is close')
            raise ToolInputError(
                f'--cfg-options key {key} is not in the config ({hint}); to add a key the '
                f'config does not have, write {NEW_KEY_PREFIX}{key}=VALUE.')
        checked[key] = value
    return checked


def _model_of(cfg: Config):
    """The config's model, built as the Runner builds it but without initialising its weights."""
    from mmengine.registry import MODELS, DefaultScope
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        return MODELS.build(model_cfg)


def check_checkpoint_fits(cfg: Config, checkpoint: str, purpose: str,
                          allow_partial: bool = False) -> dict:
    """Load ``checkpoint`` and refuse it unless its keys and shapes fit the config's model.

    mmengine loads ``load_from`` and resumed checkpoints with ``strict=False``: a checkpoint of
    another model only logs warnings, and the run evaluates or fine-tunes a partly random model.

    Args:
        cfg: the full config.
        checkpoint: a path or URL, as ``load_from`` takes.
        purpose: what the checkpoint is for, ending the refusal: ``'evaluation'``,
            ``'load_from'`` or ``'--resume'``.
        allow_partial: only check that the checkpoint can be read.

    Returns:
        The loaded checkpoint.

    Raises:
        CheckpointMismatchError: listing the missing, unexpected and mis-shaped keys.
        FileNotFoundError, CorruptCheckpointError, UnsafeCheckpointError: from the loader.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    if allow_partial:
        return loaded
    remedies = {
        'evaluation': '; pass --allow-partial to evaluate with only the matching keys loaded',
        'load_from': '; pass --allow-partial to load only the matching keys (fine-tuning with '
                     'another head, say)',
        '--resume': '; resume only a checkpoint of this config\'s model',
    }
    mismatch = describe_mismatch(state_dict_of(loaded), _model_of(cfg),
                                 f'The {purpose} checkpoint {checkpoint}', remedies[purpose])
    if mismatch:
        raise CheckpointMismatchError(mismatch)
    return loaded


def undecodable_image_in(err: AssertionError) -> Optional[str]:
    """The path in mmcv's ``LoadImageFromFile`` assertion ``failed to load image: PATH`` (also
    when a data-loader worker re-raised it), None for any other assertion."""
    match = re.search(r'failed to load image: (.+)', str(err))
    return match.group(1).strip() if match else None


def launch_rank(launcher: str) -> int:
    """This process's global rank as its launcher sets it, before any process group exists."""
    variable = dict(pytorch='RANK', slurm='SLURM_PROCID', mpi='OMPI_COMM_WORLD_RANK').get(launcher)
    return int(os.environ.get(variable, 0)) if variable else 0
