"""What tools/train.py and tools/test.py share: loading a config and adapting it to the machine."""
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Read ``path``, apply ``--cfg-options`` and pick the work dir and distributed backend.

    The work dir is, by priority, ``work_dir``, the config's own, then
    ``./work_dirs/<config name>``. Distributed runs on a machine without CUDA use gloo, since
    NCCL (the downstream default) needs GPUs.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file {path} does not exist; check the path.')
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    if launcher != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    return cfg


def task_of(cfg: Config) -> str:
    """``'det'`` for mmdet configs, ``'cls'`` for mmpretrain ones (by their default scope)."""
    return 'det' if cfg.get('default_scope') == 'mmdet' else 'cls'


__all__ = ['load_config', 'task_of']
