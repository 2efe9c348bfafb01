"""Record one DreamerV2 update of the reference implementation (danijar/dreamerv2 2.2.0, MIT) at tiny sizes
(deter 16, hidden 16, 4x4 latents, MLPs 2x16, CNN depth 1, batch 2 x 6 steps, horizon 4).

Runs in the reference's own virtual environment (TensorFlow 2.15, TFP 0.23), never in the project's:

    /tmp/ref/bin/python benchmarks/fidelity/reference_dump.py            # the three tiny configs -> tests/data
    /tmp/ref/bin/python benchmarks/fidelity/reference_dump.py atari      # the paper's Atari size -> /tmp

``atari`` is the reference's own ``atari`` section of ``configs.yaml`` (``defaults`` + ``atari``: deter and hidden
600, 32x32 latents, CNN depth 48, MLPs 4x400, 64x64x1 images, 18 actions, horizon 15) in fp32 with a small batch
(2 x 8) and one update; its data (~200 MB, uncompressed) goes to ``/tmp/fidelity_atari.npz`` (``--out-dir``), never
into the repository.

For each configuration in ``CONFIGS`` it builds the reference's ``WorldModel`` and ``ActorCritic`` (from
``dreamerv2.agent``, configured from the package's own ``configs.yaml``: ``defaults`` + ``debug`` + the tiny
overrides below, ``precision: 32``), draws one fixed batch with numpy, and records in fp32 everything the update
computes: the world model's forward quantities, its loss terms and gradients, one step of its optimiser; the
imagination, lambda-returns, actor (``reinforce`` / ``dynamics`` / ``both``) and critic losses with their
gradients and optimiser steps; the slow critic after the update; the initial weights' statistics and the layers'
settings (initialisers, LayerNorm epsilon). It writes ``tests/data/fidelity_<config>.npz`` and a JSON sidecar.

Samples. Every random draw of the reference (the posterior samples of ``observe``, the actor's actions and the
prior samples of ``imagine``) ends up in the recorded states (``post_stoch``, ``imag_action``, ``imag_stoch``),
next to the logits / distribution parameters it was drawn from (``post_logit``, ``imag_actor_*``,
``imag_logit``). ``compare.py`` replays them through our own samplers by choosing their uniforms: for a
one-hot categorical the midpoint of the recorded class's bucket of the cumulative probabilities, for the
truncated normal ``u = (Phi((x - loc) / scale) - Phi(alpha)) / Z`` of the recorded sample ``x``.
The prior samples that ``observe`` draws (the reference samples the prior inside ``obs_step`` and discards it)
feed nothing and are not replayed. The three actor-gradient modes reuse the same draws: TF's global seed is
reset before each imagination, and the script asserts that the imagined trajectories are identical.

Weights are stored under ``w0/<path>`` (initial), ``w1/<path>`` (after the update) and ``g/<path>`` (gradient of
the loss of the optimiser that owns the variable), where ``<path>`` is the reference's module path built from the
names its ``Module.get`` gives its layers (e.g. ``wm/rssm/img_in/kernel``, ``wm/heads/decoder/conv0/kernel``,
``ac/actor/out/std/kernel``); the sidecar lists each path's TF variable name too.
"""

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Shim: dreamerv2 2.2.0 imports ``tensorflow.keras.mixed_precision.experimental`` (gone since TF 2.9); the
# functions it uses (``global_policy``) live on ``tensorflow.keras.mixed_precision`` itself.
from tensorflow.keras import mixed_precision  # noqa: E402

mixed_precision.experimental = mixed_precision
sys.modules["tensorflow.keras.mixed_precision.experimental"] = mixed_precision

import dreamerv2  # noqa: E402  (a namespace package: no __init__)

REF_DIR = pathlib.Path(list(dreamerv2.__path__)[0])
sys.path.insert(0, str(REF_DIR))  # the reference imports ``common`` and ``expl`` as top-level modules
import agent  # noqa: E402
import common  # noqa: E402
import ruamel.yaml as yaml  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "tests" / "data"
LARGE_OUT_DIR = pathlib.Path("/tmp")  # configs too large to commit

B, T, H = 2, 6, 4  # batch, window length, imagination horizon (tiny configs)

TINY = {
    "precision": 32,
    "jit": False,
    "dataset": {"batch": B, "length": T},
    "imag_horizon": H,
    "rssm": {"ensemble": 1, "hidden": 16, "deter": 16, "stoch": 4, "discrete": 4, "act": "elu", "norm": "none"},
    "reward_head": {"layers": 2, "units": 16, "act": "elu", "norm": "none", "dist": "mse"},
    "discount_head": {"layers": 2, "units": 16, "act": "elu", "norm": "none", "dist": "binary"},
    "actor": {"layers": 2, "units": 16, "act": "elu", "norm": "none", "dist": "auto", "min_std": 0.1},
    "critic": {"layers": 2, "units": 16, "act": "elu", "norm": "none", "dist": "mse"},
}


def _coder(vector: bool, kernels: list[int]) -> dict:  # CNN depth 1: channels 1, 2, 4, 8 (decoder 32 -> 4 -> 2 -> 1)
    keys = {"mlp_keys": "obs", "cnn_keys": "$^"} if vector else {"mlp_keys": "$^", "cnn_keys": "obs"}
    return {**keys, "act": "elu", "norm": "none", "cnn_depth": 1, "cnn_kernels": kernels, "mlp_layers": [16, 16]}


# name -> (observation shape, action: int n (Discrete) or ("box", dims), overrides of the tiny config)
CONFIGS = {
    # Atari-like: discrete actions, reinforce, tanh rewards, discount head, KL scale 0.1, no free nats.
    "vector_discrete": (
        (5,),
        3,
        {
            "clip_rewards": "tanh",
            "pred_discount": True,
            "kl": {"free": 0.0, "forward": False, "balance": 0.8, "free_avg": True},
            "loss_scales": {"kl": 0.1, "reward": 1.0, "discount": 5.0, "proprio": 1.0},
            "discount": 0.999,
            "actor_ent": 1e-3,
            "actor_grad": "auto",
            "model_opt": {"opt": "adam", "lr": 2e-4, "eps": 1e-5, "clip": 100, "wd": 1e-6},
            "actor_opt": {"opt": "adam", "lr": 4e-5, "eps": 1e-5, "clip": 100, "wd": 1e-6},
            "critic_opt": {"opt": "adam", "lr": 1e-4, "eps": 1e-5, "clip": 100, "wd": 1e-6},
        },
    ),
    # DMC-like: continuous actions, dynamics backprop, no discount head, per-step free nats.
    "vector_continuous": (
        (5,),
        ("box", 2),
        {
            "clip_rewards": "identity",
            "pred_discount": False,
            "grad_heads": ["decoder", "reward"],
            "kl": {"free": 0.02, "forward": False, "balance": 0.8, "free_avg": False},
            "loss_scales": {"kl": 1.0, "reward": 1.0, "discount": 1.0, "proprio": 1.0},
            "discount": 0.99,
            "actor_ent": 1e-4,
            "actor_grad": "auto",
            "model_opt": {"opt": "adam", "lr": 3e-4, "eps": 1e-5, "clip": 100, "wd": 1e-6},
            "actor_opt": {"opt": "adam", "lr": 8e-5, "eps": 1e-5, "clip": 100, "wd": 1e-6},
            "critic_opt": {"opt": "adam", "lr": 8e-5, "eps": 1e-5, "clip": 100, "wd": 1e-6},
        },
    ),
    # Atari-like on 64x64x1 images at CNN depth 1.
    "image_discrete": (
        (64, 64, 1),
        3,
        {
            "clip_rewards": "tanh",
            "pred_discount": True,
            "kl": {"free": 0.0, "forward": False, "balance": 0.8, "free_avg": True},
            "loss_scales": {"kl": 0.1, "reward": 1.0, "discount": 5.0, "proprio": 1.0},
            "discount": 0.999,
            "actor_ent": 1e-3,
            "actor_grad": "auto",
            "model_opt": {"opt": "adam", "lr": 2e-4, "eps": 1e-5, "clip": 100, "wd": 1e-6},
            "actor_opt": {"opt": "adam", "lr": 4e-5, "eps": 1e-5, "clip": 100, "wd": 1e-6},
            "critic_opt": {"opt": "adam", "lr": 1e-4, "eps": 1e-5, "clip": 100, "wd": 1e-6},
        },
    ),
}


