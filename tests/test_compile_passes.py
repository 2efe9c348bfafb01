"""BatchedWeightGrads: a sum of small-inner matmuls becomes one matmul of the concatenated factors, same value.
OneDnnProducts: the products with a row-major left factor run as ``onednn_linear``, the others stay."""

import collections

import torch as th
from torch.fx.experimental.proxy_tensor import make_fx

from sb3_dreamer.accel.compile_passes import (
    COPY_ROWS,
    MAX_INNER,
    WIDE_INPUT,
    BatchedWeightGrads,
    OneDnnProducts,
    update_compile_options,
)
from sb3_dreamer.common.rssm import RSSM

T, K, P, Q = 5, 4, 7, 6


def _rewritten(fn, *args: th.Tensor) -> tuple[th.fx.GraphModule, collections.Counter]:
    """``fn`` traced to ATen (with fake values, as inductor's graphs carry them), after the pass; and the
    shapes of the matmuls left."""
    module = make_fx(fn, tracing_mode="fake")(*args)
    BatchedWeightGrads()(module.graph)
    module.recompile()
    shapes = [tuple(n.meta["val"].shape) for n in module.graph.nodes if n.target == th.ops.aten.mm.default]
    return module, collections.Counter(shapes)


def _factors(inner: int = K) -> tuple[th.Tensor, th.Tensor]:
    gen = th.Generator().manual_seed(0)
    return th.randn(T, inner, P, generator=gen), th.randn(T, inner, Q, generator=gen)


def test_a_loop_weights_gradient_sum_becomes_one_matmul():
    """``sum_t g_t^T x_t`` (as autograd writes a weight's gradient) and its transposed form."""
    g, x = _factors()

    def weight_grad(g, x):
        total = th.permute(g[0], (1, 0)) @ x[0]
        for t in range(1, T):
            total = total + th.permute(g[t], (1, 0)) @ x[t]
        return total

    def transposed(g, x):
        total = th.permute(th.permute(g[0], (1, 0)) @ x[0], (1, 0))
        for t in range(1, T):
            total = total + th.permute(th.permute(g[t], (1, 0)) @ x[t], (1, 0))
        return total

    for fn, shape in ((weight_grad, (P, Q)), (transposed, (P, Q))):
        module, mms = _rewritten(fn, g, x)
        assert mms == {shape: 1}
        th.testing.assert_close(module(g, x), fn(g, x))


def test_other_terms_of_the_sum_are_kept_and_large_products_left_alone():
    g, x = _factors()
    extra = th.randn(P, Q)
    wide_g, wide_x = _factors(MAX_INNER + 1)

    def mixed(g, x, extra, wide_g, wide_x):
        total = th.permute(g[0], (1, 0)) @ x[0] + extra
        total = total + th.permute(g[1], (1, 0)) @ x[1] + th.permute(wide_g[0], (1, 0)) @ wide_x[0]
        return total + th.permute(wide_g[1], (1, 0)) @ wide_x[1] + th.permute(g[2], (1, 0)) @ x[2]

    args = (g, x, extra, wide_g, wide_x)
    module, mms = _rewritten(mixed, *args)
    assert mms == {(P, Q): 3}  # the three small products batched, the two wide ones as they were
    th.testing.assert_close(module(*args), mixed(*args))


def test_a_product_used_twice_or_elsewhere_is_not_batched_away():
    g, x = _factors()

    def reused(g, x):
        a = th.permute(g[0], (1, 0)) @ x[0]
        b = th.permute(g[1], (1, 0)) @ x[1]
        return (a + a) + b, b * 2

    module, mms = _rewritten(reused, g, x)
    assert mms == {(P, Q): 2}  # nothing to batch: one term twice, the other read elsewhere
    for got, want in zip(module(g, x), reused(g, x)):
        th.testing.assert_close(got, want)


def test_compiled_observe_gradients_equal_eager_ones():
    """The RSSM's loop (four weights used at every step) compiled with the update's options (the pass among
    them), against eager autograd (``LoopLinear``)."""
    th.manual_seed(0)
    rssm = RSSM(3, 12, deter_size=16, stoch_size=4, stoch_classes=4, hidden_size=16, norm="layer")
    embed, action, first = th.randn(6, 5, 12), th.randn(6, 5, 3), th.zeros(6, 5)
    first[3, :2] = 1

    def loss(embed, action, first):
        th.manual_seed(1)
        observed = rssm.observe(embed, action, first)
        return observed.post.deter.square().sum() + (observed.post.logits * observed.prior_logits).sum()

    grads = []
    for fn in (loss, th.compile(loss, options=update_compile_options(th.device("cpu")))):
        rssm.zero_grad()
        fn(embed, action, first).backward()
        grads.append([p.grad.clone() for p in rssm.parameters()])
    for eager, compiled in zip(*grads):
        th.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def _products(module: th.fx.GraphModule) -> collections.Counter:
    return collections.Counter(str(n.target) for n in module.graph.nodes if n.op == "call_function" and (
        n.target in (th.ops.aten.mm.default, th.ops.aten.addmm.default, th.ops.sb3_dreamer.onednn_linear.default)
    ))  # fmt: skip


