"""Compile mmconv's Triton kernels ahead of time for NVIDIA GPUs, without a GPU, and report their
registers and spills.

For every kernel, dtype (fp16, bf16, fp32) and target (sm_80, sm_90 by default), Triton compiles
the kernel at its largest launch tile (the tile every launch configuration stays within) to PTX and
a cubin on this machine's CPU; Triton's bundled ``ptxas -v`` then reports the registers per thread
and the spill stores and loads. The kernels' tiles are sized to stay in registers (involution: at
most 2048 fp32 accumulators per 4 warps; SCC: three 64×64 fp32 tiles at 8 warps, launched with
``maxnreg=255``), so any spill is an error (exit 1).

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
    pointers = {
        '_involution_fwd_kernel': ('x_ptr', 'kernel_ptr', 'out_ptr'),
        '_involution_grad_x_kernel': ('grad_out_ptr', 'kernel_ptr', 'grad_x_ptr'),
        '_involution_grad_kernel_kernel': ('grad_out_ptr', 'x_ptr', 'grad_kernel_ptr')
    }
    return [
        dict(
            fn=getattr(kernels, name), pointers=dict.fromkeys(names), constants=dict(constants, STRIDE=stride),
            tile=f'{block_c}x{block_p}, stride {stride}') for name, names in pointers.items() for stride in (1, 2)
    ]


def scc_cases() -> List[dict]:
    """SCC's one-pass forward at a 64-channel stage (K = 3 and 7: the fewest and most rings, stride 1 and 2) at
    the largest tile launch_config picks, with forced levels (training) and without; the output is
    fp32 (α and β are fp32 parameters) and the choice int8."""
    from mmconv.ops.scc import triton_kernels as kernels
    from mmconv.ops.triton_support import full_register_file
    block_co, block_ci, block_p = kernels.launch_config(64, 64, 56 * 56)
    pointers = dict(x_ptr=None, weight_ptr=None, bias_ptr=None, gain_ptr='*fp32', offset_ptr='*fp32', forced_ptr='*i8',
                    out_ptr='*fp32', choice_ptr='*i8')
    options = dict(num_warps=kernels.NUM_WARPS, **full_register_file())
    return [
        dict(
            fn=kernels._scc_forward_kernel, pointers=pointers, options=options,
            constants=dict(IN_PER_GROUP=64, OUT_PER_GROUP=64, KERNEL_SIZE=kernel_size, STRIDE=stride, DILATION=1,
                           HAS_FORCED=forced, INPUT_PRECISION='tf32', BLOCK_CO=block_co, BLOCK_CI=block_ci,
                           BLOCK_P=block_p),
            tile=f'{block_co}x{block_ci}x{block_p}, K {kernel_size}, stride {stride}' + (', forced' if forced else ''))
        for kernel_size in (3, 7) for stride in (1, 2) for forced in (False, True)
    ]


def elementwise_cases() -> List[dict]:
    """The fused elementwise kernels at their fixed blocks: SCConv's SRU output (soft and hard gate) and
    CRU fuse (difference and means; the fuse with and without the copy of Y2), and the CSC step's
    sum-and-shrink (non-negative or signed codes, with and without the elastic-net
    scale); statistics, θ and the scale are fp32."""
    from mmconv.ops.csc import triton_kernels as csc
    from mmconv.ops.scconv import triton_kernels as scconv
    sru_pointers = dict(x_ptr=None, mean_ptr='*fp32', rstd_ptr='*fp32', scale_ptr='*fp32', shift_ptr='*fp32',
                        out_ptr=None)
    shrink_pointers = dict(pre_ptr=None, c_ptr=None, y_ptr=None, theta_ptr='*fp32', scale_ptr='*fp32')
    return ([
        dict(fn=scconv._sru_output_kernel, pointers=sru_pointers, scalars=dict(threshold='fp32'), constants=dict(
            SOFT=soft, BLOCK_P=scconv.BLOCK_P), tile=f'{scconv.BLOCK_P}, {"soft" if soft else "hard"} gate')
        for soft in (True, False)
    ] + [
        dict(fn=scconv._difference_and_means_kernel, pointers=dict(diff_ptr=None, lower_ptr=None, mean_diff_ptr='*fp32',
                                                                   mean_lower_ptr='*fp32'),
             constants=dict(BLOCK_P=scconv.BLOCK_P), tile=f'{scconv.BLOCK_P}')
    ] + [
        dict(
            fn=scconv._fuse_kernel, pointers=dict(out_ptr=None, diff_ptr=None, first_ptr='*fp32',
                                                  lower_scale_ptr='*fp32', lower_copy_ptr=None),
            constants=dict(COPY_LOWER=copy, BLOCK_P=scconv.BLOCK_P), tile=f'{scconv.BLOCK_P}' +
            (', copy of Y2' if copy else '')) for copy in (False, True)
    ] + [
        dict(fn=csc._shrink_sum_kernel, pointers=shrink_pointers, constants=dict(NON_NEGATIVE=non_negative,
                                                                                 HAS_SCALE=has_scale, BLOCK=csc.BLOCK),
             tile=f'{csc.BLOCK}, {"z ≥ 0" if non_negative else "signed"}' + (', scaled' if has_scale else ''))
        for non_negative in (True, False) for has_scale in (False, True)
    ])


def compile_case(case: dict, dtype: torch.dtype, arch: int) -> Dict[str, int]:
    """Compile one kernel for ``sm_<arch>`` and return ptxas's resource usage."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    fn = case['fn']
    # Pointers typed None hold data of the compiled dtype; fp32 data compile with ieee products.
    # Other arguments are i32 unless the case's scalars type them.
    signature = {
        name: ('constexpr' if name in case['constants'] else (case['pointers'][name] or POINTER_TYPES[dtype])
               if name in case['pointers'] else case.get('scalars', {}).get(name, 'i32'))
        for name in fn.arg_names
    }
    constants = dict(case['constants'])
    if constants.get('INPUT_PRECISION') == 'tf32' and dtype != torch.float32:
        constants['INPUT_PRECISION'] = 'ieee'
    constexprs = {(fn.arg_names.index(name), ): value for name, value in constants.items()}
    compiled = triton.compile(
        ASTSource(fn=fn, signature=signature, constexprs=constexprs), target=GPUTarget('cuda', arch, 32),
        options=case.get('options', {}))
    ptxas = os.path.join(os.path.dirname(triton.__file__), 'backends', 'nvidia', 'bin', 'ptxas')
    with tempfile.TemporaryDirectory() as folder:
        ptx = os.path.join(folder, 'kernel.ptx')
        with open(ptx, 'w') as f:
            f.write(compiled.asm['ptx'])
        gpu_name = f'sm_{arch}a' if arch >= 90 else f'sm_{arch}'
        result = subprocess.run([ptxas, '-v', '--gpu-name', gpu_name, ptx, '-o', ptx + '.cubin'], capture_output=True,
                                text=True, check=True)
    usage = result.stdout + result.stderr
    spills = re.search(r'(\d+) bytes spill stores, (\d+) bytes spill loads', usage)
    registers = re.search(r'Used (\d+) registers', usage)
    return dict(
        registers=int(registers.group(1)), spill_stores=int(spills.group(1)), spill_loads=int(spills.group(2)),
        cubin_bytes=len(compiled.asm['cubin']))


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
    for case in involution_cases() + scc_cases() + elementwise_cases():
        for dtype_name, dtype in DTYPES.items():
            for arch in args.archs:
                start = time.perf_counter()
                usage = compile_case(case, dtype, arch)
                reports.append(
                    Report(case['fn'].__name__, dtype_name, arch, case['tile'], usage['registers'],
                           usage['spill_stores'], usage['spill_loads'],
                           time.perf_counter() - start))
    print(f'Triton {triton.__version__}, compiled on the CPU for sm_{"/sm_".join(map(str, args.archs))}\n')
    print('| kernel | dtype | sm | tile | registers | spill stores / loads (bytes) |')
    print('|---|---|---|---|---|---|')
    for r in reports:
        print(f'| {r.kernel} | {r.dtype} | {r.arch} | {r.tile} | {r.registers} | {r.spill_stores} / {r.spill_loads} |')
    spilled = [r for r in reports if r.spill_stores or r.spill_loads]
    if spilled:
        print(
            f'triton_aot.py: error: {len(spilled)} compilations spill registers (first: {spilled[0].kernel} '
            f'{spilled[0].dtype} sm_{spilled[0].arch}); the kernels are designed not to.', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
