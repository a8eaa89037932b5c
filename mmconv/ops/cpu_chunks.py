"""CPU work in cache-sized chunks, run on single-threaded workers.

A chain of elementwise ops over a tensor larger than the caches streams it from memory once per op;
over a slice that stays in the caches close to a core, the chain runs several times faster (a
multiply of two B×64×56² fp32 maps on a 2-core EPYC: 0.13 ms per image at B=8, 0.03 ms at B≤4).
The operators' CPU kernels split the batch with :func:`chunks_of` and run the chunks with
:func:`for_each_chunk`.
"""
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Tuple

import torch

__all__ = ['CPU_CHUNK_BYTES', 'chunks_of', 'for_each_chunk']

# Measured on a 2-core EPYC (1 MiB L2 per core, 8 MiB shared L3): for involution's tap loop (B=8,
# C=64, 56², K=7) 2-3 MiB per chunk did best, 4 MiB was up to 1.15× slower and 1 MiB 1.4× (smaller
# chunks pay more per-op Python overhead); SCConv's SRU, one or two 56² images of 64 channels.
CPU_CHUNK_BYTES = 2 * 2**20


def chunks_of(units: int, bytes_per_unit: int, device: torch.device) -> List[slice]:
    """Slices of ``units`` (images, or (image, group) pairs) to process a chunk at a time.

    On CPU a chunk holds at most ``CPU_CHUNK_BYTES`` (at least one unit), and the chunk count is a
    multiple of the intra-op threads where the units allow, with sizes differing by at most one, so
    every worker that takes a chunk gets the same share; no chunk is empty. Other devices get one
    chunk.
    """
    if units == 0:
        return []
    if device.type != 'cpu':
        return [slice(0, units)]
    threads = max(1, min(torch.get_num_threads(), units))
    largest = max(1, CPU_CHUNK_BYTES // max(1, bytes_per_unit))
    count = min(units, threads * -(-units // (threads * largest)))
    bounds = [units * i // count for i in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


@lru_cache(maxsize=None)
def _omp_set_num_threads() -> Optional[Callable[[int], None]]:
    """OpenMP's ``omp_set_num_threads`` as loaded by torch, or None where torch uses no OpenMP.

    Called from a thread, it sets that thread's OpenMP team size only (a per-thread ICV), unlike
    ``torch.set_num_threads``, which also resizes torch's process-wide pools and caches.
    """
    if 'OpenMP' not in torch.__config__.parallel_info().split('ATen parallel backend:')[-1]:
        return None
    try:
        return ctypes.CDLL(None).omp_set_num_threads
    except AttributeError:
        return None


_WORKERS: Dict[Tuple[int, int], ThreadPoolExecutor] = {}
_WORKERS_LOCK = threading.Lock()


def _pin_to_one_intra_op_thread() -> None:
    torch.get_num_threads()  # torch's lazy per-thread initialisation first, or it would undo the pin
    _omp_set_num_threads()(1)


def _cpu_workers(threads: int) -> ThreadPoolExecutor:
    """A pool of ``threads`` threads whose torch ops each run on one intra-op thread."""
    key = (os.getpid(), threads)  # a forked child cannot use its parent's threads
    with _WORKERS_LOCK:
        if key not in _WORKERS:
            _WORKERS[key] = ThreadPoolExecutor(threads, thread_name_prefix='mmconv-cpu',
                                               initializer=_pin_to_one_intra_op_thread)
        return _WORKERS[key]


def for_each_chunk(work: Callable[[slice], None], chunks: List[slice], device: torch.device) -> None:
    """Run ``work`` on every chunk; on CPU, chunks run in parallel on single-threaded workers.

    A chain of short elementwise ops split across OpenMP threads puts a barrier after every op, and on
    a busy machine a barrier waits for the preempted thread; whole chunks per thread have no barriers
    and keep each chunk in one core's cache. The chunks are disjoint, so the result does not depend on
    the schedule. Where torch's threads are not OpenMP's (no per-thread setting), chunks run in turn.
    """
    threads = torch.get_num_threads()
    if device.type != 'cpu' or threads == 1 or len(chunks) == 1 or _omp_set_num_threads() is None:
        for chunk in chunks:
            work(chunk)
        return

    def run(chunk: slice) -> None:
        with torch.no_grad():
            work(chunk)

    list(_cpu_workers(threads).map(run, chunks))
