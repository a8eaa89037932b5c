"""Checkpoint the random number generators so that a resumed run repeats an uninterrupted one."""
import random
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save and restore the python, numpy and torch (CPU and CUDA) RNG states and the sampler seed.

    mmengine checkpoints keep the weights, optimizer and schedulers but not the random streams, so
    a run resumed from epoch ``e`` draws different augmentations from then on than the run that was
    interrupted. With this hook both runs end with the same weights (on a deterministic device).

    * The states are stored under ``checkpoint['rng_state']`` when a checkpoint is written.
    * They are restored at ``before_train`` only when the run resumes from that checkpoint (its
      saved iteration is the runner's current one), never when ``load_from`` fine-tunes from it.
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
        state = dict(
            python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
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
        loop = getattr(runner, '_train_loop', None)
        dataloader = getattr(loop, 'dataloader', None)
        return getattr(dataloader, 'sampler', None)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = self.capture()
        sampler = self._sampler(runner)
        if sampler is not None and hasattr(sampler, 'seed'):
            state['sampler_seed'] = sampler.seed
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed_state = checkpoint.get('rng_state')
        self._resumed_iter = checkpoint.get('meta', {}).get('iter')

    def before_train(self, runner) -> None:
        state, self._resumed_state = self._resumed_state, None
        if state is None or runner.iter == 0 or runner.iter != self._resumed_iter:
            return
        self.restore(state)
        sampler = self._sampler(runner)
        if 'sampler_seed' in state and sampler is not None and hasattr(sampler, 'seed'):
            sampler.seed = state['sampler_seed']

    def before_val(self, runner) -> None:
        self._state_before_val = self.capture()

    def after_val(self, runner) -> None:
        if self._state_before_val is not None:
            self.restore(self._state_before_val)
            self._state_before_val = None
