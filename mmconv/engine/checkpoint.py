"""Safe loading of mmengine checkpoints on torch >= 2.6.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``, and mmengine 0.10.7 cannot read
its own checkpoints any more (``Weights only load failed ... HistoryBuffer``): a checkpoint stores
the message hub's ``HistoryBuffer`` objects and numpy arrays besides tensors. Turning the safety off
(``weights_only=False`` or ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) would let any checkpoint run code
while it is unpickled. Instead, mmconv keeps ``weights_only=True`` and allow-lists exactly the types
mmengine checkpoints contain. A file that pickles anything else is refused with a message that names
what it contains and how to load it if it is trusted.
"""
import os
import os.path as osp
import pickle
from typing import Any, List

import numpy as np
import torch

TRUSTED_ENV = 'MMCONV_TRUSTED_CHECKPOINTS'


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint pickles objects outside mmconv's allow-list."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file cannot be read (truncated, not a checkpoint...)."""


def _numpy_globals() -> List[Any]:
    """The numpy objects a pickled array, dtype or scalar refers to, under both module names.

    numpy 2 pickles ``numpy._core.multiarray._reconstruct``; checkpoints written with numpy 1 name
    it ``numpy.core.multiarray._reconstruct``. Both resolve to the same functions here.
    """
    from numpy._core import multiarray
    entries: List[Any] = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        func = getattr(multiarray, name)
        entries += [func, (func, f'numpy.core.multiarray.{name}')]
    # Each concrete dtype class (Float64DType, Int64DType, ...) is pickled by reference.
    entries += [type(np.dtype(code)) for code in np.typecodes['All'] if code not in 'OMm']
    entries += [type(np.dtype('O')), type(np.dtype('M8')), type(np.dtype('m8'))]
    return entries


_BUILTIN_STATISTICS = ('current', 'max', 'mean', 'min')


def _history_buffer_getattr(owner: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling with ``weights_only=True``.

    A pickled ``HistoryBuffer`` refers to its statistics methods as ``getattr(HistoryBuffer,
    'mean')``. Allowing the real ``getattr`` would let a file reach any attribute of any allowed
    object, so only those lookups are answered: the four built-in statistics (listed here, since
    ``HistoryBuffer._statistics_methods`` stays empty until a first buffer is created, as in a
    fresh process that only evaluates) and any registered with ``register_statistics``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is HistoryBuffer and (name in _BUILTIN_STATISTICS or name in HistoryBuffer._statistics_methods):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'Weights only load failed: getattr({owner!r}, {name!r}) is not allowed')


def mmengine_checkpoint_globals() -> List[Any]:
    """Everything besides tensors and containers that an mmengine training checkpoint holds."""
    from mmengine.config.config import ConfigDict
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, ConfigDict, (_history_buffer_getattr, 'builtins.getattr'), *_numpy_globals()]


def _is_trusted(path: str) -> bool:
    trusted = os.environ.get(TRUSTED_ENV, '')
    wanted = osp.realpath(path)
    return any(osp.realpath(p) == wanted for p in trusted.split(os.pathsep) if p)


def _unsafe_globals(path: str) -> str:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # the listing is only a hint for the message
        return 'objects outside the allow-list'
    return ', '.join(sorted(names)) or 'objects outside the allow-list'


def _first_sentence(err: BaseException) -> str:
    return str(err).split('. ')[0].rstrip('.') or type(err).__name__


def safe_torch_load(path: str, map_location: Any = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and clear errors.

    Args:
        path (str): A local checkpoint file.
        map_location: As in :func:`torch.load`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: the file pickles types outside the allow-list and is not listed in
            the ``MMCONV_TRUSTED_CHECKPOINTS`` environment variable.
        CorruptCheckpointError: the file is not a readable checkpoint.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint {path} does not exist; check the path.')
    if osp.getsize(path) == 0:
        raise CorruptCheckpointError(f'Checkpoint {path} is empty (0 bytes), perhaps an interrupted copy or download: '
                                     'pick another file.')
    if _is_trusted(path):
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if 'Weights only load failed' not in str(err):
            raise CorruptCheckpointError(f'Checkpoint {path} cannot be read ({_first_sentence(err)}); it is corrupt or '
                                         'not a checkpoint: pick another file.') from err
        raise UnsafeCheckpointError(f'Refusing to load checkpoint {path}: it pickles {_unsafe_globals(path)}, which '
                                    'loading could execute; if you trust this file, set '
                                    f'{TRUSTED_ENV}={osp.realpath(path)} to load it with full unpickling.') from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CorruptCheckpointError(
            f'Checkpoint {path} cannot be read ({_first_sentence(err)}); it is truncated or not a '
            'checkpoint: pick another file.') from err


def _load_from_local(filename: str, map_location: Any) -> Any:
    return safe_torch_load(osp.expanduser(filename), map_location=map_location)


_ENABLED = False


def enable_safe_checkpoint_loading() -> None:
    """Allow-list mmengine's checkpoint types and route mmengine's local loads through
    :func:`safe_torch_load`. Idempotent; ``import mmconv`` calls it when mmengine is installed."""
    global _ENABLED
    if _ENABLED:
        return
    from mmengine.runner.checkpoint import CheckpointLoader
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)
    _ENABLED = True


__all__ = [
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'enable_safe_checkpoint_loading', 'mmengine_checkpoint_globals',
    'safe_torch_load'
]
