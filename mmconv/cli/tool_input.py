"""The checks tools/train.py and tools/test.py make before any work, and how they refuse.

A refused input is reported as one ``error: ...`` sentence on stderr with exit code 2, before the
Runner is built, so a refused run writes nothing in the work dir.
"""
import argparse
import os
import re
import sys
from typing import NoReturn, Optional

from mmengine.config import Config, DictAction

from mmconv.analysis.config import ConfigOptionError, build_model
from mmconv.datasets.data_check import DatasetError
from mmconv.engine.checkpoint import CorruptCheckpointError, UnsafeCheckpointError
from mmconv.models.pretrained import CheckpointMismatchError, describe_mismatch, state_dict_of

__all__ = [
    'REFUSED_INPUT_ERRORS', 'CfgOptionsAction', 'ToolArgumentParser', 'ToolInputError', 'check_checkpoint_fits',
    'launch_rank', 'refuse', 'undecodable_image_in'
]


class ToolInputError(ValueError):
    """A command line or config that a tool refuses before doing any work."""


# What the tools report as one sentence; anything else is a bug and keeps its traceback.
REFUSED_INPUT_ERRORS = (ToolInputError, ConfigOptionError, FileNotFoundError, DatasetError, CheckpointMismatchError,
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


def check_checkpoint_fits(cfg: Config, checkpoint: str, purpose: str, allow_partial: bool = False) -> dict:
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
    mismatch = describe_mismatch(
        state_dict_of(loaded), build_model(cfg), f'The {purpose} checkpoint {checkpoint}', remedies[purpose])
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
