"""Mixed precision on a machine without CUDA, where mmengine's ``AmpOptimWrapper`` refuses to run.

Forward passes run under ``torch.autocast('cpu', dtype=torch.bfloat16)``; the weights, the
gradients and the optimizer state stay in fp32. bf16 has fp32's exponent range, so gradients do
not underflow and no loss scaling is needed. ``tools/train.py --amp`` selects it without CUDA.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUBF16AutocastOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose training forward passes run in bf16 autocast on the CPU."""

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield
