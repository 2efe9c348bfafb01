"""Compare our DreamerV2 update with the reference's recorded one (``reference_dump.py``), quantity by quantity.

Runs in the project's virtual environment (torch only, no TensorFlow):

    .venv/bin/python benchmarks/fidelity/compare.py

For each ``tests/data/fidelity_<config>.npz`` it builds our agent at the same sizes and hyperparameters, copies
the reference's weights into ours through ONE name map (:func:`name_map`), feeds the same batch, replays the
reference's random draws through our own samplers (:class:`Replay`) and compares every recorded quantity.
Stages are compared from the reference's inputs (the behaviour stage starts from the reference's stepped world
model and posterior), so one difference does not hide the next.

Two passes per configuration:

- ``as_is``: our code as it is.
- ``aligned``: the differences that remain (``findings.py``, status ``documented`` or ``open``) neutralised from the
  outside (no change to ``sb3_dreamer``): Adam's epsilon set to ``eps / sqrt(1 - beta2)``, which is Keras' "epsilon
  hat" exactly at the first step (F4), and the continuous actor's log-probability taking the reference's gradient
  through the sampled action (F8, :func:`_reference_log_prob`). What still differs there is a further finding.

Both passes load the reference's weights (so the initialisers, F5 and F9, and the slow critic's first weights do not
matter past the ``init/*`` rows) and add back the constant ``0.5 log 2pi`` our Gaussian losses leave out.

Error measure per quantity: ``max |ours - ref|`` and ``max |ours - ref| / max |ref|`` (relative to the quantity's
largest magnitude, so that values near zero do not blow it up). Tolerance 1e-5 relative, except the ``init/*``
checks of a seeded model's initial weights, which state their own (``tol`` in their rows, see :func:`init_checks`).
Writes ``benchmarks/results/fidelity/report.json`` and ``report.md`` (with the committed ``before_fixes.json``, the
same table before the fixes of F1-F3 and F5-F7).
"""

import json
import math
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from torch import nn

# ---- every import from sb3_dreamer, in one block ---------------------------------------------------------------
from sb3_dreamer import DreamerV2
from sb3_dreamer.common import distributions as sb3_distributions  # the samplers replayed: th.rand / th.rand_like
from sb3_dreamer.common.type_aliases import RSSMState, SequenceBatch
from sb3_dreamer.dreamer.behavior import update_slow_critic
from sb3_dreamer.dreamer.losses import lambda_return

# -------------------------------------------------------------------------------------------------------------

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "fidelity"
CONFIGS = ("vector_discrete", "vector_continuous", "image_discrete")
LARGE = {"atari": pathlib.Path("/tmp")}  # the paper's Atari size: data too large to commit, and where it is by default
TOL = 1e-5
# At the paper's Atari size (``atari``), three world-model quantities get a looser bound; each is fp32 accumulation
# order, shown against our float64 computation of the same step (:func:`float64_check`, in the report), not maths.
LARGE_TOL = {
    "wm/grad": (
        2e-4,
        "the reference's fp32 gradient of the last transposed convolution's bias (a sum over 2 x 8 x 64 x 64 = 65,536 "
        "pixels) is 1.4e-4 of its size off the float64 value; ours 3.9e-6",
    ),
    "wm/grad_norm": (
        1e-4,
        "torch's fp32 vector norm of a 7.4M-element gradient (decoder conv0) is 2.5e-4 off its float64 norm, the global "
        "norm 4.3e-5; our gradients themselves are within 6e-8 of it in a float64 norm, the reference's norm 5.8e-7",
    ),
    "wm/params_after_step": (
        1e-3,
        "Adam's first step lr * g / (|g| + eps_hat) turns gradient rounding into up to lr * |dg| / (4 eps_hat) for "
        "|g| near eps_hat (3.2e-4 at step 1): zero-initialised biases; each side is 1-2e-4 off the float64 step",
    ),
}
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


# ------------------------------------------------------------------------------------------------ the name map


def weighted_layers(keys: list[str], prefix: str) -> list[str]:
    """Our layers with a weight directly under the ``nn.Sequential`` ``prefix``, in order (``prefix.<i>``)."""
    found = {int(k[len(prefix) + 1 :].split(".")[0]) for k in keys if k.startswith(prefix + ".") and k.endswith(".weight")
             and k[len(prefix) + 1 :].split(".")[0].isdigit()}  # fmt: skip
    return [f"{prefix}.{i}" for i in sorted(found)]


