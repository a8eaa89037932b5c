"""What the checkpoint converters of ``tools/model_converters/`` share.

A converter reads an official checkpoint, renames its keys with an ordered list of
``(pattern, replacement)`` rules (regular expressions matched against the whole key, the first
matching rule wins), checks the result against the state dict of the mmconv model it is meant for,
and writes an mmengine-style checkpoint ``{'state_dict': ..., 'meta': ...}`` atomically: into a
temporary file next to the destination, renamed into place only when complete.

Every source key must match a rule and every target key must be produced: a key no rule knows, a
key the model lacks, a key the model expects that the source does not provide, or a shape that
differs is reported by name in a :class:`ConversionError` instead of being dropped silently.
"""
import argparse
import os
import os.path as osp
import re
import sys
import tempfile
from collections import OrderedDict
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from mmengine.config import DictAction

from mmconv.analysis.config import ConfigOptionError, build_model, load_config
from mmconv.engine.checkpoint import safe_torch_load

__all__ = [
    'ConversionError', 'converter_main', 'KeyRule', 'unwrap_state_dict', 'load_source_state_dict', 'rename_keys',
    'check_against', 'model_state_dict', 'save_converted', 'convert_checkpoint'
]

KeyRule = Tuple[str, str]
MAX_LISTED = 20


class ConversionError(ValueError):
    """A checkpoint does not convert cleanly; the message lists the offending keys.

    Attributes:
        unknown (list[str]): The source keys no conversion rule matched (possibly empty).
    """

    def __init__(self, message: str, unknown: Sequence[str] = ()):
        super().__init__(message)
        self.unknown = list(unknown)


def _listing(title: str, keys: Sequence[str]) -> str:
    shown = '\n'.join(f'    {key}' for key in keys[:MAX_LISTED])
    more = f'\n    ... and {len(keys) - MAX_LISTED} more' if len(keys) > MAX_LISTED else ''
    return f'  {title} ({len(keys)}):\n{shown}{more}'


def unwrap_state_dict(checkpoint: Mapping) -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint: its ``state_dict`` (or ``model``) entry, or the checkpoint
    itself when it is a bare state dict."""
    if not isinstance(checkpoint, Mapping):
        raise ConversionError(f'a checkpoint must be a dict, got {type(checkpoint).__name__}.')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    tensors = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not tensors or len(tensors) != len(checkpoint):
        others = sorted(k for k, v in checkpoint.items() if not isinstance(v, torch.Tensor))
        raise ConversionError('the checkpoint has no state dict of tensors (entries that are not '
                              f'tensors: {others[:MAX_LISTED]}).')
    return dict(tensors)


def load_source_state_dict(path: str, strip_prefixes: Iterable[str] = ('module.', )) -> Dict[str, torch.Tensor]:
    """Read an official checkpoint safely and return its state dict.

    ``strip_prefixes`` are removed from every key that starts with them (``module.`` is what
    ``nn.DataParallel`` and DDP add).
    """
    state_dict = unwrap_state_dict(safe_torch_load(path, map_location='cpu'))
    for prefix in strip_prefixes:
        state_dict = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state_dict.items()}
    return state_dict


def rename_keys(state_dict: Mapping[str, torch.Tensor], rules: Sequence[KeyRule]) -> 'OrderedDict[str, torch.Tensor]':
    """Rename every key with the first rule whose pattern matches it entirely.

    Raises:
        ConversionError: listing the keys no rule matches and the keys two sources map onto.
    """
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    converted: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    unknown: List[str] = []
    sources: Dict[str, str] = {}
    clashes: List[str] = []
    for key, value in state_dict.items():
        for pattern, replacement in compiled:
            if pattern.fullmatch(key):
                new_key = pattern.sub(replacement, key)
                break
        else:
            unknown.append(key)
            continue
        if new_key in sources:
            clashes.append(f'{sources[new_key]} and {key} -> {new_key}')
        sources[new_key] = key
        converted[new_key] = value
    if unknown or clashes:
        parts = (['  the converter has no rule for these keys:\n' +
                  _listing('unexpected', unknown)[2:]] if unknown else [])
        parts += [_listing('keys mapped twice', clashes)] if clashes else []
        raise ConversionError('the checkpoint does not have the layout this converter reads:\n' + '\n'.join(parts),
                              unknown=unknown)
    return converted


def check_against(converted: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> None:
    """Check that ``converted`` has exactly the keys and shapes of ``expected`` (a model's
    ``state_dict()``).

    Raises:
        ConversionError: listing missing keys, unexpected keys and shape mismatches.
    """
    missing = [k for k in expected if k not in converted]
    unexpected = [k for k in converted if k not in expected]
    mismatched = [
        f'{k}: checkpoint {tuple(converted[k].shape)}, model {tuple(expected[k].shape)}' for k in converted
        if k in expected and converted[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = [
            _listing(title, keys)
            for title, keys in (('missing (the model has them, the converted checkpoint does not)', missing),
                                ('unexpected (the converted checkpoint has them, the model does not)',
                                 unexpected), ('shape mismatch', mismatched)) if keys
        ]
        raise ConversionError('the converted checkpoint does not fit the model:\n' + '\n'.join(parts))


def save_converted(state_dict: Mapping[str, torch.Tensor], path: str, meta: Optional[dict] = None) -> None:
    """Write ``{'state_dict': state_dict, 'meta': meta}`` to ``path`` atomically."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save({'state_dict': OrderedDict(state_dict), 'meta': dict(meta or {})}, f)
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise


