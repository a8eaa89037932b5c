import math

import pytest
import torch
import torch.nn.functional as F

from mmconv.analysis.memory import saved_tensor_bytes as saved_bytes
from mmconv.ops.scc import SCC, draw_forced_levels
from mmconv.ops.scc.ops import scc_forward
from op_integration import (assert_channels_last, assert_compiled_matches_eager, assert_empty_batch,
                            assert_onnx_matches_eager, assert_second_order_refused, outputs_and_grads)


def level_responses(module, x):
    """Every level's raw response, from one conv whose output stacks the zero-padded sub-kernels.

    Independent of the per-level slicing and padding: each sub-kernel is embedded in a K×K kernel
    and all levels run with the K×K geometry.
    """
    k, levels = module.kernel_size, module.levels
    centre = k // 2
    stacked = torch.zeros((levels, ) + module.weight.shape, dtype=x.dtype)
    for level in range(levels):
        window = slice(centre - level, centre + level + 1)
        stacked[level, :, :, window, window] = module.weight.detach()[:, :, window, window]
    out = F.conv2d(x, stacked.flatten(0, 1), None, module.stride, centre * module.dilation, module.dilation,
                   module.groups)
    out = out.view(out.shape[0], levels, module.out_channels, *out.shape[2:]).transpose(0, 1)
    return out + module.bias.detach().to(x.dtype).view(levels, 1, -1, 1, 1)


def selection_margin(module, x):
    """Smallest gap between the best level response and any other one (ties flip the selection)."""
    responses = level_responses(module, x.double())
    if responses.shape[0] == 1:
        return math.inf
    top2 = responses.topk(2, dim=0).values
    return float((top2[0] - top2[1]).min())


def affine_responses(module, responses):
    """T_i(r_i) for every level (leading dimension of ``responses``)."""
    gain = (1 + torch.tanh(module.alpha.detach())).unsqueeze(1)
    return responses * gain + module.beta.detach().unsqueeze(1)


def make_scc(*args, seed=0, dtype=torch.float64, **kwargs):
    torch.manual_seed(seed)
    return SCC(*args, **kwargs).to(dtype)


CONFIGS = [
    # (in, out, kernel, stride, dilation, groups, height, width)
    (4, 6, 3, 1, 1, 1, 9, 7),
    (4, 6, 5, 2, 1, 1, 9, 7),
    (4, 6, 3, 2, 2, 2, 7, 8),
    (4, 4, 1, 1, 1, 1, 5, 5),
    (3, 5, 7, 1, 1, 1, 9, 9),
    (6, 4, 5, 2, 2, 2, 11, 9),
]


@pytest.mark.parametrize('config', CONFIGS)
@pytest.mark.parametrize('training', [False, True])
def test_fast_matches_reference_fp64(config, training):
    cin, cout, k, s, d, g, h, w = config
    module = make_scc(cin, cout, k, s, d, g, mask_prob=0.05 if k > 1 else 0.5).train(training)
    x = torch.randn(2, cin, h, w, dtype=torch.float64, requires_grad=True)
    results = []
    for impl in ('reference', 'fast'):
        module.impl = impl
        torch.manual_seed(123)
        out = module(x)
        grad_out = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(7))
        grads = torch.autograd.grad(out, [x, *module.parameters()], grad_out)
        results.append((out, grads))
    (ref_out, ref_grads), (fast_out, fast_grads) = results
    assert fast_out.shape == (2, cout, (h - 1) // s + 1, (w - 1) // s + 1)
    assert torch.allclose(fast_out, ref_out, rtol=0, atol=1e-12)
    for name, ref, fast in zip(['x', 'weight', 'bias', 'alpha', 'beta'], ref_grads, fast_grads):
        assert torch.allclose(fast, ref, rtol=0, atol=1e-10), name


@pytest.mark.parametrize('kernel_size,stride', [(3, 1), (5, 2)])
def test_fast_matches_reference_fp32(kernel_size, stride):
    module = make_scc(8, 8, kernel_size, stride, dtype=torch.float32)
    module.train()
    x = torch.randn(2, 8, 9, 9)
    assert selection_margin(module, x) > 1e-4  # no near-tie that fp32 rounding could flip
    x.requires_grad_(True)
    results = []
    for impl in ('reference', 'fast'):
        module.impl = impl
        torch.manual_seed(5)
        out = module(x)
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)) / out.numel()**0.5
        results.append((out, torch.autograd.grad(out, [x, *module.parameters()], grad_out)))
    (ref_out, ref_grads), (fast_out, fast_grads) = results
    assert (fast_out - ref_out).abs().max() <= 1e-5
    for ref, fast in zip(ref_grads, fast_grads):
        assert (fast - ref).abs().max() <= 1e-5


