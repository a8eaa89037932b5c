"""Generate the small synthetic datasets that `make demo` and the end-to-end tests train on.

Two sets are written under ``--out``, both determined by ``--seed`` alone:

* ``cls/{train,val}/<class>/<index>.png``: 32x32 images of four classes (horizontal stripes,
  vertical stripes, a disc, a checkerboard) in random colours, sizes and phases, with pixel noise.
  Every class is unchanged by a horizontal flip, so flip augmentation keeps labels valid.
* ``coco/{train,val}/<index>.png`` and ``coco/annotations/instances_{train,val}.json``: 128x128
  textured images with one to four non-overlapping rectangles, triangles and ellipses, each
  annotated in COCO format with a box and a polygon mask.

A set that already exists is kept unless ``--force`` is given. Each set is written to a temporary
folder next to its destination and renamed into place when complete, so an interrupted run never
leaves a half-written dataset behind.

Usage:
    python tools/misc/make_demo_data.py --out data/demo --seed 0 --num-train 320 --num-val 80
"""
import argparse
import json
import math
import os
import os.path as osp
import shutil
import sys
import tempfile
from typing import Callable, Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

CLS_CLASSES = ('horizontal_stripes', 'vertical_stripes', 'disc', 'checkerboard')
CLS_SIZE = 32
DET_CLASSES = ('rectangle', 'triangle', 'ellipse')
DET_SIZE = 128
SPLITS = ('train', 'val')
# Each (set, split) draws from its own stream: np.random.default_rng([seed, set id, split id]).
SET_IDS = dict(cls=0, coco=1)
# Bumped whenever the images a seed produces change, so stale sets are reported.
GENERATOR_VERSION = 1


def parse_args():
    parser = argparse.ArgumentParser(description='Generate the synthetic demo datasets.')
    parser.add_argument('--out', default='data/demo', help='folder that receives cls/ and coco/')
    parser.add_argument('--seed', type=int, default=0, help='seed of everything generated')
    parser.add_argument('--num-train', type=int, default=320,
                        help='images in each train split (classification: spread evenly over the classes)')
    parser.add_argument('--num-val', type=int, default=80, help='images in each val split')
    parser.add_argument('--force', action='store_true', help='regenerate sets that already exist')
    args = parser.parse_args()
    for name in ('num_train', 'num_val'):
        if getattr(args, name) < len(CLS_CLASSES):
            parser.error(f'--{name.replace("_", "-")} must be at least {len(CLS_CLASSES)} '
                         '(one image per classification class).')
    return args


def _distinct_colours(rng: np.random.Generator, count: int, min_distance: float = 120.0):
    """``count`` RGB colours whose pairwise L1 distances are at least ``min_distance``."""
    while True:
        colours = rng.integers(0, 256, size=(count, 3))
        distances = np.abs(colours[:, None] - colours[None]).sum(-1)
        if count == 1 or distances[np.triu_indices(count, 1)].min() >= min_distance:
            return colours


