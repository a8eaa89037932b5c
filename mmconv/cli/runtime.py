"""What tools/train.py and tools/test.py share: loading a config and adapting it to the machine."""
import os.path as osp
from datetime import timedelta
from typing import Optional

import torch
from mmengine.config import Config

from mmconv.analysis.config import load_config


def load_run_config(path: str, cfg_options: Optional[dict] = None, launcher: str = 'none',
                    work_dir: Optional[str] = None) -> Config:
    """Read ``path`` with ``--cfg-options`` (:func:`mmconv.analysis.config.load_config`) and pick
    the work dir and distributed backend.

    The work dir is, by priority, ``work_dir``, the config's own, then
    ``./work_dirs/<config name>``. Distributed runs on a machine without CUDA use gloo, since
    NCCL (the downstream default) needs GPUs, and wrap the model in a DDP with no device ids
    (mmengine's default passes ``LOCAL_RANK`` as a GPU id, which DDP rejects for CPU modules);
    see also :func:`init_distributed_without_cuda`.
    """
    cfg = load_config(path, cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    if launcher != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
        if cfg.get('model_wrapper_cfg') is None:
            cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
                                         find_unused_parameters=cfg.get('find_unused_parameters', False))
    return cfg


def init_distributed_without_cuda(cfg: Config) -> None:
    """Join the gloo process group of a torchrun launch on a machine without CUDA.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device(LOCAL_RANK)`` before creating the
    group, which fails without a GPU; the Runner skips ``init_dist`` when a group already
    exists, so the tools create it first. Only the ``pytorch`` launcher (torchrun, as in
    ``tools/dist_train.sh``) is handled: its rank and world size come from the environment.
    """
    if cfg.get('launcher') != 'pytorch' or torch.cuda.is_available():
        return
    if torch.distributed.is_initialized():
        return
    dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg', {})
    timeout = dist_cfg.get('timeout')
    torch.distributed.init_process_group(
        backend=dist_cfg.get('backend', 'gloo'),
        **({} if timeout is None else dict(timeout=timedelta(seconds=timeout))))


__all__ = ['init_distributed_without_cuda', 'load_run_config']
