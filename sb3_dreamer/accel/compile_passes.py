"""Two ``torch.compile`` graph passes for the update: a loop weight's gradient as one matmul
(``BatchedWeightGrads``), and the products by oneDNN on a CPU (``OneDnnProducts``).

Under ``torch.compile`` the backward is traced, so ``LoopLinear``'s deferred gradient (an eager-mode device)
does not apply: the traced backward computes, per weight and step, ``g_t^T x_t`` with ``K`` = batch rows (16
at the ``atari`` size) and adds it into a running sum. Inductor turns each add into ``addmm(acc, ...)`` into a
fresh buffer, which copies the sum first: for the GRU's ``(1800, 1200)`` weight over 50 steps, 49 copies and
49 small matmuls, ~30 ms per update on a 2-core CPU.

``BatchedWeightGrads`` rewrites such a sum, ``sum_t A_t @ B_t`` with the same ``(P, Q)`` output, as
``cat(A_t, 1) @ cat(B_t, 0)``: the same products, one matmul (the order of the float additions differs). It
runs after AOTAutograd and before inductor's own passes (``post_grad_custom_pre_pass``), on every graph of the
compiled function, and leaves alone what does not match.

``OneDnnProducts`` runs after inductor's own passes (``post_grad_custom_post_pass``). PyTorch multiplies fp32
matrices on a CPU with MKL's ``sgemm``; oneDNN (which runs the convolutions) has its own fp32 inner product,
which was 10-45 % faster on a 2-core AMD EPYC (Zen 4) CPU at the update's shapes. The pass moves every product
whose left factor is row-major (each layer's forward, each input's gradient) to it; a weight's gradient
``g^T x`` needs a row-major copy of ``g^T`` there, and stays with MKL unless ``x`` is wide enough for the copy
to pay (``WIDE_INPUT``). The same products, summed in another order.
"""

import platform
from typing import Any, NamedTuple

import torch as th
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files
from torch.fx import Graph, Node

aten = th.ops.aten

# A product is batched when its inner dimension is at most this (a loop step's batch rows): above it a
# matmul of its own is already efficient, and the concatenated copy would cost more than it saves.
MAX_INNER = 64

# A weight's gradient ``g^T x`` goes to oneDNN, with a row-major copy of ``g^T``, when ``x`` has at least
# WIDE_INPUT columns and at most COPY_ROWS rows: there the copy costs less than oneDNN saves (2-core AMD EPYC,
# alone: the decoder's (1536, 800) @ (800, 4800) 58-61 against 71-84 ms, the encoder's last layer's
# (384, 3200) @ (3200, 3072) 39-41 against 46-57, the GRU's (1800, 800) @ (800, 1200) 21 against 26; at 400-600
# columns or 12,000 rows MKL was as fast or faster).
WIDE_INPUT = 1200
COPY_ROWS = 4096


def _val(node: object) -> th.Tensor | None:
    """The fake tensor a traced node carries (shape, dtype), if any."""
    val = node.meta.get("val") if isinstance(node, Node) else None
    return val if isinstance(val, th.Tensor) else None


def _fake(arg: Any) -> Any:
    return _val(arg) if isinstance(arg, Node) else arg


def _call(graph: Graph, target: Any, *args: Any, **kwargs: Any) -> Node:
    """A new node ``target(*args, **kwargs)`` that carries its fake value, as traced nodes do."""
    node = graph.call_function(target, args, kwargs)
    vals = [[_fake(x) for x in a] if isinstance(a, list) else _fake(a) for a in args]
    tensors = [x for v in vals for x in (v if isinstance(v, list) else [v]) if isinstance(x, th.Tensor)]
    with tensors[0].fake_mode:  # type: ignore[attr-defined]  # a FakeTensor's
        node.meta["val"] = target(*vals, **kwargs)
    return node


def _transposed(node: Node) -> Node | None:
    """The 2-D tensor that ``node`` is the transpose of, if it is one."""
    if node.target == aten.permute.default and list(node.args[1]) == [1, 0]:  # type: ignore[arg-type]
        return node.args[0]  # type: ignore[return-value]
    return None


class _Product(NamedTuple):
    """A term ``a @ b`` of a sum (``transposed``: the term is ``(a @ b)^T``), and what batches it with others."""

    a: Node
    b: Node
    transposed: bool
    key: tuple


def _small_product(node: Node) -> _Product | None:
    """``node`` as a matmul (or its transpose) with a small inner dimension that nothing else reads."""
    transposed = False
    inner = _transposed(node)
    if inner is not None and inner.target == aten.mm.default and len(inner.users) == 1:
        node, transposed = inner, True
    if node.target != aten.mm.default or len(node.users) != 1:
        return None
    a, b = node.args
    a_val, b_val = _val(a), _val(b)
    if a_val is None or b_val is None or a_val.dim() != 2 or a_val.shape[1] > MAX_INNER:
        return None
    key = (transposed, a_val.shape[0], b_val.shape[1], a_val.dtype, b_val.dtype, a_val.device)
    return _Product(a, b, transposed, key)  # type: ignore[arg-type]


