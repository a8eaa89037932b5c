"""tools/analysis_tools/get_flops.py: its printout against mmengine's counter and hand counts."""
import os
import os.path as osp
import re
import subprocess
import sys

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmconv.analysis import flop_analyzer, get_model_complexity_info
from mmconv.ops import Involution

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRINTOUT = re.compile(r'Input shape: \(3, (\d+), (\d+)\)\n'
                      r'Flops: [\d.]+ G \((\d+) multiply-accumulates\)\nParams: [\d.]+ M \((\d+)\)')


def get_flops(*args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get('PYTHONPATH', '')]))
    result = subprocess.run([sys.executable, 'tools/analysis_tools/get_flops.py', *args], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    match = PRINTOUT.search(result.stdout)
    assert match, result.stdout[-2000:]
    height, width, flops, params = map(int, match.groups())
    return dict(shape=(height, width), flops=flops, params=params)


def test_classifier_printout_matches_the_counter():
    """RedNet-26 at 64×64: the printed FLOPs and parameters are mmengine's with mmconv's handles,
    and those include the involution aggregations, a registered op the stock counter skips."""
    config = osp.join(REPO_ROOT, 'configs', 'rednet', 'rednet26_64xb32_in1k.py')
    printed = get_flops(config, '--shape', '64')
    assert printed['shape'] == (64, 64)

    cfg = Config.fromfile(config)
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model).eval()
    inputs = (torch.rand(1, 3, 64, 64), )
    with torch.no_grad():
        info = get_model_complexity_info(model, inputs=inputs, show_table=False, show_arch=False)
        by_operator = flop_analyzer(model, inputs).by_operator()
    assert printed['flops'] == info['flops']
    assert printed['params'] == info['params'] == sum(p.numel() for p in model.parameters())

    # Hand count of the aggregations: C·K² multiply-adds per output pixel of every involution.
    sizes = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o: sizes.__setitem__(m, o.shape)) for m in model.modules()
        if isinstance(m, Involution)
    ]
    with torch.no_grad():
        model(*inputs)
    for hook in hooks:
        hook.remove()
    aggregation = sum(m.kernel_size**2 * shape.numel() for m, shape in sizes.items())
    counted = {op: n for op, n in by_operator.items() if op == 'involution_aggregate'}
    assert len(sizes) == 1 + 8 and sum(counted.values()) == aggregation > 0


def test_detector_is_counted_whole():
    """A detector config: the whole model (backbone, FPN, RPN with its proposals, RoI head)."""
    config = 'configs/demo/faster-rcnn_r18_fpn_demo-coco.py'
    printed = get_flops(osp.join(REPO_ROOT, config), '--shape', '128', '160')
    assert printed['shape'] == (128, 160)
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    assert printed['params'] == sum(p.numel() for p in model.parameters())

    class Features(torch.nn.Module):
        """Backbone + FPN only (what mmpretrain's get_flops would count)."""

        def __init__(self, detector):
            super().__init__()
            self.detector = detector

        def forward(self, x):
            return self.detector.extract_feat(x)

    with torch.no_grad():
        analyzer = flop_analyzer(Features(model.eval()), (torch.rand(1, 3, 128, 160), ))
        features = analyzer.unsupported_ops_warnings(False).total()
    # On top come the RPN (its 3×3 conv alone, 64 → 64 channels on the five FPN levels of a
    # 128×160 input) and the RoI head (per proposal: FC 64·7·7 → 256 and 256 → 256).
    rpn_conv = 64 * 64 * 9 * (32 * 40 + 16 * 20 + 8 * 10 + 4 * 5 + 2 * 3)
    per_proposal = 64 * 49 * 256 + 256 * 256
    assert printed['flops'] - features - rpn_conv >= 10 * per_proposal
