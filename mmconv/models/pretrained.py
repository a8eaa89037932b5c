"""Strict ``init_cfg=dict(type='Pretrained')`` loading for mmconv backbones.

mmengine's ``Pretrained`` initializer loads with ``strict=False`` and only logs the keys that did
not match, so a detector whose backbone checkpoint is the wrong one (another depth or width,
another operator, a stem kernel that differs, a bare state dict read with ``prefix='backbone.'``)
trains from random weights with frozen stages and nobody notices. mmconv backbones load their
``Pretrained`` checkpoint through :func:`load_pretrained` instead, which refuses a checkpoint that
does not cover the backbone exactly and names the missing, unexpected and mis-shaped keys.
"""
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

__all__ = ['CheckpointMismatchError', 'describe_mismatch', 'load_pretrained', 'pretrained_init_cfg', 'state_dict_of']

# Keys listed per kind in the error message; the rest are counted.
SHOWN_KEYS = 12


class CheckpointMismatchError(ValueError):
    """A ``Pretrained`` checkpoint whose keys or shapes do not match the model it initialises."""


def pretrained_init_cfg(init_cfg) -> Optional[dict]:
    """The ``type='Pretrained'`` entry of an ``init_cfg`` (a dict or a list of dicts), or None."""
    entries = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for entry in entries:
        if entry and str(entry.get('type', '')).split('.')[-1] == 'Pretrained':
            return entry
    return None


def _listing(title: str, keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:SHOWN_KEYS])
    more = f' ... and {len(keys) - SHOWN_KEYS} more' if len(keys) > SHOWN_KEYS else ''
    return f'\n  {title} ({len(keys)}): {shown}{more}'


def state_dict_of(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The weights of a loaded checkpoint (its ``state_dict``, or itself when bare), without the
    ``module.`` prefix of a model saved inside its DDP wrapper, as mmengine's loader reads them."""
    state_dict = checkpoint.get('state_dict', checkpoint)
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state_dict.items()}


def _state_dict_under_prefix(checkpoint: dict, prefix: Optional[str], source: str,
                             model_name: str) -> Dict[str, torch.Tensor]:
    state_dict = state_dict_of(checkpoint)
    if not prefix:
        return state_dict
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not selected:
        heads = sorted({k.split('.')[0] + '.' for k in state_dict})[:6]
        raise CheckpointMismatchError(
            f'Checkpoint {source} has no keys under prefix {prefix!r} to initialise '
            f'{model_name} (its keys start with {", ".join(heads)}); use the checkpoint of a '
            f'classifier whose backbone is a {model_name}, or prefix=None for a bare backbone '
            'state dict.')
    return selected


def load_pretrained(module: nn.Module, checkpoint: str, prefix: Optional[str] = None, map_location: str = 'cpu',
                    **_) -> None:
    """Load ``checkpoint`` into ``module``, requiring every key and shape to match.

    Args:
        module: the model to initialise (a backbone).
        checkpoint: path or URL, as for mmengine's ``Pretrained`` initializer.
        prefix: keep only the keys under this prefix and strip it (``'backbone.'`` reads the
            backbone of a classifier checkpoint; its head is ignored). None takes every key.
        map_location: where tensors are loaded.

    Raises:
        CheckpointMismatchError: naming the checkpoint and listing the missing, unexpected and
            mis-shaped keys when the checkpoint does not cover ``module`` exactly.
    """
    from mmengine.runner.checkpoint import _load_checkpoint

    name = type(module).__name__
    state_dict = _state_dict_under_prefix(_load_checkpoint(checkpoint, map_location), prefix, checkpoint, name)
    under = f' under prefix {prefix!r}' if prefix else ''
    mismatch = describe_mismatch(
        state_dict, module, f'Checkpoint {checkpoint}',
        f'{under} (is it a {name} checkpoint with the same depth, widths and operator '
        'arguments?)')
    if mismatch:
        raise CheckpointMismatchError(mismatch)
    module.load_state_dict(state_dict, strict=False)


def describe_mismatch(state_dict: Dict[str, torch.Tensor], module: nn.Module, source: str,
                      remedy: str) -> Optional[str]:
    """None when ``state_dict`` covers ``module`` exactly, else a message that counts and lists
    its missing, unexpected and mis-shaped keys.

    Args:
        state_dict: the weights to load, keys as in ``module.state_dict()``.
        module: the model they are meant for.
        source: the message's subject, e.g. ``'Checkpoint PATH'``.
        remedy: appended to the counts of the first line: where the keys were read, a hint.
    """
    name = type(module).__name__
    expected = module.state_dict()
    # BN's batch counter is absent from some checkpoints and never used with a momentum set.
    missing = [k for k in expected if k not in state_dict and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state_dict if k not in expected]
    mis_shaped: List[str] = [
        f'{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}' for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or mis_shaped):
        return None
    return (f'{source} does not match {name}: {len(missing)} missing, {len(unexpected)} '
            f'unexpected and {len(mis_shaped)} mis-shaped keys{remedy}.' +
            (_listing('missing', missing) if missing else '') +
            (_listing('unexpected', unexpected) if unexpected else '') +
            (_listing('shape checkpoint vs model', mis_shaped) if mis_shaped else ''))