def _sum_terms(root: Node) -> list[object]:
    """The terms of the tree of ``add`` nodes under ``root``; an inner ``add`` with another user is a term."""
    terms: list[object] = []
    stack = list(root.args)
    while stack:
        node = stack.pop()
        if isinstance(node, Node) and _is_plain_add(node) and len(node.users) == 1:
            stack.extend(node.args)
        else:
            terms.append(node)
    return terms


def _is_plain_add(node: Node) -> bool:
    return node.target == aten.add.Tensor and len(node.args) == 2 and not node.kwargs


def _concat(graph: Graph, parts: list[Node], dim: int) -> Node:
    """``cat(parts, dim)``; for transposed 2-D parts, the transpose of the other axis' cat (no copy of a transpose)."""
    inner = [_transposed(p) for p in parts]
    if all(x is not None for x in inner):
        return _call(graph, aten.permute.default, _call(graph, aten.cat.default, inner, 1 - dim), [1, 0])
    return _call(graph, aten.cat.default, parts, dim)


def _batch_sum(graph: Graph, root: Node) -> bool:
    """Rewrite the sum under ``root`` when two or more of its terms are small products of one kind."""
    if not _is_plain_add(root) or any(_is_plain_add(user) for user in root.users) or _val(root) is None:
        return False  # not the top of a sum
    terms = _sum_terms(root)
    groups: dict[tuple, list[tuple[Node, _Product]]] = {}
    for term in terms:
        product = _small_product(term) if isinstance(term, Node) and terms.count(term) == 1 else None
        if isinstance(term, Node) and product is not None:
            groups.setdefault(product.key, []).append((term, product))
    groups = {key: group for key, group in groups.items() if len(group) >= 2}
    if not groups:
        return False
    batched = {term for group in groups.values() for term, _ in group}
    with graph.inserting_before(root):
        total: Node | None = None
        for group in groups.values():
            a = _concat(graph, [product.a for _, product in group], 1)
            b = _concat(graph, [product.b for _, product in group], 0)
            node = _call(graph, aten.mm.default, a, b)
            if group[0][1].transposed:
                node = _call(graph, aten.permute.default, node, [1, 0])
            total = node if total is None else _call(graph, aten.add.Tensor, total, node)
        for term in terms:
            if term not in batched:
                total = _call(graph, aten.add.Tensor, total, term)
    root.replace_all_uses_with(total)  # type: ignore[arg-type]
    return True


class BatchedWeightGrads(CustomGraphPass):
    """For ``torch.compile(options={"post_grad_custom_pre_pass": BatchedWeightGrads()})``: every sum of two or
    more matmuls ``A_t @ B_t`` of one output shape and inner dimension <= ``MAX_INNER`` becomes one matmul of
    the concatenated factors (also where the terms are transposed products)."""

    def __call__(self, graph: Graph) -> None:
        roots = [node for node in graph.nodes if node.target == aten.add.Tensor]
        rewritten = [_batch_sum(graph, root) for root in reversed(roots)]  # the last first: a sum's top
        if any(rewritten):
            graph.eliminate_dead_code()

    def uuid(self) -> bytes:
        return get_hash_for_files((__file__,))


@th.library.custom_op("sb3_dreamer::onednn_linear", mutates_args=())
def onednn_linear(x: th.Tensor, weight: th.Tensor, bias: th.Tensor | None) -> th.Tensor:
    """``x @ weight.T + bias`` by oneDNN's fp32 inner product (CPU), not MKL's ``sgemm`` as ``F.linear``.

    :param x: (N, in), contiguous. :param weight: (out, in), contiguous or the transpose of a contiguous
        (in, out); other strides run oneDNN's reference kernel. :param bias: (out,) or None.
    :return: (N, out).
    """
    return th.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@onednn_linear.register_fake
def _(x: th.Tensor, weight: th.Tensor, bias: th.Tensor | None) -> th.Tensor:
    return x.new_empty(x.shape[0], weight.shape[0])


