"""Common image corruptions generated from clean images, in the manner of CIFAR-10-C.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019, https://arxiv.org/abs/1903.12261.

The five severity parameters of every corruption are those of the script that produced the published
CIFAR-10-C / CIFAR-100-C files (``ImageNet-C/create_c/make_cifar_c.py`` in
https://github.com/hendrycks/robustness), so they are tuned for 32x32 images. The formulas follow
that script; the implementation is torch only, so it runs on any device and needs neither
scikit-image nor OpenCV.

Randomness is reproducible and independent of call order and batching: the noise of image ``index``
under (``corruption``, ``severity``) comes from its own generator, seeded from
(``seed``, corruption name, severity, ``index``) and run on the CPU. Corrupting a dataset in any
order, batch size or device, or only part of it, gives the same pixels.

SDNet's robust-inference script sweeps four of the noises over its own, harsher grids
(:data:`SDNET_NOISE_GRID`); every function takes a ``grid`` (corruption → parameter per level) and
its levels are numbered from 1 like the severities.

Differences from the reference script: uint8 results are rounded (the published files truncate,
which shifts them by half a grey level on average), and impulse noise draws its salt/pepper mask
with torch instead of ``skimage.util.random_noise`` (same distribution: each value is replaced with
probability ``c``, by 0 or 1 with equal odds).
"""
import math
import zlib
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

# Severity 1..5 parameters from make_cifar_c.py (CIFAR-10-C / CIFAR-100-C).
SEVERITY_PARAMS: Dict[str, Tuple] = {
    'gaussian_noise': (0.04, 0.06, 0.08, 0.09, 0.10),  # std of additive N(0, c²)
    'shot_noise': (500, 250, 100, 75, 50),  # photons per unit intensity: Poisson(x·c)/c
    'impulse_noise': (0.01, 0.02, 0.03, 0.05, 0.07),  # fraction of values set to 0 or 1
    'speckle_noise': (0.06, 0.10, 0.12, 0.16, 0.20),  # std of multiplicative x·(1 + N(0, c²))
    'gaussian_blur': (0.4, 0.6, 0.7, 0.8, 1.0),  # Gaussian sigma in pixels
    # (disk radius, sigma of the anti-aliasing blur)
    'defocus_blur': ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    'contrast': (0.75, 0.5, 0.4, 0.3, 0.15),  # factor towards the per-channel mean
}
CORRUPTIONS: Tuple[str, ...] = tuple(SEVERITY_PARAMS)
SEVERITIES: Tuple[int, ...] = (1, 2, 3, 4, 5)

# SDNet's robust_inference.py (Dai et al., NeurIPS 2022): the same formulas, levels 1..10 (speckle
# 1..6) with these parameters, as numpy prints its grids.
SDNET_NOISE_GRID: Dict[str, Tuple] = {
    'gaussian_noise': tuple(round(0.02 * k, 2) for k in range(1, 11)),  # 0.02 … 0.20
    'shot_noise': tuple(60 - 6 * k for k in range(10)),  # 60, 54 … 6
    'speckle_noise': tuple(round(0.1 * k, 1) for k in range(1, 7)),  # 0.1 … 0.6
    'impulse_noise': tuple(round(0.03 * k, 2) for k in range(1, 11)),  # 0.03 … 0.30
}
GRIDS: Dict[str, Mapping[str, Tuple]] = {'cifar-c': SEVERITY_PARAMS, 'sdnet': SDNET_NOISE_GRID}


def check_corruption(corruption: str, severity: int, grid: Mapping[str, Tuple] = SEVERITY_PARAMS) -> None:
    """Raise ``ValueError`` for a corruption the grid lacks or a severity outside its levels."""
    if corruption not in grid:
        raise ValueError(f'corruption must be one of {", ".join(grid)}, got {corruption!r}.')
    if severity not in range(1, len(grid[corruption]) + 1):
        raise ValueError(f'severity must be an integer in 1..{len(grid[corruption])} for {corruption}, '
                         f'got {severity!r}.')


def stream_seed(seed: int, corruption: str, severity: int, index: int) -> int:
    """The 64-bit seed of the noise of image ``index`` under one corruption and severity.

    Built from a hash of the whole key (not from a shared stream), so every key gets an independent
    stream whatever was generated before it.
    """
    key = [int(seed) & 0xFFFFFFFF, zlib.crc32(corruption.encode()), int(severity), int(index)]
    return int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0])


def _generator(seed: int, corruption: str, severity: int, index: int) -> torch.Generator:
    return torch.Generator(device='cpu').manual_seed(stream_seed(seed, corruption, severity, index))


# Each noise maps (one image (C, H, W) in [0, 1] on the CPU, parameter, generator) to its noisy,
# unclipped version.
def _gaussian_noise(img: torch.Tensor, c: float, gen: torch.Generator) -> torch.Tensor:
    return img + c * torch.randn(img.shape, generator=gen, dtype=img.dtype)


def _shot_noise(img: torch.Tensor, c: float, gen: torch.Generator) -> torch.Tensor:
    return torch.poisson(img * c, generator=gen) / c


def _impulse_noise(img: torch.Tensor, c: float, gen: torch.Generator) -> torch.Tensor:
    hit = torch.rand(img.shape, generator=gen) < c
    salt = torch.rand(img.shape, generator=gen) < 0.5
    return torch.where(hit, salt.to(img.dtype), img)


def _speckle_noise(img: torch.Tensor, c: float, gen: torch.Generator) -> torch.Tensor:
    return img + img * c * torch.randn(img.shape, generator=gen, dtype=img.dtype)


_NOISES: Dict[str, Callable] = {
    'gaussian_noise': _gaussian_noise,
    'shot_noise': _shot_noise,
    'impulse_noise': _impulse_noise,
    'speckle_noise': _speckle_noise,
}


