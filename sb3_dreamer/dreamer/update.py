"""One DreamerV2 update: the world model on a batch of replay windows, then the actor and the critic on
trajectories imagined from its posterior states, each with its own optimiser step."""

import contextlib

import torch as th
from torch import nn

from sb3_dreamer.common.type_aliases import RSSMState, SequenceBatch
from sb3_dreamer.dreamer.behavior import BehaviorLoss, behavior_loss
from sb3_dreamer.dreamer.config import DreamerConfig
from sb3_dreamer.dreamer.execution import Execution, Metrics, UpdateFns, update_functions
from sb3_dreamer.dreamer.world_model import WorldModelLoss


class Updater:
    """The update of a policy's world model, actor and critic, run through an :class:`Execution`.

    :param policy: a :class:`~sb3_dreamer.dreamer.policies.DreamerPolicy`.
    :param config: the hyperparameters (``updater.config`` may be replaced between updates).
    :param execution: how the update runs.
    """

    def __init__(self, policy: nn.Module, config: DreamerConfig, execution: Execution):
        self.policy, self.config, self.execution = policy, config, execution
        device = next(policy.parameters()).device
        # fp16's loss scale starts at 1, not PyTorch's 65536: the image loss sums over pixels, so the decoder's
        # gradients overflow fp16 at scales above ~16 (the default would skip the first ~13 updates).
        self.scaler = th.amp.GradScaler(device.type, init_scale=1.0, enabled=config.mixed_precision == "fp16")

    def __call__(self, batch: SequenceBatch) -> Metrics:
        """One update. :return: detached metrics, ``skipped_steps`` (0-3) among them."""
        metrics = self.execution.update(self.update, batch, self.policy.optimizers, self.config)
        self.scaler.update()
        return metrics

    def autocast(self) -> contextlib.AbstractContextManager:
        """The mixed-precision context of the update (``mixed_precision``)."""
        precision = self.config.mixed_precision
        if precision == "no":
            return contextlib.nullcontext()
        device = next(self.policy.parameters()).device.type
        dtype = th.bfloat16 if precision == "bf16" else th.float16
        # A captured graph must not keep autocast's cache of cast weights (PyTorch's CUDA-graph notes).
        return th.autocast(device, dtype=dtype, cache_enabled=not (self.config.cuda_graph and device == "cuda"))

    def functions(self) -> UpdateFns:
        """The world model's ``loss`` and ``imagine`` and the critics, as the execution runs them."""
        return self.execution.functions(update_functions(self.policy), self.config)

    def model_loss(self, batch: SequenceBatch) -> WorldModelLoss:
        """The world model's loss on a (T, B) batch of replay windows."""
        with self.autocast():
            return self.functions().model_loss(batch, self.config)

    def behavior_loss(self, post: RSSMState, is_terminal: th.Tensor) -> BehaviorLoss:
        """The actor's and the critic's losses on trajectories imagined from ``post`` (T, B, ...)."""
        policy = self.policy
        return behavior_loss(self.functions(), policy.actor, policy.world_model, post, is_terminal, self.config, self.autocast)

    def update(self, batch: SequenceBatch, sync_free: bool = False) -> Metrics:
        """The tensor work of one update: world model, then actor and critic, with their optimiser steps.

        :param sync_free: no host synchronisation (what a CUDA graph captures); the same maths.
        """
        policy = self.policy
        model = self.model_loss(batch)
        model_norm, model_skip = self._optimize(policy.model_optimizer, model.loss, policy.world_model, sync_free)
        behavior = self.behavior_loss(model.post, batch.is_terminal)
        actor_norm, actor_skip = self._optimize(policy.actor_optimizer, behavior.actor_loss, policy.actor, sync_free)
        critic_norm, critic_skip = self._optimize(policy.critic_optimizer, behavior.critic_loss, policy.critic, sync_free)
        metrics = {k: v.detach() for k, v in model.metrics.items()}
        metrics.update(behavior.metrics, model_grad_norm=model_norm, actor_grad_norm=actor_norm, critic_grad_norm=critic_norm)
        metrics["skipped_steps"] = model_skip + actor_skip + critic_skip
        return metrics

    def _optimize(
        self, optimizer: th.optim.Optimizer, loss: th.Tensor, module: nn.Module, sync_free: bool
    ) -> tuple[th.Tensor, th.Tensor]:
        """Backward, clip the global gradient norm, step, unless the loss or a gradient is not finite: then the
        step is skipped and counted (``train/skipped_steps``). fp16's scaler makes the same check itself, and
        lowers its scale instead of counting.

        :return: the norm before clipping, and 1.0 if the step was skipped else 0.0 (scalar tensors).
        """
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)
        norm = th.nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip)
        finite = th.isfinite(norm)
        skipped = (~finite).float()
        if self.scaler.is_enabled():
            self.scaler.step(optimizer)
            skipped = th.zeros_like(skipped)
        else:
            self.execution.step(optimizer, finite, sync_free)
        return norm, skipped
