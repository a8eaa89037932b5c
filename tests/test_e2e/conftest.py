"""Session fixtures of the end-to-end tests: the generated datasets and the options that point
the demo configs at them."""
from typing import List

import pytest

from e2e_helpers import NUM_TRAIN, NUM_VAL, run_tool


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    """The generated classification and COCO sets, written once per session."""
    root = tmp_path_factory.mktemp('demo_data')
    run_tool([
        'tools/misc/make_demo_data.py', '--out',
        str(root), '--seed', '0', '--num-train',
        str(NUM_TRAIN), '--num-val',
        str(NUM_VAL)
    ])
    return root


@pytest.fixture(scope='session')
def cls_data_options(demo_data) -> List[str]:
    """``--cfg-options`` entries pointing the demo classifier at the generated set."""
    root = demo_data / 'cls'
    return [
        f'{loader}.dataset.data_root={root}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


@pytest.fixture(scope='session')
def det_data_options(demo_data) -> List[str]:
    """``--cfg-options`` entries pointing the demo detectors at the generated COCO set."""
    root = f'{demo_data / "coco"}/'
    return [
        *(f'{loader}.dataset.data_root={root}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')),
        *(f'{evaluator}.ann_file={root}annotations/instances_val.json'
          for evaluator in ('val_evaluator', 'test_evaluator')),
    ]


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """Classification and COCO sets of a few images, for runs that are refused or train a step."""
    root = tmp_path_factory.mktemp('tiny_data')
    run_tool(['tools/misc/make_demo_data.py', '--out', str(root), '--seed', '0', '--num-train', '8', '--num-val', '4'])
    return root