def test_reference_is_first_argmax_of_levels():
    """Eval mode: out = T_idx(r_idx) with idx the first argmax of the raw responses."""
    module = make_scc(4, 6, 5, 2, 2).eval()
    x = torch.randn(2, 4, 11, 9, dtype=torch.float64)
    responses = level_responses(module, x)
    idx = responses.argmax(dim=0, keepdim=True)  # first maximum on ties
    affine = affine_responses(module, responses)
    expected = affine.gather(0, idx).squeeze(0)
    for impl in ('reference', 'fast'):
        module.impl = impl
        assert torch.allclose(module(x), expected, rtol=0, atol=1e-12)


def test_ties_go_to_the_smaller_kernel():
    module = make_scc(1, 1, 3).eval()
    with torch.no_grad():
        module.weight.zero_()
        module.bias.copy_(torch.tensor([[0.5], [0.5]]))  # equal raw responses everywhere
        module.alpha.zero_()
        module.beta.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    for impl in ('reference', 'fast'):
        module.impl = impl
        assert torch.all(module(x) == 0.5 + 1.0)


@pytest.mark.parametrize('training', [False, True])
def test_gradcheck_fast_path(training):
    module = make_scc(2, 3, 3, 2, seed=1)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    assert selection_margin(module, x) > 1e-3
    forced = None
    if training:
        forced = torch.full((1, 3, 3, 3), -1, dtype=torch.int8)
        forced.view(-1)[torch.tensor([0, 5, 7, 20])] = torch.tensor([1, 0, 1, 0], dtype=torch.int8)

    def run(x, weight, bias, alpha, beta):
        return scc_forward(x, weight, bias, alpha, beta, 2, 1, 1, forced)[0]

    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    inputs = [x.requires_grad_(True)] + params
    assert torch.autograd.gradcheck(run, inputs)


def test_forced_level_overrides_larger_levels():
    """A forced (locked) level stays selected even where a later level responds more."""
    module = make_scc(2, 2, 5, mask_prob=1 / 3).train()
    with torch.no_grad():
        module.weight.uniform_(0.1, 0.2)
        module.bias.copy_(torch.tensor([0.0, 1.0, 2.0]).view(3, 1))  # r_0 < r_1 < r_2 for x > 0
    x = torch.rand(2, 2, 6, 6, dtype=torch.float64) + 0.1
    responses = level_responses(module, x)
    affine = affine_responses(module, responses)
    torch.manual_seed(3)
    levels = draw_forced_levels(affine[0].shape, 3, 1 / 3, x.device)
    assert (levels >= 0).all()  # p = 1/L forces every element
    expected = affine.flatten(1).gather(0, levels.long().view(1, -1)).view_as(affine[0])
    for impl in ('reference', 'fast'):
        module.impl = impl
        torch.manual_seed(3)
        assert torch.allclose(module(x), expected, rtol=0, atol=1e-12)
    module.eval()
    assert torch.allclose(module(x), affine[2], rtol=0, atol=1e-12)  # natural choice: the largest


def test_draw_forced_levels_statistics():
    """Each level forced with probability p, the natural choice kept with 1 − L·p, independently."""
    torch.manual_seed(0)
    shape, levels, prob = (10, 100, 1000), 3, 0.05
    drawn = draw_forced_levels(shape, levels, prob, torch.device('cpu'))
    assert drawn.dtype == torch.int8 and drawn.shape == shape
    frequencies = torch.bincount(drawn.flatten().long() + 1, minlength=levels + 1).double() / drawn.numel()
    want = torch.tensor([1 - levels * prob] + [prob] * levels, dtype=torch.float64)
    assert torch.allclose(frequencies, want, atol=2e-3)
    assert ((drawn[:, :, 1:] >= 0) & (drawn[:, :, :-1] >= 0)).double().mean() == pytest.approx(
        (levels * prob)**2, abs=2e-3)  # neighbours independent
    assert (draw_forced_levels(shape, levels, 1 / levels, torch.device('cpu')) >= 0).all()


def test_draw_ignores_autocast_dtype():
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        drawn = draw_forced_levels((400_000, ), 2, 0.005, torch.device('cpu'))
    # bf16 rand + floor would force 0.0039 per level; the fp32 draw keeps 0.005.
    assert abs((drawn >= 0).double().mean().item() - 0.01) < 1e-3


