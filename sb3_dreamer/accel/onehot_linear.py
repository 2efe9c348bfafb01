"""Linear layers whose input holds one-hot groups: the discrete latents of the imagined states.

A feature ``(deter, stoch)`` has ``S * K = 1024`` one-hot columns and 600 dense ones at the ``atari`` size. Its
product with a weight is, in those columns, a sum of ``S`` weight columns: the column of each group's one. The
layers that read the imagined features (the actor's, critic's, slow critic's, reward and discount heads' first
layers and the RSSM's ``img_in``, 12,000-12,800 rows each) and the posterior features of the world model's loss
(the decoder's, reward and discount heads' first layers, 800 rows; its latents are straight-through samples,
exactly one-hot in value) sum them with ``embedding_bag`` instead of multiplying by the zeros, and multiply the
dense columns as usual. The result is the same up to the order of float additions. On a 2-core CPU, at 12,000
rows and 400 outputs, the one-hot part takes ~5 ms against ~31 ms as a matmul.

The gradients are ``nn.Linear``'s, so the layer is the same function under autograd. The weight's gradient
``G^T x`` is, in the one-hot columns, a sum of ``G``'s rows per column: a sparse product (MKL's, through a CSR
matrix of the ones, ``onehot_columns_grad``), ~2.4x faster than the dense matmul at 12,000 rows (21.5 against
52.2 ms on a 2-core CPU, 400 outputs). It pays only where few of the columns are ones (``SPARSE_MIN_CLASSES``);
with fewer classes the weight's gradient is the dense product. Used on CPUs without autocast (eager or under
``torch.compile``), where it was measured; on GPUs and under autocast it is plain ``F.linear``.
"""

import warnings
from typing import Any, NamedTuple

import torch as th
import torch.nn.functional as F
from torch import nn

# The weight's gradient in the one-hot columns is a sparse product from this many classes a group (a 1/32 or
# smaller share of ones). One thread of a 2-core CPU, the sparse against the dense product: at 32 classes
# 8-16 against 18-30 ms at 800 rows (32 groups, 400-600 outputs), 153-159 against 263-265 ms at 12,000 rows
# (400 outputs); at 16 classes 1.6 against 1.4-1.5 ms at 800 rows and 0.5-0.7 against 0.1 ms at 128 rows (16 groups,
# 128 outputs: the classic presets' actor, once per imagined step), where building the CSR costs more than
# the product.
SPARSE_MIN_CLASSES = 32


class OneHotColumns(NamedTuple):
    """Says that columns ``start .. start + S * K`` of a layer's input are S exact one-hot groups of K classes.

    Exact: the values are 0 and 1 (a sample of ``OneHotST``, straight-through or not), never an all-zero group.
    """

    hot: th.Tensor  # (..., S) the class of each group's one
    start: int
    classes: int

    @classmethod
    def of(cls, onehot: th.Tensor, start: int) -> "OneHotColumns":
        """:param onehot: (..., S, K) exact one-hot groups, flattened into the input from column ``start``."""
        with th.autocast(onehot.device.type, enabled=False):  # in fp32: a bf16 matmul rounds classes above 256
            arange = th.arange(onehot.shape[-1], dtype=th.float32, device=onehot.device)
            classes = onehot.detach().float() @ arange
        # Exact: one product of 1 and the class per group. A latent that is not finite (a diverged model, whose
        # state is then not finite elsewhere too) reads class 0 rather than an index out of range.
        return cls(classes.nan_to_num(0.0, 0.0, 0.0).long().clamp_(0, onehot.shape[-1] - 1), start, onehot.shape[-1])

    def at(self, item: Any) -> "OneHotColumns":
        """The same columns for part of the leading axes, e.g. ``columns.at(slice(1, None))`` for ``x[1:]``."""
        return OneHotColumns(self.hot[item], self.start, self.classes)


