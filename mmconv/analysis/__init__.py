"""Measuring mmconv models: complexity, memory, features, robustness; and building them from configs."""
from .complexity import count_config, flop_analyzer, get_model_complexity_info

__all__ = ['count_config', 'flop_analyzer', 'get_model_complexity_info']
