"""CUDA graphs: a whole update (world model, actor and critic, backward passes, optimiser steps) and a whole
acting step (encoder, posterior step, actor, exploration), each captured once and replayed.

On a GPU an update of DreamerV2 is thousands of small kernels (50 recurrent steps of the RSSM, 15 imagined
steps, their backward passes, three optimisers), and launching them from Python costs more than running them:
on an H100 the eager update reached ~7 of its ~60 fp32 TFLOP/s, the replayed graph ~17 (bf16: 4.8 -> 24). An
acting step is dozens of small kernels for one observation. What a graph needs (PyTorch's "whole network capture"):

- the same shapes every call: inputs are copied into tensors the graph owns;
- no host synchronisation inside: the update skips a non-finite optimiser step without asking the host
  (``sync_free``: :meth:`sb3_dreamer.accel.AcceleratedExecution.step`), the skipped steps are counted on the device;
- optimisers with ``capturable=True`` (their step counters live on the device), the same learning rates as at
  capture (a changed rate triggers a new capture);
- a few eager updates on a side stream before the capture (PyTorch's warm-up: lazy state, library handles).

Random numbers (latent and action samples) come from the default CUDA generator, which graph replays advance
like eager calls do.
"""

import warnings
from collections.abc import Callable, Hashable, Sequence

import torch as th

from sb3_dreamer.common.type_aliases import SequenceBatch

Outputs = dict[str, th.Tensor] | tuple[th.Tensor, ...]


def set_capturable(optimizer: th.optim.Optimizer, capturable: bool) -> None:
    """Make ``optimizer`` capturable (step counters as float32 on their parameters' device) or not (on the
    CPU). The flag is saved with the optimiser's state, so a model trained with graphs and loaded elsewhere
    must be switched back before its next eager step.
    """
    for group in optimizer.param_groups:
        if group.get("capturable") == capturable:  # already switched (its steps were moved then)
            continue
        group["capturable"] = capturable
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            step = state.get("step")
            device = param.device if capturable else th.device("cpu")
            if isinstance(step, th.Tensor) and (step.device != device or step.dtype != th.float32):
                state["step"] = step.to(device=device, dtype=th.float32)


