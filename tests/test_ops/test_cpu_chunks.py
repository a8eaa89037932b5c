"""Image chunking of the CPU paths: chunk bounds, and SCConv results that do not depend on it."""
import pytest
import torch

from mmconv.ops import SCConv, cpu_chunks
from mmconv.ops.cpu_chunks import chunks_of


@pytest.mark.parametrize('units', [0, 1, 5, 8])
@pytest.mark.parametrize('per_chunk', [1, 2, 3, 100])
def test_chunks_cover_every_unit_once(monkeypatch, units, per_chunk):
    monkeypatch.setattr(cpu_chunks, 'CPU_CHUNK_BYTES', per_chunk * 10)
    parts = chunks_of(units, 10, torch.device('cpu'))
    sizes = [part.stop - part.start for part in parts]
    assert all(size >= 1 for size in sizes) and sum(sizes) == units
    assert [part.start for part in parts] == [sum(sizes[:i]) for i in range(len(sizes))]
    if sizes:
        assert max(sizes) <= per_chunk and max(sizes) - min(sizes) <= 1


def run(module, x, impl, seed):
    module.impl = impl
    torch.manual_seed(seed)
    out = module(x)
    grad = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(seed))
    return (out, *torch.autograd.grad(out, [x, *module.parameters()], grad, allow_unused=True))


@pytest.mark.parametrize(
    'make',
    [
        lambda: SCConv(8, 8),
        lambda: SCConv(8, 6, stride=2, gate='hard', fuse='joint', gwc_bias=True),
        lambda: SCConv(32, 8),  # DenseNet-like: no PWC2, the lower branch is pure reuse
    ])
def test_one_image_chunks_match_reference(monkeypatch, make):
    """One image per chunk (5 chunks on any thread count): fast path = reference, fp64."""
    torch.manual_seed(0)
    module = make().double()
    x = torch.randn(5, module.in_channels, 9, 7, dtype=torch.float64, requires_grad=True)
    monkeypatch.setattr(cpu_chunks, 'CPU_CHUNK_BYTES', 1)
    assert len(chunks_of(5, 8, x.device)) == 5
    fast = run(module, x, 'fast', seed=3)
    reference = run(module, x, 'reference', seed=3)
    for got, want in zip(fast, reference):
        if want is None:  # the hard SCConv gate passes no gradient to GroupNorm
            assert got is None
            continue
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize('gate', ['soft', 'hard'])
def test_bf16_chunks_match_one_chunk(monkeypatch, gate):
    """bf16 inputs (∂X formed in fp32, then copied into each chunk): one image per chunk gives what
    one chunk for the whole batch gives."""
    torch.manual_seed(0)
    module = SCConv(8, 8, gate=gate).to(torch.bfloat16)
    x = torch.randn(5, 8, 9, 7, dtype=torch.bfloat16, requires_grad=True)
    results = []
    for chunk_bytes in (1, 2**40):
        monkeypatch.setattr(cpu_chunks, 'CPU_CHUNK_BYTES', chunk_bytes)
        results.append(run(module, x, 'fast', seed=4))
    for chunked, whole in zip(*results):
        if whole is None:
            assert chunked is None
            continue
        torch.testing.assert_close(chunked.float(), whole.float(), rtol=2e-2, atol=2e-2)
