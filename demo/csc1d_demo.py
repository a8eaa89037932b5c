"""Denoise sines with a 1-D convolutional sparse coding layer (``CSCConv1d``).

Each signal is a sum of two sines (random frequency, phase and amplitude) plus Gaussian noise.
A ``CSCConv1d`` encodes the noisy signal as sparse codes over a dictionary of short atoms (its
weight), ``decode`` synthesises a signal from the codes, and Adam trains the dictionary so that
this reconstruction matches the clean signal. The mean squared error falls well below that of the
noisy input (the noise variance) within a few hundred steps, in seconds on a CPU.

Usage:
    python demo/csc1d_demo.py [--steps 300] [--atoms 16] [--kernel-size 17] [--noise-std 0.5]
"""
import argparse
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F

from mmconv.ops import CSCConv1d


def sines(generator: torch.Generator, batch_size: int, length: int,
          noise_std: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Clean and noisy signals, each ``batch_size × 1 × length``: two sines of 2–11 periods per
    signal, amplitudes 0.5–1, noise of standard deviation ``noise_std``."""
    time = torch.arange(length) / length
    periods = torch.randint(2, 12, (batch_size, 2, 1), generator=generator)
    phases = 2 * math.pi * torch.rand(batch_size, 2, 1, generator=generator)
    amplitudes = 0.5 + 0.5 * torch.rand(batch_size, 2, 1, generator=generator)
    clean = (amplitudes * torch.sin(2 * math.pi * periods * time + phases)).sum(1, keepdim=True)
    noisy = clean + noise_std * torch.randn(clean.shape, generator=generator)
    return clean, noisy


def train(args) -> List[float]:
    """Train the dictionary for ``args.steps`` Adam steps; print and return the mean loss of each
    interval of ``args.print_every`` steps."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    # Signed codes, as the signals are signed (SDNet's non-negative codes suit post-ReLU features).
    layer = CSCConv1d(1, args.atoms, kernel_size=args.kernel_size, non_negative=False)
    optimizer = torch.optim.Adam(layer.parameters(), lr=args.lr)
    print(f'Denoising sines (noise std {args.noise_std}: the noisy input\'s error is '
          f'{args.noise_std ** 2:.4f}) with {layer}')
    interval_losses, losses = [], []
    for step in range(1, args.steps + 1):
        clean, noisy = sines(generator, args.batch_size, args.length, args.noise_std)
        denoised = layer.decode(layer(noisy), output_size=noisy.shape[2:])
        loss = F.mse_loss(denoised, clean)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % args.print_every == 0 or step == args.steps:
            interval_losses.append(sum(losses) / len(losses))
            print(f'step {step:>4}/{args.steps}  loss {interval_losses[-1]:.4f}', flush=True)
            losses = []
    print(f'Denoised error {interval_losses[-1]:.4f}: '
          f'{args.noise_std ** 2 / interval_losses[-1]:.1f}x below the noisy input\'s.')
    return interval_losses


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a CSCConv1d dictionary to denoise sines.')
    parser.add_argument('--steps', type=int, default=300, help='Adam steps (default 300)')
    parser.add_argument('--batch-size', type=int, default=32, help='signals per step (default 32)')
    parser.add_argument('--length', type=int, default=128, help='samples per signal (default 128)')
    parser.add_argument('--atoms', type=int, default=16, help='dictionary atoms (default 16)')
    parser.add_argument('--kernel-size', type=int, default=17, help='atom length (default 17)')
    parser.add_argument('--noise-std', type=float, default=0.5, help='noise std (default 0.5)')
    parser.add_argument('--lr', type=float, default=0.01, help='Adam learning rate (default 0.01)')
    parser.add_argument('--print-every', type=int, default=50, help='steps between loss lines (default 50)')
    parser.add_argument(
        '--threads', type=int, default=1, help='intra-op threads (default 1: the tensors are too small to gain from '
        'more, and on busy cores more threads mostly wait)')
    parser.add_argument('--seed', type=int, default=0, help='seed of data and weights (default 0)')
    args = parser.parse_args(argv)
    for name in ('steps', 'batch_size', 'length', 'atoms', 'kernel_size', 'print_every', 'threads'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be positive, got {getattr(args, name)}.')
    if args.noise_std <= 0 or args.lr <= 0:
        parser.error(f'--noise-std and --lr must be positive, got {args.noise_std} and {args.lr}.')
    return args


def main(argv=None) -> List[float]:
    return train(parse_args(argv))


if __name__ == '__main__':
    main()
