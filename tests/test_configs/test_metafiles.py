"""The model zoo index: ``model-index.yml`` and every ``configs/<family>/metafile.yml``.

Checks what mim and mmpretrain's model search read (the ``Import`` list, then each metafile's
``Collections`` and ``Models``): every family folder is indexed and documented, every model's
``In Collection`` exists and its ``Config`` is a file of that family, every config is listed once,
and ``Metadata.Parameters`` is the parameter count of the model its config builds (within 0.5 %).
Models are built on the meta device (shapes only, no memory, no initialisation) and never run, so
the whole file takes seconds per family.
"""
import glob
import os
import os.path as osp

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import init_default_scope

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_ROOT = osp.join(REPO_ROOT, 'configs')
NOT_FAMILIES = ('_base_', 'demo')
FAMILIES = sorted(
    name for name in os.listdir(CONFIG_ROOT) if osp.isdir(osp.join(CONFIG_ROOT, name)) and name not in NOT_FAMILIES)
PARAMS_RTOL = 0.005
TASKS = ('Image Classification', 'Object Detection', 'Instance Segmentation')


def load_yaml(relpath: str):
    with open(osp.join(REPO_ROOT, relpath)) as f:
        return yaml.safe_load(f)


INDEX = load_yaml('model-index.yml')
METAFILES = {path: load_yaml(path) for path in INDEX['Import']}
MODELS = [(path, model) for path, meta in METAFILES.items() for model in meta['Models']]


def test_model_index_imports_every_family():
    expected = sorted(f'configs/{family}/metafile.yml' for family in FAMILIES)
    assert sorted(INDEX['Import']) == expected
    assert len(set(INDEX['Import'])) == len(INDEX['Import'])
    for family in FAMILIES:
        assert osp.isfile(osp.join(CONFIG_ROOT, family, 'README.md')), family


@pytest.mark.parametrize('path', list(METAFILES))
def test_metafile_schema(path):
    meta = METAFILES[path]
    family = osp.basename(osp.dirname(path))
    assert set(meta) == {'Collections', 'Models'}, path
    collections = {c['Name'] for c in meta['Collections']}
    for collection in meta['Collections']:
        assert collection['Paper']['Title'] and collection['Paper']['URL'].startswith('https://')
        assert collection['README'] == f'configs/{family}/README.md'
    for model in meta['Models']:
        name = model['Name']
        assert model['In Collection'] in collections, name
        assert model['Config'] == f'configs/{family}/{name}.py', name
        assert osp.isfile(osp.join(REPO_ROOT, model['Config'])), model['Config']
        for key in ('Parameters', 'FLOPs'):
            value = model['Metadata'][key]
            assert isinstance(value, int) and value > 0, f'{name}: Metadata.{key} = {value!r}'
        for result in model['Results'] or []:
            assert result['Task'] in TASKS, name
            assert result['Dataset'] == model['Metadata']['Training Data'], name
            assert result['Metrics'] and all(isinstance(v, (int, float)) for v in result['Metrics'].values()), name
        if 'Weights' in model:
            assert model['Weights'].startswith('https://'), name
            assert model['Converted From']['Weights'] == model['Weights'], name


def test_every_config_is_listed_once():
    names = [model['Name'] for _, model in MODELS]
    assert len(names) == len(set(names)), 'duplicate model names'
    listed = sorted(model['Config'] for _, model in MODELS)
    on_disk = sorted(
        osp.relpath(p, REPO_ROOT) for family in FAMILIES for p in glob.glob(osp.join(CONFIG_ROOT, family, '*.py')))
    assert listed == on_disk


@pytest.mark.parametrize('family', FAMILIES)
def test_readme_links_every_config(family):
    with open(osp.join(CONFIG_ROOT, family, 'README.md')) as f:
        readme = f.read()
    missing = [
        osp.basename(p) for p in glob.glob(osp.join(CONFIG_ROOT, family, '*.py'))
        if f']({osp.basename(p)})' not in readme
    ]
    assert not missing, f'configs/{family}/README.md does not link {missing}'


@pytest.fixture(scope='module')
def fast_external_bases():
    """mmengine re-reads every metafile of mmdet / mmpretrain for each ``mmdet::`` or
    ``mmpretrain::`` base (about 0.5 s a time); read each file once."""
    from mmengine.config import utils
    cache = {}
    read = utils.load

    def load(path, *args, **kwargs):
        if path not in cache:
            cache[path] = read(path, *args, **kwargs)
        return cache[path]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(utils, 'load', load)
        yield


_counts = {}


def parameter_count(config: str) -> int:
    """Parameters of the config's model, built once per distinct model on the meta device."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    key = repr(cfg.model.to_dict())
    if key not in _counts:
        scope = cfg.get('default_scope', 'mmpretrain')
        init_default_scope(scope)
        registry = ROOT_MODELS
        if scope == 'mmdet':
            from mmdet.registry import MODELS as registry
        with torch.device('meta'):
            model = registry.build(cfg.model)
        _counts[key] = sum(p.numel() for p in model.parameters())
    return _counts[key]


@pytest.mark.parametrize('model', [m for _, m in MODELS], ids=[m['Name'] for _, m in MODELS])
def test_parameters_match_the_built_model(model, fast_external_bases):
    if model['Config'].endswith('_coco.py'):
        pytest.importorskip('mmdet')
    counted = parameter_count(model['Config'])
    assert model['Metadata']['Parameters'] == pytest.approx(
        counted, rel=PARAMS_RTOL), (f'{model["Name"]}: metafile {model["Metadata"]["Parameters"]}, built {counted}')
