"""CSC layers (2-D, 1-D, matrix): solver vs reference and hand formulas, LASSO optimality, step-size
state, any input size, λ at test time, memory, FLOPs, autocast and argument checks, and the registered
ops under PyTorch's machinery (opcheck, compile, export, second order, layouts, empty batch)."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmconv.analysis.memory import saved_tensor_bytes as saved_bytes
from mmconv.ops import CSCConv1d, CSCConv2d, CSCLinear, set_csc_lambda
from mmconv.ops.csc import SOLVERS, ConvDictionary, LinearDictionary, fista_momentum, sparse_code, sparse_code_reference
from mmconv.ops.csc.dictionaries import transpose_output_padding
from op_integration import (assert_channels_last, assert_compiled_matches_eager, assert_empty_batch,
                            assert_onnx_matches_eager, assert_second_order_refused, outputs_and_grads)

pytestmark = pytest.mark.usefixtures('one_torch_thread')

# Functional problems: (name, dictionary, signal shape, weight shape).
PROBLEMS = [
    ('conv2d_s2_odd', ConvDictionary(2, (3, 3), (2, 2), (1, 1), (1, 1), 1), (2, 2, 5, 6), (3, 2, 3, 3)),
    ('conv2d_groups_dilation', ConvDictionary(2, (3, 3), (1, 1), (2, 2), (2, 2), 2), (1, 4, 5, 6), (4, 2, 3, 3)),
    ('conv1d_s2_odd', ConvDictionary(1, (3, ), (2, ), (1, ), (1, ), 1), (2, 2, 7), (3, 2, 3)),
    ('linear', LinearDictionary(), (4, 5), (6, 5)),
]
PROBLEM_IDS = [p[0] for p in PROBLEMS]


def make_problem(problem, dtype=torch.float64, seed=0):
    """x, a unit-atom weight (both requiring grad) and a step size below 1/L."""
    _, dictionary, x_shape, w_shape = problem
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(x_shape, generator=generator, dtype=dtype)
    weight = torch.randn(w_shape, generator=generator, dtype=dtype)
    weight = weight / weight.flatten(1).norm(dim=1).view(-1, *[1] * (weight.dim() - 1))
    return x.requires_grad_(), weight.requires_grad_(), dictionary, torch.tensor(0.3)


def make_layer(kind, seed=1, **kwargs):
    """A small layer of each kind and an input for it."""
    torch.manual_seed(seed)
    if kind == 'conv2d':
        return CSCConv2d(3, 6, 3, stride=2, **kwargs), torch.randn(2, 3, 9, 7)
    if kind == 'conv1d':
        return CSCConv1d(3, 6, 5, stride=2, **kwargs), torch.randn(2, 3, 13)
    return CSCLinear(8, 12, **kwargs), torch.randn(2, 5, 8)


KINDS = ['conv2d', 'conv1d', 'linear']


def dense_dictionary(layer, x):
    """The synthesis operator A of ``layer`` for inputs shaped like ``x`` as an explicit matrix."""
    with torch.no_grad():
        codes = layer(x[:1])
        columns = []
        for i in range(codes.numel()):
            basis = torch.zeros(codes.numel(), dtype=x.dtype)
            basis[i] = 1
            basis = basis.view_as(codes)
            if isinstance(layer, CSCLinear):
                decoded = layer.decode(basis)
            else:
                decoded = layer.decode(basis, x.shape[2:])
            columns.append(decoded.flatten())
    return torch.stack(columns, dim=1)


# ----------------------------------------------------------------------------- solver


def test_fista_momentum_sequence():
    betas = fista_momentum(5)
    t2 = (1 + math.sqrt(5)) / 2
    t3 = (1 + math.sqrt(1 + 4 * t2**2)) / 2
    assert betas[:2] == [0.0, 0.0]
    assert betas[2] == pytest.approx((t2 - 1) / t3) and betas[2] == pytest.approx(0.2818, abs=1e-4)
    assert betas[3] == pytest.approx(0.4340, abs=1e-4) and betas[4] == pytest.approx(0.5311, abs=1e-4)


def test_two_steps_match_closed_form():
    """SDNet's two steps written with plain conv ops: z₁ = ReLU(η Aᵀx − ηλ), one ISTA step from z₁."""
    torch.manual_seed(0)
    layer = CSCConv2d(3, 5, 3, stride=2).double().eval()
    for size in [(9, 7), (8, 6)]:  # odd: output padding 0; even: 1
        x = torch.randn(2, 3, *size, dtype=torch.float64)
        out = layer(x)
        eta, lam, w = layer.step_size.double(), 0.1, layer.weight
        z1 = F.relu(F.conv2d(x, w, stride=2, padding=1) * eta - eta * lam)
        pad = [size[0] - ((z1.shape[2] - 1) * 2 - 2 + 3), size[1] - ((z1.shape[3] - 1) * 2 - 2 + 3)]
        residual = x - F.conv_transpose2d(z1, w, stride=2, padding=1, output_padding=pad)
        z2 = F.relu(z1 + eta * F.conv2d(residual, w, stride=2, padding=1) - eta * lam)
        torch.testing.assert_close(out, z2, rtol=0, atol=1e-12)


# (problem index, solver, non_negative, mu, num_steps, recompute): every solver and proximal map at 4
# steps (momentum active) on the strided odd-size problem, the other layouts on a few of them.
GRADCHECK_CASES = [(0, solver, non_negative, mu, 4, False) for solver in SOLVERS
                   for non_negative, mu in [(True, 0.0), (False, 0.0), (True, 0.5)]] + [
                       (0, 'sdnet_fista', True, 0.0, 1, False),
                       (0, 'sdnet_fista', True, 0.0, 2, False),
                       (0, 'fista', True, 0.0, 4, True),
                       (0, 'sdnet_fista', False, 0.5, 3, True),
                       (1, 'sdnet_fista', True, 0.0, 2, False),
                       (2, 'sdnet_fista', True, 0.0, 4, False),
                       (2, 'fista', False, 0.0, 4, True),
                       (2, 'ista', True, 0.5, 3, False),
                       (3, 'sdnet_fista', True, 0.0, 4, False),
                       (3, 'fista', False, 0.0, 4, True),
                       (3, 'ista', True, 0.5, 3, False),
                   ]


@pytest.mark.parametrize('problem,solver,non_negative,mu,num_steps,recompute', GRADCHECK_CASES,
                         ids=['-'.join(map(str, (PROBLEM_IDS[c[0]], ) + c[1:])) for c in GRADCHECK_CASES])
def test_fast_path_gradcheck(problem, solver, non_negative, mu, num_steps, recompute):
    x, weight, dictionary, step = make_problem(PROBLEMS[problem])

    def codes(x, w):
        return sparse_code(x, w, dictionary, step, 0.1, num_steps, solver, non_negative, mu, recompute)

    assert torch.autograd.gradcheck(codes, (x, weight))


@pytest.mark.parametrize('problem', PROBLEMS, ids=PROBLEM_IDS)
@pytest.mark.parametrize('solver', SOLVERS)
@pytest.mark.parametrize('non_negative,mu', [(True, 0.0), (False, 0.0), (True, 0.5)])
def test_fast_path_matches_reference_fp32(problem, solver, non_negative, mu):
    x, weight, dictionary, step = make_problem(problem, dtype=torch.float32)
    for num_steps in [1, 2, 3, 5]:
        args = (dictionary, step, 0.1, num_steps, solver, non_negative, mu)
        out = sparse_code(x, weight, *args)
        expected = sparse_code_reference(x, weight, *args)
        grad = torch.randn_like(out)
        grads = torch.autograd.grad(out, (x, weight), grad)
        expected_grads = torch.autograd.grad(expected, (x, weight), grad)
        assert (out - expected).abs().max() <= 1e-5
        for g, e in zip(grads, expected_grads):
            assert (g - e).abs().max() <= 1e-5


def test_solvers_coincide_up_to_two_steps_and_differ_after():
    x, weight, dictionary, step = make_problem(PROBLEMS[0])
    for num_steps in [1, 2]:
        outs = [sparse_code(x, weight, dictionary, step, 0.1, num_steps, s) for s in SOLVERS]
        for out in outs[1:]:
            torch.testing.assert_close(out, outs[0], rtol=0, atol=0)
    outs = [sparse_code(x, weight, dictionary, step, 0.1, 3, s) for s in SOLVERS]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])


@pytest.mark.parametrize('kind', KINDS)
def test_module_paths_agree(kind):
    layer, x = make_layer(kind, num_steps=3)
    layer.eval()
    x.requires_grad_()
    out = layer(x)
    layer.impl = 'reference'
    expected = layer(x)
    grad = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, layer.weight), grad)
    expected_grads = torch.autograd.grad(expected, (x, layer.weight), grad)
    assert out.shape == expected.shape and (out - expected).abs().max() <= 1e-5
    for g, e in zip(grads, expected_grads):
        assert (g - e).abs().max() <= 1e-5


# ------------------------------------------------------------------- LASSO optimality


@pytest.mark.parametrize('kind', KINDS)
def test_ista_objective_decreases_and_momentum_is_faster(kind):
    layer, x = make_layer(kind, solver='ista')
    layer = layer.double().eval()
    x = x.double()
    values = []
    for num_steps in [1, 2, 4, 8, 16, 32, 64]:
        layer.num_steps = num_steps
        values.append(layer.objective(x, layer(x)).sum().item())
    assert all(b < a for a, b in zip(values, values[1:])), values
    layer.num_steps = 8
    for solver in ['fista', 'sdnet_fista']:
        layer.solver = solver
        assert layer.objective(x, layer(x)).sum().item() < values[3]


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('non_negative,mu', [(True, 0.0), (False, 0.0), (True, 0.3)])
def test_many_steps_satisfy_lasso_optimality(kind, non_negative, mu):
    """KKT of min ½‖x − Az‖² + λ‖z‖₁ + μ/2‖z‖² (z ≥ 0): g = Aᵀ(Az − x) + μz equals −λ·sign(z) on the
    support, and g ≥ −λ (non-negative) or |g| ≤ λ (signed) off it."""
    lam = 0.2
    layer, x = make_layer(kind, solver='fista', num_steps=1000, lam=lam, non_negative=non_negative, mu=mu)
    layer = layer.double().eval()
    x = x.double()[:1]
    matrix = dense_dictionary(layer, x)
    z = layer(x).flatten().detach()
    g = matrix.t() @ (matrix @ z - x.flatten()) + mu * z
    active = z != 0
    assert active.any() and (~active).any()
    torch.testing.assert_close(g[active], -lam * torch.sign(z[active]), rtol=0, atol=1e-6)
    if non_negative:
        assert (z >= 0).all() and (g[~active] >= -lam - 1e-6).all()
    else:
        assert (g[~active].abs() <= lam + 1e-6).all()


def test_larger_lambda_gives_sparser_codes():
    torch.manual_seed(0)
    model = nn.Sequential(CSCConv2d(3, 16, 3), CSCConv2d(16, 16, 3, stride=2)).eval()
    x = torch.randn(4, 3, 16, 16)
    zero_fractions, l1 = [], []
    for lam in [0.0, 0.01, 0.02, 0.05, 0.1, 0.15]:
        set_csc_lambda(model, lam)
        first = model[0](x)
        codes = model[1](first)
        zero_fractions.append([(first == 0).float().mean().item(), (codes == 0).float().mean().item()])
        l1.append(first.abs().mean().item())
    for layer_index in range(2):
        fractions = [f[layer_index] for f in zero_fractions]
        assert all(b > a for a, b in zip(fractions, fractions[1:])), fractions
    assert all(b < a for a, b in zip(l1, l1[1:]))
    assert zero_fractions[-1][0] > zero_fractions[0][0] + 0.05


def test_set_csc_lambda_filters_and_returns_previous():
    model = nn.Sequential(CSCConv2d(3, 4), nn.ReLU(), nn.Sequential(CSCConv1d(4, 4), CSCLinear(4, 4)))
    assert set_csc_lambda(model, 0.3) == {'0': 0.1, '2.0': 0.1, '2.1': 0.1}
    assert set_csc_lambda(model, 0.5, layer_filter=r'^2\.') == {'2.0': 0.3, '2.1': 0.3}
    assert set_csc_lambda(model, 0.7, lambda name, layer: isinstance(layer, CSCLinear)) == {'2.1': 0.5}
    assert [model[0].lam, model[2][0].lam, model[2][1].lam] == [0.3, 0.5, 0.7]
    layer = CSCConv2d(3, 4)
    set_csc_lambda(layer, 0.25)
    assert layer.lam == 0.25


# ------------------------------------------------------------------ sizes and geometry


@pytest.mark.parametrize('kernel_size,stride', [(1, 1), (3, 1), (3, 2), (7, 2), (4, 2)])
@pytest.mark.parametrize('size', [(8, 8), (9, 7), (5, 12)])
def test_output_shape_matches_conv2d(kernel_size, stride, size):
    padding = 1 if kernel_size == 4 else None
    layer = CSCConv2d(3, 4, kernel_size, stride, padding)
    conv = nn.Conv2d(3, 4, kernel_size, stride, layer.padding)
    x = torch.randn(2, 3, *size)
    assert layer(x).shape == conv(x).shape


@pytest.mark.parametrize('size', [(9, 7), (8, 8), (7, 10)])
def test_decoder_is_adjoint_of_encoder_odd_sizes_stride2(size):
    torch.manual_seed(0)
    layer = CSCConv2d(3, 5, 3, stride=2).double()
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    encoded = F.conv2d(x, layer.weight, stride=2, padding=1)
    z = torch.randn_like(encoded)
    decoded = layer.decode(z, size)
    assert decoded.shape == x.shape
    torch.testing.assert_close((decoded * x).sum(), (z * encoded).sum(), rtol=1e-12, atol=0)
    assert layer.decode(z).shape[2:] == tuple((n - 1) * 2 - 2 + 3 for n in z.shape[2:])
    with pytest.raises(ValueError, match='output_size'):
        layer.decode(z, (size[0] + 2, size[1]))


@pytest.mark.parametrize('kind', ['conv2d', 'conv1d'])
def test_any_input_size_after_first_call(kind):
    layer, x = make_layer(kind)
    layer.train()
    if kind == 'conv2d':
        sizes, conv_class = [(9, 7), (8, 8), (13, 5), (6, 11), (40, 40)], nn.Conv2d
    else:
        sizes, conv_class = [(13, ), (8, ), (21, ), (80, )], nn.Conv1d
    conv = conv_class(3, 6, layer.kernel_size, layer.stride, layer.padding)
    for size in sizes:
        x = torch.randn(2, 3, *size, requires_grad=True)
        out = layer(x)
        assert out.shape == conv(x).shape
        out.sum().backward()
        assert torch.isfinite(x.grad).all()
        code_size = [min(n, layer.power_max_size) for n in out.shape[2:]]
        assert list(layer.power_vector.shape[2:]) == code_size
        assert layer.decode(out, size).shape == x.shape


def test_linear_layer_handles_tokens_and_vectors():
    layer, x = make_layer('linear')
    layer.eval()
    tokens = layer(x)
    assert tokens.shape == (2, 5, 12)
    torch.testing.assert_close(layer(x.reshape(10, 8)), tokens.reshape(10, 12))
    torch.testing.assert_close(layer(x[1, 2]), tokens[1, 2])
    assert layer.decode(tokens).shape == x.shape
    assert layer.objective(x, tokens).shape == (2, 5)


def test_atoms_are_unit_norm_after_forward():
    layer, x = make_layer('conv2d')
    with torch.no_grad():
        layer.weight.mul_(3.0)
    layer(x)
    torch.testing.assert_close(layer.weight.flatten(1).norm(dim=1), torch.ones(6))


# ------------------------------------------------------------------- step-size state


@pytest.mark.parametrize('kind,size', [('conv2d', (7, 5)), ('conv2d', (6, 6)), ('conv1d', (9, )), ('linear', None)])
def test_power_iteration_matches_largest_singular_value(kind, size):
    layer, x = make_layer(kind)
    layer = layer.double()
    x = x.double()[:1] if size is None else torch.randn(1, 3, *size, dtype=torch.float64)
    layer.eval()
    layer(x)  # cold estimate
    true_lipschitz = torch.linalg.matrix_norm(dense_dictionary(layer, x), 2)**2
    assert layer.lipschitz.item() <= true_lipschitz.item() * (1 + 1e-6)
    assert layer.lipschitz.item() == pytest.approx(true_lipschitz.item(), rel=2e-2)
    layer.train()
    for _ in range(300):  # warm-started updates converge
        layer(x)
    assert layer.lipschitz.item() == pytest.approx(true_lipschitz.item(), rel=1e-5)
    torch.testing.assert_close(layer.step_size.double(), 0.9 / true_lipschitz, rtol=1e-5, atol=0)


