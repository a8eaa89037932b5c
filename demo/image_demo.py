"""Draw a model's predictions on an image: the top classes of a classifier (mmpretrain config), the
boxes and masks of a detector (mmdet config: Faster or Mask R-CNN), chosen by the config's default
scope as mmpretrain's and mmdet's demos do.

The model runs in the library's inferencer (``ImageClassificationInferencer``, ``DetInferencer``),
its checkpoint loaded strictly, and the picture is drawn by the library's visualiser at the image's
size. Class names come from the checkpoint (what training saves), else from the config's test set.

Usage:
    python demo/image_demo.py IMG CONFIG CKPT --out-file out.png [--device cpu] [--score-thr 0.3]
    python demo/image_demo.py data/demo/coco/val/000000.png \\
        configs/demo/mask-rcnn_rednet26-w16_fpn_demo-coco.py \\
        work_dirs/demo/mask_rcnn/epoch_6.pth --out-file mask.png
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

PICTURE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')


def fail(message: str) -> None:
    """Print ``message`` as the demo's one-line error and exit with status 2, as argparse does."""
    print(f'image_demo.py: error: {message}', file=sys.stderr)
    sys.exit(2)


def mismatch_summary(error: RuntimeError) -> str:
    """mmengine's strict-loading error on one line, each list of keys cut to its first three."""
    parts = []
    for line in str(error).splitlines()[1:]:  # the first says that the keys do not match
        head, separator, keys = line.partition(' state_dict: ')
        if separator:
            keys = keys.split(', ')
            more = f', ... ({len(keys)} in all)' if len(keys) > 3 else ''
            line = f'{head}{separator}{", ".join(keys[:3])}{more}'
        if line.strip():
            parts.append(line.strip().rstrip('.'))
    return '; '.join(parts)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw the predictions of a classifier or detector '
                                     'on an image.')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='mmpretrain or mmdet config file')
    parser.add_argument('checkpoint', help='checkpoint file (loaded strictly)')
    parser.add_argument('--out-file', required=True, help=f'the picture to write ({", ".join(PICTURE_SUFFIXES)})')
    parser.add_argument('--device', default='cpu', help='device to run on (default cpu)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detectors: draw boxes scoring at least this (default 0.3)')
    parser.add_argument('--topk', type=int, default=3,
                        help='classifiers: how many of the top classes to write (default 3)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.backbone.impl=reference')
    args = parser.parse_args(argv)
    if not args.out_file.lower().endswith(PICTURE_SUFFIXES):
        parser.error(f'the output file must end in one of {", ".join(PICTURE_SUFFIXES)}, '
                     f'got {args.out_file}.')
    if not 0 <= args.score_thr <= 1:
        parser.error(f'--score-thr must lie in [0, 1], got {args.score_thr}.')
    if args.topk < 1:
        parser.error(f'--topk must be positive, got {args.topk}.')
    return args


def main(argv=None):
    args = parse_args(argv)
    import mmcv

    from mmconv.analysis.inference import draw_predictions, load_inferencer, predict, read_image
    from mmconv.engine.checkpoint import CorruptCheckpointError, UnsafeCheckpointError
    if not osp.isdir(osp.dirname(osp.abspath(args.out_file))):
        fail(f'the folder of {args.out_file} does not exist.')
    try:
        image = read_image(args.img)
        inferencer = load_inferencer(args.config, args.checkpoint, args.device, args.cfg_options)
    except (FileNotFoundError, ValueError, UnsafeCheckpointError, CorruptCheckpointError) as error:
        fail(str(error))
    except RuntimeError as error:  # mmengine's strict loading lists the keys that do not fit
        fail(f'{args.checkpoint} does not fit the model of {args.config}: '
             f'{mismatch_summary(error)}.')
    picture = draw_predictions(inferencer, image, predict(inferencer, image), topk=args.topk, score_thr=args.score_thr)
    mmcv.imwrite(picture[..., ::-1], args.out_file)
    print(f'Wrote {args.out_file}.')


if __name__ == '__main__':
    main()
