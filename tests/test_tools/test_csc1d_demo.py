"""demo/csc1d_demo.py, the README's 1-D example: with tiny settings, its loss still falls below the
noisy input's error."""
import importlib.util
import os.path as osp
import re

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_denoising_loss_falls(capsys):
    spec = importlib.util.spec_from_file_location('csc1d_demo', osp.join(REPO_ROOT, 'demo/csc1d_demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    threads = torch.get_num_threads()
    try:  # the demo runs on one thread
        losses = demo.main(['--steps', '60', '--batch-size', '8', '--length', '64', '--print-every', '15'])
    finally:
        torch.set_num_threads(threads)
    printed = [float(loss) for loss in re.findall(r'loss (\S+)', capsys.readouterr().out)]
    assert printed == [round(loss, 4) for loss in losses] and len(losses) == 4
    assert losses[-1] < 0.7 * losses[0]
    assert losses[-1] < 0.5 * 0.5**2  # half the noisy input's error (noise std 0.5)