def test_power_iteration_is_capped_in_size():
    layer = CSCConv2d(3, 4, 3, power_max_size=8)
    layer(torch.randn(1, 3, 30, 5))
    assert layer.power_vector.shape == (1, 4, 8, 5)


def test_step_size_updates_in_training_only_and_on_schedule():
    layer, x = make_layer('conv2d', power_interval=3)
    layer.eval()
    layer(x)
    state = layer.power_vector.clone(), layer.step_size.clone()
    layer(x)
    assert torch.equal(layer.power_vector, state[0]) and torch.equal(layer.step_size, state[1])
    layer.train()
    changed = []
    for _ in range(6):
        before = layer.power_vector.clone()
        layer(x)
        changed.append(not torch.equal(before, layer.power_vector))
    assert changed == [True, False, False, True, False, False]


def test_state_dict_round_trip_and_sdnet_checkpoint():
    layer, x = make_layer('conv2d')
    layer.train()
    for _ in range(3):
        layer(x)
    layer.eval()
    expected = layer(x)
    state = layer.state_dict()
    assert set(state) == {'weight', 'step_size', 'power_vector'}
    assert state['step_size'].shape == () and state['power_vector'].numel() > 0

    fresh, _ = make_layer('conv2d', seed=5)
    fresh.load_state_dict(state)
    fresh.eval()
    torch.testing.assert_close(fresh(x), expected, rtol=0, atol=0)
    assert torch.equal(fresh.power_vector, state['power_vector'])

    # An SDNet checkpoint (``dn.weight``, ``dn.step_size`` renamed) has no power vector: it loads
    # strictly and the first forward re-estimates the step size from the weights.
    sdnet = {'weight': state['weight'] * 1.5, 'step_size': torch.tensor(0.123)}
    converted, _ = make_layer('conv2d', seed=6)
    converted.load_state_dict(sdnet, strict=True)
    assert converted.power_vector.numel() == 0 and converted.step_size.item() == pytest.approx(0.123)
    converted.eval()
    converted(x)
    assert converted.power_vector.numel() > 0
    # Both are power-iteration estimates of the same L (50 cold iterations against 53): within 1 %.
    assert converted.step_size.item() == pytest.approx(layer.step_size.item(), rel=1e-2)


def test_lambda_is_settable_and_not_in_state_dict():
    layer, x = make_layer('conv2d')
    layer.eval()
    sparse_at_default = (layer(x) == 0).float().mean()
    layer.lam = 0.5
    assert (layer(x) == 0).float().mean() > sparse_at_default
    assert 'lam' not in layer.state_dict()


# ----------------------------------------------------------------- memory, FLOPs, dtype


def test_fast_path_saves_less_than_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    signal_bytes = x.numel() * 4
    weight_bytes = 8 * 8 * 9 * 4
    measured = {}
    for name, kwargs in [('fast', {}), ('recompute', dict(recompute=True)), ('reference', dict(impl='reference'))]:
        layer = CSCConv2d(8, 8, 3, **kwargs)
        measured[name] = saved_bytes(lambda: layer(x))
    # x, z₁, A z₁ and z₂'s one-byte support (+ the dictionary, its ±η-scaled copies, and η).
    assert 3.25 * signal_bytes <= measured['fast'] <= 3.25 * signal_bytes + 3 * weight_bytes + 64
    assert 2.25 * signal_bytes <= measured['recompute'] <= 2.25 * signal_bytes + 3 * weight_bytes + 64
    assert measured['reference'] > 1.5 * measured['fast']


