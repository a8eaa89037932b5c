"""Parameters and FLOPs of mmconv models with mmengine's counter, mmconv's operators included.

mmengine's ``FlopAnalyzer`` traces the model and counts convolutions and matmuls; a registered
``mmconv::`` op is one opaque node to it. Each analyzer made here gets mmconv's handles through
its public ``set_op_handle``: mmengine's own defaults are left as they are, so its stock
``get_model_complexity_info`` keeps counting exactly what it counted before mmconv was imported.
"""
from functools import partial
from typing import Tuple

import torch
from mmengine.analysis import ActivationAnalyzer, FlopAnalyzer, parameter_count
from mmengine.analysis.print_helper import complexity_stats_str, complexity_stats_table
from mmengine.config import Config
from torch import nn

from .config import build_model, task_of

__all__ = ['count_config', 'flop_analyzer', 'get_model_complexity_info']


def flop_analyzer(model: nn.Module, inputs: Tuple) -> FlopAnalyzer:
    """mmengine's ``FlopAnalyzer`` of ``model`` on ``inputs``, counting mmconv's operators too."""
    import mmconv.ops  # noqa: F401  (registers every operator's handles)
    from mmconv.ops.flop_handles import FLOP_HANDLES
    return FlopAnalyzer(model, inputs).set_op_handle(**FLOP_HANDLES)


def _size(count: int) -> str:
    """``count`` with a K/M/G/T suffix and three significant digits, as mmengine prints it."""
    for unit, scale in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(count) >= scale:
            return f'{count / scale:.3g}{unit}'
    return str(count)


def get_model_complexity_info(model: nn.Module, inputs: Tuple, show_table: bool = True, show_arch: bool = True) -> dict:
    """mmengine's ``get_model_complexity_info`` (same keys) with :func:`flop_analyzer`'s counts.

    Args:
        model: The model; its ``forward`` is called with ``*inputs``.
        inputs: The forward's positional inputs, e.g. ``(torch.randn(1, 3, 224, 224),)``.
        show_table: Fill ``out_table`` with mmengine's per-module table.
        show_arch: Fill ``out_arch`` with the model annotated by its counts.
    """
    flops = flop_analyzer(model, inputs)
    activations = ActivationAnalyzer(model, inputs)
    info = dict(flops=flops.total(), activations=activations.total(), params=parameter_count(model)[''])
    info.update({f'{key}_str': _size(value) for key, value in list(info.items())})
    info['out_table'] = ('\n' + complexity_stats_table(flops=flops, activations=activations, show_param_shapes=True)
                         if show_table else '')
    info['out_arch'] = '\n' + complexity_stats_str(flops=flops, activations=activations) if show_arch else ''
    return info


def _bind_tensor_mode(detector: nn.Module, height: int, width: int) -> None:
    """Bind ``forward`` to a 'tensor'-mode call with one image's metadata, as mmdet's tool does."""
    from mmdet.structures import DetDataSample
    shape = (height, width)
    sample = DetDataSample(
        metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape, scale_factor=(1.0,
                                                                                                                1.0)))
    detector.forward = partial(detector.forward, data_samples=[sample], mode='tensor')
    if getattr(detector, 'with_rpn', False):
        _fix_proposals(detector.rpn_head, detector.test_cfg.rpn.max_per_img, height, width)


def _fix_proposals(rpn_head: nn.Module, num: int, height: int, width: int) -> None:
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
        return [
            InstanceData(bboxes=boxes, scores=torch.ones(num), labels=torch.zeros(num).long())
            for _ in predict(*args, **kwargs)
        ]

    rpn_head.predict = predict_then_fix


def count_config(cfg: Config, height: int, width: int, show_table: bool = False, show_arch: bool = False) -> dict:
    """:func:`get_model_complexity_info` of the config's whole model on one random 1×3×H×W input.

    Classifiers run their ``forward`` (backbone, neck, head). Detectors run in ``'tensor'`` mode:
    backbone, neck, RPN and RoI heads, the RoI heads on exactly the RPN's ``max_per_img`` proposals.
    The data preprocessor is not run: the input stands for a normalised batch. Weights are random.
    Besides mmengine's keys, ``trainable_params`` leaves out frozen stages, as published detection
    tables do.
    """
    model = build_model(cfg).eval()
    if task_of(cfg) == 'det':
        _bind_tensor_mode(model, height, width)
    with torch.no_grad():
        info = get_model_complexity_info(model, (torch.rand(1, 3, height, width), ), show_table, show_arch)
    info['trainable_params'] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return info
