"""LoopLinear: a weight used at every step of a loop takes its gradient as one matmul, the same gradient."""

import gc
import weakref

import pytest
import torch as th
import torch.nn.functional as F

from sb3_dreamer.accel.loop_linear import LoopLinear

T, B, N = 6, 4, 8


def _loop(linear, weight: th.Tensor, bias: th.Tensor, xs: th.Tensor, h0: th.Tensor, skip_last: bool = False):
    """h_{t+1} = tanh(linear(h_t) + x_t); the loss reads every state, or all but the last one's output."""
    h, loss = h0, 0.0
    for t in range(T):
        h = th.tanh(linear(h, t, weight, bias) + xs[t])
        if not (skip_last and t == T - 1):
            loss = loss + (h.float() * th.linspace(-1, 1, N)).sum()
    return loss


def _deferred():
    """LoopLinear made at the first step, as observe makes it before its loop."""
    layer = {}

    def linear(h, t, w, b):
        if "layer" not in layer:
            layer["layer"] = LoopLinear(w, T, b)
        return layer["layer"](h, t)

    return linear


def _plain(h, t, weight, bias):
    return F.linear(h, weight, bias)


def _inputs(dtype=th.float32):
    gen = th.Generator().manual_seed(0)
    full = th.randn(N, N + 3, generator=gen, requires_grad=True)  # observe uses slices of weights
    bias = th.randn(N, generator=gen, requires_grad=True)
    xs = th.randn(T, B, N, generator=gen, requires_grad=True)
    h0 = th.randn(B, N, generator=gen, requires_grad=True)
    return full, bias, xs, h0


def _grads(linear, autocast: bool = False, skip_last: bool = False, backwards: int = 1):
    full, bias, xs, h0 = _inputs()
    with th.autocast("cpu", dtype=th.bfloat16, enabled=autocast):
        loss = _loop(linear, full[:, :N], bias, xs, h0, skip_last)
    for i in range(backwards):
        loss.backward(retain_graph=i < backwards - 1)
    return loss, [full.grad, bias.grad, xs.grad, h0.grad]


@pytest.mark.parametrize("skip_last", [False, True])
def test_same_loss_and_gradients_as_plain_linear(skip_last):
    loss, grads = _grads(_deferred(), skip_last=skip_last)
    plain_loss, plain_grads = _grads(_plain, skip_last=skip_last)
    assert th.allclose(loss, plain_loss)
    for name, a, b in zip(["weight", "bias", "x", "h0"], grads, plain_grads):
        assert th.allclose(a, b, rtol=1e-5, atol=1e-6), name
    assert grads[0][:, N:].abs().sum() == 0  # the unused part of the sliced weight


def test_backward_twice_on_a_retained_graph():
    _, grads = _grads(_deferred(), backwards=2)
    _, plain_grads = _grads(_plain, backwards=2)
    for a, b in zip(grads, plain_grads):
        assert th.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_gives_what_f_linear_gives():
    full, bias, xs, h0 = _inputs()
    with th.autocast("cpu", dtype=th.bfloat16):
        layer = LoopLinear(full[:, :N], T, bias)
        deferred, plain = layer(h0, 0), F.linear(h0, full[:, :N], bias)
    assert deferred.dtype == plain.dtype == th.bfloat16
    assert th.allclose(deferred.float(), plain.float(), rtol=1e-2, atol=1e-2)  # bf16: its bias is added apart
    # bf16 rounds differently on the two paths; both are compared with the fp32 gradients
    _, exact = _grads(_plain)
    _, grads = _grads(_deferred(), autocast=True)
    _, plain_grads = _grads(_plain, autocast=True)
    for name, a, b, ref in zip(["weight", "bias", "x", "h0"], grads, plain_grads, exact):
        assert a.dtype == b.dtype == th.float32, name
        assert (a - ref).norm() <= 1.5 * max((b - ref).norm(), 0.02 * ref.norm()), name


def test_fp16_weight_gradient_sums_the_steps_beyond_fp16_range():
    # Each step's weight gradient fits fp16 (2e4 per entry); their sum over the steps (1.2e5) does not. (Plain
    # F.linear gives inf here: autocast caches one fp16 copy of a leaf weight, whose gradient sums in fp16.)
    weight = th.full((N, N), 1e-3, requires_grad=True)
    with th.autocast("cpu", dtype=th.float16):
        linear = LoopLinear(weight, T)
        ys = [linear(x, t) for t, x in enumerate(th.full((T, B, N), 10.0))]
    sum((y.float() * 500.0).sum() for y in ys).backward()
    assert th.allclose(weight.grad, th.full((N, N), T * B * 10.0 * 500.0))


def test_plain_where_no_weight_gradient_is_recorded():
    full, bias, xs, h0 = _inputs()
    with th.no_grad():
        assert not LoopLinear(full, T).deferred
    assert not LoopLinear(full.detach(), T).deferred
    assert LoopLinear(full, T).deferred
    with th.no_grad():
        assert th.equal(LoopLinear(full[:, :N], T, bias)(h0, 0), F.linear(h0, full[:, :N], bias))


def test_an_update_leaves_nothing_of_its_graph_alive():
    """The tape keeps its steps' inputs for the weight's gradient. An input with history would close a cycle
    through the autograd graph that Python's collector cannot see, so every update's graph (its saved
    activations too) would stay in memory: ~3.7 MB per update of the classic CartPole benchmark."""
    weight, bias = th.randn(N, N, requires_grad=True), th.randn(N, requires_grad=True)
    xs, h0 = th.randn(T, B, N), th.randn(B, N)

    def update() -> weakref.ref:
        linear = _deferred()
        states = []
        h = h0
        for t in range(T):
            h = th.tanh(linear(h, t, weight, bias) + xs[t])
            states.append(h)
        sum(state.sum() for state in states).backward()
        return weakref.ref(states[2])  # a step's input that has history

    state = update()
    gc.collect()
    assert state() is None
    assert weight.grad is not None