@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('num_steps', [1, 2, 3])
def test_flops_hand_count(impl, num_steps):
    pytest.importorskip('mmengine')
    from mmconv.analysis import get_model_complexity_info

    def count(layer, x):
        info = get_model_complexity_info(layer, inputs=(x, ), show_table=False, show_arch=False)
        return info['flops']

    # 2-D: B·C_out·C_in·k²·H'·W' per pass, 2·num_steps − 1 passes.
    layer = CSCConv2d(3, 8, 3, stride=2, num_steps=num_steps, impl=impl)
    x = torch.randn(2, 3, 9, 9)
    per_pass = 2 * 8 * 3 * 9 * 5 * 5
    layer.train()
    layer(x)
    state = layer.step_size.clone(), layer.power_vector.clone()
    assert count(layer, x) == (2 * num_steps - 1) * per_pass  # power iteration not counted
    assert torch.equal(layer.step_size, state[0]) and torch.equal(layer.power_vector, state[1])
    layer.eval()
    assert count(layer, x) == (2 * num_steps - 1) * per_pass
    # grouped 1-D: B·C_out·(C_in/g)·k·L'.
    layer = CSCConv1d(4, 6, 5, stride=2, groups=2, num_steps=num_steps, impl=impl).eval()
    assert count(layer, torch.randn(3, 4, 11)) == (2 * num_steps - 1) * 3 * 6 * 2 * 5 * 6
    # matrix: N·m·d.
    layer = CSCLinear(8, 12, num_steps=num_steps, impl=impl).eval()
    assert count(layer, torch.randn(2, 5, 8)) == (2 * num_steps - 1) * 10 * 12 * 8


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('impl', ['fast', 'reference'])
def test_bf16_autocast_cpu(kind, impl):
    layer, x = make_layer(kind, num_steps=3, impl=impl)
    layer.eval()
    expected = layer(x)
    x.requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (out.float() - expected).abs().max() <= 0.05 * expected.abs().max()
    out.float().sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(layer.weight.grad).all()
    assert layer.step_size.dtype == torch.float32


# ------------------------------------------------------------------- bad arguments

BAD_ARGUMENTS = [
    (lambda: CSCConv2d(0, 8), 'in_channels'),
    (lambda: CSCConv2d(3, 8.0), 'out_channels'),
    (lambda: CSCConv2d(3, 8, 0), 'kernel_size'),
    (lambda: CSCConv2d(3, 8, (3, )), 'kernel_size'),
    (lambda: CSCConv2d(3, 8, 3, 0), 'stride'),
    (lambda: CSCConv2d(3, 8, 3, 1, -1), 'padding'),
    (lambda: CSCConv2d(3, 8, 3, dilation=0), 'dilation'),
    (lambda: CSCConv2d(3, 8, 3, groups=2), 'groups'),
    (lambda: CSCConv2d(3, 8, num_steps=0), 'num_steps'),
    (lambda: CSCConv2d(3, 8, num_steps=2.0), 'num_steps'),
    (lambda: CSCConv2d(3, 8, lam=-0.1), 'lam'),
    (lambda: CSCConv2d(3, 8, solver='adam'), 'solver'),
    (lambda: CSCConv2d(3, 8, mu=-1.0), 'mu'),
    (lambda: CSCConv2d(3, 8, step_scale=2.0), 'step_scale'),
    (lambda: CSCConv2d(3, 8, power_iters=0), 'power_iters'),
    (lambda: CSCConv2d(3, 8, power_interval=0), 'power_interval'),
    (lambda: CSCConv2d(3, 8, power_max_size=0), 'power_max_size'),
    (lambda: CSCConv2d(3, 8, impl='triton'), 'impl'),
    (lambda: CSCConv2d(3, 8, impl='memory'), 'impl'),
    (lambda: CSCConv1d(3, 8, (3, 3)), 'kernel_size'),
    (lambda: CSCLinear(0, 8), 'in_features'),
    (lambda: CSCLinear(8, 8, solver='lista'), 'solver'),
    (lambda: setattr(CSCConv2d(3, 8), 'lam', -1), 'lam'),
    (lambda: set_csc_lambda(CSCConv2d(3, 8), -1), 'lam'),
    (lambda: set_csc_lambda(CSCConv2d(3, 8), 0.1, layer_filter=3), 'layer_filter'),
]


@pytest.mark.parametrize('build,argument', BAD_ARGUMENTS, ids=[a for _, a in BAD_ARGUMENTS])
def test_bad_arguments_raise_one_sentence_value_error(build, argument):
    with pytest.raises(ValueError) as error:
        build()
    message = str(error.value)
    assert message.startswith(argument + ' must be') and message.endswith('.')
    assert message.count('. ') == 0


# ------------------------------------------------------- registered ops and PyTorch's machinery