def test_onednn_products_take_forward_and_input_gradients_and_leave_weight_gradients():
    """A layer's forward (``addmm`` and ``mm``) and its input's gradient move to oneDNN; the weight's gradient
    (a transposed left factor) and a product with a sliced weight (strides oneDNN runs slowly) stay."""
    gen = th.Generator().manual_seed(0)
    x, g = th.randn(9, 6, generator=gen), th.randn(9, 5, generator=gen)
    w, bias, wide = th.randn(5, 6, generator=gen), th.randn(5, generator=gen), th.randn(5, 8, generator=gen)

    def layer(x, g, w, bias, wide):
        forward = th.addmm(bias, x, th.permute(w, (1, 0)))
        no_bias = x @ th.permute(w, (1, 0))
        input_grad = g @ w
        weight_grad = th.permute(g, (1, 0)) @ x
        sliced = x @ th.permute(wide[:, :6], (1, 0))
        return forward, no_bias, input_grad, weight_grad, sliced

    args = (x, g, w, bias, wide)
    module = make_fx(layer, tracing_mode="fake")(*args)
    OneDnnProducts()(module.graph)
    module.recompile()
    assert _products(module) == {"sb3_dreamer.onednn_linear.default": 3, "aten.mm.default": 2}
    for got, want in zip(module(*args), layer(*args)):
        th.testing.assert_close(got, want)


def test_onednn_products_take_the_weight_gradients_of_wide_inputs_with_a_copy():
    """A weight's gradient ``g^T x`` with ``x`` at least ``WIDE_INPUT`` wide and at most ``COPY_ROWS`` tall moves
    to oneDNN through a row-major copy of ``g^T``; a taller one stays with MKL."""
    gen = th.Generator().manual_seed(0)
    g, x = th.randn(9, 5, generator=gen), th.randn(9, WIDE_INPUT, generator=gen)
    tall_g, tall_x = th.randn(COPY_ROWS + 1, 2, generator=gen), th.randn(COPY_ROWS + 1, WIDE_INPUT, generator=gen)

    def grads(g, x, tall_g, tall_x):
        return th.permute(g, (1, 0)) @ x, th.permute(tall_g, (1, 0)) @ tall_x

    args = (g, x, tall_g, tall_x)
    module = make_fx(grads, tracing_mode="fake")(*args)
    OneDnnProducts()(module.graph)
    module.recompile()
    assert _products(module) == {"sb3_dreamer.onednn_linear.default": 1, "aten.mm.default": 1}
    assert any(n.target == th.ops.aten.clone.default for n in module.graph.nodes)
    for got, want in zip(module(*args), grads(*args)):
        th.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_onednn_products_leave_other_dtypes_alone():
    x, w = th.randn(4, 3, dtype=th.float64), th.randn(2, 3, dtype=th.float64)
    module = make_fx(lambda x, w: x @ th.permute(w, (1, 0)), tracing_mode="fake")(x, w)
    OneDnnProducts()(module.graph)
    assert _products(module) == {"aten.mm.default": 1}


def test_compiled_mlp_with_onednn_products_equals_eager():
    """Loss and every gradient of a compiled MLP with the update's options (both passes) equal eager ones; its
    first layer's input is wide enough for its weight's gradient to go to oneDNN too."""
    th.manual_seed(0)
    net = th.nn.Sequential(
        th.nn.Linear(WIDE_INPUT, 16), th.nn.ELU(), th.nn.Linear(16, 16), th.nn.ELU(), th.nn.Linear(16, 3)
    )  # fmt: skip
    x = th.randn(32, WIDE_INPUT, requires_grad=True)

    def loss(x):
        return net(x).square().mean()

    results = []
    for fn in (loss, th.compile(loss, options=update_compile_options(th.device("cpu")))):
        value = fn(x)
        results.append([value.detach(), *th.autograd.grad(value, [x, *net.parameters()])])
    for eager, compiled in zip(*results):
        th.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
