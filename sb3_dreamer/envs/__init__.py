"""The paper's environment protocols as gymnasium ids (registered by ``import sb3_dreamer``):

- ``sb3_dreamer/<Game>-v0``: Atari, see :mod:`sb3_dreamer.envs.atari` (needs the ``atari`` extra to make).
- ``sb3_dreamer/DMC-<domain>-<task>-v0``: DeepMind Control from 64x64 pixels, see :mod:`sb3_dreamer.envs.dmc`
  (needs the ``dmc`` extra and ``MUJOCO_GL``).

Registration imports neither ale-py nor dm_control; they load on ``gym.make``.
"""

from sb3_dreamer.envs.atari import env_id, make_atari, register_atari_envs
from sb3_dreamer.envs.dmc import make_dmc, register_dmc_envs


def register_envs() -> None:
    """Register every id above (idempotent)."""
    register_atari_envs()
    register_dmc_envs()


__all__ = ["env_id", "make_atari", "make_dmc", "register_envs"]
