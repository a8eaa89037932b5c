"""Every mmconv operator's fast path against its reference on one device, forward and backward,
fp32 and bf16 autocast: a markdown table of relative errors, exit 1 if any is out of bounds.

Needs torch (and triton for the CUDA involution kernels) only, so it runs on a GPU machine's own
stack. Errors are against the reference in fp32, relative to its largest value (of the output, and
of all the gradients together). The fast path in fp32 must agree to 1e-4; in bf16 autocast it must
be within twice (+1e-2) the error of the reference run in bf16.

Usage:
    python tools/misc/check_ops_on_device.py [--device cuda] [--size 28]
"""
import argparse
import sys
from typing import Callable, Dict, List, Tuple

import torch
from torch import nn

from mmconv.ops import SCC, CSCConv2d, CVolution, Involution, SCConv

FP32_BOUND = 1e-4
# bf16 rounds differently on each path; the fast path must be about as close to fp32 as the
# reference run in bf16 is (CSC's thresholds make both ~10 % off in its gradients).
BF16_FACTOR, BF16_SLACK = 2.0, 1e-2

OPERATORS: Dict[str, Tuple[Callable[[str], nn.Module], int]] = {  # name: (factory taking impl, channels)
    'involution7': (lambda impl: Involution(64, 7, impl=impl), 64),
    'involution7 stride 2': (lambda impl: Involution(64, 7, stride=2, impl=impl), 64),
    'cvolution7': (lambda impl: CVolution(64, 7, impl=impl), 64),
    'scc5': (lambda impl: SCC(64, 64, 5, mask_prob=0.0, impl=impl), 64),
    'scconv': (lambda impl: SCConv(64, 64, impl=impl), 64),
    'csc2': (lambda impl: CSCConv2d(64, 64, 3, impl=impl), 64),
}


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.float() - want.float()).abs().max() / want.float().abs().max().clamp_min(1e-12)).item()


def run(module: nn.Module, x: torch.Tensor, grad: torch.Tensor, dtype: str) -> List[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=dtype == 'bf16'):
        out = module(x)
    out.float().backward(grad)
    return [out.detach(), x.grad] + [p.grad for p in module.parameters() if p.grad is not None]


def errors(got: List[torch.Tensor], want: List[torch.Tensor]) -> Tuple[float, float]:
    """Relative error of the output, and of the gradients relative to the largest of them (a bias
    before a norm has a zero gradient, which each path meets only to rounding)."""
    scale = max(w.float().abs().max().item() for w in want[1:])
    return (relative_error(got[0],
                           want[0]), max(
                               (g.float() - w.float()).abs().max().item() for g, w in zip(got[1:], want[1:])) / scale)


def check(name: str, device: torch.device, size: int) -> Dict[str, Tuple[float, float]]:
    """Errors against the fp32 reference of the fast path in fp32 and bf16, and of the reference in bf16."""
    factory, channels = OPERATORS[name]
    torch.manual_seed(0)
    reference = factory('reference').to(device).train()
    fast = factory('fast').to(device).train()
    fast.load_state_dict(reference.state_dict())
    x = torch.randn(4, channels, size, size + 3, device=device)
    with torch.no_grad():
        out_shape = reference(x).shape  # CSC estimates its step size on its first training forward,
    state = reference.state_dict()  # so every run below starts from this state
    grad = torch.randn(out_shape, device=device)

    def outputs(module: nn.Module, dtype: str) -> List[torch.Tensor]:
        module.load_state_dict(state)
        module.zero_grad()
        return run(module, x, grad, dtype)

    want = outputs(reference, 'fp32')
    return {
        'fp32': errors(outputs(fast, 'fp32'), want),
        'bf16': errors(outputs(fast, 'bf16'), want),
        'reference bf16': errors(outputs(reference, 'bf16'), want)
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--size', type=int, default=28, help='input side (the width is side + 3)')
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('check_ops_on_device.py: error: no CUDA device is visible; pass --device cpu.', file=sys.stderr)
        return 2
    # fp32 means fp32 here: TF32 convs and matmuls (on by default for cuDNN) round to 1e-3 on both paths.
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    print(f'Fast path vs reference on {name} (torch {torch.__version__}), 4×64×{args.size}×{args.size + 3}, '
          'training mode, relative to the largest reference value\n')
    print('| operator | fast fp32: output / gradients | fast bf16 | reference bf16 | |')
    print('|---|---|---|---|---|')
    failures = 0
    for operator in OPERATORS:
        result = check(operator, device, args.size)
        ok = (
            max(result['fp32']) <= FP32_BOUND and all(fast <= BF16_FACTOR * ref + BF16_SLACK
                                                      for fast, ref in zip(result['bf16'], result['reference bf16'])))
        failures += not ok
        cells = ' | '.join('{:.1e} / {:.1e}'.format(*result[key]) for key in ('fp32', 'bf16', 'reference bf16'))
        print(f'| {operator} | {cells} | {"ok" if ok else "FAIL"} |')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