def step_where_finite(optimizer: th.optim.Optimizer, finite: th.Tensor) -> None:
    """``optimizer.step()`` where ``finite`` is true, no step (parameters and state unchanged) where it is false,
    decided on the device: the host is never asked, so a CUDA graph can capture it.

    Parameters and state are copied before the step and copied back where ``finite`` is false. The very first
    step, which creates the state, asks the host instead (it is never captured: graphs follow eager updates).

    :param finite: scalar bool tensor.
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if any(not optimizer.state.get(p) for p in params):
        if th.cuda.is_available() and th.cuda.is_current_stream_capturing():
            raise RuntimeError(
                "Capturing an optimiser step before the optimiser has any state (every eager warm-up step was "
                "skipped as non-finite): check the observations and rewards, or train without cuda_graph."
            )
        if bool(finite):
            optimizer.step()
        return
    state = [v for p in params for v in optimizer.state.get(p, {}).values() if isinstance(v, th.Tensor)]
    tensors = [p.detach() for p in params] + state
    saved = [t.clone() for t in tensors]
    optimizer.step()
    with th.no_grad():
        for tensor, before in zip(tensors, saved):
            tensor.copy_(th.where(finite, tensor, before))


def _clone(out: Outputs) -> Outputs:
    if isinstance(out, dict):
        return {k: v.clone() for k, v in out.items()}
    return tuple(v.clone() for v in out)


class GraphedCall:
    """``fn(*tensors)`` run eagerly ``warmup`` times, then captured once in a CUDA graph and replayed.

    Inputs are copied into the graph's own tensors before each replay; outputs are cloned after it (safe to
    keep). Other input shapes or dtypes, or another value of ``key()``, capture again (after a new warm-up).

    :param fn: tensors -> dict or tuple of tensors, free of host synchronisation.
    :param warmup: eager calls on a side stream before the capture.
    :param key: what else the graph bakes in (e.g. learning rates); a change captures again.
    """

    def __init__(self, fn: Callable[..., Outputs], warmup: int = 3, key: Callable[[], Hashable] = lambda: None):
        self.fn, self.warmup, self.key = fn, warmup, key
        self.graph: th.cuda.CUDAGraph | None = None
        self.captures = 0
        self._inputs: tuple[th.Tensor, ...] = ()
        self._outputs: Outputs = ()
        self._signature: Hashable = None
        self._eager_left = warmup

    def __call__(self, *inputs: th.Tensor) -> Outputs:
        signature = (tuple((t.shape, t.dtype, t.device) for t in inputs), self.key())
        if signature != self._signature:
            self.graph, self._eager_left, self._signature = None, self.warmup, signature
        if self.graph is None and self._eager_left > 0:
            self._eager_left -= 1
            return self._on_side_stream(inputs)
        if self.graph is None:
            self._capture(inputs)
        assert self.graph is not None
        for static, value in zip(self._inputs, inputs):
            static.copy_(value, non_blocking=True)
        self.graph.replay()
        return _clone(self._outputs)

    def _on_side_stream(self, inputs: tuple[th.Tensor, ...]) -> Outputs:
        stream = th.cuda.Stream()
        stream.wait_stream(th.cuda.current_stream())
        with th.cuda.stream(stream):
            out = self.fn(*inputs)
        th.cuda.current_stream().wait_stream(stream)
        return out

    def _capture(self, inputs: tuple[th.Tensor, ...]) -> None:
        self._inputs = tuple(t.clone() for t in inputs)
        th.cuda.synchronize()
        graph = th.cuda.CUDAGraph()
        with th.cuda.graph(graph):
            self._outputs = self.fn(*self._inputs)
        self.graph = graph
        self.captures += 1


class GraphedUpdate:
    """One update from a :class:`SequenceBatch`, through a :class:`GraphedCall` (3 eager warm-up updates once the
    optimisers have state: 4 for fresh ones).

    The graph bakes in the optimisers' hyperparameters and tensors (the addresses of parameters, moments and
    step counters) and whatever ``key()`` returns: when any of them changes (a learning-rate schedule, a loss
    scale changed by a callback, ``set_parameters`` loading optimiser state) it is captured again, after a new
    warm-up; a changed learning rate warns (a schedule that changes it every call keeps the update eager).

    :param update: batch -> metrics, free of host synchronisation.
    :param optimizers: the optimisers ``update`` steps (made capturable).
    :param key: the other values ``update`` reads as Python numbers (hyperparameters).
    """

    def __init__(
        self,
        update: Callable[[SequenceBatch], dict[str, th.Tensor]],
        optimizers: Sequence[th.optim.Optimizer],
        key: Callable[[], Hashable] = lambda: None,
    ):
        self.update, self.optimizers, self.key = update, list(optimizers), key
        self._keys: tuple[str, ...] = ()
        self._state: Hashable = None
        self._warned = False
        self.call = GraphedCall(self._flat_update, warmup=3, key=lambda: self._state)

    @property
    def captures(self) -> int:
        return self.call.captures

    def _optimizer_state(self) -> tuple[Hashable, ...]:
        """Learning rates, the other hyperparameters and the address of every tensor the optimisers step."""
        lrs = tuple(float(group["lr"]) for opt in self.optimizers for group in opt.param_groups)
        settings = tuple(
            (group["eps"], group["betas"], group["weight_decay"]) for opt in self.optimizers for group in opt.param_groups
        )
        tensors = tuple(
            t.data_ptr() for opt in self.optimizers for group in opt.param_groups for p in group["params"]
            for t in (p, *opt.state.get(p, {}).values()) if isinstance(t, th.Tensor)
        )  # fmt: skip
        return lrs, settings, tensors, self.key()

    def _flat_update(self, *tensors: th.Tensor) -> dict[str, th.Tensor]:
        n = len(self._keys)
        batch = SequenceBatch(dict(zip(self._keys, tensors[:n])), *tensors[n:])
        return self.update(batch)

    def __call__(self, batch: SequenceBatch) -> dict[str, th.Tensor]:
        """One update on ``batch``. :return: its metrics (fresh tensors)."""
        state = self._optimizer_state()
        if state != self._state:
            if self.call.graph is not None and state[0] != self._state[0] and not self._warned:  # type: ignore[index]
                warnings.warn(
                    "A learning rate changed after the CUDA graph was captured: it is captured again after 3 eager "
                    "updates, and a schedule that changes the rate at every train() call keeps the update eager. "
                    "Use a constant learning rate with cuda_graph=True.",
                    stacklevel=3,
                )
                self._warned = True
            for optimizer in self.optimizers:
                set_capturable(optimizer, True)
            self._state = self._optimizer_state()
        self._keys = tuple(sorted(batch.obs))
        tensors = (*(batch.obs[k] for k in self._keys), batch.action, batch.reward, batch.is_first, batch.is_terminal)
        out = self.call(*tensors)
        assert isinstance(out, dict)
        return out
