"""Evaluate a checkpoint of a classifier (mmpretrain) or a detector (mmdet) and print its metrics.

Flags follow mmdet's and mmpretrain's tools/test.py.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmconv.utils.checkpoint import CorruptCheckpointError, UnsafeCheckpointError
from mmconv.utils.data_check import check_dataset_paths
from mmconv.utils.det_data_check import EmptyAnnotationsError, check_detection_annotations
from mmconv.utils.runtime import init_distributed_without_cuda, load_config, task_of


def parse_args():
    parser = argparse.ArgumentParser(description='Test a model with mmconv.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation log goes')
    parser.add_argument('--out', help='dump the predictions to this .pkl file')
    parser.add_argument('--show-dir', help='save images with drawn predictions to this folder')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. test_dataloader.batch_size=8')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def add_prediction_dump(cfg, out_file: str) -> None:
    if not out_file.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must name a .pkl file, got {out_file}.')
    dump = dict(type='DumpDetResults' if task_of(cfg) == 'det' else 'DumpResults',
                out_file_path=out_file)
    evaluators = cfg.test_evaluator
    cfg.test_evaluator = [*evaluators, dump] if isinstance(evaluators, list) else [evaluators, dump]


def enable_drawing(cfg, show_dir: str) -> None:
    hook = cfg.default_hooks.visualization
    if task_of(cfg) == 'det':
        hook.update(draw=True, test_out_dir=show_dir)
    else:
        hook.update(enable=True, out_dir=show_dir)


def main():
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        sys.exit(f'error: checkpoint {args.checkpoint} does not exist; check the path.')
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = args.checkpoint
    if args.out:
        add_prediction_dump(cfg, args.out)
    if args.show_dir:
        enable_drawing(cfg, args.show_dir)

    try:
        check_dataset_paths(cfg, ('test_dataloader', ))
        check_detection_annotations(cfg, ('test_dataloader', ))
    except (FileNotFoundError, EmptyAnnotationsError) as err:
        sys.exit(f'error: {err}')
    init_distributed_without_cuda(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    try:
        metrics = runner.test()
    except (UnsafeCheckpointError, CorruptCheckpointError) as err:
        sys.exit(f'error: {err}')
    if runner.rank == 0:
        print('\n'.join(f'{key}: {value:.4f}' if isinstance(value, float) else f'{key}: {value}'
                        for key, value in metrics.items()))


if __name__ == '__main__':
    main()
