"""Evaluate a checkpoint of a classifier (mmpretrain) or a detector (mmdet) and print its metrics.

Flags follow mmdet's and mmpretrain's tools/test.py. A bad command line, config, dataset or
checkpoint (one whose keys or shapes do not fit the model, unless --allow-partial) is refused in
one ``error:`` sentence with exit code 2 before any work.
"""
import os

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmconv.analysis.config import NEW_KEY_PREFIX, task_of
from mmconv.cli.runtime import init_distributed_without_cuda, load_run_config
from mmconv.cli.tool_input import (REFUSED_INPUT_ERRORS, CfgOptionsAction, ToolArgumentParser, ToolInputError,
                                   check_checkpoint_fits, refuse, undecodable_image_in)
from mmconv.datasets.data_check import check_class_folders, check_dataset_paths, check_images
from mmconv.datasets.det_data_check import check_detection_annotations

LOADERS = ('test_dataloader', )


def parse_args():
    parser = ToolArgumentParser(description='Test a model with mmconv.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation log goes')
    parser.add_argument('--out', help='dump the predictions to this .pkl file')
    parser.add_argument('--show-dir', help='save images with drawn predictions to this folder')
    parser.add_argument(
        '--allow-partial', action='store_true',
        help='evaluate a checkpoint whose keys or shapes do not all fit the model, loading only '
        'those that fit; without it, such a checkpoint is refused')
    parser.add_argument('--check-images', action='store_true',
                        help='decode every image of the test set before testing (reads them all once)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='override config entries, e.g. test_dataloader.batch_size=8; a key the config '
        f'does not have is refused unless prefixed with {NEW_KEY_PREFIX}')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def add_prediction_dump(cfg, out_file: str) -> None:
    dump = dict(type='DumpDetResults' if task_of(cfg) == 'det' else 'DumpResults', out_file_path=out_file)
    evaluators = cfg.test_evaluator
    cfg.test_evaluator = [*evaluators, dump] if isinstance(evaluators, list) else [evaluators, dump]


def enable_drawing(cfg, show_dir: str) -> None:
    hook = cfg.default_hooks.visualization
    if task_of(cfg) == 'det':
        hook.update(draw=True, test_out_dir=show_dir)
    else:
        hook.update(enable=True, out_dir=show_dir)


def checked_config(args) -> Config:
    """The config the command line asks for, every input checked; raises one of
    ``REFUSED_INPUT_ERRORS``."""
    if args.out and not args.out.endswith(('.pkl', '.pickle')):
        raise ToolInputError(f'--out must name a .pkl file, got {args.out}.')
    cfg = load_run_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = args.checkpoint
    if args.out:
        add_prediction_dump(cfg, args.out)
    if args.show_dir:
        enable_drawing(cfg, args.show_dir)

    check_dataset_paths(cfg, LOADERS)
    check_detection_annotations(cfg, LOADERS)
    checkpoint = check_checkpoint_fits(cfg, args.checkpoint, 'evaluation', args.allow_partial)
    trained_on = (checkpoint.get('meta') or {}).get('dataset_meta', {}).get('classes')
    check_class_folders(cfg, LOADERS, ('the checkpoint', trained_on) if trained_on else None)
    if args.check_images:
        check_images(cfg, LOADERS)
    return cfg


def main():
    args = parse_args()
    try:
        cfg = checked_config(args)
    except REFUSED_INPUT_ERRORS as err:
        refuse(str(err))
    init_distributed_without_cuda(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    try:
        metrics = runner.test()
    except AssertionError as err:
        image = undecodable_image_in(err)
        if image is None:
            raise
        refuse(f'image {image} cannot be decoded, which stopped testing; replace or remove it '
               '(--check-images decodes every image before testing).')
    if runner.rank == 0:
        print('\n'.join(f'{key}: {value:.4f}' if isinstance(value, float) else f'{key}: {value}'
                        for key, value in metrics.items()))


if __name__ == '__main__':
    main()