# The paper's Atari size: the reference's ``defaults`` + ``atari`` sections as they are (no ``debug``, no tiny
# overrides), fp32, eager, a small batch; the image key is called ``obs`` here as in the tiny configs.
ATARI_B, ATARI_T = 2, 8
ATARI = {
    "precision": 32,
    "jit": False,
    "dataset": {"batch": ATARI_B, "length": ATARI_T},
    "encoder": {"mlp_keys": "$^", "cnn_keys": "obs"},
    "decoder": {"mlp_keys": "$^", "cnn_keys": "obs"},
}
LARGE = {"atari": ((64, 64, 1), 18)}  # name -> (observation shape, actions); written to LARGE_OUT_DIR


class Space:
    def __init__(self, shape, n=None):
        self.shape = tuple(shape)
        if n is not None:
            self.n = n


def make_config(obs_shape, overrides):
    configs = yaml.YAML(typ="safe").load((REF_DIR / "configs.yaml").read_text())
    config = common.Config(configs["defaults"]).update(configs["debug"]).update(TINY)
    vector = len(obs_shape) == 1
    config = config.update({"encoder": _coder(vector, [4, 4, 4, 4]), "decoder": _coder(vector, [5, 5, 6, 6])})
    return config.update(overrides)


def make_atari_config():
    configs = yaml.YAML(typ="safe").load((REF_DIR / "configs.yaml").read_text())
    return common.Config(configs["defaults"]).update(configs["atari"]).update(ATARI)


def make_batch(seed, obs_shape, act, B=B, T=T):  # noqa: N803
    rng = np.random.default_rng(seed)
    if len(obs_shape) == 3:
        coarse = rng.integers(0, 256, (B, T, 8, 8, obs_shape[-1]), dtype=np.uint8)  # 8x8 blocks: compresses
        obs = coarse.repeat(8, 2).repeat(8, 3)
    else:
        obs = rng.normal(size=(B, T, *obs_shape)).astype(np.float32)
    if isinstance(act, int):
        action = np.eye(act, dtype=np.float32)[rng.integers(0, act, (B, T))]
    else:
        action = rng.uniform(-1, 1, (B, T, act[1])).astype(np.float32)
    reward = rng.normal(size=(B, T)).astype(np.float32)
    is_first = np.zeros((B, T), bool)
    is_terminal = np.zeros((B, T), bool)
    is_first[:, 0] = True
    is_terminal[1, 2] = True  # episode of row 1 ends at step 2, a new one starts at step 3
    is_first[1, 3] = True
    action[is_first] = 0.0
    reward[is_first] = 0.0
    return dict(obs=obs, action=action, reward=reward, is_first=is_first, is_terminal=is_terminal)


def named_variables(obj, prefix, out):
    """(path -> tf.Variable) of a reference module, by the names ``Module.get`` gave its layers."""
    if isinstance(obj, common.GRUCell):
        named_variables(obj._layer, prefix + "/dense", out)
        if obj._norm:
            named_variables(obj._norm, prefix + "/norm", out)
        return out
    if isinstance(obj, tf.keras.layers.Layer):
        for var in obj.weights:
            out[prefix + "/" + var.name.split("/")[-1].split(":")[0]] = var
        return out
    for name, child in sorted(getattr(obj, "_modules", {}).items()):
        named_variables(child, f"{prefix}/{name}", out)
    if isinstance(obj, common.EnsembleRSSM):
        named_variables(obj._cell, prefix + "/cell", out)
    return out


def layer_settings(obj, prefix, out):
    """(path -> the Keras layer's initialisers, epsilon, padding) of a reference module."""
    if isinstance(obj, common.GRUCell):
        layer_settings(obj._layer, prefix + "/dense", out)
        if obj._norm:
            layer_settings(obj._norm, prefix + "/norm", out)
        out[prefix] = {"update_bias": obj._update_bias, "act": "tanh", "gate_order": "reset, cand, update"}
        return out
    if isinstance(obj, tf.keras.layers.Layer):
        cfg = obj.get_config()
        keep = (
            "kernel_initializer",
            "bias_initializer",
            "use_bias",
            "epsilon",
            "padding",
            "strides",
            "center",
            "scale",
            "gamma_initializer",
            "beta_initializer",
            "activation",
        )
        out[prefix] = {
            k: (v["class_name"] if isinstance(v, dict) and "class_name" in v else v) for k, v in cfg.items() if k in keep
        }
        return out
    for name, child in sorted(getattr(obj, "_modules", {}).items()):
        layer_settings(child, f"{prefix}/{name}", out)
    if isinstance(obj, common.EnsembleRSSM):
        layer_settings(obj._cell, prefix + "/cell", out)
    return out


