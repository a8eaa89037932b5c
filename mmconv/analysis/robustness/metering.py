"""What the CSC layers do under a sweep: their selection by name, and a meter of code sparsity and
reconstruction error read through forward hooks."""
import re
from typing import Dict, Optional

import torch
from torch import nn

from mmconv.ops.csc import SparseCodingLayer

__all__ = ['CodeMeter', 'find_csc_layers']


def find_csc_layers(model: nn.Module, pattern: Optional[str] = None) -> Dict[str, nn.Module]:
    """The CSC layers of ``model`` by qualified name: all, or those whose name matches ``pattern``.
    """
    regex = re.compile(pattern) if pattern is not None else None
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, SparseCodingLayer) and (regex is None or regex.search(name))
    }


class CodeMeter:
    """Sparsity and reconstruction quality of the codes that some CSC layers output.

    Accumulates, over forward passes, the number of non-zero code entries and of all entries, and
    the squared norms of each layer's input x and residual x − A z (A z decoded through the layer's
    dictionary), whose ratio is the statistic SDNet relates the best test-time λ to.
    """

    def __init__(self, layers: Dict[str, nn.Module]):
        self.counts = torch.zeros(4, dtype=torch.float64)  # non-zero, entries, ‖x − Az‖², ‖x‖²
        self._handles = [m.register_forward_hook(self._hook) for m in layers.values()]

    def _hook(self, module, inputs, output):
        x = inputs[0]
        decoded = (module.decode(output, x.shape[2:]) if hasattr(module, 'kernel_size') else module.decode(output))
        self.counts += torch.stack([
            torch.count_nonzero(output).double().cpu(),
            torch.tensor(float(output.numel()), dtype=torch.float64), (x - decoded).double().pow(2).sum().cpu(),
            x.double().pow(2).sum().cpu()
        ])

    def take(self) -> torch.Tensor:
        """The four sums since the last call."""
        counts, self.counts = self.counts, torch.zeros_like(self.counts)
        return counts

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