def warm_layer(layer, size):
    """``layer`` in eval mode after one forward on ``size`` (the step-size estimate exists)."""
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(1, layer.in_channels, *size))
    return layer


# (geometry of the op arguments, x shape, weight shape): strided odd-size conv2d, grouped dilated
# conv1d, matrix.
OP_PROBLEMS = [
    ((2, [2, 2], [1, 1], [1, 1], 1), (2, 2, 5, 6), (3, 2, 3, 3)),
    ((1, [1], [2], [2], 2), (2, 4, 7), (4, 2, 3)),
    ((0, [], [], [], 1), (4, 5), (6, 5)),
]


@pytest.mark.parametrize('problem', OP_PROBLEMS, ids=['conv2d', 'conv1d', 'linear'])
@pytest.mark.parametrize('non_negative,mu', [(True, 0.0), (False, 0.5)])
def test_opcheck(problem, non_negative, mu):
    """Schema, fake kernels (sizes and strides), autograd registration and AOT dispatch of every op."""
    geometry, x_shape, w_shape = problem
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(x_shape, generator=generator, dtype=torch.float64)
    weight = torch.randn(w_shape, generator=generator, dtype=torch.float64)
    step = torch.tensor(0.3, dtype=torch.float64)
    theta, scale = step * 0.1, (1 / (1 + step * mu) if mu else None)
    ops = torch.ops.mmconv
    for requires_grad in (False, True):
        weight.requires_grad_(requires_grad)
        x.requires_grad_(requires_grad)
        args = (weight, x, step, theta, scale, *geometry, non_negative, requires_grad)
        torch.library.opcheck(ops.csc_encode.default, args)
        c, z = (t.detach().requires_grad_(requires_grad) for t in ops.csc_encode(*args))
        y = (1.2 * z).detach().requires_grad_(requires_grad)
        for point in (None, z):
            args = (weight, x, y, point, c, step, theta, scale, *geometry, non_negative, point is None, requires_grad)
            torch.library.opcheck(ops.csc_step.default, args)
    weight, x, c, z, y = (t.detach() for t in (weight, x, c, z, y))
    grad = torch.randn_like(z)
    for support, need in [(z, (True, True)), (z != 0, (False, True)), (z, (True, False))]:
        torch.library.opcheck(ops.csc_encode_backward.default,
                              (grad, grad, x, weight, step, scale, support, *geometry, non_negative, *need))
    torch.library.opcheck(ops.csc_encode_backward.default,
                          (None, grad, x, weight, step, scale, z, *geometry, non_negative, True, True))
    z2, decoded = ops.csc_step(weight, x, y, z, c, step, theta, scale, *geometry, non_negative, True, False)
    padding = [] if geometry[0] == 0 else transpose_output_padding(x_shape[2:], c.shape[2:], w_shape[2:], *
                                                                   geometry[1:4])
    for grad_decoded, saved, need in [(None, decoded, (True, True, False)),
                                      (torch.randn_like(decoded), None, (True, True, True)),
                                      (None, None, (False, False, False))]:
        torch.library.opcheck(ops.csc_step_backward.default,
                              (torch.randn_like(z2), grad_decoded, z2
                               != 0, weight, step, scale, z, saved, padding, *geometry, non_negative, *need))


@pytest.mark.parametrize('problem', OP_PROBLEMS, ids=['conv2d', 'conv1d', 'linear'])
def test_step_op_gradcheck_both_outputs(problem):
    """The step op's gradients for both its outputs (z and the decoding ``A p`` it returns), with the
    gradient point given or y itself, saving or recomputing ``A p``."""
    geometry, x_shape, w_shape = problem
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(x_shape, generator=generator, dtype=torch.float64)
    weight = torch.randn(w_shape, generator=generator, dtype=torch.float64, requires_grad=True)
    step = torch.tensor(0.3, dtype=torch.float64)
    theta = step * 0.1
    c, z = (
        t.detach().requires_grad_()
        for t in torch.ops.mmconv.csc_encode(weight, x, step, theta, None, *geometry, True, False))
    y = (1.3 * z + 0.1).detach().requires_grad_()
    for recompute in (False, True):

        def fn(weight, y, c, point=None):
            return torch.ops.mmconv.csc_step(weight, x, y, point, c, step, theta, None, *geometry, True, False,
                                             recompute)

        assert torch.autograd.gradcheck(fn, (weight, y, c))
        assert torch.autograd.gradcheck(fn, (weight, y, c, z))
    # η is not differentiated: asking for its gradient raises instead of returning zero.
    step.requires_grad_()
    z = torch.ops.mmconv.csc_step(weight, x, y, None, c, step, theta, None, *geometry, True, False, False)[0]
    with pytest.raises(RuntimeError, match='step size'):
        z.sum().backward()


