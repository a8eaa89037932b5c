"""Model analysis helpers that need mmengine."""
from .complexity import get_model_complexity_info, install_flop_handles

__all__ = ['get_model_complexity_info', 'install_flop_handles']
