"""What the mmconv backbones share: strict pretrained loading, frozen first stages, BN in eval mode."""
from typing import List

from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmconv.models.pretrained import load_pretrained, pretrained_init_cfg


class StagedBackbone(BaseModule):
    """Base of backbones with ``frozen_stages`` and ``norm_eval``, as in mmdet's ResNet.

    Subclasses set ``self.frozen_stages`` and ``self.norm_eval`` and list, in
    :meth:`frozen_modules`, the modules that ``frozen_stages`` covers.
    """

    def init_weights(self) -> None:
        """Apply ``init_cfg``; a ``Pretrained`` entry is loaded strictly (every key and shape must
        match, else :class:`~mmconv.models.pretrained.CheckpointMismatchError` lists them)."""
        pretrained = pretrained_init_cfg(self.init_cfg)
        if pretrained is None:
            super().init_weights()
            return
        load_pretrained(self, **{k: v for k, v in pretrained.items() if k != 'type'})
        self._is_init = True

    def frozen_modules(self) -> List[nn.Module]:
        raise NotImplementedError

    def _freeze_stages(self) -> None:
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'StagedBackbone':
        """Set the training mode, then re-freeze frozen stages and, with ``norm_eval``, every BN."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
