"""DreamerV2's hyperparameters: one frozen, typed, validated object.

``DreamerV2(policy, env, **hyperparameters)`` takes SB3's own arguments by name (``learning_rate``,
``buffer_size``, ``learning_starts``, ``batch_size``, ``train_freq``, ``gradient_steps``, ...) and every field of
:class:`DreamerConfig` as a keyword argument; the modules read their part from ``model.config``. The defaults
are the paper's Atari agent (danijar/dreamerv2 ``configs.yaml``, ``atari``).
"""

import dataclasses
import difflib
from typing import Any, Literal

import numpy as np

ActorGradChoice = Literal["auto", "reinforce", "dynamics", "both"]
RewardTransform = Literal["identity", "tanh", "sign"]
MixedPrecision = Literal["no", "bf16", "fp16"]
NormChoice = Literal["none", "layer"]
EvalLatent = Literal["hashed", "sample", "mode"]

_CHOICES: dict[str, tuple[Any, ...]] = {
    "actor_grad": ("auto", "reinforce", "dynamics", "both"),
    "reward_transform": ("identity", "tanh", "sign"),
    "mixed_precision": ("no", "bf16", "fp16"),
    "norm": ("none", "layer"),
    "eval_latent": ("hashed", "sample", "mode"),
}
INF = float("inf")
# name -> (lowest, highest, integer), bounds included.
_RANGES: dict[str, tuple[float, float, bool]] = {
    **dict.fromkeys(("buffer_size", "batch_size", "train_freq", "deter_size", "stoch_size", "stoch_classes",
                     "hidden_size", "cnn_depth", "mlp_layers", "mlp_units", "slow_target_update",
                     "max_nonfinite_updates"), (1, INF, True)),
    **dict.fromkeys(("learning_starts", "pretrain_steps"), (0, INF, True)),
    "gradient_steps": (-1, INF, True),
    "imagination_starts": (1, INF, True),
    **dict.fromkeys(("sequence_length", "imagination_horizon"), (2, INF, True)),
    **dict.fromkeys(("return_lambda", "kl_balance", "actor_grad_mix"), (0.0, 1.0, False)),
    **dict.fromkeys(("kl_scale", "kl_free", "reward_scale", "discount_scale", "actor_lr", "critic_lr",
                     "weight_decay", "actor_entropy", "actor_min_std", "expl_noise"), (0.0, INF, False)),
}  # fmt: skip
_OPEN_BELOW_ONE = ("gamma", "slow_target_fraction")  # in (0, 1]
_POSITIVE = ("adam_eps", "grad_clip")  # > 0


def check_hyperparameters(values: dict[str, Any]) -> None:
    """Refuse out-of-range hyperparameters, naming the parameter, the range and the value.

    :param values: hyperparameter name -> value (names not checked here are ignored).
    """
    problems = []
    for name, (low, high, integer) in _RANGES.items():
        value = values.get(name)
        if value is None:
            continue
        if integer and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            problems.append(f"{name} must be an integer, got {value!r}")
        elif not low <= value <= high:
            bound = f">= {low}" if high == INF else f"in [{low}, {high}]"
            problems.append(f"{name} must be {bound}, got {value!r}")
    problems += [
        f"{n} must be in (0, 1], got {values[n]!r}" for n in _OPEN_BELOW_ONE if n in values and not 0 < values[n] <= 1
    ]
    problems += [f"{n} must be > 0, got {values[n]!r}" for n in _POSITIVE if n in values and not values[n] > 0]
    problems += [
        f"{n} must be one of {allowed}, got {values[n]!r}" for n, allowed in _CHOICES.items()
        if n in values and values[n] not in allowed
    ]  # fmt: skip
    lr = values.get("learning_rate")
    if isinstance(lr, (int, float)) and lr < 0:
        problems.append(f"learning_rate must be >= 0, got {lr!r}")
    if problems:
        raise ValueError("Invalid DreamerV2 hyperparameters: " + "; ".join(problems) + ".")


