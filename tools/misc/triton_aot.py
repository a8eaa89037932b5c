"""Compile mmconv's Triton kernels ahead of time for NVIDIA GPUs, without a GPU, and report their
registers and spills.

For every kernel, dtype (fp16, bf16, fp32) and target (sm_80, sm_90 by default), Triton compiles
the kernel at its largest launch tile (the tile every launch configuration stays within) to PTX and
a cubin on this machine's CPU; Triton's bundled ``ptxas -v`` then reports the registers per thread
and the spill stores and loads. The kernels are designed not to spill (the accumulator tile is at
most 2048 elements, 16 registers per thread at 4 warps), so any spill is an error (exit 1).

Usage:
    python tools/misc/triton_aot.py [--archs 80 90]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, NamedTuple

import torch

DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16, 'fp32': torch.float32}
POINTER_TYPES = {torch.float16: '*fp16', torch.bfloat16: '*bf16', torch.float32: '*fp32'}


class Report(NamedTuple):
    kernel: str
    dtype: str
    arch: int
    tile: str
    registers: int
    spill_stores: int
    spill_loads: int
    seconds: float


def involution_cases() -> List[dict]:
    """The three involution kernels at RedNet's geometry (16 channels per group, K = 7): the launch
    tile _launch_config picks for a large map (16 channels × 128 pixels), stride 1 and 2."""
    import triton.language as tl

    from mmconv.ops.involution import triton_kernels as kernels
    block_c, block_p = kernels._launch_config(16, 56 * 56)
    constants = dict(GROUP_CHANNELS=16, KERNEL_SIZE=7, DILATION=1, ACC_DTYPE=tl.float32, BLOCK_C=block_c,
                     BLOCK_P=block_p)
    pointers = {'_involution_fwd_kernel': ('x_ptr', 'kernel_ptr', 'out_ptr'),
                '_involution_grad_x_kernel': ('grad_out_ptr', 'kernel_ptr', 'grad_x_ptr'),
                '_involution_grad_kernel_kernel': ('grad_out_ptr', 'x_ptr', 'grad_kernel_ptr')}
    return [dict(fn=getattr(kernels, name), pointers=names, constants=dict(constants, STRIDE=stride),
                 tile=f'{block_c}x{block_p}, stride {stride}')
            for name, names in pointers.items() for stride in (1, 2)]


def compile_case(case: dict, dtype: torch.dtype, arch: int) -> Dict[str, int]:
    """Compile one kernel for ``sm_<arch>`` and return ptxas's resource usage."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    fn = case['fn']
    signature = {name: ('constexpr' if name in case['constants'] else
                        POINTER_TYPES[dtype] if name in case['pointers'] else 'i32') for name in fn.arg_names}
    constexprs = {(fn.arg_names.index(name),): value for name, value in case['constants'].items()}
    compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                              target=GPUTarget('cuda', arch, 32))
    ptxas = os.path.join(os.path.dirname(triton.__file__), 'backends', 'nvidia', 'bin', 'ptxas')
    with tempfile.TemporaryDirectory() as folder:
        ptx = os.path.join(folder, 'kernel.ptx')
        with open(ptx, 'w') as f:
            f.write(compiled.asm['ptx'])
        gpu_name = f'sm_{arch}a' if arch >= 90 else f'sm_{arch}'
        result = subprocess.run([ptxas, '-v', '--gpu-name', gpu_name, ptx, '-o', ptx + '.cubin'],
                                capture_output=True, text=True, check=True)
    usage = result.stdout + result.stderr
    spills = re.search(r'(\d+) bytes spill stores, (\d+) bytes spill loads', usage)
    registers = re.search(r'Used (\d+) registers', usage)
    return dict(registers=int(registers.group(1)), spill_stores=int(spills.group(1)),
                spill_loads=int(spills.group(2)), cubin_bytes=len(compiled.asm['cubin']))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--archs', type=int, nargs='+', default=[80, 90], help='compute capabilities')
    args = parser.parse_args()
    try:
        import triton  # noqa: F401
    except ImportError:
        print('triton_aot.py: error: the triton package is not installed; pip install triton.', file=sys.stderr)
        return 2
    reports = []
    for case in involution_cases():
        for dtype_name, dtype in DTYPES.items():
            for arch in args.archs:
                start = time.perf_counter()
                usage = compile_case(case, dtype, arch)
                reports.append(Report(case['fn'].__name__, dtype_name, arch, case['tile'], usage['registers'],
                                      usage['spill_stores'], usage['spill_loads'], time.perf_counter() - start))
    print(f'Triton {triton.__version__}, compiled on the CPU for sm_{"/sm_".join(map(str, args.archs))}\n')
    print('| kernel | dtype | sm | tile | registers | spill stores / loads (bytes) |')
    print('|---|---|---|---|---|---|')
    for r in reports:
        print(f'| {r.kernel} | {r.dtype} | {r.arch} | {r.tile} | {r.registers} | {r.spill_stores} / {r.spill_loads} |')
    spilled = [r for r in reports if r.spill_stores or r.spill_loads]
    if spilled:
        print(f'triton_aot.py: error: {len(spilled)} compilations spill registers (first: {spilled[0].kernel} '
              f'{spilled[0].dtype} sm_{spilled[0].arch}); the kernels are designed not to.', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
