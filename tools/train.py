"""Train a classifier (mmpretrain) or a detector (mmdet) from a config.

Flags follow mmdet's and mmpretrain's tools/train.py.
"""
import argparse
import os
import sys

from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmconv.utils.checkpoint import CorruptCheckpointError, UnsafeCheckpointError
from mmconv.utils.data_check import check_dataset_paths
from mmconv.utils.det_data_check import EmptyAnnotationsError, check_detection_annotations
from mmconv.utils.pretrained import CheckpointMismatchError
from mmconv.utils.runtime import init_distributed_without_cuda, load_config


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model with mmconv.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument(
        '--resume', nargs='?', const='auto', metavar='CHECKPOINT',
        help='resume from CHECKPOINT, or from the latest one in the work dir if none is given')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the lr by (total batch size / auto_scale_lr.base_batch_size)')
    parser.add_argument('--no-validate', action='store_true', help='skip validation')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. train_dataloader.batch_size=8')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RuntimeError(
                '--auto-scale-lr needs auto_scale_lr.base_batch_size in the config; '
                'set it to the total batch size the lr was tuned for.')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None

    try:
        check_dataset_paths(cfg, ('train_dataloader', 'val_dataloader'))
        check_detection_annotations(cfg, ('train_dataloader', 'val_dataloader'))
    except (FileNotFoundError, EmptyAnnotationsError) as err:
        sys.exit(f'error: {err}')
    init_distributed_without_cuda(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    try:
        runner.train()
    except (UnsafeCheckpointError, CorruptCheckpointError,  # from --resume / load_from
            CheckpointMismatchError) as err:  # from a backbone's init_cfg=Pretrained
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
