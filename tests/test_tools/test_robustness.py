"""Corruptions (mmconv.utils.corruptions) and the robustness tool (tools/analysis_tools/robustness.py)."""
import numpy as np
import pytest
import torch

from mmconv.utils.corruptions import (CORRUPTIONS, SEVERITIES, SEVERITY_PARAMS, corrupt,
                                      corrupt_array, defocus_kernel)


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
    parts = [corrupt(images[i:i + 2], 'shot_noise', 4, seed=1, indices=indices[i:i + 2])
             for i in (4, 0, 2)]
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
    assert torch.allclose(contrast.std(), (flat + torch.linspace(-0.2, 0.2, 64)).std() * 0.15,
                          rtol=1e-4)


def test_blurs_agree_with_scipy_and_opencv():
    ndimage = pytest.importorskip('scipy.ndimage')
    cv2 = pytest.importorskip('cv2')
    image = np.random.default_rng(0).random((32, 32, 3))
    as_tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    for severity in SEVERITIES:
        sigma = SEVERITY_PARAMS['gaussian_blur'][severity - 1]
        ours = corrupt(as_tensor, 'gaussian_blur', severity)[0].permute(1, 2, 0).numpy()
        ref = np.stack([ndimage.gaussian_filter(image[..., c], sigma, mode='nearest', truncate=4.0)
                        for c in range(3)], -1)
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
