import pytest
from mmengine.config import Config

from mmconv.datasets.data_check import check_dataset_paths


def test_missing_imagenet_names_path_and_layout(repo_root, tmp_path):
    cfg = Config.fromfile(f'{repo_root}/configs/_base_/datasets/imagenet_bs32.py')
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'imagenet')
    with pytest.raises(FileNotFoundError) as err:
        check_dataset_paths(cfg, ('train_dataloader', ))
    message = str(err.value)
    assert str(tmp_path / 'imagenet') in message
    assert '<wnid>' in message and 'train_dataloader.dataset.data_root' in message


def test_missing_coco_annotation_is_reported(repo_root, tmp_path):
    cfg = Config.fromfile(f'{repo_root}/configs/_base_/datasets/coco_detection.py')
    cfg.val_dataloader.dataset.data_root = str(tmp_path)
    with pytest.raises(FileNotFoundError, match='instances_val2017.json does not exist'):
        check_dataset_paths(cfg, ('val_dataloader', ))


def test_missing_food101_split_file(repo_root, tmp_path):
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'classes.txt').write_text('apple_pie\n')
    (tmp_path / 'images').mkdir()
    cfg = Config.fromfile(f'{repo_root}/configs/_base_/datasets/food101_bs128.py')
    cfg.train_dataloader.dataset.data_root = str(tmp_path)
    with pytest.raises(FileNotFoundError, match=r'meta/train\.txt does not exist'):
        check_dataset_paths(cfg, ('train_dataloader', ))
    (tmp_path / 'meta' / 'train.txt').write_text('apple_pie/1\n')
    check_dataset_paths(cfg, ('train_dataloader', ))
