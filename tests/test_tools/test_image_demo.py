"""mmpretrain's and mmdet's inferencers on mmconv configs (load_inferencer), and demo/image_demo.py:
the picture it writes, and its one-line errors."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CONFIG = osp.join(REPO_ROOT, 'configs/demo/rednet26-w16_demo-cls.py')
FASTER_CONFIG = osp.join(REPO_ROOT, 'configs/demo/faster-rcnn_rednet26-w16_fpn_demo-coco.py')
MASK_CONFIG = osp.join(REPO_ROOT, 'configs/demo/mask-rcnn_rednet26-w16_fpn_demo-coco.py')
CONFIGS = dict(cls=CLS_CONFIG, faster=FASTER_CONFIG, mask=MASK_CONFIG)
CHECKPOINT_CLASSES = ('disc', 'ring', 'stripes', 'checks')  # not the demo set's folder names

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def save_initialised(config, path, meta):
    """Build the model of ``config`` (RedNet-26 backbone, random weights) and save it."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    import mmconv.models  # noqa: F401
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(
        dict(cfg.model, data_preprocessor=cfg.get('data_preprocessor') or cfg.model.get('data_preprocessor')))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
    return str(path)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """Checkpoints of the demo RedNet-26 classifier (with class names in its meta, as training
    saves them) and the demo Faster and Mask R-CNN on RedNet-26 (without: names come from the
    config)."""
    root = tmp_path_factory.mktemp('inference')
    return dict(
        cls=save_initialised(CLS_CONFIG, root / 'cls.pth', dict(dataset_meta=dict(classes=CHECKPOINT_CLASSES))),
        faster=save_initialised(FASTER_CONFIG, root / 'faster.pth',
                                dict()), mask=save_initialised(MASK_CONFIG, root / 'mask.pth', dict()))


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    import mmcv
    root = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    paths = dict(cls=str(root / 'small.png'), det=str(root / 'det.png'))
    mmcv.imwrite(rng.integers(0, 256, (36, 44, 3), dtype=np.uint8), paths['cls'])
    mmcv.imwrite(rng.integers(0, 256, (120, 150, 3), dtype=np.uint8), paths['det'])
    return paths


def load_script(path):
    """Import the script at ``path`` (from the repository root) as a module."""
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0], osp.join(REPO_ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_classification_inferencer_matches_the_model(checkpoints, images):
    from mmpretrain.apis import ImageClassificationInferencer

    from mmconv.analysis.inference import load_images, load_inferencer, load_model, predict, read_image
    inferencer = load_inferencer(CLS_CONFIG, checkpoints['cls'])
    assert isinstance(inferencer, ImageClassificationInferencer)
    assert inferencer.classes == CHECKPOINT_CLASSES
    scores = predict(inferencer, read_image(images['cls'])).pred_score
    model, cfg = load_model(CLS_CONFIG, checkpoints['cls'])
    inputs, samples = load_images(model, cfg, [images['cls']])
    with torch.no_grad():
        expected = model(inputs, samples, mode='predict')[0].pred_score
    assert scores.shape == (4, )  # the inferencer preprocesses as the test pipeline does
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)


def test_det_inferencer_predicts_masks_with_the_config_classes(checkpoints, images):
    from mmdet.apis import DetInferencer

    from mmconv.analysis.inference import load_inferencer, predict, read_image
    inferencer = load_inferencer(MASK_CONFIG, checkpoints['mask'])
    assert isinstance(inferencer, DetInferencer)
    # Without class names in the checkpoint, the config's test set names them (mmdet: COCO's).
    assert inferencer.model.dataset_meta['classes'] == ('rectangle', 'triangle', 'ellipse')
    assert inferencer.visualizer.dataset_meta['classes'] == ('rectangle', 'triangle', 'ellipse')
    image = read_image(images['det'])
    instances = predict(inferencer, image).pred_instances
    assert len(instances) > 0  # an untrained head scores every class above the 0.05 threshold
    assert instances.masks.shape[1:] == image.shape[:2]
    assert int(instances.labels.max()) < 3


@pytest.mark.parametrize('model, extra', [('cls', ['--topk', '2']), ('faster', ['--score-thr', '0']),
                                          ('mask', ['--score-thr', '0'])])
def test_image_demo_draws_a_picture_of_the_image_size(checkpoints, images, tmp_path, model, extra):
    import mmcv
    image_path = images['cls' if model == 'cls' else 'det']
    out = tmp_path / 'out.png'
    load_script('demo/image_demo.py').main(
        [image_path, CONFIGS[model], checkpoints[model], '--out-file',
         str(out), *extra])
    picture, image = mmcv.imread(str(out)), mmcv.imread(image_path)
    assert picture.shape == image.shape
    assert (picture != image).mean() > 0.01  # labels, boxes or masks are drawn on it


def test_image_demo_refuses_bad_input_in_one_line(checkpoints, images, tmp_path, capsys):
    image_demo = load_script('demo/image_demo.py')
    out = tmp_path / 'out.png'
    missing = str(tmp_path / 'missing')
    not_an_image = tmp_path / 'notes.png'
    not_an_image.write_text('not an image')
    cases = [
        ([missing, MASK_CONFIG, checkpoints['mask']], f'Image {missing} does not exist'),
        ([str(not_an_image), MASK_CONFIG, checkpoints['mask']], 'is not an image file'),
        ([images['det'], missing, checkpoints['mask']], f'Config file {missing} does not exist'),
        ([images['det'], MASK_CONFIG, missing], f'Checkpoint {missing} does not exist'),
        ([images['det'], MASK_CONFIG, checkpoints['cls']], 'does not fit the model of'),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            image_demo.main([*args, '--out-file', str(out)])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith('image_demo.py: error: ') and message in error, error
        assert '\n' not in error and len(error) < 600, error
    assert sorted(p.name for p in tmp_path.iterdir()) == ['notes.png']  # nothing written


def test_make_demo_writes_a_picture_per_validation_image(checkpoints, images, tmp_path):
    import mmcv
    image = mmcv.imread(images['det'])
    second = str(tmp_path / 'second.png')
    mmcv.imwrite(image[:96, :80], second)
    out_dir = tmp_path / 'pictures'
    written = load_script('tools/misc/demo.py').write_pictures(MASK_CONFIG, checkpoints['mask'],
                                                               [images['det'], second], str(out_dir))
    assert written == [str(out_dir / 'det.png'), str(out_dir / 'second.png')]
    assert [mmcv.imread(path).shape for path in written] == [(120, 150, 3), (96, 80, 3)]
