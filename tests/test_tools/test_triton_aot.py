"""tools/misc/triton_aot.py: every Triton kernel × fp16/bf16/fp32 × sm_80/sm_90 compiles to a cubin
on this CPU-only machine (Triton's bundled ptxas), and none spills registers."""
import os.path as osp
import re
import subprocess
import sys

import pytest

pytest.importorskip('triton', reason='the Triton kernels need the triton package')

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_every_kernel_compiles_for_sm80_and_sm90_without_spills():
    result = subprocess.run([sys.executable, 'tools/misc/triton_aot.py', '--archs', '80', '90'], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = re.findall(r'^\| (_\w+) \| (fp16|bf16|fp32) \| (\d+) \| [^|]+ \| (\d+) \| (\d+) / (\d+) \|$', result.stdout,
                      re.M)
    kernels = {row[0] for row in rows}
    assert kernels == {
        '_involution_fwd_kernel', '_involution_grad_x_kernel', '_involution_grad_kernel_kernel', '_scc_forward_kernel',
        '_sru_output_kernel', '_difference_and_means_kernel', '_fuse_kernel', '_shrink_sum_kernel'
    }
    assert {(row[1], row[2]) for row in rows} == {(d, a) for d in ('fp16', 'bf16', 'fp32') for a in ('80', '90')}
    # (involution kernels × strides + SCC kernel sizes × strides × forced + SRU gates + CRU difference
    # + CRU fuse with and without the copy + CSC shrink variants) × dtypes × archs
    assert len(rows) == (3 * 2 + 2 * 2 * 2 + 2 + 1 + 2 + 4) * 3 * 2
    assert all(0 < int(row[3]) <= 255 and row[4] == row[5] == '0' for row in rows)
