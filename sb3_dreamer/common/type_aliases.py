"""NamedTuples shared by the model and the replay, and the tensor-shape legend.

Shape legend (one layout inside the model: time-major)::

    T  sequence length (replay window or imagination horizon + 1)
    B  batch of sequences (or of environments when acting)
    N  imagination starts, N = T * B
    S  stochastic variables (``stoch_size``, 32)     K  classes per variable (``stoch_classes``, 32)
    D  deterministic GRU state (``deter_size``)      E  encoder embedding
    A  action vector (one-hot for Discrete, [-1, 1] for Box)
    F  feature = D + S * K

Glossary: ``embed`` encoder output, ``deter`` GRU state, ``stoch`` one-hot sample of the
categorical latents, ``logits`` their unnormalised log-probabilities, ``feat`` the concatenation
``(deter, flatten(stoch))``, ``post``/``prior`` the posterior q(z|h,x) and the prior p(z|h),
``is_first`` the first step of an episode, ``is_terminal`` a true termination (never a time limit),
``cont`` = 1 - is_terminal.

Timing of a replay window (the reference's convention)::

    index:      0        1        2
    obs:       x_0      x_1      x_2
    action:    0        a_0      a_1       (the action that *led to* the observation)
    reward:    0        r_1      r_2       (the reward received on arrival)
    is_first:  1        0        0
"""

from typing import NamedTuple

import torch as th

ObsDict = dict[str, th.Tensor]


class RSSMState(NamedTuple):
    """Latent state of the RSSM. Leading dims are free: (B,), (T, B) or (N,)."""

    deter: th.Tensor  # (..., D)
    stoch: th.Tensor  # (..., S, K) one-hot sample
    logits: th.Tensor  # (..., S, K)

    def feat(self) -> th.Tensor:
        """:return: (..., D + S * K) the model feature."""
        return th.cat([self.deter, self.stoch.flatten(-2)], -1)

    def map(self, fn) -> "RSSMState":  # noqa: ANN001
        """Apply ``fn`` to every field."""
        return RSSMState(*(fn(x) for x in self))


class SequenceBatch(NamedTuple):
    """A batch of replay windows, time-major, already on the model's device."""

    obs: ObsDict  # key -> (T, B, *shape); images uint8 (C, H, W), vectors float32
    action: th.Tensor  # (T, B, A) action that led to obs[t]
    reward: th.Tensor  # (T, B) reward received on arrival at obs[t]
    is_first: th.Tensor  # (T, B) float 0/1
    is_terminal: th.Tensor  # (T, B) float 0/1
