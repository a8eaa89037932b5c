"""Checkpoint the random number generators so that a resumed run repeats an uninterrupted one."""
import random
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop


class _RestoreAfterFastForward:
    """Stands in for an ``IterBasedTrainLoop``'s data iterator while a resumed loop fast-forwards.

    The loop skips the batches trained before the checkpoint by drawing them again after
    ``before_train``; their random augmentations would move the restored streams. This wrapper
    passes those draws through and calls ``on_done`` (the restore) after the last one, then puts
    the real iterator back.
    """

    def __init__(self, loop: IterBasedTrainLoop, num_skipped: int, on_done: Callable[[], None]):
        self._loop, self._remaining, self._on_done = loop, num_skipped, on_done
        self._iterator = loop.dataloader_iterator

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._iterator)
        self._remaining -= 1
        if self._remaining == 0:
            self._loop.dataloader_iterator = self._iterator
            self._on_done()
        return batch


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save and restore the python, numpy and torch (CPU and CUDA) RNG states and the sampler seed.

    mmengine checkpoints keep the weights, optimizer and schedulers but not the random streams, so
    a run resumed from epoch ``e`` draws different augmentations from then on than the run that was
    interrupted. With this hook both runs end with the same weights (on a deterministic device).

    * The states are stored under ``checkpoint['rng_state']`` when a checkpoint is written.
    * They are restored at ``before_train`` only when the run resumes from that checkpoint (its
      saved iteration is the runner's current one), never when ``load_from`` fine-tunes from it.
      An ``IterBasedTrainLoop`` replays the batches it already trained on to reach the saved
      position, after ``before_train``; for it, the states are restored once that replay is over.
    * Validation inside training runs between saving a checkpoint and the next epoch; it must not
      move the training streams (building its dataloader iterator draws from torch's generator),
      so the states are set aside before validation and put back after it.

    Worker processes of a dataloader with ``persistent_workers=True`` keep their own streams, which
    no checkpoint can capture: exact resumption needs ``num_workers=0`` or non-persistent workers.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._resumed_state: Optional[Dict[str, Any]] = None
        self._resumed_iter: Optional[int] = None
        self._state_before_val: Optional[Dict[str, Any]] = None

    @staticmethod
    def capture() -> Dict[str, Any]:
        state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        return state

    @staticmethod
    def restore(state: Dict[str, Any]) -> None:
        random.setstate(state['python'])
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'].cpu())
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])

    @staticmethod
    def _sampler(runner):
        """The train dataloader's seeded sampler (mmengine's ``DefaultSampler`` or
        ``InfiniteSampler``), directly or inside a batch sampler such as mmdet's
        ``AspectRatioBatchSampler``; ``None`` when there is none."""
        loop = getattr(runner, '_train_loop', None)
        dataloader = getattr(loop, 'dataloader', None)
        for sampler in (getattr(dataloader, 'sampler',
                                None), getattr(getattr(dataloader, 'batch_sampler', None), 'sampler', None)):
            if hasattr(sampler, 'seed'):
                return sampler
        return None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = self.capture()
        sampler = self._sampler(runner)
        if sampler is not None:
            state['sampler_seed'] = sampler.seed
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed_state = checkpoint.get('rng_state')
        self._resumed_iter = checkpoint.get('meta', {}).get('iter')

    def before_train(self, runner) -> None:
        state, self._resumed_state = self._resumed_state, None
        if state is None or runner.iter == 0 or runner.iter != self._resumed_iter:
            return
        sampler = self._sampler(runner)
        if 'sampler_seed' in state and sampler is not None:
            sampler.seed = state['sampler_seed']
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _RestoreAfterFastForward(loop, runner.iter, lambda: self.restore(state))
        else:
            self.restore(state)

    def before_val(self, runner) -> None:
        self._state_before_val = self.capture()

    def after_val(self, runner) -> None:
        if self._state_before_val is not None:
            self.restore(self._state_before_val)
            self._state_before_val = None