def _depthwise(images: torch.Tensor, kernel: torch.Tensor, pad_mode: str) -> torch.Tensor:
    """Filter every channel of ``images`` (N, C, H, W) with the 2-D ``kernel``; same size out."""
    channels = images.shape[1]
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = F.pad(images, (pw, pw, ph, ph), mode=pad_mode)
    weight = kernel.to(images).expand(channels, 1, *kernel.shape)
    return F.conv2d(padded, weight, groups=channels)


def gaussian_kernel1d(sigma: float, radius: int) -> torch.Tensor:
    """Normalised samples of exp(-x²/2σ²) at x = -radius..radius, in float64."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-x**2 / (2 * sigma**2))
    return kernel / kernel.sum()


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    # As scikit-image's ``gaussian``: kernel truncated at 4 sigma, edges extended (mode 'nearest').
    k = gaussian_kernel1d(sigma, int(4 * sigma + 0.5))
    return _depthwise(images, torch.outer(k, k), 'replicate')


def defocus_kernel(radius: float, alias_sigma: float) -> torch.Tensor:
    """The normalised disk of ``radius``, anti-aliased by a 3x3 Gaussian of ``alias_sigma``.

    Cropped to its support, which is (2·floor(radius) + 3) pixels wide.
    """
    half = math.floor(radius) + 2  # one ring of zeros around the blurred support
    grid = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((grid[:, None]**2 + grid[None, :]**2) <= radius**2).to(torch.float64)
    disk /= disk.sum()
    g = gaussian_kernel1d(alias_sigma, 1)
    blurred = F.conv2d(disk[None, None], torch.outer(g, g)[None, None], padding=1)[0, 0]
    return blurred[1:-1, 1:-1]


def _defocus_blur(images: torch.Tensor, params: Tuple[float, float]) -> torch.Tensor:
    # The reference filters with OpenCV's default border, which mirrors without repeating the edge.
    return _depthwise(images, defocus_kernel(*params), 'reflect')


def _contrast(images: torch.Tensor, c: float) -> torch.Tensor:
    means = images.mean(dim=(2, 3), keepdim=True)
    return (images - means) * c + means


def corrupt(images: torch.Tensor, corruption: str, severity: int, seed: int = 0,
            indices: Optional[Sequence[int]] = None, grid: Mapping[str, Tuple] = SEVERITY_PARAMS) -> torch.Tensor:
    """Apply one corruption at one severity to a batch of images.

    Args:
        images: (N, C, H, W) tensor, either uint8 in 0..255 or floating point in [0, 1]. The
            corruptions treat channels alike, so RGB and BGR give the same result.
        corruption: one of the grid's corruptions (:data:`CORRUPTIONS` by default).
        severity: 1 (mildest) to the grid's number of levels (5 for CIFAR-10-C's).
        seed: base seed of the noise.
        indices: the dataset index of every image, which selects its noise stream; defaults to
            ``0..N-1``. Pass the true indices to get results independent of batching.
        grid: the parameter of each level per corruption (:data:`GRIDS`).

    Returns:
        The corrupted images, clipped to the valid range, with the dtype and device of ``images``
        (uint8 results are rounded).
    """
    check_corruption(corruption, severity, grid)
    if images.dim() != 4:
        raise ValueError(f'images must be a (N, C, H, W) tensor, got shape {tuple(images.shape)}.')
    indices = range(images.shape[0]) if indices is None else indices
    if len(indices) != images.shape[0]:
        raise ValueError(f'indices must name one dataset index per image: got {len(indices)} for '
                         f'{images.shape[0]} images.')
    is_uint8 = images.dtype == torch.uint8
    x = images.float() / 255 if is_uint8 else images
    param = grid[corruption][severity - 1]
    if corruption in _NOISES:
        noise = _NOISES[corruption]
        cpu = x.detach().cpu()
        out = torch.stack([
            noise(img, param, _generator(seed, corruption, severity, index)) for img, index in zip(cpu, indices)
        ]).to(x.device)
    elif corruption == 'gaussian_blur':
        out = _gaussian_blur(x, param)
    elif corruption == 'defocus_blur':
        out = _defocus_blur(x, param)
    else:
        out = _contrast(x, param)
    out = out.clamp(0, 1)
    return (out * 255).round().to(torch.uint8) if is_uint8 else out.to(images.dtype)


def corrupt_array(images: np.ndarray, corruption: str, severity: int, seed: int = 0,
                  indices: Optional[Sequence[int]] = None) -> np.ndarray:
    """:func:`corrupt` for a uint8 (N, H, W, C) numpy array, the layout of the CIFAR-10-C files."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError('images must be a uint8 (N, H, W, C) array, got '
                         f'{images.dtype} {images.shape}.')
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return corrupt(tensor, corruption, severity, seed, indices).permute(0, 2, 3, 1).numpy()


def resolve_corruptions(names: Optional[Union[str, Sequence[str]]],
                        grid: Mapping[str, Tuple] = SEVERITY_PARAMS) -> Tuple[str, ...]:
    """Expand ``None`` or ``'all'`` to the grid's corruptions and check the names of a selection."""
    if names is None or names == 'all' or list(names) == ['all']:
        return tuple(grid)
    for name in names:
        check_corruption(name, 1, grid)
    return tuple(names)


__all__ = [
    'CORRUPTIONS', 'GRIDS', 'SDNET_NOISE_GRID', 'SEVERITIES', 'SEVERITY_PARAMS', 'check_corruption', 'corrupt',
    'corrupt_array', 'defocus_kernel', 'gaussian_kernel1d', 'resolve_corruptions', 'stream_seed'
]