def test_train_mode_reproducible_eval_deterministic():
    module = make_scc(3, 4, 3, mask_prob=0.5, dtype=torch.float32)
    x = torch.randn(2, 3, 8, 8)
    module.train()
    torch.manual_seed(11)
    first = module(x)
    torch.manual_seed(11)
    assert torch.equal(module(x), first)
    torch.manual_seed(12)
    assert not torch.equal(module(x), first)
    module.eval()
    state = torch.get_rng_state()
    out = module(x)
    assert torch.equal(torch.get_rng_state(), state)  # eval draws nothing
    assert torch.equal(module(x), out)
    assert not torch.equal(out, first)


@pytest.mark.parametrize('size', [(7, 7), (8, 5), (1, 3)])
def test_odd_sizes_with_stride_two(size):
    module = make_scc(2, 3, 5, stride=2, dtype=torch.float32)
    x = torch.randn(1, 2, *size)
    expected = tuple(math.ceil(s / 2) for s in size)
    for impl in ('reference', 'fast'):
        module.impl = impl
        assert module(x).shape[2:] == expected


@pytest.mark.parametrize('kwargs', [
    dict(kernel_size=4),
    dict(kernel_size=0),
    dict(stride=0),
    dict(dilation=0),
    dict(groups=3),
    dict(mask_prob=0.6),
    dict(mask_prob=-0.1),
    dict(impl='cuda'),
    dict(in_channels=0),
])
def test_bad_arguments(kwargs):
    args = dict(in_channels=4, out_channels=6)
    args.update(kwargs)
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SCC(**args)


def test_bad_input_shape():
    with pytest.raises(ValueError, match='B×4×H×W'):
        SCC(4, 4)(torch.randn(1, 3, 5, 5))