@dataclasses.dataclass(frozen=True)
class DreamerConfig:
    """DreamerV2's hyperparameters (besides SB3's own), with the paper's Atari values as defaults.

    Replay and loop:

    :param sequence_length: length T of each replayed window (``batch_length``).
    :param prioritize_ends: oversample episode ends in replay (``replay.prioritize_ends``).
    :param pretrain_steps: extra updates done once, when training starts (``pretrain``).

    World model:

    :param deter_size: GRU state size D. :param stoch_size: number S of categorical latents.
    :param stoch_classes: classes K per latent. :param hidden_size: width of the RSSM's other layers.
    :param cnn_depth: base depth of the image encoder/decoder.
    :param mlp_layers: / :param mlp_units: depth and width of every MLP (vector encoder/decoder, heads, actor,
        critic).
    :param norm: ``none`` or ``layer`` (LayerNorm in the MLPs and RSSM, over the channels in the CNNs).
    :param pred_discount: learn the discount (continue) head; without it imagined episodes never end.
    :param normalize_obs: standardise vector observations per dimension with the mean and std of the replay when
        training starts (then fixed, saved with the model); the reconstruction loss then weighs every dimension by
        its spread, not its units. Not in the paper (off in every preset).
    :param reward_transform: ``tanh`` squashes rewards inside the world model (Atari); ``identity``; ``sign``.
    :param kl_scale: / :param kl_balance: / :param kl_free: / :param kl_free_avg: KL loss scale, balancing
        alpha, free nats and whether the free nats apply to the average.
    :param reward_scale: / :param discount_scale: loss scales of the reward and discount heads.

    Behaviour (actor and critic, learned in imagination):

    :param gamma: discount factor of imagined returns.
    :param return_lambda: lambda of the lambda-returns.
    :param imagination_horizon: imagined steps from each posterior state.
    :param imagination_starts: imagine only from the last ``imagination_starts`` posterior states of each replayed
        window (DreamerV3's ``imag_last``; the states with the most context): a cheaper actor-critic update. None
        imagines from all ``sequence_length`` of them, as the paper does.
    :param actor_grad: ``auto`` (``reinforce`` for Discrete, ``dynamics`` for Box), ``reinforce``, ``dynamics``
        or ``both``. :param actor_grad_mix: weight of ``dynamics`` in ``both``.
    :param actor_entropy: entropy bonus scale. :param actor_min_std: minimum std of the continuous actor.
    :param slow_target_update: updates between copies of the critic into the slow critic.
    :param slow_target_fraction: interpolation of those copies (1 = hard copy).
    :param expl_noise: exploration while collecting: epsilon (Discrete) or Gaussian std (Box).
    :param eval_latent: the latent ``predict(..., deterministic=True)`` acts on. ``hashed``: a posterior sample
        drawn with noise that is a hash of the input (the previous state and the observation's embedding), so the
        same observations and state give the same action (SB3's meaning) while the latent stays a sample like those
        the actor learned on; ``sample``: fresh noise, as the reference evaluates (``eval_state_mean: False``;
        repeatable only with a seeded torch); ``mode``: the posterior's most likely classes (deterministic too, but
        off the actor's training distribution: on a Pendulum agent -402.6 against -112.6 hashed).

    Optimisers (world model: SB3's ``learning_rate``):

    :param actor_lr: / :param critic_lr: learning rates of the actor and critic.
    :param adam_eps: Adam's epsilon. :param weight_decay: decoupled weight decay per update, as the reference
        applies it (``w <- (1 - weight_decay) * w``). :param grad_clip: global gradient-norm clip of each optimiser.
    :param max_nonfinite_updates: stop (with a checkpoint and a message) after this many updates in a row whose
        loss or gradients were not finite; such optimiser steps are always skipped.

    Execution (the same maths, faster; see :mod:`sb3_dreamer.accel`):

    :param mixed_precision: ``no``, ``bf16`` or ``fp16`` autocast for the update (``fp16`` with a loss scaler,
        meant for CUDA).
    :param compile_model: ``torch.compile`` the world model's loss, its imagination and the critics as whole
        functions (the same maths and random numbers); the first update pays the compilation (minutes; cached on
        disk for later processes).
    :param cuda_graph: on a CUDA device, capture the whole update and the acting step in CUDA graphs after a few
        eager calls and replay them (~5x the updates/s on an H100). Needs ``mixed_precision`` ``no`` or ``bf16``
        and a constant learning rate. Ignored on a CPU.
    :param keep_host_memory: on a CPU under Linux (glibc), from the model's construction, have malloc keep freed memory for
        reuse, for the whole process (:func:`sb3_dreamer.accel.host_memory.keep_freed_memory`): an update's large
        activations then reuse pages instead of page-faulting fresh ones (8-10 % of an ``atari`` update). Off by
        default (the process keeps its peak memory until it exits); the main job and the benchmarks turn it on.
    """

    sequence_length: int = 50
    prioritize_ends: bool = True
    pretrain_steps: int = 1
    deter_size: int = 600
    stoch_size: int = 32
    stoch_classes: int = 32
    hidden_size: int = 600
    cnn_depth: int = 48
    mlp_layers: int = 4
    mlp_units: int = 400
    norm: NormChoice = "none"
    pred_discount: bool = True
    normalize_obs: bool = False
    reward_transform: RewardTransform = "tanh"
    kl_scale: float = 0.1
    kl_balance: float = 0.8
    kl_free: float = 0.0
    kl_free_avg: bool = True
    reward_scale: float = 1.0
    discount_scale: float = 5.0
    gamma: float = 0.999
    return_lambda: float = 0.95
    imagination_horizon: int = 15
    imagination_starts: int | None = None
    actor_grad: ActorGradChoice = "auto"
    actor_grad_mix: float = 0.1
    actor_entropy: float = 1e-3
    actor_min_std: float = 0.1
    slow_target_update: int = 100
    slow_target_fraction: float = 1.0
    expl_noise: float = 0.0
    eval_latent: EvalLatent = "hashed"
    actor_lr: float = 4e-5
    critic_lr: float = 1e-4
    adam_eps: float = 1e-5
    weight_decay: float = 1e-6
    grad_clip: float = 100.0
    max_nonfinite_updates: int = 100
    mixed_precision: MixedPrecision = "no"
    compile_model: bool = False
    cuda_graph: bool = False
    keep_host_memory: bool = False

    def __post_init__(self) -> None:
        check_hyperparameters(dataclasses.asdict(self))
        if self.cuda_graph and self.mixed_precision == "fp16":
            raise ValueError(
                "cuda_graph=True needs mixed_precision 'no' or 'bf16', got 'fp16': its loss scaler checks the "
                "gradients on the host every step. Use mixed_precision='bf16'."
            )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The hyperparameters' names."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_kwargs(cls, values: dict[str, Any]) -> "DreamerConfig":
        """Build from keyword arguments, refusing unknown names with the closest known one.

        :param values: hyperparameter name -> value.
        """
        unknown = [name for name in values if name not in cls.names()]
        if unknown:
            hints = [f"{name!r}" + "".join(f" (did you mean {m!r}?)" for m in difflib.get_close_matches(name, cls.names(), 1))
                     for name in unknown]  # fmt: skip
            raise TypeError(
                f"DreamerV2 got unknown hyperparameters {', '.join(hints)}. It takes SB3's arguments and the fields "
                "of sb3_dreamer.DreamerConfig."
            )
        return cls(**values)

    def replace(self, **changes: Any) -> "DreamerConfig":
        """A copy with ``changes`` (validated): ``model.config = model.config.replace(expl_noise=0.1)``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Name -> value, plain data."""
        return dataclasses.asdict(self)
