"""Corruptions (mmconv.analysis.robustness.corruptions) and tools/analysis_tools/robustness.py."""
import numpy as np
import pytest
import torch

from mmconv.analysis.robustness.corruptions import (CORRUPTIONS, SDNET_NOISE_GRID, SEVERITIES, SEVERITY_PARAMS, corrupt,
                                                    corrupt_array, defocus_kernel)
from analysis_tool_helpers import NUM_VAL, load_tool

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _textured_images(n=4, size=32):
    """Smooth colour fields with edges: images that every corruption visibly changes."""
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, 4, 4, generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=size, mode='bilinear', align_corners=False)
    edges = (torch.arange(size) // 4 % 2).float()[None, None, :, None] * 0.3
    return (0.15 + 0.55 * smooth + edges).clamp(0, 1)


def test_same_seed_same_pixels_other_seed_other_pixels():
    images = (_textured_images() * 255).round().to(torch.uint8)
    for name in CORRUPTIONS:
        first = corrupt(images, name, 3, seed=7)
        assert first.dtype == torch.uint8 and first.shape == images.shape
        assert torch.equal(first, corrupt(images, name, 3, seed=7))
        if name.endswith('_noise'):
            assert not torch.equal(first, corrupt(images, name, 3, seed=8))


def test_noise_independent_of_call_order_and_batching():
    images = _textured_images(6)
    indices = [10, 11, 12, 13, 14, 15]
    reference = corrupt(images, 'shot_noise', 4, seed=1, indices=indices)
    # Other corruptions and severities drawn first change nothing, nor does splitting the batch.
    for name in CORRUPTIONS:
        corrupt(images, name, 2, seed=1, indices=indices)
    torch.manual_seed(123)
    parts = [corrupt(images[i:i + 2], 'shot_noise', 4, seed=1, indices=indices[i:i + 2]) for i in (4, 0, 2)]
    assert torch.equal(torch.cat([parts[1], parts[2], parts[0]]), reference)
    # Different severities and corruptions use different streams.
    gaussian3 = corrupt(images, 'gaussian_noise', 3, seed=1) - images
    gaussian4 = corrupt(images, 'gaussian_noise', 4, seed=1) - images
    ratio = (gaussian4 / gaussian3.clamp_min(1e-6)).flatten()
    assert ratio.std() > 0.5  # independent noise, not the same draws rescaled (ratio 0.10/0.09)


@pytest.mark.parametrize('name', CORRUPTIONS)
def test_change_grows_with_severity(name):
    images = _textured_images(8)
    change = [(corrupt(images, name, s, seed=0) - images).abs().mean().item() for s in SEVERITIES]
    assert change[0] > 1e-3, change
    assert all(b > a for a, b in zip(change, change[1:])), change


def test_noise_statistics_match_formulas():
    flat = torch.full((1, 3, 64, 64), 0.5)
    for severity in SEVERITIES:
        c = SEVERITY_PARAMS['gaussian_noise'][severity - 1]
        noise = corrupt(flat, 'gaussian_noise', severity) - flat
        assert abs(noise.std().item() - c) < 0.1 * c
        c = SEVERITY_PARAMS['impulse_noise'][severity - 1]
        hit = corrupt(flat, 'impulse_noise', severity) != flat
        assert abs(hit.float().mean().item() - c) < 0.25 * c + 2e-3
        c = SEVERITY_PARAMS['shot_noise'][severity - 1]
        noise = corrupt(flat, 'shot_noise', severity) - flat
        assert abs(noise.var().item() - 0.5 / c) < 0.15 * 0.5 / c  # Poisson(0.5c)/c
    contrast = corrupt(flat + torch.linspace(-0.2, 0.2, 64), 'contrast', 5)
    assert torch.allclose(contrast.std(), (flat + torch.linspace(-0.2, 0.2, 64)).std() * 0.15, rtol=1e-4)


def test_blurs_agree_with_scipy_and_opencv():
    ndimage = pytest.importorskip('scipy.ndimage')
    cv2 = pytest.importorskip('cv2')
    image = np.random.default_rng(0).random((32, 32, 3))
    as_tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    for severity in SEVERITIES:
        sigma = SEVERITY_PARAMS['gaussian_blur'][severity - 1]
        ours = corrupt(as_tensor, 'gaussian_blur', severity)[0].permute(1, 2, 0).numpy()
        ref = np.stack([ndimage.gaussian_filter(image[..., c], sigma, mode='nearest', truncate=4.0) for c in range(3)],
                       -1)
        np.testing.assert_allclose(ours, ref, atol=1e-12)

        radius, alias = SEVERITY_PARAMS['defocus_blur'][severity - 1]
        grid = np.arange(-8, 9)
        disk = ((grid[:, None]**2 + grid[None]**2) <= radius**2).astype(np.float64)
        kernel = cv2.GaussianBlur(disk / disk.sum(), ksize=(3, 3), sigmaX=alias)
        ref = np.stack([cv2.filter2D(image[..., c], -1, kernel) for c in range(3)], -1)
        ours = corrupt(as_tensor, 'defocus_blur', severity)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(ours, np.clip(ref, 0, 1), atol=1e-12)
        assert abs(defocus_kernel(radius, alias).sum().item() - 1) < 1e-12


def test_numpy_layout_and_bad_arguments():
    images = (np.random.default_rng(0).random((2, 8, 8, 3)) * 255).astype(np.uint8)
    out = corrupt_array(images, 'speckle_noise', 5)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert np.array_equal(out, corrupt_array(images, 'speckle_noise', 5))
    with pytest.raises(ValueError, match='corruption must be one of'):
        corrupt_array(images, 'fog', 1)
    with pytest.raises(ValueError, match='severity must be'):
        corrupt_array(images, 'contrast', 6)
    with pytest.raises(ValueError, match='uint8'):
        corrupt_array(images.astype(np.float32), 'contrast', 1)


def test_sdnet_grid_levels_use_their_parameters():
    flat = torch.full((1, 3, 64, 64), 0.5)
    assert SDNET_NOISE_GRID['gaussian_noise'][-1] == 0.2 and len(SDNET_NOISE_GRID['speckle_noise']) == 6
    assert SDNET_NOISE_GRID['shot_noise'] == (60, 54, 48, 42, 36, 30, 24, 18, 12, 6)
    for level in (1, 10):
        c = SDNET_NOISE_GRID['gaussian_noise'][level - 1]
        noise = corrupt(flat, 'gaussian_noise', level, grid=SDNET_NOISE_GRID) - flat
        assert abs(noise.std().item() - c) < 0.1 * c
    with pytest.raises(ValueError, match=r'severity must be an integer in 1\.\.6 for speckle_noise'):
        corrupt(flat, 'speckle_noise', 7, grid=SDNET_NOISE_GRID)
    with pytest.raises(ValueError, match='corruption must be one of'):
        corrupt(flat, 'contrast', 1, grid=SDNET_NOISE_GRID)


# ------------------------------------------------------- the tool, end to end, on generated data
def _read_csv(path):
    import csv
    with open(path) as f:
        return list(csv.DictReader(f))


def _val_images(class_folders):
    """The validation images (RGB, uint8 N x 32 x 32 x 3) and labels, in the dataset's order."""
    from PIL import Image
    classes = sorted(p.name for p in (class_folders / 'val').iterdir())
    paths = [(label, path) for label, name in enumerate(classes)
             for path in sorted((class_folders / 'val' / name).glob('*.png'))]
    images = np.stack([np.asarray(Image.open(path).convert('RGB')) for _, path in paths])
    return images, np.array([label for label, _ in paths], dtype=np.uint8)


def test_lambda_sweep_writes_every_row_and_sparser_codes_for_larger_lambda(sdnet_model, tmp_path):
    from PIL import Image
    config, checkpoint = sdnet_model
    lambdas = ['0.05', '0.3', '1.5']
    load_tool('robustness').main([
        config, checkpoint, '--lambdas', *lambdas, '--csc-layers', r'^backbone\.conv1$', '--out-dir',
        str(tmp_path), '--device', 'cpu', '--no-progress'
    ])
    rows = _read_csv(tmp_path / 'robustness.csv')
    keys = [(r['corruption'], int(r['severity']), r['lam']) for r in rows]
    expected = {('clean', 0, lam) for lam in lambdas}
    expected |= {(c, s, lam) for c in CORRUPTIONS for s in SEVERITIES for lam in lambdas}
    assert len(keys) == len(expected) and set(keys) == expected
    assert all(int(r['num_samples']) == NUM_VAL for r in rows)
    # The stem's codes get sparser as λ grows, and reconstruct their input worse, under every
    # corruption and severity.
    density = {k: float(r['code_density']) for k, r in zip(keys, rows)}
    error = {k: float(r['recon_error']) for k, r in zip(keys, rows)}
    for corruption, severity, _ in expected:
        values = [density[(corruption, severity, lam)] for lam in lambdas]
        assert values[0] > values[1] > values[2], (corruption, severity, values)
        values = [error[(corruption, severity, lam)] for lam in lambdas]
        assert 0 < values[0] < values[1] < values[2] <= 1.0 + 1e-6, (corruption, severity, values)

    summary = _read_csv(tmp_path / 'summary.csv')
    assert {(s['corruption'], s['lam'])
            for s in summary} == {(c, lam)
                                  for c in ('clean', 'mean', *CORRUPTIONS)
                                  for lam in lambdas}
    for corruption in ('clean', 'mean', *CORRUPTIONS):
        assert sum(s['best'] == 'True' for s in summary if s['corruption'] == corruption) == 1
    mean_at_first = np.mean(
        [float(r['accuracy']) for r in rows if r['lam'] == lambdas[0] and r['corruption'] != 'clean'])
    assert float(next(s['accuracy'] for s in summary
                      if s['corruption'] == 'mean' and s['lam'] == lambdas[0])) == pytest.approx(
                          mean_at_first, abs=1e-4)
    for name in ('accuracy_vs_severity.png', 'accuracy_vs_lambda.png'):
        assert min(Image.open(tmp_path / name).size) > 100


def test_sdnet_preset_sweeps_its_grid_and_fits_the_best_lambda(sdnet_model, tmp_path):
    """The preset, narrowed to two noises, three levels and three λ: every row, the best λ per level
    read back from the sweep CSV, and the fit equal to numpy's on those points."""
    from PIL import Image
    config, checkpoint = sdnet_model
    lambdas = ['0.05', '0.3', '1.5']
    noises = ('gaussian_noise', 'speckle_noise')
    load_tool('robustness').main([
        config, checkpoint, '--preset', 'sdnet', '--corruptions', *noises, '--severities', '2', '6', '4', '--lambdas',
        *lambdas, '--out-dir',
        str(tmp_path), '--device', 'cpu', '--no-progress'
    ])
    rows = _read_csv(tmp_path / 'robustness.csv')
    assert {(r['corruption'], r['severity'], r['lam'])
            for r in rows} == ({('clean', '0', lam)
                                for lam in lambdas} | {(c, s, lam)
                                                       for c in noises
                                                       for s in '264'
                                                       for lam in lambdas})
    assert len(rows) == 7 * 3
    for r in rows:
        if r['corruption'] != 'clean':  # the SDNet grid's parameter of that level
            assert float(r['param']) == SDNET_NOISE_GRID[r['corruption']][int(r['severity']) - 1]
    best = _read_csv(tmp_path / 'best_lambda.csv')
    fits = {f['corruption']: f for f in _read_csv(tmp_path / 'lambda_fit.csv')}
    assert set(fits) == set(noises)
    for noise in noises:
        points = []
        for severity in '264':
            swept = [r for r in rows if r['corruption'] == noise and r['severity'] == severity]
            winner = max(swept, key=lambda r: float(r['accuracy']))  # the first of equals, as the tool
            row = next(b for b in best if b['corruption'] == noise and b['severity'] == severity)
            assert row['best_lam'] == winner['lam'] and row['recon_error'] == winner['recon_error']
            points.append((float(winner['recon_error']), float(winner['lam'])))
        fit = fits[noise]
        assert int(fit['num_points']) == 3
        errors, best_lams = map(np.array, zip(*points))
        if len(set(errors)) < 2:
            assert fit['slope'] == ''
        else:
            slope, intercept = np.polyfit(errors, best_lams, 1)
            assert float(fit['slope']) == pytest.approx(slope, rel=1e-4, abs=1e-6)
            assert float(fit['intercept']) == pytest.approx(intercept, rel=1e-4, abs=1e-6)
            assert 0.0 <= float(fit['r2']) <= 1.0 + 1e-9
    for name in ('lambda_fit.png', 'accuracy_vs_lambda.png'):
        with open(tmp_path / name, 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
        assert min(Image.open(tmp_path / name).size) > 100


def test_sdnet_preset_refuses_a_cifar_c_folder_and_writes_nothing(sdnet_model, tmp_path):
    config, checkpoint = sdnet_model
    with pytest.raises(SystemExit) as exit_info:
        load_tool('robustness').main([
            config, checkpoint, '--preset', 'sdnet', '--cifar-c',
            str(tmp_path), '--out-dir',
            str(tmp_path / 'out'), '--no-progress'
        ])
    assert 'generates its noise grids' in str(exit_info.value.code)
    assert not (tmp_path / 'out').exists()


def test_cifar_c_folder_gives_what_generation_gives(sdnet_model, class_folders, tmp_path):
    """A fake CIFAR-10-C folder of deterministic corruptions scores exactly like generating them.

    The code density of the CSC stem depends on every pixel, so equal densities show that the
    folder's RGB arrays, severity slices and labels reach the model as the generated images do.
    """
    config, checkpoint = sdnet_model
    images, labels = _val_images(class_folders)
    folder = tmp_path / 'CIFAR-10-C'
    folder.mkdir()
    names = ('contrast', 'gaussian_blur')
    for name in names:
        np.save(folder / f'{name}.npy', np.concatenate([corrupt_array(images, name, s) for s in SEVERITIES]))
    np.save(folder / 'labels.npy', np.tile(labels, len(SEVERITIES)))

    tool = load_tool('robustness')
    common = [config, checkpoint, '--device', 'cpu', '--no-progress']
    tool.main([*common, '--cifar-c', str(folder), '--out-dir', str(tmp_path / 'read')])
    tool.main([*common, '--corruptions', *names, '--out-dir', str(tmp_path / 'generated')])
    read = {(r['corruption'], r['severity']): r for r in _read_csv(tmp_path / 'read/robustness.csv')}
    generated = {(r['corruption'], r['severity']): r for r in _read_csv(tmp_path / 'generated/robustness.csv')}
    assert set(read) == set(generated) == {('clean', '0')} | {(c, str(s)) for c in names for s in SEVERITIES}
    for key, row in read.items():
        assert row['accuracy'] == generated[key]['accuracy'], key
        assert float(row['code_density']) == pytest.approx(float(generated[key]['code_density']), rel=1e-6), key


def test_clean_accuracy_is_the_test_loop_accuracy(sdnet_model, tmp_path):
    """Model, preprocessing and data as in tools/test.py (mmengine's Runner) on the same files."""
    from mmengine.runner import Runner

    from mmconv.analysis.robustness import evaluate_robustness, load_classifier
    from mmconv.cli.runtime import load_run_config
    config, checkpoint = sdnet_model
    model, cfg = load_classifier(config, checkpoint)
    rows = evaluate_robustness(model, cfg, corruptions=['contrast'], severities=[5], progress=False)
    clean, contrast = (r['accuracy'] for r in rows)
    runner_cfg = load_run_config(config, work_dir=str(tmp_path))
    runner_cfg.load_from = checkpoint
    expected = Runner.from_cfg(runner_cfg).test()['accuracy/top1']
    assert clean == pytest.approx(expected)
    assert clean > 25.0 + 1e-6  # better than one class for all: predictions depend on the pixels
    assert contrast < clean


def test_sweep_restores_lambda_and_bad_requests_fail_clearly(sdnet_model, plain_model, tmp_path):
    from mmconv.analysis.robustness import evaluate_robustness, load_classifier
    config, checkpoint = sdnet_model
    model, cfg = load_classifier(config, checkpoint)
    rows = evaluate_robustness(model, cfg, corruptions=['contrast'], severities=[2], lambdas=[0.7, 1.1], progress=False)
    assert sorted((r['corruption'], r['lam']) for r in rows) == [('clean', 0.7), ('clean', 1.1), ('contrast', 0.7),
                                                                 ('contrast', 1.1)]
    assert model.backbone.conv1.lam == pytest.approx(0.1)

    tool = load_tool('robustness')
    out = ['--out-dir', str(tmp_path), '--no-progress']
    failures = [
        ([config, str(tmp_path / 'missing.pth')], 'missing.pth does not exist'),
        ([*plain_model, '--lambdas', '0.2'], 'no CSC layer'),
        ([config, checkpoint, '--lambdas', '0.2', '--csc-layers', 'neck'], 'matches none'),
        ([config, checkpoint, '--cifar-c', str(tmp_path / 'nowhere')], 'nowhere does not exist'),
        ([config, checkpoint, '--corruptions', 'fog'], 'corruption must be one of'),
    ]
    for argv, message in failures:
        with pytest.raises(SystemExit) as exit_info:
            tool.main([*argv, *out])
        assert message in str(exit_info.value.code), (argv, exit_info.value.code)