def _onednn_product(graph: Graph, node: Node) -> bool:
    """Rewrite ``mm(a, b)`` or ``addmm(bias, a, b)`` (fp32 on a CPU, ``a`` row-major, ``b`` dense in either
    order, ``bias`` a row) as ``onednn_linear(a, b^T, bias)``; a ``b`` that is a transposed weight is passed as
    that weight. A wide weight's gradient (``_wide_weight_grad``) passes a row-major copy of ``a``."""
    if node.target == aten.mm.default and len(node.args) == 2 and not node.kwargs:
        bias, a, b = None, *node.args
    elif node.target == aten.addmm.default and len(node.args) == 3 and not node.kwargs:
        bias, a, b = node.args
        bias_val = _val(bias)
        if bias_val is None or bias_val.dim() != 1:
            return False  # an accumulation (beta * acc), not a bias
    else:
        return False
    a_val, b_val, out = _val(a), _val(b), _val(node)
    if a_val is None or b_val is None or out is None or out.device.type != "cpu" or out.dtype != th.float32:
        return False
    if a_val.dim() != 2 or b_val.dim() != 2 or not (b_val.is_contiguous() or b_val.t().is_contiguous()):
        return False  # a slice of a wider weight: oneDNN's reference kernel, ~100x slower
    copy = not a_val.is_contiguous()
    if copy and not _wide_weight_grad(a_val, b_val):
        return False  # a transposed left factor (a weight's gradient) stays with MKL, which reads it in place
    with graph.inserting_before(node):
        if copy:
            a = _call(graph, aten.clone.default, a, memory_format=th.contiguous_format)
        weight = _transposed(b) or _call(graph, aten.permute.default, b, [1, 0])  # type: ignore[arg-type]
        new = _call(graph, th.ops.sb3_dreamer.onednn_linear.default, a, weight, bias)
    node.replace_all_uses_with(new)
    graph.erase_node(node)
    return True


def _wide_weight_grad(a: th.Tensor, b: th.Tensor) -> bool:
    """Whether ``a @ b`` is a weight's gradient ``g^T x`` (``a`` the transpose of a row-major ``g``) that
    oneDNN computes faster than MKL even with a row-major copy of ``a``: ``x`` contiguous, wide, not tall."""
    return a.t().is_contiguous() and b.is_contiguous() and b.shape[1] >= WIDE_INPUT and b.shape[0] <= COPY_ROWS


class OneDnnProducts(CustomGraphPass):
    """For ``torch.compile(options={"post_grad_custom_post_pass": OneDnnProducts()})`` on a CPU: the fp32
    matmuls whose left factor is row-major (every layer's forward, every input's gradient) by oneDNN's inner
    product (``onednn_linear``) instead of MKL's ``sgemm``. The weights' gradients (a transposed left factor)
    stay with MKL, which reads it in place where oneDNN needs a copy, except those of wide inputs
    (``WIDE_INPUT`` columns or more, ``COPY_ROWS`` rows or fewer), where the copy pays.

    On a 2-core AMD EPYC (Zen 4) CPU, alone: the critic's ``(12000, 400) @ (400, 400)`` 18.3 against 25.8 ms,
    the observe loop's GRU ``(16, 1200) @ (1200, 1800)`` 0.46 against 0.62 ms forward, 0.35 against 0.66 ms
    for its input's gradient.
    """

    def __call__(self, graph: Graph) -> None:
        rewritten = [_onednn_product(graph, node) for node in list(graph.nodes)]
        if any(rewritten):
            graph.eliminate_dead_code()  # the transposes that only fed the products

    def uuid(self) -> bytes:
        return get_hash_for_files((__file__,))


def _onednn_on_x86() -> bool:
    """Whether this CPU is an x86 one with PyTorch's oneDNN: where ``OneDnnProducts`` was measured."""
    return th.backends.mkldnn.is_available() and platform.machine().lower() in ("x86_64", "amd64")


def update_compile_options(device: th.device) -> dict[str, Any]:
    """Inductor's options for the update's compiled functions on ``device``.

    - ``fallback_random``: eager's random numbers, so the compiled update samples what the plain one does;
    - ``inplace_buffers`` off: with it, torch 2.13's inductor wrote a wrong gradient for the posterior layer's
      recurrent columns (``obs_out``) in ``RSSM.observe`` under a loss on the states and the KL logits, at
      sizes from the ``debug`` preset's to 200 units (not at the ``atari`` size, and not seen in the world
      model's whole loss); ``tests/test_compile_passes.py`` has the case;
    - ``BatchedWeightGrads``: the loop weights' gradients as one matmul each;
    - on an x86 CPU with oneDNN, ``OneDnnProducts``: the layers' forward products, their inputs' gradients and
      the weights' gradients of wide inputs by oneDNN, not MKL. At the ``atari`` size on a 2-core AMD EPYC CPU:
      167 ms less per update (median of 24 interleaved pairs in one process; 22 of them faster), then a further
      47 ms less with the wide weights' gradients and ``onehot_columns_grad``'s own CSR (20 pairs, 12 faster);
    - on a CPU, ``cpp_wrapper``: the graphs' thousands of kernel calls (the loops are unrolled) made from C++,
      not Python. At the ``atari`` size on a 2-core CPU: 32 ms less per update (in-process A/B, 14 updates
      each), for a first compile of ~8 minutes instead of ~4 (inductor caches it on disk).
    """
    cpu = device.type == "cpu"
    return {
        "fallback_random": True,
        "inplace_buffers": False,
        "post_grad_custom_pre_pass": BatchedWeightGrads(),
        "post_grad_custom_post_pass": OneDnnProducts() if cpu and _onednn_on_x86() else None,
        "cpp_wrapper": cpu,
    }
