"""The tools' refusals, each reproduced through the command line: one ``error:`` sentence, exit
code 2, no traceback, and nothing written in the work dir when the input is refused up front."""
import json
import os
import os.path as osp
import re
import shutil

import pytest
import torch

from mmconv.cli.work_dir_lock import LOCK_FILE, hold_work_dir_lock
from e2e_helpers import CLS_CONFIG, DET_CONFIG, data_root_options, refusal, run_tool, save_model_checkpoint

pytestmark = pytest.mark.slow

CLS_CLASSES = ('checkerboard', 'disc', 'horizontal_stripes', 'vertical_stripes')


@pytest.fixture
def cls_root(tiny_data, tmp_path):
    """A copy of the tiny classification set that a test may damage."""
    return shutil.copytree(tiny_data / 'cls', tmp_path / 'cls')


@pytest.fixture
def coco_root(tiny_data, tmp_path):
    """A copy of the tiny COCO set that a test may damage."""
    return shutil.copytree(tiny_data / 'coco', tmp_path / 'coco')


def train(work_dir, *args, config=CLS_CONFIG, root=None):
    options = data_root_options(root) if root else []
    return run_tool([
        'tools/train.py', config, '--work-dir',
        str(work_dir), *args, '--cfg-options', *options, 'train_cfg.max_epochs=1'
    ], check=False)


def evaluate(work_dir, checkpoint, *args, root=None):
    options = ['--cfg-options', *data_root_options(root)] if root else []
    return run_tool(['tools/test.py', CLS_CONFIG,
                     str(checkpoint), '--work-dir',
                     str(work_dir), *args, *options], check=False)


@pytest.mark.parametrize('config, loader, layout', [
    (CLS_CONFIG, 'train_dataloader', 'one folder per class'),
    (DET_CONFIG, 'train_dataloader', 'annotations/instances_<split>.json'),
], ids=['classifier', 'faster_rcnn'])
def test_missing_dataset_names_path_and_layout(config, loader, layout, tmp_path):
    missing = str(tmp_path / 'nowhere')
    result = run_tool([
        'tools/train.py', config, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', f'{loader}.dataset.data_root={missing}'
    ], check=False)
    message = refusal(result)
    assert missing in message and layout in message
    assert not osp.exists(tmp_path / 'work')


def test_unsafe_checkpoint_is_refused(cls_root, tmp_path):
    checkpoint = str(tmp_path / 'unsafe.pth')
    # A callable is pickled by reference and would be resolved (imported) while loading.
    torch.save(dict(state_dict={}, meta={}, hook=os.getcwd), checkpoint)
    message = refusal(evaluate(tmp_path / 'work', checkpoint, root=cls_root))
    assert f'Refusing to load checkpoint {checkpoint}' in message
    assert 'MMCONV_TRUSTED_CHECKPOINTS' in message
    assert not osp.exists(tmp_path / 'work')


# -- 1. a checkpoint of another model -------------------------------------------------------------
@pytest.fixture
def five_class_checkpoint(tmp_path):
    """The demo classifier with a 5-class head, as trained on another dataset."""
    path = tmp_path / 'five_classes.pth'
    save_model_checkpoint(CLS_CONFIG, str(path), {'model.head.num_classes': 5})
    return path


def test_evaluating_another_models_checkpoint_is_refused(cls_root, five_class_checkpoint, tmp_path):
    message = refusal(evaluate(tmp_path / 'work', five_class_checkpoint, root=cls_root))
    assert message.startswith(f'error: The evaluation checkpoint {five_class_checkpoint} does '
                              'not match ImageClassifier: 0 missing, 0 unexpected and 2 '
                              'mis-shaped keys; pass --allow-partial')
    assert 'head.fc.weight (5, 128) vs (4, 128)' in message
    assert not osp.exists(tmp_path / 'work')
    # The explicit opt-out evaluates with the matching keys only.
    allowed = evaluate(tmp_path / 'work', five_class_checkpoint, '--allow-partial', root=cls_root)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert 'accuracy/top1: ' in allowed.stdout


