"""Everything that only makes DreamerV2 faster: the same maths, computed another way.

- :mod:`.modules`: fast forms of the model's modules, swapped in place (flat MLPs, one-hot products of the latent,
  the RSSM's loop linears, the convolutions' CPU kernels, channels-last layout);
- :mod:`.compile_passes`: ``torch.compile`` of the update's whole functions, with two graph passes;
- :mod:`.cuda_graph`: the whole update and acting step captured in CUDA graphs;
- :mod:`.optim`: AdamW stepping parameters as they lie in memory, with the fused CPU kernel;
- :mod:`.host_memory`: glibc's malloc keeping freed memory (opt-in: ``keep_host_memory``).

:class:`AcceleratedExecution` is what :func:`sb3_dreamer.dreamer.execution.make_execution` returns when this
package is present. Deleting it leaves a correct, slower agent; ``tests/test_accel.py`` checks that the fast
and plain forms agree.
"""

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch as th
from torch import nn

from sb3_dreamer.accel.compile_passes import update_compile_options
from sb3_dreamer.accel.cuda_graph import GraphedCall, GraphedUpdate, set_capturable, step_where_finite
from sb3_dreamer.accel.host_memory import keep_freed_memory
from sb3_dreamer.accel.modules import accelerate
from sb3_dreamer.accel.optim import AdamW, choose_step_kernel
from sb3_dreamer.common.type_aliases import SequenceBatch

Metrics = dict[str, th.Tensor]


class AcceleratedExecution:
    """Fast forms of the modules; with ``compile_model`` the update's functions compiled; with ``cuda_graph`` on a
    CUDA device the update and the acting step replayed from CUDA graphs; AdamW's fused CPU kernel. The methods of
    :class:`sb3_dreamer.dreamer.execution.Execution`, whose docstrings say what each is for; ``config`` is a
    :class:`~sb3_dreamer.dreamer.config.DreamerConfig`.
    """

    def __init__(self) -> None:
        self._compiled: tuple[tuple[Any, ...], NamedTuple] | None = None
        self._graphed_update: GraphedUpdate | None = None
        self._graphed_act: GraphedCall | None = None

    def prepare(self, policy: nn.Module) -> None:
        accelerate(policy)
        for optimizer in policy.optimizers:
            optimizer.__class__ = AdamW
        self._compiled, self._graphed_update, self._graphed_act = None, None, None

    def configure(self, config: Any, device: th.device) -> None:
        if config.keep_host_memory and device.type == "cpu":
            keep_freed_memory()
        if config.cuda_graph and device.type != "cuda":
            warnings.warn(f"cuda_graph=True has no effect on device {device}: updates run eagerly.", stacklevel=4)

    def functions(self, fns: NamedTuple, config: Any) -> NamedTuple:
        """With ``compile_model``, each of the update's functions (the world model's ``loss`` and ``imagine``, the
        two critics) compiled as a whole (recurrent loops unrolled and fused). Compiling the two critics too (their
        bias and ELU passes fused): 65 ms less per ``atari`` update on a 2-core CPU (in-process A/B, 14 updates each).
        """
        if not config.compile_model:
            return fns
        owners = tuple(getattr(fn, "__self__", fn) for fn in fns)  # the modules whose functions they are
        if self._compiled is None or any(a is not b for a, b in zip(self._compiled[0], owners)):
            device = next(p.device for owner in owners if isinstance(owner, nn.Module) for p in owner.parameters())
            options = update_compile_options(device)
            self._compiled = (owners, type(fns)(*(th.compile(fn, options=options) for fn in fns)))
        return self._compiled[1]

    def update(
        self,
        update: Callable[[SequenceBatch, bool], Metrics],
        batch: SequenceBatch,
        optimizers: Sequence[th.optim.Optimizer],
        config: Any,
    ) -> Metrics:
        for optimizer in optimizers:
            choose_step_kernel(optimizer)
        if batch.reward.device.type == "cuda" and config.cuda_graph:
            if self._graphed_update is None or self._graphed_update.optimizers != list(optimizers):
                self._graphed_update = GraphedUpdate(lambda b: update(b, True), optimizers)
            self._graphed_update.key = lambda: config
            return self._graphed_update(batch)
        for optimizer in optimizers:
            set_capturable(optimizer, False)  # a model trained with graphs, loaded for eager training
        return update(batch, False)

    def act(
        self, act: Callable[..., tuple[th.Tensor, ...]], inputs: tuple[th.Tensor, ...], config: Any
    ) -> tuple[th.Tensor, ...]:
        if inputs[0].device.type != "cuda" or not config.cuda_graph:
            return act(*inputs)
        captures = self._graphed_update.captures if self._graphed_update is not None else 0  # recaptured: params moved
        if self._graphed_act is None:
            self._graphed_act = GraphedCall(act, warmup=2)
        self._graphed_act.key = lambda: (config, captures)
        return self._graphed_act(*inputs)

    def step(self, optimizer: th.optim.Optimizer, finite: th.Tensor, sync_free: bool) -> None:
        if sync_free:
            step_where_finite(optimizer, finite)
        elif bool(finite):
            optimizer.step()


__all__ = ["AcceleratedExecution", "accelerate", "keep_freed_memory"]
