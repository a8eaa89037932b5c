"""Print the parameters and FLOPs of the model a config describes, on a synthetic input.

Classifiers (mmpretrain configs) are counted whole, backbone + neck + head, on one
3×H×W image (224×224 unless ``--shape`` says otherwise). Detectors (mmdet configs) are counted
whole as well: backbone, neck, RPN and RoI heads, run by the detector's ``forward`` in
``'tensor'`` mode on one synthetic image, 1280×800 (H×W, mmdet's get_flops default) unless
``--shape`` says otherwise; the RoI heads get exactly the RPN's ``max_per_img`` proposals (1000;
the mask head the first 100), as in mmdet 2.x's counts, whatever the random weights propose.
Unlike mmdet's own tool it needs no dataset.

Counting is mmengine's (1 FLOP = 1 multiply-accumulate, the papers' convention) with mmconv's
handles installed, so involution, C-volution, SCC and the other mmconv operators, which run as
registered ops invisible to the stock counter, are counted with their real cost.
Weights are random: nothing is downloaded (``init_cfg`` is not applied).

Usage:
    python tools/analysis_tools/get_flops.py configs/rednet/rednet50_64xb32_in1k.py
    python tools/analysis_tools/get_flops.py CONFIG --shape 800 1333 --show-table
"""
import argparse
from functools import partial
from typing import Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, init_default_scope

from mmconv.analysis import get_model_complexity_info
from mmconv.utils.runtime import task_of

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
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
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


def build_model(cfg: Config) -> torch.nn.Module:
    """The config's model in eval mode, built in the config's default scope (its data
    preprocessor is not run: the synthetic input stands for a normalised batch)."""
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return MODELS.build(cfg.model).eval()


def prepare_detector(model: torch.nn.Module, height: int, width: int) -> None:
    """Bind ``forward`` to a 'tensor'-mode call with one image's metadata, as mmdet's tool does."""
    from mmdet.structures import DetDataSample
    shape = (height, width)
    sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                         batch_input_shape=shape, scale_factor=(1.0, 1.0)))
    model.forward = partial(model.forward, data_samples=[sample], mode='tensor')
    if getattr(model, 'with_rpn', False):
        fix_proposals(model.rpn_head, model.test_cfg.rpn.max_per_img, height, width)


def fix_proposals(rpn_head: torch.nn.Module, num: int, height: int, width: int) -> None:
    """Let the RPN run (its convs count), then hand the RoI heads exactly ``num`` proposals.

    With random weights the RPN's NMS keeps a weight-dependent number of boxes (none at all when
    a randomly initialised backbone overflows), so the RoI heads' count would vary from run to
    run. mmdet 2.x's ``forward_dummy``, which published tables used, fed them ``num`` (1000)
    boxes, of which the mask head sees the first 100; so does this.
    """
    from mmengine.structures import InstanceData
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(num, 2, 2, generator=generator) * torch.tensor([width, height])
    boxes = torch.cat([corners.min(1).values, corners.max(1).values + 1], dim=1)
    predict = rpn_head.predict

    def predict_then_fix(*args, **kwargs):
        return [InstanceData(bboxes=boxes, scores=torch.ones(num), labels=torch.zeros(num).long())
                for _ in predict(*args, **kwargs)]

    rpn_head.predict = predict_then_fix


def count(cfg: Config, height: int, width: int, show_table: bool = False,
          show_arch: bool = False) -> dict:
    """mmengine's complexity info of the config's whole model on a 1×3×H×W input."""
    task = task_of(cfg)
    model = build_model(cfg)
    if task == 'det':
        prepare_detector(model, height, width)
    inputs = torch.rand(1, 3, height, width)
    with torch.no_grad():
        info = get_model_complexity_info(model, inputs=(inputs, ), show_table=show_table,
                                         show_arch=show_arch)
    # Published detection tables count what trains: frozen stages (frozen_stages) are left out.
    info['trainable_params'] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return info


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    height, width = input_shape(task_of(cfg), args.shape)
    info = count(cfg, height, width, args.show_table, args.show_arch)
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