def name_map(meta: dict, keys: list[str]) -> list[tuple[str, str, str, slice | None]]:
    """The one map from the reference's variable paths to our ``policy.state_dict()`` keys (``keys``: ours, whose
    ``nn.Sequential`` indices are read from them: layer i of the reference is our i-th layer with a weight).

    :return: ``(reference path, our key or "" where we have no counterpart, transform, rows of ours)``. Transforms:
        ``dense`` Keras (in, out) -> torch (out, in); ``dense_feat`` the same with the input columns reordered
        from the reference's feature ``[stoch, deter]`` to ours ``[deter, stoch]``; ``dense_obs_out`` the same
        with the embedding's columns reordered from NHWC-flattened to NCHW-flattened; ``conv`` HWIO -> OIHW;
        ``conv_t`` Keras transposed (kh, kw, out, in) -> torch (in, out, kh, kw); ``vector`` as is.
    """
    cfg = meta["config"]
    image = len(meta["shapes"]["obs"]) == 3
    layers = len(cfg["encoder"]["mlp_layers"])
    head_layers = cfg["reward_head"]["layers"]
    entries: list[tuple[str, str, str, slice | None]] = []

    def dense(ref: str, ours: str, kind: str = "dense", rows: slice | None = None) -> None:
        entries.append((f"{ref}/kernel", f"{ours}.weight", kind, rows))
        entries.append((f"{ref}/bias", f"{ours}.bias", "vector", rows))

    wm = "world_model"
    if image:
        enc = weighted_layers(keys, f"{wm}.encoder.cnn")  # 4 convolutions
        for i in range(4):
            entries.append((f"wm/encoder/conv{i}/kernel", f"{enc[i]}.weight", "conv", None))
            entries.append((f"wm/encoder/conv{i}/bias", f"{enc[i]}.bias", "vector", None))
        dec = weighted_layers(keys, f"{wm}.decoder.cnn")  # a Linear, then 4 transposed convolutions
        dense("wm/heads/decoder/convin", dec[0], "dense_feat")
        for i in range(4):
            entries.append((f"wm/heads/decoder/conv{i}/kernel", f"{dec[1 + i]}.weight", "conv_t", None))
            entries.append((f"wm/heads/decoder/conv{i}/bias", f"{dec[1 + i]}.bias", "vector", None))
    else:
        enc, dec = weighted_layers(keys, f"{wm}.encoder.mlp"), weighted_layers(keys, f"{wm}.decoder.mlp")
        for i in range(layers):
            dense(f"wm/encoder/dense{i}", enc[i])
            dense(f"wm/heads/decoder/dense{i}", dec[i], "dense_feat" if i == 0 else "dense")
        dense("wm/heads/decoder/dense_obs/out", dec[layers])
    dense("wm/rssm/img_in", f"{wm}.rssm.img_in")
    entries.append(("wm/rssm/cell/dense/kernel", f"{wm}.rssm.cell.linear.weight", "dense", None))
    entries.append(("wm/rssm/cell/dense/bias", f"{wm}.rssm.cell.linear.bias", "vector", None))
    entries.append(("wm/rssm/cell/norm/gamma", f"{wm}.rssm.cell.norm.weight", "vector", None))
    entries.append(("wm/rssm/cell/norm/beta", f"{wm}.rssm.cell.norm.bias", "vector", None))
    dense("wm/rssm/img_out_0", f"{wm}.rssm.img_out.0")
    dense("wm/rssm/img_dist_0", f"{wm}.rssm.img_dist")
    dense("wm/rssm/obs_out", f"{wm}.rssm.obs_out", "dense_obs_out")
    dense("wm/rssm/obs_dist", f"{wm}.rssm.obs_dist")
    heads = [("wm/heads/reward", f"{wm}.reward_head")]
    if cfg["pred_discount"]:
        heads.append(("wm/heads/discount", f"{wm}.discount_head"))
    heads += [("ac/critic", "critic"), ("ac/target_critic", "slow_critic"), ("ac/actor", "actor.net")]
    for ref, prefix in heads:
        ours = weighted_layers(keys, prefix)
        for i in range(head_layers):
            dense(f"{ref}/dense{i}", ours[i], "dense_feat" if i == 0 else "dense")
        if ref == "ac/actor" and not isinstance(meta["shapes"]["action"], int):
            n = meta["shapes"]["action"][1]  # our one output layer holds (mean, std); the reference has two
            dense(f"{ref}/out/out", ours[head_layers], rows=slice(0, n))
            dense(f"{ref}/out/std", ours[head_layers], rows=slice(n, 2 * n))
        else:
            dense(f"{ref}/out/out", ours[head_layers])
    return entries


class Layout:
    """Index permutations between the reference's layouts and ours, for one configuration."""

    def __init__(self, meta: dict):
        rssm = meta["config"]["rssm"]
        self.deter, sk = rssm["deter"], rssm["stoch"] * rssm["discrete"]
        self.S, self.K = rssm["stoch"], rssm["discrete"]
        self.B, self.T, self.H = meta["shapes"]["B"], meta["shapes"]["T"], meta["shapes"]["H"]
        self.feat = np.concatenate([np.arange(sk, sk + self.deter), np.arange(sk)])  # ours[j] = ref[feat[j]]
        self.embed: np.ndarray | None = None
        if len(meta["shapes"]["obs"]) == 3:
            c = 8 * meta["config"]["encoder"]["cnn_depth"]  # last conv's channels; 2x2 output
            h = w = 2
            self.embed = np.array([(y * w + x) * c + ch for ch in range(c) for y in range(h) for x in range(w)])

    def to_ours(self, kind: str, value: np.ndarray) -> np.ndarray:
        """A reference variable's value (or gradient) in our parameter's layout."""
        if kind == "vector":
            return value
        if kind == "conv" or kind == "conv_t":
            return value.transpose(3, 2, 0, 1)
        if kind == "dense_feat":
            value = value[self.feat]
        if kind == "dense_obs_out" and self.embed is not None:
            value = np.concatenate([value[: self.deter], value[self.deter :][self.embed]])
        return value.T

    def seq(self, x: np.ndarray) -> np.ndarray:
        """Reference (B, T, ...) -> ours (T, B, ...)."""
        return np.swapaxes(x, 0, 1)

    def imag(self, x: np.ndarray) -> np.ndarray:
        """Reference (H + 1, N = B * T batch-major, ...) -> ours (H + 1, N = T * B time-major, ...)."""
        lead = x.shape[0]
        return np.swapaxes(x.reshape(lead, self.B, self.T, *x.shape[2:]), 1, 2).reshape(x.shape)

    def feat_of(self, x: np.ndarray) -> np.ndarray:
        return x[..., self.feat]


# ------------------------------------------------------------------------------------------------ replaying draws


