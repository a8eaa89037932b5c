"""Whole mmconv backbones under torch.compile and ONNX export, against eager.

One backbone per operator, built from its classification config: RedNet-26 (involution), CedNet-50
(C-volution), SCCNet34 with SCC 3×3 (SCC), SCConv-ResNet-50 (SCConv) and SDNet-18 (CSC). The checks
are those of ``tests/test_ops/op_integration.py`` on the backbone's last stage.
"""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from torch import nn

import mmconv.models  # noqa: F401  (registers the backbones)

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_ops'))
from op_integration import assert_compiled_matches_eager, assert_onnx_matches_eager  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BACKBONE_CONFIGS = {
    'RedNet-26': 'configs/rednet/rednet26_64xb32_in1k.py',
    'CedNet-50': 'configs/cednet/cednet50_64xb32_in1k.py',
    'SCCNet34': 'configs/sccnet/sccnet34-scc3x3_1xb128_in1k.py',
    'SCConv-R50': 'configs/scconv/scconv-resnet50_1xb128_cifar10.py',
    'SDNet-18': 'configs/sdnet/sdnet18_1xb512_in1k.py',
}


class LastStage(nn.Module):
    """A backbone's last output, so that the checks see one tensor."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)[-1]


def build_backbone(name: str) -> nn.Module:
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO_ROOT, BACKBONE_CONFIGS[name])).model.backbone
    cfg.pop('init_cfg', None)
    torch.manual_seed(0)
    backbone = MODELS.build(cfg)
    backbone.init_weights()
    # A trained or converted model carries its state; a fresh SDNet estimates its CSC step sizes
    # on its first forward (a state change that would recompile, and that export refuses).
    with torch.no_grad():
        backbone(torch.randn(1, 3, 64, 72))
    return LastStage(backbone).eval()


def inputs(*shapes):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(*shape, generator=generator) for shape in shapes]


@pytest.mark.parametrize('name', list(BACKBONE_CONFIGS))
def test_backbone_compiles_like_eager(name):
    """fullgraph + dynamic: outputs and every gradient on two sizes, one compiled frame."""
    assert_compiled_matches_eager(build_backbone(name), inputs((2, 3, 64, 72), (3, 3, 80, 68)))


@pytest.mark.parametrize('name', list(BACKBONE_CONFIGS))
def test_backbone_exports_to_onnx(name, tmp_path):
    """The default exporter with dynamic batch and size; onnxruntime equals eager on two sizes."""
    assert_onnx_matches_eager(build_backbone(name), inputs((2, 3, 64, 72), (3, 3, 80, 68)), tmp_path / f'{name}.onnx')
