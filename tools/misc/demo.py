"""The embedded default that `make demo` runs: the whole OpenMMLab path on generated data.

1. ``tools/misc/make_demo_data.py`` writes a small classification set and a COCO-format
   detection/instance set under ``data/demo`` (kept if already there);
2. ``tools/train.py`` trains the demo classifier, ``tools/test.py`` evaluates its checkpoint;
3. the same for the demo Faster R-CNN and Mask R-CNN; all three on an mmconv backbone (a narrow
   RedNet-26, involution bottlenecks);
4. a table of the metrics is printed, and pictures of the detectors' boxes and masks on a few
   validation images are written (as ``demo/image_demo.py`` draws them) to
   ``work_dirs/demo/pictures/<detector>/``.

Each step's full log goes to ``work_dirs/demo/<step>.log``; the console shows progress lines only.
Runs in a few minutes on two CPU cores. The steps use one intra-op thread unless
``OMP_NUM_THREADS`` says otherwise: these models are too small to gain from more, and on a
busy machine several OpenMP threads per process slow them down many times.
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Dict, List, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CONFIG = 'configs/demo/rednet26-w16_demo-cls.py'
DET_CONFIG = 'configs/demo/faster-rcnn_rednet26-w16_fpn_demo-coco.py'
MASK_CONFIG = 'configs/demo/mask-rcnn_rednet26-w16_fpn_demo-coco.py'
# mmengine's training/validation log lines and the metric lines tools/test.py prints.
PROGRESS = re.compile(r'Epoch\((train|val|test)\)|Iter\((train|val|test)\)|^\S+/\S+: [-\d.]+$')
METRIC = re.compile(r'^(\S+/\S+): ([-\d.]+)$')
NUM_PICTURES = 3  # validation images drawn per detector


def parse_args():
    parser = argparse.ArgumentParser(description='Generate data, train, test and report.')
    parser.add_argument('--data', default='data/demo', help='where the generated sets go')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='logs and checkpoints')
    parser.add_argument('--seed', type=int, default=0, help='seed of the generated data')
    return parser.parse_args()


def step_env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


def run_step(title: str, command: List[str], log_path: str) -> str:
    """Run ``command`` from the repository root, echo its progress lines, return its output."""
    print(f'\n== {title}', flush=True)
    print(f'   $ {" ".join(command)}  (full log: {log_path})', flush=True)
    start = time.time()
    lines = []
    with open(log_path,
              'w') as log, subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True, bufsize=1, env=step_env()) as proc:
        for line in proc.stdout:
            log.write(line)
            lines.append(line)
            if PROGRESS.search(line) or line.startswith('[make_demo_data]'):
                print('   ' + line.rstrip()[-150:], flush=True)
    if proc.returncode != 0:
        print(''.join(lines[-40:]), file=sys.stderr)
        sys.exit(f'demo: "{title}" failed (exit code {proc.returncode}); see {log_path}.')
    print(f'   done in {time.time() - start:.0f} s', flush=True)
    return ''.join(lines)


def metrics_of(output: str) -> Dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in map(METRIC.match, output.splitlines()) if m}


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(REPO_ROOT, work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def write_pictures(config: str, checkpoint: str, images: List[str], out_dir: str) -> List[str]:
    """Draw the predictions of the model (``config``, ``checkpoint``) on ``images`` as
    ``demo/image_demo.py`` does, one PNG each in ``out_dir``; return their paths."""
    import mmcv

    from mmconv.analysis.inference import draw_predictions, load_inferencer, predict, read_image
    inferencer = load_inferencer(config, checkpoint)
    os.makedirs(out_dir, exist_ok=True)
    pictures = []
    for image_path in images:
        image = read_image(image_path)
        picture = osp.join(out_dir, osp.splitext(osp.basename(image_path))[0] + '.png')
        mmcv.imwrite(draw_predictions(inferencer, image, predict(inferencer, image))[..., ::-1], picture)
        pictures.append(picture)
    return pictures


def train_and_test(name: str, config: str, overrides: List[str], work_root: str) -> Tuple[Dict[str, float], str]:
    """Train and test ``config``; return its test metrics and last checkpoint."""
    work_dir = osp.join(work_root, name)
    os.makedirs(osp.join(REPO_ROOT, work_dir), exist_ok=True)
    python = sys.executable
    run_step(f'Train {name} ({config})',
             [python, 'tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *overrides],
             osp.join(REPO_ROOT, work_root, f'{name}_train.log'))
    output = run_step(f'Test {name}', [
        python, 'tools/test.py', config,
        last_checkpoint(work_dir), '--work-dir', work_dir, '--cfg-options', *overrides
    ], osp.join(REPO_ROOT, work_root, f'{name}_test.log'))
    return metrics_of(output), last_checkpoint(work_dir)


def main():
    args = parse_args()
    start = time.time()
    os.makedirs(osp.join(REPO_ROOT, args.work_dir), exist_ok=True)
    run_step('Generate the demo datasets',
             [sys.executable, 'tools/misc/make_demo_data.py', '--out', args.data, '--seed',
              str(args.seed)], osp.join(REPO_ROOT, args.work_dir, 'make_demo_data.log'))

    cls_root = osp.join(args.data, 'cls')
    cls_metrics, _ = train_and_test('classifier', CLS_CONFIG, [
        f'{loader}.dataset.data_root={cls_root}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ], args.work_dir)
    coco_root = osp.join(args.data, 'coco') + '/'
    coco_options = [
        *(f'{loader}.dataset.data_root={coco_root}'
          for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')),
        *(f'{evaluator}.ann_file={coco_root}annotations/instances_val.json'
          for evaluator in ('val_evaluator', 'test_evaluator')),
    ]
    det_metrics, det_checkpoint = train_and_test('faster_rcnn', DET_CONFIG, coco_options, args.work_dir)
    mask_metrics, mask_checkpoint = train_and_test('mask_rcnn', MASK_CONFIG, coco_options, args.work_dir)

    rows = [
        ('classifier', CLS_CONFIG, 'accuracy/top1 (%)', cls_metrics.get('accuracy/top1')),
        ('Faster R-CNN', DET_CONFIG, 'coco/bbox_mAP', det_metrics.get('coco/bbox_mAP')),
        ('Faster R-CNN', DET_CONFIG, 'coco/bbox_mAP_50', det_metrics.get('coco/bbox_mAP_50')),
        ('Mask R-CNN', MASK_CONFIG, 'coco/bbox_mAP', mask_metrics.get('coco/bbox_mAP')),
        ('Mask R-CNN', MASK_CONFIG, 'coco/segm_mAP', mask_metrics.get('coco/segm_mAP')),
    ]
    print(f'\n== Demo results (val split of {args.data}, {time.time() - start:.0f} s in all)')
    width = max(len(r[1]) for r in rows)
    print(f'   {"model":<13}{"config":<{width + 2}}{"metric":<19}value')
    for model, config, metric, value in rows:
        shown = 'missing' if value is None else f'{value:.4f}'
        print(f'   {model:<13}{config:<{width + 2}}{metric:<19}{shown}')
    if any(row[3] is None for row in rows):
        sys.exit('demo: a metric is missing from tools/test.py\'s output; see the test logs.')

    val_dir = osp.join(REPO_ROOT, coco_root, 'val')
    val_images = [osp.join(val_dir, name) for name in sorted(os.listdir(val_dir))[:NUM_PICTURES]]
    print(f'\n== Pictures of the predictions on {len(val_images)} validation images')
    for name, config, checkpoint in (('faster_rcnn', DET_CONFIG, det_checkpoint), ('mask_rcnn', MASK_CONFIG,
                                                                                   mask_checkpoint)):
        out_dir = osp.join(args.work_dir, 'pictures', name)
        write_pictures(
            osp.join(REPO_ROOT, config), osp.join(REPO_ROOT, checkpoint), val_images, osp.join(REPO_ROOT, out_dir))
        print(f'   {name:<13}{out_dir}/')


if __name__ == '__main__':
    main()
