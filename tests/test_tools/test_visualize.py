"""Decoding CSC codes to the input space (mmconv.analysis.csc_decode) and visualize_features.py."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmconv.analysis.csc_decode import NotDecodable, invert_batch_norm, reconstruct, trace_codes
from mmconv.ops.csc import CSCConv2d
from analysis_tool_helpers import load_tool

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _smooth_images(n, seed, size=16):
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=gen)
    smooth = F.interpolate(coarse, size=size, mode='bilinear', align_corners=False)
    return (smooth - 0.5) / 0.25


def _fit_running_stats(net, x):
    """Give every BatchNorm its batch statistics as running statistics, then switch to eval."""
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one batch sets the statistics exactly
    net.train()
    with torch.no_grad():
        net(x)
    return net.eval()


def test_invert_batch_norm_is_exact_and_handles_zero_gamma():
    bn = nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
        bn.running_var.copy_(torch.tensor([0.3, 2.0, 1.5, 0.01]))
        bn.weight.copy_(torch.tensor([1.5, -0.7, 0.0, 2.0]))
        bn.bias.copy_(torch.tensor([0.1, 0.2, 0.3, -0.4]))
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    bn = bn.double()
    recovered = invert_batch_norm(bn, bn(x))
    keep = [0, 1, 3]
    torch.testing.assert_close(recovered[:, keep], x[:, keep])
    # γ = 0 erases the channel: it comes back as the running mean.
    torch.testing.assert_close(recovered[:, 2], torch.full_like(x[:, 2], 2.0))


def test_decoding_is_the_dictionary_chain_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(CSCConv2d(3, 8, 3), nn.BatchNorm2d(8), CSCConv2d(8, 6, 3, stride=2), nn.BatchNorm2d(6))
    x = torch.randn(2, 3, 15, 15)  # odd size with stride 2: decoding needs output padding 0
    _fit_running_stats(net, x)
    trace = trace_codes(net, x)
    assert [r.name for r in trace.records] == ['0', '1', '2', '3']
    h = trace.records[3].output

    def bn_inverse(bn, y):  # written out independently of invert_batch_norm
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return (y - bn.bias[:, None, None]) / scale[:, None, None] + bn.running_mean[:, None, None]

    with torch.no_grad():
        z2 = bn_inverse(net[3], h)
        h1 = F.conv_transpose2d(z2, net[2].weight, stride=2, padding=1, output_padding=0)
        expected = F.conv_transpose2d(bn_inverse(net[1], h1), net[0].weight, padding=1)
    decoded = trace.decode(3)
    assert decoded.shape == x.shape
    torch.testing.assert_close(decoded, expected, rtol=1e-4, atol=1e-4)
    # Through the stem BN or from the stem code itself: the BN inverse is exact.
    torch.testing.assert_close(trace.decode(1), trace.decode(0), rtol=1e-4, atol=1e-4)
    assert trace.decoded_code_index(trace.csc_indices()[0]) == 1


class _ResidualCSC(nn.Module):
    """CSC → BN plus an identity shortcut, then another CSC layer."""

    def __init__(self):
        super().__init__()
        self.csc1, self.bn1, self.csc2 = CSCConv2d(3, 3, 3), nn.BatchNorm2d(3), CSCConv2d(3, 4, 3)

    def forward(self, x):
        return (self.csc2(self.bn1(self.csc1(x)) + x), )


def test_shortcut_stops_decoding_with_a_message():
    net = _ResidualCSC().eval()
    x = torch.randn(1, 3, 8, 8)
    trace = trace_codes(net, x)
    with pytest.raises(NotDecodable, match='csc2 does not take the output of bn1 unchanged'):
        trace.decode(trace.index_of(trace.output[0]))
    result = reconstruct(net, x)
    assert set(result.decoded) == {'stem'} and 'stage0' in result.failures
    assert result.decoded['stem'].shape == x.shape


def _trained_stem(x, steps):
    torch.manual_seed(0)
    stem = nn.Sequential(CSCConv2d(3, 16, 3, num_steps=4), nn.BatchNorm2d(16))
    optimizer = torch.optim.Adam(stem[0].parameters(), lr=0.01)
    for _ in range(steps):
        codes = stem[0](x)
        loss = (stem[0].decode(codes, x.shape[2:]) - x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return stem


def test_chosen_layers_decode_through_their_own_dictionaries():
    torch.manual_seed(0)
    net = nn.Sequential(CSCConv2d(3, 8, 3), nn.BatchNorm2d(8), CSCConv2d(8, 6, 3), nn.BatchNorm2d(6))
    x = torch.randn(2, 3, 9, 9)
    _fit_running_stats(net, x)
    codes = {}
    hooks = [net[i].register_forward_hook(lambda m, a, out, i=i: codes.__setitem__(i, out)) for i in (0, 2)]
    result = reconstruct(net, x, layers=[1, 2])
    for hook in hooks:
        hook.remove()
    with torch.no_grad():  # layer 1: A₁ z₁; layer 2: A₁ B₁⁻¹ A₂ z₂, B₁⁻¹ written out
        bn = net[1]
        scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps))[:, None, None]
        mean, shift = bn.running_mean[:, None, None], bn.bias[:, None, None]
        through_bn = (net[2].decode(codes[2], (9, 9)) - shift) / scale + mean
        expected = {'csc1': net[0].decode(codes[0], (9, 9)), 'csc2': net[0].decode(through_bn, (9, 9))}
    for name, want in expected.items():
        torch.testing.assert_close(result.decoded[name], want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r'numbered 1\.\.2 in execution order \(0, 2\); got \[3\]'):
        reconstruct(net, x, layers=[3])


def test_trained_stem_decodes_closer_to_the_input_than_a_random_dictionary():
    train, held_out = _smooth_images(16, seed=0), _smooth_images(8, seed=1)
    errors = {}
    for name, steps in (('random', 0), ('trained', 40)):
        stem = _fit_running_stats(_trained_stem(train, steps), held_out)
        trace = trace_codes(stem, held_out)
        decoded = trace.decode(trace.decoded_code_index(trace.csc_indices()[0]))
        errors[name] = ((decoded - held_out).norm() / held_out.norm()).item()
    assert errors['trained'] < 0.7 * errors['random'], errors


# -------------------------------------------------------------- the tool, end to end (in process)
def _two_images(class_folders):
    return [str(sorted((class_folders / 'val' / name).glob('*.png'))[0]) for name in ('disc', 'checkerboard')]


def _loadable_pngs(folder):
    from PIL import Image
    sizes = {}
    for path in sorted(folder.glob('*.png')):
        with Image.open(path) as image:
            image.load()
            sizes[path.name] = image.size
    return sizes


def test_tool_decodes_every_stage_of_sdnet_all_without_shortcut(sdnet_all_model, class_folders, tmp_path, capsys):
    config, checkpoint = sdnet_all_model
    images = _two_images(class_folders)
    load_tool('visualize_features').main([config, checkpoint, *images, '--out-dir', str(tmp_path)])
    sizes = _loadable_pngs(tmp_path)
    stems = [name.rsplit('/', 1)[-1][:-4] for name in images]
    expected = {f'{stem}_stage{i}_features.png' for stem in stems for i in range(4)}
    expected |= {f'{stem}_reconstructions.png' for stem in stems} | {'reconstructions.png'}
    assert set(sizes) == expected
    assert all(min(size) >= 48 for size in sizes.values())
    printed = capsys.readouterr().out
    for target in ('stem', 'stage0', 'stage1', 'stage2', 'stage3'):
        assert f'{target}: relative reconstruction error' in printed
    assert 'not decoded' not in printed
    tool = load_tool('visualize_features')
    tool.main([config, checkpoint, images[0], '--layers', '1', '3', '5', '--out-dir', str(tmp_path / 'layers')])
    printed = capsys.readouterr().out
    assert all(f'csc{k}: relative reconstruction error' in printed for k in (1, 3, 5))
    with pytest.raises(SystemExit, match='CSC layers are numbered 1..'):
        tool.main([config, checkpoint, images[0], '--layers', '99', '--out-dir', str(tmp_path / 'bad')])
    assert not (tmp_path / 'bad').exists()


def test_tool_shows_features_of_any_backbone(plain_model, sdnet_model, class_folders, tmp_path, capsys):
    images = _two_images(class_folders)[:1]
    tool = load_tool('visualize_features')
    tool.main([*plain_model, *images, '--out-dir', str(tmp_path / 'plain'), '--stages', '1', '3'])
    stem = images[0].rsplit('/', 1)[-1][:-4]
    assert set(_loadable_pngs(tmp_path / 'plain')) == {f'{stem}_stage1_features.png', f'{stem}_stage3_features.png'}
    assert 'stage3 not decoded: the backbone has no CSC layer' in capsys.readouterr().out
    # SDNet-18 (CSC stem, residual blocks): the stem decodes, the stages stop at the shortcuts.
    tool.main([*sdnet_model, *images, '--out-dir', str(tmp_path / 'sdnet'), '--stages', '0'])
    printed = capsys.readouterr().out
    assert 'stem: relative reconstruction error' in printed
    assert 'stage0 not decoded' in printed and 'unchanged' in printed
    assert f'{stem}_reconstructions.png' in _loadable_pngs(tmp_path / 'sdnet')
    with pytest.raises(SystemExit, match='nowhere.png does not exist'):
        tool.main([*sdnet_model, str(tmp_path / 'nowhere.png'), '--out-dir', str(tmp_path)])
