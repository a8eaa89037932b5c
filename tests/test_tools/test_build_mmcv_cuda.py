"""tools/misc/build_mmcv.sh --check-cuda: mmcv's RoIAlign and NMS CUDA sources (what Faster/Mask
R-CNN and RetinaNet need on a GPU) compile for sm_80 and sm_90 on this GPU-less machine, with the
toolchain, patches and flags of the full CUDA build, and cuobjdump finds their kernels per arch."""
import os.path as osp
import re
import subprocess

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.skipif(torch.version.cuda is None, reason='a CPU build of torch cannot build CUDA extensions')
def test_roi_align_and_nms_compile_for_sm80_and_sm90(tmp_path):
    # About 100 s on 2 cores: two .cu files for two archs, two .cpp dispatchers, the sdist download.
    python = osp.join(REPO_ROOT, '.venv', 'bin', 'python')
    env = dict(TORCH_CUDA_ARCH_LIST='8.0;9.0', MMCONV_CACHE_DIR=str(tmp_path), PATH='/usr/local/bin:/usr/bin:/bin',
               HOME=str(tmp_path), MAX_JOBS='2')
    result = subprocess.run(['bash', 'tools/misc/build_mmcv.sh', '--check-cuda', python], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    found = set(re.findall(r'\] +(sm_\d+): (\w+) \((\d+) instantiations\)', output))
    kernels = ('roi_align_forward_cuda_kernel', 'roi_align_backward_cuda_kernel', 'nms_cuda')
    assert {(sm, kernel) for sm, kernel, _ in found} == {(sm, k) for sm in ('sm_80', 'sm_90') for k in kernels}
    assert all(int(count) >= 1 for _, _, count in found)
