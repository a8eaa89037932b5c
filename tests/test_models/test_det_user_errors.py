"""Errors detection users hit: image sizes the backbones do not divide, backbone checkpoints whose
keys do not match, datasets without annotations."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

pytest.importorskip('mmdet')

from mmengine.config import ConfigDict  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

import mmconv.models  # noqa: E402,F401  (registers the mmconv parts)
from mmconv.datasets.det_data_check import EmptyAnnotationsError  # noqa: E402
from mmconv.datasets.det_data_check import check_detection_annotations  # noqa: E402
from mmconv.models.pretrained import CheckpointMismatchError  # noqa: E402

NARROW_REDNET = dict(type='RedNet', depth=26, stem_channels=32, base_channels=16, out_indices=(0, 1, 2, 3))


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


# -- image sizes ---------------------------------------------------------------------------------
# Every mmconv backbone maps a side n to ceil(n / 2) at each stride-2 layer and the FPN upsamples
# to the lower level's exact size, so no size needs a message: a detector runs on any image, even
# unpadded (mmdet pads to a multiple of 32 by default anyway).
@pytest.mark.parametrize('backbone, widths', [
    (NARROW_REDNET, [64, 128, 256, 512]),
    (dict(type='CedNet', depth=26, stem_channels=32, base_channels=16, out_indices=(0, 1, 2, 3)), [64, 128, 256, 512]),
    (dict(type='SCCNet', depth=18, out_indices=(0, 1, 2, 3)), [64, 128, 256, 512]),
    (dict(type='SDNet', depth=18, out_indices=(0, 1, 2, 3)), [64, 128, 256, 512]),
    (dict(type='SCConvResNet', depth=18, out_indices=(0, 1, 2, 3)), [64, 128, 256, 512]),
], ids=lambda v: v['type'] if isinstance(v, dict) else '')
def test_backbone_and_involution_fpn_run_on_sizes_not_divisible_by_32(backbone, widths):
    model = torch.nn.Sequential(
        MODELS.build(backbone),
        MODELS.build(dict(type='InvolutionFPN', in_channels=widths, out_channels=32, num_outs=5))).eval()
    with torch.no_grad():
        for height, width in ((75, 97), (64, 50)):  # two sizes: no layer may keep the first one
            outs = model(torch.rand(1, 3, height, width))
            expected = []
            h, w = height, width
            for _ in range(2):  # stem stride 2, then max-pool stride 2
                h, w = -(-h // 2), -(-w // 2)
            for _ in range(4):
                expected.append((h, w))
                h, w = -(-h // 2), -(-w // 2)
            expected.append(((expected[-1][0] + 1) // 2, (expected[-1][1] + 1) // 2))
            assert [tuple(o.shape[2:]) for o in outs] == expected


# -- backbone checkpoints ------------------------------------------------------------------------
def classifier_checkpoint(path, backbone_cfg) -> dict:
    """An mmpretrain-style classifier checkpoint of ``backbone_cfg`` (backbone + linear head)."""
    backbone = MODELS.build(backbone_cfg)
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state.update({'head.fc.weight': torch.zeros(10, 512), 'head.fc.bias': torch.zeros(10)})
    torch.save(dict(state_dict=state, meta=dict()), path)
    return state


def pretrained(path, prefix='backbone.'):
    return dict(type='Pretrained', checkpoint=str(path), prefix=prefix)


def test_matching_classifier_checkpoint_loads_into_the_detector_backbone(tmp_path):
    state = classifier_checkpoint(tmp_path / 'cls.pth', NARROW_REDNET)
    backbone = MODELS.build(
        dict(NARROW_REDNET, frozen_stages=1, norm_eval=True, init_cfg=pretrained(tmp_path / 'cls.pth')))
    backbone.init_weights()
    loaded = backbone.state_dict()
    assert all(torch.equal(loaded[k[len('backbone.'):]], v) for k, v in state.items() if k.startswith('backbone.'))


def test_checkpoint_of_another_architecture_names_the_mismatched_keys(tmp_path):
    classifier_checkpoint(tmp_path / 'cls.pth', NARROW_REDNET)
    deeper = MODELS.build(dict(NARROW_REDNET, depth=38, init_cfg=pretrained(tmp_path / 'cls.pth')))
    with pytest.raises(CheckpointMismatchError) as info:
        deeper.init_weights()
    message = str(info.value)
    assert message.startswith(f'Checkpoint {tmp_path / "cls.pth"} does not match RedNet:')
    assert 'missing' in message and 'layer1.1.conv1.weight' in message

    other_stem = MODELS.build(dict(NARROW_REDNET, stem_kernel=7, init_cfg=pretrained(tmp_path / 'cls.pth')))
    with pytest.raises(CheckpointMismatchError, match=r'stem\.1\.conv2\.conv\.weight \(9, 4, 1, '
                       r'1\) vs \(49, 4, 1, 1\)'):
        other_stem.init_weights()


def test_checkpoint_without_the_prefix_says_which_keys_it_has(tmp_path):
    backbone = MODELS.build(NARROW_REDNET)
    torch.save(backbone.state_dict(), tmp_path / 'bare.pth')
    prefixed = MODELS.build(dict(NARROW_REDNET, init_cfg=pretrained(tmp_path / 'bare.pth')))
    with pytest.raises(CheckpointMismatchError, match="no keys under prefix 'backbone.'.*stem"):
        prefixed.init_weights()
    bare = MODELS.build(dict(NARROW_REDNET, init_cfg=pretrained(tmp_path / 'bare.pth', None)))
    bare.init_weights()


# -- datasets without annotations ---------------------------------------------------------------
def write_coco(path, annotations, names=('rectangle', 'triangle')):
    coco = dict(images=[dict(id=1, file_name='0.png', width=64, height=64)], annotations=annotations,
                categories=[dict(id=i + 1, name=n) for i, n in enumerate(names)])
    path.write_text(json.dumps(coco))


def det_cfg(tmp_path, classes=('rectangle', 'triangle'), format_only=False):
    dataset = dict(type='CocoDataset', data_root=str(tmp_path), ann_file='ann.json', metainfo=dict(classes=classes))
    return ConfigDict(
        train_dataloader=dict(dataset=dataset), val_dataloader=dict(dataset=dict(dataset, test_mode=True)),
        val_evaluator=dict(type='CocoMetric', ann_file=str(tmp_path / 'ann.json'), format_only=format_only))


BOX = dict(id=1, image_id=1, category_id=1, bbox=[4, 4, 20, 10], area=200, iscrowd=0)


def test_annotated_dataset_passes(tmp_path):
    write_coco(tmp_path / 'ann.json', [BOX])
    check_detection_annotations(det_cfg(tmp_path), ('train_dataloader', 'val_dataloader'))


def test_dataset_without_annotations_is_refused_in_one_sentence(tmp_path):
    write_coco(tmp_path / 'ann.json', [])
    with pytest.raises(EmptyAnnotationsError) as info:
        check_detection_annotations(det_cfg(tmp_path), ('train_dataloader', ))
    assert str(info.value) == (f'The train_dataloader dataset has no annotations: {tmp_path / "ann.json"} lists 1 '
                               'images and no annotations, so there is nothing to train on.')
    with pytest.raises(EmptyAnnotationsError, match='val_evaluator.format_only=True'):
        check_detection_annotations(det_cfg(tmp_path), ('val_dataloader', ))
    # Writing predictions only needs no ground truth.
    check_detection_annotations(det_cfg(tmp_path, format_only=True), ('val_dataloader', ))


def test_annotations_of_other_classes_name_both_class_lists(tmp_path):
    write_coco(tmp_path / 'ann.json', [BOX])
    with pytest.raises(EmptyAnnotationsError, match="categories 'rectangle', 'triangle' but none of 'car', 'person'"):
        check_detection_annotations(det_cfg(tmp_path, classes=('car', 'person')), ('train_dataloader', ))


def test_degenerate_boxes_do_not_count(tmp_path):
    write_coco(tmp_path / 'ann.json', [dict(BOX, bbox=[4, 4, 0.5, 10])])
    with pytest.raises(EmptyAnnotationsError, match='1 annotations but no box at least 1 px'):
        check_detection_annotations(det_cfg(tmp_path), ('train_dataloader', ))


def test_train_tool_stops_with_the_message_before_building_anything(tmp_path):
    """tools/train.py prints the one-line error, not mmengine's 'need at least one array'."""
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'train').mkdir()
    write_coco(tmp_path / 'annotations' / 'instances_train.json', [], names=('rectangle', 'triangle', 'ellipse'))
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    result = subprocess.run([
        sys.executable, 'tools/train.py', 'configs/demo/faster-rcnn_rednet26-w16_fpn_demo-coco.py', '--work-dir',
        str(tmp_path / 'work'), '--no-validate', '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}/'
    ], cwd=repo, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: The train_dataloader dataset has no annotations: {tmp_path}/annotations/'
        'instances_train.json lists 1 images and no annotations, so there is nothing to train on.')
