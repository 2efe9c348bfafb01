"""Peer timing: seconds per gradient update of sheeprl 0.8.4's DreamerV2 on this machine's CPU.

One update is one call of sheeprl's own ``sheeprl.algos.dreamer_v2.dreamer_v2.train`` (world-model loss and step,
imagination over the horizon, actor step, critic step), on a batch of random data laid out as sheeprl's training loop
passes it (filled into sheeprl's own replay buffer with random steps, sampled with its ``sample_batches``). The agent,
optimizers and Fabric (CPU, fp32) are built by sheeprl's own code from its ``exp=dreamer_v2`` Hydra config, with the
sizes of our presets:

* ``--size atari``: 64x64x1 grayscale images (CNN key ``rgb``), Discrete(18), recurrent state 600, prior/posterior
  hidden 600, 32x32 discrete latents, MLPs 4x400, CNN depth 48, continue (discount) head, batch 16 x 50, horizon 15.
* ``--size classic``: a 4-float vector (MLP key ``state``), Discrete(2), recurrent state 200, prior/posterior hidden
  200, 16x16 discrete latents, MLPs 2x200, continue head, batch 16 x 50, horizon 15; sheeprl defaults otherwise.

It needs sheeprl, not this project: run it with a separate virtual environment (it does not import sb3_dreamer)::

    python3 -m venv /work/sheeprl_venv
    /work/sheeprl_venv/bin/pip install torch==2.13.0 sheeprl==0.8.4
    /work/sheeprl_venv/bin/python benchmarks/peers/sheeprl_dreamer_v2.py --size atari --threads 2 --warmup 1 --updates 3

Extra Hydra overrides of sheeprl's config may follow the options (e.g. ``algo.per_rank_sequence_length=32``).
It prints one JSON line: {"impl", "threads", "seconds_per_update", "world_model_params", "updates_timed", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

SIZES = {
    "atari": [
        "env=atari",
        "env.grayscale=True",
        "algo.cnn_keys.encoder=[rgb]",
        "algo.cnn_keys.decoder=[rgb]",
        "algo.mlp_keys.encoder=[]",
        "algo.mlp_keys.decoder=[]",
        "algo.world_model.recurrent_model.recurrent_state_size=600",
        "algo.world_model.transition_model.hidden_size=600",
        "algo.world_model.representation_model.hidden_size=600",
        "algo.world_model.stochastic_size=32",
        "algo.world_model.discrete_size=32",
        "algo.dense_units=400",
        "algo.mlp_layers=4",
        "algo.world_model.encoder.cnn_channels_multiplier=48",
        "algo.world_model.use_continues=True",
        # The loss scales of the paper's Atari config (sheeprl's `dreamer_v2_ms_pacman` exp): they do not change the
        # cost of an update, only its numbers
        "algo.gamma=0.999",
        "algo.world_model.kl_free_nats=0.0",
        "algo.world_model.kl_regularizer=0.1",
        "algo.world_model.discount_scale_factor=5.0",
        "algo.actor.ent_coef=0.001",
    ],
    "classic": [
        "env=gym",
        "env.id=CartPole-v1",
        "algo.cnn_keys.encoder=[]",
        "algo.cnn_keys.decoder=[]",
        "algo.mlp_keys.encoder=[state]",
        "algo.mlp_keys.decoder=[state]",
        "algo.world_model.recurrent_model.recurrent_state_size=200",
        "algo.world_model.transition_model.hidden_size=200",
        "algo.world_model.representation_model.hidden_size=200",
        "algo.world_model.stochastic_size=16",
        "algo.world_model.discrete_size=16",
        "algo.dense_units=200",
        "algo.mlp_layers=2",
        "algo.world_model.use_continues=True",
    ],
}
SPACES = {"atari": ("rgb", (1, 64, 64), 18), "classic": ("state", (4,), 2)}
COMMON = [
    "exp=dreamer_v2",
    "algo.per_rank_batch_size=16",
    "algo.per_rank_sequence_length=50",
    "algo.horizon=15",
    "env.num_envs=1",
    "fabric.accelerator=cpu",
    "fabric.devices=1",
    "fabric.precision=32-true",
    "algo.compile.enabled=False",
    "buffer.memmap=False",
    "buffer.size=1000",
    "buffer.type=sequential",
    "checkpoint.every=0",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates first")
    parser.add_argument("--updates", type=int, default=3, help="timed updates")
    parser.add_argument("--size", choices=sorted(SIZES), default="atari")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides of sheeprl's config")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # Before torch is imported, as sheeprl's CLI does with `num_threads` (it sets only this variable)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    warnings.filterwarnings("ignore")

    import gymnasium as gym
    import hydra
    import numpy as np
    import sheeprl
    import torch
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf
    from sheeprl.algos.dreamer_v2 import utils as dv2_utils
    from sheeprl.algos.dreamer_v2.agent import build_agent
    from sheeprl.algos.dreamer_v2.dreamer_v2 import train
    from sheeprl.algos.dreamer_v2.utils import build_buffer, build_optimizer, sample_batches
    from sheeprl.cli import check_configs
    from sheeprl.utils.metric import MetricAggregator
    from sheeprl.utils.timer import timer
    from sheeprl.utils.utils import dotdict
    from torch.distributions import Distribution

    torch.set_num_threads(args.threads)

    # The config as `sheeprl exp=dreamer_v2 ...` composes and checks it (sheeprl.cli.run)
    with initialize_config_module(config_module="sheeprl.configs", version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=COMMON + SIZES[args.size] + [f"num_threads={args.threads}"] + list(args.overrides),
        )
    cfg = dotdict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    check_configs(cfg)

    # The settings of sheeprl.cli.run_algorithm
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    Distribution.set_default_validate_args(cfg.distribution.validate_args)
    fabric = hydra.utils.instantiate(cfg.fabric, strategy=cfg.fabric.get("strategy", "auto"), _convert_="all")
    timer.disabled = cfg.metric.log_level == 0 or cfg.metric.disable_timer
    for k in set(cfg.metric.aggregator.metrics.keys()) - dv2_utils.AGGREGATOR_KEYS:
        cfg.metric.aggregator.metrics.pop(k, None)
    MetricAggregator.disabled = cfg.metric.log_level == 0 or len(cfg.metric.aggregator.metrics) == 0

    key, shape, n_actions = SPACES[args.size]
    dtype = np.uint8 if args.size == "atari" else np.float32
    low, high = (0, 255) if args.size == "atari" else (-5.0, 5.0)
    # The observation space as sheeprl's env wrappers give it: a Dict, images channel first
    observation_space = gym.spaces.Dict({key: gym.spaces.Box(low, high, shape, dtype)})
    action_space = gym.spaces.Discrete(n_actions)
    actions_dim = (int(action_space.n),)

    def run(fabric, cfg):
        fabric.seed_everything(cfg.seed)
        world_model, actor, critic, target_critic, _player = build_agent(fabric, actions_dim, False, cfg, observation_space)
        world_optimizer = build_optimizer(cfg.algo.world_model.optimizer, world_model.parameters())
        actor_optimizer = build_optimizer(cfg.algo.actor.optimizer, actor.parameters())
        critic_optimizer = build_optimizer(cfg.algo.critic.optimizer, critic.parameters())
        world_optimizer, actor_optimizer, critic_optimizer = fabric.setup_optimizers(
            world_optimizer, actor_optimizer, critic_optimizer
        )
        aggregator = None
        if not MetricAggregator.disabled:
            aggregator = hydra.utils.instantiate(cfg.metric.aggregator, _convert_="all").to(fabric.device)

        # Random steps added to sheeprl's replay buffer as its training loop adds them (an episode ends every 200
        # steps), then sampled with its `sample_batches`: the batches have the layout `train` gets in a real run
        rb = build_buffer(fabric, cfg, log_dir="/nonexistent", dry_run_size=2)
        rng = np.random.default_rng(0)
        n_envs = cfg.env.num_envs
        for t in range(4 * cfg.algo.per_rank_sequence_length):
            step_data = {key: observation_space[key].sample()[np.newaxis, np.newaxis].repeat(n_envs, 1)}
            actions = rng.integers(n_actions, size=n_envs)
            step_data["actions"] = np.eye(n_actions, dtype=np.float32)[actions].reshape(1, n_envs, -1)
            step_data["rewards"] = rng.normal(size=(1, n_envs, 1))
            step_data["terminated"] = np.full((1, n_envs, 1), float(t % 200 == 199))
            step_data["truncated"] = np.zeros((1, n_envs, 1))
            step_data["is_first"] = np.full((1, n_envs, 1), float(t % 200 == 0))
            rb.add(step_data, validate_args=cfg.buffer.validate_args)

        n_total = args.warmup + args.updates
        batches = list(sample_batches(fabric, cfg, rb, n_total))
        world_model_params = sum(p.numel() for p in world_model.parameters())

        def update(step: int, batch) -> None:
            # The target critic copy of sheeprl's training loop, then its `train`
            if step % cfg.algo.critic.per_rank_target_network_update_freq == 0:
                for cp, tcp in zip(critic.module.parameters(), target_critic.module.parameters()):
                    tcp.data.copy_(cp.data)
            train(
                fabric,
                world_model,
                actor,
                critic,
                target_critic,
                world_optimizer,
                actor_optimizer,
                critic_optimizer,
                batch,
                aggregator,
                cfg,
                actions_dim,
            )

        for step in range(args.warmup):
            update(step, batches[step])
        start = time.perf_counter()
        for step in range(args.warmup, n_total):
            update(step, batches[step])
        elapsed = time.perf_counter() - start
        result = {
            "impl": "sheeprl 0.8.4 dreamer_v2",
            "threads": torch.get_num_threads(),
            "seconds_per_update": round(elapsed / args.updates, 4) if args.updates else None,
            "world_model_params": world_model_params,
            "updates_timed": args.updates,
            "size": args.size,
            "batch": [cfg.algo.per_rank_batch_size, cfg.algo.per_rank_sequence_length],
            "sheeprl": sheeprl.__version__ if hasattr(sheeprl, "__version__") else None,
            "torch": torch.__version__,
        }
        print(json.dumps(result), flush=True)

    fabric.launch(run, cfg)


if __name__ == "__main__":
    sys.exit(main())
