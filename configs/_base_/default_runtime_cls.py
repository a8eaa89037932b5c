# Runtime for classification: mmpretrain's, plus the mmconv plugin and resumable random streams.
_base_ = 'mmpretrain::_base_/default_runtime.py'

default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmconv.models'], allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook')]