@th.library.custom_op("sb3_dreamer::onehot_columns_grad", mutates_args=())
def onehot_columns_grad(grad: th.Tensor, index: th.Tensor, width: int) -> th.Tensor:
    """``grad^T @ x`` for an ``x`` of ``width`` columns with ones at ``index`` and zeros elsewhere: each column's
    sum of the rows of ``grad`` that have a one there. One sparse product ``x^T @ grad`` (MKL's, ``x^T`` in CSR
    built here from a stable sort of the columns: ~1 ms less per 800-row call on a 2-core CPU than PyTorch's
    conversion of ``x``'s CSR transpose); an op that ``torch.compile`` calls as it is (its graphs do not hold
    sparse tensors).

    :param grad: (N, out). :param index: (N, S) the column of each of a row's S ones, in ``0 .. width``.
    :return: (out, width).
    """
    n, groups = index.shape
    columns = index.reshape(-1)
    order = th.argsort(columns, stable=True)  # x^T's ones row by row, each row's in x's row order
    counts = th.bincount(columns, minlength=width)
    crow = th.cat([counts.new_zeros(1), counts.cumsum(0)])
    ones = grad.new_ones(n * groups)
    with warnings.catch_warnings():  # torch's one-time notice that its CSR tensors are a beta feature
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
        x_t = th.sparse_csr_tensor(crow, order // groups, ones, (width, n), check_invariants=False)
    return (x_t @ grad).t().contiguous()


@onehot_columns_grad.register_fake
def _(grad: th.Tensor, index: th.Tensor, width: int) -> th.Tensor:
    return grad.new_empty(grad.shape[1], width)


class _OneHotLinear(th.autograd.Function):
    """``x @ weight.T + bias`` for a 2-D ``x`` whose columns ``start .. end`` are one-hot (``index``, offset into them)."""

    @staticmethod
    def forward(
        ctx: Any, x: th.Tensor, index: th.Tensor, start: int, end: int, weight: th.Tensor, bias: th.Tensor | None
    ) -> th.Tensor:
        ctx.save_for_backward(x, index, weight)
        ctx.has_bias, ctx.start, ctx.end = bias is not None, start, end
        y = F.embedding_bag(index, weight[:, start:end].t().contiguous(), mode="sum")  # (N, out)
        for lo, hi in ((0, start), (end, x.shape[1])):  # the dense columns
            if hi > lo:
                y = th.addmm(y, x[:, lo:hi], weight[:, lo:hi].t())
        return y if bias is None else y.add_(bias)

    @staticmethod
    def backward(ctx: Any, grad: th.Tensor) -> tuple[th.Tensor | None, None, None, None, th.Tensor | None, th.Tensor | None]:
        x, index, weight = ctx.saved_tensors
        x_grad = grad @ weight if ctx.needs_input_grad[0] else None
        weight_grad = _weight_grad(grad, x, index, ctx.start, ctx.end) if ctx.needs_input_grad[4] else None
        bias_grad = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[5] else None
        return x_grad, None, None, None, weight_grad, bias_grad


def _weight_grad(grad: th.Tensor, x: th.Tensor, index: th.Tensor, start: int, end: int) -> th.Tensor:
    """``grad^T @ x`` (out, in): the one-hot columns ``start .. end`` as a sparse product where they have
    ``SPARSE_MIN_CLASSES`` classes or more, the others dense."""
    if (end - start) // index.shape[1] < SPARSE_MIN_CLASSES:
        return grad.t() @ x
    parts = [grad.t() @ x[:, :start]] if start > 0 else []
    parts.append(onehot_columns_grad(grad, index, end - start))
    if end < x.shape[1]:
        parts.append(grad.t() @ x[:, end:])
    return th.cat(parts, 1)


def fast_onehot(x: th.Tensor) -> bool:
    """Whether the one-hot product is used for ``x``: on CPUs without autocast, where it was measured."""
    device = x.device.type
    return device == "cpu" and not th.is_autocast_enabled(device)


def onehot_linear(layer: nn.Linear, x: th.Tensor, columns: OneHotColumns | None) -> th.Tensor:
    """``layer(x)``, summing the weight's columns where ``columns`` says ``x`` is one-hot.

    :param x: (N, in). :param columns: its one-hot columns (``hot``: (N, S)), or None (then plain ``layer(x)``).
    :return: (N, out).
    """
    if columns is None or not fast_onehot(x):
        return F.linear(x, layer.weight, layer.bias)
    groups = columns.hot.shape[-1]
    end = columns.start + groups * columns.classes
    offsets = th.arange(groups, device=x.device) * columns.classes
    index = columns.hot.reshape(-1, groups) + offsets  # (N, S) columns within start .. end
    return _OneHotLinear.apply(x, index, columns.start, end, layer.weight, layer.bias)