def glorot_limit(shape):
    """Keras' glorot_uniform limit for a Dense (in, out) or Conv (kh, kw, in, out) / ConvT (kh, kw, out, in) kernel."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    return float(np.sqrt(6.0 / (fan_in + fan_out)))


def run(name, obs_shape, act, overrides, seed, out_dir=OUT_DIR):
    tf.keras.backend.reset_uids()  # layer names restart at their first index for each config
    tf.random.set_seed(seed)
    np.random.seed(seed)
    config = make_atari_config() if name in LARGE else make_config(obs_shape, overrides)
    B, T = config.dataset.batch, config.dataset.length  # noqa: N806
    discrete = isinstance(act, int)
    act_space = Space((act,), act) if discrete else Space((act[1],))
    obs_space = {"obs": Space(obs_shape)}
    tfstep = tf.Variable(0, dtype=tf.int64)
    wm = agent.WorldModel(config, obs_space, tfstep)
    ac = agent.ActorCritic(config, act_space, tfstep)
    data_np = make_batch(seed, obs_shape, act, B, T)
    data = {k: tf.convert_to_tensor(v) for k, v in data_np.items()}

    # Build every variable with one throw-away forward pass, then record the initial weights.
    wm.loss(data)
    feat_size = config.rssm.deter + config.rssm.stoch * config.rssm.discrete
    dummy = tf.zeros((1, feat_size))
    ac.actor(dummy)
    ac.critic(dummy)
    ac._target_critic(dummy)
    variables = {}
    named_variables(wm.encoder, "wm/encoder", variables)
    named_variables(wm.rssm, "wm/rssm", variables)
    for head, mod in wm.heads.items():
        named_variables(mod, f"wm/heads/{head}", variables)
    named_variables(ac.actor, "ac/actor", variables)
    named_variables(ac.critic, "ac/critic", variables)
    named_variables(ac._target_critic, "ac/target_critic", variables)
    assert len({id(v) for v in variables.values()}) == len(variables)
    wm_vars = tf.nest.flatten([m.variables for m in [wm.encoder, wm.rssm, *wm.heads.values()]])
    mine = {id(v) for k, v in variables.items() if k.startswith("wm/")}
    assert {id(v) for v in wm_vars} == mine, (
        [v.name for v in wm_vars if id(v) not in mine],
        [k for k, v in variables.items() if k.startswith("wm/") and id(v) not in {id(w) for w in wm_vars}],
    )
    path_of = {id(v): k for k, v in variables.items()}
    rec = {f"w0/{k}": v.numpy() for k, v in variables.items()}
    settings = {}
    for mod, prefix in [(wm.encoder, "wm/encoder"), (wm.rssm, "wm/rssm"), (ac.actor, "ac/actor"), (ac.critic, "ac/critic")]:
        layer_settings(mod, prefix, settings)
    for head, mod in wm.heads.items():
        layer_settings(mod, f"wm/heads/{head}", settings)
    init_stats = {
        k: {
            "shape": list(v.shape),
            "std": float(v.numpy().std()),
            "min": float(v.numpy().min()),
            "max": float(v.numpy().max()),
            "glorot_limit": glorot_limit(v.shape) if k.endswith("kernel") else None,
        }
        for k, v in variables.items()
    }
    for key, value in data_np.items():
        rec[f"in/{key}"] = value

    # ---- world model: loss, gradients, one optimiser step
    tf.random.set_seed(seed + 1)
    with tf.GradientTape(persistent=True) as tape:
        model_loss, _, outs, mets = wm.loss(data)
    grads = tape.gradient(model_loss, wm_vars)
    for var, grad in zip(wm_vars, grads):
        rec[f"g/{path_of[id(var)]}"] = np.zeros(var.shape, np.float32) if grad is None else grad.numpy()
    rec["wm/grad_norm"] = tf.linalg.global_norm([g for g in grads if g is not None]).numpy()
    post, prior = outs["post"], outs["prior"]
    rec["wm/embed"] = outs["embed"].numpy()
    rec["wm/post_logit"] = post["logit"].numpy()
    rec["wm/post_stoch"] = post["stoch"].numpy()
    rec["wm/deter"] = post["deter"].numpy()
    rec["wm/prior_logit"] = prior["logit"].numpy()
    rec["wm/kl_value"] = outs["kl"].numpy()
    for key in ("kl_loss", "obs_loss", "reward_loss", "discount_loss"):
        if key in mets:
            rec[f"wm/{key}"] = mets[key].numpy()
    rec["wm/model_loss"] = model_loss.numpy()
    rec["wm/prior_ent"] = mets["prior_ent"].numpy()
    rec["wm/post_ent"] = mets["post_ent"].numpy()
    feat = outs["feat"]
    decoder_mean = wm.heads["decoder"](feat)["obs"].mode().numpy()
    rec["wm/decoder_mean"] = decoder_mean[:, :2] if decoder_mean.ndim == 5 else decoder_mean  # images: 2 steps
    rec["wm/reward_mean"] = wm.heads["reward"](feat).mode().numpy()
    if "discount" in wm.heads:
        rec["wm/discount_prob"] = wm.heads["discount"](feat).mean().numpy()
    wm.model_opt(tape, model_loss, [wm.encoder, wm.rssm, *wm.heads.values()])
    del tape
    opt_settings = {}
    for opt_name, opt in [("model", wm.model_opt), ("actor", ac.actor_opt), ("critic", ac.critic_opt)]:
        cfg = opt._opt.get_config()
        opt_settings[opt_name] = {
            "class": type(opt._opt).__module__ + "." + type(opt._opt).__name__,
            "learning_rate": float(cfg["learning_rate"]),
            "epsilon": float(cfg["epsilon"]),
            "beta_1": float(cfg["beta_1"]),
            "beta_2": float(cfg["beta_2"]),
            "clip": opt._clip,
            "wd": opt._wd,
            "wd_pattern": opt._wd_pattern,
            "wd_form": "var.assign((1 - wd) * var) before apply_gradients, every variable matching wd_pattern",
        }

    # ---- actor-critic: imagination from the (pre-step) posterior with the stepped world model
    start = post
    is_terminal = data["is_terminal"]
    reward_fn = lambda seq: wm.heads["reward"](seq["feat"]).mode()  # noqa: E731
    hor = config.imag_horizon
    base_mode = ac.config.actor_grad
    modes = ["reinforce", "dynamics", "both"]
    seqs = {}
    for mode in modes + [base_mode]:
        ac.config = ac.config.update({"actor_grad": mode})
        tf.random.set_seed(seed + 2)  # the same draws in every imagination
        with tf.GradientTape(persistent=True) as actor_tape:
            seq = wm.imagine(ac.actor, start, is_terminal, hor)
            reward = reward_fn(seq)
            seq["reward"], _ = ac.rewnorm(reward)
            target, _ = ac.target(seq)
            actor_loss, mets3 = ac.actor_loss(seq, target)
        seqs[mode] = seq
        actor_vars = ac.actor.variables
        grads = actor_tape.gradient(actor_loss, actor_vars)
        rec[f"ac/actor_loss/{mode}"] = actor_loss.numpy()
        rec[f"ac/actor_ent/{mode}"] = mets3["actor_ent"].numpy()
        for var, grad in zip(actor_vars, grads):
            rec[f"ac/actor_grad/{mode}/{path_of[id(var)]}"] = np.zeros(var.shape, np.float32) if grad is None else grad.numpy()
    for mode in modes:  # the same draws in every imagination
        for key in ("feat", "action", "stoch"):
            np.testing.assert_array_equal(seqs[mode][key].numpy(), seq[key].numpy())
    with tf.GradientTape(persistent=True) as critic_tape:
        critic_loss, mets4 = ac.critic_loss(seq, target)
    critic_grads = critic_tape.gradient(critic_loss, ac.critic.variables)
    for var, grad in zip(ac.critic.variables, critic_grads):
        rec[f"g/{path_of[id(var)]}"] = grad.numpy()
    for var, grad in zip(ac.actor.variables, grads):
        rec[f"g/{path_of[id(var)]}"] = grad.numpy()
    rec["ac/actor_grad_norm"] = tf.linalg.global_norm(grads).numpy()
    rec["ac/critic_grad_norm"] = tf.linalg.global_norm(critic_grads).numpy()
    for key in ("feat", "logit", "action", "reward", "discount", "weight"):  # feat = concat([stoch, deter])
        rec[f"imag/{key}"] = seq[key].numpy()
    rec["imag/target"] = target.numpy()
    rec["imag/slow_value"] = ac._target_critic(seq["feat"]).mode().numpy()
    rec["imag/critic_value"] = ac.critic(seq["feat"][:-1]).mode().numpy()
    rec["ac/critic_loss"] = critic_loss.numpy()
    rec["ac/actor_loss"] = actor_loss.numpy()
    # The distributions the actor sampled from (states 0 .. H-1), and that its loss reads (0 .. H-2).
    dist = ac.actor(seq["feat"][:-1])
    if discrete:
        rec["imag/actor_logits"] = dist.logits_parameter().numpy()
    else:
        base = dist.distribution
        rec["imag/actor_loc"], rec["imag/actor_scale"] = base.loc.numpy(), base.scale.numpy()
    policy = ac.actor(seq["feat"][:-2])
    rec["ac/log_prob"] = policy.log_prob(seq["action"][1:-1]).numpy()
    rec["ac/entropy"] = policy.entropy().numpy()
    ac.actor_opt(actor_tape, actor_loss, ac.actor)
    ac.critic_opt(critic_tape, critic_loss, ac.critic)
    ac.update_slow_target()
    for k, v in variables.items():
        rec[f"w1/{k}"] = v.numpy()

    arrays = {k: np.asarray(v) for k, v in rec.items()}
    for k, v in arrays.items():
        if v.dtype == np.float64:
            arrays[k] = v.astype(np.float32)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"fidelity_{name}.npz"
    (np.savez if name in LARGE else np.savez_compressed)(path, **arrays)  # random fp32 weights hardly compress
    sidecar = {
        "source": "danijar/dreamerv2 2.2.0 (pip package dreamerv2==2.2.0; https://github.com/danijar/dreamerv2), MIT License",
        "generated_by": "benchmarks/fidelity/reference_dump.py",
        "versions": {
            "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "config_name": name,
        "seed": seed,
        "shapes": {"B": B, "T": T, "H": config.imag_horizon, "obs": list(obs_shape), "action": act if discrete else list(act)},
        "actor_grad": base_mode,
        "config": json.loads(json.dumps(dict(config), default=str)),
        "variables": {k: v.name for k, v in variables.items()},
        "layer_settings": settings,
        "init_stats": init_stats,
        "optimizers": opt_settings,
        "layouts": {
            "batch": "reference arrays are batch-major (B, T, ...); imagination (H + 1, N, ...) with N = B * T flattened "
            "batch-major (n = b * T + t)",
            "feat": "concat([stoch (S*K), deter (D)])",
            "embed": "CNN: NHWC flattened (h, w, c)",
            "dense": "kernel (in, out)",
            "conv": "kernel (kh, kw, in, out)",
            "conv_transpose": "kernel (kh, kw, out, in)",
            "gru": "Dense(3D) with bias on concat([x, deter]), LayerNorm(eps 1e-3) on the 3D parts, "
            "split (reset, cand, update)",
        },
    }
    (out_dir / f"fidelity_{name}.json").write_text(json.dumps(sidecar, indent=1, sort_keys=True) + "\n")
    print(f"{name}: {len(arrays)} arrays, {path.stat().st_size / 1024:.0f} KiB -> {path}")


def main():
    tf.config.run_functions_eagerly(True)  # draws happen in Python order; the patches and seeds apply as written
    tf.keras.mixed_precision.set_global_policy("float32")
    parser = argparse.ArgumentParser(prog="reference_dump.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"of {', '.join([*CONFIGS, *LARGE])}; default: the tiny configs")
    parser.add_argument("--out-dir", type=pathlib.Path, help=f"default: {OUT_DIR} (tiny), {LARGE_OUT_DIR} (atari)")
    args = parser.parse_args()
    order = [*CONFIGS, *LARGE]
    if unknown := set(args.names) - set(order):
        parser.error(f"unknown configs {sorted(unknown)}; choose from {order}")
    for name in args.names or list(CONFIGS):
        obs_shape, act, overrides = CONFIGS[name] if name in CONFIGS else (*LARGE[name], {})
        out_dir = args.out_dir or (LARGE_OUT_DIR if name in LARGE else OUT_DIR)
        if name in LARGE and out_dir.resolve().is_relative_to(ROOT):
            raise SystemExit(f"{name}: its data is too large for the repository; choose --out-dir outside {ROOT}")
        run(name, obs_shape, act, overrides, seed=100 * (1 + order.index(name)), out_dir=out_dir)


if __name__ == "__main__":
    main()