def test_fine_tuning_from_another_models_checkpoint_is_refused(cls_root, five_class_checkpoint, tmp_path):
    result = train(tmp_path / 'work', '--cfg-options', f'load_from={five_class_checkpoint}', root=cls_root)
    message = refusal(result)
    assert message.startswith(f'error: The load_from checkpoint {five_class_checkpoint} does '
                              'not match ImageClassifier')
    assert '--allow-partial' in message
    assert not osp.exists(tmp_path / 'work')


def test_resuming_another_models_checkpoint_is_refused(cls_root, five_class_checkpoint, tmp_path):
    message = refusal(train(tmp_path / 'work', '--resume', str(five_class_checkpoint), root=cls_root))
    assert message.startswith(f'error: The --resume checkpoint {five_class_checkpoint} does not '
                              'match ImageClassifier')
    assert not osp.exists(tmp_path / 'work')


# -- 2. one training run per work dir -------------------------------------------------------------
def test_work_dir_of_a_live_run_is_refused(cls_root, tmp_path):
    work_dir = tmp_path / 'work'
    with hold_work_dir_lock(str(work_dir)):  # this test process plays the live run
        message = refusal(train(work_dir, root=cls_root))
    assert message.startswith(f'error: Work dir {work_dir} is in use by another training run '
                              f'(pid {os.getpid()} on ')
    assert os.listdir(work_dir) == [LOCK_FILE]


