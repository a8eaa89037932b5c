import torch

from mmconv.engine import CPUBF16AutocastOptimWrapper


def test_forward_runs_in_bf16_and_weights_stay_fp32():
    model = torch.nn.Linear(4, 2)
    wrapper = CPUBF16AutocastOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        out = model(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().pow(2).mean())
    assert model.weight.dtype == torch.float32 and model.weight.grad is None  # zeroed after step
