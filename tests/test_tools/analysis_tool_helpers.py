"""Helpers of the analysis-tool tests: tiny classifier configs on a generated class-folder set,
checkpoints of them (built, one forward in train mode, saved; no training), the tools as modules."""
import importlib.util
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO_ROOT, 'configs/demo/resnet18-w16_demo-cls.py')
NUM_VAL = 8  # two images of each of the four classes

# Narrow CIFAR-style backbones (8 base channels) and the width of their last stage.
SDNET_STEM = dict(type='SDNet', depth=18, csc_layers='stem', stem='cifar', stem_channels=8, base_channels=8,
                  out_indices=(3, ))
SDNET_ALL_NO_SHORTCUT = dict(SDNET_STEM, csc_layers='all', shortcut=False)
PLAIN = None  # the demo config's own ResNet_CIFAR (16 base channels, 128 at the last stage)


def load_tool(name: str):
    """Import ``tools/analysis_tools/<name>.py`` as a module; its ``main(argv)`` runs in process."""
    path = osp.join(REPO_ROOT, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'analysis_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_model(directory, data_root, backbone, fit_steps=0):
    """Write a config (the demo classifier with ``backbone``) and a checkpoint of it.

    With ``fit_steps``, the model is first fitted to the test images for that many Adam steps, so
    that its predictions depend on the input (and any preprocessing mistake shows in accuracy).
    """
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    directory.mkdir()
    overrides = ''
    if backbone is not None:
        width = backbone['base_channels'] * 8
        overrides = (f'model = dict(backbone=dict(_delete_=True, **{backbone!r}), '
                     f'head=dict(in_channels={width}))\n')
    config, checkpoint = directory / 'config.py', directory / 'model.pth'
    config.write_text(f'_base_ = {DEMO_CONFIG!r}\n{overrides}test_dataloader = dict(batch_size=8, '
                      f'dataset=dict(data_root={str(data_root)!r}))\n')
    cfg = Config.fromfile(str(config))
    init_default_scope('mmpretrain')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: on busy shared cores, more threads mostly wait
    try:
        _build_and_save(cfg, checkpoint, fit_steps)
    finally:
        torch.set_num_threads(threads)
    return str(config), str(checkpoint)


def _build_and_save(cfg, checkpoint, fit_steps):
    import torch
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    model.train()
    with torch.no_grad():  # sets the CSC step sizes and BatchNorm statistics
        model(torch.randn(8, 3, 32, 32), mode='tensor')
    if fit_steps:
        from mmengine.runner import Runner
        batch = next(iter(Runner.build_dataloader(cfg.test_dataloader)))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(fit_steps):
            losses = model(**model.data_preprocessor(batch, True), mode='loss')
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), checkpoint)
