"""Make mmengine's complexity counter see mmconv's operators."""
from mmengine.analysis import complexity_analysis
from mmengine.analysis import get_model_complexity_info as _mmengine_complexity

from mmconv.ops.flop_handles import FLOP_HANDLES


def install_flop_handles() -> None:
    """Add mmconv's handles to the defaults every mmengine ``FlopAnalyzer`` starts from.

    After this, ``mmengine.analysis.get_model_complexity_info`` (and the downstream
    ``get_flops.py`` tools built on it) count mmconv operators. Importing ``mmconv.models`` calls it.
    """
    import mmconv.ops  # noqa: F401  (registers every operator's handles)
    complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS.update(FLOP_HANDLES)


def get_model_complexity_info(*args, **kwargs) -> dict:
    """``mmengine.analysis.get_model_complexity_info`` with mmconv's FLOP handles installed."""
    install_flop_handles()
    return _mmengine_complexity(*args, **kwargs)
