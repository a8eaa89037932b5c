"""Save feature maps of a backbone as PNG grids and, for CSC networks, decoded reconstructions.

For every image and stage, ``<image>_stage<i>_features.png`` shows the first --max-channels
channels, each min-max scaled, in a grid. When the backbone has CSC layers, the stem code and every
stage whose path from the input is a chain of CSC layers and BatchNorms (SDNet-18-all without
shortcut) are decoded back to the input space through the dictionaries, BatchNorms undone with their
running statistics (see mmconv.analysis.csc_decode), and ``<image>_reconstructions.png`` shows the
input beside them; ``reconstructions.png`` stacks all images. ``--layers 1 3 5`` also decodes the
codes of those CSC layers (numbered from 1 in execution order), as SDNet's figure shows them.

Example:
    python tools/analysis_tools/visualize_features.py CONFIG CHECKPOINT \
        data/demo/cls/val/disc/00002.png --out-dir work_dirs/features
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import DictAction
from PIL import Image

from mmconv.analysis.csc_decode import reconstruct
from mmconv.analysis.inference import load_images, load_model
from mmconv.engine.checkpoint import CorruptCheckpointError, UnsafeCheckpointError

MIN_TILE = 48  # pixels: small feature maps are enlarged (nearest) to at least this size

# Mistakes in the command line or its files: reported in one line, without a traceback.
USER_ERRORS = (FileNotFoundError, ValueError, UnsafeCheckpointError, CorruptCheckpointError)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Visualise feature maps and CSC reconstructions.')
    parser.add_argument('config', help='config file (classifier or detector)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('images', nargs='+', metavar='IMAGE', help='image files')
    parser.add_argument('--out-dir', default='work_dirs/features', help='where PNGs go')
    parser.add_argument('--stages', nargs='+', type=int, help='stage indices (default: all)')
    parser.add_argument('--layers', nargs='+', type=int, metavar='K',
                        help='also decode the codes of these CSC layers (1 = the first in execution order)')
    parser.add_argument('--max-channels', type=int, default=32, help='channels per feature grid')
    parser.add_argument('--equalize', action='store_true',
                        help='histogram-equalise reconstructions per channel (as SDNet shows them)')
    parser.add_argument('--device', default='cpu', help='device, e.g. cuda:0')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries')
    return parser.parse_args(argv)


def _scale(array: np.ndarray, axes) -> np.ndarray:
    low = array.min(axis=axes, keepdims=True)
    high = array.max(axis=axes, keepdims=True)
    return (array - low) / np.maximum(high - low, 1e-12)


def _enlarge(maps: np.ndarray) -> np.ndarray:
    """Repeat the pixels of C × H × W maps so that each is at least MIN_TILE pixels wide."""
    factor = max(1, -(-MIN_TILE // min(maps.shape[1:])))
    return maps.repeat(factor, 1).repeat(factor, 2)


def feature_grid(features: torch.Tensor, max_channels: int) -> np.ndarray:
    """A C × H × W map as a uint8 RGB grid of its first channels (viridis, each channel min-max)."""
    from matplotlib import colormaps
    maps = _enlarge(_scale(features[:max_channels].float().cpu().numpy(), (1, 2)))
    count, height, width = maps.shape
    cols = int(np.ceil(np.sqrt(count)))
    rows = -(-count // cols)
    grid = np.full((rows * (height + 1) + 1, cols * (width + 1) + 1), np.nan)  # NaN: separators
    for i, fmap in enumerate(maps):
        r, c = divmod(i, cols)
        grid[1 + r * (height + 1):1 + r * (height + 1) + height, 1 + c * (width + 1):1 + c * (width + 1) + width] = fmap
    rgb = colormaps['viridis'](np.nan_to_num(grid))[..., :3]
    rgb[np.isnan(grid)] = 1.0
    return (rgb * 255).round().astype(np.uint8)


def to_display(image: torch.Tensor, mean, std, equalize: bool) -> np.ndarray:
    """An input-space C × H × W tensor as uint8 H × W × 3: un-normalised, then min-max scaled."""
    array = image.float().cpu()
    if mean is not None:
        array = array * std.view(-1, 1, 1).cpu() + mean.view(-1, 1, 1).cpu()
    array = array.numpy().transpose(1, 2, 0)
    if array.shape[2] == 1:
        array = array.repeat(3, axis=2)
    array = (_scale(array, (0, 1, 2)) * 255).round().astype(np.uint8)
    if equalize:
        array = np.stack([_equalize(array[..., c]) for c in range(array.shape[2])], -1)
    return array


def _equalize(channel: np.ndarray) -> np.ndarray:
    histogram = np.bincount(channel.ravel(), minlength=256)
    cdf = histogram.cumsum()
    span = cdf[-1] - cdf[histogram.nonzero()[0][0]]
    if span == 0:
        return channel
    lut = np.clip(np.round((cdf - cdf[histogram.nonzero()[0][0]]) / span * 255), 0, 255)
    return lut.astype(np.uint8)[channel]


def strip(images: List[np.ndarray], titles: List[str], path: str) -> None:
    """Save images side by side with titles (matplotlib)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = len(images)
    cols = len(images[0])
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.9 * rows), squeeze=False)
    for r, row in enumerate(images):
        for c, image in enumerate(row):
            axes[r, c].imshow(image, interpolation='nearest')
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(titles[c], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def output_names(paths: Sequence[str]) -> List[str]:
    """File-name stems of the images, made unique by their position where they repeat."""
    stems = [osp.splitext(osp.basename(path))[0] for path in paths]
    return [stem if stems.count(stem) == 1 else f'{i}_{stem}' for i, stem in enumerate(stems)]


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    try:
        model, cfg = load_model(args.config, args.checkpoint, args.device, args.cfg_options)
        inputs, _ = load_images(model, cfg, args.images)
        result = reconstruct(model.backbone, inputs, args.stages, args.layers)
    except USER_ERRORS as error:
        sys.exit(f'visualize_features.py: error: {error}')
    preprocessor = model.data_preprocessor
    mean, std = getattr(preprocessor, 'mean', None), getattr(preprocessor, 'std', None)
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    rows = []
    for b, (path, stem) in enumerate(zip(args.images, output_names(args.images))):
        for name, features in result.features.items():
            out = osp.join(args.out_dir, f'{stem}_{name}_features.png')
            Image.fromarray(feature_grid(features[b], args.max_channels)).save(out)
            written.append(out)
        if result.decoded:
            row = [to_display(inputs[b], mean, std, args.equalize)]
            row += [to_display(x[b], mean, std, args.equalize) for x in result.decoded.values()]
            out = osp.join(args.out_dir, f'{stem}_reconstructions.png')
            titles = ['input'] + [f'decoded {name}' for name in result.decoded]
            strip([row], titles, out)
            written.append(out)
            rows.append(row)
    if rows:
        out = osp.join(args.out_dir, 'reconstructions.png')
        strip(rows, ['input'] + [f'decoded {name}' for name in result.decoded], out)
        written.append(out)
        for name, decoded in result.decoded.items():
            error = ((decoded - inputs).norm() / inputs.norm()).item()
            print(f'{name}: relative reconstruction error {error:.3f} (normalised input space)')
    for name, reason in result.failures.items():
        print(f'{name} not decoded: {reason}')
    print(f'{len(written)} PNG files written to {args.out_dir}')


if __name__ == '__main__':
    main()
