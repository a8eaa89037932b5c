"""The precision every operator's kernels accumulate in."""
import torch

__all__ = ['accumulation_dtype']


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for fp16/bf16 (and fp32) data, fp64 for fp64: sums and products of half-precision
    inputs are formed in fp32, and rounded to the storage dtype once."""
    return torch.promote_types(dtype, torch.float32)
