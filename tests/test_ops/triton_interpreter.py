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

__all__ = [
    'CUDA_DEVICES', 'DEVICES', 'INTERPRETED', 'assert_fast_matches_reference', 'interpreter_suite', 'on_cuda',
    'on_devices'
]

INTERPRETED = os.environ.get('TRITON_INTERPRET') == '1'
DEVICES = ['cpu'] if INTERPRETED else (['cuda'] if torch.cuda.is_available() else [])
CUDA_DEVICES = [] if INTERPRETED or not torch.cuda.is_available() else ['cuda']


def _device_parameters(devices, why):
    return pytest.mark.parametrize('device', devices or [pytest.param('cuda', marks=pytest.mark.skip(reason=why))])


on_devices = _device_parameters(DEVICES, 'needs CUDA; the interpreter runs these in the child process')
on_cuda = _device_parameters(CUDA_DEVICES, 'needs CUDA: on CPU the registered ops run the torch kernels')


def interpreter_suite(path: str):
    """The parent-process test of the module at ``path``: re-run it in a child pytest under
    ``TRITON_INTERPRET=1`` and fail with its report unless every test there passed. Assign it to a
    ``test_*`` name in that module."""

    @pytest.mark.skipif(INTERPRETED, reason='runs in the parent process only')
    def test_interpreter_suite_in_subprocess():
        env = dict(os.environ, TRITON_INTERPRET='1')
        result = subprocess.run([sys.executable, '-m', 'pytest', path, '-q', '-x', '-p', 'no:cacheprovider'], env=env,
                                capture_output=True, text=True, timeout=1200)
        report = result.stdout[-6000:] + result.stderr[-3000:]
        assert result.returncode == 0 and ' passed' in result.stdout, report

    return test_interpreter_suite_in_subprocess


def assert_fast_matches_reference(module, x, params, out_tol, grad_tol) -> None:
    """``module`` with ``impl='fast'`` (the Triton kernels on CUDA) against ``impl='reference'``, in full
    fp32 (no TF32): the output within ``out_tol`` and the gradients of x and ``params`` within
    ``grad_tol`` (each an (rtol, atol) pair), for the loss Σ out²."""
    results = []
    with torch.backends.cudnn.flags(allow_tf32=False):
        for impl in ('reference', 'fast'):
            module.impl = impl
            out = module(x)
            results.append((out, torch.autograd.grad(out.square().sum(), [x, *params])))
    (ref, ref_grads), (out, grads) = results
    torch.testing.assert_close(out, ref, rtol=out_tol[0], atol=out_tol[1])
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=grad_tol[0], atol=grad_tol[1])
