"""Measuring what an operator keeps for backward, used by the tests and the op benchmark."""
from typing import Callable

import torch
from torch.autograd.graph import saved_tensors_hooks


def saved_tensor_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn`` runs.

    Views of one storage count once, so this is the memory a backward pass really holds on to.
    """
    storages = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(storages.values())


__all__ = ['saved_tensor_bytes']
