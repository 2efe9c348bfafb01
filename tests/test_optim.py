"""``AdamW``: the fused CPU step on channels-last weights, without copies and with the values of ``foreach``."""

import copy

import pytest
import torch as th
from torch.profiler import ProfilerActivity, profile

from sb3_dreamer.accel.optim import AdamW, memory_order

CL, CF = th.channels_last, th.contiguous_format


def test_memory_order_names_the_layout_of_dense_tensors_only():
    weight = th.zeros(8, 3, 5, 5)
    assert memory_order(weight) is None  # contiguous: its own order
    assert memory_order(weight.contiguous(memory_format=CL)) == (0, 2, 3, 1)
    assert memory_order(weight.contiguous(memory_format=CL).permute(0, 2, 3, 1)) is None
    assert memory_order(weight[:, :2]) is None  # not dense
    assert memory_order(th.zeros(4)) is None


def _steps(
    optimizer_class: type, fused: bool, param_format: th.memory_format, grad_format: th.memory_format, amsgrad: bool
) -> th.Tensor:
    """The parameter after 4 AdamW steps on fixed random gradients."""
    initial = th.randn(16, 8, 5, 5, generator=th.Generator().manual_seed(0))
    param = th.nn.Parameter(initial.contiguous(memory_format=param_format))
    optimizer = optimizer_class([param], lr=1e-2, weight_decay=0.1, amsgrad=amsgrad, fused=fused, foreach=not fused)
    generator = th.Generator().manual_seed(1)
    for _ in range(4):
        param.grad = th.randn(param.shape, generator=generator).contiguous(memory_format=grad_format)
        optimizer.step()
    return param.detach()


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("param_format,grad_format", [(CL, CL), (CL, CF), (CF, CL), (CF, CF)])
def test_steps_are_torch_foreach_steps_for_every_layout(param_format, grad_format, fused, amsgrad):
    expected = _steps(th.optim.AdamW, False, CF, CF, amsgrad)
    th.testing.assert_close(_steps(AdamW, fused, param_format, grad_format, amsgrad), expected, rtol=1e-6, atol=1e-6)


def test_torch_fused_step_is_wrong_where_a_gradient_is_laid_out_unlike_its_parameter():
    """Why ``AdamW`` lays gradients out as their parameters (torch 2.13); if torch fixes it, this fails and
    the note in ``sb3_dreamer/common/optim.py`` can go."""
    expected = _steps(th.optim.AdamW, False, CF, CF, False)
    assert not th.allclose(_steps(th.optim.AdamW, True, CL, CF, False), expected, atol=1e-3)


def test_moments_loaded_in_another_layout_are_stepped_right():
    params = [th.nn.Parameter(th.randn(16, 8, 5, 5).contiguous(memory_format=fmt)) for fmt in (CF, CL)]
    optimizers = [AdamW([p], lr=1e-2, fused=True) for p in params]
    for p, optimizer in zip(params, optimizers):
        p.grad = th.ones_like(p)
        optimizer.step()
    params[1].data.copy_(params[0].detach())  # the channels-last one takes the other's values ...
    optimizers[1].load_state_dict(copy.deepcopy(optimizers[0].state_dict()))  # ... and its contiguous moments
    assert optimizers[1].state[params[1]]["exp_avg"].is_contiguous()
    grad = th.randn(16, 8, 5, 5)
    for p, optimizer in zip(params, optimizers):
        p.grad = grad.contiguous(memory_format=CL if p.is_contiguous() else CF)
        optimizer.step()
    th.testing.assert_close(params[1].detach(), params[0].detach(), rtol=1e-6, atol=1e-6)


def _copies_in_step(optimizer_class: type) -> int:
    param = th.nn.Parameter(th.randn(64, 32, 4, 4).contiguous(memory_format=CL))
    param.grad = th.randn_like(param)
    optimizer = optimizer_class([param], lr=1e-3, fused=True)
    optimizer.step()  # the state exists
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        optimizer.step()
    events = prof.key_averages(group_by_input_shape=True)
    shape = list(param.shape)
    return sum(e.count for e in events if e.key in ("aten::copy_", "aten::clone") and e.input_shapes[0] == shape)


def test_the_fused_step_copies_no_channels_last_weight():
    assert _copies_in_step(th.optim.AdamW) > 0  # what it avoids
    assert _copies_in_step(AdamW) == 0
