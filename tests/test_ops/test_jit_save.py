"""``torch.jit.trace`` + ``torch.jit.save`` / ``load`` of every operator in eval mode: the saved
module runs the registered ops and equals eager on another input size (it failed on the Python
autograd Functions the fast paths used to be)."""
import io

import pytest
import torch

from mmconv.ops import SCC, CSCConv2d, CVolution, Involution, SCConv

FACTORIES = {
    'involution': lambda: Involution(16, 3),
    'cvolution': lambda: CVolution(16, 3),
    'scc': lambda: SCC(16, 16, 3),
    'scconv': lambda: SCConv(16, 16),
    'csc': lambda: CSCConv2d(16, 16, 3),
}


@pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning')
@pytest.mark.parametrize('name', sorted(FACTORIES))
def test_traced_module_saves_loads_and_runs_at_another_size(name):
    torch.manual_seed(0)
    module = FACTORIES[name]()
    x = torch.randn(2, 16, 9, 10)
    with torch.no_grad():
        module(x)  # CSC estimates its step size on its first (training) forward
    module.eval()
    traced = torch.jit.trace(module, x, check_trace=False)
    assert any(node.kind().startswith('mmconv::') for node in traced.inlined_graph.nodes())
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    y = torch.randn(3, 16, 11, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(y), module(y))