def model_state_dict(config: str, cfg_options: Optional[dict] = None) -> Dict[str, torch.Tensor]:
    """The state dict of the (randomly initialised) model a config (with ``cfg_options``) describes."""
    return build_model(load_config(config, cfg_options)).state_dict()


def convert_checkpoint(
        src: str, dst: str, convert, source: str, config: Optional[str] = None, cfg_options: Optional[dict] = None,
        hint: Optional[Callable[[Mapping, Mapping], Optional[str]]] = None) -> 'OrderedDict[str, torch.Tensor]':
    """Read ``src``, convert its state dict with ``convert``, check it against ``config``'s
    model (with ``cfg_options``) when given, and write it to ``dst``; ``source`` names the format
    in the meta.

    Raises:
        ConversionError: listing, together, the source keys no rule knows and (with ``config``)
            the keys the model misses or does not have and the shape mismatches, followed by what
            ``hint`` (given the converted and the model's state dicts) says to do. Nothing is
            written then.
    """
    source_state = load_source_state_dict(src)
    problems = []
    try:
        state_dict = convert(source_state)
    except ConversionError as err:
        if config is None or not err.unknown:
            raise
        # Convert what the rules know, so that the report also names what the model misses.
        problems.append(str(err))
        state_dict = convert({k: v for k, v in source_state.items() if k not in err.unknown})
    expected = model_state_dict(config, cfg_options) if config is not None else None
    if expected is not None:
        try:
            check_against(state_dict, expected)
        except ConversionError as err:
            problems.append(str(err))
    advice = hint(state_dict, expected) if problems and hint is not None and expected is not None else None
    if problems:
        raise ConversionError('\n'.join(problems + ([advice] if advice else [])))
    meta = dict(source=source, converted_from=osp.basename(src))
    if config is not None:
        meta['config'] = config
    if cfg_options:
        meta['cfg_options'] = dict(cfg_options)
    save_converted(state_dict, dst, meta)
    return state_dict


def converter_main(convert, source: str, src_help: str, hint: Optional[Callable[[Mapping, Mapping],
                                                                                Optional[str]]] = None) -> None:
    """Command line of the ``tools/model_converters`` scripts:
    ``SRC DST [--config CONFIG [--cfg-options KEY=VALUE ...]]``. A refusal prints one ``error:``
    message (the offending keys listed) and exits with status 2.

    Args:
        convert: Maps a source state dict to an mmconv one.
        source (str): The checkpoint format, as recorded in the meta and shown in ``--help``.
        src_help (str): What SRC is.
        hint: What to do when the check against ``--config`` fails, read off the converted and the
            model's state dicts (None: nothing to add).
    """
    parser = argparse.ArgumentParser(description=f'Convert a checkpoint of {source} for mmconv.')
    parser.add_argument('src', help=src_help)
    parser.add_argument('dst', help='where to write the mmconv checkpoint')
    parser.add_argument('--config', help='mmconv config whose model must accept every key')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override entries of --config (+KEY=VALUE adds a constructor argument the '
        'config leaves at its default, e.g. +model.backbone.stem_kernel=7)')
    args = parser.parse_args()
    if args.cfg_options and not args.config:
        print('error: --cfg-options changes the model of --config; give --config too.', file=sys.stderr)
        sys.exit(2)
    try:
        state_dict = convert_checkpoint(args.src, args.dst, convert, source, args.config, args.cfg_options, hint)
    except (ConversionError, ConfigOptionError, FileNotFoundError) as err:
        print(f'error: {args.src}: {err}', file=sys.stderr)
        sys.exit(2)
    print(f'Wrote {len(state_dict)} tensors to {args.dst}')