def _add_noise(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, size=image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _cls_pattern(rng: np.random.Generator, label: int) -> np.ndarray:
    """Boolean foreground mask of one classification image."""
    ys, xs = np.mgrid[0:CLS_SIZE, 0:CLS_SIZE]
    name = CLS_CLASSES[label]
    if name in ('horizontal_stripes', 'vertical_stripes'):
        period = rng.integers(4, 10)
        coord = ys if name == 'horizontal_stripes' else xs
        return (coord + rng.integers(0, period)) % period < period / 2
    if name == 'disc':
        radius = rng.uniform(6, 12)
        cy, cx = rng.uniform(radius, CLS_SIZE - radius, size=2)
        return (ys - cy)**2 + (xs - cx)**2 <= radius**2
    cell = rng.integers(3, 9)
    oy, ox = rng.integers(0, cell, size=2)
    return ((ys + oy) // cell + (xs + ox) // cell) % 2 == 0


def write_cls_split(root: str, split: str, num_images: int, rng: np.random.Generator) -> None:
    for name in CLS_CLASSES:
        os.makedirs(osp.join(root, split, name))
    for index in range(num_images):
        label = index % len(CLS_CLASSES)
        foreground, background = _distinct_colours(rng, 2)
        mask = _cls_pattern(rng, label)
        image = np.where(mask[..., None], foreground, background).astype(np.uint8)
        image = _add_noise(rng, image, sigma=12.0)
        path = osp.join(root, split, CLS_CLASSES[label], f'{index:05d}.png')
        Image.fromarray(image).save(path)


def _textured_background(rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour field plus fine noise, so objects sit on texture, not flat colour."""
    coarse = rng.integers(40, 216, size=(4, 4, 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((DET_SIZE, DET_SIZE), Image.Resampling.BICUBIC))
    return _add_noise(rng, field, sigma=10.0)


def _rectangle(rng, x0, y0, x1, y1) -> List[Tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _triangle(rng, x0, y0, x1, y1) -> List[Tuple[float, float]]:
    apex_x = x0 + rng.uniform(0.2, 0.8) * (x1 - x0)
    if rng.random() < 0.5:  # pointing up or down
        return [(apex_x, y0), (x1, y1), (x0, y1)]
    return [(x0, y0), (x1, y0), (apex_x, y1)]


def _ellipse(rng, x0, y0, x1, y1, num_points: int = 32) -> List[Tuple[float, float]]:
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    angles = np.linspace(0, 2 * math.pi, num_points, endpoint=False)
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


SHAPES: Dict[str, Callable] = dict(rectangle=_rectangle, triangle=_triangle, ellipse=_ellipse)


def _polygon_area(points: List[Tuple[float, float]]) -> float:
    xs, ys = np.array(points).T
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2)


def _place_boxes(rng: np.random.Generator, count: int) -> List[Tuple[int, int, int, int]]:
    """Up to ``count`` boxes of side 20-56 px inside the image, at least 4 px apart."""
    boxes: List[Tuple[int, int, int, int]] = []
    for _ in range(20 * count):
        if len(boxes) == count:
            break
        w, h = rng.integers(20, 57, size=2)
        x0, y0 = rng.integers(2, DET_SIZE - 2 - w), rng.integers(2, DET_SIZE - 2 - h)
        box = (int(x0), int(y0), int(x0 + w), int(y0 + h))
        if all(box[0] > b[2] + 4 or b[0] > box[2] + 4 or box[1] > b[3] + 4 or b[1] > box[3] + 4 for b in boxes):
            boxes.append(box)
    return boxes


def write_coco_split(root: str, split: str, num_images: int, rng: np.random.Generator) -> None:
    os.makedirs(osp.join(root, split))
    images, annotations = [], []
    for index in range(num_images):
        image = _textured_background(rng)
        canvas = Image.fromarray(image)
        draw = ImageDraw.Draw(canvas)
        for x0, y0, x1, y1 in _place_boxes(rng, int(rng.integers(1, 5))):
            label = int(rng.integers(0, len(DET_CLASSES)))
            points = SHAPES[DET_CLASSES[label]](rng, x0, y0, x1, y1)
            patch_mean = image[y0:y1, x0:x1].reshape(-1, 3).mean(0)
            colour = _distinct_colours(rng, 1)[0]
            while np.abs(colour - patch_mean).sum() < 150:  # keep the object visible
                colour = _distinct_colours(rng, 1)[0]
            draw.polygon(points, fill=tuple(int(c) for c in colour))
            xs, ys = np.array(points).T
            annotations.append(
                dict(
                    id=len(annotations) + 1, image_id=index + 1, category_id=label + 1,
                    bbox=[round(float(v), 2) for v in (xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min())],
                    area=round(_polygon_area(points),
                               2), iscrowd=0, segmentation=[[round(float(v), 2) for point in points for v in point]]))
        file_name = f'{index:05d}.png'
        Image.fromarray(_add_noise(rng, np.asarray(canvas), sigma=6.0)).save(osp.join(root, split, file_name))
        images.append(dict(id=index + 1, file_name=file_name, width=DET_SIZE, height=DET_SIZE))
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(DET_CLASSES)]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def _write_atomically(dest: str, write: Callable[[str], None], force: bool) -> None:
    """Run ``write(tmp_dir)`` and rename ``tmp_dir`` to ``dest`` once it has finished."""
    parent = osp.dirname(osp.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(dest)}.partial-', dir=parent)
    try:
        write(tmp)
        if osp.exists(dest) and force:
            old = tempfile.mkdtemp(prefix=f'.{osp.basename(dest)}.old-', dir=parent)
            os.rename(dest, osp.join(old, 'set'))
            os.rename(tmp, dest)
            shutil.rmtree(old)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def make_set(out: str, name: str, write_split: Callable, params: dict, force: bool) -> None:
    dest = osp.join(out, name)
    meta_path = osp.join(dest, 'meta.json')
    if osp.exists(dest) and not force:
        try:
            with open(meta_path) as f:
                existing = json.load(f)
        except (OSError, ValueError):
            existing = None
        note = '' if existing == params else (
            f' (it was made with {existing}, not {params}; pass --force to regenerate it)')
        print(f'[make_demo_data] {dest} exists, kept{note}.')
        return

    def write(tmp: str) -> None:
        for split_index, split in enumerate(SPLITS):
            rng = np.random.default_rng([params['seed'], SET_IDS[name], split_index])
            write_split(tmp, split, params[f'num_{split}'], rng)
        with open(osp.join(tmp, 'meta.json'), 'w') as f:
            json.dump(params, f)

    print(f'[make_demo_data] Writing {dest} ({params["num_train"]} train / '
          f'{params["num_val"]} val images)...', flush=True)
    _write_atomically(dest, write, force)


def main():
    args = parse_args()
    params = dict(seed=args.seed, num_train=args.num_train, num_val=args.num_val, version=GENERATOR_VERSION)
    make_set(args.out, 'cls', write_cls_split, params, args.force)
    make_set(args.out, 'coco', write_coco_split, params, args.force)
    print(f'[make_demo_data] Done: {osp.join(args.out, "cls")}, {osp.join(args.out, "coco")}.')


if __name__ == '__main__':
    sys.exit(main())
