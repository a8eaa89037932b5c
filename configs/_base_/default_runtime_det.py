# Runtime for detection: mmdet's, plus the mmconv plugin and resumable random streams.
_base_ = 'mmdet::_base_/default_runtime.py'

default_scope = 'mmdet'
custom_imports = dict(imports=['mmconv.models'], allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook')]
# The seeds report best-epoch results: keep the best checkpoint on the evaluator's first metric,
# and only the last three periodic ones (enough to resume) so long schedules don't fill the disk.
default_hooks = dict(checkpoint=dict(save_best='auto', max_keep_ckpts=3))
