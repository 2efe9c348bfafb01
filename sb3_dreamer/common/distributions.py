"""Action and latent distributions: straight-through one-hot categoricals and a truncated normal."""

import math

import torch as th
import torch.nn.functional as F


class OneHotST:
    """Categorical over the last axis with one-hot samples and straight-through gradients.

    ``sample()`` returns ``onehot + (probs - sg(probs))``: the forward value is the exact one-hot
    sample (the bracket is exactly 0), the backward pass is the gradient of ``probs`` (Bengio et al. 2013;
    DreamerV2 sec. 2).

    :param logits: (..., K) unnormalised log-probabilities.
    """

    def __init__(self, logits: th.Tensor):
        self.logits = logits
        # In float32 also under CPU autocast, as CUDA's autocast computes log_softmax.
        self.log_probs = F.log_softmax(logits.float(), -1)
        self.probs = self.log_probs.exp()

    def sample(self, uniform: th.Tensor | None = None) -> th.Tensor:
        """:param uniform: (..., 1) the uniform numbers to draw with; fresh ones (``th.rand``) if None.
        :return: (..., K) one-hot sample carrying straight-through gradients."""
        # Inverse-CDF sampling: one uniform per variable (th.multinomial draws one exponential per class). The
        # class is the first whose cumulative probability reaches the uniform (the last where rounding leaves the
        # total below it): the count of those below it, which torch.compile fuses with the one-hot.
        probs = self.probs.detach()
        classes = probs.shape[-1]
        if uniform is None:
            uniform = th.rand(probs.shape[:-1] + (1,), device=probs.device, dtype=probs.dtype)
        index = (probs.cumsum(-1) < uniform).sum(-1, keepdim=True).clamp_max_(classes - 1)  # (..., 1)
        onehot = (index == th.arange(classes, device=probs.device)).to(probs.dtype)
        return onehot + (self.probs - probs) if self.probs.requires_grad else onehot

    def mode(self) -> th.Tensor:
        """:return: (..., K) one-hot of the most likely class (straight-through)."""
        onehot = F.one_hot(self.probs.argmax(-1), self.probs.shape[-1]).to(self.probs.dtype)
        return onehot + (self.probs - self.probs.detach())

    def log_prob(self, onehot: th.Tensor) -> th.Tensor:
        """:param onehot: (..., K). :return: (...)."""
        return (onehot * self.log_probs).sum(-1)

    def entropy(self) -> th.Tensor:
        """:return: (...)."""
        return -(self.probs * self.log_probs).sum(-1)


def categorical_kl(lhs_logits: th.Tensor, rhs_logits: th.Tensor) -> th.Tensor:
    """KL(lhs || rhs) of independent categoricals, summed over the variables.

    :param lhs_logits: (..., S, K)
    :param rhs_logits: (..., S, K)
    :return: (...)
    """
    lhs_log = F.log_softmax(lhs_logits.float(), -1)
    rhs_log = F.log_softmax(rhs_logits.float(), -1)
    return (lhs_log.exp() * (lhs_log - rhs_log)).sum((-2, -1))


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _normal_cdf(x: th.Tensor) -> th.Tensor:
    return 0.5 * (1 + th.erf(x / math.sqrt(2)))


def _normal_log_pdf(x: th.Tensor) -> th.Tensor:
    return -0.5 * x * x - _LOG_SQRT_2PI


class TruncNormal:
    """Independent normals truncated to ``[low, high]``, the reference's continuous actor.

    Samples are drawn through the inverse CDF, reparameterised as ``loc + scale * z`` and clipped ``clip`` away
    from the bounds with a straight-through estimator, as the reference's ``TruncNormalDist`` does.

    :param loc: (..., A) mean before truncation.
    :param scale: (..., A) standard deviation before truncation.
    """

    def __init__(self, loc: th.Tensor, scale: th.Tensor, low: float = -1.0, high: float = 1.0, clip: float = 1e-6):
        self.loc, self.scale, self.low, self.high, self.clip = loc, scale, low, high, clip
        self._alpha = (low - loc) / scale
        self._beta = (high - loc) / scale
        self._cdf_alpha = _normal_cdf(self._alpha)
        self._z = (_normal_cdf(self._beta) - self._cdf_alpha).clamp_min(1e-8)

    def sample(self) -> th.Tensor:
        """:return: (..., A) sample in ``[low + clip, high - clip]``, reparameterised as ``loc + scale * z`` with the
        standardised sample ``z`` held fixed (TFP's ``TruncatedNormal`` gradient, the reference's)."""
        with th.no_grad():  # z by the inverse CDF of the truncated standard normal
            u = th.rand_like(self.loc)
            p = (self._cdf_alpha + u * self._z).clamp(1e-7, 1 - 1e-7)
            z = math.sqrt(2) * th.erfinv(2 * p - 1)
        x = self.loc + self.scale * z
        clipped = x.clamp(self.low + self.clip, self.high - self.clip)
        return x - x.detach() + clipped.detach()

    def mode(self) -> th.Tensor:
        """:return: (..., A) the mode, ``loc`` clipped to the support."""
        return self.loc.clamp(self.low, self.high)

    def log_prob(self, x: th.Tensor) -> th.Tensor:
        """:param x: (..., A). :return: (...) summed over the action dimensions."""
        log_p = _normal_log_pdf((x - self.loc) / self.scale) - self.scale.log() - self._z.log()
        return log_p.sum(-1)

    def entropy(self) -> th.Tensor:
        """:return: (...) analytic entropy, summed over the action dimensions."""
        a, b = self._alpha, self._beta
        pa, pb = _normal_log_pdf(a).exp(), _normal_log_pdf(b).exp()
        ent = _LOG_SQRT_2PI + 0.5 + self.scale.log() + self._z.log() + (a * pa - b * pb) / (2 * self._z)
        return ent.sum(-1)