@pytest.mark.parametrize('impl', ['reference', 'fast'])
@pytest.mark.parametrize('kernel_size', [3, 5])
def test_bf16_autocast_cpu(impl, kernel_size):
    module = make_scc(8, 8, kernel_size, dtype=torch.float32, impl=impl).train()
    x = torch.randn(2, 8, 9, 9, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = module(x)
    out.float().square().mean().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())
    with torch.no_grad():
        module.eval()
        full = module(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = module(x)
    assert (low.float() - full).abs().mean() < 0.05 * full.abs().mean()


@pytest.mark.parametrize('kernel_size', [3, 5])
def test_fast_path_saves_input_and_int8_choice_only(kernel_size):
    module = make_scc(16, 16, kernel_size, dtype=torch.float32).train()
    x = torch.randn(2, 16, 12, 12, requires_grad=True)
    fast = saved_bytes(lambda: module(x))
    module.impl = 'reference'
    reference = saved_bytes(lambda: module(x))
    params = (module.weight.numel() + module.bias.numel() + module.alpha.numel()) * 4
    out_numel = 2 * 16 * 12 * 12
    assert fast == x.numel() * 4 + out_numel + params  # x, the int8 choice, weight, bias and alpha
    assert reference > 2 * fast


def test_parameter_count_by_hand():
    module = SCC(64, 128, 5, groups=2)
    assert sum(p.numel() for p in module.parameters()) == 128 * 32 * 25 + 3 * 3 * 128
    assert module.weight.shape == (128, 32, 5, 5) and module.bias.shape == (3, 128)
    assert module.alpha.shape == module.beta.shape == (3, 128, 1, 1)


def test_loads_seed_state_dict():
    """Upstream SCCNet keys and shapes: weight (O, I, K, K), bias (L, O), alpha/beta (L, O, 1, 1)."""
    state = {
        'weight': torch.randn(8, 4, 5, 5),
        'bias': torch.randn(3, 8),
        'alpha': torch.randn(3, 8, 1, 1),
        'beta': torch.randn(3, 8, 1, 1)
    }
    module = SCC(4, 8, 5)
    module.load_state_dict(state)
    assert torch.equal(module.alpha, state['alpha'])


def test_seed_initialiser_ranges():
    module = SCC(32, 32, 3)
    assert module.weight.abs().max() <= 0.2 and module.weight.abs().max() > 0.15
    for param in (module.bias, module.alpha, module.beta):
        assert param.abs().max() <= 2.0


@pytest.mark.parametrize('impl', ['reference', 'fast'])
@pytest.mark.parametrize('kernel_size,stride,groups', [(3, 1, 1), (5, 2, 2)])
def test_flops_count_every_nested_conv(impl, kernel_size, stride, groups):
    pytest.importorskip('mmengine')
    from mmconv.analysis import get_model_complexity_info
    module = SCC(8, 16, kernel_size, stride, groups=groups, impl=impl).eval()
    x = torch.randn(2, 8, 9, 9)
    flops = get_model_complexity_info(module, inputs=(x, ), show_table=False, show_arch=False)['flops']
    out_pixels = 2 * ((9 - 1) // stride + 1)**2
    taps = sum((2 * i + 1)**2 for i in range(kernel_size // 2 + 1))  # 1 + 9 (+ 25)
    assert flops == out_pixels * 16 * (8 // groups) * taps


def test_opcheck():
    torch.manual_seed(0)
    module = make_scc(4, 6, 5, 2, groups=2, seed=1)
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    forced = torch.full((2, 6, 4, 3), -1, dtype=torch.int8)
    forced[0, :2] = 1
    for extra in (None, forced):
        torch.library.opcheck(torch.ops.mmconv.scc_forward.default, (x, *params, 2, 1, 2, extra))
    out, choice = scc_forward(x, *params, 2, 1, 2, None)
    torch.library.opcheck(torch.ops.mmconv.scc_backward.default,
                          (torch.randn_like(out), x.detach(), choice, *[p.detach() for p in params[:3]], 2, 1, 2, True))


@pytest.mark.parametrize('groups', [1, 2])
def test_opcheck_channels_last(groups):
    """The fake kernels promise the real kernels' strides for a channels_last input (Inductor asserts
    them; a grouped conv and the 1×1 level's matmul used to return other layouts)."""
    module = make_scc(4, 6, 3, groups=groups, seed=1)
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    params = [p.detach() for p in module.parameters()]
    torch.library.opcheck(torch.ops.mmconv.scc_forward.default, (x, *params, 1, 1, groups, None),
                          test_utils=('test_schema', 'test_faketensor'))
    out, choice = scc_forward(x, *params, 1, 1, groups, None)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(torch.ops.mmconv.scc_backward.default,
                          (torch.randn_like(out), x, choice, *params[:3], 1, 1, groups, True),
                          test_utils=('test_schema', 'test_faketensor'))


def test_second_order_is_refused_in_one_sentence():
    module = make_scc(2, 3, 3, seed=1).eval()
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64)
    assert_second_order_refused(module, [x], 'SCC')
    assert selection_margin(module, x) > 1e-3  # finite differences stay on one side of every choice
    module.impl = 'reference'  # the way out the sentence names
    assert torch.autograd.gradgradcheck(module, (x.requires_grad_(True), ))


def make_layer(stride=2, mask_prob=0.0):
    torch.manual_seed(0)
    return SCC(6, 8, 5, stride=stride, groups=2, mask_prob=mask_prob)


@pytest.mark.parametrize('stride,training', [(1, False), (2, True)])
def test_compiled_matches_eager(stride, training):
    """Training without forcing (a compiled and an eager run would draw different maps)."""
    inputs = [torch.randn(2, 6, 10, 13), torch.randn(3, 6, 14, 11)]
    assert_compiled_matches_eager(make_layer(stride).train(training), inputs)


def test_compiles_with_the_forced_draw():
    """The draw has a fixed shape, so training with forcing compiles in one graph (values: same seed)."""
    layer = make_layer(mask_prob=0.2).train()
    compiled = torch.compile(layer, fullgraph=True, dynamic=True, backend='aot_eager')
    x = torch.randn(2, 6, 10, 13)
    torch.manual_seed(5)
    want = layer(x)
    torch.manual_seed(5)
    torch.testing.assert_close(compiled(x), want)


def test_onnx_export_matches_eager(tmp_path):
    inputs = [torch.randn(2, 6, 10, 13), torch.randn(3, 6, 15, 9)]
    assert_onnx_matches_eager(make_layer(), inputs, tmp_path / 'scc.onnx')


def test_empty_batch():
    assert_empty_batch(make_layer(mask_prob=0.2), (6, ), (9, 10))


def test_channels_last():
    assert_channels_last(make_layer, torch.randn(2, 6, 9, 10))


def test_channels_last_training_with_forcing():
    """The issue's crash: forced levels written into a channels_last choice map."""
    x = torch.randn(2, 6, 9, 10)
    results = []
    for memory_format in (torch.contiguous_format, torch.channels_last):
        layer = make_layer(mask_prob=0.2).train().to(memory_format=memory_format)
        torch.manual_seed(7)
        results.append(outputs_and_grads(layer, x.contiguous(memory_format=memory_format)))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want)
