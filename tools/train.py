"""Train a classifier (mmpretrain) or a detector (mmdet) from a config.

Flags follow mmdet's and mmpretrain's tools/train.py. A bad command line, config, dataset or
checkpoint is refused in one ``error:`` sentence with exit code 2 before any work, and a work dir
in use by another live training run is refused the same way.
"""
import os
import os.path as osp
from contextlib import nullcontext

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmconv.engine  # noqa: F401  (CPUBF16AutocastOptimWrapper, for --amp without CUDA)
from mmconv.analysis.config import NEW_KEY_PREFIX
from mmconv.cli.runtime import init_distributed_without_cuda, load_run_config
from mmconv.cli.tool_input import (REFUSED_INPUT_ERRORS, CfgOptionsAction, ToolArgumentParser, ToolInputError,
                                   check_checkpoint_fits, launch_rank, refuse, undecodable_image_in)
from mmconv.cli.work_dir_lock import hold_work_dir_lock
from mmconv.datasets.data_check import check_class_folders, check_dataset_paths, check_images
from mmconv.datasets.det_data_check import check_detection_annotations
from mmconv.engine.checkpoint import CorruptCheckpointError, UnsafeCheckpointError
from mmconv.models.pretrained import CheckpointMismatchError

LOADERS = ('train_dataloader', 'val_dataloader')


def parse_args():
    parser = ToolArgumentParser(description='Train a model with mmconv.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CHECKPOINT',
                        help='resume from CHECKPOINT, or from the latest one in the work dir if none is given')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision: fp16 with loss scaling on CUDA, bf16 autocast on a CPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by (total batch size / auto_scale_lr.base_batch_size)')
    parser.add_argument('--no-validate', action='store_true', help='skip validation')
    parser.add_argument(
        '--allow-partial', action='store_true',
        help='let load_from load only the checkpoint keys that fit the model (fine-tuning with '
        'another head); without it, a checkpoint that does not fit is refused')
    parser.add_argument('--check-images', action='store_true',
                        help='decode every image of the datasets before training (reads them all once)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='override config entries, e.g. train_dataloader.batch_size=8; a key the config '
        f'does not have is refused unless prefixed with {NEW_KEY_PREFIX}')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def latest_checkpoint(work_dir: str):
    """The checkpoint ``last_checkpoint`` names in ``work_dir`` (mmengine's auto-resume), if any."""
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker) as f:
        return f.read().strip() or None


def checked_config(args) -> Config:
    """The config the command line asks for, every input checked; raises one of
    ``REFUSED_INPUT_ERRORS``."""
    cfg = load_run_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.amp and torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    elif args.amp:  # mmengine's AmpOptimWrapper needs a GPU
        cfg.optim_wrapper.type = 'CPUBF16AutocastOptimWrapper'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ToolInputError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config; '
                                 'set it to the total batch size the lr was tuned for.')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None

    check_dataset_paths(cfg, LOADERS)
    check_detection_annotations(cfg, LOADERS)
    check_class_folders(cfg, LOADERS)
    if args.check_images:
        check_images(cfg, LOADERS)
    if cfg.get('resume'):
        checkpoint = cfg.get('load_from') or latest_checkpoint(cfg.work_dir)
        if checkpoint:
            check_checkpoint_fits(cfg, checkpoint, '--resume')
    elif cfg.get('load_from'):
        check_checkpoint_fits(cfg, cfg.load_from, 'load_from', args.allow_partial)
    return cfg


def main():
    args = parse_args()
    try:
        cfg = checked_config(args)
        # Rank 0 holds the lock for a distributed run, until its process ends.
        lock = (hold_work_dir_lock(cfg.work_dir) if launch_rank(args.launcher) == 0 else nullcontext())
    except REFUSED_INPUT_ERRORS as err:
        refuse(str(err))
    with lock:
        init_distributed_without_cuda(cfg)
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        try:
            runner.train()
        except (UnsafeCheckpointError, CorruptCheckpointError,
                CheckpointMismatchError) as err:  # from a backbone's init_cfg=Pretrained
            refuse(str(err))
        except AssertionError as err:
            image = undecodable_image_in(err)
            if image is None:
                raise
            refuse(f'image {image} cannot be decoded, which stopped training; replace or '
                   'remove it (--check-images decodes every image before training).')


if __name__ == '__main__':
    main()
