"""Checks that an operator works with PyTorch's machinery, shared by the per-operator test files.

Each check compares against plain eager execution of the same module, so a wrong fake kernel, a
graph break, a wrong export or a wrong second derivative fails it:

* :func:`assert_compiled_matches_eager`: ``torch.compile(fullgraph=True, dynamic=True)`` on two
  input sizes, outputs and every gradient, and one compiled frame for both sizes;
* :func:`assert_onnx_matches_eager`: the default (dynamo) ONNX exporter with dynamic batch and spatial
  size, onnxruntime against eager on two sizes;
* :func:`assert_empty_batch` and :func:`assert_channels_last`: like ``nn.Conv2d``, in train and eval;
* :func:`assert_second_order_refused`: a fast path without second derivatives raises one sentence.

Compile checks use the ``aot_eager`` backend: it runs Dynamo, the fake kernels and AOTAutograd (where
custom ops fail) in about a second; Inductor adds code generation around ops it cannot see into, and
takes half a minute per graph on 2 cores (the benchmark measures it).
"""
import copy
from typing import Callable, List, Sequence, Tuple

import pytest
import torch
from torch import nn

onnx = pytest.importorskip('onnx', reason='onnx is a test requirement (requirements/tests.txt)')
ort = pytest.importorskip('onnxruntime', reason='onnxruntime is a test requirement (requirements/tests.txt)')

__all__ = [
    'assert_channels_last', 'assert_compiled_matches_eager', 'assert_empty_batch', 'assert_onnx_matches_eager',
    'assert_second_order_refused', 'outputs_and_grads'
]


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item() if want.numel() else 0.0


def outputs_and_grads(module: nn.Module, x: torch.Tensor, seed: int = 0) -> List[torch.Tensor]:
    """The output and the gradients of ``x`` and every parameter for a fixed random output weighting."""
    x = x.detach().requires_grad_(True)
    out = module(x)
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(out.shape, generator=generator, dtype=out.dtype)
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad((out * weight).sum(), [x, *params], allow_unused=True)
    return [out.detach()] + [torch.zeros_like(t) if g is None else g for g, t in zip(grads, [x, *params])]


def assert_compiled_matches_eager(module: nn.Module, inputs: Sequence[torch.Tensor], rtol: float = 1e-4) -> None:
    """``torch.compile(fullgraph=True, dynamic=True)`` gives eager's outputs and gradients on each input.

    ``module`` should be in eval mode or free of randomness and running statistics (a compiled and an
    eager copy are both run), and ``inputs`` of different sizes, none of them 0 or 1 in any dimension
    of any intermediate map and not square (Dynamo specialises on sizes 0 and 1 and on equal sizes):
    the later sizes must reuse what the first compiled.
    """
    from torch._dynamo.testing import CompileCounterWithBackend
    torch._dynamo.reset()
    eager, compiled_module = module, copy.deepcopy(module)
    counter = CompileCounterWithBackend('aot_eager')
    compiled = torch.compile(compiled_module, fullgraph=True, dynamic=True, backend=counter)
    frames_after_first = None
    for x in inputs:
        want = outputs_and_grads(eager, x)
        got = outputs_and_grads(compiled, x)
        for name, g, w in zip(['output', 'grad x', *(n for n, _ in module.named_parameters())], got, want):
            assert g.shape == w.shape, f'{name}: {tuple(g.shape)} != {tuple(w.shape)}'
            assert _relative_error(g, w) <= rtol, f'{name}: relative error {_relative_error(g, w):.2e}'
        frames_after_first = frames_after_first or counter.frame_count
    assert counter.frame_count == frames_after_first, 'another input size compiled again'


def assert_onnx_matches_eager(module: nn.Module, inputs: Sequence[torch.Tensor], path, rtol: float = 1e-4) -> None:
    """The default ONNX exporter (opset 18, dynamic batch and spatial size) agrees with eager in onnxruntime.

    ``module`` is exported once on ``inputs[0]``; every input is then run through onnxruntime.
    """
    module = module.eval()
    dims = {0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    with torch.no_grad():
        torch.onnx.export(module, (inputs[0], ), str(path), opset_version=18, dynamo=True, dynamic_shapes=(dims, ),
                          input_names=['input'])
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    for x in inputs:
        with torch.no_grad():
            want = module(x)
        got = torch.from_numpy(session.run(None, {'input': x.numpy()})[0])
        assert got.shape == want.shape
        assert _relative_error(got, want) <= rtol, f'relative error {_relative_error(got, want):.2e}'


def assert_empty_batch(module: nn.Module, channel_shape: Tuple[int, ...], spatial: Tuple[int, int]) -> None:
    """A batch of 0 gives the output shape of a batch of 1 with batch 0, in train and eval, with
    gradients of the input's and every parameter's shape (zero, as nothing was summed)."""
    probe = torch.randn(1, *channel_shape, *spatial)
    for training in (True, False):
        module.train(training)
        with torch.no_grad():
            want_shape = (0, *module(probe).shape[1:])
        x = torch.randn(0, *channel_shape, *spatial, requires_grad=True)
        out = module(x)
        assert tuple(out.shape) == want_shape, f'{tuple(out.shape)} != {want_shape} (training={training})'
        params = [p for p in module.parameters() if p.requires_grad]
        grads = torch.autograd.grad(out.sum(), [x, *params], allow_unused=True)
        for grad, tensor in zip(grads, [x, *params]):
            assert grad is None or (grad.shape == tensor.shape and not grad.any())
    module.train()


def assert_channels_last(module_factory: Callable[[], nn.Module], x: torch.Tensor, rtol: float = 1e-5) -> None:
    """A channels_last input (and module) gives the contiguous input's output and gradients, in train
    and eval; ``module_factory`` builds identical modules (same seed)."""
    for training in (True, False):
        contiguous = module_factory().train(training)
        channels_last = module_factory().train(training).to(memory_format=torch.channels_last)
        want = outputs_and_grads(contiguous, x)
        got = outputs_and_grads(channels_last, x.contiguous(memory_format=torch.channels_last))
        for g, w in zip(got, want):
            assert g.shape == w.shape
            assert _relative_error(g, w) <= rtol


def assert_second_order_refused(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], operator: str) -> None:
    """Differentiating ``fn``'s gradient raises one sentence naming ``operator`` and ``impl='reference'``."""
    inputs = [t.detach().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    grads = torch.autograd.grad(out.square().sum(), inputs, create_graph=True, allow_unused=True)
    total = sum(g.square().sum() for g in grads if g is not None)
    with pytest.raises(RuntimeError, match=rf"{operator}.*impl='reference'"):
        total.backward()
