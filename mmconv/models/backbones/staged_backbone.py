"""What the mmconv backbones share: freezing the first stages and keeping BN in eval mode."""
from typing import List

from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class StagedBackbone(BaseModule):
    """Base of backbones with ``frozen_stages`` and ``norm_eval``, as in mmdet's ResNet.

    Subclasses set ``self.frozen_stages`` and ``self.norm_eval`` and list, in
    :meth:`frozen_modules`, the modules that ``frozen_stages`` covers.
    """

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
