"""Reference configurations as constructor keyword arguments.

``atari``, ``dmc_vision``, ``dmc_proprio`` and ``crafter`` carry the values of danijar/dreamerv2's
``configs.yaml`` (its ``defaults`` section merged with the named one). ``classic`` is ours (the paper never
ran classic control): a small model with a high train ratio, sized to learn CartPole and Pendulum on a CPU
in minutes. ``debug`` is a tiny model for tests and smoke runs; it learns nothing.

Choices where the paper and the code differ (see README): batch 16 (code) not 50 (paper), discount 0.999
(code) not 0.995 (paper), ``train_freq`` 16 (code) not 4 (paper); pass the other value to switch.
"""

from typing import Any

_ATARI: dict[str, Any] = {}  # the constructor defaults are the Atari config

_DMC: dict[str, Any] = dict(
    learning_starts=1000, pretrain_steps=100, prioritize_ends=False, train_freq=5, reward_transform="identity",
    pred_discount=False,
    deter_size=200, hidden_size=200, learning_rate=3e-4, actor_lr=8e-5, critic_lr=8e-5, actor_entropy=1e-4,
    kl_free=1.0, kl_scale=1.0, discount_scale=1.0, gamma=0.99, actor_grad="auto",
)  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {
    "atari": _ATARI,
    "dmc_vision": dict(_DMC),
    "dmc_proprio": dict(_DMC),
    "crafter": dict(
        learning_starts=10_000,
        train_freq=5,
        deter_size=1024,
        hidden_size=1024,
        norm="layer",
        learning_rate=1e-4,
        actor_lr=1e-4,
        critic_lr=1e-4,
        actor_entropy=3e-3,
        kl_scale=1.0,
        discount_scale=1.0,
        gamma=0.999,
        reward_transform="tanh",
    ),  # fmt: skip
    "classic": dict(
        learning_starts=1000,
        train_freq=5,
        gradient_steps=1,
        batch_size=16,
        sequence_length=32,
        deter_size=128,
        hidden_size=128,
        stoch_size=16,
        stoch_classes=16,
        mlp_layers=2,
        mlp_units=128,
        learning_rate=3e-4,
        actor_lr=1e-4,
        critic_lr=1e-4,
        actor_entropy=1e-3,
        gamma=0.99,
        reward_transform="identity",
        kl_scale=1.0,
        kl_free=1.0,
        discount_scale=5.0,
        buffer_size=100_000,
    ),  # fmt: skip
    "debug": dict(
        learning_starts=64,
        train_freq=8,
        batch_size=4,
        sequence_length=8,
        imagination_horizon=4,
        deter_size=32,
        hidden_size=32,
        stoch_size=4,
        stoch_classes=4,
        cnn_depth=4,
        mlp_layers=2,
        mlp_units=32,
        buffer_size=10_000,
        slow_target_update=10,
    ),  # fmt: skip
}
