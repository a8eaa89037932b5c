"""Print the parameters and FLOPs of the model a config describes, on a synthetic input.

Classifiers (mmpretrain configs) are counted whole, backbone + neck + head, on one
3×H×W image (224×224 unless ``--shape`` says otherwise). Detectors (mmdet configs) are counted
whole as well: backbone, neck, RPN and RoI heads, run by the detector's ``forward`` in
``'tensor'`` mode on one synthetic image, 1280×800 (H×W, mmdet's get_flops default) unless
``--shape`` says otherwise; the RoI heads get exactly the RPN's ``max_per_img`` proposals (1000;
the mask head the first 100), as in mmdet 2.x's counts, whatever the random weights propose.
Unlike mmdet's own tool it needs no dataset.

Counting is :func:`mmconv.analysis.count_config`: mmengine's counter (1 FLOP = 1
multiply-accumulate, the papers' convention) with mmconv's handles, so involution, C-volution, SCC
and the other mmconv operators, which run as registered ops invisible to the stock counter, are
counted with their real cost.
Weights are random: nothing is downloaded (``init_cfg`` is not applied).

Usage:
    python tools/analysis_tools/get_flops.py configs/rednet/rednet50_64xb32_in1k.py
    python tools/analysis_tools/get_flops.py CONFIG --shape 800 1333 --show-table
"""
import argparse
from typing import Tuple

from mmengine.config import DictAction

from mmconv.analysis import count_config
from mmconv.analysis.config import load_config, task_of

DEFAULT_SHAPES = dict(cls=(224, 224), det=(1280, 800))


def parse_args():
    parser = argparse.ArgumentParser(description='Count the parameters and FLOPs of a model.')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--shape', type=int, nargs='+', metavar=('H', 'W'),
        help='input height and width (one value: square); default 224 224 for classifiers, '
        '1280 800 for detectors')
    parser.add_argument('--show-table', action='store_true', help='print the per-module table')
    parser.add_argument('--show-arch', action='store_true', help='print the annotated model')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.backbone.depth=26')
    args = parser.parse_args()
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error('--shape takes H or H W.')
    return args


def input_shape(task: str, shape) -> Tuple[int, int]:
    """(H, W) from ``--shape`` or the task's default."""
    if shape is None:
        return DEFAULT_SHAPES[task]
    return (shape[0], shape[-1])


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    height, width = input_shape(task_of(cfg), args.shape)
    info = count_config(cfg, height, width, args.show_table, args.show_arch)
    if args.show_table:
        print(info['out_table'])
    if args.show_arch:
        print(info['out_arch'])
    rule = '=' * 40
    print(f'{rule}\n'
          f'Input shape: (3, {height}, {width})\n'
          f'Flops: {info["flops"] / 1e9:.3f} G ({info["flops"]} multiply-accumulates)\n'
          f'Params: {info["params"] / 1e6:.3f} M ({info["params"]})\n'
          f'Trainable params: {info["trainable_params"] / 1e6:.3f} M (frozen stages excluded)\n'
          f'{rule}')


if __name__ == '__main__':
    main()
