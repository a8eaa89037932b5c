"""End to end: ``compile`` in a config trains an mmconv classifier through tools/train.py.

mmengine compiles the model's ``train_step`` when the config sets ``compile``. The test trains the
demo classifier with a narrow RedNet-26 (involution in every block) for one epoch twice, eagerly
and compiled, from the same seed, and compares the weights: a wrong fake kernel or autograd formula
would show there. The compiled run uses the ``aot_eager`` backend (Dynamo, the operators' fake
kernels and AOTAutograd, as with Inductor, without Inductor's minutes of C++ code generation on a
small CPU); the README gives the Inductor step times.
"""
import os.path as osp

import pytest

from e2e_helpers import REPO_ROOT, max_weight_difference, run_tool

pytestmark = pytest.mark.slow

CONFIG = osp.join(REPO_ROOT, 'configs/demo/rednet26-w16_demo-cls.py')


def test_compiled_training_matches_eager(cls_data_options, tmp_path):
    checkpoints = {}
    for mode, compile_cfg in (('eager', 'None'), ('compiled', "dict(backend='aot_eager')")):
        config = tmp_path / f'{mode}.py'
        config.write_text(f"_base_ = '{CONFIG}'\ncompile = {compile_cfg}\n"
                          'train_cfg = dict(max_epochs=1)\n'
                          "optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.05, "
                          'momentum=0.9))\n')
        work_dir = tmp_path / mode
        result = run_tool(
            ['tools/train.py',
             str(config), '--work-dir',
             str(work_dir), '--cfg-options', *cls_data_options])
        log = result.stdout + result.stderr
        assert ('Model has been "compiled"' in log) == (mode == 'compiled')
        checkpoints[mode] = str(work_dir / 'epoch_1.pth')
    # 20 SGD steps agree to rounding, where a wrong gradient anywhere drifts far more (Adam is not
    # used: it turns rounding-level differences of near-zero gradients into whole steps).
    assert max_weight_difference(checkpoints['eager'], checkpoints['compiled']) < 1e-4
