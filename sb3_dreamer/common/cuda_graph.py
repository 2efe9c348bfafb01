"""One CUDA graph for a whole update: world model, actor and critic, their backward passes and optimiser steps.

On a GPU an update of DreamerV2 is thousands of small kernels (50 recurrent steps of the RSSM, 15 imagined
steps, their backward passes, three optimisers), and launching them from Python costs more than running them:
on an H100 the eager update reaches ~5 of its ~60 fp32 TFLOP/s. Replaying a captured graph launches them all
at once. What the graph needs (PyTorch's "whole network capture"):

- the same shapes every update: the batch is copied into tensors the graph owns;
- no host synchronisation inside: the update skips a non-finite optimiser step without asking the host
  (``sync_free`` in :meth:`DreamerV2._optimize`), the skipped steps are counted on the device;
- optimisers with ``capturable=True`` (their step counters live on the device), the same learning rates as at
  capture (a changed rate triggers a new capture);
- a few eager updates on a side stream before the capture (PyTorch's warm-up: lazy state, library handles).

Random numbers (latent and action samples) come from the default CUDA generator, which graph replays advance
like eager calls do.
"""

from collections.abc import Callable

import torch as th

from sb3_dreamer.common.type_aliases import SequenceBatch

UpdateFn = Callable[[SequenceBatch], dict[str, th.Tensor]]


def make_capturable(optimizer: th.optim.Optimizer) -> None:
    """Let ``optimizer`` be captured: ``capturable=True``, its step counters as float32 on their parameters' device."""
    for group in optimizer.param_groups:
        group["capturable"] = True
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if "step" in state:
                state["step"] = th.as_tensor(state["step"], dtype=th.float32, device=param.device)


def step_where_finite(optimizer: th.optim.Optimizer, finite: th.Tensor) -> None:
    """``optimizer.step()`` where ``finite`` is true, no step (parameters and state unchanged) where it is false,
    decided on the device: the host is never asked, so a CUDA graph can capture it.

    Parameters and state are copied before the step and copied back where ``finite`` is false. The very first
    step, which creates the state, asks the host instead (it is never captured: graphs follow eager updates).

    :param finite: scalar bool tensor.
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if any(not optimizer.state.get(p) for p in params):
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


def _batch_like(batch: SequenceBatch) -> SequenceBatch:
    """A batch of fresh tensors the graph reads from (a copy of ``batch``)."""
    return SequenceBatch(
        obs={k: v.clone() for k, v in batch.obs.items()},
        action=batch.action.clone(),
        reward=batch.reward.clone(),
        is_first=batch.is_first.clone(),
        is_terminal=batch.is_terminal.clone(),
    )


def _copy_batch(dst: SequenceBatch, src: SequenceBatch) -> None:
    for key, value in src.obs.items():
        dst.obs[key].copy_(value, non_blocking=True)
    for name in ("action", "reward", "is_first", "is_terminal"):
        getattr(dst, name).copy_(getattr(src, name), non_blocking=True)


def _signature(batch: SequenceBatch) -> tuple:
    obs = tuple((k, tuple(v.shape), v.dtype) for k, v in sorted(batch.obs.items()))
    rest = tuple((tuple(t.shape), t.dtype) for t in (batch.action, batch.reward, batch.is_first, batch.is_terminal))
    return obs, rest


class GraphedUpdate:
    """Runs ``update`` eagerly ``warmup`` times, then captures it once and replays the graph.

    :param update: one update from a batch to its metrics, free of host synchronisation.
    :param optimizers: the optimisers ``update`` steps (made capturable; their learning rates are watched).
    :param warmup: eager updates on a side stream before the capture.
    """

    def __init__(self, update: UpdateFn, optimizers: list[th.optim.Optimizer], warmup: int = 3):
        self.update, self.optimizers, self.warmup = update, optimizers, warmup
        self.graph: th.cuda.CUDAGraph | None = None
        self.static_batch: SequenceBatch | None = None
        self.static_metrics: dict[str, th.Tensor] = {}
        self.captures = 0
        self._eager_left = warmup
        self._key: tuple = ()
        for optimizer in optimizers:
            make_capturable(optimizer)

    def _learning_rates(self) -> tuple[float, ...]:
        return tuple(float(group["lr"]) for opt in self.optimizers for group in opt.param_groups)

    def __call__(self, batch: SequenceBatch) -> dict[str, th.Tensor]:
        """One update on ``batch``. :return: its metrics (fresh tensors, safe to keep)."""
        key = (_signature(batch), self._learning_rates())
        if self.graph is not None and key != self._key:  # other shapes or learning rates: capture again
            self.graph, self._eager_left = None, self.warmup
        if self.graph is None and self._eager_left > 0:
            self._eager_left -= 1
            return self._side_stream(lambda: self.update(batch))
        if self.graph is None:
            self._capture(batch, key)
        assert self.graph is not None and self.static_batch is not None
        _copy_batch(self.static_batch, batch)
        self.graph.replay()
        return {k: v.clone() for k, v in self.static_metrics.items()}

    @staticmethod
    def _side_stream(fn: Callable[[], dict[str, th.Tensor]]) -> dict[str, th.Tensor]:
        stream = th.cuda.Stream()
        stream.wait_stream(th.cuda.current_stream())
        with th.cuda.stream(stream):
            out = fn()
        th.cuda.current_stream().wait_stream(stream)
        return out

    def _capture(self, batch: SequenceBatch, key: tuple) -> None:
        self.static_batch = _batch_like(batch)
        th.cuda.synchronize()
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)  # gradients are then allocated from the graph's pool
        graph = th.cuda.CUDAGraph()
        with th.cuda.graph(graph):
            self.static_metrics = self.update(self.static_batch)
        self.graph, self._key = graph, key
        self.captures += 1
