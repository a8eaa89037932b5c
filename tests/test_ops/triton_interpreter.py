"""Running a test module's Triton kernels without a GPU, shared by the ``test_*_triton.py`` files.

Triton's interpreter must be switched on (``TRITON_INTERPRET=1``) before kernels are defined, so a
module's parent-process test re-runs the module in a child pytest with the variable set, where the
``on_devices`` tests run on CPU tensors; the switch never leaks into other test modules. With CUDA
the compiled kernels run in the parent process too.
"""
import os
import subprocess
import sys

import pytest
import torch

__all__ = ['CUDA_DEVICES', 'DEVICES', 'INTERPRETED', 'on_cuda', 'on_devices', 'run_module_interpreted']

INTERPRETED = os.environ.get('TRITON_INTERPRET') == '1'
DEVICES = ['cpu'] if INTERPRETED else (['cuda'] if torch.cuda.is_available() else [])
CUDA_DEVICES = [] if INTERPRETED or not torch.cuda.is_available() else ['cuda']


def _device_parameters(devices, why):
    return pytest.mark.parametrize('device', devices or [pytest.param('cuda', marks=pytest.mark.skip(reason=why))])


on_devices = _device_parameters(DEVICES, 'needs CUDA; the interpreter runs these in the child process')
on_cuda = _device_parameters(CUDA_DEVICES, 'needs CUDA: on CPU the registered ops run the torch kernels')


def run_module_interpreted(path: str) -> None:
    """Run the test module at ``path`` in a child pytest under ``TRITON_INTERPRET=1``; fail with its
    report unless every test there passed."""
    env = dict(os.environ, TRITON_INTERPRET='1')
    result = subprocess.run([sys.executable, '-m', 'pytest', path, '-q', '-x', '-p', 'no:cacheprovider'],
                            env=env, capture_output=True, text=True, timeout=1200)
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0 and ' passed' in result.stdout, report