def test_traced_graph_has_the_registered_ops():
    layer = warm_layer(CSCConv2d(3, 4, 3, num_steps=3), (8, 8))
    graph = str(torch.jit.trace(layer, torch.randn(1, 3, 8, 8)).graph)
    assert graph.count('mmconv::csc_encode') == 1 and graph.count('mmconv::csc_step') == 2


def test_compiled_matches_eager_eval():
    torch.manual_seed(0)
    layer = warm_layer(CSCConv2d(3, 5, 3, stride=2, num_steps=3), (10, 12))
    assert_compiled_matches_eager(layer, [torch.randn(2, 3, 10, 12), torch.randn(3, 3, 14, 11)])


def test_compiled_matches_eager_training_with_state():
    """Training mode: the power iteration updates the buffers inside the compiled forward.

    Codes larger than ``power_max_size`` keep the power vector's shape across sizes (no recompile);
    outputs, gradients and the updated buffers equal eager's.
    """
    torch.manual_seed(0)
    layer = warm_layer(CSCConv2d(3, 5, 3, stride=2, num_steps=3, power_max_size=4), (10, 12)).train()
    inputs = [torch.randn(2, 3, 10, 12), torch.randn(3, 3, 14, 11)]
    assert_compiled_matches_eager(layer, inputs)
    # power_interval = 2: one compiled graph per phase, then no more; the state follows eager's.
    torch._dynamo.reset()
    layer.power_interval = 2
    eager, compiled_layer = layer, copy.deepcopy(layer)
    compiled = torch.compile(compiled_layer, fullgraph=True, dynamic=True, backend='aot_eager')
    for x in inputs * 2:
        for got, want in zip(outputs_and_grads(compiled, x), outputs_and_grads(eager, x)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        for name, buffer in eager.named_buffers():
            torch.testing.assert_close(compiled_layer.get_buffer(name), buffer, rtol=1e-5, atol=1e-7)


def test_onnx_matches_eager(tmp_path):
    """The default exporter traces the reference ('auto' during export), with dynamic batch and size
    (odd and even sizes with stride 2: the decoding's output padding differs)."""
    torch.manual_seed(0)
    layer = warm_layer(CSCConv2d(3, 5, 3, stride=2, num_steps=3), (10, 12))
    assert_onnx_matches_eager(layer, [torch.randn(2, 3, 10, 12), torch.randn(3, 3, 15, 11)], tmp_path / 'csc.onnx')


def test_onnx_export_without_step_size_raises(tmp_path):
    layer = CSCConv2d(3, 5, 3).eval()
    with pytest.raises(RuntimeError, match='no step-size estimate'):
        torch.onnx.export(layer, (torch.randn(1, 3, 8, 8), ), str(tmp_path / 'csc.onnx'), dynamo=True)


def test_second_order_refused_fast_and_exact_reference():
    torch.manual_seed(0)
    layer = warm_layer(CSCConv2d(2, 3, 3, stride=2, num_steps=3), (7, 6)).double()
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64)
    assert_second_order_refused(layer, [x], 'CSC')
    layer.impl = 'reference'
    weight = layer.weight.detach().clone()

    def codes(x, w):
        return sparse_code_reference(x, w, layer.dictionary, layer.step_size.double(), 0.1, 3)

    assert torch.autograd.gradgradcheck(codes, (x.requires_grad_(), weight.requires_grad_()))


def test_channels_last_train_and_eval():

    def factory():
        torch.manual_seed(0)
        return CSCConv2d(3, 5, 3, stride=2, num_steps=3)

    assert_channels_last(factory, torch.randn(2, 3, 9, 10))


def test_empty_batch():
    torch.manual_seed(0)
    assert_empty_batch(CSCConv2d(3, 5, 3, stride=2, num_steps=3), (3, ), (9, 10))
