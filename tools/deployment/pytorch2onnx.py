"""Export a classifier to ONNX and check the file against eager PyTorch with onnxruntime.

The model of an mmpretrain config (backbone, neck and head; logits out) is exported with PyTorch's
default ONNX exporter. mmconv's operators export through their reference compositions (see
``mmconv.ops.validation``), which compute what the fast paths compute. The file is then run in
onnxruntime on random input, at the export shape and, with ``--dynamic``, at another batch and
spatial size, and the largest error relative to eager is printed. A file that does not match is not
written.

Usage:
    python tools/deployment/pytorch2onnx.py configs/rednet/rednet26_64xb32_in1k.py CKPT r26.onnx
    python tools/deployment/pytorch2onnx.py CONFIG CKPT OUT.onnx --shape 224 224 --dynamic
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
from typing import List, Tuple

import torch
from mmengine.config import DictAction
from torch import nn

__all__ = ['ClassifierLogits', 'export_classifier', 'relative_max_error']

TOLERANCE = 1e-4  # largest error allowed, relative to the largest eager logit


class ClassifierLogits(nn.Module):
    """An mmpretrain classifier as ``images (B×3×H×W, normalised) → logits (B×classes)``."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(inputs, mode='tensor')


def relative_max_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """``max |got − want| / max |want|``."""
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()


def export_classifier(model: nn.Module, out_file: str, shape: Tuple[int, int], dynamic: bool,
                      opset: int = 18) -> List[Tuple[Tuple[int, ...], float]]:
    """Export ``model`` (eval mode) to ``out_file`` after checking it in onnxruntime.

    Args:
        model: an mmpretrain ``ImageClassifier``.
        out_file: where the ``.onnx`` file goes; written only once the check has passed.
        shape: (H, W) of the export input.
        dynamic: export with dynamic batch and spatial size, and check a second size too.
        opset: ONNX opset (at least 17).

    Returns:
        (input shape, relative max error) of every checked input.

    Raises:
        ValueError: the model is not a classifier, or onnxruntime disagrees with eager beyond
            :data:`TOLERANCE` (nothing is written then).
    """
    import onnxruntime as ort
    if not hasattr(model, 'extract_feat') or not getattr(model, 'with_head', False):
        raise ValueError(f'pytorch2onnx exports classifiers with a head; this config builds a '
                         f'{type(model).__name__}.')
    wrapped = ClassifierLogits(model).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(1, 3, *shape, generator=generator)]
    dynamic_shapes = None
    if dynamic:
        dims = {0: torch.export.Dim('batch', min=1), 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
        dynamic_shapes = (dims, )
        inputs.append(torch.randn(2, 3, shape[0] + 32, shape[1] + 16, generator=generator))
    out_dir = osp.dirname(osp.abspath(out_file))
    with tempfile.TemporaryDirectory(dir=out_dir) as staging:
        staged = osp.join(staging, osp.basename(out_file))
        try:
            with torch.no_grad():
                torch.onnx.export(wrapped, (inputs[0], ), staged, opset_version=opset, dynamo=True,
                                  dynamic_shapes=dynamic_shapes, input_names=['input'], output_names=['logits'],
                                  verbose=False, external_data=False)  # one file, moved into place whole
        except torch.onnx.errors.OnnxExporterError as error:
            cause = error.__cause__ or error
            raise ValueError(f'PyTorch could not export the model ({type(cause).__name__}: '
                             f'{str(cause).splitlines()[0]}); nothing was written.') from error
        session = ort.InferenceSession(staged, providers=['CPUExecutionProvider'])
        errors = []
        for x in inputs:
            with torch.no_grad():
                want = wrapped(x)
            got = torch.from_numpy(session.run(None, {'input': x.numpy()})[0])
            if got.shape != want.shape:
                raise ValueError(f'onnxruntime gives logits of shape {tuple(got.shape)} for input '
                                 f'{tuple(x.shape)} where PyTorch gives {tuple(want.shape)}; '
                                 f'nothing was written.')
            errors.append((tuple(x.shape), relative_max_error(got, want)))
            if errors[-1][1] > TOLERANCE:
                raise ValueError(f'onnxruntime differs from PyTorch by {errors[-1][1]:.2e} (relative) '
                                 f'on input {tuple(x.shape)}, above {TOLERANCE:g}; nothing was written.')
        os.replace(staged, out_file)
    return errors


def fail(message: str) -> None:
    """Print ``message`` as the tool's one-line error and exit with status 2, as argparse does."""
    print(f'pytorch2onnx.py: error: {message}', file=sys.stderr)
    sys.exit(2)


def parse_args():
    parser = argparse.ArgumentParser(description='Export a classifier to ONNX and check it with '
                                     'onnxruntime.')
    parser.add_argument('config', help='mmpretrain config file')
    parser.add_argument('checkpoint', help='checkpoint file (loaded strictly)')
    parser.add_argument('out_file', help='output .onnx file')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'),
                        help='input height and width (default 224 224)')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch and spatial size (checked at a second size)')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset, at least 17 (default 18)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.backbone.impl=reference')
    args = parser.parse_args()
    if args.opset < 17:
        parser.error(f'--opset must be at least 17, got {args.opset}.')
    if min(args.shape) < 1:
        parser.error(f'--shape must be positive, got {args.shape}.')
    if not args.out_file.endswith('.onnx'):
        parser.error(f'the output file must end in .onnx, got {args.out_file}.')
    return args


def main():
    args = parse_args()
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        fail(f'{error.name} is not installed; '
             f'pip install -r requirements/tests.txt.')
    from mmconv.analysis.inference import load_model
    from mmconv.engine.checkpoint import CorruptCheckpointError, UnsafeCheckpointError
    if not osp.isdir(osp.dirname(osp.abspath(args.out_file))):
        fail(f'the folder of {args.out_file} does not exist.')
    try:
        model, _ = load_model(args.config, args.checkpoint, cfg_options=args.cfg_options)
    except (FileNotFoundError, UnsafeCheckpointError, CorruptCheckpointError) as error:
        fail(str(error))
    except RuntimeError as error:  # mmengine's strict loading lists the keys that do not fit
        fail(f'{args.checkpoint} does not fit the model of '
             f'{args.config}: {" ".join(str(error).split())}')
    try:
        errors = export_classifier(model, args.out_file, tuple(args.shape), args.dynamic, args.opset)
    except ValueError as error:
        fail(str(error))
    for shape, error in errors:
        print(f'onnxruntime vs PyTorch on input {shape}: max error {error:.2e} (relative to the '
              f'largest logit)')
    print(f'Wrote {args.out_file}.')


if __name__ == '__main__':
    main()