def onehot_uniform(logits: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """The uniform that makes our inverse-CDF categorical sampler draw ``onehot``'s class: the midpoint of its
    bucket of the cumulative probabilities. :param logits: (..., K). :return: (..., 1)."""
    logits = logits.astype(np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    index = onehot.argmax(-1)[..., None]
    upper = np.take_along_axis(probs.cumsum(-1), index, -1)
    return (upper - 0.5 * np.take_along_axis(probs, index, -1)).astype(np.float32)


def truncnormal_uniform(x: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The uniform that makes our inverse-CDF truncated normal in [-1, 1] draw ``x``."""
    from scipy.special import ndtr  # noqa: PLC0415

    x, loc, scale = (a.astype(np.float64) for a in (x, loc, scale))
    lo, hi = ndtr((-1 - loc) / scale), ndtr((1 - loc) / scale)
    return ((ndtr((x - loc) / scale) - lo) / (hi - lo)).astype(np.float32)


class Replay:
    """Stands in for ``torch`` inside our samplers' module: ``rand`` / ``rand_like`` return the queued uniforms
    (checked against the shape asked for), everything else is torch's."""

    def __init__(self) -> None:
        self.queue: list[np.ndarray] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(th, name)

    def _pop(self, shape: tuple[int, ...], device: Any, dtype: Any) -> th.Tensor:
        if not self.queue:
            raise RuntimeError(f"Replay: our code drew a uniform {shape} beyond the reference's draws")
        value = self.queue.pop(0)
        if tuple(value.shape) != tuple(shape):
            raise RuntimeError(f"Replay: our code drew {tuple(shape)} where the reference drew {value.shape}")
        return th.as_tensor(value, device=device, dtype=dtype or th.float32)

    def rand(self, *shape: Any, device: Any = None, dtype: Any = None, **_: Any) -> th.Tensor:
        shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else tuple(shape)
        return self._pop(shape, device, dtype)

    def rand_like(self, like: th.Tensor, **_: Any) -> th.Tensor:
        return self._pop(tuple(like.shape), like.device, like.dtype)

    @contextmanager
    def draws(self, uniforms: list[np.ndarray]) -> Iterator[None]:
        self.queue = list(uniforms)
        saved = sb3_distributions.th
        sb3_distributions.th = self  # type: ignore[assignment]
        try:
            yield
        finally:
            sb3_distributions.th = saved
        if self.queue:
            raise RuntimeError(f"Replay: {len(self.queue)} of the reference's draws left unused")


# ------------------------------------------------------------------------------------------------ our side


class _Env(gym.Env):
    def __init__(self, obs_space: spaces.Space, act_space: spaces.Space):
        self.observation_space, self.action_space = obs_space, act_space

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


def build(meta: dict, norm: str = "none") -> DreamerV2:
    """Our agent at the reference's sizes and hyperparameters (``DreamerV2``'s public constructor); ``norm`` as the
    reference's configs (``none`` for the MLPs and CNNs, the GRU's LayerNorm regardless)."""
    cfg, shapes = meta["config"], meta["shapes"]
    image = len(shapes["obs"]) == 3
    obs_space = (
        spaces.Box(0, 255, tuple(shapes["obs"]), np.uint8) if image else spaces.Box(-10, 10, tuple(shapes["obs"]), np.float32)
    )
    act = shapes["action"]
    act_space = spaces.Discrete(act) if isinstance(act, int) else spaces.Box(-1, 1, (act[1],), np.float32)
    rssm = cfg["rssm"]
    return DreamerV2(
        "CnnPolicy" if image else "MlpPolicy", _Env(obs_space, act_space), learning_rate=float(cfg["model_opt"]["lr"]),
        buffer_size=64, batch_size=shapes["B"], sequence_length=shapes["T"], gamma=float(cfg["discount"]),
        return_lambda=float(cfg["discount_lambda"]), imagination_horizon=shapes["H"], deter_size=rssm["deter"],
        stoch_size=rssm["stoch"], stoch_classes=rssm["discrete"], hidden_size=rssm["hidden"],
        cnn_depth=cfg["encoder"]["cnn_depth"], mlp_layers=cfg["reward_head"]["layers"], mlp_units=cfg["reward_head"]["units"],
        norm=norm, pred_discount=bool(cfg["pred_discount"]), reward_transform=cfg["clip_rewards"],
        kl_scale=float(cfg["loss_scales"]["kl"]), kl_balance=float(cfg["kl"]["balance"]), kl_free=float(cfg["kl"]["free"]),
        kl_free_avg=bool(cfg["kl"]["free_avg"]), reward_scale=float(cfg["loss_scales"]["reward"]),
        discount_scale=float(cfg["loss_scales"]["discount"]), actor_lr=float(cfg["actor_opt"]["lr"]),
        critic_lr=float(cfg["critic_opt"]["lr"]), adam_eps=float(cfg["model_opt"]["eps"]),
        weight_decay=float(cfg["model_opt"]["wd"]), grad_clip=float(cfg["model_opt"]["clip"]), actor_grad=meta["actor_grad"],
        actor_grad_mix=float(cfg["actor_grad_mix"]),
        actor_entropy=float(cfg["actor_ent"]), actor_min_std=float(cfg["actor"]["min_std"]),
        slow_target_update=int(cfg["slow_target_update"]), slow_target_fraction=float(cfg["slow_target_fraction"]),
        keep_host_memory=False, device="cpu", seed=0,
    )  # fmt: skip


def world_model_loss(model: DreamerV2, batch: SequenceBatch) -> Any:
    """Our whole world-model loss (``WorldModelLoss``: loss, post, metrics), as the update computes it."""
    return model._updater.model_loss(batch)


def behavior(model: DreamerV2, post: RSSMState, is_terminal: th.Tensor, mode: str) -> Any:
    """Our whole behaviour loss (``BehaviorLoss``: actor_loss, critic_loss, metrics) with ``actor_grad=mode``."""
    updater = model._updater
    updater.config = model.config.replace(actor_grad=mode)
    try:
        return updater.behavior_loss(post, is_terminal)
    finally:
        updater.config = model.config


def slow_critic_update(model: DreamerV2) -> None:
    """Our slow-critic update after the first update (``n_updates`` 0)."""
    update_slow_critic(model.policy.slow_critic, model.policy.critic, 0, model.config)


def optimise(optimizer: th.optim.Optimizer, loss: th.Tensor, module: nn.Module, clip: float) -> None:
    """Backward, clip the global norm, step: what our update does for each optimiser (fp32, finite)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    th.nn.utils.clip_grad_norm_(module.parameters(), clip)
    optimizer.step()


@contextmanager
def _reference_log_prob() -> Iterator[None]:
    """Aligned pass (F8): the reference's ``policy.log_prob(seq['action'][1:-1])`` does not stop the gradient of the
    action, which TFP's truncated normal sampled as ``loc + scale * z`` with ``z`` held fixed (F7), so the gradient
    of the log-probability also flows through the action into the actor's ``loc`` and ``scale``; ours scores a
    detached action. Here the action is re-attached to the distribution it is scored under (the same actor outputs
    that drew it: same weights, same state): ``x = loc + scale * sg((x - loc) / scale)``, same value."""
    original = sb3_distributions.TruncNormal.log_prob

    def log_prob(self: Any, x: th.Tensor) -> th.Tensor:
        return original(self, self.loc + self.scale * ((x - self.loc) / self.scale).detach())

    sb3_distributions.TruncNormal.log_prob = log_prob  # type: ignore[method-assign]
    try:
        yield
    finally:
        sb3_distributions.TruncNormal.log_prob = original  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------------------ comparing


class Results:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def add(self, name: str, ours: Any, ref: Any) -> None:
        ours = ours.detach().double().cpu().numpy() if isinstance(ours, th.Tensor) else np.asarray(ours, np.float64)
        ref = np.asarray(ref, np.float64)
        if ours.shape != ref.shape:
            if ours.size == ref.size:
                ours = ours.reshape(ref.shape)
            else:
                raise ValueError(f"{name}: shape {ours.shape} vs the reference's {ref.shape}")
        err = float(np.abs(ours - ref).max()) if ref.size else 0.0
        scale = float(np.abs(ref).max()) if ref.size else 0.0
        self.rows[name] = {"max_abs": err, "max_rel": err / max(scale, 1e-12), "ref_max": scale}

    def missing(self, name: str, why: str) -> None:
        self.rows[name] = {"max_abs": None, "max_rel": None, "ref_max": None, "note": why}


def load(name: str, data_dir: pathlib.Path = DATA) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(data_dir / f"fidelity_{name}.npz") as data:
        rec = {k: data[k] for k in data.files}
    return rec, json.loads((data_dir / f"fidelity_{name}.json").read_text())


def set_weights(policy: nn.Module, rec: dict, prefix: str, entries: list, layout: Layout, only: str = "") -> None:
    """Copy the reference's ``prefix`` weights (w0 / w1) into ours, for the paths starting with ``only``."""
    state = policy.state_dict()
    with th.no_grad():
        for ref, ours, kind, rows in entries:
            if not ours or not ref.startswith(only):
                continue
            value = th.as_tensor(layout.to_ours(kind, rec[f"{prefix}/{ref}"]).copy())
            target = state[ours] if rows is None else state[ours][rows]
            target.copy_(value.reshape(target.shape))


def compare_params(res: Results, policy: nn.Module, rec: dict, name: str, prefix: str, entries: list, layout: Layout,
                   only: str, grads: bool = False) -> None:  # fmt: skip
    """Per-variable comparison of our parameters (or their gradients) with the reference's ``prefix`` arrays; the
    worst over the variables is the quantity ``name``, each variable is ``name/<ref path>``."""
    params = dict(policy.named_parameters())
    worst = {"max_abs": 0.0, "max_rel": 0.0, "ref_max": 0.0, "worst": ""}
    for ref, ours, kind, rows in entries:
        if not ref.startswith(only):
            continue
        key = f"{name}/{ref}"
        if not ours:
            res.missing(key, "no counterpart in our model")
            continue
        param = params[ours]
        value = param.grad if grads else param
        if value is None:
            value = th.zeros_like(param)
        value = value if rows is None else value[rows]
        res.add(key, value, layout.to_ours(kind, rec[f"{prefix}/{ref}"]))
        if res.rows[key]["max_rel"] > worst["max_rel"]:
            worst = {**res.rows[key], "worst": ref}
    res.rows[name] = worst


def batch_of(rec: dict, layout: Layout, image: bool) -> SequenceBatch:
    obs = layout.seq(rec["in/obs"])
    if image:
        obs = np.ascontiguousarray(obs.transpose(0, 1, 4, 2, 3))  # (T, B, C, H, W) uint8
    is_terminal = layout.seq(rec["in/is_terminal"]).astype(np.float32)
    t = lambda x: th.as_tensor(np.ascontiguousarray(x))  # noqa: E731
    return SequenceBatch(
        {"obs": t(obs)}, t(layout.seq(rec["in/action"])), t(layout.seq(rec["in/reward"])),
        t(layout.seq(rec["in/is_first"]).astype(np.float32)), t(is_terminal),
    )  # fmt: skip


INIT_STD_TOL = 0.1  # relative, for the empirical std of a layer's initial weights (layers with >= INIT_STD_MIN)
INIT_STD_MIN = 256
INIT_BOUND_TOL = 1e-6  # relative, max|w| <= limit * (1 + INIT_BOUND_TOL); the limits themselves


def _glorot_limit(weight: th.Tensor) -> float:
    """``sqrt(6 / (fan_in + fan_out))`` from our weight's shape (torch's fans; for a transposed convolution's
    ``(in, out, kh, kw)`` they sum to Keras' ``(kh, kw, out, in)`` fans)."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    return math.sqrt(6.0 / (fan_in + fan_out))


def init_checks(meta: dict, entries: list, model: DreamerV2) -> dict[str, dict[str, Any]]:
    """Our initial weights (``model`` built from a fixed seed) against Keras' initialisers, layer by layer: a glorot
    uniform draw's max is a sample maximum, so the checks are statistical, each with its tolerance (``tol``):

    - ``init/kernel_bound``: ``max|w| <= limit * (1 + 1e-6)`` (Keras' limit for the reference's layer);
    - ``init/kernel_std``: the empirical std within 10 % of ``limit / sqrt(3)`` (layers with >= 256 weights: the
      sample std of n uniforms has a relative spread of about ``0.45 / sqrt(n)``, 2.8 % at 256);
    - ``init/kernel_limit``: the glorot limit of the reference's layer's shape in ours (the rows of it that stand for
      the reference's layer, for the continuous actor's two heads in our one output layer) equals Keras';
    - ``init/bias``: exactly zero;
    - ``init/layernorm_eps``: every LayerNorm's epsilon is Keras' 1e-3 (also in a ``norm="layer"`` build).
    """
    params = dict(model.policy.named_parameters())
    bound, std, limit, bias = ({"max_rel": 0.0, "worst": ""} for _ in range(4))
    layers = []
    for ref, ours, kind, rows in entries:
        if not ours or ref.startswith("ac/target_critic"):  # ours starts as a copy of the critic
            continue
        value = params[ours].detach()
        value = value if rows is None else value[rows]
        if ref.endswith("kernel"):
            keras = meta["init_stats"][ref]["glorot_limit"]
            w = value.double()
            checks = {
                "max_abs_over_limit": float(w.abs().max()) / keras,
                "std_over_uniform_std": float(w.std(unbiased=False)) * math.sqrt(3) / keras,
                "limit_ours_over_keras": _glorot_limit(value) / keras,  # our rows of the reference's layer
            }
            layers.append({"ref": ref, "ours": ours, "weights": w.numel(), "keras_limit": keras, **checks})
            for row, err, applies in (
                (bound, max(0.0, checks["max_abs_over_limit"] - 1), True),
                (std, abs(checks["std_over_uniform_std"] - 1), w.numel() >= INIT_STD_MIN),
                (limit, abs(checks["limit_ours_over_keras"] - 1), True),
            ):
                if applies and err >= row["max_rel"]:
                    row.update(max_rel=err, worst=ref)
        elif kind == "vector" and not ref.endswith(("gamma", "beta")):
            err = float(value.abs().max())
            if err >= bias["max_rel"]:
                bias.update(max_rel=err, worst=ref)
    norm_layer = build(meta, norm="layer").policy
    eps = [m.eps for p in (model.policy, norm_layer) for m in p.modules() if isinstance(m, nn.LayerNorm)]
    eps_err = max(abs(e - 1e-3) for e in eps) / 1e-3
    return {
        "init/kernel_bound": {
            **bound, "max_abs": None, "ref_max": None, "tol": INIT_BOUND_TOL, "layers": layers,
            "note": "max over layers of max(0, our max|w| / Keras glorot_uniform limit - 1)",
        },
        "init/kernel_std": {
            **std, "max_abs": None, "ref_max": None, "tol": INIT_STD_TOL,
            "note": f"max over layers with >= {INIT_STD_MIN} weights of |our std / (limit / sqrt 3) - 1|",
        },
        "init/kernel_limit": {
            **limit, "max_abs": None, "ref_max": None, "tol": INIT_BOUND_TOL,
            "note": "max over layers of |glorot limit of our layer's shape / Keras' limit for the reference's - 1|",
        },
        "init/bias": {
            **bias, "max_abs": bias["max_rel"], "ref_max": 0.0, "tol": 0.0,
            "note": "max |bias| over our layers (Keras: zeros); tolerance 0",
        },
        "init/layernorm_eps": {
            "max_abs": eps_err * 1e-3, "ref_max": 1e-3, "max_rel": eps_err, "tol": TOL,
            "note": f"every LayerNorm's epsilon against Keras' 1e-3 ({len(eps)} LayerNorms, norm none and layer)",
        },
    }  # fmt: skip


def run_config(name: str, aligned: bool, data_dir: pathlib.Path = DATA) -> Results:
    """Every quantity of one configuration, one pass."""
    th.manual_seed(0)
    rec, meta = load(name, data_dir)
    cfg = meta["config"]
    layout = Layout(meta)
    image = len(meta["shapes"]["obs"]) == 3
    discrete = isinstance(meta["shapes"]["action"], int)
    gamma = float(cfg["discount"])
    res = Results()
    model = build(meta)
    policy = model.policy
    entries = name_map(meta, list(policy.state_dict()))
    wm = policy.world_model
    res.rows.update(init_checks(meta, entries, model))
    if aligned:
        for opt in (policy.model_optimizer, policy.actor_optimizer, policy.critic_optimizer):
            for group in opt.param_groups:  # F4: Keras' epsilon hat at step 1: eps / sqrt(1 - beta2)
                group["eps"] = group["eps"] / math.sqrt(1 - group["betas"][1])

    # ---- world model: forward, losses, gradients (reference's initial weights)
    set_weights(policy, rec, "w0", entries, layout)
    batch = batch_of(rec, layout, image)
    post_logit = layout.seq(rec["wm/post_logit"])  # (T, B, S, K)
    post_stoch = layout.seq(rec["wm/post_stoch"])
    post_draws = [onehot_uniform(post_logit[t], post_stoch[t]) for t in range(layout.T)]
    replay = Replay()
    with th.no_grad():
        embed = wm.encoder(wm.preprocess(batch.obs))
    ref_embed = layout.seq(rec["wm/embed"])
    res.add("wm/embed", embed, ref_embed if layout.embed is None else ref_embed[..., layout.embed])
    with replay.draws(post_draws):
        model_out = world_model_loss(model, batch)
    post, metrics = model_out.post, model_out.metrics
    res.add("wm/post_logit", post.logits, post_logit)
    res.add("wm/post_stoch", post.stoch, post_stoch)
    res.add("wm/deter", post.deter, layout.seq(rec["wm/deter"]))
    with th.no_grad():
        feat = post.feat()
        prior_logits = wm.rssm.img_dist(wm.rssm.img_out(post.deter)).unflatten(-1, (layout.S, layout.K))
        res.add("wm/prior_logit", prior_logits, layout.seq(rec["wm/prior_logit"]))
        mean = wm.decoder(feat)["obs"]
        ref_mean = layout.seq(rec["wm/decoder_mean"])
        if image:
            mean, ref_mean = mean[: ref_mean.shape[0]], ref_mean.transpose(0, 1, 4, 2, 3)
        res.add("wm/decoder_mean", mean, ref_mean)
        res.add("wm/reward_mean", wm.reward_head(feat).squeeze(-1), layout.seq(rec["wm/reward_mean"]))
        if wm.discount_head is not None:
            prob = th.sigmoid(wm.discount_head(feat).squeeze(-1))
            res.add("wm/discount_prob", prob, layout.seq(rec["wm/discount_prob"]))
    obs_dims = int(np.prod(meta["shapes"]["obs"]))
    res.add("wm/kl_loss", metrics["kl_loss"], rec["wm/kl_loss"])
    res.add("wm/kl_value", metrics["kl"], rec["wm/kl_value"].mean())
    # Our Gaussian losses leave out the constant 0.5 log(2 pi) per dimension (same gradients): added back here.
    res.add("wm/obs_loss", metrics["obs_loss"] + obs_dims * HALF_LOG_2PI, rec["wm/obs_loss"])
    res.add("wm/reward_loss", metrics["reward_loss"] + HALF_LOG_2PI, rec["wm/reward_loss"])
    if "discount_loss" in metrics:
        res.add("wm/discount_loss", metrics["discount_loss"], rec["wm/discount_loss"])
    const = (obs_dims + float(cfg["loss_scales"]["reward"])) * HALF_LOG_2PI
    res.add("wm/model_loss", model_out.loss.detach() + const, rec["wm/model_loss"])
    res.add("wm/post_entropy", metrics["post_entropy"], rec["wm/post_ent"])
    res.add("wm/prior_entropy", metrics["prior_entropy"], rec["wm/prior_ent"])
    policy.model_optimizer.zero_grad(set_to_none=True)
    model_out.loss.backward()
    compare_params(res, policy, rec, "wm/grad", "g", entries, layout, "wm/", grads=True)
    norm = th.nn.utils.clip_grad_norm_(wm.parameters(), float(cfg["model_opt"]["clip"]))
    res.add("wm/grad_norm", norm, rec["wm/grad_norm"])
    policy.model_optimizer.step()
    compare_params(res, policy, rec, "wm/params_after_step", "w1", entries, layout, "wm/")

    # ---- behaviour (reference's stepped world model, initial actor / critic / slow critic, reference posterior)
    set_weights(policy, rec, "w1", entries, layout, "wm/")
    set_weights(policy, rec, "w0", entries, layout, "ac/")
    is_terminal = th.as_tensor(layout.seq(rec["in/is_terminal"]).astype(np.float32))
    log_prob_as_reference = _reference_log_prob if aligned and not discrete else nullcontext
    start = RSSMState(
        th.as_tensor(layout.seq(rec["wm/deter"]).copy()), th.as_tensor(post_stoch.copy()), th.as_tensor(post_logit.copy())
    )
    imag_action = layout.imag(rec["imag/action"])
    imag_logit, imag_stoch = layout.imag(rec["imag/logit"]), layout.imag(layout_stoch(rec, layout))
    if discrete:
        actor_draws = [onehot_uniform(lg, a) for lg, a in zip(layout.imag(rec["imag/actor_logits"]), imag_action[1:])]
    else:
        loc, scale = layout.imag(rec["imag/actor_loc"]), layout.imag(rec["imag/actor_scale"])
        actor_draws = [truncnormal_uniform(a, m, s) for a, m, s in zip(imag_action[1:], loc, scale)]
    prior_draws = [onehot_uniform(imag_logit[t + 1], imag_stoch[t + 1]) for t in range(layout.H)]
    draws = [d for pair in zip(actor_draws, prior_draws) for d in pair]
    flat = RSSMState(*(x.flatten(0, 1) for x in start))
    with replay.draws(draws), th.no_grad():
        traj = wm.imagine(policy.actor, flat, is_terminal.flatten(), layout.H, gamma, last_heads=True)
        res.add("imag/feat", traj.feat, layout.feat_of(layout.imag(rec["imag/feat"])))
        res.add("imag/action", traj.action, imag_action)
        res.add("imag/reward", traj.reward, layout.imag(rec["imag/reward"]))
        res.add("imag/discount", traj.discount, layout.imag(rec["imag/discount"]))
        res.add("imag/weight", traj.weight, layout.imag(rec["imag/weight"]))
        value = policy.slow_critic(traj.feat).squeeze(-1)
        res.add("imag/slow_value", value, layout.imag(rec["imag/slow_value"]))
        target = lambda_return(traj.reward[:-1], value[:-1], traj.discount[:-1], value[-1], float(cfg["discount_lambda"]))
        res.add("imag/target", target, layout.imag(rec["imag/target"]))
        res.add("imag/critic_value", policy.critic(traj.feat[:-1]).squeeze(-1), layout.imag(rec["imag/critic_value"]))
        dist = policy.actor(traj.feat[:-2])
        res.add("ac/log_prob", dist.log_prob(traj.action[1:-1]), layout.imag(rec["ac/log_prob"]))
        res.add("ac/entropy", dist.entropy(), layout.imag(rec["ac/entropy"]))
    for mode in ("reinforce", "dynamics", "both"):
        with replay.draws(draws), log_prob_as_reference():
            loss = behavior(model, start, is_terminal, mode)
        res.add(f"ac/actor_loss/{mode}", loss.actor_loss, rec[f"ac/actor_loss/{mode}"])
        policy.actor.zero_grad(set_to_none=True)
        loss.actor_loss.backward()
        compare_params(
            res, policy, rec, f"ac/actor_grad/{mode}", f"ac/actor_grad/{mode}", entries, layout, "ac/actor/", grads=True
        )
        if mode == meta["actor_grad"]:
            base = loss
    weight = layout.imag(rec["imag/weight"])[:-1]
    res.add("ac/critic_loss", base.critic_loss + HALF_LOG_2PI * weight.mean(), rec["ac/critic_loss"])
    clip = float(cfg["actor_opt"]["clip"])
    with replay.draws(draws), log_prob_as_reference():
        base = behavior(model, start, is_terminal, meta["actor_grad"])
    optimise(policy.actor_optimizer, base.actor_loss, policy.actor, clip)
    optimise(policy.critic_optimizer, base.critic_loss, policy.critic, float(cfg["critic_opt"]["clip"]))
    compare_params(res, policy, rec, "ac/critic_grad", "g", entries, layout, "ac/critic/", grads=True)
    compare_params(res, policy, rec, "ac/actor_params_after_step", "w1", entries, layout, "ac/actor/")
    compare_params(res, policy, rec, "ac/critic_params_after_step", "w1", entries, layout, "ac/critic/")
    slow_critic_update(model)
    compare_params(res, policy, rec, "ac/slow_critic_after_update", "w1", entries, layout, "ac/target_critic/")
    if name in LARGE:
        for quantity, (tol, why) in LARGE_TOL.items():
            res.rows[quantity].update(tol=tol, tol_reason=why)
    return res


def _world_model_step(name: str, data_dir: pathlib.Path, dtype: th.dtype) -> tuple[dict, float, dict]:
    """Our world-model gradients, their global norm and the parameters after one (aligned, F4) Adam step, from the
    reference's initial weights, batch and draws, computed in ``dtype``: ``({ref path: grad}, norm, {ref path:
    param})`` in our layouts, as float64 numpy. The images enter as the same fp32 values ``[-0.5, 0.5]`` both
    sides feed (cast to ``dtype`` after the fp32 scaling)."""
    rec, meta = load(name, data_dir)
    layout = Layout(meta)
    saved = th.get_default_dtype()
    th.set_default_dtype(dtype)
    try:
        th.manual_seed(0)
        model = build(meta)
        policy = model.policy.to(dtype)
        entries = name_map(meta, list(policy.state_dict()))
        for group in policy.model_optimizer.param_groups:
            group["eps"] = group["eps"] / math.sqrt(1 - group["betas"][1])
        set_weights(policy, rec, "w0", entries, layout)
        wm = policy.world_model
        preprocess = wm.preprocess
        wm.preprocess = lambda obs: {k: v.to(dtype) for k, v in preprocess(obs).items()}  # type: ignore[method-assign]
        batch = batch_of(rec, layout, len(meta["shapes"]["obs"]) == 3)
        batch = batch._replace(**{f: getattr(batch, f).to(dtype) for f in ("action", "reward", "is_first", "is_terminal")})
        post_logit, post_stoch = layout.seq(rec["wm/post_logit"]), layout.seq(rec["wm/post_stoch"])
        with Replay().draws([onehot_uniform(post_logit[t], post_stoch[t]) for t in range(layout.T)]):
            out = world_model_loss(model, batch)
        policy.model_optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        params = dict(policy.named_parameters())
        wm_entries = [(ref, ours, rows) for ref, ours, _, rows in entries if ours and ref.startswith("wm/")]
        pick = lambda t, rows: (t if rows is None else t[rows]).detach().double().numpy().copy()  # noqa: E731
        grads = {ref: pick(params[ours].grad, rows) for ref, ours, rows in wm_entries}
        norm = float(th.nn.utils.clip_grad_norm_(wm.parameters(), float(meta["config"]["model_opt"]["clip"])))
        policy.model_optimizer.step()
        return grads, norm, {ref: pick(params[ours], rows) for ref, ours, rows in wm_entries}
    finally:
        th.set_default_dtype(saved)


def float64_check(name: str, data_dir: pathlib.Path = DATA) -> dict[str, dict[str, Any]]:
    """Both fp32 results (ours and the reference's) against our float64 computation of the same world-model step
    (same weights, batch and draws; F4 aligned): where ours and the reference's differ from each other by about as
    much as each differs from the float64 values, the difference is fp32 accumulation order, not the maths.
    :return: ``{quantity: {"ours": max rel error of our fp32 vs fp64, "reference": the reference's vs fp64,
    "ours_vs_reference": the two fp32 results against each other}}`` (relative to the fp64 value's max |.|, the
    worst variable for the per-variable quantities)."""
    rec, meta = load(name, data_dir)
    layout = Layout(meta)
    entries = {ref: kind for ref, _, kind, _ in name_map(meta, list(build(meta).policy.state_dict()))}
    g32, n32, p32 = _world_model_step(name, data_dir, th.float32)
    g64, n64, p64 = _world_model_step(name, data_dir, th.float64)

    def rel(a: np.ndarray, b: np.ndarray, exact: np.ndarray) -> float:
        return float(np.abs(np.asarray(a, np.float64) - b).max() / max(float(np.abs(exact).max()), 1e-30))

    rows: dict[str, dict[str, Any]] = {}
    for quantity, ours, exact, prefix in (("wm/grad", g32, g64, "g"), ("wm/params_after_step", p32, p64, "w1")):
        worst = {"ours": 0.0, "reference": 0.0, "ours_vs_reference": 0.0}
        for ref, value in exact.items():
            theirs = layout.to_ours(entries[ref], rec[f"{prefix}/{ref}"]).reshape(value.shape)
            for key, a, b in (
                ("ours", ours[ref], value),
                ("reference", theirs, value),
                ("ours_vs_reference", ours[ref], theirs),
            ):
                worst[key] = max(worst[key], rel(a, b, value))
        rows[quantity] = worst
    ref_norm = float(rec["wm/grad_norm"])
    rows["wm/grad_norm"] = {"ours": abs(n32 - n64) / n64, "reference": abs(ref_norm - n64) / n64,
                            "ours_vs_reference": abs(n32 - ref_norm) / n64}  # fmt: skip
    return rows


def layout_stoch(rec: dict, layout: Layout) -> np.ndarray:
    """The imagined one-hot latents (H + 1, N_ref, S, K), from the reference's features ``[stoch, deter]``."""
    feat = rec["imag/feat"]
    return feat[..., : layout.S * layout.K].reshape(*feat.shape[:-1], layout.S, layout.K)


def run_all(configs: tuple[str, ...] = CONFIGS, data_dir: pathlib.Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{config: {pass: {quantity: row}}}``; data from ``data_dir`` (default: ``tests/data``, ``/tmp`` for atari)."""
    th.set_num_threads(1)
    return {
        name: {p: run_config(name, p == "aligned", data_dir or LARGE.get(name, DATA)).rows for p in ("as_is", "aligned")}
        for name in configs
    }


def tolerance(row: dict[str, Any]) -> float:
    """A row's tolerance on ``max_rel``: its own (``init/*`` checks) or :data:`TOL`."""
    return row.get("tol", TOL)


def passes(row: dict[str, Any]) -> bool:
    return row["max_rel"] is not None and row["max_rel"] <= tolerance(row)


def provenance() -> str:
    """The commit the numbers were made on, and whether ``sb3_dreamer/`` differed from it."""
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if not git("status", "--porcelain", "--", "sb3_dreamer"):
        return f"commit {commit}"
    import hashlib  # noqa: PLC0415

    digest = hashlib.sha256(git("diff", "HEAD", "--", "sb3_dreamer").encode()).hexdigest()[:12]
    return f"commit {commit} with uncommitted changes to sb3_dreamer/ (diff sha256 {digest})"


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.1e}"


def _table(names: list[str], quantities: list[str], cell: Any, tol: Any) -> list[str]:
    header = "| quantity | tol | " + " | ".join(f"{n} as_is | {n} aligned" for n in names) + " |"
    lines = [header, "|---" * (2 + 2 * len(names)) + "|"]
    for q in quantities:
        cells = [cell(n, p, q) for n in names for p in ("as_is", "aligned")]
        lines.append(f"| {q} | {tol(q)} | " + " | ".join(cells) + " |")
    return lines


ATARI_COMMAND = (
    "/tmp/ref/bin/python benchmarks/fidelity/reference_dump.py atari   # -> /tmp/fidelity_atari.npz (~290 MB)\n"
    ".venv/bin/python benchmarks/fidelity/compare.py --configs atari   # reads /tmp (--data-dir), keeps the tiny rows"
)


def write_report(results: dict, findings: list[dict], made_on: str | None = None, large: dict | None = None) -> None:
    """``results``: the tiny configs; ``large``: the Atari-size block (``results``, ``float64``, ``made_on``, ...)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    made_on = made_on or provenance()
    before_path = RESULTS / "before_fixes.json"
    before = json.loads(before_path.read_text()) if before_path.exists() else None
    report = {"tolerance_rel": TOL, "made_on": made_on, "results": results, "findings": findings}
    if large is not None:
        report["atari"] = large
    (RESULTS / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    names = list(results)
    lines = [
        "# Fidelity against danijar/dreamerv2 2.2.0",
        "",
        "Generated by `benchmarks/fidelity/compare.py` from `tests/data/fidelity_*.npz` (`reference_dump.py`).",
        "Max relative error per quantity: `max|ours - ref| / max|ref|`, against the tolerance in the `tol` column",
        "(✗: over it). `as_is`: our code; `aligned`: the differences still documented or open neutralised from the",
        "outside (F4: Adam's epsilon at step 1; F8: the continuous actor's log-probability gradient; see compare.py).",
        "The `init/*` rows check a seeded model's initial weights statistically (see `init_checks` in compare.py;",
        "their value is the worst layer's statistic, not an error against the reference's draws). Per-variable rows",
        "and per-layer initialisation statistics are in report.json.",
        "",
        "## After the fixes",
        "",
        f"Made on {made_on}.",
        "",
        *_results_table(results),
    ]
    if before is not None:
        old = before["max_rel"]
        old_quantities = list(dict.fromkeys(q for n in old for q in old[n]["as_is"]))

        def before_cell(n: str, p: str, q: str) -> str:
            value = old.get(n, {}).get(p, {}).get(q, "n/a")
            if value == "n/a":
                return value
            return _fmt(value) + ("" if value is not None and value <= before["tolerance_rel"] else " ✗")

        lines += [
            "",
            "## Before the fixes",
            "",
            f"Made on commit {before['commit']} (`before_fixes.json`), before the fixes of F1-F3 and F5-F7; the "
            "`aligned` pass then also neutralised F1-F3 and F6; every tolerance was 1e-5, and `init/kernel_bound` was "
            "the worst layer's |log(max|w| / glorot limit)| as a ratio - 1.",
            "",
            *_table(names, old_quantities, before_cell, lambda q: f"{before['tolerance_rel']:g}"),
        ]
    if large is not None:
        lines += ["", *_large_section(large)]
    lines += ["", "## Findings", "", "| id | status | quantities | cause | fix or reason |", "|---|---|---|---|---|"]
    for f in findings:
        lines.append(f"| {f['id']} | {f['status']} | {', '.join(f['quantities'])} | {f['cause']} | {f['resolution']} |")
    (RESULTS / "report.md").write_text("\n".join(lines) + "\n")


def _results_table(results: dict) -> list[str]:
    """The per-quantity table (both passes of each config, the tolerance column) of ``run_all``'s results."""
    names = list(results)
    quantities = [q for q in dict.fromkeys(q for n in names for q in results[n]["as_is"]) if not _per_variable(q)]

    def cell(n: str, p: str, q: str) -> str:
        row = results[n][p].get(q)
        return "n/a" if row is None else _fmt(row["max_rel"]) + ("" if passes(row) else " ✗")

    def tol(q: str) -> str:
        rows = [results[n]["as_is"][q] for n in names if q in results[n]["as_is"]]
        return f"{tolerance(rows[0]):g}"

    return _table(names, quantities, cell, tol)


def _large_section(large: dict) -> list[str]:
    lines = [
        "## At the paper's Atari size",
        "",
        f"Made on {large['made_on']}. The reference's own `atari` config (`defaults` + `atari` of its configs.yaml:",
        "deter and hidden 600, 32x32 latents, CNN depth 48, MLPs 4x400, 64x64x1 images, 18 actions, horizon 15), fp32,",
        f"batch {large['shapes']['B']} x {large['shapes']['T']}, one update; same harness, name map and passes as above.",
        "Its data (~290 MB) is not committed and the default test does not read it. Reproduce:",
        "",
        "```bash",
        *large["command"].splitlines(),
        "```",
        "",
        "Tolerance 1e-5 except three world-model quantities, bounded looser for fp32 accumulation order (`LARGE_TOL`",
        "in compare.py), each shown against our float64 computation of the same step in the second table:",
        "",
        *(f"- `{q}` {tol_:g}: {why}." for q, (tol_, why) in LARGE_TOL.items()),
        "",
        *_results_table(large["results"]),
        "",
        "`as_is` is over its bound only in the optimiser steps (F4, Adam's epsilon), as at the tiny sizes.",
        "",
        "Each fp32 result against the float64 one (our code in float64 from the same weights, batch and draws, F4",
        "aligned; relative to the float64 value's max |.|, worst variable):",
        "",
        "| quantity | ours fp32 vs fp64 | reference fp32 vs fp64 | ours vs reference |",
        "|---|---|---|---|",
        *(
            f"| {q} | {_fmt(r['ours'])} | {_fmt(r['reference'])} | {_fmt(r['ours_vs_reference'])} |"
            for q, r in large["float64"].items()
        ),
    ]
    return lines


def _per_variable(q: str) -> bool:
    return any(q.startswith(p + "/") and q != p for p in PER_VARIABLE)


PER_VARIABLE = (
    "wm/grad", "wm/params_after_step", "ac/actor_grad/reinforce", "ac/actor_grad/dynamics", "ac/actor_grad/both",
    "ac/critic_grad", "ac/actor_params_after_step", "ac/critic_params_after_step", "ac/slow_critic_after_update",
)  # fmt: skip


def main() -> None:
    import argparse  # noqa: PLC0415

    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from findings import FINDINGS  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs", nargs="+", default=list(CONFIGS), choices=[*CONFIGS, *LARGE],
        help="default: the tiny configs; the report keeps the rows of the configs not run from report.json",
    )  # fmt: skip
    parser.add_argument("--data-dir", type=pathlib.Path, help="default: tests/data (tiny), /tmp (atari)")
    args = parser.parse_args()
    previous = json.loads((RESULTS / "report.json").read_text()) if (RESULTS / "report.json").exists() else {}
    tiny = tuple(n for n in args.configs if n in CONFIGS)
    results = run_all(tiny, args.data_dir)
    made_on = None
    if len(tiny) < len(CONFIGS):  # keep the committed rows of the tiny configs not run now
        kept = {n: r for n, r in previous.get("results", {}).items() if n not in results}
        results, made_on = {**kept, **results}, previous.get("made_on") if not tiny else None
    large = previous.get("atari")
    if "atari" in args.configs:
        data_dir = args.data_dir or LARGE["atari"]
        _, meta = load("atari", data_dir)
        large = {
            "made_on": provenance(), "command": ATARI_COMMAND, "data": str(data_dir / "fidelity_atari.npz"),
            "shapes": meta["shapes"], "tolerances": {q: {"tol": t, "why": w} for q, (t, w) in LARGE_TOL.items()},
            "results": run_all(("atari",), data_dir), "float64": float64_check("atari", data_dir),
        }  # fmt: skip
    write_report(results, FINDINGS, made_on, large)
    for name, passes_ in {**results, **(large["results"] if large else {})}.items():
        for p, rows in passes_.items():
            bad = {q: r["max_rel"] for q, r in rows.items() if not _per_variable(q) and not passes(r)}
            over = json.dumps({k: f"{v:.1e}" for k, v in bad.items()})
            print(f"{name:18s} {p:8s} {len(rows):4d} quantities, over tolerance: {over}")
    print(f"report: {RESULTS / 'report.md'}")


if __name__ == "__main__":
    main()
