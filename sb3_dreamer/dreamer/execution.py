"""How an update and an acting step run: the one door through which the speed work comes in.

:class:`Execution` runs them as the model's modules write them: eager PyTorch, nothing else. When the package
:mod:`sb3_dreamer.accel` is present, :func:`make_execution` returns its subclass instead, which swaps the fast
forms into the modules, compiles, captures CUDA graphs and lays out the optimisers: the same maths, faster.
Deleting :mod:`sb3_dreamer.accel` leaves a correct, slower agent.
"""

import importlib.util
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch as th
from torch import nn

from sb3_dreamer.common.type_aliases import SequenceBatch
from sb3_dreamer.dreamer.config import DreamerConfig

Metrics = dict[str, th.Tensor]


class UpdateFns(NamedTuple):
    """The whole functions an update calls (an execution may stand compiled forms in for them)."""

    model_loss: Callable  # the world model's ``loss``
    imagine: Callable  # the world model's ``imagine``
    critic: Callable[[th.Tensor], th.Tensor]  # (..., F) -> (..., 1)
    slow_critic: Callable[[th.Tensor], th.Tensor]


def update_functions(policy: nn.Module) -> UpdateFns:
    """The functions an update calls, as the policy's modules define them."""
    world_model = policy.world_model
    return UpdateFns(world_model.loss, world_model.imagine, policy.critic, policy.slow_critic)


class Execution:
    """Eager PyTorch, as the modules are written. (:class:`sb3_dreamer.accel.AcceleratedExecution` has the same
    methods.)"""

    def prepare(self, policy: nn.Module) -> None:
        """Make a freshly built (or loaded) policy ready to run (here: nothing)."""

    def configure(self, config: DreamerConfig, device: th.device) -> None:
        """Apply the process-wide settings ``config`` opts in to (here: none exist)."""

    def functions(self, fns: UpdateFns, config: DreamerConfig) -> UpdateFns:
        """The functions an update calls, given the modules' own: those."""
        return fns

    def update(
        self,
        update: Callable[[SequenceBatch, bool], Metrics],
        batch: SequenceBatch,
        optimizers: Sequence[th.optim.Optimizer],
        config: DreamerConfig,
    ) -> Metrics:
        """Run ``update(batch, sync_free)`` once.

        :param optimizers: the optimisers it steps. :param config: the hyperparameters it reads as Python numbers.
        """
        return update(batch, False)

    def act(
        self, act: Callable[..., tuple[th.Tensor, ...]], inputs: tuple[th.Tensor, ...], config: DreamerConfig
    ) -> tuple[th.Tensor, ...]:
        """Run one acting step ``act(*inputs)``. :param config: the hyperparameters it reads."""
        return act(*inputs)

    def step(self, optimizer: th.optim.Optimizer, finite: th.Tensor, sync_free: bool) -> None:
        """Step ``optimizer`` if ``finite`` (a scalar bool tensor), asking the host."""
        if sync_free:
            raise RuntimeError("A step without host synchronisation needs sb3_dreamer.accel.")
        if bool(finite):
            optimizer.step()


def make_execution(config: DreamerConfig, device: th.device) -> Execution:
    """:class:`sb3_dreamer.accel.AcceleratedExecution` where that package is present, else :class:`Execution`."""
    if importlib.util.find_spec("sb3_dreamer.accel") is None:
        if config.compile_model or config.cuda_graph or config.keep_host_memory:
            warnings.warn("compile_model, cuda_graph and keep_host_memory need sb3_dreamer.accel: ignored.", stacklevel=3)
        return Execution()
    from sb3_dreamer.accel import AcceleratedExecution

    return AcceleratedExecution()
