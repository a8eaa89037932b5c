# Runtime for detection: mmdet's, plus the mmconv plugin and resumable random streams.
_base_ = 'mmdet::_base_/default_runtime.py'

default_scope = 'mmdet'
custom_imports = dict(imports=['mmconv.models'], allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook')]