def test_lock_of_a_killed_run_is_taken_over(cls_root, tmp_path):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / LOCK_FILE).write_text('pid 999999 on a crashed host')  # left by a killed run
    result = train(work_dir, '--no-validate', root=cls_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (work_dir / 'epoch_1.pth').is_file()


# -- 3, 4. COCO files -----------------------------------------------------------------------------
@pytest.mark.parametrize('damage, expected', [
    ('rename', "names classes that {ann} does not have: 'ellipse' (the file has 'Ellipse'); "
     "its categories are 'rectangle', 'triangle', 'Ellipse'"),
    ('truncate', 'annotation file {ann} is not valid JSON (line 1, column 12: Expecting value)'),
    ('empty', 'annotation file {ann} is empty'),
])
def test_unusable_coco_file_is_refused(damage, expected, coco_root, tmp_path):
    ann = coco_root / 'annotations' / 'instances_train.json'
    if damage == 'rename':
        coco = json.loads(ann.read_text())
        next(c for c in coco['categories'] if c['name'] == 'ellipse')['name'] = 'Ellipse'
        ann.write_text(json.dumps(coco))
    else:
        ann.write_text('{"images": ' if damage == 'truncate' else '')
    message = refusal(train(tmp_path / 'work', '--no-validate', config=DET_CONFIG, root=f'{coco_root}/'))
    assert message.startswith('error: The train_dataloader ')
    assert expected.format(ann=ann) in message
    assert not osp.exists(tmp_path / 'work')


# -- 5. classification splits with other class folders -------------------------------------------
def test_val_split_with_other_class_folders_is_refused(cls_root, tmp_path):
    shutil.rmtree(cls_root / 'val' / 'disc')
    message = refusal(train(tmp_path / 'work', root=cls_root))
    assert message == ("error: The val_dataloader dataset's class folders differ from the classes of the "
                       "train_dataloader dataset (it lacks 'disc'), which would give its images wrong labels "
                       '(classes are numbered by sorted folder name); give every split the same class folders.')
    assert not osp.exists(tmp_path / 'work')


def test_test_split_with_other_classes_than_the_checkpoint_is_refused(cls_root, tmp_path):
    checkpoint = tmp_path / 'four_classes.pth'
    save_model_checkpoint(CLS_CONFIG, str(checkpoint), classes=CLS_CLASSES)
    os.rename(cls_root / 'val' / 'disc', cls_root / 'val' / 'circle')
    message = refusal(evaluate(tmp_path / 'work', checkpoint, root=cls_root))
    assert "the checkpoint (it lacks 'disc'; it has 'circle' that the checkpoint lacks)" in message
    assert not osp.exists(tmp_path / 'work')


# -- 6. one sentence for each bad input -----------------------------------------------------------
@pytest.mark.parametrize(
    'args, expected', [
        (['tools/train.py', 'configs/demo/nope.py'
          ], 'error: Config file configs/demo/nope.py does not exist; check the path.'),
        (['tools/test.py', CLS_CONFIG, 'nope.pth', '--out', 'predictions.json'
          ], 'error: --out must name a .pkl file, got predictions.json.'),
        (['tools/train.py', CLS_CONFIG, '--cfg-options', 'train_cfg.max_epochs'
          ], 'error: --cfg-options entry \'train_cfg.max_epochs\' has no "="; write KEY=VALUE, e.g. '
         'train_cfg.max_epochs=12; see train.py --help.'),
        (['tools/train.py', CLS_CONFIG, '--cfg-options', 'train_cfg.max_epoch=1'
          ], 'error: --cfg-options key train_cfg.max_epoch is not in the config (did you mean '
         'train_cfg.max_epochs?); to add a key the config does not have, write '
         '+train_cfg.max_epoch=VALUE.'),
        (['tools/train.py', CLS_CONFIG, '--cfg-options', 'optim_wraper.optimizer.lr=10'
          ], 'error: --cfg-options key optim_wraper.optimizer.lr is not in the config (did you mean '
         'optim_wrapper.optimizer.lr?); to add a key the config does not have, write '
         '+optim_wraper.optimizer.lr=VALUE.'),
    ],
    ids=['missing_config', 'out_not_pkl', 'option_without_equals', 'misspelled_nested_key', 'misspelled_top_level_key'])
def test_bad_command_line_is_one_sentence(args, expected, tmp_path):
    result = run_tool([*args, '--work-dir', str(tmp_path / 'work')], check=False)
    assert refusal(result) == expected
    assert not osp.exists(tmp_path / 'work')


def test_resuming_a_missing_checkpoint_is_one_sentence(cls_root, tmp_path):
    message = refusal(train(tmp_path / 'work', '--resume', 'nope.pth', root=cls_root))
    assert message == 'error: Checkpoint nope.pth does not exist; check the path.'
    assert not osp.exists(tmp_path / 'work')


def test_zero_byte_checkpoint_is_named_empty(cls_root, tmp_path):
    checkpoint = tmp_path / 'empty.pth'
    checkpoint.touch()
    message = refusal(evaluate(tmp_path / 'work', checkpoint, root=cls_root))
    assert message == (f'error: Checkpoint {checkpoint} is empty (0 bytes), perhaps an '
                       'interrupted copy or download: pick another file.')
    assert not osp.exists(tmp_path / 'work')


@pytest.mark.skipif(torch.cuda.is_available(), reason='--amp uses CUDA where it is available')
def test_amp_without_cuda_trains_in_bf16_autocast(cls_root, tmp_path):
    result = train(tmp_path / 'work', '--amp', '--no-validate', root=cls_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "type='CPUBF16AutocastOptimWrapper'" in result.stdout  # the config the run logs
    assert re.search(r'Epoch\(train\) \[1\]\[1/1\].*loss: \d', result.stdout)
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()


def test_corrupt_image_is_named(cls_root, tmp_path):
    image = sorted((cls_root / 'train' / 'disc').iterdir())[0]
    image.write_bytes(b'not a png')
    # Found while training, it stops the run in one sentence ...
    message = refusal(train(tmp_path / 'mid_run', '--no-validate', root=cls_root))
    assert message == (f'error: image {image} cannot be decoded, which stopped training; replace '
                       'or remove it (--check-images decodes every image before training).')
    # ... and --check-images finds it before any work.
    message = refusal(train(tmp_path / 'work', '--check-images', root=cls_root))
    assert message == (f'error: 1 of the 12 images cannot be decoded: {str(image)!r}; replace '
                       'or remove them.')
    assert not osp.exists(tmp_path / 'work')
