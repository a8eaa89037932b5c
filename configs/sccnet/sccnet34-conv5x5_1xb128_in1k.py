# SCCNet34 with Conv5x5 projection shortcuts (a row of the SCCNet table), trained as the
# released SCC 5x5 model.
_base_ = './sccnet34-scc5x5_1xb128_in1k.py'

model = dict(backbone=dict(downsample='conv5x5'))
