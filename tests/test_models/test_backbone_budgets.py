"""Parameter and FLOP budgets of the classification backbones against the published tables.

Counted like the tables: a linear head (1000 classes unless stated) on globally pooled features,
one 224×224 image, 1 MAC = 1 FLOP, in eval mode, with the counter of
:func:`mmconv.analysis.get_model_complexity_info` (mmengine's ``FlopAnalyzer`` plus the operators'
FLOP handles). That function also traces the model a second time for activations; the budgets call
its FLOP and parameter counters directly to trace each model once, and a last test checks that the
two agree. Parameters must be within 0.5 % and FLOPs within 3 % of the published figures.

What this design gives (M params / GFLOPs, measured) against the tables:

====================  ==================  ==================  ==========================================
model                 published           measured            note
====================  ==================  ==================  ==========================================
RedNet-26/38/50       9.23/12.39/15.54    9.233/12.39/15.54   FLOPs 1.70/2.19/2.67 vs 1.73/2.22/2.71
RedNet-101/152        25.65/33.99         25.65/33.98         FLOPs 4.69/6.73 vs 4.74/6.79 (BN not counted)
CedNet-50             16.3 / 2.9          16.25 / 2.89
CedNet-38             12.40 / 2.2         12.90 / 2.37        README repeats RedNet-38; asserted as built
SCCNet34 Conv1x1      21.84 / 4.07        21.84 / 4.06        every nested SCC conv counted, as upstream
SCCNet34 Conv5x5      25.98 / 4.07 (sic)  25.97 / 4.53        the table's 4.07 is a misprint (≈4.5)
SCCNet34 SCC 3×3      23.22 / 4.25        23.22 / 4.24
SCCNet34 SCC 5×5      25.98 / 4.73        25.98 / 4.72
ResNet34 1×1/3×3/5×5  21.79/23.17/25.93   21.80/23.17/25.93   FLOPs 3.67/3.83/4.13 vs 3.68/3.84/4.15
ResNet-50 (100 cls)   23.71 / 4.132       23.71 / 4.11
SCConv-R50 (100 cls)  14.7 / 2.658        14.68 / 2.67        every bottleneck 3×3, stride-2 ones too
====================  ==================  ==================  ==========================================
"""
import pytest
import torch
from mmengine.analysis import parameter_count
from torch import nn

import mmconv.models  # noqa: F401  (registers the conv-layer adapters)
from mmconv.analysis import flop_analyzer, get_model_complexity_info
from mmconv.models.backbones import CedNet, OperatorResNet, RedNet, SCCNet, SCConvResNet

PARAMS_RTOL = 0.005
FLOPS_RTOL = 0.03


class LinearClassifier(nn.Module):
    """Backbone → global average pooling → linear head, as the published counts assume."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feat_dim, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x)[-1].mean(dim=(2, 3)))


# id: (backbone factory, classes, published M params, published GFLOPs)
BUDGETS = {
    'rednet26': (lambda: RedNet(26), 1000, 9.23, 1.73),
    'rednet38': (lambda: RedNet(38), 1000, 12.39, 2.22),
    'rednet50': (lambda: RedNet(50), 1000, 15.54, 2.71),
    'rednet101': (lambda: RedNet(101), 1000, 25.65, 4.74),
    'rednet152': (lambda: RedNet(152), 1000, 33.99, 6.79),
    'cednet50': (lambda: CedNet(50), 1000, 16.3, 2.9),
    # The README's CedNet-38 (12.40 M, 2.2 G) repeats RedNet-38's figures; these are the model's.
    'cednet38': (lambda: CedNet(38), 1000, 12.90, 2.37),
    'sccnet34-conv1x1': (lambda: SCCNet(34, downsample='conv1x1'), 1000, 21.84, 4.07),
    # Table: 4.07 G, a misprint (the shortcut convs alone add 0.46 G to the Conv1x1 row).
    'sccnet34-conv5x5': (lambda: SCCNet(34, downsample='conv5x5'), 1000, 25.98, 4.5),
    'sccnet34-scc3x3': (lambda: SCCNet(34, downsample='scc3x3'), 1000, 23.22, 4.25),
    'sccnet34-scc5x5': (lambda: SCCNet(34, downsample='scc5x5'), 1000, 25.98, 4.73),
    'resnet34-conv1x1': (lambda: OperatorResNet(34), 1000, 21.79, 3.68),
    'resnet34-conv3x3': (lambda: OperatorResNet(34, downsample_kernel_size=3), 1000, 23.17, 3.84),
    'resnet34-conv5x5': (lambda: OperatorResNet(34, downsample_kernel_size=5), 1000, 25.93, 4.15),
    'resnet34-mish': (lambda: OperatorResNet(34, act_cfg=dict(type='Mish')), 1000, 21.79, 3.68),
    'resnet50-100cls': (lambda: OperatorResNet(50), 100, 23.71, 4.132),
    'scconv-r50-100cls': (lambda: SCConvResNet(50), 100, 14.7, 2.658),
}


def count(model, size):
    """(params, FLOPs) as ``get_model_complexity_info`` counts them, with a single trace."""
    inputs = (torch.randn(1, 3, size, size), )
    return parameter_count(model)[''], flop_analyzer(model, inputs).total()


@pytest.mark.parametrize('name', list(BUDGETS))
def test_budget(name):
    factory, num_classes, params, flops = BUDGETS[name]
    model = LinearClassifier(factory(), num_classes).eval()
    counted_params, counted_flops = count(model, 224)
    assert counted_params / 1e6 == pytest.approx(params, rel=PARAMS_RTOL)
    assert counted_flops / 1e9 == pytest.approx(flops, rel=FLOPS_RTOL)
    if name == 'cednet38':
        assert counted_params / 1e6 != pytest.approx(12.40, rel=0.03)


def test_counter_is_get_model_complexity_info():
    """The single-trace count equals mmconv's get_model_complexity_info, operators included."""
    model = LinearClassifier(CedNet(26), 10).eval()
    params, flops = count(model, 64)
    info = get_model_complexity_info(model, inputs=(torch.randn(1, 3, 64, 64), ), show_table=False, show_arch=False)
    assert (info['params'], info['flops']) == (params, flops)
