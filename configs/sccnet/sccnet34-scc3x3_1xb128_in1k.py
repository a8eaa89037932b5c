# SCCNet34 with SCC 3x3 projection shortcuts (a row of the SCCNet table), trained as the
# released SCC 5x5 model.
_base_ = './sccnet34-scc5x5_1xb128_in1k.py'

model = dict(backbone=dict(downsample='scc3x3'))
