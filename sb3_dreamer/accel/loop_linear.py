"""Linear maps applied at every step of a recurrent loop, with each weight's gradient as one matmul.

Autograd computes a weight's gradient at each use. In ``RSSM.observe``'s loop (50 steps at batch 16 at the
``atari`` size) that is, per weight and step, a small ``(out, 16) @ (16, in)`` matmul whose result is added
into the weight's gradient: ~15 MB written and read again per step for the loop's four weights.
``LoopLinear`` leaves the weight out of the per-step backward. Once every step's backward has run, it computes
the weight's gradient as one matmul over all steps, ``sum_t g_t^T x_t = G^T X``. The maths is the same, up to
the order of float additions. On a 2-core CPU the loop's forward and backward take ~15 % less time.

Under autocast the weight is cast once for the whole loop (a slice of a weight is not in autocast's cache, so
plain ``F.linear`` casts it again at every step). The weight's gradient is returned in the weight's dtype, as
autocast's own cast would return it; under fp16 it is summed in fp32, since the sum over all steps may leave
fp16's range where each step's part does not.
"""

from typing import Any

import torch as th
import torch.nn.functional as F


class _Tape:
    """What the steps leave for the weight's gradient: their inputs (forward) and output gradients (backward)."""

    def __init__(self, steps: int):
        self.inputs: list[th.Tensor | None] = [None] * steps
        self.grads: list[th.Tensor | None] = [None] * steps


class _LoopWeight(th.autograd.Function):
    """The weight as the loop's steps use it (cast to their dtype); its backward is the weight's gradient."""

    @staticmethod
    def forward(ctx: Any, weight: th.Tensor, dtype: th.dtype, tape: _Tape) -> th.Tensor:
        ctx.tape, ctx.weight_dtype = tape, weight.dtype
        ctx.set_materialize_grads(False)  # the steps give no gradient here: theirs is in the tape
        return weight.view_as(weight) if dtype == weight.dtype else weight.to(dtype)

    @staticmethod
    def backward(ctx: Any, grad: th.Tensor | None) -> tuple[th.Tensor, None, None]:
        tape = ctx.tape
        used = [t for t, g in enumerate(tape.grads) if g is not None]  # a step outside the loss gives nothing
        grads = th.cat([tape.grads[t] for t in used])  # (steps * B, out)
        inputs = th.cat([tape.inputs[t] for t in used])  # type: ignore[misc]  # (steps * B, in)
        tape.grads = [None] * len(tape.grads)  # ready for another backward of the same graph
        if grads.dtype == th.float16:  # each step's product fits fp16's range; their sum over all steps may not
            grads, inputs = grads.float(), inputs.float()
        weight_grad = (grads.t() @ inputs).to(ctx.weight_dtype)  # (out, in)
        return (weight_grad if grad is None else weight_grad + grad), None, None


class _LoopStep(th.autograd.Function):
    """``x @ weight.T`` at one step; the gradient of ``x`` now, the weight's left in the tape."""

    @staticmethod
    def forward(ctx: Any, x: th.Tensor, weight: th.Tensor, tape: _Tape, step: int) -> th.Tensor:
        x_in = x.to(weight.dtype)
        # Detached: the tape is reachable from this node's ctx, and an input with history would close a cycle
        # through the autograd graph that Python's collector cannot see, keeping every update's graph alive.
        tape.inputs[step] = x_in.detach()
        ctx.save_for_backward(weight)
        ctx.tape, ctx.step, ctx.x_dtype = tape, step, x.dtype
        return x_in @ weight.t()

    @staticmethod
    def backward(ctx: Any, grad: th.Tensor) -> tuple[th.Tensor | None, None, None, None]:
        (weight,) = ctx.saved_tensors
        ctx.tape.grads[ctx.step] = grad
        x_grad = (grad @ weight).to(ctx.x_dtype) if ctx.needs_input_grad[0] else None
        return x_grad, None, None, None


class LoopLinear:
    """``x @ weight.T + bias`` at each of ``steps`` steps of a loop.

    Where no gradient is recorded for the weight (no grad mode, a frozen weight) or under ``torch.compile``
    (which traces its own backward), it is plain ``F.linear``. The update compiles with ``BatchedWeightGrads``
    (``compile_passes.py``), which makes the traced gradient the same single matmul.

    :param weight: (out, in), a parameter or a slice of one. :param steps: how many steps use it.
    :param bias: (out,) or None; its gradient is left to autograd (small).
    """

    def __init__(self, weight: th.Tensor, steps: int, bias: th.Tensor | None = None):
        device = weight.device.type
        self.bias = bias
        self.deferred = weight.requires_grad and th.is_grad_enabled() and not th.compiler.is_compiling()
        if self.deferred:
            dtype = th.get_autocast_dtype(device) if th.is_autocast_enabled(device) else weight.dtype
            self.tape = _Tape(steps)
            self.weight = _LoopWeight.apply(weight, dtype, self.tape)
        else:
            self.weight = weight

    def __call__(self, x: th.Tensor, step: int) -> th.Tensor:
        """:param x: (B, in) the input at ``step``. :return: (B, out), in the dtype ``F.linear`` gives."""
        if not self.deferred:
            return F.linear(x, self.weight, self.bias)
        y = _LoopStep.apply(x, self.weight, self.tape, step)
        return y if self.bias is None else y + self.bias.to(y.dtype)
