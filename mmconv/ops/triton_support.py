"""What every operator's Triton path shares: whether triton is there, where kernels may run, and
the accumulator type. Importing this module does not import triton."""
import os
from functools import lru_cache
from importlib.util import find_spec
from typing import Optional, Tuple

import torch

__all__ = [
    'TRITON_DTYPES', 'check_triton_device', 'full_register_file', 'same_dense_layout', 'triton_accumulator',
    'triton_available', 'use_triton'
]

# The storage dtypes the Triton kernels take; fp64 keeps the torch-op kernels.
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@lru_cache(maxsize=None)
def triton_available() -> bool:
    """Whether the ``triton`` package can be imported (checked once, without importing it)."""
    return find_spec('triton') is not None


def use_triton(*tensors: torch.Tensor, dtypes: Optional[Tuple[torch.dtype, ...]] = None) -> bool:
    """The Triton path applies: CUDA tensors, triton installed, and floating-point tensors of one of
    ``dtypes`` when given (e.g. :data:`TRITON_DTYPES`)."""
    return (tensors[0].is_cuda and triton_available()
            and (dtypes is None or all(t.dtype in dtypes for t in tensors if t.is_floating_point())))


def check_triton_device(operator: str, *tensors: torch.Tensor) -> None:
    """Kernels run on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1`` (the tests)."""
    if not all(t.is_cuda for t in tensors) and os.environ.get('TRITON_INTERPRET') != '1':
        raise RuntimeError(f'The Triton {operator} path needs CUDA tensors (or TRITON_INTERPRET=1 on CPU).')


def triton_accumulator(dtype: torch.dtype):
    """The ``tl`` accumulator type for data of ``dtype``: fp64 for fp64, fp32 otherwise."""
    import triton.language as tl
    return tl.float64 if dtype == torch.float64 else tl.float32


def same_dense_layout(*tensors: torch.Tensor) -> bool:
    """The tensors share shape and strides and are dense (contiguous, or channels-last for 4-D), so
    one flat index addresses the same element in each (for elementwise kernels)."""
    first = tensors[0]
    dense = first.is_contiguous() or (first.dim() == 4 and first.is_contiguous(memory_format=torch.channels_last))
    return dense and all(t.shape == first.shape and t.stride() == first.stride() for t in tensors)


@lru_cache(maxsize=None)
def full_register_file() -> dict:
    """Launch option ``maxnreg=255`` where this Triton has it (else none).

    Without a bound ptxas may cap a 256-thread kernel at 128 registers and spill (seen for SCC's
    kernel on sm_80); an explicit ``.maxnreg 255`` lets it use what it needs (160, no spill).
    """
    from triton.backends.nvidia.compiler import CUDAOptions
    return {'maxnreg': 255} if 'maxnreg' in CUDAOptions.__dataclass_fields__ else {}
