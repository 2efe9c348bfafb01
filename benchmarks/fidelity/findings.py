"""The differences from danijar/dreamerv2 2.2.0 that ``compare.py`` found, with their causes, their status and which
compared quantity each one still explains (``finding_for``).

Status: ``fixed`` (the package now matches the reference; ``resolution`` says what changed), ``documented`` (kept
deliberately; ``resolution`` gives the reason and the measured effect) or ``open`` (not decided; ``resolution`` gives
the fix). The report lists them all; ``tests/test_fidelity.py`` marks the quantities of the documented and open ones
``xfail(strict=True)``, so that a later fix turns its test into a pass to confirm.
"""

FINDINGS = [
    {
        "id": "F1",
        "status": "fixed",
        "quantities": ["init/layernorm_eps", "as_is: every RSSM state and all that follows"],
        "cause": "LayerNorm epsilon: ours was nn.LayerNorm's default 1e-5, the reference's tfkl.LayerNormalization "
        "default is 1e-3 (GRUCell in common/nets.py). Changed deter by ~1e-2 relative at init and cascaded into the "
        "posterior, prior, heads, losses, gradients and the imagination.",
        "resolution": "every LayerNorm uses eps 1e-3 (sb3_dreamer/common/networks.py LAYER_NORM_EPS: the GRU's, the "
        "MLPs' and RSSM's with norm='layer'); with norm='layer' the CNNs normalise over the channels of each pixel "
        "(ChannelLayerNorm, Keras' LayerNormalization on NHWC) instead of GroupNorm(1). Checked: init/layernorm_eps "
        "over every LayerNorm of a norm='none' and a norm='layer' build; wm/deter as_is 1e-2 -> 3e-7.",
    },
    {
        "id": "F2",
        "status": "fixed",
        "quantities": ["wm/grad_norm", "wm/grad/wm/rssm/cell/dense/bias"],
        "cause": "GRU linear layer bias: the reference's GRUCell has Dense(3D, use_bias=norm is not None), with bias "
        "(norm=True) before the LayerNorm; ours had none. Zero at init (same forward), but it takes a gradient (in the "
        "global norm, so the clip differed by 1-21 %) and moves with the first step.",
        "resolution": "LayerNormGRUCell's linear layer has a bias (world_model.rssm.cell.linear.bias, mapped from "
        "wm/rssm/cell/dense/bias); MLP layers before a LayerNorm (norm='layer') have biases too. wm/grad_norm "
        "aligned 2e-1 -> <4e-6.",
    },
    {
        "id": "F3",
        "status": "fixed",
        "quantities": ["wm/discount_loss", "wm/model_loss", "wm/grad", "imag/discount", "imag/weight"],
        "cause": "Discount target: the reference's discount head is a Bernoulli on the soft label data['discount'] = "
        "gamma * (1 - is_terminal) (WorldModel.preprocess) and imagines disc = sigmoid(logit); ours trained on "
        "1 - is_terminal and imagined gamma * sigmoid(logit).",
        "resolution": "sb3_dreamer/dreamer/world_model.py: WorldModel.loss trains on gamma * (1 - is_terminal); "
        "WorldModel.imagine uses sigmoid(logit), the first step gamma * (1 - is_terminal).",
    },
    {
        "id": "F4",
        "status": "documented",
        "quantities": [
            "wm/params_after_step",
            "ac/actor_params_after_step",
            "ac/critic_params_after_step",
            "ac/slow_critic_after_update",
        ],
        "cause": "Adam epsilon placement: Keras 2.15's Adam uses 'epsilon hat': var -= lr * sqrt(1 - b2^t) / (1 - b1^t) "
        "* m / (sqrt(v) + eps); torch's (ours): lr * m_hat / (sqrt(v_hat) + eps). Keras' step is torch's with an "
        "epsilon eps / sqrt(1 - b2^t): 31.6x larger at step 1 (b2 0.999), 1.0x after ~5k steps. Weight decay (w *= 1 - "
        "wd before the step) and the global-norm clip match.",
        "resolution": "kept: PyTorch's Adam form, the difference fades with the bias correction (the effective epsilon "
        "is within 1 % of torch's after ~5k steps) and touches only parameters whose gradients are ~1e-5 or smaller. "
        "Measured at step 1 (as_is): parameters after the step differ by up to 0.73 (world model), 0.52 (actor), 0.68 "
        "(critic) of a variable's largest value, in variables whose step is their whole value (zero-initialised biases "
        "and LayerNorm betas, |step| ~ 1e-4); <1e-5 with eps / sqrt(1 - b2) (aligned). To reproduce it: "
        "sb3_dreamer/accel/optim.py AdamW with the denominator sqrt(v) + eps (Keras' form) instead of sqrt(v_hat) + eps.",
    },
    {
        "id": "F5",
        "status": "fixed",
        "quantities": ["init/kernel_bound", "init/kernel_std", "init/bias"],
        "cause": "Initialisers: Keras Dense/Conv2D/Conv2DTranspose default to glorot_uniform kernels (limit "
        "sqrt(6 / (fan_in + fan_out)), receptive field included) and zero biases; ours were torch's defaults "
        "(kaiming_uniform(a=sqrt 5): limit 1 / sqrt(fan_in); biases U(+-1/sqrt(fan_in))), bounds up to 3x off.",
        "resolution": "sb3_dreamer/common/networks.py keras_init (glorot_uniform weights, zero biases on every "
        "Linear / Conv2d / ConvTranspose2d), applied in DreamerPolicy.__init__. Checked on a seeded model: every "
        "layer's max|w| within Keras' limit, std within 10 % of limit / sqrt(3) (worst 7 % on 256 weights), biases 0.",
    },
    {
        "id": "F6",
        "status": "fixed",
        "quantities": ["imag/discount", "imag/weight", "imag/target", "ac/* (vector_continuous as_is)"],
        "cause": "Without a discount head (pred_discount False) the reference imagines disc = gamma everywhere, also for "
        "terminal start states; ours set the first discount to gamma * (1 - is_terminal).",
        "resolution": "sb3_dreamer/dreamer/world_model.py WorldModel.imagine: gamma for every step without a discount "
        "head. imag/discount vector_continuous as_is 1.0 -> 0.",
    },
    {
        "id": "F7",
        "status": "fixed",
        "quantities": ["ac/actor_grad/dynamics", "ac/actor_grad/both", "ac/actor_params_after_step (vector_continuous)"],
        "cause": "Truncated-normal sample gradient: TFP 0.23's TruncatedNormal.sample differentiates as "
        "x = loc + scale * z with the standardised z held fixed (dx/dloc = 1, dx/dscale = (x - loc) / scale); ours "
        "reparameterised through the inverse CDF (the implicit gradient, which also depends on the bounds).",
        "resolution": "sb3_dreamer/common/distributions.py TruncNormal.sample: z drawn without gradient, "
        "x = loc + scale * z (then the clip's straight-through). ac/actor_grad/dynamics vector_continuous "
        "7.8e-1 -> <1e-5.",
    },
    {
        "id": "F8",
        "status": "documented",
        "quantities": [
            "ac/actor_grad/reinforce (vector_continuous)",
            "ac/actor_grad/both (vector_continuous)",
            "ac/actor_params_after_step (vector_continuous, with F4)",
        ],
        "cause": "Located: the reference's ActorCritic.actor_loss scores policy.log_prob(seq['action'][1:-1]) without "
        "stopping the action's gradient, and the imagination that sampled the action runs inside the actor's "
        "GradientTape; TFP's TruncatedNormal.log_prob does not stop it either (OneHotCategorical.log_prob does: "
        "discrete actions match). The action is loc + scale * z with z held fixed (F7), so the gradient of "
        "log_prob(x(theta), theta) = log phi(z) - log scale - log Z(loc, scale) reaches the actor only through "
        "-log scale - log Z: the Gaussian kernel's dependence on loc and scale cancels. Ours scores a detached action "
        "(the textbook score function). Actor gradient 5.6x off in reinforce and both modes; with the action "
        "re-attached (compare.py _reference_log_prob, aligned pass) every actor gradient and step matches to <1e-5.",
        "resolution": "kept and documented (README, known differences): ours is the score-function gradient of "
        "the paper's actor loss (the sampled action held fixed), the reference's cancels its Gaussian kernel; only "
        "reinforce and both with continuous actions differ, and the reference's continuous-control configs use "
        "dynamics, where both agree. To reproduce the reference, sb3_dreamer/dreamer/behavior.py behavior_loss would "
        "score the action re-attached to the distribution it was drawn from: a = traj.action[1:-1].detach(); "
        "log_prob = dist.log_prob(dist.loc + dist.scale * ((a - dist.loc) / dist.scale).detach()) (compare.py "
        "_reference_log_prob does this).",
    },
    {
        "id": "F9",
        "status": "fixed",
        "quantities": ["init/kernel_limit (vector_continuous)"],
        "cause": "The continuous actor's output: the reference has two Dense(A) layers (out, std), each glorot_uniform "
        "with limit sqrt(6 / (units + A)); ours one Linear(units, 2A) whose glorot limit is sqrt(6 / (units + 2A)): "
        "5.1 % smaller here (units 16, A 2), ~0.7 % at units 400, A 6.",
        "resolution": "fixed: Actor.keras_init (sb3_dreamer/dreamer/behavior.py) initialises each row half of the "
        "continuous actor's output weight (mean and std, each (A, units)) as the reference's two layers; "
        "tests/test_networks.py checks the halves' spread.",
    },
    {
        "id": "F10",
        "status": "documented",
        "quantities": ["wm/obs_loss", "wm/reward_loss", "wm/model_loss", "ac/critic_loss (values only)"],
        "cause": "Our Gaussian losses (image / vector, reward, critic) leave out the constant 0.5 log(2 pi) per "
        "dimension that the reference's tfd.Normal log-probabilities include.",
        "resolution": "kept: a constant, same gradients; compare.py adds it back in both passes.",
    },
    {
        "id": "F11",
        "status": "documented",
        "quantities": ["none compared (the harness loads the reference's slow-critic weights)"],
        "cause": "In the reference's first update the slow critic has its own random initialisation (created lazily, "
        "copied from the critic only after that update); ours starts as a copy of the critic.",
        "resolution": "kept: it affects only the first update's lambda-returns (from one random critic or another); "
        "from the second update on both are copies of the critic.",
    },
    {
        "id": "F12",
        "status": "documented",
        "quantities": ["learning side by side (learning.py, benchmarks/results/fidelity/learning)"],
        "cause": "Replay sampling, outside the update: the reference's Replay draws an episode uniformly, then a "
        "sequence of at most the window's length from it (prioritize_ends adds minlen end-aligned starts), and fills "
        "each window by concatenating such sequences, carrying the RSSM state over from the previous batch "
        "(CarryOverState); ours draws windows uniformly over the stored steps, moves a window that crosses an "
        "episode end back to end there, and starts each from the zero state. On CartPole-v1 at one configuration "
        "(3 seeds, 20k steps) the reference averaged 114.4 over its evaluations, ours 303.7, above the reference's "
        "min-max band from 4k steps on. The reference's own update on our sampling (reference_step_windows, 3 "
        "seeds, 12k steps) averaged 207.9 against the reference's 85.3 over the same evaluations (ours 272.1) and "
        "ended at 397.8, 500, 500: the sampling accounts for most of the gap.",
        "resolution": "kept and documented (README, known differences): episode-uniform sampling under-weights the "
        "long episodes a learning agent produces. Not measured at the paper's Atari settings (minlen = maxlen = 50: "
        "each window one sequence of one episode, the episode still drawn uniformly).",
    },
]

STATUS = {f["id"]: f["status"] for f in FINDINGS}

_ADAM_STEP = (
    "wm/params_after_step",
    "ac/actor_params_after_step",
    "ac/critic_params_after_step",
    "ac/slow_critic_after_update",
)


def finding_for(config: str, mode: str, quantity: str) -> str | None:
    """The documented or open finding explaining ``quantity`` when it is out of tolerance (None: expected to match)."""
    if mode == "aligned":
        return None  # F4 and F8 neutralised
    if config == "vector_continuous" and quantity in ("ac/actor_grad/reinforce", "ac/actor_grad/both"):
        return "F8"
    if quantity in _ADAM_STEP:
        return "F4"  # with F8 in vector_continuous's actor step
    return None
