from .cpu_bf16_optim_wrapper import CPUBF16AutocastOptimWrapper

__all__ = ['CPUBF16AutocastOptimWrapper']
